/*
 * cmd_codes.c - `lienthong codes`: every rejection and error code with its meaning, so an
 * operator reading a NACK or a log line can look the code up.
 */
#include "cmd_decls.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

const char lt_cmd_codes_summary[] = "list every error and rejection code with its meaning";

int lt_cmd_codes(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: lienthong codes\n\n%s.\n", lt_cmd_codes_summary);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "lienthong codes: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    for (int c = 0; c < 100; c++) {
        const char *name = lt_err_name((lt_err)c);
        if (strcmp(name, "UNKNOWN") != 0)
            printf("%3d  %-20s %s\n", c, name, lt_err_str((lt_err)c));
    }
    return 0;
}
