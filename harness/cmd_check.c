/* randygpt check: runs the conformance suite (core/src/conformance.c) on one backend plugin and
 * prints a pass/fail table. Exit 0 when every check passes, 1 when one fails, 2 on bad usage. */
#include <stdio.h>
#include <string.h>

#include "app/backend_args.h"
#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/conformance.h"
#include "randygpt/model.h"

typedef struct check_tally {
    int checks, failed;
} check_tally;

static void on_result(void *user, const rg_conf_result *r) {
    check_tally *t = user;
    t->checks++;
    t->failed += !r->pass;
    rg_conf_print_result(stdout, r);
    fflush(stdout);
}

static void on_note(void *user, const char *line) {
    (void)user;
    printf("note: %s\n", line);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt check PLUGIN [--preset P[,P...]] [--threads N] [--backend-dir DIR]\n"
            "                      [--backend-opt KEY=VALUE] [--help]\n\n"
            "Checks a backend against the reference: every op at the shapes of the presets and at\n"
            "odd shapes, one training step (loss and every gradient), and %d training steps\n"
            "(losses, and identical losses when run twice). PLUGIN is a name or a path, also\n"
            "accepted as --backend PLUGIN.\n\n"
            "  --preset P[,P...]        presets whose shapes the op checks use (default: all of\n"
            "                          ",
            RG_CONF_TRAIN_STEPS);
    for (int i = 0; rg_presets[i].name; i++) fprintf(f, "%s%s", i ? ", " : " ", rg_presets[i].name);
    fprintf(f, "); big presets run at a capped batch\n");
    rg_backend_args_help(f);
    fprintf(f, "  --help                   show this help\n\n"
               "Exit status: 0 when every check passes, 1 when one fails or the plugin cannot be\n"
               "loaded, 2 on bad usage.\n");
}

#define CMD "randygpt check"

enum { OPT_PRESET = RG_CLI_FIRST_ID };
static const struct option options[] = {
    RG_BACKEND_OPTIONS,
    {"preset", required_argument, NULL, OPT_PRESET},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

typedef struct check_opts {
    rg_backend_args ba;
    const char *plugin, *presets;
} check_opts;

static int take_option(rg_cli *c, int id, const char *v, void *user) {
    check_opts *o = user;
    switch (id) {
    case OPT_PRESET: return rg_cli_string(c, v, &o->presets);
    case RG_CLI_ARG:
        if (o->plugin) return rg_cli_error(c, "one PLUGIN only, got '%s' and '%s'", o->plugin, v);
        o->plugin = v;
        return 0;
    default: return rg_backend_args_take(c, &o->ba, id, v);
    }
}

int rg_cmd_check(int argc, char **argv) {
    char err[1024];
    check_opts o = {.plugin = NULL, .presets = NULL};
    rg_backend_args_init(&o.ba);
    const char *default_backend = o.ba.backend; /* --backend NAME also names PLUGIN */
    int rc = rg_cli_parse(CMD, options, argc, argv, take_option, &o, usage);
    if (rc) return rc == 1 ? 0 : rc;
    const char *plugin_name = o.plugin, *presets = o.presets;
    /* The presets are checked first, before the plugin: a typo is a usage error. */
    rg_conf_options opt = rg_conf_default_options();
    opt.presets = presets;
    if (rg_conf_check_presets(presets, err, sizeof err) != 0) return rg_cli_usage_error(CMD, err);
    if (!plugin_name && o.ba.backend != default_backend) plugin_name = o.ba.backend;
    if (!plugin_name) return rg_cli_usage_error(CMD, "no PLUGIN given");
    o.ba.backend = plugin_name;

    rg_plugin plugin;
    rg_ops ops;
    if (rg_backend_args_open(&o.ba, &plugin, &ops, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    char desc[512], native[512];
    rg_ops_describe(&ops, desc, sizeof desc);
    rg_ops_native_list(&ops, native, sizeof native);
    printf("backend: %s (%s)\n", ops.k.name, plugin.path);
    printf("describe: %s\n", desc);
    printf("native ops: %s\n", native[0] ? native : "(none)");
    /* The suite makes its own instance, with the thread count this one settled on. */
    int threads = ops.num_threads;
    rg_ops_destroy(&ops);

    rg_option backend_opts[RG_MAX_BACKEND_OPTS];
    rg_backend_args_config(&o.ba, &opt.backend, backend_opts);
    opt.backend.num_threads = threads;
    printf("threads: %d\n\n", threads);

    check_tally tally = {0, 0};
    rg_conf_report report = {on_result, on_note, &tally};
    rg_conf_print_header(stdout);
    int failed = rg_conformance_run(plugin.table, &opt, &report, err, sizeof err);
    rg_plugin_close(&plugin);
    if (failed < 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    printf("\n%d checks, %d failed: %s\n", tally.checks, failed, failed ? "FAIL" : "PASS");
    return failed ? 1 : 0;
}
