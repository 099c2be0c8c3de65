/* The ranks of a build without MPI (harness/ranks/ranks_none.c): alone it trains as one process;
 * under a launcher of several processes it refuses with one line that says why. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ranks/ranks.h"

static void test_alone_is_one_rank(void **state) {
    (void)state;
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_SIZE");
    char err[512] = "";
    rg_gradsum gs;
    assert_int_equal(rg_ranks_have_mpi(), 0);
    assert_int_equal(rg_ranks_launched(), 1);
    assert_int_equal(rg_ranks_open(&gs, err, sizeof err), 0);
    assert_int_equal(gs.rank, 0);
    assert_int_equal(gs.size, 1);
    float g[3] = {1, 2, 3};
    assert_int_equal(gs.sum_floats(gs.ctx, g, 3, err, sizeof err), 0);
    assert_true(g[0] == 1 && g[1] == 2 && g[2] == 3);  /* one rank: the sum is the value */
    rg_ranks_close(&gs, 0);
}

static void test_under_mpirun_refuses(void **state) {
    (void)state;
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 2; i++) {
        setenv(vars[i], "2", 1);
        char err[512] = "";
        rg_gradsum gs;
        assert_int_equal(rg_ranks_launched(), 2);
        assert_int_equal(rg_ranks_open(&gs, err, sizeof err), -1);
        assert_non_null(strstr(err, "one of 2 processes (mpirun), but this build has no MPI"));
        assert_null(strchr(err, '\n'));
        unsetenv(vars[i]);
    }
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);  /* mpirun -np 1: one process, nothing to refuse */
    assert_int_equal(rg_ranks_launched(), 1);
    unsetenv("OMPI_COMM_WORLD_SIZE");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alone_is_one_rank),
        cmocka_unit_test(test_under_mpirun_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
