/* Command lines for every command: getopt_long and the value checks (see cmdline.h). */
#define _GNU_SOURCE /* getopt_long */
#include "app/cmdline.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "randygpt/text.h"

int rg_cli_error(rg_cli *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = rg_vstrf(fmt, ap);
    va_end(ap);
    free(c->err);
    c->err = msg; /* NULL is reported as "out of memory" */
    return -1;
}

size_t rg_edit_distance(const char *a, const char *b) {
    /* optimal string alignment over three rows: d[i][j] for a[0..i), b[0..j) */
    size_t na = strlen(a), nb = strlen(b);
    size_t *rows = malloc(3 * (nb + 1) * sizeof *rows);
    if (!rows) return (size_t)-1;
    size_t *prev2 = rows, *prev = rows + nb + 1, *cur = rows + 2 * (nb + 1);
    for (size_t j = 0; j <= nb; j++) prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[nb];
    free(rows);
    return d;
}

const char *rg_closest_name(const char *word, const char *const *names, size_t n) {
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t k = 0; k < n; k++) {
        size_t d = rg_edit_distance(word, names[k]);
        if (d < best_d) best_d = d, best = names[k];
    }
    /* a typo: at most two edits, and fewer than half the word */
    return best && best_d <= 2 && 2 * best_d <= strlen(word) ? best : NULL;
}

/* The error of an option getopt_long refused: text is "--NAME[=VALUE]". */
static int bad_long_option(rg_cli *c, const char *text) {
    const char *name = text + 2;
    size_t len = strcspn(name, "="), count = 0;
    const struct option *o;
    for (o = c->options; o->name; o++) {
        count++;
        if (strlen(o->name) == len && !strncmp(o->name, name, len) && name[len] == '=')
            return rg_cli_error(c, "--%s takes no value, got '%s'", o->name, text);
    }
    const char **names = malloc((count ? count : 1) * sizeof *names);
    char *word = strndup(name, len);
    const char *near = NULL;
    if (names && word) {
        for (size_t k = 0; k < count; k++) names[k] = c->options[k].name;
        near = rg_closest_name(word, names, count);
    }
    free(word);
    free(names);
    if (near) return rg_cli_error(c, "unknown option '%s'; did you mean --%s?", text, near);
    return rg_cli_error(c, "unknown option '%s'", text);
}

/* Hands one option or argument to take; the option's "--NAME" is c->flag meanwhile. */
static int take_one(rg_cli *c, const struct option *o, int id, const char *value,
                    rg_cli_take_fn take, void *user) {
    free(c->flag);
    c->flag = NULL;
    if (o && !(c->flag = rg_strf("--%s", o->name))) return rg_cli_error(c, "out of memory");
    int r = take(c, id, value, user);
    if (r == RG_CLI_NOT_MINE) {
        if (id == RG_CLI_ARG) return rg_cli_error(c, "unexpected argument '%s'", value);
        return rg_cli_error(c, "option %s is not handled", c->flag ? c->flag : "?");
    }
    return r;
}

/* Returns 0, 1 after usage, -1 with c->err set. */
static int parse(rg_cli *c, int argc, char **argv, rg_cli_take_fn take, void *user,
                 void (*usage)(FILE *)) {
    opterr = 0;
    optind = 0; /* glibc: start afresh, as for a first call */
    /* "-": arguments come back in order as id 1; ":": a missing value is ':', not '?' */
    int id, index, at;
    /* at: the element getopt_long is about to read, the option itself (optind 0 means 1) */
    while ((index = -1, at = optind ? optind : 1,
            id = getopt_long(argc, argv, "-:h", c->options, &index)) != -1) {
        const char *text = argv[at];
        /* a prefix of a name is not taken for it: a typo gets "did you mean" instead */
        if (index >= 0 && strncmp(text, "--", 2) == 0 &&
            strcspn(text + 2, "=") != strlen(c->options[index].name))
            return bad_long_option(c, text);
        if (id == 'h' && index < 0 && strcmp(text, "-h") != 0)
            return rg_cli_error(c, "unknown option '%s'", text); /* -h inside a cluster */
        if (id == 'h') {
            usage(stdout);
            return 1;
        }
        if (id == ':') return rg_cli_error(c, "%.*s needs a value", (int)strcspn(text, "="), text);
        if (id == '?') {
            if (!strncmp(text, "--", 2)) return bad_long_option(c, text);
            return rg_cli_error(c, "unknown option '-%c'", optopt ? optopt : '?');
        }
        if (take_one(c, index >= 0 ? &c->options[index] : NULL, id, optarg, take, user) != 0)
            return -1;
    }
    for (; optind < argc; optind++) /* the arguments after "--" */
        if (take_one(c, NULL, RG_CLI_ARG, argv[optind], take, user) != 0) return -1;
    return 0;
}

int rg_cli_parse(const char *prog, const struct option *options, int argc, char **argv,
                 rg_cli_take_fn take, void *user, void (*usage)(FILE *)) {
    rg_cli c = {prog, options, NULL, NULL};
    int rc = parse(&c, argc, argv, take, user, usage);
    if (rc < 0) rg_cli_usage_error(prog, c.err ? c.err : "out of memory");
    free(c.flag);
    free(c.err);
    return rc < 0 ? 2 : rc;
}

/* The name of the option being taken, for messages. */
static const char *flag_of(const rg_cli *c) { return c->flag ? c->flag : "the value"; }

int rg_cli_string(rg_cli *c, const char *s, const char **out) {
    if (!s || !*s) return rg_cli_error(c, "%s needs a value", flag_of(c));
    *out = s;
    return 0;
}

/* A whole-string integer in [min, max]: optional '-', then digits. */
static int parse_long(const char *s, long min, long max, long *out) {
    if (!s || !(*s == '-' || (*s >= '0' && *s <= '9'))) return -1; /* no blanks, no '+' */
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int rg_cli_int(rg_cli *c, const char *s, long min, long max, int *out) {
    long v;
    if (parse_long(s, min, max, &v) != 0)
        return rg_cli_error(c, "%s must be an integer from %ld to %ld, got '%s'", flag_of(c), min,
                            max, s ? s : "");
    *out = (int)v;
    return 0;
}

int rg_cli_int_list(rg_cli *c, const char *s, long min, long max, int *out, int max_count,
                    int *count) {
    int k = 0;
    const char *item = s ? s : "";
    for (;;) {
        size_t len = strcspn(item, ",");
        char *text = strndup(item, len);
        long v;
        int ok = text && len > 0 && parse_long(text, min, max, &v) == 0;
        free(text);
        if (!ok)
            return rg_cli_error(
                c, "%s must be a comma-separated list of integers from %ld to %ld, got '%s'",
                flag_of(c), min, max, s ? s : "");
        for (int j = 0; j < k; j++)
            if (out[j] == (int)v) return rg_cli_error(c, "%s lists %ld twice, in '%s'", flag_of(c), v, s);
        if (k == max_count)
            return rg_cli_error(c, "%s lists more than %d values, in '%s'", flag_of(c), max_count, s);
        out[k++] = (int)v;
        if (!item[len]) break;
        item += len + 1;
    }
    *count = k;
    return 0;
}

int rg_cli_u64(rg_cli *c, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    /* strtoull accepts a sign and blanks: only plain digits are a seed */
    unsigned long long v = (s && *s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || *end || errno)
        return rg_cli_error(c, "%s must be a non-negative integer below 2^64, got '%s'", flag_of(c),
                            s ? s : "");
    *out = (uint64_t)v;
    return 0;
}

int rg_cli_double(rg_cli *c, const char *s, double min, int min_open, double max, double *out) {
    char *end;
    errno = 0;
    double v = (s && *s) ? strtod(s, &end) : 0;
    int ok = s && *s && !*end && !errno && isfinite(v) && v <= max && (min_open ? v > min : v >= min);
    if (!ok)
        return rg_cli_error(c, "%s must be a number with %g %s x <= %g, got '%s'", flag_of(c), min,
                            min_open ? "<" : "<=", max, s ? s : "");
    *out = v;
    return 0;
}

int rg_cli_float(rg_cli *c, const char *s, double min, int min_open, double max, float *out) {
    double v;
    if (rg_cli_double(c, s, min, min_open, max, &v) != 0) return -1;
    *out = (float)v;
    return 0;
}

int rg_cli_preset(rg_cli *c, const char *s, const rg_preset **out) {
    const rg_preset *p = s && *s ? rg_preset_find(s) : NULL;
    if (p) {
        *out = p;
        return 0;
    }
    if (!s || !*s) return rg_cli_error(c, "%s needs a value", flag_of(c));
    size_t n = 0;
    while (rg_presets[n].name) n++;
    const char **names = malloc(n * sizeof *names);
    if (!names) return rg_cli_error(c, "out of memory");
    for (size_t k = 0; k < n; k++) names[k] = rg_presets[k].name;
    char *list = rg_join_names(names, n, " or ");
    const char *near = rg_closest_name(s, names, n);
    rg_cli_error(c, "unknown preset '%s' (%s)%s%s%s", s, list ? list : "", near ? "; did you mean " : "",
                 near ? near : "", near ? "?" : "");
    free(list);
    free(names);
    return -1;
}

char *rg_join_names(const char *const *names, size_t n, const char *last) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%s%s", k == 0 ? "" : k + 1 == n ? last : ", ", names[k]);
    return fclose(f) == 0 ? text : (free(text), NULL);
}

int rg_cli_usage_error(const char *prog, const char *err) {
    fprintf(stderr, "%s: %s (see '%s --help')\n", prog, err, prog);
    return 2;
}
