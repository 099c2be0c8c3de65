/*
 * The one list of backend ops. Each entry is
 *     X(name, KIND, required, return type, (parameters))
 * name is the rg_backend member and the reference kernel's suffix (rg_ref_<name>), KIND the
 * rg_op_kind suffix (RG_OP_<KIND>), required 1 for the ops a plugin must provide. The parameters
 * are exactly those of the rg_backend member; backend.h documents each op's contract.
 *
 * Generated from this list: the rg_op_kind enum, the reference prototypes (ops.h), op names and
 * the required flags, the resolved op table and the native-op report (ops.c), the reference
 * backend's table (ref_ops.c), the shared parallel kernels' prototypes (rg_parallel.h); the op
 * cases (op_case.c) have one entry per op, checked against this list at compile time. Adding an op: an entry here, its member and contract in backend.h,
 * its reference kernel, its case in op_case.c.
 */
#ifndef RANDYGPT_OP_LIST_H
#define RANDYGPT_OP_LIST_H

#define RG_OP_LIST(X)                                                                           \
    X(matmul_forward, MATMUL_FORWARD, 1, void,                                                  \
      (rg_backend_ctx * ctx, float *out, const float *inp, const float *weight, int N, int C,   \
       int OC))                                                                                 \
    X(matmul_backward, MATMUL_BACKWARD, 1, void,                                                \
      (rg_backend_ctx * ctx, float *dinp, float *dweight, const float *dout, const float *inp,  \
       const float *weight, int N, int C, int OC))                                              \
    X(attention_forward, ATTENTION_FORWARD, 1, void,                                            \
      (rg_backend_ctx * ctx, float *out, float *stats, const float *qkv, int B, int T, int C,   \
       int NH))                                                                                 \
    X(attention_backward, ATTENTION_BACKWARD, 1, void,                                          \
      (rg_backend_ctx * ctx, float *dqkv, const float *dout, const float *qkv,                  \
       const float *stats, int B, int T, int C, int NH))                                        \
    X(adamw_step, ADAMW, 1, void,                                                               \
      (rg_backend_ctx * ctx, float *params, float *m, float *v, const float *grads, size_t n,   \
       float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,     \
       int t))                                                                                  \
    X(rmsnorm_forward, RMSNORM_FORWARD, 0, void,                                                \
      (rg_backend_ctx * ctx, float *out, float *rstd, const float *inp, int N, int C))          \
    X(rmsnorm_backward, RMSNORM_BACKWARD, 0, void,                                              \
      (rg_backend_ctx * ctx, float *dinp, const float *dout, const float *inp,                  \
       const float *rstd, int N, int C))                                                        \
    X(sqrelu_forward, SQRELU_FORWARD, 0, void,                                                  \
      (rg_backend_ctx * ctx, float *out, const float *inp, size_t n))                           \
    X(sqrelu_backward, SQRELU_BACKWARD, 0, void,                                                \
      (rg_backend_ctx * ctx, float *dinp, const float *dout, const float *out, size_t n))       \
    X(residual_forward, RESIDUAL_FORWARD, 0, void,                                              \
      (rg_backend_ctx * ctx, float *out, const float *inp1, const float *inp2, size_t n))       \
    X(embedding_forward, EMBEDDING_FORWARD, 0, void,                                            \
      (rg_backend_ctx * ctx, float *out, const int32_t *tokens, const float *wte,               \
       const float *wpe, int B, int T, int C))                                                  \
    X(embedding_backward, EMBEDDING_BACKWARD, 0, void,                                          \
      (rg_backend_ctx * ctx, float *dwte, float *dwpe, const float *dout, const int32_t *tokens, \
       int B, int T, int C))                                                                    \
    X(crossentropy_forward, CROSSENTROPY_FORWARD, 0, void,                                      \
      (rg_backend_ctx * ctx, float *losses, float *probs, const float *logits,                  \
       const int32_t *targets, int N, int V))                                                   \
    X(crossentropy_backward, CROSSENTROPY_BACKWARD, 0, void,                                    \
      (rg_backend_ctx * ctx, float *dlogits, const float *probs, const int32_t *targets, int N, \
       int V, float dloss))                                                                     \
    X(sum_squares, SUM_SQUARES, 0, double, (rg_backend_ctx * ctx, const float *x, size_t n))

#endif /* RANDYGPT_OP_LIST_H */
