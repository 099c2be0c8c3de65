/* Seeded random numbers: splitmix64, whose whole state is one
 * uint64_t, so a checkpoint stores it exactly. */
#ifndef RANDYGPT_RNG_H
#define RANDYGPT_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct rg_rng {
    uint64_t state;
} rg_rng;

static inline void rg_rng_seed(rg_rng *r, uint64_t seed) { r->state = seed * 0x9E3779B97F4A7C15ULL + 1; }

/* splitmix64 step: good statistical quality, trivially serialisable state. */
static inline uint64_t rg_rng_u64(rg_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 bits of precision. */
static inline float rg_rng_uniform(rg_rng *r) { return (float)(rg_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

/* Uniform integer in [0, n), n > 0. */
static inline uint64_t rg_rng_below(rg_rng *r, uint64_t n) { return rg_rng_u64(r) % n; }

/* Standard normal by Box-Muller (one value per call, simple and reproducible). */
static inline float rg_rng_normal(rg_rng *r) {
    double u1 = ((double)(rg_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(rg_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif /* RANDYGPT_RNG_H */
