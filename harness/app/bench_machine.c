/* Machine and build description from /proc, uname, the compiler's macros and the build tree. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "bench_machine.h"

#include <ctype.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <sys/stat.h>
#include <unistd.h>

#include "randygpt/text.h"

#include "backend_args.h"
#include "bench_proc.h"

/* The value after "key<spaces>: " of the first matching line of /proc/cpuinfo, as a new heap
 * string (free it; lines have no length limit), or NULL when there is none. */
static char *cpuinfo_value(const char *key) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return NULL;
    char *line = NULL, *value = NULL;
    size_t cap = 0, klen = strlen(key);
    while (!value && getline(&line, &cap, f) > 0) {
        /* the key, then only blanks before the colon ("model" is not "model name") */
        if (strncmp(line, key, klen) != 0 || line[klen + strspn(line + klen, " \t")] != ':')
            continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = '\0';
        value = strdup(v);
    }
    free(line);
    fclose(f);
    return value;
}

/* The value of key in /proc/cpuinfo as a non-negative decimal integer, or -1 when it is missing or
 * not one. */
static int cpuinfo_int(const char *key) {
    char *v = cpuinfo_value(key), *end = NULL;
    long n = v ? strtol(v, &end, 10) : -1;
    int ok = v && end != v && *end == '\0' && n >= 0 && n <= 1000000;
    free(v);
    return ok ? (int)n : -1;
}

/* 1 if word occurs as a whole space-separated word of list. */
static int has_word(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

/* Lower case, "(r)" and "(tm)" dropped, runs of other characters as one '-', then "-<cpus>c". */
static void make_slug(const char *model, int cpus, char *slug, size_t n) {
    char tmp[256];
    size_t k = 0;
    int dash = 0;
    for (const char *p = model; *p && k + 2 < sizeof tmp; p++) {
        if (!strncasecmp(p, "(r)", 3)) { p += 2; continue; }
        if (!strncasecmp(p, "(tm)", 4)) { p += 3; continue; }
        if (isalnum((unsigned char)*p)) {
            if (dash && k > 0) tmp[k++] = '-';
            tmp[k++] = (char)tolower((unsigned char)*p);
            dash = 0;
        } else {
            dash = 1;
        }
    }
    tmp[k] = '\0';
    snprintf(slug, n, "%s-%dc", k ? tmp : "unknown", cpus);
}

void rg_machine_info_get(rg_machine_info *m) {
    memset(m, 0, sizeof *m);
    char *model = cpuinfo_value("model name");
    if (!model) model = cpuinfo_value("Model");
    rg_errf(m->cpu_model, sizeof m->cpu_model, "%s", model ? model : "unknown");
    free(model);
    m->cpu_family = cpuinfo_int("cpu family");
    m->cpu_model_number = cpuinfo_int("model");
    m->cpus = rg_default_threads();
    char *flags = cpuinfo_value("flags");
    if (flags) {
        m->avx2 = has_word(flags, "avx2");
        m->avx512f = has_word(flags, "avx512f");
        m->fma = has_word(flags, "fma");
    }
    free(flags);
    struct utsname u;
    if (uname(&u) == 0) rg_errf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else rg_errf(m->kernel, sizeof m->kernel, "unknown");
    m->mem_total_bytes = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        long long kib;
        if (fscanf(f, "MemTotal: %lld kB", &kib) == 1) m->mem_total_bytes = kib * 1024;
        fclose(f);
    }
    make_slug(m->cpu_model, m->cpus, m->slug, sizeof m->slug);
}

const char *rg_build_compiler(void) {
#if defined(__clang__)
    return "Clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#else
    return "unknown";
#endif
}

const char *rg_build_flags(void) {
#ifdef RG_BUILD_FLAGS
    return RG_BUILD_FLAGS;
#else
    return "unknown;"
#ifdef __OPTIMIZE__
           " optimized"
#else
           " not optimized"
#endif
#if defined(__AVX512F__)
           ", avx512f"
#elif defined(__AVX2__)
           ", avx2"
#endif
#ifdef __FMA__
           ", fma"
#endif
        ;
#endif
}

const char *rg_source_dir(void) {
    struct stat st;
    return stat(RG_SOURCE_DIR, &st) == 0 && S_ISDIR(st.st_mode) ? RG_SOURCE_DIR : NULL;
}

void rg_git_commit(const char *src_dir, char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    if (!src_dir) return;
    char *argv[] = {"git", "-C", (char *)src_dir, "rev-parse", "HEAD", NULL};
    rg_proc_result r;
    char err[RG_ERR_LEN];
    if (rg_proc_run(argv, "/dev/null", 10.0, 256, &r, err, sizeof err) != 0) return;
    r.out[strcspn(r.out, "\r\n")] = '\0';
    if (r.end == RG_PROC_EXITED && r.exit_code == 0 && r.out[0]) snprintf(buf, n, "%s", r.out);
    free(r.out);
}
