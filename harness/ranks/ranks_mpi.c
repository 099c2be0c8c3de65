/* The ranks of a build with MPI: rg_gradsum over MPI_Allreduce on MPI_COMM_WORLD. */
#include <stdint.h>
#include <stdio.h>

#include <mpi.h>

#include "ranks/ranks.h"
#include "randygpt/text.h"

int rg_ranks_have_mpi(void) { return 1; }

/* One line for a failed MPI call. */
static int mpi_fail(int rc, const char *what, char *err, size_t err_len) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    rg_errf(err, err_len, "%s failed: %.*s (a rank stopped?)", what, len, msg);
    return -1;
}

static int mpi_sum_floats(void *ctx, float *buf, size_t n, char *err, size_t err_len) {
    (void)ctx;
    /* counts are int: large buffers go in pieces */
    for (size_t done = 0; done < n;) {
        int count = n - done > (1u << 30) ? 1 << 30 : (int)(n - done);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of the gradients", err, err_len);
        done += (size_t)count;
    }
    return 0;
}

static int mpi_sum_doubles(void *ctx, double *buf, size_t n, char *err, size_t err_len) {
    (void)ctx;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce of the losses", err, err_len);
}

/* Equal everywhere exactly when max(value) == min(value), i.e. max(value) == ~max(~value). */
static int mpi_agree(void *ctx, uint64_t value, int *same, char *err, size_t err_len) {
    (void)ctx;
    uint64_t v[2] = {value, ~value};
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of the checksums", err, err_len);
    *same = v[0] == ~v[1];
    return 0;
}

int rg_ranks_open(rg_gradsum *gs, char *err, size_t err_len) {
    *gs = rg_gradsum_local();
    /* MPI starts only under a launcher: a lone process needs none of it */
    if (rg_ranks_launched() <= 1) return 0;
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init", err, err_len);
    /* errors come back to the caller, which ends the job with a message */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &gs->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &gs->size);
    gs->sum_floats = mpi_sum_floats;
    gs->sum_doubles = mpi_sum_doubles;
    gs->agree = mpi_agree;
    return 0;
}

void rg_ranks_close(rg_gradsum *gs, int status) {
    int up = 0;
    MPI_Initialized(&up);
    if (!up) return;
    /* a usage error (2) and a stop by signal (130, 143: every rank stops at the same step) reach
     * every rank alike; any other failure may be this rank's alone, and the others would wait for
     * it in their next sum */
    if (status != 0 && status != 2 && status != 130 && status != 143 && gs->size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    MPI_Finalize();
}
