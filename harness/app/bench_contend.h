/*
 * `bench --contend N`: N busy processes of the harness's own (each runs the FMA chains of the
 * peak measurement forever), so that backends are timed on a machine that is shared, as a laptop
 * or a server usually is. They run only while the timed children do: started before a round,
 * killed after it, and killed too when the harness dies (SIGKILL on parent death) or is
 * interrupted (they stay in its process group, so Ctrl-C reaches them).
 */
#ifndef RANDYGPT_BENCH_CONTEND_H
#define RANDYGPT_BENCH_CONTEND_H

#include <stddef.h>
#include <sys/types.h>

#define RG_CONTEND_MAX 64

typedef struct rg_contend {
    int n;                     /* processes running */
    pid_t pids[RG_CONTEND_MAX];
} rg_contend;

/* Starts n busy processes (0 starts none). Returns 0, or -1 with one line in err (those started
 * are stopped again). */
int rg_contend_start(rg_contend *c, int n, char *err, size_t err_len);

/* Kills and reaps every process c started; a no-op when none runs. */
void rg_contend_stop(rg_contend *c);

#endif /* RANDYGPT_BENCH_CONTEND_H */
