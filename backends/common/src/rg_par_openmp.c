/* The OpenMP driver: one parallel region per op with exactly nchunks threads, chunk i on OpenMP
 * thread i. Kept in its own library (rg_par_openmp) so that only backends that want an OpenMP
 * runtime link one. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "rg_parallel.h"

static void omp_run(rg_par *par, int64_t n, int nchunks, rg_range_fn fn, void *arg) {
    /* exactly the threads asked for, never fewer chosen by the runtime; set here rather than once,
     * as it belongs to the calling thread and the host may call from another thread than create */
    omp_set_dynamic(0);
#pragma omp parallel num_threads(nchunks)
    {
        /* the runtime may give fewer threads than asked (nested regions, limits): the team's
         * threads then take the remaining chunks in turn, with the same boundaries */
        int nt = omp_get_num_threads();
        for (int i = omp_get_thread_num(); i < nchunks; i += nt) {
            int64_t begin = n * i / nchunks;
            int64_t end = n * (i + 1) / nchunks;
            if (begin < end) {
                fn(arg, begin, end, i);
            }
        }
    }
}

static void omp_destroy(rg_par *par) { free(par); }

rg_par *rg_par_openmp_create(int num_threads, char *err, size_t err_len) {
    if (num_threads < 1) {
        snprintf(err, err_len, "OpenMP driver needs at least 1 thread (got %d)", num_threads);
        return NULL;
    }
    rg_par *par = calloc(1, sizeof(*par));
    if (!par) {
        snprintf(err, err_len, "out of memory for the OpenMP driver");
        return NULL;
    }
    par->num_threads = num_threads;
    par->run = omp_run;
    par->destroy = omp_destroy;
    return par;
}
