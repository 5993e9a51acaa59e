/*
 * sink_int.h - what sink.c (tables, columns, values, verification) shares with its two
 * backends (sink_sqlite.c, sink_pg.c). A backend knows SQL execution and binding only; every
 * statement text is built in sink.c with PostgreSQL's $1..$n placeholders (the SQLite
 * backend turns them into ?1..?n).
 */
#ifndef LT_ADAPTERS_SINK_INT_H
#define LT_ADAPTERS_SINK_INT_H

#include "sink.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The logical type of a column or a bound value. */
enum sink_kind {
    SK_ID,   /* message id: 32 hex digits (text); SQLite TEXT, PG uuid */
    SK_INT,  /* int64 */
    SK_U64,  /* decimal text; SQLite TEXT, PG numeric(20,0) */
    SK_REAL, /* double */
    SK_BOOL, /* i = 0 or 1 */
    SK_TEXT, /* UTF-8 text */
    SK_BLOB, /* bytes */
    SK_JSON, /* JSON text; SQLite TEXT, PG jsonb */
};

/* One bound value. Text kinds (SK_ID, SK_U64, SK_TEXT, SK_JSON) point at NUL-terminated text
 * (len is its strlen); SK_BLOB at len bytes (p may be NULL when len is 0). Borrowed. */
typedef struct sink_val {
    enum sink_kind kind;
    bool null;
    int64_t i;
    double d;
    const void *p;
    size_t len;
} sink_val;

/* One result cell (text form, or bytes for a blob/bytea column). Borrowed for the callback. */
typedef struct sink_cell {
    bool null;
    const char *p; /* NUL-terminated for text cells */
    size_t len;
} sink_cell;

/* Called once per result row; a non-LT_OK return stops the statement and is returned. */
typedef lt_err (*sink_row_cb)(void *user, size_t ncols, const sink_cell *cells, lt_why *why);

/* One statement execution of a run_many: stmt with vals[0..n); *changes as in run. */
typedef struct sink_call {
    void *stmt;
    const sink_val *vals;
    size_t n;
    uint64_t changes; /* out */
} sink_call;

typedef struct sink_ops {
    const char *name;
    /* SQL type of a column kind. */
    const char *(*type_of)(enum sink_kind k);
    /* Run SQL without parameters or results (DDL, BEGIN, COMMIT). LT_EDB. */
    lt_err (*exec)(lt_sink *s, const char *sql, lt_why *why);
    /* Prepare sql with nparams $-parameters; *stmt is the backend's handle. LT_EDB. */
    lt_err (*prepare)(lt_sink *s, const char *sql, size_t nparams, void **stmt, lt_why *why);
    /* Free a prepared statement; accepts NULL. */
    void (*finalize)(lt_sink *s, void *stmt);
    /* Run stmt with vals[0..n): each result row to cb (may be NULL); *changes (may be NULL)
     * gets the rows an INSERT/UPDATE changed. LT_EDB_REFUSED: the database refused what the
     * statement carries (SQLite: SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG with the
     * transaction still open; PostgreSQL: SQLSTATE class 22 or 23); the statement had no
     * effect, but on PostgreSQL the transaction is aborted (up to the last savepoint).
     * LT_EDB: any other failure of the database; or what cb returned. */
    lt_err (*run)(lt_sink *s, void *stmt, const sink_val *vals, size_t n, sink_row_cb cb,
                  void *user, uint64_t *changes, lt_why *why);
    /* Run calls[0..ncalls) in order, as run would each (the result rows of all of them to
     * cb, which may be NULL), sending as many together as the backend can (PostgreSQL:
     * pipeline mode, one round trip for many statements). The first failure is returned
     * (LT_EDB_REFUSED as in run);
     * calls after it may have run or not (the transaction must be rolled back). */
    lt_err (*run_many)(lt_sink *s, sink_call *calls, size_t ncalls, sink_row_cb cb, void *user,
                       lt_why *why);
    /* Commit; LT_EDB when the database did not commit (then nothing was). */
    lt_err (*commit)(lt_sink *s, lt_why *why);
    /* Close the connection and free the backend's part (not s itself). */
    void (*close)(lt_sink *s);
} sink_ops;

/* A column of a table: the nine envelope columns, then one per field. */
typedef struct sink_col {
    char name[LT_SINK_NAME_MAX];
    char json_name[LT_SINK_NAME_MAX]; /* lowerCamelCase key in the record's JSON */
    enum sink_kind kind;
    const ProtobufCFieldDescriptor *field; /* NULL for the envelope columns */
    bool present;                          /* the database table has it (verify) */
} sink_col;

/* Indexes of the envelope columns. */
enum {
    SC_MESSAGE_ID,
    SC_SOURCE,
    SC_TOPIC,
    SC_RECORD_TYPE,
    SC_CREATED,
    SC_QUEUE,
    SC_SEQ,
    SC_RECEIVED,
    SC_ENVELOPE,
    SC_NMETA,
};

#define SINK_MULTI_SIZES 4

typedef struct sink_table {
    const ProtobufCMessageDescriptor *desc;
    char name[LT_SINK_NAME_MAX];
    size_t ncols;
    sink_col *cols;
    bool ready;  /* exists with every column; insert prepared (lt_sink_put) */
    bool loaded; /* `present` flags read from the database (verify) */
    void *insert_stmt; /* one row; PostgreSQL: RETURNING message_id */
    void *check_stmt;
    /* PostgreSQL: multi-row INSERTs of multi_rows[k] rows each, RETURNING message_id
     * (prepared when first needed; k = 0 is the largest; a 0 size ends the list). */
    void *multi_stmt[SINK_MULTI_SIZES];
    size_t multi_rows[SINK_MULTI_SIZES];
} sink_table;

#define SINK_MAX_TABLES 64

struct lt_sink {
    const sink_ops *ops;
    void *db;     /* sqlite3 * or PGconn * */
    bool pg;
    bool in_txn;
    unsigned stmt_gen; /* PG: names of prepared statements */
    sink_table tables[SINK_MAX_TABLES];
    size_t ntables;
};

/* Backends: open the database of url (after the scheme check in sink.c) into s->db and set
 * s->ops. LT_EDB with the driver's message. */
lt_err lt_sink_sqlite_open(lt_sink *s, const char *path, lt_why *why);
lt_err lt_sink_pg_open(lt_sink *s, const char *conninfo, lt_why *why);

#endif
