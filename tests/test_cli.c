/* The command lines of every command (harness/app/cmdline.c): getopt_long with the value checks,
 * "did you mean" for an unknown option, command or backend name, the backends found when a name
 * is wrong, --version and `randygpt help CMD`. */
#define _GNU_SOURCE /* popen */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "app/cmdline.h"
#include "randygpt/backend.h"
#include "run_support.h"

#define BIN "'" RG_TEST_BIN "'"

/* cmd exits 2 with exactly one line that holds want. */
static void expect_usage_error(const char *cmd, const char *want) {
    char *out;
    int rc = run_capture(cmd, &out);
    if (rc != 2 || count_lines(out) != 1 || !strstr(out, want))
        fail_msg("'%s': status %d, wanted one line with \"%s\", got: %s", cmd, rc, want, out);
    free(out);
}

static void test_edit_distance(void **state) {
    (void)state;
    assert_int_equal(rg_edit_distance("iters", "iters"), 0);
    assert_int_equal(rg_edit_distance("iter", "iters"), 1);
    assert_int_equal(rg_edit_distance("itres", "iters"), 1); /* a swap is one edit */
    assert_int_equal(rg_edit_distance("", "lr"), 2);
    assert_int_equal(rg_edit_distance("kitten", "sitting"), 3);
    const char *names[] = {"iters", "batch", "lr", "log"};
    assert_string_equal(rg_closest_name("itesr", names, 4), "iters");
    assert_string_equal(rg_closest_name("lt", names, 4), "lr");
    assert_null(rg_closest_name("frobnicate", names, 4));
    assert_null(rg_closest_name("x", names, 4)); /* two edits of a one-letter word: no guess */
}

/* The parser hands options and arguments over in order, in both value forms. */
typedef struct seen {
    int ids[8], n;
    const char *values[8];
} seen;

static int record(rg_cli *c, int id, const char *v, void *user) {
    seen *s = user;
    if (id == 'x') return RG_CLI_NOT_MINE;
    if (id == 300 && strcmp(c->flag, "--steps") != 0) return rg_cli_error(c, "wrong flag");
    s->ids[s->n] = id;
    s->values[s->n++] = v;
    return 0;
}

static void no_usage(FILE *f) { (void)f; }

static void test_parse_order_and_forms(void **state) {
    (void)state;
    static const struct option opts[] = {
        {"steps", required_argument, NULL, 300}, {"quiet", no_argument, NULL, 301},
        RG_CLI_HELP_OPTION, RG_CLI_END};
    char *argv[] = {"cmd", "--steps", "5", "a", "--steps=6", "--quiet", "--", "--steps", NULL};
    seen s = {.n = 0};
    assert_int_equal(rg_cli_parse("cmd", opts, 8, argv, record, &s, no_usage), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.ids[0], 300);
    assert_string_equal(s.values[0], "5");
    assert_int_equal(s.ids[1], RG_CLI_ARG);
    assert_string_equal(s.values[1], "a");
    assert_int_equal(s.ids[2], 300);
    assert_string_equal(s.values[2], "6");
    assert_int_equal(s.ids[3], 301);
    assert_int_equal(s.ids[4], RG_CLI_ARG); /* after "--", an option's name is an argument */
    assert_string_equal(s.values[4], "--steps");
    /* a second parse starts afresh */
    char *help[] = {"cmd", "--help", NULL};
    assert_int_equal(rg_cli_parse("cmd", opts, 2, help, record, &s, no_usage), 1);
    char *bad[] = {"cmd", "--step", "5", NULL};
    assert_int_equal(rg_cli_parse("cmd", opts, 3, bad, record, &s, no_usage), 2);
}

/* getopt keeps its place in static state (optind, and its position inside "-abc"): a parse that
 * stopped in the middle of a cluster, at a missing value or at an unknown option must leave
 * nothing behind, or the next parse in the same process (a test, help CMD) would misread its
 * first option, e.g. "unknown option '--quick'". */
static void test_reparse_after_aborted_parse(void **state) {
    (void)state;
    static const struct option opts[] = {
        {"steps", required_argument, NULL, 300}, {"quick", no_argument, NULL, 302},
        RG_CLI_HELP_OPTION, RG_CLI_END};
    char *cluster[] = {"cmd", "-xq", NULL};
    char *missing[] = {"cmd", "a", "--steps", NULL};
    char *unknown[] = {"cmd", "--quack", "--quick", NULL};
    char *help_cluster[] = {"cmd", "-hq", NULL};
    char **aborted[] = {cluster, missing, unknown, help_cluster};
    int argcs[] = {2, 3, 3, 2};
    for (int k = 0; k < 4; k++) {
        seen s = {.n = 0};
        assert_int_equal(rg_cli_parse("cmd", opts, argcs[k], aborted[k], record, &s, no_usage), 2);
        char *good[] = {"cmd", "--quick", "p", "--steps", "3", NULL};
        s.n = 0;
        assert_int_equal(rg_cli_parse("cmd", opts, 5, good, record, &s, no_usage), 0);
        assert_int_equal(s.n, 3);
        assert_int_equal(s.ids[0], 302);
        assert_int_equal(s.ids[1], RG_CLI_ARG);
        assert_string_equal(s.values[2], "3");
    }
}

static void test_unknown_option_did_you_mean(void **state) {
    (void)state;
    expect_usage_error(BIN " train --iter 5", "unknown option '--iter'; did you mean --iters?");
    expect_usage_error(BIN " train --itres=5", "did you mean --iters?");
    expect_usage_error(BIN " generate --tokns 3", "did you mean --tokens?");
    expect_usage_error(BIN " check single --prest tiny", "did you mean --preset?");
    expect_usage_error(BIN " backends --thread 1", "did you mean --threads?");
    expect_usage_error(BIN " bench --backend single", "did you mean --backends?");
    expect_usage_error(BIN " train --frobnicate", "unknown option '--frobnicate' (see");
    expect_usage_error(BIN " train --help=yes", "--help takes no value");
    expect_usage_error(BIN " train --iters", "--iters needs a value");
    expect_usage_error(BIN " train --data=", "--data needs a value");
    expect_usage_error(BIN " train -q", "unknown option '-q'");
    expect_usage_error(BIN " train --preset smal", "did you mean small?");
    expect_usage_error(BIN " trian", "unknown command 'trian'; did you mean train?");
}

static void test_unknown_backend_lists_found(void **state) {
    (void)state;
    char *out;
    int rc = run_capture("env -u RANDYGPT_BACKEND_PATH " BIN " check singel --preset tiny", &out);
    assert_int_equal(rc, 1);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "backend 'singel' not found"));
    assert_non_null(strstr(out, "backends found: "));
    assert_non_null(strstr(out, "single"));
    assert_non_null(strstr(out, "did you mean single?"));
    free(out);
    /* bench refuses the name before it measures anything */
    expect_usage_error("env -u RANDYGPT_BACKEND_PATH " BIN " bench --backends single,opnemp "
                       "--out " RG_TEST_TMPDIR "/cli-bench",
                       "unknown backend 'opnemp'; backends found: ");
}

static void test_version(void **state) {
    (void)state;
    char *out;
    assert_int_equal(run_capture(BIN " --version", &out), 0);
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(strncmp(out, "randygpt ", 9), 0);
    char abi[64];
    snprintf(abi, sizeof abi, "backend ABI version %d", RG_BACKEND_ABI_VERSION);
    assert_non_null(strstr(out, abi));
    free(out);
}

static void test_help_command_is_command_help(void **state) {
    (void)state;
    const char *cmds[] = {"train", "generate", "backends", "check", "bench"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        char *a, *b, *cmd;
        assert_true(asprintf(&cmd, BIN " help %s", cmds[k]) > 0);
        assert_int_equal(run_capture(cmd, &a), 0);
        free(cmd);
        assert_true(asprintf(&cmd, BIN " %s --help", cmds[k]) > 0);
        assert_int_equal(run_capture(cmd, &b), 0);
        free(cmd);
        assert_string_equal(a, b);
        assert_non_null(strstr(a, "usage: randygpt"));
        free(a);
        free(b);
    }
    expect_usage_error(BIN " help nosuch", "unknown command 'nosuch'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_parse_order_and_forms),
        cmocka_unit_test(test_reparse_after_aborted_parse),
        cmocka_unit_test(test_unknown_option_did_you_mean),
        cmocka_unit_test(test_unknown_backend_lists_found),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_help_command_is_command_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
