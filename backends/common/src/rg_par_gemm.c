/*
 * The blocked GEMM of the matmuls, in plain C with GCC vector extensions (no BLAS). This file is
 * a template: CMake compiles it once per kernel set (see rg_par_matmul.c, which chooses one at run
 * time), each time with that set's instruction-set flags and
 *   RG_GEMM_FN  the name of the entry point (an rg_par_gemm_fn),
 *   RG_GEMM_MR  rows of the micro-tile, RG_GEMM_KC the K block, RG_GEMM_MC rows per A block,
 *   RG_GEMM_BPACK  floats of B packed per pass on more than one thread,
 * and the vector width follows the flags (rg_par_internal.h): NR = two vectors.
 *
 *   C(M,NC) (+)= A(M,K) @ B(K,NC), A and B given by row and column strides, so the three products
 *   of a linear layer are one routine with different strides:
 *     forward  out(N,OC)   = inp(N,C) @ W(OC,C)^T      A = inp,    B = W^T   (M=N,  K=C)
 *     backward dinp(N,C)   = dout(N,OC) @ W(OC,C)      A = dout,   B = W     (M=N,  K=OC)
 *     backward dW(OC,C)   += dout(N,OC)^T @ inp(N,C)   A = dout^T, B = inp   (M=OC, K=N)
 *
 * Blocking (GotoBLAS/BLIS order): B is packed into NR-column panels [K rows][NR], shared and
 * packed in parallel, one pass of K rows at a time (one KC block on one thread; on more, as many
 * as fit RG_GEMM_BPACK, as each pass joins the threads twice); each thread owns a contiguous range
 * of MR-row tiles of C, or, when B is wider than A is tall (NC > M: some weight gradients), a
 * range of B's panels (each thread then packs the panels it reads); either way no atomics and no
 * reduction. It runs the MR x NR micro-kernel over its panels, a block of MC rows and KC columns
 * of A at a time, the pass's KC blocks in order. A KC x NR slice of a B panel (32 KiB at KC=256
 * with 512-bit vectors) stays in L1 while the A tiles stream from L2. A is read in place when its
 * rows are contiguous (forward and dinp: MR row streams); dW's dout^T has contiguous columns, so a
 * tile would touch a new cache line at every k: each thread packs that block into [KC][MR] tiles in
 * its own workspace first. A step's tensors outgrow L2, so A and C come from L3 or memory: the
 * kernel prefetches the A tiles it reads next and the lines of the C tile it is about to write.
 *
 * Why vector extensions and not plain loops: the micro-kernel keeps MR x 2 vector accumulators in
 * registers for the whole K loop; with plain loops GCC either spills the accumulator array or
 * vectorises over the wrong dimension. With `vf` of the build's vector width the kernel compiles to
 * broadcast + FMA with memory operands on AVX-512, AVX2 and SSE alike.
 *
 * Every thread count computes each element of C with the same K order, so results do not depend on
 * the thread count (they may differ between kernel sets, whose K blocks differ).
 */
#include <stddef.h>
#include <string.h>

#include "rg_par_internal.h"

#if !defined(RG_GEMM_FN) || !defined(RG_GEMM_MR) || !defined(RG_GEMM_KC) || !defined(RG_GEMM_MC) || \
    !defined(RG_GEMM_BPACK)
#error "rg_par_gemm.c is compiled per kernel set with RG_GEMM_FN, _MR, _KC, _MC and _BPACK defined"
#endif
#if RG_GEMM_MC % RG_GEMM_MR != 0
#error "RG_GEMM_MC must be a multiple of RG_GEMM_MR"
#endif

#define VL RG_VL          /* floats per vector */
#define MR RG_GEMM_MR     /* rows of the micro-tile (MR x 2 vector accumulators) */
#define NR (2 * VL)       /* columns of the micro-tile: two vectors */
#define KC RG_GEMM_KC     /* K block */
#define MC RG_GEMM_MC     /* rows of C per block of A */

typedef rg_vf vf;
typedef rg_vfu vfu;

typedef rg_par_mat_view mat_view;

typedef struct gemm_args {
    int M, NC, K;
    mat_view A;       /* (M, K) */
    mat_view B;       /* (K, NC) */
    float *Cm;        /* (M, NC), row stride ldc */
    int ldc;
    int accumulate;   /* 1: C += A B, 0: C = A B */
    int k0, ks;       /* the K rows being computed: rows [k0, k0+ks) of B are packed */
    float *ws;        /* workspace: packed B (panels, ks, NR), shared, then per thread a packed A
                         block (MC, KC) when pack_a */
    size_t bp_floats, ap_floats;
    int pack_a;
    int by_panels;    /* 1: the threads split the panels of B (columns of C), 0: the rows of C */
} gemm_args;

/* c is (mr, nr) with row stride ldc, a is (mr, kc) with element (i, k) at a[i*rsa + k*csa], bp is
 * (kc, NR): c (+)= a bp over the first mr rows and nr columns. Rows of a past mr repeat row mr-1
 * (their results are dropped), so the loop always runs MR rows. */
static void micro_kernel(int kc, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                         const float *restrict bp, float *restrict c, int ldc, int mr, int nr,
                         int accumulate) {
    const float *arow[MR];
    for (int i = 0; i < MR; i++) {
        arow[i] = a + (i < mr ? i : mr - 1) * rsa;
    }
    vf acc[MR][2];
    for (int i = 0; i < MR; i++) {
        acc[i][0] = (vf){0};
        acc[i][1] = (vf){0};
    }
    /* the tile of C is written after the K loop: ask for its lines now (for writing), so that
     * their misses (C is rarely in cache: it is written once, N x OC floats) overlap the loop */
    for (int i = 0; i < mr; i++) {
        __builtin_prefetch(c + (size_t)i * ldc, 1, 3);
        __builtin_prefetch(c + (size_t)i * ldc + nr - 1, 1, 3);
    }
    for (int k = 0; k < kc; k++) {
        vf b0 = *(const vf *)(bp + (size_t)k * NR);
        vf b1 = *(const vf *)(bp + (size_t)k * NR + VL);
        ptrdiff_t ak = k * csa;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            float av = arow[i][ak];
            acc[i][0] += av * b0;
            acc[i][1] += av * b1;
        }
    }
    /* Every loop over the MR rows is unrolled, so each accumulator stays in its register (a loop
     * indexing acc, or a copy of the whole array, puts all of them on the stack first). */
    if (mr == MR && nr == NR) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vfu *c0 = (vfu *)(c + (size_t)i * ldc);
            vfu *c1 = (vfu *)(c + (size_t)i * ldc + VL);
            if (accumulate) {
                *c0 += acc[i][0];
                *c1 += acc[i][1];
            } else {
                *c0 = acc[i][0];
                *c1 = acc[i][1];
            }
        }
        return;
    }
    /* an edge tile: row by row through a buffer, writing only the valid part */
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            float row[NR];
            memcpy(row, &acc[i][0], sizeof(vf));
            memcpy(row + VL, &acc[i][1], sizeof(vf));
            float *crow = c + (size_t)i * ldc;
            for (int j = 0; j < nr; j++) {
                crow[j] = accumulate ? crow[j] + row[j] : row[j];
            }
        }
    }
}

/* Asks for the cache lines of floats [p, p+n) to be brought into L2. */
static inline void prefetch_span(const float *p, int n) {
    const char *end = (const char *)(p + n - 1);
    for (const char *b = (const char *)((uintptr_t)p & ~(uintptr_t)63); b <= end; b += 64) {
        __builtin_prefetch(b, 0, 2);
    }
}

/* Floats between packed tiles of A, and between packed panels of B, past their own kc x MR or
 * ks x NR: a cache line, so that they do not all start in the same L1 set. Both are multiples of
 * 4 KiB at K blocks of 128 or 256, and pack_a_cols and the row-at-a-time pack_b_range write
 * every tile or panel at each k: without it, 16 writes to one 12-way set per k (the weight
 * gradient 6-10% slower). */
#define PACK_PAD 16

/* Offset of the packed A tile that holds row t (a multiple of MR) of a block of kc columns. */
static inline size_t a_tile_offset(int t, int kc) {
    return (size_t)(t / MR) * ((size_t)kc * MR + PACK_PAD);
}

/* Offset of packed B panel p of ks rows. */
static inline size_t b_panel_offset(int64_t p, int ks) {
    return (size_t)p * ((size_t)ks * NR + PACK_PAD);
}

/* Rows of A ahead of the one being packed that pack_a_cols prefetches (one row at a time). */
#define PACK_A_AHEAD 8

/* Packs rows [m0, m0+mc) and columns [k0, k0+kc) of an A whose columns are contiguous (A.rs == 1:
 * dout^T of the weight gradient, whose MR rows at one k are MR consecutive floats, but consecutive
 * k are OC floats apart) into MR-row tiles of (kc, MR), so that the micro-kernel reads one stream
 * instead of kc cache lines. Rows past M repeat row M-1, as the micro-kernel does. One k (mc
 * consecutive floats of dout) at a time, into every tile, so each source line is read once, the
 * row PACK_A_AHEAD further on prefetched (the rows are too short and too far apart for the
 * hardware prefetchers). */
static void pack_a_cols(float *restrict dst, mat_view A, int M, int m0, int mc, int k0, int kc) {
    int rows = M - m0 < mc ? M - m0 : mc;
    int whole = rows / MR * MR; /* rows in whole tiles */
    for (int k = 0; k < kc; k++) {
        const float *src = A.p + m0 + (k0 + k) * A.cs;
        if (k + PACK_A_AHEAD < kc) {
            prefetch_span(src + PACK_A_AHEAD * A.cs, rows);
        }
        for (int t = 0; t < whole; t += MR) {
            memcpy(dst + a_tile_offset(t, kc) + (size_t)k * MR, src + t, MR * sizeof(float));
        }
    }
    for (int t = whole; t < mc; t += MR) { /* the last tile, past M */
        float *d = dst + a_tile_offset(t, kc);
        const float *src = A.p + m0 + t + k0 * A.cs;
        int mr = M - m0 - t;
        for (int k = 0; k < kc; k++) {
            for (int i = 0; i < MR; i++) {
                d[(size_t)k * MR + i] = src[k * A.cs + (i < mr ? i : mr - 1)];
            }
        }
    }
}

/* Packs rows [k0, k0+kc) of panels [begin, end) of B: panel p is (kc, NR), columns p*NR.., zero
 * past NC. Three cases: rows of B contiguous (both backward products: a row of a panel is NR
 * consecutive floats, copied as two vectors), columns contiguous (the forward's W^T: a transpose,
 * done in VL x VL blocks in registers), and any other stride (element by element). */
static void pack_b_range(void *arg, int64_t begin, int64_t end, int tid) {
    const gemm_args *g = arg;
    const ptrdiff_t rs = g->B.rs, cs = g->B.cs;
    const int kc = g->ks;
    if (cs == 1) {
        /* rows of B contiguous: a row at a time across the range's whole panels, so B is read
         * in order, each line once (panel by panel, a row's 2 KiB of a 512-wide B would be
         * fetched a line pair at a time, at a stride the prefetchers do not follow) */
        int64_t whole = end < g->NC / NR ? end : g->NC / NR; /* panels before it are whole */
        whole = whole > begin ? whole : begin;
        for (int k = 0; k < kc; k++) {
            const float *row = g->B.p + (size_t)(g->k0 + k) * rs;
            for (int64_t p = begin; p < whole; p++) {
                vf *d = (vf *)(g->ws + b_panel_offset(p, kc) + (size_t)k * NR);
                d[0] = *(const vfu *)(row + p * NR);
                d[1] = *(const vfu *)(row + p * NR + VL);
            }
        }
        begin = whole; /* the last panel, if partial: below */
    }
    for (int64_t p = begin; p < end; p++) {
        float *dst = g->ws + b_panel_offset(p, kc);
        int j0 = (int)p * NR;
        int nr = g->NC - j0 < NR ? g->NC - j0 : NR;
        const float *b = g->B.p + g->k0 * rs + j0 * cs; /* element (k0, j0) */
        if (rs == 1 && nr == NR) {
            /* d[k][j] = b[j * cs + k]: VL x VL blocks, VL columns of B (rows of W) read as
             * vectors along k and transposed in registers */
            int k = 0;
            for (; k + VL <= kc; k += VL) {
                for (int jb = 0; jb < NR; jb += VL) {
                    rg_par_transpose_block(dst + (size_t)k * NR + jb, NR, b + jb * cs + k, cs);
                }
            }
            for (; k < kc; k++) {
                float *d = dst + (size_t)k * NR;
                for (int j = 0; j < NR; j++) {
                    d[j] = b[j * cs + k];
                }
            }
            continue;
        }
        for (int k = 0; k < kc; k++) {
            const float *src = b + k * rs;
            float *d = dst + (size_t)k * NR;
            int j = 0;
            for (; j < nr; j++) {
                d[j] = src[j * cs];
            }
            for (; j < NR; j++) {
                d[j] = 0.0f;
            }
        }
    }
}

/* Asks for the lines of the MR-row tile at row m (nothing past M), columns [k0, k0+kc), of an A
 * read in place (A.cs == 1; pack_a_cols prefetches its own) to be brought into L2: a step's
 * tensors outgrow L2, so A comes from L3 or memory, and the tile's MR short row streams (K = 128
 * is 8 lines a row) end before the hardware prefetchers ramp up, so without this the first pass
 * over each block of A waits at every line. */
static void prefetch_a_tile(mat_view A, int M, int m, int k0, int kc) {
    int mr = M - m < MR ? M - m : MR;
    for (int i = 0; A.cs == 1 && i < mr; i++) {
        prefetch_span(A.p + (m + i) * A.rs + k0, kc);
    }
}

/* One MC x kc block of A (rows [m0, m0+mc), columns [k0, k0+kc), a sub-block of the K rows of B
 * that are packed) against panels [p_begin, p_end) of B: for each panel, every tile, so the
 * panel's kc x NR slice stays in L1 while the block of A is read from L2 once per panel.
 * (nm0, nk0, nkc) is the block this thread computes next (nm0 == m_end: none), whose A is
 * prefetched on the last pass. */
static void gemm_block(const gemm_args *g, float *ap, int p_begin, int p_end, int m0, int mc,
                       int k0, int kc, int m_end, int nm0, int nk0, int nkc) {
    int acc = g->accumulate || k0 > 0;
    if (ap) {
        pack_a_cols(ap, g->A, g->M, m0, mc, k0, kc);
    }
    for (int p = p_begin; p < p_end; p++) {
        const float *bp = g->ws + b_panel_offset(p, g->ks) + (size_t)(k0 - g->k0) * NR;
        int nr = g->NC - p * NR < NR ? g->NC - p * NR : NR;
        for (int t = 0; t < mc; t += MR) {
            int mr = mc - t < MR ? mc - t : MR;
            float *c = g->Cm + (size_t)(m0 + t) * g->ldc + p * NR;
            /* the next tile on the first pass over this block (read in place), the next block's
             * tile t on the last pass (one tile's time covers its lines' latency) */
            if (p == p_begin && !ap && t + MR < mc) {
                prefetch_a_tile(g->A, g->M, m0 + t + MR, k0, kc);
            }
            if (p == p_end - 1 && !ap && nm0 + t < m_end) {
                prefetch_a_tile(g->A, g->M, nm0 + t, nk0, nkc);
            }
            if (ap) {
                micro_kernel(kc, ap + a_tile_offset(t, kc), 1, MR, bp, c, g->ldc, mr, nr, acc);
            } else {
                const float *a = g->A.p + (m0 + t) * g->A.rs + k0 * g->A.cs;
                micro_kernel(kc, a, g->A.rs, g->A.cs, bp, c, g->ldc, mr, nr, acc);
            }
        }
    }
}

/* A range of the threads' split, over the K rows [k0, k0+ks) of B that are packed: MR-row tiles
 * [begin, end) of C against every panel, or (by_panels) panels [begin, end) against every row.
 * Each K block of KC in order (every element sees the same K order at any thread count and either
 * split), and for each every block of MC rows, so that the block's packed B stays in L2 for all of
 * this range's rows, as when each K block had a pass of its own. */
static void gemm_range(void *arg, int64_t begin, int64_t end, int tid) {
    const gemm_args *g = arg;
    int panels = (g->NC + NR - 1) / NR;
    int p_begin = g->by_panels ? (int)begin : 0, p_end = g->by_panels ? (int)end : panels;
    int m_begin = g->by_panels ? 0 : (int)begin * MR;
    int m_end = g->by_panels || end * MR >= g->M ? g->M : (int)end * MR;
    int k_end = g->k0 + g->ks;
    float *ap = g->pack_a ? g->ws + rg_par_thread_offset(g->bp_floats, g->ap_floats, tid) : NULL;
    for (int k0 = g->k0; k0 < k_end; k0 += KC) {
        int kc = k_end - k0 < KC ? k_end - k0 : KC;
        int nk0 = k0 + KC < k_end ? k0 + KC : k_end;
        int nkc = k_end - nk0 < KC ? k_end - nk0 : KC;
        for (int m0 = m_begin; m0 < m_end; m0 += MC) {
            int mc = m_end - m0 < MC ? m_end - m0 : MC;
            if (m0 + MC < m_end) {
                gemm_block(g, ap, p_begin, p_end, m0, mc, k0, kc, m_end, m0 + MC, k0, kc);
            } else { /* the next block is this range's first, in the next K block if any */
                gemm_block(g, ap, p_begin, p_end, m0, mc, k0, kc, m_end,
                           nkc > 0 ? m_begin : m_end, nk0, nkc);
            }
        }
    }
}

/* Below this many FLOPs per chunk a second thread costs more than it saves. */
#define GEMM_GRAIN_FLOPS (1 << 20)

void RG_GEMM_FN(rg_par_backend *pb, float *Cm, int ldc, mat_view A, mat_view B, int M, int NC,
                int K, int accumulate) {
    if (M <= 0 || NC <= 0) {
        return;
    }
    if (K <= 0) {
        if (!accumulate) {
            for (int i = 0; i < M; i++) {
                memset(Cm + (size_t)i * ldc, 0, (size_t)NC * sizeof(float));
            }
        }
        return;
    }
    int panels = (NC + NR - 1) / NR;
    /* K rows of B packed per pass: KC on one thread; on more, whole KC blocks, as many as fit
     * RG_GEMM_BPACK floats (a share of L2) and at least one. A pass costs two joins of the threads
     * (pack, products), so the weight gradient (K = N = 2048) takes a few passes instead of one per
     * KC block; on one thread (or running alone) there is nothing to join, and one block at a
     * time keeps more of L2 for the rest. */
    int64_t threads = rg_par_composite_begin(pb->par);
    int ks_max = threads > 1 ? RG_GEMM_BPACK / (panels * NR) / KC * KC : KC;
    ks_max = ks_max > KC ? ks_max : KC;
    int ks = K < ks_max ? K : ks_max;
    gemm_args g = {.M = M, .NC = NC, .K = K, .A = A, .B = B, .Cm = Cm, .ldc = ldc,
                   .accumulate = accumulate};
    g.pack_a = A.rs == 1 && A.cs != 1; /* dW's dout^T; any other strides are read in place */
    g.bp_floats = b_panel_offset(panels, ks);
    g.ap_floats = g.pack_a ? a_tile_offset(MC, KC) : 0;
    g.ws = rg_par_workspace(pb, g.bp_floats, g.ap_floats);

    /* The split: each thread reads its share of one operand and all of the other, so the threads
     * split the larger one: the rows of C (A: M x K) unless B is wider than A is tall (NC > M: the
     * weight gradients of Wo at M = NC, of W2 at M = C, NC = 4C, and of the LM head, M = V), when
     * they split the panels of B, each thread packing the panels it then reads (its own L2). */
    g.by_panels = threads > 1 && NC > M && panels >= threads;
    /* >= 16 Ki floats per chunk: at 64 Ki, a forward's W^T (12 to 16 panels of 128 rows) was one
     * chunk, packed by one thread while the others waited */
    int64_t pack_grain = 1 + (1 << 14) / ((int64_t)ks * NR);
    int64_t n_split, grain;
    if (g.by_panels) {
        n_split = panels;
        grain = (panels + threads - 1) / threads; /* one range of panels per thread */
        pack_grain = grain;
    } else {
        /* A chunk reads all of packed B once per MC rows it holds, so chunks of fewer than MC
         * rows multiply B's traffic: the weight gradient has only M = OC (128 to 512) rows and a
         * B of N rows. Chunks are whole MC-row blocks, as many per thread as there are, at least
         * one per thread. */
        int64_t tiles = (M + MR - 1) / MR;
        int64_t chunks = tiles / (MC / MR) / threads * threads;
        chunks = chunks > threads ? chunks : threads;
        int64_t min_grain = 1 + GEMM_GRAIN_FLOPS / (2LL * MR * NC * ks);
        n_split = tiles;
        grain = (tiles + chunks - 1) / chunks;
        grain = grain > min_grain ? grain : min_grain;
    }
    for (g.k0 = 0; g.k0 < K; g.k0 += ks_max) {
        g.ks = K - g.k0 < ks_max ? K - g.k0 : ks_max;
        rg_par_for(pb->par, panels, pack_grain, pack_b_range, &g);
        rg_par_for(pb->par, n_split, grain, gemm_range, &g);
    }
    /* one site per shape and kind of product (the strides tell the three apart) */
    rg_par_composite_end(pb->par, gemm_range, (int64_t)M << 32 | (int64_t)NC << 16 | g.pack_a,
                         K);
}
