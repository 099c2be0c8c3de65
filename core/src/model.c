/*
 * The randyGPT model: forward, exact backward and AdamW update (see docs/model.md).
 * Every kernel runs through the resolved op table, so one model serves every backend; the layout
 * follows llm.c: one allocation each for parameters, gradients, moments and activations, sliced
 * into named tensors.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime in strict C11 */
#define _DEFAULT_SOURCE         /* madvise and MADV_HUGEPAGE */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "randygpt/model.h"
#include "randygpt/rng.h"
#include "randygpt/text.h"

const rg_preset rg_presets[] = {
    {"tiny", 64, 4, 2, 32, 16},
    {"small", 128, 8, 4, 64, 32},
    {"medium", 256, 8, 6, 128, 32},
    {"large", 512, 16, 12, 256, 16},
    {NULL, 0, 0, 0, 0, 0},
};

const rg_preset *rg_preset_find(const char *name) {
    if (!name) {
        return NULL;
    }
    for (const rg_preset *p = rg_presets; p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* optimizer schedule */

rg_optim_config rg_optim_default(void) {
    rg_optim_config oc = {
        .lr = 3e-4f,
        .min_lr_frac = 0.1f,
        .warmup_iters = 100,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = 0.1f,
        .grad_clip = 1.0f,
    };
    return oc;
}

float rg_lr_at(const rg_optim_config *oc, int step, int max_steps) {
    float min_lr = oc->lr * oc->min_lr_frac;
    if (step < oc->warmup_iters) {
        return oc->lr * (float)(step + 1) / (float)oc->warmup_iters;
    }
    if (step >= max_steps || max_steps <= oc->warmup_iters) {
        return min_lr;
    }
    /* cosine from lr at the end of warm-up down to min_lr at max_steps */
    double ratio = (double)(step - oc->warmup_iters) / (double)(max_steps - oc->warmup_iters);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return (float)(min_lr + coeff * (oc->lr - min_lr));
}

/* ---------------------------------------------------------------------------------------------- */
/* sizes and allocation */

/* Sizes of the parameter tensors, in rg_params order. Returns -1 when a size or their sum does not
 * fit in size_t (a config the bounds of rg_model_config_check let through never does that on 64-bit
 * hosts, but a crafted one must not wrap to a small allocation). */
static int param_sizes(const rg_model_config *cfg, size_t sizes[RG_NUM_PARAM_TENSORS]) {
    size_t V = (size_t)cfg->V, C = (size_t)cfg->C, L = (size_t)cfg->L, CC, LCC;
    const size_t per_layer[4] = {3, 1, 4, 4}; /* wqkv, wo, w1, w2: multiples of L*C*C */
    int ovf = 0;
    ovf |= __builtin_mul_overflow(C, C, &CC);
    ovf |= __builtin_mul_overflow(L, CC, &LCC);
    ovf |= __builtin_mul_overflow(V, C, &sizes[0]);
    ovf |= __builtin_mul_overflow((size_t)cfg->maxT, C, &sizes[1]);
    for (int i = 0; i < 4; i++) ovf |= __builtin_mul_overflow(per_layer[i], LCC, &sizes[2 + i]);
    sizes[6] = sizes[0]; /* wlm is (V, C) like wte */
    size_t total = 0;
    for (int i = 0; i < RG_NUM_PARAM_TENSORS; i++) ovf |= __builtin_add_overflow(total, sizes[i], &total);
    return ovf ? -1 : 0;
}

size_t rg_model_num_params(const rg_model_config *cfg) {
    size_t sizes[RG_NUM_PARAM_TENSORS];
    if (param_sizes(cfg, sizes) != 0) return SIZE_MAX;
    size_t n = 0;
    for (int i = 0; i < RG_NUM_PARAM_TENSORS; i++) {
        n += sizes[i];
    }
    return n;
}

int rg_model_config_check(const rg_model_config *cfg, char *err, size_t err_len) {
    if (cfg->V <= 0 || cfg->maxT <= 0 || cfg->C <= 0 || cfg->NH <= 0 || cfg->L <= 0) {
        rg_errf(err, err_len,
                "bad model config: every size must be positive (V=%d maxT=%d C=%d NH=%d L=%d)",
                cfg->V, cfg->maxT, cfg->C, cfg->NH, cfg->L);
        return -1;
    }
    if (cfg->V > RG_MAX_VOCAB || cfg->maxT > RG_MAX_BLOCK || cfg->C > RG_MAX_CHANNELS ||
        cfg->L > RG_MAX_LAYERS) {
        rg_errf(err, err_len,
                "bad model config: a size is over its limit (V=%d of %d, maxT=%d of %d, C=%d of %d, "
                "L=%d of %d)", cfg->V, RG_MAX_VOCAB, cfg->maxT, RG_MAX_BLOCK, cfg->C,
                RG_MAX_CHANNELS, cfg->L, RG_MAX_LAYERS);
        return -1;
    }
    if (cfg->C % cfg->NH != 0) {
        rg_errf(err, err_len, "bad model config: C=%d is not a multiple of NH=%d", cfg->C, cfg->NH);
        return -1;
    }
    size_t sizes[RG_NUM_PARAM_TENSORS];
    if (param_sizes(cfg, sizes) != 0) {
        rg_errf(err, err_len, "bad model config: the parameter count does not fit in memory "
                "(C=%d L=%d)", cfg->C, cfg->L);
        return -1;
    }
    return 0;
}

/* 1 when x lies in [lo, hi]; NaN never does. */
static int in_range(float x, float lo, float hi) { return x >= lo && x <= hi; }

int rg_optim_check(const rg_optim_config *oc, char *err, size_t err_len) {
    const char *bad = NULL;
    if (!in_range(oc->lr, 1e-30f, 10.0f)) bad = "lr must be in (0, 10]";
    else if (!in_range(oc->min_lr_frac, 0.0f, 1.0f)) bad = "min_lr_frac must be in [0, 1]";
    else if (oc->warmup_iters < 0 || oc->warmup_iters > RG_MAX_STEPS) bad = "warmup_iters out of range";
    else if (!in_range(oc->beta1, 0.0f, 0.99999994f)) bad = "beta1 must be in [0, 1)";
    else if (!in_range(oc->beta2, 0.0f, 0.99999994f)) bad = "beta2 must be in [0, 1)";
    else if (!in_range(oc->eps, 1e-30f, 1.0f)) bad = "eps must be in (0, 1]";
    else if (!in_range(oc->weight_decay, 0.0f, 10.0f)) bad = "weight_decay must be in [0, 10]";
    else if (!in_range(oc->grad_clip, -1e30f, 1e30f)) bad = "grad_clip must be finite";
    if (!bad) return 0;
    rg_errf(err, err_len, "bad optimizer settings: %s (lr %g, min_lr_frac %g, warmup %d, betas %g "
            "%g, eps %g, weight decay %g, clip %g)", bad, oc->lr, oc->min_lr_frac, oc->warmup_iters,
            oc->beta1, oc->beta2, oc->eps, oc->weight_decay, oc->grad_clip);
    return -1;
}

/* n floats, 64-byte aligned (a cache line, and a whole AVX-512 vector), zeroed. Tensors of 2 MiB
 * and more are aligned to 2 MiB and their whole 2 MiB pages asked for transparent huge pages
 * (Linux's default is to give them only on request): the kernels stream through tens of MiB of
 * activations per op, and with 4 KiB pages that is a TLB miss every 4 KiB. The tail past the last
 * whole huge page stays in small pages, and nothing past the tensor is touched, so a tensor costs
 * its own size in RSS (a 3.1 MiB gradient rounded up to 4 MiB of huge pages cost 0.9 MiB more). */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)
static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    size_t align = bytes >= HUGE_PAGE_BYTES ? HUGE_PAGE_BYTES : 64;
    void *p = NULL;
    if (posix_memalign(&p, align, bytes > 0 ? bytes : 64) != 0) {
        return NULL;
    }
#if defined(MADV_HUGEPAGE)
    if (align == HUGE_PAGE_BYTES) {
        /* a hint: without it the pages are just small */
        madvise(p, bytes / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES, MADV_HUGEPAGE);
    }
#endif
    memset(p, 0, bytes);
    return p;
}

/* Points the named tensors of p at consecutive slices of memory, in rg_params order. */
static void slice_params(rg_params *p, float *memory, const size_t sizes[RG_NUM_PARAM_TENSORS]) {
    float **ptrs[RG_NUM_PARAM_TENSORS] = {&p->wte, &p->wpe, &p->wqkv, &p->wo,
                                          &p->w1,  &p->w2,  &p->wlm};
    for (int i = 0; i < RG_NUM_PARAM_TENSORS; i++) {
        *ptrs[i] = memory;
        memory += sizes[i];
    }
}

static void act_sizes(const rg_model_config *cfg, int B, int T, size_t sizes[RG_NUM_ACT_TENSORS]) {
    size_t BT = (size_t)B * T, C = (size_t)cfg->C, L = (size_t)cfg->L, V = (size_t)cfg->V;
    size_t NH = (size_t)cfg->NH;
    sizes[0] = L * BT;          /* ln1_rstd */
    sizes[1] = L * BT * 3 * C;  /* qkv */
    sizes[2] = L * NH * BT * 2; /* att_stats */
    sizes[3] = L * BT * C;      /* att_out */
    sizes[4] = L * BT;          /* ln2_rstd */
    sizes[5] = L * BT * 4 * C;  /* fch_act */
    sizes[6] = L * BT * C;      /* residual3 */
    sizes[7] = BT * V;          /* probs */
}

/* The layers run on chunks of whole sequences, one after the other, so that a chunk's widest
 * tensor (its rows of the MLP's hidden layer, 4C floats a row) is about 1 MiB: it stays in L2
 * between the op that writes it and the ops that read it, and the scratch holds one chunk instead
 * of the batch. Every op but the dW products is row by row (attention: sequence by sequence), and
 * those accumulate the chunks in row order, as the unchunked products do, so the chunks change no
 * result beyond where a backend's own blocking splits its sums. */
#define CHUNK_FLOATS (1 << 18)

/* Rows a chunk aims for: CHUNK_FLOATS of the hidden layer. */
static int chunk_rows(const rg_model_config *cfg) { return CHUNK_FLOATS / (4 * cfg->C); }

/* Sequences per chunk of a pass at (B,T). */
static int chunk_sequences(const rg_model_config *cfg, int B, int T) {
    int seqs = chunk_rows(cfg) / T;
    return seqs < 1 ? 1 : seqs > B ? B : seqs;
}

/* The scratch, in rg_grad_acts order: the residual stream's gradient is one buffer
 * (rg_model_backward), and one wide buffer serves one chunk of one layer at a time, or the
 * logits of the whole batch. A pass at T' <= T has chunks of at most max(rows, T) rows. */
static void grad_act_sizes(const rg_model_config *cfg, int B, int T,
                           size_t sizes[RG_NUM_GRAD_ACT_TENSORS]) {
    size_t BT = (size_t)B * T, C = (size_t)cfg->C, V = (size_t)cfg->V;
    size_t rows = (size_t)chunk_rows(cfg);
    rows = rows > (size_t)T ? rows : (size_t)T;
    rows = rows < BT ? rows : BT;
    sizes[0] = BT * C;                                 /* dres */
    sizes[1] = rows * 4 * C > BT * V ? rows * 4 * C : BT * V; /* wide */
}

static size_t sum_sizes(const size_t *sizes, int count) {
    size_t n = 0;
    for (int i = 0; i < count; i++) n += sizes[i];
    return n;
}

void rg_model_bytes_at(const rg_model_config *cfg, int B, int T, rg_model_bytes *out) {
    size_t sizes[RG_NUM_ACT_TENSORS], grad_sizes[RG_NUM_GRAD_ACT_TENSORS];
    act_sizes(cfg, B, T, sizes);
    grad_act_sizes(cfg, B, T, grad_sizes);
    const double P = (double)rg_model_num_params(cfg), BT = (double)B * T;
    out->params = out->grads = 4.0 * P;
    out->moments = 8.0 * P;
    out->acts = 4.0 * (double)sum_sizes(sizes, RG_NUM_ACT_TENSORS);
    out->grad_acts = 4.0 * (double)sum_sizes(grad_sizes, RG_NUM_GRAD_ACT_TENSORS);
    out->batch = 4.0 * BT + 8.0 * BT; /* float losses; int32 inputs and targets */
}

double rg_model_train_bytes(const rg_model_config *cfg, int B, int T) {
    rg_model_bytes b;
    rg_model_bytes_at(cfg, B, T, &b);
    return b.params + b.grads + b.moments + b.acts + b.grad_acts + b.batch;
}

/* Points the named activations at consecutive slices of memory, in rg_acts order. */
static void slice_acts(rg_acts *a, float *memory, const size_t sizes[RG_NUM_ACT_TENSORS]) {
    float **ptrs[RG_NUM_ACT_TENSORS] = {&a->ln1_rstd, &a->qkv,     &a->att_stats,
                                        &a->att_out, &a->ln2_rstd, &a->fch_act,
                                        &a->residual3, &a->probs};
    for (int i = 0; i < RG_NUM_ACT_TENSORS; i++) {
        *ptrs[i] = memory;
        memory += sizes[i];
    }
}

/* The same for the activation gradients, in rg_grad_acts order. */
static void slice_grad_acts(rg_grad_acts *g, float *memory,
                            const size_t sizes[RG_NUM_GRAD_ACT_TENSORS]) {
    float **ptrs[RG_NUM_GRAD_ACT_TENSORS] = {&g->dres, &g->wide};
    for (int i = 0; i < RG_NUM_GRAD_ACT_TENSORS; i++) {
        *ptrs[i] = memory;
        memory += sizes[i];
    }
}

static void free_acts(rg_model *m) {
    free(m->acts_memory);
    free(m->grad_acts_memory);
    free(m->losses);
    free(m->inputs);
    free(m->targets);
    m->acts_memory = m->grad_acts_memory = m->losses = NULL;
    m->inputs = m->targets = NULL;
    m->B = m->T = 0;
    m->num_acts = 0;
    m->fwd_B = m->fwd_T = 0;
    m->fwd_pending = 0;
    m->mean_loss = -1.0f;
}

int rg_model_init(rg_model *m, const rg_model_config *cfg, uint64_t seed, char *err,
                  size_t err_len) {
    memset(m, 0, sizeof *m);
    m->mean_loss = -1.0f;
    if (rg_model_config_check(cfg, err, err_len) != 0) {
        return -1;
    }
    m->cfg = *cfg;
    param_sizes(cfg, m->param_sizes); /* cannot overflow: rg_model_config_check ran it */
    m->num_params = rg_model_num_params(cfg);
    m->num_decay_params = m->num_params - m->param_sizes[0] - m->param_sizes[1];

    m->params_memory = alloc_floats(m->num_params);
    m->grads_memory = alloc_floats(m->num_params);
    m->m_memory = alloc_floats(m->num_params);
    m->v_memory = alloc_floats(m->num_params);
    if (!m->params_memory || !m->grads_memory || !m->m_memory || !m->v_memory) {
        rg_errf(err, err_len, "out of memory allocating %zu parameters", m->num_params);
        rg_model_free(m);
        return -1;
    }
    slice_params(&m->params, m->params_memory, m->param_sizes);
    slice_params(&m->grads, m->grads_memory, m->param_sizes);

    /* normal(0, 0.02) everywhere, drawn in memory order; the projections into the residual
     * stream (wo, w2) scaled by 1/sqrt(2L) so its variance does not grow with depth */
    rg_rng rng;
    rg_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->num_params; i++) {
        m->params_memory[i] = 0.02f * rg_rng_normal(&rng);
    }
    float proj_scale = 1.0f / sqrtf(2.0f * (float)cfg->L);
    for (size_t i = 0; i < m->param_sizes[3]; i++) {
        m->params.wo[i] *= proj_scale;
    }
    for (size_t i = 0; i < m->param_sizes[5]; i++) {
        m->params.w2[i] *= proj_scale;
    }
    return 0;
}

int rg_model_set_batch(rg_model *m, int B, int T, char *err, size_t err_len) {
    if (B <= 0 || T <= 0) {
        rg_errf(err, err_len, "bad batch shape: B=%d and T=%d must be positive", B, T);
        return -1;
    }
    if (T > m->cfg.maxT) {
        rg_errf(err, err_len, "sequence length T=%d exceeds the model's block size %d", T,
                m->cfg.maxT);
        return -1;
    }
    if (m->acts_memory && m->B == B && m->T == T) {
        return 0;
    }
    /* the sizes below are products of up to five factors: refuse in floating point what could
     * wrap in size_t, before computing them */
    if (rg_model_train_bytes(&m->cfg, B, T) > (double)SIZE_MAX / 4) {
        rg_errf(err, err_len, "batch B=%d T=%d is too large for this model's memory", B, T);
        return -1;
    }
    free_acts(m);
    size_t sizes[RG_NUM_ACT_TENSORS], grad_sizes[RG_NUM_GRAD_ACT_TENSORS];
    act_sizes(&m->cfg, B, T, sizes);
    grad_act_sizes(&m->cfg, B, T, grad_sizes);
    size_t n = sum_sizes(sizes, RG_NUM_ACT_TENSORS);
    size_t n_grad = sum_sizes(grad_sizes, RG_NUM_GRAD_ACT_TENSORS);
    size_t BT = (size_t)B * T;
    m->acts_memory = alloc_floats(n);
    m->grad_acts_memory = alloc_floats(n_grad);
    m->losses = alloc_floats(BT);
    m->inputs = calloc(BT, sizeof(int32_t));
    m->targets = calloc(BT, sizeof(int32_t));
    if (!m->acts_memory || !m->grad_acts_memory || !m->losses || !m->inputs || !m->targets) {
        free_acts(m);
        rg_errf(err, err_len, "out of memory allocating activations for B=%d T=%d (%zu MiB)", B, T,
                (n + n_grad) * sizeof(float) >> 20);
        return -1;
    }
    slice_acts(&m->acts, m->acts_memory, sizes);
    slice_grad_acts(&m->grad_acts, m->grad_acts_memory, grad_sizes);
    m->acts.logits = m->grad_acts.wide;
    m->num_acts = n;
    m->B = B;
    m->T = T;
    return 0;
}

void rg_model_free(rg_model *m) {
    free_acts(m);
    if (!m->shares_params) free(m->params_memory);
    free(m->grads_memory);
    free(m->m_memory);
    free(m->v_memory);
    memset(m, 0, sizeof *m);
    m->mean_loss = -1.0f;
}

int rg_model_init_replica(rg_model *rep, const rg_model *master, char *err, size_t err_len) {
    memset(rep, 0, sizeof *rep);
    rep->mean_loss = -1.0f;
    rep->cfg = master->cfg;
    memcpy(rep->param_sizes, master->param_sizes, sizeof rep->param_sizes);
    rep->num_params = master->num_params;
    rep->num_decay_params = master->num_decay_params;
    rep->params_memory = master->params_memory;
    rep->params = master->params;
    rep->shares_params = 1;
    rep->grads_memory = alloc_floats(rep->num_params);
    if (!rep->grads_memory) {
        rg_errf(err, err_len, "out of memory allocating a replica's %zu gradients", rep->num_params);
        rg_model_free(rep);
        return -1;
    }
    slice_params(&rep->grads, rep->grads_memory, rep->param_sizes);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* op calls, timed when ops->timing is set */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double op_begin(const rg_ops *ops) { return ops->timing ? now_seconds() : 0.0; }

static void op_end(rg_ops *ops, rg_op_kind kind, double t0) {
    if (ops->timing) {
        ops->seconds[kind] += now_seconds() - t0;
        ops->calls[kind]++;
    }
}

/* Runs ops->k.member(ops->ctx, ...) and accounts its time to kind. */
#define RG_OP(ops, kind, member, ...)                      \
    do {                                                   \
        double t0_ = op_begin(ops);                        \
        (ops)->k.member((ops)->ctx, __VA_ARGS__);          \
        op_end((ops), (kind), t0_);                        \
    } while (0)

/* ---------------------------------------------------------------------------------------------- */
/* forward / backward */

/* Slices of layer l's activations at shape (B,T) for the chunk of sequences [b0, b0+bc), rows
 * [b0*T, (b0+bc)*T): a layer's tensors are packed at the front of each region, so a smaller
 * forward than the allocated one fits. x and dx are the chunk's scratch in its own rows of
 * fch_act, free before the squared ReLU's forward writes them and after its backward has read
 * them; the embedding output, layer 0's input, lives behind them there (C wide each: 3C of the
 * chunk's 4C), so it is written before the chunk's layer 0 and again before its backward; the
 * backward recomputes residual2 into the last C (layer_backward). */
typedef struct layer_acts {
    float *ln1_rstd, *qkv, *att_stats, *att_out;
    float *ln2_rstd, *fch_act, *residual3;
    float *residual; /* the layer's input: the embedding output, or the previous layer's residual3 */
    float *x, *dx;   /* scratch: a recomputed matmul input and its gradient */
} layer_acts;

static layer_acts layer_slice(const rg_acts *a, const rg_model_config *cfg, int l, int B, int T,
                              int b0, int bc) {
    size_t BT = (size_t)B * T, C = (size_t)cfg->C, l_ = (size_t)l;
    size_t r0 = (size_t)b0 * T, rows = (size_t)bc * T;
    float *fch_act = a->fch_act + (l_ * BT + r0) * 4 * C;
    layer_acts la = {
        .ln1_rstd = a->ln1_rstd + l_ * BT + r0,
        .qkv = a->qkv + (l_ * BT + r0) * 3 * C,
        .att_stats = a->att_stats + (l_ * BT + r0) * cfg->NH * 2,
        .att_out = a->att_out + (l_ * BT + r0) * C,
        .ln2_rstd = a->ln2_rstd + l_ * BT + r0,
        .fch_act = fch_act,
        .residual3 = a->residual3 + (l_ * BT + r0) * C,
        .residual = l == 0 ? fch_act + 2 * rows * C : a->residual3 + ((l_ - 1) * BT + r0) * C,
        .x = fch_act,
        .dx = fch_act + rows * C,
    };
    return la;
}

/* Weights of layer l, inside params or grads. */
typedef struct layer_params {
    float *wqkv, *wo, *w1, *w2;
} layer_params;

static layer_params layer_weights(const rg_params *p, const rg_model_config *cfg, int l) {
    size_t CC = (size_t)cfg->C * cfg->C, l_ = (size_t)l;
    layer_params lp = {
        .wqkv = p->wqkv + l_ * 3 * CC,
        .wo = p->wo + l_ * CC,
        .w1 = p->w1 + l_ * 4 * CC,
        .w2 = p->w2 + l_ * 4 * CC,
    };
    return lp;
}

/* residual2 = x + att_out Wo^T into out: the projection straight into out, which then adds x in
 * place (a + b == b + a: the same bits as x + proj). One sequence for the forward and the
 * backward's recomputation, so that both give the same bits. */
static void attention_residual(rg_ops *ops, float *out, const layer_params *lw, layer_acts la,
                               int N, int C) {
    RG_OP(ops, RG_OP_MATMUL_FORWARD, matmul_forward, out, la.att_out, lw->wo, N, C, C);
    RG_OP(ops, RG_OP_RESIDUAL_FORWARD, residual_forward, out, out, la.residual, (size_t)N * C);
}

/* Layer l's forward on the chunk of sequences [b0, b0+bc) at length T, whose slices are la (layer
 * 0 first writes the chunk's embedding output, its input). */
static void layer_forward(rg_model *m, rg_ops *ops, int l, const layer_params *lw, layer_acts la,
                          int b0, int bc, int T) {
    const rg_model_config *cfg = &m->cfg;
    int C = cfg->C, NH = cfg->NH, N = bc * T;
    float *wide = m->grad_acts.wide; /* scratch for what is not kept, see model.h */
    /* residual2 is not kept (the backward recomputes it from the kept attention output): here it
     * lives in the chunk's rows of dres, which only a backward uses */
    float *residual2 = m->grad_acts.dres + (size_t)b0 * T * C;
    if (l == 0) {
        RG_OP(ops, RG_OP_EMBEDDING_FORWARD, embedding_forward, la.residual,
              m->inputs + (size_t)b0 * T, m->params.wte, m->params.wpe, bc, T, C);
    }
    /* attention block: residual2 = x + attention(rmsnorm(x)) Wo^T; the norm's output goes to
     * scratch (the backward recomputes it) */
    float *ln = wide;
    RG_OP(ops, RG_OP_RMSNORM_FORWARD, rmsnorm_forward, ln, la.ln1_rstd, la.residual, N, C);
    RG_OP(ops, RG_OP_MATMUL_FORWARD, matmul_forward, la.qkv, ln, lw->wqkv, N, C, 3 * C);
    RG_OP(ops, RG_OP_ATTENTION_FORWARD, attention_forward, la.att_out, la.att_stats, la.qkv, bc,
          T, C, NH);
    attention_residual(ops, residual2, lw, la, N, C);
    /* MLP block: residual3 = residual2 + relu(rmsnorm(residual2) W1^T)^2 W2^T; only the squared
     * ReLU's output is kept (its backward needs nothing else). The norm's output goes to the
     * chunk's x, in fch_act, which the squared ReLU overwrites after its last read (and after
     * layer 0's residual2 has read the embedding output) */
    RG_OP(ops, RG_OP_RMSNORM_FORWARD, rmsnorm_forward, la.x, la.ln2_rstd, residual2, N, C);
    RG_OP(ops, RG_OP_MATMUL_FORWARD, matmul_forward, wide, la.x, lw->w1, N, C, 4 * C);
    RG_OP(ops, RG_OP_SQRELU_FORWARD, sqrelu_forward, la.fch_act, wide, (size_t)N * 4 * C);
    RG_OP(ops, RG_OP_MATMUL_FORWARD, matmul_forward, la.residual3, la.fch_act, lw->w2, N, 4 * C,
          C);
    RG_OP(ops, RG_OP_RESIDUAL_FORWARD, residual_forward, la.residual3, la.residual3, residual2,
          (size_t)N * C);
}

void rg_model_forward(rg_model *m, rg_ops *ops, const int32_t *inputs, const int32_t *targets,
                      int B, int T) {
    const rg_model_config *cfg = &m->cfg;
    int C = cfg->C, V = cfg->V, L = cfg->L;
    m->mean_loss = -1.0f;
    m->fwd_B = m->fwd_T = 0;
    m->fwd_pending = 0;
    if (!m->acts_memory || B <= 0 || T <= 0 || B > m->B || T > m->T) {
        fprintf(stderr, "error: forward at B=%d T=%d exceeds the activations set for B=%d T=%d\n",
                B, T, m->B, m->T);
        return;
    }
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V))) {
            fprintf(stderr, "error: token %d at position %zu is outside the vocabulary of %d\n",
                    inputs[i] < 0 || inputs[i] >= V ? inputs[i] : targets[i], i, V);
            return;
        }
    }
    memcpy(m->inputs, inputs, N * sizeof(int32_t));
    if (targets) {
        memcpy(m->targets, targets, N * sizeof(int32_t));
    } else {
        /* crossentropy_forward is the op that computes probs; any valid target serves */
        memset(m->targets, 0, N * sizeof(int32_t));
    }

    rg_acts *a = &m->acts;
    int seqs = chunk_sequences(cfg, B, T);
    for (int l = 0; l < L; l++) {
        layer_params lw = layer_weights(&m->params, cfg, l);
        for (int b0 = 0; b0 < B; b0 += seqs) {
            int bc = B - b0 < seqs ? B - b0 : seqs;
            layer_forward(m, ops, l, &lw, layer_slice(a, cfg, l, B, T, b0, bc), b0, bc, T);
        }
    }
    /* no final norm: the LM head reads the residual stream directly */
    float *final = layer_slice(a, cfg, L - 1, B, T, 0, B).residual3;
    RG_OP(ops, RG_OP_MATMUL_FORWARD, matmul_forward, a->logits, final, m->params.wlm, (int)N, C, V);
    RG_OP(ops, RG_OP_CROSSENTROPY_FORWARD, crossentropy_forward, m->losses, a->probs, a->logits,
          m->targets, (int)N, V);

    m->fwd_B = B;
    m->fwd_T = T;
    if (targets) {
        m->fwd_pending = 1;
        double sum = 0.0;
        for (size_t i = 0; i < N; i++) {
            sum += m->losses[i];
        }
        m->mean_loss = (float)(sum / (double)N);
    }
}

void rg_model_zero_grad(rg_model *m) {
    if (m->grads_memory) {
        memset(m->grads_memory, 0, m->num_params * sizeof(float));
    }
}

/* Layer l's backward on the chunk of sequences [b0, b0+bc) at length T, whose slices are la: on
 * entry the chunk's rows of g->dres hold the gradient of the layer's output (residual3), on return
 * that of its input. */
static void layer_backward(rg_model *m, rg_ops *ops, int l, const layer_params *lw,
                           const layer_params *dlw, layer_acts la, int b0, int bc, int T) {
    const rg_model_config *cfg = &m->cfg;
    int C = cfg->C, NH = cfg->NH, N = bc * T;
    float *dres = m->grad_acts.dres + (size_t)b0 * T * C, *wide = m->grad_acts.wide;
    /* MLP block, in reverse. dres is also the gradient of the MLP's projection and (through the
     * skip connection) of residual2. dfch is computed in the wide scratch and goes through the
     * squared ReLU in place; after that the chunk's fch_act is read no more and serves as the
     * scratch of the rest: x (a recomputed norm output), dx (its gradient), layer 0's input and
     * residual2, C wide each. */
    float *dfch = wide;
    RG_OP(ops, RG_OP_MATMUL_BACKWARD, matmul_backward, dfch, dlw->w2, dres, la.fch_act, lw->w2, N,
          4 * C, C);
    RG_OP(ops, RG_OP_SQRELU_BACKWARD, sqrelu_backward, dfch, dfch, la.fch_act, (size_t)N * 4 * C);
    if (l == 0) { /* the embedding output, layer 0's input, again where the forward put it */
        RG_OP(ops, RG_OP_EMBEDDING_FORWARD, embedding_forward, la.residual,
              m->inputs + (size_t)b0 * T, m->params.wte, m->params.wpe, bc, T, C);
    }
    /* residual2 recomputed as the forward made it (the same ops on the same inputs: the same
     * bits), from the kept attention output: one C x C product instead of the attention forward
     * that the Wo product's weight gradient would need without it */
    float *residual2 = la.fch_act + 3 * (size_t)N * C;
    attention_residual(ops, residual2, lw, la, N, C);
    RG_OP(ops, RG_OP_RMSNORM_FORWARD, rmsnorm_forward, la.x, la.ln2_rstd, residual2, N, C);
    RG_OP(ops, RG_OP_MATMUL_BACKWARD, matmul_backward, la.dx, dlw->w1, dfch, la.x, lw->w1, N, C,
          4 * C);
    RG_OP(ops, RG_OP_RMSNORM_BACKWARD, rmsnorm_backward, dres, la.dx, residual2, la.ln2_rstd, N,
          C);
    /* attention block, in reverse: dres now holds the gradient of residual2, which is also that
     * of the attention's projection and of the layer's input. dqkv goes into the wide scratch. */
    float *dqkv = wide;
    RG_OP(ops, RG_OP_MATMUL_BACKWARD, matmul_backward, la.dx, dlw->wo, dres, la.att_out, lw->wo,
          N, C, C);
    RG_OP(ops, RG_OP_ATTENTION_BACKWARD, attention_backward, dqkv, la.dx, la.qkv, la.att_stats, bc,
          T, C, NH);
    RG_OP(ops, RG_OP_RMSNORM_FORWARD, rmsnorm_forward, la.x, la.ln1_rstd, la.residual, N, C);
    RG_OP(ops, RG_OP_MATMUL_BACKWARD, matmul_backward, la.dx, dlw->wqkv, dqkv, la.x, lw->wqkv, N,
          C, 3 * C);
    RG_OP(ops, RG_OP_RMSNORM_BACKWARD, rmsnorm_backward, dres, la.dx, la.residual, la.ln1_rstd, N,
          C);
}

void rg_model_backward(rg_model *m, rg_ops *ops) {
    rg_model_backward_share(m, ops, (size_t)m->fwd_B * m->fwd_T);
}

void rg_model_backward_share(rg_model *m, rg_ops *ops, size_t total_positions) {
    const rg_model_config *cfg = &m->cfg;
    int C = cfg->C, V = cfg->V, L = cfg->L;
    int B = m->fwd_B, T = m->fwd_T;
    if (!m->fwd_pending || B <= 0) {
        fprintf(stderr, "error: backward needs a successful forward with targets first (one "
                        "forward per backward)\n");
        return;
    }
    m->fwd_pending = 0; /* the backward overwrites activations it has read */
    size_t N = (size_t)B * T;
    /* Each op overwrites the activation gradient it produces, so none is zeroed; parameter
     * gradients accumulate across passes until rg_model_zero_grad. g->dres is the residual
     * stream's gradient: a skip connection passes it on unchanged, so one buffer serves every
     * layer, and the rmsnorm_backward at the start of each branch adds the branch's part into it.
     * What the forward did not keep is recomputed into the scratch by the same ops on the same
     * inputs: the same bits as in the forward. */
    rg_acts *a = &m->acts;
    rg_grad_acts *g = &m->grad_acts;
    /* loss = mean over the batch's positions, so each position's loss has weight 1/total */
    float *dlogits = g->wide;
    RG_OP(ops, RG_OP_CROSSENTROPY_BACKWARD, crossentropy_backward, dlogits, a->probs, m->targets,
          (int)N, V, 1.0f / (float)total_positions);
    float *final = layer_slice(a, cfg, L - 1, B, T, 0, B).residual3;
    RG_OP(ops, RG_OP_MATMUL_BACKWARD, matmul_backward, g->dres, m->grads.wlm, dlogits, final,
          m->params.wlm, (int)N, C, V);
    int seqs = chunk_sequences(cfg, B, T);
    for (int l = L - 1; l >= 0; l--) {
        layer_params lw = layer_weights(&m->params, cfg, l);
        layer_params dlw = layer_weights(&m->grads, cfg, l);
        for (int b0 = 0; b0 < B; b0 += seqs) {
            int bc = B - b0 < seqs ? B - b0 : seqs;
            layer_backward(m, ops, l, &lw, &dlw, layer_slice(a, cfg, l, B, T, b0, bc), b0, bc, T);
        }
    }
    RG_OP(ops, RG_OP_EMBEDDING_BACKWARD, embedding_backward, m->grads.wte, m->grads.wpe, g->dres,
          m->inputs, B, T, C);
}

/* ---------------------------------------------------------------------------------------------- */
/* update */

float rg_model_update(rg_model *m, rg_ops *ops, const rg_optim_config *oc, float lr) {
    m->adam_t++;
    double t0 = op_begin(ops);
    double ss = ops->k.sum_squares(ops->ctx, m->grads_memory, m->num_params);
    op_end(ops, RG_OP_SUM_SQUARES, t0);
    float norm = (float)sqrt(ss);
    float grad_scale = 1.0f;
    if (oc->grad_clip > 0.0f && norm > oc->grad_clip) {
        grad_scale = oc->grad_clip / norm;
    }
    /* embeddings first, without weight decay; then the matrices, with it */
    size_t n_embed = m->num_params - m->num_decay_params;
    RG_OP(ops, RG_OP_ADAMW, adamw_step, m->params_memory, m->m_memory, m->v_memory,
          m->grads_memory, n_embed, lr, oc->beta1, oc->beta2, oc->eps, 0.0f, grad_scale, m->adam_t);
    RG_OP(ops, RG_OP_ADAMW, adamw_step, m->params_memory + n_embed, m->m_memory + n_embed,
          m->v_memory + n_embed, m->grads_memory + n_embed, m->num_decay_params, lr, oc->beta1,
          oc->beta2, oc->eps, oc->weight_decay, grad_scale, m->adam_t);
    return norm;
}

/* ---------------------------------------------------------------------------------------------- */
/* FLOPs */

double rg_model_step_flops(const rg_model_config *cfg, int B, int T) {
    double C = cfg->C, L = cfg->L, V = cfg->V, NH = cfg->NH;
    double hs = C / NH;
    /* wqkv 3C^2 + wo C^2 + w1 4C^2 + w2 4C^2 per layer, and the LM head */
    double matrix_params = L * 12.0 * C * C + V * C;
    /* 2 FLOPs per multiply-add; forward 1x, backward 2x (input and weight gradients) */
    double matmul = 6.0 * matrix_params * B * T;
    /* q k^T and att v: 2 * 2 * B NH T^2 hs forward per layer; backward twice that */
    double attention_fwd = 4.0 * B * NH * (double)T * T * hs;
    return matmul + L * 3.0 * attention_fwd;
}
