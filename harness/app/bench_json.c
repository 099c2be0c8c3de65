/* bench's helpers on jansson (see bench_json.h). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "bench_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *rg_json_real(double x) { return isfinite(x) ? json_real(x) : json_null(); }

json_t *rg_json_text(const char *s) {
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    /* not UTF-8: keep the ASCII */
    char *copy = strdup(s);
    if (!copy) return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

double rg_json_num(const json_t *j, const char *key) {
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int rg_json_write_file(const json_t *root, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int bad = json_dumpf(root, f, RG_JSON_FILE_FLAGS) != 0 || fputc('\n', f) == EOF;
    int saved = errno;
    if (fclose(f) != 0 || bad) {
        if (bad) errno = saved ? saved : EIO;
        return -1;
    }
    return 0;
}
