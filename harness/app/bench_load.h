/*
 * What else ran on the machine while `bench` timed: the CPU time the kernel counts for all CPUs
 * (/proc/stat) less bench's own (itself, and its reaped children: the timed runs and the
 * --contend processes), and the time the hypervisor gave to other guests (steal). A run timed
 * beside another busy process, or on a host that steals much, is flagged, not silently reported.
 */
#ifndef RANDYGPT_BENCH_LOAD_H
#define RANDYGPT_BENCH_LOAD_H

#include <stddef.h>

typedef struct rg_cpu_sample {
    double wall_s;  /* monotonic clock */
    double busy_s;  /* every CPU's user, nice, system, irq and softirq time; -1: unknown */
    double steal_s; /* every CPU's steal time */
    double ours_s;  /* user + system time of this process and its reaped children */
} rg_cpu_sample;

typedef struct rg_machine_load {
    int known;              /* 0: /proc/stat could not be read */
    int cpus;               /* CPUs /proc/stat counts (online) */
    double wall_s;
    double others_s;        /* CPU time of everything but bench and its children */
    double steal_s;
    double others_fraction; /* of wall_s x cpus */
    double steal_fraction;
} rg_machine_load;

/* Above these fractions of the CPUs' time a run is unreliable. */
#define RG_LOAD_MAX_OTHERS 0.05
#define RG_LOAD_MAX_STEAL 0.10

/* Parses the aggregate "cpu ..." line of /proc/stat (ticks, ticks_per_s of them a second) into
 * seconds. Returns 0, or -1 when line is not such a line. */
int rg_proc_stat_parse(const char *line, double ticks_per_s, double *busy_s, double *steal_s);

/* Takes a sample now. */
void rg_cpu_sample_take(rg_cpu_sample *s);

/* The load between samples a and b on cpus CPUs. */
void rg_machine_load_between(const rg_cpu_sample *a, const rg_cpu_sample *b, int cpus,
                             rg_machine_load *out);

/* 1 when l leaves the timings trustworthy (or is unknown), else 0 with one sentence per problem
 * in why_others and why_steal (empty when that one is fine). */
int rg_machine_load_ok(const rg_machine_load *l, char *why_others, char *why_steal, size_t n);

#endif /* RANDYGPT_BENCH_LOAD_H */
