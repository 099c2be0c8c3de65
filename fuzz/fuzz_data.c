/* libFuzzer target: the corpus readers on any bytes, as a --data file (rg_data_load_file) or as one
 * fortune file in a folder (rg_data_load_fortunes, which drops the "%" lines), then the vocabulary,
 * the block check and the training and validation windows of what was read. The first byte picks
 * the reader and the block size. */
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "randygpt/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char file[512], dir[512], fortune[600];
    if (!file[0]) {
        fuzz_tmp_path(file, sizeof file, ".txt");
        fuzz_tmp_path(dir, sizeof dir, ".fortunes");
        snprintf(fortune, sizeof fortune, "%s/fortunes", dir);
        mkdir(dir, 0700);
    }
    if (size < 1) return 0;
    int fortunes = data[0] & 1, T = 1 + (data[0] >> 1) % 16;
    data++, size--;
    fuzz_write_file(fortunes ? fortune : file, data, size);

    rg_data d;
    char err[1024];
    int rc = fortunes ? rg_data_load_fortunes(&d, dir, err, sizeof err)
                      : rg_data_load_file(&d, file, err, sizeof err);
    if (rc != 0) {
        if (!err[0] || strchr(err, '\n')) abort();
        return 0;
    }
    for (size_t i = 0; i < d.len; i++)
        if (d.tokens[i] < 0 || d.tokens[i] >= d.vocab.V || d.vocab.bytes[d.tokens[i]] != d.text[i]) abort();
    if (rg_data_check_block(&d, T, err, sizeof err) == 0) {
        enum { B = 2 };
        int32_t in[B * 16], tg[B * 16];
        rg_rng rng;
        rg_rng_seed(&rng, size);
        rg_data_train_batch(&d, &rng, B, T, in, tg);
        for (int k = 0; k < rg_data_val_batches(&d, B, T); k++) rg_data_val_batch(&d, k, B, T, in, tg);
    }
    rg_data_free(&d);
    return 0;
}
