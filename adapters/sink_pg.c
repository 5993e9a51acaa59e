/*
 * sink_pg.c - the PostgreSQL backend of the sink (sink_int.h), through libpq: one
 * connection, named prepared statements (PQprepare / PQexecPrepared; run_many sends many
 * executions in pipeline mode and reads their results after one sync), parameters in text
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

/* The libpq parameter arrays of one execution; everything freed by params_fini. */
typedef struct pg_params {
    const char **values;
    int *lengths;
    int *formats;
    char (*num)[40];
} pg_params;

static void params_fini(pg_params *pp)
{
    free(pp->values), free(pp->lengths), free(pp->formats), free(pp->num);
    memset(pp, 0, sizeof *pp);
}

static lt_err params_of(const sink_val *vals, size_t n, pg_params *pp, lt_why *why)
{
    pp->values = calloc(n + 1, sizeof *pp->values);
    pp->lengths = calloc(n + 1, sizeof *pp->lengths);
    pp->formats = calloc(n + 1, sizeof *pp->formats);
    pp->num = calloc(n + 1, sizeof *pp->num);
    if (pp->values == NULL || pp->lengths == NULL || pp->formats == NULL || pp->num == NULL) {
        params_fini(pp);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const sink_val *v = &vals[i];
        if (v->null)
            continue; /* values[i] NULL = SQL NULL */
        switch (v->kind) {
        case SK_INT:
            snprintf(pp->num[i], sizeof pp->num[i], "%" PRId64, v->i);
            pp->values[i] = pp->num[i];
            break;
        case SK_BOOL: pp->values[i] = v->i ? "t" : "f"; break;
        case SK_REAL:
            if (v->d != v->d)
                pp->values[i] = "NaN";
            else if (isinf(v->d))
                pp->values[i] = v->d > 0 ? "Infinity" : "-Infinity";
            else {
                snprintf(pp->num[i], sizeof pp->num[i], "%.17g", v->d);
                pp->values[i] = pp->num[i];
            }
            break;
        case SK_BLOB:
            pp->values[i] = v->p != NULL ? v->p : "";
            pp->lengths[i] = (int)v->len;
            pp->formats[i] = 1;
            break;
        case SK_ID:
        case SK_U64:
        case SK_TEXT:
        case SK_JSON: pp->values[i] = v->p; break;
        }
    }
    return LT_OK;
}

/* One statement's result: rows to cb, the count to *changes. */
static lt_err result_of(PGresult *r, sink_row_cb cb, void *user, uint64_t *changes, lt_why *why)
{
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
        /* An INSERT ... RETURNING says "INSERT 0 n" too. */
        if (e == LT_OK && changes != NULL)
            *changes = strtoull(PQcmdTuples(r), NULL, 10);
    } else if (st == PGRES_PIPELINE_ABORTED) {
        e = lt_fail(why, LT_EDB, "postgresql: execute: skipped after an earlier failure");
    } else {
        /* SQLSTATE class 22 (data exception: a value the column's type refuses, too long,
         * out of range, not valid text) and 23 (integrity constraint violation: NOT NULL,
         * UNIQUE, CHECK, FOREIGN KEY, EXCLUDE) are the row's fault; every other class
         * (08 connection, 40 rollback, 53 resources, 57 operator, 42 schema...) is the
         * database's (sink_int.h: run). */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool row = state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
        e = pg_fail(why, "execute", PQresultErrorMessage(r));
        if (row)
            e = LT_EDB_REFUSED;
    }
    return e;
}

static lt_err run(lt_sink *s, void *stmt, const sink_val *vals, size_t n, sink_row_cb cb,
                  void *user, uint64_t *changes, lt_why *why)
{
    pg_stmt *ps = stmt;
    if (n != ps->nparams)
        return lt_fail(why, LT_EINVAL, "postgresql: %zu values for %zu parameters", n,
                       ps->nparams);
    pg_params pp;
    lt_err e = params_of(vals, n, &pp, why);
    if (e != LT_OK)
        return e;
    PGresult *r =
        PQexecPrepared(s->db, ps->name, (int)n, pp.values, pp.lengths, pp.formats, 0);
    params_fini(&pp);
    e = result_of(r, cb, user, changes, why);
    PQclear(r);
    return e;
}

/* At most this many bound values are sent before the results of what was sent are read:
 * the results (a few bytes a row) then always fit in the socket buffers, so the server never
 * waits on us while we wait on it (libpq's warning about pipelines in blocking mode). */
#define PIPELINE_WINDOW_PARAMS 32768

/* Read the results of calls[0..n) and the sync that follows them. The first error into
 * e (kept), everything drained. */
static lt_err pipeline_read(lt_sink *s, sink_call *calls, size_t n, sink_row_cb cb, void *user,
                            lt_err e, lt_why *why)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *r = PQgetResult(s->db);
        if (r == NULL) { /* the connection broke */
            if (e == LT_OK)
                e = pg_fail(why, "pipeline", PQerrorMessage(s->db));
            return e;
        }
        lt_why w = {{0}};
        lt_err ce = result_of(r, e == LT_OK ? cb : NULL, user, &calls[i].changes, &w);
        PQclear(r);
        if (ce != LT_OK && e == LT_OK) {
            e = ce;
            if (why != NULL)
                *why = w;
        }
        /* Each query's results end with a NULL. */
        while ((r = PQgetResult(s->db)) != NULL)
            PQclear(r);
    }
    PGresult *r = PQgetResult(s->db);
    if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        if (e == LT_OK)
            e = pg_fail(why, "pipeline", r != NULL ? PQresultErrorMessage(r)
                                                   : PQerrorMessage(s->db));
    }
    PQclear(r);
    return e;
}

static lt_err run_many(lt_sink *s, sink_call *calls, size_t ncalls, sink_row_cb cb, void *user,
                       lt_why *why)
{
    if (ncalls == 1)
        return run(s, calls[0].stmt, calls[0].vals, calls[0].n, cb, user, &calls[0].changes,
                   why);
    for (size_t i = 0; i < ncalls; i++) {
        pg_stmt *ps = calls[i].stmt;
        if (calls[i].n != ps->nparams)
            return lt_fail(why, LT_EINVAL, "postgresql: %zu values for %zu parameters",
                           calls[i].n, ps->nparams);
    }
    if (PQenterPipelineMode(s->db) != 1)
        return pg_fail(why, "pipeline", PQerrorMessage(s->db));
    lt_err e = LT_OK;
    size_t done = 0; /* calls whose results were read */
    while (e == LT_OK && done < ncalls) {
        size_t end = done, params = 0;
        while (end < ncalls && (end == done || params + calls[end].n <= PIPELINE_WINDOW_PARAMS)) {
            pg_stmt *ps = calls[end].stmt;
            pg_params pp;
            e = params_of(calls[end].vals, calls[end].n, &pp, why);
            if (e != LT_OK)
                break;
            int ok = PQsendQueryPrepared(s->db, ps->name, (int)calls[end].n, pp.values,
                                         pp.lengths, pp.formats, 0);
            params_fini(&pp);
            if (ok != 1) {
                e = pg_fail(why, "send", PQerrorMessage(s->db));
                break;
            }
            params += calls[end].n;
            end++;
        }
        /* Whatever was sent is read back, even after a failure to send more. */
        if (PQpipelineSync(s->db) != 1) {
            if (e == LT_OK)
                e = pg_fail(why, "pipeline sync", PQerrorMessage(s->db));
            break; /* the connection is unusable; the caller reconnects */
        }
        e = pipeline_read(s, calls + done, end - done, cb, user, e, why);
        done = end;
    }
    if (PQexitPipelineMode(s->db) != 1 && e == LT_OK)
        e = pg_fail(why, "pipeline", PQerrorMessage(s->db));
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
    .run_many = run_many,
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
