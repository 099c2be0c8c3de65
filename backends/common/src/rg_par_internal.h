/* Internal helpers of the shared parallel kernels: workspace and the vector type. */
#ifndef RG_PAR_INTERNAL_H
#define RG_PAR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

#include "rg_parallel.h"

/* The backend part of a context: every rg_par_op_* receives a ctx that starts with it. */
static inline rg_par_backend *rg_par_of(rg_backend_ctx *ctx) { return (rg_par_backend *)ctx; }

/* Chunks per thread that a driver sharing out chunks dynamically gives one job (rg_par.max_chunks
 * = threads x this): threads that run at different speeds (another process on a core, a worker
 * that woke late) then even out by taking more or fewer chunks, instead of the faster one waiting
 * for the slower one at the end of every op. */
#define RG_PAR_CHUNKS_PER_THREAD 4

/* The k-th chunk (0 <= k < nchunks) that thread tid tries to take when nthreads threads share
 * nchunks chunks: first those of its own share, [tid*c/T, (tid+1)*c/T) (the part of the range it
 * ran in the previous ops too, as a static split would give it), in order; then the others
 * backwards from its share's start, wrapping around, so that it takes the last chunks of another
 * thread's share while that thread works on the first ones. A thread past nthreads has no share. */
static inline int rg_par_chunk_order(int tid, int nthreads, int nchunks, int k) {
    int first = 0, own = 0;
    if (nthreads > nchunks) {
        nthreads = nchunks;
    }
    if (tid < nthreads) {
        first = (int)((int64_t)tid * nchunks / nthreads);
        own = (int)((int64_t)(tid + 1) * nchunks / nthreads) - first;
    }
    return k < own ? first + k : (first - 1 - (k - own) + 2 * nchunks) % nchunks;
}

/* Adaptive thread count: the ops run in windows of consecutive rg_par_for calls, all on every
 * thread or all on the caller alone, and the pool keeps whichever mode measured faster. On a
 * machine shared with other work, a team of threads can be slower than one thread. The mode is
 * the pool's, not each op's: a team that ran nothing for a while has gone to sleep, and a team
 * measured cold (a wake-up per op on a loaded machine costs milliseconds) always loses.
 * Each op site (kernel fn, range n, chunk count) keeps its time per call in each mode. A window
 * compares what its calls took with what the same calls took in the other mode (the sites'
 * estimates, over the calls whose site has one); the other mode takes over when a probe (below)
 * takes under RG_PAR_ADAPT_MARGIN of the time. RG_PAR_ADAPT_LOSSES windows of the choice in a row
 * that lose to the other mode's estimate bring the next probe forward: they do not switch by
 * themselves, as that estimate may be old (on the noisy 2-core Xeon a window of every thread lost
 * to one thread's estimate by 11% in 1 run of 3, and beside a busy process noise made windows
 * alone lose to an estimate of every thread taken minutes earlier, and the switch cost windows at
 * half speed); a probe measures the other mode again, now, for 16 calls.
 * Every `interval` windows of the choice, a shorter window runs
 * the other mode (a probe); a probe that loses makes the interval RG_PAR_ADAPT_GROWTH times
 * longer, up to RG_PAR_ADAPT_MAX_PROBE windows (so on a quiet machine probing costs well under 1%
 * of the time), a switch brings it back to RG_PAR_ADAPT_MIN_PROBE. The first call after a change
 * of mode counts neither in its site's estimate nor in the comparison (the team was cold). Running
 * alone means every chunk in order on the caller: the same boundaries, so the same results (tid 0
 * runs several chunks in any case when it takes the others' chunks). The state is the calling
 * thread's alone (rg_par.run is never concurrent). */
#define RG_PAR_ADAPT_SITES 128    /* table of op sites, */
#define RG_PAR_ADAPT_PROBE_SLOTS 8 /* a site in one of 8 slots from its hash */
#define RG_PAR_ADAPT_WINDOW 64    /* calls per window of the choice */
#define RG_PAR_ADAPT_PROBE 16     /* calls per probe window */
#define RG_PAR_ADAPT_WARMUP 2     /* windows on every thread before the first probe */
#define RG_PAR_ADAPT_MIN_PROBE 4  /* windows of the choice between probes, just after a switch */
#define RG_PAR_ADAPT_MAX_PROBE 128 /* ... at most, once the choice has held */
#define RG_PAR_ADAPT_GROWTH 4
#define RG_PAR_ADAPT_MARGIN 0.9   /* the other mode takes over below 0.9x the time */
#define RG_PAR_ADAPT_LOSSES 2     /* windows of the choice in a row that lose: a probe now */
#define RG_PAR_ADAPT_WEIGHT 0.25  /* of a call's time in its site's estimate */

enum { RG_PAR_ALONE = 0, RG_PAR_ALL = 1 }; /* the two modes */

typedef struct rg_par_site {
    rg_range_fn fn; /* the site's key: fn, n, nchunks (fn NULL: slot unused) */
    int64_t n;
    int nchunks;
    double est[2]; /* seconds per call in each mode; 0: not measured yet */
} rg_par_site;

typedef struct rg_par_adapt {
    rg_par_site sites[RG_PAR_ADAPT_SITES];
    int choice;       /* the mode between probes */
    int mode;         /* the mode of the current window */
    int cold;         /* 1: the next call is the first after a change of mode */
    int calls;        /* calls so far in the current window */
    int until_probe;  /* windows of the choice before the next probe */
    int interval;     /* the current probe interval, in windows */
    double spent;     /* this window: seconds its comparable calls took, */
    double other;     /* and the other mode's estimate for the same calls */
    int losses;       /* windows of the choice in a row that lost */
    int in_composite; /* 1 inside rg_par_composite_begin/end */
    int64_t windows[2]; /* windows ended so far in each mode, for describe */
    double composite_t0;
} rg_par_adapt;

/* A fresh state: every thread, probing first after RG_PAR_ADAPT_WARMUP windows. */
void rg_par_adapt_init(rg_par_adapt *a);
/* The site of (fn, n, nchunks), started afresh when its slot held another one. */
rg_par_site *rg_par_adapt_site(rg_par_adapt *a, rg_range_fn fn, int64_t n, int nchunks);
/* After a call of site s, run in a->mode, which took seconds: updates the estimates, and at the
 * end of a window the choice and the next window's mode. */
void rg_par_adapt_record(rg_par_adapt *a, rg_par_site *s, double seconds);

/* Runs every chunk of the job, in order, on the calling thread (tid 0). */
static inline void rg_par_run_alone(int64_t n, int nchunks, rg_range_fn fn, void *arg) {
    for (int i = 0; i < nchunks; i++) {
        int64_t begin = n * i / nchunks, end = n * (i + 1) / nchunks;
        if (begin < end) {
            fn(arg, begin, end, 0);
        }
    }
}

/* A composite op: several rg_par_for calls whose blocking depends on the thread count (the
 * matmul's passes, whose number and chunks differ between one thread and more). It runs whole in
 * one mode and is timed as one call of its own site (key, n, nchunks), so that the policy compares
 * the same work in both modes; the rg_par_for calls inside run in that mode and record nothing.
 * rg_par_composite_begin returns the threads to block for: 1 while the adaptive count runs alone
 * (running alone with the blocking of two threads cost 8-17% per step on the 2-core Intel Xeon of
 * our runs), else every thread; the op's results must not depend on the answer.
 * rg_par_composite_end times it. Not nested. */
int rg_par_composite_begin(rg_par *par);
void rg_par_composite_end(rg_par *par, rg_range_fn key, int64_t n, int nchunks);

/* Seconds on the monotonic clock. */
double rg_par_now_s(void);

/* A strided view of a matrix: element (i, j) is p[i * rs + j * cs]. */
typedef struct rg_par_mat_view {
    const float *p;
    ptrdiff_t rs, cs;
} rg_par_mat_view;

/* C(M,NC) (+)= A(M,K) @ B(K,NC), C with row stride ldc; accumulate 0 overwrites C. One per kernel
 * set, all from the template rg_par_gemm.c (see there); rg_par_matmul.c chooses among them. */
typedef void (*rg_par_gemm_fn)(rg_par_backend *pb, float *Cm, int ldc, rg_par_mat_view A,
                               rg_par_mat_view B, int M, int NC, int K, int accumulate);
void rg_par_gemm_generic(rg_par_backend *pb, float *Cm, int ldc, rg_par_mat_view A,
                         rg_par_mat_view B, int M, int NC, int K, int accumulate);
#if defined(RG_GEMM_X86)
void rg_par_gemm_avx512(rg_par_backend *pb, float *Cm, int ldc, rg_par_mat_view A,
                        rg_par_mat_view B, int M, int NC, int K, int accumulate);
void rg_par_gemm_zen4(rg_par_backend *pb, float *Cm, int ldc, rg_par_mat_view A,
                      rg_par_mat_view B, int M, int NC, int K, int accumulate);
void rg_par_gemm_avx2(rg_par_backend *pb, float *Cm, int ldc, rg_par_mat_view A,
                      rg_par_mat_view B, int M, int NC, int K, int accumulate);
#endif

/* Floats per cache line; workspace parts are rounded up to it so threads never share a line. */
#define RG_PAR_LINE_FLOATS 16

/* Grows the workspace to hold shared_floats for all threads and then per_thread_floats for each
 * thread, and returns its base. Call it before rg_par_for, never inside a chunk. */
float *rg_par_workspace(rg_par_backend *pb, size_t shared_floats, size_t per_thread_floats);
/* Offset in floats of thread tid's part in a workspace laid out by rg_par_workspace with the same
 * sizes; tid == num_threads gives the total size. */
static inline size_t rg_par_thread_offset(size_t shared_floats, size_t per_thread_floats, int tid) {
    size_t s = (shared_floats + RG_PAR_LINE_FLOATS - 1) / RG_PAR_LINE_FLOATS * RG_PAR_LINE_FLOATS;
    size_t p = (per_thread_floats + RG_PAR_LINE_FLOATS - 1) / RG_PAR_LINE_FLOATS *
               RG_PAR_LINE_FLOATS;
    return s + (size_t)tid * p;
}

/* The build's vector width in floats, and vector types of it (GCC vector extensions). */
#if defined(__AVX512F__)
#define RG_VL 16
#elif defined(__AVX2__)
#define RG_VL 8
#else
#define RG_VL 4
#endif
typedef float rg_vf __attribute__((vector_size(RG_VL * sizeof(float))));              /* aligned */
typedef float rg_vfu __attribute__((vector_size(RG_VL * sizeof(float)), aligned(4))); /* any */
typedef int32_t rg_vi __attribute__((vector_size(RG_VL * sizeof(int32_t))));          /* masks */

/* Float reductions in a fixed order (RG_VL lanes, then a tree over the lanes, then the tail):
 * fast, as GCC does not vectorise float reductions without -ffast-math, and deterministic. */

/* v with lane i moved to lane i - w (mod RG_VL); w a constant, so the shuffle mask is one. */
#define RG_ROT_IDX4(w) (w) % 4, (1 + (w)) % 4, (2 + (w)) % 4, (3 + (w)) % 4
#if RG_VL == 16
#define RG_ROT(v, w)                                                                          \
    __builtin_shuffle(v, (rg_vi){(0 + (w)) % 16, (1 + (w)) % 16, (2 + (w)) % 16, (3 + (w)) % 16, \
                                 (4 + (w)) % 16, (5 + (w)) % 16, (6 + (w)) % 16, (7 + (w)) % 16, \
                                 (8 + (w)) % 16, (9 + (w)) % 16, (10 + (w)) % 16,                \
                                 (11 + (w)) % 16, (12 + (w)) % 16, (13 + (w)) % 16,              \
                                 (14 + (w)) % 16, (15 + (w)) % 16})
#elif RG_VL == 8
#define RG_ROT(v, w)                                                                          \
    __builtin_shuffle(v, (rg_vi){(0 + (w)) % 8, (1 + (w)) % 8, (2 + (w)) % 8, (3 + (w)) % 8,     \
                                 (4 + (w)) % 8, (5 + (w)) % 8, (6 + (w)) % 8, (7 + (w)) % 8})
#else
#define RG_ROT(v, w) __builtin_shuffle(v, (rg_vi){RG_ROT_IDX4(w)})
#endif

/* Transposes RG_VL vectors in place (r[i][j] becomes r[j][i]): log2(RG_VL) stages, each swapping
 * bit d of the row index with bit d of the lane index by two-input shuffles of rows i and i + d
 * (bit d of i clear), 2 RG_VL log2(RG_VL) shuffles where a scalar transpose moves every float. */
#define RG_TLO(l, d) (((l) & (d)) ? RG_VL + (l) - (d) : (l)) /* row i: its lanes, then i+d's */
#define RG_THI(l, d) (((l) & (d)) ? RG_VL + (l) : (l) + (d)) /* row i+d: i's upper, then its */
#define RG_LANES4(F, d) F(0, d), F(1, d), F(2, d), F(3, d)
#define RG_LANES8(F, d) RG_LANES4(F, d), F(4, d), F(5, d), F(6, d), F(7, d)
#define RG_LANES16(F, d) \
    RG_LANES8(F, d), F(8, d), F(9, d), F(10, d), F(11, d), F(12, d), F(13, d), F(14, d), F(15, d)
#if RG_VL == 16
#define RG_LANES(F, d) RG_LANES16(F, d)
#elif RG_VL == 8
#define RG_LANES(F, d) RG_LANES8(F, d)
#else
#define RG_LANES(F, d) RG_LANES4(F, d)
#endif
#define RG_TSTAGE(r, d)                                                                       \
    for (int i_ = 0; i_ < RG_VL; i_++) {                                                      \
        if (!(i_ & (d))) {                                                                    \
            rg_vf a_ = (r)[i_], b_ = (r)[i_ + (d)];                                           \
            (r)[i_] = __builtin_shuffle(a_, b_, (rg_vi){RG_LANES(RG_TLO, d)});                \
            (r)[i_ + (d)] = __builtin_shuffle(a_, b_, (rg_vi){RG_LANES(RG_THI, d)});          \
        }                                                                                     \
    }
static inline void rg_par_transpose(rg_vf r[RG_VL]) {
#if RG_VL == 16
    RG_TSTAGE(r, 8)
#endif
#if RG_VL >= 8
    RG_TSTAGE(r, 4)
#endif
    RG_TSTAGE(r, 2)
    RG_TSTAGE(r, 1)
}

/* dst[j * ld_dst + i] = src[i * ld_src + j] for i, j < RG_VL: one block through rg_par_transpose
 * (any alignment). */
static inline void rg_par_transpose_block(float *dst, size_t ld_dst, const float *src,
                                          size_t ld_src) {
    rg_vf r[RG_VL];
    for (int i = 0; i < RG_VL; i++) {
        r[i] = *(const rg_vfu *)(src + i * ld_src);
    }
    rg_par_transpose(r);
    for (int j = 0; j < RG_VL; j++) {
        *(rg_vfu *)(dst + j * ld_dst) = r[j];
    }
}

/* Lane by lane a > b ? a : b (b where either is NaN): x86's max instruction is exactly that (one
 * instruction instead of a compare and a blend); elsewhere through a mask. */
static inline rg_vf rg_par_vmax(rg_vf a, rg_vf b) {
#if defined(__AVX512F__)
    return (rg_vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX2__)
    return (rg_vf)_mm256_max_ps((__m256)a, (__m256)b);
#elif defined(__SSE__)
    return (rg_vf)_mm_max_ps((__m128)a, (__m128)b);
#else
    rg_vi gt = a > b; /* C has no vector ?: */
    return (rg_vf)((gt & (rg_vi)a) | (~gt & (rg_vi)b));
#endif
}

/* Sum of the lanes by halving: log2(RG_VL) dependent adds instead of RG_VL. */
static inline float rg_par_hsum(rg_vf v) {
#if RG_VL >= 16
    v += RG_ROT(v, 8);
#endif
#if RG_VL >= 8
    v += RG_ROT(v, 4);
#endif
    v += RG_ROT(v, 2);
    v += RG_ROT(v, 1);
    return v[0];
}

static inline float rg_par_hmax(rg_vf v) {
#if RG_VL >= 16
    v = rg_par_vmax(v, RG_ROT(v, 8));
#endif
#if RG_VL >= 8
    v = rg_par_vmax(v, RG_ROT(v, 4));
#endif
    v = rg_par_vmax(v, RG_ROT(v, 2));
    v = rg_par_vmax(v, RG_ROT(v, 1));
    return v[0];
}

/* x, y are (n): returns sum(x * y). */
static inline float rg_par_dot(const float *x, const float *y, int n) {
    rg_vf acc = {0};
    int i = 0;
    for (; i + RG_VL <= n; i += RG_VL) {
        acc += *(const rg_vfu *)(x + i) * *(const rg_vfu *)(y + i);
    }
    float s = rg_par_hsum(acc);
    for (; i < n; i++) {
        s += x[i] * y[i];
    }
    return s;
}

/* x is (n), n > 0: returns max(x). */
static inline float rg_par_max(const float *x, int n) {
    float m = x[0];
    int i = 0;
    if (n >= RG_VL) {
        rg_vf acc = *(const rg_vfu *)x;
        for (i = RG_VL; i + RG_VL <= n; i += RG_VL) {
            acc = rg_par_vmax(*(const rg_vfu *)(x + i), acc);
        }
        m = rg_par_hmax(acc);
    }
    for (; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

static inline rg_vf rg_par_splat(float x) { return (rg_vf){0} + x; }

/* Lanes of a where mask is set, else lanes of b. */
static inline rg_vf rg_par_select(rg_vi mask, rg_vf a, rg_vf b) {
    return (rg_vf)((mask & (rg_vi)a) | (~mask & (rg_vi)b));
}

/* e^x lane by lane, in vector arithmetic only (libm's expf does not vectorise without
 * -ffast-math), for x <= 88 (the callers pass x - max <= 0). x = n ln2 + r, |r| <= ln2/2; e^r by
 * its degree-6 Taylor polynomial (relative error below 2e-7, about 1 ulp); times 2^n, by
 * AVX-512's scalef where there is one, else through the exponent bits (the same bits: an exact
 * scaling). x is clamped to -87 from below, so very negative x gives about 1.6e-38 instead of a
 * denormal or 0 (callers that need exact zeros, like masked softmax lanes, select them); NaN stays
 * NaN. */
static inline rg_vf rg_par_expv(rg_vf x) {
    x = rg_par_vmax(rg_par_splat(-87.0f), x); /* NaN stays NaN */
    /* round x / ln2 to the nearest integer with the 1.5 * 2^23 trick (no libm call) */
    rg_vf n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    rg_vf r = x - n * 0.693145752f; /* ln2 split in two for an exact product with n */
    r = r - n * 1.42860677e-6f;
    rg_vf p = rg_par_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
#if defined(__AVX512F__) && RG_VL == 16
    return (rg_vf)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
    rg_vi e = (__builtin_convertvector(n, rg_vi) + 127) << 23;
    return p * (rg_vf)e;
#endif
}

/* x is (n), n > 0: x[i] = e^(x[i] - shift); returns their sum (fixed order: lanes, then tree). */
static inline float rg_par_exp_sum(float *x, int n, float shift) {
    rg_vf acc = {0};
    int i = 0;
    for (; i + RG_VL <= n; i += RG_VL) {
        rg_vf e = rg_par_expv(*(rg_vfu *)(x + i) - shift);
        *(rg_vfu *)(x + i) = e;
        acc += e;
    }
    if (i < n) { /* the tail through one vector; its padding lanes (e^0) are not summed */
        rg_vf t = rg_par_splat(shift); /* so that every lane of t - shift is at most 0 */
        for (int j = 0; j < n - i; j++) {
            t[j] = x[i + j];
        }
        rg_vf e = rg_par_expv(t - shift);
        for (int j = 0; j < n - i; j++) {
            x[i + j] = e[j];
            acc[j] += e[j];
        }
    }
    return rg_par_hsum(acc);
}

#endif /* RG_PAR_INTERNAL_H */
