/*
 * mapping.h - declarative per-feed mappings: legacy rows -> canonical records.
 *
 * One YAML file per agency feed says how to read the input (format, encoding, separator,
 * fixed layout), which record type to build, the topic template, the natural key, the error
 * policy, and for every target field (a dotted path into the record, e.g. child.full_name)
 * where its value comes from, an ordered chain of transforms and the validation it must pass.
 * It is Kafka Connect's "connector + ordered transform chain + error policy" as data:
 *
 *     mapping:
 *       record_type: lienthong.v1.records.BirthRegistration
 *       topic: "79.{district}.hotich.khaisinh"
 *       key: [registration_number]
 *       policy: publish_good             # or reject_file
 *     input: {format: csv, encoding: auto, separator: ";", header: true}
 *     lookups:
 *       wards: {file: lookups/hcmc_wards_2025.csv, key: old_code, value: new_code,
 *               effective: effective, note: note}
 *     vars:
 *       district: {source: {const: "760"}}
 *     fields:
 *       child.full_name:
 *         source: {name: "Họ và tên"}
 *         transforms: [trim, collapse_spaces]
 *         validate: {required: true, max_length: 100}
 *       child.birth_date:
 *         source: {name: "Ngày sinh"}
 *         transforms: [{date: {from: dd/mm/yyyy}}]
 *
 * The full reference (every key, every transform) is adapters/samples/mappings/README.md.
 * Every target path is resolved against the record type's protobuf descriptor when the file
 * is loaded, so a misspelt field is refused as "file:line: fields.chid.full_name: ..." before
 * any row is read; likewise unknown keys, bad regexes, unknown look-up tables and date
 * references to fields not defined earlier.
 *
 * Building a record: the values are assembled as a JSON object and converted with
 * lt_json_to_pb (lib/json.h), the one descriptor-driven converter every record type shares; its
 * field-path reasons ("child.sex: unknown enum value") become the row's reject reasons.
 *
 * Message ids are content-derived: the first 16 bytes of
 *     SHA-256("lienthong/v1 adapt\0" || agency id || "\0" || record type || "\0" ||
 *             natural key || "\0" || payload bytes)
 * with the UUID version nibble set to 8 and the variant to 10 (RFC 9562 UUIDv8), so importing
 * the same file twice yields the same ids (the broker acks them as duplicates), and a
 * corrected row gets a new id. protobuf-c packs fields in field-number order, so the payload
 * of one record is always the same bytes.
 *
 * Threads: a loaded mapping is immutable and may be shared by threads; each lt_mapping_run
 * belongs to its caller's thread.
 */
#ifndef LT_ADAPTERS_MAPPING_H
#define LT_ADAPTERS_MAPPING_H

#include "envelope.h"
#include "err.h"
#include "reader.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_mapping lt_mapping;

typedef enum lt_mapping_policy {
    LT_MAPPING_PUBLISH_GOOD = 1, /* publish the good rows, report the bad */
    LT_MAPPING_REJECT_FILE = 2,  /* any bad row: publish nothing from the file */
} lt_mapping_policy;

/* Load and check the mapping file at path (look-up tables are read now, relative to its
 * directory). On LT_OK the caller owns *out (lt_mapping_destroy). LT_EIO: unreadable;
 * LT_ECONFIG: anything wrong in the file or a table it references, with "file:line: key:
 * reason" in why; LT_ENOMEM. */
lt_err lt_mapping_load(const char *path, lt_mapping **out, lt_why *why);

/* As lt_mapping_load from len bytes at buf; label names it in messages and relative table
 * paths resolve against the current directory. */
lt_err lt_mapping_parse(const char *label, const char *buf, size_t len, lt_mapping **out,
                        lt_why *why);

/* Free. Accepts NULL; clears *mp. */
void lt_mapping_destroy(lt_mapping **mp);

/* Getters, borrowed from m. The reader options are what lt_mapping_run uses. */
const lt_reader_opts *lt_mapping_reader_opts(const lt_mapping *m);
const char *lt_mapping_record_type(const lt_mapping *m);
const char *lt_mapping_name(const lt_mapping *m); /* mapping.name, or the file name */
lt_mapping_policy lt_mapping_get_policy(const lt_mapping *m);

/* One record built from one row. Strings and bytes are owned by the run and valid only during
 * the record callback (copy what must outlive it). */
typedef struct lt_mapped {
    const char *file;
    size_t line;   /* where the row starts */
    size_t index;  /* 1-based row number among the file's data rows */
    const char *topic;
    const char *record_type;
    const char *key;  /* natural key values joined by '|' */
    const char *json; /* the record as canonical JSON (lt_json_pb_to_string), one line */
    const uint8_t *payload;
    size_t payload_len;
    uint8_t message_id[LT_ENV_MESSAGE_ID_LEN];
} lt_mapped;

/* One row (or file) not turned into a record, with the field, the offending value and why.
 * Borrowed for the callback; field and value may be "" when not tied to one field. */
typedef struct lt_map_reject {
    const char *file;
    size_t line;  /* 0 when not tied to a line */
    size_t index; /* 0 when not tied to a row */
    const char *field;
    const char *value;
    lt_err code; /* LT_EVALIDATE, LT_EFORMAT, LT_EENCODING, ... */
    const char *reason;
} lt_map_reject;

typedef struct lt_mapping_sink {
    /* A good record; return 0 to go on, anything else to stop the run (LT_ECLOSED). */
    int (*record)(void *ctx, const lt_mapped *rec);
    /* A row (or field of a row) not published. Never NULL. Under reject_file, after a bad
     * row every good row is also reported here ("file rejected ..."), and record is never
     * called for that file. */
    void (*reject)(void *ctx, const lt_map_reject *rej);
    void *ctx;
    bool want_json; /* fill lt_mapped.json (costs a second conversion); else it is NULL */
} lt_mapping_sink;

typedef struct lt_mapping_stats {
    size_t rows;      /* rows read (good + bad), including rows the reader rejected */
    size_t records;   /* given to sink->record */
    size_t rejected;  /* rows not given to sink->record (each has >= 1 reject entry) */
    size_t issues;    /* reject entries (a row can have several bad fields) */
    lt_charset charset;
    double charset_score;
} lt_mapping_stats;

/* Read len bytes of data (named file in reports) with m's reader, map every row, and hand
 * records and rejects to sink under m's policy. agency_id (the publishing agency, part of
 * every message id) is borrowed. LT_OK when the whole file went through (rejects are
 * reported, not returned); LT_EVALIDATE when the policy is reject_file and the file was
 * rejected; the reader's file-level errors (LT_EENCODING, LT_EFORMAT ...; also reported to
 * sink->reject); LT_ECLOSED when sink->record asked to stop; LT_ENOMEM. stats may be NULL. */
lt_err lt_mapping_run(const lt_mapping *m, const char *agency_id, const char *file,
                      const uint8_t *data, size_t len, const lt_mapping_sink *sink,
                      lt_mapping_stats *stats, lt_why *why);

/* lt_mapping_run on the contents of path. LT_EIO when unreadable (also reported). */
lt_err lt_mapping_run_file(const lt_mapping *m, const char *agency_id, const char *path,
                           const lt_mapping_sink *sink, lt_mapping_stats *stats, lt_why *why);

/* The content-derived message id described at the top of this file. */
void lt_mapping_message_id(const char *agency_id, const char *record_type, const char *key,
                           const uint8_t *payload, size_t payload_len,
                           uint8_t out[LT_ENV_MESSAGE_ID_LEN]);

#endif
