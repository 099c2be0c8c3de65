/*
 * Flag and number parsing for every command: "--flag VALUE" and "--flag=VALUE", numbers checked in
 * full with strtol/strtoull/strtod (no trailing text, no overflow, in range). Each parser returns 0,
 * or -1 with one line in err naming the flag and the bad value; a command prints that line with
 * rg_cli_usage_error and exits 2.
 *
 * Typical use:
 *   if (rg_cli_flag("--steps", argc, argv, &i, &v)) {
 *       if (!v) { rg_cli_missing(argv[i], err, sizeof err); goto bad; }
 *       if (rg_cli_int("--steps", v, 1, 1000, &steps, err, sizeof err) != 0) goto bad;
 *   }
 *   ...
 * bad:
 *   return rg_cli_usage_error("randygpt bench", err);
 */
#ifndef RANDYGPT_CMDLINE_H
#define RANDYGPT_CMDLINE_H

#include <stddef.h>
#include <stdint.h>

#include "randygpt/model.h"

/* If argv[*i] is flag (alone, or as flag=VALUE), consumes it and its value and returns 1 with
 * *value set (NULL when the value is missing); returns 0 when argv[*i] is another flag. */
int rg_cli_flag(const char *flag, int argc, char **argv, int *i, const char **value);

/* "FLAG needs a value" for arg, a flag as given ("--x" or "--x="). Returns -1. */
int rg_cli_missing(const char *arg, char *err, size_t n);

/* An integer in [min, max]: optional '-', then digits only (no blanks, no '+'). */
int rg_cli_int(const char *flag, const char *s, long min, long max, int *out, char *err, size_t n);
/* A comma-separated list of distinct integers, each in [min, max], at most max_count of them, no
 * empty item; *count is set to how many. */
int rg_cli_int_list(const char *flag, const char *s, long min, long max, int *out, int max_count,
                    int *count, char *err, size_t n);
/* An unsigned 64-bit integer (a seed): digits only. */
int rg_cli_u64(const char *flag, const char *s, uint64_t *out, char *err, size_t n);
/* A finite number with min < x <= max (min_open) or min <= x <= max. */
int rg_cli_double(const char *flag, const char *s, double min, int min_open, double max,
                  double *out, char *err, size_t n);
int rg_cli_float(const char *flag, const char *s, double min, int min_open, double max, float *out,
                 char *err, size_t n);
/* A model preset by name: "unknown preset 'x' (tiny, small, medium or large)" otherwise. */
int rg_cli_preset(const char *s, const rg_preset **out, char *err, size_t n);

/* Prints "PROG: ERR (see 'PROG --help')" on stderr and returns 2, the exit status of bad usage. */
int rg_cli_usage_error(const char *prog, const char *err);

#endif /* RANDYGPT_CMDLINE_H */
