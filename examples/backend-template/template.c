/*
 * A minimal randyGPT-C backend: only the required ops, plain C, one thread. Every optional op is
 * left NULL, so the host runs its reference kernel for it and reports it as not native.
 * Copy this folder, rename the backend, and replace the kernels with faster ones; `randygpt check`
 * tells whether they still compute the same thing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <randygpt/backend.h>

/* The instance state. This backend needs none beyond its thread count. */
struct rg_backend_ctx {
    int num_threads;
};

static rg_backend_ctx *template_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    if (cfg->num_threads != 1) {
        snprintf(err, err_len, "backend 'template' runs on 1 thread, not %d", cfg->num_threads);
        return NULL;
    }
    if (cfg->num_options > 0) {
        snprintf(err, err_len, "unknown option '%s' for backend 'template'", cfg->options[0].key);
        return NULL;
    }
    rg_backend_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    ctx->num_threads = 1;
    return ctx;
}

static void template_destroy(rg_backend_ctx *ctx) { free(ctx); }

static void template_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    snprintf(buf, buf_len, "template: plain C, i-k-j loop matmul, %d thread", ctx->num_threads);
}

/* out is (N,OC), inp is (N,C), weight is (OC,C): out = inp @ weight^T. */
static void template_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp,
                                    const float *weight, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int c = 0; c < C; c++) acc += inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = acc;
        }
}

/* dinp is (N,C), dweight is (OC,C), dout is (N,OC), inp is (N,C), weight is (OC,C):
 * dinp = dout @ weight (overwritten, so zeroed first); dweight += dout^T @ inp (accumulated).
 * The i-k-j order keeps the innermost loop contiguous in both operands. */
static void template_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight,
                                     const float *dout, const float *inp, const float *weight,
                                     int N, int C, int OC) {
    memset(dinp, 0, (size_t)N * C * sizeof *dinp);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float d = dout[(size_t)n * OC + o];
            float *dw = dweight + (size_t)o * C;
            float *di = dinp + (size_t)n * C;
            const float *w = weight + (size_t)o * C;
            const float *x = inp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                di[c] += d * w[c];
                dw[c] += d * x[c];
            }
        }
}

/* out is (B,T,C), att is (B,NH,T,T), qkv is (B,T,3C): causal softmax attention per head. */
static void template_attention_forward(rg_backend_ctx *ctx, float *out, float *att,
                                       const float *qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY, sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    a[t2] = s * scale;
                    if (a[t2] > maxv) maxv = a[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    a[t2] = expf(a[t2] - maxv);
                    sum += a[t2];
                }
                for (int t2 = 0; t2 < T; t2++) a[t2] = t2 <= t ? a[t2] / sum : 0.0f;
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                memset(o, 0, (size_t)hs * sizeof *o);
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += a[t2] * v[i];
                }
            }
}

/* dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C), att is (B,NH,T,T): dqkv = d attention
 * (overwritten, so zeroed first: each position's dk and dv gather terms from every later query). */
static void template_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int C,
                                        int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * T * 3 * C * sizeof *dqkv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                const float *d = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                /* sum_t2 att * datt, where datt[t2] = d . v[t2] */
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * hs;
                    float da = 0.0f;
                    for (int i = 0; i < hs; i++) da += d[i] * v[i];
                    dot += a[t2] * da;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    size_t row = ((size_t)b * T + t2) * 3 * C;
                    const float *k = qkv + row + C + h * hs;
                    const float *v = qkv + row + 2 * C + h * hs;
                    float *dk = dqkv + row + C + h * hs;
                    float *dv = dqkv + row + 2 * C + h * hs;
                    float da = 0.0f;
                    for (int i = 0; i < hs; i++) da += d[i] * v[i];
                    float dpre = a[t2] * (da - dot) * scale; /* softmax backward, then the scale */
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                        dv[i] += a[t2] * d[i];
                    }
                }
            }
}

/* params, m, v, grads are (n): one AdamW step with decoupled weight decay. */
static void template_adamw_step(rg_backend_ctx *ctx, float *params, float *m, float *v,
                                const float *grads, size_t n, float lr, float beta1, float beta2,
                                float eps, float weight_decay, float grad_scale, int t) {
    float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        params[i] -= lr * ((m[i] / c1) / (sqrtf(v[i] / c2) + eps) + weight_decay * params[i]);
    }
}

static const rg_backend template_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "template",
    .summary = "example out-of-tree backend: required ops only, plain C, 1 thread",
    .create = template_create,
    .destroy = template_destroy,
    .describe = template_describe,
    .matmul_forward = template_matmul_forward,
    .matmul_backward = template_matmul_backward,
    .attention_forward = template_attention_forward,
    .attention_backward = template_attention_backward,
    .adamw_step = template_adamw_step,
    /* Optional ops stay NULL: the host's reference kernels run them. */
};

RG_BACKEND_ENTRY { return &template_backend; }
