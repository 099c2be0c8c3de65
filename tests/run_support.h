/* Helpers of the tests that run the built program (test_train, test_replicas): read what it wrote,
 * count lines, and write the small generated corpus they train on. Needs cmocka.h first. */
#ifndef RANDYGPT_TEST_RUN_SUPPORT_H
#define RANDYGPT_TEST_RUN_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "randygpt/rng.h"

/* The whole file, NUL-terminated (malloc'd), or NULL when it cannot be opened. */
static inline char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static inline int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Waits until the file holds at least want lines, polling every 20 ms for at most seconds.
 * Returns the lines it holds then. */
static inline int wait_for_lines(const char *path, int want, int seconds) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    int lines = 0;
    for (int k = 0; k < seconds * 50 && lines < want; k++) {
        nanosleep(&nap, NULL);
        char *text = read_text(path);
        lines = text ? count_lines(text) : 0;
        free(text);
    }
    return lines;
}

/* A corpus with some structure to learn: 600 sentences drawn from a few words, fixed seed.
 * Returns 0, or -1 when the file cannot be written. */
static inline int write_word_corpus(const char *path) {
    static const char *words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran",
                                  "to", "big", "red", "house", "while", "birds", "sing"};
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    rg_rng r;
    rg_rng_seed(&r, 2024);
    for (int s = 0; s < 600; s++) {
        int n = 3 + (int)rg_rng_below(&r, 6);
        for (int w = 0; w < n; w++)
            fprintf(f, "%s%s", w ? " " : "", words[rg_rng_below(&r, sizeof words / sizeof *words)]);
        fputs(".\n", f);
    }
    return fclose(f);
}

#endif /* RANDYGPT_TEST_RUN_SUPPORT_H */
