/*
 * The ranks of a training job: the processes that `mpirun -np P randygpt train ...` starts. In a
 * build with MPI (CMake option RANDYGPT_MPI) a process launched so joins the others through MPI and
 * gets an rg_gradsum over MPI_Allreduce; alone (no launcher) it gets rg_gradsum_local. A build
 * without MPI refuses to run under a launcher of several processes rather than train P separate
 * copies of the model.
 */
#ifndef RANDYGPT_RANKS_H
#define RANDYGPT_RANKS_H

#include <stddef.h>

#include "randygpt/gradsum.h"

/* 1 when this build has MPI. */
int rg_ranks_have_mpi(void);

/* The number of processes a launcher started this one among, from its environment
 * (OMPI_COMM_WORLD_SIZE, or PMI_SIZE of a PMI launcher); 1 when none did. */
int rg_ranks_launched(void);

/* Joins the job: *gs is the MPI sum when launched with several processes, else the local one.
 * Returns 0, or -1 with one line in err (launched with several processes, and no MPI in the build;
 * or MPI failed to start). */
int rg_ranks_open(rg_gradsum *gs, char *err, size_t err_len);

/* Leaves the job with this rank's exit status. A failure (other than 2, a usage error, or 130 and
 * 143, a stop by signal, which every rank meets alike) ends every rank of the job, so that none waits
 * forever for a rank that stopped: the launcher then reports which rank failed. */
void rg_ranks_close(rg_gradsum *gs, int status);

#endif /* RANDYGPT_RANKS_H */
