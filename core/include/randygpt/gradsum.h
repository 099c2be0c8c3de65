/*
 * The gradient sum across processes: the one interface through which data-parallel training talks
 * to the other processes of a job (ranks). The core knows only this table; the harness supplies
 * the implementation: rg_gradsum_local (one process, in-process: every sum is the value itself)
 * or an MPI one (MPI_Allreduce), so the core never includes an MPI header.
 *
 * Every rank must make the same calls in the same order; a call that fails (a rank died) returns
 * -1 with one line in err, and the caller ends the job.
 */
#ifndef RANDYGPT_GRADSUM_H
#define RANDYGPT_GRADSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rg_gradsum {
    int rank;   /* this process, 0 .. size-1; rank 0 alone prints and writes files */
    int size;   /* processes in the job, >= 1 */
    void *ctx;  /* the implementation's state */
    /* buf is (n): replaced by its element-wise sum over every rank. Returns 0 or -1. */
    int (*sum_floats)(void *ctx, float *buf, size_t n, char *err, size_t err_len);
    /* The same for doubles (losses, flags: n is small). */
    int (*sum_doubles)(void *ctx, double *buf, size_t n, char *err, size_t err_len);
    /* *same = 1 when every rank passed the same value, else 0. Returns 0 or -1. */
    int (*agree)(void *ctx, uint64_t value, int *same, char *err, size_t err_len);
} rg_gradsum;

/* The in-process implementation: one process (rank 0 of 1); sums and agreement are immediate. */
rg_gradsum rg_gradsum_local(void);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_GRADSUM_H */
