/*
 * The core's view of a backend: checks a plugin's table, resolves every optional op it leaves NULL
 * to the reference kernel, and records which ops the plugin runs natively.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "randygpt/ops.h"

/* Any function pointer: the ops have different signatures, but one descriptor table below lists
 * them all, so they are read and written through this common type (same representation on every
 * platform the plugins are built for). */
typedef void (*rg_any_fn)(void);

/* One row per op kind, in rg_op_kind order: its name in reports (the rg_backend member's name),
 * where it lives in rg_backend, whether a plugin must provide it, and the reference kernel. */
typedef struct op_desc {
    const char *name;
    size_t offset;
    int required;
    rg_any_fn reference;
} op_desc;

#define OP(member, req) {#member, offsetof(rg_backend, member), req, (rg_any_fn)rg_ref_##member}

static const op_desc op_descs[RG_OP_COUNT] = {
    [RG_OP_MATMUL_FORWARD] = OP(matmul_forward, 1),
    [RG_OP_MATMUL_BACKWARD] = OP(matmul_backward, 1),
    [RG_OP_ATTENTION_FORWARD] = OP(attention_forward, 1),
    [RG_OP_ATTENTION_BACKWARD] = OP(attention_backward, 1),
    [RG_OP_ADAMW] = OP(adamw_step, 1),
    [RG_OP_RMSNORM_FORWARD] = OP(rmsnorm_forward, 0),
    [RG_OP_RMSNORM_BACKWARD] = OP(rmsnorm_backward, 0),
    [RG_OP_SQRELU_FORWARD] = OP(sqrelu_forward, 0),
    [RG_OP_SQRELU_BACKWARD] = OP(sqrelu_backward, 0),
    [RG_OP_RESIDUAL_FORWARD] = OP(residual_forward, 0),
    [RG_OP_EMBEDDING_FORWARD] = OP(embedding_forward, 0),
    [RG_OP_EMBEDDING_BACKWARD] = OP(embedding_backward, 0),
    [RG_OP_CROSSENTROPY_FORWARD] = OP(crossentropy_forward, 0),
    [RG_OP_CROSSENTROPY_BACKWARD] = OP(crossentropy_backward, 0),
    [RG_OP_SUM_SQUARES] = OP(sum_squares, 0),
};

#undef OP

static rg_any_fn op_get(const rg_backend *t, rg_op_kind op) {
    rg_any_fn fn;
    memcpy(&fn, (const char *)t + op_descs[op].offset, sizeof fn);
    return fn;
}

static void op_set(rg_backend *t, rg_op_kind op, rg_any_fn fn) {
    memcpy((char *)t + op_descs[op].offset, &fn, sizeof fn);
}

const char *rg_op_name(rg_op_kind op) {
    if ((int)op < 0 || op >= RG_OP_COUNT) {
        return "unknown_op";
    }
    return op_descs[op].name;
}

int rg_op_is_required(rg_op_kind op) {
    return (int)op >= 0 && op < RG_OP_COUNT && op_descs[op].required;
}

/* Appends "sep item" to a bounded string, keeping it terminated when it would overflow. */
static void append(char *buf, size_t buf_len, const char *sep, const char *item) {
    size_t used = strlen(buf);
    if (used < buf_len) {
        snprintf(buf + used, buf_len - used, "%s%s", used > 0 ? sep : "", item);
    }
}

int rg_backend_validate(const rg_backend *table, char *err, size_t err_len) {
    if (!table) {
        snprintf(err, err_len, "backend table is NULL");
        return -1;
    }
    /* The version comes first: with another version the rest of the struct cannot be trusted. */
    if (table->abi_version != RG_BACKEND_ABI_VERSION) {
        snprintf(err, err_len,
                 "backend ABI version mismatch: plugin built for version %u, this randygpt uses "
                 "version %u; rebuild the plugin against this randygpt's headers",
                 (unsigned)table->abi_version, (unsigned)RG_BACKEND_ABI_VERSION);
        return -1;
    }
    if (table->struct_size != sizeof(rg_backend)) {
        snprintf(err, err_len,
                 "backend table size mismatch: plugin's rg_backend is %u bytes, this randygpt's is "
                 "%zu; rebuild the plugin against this randygpt's headers",
                 (unsigned)table->struct_size, sizeof(rg_backend));
        return -1;
    }
    if (!table->name || !table->name[0]) {
        snprintf(err, err_len, "backend table has no name");
        return -1;
    }
    char missing[512] = "";
    if (!table->create) {
        append(missing, sizeof missing, ", ", "create");
    }
    if (!table->destroy) {
        append(missing, sizeof missing, ", ", "destroy");
    }
    if (!table->describe) {
        append(missing, sizeof missing, ", ", "describe");
    }
    for (int op = 0; op < RG_OP_COUNT; op++) {
        if (op_descs[op].required && !op_get(table, (rg_op_kind)op)) {
            append(missing, sizeof missing, ", ", op_descs[op].name);
        }
    }
    if (missing[0]) {
        snprintf(err, err_len, "backend %s lacks required ops: %s", table->name, missing);
        return -1;
    }
    return 0;
}

int rg_ops_create(rg_ops *ops, const rg_backend *table, const rg_backend_config *cfg, char *err,
                  size_t err_len) {
    memset(ops, 0, sizeof *ops);
    if (rg_backend_validate(table, err, err_len) != 0) {
        return -1;
    }
    if (!cfg) {
        snprintf(err, err_len, "backend %s: no configuration given", table->name);
        return -1;
    }
    rg_backend k = *table;
    uint32_t native = 0;
    for (int op = 0; op < RG_OP_COUNT; op++) {
        if (op_get(table, (rg_op_kind)op)) {
            native |= 1u << op;
        } else {
            op_set(&k, (rg_op_kind)op, op_descs[op].reference);
        }
    }
    if (err_len > 0) {
        err[0] = '\0';
    }
    rg_backend_ctx *ctx = table->create(cfg, err, err_len);
    if (!ctx) {
        if (err_len > 0 && !err[0]) {
            snprintf(err, err_len, "backend %s could not create an instance", table->name);
        }
        return -1;
    }
    ops->k = k;
    ops->ctx = ctx;
    ops->native_mask = native;
    ops->num_threads = cfg->num_threads;
    return 0;
}

void rg_ops_destroy(rg_ops *ops) {
    if (ops->ctx && ops->k.destroy) {
        ops->k.destroy(ops->ctx);
    }
    memset(ops, 0, sizeof *ops);
}

void rg_ops_native_list(const rg_ops *ops, char *buf, size_t buf_len) {
    if (buf_len == 0) {
        return;
    }
    buf[0] = '\0';
    for (int op = 0; op < RG_OP_COUNT; op++) {
        if (ops->native_mask & (1u << op)) {
            append(buf, buf_len, ",", op_descs[op].name);
        }
    }
}
