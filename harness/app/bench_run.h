/*
 * One `bench` run: a backend at one thread count, measured in child processes of its own, one per
 * repeat. A child (rg_bench_child) trains for warm-up + repeat x steps steps (the parent asks for
 * one repeat) and prints its measurements as one JSON line; the parent reads them back
 * (rg_bench_result_parse), folds the repeats together (rg_bench_result_add_round), adds what only
 * it knows (exit status, peak RSS, the FMA peak, MFU) and writes the RUN entry of bench.json
 * (docs/bench-format.md).
 */
#ifndef RANDYGPT_BENCH_RUN_H
#define RANDYGPT_BENCH_RUN_H

#include <stdio.h>

#include "backend_args.h"
#include "bench_json.h"
#include "randygpt/ops.h"

#define RG_BENCH_MAX_REPEAT 100
#define RG_BENCH_DEFAULT_SEED 1337
#define RG_BENCH_SYNTHETIC_V 67
/* The most ranks of one run whose peak RSS is kept one by one. */
#define RG_BENCH_MAX_RANKS 64

typedef struct rg_bench_op {
    int native;             /* the plugin runs it itself */
    double calls_per_step;
    double ms_per_step;
    double fraction;        /* of the mean step time */
} rg_bench_op;

typedef struct rg_bench_result {
    /* set by the parent */
    char backend[256];        /* the name, or the file name without .so of a path */
    char path[4096];          /* the file opened (the argument as given until the child says) */
    int threads;              /* per rank */
    int replicas;             /* per rank (--replicas); 1: op-level parallelism only */
    int ranks;                /* processes under mpirun; 1: no mpirun */
    int micro_batches;        /* passes of each replica's share (rg_dp_micro_batches) */
    int ok;
    const char *reason;       /* NULL, "signal", "timeout", "exit", "refused" or "output" */
    char error[1024];         /* one line when !ok */
    int exit_code;            /* -1 when the child died of a signal or was killed */
    char signal[32];          /* "" unless it died of a signal */
    double wall_s;            /* of all its children */
    int rounds;               /* children folded into this result (rg_bench_result_add_round) */
    long long peak_rss_bytes;     /* the largest process's (wait4) */
    long long peak_rss_sum_bytes; /* summed over the ranks (their own getrusage) */
    double speedup;           /* the backend's 1-thread, 1-replica, 1-rank step time over this one */
    double formula_bytes;     /* rg_dp_train_bytes of one process of this run */
    double peak_gflops;       /* at threads x ranks, from the same bench run */
    double mfu;
    /* measured by the child */
    char plugin_name[64];
    char describe[RG_DESCRIBE_LEN];
    char native_ops[1024];    /* "matmul_forward,..." (rg_ops_native_list) */
    int num_native_ops;
    int nrepeat;
    double repeat_step_ms[RG_BENCH_MAX_REPEAT];  /* (nrepeat) wall time of a repeat / steps */
    double step_ms_median, step_ms_min, step_ms_max;
    double tok_per_s, gflops;
    double loss_first, loss_last;
    rg_bench_op ops[RG_OP_COUNT];  /* replica 0's instance on rank 0 (the others run alike) */
    double other_ms_per_step;
    double reduce_ms_per_step;     /* summing the gradients over replicas and ranks (rg_dp) */
    double reduce_fraction;        /* of the mean step time */
    int nranks_rss;
    long long rank_peak_rss_bytes[RG_BENCH_MAX_RANKS];  /* (nranks_rss) each rank's own peak */
} rg_bench_result;

/* What a child measures. */
typedef struct rg_bench_child_config {
    const char *preset;
    int steps, warmup, repeat;
    unsigned long long seed;
    const char *data;         /* a text file, or NULL for synthetic tokens */
    int replicas;             /* data-parallel replicas of the step (0 counts as 1) */
    int micro_batches;        /* micro-batches of each replica's share (rg_dp_init; 0: default) */
} rg_bench_child_config;

/* Exit status of a child whose plugin loaded but whose create refused the configuration (a thread
 * count or an option it does not support): the run is "refused", not broken. */
#define RG_BENCH_EXIT_REFUSED 3

/* The child side of `bench --child`: joins the ranks of its job when mpirun started it, opens
 * cc->replicas instances of the backend of ba (ba->threads / replicas threads each), measures
 * rg_dp steps as `train` takes them, and rank 0 prints one JSON line on out. Returns 0;
 * RG_BENCH_EXIT_REFUSED or 1 with one line on stderr. */
int rg_bench_child(const rg_backend_args *ba, const rg_bench_child_config *cc, FILE *out);

/* Marks r as failed: reason is one of the strings above, error a printf-style line. */
void rg_bench_result_fail(rg_bench_result *r, const char *reason, const char *fmt, ...);

/* Fills the child's fields of r from its JSON line. Returns 0, or -1 with one line in err. */
int rg_bench_result_parse(rg_bench_result *r, const char *line, char *err, size_t err_len);

/* r as a RUN object of bench.json (docs/bench-format.md); child_only: only the child's fields (the
 * line a child prints). NULL when out of memory. */
json_t *rg_bench_result_json(const rg_bench_result *r, int child_only);

/* Folds the result `one` of one more round's child (one repeat of the same backend and thread
 * count) into r, which holds the rounds before it: a failure in any round fails the run; otherwise
 * its repeat is appended, op times summed, peak RSS and wall time combined. round 0 copies. */
void rg_bench_result_add_round(rg_bench_result *r, const rg_bench_result *one, int round);

/* After the last round: step time median/min/max over the repeats, tok/s and GFLOP/s at the
 * median, op times per step averaged over the repeats. */
void rg_bench_result_finish_rounds(rg_bench_result *r);

/* Median of n values (sorted copy; the mean of the middle two when n is even). */
double rg_median(const double *x, int n);

#endif /* RANDYGPT_BENCH_RUN_H */
