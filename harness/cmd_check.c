/* Placeholder until the command is written; replaced by its implementation. */
#include <stdio.h>

#include "commands.h"

int rg_cmd_check(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "randygpt check: not built yet\n");
    return 1;
}
