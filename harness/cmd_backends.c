/* `randygpt backends`: every plugin in the search folders, whether it loads, and what an instance of
 * it really runs. Broken plugins are listed with the reason, never hidden: that reason is what the
 * author of a new backend needs to see. */
#define _GNU_SOURCE /* strdup */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/backend_args.h"
#include "app/bench_proc.h"
#include "app/backend_auto.h"
#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/loader.h"
#include "randygpt/ops.h"
#include "randygpt/text.h"

typedef struct plugin_entry {
    char *name;
    char *path;
} plugin_entry;

typedef struct plugin_list {
    int n, cap;
    plugin_entry *items;
} plugin_list;

static void collect(const char *name, const char *path, void *user) {
    plugin_list *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        plugin_entry *grown = realloc(l->items, (size_t)cap * sizeof *grown);
        if (!grown) return;
        l->items = grown;
        l->cap = cap;
    }
    char *n = strdup(name), *p = strdup(path);
    if (!n || !p) {
        free(n);
        free(p);
        return;
    }
    l->items[l->n].name = n;
    l->items[l->n].path = p;
    l->n++;
}

/* The ABI version a plugin declares, even one the loader refuses, so the table can show "999"
 * beside the version this build expects. The first two fields of rg_backend are fixed across ABI versions. Returns 0,
 * or -1 if the file has no usable entry point. */
static int peek_abi_version(const char *path, uint32_t *version) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    void *sym = dlsym(h, RG_BACKEND_ENTRY_SYMBOL);
    int rc = -1;
    if (sym) {
        rg_backend_entry_fn entry;
        memcpy(&entry, &sym, sizeof entry);
        const rg_backend *t = entry();
        if (t) {
            *version = t->abi_version;
            rc = 0;
        }
    }
    dlclose(h);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt backends [--backend-dir DIR] [--threads N] [--timeout S]\n\n"
            "Lists every backend plugin found (NAME.so in --backend-dir, then each folder of\n"
            "$%s, then the plugin folder of this program; the first of each\n"
            "name wins), whether it loads, what an instance created with N threads runs, and\n"
            "which ops it runs natively, and which one --backend auto (the default of train and\n"
            "generate) picks, and why. Each plugin is tried in a child process: one that\n"
            "crashes, calls exit() or hangs is reported on its row. Exits 1 if none is found.\n\n"
            "options:\n"
            "  --backend-dir DIR        folder searched first\n"
            "  --threads N              threads of each instance (default: %d, or 1 for a backend\n"
            "                           that refuses more)\n"
            "  --timeout S              seconds each plugin may take to load and create an\n"
            "                           instance (default 10)\n"
            "  --help                   this text\n",
            RG_BACKEND_PATH_ENV, rg_default_threads());
}

/* One row: name, ABI version, loads yes/no, then what an instance runs or why there is none.
 * Returns 1 when the plugin is usable. Runs in a child (show_isolated). */
static int show_plugin(const plugin_entry *e, const rg_backend_args *ba) {
    char err[RG_ERR_LEN];
    rg_plugin plugin;
    if (rg_plugin_open(&plugin, e->path, NULL, err, sizeof err) != 0) {
        uint32_t v;
        char abi[16] = "-";
        if (peek_abi_version(e->path, &v) == 0) snprintf(abi, sizeof abi, "%u", v);
        printf("%-12s %-5s %-5s %s\n", e->name, abi, "no", err);
        return 0;
    }
    char abi[16];
    snprintf(abi, sizeof abi, "%u", plugin.table->abi_version);
    const char *summary = plugin.table->summary ? plugin.table->summary : "";
    rg_ops ops;
    if (rg_backend_args_create(ba, &plugin, &ops, err, sizeof err) != 0) {
        printf("%-12s %-5s %-5s %s\n", e->name, abi, "yes", summary);
        printf("%-24s cannot create an instance with %d thread%s: %s\n", "", ba->threads,
               ba->threads == 1 ? "" : "s", err);
        rg_plugin_close(&plugin);
        return 0;
    }
    char desc[RG_DESCRIBE_LEN], native[1024];
    rg_ops_describe(&ops, desc, sizeof desc);
    rg_ops_native_list(&ops, native, sizeof native);
    printf("%-12s %-5s %-5s %s\n", e->name, abi, "yes", summary);
    printf("%-24s runs:   %s\n", "", desc);
    printf("%-24s native: %s\n", "", native[0] ? native : "(none)");
    printf("%-24s file:   %s\n", "", e->path);
    rg_ops_destroy(&ops);
    rg_plugin_close(&plugin);
    return 1;
}

typedef struct show_job {
    const plugin_entry *e;
    const rg_backend_args *ba;
} show_job;

static int show_child(void *user) {
    const show_job *j = user;
    return show_plugin(j->e, j->ba);
}

/* show_plugin in a child process (as bench runs its children), so that a plugin that aborts,
 * crashes, calls exit() or hangs in its entry point or create is reported on its own row and the
 * listing goes on. Returns 1 when the plugin is usable. */
static int show_isolated(const plugin_entry *e, const rg_backend_args *ba, double timeout_s) {
    show_job job = {e, ba};
    rg_proc_result r;
    char why[RG_ERR_LEN];
    if (rg_proc_call(show_child, &job, timeout_s, 1 << 16, &r, why, sizeof why) != 0) {
        printf("%-12s %-5s %-5s cannot try it: %s\n", e->name, "-", "no", why);
        return 0;
    }
    int usable = 0;
    if (r.returned) {
        fputs(r.out, stdout);
        usable = r.fn_rc == 1;
    } else {
        rg_proc_describe_end(&r, timeout_s, why, sizeof why);
        printf("%-12s %-5s %-5s %s: %s while it was loaded or created an instance\n", e->name, "-",
               "no", e->path, why);
    }
    free(r.out);
    return usable;
}

enum { OPT_TIMEOUT = RG_CLI_FIRST_ID };

static const struct option options[] = {
    RG_OPTION_BACKEND_DIR,
    RG_OPTION_THREADS,
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

typedef struct backends_opts {
    rg_backend_args ba;
    double timeout_s;
} backends_opts;

static int take_option(rg_cli *c, int id, const char *v, void *user) {
    backends_opts *o = user;
    if (id == OPT_TIMEOUT) return rg_cli_double(c, v, 0.0, 1, 1e6, &o->timeout_s);
    return rg_backend_args_take(c, &o->ba, id, v);
}

int rg_cmd_backends(int argc, char **argv) {
    backends_opts o;
    rg_backend_args_init(&o.ba);
    o.timeout_s = 10.0;
    int rc = rg_cli_parse("randygpt backends", options, argc, argv, take_option, &o, usage);
    if (rc) return rc == 1 ? 0 : rc;
    rg_backend_args ba = o.ba;

    plugin_list list = {0};
    int found = rg_plugin_list(ba.backend_dir, collect, &list);
    if (found == 0) {
        const char *env = getenv(RG_BACKEND_PATH_ENV);
        const char *def = rg_plugin_default_dir();
        fprintf(stderr, "randygpt backends: no backend plugins (*.so) found; looked in: %s%s%s%s%s%s\n",
                ba.backend_dir ? ba.backend_dir : "", ba.backend_dir ? ", " : "",
                env && *env ? env : "", env && *env ? " ($" RG_BACKEND_PATH_ENV "), " : "",
                def[0] ? def : "(plugin folder of this program unknown)",
                def[0] ? " (plugin folder of this program)" : "");
        free(list.items);
        return 1;
    }

    printf("%-12s %-5s %-5s %s (instances with %d thread%s)\n", "NAME", "ABI", "LOADS", "DETAILS",
           ba.threads, ba.threads == 1 ? "" : "s");
    int usable = 0;
    for (int k = 0; k < list.n; k++) {
        usable += show_isolated(&list.items[k], &ba, o.timeout_s);
        free(list.items[k].name);
        free(list.items[k].path);
    }
    free(list.items);
    printf("%d plugin%s found, %d usable\n", found, found == 1 ? "" : "s", usable);
    /* what --backend auto, the default of train and generate, opens with these options */
    rg_plugin plugin;
    rg_ops ops;
    char why[RG_ERR_LEN], err[RG_ERR_LEN];
    if (rg_backend_auto_open(&ba, &plugin, &ops, why, sizeof why, err, sizeof err) == 0) {
        printf("%s\n", why);
        rg_ops_destroy(&ops);
        rg_plugin_close(&plugin);
    } else {
        printf("%s\n", err);
    }
    return 0;
}
