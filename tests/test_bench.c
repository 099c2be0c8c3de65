/* `randygpt bench`: a real run with the single backend, a plugin that crashes and one that hangs,
 * checked against docs/bench-format.md; bad usage; and the pieces it is built from (JSON reader,
 * child processes with limits, median, FMA peak). Timings are never asserted, only that they exist
 * and are positive. */
#define _GNU_SOURCE /* mkdtemp */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/bench_bandwidth.h"
#include "app/bench_contend.h"
#include "app/bench_json.h"
#include "app/bench_load.h"
#include "app/bench_peak.h"
#include "app/bench_proc.h"
#include "app/bench_run.h"
#include "randygpt/ops.h"
#include "run_support.h"
#include "ranks/ranks.h"

/* Runs the randygpt binary with args (NULL-terminated after the command); returns its exit status,
 * or -1 if it did not exit normally. Its output goes to the test's log file in tmpdir. */
static int run_randygpt(const char *log, double timeout_s, ...) {
    char *argv[64];
    int n = 0;
    argv[n++] = RG_TEST_BIN;
    va_list ap;
    va_start(ap, timeout_s);
    for (char *a; n < 63 && (a = va_arg(ap, char *)) != NULL;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    rg_proc_result r;
    char err[256];
    if (rg_proc_run(argv, log, timeout_s, 1 << 20, &r, err, sizeof err) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    free(r.out);
    return r.end == RG_PROC_EXITED ? r.exit_code : -1;
}

static char *make_tmpdir(const char *name) {
    char *dir = malloc(4096);
    assert_non_null(dir);
    snprintf(dir, 4096, "%s/%s-XXXXXX", RG_TEST_TMPDIR, name);
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* The one run folder bench made under out/MACHINE. */
static void find_run_dir(const char *out, const char *machine, char *dir, size_t n) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%s/%s", out, machine);
    DIR *d = opendir(parent);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        snprintf(dir, n, "%s/%s", parent, e->d_name);
        found++;
    }
    closedir(d);
    assert_int_equal(found, 1);
}

/* bench.json of the one run folder under out/testbox (dir: that folder). */
static json_t *load_bench_json(const char *out, char *dir, size_t n) {
    char path[4500];
    json_error_t jerr;
    find_run_dir(out, "testbox", dir, n);
    snprintf(path, sizeof path, "%s/bench.json", dir);
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) fail_msg("%s: %s", path, jerr.text);
    return j;
}

/* The number v, or dflt when v is missing or not a number. */
static double num_or(const json_t *v, double dflt) { return json_is_number(v) ? json_number_value(v) : dflt; }

static const json_t *run_of(const json_t *runs, const char *backend) {
    for (int i = 0; i < (int)json_array_size(runs); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(runs, i), "backend")), backend))
            return json_array_get(runs, i);
    fail_msg("no run of backend %s", backend);
    return NULL;
}

static void assert_null_field(const json_t *j, const char *key) {
    const json_t *v = json_object_get(j, key);
    assert_non_null(v); /* present */
    assert_true(json_is_null(v));
}

static void assert_positive(const json_t *j, const char *key) {
    double v = num_or(json_object_get(j, key), NAN);
    if (!(v > 0.0 && isfinite(v))) fail_msg("%s is %g, expected a positive number", key, v);
}

/* single succeeds, crash dies of SIGSEGV, hang is killed at the time limit; everything written.
 * Two rounds: single runs twice, the failed ones only once. */
static void test_bench_run_with_failing_plugins(void **state) {
    char *out = make_tmpdir("bench");
    char log[4200], crash[4200], hang[4200], backends[9000];
    snprintf(log, sizeof log, "%s/bench.log", out);
    snprintf(crash, sizeof crash, "%s/crash.so", RG_TEST_FIXTURE_DIR);
    snprintf(hang, sizeof hang, "%s/hang.so", RG_TEST_FIXTURE_DIR);
    snprintf(backends, sizeof backends, "single,%s,%s", crash, hang);
    int rc = run_randygpt(log, 120.0, "bench", "--preset", "tiny", "--steps", "2", "--warmup", "1",
                          "--repeat", "2", "--threads", "1", "--backend-dir", RG_TEST_PLUGIN_DIR,
                          "--backends", backends, "--timeout", "20", "--machine", "testbox",
                          "--bandwidth-mib", "8", "--report-script", "/nonexistent/report.py",
                          "--out", out, NULL);
    /* Some runs failed: exit 1, but the results are written. */
    assert_int_equal(rc, 1);

    char dir[4400], path[4500];
    json_t *j = load_bench_json(out, dir, sizeof dir);

    assert_string_equal(json_string_value(json_object_get(j, "schema")), "randygpt-bench/2");
    const json_t *machine = json_object_get(j, "machine");
    assert_string_equal(json_string_value(json_object_get(machine, "slug")), "testbox");
    assert_true(num_or(json_object_get(machine, "cpus"), 0) >= 1);
    /* family and model: an integer, or null where /proc/cpuinfo has none (not on x86) */
    const json_t *family = json_object_get(machine, "cpu_family");
    assert_true(json_is_integer(family) || json_is_null(family));
    assert_true(json_is_integer(json_object_get(machine, "cpu_model_number")) ||
                json_is_null(json_object_get(machine, "cpu_model_number")));
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "build"), "compiler")));
    const json_t *config = json_object_get(j, "config");
    assert_string_equal(json_string_value(json_object_get(config, "preset")), "tiny");
    assert_int_equal((int)num_or(json_object_get(config, "B"), 0), 16);
    assert_int_equal((int)num_or(json_object_get(config, "T"), 0), 32);
    assert_int_equal((int)num_or(json_object_get(config, "V"), 0), RG_BENCH_SYNTHETIC_V);
    assert_string_equal(json_string_value(json_object_get(config, "data")), "synthetic");
    assert_positive(config, "step_flops");

    /* One peak entry per thread count. */
    const json_t *by = json_object_get(json_object_get(j, "peak"), "by_threads");
    assert_non_null(by);
    assert_int_equal((int)json_array_size(by), 1);
    assert_int_equal((int)num_or(json_object_get(json_array_get(by, 0), "threads"), 0), 1);
    assert_positive(json_array_get(by, 0), "gflops");
    /* measured before the rounds, between them and after: repeat + 1 samples; the best counts */
    const json_t *samples = json_object_get(json_array_get(by, 0), "samples");
    assert_int_equal((int)json_array_size(samples), 3);
    double best = 0.0;
    for (int k = 0; k < (int)json_array_size(samples); k++) best = fmax(best, num_or(json_array_get(samples, k), 0));
    assert_float_equal(best, num_or(json_object_get(json_array_get(by, 0), "gflops"), 0), 0.0);
    assert_int_equal((int)num_or(json_object_get(config, "contend"), -1), 0);
    const json_t *bw = json_object_get(j, "bandwidth");
    assert_int_equal((int)num_or(json_object_get(bw, "array_bytes"), 0), 8 << 20);
    assert_int_equal((int)json_array_size(json_object_get(bw, "by_threads")), 1);
    assert_positive(json_array_get(json_object_get(bw, "by_threads"), 0), "gbps");

    /* One run per (backend, threads), in the order given. */
    const json_t *runs = json_object_get(j, "runs");
    assert_non_null(runs);
    assert_true(json_is_array(runs));
    assert_int_equal((int)json_array_size(runs), 3);
    const char *order[] = {"single", "crash", "hang"};
    for (int i = 0; i < 3; i++) {
        const json_t *r = json_array_get(runs, i);
        assert_string_equal(json_string_value(json_object_get(r, "backend")), order[i]);
        assert_int_equal((int)num_or(json_object_get(r, "threads"), 0), 1);
    }

    const json_t *single = run_of(runs, "single");
    assert_string_equal(json_string_value(json_object_get(single, "status")), "ok");
    assert_null_field(single, "reason");
    assert_int_equal((int)num_or(json_object_get(single, "exit_code"), -1), 0);
    const json_t *step = json_object_get(single, "step_ms");
    assert_positive(step, "median");
    assert_true(num_or(json_object_get(step, "min"), NAN) <= num_or(json_object_get(step, "median"), NAN));
    assert_true(num_or(json_object_get(step, "max"), NAN) >= num_or(json_object_get(step, "median"), NAN));
    const json_t *reps = json_object_get(single, "repeat_step_ms");
    assert_int_equal((int)json_array_size(reps), 2);
    double r0 = num_or(json_array_get(reps, 0), NAN), r1 = num_or(json_array_get(reps, 1), NAN);
    assert_float_equal(num_or(json_object_get(step, "median"), NAN), (r0 + r1) / 2, 1e-9);
    assert_float_equal(num_or(json_object_get(step, "min"), NAN), fmin(r0, r1), 1e-9);
    assert_float_equal(num_or(json_object_get(step, "max"), NAN), fmax(r0, r1), 1e-9);
    assert_positive(single, "tok_per_s");
    assert_positive(single, "gflops");
    assert_positive(single, "peak_gflops");
    assert_positive(single, "mfu");
    assert_positive(single, "peak_rss_bytes");
    assert_positive(single, "loss_first");
    assert_true(strlen(json_string_value(json_object_get(single, "describe"))) > 0);
    assert_string_equal(json_string_value(json_object_get(single, "plugin_name")), "single");
    /* single runs every op natively; the op table is complete and was called. */
    assert_int_equal((int)json_array_size(json_object_get(single, "native_ops")), RG_OP_COUNT);
    const json_t *ops = json_object_get(single, "ops");
    assert_int_equal((int)json_array_size(ops), RG_OP_COUNT);
    for (int k = 0; k < RG_OP_COUNT; k++) {
        const json_t *o = json_array_get(ops, k);
        assert_string_equal(json_string_value(json_object_get(o, "op")), rg_op_name((rg_op_kind)k));
        assert_true(json_is_true(json_object_get(o, "native")));
    }
    assert_positive(json_array_get(ops, RG_OP_MATMUL_FORWARD), "calls_per_step");
    assert_positive(json_array_get(ops, RG_OP_MATMUL_FORWARD), "ms_per_step");
    assert_true(num_or(json_object_get(single, "other_ms_per_step"), -1) >= 0.0);

    const json_t *cr = run_of(runs, "crash");
    assert_string_equal(json_string_value(json_object_get(cr, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(cr, "reason")), "signal");
    assert_string_equal(json_string_value(json_object_get(cr, "signal")), "SIGSEGV");
    assert_non_null(strstr(json_string_value(json_object_get(cr, "error")), "SIGSEGV"));
    assert_null_field(cr, "exit_code");
    assert_null_field(cr, "step_ms");
    assert_null_field(cr, "mfu");

    const json_t *hg = run_of(runs, "hang");
    assert_string_equal(json_string_value(json_object_get(hg, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(hg, "reason")), "timeout");
    assert_non_null(strstr(json_string_value(json_object_get(hg, "error")), "timed out"));
    assert_true(num_or(json_object_get(hg, "wall_s"), 0) >= 20.0);
    assert_null_field(hg, "gflops");
    json_decref(j);

    /* bench.csv: the header of the docs and one row per run. */
    snprintf(path, sizeof path, "%s/bench.csv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "backend,threads,replicas,ranks,status,reason,preset,B,T,"
                              "step_ms_median,step_ms_min,step_ms_max,tok_per_s,gflops,peak_gflops,"
                              "mfu,speedup,reduce_ms_per_step,reduce_fraction,peak_rss_mib,"
                              "peak_rss_sum_mib,num_native_ops,describe\n");
    const char *prefix[] = {"single,1,1,1,ok,,tiny,16,32,", "crash,1,1,1,failed,signal,tiny,16,32,",
                            "hang,1,1,1,failed,timeout,tiny,16,32,"};
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(rows < 3);
        if (strncmp(line, prefix[rows], strlen(prefix[rows])) != 0)
            fail_msg("row %d is '%s', expected it to start with '%s'", rows, line, prefix[rows]);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 3);

    /* One stderr log per child: single's second round has its own; the failed runs had none. */
    struct stat st;
    snprintf(path, sizeof path, "%s/logs/single-t1.log", dir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/logs/single-t1-r2.log", dir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/logs/hang-t1.log", dir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/logs/crash-t1-r2.log", dir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/logs/hang-t1-r2.log", dir);
    assert_int_not_equal(stat(path, &st), 0);
    free(out);
}

/* A plugin that does not load fails its run with the loader's message; a bad option is usage. */
static void test_bench_bad_input(void **state) {
    char *out = make_tmpdir("bench-bad");
    char log[4200];
    snprintf(log, sizeof log, "%s/bench.log", out);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--threads", "0", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--threads", "1,1", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--preset", "huge", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--steps", "-3", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--timeout", "0", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--frobnicate", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--contend", "-1", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--contend", "many", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--bandwidth-mib", "0", "--out", out, NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--data", "/nonexistent/corpus.txt", NULL), 2);
    assert_int_equal(run_randygpt(log, 30.0, "bench", "--help", NULL), 0);

    char noplugin[4200];
    snprintf(noplugin, sizeof noplugin, "%s/notaplugin.so", RG_TEST_FIXTURE_DIR);
    assert_int_equal(run_randygpt(log, 60.0, "bench", "--preset", "tiny", "--steps", "1", "--warmup",
                                  "0", "--repeat", "1", "--threads", "1", "--backends", noplugin,
                                  "--machine", "testbox", "--out", out, NULL),
                     1);
    char dir[4400];
    json_t *j = load_bench_json(out, dir, sizeof dir);
    const json_t *r = json_array_get(json_object_get(j, "runs"), 0);
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "exit");
    assert_int_equal((int)num_or(json_object_get(r, "exit_code"), 0), 1);
    assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "notaplugin.so"));
    json_decref(j);
    free(out);
}

/* An installed program (PREFIX/bin/randygpt) runs the report.py installed in PREFIX/share/randygpt,
 * not the source tree's. */
static void test_bench_finds_installed_report(void **state) {
    char *prefix = make_tmpdir("bench-installed");
    char *cmd, *marker;
    assert_true(asprintf(&cmd,
                         "mkdir -p '%s/bin' '%s/share/randygpt' && cp '%s' '%s/bin/randygpt' && "
                         "printf 'import sys\nopen(sys.argv[1] + \"/installed-report\", \"w\").close()\n'"
                         " > '%s/share/randygpt/report.py'",
                         prefix, prefix, RG_TEST_BIN, prefix, prefix) > 0);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char bin[4200], log[4200], out[4200];
    snprintf(bin, sizeof bin, "%s/bin/randygpt", prefix);
    snprintf(log, sizeof log, "%s/bench.log", prefix);
    snprintf(out, sizeof out, "%s/results", prefix);
    char *argv[] = {bin, "bench", "--preset", "tiny", "--steps", "1", "--warmup", "0", "--repeat", "1",
                    "--threads", "1", "--backends", "single", "--backend-dir", RG_TEST_PLUGIN_DIR,
                    "--machine", "testbox", "--bandwidth-mib", "8", "--out", out, NULL};
    rg_proc_result r;
    char err[256];
    assert_int_equal(rg_proc_run(argv, log, 60.0, 1 << 20, &r, err, sizeof err), 0);
    free(r.out);
    assert_int_equal(r.end, RG_PROC_EXITED);
    assert_int_equal(r.exit_code, 0);
    char dir[4400];
    find_run_dir(out, "testbox", dir, sizeof dir);
    assert_true(asprintf(&marker, "%s/installed-report", dir) > 0);
    if (access(marker, F_OK) != 0) fail_msg("%s was not written: the installed report did not run", marker);
    free(marker);
    free(prefix);
}

/* A backend that refuses a thread count is reported as refused, and bench still succeeds. */
static void test_bench_refused_thread_count(void **state) {
    char *out = make_tmpdir("bench-refused");
    char log[4200];
    snprintf(log, sizeof log, "%s/bench.log", out);
    assert_int_equal(run_randygpt(log, 60.0, "bench", "--preset", "tiny", "--steps", "1", "--warmup",
                                  "0", "--repeat", "1", "--threads", "1,2", "--backends", "single",
                                  "--backend-dir", RG_TEST_PLUGIN_DIR, "--machine", "testbox",
                                  "--contend", "1", "--bandwidth-mib", "8",
                                  "--report-script", "/nonexistent/report.py", "--out", out, NULL),
                     0);
    char dir[4400];
    json_t *j = load_bench_json(out, dir, sizeof dir);
    const json_t *runs = json_object_get(j, "runs");
    assert_int_equal((int)json_array_size(runs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(runs, 0), "status")), "ok");
    const json_t *r = json_array_get(runs, 1);
    assert_int_equal((int)num_or(json_object_get(r, "threads"), 0), 2);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "refused");
    assert_int_equal((int)num_or(json_object_get(r, "exit_code"), 0), RG_BENCH_EXIT_REFUSED);
    /* Two thread counts, two peaks and two bandwidths. */
    assert_int_equal((int)json_array_size(json_object_get(json_object_get(j, "peak"), "by_threads")), 2);
    assert_int_equal((int)json_array_size(json_object_get(json_object_get(j, "bandwidth"), "by_threads")), 2);
    assert_int_equal((int)num_or(json_object_get(json_object_get(j, "config"), "contend"), -1), 1);
    /* unreliable exactly when there are problems (which depends on the machine's load) */
    const json_t *rel = json_object_get(j, "reliability");
    const json_t *problems = json_object_get(rel, "problems");
    assert_non_null(problems);
    const json_t *reliable = json_object_get(rel, "reliable");
    assert_true(json_is_boolean(reliable));
    assert_int_equal(json_is_true(reliable), json_array_size(problems) == 0);
    json_decref(j);
    free(out);
}

/* The run of backend at threads, replicas and ranks. */
static const json_t *strategy_run(const json_t *runs, int threads, int replicas, int ranks) {
    for (size_t i = 0; i < json_array_size(runs); i++) {
        const json_t *r = json_array_get(runs, i);
        if ((int)num_or(json_object_get(r, "threads"), 0) == threads &&
            (int)num_or(json_object_get(r, "replicas"), 0) == replicas &&
            (int)num_or(json_object_get(r, "ranks"), 0) == ranks)
            return r;
    }
    fail_msg("no run at %d threads, %d replicas, %d ranks", threads, replicas, ranks);
    return NULL;
}

/* The memory figures of a run that succeeded: one peak per rank, summed; the formula. */
static void assert_strategy_memory(const json_t *r, int ranks) {
    const json_t *rss = json_object_get(r, "rank_peak_rss_bytes");
    assert_int_equal((int)json_array_size(rss), ranks);
    double sum = 0.0;
    for (int k = 0; k < ranks; k++) sum += num_or(json_array_get(rss, k), 0);
    assert_true(sum > 0.0);
    assert_float_equal(num_or(json_object_get(r, "peak_rss_sum_bytes"), 0), sum, 0.5);
    assert_positive(r, "formula_bytes");
    assert_positive(r, "mfu");
    assert_true(num_or(json_object_get(r, "reduce_fraction"), -1) >= 0.0);
}

/* --replicas and --ranks: every combination that fits, each with its reduction time, speedup and
 * memory; the ranks through mpirun, or refused with the reason in a build without MPI. */
static void test_bench_strategies(void **state) {
    char *out = make_tmpdir("bench-strategies");
    char log[4200];
    snprintf(log, sizeof log, "%s/bench.log", out);
    /* OpenMPI's own allocations are not this program's leaks */
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan ? strdup(asan) : NULL, opts[1024];
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    int rc = run_randygpt(log, 300.0, "bench", "--preset", "tiny", "--steps", "2", "--warmup", "1",
                          "--repeat", "1", "--threads", "1,2", "--replicas", "1,2", "--ranks", "1,2",
                          "--backends", "openmp", "--backend-dir", RG_TEST_PLUGIN_DIR, "--machine",
                          "testbox", "--bandwidth-mib", "8", "--report-script",
                          "/nonexistent/report.py", "--out", out, NULL);
    if (saved) setenv("ASAN_OPTIONS", saved, 1), free(saved);
    else unsetenv("ASAN_OPTIONS");
    assert_int_equal(rc, 0);
    char dir[4400], path[4500];
    json_t *j = load_bench_json(out, dir, sizeof dir);
    const json_t *runs = json_object_get(j, "runs");
    /* 1 thread with 2 replicas does not split: 6 of the 8 combinations */
    assert_int_equal((int)json_array_size(runs), 6);
    const json_t *base = strategy_run(runs, 1, 1, 1), *dp = strategy_run(runs, 2, 2, 1);
    assert_float_equal(num_or(json_object_get(base, "speedup"), 0), 1.0, 1e-12);
    assert_strategy_memory(base, 1);
    assert_strategy_memory(dp, 1);
    assert_positive(dp, "reduce_ms_per_step");
    assert_positive(dp, "speedup");
    const json_t *mpi = strategy_run(runs, 1, 1, 2);
    if (rg_ranks_have_mpi() && !strcmp(json_string_value(json_object_get(mpi, "status")), "ok")) {
        assert_strategy_memory(mpi, 2);
        assert_positive(mpi, "reduce_ms_per_step");
    } else {
        /* no MPI here, or no mpirun: refused, saying which */
        assert_string_equal(json_string_value(json_object_get(mpi, "reason")), "refused");
        const char *err = json_string_value(json_object_get(mpi, "error"));
        if (!strstr(err, "MPI") && !strstr(err, "mpirun")) fail_msg("refused with: %s", err);
    }
    snprintf(path, sizeof path, "%s/logs/openmp-t2-R2.log", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    json_decref(j);
    free(out);
}

/* The child's result line reads back as it was written, and what cannot be JSON is made so. */
static void test_result_line_round_trip(void **state) {
    rg_bench_result *r = calloc(1, sizeof *r), *back = calloc(1, sizeof *back);
    assert_non_null(r);
    assert_non_null(back);
    snprintf(r->path, sizeof r->path, "/p/x.so");
    snprintf(r->plugin_name, sizeof r->plugin_name, "x");
    snprintf(r->describe, sizeof r->describe, "tab\there \"q\" \\ \x01 bad utf-8 \xff");
    snprintf(r->native_ops, sizeof r->native_ops, "matmul_forward,adamw_step");
    r->nrepeat = 2;
    r->repeat_step_ms[0] = 1.5;
    r->repeat_step_ms[1] = 0.125;
    r->step_ms_median = 0.8125;
    r->step_ms_min = 0.125;
    r->step_ms_max = 1.5;
    r->tok_per_s = 1234.5;
    r->gflops = NAN; /* not measured: null */
    r->ops[RG_OP_ADAMW].native = 1;
    r->ops[RG_OP_ADAMW].ms_per_step = 0.25;
    r->reduce_ms_per_step = 0.375;
    r->nranks_rss = 2;
    r->rank_peak_rss_bytes[0] = 1 << 20;
    r->rank_peak_rss_bytes[1] = 3 << 20;
    json_t *j = rg_bench_result_json(r, 1);
    assert_non_null(j);
    char *line = json_dumps(j, RG_JSON_LINE_FLAGS);
    json_decref(j);
    assert_non_null(line);
    assert_null(strchr(line, '\n')); /* one line */
    assert_non_null(strstr(line, "\"gflops\":null"));
    char err[256];
    if (rg_bench_result_parse(back, line, err, sizeof err) != 0) fail_msg("%s: %s", line, err);
    assert_string_equal(back->describe, "tab\there \"q\" \\ \x01 bad utf-8 ?");
    assert_string_equal(back->path, "/p/x.so");
    assert_string_equal(back->native_ops, "matmul_forward,adamw_step");
    assert_int_equal(back->num_native_ops, 2);
    assert_int_equal(back->nrepeat, 2);
    assert_float_equal(back->repeat_step_ms[1], 0.125, 0.0);
    assert_float_equal(back->step_ms_median, 0.8125, 0.0);
    assert_float_equal(back->tok_per_s, 1234.5, 0.0);
    assert_true(isnan(back->gflops));
    assert_true(back->ops[RG_OP_ADAMW].native);
    assert_false(back->ops[RG_OP_MATMUL_FORWARD].native);
    assert_float_equal(back->ops[RG_OP_ADAMW].ms_per_step, 0.25, 0.0);
    assert_float_equal(back->reduce_ms_per_step, 0.375, 0.0);
    assert_int_equal(back->nranks_rss, 2);
    assert_int_equal(back->rank_peak_rss_bytes[1], 3 << 20);
    free(line);
    /* a line that is not a result is refused with one line */
    const char *bad[] = {"", "{", "[1]", "{\"step_ms\": {\"median\": 1}}", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(rg_bench_result_parse(back, bad[i], err, sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_null(strchr(err, '\n'));
    }
    free(r);
    free(back);
}

static void test_proc_limits(void **state) {
    rg_proc_result r;
    char err[256];
    char *echo[] = {"/bin/sh", "-c", "echo hello; echo oops >&2; exit 3", NULL};
    assert_int_equal(rg_proc_run(echo, "/dev/null", 10.0, 1024, &r, err, sizeof err), 0);
    assert_int_equal(r.end, RG_PROC_EXITED);
    assert_int_equal(r.exit_code, 3);
    assert_string_equal(r.out, "hello\n");
    free(r.out);

    char *segv[] = {"/bin/sh", "-c", "kill -SEGV $$", NULL};
    assert_int_equal(rg_proc_run(segv, "/dev/null", 10.0, 1024, &r, err, sizeof err), 0);
    assert_int_equal(r.end, RG_PROC_SIGNALED);
    assert_int_equal(r.signo, SIGSEGV);
    char buf[16];
    assert_string_equal(rg_signal_name(r.signo, buf, sizeof buf), "SIGSEGV");
    free(r.out);

    /* The limit kills the whole group: the shell's child sleep holds the pipe open too. */
    char *hang[] = {"/bin/sh", "-c", "sleep 30; echo late", NULL};
    assert_int_equal(rg_proc_run(hang, "/dev/null", 0.3, 1024, &r, err, sizeof err), 0);
    assert_int_equal(r.end, RG_PROC_TIMED_OUT);
    assert_true(r.wall_s >= 0.3 && r.wall_s < 10.0);
    assert_string_equal(r.out, "");
    free(r.out);

    char *missing[] = {"/nonexistent/program", NULL};
    assert_int_equal(rg_proc_run(missing, "/dev/null", 10.0, 1024, &r, err, sizeof err), 0);
    assert_int_equal(r.end, RG_PROC_EXITED);
    assert_int_equal(r.exit_code, 127);
    free(r.out);
}

static void test_median_and_peak(void **state) {
    const double odd[] = {5.0, 1.0, 3.0}, even[] = {4.0, 1.0, 3.0, 2.0};
    assert_float_equal(rg_median(odd, 3), 3.0, 0.0);
    assert_float_equal(rg_median(even, 4), 2.5, 0.0);
    assert_float_equal(rg_median(odd, 1), 5.0, 0.0);
    /* The peak is positive and its kernel's width is what the build targets. */
    double g = rg_peak_gflops(1, 20, 1);
    assert_true(g > 0.0 && isfinite(g));
    assert_true(rg_peak_vector_bits() == 512 || rg_peak_vector_bits() == 256 ||
                rg_peak_vector_bits() == 32);
    assert_true(rg_peak_gflops(0, 20, 1) < 0.0);
}

static void test_peak_checks(void **state) {
    char why[320] = "";
    /* the case: 2 threads measured at the 1-thread peak */
    assert_int_equal(rg_peak_scaling_ok(2, 117.0, 117.0, 4, why, sizeof why), 0);
    assert_non_null(strstr(why, "2-thread"));
    assert_int_equal(rg_peak_scaling_ok(2, 234.0, 117.0, 4, why, sizeof why), 1);
    assert_int_equal(rg_peak_scaling_ok(2, 1.6 * 117.0, 117.0, 4, why, sizeof why), 1);
    assert_int_equal(rg_peak_scaling_ok(4, 319.0, 100.0, 4, why, sizeof why), 0);
    assert_int_equal(rg_peak_scaling_ok(1, 50.0, 117.0, 4, why, sizeof why), 1);
    assert_int_equal(rg_peak_scaling_ok(2, 50.0, NAN, 4, why, sizeof why), 1);
    /* 4 threads on 2 CPUs (2 ranks x 2 threads) cannot scale: not the machine's fault */
    assert_int_equal(rg_peak_scaling_ok(4, 200.0, 117.0, 2, why, sizeof why), 1);
    assert_int_equal(rg_peak_scaling_ok(2, 117.0, 117.0, 2, why, sizeof why), 0);
    rg_peak_series s = {.threads = 2};
    rg_peak_series_add(&s, 100.0);
    rg_peak_series_add(&s, 180.0);
    rg_peak_series_add(&s, 150.0);
    assert_int_equal(s.n, 3);
    assert_float_equal(s.best, 180.0, 0.0);
    assert_float_equal(s.samples[2], 150.0, 0.0);
}

static void test_bandwidth(void **state) {
    double g = rg_bandwidth_triad_gbps(2, 4 << 20, 2);
    assert_true(g > 0.0 && isfinite(g));
    assert_true(rg_bandwidth_triad_gbps(0, 4 << 20, 1) < 0.0);
    size_t b = rg_bandwidth_array_bytes();
    assert_true(b >= ((size_t)64 << 20) && b <= ((size_t)1024 << 20));
}

static void test_contend(void **state) {
    rg_contend c;
    char err[256];
    assert_int_equal(rg_contend_start(&c, 2, err, sizeof err), 0);
    assert_int_equal(c.n, 2);
    pid_t pids[2] = {c.pids[0], c.pids[1]};
    for (int i = 0; i < 2; i++) assert_int_equal(kill(pids[i], 0), 0); /* running */
    rg_contend_stop(&c);
    assert_int_equal(c.n, 0);
    for (int i = 0; i < 2; i++) { /* killed and reaped: the pid is gone */
        assert_int_equal(kill(pids[i], 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    assert_int_equal(rg_contend_start(&c, -1, err, sizeof err), -1);
    assert_non_null(strstr(err, "--contend"));
    assert_int_equal(rg_contend_start(&c, 0, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
}

static void test_machine_load(void **state) {
    double busy, steal;
    /* user nice system idle iowait irq softirq steal guest guest_nice, at 100 ticks a second */
    assert_int_equal(rg_proc_stat_parse("cpu  400 100 200 9000 50 30 20 70 0 0\n", 100.0, &busy,
                                        &steal), 0);
    assert_float_equal(busy, 7.5, 1e-12); /* user + nice + system + irq + softirq */
    assert_float_equal(steal, 0.7, 1e-12);
    assert_int_equal(rg_proc_stat_parse("cpu0 1 2 3 4 5 6 7 8\n", 100.0, &busy, &steal), -1);
    assert_int_equal(rg_proc_stat_parse("cpu  1 2 3\n", 100.0, &busy, &steal), -1);

    /* 10 s on 2 CPUs: 12 CPU-seconds busy, 11 of them ours, 3 stolen */
    rg_cpu_sample a = {.wall_s = 5.0, .busy_s = 100.0, .steal_s = 1.0, .ours_s = 2.0};
    rg_cpu_sample b = {.wall_s = 15.0, .busy_s = 112.0, .steal_s = 4.0, .ours_s = 13.0};
    rg_machine_load l;
    char why_others[320], why_steal[320];
    rg_machine_load_between(&a, &b, 2, &l);
    assert_true(l.known);
    assert_float_equal(l.others_fraction, 1.0 / 20.0, 1e-12);
    assert_float_equal(l.steal_fraction, 3.0 / 20.0, 1e-12);
    assert_int_equal(rg_machine_load_ok(&l, why_others, why_steal, sizeof why_others), 0);
    assert_string_equal(why_others, ""); /* 5% is the limit itself */
    assert_non_null(strstr(why_steal, "15.0%"));
    b.busy_s = 113.0; /* one CPU-second more of others: 10% */
    b.steal_s = 2.0;
    rg_machine_load_between(&a, &b, 2, &l);
    assert_int_equal(rg_machine_load_ok(&l, why_others, why_steal, sizeof why_others), 0);
    assert_non_null(strstr(why_others, "10.0% of the 2 CPUs"));
    assert_string_equal(why_steal, "");
    b.busy_s = 110.0; /* less than ours (tick rounding): no others */
    rg_machine_load_between(&a, &b, 2, &l);
    assert_float_equal(l.others_s, 0.0, 0.0);
    assert_int_equal(rg_machine_load_ok(&l, why_others, why_steal, sizeof why_others), 1);
    a.busy_s = -1.0; /* /proc/stat unreadable: unknown, never a problem */
    rg_machine_load_between(&a, &b, 2, &l);
    assert_false(l.known);
    assert_int_equal(rg_machine_load_ok(&l, why_others, why_steal, sizeof why_others), 1);

    /* the real counters: a child spinning for 0.4 s, not yet reaped, is someone else's load */
    rg_cpu_sample_take(&a);
    if (a.busy_s < 0) {
        skip(); /* no /proc/stat here */
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        volatile unsigned spin = 0;
        do {
            for (int i = 0; i < 100000; i++) spin++;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) + 1e-9 * (t.tv_nsec - t0.tv_nsec) < 0.4);
        _exit(0);
    }
    struct timespec pause = {0, 500000000};
    nanosleep(&pause, NULL);
    rg_cpu_sample_take(&b);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    rg_machine_load_between(&a, &b, (int)sysconf(_SC_NPROCESSORS_ONLN), &l);
    assert_true(l.known);
    assert_true(l.others_s > 0.2); /* 0.4 CPU-seconds, less what other work the counters miss */
}

int main(void) {
    let_crashes_die_of_signal();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_line_round_trip),
        cmocka_unit_test(test_proc_limits),
        cmocka_unit_test(test_median_and_peak),
        cmocka_unit_test(test_peak_checks),
        cmocka_unit_test(test_bandwidth),
        cmocka_unit_test(test_contend),
        cmocka_unit_test(test_machine_load),
        cmocka_unit_test(test_bench_bad_input),
        cmocka_unit_test(test_bench_refused_thread_count),
        cmocka_unit_test(test_bench_finds_installed_report),
        cmocka_unit_test(test_bench_run_with_failing_plugins),
        cmocka_unit_test(test_bench_strategies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
