/*
 * main.c - the lienthong command: dispatches to one tools/cmd_<name>.c per subcommand.
 * The table is generated at build time from the file names (tools/CMakeLists.txt).
 */
#include <stdio.h>
#include <string.h>

struct lt_cmd_entry {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

#include "cmd_decls.h"
#include "cmd_table.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: lienthong [--version] [--help] COMMAND [ARGS]\n\n"
                 "lienthong - data-exchange gateway for government: signed records, durable\n"
                 "queues, legacy adapters. Commands:\n\n");
    for (size_t i = 0; i < sizeof lt_cmd_table / sizeof lt_cmd_table[0]; i++)
        fprintf(out, "  %-10s %s\n", lt_cmd_table[i].name, lt_cmd_table[i].summary);
    fprintf(out, "\n'lienthong COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lienthong %s\n", LT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof lt_cmd_table / sizeof lt_cmd_table[0]; i++)
        if (strcmp(argv[1], lt_cmd_table[i].name) == 0)
            return lt_cmd_table[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lienthong: unknown command '%s' (see 'lienthong --help')\n", argv[1]);
    return 2;
}
