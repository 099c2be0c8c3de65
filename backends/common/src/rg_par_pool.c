/*
 * The pthreads driver: a persistent pool of num_threads - 1 workers, created with the backend and
 * joined on destroy, so no op ever creates a thread. The calling thread works too.
 *
 * Hand-off: the caller writes the job, opens its chunks (one flag per chunk) and bumps the
 * generation counter `gen`; workers spin on `gen` for a while (RG_POOL_SPIN_S, enough to bridge
 * the host's serial work between two ops) and then sleep on it with a futex. Spinning also ends
 * as soon as the spinning thread notices that it lost its CPU (a gap between two clock reads):
 * then the machine has more runnable threads than cores, and every further spin takes time from
 * a thread with real work, perhaps the very one it waits for. A job has up
 * to RG_PAR_CHUNKS_PER_THREAD chunks per thread. Thread t first takes the chunks of its own share
 * (t's contiguous part of the range, as OpenMP's static split would give it), so that a thread
 * keeps working on the rows it wrote in the previous op (they are in its cache); then it takes any
 * chunk nobody has started, with a compare-and-swap on that chunk's flag. So a worker that is slow
 * to wake up, runs slower, or is descheduled on a busy machine, delays nothing: the others run its
 * remaining chunks, and the threads end an op at most about one chunk apart. The caller spins,
 * then sleeps, until `done` counts every chunk. All shared state is C11 atomics, so the
 * happens-before edges (job written -> chunk opened -> chunk claimed -> job read; chunk run ->
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
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "rg_par_internal.h"

/* Longest spin before sleeping, in seconds: longer than the host's serial work between most
 * ops of a training step (a residual, the loss), so a worker is awake for the next op; a futex
 * wake-up costs some microseconds. Bounded in time rather than in pause instructions, whose
 * length differs tenfold between CPUs. */
#define RG_POOL_SPIN_S 200e-6
/* A gap this long between two clock reads of a spin (which are a few pause instructions apart)
 * means the thread was descheduled: it stops spinning and sleeps. */
#define RG_POOL_DESCHEDULED_S 50e-6
/* Pause instructions between two clock reads. */
#define RG_POOL_SPIN_CHECK 32

typedef struct rg_pool rg_pool;

typedef struct rg_worker {
    rg_pool *pool;
    int tid;
} rg_worker;

/* One chunk's flag, alone on its cache line: 0 open, 1 taken (or not part of the job). */
typedef struct rg_chunk_flag {
    atomic_int taken;
    char pad[64 - sizeof(atomic_int)];
} rg_chunk_flag;

struct rg_pool {
    rg_par base; /* first member: the rg_par the kernels see */
    pthread_t *threads;   /* (num_threads - 1) workers */
    rg_worker *workers;   /* (num_threads - 1) thread arguments */
    rg_chunk_flag *flags; /* (max_chunks) */
    int started;          /* workers actually started */
    unsigned last_gen;    /* the caller's count of jobs posted */
    /* the current job: written by the caller before it opens the chunks, read by a thread only
     * after it took one (the job cannot end before that chunk is done) */
    rg_range_fn fn;
    void *arg;
    int64_t n;
    atomic_int nchunks;         /* chunks of the current job */
    atomic_int done;            /* chunks of the current job that have finished */
    atomic_int gen;             /* futex word: generation of the latest job */
    atomic_int stop;            /* set before the last bump of gen: workers exit */
    atomic_int sleepers;        /* workers sleeping (or about to) on gen */
    atomic_int caller_sleeping; /* the caller sleeps on done */
};

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#define now_s rg_par_now_s

/* The state of one bounded spin. */
typedef struct spin {
    double start, last; /* clock at the start and at the latest read */
    int n;              /* pauses so far */
} spin;

static spin spin_begin(void) {
    double t = now_s();
    return (spin){t, t, 0};
}

/* One pause; returns 0 once the spin should give way to sleeping: its time is spent, or the
 * thread was descheduled since the last clock read. */
static int spin_more(spin *s) {
    cpu_relax();
    if (++s->n % RG_POOL_SPIN_CHECK) {
        return 1;
    }
    double t = now_s();
    int descheduled = t - s->last > RG_POOL_DESCHEDULED_S;
    s->last = t;
    return !descheduled && t - s->start < RG_POOL_SPIN_S;
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
    for (spin s = spin_begin(); spin_more(&s);) {
        int g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (g != seen) {
            return g;
        }
    }
    /* seq_cst pairs with the caller's bump-then-check of sleepers: one of the two sees the other */
    atomic_fetch_add(&pool->sleepers, 1);
    while (atomic_load(&pool->gen) == seen) {
        wait_on(&pool->gen, seen);
    }
    atomic_fetch_sub(&pool->sleepers, 1);
    return atomic_load_explicit(&pool->gen, memory_order_acquire);
}

/* Takes and runs the open chunks on thread tid, in the order of rg_par_chunk_order: its own share
 * first, then what the others have not started. A thread that still holds the chunk count of an
 * older job can only take chunks of the current one (flags past the current count stay taken),
 * and then reads the current job. */
static void run_chunks(rg_pool *pool, int tid) {
    int seen = atomic_load_explicit(&pool->nchunks, memory_order_acquire);
    for (int k = 0; k < seen; k++) {
        int i = rg_par_chunk_order(tid, pool->base.num_threads, seen, k), open = 0;
        if (!atomic_compare_exchange_strong_explicit(&pool->flags[i].taken, &open, 1,
                                                     memory_order_acq_rel,
                                                     memory_order_relaxed)) {
            continue;
        }
        int nchunks = atomic_load_explicit(&pool->nchunks, memory_order_relaxed);
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
        run_chunks(pool, w->tid);
    }
}

/* Publishes the next generation and wakes sleeping workers. */
static void post(rg_pool *pool) {
    atomic_store(&pool->gen, (int)++pool->last_gen); /* wraps around: only changes matter */
    if (atomic_load(&pool->sleepers) > 0) {
        wake_all(&pool->gen);
    }
}

/* The caller's wait until every chunk of the current job is done: a bounded spin, then sleep. */
static void wait_done(rg_pool *pool, int nchunks) {
    for (spin s = spin_begin(); spin_more(&s);) {
        if (atomic_load_explicit(&pool->done, memory_order_acquire) == nchunks) {
            return;
        }
    }
    atomic_store(&pool->caller_sleeping, 1);
    int d;
    while ((d = atomic_load(&pool->done)) != nchunks) {
        wait_on(&pool->done, d);
    }
    atomic_store(&pool->caller_sleeping, 0);
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
    atomic_store_explicit(&pool->nchunks, nchunks, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    for (int i = 0; i < nchunks; i++) { /* release: a thread that takes a chunk sees the job */
        atomic_store_explicit(&pool->flags[i].taken, 0, memory_order_release);
    }
    post(pool);

    run_chunks(pool, 0);
    wait_done(pool, nchunks);
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
    free(pool->flags);
    rg_par_set_adaptive(&pool->base, 0);
    free(pool);
}

rg_par *rg_par_pthreads_create(int num_threads, char *err, size_t err_len) {
    if (num_threads < 1) {
        snprintf(err, err_len, "thread pool needs at least 1 thread (got %d)", num_threads);
        return NULL;
    }
    rg_pool *pool = calloc(1, sizeof(*pool));
    int nworkers = num_threads - 1;
    if (pool) {
        pool->threads = calloc((size_t)num_threads, sizeof(*pool->threads));
        pool->workers = calloc((size_t)num_threads, sizeof(*pool->workers));
        pool->flags = aligned_alloc(64, (size_t)num_threads * RG_PAR_CHUNKS_PER_THREAD *
                                            sizeof(*pool->flags));
    }
    if (pool) {
        pool->base.num_threads = num_threads;
    }
    if (!pool || !pool->threads || !pool->workers || !pool->flags ||
        rg_par_set_adaptive(&pool->base, 1) != 0) {
        snprintf(err, err_len, "out of memory for a pool of %d threads", num_threads);
        if (pool) {
            free(pool->threads);
            free(pool->workers);
            free(pool->flags);
        }
        free(pool);
        return NULL;
    }
    pool->base.max_chunks = num_threads > 1 ? num_threads * RG_PAR_CHUNKS_PER_THREAD : 1;
    pool->base.run = pool_run;
    pool->base.destroy = pool_destroy;
    for (int i = 0; i < pool->base.max_chunks; i++) {
        atomic_init(&pool->flags[i].taken, 1); /* no chunk open until a job opens it */
    }
    atomic_init(&pool->nchunks, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->gen, 0);
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
