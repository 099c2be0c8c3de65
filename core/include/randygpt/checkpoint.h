/*
 * Checkpoints: everything a run needs to continue exactly where it stopped (model config, vocabulary,
 * weights, AdamW moments, step, RNG states, training and optimizer settings), in one little-endian
 * file that ends with an FNV-1a 64 checksum. The layout is documented field by field in
 * docs/checkpoint-format.md.
 *
 * Saving is atomic: the file is written to a temporary file in the same directory, flushed, synced
 * and renamed over the old one, so a failed save leaves the previous checkpoint as it was. The
 * temporary file is "PATH.tmp.PID"; one left by a save that was killed (its PID gone) is removed by
 * the next save of PATH.
 */
#ifndef RANDYGPT_CHECKPOINT_H
#define RANDYGPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/data.h"
#include "randygpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RG_CKPT_MAGIC "RGPTCKPT"  /* 8 bytes, no terminator in the file */
#define RG_WEIGHTS_MAGIC "RGPTWGHT" /* a weights-only export: no AdamW moments */
#define RG_CKPT_VERSION 1u
#define RG_CKPT_PRESET_LEN 16     /* preset name field, NUL-padded */

/* The training state saved beside the model. */
typedef struct rg_train_state {
    char preset[RG_CKPT_PRESET_LEN];  /* preset the run started from ("" when none), NUL-terminated */
    int B, T;                         /* training batch and sequence length */
    int max_steps;                    /* steps the learning-rate schedule is planned for (--iters) */
    rg_optim_config optim;
    uint64_t seed;                    /* the run's --seed */
    int64_t step;                     /* training steps completed */
    uint64_t rng_data;                /* rg_rng state drawing the training windows */
    uint64_t rng_sample;              /* rg_rng state sampling text */
    int weights_only;                 /* set by the loader: the file is an export (no moments) */
} rg_train_state;

/* Whether path may be written as a checkpoint: it is an empty regular file or a checkpoint or
 * export (a device, a FIFO, a directory or any other file with content is refused), or absent with
 * a valid name in a folder this process may write in; and it is not the same file as protect (the
 * corpus; NULL: none).
 * Returns 0, or -1 with one line in err. */
int rg_checkpoint_check_path(const char *path, const char *protect, char *err, size_t err_len);

/* 1 when the file at path starts with RG_CKPT_MAGIC or RG_WEIGHTS_MAGIC, else 0. */
int rg_checkpoint_is_file(const char *path);

/* Writes m (config, weights, moments, adam_t), vocab and st to path, atomically, after
 * rg_checkpoint_check_path(path, NULL). Returns 0, or -1 with one line in err; on failure any
 * earlier file at path is untouched. */
int rg_checkpoint_save(const char *path, const rg_model *m, const rg_vocab *vocab,
                       const rg_train_state *st, char *err, size_t err_len);

/* Writes the weights-only export of m to path, atomically: the checkpoint without the AdamW moments
 * (magic RG_WEIGHTS_MAGIC), enough for generation but not to resume. Returns 0, or -1 with one line
 * in err. */
int rg_checkpoint_export(const char *path, const rg_model *m, const rg_vocab *vocab,
                         const rg_train_state *st, char *err, size_t err_len);

/* Reads path, a checkpoint or a weights-only export: initialises m from the file's config (free it with rg_model_free; no activations
 * yet), fills its weights, moments (zero in an export) and adam_t, and vocab and st (st->weights_only
 * says which kind the file was). Returns 0, or -1 with one line in err (missing, not a regular
 * file, truncated, not a checkpoint, other format version, inconsistent sizes or settings out of
 * range, checksum mismatch); on failure m is left freed. It never blocks on a FIFO and never
 * allocates from a size it has not bounded. */
int rg_checkpoint_load(const char *path, rg_model *m, rg_vocab *vocab, rg_train_state *st,
                       char *err, size_t err_len);

/* Validates a training state read from a checkpoint against its model config: the config itself
 * (rg_model_config_check), batch 1..RG_MAX_BATCH, T 1..maxT, 0 <= step <= max_steps <= RG_MAX_STEPS,
 * 0 <= adam_t <= step, and the optimizer (rg_optim_check). rg_checkpoint_load runs it, so every
 * command that loads a checkpoint (train --resume, generate) is covered. Returns 0, or -1 with one
 * line in err. */
int rg_train_state_check(const rg_train_state *st, const rg_model_config *cfg, int adam_t,
                         char *err, size_t err_len);

/* FNV-1a 64 of n bytes, continuing from h (start with RG_FNV1A64_INIT). */
#define RG_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t rg_fnv1a64(uint64_t h, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_CHECKPOINT_H */
