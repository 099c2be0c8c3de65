/*
 * Shared parallel code for the multi-core backends (openmp, pthreads, openblas, blis).
 *
 * Every kernel is written once against a small parallel-for driver (rg_par); the openmp backend
 * drives it with OpenMP, the pthreads backend with a persistent thread pool. The BLAS backends reuse
 * every non-matmul kernel from here and replace only the matmuls.
 *
 * A backend's context struct must begin with an rg_par_backend member, so that the rg_par_op_*
 * wrappers below can be put straight into its rg_backend table:
 *
 *     typedef struct rg_backend_ctx { rg_par_backend pb; ...own fields... } rg_backend_ctx;
 *     rg_par *par = rg_par_pthreads_create(cfg->num_threads, err, err_len);
 *     rg_par_backend_init(&ctx->pb, par);    ... and on destroy: rg_par_backend_release(&ctx->pb);
 *
 * Libraries: rg_parallel (kernels, workspace, pthread pool; needs only libpthread) and rg_par_openmp
 * (the OpenMP driver; link it only where an OpenMP runtime is wanted).
 *
 * Determinism: chunk boundaries depend only on the sizes, the grain and the thread count, and no
 * kernel reduces across chunks in a thread-dependent order, so one thread count always gives
 * bit-identical results.
 */
#ifndef RG_PARALLEL_H
#define RG_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/backend.h"
#include "randygpt/op_list.h"

/* Work over items [begin, end) of a range, run on thread tid (0 <= tid < num_threads; the caller
 * of rg_par_for is thread 0). tid indexes per-thread workspace and must not change the result. */
typedef void (*rg_range_fn)(void *arg, int64_t begin, int64_t end, int tid);

typedef struct rg_par rg_par;
typedef struct rg_par_adapt rg_par_adapt;
struct rg_par {
    int num_threads;
    /* The most chunks rg_par_for gives one job: num_threads for OpenMP (one chunk per thread), a
     * few per thread for the pthread pool, whose threads share out the chunks as they go. */
    int max_chunks;
    /* Splits [0, n) into nchunks contiguous chunks (1 <= nchunks <= max_chunks), chunk i being
     * [n*i/nchunks, n*(i+1)/nchunks), runs fn once on each and returns when all are done. The
     * calling thread works too. OpenMP runs chunk i on thread i; in the pthread pool thread t
     * first takes the chunks of its own share (t's contiguous part of the range), then any free
     * thread takes a chunk nobody has started (so a worker slow to wake, or slower, delays
     * nothing), and a thread may then run several chunks one after the other. Never called
     * concurrently on one rg_par. */
    void (*run)(rg_par *par, int64_t n, int nchunks, rg_range_fn fn, void *arg);
    void (*destroy)(rg_par *par);
    /* The adaptive thread count's state (see rg_par_internal.h): rg_par_for runs windows of ops
     * on every thread or on the caller alone, whichever measures faster. NULL: every op on every
     * thread (one thread, or the option adapt=off). */
    rg_par_adapt *adapt;
};

/* Drivers. num_threads > 0. Return NULL (and write one line into err) on failure. */
rg_par *rg_par_openmp_create(int num_threads, char *err, size_t err_len);  /* in rg_par_openmp */
rg_par *rg_par_pthreads_create(int num_threads, char *err, size_t err_len);

/* on 1: starts par's adaptive thread count (a driver's create does, for more than one thread);
 * on 0: stops it, every op then runs on every thread (adapt=off; a driver's destroy). Returns 0,
 * or -1 when out of memory. */
int rg_par_set_adaptive(rg_par *par, int on);

/* Runs fn over [0, n) in chunks of at least grain items (so tiny ops stay on one thread, without
 * any threading overhead), at most par->max_chunks of them. */
void rg_par_for(rg_par *par, int64_t n, int64_t grain, rg_range_fn fn, void *arg);

/* A set of matmul kernels (micro-kernel and blocking for one kind of CPU, see rg_par_matmul.c). */
typedef struct rg_par_kernels rg_par_kernels;

/* The first member of every parallel backend's context. */
typedef struct rg_par_backend {
    rg_par *par;
    /* workspace owned by the kernels, grown on demand (see rg_par_workspace.c) */
    float *ws;
    size_t ws_floats;
    const rg_par_kernels *kernels; /* the matmuls' kernel set */
    int kernels_forced;            /* 1: named by the kernels= option, 0: chosen for the CPU */
} rg_par_backend;

/* Takes ownership of par (non-NULL); the matmuls get the best kernel set for this CPU. */
void rg_par_backend_init(rg_par_backend *pb, rg_par *par);

/* The kernel set NAME ("auto" or NULL: the best for this CPU): avx512, zen4, avx2 or generic
 * (the x86 ones only in x86 builds). NULL with one line in err for an unknown name or a set this
 * CPU cannot run. */
const rg_par_kernels *rg_par_kernels_find(const char *name, char *err, size_t err_len);
/* One phrase for describe: the matmuls' kernel set, its tile and how it was chosen. */
void rg_par_kernels_describe(const rg_par_backend *pb, char *buf, size_t buf_len);
/* Destroys the driver (joining its threads) and frees the workspace. */
void rg_par_backend_release(rg_par_backend *pb);

/* Checks a config for a backend that takes no options: returns cfg->num_threads (> 0), or -1 with
 * one line in err ("unknown option 'k' for backend NAME", or a bad thread count). */
int rg_par_config_threads(const rg_backend_config *cfg, const char *backend, char *err,
                          size_t err_len);
/* The same for a backend whose options are kernels=NAME (see rg_par_kernels_find) and adapt
 * (rg_par_config_adapt): also sets *kernels (NULL when the option is absent: the CPU's best). */
int rg_par_config_kernels(const rg_backend_config *cfg, const char *backend,
                          const rg_par_kernels **kernels, char *err, size_t err_len);

/* The option adapt=on|off of every parallel backend: 1 (on, also when absent: the thread count
 * adapts), 0 (off: every op on every thread), or -1 with one line in err for another
 * value. */
int rg_par_config_adapt(const rg_backend_config *cfg, const char *backend, char *err,
                        size_t err_len);
/* One phrase for describe: "thread count adaptive (...; one thread in N of M windows so far)",
 * so that a describe taken after a run tells how much of it ran on one thread (no count before
 * the first window ends), or "thread count fixed (adapt=off)". */
void rg_par_adapt_describe(const rg_par *par, char *buf, size_t buf_len);

/* The vector instruction set the kernels were compiled for: "AVX-512", "AVX2" or "generic". */
const char *rg_par_kernel_isa(void);

/* ---- ops with the exact rg_backend signatures and contracts (ctx must start with
 * rg_par_backend): activation gradients overwritten, parameter gradients and rmsnorm's dinp
 * accumulated, as backend.h says. One prototype rg_par_op_<name> per op of the list
 * (randygpt/op_list.h), so that each signature is written once; the RG_PAR_OPS_* initializers
 * below name the ops this library defines (an op added to the list is declared here, and defined
 * and named there once the library implements it). ---- */
#define RG_PAR_DECLARE_OP(name, kind, required, ret, params) ret rg_par_op_##name params;
RG_OP_LIST(RG_PAR_DECLARE_OP)
#undef RG_PAR_DECLARE_OP

/* Designated initializers of an rg_backend table's ops with the rg_par_op_* kernels: the matmuls,
 * every other op, or all of them. */
#define RG_PAR_OPS_MATMUL                                     \
    .matmul_forward = rg_par_op_matmul_forward,               \
    .matmul_backward = rg_par_op_matmul_backward

/* Every op but the matmuls: what a backend that brings its own matmuls (the BLAS ones) takes. */
#define RG_PAR_OPS_NON_MATMUL                                 \
    .attention_forward = rg_par_op_attention_forward,         \
    .attention_backward = rg_par_op_attention_backward,       \
    .adamw_step = rg_par_op_adamw_step,                       \
    .rmsnorm_forward = rg_par_op_rmsnorm_forward,             \
    .rmsnorm_backward = rg_par_op_rmsnorm_backward,           \
    .sqrelu_forward = rg_par_op_sqrelu_forward,               \
    .sqrelu_backward = rg_par_op_sqrelu_backward,             \
    .residual_forward = rg_par_op_residual_forward,           \
    .embedding_forward = rg_par_op_embedding_forward,         \
    .embedding_backward = rg_par_op_embedding_backward,       \
    .crossentropy_forward = rg_par_op_crossentropy_forward,   \
    .crossentropy_backward = rg_par_op_crossentropy_backward, \
    .sum_squares = rg_par_op_sum_squares

#define RG_PAR_OPS_ALL RG_PAR_OPS_MATMUL, RG_PAR_OPS_NON_MATMUL

#endif /* RG_PARALLEL_H */
