/*
 * fileio.h - reading a whole file into memory, with a size cap.
 *
 * Config files, PEM files, adapter input files and the CLI's inputs are all read whole and
 * then parsed from memory; this is the one place that does it. Thread-safe: no state.
 */
#ifndef LT_LIB_FILEIO_H
#define LT_LIB_FILEIO_H

#include "err.h"

#include <stddef.h>
#include <stdio.h>

/* Read the whole file at path. A file of more than max_bytes bytes is refused (SIZE_MAX:
 * no cap). On LT_OK *buf is a malloc'ed copy of the bytes followed by one NUL (so a text
 * file is also a C string; the NUL is not counted in *len), owned by the caller (free);
 * on error neither *buf nor *len is written and why says "PATH: ...".
 * LT_EIO: cannot open ("cannot open: <strerror>") or read; LT_ETOOBIG: over max_bytes;
 * LT_ENOMEM. */
lt_err lt_file_read(const char *path, size_t max_bytes, char **buf, size_t *len, lt_why *why);

/* As lt_file_read, from f (read to its end; left open for the caller to close): for stdin
 * or a pipe. name labels the messages. */
lt_err lt_file_read_stream(FILE *f, const char *name, size_t max_bytes, char **buf,
                           size_t *len, lt_why *why);

#endif
