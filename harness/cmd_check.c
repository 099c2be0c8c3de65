#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* randygpt check: runs the conformance suite (core/src/conformance.c) on one backend plugin and
 * prints one line per failure and a summary per class of checks (--verbose: every check). Exit 0
 * when every check passes, 1 when one fails or the plugin cannot be loaded, 2 on bad usage. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app/backend_args.h"
#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/conformance.h"
#include "randygpt/model.h"
#include "randygpt/text.h"

#define MAX_CLASSES 16

/* Checks and failures per class ("shapes", "memory", ...), in the order they first appear. */
typedef struct check_tally {
    int checks, failed, verbose;
    int nclasses;
    char names[MAX_CLASSES][16];
    int class_checks[MAX_CLASSES], class_failed[MAX_CLASSES];
} check_tally;

static void on_result(void *user, const rg_conf_result *r) {
    check_tally *t = user;
    t->checks++;
    t->failed += !r->pass;
    int k = 0;
    while (k < t->nclasses && strcmp(t->names[k], r->check)) k++;
    if (k == t->nclasses && k < MAX_CLASSES) snprintf(t->names[t->nclasses++], 16, "%s", r->check);
    if (k < MAX_CLASSES) {
        t->class_checks[k]++;
        t->class_failed[k] += !r->pass;
    }
    if (t->verbose)
        rg_conf_print_result(stdout, r);
    else if (!r->pass)
        rg_conf_print_failure(stdout, r);
    fflush(stdout);
}

static void on_note(void *user, const char *line) {
    (void)user;
    printf("note: %s\n", line);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt check PLUGIN [--quick|--thorough] [--preset P[,P...]] [--threads N]\n"
            "                      [--replicas R] [--timeout S] [--verbose] [--backend-dir DIR]\n"
            "                      [--backend-opt KEY=VALUE] [--help]\n\n"
            "Checks a backend against the reference: every op at the presets' shapes and at\n"
            "shapes that break vector-width and tiling assumptions, with wide and adversarial\n"
            "inputs and every scalar argument varied, every buffer against a guard page, at 1, 2,\n"
            "3, 5 and 8 threads with run-to-run bit identity, two instances at once, one training\n"
            "step (loss, gradients, parameters after AdamW) and %d training steps. Each group\n"
            "runs in a child process: a crash or a hang is a failing check naming the op and\n"
            "shape. docs/writing-a-backend.md lists every check. PLUGIN is a name or a path, also\n"
            "accepted as --backend PLUGIN.\n\n"
            "  --quick                  a few seconds: the tiny preset, fewer shapes, threads 1, 3\n"
            "  --thorough               every T from 1 to 256, full batches, threads 1-8, 13, 16\n"
            "  --preset P[,P...]        presets whose shapes the op checks use (default: all of\n"
            "                          ",
            RG_CONF_TRAIN_STEPS);
    for (int i = 0; rg_presets[i].name; i++) fprintf(f, "%s%s", i ? ", " : " ", rg_presets[i].name);
    fprintf(f, ";\n"
               "                           tiny with --quick); big presets at a capped batch\n"
               "  --replicas R             the step and training checks once more through R\n"
               "                           replicas on R instances at once, as train --replicas\n"
               "                           runs them (--threads a multiple of R; at most %d)\n"
               "  --timeout S              a group that makes no progress for S seconds has hung\n"
               "                           (default 30; a big op case gets 1 s more per 0.1\n"
               "                           GFLOP it and its reference do)\n"
               "  --verbose                print every check, not only the failures\n",
            RG_CONF_MAX_REPLICAS);
    rg_backend_args_help(f);
    fprintf(f, "  --help                   show this help\n\n"
               "Exit status: 0 when every check passes, 1 when one fails or the plugin cannot be\n"
               "loaded, 2 on bad usage.\n");
}

#define CMD "randygpt check"

enum { OPT_PRESET = RG_CLI_FIRST_ID, OPT_QUICK, OPT_THOROUGH, OPT_TIMEOUT, OPT_VERBOSE,
       OPT_REPLICAS };
static const struct option options[] = {
    RG_BACKEND_OPTIONS,
    {"preset", required_argument, NULL, OPT_PRESET},
    {"quick", no_argument, NULL, OPT_QUICK},
    {"thorough", no_argument, NULL, OPT_THOROUGH},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

typedef struct check_opts {
    rg_backend_args ba;
    const char *plugin, *presets;
    int quick, thorough, verbose, replicas;
    double timeout_s;
} check_opts;

static int take_option(rg_cli *c, int id, const char *v, void *user) {
    check_opts *o = user;
    switch (id) {
    case OPT_PRESET: return rg_cli_string(c, v, &o->presets);
    case OPT_QUICK: o->quick = 1; return 0;
    case OPT_THOROUGH: o->thorough = 1; return 0;
    case OPT_VERBOSE: o->verbose = 1; return 0;
    case OPT_REPLICAS: return rg_cli_int(c, v, 1, RG_CONF_MAX_REPLICAS, &o->replicas);
    case OPT_TIMEOUT: return rg_cli_double(c, v, 0.0, 1, 86400.0, &o->timeout_s);
    case RG_CLI_ARG:
        if (o->plugin) return rg_cli_error(c, "one PLUGIN only, got '%s' and '%s'", o->plugin, v);
        o->plugin = v;
        return 0;
    default: return rg_backend_args_take(c, &o->ba, id, v);
    }
}

int rg_cmd_check(int argc, char **argv) {
    char err[RG_ERR_LEN];
    rg_conf_options opt = rg_conf_default_options();
    check_opts o = {.plugin = NULL, .presets = NULL, .timeout_s = opt.timeout_s, .replicas = 1};
    rg_backend_args_init(&o.ba);
    const char *default_backend = o.ba.backend; /* --backend NAME also names PLUGIN */
    int rc = rg_cli_parse(CMD, options, argc, argv, take_option, &o, usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (o.quick && o.thorough) return rg_cli_usage_error(CMD, "--quick and --thorough exclude each other");
    const char *plugin_name = o.plugin;
    /* The presets are checked first, before the plugin: a typo is a usage error. */
    opt.presets = o.presets;
    opt.level = o.quick ? RG_CONF_QUICK : o.thorough ? RG_CONF_THOROUGH : RG_CONF_DEFAULT;
    opt.timeout_s = o.timeout_s;
    if (rg_conf_check_presets(o.presets, err, sizeof err) != 0) return rg_cli_usage_error(CMD, err);
    if (!plugin_name && o.ba.backend != default_backend) plugin_name = o.ba.backend;
    if (!plugin_name) return rg_cli_usage_error(CMD, "no PLUGIN given");
    o.ba.backend = plugin_name;

    /* No instance is created in this process: the suite's children make their own. The probe
     * loads the plugin in a child first, so that one crashing in its entry point does too. */
    rg_plugin plugin;
    if (rg_backend_args_probe(&o.ba, RG_PROBE_TIMEOUT_S, err, sizeof err) != 0 ||
        rg_backend_args_load(&o.ba, &plugin, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    rg_option backend_opts[RG_MAX_BACKEND_OPTS];
    rg_backend_args_config(&o.ba, &opt.backend, backend_opts);
    char desc[RG_DESCRIBE_LEN];
    int threads = rg_conf_probe(plugin.table, &opt.backend, !o.ba.threads_given, desc,
                                sizeof desc, err, sizeof err);
    if (threads < 0) {
        fprintf(stderr, CMD ": %s\n", err);
        rg_plugin_close(&plugin);
        return 1;
    }
    opt.backend.num_threads = threads;
    opt.replicas = o.replicas;
    if (rg_conf_check_replicas(o.replicas, threads, err, sizeof err) != 0) {
        rg_plugin_close(&plugin);
        return rg_cli_usage_error(CMD, err);
    }
    char native[512];
    printf("backend: %s (%s)\n", plugin.table->name, plugin.path);
    printf("describe: %s\n", desc);
    rg_ops_table_native_list(plugin.table, native, sizeof native);
    printf("native ops: %s\n", native[0] ? native : "(none)");
    static const char *const levels[] = {"quick", "default", "thorough"};
    printf("threads: %d, level: %s", threads, levels[opt.level]);
    if (o.replicas > 1) printf(", replicas: %d of %d threads each", o.replicas, threads / o.replicas);
    printf("\n");
    printf("tolerances: normalised error max|x - ref| / max|ref| against a bound derived from the "
           "shape (u = 2^-24, K the reduction length)\n\n");

    check_tally tally;
    memset(&tally, 0, sizeof tally);
    tally.verbose = o.verbose;
    rg_conf_report report = {on_result, on_note, &tally};
    if (o.verbose) rg_conf_print_header(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int failed = rg_conformance_run(plugin.table, &opt, &report, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rg_plugin_close(&plugin);
    if (failed < 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    printf("\n");
    for (int k = 0; k < tally.nclasses; k++)
        printf("%-10s %5d checks, %d failed\n", tally.names[k], tally.class_checks[k],
               tally.class_failed[k]);
    printf("%d checks, %d failed in %.1f s: %s\n", tally.checks, failed,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           failed ? "FAIL" : "PASS");
    return failed ? 1 : 0;
}
