/* randygpt: train randyGPT with a chosen backend, generate text, list, check and benchmark backends. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"train", rg_cmd_train, "train a model with a backend, save checkpoints"},
    {"generate", rg_cmd_generate, "generate text from a checkpoint"},
    {"export", rg_cmd_export, "write the weights-only file of a checkpoint, for generate"},
    {"backends", rg_cmd_backends, "list the backend plugins found, and whether each loads"},
    {"check", rg_cmd_check, "run the conformance suite on a backend plugin"},
    {"bench", rg_cmd_bench, "time backends against one another and write a report"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: randygpt COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'randygpt COMMAND --help' shows the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "randygpt: unknown command '%s' (try 'randygpt --help')\n", argv[1]);
    return 2;
}
