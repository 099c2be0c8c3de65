/*
 * randygpt-kbench: kernel micro-benchmarks of backend plugins through Google Benchmark.
 *
 *   randygpt-kbench --backends single,openmp --threads 1,2 --preset small [--vocab V]
 *                   [--backend-dir D] [--backend-opt K=V] [--benchmark_* flags]
 *
 * Every op kind (all RG_OP_COUNT of them, through the resolved table rg_ops, so an op the plugin
 * does not run itself is timed as the core's reference and labelled so) of every backend at every
 * thread count, at the shapes of one training step of the preset: the op cases of op_case.h, the
 * ones the conformance suite checks (the matmuls at each of the model's five weight shapes). Names are BACKEND/tTHREADS/OP[/SHAPE], so Google Benchmark's
 * compare.py can compare two backends in one file ("filters" mode) or two files.
 *
 * A backend instance (and so its thread pool) exists only while one of its benchmarks runs: each
 * timed loop creates it in setup and destroys it in teardown, outside the timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/backend_args.h"
#include "app/cmdline.h"
#include "randygpt/loader.h"
#include "randygpt/model.h"
#include "randygpt/op_case.h"
#include "randygpt/ops.h"
#include "randygpt/rng.h"
#include "rg_kbench.h"

#define KB_CMD "randygpt-kbench"
#define KB_MAX_LIST 32
#define KB_DEFAULT_V 67 /* the GUIDE's vocabulary size, as `randygpt bench` uses for synthetic data */

/* One (backend, threads) pair: the options its instances are created with. */
typedef struct kb_config {
    const rg_plugin *plugin;
    rg_backend_args args; /* the command line's, with this pair's thread count */
} kb_config;

/* What one benchmark times (an op case shared with the conformance suite), and the buffers of
 * its current timed loop. */
typedef struct kb_case {
    const kb_config *cfg;
    rg_op_case oc;
    /* live only between setup and teardown */
    rg_ops ops;
    void *buf[RG_CASE_MAX_BUFS];
    volatile double sink; /* keeps sum_squares from being optimised away */
} kb_case;

static void kb_teardown(void *user) {
    kb_case *c = user;
    for (int i = 0; i < RG_CASE_MAX_BUFS; i++) {
        free(c->buf[i]);
        c->buf[i] = NULL;
    }
    if (c->ops.ctx) rg_ops_destroy(&c->ops);
    memset(&c->ops, 0, sizeof c->ops);
}

static int kb_setup(void *user, char *err, size_t err_len) {
    kb_case *c = user;
    memset(&c->ops, 0, sizeof c->ops);
    if (rg_backend_args_create(&c->cfg->args, c->cfg->plugin, &c->ops, err, err_len) != 0)
        return -1;
    /* outputs start as zeros, inputs as the case draws them (its backward's forward state
     * computed by the reference) */
    for (int i = 0; i < c->oc.nbufs; i++) {
        c->buf[i] = calloc(1, rg_case_buf_bytes(&c->oc.buf[i]) + 1);
        if (!c->buf[i]) goto oom;
    }
    rg_rng r;
    rg_rng_seed(&r, 1337 + (uint64_t)c->oc.op);
    if (rg_op_case_fill(&c->oc, c->buf, &r, NULL) != 0) goto oom;
    return 0;
oom:
    snprintf(err, err_len, "out of memory for the buffers of %s", rg_op_name(c->oc.op));
    kb_teardown(c);
    return -1;
}

static void kb_run(void *user, int64_t iters) {
    kb_case *c = user;
    for (int64_t it = 0; it < iters; it++)
        c->sink = rg_op_case_call(&c->oc, &c->ops.k, c->ops.ctx, c->buf);
}

/* Splits a comma-separated list in place. Returns the count, or -1 if empty items or too many. */
static int kb_split(char *s, char **items, int max) {
    int n = 0;
    for (char *tok = s;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        if (!*tok || n == max) return -1;
        items[n++] = tok;
        if (!comma) return n;
        tok = comma + 1;
    }
}

static void kb_usage(FILE *f) {
    fprintf(f,
            "usage: randygpt-kbench [--backends A,B,...] [--threads N,M,...] [--preset NAME]\n"
            "                       [--vocab V] [--backend-dir DIR] [--backend-opt KEY=VALUE]...\n"
            "                       [--benchmark_* flags]\n\n"
            "Times every op kind of every backend at every thread count, at the shapes of one\n"
            "training step of the preset. Output is Google Benchmark's (--benchmark_out=FILE\n"
            "--benchmark_out_format=json for a file that compare.py and scripts/report.py read).\n\n"
            "  --backends LIST          backends by name or path, comma-separated (default single;\n"
            "                           --backend NAME|PATH names one)\n"
            "  --threads LIST           thread counts, comma-separated (default: 1 and the %d usable\n"
            "                           CPUs); a count a backend refuses is skipped with a note\n"
            "  --preset NAME            tiny, small, medium or large (default small)\n"
            "  --vocab V                vocabulary size (default %d)\n"
            "  --backend-dir DIR        folder searched first for a NAME, before $%s\n"
            "  --backend-opt KEY=VALUE  option for every backend (repeatable; a backend that does\n"
            "                           not know KEY refuses it and is skipped)\n"
            "  --benchmark_filter=REGEX, --benchmark_min_time=SECONDS, --benchmark_repetitions=N,\n"
            "  --benchmark_out=FILE, --benchmark_out_format=json|csv|console and the other flags\n"
            "  of Google Benchmark (--benchmark_help lists them)\n",
            rg_default_threads(), KB_DEFAULT_V, RG_BACKEND_PATH_ENV);
}

/* Benchmarks per (backend, threads) pair: the cases of one training step. */
#define KB_CASES_PER_PAIR RG_STEP_CASES

/* Every benchmark's state, allocated once for all pairs; it must live until the run ends. */
typedef struct kb_list {
    kb_config *configs; /* (num_backends * num_threads) */
    int num_configs;
    kb_case *cases;     /* (num_backends * num_threads * KB_CASES_PER_PAIR) */
    int num_cases;
} kb_list;

/* Registers the benchmarks of one (backend, threads) pair and records its describe line, and the
 * backend's native ops once (*native_added, set then). Returns 0, or 1 if the backend refuses that
 * thread count (a note is printed; nothing is registered). */
static int kb_register_pair(kb_list *list, const rg_plugin *plugin, const rg_backend_args *ba,
                            int threads, const rg_preset *p, int V, int *native_added) {
    kb_config *cfg = &list->configs[list->num_configs++];
    cfg->plugin = plugin;
    cfg->args = *ba;
    cfg->args.threads = threads;
    cfg->args.threads_given = 1;
    const char *name = plugin->table->name;

    /* One short-lived instance for the describe line and the native mask. */
    rg_ops probe;
    char why[512];
    if (rg_backend_args_create(&cfg->args, plugin, &probe, why, sizeof why) != 0) {
        fprintf(stderr, "randygpt-kbench: skipping %s at %d threads: %s\n", name, threads, why);
        return 1;
    }
    char describe[RG_DESCRIBE_LEN], native[1024], key[256];
    rg_ops_describe(&probe, describe, sizeof describe);
    rg_ops_native_list(&probe, native, sizeof native);
    uint32_t native_mask = probe.native_mask;
    rg_ops_destroy(&probe);

    snprintf(key, sizeof key, "describe:%s/t%d", name, threads);
    rg_kbench_add_context(key, describe);
    if (!*native_added) {
        snprintf(key, sizeof key, "native_ops:%s", name);
        rg_kbench_add_context(key, native);
        *native_added = 1;
    }

    const rg_model_config mc = {.V = V, .maxT = p->T, .C = p->C, .NH = p->NH, .L = p->L};
    const rg_op_dims dims = {.B = p->B, .T = p->T, .C = p->C, .NH = p->NH, .V = V};
    kb_case *cases = &list->cases[list->num_cases];
    rg_op_case step[RG_STEP_CASES];
    int ncases = rg_op_step_cases(&dims, rg_model_num_params(&mc), 1.0f, step);
    if (ncases < 0) {
        fprintf(stderr, "randygpt-kbench: skipping %s: the preset's sizes suit no op case\n", name);
        return 1;
    }
    for (int i = 0; i < ncases; i++) {
        kb_case *c = &cases[i];
        *c = (kb_case){.cfg = cfg, .oc = step[i]};
        list->num_cases++;
        const rg_op_case *oc = &c->oc;
        char bname[512];
        if (oc->label)
            snprintf(bname, sizeof bname, "%s/t%d/%s/%s", name, threads, rg_op_name(oc->op),
                     oc->label);
        else
            snprintf(bname, sizeof bname, "%s/t%d/%s", name, threads, rg_op_name(oc->op));
        int is_native = (native_mask >> oc->op) & 1u;
        rg_kbench_def def = {
            .name = bname,
            .label = is_native ? "native" : "reference fallback",
            .setup = kb_setup,
            .run = kb_run,
            .teardown = kb_teardown,
            .user = c,
            .flops_per_iter = oc->flops,
            .bytes_per_iter = oc->bytes,
            .num_counters = 2,
            .counters = {{"threads", threads}, {"native", is_native}},
        };
        rg_kbench_register(&def);
    }
    return 0;
}

typedef struct kb_opts {
    rg_backend_args ba;
    const char *backends;
    const rg_preset *preset;
    int V, num_threads;
    int threads[KB_MAX_LIST];
} kb_opts;

enum { KB_OPT_BACKENDS = RG_CLI_FIRST_ID, KB_OPT_THREADS, KB_OPT_PRESET, KB_OPT_VOCAB };
static const struct option kb_options[] = {
    {"backends", required_argument, NULL, KB_OPT_BACKENDS},
    /* a list here, unlike the shared --threads */
    {"threads", required_argument, NULL, KB_OPT_THREADS},
    {"preset", required_argument, NULL, KB_OPT_PRESET},
    {"vocab", required_argument, NULL, KB_OPT_VOCAB},
    RG_OPTION_BACKEND,
    RG_OPTION_BACKEND_DIR,
    RG_OPTION_BACKEND_OPT,
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

static int kb_take_option(rg_cli *c, int id, const char *v, void *user) {
    kb_opts *o = user;
    switch (id) {
    case KB_OPT_BACKENDS: return rg_cli_string(c, v, &o->backends);
    case KB_OPT_THREADS:
        return rg_cli_int_list(c, v, 1, RG_MAX_THREADS, o->threads, KB_MAX_LIST, &o->num_threads);
    case KB_OPT_PRESET: return rg_cli_preset(c, v, &o->preset);
    case KB_OPT_VOCAB: return rg_cli_int(c, v, 1, 1 << 20, &o->V);
    default: return rg_backend_args_take(c, &o->ba, id, v);
    }
}

int main(int argc, char **argv) {
    /* Google Benchmark answers --help itself with its own flags only; ours come first. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            kb_usage(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--benchmark_help")) argv[i] = (char *)"--help";
    rg_kbench_initialize(&argc, argv);

    kb_opts o = {.backends = NULL, .preset = rg_preset_find("small"), .V = KB_DEFAULT_V};
    rg_backend_args_init(&o.ba);
    /* default: one thread and every usable CPU */
    o.threads[0] = 1;
    o.threads[1] = rg_default_threads();
    o.num_threads = o.threads[1] > 1 ? 2 : 1;
    int rc = rg_cli_parse(KB_CMD, kb_options, argc, argv, kb_take_option, &o, kb_usage);
    if (rc) return rc == 1 ? 0 : rc;
    rg_backend_args ba = o.ba;
    char *backends_arg = (char *)o.backends;
    const rg_preset *p = o.preset;
    int V = o.V, num_threads = o.num_threads;
    int *threads = o.threads;
    char err[1024];

    char *names[KB_MAX_LIST];
    int num_backends = 1;
    names[0] = (char *)ba.backend;
    if (backends_arg && (num_backends = kb_split(backends_arg, names, KB_MAX_LIST)) < 0) {
        snprintf(err, sizeof err,
                 "--backends must be a comma-separated list of at most %d non-empty names",
                 KB_MAX_LIST);
        return rg_cli_usage_error(KB_CMD, err);
    }

    char text[64];
    rg_kbench_add_context("preset", p->name);
    snprintf(text, sizeof text, "B=%d T=%d C=%d NH=%d L=%d V=%d", p->B, p->T, p->C, p->NH, p->L, V);
    rg_kbench_add_context("shape", text);

    rg_plugin plugins[KB_MAX_LIST];
    kb_list list = {0};
    list.configs = calloc((size_t)num_backends * num_threads, sizeof *list.configs);
    list.cases = calloc((size_t)num_backends * num_threads * KB_CASES_PER_PAIR, sizeof *list.cases);
    if (!list.configs || !list.cases) {
        fprintf(stderr, "randygpt-kbench: out of memory\n");
        return 1;
    }
    int status = 0, opened = 0, registered = 0;
    for (; opened < num_backends; opened++) {
        if (rg_plugin_open(&plugins[opened], names[opened], ba.backend_dir, err, sizeof err) != 0) {
            fprintf(stderr, "randygpt-kbench: %s\n", err);
            status = 1;
            break;
        }
        int native_added = 0;
        for (int t = 0; t < num_threads; t++)
            registered += kb_register_pair(&list, &plugins[opened], &ba, threads[t], p, V,
                                           &native_added) == 0;
    }
    if (!status && !registered) {
        fprintf(stderr, "randygpt-kbench: no backend accepted any of the thread counts\n");
        status = 1;
    }
    if (!status) rg_kbench_run();
    rg_kbench_shutdown();
    free(list.cases);
    free(list.configs);
    for (int i = 0; i < opened; i++) rg_plugin_close(&plugins[i]);
    return status;
}
