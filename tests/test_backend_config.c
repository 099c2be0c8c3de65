/* Bad backend configuration is refused by create with one clear line: an unknown option key,
 * threads <= 0, an unknown OpenBLAS core type or BLIS configuration. Good options are honoured and
 * show in describe. Every bundled plugin goes through the same checks.
 *
 * The BLAS backends load their library once per process with the kernel set of the first create()
 * and keep it: a core type / arch choice is checked in a fresh process (this test program run
 * again, as "--child openblas" or "--child blis"), which also checks that a later create() asking
 * for another choice is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "built.h"

#include "randygpt/loader.h"
#include "randygpt/ops.h"

static const char *const bundled[] = {"single", "openmp", "pthreads", "openblas", "blis"};

/* Whether name was built; one that was not (an optional BLAS backend) is left out of a loop over
 * every bundled backend, with a note. */
static int built(const char *name) {
    if (rg_test_backend_built(name)) return 1;
    print_message("note: the %s backend was not built: not checked\n", name);
    return 0;
}

/* Opens a bundled plugin and tries to create an instance; returns create's result (0 or -1), or -2
 * when the plugin does not open, and leaves the error line or the describe line in msg. */
static int create_describe(const char *name, int threads, const char *key, const char *value,
                           char *msg, size_t msg_len) {
    rg_plugin p;
    if (rg_plugin_open(&p, name, RG_TEST_PLUGIN_DIR, msg, msg_len) != 0) {
        return -2;
    }
    rg_option opt = {key, value};
    rg_backend_config cfg = {.num_threads = threads, .num_options = key ? 1 : 0, .options = &opt};
    rg_ops ops;
    int r = rg_ops_create(&ops, p.table, &cfg, msg, msg_len);
    if (r == 0) {
        ops.k.describe(ops.ctx, msg, msg_len);
        rg_ops_destroy(&ops);
    }
    rg_plugin_close(&p);
    return r;
}

static int try_create(const char *name, int threads, const char *key, const char *value, char *msg,
                      size_t msg_len) {
    int r = create_describe(name, threads, key, value, msg, msg_len);
    assert_int_not_equal(r, -2);
    return r;
}

static void assert_one_line_containing(const char *msg, const char *needle) {
    assert_non_null(strstr(msg, needle));
    assert_null(strchr(msg, '\n'));
}

static void test_unknown_option_refused(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++) {
        if (!built(bundled[i])) continue;
        char msg[512] = "";
        assert_int_equal(try_create(bundled[i], 1, "no_such_key", "1", msg, sizeof msg), -1);
        assert_one_line_containing(msg, "no_such_key");
    }
}

static void test_nonpositive_threads_refused(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++)
        for (int threads = -1; threads <= 0 && built(bundled[i]); threads++) {
            char msg[512] = "";
            assert_int_equal(try_create(bundled[i], threads, NULL, NULL, msg, sizeof msg), -1);
            assert_true(strlen(msg) > 0);
            assert_null(strchr(msg, '\n'));
        }
}

/* The checks of a fresh process (no cmocka there: a failed check prints its line and exits 1). */
#define CHILD_CHECK(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n  last message: %s\n", __FILE__,     \
                    __LINE__, #cond, msg);                                                  \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)
#define ONE_LINE_WITH(needle) (strstr(msg, needle) != NULL && strchr(msg, '\n') == NULL)

/* An unknown core type is refused, Haswell (its kernels run on every AVX2 CPU) is honoured and
 * reported, and from then on this process runs Haswell: another core type is refused. */
static int child_openblas(void) {
    char msg[512] = "";
    CHILD_CHECK(create_describe("openblas", 1, "coretype", "NoSuchCore", msg, sizeof msg) == -1);
    CHILD_CHECK(ONE_LINE_WITH("NoSuchCore"));
    CHILD_CHECK(create_describe("openblas", 1, "coretype", "Haswell", msg, sizeof msg) == 0);
    CHILD_CHECK(strstr(msg, "core type Haswell (set by coretype=Haswell)") != NULL);
    CHILD_CHECK(create_describe("openblas", 1, "coretype", "Prescott", msg, sizeof msg) == -1);
    CHILD_CHECK(ONE_LINE_WITH("already runs core type Haswell in this process"));
    CHILD_CHECK(ONE_LINE_WITH("coretype=Prescott needs its own process"));
    CHILD_CHECK(create_describe("openblas", 1, NULL, NULL, msg, sizeof msg) == 0);
    CHILD_CHECK(strstr(msg, "core type Haswell") != NULL);
    return 0;
}

/* The same for BLIS: an unknown arch refused, haswell honoured and then kept. */
static int child_blis(void) {
    char msg[512] = "";
    CHILD_CHECK(create_describe("blis", 1, "arch", "nosucharch", msg, sizeof msg) == -1);
    CHILD_CHECK(ONE_LINE_WITH("nosucharch"));
    CHILD_CHECK(create_describe("blis", 1, "arch", "haswell", msg, sizeof msg) == 0);
    CHILD_CHECK(strstr(msg, "configuration haswell (set by arch=haswell)") != NULL);
    CHILD_CHECK(create_describe("blis", 1, "arch", "generic", msg, sizeof msg) == -1);
    CHILD_CHECK(ONE_LINE_WITH("already runs haswell in this process"));
    CHILD_CHECK(ONE_LINE_WITH("arch=generic needs its own process"));
    CHILD_CHECK(create_describe("blis", 1, NULL, NULL, msg, sizeof msg) == 0);
    CHILD_CHECK(strstr(msg, "configuration haswell") != NULL);
    return 0;
}

/* Runs this program again as "--child which" and returns its exit status (-1: it did not exit). */
static int run_child(const char *which) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_backend_config", "--child", (char *)which, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_openblas_coretype(void **state) {
    (void)state;
    RG_SKIP_UNLESS_BUILT("openblas");
    assert_int_equal(run_child("openblas"), 0);
}

static void test_blis_arch(void **state) {
    (void)state;
    RG_SKIP_UNLESS_BUILT("blis");
    assert_int_equal(run_child("blis"), 0);
}

static void test_threads_reported(void **state) {
    (void)state;
    for (size_t i = 1; i < sizeof bundled / sizeof bundled[0]; i++) {
        if (!built(bundled[i])) continue;
        char msg[512] = "";
        assert_int_equal(try_create(bundled[i], 2, NULL, NULL, msg, sizeof msg), 0);
        assert_non_null(strstr(msg, "2 threads"));
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return strcmp(argv[2], "openblas") == 0 ? child_openblas()
               : strcmp(argv[2], "blis") == 0   ? child_blis()
                                                : 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_option_refused),
        cmocka_unit_test(test_nonpositive_threads_refused),
        cmocka_unit_test(test_openblas_coretype),
        cmocka_unit_test(test_blis_arch),
        cmocka_unit_test(test_threads_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
