/* Tests of the data module: vocabulary, 90/10 split, training and validation windows, the fortune
 * corpus reader, and the error lines for missing, empty and too short corpora. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "randygpt/data.h"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_vocab_sorted_distinct(void **state) {
    (void)state;
    rg_data d;
    char err[256];
    const char *text = "hello world";
    assert_int_equal(rg_data_from_memory(&d, (const uint8_t *)text, strlen(text), err, sizeof err), 0);
    assert_int_equal(d.vocab.V, 8);
    assert_memory_equal(d.vocab.bytes, " dehlorw", 8);
    assert_int_equal(d.vocab.token['h'], 3);
    assert_int_equal(d.vocab.token['x'], -1);
    for (size_t i = 0; i < d.len; i++) assert_int_equal(d.vocab.bytes[d.tokens[i]], (uint8_t)text[i]);

    rg_vocab copy = d.vocab;
    memset(copy.token, 0, sizeof copy.token);
    assert_int_equal(rg_vocab_index(&copy), 0);
    assert_memory_equal(copy.token, d.vocab.token, sizeof copy.token);
    assert_true(rg_vocab_equal(&copy, &d.vocab));
    copy.bytes[1] = copy.bytes[2];  /* not strictly increasing */
    assert_int_equal(rg_vocab_index(&copy), -1);
    rg_data_free(&d);
}

/* A corpus of 900 lowercase bytes then 100 uppercase bytes: a window's case tells its split. */
static void make_two_case_corpus(rg_data *d) {
    uint8_t text[1000];
    rg_rng r;
    rg_rng_seed(&r, 7);
    for (int i = 0; i < 1000; i++)
        text[i] = (uint8_t)((i < 900 ? 'a' : 'A') + (int)rg_rng_below(&r, 26));
    char err[256];
    assert_int_equal(rg_data_from_memory(d, text, sizeof text, err, sizeof err), 0);
}

static void test_split_is_90_10(void **state) {
    (void)state;
    rg_data d;
    make_two_case_corpus(&d);
    assert_int_equal(d.len, 1000);
    assert_int_equal(d.split, 900);
    rg_data_free(&d);
}

static void test_train_windows_in_range_and_shifted(void **state) {
    (void)state;
    rg_data d;
    make_two_case_corpus(&d);
    enum { B = 16, T = 32 };
    int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    rg_rng r1, r2;
    rg_rng_seed(&r1, 42);
    rg_rng_seed(&r2, 42);
    int lowest_start = 1 << 30, highest_start = -1;
    for (int rep = 0; rep < 50; rep++) {
        rg_data_train_batch(&d, &r1, B, T, in, tg);
        rg_data_train_batch(&d, &r2, B, T, in2, tg2);
        assert_memory_equal(in, in2, sizeof in);  /* the same seed draws the same windows */
        assert_memory_equal(tg, tg2, sizeof tg);
        for (int b = 0; b < B; b++) {
            const int32_t *x = in + b * T, *y = tg + b * T;
            for (int t = 0; t < T; t++) {
                uint8_t cx = d.vocab.bytes[x[t]], cy = d.vocab.bytes[y[t]];
                assert_true(cx >= 'a' && cx <= 'z');  /* never reads the validation split */
                assert_true(cy >= 'a' && cy <= 'z');
                if (t + 1 < T) assert_int_equal(y[t], x[t + 1]);  /* targets are shifted inputs */
            }
            /* locate the window: it must be a real run of T+1 tokens of the training split */
            int found = -1;
            for (int p = 0; p + T < 900 && found < 0; p++)
                if (!memcmp(d.tokens + p, x, T * sizeof *x) && d.tokens[p + T] == y[T - 1]) found = p;
            assert_true(found >= 0);
            if (found < lowest_start) lowest_start = found;
            if (found > highest_start) highest_start = found;
        }
    }
    /* 800 windows over 868 start positions reach both ends of the range */
    assert_true(lowest_start < 50);
    assert_true(highest_start > 900 - T - 50);
    rg_data_free(&d);
}

static void test_val_windows_fixed_and_spread(void **state) {
    (void)state;
    rg_data d;
    make_two_case_corpus(&d);
    enum { B = 2, T = 8 };
    int nb = rg_data_val_batches(&d, B, T);
    assert_int_equal(nb, 6);  /* (100-1) / (2*8) = 6 batches of disjoint windows, at most 8 */
    int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    for (int i = 0; i < nb; i++) {
        rg_data_val_batch(&d, i, B, T, in, tg);
        rg_data_val_batch(&d, i, B, T, in2, tg2);
        assert_memory_equal(in, in2, sizeof in);
        assert_memory_equal(tg, tg2, sizeof tg);
        for (int k = 0; k < B * T; k++) {
            uint8_t c = d.vocab.bytes[in[k]];
            assert_true(c >= 'A' && c <= 'Z');  /* only the validation split */
            if (k % T + 1 < T) assert_int_equal(tg[k], in[k + 1]);
        }
    }
    /* evenly spaced: the first window starts the split, the last one ends the corpus */
    rg_data_val_batch(&d, 0, B, T, in, tg);
    assert_memory_equal(in, d.tokens + 900, T * sizeof *in);
    rg_data_val_batch(&d, nb - 1, B, T, in, tg);
    assert_memory_equal(tg + (B - 1) * T, d.tokens + 1000 - T, T * sizeof *tg);
    /* a big batch still gets one batch */
    assert_int_equal(rg_data_val_batches(&d, 64, 8), 1);
    rg_data_free(&d);
}

static void test_block_too_long_refused(void **state) {
    (void)state;
    rg_data d;
    make_two_case_corpus(&d);
    char err[256] = "";
    assert_int_equal(rg_data_check_block(&d, 99, err, sizeof err), 0);
    assert_int_equal(rg_data_check_block(&d, 100, err, sizeof err), -1);
    assert_non_null(strstr(err, "corpus too short for block size 100: need at least 1010 bytes"));
    rg_data_free(&d);
}

static void test_missing_and_empty_file(void **state) {
    (void)state;
    rg_data d;
    char err[512] = "";
    const char *missing = RG_TEST_TMPDIR "/data-does-not-exist.txt";
    unlink(missing);
    assert_int_equal(rg_data_load_file(&d, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    assert_null(strchr(err, '\n'));

    const char *empty = RG_TEST_TMPDIR "/data-empty.txt";
    write_file(empty, "");
    assert_int_equal(rg_data_load_file(&d, empty, err, sizeof err), -1);
    assert_non_null(strstr(err, "is empty"));

    const char *ok = RG_TEST_TMPDIR "/data-ok.txt";
    write_file(ok, "abcabcabcd");
    assert_int_equal(rg_data_load_file(&d, ok, err, sizeof err), 0);
    assert_int_equal(d.len, 10);
    assert_int_equal(d.vocab.V, 4);
    assert_int_equal(d.split, 9);
    rg_data_free(&d);
}

/* Anything but a regular file, and a file over RG_DATA_MAX_BYTES, is refused before it is read:
 * /dev/zero used to be read until memory ran out, a FIFO blocked forever. */
static void test_unbounded_files_refused(void **state) {
    (void)state;
    rg_data d;
    char err[512] = "";
    alarm(10); /* a regression reads or blocks forever: fail instead of waiting for ctest */
    assert_int_equal(rg_data_load_file(&d, "/dev/zero", err, sizeof err), -1);
    assert_non_null(strstr(err, "data file /dev/zero is a character device, not a regular file"));
    assert_null(strchr(err, '\n'));
    char fifo[256];
    snprintf(fifo, sizeof fifo, "%s/data-fifo-%ld", RG_TEST_TMPDIR, (long)getpid());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(rg_data_load_file(&d, fifo, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a FIFO, not a regular file"));
    unlink(fifo);
    assert_int_equal(rg_data_load_file(&d, RG_TEST_TMPDIR, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a directory"));

    /* one byte over the limit, as a sparse file: refused from its size, nothing read */
    char big[256];
    snprintf(big, sizeof big, "%s/data-big-%ld.txt", RG_TEST_TMPDIR, (long)getpid());
    FILE *f = fopen(big, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (off_t)RG_DATA_MAX_BYTES + 1), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rg_data_load_file(&d, big, err, sizeof err), -1);
    assert_non_null(strstr(err, "is too large"));
    assert_non_null(strstr(err, "the limit is 1024 MiB"));
    unlink(big);
    alarm(0);
}

static void test_fortunes_reader(void **state) {
    (void)state;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/fortunes-%ld", RG_TEST_TMPDIR, (long)getpid());
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/zeta", dir);
    write_file(path, "last one\n%\n");
    snprintf(path, sizeof path, "%s/alpha", dir);
    write_file(path, "first\n%\n100%\n%\nsecond\n");
    snprintf(path, sizeof path, "%s/alpha.dat", dir);
    write_file(path, "INDEX");
    char link[600];
    snprintf(link, sizeof link, "%s/alpha.u8", dir);
    assert_int_equal(symlink("alpha", link), 0);
    char off[600];
    snprintf(off, sizeof off, "%s/off", dir);
    assert_int_equal(mkdir(off, 0755), 0);
    snprintf(path, sizeof path, "%s/off/rude", dir);
    write_file(path, "OFFENSIVE\n");

    rg_data d;
    char err[512];
    assert_int_equal(rg_data_load_fortunes(&d, dir, err, sizeof err), 0);
    const char *want = "first\n100%\nsecond\nlast one\n";
    assert_int_equal(d.len, strlen(want));
    assert_memory_equal(d.text, want, d.len);
    rg_data_free(&d);

    snprintf(path, sizeof path, "%s/off/rude", dir);
    unlink(path);
    rmdir(off);
    unlink(link);
    snprintf(path, sizeof path, "%s/alpha.dat", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/alpha", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/zeta", dir);
    unlink(path);
    rmdir(dir);

    /* the package missing: one line saying what to do */
    assert_int_equal(rg_data_load_fortunes(&d, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "apt-get install fortunes"));
    assert_non_null(strstr(err, "--data"));
    assert_null(strchr(err, '\n'));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_sorted_distinct),
        cmocka_unit_test(test_split_is_90_10),
        cmocka_unit_test(test_train_windows_in_range_and_shifted),
        cmocka_unit_test(test_val_windows_fixed_and_spread),
        cmocka_unit_test(test_block_too_long_refused),
        cmocka_unit_test(test_missing_and_empty_file),
        cmocka_unit_test(test_unbounded_files_refused),
        cmocka_unit_test(test_fortunes_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
