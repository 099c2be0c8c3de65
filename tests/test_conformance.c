/* Conformance suite: every bundled backend passes it at 1 and 2 threads, and deliberately wrong
 * kernel tables are caught by it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "built.h"

#include "commands.h"
#include "randygpt/conformance.h"
#include "randygpt/loader.h"
#include "randygpt/ops.h"

/* The op checks here run at the quick level (the tiny preset and a few stress shapes, threads 1
 * and 3), as CI runs every bundled backend under the sanitizers; the default level is for
 * `randygpt check`. */
#define TEST_PRESETS "tiny"

typedef struct tally {
    int checks, failed;
    int failed_other;         /* failures of rows whose op is not `expect_op` */
    const char *expect_op;    /* NULL: every failure is unexpected */
    int native_rows[RG_OP_COUNT][2]; /* per op: rows reported not native [0] and native [1] */
} tally;

static void on_result(void *user, const rg_conf_result *r) {
    tally *t = user;
    t->checks++;
    if (!r->pass) {
        t->failed++;
        if (!t->expect_op || strcmp(r->name, t->expect_op) != 0) t->failed_other++;
        if (!t->expect_op) rg_conf_print_result(stderr, r); /* an unexpected failure: show it */
    }
    for (int op = 0; op < RG_OP_COUNT; op++)
        if (r->native >= 0 && !strcmp(r->name, rg_op_name((rg_op_kind)op)))
            t->native_rows[op][r->native]++;
}

/* ---- every bundled backend ---- */

typedef struct backend_case {
    const char *name;
    int threads;
    const char *kernels; /* NULL, or the kernels= option of the rg_parallel backends */
} backend_case;

/* 1 when this CPU can run the rg_parallel matmul kernel set k (see rg_par_matmul.c). */
static int cpu_runs_kernels(const char *k) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!strcmp(k, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(k, "avx512") || !strcmp(k, "zen4"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    return 1;
#else
    return !strcmp(k, "generic");
#endif
}

static void test_backend(void **state) {
    const backend_case *bc = *state;
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s.so", RG_TEST_PLUGIN_DIR, bc->name);
    RG_SKIP_UNLESS_BUILT(bc->name);
    struct stat st;
    if (stat(path, &st) != 0) fail_msg("bundled backend %s was not built: %s is missing", bc->name, path);

    rg_plugin p;
    if (rg_plugin_open(&p, path, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    rg_conf_options opt = rg_conf_default_options();
    opt.backend.num_threads = bc->threads;
    rg_option kernels = {"kernels", bc->kernels};
    if (bc->kernels) {
        if (!cpu_runs_kernels(bc->kernels)) {
            rg_plugin_close(&p);
            /* create would refuse, as it must */
            print_message("skipped: this CPU lacks the instructions of kernel set %s\n", bc->kernels);
            skip();
        }
        opt.backend.num_options = 1;
        opt.backend.options = &kernels;
    }
    opt.presets = TEST_PRESETS;
    opt.level = RG_CONF_QUICK;
    tally t;
    memset(&t, 0, sizeof t);
    rg_conf_report rep = {on_result, NULL, &t};
    int failed = rg_conformance_run(p.table, &opt, &rep, err, sizeof err);
    rg_plugin_close(&p);
    if (failed < 0) fail_msg("%s at %d threads: %s", bc->name, bc->threads, err);
    assert_int_equal(failed, t.failed);
    assert_int_equal(failed, 0);
    /* every op kind at the tiny preset and the stress shapes, plus the step and train checks */
    assert_true(t.checks > 5 * RG_OP_COUNT + 10);
}

/* ---- wrong tables: the suite must catch each ---- */

/* matmul_forward with 1e-3 added to the last output element. */
static void bad_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp,
                               const float *weight, int N, int C, int OC) {
    rg_ref_matmul_forward(ctx, out, inp, weight, N, C, OC);
    out[(size_t)N * OC - 1] += 1e-3f;
}

/* Adds what x held before an op (saved in before, n floats) back into x: turns an overwritten
 * output into an accumulated one. Frees before. */
static void add_back(float *x, float *before, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += before[i];
    free(before);
}

static float *saved(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* Activation gradients that accumulate instead of overwriting (the contract of ABI version 1). */
static void accumulating_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight,
                                         const float *dout, const float *inp, const float *weight,
                                         int N, int C, int OC) {
    float *before = saved(dinp, (size_t)N * C);
    rg_ref_matmul_backward(ctx, dinp, dweight, dout, inp, weight, N, C, OC);
    add_back(dinp, before, (size_t)N * C);
}

static void accumulating_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                                            const float *qkv, const float *stats, int B, int T,
                                            int C, int NH) {
    float *before = saved(dqkv, (size_t)B * T * 3 * C);
    rg_ref_attention_backward(ctx, dqkv, dout, qkv, stats, B, T, C, NH);
    add_back(dqkv, before, (size_t)B * T * 3 * C);
}

static void accumulating_sqrelu_backward(rg_backend_ctx *ctx, float *dinp, const float *dout,
                                         const float *out, size_t n) {
    float *before = saved(dinp, n);
    rg_ref_sqrelu_backward(ctx, dinp, dout, out, n);
    add_back(dinp, before, n);
}

static void accumulating_crossentropy_backward(rg_backend_ctx *ctx, float *dlogits,
                                               const float *probs, const int32_t *targets, int N,
                                               int V, float dloss) {
    float *before = saved(dlogits, (size_t)N * V);
    rg_ref_crossentropy_backward(ctx, dlogits, probs, targets, N, V, dloss);
    add_back(dlogits, before, (size_t)N * V);
}

/* Gradients that overwrite instead of accumulating: dweight, dwte and dwpe, rmsnorm's dinp. */
static void overwriting_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight,
                                        const float *dout, const float *inp, const float *weight,
                                        int N, int C, int OC) {
    memset(dweight, 0, (size_t)OC * C * sizeof(float));
    rg_ref_matmul_backward(ctx, dinp, dweight, dout, inp, weight, N, C, OC);
}

static void overwriting_embedding_backward(rg_backend_ctx *ctx, float *dwte, float *dwpe,
                                           const float *dout, const int32_t *tokens, int B, int T,
                                           int C) {
    int V = 0;
    for (int i = 0; i < B * T; i++) V = tokens[i] >= V ? tokens[i] + 1 : V;
    memset(dwte, 0, (size_t)V * C * sizeof(float));
    memset(dwpe, 0, (size_t)T * C * sizeof(float));
    rg_ref_embedding_backward(ctx, dwte, dwpe, dout, tokens, B, T, C);
}

static void overwriting_rmsnorm_backward(rg_backend_ctx *ctx, float *dinp, const float *dout,
                                         const float *inp, const float *rstd, int N, int C) {
    memset(dinp, 0, (size_t)N * C * sizeof(float));
    rg_ref_rmsnorm_backward(ctx, dinp, dout, inp, rstd, N, C);
}

/* attention_forward that saves each row's sum instead of its reciprocal. */
static void bad_attention_forward(rg_backend_ctx *ctx, float *out, float *stats, const float *qkv,
                                  int B, int T, int C, int NH) {
    rg_ref_attention_forward(ctx, out, stats, qkv, B, T, C, NH);
    for (size_t row = 0; row < (size_t)B * NH * T; row++) {
        stats[row * 2 + 1] = 1.0f / stats[row * 2 + 1];
    }
}

/* embedding_backward that drops repeated tokens: a row of dwte gets only its first hit. */
static void bad_embedding_backward(rg_backend_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, int B, int T, int C) {
    int seen[256] = {0};
    for (int i = 0; i < B * T; i++) {
        const float *d = dout + (size_t)i * C;
        for (int c = 0; c < C; c++) dwpe[(size_t)(i % T) * C + c] += d[c];
        if (seen[tokens[i]]++) continue;
        for (int c = 0; c < C; c++) dwte[(size_t)tokens[i] * C + c] += d[c];
    }
}

/* Runs the op checks (tiny preset and odd shapes) on table; returns the tally. */
static tally run_ops(const rg_backend *table, const char *expect_op) {
    rg_conf_options opt = rg_conf_default_options();
    opt.presets = "tiny";
    opt.level = RG_CONF_QUICK;
    opt.model = 0;
    tally t;
    memset(&t, 0, sizeof t);
    t.expect_op = expect_op;
    rg_conf_report rep = {on_result, NULL, &t};
    char err[512];
    int failed = rg_conformance_run(table, &opt, &rep, err, sizeof err);
    if (failed < 0) fail_msg("%s", err);
    assert_int_equal(failed, t.failed);
    return t;
}

static void expect_caught(const rg_backend *table, const char *op) {
    tally t = run_ops(table, op);
    assert_true(t.failed > 0);       /* caught */
    assert_int_equal(t.failed_other, 0); /* and pinned on the right op */
}

/* The reference table with op `member` replaced by fn must fail on that op (an op's name in the
 * results is its member's name). */
#define EXPECT_CAUGHT(member, fn)                  \
    do {                                           \
        rg_backend bad_ = rg_reference_backend;    \
        bad_.member = fn;                          \
        expect_caught(&bad_, #member);             \
    } while (0)

static void test_wrong_matmul_forward_caught(void **state) {
    (void)state;
    EXPECT_CAUGHT(matmul_forward, bad_matmul_forward);
}

/* An activation gradient that accumulates instead of overwriting fails, for each op that writes
 * one. */
static void test_accumulating_activation_gradient_caught(void **state) {
    (void)state;
    EXPECT_CAUGHT(matmul_backward, accumulating_matmul_backward);
    EXPECT_CAUGHT(attention_backward, accumulating_attention_backward);
    EXPECT_CAUGHT(sqrelu_backward, accumulating_sqrelu_backward);
    EXPECT_CAUGHT(crossentropy_backward, accumulating_crossentropy_backward);
}

/* A gradient that must accumulate but is overwritten fails: weight gradients, and rmsnorm's dinp
 * (the residual stream's gradient). */
static void test_overwriting_accumulated_gradient_caught(void **state) {
    (void)state;
    EXPECT_CAUGHT(matmul_backward, overwriting_matmul_backward);
    EXPECT_CAUGHT(embedding_backward, overwriting_embedding_backward);
    EXPECT_CAUGHT(rmsnorm_backward, overwriting_rmsnorm_backward);
}

static void test_unwritten_mask_caught(void **state) {
    (void)state;
    EXPECT_CAUGHT(attention_forward, bad_attention_forward);
}

static void test_colliding_rows_caught(void **state) {
    (void)state;
    EXPECT_CAUGHT(embedding_backward, bad_embedding_backward);
}

/* crossentropy_backward that ignores dloss (uses 1 instead of 1/N). */
static void bad_crossentropy_backward(rg_backend_ctx *ctx, float *dlogits, const float *probs,
                                      const int32_t *targets, int N, int V, float dloss) {
    rg_ref_crossentropy_backward(ctx, dlogits, probs, targets, N, V, 1.0f);
}

/* The model checks alone catch a wrong kernel: every gradient and the training drift. */
static void test_wrong_kernel_fails_model_checks(void **state) {
    (void)state;
    rg_backend bad = rg_reference_backend;
    bad.crossentropy_backward = bad_crossentropy_backward;
    rg_conf_options opt = rg_conf_default_options();
    opt.ops = 0;
    tally t;
    memset(&t, 0, sizeof t);
    t.expect_op = "model";
    rg_conf_report rep = {on_result, NULL, &t};
    char err[512];
    int failed = rg_conformance_run(&bad, &opt, &rep, err, sizeof err);
    if (failed < 0) fail_msg("%s", err);
    /* the 7 gradients, their norm, the 7 parameter tensors after AdamW and the tracked losses;
     * the loss itself is computed right */
    assert_int_equal(failed, 16);
    assert_int_equal(t.failed_other, 0);
}

/* Optional ops left NULL run the reference and are reported as not native, and still pass. */
static void test_fallback_reported_not_native(void **state) {
    (void)state;
    rg_backend partial = rg_reference_backend;
    partial.rmsnorm_forward = NULL;
    partial.sqrelu_backward = NULL;
    partial.sum_squares = NULL;
    tally t = run_ops(&partial, NULL);
    assert_int_equal(t.failed, 0);
    for (int op = 0; op < RG_OP_COUNT; op++) {
        int fallback = op == RG_OP_RMSNORM_FORWARD || op == RG_OP_SQRELU_BACKWARD ||
                       op == RG_OP_SUM_SQUARES;
        assert_true(t.native_rows[op][fallback ? 0 : 1] > 0); /* every op kind was checked */
        assert_int_equal(t.native_rows[op][fallback ? 1 : 0], 0);
    }
}

static void test_unknown_preset_refused(void **state) {
    (void)state;
    rg_conf_options opt = rg_conf_default_options();
    opt.presets = "tiny,huge";
    char err[512] = "";
    assert_int_equal(rg_conformance_run(&rg_reference_backend, &opt, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "'huge'"));
}

/* ---- the command ---- */

static int run_check(int argc, const char **argv) { return rg_cmd_check(argc, (char **)argv); }

static void test_check_command_exit_codes(void **state) {
    (void)state;
    const char *no_plugin[] = {"check"};
    assert_int_equal(run_check(1, no_plugin), 2);
    const char *bad_preset[] = {"check", "single", "--preset", "huge"};
    assert_int_equal(run_check(4, bad_preset), 2);
    const char *bad_threads[] = {"check", "single", "--threads", "0"};
    assert_int_equal(run_check(4, bad_threads), 2);
    const char *bad_flag[] = {"check", "single", "--frobnicate"};
    assert_int_equal(run_check(3, bad_flag), 2);
    const char *missing[] = {"check", RG_TEST_PLUGIN_DIR "/no-such-backend.so"};
    assert_int_equal(run_check(2, missing), 1);
    const char *no_replicas[] = {"check", "single", "--replicas", "0"};
    assert_int_equal(run_check(4, no_replicas), 2);
    /* 2 threads do not split over 4 replicas: a usage error before any check runs */
    const char *bad_split[] = {"check", "openmp", "--threads", "2", "--replicas", "4",
                               "--backend-dir", RG_TEST_PLUGIN_DIR};
    assert_int_equal(run_check(8, bad_split), 2);
    const char *help[] = {"check", "--help"};
    assert_int_equal(run_check(2, help), 0);
}

/* A whole `check` run of a bundled backend, found by name, passes with exit status 0, the model
 * checks also through 2 replicas. */
static void test_check_command_passes(void **state) {
    (void)state;
    const char *argv[] = {"check", "openmp", "--quick", "--threads", "2", "--replicas", "2",
                          "--backend-dir", RG_TEST_PLUGIN_DIR};
    assert_int_equal(run_check(9, argv), 0);
}

/* An optional argument is a cmocka test filter, e.g. 'conformance_pthreads*' (CI runs that one under
 * ThreadSanitizer). */
int main(int argc, char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    static const backend_case cases[] = {
        {"single", 1, NULL},   {"openmp", 1, NULL},   {"openmp", 2, NULL},
        {"pthreads", 1, NULL}, {"pthreads", 2, NULL}, {"openblas", 1, NULL},
        {"openblas", 2, NULL}, {"blis", 1, NULL},     {"blis", 2, NULL},
        /* every matmul kernel set that this CPU runs, forced (auto above picks only one) */
        {"openmp", 2, "avx512"}, {"openmp", 2, "zen4"}, {"pthreads", 2, "avx2"},
        {"openmp", 1, "avx2"}, {"pthreads", 2, "generic"},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_wrong_matmul_forward_caught),
        cmocka_unit_test(test_accumulating_activation_gradient_caught),
        cmocka_unit_test(test_overwriting_accumulated_gradient_caught),
        cmocka_unit_test(test_unwritten_mask_caught),
        cmocka_unit_test(test_colliding_rows_caught),
        cmocka_unit_test(test_wrong_kernel_fails_model_checks),
        cmocka_unit_test(test_fallback_reported_not_native),
        cmocka_unit_test(test_unknown_preset_refused),
        cmocka_unit_test(test_check_command_exit_codes),
        cmocka_unit_test(test_check_command_passes),
    };
    enum { NFIXED = sizeof fixed / sizeof fixed[0] };
    /* One test per (backend, threads), named after both, then the fixed ones. */
    static char names[NCASES][64];
    struct CMUnitTest tests[NCASES + NFIXED];
    for (int i = 0; i < NCASES; i++) {
        snprintf(names[i], sizeof names[i], "conformance_%s_%d_thread%s%s%s", cases[i].name,
                 cases[i].threads, cases[i].threads == 1 ? "" : "s", cases[i].kernels ? "_" : "",
                 cases[i].kernels ? cases[i].kernels : "");
        tests[i] = (struct CMUnitTest){names[i], test_backend, NULL, NULL, (void *)&cases[i]};
    }
    for (int i = 0; i < NFIXED; i++) tests[NCASES + i] = fixed[i];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
