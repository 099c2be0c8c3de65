/* The backend command-line options shared by train, check and bench (see backend_args.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "app/backend_args.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/backend_auto.h"
#include "app/cmdline.h"

int rg_default_threads(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void rg_backend_args_init(rg_backend_args *a) {
    memset(a, 0, sizeof *a);
    a->backend = RG_BACKEND_AUTO;
    a->threads = rg_default_threads();
}

int rg_backend_args_take(rg_backend_args *a, int argc, char **argv, int *i, char *err, size_t n) {
    const char *v = NULL;
    const char *flag = argv[*i];
    if (rg_cli_flag("--backend-dir", argc, argv, i, &v)) {
        if (!v || !*v) goto missing;
        a->backend_dir = v;
        return 1;
    }
    if (rg_cli_flag("--backend-opt", argc, argv, i, &v)) {
        if (!v) goto missing;
        const char *eq = strchr(v, '=');
        if (!eq || eq == v) {
            snprintf(err, n, "--backend-opt needs KEY=VALUE, got '%s'", v);
            return -1;
        }
        if (a->num_options == RG_MAX_BACKEND_OPTS) {
            snprintf(err, n, "too many --backend-opt (at most %d)", RG_MAX_BACKEND_OPTS);
            return -1;
        }
        if (strlen(v) >= RG_BACKEND_OPT_LEN) {
            snprintf(err, n, "--backend-opt '%.40s...' is too long (at most %d characters)", v,
                     RG_BACKEND_OPT_LEN - 1);
            return -1;
        }
        char *text = a->option_text[a->num_options++];
        strcpy(text, v);
        text[eq - v] = '\0';
        return 1;
    }
    if (rg_cli_flag("--backend", argc, argv, i, &v)) {
        if (!v || !*v) goto missing;
        a->backend = v;
        return 1;
    }
    if (rg_cli_flag("--threads", argc, argv, i, &v)) {
        if (!v) goto missing;
        if (rg_cli_int("--threads", v, 1, RG_MAX_THREADS, &a->threads, err, n) != 0) return -1;
        a->threads_given = 1;
        return 1;
    }
    return 0;
missing:
    return rg_cli_missing(flag, err, n);
}

void rg_backend_args_config(const rg_backend_args *a, rg_backend_config *cfg, rg_option *opts) {
    for (int k = 0; k < a->num_options; k++) {
        opts[k].key = a->option_text[k];
        opts[k].value = a->option_text[k] + strlen(a->option_text[k]) + 1;
    }
    cfg->num_threads = a->threads;
    cfg->num_options = a->num_options;
    cfg->options = opts;
}

int rg_backend_args_create(const rg_backend_args *a, const rg_plugin *p, rg_ops *ops, char *err,
                           size_t n) {
    rg_option opts[RG_MAX_BACKEND_OPTS];
    rg_backend_config cfg;
    rg_backend_args_config(a, &cfg, opts);
    char why[512];
    if (rg_ops_create(ops, p->table, &cfg, why, sizeof why) == 0) return 0;
    /* The default is every CPU, which a one-thread backend refuses; only a count the user chose
     * is held to. */
    if (!a->threads_given && a->threads != 1) {
        cfg.num_threads = 1;
        char why1[512];
        if (rg_ops_create(ops, p->table, &cfg, why1, sizeof why1) == 0) return 0;
    }
    snprintf(err, n, "%s: %s", p->path, why);
    return -1;
}

int rg_backend_args_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *err, size_t n) {
    memset(ops, 0, sizeof *ops);
    if (!strcmp(a->backend, RG_BACKEND_AUTO)) {
        char why[4096];
        return rg_backend_auto_open(a, p, ops, why, sizeof why, err, n);
    }
    if (rg_plugin_open(p, a->backend, a->backend_dir, err, n) != 0) return -1;
    if (rg_backend_args_create(a, p, ops, err, n) != 0) {
        rg_plugin_close(p);
        return -1;
    }
    return 0;
}

void rg_backend_args_help(FILE *f) {
    fprintf(f,
            "  --backend NAME|PATH      backend plugin: a name (NAME.so in the search folders) or a\n"
            "                           path to a .so, or auto: the fastest that loads here\n"
            "                           ('randygpt backends' shows which) (default: auto)\n"
            "  --backend-dir DIR        folder searched first for a NAME, before $%s\n"
            "                           (':'-separated) and the plugin folder of this program\n"
            "  --threads N              threads of the backend (default: the CPUs this process may\n"
            "                           use, here %d, or 1 for a backend that refuses more)\n"
            "  --backend-opt KEY=VALUE  option for the backend (repeatable; see 'randygpt backends')\n",
            RG_BACKEND_PATH_ENV, rg_default_threads());
}
