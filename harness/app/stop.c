/* SIGINT and SIGTERM for long commands (see stop.h). */
#define _POSIX_C_SOURCE 200809L
#include "app/stop.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "randygpt/text.h"

static volatile sig_atomic_t requested;
/* The lines are formatted at install time: a handler may only write(2) them. */
static char first_line[512], again_line[2][512];

static void say(const char *line) {
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w; /* nothing more can be done from a handler */
}

static void on_stop(int sig) {
    if (!requested) {
        requested = sig;
        say(first_line);
        return;
    }
    say(again_line[sig == SIGTERM]);
    _exit(128 + sig);
}

void rg_stop_install(const char *prog) {
    /* on a terminal, first end a progress line drawn with \r */
    const char *nl = isatty(STDERR_FILENO) ? "\n" : "";
    rg_errf(first_line, sizeof first_line,
            "%s%s: stopping after this step with a checkpoint (Ctrl-C again to stop at once)\n",
            nl, prog);
    static const char *const names[2] = {"SIGINT", "SIGTERM"};
    for (int k = 0; k < 2; k++)
        rg_errf(again_line[k], sizeof again_line[k],
                "%s%s: %s while a stop was pending: stopped at once; checkpoints already saved "
                "are intact\n", nl, prog, names[k]);
    requested = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int rg_stop_requested(void) { return requested; }
