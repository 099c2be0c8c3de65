/* libFuzzer target: the checkpoint reader (rg_checkpoint_load) on any bytes. The first input byte
 * chooses whether the file's checksum is recomputed over the rest, so that mutated headers and
 * bodies get past the checksum and reach the size checks, the allocation and the full read. Any
 * input must be refused with a one-line error or loaded; never a crash, a leak or an overflow. */
#include <string.h>

#include "fuzz_util.h"
#include "randygpt/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    if (!path[0]) fuzz_tmp_path(path, sizeof path, ".ckpt");
    if (size < 1) return 0;
    int reseal = data[0] & 1;
    data++, size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (reseal && size >= 8) {
        uint64_t h = rg_fnv1a64(RG_FNV1A64_INIT, buf, size - 8);
        memcpy(buf + size - 8, &h, 8);
    }
    fuzz_write_file(path, buf, size);
    free(buf);

    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[1024];
    if (rg_checkpoint_load(path, &m, &v, &st, err, sizeof err) == 0) {
        /* a loaded model must be usable as loaded: sizes consistent with its config */
        if (m.num_params != rg_model_num_params(&m.cfg) || v.V != m.cfg.V || st.T > m.cfg.maxT)
            abort();
        rg_model_free(&m);
    } else if (!err[0] || strchr(err, '\n')) {
        abort(); /* a refusal is exactly one line */
    }
    unlink(path);
    return 0;
}
