/*
 * cmd_decode.c - `lienthong decode`: print a legacy-encoded file as UTF-8 NFC, or say which
 * encoding it is in (--detect). Errors are one line on stderr; exit 1 when the file does
 * not decode, 2 on usage errors.
 */
#include "charset.h"
#include "cmd_decls.h"
#include "err.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lt_cmd_decode_summary[] = "print a CP1258/TCVN3/VNI/UTF-8 file as UTF-8 NFC, or detect its encoding";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong decode [--from ENCODING] [--detect [--all]] FILE\n\n"
            "Prints FILE as UTF-8 NFC. ENCODING is auto (default), utf-8, cp1258, tcvn3, vni,\n"
            "or one of those followed by +cp1252 for double-encoded text (legacy bytes read as\n"
            "Windows-1252 and saved again as UTF-8). auto scores every candidate by the share\n"
            "of words that are Vietnamese syllables and refuses when none reaches %.0f%%.\n"
            "TCVN3 has no bytes for toned capitals: they come out in lowercase.\n\n"
            "  --from ENCODING  decode as ENCODING instead of detecting it\n"
            "  --detect         print the encoding found and its score instead of the text\n"
            "  --all            with --detect, print every candidate's score\n"
            "  FILE             a file, or - for standard input\n",
            LT_CHARSET_MIN_SCORE * 100);
}

int lt_cmd_decode(int argc, char **argv)
{
    const char *from = "auto", *path = NULL;
    int detect = 0, all = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else if (strncmp(argv[i], "--from=", 7) == 0) {
            from = argv[i] + 7;
        } else if (strcmp(argv[i], "--detect") == 0) {
            detect = 1;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            fprintf(stderr, "lienthong decode: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (path == NULL) {
            path = argv[i];
        } else {
            fprintf(stderr, "lienthong decode: one FILE only, got '%s' too\n", argv[i]);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "lienthong decode: no FILE given (see --help)\n");
        return 2;
    }
    lt_why why = {{0}};
    lt_charset cs;
    if (lt_charset_from_name(from, &cs, &why) != LT_OK) {
        fprintf(stderr, "lienthong decode: %s\n", why.msg);
        return 2;
    }
    char *text_in = NULL;
    size_t len = 0;
    lt_err rerr = strcmp(path, "-") == 0
                      ? lt_file_read_stream(stdin, "-", SIZE_MAX, &text_in, &len, &why)
                      : lt_file_read(path, SIZE_MAX, &text_in, &len, &why);
    if (rerr != LT_OK) {
        fprintf(stderr, "lienthong decode: %s\n", why.msg);
        return 1;
    }
    const uint8_t *buf = (const uint8_t *)text_in;
    int status = 0;
    if (detect) {
        lt_charset found;
        double score;
        lt_err err = lt_charset_detect(buf, len, &found, &score, &why);
        if (all) {
            lt_charset_score s[LT_CHARSET_COUNT];
            size_t n = 0;
            if (lt_charset_rank(buf, len, s, LT_CHARSET_COUNT, &n) == LT_OK)
                for (size_t i = 0; i < n; i++) {
                    if (s[i].err)
                        printf("%-14s does not decode (%s)\n", lt_charset_name(s[i].cs),
                               lt_err_name(s[i].err));
                    else
                        printf("%-14s %.3f  %zu of %zu words\n", lt_charset_name(s[i].cs),
                               s[i].score, s[i].valid, s[i].words);
                }
        }
        if (err) {
            fprintf(stderr, "lienthong decode: %s: %s\n", path, why.msg);
            status = 1;
        } else if (!all) {
            printf("%s %.3f\n", lt_charset_name(found), score);
        }
    } else {
        char *text = NULL;
        size_t tl = 0;
        if (lt_charset_decode(cs, buf, len, &text, &tl, &why) != LT_OK) {
            fprintf(stderr, "lienthong decode: %s: %s\n", path, why.msg);
            status = 1;
        } else {
            if (fwrite(text, 1, tl, stdout) != tl || fflush(stdout) != 0) {
                fprintf(stderr, "lienthong decode: writing the output: %s\n", strerror(errno));
                status = 1;
            }
            free(text);
        }
    }
    free(text_in);
    return status;
}
