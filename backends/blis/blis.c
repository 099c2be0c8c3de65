/*
 * Backend `blis`: matmuls through BLIS's bli_sgemm_ex (its packed path only; see blis_gemm), every
 * other op from rg_parallel.
 *
 * bli_sgemm_ex takes a row and a column stride for every matrix, so the transposed operands of the
 * matmuls are described by their strides and never copied.
 *
 * Kernel set. BLIS picks its sub-configuration once per process, when it initialises, from the
 * CPU or from BLIS_ARCH_TYPE (a number: the arch_t id; any other text reads as 0). It misdetects
 * CPUs newer than itself: 0.9.0 runs `haswell` on an Emerald Rapids Xeon and `generic` on Zen 5,
 * where its `skx` kernels are 2-5x faster. So the plugin does not link BLIS but dlopens it in
 * create() and initialises it with BLIS_ARCH_TYPE set:
 *   - arch=NAME runs that configuration (refused if this BLIS build lacks it, where BLIS itself
 *     would abort the process, or if the CPU lacks the instructions it needs);
 *   - without it, BLIS chooses (honouring BLIS_ARCH_TYPE from the environment), except that on a
 *     CPU with AVX-512 where it would choose a configuration without AVX-512 the plugin loads it
 *     as skx, and describe() says so.
 * What BLIS would choose is asked in a forked child (rg_blas_probe): BLIS is loaded into this
 * process once, with the final choice, and never unloaded (see rg_blas.h). As with OpenBLAS the
 * choice is per process: the first create() makes it, and a later one asking for another
 * configuration is refused, even after every instance is gone.
 *
 * Threads: BLIS runs single-threaded (every bli_sgemm_ex gets a runtime object of 1 thread, so its
 * OpenMP build starts no team); each matmul is split into N blocks, one bli_sgemm_ex per thread of
 * the rg_par pthread pool, and the other ops run on the same pool: exactly N threads. The
 * measurements behind this choice are in backends/openblas/openblas.c; with BLIS's own OpenMP
 * threads beside the OpenMP driver the same collapse under load was measured (2 threads: 3.3 s mean
 * per loop against 0.5 s split).
 */
#define _POSIX_C_SOURCE 200809L /* blis.h needs pthread_barrier_t */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "rg_blas.h"
#include "rg_parallel.h"

#define BLIS_LIB "libblis.so.4"
#define AUTO_ARCH "skx"

/* The configurations this BLIS build holds (blis.h says which), with the instructions each needs. */
typedef struct arch_info {
    const char *name;
    arch_t id;
    rg_blas_isa isa;
} arch_info;
static const arch_info known_archs[] = {
#ifdef BLIS_CONFIG_SKX
    {"skx", BLIS_ARCH_SKX, RG_BLAS_ISA_AVX512},
#endif
#ifdef BLIS_CONFIG_KNL
    {"knl", BLIS_ARCH_KNL, RG_BLAS_ISA_AVX512_PHI},
#endif
#ifdef BLIS_CONFIG_HASWELL
    {"haswell", BLIS_ARCH_HASWELL, RG_BLAS_ISA_AVX2},
#endif
#ifdef BLIS_CONFIG_SANDYBRIDGE
    {"sandybridge", BLIS_ARCH_SANDYBRIDGE, RG_BLAS_ISA_AVX},
#endif
#ifdef BLIS_CONFIG_PENRYN
    {"penryn", BLIS_ARCH_PENRYN, RG_BLAS_ISA_NONE},
#endif
#ifdef BLIS_CONFIG_ZEN3
    {"zen3", BLIS_ARCH_ZEN3, RG_BLAS_ISA_AVX2},
#endif
#ifdef BLIS_CONFIG_ZEN2
    {"zen2", BLIS_ARCH_ZEN2, RG_BLAS_ISA_AVX2},
#endif
#ifdef BLIS_CONFIG_ZEN
    {"zen", BLIS_ARCH_ZEN, RG_BLAS_ISA_AVX2},
#endif
#ifdef BLIS_CONFIG_EXCAVATOR
    {"excavator", BLIS_ARCH_EXCAVATOR, RG_BLAS_ISA_FMA4},
#endif
#ifdef BLIS_CONFIG_STEAMROLLER
    {"steamroller", BLIS_ARCH_STEAMROLLER, RG_BLAS_ISA_FMA4},
#endif
#ifdef BLIS_CONFIG_PILEDRIVER
    {"piledriver", BLIS_ARCH_PILEDRIVER, RG_BLAS_ISA_FMA4},
#endif
#ifdef BLIS_CONFIG_BULLDOZER
    {"bulldozer", BLIS_ARCH_BULLDOZER, RG_BLAS_ISA_FMA4},
#endif
#ifdef BLIS_CONFIG_GENERIC
    {"generic", BLIS_ARCH_GENERIC, RG_BLAS_ISA_NONE},
#endif
};
#define NUM_ARCHS ((int)(sizeof(known_archs) / sizeof(known_archs[0])))

/* The loaded library: one per process, never unloaded, shared by all instances. */
static struct {
    void *handle; /* NULL until the first create() loads it */
    __typeof__(bli_sgemm_ex) *sgemm;
    char version[48];  /* "BLIS 0.9.0" */
    const char *build; /* "OpenMP build", ... */
    char arch[32];     /* the configuration that runs */
    char how[256];     /* how it was chosen */
} lib;

static const arch_info *find_arch_name(const char *name) {
    for (int i = 0; i < NUM_ARCHS; i++) {
        if (strcmp(known_archs[i].name, name) == 0) {
            return &known_archs[i];
        }
    }
    return NULL;
}

static const arch_info *find_arch_id(long id) {
    for (int i = 0; i < NUM_ARCHS; i++) {
        if ((long)known_archs[i].id == id) {
            return &known_archs[i];
        }
    }
    return NULL;
}

static void list_archs(char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < NUM_ARCHS && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", known_archs[i].name);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* BLIS reads BLIS_ARCH_TYPE when it first initialises: do that while rg_blas_open has it set. */
static void init_blis(void *handle, void *user) {
    /* bli_init first: with BLIS_ARCH_TYPE set, the arch query checks the id against contexts that
     * only bli_init registers */
    void (*init)(void) = (void (*)(void))dlsym(handle, "bli_init");
    arch_t (*query)(void) = (arch_t(*)(void))dlsym(handle, "bli_arch_query_id");
    if (init && query) {
        init();
        *(arch_t *)user = query();
    }
}

/* Resolves what the plugin calls from the loaded BLIS h, initialised and running configuration
 * got, and fills lib (not lib.how). Returns 0, or -1 with err. */
static int use_library(void *h, arch_t got, char *err, size_t err_len) {
    __typeof__(bli_sgemm_ex) *sgemm = (__typeof__(bli_sgemm_ex) *)rg_blas_sym(
        h, BLIS_LIB, "bli_sgemm_ex", err, err_len);
    __typeof__(bli_arch_string) *arch_string = (__typeof__(bli_arch_string) *)rg_blas_sym(
        h, BLIS_LIB, "bli_arch_string", err, err_len);
    __typeof__(bli_info_get_version_str) *version = (__typeof__(bli_info_get_version_str) *)
        rg_blas_sym(h, BLIS_LIB, "bli_info_get_version_str", err, err_len);
    __typeof__(bli_info_get_enable_openmp) *openmp = (__typeof__(bli_info_get_enable_openmp) *)
        rg_blas_sym(h, BLIS_LIB, "bli_info_get_enable_openmp", err, err_len);
    if (!sgemm || !arch_string || !version || !openmp) {
        return -1;
    }
    if (got == BLIS_NUM_ARCHS) {
        snprintf(err, err_len, "%s has no symbol bli_init or bli_arch_query_id", BLIS_LIB);
        return -1;
    }
    lib.handle = h;
    lib.sgemm = sgemm;
    snprintf(lib.arch, sizeof(lib.arch), "%s", arch_string(got));
    snprintf(lib.version, sizeof(lib.version), "BLIS %s", version());
    lib.build = openmp() ? "OpenMP build" : "build without OpenMP";
    return 0;
}

/* rg_blas_name_fn for the probe: the configuration the loaded BLIS chooses. */
static int arch_of(void *h, char *name, size_t len) {
    arch_t got = BLIS_NUM_ARCHS;
    init_blis(h, &got);
    __typeof__(bli_arch_string) *arch_string =
        (__typeof__(bli_arch_string) *)dlsym(h, "bli_arch_string");
    if (got == BLIS_NUM_ARCHS || !arch_string) {
        return -1;
    }
    snprintf(name, len, "%s", arch_string(got));
    return 0;
}

/* An arch=NAME this BLIS has and this CPU can run: sets *a, returns 0, or -1 with err. */
static int check_arch(const char *want, const arch_info **a, char *err, size_t err_len) {
    *a = find_arch_name(want);
    if (!*a) {
        char names[256];
        list_archs(names, sizeof(names));
        snprintf(err, err_len, "backend blis: unknown arch '%s' (this BLIS has: %s)", want, names);
        return -1;
    }
    if (!rg_blas_cpu_has((*a)->isa)) {
        snprintf(err, err_len, "backend blis: arch=%s needs %s, which this CPU lacks", want,
                 rg_blas_isa_name((*a)->isa));
        return -1;
    }
    return 0;
}

/* First create() in the process: chooses the configuration (a, or automatic when NULL) and loads
 * BLIS with it, for good. Returns 0, or -1 with err. */
static int load_once(const arch_info *a, char *err, size_t err_len) {
    arch_t got = BLIS_NUM_ARCHS;
    void *h = rg_blas_loaded(BLIS_LIB);
    if (h) {
        /* loaded by something else: it runs what it chose then (create() refuses another arch) */
        init_blis(h, &got);
        if (use_library(h, got, err, err_len) != 0) {
            return -1;
        }
        snprintf(lib.how, sizeof(lib.how), "chosen by BLIS; the library was already loaded");
        return 0;
    }
    const char *env = getenv("BLIS_ARCH_TYPE");
    const arch_info *better = find_arch_name(AUTO_ARCH);
    char name[64], why[160];
    if (a) {
        snprintf(lib.how, sizeof(lib.how), "set by arch=%s", a->name);
    } else if (env) {
        /* BLIS aborts the process on an id it was built without: refuse it here instead */
        char *end;
        long id = strtol(env, &end, 10);
        if (end == env || *end != '\0' || !find_arch_id(id)) {
            char names[256];
            list_archs(names, sizeof(names));
            snprintf(err, err_len,
                     "backend blis: BLIS_ARCH_TYPE=%s is not the number of a configuration this "
                     "BLIS has (%s; numbered as arch_t in blis.h)", env, names);
            return -1;
        }
        snprintf(lib.how, sizeof(lib.how), "from BLIS_ARCH_TYPE=%s", env);
    } else if (!better || !rg_blas_cpu_has(RG_BLAS_ISA_AVX512)) {
        snprintf(lib.how, sizeof(lib.how), "chosen by BLIS");
    } else if (rg_blas_probe(BLIS_LIB, NULL, 0, arch_of, name, sizeof(name), why, sizeof(why)) !=
               0) {
        snprintf(lib.how, sizeof(lib.how), "chosen by BLIS (not checked on this AVX-512 CPU: %s)",
                 why);
    } else {
        const arch_info *detected = find_arch_name(name);
        if (detected && (detected->isa == RG_BLAS_ISA_AVX512 ||
                         detected->isa == RG_BLAS_ISA_AVX512_PHI)) {
            snprintf(lib.how, sizeof(lib.how), "chosen by BLIS");
        } else {
            /* an AVX-512 CPU that BLIS does not recognise: load it with its skx kernels */
            a = better;
            snprintf(lib.how, sizeof(lib.how), "auto: BLIS detected %s on this AVX-512 CPU", name);
        }
    }
    char id[16];
    if (a) {
        snprintf(id, sizeof(id), "%d", (int)a->id);
    }
    rg_blas_env vars[] = {{"BLIS_ARCH_TYPE", a ? id : NULL}};
    h = rg_blas_open(BLIS_LIB, vars, 1, init_blis, &got, err, err_len);
    if (!h || use_library(h, got, err, err_len) != 0) {
        return -1; /* an opened handle stays open: see the top of this file */
    }
    return 0;
}

/* op(a) and op(b) as strides of the stored matrices: a transpose swaps row and column stride. */
static void blis_gemm(const rg_blas_gemm *g) {
    float one = 1.0f;
    float beta = g->beta;
    inc_t rsa = g->trans_a ? 1 : g->lda, csa = g->trans_a ? g->lda : 1;
    inc_t rsb = g->trans_b ? 1 : g->ldb, csb = g->trans_b ? g->ldb : 1;
    /* one thread, and the conventional (packed) path only: BLIS 0.9.0's small-matrix ("sup")
     * kernels for AVX2 cores read past the end of C when they accumulate into it (beta = 1, the
     * weight gradients). `randygpt check blis` caught it on a Zen 3 with C against a guard page
     * (a segfault); in a training the extra reads land in neighbouring memory. */
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    lib.sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, g->M, g->N, g->K, &one, (float *)g->a, rsa,
              csa, (float *)g->b, rsb, csb, &beta, g->c, g->ldc, 1, NULL, &rntm);
}

/* rg_blas_choose_fn: the configuration want (NULL: automatic) for one create(). */
static int choose(const char *want, char *err, size_t err_len) {
    const arch_info *a = NULL;
    if (want && check_arch(want, &a, err, err_len) != 0) {
        return -1;
    }
    if (!lib.handle && load_once(a, err, err_len) != 0) {
        return -1;
    }
    if (want && strcmp(want, lib.arch) != 0) {
        snprintf(err, err_len,
                 "backend blis: BLIS already runs %s in this process; arch=%s needs its own "
                 "process",
                 lib.arch, want);
        return -1;
    }
    return 0;
}

static rg_backend_ctx *blis_create(const rg_backend_config *cfg, char *err, size_t err_len) {
    return rg_blas_create(cfg, "blis", "arch", choose, blis_gemm, err, err_len);
}

static void blis_describe(rg_backend_ctx *ctx, char *buf, size_t buf_len) {
    rg_blas_describe(ctx, lib.version, lib.build, "configuration", lib.arch, lib.how, buf, buf_len);
}

static const rg_backend blis_backend = {
    .abi_version = RG_BACKEND_ABI_VERSION,
    .struct_size = sizeof(rg_backend),
    .name = "blis",
    .summary = "BLIS sgemm for the matmuls (options arch=NAME, adapt=on|off), rg_parallel for the "
               "rest",
    .create = blis_create,
    .describe = blis_describe,
    RG_BLAS_OPS,
};

RG_BACKEND_ENTRY { return &blis_backend; }
