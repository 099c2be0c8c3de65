/*
 * Flag and number parsing for `train` and `generate`: "--flag VALUE" and "--flag=VALUE", numbers
 * checked in full with strtol/strtoull/strtod (no trailing text, no overflow, in range). Each parser
 * returns 0, or -1 with one line in err naming the flag and the bad value.
 */
#ifndef RANDYGPT_CMDLINE_H
#define RANDYGPT_CMDLINE_H

#include <stddef.h>
#include <stdint.h>

/* If argv[*i] is flag (alone, or as flag=VALUE), consumes it and its value and returns 1 with
 * *value set (NULL when the value is missing); returns 0 when argv[*i] is another flag. */
int rg_cli_flag(const char *flag, int argc, char **argv, int *i, const char **value);

/* An integer in [min, max]. */
int rg_cli_int(const char *flag, const char *s, long min, long max, int *out, char *err, size_t n);
/* An unsigned 64-bit integer (a seed): digits only. */
int rg_cli_u64(const char *flag, const char *s, uint64_t *out, char *err, size_t n);
/* A finite number with min < x <= max (min_open) or min <= x <= max. */
int rg_cli_float(const char *flag, const char *s, double min, int min_open, double max, float *out,
                 char *err, size_t n);

#endif /* RANDYGPT_CMDLINE_H */
