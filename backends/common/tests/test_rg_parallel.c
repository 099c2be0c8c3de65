/* Tests of the shared parallel code: the drivers' chunking and hand-off (many quick jobs, jobs after
 * the workers went to sleep), kernels against the reference kernels, and bit-identical results
 * for one thread count and across thread counts. Under ThreadSanitizer only the pthread pool runs:
 * the OpenMP runtime is not instrumented, so TSan cannot see its barriers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "randygpt/ops.h"
#include "randygpt/rng.h"
#include "rg_par_internal.h" /* the adaptive thread count's policy */
#include "rg_parallel.h"

#if defined(__SANITIZE_THREAD__)
#define WITH_OPENMP 0
#else
#define WITH_OPENMP 1
#endif

struct rg_backend_ctx {
    rg_par_backend pb;
};

typedef enum driver { DRIVER_PTHREADS, DRIVER_OPENMP } driver;

static rg_backend_ctx *make_ctx(driver d, int threads) {
    char err[256] = "";
    rg_par *par = d == DRIVER_OPENMP ? rg_par_openmp_create(threads, err, sizeof err)
                                     : rg_par_pthreads_create(threads, err, sizeof err);
    if (!par) {
        fail_msg("driver: %s", err);
    }
    rg_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    assert_non_null(ctx);
    rg_par_backend_init(&ctx->pb, par);
    return ctx;
}

static void free_ctx(rg_backend_ctx *ctx) {
    rg_par_backend_release(&ctx->pb);
    free(ctx);
}

static int num_drivers(void) { return WITH_OPENMP ? 2 : 1; }

/* ---- drivers ---- */

typedef struct visit_args {
    int64_t n;
    int chunks;
    int *hits;       /* (n) times each item was run */
    int64_t *ends;   /* (chunks) end of the call that began at chunk i's start, -1 if none */
    int *tids;       /* (chunks) the thread that ran chunk i */
} visit_args;

static void visit(void *arg, int64_t begin, int64_t end, int tid) {
    visit_args *a = arg;
    for (int i = 0; i < a->chunks; i++) {
        if (a->n * i / a->chunks == begin) {
            a->ends[i] = end;
            a->tids[i] = tid;
        }
    }
    for (int64_t i = begin; i < end; i++) {
        a->hits[i]++;
    }
}

/* Every item runs exactly once, in as many chunks as the grain allows (min(max_chunks, n / grain),
 * at least 1), each [n*i/chunks, n*(i+1)/chunks), each on a valid thread. */
static void test_chunking(void **state) {
    const int64_t sizes[] = {1, 2, 5, 64, 1000, 4099};
    const int64_t grains[] = {1, 3, 100, 5000};
    for (int d = 0; d < num_drivers(); d++) {
        for (int threads = 1; threads <= 4; threads++) {
            rg_backend_ctx *ctx = make_ctx((driver)d, threads);
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                for (size_t gi = 0; gi < sizeof grains / sizeof *grains; gi++) {
                    int64_t n = sizes[si], grain = grains[gi];
                    int max_chunks = ctx->pb.par->max_chunks;
                    assert_true(max_chunks >= threads);
                    int64_t chunks = n / grain < max_chunks ? n / grain : max_chunks;
                    chunks = chunks < 1 ? 1 : chunks;
                    visit_args a = {n, (int)chunks, calloc(n, sizeof(int)),
                                    malloc(chunks * sizeof(int64_t)), malloc(chunks * sizeof(int))};
                    for (int i = 0; i < chunks; i++) {
                        a.ends[i] = -1;
                        a.tids[i] = -1;
                    }
                    rg_par_for(ctx->pb.par, n, grain, visit, &a);
                    for (int64_t i = 0; i < n; i++) {
                        assert_int_equal(a.hits[i], 1);
                    }
                    for (int i = 0; i < chunks; i++) {
                        assert_int_equal(a.ends[i], n * (i + 1) / chunks);
                        assert_true(a.tids[i] >= 0 && a.tids[i] < threads);
                    }
                    free(a.hits);
                    free(a.ends);
                    free(a.tids);
                }
            }
            free_ctx(ctx);
        }
    }
}

typedef struct count_args {
    long *per_tid; /* (threads) slots, one per thread: no two threads write one slot at once */
} count_args;

static void count(void *arg, int64_t begin, int64_t end, int tid) {
    count_args *a = arg;
    a->per_tid[tid] += end - begin;
}

/* Many jobs back to back, each tiny: every job is complete when run returns (the caller reads what
 * the workers wrote without any other synchronisation), and the pool survives the rapid hand-offs. */
static void test_many_quick_jobs(void **state) {
    for (int d = 0; d < num_drivers(); d++) {
        for (int threads = 2; threads <= 3; threads++) {
            rg_backend_ctx *ctx = make_ctx((driver)d, threads);
            long slots[3] = {0};
            count_args a = {slots};
            for (int job = 0; job < 5000; job++) {
                int64_t n = 1 + job % 7;
                rg_par_for(ctx->pb.par, n, 1, count, &a);
                long total = slots[0] + slots[1] + slots[2];
                slots[0] = slots[1] = slots[2] = 0;
                assert_int_equal(total, n);
            }
            free_ctx(ctx);
        }
    }
}

/* Jobs after the workers have gone to sleep (pauses longer than the spin) still run, and destroy
 * joins sleeping workers. */
static void test_jobs_after_sleep(void **state) {
    rg_backend_ctx *ctx = make_ctx(DRIVER_PTHREADS, 2);
    long slots[2] = {0};
    count_args a = {slots};
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int job = 0; job < 5; job++) {
        nanosleep(&pause, NULL);
        rg_par_for(ctx->pb.par, 10, 1, count, &a);
        assert_int_equal(slots[0] + slots[1], 10 * (job + 1));
    }
    nanosleep(&pause, NULL);
    free_ctx(ctx);
}

/* ---- the adaptive thread count: its policy fed made-up times (nothing here is timed) ---- */

/* calls calls spread over nsites sites (keys count, 1000 + i, 8), as rg_par_for makes them, a
 * call taking alone_s alone and all_s on every thread; returns how many ran alone. */
static int adapt_calls(rg_par_adapt *a, int nsites, int calls, double alone_s, double all_s) {
    int alone = 0;
    for (int i = 0; i < calls; i++) {
        rg_par_site *s = rg_par_adapt_site(a, count, 1000 + i % nsites, 8);
        alone += a->mode == RG_PAR_ALONE;
        rg_par_adapt_record(a, s, a->mode == RG_PAR_ALONE ? alone_s : all_s);
    }
    return alone;
}

/* calls until a->choice is want (at most limit); returns how many it took */
static int adapt_until(rg_par_adapt *a, int want, int limit, double alone_s, double all_s) {
    int calls = 0;
    while (a->choice != want && calls < limit) {
        adapt_calls(a, 4, 1, alone_s, all_s);
        calls++;
    }
    return calls;
}

/* A quiet machine keeps every thread and probes under 1% of the calls; contention (every thread
 * slower than one) switches the pool to the caller alone within two windows; its end switches it
 * back at the next probe; one slow window alone, or times within the margin, change nothing. */
static void test_adapt_policy(void **state) {
    rg_par_adapt *a = malloc(sizeof *a);
    assert_non_null(a);
    rg_par_adapt_init(a);
    const int calls = 40000;
    int alone = adapt_calls(a, 4, calls, 1.8, 1.0);
    assert_int_equal(a->choice, RG_PAR_ALL);
    assert_true(alone > 0 && alone * 100 < calls);

    /* contention: every thread takes 3, alone 1.8 */
    assert_true(adapt_until(a, RG_PAR_ALONE, calls, 1.8, 3.0) <=
                2 * RG_PAR_ADAPT_WINDOW + RG_PAR_ADAPT_PROBE);
    assert_int_equal(a->choice, RG_PAR_ALONE);
    int all = calls - adapt_calls(a, 4, calls, 1.8, 3.0);
    assert_int_equal(a->choice, RG_PAR_ALONE);
    assert_true(all > 0 && all * 100 < calls);

    /* quiet again: back at the next probe at the latest */
    int limit = (RG_PAR_ADAPT_MAX_PROBE + 1) * RG_PAR_ADAPT_WINDOW + RG_PAR_ADAPT_PROBE;
    assert_true(adapt_until(a, RG_PAR_ALL, 2 * limit, 1.8, 1.0) <= limit);
    assert_int_equal(a->choice, RG_PAR_ALL);

    /* one slow window of the choice (a neighbour's burst) is not a switch; a second in a row
     * brings a probe forward, and the probe, as slow in that mode as before, switches */
    while (a->calls != 0 || a->mode != a->choice) adapt_calls(a, 4, 1, 1.8, 1.0);
    adapt_calls(a, 4, RG_PAR_ADAPT_WINDOW, 1.8, 3.0);
    assert_int_equal(a->choice, RG_PAR_ALL);
    adapt_calls(a, 4, RG_PAR_ADAPT_WINDOW, 1.8, 1.0);
    assert_int_equal(a->choice, RG_PAR_ALL);
    while (a->calls != 0 || a->mode != a->choice) adapt_calls(a, 4, 1, 1.8, 1.0);
    adapt_calls(a, 4, 2 * RG_PAR_ADAPT_WINDOW, 1.8, 3.0);
    assert_int_equal(a->choice, RG_PAR_ALL);
    assert_int_equal(a->mode, RG_PAR_ALONE); /* the probe, brought forward */
    adapt_calls(a, 4, RG_PAR_ADAPT_PROBE, 1.8, 3.0);
    assert_int_equal(a->choice, RG_PAR_ALONE);

    /* a stale estimate does not switch: alone, both modes then slow down (the machine got
     * busier), so windows alone lose to the old estimate of every thread, but the probe they
     * bring forward measures every thread slower still */
    while (a->calls != 0 || a->mode != a->choice) adapt_calls(a, 4, 1, 1.8, 3.0);
    assert_int_equal(a->choice, RG_PAR_ALONE);
    adapt_calls(a, 4, 2 * RG_PAR_ADAPT_WINDOW + RG_PAR_ADAPT_PROBE, 4.0, 6.0);
    assert_int_equal(a->choice, RG_PAR_ALONE);

    /* within the margin: alone 5% faster is not worth a switch */
    rg_par_adapt_init(a);
    adapt_calls(a, 4, calls, 0.95, 1.0);
    assert_int_equal(a->choice, RG_PAR_ALL);
    free(a);
}

/* describe counts the windows each mode ran: on a quiet machine (every thread faster), the
 * windows alone are the probes (RG_PAR_ADAPT_PROBE calls each), the others RG_PAR_ADAPT_WINDOW
 * calls; under contention most windows run alone. Before any window ends it gives no count,
 * and without the policy it says fixed. */
static void test_adapt_describe_counts(void **state) {
    rg_par_adapt *a = malloc(sizeof *a);
    assert_non_null(a);
    rg_par_adapt_init(a);
    rg_par par = {.num_threads = 2, .adapt = a};
    char want[160], got[160];
    rg_par_adapt_describe(&par, got, sizeof got);
    assert_string_equal(got, "thread count adaptive (every thread or one, per window of ops)");
    int calls = 40000, alone = adapt_calls(a, 4, calls, 1.8, 1.0);
    while (a->calls != 0) { /* to the end of a window */
        alone += adapt_calls(a, 4, 1, 1.8, 1.0);
        calls++;
    }
    int n_alone = alone / RG_PAR_ADAPT_PROBE, n_all = (calls - alone) / RG_PAR_ADAPT_WINDOW;
    assert_int_equal(n_alone * RG_PAR_ADAPT_PROBE, alone);
    snprintf(want, sizeof want, "one thread in %d of %d windows so far)", n_alone,
             n_alone + n_all);
    rg_par_adapt_describe(&par, got, sizeof got);
    assert_non_null(strstr(got, want));

    adapt_calls(a, 4, 20 * RG_PAR_ADAPT_WINDOW, 1.8, 3.0); /* contention */
    long long n1 = 0, m1 = 0;
    rg_par_adapt_describe(&par, got, sizeof got);
    assert_int_equal(sscanf(strstr(got, "one thread in "), "one thread in %lld of %lld", &n1, &m1),
                     2);
    assert_true(n1 - n_alone > (m1 - n_alone - n_all) / 2); /* most of the new windows alone */

    par.adapt = NULL;
    rg_par_adapt_describe(&par, got, sizeof got);
    assert_string_equal(got, "thread count fixed (adapt=off)");
    free(a);
}

/* The first call after a change of mode (the team cold) changes no estimate and no choice: a
 * probe whose first call took 1000x does not lose for it. */
static void test_adapt_cold_call(void **state) {
    rg_par_adapt *a = malloc(sizeof *a);
    assert_non_null(a);
    rg_par_adapt_init(a);
    int limit = 10 * RG_PAR_ADAPT_WINDOW;
    while (a->mode == RG_PAR_ALL && limit-- > 0) { /* to the first probe alone */
        adapt_calls(a, 4, 1, 1.0, 1.8);
    }
    assert_int_equal(a->mode, RG_PAR_ALONE);
    assert_int_equal(a->cold, 1);
    rg_par_site *s = rg_par_adapt_site(a, count, 1000, 8);
    double before = s->est[RG_PAR_ALONE];
    rg_par_adapt_record(a, s, 1000.0);
    assert_true(s->est[RG_PAR_ALONE] == before);
    adapt_calls(a, 4, RG_PAR_ADAPT_PROBE - 1, 1.0, 1.8); /* the rest of the probe window */
    assert_int_equal(a->choice, RG_PAR_ALONE);
    free(a);
}

/* One site per (fn, n, nchunks): asked again, the same estimates; once every slot it may take
 * is held, a key that hashes to its slot starts afresh there. */
static void test_adapt_sites(void **state) {
    rg_par_adapt *a = malloc(sizeof *a);
    assert_non_null(a);
    rg_par_adapt_init(a);
    rg_par_site *s = rg_par_adapt_site(a, count, 1000, 8);
    adapt_calls(a, 1, 10, 1.0, 2.0);
    assert_true(s->est[RG_PAR_ALL] == 2.0);
    assert_ptr_equal(rg_par_adapt_site(a, count, 1000, 8), s);
    assert_true(s->est[RG_PAR_ALL] == 2.0);
    int64_t other = 1001;
    while (rg_par_adapt_site(a, count, other, 8) != s) {
        other++;
    }
    assert_int_equal(s->n, other);
    assert_true(s->est[RG_PAR_ALONE] == 0 && s->est[RG_PAR_ALL] == 0);
    assert_ptr_equal(rg_par_adapt_site(a, count, 1000, 8), s);
    assert_int_equal(s->n, 1000);
    free(a);
}

/* An op run alone by the policy has the same chunks, all on the caller; adapt off (and one
 * thread) runs every op on every thread without any state. */
static void test_adapt_alone_chunks(void **state) {
    const int64_t n = 1000;
    for (int d = 0; d < num_drivers(); d++) {
        for (int threads = 2; threads <= 3; threads++) {
            rg_backend_ctx *ctx = make_ctx((driver)d, threads);
            rg_par *par = ctx->pb.par;
            assert_non_null(par->adapt);
            int chunks = par->max_chunks;
            visit_args a = {n, chunks, calloc(n, sizeof(int)), malloc(chunks * sizeof(int64_t)),
                            malloc(chunks * sizeof(int))};
            par->adapt->choice = par->adapt->mode = RG_PAR_ALONE;
            rg_par_for(par, n, 1, visit, &a);
            assert_int_equal(par->adapt->calls, 1); /* the call went through the policy */
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(a.hits[i], 1);
            }
            for (int i = 0; i < chunks; i++) {
                assert_int_equal(a.ends[i], n * (i + 1) / chunks);
                assert_int_equal(a.tids[i], 0);
            }
            /* a composite op: the calls inside run alone and count as one, at its end */
            assert_int_equal(rg_par_composite_begin(par), 1);
            memset(a.hits, 0, n * sizeof(int));
            rg_par_for(par, n, 1, visit, &a);
            rg_par_for(par, n, 1, visit, &a);
            assert_int_equal(par->adapt->calls, 1);
            rg_par_composite_end(par, visit, n, 1);
            assert_int_equal(par->adapt->calls, 2);
            for (int i = 0; i < chunks; i++) {
                assert_int_equal(a.tids[i], 0);
            }
            par->adapt->choice = par->adapt->mode = RG_PAR_ALL;
            assert_int_equal(rg_par_composite_begin(par), threads);
            rg_par_composite_end(par, visit, n, 1);
            assert_int_equal(rg_par_set_adaptive(par, 0), 0);
            assert_null(par->adapt);
            memset(a.hits, 0, n * sizeof(int));
            rg_par_for(par, n, 1, visit, &a);
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(a.hits[i], 1);
            }
            free(a.hits);
            free(a.ends);
            free(a.tids);
            free_ctx(ctx);
        }
        rg_backend_ctx *one = make_ctx((driver)d, 1);
        assert_null(one->pb.par->adapt);
        free_ctx(one);
    }
}

static void test_config(void **state) {
    char err[256];
    rg_option opt = {"frobnicate", "1"};
    rg_backend_config cfg = {2, 1, &opt};
    assert_int_equal(rg_par_config_threads(&cfg, "openmp", err, sizeof err), -1);
    assert_string_equal(err, "unknown option 'frobnicate' for backend openmp");
    cfg = (rg_backend_config){0, 0, NULL};
    assert_int_equal(rg_par_config_threads(&cfg, "pthreads", err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 1 thread"));
    cfg.num_threads = 3;
    assert_int_equal(rg_par_config_threads(&cfg, "pthreads", err, sizeof err), 3);
    assert_null(rg_par_pthreads_create(0, err, sizeof err));

    /* kernels=NAME: a known set this CPU runs, auto (the CPU's choice: NULL), an unknown name */
    const rg_par_kernels *k = (const rg_par_kernels *)&cfg; /* any non-NULL: must be reset */
    opt = (rg_option){"kernels", "generic"};
    cfg = (rg_backend_config){2, 1, &opt};
    assert_int_equal(rg_par_config_kernels(&cfg, "openmp", &k, err, sizeof err), 2);
    assert_ptr_equal(k, rg_par_kernels_find("generic", err, sizeof err));
    opt.value = "auto";
    assert_int_equal(rg_par_config_kernels(&cfg, "openmp", &k, err, sizeof err), 2);
    assert_null(k);
    opt.value = "sse9";
    assert_int_equal(rg_par_config_kernels(&cfg, "openmp", &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown kernel set 'sse9'"));
    /* a backend without options still refuses kernels= */
    opt.value = "generic";
    assert_int_equal(rg_par_config_threads(&cfg, "pthreads", err, sizeof err), -1);
    assert_string_equal(err, "unknown option 'kernels' for backend pthreads");

    /* adapt=on|off: on when absent, accepted beside kernels=, refused with another value and by a
     * backend without options */
    rg_option two[2] = {{"adapt", "off"}, {"kernels", "generic"}};
    cfg = (rg_backend_config){2, 2, two};
    assert_int_equal(rg_par_config_kernels(&cfg, "openmp", &k, err, sizeof err), 2);
    assert_int_equal(rg_par_config_adapt(&cfg, "openmp", err, sizeof err), 0);
    two[0].value = "on";
    assert_int_equal(rg_par_config_adapt(&cfg, "openmp", err, sizeof err), 1);
    two[0].value = "maybe";
    assert_int_equal(rg_par_config_adapt(&cfg, "openmp", err, sizeof err), -1);
    assert_string_equal(err, "backend openmp: adapt must be on or off, not 'maybe'");
    cfg.num_options = 1;
    assert_int_equal(rg_par_config_threads(&cfg, "pthreads", err, sizeof err), -1);
    assert_string_equal(err, "unknown option 'adapt' for backend pthreads");
    cfg.num_options = 0;
    assert_int_equal(rg_par_config_adapt(&cfg, "openmp", err, sizeof err), 1);
}

/* ---- kernels against the reference ---- */

static rg_rng rng;

static float *random_floats(size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = rg_rng_uniform(&rng) * 2.0f - 1.0f;
    }
    return p;
}

static float *copy_floats(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    assert_non_null(p);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* n floats of garbage in [-9, 9), unlike random_floats' values: an output that starts as it on one
 * side and as random_floats on the other must be overwritten to compare equal. */
static float *garbage_floats(size_t n) {
    float *p = random_floats(n);
    for (size_t i = 0; i < n; i++) {
        p[i] *= 9.0f;
    }
    return p;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double m = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return m / (mb > 0.0 ? mb : 1.0);
}

/* The small preset's row lengths and widths (fewer rows: the blocking is the same, K over the KC
 * block in both directions), then edges of the tiles (1 row, sizes not multiples of the vector
 * width or of the blocks), with 1, 2 and 3 threads: all close to the reference, and every thread
 * count gives the same bits. The tolerance is that of the float reference itself, whose sums over
 * K in the thousands carry about 1e-6 of rounding. dinp starts as different garbage here and in
 * the reference (it is overwritten), dweight as the same values (it is accumulated). Every
 * kernel set that this CPU runs is checked. */
static const char *const kernel_sets[] = {"avx512", "zen4", "avx2", "generic"};

static void test_matmul(void **state) {
    const int shapes[][3] = {{600, 128, 384}, {520, 512, 128}, {2048, 128, 67}, {1, 1, 1},
                             {1, 700, 33},     {37, 19, 45},     {300, 257, 9},  {9, 3, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        size_t n_out = (size_t)N * OC, n_inp = (size_t)N * C, n_w = (size_t)OC * C;
        rg_rng_seed(&rng, 11 + s);
        float *inp = random_floats(n_inp), *w = random_floats(n_w), *dout = random_floats(n_out);
        float *dinp0 = random_floats(n_inp), *dw0 = random_floats(n_w);
        float *dinp_garbage = garbage_floats(n_inp);
        /* reference results side by side: out, dinp, dw */
        float *ref = malloc((n_out + n_inp + n_w) * sizeof(float));
        memcpy(ref + n_out, dinp0, n_inp * sizeof(float));
        memcpy(ref + n_out + n_inp, dw0, n_w * sizeof(float));
        rg_ref_matmul_forward(NULL, ref, inp, w, N, C, OC);
        rg_ref_matmul_backward(NULL, ref + n_out, ref + n_out + n_inp, dout, inp, w, N, C, OC);
        /* every kernel set this CPU runs; each is thread-count invariant on its own */
        for (int ks = 0; ks < (int)(sizeof kernel_sets / sizeof *kernel_sets); ks++) {
            char err[256];
            const rg_par_kernels *k = rg_par_kernels_find(kernel_sets[ks], err, sizeof err);
            if (!k) {
                continue; /* not in this build, or this CPU lacks its instructions */
            }
            float *first = NULL;
            for (int d = 0; d < num_drivers(); d++) {
                /* and at 2 and 3 threads with the adaptive count running alone, which blocks
                 * like one thread (rg_par_composite_begin): still the same bits */
                for (int run = 1; run <= 5; run++) {
                    int threads = run <= 3 ? run : run - 2, alone = run > 3;
                    rg_backend_ctx *ctx = make_ctx((driver)d, threads);
                    ctx->pb.kernels = k;
                    if (alone) {
                        ctx->pb.par->adapt->choice = ctx->pb.par->adapt->mode = RG_PAR_ALONE;
                    }
                    float *res = malloc((n_out + n_inp + n_w) * sizeof(float));
                    memcpy(res + n_out, dinp_garbage, n_inp * sizeof(float));
                    memcpy(res + n_out + n_inp, dw0, n_w * sizeof(float));
                    rg_par_op_matmul_forward(ctx, res, inp, w, N, C, OC);
                    rg_par_op_matmul_backward(ctx, res + n_out, res + n_out + n_inp, dout, inp, w,
                                              N, C, OC);
                    free_ctx(ctx);
                    double e1 = rel_err(res, ref, n_out);
                    double e2 = rel_err(res + n_out, ref + n_out, n_inp);
                    double e3 = rel_err(res + n_out + n_inp, ref + n_out + n_inp, n_w);
                    if (e1 > 5e-6 || e2 > 5e-6 || e3 > 5e-6) {
                        fail_msg("matmul %s N=%d C=%d OC=%d at %d threads%s: errors %.2e %.2e %.2e",
                                 kernel_sets[ks], N, C, OC, threads, alone ? " alone" : "", e1,
                                 e2, e3);
                    }
                    if (!first) {
                        first = res;
                        continue;
                    }
                    if (memcmp(res, first, (n_out + n_inp + n_w) * sizeof(float)) != 0) {
                        fail_msg("matmul %s N=%d C=%d OC=%d differs at %d threads%s",
                                 kernel_sets[ks], N, C, OC, threads, alone ? " alone" : "");
                    }
                    free(res);
                }
            }
            free(first);
        }
        free(ref); free(inp); free(w); free(dout); free(dinp0); free(dw0);
        free(dinp_garbage);
    }
}

static void test_attention(void **state) {
    /* the small preset's T=64, hs=16, then odd sizes */
    const int shapes[][4] = {{4, 64, 128, 8}, {2, 17, 24, 3}, {3, 5, 8, 2}, {1, 1, 4, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], NH = shapes[s][3];
        size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * 2;
        rg_rng_seed(&rng, 7 + s);
        float *qkv = random_floats(nq), *dout = random_floats(no), *dqkv0 = random_floats(nq);
        float *dqkv_garbage = garbage_floats(nq); /* dqkv is overwritten: another start here */
        for (size_t i = 0; i < nq; i++) {
            qkv[i] *= 3.0f; /* peaked softmax rows too */
        }
        float *ref_out = malloc(no * sizeof(float)), *ref_stats = malloc(na * sizeof(float));
        float *ref_dqkv = copy_floats(dqkv0, nq);
        rg_ref_attention_forward(NULL, ref_out, ref_stats, qkv, B, T, C, NH);
        rg_ref_attention_backward(NULL, ref_dqkv, dout, qkv, ref_stats, B, T, C, NH);
        float *first = NULL;
        size_t total = no + na + nq;
        for (int d = 0; d < num_drivers(); d++) {
            for (int threads = 1; threads <= 3; threads++) {
                rg_backend_ctx *ctx = make_ctx((driver)d, threads);
                float *res = malloc(total * sizeof(float));
                float *out = res, *stats = res + no, *dqkv = stats + na;
                memcpy(dqkv, dqkv_garbage, nq * sizeof(float));
                rg_par_op_attention_forward(ctx, out, stats, qkv, B, T, C, NH);
                rg_par_op_attention_backward(ctx, dqkv, dout, qkv, stats, B, T, C, NH);
                free_ctx(ctx);
                double e1 = rel_err(out, ref_out, no), e2 = rel_err(stats, ref_stats, na);
                double e3 = rel_err(dqkv, ref_dqkv, nq);
                if (e1 > 1e-5 || e2 > 1e-5 || e3 > 1e-5) {
                    fail_msg("attention B=%d T=%d C=%d NH=%d: errors %.2e %.2e %.2e", B, T, C, NH,
                             e1, e2, e3);
                }
                if (!first) {
                    first = res;
                } else {
                    assert_memory_equal(res, first, total * sizeof(float));
                    free(res);
                }
            }
        }
        free(first); free(qkv); free(dout); free(dqkv0); free(dqkv_garbage);
        free(ref_out); free(ref_stats); free(ref_dqkv);
    }
}

/* Repeated tokens land in one dwte row: the channel split must add them all, in order. */
static void test_embedding_backward(void **state) {
    int B = 8, T = 64, C = 130, V = 5;
    size_t n = (size_t)B * T * C;
    rg_rng_seed(&rng, 99);
    float *dout = random_floats(n), *dwte0 = random_floats((size_t)V * C);
    float *dwpe0 = random_floats((size_t)T * C);
    int32_t *tokens = malloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++) {
        tokens[i] = i % 3 == 0 ? 2 : (int32_t)rg_rng_below(&rng, V);
    }
    float *ref_wte = copy_floats(dwte0, (size_t)V * C), *ref_wpe = copy_floats(dwpe0, (size_t)T * C);
    rg_ref_embedding_backward(NULL, ref_wte, ref_wpe, dout, tokens, B, T, C);
    for (int threads = 1; threads <= 3; threads++) {
        rg_backend_ctx *ctx = make_ctx(DRIVER_PTHREADS, threads);
        float *wte = copy_floats(dwte0, (size_t)V * C), *wpe = copy_floats(dwpe0, (size_t)T * C);
        rg_par_op_embedding_backward(ctx, wte, wpe, dout, tokens, B, T, C);
        /* same additions in the same order as the reference: exact */
        assert_memory_equal(wte, ref_wte, (size_t)V * C * sizeof(float));
        assert_memory_equal(wpe, ref_wpe, (size_t)T * C * sizeof(float));
        free(wte); free(wpe);
        free_ctx(ctx);
    }
    free(dout); free(dwte0); free(dwpe0); free(tokens); free(ref_wte); free(ref_wpe);
}

/* The gradient norm's partial sums depend on n only: every thread count gives the same bits. */
static void test_sum_squares(void **state) {
    const size_t sizes[] = {0, 1, 17, 4096, 4097, 811776};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        rg_rng_seed(&rng, 3 + s);
        float *x = random_floats(n);
        double ref = rg_ref_sum_squares(NULL, x, n);
        double first = -1.0;
        for (int d = 0; d < num_drivers(); d++) {
            for (int threads = 1; threads <= 4; threads++) {
                rg_backend_ctx *ctx = make_ctx((driver)d, threads);
                double got = rg_par_op_sum_squares(ctx, x, n);
                free_ctx(ctx);
                assert_true(fabs(got - ref) <= 1e-12 * ref);
                if (first < 0.0) {
                    first = got;
                }
                assert_true(got == first);
            }
        }
        free(x);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_adapt_policy),
        cmocka_unit_test(test_adapt_describe_counts),
        cmocka_unit_test(test_adapt_cold_call),
        cmocka_unit_test(test_adapt_sites),
        cmocka_unit_test(test_adapt_alone_chunks),
        cmocka_unit_test(test_chunking),
        cmocka_unit_test(test_many_quick_jobs),
        cmocka_unit_test(test_jobs_after_sleep),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_embedding_backward),
        cmocka_unit_test(test_sum_squares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
