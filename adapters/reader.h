/*
 * reader.h - one record interface over every legacy input format.
 *
 * A reader turns the bytes of one input file into records and hands each to a callback;
 * whatever it cannot read becomes a reject entry (file, line, record, field, reason) given
 * to a second callback, and reading goes on with the next record. Formats:
 *   CSV         RFC 4180 via libcsv: quoted fields, embedded newlines, ',' ';' or TAB
 *               separator (detected from the header row unless configured), header row;
 *   fixed       fixed-width lines; field offsets and widths are in BYTES of the legacy
 *               encoding, cut before decoding; a cut inside a character (a VNI base+mark
 *               pair, a UTF-8 sequence, a CP1258 letter+tone) is a reject, never a split;
 *   edXML       an edXML package (QCVN 102:2016 MessageHeader) or an edXML status message
 *               (MessageStatus) via libxml2: the whole file is one record;
 *   JSON lines  one JSON object per line via json-c.
 * Text is decoded to UTF-8 NFC (charset.h) field by field, so one bad byte rejects one
 * record, not the file. A record's values can be looked up by name, by column, by byte
 * range (fixed) or by XPath (edXML), so the mapping layer treats every format alike.
 *
 * Threads: a run belongs to the calling thread; callbacks run on it, and a record and
 * every string it gives out are valid only during the record callback.
 */
#ifndef LT_ADAPTERS_READER_H
#define LT_ADAPTERS_READER_H

#include "charset.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lt_reader_format {
    LT_FORMAT_CSV = 1,
    LT_FORMAT_FIXED = 2,
    LT_FORMAT_EDXML = 3,
    LT_FORMAT_JSONL = 4,
} lt_reader_format;

/* One field of a fixed-width layout: bytes [offset, offset + width) of each line. */
typedef struct lt_fixed_field {
    const char *name;
    size_t offset;
    size_t width;
} lt_fixed_field;

typedef struct lt_reader_opts {
    lt_reader_format format;
    lt_charset charset;           /* LT_CHARSET_AUTO: detect over the whole file */
    char separator;               /* CSV: ',', ';' or '\t'; 0 detects from the header row */
    bool no_header;               /* CSV: no header row; columns are named "1", "2", ... */
    const lt_fixed_field *fields; /* fixed: the layout (borrowed for the run) */
    size_t nfields;
} lt_reader_opts;

/* How a field is found in a record. */
typedef enum lt_field_by {
    LT_FIELD_NAME = 1,   /* header name (CSV), layout name (fixed), key or dotted path
                          * "a.b.0" (JSON), standard field name (edXML, see reader_edxml.c) */
    LT_FIELD_COLUMN = 2, /* 1-based position among the record's fields */
    LT_FIELD_BYTES = 3,  /* fixed only: bytes [offset, offset + width) of the raw line */
    LT_FIELD_XPATH = 4,  /* edXML only: an XPath 1.0 expression; edXML's elements without
                          * prefix (whatever prefix the file gave them), XML-DSig's as ds: */
} lt_field_by;

typedef struct lt_field_ref {
    lt_field_by by;
    const char *name; /* NAME and XPATH */
    size_t column;    /* COLUMN */
    size_t offset;    /* BYTES */
    size_t width;
} lt_field_ref;

typedef struct lt_record lt_record;

const char *lt_record_file(const lt_record *r);
/* 1-based line where the record starts (edXML: the root element's line). */
size_t lt_record_line(const lt_record *r);
/* 1-based number of the record among the data records of the file (header excluded). */
size_t lt_record_index(const lt_record *r);
/* Charset the record's text was decoded from (as detected or configured). */
lt_charset lt_record_charset(const lt_record *r);
/* The record's own fields, in order: header columns, layout fields, top-level JSON keys,
 * or the standard edXML fields present. Names and values are UTF-8 NFC, borrowed. */
size_t lt_record_nfields(const lt_record *r);
const char *lt_record_name(const lt_record *r, size_t i);
const char *lt_record_value(const lt_record *r, size_t i);

/* Look up one field. On LT_OK *value is UTF-8 NFC, borrowed until the record callback
 * returns. LT_ENOTFOUND: no such field (an XPath selecting nothing); LT_EFORMAT (edXML): an
 * XPath or standard field that finds nothing in edXML's namespace while the document has
 * the element under another prefix or namespace (why names the path and the element);
 * LT_EINVAL: the lookup kind does not apply to this format or the XPath is malformed;
 * LT_EENCODING: a byte range that cuts a character or does not decode; LT_ENOMEM. */
lt_err lt_record_get(lt_record *r, const lt_field_ref *ref, const char **value, lt_why *why);

/* One thing the reader could not read. Strings are borrowed for the callback. */
typedef struct lt_reject {
    const char *file;
    size_t line;       /* 0 when not tied to a line (e.g. undetectable encoding) */
    size_t record;     /* 0 when not tied to a record */
    const char *field; /* NULL when not tied to one field */
    lt_err code;       /* LT_EFORMAT, LT_EENCODING, ... */
    const char *reason;
} lt_reject;

typedef struct lt_reader_sink {
    /* Called per good record; return 0 to go on, anything else to stop reading. */
    int (*record)(void *ctx, lt_record *rec);
    /* Called per reject; may be NULL (rejects are then only counted). */
    void (*reject)(void *ctx, const lt_reject *rej);
    void *ctx;
} lt_reader_sink;

typedef struct lt_reader_stats {
    size_t records;     /* given to the record callback */
    size_t rejects;     /* given to the reject callback */
    lt_charset charset; /* charset used */
    double charset_score; /* detection score; 1 when the charset was configured */
} lt_reader_stats;

/* Read len bytes of data (named file in reports) as opts says. Returns LT_OK when the whole
 * input was gone through, each record either given to sink->record or rejected. Returns an
 * error, after also reporting it as a reject, when the file as a whole cannot be read:
 * LT_EENCODING (no charset convinces), LT_EFORMAT (not well-formed XML, no header row),
 * LT_EINVAL (bad options), LT_ECLOSED (the record callback asked to stop), LT_ENOMEM.
 * stats (may be NULL) is filled in either case. */
lt_err lt_reader_run(const lt_reader_opts *opts, const char *file, const uint8_t *data,
                     size_t len, const lt_reader_sink *sink, lt_reader_stats *stats,
                     lt_why *why);

/* lt_reader_run on the contents of path (named path in reports). LT_EIO if unreadable. */
lt_err lt_reader_run_file(const lt_reader_opts *opts, const char *path,
                          const lt_reader_sink *sink, lt_reader_stats *stats, lt_why *why);

/* "csv", "fixed", "edxml", "jsonl" -> format. LT_EINVAL otherwise. */
lt_err lt_reader_format_from_name(const char *name, lt_reader_format *f, lt_why *why);

#endif
