/*
 * reader_int.h - what the readers (reader_*.c) share with reader.c: the record they fill
 * and the reject helper. Not for users of reader.h.
 */
#ifndef LT_ADAPTERS_READER_INT_H
#define LT_ADAPTERS_READER_INT_H

#include "reader.h"

struct json_object;
struct _xmlDoc;

struct lt_record {
    const char *file;
    size_t line, index;
    lt_charset cs;
    lt_charset_decoder *dec; /* decodes byte-range look-ups (fixed) */
    size_t n, cap;
    const char **names; /* borrowed from the reader (header, layout, keys) */
    char **values;      /* owned, freed by lt_rec_clear */
    const uint8_t *raw; /* fixed: the raw line */
    size_t raw_len;
    struct _xmlDoc *doc;     /* edXML */
    struct json_object *json; /* JSON lines */
    char **scratch;          /* strings made by look-ups, freed by lt_rec_clear */
    size_t nscratch, capscratch;
};

/* Shared state of one run. */
struct lt_run {
    const lt_reader_opts *opts;
    const char *file;
    const lt_reader_sink *sink;
    lt_reader_stats *stats;
    lt_charset_decoder *dec;
};

/* Append (name, value); value is taken over (freed on failure too). LT_ENOMEM. */
lt_err lt_rec_add(struct lt_record *r, const char *name, char *value);
/* Forget the fields and scratch strings of r, keep its buffers. */
void lt_rec_clear(struct lt_record *r);
/* Free everything r holds. */
void lt_rec_fini(struct lt_record *r);
/* Keep s until the record is cleared; returns s, or NULL (and frees s) without memory. */
char *lt_rec_keep(struct lt_record *r, char *s);

/* Report a reject (formats reason) and count it. */
void lt_run_reject(struct lt_run *run, size_t line, size_t record, const char *field,
                   lt_err code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Give r to the record callback and count it; LT_ECLOSED if the callback asks to stop. */
lt_err lt_run_deliver(struct lt_run *run, struct lt_record *r, lt_why *why);
/* Decode len bytes with the run's decoder into a malloc'd string. */
lt_err lt_run_decode(struct lt_run *run, const uint8_t *in, size_t len, char **out,
                     lt_why *why);

lt_err lt_reader_csv(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why);
lt_err lt_reader_fixed(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why);
lt_err lt_reader_edxml(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why);
lt_err lt_reader_jsonl(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why);
/* XPath look-up for edXML records (reader_edxml.c). */
lt_err lt_reader_edxml_xpath(struct lt_record *r, const char *expr, const char **value,
                             lt_why *why);
/* An edXML record has no field name: LT_EFORMAT when the document has that standard
 * field's element under a namespace other than edXML's (why names both), else LT_ENOTFOUND
 * (reader_edxml.c). */
lt_err lt_reader_edxml_missing(struct lt_record *r, const char *name, lt_why *why);
/* Dotted-path look-up for JSON records (reader_jsonl.c). */
lt_err lt_reader_jsonl_path(struct lt_record *r, const char *path, const char **value,
                            lt_why *why);

#endif
