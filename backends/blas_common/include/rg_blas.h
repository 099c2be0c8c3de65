/*
 * Shared parts of the BLAS backends (openblas, blis).
 *
 * Threads: a BLAS backend created with N threads runs exactly N threads. Its matmuls split the
 * output into N row (or column) blocks on the rg_par pthread pool and make one single-threaded
 * library sgemm call per block; the other ops are rg_parallel's kernels on the same pool. The
 * library's own thread pool is never started, so two pools never fight over the cores.
 *
 * Kernel sets: both libraries choose their kernels once per process, from the CPU and from an
 * environment variable read when they initialise. rg_blas_open loads a library with such a variable
 * set, so a backend can pick the kernel set before the library first runs.
 *
 * Loaded once, never unloaded: a backend loads its library once per process, with its final
 * choice, and never dlcloses it. Unmapping an initialised BLAS loses what it allocated at init (the
 * leak checker reports it, from an unknown module, and cannot be told otherwise) and can pull code
 * from under threads it started. So the question "what would the library choose by itself?" is
 * asked in a forked child (rg_blas_probe), which loads it, answers through a pipe and exits.
 */
#ifndef RG_BLAS_H
#define RG_BLAS_H

#include <stddef.h>

#include "randygpt/backend.h"
#include "rg_parallel.h"

/* One sgemm: c = op(a) @ op(b) + beta * c, all row-major.
 * c is (M,N) with row stride ldc; op(a) is (M,K): a itself is (M,K) with row stride lda, or (K,M)
 * when trans_a; op(b) is (K,N): b itself is (K,N) with row stride ldb, or (N,K) when trans_b. */
typedef struct rg_blas_gemm {
    int M, N, K;
    int trans_a, trans_b;
    const float *a;
    int lda;
    const float *b;
    int ldb;
    float beta; /* 0: overwrite c; 1: accumulate into c */
    float *c;
    int ldc;
} rg_blas_gemm;

/* A library's single-threaded sgemm on one rg_blas_gemm. */
typedef void (*rg_blas_gemm_fn)(const rg_blas_gemm *g);

/* Runs g split into at most par->num_threads blocks along the longer of M and N, each block one
 * call of fn on its own thread. */
void rg_blas_gemm_run(rg_par *par, rg_blas_gemm_fn fn, const rg_blas_gemm *g);

/* The instance of a BLAS backend: the rg_par pool that every op runs on, and the library's sgemm
 * that the matmuls split over it. */
struct rg_backend_ctx {
    rg_par_backend pb; /* first: the rg_par_op_* kernels read it */
    rg_blas_gemm_fn gemm;
};

/* Settles the library for one create() asking for the kernel set want (NULL: automatic): loads the
 * library on the first call of the process, and refuses a want that differs from what runs.
 * Returns 0, or -1 with one line in err. Called with the lock of rg_blas_create held. */
typedef int (*rg_blas_choose_fn)(const char *want, char *err, size_t err_len);

/* The create() of a BLAS backend named backend taking the one option key=NAME (rg_blas_config):
 * choose(NAME or NULL) under a process-wide lock, then a pthread pool of the configured thread
 * count. Returns the instance, or NULL with one line in err. */
rg_backend_ctx *rg_blas_create(const rg_backend_config *cfg, const char *backend, const char *key,
                               rg_blas_choose_fn choose, rg_blas_gemm_fn gemm, char *err,
                               size_t err_len);
/* Frees the pool and the instance; the library stays loaded (see the top of this file). */
void rg_blas_destroy(rg_backend_ctx *ctx);
/* The describe() sentence: "LIBRARY (BUILD), KIND KERNELS (HOW); N threads on one pthread pool:
 * each sgemm as N single-threaded blocks, other ops rg_parallel ISA kernels". */
void rg_blas_describe(const rg_backend_ctx *ctx, const char *library, const char *build,
                      const char *kind, const char *kernels, const char *how, char *buf,
                      size_t buf_len);

/* The rg_backend matmuls through ctx->gemm. Shapes as in backend.h:
 * out is (N,OC), inp is (N,C), weight is (OC,C): out = inp @ weight^T. */
void rg_blas_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp, const float *weight,
                            int N, int C, int OC);
/* dinp is (N,C), dweight is (OC,C), dout is (N,OC), inp is (N,C), weight is (OC,C):
 * dinp = dout @ weight (overwritten); dweight += dout^T @ inp (accumulated). */
void rg_blas_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                             const float *inp, const float *weight, int N, int C, int OC);

/* Vector instruction sets a library's kernel set may need. */
typedef enum rg_blas_isa {
    RG_BLAS_ISA_NONE,   /* runs anywhere */
    RG_BLAS_ISA_AVX,
    RG_BLAS_ISA_AVX2,   /* AVX2 and FMA */
    RG_BLAS_ISA_AVX512, /* AVX-512 F, BW, DQ and VL, enabled by the OS */
    RG_BLAS_ISA_AVX512_PHI, /* AVX-512 F, ER and PF: Xeon Phi only */
    RG_BLAS_ISA_FMA4,   /* AMD Bulldozer family */
} rg_blas_isa;

/* 1 when this CPU (and the OS) can run code for isa. */
int rg_blas_cpu_has(rg_blas_isa isa);
/* "AVX-512", "AVX2", ... */
const char *rg_blas_isa_name(rg_blas_isa isa);

/* Checks cfg for a backend that takes at most one option, key=VALUE. Returns the thread count
 * (> 0) and sets *value to the option's value (NULL when not given), or returns -1 with one line
 * in err (unknown option, option given twice, empty value, bad thread count). */
int rg_blas_config(const rg_backend_config *cfg, const char *backend, const char *key,
                   const char **value, char *err, size_t err_len);

/* One environment variable for rg_blas_open; value NULL leaves the variable as it is. */
typedef struct rg_blas_env {
    const char *name;
    const char *value;
} rg_blas_env;

/* Called by rg_blas_open right after dlopen, while the variables are still set: a library that
 * reads them lazily (BLIS) initialises here. */
typedef void (*rg_blas_init_fn)(void *handle, void *user);

/* dlopen(lib, RTLD_NOW | RTLD_LOCAL) with the n variables of env set while the library loads and
 * init (may be NULL) runs, then restored. Returns the handle, or NULL with one line in err. The
 * handle is never closed (see the top of this file).
 * setenv is not thread-safe: call it while no other thread reads the environment. */
void *rg_blas_open(const char *lib, const rg_blas_env *env, int n, rg_blas_init_fn init,
                   void *user, char *err, size_t err_len);
/* The handle of lib when something in the process has loaded it already (it runs the kernels it
 * chose then, whatever the environment says now), else NULL. Loads nothing. */
void *rg_blas_loaded(const char *lib);
/* dlsym that writes one line into err when the symbol is missing. */
void *rg_blas_sym(void *handle, const char *lib, const char *name, char *err, size_t err_len);

/* Writes the name of the kernel set the loaded library runs into name (NUL-terminated, no newline).
 * Returns 0, or -1 when it cannot tell. */
typedef int (*rg_blas_name_fn)(void *handle, char *name, size_t name_len);

/* Asks a forked child which kernel set lib chooses with the n variables of env set (value NULL:
 * as the process's environment says): the child dlopens lib, calls name_fn, writes the answer to a
 * pipe and _exits; the library is never loaded in this process. Returns 0 with the answer in name,
 * or -1 with one line in err (fork failed, the child died, or no answer came within seconds). */
int rg_blas_probe(const char *lib, const rg_blas_env *env, int n, rg_blas_name_fn name_fn,
                  char *name, size_t name_len, char *err, size_t err_len);

/* Designated initializers of every entry but the identity and create(): destroy and the matmuls
 * from here, the other ops with the rg_par_op_* kernels. */
#define RG_BLAS_OPS                                           \
    .destroy = rg_blas_destroy,                               \
    .matmul_forward = rg_blas_matmul_forward,                 \
    .matmul_backward = rg_blas_matmul_backward,               \
    RG_PAR_OPS_NON_MATMUL

#endif /* RG_BLAS_H */
