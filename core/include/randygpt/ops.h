/*
 * The core's view of a backend: its table with every optional op resolved (reference kernel where
 * the plugin gave NULL), the instance, which ops run natively, and optional per-op timing.
 * Also the reference kernels: plain single-threaded C, the ground truth every backend is tested
 * against. They have exactly the signatures of the rg_backend ops (ctx is ignored).
 */
#ifndef RANDYGPT_OPS_H
#define RANDYGPT_OPS_H

#include "randygpt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Op kinds, for the native mask and the per-op timing. */
typedef enum rg_op_kind {
    RG_OP_MATMUL_FORWARD,
    RG_OP_MATMUL_BACKWARD,
    RG_OP_ATTENTION_FORWARD,
    RG_OP_ATTENTION_BACKWARD,
    RG_OP_ADAMW,
    RG_OP_RMSNORM_FORWARD,
    RG_OP_RMSNORM_BACKWARD,
    RG_OP_SQRELU_FORWARD,
    RG_OP_SQRELU_BACKWARD,
    RG_OP_RESIDUAL_FORWARD,
    RG_OP_EMBEDDING_FORWARD,
    RG_OP_EMBEDDING_BACKWARD,
    RG_OP_CROSSENTROPY_FORWARD,
    RG_OP_CROSSENTROPY_BACKWARD,
    RG_OP_SUM_SQUARES,
    RG_OP_COUNT
} rg_op_kind;

/* Name of an op kind as used in reports, e.g. "matmul_forward". */
const char *rg_op_name(rg_op_kind op);
/* 1 if the op is one of the required ones. */
int rg_op_is_required(rg_op_kind op);

typedef struct rg_ops {
    rg_backend k;              /* resolved table: every op non-NULL */
    rg_backend_ctx *ctx;       /* the instance */
    uint32_t native_mask;      /* bit (1u << rg_op_kind) set when the plugin runs that op itself */
    int num_threads;           /* the thread count the instance was created with */
    int timing;                /* when non-zero the model adds wall time per op into seconds[] */
    double seconds[RG_OP_COUNT];
    long calls[RG_OP_COUNT];
} rg_ops;

/* Checks a plugin's table (ABI version, struct size, required ops). Returns 0, or -1 with one line
 * in err naming the cause. */
int rg_backend_validate(const rg_backend *table, char *err, size_t err_len);

/* Validates table, resolves optional ops against the reference and creates an instance.
 * Returns 0, or -1 with one line in err. */
int rg_ops_create(rg_ops *ops, const rg_backend *table, const rg_backend_config *cfg, char *err,
                  size_t err_len);
void rg_ops_destroy(rg_ops *ops);
/* Writes "matmul_forward,matmul_backward,..." of the native ops into buf. */
void rg_ops_native_list(const rg_ops *ops, char *buf, size_t buf_len);

/* The reference backend table ("single"): every op the reference kernel, one thread. */
extern const rg_backend rg_reference_backend;

/* Reference kernels. Contracts and shapes: see rg_backend in backend.h. */
void rg_ref_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp, const float *weight,
                           int N, int C, int OC);
void rg_ref_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
void rg_ref_attention_forward(rg_backend_ctx *ctx, float *out, float *att, const float *qkv, int B,
                              int T, int C, int NH);
void rg_ref_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                               const float *qkv, const float *att, int B, int T, int C, int NH);
void rg_ref_adamw_step(rg_backend_ctx *ctx, float *params, float *m, float *v, const float *grads,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t);
void rg_ref_rmsnorm_forward(rg_backend_ctx *ctx, float *out, float *rstd, const float *inp, int N,
                            int C);
void rg_ref_rmsnorm_backward(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *inp,
                             const float *rstd, int N, int C);
void rg_ref_sqrelu_forward(rg_backend_ctx *ctx, float *out, const float *inp, size_t n);
void rg_ref_sqrelu_backward(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *inp,
                            size_t n);
void rg_ref_residual_forward(rg_backend_ctx *ctx, float *out, const float *inp1,
                             const float *inp2, size_t n);
void rg_ref_embedding_forward(rg_backend_ctx *ctx, float *out, const int32_t *tokens,
                              const float *wte, const float *wpe, int B, int T, int C);
void rg_ref_embedding_backward(rg_backend_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                               const int32_t *tokens, int B, int T, int C);
void rg_ref_crossentropy_forward(rg_backend_ctx *ctx, float *losses, float *probs,
                                 const float *logits, const int32_t *targets, int N, int V);
void rg_ref_crossentropy_backward(rg_backend_ctx *ctx, float *dlogits, const float *probs,
                                  const int32_t *targets, int N, int V, float dloss);
double rg_ref_sum_squares(rg_backend_ctx *ctx, const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_OPS_H */
