/*
 * randyGPT-C backend ABI.
 *
 * A backend is a shared object that exports one symbol, RG_BACKEND_ENTRY_SYMBOL, a function that
 * returns a pointer to a static rg_backend table. The host checks abi_version and struct_size first,
 * then that every required op is non-NULL. Optional ops may be NULL: the host then runs its own
 * reference kernel for that op (and reports the op as not native).
 *
 * Ownership: the host owns parameters, gradients, activations and optimizer state and passes raw
 * pointers; an instance owns only its private workspace. All tensors are contiguous, row-major fp32.
 *
 * Alignment: a buffer passed to an op is aligned to its element only (4 bytes: a float or an
 * int32), never more. Its start is not a multiple of 16, 32 or 64 in general (the host slices
 * tensors out of one allocation, and `randygpt check` places buffers at such addresses), so
 * kernels use unaligned vector loads and stores, or peel to an aligned address first.
 *
 * Threading: the host calls one instance from one thread at a time; kernels may use as many threads
 * as the instance was created with, and must return only when all their work is done. Two instances
 * may be used concurrently from different threads (kernels are re-entrant per instance).
 *
 * Conventions (llm.c style): arguments are outputs first, then inputs, then weights, then sizes.
 * Shapes are written in the comment of each op, and whether each output is overwritten (=) or
 * added into (+=):
 *  - forward ops OVERWRITE (=) their outputs;
 *  - gradients of PARAMETERS ACCUMULATE (+=): dweight of matmul_backward, dwte and dwpe of
 *    embedding_backward. The host zeroes them once per step (so several backward passes can add up);
 *  - gradients of ACTIVATIONS are OVERWRITTEN (=): every element of dinp of matmul_backward, dqkv of
 *    attention_backward, dinp of sqrelu_backward and dlogits of crossentropy_backward is written,
 *    whatever the buffer held before, so the host never zeroes them;
 *  - one exception: rmsnorm_backward ADDS (+=) into dinp, the residual stream's gradient, which
 *    already holds the gradient that the skip connection passes through unchanged.
 * Version 2 introduced this split (version 1 accumulated into every gradient) and removed
 * residual_backward: the residual stream's gradient is one buffer that the model passes on as is.
 * Version 3 keeps no (B,NH,T,T) attention probabilities: attention_forward saves each row's
 * softmax statistics and attention_backward recomputes the probabilities from them and q, k
 * (flash-style); sqrelu_backward reads the forward's output instead of its input, and may run in
 * place. A version 2 plugin still loads: its two attention ops and its sqrelu_backward, built for
 * the old contracts, are replaced by the host's reference kernels (reported as not native).
 *
 * Size names: B batch, T sequence length, C channels, NH heads (C % NH == 0), hs = C/NH,
 * N = B*T rows, OC output channels, V vocabulary size.
 */
#ifndef RANDYGPT_BACKEND_H
#define RANDYGPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any change to rg_backend or to the contract of an op. A plugin built for another version
 * is refused by the loader with a message that names both versions. */
#define RG_BACKEND_ABI_VERSION 3

#define RG_BACKEND_ENTRY_SYMBOL "randygpt_backend_entry"

/* The size of the buffer the host gives describe() (and create()'s err is at least this long). */
#define RG_DESCRIBE_LEN 1024

#if defined(_WIN32)
#define RG_EXPORT __declspec(dllexport)
#else
#define RG_EXPORT __attribute__((visibility("default")))
#endif

/* Declares the entry point of a plugin: RG_BACKEND_ENTRY { return &my_table; } */
#define RG_BACKEND_ENTRY RG_EXPORT const struct rg_backend *randygpt_backend_entry(void)

typedef const struct rg_backend *(*rg_backend_entry_fn)(void);

/* One key=value option given on the command line (--backend-opt key=value). */
typedef struct rg_option {
    const char *key;
    const char *value;
} rg_option;

/* What a backend instance is created with. */
typedef struct rg_backend_config {
    int num_threads;          /* > 0: exactly this many threads, for the backend and any library in it */
    int num_options;
    const rg_option *options; /* num_options entries; an unknown key must be refused by create */
} rg_backend_config;

/* Opaque per-instance state of a backend. */
typedef struct rg_backend_ctx rg_backend_ctx;

typedef struct rg_backend {
    uint32_t abi_version;  /* RG_BACKEND_ABI_VERSION the plugin was built with */
    uint32_t struct_size;  /* sizeof(struct rg_backend) the plugin was built with */
    const char *name;      /* short name, e.g. "openmp" */
    const char *summary;   /* one line for `randygpt backends` */

    /* ---- lifecycle (required) ---- */

    /* Creates an instance. On failure returns NULL and writes one line (no newline) into err. */
    rg_backend_ctx *(*create)(const rg_backend_config *cfg, char *err, size_t err_len);
    void (*destroy)(rg_backend_ctx *ctx);
    /* Writes what the instance really runs: library and version, kernel set picked at run time,
     * thread count. One line, no newline. The host passes RG_DESCRIBE_LEN bytes; a text that does
     * not fit is shown cut and marked so. */
    void (*describe)(rg_backend_ctx *ctx, char *buf, size_t buf_len);

    /* ---- required ops ---- */

    /* out is (N,OC), inp is (N,C), weight is (OC,C): out = inp @ weight^T. */
    void (*matmul_forward)(rg_backend_ctx *ctx, float *out, const float *inp, const float *weight,
                           int N, int C, int OC);
    /* dinp is (N,C), dweight is (OC,C), dout is (N,OC), inp is (N,C), weight is (OC,C):
     * dinp = dout @ weight (overwritten); dweight += dout^T @ inp (accumulated). */
    void (*matmul_backward)(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
    /* Causal multi-head self-attention.
     * out is (B,T,C), stats is (B,NH,T,2), qkv is (B,T,3C) holding q, k, v in that order, each (C)
     * split into NH heads of hs. With scores s[t2] = q[b,t,h].k[b,t2,h] / sqrt(hs) for t2 <= t:
     * stats[b,h,t] = {m, r}, m = max_t2 s[t2], r = 1 / sum_t2 exp(s[t2] - m);
     * att[t2] = exp(s[t2] - m) * r; out[b,t,h*hs:(h+1)*hs] = sum_t2<=t att[t2] * v[b,t2,h].
     * The probabilities att are not kept: the backward recomputes them from q, k and stats. */
    void (*attention_forward)(rg_backend_ctx *ctx, float *out, float *stats, const float *qkv,
                              int B, int T, int C, int NH);
    /* dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C), stats is (B,NH,T,2) from the forward:
     * dqkv = gradient of out with respect to qkv (overwritten, every element), with att
     * recomputed as the forward defines it: from q, k and stats, or, where a kernel has a whole
     * row at hand, from q and k alone (its own max and sum: the same up to rounding). */
    void (*attention_backward)(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                               const float *qkv, const float *stats, int B, int T, int C, int NH);
    /* AdamW on n parameters, in place. params, m, v are (n), grads is (n).
     * g = grads[i] * grad_scale (grad_scale carries gradient clipping);
     * m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2;
     * mhat = m / (1 - beta1^t); vhat = v / (1 - beta2^t);
     * params -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * params). t counts from 1. */
    void (*adamw_step)(rg_backend_ctx *ctx, float *params, float *m, float *v, const float *grads,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t);

    /* ---- optional ops: NULL means the host's reference kernel runs ---- */

    /* out is (N,C), rstd is (N), inp is (N,C): rstd = 1/sqrt(mean(inp^2) + 1e-5), out = inp * rstd.
     * No learnable gain. */
    void (*rmsnorm_forward)(rg_backend_ctx *ctx, float *out, float *rstd, const float *inp,
                            int N, int C);
    /* dinp is (N,C), dout is (N,C), inp is (N,C), rstd is (N): dinp += d rmsnorm (accumulated,
     * unlike the other activation gradients: dinp is the residual stream's gradient, see above). */
    void (*rmsnorm_backward)(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *inp,
                             const float *rstd, int N, int C);
    /* out, inp are (n): out = max(inp, 0)^2. */
    void (*sqrelu_forward)(rg_backend_ctx *ctx, float *out, const float *inp, size_t n);
    /* dinp, dout, out are (n), out the forward's output max(x, 0)^2: dinp = dout * 2 sqrt(out)
     * (= dout * 2 max(x, 0); overwritten; dinp may alias dout, element by element). */
    void (*sqrelu_backward)(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *out,
                            size_t n);
    /* out, inp1, inp2 are (n): out = inp1 + inp2 (out may alias inp1). */
    void (*residual_forward)(rg_backend_ctx *ctx, float *out, const float *inp1, const float *inp2,
                             size_t n);
    /* out is (B,T,C), tokens is (B,T), wte is (V,C), wpe is (maxT,C): out = wte[tok] + wpe[t]. */
    void (*embedding_forward)(rg_backend_ctx *ctx, float *out, const int32_t *tokens,
                              const float *wte, const float *wpe, int B, int T, int C);
    /* dwte is (V,C), dwpe is (maxT,C), dout is (B,T,C), tokens is (B,T): dwte[tok] += dout,
     * dwpe[t] += dout (accumulated). Several rows of dout may hit the same dwte row. */
    void (*embedding_backward)(rg_backend_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                               const int32_t *tokens, int B, int T, int C);
    /* Fused softmax + cross-entropy. losses is (N), probs is (N,V), logits is (N,V), targets is (N):
     * probs = softmax(logits); losses[i] = -log(probs[i, targets[i]]). */
    void (*crossentropy_forward)(rg_backend_ctx *ctx, float *losses, float *probs,
                                 const float *logits, const int32_t *targets, int N, int V);
    /* dlogits is (N,V), probs is (N,V), targets is (N): gradient of dloss * sum(losses):
     * dlogits[i,j] = dloss * (probs[i,j] - (j == targets[i])) (overwritten). The host passes
     * dloss = 1/N. */
    void (*crossentropy_backward)(rg_backend_ctx *ctx, float *dlogits, const float *probs,
                                  const int32_t *targets, int N, int V, float dloss);
    /* x is (n): returns sum(x^2), accumulated in double (used for gradient clipping). */
    double (*sum_squares)(rg_backend_ctx *ctx, const float *x, size_t n);
} rg_backend;

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_BACKEND_H */
