/*
 * The memory-bound ops: element-wise, row-wise and embedding kernels, cross-entropy, the gradient
 * norm and AdamW. Each splits its range with a grain big enough (tens of thousands of floats) that
 * a tiny op stays on the calling thread instead of paying a wake-up.
 */
#include <math.h>
#include <string.h>

#include "rg_par_internal.h"

#define GRAIN_FLOATS (1 << 15) /* ~128 KiB of data per chunk at least */

/* Rows of C floats per chunk so that a chunk holds at least GRAIN_FLOATS (rounded up, not one row
 * more: 512 rows of 128 floats are two chunks, not one). */
static int64_t row_grain(int C) {
    int64_t c = C > 0 ? C : 1;
    return (GRAIN_FLOATS + c - 1) / c;
}

/* ---- RMSNorm ---- */

typedef struct rows_args {
    float *out, *aux;
    const float *inp, *inp2, *aux_in;
    const int32_t *idx;
    int C, T, V;
    int64_t rows; /* B*T rows of the embedding backward */
    float scalar;
} rows_args;

/* out is (N,C), rstd is (N), inp is (N,C): rstd = 1/sqrt(mean(inp^2) + 1e-5), out = inp * rstd. */
static void rmsnorm_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int C = a->C;
    for (int64_t n = begin; n < end; n++) {
        const float *x = a->inp + n * C;
        float *y = a->out + n * C;
        float r = 1.0f / sqrtf(rg_par_dot(x, x, C) / C + 1e-5f);
        for (int c = 0; c < C; c++) {
            y[c] = x[c] * r;
        }
        a->aux[n] = r;
    }
}

void rg_par_op_rmsnorm_forward(rg_backend_ctx *ctx, float *out, float *rstd, const float *inp,
                               int N, int C) {
    rows_args a = {.out = out, .aux = rstd, .inp = inp, .C = C};
    rg_par_for(rg_par_of(ctx)->par, N, row_grain(C), rmsnorm_forward_range, &a);
}

/* dinp is (N,C), dout is (N,C), inp is (N,C), rstd is (N). With y = x r:
 * dinp += r (dy - y mean(dy * y)) (accumulated into the residual stream's gradient). */
static void rmsnorm_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int C = a->C;
    for (int64_t n = begin; n < end; n++) {
        const float *x = a->inp + n * C;
        const float *dy = a->inp2 + n * C;
        float *dx = a->out + n * C;
        float r = a->aux_in[n];
        float dot = rg_par_dot(dy, x, C) * r / C;
        for (int c = 0; c < C; c++) {
            dx[c] += r * (dy[c] - x[c] * r * dot);
        }
    }
}

void rg_par_op_rmsnorm_backward(rg_backend_ctx *ctx, float *dinp, const float *dout,
                                const float *inp, const float *rstd, int N, int C) {
    rows_args a = {.out = dinp, .inp = inp, .inp2 = dout, .aux_in = rstd, .C = C};
    rg_par_for(rg_par_of(ctx)->par, N, row_grain(C), rmsnorm_backward_range, &a);
}

/* ---- element-wise: squared ReLU and residual ---- */

typedef struct elem_args {
    float *out;
    const float *inp1, *inp2;
} elem_args;

/* max(v, 0) as the reference computes it (v > 0 ? v : +0, so NaN gives 0), by masking v's bits:
 * GCC keeps the ?: form a branch in a scalar loop on AVX2 (no masked stores), and the signs of the
 * pre-activations defeat the branch predictor (the op was 12x slower than the squared ReLU's
 * backward on a Zen 3); the mask vectorises at every width. */
static inline float relu(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)(v > 0.0f);
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* out, inp are (n): out = max(inp, 0)^2. */
static void sqrelu_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const elem_args *a = arg;
    const float *x = a->inp1;
    float *y = a->out;
    for (int64_t i = begin; i < end; i++) {
        float r = relu(x[i]);
        y[i] = r * r;
    }
}

void rg_par_op_sqrelu_forward(rg_backend_ctx *ctx, float *out, const float *inp, size_t n) {
    elem_args a = {.out = out, .inp1 = inp};
    rg_par_for(rg_par_of(ctx)->par, (int64_t)n, GRAIN_FLOATS, sqrelu_forward_range, &a);
}

/* dinp, dout, out are (n), out = max(x, 0)^2: dinp = dout * 2 sqrt(out) (overwritten; dinp may
 * alias dout, element by element). */
static void sqrelu_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const elem_args *a = arg;
    for (int64_t i = begin; i < end; i++) {
        a->out[i] = a->inp1[i] * 2.0f * sqrtf(a->inp2[i]);
    }
}

void rg_par_op_sqrelu_backward(rg_backend_ctx *ctx, float *dinp, const float *dout,
                               const float *out, size_t n) {
    elem_args a = {.out = dinp, .inp1 = dout, .inp2 = out};
    rg_par_for(rg_par_of(ctx)->par, (int64_t)n, GRAIN_FLOATS, sqrelu_backward_range, &a);
}

/* out, inp1, inp2 are (n): out = inp1 + inp2 (out may alias inp1, element by element). */
static void residual_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const elem_args *a = arg;
    for (int64_t i = begin; i < end; i++) {
        a->out[i] = a->inp1[i] + a->inp2[i];
    }
}

void rg_par_op_residual_forward(rg_backend_ctx *ctx, float *out, const float *inp1,
                                const float *inp2, size_t n) {
    elem_args a = {.out = out, .inp1 = inp1, .inp2 = inp2};
    rg_par_for(rg_par_of(ctx)->par, (int64_t)n, GRAIN_FLOATS, residual_forward_range, &a);
}

/* ---- embedding ---- */

/* Rows [begin, end) of (B*T). out is (B,T,C), tokens is (B,T), wte is (V,C), wpe is (maxT,C). */
static void embedding_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int C = a->C;
    for (int64_t n = begin; n < end; n++) {
        float *o = a->out + n * C;
        const float *te = a->inp + (size_t)a->idx[n] * C;
        const float *pe = a->inp2 + (n % a->T) * C;
        for (int c = 0; c < C; c++) {
            o[c] = te[c] + pe[c];
        }
    }
}

void rg_par_op_embedding_forward(rg_backend_ctx *ctx, float *out, const int32_t *tokens,
                                 const float *wte, const float *wpe, int B, int T, int C) {
    rows_args a = {.out = out, .inp = wte, .inp2 = wpe, .idx = tokens, .C = C, .T = T};
    rg_par_for(rg_par_of(ctx)->par, (int64_t)B * T, row_grain(C), embedding_forward_range, &a);
}

#define EMB_CBLOCK 16 /* channels per work item: one cache line of a row */

/* Channel blocks [begin, end): every row of dout, but only these channels, so two threads never
 * write the same dwte or dwpe element (repeated tokens need no atomics) and every element sums its
 * rows in order. dwte is (V,C), dwpe is (maxT,C), dout is (B,T,C), tokens is (B,T):
 * dwte[tok] += dout, dwpe[t] += dout (accumulated). */
static void embedding_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int C = a->C;
    int c0 = (int)begin * EMB_CBLOCK;
    int c1 = (int)end * EMB_CBLOCK < C ? (int)end * EMB_CBLOCK : C;
    for (int64_t n = 0; n < a->rows; n++) {
        const float *d = a->inp + n * C;
        float *dte = a->out + (size_t)a->idx[n] * C;
        float *dpe = a->aux + (n % a->T) * C;
        for (int c = c0; c < c1; c++) {
            dte[c] += d[c];
            dpe[c] += d[c];
        }
    }
}

void rg_par_op_embedding_backward(rg_backend_ctx *ctx, float *dwte, float *dwpe,
                                  const float *dout, const int32_t *tokens, int B, int T, int C) {
    rows_args a = {.out = dwte, .aux = dwpe, .inp = dout, .idx = tokens, .C = C, .T = T,
                   .rows = (int64_t)B * T};
    if (B <= 0 || T <= 0 || C <= 0) {
        return;
    }
    int64_t blocks = (C + EMB_CBLOCK - 1) / EMB_CBLOCK;
    int64_t grain = 1 + GRAIN_FLOATS / ((int64_t)B * T * EMB_CBLOCK);
    rg_par_for(rg_par_of(ctx)->par, blocks, grain, embedding_backward_range, &a);
}

/* ---- softmax + cross-entropy ---- */

/* Rows [begin, end). losses is (N), probs is (N,V), logits is (N,V), targets is (N). */
static void crossentropy_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int V = a->V;
    for (int64_t n = begin; n < end; n++) {
        const float *z = a->inp + n * V;
        float *p = a->out + n * V;
        memcpy(p, z, (size_t)V * sizeof(float));
        float inv = 1.0f / rg_par_exp_sum(p, V, rg_par_max(z, V));
        for (int j = 0; j < V; j++) {
            p[j] *= inv;
        }
        a->aux[n] = -logf(p[a->idx[n]]);
    }
}

void rg_par_op_crossentropy_forward(rg_backend_ctx *ctx, float *losses, float *probs,
                                    const float *logits, const int32_t *targets, int N, int V) {
    if (V <= 0) {
        return;
    }
    rows_args a = {.out = probs, .aux = losses, .inp = logits, .idx = targets, .V = V};
    rg_par_for(rg_par_of(ctx)->par, N, row_grain(V), crossentropy_forward_range, &a);
}

/* Rows [begin, end). dlogits is (N,V), probs is (N,V), targets is (N):
 * dlogits[i,j] = dloss * (probs[i,j] - (j == targets[i])) (overwritten). */
static void crossentropy_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const rows_args *a = arg;
    int V = a->V;
    float dloss = a->scalar;
    for (int64_t n = begin; n < end; n++) {
        const float *p = a->inp + n * V;
        float *dz = a->out + n * V;
        int target = a->idx[n];
        for (int j = 0; j < V; j++) {
            float indicator = j == target ? 1.0f : 0.0f;
            dz[j] = dloss * (p[j] - indicator);
        }
    }
}

void rg_par_op_crossentropy_backward(rg_backend_ctx *ctx, float *dlogits, const float *probs,
                                     const int32_t *targets, int N, int V, float dloss) {
    rows_args a = {.out = dlogits, .inp = probs, .idx = targets, .V = V, .scalar = dloss};
    rg_par_for(rg_par_of(ctx)->par, N, row_grain(V), crossentropy_backward_range, &a);
}

/* ---- gradient norm ---- */

#define SUMSQ_BLOCK 4096 /* floats per partial sum: the summation order depends on n only */

/* Half a float vector and its doubles (one native vector of doubles): a vector of VL doubles
 * would be two registers, and GCC kept that accumulator on the stack, a store and a reload per
 * vector of x. */
typedef float vfh __attribute__((vector_size(RG_VL / 2 * sizeof(float)), aligned(4)));
typedef double vdh __attribute__((vector_size(RG_VL / 2 * sizeof(double))));

typedef struct sumsq_args {
    const float *x;
    size_t n;
    double *partials; /* (blocks) */
} sumsq_args;

/* Blocks [begin, end) of x: partials[i] = sum of x^2 over block i, in double. */
static void sum_squares_range(void *arg, int64_t begin, int64_t end, int tid) {
    const sumsq_args *a = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        size_t i = (size_t)blk * SUMSQ_BLOCK;
        size_t stop = i + SUMSQ_BLOCK < a->n ? i + SUMSQ_BLOCK : a->n;
        vdh lo = {0}, hi = {0}; /* lanes j and VL/2 + j of each vector of x */
        for (; i + RG_VL <= stop; i += RG_VL) {
            vdh l = __builtin_convertvector(*(const vfh *)(a->x + i), vdh);
            vdh h = __builtin_convertvector(*(const vfh *)(a->x + i + RG_VL / 2), vdh);
            lo += l * l;
            hi += h * h;
        }
        double s = 0.0;
        for (int j = 0; j < RG_VL / 2; j++) {
            s += lo[j];
        }
        for (int j = 0; j < RG_VL / 2; j++) {
            s += hi[j];
        }
        for (; i < stop; i++) {
            s += (double)a->x[i] * (double)a->x[i];
        }
        a->partials[blk] = s;
    }
}

/* x is (n): returns sum(x^2) in double. */
double rg_par_op_sum_squares(rg_backend_ctx *ctx, const float *x, size_t n) {
    rg_par_backend *pb = rg_par_of(ctx);
    int64_t blocks = (int64_t)((n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK);
    /* two floats per double; the workspace base is 64-byte aligned */
    double *partials = (double *)rg_par_workspace(pb, (size_t)blocks * 2, 0);
    sumsq_args a = {.x = x, .n = n, .partials = partials};
    rg_par_for(pb->par, blocks, 1 + GRAIN_FLOATS / SUMSQ_BLOCK, sum_squares_range, &a);
    double sum = 0.0;
    for (int64_t i = 0; i < blocks; i++) {
        sum += partials[i];
    }
    return sum;
}

/* ---- AdamW ---- */

typedef struct adamw_args {
    float *params, *m, *v;
    const float *grads;
    float lr, beta1, beta2, eps, weight_decay, grad_scale, bc1, bc2;
} adamw_args;

/* params, m, v, grads are (n), elements [begin, end). */
static void adamw_range(void *arg, int64_t begin, int64_t end, int tid) {
    const adamw_args *a = arg;
    float *restrict p = a->params, *restrict m = a->m, *restrict v = a->v;
    const float *restrict grads = a->grads;
    for (int64_t i = begin; i < end; i++) {
        float g = grads[i] * a->grad_scale;
        m[i] = a->beta1 * m[i] + (1.0f - a->beta1) * g;
        v[i] = a->beta2 * v[i] + (1.0f - a->beta2) * g * g;
        float mhat = m[i] / a->bc1;
        float vhat = v[i] / a->bc2;
        p[i] -= a->lr * (mhat / (sqrtf(vhat) + a->eps) + a->weight_decay * p[i]);
    }
}

void rg_par_op_adamw_step(rg_backend_ctx *ctx, float *params, float *m, float *v,
                          const float *grads, size_t n, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float grad_scale, int t) {
    adamw_args a = {.params = params, .m = m, .v = v, .grads = grads, .lr = lr, .beta1 = beta1,
                    .beta2 = beta2, .eps = eps, .weight_decay = weight_decay,
                    .grad_scale = grad_scale, .bc1 = 1.0f - powf(beta1, (float)t),
                    .bc2 = 1.0f - powf(beta2, (float)t)};
    /* four streams read and three written per element: a smaller grain than the others */
    rg_par_for(rg_par_of(ctx)->par, (int64_t)n, GRAIN_FLOATS / 4, adamw_range, &a);
}
