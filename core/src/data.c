/* Training data: byte-level vocabulary, 90/10 split, training and validation windows. */
#define _POSIX_C_SOURCE 200809L
#include "randygpt/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_util.h"
#include "randygpt/text.h"

void rg_vocab_build(rg_vocab *vocab, const uint8_t *text, size_t n) {
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[text[i]] = 1;
    vocab->V = 0;
    for (int b = 0; b < 256; b++) {
        vocab->token[b] = -1;
        if (seen[b]) {
            vocab->token[b] = (int16_t)vocab->V;
            vocab->bytes[vocab->V++] = (uint8_t)b;
        }
    }
}

int rg_vocab_index(rg_vocab *vocab) {
    if (vocab->V < 1 || vocab->V > 256) return -1;
    for (int b = 0; b < 256; b++) vocab->token[b] = -1;
    for (int i = 0; i < vocab->V; i++) {
        if (i > 0 && vocab->bytes[i] <= vocab->bytes[i - 1]) return -1;
        vocab->token[vocab->bytes[i]] = (int16_t)i;
    }
    return 0;
}

int rg_vocab_equal(const rg_vocab *a, const rg_vocab *b) {
    return a->V == b->V && memcmp(a->bytes, b->bytes, (size_t)a->V) == 0;
}

/* Takes ownership of text (len bytes, malloc'ed): builds the vocabulary, tokens and split. */
static int data_adopt(rg_data *d, uint8_t *text, size_t len, const char *what, char *err,
                      size_t err_len) {
    memset(d, 0, sizeof *d);
    if (len == 0) {
        rg_errf(err, err_len, "%s is empty", what);
        free(text);
        return -1;
    }
    d->tokens = malloc(len * sizeof *d->tokens);
    if (!d->tokens) {
        rg_errf(err, err_len, "out of memory for the %zu tokens of %s", len, what);
        free(text);
        return -1;
    }
    d->text = text;
    d->len = len;
    rg_vocab_build(&d->vocab, text, len);
    for (size_t i = 0; i < len; i++) d->tokens[i] = d->vocab.token[text[i]];
    d->split = len - len / 10;  /* first 90% trains, last 10% validates */
    return 0;
}

/* data_adopt with a heap name (what, freed here; NULL when it could not be made). */
static int adopt_named(rg_data *d, uint8_t *text, size_t len, char *what, char *err,
                       size_t err_len) {
    int rc = data_adopt(d, text, len, what ? what : "the corpus", err, err_len);
    free(what);
    return rc;
}

/* Appends the whole file at path to *buf (size *len, capacity *cap), refusing anything but a
 * regular file and a total over RG_DATA_MAX_BYTES before reading. Returns 0 or -1 with err. */
static int append_file(const char *path, uint8_t **buf, size_t *len, size_t *cap, char *err,
                       size_t err_len) {
    struct stat st;
    int fd = rg_open_regular(path, "data file", &st, err, err_len);
    if (fd < 0) return -1;
    uint64_t size = (uint64_t)st.st_size;
    if (size > RG_DATA_MAX_BYTES - *len) {
        rg_errf(err, err_len, "data file %s is too large: %llu bytes%s, the limit is %d MiB", path,
                (unsigned long long)size, *len ? " after the files before it" : "",
                RG_DATA_MAX_BYTES >> 20);
        close(fd);
        return -1;
    }
    /* room for the whole file and one byte more, to notice a file that grows while read */
    size_t need = *len + (size_t)size + 1;
    if (*cap < need) {
        size_t ncap = *cap ? *cap : 1 << 16;
        while (ncap < need) ncap *= 2;
        uint8_t *nb = realloc(*buf, ncap);
        if (!nb) {
            rg_errf(err, err_len, "out of memory reading %s", path);
            close(fd);
            return -1;
        }
        *buf = nb;
        *cap = ncap;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, *buf + *len + got, need - *len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rg_errf(err, err_len, "cannot read data file %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
        if (got > size) {
            rg_errf(err, err_len, "data file %s grew while it was read", path);
            close(fd);
            return -1;
        }
    }
    close(fd);
    *len += got;
    return 0;
}

int rg_data_load_file(rg_data *d, const char *path, char *err, size_t err_len) {
    memset(d, 0, sizeof *d);
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    if (append_file(path, &buf, &len, &cap, err, err_len) != 0) {
        free(buf);
        return -1;
    }
    return adopt_named(d, buf, len, rg_strf("data file %s", path), err, err_len);
}

int rg_data_from_memory(rg_data *d, const uint8_t *text, size_t n, char *err, size_t err_len) {
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) {
        rg_errf(err, err_len, "out of memory for %zu bytes of text", n);
        return -1;
    }
    if (n) memcpy(copy, text, n);
    return data_adopt(d, copy, n, "the text", err, err_len);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The English fortune files are the regular files whose names have no extension: this skips the
 * *.dat indexes, the *.u8 links and the directories of other collections (e.g. off/). */
static int is_fortune_file(const char *dir, const char *name) {
    if (name[0] == '.' || strchr(name, '.')) return 0;
    char *path = rg_strf("%s/%s", dir, name);
    struct stat st;
    int regular = path && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return regular;
}

/* Drops the lines that are exactly "%" (the separators between fortunes), in place. */
static size_t drop_separators(uint8_t *buf, size_t len) {
    size_t out = 0, i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && buf[end] != '\n') end++;
        size_t next = end < len ? end + 1 : end;
        int sep = end - i == 1 && buf[i] == '%';
        if (!sep) {
            memmove(buf + out, buf + i, next - i);
            out += next - i;
        }
        i = next;
    }
    return out;
}

int rg_data_load_fortunes(rg_data *d, const char *dir, char *err, size_t err_len) {
    memset(d, 0, sizeof *d);
    if (!dir) dir = RG_FORTUNES_DIR;
    DIR *dp = opendir(dir);
    if (!dp) {
        rg_errf(err, err_len,
                "no --data given and the default corpus %s is missing: install it "
                "(apt-get install fortunes) or pass --data FILE",
                dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(dp)) != NULL) {
        if (!is_fortune_file(dir, e->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(dp);
    if (rc != 0) rg_errf(err, err_len, "out of memory listing %s", dir);
    if (rc == 0 && n == 0) {
        rg_errf(err, err_len,
                "no fortune files in %s: install them (apt-get install fortunes) or pass --data FILE",
                dir);
        rc = -1;
    }
    if (n) qsort(names, n, sizeof *names, cmp_names);

    uint8_t *buf = NULL;
    size_t len = 0, bcap = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = rg_strf("%s/%s", dir, names[i]);
        size_t start = len;
        rc = path ? append_file(path, &buf, &len, &bcap, err, err_len) : -1;
        if (!path) rg_errf(err, err_len, "out of memory reading %s", dir);
        free(path);
        if (rc == 0) len = start + drop_separators(buf + start, len - start);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    return adopt_named(d, buf, len, rg_strf("the fortune corpus in %s", dir), err, err_len);
}

void rg_data_free(rg_data *d) {
    free(d->text);
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

int rg_data_check_block(const rg_data *d, int T, char *err, size_t err_len) {
    size_t need = (size_t)T + 1;
    size_t val = d->len - d->split;
    if (T < 1 || d->split < need || val < need) {
        /* the smaller split is the validation one: 10% of the corpus must hold T+1 bytes */
        size_t need_total = need * 10;
        rg_errf(err, err_len,
                "corpus too short for block size %d: need at least %zu bytes (each of the 90%%/10%% "
                "splits must hold %zu), have %zu",
                T, need_total, need, d->len);
        return -1;
    }
    return 0;
}

/* inputs, targets are (T): the window of T+1 tokens starting at pos. */
static void window(const rg_data *d, size_t pos, int T, int32_t *inputs, int32_t *targets) {
    memcpy(inputs, d->tokens + pos, (size_t)T * sizeof *inputs);
    memcpy(targets, d->tokens + pos + 1, (size_t)T * sizeof *targets);
}

void rg_data_train_batch(const rg_data *d, rg_rng *rng, int B, int T, int32_t *inputs,
                         int32_t *targets) {
    size_t starts = d->split - (size_t)T;  /* positions 0 .. split-T-1 keep T+1 bytes in the split */
    for (int b = 0; b < B; b++) {
        size_t pos = (size_t)rg_rng_below(rng, starts);
        window(d, pos, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

int rg_data_val_batches(const rg_data *d, int B, int T) {
    size_t val = d->len - d->split;
    size_t disjoint = (val - 1) / ((size_t)B * (size_t)T);  /* batches of non-overlapping windows */
    if (disjoint < 1) return 1;
    return disjoint > RG_VAL_MAX_BATCHES ? RG_VAL_MAX_BATCHES : (int)disjoint;
}

/* Batch `index` of rg_data_val_batches(d, B, T) whose windows are evenly spaced over the bytes
 * [start, start + len) of the corpus. */
static void spaced_batch(const rg_data *d, size_t start, size_t len, int index, int B, int T,
                         int32_t *inputs, int32_t *targets) {
    size_t last = len - (size_t)T - 1;  /* last start offset inside the range */
    size_t total = (size_t)rg_data_val_batches(d, B, T) * (size_t)B;
    for (int b = 0; b < B; b++) {
        size_t i = (size_t)index * (size_t)B + (size_t)b;
        size_t off = total > 1 ? (size_t)((uint64_t)i * last / (total - 1)) : 0;
        window(d, start + off, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

void rg_data_val_batch(const rg_data *d, int index, int B, int T, int32_t *inputs,
                       int32_t *targets) {
    spaced_batch(d, d->split, d->len - d->split, index, B, T, inputs, targets);
}

void rg_data_held_train_batch(const rg_data *d, int index, int B, int T, int32_t *inputs,
                              int32_t *targets) {
    spaced_batch(d, 0, d->split, index, B, T, inputs, targets);
}
