/*
 * Matmul forward and backward on one of the kernel sets compiled from rg_par_gemm.c, chosen at
 * run time from the CPU (or forced with the backends' kernels=NAME option):
 *   avx512   8 x 32 micro-tile (16 zmm accumulators), KC 256, MC 128: cores with two full 512-bit
 *            FMA ports (Intel Xeon since Skylake-SP, AMD Zen 5). On the Intel Xeon of our runs it
 *            reaches the FMA peak with its data in L1/L2; larger tiles (12 x 32, 6 x 64) and
 *            MC 256 or other KC were no faster there (MC 256 slowed the forward products).
 *            On more than one thread B is packed up to 1 MiB per pass (half its 2 MiB L2).
 *   zen4     Zen 4 runs a 512-bit FMA as two 256-bit halves (one zmm FMA per cycle, 32 KiB L1,
 *            1 MiB L2); chosen by CPUID (AMD, family 25, with AVX-512), as it cannot be told apart
 *            from a two-port core by its feature flags. It keeps the blocking measured at about 80%
 *            of Zen 4's peak (the avx512 set's, today), so each can be tuned on its own CPU;
 *            it packs up to 512 KiB of B per pass, half of Zen 4's L2. KC 128 (a B slice of
 *            16 KiB, half of L1) measured the same on Zen 4, and a 12 x 32 tile with MC 192 was
 *            5% slower at 1 thread;
 *   avx2     6 x 16 micro-tile (12 ymm accumulators): x86 CPUs with AVX2 and FMA but no AVX-512;
 *   generic  4 x 8 on 128-bit vectors (SSE on x86, NEON and others elsewhere): any CPU.
 * The other kernels of rg_parallel follow the build's flags (-march=native by default).
 */
#include <stdio.h>
#include <string.h>

#include "rg_par_internal.h"

#if defined(RG_GEMM_X86)
#include <cpuid.h>
#endif

struct rg_par_kernels {
    const char *name; /* the value of kernels= */
    const char *tile; /* for describe */
    rg_par_gemm_fn gemm;
};

static const rg_par_kernels kernel_sets[] = {
#if defined(RG_GEMM_X86)
    {"avx512", "AVX-512 8x32 tile, two-FMA-port blocking", rg_par_gemm_avx512},
    {"zen4", "AVX-512 8x32 tile, Zen 4 blocking", rg_par_gemm_zen4},
    {"avx2", "AVX2+FMA 6x16 tile", rg_par_gemm_avx2},
#endif
    {"generic", "128-bit 4x8 tile", rg_par_gemm_generic},
};
#define NUM_KERNEL_SETS (int)(sizeof kernel_sets / sizeof kernel_sets[0])

/* The CPU's vendor string and family (base + extended, as AMD and Intel define it), from CPUID
 * leaf 0 and 1; "unknown" and 0 elsewhere. */
static void cpu_vendor_family(char vendor[13], int *family) {
    strcpy(vendor, "unknown");
    *family = 0;
#if defined(RG_GEMM_X86)
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
        vendor[12] = '\0';
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int base = (a >> 8) & 0xf;
        *family = base == 0xf ? base + (int)((a >> 20) & 0xff) : base;
    }
#endif
}

/* 1 when this CPU (and the OS: __builtin_cpu_supports checks that it saves the registers) can run
 * the set. */
static int cpu_runs(const rg_par_kernels *k) {
#if defined(RG_GEMM_X86)
    __builtin_cpu_init();
    if (!strcmp(k->name, "avx512") || !strcmp(k->name, "zen4")) {
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    }
    if (!strcmp(k->name, "avx2")) {
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
#endif
    return 1; /* generic */
}

static const rg_par_kernels *set_named(const char *name) {
    for (int i = 0; i < NUM_KERNEL_SETS; i++) {
        if (!strcmp(kernel_sets[i].name, name)) {
            return &kernel_sets[i];
        }
    }
    return NULL;
}

/* The best set this CPU runs: zen4 on AMD family 25 (Zen 4; Zen 3, also family 25, has no
 * AVX-512), else the first of avx512, avx2, generic that it runs. */
static const rg_par_kernels *auto_set(void) {
    char vendor[13];
    int family;
    cpu_vendor_family(vendor, &family);
    const char *order[] = {"avx512", "avx2", "generic"};
    for (int i = 0; i < 3; i++) {
        const rg_par_kernels *k = set_named(order[i]);
        if (k && cpu_runs(k)) {
            if (!strcmp(k->name, "avx512") && !strcmp(vendor, "AuthenticAMD") && family == 25) {
                return set_named("zen4");
            }
            return k;
        }
    }
    return set_named("generic");
}

const rg_par_kernels *rg_par_kernels_find(const char *name, char *err, size_t err_len) {
    if (!name || !strcmp(name, "auto")) {
        return auto_set();
    }
    const rg_par_kernels *k = set_named(name);
    if (!k) {
        char names[128] = "auto";
        for (int i = 0; i < NUM_KERNEL_SETS; i++) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, ", %s", kernel_sets[i].name);
        }
        snprintf(err, err_len, "unknown kernel set '%s' (this build has %s)", name, names);
        return NULL;
    }
    if (!cpu_runs(k)) {
        snprintf(err, err_len, "kernel set '%s' needs instructions this CPU lacks", name);
        return NULL;
    }
    return k;
}

void rg_par_kernels_describe(const rg_par_backend *pb, char *buf, size_t buf_len) {
    char vendor[13];
    int family;
    cpu_vendor_family(vendor, &family);
    if (pb->kernels_forced) {
        snprintf(buf, buf_len, "matmul kernels %s (%s; kernels=%s)", pb->kernels->name,
                 pb->kernels->tile, pb->kernels->name);
    } else {
        snprintf(buf, buf_len, "matmul kernels %s (%s; auto on %s family %d)", pb->kernels->name,
                 pb->kernels->tile, vendor, family);
    }
}

/* out is (N,OC), inp is (N,C), weight is (OC,C): out = inp @ weight^T. */
void rg_par_op_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp,
                              const float *weight, int N, int C, int OC) {
    rg_par_backend *pb = rg_par_of(ctx);
    rg_par_mat_view a = {inp, C, 1};
    rg_par_mat_view b = {weight, 1, C}; /* W^T: element (c, oc) = W[oc*C + c] */
    pb->kernels->gemm(pb, out, OC, a, b, N, OC, C, 0);
}

/* dinp is (N,C), dweight is (OC,C), dout is (N,OC), inp is (N,C), weight is (OC,C):
 * dinp = dout @ weight (overwritten); dweight += dout^T @ inp. */
void rg_par_op_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC) {
    rg_par_backend *pb = rg_par_of(ctx);
    rg_par_mat_view dy = {dout, OC, 1};
    rg_par_mat_view w = {weight, C, 1};
    pb->kernels->gemm(pb, dinp, C, dy, w, N, C, OC, 0);
    rg_par_mat_view dyt = {dout, 1, OC}; /* dout^T: element (oc, n) = dout[n*OC + oc] */
    rg_par_mat_view x = {inp, C, 1};
    pb->kernels->gemm(pb, dweight, C, dyt, x, OC, C, N, 1);
}
