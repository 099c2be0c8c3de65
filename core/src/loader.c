/*
 * Plugin loader (see randygpt/loader.h): finds a backend by name or path, dlopens it and checks its
 * table. Every failure is one line that names the file and the cause, because the user's next step
 * (fix the path, rebuild the plugin) depends on exactly which check failed.
 */
#define _GNU_SOURCE /* realpath, strdup */
#include "randygpt/loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "randygpt/ops.h"
#include "randygpt/text.h"

#ifndef RG_PLUGIN_RELDIR
#error "RG_PLUGIN_RELDIR must be defined by the build (the plugin folder relative to the binary)"
#endif

#define RG_MAX_SEARCH_DIRS 64

/* The directories a name is searched in, in order, without duplicates. */
typedef struct search_dirs {
    int n;
    char *dir[RG_MAX_SEARCH_DIRS];
} search_dirs;

static void dirs_add(search_dirs *s, const char *dir, size_t len) {
    if (len == 0 || s->n == RG_MAX_SEARCH_DIRS) return;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->dir[i]) == len && !strncmp(s->dir[i], dir, len)) return;
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, dir, len);
    copy[len] = '\0';
    s->dir[s->n++] = copy;
}

/* --backend-dir, then each entry of RANDYGPT_BACKEND_PATH, then the executable's plugin folder. */
static void dirs_collect(search_dirs *s, const char *backend_dir) {
    s->n = 0;
    if (backend_dir) dirs_add(s, backend_dir, strlen(backend_dir));
    const char *env = getenv(RG_BACKEND_PATH_ENV);
    while (env && *env) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        dirs_add(s, env, len);
        env = colon ? colon + 1 : NULL;
    }
    const char *def = rg_plugin_default_dir();
    dirs_add(s, def, strlen(def));
}

static void dirs_free(search_dirs *s) {
    for (int i = 0; i < s->n; i++) free(s->dir[i]);
    s->n = 0;
}

/* "dir/file" without a doubled slash, on the heap; NULL when out of memory. */
static char *join_path(const char *dir, const char *file) {
    size_t len = strlen(dir);
    return rg_strf("%s%s%s", dir, (len > 0 && dir[len - 1] == '/') ? "" : "/", file);
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

const char *rg_plugin_default_dir(void) {
    static char *dir; /* found once; lives as long as the process */
    if (dir) return dir;
    char *exe = realpath("/proc/self/exe", NULL);
    char *slash = exe ? strrchr(exe, '/') : NULL;
    if (slash) *slash = '\0';
    char *joined = slash ? join_path(exe, RG_PLUGIN_RELDIR) : NULL;
    /* Resolve "bin/../lib" so that messages show a plain path; keep the joined one if the folder
     * does not exist, since "looked in" messages still need to say where. */
    char *resolved = joined ? realpath(joined, NULL) : NULL;
    dir = resolved ? resolved : joined;
    if (resolved) free(joined);
    free(exe);
    return dir ? dir : "";
}

/* dlerror() usually reads "PATH: cause"; drop the path, the message names it already. */
static const char *dl_cause(const char *path) {
    const char *msg = dlerror();
    if (!msg) return "unknown dlopen error";
    size_t lp = strlen(path);
    if (!strncmp(msg, path, lp) && !strncmp(msg + lp, ": ", 2)) return msg + lp + 2;
    return msg;
}

/* An OpenMP runtime reads its wait policy once, when it is loaded with the first plugin that links
 * it; the policy is set here, before that, to match rg_par_pool's bounded spin, unless the user set
 * one. Left alone, GNU libgomp spins 300,000 pauses before sleeping (some milliseconds on CPUs with
 * a long pause, such as recent Xeons) and LLVM's libomp 200 ms: on a machine shared with other
 * work, a waiting thread then holds a core that the thread it waits for needs. */
#define RG_GOMP_SPINCOUNT "10000"
#define RG_KMP_BLOCKTIME "1" /* milliseconds */
static void set_openmp_wait_policy(void) {
    if (getenv("OMP_WAIT_POLICY")) {
        return; /* the user's choice, and a spin count for it, stand */
    }
    setenv("GOMP_SPINCOUNT", RG_GOMP_SPINCOUNT, 0);
    setenv("KMP_BLOCKTIME", RG_KMP_BLOCKTIME, 0);
}

/* The name of an ELF e_machine value, or NULL when it is not one of these. */
static const char *elf_machine_name(unsigned m) {
    switch (m) {
    case EM_X86_64: return "x86_64";
    case EM_386: return "i386";
    case EM_AARCH64: return "aarch64";
    case EM_ARM: return "arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_PPC: return "ppc";
    case EM_S390: return "s390x";
    case EM_MIPS: return "mips";
    case EM_LOONGARCH: return "loongarch";
    default: return NULL;
    }
}

/* The ELF class (ELFCLASS32/64) and machine of the file at path. Returns 0, or -1 if it is not ELF. */
static int elf_ident(const char *path, unsigned char *cls, unsigned *machine) {
    FILE *f = fopen(path, "rb");
    unsigned char h[20];
    int ok = f && fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h, ELFMAG, SELFMAG);
    if (f) fclose(f);
    if (!ok) return -1;
    *cls = h[EI_CLASS];
    *machine = h[EI_DATA] == ELFDATA2MSB ? (unsigned)(h[18] << 8 | h[19])
                                          : (unsigned)(h[19] << 8 | h[18]);
    return 0;
}

/* When dlopen failed on an ELF file built for another machine or word size, says so in why:
 * "built for aarch64 (64-bit), this machine is x86_64 (64-bit)" (glibc reports a misleading
 * "No such file" then). Returns 1 when it did, 0 otherwise. */
static int elf_foreign(const char *path, char *why, size_t n) {
    unsigned char cls, host_cls;
    unsigned m, host_m;
    if (elf_ident(path, &cls, &m) != 0 || elf_ident("/proc/self/exe", &host_cls, &host_m) != 0 ||
        (m == host_m && cls == host_cls))
        return 0;
    const char *name = elf_machine_name(m), *host_name = elf_machine_name(host_m);
    char buf[32], host_buf[32];
    if (!name) snprintf(buf, sizeof buf, "ELF machine %u", m), name = buf;
    if (!host_name) snprintf(host_buf, sizeof host_buf, "ELF machine %u", host_m), host_name = host_buf;
    rg_errf(why, n, "built for %s (%d-bit), this machine is %s (%d-bit)", name,
            cls == ELFCLASS64 ? 64 : 32, host_name, host_cls == ELFCLASS64 ? 64 : 32);
    return 1;
}

static int load_checked(rg_plugin *p, const char *dlpath, char *err, size_t err_len);

/* Opens and checks one file; on failure p is left closed. */
static int open_file(rg_plugin *p, const char *path, char *err, size_t err_len) {
    struct stat st;
    if (stat(path, &st) != 0) {
        rg_errf(err, err_len, "%s: cannot open backend plugin: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        rg_errf(err, err_len, "%s: is a directory, not a backend plugin", path);
        return -1;
    }
    /* dlopen searches the library path for a bare file name, so make a relative path explicit. */
    char *dlpath = strchr(path, '/') ? strdup(path) : rg_strf("./%s", path);
    p->path = strdup(path);
    if (!dlpath || !p->path) {
        free(dlpath);
        rg_plugin_close(p);
        rg_errf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = load_checked(p, dlpath, err, err_len);
    free(dlpath);
    if (rc != 0) rg_plugin_close(p);
    return rc;
}

/* dlopens dlpath (p->path as dlopen needs it) and checks its table into p. */
static int load_checked(rg_plugin *p, const char *dlpath, char *err, size_t err_len) {
    const char *path = p->path;
    /* RTLD_NODELETE: a plugin's runtime (an OpenMP team, a library's thread pool) may keep idle
     * threads inside its code after the instance is destroyed; unmapping it would pull the code from
     * under them. Refused plugins are unmapped as usual (their failed dlopen maps nothing). */
    set_openmp_wait_policy();
    void *handle = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle) {
        const char *cause = dl_cause(dlpath);
        char foreign[RG_ERR_LEN];
        if (elf_foreign(path, foreign, sizeof foreign)) {
            rg_errf(err, err_len, "%s: cannot be loaded: %s", path, foreign);
            return -1;
        }
        /* Bad ELF files and wrong architectures are the common case; name them plainly. */
        int not_so = strstr(cause, "ELF") || strstr(cause, "file too short") ||
                     strstr(cause, "not a dynamic");
        rg_errf(err, err_len, "%s: %s (%s)", path,
                not_so ? "is not a shared object" : "cannot be loaded", cause);
        return -1;
    }
    dlerror();
    void *sym = dlsym(handle, RG_BACKEND_ENTRY_SYMBOL);
    if (!sym) {
        rg_errf(err, err_len, "%s: is not a randygpt backend plugin (no %s symbol)", path,
                RG_BACKEND_ENTRY_SYMBOL);
        dlclose(handle);
        return -1;
    }
    /* POSIX guarantees this object-to-function pointer conversion for dlsym results. */
    rg_backend_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const rg_backend *table = entry();
    if (!table) {
        rg_errf(err, err_len, "%s: %s() returned NULL", path, RG_BACKEND_ENTRY_SYMBOL);
        dlclose(handle);
        return -1;
    }
    char why[RG_ERR_LEN];
    if (rg_backend_validate(table, why, sizeof why) != 0) {
        rg_errf(err, err_len, "%s: %s", path, why);
        dlclose(handle);
        return -1;
    }
    p->handle = handle;
    p->table = table;
    return 0;
}

int rg_plugin_open(rg_plugin *p, const char *name_or_path, const char *backend_dir, char *err,
                   size_t err_len) {
    memset(p, 0, sizeof *p);
    if (!name_or_path || !*name_or_path) {
        rg_errf(err, err_len, "no backend given (a name such as 'single', or a path to a .so)");
        return -1;
    }
    if (strchr(name_or_path, '/') || ends_with(name_or_path, ".so"))
        return open_file(p, name_or_path, err, err_len);

    /* A name: the first directory holding NAME.so wins, even if that file turns out broken. */
    char file[NAME_MAX + 1];
    if (snprintf(file, sizeof file, "%s.so", name_or_path) >= (int)sizeof file) {
        rg_errf(err, err_len, "backend name '%.64s...' is too long", name_or_path);
        return -1;
    }
    search_dirs dirs;
    dirs_collect(&dirs, backend_dir);
    for (int i = 0; i < dirs.n; i++) {
        char *path = join_path(dirs.dir[i], file);
        if (path && access(path, F_OK) == 0) {
            dirs_free(&dirs);
            int rc = open_file(p, path, err, err_len);
            free(path);
            return rc;
        }
        free(path);
    }
    /* Not found: say every place looked, so the user can tell which option to set. */
    rg_errf(err, err_len, "backend '%s' not found: no %s in ", name_or_path, file);
    if (dirs.n == 0)
        rg_errf_append(err, err_len, "any directory (use --backend-dir or %s)", RG_BACKEND_PATH_ENV);
    for (int i = 0; i < dirs.n; i++) rg_errf_append(err, err_len, "%s%s", i ? ", " : "", dirs.dir[i]);
    dirs_free(&dirs);
    return -1;
}

void rg_plugin_close(rg_plugin *p) {
    if (p->handle) dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof *p);
}

typedef struct found_plugin {
    char *name;  /* without ".so" */
    char *path;
} found_plugin;

static int by_name(const void *a, const void *b) {
    return strcmp(((const found_plugin *)a)->name, ((const found_plugin *)b)->name);
}

int rg_plugin_list(const char *backend_dir, rg_plugin_visit_fn fn, void *user) {
    search_dirs dirs;
    dirs_collect(&dirs, backend_dir);
    found_plugin *found = NULL;
    int n = 0, cap = 0;
    for (int d = 0; d < dirs.n; d++) {
        DIR *dh = opendir(dirs.dir[d]);
        if (!dh) continue;  /* a missing search directory is normal (e.g. an unset default) */
        struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len <= 3 || !ends_with(e->d_name, ".so")) continue;
            int seen = 0;
            for (int i = 0; i < n && !seen; i++)
                seen = strlen(found[i].name) == len - 3 && !strncmp(found[i].name, e->d_name, len - 3);
            if (seen) continue;
            char *path = join_path(dirs.dir[d], e->d_name);
            struct stat st;
            if (!path || stat(path, &st) != 0 || S_ISDIR(st.st_mode)) {
                free(path);
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                found_plugin *grown = realloc(found, (size_t)cap * sizeof *found);
                if (!grown) {
                    free(path);
                    break;
                }
                found = grown;
            }
            found[n].name = strndup(e->d_name, len - 3);
            found[n].path = path;
            if (!found[n].name || !found[n].path) {
                free(found[n].name);
                free(found[n].path);
                continue;
            }
            n++;
        }
        closedir(dh);
    }
    dirs_free(&dirs);
    if (n > 1) qsort(found, (size_t)n, sizeof *found, by_name);
    for (int i = 0; i < n; i++) {
        if (fn) fn(found[i].name, found[i].path, user);
        free(found[i].name);
        free(found[i].path);
    }
    free(found);
    return n;
}
