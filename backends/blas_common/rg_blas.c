/* Shared parts of the BLAS backends: split sgemm, create/destroy/describe, CPU features, options,
 * library loading. */
#define _GNU_SOURCE /* RTLD_NOLOAD, pipe2 */
#include "rg_blas.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long rg_blas_probe waits for its child's answer (loading a BLAS takes milliseconds). */
#define RG_BLAS_PROBE_MS 10000

/* Fewest rows (or columns) of c per block: below that a block's packing costs more than the
 * parallelism saves. */
#define RG_BLAS_GRAIN 32

typedef struct gemm_split {
    rg_blas_gemm_fn fn;
    const rg_blas_gemm *g;
    int by_cols; /* 1: blocks of columns of c, 0: blocks of rows */
} gemm_split;

/* One block [begin, end) of rows or columns of c: the same sgemm on the matching slices. */
static void gemm_block(void *arg, int64_t begin, int64_t end, int tid) {
    const gemm_split *s = arg;
    rg_blas_gemm g = *s->g;
    int64_t n = end - begin;
    if (s->by_cols) {
        /* columns j of op(b): b[:, j] or, transposed, b[j, :] */
        g.N = (int)n;
        g.b += g.trans_b ? begin * g.ldb : begin;
        g.c += begin;
    } else {
        /* rows i of op(a): a[i, :] or, transposed, a[:, i] */
        g.M = (int)n;
        g.a += g.trans_a ? begin : begin * g.lda;
        g.c += begin * g.ldc;
    }
    s->fn(&g);
}

void rg_blas_gemm_run(rg_par *par, rg_blas_gemm_fn fn, const rg_blas_gemm *g) {
    if (g->M <= 0 || g->N <= 0) {
        return;
    }
    gemm_split s = {fn, g, g->N > g->M};
    /* One block per thread, not the pool's usual few per thread: every block packs its operands
     * again (a weight gradient's block packs all of inp), and when the thread count adapts down
     * to one thread the blocks run one after another, so more blocks would be more packing for
     * nothing (measured: 2 threads beside one busy process, 8 blocks ran 1.1x slower than 1
     * thread). The split is the same whichever way the blocks run, so are the results. */
    int64_t n = s.by_cols ? g->N : g->M;
    int64_t grain = n / par->num_threads;
    rg_par_for(par, n, grain > RG_BLAS_GRAIN ? grain : RG_BLAS_GRAIN, gemm_block, &s);
}

void rg_blas_matmul_forward(rg_backend_ctx *ctx, float *out, const float *inp, const float *weight,
                            int N, int C, int OC) {
    /* out (N,OC) = inp (N,C) @ weight^T, weight stored (OC,C) */
    rg_blas_gemm g = {.M = N, .N = OC, .K = C, .trans_a = 0, .trans_b = 1, .a = inp, .lda = C,
                      .b = weight, .ldb = C, .beta = 0.0f, .c = out, .ldc = OC};
    rg_blas_gemm_run(ctx->pb.par, ctx->gemm, &g);
}

void rg_blas_matmul_backward(rg_backend_ctx *ctx, float *dinp, float *dweight, const float *dout,
                             const float *inp, const float *weight, int N, int C, int OC) {
    /* dinp (N,C) = dout (N,OC) @ weight (OC,C), overwritten: beta 0, and the blocks of
     * rg_blas_gemm_run cover every element of dinp */
    rg_blas_gemm gi = {.M = N, .N = C, .K = OC, .trans_a = 0, .trans_b = 0, .a = dout, .lda = OC,
                       .b = weight, .ldb = C, .beta = 0.0f, .c = dinp, .ldc = C};
    rg_blas_gemm_run(ctx->pb.par, ctx->gemm, &gi);
    /* dweight (OC,C) += dout^T @ inp (N,C), dout stored (N,OC) */
    rg_blas_gemm gw = {.M = OC, .N = C, .K = N, .trans_a = 1, .trans_b = 0, .a = dout, .lda = OC,
                       .b = inp, .ldb = C, .beta = 1.0f, .c = dweight, .ldc = C};
    rg_blas_gemm_run(ctx->pb.par, ctx->gemm, &gw);
}

/* One lock per plugin (each links its own copy of this file): the library is chosen and loaded
 * under it. */
static pthread_mutex_t choose_lock = PTHREAD_MUTEX_INITIALIZER;

rg_backend_ctx *rg_blas_create(const rg_backend_config *cfg, const char *backend, const char *key,
                               rg_blas_choose_fn choose, rg_blas_gemm_fn gemm, char *err,
                               size_t err_len) {
    const char *want = NULL;
    int threads = rg_blas_config(cfg, backend, key, &want, err, err_len);
    int adapt = threads < 0 ? -1 : rg_par_config_adapt(cfg, backend, err, err_len);
    if (adapt < 0) {
        return NULL;
    }
    rg_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, err_len, "backend %s: out of memory", backend);
        return NULL;
    }
    pthread_mutex_lock(&choose_lock);
    int rc = choose(want, err, err_len);
    pthread_mutex_unlock(&choose_lock);
    if (rc != 0) {
        free(ctx);
        return NULL;
    }
    rg_par *par = rg_par_pthreads_create(threads, err, err_len);
    if (!par) {
        free(ctx);
        return NULL;
    }
    rg_par_set_adaptive(par, adapt); /* off never fails; on is the pool's default */
    rg_par_backend_init(&ctx->pb, par);
    ctx->gemm = gemm;
    return ctx;
}

void rg_blas_destroy(rg_backend_ctx *ctx) {
    if (!ctx) {
        return;
    }
    if (ctx->pb.par) {
        rg_par_backend_release(&ctx->pb);
    }
    free(ctx); /* the library stays loaded: see rg_blas.h */
}

void rg_blas_describe(const rg_backend_ctx *ctx, const char *library, const char *build,
                      const char *kind, const char *kernels, const char *how, char *buf,
                      size_t buf_len) {
    int n = ctx->pb.par->num_threads;
    char adapt[160];
    rg_par_adapt_describe(ctx->pb.par, adapt, sizeof adapt);
    snprintf(buf, buf_len,
             "%s (%s), %s %s (%s); %d thread%s on one pthread pool: "
             "each sgemm as %d single-threaded block%s, other ops rg_parallel %s kernels, %s",
             library, build, kind, kernels, how, n, n == 1 ? "" : "s", n, n == 1 ? "" : "s",
             rg_par_kernel_isa(), adapt);
}

int rg_blas_cpu_has(rg_blas_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    /* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0) */
    __builtin_cpu_init();
    switch (isa) {
    case RG_BLAS_ISA_NONE:
        return 1;
    case RG_BLAS_ISA_AVX:
        return __builtin_cpu_supports("avx");
    case RG_BLAS_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case RG_BLAS_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case RG_BLAS_ISA_AVX512_PHI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512er") &&
               __builtin_cpu_supports("avx512pf");
    case RG_BLAS_ISA_FMA4:
        return __builtin_cpu_supports("fma4");
    }
    return 0;
#else
    return isa == RG_BLAS_ISA_NONE;
#endif
}

const char *rg_blas_isa_name(rg_blas_isa isa) {
    switch (isa) {
    case RG_BLAS_ISA_NONE:
        return "generic";
    case RG_BLAS_ISA_AVX:
        return "AVX";
    case RG_BLAS_ISA_AVX2:
        return "AVX2";
    case RG_BLAS_ISA_AVX512:
        return "AVX-512";
    case RG_BLAS_ISA_AVX512_PHI:
        return "AVX-512 ER/PF";
    case RG_BLAS_ISA_FMA4:
        return "FMA4";
    }
    return "?";
}

int rg_blas_config(const rg_backend_config *cfg, const char *backend, const char *key,
                   const char **value, char *err, size_t err_len) {
    *value = NULL;
    if (!cfg) {
        snprintf(err, err_len, "backend %s: no configuration given", backend);
        return -1;
    }
    if (cfg->num_threads < 1) {
        snprintf(err, err_len, "backend %s needs at least 1 thread (got %d)", backend,
                 cfg->num_threads);
        return -1;
    }
    for (int i = 0; i < cfg->num_options; i++) {
        const rg_option *o = &cfg->options[i];
        const char *k = o->key ? o->key : "";
        if (!strcmp(k, "adapt")) {
            continue; /* rg_par_config_adapt's */
        }
        if (strcmp(k, key) != 0) {
            snprintf(err, err_len,
                     "unknown option '%s' for backend %s (it takes only %s=NAME and adapt=on|off)",
                     k, backend, key);
            return -1;
        }
        if (*value) {
            snprintf(err, err_len, "backend %s: option %s given twice", backend, key);
            return -1;
        }
        if (!o->value || !o->value[0]) {
            snprintf(err, err_len, "backend %s: option %s needs a value (%s=NAME)", backend, key,
                     key);
            return -1;
        }
        *value = o->value;
    }
    return cfg->num_threads;
}

void *rg_blas_open(const char *lib, const rg_blas_env *env, int n, rg_blas_init_fn init,
                   void *user, char *err, size_t err_len) {
    enum { MAX_ENV = 4 };
    char *saved[MAX_ENV] = {0};
    int had[MAX_ENV] = {0};
    if (n > MAX_ENV) {
        snprintf(err, err_len, "%s: too many environment variables to set (%d)", lib, n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!env[i].value) {
            continue;
        }
        const char *old = getenv(env[i].name);
        had[i] = old != NULL;
        saved[i] = old ? strdup(old) : NULL;
        setenv(env[i].name, env[i].value, 1);
    }
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, err_len, "cannot load %s: %s", lib, dlerror());
    } else if (init) {
        init(h, user);
    }
    /* the library read its variables while it initialised: give the process its environment back */
    for (int i = 0; i < n; i++) {
        if (!env[i].value) {
            continue;
        }
        if (had[i]) {
            setenv(env[i].name, saved[i] ? saved[i] : "", 1);
        } else {
            unsetenv(env[i].name);
        }
        free(saved[i]);
    }
    return h;
}

void *rg_blas_loaded(const char *lib) {
    return dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
}

void *rg_blas_sym(void *handle, const char *lib, const char *name, char *err, size_t err_len) {
    void *p = dlsym(handle, name);
    if (!p) {
        snprintf(err, err_len, "%s has no symbol %s (not the expected library?)", lib, name);
    }
    return p;
}

/* The probe's child: loads lib with env set and writes the name of its kernel set and a newline to
 * fd. Never returns. Only this process exits: no atexit handlers, no stdio flush, no leak check. */
static void probe_child(int fd, const char *lib, const rg_blas_env *env, int n,
                        rg_blas_name_fn name_fn) {
    for (int i = 0; i < n; i++) {
        if (env[i].value) {
            setenv(env[i].name, env[i].value, 1);
        }
    }
    char name[128];
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h || name_fn(h, name, sizeof(name) - 1) != 0) {
        _exit(1);
    }
    size_t len = strlen(name);
    name[len++] = '\n';
    _exit(write(fd, name, len) == (ssize_t)len ? 0 : 1);
}

int rg_blas_probe(const char *lib, const rg_blas_env *env, int n, rg_blas_name_fn name_fn,
                  char *name, size_t name_len, char *err, size_t err_len) {
    /* Why a child: the answer needs the library initialised, and an initialised BLAS cannot be
     * unloaded again (rg_blas.h), so this process would be stuck with the kernels of the question.
     * O_CLOEXEC: a program started meanwhile by another thread must not hold the write end. */
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "no pipe to a child process: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_len, "cannot fork a child process: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        probe_child(fd[1], lib, env, n, name_fn);
    }
    close(fd[1]);
    /* one line; a child stuck after fork (a lock some other thread held) is killed after a while */
    size_t got = 0;
    int line = 0, timed_out = 0;
    while (!line && got + 1 < name_len) {
        struct pollfd p = {.fd = fd[0], .events = POLLIN};
        int r = poll(&p, 1, RG_BLAS_PROBE_MS);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            timed_out = 1;
            break;
        }
        ssize_t k = read(fd[0], name + got, name_len - 1 - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        char *nl = memchr(name + got, '\n', (size_t)k);
        got = nl ? (size_t)(nl - name) : got + (size_t)k;
        line = nl != NULL;
    }
    close(fd[0]);
    name[got] = '\0';
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    /* w < 0 (ECHILD): SIGCHLD is ignored and the child reaped itself; its line is the answer */
    if (line && got > 0 && (w < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
        return 0;
    }
    if (timed_out) {
        snprintf(err, err_len, "the child process that loaded %s gave no answer in %d s", lib,
                 RG_BLAS_PROBE_MS / 1000);
    } else if (w == pid && WIFSIGNALED(status)) {
        snprintf(err, err_len, "the child process that loaded %s died of signal %d", lib,
                 WTERMSIG(status));
    } else {
        snprintf(err, err_len, "the child process could not load %s or read its choice", lib);
    }
    return -1;
}
