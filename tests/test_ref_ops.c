/*
 * Reference kernels: every backward op against central finite differences of its forward, forward
 * ops against small hand-computed values, AdamW against a hand-written step. Also the op table
 * (ops.c): validation errors and resolution of optional ops to the reference.
 *
 * Finite differences: the scalar probed is S = sum(out * w) with a fixed random w (accumulated in
 * double), so the backward op is called with dout = w. Each input element is moved by +-1e-3 in
 * float and the slope uses the step actually taken after rounding. Error measure per element:
 * |analytic - numeric| / max(1, |numeric|). Tolerance 2e-3: the forward runs in float, so S carries
 * a rounding error of a few 1e-7 relative per affected output, which divided by the 2e-3 step gives
 * about 1e-4; the O(h^2) truncation term is smaller still. A wrong scale or a missing term in any
 * gradient gives errors of order 0.1 or more. Every backward buffer starts at GRAD_PREFILL: the
 * test subtracts it from the gradients the contract accumulates (parameters, rmsnorm's dinp) and not
 * from those it overwrites (activations), so a kernel that does the other of the two fails too.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "randygpt/ops.h"
#include "randygpt/rng.h"

#define FD_STEP 1e-3f
#define FD_TOL 2e-3
#define GRAD_PREFILL 0.5f /* backward buffers start here; see grad_kind */

/* ---------------------------------------------------------------------------------------------- */
/* helpers */

static float *rand_floats(rg_rng *rng, size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rg_rng_normal(rng);
    }
    return x;
}

static float *filled(size_t n, float value) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        x[i] = value;
    }
    return x;
}

static float *copy_of(const float *src, size_t n) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    memcpy(x, src, n * sizeof(float));
    return x;
}

static double weighted_sum(const float *out, const float *w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)out[i] * (double)w[i];
    }
    return s;
}

/* A scalar function of the inputs, evaluated by running a forward op. */
typedef double (*scalar_fn)(void *state);

/* What a backward op left in a gradient buffer that started at GRAD_PREFILL: the prefill is part of
 * an accumulated gradient (ACCUMULATED: subtracted before comparing) and gone from an overwritten
 * one (OVERWRITTEN). */
typedef enum grad_kind { OVERWRITTEN, ACCUMULATED } grad_kind;

/* Compares grad against central differences of f with respect to each element of x (n elements). */
static void check_grad(const char *what, scalar_fn f, void *state, float *x, size_t n,
                       const float *grad, grad_kind kind) {
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        float orig = x[i];
        x[i] = orig + FD_STEP;
        float xp = x[i];
        double fp = f(state);
        x[i] = orig - FD_STEP;
        float xm = x[i];
        double fm = f(state);
        x[i] = orig;
        double numeric = (fp - fm) / ((double)xp - (double)xm);
        double analytic = (double)grad[i] - (kind == ACCUMULATED ? GRAD_PREFILL : 0.0);
        double e = fabs(analytic - numeric) / fmax(1.0, fabs(numeric));
        if (e > worst) {
            worst = e;
            worst_i = i;
        }
    }
    if (worst > FD_TOL) {
        fail_msg("%s: gradient error %.3g at element %zu exceeds %.1g", what, worst, worst_i, FD_TOL);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* matmul */

typedef struct {
    float *out, *inp, *weight, *w;
    int N, C, OC;
} matmul_state;

static double matmul_scalar(void *p) {
    matmul_state *s = p;
    rg_ref_matmul_forward(NULL, s->out, s->inp, s->weight, s->N, s->C, s->OC);
    return weighted_sum(s->out, s->w, (size_t)s->N * s->OC);
}

static void test_matmul_forward_values(void **state) {
    /* inp (2,3), weight (2,3): out = inp @ weight^T, by hand */
    const float inp[6] = {1, 2, 3, 4, 5, 6};
    const float weight[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    float out[4];
    rg_ref_matmul_forward(NULL, out, inp, weight, 2, 3, 2);
    assert_float_equal(out[0], -2.0f, 1e-6f);
    assert_float_equal(out[1], 3.0f, 1e-6f);
    assert_float_equal(out[2], -2.0f, 1e-6f);
    assert_float_equal(out[3], 7.5f, 1e-6f);
}

static void test_matmul_backward_fd(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 1);
    matmul_state s = {.N = 5, .C = 7, .OC = 6};
    s.inp = rand_floats(&rng, 35, 1.0f);
    s.weight = rand_floats(&rng, 42, 1.0f);
    s.w = rand_floats(&rng, 30, 1.0f);
    s.out = filled(30, 0.0f);
    float *dinp = filled(35, GRAD_PREFILL), *dweight = filled(42, GRAD_PREFILL);
    rg_ref_matmul_backward(NULL, dinp, dweight, s.w, s.inp, s.weight, s.N, s.C, s.OC);
    check_grad("matmul dinp", matmul_scalar, &s, s.inp, 35, dinp, OVERWRITTEN);
    check_grad("matmul dweight", matmul_scalar, &s, s.weight, 42, dweight, ACCUMULATED);
    free(s.inp), free(s.weight), free(s.w), free(s.out), free(dinp), free(dweight);
}

/* ---------------------------------------------------------------------------------------------- */
/* attention */

typedef struct {
    float *out, *stats, *qkv, *w;
    int B, T, C, NH;
} attention_state;

static double attention_scalar(void *p) {
    attention_state *s = p;
    rg_ref_attention_forward(NULL, s->out, s->stats, s->qkv, s->B, s->T, s->C, s->NH);
    return weighted_sum(s->out, s->w, (size_t)s->B * s->T * s->C);
}

static void test_attention_forward_values(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 2);
    int B = 2, T = 5, C = 8, NH = 2, hs = C / NH;
    float *qkv = rand_floats(&rng, (size_t)B * T * 3 * C, 1.0f);
    float *out = filled((size_t)B * T * C, 0.0f);
    float *stats = filled((size_t)B * NH * T * 2, -1.0f); /* garbage the op must overwrite */
    rg_ref_attention_forward(NULL, out, stats, qkv, B, T, C, NH);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                /* {max score, 1/sum exp(score - max)} of the visible keys, in double */
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double sc[5], mx = -INFINITY, sum = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
                    double d = 0.0;
                    for (int i = 0; i < hs; i++) d += (double)q[i] * k[i];
                    sc[t2] = d / sqrt((double)hs);
                    mx = fmax(mx, sc[t2]);
                }
                for (int t2 = 0; t2 <= t; t2++) sum += exp(sc[t2] - mx);
                const float *st = stats + (((size_t)b * NH + h) * T + t) * 2;
                assert_float_equal(st[0], (float)mx, 1e-6f);
                assert_float_equal(st[1], (float)(1.0 / sum), 1e-6f);
                assert_true(st[1] > 0.0f && st[1] <= 1.0f);
            }
            /* position 0 sees only itself: its output is its own v */
            for (int i = 0; i < hs; i++) {
                float v0 = qkv[(size_t)b * T * 3 * C + 2 * C + h * hs + i];
                assert_float_equal(out[(size_t)b * T * C + h * hs + i], v0, 1e-6f);
            }
        }
    }
    /* one row by hand: b=1, h=1, t=1 sees t2 = 0, 1 with scores q.k / sqrt(hs) */
    int b = 1, h = 1, t = 1;
    const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
    double sc[2];
    for (int t2 = 0; t2 < 2; t2++) {
        const float *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * hs;
        double d = 0.0;
        for (int i = 0; i < hs; i++) {
            d += (double)q[i] * k[i];
        }
        sc[t2] = d / sqrt((double)hs);
    }
    double p0 = 1.0 / (1.0 + exp(sc[1] - sc[0]));
    for (int i = 0; i < hs; i++) {
        double v0 = qkv[((size_t)b * T + 0) * 3 * C + 2 * C + h * hs + i];
        double v1 = qkv[((size_t)b * T + 1) * 3 * C + 2 * C + h * hs + i];
        assert_float_equal(out[((size_t)b * T + t) * C + h * hs + i], (float)(p0 * v0 + (1 - p0) * v1),
                           1e-5f);
    }
    free(qkv), free(out), free(stats);
}

static void test_attention_backward_fd(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 3);
    attention_state s = {.B = 2, .T = 5, .C = 8, .NH = 2};
    size_t nqkv = (size_t)s.B * s.T * 3 * s.C, nout = (size_t)s.B * s.T * s.C;
    s.qkv = rand_floats(&rng, nqkv, 1.0f);
    s.w = rand_floats(&rng, nout, 1.0f);
    s.out = filled(nout, 0.0f);
    s.stats = filled((size_t)s.B * s.NH * s.T * 2, 0.0f);
    attention_scalar(&s); /* stats of the unperturbed input, for the backward */
    float *stats = copy_of(s.stats, (size_t)s.B * s.NH * s.T * 2); /* the scalar rewrites s.stats */
    float *dqkv = filled(nqkv, GRAD_PREFILL);
    rg_ref_attention_backward(NULL, dqkv, s.w, s.qkv, stats, s.B, s.T, s.C, s.NH);
    check_grad("attention dqkv", attention_scalar, &s, s.qkv, nqkv, dqkv, OVERWRITTEN);
    free(s.qkv), free(s.w), free(s.out), free(s.stats), free(stats), free(dqkv);
}

/* ---------------------------------------------------------------------------------------------- */
/* rmsnorm */

typedef struct {
    float *out, *rstd, *inp, *w;
    int N, C;
} rmsnorm_state;

static double rmsnorm_scalar(void *p) {
    rmsnorm_state *s = p;
    rg_ref_rmsnorm_forward(NULL, s->out, s->rstd, s->inp, s->N, s->C);
    return weighted_sum(s->out, s->w, (size_t)s->N * s->C);
}

static void test_rmsnorm_forward_values(void **state) {
    /* mean of squares of (1,2,3,4) is 7.5 */
    const float inp[4] = {1, 2, 3, 4};
    float out[4], rstd[1];
    rg_ref_rmsnorm_forward(NULL, out, rstd, inp, 1, 4);
    double r = 1.0 / sqrt(7.5 + 1e-5);
    assert_float_equal(rstd[0], (float)r, 1e-6f);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(out[i], (float)(inp[i] * r), 1e-6f);
    }
}

static void test_rmsnorm_backward_fd(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 4);
    rmsnorm_state s = {.N = 4, .C = 9};
    size_t n = 36;
    s.inp = rand_floats(&rng, n, 1.0f);
    s.w = rand_floats(&rng, n, 1.0f);
    s.out = filled(n, 0.0f);
    s.rstd = filled(4, 0.0f);
    rmsnorm_scalar(&s);
    float *dinp = filled(n, GRAD_PREFILL);
    rg_ref_rmsnorm_backward(NULL, dinp, s.w, s.inp, s.rstd, s.N, s.C);
    check_grad("rmsnorm dinp", rmsnorm_scalar, &s, s.inp, n, dinp, ACCUMULATED);
    free(s.inp), free(s.w), free(s.out), free(s.rstd), free(dinp);
}

/* ---------------------------------------------------------------------------------------------- */
/* squared ReLU */

typedef struct {
    float *out, *inp, *w;
    size_t n;
} sqrelu_state;

static double sqrelu_scalar(void *p) {
    sqrelu_state *s = p;
    rg_ref_sqrelu_forward(NULL, s->out, s->inp, s->n);
    return weighted_sum(s->out, s->w, s->n);
}

static void test_sqrelu_forward_values(void **state) {
    const float inp[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
    float out[4];
    rg_ref_sqrelu_forward(NULL, out, inp, 4);
    assert_float_equal(out[0], 0.0f, 0.0f);
    assert_float_equal(out[1], 0.0f, 0.0f);
    assert_float_equal(out[2], 0.25f, 1e-7f);
    assert_float_equal(out[3], 4.0f, 1e-7f);
}

static void test_sqrelu_backward_fd(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 5);
    sqrelu_state s = {.n = 40};
    s.inp = rand_floats(&rng, s.n, 1.0f);
    for (size_t i = 0; i < s.n; i++) {
        /* keep clear of the kink at 0, where a central difference straddles two slopes */
        if (fabsf(s.inp[i]) < 0.05f) {
            s.inp[i] = s.inp[i] < 0 ? -0.3f : 0.3f;
        }
    }
    s.w = rand_floats(&rng, s.n, 1.0f);
    s.out = filled(s.n, 0.0f);
    float *fwd = filled(s.n, 0.0f); /* the forward's output, which the backward reads */
    rg_ref_sqrelu_forward(NULL, fwd, s.inp, s.n);
    float *dinp = filled(s.n, GRAD_PREFILL);
    rg_ref_sqrelu_backward(NULL, dinp, s.w, fwd, s.n);
    check_grad("sqrelu dinp", sqrelu_scalar, &s, s.inp, s.n, dinp, OVERWRITTEN);
    /* in place (dinp == dout), as the model runs it: the same values */
    float *inplace = copy_of(s.w, s.n);
    rg_ref_sqrelu_backward(NULL, inplace, inplace, fwd, s.n);
    assert_memory_equal(inplace, dinp, s.n * sizeof(float));
    /* 2 sqrt(max(x, 0)^2) is 2 max(x, 0) exactly */
    for (size_t i = 0; i < s.n; i++) {
        float r = s.inp[i] > 0.0f ? s.inp[i] : 0.0f;
        assert_true(dinp[i] == s.w[i] * 2.0f * r);
    }
    free(s.inp), free(s.w), free(s.out), free(fwd), free(inplace), free(dinp);
}

/* ---------------------------------------------------------------------------------------------- */
/* residual */

static void test_residual_forward_aliased(void **state) {
    float x[3] = {1.0f, -2.0f, 3.5f};
    const float y[3] = {0.5f, 0.5f, -0.5f};
    rg_ref_residual_forward(NULL, x, x, y, 3); /* out aliases inp1 */
    assert_float_equal(x[0], 1.5f, 0.0f);
    assert_float_equal(x[1], -1.5f, 0.0f);
    assert_float_equal(x[2], 3.0f, 0.0f);
}

/* ---------------------------------------------------------------------------------------------- */
/* embedding */

typedef struct {
    float *out, *wte, *wpe, *w;
    const int32_t *tokens;
    int B, T, C;
} embedding_state;

static double embedding_scalar(void *p) {
    embedding_state *s = p;
    rg_ref_embedding_forward(NULL, s->out, s->tokens, s->wte, s->wpe, s->B, s->T, s->C);
    return weighted_sum(s->out, s->w, (size_t)s->B * s->T * s->C);
}

static void test_embedding_backward(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 7);
    /* token 2 appears three times, token 0 twice, token 4 (of V=5) never */
    static const int32_t tokens[6] = {2, 0, 2, 1, 2, 0};
    int B = 2, T = 3, C = 4, V = 5, maxT = 4;
    embedding_state s = {.tokens = tokens, .B = B, .T = T, .C = C};
    s.wte = rand_floats(&rng, (size_t)V * C, 1.0f);
    s.wpe = rand_floats(&rng, (size_t)maxT * C, 1.0f);
    s.w = rand_floats(&rng, (size_t)B * T * C, 1.0f);
    s.out = filled((size_t)B * T * C, 0.0f);

    embedding_scalar(&s);
    for (int c = 0; c < C; c++) { /* out[b=1,t=2] = wte[0] + wpe[2] */
        assert_float_equal(s.out[(1 * T + 2) * C + c], s.wte[0 * C + c] + s.wpe[2 * C + c], 0.0f);
    }

    float *dwte = filled((size_t)V * C, GRAD_PREFILL), *dwpe = filled((size_t)maxT * C, GRAD_PREFILL);
    rg_ref_embedding_backward(NULL, dwte, dwpe, s.w, tokens, B, T, C);
    /* repeated token: its row gathers every position that used it */
    for (int c = 0; c < C; c++) {
        float expect = GRAD_PREFILL + s.w[(0 * T + 0) * C + c] + s.w[(0 * T + 2) * C + c] +
                       s.w[(1 * T + 1) * C + c];
        assert_float_equal(dwte[2 * C + c], expect, 1e-6f);
        assert_float_equal(dwte[4 * C + c], GRAD_PREFILL, 0.0f);     /* unused token */
        assert_float_equal(dwpe[3 * C + c], GRAD_PREFILL, 0.0f);     /* position beyond T */
    }
    check_grad("embedding dwte", embedding_scalar, &s, s.wte, (size_t)V * C, dwte, ACCUMULATED);
    check_grad("embedding dwpe", embedding_scalar, &s, s.wpe, (size_t)maxT * C, dwpe, ACCUMULATED);
    free(s.wte), free(s.wpe), free(s.w), free(s.out), free(dwte), free(dwpe);
}

/* ---------------------------------------------------------------------------------------------- */
/* cross-entropy */

typedef struct {
    float *losses, *probs, *logits;
    const int32_t *targets;
    int N, V;
    float dloss;
} ce_state;

static double ce_scalar(void *p) {
    ce_state *s = p;
    rg_ref_crossentropy_forward(NULL, s->losses, s->probs, s->logits, s->targets, s->N, s->V);
    double sum = 0.0;
    for (int i = 0; i < s->N; i++) {
        sum += s->losses[i];
    }
    return s->dloss * sum;
}

static void test_crossentropy_forward_values(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 8);
    int N = 3, V = 6;
    static const int32_t targets[3] = {0, 5, 2};
    float *logits = rand_floats(&rng, (size_t)N * V, 3.0f);
    for (int j = 0; j < V; j++) {
        logits[j] = 100.0f; /* row 0 all equal and large: probs 1/V, loss log V, no overflow */
    }
    float losses[3], *probs = filled((size_t)N * V, 0.0f);
    rg_ref_crossentropy_forward(NULL, losses, probs, logits, targets, N, V);
    for (int i = 0; i < N; i++) {
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            sum += probs[i * V + j];
        }
        assert_float_equal(sum, 1.0f, 1e-6f);
        assert_float_equal(losses[i], -logf(probs[i * V + targets[i]]), 1e-6f);
    }
    assert_float_equal(probs[0], 1.0f / V, 1e-7f);
    assert_float_equal(losses[0], logf((float)V), 1e-6f);
    free(logits), free(probs);
}

static void test_crossentropy_backward_fd(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 9);
    static const int32_t targets[4] = {3, 0, 6, 3};
    ce_state s = {.targets = targets, .N = 4, .V = 7, .dloss = 0.25f};
    size_t n = 28;
    s.logits = rand_floats(&rng, n, 2.0f);
    s.probs = filled(n, 0.0f);
    s.losses = filled(4, 0.0f);
    ce_scalar(&s);
    float *dlogits = filled(n, GRAD_PREFILL);
    rg_ref_crossentropy_backward(NULL, dlogits, s.probs, targets, s.N, s.V, s.dloss);
    check_grad("crossentropy dlogits", ce_scalar, &s, s.logits, n, dlogits, OVERWRITTEN);
    free(s.logits), free(s.probs), free(s.losses), free(dlogits);
}

/* ---------------------------------------------------------------------------------------------- */
/* AdamW and sum of squares */

static void test_adamw_one_step(void **state) {
    rg_rng rng;
    rg_rng_seed(&rng, 10);
    size_t n = 17;
    float *p = rand_floats(&rng, n, 1.0f), *m = rand_floats(&rng, n, 0.1f);
    float *v = rand_floats(&rng, n, 0.1f), *g = rand_floats(&rng, n, 1.0f);
    for (size_t i = 0; i < n; i++) {
        v[i] = v[i] * v[i]; /* a second moment is non-negative */
    }
    float *p0 = malloc(n * sizeof(float)), *m0 = malloc(n * sizeof(float));
    float *v0 = malloc(n * sizeof(float));
    memcpy(p0, p, n * sizeof(float)), memcpy(m0, m, n * sizeof(float)), memcpy(v0, v, n * sizeof(float));
    float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    int t = 3; /* past the first step, so the bias corrections are not trivial */
    rg_ref_adamw_step(NULL, p, m, v, g, n, lr, b1, b2, eps, wd, scale, t);
    for (size_t i = 0; i < n; i++) {
        double gi = (double)g[i] * scale;
        double mi = b1 * (double)m0[i] + (1 - b1) * gi;
        double vi = b2 * (double)v0[i] + (1 - b2) * gi * gi;
        double mhat = mi / (1 - pow(b1, t)), vhat = vi / (1 - pow(b2, t));
        double pi = p0[i] - lr * (mhat / (sqrt(vhat) + eps) + wd * p0[i]);
        /* float against double on one step: a few ulps of each term */
        assert_float_equal(m[i], (float)mi, 1e-6f);
        assert_float_equal(v[i], (float)vi, 1e-6f);
        assert_float_equal(p[i], (float)pi, 1e-5f);
    }
    free(p), free(m), free(v), free(g), free(p0), free(m0), free(v0);
}

static void test_sum_squares(void **state) {
    const float x[5] = {1.0f, -2.0f, 3.0f, 0.5f, -0.25f};
    assert_true(rg_ref_sum_squares(NULL, x, 5) == 14.3125);
    assert_true(rg_ref_sum_squares(NULL, x, 0) == 0.0);
}

/* ---------------------------------------------------------------------------------------------- */
/* the reference backend table */

static void test_reference_backend_create(void **state) {
    char err[256];
    rg_backend_config one = {.num_threads = 1};
    rg_backend_ctx *ctx = rg_reference_backend.create(&one, err, sizeof err);
    assert_non_null(ctx);
    char desc[128];
    rg_reference_backend.describe(ctx, desc, sizeof desc);
    assert_string_equal(desc, "reference C kernels, 1 thread");
    rg_reference_backend.destroy(ctx);

    rg_backend_config two = {.num_threads = 2};
    assert_null(rg_reference_backend.create(&two, err, sizeof err));
    assert_non_null(strstr(err, "1 thread"));

    rg_option opt = {"foo", "1"};
    rg_backend_config with_opt = {.num_threads = 1, .num_options = 1, .options = &opt};
    assert_null(rg_reference_backend.create(&with_opt, err, sizeof err));
    assert_non_null(strstr(err, "foo"));
}

/* ---------------------------------------------------------------------------------------------- */
/* table validation and resolution (ops.c) */

static void test_validate_refuses_bad_tables(void **state) {
    char err[512];
    assert_int_equal(rg_backend_validate(&rg_reference_backend, err, sizeof err), 0);
    assert_int_equal(rg_backend_validate(NULL, err, sizeof err), -1);

    rg_backend t = rg_reference_backend;
    t.abi_version = RG_BACKEND_ABI_VERSION + 98;
    assert_int_equal(rg_backend_validate(&t, err, sizeof err), -1);
    char versions[64];
    snprintf(versions, sizeof versions, "version %d, this randygpt uses version %d",
             RG_BACKEND_ABI_VERSION + 98, RG_BACKEND_ABI_VERSION);
    assert_non_null(strstr(err, versions));
    assert_non_null(strstr(err, "rebuild the plugin"));

    t = rg_reference_backend;
    t.struct_size -= 8;
    assert_int_equal(rg_backend_validate(&t, err, sizeof err), -1);
    assert_non_null(strstr(err, "size mismatch"));

    t = rg_reference_backend;
    t.name = NULL;
    assert_int_equal(rg_backend_validate(&t, err, sizeof err), -1);
    assert_non_null(strstr(err, "no name"));

    t = rg_reference_backend;
    t.matmul_backward = NULL;
    t.adamw_step = NULL;
    t.rmsnorm_forward = NULL; /* optional: not reported */
    assert_int_equal(rg_backend_validate(&t, err, sizeof err), -1);
    assert_string_equal(err, "backend single lacks required ops: matmul_backward, adamw_step");
}

static void test_ops_create_resolves_optional_ops(void **state) {
    char err[256], list[512];
    rg_backend_config one = {.num_threads = 1};
    rg_backend t = rg_reference_backend;
    /* a plugin that gives only the required ops */
    t.rmsnorm_forward = NULL, t.rmsnorm_backward = NULL, t.sqrelu_forward = NULL;
    t.sqrelu_backward = NULL, t.residual_forward = NULL;
    t.embedding_forward = NULL, t.embedding_backward = NULL, t.crossentropy_forward = NULL;
    t.crossentropy_backward = NULL, t.sum_squares = NULL;
    rg_ops ops;
    assert_int_equal(rg_ops_create(&ops, &t, &one, err, sizeof err), 0);
    assert_true(ops.k.rmsnorm_forward == rg_ref_rmsnorm_forward);
    assert_true(ops.k.sum_squares == rg_ref_sum_squares);
    assert_true(ops.k.crossentropy_backward == rg_ref_crossentropy_backward);
    rg_ops_native_list(&ops, list, sizeof list);
    assert_string_equal(list, "matmul_forward,matmul_backward,attention_forward,attention_backward,"
                              "adamw_step");
    for (int op = 0; op < RG_OP_COUNT; op++) {
        int native = (ops.native_mask >> op) & 1u;
        assert_int_equal(native, rg_op_is_required((rg_op_kind)op));
    }
    assert_int_equal(ops.num_threads, 1);
    rg_ops_destroy(&ops);
    assert_null(ops.ctx);

    assert_int_equal(rg_ops_create(&ops, &rg_reference_backend, &one, err, sizeof err), 0);
    assert_int_equal(ops.native_mask, (1u << RG_OP_COUNT) - 1);
    rg_ops_destroy(&ops);

    /* the instance's own refusal comes through */
    rg_backend_config two = {.num_threads = 2};
    assert_int_equal(rg_ops_create(&ops, &rg_reference_backend, &two, err, sizeof err), -1);
    assert_non_null(strstr(err, "1 thread"));
}

static void test_op_names(void **state) {
    assert_string_equal(rg_op_name(RG_OP_MATMUL_FORWARD), "matmul_forward");
    assert_string_equal(rg_op_name(RG_OP_ADAMW), "adamw_step");
    assert_string_equal(rg_op_name(RG_OP_SUM_SQUARES), "sum_squares");
    assert_string_equal(rg_op_name(RG_OP_COUNT), "unknown_op");
    assert_true(rg_op_is_required(RG_OP_ATTENTION_BACKWARD));
    assert_false(rg_op_is_required(RG_OP_EMBEDDING_FORWARD));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward_values),
        cmocka_unit_test(test_matmul_backward_fd),
        cmocka_unit_test(test_attention_forward_values),
        cmocka_unit_test(test_attention_backward_fd),
        cmocka_unit_test(test_rmsnorm_forward_values),
        cmocka_unit_test(test_rmsnorm_backward_fd),
        cmocka_unit_test(test_sqrelu_forward_values),
        cmocka_unit_test(test_sqrelu_backward_fd),
        cmocka_unit_test(test_residual_forward_aliased),
        cmocka_unit_test(test_embedding_backward),
        cmocka_unit_test(test_crossentropy_forward_values),
        cmocka_unit_test(test_crossentropy_backward_fd),
        cmocka_unit_test(test_adamw_one_step),
        cmocka_unit_test(test_sum_squares),
        cmocka_unit_test(test_reference_backend_create),
        cmocka_unit_test(test_validate_refuses_bad_tables),
        cmocka_unit_test(test_ops_create_resolves_optional_ops),
        cmocka_unit_test(test_op_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
