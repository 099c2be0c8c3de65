/* The parts every parallel backend shares: chunking with a grain, the backend part of a context
 * and its workspace. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rg_par_internal.h"

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
    par->run(par, n, (int)chunks, fn, arg);
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
