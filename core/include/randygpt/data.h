/*
 * Training data: a byte-level tokenizer and the batches drawn from a text corpus.
 *
 * The vocabulary is the sorted set of distinct bytes of the whole corpus; token i is the i-th byte
 * of that set. The corpus is split into the first 90% (training) and the last 10% (validation).
 * Training windows of T+1 bytes start at positions drawn with rg_rng; validation windows are a
 * fixed, evenly spaced set, so a validation loss is comparable across steps and runs.
 */
#ifndef RANDYGPT_DATA_H
#define RANDYGPT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where the default corpus (Debian's `fortunes` package) lives. */
#define RG_FORTUNES_DIR "/usr/share/games/fortunes"
/* The largest corpus read (the sum of the files, for the fortune folder): 1 GiB. Larger files, and
 * anything but a regular file (a device such as /dev/zero, a FIFO), are refused before reading. */
#define RG_DATA_MAX_BYTES (1 << 30)
/* Validation loss is averaged over at most this many batches. */
#define RG_VAL_MAX_BATCHES 8

/* Byte-level vocabulary. */
typedef struct rg_vocab {
    int V;                /* number of tokens, 1..256 */
    uint8_t bytes[256];   /* (V) the byte of each token, strictly increasing */
    int16_t token[256];   /* token of each byte value, -1 when the byte is not in the vocabulary */
} rg_vocab;

/* Builds the vocabulary of text (n bytes). */
void rg_vocab_build(rg_vocab *vocab, const uint8_t *text, size_t n);
/* Rebuilds token[] from V and bytes[] (after reading them from a file). Returns 0, or -1 when
 * bytes[] is not strictly increasing or V is out of 1..256. */
int rg_vocab_index(rg_vocab *vocab);
/* 1 when both hold the same bytes. */
int rg_vocab_equal(const rg_vocab *a, const rg_vocab *b);

typedef struct rg_data {
    uint8_t *text;       /* (len) the corpus as read */
    size_t len;
    int32_t *tokens;     /* (len) token ids of text */
    rg_vocab vocab;
    size_t split;        /* training is tokens[0, split), validation tokens[split, len) */
} rg_data;

/* Reads a text file. Returns 0, or -1 with one line in err (missing, not a regular file, over
 * RG_DATA_MAX_BYTES, unreadable, empty). */
int rg_data_load_file(rg_data *d, const char *path, char *err, size_t err_len);
/* Reads the English fortune files of dir (RG_FORTUNES_DIR when NULL): the regular files without
 * an extension, in sorted name order, dropping the "%" separator lines. Returns 0, or -1 with one
 * line in err (package missing: says to install it or pass --data). */
int rg_data_load_fortunes(rg_data *d, const char *dir, char *err, size_t err_len);
/* Takes a copy of n bytes of text. Returns 0, or -1 with one line in err (empty). */
int rg_data_from_memory(rg_data *d, const uint8_t *text, size_t n, char *err, size_t err_len);
void rg_data_free(rg_data *d);

/* Checks that both splits hold at least one window of T+1 bytes. Returns 0, or -1 with one line in
 * err: "corpus too short for block size T: need at least ... bytes". */
int rg_data_check_block(const rg_data *d, int T, char *err, size_t err_len);

/* inputs, targets are (B,T): B training windows at positions drawn from rng; targets are the
 * inputs shifted by one. Needs rg_data_check_block(d, T) == 0. */
void rg_data_train_batch(const rg_data *d, rg_rng *rng, int B, int T, int32_t *inputs,
                         int32_t *targets);
/* Number of validation batches of (B,T): up to RG_VAL_MAX_BATCHES, at least 1. */
int rg_data_val_batches(const rg_data *d, int B, int T);
/* inputs, targets are (B,T): validation batch `index` of rg_data_val_batches(d, B, T), whose
 * windows are evenly spaced over the validation split. */
void rg_data_val_batch(const rg_data *d, int index, int B, int T, int32_t *inputs,
                       int32_t *targets);
/* inputs, targets are (B,T): batch `index` of the same count, its windows evenly spaced over the
 * training split, so that a training loss is measured like the validation one (same number of
 * fixed windows, drawn without touching the training stream). */
void rg_data_held_train_batch(const rg_data *d, int index, int B, int T, int32_t *inputs,
                              int32_t *targets);

#ifdef __cplusplus
}
#endif

#endif /* RANDYGPT_DATA_H */
