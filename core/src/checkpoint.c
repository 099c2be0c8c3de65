/* Checkpoint writing and reading; the layout is in docs/checkpoint-format.md. */
#define _POSIX_C_SOURCE 200809L
#include "randygpt/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
static uint32_t get_u32(cursor *c) { uint32_t v; get(c, &v, 4); return v; }
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
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes a checkpoint, or with weights_only the same file without the AdamW moments. */
static int save_file(const char *path, const rg_model *m, const rg_vocab *vocab,
                     const rg_train_state *st, int weights_only, char *err, size_t err_len) {
    const char *what = weights_only ? "weights" : "checkpoint";
    if (vocab->V != m->cfg.V) {
        snprintf(err, err_len, "cannot save %s %s: vocabulary has %d bytes, model V is %d", what,
                 path, vocab->V, m->cfg.V);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, err_len, "cannot save %s %s: cannot create %s: %s", what, path, tmp,
                 strerror(errno));
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
        snprintf(err, err_len, "cannot save %s %s: %s", what, path,
                 saved_errno ? strerror(saved_errno) : "write failed");
        return -1;
    }
    if (sync_dir_of(path) != 0) {
        snprintf(err, err_len, "%s %s written, but syncing its directory failed: %s", what, path,
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

int rg_checkpoint_load(const char *path, rg_model *m, rg_vocab *vocab, rg_train_state *st,
                       char *err, size_t err_len) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot open checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_len, "checkpoint %s is not a regular file", path);
        fclose(f);
        return -1;
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t hdr[HEADER_BYTES];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    int weights_only = got >= 8 && memcmp(hdr, RG_WEIGHTS_MAGIC, 8) == 0;
    if (got < 8 && memcmp(hdr, RG_CKPT_MAGIC, got) == 0) {
        snprintf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                 (unsigned long long)size);
        goto fail;
    }
    if (!weights_only && memcmp(hdr, RG_CKPT_MAGIC, 8) != 0) {
        snprintf(err, err_len, "%s is not a randyGPT checkpoint (bad magic)", path);
        goto fail;
    }
    if (got < 12) {
        snprintf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                 (unsigned long long)size);
        goto fail;
    }
    cursor c = {hdr + 8};
    uint32_t version = get_u32(&c);
    if (version != RG_CKPT_VERSION) {
        snprintf(err, err_len, "checkpoint %s has format version %u; this build reads version %u",
                 path, version, RG_CKPT_VERSION);
        goto fail;
    }
    if (got < sizeof hdr) {
        snprintf(err, err_len, "checkpoint %s is truncated: %llu bytes", path,
                 (unsigned long long)size);
        goto fail;
    }
    rg_model_config cfg;
    cfg.V = get_i32(&c);
    cfg.maxT = get_i32(&c);
    cfg.C = get_i32(&c);
    cfg.NH = get_i32(&c);
    cfg.L = get_i32(&c);
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
    int adam_t = get_i32(&c);

    char cerr[256];
    if (cfg.V < 1 || cfg.V > 256 || rg_model_config_check(&cfg, cerr, sizeof cerr) != 0) {
        snprintf(err, err_len, "checkpoint %s has inconsistent sizes: bad model config (V=%d maxT=%d "
                 "C=%d NH=%d L=%d)", path, cfg.V, cfg.maxT, cfg.C, cfg.NH, cfg.L);
        goto fail;
    }
    if (st->B < 1 || st->T < 1 || st->T > cfg.maxT || st->max_steps < 1 || st->step < 0 ||
        adam_t < 0) {
        snprintf(err, err_len, "checkpoint %s has inconsistent sizes: batch %d, T %d (maxT %d), "
                 "steps %lld of %d", path, st->B, st->T, cfg.maxT, (long long)st->step,
                 st->max_steps);
        goto fail;
    }
    uint64_t np = (uint64_t)rg_model_num_params(&cfg);
    uint64_t arrays = weights_only ? 1 : 3;  /* params, and the two moments in a checkpoint */
    uint64_t expect = HEADER_BYTES + (uint64_t)cfg.V + 8 + arrays * 4 * np + 8;
    if (size < expect) {
        snprintf(err, err_len, "checkpoint %s is truncated: %llu bytes, expected %llu", path,
                 (unsigned long long)size, (unsigned long long)expect);
        goto fail;
    }
    if (size > expect) {
        snprintf(err, err_len, "checkpoint %s has inconsistent sizes: %llu bytes, expected %llu",
                 path, (unsigned long long)size, (unsigned long long)expect);
        goto fail;
    }

    uint64_t h = rg_fnv1a64(RG_FNV1A64_INIT, hdr, sizeof hdr);
    vocab->V = cfg.V;
    uint64_t file_np = 0;
    if (read_hashed(f, vocab->bytes, (size_t)cfg.V, &h) != 0 || read_hashed(f, &file_np, 8, &h) != 0) {
        snprintf(err, err_len, "checkpoint %s is truncated", path);
        goto fail;
    }
    if (rg_vocab_index(vocab) != 0) {
        snprintf(err, err_len, "checkpoint %s has a corrupt vocabulary (bytes not strictly "
                 "increasing)", path);
        goto fail;
    }
    if (file_np != np) {
        snprintf(err, err_len, "checkpoint %s has inconsistent sizes: %llu parameters, the config "
                 "has %llu", path, (unsigned long long)file_np, (unsigned long long)np);
        goto fail;
    }
    if (rg_model_init(m, &cfg, st->seed, cerr, sizeof cerr) != 0) {
        snprintf(err, err_len, "cannot load checkpoint %s: %s", path, cerr);
        goto fail;
    }
    size_t n = (size_t)np * sizeof(float);
    uint64_t stored = 0;
    if (read_hashed(f, m->params_memory, n, &h) != 0 ||
        (!weights_only &&
         (read_hashed(f, m->m_memory, n, &h) != 0 || read_hashed(f, m->v_memory, n, &h) != 0)) ||
        fread(&stored, 1, 8, f) != 8) {
        snprintf(err, err_len, "checkpoint %s is truncated", path);
        goto fail;
    }
    if (stored != h) {
        snprintf(err, err_len, "checkpoint %s is corrupt: checksum mismatch (stored %016llx, "
                 "computed %016llx)", path, (unsigned long long)stored, (unsigned long long)h);
        goto fail;
    }
    m->adam_t = adam_t;
    st->weights_only = weights_only;
    fclose(f);
    return 0;
fail:
    fclose(f);
    rg_model_free(m);
    memset(m, 0, sizeof *m);
    return -1;
}
