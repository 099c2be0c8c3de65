/* The backend command-line options shared by train, check and bench (see backend_args.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT, strdup */
#include "app/backend_args.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "randygpt/text.h"

#include "app/backend_auto.h"
#include "app/bench_proc.h"

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

int rg_backend_args_take(rg_cli *c, rg_backend_args *a, int id, const char *v) {
    switch (id) {
    case RG_OPT_BACKEND: return rg_cli_string(c, v, &a->backend);
    case RG_OPT_BACKEND_DIR: return rg_cli_string(c, v, &a->backend_dir);
    case RG_OPT_THREADS:
        a->threads_given = 1;
        return rg_cli_int(c, v, 1, RG_MAX_THREADS, &a->threads);
    case RG_OPT_BACKEND_OPT: {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v) return rg_cli_error(c, "--backend-opt needs KEY=VALUE, got '%s'", v);
        if (a->num_options == RG_MAX_BACKEND_OPTS)
            return rg_cli_error(c, "too many --backend-opt (at most %d)", RG_MAX_BACKEND_OPTS);
        if (strlen(v) >= RG_BACKEND_OPT_LEN)
            return rg_cli_error(c, "--backend-opt '%.40s...' is too long (at most %d characters)", v,
                                RG_BACKEND_OPT_LEN - 1);
        char *text = a->option_text[a->num_options++];
        strcpy(text, v);
        text[eq - v] = '\0';
        return 0;
    }
    default: return RG_CLI_NOT_MINE;
    }
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
    char why[RG_ERR_LEN];
    if (rg_ops_create(ops, p->table, &cfg, why, sizeof why) == 0) return 0;
    /* The default is every CPU, which a one-thread backend refuses; only a count the user chose
     * is held to. */
    if (!a->threads_given && a->threads != 1) {
        cfg.num_threads = 1;
        char why1[RG_ERR_LEN];
        if (rg_ops_create(ops, p->table, &cfg, why1, sizeof why1) == 0) return 0;
    }
    rg_errf(err, n, "%s: %s", p->path, why);
    return -1;
}

typedef struct name_list {
    const char **names;
    size_t n;
    int failed;
} name_list;

static void add_name(const char *name, const char *path, void *user) {
    name_list *l = user;
    const char **grown = realloc(l->names, (l->n + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy) {
        free(copy);
        if (grown) l->names = grown;
        l->failed = 1;
        return;
    }
    l->names = grown;
    l->names[l->n++] = copy;
}

char *rg_backend_names_hint(const char *name, const char *backend_dir) {
    size_t len = strlen(name);
    if (strchr(name, '/') || (len >= 3 && !strcmp(name + len - 3, ".so"))) return NULL;
    name_list l = {NULL, 0, 0};
    rg_plugin_list(backend_dir, add_name, &l);
    int known = 0;
    for (size_t k = 0; k < l.n; k++) known |= !strcmp(l.names[k], name);
    char *hint = NULL;
    if (!known && !l.failed) {
        char *list = rg_join_names(l.names, l.n, ", ");
        const char *near = rg_closest_name(name, l.names, l.n);
        if (!list) hint = NULL;
        else if (l.n == 0) hint = strdup("no backends found");
        else hint = rg_strf("backends found: %s%s%s%s", list, near ? "; did you mean " : "",
                            near ? near : "", near ? "?" : "");
        free(list);
    }
    for (size_t k = 0; k < l.n; k++) free((char *)l.names[k]);
    free(l.names);
    return hint;
}

int rg_backend_args_load(const rg_backend_args *a, rg_plugin *p, char *err, size_t n) {
    if (rg_plugin_open(p, a->backend, a->backend_dir, err, n) == 0) return 0;
    char *hint = rg_backend_names_hint(a->backend, a->backend_dir);
    if (hint) rg_errf_append(err, n, "; %s", hint);
    free(hint);
    return -1;
}

/* rg_backend_args_load then rg_backend_args_create, in this process. */
static int open_here(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *err, size_t n) {
    memset(ops, 0, sizeof *ops);
    if (rg_backend_args_load(a, p, err, n) != 0) return -1;
    if (rg_backend_args_create(a, p, ops, err, n) != 0) {
        rg_plugin_close(p);
        return -1;
    }
    return 0;
}

/* In the probe's child: everything the command will do with the plugin before its first kernel.
 * Prints the error line and returns 1 on a refusal. */
static int probe_child(void *user) {
    const rg_backend_args *a = user;
    rg_plugin p;
    rg_ops ops;
    char err[RG_ERR_LEN], desc[RG_DESCRIBE_LEN];
    if (open_here(a, &p, &ops, err, sizeof err) != 0) {
        printf("%s\n", err);
        return 1;
    }
    rg_ops_describe(&ops, desc, sizeof desc);
    rg_ops_destroy(&ops);
    rg_plugin_close(&p);
    return 0;
}

int rg_backend_args_probe(const rg_backend_args *a, double timeout_s, char *err, size_t n) {
    rg_proc_result r;
    char why[RG_ERR_LEN];
    if (rg_proc_call(probe_child, (void *)a, timeout_s, RG_PROBE_MAX_OUT, &r, why, sizeof why) != 0) {
        rg_errf(err, n, "cannot try backend %s: %s", a->backend, why);
        return -1;
    }
    int rc = 0;
    if (!r.returned) {
        rg_proc_describe_end(&r, timeout_s, why, sizeof why);
        rg_errf(err, n, "backend %s %s while it was loaded or created an instance", a->backend, why);
        rc = -1;
    } else if (r.fn_rc != 0) {
        /* the refusal is the child's last line (a plugin may have printed before it) */
        while (r.out_len > 0 && r.out[r.out_len - 1] == '\n') r.out[--r.out_len] = '\0';
        char *line = strrchr(r.out, '\n');
        rg_errf(err, n, "%s", line ? line + 1 : r.out);
        rg_plugin_text(err, n);
        rc = -1;
    }
    free(r.out);
    return rc;
}

int rg_backend_args_open(const rg_backend_args *a, rg_plugin *p, rg_ops *ops, char *err, size_t n) {
    memset(ops, 0, sizeof *ops);
    memset(p, 0, sizeof *p);
    if (!strcmp(a->backend, RG_BACKEND_AUTO)) {
        /* each candidate comes back here by name, and is tried in a child on its own */
        char why[RG_ERR_LEN];
        return rg_backend_auto_open(a, p, ops, why, sizeof why, err, n);
    }
    if (rg_backend_args_probe(a, RG_PROBE_TIMEOUT_S, err, n) != 0) return -1;
    return open_here(a, p, ops, err, n);
}

int rg_backend_args_open_replicas(const rg_backend_args *a, int R, rg_plugin *p, rg_ops *ops,
                                  char *why, size_t why_n, char *err, size_t n) {
    rg_backend_args each = *a;
    each.threads = a->threads / R;
    memset(ops, 0, (size_t)R * sizeof *ops);
    if (why_n) why[0] = '\0';
    if ((!strcmp(a->backend, RG_BACKEND_AUTO)
             ? rg_backend_auto_open(&each, p, &ops[0], why, why_n, err, n)
             : rg_backend_args_open(&each, p, &ops[0], err, n)) != 0)
        return -1;
    for (int r = 1; r < R; r++) {
        if (rg_backend_args_create(&each, p, &ops[r], err, n) != 0) {
            while (r-- > 0) rg_ops_destroy(&ops[r]);
            rg_plugin_close(p);
            return -1;
        }
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
