/*
 * The model: the gradient of the whole loss against central finite differences for every
 * parameter of a tiny configuration, training the tiny preset on a repetitive text, bit-identical
 * reruns, parameter counts, the FLOP formula, the learning-rate schedule and config errors.
 * All runs use the reference kernels.
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

#include "randygpt/model.h"
#include "randygpt/rng.h"

static rg_ops make_ops(void) {
    rg_ops ops;
    char err[256];
    rg_backend_config cfg = {.num_threads = 1};
    if (rg_ops_create(&ops, &rg_reference_backend, &cfg, err, sizeof err) != 0) {
        fail_msg("rg_ops_create: %s", err);
    }
    return ops;
}

/* ---------------------------------------------------------------------------------------------- */
/* gradient check */

/*
 * Every parameter of a model with V=11, C=16, NH=2, L=2, T=8, B=2 (6,800 of them) is moved by
 * +-1e-3 and the mean loss re-evaluated. The weights are redrawn with std 0.2 instead of 0.02 so
 * that the step is small against each weight (a 0.02-scale residual stream through RMSNorm would
 * make the loss strongly non-linear at that step) and so that no tensor's gradient is tiny.
 *
 * Per tensor the test requires relative L2 error ||analytic - numeric|| / ||numeric|| < 1e-2.
 * The mean loss is a float computation: its rounding noise (~1e-7 of ~2.4) over the 2e-3 step gives
 * absolute errors ~1e-4, against gradient norms of 1e-2 to 1 per tensor; a missing term or a wrong
 * factor anywhere in the backward gives errors of order 1.
 */
#define GC_STEP 1e-3f
#define GC_TOL 1e-2

static const char *const tensor_names[RG_NUM_PARAM_TENSORS] = {"wte", "wpe", "wqkv", "wo",
                                                               "w1",  "w2",  "wlm"};

static void test_gradient_matches_finite_differences(void **state) {
    rg_model_config cfg = {.V = 11, .maxT = 8, .C = 16, .NH = 2, .L = 2};
    int B = 2, T = 8;
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 42, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, B, T, err, sizeof err), 0);
    rg_rng rng;
    rg_rng_seed(&rng, 7);
    for (size_t i = 0; i < m.num_params; i++) {
        m.params_memory[i] = 0.2f * rg_rng_normal(&rng);
    }
    int32_t inputs[16], targets[16];
    for (int i = 0; i < B * T; i++) {
        inputs[i] = (int32_t)rg_rng_below(&rng, (uint64_t)cfg.V);
        targets[i] = (int32_t)rg_rng_below(&rng, (uint64_t)cfg.V);
    }
    rg_ops ops = make_ops();

    rg_model_zero_grad(&m);
    rg_model_forward(&m, &ops, inputs, targets, B, T);
    assert_true(m.mean_loss > 0.0f);
    rg_model_backward(&m, &ops);
    float *analytic = malloc(m.num_params * sizeof(float));
    assert_non_null(analytic);
    memcpy(analytic, m.grads_memory, m.num_params * sizeof(float));

    size_t offset = 0;
    for (int tsr = 0; tsr < RG_NUM_PARAM_TENSORS; tsr++) {
        double diff2 = 0.0, ref2 = 0.0;
        for (size_t j = 0; j < m.param_sizes[tsr]; j++) {
            float *p = &m.params_memory[offset + j];
            float orig = *p;
            *p = orig + GC_STEP;
            float xp = *p;
            rg_model_forward(&m, &ops, inputs, targets, B, T);
            double lp = m.mean_loss;
            *p = orig - GC_STEP;
            float xm = *p;
            rg_model_forward(&m, &ops, inputs, targets, B, T);
            double lm = m.mean_loss;
            *p = orig;
            double numeric = (lp - lm) / ((double)xp - (double)xm);
            double d = analytic[offset + j] - numeric;
            diff2 += d * d;
            ref2 += numeric * numeric;
        }
        double rel = sqrt(diff2) / sqrt(ref2);
        print_message("gradient %-5s |g| %.3e  relative L2 error %.2e\n", tensor_names[tsr],
                      sqrt(ref2), rel);
        assert_true(ref2 > 1e-8); /* every tensor takes part in the loss */
        if (!(rel < GC_TOL)) {
            fail_msg("gradient of %s: relative L2 error %.3g exceeds %.0e", tensor_names[tsr], rel,
                     GC_TOL);
        }
        offset += m.param_sizes[tsr];
    }
    free(analytic);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

/* ---------------------------------------------------------------------------------------------- */
/* training */

/* A small repetitive corpus, tokenised to the sorted set of its distinct bytes. */
typedef struct corpus {
    int32_t *tokens;
    size_t n;
    int V;
} corpus;

static corpus make_corpus(void) {
    static const char *const line = "the quick brown fox jumps over the lazy dog. ";
    size_t len = strlen(line), reps = 60;
    corpus c = {.n = len * reps};
    c.tokens = malloc(c.n * sizeof(int32_t));
    assert_non_null(c.tokens);
    int id[256];
    for (int b = 0; b < 256; b++) {
        id[b] = -1;
    }
    for (size_t i = 0; i < len; i++) {
        id[(unsigned char)line[i]] = 0;
    }
    for (int b = 0; b < 256; b++) {
        if (id[b] == 0) {
            id[b] = c.V++;
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        c.tokens[i] = id[(unsigned char)line[i % len]];
    }
    return c;
}

/* Random windows of T+1 tokens: inputs are the first T, targets the last T. */
static void sample_batch(const corpus *c, rg_rng *rng, int B, int T, int32_t *inputs,
                         int32_t *targets) {
    for (int b = 0; b < B; b++) {
        size_t start = rg_rng_below(rng, c->n - (size_t)T - 1);
        memcpy(inputs + (size_t)b * T, c->tokens + start, (size_t)T * sizeof(int32_t));
        memcpy(targets + (size_t)b * T, c->tokens + start + 1, (size_t)T * sizeof(int32_t));
    }
}

/* Trains the tiny preset for steps steps; writes each step's loss into losses. The model is left
 * in *m for the caller to inspect and free. */
static void train_tiny(rg_model *m, int B, int steps, uint64_t seed, float *losses) {
    const rg_preset *p = rg_preset_find("tiny");
    assert_non_null(p);
    corpus c = make_corpus();
    rg_model_config cfg = {.V = c.V, .maxT = p->T, .C = p->C, .NH = p->NH, .L = p->L};
    char err[256];
    assert_int_equal(rg_model_init(m, &cfg, seed, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(m, B, p->T, err, sizeof err), 0);
    rg_ops ops = make_ops();
    rg_optim_config oc = rg_optim_default();
    oc.lr = 3e-3f; /* a short run: a larger peak rate than the default reaches the target sooner */
    oc.warmup_iters = 10;
    rg_rng rng;
    rg_rng_seed(&rng, seed + 1);
    int32_t *inputs = malloc((size_t)B * p->T * sizeof(int32_t));
    int32_t *targets = malloc((size_t)B * p->T * sizeof(int32_t));
    assert_non_null(inputs);
    assert_non_null(targets);
    for (int s = 0; s < steps; s++) {
        sample_batch(&c, &rng, B, p->T, inputs, targets);
        rg_model_zero_grad(m);
        rg_model_forward(m, &ops, inputs, targets, B, p->T);
        rg_model_backward(m, &ops);
        rg_model_update(m, &ops, &oc, rg_lr_at(&oc, s, steps));
        losses[s] = m->mean_loss;
    }
    free(inputs);
    free(targets);
    free(c.tokens);
    rg_ops_destroy(&ops);
}

static void test_training_halves_the_loss(void **state) {
    enum { STEPS = 200, B = 4 };
    float losses[STEPS];
    rg_model m;
    train_tiny(&m, B, STEPS, 1234, losses);
    float first = losses[0];
    float last = 0.0f; /* mean of the last 10 steps: one batch is noisy */
    for (int s = STEPS - 10; s < STEPS; s++) {
        last += losses[s] / 10.0f;
    }
    print_message("tiny preset, V=%d: loss %.3f -> %.3f after %d steps\n", m.cfg.V, first, last,
                  STEPS);
    /* the initial loss is near log(V): the model starts out uniform */
    assert_float_equal(first, logf((float)m.cfg.V), 0.1f);
    assert_true(last < 0.5f * first);
    assert_int_equal(m.adam_t, STEPS);
    rg_model_free(&m);
}

static void test_same_seed_bit_identical(void **state) {
    enum { STEPS = 5, B = 4 };
    float a[STEPS], b[STEPS], c[STEPS];
    rg_model ma, mb, mc;
    train_tiny(&ma, B, STEPS, 99, a);
    train_tiny(&mb, B, STEPS, 99, b);
    train_tiny(&mc, B, STEPS, 100, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(ma.params_memory, mb.params_memory, ma.num_params * sizeof(float));
    assert_memory_not_equal(a, c, sizeof a); /* the seed matters */
    rg_model_free(&ma);
    rg_model_free(&mb);
    rg_model_free(&mc);
}

/* ---------------------------------------------------------------------------------------------- */
/* sizes, FLOPs, schedule */

static void test_presets_and_param_count(void **state) {
    const rg_preset *small = rg_preset_find("small");
    assert_non_null(small);
    assert_int_equal(small->C, 128);
    assert_int_equal(small->NH, 8);
    assert_int_equal(small->L, 4);
    assert_int_equal(small->T, 64);
    assert_int_equal(small->B, 32);
    assert_null(rg_preset_find("huge"));
    rg_model_config cfg = {.V = 67, .maxT = small->T, .C = small->C, .NH = small->NH, .L = small->L};
    assert_int_equal(rg_model_num_params(&cfg), 811776); /* the seed model's count */

    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 1, err, sizeof err), 0);
    assert_int_equal(m.num_params, 811776);
    /* tensors are consecutive slices in rg_params order, embeddings first */
    assert_ptr_equal(m.params.wte, m.params_memory);
    assert_ptr_equal(m.params.wpe, m.params.wte + 67 * 128);
    assert_ptr_equal(m.params.wqkv, m.params.wpe + 64 * 128);
    assert_ptr_equal(m.params.wlm + 67 * 128, m.params_memory + m.num_params);
    assert_int_equal(m.num_decay_params, 811776 - 67 * 128 - 64 * 128);
    /* init: std 0.02, and the residual projections 1/sqrt(2L) smaller */
    double s_wqkv = 0.0, s_wo = 0.0;
    for (size_t i = 0; i < m.param_sizes[2]; i++) {
        s_wqkv += (double)m.params.wqkv[i] * m.params.wqkv[i];
    }
    for (size_t i = 0; i < m.param_sizes[3]; i++) {
        s_wo += (double)m.params.wo[i] * m.params.wo[i];
    }
    assert_float_equal(sqrt(s_wqkv / m.param_sizes[2]), 0.02, 0.0005);
    assert_float_equal(sqrt(s_wo / m.param_sizes[3]), 0.02 / sqrt(8.0), 0.0005);
    rg_model_free(&m);
}

/* The scratch: dres (B*T*C floats) and the wide buffer of one chunk of 512 rows of 4C floats
 * (the layers run 8 sequences of 64 at a time at C = 128; the batch's logits are smaller), 2 MiB
 * (the sizes docs/model.md gives), the kept activations B*T*(L*(9C + 2NH + 2) + V) floats, and
 * rg_model_bytes_at and rg_model_train_bytes count exactly what is allocated. */
static void test_activation_sizes(void **state) {
    rg_model_config cfg = {.V = 67, .maxT = 64, .C = 128, .NH = 8, .L = 4};
    size_t BT = 32 * 64, C = 128, V = 67, L = 4, NH = 8;
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 1, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 32, 64, err, sizeof err), 0);
    const rg_grad_acts *g = &m.grad_acts;
    assert_ptr_equal(g->dres, m.grad_acts_memory);
    assert_ptr_equal(g->wide, g->dres + BT * C);
    assert_ptr_equal(m.acts.logits, g->wide);
    size_t n_grad = BT * C + 512 * 4 * C;
    assert_int_equal(n_grad, 512 * 1024); /* 2 MiB, as docs/model.md says */
    assert_int_equal(m.num_acts, BT * (L * (9 * C + 2 * NH + 2) + V));
    assert_ptr_equal(m.acts.probs + BT * V, m.acts_memory + m.num_acts);
    rg_model_bytes b;
    rg_model_bytes_at(&cfg, 32, 64, &b);
    assert_true(b.acts == 4.0 * m.num_acts);
    assert_true(b.grad_acts == 4.0 * n_grad);
    assert_true(b.batch == 12.0 * BT);
    double act_bytes = 4.0 * (m.num_acts + n_grad + BT) + 8.0 * BT;
    assert_true(rg_model_train_bytes(&cfg, 32, 64) == 16.0 * m.num_params + act_bytes);
    rg_model_free(&m);
}

/* A backward consumes its forward's activations: a second one without a forward refuses and
 * leaves the gradients as they are. */
static void test_one_backward_per_forward(void **state) {
    rg_model_config cfg = {.V = 9, .maxT = 8, .C = 8, .NH = 2, .L = 2};
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 5, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 2, 8, err, sizeof err), 0);
    rg_ops ops = make_ops();
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 5 + 2) % 9;
    rg_model_zero_grad(&m);
    rg_model_forward(&m, &ops, tok, tok, 2, 8);
    rg_model_backward(&m, &ops);
    float *once = malloc(m.num_params * sizeof(float));
    assert_non_null(once);
    memcpy(once, m.grads_memory, m.num_params * sizeof(float));
    rg_model_backward(&m, &ops);
    assert_memory_equal(m.grads_memory, once, m.num_params * sizeof(float));
    free(once);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

/* The backward never reads an activation gradient before an op has written it (each op overwrites
 * its own): NaN left in every one of them from before changes no parameter gradient. */
static void test_backward_ignores_stale_activation_gradients(void **state) {
    rg_model_config cfg = {.V = 9, .maxT = 8, .C = 8, .NH = 2, .L = 2};
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 13, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 2, 8, err, sizeof err), 0);
    rg_ops ops = make_ops();
    int32_t tok[16], tgt[16];
    for (int i = 0; i < 16; i++) {
        tok[i] = (i * 4 + 1) % 9;
        tgt[i] = (i * 7 + 3) % 9;
    }
    float *clean = malloc(m.num_params * sizeof(float));
    assert_non_null(clean);
    rg_model_bytes b;
    rg_model_bytes_at(&cfg, 2, 8, &b);
    size_t n_grad = (size_t)(b.grad_acts / sizeof(float)); /* the whole scratch */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (size_t i = 0; i < n_grad; i++) {
                m.grad_acts_memory[i] = NAN;
            }
        }
        rg_model_zero_grad(&m);
        rg_model_forward(&m, &ops, tok, tgt, 2, 8);
        rg_model_backward(&m, &ops);
        if (pass == 0) {
            memcpy(clean, m.grads_memory, m.num_params * sizeof(float));
        }
    }
    assert_memory_equal(m.grads_memory, clean, m.num_params * sizeof(float));
    free(clean);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

static void test_step_flops(void **state) {
    rg_model_config cfg = {.V = 67, .maxT = 64, .C = 128, .NH = 8, .L = 4};
    /* small preset at B=32, T=64: matrices 4 layers x 12 C^2 plus the V x C head; attention per
     * layer 4 B NH T^2 hs forward and twice that backward */
    double matrix = 4.0 * 12 * 128 * 128 + 67.0 * 128;
    double expect = 6.0 * matrix * 32 * 64 + 4 * 3 * (4.0 * 32 * 8 * 64 * 64 * 16);
    assert_true(rg_model_step_flops(&cfg, 32, 64) == expect);
    assert_true(expect == 10574364672.0);
}

static void test_lr_schedule(void **state) {
    rg_optim_config oc = rg_optim_default();
    assert_float_equal(oc.lr, 3e-4f, 0.0f);
    assert_int_equal(oc.warmup_iters, 100);
    /* warm-up: linear, reaching lr at its last step */
    assert_float_equal(rg_lr_at(&oc, 0, 1000), 3e-6f, 1e-9f);
    assert_float_equal(rg_lr_at(&oc, 49, 1000), 1.5e-4f, 1e-9f);
    assert_float_equal(rg_lr_at(&oc, 100, 1000), 3e-4f, 1e-9f);
    /* cosine: halfway between lr and lr/10 at the middle of the decay, lr/10 at the end */
    assert_float_equal(rg_lr_at(&oc, 550, 1000), 0.5f * (3e-4f + 3e-5f), 1e-9f);
    assert_float_equal(rg_lr_at(&oc, 1000, 1000), 3e-5f, 1e-9f);
    assert_true(rg_lr_at(&oc, 300, 1000) > rg_lr_at(&oc, 301, 1000));
}

/* ---------------------------------------------------------------------------------------------- */
/* errors, timing, update */

static void test_bad_configs_are_refused(void **state) {
    char err[256];
    rg_model m;
    rg_model_config bad_heads = {.V = 10, .maxT = 8, .C = 10, .NH = 4, .L = 1};
    assert_int_equal(rg_model_init(&m, &bad_heads, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "multiple of NH"));
    rg_model_config zero = {.V = 10, .maxT = 8, .C = 8, .NH = 2, .L = 0};
    assert_int_equal(rg_model_config_check(&zero, err, sizeof err), -1);
    assert_non_null(strstr(err, "positive"));

    rg_model_config ok = {.V = 10, .maxT = 8, .C = 8, .NH = 2, .L = 1};
    assert_int_equal(rg_model_init(&m, &ok, 1, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 2, 9, err, sizeof err), -1);
    assert_non_null(strstr(err, "block size"));
    assert_int_equal(rg_model_set_batch(&m, 0, 4, err, sizeof err), -1);
    assert_int_equal(rg_model_set_batch(&m, 2, 8, err, sizeof err), 0);

    /* a token outside the vocabulary: an error line and no loss, never a crash */
    rg_ops ops = make_ops();
    int32_t inputs[16] = {0}, targets[16] = {0};
    inputs[5] = 10;
    rg_model_forward(&m, &ops, inputs, targets, 2, 8);
    assert_true(m.mean_loss < 0.0f);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

static void test_timing_counts_calls(void **state) {
    rg_model_config cfg = {.V = 7, .maxT = 8, .C = 8, .NH = 2, .L = 3};
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 3, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 2, 8, err, sizeof err), 0);
    rg_ops ops = make_ops();
    ops.timing = 1;
    int32_t tok[16];
    for (int i = 0; i < 16; i++) {
        tok[i] = i % 7;
    }
    rg_model_zero_grad(&m);
    rg_model_forward(&m, &ops, tok, tok, 2, 8);
    rg_model_backward(&m, &ops);
    rg_optim_config oc = rg_optim_default();
    float norm = rg_model_update(&m, &ops, &oc, 1e-3f);
    /* 4 matmuls per layer plus the LM head, forward and backward, and the backward's Wo product
     * that recomputes the residual after attention */
    assert_int_equal(ops.calls[RG_OP_MATMUL_FORWARD], 4 * 3 + 1 + 3);
    assert_int_equal(ops.calls[RG_OP_MATMUL_BACKWARD], 4 * 3 + 1);
    /* the backward recomputes that residual (and its skip connection), the norms' outputs and the
     * embedding output, not the attention output nor the squared ReLU */
    assert_int_equal(ops.calls[RG_OP_ATTENTION_FORWARD], 3);
    assert_int_equal(ops.calls[RG_OP_RESIDUAL_FORWARD], 2 * 3 + 3);
    assert_int_equal(ops.calls[RG_OP_EMBEDDING_FORWARD], 2);
    assert_int_equal(ops.calls[RG_OP_RMSNORM_FORWARD], 2 * 2 * 3);
    assert_int_equal(ops.calls[RG_OP_SQRELU_FORWARD], 3);
    assert_int_equal(ops.calls[RG_OP_RMSNORM_BACKWARD], 2 * 3);
    assert_int_equal(ops.calls[RG_OP_ADAMW], 2);
    assert_int_equal(ops.calls[RG_OP_SUM_SQUARES], 1);
    assert_true(ops.seconds[RG_OP_MATMUL_FORWARD] > 0.0);
    assert_true(norm > 0.0f);
    assert_int_equal(m.adam_t, 1);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

/* With clipping, the update equals one with the gradients pre-scaled to norm grad_clip; the
 * embeddings take no weight decay. Checked on one element of wte and one of wlm by hand. */
static void test_update_clips_and_decays(void **state) {
    rg_model_config cfg = {.V = 5, .maxT = 4, .C = 4, .NH = 1, .L = 1};
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 5, err, sizeof err), 0);
    for (size_t i = 0; i < m.num_params; i++) {
        m.grads_memory[i] = 0.0f;
    }
    m.grads.wte[0] = 3.0f;
    m.grads.wlm[1] = 4.0f; /* global norm 5 */
    float wte0 = m.params.wte[0], wlm1 = m.params.wlm[1], wlm2 = m.params.wlm[2];
    rg_ops ops = make_ops();
    rg_optim_config oc = rg_optim_default(); /* clip 1.0, weight decay 0.1 */
    float lr = 0.01f;
    float norm = rg_model_update(&m, &ops, &oc, lr);
    assert_float_equal(norm, 5.0f, 1e-6f);
    /* first AdamW step: mhat/sqrt(vhat) = sign(g) whatever the scale */
    assert_float_equal(m.params.wte[0], wte0 - lr * 1.0f, 1e-6f);
    assert_float_equal(m.params.wlm[1], wlm1 - lr * (1.0f + 0.1f * wlm1), 1e-6f);
    /* a zero gradient still decays a matrix entry */
    assert_float_equal(m.params.wlm[2], wlm2 - lr * 0.1f * wlm2, 1e-7f);
    /* clipping scaled g by 1/5 before the moments: m = 0.1 * 0.6 */
    assert_float_equal(m.m_memory[0], 0.1f * 3.0f / 5.0f, 1e-7f);
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

/* A forward at a shorter (B,T) than the activations were sized for (as generation runs it) gives
 * the same logits as the matching prefix of a full forward: attention is causal and the layout is
 * packed at the forward's own shape. Without targets it still fills probs and sets no loss. */
static void test_short_forward_matches_prefix(void **state) {
    rg_model_config cfg = {.V = 9, .maxT = 8, .C = 8, .NH = 2, .L = 2};
    char err[256];
    rg_model m;
    assert_int_equal(rg_model_init(&m, &cfg, 11, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&m, 2, 8, err, sizeof err), 0);
    rg_ops ops = make_ops();
    int32_t tok[16];
    for (int i = 0; i < 16; i++) {
        tok[i] = (i * 5 + 2) % 9;
    }
    rg_model_forward(&m, &ops, tok, NULL, 2, 8);
    assert_true(m.mean_loss == -1.0f);
    float full[4 * 9];
    memcpy(full, m.acts.logits, sizeof full); /* batch row 0, positions 0..3 */
    rg_model_forward(&m, &ops, tok, NULL, 1, 4);
    for (int i = 0; i < 4 * 9; i++) {
        assert_float_equal(m.acts.logits[i], full[i], 1e-6f);
    }
    for (int t = 0; t < 4; t++) {
        float sum = 0.0f;
        for (int j = 0; j < 9; j++) {
            sum += m.acts.probs[t * 9 + j];
        }
        assert_float_equal(sum, 1.0f, 1e-5f);
    }
    rg_ops_destroy(&ops);
    rg_model_free(&m);
}

/* The layers run the batch a chunk of sequences at a time (2 chunks of 32 sequences at C = 32,
 * T = 64): the losses and every gradient are those of the chunks' sequences run as batches of
 * their own, one backward each with the loss weighted by the whole batch, bit for bit on the
 * reference kernels (every op is row by row, and the weight gradients add rows in order). */
static void test_chunks_match_separate_batches(void **state) {
    rg_model_config cfg = {.V = 11, .maxT = 64, .C = 32, .NH = 2, .L = 2};
    enum { B = 64, T = 64, N = B * T };
    char err[256];
    rg_model whole, half;
    assert_int_equal(rg_model_init(&whole, &cfg, 3, err, sizeof err), 0);
    assert_int_equal(rg_model_init(&half, &cfg, 3, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&whole, B, T, err, sizeof err), 0);
    assert_int_equal(rg_model_set_batch(&half, B / 2, T, err, sizeof err), 0);
    rg_ops ops = make_ops();
    static int32_t inputs[N], targets[N];
    for (int i = 0; i < N; i++) {
        inputs[i] = (i * 7 + i / 13) % 11;
        targets[i] = (i * 3 + 1 + i / 17) % 11;
    }
    rg_model_zero_grad(&whole);
    rg_model_forward(&whole, &ops, inputs, targets, B, T);
    static float losses[N];
    memcpy(losses, whole.losses, sizeof losses);
    rg_model_backward(&whole, &ops);
    rg_model_zero_grad(&half);
    for (int h = 0; h < 2; h++) {
        rg_model_forward(&half, &ops, inputs + h * N / 2, targets + h * N / 2, B / 2, T);
        assert_memory_equal(half.losses, losses + h * N / 2, N / 2 * sizeof(float));
        rg_model_backward_share(&half, &ops, N);
    }
    assert_memory_equal(half.grads_memory, whole.grads_memory, whole.num_params * sizeof(float));
    rg_ops_destroy(&ops);
    rg_model_free(&whole);
    rg_model_free(&half);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_and_param_count),
        cmocka_unit_test(test_activation_sizes),
        cmocka_unit_test(test_one_backward_per_forward),
        cmocka_unit_test(test_backward_ignores_stale_activation_gradients),
        cmocka_unit_test(test_step_flops),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_bad_configs_are_refused),
        cmocka_unit_test(test_timing_counts_calls),
        cmocka_unit_test(test_update_clips_and_decays),
        cmocka_unit_test(test_short_forward_matches_prefix),
        cmocka_unit_test(test_chunks_match_separate_batches),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_same_seed_bit_identical),
        cmocka_unit_test(test_training_halves_the_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
