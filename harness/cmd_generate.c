/* `randygpt generate`: text from a checkpoint, continuing a prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/backend_args.h"
#include "app/cmdline.h"
#include "app/textgen.h"
#include "commands.h"
#include "randygpt/checkpoint.h"
#include "randygpt/text.h"

#define CMD "randygpt generate"

typedef struct gen_opts {
    rg_backend_args ba;
    const char *checkpoint, *prompt;
    int tokens;
    float temperature, top_p;
    uint64_t seed;
} gen_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt generate --checkpoint FILE [OPTIONS]\n"
            "Generates text with a trained model, continuing a prompt.\n\n"
            "options:\n"
            "  --checkpoint FILE        the model (written by 'randygpt train'); required\n"
            "  --prompt TEXT            text to continue; every byte must be in the model's\n"
            "                           vocabulary (default: a newline, or the first byte of the\n"
            "                           vocabulary when it has none)\n"
            "  --tokens N               bytes to generate (default 200)\n"
            "  --temperature T          sampling temperature, 0 <= T <= 100; 0 is greedy decoding\n"
            "                           (always the most likely byte) (default %.2g)\n"
            "  --top-p P                nucleus: sample among the most likely bytes whose\n"
            "                           probability reaches P, 0 < P <= 1 (default %.2g)\n"
            "  --seed S                 seed of the sampling (default 1337)\n",
            RG_GEN_TEMPERATURE, RG_GEN_TOP_P);
    rg_backend_args_help(f);
    fprintf(f, "  --help                   this help\n");
}

enum { OPT_CHECKPOINT = RG_CLI_FIRST_ID, OPT_PROMPT, OPT_TOKENS, OPT_TEMPERATURE, OPT_TOP_P, OPT_SEED };
static const struct option options[] = {
    RG_BACKEND_OPTIONS,
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"prompt", required_argument, NULL, OPT_PROMPT},
    {"tokens", required_argument, NULL, OPT_TOKENS},
    {"temperature", required_argument, NULL, OPT_TEMPERATURE},
    {"top-p", required_argument, NULL, OPT_TOP_P},
    {"seed", required_argument, NULL, OPT_SEED},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

static int take_option(rg_cli *c, int id, const char *v, void *user) {
    gen_opts *o = user;
    switch (id) {
    case OPT_CHECKPOINT: return rg_cli_string(c, v, &o->checkpoint);
    case OPT_PROMPT: o->prompt = v; return 0; /* may be empty: no prompt */
    case OPT_TOKENS: return rg_cli_int(c, v, 1, 100000000L, &o->tokens);
    case OPT_TEMPERATURE: return rg_cli_float(c, v, 0, 0, 100, &o->temperature);
    case OPT_TOP_P: return rg_cli_float(c, v, 0, 1, 1, &o->top_p);
    case OPT_SEED: return rg_cli_u64(c, v, &o->seed);
    default: return rg_backend_args_take(c, &o->ba, id, v);
    }
}

/* Parses argv into o. Returns 0, 1 after --help, or 2 after printing one error line. */
static int parse_args(gen_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    rg_backend_args_init(&o->ba);
    o->tokens = 200;
    o->temperature = RG_GEN_TEMPERATURE;
    o->top_p = RG_GEN_TOP_P;
    o->seed = 1337;
    int rc = rg_cli_parse(CMD, options, argc, argv, take_option, o, usage);
    if (rc) return rc;
    if (!o->checkpoint) return rg_cli_usage_error(CMD, "--checkpoint FILE is required");
    return 0;
}

int rg_cmd_generate(int argc, char **argv) {
    gen_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;

    char err[RG_ERR_LEN];
    rg_model model;
    rg_vocab vocab;
    rg_train_state st;
    if (rg_checkpoint_load(o.checkpoint, &model, &vocab, &st, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    int status = 1;
    int32_t *context = NULL;
    size_t len = o.prompt ? strlen(o.prompt) : 0;
    if (len == 0) {
        /* no prompt: start from a newline, as after the end of a text */
        context = malloc(sizeof *context);
        if (!context) goto oom;
        context[0] = vocab.token['\n'] >= 0 ? vocab.token['\n'] : 0;
        len = 1;
    } else {
        if (len > 100000000) {
            fprintf(stderr, CMD ": --prompt is too long (%zu bytes)\n", len);
            status = 2;
            goto done;
        }
        context = malloc(len * sizeof *context);
        if (!context) goto oom;
        if (rg_encode(&vocab, (const uint8_t *)o.prompt, len, context, err, sizeof err) != 0) {
            fprintf(stderr, CMD ": %s\n", err);
            status = 2;
            goto done;
        }
    }

    rg_plugin plugin;
    rg_ops ops;
    if (rg_backend_args_open(&o.ba, &plugin, &ops, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    rg_rng rng;
    rg_rng_seed(&rng, o.seed);
    if (o.prompt) fputs(o.prompt, stdout);
    status = rg_generate(&model, &ops, &vocab, context, (int)len, o.tokens, o.temperature, o.top_p,
                         &rng, stdout, err, sizeof err) == 0 ? 0 : 1;
    if (status) fprintf(stderr, CMD ": %s\n", err);
    else fputc('\n', stdout);
    rg_ops_destroy(&ops);
    rg_plugin_close(&plugin);
    goto done;
oom:
    fprintf(stderr, CMD ": out of memory\n");
done:
    free(context);
    rg_model_free(&model);
    return status;
}
