/*
 * Data-parallel training: the B sequences of a step split over the ranks of a job (rg_gradsum)
 * and, inside each rank, over R replicas that run their forward and backward at the same time on
 * threads of their own, each with its own backend instance, activations, activation gradients and
 * parameter gradients. The gradients are summed (a parallel reduction inside the process, each
 * thread summing one slice of the parameters, then rg_gradsum across ranks), and gradient
 * clipping and AdamW run once on the sum, each thread updating its slice. Parameters and moments
 * stay single copies, held by the master model (replica 0).
 *
 * R = 1 on one rank is exactly the single-model step (bit for bit). With more replicas or ranks the
 * losses differ from it only by the order in which the gradients are summed.
 */
#ifndef RANDYGPT_REPLICAS_H
#define RANDYGPT_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/gradsum.h"
#include "randygpt/model.h"
#include "randygpt/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_dp_pool rg_dp_pool;

typedef struct rg_dp {
    int R;                 /* replicas in this process */
    rg_model **rep;        /* (R) rep[0] is the master model; the others are rg_model_init_replica */
    rg_ops *ops;           /* (R) one backend instance per replica, the caller's */
    const rg_gradsum *gs;  /* the ranks of the job */
    int B, T;              /* the global batch of a step, over every rank and replica */
    int share;             /* sequences per replica: B / (ranks * R) */
    int micro;             /* micro-batches each share runs in sequence, gradients accumulated */
    double *share_loss;    /* (R) each replica's mean loss over its micro-batches, this job */
    double reduce_s;       /* wall time spent summing gradients (replicas and ranks), accumulated */
    long steps;            /* steps taken by rg_dp_step */
    rg_dp_pool *pool;      /* the R-1 worker threads */
    /* the current job's arguments (written before the workers are woken) */
    const int32_t *in, *tg;
    int job_B;             /* sequences per replica in the current job */
    int job_sumsq;         /* the reduction job also computes the sums of squares */
    float lr, grad_scale;
    const rg_optim_config *oc;
    double *sumsq;         /* (R) each slice's sum of squares */
} rg_dp;

/* Checks that a batch of B sequences splits over ranks x replicas x micro-batches and that threads
 * split over the replicas (micro 0: the default of rg_dp_micro_batches, which always splits).
 * Returns 0, or -1 with one line in err naming the rule that failed. */
int rg_dp_check_split(int B, int ranks, int replicas, int micro, int threads, char *err,
                      size_t err_len);

/* Tokens of one pass that the default number of micro-batches aims at: the small preset's 8
 * sequences of 64. Measured on the small preset (`bench --micro-batches K`, alternating K): on a
 * 2-core AMD Zen 4 (1 MiB L2 per core) K = 4 was faster at 2 threads than K = 1 (63-71 against
 * 70-101 ms per step) and K = 2 or 8, on a 2-core Intel Xeon (2 MiB L2) K = 1, 2, 4 and 8 were
 * within its noise; peak RSS halves (57 to 28 MiB). */
#define RG_DP_PASS_TOKENS 512

/* The micro-batches of a share of `share` sequences of T tokens: `micro` when it is at least 1,
 * else (0: the default) share / s for the fewest sequences s that divide share and hold at least
 * RG_DP_PASS_TOKENS tokens (1 when the share holds fewer). */
int rg_dp_micro_batches(int micro, int share, int T);

/* Sets up R replicas of master for global batch (B,T) on the ranks of gs: creates replicas 1..R-1,
 * sizes every replica's activations for one micro-batch, (B / (ranks*R*micro), T), and starts R-1
 * threads. Each replica runs its share of a step as `micro` (0: rg_dp_micro_batches's default,
 * kept in dp->micro) forward and backward passes in sequence, accumulating the gradients: the
 * same step (up to the order of the sums) in a fraction of the activations, whose working set
 * then stays in cache from one op to the next. ops is (R), one instance each, created by the
 * caller (the same backend, threads / R threads each). Returns 0, or -1 with one line in err.
 * master must outlive dp. */
int rg_dp_init(rg_dp *dp, rg_model *master, rg_ops *ops, int R, int micro, int B, int T,
               const rg_gradsum *gs, char *err, size_t err_len);
void rg_dp_free(rg_dp *dp);

/* One training step. inputs, targets are the global batch (B,T), the same on every rank: this rank
 * trains its rows, split over its replicas. *loss: the mean loss over the whole batch. Returns 0,
 * or -1 with one line in err (a rank failed). */
int rg_dp_step(rg_dp *dp, const int32_t *inputs, const int32_t *targets, const rg_optim_config *oc,
               float lr, float *loss, char *err, size_t err_len);

/* *any = 1 when any rank passed a non-zero flag (a stop was asked for), else 0: every rank then
 * decides alike. Returns 0, or -1 with one line in err. */
int rg_dp_any(rg_dp *dp, int flag, int *any, char *err, size_t err_len);

/* Forward only, with targets: the mean loss of the global batch (B,T), sharded like a step.
 * Returns 0, or -1 with one line in err. */
int rg_dp_loss(rg_dp *dp, const int32_t *inputs, const int32_t *targets, float *loss, char *err,
               size_t err_len);

/* A 64-bit checksum (FNV-1a) of the parameters' bytes. */
uint64_t rg_dp_checksum(const rg_model *m);
/* Checks that every rank holds the same parameters (one small collective). Returns 0, or -1 with
 * one line in err: the weights diverged, or a rank failed. */
int rg_dp_check_same(rg_dp *dp, char *err, size_t err_len);

/* Bytes one process allocates for training with R replicas of `micro` micro-batches (0: the
 * default) at batch
 * (B_local,T), B_local its share of the job's batch: one model's parameters, gradients and
 * moments, plus per replica its activations and activation gradients at (B_local/(R*micro), T),
 * and for each replica after the first its own parameter gradients. */
double rg_dp_train_bytes(const rg_model_config *cfg, int B_local, int T, int R, int micro);

/* What each replica after the first adds to a process's memory at R >= 2 replicas (B_local % R
 * == 0), term by term, from the model's buffer sizes (rg_model_bytes_at): the growth of peak RSS
 * from 1 to R replicas, over R-1, is held against total.
 * Not counted, because the core cannot know them: the backend instance's own workspace (packed
 * panels, per-thread scratch) and the replica thread's stack and malloc arena. */
typedef struct rg_dp_replica_bytes {
    double param_grads;  /* its own parameter gradients (the parameters and moments are shared) */
    double acts;         /* R shares' activations and activation gradients at B_local/R, less one
                            model's at B_local (0 where every size is linear in B), over R-1 */
    double batch;        /* the same for the losses and token buffers */
    double total;
} rg_dp_replica_bytes;
void rg_dp_replica_cost(const rg_model_config *cfg, int B_local, int T, int R,
                        rg_dp_replica_bytes *out);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_REPLICAS_H */
