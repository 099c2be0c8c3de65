/* Bad backend configuration is refused by create with one clear line: an unknown option key,
 * threads <= 0, an unknown OpenBLAS core type or BLIS configuration. Good options are honoured and
 * show in describe. Every bundled plugin goes through the same checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "randygpt/loader.h"
#include "randygpt/ops.h"

static const char *const bundled[] = {"single", "openmp", "pthreads", "openblas", "blis"};

/* Opens a bundled plugin and tries to create an instance; returns create's result (0 or -1) and
 * leaves the error line or the describe line in msg. */
static int try_create(const char *name, int threads, const char *key, const char *value, char *msg,
                      size_t msg_len) {
    rg_plugin p;
    char err[512];
    assert_int_equal(rg_plugin_open(&p, name, RG_TEST_PLUGIN_DIR, err, sizeof err), 0);
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

static void assert_one_line_containing(const char *msg, const char *needle) {
    assert_non_null(strstr(msg, needle));
    assert_null(strchr(msg, '\n'));
}

static void test_unknown_option_refused(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++) {
        char msg[512] = "";
        assert_int_equal(try_create(bundled[i], 1, "no_such_key", "1", msg, sizeof msg), -1);
        assert_one_line_containing(msg, "no_such_key");
    }
}

static void test_nonpositive_threads_refused(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++)
        for (int threads = -1; threads <= 0; threads++) {
            char msg[512] = "";
            assert_int_equal(try_create(bundled[i], threads, NULL, NULL, msg, sizeof msg), -1);
            assert_true(strlen(msg) > 0);
            assert_null(strchr(msg, '\n'));
        }
}

static void test_openblas_coretype(void **state) {
    (void)state;
    char msg[512] = "";
    assert_int_equal(try_create("openblas", 1, "coretype", "NoSuchCore", msg, sizeof msg), -1);
    assert_one_line_containing(msg, "NoSuchCore");
    /* Haswell's kernels run on every AVX2 CPU, so this choice must be honoured and reported. */
    assert_int_equal(try_create("openblas", 1, "coretype", "Haswell", msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "Haswell"));
}

static void test_blis_arch(void **state) {
    (void)state;
    char msg[512] = "";
    assert_int_equal(try_create("blis", 1, "arch", "nosucharch", msg, sizeof msg), -1);
    assert_one_line_containing(msg, "nosucharch");
    assert_int_equal(try_create("blis", 1, "arch", "haswell", msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "haswell"));
}

static void test_threads_reported(void **state) {
    (void)state;
    for (size_t i = 1; i < sizeof bundled / sizeof bundled[0]; i++) {
        char msg[512] = "";
        assert_int_equal(try_create(bundled[i], 2, NULL, NULL, msg, sizeof msg), 0);
        assert_non_null(strstr(msg, "2 threads"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_option_refused),
        cmocka_unit_test(test_nonpositive_threads_refused),
        cmocka_unit_test(test_openblas_coretype),
        cmocka_unit_test(test_blis_arch),
        cmocka_unit_test(test_threads_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
