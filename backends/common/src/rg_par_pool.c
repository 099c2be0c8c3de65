/*
 * The pthreads driver: a persistent pool of num_threads - 1 workers, created with the backend and
 * joined on destroy, so no op ever creates a thread. The calling thread works too.
 *
 * Hand-off: the caller writes the job, opens it in `claim` and bumps the generation counter `gen`;
 * workers spin on `gen` for a short while (a few hundred microseconds, enough to bridge the host's
 * gap between two ops) and then sleep on it with a futex. Any thread, the caller included, takes
 * the next chunk nobody has started with a compare-and-swap on `claim` (generation, chunk count and
 * next chunk in one word, so a late worker can never take a chunk of a newer job), so a worker that
 * is slow to wake up, or descheduled on a busy machine, delays nothing: the others run its chunk.
 * The caller spins, then sleeps, until `done` counts every chunk. All shared state is C11 atomics,
 * so the happens-before edges (job written -> job opened -> chunk claimed -> job read; chunk run ->
 * done counted -> next job written) are visible to ThreadSanitizer; the futex only saves CPU while
 * nothing happens. Which thread runs a chunk never changes what the kernels compute (tid only
 * selects workspace), so results stay deterministic.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "rg_parallel.h"

/* Spin iterations before sleeping: each is one pause instruction (tens of cycles). */
#define RG_POOL_SPIN 8192

/* Chunk counts live in 16 bits of `claim`. */
#define RG_POOL_MAX_THREADS 65535

typedef struct rg_pool rg_pool;

typedef struct rg_worker {
    rg_pool *pool;
    int tid;
} rg_worker;

struct rg_pool {
    rg_par base; /* first member: the rg_par the kernels see */
    pthread_t *threads;  /* (num_threads - 1) workers */
    rg_worker *workers;  /* (num_threads - 1) thread arguments */
    int started;         /* workers actually started */
    uint32_t last_gen;   /* the caller's count of jobs posted */
    /* the current job: written by the caller before it opens the job, read by a thread only after
     * it claimed a chunk (the job cannot end before that chunk is done) */
    rg_range_fn fn;
    void *arg;
    int64_t n;
    _Atomic uint64_t claim;     /* generation (bits 32-63) | chunks (16-31) | next chunk (0-15) */
    atomic_int gen;             /* futex word: generation of the latest job */
    atomic_int done;            /* chunks of the current job that have finished */
    atomic_int stop;            /* set before the last bump of gen: workers exit */
    atomic_int sleepers;        /* workers sleeping (or about to) on gen */
    atomic_int caller_sleeping; /* the caller sleeps on done */
};

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Sleeps while *addr == val (may return spuriously). */
static void wait_on(atomic_int *addr, int val) {
#if defined(__linux__)
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)addr;
    (void)val;
    sched_yield();
#endif
}

static void wake_all(atomic_int *addr) {
#if defined(__linux__)
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/* Waits until pool->gen differs from seen and returns the new value. */
static int wait_for_job(rg_pool *pool, int seen) {
    for (int i = 0; i < RG_POOL_SPIN; i++) {
        int g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (g != seen) {
            return g;
        }
        cpu_relax();
    }
    /* seq_cst pairs with the caller's bump-then-check of sleepers: one of the two sees the other */
    atomic_fetch_add(&pool->sleepers, 1);
    while (atomic_load(&pool->gen) == seen) {
        wait_on(&pool->gen, seen);
    }
    atomic_fetch_sub(&pool->sleepers, 1);
    return atomic_load_explicit(&pool->gen, memory_order_acquire);
}

/* Takes and runs chunks of job `gen` on thread tid until none is left to start. */
static void run_chunks(rg_pool *pool, uint32_t gen, int tid) {
    for (;;) {
        uint64_t w = atomic_load_explicit(&pool->claim, memory_order_acquire);
        int nchunks, i;
        for (;;) {
            nchunks = (int)((w >> 16) & 0xffff);
            i = (int)(w & 0xffff);
            if ((uint32_t)(w >> 32) != gen || i >= nchunks) {
                return; /* a newer job, or every chunk taken */
            }
            if (atomic_compare_exchange_weak_explicit(&pool->claim, &w, w + 1,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                break;
            }
        }
        int64_t begin = pool->n * i / nchunks;
        int64_t end = pool->n * (i + 1) / nchunks;
        if (begin < end) {
            pool->fn(pool->arg, begin, end, tid);
        }
        /* seq_cst pairs with the caller's flag-then-check of done */
        if (atomic_fetch_add(&pool->done, 1) + 1 == nchunks && atomic_load(&pool->caller_sleeping)) {
            wake_all(&pool->done);
        }
    }
}

static void *worker_main(void *p) {
    rg_worker *w = p;
    rg_pool *pool = w->pool;
    int seen = 0;
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            return NULL;
        }
        run_chunks(pool, (uint32_t)seen, w->tid);
    }
}

/* Publishes generation g and wakes sleeping workers. */
static void post(rg_pool *pool, uint32_t g) {
    atomic_store(&pool->gen, (int)g);
    if (atomic_load(&pool->sleepers) > 0) {
        wake_all(&pool->gen);
    }
}

static void pool_run(rg_par *par, int64_t n, int nchunks, rg_range_fn fn, void *arg) {
    rg_pool *pool = (rg_pool *)par;
    if (pool->started == 0 || nchunks <= 1) {
        fn(arg, 0, n, 0);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t g = ++pool->last_gen;
    atomic_store_explicit(&pool->claim, ((uint64_t)g << 32) | ((uint64_t)nchunks << 16),
                          memory_order_release);
    post(pool, g);

    run_chunks(pool, g, 0);

    for (int i = 0; i < RG_POOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->done, memory_order_acquire) == nchunks) {
            return;
        }
        cpu_relax();
    }
    atomic_store(&pool->caller_sleeping, 1);
    int d;
    while ((d = atomic_load(&pool->done)) != nchunks) {
        wait_on(&pool->done, d);
    }
    atomic_store(&pool->caller_sleeping, 0);
}

static void pool_destroy(rg_par *par) {
    rg_pool *pool = (rg_pool *)par;
    if (!pool) {
        return;
    }
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    post(pool, ++pool->last_gen);
    for (int i = 0; i < pool->started; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

rg_par *rg_par_pthreads_create(int num_threads, char *err, size_t err_len) {
    if (num_threads < 1 || num_threads > RG_POOL_MAX_THREADS) {
        snprintf(err, err_len, "thread pool needs 1 to %d threads (got %d)", RG_POOL_MAX_THREADS,
                 num_threads);
        return NULL;
    }
    rg_pool *pool = calloc(1, sizeof(*pool));
    int nworkers = num_threads - 1;
    if (pool && nworkers > 0) {
        pool->threads = calloc((size_t)nworkers, sizeof(*pool->threads));
        pool->workers = calloc((size_t)nworkers, sizeof(*pool->workers));
    }
    if (!pool || (nworkers > 0 && (!pool->threads || !pool->workers))) {
        snprintf(err, err_len, "out of memory for a pool of %d threads", num_threads);
        if (pool) {
            free(pool->threads);
            free(pool->workers);
        }
        free(pool);
        return NULL;
    }
    pool->base.num_threads = num_threads;
    pool->base.run = pool_run;
    pool->base.destroy = pool_destroy;
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->caller_sleeping, 0);
    for (int i = 0; i < nworkers; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].tid = i + 1;
        int rc = pthread_create(&pool->threads[i], NULL, worker_main, &pool->workers[i]);
        if (rc != 0) {
            snprintf(err, err_len, "cannot start thread %d of %d: %s", i + 2, num_threads,
                     strerror(rc));
            pool_destroy(&pool->base);
            return NULL;
        }
        pool->started++;
    }
    return &pool->base;
}
