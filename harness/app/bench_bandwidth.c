/* STREAM-style triad bandwidth (bench_bandwidth.h). */
#define _GNU_SOURCE /* sysconf(_SC_LEVEL3_CACHE_SIZE) */
#include "bench_bandwidth.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

size_t rg_bandwidth_array_bytes(void) {
    long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    size_t want = llc > 0 ? 2 * (size_t)llc : 0;
    if (want < 64 * MIB) want = 64 * MIB;
    if (want > 1024 * MIB) want = 1024 * MIB;
    return want;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct triad_part {
    pthread_t tid;
    float *a, *b, *c;  /* this thread's slice of each array */
    size_t n;          /* floats in the slice */
    int passes;
    atomic_int *go;  /* 1 once every thread exists, -1 if one could not be started */
    pthread_barrier_t *start, *end; /* every pass begins and ends with all threads together */
} triad_part;

static void *triad_thread(void *arg) {
    triad_part *p = arg;
    float *restrict a = p->a;
    const float *restrict b = p->b, *restrict c = p->c;
    int go;
    while ((go = atomic_load(p->go)) == 0) sched_yield();
    if (go < 0) return NULL;
    /* first touch: this thread's pages come from its own node */
    for (size_t i = 0; i < p->n; i++) a[i] = 0.0f, p->b[i] = 1.0f, p->c[i] = 2.0f;
    for (int k = 0; k < p->passes; k++) {
        pthread_barrier_wait(p->start);
        for (size_t i = 0; i < p->n; i++) a[i] = b[i] + 3.0f * c[i];
        pthread_barrier_wait(p->end);
    }
    return NULL;
}

double rg_bandwidth_triad_gbps(int threads, size_t array_bytes, int passes) {
    if (threads < 1 || passes < 1) return -1.0;
    const size_t n = array_bytes / sizeof(float);
    float *a = aligned_alloc(64, n * sizeof(float)), *b = aligned_alloc(64, n * sizeof(float));
    float *c = aligned_alloc(64, n * sizeof(float));
    triad_part *parts = calloc((size_t)threads, sizeof *parts);
    pthread_barrier_t start, end;
    atomic_int go = 0;
    double best = -1.0;
    if (!a || !b || !c || !parts) goto out;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&end, NULL, (unsigned)threads + 1);
    int started = 0;
    for (; started < threads; started++) {
        size_t lo = n * (size_t)started / (size_t)threads;
        size_t hi = n * (size_t)(started + 1) / (size_t)threads;
        parts[started] = (triad_part){.a = a + lo, .b = b + lo, .c = c + lo, .n = hi - lo,
                                      .passes = passes, .go = &go, .start = &start,
                                      .end = &end};
        if (pthread_create(&parts[started].tid, NULL, triad_thread, &parts[started]) != 0) break;
    }
    atomic_store(&go, started == threads ? 1 : -1);
    if (started == threads) {
        for (int k = 0; k < passes; k++) {
            pthread_barrier_wait(&start);
            double t0 = now_s();
            pthread_barrier_wait(&end);
            double gbps = 3.0 * (double)n * sizeof(float) / (now_s() - t0) * 1e-9;
            if (gbps > best) best = gbps;
        }
    }
    for (int i = 0; i < started; i++) pthread_join(parts[i].tid, NULL);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&end);
out:
    free(a);
    free(b);
    free(c);
    free(parts);
    return best;
}
