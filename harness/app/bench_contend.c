/* Busy processes for `bench --contend N` (bench_contend.h). */
#define _GNU_SOURCE
#include "bench_contend.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_peak.h"
#include "randygpt/text.h"

int rg_contend_start(rg_contend *c, int n, char *err, size_t err_len) {
    c->n = 0;
    if (n < 0 || n > RG_CONTEND_MAX) {
        rg_errf(err, err_len, "--contend needs 0 to %d busy processes, not %d", RG_CONTEND_MAX, n);
        return -1;
    }
    const pid_t parent = getpid();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            rg_errf(err, err_len, "cannot start busy process %d of %d: %s", i + 1, n,
                    strerror(errno));
            rg_contend_stop(c);
            return -1;
        }
        if (pid == 0) {
            /* die with the harness, even when it is killed outright */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            rg_peak_burn();
        }
        c->pids[c->n++] = pid;
    }
    return 0;
}

void rg_contend_stop(rg_contend *c) {
    for (int i = 0; i < c->n; i++) kill(c->pids[i], SIGKILL);
    for (int i = 0; i < c->n; i++)
        while (waitpid(c->pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    c->n = 0;
}
