/* File checks shared by the checkpoint and corpus readers (internal to the core). */
#ifndef RANDYGPT_FILE_UTIL_H
#define RANDYGPT_FILE_UTIL_H

#include <stddef.h>
#include <sys/stat.h>

/* What kind of file mode names, as a noun phrase: "a directory", "a FIFO", "a character device"... */
const char *rg_file_kind(mode_t mode);

/* Opens path for reading without ever blocking on it: O_NONBLOCK for the open (a FIFO without a
 * writer would otherwise hang there), then fstat, then blocking reads again. Anything but a regular
 * file is refused. Fills *st. Returns the descriptor, or -1 with one line in err that starts with
 * what ("checkpoint", "data file") and path. */
int rg_open_regular(const char *path, const char *what, struct stat *st, char *err, size_t err_len);

#endif /* RANDYGPT_FILE_UTIL_H */
