/*
 * Causal self-attention forward and backward, flash-style: the (T,T) probabilities of a head never
 * leave the thread's workspace. The forward keeps only each row's softmax statistics {max, 1/sum};
 * the backward recomputes the probabilities from q, k and those statistics with the forward's own
 * operations, so they are the forward's bit for bit. Parallel over (batch, head) pairs: each pair
 * owns its rows of stats, its slice of out and its slice of dqkv, so threads never write the same
 * element.
 *
 * A head's scores are held transposed, PT (T keys, Tp queries) = K Q^T, Tp = T rounded up to the
 * vector width VL: one vector holds VL queries' scores for one key, so the softmax runs down the
 * columns, VL queries at a time, with vector max, exp and sums and no reduction across lanes
 * (per query row, those reductions cost more than the row's arithmetic at T = 64). The queries
 * are first transposed into workspace as (hs, Tp), zero padded. A key is only scored against the
 * queries from its own vector of columns on; probabilities of a key after its query are exactly 0.
 *
 * The products (T x T x hs each): PT = K Q^T, out = P V; in the backward PT again, DST = V dout^T
 * (datt transposed, turned into dS^T in place), dQ = dS K, dK = dS^T Q, dV = P^T dout. All run on
 * one register-tiled kernel of 16 accumulators: 8 output rows by two vectors of columns, or 16
 * rows by one, independent FMA chains sharing every load; in dK and dV its rows are rows of DST
 * and PT, read along their length. A head's PT and DST (16 KiB each at T=64) stay in L1.
 */
#include <math.h>
#include <string.h>

#include "rg_par_internal.h"

#define VL RG_VL
#define RB 8   /* rows per register block with two vectors of columns */
#define RB1 16 /* with one */

typedef struct attn_args {
    float *out, *stats, *dqkv;
    const float *qkv, *dout, *saved_stats; /* saved_stats: the backward's, from the forward */
    int B, T, C, NH;
    float *ws;
    size_t per_thread;
} attn_args;

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* For r < m (m <= rb) and j < VL or 2 VL (two): out[r*ld_out + j] = sum_k<K a[r*lda_row + k*lda] *
 * b[k*ldb + j]. rb rows at once (RB with two vectors of columns, RB1 with one: 16 accumulators
 * either way), each broadcast of a feeding one or two FMAs; rows past m repeat row m-1 and are
 * not written. All rows through one pointer, so that with a constant lda_row (1: the columns of
 * PT and DST) every load is at a constant offset of one induction variable (a pointer per row
 * cost 7 more adds per k). Always inlined, so that each call site with constant rb, m, lda_row
 * and two gets its own loop. */
static inline __attribute__((always_inline)) void rows_block(int K, const float *a,
                                                             size_t lda_row, size_t lda,
                                                             const float *b, size_t ldb,
                                                             float *out, size_t ld_out, int rb,
                                                             int two, int m) {
    rg_vf acc0[RB1], acc1[RB1];
    for (int r = 0; r < rb; r++) {
        acc0[r] = (rg_vf){0};
        acc1[r] = (rg_vf){0};
    }
    for (int k = 0; k < K; k++) {
        rg_vf b0 = *(const rg_vfu *)(b + k * ldb);
        rg_vf b1 = two ? *(const rg_vfu *)(b + k * ldb + VL) : (rg_vf){0};
        const float *ak = a + k * lda;
#pragma GCC unroll 16
        for (int r = 0; r < rb; r++) {
            float av = ak[(r < m ? r : m - 1) * lda_row];
            acc0[r] += av * b0;
            if (two) {
                acc1[r] += av * b1;
            }
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < rb; r++) {
        if (r < m) {
            *(rg_vfu *)(out + r * ld_out) = acc0[r];
            if (two) {
                *(rg_vfu *)(out + r * ld_out + VL) = acc1[r];
            }
        }
    }
}

/* rows_block over rows [r0, r0+rb) of [r0, r_end), for the common cases each a loop of its own:
 * whole blocks, rows of a at stride 1. */
static inline __attribute__((always_inline)) void rows_blocks(int K, const float *a,
                                                              size_t lda_row, size_t lda,
                                                              const float *b, size_t ldb,
                                                              float *out, size_t ld_out, int rb,
                                                              int two, int r0, int r_end) {
    for (; r0 < r_end; r0 += rb) {
        const float *ar = a + (size_t)r0 * lda_row;
        float *o = out + (size_t)r0 * ld_out;
        int m = r_end - r0 < rb ? r_end - r0 : rb;
        if (m == rb && lda_row == 1) {
            rows_block(K, ar, 1, lda, b, ldb, o, ld_out, rb, two, rb);
        } else if (m == rb) {
            rows_block(K, ar, lda_row, lda, b, ldb, o, ld_out, rb, two, rb);
        } else {
            rows_block(K, ar, lda_row, lda, b, ldb, o, ld_out, rb, two, m);
        }
    }
}

/* out (rows [r0, r_end), row stride ld_out, ncols columns) = a (those rows, K) @ b (K, ncols),
 * with the columns of b at stride 1 and its rows at stride ldb; a row r at a_base + r*lda_row,
 * its k-th element at stride lda. */
static void block_product(float *out, size_t ld_out, const float *a_base, size_t lda_row,
                          size_t lda, const float *b, size_t ldb, int K, int r0, int r_end,
                          int ncols) {
    int j = 0;
    for (; j + 2 * VL <= ncols; j += 2 * VL) {
        rows_blocks(K, a_base, lda_row, lda, b + j, ldb, out + j, ld_out, RB, 1, r0, r_end);
    }
    if (j + VL <= ncols) {
        rows_blocks(K, a_base, lda_row, lda, b + j, ldb, out + j, ld_out, RB1, 0, r0, r_end);
        j += VL;
    }
    for (int r = r0; r < r_end && j < ncols; r++) { /* a partial vector of columns: plain loops */
        for (int jj = j; jj < ncols; jj++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                acc += a_base[r * lda_row + k * lda] * b[k * ldb + jj];
            }
            out[r * ld_out + jj] = acc;
        }
    }
}

/* xt is (hs, Tp): xt[d][t] = x[t*ld + d] for t < T (x: one of q, k, v or dout of a head, rows
 * at stride ld), zero for t >= T. */
static void transpose_rows(float *xt, const float *x, size_t ld, int T, int hs) {
    int Tp = round_up(T, VL);
    int t_whole = T / VL * VL, d_whole = hs / VL * VL;
    for (int t0 = 0; t0 < t_whole; t0 += VL) { /* VL x VL blocks in registers */
        for (int d0 = 0; d0 < d_whole; d0 += VL) {
            rg_par_transpose_block(xt + (size_t)d0 * Tp + t0, Tp, x + (size_t)t0 * ld + d0, ld);
        }
    }
    for (int t = 0; t < T; t++) { /* the rest, element by element */
        for (int d = t < t_whole ? d_whole : 0; d < hs; d++) {
            xt[(size_t)d * Tp + t] = x[(size_t)t * ld + d];
        }
    }
    for (int d = 0; d < hs; d++) {
        memset(xt + (size_t)d * Tp + T, 0, (size_t)(Tp - T) * sizeof(float));
    }
}

/* Per-thread workspace: `heads` transposed heads (hs, Tp), `squares` (T, Tp). */
static size_t attn_workspace(int T, int hs, int heads, int squares) {
    int Tp = round_up(T, VL);
    return (size_t)heads * hs * Tp + (size_t)squares * T * Tp;
}

/* st is (T keys, Tp queries): st[t2][t] = x[t2] . yt[:, t] for every key t2 and every column from
 * the vector of columns that holds t2 on (the queries that can see key t2 are among them). x is a
 * head's keys or values (rows at stride ld), yt its queries or dout transposed (hs, Tp). */
static void keys_by_queries(float *st, const float *x, size_t ld, const float *yt, int T, int hs) {
    int Tp = round_up(T, VL);
    for (int c0 = 0; c0 < T; c0 += VL) { /* the keys of each vector of columns */
        block_product(st + c0, Tp, x, ld, 1, yt + c0, Tp, hs, c0, c0 + VL < T ? c0 + VL : T,
                      Tp - c0);
    }
}

/* 1 in the lanes of keys t2 that query t0 + lane can see (t2 <= t0 + lane). */
static rg_vi visible(int t2, int t0) {
    rg_vi lane;
    for (int i = 0; i < VL; i++) {
        lane[i] = t0 + i;
    }
    return lane >= t2;
}

/* Key t2's raw score in column vector t0 of st, scaled, -inf for queries that cannot see it (the
 * lanes before t2); written back, and returned. */
static inline rg_vf scaled_score(float *st, int Tp, int t0, int t2, float scale) {
    rg_vf *x = (rg_vf *)(st + (size_t)t2 * Tp + t0);
    rg_vf v = *x * scale;
    if (t2 > t0) {
        v = rg_par_select(visible(t2, t0), v, rg_par_splat(-INFINITY));
    }
    *x = v;
    return v;
}

/* The same key's e^(score - top), exactly 0 where masked; written back, and returned. */
static inline rg_vf exp_score(float *st, int Tp, int t0, int t2, rg_vf top) {
    rg_vf *x = (rg_vf *)(st + (size_t)t2 * Tp + t0);
    rg_vf e = rg_par_expv(*x - top);
    if (t2 > t0) {
        e = rg_par_select(visible(t2, t0), e, (rg_vf){0});
    }
    *x = e;
    return e;
}

/* The softmax of queries [t0, t0+VL), one per lane of column vector t0 of st (T, Tp), over keys
 * [0, n), n = min(t0+VL, T): raw scores become probabilities, exactly 0 for a key after its query;
 * *m and *r get each lane's max scaled score and 1/sum. Rows of st are keys, so the max and the sum
 * run down the vectors, one query per lane: no reduction across lanes. Four running maxima and
 * sums, key t2 in number t2 % 4, so that consecutive keys do not wait for each other (a max is
 * exact in any order; the sums are added in a fixed order). The loops go four keys at a time, so
 * that the four are registers: indexed by t2 & 3, they lived on the stack, a store and a load per
 * key (3.4% of the instructions of attention in an AVX2 build, counted by valgrind). */
static void softmax_columns(float *st, int Tp, int t0, int n, float scale, rg_vf *m, rg_vf *r) {
    rg_vf mx[4] = {rg_par_splat(-INFINITY), rg_par_splat(-INFINITY), rg_par_splat(-INFINITY),
                   rg_par_splat(-INFINITY)};
    for (int t2 = 0; t2 < n; t2 += 4) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (t2 + j < n) {
                mx[j] = rg_par_vmax(mx[j], scaled_score(st, Tp, t0, t2 + j, scale));
            }
        }
    }
    rg_vf top = rg_par_vmax(rg_par_vmax(mx[0], mx[1]), rg_par_vmax(mx[2], mx[3]));
    rg_vf sum[4] = {{0}, {0}, {0}, {0}};
    for (int t2 = 0; t2 < n; t2 += 4) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (t2 + j < n) {
                sum[j] += exp_score(st, Tp, t0, t2 + j, top);
            }
        }
    }
    rg_vf rs = 1.0f / ((sum[0] + sum[1]) + (sum[2] + sum[3]));
    for (int t2 = 0; t2 < n; t2++) {
        rg_vf *x = (rg_vf *)(st + (size_t)t2 * Tp + t0);
        *x *= rs;
    }
    *m = top;
    *r = rs;
}

/* softmax_columns' probabilities, bit for bit, from the forward's m and r of the same queries,
 * without its max and sum reductions: the same operations on the same values, the scaled scores
 * stored in a pass of their own as there (one pass computing exp(score * scale - m) would let the
 * compiler contract it into an FMA, which rounds once fewer). */
static void softmax_columns_from_stats(float *st, int Tp, int t0, int n, float scale, rg_vf m,
                                       rg_vf r) {
    for (int t2 = 0; t2 < n; t2++) {
        scaled_score(st, Tp, t0, t2, scale);
    }
    for (int t2 = 0; t2 < n; t2++) {
        rg_vf *x = (rg_vf *)(st + (size_t)t2 * Tp + t0);
        *x = exp_score(st, Tp, t0, t2, m) * r;
    }
}

/* Column vector t0 of ds (T, Tp) holds datt = dout . v for keys [0, n) of queries [t0, t0+VL), pt
 * their probabilities (0 after a query): ds = scale pt (ds - sum over keys of pt ds), 0 where pt
 * is masked. Four running sums, four keys at a time, as in softmax_columns. */
static void softmax_backward_columns(float *ds, const float *pt, int Tp, int t0, int n,
                                     float scale) {
    rg_vf part[4] = {{0}, {0}, {0}, {0}};
    for (int t2 = 0; t2 < n; t2 += 4) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (t2 + j < n) {
                size_t o = (size_t)(t2 + j) * Tp + t0;
                part[j] += *(const rg_vf *)(pt + o) * *(rg_vf *)(ds + o);
            }
        }
    }
    rg_vf dot = (part[0] + part[1]) + (part[2] + part[3]);
    for (int t2 = 0; t2 < n; t2++) {
        size_t o = (size_t)t2 * Tp + t0;
        rg_vf d = *(const rg_vf *)(pt + o) * (*(rg_vf *)(ds + o) - dot) * scale;
        if (t2 > t0) {
            d = rg_par_select(visible(t2, t0), d, (rg_vf){0});
        }
        *(rg_vf *)(ds + o) = d;
    }
}

/* Asks for the lines of a head's T rows of hs floats (rows at stride ld) to be brought into L2,
 * for reading or (write) writing: the backward's next pair, while this one computes. A step's qkv
 * and dqkv (3 MiB each in the small preset) are past L2, and a head's rows, 1.5 KiB apart and one
 * line each, are too short a stream for the hardware prefetchers. On Zen 4 it made the backward
 * 11% faster at 1 thread (1700 to 1500 us at B=32, T=64, C=128); the forward's three reads, the
 * same way, measured no faster. */
static void prefetch_head(const float *x, size_t ld, int T, int hs, int write) {
    for (int t = 0; t < T; t++) {
        const char *row = (const char *)(x + (size_t)t * ld);
        for (int off = 0; off < hs * (int)sizeof(float); off += 64) {
            if (write) {
                __builtin_prefetch(row + off, 1, 2);
            } else {
                __builtin_prefetch(row + off, 0, 2);
            }
        }
    }
}

/* Pairs [begin, end) of the (B, NH) grid. out is (B,T,C), stats is (B,NH,T,2), qkv is (B,T,3C).
 * Per pair: PT (T keys, Tp queries) = K Q^T, the softmax down its columns, VL queries at a time,
 * then those queries' rows of out = P V over the keys they see. */
static void attention_forward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C, Tp = round_up(T, VL);
    float scale = 1.0f / sqrtf((float)hs);
    float *qt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, Tp) */
    float *PT = qt + (size_t)hs * Tp;                                /* (T, Tp) */
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *q0 = a->qkv + (size_t)b * T * C3 + h * hs;
        const float *k0 = q0 + C, *v0 = q0 + 2 * C;
        float *stats = a->stats + (size_t)pair * T * 2;
        float *out = a->out + (size_t)b * T * C + h * hs;
        transpose_rows(qt, q0, C3, T, hs);
        keys_by_queries(PT, k0, C3, qt, T, hs);
        for (int t0 = 0; t0 < T; t0 += VL) {
            int n = t0 + VL < T ? t0 + VL : T; /* queries [t0, n) see keys [0, n) */
            rg_vf m, r;
            softmax_columns(PT, Tp, t0, n, scale, &m, &r);
            for (int t = t0; t < n; t++) {
                stats[(size_t)t * 2] = m[t - t0];
                stats[(size_t)t * 2 + 1] = r[t - t0];
            }
            /* out rows [t0, n) = P @ V over keys [0, n); row t of P is column t of PT */
            block_product(out, C, PT, 1, Tp, v0, C3, n, t0, n, hs);
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

/* Pairs [begin, end). dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C). PT is recomputed
 * as the forward made it (the same calls: the same bits), DST (T keys, Tp queries) = V dout^T is
 * datt transposed, and the softmax backward down its columns makes it dS^T: dq = dS K, dk = dS^T Q,
 * dv = P^T dout (dS and P are zero after the diagonal). Each block of rows of dq, dk and dv is one
 * product over all its terms, written directly: the pair's slice of dqkv is overwritten without
 * being zeroed first. */
static void attention_backward_range(void *arg, int64_t begin, int64_t end, int tid) {
    const attn_args *a = arg;
    int T = a->T, C = a->C, NH = a->NH, hs = C / NH, C3 = 3 * C, Tp = round_up(T, VL);
    float scale = 1.0f / sqrtf((float)hs);
    float *qt = a->ws + rg_par_thread_offset(0, a->per_thread, tid); /* (hs, Tp) */
    float *dyt = qt + (size_t)hs * Tp;                               /* (hs, Tp) */
    float *PT = dyt + (size_t)hs * Tp;                               /* (T, Tp) */
    float *DST = PT + (size_t)T * Tp;                                /* (T, Tp) */
    for (int64_t pair = begin; pair < end; pair++) {
        int b = (int)(pair / NH), h = (int)(pair % NH);
        const float *q0 = a->qkv + (size_t)b * T * C3 + h * hs;
        const float *k0 = q0 + C, *v0 = q0 + 2 * C;
        const float *dy0 = a->dout + (size_t)b * T * C + h * hs;
        float *dq0 = a->dqkv + (size_t)b * T * C3 + h * hs;
        float *dk0 = dq0 + C, *dv0 = dq0 + 2 * C;
        if (pair + 1 < end) { /* the next pair's q, k, v and dout, and its rows of dqkv */
            size_t n_qkv = (size_t)((pair + 1) / NH) * T * C3 + (pair + 1) % NH * hs;
            size_t n_dy = (size_t)((pair + 1) / NH) * T * C + (pair + 1) % NH * hs;
            for (int part = 0; part < 3; part++) {
                prefetch_head(a->qkv + n_qkv + part * C, C3, T, hs, 0);
                prefetch_head(a->dqkv + n_qkv + part * C, C3, T, hs, 1);
            }
            prefetch_head(a->dout + n_dy, C, T, hs, 0);
        }
        transpose_rows(qt, q0, C3, T, hs);
        transpose_rows(dyt, dy0, C, T, hs);
        keys_by_queries(PT, k0, C3, qt, T, hs);
        keys_by_queries(DST, v0, C3, dyt, T, hs);
        for (int t0 = 0; t0 < T; t0 += VL) {
            int n = t0 + VL < T ? t0 + VL : T;
            rg_vf m = {0}, r = {0}; /* 0 in the lanes past T: their probabilities are 0 */
            const float *st = a->saved_stats + ((size_t)pair * T + t0) * 2;
            for (int t = t0; t < n; t++) {
                m[t - t0] = st[(size_t)(t - t0) * 2];
                r[t - t0] = st[(size_t)(t - t0) * 2 + 1];
            }
            softmax_columns_from_stats(PT, Tp, t0, n, scale, m, r);
            softmax_backward_columns(DST, PT, Tp, t0, n, scale);
            /* dq rows [t0, n) = dS @ K over keys [0, n) */
            block_product(dq0, C3, DST, 1, Tp, k0, C3, n, t0, n, hs);
        }
        /* dk and dv rows t2 in blocks from k: dk[t2] = sum_t dS[t][t2] q[t] and
         * dv[t2] = sum_t P[t][t2] dout[t], over the queries from t2's vector of columns on (the
         * terms t < t2 are zero): rows of DST and PT, read along their length */
        for (int c0 = 0; c0 < T; c0 += VL) {
            int end = c0 + VL < T ? c0 + VL : T;
            block_product(dk0, C3, DST + c0, Tp, 1, q0 + (size_t)c0 * C3, C3, T - c0, c0, end, hs);
            block_product(dv0, C3, PT + c0, Tp, 1, dy0 + (size_t)c0 * C, C, T - c0, c0, end, hs);
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
    attn_args a = {.dqkv = dqkv, .dout = dout, .qkv = qkv, .saved_stats = stats, .B = B, .T = T,
                   .C = C, .NH = NH};
    a.per_thread = attn_workspace(T, hs, 2, 2);
    a.ws = rg_par_workspace(pb, 0, a.per_thread);
    rg_par_for(pb->par, (int64_t)B * NH, attention_grain(T, hs), attention_backward_range, &a);
}
