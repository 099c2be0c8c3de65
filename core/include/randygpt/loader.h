/*
 * Plugin loader: finds a backend by name or path, dlopens it (RTLD_NOW | RTLD_LOCAL) and checks it.
 *
 * Search order for a name (no '/' and no ".so"): the explicit directory (--backend-dir), each entry
 * of the RANDYGPT_BACKEND_PATH variable (':'-separated), then the plugin folder beside the
 * executable (<bindir>/RG_PLUGIN_RELDIR). A name NAME is the file NAME.so in one of those.
 */
#ifndef RANDYGPT_LOADER_H
#define RANDYGPT_LOADER_H

#include <stddef.h>

#include "randygpt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_BACKEND_PATH_ENV "RANDYGPT_BACKEND_PATH"

typedef struct rg_plugin {
    void *handle;              /* from dlopen */
    char *path;                /* the file that was opened (owned; freed by rg_plugin_close) */
    const rg_backend *table;   /* checked: ABI version, struct size, required ops */
} rg_plugin;

/* Opens a backend by name or path. backend_dir may be NULL. Returns 0, or -1 with one line in err
 * naming the file and the cause (not found and where it looked, not a shared object, no entry
 * symbol, ABI version mismatch naming both versions, missing required op). */
int rg_plugin_open(rg_plugin *p, const char *name_or_path, const char *backend_dir, char *err,
                   size_t err_len);
void rg_plugin_close(rg_plugin *p);

/* Calls fn for every NAME.so in the search directories (first hit of each name wins), in name
 * order. Returns the number found. */
typedef void (*rg_plugin_visit_fn)(const char *name, const char *path, void *user);
int rg_plugin_list(const char *backend_dir, rg_plugin_visit_fn fn, void *user);

/* The directory of the running executable's plugins, or "" if it cannot be found. */
const char *rg_plugin_default_dir(void);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_LOADER_H */
