/*
 * Causal self-attention forward and backward, flash-style: the (T,T) probabilities of a head never
 * leave the thread's workspace. The forward keeps only each row's softmax statistics {max, 1/sum};
 * the backward recomputes the probabilities from q and k with the forward's own arithmetic, so
 * they are the forward's bit for bit. Parallel over (batch, head) pairs: each pair
 * owns its rows of stats, its slice of out and its slice of dqkv, so threads never write the same
 * element.
 *
 * Per pair the work is five small matrix products (T x T x hs): scores Q K^T, out = att V, and in
 * the backward (after Q K^T again) datt = dY V^T, dQ = dS K, dK = dS^T Q, dV = att^T dY. All run
 * on one register-tiled kernel (rows8): eight output rows at once, one vector of columns, eight
 * independent FMA chains sharing every load. For Q K^T and dY V^T, K or V is first transposed into
 * per-thread workspace as (hs, Tp), Tp = T rounded up to the vector width and zero padded, so a
 * score row is whole vectors along t2; att and dS live in the workspace as (T, Tp), a head's
 * whole at once (32 KiB at T=64: in L1). Causality: rows only go as far as their block's last t;
 * the zeros of att and dS past the diagonal make the extra terms vanish. The softmax runs in
 * whole vectors, the last one masked.
 */
#include <math.h>
#include <string.h>

#include "rg_par_internal.h"

#define VL RG_VL
#define RB 8 /* rows per register block */

typedef struct attn_args {
    float *out, *stats, *dqkv;
    const float *qkv, *dout;
    int B, T, C, NH;
    float *ws;
    size_t per_thread;
} attn_args;

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* For r < RB and j < w (w <= VL): out[r][j] = sum_k<K a[r][k*lda] * b[k*ldb + j].
 * a[r] are row pointers (duplicates allowed), out[r] distinct row pointers. */
static void rows8(int K, const float *const a[RB], size_t lda, const float *b, size_t ldb,
                  float *const out[RB], int w) {
    if (w == VL) {
        rg_vf acc[RB];
        for (int r = 0; r < RB; r++) {
            acc[r] = (rg_vf){0};
        }
        for (int k = 0; k < K; k++) {
            rg_vf bv = *(const rg_vfu *)(b + k * ldb);
#pragma GCC unroll 8
            for (int r = 0; r < RB; r++) {
                acc[r] += a[r][k * lda] * bv;
            }
        }
        for (int r = 0; r < RB; r++) {
            *(rg_vfu *)out[r] = acc[r];
        }
        return;
    }
    for (int r = 0; r < RB; r++) { /* a partial vector of columns: plain loops */
        for (int j = 0; j < w; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                acc += a[r][k * lda] * b[k * ldb + j];
            }
            out[r][j] = acc;
        }
    }
}

/* Row pointers of a block of RB rows starting at row r0 of n rows with row stride ld: rows past
 * n repeat the last one as input and write to `sink` as output. */
static void block_rows(const float *rows_in[RB], float *rows_out[RB], const float *in, size_t ld_in,
                       float *out, size_t ld_out, int r0, int n, float *sink) {
    for (int r = 0; r < RB; r++) {
        int row = r0 + r < n ? r0 + r : n - 1;
        if (rows_in) {
            rows_in[r] = in + (size_t)row * ld_in;
        }
        if (rows_out) {
            rows_out[r] = r0 + r < n ? out + (size_t)(r0 + r) * ld_out : sink;
        }
    }
}

/* out (RB rows from r0, row stride ld_out, n columns) = a (rows r0.., K) @ b (K, n), with the
 * columns of b at stride 1 and its rows at stride ldb; a row r at a_base + r*lda_row, its k-th
 * element at stride lda. Rows past nrows go to sink. */
static void block_product(float *out, size_t ld_out, const float *a_base, size_t lda_row,
                          size_t lda, const float *b, size_t ldb, int K, int r0, int nrows,
                          int ncols, float *sink) {
    const float *a[RB];
    float *o[RB];
    block_rows(a, o, a_base, lda_row, out, ld_out, r0, nrows, sink);
    for (int j = 0; j < ncols; j += VL) {
        float *oj[RB];
        for (int r = 0; r < RB; r++) {
            oj[r] = o[r] == sink ? sink : o[r] + j;
        }
        int w = ncols - j < VL ? ncols - j : VL;
        rows8(K, a, lda, b + j, ldb, oj, w);
    }
}

/* xt is (hs, Tp): xt[d][t2] = x[b, t2, h*hs + d] for one of q/k/v at offset `part` of a (B,T,3C)
 * row, zero for t2 >= T. */
static void transpose_head(float *xt, const float *qkv, int b, int h, int part, int T, int C,
                           int hs) {
    int Tp = round_up(T, VL);
    for (int t2 = 0; t2 < T; t2++) {
        const float *src = qkv + ((size_t)b * T + t2) * 3 * C + part + h * hs;
        for (int d = 0; d < hs; d++) {
            xt[(size_t)d * Tp + t2] = src[d];
        }
    }
    for (int d = 0; d < hs; d++) {
        memset(xt + (size_t)d * Tp + T, 0, (size_t)(Tp - T) * sizeof(float));
    }
}

/* Per-thread workspace: `heads` transposed heads (hs, Tp), `squares` (T, Tp), a sink (VL). */
static size_t attn_workspace(int T, int hs, int heads, int squares) {
    int Tp = round_up(T, VL);
    return (size_t)heads * hs * Tp + (size_t)squares * T * Tp + VL;
}

/* Lanes [0, n - (nv-1)*VL) of the last of the nv = ceil(n/VL) vectors that cover n floats. */
static rg_vi last_vector_lanes(int n, int nv) {
    rg_vi lane;
    for (int i = 0; i < VL; i++) {
        lane[i] = i;
    }
    return lane < n - (nv - 1) * VL;
}

/* s is one row of raw scores q.k (whole vectors, aligned), n = t + 1 the keys the row sees, ncols
 * (a multiple of VL, >= n) the columns the row's products read: s[0, n) becomes the scaled
 * scores, masked to -inf past n in the last vector. Returns the row's maximum. */
static float scale_row(rg_vf *sv, int n, float scale, rg_vi valid) {
    int nv = (n + VL - 1) / VL;
    rg_vf mx = rg_par_splat(-INFINITY);
    for (int v = 0; v < nv; v++) {
        rg_vf x = sv[v] * scale;
        if (v == nv - 1) {
            x = rg_par_select(valid, x, rg_par_splat(-INFINITY));
        }
        sv[v] = x;
        mx = rg_par_vmax(mx, x);
    }
    return rg_par_hmax(mx);
}

/* s[0, n) = exp(s - m) * r (the probabilities), 0 in [n, ncols). s holds scaled scores. */
static void prob_row(rg_vf *sv, int n, int ncols, float m, float r, rg_vi valid) {
    int nv = (n + VL - 1) / VL;
    for (int v = 0; v < nv; v++) {
        rg_vf e = rg_par_expv(sv[v] - m);
        sv[v] = (v == nv - 1 ? rg_par_select(valid, e, (rg_vf){0}) : e) * r;
    }
    for (int v = nv; v < ncols / VL; v++) {
        sv[v] = (rg_vf){0};
    }
}

/* One row of the forward: raw scores s (ncols floats) become its probabilities, st = {m, 1/sum}.
 * The sum is of the same exp values that prob_row recomputes: the same bits. */
static void softmax_row(float *s, float st[2], int n, int ncols, float scale) {
    int nv = (n + VL - 1) / VL;
    rg_vi valid = last_vector_lanes(n, nv);
    rg_vf *sv = (rg_vf *)s;
    float m = scale_row(sv, n, scale, valid);
    rg_vf sum = {0};
    for (int v = 0; v < nv; v++) {
        rg_vf e = rg_par_expv(sv[v] - m);
        sum += v == nv - 1 ? rg_par_select(valid, e, (rg_vf){0}) : e;
    }
    st[0] = m;
    st[1] = 1.0f / rg_par_hsum(sum);
    prob_row(sv, n, ncols, st[0], st[1], valid);
}

/* ds is one row of datt (whole vectors, aligned, computed over at least the first ceil(n/VL)
 * vectors), arow its row of att (0 from n to ncols): ds[0, n) = scale arow (ds - arow . ds),
 * ds[n, ncols) = 0. */
static void softmax_backward_row(float *ds, const float *arow, int n, int ncols, float scale) {
    int nv = (n + VL - 1) / VL;
    rg_vi valid = last_vector_lanes(n, nv);
    rg_vf *dv = (rg_vf *)ds;
    const rg_vf *av = (const rg_vf *)arow;
    rg_vf acc = {0};
    for (int v = 0; v < nv; v++) {
        acc += av[v] * dv[v]; /* att is 0 past n */
    }
    float dot = rg_par_hsum(acc);
    for (int v = 0; v < nv; v++) {
        rg_vf d = av[v] * (dv[v] - dot) * scale;
        dv[v] = v == nv - 1 ? rg_par_select(valid, d, (rg_vf){0}) : d;
    }
    for (int v = nv; v < ncols / VL; v++) {
        dv[v] = (rg_vf){0};
    }
}

/* Pairs [begin, end) of the (B, NH) grid. out is (B,T,C), stats is (B,NH,T,2), qkv is (B,T,3C). */
static void attention_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C, Tp = round_up(T, VL);
    float scale = 1.0f / sqrtf((float)hs);
    float *kt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, Tp) */
    float *P = kt + (size_t)hs * Tp;                                 /* (T, Tp) */
    float *sink = P + (size_t)T * Tp;                                /* (VL) */
    memset(sink, 0, VL * sizeof(float));
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *q0 = a->qkv + (size_t)b * T * C3 + h * hs;
        const float *v0 = q0 + 2 * C;
        float *stats = a->stats + (size_t)pair * T * 2;
        float *out = a->out + (size_t)b * T * C + h * hs;
        transpose_head(kt, a->qkv, b, h, C, T, C, hs);
        for (int t0 = 0; t0 < T; t0 += RB) {
            int tlast = t0 + RB < T ? t0 + RB : T; /* rows [t0, tlast) see keys [0, tlast) */
            int ncols = round_up(tlast, VL);
            /* P rows = q . k over the keys the block can see, in whole vectors, then softmax */
            block_product(P, Tp, q0, C3, 1, kt, Tp, hs, t0, T, ncols, sink);
            for (int t = t0; t < tlast; t++) {
                softmax_row(P + (size_t)t * Tp, stats + (size_t)t * 2, t + 1, ncols, scale);
            }
            /* out rows = P rows @ V over keys [0, tlast) */
            block_product(out, C, P, Tp, 1, v0, C3, tlast, t0, T, hs, sink);
        }
    }
}

/* Below this many multiply-adds per chunk a second thread costs more than it saves. */
#define ATTN_GRAIN_MACS (1 << 16)

static int64_t attention_grain(int T, int hs) {
    return 1 + ATTN_GRAIN_MACS / ((int64_t)T * T * hs);
}

/* 1 when there is nothing to compute (empty shapes); the kernels then write nothing. */
static int attention_empty(int B, int T, int C, int NH) {
    return B <= 0 || T <= 0 || NH <= 0 || C < NH;
}

void rg_par_op_attention_forward(rg_backend_ctx *ctx, float *out, float *stats, const float *qkv,
                                 int B, int T, int C, int NH) {
    if (attention_empty(B, T, C, NH)) {
        return;
    }
    rg_par_backend *pb = rg_par_of(ctx);
    int hs = C / NH;
    attn_args a = {.out = out, .stats = stats, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    a.per_thread = attn_workspace(T, hs, 1, 1);
    a.ws = rg_par_workspace(pb, 0, a.per_thread);
    rg_par_for(pb->par, (int64_t)B * NH, attention_grain(T, hs), attention_forward_range, &a);
}

/* Pairs [begin, end). dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C). With att recomputed, datt[t][t2] = dout[t] . v[t2] and dS[t][t2] = scale att (datt - sum_t3 att
 * datt[t][t3]): dq = dS k, dk = dS^T q, dv = att^T dout (dS and att are zero past the diagonal).
 * Each block of rows of dq, dk and dv is one product over all its terms, written directly: the
 * pair's slice of dqkv is overwritten without being zeroed first. */
static void attention_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C, Tp = round_up(T, VL);
    float scale = 1.0f / sqrtf((float)hs);
    float *kt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, Tp) */
    float *vt = kt + (size_t)hs * Tp;                                /* (hs, Tp) */
    float *P = vt + (size_t)hs * Tp;                                 /* (T, Tp) */
    float *dS = P + (size_t)T * Tp;                                  /* (T, Tp) */
    float *sink = dS + (size_t)T * Tp;                               /* (VL) */
    memset(sink, 0, VL * sizeof(float));
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *q0 = a->qkv + (size_t)b * T * C3 + h * hs;
        const float *k0 = q0 + C;
        const float *dy0 = a->dout + (size_t)b * T * C + h * hs;
        float *dq0 = a->dqkv + (size_t)b * T * C3 + h * hs;
        float *dk0 = dq0 + C;
        float *dv0 = dq0 + 2 * C;
        transpose_head(kt, a->qkv, b, h, C, T, C, hs);
        transpose_head(vt, a->qkv, b, h, 2 * C, T, C, hs);
        for (int t0 = 0; t0 < T; t0 += RB) {
            int tlast = t0 + RB < T ? t0 + RB : T;
            int ncols = round_up(tlast, VL);
            /* P rows as the forward made them; datt rows = dout . v, then dS in place. A row's
             * max and sum are recomputed rather than read from stats: the whole row is at hand,
             * it costs one reduction per row, and P is then the forward's bit for bit even when
             * stats came from another kernel that rounds the scores otherwise */
            block_product(P, Tp, q0, C3, 1, kt, Tp, hs, t0, T, ncols, sink);
            block_product(dS, Tp, dy0, C, 1, vt, Tp, hs, t0, T, ncols, sink);
            for (int t = t0; t < tlast; t++) {
                float st[2];
                softmax_row(P + (size_t)t * Tp, st, t + 1, ncols, scale);
                softmax_backward_row(dS + (size_t)t * Tp, P + (size_t)t * Tp, t + 1, ncols, scale);
            }
            /* dq rows = dS rows @ K over keys [0, tlast) */
            block_product(dq0, C3, dS, Tp, 1, k0, C3, tlast, t0, T, hs, sink);
        }
        /* dk and dv rows t2 in blocks from t0: dk[t2] = sum_t dS[t][t2] q[t] and
         * dv[t2] = sum_t att[t][t2] dout[t], over queries t >= t0 (the terms t < t2 are zero) */
        for (int t0 = 0; t0 < T; t0 += RB) {
            block_product(dk0, C3, dS + (size_t)t0 * Tp, 1, Tp, q0 + (size_t)t0 * C3, C3, T - t0,
                          t0, T, hs, sink);
            block_product(dv0, C3, P + (size_t)t0 * Tp, 1, Tp, dy0 + (size_t)t0 * C, C, T - t0,
                          t0, T, hs, sink);
        }
    }
}

void rg_par_op_attention_backward(rg_backend_ctx *ctx, float *dqkv, const float *dout,
                                  const float *qkv, const float *stats, int B, int T, int C,
                                  int NH) {
    if (attention_empty(B, T, C, NH)) {
        return;
    }
    rg_par_backend *pb = rg_par_of(ctx);
    int hs = C / NH;
    (void)stats; /* the rows are recomputed whole, see attention_backward_range */
    attn_args a = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .B = B, .T = T, .C = C, .NH = NH};
    a.per_thread = attn_workspace(T, hs, 2, 2);
    a.ws = rg_par_workspace(pb, 0, a.per_thread);
    rg_par_for(pb->par, (int64_t)B * NH, attention_grain(T, hs), attention_backward_range, &a);
}
