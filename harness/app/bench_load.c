/* The machine's load during bench's timed rounds (bench_load.h). */
#define _GNU_SOURCE
#include "bench_load.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "randygpt/text.h"

int rg_proc_stat_parse(const char *line, double ticks_per_s, double *busy_s, double *steal_s) {
    /* cpu user nice system idle iowait irq softirq steal ... (guest time is inside user) */
    unsigned long long v[8] = {0};
    if (ticks_per_s <= 0 || strncmp(line, "cpu ", 4) != 0 ||
        sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) != 8)
        return -1;
    *busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / ticks_per_s;
    *steal_s = (double)v[7] / ticks_per_s;
    return 0;
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec; }

void rg_cpu_sample_take(rg_cpu_sample *s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->wall_s = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    s->busy_s = s->steal_s = -1.0; /* kept when /proc/stat is missing or not understood */
    FILE *f = fopen("/proc/stat", "r");
    char line[512];
    if (f && fgets(line, sizeof line, f))
        rg_proc_stat_parse(line, (double)sysconf(_SC_CLK_TCK), &s->busy_s, &s->steal_s);
    if (f) fclose(f);
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    s->ours_s = seconds(self.ru_utime) + seconds(self.ru_stime) + seconds(children.ru_utime) +
                seconds(children.ru_stime);
}

void rg_machine_load_between(const rg_cpu_sample *a, const rg_cpu_sample *b, int cpus,
                             rg_machine_load *out) {
    memset(out, 0, sizeof *out);
    out->cpus = cpus;
    out->wall_s = b->wall_s - a->wall_s;
    out->known = a->busy_s >= 0 && b->busy_s >= 0 && cpus > 0 && out->wall_s > 0;
    if (!out->known) return;
    /* the kernel counts in ticks, rusage in microseconds: a few ticks below zero is rounding */
    out->others_s = (b->busy_s - a->busy_s) - (b->ours_s - a->ours_s);
    out->others_s = out->others_s > 0 ? out->others_s : 0.0;
    out->steal_s = b->steal_s - a->steal_s;
    out->others_fraction = out->others_s / (out->wall_s * cpus);
    out->steal_fraction = out->steal_s / (out->wall_s * cpus);
}

int rg_machine_load_ok(const rg_machine_load *l, char *why_others, char *why_steal, size_t n) {
    why_others[0] = why_steal[0] = '\0';
    if (!l->known) return 1;
    if (l->others_fraction > RG_LOAD_MAX_OTHERS)
        rg_errf(why_others, n,
                "other processes used %.1f%% of the %d CPUs' time during the timed rounds (%.1f "
                "CPU-seconds in %.1f s): the backends were timed on a busy machine",
                100.0 * l->others_fraction, l->cpus, l->others_s, l->wall_s);
    if (l->steal_fraction > RG_LOAD_MAX_STEAL)
        rg_errf(why_steal, n,
                "the hypervisor gave %.1f%% of the %d CPUs' time to other guests (steal) during "
                "the timed rounds",
                100.0 * l->steal_fraction, l->cpus);
    return !why_others[0] && !why_steal[0];
}
