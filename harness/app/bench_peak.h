/*
 * The machine's fp32 FMA peak, measured: every thread runs independent FMA chains on registers at
 * the widest vector width the build targets (-march=native), and the best of a few tries counts.
 * MFU in `bench` divides achieved GFLOP/s by this peak at the same thread count.
 */
#ifndef RANDYGPT_BENCH_PEAK_H
#define RANDYGPT_BENCH_PEAK_H

/* "avx512f" (512-bit FMA), "avx2+fma" (256-bit FMA) or "scalar" (mul + add). */
const char *rg_peak_isa(void);
/* Vector width in bits of the measuring kernel (32 for scalar). */
int rg_peak_vector_bits(void);
/* Independent FMA chains per thread: enough to cover FMA latency times the FMA units. */
int rg_peak_chains(void);

/* Measures the fp32 GFLOP/s of threads threads running at once, tries times for about try_ms each;
 * returns the best, or a negative value if the threads could not be started. */
double rg_peak_gflops(int threads, int try_ms, int tries);

#endif /* RANDYGPT_BENCH_PEAK_H */
