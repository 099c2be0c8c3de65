/*
 * Child processes for `bench`: run a program with its stdout captured, its stderr sent to a file,
 * a wall-clock limit (then its whole process group is killed) and its resource usage collected.
 * A crashing or hanging child is reported, never fatal to the caller; a child is killed when its
 * parent dies (Linux), so an interrupted caller leaves none behind.
 */
#ifndef RANDYGPT_BENCH_PROC_H
#define RANDYGPT_BENCH_PROC_H

#include <stddef.h>

typedef enum rg_proc_end {
    RG_PROC_EXITED,    /* exit_code holds the status */
    RG_PROC_SIGNALED,  /* signo holds the signal */
    RG_PROC_TIMED_OUT  /* killed by the caller's limit */
} rg_proc_end;

typedef struct rg_proc_result {
    rg_proc_end end;
    int exit_code;      /* RG_PROC_EXITED */
    int signo;          /* RG_PROC_SIGNALED */
    double wall_s;      /* from fork to reaping */
    long maxrss_kib;    /* ru_maxrss of the child, KiB */
    char *out;          /* its stdout, NUL-terminated (malloc'd; free it): the last max_out bytes */
    size_t out_len;
    int out_cut;        /* 1 when it wrote more than max_out bytes and out lacks their start */
    int returned;       /* rg_proc_call: 1 when the function returned (not exit(), no crash) */
    int fn_rc;          /* rg_proc_call: what it returned */
} rg_proc_result;

/* The byte that starts rg_proc_call's last line (ASCII record separator). */
#define RG_PROC_MARK '\036'

/* Runs argv (argv[0] is a path, or a name looked up in PATH) with stdin from /dev/null, stdout
 * captured (its last max_out bytes kept), stderr to stderr_path (NULL: inherited), in a process group
 * of its own. timeout_s <= 0 means no limit. Returns 0 when the child ran (whatever its end), or -1
 * with one line in err when it could not be started. */
int rg_proc_run(char *const argv[], const char *stderr_path, double timeout_s, size_t max_out,
                rg_proc_result *r, char *err, size_t err_len);

/* The same for a function: the child calls fn(user), its stdout captured as above and stderr
 * inherited; r->returned and r->fn_rc say whether fn returned and what (a call of exit() inside
 * fn, a crash or the timeout leave returned 0). Used to try a plugin where its crash, exit() or
 * hang cannot take the caller down. */
int rg_proc_call(int (*fn)(void *user), void *user, double timeout_s, size_t max_out,
                 rg_proc_result *r, char *err, size_t err_len);

/* How an rg_proc_call child that did not return ended, as a phrase: "did not finish in 10 s (it
 * hangs?)", "crashed (SIGABRT)", "called exit(3)". */
void rg_proc_describe_end(const rg_proc_result *r, double timeout_s, char *buf, size_t n);

/* "SIGSEGV" for SIGSEGV and the other common signals, else "SIG<n>"; buf holds the latter. */
const char *rg_signal_name(int signo, char *buf, size_t n);

#endif /* RANDYGPT_BENCH_PROC_H */
