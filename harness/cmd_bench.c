/* `randygpt bench`: whole training steps of every chosen backend at every chosen thread count, each
 * pair in a child process of its own (`bench --child`), so that thread pools of different runtimes
 * never meet and a crashing or hanging plugin is reported while the others go on. Writes
 * bench.json and bench.csv (docs/bench-format.md) and then runs scripts/report.py if present. */
#define _GNU_SOURCE /* strdup, strsignal */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/backend_args.h"
#include "app/bench_bandwidth.h"
#include "app/bench_contend.h"
#include "app/bench_json.h"
#include "app/bench_load.h"
#include "app/bench_machine.h"
#include "app/bench_peak.h"
#include "app/bench_proc.h"
#include "app/bench_run.h"
#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/data.h"
#include "randygpt/loader.h"
#include "randygpt/model.h"
#include "randygpt/text.h"
#include "randygpt/replicas.h"
#include "ranks/ranks.h"

#define BENCH_MAX_BACKENDS 64
#define BENCH_MAX_THREADS 64
#define BENCH_MAX_STRATEGY 16  /* entries of --replicas and of --ranks */
/* The FMA peak: each thread count is measured this many times for about this long, before the
 * first round, between rounds and after the last; the best of all counts. */
#define PEAK_TRY_MS 200
#define PEAK_TRIES 3
/* Passes of the bandwidth triad at each thread count; the best counts. */
#define BANDWIDTH_PASSES 3
/* A report script that runs longer than this is stopped. */
#define REPORT_TIMEOUT_S 300.0
/* The most of a child's stdout kept: its result line is a few KiB. */
#define CHILD_MAX_OUT (1 << 20)

typedef struct bench_backend {
    char label[256];  /* the name, or a path's file name without .so */
    char *arg;        /* what the child is given: a name or a path (malloc'd) */
} bench_backend;

typedef struct bench_opts {
    const char *backends;     /* "all" or a comma list */
    int threads[BENCH_MAX_THREADS];
    int num_threads;
    int replicas[BENCH_MAX_STRATEGY];  /* --replicas: data-parallel replicas per process */
    int num_replicas;
    int ranks[BENCH_MAX_STRATEGY];     /* --ranks: processes under mpirun */
    int num_ranks;
    rg_bench_child_config run;  /* what each child measures: preset, steps, warmup, repeat, ... */
    const char *out;
    rg_backend_args ba;       /* only --backend-dir and --backend-opt: passed on to every child */
    double timeout_s;
    const char *machine;      /* overrides the slug */
    const char *report_script;
    int contend;              /* busy processes during the rounds (--contend) */
    int bandwidth_mib;        /* size of each triad array; 0: rg_bandwidth_array_bytes() */
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt bench [OPTIONS]\n"
            "\n"
            "Times whole training steps (forward, backward, AdamW) of each backend at each thread\n"
            "count, each repeat in a process of its own (warm-up, then the timed steps), the repeats\n"
            "round by round over every pair so that a slow phase of the machine falls on all pairs\n"
            "alike, and writes OUT/MACHINE/TIMESTAMP/bench.json and bench.csv (see\n"
            "docs/bench-format.md), then runs scripts/report.py on them if present.\n"
            "\n"
            "options:\n"
            "  --backends all|A,B,PATH  backends by name or .so path; all: every plugin found (default)\n"
            "  --threads N,M,...        thread counts (default 1 and the CPUs this process may use);\n"
            "                           per rank under --ranks\n"
            "  --replicas R,S,...       data-parallel replicas of each step (default 1): every\n"
            "                           thread count that is a multiple of R runs with R replicas\n"
            "  --ranks P,Q,...          processes of each step, started by mpirun (default 1; a build\n"
            "                           with MPI and mpirun on PATH)\n"
            "  --preset P               model preset: tiny, small, medium, large (default small)\n"
            "  --steps N                timed steps per repeat (default 20)\n"
            "  --warmup W               untimed steps before each repeat (default 3)\n"
            "  --repeat R               timed repeats (rounds); step time is their median (default 3)\n"
            "  --micro-batches K        each replica's share of a step run as K passes in sequence,\n"
            "                           gradients accumulated (default: as train, passes of 512\n"
            "                           tokens or more)\n"
            "  --out DIR                results folder (default results)\n"
            "  --backend-dir DIR        searched first for a backend NAME\n"
            "  --backend-opt KEY=VALUE  passed to every backend's create (repeatable)\n"
            "  --timeout SEC            wall-clock limit of each child (default 600)\n"
            "  --data FILE              train on this text (default: seeded random tokens, V=%d)\n"
            "  --seed S                 seed of the weights and the tokens (default %d)\n"
            "  --machine NAME           name of the machine folder (default: from the CPU model)\n"
            "  --report-script PATH     report generator (default: report.py in the share/randygpt\n"
            "                           folder of this program's prefix, else SOURCE/scripts)\n"
            "  --contend N              run N busy processes during the rounds (default 0)\n"
            "  --bandwidth-mib M        MiB of each bandwidth triad array (default: twice the\n"
            "                           last-level cache, 64 to 1024)\n"
            "  --help                   this help\n"
            "\n"
            "Exit status: 0 when every run succeeded or was refused by its backend (e.g. a\n"
            "one-thread backend asked for 2), 1 when any failed or all were refused (results\n"
            "are still written), 2 on bad usage.\n",
            RG_BENCH_SYNTHETIC_V, RG_BENCH_DEFAULT_SEED);
}

#define CMD "randygpt bench"

/* The options of what a child measures, taken alike by the parent and the child. */
enum {
    OPT_PRESET = RG_CLI_FIRST_ID, OPT_DATA, OPT_SEED, OPT_STEPS, OPT_WARMUP, OPT_REPEAT,
    OPT_BACKENDS, OPT_THREAD_LIST, OPT_TIMEOUT, OPT_MACHINE, OPT_OUT, OPT_REPORT_SCRIPT, OPT_CHILD,
    OPT_CONTEND, OPT_BANDWIDTH_MIB, OPT_REPLICA_LIST, OPT_RANK_LIST, OPT_CHILD_REPLICAS,
    OPT_MICRO_BATCHES
};
#define RUN_OPTIONS                                            \
    {"preset", required_argument, NULL, OPT_PRESET},           \
    {"data", required_argument, NULL, OPT_DATA},               \
    {"seed", required_argument, NULL, OPT_SEED},               \
    {"steps", required_argument, NULL, OPT_STEPS},             \
    {"warmup", required_argument, NULL, OPT_WARMUP},           \
    {"repeat", required_argument, NULL, OPT_REPEAT},           \
    {"micro-batches", required_argument, NULL, OPT_MICRO_BATCHES}

static const struct option parent_options[] = {
    RUN_OPTIONS,
    /* --backend-dir and --backend-opt as every command takes them (--threads here is a list) */
    RG_OPTION_BACKEND_DIR,
    RG_OPTION_BACKEND_OPT,
    {"backends", required_argument, NULL, OPT_BACKENDS},
    {"threads", required_argument, NULL, OPT_THREAD_LIST},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"machine", required_argument, NULL, OPT_MACHINE},
    {"out", required_argument, NULL, OPT_OUT},
    {"report-script", required_argument, NULL, OPT_REPORT_SCRIPT},
    {"contend", required_argument, NULL, OPT_CONTEND},
    {"bandwidth-mib", required_argument, NULL, OPT_BANDWIDTH_MIB},
    {"replicas", required_argument, NULL, OPT_REPLICA_LIST},
    {"ranks", required_argument, NULL, OPT_RANK_LIST},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

/* `bench --child`: one backend at one thread count (the parent passes these). */
static const struct option child_options[] = {
    RUN_OPTIONS,
    RG_BACKEND_OPTIONS,
    {"child", no_argument, NULL, OPT_CHILD},
    {"replicas", required_argument, NULL, OPT_CHILD_REPLICAS},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

/* Returns 0, -1 after rg_cli_error, RG_CLI_NOT_MINE for an id that is not a run option. */
static int take_run_option(rg_cli *c, rg_bench_child_config *cc, int id, const char *v) {
    const rg_preset *ps;
    switch (id) {
    case OPT_PRESET:
        if (rg_cli_preset(c, v, &ps) != 0) return -1;
        cc->preset = ps->name;
        return 0;
    case OPT_DATA: return rg_cli_string(c, v, &cc->data);
    case OPT_SEED: {
        uint64_t seed;
        if (rg_cli_u64(c, v, &seed) != 0) return -1;
        cc->seed = seed;
        return 0;
    }
    case OPT_STEPS: return rg_cli_int(c, v, 1, INT_MAX / (2 * RG_BENCH_MAX_REPEAT), &cc->steps);
    case OPT_WARMUP: return rg_cli_int(c, v, 0, INT_MAX / 2, &cc->warmup);
    case OPT_REPEAT: return rg_cli_int(c, v, 1, RG_BENCH_MAX_REPEAT, &cc->repeat);
    case OPT_MICRO_BATCHES: return rg_cli_int(c, v, 1, 1000000L, &cc->micro_batches);
    default: return RG_CLI_NOT_MINE;
    }
}

static int take_parent_option(rg_cli *c, int id, const char *v, void *user) {
    bench_opts *o = user;
    switch (id) {
    case OPT_BACKENDS: return rg_cli_string(c, v, &o->backends);
    case OPT_THREAD_LIST:
        return rg_cli_int_list(c, v, 1, RG_MAX_THREADS, o->threads, BENCH_MAX_THREADS,
                               &o->num_threads);
    case OPT_TIMEOUT: return rg_cli_double(c, v, 0.0, 1, 1e6, &o->timeout_s);
    case OPT_MACHINE:
        if (rg_cli_string(c, v, &o->machine) != 0) return -1;
        if (strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, ".."))
            return rg_cli_error(c, "--machine must be a folder name (no '/', not . or ..), got '%s'", v);
        return 0;
    case OPT_OUT: return rg_cli_string(c, v, &o->out);
    case OPT_REPORT_SCRIPT: return rg_cli_string(c, v, &o->report_script);
    case OPT_CONTEND: return rg_cli_int(c, v, 0, RG_CONTEND_MAX, &o->contend);
    case OPT_BANDWIDTH_MIB: return rg_cli_int(c, v, 1, 16384, &o->bandwidth_mib);
    case OPT_REPLICA_LIST:
        return rg_cli_int_list(c, v, 1, RG_MAX_THREADS, o->replicas, BENCH_MAX_STRATEGY,
                               &o->num_replicas);
    case OPT_RANK_LIST:
        return rg_cli_int_list(c, v, 1, RG_BENCH_MAX_RANKS, o->ranks, BENCH_MAX_STRATEGY,
                               &o->num_ranks);
    case RG_OPT_BACKEND_DIR:
    case RG_OPT_BACKEND_OPT: return rg_backend_args_take(c, &o->ba, id, v);
    default: return take_run_option(c, &o->run, id, v);
    }
}

/* Returns 0 with o filled, 1 after --help, or 2 with one line printed. */
static int parse_options(int argc, char **argv, bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->backends = "all";
    o->run = (rg_bench_child_config){"small", 20, 3, 3, RG_BENCH_DEFAULT_SEED, NULL, 1, 0};
    o->replicas[o->num_replicas++] = 1;
    o->ranks[o->num_ranks++] = 1;
    o->out = "results";
    rg_backend_args_init(&o->ba);
    o->timeout_s = 600.0;
    o->threads[o->num_threads++] = 1;
    int cpus = rg_default_threads();
    if (cpus > 1) o->threads[o->num_threads++] = cpus;
    int rc = rg_cli_parse(CMD, parent_options, argc, argv, take_parent_option, o, usage);
    if (rc) return rc;
    if (o->run.data && access(o->run.data, R_OK) != 0) {
        fprintf(stderr, CMD ": cannot read --data %s: %s\n", o->run.data, strerror(errno));
        return 2;
    }
    return 0;
}

/* ---- the child: `randygpt bench --child ...` ---- */

typedef struct child_opts {
    rg_backend_args ba;
    rg_bench_child_config cc;
} child_opts;

static int take_child_option(rg_cli *c, int id, const char *v, void *user) {
    child_opts *o = user;
    if (id == OPT_CHILD) return 0;
    if (id == OPT_CHILD_REPLICAS) return rg_cli_int(c, v, 1, RG_MAX_THREADS, &o->cc.replicas);
    int r = take_run_option(c, &o->cc, id, v);
    return r == RG_CLI_NOT_MINE ? rg_backend_args_take(c, &o->ba, id, v) : r;
}

static int child_main(int argc, char **argv) {
    child_opts o = {.cc = {"small", 20, 3, 3, RG_BENCH_DEFAULT_SEED, NULL, 1, 0}};
    rg_backend_args_init(&o.ba);
    int rc = rg_cli_parse(CMD, child_options, argc, argv, take_child_option, &o, usage);
    if (rc) return rc == 1 ? 0 : rc;
    return rg_bench_child(&o.ba, &o.cc, stdout);
}

/* ---- the parent ---- */

typedef struct backend_list {
    bench_backend items[BENCH_MAX_BACKENDS];
    int n;
} backend_list;

/* The label of a backend argument: a path's file name without ".so", else the name itself. */
static void backend_label(const char *arg, char *label, size_t n) {
    const char *base = strrchr(arg, '/');
    base = base ? base + 1 : arg;
    size_t len = strlen(base);
    if (len > 3 && !strcmp(base + len - 3, ".so")) len -= 3;
    rg_errf(label, n, "%.*s", (int)len, base);
}

static int add_backend(backend_list *l, const char *label, const char *arg) {
    if (l->n == BENCH_MAX_BACKENDS) return -1;
    bench_backend *b = &l->items[l->n];
    rg_errf(b->label, sizeof b->label, "%s", label);
    if (!(b->arg = strdup(arg))) return -1;
    l->n++;
    return 0;
}

static void collect_plugin(const char *name, const char *path, void *user) {
    if (add_backend(user, name, path) != 0)
        fprintf(stderr, "randygpt bench: warning: more than %d plugins, '%s' left out\n",
                BENCH_MAX_BACKENDS, name);
}

/* Each entry of --backends in order; "all" stands for every plugin found, in name order. Returns 0,
 * or the exit status after one line: 2 for a NAME no search folder holds, 1 otherwise. */
static int resolve_backends(const bench_opts *o, backend_list *l) {
    l->n = 0;
    char *buf = strdup(o->backends), *save = NULL;
    if (!buf) return 1;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "all")) {
            int before = l->n;
            rg_plugin_list(o->ba.backend_dir, collect_plugin, l);
            if (l->n > before) continue;
            fprintf(stderr,
                    "randygpt bench: no backend plugins found (searched %s, $%s and %s); pass "
                    "--backend-dir or --backends\n",
                    o->ba.backend_dir ? o->ba.backend_dir : "no --backend-dir", RG_BACKEND_PATH_ENV,
                    rg_plugin_default_dir()[0] ? rg_plugin_default_dir() : "the executable's folder");
            free(buf);
            return 1;
        }
        char *hint = rg_backend_names_hint(tok, o->ba.backend_dir);
        if (hint) {
            fprintf(stderr, "randygpt bench: --backends: unknown backend '%s'; %s\n", tok, hint);
            free(hint);
            free(buf);
            return 2;
        }
        char label[256];
        backend_label(tok, label, sizeof label);
        if (!label[0] || add_backend(l, label, tok) != 0) {
            fprintf(stderr, "randygpt bench: --backends: bad entry '%s' or more than %d backends\n",
                    tok, BENCH_MAX_BACKENDS);
            free(buf);
            return 1;
        }
    }
    free(buf);
    if (l->n == 0) {
        fprintf(stderr, "randygpt bench: --backends names no backend\n");
        return 1;
    }
    return 0;
}

static int mkdir_p(const char *path) {
    char *buf = strdup(path);
    if (!buf) return -1;
    int rc = 0;
    for (char *p = buf + 1; *p && rc == 0; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
    int saved = errno;
    free(buf);
    errno = saved;
    return rc;
}

/* Creates OUT/SLUG/TIMESTAMP (with -2, -3... if taken). Returns it (malloc'd), or NULL after one
 * line on stderr. */
static char *make_run_dir(const char *out, const char *slug, const struct tm *utc) {
    char stamp[32], *parent = rg_strf("%s/%s", out, slug);
    if (!parent) return NULL;
    if (mkdir_p(parent) != 0) {
        fprintf(stderr, "randygpt bench: cannot create %s: %s\n", parent, strerror(errno));
        free(parent);
        return NULL;
    }
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", utc);
    for (int k = 1; k < 1000; k++) {
        char *dir = k == 1 ? rg_strf("%s/%s", parent, stamp) : rg_strf("%s/%s-%d", parent, stamp, k);
        if (!dir) break;
        if (mkdir(dir, 0755) == 0) {
            free(parent);
            return dir;
        }
        free(dir);
        if (errno != EEXIST) break;
    }
    fprintf(stderr, "randygpt bench: cannot create a run folder in %s: %s\n", parent, strerror(errno));
    free(parent);
    return NULL;
}

/* The last non-empty line of a file, for the error of a child that failed. */
static void last_line(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) rg_errf(buf, n, "%s", line);
    }
    free(line);
    fclose(f);
}

/* One configuration of the run: a backend, its threads per rank, replicas per rank, ranks. */
typedef struct bench_config {
    const bench_backend *backend;
    int threads, replicas, ranks;
    int micro; /* micro-batches of each replica's share, --micro-batches or the default resolved */
} bench_config;

/* mpirun on PATH (malloc'd), or NULL. */
static char *find_mpirun(void) {
    const char *path = getenv("PATH");
    char *dirs = strdup(path && *path ? path : "/usr/bin:/bin"), *save = NULL, *found = NULL;
    for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found; d = strtok_r(NULL, ":", &save)) {
        found = rg_strf("%s/mpirun", d);
        if (found && access(found, X_OK) != 0) free(found), found = NULL;
    }
    free(dirs);
    return found;
}

/* Why runs of several ranks cannot start here (NULL when they can); *mpirun set when they can. */
static const char *ranks_unavailable(char **mpirun) {
    *mpirun = NULL;
    if (!rg_ranks_have_mpi())
        return "this build has no MPI (configure with OpenMPI installed, or -DRANDYGPT_MPI=ON)";
    if (!(*mpirun = find_mpirun())) return "mpirun is not on PATH (install openmpi-bin)";
    return NULL;
}

/* The launcher's words before the program for cfg->ranks > 1: mpirun -np P, every rank free to run
 * on any CPU (as the threads of a single process are), oversubscribed when ranks x threads exceed
 * the CPUs, and allowed to run as root. Returns the words added at argv. */
static int mpirun_prefix(const bench_config *cfg, char *mpirun, char *np, size_t np_len,
                         char **argv) {
    int n = 0;
    snprintf(np, np_len, "%d", cfg->ranks);
    argv[n++] = mpirun;
    argv[n++] = "-np";
    argv[n++] = np;
    argv[n++] = "--bind-to";
    argv[n++] = "none";
    if (cfg->ranks * cfg->threads > rg_default_threads()) argv[n++] = "--oversubscribe";
    if (geteuid() == 0) argv[n++] = "--allow-run-as-root";
    return n;
}

/* One child's command line and the strings it points into. */
typedef struct child_args {
    char threads[16], replicas[16], ranks[16], steps[16], warmup[16], seed[32], micro[16];
    char opts[RG_MAX_BACKEND_OPTS][RG_BACKEND_OPT_LEN];
    char *argv[48 + 2 * RG_MAX_BACKEND_OPTS];
} child_args;

/* "[mpirun -np P ...] EXE bench --child --backend ARG --threads N --replicas R ..." for one
 * configuration's child; mpirun: the launcher when cfg->ranks > 1. */
static void child_args_make(child_args *c, const bench_opts *o, const char *exe, char *mpirun,
                            const bench_config *cfg) {
    const bench_backend *b = cfg->backend;
    snprintf(c->threads, sizeof c->threads, "%d", cfg->threads);
    snprintf(c->replicas, sizeof c->replicas, "%d", cfg->replicas);
    snprintf(c->steps, sizeof c->steps, "%d", o->run.steps);
    snprintf(c->warmup, sizeof c->warmup, "%d", o->run.warmup);
    snprintf(c->seed, sizeof c->seed, "%llu", o->run.seed);
    snprintf(c->micro, sizeof c->micro, "%d", cfg->micro);
    char **argv = c->argv;
    int n = cfg->ranks > 1 ? mpirun_prefix(cfg, mpirun, c->ranks, sizeof c->ranks, argv) : 0;
    argv[n++] = (char *)exe;
    argv[n++] = "bench";
    argv[n++] = "--child";
    argv[n++] = "--backend";
    argv[n++] = b->arg;
    argv[n++] = "--threads";
    argv[n++] = c->threads;
    argv[n++] = "--replicas";
    argv[n++] = c->replicas;
    argv[n++] = "--preset";
    argv[n++] = (char *)o->run.preset;
    argv[n++] = "--steps";
    argv[n++] = c->steps;
    argv[n++] = "--warmup";
    argv[n++] = c->warmup;
    argv[n++] = "--repeat";
    argv[n++] = "1"; /* one repeat per child: the parent runs the rounds */
    argv[n++] = "--seed";
    argv[n++] = c->seed;
    argv[n++] = "--micro-batches";
    argv[n++] = c->micro;
    if (o->run.data) {
        argv[n++] = "--data";
        argv[n++] = (char *)o->run.data;
    }
    if (o->ba.backend_dir) {
        argv[n++] = "--backend-dir";
        argv[n++] = (char *)o->ba.backend_dir;
    }
    for (int k = 0; k < o->ba.num_options; k++) {
        const char *key = o->ba.option_text[k]; /* KEY\0VALUE, shorter than RG_BACKEND_OPT_LEN */
        snprintf(c->opts[k], sizeof c->opts[k], "%s=%s", key, key + strlen(key) + 1);
        argv[n++] = "--backend-opt";
        argv[n++] = c->opts[k];
    }
    argv[n] = NULL;
}

/* Fills r from how the child ended: its result line, or why it has none (from its log). */
static void child_result(const bench_opts *o, const rg_proc_result *pr, const char *log_path,
                         rg_bench_result *r) {
    r->wall_s = pr->wall_s;
    r->peak_rss_bytes = (long long)pr->maxrss_kib * 1024;
    char line[RG_ERR_LEN];
    if (pr->end == RG_PROC_TIMED_OUT) {
        rg_bench_result_fail(r, "timeout", "timed out after %g s, killed", o->timeout_s);
    } else if (pr->end == RG_PROC_SIGNALED) {
        rg_errf(r->signal, sizeof r->signal, "%s", rg_signal_name(pr->signo, line, sizeof line));
        rg_bench_result_fail(r, "signal", "killed by %s (%s)", r->signal, strsignal(pr->signo));
    } else if (pr->exit_code == RG_BENCH_EXIT_REFUSED) {
        r->exit_code = pr->exit_code;
        last_line(log_path, line, sizeof line);
        rg_bench_result_fail(r, "refused", "%s", line[0] ? line : "the backend refused the configuration");
    } else if (pr->exit_code != 0) {
        r->exit_code = pr->exit_code;
        last_line(log_path, line, sizeof line);
        rg_bench_result_fail(r, "exit", "exit status %d: %s", pr->exit_code,
                             line[0] ? line : "(no message)");
    } else {
        r->exit_code = 0;
        /* The result is the last non-empty line: a plugin may have printed before it. */
        char *out = pr->out;
        size_t len = strlen(out);
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r')) out[--len] = '\0';
        char *start = strrchr(out, '\n');
        start = start ? start + 1 : out;
        if (rg_bench_result_parse(r, start, line, sizeof line) != 0)
            rg_bench_result_fail(r, "output", "bad result line: %s", line);
    }
}

/* r emptied and named after cfg: its backend, path, threads, replicas and ranks. */
static void result_start(const bench_config *cfg, rg_bench_result *r) {
    memset(r, 0, sizeof *r);
    rg_errf(r->backend, sizeof r->backend, "%s", cfg->backend->label);
    rg_errf(r->path, sizeof r->path, "%s", cfg->backend->arg);
    r->threads = cfg->threads;
    r->replicas = cfg->replicas;
    r->ranks = cfg->ranks;
    r->micro_batches = cfg->micro;
    r->exit_code = -1;
}

/* Runs one configuration's child and fills r. mpirun: the launcher when cfg->ranks > 1. */
static void run_child(const bench_opts *o, const char *exe, char *mpirun, const bench_config *cfg,
                      const char *log_path, rg_bench_result *r) {
    child_args args;
    child_args_make(&args, o, exe, mpirun, cfg);
    result_start(cfg, r);
    r->ok = 1;
    rg_proc_result pr;
    char err[RG_ERR_LEN];
    if (rg_proc_run(args.argv, log_path, o->timeout_s, CHILD_MAX_OUT, &pr, err, sizeof err) != 0) {
        rg_bench_result_fail(r, "exit", "%s", err);
        return;
    }
    child_result(o, &pr, log_path, r);
    free(pr.out);
}

/* Writes s as one CSV field (RFC 4180). */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A CSV number: empty when not finite. */
static void csv_num(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.6g", x);
}

static int write_csv(const char *path, const bench_opts *o, const rg_preset *ps,
                     const rg_bench_result *runs, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("backend,threads,replicas,ranks,status,reason,preset,B,T,step_ms_median,step_ms_min,"
          "step_ms_max,tok_per_s,gflops,peak_gflops,mfu,speedup,reduce_ms_per_step,reduce_fraction,"
          "peak_rss_mib,peak_rss_sum_mib,num_native_ops,describe\n",
          f);
    for (int i = 0; i < n; i++) {
        const rg_bench_result *r = &runs[i];
        csv_field(f, r->backend);
        fprintf(f, ",%d,%d,%d,%s,", r->threads, r->replicas, r->ranks, r->ok ? "ok" : "failed");
        csv_field(f, r->ok ? "" : r->reason);
        fputc(',', f);
        csv_field(f, o->run.preset);
        fprintf(f, ",%d,%d,", ps->B, ps->T);
        const double nan = NAN;
        const double v[] = {r->step_ms_median, r->step_ms_min, r->step_ms_max, r->tok_per_s,
                            r->gflops, r->peak_gflops, r->mfu, r->speedup, r->reduce_ms_per_step,
                            r->reduce_fraction};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            csv_num(f, r->ok ? v[k] : nan);
            fputc(',', f);
        }
        csv_num(f, (double)r->peak_rss_bytes / (1024.0 * 1024.0));
        fputc(',', f);
        csv_num(f, r->ok ? (double)r->peak_rss_sum_bytes / (1024.0 * 1024.0) : nan);
        fputc(',', f);
        if (r->ok) fprintf(f, "%d", r->num_native_ops);
        fputc(',', f);
        csv_field(f, r->ok ? r->describe : "");
        fputc('\n', f);
    }
    return fclose(f);
}

typedef struct bench_context {
    const bench_opts *o;
    const rg_preset *ps;
    rg_model_config mc;
    rg_machine_info mi;
    const char *src_dir;      /* NULL when unknown */
    char commit[64];
    char created[32];         /* ISO 8601 UTC */
    char *command;            /* the command line (malloc'd) */
    bench_config *configs;    /* (nconfigs) every configuration that fits, in run order */
    int nconfigs;
    char *mpirun;             /* the launcher of runs with several ranks (malloc'd), or NULL */
    const char *no_ranks;     /* why runs of several ranks cannot start, or NULL */
    int children;             /* run so far, and their wall time: the estimate of what is left */
    double spent_s;
    /* the FMA peak and the triad bandwidth at each thread count of o->threads, in that order, then
     * at each total of threads x ranks the list lacks, and at 1 thread if it lacks that too (the
     * reference of the scaling check) */
    int npeak;
    rg_peak_series peak[2 * BENCH_MAX_THREADS + 1];
    double bandwidth_gbps[2 * BENCH_MAX_THREADS + 1];
    size_t bandwidth_bytes;   /* of each triad array */
    rg_machine_load load;     /* what else ran during the rounds */
    /* why the run's MFU figures cannot be trusted: one sentence each */
    int nproblems;
    char problems[BENCH_MAX_THREADS * 64 + 8][320];
} bench_context;

/* The best FMA peak so far at threads, or NAN if it was never measured. */
static double peak_at(const bench_context *c, int threads) {
    for (int k = 0; k < c->npeak; k++)
        if (c->peak[k].threads == threads && c->peak[k].best > 0) return c->peak[k].best;
    return NAN;
}

/* One more measurement of the FMA peak at every thread count; when names the moment. */
static void measure_peaks(bench_context *c, const char *when) {
    for (int k = 0; k < c->npeak; k++) {
        const int t = c->peak[k].threads;
        double g = rg_peak_gflops(t, PEAK_TRY_MS, PEAK_TRIES);
        if (g > 0) rg_peak_series_add(&c->peak[k], g);
        fprintf(stderr, "bench: fp32 FMA peak %s (%s, %d-bit), %d thread%s: %.1f GFLOP/s (best %.1f)\n",
                when, rg_peak_isa(), rg_peak_vector_bits(), t, t > 1 ? "s" : "", g,
                c->peak[k].best);
    }
}

static void add_problem(bench_context *c, const char *text) {
    const int max = (int)(sizeof c->problems / sizeof c->problems[0]);
    if (c->nproblems < max) rg_errf(c->problems[c->nproblems++], sizeof c->problems[0], "%s", text);
}

/* After the last round: the checks that make a run unreliable (docs/bench-format.md). */
static void check_reliability(bench_context *c, const rg_bench_result *runs, int total) {
    char why[320];
    const double one = peak_at(c, 1);
    for (int k = 0; k < c->npeak; k++)
        if (!rg_peak_scaling_ok(c->peak[k].threads, c->peak[k].best, one, c->mi.cpus, why,
                                sizeof why))
            add_problem(c, why);
    for (int i = 0; i < total; i++) {
        const rg_bench_result *r = &runs[i];
        if (r->ok && r->mfu > 1.0) {
            rg_errf(why, sizeof why,
                    "%s at %d thread%s: MFU %.1f%% exceeds 100%%: the peak it is measured "
                    "against is too low",
                    r->backend, r->threads, r->threads > 1 ? "s" : "", 100.0 * r->mfu);
            add_problem(c, why);
        }
    }
    char why_steal[320];
    if (!rg_machine_load_ok(&c->load, why, why_steal, sizeof why)) {
        if (why[0]) add_problem(c, why);
        if (why_steal[0]) add_problem(c, why_steal);
    }
}

static json_t *machine_json(const bench_context *c) {
    const rg_machine_info *mi = &c->mi;
    return json_pack("{s:o, s:o, s:o, s:o, s:i, s:{s:b, s:b, s:b}, s:o, s:o}", "slug",
                     rg_json_text(c->o->machine ? c->o->machine : mi->slug), "cpu_model",
                     rg_json_text(mi->cpu_model), "cpu_family",
                     mi->cpu_family >= 0 ? json_integer(mi->cpu_family) : json_null(),
                     "cpu_model_number",
                     mi->cpu_model_number >= 0 ? json_integer(mi->cpu_model_number) : json_null(),
                     "cpus", mi->cpus, "flags", "avx2", mi->avx2,
                     "avx512f", mi->avx512f, "fma", mi->fma, "kernel", rg_json_text(mi->kernel),
                     "mem_total_bytes",
                     mi->mem_total_bytes >= 0 ? json_integer(mi->mem_total_bytes) : json_null());
}

static json_t *build_json(const bench_context *c) {
    return json_pack("{s:o, s:o, s:o, s:o}", "compiler", rg_json_text(rg_build_compiler()), "flags",
                     rg_json_text(rg_build_flags()), "git_commit", rg_json_text(c->commit),
                     "source_dir", rg_json_text(c->src_dir));
}

/* A seed as a JSON integer; one above jansson's signed 64-bit range as the nearest double. */
static json_t *seed_json(unsigned long long seed) {
    return seed <= (unsigned long long)LLONG_MAX ? json_integer((json_int_t)seed)
                                                        : json_real((double)seed);
}

/* What each replica after the first should add at 2 replicas on one rank, term by term. */
static json_t *replica_bytes_json(const bench_context *c) {
    rg_dp_replica_bytes rb;
    rg_dp_replica_cost(&c->mc, c->ps->B, c->ps->T, 2, &rb);
    return json_pack("{s:o, s:o, s:o, s:o}", "param_grads", rg_json_real(rb.param_grads), "acts",
                     rg_json_real(rb.acts), "batch", rg_json_real(rb.batch), "total",
                     rg_json_real(rb.total));
}

static json_t *config_json(const bench_context *c) {
    const bench_opts *o = c->o;
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:o, s:i, s:i, s:i, s:o, s:o, s:o, "
                     "s:i, s:i}",
                     "preset", o->run.preset, "B", c->ps->B, "T", c->ps->T, "C", c->mc.C, "NH",
                     c->mc.NH, "L", c->mc.L, "V", c->mc.V, "num_params",
                     (json_int_t)rg_model_num_params(&c->mc), "step_flops",
                     rg_json_real(rg_model_step_flops(&c->mc, c->ps->B, c->ps->T)), "steps",
                     o->run.steps, "warmup", o->run.warmup, "repeat", o->run.repeat, "data",
                     rg_json_text(o->run.data ? o->run.data : "synthetic"), "seed",
                     seed_json(o->run.seed), "timeout_s", rg_json_real(o->timeout_s), "contend",
                     o->contend, "micro_batches", o->run.micro_batches);
    if (j && json_object_set_new(j, "replica_bytes", replica_bytes_json(c)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Appends v to array a (taking v); returns -1 when v is NULL or the append fails. */
static int append(json_t *a, json_t *v) { return json_array_append_new(a, v); }

static json_t *peak_json(const bench_context *c) {
    json_t *by = json_array();
    for (int k = 0; by && k < c->npeak; k++) {
        const rg_peak_series *p = &c->peak[k];
        json_t *samples = json_array();
        for (int s = 0; samples && s < p->n; s++)
            if (append(samples, rg_json_real(p->samples[s])) != 0) json_decref(samples), samples = NULL;
        if (append(by, json_pack("{s:i, s:o, s:o, s:o}", "threads", p->threads, "gflops",
                                 rg_json_real(p->best > 0 ? p->best : NAN), "gflops_per_thread",
                                 rg_json_real(p->best > 0 ? p->best / p->threads : NAN), "samples",
                                 samples)) != 0)
            json_decref(by), by = NULL;
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:o}", "isa", rg_peak_isa(), "vector_bits",
                     rg_peak_vector_bits(), "chains", rg_peak_chains(), "try_ms", PEAK_TRY_MS,
                     "tries", PEAK_TRIES, "by_threads", by);
}

static json_t *bandwidth_json(const bench_context *c) {
    json_t *by = json_array();
    for (int k = 0; by && k < c->npeak; k++) {
        double g = c->bandwidth_gbps[k];
        if (append(by, json_pack("{s:i, s:o}", "threads", c->peak[k].threads, "gbps",
                                 rg_json_real(g > 0 ? g : NAN))) != 0)
            json_decref(by), by = NULL;
    }
    return json_pack("{s:s, s:I, s:i, s:o}", "kernel", "triad", "array_bytes",
                     (json_int_t)c->bandwidth_bytes, "passes", BANDWIDTH_PASSES, "by_threads", by);
}

/* The load of the rounds (bench_load.h), or null when /proc/stat was unreadable. */
static json_t *load_json(const bench_context *c) {
    const rg_machine_load *l = &c->load;
    if (!l->known) return json_null();
    return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "cpus", l->cpus, "wall_s",
                     rg_json_real(l->wall_s), "others_cpu_s", rg_json_real(l->others_s),
                     "others_fraction", rg_json_real(l->others_fraction), "steal_s",
                     rg_json_real(l->steal_s), "steal_fraction", rg_json_real(l->steal_fraction));
}

static json_t *reliability_json(const bench_context *c) {
    json_t *problems = json_array();
    for (int k = 0; problems && k < c->nproblems; k++)
        if (append(problems, rg_json_text(c->problems[k])) != 0)
            json_decref(problems), problems = NULL;
    return json_pack("{s:b, s:o}", "reliable", c->nproblems == 0, "problems", problems);
}

/* bench.json (docs/bench-format.md). Returns 0, or -1 with errno. */
static int write_json(const char *path, const bench_context *c, const rg_bench_result *runs, int n) {
    json_t *list = json_array();
    for (int i = 0; list && i < n; i++)
        if (append(list, rg_bench_result_json(&runs[i], 0)) != 0) json_decref(list), list = NULL;
    json_t *root = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "schema",
                             "randygpt-bench/2", "created_utc", rg_json_text(c->created), "command",
                             rg_json_text(c->command), "machine", machine_json(c), "build",
                             build_json(c), "config", config_json(c), "peak", peak_json(c),
                             "bandwidth", bandwidth_json(c), "load", load_json(c),
                             "reliability", reliability_json(c),
                             "runs", list);
    if (!root) {
        errno = ENOMEM;
        return -1;
    }
    int rc = rg_json_write_file(root, path);
    json_decref(root);
    return rc;
}

/* The report script: --report-script, else report.py installed beside the program
 * (PREFIX/bin/randygpt finds PREFIX/share/randygpt/report.py), else the source tree's. NULL when
 * none is readable (after a warning for a --report-script that is not). Malloc'd. */
static char *find_report_script(const bench_opts *o, const char *exe, const char *src_dir) {
    if (o->report_script) {
        if (access(o->report_script, R_OK) == 0) return strdup(o->report_script);
        fprintf(stderr, "randygpt bench: warning: cannot read report script %s\n", o->report_script);
        return NULL;
    }
    char *exe_dir = strdup(exe), *script = NULL;
    if (!exe_dir) return NULL;
    char *slash = strrchr(exe_dir, '/');
    if (slash) *slash = '\0';
    script = rg_strf("%s/%s/report.py", exe_dir, RG_DATA_RELDIR);
    if (script && access(script, R_OK) != 0) {
        free(script);
        script = src_dir ? rg_strf("%s/scripts/report.py", src_dir) : NULL;
        if (script && access(script, R_OK) != 0) {
            free(script);
            script = NULL;
        }
    }
    free(exe_dir);
    return script;
}

/* Runs the report generator on dir; its failure is only a warning. */
static void run_report(const bench_opts *o, const char *exe, const char *src_dir, const char *dir) {
    char *script = find_report_script(o, exe, src_dir);
    if (!script) return;
    /* Debian's python has the plotting packages; another python3 on PATH may not. */
    char *python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char *argv[] = {python, script, (char *)dir, NULL};
    rg_proc_result pr;
    char err[RG_ERR_LEN];
    fprintf(stderr, "bench: writing the report (%s)\n", script);
    if (rg_proc_run(argv, NULL, REPORT_TIMEOUT_S, CHILD_MAX_OUT, &pr, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: warning: report not written: %s\n", err);
        free(script);
        return;
    }
    fputs(pr.out, stderr);
    if (pr.end != RG_PROC_EXITED || pr.exit_code != 0)
        fprintf(stderr, "randygpt bench: warning: report script %s failed (%s)\n", script,
                pr.end == RG_PROC_TIMED_OUT ? "timed out" : pr.end == RG_PROC_SIGNALED ? "signal" : "non-zero exit");
    free(pr.out);
    free(script);
}

static int has_flag(int argc, char **argv, const char *flag) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag)) return 1;
    return 0;
}

/* The model's shape, with the corpus's vocabulary for --data (FLOPs depend on V, as the children
 * will build it). Returns 0, or 2 after one line. */
static int set_model_config(bench_context *c) {
    c->ps = rg_preset_find(c->o->run.preset);
    c->mc = (rg_model_config){.V = RG_BENCH_SYNTHETIC_V, .maxT = c->ps->T, .C = c->ps->C,
                              .NH = c->ps->NH, .L = c->ps->L};
    const char *data = c->o->run.data;
    if (!data) return 0;
    rg_data d;
    char err[RG_ERR_LEN];
    if (rg_data_load_file(&d, data, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        return 2;
    }
    c->mc.V = d.vocab.V;
    int short_corpus = rg_data_check_block(&d, c->ps->T, err, sizeof err) != 0;
    rg_data_free(&d);
    if (short_corpus) {
        fprintf(stderr, "randygpt bench: %s: %s\n", data, err);
        return 2;
    }
    return 0;
}

/* The command line as one string, for bench.json (malloc'd; NULL when out of memory). */
static char *command_line(int argc, char **argv) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fputs("randygpt bench", f);
    for (int i = 1; i < argc; i++) fprintf(f, " %s", argv[i]);
    return fclose(f) == 0 ? text : (free(text), NULL);
}

/* Adds a thread count to those the peak and the bandwidth are measured at, once. */
static void add_peak_count(bench_context *c, int threads) {
    const int max = (int)(sizeof c->peak / sizeof c->peak[0]);
    for (int k = 0; k < c->npeak; k++)
        if (c->peak[k].threads == threads) return;
    if (c->npeak < max) c->peak[c->npeak++].threads = threads;
}

/* The FMA peak and the bandwidth at every thread count (and at 1, the scaling reference), before
 * the rounds while nothing else of ours runs. */
static void measure_machine(bench_context *c) {
    const bench_opts *o = c->o;
    for (int k = 0; k < o->num_threads; k++) add_peak_count(c, o->threads[k]);
    for (int k = 0; k < c->nconfigs; k++)
        add_peak_count(c, c->configs[k].threads * c->configs[k].ranks);
    add_peak_count(c, 1);
    measure_peaks(c, "before the rounds");
    c->bandwidth_bytes = o->bandwidth_mib ? (size_t)o->bandwidth_mib << 20 : rg_bandwidth_array_bytes();
    for (int k = 0; k < c->npeak; k++) {
        c->bandwidth_gbps[k] = rg_bandwidth_triad_gbps(c->peak[k].threads, c->bandwidth_bytes,
                                                       BANDWIDTH_PASSES);
        fprintf(stderr, "bench: memory bandwidth (triad, 3 x %zu MiB), %d thread%s: %.1f GB/s\n",
                c->bandwidth_bytes >> 20, c->peak[k].threads, c->peak[k].threads > 1 ? "s" : "",
                c->bandwidth_gbps[k]);
    }
}

/* The log of one child: LOGS/LABEL-tTHREADS[-RREPLICAS][-npRANKS][-rROUND].log, the label made
 * safe for a file name, replicas and ranks named when above 1. */
static char *child_log_path(const char *logs, const bench_config *cfg, int round) {
    char *safe = strdup(cfg->backend->label);
    if (!safe) return NULL;
    for (char *p = safe; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.')) *p = '_';
    char rep[16] = "", np[16] = "", rnd[16] = "";
    if (cfg->replicas > 1) snprintf(rep, sizeof rep, "-R%d", cfg->replicas);
    if (cfg->ranks > 1) snprintf(np, sizeof np, "-np%d", cfg->ranks);
    if (round > 0) snprintf(rnd, sizeof rnd, "-r%d", round + 1);
    char *path = rg_strf("%s/%s-t%d%s%s%s.log", logs, safe, cfg->threads, rep, np, rnd);
    free(safe);
    return path;
}

/* "openmp, 2 threads, 2 replicas, 2 ranks": what a progress line names. */
static void config_text(const bench_config *cfg, char *buf, size_t n) {
    int used = snprintf(buf, n, "%s, %d thread%s", cfg->backend->label, cfg->threads,
                        cfg->threads > 1 ? "s" : "");
    if (cfg->replicas > 1 && used > 0 && (size_t)used < n)
        used += snprintf(buf + used, n - (size_t)used, ", %d replicas", cfg->replicas);
    if (cfg->ranks > 1 && used > 0 && (size_t)used < n)
        snprintf(buf + used, n - (size_t)used, ", %d ranks", cfg->ranks);
}

/* Fills r for a configuration of several ranks that cannot start here: refused, with why. */
static void refuse_ranks(const bench_config *cfg, const char *why, rg_bench_result *r) {
    result_start(cfg, r);
    rg_bench_result_fail(r, "refused", "--ranks %d: %s", cfg->ranks, why);
}

/* One round: a child for every configuration still ok, folded into runs. */
static void run_round(bench_context *c, const char *exe, const char *logs, int round,
                      rg_bench_result *runs) {
    const bench_opts *o = c->o;
    const int total = c->nconfigs, rounds = o->run.repeat;
    for (int i = 0; i < total; i++) {
        const bench_config *cfg = &c->configs[i];
        rg_bench_result *r = &runs[i];
        if (round > 0 && !r->ok) continue; /* failed or refused: once is enough */
        char what[320];
        config_text(cfg, what, sizeof what);
        fprintf(stderr, "bench: [round %d/%d, %d/%d] %s", round + 1, rounds, i + 1, total, what);
        if (c->children > 0) {
            /* the children still to run, at the mean time of those run so far */
            int left = (rounds - round) * total - i;
            fprintf(stderr, " (about %.0f s left)", c->spent_s / c->children * left);
        }
        fputs("...\n", stderr);
        char *log_path = child_log_path(logs, cfg, round);
        rg_bench_result one;
        if (cfg->ranks > 1 && c->no_ranks) refuse_ranks(cfg, c->no_ranks, &one);
        else if (log_path) run_child(o, exe, c->mpirun, cfg, log_path, &one);
        else memset(&one, 0, sizeof one), rg_bench_result_fail(&one, "exit", "out of memory");
        free(log_path);
        c->spent_s += one.wall_s;
        c->children++;
        rg_bench_result_add_round(r, &one, round);
        if (one.ok)
            fprintf(stderr, "bench:   %.3f ms/step, %.1f s\n", one.step_ms_median, one.wall_s);
        else if (!strcmp(one.reason, "refused"))
            fprintf(stderr, "bench:   refused: %s\n", one.error);
        else
            fprintf(stderr, "bench:   FAILED (%s): %s\n", one.reason, one.error);
    }
}

/* Every round, each repeat a child of its own, round by round over every configuration: on a
 * shared machine a slow phase then falls on every configuration alike instead of on the one that
 * happened to run then, so their ratios hold. */
static void run_rounds(bench_context *c, const char *exe, const char *logs, rg_bench_result *runs) {
    const bench_opts *o = c->o;
    rg_cpu_sample before, after;
    rg_cpu_sample_take(&before);
    for (int round = 0; round < o->run.repeat; round++) {
        rg_contend busy = {0};
        char err[RG_ERR_LEN];
        if (rg_contend_start(&busy, o->contend, err, sizeof err) != 0)
            fprintf(stderr, "randygpt bench: warning: %s\n", err);
        else if (o->contend)
            fprintf(stderr, "bench: %d busy process%s running\n", o->contend,
                    o->contend > 1 ? "es" : "");
        run_round(c, exe, logs, round, runs);
        rg_contend_stop(&busy);
        measure_peaks(c, round + 1 < o->run.repeat ? "between rounds" : "after the rounds");
    }
    rg_cpu_sample_take(&after);
    rg_machine_load_between(&before, &after, (int)sysconf(_SC_NPROCESSORS_ONLN), &c->load);
    if (c->load.known)
        fprintf(stderr, "bench: during the rounds, other processes used %.1f%% of the %d CPUs' "
                "time, steal %.1f%%\n", 100.0 * c->load.others_fraction, c->load.cpus,
                100.0 * c->load.steal_fraction);
}

/* The step time of backend's run at 1 thread, 1 replica, 1 rank: the reference of speedups. NAN
 * when that run is not in the list or failed. */
static double one_core_ms(const rg_bench_result *runs, int total, const char *backend) {
    for (int i = 0; i < total; i++) {
        const rg_bench_result *r = &runs[i];
        if (r->ok && !strcmp(r->backend, backend) && r->threads == 1 && r->replicas == 1 &&
            r->ranks == 1)
            return r->step_ms_median;
    }
    return NAN;
}

/* After the rounds: each run's step time, peak, MFU, speedup and memory formula; counts the
 * failed and refused ones. */
static void finish_runs(bench_context *c, rg_bench_result *runs, int total, int *failed,
                        int *refused) {
    *failed = *refused = 0;
    for (int i = 0; i < total; i++) rg_bench_result_finish_rounds(&runs[i]);
    for (int i = 0; i < total; i++) {
        rg_bench_result *r = &runs[i];
        r->peak_gflops = peak_at(c, r->threads * r->ranks);
        r->mfu = r->ok ? r->gflops / r->peak_gflops : NAN;
        r->speedup = r->ok ? one_core_ms(runs, total, r->backend) / r->step_ms_median : NAN;
        r->formula_bytes = rg_dp_train_bytes(&c->mc, c->ps->B / r->ranks, c->ps->T, r->replicas,
                                             r->micro_batches);
        if (!r->ok) {
            if (strcmp(r->reason, "refused")) ++*failed;
            else ++*refused;
        }
    }
    check_reliability(c, runs, total);
}

static void print_summary(const bench_context *c, const rg_bench_result *runs, int total,
                          const char *dir) {
    printf("%-16s %7s %8s %5s %8s %10s %9s %7s %8s %9s\n", "backend", "threads", "replicas",
           "ranks", "status", "ms/step", "GFLOP/s", "MFU", "reduce", "RSS MiB");
    for (int i = 0; i < total; i++) {
        const rg_bench_result *r = &runs[i];
        printf("%-16s %7d %8d %5d ", r->backend, r->threads, r->replicas, r->ranks);
        if (r->ok)
            printf("%8s %10.3f %9.2f %6.1f%% %7.1f%% %9.1f\n", "ok", r->step_ms_median, r->gflops,
                   100.0 * r->mfu, 100.0 * r->reduce_fraction,
                   (double)r->peak_rss_sum_bytes / (1024.0 * 1024.0));
        else
            printf("%8s   %s\n", strcmp(r->reason, "refused") ? "failed" : "refused", r->error);
    }
    for (int k = 0; k < c->nproblems; k++) printf("UNRELIABLE: %s\n", c->problems[k]);
    printf("results: %s\n", dir);
    fflush(stdout);
}

/* Writes bench.json and bench.csv in dir. Returns 0, or -1 after one line. */
static int write_results(const bench_context *c, const rg_bench_result *runs, int total,
                         const char *dir) {
    char *json_path = rg_strf("%s/bench.json", dir), *csv_path = rg_strf("%s/bench.csv", dir);
    int rc = -1;
    if (json_path && csv_path)
        rc = write_json(json_path, c, runs, total) == 0 &&
                     write_csv(csv_path, c->o, c->ps, runs, total) == 0
                 ? 0
                 : -1;
    if (rc != 0)
        fprintf(stderr, "randygpt bench: cannot write the results in %s: %s\n", dir, strerror(errno));
    free(json_path);
    free(csv_path);
    return rc;
}

/* The run folder and its logs folder (both malloc'd). Returns 0, or 1 after one line. */
static int make_dirs(const bench_context *c, const struct tm *utc, char **dir, char **logs) {
    *logs = NULL;
    *dir = make_run_dir(c->o->out, c->o->machine ? c->o->machine : c->mi.slug, utc);
    if (!*dir) return 1;
    if (!(*logs = rg_strf("%s/logs", *dir)) || mkdir(*logs, 0755) != 0) {
        fprintf(stderr, "randygpt bench: cannot create %s/logs: %s\n", *dir, strerror(errno));
        return 1;
    }
    return 0;
}

/* Everything bench.json records about this run before any child runs. Returns 0, or the exit
 * status after one line. */
static int describe_run(bench_context *c, int argc, char **argv, struct tm *utc) {
    int rc = set_model_config(c);
    if (rc) return rc;
    rg_machine_info_get(&c->mi);
    c->src_dir = rg_source_dir();
    rg_git_commit(c->src_dir, c->commit, sizeof c->commit);
    time_t now = time(NULL);
    gmtime_r(&now, utc);
    strftime(c->created, sizeof c->created, "%Y-%m-%dT%H:%M:%SZ", utc);
    if (!(c->command = command_line(argc, argv))) {
        fprintf(stderr, "randygpt bench: out of memory\n");
        return 1;
    }
    return 0;
}

/* Every (backend, threads, replicas, ranks) that fits, backends outermost, ranks innermost:
 * threads a multiple of replicas and the batch a multiple of ranks x replicas; the others are
 * named once and left out. Returns 0, or -1 after one line. */
static int make_configs(bench_context *c, const backend_list *backends) {
    const bench_opts *o = c->o;
    size_t most = (size_t)backends->n * o->num_threads * o->num_replicas * o->num_ranks;
    if (!(c->configs = calloc(most, sizeof *c->configs))) {
        fprintf(stderr, "randygpt bench: out of memory\n");
        return -1;
    }
    int several_ranks = 0;
    char err[RG_ERR_LEN], said[RG_ERR_LEN] = "";
    for (int b = 0; b < backends->n; b++)
        for (int t = 0; t < o->num_threads; t++)
            for (int k = 0; k < o->num_replicas; k++)
                for (int p = 0; p < o->num_ranks; p++) {
                    bench_config cfg = {&backends->items[b], o->threads[t], o->replicas[k],
                                        o->ranks[p], 0};
                    if (rg_dp_check_split(c->ps->B, cfg.ranks, cfg.replicas, o->run.micro_batches,
                                          cfg.threads, err, sizeof err) != 0) {
                        if (b == 0 && strcmp(err, said)) fprintf(stderr, "bench: left out: %s\n", err);
                        rg_errf(said, sizeof said, "%s", err);
                        continue;
                    }
                    cfg.micro = rg_dp_micro_batches(o->run.micro_batches,
                                                    c->ps->B / (cfg.ranks * cfg.replicas), c->ps->T);
                    several_ranks |= cfg.ranks > 1;
                    c->configs[c->nconfigs++] = cfg;
                }
    if (several_ranks && (c->no_ranks = ranks_unavailable(&c->mpirun)))
        fprintf(stderr, "bench: runs of several ranks refused: %s\n", c->no_ranks);
    if (c->nconfigs == 0) {
        fprintf(stderr, "randygpt bench: no configuration of --threads, --replicas and --ranks fits\n");
        return -1;
    }
    return 0;
}

int rg_cmd_bench(int argc, char **argv) {
    if (has_flag(argc, argv, "--child")) return child_main(argc, argv);
    bench_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;

    bench_context *c = calloc(1, sizeof *c);
    backend_list *backends = calloc(1, sizeof *backends);
    char *exe = NULL, *dir = NULL, *logs = NULL;
    rg_bench_result *runs = NULL;
    struct tm utc;
    rc = 1;
    if (!c || !backends) {
        fprintf(stderr, "randygpt bench: out of memory\n");
        goto done;
    }
    c->o = &o;
    if ((rc = describe_run(c, argc, argv, &utc)) != 0 || (rc = resolve_backends(&o, backends)) != 0)
        goto done;
    rc = 1;
    if (!(exe = realpath("/proc/self/exe", NULL))) {
        fprintf(stderr, "randygpt bench: cannot find the running executable: %s\n", strerror(errno));
        goto done;
    }
    if (make_dirs(c, &utc, &dir, &logs) != 0) goto done;
    if (make_configs(c, backends) != 0) goto done;
    measure_machine(c);
    const int total = c->nconfigs;
    if (!(runs = calloc((size_t)total, sizeof *runs))) {
        fprintf(stderr, "randygpt bench: out of memory\n");
        goto done;
    }
    run_rounds(c, exe, logs, runs);
    int failed, refused;
    finish_runs(c, runs, total, &failed, &refused);
    if (write_results(c, runs, total, dir) != 0) goto done;
    print_summary(c, runs, total, dir);
    run_report(&o, exe, c->src_dir, dir);
    rc = 0;
    if (failed) {
        fprintf(stderr, "randygpt bench: %d of %d runs failed\n", failed, total);
        rc = 1;
    } else if (refused == total) {
        fprintf(stderr, "randygpt bench: every backend refused its configuration\n");
        rc = 1;
    }
done:
    free(runs);
    free(exe);
    free(dir);
    free(logs);
    if (backends)
        for (int b = 0; b < backends->n; b++) free(backends->items[b].arg);
    free(backends);
    if (c) free(c->command), free(c->configs), free(c->mpirun);
    free(c);
    return rc;
}
