/* Tests of the text helpers (randygpt/text.h) and of rg_plugin_text: a message that does not fit
 * its buffer ends with RG_TRUNCATED_MARK, one that fits is left whole, and heap text has no limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "randygpt/ops.h"
#include "randygpt/text.h"

static int ends_with(const char *s, const char *end) {
    size_t ls = strlen(s), le = strlen(end);
    return ls >= le && !strcmp(s + ls - le, end);
}

static void test_fits_whole(void **state) {
    (void)state;
    char buf[32];
    rg_errf(buf, sizeof buf, "%s %d", "seven", 7);
    assert_string_equal(buf, "seven 7");
    rg_errf_append(buf, sizeof buf, "; %s", "more");
    assert_string_equal(buf, "seven 7; more");
    /* exactly the buffer's room (31 characters) is not a cut */
    rg_errf(buf, sizeof buf, "%s", "0123456789012345678901234567890");
    assert_string_equal(buf, "0123456789012345678901234567890");
}

static void test_cut_is_marked(void **state) {
    (void)state;
    char buf[32];
    rg_errf(buf, sizeof buf, "%s", "a message far longer than thirty-one characters");
    assert_int_equal(strlen(buf), sizeof buf - 1);
    assert_true(ends_with(buf, RG_TRUNCATED_MARK));
    assert_memory_equal(buf, "a message far lo", sizeof buf - 1 - strlen(RG_TRUNCATED_MARK));
    /* an append that overflows marks the end too, keeping the start */
    rg_errf(buf, sizeof buf, "start");
    rg_errf_append(buf, sizeof buf, "%s", " and then a long tail that cannot fit");
    assert_true(ends_with(buf, RG_TRUNCATED_MARK));
    assert_memory_equal(buf, "start", 5);
    /* appending to a full, marked buffer keeps one mark */
    rg_errf_append(buf, sizeof buf, "%s", " again");
    assert_int_equal(strlen(buf), sizeof buf - 1);
    assert_true(ends_with(buf, RG_TRUNCATED_MARK));
}

static void test_heap_text_has_no_limit(void **state) {
    (void)state;
    char *big = malloc(20001);
    assert_non_null(big);
    memset(big, 'q', 20000);
    big[20000] = '\0';
    char *s = rg_strf("<%s>", big);
    assert_non_null(s);
    assert_int_equal(strlen(s), 20002);
    free(s);
    free(big);
}

static void test_plugin_text(void **state) {
    (void)state;
    /* terminated inside the buffer: kept, control bytes replaced */
    char ok[16] = "one\ntwo";
    rg_plugin_text(ok, sizeof ok);
    assert_string_equal(ok, "one?two");
    /* no NUL at all: cut at the end and marked */
    char full[40];
    memset(full, 'x', sizeof full);
    rg_plugin_text(full, sizeof full);
    assert_int_equal(strlen(full), sizeof full - 1);
    assert_true(ends_with(full, RG_TRUNCATED_MARK));
    /* a plugin's own snprintf cut (NUL in the last byte): marked as well */
    char cut[40];
    memset(cut, 'y', sizeof cut);
    cut[sizeof cut - 1] = '\0';
    rg_plugin_text(cut, sizeof cut);
    assert_true(ends_with(cut, RG_TRUNCATED_MARK));
    assert_int_equal(cut[0], 'y');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_whole),
        cmocka_unit_test(test_cut_is_marked),
        cmocka_unit_test(test_heap_text_has_no_limit),
        cmocka_unit_test(test_plugin_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
