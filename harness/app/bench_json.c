/* A small recursive-descent JSON reader (RFC 8259) and string/number writers. */
#include "bench_json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Deeper nesting than this is refused, so a hostile input cannot exhaust the stack. */
#define JSON_MAX_DEPTH 64

typedef struct parser {
    const char *s;    /* the text */
    size_t pos;       /* next character */
    char *err;
    size_t err_len;
    int failed;
} parser;

static void fail(parser *p, const char *what) {
    if (!p->failed) snprintf(p->err, p->err_len, "JSON: %s at offset %zu", what, p->pos);
    p->failed = 1;
}

static void skip_ws(parser *p) {
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
           p->s[p->pos] == '\r')
        p->pos++;
}

static void json_clear(rg_json *j) {
    free(j->string);
    for (int i = 0; i < j->count; i++) {
        json_clear(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    memset(j, 0, sizeof *j);
}

static int hex4(parser *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

/* Appends code point cp to buf as UTF-8; buf has room (escapes are longer than their output). */
static size_t put_utf8(char *buf, unsigned cp) {
    if (cp < 0x80) { buf[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string starting at its opening quote; returns a malloc'd copy or NULL. */
static char *parse_string(parser *p) {
    size_t start = ++p->pos, end = start;
    while (p->s[end] && p->s[end] != '"') end += (p->s[end] == '\\' && p->s[end + 1]) ? 2 : 1;
    if (p->s[end] != '"') { fail(p, "unterminated string"); return NULL; }
    char *out = malloc(end - start + 1);
    if (!out) { fail(p, "out of memory"); return NULL; }
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { fail(p, "control character in string"); free(out); return NULL; }
        if (c != '\\') { out[n++] = (char)c; p->pos++; continue; }
        char e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(p, &cp) != 0) { fail(p, "bad \\u escape"); free(out); return NULL; }
            /* A high surrogate followed by \uDC00..\uDFFF makes one code point. */
            if (cp >= 0xD800 && cp < 0xDC00 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                p->pos += 2;
                if (hex4(p, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, "bad surrogate pair");
                    free(out);
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default: fail(p, "bad escape"); free(out); return NULL;
        }
    }
    out[n] = '\0';
    p->pos = end + 1;
    return out;
}

static int parse_value(parser *p, rg_json *j, int depth);

/* Appends one zeroed item (and key slot for objects) to j; returns it or NULL. */
static rg_json *grow(parser *p, rg_json *j, int with_key) {
    rg_json *items = realloc(j->items, (size_t)(j->count + 1) * sizeof *items);
    if (!items) { fail(p, "out of memory"); return NULL; }
    j->items = items;
    if (with_key) {
        char **keys = realloc(j->keys, (size_t)(j->count + 1) * sizeof *keys);
        if (!keys) { fail(p, "out of memory"); return NULL; }
        j->keys = keys;
        keys[j->count] = NULL;
    }
    memset(&items[j->count], 0, sizeof *items);
    return &items[j->count++];
}

static int parse_container(parser *p, rg_json *j, int depth, int is_object) {
    char close = is_object ? '}' : ']';
    j->type = is_object ? RG_JSON_OBJECT : RG_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->s[p->pos] == close) { p->pos++; return 0; }
    for (;;) {
        char *key = NULL;
        if (is_object) {
            skip_ws(p);
            if (p->s[p->pos] != '"') { fail(p, "expected a key"); return -1; }
            if (!(key = parse_string(p))) return -1;
            skip_ws(p);
            if (p->s[p->pos] != ':') { free(key); fail(p, "expected ':'"); return -1; }
            p->pos++;
        }
        rg_json *item = grow(p, j, is_object);
        if (!item) { free(key); return -1; }
        if (is_object) j->keys[j->count - 1] = key;
        if (parse_value(p, item, depth + 1) != 0) return -1;
        skip_ws(p);
        if (p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->s[p->pos] == close) { p->pos++; return 0; }
        fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        return -1;
    }
}

static int parse_number(parser *p, rg_json *j) {
    /* Check the RFC grammar first: strtod alone would take "inf", "0x1p3" or "1.". */
    size_t i = p->pos;
    if (p->s[i] == '-') i++;
    if (p->s[i] == '0') i++;
    else if (isdigit((unsigned char)p->s[i])) while (isdigit((unsigned char)p->s[i])) i++;
    else { fail(p, "bad number"); return -1; }
    if (p->s[i] == '.') {
        i++;
        if (!isdigit((unsigned char)p->s[i])) { fail(p, "bad number"); return -1; }
        while (isdigit((unsigned char)p->s[i])) i++;
    }
    if (p->s[i] == 'e' || p->s[i] == 'E') {
        i++;
        if (p->s[i] == '+' || p->s[i] == '-') i++;
        if (!isdigit((unsigned char)p->s[i])) { fail(p, "bad number"); return -1; }
        while (isdigit((unsigned char)p->s[i])) i++;
    }
    j->type = RG_JSON_NUMBER;
    j->number = strtod(p->s + p->pos, NULL);
    p->pos = i;
    return 0;
}

static int parse_literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (strncmp(p->s + p->pos, word, n) != 0) { fail(p, "unexpected character"); return -1; }
    p->pos += n;
    return 0;
}

static int parse_value(parser *p, rg_json *j, int depth) {
    if (depth > JSON_MAX_DEPTH) { fail(p, "nested too deeply"); return -1; }
    skip_ws(p);
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, j, depth, 1);
    case '[': return parse_container(p, j, depth, 0);
    case '"':
        j->type = RG_JSON_STRING;
        return (j->string = parse_string(p)) ? 0 : -1;
    case 't': j->type = RG_JSON_BOOL; j->boolean = 1; return parse_literal(p, "true");
    case 'f': j->type = RG_JSON_BOOL; j->boolean = 0; return parse_literal(p, "false");
    case 'n': j->type = RG_JSON_NULL; return parse_literal(p, "null");
    case '\0': fail(p, "unexpected end"); return -1;
    default: return parse_number(p, j);
    }
}

rg_json *rg_json_parse(const char *text, char *err, size_t err_len) {
    parser p = {text, 0, err, err_len, 0};
    rg_json *j = calloc(1, sizeof *j);
    if (!j) { snprintf(err, err_len, "JSON: out of memory"); return NULL; }
    if (parse_value(&p, j, 0) == 0) {
        skip_ws(&p);
        if (p.s[p.pos] != '\0') fail(&p, "trailing characters");
    }
    if (p.failed) { rg_json_free(j); return NULL; }
    return j;
}

rg_json *rg_json_parse_file(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, err_len, "%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0;) {
        n += got;
        if (n == cap - 1) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) { free(buf); buf = NULL; }
            buf = bigger;
        }
    }
    fclose(f);
    if (!buf) { snprintf(err, err_len, "%s: out of memory", path); return NULL; }
    buf[n] = '\0';
    char why[256];
    rg_json *j = rg_json_parse(buf, why, sizeof why);
    free(buf);
    if (!j) snprintf(err, err_len, "%s: %s", path, why);
    return j;
}

void rg_json_free(rg_json *j) {
    if (!j) return;
    json_clear(j);
    free(j);
}

const rg_json *rg_json_get(const rg_json *j, const char *key) {
    if (!j || j->type != RG_JSON_OBJECT) return NULL;
    for (int i = 0; i < j->count; i++)
        if (!strcmp(j->keys[i], key)) return &j->items[i];
    return NULL;
}

const rg_json *rg_json_at(const rg_json *j, int i) {
    if (!j || j->type != RG_JSON_ARRAY || i < 0 || i >= j->count) return NULL;
    return &j->items[i];
}

double rg_json_num(const rg_json *j, double dflt) {
    return (j && j->type == RG_JSON_NUMBER) ? j->number : dflt;
}

const char *rg_json_str(const rg_json *j) { return (j && j->type == RG_JSON_STRING) ? j->string : NULL; }

void rg_json_write_string(FILE *f, const char *s) {
    if (!s) { fputs("null", f); return; }
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", f);
        else if (*c == '\t') fputs("\\t", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

void rg_json_write_number(FILE *f, double x) {
    if (!isfinite(x)) fputs("null", f);
    else fprintf(f, "%.10g", x);
}
