/* Data-parallel training step: replicas on threads, gradients summed, one update (replicas.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime in strict C11 */

#include "randygpt/replicas.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "randygpt/text.h"

/* ---- the in-process rg_gradsum: one rank, nothing to exchange ---- */

static int local_sum_floats(void *ctx, float *buf, size_t n, char *err, size_t err_len) {
    (void)ctx, (void)buf, (void)n, (void)err, (void)err_len;
    return 0;
}

static int local_sum_doubles(void *ctx, double *buf, size_t n, char *err, size_t err_len) {
    (void)ctx, (void)buf, (void)n, (void)err, (void)err_len;
    return 0;
}

static int local_agree(void *ctx, uint64_t value, int *same, char *err, size_t err_len) {
    (void)ctx, (void)value, (void)err, (void)err_len;
    *same = 1;
    return 0;
}

rg_gradsum rg_gradsum_local(void) {
    rg_gradsum gs = {0, 1, NULL, local_sum_floats, local_sum_doubles, local_agree};
    return gs;
}

/* ---- the worker threads: run one job on every replica, replica 0 on the caller's thread ---- */

typedef void (*dp_job)(rg_dp *dp, int r);
struct worker_arg;

struct rg_dp_pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long generation;  /* bumped for each job */
    int pending;               /* workers still running the current job */
    int quit;
    dp_job job;
    rg_dp *dp;
    int started;               /* threads created */
    pthread_t *threads;        /* */
    struct worker_arg *args;   /* */
};

/* The thread's argument: its pool and replica. */
typedef struct worker_arg {
    rg_dp_pool *pool;
    int r;  /* 1 .. R-1 */
} worker_arg;

static void *worker_loop(void *arg) {
    worker_arg *wa = arg;
    rg_dp_pool *pool = wa->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->generation == seen && !pool->quit) pthread_cond_wait(&pool->go, &pool->mu);
        if (pool->quit) break;
        seen = pool->generation;
        dp_job job = pool->job;
        pthread_mutex_unlock(&pool->mu);
        job(pool->dp, wa->r);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void run_all(rg_dp *dp, dp_job job) {
    rg_dp_pool *pool = dp->pool;
    if (dp->R == 1) {
        job(dp, 0);
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->job = job;
    pool->pending = dp->R - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->go);
    pthread_mutex_unlock(&pool->mu);
    job(dp, 0);
    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0) pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}

static void pool_stop(rg_dp_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pool->quit = 1;
    pthread_cond_broadcast(&pool->go);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->started; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->go);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mu);
    free(pool->threads);
    free(pool->args);
    free(pool);
}

static rg_dp_pool *pool_start(rg_dp *dp, char *err, size_t err_len) {
    rg_dp_pool *pool = calloc(1, sizeof *pool);
    int n = dp->R - 1;
    if (!pool) goto oom;
    pool->dp = dp;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->go, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->threads = calloc((size_t)(n > 0 ? n : 1), sizeof *pool->threads);
    pool->args = calloc((size_t)(n > 0 ? n : 1), sizeof *pool->args);
    if (!pool->threads || !pool->args) {
        pool_stop(pool);
        goto oom;
    }
    for (int i = 0; i < n; i++) {
        pool->args[i] = (worker_arg){pool, i + 1};
        if (pthread_create(&pool->threads[i], NULL, worker_loop, &pool->args[i]) != 0) {
            pool_stop(pool);
            rg_errf(err, err_len, "cannot start the thread of replica %d", i + 1);
            return NULL;
        }
        pool->started++;
    }
    return pool;
oom:
    rg_errf(err, err_len, "out of memory starting %d replica threads", n);
    return NULL;
}

/* ---- the jobs ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The first row of replica r's sequences in the global batch. */
static size_t first_row(const rg_dp *dp, int r) {
    return ((size_t)dp->gs->rank * dp->R + (size_t)r) * (size_t)dp->job_B;
}

/* Slice r of R of the n parameters, its ends on 16-float (cache-line) boundaries so that no two
 * threads write one line. */
static void slice_of(size_t n, int r, int R, size_t *lo, size_t *hi) {
    *lo = r == 0 ? 0 : n * (size_t)r / (size_t)R / 16 * 16;
    *hi = r == R - 1 ? n : n * (size_t)(r + 1) / (size_t)R / 16 * 16;
}

/* Replica r's forward over micro-batch k of its share (with the backward when `backward`): the
 * micro-batch's mean loss is added into share_loss[r] with weight 1/micro. */
static void forward_micro(rg_dp *dp, int r, int k, int backward) {
    int mb = dp->job_B / dp->micro;
    size_t off = (first_row(dp, r) + (size_t)k * mb) * (size_t)dp->T;
    rg_model *m = dp->rep[r];
    rg_model_forward(m, &dp->ops[r], dp->in + off, dp->tg + off, mb, dp->T);
    if (m->mean_loss < 0.0f || dp->share_loss[r] < 0.0) {
        dp->share_loss[r] = -1.0; /* failed: batch_mean_loss says so */
    } else {
        dp->share_loss[r] += m->mean_loss / (double)dp->micro;
    }
    if (backward) rg_model_backward_share(m, &dp->ops[r], (size_t)dp->B * dp->T);
}

static void job_forward(rg_dp *dp, int r) {
    dp->share_loss[r] = 0.0;
    for (int k = 0; k < dp->micro; k++) forward_micro(dp, r, k, 0);
}

static void job_forward_backward(rg_dp *dp, int r) {
    rg_model_zero_grad(dp->rep[r]);
    dp->share_loss[r] = 0.0;
    for (int k = 0; k < dp->micro; k++) forward_micro(dp, r, k, 1);
}

/* sumsq[r] = sum of squares of slice r of the master's gradients, on replica r's instance. */
static void slice_sum_squares(rg_dp *dp, int r, size_t lo, size_t hi) {
    rg_ops *ops = &dp->ops[r];
    double t0 = ops->timing ? now_s() : 0.0;
    dp->sumsq[r] = hi > lo ? ops->k.sum_squares(ops->ctx, dp->rep[0]->grads_memory + lo, hi - lo)
                           : 0.0;
    if (ops->timing) {
        ops->seconds[RG_OP_SUM_SQUARES] += now_s() - t0;
        ops->calls[RG_OP_SUM_SQUARES]++;
    }
}

/* The master's gradients += every other replica's, over slice r, in replica order. */
static void job_reduce(rg_dp *dp, int r) {
    size_t lo, hi;
    slice_of(dp->rep[0]->num_params, r, dp->R, &lo, &hi);
    float *sum = dp->rep[0]->grads_memory;
    for (int k = 1; k < dp->R; k++) {
        const float *g = dp->rep[k]->grads_memory;
        for (size_t i = lo; i < hi; i++) sum[i] += g[i];
    }
    if (dp->job_sumsq) slice_sum_squares(dp, r, lo, hi);
}

static void job_sum_squares(rg_dp *dp, int r) {
    size_t lo, hi;
    slice_of(dp->rep[0]->num_params, r, dp->R, &lo, &hi);
    slice_sum_squares(dp, r, lo, hi);
}

/* AdamW on slice r (split where the embeddings, without weight decay, end). */
static void adamw_range(rg_dp *dp, int r, size_t lo, size_t hi, float weight_decay) {
    if (hi <= lo) return;
    rg_model *m = dp->rep[0];
    rg_ops *ops = &dp->ops[r];
    const rg_optim_config *oc = dp->oc;
    double t0 = ops->timing ? now_s() : 0.0;
    ops->k.adamw_step(ops->ctx, m->params_memory + lo, m->m_memory + lo, m->v_memory + lo,
                      m->grads_memory + lo, hi - lo, dp->lr, oc->beta1, oc->beta2, oc->eps,
                      weight_decay, dp->grad_scale, m->adam_t);
    if (ops->timing) {
        ops->seconds[RG_OP_ADAMW] += now_s() - t0;
        ops->calls[RG_OP_ADAMW]++;
    }
}

static void job_adamw(rg_dp *dp, int r) {
    size_t lo, hi;
    rg_model *m = dp->rep[0];
    size_t n_embed = m->num_params - m->num_decay_params;
    slice_of(m->num_params, r, dp->R, &lo, &hi);
    adamw_range(dp, r, lo, hi < n_embed ? hi : n_embed, 0.0f);
    adamw_range(dp, r, lo > n_embed ? lo : n_embed, hi, dp->oc->weight_decay);
}

/* ---- the public steps ---- */

int rg_dp_micro_batches(int micro, int share, int T) {
    if (micro >= 1 || share < 1) return micro >= 1 ? micro : 1;
    int s = 1;
    while (s < share && (share % s != 0 || (long)s * T < RG_DP_PASS_TOKENS)) s++;
    return share / s;
}

int rg_dp_check_split(int B, int ranks, int replicas, int micro, int threads, char *err,
                      size_t err_len) {
    if (replicas < 1 || ranks < 1) {
        rg_errf(err, err_len, "--replicas must be at least 1 (got %d)", replicas);
        return -1;
    }
    if (micro < 0) {
        rg_errf(err, err_len, "--micro-batches must be at least 1 (got %d)", micro);
        return -1;
    }
    if (threads % replicas != 0) {
        rg_errf(err, err_len, "--threads %d does not split over %d replicas: give a multiple of "
                "--replicas", threads, replicas);
        return -1;
    }
    if (B % (ranks * replicas) != 0) {
        if (ranks > 1)
            rg_errf(err, err_len, "batch %d does not split over %d ranks x %d replicas: give a "
                    "batch that is a multiple of %d", B, ranks, replicas, ranks * replicas);
        else
            rg_errf(err, err_len, "batch %d does not split over %d replicas: give a batch that is "
                    "a multiple of --replicas", B, replicas);
        return -1;
    }
    if (micro > 0 && B / (ranks * replicas) % micro != 0) { /* the default (0) always divides */
        rg_errf(err, err_len, "a share of %d sequences does not split into %d micro-batches: give "
                "a batch that is a multiple of %d", B / (ranks * replicas), micro,
                ranks * replicas * micro);
        return -1;
    }
    return 0;
}

void rg_dp_free(rg_dp *dp) {
    if (dp->pool) pool_stop(dp->pool);
    if (dp->rep) {
        for (int r = 1; r < dp->R; r++) {
            if (dp->rep[r]) rg_model_free(dp->rep[r]);
            free(dp->rep[r]);
        }
    }
    free(dp->rep);
    free(dp->sumsq);
    free(dp->share_loss);
    memset(dp, 0, sizeof *dp);
}

int rg_dp_init(rg_dp *dp, rg_model *master, rg_ops *ops, int R, int micro, int B, int T,
               const rg_gradsum *gs, char *err, size_t err_len) {
    memset(dp, 0, sizeof *dp);
    if (rg_dp_check_split(B, gs->size, R, micro, R, err, err_len) != 0) return -1;
    dp->R = R;
    dp->micro = rg_dp_micro_batches(micro, B / (gs->size * R), T);
    dp->ops = ops;
    dp->gs = gs;
    dp->B = B;
    dp->T = T;
    dp->share = B / (gs->size * R);
    dp->rep = calloc((size_t)R, sizeof *dp->rep);
    dp->sumsq = calloc((size_t)R, sizeof *dp->sumsq);
    dp->share_loss = calloc((size_t)R, sizeof *dp->share_loss);
    if (!dp->rep || !dp->sumsq || !dp->share_loss) {
        rg_errf(err, err_len, "out of memory setting up %d replicas", R);
        goto fail;
    }
    dp->rep[0] = master;
    for (int r = 1; r < R; r++) {
        dp->rep[r] = calloc(1, sizeof *dp->rep[r]);
        if (!dp->rep[r] || rg_model_init_replica(dp->rep[r], master, err, err_len) != 0) {
            if (!dp->rep[r]) rg_errf(err, err_len, "out of memory setting up replica %d", r);
            goto fail;
        }
    }
    for (int r = 0; r < R; r++) {
        if (rg_model_set_batch(dp->rep[r], dp->share / dp->micro, T, err, err_len) != 0) goto fail;
    }
    if (!(dp->pool = pool_start(dp, err, err_len))) goto fail;
    return 0;
fail:
    rg_dp_free(dp);
    return -1;
}

/* Sums the replicas' mean losses of the current job over every rank: the mean of the whole batch
 * (every share has the same number of positions). */
static int batch_mean_loss(rg_dp *dp, float *loss, char *err, size_t err_len) {
    double sum = 0.0;
    for (int r = 0; r < dp->R; r++) {
        if (dp->share_loss[r] < 0.0) {
            rg_errf(err, err_len, "replica %d's forward failed", r);
            return -1;
        }
        sum += dp->share_loss[r];
    }
    if (dp->gs->size > 1 && dp->gs->sum_doubles(dp->gs->ctx, &sum, 1, err, err_len)) return -1;
    *loss = (float)(sum / (double)(dp->R * dp->gs->size));
    return 0;
}

int rg_dp_any(rg_dp *dp, int flag, int *any, char *err, size_t err_len) {
    double f = flag != 0;
    if (dp->gs->size > 1 && dp->gs->sum_doubles(dp->gs->ctx, &f, 1, err, err_len)) return -1;
    *any = f > 0.0;
    return 0;
}

int rg_dp_step(rg_dp *dp, const int32_t *inputs, const int32_t *targets, const rg_optim_config *oc,
               float lr, float *loss, char *err, size_t err_len) {
    rg_model *m = dp->rep[0];
    dp->in = inputs;
    dp->tg = targets;
    dp->job_B = dp->share;
    dp->oc = oc;
    dp->lr = lr;
    run_all(dp, job_forward_backward);

    /* one sum of the gradients: over the replicas in slices, then over the ranks */
    double t0 = now_s();
    int ranks = dp->gs->size > 1;
    dp->job_sumsq = !ranks;
    if (dp->R > 1 || !ranks) run_all(dp, job_reduce);
    if (ranks) {
        if (dp->gs->sum_floats(dp->gs->ctx, m->grads_memory, m->num_params, err, err_len) != 0)
            return -1;
        run_all(dp, job_sum_squares);
    }
    dp->reduce_s += now_s() - t0;

    /* clip by the global norm, then AdamW once, each thread its slice */
    double ss = 0.0;
    for (int r = 0; r < dp->R; r++) ss += dp->sumsq[r];
    float norm = (float)sqrt(ss);
    dp->grad_scale = oc->grad_clip > 0.0f && norm > oc->grad_clip ? oc->grad_clip / norm : 1.0f;
    m->adam_t++;
    run_all(dp, job_adamw);
    dp->steps++;
    return batch_mean_loss(dp, loss, err, err_len);
}

int rg_dp_loss(rg_dp *dp, const int32_t *inputs, const int32_t *targets, float *loss, char *err,
               size_t err_len) {
    dp->in = inputs;
    dp->tg = targets;
    dp->job_B = dp->share;
    run_all(dp, job_forward);
    return batch_mean_loss(dp, loss, err, err_len);
}

uint64_t rg_dp_checksum(const rg_model *m) {
    const unsigned char *p = (const unsigned char *)m->params_memory;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < m->num_params * sizeof(float); i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int rg_dp_check_same(rg_dp *dp, char *err, size_t err_len) {
    int same = 1;
    if (dp->gs->agree(dp->gs->ctx, rg_dp_checksum(dp->rep[0]), &same, err, err_len) != 0) return -1;
    if (!same) {
        rg_errf(err, err_len, "the weights differ between the ranks after step %d (checksums "
                "disagree): the ranks diverged", dp->rep[0]->adam_t);
        return -1;
    }
    return 0;
}

double rg_dp_train_bytes(const rg_model_config *cfg, int B_local, int T, int R, int micro) {
    /* params, m and v once; each replica its gradients, activations and their gradients */
    double shared = 3.0 * 4.0 * (double)rg_model_num_params(cfg);
    micro = rg_dp_micro_batches(micro, B_local / R, T);
    return R * rg_model_train_bytes(cfg, B_local / (R * micro), T) - (R - 1) * shared;
}

void rg_dp_replica_cost(const rg_model_config *cfg, int B_local, int T, int R,
                        rg_dp_replica_bytes *out) {
    rg_model_bytes whole, share;
    rg_model_bytes_at(cfg, B_local, T, &whole);
    rg_model_bytes_at(cfg, B_local / R > 0 ? B_local / R : 1, T, &share);
    /* R shares against one model at B_local, spread over the R-1 replicas after the first */
    const double extra = R > 1 ? R - 1 : 1;
    out->param_grads = whole.grads;
    out->acts = (R * (share.acts + share.grad_acts) - (whole.acts + whole.grad_acts)) / extra;
    out->batch = (R * share.batch - whole.batch) / extra;
    out->total = out->param_grads + out->acts + out->batch;
}
