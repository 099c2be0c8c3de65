/* The OpenMP driver: one parallel region per op with as many threads as chunks, up to the thread
 * count. A job has up to RG_PAR_CHUNKS_PER_THREAD chunks per thread; each thread takes the chunks
 * of its own share first (the static split: the rows it wrote in the previous op), then those the
 * others have not started (a compare-and-swap on a per-chunk flag), so a thread that runs slower
 * or starts late delays the op by at most about one chunk. Kept in its own library
 * (rg_par_openmp) so that only backends that want an OpenMP runtime link one. */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "rg_par_internal.h"

/* One chunk's flag, alone on its cache line: 0 open, 1 taken. */
typedef struct omp_chunk_flag {
    atomic_int taken;
    char pad[64 - sizeof(atomic_int)];
} omp_chunk_flag;

typedef struct omp_par {
    rg_par base; /* first member: the rg_par the kernels see */
    omp_chunk_flag *flags; /* (max_chunks) */
} omp_par;

static void omp_run(rg_par *par, int64_t n, int nchunks, rg_range_fn fn, void *arg) {
    omp_par *op = (omp_par *)par;
    int nthreads = nchunks < par->num_threads ? nchunks : par->num_threads;
    for (int i = 0; i < nchunks; i++) {
        atomic_store_explicit(&op->flags[i].taken, 0, memory_order_relaxed);
    }
    /* exactly the threads asked for, never fewer chosen by the runtime; set here rather than once,
     * as it belongs to the calling thread and the host may call from another thread than create */
    omp_set_dynamic(0);
#pragma omp parallel num_threads(nthreads)
    {
        /* the runtime may give fewer threads than asked (nested regions, limits): the team's
         * threads then take every chunk between them, with the same boundaries */
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int k = 0; k < nchunks; k++) {
            int i = rg_par_chunk_order(tid, nt, nchunks, k), open = 0;
            if (!atomic_compare_exchange_strong_explicit(&op->flags[i].taken, &open, 1,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed)) {
                continue;
            }
            int64_t begin = n * i / nchunks;
            int64_t end = n * (i + 1) / nchunks;
            if (begin < end) {
                fn(arg, begin, end, tid);
            }
        }
    }
}

static void omp_destroy(rg_par *par) {
    omp_par *op = (omp_par *)par;
    if (op) {
        free(op->flags);
        rg_par_set_adaptive(&op->base, 0);
    }
    free(op);
}

rg_par *rg_par_openmp_create(int num_threads, char *err, size_t err_len) {
    if (num_threads < 1) {
        snprintf(err, err_len, "OpenMP driver needs at least 1 thread (got %d)", num_threads);
        return NULL;
    }
    omp_par *op = calloc(1, sizeof(*op));
    int max_chunks = num_threads > 1 ? num_threads * RG_PAR_CHUNKS_PER_THREAD : 1;
    if (op) {
        op->base.num_threads = num_threads;
        op->flags = aligned_alloc(64, (size_t)max_chunks * sizeof(*op->flags));
    }
    if (!op || !op->flags || rg_par_set_adaptive(&op->base, 1) != 0) {
        snprintf(err, err_len, "out of memory for the OpenMP driver");
        if (op) {
            free(op->flags);
        }
        free(op);
        return NULL;
    }
    for (int i = 0; i < max_chunks; i++) {
        atomic_init(&op->flags[i].taken, 1);
    }
    op->base.num_threads = num_threads;
    op->base.max_chunks = max_chunks;
    op->base.run = omp_run;
    op->base.destroy = omp_destroy;
    return &op->base;
}
