/* Checkpoint writing and reading; the layout is in docs/checkpoint-format.md. */
#define _GNU_SOURCE /* strndup, dirfd, fstatat */
#include "randygpt/checkpoint.h"

#include "file_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "randygpt/text.h"

/* Floats and integers are stored in the host's byte order, which must be little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint format is little-endian; this host is not"
#endif

/* Size of the fixed header: everything before the vocabulary bytes. */
#define HEADER_BYTES 128

uint64_t rg_fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- header (de)serialisation: a cursor over a byte buffer ---- */

typedef struct cursor {
    uint8_t *p;
} cursor;

static void put(cursor *c, const void *v, size_t n) {
    memcpy(c->p, v, n);
    c->p += n;
}
static void put_i32(cursor *c, int32_t v) { put(c, &v, 4); }
static void put_u32(cursor *c, uint32_t v) { put(c, &v, 4); }
static void put_u64(cursor *c, uint64_t v) { put(c, &v, 8); }
static void put_f32(cursor *c, float v) { put(c, &v, 4); }

static void get(cursor *c, void *v, size_t n) {
    memcpy(v, c->p, n);
    c->p += n;
}
static int32_t get_i32(cursor *c) { int32_t v; get(c, &v, 4); return v; }
static uint64_t get_u64(cursor *c) { uint64_t v; get(c, &v, 8); return v; }
static float get_f32(cursor *c) { float v; get(c, &v, 4); return v; }

/* hdr is (HEADER_BYTES): magic, version, config, training state, adam_t. A weights-only file has
 * its own magic and the same header, so one reader serves both. */
static void header_write(uint8_t *hdr, const rg_model *m, const rg_train_state *st,
                         int weights_only) {
    cursor c = {hdr};
    memset(hdr, 0, HEADER_BYTES);
    put(&c, weights_only ? RG_WEIGHTS_MAGIC : RG_CKPT_MAGIC, 8);
    put_u32(&c, RG_CKPT_VERSION);
    put_i32(&c, m->cfg.V);
    put_i32(&c, m->cfg.maxT);
    put_i32(&c, m->cfg.C);
    put_i32(&c, m->cfg.NH);
    put_i32(&c, m->cfg.L);
    char preset[RG_CKPT_PRESET_LEN] = {0};
    memcpy(preset, st->preset, strnlen(st->preset, RG_CKPT_PRESET_LEN - 1));
    put(&c, preset, RG_CKPT_PRESET_LEN);
    put_i32(&c, st->B);
    put_i32(&c, st->T);
    put_i32(&c, st->max_steps);
    put_f32(&c, st->optim.lr);
    put_f32(&c, st->optim.min_lr_frac);
    put_i32(&c, st->optim.warmup_iters);
    put_f32(&c, st->optim.beta1);
    put_f32(&c, st->optim.beta2);
    put_f32(&c, st->optim.eps);
    put_f32(&c, st->optim.weight_decay);
    put_f32(&c, st->optim.grad_clip);
    put_u64(&c, st->seed);
    put_u64(&c, (uint64_t)st->step);
    put_u64(&c, st->rng_data);
    put_u64(&c, st->rng_sample);
    put_i32(&c, m->adam_t);
    /* c now stands exactly at HEADER_BYTES */
}

/* ---- saving ---- */

static int write_all(FILE *f, const void *p, size_t n, uint64_t *h) {
    *h = rg_fnv1a64(*h, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* Makes a rename in the directory of path durable. */
static int sync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* A path that does not exist yet can be created: its name is valid and its folder is one this
 * process may write in (a run learns it before training, not at its first save). */
static int check_new_path(const char *path, char *err, size_t err_len) {
    if (errno != ENOENT) {
        rg_errf(err, err_len, "checkpoint %s cannot be written: %s", path, strerror(errno));
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    struct stat sd;
    const char *why = NULL;
    if (!dir) why = "out of memory";
    else if (stat(dir, &sd) != 0) why = strerror(errno);
    else if (!S_ISDIR(sd.st_mode)) why = "not a directory";
    else if (access(dir, W_OK | X_OK) != 0) why = "not writable";
    if (why) rg_errf(err, err_len, "checkpoint %s cannot be written: folder %s: %s", path, dir ? dir : "", why);
    free(dir);
    return why ? -1 : 0;
}

int rg_checkpoint_check_path(const char *path, const char *protect, char *err, size_t err_len) {
    struct stat sp, sx;
    if (lstat(path, &sp) != 0) return check_new_path(path, err, err_len);
    if (S_ISLNK(sp.st_mode) && stat(path, &sp) != 0) return 0; /* a dangling link: the save makes it */
    if (!S_ISREG(sp.st_mode)) {
        rg_errf(err, err_len, "checkpoint %s is %s, not a regular file: refusing to replace it",
                path, rg_file_kind(sp.st_mode));
        return -1;
    }
    if (protect && stat(protect, &sx) == 0 && sx.st_dev == sp.st_dev && sx.st_ino == sp.st_ino) {
        rg_errf(err, err_len, "checkpoint %s is the training corpus %s: refusing to overwrite it",
                path, protect);
        return -1;
    }
    /* any other file with content is someone's data (another corpus, a text): only a checkpoint
     * or an export is replaced */
    if (sp.st_size > 0 && !rg_checkpoint_is_file(path)) {
        rg_errf(err, err_len, "checkpoint %s is a file that is not a randyGPT checkpoint: refusing "
                "to replace it", path);
        return -1;
    }
    return 0;
}

int rg_checkpoint_is_file(const char *path) {
    char magic[8], why[RG_ERR_LEN];
    struct stat st;
    int fd = rg_open_regular(path, "checkpoint", &st, why, sizeof why); /* never blocks on a FIFO */
    int is = fd >= 0 && read(fd, magic, 8) == 8 &&
             (!memcmp(magic, RG_CKPT_MAGIC, 8) || !memcmp(magic, RG_WEIGHTS_MAGIC, 8));
    if (fd >= 0) close(fd);
    return is;
}

/* Removes the temporary files "BASE.tmp.PID" that a save of path killed before its rename left
 * behind: only regular files, and only when no process PID exists any more. */
static void remove_stale_tmps(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0, blen = strlen(base);
    char *dir = strndup(slash ? path : "./", slash ? dlen : 2);
    if (!dir) return;
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0) continue;
        char *end;
        errno = 0;
        long pid = strtol(n + blen + 5, &end, 10);
        if (errno || *end || end == n + blen + 5 || pid <= 0 || pid == (long)getpid()) continue;
        struct stat st;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        if (fstatat(dirfd(dp), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(dp), n, 0);
    }
    if (dp) closedir(dp);
    free(dir);
}

static int write_via(const char *tmp, const char *path, const rg_model *m, const rg_vocab *vocab,
                     const rg_train_state *st, int weights_only, char *err, size_t err_len);

/* Writes a checkpoint, or with weights_only the same file without the AdamW moments. */
static int save_file(const char *path, const rg_model *m, const rg_vocab *vocab,
                     const rg_train_state *st, int weights_only, char *err, size_t err_len) {
    const char *what = weights_only ? "weights" : "checkpoint";
    if (vocab->V != m->cfg.V) {
        rg_errf(err, err_len, "cannot save %s %s: vocabulary has %d bytes, model V is %d", what,
                path, vocab->V, m->cfg.V);
        return -1;
    }
    if (rg_checkpoint_check_path(path, NULL, err, err_len) != 0) return -1;
    remove_stale_tmps(path);
    char *tmp = rg_strf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) {
        rg_errf(err, err_len, "cannot save %s %s: out of memory", what, path);
        return -1;
    }
    int rc = write_via(tmp, path, m, vocab, st, weights_only, err, err_len);
    free(tmp);
    return rc;
}

/* save_file's writing: the whole file into tmp, flushed and synced, then renamed onto path. */
static int write_via(const char *tmp, const char *path, const rg_model *m, const rg_vocab *vocab,
                     const rg_train_state *st, int weights_only, char *err, size_t err_len) {
    const char *what = weights_only ? "weights" : "checkpoint";
    /* never through a link, never onto anything but a new or truncated regular file */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        rg_errf(err, err_len, "cannot save %s %s: %s (creating %s)", what, path, strerror(errno),
                tmp);
        if (fd >= 0) close(fd);
        return -1;
    }
    uint8_t hdr[HEADER_BYTES];
    header_write(hdr, m, st, weights_only);
    uint64_t np = (uint64_t)m->num_params;
    uint64_t h = RG_FNV1A64_INIT;
    size_t n = m->num_params * sizeof(float);
    int bad = write_all(f, hdr, sizeof hdr, &h) || write_all(f, vocab->bytes, (size_t)vocab->V, &h) ||
              write_all(f, &np, 8, &h) || write_all(f, m->params_memory, n, &h) ||
              (!weights_only &&
               (write_all(f, m->m_memory, n, &h) || write_all(f, m->v_memory, n, &h))) ||
              fwrite(&h, 1, 8, f) != 8;
    int saved_errno = errno;
    if (!bad && (fflush(f) != 0 || fsync(fileno(f)) != 0)) bad = 1, saved_errno = errno;
    if (fclose(f) != 0 && !bad) bad = 1, saved_errno = errno;
    if (!bad && rename(tmp, path) != 0) bad = 1, saved_errno = errno;
    if (bad) {
        unlink(tmp);
        rg_errf(err, err_len, "cannot save %s %s: %s", what, path,
                saved_errno ? strerror(saved_errno) : "write failed");
        return -1;
    }
    if (sync_dir_of(path) != 0) {
        rg_errf(err, err_len, "%s %s written, but syncing its directory failed: %s", what, path,
                strerror(errno));
        return -1;
    }
    return 0;
}

int rg_checkpoint_save(const char *path, const rg_model *m, const rg_vocab *vocab,
                       const rg_train_state *st, char *err, size_t err_len) {
    return save_file(path, m, vocab, st, 0, err, err_len);
}

int rg_checkpoint_export(const char *path, const rg_model *m, const rg_vocab *vocab,
                         const rg_train_state *st, char *err, size_t err_len) {
    return save_file(path, m, vocab, st, 1, err, err_len);
}

/* ---- loading ---- */

static int read_hashed(FILE *f, void *p, size_t n, uint64_t *h) {
    if (fread(p, 1, n, f) != n) return -1;
    *h = rg_fnv1a64(*h, p, n);
    return 0;
}

/* Reads the fixed header into hdr and checks its magic (a checkpoint, or a weights-only export:
 * *weights_only), version and length. Returns 0 or -1. */
static int read_header(FILE *f, const char *path, uint64_t size, uint8_t hdr[HEADER_BYTES],
                       int *weights_only, char *err, size_t err_len) {
    size_t got = fread(hdr, 1, HEADER_BYTES, f);
    *weights_only = got >= 8 && memcmp(hdr, RG_WEIGHTS_MAGIC, 8) == 0;
    if (got < 8 && memcmp(hdr, RG_CKPT_MAGIC, got) == 0) {
        rg_errf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                (unsigned long long)size);
        return -1;
    }
    if (!*weights_only && memcmp(hdr, RG_CKPT_MAGIC, 8) != 0) {
        rg_errf(err, err_len, "%s is not a randyGPT checkpoint (bad magic)", path);
        return -1;
    }
    if (got < 12) {
        rg_errf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                (unsigned long long)size);
        return -1;
    }
    uint32_t version;
    memcpy(&version, hdr + 8, 4);
    if (version != RG_CKPT_VERSION) {
        rg_errf(err, err_len, "checkpoint %s has format version %u; this build reads version %u",
                path, version, RG_CKPT_VERSION);
        return -1;
    }
    if (got < HEADER_BYTES) {
        rg_errf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                (unsigned long long)size);
        return -1;
    }
    return 0;
}

/* The inverse of header_write, after the magic and version: fills cfg, st and *adam_t. */
static void header_parse(const uint8_t *hdr, rg_model_config *cfg, rg_train_state *st, int *adam_t) {
    cursor c = {(uint8_t *)hdr + 12};
    cfg->V = get_i32(&c);
    cfg->maxT = get_i32(&c);
    cfg->C = get_i32(&c);
    cfg->NH = get_i32(&c);
    cfg->L = get_i32(&c);
    memset(st, 0, sizeof *st);
    get(&c, st->preset, RG_CKPT_PRESET_LEN);
    st->preset[RG_CKPT_PRESET_LEN - 1] = '\0';
    st->B = get_i32(&c);
    st->T = get_i32(&c);
    st->max_steps = get_i32(&c);
    st->optim.lr = get_f32(&c);
    st->optim.min_lr_frac = get_f32(&c);
    st->optim.warmup_iters = get_i32(&c);
    st->optim.beta1 = get_f32(&c);
    st->optim.beta2 = get_f32(&c);
    st->optim.eps = get_f32(&c);
    st->optim.weight_decay = get_f32(&c);
    st->optim.grad_clip = get_f32(&c);
    st->seed = get_u64(&c);
    st->step = (int64_t)get_u64(&c);
    st->rng_data = get_u64(&c);
    st->rng_sample = get_u64(&c);
    *adam_t = get_i32(&c);
}

int rg_train_state_check(const rg_train_state *st, const rg_model_config *cfg, int adam_t,
                         char *err, size_t err_len) {
    char why[RG_ERR_LEN];
    if (rg_model_config_check(cfg, why, sizeof why) != 0) {
        rg_errf(err, err_len, "%s", why);
        return -1;
    }
    if (st->B < 1 || st->B > RG_MAX_BATCH || st->T < 1 || st->T > cfg->maxT || st->max_steps < 1 ||
        st->max_steps > RG_MAX_STEPS || st->step < 0 || st->step > st->max_steps || adam_t < 0 ||
        adam_t > st->step) {
        rg_errf(err, err_len, "bad training state: batch %d (1..%d), T %d (1..maxT %d), step %lld "
                "of %d (at most %d), AdamW step %d (0..step)", st->B, RG_MAX_BATCH, st->T,
                cfg->maxT, (long long)st->step, st->max_steps, RG_MAX_STEPS, adam_t);
        return -1;
    }
    return rg_optim_check(&st->optim, err, err_len);
}

/* Bytes of a file of np parameters and V vocabulary bytes, overflow-checked: header, vocabulary,
 * parameter count, the arrays (weights, and both moments in a checkpoint: 3 x 4 x np), checksum. */
static int expected_size(size_t np, int V, int weights_only, uint64_t *out) {
    uint64_t body;
    return __builtin_mul_overflow((uint64_t)np, (uint64_t)(weights_only ? 4 : 12), &body) ||
                   __builtin_add_overflow(body, (uint64_t)HEADER_BYTES + (uint64_t)V + 16, out)
               ? -1
               : 0;
}

/* Checks the header's fields and the file's size against each other. Sets *np. Returns 0 or -1. */
static int check_header(const char *path, uint64_t size, const rg_model_config *cfg,
                        const rg_train_state *st, int adam_t, int weights_only, size_t *np,
                        char *err, size_t err_len) {
    char why[RG_ERR_LEN];
    if (rg_train_state_check(st, cfg, adam_t, why, sizeof why) != 0) {
        rg_errf(err, err_len, "checkpoint %s has inconsistent sizes: %s", path, why);
        return -1;
    }
    *np = rg_model_num_params(cfg);
    uint64_t expect;
    if (expected_size(*np, cfg->V, weights_only, &expect) != 0) {
        rg_errf(err, err_len, "checkpoint %s has inconsistent sizes: %zu parameters overflow the "
                "file size", path, *np);
        return -1;
    }
    if (size != expect) {
        rg_errf(err, err_len, "checkpoint %s %s: %llu bytes, expected %llu", path,
                size < expect ? "is truncated" : "has inconsistent sizes",
                (unsigned long long)size, (unsigned long long)expect);
        return -1;
    }
    return 0;
}

/* Reads everything after the header into vocab and a new m (config cfg), checking the checksum
 * that h has begun over the header; an export has no moments (they stay zero). Returns 0 or -1 (m
 * may then need rg_model_free). */
static int read_body(FILE *f, const char *path, const rg_model_config *cfg, size_t np, uint64_t seed,
                     int weights_only, uint64_t h, rg_model *m, rg_vocab *vocab, char *err,
                     size_t err_len) {
    vocab->V = cfg->V;
    uint64_t file_np = 0;
    if (read_hashed(f, vocab->bytes, (size_t)cfg->V, &h) != 0 || read_hashed(f, &file_np, 8, &h) != 0) {
        rg_errf(err, err_len, "checkpoint %s is truncated", path);
        return -1;
    }
    if (rg_vocab_index(vocab) != 0) {
        rg_errf(err, err_len, "checkpoint %s has a corrupt vocabulary (bytes not strictly "
                "increasing)", path);
        return -1;
    }
    if (file_np != (uint64_t)np) {
        rg_errf(err, err_len, "checkpoint %s has inconsistent sizes: %llu parameters, the config "
                "has %zu", path, (unsigned long long)file_np, np);
        return -1;
    }
    char why[RG_ERR_LEN];
    if (rg_model_init(m, cfg, seed, why, sizeof why) != 0) {
        rg_errf(err, err_len, "cannot load checkpoint %s: %s", path, why);
        return -1;
    }
    size_t n = np * sizeof(float); /* no overflow: expected_size computed 4 * np */
    uint64_t stored = 0;
    if (read_hashed(f, m->params_memory, n, &h) != 0 ||
        (!weights_only &&
         (read_hashed(f, m->m_memory, n, &h) != 0 || read_hashed(f, m->v_memory, n, &h) != 0)) ||
        fread(&stored, 1, 8, f) != 8) {
        rg_errf(err, err_len, "checkpoint %s is truncated", path);
        return -1;
    }
    if (stored != h) {
        rg_errf(err, err_len, "checkpoint %s is corrupt: checksum mismatch (stored %016llx, "
                "computed %016llx)", path, (unsigned long long)stored, (unsigned long long)h);
        return -1;
    }
    return 0;
}

int rg_checkpoint_load(const char *path, rg_model *m, rg_vocab *vocab, rg_train_state *st,
                       char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    struct stat sb;
    int fd = rg_open_regular(path, "checkpoint", &sb, err, err_len);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        rg_errf(err, err_len, "cannot open checkpoint %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t hdr[HEADER_BYTES];
    rg_model_config cfg;
    int adam_t = 0, weights_only = 0;
    size_t np = 0;
    int rc = read_header(f, path, size, hdr, &weights_only, err, err_len);
    if (rc == 0) {
        header_parse(hdr, &cfg, st, &adam_t);
        rc = check_header(path, size, &cfg, st, adam_t, weights_only, &np, err, err_len);
    }
    if (rc == 0)
        rc = read_body(f, path, &cfg, np, st->seed, weights_only,
                       rg_fnv1a64(RG_FNV1A64_INIT, hdr, sizeof hdr), m, vocab, err, err_len);
    fclose(f);
    if (rc != 0) {
        rg_model_free(m);
        memset(m, 0, sizeof *m);
        return -1;
    }
    m->adam_t = adam_t;
    st->weights_only = weights_only;
    return 0;
}
