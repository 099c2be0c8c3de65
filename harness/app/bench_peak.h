/*
 * The machine's fp32 FMA peak, measured: every thread runs independent FMA chains on registers at
 * the widest vector width the build targets (-march=native), and the best of a few tries counts.
 * MFU in `bench` divides achieved GFLOP/s by this peak at the same thread count.
 */
#ifndef RANDYGPT_BENCH_PEAK_H
#define RANDYGPT_BENCH_PEAK_H

#include <stddef.h>

/* "avx512f" (512-bit FMA), "avx2+fma" (256-bit FMA) or "scalar" (mul + add). */
const char *rg_peak_isa(void);
/* Vector width in bits of the measuring kernel (32 for scalar). */
int rg_peak_vector_bits(void);
/* Independent FMA chains per thread: enough to cover FMA latency times the FMA units. */
int rg_peak_chains(void);

/* Measures the fp32 GFLOP/s of threads threads running at once, tries times for about try_ms each;
 * returns the best, or a negative value if the threads could not be started. */
double rg_peak_gflops(int threads, int try_ms, int tries);

/* Runs the FMA chains forever: the busy loop of `bench --contend`. Never returns. */
void rg_peak_burn(void);

/* The peak is measured several times in one bench run (before the first round, between rounds,
 * after the last): a sample taken while something else ran is low, so the best one counts. */
#define RG_PEAK_MAX_SAMPLES 128
typedef struct rg_peak_series {
    int threads;
    int n;                                /* samples taken (at most RG_PEAK_MAX_SAMPLES kept) */
    double samples[RG_PEAK_MAX_SAMPLES];  /* GFLOP/s, in the order measured */
    double best;                          /* the largest sample; 0 before any */
} rg_peak_series;

void rg_peak_series_add(rg_peak_series *s, double gflops);

/* An N-thread peak under this fraction of N x the 1-thread peak means the cores were not all
 * free while it was measured: the run's MFU figures cannot be trusted. */
#define RG_PEAK_MIN_SCALING 0.8

/* Returns 1 when the threads-thread peak peak_n scales well enough from the 1-thread peak peak_1
 * (always for threads <= 1, an unknown peak_1, or more threads than the machine's cpus: such a
 * peak cannot scale, and the runs of that many threads x ranks say they share CPUs); else 0 with
 * one sentence in why. */
int rg_peak_scaling_ok(int threads, double peak_n, double peak_1, int cpus, char *why,
                       size_t why_len);

#endif /* RANDYGPT_BENCH_PEAK_H */
