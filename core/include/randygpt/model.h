/*
 * The randyGPT model (see docs/model.md): byte-level GPT, pre-norm RMSNorm without gain, no biases,
 * squared-ReLU MLP, untied LM head, AdamW. Parameters, gradients and the two AdamW moments each live
 * in one allocation sliced into named tensors; activations are sized once per (B,T).
 */
#ifndef RANDYGPT_MODEL_H
#define RANDYGPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_preset {
    const char *name;
    int C, NH, L, T, B;  /* n_embd, n_head, n_layer, block size, batch */
} rg_preset;

/* NULL-terminated by name == NULL. */
extern const rg_preset rg_presets[];
/* The preset of that name, or NULL. */
const rg_preset *rg_preset_find(const char *name);

/* Upper bounds of every size a config, a checkpoint or a command line may give: far above any
 * model this project trains, low enough that no size computed from them can wrap around. */
#define RG_MAX_VOCAB 256          /* byte-level */
#define RG_MAX_BLOCK 65536        /* maxT and T */
#define RG_MAX_CHANNELS 16384     /* C */
#define RG_MAX_LAYERS 1024        /* L */
#define RG_MAX_BATCH 1000000      /* B */
#define RG_MAX_STEPS 1000000000   /* --iters, --warmup, a checkpoint's step */

typedef struct rg_model_config {
    int V;     /* vocabulary size */
    int maxT;  /* block size: the longest sequence and the rows of wpe */
    int C;     /* channels */
    int NH;    /* heads, C % NH == 0 */
    int L;     /* layers */
} rg_model_config;

/* Named slices of one allocation. Order in memory is the order below: wte and wpe first (no weight
 * decay), then the matrices (weight decay), so AdamW runs as two contiguous calls. */
#define RG_NUM_PARAM_TENSORS 7
typedef struct rg_params {
    float *wte;   /* (V, C) token embedding */
    float *wpe;   /* (maxT, C) position embedding */
    float *wqkv;  /* (L, 3C, C) */
    float *wo;    /* (L, C, C) */
    float *w1;    /* (L, 4C, C) */
    float *w2;    /* (L, C, 4C) */
    float *wlm;   /* (V, C) LM head */
} rg_params;

/* Activations of a forward pass at (B,T) that the backward reads, one allocation. What it can
 * recompute is not kept (docs/model.md, Memory): the norms' outputs (from the input and rstd),
 * the attention probabilities (inside attention_backward), the residual after attention (one more
 * Wo product from the kept attention output), the MLP's input to the squared ReLU (its backward
 * needs only the output), the embedding output (one more embedding_forward), the MLP's projection
 * (written straight into the residual stream) and the logits (crossentropy_backward needs only
 * probs). A chunk's rows of
 * a layer's fch_act are the scratch of the rest of its backward once the squared ReLU's backward
 * has read them, so a backward consumes its forward's activations: each backward needs a forward
 * of its own. */
#define RG_NUM_ACT_TENSORS 8
typedef struct rg_acts {
    float *ln1_rstd;   /* (L, B, T) */
    float *qkv;        /* (L, B, T, 3C) */
    float *att_stats;  /* (L, B, NH, T, 2) each attention row's max score and 1/sum (backend.h) */
    float *att_out;    /* (L, B, T, C) attention output, before the Wo projection */
    float *ln2_rstd;   /* (L, B, T) */
    float *fch_act;    /* (L, B, T, 4C) the MLP's hidden layer after the squared ReLU */
    float *residual3;  /* (L, B, T, C) residual after the MLP: input of the next layer */
    float *probs;      /* (B, T, V) */
    /* not in the allocation: the logits (B, T, V) of the last forward, in the scratch buffer
     * rg_grad_acts.wide, valid until the next backward */
    float *logits;
    /* losses (B, T) are kept separately below */
} rg_acts;

/* The scratch of a pass at (B,T), one allocation, reused by every layer from the last down (every
 * op overwrites the gradient it produces, so none is ever zeroed); the forward uses it for what it
 * does not keep. The layers run a chunk of whole sequences at a time (about 1 MiB of the MLP's
 * hidden layer), so wide holds one chunk. Roles per step: docs/model.md, Memory. */
#define RG_NUM_GRAD_ACT_TENSORS 2
typedef struct rg_grad_acts {
    float *dres;  /* (B, T, C) the residual stream's gradient, one buffer for the whole pass */
    float *wide;  /* max(chunk rows x 4C, B x T x V): a chunk's dfch, then its dqkv, dlogits; in
                   * the forward a chunk's attention-block norm output, its fch, the logits
                   * (and dres a chunk's residual after attention) */
} rg_grad_acts;

typedef struct rg_optim_config {
    float lr;            /* peak learning rate, 3e-4 */
    float min_lr_frac;   /* cosine decays to lr * min_lr_frac, 0.1 */
    int warmup_iters;    /* linear warm-up steps */
    float beta1, beta2, eps;
    float weight_decay;  /* on the matrices only, 0.1 */
    float grad_clip;     /* clip by global norm; <= 0 disables */
} rg_optim_config;

/* The GUIDE defaults: lr 3e-4, min 0.1, warm-up 100, 0.9, 0.999, 1e-8, 0.1, clip 1.0. */
rg_optim_config rg_optim_default(void);
/* Validates a loaded or given optimizer config: lr in (0, 10], min_lr_frac in [0, 1], warm-up in
 * 0..RG_MAX_STEPS, betas in [0, 1), eps in (0, 1], weight decay in [0, 10], a finite clip (<= 0
 * disables). Returns 0, or -1 with one line in err. */
int rg_optim_check(const rg_optim_config *oc, char *err, size_t err_len);
/* Learning rate at step (0-based) of max_steps: linear warm-up then cosine to lr*min_lr_frac. */
float rg_lr_at(const rg_optim_config *oc, int step, int max_steps);

typedef struct rg_model {
    rg_model_config cfg;
    size_t param_sizes[RG_NUM_PARAM_TENSORS];
    size_t num_params;
    size_t num_decay_params;  /* the trailing matrices; first = num_params - num_decay_params */
    float *params_memory;
    rg_params params;
    float *grads_memory;
    rg_params grads;
    float *m_memory;          /* AdamW first moment, (num_params) */
    float *v_memory;          /* AdamW second moment, (num_params) */
    int adam_t;               /* AdamW steps taken so far */

    int B, T;                 /* activation shape; 0 until rg_model_set_batch */
    size_t num_acts;
    float *acts_memory;
    rg_acts acts;
    float *grad_acts_memory;
    rg_grad_acts grad_acts;   /* slices of grad_acts_memory */
    float *losses;            /* (B, T) */
    int32_t *inputs;          /* (B, T) copy of the last forward's inputs */
    int32_t *targets;         /* (B, T) copy of the last forward's targets */
    float mean_loss;          /* of the last forward with targets, else -1 */
    int fwd_B, fwd_T;         /* shape of the last forward (<= B, T): the backward runs at it */
    int fwd_pending;          /* 1 from a forward with targets until the backward consumes it */
    int shares_params;        /* a replica (rg_model_init_replica): params_memory is another's */
} rg_model;

/* Number of parameters of a configuration (SIZE_MAX when it does not fit in size_t). */
size_t rg_model_num_params(const rg_model_config *cfg);
/* The bytes of each kind of buffer a training model allocates at (B,T), from the same sizes that
 * rg_model_set_batch allocates. Doubles, so absurd sizes cannot overflow. */
typedef struct rg_model_bytes {
    double params, grads, moments;  /* moments: AdamW's m and v */
    double acts, grad_acts;         /* activations; activation gradients (one layer's worth) */
    double batch;                   /* per-position losses, input and target tokens */
} rg_model_bytes;
void rg_model_bytes_at(const rg_model_config *cfg, int B, int T, rg_model_bytes *out);
/* Bytes a training run allocates at (B,T): the sum of rg_model_bytes_at. */
double rg_model_train_bytes(const rg_model_config *cfg, int B, int T);
/* Validates cfg (positive sizes within the RG_MAX_* bounds, C % NH == 0, a parameter count that
 * fits in size_t). Returns 0, or -1 with one line in err. */
int rg_model_config_check(const rg_model_config *cfg, char *err, size_t err_len);
/* Allocates parameters, gradients and moments; initialises weights from seed (normal(0, 0.02),
 * wo and w2 scaled by 1/sqrt(2L)). Returns 0, or -1 with one line in err. */
int rg_model_init(rg_model *m, const rg_model_config *cfg, uint64_t seed, char *err, size_t err_len);
/* (Re)sizes activations for batch B and sequence length T (T <= maxT). Returns 0 or -1. */
int rg_model_set_batch(rg_model *m, int B, int T, char *err, size_t err_len);
void rg_model_free(rg_model *m);
/* A replica of master for data parallelism: the same configuration and the same parameters (it
 * points at master's, which must outlive it), gradients of its own, no optimizer moments, no
 * activations until rg_model_set_batch. Returns 0, or -1 with one line in err. */
int rg_model_init_replica(rg_model *rep, const rg_model *master, char *err, size_t err_len);

/* Forward over inputs (B,T). With targets (B,T) it computes losses and mean_loss; with NULL it
 * computes logits and probs only (mean_loss = -1). B,T must not exceed rg_model_set_batch's. */
void rg_model_forward(rg_model *m, rg_ops *ops, const int32_t *inputs, const int32_t *targets,
                      int B, int T);
/* Zeroes the parameter gradients (activation gradients belong to each backward pass). */
void rg_model_zero_grad(rg_model *m);
/* Backward of the last forward (which must have had targets): accumulates into grads, overwrites
 * the scratch (so acts.logits too) and consumes the forward's activations (a second backward
 * needs another forward). */
void rg_model_backward(rg_model *m, rg_ops *ops);
/* The same when the last forward was one share of a batch of total_positions positions (B*T over
 * every share): each position's loss has weight 1/total_positions, so the shares' gradients add up
 * to the whole batch's. rg_model_backward is this with the forward's own B*T. */
void rg_model_backward_share(rg_model *m, rg_ops *ops, size_t total_positions);
/* Clips by global norm, then one AdamW step at learning rate lr. Returns the gradient norm before
 * clipping. */
float rg_model_update(rg_model *m, rg_ops *ops, const rg_optim_config *oc, float lr);

/* FLOPs of one training step (forward + backward) at (B,T), the one formula used everywhere:
 * 6 * (matrix params) * B * T + attention forward 4*B*NH*T^2*hs and backward twice that.
 * Matrix params are wqkv, wo, w1, w2 and wlm (not the embeddings). */
double rg_model_step_flops(const rg_model_config *cfg, int B, int T);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_MODEL_H */
