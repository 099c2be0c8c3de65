/*
 * Conformance suite (see conformance.h): a backend against the reference kernels and model.
 *
 * The parent process never creates an instance or calls an op: every group of checks runs in a
 * forked child with its own instance, and sends each result back through a pipe as it is measured,
 * preceded by a note of the case it is about to run. So a crash is reported with the op and shape
 * it happened in, a hang ends at the timeout, and `check` itself always finishes. Buffers are
 * placed against guard pages (mmap + mprotect) and surrounded by canaries: an access beyond the
 * end or before the start faults in the child, whose handler names the op, the buffer and the side.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, REG_ERR */
#include "randygpt/conformance.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "randygpt/model.h"
#include "randygpt/op_case.h"
#include "randygpt/replicas.h"
#include "randygpt/ops.h"
#include "randygpt/rng.h"
#include "randygpt/text.h"

/* ---- tolerances ----
 * The op checks' bounds come with their cases (op_case.c), derived from the shape; the model
 * checks' from the model's shape (model_tolerances). */

/* The vocabulary size of the op checks and of the model checks (the default corpus has 67). */
#define CONF_V 67
/* Op checks of big presets cap B so that B*T*C^2 stays within the small preset's. */
#define CONF_MAX_TCC (2048.0 * 128.0 * 128.0)
/* Model checks: the tiny preset at this batch, cycling over a few fixed synthetic batches. */
#define CONF_MODEL_B 4
#define CONF_NUM_BATCHES 4
#define CONF_MAX_BUFS 1024
#define CONF_MAX_PRESETS 16
#define CONF_MAX_KEYS 256
#define CANARY 0xA5

/* One buffer between two guard pages: [guard][data pages][guard]. The buffer ends right at the
 * second guard (PLACE_END), starts right after the first (PLACE_START), or starts 4 bytes past a
 * multiple of 8 (PLACE_ODD: the contract guarantees a float's alignment only, and a kernel that
 * assumes a vector's faults); the rest of the data pages holds canaries. */
enum { PLACE_END, PLACE_START, PLACE_ODD };
typedef struct gbuf {
    char *map;
    size_t map_len, data_len;
    char *p;
    size_t bytes;
    const char *name; /* set for the backend's side of a case, for the fault report */
} gbuf;

/* Shapes passed by an op so far in this group, for the hints. */
enum { OK_SHORT_T = 1, OK_ALIGNED = 2, OK_SMALL_N = 4 };

typedef struct conf {
    const rg_backend *table;
    rg_ops *be;                /* the instance of the current group, optional ops resolved */
    const rg_conf_options *opt;
    const rg_conf_report *rep; /* used by the parent */
    rg_rng rng;
    int failures;
    int oom;                   /* an allocation failed: the run stops with an error */
    gbuf bufs[CONF_MAX_BUFS];  /* buffers of the current check, freed by release() */
    int nbufs;
    int fd;                    /* in a child: the pipe to the parent; -1 in the parent */
    const char *check;         /* the current group's class of checks */
    int threads;               /* of the current instance */
    int place;                 /* where take() puts a buffer in its pages, a PLACE_* */
    const char *variant;       /* values group: what is unusual about the inputs, for the hint */
    const char *variant_hint;
    unsigned ok[RG_OP_COUNT];  /* OK_* of each op so far in this group */
    int case_failed;           /* a check of the current case failed */
    /* failing checks at 1 thread ("op output shape"), for the hints of the other counts */
    char one_thread_fail[CONF_MAX_KEYS][160];
    int num_one_thread_fail;
    int train_steps;
} conf;

/* One shape of the op checks: label ("small" or "odd"), batch, sequence, channels, heads. */
typedef struct conf_shape {
    const char *label;
    int B, T, C, NH, V;
} conf_shape;

/* What a child sends: results, notes, the case about to run, and the end. */
enum { MSG_RESULT, MSG_NOTE, MSG_RUNNING, MSG_DONE, MSG_REFUSED };
typedef struct conf_msg {
    int kind;
    rg_conf_result r;
    double allow_s; /* MSG_RUNNING: seconds the call may take on top of the no-progress timeout */
    char text[400];
} conf_msg;

/* The slowest rate a correct kernel is granted (the plain reference under sanitizers on a busy
 * machine runs near 0.3 GFLOP/s), so that a big case (the large preset's matmuls at their full
 * batch: tens of GFLOP) is not taken for a hang. */
#define CONF_SLOWEST_FLOPS_PER_S 1e8

/* ---- guarded buffers ---- */

static size_t page_size(void) {
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

static void *take(conf *c, size_t bytes) {
    /* PLACE_ODD: offsets 4, 12, ..., 60 in turn, none a multiple of 8 */
    size_t ps = page_size(), odd = c->place == PLACE_ODD ? 4 + 8 * (size_t)(c->nbufs % 8) : 0;
    size_t data = (bytes + odd + ps - 1) / ps * ps;
    if (data == 0) data = ps;
    char *map = c->nbufs < CONF_MAX_BUFS ? mmap(NULL, data + 2 * ps, PROT_READ | PROT_WRITE,
                                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                                         : MAP_FAILED;
    if (map == MAP_FAILED) {
        c->oom = 1;
        return NULL;
    }
    if (mprotect(map, ps, PROT_NONE) != 0 || mprotect(map + ps + data, ps, PROT_NONE) != 0) {
        munmap(map, data + 2 * ps);
        c->oom = 1;
        return NULL;
    }
    memset(map + ps, CANARY, data);
    char *p = c->place == PLACE_START ? map + ps
              : c->place == PLACE_ODD ? map + ps + odd
                                      : map + ps + data - bytes;
    c->bufs[c->nbufs++] = (gbuf){map, data + 2 * ps, data, p, bytes, NULL};
    return p;
}

static void release(conf *c) {
    for (int i = 0; i < c->nbufs; i++) munmap(c->bufs[i].map, c->bufs[i].map_len);
    c->nbufs = 0;
}

static gbuf *gbuf_of(conf *c, const void *p) {
    for (int i = 0; i < c->nbufs; i++)
        if (c->bufs[i].p == p) return &c->bufs[i];
    return NULL;
}

/* 0 when the canaries beside g's buffer are intact; -1 when a byte before its start was written,
 * 1 when one after its end was. */
static int canary_side(const gbuf *g) {
    const unsigned char *lo = (const unsigned char *)g->map + page_size();
    const unsigned char *hi = lo + g->data_len, *p = (const unsigned char *)g->p;
    for (const unsigned char *q = lo; q < p; q++)
        if (*q != CANARY) return -1;
    for (const unsigned char *q = p + g->bytes; q < hi; q++)
        if (*q != CANARY) return 1;
    return 0;
}

/* ---- results: sent to the parent from a child, delivered to the report in the parent ---- */

static void send_msg(int fd, const conf_msg *m) {
    const char *p = (const char *)m;
    size_t left = sizeof *m;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        left -= (size_t)n;
    }
}

static void deliver(conf *c, const rg_conf_result *r) {
    if (!r->pass) {
        c->failures++;
        if (!strcmp(r->check, "threads") && r->threads == 1 &&
            c->num_one_thread_fail < CONF_MAX_KEYS)
            snprintf(c->one_thread_fail[c->num_one_thread_fail++], 160, "%s %s %s", r->name,
                     r->output, r->shape);
    }
    if (c->rep && c->rep->result) c->rep->result(c->rep->user, r);
}

static void note(conf *c, const char *line) {
    if (c->fd >= 0) {
        conf_msg m;
        memset(&m, 0, sizeof m);
        m.kind = MSG_NOTE;
        snprintf(m.text, sizeof m.text, "%s", line);
        send_msg(c->fd, &m);
    } else if (c->rep && c->rep->note) {
        c->rep->note(c->rep->user, line);
    }
}

static void emit_result(conf *c, rg_conf_result *r) {
    r->pass = r->error <= r->tolerance; /* false for NaN and INFINITY */
    if (!r->pass) c->case_failed = 1;
    if (r->pass) r->hint[0] = '\0';
    if (c->fd >= 0) {
        conf_msg m;
        memset(&m, 0, sizeof m);
        m.kind = MSG_RESULT;
        m.r = *r;
        send_msg(c->fd, &m);
    } else {
        deliver(c, r);
    }
}

static void emit(conf *c, const char *part, const char *name, const char *output,
                 const char *shape, int native, double error, double tolerance, const char *bound,
                 const char *hint) {
    rg_conf_result r;
    memset(&r, 0, sizeof r);
    r.part = part;
    snprintf(r.check, sizeof r.check, "%s", c->check ? c->check : part);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.output, sizeof r.output, "%s", output);
    snprintf(r.shape, sizeof r.shape, "%s", shape);
    snprintf(r.bound, sizeof r.bound, "%s", bound ? bound : "");
    snprintf(r.hint, sizeof r.hint, "%s", hint ? hint : "");
    r.threads = c->threads;
    r.native = native;
    r.error = error;
    r.tolerance = tolerance;
    emit_result(c, &r);
}

/* ---- the fault handler of a child: a guard page hit names the buffer and the side ---- */

static conf *fault_conf;             /* the child's suite state */
static char fault_running[96];      /* "op shape" of the call in progress */
static const char *fault_op = "(none)";

static void on_fault(int sig, siginfo_t *si, void *ucv) {
    conf *c = fault_conf;
    conf_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MSG_RESULT;
    rg_conf_result *r = &m.r;
    r->part = "run";
    snprintf(r->check, sizeof r->check, "%s", c->check);
    snprintf(r->name, sizeof r->name, "%s", fault_op);
    snprintf(r->shape, sizeof r->shape, "%s", fault_running);
    r->threads = c->threads;
    r->native = -1;
    r->error = INFINITY;
    const char *access = "an access";
#if defined(__x86_64__) && defined(REG_ERR)
    const ucontext_t *uc = ucv;
    if (sig == SIGSEGV) access = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? "a write" : "a read";
#else
    (void)ucv;
#endif
    const char *a = si ? (const char *)si->si_addr : NULL;
    size_t ps = page_size();
    snprintf(r->output, sizeof r->output, "crashed");
    snprintf(r->hint, sizeof r->hint, "signal %d (%s) while running it: a bad pointer or an index "
             "out of range?", sig, strsignal(sig));
    if (c->place == PLACE_ODD && (sig == SIGSEGV || sig == SIGBUS))
        snprintf(r->hint, sizeof r->hint, "signal %d with buffers aligned to a float only: an "
                 "aligned vector load or store (backend.h: 4-byte alignment)?", sig);
    for (int i = 0; sig == SIGSEGV && a && i < c->nbufs; i++) {
        const gbuf *g = &c->bufs[i];
        if (!g->name) continue;
        int before = a >= g->map && a < g->map + ps;
        int after = a >= g->map + ps + g->data_len && a < g->map + g->map_len;
        if (!before && !after) continue;
        snprintf(r->check, sizeof r->check, "memory");
        snprintf(r->output, sizeof r->output, "%s", g->name);
        snprintf(r->hint, sizeof r->hint, "%s %s of %s (guard page): %s", access,
                 after ? "past the end" : "before the start", g->name,
                 after ? "a vector tail or a loop bound off by one?" : "a negative index?");
        break;
    }
    send_msg(c->fd, &m);
    _exit(70);
}

static void install_fault_handlers(conf *c) {
    fault_conf = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

/* Tells the parent (and the fault handler) which call is about to run, and how many FLOPs it and
 * the reference call after it do together. */
static void running_costly(conf *c, const char *name, const char *shape, double flops) {
    fault_op = name;
    snprintf(fault_running, sizeof fault_running, "%s", shape);
    if (c->fd < 0) return;
    conf_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MSG_RUNNING;
    m.allow_s = flops / CONF_SLOWEST_FLOPS_PER_S;
    snprintf(m.text, sizeof m.text, "%s", shape);
    snprintf(m.r.name, sizeof m.r.name, "%s", name);
    send_msg(c->fd, &m);
}

static void running_named(conf *c, const char *name, const char *shape) {
    running_costly(c, name, shape, 0.0);
}

static void running(conf *c, rg_op_kind op, const char *shape) {
    running_named(c, rg_op_name(op), shape);
}

/* An op case's call, which the reference's call of the same case follows. */
static void running_case(conf *c, const rg_op_case *oc, const char *shape) {
    running_costly(c, rg_op_name(oc->op), shape, 2.0 * oc->flops);
}

/* ---- helpers ---- */

/* x is (n): uniform in [lo, hi). */
static void fill(conf *c, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rg_rng_uniform(&c->rng);
}

/* Outputs the contract overwrites (forward outputs and activation gradients) start as different
 * garbage on the two sides, so an element the backend never writes (a masked attention entry, say)
 * or adds into instead of overwriting shows as an error. */
static void fill_outputs(conf *c, float *x, float *x_ref, size_t n) {
    fill(c, x, n, -9.0f, 9.0f);
    fill(c, x_ref, n, -9.0f, 9.0f);
}

/* tokens is (n): uniform in [0, V); with n > V tokens repeat, which exercises colliding rows. */
static void fill_tokens(conf *c, int32_t *tokens, size_t n, int V) {
    for (size_t i = 0; i < n; i++) tokens[i] = (int32_t)rg_rng_below(&c->rng, (uint64_t)V);
}

/* x, ref are (rows, ld); compares columns [0, cols) of each row:
 * max|x - ref| / max(1e-6, max|ref|, floor), INFINITY when x holds a NaN or an infinity. */
static double norm_err_strided(const float *x, const float *ref, size_t rows, size_t cols,
                               size_t ld, double floor) {
    double maxd = 0.0, maxr = 0.0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++) {
            double a = x[r * ld + j], b = ref[r * ld + j];
            if (!isfinite(a)) return INFINITY;
            maxd = fmax(maxd, fabs(a - b));
            maxr = fmax(maxr, fabs(b));
        }
    }
    return maxd / fmax(fmax(1e-6, floor), maxr);
}

static double norm_err(const float *x, const float *ref, size_t n) {
    return norm_err_strided(x, ref, 1, n, n, 0.0);
}

/* x, ref, init, g are (n): the update x - init against ref - init, normalised by the largest
 * reference update (INFINITY when x holds a NaN or an infinity). AdamW's first update is about
 * lr * sign(g): where the reference gradient g is within the gradient check's own tolerance of 0
 * its sign is not determined, so those elements are not judged. */
static double update_err(const float *x, const float *ref, const float *init, const float *g,
                         size_t n, double grad_tol) {
    double gmax = 0.0, maxd = 0.0, maxr = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return INFINITY;
        maxr = fmax(maxr, fabs((double)ref[i] - init[i]));
        if (fabs(g[i]) > grad_tol * gmax) maxd = fmax(maxd, fabs((double)x[i] - ref[i]));
    }
    return maxd / fmax(1e-12, maxr);
}

static double rel_err(double x, double ref) {
    if (!isfinite(x)) return INFINITY;
    return fabs(x - ref) / fmax(1e-6, fabs(ref));
}

static int is_native(const conf *c, rg_op_kind op) { return (int)((c->be->native_mask >> op) & 1u); }

/* ---- hints: the likely cause of a failing op check ---- */

static int is_attention(rg_op_kind op) {
    return op == RG_OP_ATTENTION_FORWARD || op == RG_OP_ATTENTION_BACKWARD;
}

/* The OK_* classes a case's shape belongs to. */
static unsigned shape_classes(const rg_op_case *oc) {
    const rg_op_dims *d = &oc->d;
    int hs = d->NH > 0 ? d->C / d->NH : 0;
    unsigned k = 0;
    if (d->T <= 64) k |= OK_SHORT_T;
    if (d->C % 16 == 0 && (!is_attention(oc->op) || hs % 16 == 0) && d->n % 16 == 0 &&
        d->OC % 16 == 0)
        k |= OK_ALIGNED;
    if ((size_t)d->B * d->T <= 4096) k |= OK_SMALL_N;
    return k;
}

/* 1 when the check "op output shape" failed at 1 thread too. */
static int failed_at_one_thread(const conf *c, const char *key) {
    for (int i = 0; i < c->num_one_thread_fail; i++)
        if (!strcmp(c->one_thread_fail[i], key)) return 1;
    return 0;
}

static void op_hint(conf *c, const rg_op_case *oc, const char *output, const char *shape,
                    double error, double tol, char *h, size_t n) {
    const rg_op_dims *d = &oc->d;
    size_t N = (size_t)d->B * d->T;
    unsigned ok = c->ok[oc->op];
    int hs = d->NH > 0 ? d->C / d->NH : 0;
    if (!isfinite(error)) {
        snprintf(h, n, "NaN or infinity: overflow (a softmax without subtracting the max?), a "
                       "division by zero or an unwritten element?");
    } else if (!strcmp(c->check, "threads") && c->threads > 1) {
        char key[200];
        snprintf(key, sizeof key, "%s %s %s", rg_op_name(oc->op), output, shape);
        if (failed_at_one_thread(c, key))
            snprintf(h, n, "wrong at 1 thread too: see that line");
        else
            snprintf(h, n, "right at 1 thread, wrong at %d: a race, or the rows left over when "
                           "the work is split?", c->threads);
    } else if (c->variant_hint) {
        snprintf(h, n, "wrong with %s: %s", c->variant, c->variant_hint);
    } else if (oc->op == RG_OP_SUM_SQUARES && error < 1e4 * tol) {
        snprintf(h, n, "close but above the bound: the contract sums in double; an fp32 "
                       "accumulator?");
    } else if (is_attention(oc->op) && d->T > 64 && (ok & OK_SHORT_T)) {
        snprintf(h, n, "wrong only for T > 64 (T=%d), right below: key tiling or a T remainder?",
                 d->T);
    } else if (N > 4096 && (ok & OK_SMALL_N)) {
        snprintf(h, n, "wrong only for N > 4096 (N=%zu): a strategy switch for large N?", N);
    } else if (!(shape_classes(oc) & OK_ALIGNED) && (ok & OK_ALIGNED)) {
        if (d->n)
            snprintf(h, n, "right at multiples of 16, wrong at n=%zu: a vector tail?", d->n);
        else
            snprintf(h, n, "right at multiples of 16, wrong at C=%d hs=%d: a vector tail?", d->C,
                     hs);
    } else if (d->T == 1 || N < 8) {
        snprintf(h, n, "wrong at tiny sizes (T=%d, N=%zu): an empty split or a division by "
                       "zero?", d->T, N);
    } else if (error < 100 * tol) {
        snprintf(h, n, "close to the bound: a reduction in lower precision or a lossy order?");
    } else {
        snprintf(h, n, "wrong at this shape: compare with the shapes it passes");
    }
}

/* One op check's result row. */
static void emit_op(conf *c, const rg_op_case *oc, const char *output, const char *shape,
                    double error, double tolerance, const char *bound) {
    char hint[128] = "";
    if (!(error <= tolerance)) op_hint(c, oc, output, shape, error, tolerance, hint, sizeof hint);
    emit(c, "op", rg_op_name(oc->op), output, shape, is_native(c, oc->op), error, tolerance,
         bound, hint);
}

/* ---- op checks: each op case (op_case.h) on the backend and on the reference ---- */

/* The two sides' buffers of one case, in the case's argument order. */
typedef struct case_bufs {
    void *be[RG_CASE_MAX_BUFS], *ref[RG_CASE_MAX_BUFS];
} case_bufs;

/* Allocates both sides, draws the inputs on the backend's side and copies them to the
 * reference's. Outputs the contract overwrites start as different garbage on the two sides, so an
 * element the backend never writes (a masked attention entry, say) or adds into shows as an error;
 * gradients it accumulates start equal, so one overwritten instead of added into shows. Returns 0,
 * or -1 when out of memory. */
static int case_prepare(conf *c, const rg_op_case *oc, case_bufs *cb, const rg_case_fill *fill) {
    for (int i = 0; i < oc->nbufs; i++) {
        cb->be[i] = take(c, rg_case_buf_bytes(&oc->buf[i]));
        if (cb->be[i]) gbuf_of(c, cb->be[i])->name = oc->buf[i].name;
        cb->ref[i] = take(c, rg_case_buf_bytes(&oc->buf[i]));
    }
    if (c->oom || rg_op_case_fill(oc, cb->be, &c->rng, fill) != 0) {
        c->oom = 1;
        return -1;
    }
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        if (b->role == RG_BUF_OUT && !(oc->in_place && i == 0))
            fill_outputs(c, cb->be[i], cb->ref[i], b->count);
        else
            memcpy(cb->ref[i], cb->be[i], rg_case_buf_bytes(b));
    }
    return 0;
}

/* Copies every buffer of side from into side to (same case). */
static void case_copy(const rg_op_case *oc, void *const *to, void *const *from) {
    for (int i = 0; i < oc->nbufs; i++) memcpy(to[i], from[i], rg_case_buf_bytes(&oc->buf[i]));
}

/* The backend's canaries beside every buffer, and every input left as it was given. */
static void case_check_memory(conf *c, const rg_op_case *oc, void *const *be, void *const *ref,
                              const char *shape) {
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        const gbuf *g = gbuf_of(c, be[i]);
        int side = g ? canary_side(g) : 0;
        if (side) {
            char hint[128];
            snprintf(hint, sizeof hint, "wrote %s of %s (canary): %s",
                     side > 0 ? "past the end" : "before the start", b->name,
                     side > 0 ? "a vector tail or a loop bound off by one?" : "a negative index?");
            const char *saved = c->check;
            c->check = "memory";
            emit(c, "op", rg_op_name(oc->op), b->name, shape, is_native(c, oc->op), 1.0, 0.0,
                 "canaries intact", hint);
            c->check = saved;
        }
        /* the reference leaves its inputs alone: a difference is the backend writing one */
        if (b->role == RG_BUF_IN && memcmp(be[i], ref[i], rg_case_buf_bytes(b)) != 0) {
            char what[24], hint[128];
            snprintf(what, sizeof what, "%s written", b->name);
            snprintf(hint, sizeof hint, "the op wrote into its input %s: scratch kept in an "
                     "input buffer?", b->name);
            emit(c, "op", rg_op_name(oc->op), what, shape, is_native(c, oc->op), 1.0, 0.0,
                 "input unchanged", hint);
        }
    }
}

/* Every output of the case, the backend's against the reference's. */
static void case_compare(conf *c, const rg_op_case *oc, void *const *be, void *const *ref,
                         const char *shape, double got, double want) {
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        if (b->role == RG_BUF_IN) continue;
        static const char *const qkv_parts[3] = {"dq", "dk", "dv"};
        /* a part's columns and a whole row: one part is the whole buffer as one row */
        size_t cols = b->parts == 1 ? b->count : b->part_cols;
        size_t row = cols * b->parts;
        for (int p = 0; p < b->parts; p++) {
            double floor = rg_op_case_error_scale(oc, ref, i, p);
            double e = norm_err_strided((const float *)be[i] + p * cols,
                                        (const float *)ref[i] + p * cols, b->count / row, cols,
                                        row, floor);
            emit_op(c, oc, b->parts == 3 ? qkv_parts[p] : b->name, shape, e, b->tol, b->bound);
        }
    }
    if (oc->returns) emit_op(c, oc, "result", shape, rel_err(got, want), oc->result_tol,
                             oc->result_bound);
}

/* Largest |x - y| over every output of two runs of the backend (INFINITY for NaN or infinity,
 * 0 only when bit-identical). */
static double case_max_diff(const rg_op_case *oc, void *const *x, void *const *y, double gx,
                            double gy) {
    double d = memcmp(&gx, &gy, sizeof gx) ? fabs(gx - gy) + 1e-300 : 0.0;
    for (int i = 0; i < oc->nbufs; i++) {
        const rg_case_buf *b = &oc->buf[i];
        if (b->role == RG_BUF_IN || !memcmp(x[i], y[i], rg_case_buf_bytes(b))) continue;
        const float *a = x[i], *e = y[i];
        for (size_t j = 0; j < b->count; j++) {
            double v = fabs((double)a[j] - e[j]);
            d = fmax(d, isfinite(v) ? (v > 0 ? v : 1e-300) : INFINITY);
        }
        if (d == 0.0) d = 1e-300; /* differ in bits only (-0 against 0, NaN payloads) */
    }
    return d;
}

static void case_label(const rg_op_case *oc, const char *label, char *shape, size_t n) {
    snprintf(shape, n, "%s%s%s %s", label, oc->label ? " " : "", oc->label ? oc->label : "",
             oc->shape);
}

/* One case: the backend and the reference on identical inputs. With repeat, the backend runs a
 * second time on the same inputs and must give bit-identical outputs. */
static void check_case(conf *c, const rg_op_case *oc, const char *label, const rg_case_fill *fill,
                       int repeat) {
    char shape[96];
    case_label(oc, label, shape, sizeof shape);
    case_bufs cb, again;
    c->case_failed = 0;
    if (case_prepare(c, oc, &cb, fill) == 0) {
        for (int i = 0; repeat && i < oc->nbufs; i++)
            again.be[i] = take(c, rg_case_buf_bytes(&oc->buf[i]));
        if (repeat && !c->oom) case_copy(oc, again.be, cb.be);
        if (!c->oom) {
            running_case(c, oc, shape);
            double got = rg_op_case_call(oc, &c->be->k, c->be->ctx, cb.be);
            double want = rg_op_case_call(oc, &rg_reference_backend, NULL, cb.ref);
            case_check_memory(c, oc, cb.be, cb.ref, shape);
            case_compare(c, oc, cb.be, cb.ref, shape, got, want);
            if (repeat) {
                running_case(c, oc, shape);
                double got2 = rg_op_case_call(oc, &c->be->k, c->be->ctx, again.be);
                const char *saved = c->check;
                c->check = "repeat";
                emit(c, "op", rg_op_name(oc->op), "rerun", shape, is_native(c, oc->op),
                     case_max_diff(oc, cb.be, again.be, got, got2), 0.0, "bit-identical",
                     "two identical calls differ: a nondeterministic reduction (atomics, dynamic "
                     "scheduling)?");
                c->check = saved;
            }
        }
    }
    if (!c->case_failed) c->ok[oc->op] |= shape_classes(oc);
    release(c);
}

/* The most cases of one shape: a step's, and the two in-place ones. */
#define CASES_AT_MAX (RG_STEP_CASES + 2)

/* The cases of one model shape: a training step's (the matmuls at each of their uses), the
 * element-wise ops over 5 more elements than the model gives them and adamw and sum_squares over
 * N*4C + 5 (a tail behind any vector width), and the in-place residual and squared-ReLU backward
 * the model runs (out == inp1, dinp == dout, which the contracts allow). only, when not
 * RG_OP_COUNT, keeps the cases of that op. Returns the count (up to CASES_AT_MAX). */
static int cases_at(const conf_shape *s, float scale, rg_op_kind only, rg_op_case *out) {
    rg_op_dims d = {.B = s->B, .T = s->T, .C = s->C, .NH = s->NH, .V = s->V};
    rg_op_case all[RG_STEP_CASES];
    int n = rg_op_step_cases(&d, (size_t)s->B * s->T * 4 * s->C + 5, scale, all), count = 0;
    for (int i = 0; i < n; i++) {
        if (only != RG_OP_COUNT && all[i].op != only) continue;
        rg_op_kind op = all[i].op;
        if (op == RG_OP_SQRELU_FORWARD || op == RG_OP_SQRELU_BACKWARD ||
            op == RG_OP_RESIDUAL_FORWARD) { /* a tail too */
            rg_op_dims tail = all[i].d;
            tail.n += 5;
            rg_op_case_make(&all[i], op, &tail, scale);
        }
        out[count++] = all[i];
        if (op == RG_OP_RESIDUAL_FORWARD || op == RG_OP_SQRELU_BACKWARD) {
            out[count] = all[i];
            out[count].in_place = 1;
            out[count++].label = op == RG_OP_RESIDUAL_FORWARD ? "out=inp1" : "dinp=dout";
        }
    }
    return count;
}

static void check_ops_at(conf *c, const conf_shape *s, rg_op_kind only, int repeat) {
    rg_op_case cases[CASES_AT_MAX];
    int n = cases_at(s, 1.0f, only, cases);
    for (int i = 0; i < n && !c->oom; i++) check_case(c, &cases[i], s->label, NULL, repeat);
}

/* ---- the groups of checks: each runs in its own child with its own instance ---- */

/* Shapes that break vector-width, tiling and splitting assumptions. */
static const conf_shape stress_shapes[] = {
    {"odd", 37, 1, 40, 5, CONF_V},  /* T = 1, N = 37 rows, hs = 8 */
    {"odd", 3, 7, 40, 5, CONF_V},
    {"odd", 1, 37, 40, 5, CONF_V},
    {"oddC", 2, 9, 37, 1, CONF_V},  /* C and hs = 37 */
    {"oddhs", 2, 33, 45, 3, 31},    /* hs = 15 */
    {"tiny", 1, 1, 8, 1, 3},        /* one row */
    {"tiny", 1, 2, 3, 3, 2},        /* hs = 1 */
    {"bigN", 33, 129, 24, 2, CONF_V}, /* N = 4257 > 4096 */
};
static const conf_shape quick_stress[] = {
    {"odd", 37, 1, 40, 5, CONF_V}, {"oddhs", 2, 33, 45, 3, 31}, {"bigN", 33, 129, 24, 2, CONF_V}};

/* T above and below every power of two up to the large preset's 256. */
static const int t_sweep[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127,
                              128, 129, 255, 256};
static const int quick_t_sweep[] = {1, 17, 64, 65, 129};

typedef struct shapes_arg {
    const rg_preset **presets;
    int npresets;
} shapes_arg;

/* shapes: every op at the presets' shapes (big batches capped, but at RG_CONF_THOROUGH), the
 * stress shapes, attention at every T of the sweep (two head sizes), every op at odd C. */
static void group_shapes(conf *c, const void *argp) {
    const shapes_arg *a = argp;
    int thorough = c->opt->level == RG_CONF_THOROUGH, quick = c->opt->level == RG_CONF_QUICK;
    for (int i = 0; i < a->npresets && !c->oom; i++) {
        const rg_preset *ps = a->presets[i];
        conf_shape s = {ps->name, ps->B, ps->T, ps->C, ps->NH, CONF_V};
        int cap = (int)(CONF_MAX_TCC / ((double)ps->T * ps->C * ps->C));
        if (cap < 1) cap = 1;
        if (s.B > cap && !thorough) {
            char line[160];
            snprintf(line, sizeof line,
                     "preset %s: op checks at B=%d instead of %d, to keep their time near the "
                     "small preset's (--thorough runs the full batch)",
                     ps->name, cap, ps->B);
            note(c, line);
            s.B = cap;
        }
        check_ops_at(c, &s, RG_OP_COUNT, 0);
    }
    const conf_shape *stress = quick ? quick_stress : stress_shapes;
    size_t nstress = quick ? sizeof quick_stress / sizeof quick_stress[0]
                           : sizeof stress_shapes / sizeof stress_shapes[0];
    for (size_t i = 0; i < nstress && !c->oom; i++) check_ops_at(c, &stress[i], RG_OP_COUNT, 0);
    /* T sweep: hs = 5 and, from T = 32, hs = 32 (the presets' head size) */
    const int *ts = quick ? quick_t_sweep : t_sweep;
    int nts = quick ? (int)(sizeof quick_t_sweep / sizeof quick_t_sweep[0])
                    : (int)(sizeof t_sweep / sizeof t_sweep[0]);
    for (int T = 1, i = 0; thorough ? T <= 256 : i < nts; T++, i++) {
        int t = thorough ? T : ts[i];
        conf_shape s5 = {"Tsweep", 2, t, 10, 2, CONF_V}, s32 = {"Tsweep", 1, t, 64, 2, CONF_V};
        for (int op = RG_OP_ATTENTION_FORWARD; op <= RG_OP_ATTENTION_BACKWARD && !c->oom; op++) {
            check_ops_at(c, &s5, (rg_op_kind)op, 0);
            if (t >= 32) check_ops_at(c, &s32, (rg_op_kind)op, 0);
        }
    }
    /* C sweep: every op at C around the vector widths */
    static const int cs[] = {1, 3, 5, 7, 9, 15, 17, 31, 33, 63, 65};
    for (size_t i = 0; !quick && i < sizeof cs / sizeof cs[0] && !c->oom; i++) {
        conf_shape s = {"Csweep", 1, 3, cs[i], 1, CONF_V};
        check_ops_at(c, &s, RG_OP_COUNT, 0);
    }
}

/* One unusual kind of input, with what a failure there usually means. */
typedef struct value_variant {
    const char *what, *hint;
    float scale;
    rg_case_fill fill;
    int softmax_only; /* only the cross-entropy ops (an offset means nothing to the others) */
} value_variant;

static const value_variant value_variants[] = {
    {"inputs 8x wider (attention scores up to ~100)", "a softmax without subtracting the max, "
     "or an overflow in exp?", 8.0f, {0.0f, 0, 0.0f}, 0},
    {"logits around 100", "exp of a logit without subtracting the row's max first?", 1.0f,
     {0.0f, 0, 100.0f}, 1},
    {"exact zeros (30% and a whole first row)", "a division by a zero norm, or sign(0)?", 1.0f,
     {0.3f, 0, 0.0f}, 0},
    {"every token equal", "colliding rows in a scatter (dwte rows added concurrently)?", 1.0f,
     {0.0f, 1, 0.0f}, 0},
};

/* Scalar arguments the training loop rarely varies: each set must be honoured. */
typedef struct scalar_variant {
    const char *what;
    rg_op_scalars s;
} scalar_variant;

static const scalar_variant scalar_variants[] = {
    {"lr=0.05 t=1", {0.05f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1, 0.0f}},
    {"grad_scale=0.25 t=7", {1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.25f, 7, 0.0f}},
    {"weight_decay=0 t=1000", {1e-2f, 0.8f, 0.95f, 1e-6f, 0.0f, 1.0f, 1000, 0.0f}},
    {"weight_decay=0.5 eps=1e-3", {1e-2f, 0.9f, 0.999f, 1e-3f, 0.5f, 3.0f, 2, 0.0f}},
};
static const float dloss_variants[] = {1.0f, 0.37f, 2.5f};

/* values: wide and adversarial inputs at two shapes, every scalar argument varied. */
static void group_values(conf *c, const void *arg) {
    (void)arg;
    static const conf_shape shapes[] = {{"values", 3, 17, 24, 3, CONF_V},
                                        {"values", 2, 65, 40, 5, 7}};
    int nshapes = c->opt->level == RG_CONF_QUICK ? 1 : 2;
    for (int si = 0; si < nshapes; si++) {
        for (size_t v = 0; v < sizeof value_variants / sizeof value_variants[0]; v++) {
            const value_variant *vv = &value_variants[v];
            c->variant = vv->what;
            c->variant_hint = vv->hint;
            rg_op_case cases[CASES_AT_MAX];
            int n = cases_at(&shapes[si], vv->scale, RG_OP_COUNT, cases);
            char label[64];
            snprintf(label, sizeof label, "%s x%g%s%s%s", shapes[si].label, vv->scale,
                     vv->fill.offset != 0 ? " +100" : "", vv->fill.zeros > 0 ? " zeros" : "",
                     vv->fill.one_token ? " one-token" : "");
            for (int i = 0; i < n && !c->oom; i++)
                if (!vv->softmax_only || cases[i].op == RG_OP_CROSSENTROPY_FORWARD ||
                    cases[i].op == RG_OP_CROSSENTROPY_BACKWARD)
                    check_case(c, &cases[i], label, &vv->fill, 0);
        }
    }
    const conf_shape *s = &shapes[0];
    rg_op_dims d = {.B = s->B, .T = s->T, .C = s->C, .NH = s->NH, .V = s->V, .n = 4099};
    c->variant_hint = "the argument ignored or hard-coded?";
    for (size_t v = 0; v < sizeof scalar_variants / sizeof scalar_variants[0] && !c->oom; v++) {
        rg_op_case oc;
        rg_op_case_make(&oc, RG_OP_ADAMW, &d, 1.0f);
        oc.s = scalar_variants[v].s;
        c->variant = scalar_variants[v].what;
        check_case(c, &oc, scalar_variants[v].what, NULL, 0);
    }
    for (size_t v = 0; v < sizeof dloss_variants / sizeof dloss_variants[0] && !c->oom; v++) {
        rg_op_case oc;
        rg_op_case_make(&oc, RG_OP_CROSSENTROPY_BACKWARD, &d, 1.0f);
        oc.s.dloss = dloss_variants[v];
        char what[32];
        snprintf(what, sizeof what, "dloss=%g", dloss_variants[v]);
        c->variant = what;
        check_case(c, &oc, what, NULL, 0);
    }
    c->variant = c->variant_hint = NULL;
}

/* memory: buffers that start right after a guard page (every other group places them to end
 * right before one), so a read before the start faults too; then buffers at addresses aligned
 * to a float only, at shapes whose sizes are whole vectors (where a kernel takes its aligned
 * path). */
static void group_memory(conf *c, const void *arg) {
    (void)arg;
    static const conf_shape unaligned[] = {{"unaligned", 2, 32, 64, 4, CONF_V},
                                           {"unaligned", 1, 16, 128, 8, 64}};
    int quick = c->opt->level == RG_CONF_QUICK;
    int n = quick ? 2 : (int)(sizeof stress_shapes / sizeof stress_shapes[0]);
    c->place = PLACE_START;
    for (int i = 0; i < n && !c->oom; i++) check_ops_at(c, &stress_shapes[i], RG_OP_COUNT, 0);
    c->place = PLACE_ODD;
    for (int i = 0; i < (quick ? 1 : 2) && !c->oom; i++)
        check_ops_at(c, &unaligned[i], RG_OP_COUNT, 0);
    c->place = PLACE_END;
}

/* threads (one child per count): the ops at shapes with rows left over at any split, each run
 * twice for bit-identity. */
static void group_threads(conf *c, const void *arg) {
    (void)arg;
    static const conf_shape shapes[] = {{"split", 2, 37, 40, 5, CONF_V},
                                        {"split", 5, 65, 24, 3, CONF_V}};
    int n = c->opt->level == RG_CONF_QUICK ? 1 : 2;
    for (int i = 0; i < n && !c->oom; i++) check_ops_at(c, &shapes[i], RG_OP_COUNT, 1);
}

/* instances: two instances, each on its own thread, run every case at once, each on its own
 * inputs (with equal inputs, state shared by mistake would go unseen), round after round. Every
 * round's outputs of each instance must be bit-identical to that instance's outputs alone (same
 * thread count). Even rounds run in lockstep (both instances enter each case together, so the
 * same op runs twice at once), odd rounds run free with the second instance going through the
 * cases backwards (different ops at once). Every call is timed: the rounds go on, within a time
 * budget, until every case has been seen running on both instances at the same time. */
#define INST_MIN_ROUNDS 6
#define INST_MAX_ROUNDS 2000
#define INST_BUDGET_S 3.0
/* how long one case is called again in one lockstep round, waiting for the overlap: a few time
 * slices of a loaded machine */
#define INST_WAIT_S 0.03

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Two threads meet: spinning (and yielding, for a machine with one CPU) rather than sleeping, so
 * that both leave within a few hundred nanoseconds and even the shortest ops overlap. */
typedef struct spin_barrier {
    atomic_int arrived, phase;
} spin_barrier;

static void spin_wait(spin_barrier *b) {
    int phase = atomic_load(&b->phase);
    if (atomic_fetch_add(&b->arrived, 1) == 1) {
        atomic_store(&b->arrived, 0);
        atomic_fetch_add(&b->phase, 1);
    } else {
        while (atomic_load(&b->phase) == phase) sched_yield();
    }
}

/* One instance's side: its buffers and, per case, what its calls measured. */
typedef struct inst_side {
    rg_ops *ops;
    case_bufs *init, *work, *solo; /* (ncases) inputs; working buffers; outputs when alone */
    double *solo_value, *ref_value; /* (ncases) the returned value alone, the reference's */
    double *diff;                  /* (ncases) largest difference from solo over the rounds */
    int *bad_round;                /* (ncases) the first round that differed, -1 when none */
} inst_side;

typedef struct inst_run {
    const rg_op_case *cases;
    int n;
    spin_barrier bar;
    inst_side side[2];
    atomic_int inside;                 /* instances inside a call of the current lockstep case */
    atomic_int seen[CASES_AT_MAX]; /* 1 + the last round case i ran on both at once */
    int *overlaps;   /* (n) lockstep rounds in which case i ran on both instances at once */
    int rounds, stop;
    double t0;
} inst_run;

/* One call of case i on side s from its inputs, compared with the solo run. In lockstep, an
 * instance that enters while the other is inside, or leaves while it still is, has seen the two
 * calls overlap. */
static void inst_call(inst_run *run, inst_side *s, int i, int round, int lockstep) {
    const rg_op_case *oc = &run->cases[i];
    case_copy(oc, s->work[i].be, s->init[i].be);
    if (lockstep && atomic_fetch_add(&run->inside, 1) == 1) atomic_store(&run->seen[i], round + 1);
    double got = rg_op_case_call(oc, &s->ops->k, s->ops->ctx, s->work[i].be);
    if (lockstep && atomic_fetch_sub(&run->inside, 1) == 2) atomic_store(&run->seen[i], round + 1);
    double d = case_max_diff(oc, s->work[i].be, s->solo[i].be, got, s->solo_value[i]);
    s->diff[i] = fmax(s->diff[i], d);
    if (d > 0 && s->bad_round[i] < 0) s->bad_round[i] = round;
}

/* After a round (thread 0, while thread 1 waits): counts the overlaps and decides whether to go
 * on. */
static void inst_round_done(inst_run *run, int round) {
    int all = 1;
    for (int i = 0; i < run->n; i++) {
        if (atomic_load(&run->seen[i]) == round + 1) run->overlaps[i]++;
        all &= run->overlaps[i] > 0;
    }
    run->rounds++;
    double spent = now_s() - run->t0;
    run->stop = (run->rounds >= INST_MIN_ROUNDS && all) || run->rounds >= INST_MAX_ROUNDS ||
                (run->rounds >= INST_MIN_ROUNDS && spent > INST_BUDGET_S);
}

typedef struct inst_arg {
    inst_run *run;
    int t;
} inst_arg;

static void *inst_thread(void *argp) {
    const inst_arg *a = argp;
    inst_run *run = a->run;
    inst_side *me = &run->side[a->t];
    for (int r = 0;; r++) {
        spin_wait(&run->bar);
        if (run->stop) break;
        int lockstep = r % 2 == 0;
        for (int k = 0; k < run->n; k++) {
            if (!lockstep) {
                inst_call(run, me, a->t ? run->n - 1 - k : k, r, 0);
                continue;
            }
            spin_wait(&run->bar);
            /* again until the two calls overlap (a call may end before the other thread runs) */
            double t0 = now_s();
            do inst_call(run, me, k, r, 1);
            while (atomic_load(&run->seen[k]) != r + 1 && now_s() - t0 < INST_WAIT_S);
        }
        spin_wait(&run->bar);
        if (a->t == 0) inst_round_done(run, r);
    }
    return NULL;
}

/* Allocates side t's buffers of every case (inputs drawn, the reference run on them), and runs
 * the instance alone on each case. Returns 0, or -1 when out of memory. */
static int inst_prepare(conf *c, inst_run *run, int t, rg_ops *ops) {
    inst_side *s = &run->side[t];
    const rg_op_case *cases = run->cases;
    s->ops = ops;
    for (int i = 0; i < run->n; i++) {
        if (case_prepare(c, &cases[i], &s->init[i], NULL) != 0) return -1;
        for (int b = 0; b < cases[i].nbufs; b++) {
            size_t bytes = rg_case_buf_bytes(&cases[i].buf[b]);
            s->work[i].be[b] = take(c, bytes);
            s->solo[i].be[b] = take(c, bytes);
            if (c->oom) return -1;
            gbuf_of(c, s->work[i].be[b])->name = cases[i].buf[b].name;
            gbuf_of(c, s->solo[i].be[b])->name = cases[i].buf[b].name;
        }
        s->ref_value[i] = rg_op_case_call(&cases[i], &rg_reference_backend, NULL, s->init[i].ref);
        case_copy(&cases[i], s->solo[i].be, s->init[i].be);
        s->solo_value[i] = rg_op_case_call(&cases[i], &ops->k, ops->ctx, s->solo[i].be);
        s->bad_round[i] = -1;
    }
    return 0;
}

/* The results of side t: alone against the reference, and every round against alone. */
static void inst_report(conf *c, const inst_run *run, int t) {
    const inst_side *s = &run->side[t];
    for (int i = 0; i < run->n; i++) {
        char shape[96], hint[128];
        rg_op_case oc = run->cases[i];
        case_label(&oc, t ? "instance2" : "instance1", shape, sizeof shape);
        case_compare(c, &oc, s->solo[i].be, s->init[i].ref, shape, s->solo_value[i],
                     s->ref_value[i]);
        snprintf(hint, sizeof hint, "differs from alone from round %d of %d (%s): state "
                 "shared by instances (static globals)?",
                 s->bad_round[i] + 1, run->rounds, s->bad_round[i] % 2 ? "free" : "lockstep");
        char bound[40];
        snprintf(bound, sizeof bound, "bit-identical to alone, %d rounds", run->rounds);
        emit(c, "op", rg_op_name(oc.op), "every round", shape, is_native(c, oc.op), s->diff[i],
             0.0, bound, hint);
    }
}

/* One note on how much the two instances overlapped; the cases never seen at once are named. */
static void inst_note_overlap(conf *c, const inst_run *run) {
    char line[400];
    int never = 0, at_once = run->rounds;
    for (int i = 0; i < run->n; i++) {
        never += run->overlaps[i] == 0;
        if (run->overlaps[i] < at_once) at_once = run->overlaps[i];
    }
    int len = snprintf(line, sizeof line, "instances: %d rounds in %.2f s; ", run->rounds,
                       now_s() - run->t0);
    if (!never) {
        snprintf(line + len, sizeof line - len, "every case ran on both instances at once, in "
                 "%d or more lockstep rounds", at_once);
    } else {
        len += snprintf(line + len, sizeof line - len, "%d case%s never ran on both instances at "
                        "once, so not checked concurrently:", never, never == 1 ? "" : "s");
        for (int i = 0; i < run->n && len < (int)sizeof line - 40; i++)
            if (!run->overlaps[i])
                len += snprintf(line + len, sizeof line - len, " %s%s%s",
                                rg_op_name(run->cases[i].op), run->cases[i].label ? "/" : "",
                                run->cases[i].label ? run->cases[i].label : "");
    }
    note(c, line);
}

typedef struct inst_store {
    case_bufs init[2][CASES_AT_MAX], work[2][CASES_AT_MAX], solo[2][CASES_AT_MAX];
    double solo_value[2][CASES_AT_MAX], ref_value[2][CASES_AT_MAX];
    double diff[2][CASES_AT_MAX];
    int bad_round[2][CASES_AT_MAX], overlaps[CASES_AT_MAX];
} inst_store;

static void inst_concurrent(conf *c, inst_run *run) {
    running(c, run->cases[0].op, "two instances at once, every op");
    run->t0 = now_s();
    inst_arg args[2] = {{run, 0}, {run, 1}};
    pthread_t th;
    if (pthread_create(&th, NULL, inst_thread, &args[1]) != 0) {
        emit(c, "run", "instances", "thread", "", -1, INFINITY, 0.0, "", "pthread_create failed");
    } else {
        inst_thread(&args[0]);
        pthread_join(th, NULL);
        inst_note_overlap(c, run);
        for (int t = 0; t < 2; t++) inst_report(c, run, t);
    }
}

static void group_instances(conf *c, const void *arg) {
    (void)arg;
    static const conf_shape s = {"instances", 2, 33, 40, 5, CONF_V};
    rg_op_case cases[CASES_AT_MAX];
    inst_run run = {.cases = cases, .n = cases_at(&s, 1.0f, RG_OP_COUNT, cases)};
    inst_store *st = calloc(1, sizeof *st);
    rg_ops second;
    char err[RG_ERR_LEN];
    if (!st) {
        c->oom = 1;
        return;
    }
    if (rg_ops_create(&second, c->table, &c->opt->backend, err, sizeof err) != 0) {
        emit(c, "run", "instances", "create", s.label, -1, INFINITY, 0.0, "", err);
        free(st);
        return;
    }
    run.overlaps = st->overlaps;
    for (int t = 0; t < 2; t++)
        run.side[t] = (inst_side){NULL,        st->init[t],      st->work[t],
                                  st->solo[t], st->solo_value[t], st->ref_value[t],
                                  st->diff[t], st->bad_round[t]};
    running(c, cases[0].op, "each instance alone, every op");
    if (inst_prepare(c, &run, 0, c->be) == 0 && inst_prepare(c, &run, 1, &second) == 0)
        inst_concurrent(c, &run);
    release(c);
    rg_ops_destroy(&second);
    free(st);
}

/* ---- model checks ---- */

typedef struct conf_model_setup {
    rg_model_config cfg;
    int B, T;
    int32_t *batches;  /* (CONF_NUM_BATCHES, B, T+1): inputs are the first T, targets shifted */
} conf_model_setup;

/* Fixed synthetic batches: windows of a text made of one random phrase repeated with 10% noise,
 * so that the model has something to learn and its loss falls over the run. */
static void make_batches(conf *c, conf_model_setup *ms) {
    enum { PHRASE = 23 };
    int32_t phrase[PHRASE];
    fill_tokens(c, phrase, PHRASE, ms->cfg.V);
    size_t rows = (size_t)CONF_NUM_BATCHES * ms->B, len = (size_t)ms->T + 1;
    for (size_t r = 0; r < rows; r++) {
        size_t start = (size_t)rg_rng_below(&c->rng, PHRASE);
        for (size_t t = 0; t < len; t++) {
            int32_t tok = phrase[(start + t) % PHRASE];
            if (rg_rng_uniform(&c->rng) < 0.1f) tok = (int32_t)rg_rng_below(&c->rng, ms->cfg.V);
            ms->batches[r * len + t] = tok;
        }
    }
}

/* Copies batch k of ms into inputs and targets, each (B,T). */
static void get_batch(const conf_model_setup *ms, int k, int32_t *inputs, int32_t *targets) {
    size_t len = (size_t)ms->T + 1;
    const int32_t *rows = ms->batches + (size_t)k * ms->B * len;
    for (int b = 0; b < ms->B; b++) {
        memcpy(inputs + (size_t)b * ms->T, rows + b * len, (size_t)ms->T * sizeof(int32_t));
        memcpy(targets + (size_t)b * ms->T, rows + b * len + 1, (size_t)ms->T * sizeof(int32_t));
    }
}

static int model_open(rg_model *m, const conf_model_setup *ms, uint64_t seed, char *err,
                      size_t err_len) {
    memset(m, 0, sizeof *m);
    if (rg_model_init(m, &ms->cfg, seed, err, err_len) != 0) return -1;
    if (rg_model_set_batch(m, ms->B, ms->T, err, err_len) != 0) {
        rg_model_free(m);
        return -1;
    }
    return 0;
}

/* ---- tolerances of the model checks, derived from the model's shape (u = 2^-24) ----
 * The op checks bound one op by 32u*sqrt(K) for a K-term reduction; the model's longest is
 * K = max(B*T, 4C, V) (a weight gradient sums over the B*T rows, the MLP's projection over 4C,
 * the softmax over V). A gradient passes through D = 2(8L + 2) ops (8 per layer and the head
 * and the loss, forward and backward), whose independent rounding errors add in quadrature: a
 * gradient's normalised error stays below 32u*sqrt(K)*sqrt(D), the loss's, through the forward
 * half, below 32u*sqrt(K)*sqrt(D/2). Over S training steps the losses' differences grow at most
 * linearly: S times the loss's bound. */
typedef struct model_tol {
    double grad, loss, train;
    char grad_bound[40], loss_bound[40], train_bound[48];
} model_tol;

static model_tol model_tolerances(const conf_model_setup *ms, int steps) {
    const rg_model_config *m = &ms->cfg;
    size_t K = (size_t)ms->B * ms->T;
    if ((size_t)4 * m->C > K) K = (size_t)4 * m->C;
    if ((size_t)m->V > K) K = (size_t)m->V;
    int D = 2 * (8 * m->L + 2);
    double u = 1.0 / 16777216.0, op = 32.0 * u * sqrt((double)K);
    model_tol t = {op * sqrt((double)D), op * sqrt(D / 2.0), op * sqrt(D / 2.0) * steps, "", "", ""};
    snprintf(t.grad_bound, sizeof t.grad_bound, "32u*sqrt(K=%zu)*sqrt(D=%d)", K, D);
    snprintf(t.loss_bound, sizeof t.loss_bound, "32u*sqrt(K=%zu)*sqrt(D=%d)", K, D / 2);
    snprintf(t.train_bound, sizeof t.train_bound, "32u*sqrt(K=%zu)*sqrt(D=%d)*S=%d", K, D / 2,
             steps);
    return t;
}

/* The parameters after one AdamW update, judged as the update x - init (update_err): its error is
 * the rounding of the parameters themselves, a few ulps of max|p| against an update of about lr,
 * and the update's own arithmetic: 32u*max|p|/max|update| + 32u. init, ref are (n). */
static double update_tol(const float *ref, const float *init, size_t n, char *bound,
                         size_t bound_len) {
    double pmax = 0.0, dmax = 0.0, u = 1.0 / 16777216.0;
    for (size_t i = 0; i < n; i++) {
        pmax = fmax(pmax, fabs((double)init[i]));
        dmax = fmax(dmax, fabs((double)ref[i] - init[i]));
    }
    double ratio = pmax / fmax(1e-30, dmax);
    snprintf(bound, bound_len, "32u*(1+max|p|/max|dp|=%.3g)", ratio);
    return 32.0 * u * (1.0 + ratio);
}

#define STEP_HINT \
    "the ops pass alone but the model step differs: an op at the model's exact shapes, or out " \
    "aliasing an input?"

/* One side of a model check: a model trained by one instance (ops[0]) or, with R > 1, by R
 * replicas on R instances running at once (replicas.h), whose master model then holds the summed
 * gradients. */
typedef struct model_side {
    rg_ops *ops; /* (R) */
    int R;
    rg_gradsum gs;
    rg_dp dp;
    rg_model m;
    float norm;  /* the gradient norm of the latest step, before clipping */
} model_side;

static int side_open(model_side *s, const conf_model_setup *ms, uint64_t seed, char *err,
                     size_t err_len) {
    if (model_open(&s->m, ms, seed, err, err_len) != 0) return -1;
    s->gs = rg_gradsum_local();
    if (s->R > 1 &&
        rg_dp_init(&s->dp, &s->m, s->ops, s->R, 1, ms->B, ms->T, &s->gs, err, err_len) != 0) {
        rg_model_free(&s->m);
        return -1;
    }
    return 0;
}

static void side_close(model_side *s) {
    if (s->R > 1) rg_dp_free(&s->dp);
    rg_model_free(&s->m);
}

/* One training step on inputs, targets (B,T): forward, backward, AdamW at lr; *loss is the
 * batch's mean loss before the update. */
static int side_step(model_side *s, const conf_model_setup *ms, const int32_t *inputs,
                     const int32_t *targets, const rg_optim_config *oc, float lr, float *loss,
                     char *err, size_t err_len) {
    if (s->R > 1) {
        if (rg_dp_step(&s->dp, inputs, targets, oc, lr, loss, err, err_len) != 0) return -1;
        double ss = 0.0;
        for (int r = 0; r < s->R; r++) ss += s->dp.sumsq[r];
        s->norm = (float)sqrt(ss);
        return 0;
    }
    rg_model_forward(&s->m, s->ops, inputs, targets, ms->B, ms->T);
    rg_model_zero_grad(&s->m);
    rg_model_backward(&s->m, s->ops);
    *loss = s->m.mean_loss;
    s->norm = rg_model_update(&s->m, s->ops, oc, lr);
    return 0;
}

static void model_label(const conf_model_setup *ms, int R, const char *what, char *shape,
                        size_t n) {
    int len = snprintf(shape, n, "tiny B=%d T=%d %s", ms->B, ms->T, what);
    if (R > 1 && len > 0 && (size_t)len < n) snprintf(shape + len, n - (size_t)len, " R=%d", R);
}

/* The tensors are slices of one allocation, in rg_params order (model.h). */
static const char *const param_names[RG_NUM_PARAM_TENSORS] = {"wte", "wpe", "wqkv", "wo",
                                                              "w1",  "w2",  "wlm"};

/* The step's results: loss, every parameter gradient, the gradient norm, and the parameters after
 * the AdamW update as (new - old) of the two sides, normalised by the largest update, so that a
 * wrong step is not hidden behind the unchanged weights. init is the parameters before. */
static void step_compare(conf *c, const model_side *b, const model_side *r, const float *init,
                         float lb, float lr, const model_tol *tol, const char *shape) {
    emit(c, "step", "model", "loss", shape, -1, rel_err(lb, lr), tol->loss, tol->loss_bound,
         STEP_HINT);
    char what[24], bound[40];
    const rg_model *mb = &b->m, *mr = &r->m;
    for (size_t i = 0, off = 0; i < RG_NUM_PARAM_TENSORS; off += mb->param_sizes[i++]) {
        snprintf(what, sizeof what, "grad %s", param_names[i]);
        emit(c, "step", "model", what, shape, -1,
             norm_err(mb->grads_memory + off, mr->grads_memory + off, mb->param_sizes[i]),
             tol->grad, tol->grad_bound, STEP_HINT);
    }
    emit(c, "step", "model", "grad norm", shape, -1, rel_err(b->norm, r->norm), tol->grad,
         tol->grad_bound, "sum_squares or the clipping scale differs inside the step?");
    for (size_t i = 0, off = 0; i < RG_NUM_PARAM_TENSORS; off += mb->param_sizes[i++]) {
        snprintf(what, sizeof what, "param %s", param_names[i]);
        double utol = update_tol(mr->params_memory + off, init + off, mb->param_sizes[i], bound,
                                 sizeof bound);
        emit(c, "step", "model", what, shape, -1,
             update_err(mb->params_memory + off, mr->params_memory + off, init + off,
                        mr->grads_memory + off, mb->param_sizes[i], tol->grad),
             utol, bound,
             "adamw_step inside the step: its scalars (lr, grad_scale, t) or its in-place update?");
    }
}

/* One training step on batch 0 with the backend's side (be: its ops and R) and with the
 * reference. */
static int check_step(conf *c, const model_side *be, rg_ops *ref, const conf_model_setup *ms,
                      int32_t *inputs, int32_t *targets, char *err, size_t err_len) {
    model_side sb = {.ops = be->ops, .R = be->R}, sr = {.ops = ref, .R = 1};
    if (side_open(&sb, ms, c->opt->seed, err, err_len) != 0) return -1;
    if (side_open(&sr, ms, c->opt->seed, err, err_len) != 0) {
        side_close(&sb);
        return -1;
    }
    int rc = -1;
    float *init = malloc(sb.m.num_params * sizeof(float)), lb, lr;
    rg_optim_config oc = rg_optim_default();
    get_batch(ms, 0, inputs, targets);
    running_named(c, "model", "one training step");
    if (!init) {
        rg_errf(err, err_len, "conformance: out of memory");
    } else {
        memcpy(init, sb.m.params_memory, sb.m.num_params * sizeof(float));
        if (side_step(&sb, ms, inputs, targets, &oc, oc.lr, &lb, err, err_len) == 0 &&
            side_step(&sr, ms, inputs, targets, &oc, oc.lr, &lr, err, err_len) == 0) {
            char shape[80], what[16];
            snprintf(what, sizeof what, "V=%d", ms->cfg.V);
            model_label(ms, be->R, what, shape, sizeof shape);
            model_tol tol = model_tolerances(ms, 1);
            step_compare(c, &sb, &sr, init, lb, lr, &tol, shape);
            rc = 0;
        }
    }
    free(init);
    side_close(&sb);
    side_close(&sr);
    return rc;
}

/* c->train_steps steps of side (its ops and R) from the same initial weights over the fixed
 * batches; losses is (c->train_steps). */
static int train_run(conf *c, const model_side *side, const conf_model_setup *ms,
                     int32_t *inputs, int32_t *targets, float *losses, char *err,
                     size_t err_len) {
    model_side s = {.ops = side->ops, .R = side->R};
    if (side_open(&s, ms, c->opt->seed, err, err_len) != 0) return -1;
    rg_optim_config oc = rg_optim_default();
    oc.lr = 1e-3f; /* a bigger step than the default, so the run moves and differences would grow */
    oc.warmup_iters = 5;
    int rc = 0;
    for (int k = 0; k < c->train_steps && rc == 0; k++) {
        char shape[64]; /* progress, so that only a step that makes none times out */
        snprintf(shape, sizeof shape, "training step %d of %d", k + 1, c->train_steps);
        running_named(c, "model", shape);
        get_batch(ms, k % CONF_NUM_BATCHES, inputs, targets);
        rc = side_step(&s, ms, inputs, targets, &oc, rg_lr_at(&oc, k, c->train_steps),
                       &losses[k], err, err_len);
    }
    side_close(&s);
    return rc;
}

static int check_train(conf *c, const model_side *be, rg_ops *ref, const conf_model_setup *ms,
                       int32_t *inputs, int32_t *targets, char *err, size_t err_len) {
    float lb[RG_CONF_TRAIN_STEPS], lb2[RG_CONF_TRAIN_STEPS], lr[RG_CONF_TRAIN_STEPS];
    model_side sr = {.ops = ref, .R = 1};
    if (train_run(c, be, ms, inputs, targets, lb, err, err_len) != 0 ||
        train_run(c, be, ms, inputs, targets, lb2, err, err_len) != 0 ||
        train_run(c, &sr, ms, inputs, targets, lr, err, err_len) != 0)
        return -1;
    double track = 0.0, repeat = 0.0;
    for (int s = 0; s < c->train_steps; s++) {
        track = fmax(track, rel_err(lb[s], lr[s]));
        repeat = fmax(repeat, isfinite(lb2[s]) ? fabs((double)lb[s] - lb2[s]) : INFINITY);
    }
    char shape[80], what[24], line[200];
    snprintf(what, sizeof what, "%d steps", c->train_steps);
    model_label(ms, be->R, what, shape, sizeof shape);
    snprintf(line, sizeof line, "%s: loss %.4f -> %.4f with the backend%s, %.4f -> %.4f reference",
             c->check, lb[0], lb[c->train_steps - 1], be->R > 1 ? "'s replicas" : "", lr[0],
             lr[c->train_steps - 1]);
    note(c, line);
    model_tol tol = model_tolerances(ms, c->train_steps);
    emit(c, "train", "model", "losses", shape, -1, track, tol.train, tol.train_bound,
         "drifts over the run: AdamW state (m, v, t) or a small bias that accumulates?");
    /* The same instances, inputs and weights must give bit-identical losses. */
    emit(c, "train", "model", "rerun losses", shape, -1, repeat, 0.0, "bit-identical",
         "two identical runs differ: a nondeterministic reduction (atomics, dynamic scheduling)?");
    return 0;
}

/* The step and the training run of the tiny preset, the backend's side trained by be. */
static int check_model(conf *c, const model_side *be, char *err, size_t err_len) {
    const rg_preset *tiny = rg_preset_find("tiny");
    if (!tiny) {
        rg_errf(err, err_len, "conformance: the tiny preset is missing");
        return -1;
    }
    rg_backend_config one = {1, 0, NULL};
    rg_ops ref;
    if (rg_ops_create(&ref, &rg_reference_backend, &one, err, err_len) != 0) return -1;
    /* the batch, rounded up to whole replicas */
    int B = (CONF_MODEL_B + be->R - 1) / be->R * be->R;
    conf_model_setup ms = {{CONF_V, tiny->T, tiny->C, tiny->NH, tiny->L}, B, tiny->T, NULL};
    size_t ntok = (size_t)ms.B * ms.T;
    ms.batches = take(c, (size_t)CONF_NUM_BATCHES * ms.B * (ms.T + 1) * sizeof(int32_t));
    int32_t *inputs = take(c, ntok * sizeof(int32_t)), *targets = take(c, ntok * sizeof(int32_t));
    int rc = -1;
    if (c->oom) {
        rg_errf(err, err_len, "conformance: out of memory");
        goto done;
    }
    /* Its own stream, so the batches do not depend on which op checks ran before. */
    rg_rng_seed(&c->rng, c->opt->seed + 1);
    make_batches(c, &ms);
    if (check_step(c, be, &ref, &ms, inputs, targets, err, err_len) != 0) goto done;
    if (check_train(c, be, &ref, &ms, inputs, targets, err, err_len) != 0) goto done;
    rc = 0;
done:
    release(c);
    rg_ops_destroy(&ref);
    return rc;
}

/* model: one training step and a training run against the reference model. */
static void group_model(conf *c, const void *arg) {
    (void)arg;
    char err[RG_ERR_LEN];
    model_side be = {.ops = c->be, .R = 1};
    if (check_model(c, &be, err, sizeof err) != 0)
        emit(c, "run", "model", "setup", "tiny", -1, INFINITY, 0.0, "", err);
}

/* replicas: the model checks again, the backend's side trained by opt->replicas replicas, each
 * on its own instance of threads / R threads, all running at once (replicas.h). */
static void group_replicas(conf *c, const void *arg) {
    (void)arg;
    char err[RG_ERR_LEN] = "";
    int R = c->opt->replicas, made = 0;
    rg_ops ops[RG_CONF_MAX_REPLICAS];
    rg_backend_config cfg = c->opt->backend;
    cfg.num_threads = c->threads / R;
    while (made < R && rg_ops_create(&ops[made], c->table, &cfg, err, sizeof err) == 0) made++;
    model_side be = {.ops = ops, .R = R};
    if (made < R || check_model(c, &be, err, sizeof err) != 0)
        emit(c, "run", "model", "setup", "tiny replicas", -1, INFINITY, 0.0, "", err);
    while (made > 0) rg_ops_destroy(&ops[--made]);
}

/* ---- running a group in a child ---- */

/* A pipe and a child: in the child (0 returned) fds[1] is the end to write, in the parent (the
 * child's pid returned) fds[0] the end to read. -1 with err on failure. */
static pid_t spawn(int fds[2], char *err, size_t err_len) {
    if (pipe(fds) != 0) {
        rg_errf(err, err_len, "conformance: pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        rg_errf(err, err_len, "conformance: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0)
        close(fds[0]);
    else
        close(fds[1]);
    return pid;
}

/* Reads one whole message, waiting at most timeout_s for each part. Returns 1, 0 at the end of
 * the stream, -1 after the timeout. */
static int read_msg(int fd, conf_msg *m, double timeout_s) {
    size_t have = 0;
    while (have < sizeof *m) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)fmin(timeout_s * 1000.0, (double)INT_MAX));
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) return -1;
        ssize_t got = read(fd, (char *)m + have, sizeof *m - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return 0;
        have += (size_t)got;
    }
    return 1;
}

typedef void (*group_fn)(conf *c, const void *arg);

/* Creates the group's instance at threads and runs fn. Returns 0, or 1 with err when the backend
 * refuses to create it. */
static int group_body(conf *c, int threads, group_fn fn, const void *arg, char *err,
                      size_t err_len) {
    rg_backend_config cfg = c->opt->backend;
    cfg.num_threads = threads;
    rg_ops be;
    if (rg_ops_create(&be, c->table, &cfg, err, err_len) != 0) return 1;
    c->be = &be;
    memset(c->ok, 0, sizeof c->ok);
    rg_rng_seed(&c->rng, c->opt->seed);
    fn(c, arg);
    if (c->oom) emit(c, "run", "(suite)", "memory", "", -1, INFINITY, 0.0, "",
                     "out of memory for the check's own buffers");
    release(c);
    rg_ops_destroy(&be);
    c->be = NULL;
    return 0;
}

static void emit_run_failure(conf *c, const char *op, const char *what, const char *shape,
                             const char *hint) {
    emit(c, "run", op, what, shape, -1, INFINITY, 0.0, "", hint);
}

/* Runs one group in a child (or in this process when isolate is 0), delivering its results.
 * Returns 0, 1 when the backend refused the instance (err says why), or -1 on a system error. */
static int run_group(conf *c, const char *check, int threads, group_fn fn, const void *arg,
                     char *err, size_t err_len) {
    c->check = check;
    c->threads = threads;
    if (!c->opt->isolate) return group_body(c, threads, fn, arg, err, err_len);
    int fds[2];
    pid_t pid = spawn(fds, err, err_len);
    if (pid < 0) return -1;
    if (pid == 0) {
        c->fd = fds[1];
        install_fault_handlers(c);
        conf_msg m;
        memset(&m, 0, sizeof m);
        m.kind = group_body(c, threads, fn, arg, m.text, sizeof m.text) ? MSG_REFUSED : MSG_DONE;
        send_msg(c->fd, &m);
        _exit(0);
    }
    char last_op[40] = "(setup)", last_shape[96] = "creating the instance";
    int done = 0, refused = 0, faulted = 0, hung = 0, got;
    double wait_s = c->opt->timeout_s;
    conf_msg m;
    while ((got = read_msg(fds[0], &m, wait_s)) > 0) {
        if (m.kind == MSG_RESULT) {
            if (!strcmp(m.r.part, "run")) faulted = 1;
            deliver(c, &m.r);
        } else if (m.kind == MSG_NOTE && c->rep && c->rep->note) {
            c->rep->note(c->rep->user, m.text);
        } else if (m.kind == MSG_RUNNING) {
            snprintf(last_op, sizeof last_op, "%s", m.r.name);
            snprintf(last_shape, sizeof last_shape, "%.95s", m.text);
            wait_s = c->opt->timeout_s + m.allow_s;
        } else if (m.kind == MSG_DONE) {
            done = 1;
        } else if (m.kind == MSG_REFUSED) {
            refused = 1;
            rg_errf(err, err_len, "%s", m.text);
        }
    }
    if (got < 0) {
        hung = 1;
        kill(pid, SIGKILL);
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (hung) {
        char hint[128];
        snprintf(hint, sizeof hint, "no progress for %.0f s at %d threads: a deadlock, or a "
                 "barrier waiting for a thread that never comes?", wait_s, threads);
        emit_run_failure(c, last_op, "hung", last_shape, hint);
    } else if (!done && !refused && !faulted) {
        char hint[128];
        if (WIFSIGNALED(status))
            snprintf(hint, sizeof hint, "killed by signal %d (%s) while running it",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(hint, sizeof hint, "exited with status %d while running it (exit() in a "
                     "kernel?)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        emit_run_failure(c, last_op, "crashed", last_shape, hint);
    }
    return refused ? 1 : 0;
}

/* ---- the run ---- */

/* Splits the comma-separated list into presets (at most count); NULL means every preset. Returns
 * the number found, or -1 with err naming an unknown one. */
static int parse_presets(const char *list, const rg_preset **out, int count, char *err,
                         size_t err_len) {
    int n = 0;
    if (!list) {
        for (int i = 0; rg_presets[i].name && n < count; i++) out[n++] = &rg_presets[i];
        return n;
    }
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), p);
        const rg_preset *ps = rg_preset_find(name);
        if (!ps) {
            char known[160] = "";
            for (int i = 0; rg_presets[i].name; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         i ? ", " : "", rg_presets[i].name);
            rg_errf(err, err_len, "unknown preset '%s' (known: %s)", name, known);
            return -1;
        }
        if (n == count) {
            rg_errf(err, err_len, "too many presets in '%s'", list);
            return -1;
        }
        out[n++] = ps;
        p += len;
        if (*p == ',') p++;
    }
    if (n == 0) {
        rg_errf(err, err_len, "no preset named in '%s'", list);
        return -1;
    }
    return n;
}

int rg_conf_check_presets(const char *presets, char *err, size_t err_len) {
    const rg_preset *found[CONF_MAX_PRESETS];
    return parse_presets(presets, found, CONF_MAX_PRESETS, err, err_len) < 0 ? -1 : 0;
}

int rg_conf_check_replicas(int replicas, int threads, char *err, size_t err_len) {
    if (replicas > RG_CONF_MAX_REPLICAS) {
        rg_errf(err, err_len, "--replicas %d: at most %d", replicas, RG_CONF_MAX_REPLICAS);
        return -1;
    }
    if (replicas == 0 || replicas == 1) return 0; /* none */
    int B = (CONF_MODEL_B + replicas - 1) / replicas * replicas;
    return rg_dp_check_split(B, 1, replicas, 1, threads, err, err_len);
}

rg_conf_options rg_conf_default_options(void) {
    rg_conf_options o;
    memset(&o, 0, sizeof o);
    o.backend.num_threads = 1;
    o.presets = NULL;
    o.level = RG_CONF_DEFAULT;
    o.ops = 1;
    o.model = 1;
    o.seed = 20240607u;
    o.timeout_s = 30.0;
    o.isolate = 1;
    o.replicas = 1;
    return o;
}

int rg_conformance_run(const rg_backend *table, const rg_conf_options *opt,
                       const rg_conf_report *report, char *err, size_t err_len) {
    if (!table || !opt) {
        rg_errf(err, err_len, "conformance: no backend table or no options given");
        return -1;
    }
    if (rg_backend_validate(table, err, err_len) != 0) return -1;
    if (rg_conf_check_replicas(opt->replicas, opt->backend.num_threads, err, err_len) != 0)
        return -1;
    const rg_preset *presets[CONF_MAX_PRESETS];
    int quick = opt->level == RG_CONF_QUICK;
    const char *list = opt->presets ? opt->presets : quick ? "tiny" : NULL;
    int npresets = parse_presets(list, presets, CONF_MAX_PRESETS, err, err_len);
    if (npresets < 0) return -1;
    conf *c = calloc(1, sizeof *c);
    if (!c) {
        rg_errf(err, err_len, "conformance: out of memory");
        return -1;
    }
    c->table = table;
    c->opt = opt;
    c->rep = report;
    c->fd = -1;
    c->train_steps = quick ? 10 : RG_CONF_TRAIN_STEPS;
    const int threads = opt->backend.num_threads;
    shapes_arg sa = {presets, npresets};
    int rc = 0;
    if (opt->ops) {
        rc = run_group(c, "shapes", threads, group_shapes, &sa, err, err_len);
        if (rc == 0) rc = run_group(c, "values", threads, group_values, NULL, err, err_len);
        if (rc == 0) rc = run_group(c, "memory", threads, group_memory, NULL, err, err_len);
        /* odd counts and counts above the CPU count, whatever the machine has */
        static const int quick_counts[] = {1, 3}, counts[] = {1, 2, 3, 5, 8},
                         thorough_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 13, 16};
        const int *tc = quick ? quick_counts
                        : opt->level == RG_CONF_THOROUGH ? thorough_counts : counts;
        int ntc = quick ? 2 : opt->level == RG_CONF_THOROUGH ? 10 : 5;
        for (int i = 0; rc == 0 && i < ntc; i++) {
            char why[200];
            int r = run_group(c, "threads", tc[i], group_threads, NULL, why, sizeof why);
            if (r == 1) {
                char line[300];
                snprintf(line, sizeof line, "threads: the backend refuses %d threads, skipped "
                         "(%s)", tc[i], why);
                note(c, line);
            } else if (r < 0) {
                rg_errf(err, err_len, "%s", why);
                rc = -1;
            }
        }
        if (rc == 0) rc = run_group(c, "instances", threads, group_instances, NULL, err, err_len);
    }
    if (rc == 0 && opt->model) rc = run_group(c, "model", threads, group_model, NULL, err, err_len);
    if (rc == 0 && opt->model && opt->replicas > 1)
        rc = run_group(c, "replicas", threads, group_replicas, NULL, err, err_len);
    int failures = c->failures;
    free(c);
    if (rc == 1) {
        char why[RG_ERR_LEN];
        rg_errf(why, sizeof why, "%s", err);
        rg_errf(err, err_len, "backend %s refuses an instance at %d threads: %s", table->name,
                threads, why);
    }
    return rc != 0 ? -1 : failures;
}

int rg_conf_probe(const rg_backend *table, const rg_backend_config *cfg, int fallback_to_one,
                  char *describe, size_t describe_len, char *err, size_t err_len) {
    if (rg_backend_validate(table, err, err_len) != 0) return -1;
    int fds[2];
    pid_t pid = spawn(fds, err, err_len);
    if (pid < 0) return -1;
    conf_msg m;
    memset(&m, 0, sizeof m);
    if (pid == 0) {
        rg_backend_config one = *cfg;
        rg_ops ops;
        m.kind = MSG_DONE;
        if (rg_ops_create(&ops, table, cfg, m.text, sizeof m.text) != 0) {
            one.num_threads = 1;
            char why[200];
            if (!fallback_to_one || cfg->num_threads == 1 ||
                rg_ops_create(&ops, table, &one, why, sizeof why) != 0)
                m.kind = MSG_REFUSED;
        }
        if (m.kind == MSG_DONE) {
            m.r.threads = ops.num_threads;
            rg_ops_describe(&ops, m.text, sizeof m.text);
            rg_ops_destroy(&ops);
        }
        send_msg(fds[1], &m);
        _exit(0);
    }
    int got = read_msg(fds[0], &m, 30.0);
    close(fds[0]);
    if (got <= 0) kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got <= 0) {
        rg_errf(err, err_len, "backend %s crashed or hung while creating an instance",
                table->name);
        return -1;
    }
    if (m.kind == MSG_REFUSED) {
        rg_errf(err, err_len, "backend %s: %s", table->name, m.text);
        return -1;
    }
    snprintf(describe, describe_len, "%s", m.text);
    return m.r.threads;
}

/* ---- printing ---- */

void rg_conf_print_header(FILE *f) {
    fprintf(f, "%-9s %-21s %-12s %-44s %3s %-6s %10s %10s  %-6s %s\n", "check", "op", "output",
            "shape", "thr", "native", "error", "tolerance", "result", "bound");
}

void rg_conf_print_result(FILE *f, const rg_conf_result *r) {
    const char *native = r->native < 0 ? "-" : r->native ? "yes" : "no";
    fprintf(f, "%-9s %-21s %-12s %-44s %3d %-6s %10.3g %10.3g  %-6s %s\n", r->check, r->name,
            r->output, r->shape, r->threads, native, r->error, r->tolerance,
            r->pass ? "PASS" : "FAIL", r->bound);
}

void rg_conf_print_failure(FILE *f, const rg_conf_result *r) {
    fprintf(f, "FAIL %s %s [%s, %s, %d thread%s]: error %.3g > tolerance %.3g%s%s%s; hint: %s\n",
            r->name, r->output, r->shape, r->check, r->threads, r->threads == 1 ? "" : "s",
            r->error, r->tolerance, r->bound[0] ? " (" : "", r->bound, r->bound[0] ? ")" : "",
            r->hint[0] ? r->hint : "-");
}
