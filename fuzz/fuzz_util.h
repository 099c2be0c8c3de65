/* Shared by the fuzz targets: the input written to a file of this process, since the readers under
 * test take a path. */
#ifndef RANDYGPT_FUZZ_UTIL_H
#define RANDYGPT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes n bytes to path (replacing it). Aborts if that fails: the target cannot run without it. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* A path of this process under $TMPDIR (or /tmp) with the given suffix. */
static inline void fuzz_tmp_path(char *buf, size_t n, const char *suffix) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, n, "%s/randygpt-fuzz-%ld%s", dir && *dir ? dir : "/tmp", (long)getpid(), suffix);
}

#endif /* RANDYGPT_FUZZ_UTIL_H */
