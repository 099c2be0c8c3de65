/*
 * The core's view of a backend: its table with every optional op resolved (reference kernel where
 * the plugin gave NULL), the instance, which ops run natively, and optional per-op timing.
 * Also the reference kernels: plain single-threaded C, the ground truth every backend is tested
 * against. They have exactly the signatures of the rg_backend ops (ctx is ignored).
 */
#ifndef RANDYGPT_OPS_H
#define RANDYGPT_OPS_H

#include "randygpt/backend.h"
#include "randygpt/op_list.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Op kinds, for the native mask and the per-op timing: RG_OP_<KIND> of every op in op_list.h. */
typedef enum rg_op_kind {
#define RG_OP_ENUM_(name, KIND, req, ret, params) RG_OP_##KIND,
    RG_OP_LIST(RG_OP_ENUM_)
#undef RG_OP_ENUM_
    RG_OP_COUNT
} rg_op_kind;

/* Name of an op kind as used in reports, e.g. "matmul_forward". */
const char *rg_op_name(rg_op_kind op);
/* 1 if the op is one of the required ones. */
int rg_op_is_required(rg_op_kind op);

typedef struct rg_ops {
    rg_backend k;              /* resolved table: every op non-NULL */
    rg_backend_ctx *ctx;       /* the instance */
    uint32_t native_mask;      /* bit (1u << rg_op_kind) set when the plugin runs that op itself */
    int num_threads;           /* the thread count the instance was created with */
    int timing;                /* when non-zero the model adds wall time per op into seconds[] */
    double seconds[RG_OP_COUNT];
    long calls[RG_OP_COUNT];
} rg_ops;

/* Checks a plugin's table (ABI version, struct size, required ops). Returns 0, or -1 with one line
 * in err naming the cause. */
int rg_backend_validate(const rg_backend *table, char *err, size_t err_len);

/* Validates table, resolves optional ops against the reference and creates an instance.
 * Returns 0, or -1 with one line in err (the plugin's message passed through rg_plugin_text). */
int rg_ops_create(rg_ops *ops, const rg_backend *table, const rg_backend_config *cfg, char *err,
                  size_t err_len);
void rg_ops_destroy(rg_ops *ops);
/* The instance's describe() into buf, passed through rg_plugin_text: always terminated, one line. */
void rg_ops_describe(const rg_ops *ops, char *buf, size_t buf_len);
/* Makes a string a plugin wrote into buf (buf_len bytes) safe to print: terminated within
 * buf_len (cut at its first NUL, else at buf_len - 1), and every control byte (newline, escape, ...)
 * replaced by '?', so it is one line of text. A text that reaches the buffer's last byte (no NUL
 * before it: the plugin cut it, or never ended it) ends with RG_TRUNCATED_MARK (randygpt/text.h).
 * Every string that comes back from a plugin goes through here. */
void rg_plugin_text(char *buf, size_t buf_len);
/* Writes "matmul_forward,matmul_backward,..." of the native ops into buf. */
void rg_ops_native_list(const rg_ops *ops, char *buf, size_t buf_len);
/* The same list for a plugin's table, without an instance. */
void rg_ops_table_native_list(const rg_backend *table, char *buf, size_t buf_len);

/* The reference backend table ("single"): every op the reference kernel, one thread. */
extern const rg_backend rg_reference_backend;

/* Reference kernels rg_ref_<name>, one per op of op_list.h, with the rg_backend member's
 * signature. Contracts and shapes: see rg_backend in backend.h. */
#define RG_OP_REF_PROTO_(name, KIND, req, ret, params) ret rg_ref_##name params;
RG_OP_LIST(RG_OP_REF_PROTO_)
#undef RG_OP_REF_PROTO_

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_OPS_H */
