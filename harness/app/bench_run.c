/* One bench run: the child's measurement loop and the RUN entry's JSON, both directions. */
#define _POSIX_C_SOURCE 200809L
#include "bench_run.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_json.h"
#include "randygpt/data.h"
#include "randygpt/model.h"
#include "randygpt/rng.h"

/* Distinct batches cycled through: enough that no step re-reads the previous step's tokens. */
#define BENCH_BATCHES 4

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rg_median(const double *x, int n) {
    if (n <= 0) return NAN;
    double s[RG_BENCH_MAX_REPEAT];
    if (n > RG_BENCH_MAX_REPEAT) n = RG_BENCH_MAX_REPEAT;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

void rg_bench_result_add_round(rg_bench_result *r, const rg_bench_result *one, int round) {
    if (round == 0) {
        *r = *one;
        r->rounds = 1;
        return;
    }
    if (!r->ok) return; /* failed or refused in an earlier round: not run again */
    double wall_s = r->wall_s + one->wall_s;
    long long rss = r->peak_rss_bytes > one->peak_rss_bytes ? r->peak_rss_bytes : one->peak_rss_bytes;
    if (!one->ok) {
        *r = *one;
    } else {
        for (int i = 0; i < one->nrepeat && r->nrepeat < RG_BENCH_MAX_REPEAT; i++)
            r->repeat_step_ms[r->nrepeat++] = one->repeat_step_ms[i];
        for (int k = 0; k < RG_OP_COUNT; k++) {
            r->ops[k].calls_per_step += one->ops[k].calls_per_step;
            r->ops[k].ms_per_step += one->ops[k].ms_per_step;
        }
        r->other_ms_per_step += one->other_ms_per_step;
        r->rounds++;
    }
    r->wall_s = wall_s;
    r->peak_rss_bytes = rss;
}

void rg_bench_result_finish_rounds(rg_bench_result *r) {
    if (!r->ok || r->nrepeat < 1) return;
    /* GFLOP/s and tok/s are per-step constants over the step time: rescale the first round's */
    double flops_ms = r->gflops * r->step_ms_median, tok_ms = r->tok_per_s * r->step_ms_median;
    double sum = 0.0;
    r->step_ms_min = r->step_ms_max = r->repeat_step_ms[0];
    for (int i = 0; i < r->nrepeat; i++) {
        sum += r->repeat_step_ms[i];
        r->step_ms_min = fmin(r->step_ms_min, r->repeat_step_ms[i]);
        r->step_ms_max = fmax(r->step_ms_max, r->repeat_step_ms[i]);
    }
    r->step_ms_median = rg_median(r->repeat_step_ms, r->nrepeat);
    r->gflops = flops_ms / r->step_ms_median;
    r->tok_per_s = tok_ms / r->step_ms_median;
    const double n = r->rounds, mean_step_ms = sum / r->nrepeat;
    for (int k = 0; k < RG_OP_COUNT; k++) {
        r->ops[k].calls_per_step /= n;
        r->ops[k].ms_per_step /= n;
        r->ops[k].fraction = r->ops[k].ms_per_step / mean_step_ms;
    }
    r->other_ms_per_step /= n;
}

void rg_bench_result_fail(rg_bench_result *r, const char *reason, const char *fmt, ...) {
    r->ok = 0;
    r->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* ---- the child ---- */

/* inputs, targets are (nb,B,T): synthetic uniform tokens below V, or windows of the corpus d. */
static void make_batches(const rg_data *d, int V, int nb, int B, int T, uint64_t seed,
                         int32_t *inputs, int32_t *targets) {
    rg_rng rng;
    rg_rng_seed(&rng, seed);
    for (int k = 0; k < nb; k++) {
        int32_t *in = inputs + (size_t)k * B * T, *tg = targets + (size_t)k * B * T;
        if (d) {
            rg_data_train_batch(d, &rng, B, T, in, tg);
            continue;
        }
        for (int b = 0; b < B; b++) {
            int32_t prev = (int32_t)rg_rng_below(&rng, (uint64_t)V);
            for (int t = 0; t < T; t++) {
                in[b * T + t] = prev;
                prev = (int32_t)rg_rng_below(&rng, (uint64_t)V);
                tg[b * T + t] = prev;
            }
        }
    }
}

/* One training step, exactly as `train` takes it: zero grads, forward, backward, clip + AdamW. */
static void train_step(rg_model *m, rg_ops *ops, const rg_optim_config *oc, const int32_t *in,
                       const int32_t *tg, int step, int total) {
    rg_model_zero_grad(m);
    rg_model_forward(m, ops, in, tg, m->B, m->T);
    rg_model_backward(m, ops);
    rg_model_update(m, ops, oc, rg_lr_at(oc, step, total));
}

int rg_bench_child(const rg_backend_args *ba, const rg_bench_child_config *cc, FILE *out) {
    char err[1024];
    const rg_preset *ps = rg_preset_find(cc->preset);
    if (!ps) {
        fprintf(stderr, "randygpt bench: unknown preset '%s'\n", cc->preset);
        return 1;
    }
    const int B = ps->B, T = ps->T;
    rg_data data, *dp = NULL;
    int V = RG_BENCH_SYNTHETIC_V;
    if (cc->data) {
        if (rg_data_load_file(&data, cc->data, err, sizeof err) != 0) {
            fprintf(stderr, "randygpt bench: %s\n", err);
            return 1;
        }
        dp = &data;
        if (rg_data_check_block(dp, T, err, sizeof err) != 0) {
            fprintf(stderr, "randygpt bench: %s: %s\n", cc->data, err);
            rg_data_free(dp);
            return 1;
        }
        V = data.vocab.V;
    }
    size_t bt = (size_t)B * T;
    int32_t *inputs = malloc(BENCH_BATCHES * bt * sizeof *inputs);
    int32_t *targets = malloc(BENCH_BATCHES * bt * sizeof *targets);
    if (!inputs || !targets) {
        fprintf(stderr, "randygpt bench: out of memory for the batches\n");
        free(inputs);
        free(targets);
        if (dp) rg_data_free(dp);
        return 1;
    }
    make_batches(dp, V, BENCH_BATCHES, B, T, cc->seed, inputs, targets);
    if (dp) rg_data_free(dp);

    int rc = 1;
    rg_plugin plugin;
    rg_ops ops;
    rg_model model;
    memset(&model, 0, sizeof model);
    int opened = 0;
    rg_model_config mc = {.V = V, .maxT = T, .C = ps->C, .NH = ps->NH, .L = ps->L};
    if (rg_plugin_open(&plugin, ba->backend, ba->backend_dir, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        goto done;
    }
    /* A plugin that loads but refuses this thread count or these options is not broken. */
    rg_backend_config bcfg;
    rg_option bopts[RG_MAX_BACKEND_OPTS];
    rg_backend_args_config(ba, &bcfg, bopts);
    if (rg_ops_create(&ops, plugin.table, &bcfg, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s: %s\n", plugin.path, err);
        rg_plugin_close(&plugin);
        rc = RG_BENCH_EXIT_REFUSED;
        goto done;
    }
    opened = 1;
    if (rg_model_init(&model, &mc, cc->seed, err, sizeof err) != 0 ||
        rg_model_set_batch(&model, B, T, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        goto done;
    }

    static rg_bench_result r; /* large; one per process */
    memset(&r, 0, sizeof r);
    snprintf(r.plugin_name, sizeof r.plugin_name, "%s", plugin.table->name ? plugin.table->name : "");
    snprintf(r.path, sizeof r.path, "%s", plugin.path);
    rg_ops_describe(&ops, r.describe, sizeof r.describe);
    rg_ops_native_list(&ops, r.native_ops, sizeof r.native_ops);

    rg_optim_config oc = rg_optim_default();
    const int total = cc->warmup + cc->repeat * cc->steps;
    int step = 0;
    for (; step < cc->warmup; step++) {
        size_t k = (size_t)(step % BENCH_BATCHES) * bt;
        train_step(&model, &ops, &oc, inputs + k, targets + k, step, total);
        if (step == 0) r.loss_first = model.mean_loss;
    }
    /* Per-op timing costs two clock reads per op call, far below a step's time. */
    ops.timing = 1;
    memset(ops.seconds, 0, sizeof ops.seconds);
    memset(ops.calls, 0, sizeof ops.calls);
    double timed_s = 0.0;
    r.nrepeat = cc->repeat;
    for (int rep = 0; rep < cc->repeat; rep++) {
        double t0 = now_s();
        for (int s = 0; s < cc->steps; s++, step++) {
            size_t k = (size_t)(step % BENCH_BATCHES) * bt;
            train_step(&model, &ops, &oc, inputs + k, targets + k, step, total);
            if (step == 0) r.loss_first = model.mean_loss;
        }
        double dt = now_s() - t0;
        timed_s += dt;
        r.repeat_step_ms[rep] = dt * 1e3 / cc->steps;
    }
    r.loss_last = model.mean_loss;

    r.step_ms_median = rg_median(r.repeat_step_ms, r.nrepeat);
    r.step_ms_min = r.step_ms_max = r.repeat_step_ms[0];
    for (int i = 1; i < r.nrepeat; i++) {
        r.step_ms_min = fmin(r.step_ms_min, r.repeat_step_ms[i]);
        r.step_ms_max = fmax(r.step_ms_max, r.repeat_step_ms[i]);
    }
    r.tok_per_s = (double)bt / (r.step_ms_median * 1e-3);
    r.gflops = rg_model_step_flops(&mc, B, T) / (r.step_ms_median * 1e-3) * 1e-9;
    const int timed_steps = cc->repeat * cc->steps;
    const double mean_step_ms = timed_s * 1e3 / timed_steps;
    double in_ops_ms = 0.0;
    for (int k = 0; k < RG_OP_COUNT; k++) {
        rg_bench_op *o = &r.ops[k];
        o->native = (ops.native_mask >> k) & 1u;
        o->calls_per_step = (double)ops.calls[k] / timed_steps;
        o->ms_per_step = ops.seconds[k] * 1e3 / timed_steps;
        o->fraction = o->ms_per_step / mean_step_ms;
        in_ops_ms += o->ms_per_step;
    }
    r.other_ms_per_step = fmax(0.0, mean_step_ms - in_ops_ms);
    rg_bench_result_write(out, &r, 1, "");
    fputc('\n', out);
    fflush(out);
    rc = 0;
done:
    rg_model_free(&model);
    if (opened) {
        rg_ops_destroy(&ops);
        rg_plugin_close(&plugin);
    }
    free(inputs);
    free(targets);
    return rc;
}

/* ---- the RUN entry as JSON ---- */

static void key(FILE *f, int *first, const char *indent, const char *name) {
    fprintf(f, "%s%s", *first ? "" : ",", indent[0] ? "\n" : "");
    fputs(indent, f);
    rg_json_write_string(f, name);
    fputs(indent[0] ? ": " : ":", f);
    *first = 0;
}

/* Writes s, or null when empty. */
static void str_or_null(FILE *f, const char *s) { rg_json_write_string(f, s && s[0] ? s : NULL); }

void rg_bench_result_write(FILE *f, const rg_bench_result *r, int child_only, const char *indent) {
    /* Measured fields are null in a failed run (docs/bench-format.md). */
    const int m = child_only || r->ok;
    int first = 1;
    fputc('{', f);
    if (!child_only) {
        key(f, &first, indent, "backend");
        rg_json_write_string(f, r->backend);
    }
    key(f, &first, indent, "path");
    str_or_null(f, r->path);
    if (!child_only) {
        key(f, &first, indent, "threads");
        fprintf(f, "%d", r->threads);
        key(f, &first, indent, "status");
        rg_json_write_string(f, r->ok ? "ok" : "failed");
        key(f, &first, indent, "reason");
        rg_json_write_string(f, r->ok ? NULL : r->reason);
        key(f, &first, indent, "error");
        rg_json_write_string(f, r->ok ? NULL : r->error);
        key(f, &first, indent, "exit_code");
        if (r->exit_code >= 0) fprintf(f, "%d", r->exit_code);
        else fputs("null", f);
        key(f, &first, indent, "signal");
        str_or_null(f, r->signal);
        key(f, &first, indent, "wall_s");
        rg_json_write_number(f, r->wall_s);
        key(f, &first, indent, "peak_rss_bytes");
        fprintf(f, "%lld", r->peak_rss_bytes);
    }
    key(f, &first, indent, "plugin_name");
    rg_json_write_string(f, m ? r->plugin_name : NULL);
    key(f, &first, indent, "describe");
    rg_json_write_string(f, m ? r->describe : NULL);
    key(f, &first, indent, "native_ops");
    if (m) {
        /* The comma list of rg_ops_native_list as a JSON array. */
        fputc('[', f);
        const char *p = r->native_ops;
        for (int n = 0; *p; n++) {
            size_t len = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            fputs(n ? ", " : "", f);
            rg_json_write_string(f, name);
            p += len + (p[len] == ',');
        }
        fputc(']', f);
    } else {
        fputs("null", f);
    }
    key(f, &first, indent, "step_ms");
    if (m) {
        fputs("{\"median\": ", f);
        rg_json_write_number(f, r->step_ms_median);
        fputs(", \"min\": ", f);
        rg_json_write_number(f, r->step_ms_min);
        fputs(", \"max\": ", f);
        rg_json_write_number(f, r->step_ms_max);
        fputc('}', f);
    } else {
        fputs("null", f);
    }
    key(f, &first, indent, "repeat_step_ms");
    if (m) {
        fputc('[', f);
        for (int i = 0; i < r->nrepeat; i++) {
            fputs(i ? ", " : "", f);
            rg_json_write_number(f, r->repeat_step_ms[i]);
        }
        fputc(']', f);
    } else {
        fputs("null", f);
    }
    const struct {
        const char *name;
        double value;
        int parent_only;
    } nums[] = {
        {"tok_per_s", r->tok_per_s, 0},   {"gflops", r->gflops, 0},
        {"peak_gflops", r->peak_gflops, 1}, {"mfu", r->mfu, 1},
        {"loss_first", r->loss_first, 0}, {"loss_last", r->loss_last, 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (child_only && nums[i].parent_only) continue;
        key(f, &first, indent, nums[i].name);
        rg_json_write_number(f, m ? nums[i].value : NAN);
    }
    key(f, &first, indent, "ops");
    if (m) {
        fputc('[', f);
        for (int k = 0; k < RG_OP_COUNT; k++) {
            const rg_bench_op *o = &r->ops[k];
            if (k) fputc(',', f);
            if (indent[0]) fprintf(f, "\n%s  ", indent);
            fputs("{\"op\": ", f);
            rg_json_write_string(f, rg_op_name((rg_op_kind)k));
            fprintf(f, ", \"native\": %s, \"calls_per_step\": ", o->native ? "true" : "false");
            rg_json_write_number(f, o->calls_per_step);
            fputs(", \"ms_per_step\": ", f);
            rg_json_write_number(f, o->ms_per_step);
            fputs(", \"fraction\": ", f);
            rg_json_write_number(f, o->fraction);
            fputc('}', f);
        }
        if (indent[0]) fprintf(f, "\n%s", indent);
        fputc(']', f);
    } else {
        fputs("null", f);
    }
    key(f, &first, indent, "other_ms_per_step");
    rg_json_write_number(f, m ? r->other_ms_per_step : NAN);
    if (indent[0]) {
        /* Close at the indentation of the object's opening line. */
        size_t n = strlen(indent);
        fprintf(f, "\n%.*s", (int)(n >= 2 ? n - 2 : 0), indent);
    }
    fputc('}', f);
}

/* A number field of j; NaN (written back as null) when missing or null. */
static double num(const rg_json *j, const char *name) { return rg_json_num(rg_json_get(j, name), NAN); }

static void copy_str(char *dst, size_t n, const rg_json *j, const char *name) {
    const char *s = rg_json_str(rg_json_get(j, name));
    snprintf(dst, n, "%s", s ? s : "");
}

int rg_bench_result_parse(rg_bench_result *r, const char *line, char *err, size_t err_len) {
    rg_json *j = rg_json_parse(line, err, err_len);
    if (!j) return -1;
    const rg_json *steps = rg_json_get(j, "step_ms"), *reps = rg_json_get(j, "repeat_step_ms");
    const rg_json *ops = rg_json_get(j, "ops"), *native = rg_json_get(j, "native_ops");
    if (j->type != RG_JSON_OBJECT || !steps || !reps || reps->type != RG_JSON_ARRAY || !ops ||
        ops->type != RG_JSON_ARRAY || ops->count != RG_OP_COUNT || !native ||
        native->type != RG_JSON_ARRAY || !isfinite(num(steps, "median"))) {
        snprintf(err, err_len, "result line lacks step_ms, repeat_step_ms, native_ops or ops");
        rg_json_free(j);
        return -1;
    }
    copy_str(r->plugin_name, sizeof r->plugin_name, j, "plugin_name");
    copy_str(r->describe, sizeof r->describe, j, "describe");
    if (rg_json_str(rg_json_get(j, "path"))) copy_str(r->path, sizeof r->path, j, "path");
    r->native_ops[0] = '\0';
    r->num_native_ops = native->count;
    for (int i = 0; i < native->count; i++) {
        const char *s = rg_json_str(rg_json_at(native, i));
        size_t len = strlen(r->native_ops);
        snprintf(r->native_ops + len, sizeof r->native_ops - len, "%s%s", i ? "," : "", s ? s : "");
    }
    r->step_ms_median = num(steps, "median");
    r->step_ms_min = num(steps, "min");
    r->step_ms_max = num(steps, "max");
    r->nrepeat = reps->count < RG_BENCH_MAX_REPEAT ? reps->count : RG_BENCH_MAX_REPEAT;
    for (int i = 0; i < r->nrepeat; i++) r->repeat_step_ms[i] = rg_json_num(rg_json_at(reps, i), NAN);
    r->tok_per_s = num(j, "tok_per_s");
    r->gflops = num(j, "gflops");
    r->loss_first = num(j, "loss_first");
    r->loss_last = num(j, "loss_last");
    for (int k = 0; k < RG_OP_COUNT; k++) {
        const rg_json *o = rg_json_at(ops, k);
        const rg_json *nat = rg_json_get(o, "native");
        r->ops[k].native = nat && nat->type == RG_JSON_BOOL && nat->boolean;
        r->ops[k].calls_per_step = num(o, "calls_per_step");
        r->ops[k].ms_per_step = num(o, "ms_per_step");
        r->ops[k].fraction = num(o, "fraction");
    }
    r->other_ms_per_step = num(j, "other_ms_per_step");
    rg_json_free(j);
    return 0;
}
