/*
 * it_sink.c - `lienthong sink` end to end on 127.0.0.1: records published through a real
 * lienthongd land as exactly the expected rows in SQLite and in PostgreSQL; publishing the
 * same envelopes again changes nothing; a sink killed with SIGKILL mid-stream and restarted
 * loses nothing and duplicates nothing; an envelope whose certificate was revoked after it
 * was published is refused (NAKed with the reason) and dead-lettered, never stored; a
 * record the database refuses (a constraint of its table) is dead-lettered with the
 * database's reason while the sink stores the others and keeps running; and
 * `lienthong db-verify` passes on what the sink wrote.
 *
 * PostgreSQL: the server of LT_TEST_PG_URL (scripts/test starts one); without it those tests
 * skip, saying so. Every loop is bounded in count and time.
 */
#include "harness.h"
#include "harness_client.h"

#include "records.h"
#include "sink.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-sink\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 1024\n"
    "  verify_threads: 2\n"
    "  admin:\n"
    "    listen: @ADMIN@\n"
    "    token_file: admin.token\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: ca/crl.pem\n"
    "admins:\n"
    "  - VN:GOV:000.00.00.H29:vanphong\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "  - agency: VN:GOV:000.00.00.H29.770:hotich\n"
    "    publish: [\"79.770.>\"]\n"
    "queues:\n"
    "  - name: it.sink.lite\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.760.lite.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 100\n"
    "    backoff_s: [1]\n"
    "  - name: it.sink.pg\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.760.pg.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 100\n"
    "    backoff_s: [1]\n"
    "  - name: it.sink.revoked\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.770.>\"]\n"
    "    ack_wait_s: 15\n" /* the sink's naks decide, not an expiry on a busy machine */
    "    max_deliver: 2\n"
    "    backoff_s: [0]\n"
    "  - name: it.sink.refuse.lite\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.760.refuselite.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 2\n"
    "    backoff_s: [0]\n"
    "  - name: it.sink.refuse.pg\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.760.refusepg.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 2\n"
    "    backoff_s: [0]\n";

static it_env env;
static lt_signer *quan1;

enum backend { B_SQLITE, B_PG };

struct target {
    enum backend b;
    const char *queue, *topic;
    char url[1024];
    char admin_url[1024], dbname[64];
};

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) ||
        !it_broker_start(&env, 30000))
        return -1;
    quan1 = it_signer(&env, "quan1");
    return quan1 != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&quan1);
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
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

/* The database of a backend: a SQLite file in the test directory, or a new PostgreSQL
 * database. false when PostgreSQL is not available (the caller skips). */
static bool target_open(struct target *t, enum backend b)
{
    memset(t, 0, sizeof *t);
    t->b = b;
    if (b == B_SQLITE) {
        t->queue = "it.sink.lite";
        t->topic = "79.760.lite.khaisinh";
        char path[IT_PATH_MAX];
        snprintf(t->url, sizeof t->url, "sqlite:%s", it_path(&env, "sink.db", path));
        return true;
    }
    t->queue = "it.sink.pg";
    t->topic = "79.760.pg.khaisinh";
    const char *u = getenv("LT_TEST_PG_URL");
    if (u == NULL || u[0] == '\0') {
        print_message("[  SKIPPED ] PostgreSQL: LT_TEST_PG_URL is not set "
                      "(scripts/test starts a server with scripts/pg-test-server)\n");
        return false;
    }
    const char *slash = strrchr(u, '/');
    assert_non_null(slash);
    snprintf(t->dbname, sizeof t->dbname, "lt_it_sink_%ld", (long)getpid());
    snprintf(t->admin_url, sizeof t->admin_url, "%s", u);
    snprintf(t->url, sizeof t->url, "%.*s/%s", (int)(slash - u), u, t->dbname);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
    pg_admin(t->admin_url, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", t->dbname);
    pg_admin(t->admin_url, sql);
    return true;
}

static void target_close(struct target *t)
{
    if (t->dbname[0] != '\0') {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->dbname);
        pg_admin(t->admin_url, sql);
    }
}

/* Rows of birth_registration, distinct registration numbers (= record numbers) among them,
 * and their min and max, read straight through the driver: what an operator's query sees. */
struct rows {
    uint64_t n, distinct, min, max;
};

static struct rows rows_of(const struct target *t)
{
    static const char sql[] =
        "SELECT count(*), count(DISTINCT registration_number), "
        "coalesce(min(CAST(registration_number AS bigint)), 0), "
        "coalesce(max(CAST(registration_number AS bigint)), 0) FROM birth_registration";
    struct rows r = {0};
    uint64_t v[4] = {0};
    if (t->b == B_PG) {
        PGconn *c = PQconnectdb(t->url);
        if (PQstatus(c) != CONNECTION_OK)
            fail_msg("connect: %s", PQerrorMessage(c));
        PGresult *res = PQexec(c, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            for (int i = 0; i < 4; i++)
                v[i] = strtoull(PQgetvalue(res, 0, i), NULL, 10);
        /* else: no table yet, nothing stored */
        PQclear(res);
        PQfinish(c);
    } else {
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(t->url + 7, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(db, 10000);
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                for (int i = 0; i < 4; i++)
                    v[i] = (uint64_t)sqlite3_column_int64(st, i);
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
    }
    r.n = v[0], r.distinct = v[1], r.min = v[2], r.max = v[3];
    return r;
}

/* Publish records first..first+n-1 on topic, pipelined; every answer an ack. The envelopes
 * are kept in *keep (when not NULL) to publish them again. */
static void publish_range(const char *topic, uint64_t first, size_t n, uint8_t ***keep,
                          size_t **keep_len, bool expect_dup)
{
    lt_client *c = it_client(&env, NULL, 0, 0);
    assert_non_null(c);
    it_answer *a = calloc(n, sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        uint8_t *e = keep != NULL && (*keep)[i] != NULL ? (*keep)[i] : NULL;
        if (e == NULL)
            e = it_seal(quan1, topic, first + i, 64, &len, NULL);
        else
            len = (*keep_len)[i];
        assert_non_null(e);
        assert_int_equal(lt_client_publish(c, e, len, it_answer_cb, &a[i], NULL), LT_OK);
        if (keep != NULL) {
            (*keep)[i] = e;
            (*keep_len)[i] = len;
        } else {
            free(e);
        }
    }
    assert_int_equal(lt_client_flush(c, 60000), LT_OK);
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i].done);
        if (a[i].code != LT_OK)
            fail_msg("record %zu: %s: %s", i, lt_err_name(a[i].code), a[i].reason);
        assert_int_equal(a[i].duplicate, expect_dup);
    }
    free(a);
    lt_client_close(&c);
}

static int run_sink(const struct target *t, const char *out, const char *count,
                    const char *timeout, const char *batch)
{
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    if (count != NULL)
        return it_cli(&env, out, 120000, "sink", "-c", cfg, "-q", t->queue, "--db", t->url,
                      "-n", count, "--timeout", timeout, "--batch", batch, (char *)NULL);
    return it_cli(&env, out, 120000, "sink", "-c", cfg, "-q", t->queue, "--db", t->url,
                  "--timeout", timeout, "--batch", batch, (char *)NULL);
}

/* `lienthong sink` on t's queue in the background, running until stopped. */
static pid_t spawn_sink(const struct target *t, const char *out, const char *batch)
{
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    pid_t pid = it_cli_spawn(&env, out, "sink", "-c", cfg, "-q", t->queue, "--db", t->url,
                             "--batch", batch, (char *)NULL);
    assert_true(pid > 0);
    return pid;
}

static void assert_db_verifies(const struct target *t, uint64_t rows)
{
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    int rc = it_cli(&env, "dbverify.out", 120000, "db-verify", "--db", t->url, "-c", cfg,
                    (char *)NULL);
    char *err = it_read_file(&env, "dbverify.out.err", NULL);
    char want[64];
    snprintf(want, sizeof want, "%llu verified, 0 failed", (unsigned long long)rows);
    if (rc != 0 || err == NULL || strstr(err, want) == NULL)
        fail_msg("db-verify exited %d: %s", rc, err ? err : "(no output)");
    free(err);
}

#define N1 1000
#define N2 6000

/* The whole story for one backend. */
static void sink_story(enum backend b)
{
    struct target t;
    if (!target_open(&t, b)) {
        skip();
        return;
    }
    /* 1. N1 records -> exactly N1 rows, numbered 1..N1. */
    uint8_t **kept = calloc(N1, sizeof *kept);
    size_t *kept_len = calloc(N1, sizeof *kept_len);
    assert_true(kept && kept_len);
    publish_range(t.topic, 1, N1, &kept, &kept_len, false);
    assert_int_equal(run_sink(&t, "sink1.out", "1000", "30", "128"), 0);
    struct rows r = rows_of(&t);
    assert_int_equal(r.n, N1);
    assert_int_equal(r.distinct, N1);
    assert_int_equal(r.min, 1);
    assert_int_equal(r.max, N1);
    assert_db_verifies(&t, N1);

    /* 2. The same envelopes again (same message ids): the broker acks them as duplicates,
     * a sink run finds nothing new, the table is unchanged. */
    publish_range(t.topic, 1, N1, &kept, &kept_len, true);
    assert_int_equal(run_sink(&t, "sink2.out", NULL, "3", "128"), 0);
    r = rows_of(&t);
    assert_int_equal(r.n, N1);
    assert_int_equal(r.distinct, N1);

    /* 3. N2 more; the sink is killed (SIGKILL) mid-stream, then restarted. Small batches so
     * the kill lands between commits. */
    publish_range(t.topic, N1 + 1, N2, NULL, NULL, false);
    pid_t pid = spawn_sink(&t, "sink3.out", "8");
    int64_t deadline = it_now_ms() + 60000;
    uint64_t at_kill = 0;
    while (it_now_ms() < deadline) {
        at_kill = rows_of(&t).n;
        if (at_kill >= N1 + 200)
            break;
        usleep(5000); /* polling the database for progress, bounded by the deadline */
    }
    kill(pid, SIGKILL);
    it_wait(pid, 10000);
    uint64_t after_kill = rows_of(&t).n;
    if (after_kill >= N1 + N2)
        fail_msg("the sink finished (%llu rows) before it was killed: nothing was tested",
                 (unsigned long long)after_kill);
    assert_true(after_kill >= N1 + 200);
    /* Restart: what was unacked comes back (ack_wait 2 s); rows committed but not acked
     * before the kill are delivered again and found present. The restarted sink runs until
     * the table holds every record (bounded), then stops on SIGTERM like a service. */
    pid = spawn_sink(&t, "sink4.out", "256");
    deadline = it_now_ms() + 180000;
    while (it_now_ms() < deadline && rows_of(&t).n < N1 + N2)
        usleep(20000); /* polling the database for progress, bounded by the deadline */
    kill(pid, SIGTERM);
    assert_int_equal(it_wait(pid, 30000), 0);
    r = rows_of(&t);
    assert_int_equal(r.n, N1 + N2);
    assert_int_equal(r.distinct, N1 + N2);
    assert_int_equal(r.min, 1);
    assert_int_equal(r.max, N1 + N2);
    assert_db_verifies(&t, N1 + N2);
    print_message("it_sink: %s: killed at %llu rows, %llu after the kill, %llu after restart\n",
                  b == B_PG ? "postgresql" : "sqlite", (unsigned long long)at_kill,
                  (unsigned long long)after_kill, (unsigned long long)r.n);

    for (size_t i = 0; i < N1; i++)
        free(kept[i]);
    free(kept);
    free(kept_len);
    target_close(&t);
}

static void sqlite_gets_exactly_the_rows_once_even_across_a_kill(void **state)
{
    (void)state;
    sink_story(B_SQLITE);
}

static void postgresql_gets_exactly_the_rows_once_even_across_a_kill(void **state)
{
    (void)state;
    sink_story(B_PG);
}

static void an_envelope_revoked_after_publishing_is_refused_and_dead_lettered(void **state)
{
    (void)state;
    lt_signer *quan3 = it_signer(&env, "quan3");
    assert_non_null(quan3);
    lt_client *c = it_client(&env, NULL, 0, 0);
    assert_non_null(c);
    for (uint64_t i = 1; i <= 3; i++) {
        size_t len = 0;
        uint8_t *e = it_seal(quan3, "79.770.hotich.khaisinh", i, 16, &len, NULL);
        it_answer a = {0};
        assert_true(it_publish_wait(c, e, len, &a, 10000));
        assert_int_equal(a.code, LT_OK);
        free(e);
    }
    lt_client_close(&c);
    lt_signer_destroy(&quan3);
    /* Revoked now: the sink's trust (dancu.yaml -> ca/crl.pem) sees it, the broker has not
     * reloaded and does not matter any more. */
    assert_true(it_revoke(&env, "quan3"));

    char db[IT_PATH_MAX], url[IT_PATH_MAX + 8], cfg[IT_PATH_MAX];
    snprintf(url, sizeof url, "sqlite:%s", it_path(&env, "revoked.db", db));
    it_path(&env, "agencies/dancu.yaml", cfg);
    /* max_deliver 2: refused twice, then dead-lettered. */
    int rc = it_cli(&env, "revoked.out", 60000, "sink", "-c", cfg, "-q", "it.sink.revoked",
                    "--db", url, "-n", "6", "--timeout", "10", (char *)NULL);
    char *err = it_read_file(&env, "revoked.out.err", NULL);
    assert_non_null(err);
    if (rc != 0 || strstr(err, "CERT_REVOKED") == NULL || strstr(err, "6 refused") == NULL)
        fail_msg("sink exited %d: %s", rc, err);
    assert_non_null(strstr(err, "0 rows written"));
    free(err);
    /* All three are in the queue's DLQ, with the sink's reason. */
    int64_t deadline = it_now_ms() + 30000; /* nak back-offs under ASan on a shared machine */
    char *out = NULL;
    while (it_now_ms() < deadline) {
        free(out);
        assert_int_equal(it_cli(&env, "dlq.out", 30000, "dlq", "-c", cfg, "ls",
                                "it.sink.revoked", "--json", (char *)NULL),
                         0);
        out = it_read_file(&env, "dlq.out", NULL);
        assert_non_null(out);
        size_t hits = 0;
        for (const char *p = out; (p = strstr(p, "CERT_REVOKED")) != NULL; p++)
            hits++;
        if (hits >= 3)
            break;
        usleep(100000); /* the broker moves the last one after its nak: bounded wait */
    }
    size_t hits = 0;
    for (const char *p = out; (p = strstr(p, "CERT_REVOKED")) != NULL; p++)
        hits++;
    if (hits < 3)
        fail_msg("DLQ of it.sink.revoked: %s", out);
    free(out);
}

/* Occurrences of needle in hay. */
static size_t count_of(const char *hay, const char *needle)
{
    size_t hits = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        hits++;
    return hits;
}

#define NREFUSE 40
#define REFUSED_NUMBER "13"

/* The operator's table carries a CHECK constraint that record 13 breaks: the sink NAKs it
 * with the database's reason on each delivery (max_deliver 2: then it is dead-lettered),
 * stores every other record, and keeps running. */
static void refuse_story(enum backend b)
{
    struct target t;
    if (!target_open(&t, b)) {
        skip();
        return;
    }
    t.queue = b == B_PG ? "it.sink.refuse.pg" : "it.sink.refuse.lite";
    t.topic = b == B_PG ? "79.760.refusepg.khaisinh" : "79.760.refuselite.khaisinh";
    if (b == B_SQLITE) {
        char path[IT_PATH_MAX];
        snprintf(t.url, sizeof t.url, "sqlite:%s", it_path(&env, "refuse.db", path));
        /* SQLite adds no CHECK to a table: the operator created it with one (the sink adds
         * the columns it lacks). */
        sqlite3 *db = NULL;
        char *msg = NULL;
        assert_int_equal(sqlite3_open(t.url + 7, &db), SQLITE_OK);
        if (sqlite3_exec(db,
                         "CREATE TABLE birth_registration (message_id TEXT PRIMARY KEY, "
                         "source_agency TEXT NOT NULL, topic TEXT NOT NULL, record_type TEXT "
                         "NOT NULL, created_ms INTEGER NOT NULL, queue TEXT NOT NULL, "
                         "broker_seq INTEGER NOT NULL, received_ms INTEGER NOT NULL, "
                         "envelope BLOB NOT NULL, registration_number TEXT CONSTRAINT "
                         "registration_not_13 CHECK (registration_number <> '13'))",
                         NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("create: %s", msg);
        sqlite3_close(db);
    } else {
        lt_sink *s = NULL;
        lt_why why;
        if (lt_sink_open(t.url, &s, &why) != LT_OK ||
            lt_sink_ensure_table(s, lt_records_find("lienthong.v1.records.BirthRegistration"),
                                 &why) != LT_OK)
            fail_msg("%s: %s", t.url, why.msg);
        lt_sink_close(&s);
        pg_admin(t.url, "ALTER TABLE birth_registration ADD CONSTRAINT registration_not_13 "
                        "CHECK (registration_number <> '13')");
    }
    publish_range(t.topic, 1, NREFUSE, NULL, NULL, false);

    pid_t pid = spawn_sink(&t, "refuse.out", "16");
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    /* Until every other record is stored and the refused one is in the DLQ (bounded). */
    int64_t deadline = it_now_ms() + 60000;
    char *dlq = NULL;
    bool rows_ok = false, dlq_ok = false;
    while (it_now_ms() < deadline && !(rows_ok && dlq_ok)) {
        rows_ok = rows_of(&t).n == NREFUSE - 1;
        free(dlq);
        assert_int_equal(it_cli(&env, "refuse-dlq.out", 30000, "dlq", "-c", cfg, "ls", t.queue,
                                "--json", (char *)NULL),
                         0);
        dlq = it_read_file(&env, "refuse-dlq.out", NULL);
        assert_non_null(dlq);
        dlq_ok = count_of(dlq, "registration_not_13") >= 1;
        if (!(rows_ok && dlq_ok))
            usleep(200000); /* the sink and the broker at work: bounded by the deadline */
    }
    /* Still running: a refused row is no reason to stop. */
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    char *err = it_read_file(&env, "refuse.out.err", NULL);
    if (done != 0)
        fail_msg("the sink exited (status %d): %s", status, err ? err : "");
    kill(pid, SIGTERM);
    assert_int_equal(it_wait(pid, 30000), 0);
    free(err);
    err = it_read_file(&env, "refuse.out.err", NULL);
    assert_non_null(err);
    if (!rows_ok || !dlq_ok)
        fail_msg("%llu rows, DLQ %s; sink: %s", (unsigned long long)rows_of(&t).n, dlq, err);
    /* Every record but 13, once. */
    struct rows r = rows_of(&t);
    assert_int_equal(r.n, NREFUSE - 1);
    assert_int_equal(r.distinct, NREFUSE - 1);
    assert_int_equal(r.min, 1);
    assert_int_equal(r.max, NREFUSE);
    /* Exactly one message dead-lettered, with the database's reason (the constraint's name,
     * as SQLite and PostgreSQL both say it), and it is record 13; the sink said why. */
    assert_int_equal(count_of(dlq, "registration_not_13"), 1);
    assert_non_null(strstr(dlq, "DATABASE_REFUSED"));
    assert_non_null(strstr(err, "DATABASE_REFUSED"));
    assert_non_null(strstr(err, "registration_not_13"));
    free(err);
    free(dlq);
    assert_db_verifies(&t, NREFUSE - 1);
    target_close(&t);
}

static void sqlite_a_row_the_database_refuses_is_dead_lettered_and_the_sink_goes_on(void **state)
{
    (void)state;
    refuse_story(B_SQLITE);
}

static void postgresql_a_row_the_database_refuses_is_dead_lettered_and_the_sink_goes_on(
    void **state)
{
    (void)state;
    refuse_story(B_PG);
}

int main(void)
{
    if (getenv("LT_TEST_PG_URL") == NULL)
        fprintf(stderr, "it_sink: LT_TEST_PG_URL is not set: the PostgreSQL test skips "
                        "(scripts/test starts a server with scripts/pg-test-server)\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_gets_exactly_the_rows_once_even_across_a_kill),
        cmocka_unit_test(postgresql_gets_exactly_the_rows_once_even_across_a_kill),
        cmocka_unit_test(an_envelope_revoked_after_publishing_is_refused_and_dead_lettered),
        cmocka_unit_test(sqlite_a_row_the_database_refuses_is_dead_lettered_and_the_sink_goes_on),
        cmocka_unit_test(
            postgresql_a_row_the_database_refuses_is_dead_lettered_and_the_sink_goes_on),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
