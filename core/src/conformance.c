/*
 * Conformance suite (see conformance.h): a backend against the reference kernels and model.
 */
#include "randygpt/conformance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "randygpt/model.h"
#include "randygpt/op_case.h"
#include "randygpt/ops.h"
#include "randygpt/rng.h"

/* ---- tolerances ----
 * The op checks' bounds come with their cases (op_case.c), derived from the shape. The model
 * checks' are fixed: */
/* Whole-model gradients: the rounding differences of every op compound through the layers and
 * the loss; 1e-4 leaves room for that while a real bug (a lost term, a wrong row) shows at 1e-2. */
#define TOL_MODEL_GRAD 1e-4
/* The parameters after one AdamW update, as the update's error (see update_err). */
#define TOL_MODEL_UPDATE 1e-3
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

/* x, ref, init, g are (n): the update x - init against ref - init, normalised by the largest
 * reference update (INFINITY when x holds a NaN or an infinity). AdamW's first update is about
 * lr * sign(g): where the reference gradient g is within the gradient check's own tolerance of 0
 * its sign is not determined, so those elements are not judged. */
static double update_err(const float *x, const float *ref, const float *init, const float *g,
                         size_t n, double grad_tol) {
    double gmax = 0.0, maxd = 0.0, maxr = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return INFINITY;
        maxr = fmax(maxr, fabs((double)ref[i] - init[i]));
        if (fabs(g[i]) > grad_tol * gmax) maxd = fmax(maxd, fabs((double)x[i] - ref[i]));
    }
    return maxd / fmax(1e-12, maxr);
}

static double rel_err(double x, double ref) {
    if (!isfinite(x)) return INFINITY;
    return fabs(x - ref) / fmax(1e-6, fabs(ref));
}

static void emit(conf *c, const char *part, const char *name, const char *output,
                 const char *shape, int native, double error, double tolerance, const char *bound) {
    rg_conf_result r;
    memset(&r, 0, sizeof r);
    r.part = part;
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.output, sizeof r.output, "%s", output);
    snprintf(r.shape, sizeof r.shape, "%s", shape);
    snprintf(r.bound, sizeof r.bound, "%s", bound ? bound : "");
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
                    double tolerance, const char *bound) {
    emit(c, "op", rg_op_name(op), output, shape, is_native(c, op), error, tolerance, bound);
}

/* ---- op checks: each op case (op_case.h) on the backend and on the reference ---- */

/* The two sides' buffers of one case, in the case's argument order. */
typedef struct case_bufs {
    void *be[RG_CASE_MAX_BUFS], *ref[RG_CASE_MAX_BUFS];
} case_bufs;

/* Allocates both sides, draws the inputs on the backend's side and copies them to the
 * reference's. Outputs the contract overwrites start as different garbage on the two sides, so an
 * element the backend never writes (a masked attention entry, say) or adds into shows as an error;
 * gradients it accumulates start equal, so one overwritten instead of added into shows. Returns 0,
 * or -1 when out of memory. */
static int case_prepare(conf *c, const rg_op_case *oc, case_bufs *cb, const rg_case_fill *fill) {
    for (int i = 0; i < oc->nbufs; i++) {
        cb->be[i] = take(c, rg_case_buf_bytes(&oc->buf[i]));
        cb->ref[i] = take(c, rg_case_buf_bytes(&oc->buf[i]));
    }
    if (c->oom || rg_op_case_fill(oc, cb->be, &c->rng, fill) != 0) {
        c->oom = 1;
        return -1;
    }
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        if (b->role == RG_BUF_OUT && !(oc->in_place && i == 0))
            fill_outputs(c, cb->be[i], cb->ref[i], b->count);
        else
            memcpy(cb->ref[i], cb->be[i], rg_case_buf_bytes(b));
    }
    return 0;
}

/* Every output of the case, the backend's against the reference's, and every input left as it
 * was given. */
static void case_compare(conf *c, const rg_op_case *oc, const case_bufs *cb, const char *shape,
                         double got, double want) {
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        if (b->role == RG_BUF_IN) {
            /* the reference leaves its inputs alone: a difference is the backend writing one */
            if (memcmp(cb->be[i], cb->ref[i], rg_case_buf_bytes(b)) != 0) {
                char what[24];
                snprintf(what, sizeof what, "%s written", b->name);
                emit_op(c, oc->op, what, shape, 1.0, 0.0, "input unchanged");
            }
            continue;
        }
        static const char *const qkv_parts[3] = {"dq", "dk", "dv"};
        size_t row = b->parts * b->part_cols;
        for (int p = 0; p < b->parts; p++) {
            double e = b->parts == 1
                           ? norm_err(cb->be[i], cb->ref[i], b->count)
                           : norm_err_strided((const float *)cb->be[i] + p * b->part_cols,
                                              (const float *)cb->ref[i] + p * b->part_cols,
                                              b->count / row, b->part_cols, row);
            emit_op(c, oc->op, b->parts == 3 ? qkv_parts[p] : b->name, shape, e, b->tol, b->bound);
        }
    }
    if (oc->returns) emit_op(c, oc->op, "result", shape, rel_err(got, want), oc->result_tol, oc->result_bound);
}

/* One case: the backend and the reference on identical inputs. */
static void check_case(conf *c, const rg_op_case *oc, const char *label, const rg_case_fill *fill) {
    char shape[96];
    snprintf(shape, sizeof shape, "%s%s%s %s", label, oc->label ? " " : "",
             oc->label ? oc->label : "", oc->shape);
    case_bufs cb;
    if (case_prepare(c, oc, &cb, fill) == 0) {
        double got = rg_op_case_call(oc, &c->be->k, c->be->ctx, cb.be);
        double want = rg_op_case_call(oc, &rg_reference_backend, NULL, cb.ref);
        case_compare(c, oc, &cb, shape, got, want);
    }
    release(c);
}

/* Every op at one model shape: the cases of a training step (the matmuls at each of their uses),
 * adamw and sum_squares over N*4C + 5 elements (a tail behind any vector width), and the
 * in-place residual the model runs (out == inp1, which the contract allows). */
static void check_ops_at(conf *c, const conf_shape *s) {
    rg_op_dims d = {.B = s->B, .T = s->T, .C = s->C, .NH = s->NH, .V = s->V};
    rg_op_case cases[RG_STEP_CASES];
    int n = rg_op_step_cases(&d, (size_t)s->B * s->T * 4 * s->C + 5, 1.0f, cases);
    for (int i = 0; i < n && !c->oom; i++) {
        check_case(c, &cases[i], s->label, NULL);
        if (cases[i].op == RG_OP_RESIDUAL_FORWARD && !c->oom) {
            rg_op_case in_place = cases[i];
            in_place.in_place = 1;
            in_place.label = "out=inp1";
            check_case(c, &in_place, s->label, NULL);
        }
    }
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
         TOL_MODEL_LOSS, "fixed");
    /* The tensors are slices of one allocation, in rg_params order (model.h). */
    static const char *const names[RG_NUM_PARAM_TENSORS] = {"wte", "wpe", "wqkv", "wo",
                                                            "w1",  "w2",  "wlm"};
    char what[24];
    for (size_t i = 0, off = 0; i < RG_NUM_PARAM_TENSORS; off += mb.param_sizes[i++]) {
        snprintf(what, sizeof what, "grad %s", names[i]);
        emit(c, "step", "model", what, shape, -1,
             norm_err(mb.grads_memory + off, mr.grads_memory + off, mb.param_sizes[i]),
             TOL_MODEL_GRAD, "fixed");
    }
    float *init = malloc(mb.num_params * sizeof(float));
    if (!init) {
        snprintf(err, err_len, "conformance: out of memory");
        rg_model_free(&mb);
        rg_model_free(&mr);
        return -1;
    }
    memcpy(init, mb.params_memory, mb.num_params * sizeof(float));
    rg_optim_config oc = rg_optim_default();
    float nb = rg_model_update(&mb, c->be, &oc, oc.lr);
    float nr = rg_model_update(&mr, ref, &oc, oc.lr);
    emit(c, "step", "model", "grad norm", shape, -1, rel_err(nb, nr), TOL_MODEL_GRAD, "fixed");
    /* The parameters after the AdamW update: (new - old) of the two sides, normalised by the
     * largest update, so that a wrong step is not hidden behind the unchanged weights. */
    for (size_t i = 0, off = 0; i < RG_NUM_PARAM_TENSORS; off += mb.param_sizes[i++]) {
        snprintf(what, sizeof what, "param %s", names[i]);
        emit(c, "step", "model", what, shape, -1,
             update_err(mb.params_memory + off, mr.params_memory + off, init + off,
                        mr.grads_memory + off, mb.param_sizes[i], TOL_MODEL_GRAD),
             TOL_MODEL_UPDATE, "fixed, |g| > 1e-4 max|g|");
    }
    free(init);
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
    emit(c, "train", "model", "losses", shape, -1, track, TOL_TRAIN_LOSS, "fixed");
    /* The same instance, inputs and weights must give bit-identical losses. */
    emit(c, "train", "model", "rerun losses", shape, -1, repeat, 0.0, "bit-identical");
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
    fprintf(f, "%-5s %-21s %-12s %-40s %-6s %10s %10s  %-6s %s\n", "part", "op", "output",
            "shape", "native", "error", "tolerance", "result", "bound");
}

void rg_conf_print_result(FILE *f, const rg_conf_result *r) {
    const char *native = r->native < 0 ? "-" : r->native ? "yes" : "no";
    fprintf(f, "%-5s %-21s %-12s %-40s %-6s %10.3g %10.3g  %-6s %s\n", r->part, r->name,
            r->output, r->shape, native, r->error, r->tolerance, r->pass ? "PASS" : "FAIL",
            r->bound);
}
