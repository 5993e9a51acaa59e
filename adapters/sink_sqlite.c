/*
 * sink_sqlite.c - the SQLite backend of the sink (sink_int.h): one sqlite3 connection in WAL
 * mode with synchronous=FULL, because the sink acknowledges messages to the broker right
 * after COMMIT returns: with synchronous=NORMAL a power cut could lose a committed (hence
 * acknowledged, hence deleted from the broker) batch. Transactions are BEGIN IMMEDIATE so a
 * second writer waits (busy timeout) at BEGIN instead of failing at its first write.
 */
#include "sink_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static lt_err db_fail(lt_sink *s, lt_why *why, const char *what)
{
    return lt_fail(why, LT_EDB, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
}

/* A statement failed with rc: LT_EDB_REFUSED when SQLite refused what the row carries
 * (sink_int.h: run) - a constraint (NOT NULL, UNIQUE, CHECK, FOREIGN KEY, a trigger's
 * RAISE), a datatype mismatch, a value over SQLITE_MAX_LENGTH - and the transaction is still
 * open (RAISE(ROLLBACK) ends it: then nothing can be isolated). Everything else (BUSY,
 * LOCKED, IOERR, FULL, READONLY, CORRUPT, NOMEM, schema errors) is the database's: LT_EDB. */
static lt_err stmt_fail(lt_sink *s, int rc, lt_why *why, const char *what)
{
    int primary = rc & 0xff;
    bool row = primary == SQLITE_CONSTRAINT || primary == SQLITE_MISMATCH ||
               primary == SQLITE_TOOBIG;
    lt_err e = db_fail(s, why, what);
    return row && !sqlite3_get_autocommit(s->db) ? LT_EDB_REFUSED : e;
}

static const char *type_of(enum sink_kind k)
{
    switch (k) {
    case SK_INT:
    case SK_BOOL: return "INTEGER";
    case SK_REAL: return "REAL";
    case SK_BLOB: return "BLOB";
    case SK_ID:
    case SK_U64:
    case SK_TEXT:
    case SK_JSON: return "TEXT";
    }
    return "TEXT";
}

static lt_err exec(lt_sink *s, const char *sql, lt_why *why)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lt_err e = lt_fail(why, LT_EDB, "sqlite: %s", msg != NULL ? msg : "exec failed");
        sqlite3_free(msg);
        return e;
    }
    return LT_OK;
}

static lt_err prepare(lt_sink *s, const char *sql, size_t nparams, void **stmt, lt_why *why)
{
    /* sink.c writes PostgreSQL's $N; SQLite would take "$N" for a *named* parameter and number
     * it by first appearance, so it becomes ?N, which SQLite numbers N. (sink.c never puts a
     * '$' in a literal.) */
    char *q = strdup(sql);
    if (q == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (char *p = q; *p != '\0'; p++)
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '9')
            p[0] = '?';
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, q, -1, &st, NULL);
    free(q);
    if (rc != SQLITE_OK)
        return db_fail(s, why, "prepare");
    if ((size_t)sqlite3_bind_parameter_count(st) != nparams) {
        sqlite3_finalize(st);
        return lt_fail(why, LT_EDB, "sqlite: statement has %d parameters, %zu expected",
                       sqlite3_bind_parameter_count(st), nparams);
    }
    *stmt = st;
    return LT_OK;
}

static void finalize(lt_sink *s, void *stmt)
{
    (void)s;
    sqlite3_finalize(stmt);
}

static int bind(sqlite3_stmt *st, int i, const sink_val *v)
{
    if (v->null)
        return sqlite3_bind_null(st, i);
    switch (v->kind) {
    case SK_INT:
    case SK_BOOL: return sqlite3_bind_int64(st, i, v->i);
    case SK_REAL: return sqlite3_bind_double(st, i, v->d);
    case SK_BLOB:
        /* A NULL pointer would bind SQL NULL: an empty bytes field is an empty blob. */
        return sqlite3_bind_blob64(st, i, v->p != NULL ? v->p : "", v->len, SQLITE_STATIC);
    case SK_ID:
    case SK_U64:
    case SK_TEXT:
    case SK_JSON: return sqlite3_bind_text64(st, i, v->p, v->len, SQLITE_STATIC, SQLITE_UTF8);
    }
    return SQLITE_MISUSE;
}

static lt_err run(lt_sink *s, void *stmt, const sink_val *vals, size_t n, sink_row_cb cb,
                  void *user, uint64_t *changes, lt_why *why)
{
    sqlite3_stmt *st = stmt;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; i < n; i++) {
        int rc = bind(st, (int)i + 1, &vals[i]);
        if (rc != SQLITE_OK) {
            lt_err e = stmt_fail(s, rc, why, "bind");
            sqlite3_reset(st);
            return e;
        }
    }
    lt_err e = LT_OK;
    sink_cell *cells = NULL;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            e = stmt_fail(s, rc, why, "step");
            break;
        }
        if (cb == NULL)
            continue;
        int nc = sqlite3_column_count(st);
        if (cells == NULL && (cells = calloc((size_t)nc + 1, sizeof *cells)) == NULL) {
            e = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        for (int c = 0; c < nc; c++) {
            int t = sqlite3_column_type(st, c);
            cells[c].null = t == SQLITE_NULL;
            if (t == SQLITE_BLOB) {
                cells[c].p = sqlite3_column_blob(st, c);
            } else {
                cells[c].p = (const char *)sqlite3_column_text(st, c);
                if (cells[c].p == NULL)
                    cells[c].p = "";
            }
            cells[c].len = (size_t)sqlite3_column_bytes(st, c);
        }
        e = cb(user, (size_t)nc, cells, why);
        if (e != LT_OK)
            break;
    }
    free(cells);
    if (e == LT_OK && changes != NULL)
        *changes = (uint64_t)sqlite3_changes64(s->db);
    sqlite3_reset(st);
    return e;
}

/* In-process: nothing to gain by sending statements together. */
static lt_err run_many(lt_sink *s, sink_call *calls, size_t ncalls, sink_row_cb cb, void *user,
                       lt_why *why)
{
    for (size_t i = 0; i < ncalls; i++) {
        lt_err e = run(s, calls[i].stmt, calls[i].vals, calls[i].n, cb, user, &calls[i].changes,
                       why);
        if (e != LT_OK)
            return e;
    }
    return LT_OK;
}

static lt_err commit(lt_sink *s, lt_why *why)
{
    lt_err e = exec(s, "COMMIT", why);
    if (e != LT_OK && !sqlite3_get_autocommit(s->db))
        exec(s, "ROLLBACK", NULL);
    return e;
}

static void close_db(lt_sink *s)
{
    sqlite3_close_v2(s->db);
    s->db = NULL;
}

static const sink_ops sqlite_ops = {
    .name = "sqlite",
    .type_of = type_of,
    .exec = exec,
    .prepare = prepare,
    .finalize = finalize,
    .run = run,
    .run_many = run_many,
    .commit = commit,
    .close = close_db,
};

lt_err lt_sink_sqlite_open(lt_sink *s, const char *path, lt_why *why)
{
    sqlite3 *db = NULL;
    if (path[0] == '\0')
        return lt_fail(why, LT_EINVAL, "sqlite: empty path (sqlite:PATH)");
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        lt_err e = lt_fail(why, LT_EDB, "sqlite: open %s: %s", path,
                           db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return e;
    }
    s->db = db;
    s->ops = &sqlite_ops;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_extended_result_codes(db, 1);
    lt_err e = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", why);
    if (e != LT_OK) {
        close_db(s);
        return e;
    }
    return LT_OK;
}
