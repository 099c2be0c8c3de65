/*
 * Interrupting a long command (train): the first SIGINT or SIGTERM asks it to stop at the end of
 * its step, after a save; a second signal while that request is pending (Ctrl-C pressed again, a
 * SIGTERM after a Ctrl-C, a backend that never ends its step) stops the process at once with one
 * line on stderr and status 128 + that signal (130 for SIGINT, 143 for SIGTERM). Stopping at once
 * cannot damage a saved checkpoint: a save writes a temporary file and renames it (checkpoint.h);
 * one cut short leaves only that temporary file, which the next save removes.
 */
#ifndef RANDYGPT_STOP_H
#define RANDYGPT_STOP_H

/* Installs the handlers for SIGINT and SIGTERM; prog ("randygpt train") starts their lines. */
void rg_stop_install(const char *prog);

/* The first signal received since rg_stop_install, or 0. */
int rg_stop_requested(void);

#endif /* RANDYGPT_STOP_H */
