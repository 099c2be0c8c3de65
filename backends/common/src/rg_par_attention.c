/*
 * Causal self-attention forward and backward, parallel over (batch, head) pairs: each pair owns its
 * rows of att, its slice of out and its slice of dqkv, so threads never write the same element.
 *
 * Per pair, K (and V in the backward) are first transposed into per-thread workspace as (hs, T), so
 * the score row q . k[t2] over t2 <= t is hs vector AXPYs along t2 (T=64: 4 vectors of 16) rather
 * than t dot products of length hs. Softmax uses rg_par_expf, which vectorises.
 */
#include <math.h>
#include <string.h>

#include "rg_par_internal.h"

typedef struct attn_args {
    float *out, *att, *dqkv;
    const float *qkv, *dout, *att_in;
    int B, T, C, NH;
    float *ws;
    size_t per_thread;
} attn_args;

/* kt is (hs, T): kt[d][t2] = x[b, t2, h*hs + d] where x is one of q/k/v at offset `part` of a
 * (B,T,3C) row. */
static void transpose_head(float *kt, const float *qkv, int b, int h, int part, int T, int C,
                           int hs) {
    for (int t2 = 0; t2 < T; t2++) {
        const float *src = qkv + ((size_t)b * T + t2) * 3 * C + part + h * hs;
        for (int d = 0; d < hs; d++) {
            kt[(size_t)d * T + t2] = src[d];
        }
    }
}

/* Pairs [begin, end) of the (B, NH) grid. out is (B,T,C), att is (B,NH,T,T), qkv is (B,T,3C). */
static void attention_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *kt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, T) */
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        transpose_head(kt, a->qkv, b, h, C, T, C, hs);
        for (int t = 0; t < T; t++) {
            const float *q = a->qkv + ((size_t)b * T + t) * C3 + h * hs;
            float *arow = a->att + ((size_t)pair * T + t) * T;
            int n = t + 1;
            /* scores: arow[t2] = q . k[t2] for t2 <= t, one AXPY per channel of the head */
            memset(arow, 0, (size_t)T * sizeof(float));
            for (int d = 0; d < hs; d++) {
                float qd = q[d];
                const float *krow = kt + (size_t)d * T;
                for (int t2 = 0; t2 < n; t2++) {
                    arow[t2] += qd * krow[t2];
                }
            }
            for (int t2 = 0; t2 < n; t2++) {
                arow[t2] *= scale;
            }
            float maxval = rg_par_max(arow, n);
            for (int t2 = 0; t2 < n; t2++) {
                arow[t2] = rg_par_expf(arow[t2] - maxval);
            }
            float inv = 1.0f / rg_par_sum(arow, n);
            for (int t2 = 0; t2 < n; t2++) {
                arow[t2] *= inv;
            }
            /* out[t] = sum_t2 att[t2] v[t2]; entries past t stay 0 from the memset (causal) */
            float *o = a->out + ((size_t)b * T + t) * C + h * hs;
            memset(o, 0, (size_t)hs * sizeof(float));
            for (int t2 = 0; t2 < n; t2++) {
                const float *v = a->qkv + ((size_t)b * T + t2) * C3 + 2 * C + h * hs;
                float p = arow[t2];
                for (int d = 0; d < hs; d++) {
                    o[d] += p * v[d];
                }
            }
        }
    }
}

/* Below this many multiply-adds per chunk a second thread costs more than it saves. */
#define ATTN_GRAIN_MACS (1 << 16)

static int64_t attention_grain(int T, int hs) {
    return 1 + ATTN_GRAIN_MACS / ((int64_t)T * T * hs);
}

void rg_par_op_attention_forward(rg_backend_ctx *ctx, float *out, float *att, const float *qkv,
                                 int B, int T, int C, int NH) {
    rg_par_backend *pb = rg_par_of(ctx);
    int hs = C / NH;
    attn_args a = {.out = out, .att = att, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    a.per_thread = (size_t)hs * T;
    a.ws = rg_par_workspace(pb, 0, a.per_thread);
    rg_par_for(pb->par, (int64_t)B * NH, attention_grain(T, hs), attention_forward_range, &a);
}

/* Pairs [begin, end). dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C), att is (B,NH,T,T).
 * Per row t, with datt[t2] = v[t2] . dout[t]:
 *   dv[t2] += att[t2] dout[t];  ds[t2] = scale att[t2] (datt[t2] - sum_t3 att[t3] datt[t3]);
 *   dq[t] += sum_t2 ds[t2] k[t2];  dk[t2] += ds[t2] q[t].
 * dk and dv gather over all rows t in workspace and are added to dqkv once per pair. */
static void attention_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *vt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, T) */
    float *dk = vt + (size_t)hs * T;                                 /* (T, hs) */
    float *dv = dk + (size_t)T * hs;                                 /* (T, hs) */
    float *datt = dv + (size_t)T * hs;                               /* (T) */
    float *dq = datt + T;                                            /* (hs) */
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        transpose_head(vt, a->qkv, b, h, 2 * C, T, C, hs);
        memset(dk, 0, (size_t)2 * T * hs * sizeof(float)); /* dk and dv */
        for (int t = 0; t < T; t++) {
            const float *arow = a->att_in + ((size_t)pair * T + t) * T;
            const float *dy = a->dout + ((size_t)b * T + t) * C + h * hs;
            const float *q = a->qkv + ((size_t)b * T + t) * C3 + h * hs;
            int n = t + 1;
            memset(datt, 0, (size_t)n * sizeof(float));
            for (int d = 0; d < hs; d++) {
                float dyd = dy[d];
                const float *vrow = vt + (size_t)d * T;
                for (int t2 = 0; t2 < n; t2++) {
                    datt[t2] += dyd * vrow[t2];
                }
            }
            float dot = rg_par_dot(arow, datt, n);
            for (int t2 = 0; t2 < n; t2++) {
                datt[t2] = arow[t2] * (datt[t2] - dot) * scale; /* now ds */
            }
            memset(dq, 0, (size_t)hs * sizeof(float));
            for (int t2 = 0; t2 < n; t2++) {
                const float *k = a->qkv + ((size_t)b * T + t2) * C3 + C + h * hs;
                float p = arow[t2], ds = datt[t2];
                float *dkr = dk + (size_t)t2 * hs;
                float *dvr = dv + (size_t)t2 * hs;
                for (int d = 0; d < hs; d++) {
                    dq[d] += ds * k[d];
                    dkr[d] += ds * q[d];
                    dvr[d] += p * dy[d];
                }
            }
            float *dqo = a->dqkv + ((size_t)b * T + t) * C3 + h * hs;
            for (int d = 0; d < hs; d++) {
                dqo[d] += dq[d];
            }
        }
        for (int t2 = 0; t2 < T; t2++) {
            float *dko = a->dqkv + ((size_t)b * T + t2) * C3 + C + h * hs;
            float *dvo = dko + C;
            for (int d = 0; d < hs; d++) {
                dko[d] += dk[(size_t)t2 * hs + d];
                dvo[d] += dv[(size_t)t2 * hs + d];
            }
        }
    }
}

void rg_par_op_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                                  const float *qkv, const float *att, int B, int T, int C, int NH) {
    rg_par_backend *pb = rg_par_of(ctx);
    int hs = C / NH;
    attn_args a = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .att_in = att, .B = B, .T = T, .C = C,
                   .NH = NH};
    a.per_thread = (size_t)3 * hs * T + T + hs;
    a.ws = rg_par_workspace(pb, 0, a.per_thread);
    rg_par_for(pb->par, (int64_t)B * NH, attention_grain(T, hs), attention_backward_range, &a);
}
