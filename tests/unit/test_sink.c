/*
 * test_sink.c - adapters/sink.h against real databases: SQLite in a temporary directory
 * always, PostgreSQL when LT_TEST_PG_URL names a server (scripts/test starts one with
 * scripts/pg-test-server; each test creates and drops its own database in it). Without the
 * variable the PostgreSQL tests skip, saying so.
 *
 * Records are the realistic samples of tests/fuzz/corpus/json/record_<Type>.json, sealed
 * with the development PKI of lt_devpki_fixture.
 */
#include "devpki.h"
#include "envelope.h"
#include "json.h"
#include "records.h"
#include "sink.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum backend { B_SQLITE, B_PG };

struct fx {
    enum backend b;
    char dir[256];
    char url[1024];
    char admin_url[1024];
    char dbname[64];
    int64_t now;
    lt_signer *a, *revoked;
    lt_trust *trust;
    lt_sink *s;
    sqlite3 *lite; /* the test's own connection, to look and to tamper */
    PGconn *pg;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static lt_signer *open_signer(const char *dir, const char *name)
{
    char k[512], c[512];
    snprintf(k, sizeof k, "%s/%s.key.pem", dir, name);
    snprintf(c, sizeof c, "%s/%s.cert.pem", dir, name);
    lt_signer *s = NULL;
    lt_why why;
    if (lt_signer_open(k, c, &s, &why) != LT_OK)
        fail_msg("open signer %s: %s", name, why.msg);
    return s;
}

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static void pg_admin(const char *admin_url, const char *sql)
{
    PGconn *c = PQconnectdb(admin_url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", admin_url, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static int setup(void **state)
{
    enum backend b = *(enum backend *)*state;
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->b = b;
    *state = f;
    if (b == B_PG) {
        const char *u = getenv("LT_TEST_PG_URL");
        if (u == NULL || u[0] == '\0')
            return 0; /* the test skips */
        /* The URL ends in /DBNAME: our database replaces it. */
        const char *slash = strrchr(u, '/');
        assert_non_null(slash);
        static unsigned counter;
        snprintf(f->dbname, sizeof f->dbname, "lt_test_sink_%ld_%u", (long)getpid(), ++counter);
        snprintf(f->admin_url, sizeof f->admin_url, "%s", u);
        snprintf(f->url, sizeof f->url, "%.*s/%s", (int)(slash - u), u, f->dbname);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->dbname);
        pg_admin(f->admin_url, sql);
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof f->dir, "%s/lt-test-sink-XXXXXX", tmp);
    assert_non_null(mkdtemp(f->dir));
    f->now = lt_env_now_ms();
    lt_why why;
    if (lt_devpki_fixture(f->dir, LT_SIG_ECDSA_P256, f->now, &why) != LT_OK)
        fail_msg("fixture: %s", why.msg);
    f->a = open_signer(f->dir, "a");
    f->revoked = open_signer(f->dir, "revoked");
    char ca[512], crl[512];
    snprintf(ca, sizeof ca, "%s/ca.cert.pem", f->dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", f->dir);
    if (lt_trust_open(ca, crl, NULL, &f->trust, &why) != LT_OK)
        fail_msg("trust: %s", why.msg);
    if (b == B_SQLITE) {
        snprintf(f->url, sizeof f->url, "sqlite:%s/sink.db", f->dir);
        if (sqlite3_open(f->url + 7, &f->lite) != SQLITE_OK)
            fail_msg("sqlite open");
        sqlite3_busy_timeout(f->lite, 10000);
    } else {
        f->pg = PQconnectdb(f->url);
        if (PQstatus(f->pg) != CONNECTION_OK)
            fail_msg("connect %s: %s", f->url, PQerrorMessage(f->pg));
        PQsetNoticeProcessor(f->pg, quiet, NULL);
    }
    if (lt_sink_open(f->url, &f->s, &why) != LT_OK)
        fail_msg("lt_sink_open %s: %s", f->url, why.msg);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    lt_sink_close(&f->s);
    sqlite3_close(f->lite);
    if (f->pg != NULL)
        PQfinish(f->pg);
    if (f->dbname[0] != '\0') {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
        pg_admin(f->admin_url, sql);
    }
    lt_signer_destroy(&f->a);
    lt_signer_destroy(&f->revoked);
    lt_trust_destroy(&f->trust);
    if (f->dir[0] != '\0')
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* The PostgreSQL variant of a test without a server: skip, and say why. */
static struct fx *fx_of(void **state)
{
    struct fx *f = *state;
    if (f->b == B_PG && f->s == NULL) {
        print_message("[  SKIPPED ] PostgreSQL: LT_TEST_PG_URL is not set "
                      "(scripts/test starts a server with scripts/pg-test-server)\n");
        skip();
    }
    return f;
}

/* First column of the first row of sql as text ("NULL" for SQL NULL, "" for no row);
 * malloc'ed. */
static char *q1(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *q1(struct fx *f, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (f->b == B_SQLITE) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(f->lite, sql, -1, &st, NULL) != SQLITE_OK)
            fail_msg("%s: %s", sql, sqlite3_errmsg(f->lite));
        char *out = NULL;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            out = strdup(sqlite3_column_type(st, 0) == SQLITE_NULL
                             ? "NULL"
                             : (const char *)sqlite3_column_text(st, 0));
        else if (rc == SQLITE_DONE)
            out = strdup("");
        else
            fail_msg("%s: %s", sql, sqlite3_errmsg(f->lite));
        sqlite3_finalize(st);
        return out;
    }
    PGresult *r = PQexec(f->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    char *out = strdup(st != PGRES_TUPLES_OK || PQntuples(r) == 0 ? ""
                       : PQgetisnull(r, 0, 0)                     ? "NULL"
                                                                  : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static long q1_long(struct fx *f, const char *fmt, const char *arg)
{
    char sql[2048];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* fmt is one of this file's literals */
    snprintf(sql, sizeof sql, fmt, arg);
#pragma GCC diagnostic pop
    char *v = q1(f, "%s", sql);
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static void assert_q1(struct fx *f, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void assert_q1(struct fx *f, const char *want, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *got = q1(f, "%s", sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got '%s', want '%s'", sql, got, want);
    free(got);
}

static char *read_sample(const char *type_short)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/json/record_%s.json", LT_TEST_SRCDIR,
             type_short);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("no sample %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strdup(buf);
}

/* A sealed envelope of a record given as JSON. */
static uint8_t *seal_json(lt_signer *s, const char *type, const char *json, int64_t created_ms,
                          size_t *len)
{
    uint8_t *payload = NULL, *out = NULL;
    size_t plen = 0;
    lt_why why;
    if (lt_json_text_to_payload(type, json, strlen(json), &payload, &plen, &why) != LT_OK)
        fail_msg("%s: %s", type, why.msg);
    lt_env_spec spec = {.topic = "79.760.test.sink", .record_type = type, .payload = payload,
                        .payload_len = plen, .created_ms = created_ms};
    if (lt_env_seal(s, &spec, &out, len, &why) != LT_OK)
        fail_msg("seal: %s", why.msg);
    free(payload);
    return out;
}

/* lt_sink_put of buf (decoded here) in the open transaction. */
static lt_err put(struct fx *f, const uint8_t *buf, size_t len, uint64_t seq, bool *inserted,
                  lt_why *why)
{
    lt_env *env = NULL;
    lt_err e = lt_env_decode(buf, len, NULL, &env, why);
    assert_int_equal(e, LT_OK);
    lt_sink_meta m = {.queue = "q.test", .broker_seq = seq, .received_ms = f->now + 1000};
    e = lt_sink_put(f->s, env, buf, len, &m, inserted, why);
    lt_env_destroy(&env);
    return e;
}

/* Put one envelope in a transaction of its own. */
static bool put_commit(struct fx *f, const uint8_t *buf, size_t len, uint64_t seq)
{
    lt_why why;
    bool ins = false;
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    lt_err e = put(f, buf, len, seq, &ins, &why);
    if (e != LT_OK)
        fail_msg("put: %s", why.msg);
    if (lt_sink_commit(f->s, &why) != LT_OK)
        fail_msg("commit: %s", why.msg);
    return ins;
}

static const char *columns_sql(const struct fx *f)
{
    return f->b == B_SQLITE ? "SELECT count(*) FROM pragma_table_info('%s')"
                            : "SELECT count(*) FROM information_schema.columns WHERE "
                              "table_schema = current_schema() AND table_name = '%s'";
}

static uint64_t count_rows(struct fx *f, const char *table)
{
    uint64_t n = 0;
    lt_why why;
    lt_err e = lt_sink_count(f->s, table, &n, &why);
    if (e != LT_OK)
        fail_msg("count %s: %s", table ? table : "*", why.msg);
    return n;
}

struct bad_list {
    size_t n;
    lt_err code[16];
    char reason[16][LT_WHY_MAX];
};

static void collect_bad(void *user, const lt_sink_bad_row *b)
{
    struct bad_list *l = user;
    if (l->n < 16) {
        l->code[l->n] = b->code;
        snprintf(l->reason[l->n], LT_WHY_MAX, "%s", b->reason);
    }
    l->n++;
}

/* ---------------------------------------------------------------------------------------- */

static void table_names_are_the_record_names_in_snake_case(void **state)
{
    (void)state;
    char out[LT_SINK_NAME_MAX];
    lt_why why;
    static const char *const cases[][2] = {
        {"lienthong.v1.records.BirthRegistration", "birth_registration"},
        {"lienthong.v1.records.EDocument", "e_document"},
        {"lienthong.v1.records.EDocumentStatus", "e_document_status"},
        {"lienthong.v1.records.PopulationRecord", "population_record"},
        {"lienthong.v1.records.DossierStatusEvent", "dossier_status_event"},
        {"X2Y", "x2_y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(lt_sink_table_name(cases[i][0], out, &why), LT_OK);
        assert_string_equal(out, cases[i][1]);
    }
    assert_int_equal(lt_sink_table_name("lienthong.v1.records.Bad-Name", out, &why), LT_EINVAL);
    assert_int_equal(lt_sink_table_name("lienthong.v1.records.", out, &why), LT_EINVAL);
}

static void open_refuses_an_unknown_scheme(void **state)
{
    (void)state;
    lt_sink *s = NULL;
    lt_why why;
    assert_int_equal(lt_sink_open("mysql://x", &s, &why), LT_EINVAL);
    assert_null(s);
    assert_non_null(strstr(why.msg, "sqlite:PATH"));
    assert_int_equal(lt_sink_open("sqlite:/nonexistent-dir/x/y.db", &s, &why), LT_EDB);
}

static void every_record_type_gets_a_table_with_a_column_per_field(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    size_t n = lt_records_count();
    assert_true(n >= 9);
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageDescriptor *d = lt_records_at(i)->desc;
        char *json = read_sample(strrchr(d->name, '.') + 1);
        size_t len = 0;
        uint8_t *env = seal_json(f->a, d->name, json, 0, &len);
        bool ins = false;
        if (put(f, env, len, i + 1, &ins, &why) != LT_OK)
            fail_msg("put %s: %s", d->name, why.msg);
        assert_true(ins);
        free(env);
        free(json);
    }
    assert_int_equal(lt_sink_commit(f->s, &why), LT_OK);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageDescriptor *d = lt_records_at(i)->desc;
        char table[LT_SINK_NAME_MAX];
        assert_int_equal(lt_sink_table_name(d->name, table, &why), LT_OK);
        assert_int_equal(count_rows(f, table), 1);
        assert_int_equal(q1_long(f, columns_sql(f), table), 9 + (long)d->n_fields);
        assert_q1(f, d->name, "SELECT record_type FROM lt_sink_tables WHERE table_name = '%s'",
                  table);
    }
    assert_int_equal(count_rows(f, NULL), n);
    /* Typed columns: text, enum names, integers, doubles, JSON for messages and repeated. */
    bool pg = f->b == B_PG;
    assert_q1(f, "079190012345", "SELECT personal_id FROM population_record");
    assert_q1(f, "SEX_FEMALE", "SELECT sex FROM population_record");
    assert_q1(f, "MARITAL_STATUS_MARRIED", "SELECT marital_status FROM population_record");
    assert_q1(f, "Nguyễn Văn Hùng",
              pg ? "SELECT father->>'fullName' FROM population_record"
                 : "SELECT json_extract(father, '$.fullName') FROM population_record");
    assert_q1(f, "2",
              pg ? "SELECT jsonb_array_length(other_names) FROM population_record"
                 : "SELECT json_array_length(other_names) FROM population_record");
    assert_q1(f, "VN:GOV:000.00.00.H29.760:hotich", "SELECT source_agency FROM land_parcel");
    assert_q1(f, "79.760.test.sink", "SELECT topic FROM land_parcel");
    assert_q1(f, "q.test", "SELECT queue FROM land_parcel");
    char *v = q1(f, "SELECT area_m2 > 0 FROM land_parcel");
    assert_true(strcmp(v, "1") == 0 || strcmp(v, "t") == 0);
    free(v);
    v = q1(f, "SELECT charter_capital_vnd FROM enterprise_registration");
    assert_true(strtoll(v, NULL, 10) > 0);
    free(v);
    /* Every row verifies again from its stored envelope. */
    lt_sink_verify_stats st;
    struct bad_list bad = {0};
    assert_int_equal(lt_sink_verify_rows(f->s, f->trust, collect_bad, &bad, &st, &why), LT_OK);
    if (bad.n > 0)
        fail_msg("verify: %s", bad.reason[0]);
    assert_int_equal(st.tables, n);
    assert_int_equal(st.rows, n);
    assert_int_equal(st.ok, n);
}

static void a_redelivered_message_changes_nothing(void **state)
{
    struct fx *f = fx_of(state);
    char *json = read_sample("BirthRegistration");
    size_t len = 0;
    uint8_t *env = seal_json(f->a, "lienthong.v1.records.BirthRegistration", json, 0, &len);
    assert_true(put_commit(f, env, len, 7));
    char *first = q1(f, "SELECT received_ms || '/' || broker_seq FROM birth_registration");
    /* Redelivered later, with another sequence number (e.g. after a requeue). */
    f->now += 60000;
    assert_false(put_commit(f, env, len, 99));
    assert_false(put_commit(f, env, len, 7));
    assert_int_equal(count_rows(f, "birth_registration"), 1);
    assert_q1(f, first, "SELECT received_ms || '/' || broker_seq FROM birth_registration");
    free(first);
    free(env);
    free(json);
}

static void a_rolled_back_batch_leaves_nothing_and_the_next_one_works(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    char *json = read_sample("BirthRegistration");
    size_t len = 0;
    uint8_t *env = seal_json(f->a, "lienthong.v1.records.BirthRegistration", json, 0, &len);
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_sink_begin(f->s, &why), LT_EINVAL);
    assert_int_equal(put(f, env, len, 1, NULL, &why), LT_OK);
    lt_sink_rollback(f->s);
    assert_int_equal(count_rows(f, NULL), 0); /* not even the table is listed */
    assert_int_equal(lt_sink_commit(f->s, &why), LT_EINVAL);
    /* Outside a transaction lt_sink_put refuses. */
    assert_int_equal(put(f, env, len, 1, NULL, &why), LT_EINVAL);
    assert_true(put_commit(f, env, len, 1));
    assert_int_equal(count_rows(f, "birth_registration"), 1);
    free(env);
    free(json);
}

static void bad_rows_leave_the_transaction_usable(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    lt_env_spec spec = {.topic = "79.760.test.sink",
                        .record_type = "lienthong.v1.records.NoSuchRecord",
                        .payload = (const uint8_t *)"", .payload_len = 0};
    uint8_t *unknown = NULL, *garbage = NULL;
    size_t ulen = 0, glen = 0;
    assert_int_equal(lt_env_seal(f->a, &spec, &unknown, &ulen, &why), LT_OK);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    spec.record_type = "lienthong.v1.records.BirthRegistration";
    spec.payload = junk;
    spec.payload_len = sizeof junk;
    assert_int_equal(lt_env_seal(f->a, &spec, &garbage, &glen, &why), LT_OK);
    char *json = read_sample("BirthRegistration");
    size_t len = 0;
    uint8_t *good = seal_json(f->a, "lienthong.v1.records.BirthRegistration", json, 0, &len);

    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    assert_int_equal(put(f, good, len, 1, NULL, &why), LT_OK);
    assert_int_equal(put(f, unknown, ulen, 2, NULL, &why), LT_ENOTFOUND);
    assert_non_null(strstr(why.msg, "NoSuchRecord"));
    assert_int_equal(put(f, garbage, glen, 3, NULL, &why), LT_EPROTO);
    if (lt_sink_commit(f->s, &why) != LT_OK) /* PostgreSQL would refuse a spoiled one */
        fail_msg("commit: %s", why.msg);
    assert_int_equal(count_rows(f, NULL), 1);
    free(unknown);
    free(garbage);
    free(good);
    free(json);
}

static void a_grown_record_type_adds_its_missing_columns(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    const ProtobufCMessageDescriptor *d = lt_records_find("lienthong.v1.records.BirthRegistration");
    assert_int_equal(lt_sink_ensure_table(f->s, d, &why), LT_OK);
    /* Make the table what an older descriptor made: without two fields, and with a row. */
    char *json = read_sample("BirthRegistration");
    size_t len = 0;
    uint8_t *old = seal_json(f->a, d->name, json, 0, &len);
    assert_true(put_commit(f, old, len, 1));
    lt_sink_close(&f->s);
    /* (PostgreSQL: the current view depends on every column; the sink makes it again.) */
    const char *cascade = f->b == B_PG ? " CASCADE" : "";
    free(q1(f, "ALTER TABLE birth_registration DROP COLUMN note%s", cascade));
    free(q1(f, "ALTER TABLE birth_registration DROP COLUMN mother%s", cascade));
    assert_int_equal(q1_long(f, columns_sql(f), "birth_registration"), 9 + (long)d->n_fields - 2);
    assert_int_equal(lt_sink_open(f->url, &f->s, &why), LT_OK);

    /* A record of the grown type: the columns come back, old rows keep NULL in them. */
    char *json2 = read_sample("BirthRegistration");
    char *p = strstr(json2, "\"registrationNumber\"");
    assert_non_null(p);
    p = strchr(p + 20, '"');
    assert_non_null(p);
    p[1] = p[1] == '9' ? '8' : '9'; /* another registration number */
    uint8_t *grown = seal_json(f->a, d->name, json2, 0, &len);
    assert_true(put_commit(f, grown, len, 2));
    assert_int_equal(q1_long(f, columns_sql(f), "birth_registration"), 9 + (long)d->n_fields);
    assert_q1(f, "1", "SELECT count(*) FROM birth_registration WHERE note IS NULL");
    assert_q1(f, "1", "SELECT count(*) FROM birth_registration WHERE mother IS NOT NULL");
    assert_int_equal(count_rows(f, "birth_registration"), 2);
    assert_q1(f, "2", "SELECT count(*) FROM birth_registration_current");
    /* The old row now differs from its envelope in the columns it lost: verify says so. */
    struct bad_list bad = {0};
    lt_sink_verify_stats st;
    assert_int_equal(lt_sink_verify_rows(f->s, f->trust, collect_bad, &bad, &st, &why), LT_OK);
    assert_int_equal(st.ok, 1);
    assert_int_equal(bad.n, 1);
    assert_int_equal(bad.code[0], LT_EVALIDATE);
    assert_non_null(strstr(bad.reason[0], "mother"));
    assert_non_null(strstr(bad.reason[0], "note"));
    free(old);
    free(grown);
    free(json);
    free(json2);
}

static void verify_reports_tampered_forged_and_revoked_rows(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    bool pg = f->b == B_PG;
    const char *type = "lienthong.v1.records.PopulationRecord";
    char *json = read_sample("PopulationRecord");
    size_t len = 0;
    uint8_t *env;
    /* Five rows: one untouched, one with an edited column, one with a bit flipped in its
     * envelope, one moved to another message id, one signed with a revoked certificate. */
    char *ids[5];
    for (int i = 0; i < 5; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "\"personalId\": \"07919001234%d\"", i);
        char *j = strdup(json);
        memcpy(strstr(j, "\"personalId\""), buf, strlen(buf));
        env = seal_json(i == 4 ? f->revoked : f->a, type, j, 0, &len);
        assert_true(put_commit(f, env, len, (uint64_t)i + 1));
        free(env);
        free(j);
        ids[i] = q1(f, "SELECT message_id FROM population_record WHERE personal_id = '07919001234%d'", i);
    }
    free(q1(f, "UPDATE population_record SET full_name = 'Kẻ Giả Mạo' WHERE personal_id = '079190012341'"));
    /* Flip one bit (not "set to zero": the byte may already be zero, 1 run in 256). */
    free(q1(f, pg ? "UPDATE population_record SET envelope = set_byte(envelope, length(envelope) - 4, "
                    "get_byte(envelope, length(envelope) - 4) # 1) WHERE personal_id = '079190012342'"
                  : "UPDATE population_record SET envelope = substr(envelope, 1, length(envelope) - 4) "
                    "|| CASE WHEN substr(envelope, length(envelope) - 3, 1) = x'00' THEN x'01' "
                    "ELSE x'00' END || substr(envelope, length(envelope) - 2) "
                    "WHERE personal_id = '079190012342'"));
    free(q1(f, pg ? "UPDATE population_record SET message_id = '00000000-0000-7000-8000-000000000001' "
                    "WHERE personal_id = '079190012343'"
                  : "UPDATE population_record SET message_id = '00000000000070008000000000000001' "
                    "WHERE personal_id = '079190012343'"));
    struct bad_list bad = {0};
    lt_sink_verify_stats st;
    assert_int_equal(lt_sink_verify_rows(f->s, f->trust, collect_bad, &bad, &st, &why), LT_OK);
    assert_int_equal(st.rows, 5);
    assert_int_equal(st.ok, 1);
    assert_int_equal(st.bad, 4);
    bool edited = false, flipped = false, moved = false, revoked = false;
    for (size_t i = 0; i < bad.n && i < 16; i++) {
        if (bad.code[i] == LT_EVALIDATE && strstr(bad.reason[i], "full_name") != NULL)
            edited = true;
        else if (bad.code[i] == LT_EVALIDATE && strstr(bad.reason[i], "message_id") != NULL)
            moved = true;
        else if (bad.code[i] == LT_ECERT_REVOKED)
            revoked = true;
        else if (bad.code[i] != LT_OK)
            flipped = true; /* which check catches the flipped byte depends on where it lands */
    }
    assert_true(edited && flipped && moved && revoked);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    free(json);
}

static void the_current_view_holds_the_latest_record_per_natural_key(void **state)
{
    struct fx *f = fx_of(state);
    const char *type = "lienthong.v1.records.PopulationRecord";
    const ProtobufCMessageDescriptor *d = lt_records_find(type);
    const char *const *key = lt_sink_natural_key(d);
    assert_non_null(key);
    assert_string_equal(key[0], "personal_id");
    assert_null(key[1]);
    for (size_t i = 0; i < lt_records_count(); i++) {
        const char *const *k = lt_sink_natural_key(lt_records_at(i)->desc);
        for (size_t j = 0; k != NULL && k[j] != NULL; j++)
            assert_non_null(
                protobuf_c_message_descriptor_get_field_by_name(lt_records_at(i)->desc, k[j]));
    }
    char *json = read_sample("PopulationRecord");
    size_t len = 0;
    /* The same citizen three times: newest created time wins, whatever the arrival order. */
    static const char *const names[3] = {"Tên Cũ", "Tên Mới Nhất", "Tên Giữa"};
    static const int64_t ages[3] = {-30000, -1000, -20000};
    for (int i = 0; i < 3; i++) {
        char *j = strdup(json);
        char *p = strstr(j, "\"fullName\": \"Nguyễn Thị Thu Hương\"");
        assert_non_null(p);
        char rec[4096];
        snprintf(rec, sizeof rec, "%.*s\"fullName\": \"%s\"%s", (int)(p - j), j, names[i],
                 p + strlen("\"fullName\": \"Nguyễn Thị Thu Hương\""));
        uint8_t *env = seal_json(f->a, type, rec, f->now + ages[i], &len);
        assert_true(put_commit(f, env, len, (uint64_t)i + 1));
        free(env);
        free(j);
    }
    assert_int_equal(count_rows(f, "population_record"), 3);
    assert_q1(f, "1", "SELECT count(*) FROM population_record_current");
    assert_q1(f, "Tên Mới Nhất", "SELECT full_name FROM population_record_current");
    free(json);
}

#define BOTH(fn)                                                                              \
    cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &sqlite_b),                 \
        cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &pg_b)

/* One lt_sink_put_batch in its own transaction; the items' outcomes stay in it. */
static void batch_commit(struct fx *f, lt_sink_item *items, uint8_t **bufs, size_t *lens,
                         lt_env **envs, size_t n)
{
    lt_why why;
    for (size_t i = 0; i < n; i++) {
        if (envs[i] == NULL && lt_env_decode(bufs[i], lens[i], NULL, &envs[i], &why) != LT_OK)
            fail_msg("decode %zu: %s", i, why.msg);
        items[i] = (lt_sink_item){.env = envs[i], .envelope = bufs[i], .len = lens[i],
                                  .meta = {.queue = "q.test", .broker_seq = i + 1,
                                           .received_ms = f->now + 1000}};
    }
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    if (lt_sink_put_batch(f->s, items, n, &why) != LT_OK)
        fail_msg("put_batch: %s", why.msg);
    if (lt_sink_commit(f->s, &why) != LT_OK)
        fail_msg("commit: %s", why.msg);
}

/* 307 birth registrations (PostgreSQL: multi-row INSERTs in one pipeline), two of them
 * repeated (in the same statement, in another one), one stored before, two population
 * records (a second table), an unknown record type, a payload that is not a record, and a
 * broker sequence out of range, all in one batch. */
#define NB 307

static void a_batch_tells_each_row_new_or_present_and_refuses_bad_rows_alone(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    enum { DUP = NB, STORED, POP1, POP2, UNKNOWN, GARBAGE, SEQ, N };
    uint8_t *bufs[N] = {0};
    size_t lens[N] = {0};
    lt_env *envs[N] = {0};
    lt_sink_item *items = calloc(N, sizeof *items);
    assert_non_null(items);
    char *birth = read_sample("BirthRegistration"), *pop = read_sample("PopulationRecord");
    for (size_t i = 0; i < NB; i++)
        bufs[i] = seal_json(f->a, "lienthong.v1.records.BirthRegistration", birth,
                            f->now - (int64_t)i, &lens[i]);
    /* Item 1 repeats item 0 in the same statement, DUP repeats item 100 in another. */
    free(bufs[1]);
    bufs[1] = malloc(lens[0]);
    assert_non_null(bufs[1]);
    memcpy(bufs[1], bufs[0], lens[0]);
    lens[1] = lens[0];
    bufs[DUP] = malloc(lens[100]);
    assert_non_null(bufs[DUP]);
    memcpy(bufs[DUP], bufs[100], lens[100]);
    lens[DUP] = lens[100];
    bufs[STORED] = seal_json(f->a, "lienthong.v1.records.BirthRegistration", birth, 0,
                             &lens[STORED]);
    assert_true(put_commit(f, bufs[STORED], lens[STORED], 1000));
    bufs[POP1] = seal_json(f->a, "lienthong.v1.records.PopulationRecord", pop, 0, &lens[POP1]);
    bufs[POP2] = seal_json(f->a, "lienthong.v1.records.PopulationRecord", pop, 0, &lens[POP2]);
    lt_env_spec spec = {.topic = "79.760.test.sink",
                        .record_type = "lienthong.v1.records.NoSuchRecord",
                        .payload = (const uint8_t *)"", .payload_len = 0};
    assert_int_equal(lt_env_seal(f->a, &spec, &bufs[UNKNOWN], &lens[UNKNOWN], &why), LT_OK);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    spec.record_type = "lienthong.v1.records.BirthRegistration";
    spec.payload = junk;
    spec.payload_len = sizeof junk;
    assert_int_equal(lt_env_seal(f->a, &spec, &bufs[GARBAGE], &lens[GARBAGE], &why), LT_OK);
    bufs[SEQ] = seal_json(f->a, "lienthong.v1.records.BirthRegistration", birth, 0, &lens[SEQ]);

    batch_commit(f, items, bufs, lens, envs, N);
    for (size_t i = 0; i < NB; i++) {
        assert_int_equal(items[i].err, LT_OK);
        assert_int_equal(items[i].inserted, i != 1);
    }
    assert_int_equal(items[DUP].err, LT_OK);
    assert_false(items[DUP].inserted); /* the earlier copy in the batch was the new one */
    assert_int_equal(items[STORED].err, LT_OK);
    assert_false(items[STORED].inserted);
    assert_true(items[POP1].inserted && items[POP2].inserted);
    assert_int_equal(items[UNKNOWN].err, LT_ENOTFOUND);
    assert_non_null(strstr(items[UNKNOWN].why.msg, "NoSuchRecord"));
    assert_false(items[UNKNOWN].inserted);
    assert_int_equal(items[GARBAGE].err, LT_EPROTO);
    assert_int_equal(items[SEQ].err, LT_OK);
    assert_true(items[SEQ].inserted);
    assert_int_equal(count_rows(f, "birth_registration"), NB + 1);
    assert_int_equal(count_rows(f, "population_record"), 2);
    /* Each row holds its own envelope and sequence number. */
    assert_int_equal(q1_long(f, "SELECT count(DISTINCT broker_seq) FROM %s", "birth_registration"),
                     NB + 1);

    /* Everything again, with a sequence out of range: nothing is new, the bad ones are
     * refused again, and the transaction still commits. */
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    items[SEQ].meta.broker_seq = (uint64_t)INT64_MAX + 1;
    assert_int_equal(lt_sink_put_batch(f->s, items, N, &why), LT_OK);
    if (lt_sink_commit(f->s, &why) != LT_OK)
        fail_msg("commit: %s", why.msg);
    for (size_t i = 0; i < N; i++)
        assert_false(items[i].inserted);
    assert_int_equal(items[SEQ].err, LT_EINVAL);
    assert_int_equal(items[UNKNOWN].err, LT_ENOTFOUND);
    assert_int_equal(items[GARBAGE].err, LT_EPROTO);
    assert_int_equal(items[0].err, LT_OK);
    assert_int_equal(count_rows(f, NULL), NB + 1 + 2);

    /* What the batch wrote verifies like any row. */
    lt_sink_verify_stats st = {0};
    assert_int_equal(lt_sink_verify_rows(f->s, f->trust, NULL, NULL, &st, &why), LT_OK);
    assert_int_equal(st.rows, NB + 3);
    assert_int_equal(st.bad, 0);

    /* Outside a transaction, and an empty batch. */
    assert_int_equal(lt_sink_put_batch(f->s, items, 1, &why), LT_EINVAL);
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_sink_put_batch(f->s, items, 0, &why), LT_OK);
    lt_sink_rollback(f->s);

    for (size_t i = 0; i < N; i++) {
        lt_env_destroy(&envs[i]);
        free(bufs[i]);
    }
    free(items);
    free(birth);
    free(pop);
}

/* A row the database itself refuses - here a unique index an operator put on created_ms,
 * which one record of a batch repeats - in the middle of a batch (PostgreSQL: inside a
 * multi-row INSERT): every other row of the batch commits, the refused one is reported
 * alone (LT_EDB_REFUSED, the database's reason). A failure of the database itself (its
 * table dropped under the sink) is no row's fault: LT_EDB for the batch. */
#define NR 20

static void a_row_the_database_refuses_is_reported_alone_and_the_rest_commits(void **state)
{
    struct fx *f = fx_of(state);
    lt_why why;
    enum { BAD = 7, POP = NR, N };
    uint8_t *bufs[N] = {0}, *stored = NULL;
    size_t lens[N] = {0}, slen = 0;
    lt_env *envs[N] = {0};
    lt_sink_item items[N];
    char *birth = read_sample("BirthRegistration"), *pop = read_sample("PopulationRecord");
    const ProtobufCMessageDescriptor *d =
        lt_records_find("lienthong.v1.records.BirthRegistration");
    assert_non_null(d);
    assert_int_equal(lt_sink_ensure_table(f->s, d, &why), LT_OK);
    free(q1(f, "CREATE UNIQUE INDEX birth_created_once ON birth_registration (created_ms)"));
    stored = seal_json(f->a, "lienthong.v1.records.BirthRegistration", birth, f->now - 5, &slen);
    assert_true(put_commit(f, stored, slen, 100));
    for (size_t i = 0; i < NR; i++)
        bufs[i] = seal_json(f->a, "lienthong.v1.records.BirthRegistration", birth,
                            i == BAD ? f->now - 5 : f->now - 100 - (int64_t)i, &lens[i]);
    bufs[POP] = seal_json(f->a, "lienthong.v1.records.PopulationRecord", pop, 0, &lens[POP]);

    batch_commit(f, items, bufs, lens, envs, N);
    for (size_t i = 0; i < N; i++) {
        if (i == BAD)
            continue;
        if (items[i].err != LT_OK)
            fail_msg("item %zu: %s: %s", i, lt_err_name(items[i].err), items[i].why.msg);
        assert_true(items[i].inserted);
    }
    assert_int_equal(items[BAD].err, LT_EDB_REFUSED);
    assert_false(items[BAD].inserted);
    if (strstr(items[BAD].why.msg, "created_ms") == NULL)
        fail_msg("reason: %s", items[BAD].why.msg);
    assert_int_equal(count_rows(f, "birth_registration"), 1 + NR - 1);
    assert_int_equal(count_rows(f, "population_record"), 1);

    /* lt_sink_put says the same, and the transaction is still usable. */
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    lt_sink_meta m = {.queue = "q.test", .broker_seq = 200};
    assert_int_equal(lt_sink_put(f->s, envs[BAD], bufs[BAD], lens[BAD], &m, NULL, &why),
                     LT_EDB_REFUSED);
    assert_non_null(strstr(why.msg, "created_ms"));
    bool ins = true;
    assert_int_equal(lt_sink_put(f->s, envs[0], bufs[0], lens[0], &m, &ins, &why), LT_OK);
    assert_false(ins);
    if (lt_sink_commit(f->s, &why) != LT_OK)
        fail_msg("commit: %s", why.msg);

    /* The table dropped under the sink: the database's failure, the whole batch's. */
    free(q1(f, f->b == B_PG ? "DROP TABLE birth_registration CASCADE"
                            : "DROP TABLE birth_registration"));
    assert_int_equal(lt_sink_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_sink_put_batch(f->s, items, N, &why), LT_EDB);
    lt_sink_rollback(f->s);

    for (size_t i = 0; i < N; i++) {
        lt_env_destroy(&envs[i]);
        free(bufs[i]);
    }
    free(stored);
    free(birth);
    free(pop);
}

int main(void)
{
    static enum backend sqlite_b = B_SQLITE, pg_b = B_PG;
    if (getenv("LT_TEST_PG_URL") == NULL)
        fprintf(stderr, "test_sink: LT_TEST_PG_URL is not set: the PostgreSQL variants skip "
                        "(scripts/test starts a server with scripts/pg-test-server)\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_names_are_the_record_names_in_snake_case),
        cmocka_unit_test(open_refuses_an_unknown_scheme),
        BOTH(every_record_type_gets_a_table_with_a_column_per_field),
        BOTH(a_redelivered_message_changes_nothing),
        BOTH(a_rolled_back_batch_leaves_nothing_and_the_next_one_works),
        BOTH(bad_rows_leave_the_transaction_usable),
        BOTH(a_grown_record_type_adds_its_missing_columns),
        BOTH(verify_reports_tampered_forged_and_revoked_rows),
        BOTH(the_current_view_holds_the_latest_record_per_natural_key),
        BOTH(a_batch_tells_each_row_new_or_present_and_refuses_bad_rows_alone),
        BOTH(a_row_the_database_refuses_is_reported_alone_and_the_rest_commits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
