/*
 * sink.c - tables from descriptors, rows from verified envelopes, and the re-verification of
 * stored rows (sink.h). The SQL is built here, once per table and connection, with $1..$n
 * placeholders; sink_sqlite.c and sink_pg.c only prepare, bind and run it (sink_int.h).
 *
 * Invariant: lt_sink_put does everything that can fail because of the row itself (record
 * type, unpacking, UTF-8) before it touches the database, so a bad row never spoils the
 * transaction of a batch (PostgreSQL aborts a whole transaction on any failed statement).
 * What only the database can refuse (its constraints, its column types) is written inside a
 * savepoint: a refusal rolls the batch back to it and the rows are written again one by one,
 * each in a savepoint of its own, so only the refused rows are left out.
 */
#include "sink_int.h"

#include "json.h"
#include "records.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* A growing SQL string.                                                                      */

typedef struct sb {
    char *p;
    size_t len, cap;
    bool oom;
} sb;

__attribute__((format(printf, 2, 3))) static void sb_add(sb *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? b->cap - b->len : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void sb_fini(sb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------------- */
/* Names.                                                                                     */

static const char *const META_NAMES[SC_NMETA] = {
    "message_id", "source_agency", "topic",       "record_type", "created_ms",
    "queue",      "broker_seq",    "received_ms", "envelope",
};
static const enum sink_kind META_KINDS[SC_NMETA] = {
    SK_ID, SK_TEXT, SK_TEXT, SK_TEXT, SK_INT, SK_TEXT, SK_INT, SK_INT, SK_BLOB,
};

static bool is_ident(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

lt_err lt_sink_table_name(const char *full_name, char out[LT_SINK_NAME_MAX], lt_why *why)
{
    if (full_name == NULL)
        return lt_fail(why, LT_EINVAL, "no record type");
    const char *dot = strrchr(full_name, '.');
    const char *n = dot != NULL ? dot + 1 : full_name;
    if (!is_ident(n))
        return lt_fail(why, LT_EINVAL, "record type '%s' does not end in a name", full_name);
    char buf[LT_SINK_NAME_MAX];
    size_t j = 0;
    for (size_t i = 0; n[i] != '\0'; i++) {
        char c = n[i];
        /* A word starts at an upper-case letter after a lower-case letter or digit
         * ("BirthRegistration"), or at the last capital of an acronym ("EDocument"). */
        bool boundary = i > 0 && is_upper(c) &&
                        (is_lower_or_digit(n[i - 1]) ||
                         (is_upper(n[i - 1]) && n[i + 1] != '\0' && !is_upper(n[i + 1]) &&
                          n[i + 1] != '_'));
        if (boundary && j + 1 < sizeof buf)
            buf[j++] = '_';
        if (j + 1 >= sizeof buf)
            return lt_fail(why, LT_EINVAL, "record type '%s': table name too long", full_name);
        buf[j++] = is_upper(c) ? (char)(c - 'A' + 'a') : c;
    }
    buf[j] = '\0';
    memcpy(out, buf, j + 1);
    return LT_OK;
}

/* protoc's ToJsonName, as lib/json.c writes the keys. */
static void json_key(const char *name, char *buf, size_t n)
{
    size_t j = 0;
    bool up = false;
    for (const char *p = name; *p != '\0' && j + 1 < n; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        buf[j++] = (up && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
        up = false;
    }
    buf[j] = '\0';
}

/* Natural keys of the record types that have one (sink.h: current views). */
static const struct {
    const char *type;
    const char *const keys[4];
} NATURAL_KEYS[] = {
    {"lienthong.v1.records.PopulationRecord", {"personal_id", NULL}},
    {"lienthong.v1.records.EnterpriseRegistration", {"enterprise_code", NULL}},
    {"lienthong.v1.records.LandParcel", {"commune_code", "map_sheet_number", "parcel_number", NULL}},
    {"lienthong.v1.records.BirthRegistration",
     {"registering_agency_code", "book_number", "registration_number", NULL}},
    {"lienthong.v1.records.DossierStatusEvent", {"dossier_code", NULL}},
    {"lienthong.v1.records.EDocument", {"document_id", NULL}},
    {"lienthong.v1.records.TaskAssignment", {"task_id", NULL}},
};

const char *const *lt_sink_natural_key(const ProtobufCMessageDescriptor *d)
{
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof NATURAL_KEYS / sizeof NATURAL_KEYS[0]; i++)
        if (strcmp(NATURAL_KEYS[i].type, d->name) == 0)
            return NATURAL_KEYS[i].keys;
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Open, close, transactions.                                                                 */

static lt_err query(lt_sink *s, const char *sql, const sink_val *vals, size_t n, sink_row_cb cb,
                    void *user, uint64_t *changes, lt_why *why)
{
    void *st = NULL;
    lt_err e = s->ops->prepare(s, sql, n, &st, why);
    if (e != LT_OK)
        return e;
    e = s->ops->run(s, st, vals, n, cb, user, changes, why);
    s->ops->finalize(s, st);
    return e;
}

static sink_val text_val(const char *t)
{
    return (sink_val){.kind = SK_TEXT, .p = t, .len = strlen(t)};
}

static sink_val int_val(int64_t i)
{
    return (sink_val){.kind = SK_INT, .i = i};
}

lt_err lt_sink_open(const char *url, lt_sink **out, lt_why *why)
{
    if (url == NULL)
        return lt_fail(why, LT_EINVAL, "no database URL");
    lt_sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e;
    if (strncmp(url, "sqlite:", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "//", 2) == 0) /* sqlite:///abs/path */
            path += 2;
        e = lt_sink_sqlite_open(s, path, why);
    } else if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        e = lt_sink_pg_open(s, url, why);
    } else {
        e = lt_fail(why, LT_EINVAL,
                    "database '%s': expected sqlite:PATH or postgresql://...", url);
    }
    if (e == LT_OK) {
        sb b = {0};
        sb_add(&b,
               "CREATE TABLE IF NOT EXISTS lt_sink_tables (table_name %s PRIMARY KEY, "
               "record_type %s NOT NULL, created_ms %s NOT NULL)",
               s->ops->type_of(SK_TEXT), s->ops->type_of(SK_TEXT), s->ops->type_of(SK_INT));
        e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory") : s->ops->exec(s, b.p, why);
        sb_fini(&b);
        if (e != LT_OK)
            s->ops->close(s);
    }
    if (e != LT_OK) {
        free(s);
        return e;
    }
    *out = s;
    return LT_OK;
}

const char *lt_sink_backend(const lt_sink *s)
{
    return s->ops->name;
}

static void table_unprepare(lt_sink *s, sink_table *t)
{
    s->ops->finalize(s, t->insert_stmt);
    s->ops->finalize(s, t->check_stmt);
    t->insert_stmt = t->check_stmt = NULL;
    for (size_t k = 0; k < SINK_MULTI_SIZES; k++) {
        s->ops->finalize(s, t->multi_stmt[k]);
        t->multi_stmt[k] = NULL;
    }
    t->ready = t->loaded = false;
}

/* After a rollback nothing the transaction created can be assumed. */
static void forget_schema(lt_sink *s)
{
    for (size_t i = 0; i < s->ntables; i++)
        table_unprepare(s, &s->tables[i]);
}

void lt_sink_close(lt_sink **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    lt_sink *s = *sp;
    if (s->in_txn)
        lt_sink_rollback(s);
    for (size_t i = 0; i < s->ntables; i++) {
        table_unprepare(s, &s->tables[i]);
        free(s->tables[i].cols);
    }
    s->ops->close(s);
    free(s);
    *sp = NULL;
}

lt_err lt_sink_begin(lt_sink *s, lt_why *why)
{
    if (s->in_txn)
        return lt_fail(why, LT_EINVAL, "a transaction is already open");
    lt_err e = s->ops->exec(s, s->pg ? "BEGIN" : "BEGIN IMMEDIATE", why);
    if (e == LT_OK)
        s->in_txn = true;
    return e;
}

lt_err lt_sink_commit(lt_sink *s, lt_why *why)
{
    if (!s->in_txn)
        return lt_fail(why, LT_EINVAL, "no transaction open");
    lt_err e = s->ops->commit(s, why);
    s->in_txn = false;
    if (e != LT_OK)
        forget_schema(s);
    return e;
}

void lt_sink_rollback(lt_sink *s)
{
    if (s == NULL || !s->in_txn)
        return;
    s->ops->exec(s, "ROLLBACK", NULL);
    s->in_txn = false;
    forget_schema(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Tables.                                                                                    */

static enum sink_kind field_kind(const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return SK_JSON;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return SK_INT;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return SK_U64;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: return SK_REAL;
    case PROTOBUF_C_TYPE_BOOL: return SK_BOOL;
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_STRING: return SK_TEXT;
    case PROTOBUF_C_TYPE_BYTES: return SK_BLOB;
    case PROTOBUF_C_TYPE_MESSAGE: return SK_JSON;
    }
    return SK_TEXT;
}

/* The in-memory description of d's table (no database access). */
static lt_err table_get(lt_sink *s, const ProtobufCMessageDescriptor *d, sink_table **out,
                        lt_why *why)
{
    for (size_t i = 0; i < s->ntables; i++)
        if (s->tables[i].desc == d) {
            *out = &s->tables[i];
            return LT_OK;
        }
    if (s->ntables == SINK_MAX_TABLES)
        return lt_fail(why, LT_EINVAL, "more than %d record types", SINK_MAX_TABLES);
    sink_table t = {.desc = d};
    lt_err e = lt_sink_table_name(d->name, t.name, why);
    if (e != LT_OK)
        return e;
    t.ncols = SC_NMETA + d->n_fields;
    t.cols = calloc(t.ncols, sizeof *t.cols);
    if (t.cols == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < SC_NMETA; i++) {
        snprintf(t.cols[i].name, sizeof t.cols[i].name, "%s", META_NAMES[i]);
        t.cols[i].kind = META_KINDS[i];
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        sink_col *c = &t.cols[SC_NMETA + i];
        bool clash = false;
        for (size_t k = 0; k < SC_NMETA; k++)
            clash = clash || strcmp(f->name, META_NAMES[k]) == 0;
        int n = snprintf(c->name, sizeof c->name, "%s%s", clash ? "rec_" : "", f->name);
        if (!is_ident(f->name) || n < 0 || (size_t)n >= sizeof c->name) {
            free(t.cols);
            return lt_fail(why, LT_EINVAL, "%s.%s: not usable as a column name", d->name,
                           f->name);
        }
        json_key(f->name, c->json_name, sizeof c->json_name);
        c->kind = field_kind(f);
        c->field = f;
    }
    s->tables[s->ntables] = t;
    *out = &s->tables[s->ntables++];
    return LT_OK;
}

static lt_err mark_present(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    (void)why;
    sink_table *t = user;
    if (ncols < 1 || cells[0].null)
        return LT_OK;
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, cells[0].p) == 0)
            t->cols[i].present = true;
    return LT_OK;
}

/* Which of t's columns the database table has. */
static lt_err load_columns(lt_sink *s, sink_table *t, lt_why *why)
{
    for (size_t i = 0; i < t->ncols; i++)
        t->cols[i].present = false;
    sink_val v = text_val(t->name);
    lt_err e = query(s,
                     s->pg ? "SELECT column_name::text FROM information_schema.columns "
                             "WHERE table_schema = current_schema() AND table_name = $1"
                           : "SELECT name FROM pragma_table_info($1)",
                     &v, 1, mark_present, t, NULL, why);
    if (e == LT_OK)
        t->loaded = true;
    return e;
}

static void column_ddl(lt_sink *s, const sink_col *c, sb *b)
{
    sb_add(b, "\"%s\" %s", c->name, s->ops->type_of(c->kind));
}

/* The current view and its index, for a type with a natural key. */
static lt_err current_view(lt_sink *s, sink_table *t, lt_why *why)
{
    const char *const *keys = lt_sink_natural_key(t->desc);
    if (keys == NULL)
        return LT_OK;
    for (size_t k = 0; keys[k] != NULL; k++)
        if (protobuf_c_message_descriptor_get_field_by_name(t->desc, keys[k]) == NULL)
            return LT_OK; /* descriptor without its key field: no view */
    sb b = {0};
    sb_add(&b, "CREATE INDEX IF NOT EXISTS \"%s_current_key\" ON \"%s\" (", t->name, t->name);
    for (size_t k = 0; keys[k] != NULL; k++)
        sb_add(&b, "\"%s\", ", keys[k]);
    sb_add(&b, "created_ms)");
    lt_err e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory") : s->ops->exec(s, b.p, why);
    sb_fini(&b);
    if (e != LT_OK)
        return e;
    if (s->pg) {
        /* PostgreSQL expands * when the view is made: remade whenever this connection
         * first ensures the table (after it may have grown). */
        sb_add(&b, "CREATE OR REPLACE VIEW \"%s_current\" AS SELECT DISTINCT ON (", t->name);
        for (size_t k = 0; keys[k] != NULL; k++)
            sb_add(&b, "%s\"%s\"", k ? ", " : "", keys[k]);
        sb_add(&b, ") * FROM \"%s\" ORDER BY ", t->name);
        for (size_t k = 0; keys[k] != NULL; k++)
            sb_add(&b, "\"%s\", ", keys[k]);
        sb_add(&b, "created_ms DESC, message_id DESC");
    } else {
        /* SQLite re-reads the view's text with the schema: * follows the table. */
        sb_add(&b,
               "CREATE VIEW IF NOT EXISTS \"%s_current\" AS SELECT * FROM \"%s\" AS a "
               "WHERE NOT EXISTS (SELECT 1 FROM \"%s\" AS b WHERE ",
               t->name, t->name, t->name);
        for (size_t k = 0; keys[k] != NULL; k++)
            sb_add(&b, "b.\"%s\" IS a.\"%s\" AND ", keys[k], keys[k]);
        sb_add(&b, "(b.created_ms > a.created_ms OR "
                   "(b.created_ms = a.created_ms AND b.message_id > a.message_id)))");
    }
    e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory") : s->ops->exec(s, b.p, why);
    sb_fini(&b);
    return e;
}

/* PostgreSQL sends at most 65535 parameters with a statement (the count is 16 bits). */
#define SINK_MAX_PARAMS 65535
/* Rows of the largest multi-row INSERT: a batch of the default size in one statement. */
#define SINK_MULTI_MAX_ROWS 256

/* Prepare the INSERT of nrows rows into t: ON CONFLICT (message_id) DO NOTHING, and on
 * PostgreSQL RETURNING message_id (the ids of the rows that were new). */
static lt_err prepare_insert(lt_sink *s, const sink_table *t, size_t nrows, void **stmt,
                             lt_why *why)
{
    sb b = {0};
    sb_add(&b, "INSERT INTO \"%s\" (", t->name);
    for (size_t i = 0; i < t->ncols; i++)
        sb_add(&b, "%s\"%s\"", i ? ", " : "", t->cols[i].name);
    sb_add(&b, ") VALUES ");
    for (size_t r = 0; r < nrows; r++) {
        sb_add(&b, "%s(", r ? ", " : "");
        for (size_t i = 0; i < t->ncols; i++)
            sb_add(&b, "%s$%zu", i ? ", " : "", r * t->ncols + i + 1);
        sb_add(&b, ")");
    }
    sb_add(&b, " ON CONFLICT (message_id) DO NOTHING%s", s->pg ? " RETURNING message_id" : "");
    lt_err e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory")
                     : s->ops->prepare(s, b.p, nrows * t->ncols, stmt, why);
    sb_fini(&b);
    return e;
}

/* The multi-row sizes of t (largest first, then 64, 16, 4 when smaller; 0 ends the list). */
static void multi_sizes(sink_table *t)
{
    size_t max = SINK_MAX_PARAMS / t->ncols;
    if (max > SINK_MULTI_MAX_ROWS)
        max = SINK_MULTI_MAX_ROWS;
    static const size_t smaller[] = {64, 16, 4};
    size_t k = 0;
    t->multi_rows[k++] = max;
    for (size_t i = 0; i < sizeof smaller / sizeof smaller[0] && k < SINK_MULTI_SIZES; i++)
        if (smaller[i] < max)
            t->multi_rows[k++] = smaller[i];
    while (k < SINK_MULTI_SIZES)
        t->multi_rows[k++] = 0;
}

/* Create or grow t's table and prepare its insert. In a transaction. */
static lt_err table_ensure(lt_sink *s, sink_table *t, lt_why *why)
{
    sb b = {0};
    sb_add(&b, "CREATE TABLE IF NOT EXISTS \"%s\" (", t->name);
    for (size_t i = 0; i < t->ncols; i++) {
        sb_add(&b, i ? ", " : "");
        column_ddl(s, &t->cols[i], &b);
        if (i == SC_MESSAGE_ID)
            sb_add(&b, " PRIMARY KEY");
        else if (i < SC_NMETA)
            sb_add(&b, " NOT NULL");
    }
    sb_add(&b, ")");
    lt_err e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory") : s->ops->exec(s, b.p, why);
    sb_fini(&b);
    if (e == LT_OK)
        e = load_columns(s, t, why);
    for (size_t i = 0; e == LT_OK && i < t->ncols; i++) {
        if (t->cols[i].present)
            continue;
        if (i < SC_NMETA) {
            e = lt_fail(why, LT_EDB, "table %s exists without column %s: not a sink table",
                        t->name, t->cols[i].name);
            break;
        }
        sb_add(&b, "ALTER TABLE \"%s\" ADD COLUMN ", t->name);
        column_ddl(s, &t->cols[i], &b);
        e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory") : s->ops->exec(s, b.p, why);
        sb_fini(&b);
        t->cols[i].present = e == LT_OK;
    }
    if (e == LT_OK) {
        sink_val v[3] = {text_val(t->name), text_val(t->desc->name), int_val(lt_env_now_ms())};
        e = query(s,
                  "INSERT INTO lt_sink_tables (table_name, record_type, created_ms) "
                  "VALUES ($1, $2, $3) ON CONFLICT (table_name) DO NOTHING",
                  v, 3, NULL, NULL, NULL, why);
    }
    if (e == LT_OK)
        e = current_view(s, t, why);
    if (e == LT_OK)
        e = prepare_insert(s, t, 1, &t->insert_stmt, why);
    if (e == LT_OK)
        t->ready = true;
    return e;
}

lt_err lt_sink_ensure_table(lt_sink *s, const ProtobufCMessageDescriptor *d, lt_why *why)
{
    sink_table *t = NULL;
    lt_err e = table_get(s, d, &t, why);
    if (e != LT_OK || t->ready)
        return e;
    bool own = !s->in_txn;
    if (own && (e = lt_sink_begin(s, why)) != LT_OK)
        return e;
    e = table_ensure(s, t, why);
    if (own) {
        if (e == LT_OK)
            e = lt_sink_commit(s, why);
        else
            lt_sink_rollback(s);
    }
    return e;
}

/* ---------------------------------------------------------------------------------------- */
/* Rows.                                                                                      */

/* The values of one row; everything they point at lives until row_fini. */
typedef struct row {
    sink_val *v;
    char (*num)[32];
    char idhex[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    ProtobufCMessage *msg;
    json_object *json;
} row;

static void row_fini(row *r)
{
    free(r->v);
    free(r->num);
    if (r->msg != NULL)
        protobuf_c_message_free_unpacked(r->msg, NULL);
    json_object_put(r->json);
    memset(r, 0, sizeof *r);
}

/* Unpack and check the payload: the row errors of lt_sink_put. */
static lt_err row_decode(const ProtobufCMessageDescriptor *d, const lt_env *env, row *r,
                         lt_why *why)
{
    size_t plen = 0;
    const uint8_t *payload = lt_env_payload(env, &plen);
    r->msg = protobuf_c_message_unpack(d, NULL, plen, payload);
    if (r->msg == NULL)
        return lt_fail(why, LT_EPROTO, "payload is not a %s", d->name);
    /* The JSON columns come from here, and it refuses strings that are not UTF-8. */
    lt_err e = lt_json_from_pb(r->msg, &r->json, why);
    if (e != LT_OK)
        return e == LT_ENOMEM ? e : lt_fail(why, LT_EPROTO, "%s: %s", d->name, why->msg);
    return LT_OK;
}

static void field_val(const sink_col *c, const ProtobufCMessage *m, json_object *json,
                      char num[32], sink_val *v)
{
    const ProtobufCFieldDescriptor *f = c->field;
    const char *base = (const char *)m;
    const void *at = base + f->offset;
    v->kind = c->kind;
    if (c->kind == SK_JSON) {
        json_object *member = NULL;
        if (json_object_object_get_ex(json, c->json_name, &member)) {
            v->p = json_object_to_json_string_ext(member, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            v->p = "[]";
        } else {
            v->null = true;
            return;
        }
        v->len = strlen(v->p);
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id) {
            v->null = true;
            return;
        }
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        if (!*(const protobuf_c_boolean *)(const void *)(base + f->quantifier_offset)) {
            v->null = true;
            return;
        }
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: v->i = *(const int32_t *)at; break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: v->i = *(const uint32_t *)at; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: v->i = *(const int64_t *)at; break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(num, 32, "%" PRIu64, *(const uint64_t *)at);
        v->p = num;
        v->len = strlen(num);
        break;
    case PROTOBUF_C_TYPE_FLOAT: v->d = *(const float *)at; break;
    case PROTOBUF_C_TYPE_DOUBLE: v->d = *(const double *)at; break;
    case PROTOBUF_C_TYPE_BOOL: v->i = *(const protobuf_c_boolean *)at ? 1 : 0; break;
    case PROTOBUF_C_TYPE_ENUM: {
        int n = *(const int *)at;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, n);
        if (ev != NULL) {
            v->p = ev->name;
        } else {
            snprintf(num, 32, "%d", n);
            v->p = num;
        }
        v->len = strlen(v->p);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *str = *(const char *const *)at;
        if (str == NULL) {
            v->null = f->label == PROTOBUF_C_LABEL_OPTIONAL;
            str = "";
        }
        v->p = str;
        v->len = strlen(str);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = at;
        v->p = bd->data;
        v->len = bd->len;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: v->null = true; break; /* handled as JSON above */
    }
}

/* Every column's value for env in t (r decoded by row_decode). */
static lt_err row_values(const sink_table *t, const lt_env *env, const uint8_t *envelope,
                         size_t len, const lt_sink_meta *meta, row *r, lt_why *why)
{
    r->v = calloc(t->ncols, sizeof *r->v);
    r->num = calloc(t->ncols, sizeof *r->num);
    if (r->v == NULL || r->num == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    static const char hexd[] = "0123456789abcdef";
    const uint8_t *id = lt_env_message_id(env);
    for (size_t i = 0; i < LT_ENV_MESSAGE_ID_LEN; i++) {
        r->idhex[2 * i] = hexd[id[i] >> 4];
        r->idhex[2 * i + 1] = hexd[id[i] & 15];
    }
    r->idhex[2 * LT_ENV_MESSAGE_ID_LEN] = '\0';
    r->v[SC_MESSAGE_ID] = (sink_val){.kind = SK_ID, .p = r->idhex, .len = 32};
    r->v[SC_SOURCE] = text_val(lt_env_source(env));
    r->v[SC_TOPIC] = text_val(lt_env_topic(env));
    r->v[SC_RECORD_TYPE] = text_val(lt_env_record_type(env));
    r->v[SC_CREATED] = int_val(lt_env_created_ms(env));
    r->v[SC_QUEUE] = text_val(meta != NULL && meta->queue != NULL ? meta->queue : "");
    r->v[SC_SEQ] = int_val(meta != NULL ? (int64_t)meta->broker_seq : 0);
    r->v[SC_RECEIVED] =
        int_val(meta != NULL && meta->received_ms != 0 ? meta->received_ms : lt_env_now_ms());
    r->v[SC_ENVELOPE] = (sink_val){.kind = SK_BLOB, .p = envelope, .len = len};
    for (size_t i = SC_NMETA; i < t->ncols; i++)
        field_val(&t->cols[i], r->msg, r->json, r->num[i], &r->v[i]);
    return LT_OK;
}

/* Everything of one item that can fail because of the row itself: its table and values
 * into *t and *r. */
static lt_err row_prepare(lt_sink *s, const lt_sink_item *it, sink_table **t, row *r,
                          lt_why *why)
{
    if (it->meta.broker_seq > (uint64_t)INT64_MAX)
        return lt_fail(why, LT_EINVAL, "broker sequence %" PRIu64 " out of range",
                       it->meta.broker_seq);
    const ProtobufCMessageDescriptor *d = lt_records_find(lt_env_record_type(it->env));
    if (d == NULL)
        return lt_fail(why, LT_ENOTFOUND, "record type '%s' is not a known record type",
                       lt_env_record_type(it->env));
    lt_err e = row_decode(d, it->env, r, why);
    if (e == LT_OK)
        e = table_get(s, d, t, why);
    if (e == LT_OK)
        e = row_values(*t, it->env, it->envelope, it->len, &it->meta, r, why);
    return e;
}

/* The rows of one table in a batch: which items, and which message ids came back new. */
typedef struct group {
    lt_sink_item *items;
    row *rows;
    size_t *idx;  /* items of this table, in batch order */
    size_t n;
    size_t *byid; /* idx positions sorted by (message id, position): RETURNING lookups */
} group;

static const group *sort_group; /* qsort has no user pointer; one thread per lt_sink */

static int cmp_byid(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(sort_group->rows[sort_group->idx[x]].idhex,
                   sort_group->rows[sort_group->idx[y]].idhex);
    return c != 0 ? c : (x > y) - (x < y);
}

/* A message id that RETURNING gave (PostgreSQL's uuid text): the first item of the group
 * with that id not yet marked is the one that was inserted. */
static lt_err mark_returned(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    group *g = user;
    if (ncols < 1 || cells[0].null)
        return lt_fail(why, LT_EDB, "insert returned no message id");
    char hex[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    size_t j = 0;
    for (const char *p = cells[0].p; *p != '\0' && j + 1 < sizeof hex; p++)
        if (*p != '-')
            hex[j++] = (*p >= 'A' && *p <= 'F') ? (char)(*p - 'A' + 'a') : *p;
    hex[j] = '\0';
    size_t lo = 0, hi = g->n; /* first position whose id is >= hex */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(g->rows[g->idx[g->byid[mid]]].idhex, hex) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < g->n && strcmp(g->rows[g->idx[g->byid[lo]]].idhex, hex) == 0; lo++) {
        lt_sink_item *it = &g->items[g->idx[g->byid[lo]]];
        if (!it->inserted) {
            it->inserted = true;
            return LT_OK;
        }
    }
    return lt_fail(why, LT_EDB, "insert returned message id %s, which was not sent", hex);
}

/* Write the rows of g into t: SQLite one prepared INSERT per row (in-process, nothing to
 * gain); PostgreSQL multi-row INSERTs of t's sizes, all sent in one pipeline, the new rows
 * told by RETURNING message_id. */
static lt_err write_group(lt_sink *s, sink_table *t, group *g, lt_why *why)
{
    sink_call *calls = NULL;
    sink_val *vals = NULL;
    size_t ncalls = 0;
    lt_err e = LT_OK;
    if (!s->pg) {
        calls = calloc(g->n, sizeof *calls);
        if (calls == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        for (size_t i = 0; i < g->n; i++)
            calls[ncalls++] = (sink_call){.stmt = t->insert_stmt,
                                          .vals = g->rows[g->idx[i]].v, .n = t->ncols};
        e = s->ops->run_many(s, calls, ncalls, NULL, NULL, why);
        for (size_t i = 0; e == LT_OK && i < ncalls; i++)
            g->items[g->idx[i]].inserted = calls[i].changes > 0;
        free(calls);
        return e;
    }
    if (t->multi_rows[0] == 0)
        multi_sizes(t);
    g->byid = calloc(g->n, sizeof *g->byid);
    calls = calloc(g->n, sizeof *calls); /* never more statements than rows */
    vals = calloc(g->n * t->ncols, sizeof *vals);
    if (g->byid == NULL || calls == NULL || vals == NULL)
        e = lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; e == LT_OK && i < g->n; i++)
        g->byid[i] = i;
    if (e == LT_OK) {
        sort_group = g;
        qsort(g->byid, g->n, sizeof *g->byid, cmp_byid);
        sort_group = NULL;
    }
    for (size_t done = 0; e == LT_OK && done < g->n;) {
        size_t left = g->n - done, k = 0, rows = 1;
        void **stmt = &t->insert_stmt;
        while (k < SINK_MULTI_SIZES && t->multi_rows[k] != 0 && t->multi_rows[k] > left)
            k++;
        if (k < SINK_MULTI_SIZES && t->multi_rows[k] != 0) {
            rows = t->multi_rows[k];
            stmt = &t->multi_stmt[k];
            if (*stmt == NULL && (e = prepare_insert(s, t, rows, stmt, why)) != LT_OK)
                break;
        }
        sink_val *v = vals + done * t->ncols;
        for (size_t r = 0; r < rows; r++)
            memcpy(v + r * t->ncols, g->rows[g->idx[done + r]].v, t->ncols * sizeof *v);
        calls[ncalls++] = (sink_call){.stmt = *stmt, .vals = v, .n = rows * t->ncols};
        done += rows;
    }
    if (e == LT_OK)
        e = s->ops->run_many(s, calls, ncalls, mark_returned, g, why);
    free(calls);
    free(vals);
    free(g->byid);
    g->byid = NULL;
    return e;
}

/* "SAVEPOINT name", "ROLLBACK TO SAVEPOINT name" or "RELEASE SAVEPOINT name". A statement
 * the database refuses spoils, on PostgreSQL, the whole transaction unless a savepoint was
 * taken before it; SQLite undoes the statement alone, but treating both alike costs nothing
 * there. */
static lt_err savepoint(lt_sink *s, const char *verb, const char *name, lt_why *why)
{
    char sql[64];
    snprintf(sql, sizeof sql, "%s %s", verb, name);
    return s->ops->exec(s, sql, why);
}

/* After the database refused a statement of the batch (rolled back to before it): every
 * item with a table (tab[i], NULL after a row error) written alone in a savepoint of its own,
 * so that each row the database refuses gets LT_EDB_REFUSED and the database's reason, and
 * every other row is written. Slow (three statements more a row), and only taken when a
 * batch held a refused row. */
static lt_err write_alone(lt_sink *s, lt_sink_item *items, const row *rows,
                          sink_table *const *tab, size_t n, lt_why *why)
{
    for (size_t i = 0; i < n; i++) {
        if (tab[i] == NULL)
            continue;
        lt_err e = savepoint(s, "SAVEPOINT", "lt_row", why);
        if (e != LT_OK)
            return e;
        uint64_t changes = 0;
        lt_why rw = {{0}};
        lt_err re = s->ops->run(s, tab[i]->insert_stmt, rows[i].v, tab[i]->ncols, NULL, NULL,
                                &changes, &rw);
        if (re == LT_EDB_REFUSED) {
            items[i].err = re;
            items[i].why = rw;
            e = savepoint(s, "ROLLBACK TO SAVEPOINT", "lt_row", why);
        } else if (re != LT_OK) {
            return lt_fail(why, re, "%s", rw.msg);
        } else {
            items[i].inserted = changes > 0;
        }
        if (e == LT_OK)
            e = savepoint(s, "RELEASE SAVEPOINT", "lt_row", why);
        if (e != LT_OK)
            return e;
    }
    return LT_OK;
}

lt_err lt_sink_put_batch(lt_sink *s, lt_sink_item *items, size_t n, lt_why *why)
{
    if (!s->in_txn)
        return lt_fail(why, LT_EINVAL, "lt_sink_put outside a transaction");
    for (size_t i = 0; i < n; i++) {
        items[i].err = LT_OK;
        items[i].inserted = false;
        items[i].why.msg[0] = '\0';
    }
    if (n == 0)
        return LT_OK;
    row *rows = calloc(n, sizeof *rows);
    sink_table **tab = calloc(n, sizeof *tab);
    size_t *idx = calloc(n, sizeof *idx);
    bool *done = calloc(n, sizeof *done);
    lt_err e = LT_OK;
    if (rows == NULL || tab == NULL || idx == NULL || done == NULL)
        e = lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; e == LT_OK && i < n; i++) {
        lt_err re = row_prepare(s, &items[i], &tab[i], &rows[i], &items[i].why);
        if (re == LT_ENOMEM)
            e = lt_fail(why, re, "%s", items[i].why.msg);
        else if (re != LT_OK) {
            items[i].err = re;
            tab[i] = NULL;
            done[i] = true;
        }
    }
    /* From here on failures are the database's, or a row it refuses. Tables first, before
     * the savepoint, so that rolling back to it keeps them. */
    bool any = false;
    for (size_t i = 0; e == LT_OK && i < n; i++) {
        any = any || tab[i] != NULL;
        if (tab[i] != NULL && !tab[i]->ready)
            e = table_ensure(s, tab[i], why);
    }
    if (e == LT_OK && any)
        e = savepoint(s, "SAVEPOINT", "lt_batch", why);
    /* One table at a time, in order of first appearance; within a table, in batch order. */
    for (size_t i = 0; e == LT_OK && i < n; i++) {
        if (done[i])
            continue;
        sink_table *t = tab[i];
        group g = {.items = items, .rows = rows, .idx = idx};
        for (size_t j = i; j < n; j++)
            if (!done[j] && tab[j] == t) {
                idx[g.n++] = j;
                done[j] = true;
            }
        e = write_group(s, t, &g, why);
    }
    if (e == LT_EDB_REFUSED) {
        /* Which row it was, a multi-row INSERT does not say: undo the batch, then each row
         * alone. */
        for (size_t i = 0; i < n; i++)
            items[i].inserted = false;
        e = savepoint(s, "ROLLBACK TO SAVEPOINT", "lt_batch", why);
        if (e == LT_OK)
            e = write_alone(s, items, rows, tab, n, why);
    }
    if (e == LT_OK && any)
        e = savepoint(s, "RELEASE SAVEPOINT", "lt_batch", why);
    for (size_t i = 0; rows != NULL && i < n; i++)
        row_fini(&rows[i]);
    free(rows), free(tab), free(idx), free(done);
    return e;
}

lt_err lt_sink_put(lt_sink *s, const lt_env *env, const uint8_t *envelope, size_t len,
                   const lt_sink_meta *meta, bool *inserted, lt_why *why)
{
    if (!s->in_txn)
        return lt_fail(why, LT_EINVAL, "lt_sink_put outside a transaction");
    lt_sink_item it = {.env = env, .envelope = envelope, .len = len};
    if (meta != NULL)
        it.meta = *meta;
    lt_err e = lt_sink_put_batch(s, &it, 1, why);
    if (e == LT_OK && it.err != LT_OK)
        e = lt_fail(why, it.err, "%s", it.why.msg);
    if (e == LT_OK && inserted != NULL)
        *inserted = it.inserted;
    return e;
}

/* ---------------------------------------------------------------------------------------- */
/* Counting and verifying.                                                                    */

static lt_err read_u64(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    (void)why;
    if (ncols >= 1 && !cells[0].null)
        *(uint64_t *)user += strtoull(cells[0].p, NULL, 10);
    return LT_OK;
}

typedef struct reg_entry {
    char table[LT_SINK_NAME_MAX];
    char type[LT_ENV_RECORD_TYPE_MAX + 1];
} reg_entry;

typedef struct reg_list {
    reg_entry *v;
    size_t n, cap;
} reg_list;

static lt_err read_reg(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    reg_list *l = user;
    if (ncols < 2 || cells[0].null || cells[1].null)
        return LT_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        reg_entry *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        l->v = nv;
        l->cap = cap;
    }
    snprintf(l->v[l->n].table, sizeof l->v[l->n].table, "%s", cells[0].p);
    snprintf(l->v[l->n].type, sizeof l->v[l->n].type, "%s", cells[1].p);
    l->n++;
    return LT_OK;
}

static lt_err registry(lt_sink *s, reg_list *l, lt_why *why)
{
    return query(s, "SELECT table_name, record_type FROM lt_sink_tables ORDER BY table_name",
                 NULL, 0, read_reg, l, NULL, why);
}

lt_err lt_sink_count(lt_sink *s, const char *table, uint64_t *out, lt_why *why)
{
    reg_list l = {0};
    lt_err e = registry(s, &l, why);
    uint64_t total = 0;
    bool found = table == NULL;
    for (size_t i = 0; e == LT_OK && i < l.n; i++) {
        if (table != NULL && strcmp(table, l.v[i].table) != 0)
            continue;
        found = true;
        char sql[LT_SINK_NAME_MAX + 40];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", l.v[i].table);
        e = query(s, sql, NULL, 0, read_u64, &total, NULL, why);
    }
    free(l.v);
    if (e == LT_OK && !found)
        e = lt_fail(why, LT_ENOTFOUND, "no sink table '%s'", table);
    if (e == LT_OK)
        *out = total;
    return e;
}

/* A page of stored rows, copied out of the result. */
typedef struct stored {
    char id[48];
    uint8_t *env;
    size_t len;
    int64_t received_ms;
} stored;

typedef struct page {
    stored *v;
    size_t n, cap;
} page;

static lt_err read_page(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    page *p = user;
    if (ncols < 3)
        return LT_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        stored *nv = realloc(p->v, cap * sizeof *nv);
        if (nv == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        p->v = nv;
        p->cap = cap;
    }
    stored *r = &p->v[p->n];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", cells[0].null ? "" : cells[0].p);
    if (!cells[1].null) {
        r->env = malloc(cells[1].len ? cells[1].len : 1);
        if (r->env == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        memcpy(r->env, cells[1].p, cells[1].len);
        r->len = cells[1].len;
    }
    r->received_ms = cells[2].null ? 0 : strtoll(cells[2].p, NULL, 10);
    p->n++;
    return LT_OK;
}

static void page_clear(page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].env);
    p->n = 0;
}

/* The columns compared by the check statement: envelope-derived ones, then the record's. */
static bool compared(const sink_table *t, size_t i)
{
    if (i == SC_SOURCE || i == SC_TOPIC || i == SC_RECORD_TYPE || i == SC_CREATED)
        return true;
    return i >= SC_NMETA && t->cols[i].present;
}

static lt_err prepare_check(lt_sink *s, sink_table *t, lt_why *why)
{
    sb b = {0};
    size_t np = 1;
    sb_add(&b, "SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        if (!compared(t, i))
            continue;
        sb_add(&b, "%s(\"%s\" IS NOT DISTINCT FROM $%zu)", np > 1 ? ", " : "", t->cols[i].name,
               np + 1);
        np++;
    }
    sb_add(&b, " FROM \"%s\" WHERE message_id = $1", t->name);
    lt_err e = b.oom ? lt_fail(why, LT_ENOMEM, "out of memory")
                     : s->ops->prepare(s, b.p, np, &t->check_stmt, why);
    sb_fini(&b);
    return e;
}

typedef struct check_result {
    const sink_table *t;
    bool found;
    char differ[LT_WHY_MAX - 64];
} check_result;

static lt_err read_check(void *user, size_t ncols, const sink_cell *cells, lt_why *why)
{
    (void)why;
    check_result *cr = user;
    cr->found = true;
    size_t k = 0, used = strlen(cr->differ);
    for (size_t i = 0; i < cr->t->ncols && k < ncols; i++) {
        if (!compared(cr->t, i))
            continue;
        bool same = !cells[k].null && (strcmp(cells[k].p, "1") == 0 || strcmp(cells[k].p, "t") == 0);
        k++;
        if (same)
            continue;
        int n = snprintf(cr->differ + used, sizeof cr->differ - used, "%s%s", used ? ", " : "",
                         cr->t->cols[i].name);
        if (n > 0)
            used = used + (size_t)n < sizeof cr->differ ? used + (size_t)n : sizeof cr->differ - 1;
    }
    return LT_OK;
}

static void report(lt_sink_bad_cb cb, void *user, lt_sink_verify_stats *st, const char *table,
                   const char *id, lt_err code, const char *reason)
{
    st->bad++;
    if (cb != NULL) {
        lt_sink_bad_row b = {.table = table, .message_id = id, .code = code, .reason = reason};
        cb(user, &b);
    }
}

/* One stored row against its envelope and the trust. LT_OK unless the database failed. */
static lt_err verify_one(lt_sink *s, sink_table *t, const stored *r, lt_trust *trust,
                         lt_sink_bad_cb cb, void *user, lt_sink_verify_stats *st, lt_why *why)
{
    lt_why rw = {{0}};
    lt_env *env = NULL;
    lt_err code = r->env != NULL ? lt_env_decode(r->env, r->len, NULL, &env, &rw)
                                 : lt_fail(&rw, LT_EPROTO, "no envelope stored");
    if (code == LT_OK)
        code = lt_env_verify_received(env, trust, r->received_ms, &rw);
    if (code == LT_OK)
        code = lt_env_check_record(env, &rw);
    if (code == LT_OK && strcmp(lt_env_record_type(env), t->desc->name) != 0)
        code = lt_fail(&rw, LT_EVALIDATE, "envelope of a %s in table %s",
                       lt_env_record_type(env), t->name);
    row rr = {0};
    if (code == LT_OK)
        code = row_decode(t->desc, env, &rr, &rw);
    if (code == LT_OK)
        code = row_values(t, env, r->env, r->len, NULL, &rr, &rw);
    if (code != LT_OK) {
        report(cb, user, st, t->name, r->id, code, rw.msg);
        row_fini(&rr);
        lt_env_destroy(&env);
        return code == LT_ENOMEM ? lt_fail(why, code, "%s", rw.msg) : LT_OK;
    }
    sink_val *vals = calloc(t->ncols + 1, sizeof *vals);
    lt_err e = vals == NULL ? lt_fail(why, LT_ENOMEM, "out of memory") : LT_OK;
    check_result cr = {.t = t};
    if (e == LT_OK) {
        size_t n = 0;
        vals[n++] = rr.v[SC_MESSAGE_ID];
        for (size_t i = 0; i < t->ncols; i++)
            if (compared(t, i))
                vals[n++] = rr.v[i];
        e = s->ops->run(s, t->check_stmt, vals, n, read_check, &cr, NULL, why);
    }
    if (e == LT_OK) {
        if (!cr.found)
            report(cb, user, st, t->name, r->id, LT_EVALIDATE,
                   "message_id column is not the envelope's message id");
        else if (cr.differ[0] != '\0') {
            char reason[LT_WHY_MAX];
            snprintf(reason, sizeof reason, "columns differ from the signed record: %s",
                     cr.differ);
            report(cb, user, st, t->name, r->id, LT_EVALIDATE, reason);
        } else {
            st->ok++;
        }
    }
    free(vals);
    row_fini(&rr);
    lt_env_destroy(&env);
    return e;
}

#define VERIFY_PAGE 256

static lt_err verify_table(lt_sink *s, const reg_entry *re, lt_trust *trust, lt_sink_bad_cb cb,
                           void *user, lt_sink_verify_stats *st, lt_why *why)
{
    const ProtobufCMessageDescriptor *d = lt_records_find(re->type);
    sink_table *t = NULL;
    char reason[LT_WHY_MAX];
    if (d == NULL) {
        uint64_t n = 0;
        char sql[LT_SINK_NAME_MAX + 40];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", re->table);
        lt_err e = query(s, sql, NULL, 0, read_u64, &n, NULL, why);
        snprintf(reason, sizeof reason, "record type %.120s unknown to this program: %" PRIu64
                 " rows not verified", re->type, n);
        st->rows += n;
        report(cb, user, st, re->table, "*", LT_ENOTFOUND, reason);
        return e;
    }
    lt_err e = table_get(s, d, &t, why);
    if (e != LT_OK)
        return e;
    if (strcmp(t->name, re->table) != 0)
        return lt_fail(why, LT_EDB, "lt_sink_tables lists %s for %s, expected %s", re->table,
                       re->type, t->name);
    if (!t->loaded && (e = load_columns(s, t, why)) != LT_OK)
        return e;
    if (t->check_stmt == NULL && (e = prepare_check(s, t, why)) != LT_OK)
        return e;
    char first[LT_SINK_NAME_MAX + 128], next[LT_SINK_NAME_MAX + 128];
    snprintf(first, sizeof first,
             "SELECT message_id, envelope, received_ms FROM \"%s\" ORDER BY message_id LIMIT %d",
             t->name, VERIFY_PAGE);
    snprintf(next, sizeof next,
             "SELECT message_id, envelope, received_ms FROM \"%s\" WHERE message_id > $1 "
             "ORDER BY message_id LIMIT %d",
             t->name, VERIFY_PAGE);
    page p = {0};
    char after[48] = "";
    for (;;) {
        page_clear(&p);
        sink_val v = text_val(after);
        e = after[0] == '\0' ? query(s, first, NULL, 0, read_page, &p, NULL, why)
                             : query(s, next, &v, 1, read_page, &p, NULL, why);
        if (e != LT_OK || p.n == 0)
            break;
        for (size_t i = 0; e == LT_OK && i < p.n; i++) {
            st->rows++;
            e = verify_one(s, t, &p.v[i], trust, cb, user, st, why);
        }
        snprintf(after, sizeof after, "%s", p.v[p.n - 1].id);
        if (e != LT_OK || p.n < VERIFY_PAGE)
            break;
    }
    page_clear(&p);
    free(p.v);
    return e;
}

lt_err lt_sink_verify_rows(lt_sink *s, lt_trust *trust, lt_sink_bad_cb cb, void *user,
                           lt_sink_verify_stats *stats, lt_why *why)
{
    lt_sink_verify_stats st = {0};
    reg_list l = {0};
    lt_err e = registry(s, &l, why);
    for (size_t i = 0; e == LT_OK && i < l.n; i++) {
        st.tables++;
        e = verify_table(s, &l.v[i], trust, cb, user, &st, why);
    }
    free(l.v);
    if (stats != NULL)
        *stats = st;
    return e;
}
