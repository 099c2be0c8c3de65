/*
 * Reference kernels: plain, single-threaded C, written for clarity rather than speed. They are the
 * ground truth every backend is tested against, so each follows its contract in backend.h to the
 * letter: forward ops overwrite their outputs; backward ops overwrite (=) activation gradients and
 * accumulate (+=) into parameter gradients and into rmsnorm's dinp. The ctx argument is ignored
 * throughout.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "randygpt/ops.h"

/* ---------------------------------------------------------------------------------------------- */
/* matmul */

/* out is (N,OC), inp is (N,C), weight is (OC,C): out = inp @ weight^T. */
void rg_ref_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp, const float *weight,
                           int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * OC;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float sum = 0.0f;
            for (int c = 0; c < C; c++) {
                sum += x[c] * w[c];
            }
            y[o] = sum;
        }
    }
}

/* dinp is (N,C), dweight is (OC,C), dout is (N,OC), inp is (N,C), weight is (OC,C):
 * dinp = dout @ weight (overwritten); dweight += dout^T @ inp (accumulated). */
void rg_ref_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (size_t)n * OC;
        const float *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            dx[c] = 0.0f;
        }
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float *dw = dweight + (size_t)o * C;
            float d = dy[o];
            for (int c = 0; c < C; c++) {
                dx[c] += d * w[c];
                dw[c] += d * x[c];
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* attention */

/* q and k of row t of head h of batch b; qkv is (B,T,3C). */
#define Q_ROW(qkv, b, t, h) ((qkv) + ((size_t)(b) * T + (t)) * 3 * C + (h) * hs)
#define K_ROW(qkv, b, t, h) (Q_ROW(qkv, b, t, h) + C)
#define V_ROW(qkv, b, t, h) (Q_ROW(qkv, b, t, h) + 2 * C)

/* The scaled score q.k / sqrt(hs) of one query and one key, each (hs). */
static float att_score(const float *q, const float *k, int hs, float scale) {
    float s = 0.0f;
    for (int i = 0; i < hs; i++) {
        s += q[i] * k[i];
    }
    return s * scale;
}

/* The probability of a key whose score is s, in a row with statistics st = {m, r}: the one
 * formula of the forward and the backward, so both see the same bits. */
static float att_prob(float s, const float st[2]) { return expf(s - st[0]) * st[1]; }

/* out is (B,T,C), stats is (B,NH,T,2), qkv is (B,T,3C) holding q, k, v, each split into NH heads
 * of hs = C/NH. Per row: stats = {m, r} = {max score, 1/sum exp(score - m)} over t2 <= t,
 * att[t2] = exp(score - m) r; out[b,t,h*hs:(h+1)*hs] = sum_t2 att[t2] * v[b,t2,h]. The scores are
 * recomputed in each of the three passes instead of stored, so the kernel needs no workspace. */
void rg_ref_attention_forward(rg_backend_ctx *ctx, float *out, float *stats, const float *qkv,
                              int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *q = Q_ROW(qkv, b, t, h);
                float *st = stats + (((size_t)b * NH + h) * T + t) * 2;
                float maxval = -INFINITY, sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    maxval = fmaxf(maxval, att_score(q, K_ROW(qkv, b, t2, h), hs, scale));
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    sum += expf(att_score(q, K_ROW(qkv, b, t2, h), hs, scale) - maxval);
                }
                st[0] = maxval;
                st[1] = 1.0f / sum;
                float *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0.0f;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = V_ROW(qkv, b, t2, h);
                    float a = att_prob(att_score(q, K_ROW(qkv, b, t2, h), hs, scale), st);
                    for (int i = 0; i < hs; i++) {
                        o[i] += a * v[i];
                    }
                }
            }
        }
    }
}

/* dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C), stats is (B,NH,T,2) from the forward:
 * dqkv = gradient of out with respect to qkv (overwritten: zeroed first, then every row t of a
 * head adds its terms). Per row t of a head, with att[t2] recomputed from q, k and stats and
 * datt[t2] = v[t2] . dout[t]:
 *   dv[t2] += att[t2] dout[t];  dscore[t2] = att[t2] (datt[t2] - sum_t3 att[t3] datt[t3]);
 *   dq[t] += scale sum_t2 dscore[t2] k[t2];  dk[t2] += scale dscore[t2] q[t].
 * att and datt are recomputed in the second pass instead of stored. */
void rg_ref_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                               const float *qkv, const float *stats, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * T * 3 * C * sizeof(float));
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *st = stats + (((size_t)b * NH + h) * T + t) * 2;
                const float *dy = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = Q_ROW(qkv, b, t, h);
                float *dq = Q_ROW(dqkv, b, t, h);

                /* pass 1: dv, and the softmax Jacobian's row term sum_t2 att datt */
                float dot = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = V_ROW(qkv, b, t2, h);
                    float *dv = V_ROW(dqkv, b, t2, h);
                    float a = att_prob(att_score(q, K_ROW(qkv, b, t2, h), hs, scale), st);
                    float datt = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        datt += v[i] * dy[i];
                        dv[i] += a * dy[i];
                    }
                    dot += a * datt;
                }
                /* pass 2: through the softmax and the scaled dot product into q and k */
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = K_ROW(qkv, b, t2, h);
                    const float *v = V_ROW(qkv, b, t2, h);
                    float *dk = K_ROW(dqkv, b, t2, h);
                    float a = att_prob(att_score(q, k, hs, scale), st);
                    float datt = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        datt += v[i] * dy[i];
                    }
                    float dscore = a * (datt - dot) * scale;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dscore * k[i];
                        dk[i] += dscore * q[i];
                    }
                }
            }
        }
    }
}

#undef Q_ROW
#undef K_ROW
#undef V_ROW

/* ---------------------------------------------------------------------------------------------- */
/* AdamW */

/* params, m, v, grads are (n). g = grads * grad_scale; moments updated in place; bias-corrected
 * step plus decoupled weight decay: params -= lr * (mhat / (sqrt(vhat) + eps) + wd * params). */
void rg_ref_adamw_step(rg_backend_ctx *ctx, float *params, float *m, float *v, const float *grads,
                       size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = m[i] / bc1;
        float vhat = v[i] / bc2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* RMSNorm (no gain) */

#define RG_RMSNORM_EPS 1e-5f

/* out is (N,C), rstd is (N), inp is (N,C): rstd = 1/sqrt(mean(inp^2) + 1e-5), out = inp * rstd. */
void rg_ref_rmsnorm_forward(rg_backend_ctx *ctx, float *out, float *rstd, const float *inp, int N,
                            int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) {
            ss += x[c] * x[c];
        }
        float r = 1.0f / sqrtf(ss / C + RG_RMSNORM_EPS);
        for (int c = 0; c < C; c++) {
            y[c] = x[c] * r;
        }
        rstd[n] = r;
    }
}

/* dinp is (N,C), dout is (N,C), inp is (N,C), rstd is (N). With y = x r:
 * dinp += r (dy - y mean(dy * y)) (accumulated: dinp is the residual stream's gradient). */
void rg_ref_rmsnorm_backward(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *inp,
                             const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n];
        float dot = 0.0f;
        for (int c = 0; c < C; c++) {
            dot += dy[c] * x[c] * r;
        }
        dot /= C;
        for (int c = 0; c < C; c++) {
            dx[c] += r * (dy[c] - x[c] * r * dot);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* squared ReLU */

/* out, inp are (n): out = max(inp, 0)^2. */
void rg_ref_sqrelu_forward(rg_backend_ctx *ctx, float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float r = inp[i] > 0.0f ? inp[i] : 0.0f;
        out[i] = r * r;
    }
}

/* dinp, dout, out are (n), out = max(x, 0)^2 of the forward: dinp = dout * 2 sqrt(out), which is
 * dout * 2 max(x, 0) exactly (sqrt(r*r) == r in binary floating point unless r*r underflows).
 * dinp may alias dout. */
void rg_ref_sqrelu_backward(rg_backend_ctx *ctx, float *dinp, const float *dout, const float *out,
                            size_t n) {
    for (size_t i = 0; i < n; i++) {
        dinp[i] = dout[i] * 2.0f * sqrtf(out[i]);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* residual */

/* out, inp1, inp2 are (n): out = inp1 + inp2 (out may alias inp1). */
void rg_ref_residual_forward(rg_backend_ctx *ctx, float *out, const float *inp1,
                             const float *inp2, size_t n) {
    for (size_t i = 0; i < n; i++) {
        out[i] = inp1[i] + inp2[i];
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* embedding */

/* out is (B,T,C), tokens is (B,T), wte is (V,C), wpe is (maxT,C): out = wte[tok] + wpe[t]. */
void rg_ref_embedding_forward(rg_backend_ctx *ctx, float *out, const int32_t *tokens,
                              const float *wte, const float *wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *te = wte + (size_t)tokens[(size_t)b * T + t] * C;
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                o[c] = te[c] + pe[c];
            }
        }
    }
}

/* dwte is (V,C), dwpe is (maxT,C), dout is (B,T,C), tokens is (B,T):
 * dwte[tok] += dout, dwpe[t] += dout (accumulated; repeated tokens add into one row). */
void rg_ref_embedding_backward(rg_backend_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                               const int32_t *tokens, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dte = dwte + (size_t)tokens[(size_t)b * T + t] * C;
            float *dpe = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                dte[c] += d[c];
                dpe[c] += d[c];
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* softmax + cross-entropy */

/* losses is (N), probs is (N,V), logits is (N,V), targets is (N):
 * probs = softmax(logits) per row; losses[i] = -log(probs[i, targets[i]]). */
void rg_ref_crossentropy_forward(rg_backend_ctx *ctx, float *losses, float *probs,
                                 const float *logits, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float maxval = -INFINITY;
        for (int j = 0; j < V; j++) {
            if (z[j] > maxval) {
                maxval = z[j];
            }
        }
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            p[j] = expf(z[j] - maxval);
            sum += p[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < V; j++) {
            p[j] *= inv;
        }
        losses[n] = -logf(p[targets[n]]);
    }
}

/* dlogits is (N,V), probs is (N,V), targets is (N):
 * dlogits[i,j] = dloss * (probs[i,j] - (j == targets[i])) (overwritten). */
void rg_ref_crossentropy_backward(rg_backend_ctx *ctx, float *dlogits, const float *probs,
                                  const int32_t *targets, int N, int V, float dloss) {
    for (int n = 0; n < N; n++) {
        const float *p = probs + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
        int target = targets[n];
        for (int j = 0; j < V; j++) {
            float indicator = j == target ? 1.0f : 0.0f;
            dz[j] = dloss * (p[j] - indicator);
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* gradient norm */

/* x is (n): sum(x^2) accumulated in double, so the norm of ~1e6 small gradients keeps its digits. */
double rg_ref_sum_squares(rg_backend_ctx *ctx, const float *x, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)x[i] * (double)x[i];
    }
    return sum;
}

/* ---------------------------------------------------------------------------------------------- */
/* the reference backend table ("single") */

/* The reference kernels keep no state: every instance is this one placeholder, non-NULL so that
 * create can signal success. */
static int ref_instance;

static rg_backend_ctx *ref_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    if (!cfg) {
        snprintf(err, err_len, "backend single: no configuration given");
        return NULL;
    }
    if (cfg->num_threads != 1) {
        snprintf(err, err_len, "backend single runs on exactly 1 thread (asked for %d)",
                 cfg->num_threads);
        return NULL;
    }
    if (cfg->num_options > 0) {
        snprintf(err, err_len, "backend single takes no options (got '%s')",
                 cfg->options[0].key ? cfg->options[0].key : "");
        return NULL;
    }
    return (rg_backend_ctx *)&ref_instance;
}

static void ref_destroy(rg_backend_ctx *ctx) {}

static void ref_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    snprintf(buf, buf_len, "reference C kernels, 1 thread");
}

const rg_backend rg_reference_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "single",
    .summary = "reference kernels, one thread",
    .create = ref_create,
    .destroy = ref_destroy,
    .describe = ref_describe,
#define REF_OP_(name, KIND, req, ret, params) .name = rg_ref_##name,
    RG_OP_LIST(REF_OP_)
#undef REF_OP_
};
