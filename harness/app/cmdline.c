/* Flag and number parsing for train and generate (see cmdline.h). */
#include "app/cmdline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rg_cli_flag(const char *flag, int argc, char **argv, int *i, const char **value) {
    const char *arg = argv[*i];
    size_t len = strlen(flag);
    if (strncmp(arg, flag, len) != 0) return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0') return 0;
    *value = (*i + 1 < argc) ? argv[++*i] : NULL;
    return 1;
}

int rg_cli_int(const char *flag, const char *s, long min, long max, int *out, char *err, size_t n) {
    char *end;
    errno = 0;
    long v = (s && *s) ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < min || v > max) {
        snprintf(err, n, "%s must be an integer from %ld to %ld, got '%s'", flag, min, max,
                 s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int rg_cli_u64(const char *flag, const char *s, uint64_t *out, char *err, size_t n) {
    char *end;
    errno = 0;
    /* strtoull accepts a sign and blanks: only plain digits are a seed */
    unsigned long long v = (s && *s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || *end || errno) {
        snprintf(err, n, "%s must be a non-negative integer below 2^64, got '%s'", flag, s ? s : "");
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int rg_cli_float(const char *flag, const char *s, double min, int min_open, double max, float *out,
                 char *err, size_t n) {
    char *end;
    errno = 0;
    double v = (s && *s) ? strtod(s, &end) : 0;
    int ok = s && *s && !*end && !errno && isfinite(v) && v <= max && (min_open ? v > min : v >= min);
    if (!ok) {
        snprintf(err, n, "%s must be a number with %g %s x <= %g, got '%s'", flag, min,
                 min_open ? "<" : "<=", max, s ? s : "");
        return -1;
    }
    *out = (float)v;
    return 0;
}
