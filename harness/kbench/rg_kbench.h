/*
 * A small C API over Google Benchmark (the bridge is rg_kbench.cc, the only C++ file).
 *
 * A benchmark is a name, a C function that runs a batch of iterations of the measured work, and an
 * opaque user pointer. setup and teardown run around every timed loop, outside the timing. Work
 * sizes per iteration become rate counters in Google Benchmark's own output: flops_per_iter gives
 * the counter "flops" (FLOP/s in the JSON, e.g. "flops=35.6G/s" on the console), bytes_per_iter the
 * counter "bytes" (bytes/s, powers of 1000). Times are wall-clock (UseRealTime, so names end in
 * "/real_time"), because the measured work may run on several threads.
 *
 * Usage: rg_kbench_initialize(&argc, argv) first (it removes the --benchmark_* flags it knows),
 * parse the remaining arguments, rg_kbench_register(...) each benchmark, rg_kbench_run().
 */
#ifndef RG_KBENCH_H
#define RG_KBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A plain counter written beside the timings (e.g. "threads" = 2). */
typedef struct rg_kbench_counter {
    const char *name;
    double value;
} rg_kbench_counter;

#define RG_KBENCH_MAX_COUNTERS 4

typedef struct rg_kbench_def {
    const char *name;   /* unique benchmark name, copied at registration */
    const char *label;  /* shown beside the result; NULL for none; copied */
    /* Runs before each timed loop. Returns 0, or -1 with one line in err: the benchmark is then
     * reported with that error instead of a time. May be NULL. */
    int (*setup)(void *user, char *err, size_t err_len);
    /* Runs n iterations of the measured work. Required. */
    void (*run)(void *user, int64_t n);
    /* Runs after each timed loop whose setup succeeded. May be NULL. */
    void (*teardown)(void *user);
    void *user;               /* passed to setup, run and teardown; must outlive rg_kbench_run */
    int64_t batch;            /* iterations per run call; <= 0 means 1 */
    double flops_per_iter;    /* > 0 adds the rate counter "flops" */
    double bytes_per_iter;    /* > 0 adds the rate counter "bytes" */
    int num_counters;         /* at most RG_KBENCH_MAX_COUNTERS */
    rg_kbench_counter counters[RG_KBENCH_MAX_COUNTERS];
} rg_kbench_def;

/* Forwards argv to benchmark::Initialize, which removes the flags it recognises from argv and
 * updates *argc. argv[0] stays. */
void rg_kbench_initialize(int *argc, char **argv);
/* Adds a key/value pair to the "context" object of the JSON output. */
void rg_kbench_add_context(const char *key, const char *value);
/* Registers one benchmark (the definition is copied; user is not). */
void rg_kbench_register(const rg_kbench_def *def);
/* Runs every registered benchmark that --benchmark_filter selects, in registration order, and
 * writes the console and (with --benchmark_out) file reports. Returns the number run. */
size_t rg_kbench_run(void);
/* Releases Google Benchmark's global state. */
void rg_kbench_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* RG_KBENCH_H */
