/* The parts every parallel backend shares: chunking with a grain, the backend part of a context
 * and its workspace. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rg_par_internal.h"

static void run_in_mode(rg_par *par, int alone, int64_t n, int nchunks, rg_range_fn fn,
                        void *arg) {
    if (alone) {
        rg_par_run_alone(n, nchunks, fn, arg);
    } else {
        par->run(par, n, nchunks, fn, arg);
    }
}

void rg_par_for(rg_par *par, int64_t n, int64_t grain, rg_range_fn fn, void *arg) {
    if (n <= 0) {
        return;
    }
    if (grain < 1) {
        grain = 1;
    }
    int64_t chunks = n / grain;
    if (chunks > par->max_chunks) {
        chunks = par->max_chunks;
    }
    if (chunks <= 1) {
        fn(arg, 0, n, 0); /* too small to pay for a wake-up */
        return;
    }
    int alone = par->adapt && par->adapt->mode == RG_PAR_ALONE;
    if (!par->adapt || par->adapt->in_composite) { /* a composite is timed by its end */
        run_in_mode(par, alone, n, (int)chunks, fn, arg);
        return;
    }
    rg_par_site *site = rg_par_adapt_site(par->adapt, fn, n, (int)chunks);
    double t0 = rg_par_now_s();
    run_in_mode(par, alone, n, (int)chunks, fn, arg);
    rg_par_adapt_record(par->adapt, site, rg_par_now_s() - t0);
}

int rg_par_composite_begin(rg_par *par) {
    if (!par->adapt) {
        return par->num_threads;
    }
    par->adapt->in_composite = 1;
    par->adapt->composite_t0 = rg_par_now_s();
    return par->adapt->mode == RG_PAR_ALONE ? 1 : par->num_threads;
}

void rg_par_composite_end(rg_par *par, rg_range_fn key, int64_t n, int nchunks) {
    if (!par->adapt) {
        return;
    }
    rg_par_adapt *a = par->adapt;
    a->in_composite = 0;
    rg_par_adapt_record(a, rg_par_adapt_site(a, key, n, nchunks), rg_par_now_s() - a->composite_t0);
}

int rg_par_set_adaptive(rg_par *par, int on) {
    if (!on) {
        free(par->adapt);
        par->adapt = NULL;
        return 0;
    }
    if (!par->adapt && par->num_threads > 1) {
        par->adapt = malloc(sizeof(*par->adapt));
        if (!par->adapt) {
            return -1;
        }
        rg_par_adapt_init(par->adapt);
    }
    return 0;
}

void rg_par_adapt_init(rg_par_adapt *a) {
    memset(a, 0, sizeof(*a));
    a->choice = a->mode = RG_PAR_ALL;
    a->until_probe = RG_PAR_ADAPT_WARMUP;
    a->interval = RG_PAR_ADAPT_MIN_PROBE;
}

/* A slot index from the site's key (a pointer and two sizes): a multiplicative hash. */
static unsigned site_slot(rg_range_fn fn, int64_t n, int nchunks) {
    uint64_t h = (uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ULL;
    h ^= (uint64_t)n * 0xC2B2AE3D27D4EB4FULL + (uint64_t)nchunks;
    h *= 0x9E3779B97F4A7C15ULL;
    return (unsigned)(h >> 32) % RG_PAR_ADAPT_SITES;
}

/* The site's slot is the first of RG_PAR_ADAPT_PROBE_SLOTS from its hash that holds it or is
 * free, so that two sites whose hashes meet (it depends on where the code was loaded) keep their
 * estimates; when all are taken by others, the first is started afresh. */
rg_par_site *rg_par_adapt_site(rg_par_adapt *a, rg_range_fn fn, int64_t n, int nchunks) {
    unsigned first = site_slot(fn, n, nchunks);
    for (unsigned i = 0; i < RG_PAR_ADAPT_PROBE_SLOTS; i++) {
        rg_par_site *s = &a->sites[(first + i) % RG_PAR_ADAPT_SITES];
        if (s->fn == fn && s->n == n && s->nchunks == nchunks) {
            return s;
        }
        if (!s->fn) {
            *s = (rg_par_site){.fn = fn, .n = n, .nchunks = nchunks};
            return s;
        }
    }
    rg_par_site *s = &a->sites[first];
    *s = (rg_par_site){.fn = fn, .n = n, .nchunks = nchunks};
    return s;
}

/* The end of a window: the choice (switched only by a probe that won) and the next window's mode.
 * RG_PAR_ADAPT_LOSSES windows in a row of a choice that lost to the other mode's estimate bring
 * the next probe forward instead of switching: that estimate may be old, and the machine's load
 * changes, so the other mode is measured again first. */
static void end_window(rg_par_adapt *a) {
    a->windows[a->mode]++;
    int probe = a->mode != a->choice;
    int mode_won = a->spent > 0 && a->spent < RG_PAR_ADAPT_MARGIN * a->other;
    int other_won = a->other > 0 && a->other < RG_PAR_ADAPT_MARGIN * a->spent;
    if (!probe) {
        a->losses = other_won ? a->losses + 1 : 0;
        if (a->losses >= RG_PAR_ADAPT_LOSSES) {
            a->losses = 0;
            a->until_probe = 0;
        }
    }
    if (probe && mode_won) {
        a->choice = !a->choice;
        a->losses = 0;
        a->interval = RG_PAR_ADAPT_MIN_PROBE;
        a->until_probe = a->interval;
    } else if (probe) {
        a->interval = a->interval * RG_PAR_ADAPT_GROWTH < RG_PAR_ADAPT_MAX_PROBE
                          ? a->interval * RG_PAR_ADAPT_GROWTH
                          : RG_PAR_ADAPT_MAX_PROBE;
        a->until_probe = a->interval;
    }
    int next = a->choice;
    if (!probe && a->until_probe-- <= 0) {
        next = !a->choice;
    }
    a->cold = next != a->mode;
    a->mode = next;
    a->calls = 0;
    a->spent = a->other = 0.0;
}

void rg_par_adapt_record(rg_par_adapt *a, rg_par_site *s, double seconds) {
    int m = a->mode;
    if (!a->cold) {
        s->est[m] = s->est[m] > 0 ? s->est[m] + RG_PAR_ADAPT_WEIGHT * (seconds - s->est[m])
                                  : seconds;
        if (s->est[!m] > 0) {
            a->spent += seconds;
            a->other += s->est[!m];
        }
    }
    a->cold = 0;
    int window = m == a->choice ? RG_PAR_ADAPT_WINDOW : RG_PAR_ADAPT_PROBE;
    if (++a->calls == window) {
        end_window(a);
    }
}

void rg_par_adapt_describe(const rg_par *par, char *buf, size_t buf_len) {
    const rg_par_adapt *a = par->adapt;
    if (!a) {
        snprintf(buf, buf_len, "%s",
                 par->num_threads > 1 ? "thread count fixed (adapt=off)" : "thread count fixed");
        return;
    }
    long long alone = a->windows[RG_PAR_ALONE], total = alone + a->windows[RG_PAR_ALL];
    char count[80] = ""; /* none before the first window ends */
    if (total > 0) {
        snprintf(count, sizeof count, "; one thread in %lld of %lld windows so far", alone, total);
    }
    snprintf(buf, buf_len, "thread count adaptive (every thread or one, per window of ops%s)",
             count);
}

void rg_par_backend_init(rg_par_backend *pb, rg_par *par) {
    pb->par = par;
    pb->ws = NULL;
    pb->ws_floats = 0;
    pb->kernels = rg_par_kernels_find(NULL, NULL, 0); /* auto never fails */
    pb->kernels_forced = 0;
}

void rg_par_backend_release(rg_par_backend *pb) {
    if (pb->par) {
        pb->par->destroy(pb->par);
    }
    free(pb->ws);
    rg_par_backend_init(pb, NULL);
}

float *rg_par_workspace(rg_par_backend *pb, size_t shared_floats, size_t per_thread_floats) {
    size_t need = rg_par_thread_offset(shared_floats, per_thread_floats, pb->par->num_threads);
    if (need > pb->ws_floats) {
        free(pb->ws);
        size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
        pb->ws = aligned_alloc(64, bytes);
        if (!pb->ws) {
            /* ops cannot return an error: out of memory here is fatal, said in one line */
            fprintf(stderr, "randygpt: out of memory for %zu bytes of kernel workspace\n", bytes);
            abort();
        }
        pb->ws_floats = need;
    }
    return pb->ws;
}

/* The thread count of cfg, options aside; -1 with one line in err. */
static int config_thread_count(const rg_backend_config *cfg, const char *backend, char *err,
                               size_t err_len) {
    if (cfg->num_threads < 1) {
        snprintf(err, err_len, "backend %s needs at least 1 thread (got %d)", backend,
                 cfg->num_threads);
        return -1;
    }
    return cfg->num_threads;
}

int rg_par_config_threads(const rg_backend_config *cfg, const char *backend, char *err,
                          size_t err_len) {
    return rg_par_config_kernels(cfg, backend, NULL, err, err_len);
}

/* kernels NULL: the backend takes no option at all. */
int rg_par_config_kernels(const rg_backend_config *cfg, const char *backend,
                          const rg_par_kernels **kernels, char *err, size_t err_len) {
    if (!cfg) {
        snprintf(err, err_len, "backend %s: no configuration given", backend);
        return -1;
    }
    if (kernels) {
        *kernels = NULL;
    }
    for (int i = 0; i < cfg->num_options; i++) {
        const char *key = cfg->options[i].key ? cfg->options[i].key : "";
        if (kernels && !strcmp(key, "adapt")) {
            continue; /* rg_par_config_adapt's */
        }
        if (!kernels || strcmp(key, "kernels") != 0) {
            snprintf(err, err_len, "unknown option '%s' for backend %s", key, backend);
            return -1;
        }
        char why[160];
        const char *value = cfg->options[i].value ? cfg->options[i].value : "";
        *kernels = rg_par_kernels_find(value, why, sizeof why);
        if (!*kernels) {
            snprintf(err, err_len, "backend %s: %s", backend, why);
            return -1;
        }
        if (!strcmp(value, "auto")) {
            *kernels = NULL; /* chosen for the CPU, as without the option */
        }
    }
    return config_thread_count(cfg, backend, err, err_len);
}

int rg_par_config_adapt(const rg_backend_config *cfg, const char *backend, char *err,
                        size_t err_len) {
    int on = 1;
    for (int i = 0; cfg && i < cfg->num_options; i++) {
        const rg_option *o = &cfg->options[i];
        if (!o->key || strcmp(o->key, "adapt") != 0) {
            continue;
        }
        const char *v = o->value ? o->value : "";
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
            snprintf(err, err_len, "backend %s: adapt must be on or off, not '%s'", backend, v);
            return -1;
        }
        on = !strcmp(v, "on");
    }
    return on;
}

const char *rg_par_kernel_isa(void) {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "AVX2";
#else
    return "generic";
#endif
}

double rg_par_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
