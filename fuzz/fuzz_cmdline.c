/* libFuzzer target: the command-line parser (rg_cli_parse over getopt_long), the value validators
 * of app/cmdline.h and the backend options (rg_backend_args_take), on an argv made of the input's
 * NUL-separated pieces. Every command line must be taken or refused with one line in c->err. */
#include <stdlib.h>
#include <string.h>

#include "app/backend_args.h"
#include "app/cmdline.h"

enum { OPT_INT = RG_CLI_FIRST_ID, OPT_LIST, OPT_U64, OPT_DOUBLE, OPT_FLOAT, OPT_PRESET, OPT_STRING };

static const struct option options[] = {
    RG_BACKEND_OPTIONS,
    {"iters", required_argument, NULL, OPT_INT},
    {"threads-list", required_argument, NULL, OPT_LIST},
    {"seed", required_argument, NULL, OPT_U64},
    {"timeout", required_argument, NULL, OPT_DOUBLE},
    {"lr", required_argument, NULL, OPT_FLOAT},
    {"preset", required_argument, NULL, OPT_PRESET},
    {"data", required_argument, NULL, OPT_STRING},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

typedef struct parsed {
    rg_backend_args ba;
    int iters, list[8], count;
    uint64_t seed;
    double timeout;
    float lr;
    const rg_preset *preset;
    const char *data;
} parsed;

static int take(rg_cli *c, int id, const char *v, void *user) {
    parsed *p = user;
    switch (id) {
    case OPT_INT: return rg_cli_int(c, v, 1, 1000000000L, &p->iters);
    case OPT_LIST: return rg_cli_int_list(c, v, 1, 4096, p->list, 8, &p->count);
    case OPT_U64: return rg_cli_u64(c, v, &p->seed);
    case OPT_DOUBLE: return rg_cli_double(c, v, 0.0, 1, 1e6, &p->timeout);
    case OPT_FLOAT: return rg_cli_float(c, v, 0.0, 1, 10.0, &p->lr);
    case OPT_PRESET: return rg_cli_preset(c, v, &p->preset);
    case OPT_STRING: return rg_cli_string(c, v, &p->data);
    case RG_CLI_ARG: return rg_cli_error(c, "unexpected argument '%s'", v);
    default: return rg_backend_args_take(c, &p->ba, id, v);
    }
}

static void usage(FILE *f) { (void)f; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX_ARGS = 32 };
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_ARGS + 2] = {"fuzz"};
    int argc = 1;
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; argc++) {
        argv[argc] = text + i;
        i += strlen(text + i) + 1;
    }
    argv[argc] = NULL;
    parsed p;
    memset(&p, 0, sizeof p);
    rg_backend_args_init(&p.ba);
    int rc = rg_cli_parse("fuzz", options, argc, argv, take, &p, usage);
    if (rc != 0 && rc != 1 && rc != 2) abort();
    if (rc == 0 && (p.ba.threads < 1 || p.ba.threads > RG_MAX_THREADS)) abort();
    free(text);
    return 0;
}
