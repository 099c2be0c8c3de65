/* Tests of the plugin loader, the shared backend options and `randygpt backends`: every broken
 * fixture is refused with its file and cause, names are searched in the documented order, and the
 * `single` plugin loaded through the loader computes what the reference computes. */
#define _GNU_SOURCE /* setenv, realpath, mkdtemp */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/backend_args.h"
#include "randygpt/loader.h"
#include "randygpt/ops.h"
#include "randygpt/rng.h"
#include "run_support.h"

#define FIXTURES RG_TEST_FIXTURE_DIR
#define PLUGINS RG_TEST_PLUGIN_DIR

/* Fails the test, showing the whole text, unless needle is in haystack. */
static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("expected \"%s\" in: %s", needle, haystack);
}

static int setup_env(void **state) {
    unsetenv(RG_BACKEND_PATH_ENV);
    return 0;
}

/* Copies a file; returns 0 on success. */
static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = (in && out) ? 0 : -1;
    char buf[65536];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

/* A fresh directory under RG_TEST_TMPDIR. */
static void make_tmpdir(char *dir, size_t n, const char *tag) {
    snprintf(dir, n, "%s/loader_%s_XXXXXX", RG_TEST_TMPDIR, tag);
    assert_non_null(mkdtemp(dir));
}

/* ---- refusals ---- */

static void expect_refused(const char *file, const char *cause) {
    char path[PATH_MAX], err[1024] = "";
    snprintf(path, sizeof path, "%s/%s", FIXTURES, file);
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, path, NULL, err, sizeof err), -1);
    assert_null(p.handle);
    assert_null(p.table);
    assert_contains(err, path);
    assert_contains(err, cause);
    assert_null(strchr(err, '\n')); /* one line */
}

static void test_fixtures_refused(void **state) {
    expect_refused("notaplugin.so", "is not a shared object");
    expect_refused("noentry.so", "is not a randygpt backend plugin");
    expect_refused("noentry.so", RG_BACKEND_ENTRY_SYMBOL);
    expect_refused("nullentry.so", "returned NULL");
    expect_refused("badabi.so", "ABI version");
    expect_refused("badabi.so", "999");
    expect_refused("badsize.so", "size mismatch");
    expect_refused("nullop.so", "attention_backward");
}

/* A version 2 plugin loads: the three ops whose contracts changed in version 3 run the
 * reference (not native), every other op stays the plugin's (the fixture gives the required
 * ones). */
static void test_abi2_plugin_loads(void **state) {
    char err[1024] = "";
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, FIXTURES "/abi2.so", NULL, err, sizeof err), 0);
    assert_int_equal(p.table->abi_version, 2);
    rg_ops ops;
    rg_backend_config cfg = {1, 0, NULL};
    assert_int_equal(rg_ops_create(&ops, p.table, &cfg, err, sizeof err), 0);
    char native[1024];
    rg_ops_native_list(&ops, native, sizeof native);
    assert_string_equal(native, "matmul_forward,matmul_backward,adamw_step"); /* the rest: none */
    assert_null(strstr(native, "sqrelu_backward"));
    assert_true(ops.k.attention_forward == rg_ref_attention_forward);
    assert_true(ops.k.attention_backward == rg_ref_attention_backward);
    assert_true(ops.k.sqrelu_backward == rg_ref_sqrelu_backward);
    rg_ops_table_native_list(p.table, native, sizeof native);
    assert_null(strstr(native, "attention"));
    rg_ops_destroy(&ops);
    rg_plugin_close(&p);
}

static void test_missing_file(void **state) {
    char err[1024] = "";
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, FIXTURES "/nosuch.so", NULL, err, sizeof err), -1);
    assert_contains(err, FIXTURES "/nosuch.so");
    assert_contains(err, "No such file");
    /* A directory is not a plugin either. */
    assert_int_equal(rg_plugin_open(&p, FIXTURES "/", NULL, err, sizeof err), -1);
    assert_contains(err, "is a directory");
    assert_int_equal(rg_plugin_open(&p, "", NULL, err, sizeof err), -1);
    assert_contains(err, "no backend given");
}

static void test_name_not_found_lists_dirs(void **state) {
    char envdir[PATH_MAX], env[2 * PATH_MAX], err[4096] = "";
    make_tmpdir(envdir, sizeof envdir, "env");
    snprintf(env, sizeof env, "%s:%s", envdir, "/nonexistent/randygpt");
    setenv(RG_BACKEND_PATH_ENV, env, 1);
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, "nosuchbackend", FIXTURES, err, sizeof err), -1);
    assert_contains(err, "nosuchbackend.so");
    assert_contains(err, "not found");
    assert_contains(err, FIXTURES);
    assert_contains(err, envdir);
    assert_contains(err, "/nonexistent/randygpt");
    assert_true(rg_plugin_default_dir()[0] != '\0');
    assert_contains(err, rg_plugin_default_dir());
    /* In the searched order: --backend-dir, the variable, the program's folder. */
    assert_true(strstr(err, FIXTURES) < strstr(err, envdir));
    assert_true(strstr(err, envdir) < strstr(err, rg_plugin_default_dir()));
    unsetenv(RG_BACKEND_PATH_ENV);
    rmdir(envdir);
}

/* ---- search order ---- */

static void test_env_path_honoured(void **state) {
    char err[1024] = "";
    rg_plugin p;
    /* badabi exists only among the fixtures: not found until the variable names that folder. */
    assert_int_equal(rg_plugin_open(&p, "badabi", NULL, err, sizeof err), -1);
    assert_contains(err, "not found");
    setenv(RG_BACKEND_PATH_ENV, "/nonexistent/randygpt:" FIXTURES, 1);
    assert_int_equal(rg_plugin_open(&p, "badabi", NULL, err, sizeof err), -1);
    assert_contains(err, FIXTURES "/badabi.so");
    assert_contains(err, "999");
    unsetenv(RG_BACKEND_PATH_ENV);
}

static void test_backend_dir_wins(void **state) {
    /* A folder with a working plugin that has the same name as a broken fixture. */
    char dir[PATH_MAX], file[PATH_MAX + 16], err[1024] = "";
    make_tmpdir(dir, sizeof dir, "dir");
    snprintf(file, sizeof file, "%s/badabi.so", dir);
    assert_int_equal(copy_file(PLUGINS "/single.so", file), 0);
    setenv(RG_BACKEND_PATH_ENV, FIXTURES, 1);

    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, "badabi", dir, err, sizeof err), 0);
    assert_string_equal(p.path, file);
    assert_string_equal(p.table->name, "single");
    rg_plugin_close(&p);
    assert_null(p.handle);

    unsetenv(RG_BACKEND_PATH_ENV);
    unlink(file);
    rmdir(dir);
}

/* ---- the single plugin works through the loader ---- */

static void check_matmul_matches_reference(const rg_plugin *p) {
    rg_ops ops;
    char err[1024] = "";
    rg_backend_config cfg = {1, 0, NULL};
    assert_int_equal(rg_ops_create(&ops, p->table, &cfg, err, sizeof err), 0);
    enum { N = 5, C = 7, OC = 3 };
    float inp[N * C], weight[OC * C], out[N * OC], want[N * OC];
    rg_rng rng;
    rg_rng_seed(&rng, 1234);
    for (int i = 0; i < N * C; i++) inp[i] = rg_rng_normal(&rng);
    for (int i = 0; i < OC * C; i++) weight[i] = rg_rng_normal(&rng);
    ops.k.matmul_forward(ops.ctx, out, inp, weight, N, C, OC);
    rg_ref_matmul_forward(NULL, want, inp, weight, N, C, OC);
    for (int i = 0; i < N * OC; i++) assert_float_equal(out[i], want[i], 1e-5f);
    /* Not a constant: the product depends on its inputs. */
    assert_true(fabsf(want[0] - want[1]) > 1e-6f);
    char native[1024];
    rg_ops_native_list(&ops, native, sizeof native);
    assert_contains(native, "matmul_forward");
    rg_ops_destroy(&ops);
}

static void test_single_by_name_and_path(void **state) {
    char err[1024] = "";
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, "single", PLUGINS, err, sizeof err), 0);
    assert_string_equal(p.path, PLUGINS "/single.so");
    assert_string_equal(p.table->name, "single");
    check_matmul_matches_reference(&p);
    rg_plugin_close(&p);

    assert_int_equal(rg_plugin_open(&p, PLUGINS "/single.so", NULL, err, sizeof err), 0);
    assert_string_equal(p.table->name, "single");
    check_matmul_matches_reference(&p);
    rg_plugin_close(&p);

    /* Through the variable alone. */
    setenv(RG_BACKEND_PATH_ENV, PLUGINS, 1);
    assert_int_equal(rg_plugin_open(&p, "single", NULL, err, sizeof err), 0);
    rg_plugin_close(&p);
    unsetenv(RG_BACKEND_PATH_ENV);
}

static void test_default_dir_is_beside_binary(void **state) {
    /* Tests are built into the same bin/ folder as randygpt, so its plugin folder is theirs. */
    char want[PATH_MAX];
    assert_non_null(realpath(PLUGINS, want));
    assert_string_equal(rg_plugin_default_dir(), want);
    char err[1024] = "";
    rg_plugin p;
    assert_int_equal(rg_plugin_open(&p, "single", NULL, err, sizeof err), 0);
    rg_plugin_close(&p);
}

/* ---- listing ---- */

#define SEEN_MAX 64 /* more than the fixtures and plugins together */
typedef struct seen_list {
    int n;
    char names[SEEN_MAX][64];
    char paths[SEEN_MAX][PATH_MAX];
} seen_list;

static void remember(const char *name, const char *path, void *user) {
    seen_list *s = user;
    if (s->n == SEEN_MAX) return;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
    snprintf(s->paths[s->n], sizeof s->paths[0], "%s", path);
    s->n++;
}

static int find_seen(const seen_list *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) return i;
    return -1;
}

static void test_list(void **state) {
    seen_list s = {0};
    int n = rg_plugin_list(PLUGINS, remember, &s);
    assert_int_equal(n, s.n);
    int i = find_seen(&s, "single");
    assert_true(i >= 0);
    assert_string_equal(s.paths[i], PLUGINS "/single.so");

    /* Fixtures plus a folder that shadows one of them: first hit wins, sorted by name. */
    char dir[PATH_MAX], file[PATH_MAX + 16];
    make_tmpdir(dir, sizeof dir, "list");
    snprintf(file, sizeof file, "%s/nullop.so", dir);
    assert_int_equal(copy_file(PLUGINS "/single.so", file), 0);
    setenv(RG_BACKEND_PATH_ENV, FIXTURES, 1);
    memset(&s, 0, sizeof s);
    n = rg_plugin_list(dir, remember, &s);
    assert_int_equal(n, s.n);
    const char *fixtures[] = {"badabi", "badsize", "crash", "hang", "noentry",
                              "notaplugin", "nullentry", "nullop", "single"};
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++)
        if (find_seen(&s, fixtures[k]) < 0) fail_msg("%s not listed", fixtures[k]);
    assert_string_equal(s.paths[find_seen(&s, "nullop")], file);
    assert_string_equal(s.paths[find_seen(&s, "badabi")], FIXTURES "/badabi.so");
    for (int k = 1; k < s.n; k++) assert_true(strcmp(s.names[k - 1], s.names[k]) < 0);
    unsetenv(RG_BACKEND_PATH_ENV);
    unlink(file);
    rmdir(dir);
}

/* ---- backend_args ---- */

/* rg_backend_args_take of one option's value, as the parser hands it over; *err is the error
 * line it left (malloc'd, or NULL). */
static int take(rg_backend_args *a, int id, const char *flag, const char *value, char **err) {
    char name[64];
    snprintf(name, sizeof name, "%s", flag);
    rg_cli c = {"test", NULL, name, NULL};
    int r = rg_backend_args_take(&c, a, id, value);
    free(*err);
    *err = c.err;
    return r;
}

static void test_args_parse(void **state) {
    rg_backend_args a;
    rg_backend_args_init(&a);
    assert_string_equal(a.backend, "auto");
    assert_null(a.backend_dir);
    assert_int_equal(a.threads, rg_default_threads());
    assert_true(a.threads >= 1);
    assert_int_equal(a.threads_given, 0);

    char *err = NULL;
    assert_int_equal(take(&a, RG_OPT_THREADS, "--threads", "3", &err), 0);
    assert_int_equal(a.threads, 3);
    assert_int_equal(a.threads_given, 1);

    const char *bad[] = {"0", "-3", "abc", "2x", "", "99999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(take(&a, RG_OPT_THREADS, "--threads", bad[k], &err), -1);
        assert_contains(err, "--threads must be an integer from 1");
        assert_int_equal(a.threads, 3); /* unchanged */
    }
    assert_int_equal(take(&a, RG_OPT_BACKEND, "--backend", "", &err), -1);
    assert_contains(err, "--backend needs a value");

    assert_int_equal(take(&a, RG_OPT_BACKEND, "--backend", "openmp", &err), 0);
    assert_string_equal(a.backend, "openmp");
    assert_int_equal(take(&a, RG_OPT_BACKEND_DIR, "--backend-dir", "/x/y", &err), 0);
    assert_string_equal(a.backend_dir, "/x/y");

    assert_int_equal(take(&a, RG_OPT_BACKEND_OPT, "--backend-opt", "coretype=SkylakeX", &err), 0);
    assert_int_equal(take(&a, RG_OPT_BACKEND_OPT, "--backend-opt", "empty=", &err), 0);
    rg_option opts[RG_MAX_BACKEND_OPTS];
    rg_backend_config cfg;
    rg_backend_args_config(&a, &cfg, opts);
    assert_int_equal(cfg.num_threads, 3);
    assert_int_equal(cfg.num_options, 2);
    assert_string_equal(cfg.options[0].key, "coretype");
    assert_string_equal(cfg.options[0].value, "SkylakeX");
    assert_string_equal(cfg.options[1].key, "empty");
    assert_string_equal(cfg.options[1].value, "");

    assert_int_equal(take(&a, RG_OPT_BACKEND_OPT, "--backend-opt", "novalue", &err), -1);
    assert_contains(err, "KEY=VALUE");
    assert_int_equal(take(&a, RG_OPT_BACKEND_OPT, "--backend-opt", "=v", &err), -1);
    assert_int_equal(a.num_options, 2);

    /* Not ours: nothing taken. */
    assert_int_equal(take(&a, RG_CLI_FIRST_ID, "--steps", "10", &err), RG_CLI_NOT_MINE);
    assert_int_equal(take(&a, RG_CLI_ARG, "", "stray", &err), RG_CLI_NOT_MINE);
    free(err);
}

static void test_args_open(void **state) {
    rg_backend_args a;
    rg_backend_args_init(&a);
    a.backend = "single";
    a.backend_dir = PLUGINS;
    char err[1024] = "";
    rg_plugin p;
    rg_ops ops;
    /* single refuses more than one thread; the default count falls back to 1. */
    assert_int_equal(rg_backend_args_open(&a, &p, &ops, err, sizeof err), 0);
    assert_int_equal(ops.num_threads, 1);
    rg_ops_destroy(&ops);
    rg_plugin_close(&p);

    /* A count the user chose is held to. */
    char *msg = NULL;
    assert_int_equal(take(&a, RG_OPT_THREADS, "--threads", "2", &msg), 0);
    assert_int_equal(rg_backend_args_open(&a, &p, &ops, err, sizeof err), -1);
    assert_contains(err, "single.so");
    assert_contains(err, "1 thread");
    assert_null(p.handle);

    /* Options reach create: the fixture takes none and names the key it refuses. */
    rg_backend_args_init(&a);
    a.backend = FIXTURES "/crash.so";
    assert_int_equal(take(&a, RG_OPT_BACKEND_OPT, "--backend-opt", "speed=max", &msg), 0);
    assert_int_equal(rg_backend_args_open(&a, &p, &ops, err, sizeof err), -1);
    assert_contains(err, "crash.so");
    assert_contains(err, "speed");
    assert_null(p.handle);

    /* Loader errors pass through, and an unknown NAME gets the names found and the closest. */
    a.backend = "nosuchbackend";
    assert_int_equal(rg_backend_args_open(&a, &p, &ops, err, sizeof err), -1);
    assert_contains(err, "nosuchbackend.so");
    assert_contains(err, "backends found: ");
    a.backend = "singel";
    a.backend_dir = PLUGINS;
    assert_int_equal(rg_backend_args_open(&a, &p, &ops, err, sizeof err), -1);
    assert_contains(err, "singel.so");
    assert_contains(err, "single");
    assert_contains(err, "did you mean single?");
    free(msg);
}

/* ---- `randygpt backends` ---- */

/* The output line that starts with the plugin's name. */
static void row_of(const char *out, const char *name, char *row, size_t n) {
    size_t len = strlen(name);
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, name, len) && line[len] == ' ') {
            size_t l = strcspn(line, "\n");
            snprintf(row, n, "%.*s", (int)l, line);
            return;
        }
    }
    fail_msg("no row for %s in:\n%s", name, out);
}

static void test_cmd_backends(void **state) {
    char *out, row[4096];
    int rc = run_capture("env -u " RG_BACKEND_PATH_ENV " '" RG_TEST_BIN "' backends --backend-dir '" FIXTURES
                         "' --threads 1", &out);
    assert_int_equal(rc, 0);
    struct {
        const char *name, *cause;
    } broken[] = {
        {"notaplugin", "is not a shared object"},
        {"noentry", "is not a randygpt backend plugin"},
        {"nullentry", "returned NULL"},
        {"badabi", "999"},
        {"badsize", "size mismatch"},
        {"nullop", "attention_backward"},
    };
    for (size_t k = 0; k < sizeof broken / sizeof broken[0]; k++) {
        row_of(out, broken[k].name, row, sizeof row);
        assert_contains(row, " no ");
        assert_contains(row, broken[k].cause);
    }
    row_of(out, "badabi", row, sizeof row);
    assert_contains(row, "badabi       999");
    row_of(out, "crash", row, sizeof row);
    assert_contains(row, " yes ");
    assert_contains(out, "test fixture crash: reference kernels");
    row_of(out, "single", row, sizeof row); /* the program's own folder is searched too */
    assert_contains(row, " yes ");
    assert_contains(out, "reference C kernels, 1 thread");
    /* Every plugin in the searched folders has a row: the fixtures and the program's own. */
    char total[64];
    snprintf(total, sizeof total, "%d plugins found", rg_plugin_list(FIXTURES, NULL, NULL));
    assert_contains(out, total);

    free(out);

    /* Bad usage exits 2 with one line. */
    rc = run_capture("'" RG_TEST_BIN "' backends --threads 0", &out);
    assert_int_equal(rc, 2);
    assert_contains(out, "--threads");
    free(out);
    rc = run_capture("'" RG_TEST_BIN "' backends --frobnicate", &out);
    assert_int_equal(rc, 2);
    assert_contains(out, "unknown option");
    free(out);
}

static void test_cmd_backends_none_found(void **state) {
    /* A copy of the program in a folder without plugins beside it finds nothing and says where
     * it looked. */
    char root[PATH_MAX], bin[PATH_MAX + 8], exe[PATH_MAX + 32], empty[PATH_MAX + 8];
    char *out;
    make_tmpdir(root, sizeof root, "none");
    snprintf(bin, sizeof bin, "%s/bin", root);
    snprintf(empty, sizeof empty, "%s/empty", root);
    snprintf(exe, sizeof exe, "%s/randygpt", bin);
    assert_int_equal(mkdir(bin, 0755), 0);
    assert_int_equal(mkdir(empty, 0755), 0);
    assert_int_equal(copy_file(RG_TEST_BIN, exe), 0);
    assert_int_equal(chmod(exe, 0755), 0);
    char *cmd = format("env -u %s '%s' backends --backend-dir '%s'", RG_BACKEND_PATH_ENV, exe, empty);
    int rc = run_capture(cmd, &out);
    free(cmd);
    assert_int_equal(rc, 1);
    assert_contains(out, "no backend plugins");
    assert_contains(out, empty);
    assert_contains(out, root); /* the program's (missing) plugin folder */
    free(out);
    unlink(exe);
    rmdir(bin);
    rmdir(empty);
    rmdir(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fixtures_refused, setup_env),
        cmocka_unit_test_setup(test_abi2_plugin_loads, setup_env),
        cmocka_unit_test_setup(test_missing_file, setup_env),
        cmocka_unit_test_setup(test_name_not_found_lists_dirs, setup_env),
        cmocka_unit_test_setup(test_env_path_honoured, setup_env),
        cmocka_unit_test_setup(test_backend_dir_wins, setup_env),
        cmocka_unit_test_setup(test_single_by_name_and_path, setup_env),
        cmocka_unit_test_setup(test_default_dir_is_beside_binary, setup_env),
        cmocka_unit_test_setup(test_list, setup_env),
        cmocka_unit_test_setup(test_args_parse, setup_env),
        cmocka_unit_test_setup(test_args_open, setup_env),
        cmocka_unit_test_setup(test_cmd_backends, setup_env),
        cmocka_unit_test_setup(test_cmd_backends_none_found, setup_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
