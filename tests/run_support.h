/* Helpers of the tests that run the built program or write files: run a command and capture what
 * it wrote, read and write whole files, count lines, and write the small generated corpus they
 * train on. Needs cmocka.h first, and _GNU_SOURCE (vasprintf, popen) before any system header. */
#ifndef RANDYGPT_TEST_RUN_SUPPORT_H
#define RANDYGPT_TEST_RUN_SUPPORT_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "randygpt/rng.h"

/* The whole file, NUL-terminated (malloc'd), or NULL when it cannot be opened; *len (when len is
 * not NULL) is its size. */
static inline char *read_text_n(const char *path, size_t *len) {
    if (len) *len = 0;
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
    if (len) *len = (size_t)n;
    return s;
}

static inline char *read_text(const char *path) { return read_text_n(path, NULL); }

/* Writes exactly the n bytes of buf to path, replacing it. */
static inline void write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The formatted text in a new heap string: commands and paths of any length. */
static inline char *vformat(const char *fmt, va_list ap) {
    char *s = NULL;
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    return s;
}

static inline char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

/* Runs the shell command fmt... with stdout in out and stderr in err (stdin empty); returns its
 * exit status. */
static inline int run_shell_to(const char *out, const char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    char *full = format("%s >%s 2>%s </dev/null", cmd, out, err);
    int st = system(full);
    free(full);
    free(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Starts argv (argv[0] a path) with stdout in out and stderr in err; returns its pid. */
static inline pid_t spawn_to(const char *out, const char *err, const char *const *argv) {
    /* emptied before the fork, so that a caller polling them never reads an earlier run's text */
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fo >= 0 && fe >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fo);
    close(fe);
    return pid;
}

/* In a sanitizer build, lets a segfaulting fixture die of its signal as in a release build,
 * instead of the sanitizer catching it and exiting 1. Call first in main. */
static inline void let_crashes_die_of_signal(void) {
    const char *asan = getenv("ASAN_OPTIONS");
    char *opts = format("%s%shandle_segv=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    free(opts);
}

/* Runs cmd (stderr into stdout) and returns its exit status; *out is what it printed (malloc'd). */
static inline int run_capture(const char *cmd, char **out) {
    char *full = format("%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    free(full);
    assert_non_null(f);
    size_t size = 0, len = 0;
    char *buf = NULL;
    for (;;) {
        if (len + 4096 + 1 > size) {
            size = 2 * size + 4096 + 1;
            buf = realloc(buf, size);
            assert_non_null(buf);
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got == 0) break;
    }
    buf[len] = '\0';
    int status = pclose(f);
    assert_true(WIFEXITED(status));
    *out = buf;
    return WEXITSTATUS(status);
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
