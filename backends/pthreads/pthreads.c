/* Backend `pthreads`: the shared blocked kernels of rg_parallel on a persistent pthread pool
 * (created with the instance, joined on destroy). Every op is native. Option
 * kernels=auto|avx512|zen4|avx2|generic chooses the matmuls' kernel set (default auto); adapt=off
 * runs every op on every thread (default on: see rg_par_for). */
#include <stdio.h>
#include <stdlib.h>

#include "rg_parallel.h"

struct rg_backend_ctx {
    rg_par_backend pb; /* first: the rg_par_op_* kernels read it */
};

static rg_backend_ctx *pthreads_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    const rg_par_kernels *kernels;
    int threads = rg_par_config_kernels(cfg, "pthreads", &kernels, err, err_len);
    int adapt = threads < 0 ? -1 : rg_par_config_adapt(cfg, "pthreads", err, err_len);
    if (adapt < 0) {
        return NULL;
    }
    rg_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, err_len, "backend pthreads: out of memory");
        return NULL;
    }
    rg_par *par = rg_par_pthreads_create(threads, err, err_len);
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

static void pthreads_destroy(rg_backend_ctx *ctx) {
    if (ctx) {
        rg_par_backend_release(&ctx->pb);
        free(ctx);
    }
}

static void pthreads_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    int n = ctx->pb.par->num_threads;
    char mm[160], adapt[160];
    rg_par_kernels_describe(&ctx->pb, mm, sizeof mm);
    rg_par_adapt_describe(ctx->pb.par, adapt, sizeof adapt);
    snprintf(buf, buf_len,
             "pthread pool (spin-then-futex wake-up), %d thread%s, %s, other ops blocked %s "
             "kernels, %s",
             n, n == 1 ? "" : "s", mm, rg_par_kernel_isa(), adapt);
}

static const rg_backend pthreads_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "pthreads",
    .summary = "blocked vectorised C kernels on a persistent pthread pool",
    .create = pthreads_create,
    .destroy = pthreads_destroy,
    .describe = pthreads_describe,
    RG_PAR_OPS_ALL,
};

RG_BACKEND_ENTRY { return &pthreads_backend; }
