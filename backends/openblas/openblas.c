/*
 * Backend `openblas`: matmuls through OpenBLAS's cblas_sgemm, every other op from rg_parallel.
 *
 * Kernel set. OpenBLAS (DYNAMIC_ARCH builds) picks its kernels ("core type") once, while it loads,
 * from the CPU or from OPENBLAS_CORETYPE. It misdetects CPUs newer than itself: 0.3.21 runs its
 * SSE3 Prescott kernels on an Emerald Rapids Xeon and its AVX2 Haswell kernels on Zen 5, at a half
 * to a fifth of what its AVX-512 SkylakeX kernels reach there. So the plugin does not link OpenBLAS
 * but dlopens it in create(), with OPENBLAS_CORETYPE set:
 *   - coretype=NAME runs that core type (refused if OpenBLAS does not know it, or the CPU lacks
 *     the instructions it needs);
 *   - without it, OpenBLAS chooses (honouring OPENBLAS_CORETYPE from the environment), except
 *     that on a CPU with AVX-512 where it would choose a kernel set without AVX-512 the plugin
 *     loads it as SkylakeX, and describe() says so.
 * What OpenBLAS would choose, and whether it knows a coretype=NAME, is asked in a forked child
 * (rg_blas_probe): the library is loaded into this process once, with the final choice, and never
 * unloaded (an unloaded OpenBLAS leaves its init allocations unreachable and may have threads in
 * its code; see rg_blas.h). So the core type is per process: the first create() chooses it, and a
 * later one asking for another is refused, even after every instance is gone.
 *
 * Threads. N threads are exactly N: OPENBLAS_NUM_THREADS=1 at load means OpenBLAS starts no thread
 * of its own, and each matmul is split into N blocks, one single-threaded cblas_sgemm per thread of
 * the rg_par pthread pool (rg_blas.h); the other ops run on the same pool. Measured on 2 cores,
 * a training-like loop (the small preset's 12 sgemm shapes, each followed by an element-wise op),
 * SkylakeX kernels, best of 37 loops: on a quiet machine this split (54 ms) matched OpenBLAS's own
 * 2 threads beside the pool (58-68 ms) and the OpenMP build of OpenBLAS beside the OpenMP driver
 * (52-75 ms), while OpenBLAS's pthreads build beside the OpenMP driver took 108-125 ms (two
 * spinning pools on two cores). With other processes on the cores the OpenMP pairing collapsed
 * (860-1140 ms: its threads spin-wait for each other) and the split varied least
 * (160-260 ms against 140-330 ms). It also needs no OpenMP variant of the library.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rg_blas.h"
#include "rg_parallel.h"

#define OPENBLAS_LIB "libopenblas.so.0"

/* cblas_sgemm's ABI (LP64 OpenBLAS: blasint is int; the enums are ints) */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*cblas_sgemm_fn)(int order, int trans_a, int trans_b, int M, int N, int K,
                               float alpha, const float *A, int lda, const float *B, int ldb,
                               float beta, float *C, int ldc);

/* Core types whose instruction needs we know; OpenBLAS knows more (then only it checks). */
typedef struct core_info {
    const char *name;
    rg_blas_isa isa;
} core_info;
static const core_info known_cores[] = {
    {"SapphireRapids", RG_BLAS_ISA_AVX512}, {"Cooperlake", RG_BLAS_ISA_AVX512},
    {"SkylakeX", RG_BLAS_ISA_AVX512},       {"Zen", RG_BLAS_ISA_AVX2},
    {"Haswell", RG_BLAS_ISA_AVX2},          {"Sandybridge", RG_BLAS_ISA_AVX},
    {"Prescott", RG_BLAS_ISA_NONE},
};
#define AUTO_CORE "SkylakeX"

/* The loaded library: one per process, never unloaded, shared by all instances. */
static struct {
    void *handle; /* NULL until the first create() loads it */
    cblas_sgemm_fn sgemm;
    char version[64];  /* "OpenBLAS 0.3.21" */
    const char *build; /* "pthreads build", ... */
    char core[32];     /* the core type that runs */
    char how[256];     /* how it was chosen */
} lib;

static const core_info *find_core(const char *name) {
    for (size_t i = 0; i < sizeof(known_cores) / sizeof(known_cores[0]); i++) {
        if (strcasecmp(known_cores[i].name, name) == 0) {
            return &known_cores[i];
        }
    }
    return NULL;
}

static int is_avx512_core(const char *name) {
    const core_info *k = find_core(name);
    return k && k->isa == RG_BLAS_ISA_AVX512;
}

/* Resolves what the plugin calls from the loaded OpenBLAS h and fills lib (not lib.how).
 * Returns 0, or -1 with err. */
static int use_library(void *h, char *err, size_t err_len) {
    cblas_sgemm_fn sgemm = (cblas_sgemm_fn)rg_blas_sym(h, OPENBLAS_LIB, "cblas_sgemm", err, err_len);
    void (*set_threads)(int) = (void (*)(int))rg_blas_sym(h, OPENBLAS_LIB,
                                                          "openblas_set_num_threads", err, err_len);
    char *(*corename)(void) = (char *(*)(void))rg_blas_sym(h, OPENBLAS_LIB,
                                                           "openblas_get_corename", err, err_len);
    char *(*config)(void) = (char *(*)(void))rg_blas_sym(h, OPENBLAS_LIB, "openblas_get_config",
                                                         err, err_len);
    int (*parallel)(void) = (int (*)(void))rg_blas_sym(h, OPENBLAS_LIB, "openblas_get_parallel",
                                                       err, err_len);
    if (!sgemm || !set_threads || !corename || !config || !parallel) {
        return -1;
    }
    set_threads(1);
    lib.handle = h;
    lib.sgemm = sgemm;
    snprintf(lib.core, sizeof(lib.core), "%s", corename());
    /* the config string starts "OpenBLAS 0.3.21 ...": keep the name and version */
    const char *cfg = config();
    const char *sp = strchr(cfg, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    int len = sp ? (int)(sp - cfg) : (int)strlen(cfg);
    snprintf(lib.version, sizeof(lib.version), "%.*s", len, cfg);
    int p = parallel();
    lib.build = p == 0 ? "sequential build" : p == 1 ? "pthreads build" : "OpenMP build";
    return 0;
}

/* rg_blas_name_fn for the probe: the core type the loaded OpenBLAS runs. */
static int corename_of(void *h, char *name, size_t len) {
    char *(*corename)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    if (!corename) {
        return -1;
    }
    snprintf(name, len, "%s", corename());
    return 0;
}

/* The core type OpenBLAS runs with OPENBLAS_CORETYPE=core (NULL: as the environment says), asked
 * in a child process. Returns 0, or -1 with why. */
static int probe(const char *core, char *name, size_t len, char *why, size_t why_len) {
    rg_blas_env env[] = {{"OPENBLAS_CORETYPE", core}, {"OPENBLAS_NUM_THREADS", "1"}};
    return rg_blas_probe(OPENBLAS_LIB, env, 2, corename_of, name, len, why, why_len);
}

static void unknown_core(const char *want, const char *runs, char *err, size_t err_len) {
    snprintf(err, err_len,
             "backend openblas: unknown core type '%s' (OpenBLAS would run %s; names are e.g. "
             "SkylakeX, Cooperlake, Haswell, Zen, Sandybridge, Prescott)",
             want, runs);
}

/* First create() in the process: chooses the core type (want, or automatic when NULL) and loads
 * OpenBLAS with it, for good. Returns 0, or -1 with err. */
static int load_once(const char *want, char *err, size_t err_len) {
    void *h = rg_blas_loaded(OPENBLAS_LIB);
    if (h) {
        /* loaded by something else: it runs what it chose then (create() refuses another want) */
        if (use_library(h, err, err_len) != 0) {
            return -1;
        }
        snprintf(lib.how, sizeof(lib.how), "chosen by OpenBLAS; the library was already loaded");
        return 0;
    }
    const char *core = NULL; /* OPENBLAS_CORETYPE to load with; NULL: as the environment says */
    const char *env = getenv("OPENBLAS_CORETYPE");
    char name[64], why[160];
    if (want) {
        /* OpenBLAS runs some other kernel set for a name it does not know, without a word: ask
         * first, as that choice could not be undone here */
        if (probe(want, name, sizeof(name), why, sizeof(why)) == 0 &&
            strcasecmp(name, want) != 0) {
            unknown_core(want, name, err, err_len);
            return -1;
        }
        core = want;
        snprintf(lib.how, sizeof(lib.how), "set by coretype=%s", want);
    } else if (env) {
        snprintf(lib.how, sizeof(lib.how), "from OPENBLAS_CORETYPE=%s", env);
    } else if (!rg_blas_cpu_has(RG_BLAS_ISA_AVX512)) {
        snprintf(lib.how, sizeof(lib.how), "chosen by OpenBLAS");
    } else if (probe(NULL, name, sizeof(name), why, sizeof(why)) != 0) {
        snprintf(lib.how, sizeof(lib.how),
                 "chosen by OpenBLAS (not checked on this AVX-512 CPU: %s)", why);
    } else if (is_avx512_core(name)) {
        snprintf(lib.how, sizeof(lib.how), "chosen by OpenBLAS");
    } else {
        /* an AVX-512 CPU that OpenBLAS does not recognise: load it with its AVX-512 kernels */
        core = AUTO_CORE;
        snprintf(lib.how, sizeof(lib.how), "auto: OpenBLAS detected %s on this AVX-512 CPU", name);
    }
    rg_blas_env vars[] = {{"OPENBLAS_CORETYPE", core}, {"OPENBLAS_NUM_THREADS", "1"}};
    h = rg_blas_open(OPENBLAS_LIB, vars, 2, NULL, NULL, err, err_len);
    if (!h || use_library(h, err, err_len) != 0) {
        return -1; /* an opened handle stays open: see the top of this file */
    }
    if (want && strcasecmp(lib.core, want) != 0) {
        /* the probe could not run and the name was unknown: OpenBLAS keeps what it chose */
        snprintf(lib.how, sizeof(lib.how), "chosen by OpenBLAS for the unknown coretype=%s", want);
        unknown_core(want, lib.core, err, err_len);
        return -1;
    }
    return 0;
}

static void openblas_gemm(const rg_blas_gemm *g) {
    lib.sgemm(CBLAS_ROW_MAJOR, g->trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
              g->trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, g->M, g->N, g->K, 1.0f, g->a, g->lda,
              g->b, g->ldb, g->beta, g->c, g->ldc);
}

/* rg_blas_choose_fn: the core type want (NULL: automatic) for one create(). */
static int choose(const char *want, char *err, size_t err_len) {
    const core_info *k = want ? find_core(want) : NULL;
    if (k && !rg_blas_cpu_has(k->isa)) {
        snprintf(err, err_len, "backend openblas: coretype=%s needs %s, which this CPU lacks", want,
                 rg_blas_isa_name(k->isa));
        return -1;
    }
    if (!lib.handle && load_once(want, err, err_len) != 0) {
        return -1;
    }
    if (want && strcasecmp(want, lib.core) != 0) {
        snprintf(err, err_len,
                 "backend openblas: OpenBLAS already runs core type %s in this process; "
                 "coretype=%s needs its own process",
                 lib.core, want);
        return -1;
    }
    return 0;
}

static rg_backend_ctx *openblas_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    return rg_blas_create(cfg, "openblas", "coretype", choose, openblas_gemm, err, err_len);
}

static void openblas_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    rg_blas_describe(ctx, lib.version, lib.build, "core type", lib.core, lib.how, buf, buf_len);
}

static const rg_backend openblas_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "openblas",
    .summary = "OpenBLAS sgemm for the matmuls (options coretype=NAME, adapt=on|off), "
               "rg_parallel for the rest",
    .create = openblas_create,
    .describe = openblas_describe,
    RG_BLAS_OPS,
};

RG_BACKEND_ENTRY { return &openblas_backend; }
