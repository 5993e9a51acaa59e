/*
 * fileio.c - whole-file reads (see fileio.h).
 *
 * A regular file says its size: the buffer is allocated once at size + 2 (the NUL, and one
 * byte for the read that finds EOF) and a file over the cap is refused before reading. Other
 * streams (stdin, pipes) start at 4 KiB and double. Either way reading goes to EOF and the
 * cap is checked on what was read, so a file that grows meanwhile is still bounded.
 */
#include "fileio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

lt_err lt_file_read_stream(FILE *f, const char *name, size_t max_bytes, char **buf,
                           size_t *len, lt_why *why)
{
    size_t cap = 4096, n = 0;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
        if ((uintmax_t)st.st_size > max_bytes || (uintmax_t)st.st_size > SIZE_MAX - 2)
            return lt_fail(why, LT_ETOOBIG, "%s: larger than %zu bytes", name, max_bytes);
        cap = (size_t)st.st_size + 2;
    }
    char *b = malloc(cap);
    if (b == NULL)
        return lt_fail(why, LT_ENOMEM, "%s: out of memory", name);
    for (;;) {
        if (n + 1 == cap) { /* full but for the NUL: grow */
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (nb == NULL) {
                free(b);
                return lt_fail(why, LT_ENOMEM, "%s: out of memory", name);
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (n > max_bytes) {
            free(b);
            return lt_fail(why, LT_ETOOBIG, "%s: larger than %zu bytes", name, max_bytes);
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        free(b);
        return lt_fail(why, LT_EIO, "%s: read error: %s", name, strerror(e));
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return LT_OK;
}

lt_err lt_file_read(const char *path, size_t max_bytes, char **buf, size_t *len, lt_why *why)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lt_fail(why, LT_EIO, "%s: cannot open: %s", path, strerror(errno));
    lt_err e = lt_file_read_stream(f, path, max_bytes, buf, len, why);
    fclose(f);
    return e;
}
