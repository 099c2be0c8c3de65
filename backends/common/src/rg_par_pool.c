/*
 * The pthreads driver: a persistent pool of num_threads - 1 workers, created with the backend and
 * joined on destroy, so no op ever creates a thread. The calling thread runs chunk 0 itself.
 *
 * Hand-off: the caller writes the job, then bumps the generation counter `gen`; workers spin on
 * `gen` for a short while (a few hundred microseconds, enough to bridge the host's gap between two
 * ops) and then sleep on it with a futex. Each worker decrements `pending` when done; the caller
 * spins, then sleeps, until it reaches 0. All shared state is C11 atomics, so the happens-before
 * edges (job written -> gen bumped -> job read; chunk done -> pending 0 -> next job written) are
 * visible to ThreadSanitizer; the futex only saves CPU while nothing happens.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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
    /* the current job: written by the caller before gen is bumped, read by workers after */
    rg_range_fn fn;
    void *arg;
    int64_t n;
    int nchunks;
    atomic_int stop;            /* set before the last bump of gen: workers exit */
    atomic_int gen;             /* job generation; workers wait for it to change */
    atomic_int pending;         /* workers that have not finished the current job */
    atomic_int sleepers;        /* workers sleeping (or about to) on gen */
    atomic_int caller_sleeping; /* the caller sleeps on pending */
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

static void run_chunk(rg_range_fn fn, void *arg, int64_t n, int nchunks, int i) {
    int64_t begin = n * i / nchunks;
    int64_t end = n * (i + 1) / nchunks;
    if (begin < end) {
        fn(arg, begin, end, i);
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
        /* every worker acknowledges every job, also when it has no chunk, so that the caller can
         * overwrite the job only after no worker reads it any more */
        if (w->tid < pool->nchunks) {
            run_chunk(pool->fn, pool->arg, pool->n, pool->nchunks, w->tid);
        }
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_sleeping)) {
            wake_all(&pool->pending);
        }
    }
}

/* Bumps gen and wakes sleeping workers. */
static void post(rg_pool *pool) {
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        wake_all(&pool->gen);
    }
}

static void pool_run(rg_par *par, int64_t n, int nchunks, rg_range_fn fn, void *arg) {
    rg_pool *pool = (rg_pool *)par;
    if (pool->started == 0) {
        run_chunk(fn, arg, n, 1, 0);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->nchunks = nchunks;
    atomic_store_explicit(&pool->pending, pool->started, memory_order_relaxed);
    post(pool);

    run_chunk(fn, arg, n, nchunks, 0);

    for (int i = 0; i < RG_POOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) {
            return;
        }
        cpu_relax();
    }
    atomic_store(&pool->caller_sleeping, 1);
    int p;
    while ((p = atomic_load(&pool->pending)) != 0) {
        wait_on(&pool->pending, p);
    }
    atomic_store(&pool->caller_sleeping, 0);
}

static void pool_destroy(rg_par *par) {
    rg_pool *pool = (rg_pool *)par;
    if (!pool) {
        return;
    }
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    post(pool);
    for (int i = 0; i < pool->started; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    free(pool->threads);
    free(pool->workers);
    free(pool);
}

rg_par *rg_par_pthreads_create(int num_threads, char *err, size_t err_len) {
    if (num_threads < 1) {
        snprintf(err, err_len, "thread pool needs at least 1 thread (got %d)", num_threads);
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
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->pending, 0);
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
