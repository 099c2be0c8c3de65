/*
 * Op cases (see op_case.h): per op, its buffers and their roles, its call, and the inputs its
 * backward takes from the reference forward. One entry per op of op_list.h; the table below is
 * built from that list, so an op without a case does not compile.
 */
#include "randygpt/op_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- error bounds ----
 * u = 2^-24, fp32's unit roundoff. Errors are normalised: max|x - ref| / max|ref| over an output.
 * A backend may sum in another order than the reference (blocking, FMA, per-thread partial sums);
 * for random data the rounding error of a K-term sum grows like sqrt(K), and both sides carry one,
 * so 32u*sqrt(K) leaves about a tenfold margin while a wrong element still stands out. */
#define U (1.0 / 16777216.0)

static void bound_sum(rg_case_buf *b, const char *what, size_t K) {
    b->tol = 32.0 * U * sqrt((double)K);
    snprintf(b->bound, sizeof b->bound, "32u*sqrt(%s=%zu)", what, K);
}

/* One or two roundings per element; only FMA contraction can differ. */
static void bound_elementwise(rg_case_buf *b) {
    b->tol = 16.0 * U;
    snprintf(b->bound, sizeof b->bound, "16u");
}

/* exp, a sum over a row of K terms and a division. exp of a score carries the score's own
 * absolute rounding error as a relative one, so the bound grows with the score's magnitude mag as
 * well as with the row length. */
static void bound_softmax(rg_case_buf *b, const char *what, size_t K, double mag) {
    mag = fmax(1.0, mag);
    b->tol = 16.0 * U * (8.0 + sqrt((double)K)) * mag;
    snprintf(b->bound, sizeof b->bound, "16u*(8+sqrt(%s=%zu))*%.3g", what, K, mag);
}

/* ---- building a case ---- */

static rg_case_buf *add(rg_op_case *c, const char *name, rg_buf_role role, size_t count, float lo,
                        float hi) {
    rg_case_buf *b = &c->buf[c->nbufs++];
    memset(b, 0, sizeof *b);
    b->name = name;
    b->role = role;
    b->count = b->traffic = count;
    b->lo = lo * c->scale;
    b->hi = hi * c->scale;
    b->parts = 1;
    return b;
}

static rg_case_buf *add_tokens(rg_op_case *c, const char *name, size_t count) {
    rg_case_buf *b = add(c, name, RG_BUF_IN, count, 0.0f, 0.0f);
    b->tokens = 1;
    return b;
}

/* Sizes of every case: N rows; hs head size. */
#define N_ ((size_t)c->d.B * c->d.T)
#define F(i) ((float *)b[i])
#define I(i) ((const int32_t *)b[i])

/* Shape checks: each writes the sizes its ops take into c->shape, or returns -1 when they do
 * not suit them. */
static int shape_matmul(rg_op_case *c) {
    const rg_op_dims *e = &c->d;
    if (e->B < 1 || e->T < 1 || e->C < 1 || e->OC < 1) return -1;
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d OC=%d", e->B * e->T, e->C, e->OC);
    return 0;
}
static int shape_attention(rg_op_case *c) {
    const rg_op_dims *e = &c->d;
    if (e->B < 1 || e->T < 1 || e->C < 1 || e->NH < 1 || e->C % e->NH) return -1;
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d C=%d NH=%d", e->B, e->T, e->C, e->NH);
    return 0;
}
static int shape_n(rg_op_case *c) {
    if (c->d.n < 1) return -1;
    snprintf(c->shape, sizeof c->shape, "n=%zu", c->d.n);
    return 0;
}
static int shape_rows(rg_op_case *c) {
    const rg_op_dims *e = &c->d;
    if (e->B < 1 || e->T < 1 || e->C < 1) return -1;
    snprintf(c->shape, sizeof c->shape, "N=%d C=%d", e->B * e->T, e->C);
    return 0;
}
static int shape_embedding(rg_op_case *c) {
    const rg_op_dims *e = &c->d;
    if (e->B < 1 || e->T < 1 || e->C < 1 || e->V < 1) return -1;
    snprintf(c->shape, sizeof c->shape, "B=%d T=%d C=%d V=%d", e->B, e->T, e->C, e->V);
    return 0;
}
static int shape_logits(rg_op_case *c) {
    const rg_op_dims *e = &c->d;
    if (e->B < 1 || e->T < 1 || e->V < 1) return -1;
    snprintf(c->shape, sizeof c->shape, "N=%d V=%d", e->B * e->T, e->V);
    return 0;
}

/* ---- one make/call (and derive where a backward reads its forward's state) per op ---- */

static int make_matmul_forward(rg_op_case *c) {
    if (shape_matmul(c) != 0) return -1;
    size_t C = c->d.C, OC = c->d.OC;
    bound_sum(add(c, "out", RG_BUF_OUT, N_ * OC, -9, 9), "C", C);
    add(c, "inp", RG_BUF_IN, N_ * C, -1, 1);
    add(c, "weight", RG_BUF_IN, OC * C, -1, 1);
    c->flops = 2.0 * N_ * C * OC;
    return 0;
}
static double call_matmul_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                  void *const *b) {
    k->matmul_forward(x, F(0), F(1), F(2), (int)N_, c->d.C, c->d.OC);
    return 0.0;
}

static int make_matmul_backward(rg_op_case *c) {
    if (shape_matmul(c) != 0) return -1;
    size_t C = c->d.C, OC = c->d.OC;
    bound_sum(add(c, "dinp", RG_BUF_OUT, N_ * C, -9, 9), "OC", OC);
    bound_sum(add(c, "dweight", RG_BUF_ACC, OC * C, -1, 1), "N", N_);
    add(c, "dout", RG_BUF_IN, N_ * OC, -1, 1);
    add(c, "inp", RG_BUF_IN, N_ * C, -1, 1);
    add(c, "weight", RG_BUF_IN, OC * C, -1, 1);
    c->flops = 4.0 * N_ * C * OC;
    return 0;
}
static double call_matmul_backward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                   void *const *b) {
    k->matmul_backward(x, F(0), F(1), F(2), F(3), F(4), (int)N_, c->d.C, c->d.OC);
    return 0.0;
}

/* qkv in [-2, 2] spreads q.k/sqrt(hs) over about +-1.5, so softmax rows are not flat; a scale s
 * multiplies the scores by s^2. */
static double attention_flops(const rg_op_case *c) {
    return 4.0 * c->d.B * c->d.NH * (double)c->d.T * c->d.T * (c->d.C / c->d.NH);
}

static int make_attention_forward(rg_op_case *c) {
    if (shape_attention(c) != 0) return -1;
    size_t C = c->d.C, T = c->d.T;
    double s2 = (double)c->scale * c->scale;
    bound_softmax(add(c, "out", RG_BUF_OUT, N_ * C, -9, 9), "T", T, s2);
    /* each row's {max score, 1/sum}: judged apart, they are of different magnitudes */
    rg_case_buf *st = add(c, "stats", RG_BUF_OUT, (size_t)c->d.B * c->d.NH * T * 2, -9, 9);
    st->parts = 2;
    st->part_cols = 1;
    bound_softmax(st, "T", T, s2);
    add(c, "qkv", RG_BUF_IN, N_ * 3 * C, -2, 2);
    c->flops = attention_flops(c);
    return 0;
}
static double call_attention_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                     void *const *b) {
    k->attention_forward(x, F(0), F(1), F(2), c->d.B, c->d.T, c->d.C, c->d.NH);
    return 0.0;
}

static int make_attention_backward(rg_op_case *c) {
    if (shape_attention(c) != 0) return -1;
    size_t C = c->d.C, T = c->d.T;
    rg_case_buf *d = add(c, "dqkv", RG_BUF_OUT, N_ * 3 * C, -9, 9);
    /* dq and dk are much smaller than dv: judged apart so that dv does not hide them */
    d->parts = 3;
    d->part_cols = C;
    bound_softmax(d, "T", T, (double)c->scale * c->scale);
    add(c, "dout", RG_BUF_IN, N_ * C, -1, 1);
    add(c, "qkv", RG_BUF_IN, N_ * 3 * C, -2, 2);
    add(c, "stats", RG_BUF_IN, (size_t)c->d.B * c->d.NH * T * 2, 0, 0)->derived = 1;
    c->flops = 2.0 * attention_flops(c);
    return 0;
}
static double call_attention_backward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                      void *const *b) {
    k->attention_backward(x, F(0), F(1), F(2), F(3), c->d.B, c->d.T, c->d.C, c->d.NH);
    return 0.0;
}
/* stats of the reference forward on the case's qkv. */
static int derive_attention_backward(const rg_op_case *c, void *const *b, rg_rng *r,
                                     float offset) {
    (void)r;
    (void)offset;
    float *out = malloc(N_ * c->d.C * sizeof(float) + 1);
    if (!out) return -1;
    rg_ref_attention_forward(NULL, out, F(3), F(2), c->d.B, c->d.T, c->d.C, c->d.NH);
    free(out);
    return 0;
}

/* dS[t][t2] = scale att (datt - dot) is a difference of terms that can nearly cancel (exactly, at
 * T = 1: dq and dk are then 0), and max|ref| measures the result, not what was rounded. dq and dk
 * are therefore normalised by the largest sum of |terms| of one of their elements,
 * sum_t2 scale att (|datt| + |dot|) |k| (and with |q| for dk): the size of what a correct kernel
 * rounds. dv has no such difference (0 is returned: max|ref| applies). */
static double scale_attention_backward(const rg_op_case *c, void *const *b, int part) {
    if (part == 2) return 0.0;
    int B = c->d.B, T = c->d.T, C = c->d.C, NH = c->d.NH, hs = C / NH;
    size_t C3 = 3 * (size_t)C;
    const float *dout = F(1), *qkv = F(2), *stats = F(3);
    double scale = 1.0 / sqrt((double)hs), best = 0.0;
    double *a = malloc((size_t)T * sizeof(double) * 2 + (size_t)T * hs * sizeof(double));
    if (!a) return 0.0; /* then max|ref| alone: stricter, never laxer */
    double *datt = a + T, *dk = datt + T;
    for (int bh = 0; bh < B * NH; bh++) {
        const float *q0 = qkv + (size_t)(bh / NH) * T * C3 + (bh % NH) * hs;
        const float *dy0 = dout + (size_t)(bh / NH) * T * C + (bh % NH) * hs;
        memset(dk, 0, (size_t)T * hs * sizeof(double));
        for (int t = 0; t < T; t++) {
            const float *q = q0 + (size_t)t * C3, *st = stats + ((size_t)bh * T + t) * 2;
            double dot = 0.0;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *k = q0 + (size_t)t2 * C3 + C, *v = k + C;
                double s = 0.0, d = 0.0;
                for (int i = 0; i < hs; i++) {
                    s += (double)q[i] * k[i];
                    d += (double)v[i] * dy0[(size_t)t * C + i];
                }
                a[t2] = exp(s * scale - st[0]) * st[1];
                datt[t2] = d;
                dot += a[t2] * d;
            }
            for (int i = 0; i < hs; i++) {
                double dq = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = q0 + (size_t)t2 * C3 + C;
                    double ds = scale * a[t2] * (fabs(datt[t2]) + fabs(dot));
                    dq += ds * fabs(k[i]);
                    dk[(size_t)t2 * hs + i] += ds * fabs(q[i]);
                }
                if (part == 0) best = fmax(best, dq);
            }
        }
        for (size_t j = 0; part == 1 && j < (size_t)T * hs; j++) best = fmax(best, dk[j]);
    }
    free(a);
    return best;
}

static int make_adamw_step(rg_op_case *c) {
    if (shape_n(c) != 0) return -1;
    size_t n = c->d.n;
    bound_elementwise(add(c, "params", RG_BUF_INOUT, n, -1, 1));
    bound_elementwise(add(c, "m", RG_BUF_INOUT, n, -0.1f, 0.1f));
    bound_elementwise(add(c, "v", RG_BUF_INOUT, n, 0, 0.01f));
    add(c, "grads", RG_BUF_IN, n, -1, 1);
    return 0;
}
static double call_adamw_step(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                              void *const *b) {
    const rg_op_scalars *s = &c->s;
    k->adamw_step(x, F(0), F(1), F(2), F(3), c->d.n, s->lr, s->beta1, s->beta2, s->eps,
                  s->weight_decay, s->grad_scale, s->t);
    return 0.0;
}

/* rmsnorm: a sum of squares over C, then 1/sqrt: rounding like a short sum. */
static void bound_rmsnorm(rg_case_buf *b, size_t C) { bound_softmax(b, "C", C, 1.0); }

static int make_rmsnorm_forward(rg_op_case *c) {
    if (shape_rows(c) != 0) return -1;
    size_t C = c->d.C;
    bound_rmsnorm(add(c, "out", RG_BUF_OUT, N_ * C, -9, 9), C);
    bound_rmsnorm(add(c, "rstd", RG_BUF_OUT, N_, -9, 9), C);
    add(c, "inp", RG_BUF_IN, N_ * C, -1, 1);
    return 0;
}
static double call_rmsnorm_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                   void *const *b) {
    k->rmsnorm_forward(x, F(0), F(1), F(2), (int)N_, c->d.C);
    return 0.0;
}

static int make_rmsnorm_backward(rg_op_case *c) {
    if (shape_rows(c) != 0) return -1;
    size_t C = c->d.C;
    /* dinp accumulates: the residual stream's gradient (see backend.h) */
    bound_rmsnorm(add(c, "dinp", RG_BUF_ACC, N_ * C, -1, 1), C);
    add(c, "dout", RG_BUF_IN, N_ * C, -1, 1);
    add(c, "inp", RG_BUF_IN, N_ * C, -1, 1);
    add(c, "rstd", RG_BUF_IN, N_, 0, 0)->derived = 1;
    return 0;
}
static double call_rmsnorm_backward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                    void *const *b) {
    k->rmsnorm_backward(x, F(0), F(1), F(2), F(3), (int)N_, c->d.C);
    return 0.0;
}
/* rstd of the reference forward on the case's inp. */
static int derive_rmsnorm_backward(const rg_op_case *c, void *const *b, rg_rng *r,
                                   float offset) {
    (void)r;
    (void)offset;
    float *out = malloc(N_ * c->d.C * sizeof(float) + 1);
    if (!out) return -1;
    rg_ref_rmsnorm_forward(NULL, out, F(3), F(2), (int)N_, c->d.C);
    free(out);
    return 0;
}

static int make_sqrelu_forward(rg_op_case *c) {
    if (shape_n(c) != 0) return -1;
    bound_elementwise(add(c, "out", RG_BUF_OUT, c->d.n, -9, 9));
    add(c, "inp", RG_BUF_IN, c->d.n, -1, 1);
    return 0;
}
static double call_sqrelu_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                  void *const *b) {
    k->sqrelu_forward(x, F(0), F(1), c->d.n);
    return 0.0;
}

static int make_sqrelu_backward(rg_op_case *c) {
    if (shape_n(c) != 0) return -1;
    bound_elementwise(add(c, "dinp", RG_BUF_OUT, c->d.n, -9, 9));
    add(c, "dout", RG_BUF_IN, c->d.n, -1, 1);
    /* the forward's output max(x, 0)^2, x in [-1, 1): 0 for half of them */
    add(c, "out", RG_BUF_IN, c->d.n, -1, 1)->derived = 1;
    return 0;
}
static double call_sqrelu_backward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                   void *const *b) {
    k->sqrelu_backward(x, F(0), c->in_place ? F(0) : F(1), F(2), c->d.n);
    return 0.0;
}

static int make_residual_forward(rg_op_case *c) {
    if (shape_n(c) != 0) return -1;
    bound_elementwise(add(c, "out", RG_BUF_OUT, c->d.n, -9, 9));
    add(c, "inp1", RG_BUF_IN, c->d.n, -1, 1);
    add(c, "inp2", RG_BUF_IN, c->d.n, -1, 1);
    return 0;
}
static double call_residual_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                    void *const *b) {
    k->residual_forward(x, F(0), c->in_place ? F(0) : F(1), F(2), c->d.n);
    return 0.0;
}

static int make_embedding_forward(rg_op_case *c) {
    if (shape_embedding(c) != 0) return -1;
    size_t C = c->d.C;
    bound_elementwise(add(c, "out", RG_BUF_OUT, N_ * C, -9, 9));
    add_tokens(c, "tokens", N_);
    add(c, "wte", RG_BUF_IN, (size_t)c->d.V * C, -1, 1)->traffic = N_ * C; /* rows gathered */
    add(c, "wpe", RG_BUF_IN, (size_t)c->d.T * C, -1, 1)->traffic = N_ * C;
    return 0;
}
static double call_embedding_forward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                     void *const *b) {
    k->embedding_forward(x, F(0), I(1), F(2), F(3), c->d.B, c->d.T, c->d.C);
    return 0.0;
}

static int make_embedding_backward(rg_op_case *c) {
    if (shape_embedding(c) != 0) return -1;
    size_t C = c->d.C;
    /* a dwte row sums about N/V rows of dout, a dwpe row sums B of them, in any order */
    rg_case_buf *dwte = add(c, "dwte", RG_BUF_ACC, (size_t)c->d.V * C, -1, 1);
    bound_sum(dwte, "N/V+1", N_ / (size_t)c->d.V + 1);
    dwte->traffic = N_ * C;
    rg_case_buf *dwpe = add(c, "dwpe", RG_BUF_ACC, (size_t)c->d.T * C, -1, 1);
    bound_sum(dwpe, "B", (size_t)c->d.B);
    dwpe->traffic = N_ * C;
    add(c, "dout", RG_BUF_IN, N_ * C, -1, 1);
    add_tokens(c, "tokens", N_);
    return 0;
}
static double call_embedding_backward(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                                      void *const *b) {
    k->embedding_backward(x, F(0), F(1), F(2), I(3), c->d.B, c->d.T, c->d.C);
    return 0.0;
}

/* logits in [-4, 4] times the scale: the softmax's exp sees their spread. */
static int make_crossentropy_forward(rg_op_case *c) {
    if (shape_logits(c) != 0) return -1;
    size_t V = c->d.V;
    bound_softmax(add(c, "losses", RG_BUF_OUT, N_, -9, 9), "V", V, 4.0 * c->scale);
    bound_softmax(add(c, "probs", RG_BUF_OUT, N_ * V, -9, 9), "V", V, 4.0 * c->scale);
    add(c, "logits", RG_BUF_IN, N_ * V, -4, 4);
    add_tokens(c, "targets", N_);
    return 0;
}
static double call_crossentropy_forward(const rg_op_case *c, const rg_backend *k,
                                        rg_backend_ctx *x, void *const *b) {
    k->crossentropy_forward(x, F(0), F(1), F(2), I(3), (int)N_, c->d.V);
    return 0.0;
}

static int make_crossentropy_backward(rg_op_case *c) {
    if (shape_logits(c) != 0) return -1;
    size_t V = c->d.V;
    bound_elementwise(add(c, "dlogits", RG_BUF_OUT, N_ * V, -9, 9));
    add(c, "probs", RG_BUF_IN, N_ * V, -4, 4)->derived = 1; /* softmax of logits in [lo, hi) */
    add_tokens(c, "targets", N_);
    return 0;
}
static double call_crossentropy_backward(const rg_op_case *c, const rg_backend *k,
                                         rg_backend_ctx *x, void *const *b) {
    k->crossentropy_backward(x, F(0), F(1), I(2), (int)N_, c->d.V, c->s.dloss);
    return 0.0;
}

static int make_sum_squares(rg_op_case *c) {
    if (shape_n(c) != 0) return -1;
    add(c, "x", RG_BUF_IN, c->d.n, -1, 1);
    /* The contract accumulates in double: the squares' own rounding (if taken in fp32) and n
     * double roundings. An fp32 accumulator is off by far more at any n above a few thousand. */
    c->returns = 1;
    c->result_tol = 2.0 * U + 2.0 * (double)c->d.n * U * U * U;
    snprintf(c->result_bound, sizeof c->result_bound, "2u+2n*2^-53 (n=%zu)", c->d.n);
    return 0;
}
static double call_sum_squares(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x,
                               void *const *b) {
    return k->sum_squares(x, F(0), c->d.n);
}

/* Softmax of logits drawn in probs' [lo, hi): probs of the reference forward. */
static int derive_crossentropy_backward(const rg_op_case *c, void *const *b, rg_rng *r,
                                        float offset) {
    size_t n = N_ * c->d.V;
    float *logits = malloc(n * sizeof(float) + 1), *losses = malloc(N_ * sizeof(float) + 1);
    if (!logits || !losses) {
        free(logits);
        free(losses);
        return -1;
    }
    const rg_case_buf *p = &c->buf[1];
    for (size_t i = 0; i < n; i++)
        logits[i] = offset + p->lo + (p->hi - p->lo) * rg_rng_uniform(r);
    rg_ref_crossentropy_forward(NULL, losses, F(1), logits, I(2), (int)N_, c->d.V);
    free(logits);
    free(losses);
    return 0;
}

/* The squared ReLU of x drawn in out's [lo, hi): out of the reference forward. */
static int derive_sqrelu_backward(const rg_op_case *c, void *const *b, rg_rng *r, float offset) {
    size_t n = c->d.n;
    float *x = malloc(n * sizeof(float) + 1);
    if (!x) return -1;
    const rg_case_buf *o = &c->buf[2];
    for (size_t i = 0; i < n; i++) x[i] = offset + o->lo + (o->hi - o->lo) * rg_rng_uniform(r);
    rg_ref_sqrelu_forward(NULL, F(2), x, n);
    free(x);
    return 0;
}

/* The ops whose backward reads a forward's state: it is computed by the reference. */
typedef int (*derive_fn)(const rg_op_case *c, void *const *b, rg_rng *r, float offset);
static const derive_fn derive_of[RG_OP_COUNT] = {
    [RG_OP_ATTENTION_BACKWARD] = derive_attention_backward,
    [RG_OP_RMSNORM_BACKWARD] = derive_rmsnorm_backward,
    [RG_OP_SQRELU_BACKWARD] = derive_sqrelu_backward,
    [RG_OP_CROSSENTROPY_BACKWARD] = derive_crossentropy_backward,
};

/* The ops with outputs judged against the size of their terms rather than of their result. */
typedef double (*scale_fn)(const rg_op_case *c, void *const *b, int part);
static const scale_fn scale_of[RG_OP_COUNT] = {
    [RG_OP_ATTENTION_BACKWARD] = scale_attention_backward,
};

/* Every op's case, from op_list.h: an op without make_<name> and call_<name> does not compile. */
typedef struct case_kind {
    int (*make)(rg_op_case *c);
    double (*call)(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *x, void *const *b);
} case_kind;

#define KIND_(name, KIND, req, ret, params) [RG_OP_##KIND] = {make_##name, call_##name},
static const case_kind kinds[RG_OP_COUNT] = {RG_OP_LIST(KIND_)};
#undef KIND_

/* ---- the interface ---- */

int rg_op_case_make(rg_op_case *c, rg_op_kind op, const rg_op_dims *d, float scale) {
    memset(c, 0, sizeof *c);
    if ((int)op < 0 || op >= RG_OP_COUNT) return -1;
    c->op = op;
    c->d = *d;
    c->scale = scale > 0.0f ? scale : 1.0f;
    /* the training defaults: AdamW as rg_optim_default, the mean over N rows */
    c->s = (rg_op_scalars){.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = 0.1f, .grad_scale = 1.0f, .t = 1, .dloss = 1.0f};
    c->s.dloss = 1.0f / (float)((size_t)d->B * d->T > 0 ? (size_t)d->B * d->T : 1);
    if (kinds[op].make(c) != 0) return -1;
    if (c->flops == 0.0) {
        double bytes = 0.0;
        for (int i = 0; i < c->nbufs; i++) {
            const rg_case_buf *b = &c->buf[i];
            int twice = b->role == RG_BUF_ACC || b->role == RG_BUF_INOUT;
            bytes += 4.0 * (double)b->traffic * (twice ? 2 : 1);
        }
        c->bytes = bytes;
    }
    return 0;
}

int rg_op_case_fill(const rg_op_case *c, void *const *b, rg_rng *r, const rg_case_fill *fill) {
    rg_case_fill none = {0.0f, 0, 0.0f};
    if (!fill) fill = &none;
    int32_t token = (int32_t)rg_rng_below(r, (uint64_t)(c->d.V > 0 ? c->d.V : 1));
    for (int i = 0; i < c->nbufs; i++) {
        const rg_case_buf *cb = &c->buf[i];
        if (cb->role == RG_BUF_OUT || cb->derived) continue;
        if (cb->tokens) {
            int32_t *t = b[i];
            for (size_t j = 0; j < cb->count; j++)
                t[j] = fill->one_token ? token : (int32_t)rg_rng_below(r, (uint64_t)c->d.V);
            continue;
        }
        float *x = b[i];
        for (size_t j = 0; j < cb->count; j++) {
            x[j] = fill->offset + cb->lo + (cb->hi - cb->lo) * rg_rng_uniform(r);
            if (fill->zeros > 0.0f && rg_rng_uniform(r) < fill->zeros) x[j] = 0.0f;
        }
        /* a whole zero row: rmsnorm's eps, a softmax over equal scores */
        size_t row = c->d.C > 0 ? (size_t)c->d.C : 1;
        if (fill->zeros > 0.0f) memset(x, 0, (row < cb->count ? row : cb->count) * sizeof(float));
    }
    if (c->in_place) memcpy(b[0], b[1], rg_case_buf_bytes(&c->buf[1]));
    derive_fn derive = derive_of[c->op];
    return derive ? derive(c, b, r, fill->offset) : 0;
}

double rg_op_case_call(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *ctx,
                       void *const *b) {
    return kinds[c->op].call(c, k, ctx, b);
}

double rg_op_case_error_scale(const rg_op_case *c, void *const *b, int buf, int part) {
    scale_fn f = scale_of[c->op];
    return f && c->buf[buf].role != RG_BUF_IN ? f(c, b, part) : 0.0;
}

/* One use of a matmul in the model: C and OC as multiples of n_embd; oc_mult 0 means OC = V. */
static const struct {
    const char *name;
    int c_mult, oc_mult;
} matmul_uses[RG_NUM_MATMUL_USES] = {
    {"qkv", 1, 3}, {"attproj", 1, 1}, {"fc", 1, 4}, {"fcproj", 4, 1}, {"lmhead", 1, 0},
};

int rg_op_step_cases(const rg_op_dims *m, size_t n_params, float scale, rg_op_case *out) {
    int count = 0;
    const size_t N = (size_t)m->B * m->T;
    for (int op = 0; op < RG_OP_COUNT; op++) {
        int is_matmul = op == RG_OP_MATMUL_FORWARD || op == RG_OP_MATMUL_BACKWARD;
        for (int u = 0; u < (is_matmul ? RG_NUM_MATMUL_USES : 1); u++) {
            rg_op_dims d = *m;
            const char *label = NULL;
            if (is_matmul) {
                label = matmul_uses[u].name;
                d.C = matmul_uses[u].c_mult * m->C;
                d.OC = matmul_uses[u].oc_mult ? matmul_uses[u].oc_mult * m->C : m->V;
            }
            /* element counts as in one training step: the MLP hidden for sqrelu, the residual
             * stream for residual, every parameter for adamw and the gradient norm */
            if (op == RG_OP_SQRELU_FORWARD || op == RG_OP_SQRELU_BACKWARD) d.n = N * 4 * m->C;
            if (op == RG_OP_RESIDUAL_FORWARD) d.n = N * m->C;
            if (op == RG_OP_ADAMW || op == RG_OP_SUM_SQUARES) d.n = n_params;
            if (rg_op_case_make(&out[count], (rg_op_kind)op, &d, scale) != 0) return -1;
            out[count++].label = label;
        }
    }
    return count;
}
