/* What `bench` records about the machine and the build beside every result. */
#ifndef RANDYGPT_BENCH_MACHINE_H
#define RANDYGPT_BENCH_MACHINE_H

#include <stddef.h>

typedef struct rg_machine_info {
    char cpu_model[256];        /* /proc/cpuinfo "model name", or "unknown" */
    int cpu_family, cpu_model_number; /* its "cpu family" and "model", -1 if unknown: the model
                                         name alone does not tell two generations apart ("AMD
                                         EPYC" for Zen 3 and Zen 4 under KVM) */
    int cpus;                   /* CPUs this process may use */
    int avx2, avx512f, fma;     /* CPU flags as the kernel reports them */
    char kernel[256];           /* "Linux 6.1.0 x86_64" */
    long long mem_total_bytes;  /* /proc/meminfo MemTotal, -1 if unknown */
    char slug[128];             /* "intel-xeon-processor-2c": names the results folder */
} rg_machine_info;

void rg_machine_info_get(rg_machine_info *m);

/* "GCC 12.2.0" or "Clang ..." of the compiler that built this file. */
const char *rg_build_compiler(void);
/* RG_BUILD_FLAGS when the build defines it, else "unknown" plus what the predefined macros say. */
const char *rg_build_flags(void);

/* The source tree this binary was built from (RG_SOURCE_DIR) if it still exists, else NULL (e.g. an
 * installed binary whose sources are gone). */
const char *rg_source_dir(void);
/* `git rev-parse HEAD` in src_dir (may be NULL), or "unknown". */
void rg_git_commit(const char *src_dir, char *buf, size_t n);

#endif /* RANDYGPT_BENCH_MACHINE_H */
