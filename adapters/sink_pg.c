/*
 * sink_pg.c - the PostgreSQL backend of the sink (sink_int.h), through libpq: one
 * connection, named prepared statements (PQprepare / PQexecPrepared), parameters in text
 * form except bytes (binary, so an envelope is never escaped), parameter types inferred by
 * the server from the columns they are compared with or inserted into. Results are text;
 * bytea cells are unescaped before they reach the caller.
 *
 * NOTICEs ("relation already exists, skipping") are not printed: client_min_messages is
 * warning and the notice processor discards.
 */
#include "sink_int.h"

#include <libpq-fe.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTEA_OID 17

typedef struct pg_stmt {
    char name[32];
    size_t nparams;
} pg_stmt;

/* The driver's message, on one line. */
static lt_err pg_fail(lt_why *why, const char *what, const char *msg)
{
    char buf[LT_WHY_MAX];
    snprintf(buf, sizeof buf, "%s", msg != NULL && msg[0] != '\0' ? msg : "failed");
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = (p[1] == '\0') ? '\0' : ' ';
    return lt_fail(why, LT_EDB, "postgresql: %s: %s", what, buf);
}

static const char *type_of(enum sink_kind k)
{
    switch (k) {
    case SK_ID: return "uuid";
    case SK_INT: return "bigint";
    case SK_U64: return "numeric(20,0)";
    case SK_REAL: return "double precision";
    case SK_BOOL: return "boolean";
    case SK_TEXT: return "text";
    case SK_BLOB: return "bytea";
    case SK_JSON: return "jsonb";
    }
    return "text";
}

static lt_err exec(lt_sink *s, const char *sql, lt_why *why)
{
    PGresult *r = PQexec(s->db, sql);
    ExecStatusType st = PQresultStatus(r);
    lt_err e = LT_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        e = pg_fail(why, "exec", PQresultErrorMessage(r));
    PQclear(r);
    return e;
}

static lt_err prepare(lt_sink *s, const char *sql, size_t nparams, void **stmt, lt_why *why)
{
    pg_stmt *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    snprintf(ps->name, sizeof ps->name, "lt_sink_%u", ++s->stmt_gen);
    ps->nparams = nparams;
    PGresult *r = PQprepare(s->db, ps->name, sql, (int)nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        lt_err e = pg_fail(why, "prepare", PQresultErrorMessage(r));
        PQclear(r);
        free(ps);
        return e;
    }
    PQclear(r);
    *stmt = ps;
    return LT_OK;
}

static void finalize(lt_sink *s, void *stmt)
{
    pg_stmt *ps = stmt;
    if (ps == NULL)
        return;
    /* Outside a failed transaction DEALLOCATE works; inside one the statement dies with the
     * session anyway, and a name is never reused (stmt_gen). */
    if (s->db != NULL && PQtransactionStatus(s->db) != PQTRANS_INERROR) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", ps->name);
        PQclear(PQexec(s->db, sql));
    }
    free(ps);
}

static lt_err run(lt_sink *s, void *stmt, const sink_val *vals, size_t n, sink_row_cb cb,
                  void *user, uint64_t *changes, lt_why *why)
{
    pg_stmt *ps = stmt;
    if (n != ps->nparams)
        return lt_fail(why, LT_EINVAL, "postgresql: %zu values for %zu parameters", n,
                       ps->nparams);
    const char **values = calloc(n + 1, sizeof *values);
    int *lengths = calloc(n + 1, sizeof *lengths);
    int *formats = calloc(n + 1, sizeof *formats);
    char (*num)[40] = calloc(n + 1, sizeof *num);
    if (values == NULL || lengths == NULL || formats == NULL || num == NULL) {
        free(values), free(lengths), free(formats), free(num);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const sink_val *v = &vals[i];
        if (v->null)
            continue; /* values[i] NULL = SQL NULL */
        switch (v->kind) {
        case SK_INT:
            snprintf(num[i], sizeof num[i], "%" PRId64, v->i);
            values[i] = num[i];
            break;
        case SK_BOOL: values[i] = v->i ? "t" : "f"; break;
        case SK_REAL:
            if (v->d != v->d)
                values[i] = "NaN";
            else if (isinf(v->d))
                values[i] = v->d > 0 ? "Infinity" : "-Infinity";
            else {
                snprintf(num[i], sizeof num[i], "%.17g", v->d);
                values[i] = num[i];
            }
            break;
        case SK_BLOB:
            values[i] = v->p != NULL ? v->p : "";
            lengths[i] = (int)v->len;
            formats[i] = 1;
            break;
        case SK_ID:
        case SK_U64:
        case SK_TEXT:
        case SK_JSON: values[i] = v->p; break;
        }
    }
    PGresult *r = PQexecPrepared(s->db, ps->name, (int)n, values, lengths, formats, 0);
    free(values), free(lengths), free(formats), free(num);
    lt_err e = LT_OK;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK) {
        if (changes != NULL)
            *changes = strtoull(PQcmdTuples(r), NULL, 10);
    } else if (st == PGRES_TUPLES_OK) {
        int nr = PQntuples(r), nc = PQnfields(r);
        sink_cell *cells = calloc((size_t)nc + 1, sizeof *cells);
        if (cells == NULL)
            e = lt_fail(why, LT_ENOMEM, "out of memory");
        for (int row = 0; e == LT_OK && cb != NULL && row < nr; row++) {
            unsigned char *unesc[64] = {0};
            for (int c = 0; c < nc; c++) {
                cells[c].null = PQgetisnull(r, row, c);
                cells[c].p = PQgetvalue(r, row, c);
                cells[c].len = (size_t)PQgetlength(r, row, c);
                if (!cells[c].null && PQftype(r, c) == BYTEA_OID && c < 64) {
                    size_t ulen = 0;
                    unesc[c] = PQunescapeBytea((const unsigned char *)cells[c].p, &ulen);
                    if (unesc[c] == NULL) {
                        e = lt_fail(why, LT_ENOMEM, "out of memory");
                        break;
                    }
                    cells[c].p = (const char *)unesc[c];
                    cells[c].len = ulen;
                }
            }
            if (e == LT_OK)
                e = cb(user, (size_t)nc, cells, why);
            for (int c = 0; c < nc && c < 64; c++)
                if (unesc[c] != NULL)
                    PQfreemem(unesc[c]);
        }
        free(cells);
        if (e == LT_OK && changes != NULL)
            *changes = 0;
    } else {
        e = pg_fail(why, "execute", PQresultErrorMessage(r));
    }
    PQclear(r);
    return e;
}

static lt_err commit(lt_sink *s, lt_why *why)
{
    PGresult *r = PQexec(s->db, "COMMIT");
    lt_err e = LT_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        e = pg_fail(why, "commit", PQresultErrorMessage(r));
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) /* a failed transaction "commits" as ROLLBACK */
        e = lt_fail(why, LT_EDB, "postgresql: commit: the transaction was rolled back");
    PQclear(r);
    if (e != LT_OK && PQtransactionStatus(s->db) != PQTRANS_IDLE)
        PQclear(PQexec(s->db, "ROLLBACK"));
    return e;
}

static void close_db(lt_sink *s)
{
    PQfinish(s->db);
    s->db = NULL;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static const sink_ops pg_ops = {
    .name = "postgresql",
    .type_of = type_of,
    .exec = exec,
    .prepare = prepare,
    .finalize = finalize,
    .run = run,
    .commit = commit,
    .close = close_db,
};

lt_err lt_sink_pg_open(lt_sink *s, const char *conninfo, lt_why *why)
{
    PGconn *c = PQconnectdb(conninfo);
    if (c == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        lt_err e = pg_fail(why, "connect", PQerrorMessage(c));
        PQfinish(c);
        return e;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    s->db = c;
    s->ops = &pg_ops;
    s->pg = true;
    lt_err e = exec(s, "SET client_min_messages TO warning; SET client_encoding TO 'UTF8'", why);
    if (e != LT_OK) {
        close_db(s);
        return e;
    }
    return LT_OK;
}
