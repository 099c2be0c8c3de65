/*
 * Op cases: one call of one op at given sizes, the single description that the conformance suite
 * (conformance.c) and randygpt-kbench both run. A case knows its buffers (name, role, size, the
 * range its inputs are drawn from), how to call the op through any rg_backend table (the plugin's,
 * or rg_reference_backend for the reference), its FLOPs and bytes per call, and the error bound
 * each output is judged with, derived from the shape.
 */
#ifndef RANDYGPT_OP_CASE_H
#define RANDYGPT_OP_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/ops.h"
#include "randygpt/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_CASE_MAX_BUFS 8

/* What the op does with a buffer (the contract of backend.h). */
typedef enum rg_buf_role {
    RG_BUF_IN,    /* read only */
    RG_BUF_OUT,   /* overwritten (=): forward outputs and activation gradients */
    RG_BUF_ACC,   /* accumulated (+=): parameter gradients, rmsnorm's dinp */
    RG_BUF_INOUT, /* updated in place from its own value: adamw's params, m, v */
} rg_buf_role;

typedef struct rg_case_buf {
    const char *name;  /* the argument's name in backend.h: "dinp", "att" */
    rg_buf_role role;
    int tokens;        /* int32 in [0, V) instead of fp32 */
    size_t count;      /* elements */
    size_t traffic;    /* elements one call reads or writes (a gather touches fewer than count) */
    float lo, hi;      /* fp32 values are drawn uniform in [lo, hi) (for a derived input: those of
                        * its pre-image, e.g. the logits behind probs) */
    int derived;       /* an input computed by the reference forward from drawn values (att,
                        * probs, rstd): a backward gets what its forward kept */
    int parts;         /* outputs: rows of `parts` groups of part_cols columns, judged per group
                        * (dqkv as dq, dk, dv), so that a large part does not hide a small one */
    size_t part_cols;
    double tol;        /* outputs: bound on the normalised error, derived from the shape */
    char bound[40];    /* how tol was derived, e.g. "32u*sqrt(K=128)" (u = 2^-24) */
} rg_case_buf;

/* Bytes of one buffer: count elements of fp32 or int32. */
static inline size_t rg_case_buf_bytes(const rg_case_buf *b) {
    return b->count * (b->tokens ? sizeof(int32_t) : sizeof(float));
}

/* The sizes a case is made from; each op reads those it needs (see rg_op_case_make). */
typedef struct rg_op_dims {
    int B, T, C, NH, V; /* batch, sequence, channels, heads, vocabulary; N = B*T */
    int OC;             /* matmul output width (its C is the input width) */
    size_t n;           /* element count of adamw, sqrelu, residual, sum_squares */
} rg_op_dims;

/* Scalar arguments; rg_op_case_make sets the training defaults, a caller may vary them. */
typedef struct rg_op_scalars {
    float lr, beta1, beta2, eps, weight_decay, grad_scale; /* adamw_step */
    int t;                                                 /* adamw_step, from 1 */
    float dloss;                                           /* crossentropy_backward */
} rg_op_scalars;

typedef struct rg_op_case {
    rg_op_kind op;
    const char *label;  /* which use of the op, e.g. "qkv" for a matmul; NULL when only one */
    char shape[64];     /* the sizes the op takes: "N=2048 C=128 OC=384" */
    rg_op_dims d;
    float scale;        /* input ranges are scale times the usual ones (wide inputs) */
    rg_op_scalars s;
    int nbufs;
    rg_case_buf buf[RG_CASE_MAX_BUFS];  /* in the op's argument order */
    int in_place;       /* residual_forward: out is passed as inp1 too, sqrelu_backward: dinp as
                         * dout (the contracts allow it; the model runs both so) */
    int returns;        /* 1: the op returns a value (sum_squares), judged as output "result" */
    double result_tol;
    char result_bound[40];
    double flops;       /* per call, the parts of rg_model_step_flops; 0 for memory-bound ops */
    double bytes;       /* per call, every buffer's traffic (ACC and INOUT twice); 0 for the
                         * compute-bound ops */
} rg_op_case;

/* Makes the case of op at d with inputs scale times the usual ranges (1 normally). Returns 0, or
 * -1 when d does not suit the op (a size below 1, C not a multiple of NH). */
int rg_op_case_make(rg_op_case *c, rg_op_kind op, const rg_op_dims *d, float scale);

/* How the inputs are drawn: zeros is the fraction set to exactly 0 (and, when > 0, the first row
 * of each fp32 input too), one_token makes every token equal, offset is added to every drawn fp32
 * value (logits around 100 overflow an exp that does not subtract the max first). */
typedef struct rg_case_fill {
    float zeros;
    int one_token;
    float offset;
} rg_case_fill;

/* Draws every IN, ACC and INOUT buffer of b (b[i] holds c->buf[i].count elements) from r, then
 * computes the derived inputs with the reference. OUT buffers are left as they are, but for an
 * in-place case: its out then starts as a copy of inp1. Returns 0, or
 * -1 when out of memory. */
int rg_op_case_fill(const rg_op_case *c, void *const *b, rg_rng *r, const rg_case_fill *fill);

/* Calls the op of table k (a plugin's resolved table, or &rg_reference_backend) on b. Returns the
 * op's value for an op that returns one, else 0. */
double rg_op_case_call(const rg_op_case *c, const rg_backend *k, rg_backend_ctx *ctx,
                       void *const *b);

/* The scale that part `part` of output buf (b as after the reference's call) is normalised by
 * when larger than max|ref|: for an output whose exact value is a difference of terms that can
 * cancel (attention's dq and dk), the largest sum of |terms| of one element; 0 for the others. */
double rg_op_case_error_scale(const rg_op_case *c, void *const *b, int buf, int part);

/* The matmuls of one layer and the LM head, as the model runs them. */
#define RG_NUM_MATMUL_USES 5

/* The cases of one training step of a model of sizes m (B, T, C, NH, V): every op, the matmuls
 * once per use ("qkv", "attproj", "fc", "fcproj", "lmhead"), sqrelu over the MLP hidden,
 * residual over the residual stream, adamw and sum_squares over n_params. out holds
 * RG_STEP_CASES. Returns the count, or -1 when m does not suit an op. */
#define RG_STEP_CASES (RG_OP_COUNT + 2 * (RG_NUM_MATMUL_USES - 1))
int rg_op_step_cases(const rg_op_dims *m, size_t n_params, float scale, rg_op_case *out);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_OP_CASE_H */
