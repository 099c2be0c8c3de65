/* One bench run: the child's measurement loop and the RUN entry's JSON, both directions. */
#define _POSIX_C_SOURCE 200809L
#include "bench_run.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_json.h"
#include "randygpt/data.h"
#include "randygpt/model.h"
#include "randygpt/replicas.h"
#include "randygpt/rng.h"
#include "randygpt/text.h"
#include "ranks/ranks.h"

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
        r->reduce_ms_per_step += one->reduce_ms_per_step;
        for (int k = 0; k < one->nranks_rss && k < r->nranks_rss; k++)
            if (one->rank_peak_rss_bytes[k] > r->rank_peak_rss_bytes[k])
                r->rank_peak_rss_bytes[k] = one->rank_peak_rss_bytes[k];
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
    r->reduce_ms_per_step /= n;
    r->reduce_fraction = r->reduce_ms_per_step / mean_step_ms;
    r->peak_rss_sum_bytes = 0;
    for (int k = 0; k < r->nranks_rss; k++) r->peak_rss_sum_bytes += r->rank_peak_rss_bytes[k];
    if (r->nranks_rss == 0) r->peak_rss_sum_bytes = r->peak_rss_bytes;
}

void rg_bench_result_fail(rg_bench_result *r, const char *reason, const char *fmt, ...) {
    r->ok = 0;
    r->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    rg_verrf(r->error, sizeof r->error, fmt, ap);
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

/* One training step, exactly as `train` takes it (rg_dp_step: with one replica on one rank, zero
 * grads, forward, backward, clip + AdamW). Returns 0, or -1 after one line on stderr. */
static int train_step(rg_dp *dp, const rg_optim_config *oc, const int32_t *in, const int32_t *tg,
                      int step, int total, float *loss) {
    char err[RG_ERR_LEN];
    if (rg_dp_step(dp, in, tg, oc, rg_lr_at(oc, step, total), loss, err, sizeof err) == 0) return 0;
    fprintf(stderr, "randygpt bench: %s\n", err);
    return -1;
}

/* The BENCH_BATCHES batches of a child, (BENCH_BATCHES,B,T) each: windows of cc->data or
 * synthetic tokens. Returns 0 with *V the vocabulary size, or -1 after one line on stderr. */
static int load_batches(const rg_bench_child_config *cc, int B, int T, int *V, int32_t **inputs,
                        int32_t **targets) {
    char err[RG_ERR_LEN];
    rg_data data, *dp = NULL;
    *V = RG_BENCH_SYNTHETIC_V;
    if (cc->data) {
        if (rg_data_load_file(&data, cc->data, err, sizeof err) != 0) {
            fprintf(stderr, "randygpt bench: %s\n", err);
            return -1;
        }
        dp = &data;
        if (rg_data_check_block(dp, T, err, sizeof err) != 0) {
            fprintf(stderr, "randygpt bench: %s: %s\n", cc->data, err);
            rg_data_free(dp);
            return -1;
        }
        *V = data.vocab.V;
    }
    size_t bt = (size_t)B * T;
    *inputs = malloc(BENCH_BATCHES * bt * sizeof **inputs);
    *targets = malloc(BENCH_BATCHES * bt * sizeof **targets);
    int ok = *inputs && *targets;
    if (ok) make_batches(dp, *V, BENCH_BATCHES, B, T, cc->seed, *inputs, *targets);
    else fprintf(stderr, "randygpt bench: out of memory for the batches\n");
    if (dp) rg_data_free(dp);
    return ok ? 0 : -1;
}

/* Every replica's instance starts timing its ops from zero. */
static void start_op_timing(rg_dp *dp) {
    for (int r = 0; r < dp->R; r++) {
        dp->ops[r].timing = 1;
        memset(dp->ops[r].seconds, 0, sizeof dp->ops[r].seconds);
        memset(dp->ops[r].calls, 0, sizeof dp->ops[r].calls);
    }
}

/* The per-step figures of r from timed_steps steps of timed_s seconds (replica 0's op times). */
static void per_step_figures(const rg_dp *dp, int timed_steps, double timed_s, rg_bench_result *r) {
    const rg_ops *ops = &dp->ops[0];
    const double mean_step_ms = timed_s * 1e3 / timed_steps;
    double in_ops_ms = 0.0;
    for (int k = 0; k < RG_OP_COUNT; k++) {
        rg_bench_op *o = &r->ops[k];
        o->native = (ops->native_mask >> k) & 1u;
        o->calls_per_step = (double)ops->calls[k] / timed_steps;
        o->ms_per_step = ops->seconds[k] * 1e3 / timed_steps;
        o->fraction = o->ms_per_step / mean_step_ms;
        in_ops_ms += o->ms_per_step;
    }
    r->other_ms_per_step = fmax(0.0, mean_step_ms - in_ops_ms);
    r->reduce_ms_per_step = dp->reduce_s * 1e3 / timed_steps;
    r->reduce_fraction = r->reduce_ms_per_step / mean_step_ms;
}

/* Warm-up, then cc->repeat timed repeats of cc->steps steps with the ops timed; fills the
 * measured fields of r. Returns 0, or -1 after one line on stderr. */
static int measure(rg_dp *dp, const rg_bench_child_config *cc, const int32_t *inputs,
                   const int32_t *targets, rg_bench_result *r) {
    const size_t bt = (size_t)dp->B * dp->T;
    rg_optim_config oc = rg_optim_default();
    const int total = cc->warmup + cc->repeat * cc->steps;
    int step = 0;
    float loss = NAN;
    for (; step < cc->warmup; step++) {
        size_t k = (size_t)(step % BENCH_BATCHES) * bt;
        if (train_step(dp, &oc, inputs + k, targets + k, step, total, &loss) != 0) return -1;
        if (step == 0) r->loss_first = loss;
    }
    /* Per-op timing costs two clock reads per op call, far below a step's time. */
    start_op_timing(dp);
    dp->reduce_s = 0.0;
    double timed_s = 0.0;
    r->nrepeat = cc->repeat;
    for (int rep = 0; rep < cc->repeat; rep++) {
        double t0 = now_s();
        for (int s = 0; s < cc->steps; s++, step++) {
            size_t k = (size_t)(step % BENCH_BATCHES) * bt;
            if (train_step(dp, &oc, inputs + k, targets + k, step, total, &loss) != 0) return -1;
            if (step == 0) r->loss_first = loss;
        }
        double dt = now_s() - t0;
        timed_s += dt;
        r->repeat_step_ms[rep] = dt * 1e3 / cc->steps;
    }
    r->loss_last = loss;
    r->step_ms_median = rg_median(r->repeat_step_ms, r->nrepeat);
    r->step_ms_min = r->step_ms_max = r->repeat_step_ms[0];
    for (int i = 1; i < r->nrepeat; i++) {
        r->step_ms_min = fmin(r->step_ms_min, r->repeat_step_ms[i]);
        r->step_ms_max = fmax(r->step_ms_max, r->repeat_step_ms[i]);
    }
    r->tok_per_s = (double)bt / (r->step_ms_median * 1e-3);
    r->gflops = rg_model_step_flops(&dp->rep[0]->cfg, dp->B, dp->T) / (r->step_ms_median * 1e-3) * 1e-9;
    per_step_figures(dp, cc->repeat * cc->steps, timed_s, r);
    return 0;
}

/* Every rank's own peak RSS into r (rank k's at k). Returns 0, or -1 after one line on stderr. */
static int gather_rss(const rg_gradsum *gs, rg_bench_result *r) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss[RG_BENCH_MAX_RANKS] = {0};
    int n = gs->size < RG_BENCH_MAX_RANKS ? gs->size : RG_BENCH_MAX_RANKS;
    if (gs->rank < n) rss[gs->rank] = (double)ru.ru_maxrss * 1024.0;
    char err[RG_ERR_LEN];
    if (gs->size > 1 && gs->sum_doubles(gs->ctx, rss, (size_t)n, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        return -1;
    }
    r->nranks_rss = n;
    for (int k = 0; k < n; k++) r->rank_peak_rss_bytes[k] = (long long)rss[k];
    return 0;
}

/* Prints r's child fields as one JSON line. Returns 0, or -1 after one line on stderr. */
static int print_result_line(const rg_bench_result *r, FILE *out) {
    json_t *line = rg_bench_result_json(r, 1);
    int rc = line && json_dumpf(line, out, RG_JSON_LINE_FLAGS) == 0 && fputc('\n', out) != EOF &&
                     fflush(out) == 0
                 ? 0
                 : -1;
    json_decref(line);
    if (rc) fprintf(stderr, "randygpt bench: cannot write the result line\n");
    return rc;
}

/* The describing fields of r from the plugin and replica 0's instance. */
static void describe_backend(const rg_plugin *plugin, rg_ops *ops, rg_bench_result *r) {
    rg_errf(r->plugin_name, sizeof r->plugin_name, "%s", plugin->table->name ? plugin->table->name : "");
    rg_errf(r->path, sizeof r->path, "%s", plugin->path);
    rg_ops_describe(ops, r->describe, sizeof r->describe);
    rg_ops_native_list(ops, r->native_ops, sizeof r->native_ops);
}

/* The child on one rank of gs: R replicas of the model, measured; rank 0 prints the line. */
static int child_run(const rg_backend_args *ba, const rg_bench_child_config *cc, const rg_gradsum *gs,
                     FILE *out) {
    char err[RG_ERR_LEN];
    const rg_preset *ps = rg_preset_find(cc->preset);
    if (!ps) {
        fprintf(stderr, "randygpt bench: unknown preset '%s'\n", cc->preset);
        return 1;
    }
    const int B = ps->B, T = ps->T, R = cc->replicas > 1 ? cc->replicas : 1;
    const int micro = cc->micro_batches;
    if (rg_dp_check_split(B, gs->size, R, micro, ba->threads, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        return 2;
    }
    int V, rc = 1, opened = 0;
    int32_t *inputs = NULL, *targets = NULL;
    rg_plugin plugin;
    rg_model model;
    rg_dp dp;
    memset(&model, 0, sizeof model);
    memset(&dp, 0, sizeof dp);
    rg_bench_result *r = calloc(1, sizeof *r);
    rg_ops *ops = calloc((size_t)R, sizeof *ops);
    if (!r || !ops) {
        fprintf(stderr, "randygpt bench: out of memory\n");
        goto done;
    }
    if (load_batches(cc, B, T, &V, &inputs, &targets) != 0) goto done;
    rg_model_config mc = {.V = V, .maxT = T, .C = ps->C, .NH = ps->NH, .L = ps->L};
    if (rg_backend_args_load(ba, &plugin, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        goto done;
    }
    /* A plugin that loads but refuses this thread count or these options is not broken. */
    rg_backend_args each = *ba;
    each.threads = ba->threads / R;
    for (int k = 0; k < R; k++) {
        if (rg_backend_args_create(&each, &plugin, &ops[k], err, sizeof err) != 0) {
            fprintf(stderr, "randygpt bench: %s\n", err);
            while (k-- > 0) rg_ops_destroy(&ops[k]);
            rg_plugin_close(&plugin);
            rc = RG_BENCH_EXIT_REFUSED;
            goto done;
        }
    }
    opened = 1;
    if (rg_model_init(&model, &mc, cc->seed, err, sizeof err) != 0 ||
        rg_dp_init(&dp, &model, ops, R, micro, B, T, gs, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        goto done;
    }
    /* described after the steps, so that an adaptive thread count tells how it ran them */
    if (measure(&dp, cc, inputs, targets, r) != 0 || gather_rss(gs, r) != 0) goto done;
    describe_backend(&plugin, &ops[0], r);
    rc = gs->rank == 0 ? (print_result_line(r, out) == 0 ? 0 : 1) : 0;
done:
    rg_dp_free(&dp);
    rg_model_free(&model);
    if (opened) {
        for (int k = 0; k < R; k++) rg_ops_destroy(&ops[k]);
        rg_plugin_close(&plugin);
    }
    free(ops);
    free(inputs);
    free(targets);
    free(r);
    return rc;
}

int rg_bench_child(const rg_backend_args *ba, const rg_bench_child_config *cc, FILE *out) {
    char err[RG_ERR_LEN];
    rg_gradsum gs;
    if (rg_ranks_open(&gs, err, sizeof err) != 0) {
        fprintf(stderr, "randygpt bench: %s\n", err);
        return 1;
    }
    int rc = child_run(ba, cc, &gs, out);
    /* a refusal (the same plugin, the same configuration) reaches every rank alike, as a usage
     * error does: no rank needs aborting */
    rg_ranks_close(&gs, rc == RG_BENCH_EXIT_REFUSED ? 2 : rc);
    return rc;
}

/* ---- the RUN entry as JSON ---- */

/* Sets key of o to v (taking v); clears *ok when v is NULL (out of memory) or the set fails. */
static void put(json_t *o, const char *key, json_t *v, int *ok) {
    if (json_object_set_new(o, key, v) != 0) *ok = 0;
}

/* The comma list of rg_ops_native_list as an array of names. */
static json_t *native_array(const char *list) {
    json_t *a = json_array();
    for (const char *p = list; a && *p;) {
        size_t len = strcspn(p, ",");
        if (json_array_append_new(a, json_stringn(p, len)) != 0) {
            json_decref(a);
            return NULL;
        }
        p += len + (p[len] == ',');
    }
    return a;
}

static json_t *ops_array(const rg_bench_result *r) {
    json_t *a = json_array();
    for (int k = 0; a && k < RG_OP_COUNT; k++) {
        const rg_bench_op *o = &r->ops[k];
        json_t *e = json_pack("{s:s, s:b, s:o, s:o, s:o}", "op", rg_op_name((rg_op_kind)k),
                              "native", o->native, "calls_per_step", rg_json_real(o->calls_per_step),
                              "ms_per_step", rg_json_real(o->ms_per_step), "fraction",
                              rg_json_real(o->fraction));
        if (json_array_append_new(a, e) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *repeats_array(const rg_bench_result *r) {
    json_t *a = json_array();
    for (int i = 0; a && i < r->nrepeat; i++)
        if (json_array_append_new(a, rg_json_real(r->repeat_step_ms[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* What only the parent knows: the pair, how its children ended, their time and memory. */
static void put_parent_fields(json_t *o, const rg_bench_result *r, int *ok) {
    put(o, "threads", json_integer(r->threads), ok);
    put(o, "replicas", json_integer(r->replicas), ok);
    put(o, "ranks", json_integer(r->ranks), ok);
    put(o, "micro_batches", json_integer(r->micro_batches), ok);
    put(o, "status", json_string(r->ok ? "ok" : "failed"), ok);
    put(o, "reason", rg_json_text(r->ok ? NULL : r->reason), ok);
    put(o, "error", rg_json_text(r->ok ? NULL : r->error), ok);
    put(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null(), ok);
    put(o, "signal", rg_json_text(r->signal[0] ? r->signal : NULL), ok);
    put(o, "wall_s", rg_json_real(r->wall_s), ok);
    put(o, "peak_rss_bytes", json_integer(r->peak_rss_bytes), ok);
    put(o, "peak_rss_sum_bytes", r->ok ? json_integer(r->peak_rss_sum_bytes) : json_null(), ok);
    put(o, "formula_bytes", rg_json_real(r->formula_bytes), ok);
    put(o, "speedup", rg_json_real(r->ok ? r->speedup : NAN), ok);
}

static json_t *rss_array(const rg_bench_result *r) {
    json_t *a = json_array();
    for (int i = 0; a && i < r->nranks_rss; i++)
        if (json_array_append_new(a, json_integer(r->rank_peak_rss_bytes[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* What the child measured; every one null when m is 0 (a failed run). */
static void put_measured_fields(json_t *o, const rg_bench_result *r, int m, int child_only, int *ok) {
    put(o, "plugin_name", m ? rg_json_text(r->plugin_name) : json_null(), ok);
    put(o, "describe", m ? rg_json_text(r->describe) : json_null(), ok);
    put(o, "native_ops", m ? native_array(r->native_ops) : json_null(), ok);
    put(o, "step_ms",
        m ? json_pack("{s:o, s:o, s:o}", "median", rg_json_real(r->step_ms_median), "min",
                      rg_json_real(r->step_ms_min), "max", rg_json_real(r->step_ms_max))
          : json_null(),
        ok);
    put(o, "repeat_step_ms", m ? repeats_array(r) : json_null(), ok);
    const struct {
        const char *name;
        double value;
        int parent_only;
    } nums[] = {
        {"tok_per_s", r->tok_per_s, 0},     {"gflops", r->gflops, 0},
        {"peak_gflops", r->peak_gflops, 1}, {"mfu", r->mfu, 1},
        {"loss_first", r->loss_first, 0},   {"loss_last", r->loss_last, 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (!(child_only && nums[i].parent_only))
            put(o, nums[i].name, rg_json_real(m ? nums[i].value : NAN), ok);
    put(o, "ops", m ? ops_array(r) : json_null(), ok);
    put(o, "other_ms_per_step", rg_json_real(m ? r->other_ms_per_step : NAN), ok);
    put(o, "reduce_ms_per_step", rg_json_real(m ? r->reduce_ms_per_step : NAN), ok);
    put(o, "reduce_fraction", rg_json_real(m ? r->reduce_fraction : NAN), ok);
    put(o, "rank_peak_rss_bytes", m ? rss_array(r) : json_null(), ok);
}

json_t *rg_bench_result_json(const rg_bench_result *r, int child_only) {
    json_t *o = json_object();
    if (!o) return NULL;
    int ok = 1;
    if (!child_only) put(o, "backend", rg_json_text(r->backend), &ok);
    put(o, "path", rg_json_text(r->path[0] ? r->path : NULL), &ok);
    if (!child_only) put_parent_fields(o, r, &ok);
    /* Measured fields are null in a failed run (docs/bench-format.md). */
    put_measured_fields(o, r, child_only || r->ok, child_only, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void copy_str(char *dst, size_t n, const json_t *j, const char *name) {
    const char *s = json_string_value(json_object_get(j, name));
    rg_errf(dst, n, "%s", s ? s : "");
}

int rg_bench_result_parse(rg_bench_result *r, const char *line, char *err, size_t err_len) {
    json_error_t jerr;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        rg_errf(err, err_len, "JSON: %s at offset %d", jerr.text, jerr.position);
        return -1;
    }
    const json_t *steps = json_object_get(j, "step_ms"), *reps = json_object_get(j, "repeat_step_ms");
    const json_t *ops = json_object_get(j, "ops"), *native = json_object_get(j, "native_ops");
    if (!json_is_object(j) || !json_is_array(reps) || !json_is_array(ops) ||
        json_array_size(ops) != RG_OP_COUNT || !json_is_array(native) ||
        !isfinite(rg_json_num(steps, "median"))) {
        rg_errf(err, err_len, "result line lacks step_ms, repeat_step_ms, native_ops or ops");
        json_decref(j);
        return -1;
    }
    copy_str(r->plugin_name, sizeof r->plugin_name, j, "plugin_name");
    copy_str(r->describe, sizeof r->describe, j, "describe");
    if (json_is_string(json_object_get(j, "path"))) copy_str(r->path, sizeof r->path, j, "path");
    r->native_ops[0] = '\0';
    r->num_native_ops = (int)json_array_size(native);
    for (size_t i = 0; i < json_array_size(native); i++) {
        const char *s = json_string_value(json_array_get(native, i));
        rg_errf_append(r->native_ops, sizeof r->native_ops, "%s%s", i ? "," : "", s ? s : "");
    }
    r->step_ms_median = rg_json_num(steps, "median");
    r->step_ms_min = rg_json_num(steps, "min");
    r->step_ms_max = rg_json_num(steps, "max");
    size_t nrep = json_array_size(reps);
    r->nrepeat = nrep < RG_BENCH_MAX_REPEAT ? (int)nrep : RG_BENCH_MAX_REPEAT;
    for (int i = 0; i < r->nrepeat; i++) {
        const json_t *v = json_array_get(reps, (size_t)i);
        r->repeat_step_ms[i] = json_is_number(v) ? json_number_value(v) : NAN;
    }
    r->tok_per_s = rg_json_num(j, "tok_per_s");
    r->gflops = rg_json_num(j, "gflops");
    r->loss_first = rg_json_num(j, "loss_first");
    r->loss_last = rg_json_num(j, "loss_last");
    for (int k = 0; k < RG_OP_COUNT; k++) {
        const json_t *o = json_array_get(ops, (size_t)k);
        r->ops[k].native = json_is_true(json_object_get(o, "native"));
        r->ops[k].calls_per_step = rg_json_num(o, "calls_per_step");
        r->ops[k].ms_per_step = rg_json_num(o, "ms_per_step");
        r->ops[k].fraction = rg_json_num(o, "fraction");
    }
    r->other_ms_per_step = rg_json_num(j, "other_ms_per_step");
    r->reduce_ms_per_step = rg_json_num(j, "reduce_ms_per_step");
    r->reduce_fraction = rg_json_num(j, "reduce_fraction");
    const json_t *rss = json_object_get(j, "rank_peak_rss_bytes");
    size_t nr = json_is_array(rss) ? json_array_size(rss) : 0;
    r->nranks_rss = nr < RG_BENCH_MAX_RANKS ? (int)nr : RG_BENCH_MAX_RANKS;
    for (int k = 0; k < r->nranks_rss; k++)
        r->rank_peak_rss_bytes[k] = (long long)json_number_value(json_array_get(rss, (size_t)k));
    json_decref(j);
    return 0;
}
