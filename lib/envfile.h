/*
 * envfile.h - files of envelopes, length-delimited: each envelope is preceded by its length
 * as a protobuf base-128 varint (the framing of protobuf's writeDelimitedTo / parseDelimited,
 * so other languages read these files with their stock library):
 *
 *     varint(len0) envelope0 varint(len1) envelope1 ...
 *
 * A length of 0, a varint longer than 5 bytes, a length over the reader's limit, and a file
 * that ends inside a record are errors (LT_EPROTO / LT_ETOOBIG), never silently skipped.
 * Readers and writers belong to one thread.
 */
#ifndef LT_LIB_ENVFILE_H
#define LT_LIB_ENVFILE_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

#define LT_ENVFILE_VARINT_MAX 5 /* bytes of a length prefix: lengths < 2^32 */

/* Encode len as a varint into out; returns the bytes written (1..LT_ENVFILE_VARINT_MAX). */
size_t lt_envfile_varint_put(uint8_t out[LT_ENVFILE_VARINT_MAX], uint32_t len);

/* Take the next record of buf[0..len) at *off (in memory). On LT_OK *item points into buf,
 * *item_len is set and *off advanced past it. LT_ENOTFOUND: *off == len (clean end);
 * LT_EPROTO: bad varint, zero length, or truncated record; LT_ETOOBIG: over max_len. */
lt_err lt_envfile_next_mem(const uint8_t *buf, size_t len, size_t *off, size_t max_len,
                           const uint8_t **item, size_t *item_len, lt_why *why);

typedef struct lt_envfile_reader lt_envfile_reader;

/* Open path for reading ("-": standard input); records over max_len are refused.
 * LT_EIO when it cannot be opened. The caller owns *out (lt_envfile_close_reader). */
lt_err lt_envfile_open_reader(const char *path, size_t max_len, lt_envfile_reader **out,
                              lt_why *why);

/* Read the next record. On LT_OK *item (valid until the next call or close) and *item_len
 * are set. LT_ENOTFOUND: clean end of file; LT_EPROTO / LT_ETOOBIG as lt_envfile_next_mem;
 * LT_EIO: read error; LT_ENOMEM. */
lt_err lt_envfile_read(lt_envfile_reader *r, const uint8_t **item, size_t *item_len,
                       lt_why *why);

/* Number of records returned so far (for "record 12: ..." messages). */
size_t lt_envfile_reader_count(const lt_envfile_reader *r);

/* Close. Accepts NULL; clears *rp. */
void lt_envfile_close_reader(lt_envfile_reader **rp);

typedef struct lt_envfile_writer lt_envfile_writer;

/* Create (truncate) path for writing, mode 0644 ("-": standard output). LT_EIO on failure.
 * The caller owns *out and must lt_envfile_close_writer it. */
lt_err lt_envfile_open_writer(const char *path, lt_envfile_writer **out, lt_why *why);

/* Append one record. LT_EINVAL: len 0 or >= 2^32; LT_EIO: write failed. */
lt_err lt_envfile_write(lt_envfile_writer *w, const uint8_t *item, size_t len, lt_why *why);

/* Flush, fsync (regular files) and close; LT_EIO if any of it failed (the file is then
 * incomplete). Accepts NULL (LT_OK); clears *wp either way. */
lt_err lt_envfile_close_writer(lt_envfile_writer **wp, lt_why *why);

#endif
