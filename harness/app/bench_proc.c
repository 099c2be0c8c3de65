/* fork + exec (or a function call) with a captured stdout, a time limit and per-child rusage. */
#define _DEFAULT_SOURCE /* wait4 */
#define _GNU_SOURCE     /* prctl */
#include "bench_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "randygpt/text.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *rg_signal_name(int signo, char *buf, size_t n) {
    static const struct {
        int signo;
        const char *name;
    } names[] = {
        {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGILL, "SIGILL"},   {SIGFPE, "SIGFPE"},
        {SIGABRT, "SIGABRT"}, {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"},
        {SIGHUP, "SIGHUP"},   {SIGPIPE, "SIGPIPE"}, {SIGTRAP, "SIGTRAP"}, {SIGSYS, "SIGSYS"},
        {SIGXCPU, "SIGXCPU"}, {SIGQUIT, "SIGQUIT"}, {SIGALRM, "SIGALRM"}, {SIGUSR1, "SIGUSR1"},
        {SIGUSR2, "SIGUSR2"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].signo == signo) return names[i].name;
    snprintf(buf, n, "SIG%d", signo);
    return buf;
}

/* Appends what is readable on fd to r->out, keeping its last max_out bytes (the end, where a
 * result or a refusal is, matters most; r->out_cut says that the start was dropped). Returns 0 at
 * EOF. */
static int drain(int fd, rg_proc_result *r, size_t max_out) {
    char chunk[4096];
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (got == 0) return 0;
    char *bigger = realloc(r->out, r->out_len + (size_t)got + 1);
    if (!bigger) return 1; /* keep what we have; the child still runs to its end */
    r->out = bigger;
    memcpy(r->out + r->out_len, chunk, (size_t)got);
    r->out_len += (size_t)got;
    if (r->out_len > max_out) {
        memmove(r->out, r->out + (r->out_len - max_out), max_out);
        r->out_len = max_out;
        r->out_cut = 1;
    }
    r->out[r->out_len] = '\0';
    return 1;
}

/* What a child runs: exec of argv, or a function of the caller's. */
typedef struct child_job {
    char *const *argv;    /* exec when fn is NULL */
    int (*fn)(void *user);
    void *user;
} child_job;

/* In the child, after fork: its own process group (a timeout kills it and anything it started),
 * killed with its parent (an interrupted caller leaves no hung child behind), stdin from
 * /dev/null, stdout into the pipe. Never returns. */
static void child_run(const child_job *job, int pipefd[2], int errfd, pid_t parent) {
    setpgid(0, 0);
#if defined(__linux__)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the parent died before the line above */
#else
    (void)parent;
#endif
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    dup2(pipefd[1], STDOUT_FILENO);
    if (errfd >= 0) dup2(errfd, STDERR_FILENO);
    close(pipefd[0]);
    close(pipefd[1]);
    if (job->fn) {
        /* the marker line tells the parent that fn returned, and what: a plugin that calls exit()
         * inside fn ends the child without it */
        int rc = job->fn(job->user);
        printf("%c%d\n", RG_PROC_MARK, rc);
        fflush(NULL);
        _exit(0);
    }
    execvp(job->argv[0], job->argv);
    fprintf(stderr, "cannot run %s: %s\n", job->argv[0], strerror(errno));
    _exit(127);
}

/* Collects the child's output and status until it ends or the deadline passes (then its whole
 * group is killed). */
static void supervise(pid_t pid, int outfd, double t0, double timeout_s, size_t max_out,
                      rg_proc_result *r) {
    double deadline = timeout_s > 0 ? t0 + timeout_s : 0.0;
    int open_pipe = 1, status = 0, reaped = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (!reaped) {
        if (deadline > 0 && now_s() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
            }
            r->end = RG_PROC_TIMED_OUT;
            break;
        }
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid) {
            reaped = 1;
            kill(-pid, SIGKILL); /* anything it left behind could hold the pipe open */
        }
        /* Read the pipe (with a short wait) also after the child ended: its last output is there. */
        int wait_ms = reaped ? 0 : 20;
        if (open_pipe) {
            struct pollfd pfd = {outfd, POLLIN, 0};
            if (poll(&pfd, 1, wait_ms) > 0) open_pipe = drain(outfd, r, max_out);
            if (reaped) /* the write end is gone with the child: read to EOF */
                while (open_pipe) open_pipe = drain(outfd, r, max_out);
        } else if (!reaped) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    r->wall_s = now_s() - t0;
    r->maxrss_kib = ru.ru_maxrss;
    if (r->end != RG_PROC_TIMED_OUT) {
        if (WIFSIGNALED(status)) {
            r->end = RG_PROC_SIGNALED;
            r->signo = WTERMSIG(status);
        } else {
            r->end = RG_PROC_EXITED;
            r->exit_code = WEXITSTATUS(status);
        }
    }
}

static int proc_start(const child_job *job, const char *what, const char *stderr_path,
                      double timeout_s, size_t max_out, rg_proc_result *r, char *err,
                      size_t err_len) {
    memset(r, 0, sizeof *r);
    r->out = calloc(1, 1);
    int pipefd[2];
    if (!r->out || pipe(pipefd) != 0) {
        rg_errf(err, err_len, "cannot create a pipe for %s: %s", what, strerror(errno));
        free(r->out);
        r->out = NULL;
        return -1;
    }
    int errfd = -1;
    if (stderr_path) {
        errfd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (errfd < 0) {
            rg_errf(err, err_len, "cannot write %s: %s", stderr_path, strerror(errno));
            close(pipefd[0]);
            close(pipefd[1]);
            free(r->out);
            r->out = NULL;
            return -1;
        }
    }
    fflush(NULL); /* or the child would flush our buffered output a second time */
    double t0 = now_s();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rg_errf(err, err_len, "cannot start %s: %s", what, strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        if (errfd >= 0) close(errfd);
        free(r->out);
        r->out = NULL;
        return -1;
    }
    if (pid == 0) child_run(job, pipefd, errfd, parent);
    setpgid(pid, pid); /* also here, so that a kill right after fork finds the group */
    close(pipefd[1]);
    if (errfd >= 0) close(errfd);
    supervise(pid, pipefd[0], t0, timeout_s, max_out, r);
    close(pipefd[0]);
    return 0;
}

int rg_proc_run(char *const argv[], const char *stderr_path, double timeout_s, size_t max_out,
                rg_proc_result *r, char *err, size_t err_len) {
    child_job job = {argv, NULL, NULL};
    return proc_start(&job, argv[0], stderr_path, timeout_s, max_out, r, err, err_len);
}

int rg_proc_call(int (*fn)(void *user), void *user, double timeout_s, size_t max_out,
                 rg_proc_result *r, char *err, size_t err_len) {
    child_job job = {NULL, fn, user};
    if (proc_start(&job, "a child process", NULL, timeout_s, max_out, r, err, err_len) != 0)
        return -1;
    /* the marker is the last line when fn returned: take it off the output */
    char *mark = strrchr(r->out, RG_PROC_MARK);
    if (r->end == RG_PROC_EXITED && r->exit_code == 0 && mark && (mark == r->out || mark[-1] == '\n')) {
        r->returned = 1;
        r->fn_rc = atoi(mark + 1);
        *mark = '\0';
        r->out_len = (size_t)(mark - r->out);
    }
    return 0;
}

void rg_proc_describe_end(const rg_proc_result *r, double timeout_s, char *buf, size_t n) {
    char sig[16];
    if (r->end == RG_PROC_TIMED_OUT)
        snprintf(buf, n, "did not finish in %g s (it hangs?)", timeout_s);
    else if (r->end == RG_PROC_SIGNALED)
        snprintf(buf, n, "crashed (%s)", rg_signal_name(r->signo, sig, sizeof sig));
    else
        snprintf(buf, n, "called exit(%d)", r->exit_code);
}
