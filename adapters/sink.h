/*
 * sink.h - verified envelopes into a database: one table per record type, one row per message
 * id, the whole signed envelope kept beside the record's columns so any row can be verified
 * again later (lt_sink_verify_rows, `lienthong db-verify`).
 *
 * Backends: SQLite ("sqlite:PATH", the embedded default: WAL journal, synchronous=FULL,
 * prepared statements) and PostgreSQL ("postgresql://..." or "postgres://...", any libpq
 * connection URI: parameterized prepared statements). Both see the same tables.
 *
 * Table of a record type: the type's last name component in snake_case
 * ("lienthong.v1.records.BirthRegistration" -> birth_registration, "EDocument" ->
 * e_document). Its columns, in this order:
 *
 *   message_id     SQLite TEXT (32 lower-case hex digits) / PG uuid      PRIMARY KEY
 *   source_agency  TEXT      the envelope's source (the agency that signed it)
 *   topic          TEXT
 *   record_type    TEXT      full protobuf name
 *   created_ms     INTEGER / bigint   the envelope's created time, ms since the epoch
 *   queue          TEXT      the queue it was consumed from
 *   broker_seq     INTEGER / bigint   the queue's sequence number
 *   received_ms    INTEGER / bigint   when this sink received it
 *   envelope       BLOB / bytea       the serialized Envelope exactly as delivered (header,
 *                                     payload, signature, batch proof, certificate)
 *   then one column per field of the record's descriptor, named as the field (a field whose
 *   name is one of the nine above is stored as rec_<name>):
 *     int32, sint32, sfixed32, uint32, fixed32, int64, sint64, sfixed64   INTEGER / bigint
 *     uint64, fixed64   TEXT (decimal, SQLite would round larger values) / numeric(20,0)
 *     bool              INTEGER 0/1 / boolean
 *     float, double     REAL / double precision
 *     string            TEXT / text
 *     bytes             BLOB / bytea
 *     enum              TEXT: the value's name ("SEX_FEMALE"; the number if it has no name)
 *     message (singular) and every repeated field: JSON text / jsonb, exactly the proto3 JSON
 *                       mapping of lib/json.h (lowerCamelCase keys, 64-bit integers as strings);
 *                       an unset message is NULL, an empty repeated field is [].
 *   A proto3 scalar holds its value (0, '', ...) since proto3 cannot tell "unset" from
 *   "default"; a proto3 `optional` field that is absent, and an unselected oneof member, are
 *   NULL.
 *   Nested messages are kept as JSON rather than flattened into prefixed columns so that each
 *   column is exactly one field: a field added to a shared message (Address) changes no
 *   table, a field added to a record adds exactly one column, and nothing is lost. Query them
 *   with json_extract(child, '$.fullName') (SQLite) or child->>'fullName' (PostgreSQL).
 *
 * Schema: created when missing (CREATE TABLE IF NOT EXISTS); when the descriptor has a field
 * the table lacks, the column is added (ALTER TABLE ADD COLUMN). Columns are never dropped or
 * retyped (field numbers and types are never reused, records/README.md). Each table is listed
 * in lt_sink_tables(table_name, record_type, created_ms), which db-verify walks.
 *
 * Idempotence: INSERT ... ON CONFLICT (message_id) DO NOTHING - a redelivered message changes
 * nothing, not even received_ms.
 *
 * Current views: a record type with a natural key gets a view <table>_current holding, per key,
 * the row with the latest created_ms (then the greatest message_id), and an index on the key:
 *   population_record (personal_id), enterprise_registration (enterprise_code),
 *   land_parcel (commune_code, map_sheet_number, parcel_number),
 *   birth_registration (registering_agency_code, book_number, registration_number),
 *   dossier_status_event (dossier_code), e_document (document_id), task_assignment (task_id).
 * A view costs nothing at insert time; history stays in the table.
 *
 * Transactions: lt_sink_put runs only between lt_sink_begin and lt_sink_commit/rollback. The
 * caller acknowledges the messages of a batch only after lt_sink_commit returned LT_OK.
 *
 * A bad row or an unavailable database: a row the database itself refuses is the row's
 * fault, reported for that row alone (LT_EDB_REFUSED, with the database's message) while the
 * rest of the batch is written; the caller gives it up (NAK: the broker dead-letters it after
 * max_deliver). The rule is the driver's error class:
 *   the row's (LT_EDB_REFUSED)  SQLite: SQLITE_CONSTRAINT (NOT NULL, UNIQUE, CHECK, FOREIGN
 *                               KEY, a trigger's RAISE(ABORT) or RAISE(FAIL)), SQLITE_MISMATCH,
 *                               SQLITE_TOOBIG; PostgreSQL: SQLSTATE class 22 (data exception:
 *                               a value too long, out of range, not of the column's type)
 *                               and class 23 (integrity constraint violation).
 *   the database's (LT_EDB)     everything else: SQLite BUSY, LOCKED, IOERR, FULL, READONLY,
 *                               CORRUPT, CANTOPEN, NOMEM, a trigger's RAISE(ROLLBACK), schema
 *                               errors; PostgreSQL 08 (connection), 40 (serialization,
 *                               deadlock), 53 (disk, memory), 57 (shutdown), 42 (schema,
 *                               privileges), a lost connection. The caller rolls back and
 *                               retries later: never a reason to give a message up.
 * A constraint checked only at COMMIT (DEFERRABLE INITIALLY DEFERRED) fails the commit as a
 * whole (LT_EDB): declare the sink's constraints immediate.
 *
 * Threads: an lt_sink is one database connection, used by one thread at a time.
 */
#ifndef LT_ADAPTERS_SINK_H
#define LT_ADAPTERS_SINK_H

#include "envelope.h"
#include "err.h"
#include "pki.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define LT_SINK_NAME_MAX 64 /* bytes of a table or column name, NUL included (PG: 63) */

typedef struct lt_sink lt_sink;

/* Open the database named by url: "sqlite:PATH" (the file is created if missing; WAL mode,
 * synchronous=FULL, busy timeout 10 s) or "postgresql://..." / "postgres://..." (libpq).
 * On LT_OK the caller owns *out (lt_sink_close). LT_EINVAL: url of no known scheme;
 * LT_EDB: the database cannot be opened or configured (the driver's message in why);
 * LT_ENOMEM. */
lt_err lt_sink_open(const char *url, lt_sink **out, lt_why *why);

/* Close the connection (rolling back a transaction still open) and free s. Accepts NULL and
 * a pointer to NULL; clears *sp. */
void lt_sink_close(lt_sink **sp);

/* "sqlite" or "postgresql". */
const char *lt_sink_backend(const lt_sink *s);

/* The table name of a record type (see the file comment) into out (LT_SINK_NAME_MAX bytes).
 * LT_EINVAL when full_name's last component is empty, not [A-Za-z0-9_], or too long. */
lt_err lt_sink_table_name(const char *full_name, char out[LT_SINK_NAME_MAX], lt_why *why);

/* The key columns of record type d's current view (NULL-terminated, static), or NULL when the
 * type has no natural key. */
const char *const *lt_sink_natural_key(const ProtobufCMessageDescriptor *d);

/* Start a transaction. LT_EINVAL: one is already open; LT_EDB. */
lt_err lt_sink_begin(lt_sink *s, lt_why *why);

/* Commit the open transaction: on LT_OK every row put since lt_sink_begin is durable.
 * On LT_EDB nothing of it is (it was rolled back). LT_EINVAL: no transaction open. */
lt_err lt_sink_commit(lt_sink *s, lt_why *why);

/* Roll the open transaction back (no-op without one). Tables created or grown inside it are
 * forgotten and checked again at the next put. */
void lt_sink_rollback(lt_sink *s);

/* Where a row came from (borrowed for the call). */
typedef struct lt_sink_meta {
    const char *queue;   /* NULL: "" */
    uint64_t broker_seq; /* must be <= INT64_MAX */
    int64_t received_ms; /* 0: now */
} lt_sink_meta;

/* Store env (decoded from envelope[0..len), its exact serialized bytes; both borrowed) in
 * its record type's table (one statement: lt_sink_put_batch writes many at once), creating
 * or growing the table first. The caller has verified env.
 * *inserted (may be NULL) says whether a row was added (false: that message id was already
 * there; nothing changed).
 * Row errors leave the transaction usable (nothing of the row is in it):
 *   LT_ENOTFOUND    the record type is not in the registry (records.h);
 *   LT_EPROTO       the payload does not unpack as that type, or a string is not UTF-8;
 *   LT_EDB_REFUSED  the database refused the row (see the file comment), its reason in why.
 * LT_EDB: the database failed; the transaction must be rolled back. LT_EINVAL: no transaction
 * open, or a meta value out of range. LT_ENOMEM. */
lt_err lt_sink_put(lt_sink *s, const lt_env *env, const uint8_t *envelope, size_t len,
                   const lt_sink_meta *meta, bool *inserted, lt_why *why);

/* One row of lt_sink_put_batch: what to store (in), and what became of it (out). */
typedef struct lt_sink_item {
    const lt_env *env;       /* in: decoded from envelope[0..len), verified; borrowed */
    const uint8_t *envelope; /* in: its exact serialized bytes; borrowed */
    size_t len;
    lt_sink_meta meta; /* in: queue borrowed */
    lt_err err;        /* out: LT_OK, or this row's error (lt_sink_put's row errors,
                        * LT_EDB_REFUSED included, or LT_EINVAL for a meta value out of
                        * range): nothing stored for it */
    bool inserted;     /* out, when err is LT_OK: a row was added (false: that message id
                        * was already there, or earlier in this batch; nothing changed) */
    lt_why why;        /* out: the reason of err */
} lt_sink_item;

/* Store every item as lt_sink_put would, in order, in the open transaction, with as few
 * server round trips as the backend allows (PostgreSQL: a few multi-row INSERTs for the
 * whole batch, instead of one statement per row). Row errors are reported in their item
 * only; the other items are still stored. Most are found before the database is touched;
 * when the database refuses a row, the batch is rolled back to a savepoint taken before its
 * rows and written again one row at a time (each in a savepoint of its own: slower, only
 * then), so that exactly the refused rows get LT_EDB_REFUSED and the database's reason.
 * Returns LT_OK when every item without a row error was written (items[i].inserted says
 * which were new). LT_EDB: the database failed, the transaction must be rolled back (the
 * items' inserted flags mean nothing then). LT_EINVAL: no transaction open. LT_ENOMEM.
 * n may be 0. */
lt_err lt_sink_put_batch(lt_sink *s, lt_sink_item *items, size_t n, lt_why *why);

/* Make sure the table of record type d exists with every column of d (inside a transaction
 * the caller opened, or in one of its own when none is open). LT_EINVAL: d is not usable as a
 * table (name); LT_EDB. */
lt_err lt_sink_ensure_table(lt_sink *s, const ProtobufCMessageDescriptor *d, lt_why *why);

/* Rows of table (all tables listed in lt_sink_tables when NULL). LT_ENOTFOUND: no such
 * table; LT_EDB. */
lt_err lt_sink_count(lt_sink *s, const char *table, uint64_t *out, lt_why *why);

/* One row that failed lt_sink_verify_rows. Borrowed for the call. */
typedef struct lt_sink_bad_row {
    const char *table;
    const char *message_id; /* as stored (hex, or PG's uuid text) */
    lt_err code;            /* the verify code, LT_EPROTO, or LT_EVALIDATE (columns differ) */
    const char *reason;
} lt_sink_bad_row;

typedef void (*lt_sink_bad_cb)(void *user, const lt_sink_bad_row *bad);

typedef struct lt_sink_verify_stats {
    uint64_t tables, rows, ok, bad;
} lt_sink_verify_stats;

/* Verify every stored row of every table listed in lt_sink_tables, in message-id order,
 * one page of rows at a time:
 *   - the stored envelope decodes and lt_env_verify_received passes against trust with
 *     now_ms = the row's received_ms (the revocation list is the one in force now);
 *   - message_id, source_agency, topic, record_type and created_ms equal the envelope's, the
 *     record type is the table's;
 *   - every record column equals the value the signed payload gives it (the names of the
 *     columns that differ are in the reason).
 * cb (may be NULL) is called for each row that fails; *stats (may be NULL) counts. Returns
 * LT_OK when the walk completed (whether or not rows failed); LT_EDB; LT_ENOMEM. */
lt_err lt_sink_verify_rows(lt_sink *s, lt_trust *trust, lt_sink_bad_cb cb, void *user,
                           lt_sink_verify_stats *stats, lt_why *why);

#endif
