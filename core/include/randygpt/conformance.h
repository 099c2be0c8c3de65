/*
 * Conformance suite: checks a backend against the core's reference kernels and reference model.
 * One implementation, used by `randygpt check` and by tests/test_conformance.c.
 *
 * Three parts, each a list of checks with a measured error, a tolerance and a verdict:
 *  - op:    every op case (op_case.h, the ones randygpt-kbench times) through rg_ops, so an
 *           optional op the plugin does not provide runs the reference and is marked not native;
 *           compared with rg_ref_* on the same seeded random inputs at the shapes of the chosen
 *           presets and at odd shapes. Error = max|x - ref| / max(1e-6, max|ref|) over one output
 *           buffer, against a bound the case derives from the shape. Inputs must come back
 *           unchanged. Outputs that
 *           the contract overwrites (forward outputs, activation gradients) start as different
 *           garbage on the two sides, so an element left unwritten or added into fails; gradients it
 *           accumulates (dweight, dwte, dwpe, rmsnorm's dinp) start as the same random values on
 *           both sides, so one overwritten instead of added into fails.
 *  - step:  one training step of the tiny preset on a fixed batch: loss, every parameter gradient
 *           tensor, the gradient norm, and the parameters after the AdamW update (as the update's
 *           error, see conformance.c), against the reference model.
 *  - train: RG_CONF_TRAIN_STEPS steps of the tiny preset on fixed synthetic batches: the losses
 *           against the reference's, and a second run with the backend giving identical losses.
 */
#ifndef RANDYGPT_CONFORMANCE_H
#define RANDYGPT_CONFORMANCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "randygpt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_CONF_TRAIN_STEPS 50

/* One check of the suite. */
typedef struct rg_conf_result {
    const char *part;     /* "op", "step", "train", or "run" (a crash, a hang, a refused instance) */
    char check[16];       /* the class: "shapes", "values", "memory", "threads", "repeat",
                           * "instances", "model", "replicas" */
    char name[40];        /* op name ("matmul_backward"), or "model" for step/train checks */
    char output[24];      /* the compared output: "dweight", "grad wqkv", "loss", ... */
    char shape[96];       /* e.g. "small qkv N=2048 C=128 OC=384" */
    int threads;          /* of the instance that ran it */
    int native;           /* 1 the backend runs it itself, 0 reference fallback, -1 not an op */
    double error;         /* normalised error as described above (INFINITY for NaN/Inf output) */
    double tolerance;
    char bound[40];       /* how the tolerance was derived, e.g. "32u*sqrt(C=128)" (u = 2^-24) */
    char hint[128];       /* failures: the likely cause, e.g. "wrong only for T > 64: key tiling?" */
    int pass;
} rg_conf_result;

/* Receives each check as soon as it is measured, and free-text notes (e.g. a capped batch). */
typedef struct rg_conf_report {
    void (*result)(void *user, const rg_conf_result *r);
    void (*note)(void *user, const char *line);  /* may be NULL */
    void *user;
} rg_conf_report;

/* How much the suite runs (see docs/writing-a-backend.md for the list). */
typedef enum rg_conf_level {
    RG_CONF_QUICK,    /* a few seconds: the tiny preset, a few stress shapes, threads 1 and 3 */
    RG_CONF_DEFAULT,  /* every class of check, well under a minute for the bundled backends */
    RG_CONF_THOROUGH, /* every T from 1 to 256, every preset at its full batch, more seeds */
} rg_conf_level;

typedef struct rg_conf_options {
    rg_backend_config backend;  /* threads and key=value options the backend instance gets */
    /* Presets whose shapes the op checks use: a comma-separated list of names ("tiny,small"),
     * or NULL for every preset (the tiny one at RG_CONF_QUICK). Batches of big presets are
     * capped (and a note says so) but at RG_CONF_THOROUGH. */
    const char *presets;
    rg_conf_level level;
    int ops;                    /* non-zero: the op checks */
    int model;                  /* non-zero: the step and train checks */
    uint64_t seed;              /* seeds every random input */
    double timeout_s;           /* a group whose child reports nothing for this long has hung */
    int isolate;                /* non-zero: every group runs in a child process (fork) */
    /* > 1: the model checks run once more through R replicas (replicas.h), each on its own
     * instance of num_threads / R threads, all at once; num_threads must be a multiple of R. */
    int replicas;
} rg_conf_options;

#define RG_CONF_MAX_REPLICAS 16

/* The default level, every preset, 1 thread, no backend options, a fixed seed, a 30 s timeout,
 * isolated, no replicas. */
rg_conf_options rg_conf_default_options(void);

/* Checks that replicas (1 to RG_CONF_MAX_REPLICAS) split threads. Returns 0, or -1 with one line
 * in err naming the rule that failed. */
int rg_conf_check_replicas(int replicas, int threads, char *err, size_t err_len);

/* Checks a presets list as rg_conf_options.presets takes it. Returns 0, or -1 with one line in err
 * naming an unknown preset. */
int rg_conf_check_presets(const char *presets, char *err, size_t err_len);

/* Runs the suite on a backend table. Each group of checks runs in a child process (unless
 * isolate is 0) with its own instance: a crash, a fault on a guard page or a hang in the plugin is
 * a failing check naming the op and shape it was running, and the run goes on. Returns the number
 * of failed checks, or -1 with one line in err when the run could not happen (an unknown preset,
 * the instance could not be created at the requested thread count, out of memory). */
int rg_conformance_run(const rg_backend *table, const rg_conf_options *opt,
                       const rg_conf_report *report, char *err, size_t err_len);

/* Creates one instance of table with cfg in a child process and writes its describe line into
 * describe. When fallback_to_one is set and the instance refuses cfg->num_threads, tries 1
 * thread. Returns the thread count the instance took, or -1 with one line in err. */
int rg_conf_probe(const rg_backend *table, const rg_backend_config *cfg, int fallback_to_one,
                  char *describe, size_t describe_len, char *err, size_t err_len);

/* The table printed by `randygpt check --verbose`: a header line, then one line per check. */
void rg_conf_print_header(FILE *f);
void rg_conf_print_result(FILE *f, const rg_conf_result *r);
/* One line per failure: op, output, shape, check, threads, error against tolerance and its bound,
 * and the hint. */
void rg_conf_print_failure(FILE *f, const rg_conf_result *r);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_CONFORMANCE_H */
