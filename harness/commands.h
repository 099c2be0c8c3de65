/* The `randygpt` subcommands. Each takes the arguments after its own name (argv[0] is the
 * subcommand) and returns the process exit status: 0 on success, 1 on a failure of the work,
 * 2 on bad usage. Each prints its own --help. */
#ifndef RANDYGPT_COMMANDS_H
#define RANDYGPT_COMMANDS_H

int rg_cmd_train(int argc, char **argv);     /* cmd_train.c */
int rg_cmd_generate(int argc, char **argv);  /* cmd_generate.c */
int rg_cmd_export(int argc, char **argv);    /* cmd_export.c */
int rg_cmd_backends(int argc, char **argv);  /* cmd_backends.c */
int rg_cmd_check(int argc, char **argv);     /* cmd_check.c */
int rg_cmd_bench(int argc, char **argv);     /* cmd_bench.c */

#endif
