/* The parts of `randygpt train` around the step (see train_parts.h). */
#include "app/train_parts.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "randygpt/text.h"

int rg_eval_run(rg_dp *dp, const rg_data *d, int32_t *in, int32_t *tg, rg_eval_losses *out,
                char *err, size_t err_len) {
    int B = dp->B, T = dp->T, nb = rg_data_val_batches(d, B, T);
    double train = 0, val = 0;
    for (int k = 0; k < nb; k++) {
        float loss;
        rg_data_held_train_batch(d, k, B, T, in, tg);
        if (rg_dp_loss(dp, in, tg, &loss, err, err_len) != 0) return -1;
        train += loss;
        rg_data_val_batch(d, k, B, T, in, tg);
        if (rg_dp_loss(dp, in, tg, &loss, err, err_len) != 0) return -1;
        val += loss;
    }
    out->train = (float)(train / nb);
    out->val = (float)(val / nb);
    return 0;
}

void rg_eta_init(rg_eta *e, double eval_guess) {
    memset(e, 0, sizeof *e);
    e->eval_guess = eval_guess;
}

void rg_eta_add_step(rg_eta *e, double seconds) {
    if (e->steps == 0) e->first_s = seconds;
    else e->rest_s += seconds;
    e->steps++;
}

void rg_eta_add_eval(rg_eta *e, double seconds) {
    e->eval_s += seconds;
    e->evals++;
}

double rg_eta_step_s(const rg_eta *e) {
    if (e->steps == 0) return 0;
    return e->steps == 1 ? e->first_s : e->rest_s / (double)(e->steps - 1);
}

double rg_eta_remaining(const rg_eta *e, long steps_left, long evals_left) {
    double step = rg_eta_step_s(e);
    double eval = e->evals ? e->eval_s / (double)e->evals : e->eval_guess * step;
    return step * (double)steps_left + eval * (double)evals_left;
}

long rg_evals_between(long from, long to, long every, long iters) {
    if (to <= from) return 0;
    long n = to / every - from / every;
    if (to >= iters && from < iters && iters % every != 0) n++;  /* the last step evaluates too */
    return n;
}

void rg_format_duration(double seconds, char *buf, size_t n) {
    long t = (long)(seconds + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%.1fs", seconds);
}

void rg_progress_line(char *buf, size_t n, long step, long iters, float loss, double tok_s,
                      double elapsed_s, double eta_s, int bar_width) {
    char elapsed[32], eta[32], bar[128] = "";
    rg_format_duration(elapsed_s, elapsed, sizeof elapsed);
    rg_format_duration(eta_s, eta, sizeof eta);
    if (bar_width > 0) {
        if (bar_width > (int)sizeof bar - 8) bar_width = (int)sizeof bar - 8;
        int full = (int)((double)bar_width * (double)step / (double)iters);
        int k = 0;
        bar[k++] = ' ';
        bar[k++] = '[';
        for (int i = 0; i < bar_width; i++) bar[k++] = i < full ? '#' : '.';
        k += snprintf(bar + k, sizeof bar - (size_t)k, "] %3d%%", (int)(100 * step / iters));
    }
    rg_errf(buf, n, "step %ld/%ld%s | loss %.4f | %.0f tok/s | %s | ETA %s", step, iters, bar,
            loss, tok_s, elapsed, eta);
}

char *rg_best_checkpoint_path(const char *ckpt) {
    size_t len = strlen(ckpt);
    if (len > 5 && !strcmp(ckpt + len - 5, ".ckpt")) return rg_strf("%.*s.best.ckpt", (int)(len - 5), ckpt);
    return rg_strf("%s.best", ckpt);
}

double rg_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0;  /* KiB on Linux */
}
