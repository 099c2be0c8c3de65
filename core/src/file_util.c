/* File checks shared by the checkpoint and corpus readers (see file_util.h). */
#define _POSIX_C_SOURCE 200809L
#include "file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "randygpt/text.h"

const char *rg_file_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

int rg_open_regular(const char *path, const char *what, struct stat *st, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rg_errf(err, err_len, "cannot open %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        rg_errf(err, err_len, "cannot open %s %s: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        rg_errf(err, err_len, "%s %s is %s, not a regular file", what, path, rg_file_kind(st->st_mode));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        rg_errf(err, err_len, "cannot open %s %s: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
