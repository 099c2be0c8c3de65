/*
 * randygpt-kbench: kernel micro-benchmarks of backend plugins through Google Benchmark.
 *
 *   randygpt-kbench --backends single,openmp --threads 1,2 --preset small [--vocab V]
 *                   [--backend-dir D] [--backend-opt K=V] [--benchmark_* flags]
 *
 * Every op kind (all RG_OP_COUNT of them, through the resolved table rg_ops, so an op the plugin
 * does not run itself is timed as the core's reference and labelled so) of every backend at every
 * thread count, at the shapes of one training step of the preset. The matmuls are timed at each of
 * the model's five weight shapes. Names are BACKEND/tTHREADS/OP[/SHAPE], so Google Benchmark's
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
#include "randygpt/ops.h"
#include "randygpt/rng.h"
#include "rg_kbench.h"

#define KB_CMD "randygpt-kbench"
#define KB_MAX_LIST 32
#define KB_DEFAULT_V 67 /* the GUIDE's vocabulary size, as `randygpt bench` uses for synthetic data */

/* One matmul of the model: out is (N,OC), inp is (N,C), weight is (OC,C), N = B*T. */
typedef struct kb_matmul_shape {
    const char *name;
    int c_mult, oc_mult; /* C and OC as multiples of n_embd; oc_mult 0 means OC = V */
} kb_matmul_shape;

static const kb_matmul_shape kb_matmul_shapes[] = {
    {"qkv", 1, 3}, {"attproj", 1, 1}, {"fc", 1, 4}, {"fcproj", 4, 1}, {"lmhead", 1, 0},
};
#define KB_NUM_MATMUL_SHAPES (sizeof kb_matmul_shapes / sizeof kb_matmul_shapes[0])

/* One (backend, threads) pair: the options its instances are created with. */
typedef struct kb_config {
    const rg_plugin *plugin;
    rg_backend_args args; /* the command line's, with this pair's thread count */
} kb_config;

/* What one benchmark times, and the buffers of its current timed loop. */
typedef struct kb_case {
    const kb_config *cfg;
    rg_op_kind op;
    int B, T, C, NH, V; /* model sizes; for a matmul C is its input width */
    int OC;             /* matmul output width */
    size_t n;           /* element count of the element-wise ops, adamw and sum_squares */
    /* live only between setup and teardown */
    rg_ops ops;
    float *buf[6];
    int32_t *tok;
    volatile double sink; /* keeps sum_squares from being optimised away */
} kb_case;

static float *kb_alloc_random(size_t n, rg_rng *r) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = rg_rng_normal(r);
    return p;
}

static void kb_teardown(void *user) {
    kb_case *c = user;
    for (size_t i = 0; i < sizeof c->buf / sizeof c->buf[0]; i++) {
        free(c->buf[i]);
        c->buf[i] = NULL;
    }
    free(c->tok);
    c->tok = NULL;
    if (c->ops.ctx) rg_ops_destroy(&c->ops);
    memset(&c->ops, 0, sizeof c->ops);
}

/* Sizes (in floats) of the buffers each op uses, in argument order. */
static void kb_buffer_sizes(const kb_case *c, size_t sz[6], size_t *ntok) {
    const size_t N = (size_t)c->B * c->T, C = c->C, V = c->V;
    const size_t att = (size_t)c->B * c->NH * c->T * c->T;
    memset(sz, 0, 6 * sizeof sz[0]);
    *ntok = 0;
    switch (c->op) {
    case RG_OP_MATMUL_FORWARD: /* out, inp, weight */
        sz[0] = N * c->OC, sz[1] = N * C, sz[2] = (size_t)c->OC * C;
        break;
    case RG_OP_MATMUL_BACKWARD: /* dinp, dweight, dout, inp, weight */
        sz[0] = N * C, sz[1] = (size_t)c->OC * C, sz[2] = N * c->OC, sz[3] = N * C,
        sz[4] = (size_t)c->OC * C;
        break;
    case RG_OP_ATTENTION_FORWARD:  /* out, att, qkv */
    case RG_OP_ATTENTION_BACKWARD: /* out, att, qkv, dqkv, dout */
        sz[0] = N * C, sz[1] = att, sz[2] = N * 3 * C;
        if (c->op == RG_OP_ATTENTION_BACKWARD) sz[3] = N * 3 * C, sz[4] = N * C;
        break;
    case RG_OP_ADAMW: /* params, m, v, grads */
        sz[0] = sz[1] = sz[2] = sz[3] = c->n;
        break;
    case RG_OP_RMSNORM_FORWARD:  /* out, rstd, inp */
    case RG_OP_RMSNORM_BACKWARD: /* dinp, rstd, inp, dout */
        sz[0] = N * C, sz[1] = N, sz[2] = N * C, sz[3] = N * C;
        break;
    case RG_OP_SQRELU_FORWARD:
    case RG_OP_SQRELU_BACKWARD:
    case RG_OP_RESIDUAL_FORWARD: /* three vectors of n */
        sz[0] = sz[1] = sz[2] = c->n;
        break;
    case RG_OP_EMBEDDING_FORWARD:  /* out, wte, wpe */
    case RG_OP_EMBEDDING_BACKWARD: /* dout, dwte, dwpe */
        sz[0] = N * C, sz[1] = V * C, sz[2] = (size_t)c->T * C;
        *ntok = N;
        break;
    case RG_OP_CROSSENTROPY_FORWARD:  /* losses, probs, logits */
    case RG_OP_CROSSENTROPY_BACKWARD: /* losses, probs, logits, dlogits */
        sz[0] = N, sz[1] = N * V, sz[2] = N * V;
        if (c->op == RG_OP_CROSSENTROPY_BACKWARD) sz[3] = N * V;
        *ntok = N;
        break;
    case RG_OP_SUM_SQUARES:
        sz[0] = c->n;
        break;
    case RG_OP_COUNT:
        break;
    }
}

static int kb_setup(void *user, char *err, size_t err_len) {
    kb_case *c = user;
    memset(&c->ops, 0, sizeof c->ops);
    if (rg_backend_args_create(&c->cfg->args, c->cfg->plugin, &c->ops, err, err_len) != 0)
        return -1;

    rg_rng r;
    rg_rng_seed(&r, 1337 + (uint64_t)c->op);
    size_t sz[6], ntok;
    kb_buffer_sizes(c, sz, &ntok);
    for (int i = 0; i < 6; i++) {
        if (!sz[i]) continue;
        c->buf[i] = kb_alloc_random(sz[i], &r);
        if (!c->buf[i]) goto oom;
    }
    if (ntok) {
        c->tok = malloc(ntok * sizeof *c->tok);
        if (!c->tok) goto oom;
        for (size_t i = 0; i < ntok; i++) c->tok[i] = (int32_t)rg_rng_below(&r, (uint64_t)c->V);
    }
    /* Backward ops read what their forward kept: valid attention and softmax probabilities. */
    if (c->op == RG_OP_ATTENTION_BACKWARD)
        c->ops.k.attention_forward(c->ops.ctx, c->buf[0], c->buf[1], c->buf[2], c->B, c->T, c->C,
                                   c->NH);
    if (c->op == RG_OP_CROSSENTROPY_BACKWARD)
        c->ops.k.crossentropy_forward(c->ops.ctx, c->buf[0], c->buf[1], c->buf[2], c->tok,
                                      c->B * c->T, c->V);
    if (c->op == RG_OP_RMSNORM_BACKWARD)
        c->ops.k.rmsnorm_forward(c->ops.ctx, c->buf[0], c->buf[1], c->buf[2], c->B * c->T, c->C);
    if (c->op == RG_OP_ADAMW) /* the second moment must not be negative */
        for (size_t i = 0; i < c->n; i++) c->buf[2][i] *= c->buf[2][i];
    return 0;
oom:
    snprintf(err, err_len, "out of memory for the buffers of %s", rg_op_name(c->op));
    kb_teardown(c);
    return -1;
}

static void kb_run(void *user, int64_t iters) {
    kb_case *c = user;
    const rg_backend *k = &c->ops.k;
    rg_backend_ctx *x = c->ops.ctx;
    float **b = c->buf;
    const int N = c->B * c->T;
    for (int64_t it = 0; it < iters; it++) {
        switch (c->op) {
        case RG_OP_MATMUL_FORWARD: k->matmul_forward(x, b[0], b[1], b[2], N, c->C, c->OC); break;
        case RG_OP_MATMUL_BACKWARD:
            k->matmul_backward(x, b[0], b[1], b[2], b[3], b[4], N, c->C, c->OC);
            break;
        case RG_OP_ATTENTION_FORWARD:
            k->attention_forward(x, b[0], b[1], b[2], c->B, c->T, c->C, c->NH);
            break;
        case RG_OP_ATTENTION_BACKWARD:
            k->attention_backward(x, b[3], b[4], b[2], b[1], c->B, c->T, c->C, c->NH);
            break;
        /* t fixed at 1: the work is the same at every step */
        case RG_OP_ADAMW:
            k->adamw_step(x, b[0], b[1], b[2], b[3], c->n, 3e-4f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1);
            break;
        case RG_OP_RMSNORM_FORWARD: k->rmsnorm_forward(x, b[0], b[1], b[2], N, c->C); break;
        case RG_OP_RMSNORM_BACKWARD: k->rmsnorm_backward(x, b[0], b[3], b[2], b[1], N, c->C); break;
        case RG_OP_SQRELU_FORWARD: k->sqrelu_forward(x, b[0], b[1], c->n); break;
        case RG_OP_SQRELU_BACKWARD: k->sqrelu_backward(x, b[0], b[1], b[2], c->n); break;
        case RG_OP_RESIDUAL_FORWARD: k->residual_forward(x, b[0], b[1], b[2], c->n); break;
        case RG_OP_EMBEDDING_FORWARD:
            k->embedding_forward(x, b[0], c->tok, b[1], b[2], c->B, c->T, c->C);
            break;
        case RG_OP_EMBEDDING_BACKWARD:
            k->embedding_backward(x, b[1], b[2], b[0], c->tok, c->B, c->T, c->C);
            break;
        case RG_OP_CROSSENTROPY_FORWARD:
            k->crossentropy_forward(x, b[0], b[1], b[2], c->tok, N, c->V);
            break;
        case RG_OP_CROSSENTROPY_BACKWARD:
            k->crossentropy_backward(x, b[3], b[1], c->tok, N, c->V, 1.0f / (float)N);
            break;
        case RG_OP_SUM_SQUARES: c->sink = k->sum_squares(x, b[0], c->n); break;
        case RG_OP_COUNT: break;
        }
    }
}

/* FLOPs per call of the compute-bound ops: the parts of rg_model_step_flops. 0 for the others. */
static double kb_flops(const kb_case *c) {
    const double N = (double)c->B * c->T;
    const double attn = 4.0 * c->B * c->NH * (double)c->T * c->T * (c->C / c->NH);
    switch (c->op) {
    case RG_OP_MATMUL_FORWARD: return 2.0 * N * c->C * c->OC;
    case RG_OP_MATMUL_BACKWARD: return 4.0 * N * c->C * c->OC;
    case RG_OP_ATTENTION_FORWARD: return attn;
    case RG_OP_ATTENTION_BACKWARD: return 2.0 * attn;
    default: return 0.0;
    }
}

/* Bytes each memory-bound op must move per call: every float read plus every float written (a +=
 * output counts twice, an overwritten one once), and the int32 tokens. 0 for the compute-bound
 * ops. */
static double kb_bytes(const kb_case *c) {
    const double N = (double)c->B * c->T, C = c->C, V = c->V, n = (double)c->n;
    switch (c->op) {
    case RG_OP_ADAMW: return 4.0 * 7.0 * n; /* params, m, v read and written; grads read */
    case RG_OP_RMSNORM_FORWARD: return 4.0 * (2.0 * N * C + N);
    case RG_OP_RMSNORM_BACKWARD: return 4.0 * (4.0 * N * C + N);
    case RG_OP_SQRELU_FORWARD: return 4.0 * 2.0 * n;
    case RG_OP_SQRELU_BACKWARD: return 4.0 * 3.0 * n;
    case RG_OP_RESIDUAL_FORWARD: return 4.0 * 3.0 * n;
    case RG_OP_EMBEDDING_FORWARD: return 4.0 * (3.0 * N * C + N);
    case RG_OP_EMBEDDING_BACKWARD: return 4.0 * (5.0 * N * C + N);
    case RG_OP_CROSSENTROPY_FORWARD: return 4.0 * (2.0 * N * V + 2.0 * N);
    case RG_OP_CROSSENTROPY_BACKWARD: return 4.0 * (2.0 * N * V + N);
    case RG_OP_SUM_SQUARES: return 4.0 * n;
    default: return 0.0;
    }
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

/* Benchmarks per (backend, threads) pair: every op once, the two matmuls once per shape. */
#define KB_CASES_PER_PAIR (RG_OP_COUNT + 2 * (KB_NUM_MATMUL_SHAPES - 1))

/* Every benchmark's state, allocated once for all pairs; it must live until the run ends. */
typedef struct kb_list {
    kb_config *configs; /* (num_backends * num_threads) */
    int num_configs;
    kb_case *cases;     /* (num_backends * num_threads * KB_CASES_PER_PAIR) */
    int num_cases;
} kb_list;

/* Registers the benchmarks of one (backend, threads) pair and records its describe line. Returns 0,
 * or 1 if the backend refuses that thread count (a note is printed; nothing is registered). */
static int kb_register_pair(kb_list *list, const rg_plugin *plugin, const rg_backend_args *ba,
                            int threads, const rg_preset *p, int V) {
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
    char describe[512], native[1024], key[256];
    probe.k.describe(probe.ctx, describe, sizeof describe);
    rg_ops_native_list(&probe, native, sizeof native);
    uint32_t native_mask = probe.native_mask;
    rg_ops_destroy(&probe);

    snprintf(key, sizeof key, "describe:%s/t%d", name, threads);
    rg_kbench_add_context(key, describe);
    snprintf(key, sizeof key, "native_ops:%s", name);
    rg_kbench_add_context(key, native);

    const rg_model_config mc = {.V = V, .maxT = p->T, .C = p->C, .NH = p->NH, .L = p->L};
    const size_t num_params = rg_model_num_params(&mc);
    const size_t N = (size_t)p->B * p->T;
    for (int op = 0; op < RG_OP_COUNT; op++) {
        int is_matmul = op == RG_OP_MATMUL_FORWARD || op == RG_OP_MATMUL_BACKWARD;
        int num_shapes = is_matmul ? (int)KB_NUM_MATMUL_SHAPES : 1;
        for (int s = 0; s < num_shapes; s++) {
            kb_case *c = &list->cases[list->num_cases++];
            *c = (kb_case){.cfg = cfg, .op = (rg_op_kind)op, .B = p->B, .T = p->T, .C = p->C,
                           .NH = p->NH, .V = V};
            char bname[512];
            if (is_matmul) {
                const kb_matmul_shape *ms = &kb_matmul_shapes[s];
                c->C = ms->c_mult * p->C;
                c->OC = ms->oc_mult ? ms->oc_mult * p->C : V;
                snprintf(bname, sizeof bname, "%s/t%d/%s/%s", name, threads, rg_op_name(op),
                         ms->name);
            } else {
                snprintf(bname, sizeof bname, "%s/t%d/%s", name, threads, rg_op_name(op));
            }
            /* element counts as in one training step: the MLP hidden for sqrelu, the residual
             * stream for residual, every parameter for adamw and the gradient norm */
            if (op == RG_OP_SQRELU_FORWARD || op == RG_OP_SQRELU_BACKWARD) c->n = N * 4 * p->C;
            if (op == RG_OP_RESIDUAL_FORWARD) c->n = N * p->C;
            if (op == RG_OP_ADAMW || op == RG_OP_SUM_SQUARES) c->n = num_params;

            int is_native = (native_mask >> op) & 1u;
            rg_kbench_def def = {
                .name = bname,
                .label = is_native ? "native" : "reference fallback",
                .setup = kb_setup,
                .run = kb_run,
                .teardown = kb_teardown,
                .user = c,
                .flops_per_iter = kb_flops(c),
                .bytes_per_iter = kb_bytes(c),
                .num_counters = 2,
                .counters = {{"threads", threads}, {"native", is_native}},
            };
            rg_kbench_register(&def);
        }
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
        for (int t = 0; t < num_threads; t++)
            registered += kb_register_pair(&list, &plugins[opened], &ba, threads[t], p, V) == 0;
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
