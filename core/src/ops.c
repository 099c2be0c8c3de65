/*
 * The core's view of a backend: checks a plugin's table, resolves every optional op it leaves NULL
 * to the reference kernel, and records which ops the plugin runs natively.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "randygpt/ops.h"
#include "randygpt/text.h"

/* Names (the rg_backend member's) and required flags, in rg_op_kind order, from op_list.h. */
#define NAME_(name, KIND, req, ret, params) [RG_OP_##KIND] = #name,
static const char *const op_names[RG_OP_COUNT] = {RG_OP_LIST(NAME_)};
#undef NAME_
#define REQUIRED_(name, KIND, req, ret, params) [RG_OP_##KIND] = req,
static const int op_required[RG_OP_COUNT] = {RG_OP_LIST(REQUIRED_)};
#undef REQUIRED_

_Static_assert(RG_OP_COUNT <= 32, "rg_ops.native_mask has one bit per op kind");

/* Bit (1u << kind) of every op the table provides (non-NULL). */
static uint32_t provided_mask(const rg_backend *t) {
    uint32_t mask = 0;
#define PROVIDED_(name, KIND, req, ret, params) mask |= t->name ? 1u << RG_OP_##KIND : 0u;
    RG_OP_LIST(PROVIDED_)
#undef PROVIDED_
    return mask;
}

/* Every op the table leaves NULL becomes the reference kernel (typed assignment: a signature that
 * drifts from backend.h does not compile). */
static void resolve(rg_backend *t) {
#define RESOLVE_(name, KIND, req, ret, params) \
    if (!t->name) t->name = rg_ref_##name;
    RG_OP_LIST(RESOLVE_)
#undef RESOLVE_
}

/* Version 2 plugins still load: the table's layout is version 3's, and only these ops changed
 * their contracts (backend.h), so the host runs its reference kernels for them instead. */
#define RG_BACKEND_ABI_OLDEST 2
static const uint32_t changed_since_v2 = 1u << RG_OP_ATTENTION_FORWARD |
                                         1u << RG_OP_ATTENTION_BACKWARD |
                                         1u << RG_OP_SQRELU_BACKWARD;

/* The ops a table runs natively: those it provides, less those an older version defines
 * otherwise. */
static uint32_t native_mask_of(const rg_backend *t) {
    uint32_t mask = provided_mask(t);
    return t->abi_version < RG_BACKEND_ABI_VERSION ? mask & ~changed_since_v2 : mask;
}

const char *rg_op_name(rg_op_kind op) {
    if ((int)op < 0 || op >= RG_OP_COUNT) {
        return "unknown_op";
    }
    return op_names[op];
}

int rg_op_is_required(rg_op_kind op) {
    return (int)op >= 0 && op < RG_OP_COUNT && op_required[op];
}

/* Appends "sep item" to a bounded string; a list that does not fit ends with RG_TRUNCATED_MARK. */
static void append(char *buf, size_t buf_len, const char *sep, const char *item) {
    rg_errf_append(buf, buf_len, "%s%s", buf[0] ? sep : "", item);
}

int rg_backend_validate(const rg_backend *table, char *err, size_t err_len) {
    if (!table) {
        rg_errf(err, err_len, "backend table is NULL");
        return -1;
    }
    /* The version comes first: with another version the rest of the struct cannot be trusted. */
    if (table->abi_version < RG_BACKEND_ABI_OLDEST || table->abi_version > RG_BACKEND_ABI_VERSION) {
        rg_errf(err, err_len,
                "backend ABI version mismatch: plugin built for version %u, this randygpt uses "
                "version %u (and loads version %u); rebuild the plugin against this randygpt's "
                "headers", (unsigned)table->abi_version, (unsigned)RG_BACKEND_ABI_VERSION,
                (unsigned)RG_BACKEND_ABI_OLDEST);
        return -1;
    }
    if (table->struct_size != sizeof(rg_backend)) {
        rg_errf(err, err_len,
                "backend table size mismatch: plugin's rg_backend is %u bytes, this randygpt's is "
                "%zu; rebuild the plugin against this randygpt's headers",
                (unsigned)table->struct_size, sizeof(rg_backend));
        return -1;
    }
    if (!table->name || !table->name[0]) {
        rg_errf(err, err_len, "backend table has no name");
        return -1;
    }
    char missing[RG_ERR_LEN] = "";
    if (!table->create) {
        append(missing, sizeof missing, ", ", "create");
    }
    if (!table->destroy) {
        append(missing, sizeof missing, ", ", "destroy");
    }
    if (!table->describe) {
        append(missing, sizeof missing, ", ", "describe");
    }
    uint32_t provided = provided_mask(table);
    for (int op = 0; op < RG_OP_COUNT; op++) {
        if (op_required[op] && !(provided & (1u << op))) {
            append(missing, sizeof missing, ", ", op_names[op]);
        }
    }
    if (missing[0]) {
        rg_errf(err, err_len, "backend %s lacks required ops: %s", table->name, missing);
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
        rg_errf(err, err_len, "backend %s: no configuration given", table->name);
        return -1;
    }
    rg_backend k = *table;
    uint32_t native = native_mask_of(table);
    if (table->abi_version < RG_BACKEND_ABI_VERSION) { /* its kernels for these follow v2 */
        k.attention_forward = NULL;
        k.attention_backward = NULL;
        k.sqrelu_backward = NULL;
    }
    resolve(&k);
    if (err_len > 0) {
        err[0] = '\0';
    }
    rg_backend_ctx *ctx = table->create(cfg, err, err_len);
    if (!ctx) {
        rg_plugin_text(err, err_len);
        if (err_len > 0 && !err[0]) {
            rg_errf(err, err_len, "backend %s could not create an instance", table->name);
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

void rg_plugin_text(char *buf, size_t buf_len) {
    if (buf_len == 0) {
        return;
    }
    /* A text that reaches the last byte was cut by the plugin (or never terminated): say so. */
    int cut = memchr(buf, '\0', buf_len - 1) == NULL;
    buf[buf_len - 1] = '\0';
    for (char *p = buf; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            *p = '?';
        }
    }
    if (cut) {
        rg_mark_truncated(buf, buf_len);
    }
}

void rg_ops_describe(const rg_ops *ops, char *buf, size_t buf_len) {
    if (buf_len == 0) {
        return;
    }
    buf[0] = '\0';
    ops->k.describe(ops->ctx, buf, buf_len);
    rg_plugin_text(buf, buf_len);
}

/* The names of the ops in mask, comma-separated. */
static void mask_list(uint32_t mask, char *buf, size_t buf_len) {
    if (buf_len == 0) {
        return;
    }
    buf[0] = '\0';
    for (int op = 0; op < RG_OP_COUNT; op++) {
        if (mask & (1u << op)) {
            append(buf, buf_len, ",", op_names[op]);
        }
    }
}

void rg_ops_native_list(const rg_ops *ops, char *buf, size_t buf_len) {
    mask_list(ops->native_mask, buf, buf_len);
}

void rg_ops_table_native_list(const rg_backend *table, char *buf, size_t buf_len) {
    mask_list(native_mask_of(table), buf, buf_len);
}
