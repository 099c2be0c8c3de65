/* Tests of checkpoints: an exact round trip, the refusal of damaged or foreign files with one clear
 * line each, and saves that fail without touching the previous checkpoint. */
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

#include "randygpt/checkpoint.h"

typedef struct fixture {
    rg_model model;
    rg_vocab vocab;
    rg_train_state st;
    char path[512];
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    const char *text = "the quick brown fox jumps over the lazy dog\n";
    rg_vocab_build(&fx->vocab, (const uint8_t *)text, strlen(text));
    rg_model_config cfg = {fx->vocab.V, 8, 16, 2, 1};
    char err[256];
    if (rg_model_init(&fx->model, &cfg, 5, err, sizeof err) != 0) return -1;
    /* moments and adam_t as after some training, so the round trip checks real values */
    rg_rng r;
    rg_rng_seed(&r, 99);
    for (size_t i = 0; i < fx->model.num_params; i++) {
        fx->model.m_memory[i] = rg_rng_normal(&r) * 1e-3f;
        fx->model.v_memory[i] = rg_rng_uniform(&r) * 1e-6f;
    }
    fx->model.adam_t = 17;
    snprintf(fx->st.preset, sizeof fx->st.preset, "tiny");
    fx->st.B = 3;
    fx->st.T = 8;
    fx->st.max_steps = 40;
    fx->st.optim = rg_optim_default();
    fx->st.optim.lr = 1e-3f;
    fx->st.seed = 123456789012345ULL;
    fx->st.step = 17;
    fx->st.rng_data = 0x0123456789abcdefULL;
    fx->st.rng_sample = 0xfedcba9876543210ULL;
    snprintf(fx->path, sizeof fx->path, "%s/ckpt-test-%ld.ckpt", RG_TEST_TMPDIR, (long)getpid());
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    rg_model_free(&fx->model);
    unlink(fx->path);
    free(fx);
    return 0;
}

static void save_ok(fixture *fx) {
    char err[512] = "";
    int rc = rg_checkpoint_save(fx->path, &fx->model, &fx->vocab, &fx->st, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Loading must fail with one line holding `want`. */
static void assert_refused(const char *path, const char *want) {
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512] = "";
    assert_int_equal(rg_checkpoint_load(path, &m, &v, &st, err, sizeof err), -1);
    if (!strstr(err, want)) fail_msg("expected '%s' in: %s", want, err);
    assert_null(strchr(err, '\n'));
    assert_null(m.params_memory);  /* nothing left allocated */
}

static void test_round_trip_exact(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512] = "";
    int rc = rg_checkpoint_load(fx->path, &m, &v, &st, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    assert_memory_equal(&m.cfg, &fx->model.cfg, sizeof m.cfg);
    assert_int_equal(m.num_params, fx->model.num_params);
    size_t n = m.num_params * sizeof(float);
    assert_memory_equal(m.params_memory, fx->model.params_memory, n);
    assert_memory_equal(m.m_memory, fx->model.m_memory, n);
    assert_memory_equal(m.v_memory, fx->model.v_memory, n);
    assert_int_equal(m.adam_t, 17);
    assert_true(rg_vocab_equal(&v, &fx->vocab));
    assert_memory_equal(v.token, fx->vocab.token, sizeof v.token);
    assert_string_equal(st.preset, "tiny");
    assert_int_equal(st.B, 3);
    assert_int_equal(st.T, 8);
    assert_int_equal(st.max_steps, 40);
    assert_int_equal(st.step, 17);
    assert_true(st.seed == 123456789012345ULL);
    assert_true(st.rng_data == 0x0123456789abcdefULL);
    assert_true(st.rng_sample == 0xfedcba9876543210ULL);
    assert_memory_equal(&st.optim, &fx->st.optim, sizeof st.optim);
    rg_model_free(&m);

    /* no temporary file is left beside it */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", fx->path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_missing_file(void **state) {
    fixture *fx = *state;
    unlink(fx->path);
    assert_refused(fx->path, "No such file");
}

static void test_truncated_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = read_all(fx->path, &n);
    write_all(fx->path, buf, n / 2);
    assert_refused(fx->path, "truncated");
    write_all(fx->path, buf, n - 1);  /* only the last checksum byte missing */
    assert_refused(fx->path, "truncated");
    write_all(fx->path, buf, 5);
    assert_refused(fx->path, "truncated");
    write_all(fx->path, buf, 0);
    assert_refused(fx->path, "truncated");
    free(buf);
}

static void test_bit_flip_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = read_all(fx->path, &n);
    buf[n / 2] ^= 0x10;  /* inside the weights and moments */
    write_all(fx->path, buf, n);
    assert_refused(fx->path, "checksum mismatch");
    buf[n / 2] ^= 0x10;
    buf[110] ^= 0x01;  /* inside the header's RNG state */
    write_all(fx->path, buf, n);
    assert_refused(fx->path, "checksum mismatch");
    free(buf);
}

static void test_foreign_file_refused(void **state) {
    fixture *fx = *state;
    const char *text = "This is a plain text file, certainly not a checkpoint of any kind.\n";
    write_all(fx->path, (const uint8_t *)text, strlen(text));
    assert_refused(fx->path, "not a randyGPT checkpoint (bad magic)");
}

static void test_other_version_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = read_all(fx->path, &n);
    uint32_t v = RG_CKPT_VERSION + 1;
    memcpy(buf + 8, &v, 4);
    write_all(fx->path, buf, n);
    char want[128];
    snprintf(want, sizeof want, "format version %u; this build reads version %u", v, RG_CKPT_VERSION);
    assert_refused(fx->path, want);
    free(buf);
}

static void test_inconsistent_sizes_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = read_all(fx->path, &n);
    int32_t nh = 3;  /* C = 16 is not a multiple of 3 heads */
    memcpy(buf + 8 + 4 + 12, &nh, 4);
    write_all(fx->path, buf, n);
    assert_refused(fx->path, "inconsistent sizes");
    nh = 2;
    memcpy(buf + 8 + 4 + 12, &nh, 4);
    int32_t C = 32;  /* a valid config, but not the size of the data that follows */
    memcpy(buf + 8 + 4 + 8, &C, 4);
    write_all(fx->path, buf, n);
    assert_refused(fx->path, "truncated");
    free(buf);
}

static void test_failed_save_keeps_previous(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n0;
    uint8_t *before = read_all(fx->path, &n0);

    char err[512] = "";
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir-%ld/x.ckpt", RG_TEST_TMPDIR, (long)getpid());
    assert_int_equal(rg_checkpoint_save(missing, &fx->model, &fx->vocab, &fx->st, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot save checkpoint"));
    assert_non_null(strstr(err, "No such file"));

    /* a save at the same path that cannot create its temporary file leaves the old file alone */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", fx->path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    fx->model.params_memory[0] += 1.0f;
    fx->st.step = 18;
    int rc = rg_checkpoint_save(fx->path, &fx->model, &fx->vocab, &fx->st, err, sizeof err);
    rmdir(tmp);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "cannot save checkpoint"));
    size_t n1;
    uint8_t *after = read_all(fx->path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* and the old file still loads with the old step */
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    assert_int_equal(rg_checkpoint_load(fx->path, &m, &v, &st, err, sizeof err), 0);
    assert_int_equal(st.step, 17);
    rg_model_free(&m);
    fx->model.params_memory[0] -= 1.0f;
    fx->st.step = 17;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inconsistent_sizes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_previous, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
