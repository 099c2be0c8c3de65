/* `randygpt train`: trains randyGPT on a text corpus with a chosen backend, evaluates, checkpoints,
 * resumes exactly, and prints a sample at the end. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

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
#include "randygpt/text.h"
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
    int micro_batches;
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
            "                           (a regular file or a device: a FIFO is refused)\n"
            "  --sample-tokens N        bytes of text generated at the end (default 200, 0: none)\n"
            "  --sample-every N         a short sample at the evaluations every N steps (default:\n"
            "                           at each evaluation when stdout is a terminal, else none;\n"
            "                           0: none)\n"
            "  --replicas R             data parallelism: the batch split over R replicas on threads\n"
            "                           of their own, --threads / R threads each (default 1)\n"
            "  --micro-batches K        each replica's share of a step run as K passes in\n"
            "                           sequence, gradients accumulated: the same step in 1/K of\n"
            "                           the activations (default: passes of 512 tokens or more,\n"
            "                           4 for the small preset)\n"
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
        rg_errf(err, n, "--n-embd %d is not a multiple of --n-head %d%s", cfg.C, cfg.NH,
                o->n_embd && o->n_head ? "" : " (the preset's value for the one not given)");
        return -1;
    }
    char why[RG_ERR_LEN];
    if (rg_model_config_check(&cfg, why, sizeof why) != 0) {
        rg_errf(err, n, "model shape: %s", why);
        return -1;
    }
    return 0;
}

enum {
    OPT_PRESET = RG_CLI_FIRST_ID, OPT_DATA, OPT_ITERS, OPT_BATCH, OPT_LR, OPT_WARMUP, OPT_SEED,
    OPT_EVAL_EVERY, OPT_CHECKPOINT, OPT_RESUME, OPT_STOP_AT, OPT_LOG, OPT_SAMPLE_TOKENS,
    OPT_SAMPLE_EVERY, OPT_N_EMBD, OPT_N_HEAD, OPT_N_LAYER, OPT_BLOCK_SIZE, OPT_REPLICAS,
    OPT_MICRO_BATCHES
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
    {"micro-batches", required_argument, NULL, OPT_MICRO_BATCHES},
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
    case OPT_MICRO_BATCHES: return rg_cli_int(c, v, 1, 1000000L, &o->micro_batches);
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
    o->micro_batches = 0; /* rg_dp_micro_batches's default */
    o->sample_every = -1;  /* chosen once we know whether stdout is a terminal */
    o->seed = 1337;
    rg_optim_config def = rg_optim_default();
    o->lr = DEFAULT_LR;
    o->warmup = def.warmup_iters;
    int rc = rg_cli_parse(CMD, options, argc, argv, take_option, o, usage);
    if (rc) return rc;
    /* a resumed run goes on writing the checkpoint it came from */
    if (o->resume && !o->checkpoint_given) o->checkpoint = o->resume;
    char err[RG_ERR_LEN];
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
    char err[RG_ERR_LEN];
    if (access(path, F_OK) != 0 || rg_checkpoint_load(path, &m, &v, &st, err, sizeof err) != 0)
        return INFINITY;
    float best = INFINITY;
    if (rg_vocab_equal(&v, &d->vocab) && m.cfg.maxT >= T &&
        rg_dp_init(&dp, &m, ops, 1, 1, B, T, &alone, err, sizeof err) == 0) {
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
    char err[RG_ERR_LEN];
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
        clash = "--preset", rg_errf(what, sizeof what, "preset '%s'", st->preset);
    else if (shape_given(o))
        clash = "--n-embd/--n-head/--n-layer/--block-size",
        rg_errf(what, sizeof what, "C=%d NH=%d L=%d T=%d", model->cfg.C, model->cfg.NH,
                model->cfg.L, model->cfg.maxT);
    else if (o->batch_given && o->batch != st->B)
        clash = "--batch", rg_errf(what, sizeof what, "batch %d", st->B);
    else if (o->lr_given && o->lr != st->optim.lr)
        clash = "--lr", rg_errf(what, sizeof what, "lr %g", st->optim.lr);
    else if (o->warmup_given && o->warmup != st->optim.warmup_iters)
        clash = "--warmup", rg_errf(what, sizeof what, "warmup %d", st->optim.warmup_iters);
    else if (o->seed_given && o->seed != st->seed)
        clash = "--seed", rg_errf(what, sizeof what, "seed %llu", (unsigned long long)st->seed);
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
    char err[RG_ERR_LEN];
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
    double need = rg_dp_train_bytes(&cfg, st->B / ranks, st->T, o->replicas, o->micro_batches);
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

/* Everything a run holds from loading the corpus to the end, freed by run_free. */
typedef struct train_run {
    train_opts *o;
    rg_gradsum gs;
    rg_data data;
    rg_model model;
    rg_train_state st;
    rg_plugin plugin;
    rg_ops *ops;
    rg_dp dp;
    int ops_open;
    int32_t *in, *tg;
    FILE *log;
    rg_rng rng_data, rng_sample;
    char err[RG_ERR_LEN];
} train_run;

/* What the training loop keeps from step to step: the schedule of output, the best checkpoint,
 * the times and the ETA. */
typedef struct train_loop {
    int tty, sample_every, end, plain_every;
    char *best_path; /* owned */
    float best_val;
    long best_step, start_step;
    double best_at_s;
    rg_eval_losses last;
    rg_eta eta;
    double t_start, train_s, eval_s;
    int live; /* a \r progress line is on the terminal */
} train_loop;

/* One step's results, shared by its logging, its evaluation and its save. */
typedef struct step_result {
    float loss, lr;
    double dt, t1;
    int eval, stop_sig, stopping;
    rg_eval_losses ev;
} step_result;

/* 1 when a and b name the same file (the same string, or one existing inode). */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b) return 0;
    return !strcmp(a, b) ||
           (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

/* Whether the --log path may be written: not the corpus, a checkpoint of the run or any other
 * checkpoint (a log written there would destroy it). Returns 0, or -1 after one line. */
static int check_log_path(const train_opts *o) {
    const char *clash = same_file(o->log, o->data)         ? "the training corpus"
                        : same_file(o->log, o->checkpoint) ? "the --checkpoint"
                        : same_file(o->log, o->resume)     ? "the --resume checkpoint"
                        : rg_checkpoint_is_file(o->log)    ? "a randyGPT checkpoint"
                                                           : NULL;
    if (!clash) return 0;
    fprintf(stderr, CMD ": log %s is %s: refusing to overwrite it\n", o->log, clash);
    return -1;
}

/* Opens the --log file without ever blocking on it: O_NONBLOCK for the open (a FIFO without a
 * reader would otherwise hang there), then fstat, then blocking writes again. A regular file or a
 * character device (/dev/null, a terminal) is taken; anything else is refused with one line.
 * Returns the stream, or NULL after one line. */
static FILE *open_log(const char *path, int append) {
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISCHR(sb.st_mode)) {
        fprintf(stderr, CMD ": log %s is not a regular file\n", path);
        return NULL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY |
                            (append ? O_APPEND : 0), 0666);
    if (fd < 0) {
        fprintf(stderr, CMD ": cannot open log %s: %s\n", path, strerror(errno));
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = NULL;
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISCHR(sb.st_mode))
        fprintf(stderr, CMD ": log %s is not a regular file\n", path);
    else if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
             (!append && S_ISREG(sb.st_mode) && ftruncate(fd, 0) != 0) ||
             !(f = fdopen(fd, append ? "a" : "w")))
        fprintf(stderr, CMD ": cannot open log %s: %s\n", path, strerror(errno));
    if (!f) close(fd);
    return f;
}

/* The run from its model to the opened backend, batch buffers and log, with the banner printed.
 * Returns 0, or the exit status after one line. */
static int run_setup(train_run *r) {
    train_opts *o = r->o;
    int status = o->resume ? resume_run(o, &r->data, &r->model, &r->st, &r->rng_data, &r->rng_sample)
                           : start_run(o, &r->data, r->gs.size, &r->model, &r->st, &r->rng_data,
                                       &r->rng_sample);
    if (status != 0) return status;
    if (o->stop_at && o->stop_at <= r->st.step) {
        fprintf(stderr, CMD ": --stop-at %d is not after the checkpoint's step %lld\n", o->stop_at,
                (long long)r->st.step);
        return 2;
    }
    const int B = r->st.B, T = r->st.T, R = o->replicas;
    if (rg_data_check_block(&r->data, T, r->err, sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    if (rg_dp_check_split(B, r->gs.size, R, o->micro_batches, o->ba.threads, r->err,
                          sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 2;
    }
    char why[RG_ERR_LEN] = "";
    if (!(r->ops = calloc((size_t)R, sizeof *r->ops)) ||
        rg_backend_args_open_replicas(&o->ba, R, &r->plugin, r->ops, why, sizeof why, r->err,
                                      sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->ops ? r->err : "out of memory");
        return 1;
    }
    r->ops_open = 1;
    if (why[0]) printf("backend: %s\n", why);
    r->in = malloc((size_t)B * T * sizeof *r->in);
    r->tg = malloc((size_t)B * T * sizeof *r->tg);
    if (!r->in || !r->tg ||
        rg_dp_init(&r->dp, &r->model, r->ops, R, o->micro_batches, B, T, &r->gs, r->err,
                   sizeof r->err) != 0) {
        fprintf(stderr, CMD ": batch %d x %d: %s\n", B, T,
                (!r->in || !r->tg) ? "out of memory" : r->err);
        return 1;
    }
    if (r->gs.rank == 0 && o->log &&
        (check_log_path(o) != 0 || !(r->log = open_log(o->log, o->resume != NULL))))
        return 1;
    char desc[RG_DESCRIBE_LEN];
    rg_ops_describe(&r->ops[0], desc, sizeof desc);
    if (R > 1 || r->gs.size > 1)
        printf("data parallel: %d rank%s x %d replica%s, %d sequences each\n", r->gs.size,
               r->gs.size > 1 ? "s" : "", R, R > 1 ? "s" : "", r->dp.share);
    if (r->dp.micro > 1)
        printf("micro-batches: each share of %d sequences as %d passes of %d\n", r->dp.share,
               r->dp.micro, r->dp.share / r->dp.micro);
    printf("backend %s | threads %d | preset %s (C=%d NH=%d L=%d T=%d) batch %d | params %zu at "
           "V=%d | tokens %zu (train %zu, val %zu)\n",
           desc, r->ops[0].num_threads * R, r->st.preset, r->model.cfg.C, r->model.cfg.NH,
           r->model.cfg.L, T, B, r->model.num_params, r->data.vocab.V, r->data.len, r->data.split,
           r->data.len - r->data.split);
    fflush(stdout);
    return 0;
}

/* The loop's starting state. Returns 0, or 2 after one line (the best checkpoint's path). */
static int loop_init(train_run *r, train_loop *L) {
    const train_opts *o = r->o;
    memset(L, 0, sizeof *L);
    L->tty = isatty(fileno(stderr)); /* the progress bar goes to a terminal's stderr */
    L->sample_every = o->sample_every >= 0 ? o->sample_every
                                           : (isatty(fileno(stdout)) ? o->eval_every : 0);
    L->end = o->stop_at && o->stop_at < o->iters ? o->stop_at : o->iters;
    L->plain_every = o->iters / PLAIN_LINES > 1 ? o->iters / PLAIN_LINES : 1;
    L->best_path = rg_best_checkpoint_path(o->checkpoint);
    if (!L->best_path) {
        fprintf(stderr, CMD ": out of memory\n");
        return 2;
    }
    L->best_val = o->resume && r->gs.rank == 0
                      ? best_val_of(L->best_path, r->ops, &r->data, r->st.B, r->st.T, r->in, r->tg)
                      : INFINITY;
    L->start_step = (long)r->st.step;
    L->last = (rg_eval_losses){NAN, NAN};
    /* an evaluation is 2 x nb forward passes; a step is about 3 forward passes of work */
    rg_eta_init(&L->eta, 2.0 * rg_data_val_batches(&r->data, r->st.B, r->st.T) / 3.0);
    L->t_start = now_s();
    return 0;
}

/* Appends the step's line to the log. Returns 0, or 1 after one line. */
static int log_step(train_run *r, const train_loop *L, const step_result *s) {
    double tok_s = (double)r->st.B * r->st.T / s->dt;
    fprintf(r->log, "{\"step\":%lld,\"loss\":%.9g", (long long)r->st.step, s->loss);
    if (s->eval) fprintf(r->log, ",\"train_loss\":%.9g,\"val_loss\":%.9g", s->ev.train, s->ev.val);
    fprintf(r->log, ",\"lr\":%.9g,\"ms\":%.3f,\"tok_per_s\":%.1f,\"wall_s\":%.3f}\n", s->lr,
            s->dt * 1e3, tok_s, now_s() - L->t_start);
    if (fflush(r->log) != 0 || ferror(r->log)) {
        fprintf(stderr, CMD ": cannot write log %s: %s\n", r->o->log, strerror(errno));
        return 1;
    }
    return 0;
}

/* The progress: a bar on a terminal, else about PLAIN_LINES lines in the run. */
static void show_progress(train_loop *L, const train_run *r, const step_result *s) {
    const train_opts *o = r->o;
    long step = (long)r->st.step;
    double left = rg_eta_remaining(&L->eta, L->end - step,
                                   rg_evals_between(step, L->end, o->eval_every, o->iters));
    double avg_tok_s = (double)r->st.B * r->st.T * (double)(step - L->start_step) / L->train_s;
    char line[512];
    if (L->tty) {
        rg_progress_line(line, sizeof line, step, o->iters, s->loss, avg_tok_s,
                         now_s() - L->t_start, left, BAR_WIDTH);
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        L->live = 1;
    } else if (step % L->plain_every == 0 || step == L->start_step + 1 || s->stopping) {
        rg_progress_line(line, sizeof line, step, o->iters, s->loss, avg_tok_s,
                         now_s() - L->t_start, left, 0);
        printf("%s\n", line);
    }
}

/* One training step with its evaluation when due, the stop decision, the log and the progress.
 * Returns 0, or 1 after one line. */
static int step_and_log(train_run *r, train_loop *L, step_result *s) {
    const train_opts *o = r->o;
    const int B = r->st.B, T = r->st.T;
    int step = (int)r->st.step;
    s->lr = rg_lr_at(&r->st.optim, step, o->iters);
    double t0 = now_s();
    rg_data_train_batch(&r->data, &r->rng_data, B, T, r->in, r->tg);
    if (rg_dp_step(&r->dp, r->in, r->tg, &r->st.optim, s->lr, &s->loss, r->err,
                   sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    s->t1 = now_s(), s->dt = s->t1 - t0;
    r->st.step++;
    L->train_s += s->dt;
    s->eval = r->st.step % o->eval_every == 0 || r->st.step == o->iters;
    s->ev = (rg_eval_losses){0, 0};
    if (s->eval && (rg_eval_run(&r->dp, &r->data, r->in, r->tg, &s->ev, r->err, sizeof r->err) != 0 ||
                    rg_dp_check_same(&r->dp, r->err, sizeof r->err) != 0)) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    if (s->eval) L->last = s->ev;
    if (!isfinite(s->loss) || !isfinite(s->ev.train) || !isfinite(s->ev.val)) {
        if (L->live) fputc('\n', stderr);
        fprintf(stderr, CMD ": %s is %f at step %lld: training diverged (try a lower --lr)\n",
                isfinite(s->loss) ? "evaluation loss" : "loss",
                isfinite(s->loss) ? (isfinite(s->ev.val) ? s->ev.train : s->ev.val) : s->loss,
                (long long)r->st.step);
        return 1;
    }
    /* read once: a signal that comes later is handled after the next step, never between
     * deciding to save and stopping (which would stop without the save) */
    int stop_sig = rg_stop_requested(), any_stop;
    /* every rank stops at the same step: a signal to one is a stop for all */
    if (rg_dp_any(&r->dp, stop_sig, &any_stop, r->err, sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    if (any_stop && !stop_sig) stop_sig = SIGTERM;
    s->stop_sig = stop_sig;
    s->stopping = r->st.step == L->end || stop_sig;
    if (r->log && log_step(r, L, s) != 0) return 1;
    show_progress(L, r, s);
    return 0;
}

/* After an evaluation or before stopping: the checkpoint (and the best one), the evaluation's
 * line and its sample. Returns 0, or 1 after one line. */
static int eval_and_save(train_run *r, train_loop *L, const step_result *s) {
    const train_opts *o = r->o;
    r->st.rng_data = r->rng_data.state;
    r->st.rng_sample = r->rng_sample.state;
    /* one writer: rank 0 */
    int saved = r->gs.rank > 0 ? 0
                               : rg_checkpoint_save(o->checkpoint, &r->model, &r->data.vocab,
                                                    &r->st, r->err, sizeof r->err);
    int better = r->gs.rank == 0 && saved == 0 && s->eval && s->ev.val < L->best_val;
    if (better)
        saved = rg_checkpoint_save(L->best_path, &r->model, &r->data.vocab, &r->st, r->err,
                                   sizeof r->err);
    if (better && saved == 0) {
        L->best_val = s->ev.val;
        L->best_step = (long)r->st.step;
        L->best_at_s = now_s() - L->t_start;
    }
    if (L->live) fputc('\n', stderr), L->live = 0;
    if (s->eval)
        printf("step %lld: train loss %.4f, val loss %.4f%s%s%s%s\n", (long long)r->st.step,
               s->ev.train, s->ev.val, saved == 0 ? " | saved " : "",
               saved == 0 ? o->checkpoint : "", better && saved == 0 ? ", best " : "",
               better && saved == 0 ? L->best_path : "");
    if (saved != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    if (!s->eval) printf("step %lld: saved %s\n", (long long)r->st.step, o->checkpoint);
    if (s->eval && r->gs.rank == 0 && L->sample_every > 0 && r->st.step % L->sample_every == 0 &&
        eval_sample(&r->model, &r->ops[0], &r->data.vocab, r->st.seed, (long)r->st.step, r->err,
                    sizeof r->err)) {
        fprintf(stderr, CMD ": %s\n", r->err);
        return 1;
    }
    fflush(stdout);
    return 0;
}

/* One pass of the loop. Returns 0 to go on, else the run's exit status (128 + the signal when
 * stopped by one). */
static int train_one(train_run *r, train_loop *L) {
    step_result s;
    if (step_and_log(r, L, &s) != 0) return 1;
    if ((s.eval || s.stopping) && eval_and_save(r, L, &s) != 0) return 1;
    /* all that an evaluation step did beyond the step itself is the evaluation's time */
    double after = now_s() - s.t1;
    if (s.eval) rg_eta_add_step(&L->eta, s.dt), rg_eta_add_eval(&L->eta, after), L->eval_s += after;
    else rg_eta_add_step(&L->eta, s.dt + after);
    if (s.stop_sig) {
        printf("stopped by signal %d after step %lld; resume with --resume %s\n", s.stop_sig,
               (long long)r->st.step, r->o->checkpoint);
        return 128 + s.stop_sig;
    }
    return 0;
}

/* The summary lines of a run that took at least one step. */
static void print_summary(train_run *r, const train_loop *L, int status) {
    long steps = (long)r->st.step - L->start_step;
    char wall[32], tr[32], evs[32], at[32];
    rg_format_duration(now_s() - L->t_start, wall, sizeof wall);
    rg_format_duration(L->train_s, tr, sizeof tr);
    rg_format_duration(L->eval_s, evs, sizeof evs);
    rg_format_duration(L->best_at_s, at, sizeof at);
    printf("summary: %lld steps in %s (%s training, %s evaluating), %.0f tok/s\n",
           (long long)steps, wall, tr, evs,
           (double)r->st.B * r->st.T * (double)steps / L->train_s);
    if (isfinite(L->last.val))
        printf("summary: last train loss %.4f, val loss %.4f\n", L->last.train, L->last.val);
    if (L->best_step)
        printf("summary: best val loss %.4f at step %ld, %s into the run (%s)\n", L->best_val,
               L->best_step, at, L->best_path);
    if (r->o->replicas > 1 || r->gs.size > 1)
        printf("summary: gradient sum %.2f ms/step, %.1f%% of the training time\n",
               1e3 * r->dp.reduce_s / (double)r->dp.steps, 100.0 * r->dp.reduce_s / L->train_s);
    double rss[2] = {rg_peak_rss_mib(), 0};
    rss[1] = rss[0];
    if (r->gs.size > 1 && status == 0 &&
        r->gs.sum_doubles(r->gs.ctx, rss + 1, 1, r->err, sizeof r->err) != 0)
        rss[1] = NAN;
    if (r->gs.size > 1)
        printf("summary: peak RSS %.1f MiB on rank 0, %.1f MiB over the %d ranks\n", rss[0],
               rss[1], r->gs.size);
    else
        printf("summary: peak RSS %.1f MiB\n", rss[0]);
}

/* The sample printed at the end of a finished run. Returns 0, or 1 after one line. */
static int final_sample(train_run *r) {
    /* the sample starts from a newline when the corpus has one, else from its first byte */
    int32_t start = r->data.vocab.token['\n'] >= 0 ? r->data.vocab.token['\n'] : 0;
    int status = 0;
    printf("sample:\n");
    if (rg_generate(&r->model, &r->ops[0], &r->data.vocab, &start, 1, r->o->sample_tokens,
                    RG_GEN_TEMPERATURE, RG_GEN_TOP_P, &r->rng_sample, stdout, r->err,
                    sizeof r->err) != 0) {
        fprintf(stderr, CMD ": %s\n", r->err);
        status = 1;
    }
    printf("\n");
    return status;
}

/* Closes the log (a failed close fails a run that had succeeded) and frees the run. */
static int run_free(train_run *r, int status) {
    if (r->log && fclose(r->log) != 0 && status == 0) {
        fprintf(stderr, CMD ": writing log %s failed\n", r->o->log);
        status = 1;
    }
    free(r->in);
    free(r->tg);
    rg_dp_free(&r->dp);
    if (r->ops_open) {
        for (int i = 0; i < r->o->replicas; i++) rg_ops_destroy(&r->ops[i]);
        rg_plugin_close(&r->plugin);
    }
    free(r->ops);
    rg_model_free(&r->model);
    rg_data_free(&r->data);
    rg_ranks_close(&r->gs, status);
    return status;
}

/* Setup, the loop, the summary and the final sample of a run whose corpus is loaded. */
static int run_train(train_run *r) {
    int status = run_setup(r);
    if (status != 0) return status;
    train_loop L;
    if (loop_init(r, &L) != 0) return 2;
    while (r->st.step < L.end && (status = train_one(r, &L)) == 0) {
    }
    if (L.live) fputc('\n', stderr);
    if (r->st.step > L.start_step) print_summary(r, &L, status);
    free(L.best_path);
    if (status == 0 && r->gs.rank == 0 && r->st.step == r->o->iters && r->o->sample_tokens > 0)
        status = final_sample(r);
    return status;
}

int rg_cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    rg_stop_install(CMD); /* from here on: a backend hanging in create can be interrupted too */

    train_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    if (rg_ranks_open(&r.gs, r.err, sizeof r.err) != 0) {
        fprintf(stderr, CMD ": %s\n", r.err);
        return 2;
    }
    /* rank 0 alone speaks; every rank's errors still reach stderr */
    if (r.gs.rank > 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, CMD ": rank %d cannot silence its output: %s\n", r.gs.rank,
                strerror(errno));
        rg_ranks_close(&r.gs, 1);
        return 1;
    }
    if ((o.data ? rg_data_load_file(&r.data, o.data, r.err, sizeof r.err)
                : rg_data_load_fortunes(&r.data, NULL, r.err, sizeof r.err)) != 0) {
        fprintf(stderr, CMD ": %s\n", r.err);
        rg_ranks_close(&r.gs, 1);
        return 1;
    }
    if (rg_checkpoint_check_path(o.checkpoint, o.data, r.err, sizeof r.err) != 0) {
        fprintf(stderr, CMD ": %s\n", r.err);
        rg_data_free(&r.data);
        rg_ranks_close(&r.gs, 2);
        return 2;
    }
    return run_free(&r, run_train(&r));
}
