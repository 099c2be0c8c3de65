/* Backend `openmp`: the shared blocked kernels of rg_parallel, driven by OpenMP parallel regions
 * with exactly num_threads threads (or the caller alone, as rg_par_for's adaptive thread count
 * chooses for windows of ops; adapt=off: always every thread). Every op is native. Option
 * kernels=auto|avx512|zen4|avx2|generic chooses the matmuls' kernel set (default auto: the best for
 * this CPU). */
#include <stdio.h>
#include <stdlib.h>

#include "rg_parallel.h"

struct rg_backend_ctx {
    rg_par_backend pb; /* first: the rg_par_op_* kernels read it */
};

static rg_backend_ctx *openmp_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    const rg_par_kernels *kernels;
    int threads = rg_par_config_kernels(cfg, "openmp", &kernels, err, err_len);
    int adapt = threads < 0 ? -1 : rg_par_config_adapt(cfg, "openmp", err, err_len);
    if (adapt < 0) {
        return NULL;
    }
    rg_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, err_len, "backend openmp: out of memory");
        return NULL;
    }
    rg_par *par = rg_par_openmp_create(threads, err, err_len);
    if (!par) {
        free(ctx);
        return NULL;
    }
    rg_par_set_adaptive(par, adapt); /* off never fails; on is the driver's default */
    rg_par_backend_init(&ctx->pb, par);
    if (kernels) {
        ctx->pb.kernels = kernels;
        ctx->pb.kernels_forced = 1;
    }
    return ctx;
}

static void openmp_destroy(rg_backend_ctx *ctx) {
    if (ctx) {
        rg_par_backend_release(&ctx->pb);
        free(ctx);
    }
}

/* The OpenMP version the plugin was compiled against, from _OPENMP (yyyymm). */
static const char *openmp_version(void) {
#if _OPENMP >= 202111
    return "5.2";
#elif _OPENMP >= 202011
    return "5.1";
#elif _OPENMP >= 201811
    return "5.0";
#elif _OPENMP >= 201511
    return "4.5";
#elif _OPENMP >= 201307
    return "4.0";
#else
    return "3.x";
#endif
}

static void openmp_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    int n = ctx->pb.par->num_threads;
    char mm[160], adapt[160];
    rg_par_kernels_describe(&ctx->pb, mm, sizeof mm);
    rg_par_adapt_describe(ctx->pb.par, adapt, sizeof adapt);
    snprintf(buf, buf_len,
             "OpenMP %s (_OPENMP %d), %d thread%s, %s, other ops blocked %s kernels, %s",
             openmp_version(), _OPENMP, n, n == 1 ? "" : "s", mm, rg_par_kernel_isa(), adapt);
}

static const rg_backend openmp_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "openmp",
    .summary = "blocked vectorised C kernels on OpenMP threads",
    .create = openmp_create,
    .destroy = openmp_destroy,
    .describe = openmp_describe,
    RG_PAR_OPS_ALL,
};

RG_BACKEND_ENTRY { return &openmp_backend; }
