/* Tests of the pieces of `randygpt train` around the step: the time estimate (evaluations
 * included), the count of evaluations left, the progress line and the best-checkpoint path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/train_parts.h"

static void test_evals_between(void **state) {
    (void)state;
    assert_int_equal(rg_evals_between(0, 100, 10, 100), 10);
    assert_int_equal(rg_evals_between(0, 95, 10, 95), 10);  /* 9 + the last step */
    assert_int_equal(rg_evals_between(5, 15, 10, 100), 1);
    assert_int_equal(rg_evals_between(10, 19, 10, 100), 0);
    assert_int_equal(rg_evals_between(0, 50, 10, 100), 5);  /* --stop-at 50 of 100 */
    assert_int_equal(rg_evals_between(95, 95, 10, 95), 0);
    assert_int_equal(rg_evals_between(90, 95, 10, 95), 1);
}

static void test_eta_counts_evaluations(void **state) {
    (void)state;
    rg_eta e;
    rg_eta_init(&e, 2.0);  /* an evaluation guessed at 2 steps until one is measured */
    assert_true(rg_eta_remaining(&e, 10, 1) == 0);
    rg_eta_add_step(&e, 1.0);  /* the first step stands alone until there is another */
    assert_float_equal(rg_eta_step_s(&e), 1.0, 1e-12);
    rg_eta_add_step(&e, 0.1);
    rg_eta_add_step(&e, 0.1);
    rg_eta_add_step(&e, 0.1);
    assert_float_equal(rg_eta_step_s(&e), 0.1, 1e-12);  /* the slow first step left out */
    assert_float_equal(rg_eta_remaining(&e, 10, 0), 1.0, 1e-12);
    assert_float_equal(rg_eta_remaining(&e, 10, 2), 1.0 + 2 * 0.2, 1e-12);  /* guessed */
    rg_eta_add_eval(&e, 0.5);
    rg_eta_add_eval(&e, 0.7);
    assert_float_equal(rg_eta_remaining(&e, 10, 2), 1.0 + 2 * 0.6, 1e-12);  /* measured */
}

static void test_progress_line(void **state) {
    (void)state;
    char line[256];
    rg_progress_line(line, sizeof line, 25, 100, 2.5f, 12345.0, 75.0, 3725.0, 8);
    assert_string_equal(line,
                        "step 25/100 [##......]  25% | loss 2.5000 | 12345 tok/s | 1m15s | ETA 1h02m");
    rg_progress_line(line, sizeof line, 7, 100, 3.0f, 99.4, 4.26, 59.4, 0);
    assert_string_equal(line, "step 7/100 | loss 3.0000 | 99 tok/s | 4.3s | ETA 59.4s");
}

static void check_best_path(const char *ckpt, const char *want) {
    char *p = rg_best_checkpoint_path(ckpt);
    assert_non_null(p);
    assert_string_equal(p, want);
    free(p);
}

static void test_best_path(void **state) {
    (void)state;
    check_best_path("runs/a.ckpt", "runs/a.best.ckpt");
    check_best_path("model", "model.best");
    check_best_path(".ckpt", ".ckpt.best");
    /* no length limit: a name longer than PATH_MAX comes back whole (the save says if it is) */
    char *long_name = malloc(5000);
    assert_non_null(long_name);
    memset(long_name, 'a', 4994);
    strcpy(long_name + 4994, ".ckpt");
    char *p = rg_best_checkpoint_path(long_name);
    assert_non_null(p);
    assert_int_equal(strlen(p), 4994 + strlen(".best.ckpt"));
    free(p);
    free(long_name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evals_between),
        cmocka_unit_test(test_eta_counts_evaluations),
        cmocka_unit_test(test_progress_line),
        cmocka_unit_test(test_best_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
