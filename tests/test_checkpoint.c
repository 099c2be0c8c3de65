/* Tests of checkpoints: an exact round trip, the refusal of damaged or foreign files with one clear
 * line each, and saves that fail without touching the previous checkpoint. */
#define _GNU_SOURCE /* vasprintf, popen (run_support.h) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "randygpt/checkpoint.h"
#include "run_support.h"

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
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    write_bytes(fx->path, buf, n / 2);
    assert_refused(fx->path, "truncated");
    write_bytes(fx->path, buf, n - 1);  /* only the last checksum byte missing */
    assert_refused(fx->path, "truncated");
    write_bytes(fx->path, buf, 5);
    assert_refused(fx->path, "truncated");
    write_bytes(fx->path, buf, 0);
    assert_refused(fx->path, "truncated");
    free(buf);
}

static void test_bit_flip_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    buf[n / 2] ^= 0x10;  /* inside the weights and moments */
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "checksum mismatch");
    buf[n / 2] ^= 0x10;
    buf[110] ^= 0x01;  /* inside the header's RNG state */
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "checksum mismatch");
    free(buf);
}

static void test_foreign_file_refused(void **state) {
    fixture *fx = *state;
    const char *text = "This is a plain text file, certainly not a checkpoint of any kind.\n";
    write_bytes(fx->path, (const uint8_t *)text, strlen(text));
    assert_refused(fx->path, "not a randyGPT checkpoint (bad magic)");
}

static void test_other_version_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    uint32_t v = RG_CKPT_VERSION + 1;
    memcpy(buf + 8, &v, 4);
    write_bytes(fx->path, buf, n);
    char want[128];
    snprintf(want, sizeof want, "format version %u; this build reads version %u", v, RG_CKPT_VERSION);
    assert_refused(fx->path, want);
    free(buf);
}

static void test_inconsistent_sizes_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n;
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    int32_t nh = 3;  /* C = 16 is not a multiple of 3 heads */
    memcpy(buf + 8 + 4 + 12, &nh, 4);
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "inconsistent sizes");
    nh = 2;
    memcpy(buf + 8 + 4 + 12, &nh, 4);
    int32_t C = 32;  /* a valid config, but not the size of the data that follows */
    memcpy(buf + 8 + 4 + 8, &C, 4);
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "truncated");
    free(buf);
}

static void test_failed_save_keeps_previous(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n0;
    uint8_t *before = (uint8_t *)read_text_n(fx->path, &n0);
    assert_non_null(before);

    char err[512] = "";
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir-%ld/x.ckpt", RG_TEST_TMPDIR, (long)getpid());
    assert_int_equal(rg_checkpoint_save(missing, &fx->model, &fx->vocab, &fx->st, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot be written: folder"));
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
    uint8_t *after = (uint8_t *)read_text_n(fx->path, &n1);
    assert_non_null(after);
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

/* ---- hostile headers: fields patched, checksum recomputed so only the field checks stand ---- */

/* Header offsets (docs/checkpoint-format.md). */
enum { OFF_V = 12, OFF_MAXT = 16, OFF_C = 20, OFF_NH = 24, OFF_L = 28, OFF_B = 48, OFF_LR = 60,
       OFF_WARMUP = 68, OFF_BETA2 = 76, OFF_EPS = 80, OFF_STEP = 100, OFF_ADAM_T = 124 };

static void put32(uint8_t *buf, size_t off, const void *v) { memcpy(buf + off, v, 4); }

/* Rewrites the trailing checksum of a checkpoint image of n bytes. */
static void reseal(uint8_t *buf, size_t n) {
    uint64_t h = rg_fnv1a64(RG_FNV1A64_INIT, buf, n - 8);
    memcpy(buf + n - 8, &h, 8);
}

/* The saved checkpoint with one 4-byte field at off set to *v and a correct checksum: refused with
 * want, and the load does not crash or allocate from the bad value. */
static void assert_field_refused(fixture *fx, size_t off, const void *v, const char *want) {
    save_ok(fx);
    size_t n;
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    put32(buf, off, v);
    reseal(buf, n);
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, want);
    free(buf);
}

/* The crafted header of the report: V=1, maxT=262143, C=65536, L=89478485. The bytes of its
 * weights and moments (12 x the parameter count) wrap around 2^64 to 768 KiB; the file is built with
 * exactly the size that wrapped sum implies and a correct checksum, so only the bounds and the
 * overflow checks can refuse it (the old reader allocated 256 KiB and wrote far past it). */
static void test_wrapping_header_refused(void **state) {
    fixture *fx = *state;
    save_ok(fx);
    size_t n0;
    uint8_t *orig = (uint8_t *)read_text_n(fx->path, &n0);
    assert_non_null(orig);
    const uint64_t V = 1, maxT = 262143, C = 65536, L = 89478485;
    uint64_t np = 2 * V * C + maxT * C + 12 * L * C * C;
    uint64_t body = 12 * np; /* unsigned: wraps, as the old reader's size check did */
    assert_true(body < (1u << 20)); /* it really wraps to a small size */
    size_t n = 128 + (size_t)V + 8 + (size_t)body + 8;
    uint8_t *buf = calloc(1, n);
    assert_non_null(buf);
    memcpy(buf, orig, 128);
    int32_t f[5] = {(int32_t)V, (int32_t)maxT, (int32_t)C, 1, (int32_t)L};
    for (int i = 0; i < 5; i++) put32(buf, OFF_V + 4 * (size_t)i, &f[i]);
    buf[128] = 'a';
    memcpy(buf + 128 + V, &np, 8);
    reseal(buf, n);
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "over its limit");
    free(buf);
    free(orig);
}

static void test_size_fields_bounded(void **state) {
    fixture *fx = *state;
    int32_t big = 1 << 30, neg = -1;
    assert_field_refused(fx, OFF_MAXT, &big, "over its limit");
    assert_field_refused(fx, OFF_C, &big, "over its limit");
    assert_field_refused(fx, OFF_L, &big, "over its limit");
    assert_field_refused(fx, OFF_NH, &neg, "must be positive");
    int32_t v257 = 257;
    assert_field_refused(fx, OFF_V, &v257, "over its limit");
    assert_field_refused(fx, OFF_B, &big, "bad training state");
}

/* adam_t = INT_MAX and warmup = INT_MIN were signed overflows on resume; lr = -1 was accepted. */
static void test_optimizer_fields_validated(void **state) {
    fixture *fx = *state;
    int32_t imax = INT32_MAX, imin = INT32_MIN;
    assert_field_refused(fx, OFF_ADAM_T, &imax, "AdamW step");
    assert_field_refused(fx, OFF_WARMUP, &imin, "warmup_iters out of range");
    float lr = -1.0f, one = 1.0f, zero = 0.0f, nan = NAN;
    assert_field_refused(fx, OFF_LR, &lr, "lr must be in (0, 10]");
    assert_field_refused(fx, OFF_LR, &nan, "lr must be in (0, 10]");
    assert_field_refused(fx, OFF_BETA2, &one, "beta2 must be in [0, 1)");
    assert_field_refused(fx, OFF_EPS, &zero, "eps must be in (0, 1]");
    /* a step far beyond the schedule (int64) */
    save_ok(fx);
    size_t n;
    uint8_t *buf = (uint8_t *)read_text_n(fx->path, &n);
    assert_non_null(buf);
    int64_t step = INT64_MAX;
    memcpy(buf + OFF_STEP, &step, 8);
    reseal(buf, n);
    write_bytes(fx->path, buf, n);
    assert_refused(fx->path, "bad training state");
    free(buf);
}

/* A FIFO without a writer used to block the open forever. */
static void test_fifo_refused(void **state) {
    fixture *fx = *state;
    unlink(fx->path);
    assert_int_equal(mkfifo(fx->path, 0600), 0);
    alarm(10); /* a regression hangs: end it as a failure instead of at ctest's timeout */
    assert_refused(fx->path, "is a FIFO, not a regular file");
    assert_refused("/dev/zero", "is a character device, not a regular file");
    assert_refused(RG_TEST_TMPDIR, "is a directory, not a regular file");
    alarm(0);
}

/* A checkpoint is never written over a FIFO, a device, a directory or the corpus. */
static void test_save_refuses_non_regular(void **state) {
    fixture *fx = *state;
    char err[512] = "";
    unlink(fx->path);
    assert_int_equal(mkfifo(fx->path, 0600), 0);
    assert_int_equal(rg_checkpoint_save(fx->path, &fx->model, &fx->vocab, &fx->st, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a FIFO, not a regular file: refusing to replace it"));
    struct stat sb;
    assert_int_equal(lstat(fx->path, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode)); /* still the FIFO */
    unlink(fx->path);
    assert_int_equal(rg_checkpoint_save("/dev/null", &fx->model, &fx->vocab, &fx->st, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "is a character device"));
    assert_int_equal(rg_checkpoint_save(RG_TEST_TMPDIR, &fx->model, &fx->vocab, &fx->st, err,
                                        sizeof err), -1);
    assert_non_null(strstr(err, "is a directory"));

    /* the corpus, by its own name and through a hard link */
    char corpus[600], link_path[700];
    snprintf(corpus, sizeof corpus, "%s/corpus-%ld.txt", RG_TEST_TMPDIR, (long)getpid());
    snprintf(link_path, sizeof link_path, "%s.link", corpus);
    write_bytes(corpus, (const uint8_t *)"text\n", 5);
    unlink(link_path);
    assert_int_equal(link(corpus, link_path), 0);
    assert_int_equal(rg_checkpoint_check_path(link_path, corpus, err, sizeof err), -1);
    assert_non_null(strstr(err, "is the training corpus"));
    assert_int_equal(rg_checkpoint_check_path(corpus, corpus, err, sizeof err), -1);
    assert_int_equal(rg_checkpoint_check_path(fx->path, corpus, err, sizeof err), 0); /* absent */
    unlink(link_path);
    unlink(corpus);
}

/* A save killed before its rename leaves PATH.tmp.PID; the next save of PATH removes it when that
 * process is gone, and leaves a live process's file alone. */
static void test_stale_tmp_removed(void **state) {
    fixture *fx = *state;
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char stale[600], live[600];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", fx->path, (long)dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", fx->path, (long)getppid());
    write_bytes(stale, (const uint8_t *)"half a checkpoint", 17);
    write_bytes(live, (const uint8_t *)"a save in progress", 18);
    save_ok(fx);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    unlink(live);
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
        cmocka_unit_test_setup_teardown(test_wrapping_header_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_fields_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optimizer_fields_validated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_non_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_tmp_removed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
