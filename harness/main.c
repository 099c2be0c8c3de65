/* randygpt: train randyGPT with a chosen backend, generate text, list, check and benchmark backends. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "app/cmdline.h"
#include "commands.h"
#include "randygpt/backend.h"
#include "rg_git_commit.h" /* RG_GIT_COMMIT, written at build time */

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
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: randygpt COMMAND [OPTIONS]\n"
               "       randygpt help COMMAND | --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'randygpt COMMAND --help' (or 'randygpt help COMMAND') shows the options of a "
               "command.\n");
}

static void version(void) {
    printf("randygpt %s (backend ABI version %d%s%s)\n", RG_VERSION, RG_BACKEND_ABI_VERSION,
           RG_GIT_COMMIT[0] ? ", commit " : "", RG_GIT_COMMIT);
}

/* The command named name; for an unknown one, one line with the closest name and NULL. */
static int find_command(const char *name) {
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return (int)i;
    const char *names[NUM_COMMANDS];
    for (size_t i = 0; i < NUM_COMMANDS; i++) names[i] = commands[i].name;
    const char *near = rg_closest_name(name, names, NUM_COMMANDS);
    fprintf(stderr, "randygpt: unknown command '%s'%s%s%s (try 'randygpt --help')\n", name,
            near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
    return -1;
}

/* What a command printed must have reached its file: a full disk or /dev/full as stdout is one line
 * and a non-zero status, not a silent success (a command that failed has said why already). */
static int finish_stdout(const char *cmd, int rc) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    if (rc == 0) fprintf(stderr, "randygpt %s: cannot write standard output: %s\n", cmd, strerror(errno));
    return rc ? rc : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *first = argv[1];
    if (!strcmp(first, "--help") || !strcmp(first, "-h") || (!strcmp(first, "help") && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(first, "--version") || !strcmp(first, "version")) {
        version();
        return 0;
    }
    if (!strcmp(first, "help")) {
        /* randygpt help CMD is randygpt CMD --help */
        if (argc > 3) {
            fprintf(stderr, "randygpt: help takes one COMMAND, got %d words\n", argc - 2);
            return 2;
        }
        int k = find_command(argv[2]);
        if (k < 0) return 2;
        char *help_argv[] = {argv[2], "--help", NULL};
        return commands[k].run(2, help_argv);
    }
    int k = find_command(first);
    if (k < 0) return 2;
    int rc = commands[k].run(argc - 1, argv + 1);
    return finish_stdout(first, rc);
}
