/* Flag and number parsing for every command (see cmdline.h). */
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

int rg_cli_missing(const char *arg, char *err, size_t n) {
    snprintf(err, n, "%.*s needs a value", (int)strcspn(arg, "="), arg);
    return -1;
}

/* A whole-string integer in [min, max]: optional '-', then digits. */
static int parse_long(const char *s, long min, long max, long *out) {
    if (!s || !(*s == '-' || (*s >= '0' && *s <= '9'))) return -1; /* no blanks, no '+' */
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int rg_cli_int(const char *flag, const char *s, long min, long max, int *out, char *err, size_t n) {
    long v;
    if (parse_long(s, min, max, &v) != 0) {
        snprintf(err, n, "%s must be an integer from %ld to %ld, got '%s'", flag, min, max,
                 s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int rg_cli_int_list(const char *flag, const char *s, long min, long max, int *out, int max_count,
                    int *count, char *err, size_t n) {
    int k = 0;
    const char *item = s ? s : "";
    for (;;) {
        size_t len = strcspn(item, ",");
        char text[32];
        long v;
        int ok = len > 0 && len < sizeof text;
        if (ok) {
            memcpy(text, item, len);
            text[len] = '\0';
            ok = parse_long(text, min, max, &v) == 0;
        }
        if (!ok) {
            snprintf(err, n,
                     "%s must be a comma-separated list of integers from %ld to %ld, got '%s'",
                     flag, min, max, s ? s : "");
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (out[j] == (int)v) {
                snprintf(err, n, "%s lists %ld twice, in '%s'", flag, v, s);
                return -1;
            }
        if (k == max_count) {
            snprintf(err, n, "%s lists more than %d values, in '%s'", flag, max_count, s);
            return -1;
        }
        out[k++] = (int)v;
        if (!item[len]) break;
        item += len + 1;
    }
    *count = k;
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

int rg_cli_double(const char *flag, const char *s, double min, int min_open, double max,
                  double *out, char *err, size_t n) {
    char *end;
    errno = 0;
    double v = (s && *s) ? strtod(s, &end) : 0;
    int ok = s && *s && !*end && !errno && isfinite(v) && v <= max && (min_open ? v > min : v >= min);
    if (!ok) {
        snprintf(err, n, "%s must be a number with %g %s x <= %g, got '%s'", flag, min,
                 min_open ? "<" : "<=", max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int rg_cli_float(const char *flag, const char *s, double min, int min_open, double max, float *out,
                 char *err, size_t n) {
    double v;
    if (rg_cli_double(flag, s, min, min_open, max, &v, err, n) != 0) return -1;
    *out = (float)v;
    return 0;
}

int rg_cli_preset(const char *s, const rg_preset **out, char *err, size_t n) {
    const rg_preset *p = s ? rg_preset_find(s) : NULL;
    if (p) {
        *out = p;
        return 0;
    }
    size_t used = (size_t)snprintf(err, n, "unknown preset '%s' (", s ? s : "");
    for (int k = 0; rg_presets[k].name && used < n; k++) {
        const char *sep = k == 0 ? "" : rg_presets[k + 1].name ? ", " : " or ";
        used += (size_t)snprintf(err + used, n - used, "%s%s", sep, rg_presets[k].name);
    }
    if (used < n) snprintf(err + used, n - used, ")");
    return -1;
}

int rg_cli_usage_error(const char *prog, const char *err) {
    fprintf(stderr, "%s: %s (see '%s --help')\n", prog, err, prog);
    return 2;
}
