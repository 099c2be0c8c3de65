/* `randygpt export`: the weights-only file of a checkpoint, for `generate` (no optimizer state). */
#include <stdio.h>
#include <string.h>

#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/checkpoint.h"
#include "randygpt/text.h"

#define CMD "randygpt export"

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt export CHECKPOINT OUT\n"
            "Writes OUT: the weights, vocabulary and config of CHECKPOINT without its AdamW\n"
            "moments (about a third of the size), which 'randygpt generate --checkpoint OUT'\n"
            "reads; training cannot resume from it. Layout: docs/checkpoint-format.md.\n\n"
            "options:\n"
            "  --help                   this help\n");
}

int rg_cmd_export(int argc, char **argv) {
    const char *files[2] = {NULL, NULL};
    int nfiles = 0;
    char err[RG_ERR_LEN];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            rg_errf(err, sizeof err, "unknown option '%s'", a);
            return rg_cli_usage_error(CMD, err);
        }
        if (nfiles == 2) {
            rg_errf(err, sizeof err, "unexpected argument '%s'", a);
            return rg_cli_usage_error(CMD, err);
        }
        files[nfiles++] = a;
    }
    if (nfiles < 2) return rg_cli_usage_error(CMD, "needs CHECKPOINT and OUT");
    if (!strcmp(files[0], files[1]))
        return rg_cli_usage_error(CMD, "OUT must differ from CHECKPOINT");

    rg_model model;
    rg_vocab vocab;
    rg_train_state st;
    if (rg_checkpoint_load(files[0], &model, &vocab, &st, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    int status = rg_checkpoint_export(files[1], &model, &vocab, &st, err, sizeof err) == 0 ? 0 : 1;
    if (status) fprintf(stderr, CMD ": %s\n", err);
    else
        printf("%s: weights of %s (step %lld, %zu parameters, V=%d)\n", files[1], files[0],
               (long long)st.step, model.num_params, vocab.V);
    rg_model_free(&model);
    return status;
}
