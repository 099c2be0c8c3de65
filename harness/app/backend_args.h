/*
 * The backend options shared by `train`, `generate`, `check`, `bench` and `randygpt-kbench`:
 *   --backend NAME|PATH     which plugin (default "auto": see backend_auto.h)
 *   --backend-dir DIR       searched first for a NAME
 *   --threads N             threads of the instance (default: the CPUs this process may use, or 1
 *                           for a backend that refuses more)
 *   --backend-opt KEY=VALUE passed to the backend's create (repeatable)
 *
 * Typical use in a command (app/cmdline.h parses):
 *   static const struct option options[] = {RG_BACKEND_OPTIONS, ..., RG_CLI_HELP_OPTION, RG_CLI_END};
 *   take(): switch (id) { ...the command's own cases...
 *                         default: return rg_backend_args_take(c, &o->ba, id, v); }
 *   rg_plugin plugin; rg_ops ops;
 *   if (rg_backend_args_open(&ba, &plugin, &ops, err, sizeof err) != 0) { ...print err...; return 1; }
 *   ...
 *   rg_ops_destroy(&ops); rg_plugin_close(&plugin);
 */
#ifndef RANDYGPT_BACKEND_ARGS_H
#define RANDYGPT_BACKEND_ARGS_H

#include <stddef.h>
#include <stdio.h>

#include "app/cmdline.h"
#include "randygpt/loader.h"
#include "randygpt/ops.h"
#include "randygpt/text.h"

#define RG_MAX_BACKEND_OPTS 32
/* The most threads any command accepts: a count above this is a typo, not a machine. */
#define RG_MAX_THREADS 4096
#define RG_BACKEND_OPT_LEN 256 /* longest KEY=VALUE, with its terminator */

typedef struct rg_backend_args {
    const char *backend;      /* --backend: a name or a path; points into argv (or a literal) */
    const char *backend_dir;  /* --backend-dir, or NULL */
    int threads;              /* --threads, > 0 */
    int threads_given;        /* 1 if --threads was on the command line */
    int num_options;          /* --backend-opt count */
    /* Each --backend-opt, copied, with its '=' replaced by '\0': key at the start, value after. */
    char option_text[RG_MAX_BACKEND_OPTS][RG_BACKEND_OPT_LEN];
} rg_backend_args;

/* The option ids and table entries; a command lists the ones it takes. */
enum { RG_OPT_BACKEND = 0x1000, RG_OPT_BACKEND_DIR, RG_OPT_THREADS, RG_OPT_BACKEND_OPT };
#define RG_OPTION_BACKEND {"backend", required_argument, NULL, RG_OPT_BACKEND}
#define RG_OPTION_BACKEND_DIR {"backend-dir", required_argument, NULL, RG_OPT_BACKEND_DIR}
#define RG_OPTION_THREADS {"threads", required_argument, NULL, RG_OPT_THREADS}
#define RG_OPTION_BACKEND_OPT {"backend-opt", required_argument, NULL, RG_OPT_BACKEND_OPT}
#define RG_BACKEND_OPTIONS \
    RG_OPTION_BACKEND, RG_OPTION_BACKEND_DIR, RG_OPTION_THREADS, RG_OPTION_BACKEND_OPT

/* The default --threads: the CPUs this process may run on (sched_getaffinity), else the online
 * CPUs (sysconf); at least 1. */
int rg_default_threads(void);

/* Sets the defaults: backend "auto", no directory, rg_default_threads(), no options. */
void rg_backend_args_init(rg_backend_args *a);

/* Takes the value of option id (one of RG_OPT_*): returns 0, -1 after rg_cli_error on a bad
 * value (--threads must be an integer from 1 to RG_MAX_THREADS, --backend-opt needs KEY=VALUE
 * with a non-empty KEY), or RG_CLI_NOT_MINE for another id. */
int rg_backend_args_take(rg_cli *c, rg_backend_args *a, int id, const char *value);

/* Fills cfg from a: cfg->options points at opts (RG_MAX_BACKEND_OPTS entries, filled here), whose
 * strings point into a. Valid while both a and opts live. Prefer rg_backend_args_create, which
 * also applies the default-threads rule below. */
void rg_backend_args_config(const rg_backend_args *a, rg_backend_config *cfg, rg_option *opts);

/* rg_ops_create on an open plugin with the threads and options of a. When --threads was not given
 * and the backend refuses the default count, the instance is created with 1 thread instead, so that
 * a one-thread backend (single) works without options; ops->num_threads says which count was used.
 * Returns 0, or -1 with one line in err. */
int rg_backend_args_create(const rg_backend_args *a, const rg_plugin *p, rg_ops *ops, char *err,
                           size_t n);

/* rg_plugin_open of a->backend (a name or a path, not "auto") in this process, creating no
 * instance. Returns 0, or -1 with one line in err; for a NAME that no search folder holds, the line
 * ends with the names found and the closest of them (rg_backend_names_hint). */
int rg_backend_args_load(const rg_backend_args *a, rg_plugin *p, char *err, size_t n);

/* The longest a plugin may take to load and create an instance in rg_backend_args_open. */
#define RG_PROBE_TIMEOUT_S 60.0
/* The last bytes of the probe child's output that are kept: room for what a plugin prints before
 * its refusal line (itself at most RG_ERR_LEN). */
#define RG_PROBE_MAX_OUT (4 * RG_ERR_LEN)

/* Loads a->backend and creates (then destroys) an instance in a child process (app/bench_proc.h),
 * so that a plugin that crashes, calls exit() or hangs (timeout_s) in its entry point or its create
 * is one error line here instead of the end of this process. Returns 0 when all of it worked, or
 * -1 with one line in err: the loader's or create's own refusal, or "backend X crashed (SIGABRT)
 * while it was loaded or created an instance" and the like. */
int rg_backend_args_probe(const rg_backend_args *a, double timeout_s, char *err, size_t n);

/* rg_backend_args_probe (RG_PROBE_TIMEOUT_S), then rg_plugin_open of a->backend and
 * rg_backend_args_create in this process; "auto" opens the pick of rg_backend_auto_open. Returns
 * 0, or -1 with one line in err (p and ops are then left closed); for a NAME that no search folder
 * holds, the line ends with the names found and the closest of them (rg_backend_names_hint). */
int rg_backend_args_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *err, size_t n);

/* When name is a plugin name (not a path) that none of the search folders holds: a malloc'd
 * "backends found: a, b, c; did you mean b?" (or "no backends found"). NULL otherwise. */
char *rg_backend_names_hint(const char *name, const char *backend_dir);

/* The same for R data-parallel replicas (R divides a->threads): ops is (R), R instances of the
 * plugin with a->threads / R threads each; backend "auto" picks the plugin as
 * rg_backend_auto_open does and says why in why ("" otherwise). Returns 0, or -1 with one line in
 * err (nothing left open). */
int rg_backend_args_open_replicas(const rg_backend_args *a, int R, rg_plugin *p, rg_ops *ops,
                                  char *why, size_t why_n, char *err, size_t n);

/* Prints the help lines of these options, in the style of the commands' --help. */
void rg_backend_args_help(FILE *f);

#endif /* RANDYGPT_BACKEND_ARGS_H */
