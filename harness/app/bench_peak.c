/* fp32 FMA peak: independent FMA chains on registers, one set per thread, all threads at once. */
#define _POSIX_C_SOURCE 200809L
#include "bench_peak.h"

#include "randygpt/text.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec;
#define PEAK_ISA "avx512f"
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#elif defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
typedef __m256 vec;
#define PEAK_ISA "avx2+fma"
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#else
typedef float vec;
#define PEAK_ISA "scalar"
#define VSET(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c)) /* a multiply and an add: still 2 FLOPs */
#endif

#define LANES ((int)(sizeof(vec) / sizeof(float)))
/* FMA latency (4 to 5 cycles) x FMA units (2) = 8 to 10 chains keep a core busy. The chains and
 * the two constants must all stay in registers: a spilled chain turns each FMA into a load, an FMA
 * and a store, and on an AVX2 core (16 vector registers) 16 chains measured about 0.57x of the
 * peak that 12 reach. AVX-512 has 32 registers, so 16 chains there leave margin. */
#if defined(__AVX512F__)
#define CHAINS 16
#else
#define CHAINS 12
#endif

const char *rg_peak_isa(void) { return PEAK_ISA; }
int rg_peak_vector_bits(void) { return LANES * 32; }
int rg_peak_chains(void) { return CHAINS; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Read at run time so that the compiler can neither fold the chains nor merge identical ones. */
static volatile float peak_seed = 1.0f;
static volatile float peak_sink;

/* Runs iters rounds of CHAINS dependent-free FMAs; returns the FLOPs done.
 * Each chain converges to 1 (x * m + c with c = 1 - m), so values stay normal. The loops over the
 * chains are unrolled in full, so the array lives in registers. */
static double fma_chains(long iters) {
    const float s = peak_seed;
    const vec m = VSET(0.9999999f), c = VSET(1e-7f);
    vec a[CHAINS];
#pragma GCC unroll 16
    for (int k = 0; k < CHAINS; k++) a[k] = VSET(s + 0.01f * (float)k);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < CHAINS; k++) a[k] = VFMA(a[k], m, c);
    }
    float sum = 0.0f, lane[LANES];
    for (int k = 0; k < CHAINS; k++) {
        memcpy(lane, &a[k], sizeof lane);
        sum += lane[0];
    }
    peak_sink = sum;
    return 2.0 * (double)iters * CHAINS * LANES;
}

typedef struct peak_worker {
    pthread_t tid;
    long iters;
    atomic_int *go;  /* set once every thread exists, so all start together */
} peak_worker;

static void *peak_thread(void *arg) {
    peak_worker *w = arg;
    while (!atomic_load(w->go)) {
    }
    fma_chains(w->iters);
    return NULL;
}

/* GFLOP/s of threads threads each running iters rounds, from the common start to the last join.
 * Returns -1 if a thread could not be created. */
static double run_once(int threads, long iters) {
    peak_worker workers[threads];
    atomic_int go = 0;
    int started = 0;
    for (; started < threads; started++) {
        workers[started] = (peak_worker){.iters = iters, .go = &go};
        if (pthread_create(&workers[started].tid, NULL, peak_thread, &workers[started]) != 0) break;
    }
    double t0 = now_s();
    atomic_store(&go, 1);
    for (int i = 0; i < started; i++) pthread_join(workers[i].tid, NULL);
    double t1 = now_s();
    if (started < threads) return -1.0;
    return 2.0 * (double)iters * CHAINS * LANES * threads / (t1 - t0) * 1e-9;
}

double rg_peak_gflops(int threads, int try_ms, int tries) {
    if (threads < 1 || try_ms < 1 || tries < 1) return -1.0;
    /* Calibrate on one thread: grow the round count until a run lasts 20 ms, then scale. */
    long iters = 1 << 14;
    double t;
    for (;;) {
        double t0 = now_s();
        fma_chains(iters);
        t = now_s() - t0;
        if (t >= 0.02 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters = (long)((double)iters * (try_ms * 1e-3) / t) + 1;
    double best = -1.0;
    for (int k = 0; k < tries; k++) {
        double g = run_once(threads, iters);
        if (g > best) best = g;
    }
    return best;
}

void rg_peak_burn(void) {
    for (;;) fma_chains(1L << 20);
}

void rg_peak_series_add(rg_peak_series *s, double gflops) {
    if (s->n < RG_PEAK_MAX_SAMPLES) s->samples[s->n++] = gflops;
    if (gflops > s->best) s->best = gflops;
}

int rg_peak_scaling_ok(int threads, double peak_n, double peak_1, int cpus, char *why,
                       size_t why_len) {
    if (threads <= 1 || !(peak_1 > 0) || threads > cpus) return 1;
    const double want = RG_PEAK_MIN_SCALING * threads * peak_1;
    if (peak_n >= want) return 1;
    rg_errf(why, why_len,
            "the %d-thread FMA peak (%.1f GFLOP/s) is under %.1f x %d x the 1-thread peak "
            "(%.1f GFLOP/s): the cores were not all free while it was measured",
            threads, peak_n, RG_PEAK_MIN_SCALING, threads, peak_1);
    return 0;
}
