/*
 * The parts of `randygpt train` around the training step: evaluation on held batches, the
 * wall-time estimate of what is left, the progress line, the best-checkpoint path and the final
 * summary's figures.
 */
#ifndef RANDYGPT_TRAIN_PARTS_H
#define RANDYGPT_TRAIN_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/data.h"
#include "randygpt/model.h"
#include "randygpt/ops.h"
#include "randygpt/replicas.h"

/* Losses measured at an evaluation, both the same way: the mean over the same number of fixed
 * batches (rg_data_val_batches), forward only. */
typedef struct rg_eval_losses {
    float train, val;
} rg_eval_losses;

/* Evaluates the model of dp on the held training batches and the validation batches of its
 * (B,T), sharded like its steps; in, tg are (B,T) scratch. Returns 0, or -1 with one line in err
 * (a rank failed). */
int rg_eval_run(rg_dp *dp, const rg_data *d, int32_t *in, int32_t *tg, rg_eval_losses *out,
                char *err, size_t err_len);

/* Wall-time estimate of the rest of a run: the mean time of a step (the first one, which warms
 * caches and pages up, left out once there are others) times the steps left, plus the mean time
 * of an evaluation (everything done at an evaluation step beyond the step itself: losses, sample,
 * checkpoints) times the evaluations left. Before any evaluation is measured, one is guessed at
 * eval_guess steps. */
typedef struct rg_eta {
    double first_s, rest_s;  /* the first step, and the sum of the others */
    long steps;              /* steps measured */
    double eval_s;           /* sum over the evaluations measured */
    long evals;
    double eval_guess;       /* an evaluation's cost in steps, until one is measured */
} rg_eta;

void rg_eta_init(rg_eta *e, double eval_guess);
void rg_eta_add_step(rg_eta *e, double seconds);
void rg_eta_add_eval(rg_eta *e, double seconds);
/* Mean seconds of a step so far (0 before the first). */
double rg_eta_step_s(const rg_eta *e);
/* Seconds left for steps_left more steps and evals_left more evaluations. */
double rg_eta_remaining(const rg_eta *e, long steps_left, long evals_left);

/* Evaluations in the steps (from, to] of a run of iters steps that evaluates every `every` steps
 * and at its last step. */
long rg_evals_between(long from, long to, long every, long iters);

/* "4.5s", "3m07s", "1h02m". */
void rg_format_duration(double seconds, char *buf, size_t n);

/* The progress line: "step 420/3000 [####......] 14% | loss 2.0311 | 26190 tok/s | 52s | ETA
 * 5m10s". bar_width 0 leaves the bar out (plain lines, when not on a terminal). */
void rg_progress_line(char *buf, size_t n, long step, long iters, float loss, double tok_s,
                      double elapsed_s, double eta_s, int bar_width);

/* Where the best checkpoint goes beside ckpt: "X.ckpt" gives "X.best.ckpt", any other name "NAME.best".
 * A new heap string (free it), or NULL when out of memory. */
char *rg_best_checkpoint_path(const char *ckpt);

/* Peak resident memory of this process so far, in MiB (getrusage). */
double rg_peak_rss_mib(void);

#endif /* RANDYGPT_TRAIN_PARTS_H */
