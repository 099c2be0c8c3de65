/*
 * An out-of-tree randyGPT-C backend to start from. It runs on randygpt::parallel, the SDK's helper
 * library: the project's persistent thread pool, its blocked AVX-512 GEMM and its other kernels,
 * as the bundled `pthreads` backend does. So it is as fast as the bundled backends from the start,
 * on any --threads N, and every op is native.
 *
 * To make it yours: replace any entry of the table at the end with your own kernel. One op is
 * already written here, residual_forward, to show how a kernel uses the pool (rg_par_for);
 * `randygpt check` tells whether a kernel still computes what the reference does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <randygpt/rg_parallel.h>

/* The instance. Its first member must be the helper's rg_par_backend, which the rg_par_op_*
 * kernels read (the thread pool and their workspace); add your own fields after it. */
struct rg_backend_ctx {
    rg_par_backend pb;
};

static rg_backend_ctx *template_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    /* refuses --backend-opt keys (this backend takes none) and a bad thread count */
    int threads = rg_par_config_threads(cfg, "template", err, err_len);
    if (threads < 0) return NULL;
    rg_backend_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, err_len, "backend template: out of memory");
        return NULL;
    }
    rg_par *pool = rg_par_pthreads_create(threads, err, err_len);
    if (!pool) {
        free(ctx);
        return NULL;
    }
    rg_par_backend_init(&ctx->pb, pool);
    return ctx;
}

static void template_destroy(rg_backend_ctx *ctx) {
    if (!ctx) return;
    rg_par_backend_release(&ctx->pb); /* joins the pool's threads */
    free(ctx);
}

static void template_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    int n = ctx->pb.par->num_threads;
    snprintf(buf, buf_len, "template: randygpt::parallel %s kernels on a pthread pool, %d thread%s",
             rg_par_kernel_isa(), n, n == 1 ? "" : "s");
}

/* ---- the backend's own kernel: residual_forward on the pool ---- */

typedef struct residual_args {
    float *out;
    const float *inp1, *inp2;
} residual_args;

/* Elements [begin, end) of out, inp1, inp2 (n): each chunk runs on one of the pool's threads. */
static void residual_range(void *arg, int64_t begin, int64_t end, int tid) {
    const residual_args *a = arg;
    for (int64_t i = begin; i < end; i++) a->out[i] = a->inp1[i] + a->inp2[i];
}

/* out, inp1, inp2 are (n): out = inp1 + inp2; out may alias inp1. */
static void template_residual_forward(rg_backend_ctx *ctx, float *out, const float *inp1,
                                      const float *inp2, size_t n) {
    residual_args a = {.out = out, .inp1 = inp1, .inp2 = inp2};
    /* chunks of at least 32 Ki elements: a smaller tensor is not worth waking a thread for */
    rg_par_for(ctx->pb.par, (int64_t)n, 32 * 1024, residual_range, &a);
}

static const rg_backend template_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "template",
    .summary = "example out-of-tree backend on the SDK's thread pool and blocked kernels",
    .create = template_create,
    .destroy = template_destroy,
    .describe = template_describe,
    /* the helper's kernels (rg_parallel.h); replace any of them with your own */
    .matmul_forward = rg_par_op_matmul_forward,
    .matmul_backward = rg_par_op_matmul_backward,
    .attention_forward = rg_par_op_attention_forward,
    .attention_backward = rg_par_op_attention_backward,
    .adamw_step = rg_par_op_adamw_step,
    .rmsnorm_forward = rg_par_op_rmsnorm_forward,
    .rmsnorm_backward = rg_par_op_rmsnorm_backward,
    .sqrelu_forward = rg_par_op_sqrelu_forward,
    .sqrelu_backward = rg_par_op_sqrelu_backward,
    .embedding_forward = rg_par_op_embedding_forward,
    .embedding_backward = rg_par_op_embedding_backward,
    .crossentropy_forward = rg_par_op_crossentropy_forward,
    .crossentropy_backward = rg_par_op_crossentropy_backward,
    .sum_squares = rg_par_op_sum_squares,
    /* the backend's own */
    .residual_forward = template_residual_forward,
    /* an op left NULL would run the host's reference kernel and show as not native */
};

RG_BACKEND_ENTRY { return &template_backend; }
