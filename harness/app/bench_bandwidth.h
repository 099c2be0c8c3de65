/*
 * The machine's memory bandwidth, measured: a STREAM-style triad a[i] = b[i] + s * c[i] on arrays
 * much larger than the last-level cache, every thread on its own contiguous part (which it also
 * first touched, so its pages are local), the best of a few passes. Bytes counted as STREAM does:
 * 3 x 4 per element (b and c read, a written; the write-allocate read of a is not counted).
 * `bench` divides an op's bytes per second by this for the roofline (docs/bench-format.md).
 */
#ifndef RANDYGPT_BENCH_BANDWIDTH_H
#define RANDYGPT_BENCH_BANDWIDTH_H

#include <stddef.h>

/* Bytes of each of the three arrays: twice the last-level cache, at least 64 MiB, at most 1 GiB. */
size_t rg_bandwidth_array_bytes(void);

/* GB/s (1e9 bytes per second) of the triad on threads threads over arrays of array_bytes each,
 * best of passes passes; negative when the memory or the threads could not be had. */
double rg_bandwidth_triad_gbps(int threads, size_t array_bytes, int passes);

#endif /* RANDYGPT_BENCH_BANDWIDTH_H */
