/* `randygpt train`: trains randyGPT on a text corpus with a chosen backend, evaluates, checkpoints,
 * resumes exactly, and prints a sample at the end. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/backend_args.h"
#include "app/backend_auto.h"
#include "app/cmdline.h"
#include "app/stop.h"
#include "app/textgen.h"
#include "app/train_parts.h"
#include "commands.h"
#include "randygpt/checkpoint.h"
#include "randygpt/data.h"
#include "randygpt/model.h"
#include "randygpt/replicas.h"
#include "ranks/ranks.h"

#define CMD "randygpt train"
/* The default schedule, chosen from a sweep by steps (results/intel-xeon-processor-2c/
 * schedule-20261201/summary.md): the small preset reaches validation loss 1.76 in 3000 steps at
 * lr 2e-3, about 4 minutes at 2 threads on the Intel Xeon; the warm-up stays rg_optim_default's. */
#define DEFAULT_ITERS 3000
#define DEFAULT_LR 2e-3f
#define DEFAULT_EVAL_EVERY 200
#define PLAIN_LINES 50       /* without a terminal, about this many progress lines in a run */
#define BAR_WIDTH 24         /* characters of the progress bar on a terminal */
#define EVAL_SAMPLE_BYTES 120 /* length of the sample at an evaluation */

typedef struct train_opts {
    rg_backend_args ba;
    const char *preset, *data, *checkpoint, *resume, *log;
    int iters, batch, warmup, eval_every, sample_tokens, sample_every, stop_at, replicas;
    int n_embd, n_head, n_layer, block_size;  /* the model's shape: 0 takes the preset's */
    float lr;
    uint64_t seed;
    /* which options were given: a resumed run refuses ones that contradict its checkpoint */
    int checkpoint_given, preset_given, iters_given, batch_given, lr_given, warmup_given, seed_given;
} train_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: randygpt train [OPTIONS]\n"
            "Trains randyGPT on a text corpus (byte-level) and saves checkpoints.\n\n"
            "options:\n");
    rg_backend_args_help(f);
    fprintf(f,
            "  --preset NAME            tiny, small, medium or large (default small)\n"
            "  --n-embd C               channels, 1..%d (default: the preset's)\n"
            "  --n-head NH              attention heads, a divisor of C (default: the preset's)\n"
            "  --n-layer L              layers, 1..%d (default: the preset's)\n"
            "  --block-size T           context length, 1..%d (default: the preset's)\n"
            "  --data FILE              training text (default: the English fortune files in\n"
            "                           %s)\n"
            "  --iters N                training steps (default %d)\n"
            "  --batch B                sequences per step (default: the preset's)\n"
            "  --lr X                   peak learning rate (default %g)\n"
            "  --warmup N               linear warm-up steps (default 100)\n"
            "  --seed S                 seed of the weights and the batches (default 1337)\n"
            "  --eval-every N           evaluation and checkpoint every N steps (default %d): train\n"
            "                           and validation loss, each the mean over the same number of\n"
            "                           fixed batches (held training windows, validation windows)\n"
            "  --checkpoint FILE        checkpoint written at each evaluation and at the end\n"
            "                           (default randygpt.ckpt, or the --resume FILE); the best\n"
            "                           validation loss so far is kept beside it in X.best.ckpt\n"
            "                           for X.ckpt (FILE.best for a name without .ckpt)\n"
            "  --resume FILE            continue the run saved in FILE: its config, optimizer state,\n"
            "                           step and data position (same losses as an unbroken run)\n"
            "  --stop-at STEP           stop after STEP steps with a checkpoint, the schedule still\n"
            "                           planned for --iters (split a run into parts)\n"
            "  --log FILE               one JSON object per step: step, loss, train_loss and\n"
            "                           val_loss (when evaluated), lr, ms, tok_per_s, wall_s\n"
            "  --sample-tokens N        bytes of text generated at the end (default 200, 0: none)\n"
            "  --sample-every N         a short sample at the evaluations every N steps (default:\n"
            "                           at each evaluation when stdout is a terminal, else none;\n"
            "                           0: none)\n"
            "  --replicas R             data parallelism: the batch split over R replicas on threads\n"
            "                           of their own, --threads / R threads each (default 1)\n"
            "  --help                   this help\n"
            "Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits with\n"
            "status 130 (143); a second one stops at once (a hung backend), keeping the\n"
            "checkpoints already saved.\n"
            "Under `mpirun -np P` (a build with MPI) the P processes train one model, each its\n"
            "share of the batch; rank 0 alone prints and writes the log, checkpoints and samples.\n",
            RG_MAX_CHANNELS, RG_MAX_LAYERS, RG_MAX_BLOCK, RG_FORTUNES_DIR, DEFAULT_ITERS,
            (double)DEFAULT_LR, DEFAULT_EVAL_EVERY);
}

/* The model shape of a new run: the preset's, with each size given as an option in its place. */
static rg_model_config shape_of(const train_opts *o, int V) {
    const rg_preset *p = rg_preset_find(o->preset);
    rg_model_config cfg = {V, o->block_size ? o->block_size : p->T, o->n_embd ? o->n_embd : p->C,
                           o->n_head ? o->n_head : p->NH, o->n_layer ? o->n_layer : p->L};
    return cfg;
}

static int shape_given(const train_opts *o) {
    return o->n_embd || o->n_head || o->n_layer || o->block_size;
}

/* The shape is checked before the corpus is read: C must be a multiple of NH, and the parameters
 * must fit in memory (the vocabulary at its largest). */
static int shape_check(const train_opts *o, char *err, size_t n) {
    rg_model_config cfg = shape_of(o, RG_MAX_VOCAB);
    if (cfg.C % cfg.NH != 0) {
        snprintf(err, n, "--n-embd %d is not a multiple of --n-head %d%s", cfg.C, cfg.NH,
                 o->n_embd && o->n_head ? "" : " (the preset's value for the one not given)");
        return -1;
    }
    char why[256];
    if (rg_model_config_check(&cfg, why, sizeof why) != 0) {
        snprintf(err, n, "model shape: %s", why);
        return -1;
    }
    return 0;
}

enum {
    OPT_PRESET = RG_CLI_FIRST_ID, OPT_DATA, OPT_ITERS, OPT_BATCH, OPT_LR, OPT_WARMUP, OPT_SEED,
    OPT_EVAL_EVERY, OPT_CHECKPOINT, OPT_RESUME, OPT_STOP_AT, OPT_LOG, OPT_SAMPLE_TOKENS,
    OPT_SAMPLE_EVERY, OPT_N_EMBD, OPT_N_HEAD, OPT_N_LAYER, OPT_BLOCK_SIZE, OPT_REPLICAS
};
static const struct option options[] = {
    RG_BACKEND_OPTIONS,
    {"preset", required_argument, NULL, OPT_PRESET},
    {"data", required_argument, NULL, OPT_DATA},
    {"iters", required_argument, NULL, OPT_ITERS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"stop-at", required_argument, NULL, OPT_STOP_AT},
    {"log", required_argument, NULL, OPT_LOG},
    {"sample-tokens", required_argument, NULL, OPT_SAMPLE_TOKENS},
    {"sample-every", required_argument, NULL, OPT_SAMPLE_EVERY},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"n-embd", required_argument, NULL, OPT_N_EMBD},
    {"n-head", required_argument, NULL, OPT_N_HEAD},
    {"n-layer", required_argument, NULL, OPT_N_LAYER},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    RG_CLI_HELP_OPTION,
    RG_CLI_END,
};

static int take_option(rg_cli *c, int id, const char *v, void *user) {
    train_opts *o = user;
    const rg_preset *p;
    switch (id) {
    case OPT_PRESET:
        o->preset_given = 1;
        if (rg_cli_preset(c, v, &p) != 0) return -1;
        o->preset = p->name;
        return 0;
    case OPT_DATA: return rg_cli_string(c, v, &o->data);
    case OPT_ITERS: o->iters_given = 1; return rg_cli_int(c, v, 1, 1000000000L, &o->iters);
    case OPT_BATCH: o->batch_given = 1; return rg_cli_int(c, v, 1, 1000000L, &o->batch);
    case OPT_LR: o->lr_given = 1; return rg_cli_float(c, v, 0, 1, 10, &o->lr);
    case OPT_WARMUP: o->warmup_given = 1; return rg_cli_int(c, v, 0, 1000000000L, &o->warmup);
    case OPT_SEED: o->seed_given = 1; return rg_cli_u64(c, v, &o->seed);
    case OPT_EVAL_EVERY: return rg_cli_int(c, v, 1, 1000000000L, &o->eval_every);
    case OPT_CHECKPOINT: o->checkpoint_given = 1; return rg_cli_string(c, v, &o->checkpoint);
    case OPT_RESUME: return rg_cli_string(c, v, &o->resume);
    case OPT_STOP_AT: return rg_cli_int(c, v, 1, 1000000000L, &o->stop_at);
    case OPT_LOG: return rg_cli_string(c, v, &o->log);
    case OPT_SAMPLE_TOKENS: return rg_cli_int(c, v, 0, 100000000L, &o->sample_tokens);
    case OPT_SAMPLE_EVERY: return rg_cli_int(c, v, 0, 1000000000L, &o->sample_every);
    case OPT_REPLICAS: return rg_cli_int(c, v, 1, RG_MAX_THREADS, &o->replicas);
    case OPT_N_EMBD: return rg_cli_int(c, v, 1, RG_MAX_CHANNELS, &o->n_embd);
    case OPT_N_HEAD: return rg_cli_int(c, v, 1, RG_MAX_CHANNELS, &o->n_head);
    case OPT_N_LAYER: return rg_cli_int(c, v, 1, RG_MAX_LAYERS, &o->n_layer);
    case OPT_BLOCK_SIZE: return rg_cli_int(c, v, 1, RG_MAX_BLOCK, &o->block_size);
    default: return rg_backend_args_take(c, &o->ba, id, v);
    }
}

/* Parses argv into o. Returns 0, 1 after --help, or 2 after printing one error line. */
static int parse_args(train_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    rg_backend_args_init(&o->ba);
    o->preset = "small";
    o->checkpoint = "randygpt.ckpt";
    o->iters = DEFAULT_ITERS;
    o->eval_every = DEFAULT_EVAL_EVERY;
    o->sample_tokens = 200;
    o->replicas = 1;
    o->sample_every = -1;  /* chosen once we know whether stdout is a terminal */
    o->seed = 1337;
    rg_optim_config def = rg_optim_default();
    o->lr = DEFAULT_LR;
    o->warmup = def.warmup_iters;
    int rc = rg_cli_parse(CMD, options, argc, argv, take_option, o, usage);
    if (rc) return rc;
    /* a resumed run goes on writing the checkpoint it came from */
    if (o->resume && !o->checkpoint_given) o->checkpoint = o->resume;
    char err[512];
    if (!o->resume && shape_check(o, err, sizeof err) != 0) return rg_cli_usage_error(CMD, err);
    return 0;
}

static double phys_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}


static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The validation loss of the best checkpoint a resumed run left at path, so that the resumed run
 * replaces it only with a better one; INFINITY when there is none (or it is of another corpus). */
static float best_val_of(const char *path, rg_ops *ops, const rg_data *d, int B, int T,
                         int32_t *in, int32_t *tg) {
    /* evaluated here, in this process alone: only rank 0 writes the best checkpoint */
    rg_gradsum alone = rg_gradsum_local();
    rg_dp dp;
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[1024];
    if (access(path, F_OK) != 0 || rg_checkpoint_load(path, &m, &v, &st, err, sizeof err) != 0)
        return INFINITY;
    float best = INFINITY;
    if (rg_vocab_equal(&v, &d->vocab) && m.cfg.maxT >= T &&
        rg_dp_init(&dp, &m, ops, 1, B, T, &alone, err, sizeof err) == 0) {
        rg_eval_losses ev;
        if (rg_eval_run(&dp, d, in, tg, &ev, err, sizeof err) == 0) best = ev.val;
        rg_dp_free(&dp);
    }
    rg_model_free(&m);
    return best;
}

/* Prints a short sample at an evaluation, drawn from a stream of its own (the seed and the step):
 * whether samples are shown changes nothing else in the run. */
static int eval_sample(rg_model *m, rg_ops *ops, const rg_vocab *v, uint64_t seed, long step,
                       char *err, size_t n) {
    rg_rng rng;
    rg_rng_seed(&rng, seed ^ 0x5eed5a3b1e000003ULL ^ ((uint64_t)step * 0x9e3779b97f4a7c15ULL));
    int32_t start = v->token['\n'] >= 0 ? v->token['\n'] : 0;
    printf("--- sample at step %ld ---\n", step);
    int rc = rg_generate(m, ops, v, &start, 1, EVAL_SAMPLE_BYTES, RG_GEN_TEMPERATURE, RG_GEN_TOP_P,
                         &rng, stdout, err, n);
    printf("\n---\n");
    return rc;
}

/* The run saved in o->resume: its model, state and streams; the options checked against it.
 * Returns 0, or the exit status after one line (2: an option or the corpus contradicts it). */
static int resume_run(train_opts *o, const rg_data *data, rg_model *model, rg_train_state *st,
                      rg_rng *rng_data, rg_rng *rng_sample) {
    char err[1024];
    rg_vocab vocab;
    if (rg_checkpoint_load(o->resume, model, &vocab, st, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    if (st->weights_only) {
        fprintf(stderr, CMD ": %s is a weights-only export (no optimizer state): resume from "
                "the checkpoint it was exported from\n", o->resume);
        return 2;
    }
    /* resume takes the checkpoint's config; an option that contradicts it is a usage error */
    const char *clash = NULL;
    char what[128] = "";
    if (o->preset_given && strcmp(o->preset, st->preset) != 0)
        clash = "--preset", snprintf(what, sizeof what, "preset '%s'", st->preset);
    else if (shape_given(o))
        clash = "--n-embd/--n-head/--n-layer/--block-size",
        snprintf(what, sizeof what, "C=%d NH=%d L=%d T=%d", model->cfg.C, model->cfg.NH,
                 model->cfg.L, model->cfg.maxT);
    else if (o->batch_given && o->batch != st->B)
        clash = "--batch", snprintf(what, sizeof what, "batch %d", st->B);
    else if (o->lr_given && o->lr != st->optim.lr)
        clash = "--lr", snprintf(what, sizeof what, "lr %g", st->optim.lr);
    else if (o->warmup_given && o->warmup != st->optim.warmup_iters)
        clash = "--warmup", snprintf(what, sizeof what, "warmup %d", st->optim.warmup_iters);
    else if (o->seed_given && o->seed != st->seed)
        clash = "--seed", snprintf(what, sizeof what, "seed %llu", (unsigned long long)st->seed);
    if (clash) {
        fprintf(stderr, CMD ": %s was trained with %s and --resume takes the checkpoint's "
                "config: drop %s or match it\n", o->resume, what, clash);
        return 2;
    }
    if (!rg_vocab_equal(&vocab, &data->vocab)) {
        fprintf(stderr, CMD ": %s has a vocabulary of %d bytes that differs from the corpus's "
                "(%d bytes): resume with the corpus it was trained on\n", o->resume, vocab.V,
                data->vocab.V);
        return 2;
    }
    if (!o->iters_given) o->iters = st->max_steps;
    if (o->iters <= st->step) {
        fprintf(stderr, CMD ": %s is already at step %lld: pass --iters above it to train on\n",
                o->resume, (long long)st->step);
        return 2;
    }
    if (o->iters != st->max_steps)
        printf("resume: learning-rate schedule re-planned from %d to %d steps\n", st->max_steps,
               o->iters);
    st->max_steps = o->iters;
    rng_data->state = st->rng_data;
    rng_sample->state = st->rng_sample;
    printf("resume: %s at step %lld, preset %s (the checkpoint's config)\n", o->resume,
           (long long)st->step, st->preset);
    return 0;
}

/* A new run: the model initialised from o->seed, the state and streams from the options.
 * Returns 0, or the exit status after one line (2: the batch does not fit in memory). */
static int start_run(const train_opts *o, const rg_data *data, int ranks, rg_model *model,
                     rg_train_state *st, rg_rng *rng_data, rg_rng *rng_sample) {
    char err[1024];
    const rg_preset *p = rg_preset_find(o->preset);
    rg_model_config cfg = shape_of(o, data->vocab.V);
    int custom = cfg.C != p->C || cfg.NH != p->NH || cfg.L != p->L || cfg.maxT != p->T;
    snprintf(st->preset, sizeof st->preset, "%s", custom ? "custom" : p->name);
    st->B = o->batch_given ? o->batch : p->B;
    st->T = cfg.maxT;
    st->max_steps = o->iters;
    st->optim = rg_optim_default();
    st->optim.lr = o->lr;
    st->optim.warmup_iters = o->warmup;
    st->seed = o->seed;
    /* the batches and the samples get streams of their own, apart from the weights' */
    rg_rng_seed(rng_data, o->seed ^ 0x5eed0da7a0000001ULL);
    rg_rng_seed(rng_sample, o->seed ^ 0x5eed5a3b1e000002ULL);
    double need = rg_dp_train_bytes(&cfg, st->B / ranks, st->T, o->replicas);
    double have = phys_bytes();
    if (have > 0 && need > have) {
        fprintf(stderr, CMD ": batch %d does not fit: preset %s (C=%d NH=%d L=%d T=%d) needs "
                "%.1f GiB, the machine has %.1f GiB\n", st->B, st->preset, cfg.C, cfg.NH, cfg.L,
                cfg.maxT, need / 1073741824.0, have / 1073741824.0);
        return 2;
    }
    if (rg_model_init(model, &cfg, o->seed, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }
    return 0;
}

int rg_cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    rg_stop_install(CMD); /* from here on: a backend hanging in create can be interrupted too */

    char err[1024];
    rg_gradsum gs;
    if (rg_ranks_open(&gs, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return 2;
    }
    /* rank 0 alone speaks; every rank's errors still reach stderr */
    if (gs.rank > 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, CMD ": rank %d cannot silence its output: %s\n", gs.rank, strerror(errno));
        rg_ranks_close(&gs, 1);
        return 1;
    }
    rg_data data;
    int status = 1;
    if ((o.data ? rg_data_load_file(&data, o.data, err, sizeof err)
                : rg_data_load_fortunes(&data, NULL, err, sizeof err)) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        rg_ranks_close(&gs, 1);
        return 1;
    }
    if (rg_checkpoint_check_path(o.checkpoint, o.data, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        rg_data_free(&data);
        rg_ranks_close(&gs, 2);
        return 2;
    }

    rg_model model;
    memset(&model, 0, sizeof model);
    rg_train_state st;
    memset(&st, 0, sizeof st);
    rg_plugin plugin;
    rg_ops *ops = NULL;
    rg_dp dp;
    memset(&dp, 0, sizeof dp);
    int ops_open = 0;
    int32_t *in = NULL, *tg = NULL;
    FILE *log = NULL;
    rg_rng rng_data, rng_sample;

    status = o.resume ? resume_run(&o, &data, &model, &st, &rng_data, &rng_sample)
                      : start_run(&o, &data, gs.size, &model, &st, &rng_data, &rng_sample);
    if (status != 0) goto done;
    status = 1;
    if (o.stop_at && o.stop_at <= st.step) {
        fprintf(stderr, CMD ": --stop-at %d is not after the checkpoint's step %lld\n", o.stop_at,
                (long long)st.step);
        status = 2;
        goto done;
    }
    const int B = st.B, T = st.T;
    if (rg_data_check_block(&data, T, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        goto done;
    }
    const int R = o.replicas;
    if (rg_dp_check_split(B, gs.size, R, o.ba.threads, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        status = 2;
        goto done;
    }
    char why[4096] = "";
    if (!(ops = calloc((size_t)R, sizeof *ops)) ||
        rg_backend_args_open_replicas(&o.ba, R, &plugin, ops, why, sizeof why, err,
                                      sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", ops ? err : "out of memory");
        goto done;
    }
    ops_open = 1;
    if (why[0]) printf("backend: %s\n", why);
    in = malloc((size_t)B * T * sizeof *in);
    tg = malloc((size_t)B * T * sizeof *tg);
    if (!in || !tg || rg_dp_init(&dp, &model, ops, R, B, T, &gs, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": batch %d x %d: %s\n", B, T, (!in || !tg) ? "out of memory" : err);
        goto done;
    }
    if (gs.rank == 0 && o.log && !(log = fopen(o.log, o.resume ? "a" : "w"))) {
        fprintf(stderr, CMD ": cannot open log %s: %s\n", o.log, strerror(errno));
        goto done;
    }

    char desc[512];
    rg_ops_describe(&ops[0], desc, sizeof desc);
    if (R > 1 || gs.size > 1)
        printf("data parallel: %d rank%s x %d replica%s, %d sequences each\n", gs.size,
               gs.size > 1 ? "s" : "", R, R > 1 ? "s" : "", dp.share);
    printf("backend %s | threads %d | preset %s (C=%d NH=%d L=%d T=%d) batch %d | params %zu at "
           "V=%d | tokens %zu (train %zu, val %zu)\n",
           desc, ops[0].num_threads * R, st.preset, model.cfg.C, model.cfg.NH, model.cfg.L, T, B,
           model.num_params, data.vocab.V, data.len, data.split, data.len - data.split);
    fflush(stdout);


    int tty = isatty(fileno(stderr));  /* the progress bar goes to a terminal's stderr */
    int sample_every = o.sample_every >= 0 ? o.sample_every
                                           : (isatty(fileno(stdout)) ? o.eval_every : 0);
    int end = o.stop_at && o.stop_at < o.iters ? o.stop_at : o.iters;
    int plain_every = o.iters / PLAIN_LINES > 1 ? o.iters / PLAIN_LINES : 1;
    char best_path[4200];
    if (rg_best_checkpoint_path(o.checkpoint, best_path, sizeof best_path) != 0) {
        fprintf(stderr, CMD ": --checkpoint %s is too long\n", o.checkpoint);
        status = 2;
        goto done;
    }
    float best_val = o.resume && gs.rank == 0 ? best_val_of(best_path, ops, &data, B, T, in, tg)
                                              : INFINITY;
    long best_step = 0, start_step = (long)st.step;
    double best_at_s = 0;
    rg_eval_losses last = {NAN, NAN};
    rg_eta eta;
    /* an evaluation is 2 x nb forward passes; a step is about 3 forward passes of work */
    rg_eta_init(&eta, 2.0 * rg_data_val_batches(&data, B, T) / 3.0);
    double t_start = now_s(), train_s = 0, eval_s = 0;
    int live = 0;  /* a \r progress line is on the terminal */
    status = 0;
    while (st.step < end) {
        int step = (int)st.step;
        float lr = rg_lr_at(&st.optim, step, o.iters);
        double t0 = now_s();
        rg_data_train_batch(&data, &rng_data, B, T, in, tg);
        float loss;
        if (rg_dp_step(&dp, in, tg, &st.optim, lr, &loss, err, sizeof err) != 0) {
            fprintf(stderr, CMD ": %s\n", err);
            status = 1;
            break;
        }
        double t1 = now_s(), dt = t1 - t0;
        st.step++;
        train_s += dt;
        int eval = st.step % o.eval_every == 0 || st.step == o.iters;
        rg_eval_losses ev = {0, 0};
        if (eval && (rg_eval_run(&dp, &data, in, tg, &ev, err, sizeof err) != 0 ||
                     rg_dp_check_same(&dp, err, sizeof err) != 0)) {
            fprintf(stderr, CMD ": %s\n", err);
            status = 1;
            break;
        }
        if (eval) last = ev;
        if (!isfinite(loss) || !isfinite(ev.train) || !isfinite(ev.val)) {
            if (live) fputc('\n', stderr);
            fprintf(stderr, CMD ": %s is %f at step %lld: training diverged (try a lower --lr)\n",
                    isfinite(loss) ? "evaluation loss" : "loss",
                    isfinite(loss) ? (isfinite(ev.val) ? ev.train : ev.val) : loss,
                    (long long)st.step);
            status = 1;
            break;
        }
        double tok_s = (double)B * T / dt;
        /* read once: a signal that comes later is handled after the next step, never between
         * deciding to save and stopping (which would stop without the save) */
        int stop_sig = rg_stop_requested(), any_stop;
        /* every rank stops at the same step: a signal to one is a stop for all */
        if (rg_dp_any(&dp, stop_sig, &any_stop, err, sizeof err) != 0) {
            fprintf(stderr, CMD ": %s\n", err);
            status = 1;
            break;
        }
        if (any_stop && !stop_sig) stop_sig = SIGTERM;
        int stopping = st.step == end || stop_sig;
        if (log) {
            fprintf(log, "{\"step\":%lld,\"loss\":%.9g", (long long)st.step, loss);
            if (eval) fprintf(log, ",\"train_loss\":%.9g,\"val_loss\":%.9g", ev.train, ev.val);
            fprintf(log, ",\"lr\":%.9g,\"ms\":%.3f,\"tok_per_s\":%.1f,\"wall_s\":%.3f}\n", lr,
                    dt * 1e3, tok_s, now_s() - t_start);
            if (fflush(log) != 0 || ferror(log)) {
                fprintf(stderr, CMD ": cannot write log %s: %s\n", o.log, strerror(errno));
                status = 1;
                break;
            }
        }
        double left = rg_eta_remaining(&eta, end - (long)st.step,
                                       rg_evals_between((long)st.step, end, o.eval_every, o.iters));
        double avg_tok_s = (double)B * T * (double)(st.step - start_step) / train_s;
        char line[512];
        if (tty) {
            rg_progress_line(line, sizeof line, (long)st.step, o.iters, loss, avg_tok_s,
                             now_s() - t_start, left, BAR_WIDTH);
            fprintf(stderr, "\r%s\033[K", line);
            fflush(stderr);
            live = 1;
        } else if (st.step % plain_every == 0 || st.step == start_step + 1 || stopping) {
            rg_progress_line(line, sizeof line, (long)st.step, o.iters, loss, avg_tok_s,
                             now_s() - t_start, left, 0);
            printf("%s\n", line);
        }
        if (eval || stopping) {
            st.rng_data = rng_data.state;
            st.rng_sample = rng_sample.state;
            /* one writer: rank 0 */
            int saved = gs.rank > 0 ? 0
                                    : rg_checkpoint_save(o.checkpoint, &model, &data.vocab, &st,
                                                         err, sizeof err);
            int better = gs.rank == 0 && saved == 0 && eval && ev.val < best_val;
            if (better) saved = rg_checkpoint_save(best_path, &model, &data.vocab, &st, err, sizeof err);
            if (better && saved == 0) {
                best_val = ev.val;
                best_step = (long)st.step;
                best_at_s = now_s() - t_start;
            }
            if (live) fputc('\n', stderr), live = 0;
            if (eval)
                printf("step %lld: train loss %.4f, val loss %.4f%s%s%s%s\n", (long long)st.step,
                       ev.train, ev.val, saved == 0 ? " | saved " : "",
                       saved == 0 ? o.checkpoint : "", better && saved == 0 ? ", best " : "",
                       better && saved == 0 ? best_path : "");
            if (saved != 0) {
                fprintf(stderr, CMD ": %s\n", err);
                status = 1;
                break;
            }
            if (!eval) printf("step %lld: saved %s\n", (long long)st.step, o.checkpoint);
            if (eval && gs.rank == 0 && sample_every > 0 && st.step % sample_every == 0 &&
                eval_sample(&model, &ops[0], &data.vocab, st.seed, (long)st.step, err, sizeof err)) {
                fprintf(stderr, CMD ": %s\n", err);
                status = 1;
                break;
            }
            fflush(stdout);
        }
        /* all that an evaluation step did beyond the step itself is the evaluation's time */
        double after = now_s() - t1;
        if (eval) rg_eta_add_step(&eta, dt), rg_eta_add_eval(&eta, after), eval_s += after;
        else rg_eta_add_step(&eta, dt + after);
        if (stop_sig) {
            printf("stopped by signal %d after step %lld; resume with --resume %s\n", stop_sig,
                   (long long)st.step, o.checkpoint);
            status = 128 + stop_sig;
            break;
        }
    }
    if (live) fputc('\n', stderr);
    if (st.step > start_step) {
        char wall[32], tr[32], evs[32], at[32];
        rg_format_duration(now_s() - t_start, wall, sizeof wall);
        rg_format_duration(train_s, tr, sizeof tr);
        rg_format_duration(eval_s, evs, sizeof evs);
        rg_format_duration(best_at_s, at, sizeof at);
        printf("summary: %lld steps in %s (%s training, %s evaluating), %.0f tok/s\n",
               (long long)st.step - start_step, wall, tr, evs,
               (double)B * T * (double)(st.step - start_step) / train_s);
        if (isfinite(last.val))
            printf("summary: last train loss %.4f, val loss %.4f\n", last.train, last.val);
        if (best_step)
            printf("summary: best val loss %.4f at step %ld, %s into the run (%s)\n", best_val,
                   best_step, at, best_path);
        if (R > 1 || gs.size > 1)
            printf("summary: gradient sum %.2f ms/step, %.1f%% of the training time\n",
                   1e3 * dp.reduce_s / (double)dp.steps, 100.0 * dp.reduce_s / train_s);
        double rss[2] = {rg_peak_rss_mib(), 0};
        rss[1] = rss[0];
        if (gs.size > 1 && status == 0 && gs.sum_doubles(gs.ctx, rss + 1, 1, err, sizeof err) != 0)
            rss[1] = NAN;
        if (gs.size > 1)
            printf("summary: peak RSS %.1f MiB on rank 0, %.1f MiB over the %d ranks\n", rss[0],
                   rss[1], gs.size);
        else
            printf("summary: peak RSS %.1f MiB\n", rss[0]);
    }

    if (status == 0 && gs.rank == 0 && st.step == o.iters && o.sample_tokens > 0) {
        /* the sample starts from a newline when the corpus has one, else from its first byte */
        int32_t start = data.vocab.token['\n'] >= 0 ? data.vocab.token['\n'] : 0;
        printf("sample:\n");
        if (rg_generate(&model, &ops[0], &data.vocab, &start, 1, o.sample_tokens, RG_GEN_TEMPERATURE,
                        RG_GEN_TOP_P, &rng_sample, stdout, err, sizeof err) != 0) {
            fprintf(stderr, CMD ": %s\n", err);
            status = 1;
        }
        printf("\n");
    }

done:
    if (log && fclose(log) != 0 && status == 0) {
        fprintf(stderr, CMD ": writing log %s failed\n", o.log);
        status = 1;
    }
    free(in);
    free(tg);
    rg_dp_free(&dp);
    if (ops_open) {
        for (int r = 0; r < o.replicas; r++) rg_ops_destroy(&ops[r]);
        rg_plugin_close(&plugin);
    }
    free(ops);
    rg_model_free(&model);
    rg_data_free(&data);
    rg_ranks_close(&gs, status);
    return status;
}
