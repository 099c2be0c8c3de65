/*
 * Conformance suite (see conformance.h): a backend against the reference kernels and model.
 */
#include "randygpt/conformance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "randygpt/model.h"
#include "randygpt/ops.h"
#include "randygpt/rng.h"

/* ---- tolerances ----
 * fp32 unit roundoff is 6e-8. A backend may sum in another order than the reference (blocking,
 * FMA, per-thread partial sums), and for random data the rounding error of a K-term sum grows like
 * sqrt(K); both sides carry such an error, so 2e-6 * sqrt(K) leaves about a tenfold margin while a
 * wrong element (e.g. 1e-3 added to one output) still stands out at every shape we use. */
static double tol_sum(int K) { return 2e-6 * sqrt((double)K); }
/* One or two roundings per element; only FMA contraction can differ. */
#define TOL_ELEMENTWISE 1e-6
/* exp, a sum over a row (<= 256 or V terms) and a division: exp implementations differ by an ulp
 * or two, and the row sum adds the sqrt(T) growth above. */
#define TOL_SOFTMAX 1e-5
/* rmsnorm: a sum of squares over C, then 1/sqrt; rounding like a short sum. */
#define TOL_RMSNORM 1e-5
/* AdamW: a handful of roundings per element, a sqrt and a division; powf(beta, t) in float or
 * double makes a relative 1e-7 difference in the bias corrections. */
#define TOL_ADAMW 1e-6
/* Whole-model gradients: the rounding differences of every op compound through the layers and
 * the loss; 1e-4 leaves room for that while a real bug (a lost term, a wrong row) shows at 1e-2. */
#define TOL_MODEL_GRAD 1e-4
/* The loss of one step: a mean of B*T cross-entropies of nearly identical logits. */
#define TOL_MODEL_LOSS 1e-5
/* Losses over RG_CONF_TRAIN_STEPS AdamW steps: differences grow step by step; relative 1e-3 of the
 * loss is far below the loss's own drop over the run. */
#define TOL_TRAIN_LOSS 1e-3

/* The vocabulary size of the op checks and of the model checks (the default corpus has 67). */
#define CONF_V 67
/* Op checks of big presets cap B so that B*T*C^2 stays within the small preset's. */
#define CONF_MAX_TCC (2048.0 * 128.0 * 128.0)
/* Model checks: the tiny preset at this batch, cycling over a few fixed synthetic batches. */
#define CONF_MODEL_B 4
#define CONF_NUM_BATCHES 4
#define CONF_MAX_BUFS 16
#define CONF_MAX_PRESETS 16

typedef struct conf {
    rg_ops *be;                /* the backend under test, optional ops resolved */
    const rg_conf_options *opt;
    const rg_conf_report *rep;
    rg_rng rng;
    int failures;
    int oom;                   /* an allocation failed: the run stops with an error */
    void *bufs[CONF_MAX_BUFS]; /* buffers of the current check, freed by release() */
    int nbufs;
} conf;

/* One shape of the op checks: label ("small" or "odd"), batch, sequence, channels, heads. */
typedef struct conf_shape {
    const char *label;
    int B, T, C, NH, V;
} conf_shape;

/* ---- helpers ---- */

static void *take(conf *c, size_t bytes) {
    void *p = c->nbufs < CONF_MAX_BUFS ? malloc(bytes ? bytes : 1) : NULL;
    if (!p) {
        c->oom = 1;
        return NULL;
    }
    c->bufs[c->nbufs++] = p;
    return p;
}

static float *takef(conf *c, size_t n) { return take(c, n * sizeof(float)); }

static void release(conf *c) {
    for (int i = 0; i < c->nbufs; i++) free(c->bufs[i]);
    c->nbufs = 0;
}

/* x is (n): uniform in [lo, hi). */
static void fill(conf *c, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rg_rng_uniform(&c->rng);
}

/* Outputs the contract overwrites (forward outputs and activation gradients) start as different
 * garbage on the two sides, so an element the backend never writes (a masked attention entry, say)
 * or adds into instead of overwriting shows as an error. */
static void fill_outputs(conf *c, float *x, float *x_ref, size_t n) {
    fill(c, x, n, -9.0f, 9.0f);
    fill(c, x_ref, n, -9.0f, 9.0f);
}

/* Gradients the contract accumulates into (of parameters, and rmsnorm's dinp) start as the same
 * random values on both sides, so a backward that overwrites instead of adding shows as an
 * error. */
static void fill_accumulated(conf *c, float *x, float *x_ref, size_t n) {
    fill(c, x, n, -1.0f, 1.0f);
    memcpy(x_ref, x, n * sizeof(float));
}

/* tokens is (n): uniform in [0, V); with n > V tokens repeat, which exercises colliding rows. */
static void fill_tokens(conf *c, int32_t *tokens, size_t n, int V) {
    for (size_t i = 0; i < n; i++) tokens[i] = (int32_t)rg_rng_below(&c->rng, (uint64_t)V);
}

/* x, ref are (rows, ld); compares columns [0, cols) of each row:
 * max|x - ref| / max(1e-6, max|ref|), INFINITY when x holds a NaN or an infinity. */
static double norm_err_strided(const float *x, const float *ref, size_t rows, size_t cols,
                               size_t ld) {
    double maxd = 0.0, maxr = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++) {
            double a = x[r * ld + j], b = ref[r * ld + j];
            if (!isfinite(a)) return INFINITY;
            maxd = fmax(maxd, fabs(a - b));
            maxr = fmax(maxr, fabs(b));
        }
    }
    return maxd / fmax(1e-6, maxr);
}

static double norm_err(const float *x, const float *ref, size_t n) {
    return norm_err_strided(x, ref, 1, n, n);
}

static double rel_err(double x, double ref) {
    if (!isfinite(x)) return INFINITY;
    return fabs(x - ref) / fmax(1e-6, fabs(ref));
}

static void emit(conf *c, const char *part, const char *name, const char *output,
                 const char *shape, int native, double error, double tolerance) {
    rg_conf_result r;
    memset(&r, 0, sizeof r);
    r.part = part;
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.output, sizeof r.output, "%s", output);
    snprintf(r.shape, sizeof r.shape, "%s", shape);
    r.native = native;
    r.error = error;
    r.tolerance = tolerance;
    r.pass = error <= tolerance; /* false for NaN and INFINITY */
    if (!r.pass) c->failures++;
    if (c->rep && c->rep->result) c->rep->result(c->rep->user, &r);
}

static void note(conf *c, const char *line) {
    if (c->rep && c->rep->note) c->rep->note(c->rep->user, line);
}

static int is_native(const conf *c, rg_op_kind op) { return (int)((c->be->native_mask >> op) & 1u); }

static void emit_op(conf *c, rg_op_kind op, const char *output, const char *shape, double error,
                    double tolerance) {
    emit(c, "op", rg_op_name(op), output, shape, is_native(c, op), error, tolerance);
}

/* ---- op checks: one function per op pair, backend against rg_ref_* on identical inputs ----
 * Overwritten outputs are pre-filled by fill_outputs, accumulated gradients by fill_accumulated
 * (see there). */

/* out is (N,OC), inp is (N,C), weight is (OC,C). */
static void check_matmul(conf *c, const char *label, int N, int C, int OC) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s N=%d C=%d OC=%d", label, N, C, OC);
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    float *inp = takef(c, nin), *w = takef(c, nw), *out = takef(c, nout), *out_ref = takef(c, nout);
    float *dout = takef(c, nout), *dinp = takef(c, nin), *dinp_ref = takef(c, nin);
    float *dw = takef(c, nw), *dw_ref = takef(c, nw);
    if (c->oom) goto done;

    fill(c, inp, nin, -1.0f, 1.0f);
    fill(c, w, nw, -1.0f, 1.0f);
    fill_outputs(c, out, out_ref, nout);
    c->be->k.matmul_forward(c->be->ctx, out, inp, w, N, C, OC);
    rg_ref_matmul_forward(NULL, out_ref, inp, w, N, C, OC);
    emit_op(c, RG_OP_MATMUL_FORWARD, "out", shape, norm_err(out, out_ref, nout), tol_sum(C));

    fill(c, dout, nout, -1.0f, 1.0f);
    fill_outputs(c, dinp, dinp_ref, nin);
    fill_accumulated(c, dw, dw_ref, nw);
    c->be->k.matmul_backward(c->be->ctx, dinp, dw, dout, inp, w, N, C, OC);
    rg_ref_matmul_backward(NULL, dinp_ref, dw_ref, dout, inp, w, N, C, OC);
    emit_op(c, RG_OP_MATMUL_BACKWARD, "dinp", shape, norm_err(dinp, dinp_ref, nin), tol_sum(OC));
    emit_op(c, RG_OP_MATMUL_BACKWARD, "dweight", shape, norm_err(dw, dw_ref, nw), tol_sum(N));
done:
    release(c);
}

/* out is (B,T,C), att is (B,NH,T,T), qkv and dqkv are (B,T,3C). */
static void check_attention(conf *c, const conf_shape *s) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s B=%d T=%d C=%d NH=%d", s->label, s->B, s->T, s->C, s->NH);
    int B = s->B, T = s->T, C = s->C, NH = s->NH;
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = takef(c, nqkv), *out = takef(c, nout), *out_ref = takef(c, nout);
    float *att = takef(c, natt), *att_ref = takef(c, natt), *dout = takef(c, nout);
    float *dqkv = takef(c, nqkv), *dqkv_ref = takef(c, nqkv);
    if (c->oom) goto done;

    /* [-2, 2] makes q.k/sqrt(hs) spread over about +-1.5, so the softmax rows are not flat. */
    fill(c, qkv, nqkv, -2.0f, 2.0f);
    fill_outputs(c, out, out_ref, nout);
    fill_outputs(c, att, att_ref, natt); /* the masked t2 > t entries must be written as 0 */
    c->be->k.attention_forward(c->be->ctx, out, att, qkv, B, T, C, NH);
    rg_ref_attention_forward(NULL, out_ref, att_ref, qkv, B, T, C, NH);
    emit_op(c, RG_OP_ATTENTION_FORWARD, "out", shape, norm_err(out, out_ref, nout), TOL_SOFTMAX);
    emit_op(c, RG_OP_ATTENTION_FORWARD, "att", shape, norm_err(att, att_ref, natt), TOL_SOFTMAX);

    /* Both sides get the reference's att, so the backward is judged on its own. */
    fill(c, dout, nout, -1.0f, 1.0f);
    fill_outputs(c, dqkv, dqkv_ref, nqkv);
    c->be->k.attention_backward(c->be->ctx, dqkv, dout, qkv, att_ref, B, T, C, NH);
    rg_ref_attention_backward(NULL, dqkv_ref, dout, qkv, att_ref, B, T, C, NH);
    /* dq and dk are much smaller than dv; judged apart so that dv does not hide them. */
    static const char *const parts[3] = {"dq", "dk", "dv"};
    for (int p = 0; p < 3; p++) {
        double e = norm_err_strided(dqkv + (size_t)p * C, dqkv_ref + (size_t)p * C,
                                    (size_t)B * T, (size_t)C, (size_t)3 * C);
        emit_op(c, RG_OP_ATTENTION_BACKWARD, parts[p], shape, e, TOL_SOFTMAX);
    }
done:
    release(c);
}

/* params, m, v, grads are (n). */
static void check_adamw(conf *c, const char *label, size_t n) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s n=%zu", label, n);
    float *p = takef(c, n), *m = takef(c, n), *v = takef(c, n), *g = takef(c, n);
    float *p_ref = takef(c, n), *m_ref = takef(c, n), *v_ref = takef(c, n);
    if (c->oom) goto done;

    fill(c, p, n, -1.0f, 1.0f);
    fill(c, m, n, -0.1f, 0.1f);
    fill(c, v, n, 0.0f, 0.01f);
    fill(c, g, n, -1.0f, 1.0f);
    memcpy(p_ref, p, n * sizeof(float));
    memcpy(m_ref, m, n * sizeof(float));
    memcpy(v_ref, v, n * sizeof(float));
    /* A large lr and t > 1 make the update and both bias corrections visible in params. */
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    const int t = 7;
    c->be->k.adamw_step(c->be->ctx, p, m, v, g, n, lr, b1, b2, eps, wd, scale, t);
    rg_ref_adamw_step(NULL, p_ref, m_ref, v_ref, g, n, lr, b1, b2, eps, wd, scale, t);
    emit_op(c, RG_OP_ADAMW, "params", shape, norm_err(p, p_ref, n), TOL_ADAMW);
    emit_op(c, RG_OP_ADAMW, "m", shape, norm_err(m, m_ref, n), TOL_ADAMW);
    emit_op(c, RG_OP_ADAMW, "v", shape, norm_err(v, v_ref, n), TOL_ADAMW);
done:
    release(c);
}

/* out, inp, dinp, dout are (N,C), rstd is (N). */
static void check_rmsnorm(conf *c, const char *label, int N, int C) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s N=%d C=%d", label, N, C);
    size_t n = (size_t)N * C;
    float *inp = takef(c, n), *out = takef(c, n), *out_ref = takef(c, n);
    float *rstd = takef(c, (size_t)N), *rstd_ref = takef(c, (size_t)N);
    float *dout = takef(c, n), *dinp = takef(c, n), *dinp_ref = takef(c, n);
    if (c->oom) goto done;

    fill(c, inp, n, -1.0f, 1.0f);
    fill_outputs(c, out, out_ref, n);
    fill_outputs(c, rstd, rstd_ref, (size_t)N);
    c->be->k.rmsnorm_forward(c->be->ctx, out, rstd, inp, N, C);
    rg_ref_rmsnorm_forward(NULL, out_ref, rstd_ref, inp, N, C);
    emit_op(c, RG_OP_RMSNORM_FORWARD, "out", shape, norm_err(out, out_ref, n), TOL_RMSNORM);
    emit_op(c, RG_OP_RMSNORM_FORWARD, "rstd", shape, norm_err(rstd, rstd_ref, (size_t)N),
            TOL_RMSNORM);

    fill(c, dout, n, -1.0f, 1.0f);
    fill_accumulated(c, dinp, dinp_ref, n);
    c->be->k.rmsnorm_backward(c->be->ctx, dinp, dout, inp, rstd_ref, N, C);
    rg_ref_rmsnorm_backward(NULL, dinp_ref, dout, inp, rstd_ref, N, C);
    emit_op(c, RG_OP_RMSNORM_BACKWARD, "dinp", shape, norm_err(dinp, dinp_ref, n), TOL_RMSNORM);
done:
    release(c);
}

/* out, inp, dinp, dout are (n). */
static void check_sqrelu(conf *c, const char *label, size_t n) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s n=%zu", label, n);
    float *inp = takef(c, n), *out = takef(c, n), *out_ref = takef(c, n);
    float *dout = takef(c, n), *dinp = takef(c, n), *dinp_ref = takef(c, n);
    if (c->oom) goto done;

    fill(c, inp, n, -1.0f, 1.0f);
    fill_outputs(c, out, out_ref, n);
    c->be->k.sqrelu_forward(c->be->ctx, out, inp, n);
    rg_ref_sqrelu_forward(NULL, out_ref, inp, n);
    emit_op(c, RG_OP_SQRELU_FORWARD, "out", shape, norm_err(out, out_ref, n), TOL_ELEMENTWISE);

    fill(c, dout, n, -1.0f, 1.0f);
    fill_outputs(c, dinp, dinp_ref, n);
    c->be->k.sqrelu_backward(c->be->ctx, dinp, dout, inp, n);
    rg_ref_sqrelu_backward(NULL, dinp_ref, dout, inp, n);
    emit_op(c, RG_OP_SQRELU_BACKWARD, "dinp", shape, norm_err(dinp, dinp_ref, n), TOL_ELEMENTWISE);
done:
    release(c);
}

/* out, inp1, inp2 are (n). */
static void check_residual(conf *c, const char *label, size_t n) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s n=%zu", label, n);
    float *a = takef(c, n), *b = takef(c, n), *out = takef(c, n), *out_ref = takef(c, n);
    if (c->oom) goto done;

    fill(c, a, n, -1.0f, 1.0f);
    fill(c, b, n, -1.0f, 1.0f);
    fill_outputs(c, out, out_ref, n);
    c->be->k.residual_forward(c->be->ctx, out, a, b, n);
    rg_ref_residual_forward(NULL, out_ref, a, b, n);
    emit_op(c, RG_OP_RESIDUAL_FORWARD, "out", shape, norm_err(out, out_ref, n), TOL_ELEMENTWISE);
    /* The contract allows out == inp1 (the model adds in place). */
    memcpy(out, a, n * sizeof(float));
    c->be->k.residual_forward(c->be->ctx, out, out, b, n);
    emit_op(c, RG_OP_RESIDUAL_FORWARD, "out=inp1", shape, norm_err(out, out_ref, n),
            TOL_ELEMENTWISE);
done:
    release(c);
}

/* out is (B,T,C), tokens is (B,T), wte is (V,C), wpe is (T,C). */
static void check_embedding(conf *c, const conf_shape *s) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s B=%d T=%d C=%d V=%d", s->label, s->B, s->T, s->C, s->V);
    int B = s->B, T = s->T, C = s->C, V = s->V;
    size_t nout = (size_t)B * T * C, nte = (size_t)V * C, npe = (size_t)T * C;
    int32_t *tokens = take(c, (size_t)B * T * sizeof(int32_t));
    float *wte = takef(c, nte), *wpe = takef(c, npe), *out = takef(c, nout);
    float *out_ref = takef(c, nout), *dout = takef(c, nout);
    float *dwte = takef(c, nte), *dwpe = takef(c, npe), *dwte_ref = takef(c, nte);
    float *dwpe_ref = takef(c, npe);
    if (c->oom) goto done;

    fill_tokens(c, tokens, (size_t)B * T, V);
    fill(c, wte, nte, -1.0f, 1.0f);
    fill(c, wpe, npe, -1.0f, 1.0f);
    fill_outputs(c, out, out_ref, nout);
    c->be->k.embedding_forward(c->be->ctx, out, tokens, wte, wpe, B, T, C);
    rg_ref_embedding_forward(NULL, out_ref, tokens, wte, wpe, B, T, C);
    emit_op(c, RG_OP_EMBEDDING_FORWARD, "out", shape, norm_err(out, out_ref, nout),
            TOL_ELEMENTWISE);

    fill(c, dout, nout, -1.0f, 1.0f);
    fill_accumulated(c, dwte, dwte_ref, nte);
    fill_accumulated(c, dwpe, dwpe_ref, npe);
    c->be->k.embedding_backward(c->be->ctx, dwte, dwpe, dout, tokens, B, T, C);
    rg_ref_embedding_backward(NULL, dwte_ref, dwpe_ref, dout, tokens, B, T, C);
    /* dwte rows sum about B*T/V rows of dout, dwpe rows sum B: sums in any order. */
    emit_op(c, RG_OP_EMBEDDING_BACKWARD, "dwte", shape, norm_err(dwte, dwte_ref, nte),
            tol_sum(B * T / V + 1));
    emit_op(c, RG_OP_EMBEDDING_BACKWARD, "dwpe", shape, norm_err(dwpe, dwpe_ref, npe), tol_sum(B));
done:
    release(c);
}

/* losses is (N), probs, logits, dlogits are (N,V), targets is (N). */
static void check_crossentropy(conf *c, const char *label, int N, int V) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s N=%d V=%d", label, N, V);
    size_t n = (size_t)N * V;
    int32_t *targets = take(c, (size_t)N * sizeof(int32_t));
    float *logits = takef(c, n), *probs = takef(c, n), *probs_ref = takef(c, n);
    float *losses = takef(c, (size_t)N), *losses_ref = takef(c, (size_t)N);
    float *dlogits = takef(c, n), *dlogits_ref = takef(c, n);
    if (c->oom) goto done;

    fill_tokens(c, targets, (size_t)N, V);
    fill(c, logits, n, -4.0f, 4.0f);
    fill_outputs(c, probs, probs_ref, n);
    fill_outputs(c, losses, losses_ref, (size_t)N);
    c->be->k.crossentropy_forward(c->be->ctx, losses, probs, logits, targets, N, V);
    rg_ref_crossentropy_forward(NULL, losses_ref, probs_ref, logits, targets, N, V);
    emit_op(c, RG_OP_CROSSENTROPY_FORWARD, "losses", shape,
            norm_err(losses, losses_ref, (size_t)N), TOL_SOFTMAX);
    emit_op(c, RG_OP_CROSSENTROPY_FORWARD, "probs", shape, norm_err(probs, probs_ref, n),
            TOL_SOFTMAX);

    const float dloss = 1.0f / (float)N;
    fill_outputs(c, dlogits, dlogits_ref, n);
    c->be->k.crossentropy_backward(c->be->ctx, dlogits, probs_ref, targets, N, V, dloss);
    rg_ref_crossentropy_backward(NULL, dlogits_ref, probs_ref, targets, N, V, dloss);
    emit_op(c, RG_OP_CROSSENTROPY_BACKWARD, "dlogits", shape, norm_err(dlogits, dlogits_ref, n),
            TOL_ELEMENTWISE);
done:
    release(c);
}

/* x is (n). */
static void check_sum_squares(conf *c, const char *label, size_t n) {
    char shape[80];
    snprintf(shape, sizeof shape, "%s n=%zu", label, n);
    float *x = takef(c, n);
    if (c->oom) goto done;
    fill(c, x, n, -1.0f, 1.0f);
    double got = c->be->k.sum_squares(c->be->ctx, x, n);
    double ref = rg_ref_sum_squares(NULL, x, n);
    /* The contract accumulates in double; 1e-6 still allows float partial sums of short chunks. */
    emit_op(c, RG_OP_SUM_SQUARES, "sum", shape, rel_err(got, ref), 1e-6);
done:
    release(c);
}

/* Every op at one shape: the model's matmuls (qkv, attention projection, fc, fc projection, LM
 * head) and the other ops at the sizes the model gives them. */
static void check_ops_at(conf *c, const conf_shape *s) {
    int N = s->B * s->T, C = s->C;
    const int mm[5][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, s->V}};
    for (int i = 0; i < 5 && !c->oom; i++) check_matmul(c, s->label, N, mm[i][0], mm[i][1]);
    if (!c->oom) check_attention(c, s);
    /* n + 5 puts a tail behind any vector width. */
    if (!c->oom) check_adamw(c, s->label, (size_t)N * C + 5);
    if (!c->oom) check_rmsnorm(c, s->label, N, C);
    if (!c->oom) check_sqrelu(c, s->label, (size_t)N * 4 * C);
    if (!c->oom) check_residual(c, s->label, (size_t)N * C);
    if (!c->oom) check_embedding(c, s);
    if (!c->oom) check_crossentropy(c, s->label, N, s->V);
    if (!c->oom) check_sum_squares(c, s->label, (size_t)N * 4 * C + 5);
}

/* ---- model checks ---- */

typedef struct conf_model_setup {
    rg_model_config cfg;
    int B, T;
    int32_t *batches;  /* (CONF_NUM_BATCHES, B, T+1): inputs are the first T, targets shifted */
} conf_model_setup;

/* Fixed synthetic batches: windows of a text made of one random phrase repeated with 10% noise,
 * so that the model has something to learn and its loss falls over the run. */
static void make_batches(conf *c, conf_model_setup *ms) {
    enum { PHRASE = 23 };
    int32_t phrase[PHRASE];
    fill_tokens(c, phrase, PHRASE, ms->cfg.V);
    size_t rows = (size_t)CONF_NUM_BATCHES * ms->B, len = (size_t)ms->T + 1;
    for (size_t r = 0; r < rows; r++) {
        size_t start = (size_t)rg_rng_below(&c->rng, PHRASE);
        for (size_t t = 0; t < len; t++) {
            int32_t tok = phrase[(start + t) % PHRASE];
            if (rg_rng_uniform(&c->rng) < 0.1f) tok = (int32_t)rg_rng_below(&c->rng, ms->cfg.V);
            ms->batches[r * len + t] = tok;
        }
    }
}

/* Copies batch k of ms into inputs and targets, each (B,T). */
static void get_batch(const conf_model_setup *ms, int k, int32_t *inputs, int32_t *targets) {
    size_t len = (size_t)ms->T + 1;
    const int32_t *rows = ms->batches + (size_t)k * ms->B * len;
    for (int b = 0; b < ms->B; b++) {
        memcpy(inputs + (size_t)b * ms->T, rows + b * len, (size_t)ms->T * sizeof(int32_t));
        memcpy(targets + (size_t)b * ms->T, rows + b * len + 1, (size_t)ms->T * sizeof(int32_t));
    }
}

static int model_open(rg_model *m, const conf_model_setup *ms, uint64_t seed, char *err,
                      size_t err_len) {
    memset(m, 0, sizeof *m);
    if (rg_model_init(m, &ms->cfg, seed, err, err_len) != 0) return -1;
    if (rg_model_set_batch(m, ms->B, ms->T, err, err_len) != 0) {
        rg_model_free(m);
        return -1;
    }
    return 0;
}

/* One forward and backward on batch 0 with the backend and with the reference: the loss and
 * every parameter gradient; then the gradient norm that rg_model_update measures. */
static int check_step(conf *c, rg_ops *ref, const conf_model_setup *ms, int32_t *inputs,
                      int32_t *targets, char *err, size_t err_len) {
    rg_model mb, mr;
    if (model_open(&mb, ms, c->opt->seed, err, err_len) != 0) return -1;
    if (model_open(&mr, ms, c->opt->seed, err, err_len) != 0) {
        rg_model_free(&mb);
        return -1;
    }
    char shape[80];
    snprintf(shape, sizeof shape, "tiny B=%d T=%d V=%d", ms->B, ms->T, ms->cfg.V);
    get_batch(ms, 0, inputs, targets);
    rg_model *pair[2] = {&mb, &mr};
    rg_ops *ops[2] = {c->be, ref};
    for (int i = 0; i < 2; i++) {
        rg_model_forward(pair[i], ops[i], inputs, targets, ms->B, ms->T);
        rg_model_zero_grad(pair[i]);
        rg_model_backward(pair[i], ops[i]);
    }
    emit(c, "step", "model", "loss", shape, -1, rel_err(mb.mean_loss, mr.mean_loss),
         TOL_MODEL_LOSS);
    static const char *const names[RG_NUM_PARAM_TENSORS] = {
        "grad wte", "grad wpe", "grad wqkv", "grad wo", "grad w1", "grad w2", "grad wlm"};
    const float *gb[RG_NUM_PARAM_TENSORS] = {mb.grads.wte, mb.grads.wpe, mb.grads.wqkv,
                                             mb.grads.wo,  mb.grads.w1,  mb.grads.w2,
                                             mb.grads.wlm};
    const float *gr[RG_NUM_PARAM_TENSORS] = {mr.grads.wte, mr.grads.wpe, mr.grads.wqkv,
                                             mr.grads.wo,  mr.grads.w1,  mr.grads.w2,
                                             mr.grads.wlm};
    for (int i = 0; i < RG_NUM_PARAM_TENSORS; i++)
        emit(c, "step", "model", names[i], shape, -1, norm_err(gb[i], gr[i], mb.param_sizes[i]),
             TOL_MODEL_GRAD);
    rg_optim_config oc = rg_optim_default();
    float nb = rg_model_update(&mb, c->be, &oc, oc.lr);
    float nr = rg_model_update(&mr, ref, &oc, oc.lr);
    emit(c, "step", "model", "grad norm", shape, -1, rel_err(nb, nr), TOL_MODEL_GRAD);
    rg_model_free(&mb);
    rg_model_free(&mr);
    return 0;
}

/* RG_CONF_TRAIN_STEPS steps from the same initial weights over the fixed batches; losses is
 * (RG_CONF_TRAIN_STEPS). */
static int train_run(conf *c, rg_ops *ops, const conf_model_setup *ms, int32_t *inputs,
                     int32_t *targets, float *losses, char *err, size_t err_len) {
    rg_model m;
    if (model_open(&m, ms, c->opt->seed, err, err_len) != 0) return -1;
    rg_optim_config oc = rg_optim_default();
    oc.lr = 1e-3f; /* a bigger step than the default, so the run moves and differences would grow */
    oc.warmup_iters = 5;
    for (int s = 0; s < RG_CONF_TRAIN_STEPS; s++) {
        get_batch(ms, s % CONF_NUM_BATCHES, inputs, targets);
        rg_model_forward(&m, ops, inputs, targets, ms->B, ms->T);
        rg_model_zero_grad(&m);
        rg_model_backward(&m, ops);
        rg_model_update(&m, ops, &oc, rg_lr_at(&oc, s, RG_CONF_TRAIN_STEPS));
        losses[s] = m.mean_loss;
    }
    rg_model_free(&m);
    return 0;
}

static int check_train(conf *c, rg_ops *ref, const conf_model_setup *ms, int32_t *inputs,
                       int32_t *targets, char *err, size_t err_len) {
    float lb[RG_CONF_TRAIN_STEPS], lb2[RG_CONF_TRAIN_STEPS], lr[RG_CONF_TRAIN_STEPS];
    if (train_run(c, c->be, ms, inputs, targets, lb, err, err_len) != 0 ||
        train_run(c, c->be, ms, inputs, targets, lb2, err, err_len) != 0 ||
        train_run(c, ref, ms, inputs, targets, lr, err, err_len) != 0)
        return -1;
    double track = 0.0, repeat = 0.0;
    for (int s = 0; s < RG_CONF_TRAIN_STEPS; s++) {
        track = fmax(track, rel_err(lb[s], lr[s]));
        repeat = fmax(repeat, isfinite(lb2[s]) ? fabs((double)lb[s] - lb2[s]) : INFINITY);
    }
    char shape[80], line[160];
    snprintf(shape, sizeof shape, "tiny B=%d T=%d %d steps", ms->B, ms->T, RG_CONF_TRAIN_STEPS);
    snprintf(line, sizeof line, "train: loss %.4f -> %.4f with the backend, %.4f -> %.4f reference",
             lb[0], lb[RG_CONF_TRAIN_STEPS - 1], lr[0], lr[RG_CONF_TRAIN_STEPS - 1]);
    note(c, line);
    emit(c, "train", "model", "losses", shape, -1, track, TOL_TRAIN_LOSS);
    /* The same instance, inputs and weights must give bit-identical losses. */
    emit(c, "train", "model", "rerun losses", shape, -1, repeat, 0.0);
    return 0;
}

static int check_model(conf *c, char *err, size_t err_len) {
    const rg_preset *tiny = rg_preset_find("tiny");
    if (!tiny) {
        snprintf(err, err_len, "conformance: the tiny preset is missing");
        return -1;
    }
    rg_backend_config one = {1, 0, NULL};
    rg_ops ref;
    if (rg_ops_create(&ref, &rg_reference_backend, &one, err, err_len) != 0) return -1;
    conf_model_setup ms = {{CONF_V, tiny->T, tiny->C, tiny->NH, tiny->L}, CONF_MODEL_B, tiny->T,
                           NULL};
    size_t ntok = (size_t)ms.B * ms.T;
    ms.batches = take(c, (size_t)CONF_NUM_BATCHES * ms.B * (ms.T + 1) * sizeof(int32_t));
    int32_t *inputs = take(c, ntok * sizeof(int32_t)), *targets = take(c, ntok * sizeof(int32_t));
    int rc = -1;
    if (c->oom) {
        snprintf(err, err_len, "conformance: out of memory");
        goto done;
    }
    /* Its own stream, so the batches do not depend on which op checks ran before. */
    rg_rng_seed(&c->rng, c->opt->seed + 1);
    make_batches(c, &ms);
    if (check_step(c, &ref, &ms, inputs, targets, err, err_len) != 0) goto done;
    if (check_train(c, &ref, &ms, inputs, targets, err, err_len) != 0) goto done;
    rc = 0;
done:
    release(c);
    rg_ops_destroy(&ref);
    return rc;
}

/* ---- the run ---- */

/* Splits the comma-separated list into presets (at most count); NULL means every preset. Returns
 * the number found, or -1 with err naming an unknown one. */
static int parse_presets(const char *list, const rg_preset **out, int count, char *err,
                         size_t err_len) {
    int n = 0;
    if (!list) {
        for (int i = 0; rg_presets[i].name && n < count; i++) out[n++] = &rg_presets[i];
        return n;
    }
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
        const rg_preset *ps = rg_preset_find(name);
        if (!ps) {
            char known[160] = "";
            for (int i = 0; rg_presets[i].name; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         i ? ", " : "", rg_presets[i].name);
            snprintf(err, err_len, "unknown preset '%s' (known: %s)", name, known);
            return -1;
        }
        if (n == count) {
            snprintf(err, err_len, "too many presets in '%s'", list);
            return -1;
        }
        out[n++] = ps;
        p += len;
        if (*p == ',') p++;
    }
    if (n == 0) {
        snprintf(err, err_len, "no preset named in '%s'", list);
        return -1;
    }
    return n;
}

int rg_conf_check_presets(const char *presets, char *err, size_t err_len) {
    const rg_preset *found[CONF_MAX_PRESETS];
    return parse_presets(presets, found, CONF_MAX_PRESETS, err, err_len) < 0 ? -1 : 0;
}

rg_conf_options rg_conf_default_options(void) {
    rg_conf_options o;
    memset(&o, 0, sizeof o);
    o.backend.num_threads = 1;
    o.presets = NULL;
    o.odd_shapes = 1;
    o.ops = 1;
    o.model = 1;
    o.seed = 20240607u;
    return o;
}

int rg_conformance_run(const rg_backend *table, const rg_conf_options *opt,
                       const rg_conf_report *report, char *err, size_t err_len) {
    if (!table || !opt) {
        snprintf(err, err_len, "conformance: no backend table or no options given");
        return -1;
    }
    const rg_preset *presets[CONF_MAX_PRESETS];
    int npresets = 0;
    if (opt->ops) {
        npresets = parse_presets(opt->presets, presets, CONF_MAX_PRESETS, err, err_len);
        if (npresets < 0) return -1;
    }
    rg_ops be;
    if (rg_ops_create(&be, table, &opt->backend, err, err_len) != 0) return -1;

    conf c;
    memset(&c, 0, sizeof c);
    c.be = &be;
    c.opt = opt;
    c.rep = report;
    rg_rng_seed(&c.rng, opt->seed);

    for (int i = 0; i < npresets && !c.oom; i++) {
        const rg_preset *ps = presets[i];
        conf_shape s = {ps->name, ps->B, ps->T, ps->C, ps->NH, CONF_V};
        int cap = (int)(CONF_MAX_TCC / ((double)ps->T * ps->C * ps->C));
        if (cap < 1) cap = 1;
        if (s.B > cap) {
            char line[160];
            snprintf(line, sizeof line,
                     "preset %s: op checks at B=%d instead of %d, to keep their time near the "
                     "small preset's",
                     ps->name, cap, ps->B);
            note(&c, line);
            s.B = cap;
        }
        check_ops_at(&c, &s);
    }
    if (opt->ops && opt->odd_shapes) {
        /* Rows and channels that are no multiple of any vector width, T=1, hs=8 with NH=5. */
        static const conf_shape odd[] = {
            {"odd", 37, 1, 40, 5, CONF_V}, {"odd", 3, 7, 40, 5, CONF_V}, {"odd", 1, 37, 40, 5, CONF_V}};
        for (size_t i = 0; i < sizeof odd / sizeof odd[0] && !c.oom; i++) check_ops_at(&c, &odd[i]);
    }
    int rc = 0;
    if (c.oom) {
        snprintf(err, err_len, "conformance: out of memory");
        rc = -1;
    } else if (opt->model) {
        rc = check_model(&c, err, err_len);
    }
    rg_ops_destroy(&be);
    return rc < 0 ? -1 : c.failures;
}

/* ---- printing ---- */

void rg_conf_print_header(FILE *f) {
    fprintf(f, "%-5s %-21s %-12s %-34s %-6s %10s %10s  %s\n", "part", "op", "output", "shape",
            "native", "error", "tolerance", "result");
}

void rg_conf_print_result(FILE *f, const rg_conf_result *r) {
    const char *native = r->native < 0 ? "-" : r->native ? "yes" : "no";
    fprintf(f, "%-5s %-21s %-12s %-34s %-6s %10.3g %10.3g  %s\n", r->part, r->name, r->output,
            r->shape, native, r->error, r->tolerance, r->pass ? "PASS" : "FAIL");
}
