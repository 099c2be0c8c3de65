/* The ranks of a build without MPI: one process, and a clear refusal under a launcher. */
#include <stdio.h>

#include "ranks/ranks.h"
#include "randygpt/text.h"

int rg_ranks_have_mpi(void) { return 0; }

int rg_ranks_open(rg_gradsum *gs, char *err, size_t err_len) {
    *gs = rg_gradsum_local();
    int n = rg_ranks_launched();
    if (n > 1) {
        rg_errf(err, err_len, "started as one of %d processes (mpirun), but this build has no MPI: "
                "install OpenMPI (libopenmpi-dev) and rebuild, or run a single process", n);
        return -1;
    }
    return 0;
}

void rg_ranks_close(rg_gradsum *gs, int status) { (void)gs, (void)status; }
