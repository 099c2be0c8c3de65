/*
 * Command lines for every command: getopt_long over a table of options, and the validators that
 * check each value in full (no trailing text, no overflow, in range). An error is one line on
 * stderr, "PROG: ERR (see 'PROG --help')", and exit status 2; an unknown option gets the closest
 * known one ("did you mean --iters?").
 *
 * Adding an option is one table entry and one case:
 *   enum { OPT_STEPS = RG_CLI_FIRST_ID, ... };
 *   static const struct option options[] = {
 *       {"steps", required_argument, NULL, OPT_STEPS},
 *       RG_CLI_HELP_OPTION, RG_CLI_END};
 *   static int take(rg_cli *c, int id, const char *v, void *user) {
 *       my_opts *o = user;
 *       switch (id) {
 *       case OPT_STEPS: return rg_cli_int(c, v, 1, 1000, &o->steps);
 *       default: return RG_CLI_NOT_MINE;
 *       }
 *   }
 *   int rc = rg_cli_parse("randygpt bench", options, argc, argv, take, &o, usage);
 *   if (rc) return rc == 1 ? 0 : rc;  // 1: --help was printed; 2: an error was
 *
 * argv[0] is the command's name. Each --NAME takes its value as "--NAME VALUE" or "--NAME=VALUE";
 * a prefix of a name is refused with the closest name (getopt_long alone would take it). An argument that is not an option
 * reaches take with id RG_CLI_ARG.
 */
#ifndef RANDYGPT_CMDLINE_H
#define RANDYGPT_CMDLINE_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "randygpt/model.h"

#define RG_CLI_ARG 1           /* id of an argument that is not an option */
#define RG_CLI_FIRST_ID 256    /* the first id a command gives its own options */
#define RG_CLI_NOT_MINE 1      /* what take returns for an id it does not know */
#define RG_CLI_HELP_OPTION {"help", no_argument, NULL, 'h'}
#define RG_CLI_END {NULL, 0, NULL, 0}

/* One parse: the command, the option being taken, and the error it left. */
typedef struct rg_cli {
    const char *prog;             /* "randygpt train" */
    const struct option *options; /* the table, ended by RG_CLI_END */
    char *flag;                   /* "--iters" while its value is taken (malloc'd) */
    char *err;                    /* the error line, without the program name (malloc'd) */
} rg_cli;

/* Returns 0 when the value was taken, -1 after rg_cli_error, RG_CLI_NOT_MINE for an unknown id. */
typedef int (*rg_cli_take_fn)(rg_cli *c, int id, const char *value, void *user);

/* Parses argv[1..argc-1] against options (which must hold RG_CLI_HELP_OPTION) and hands every
 * option and argument to take in order. Returns 0 when all were taken, 1 after printing usage on
 * stdout for --help or -h, 2 after printing one error line on stderr. */
int rg_cli_parse(const char *prog, const struct option *options, int argc, char **argv,
                 rg_cli_take_fn take, void *user, void (*usage)(FILE *));

/* Sets c->err from the format (replacing an earlier one) and returns -1. */
int rg_cli_error(rg_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value checks, each naming c->flag in its error. Each returns 0, or -1 after rg_cli_error. */
/* A non-empty string: *out points at s. */
int rg_cli_string(rg_cli *c, const char *s, const char **out);
/* An integer in [min, max]: optional '-', then digits only (no blanks, no '+'). */
int rg_cli_int(rg_cli *c, const char *s, long min, long max, int *out);
/* A comma-separated list of distinct integers, each in [min, max], at most max_count of them, no
 * empty item; *count is set to how many. */
int rg_cli_int_list(rg_cli *c, const char *s, long min, long max, int *out, int max_count,
                    int *count);
/* An unsigned 64-bit integer (a seed): digits only. */
int rg_cli_u64(rg_cli *c, const char *s, uint64_t *out);
/* A finite number with min < x <= max (min_open) or min <= x <= max. */
int rg_cli_double(rg_cli *c, const char *s, double min, int min_open, double max, double *out);
int rg_cli_float(rg_cli *c, const char *s, double min, int min_open, double max, float *out);
/* A model preset by name: "unknown preset 'x' (tiny, small, medium or large)" otherwise. */
int rg_cli_preset(rg_cli *c, const char *s, const rg_preset **out);

/* Prints "PROG: ERR (see 'PROG --help')" on stderr and returns 2, the exit status of bad usage. */
int rg_cli_usage_error(const char *prog, const char *err);

/* The edit distance (insertions, deletions, substitutions, swaps of neighbours) of a and b. */
size_t rg_edit_distance(const char *a, const char *b);
/* The name among names[0..n-1] closest to word, when it is close enough to be a likely typo;
 * NULL otherwise. */
const char *rg_closest_name(const char *word, const char *const *names, size_t n);

/* "a, b, c" with last between the last two (", " or " or "), malloc'd; NULL when out of memory. */
char *rg_join_names(const char *const *names, size_t n, const char *last);

#endif /* RANDYGPT_CMDLINE_H */
