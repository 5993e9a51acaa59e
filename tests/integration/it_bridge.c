/*
 * it_bridge.c - `lienthong bridge` links a lienthongd to a 3-node NATS JetStream cluster
 * (issue 11, docs/national.md).
 *
 * Three nats-server processes (JetStream, file store, one cluster) on free 127.0.0.1 ports,
 * each waited for on its monitoring port's /healthz (which answers 200 once JetStream has a
 * meta leader). `lienthong bridge out` forwards the queue national.out into the R3 stream
 * NATIONAL; the stream's content is read back with `lienthong bridge dump` (one JSON line per
 * message: its Nats-Msg-Id among them) and must hold every record once:
 *   - 200 records with the cluster whole;
 *   - 200 more after one node is killed (-9): the bridge carries on;
 *   - 100 more with two nodes killed: nothing is acked, the queue keeps all 100; with the
 *     nodes back they all arrive, once;
 *   - 300 more with lienthongd killed (-9) mid-flow and restarted: no duplicate in the stream;
 * then the dump verifies with the original agency's signature (`lienthong verify`), and
 * `lienthong bridge in` carries the stream back into lienthongd (all duplicates there);
 * `lienthong sink --nats` writes the stream's 800 records into SQLite, once each across a
 * kill -9 of the sink; and forged messages put into the stream with libnats (a signed
 * envelope changed after signing, bytes that are no envelope) are terminated by `bridge in`
 * and by the sink with the code named, the good ones around them stored, both going on.
 * Skipped when nats-server is not installed.
 */
#include "harness.h"
#include "harness_client.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define NATS_SERVER "/usr/sbin/nats-server"
#define NODES 3

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-bridge\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 256\n"
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
                                  "queues:\n"
                                  "  - name: national.out\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.760.national.>\"]\n"
                                  "    ack_wait_s: 30\n"
                                  "    max_deliver: 1000\n"
                                  "  - name: back.in\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.760.back.>\"]\n";

typedef struct node {
    unsigned client, cluster, monitor;
    pid_t pid;
} node;

static it_env env;
static node nodes[NODES];
static char urls[256];
static pid_t bridge_pid;
static uint64_t published; /* records published so far (numbered 1..published) */

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET path from 127.0.0.1:port; true when the answer is 200. */
static bool http_ok(unsigned port, const char *path)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return false;
    struct timeval tv = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[256];
    bool ok = false;
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
        int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(s, buf, (size_t)n) == n) {
            ssize_t r = read(s, buf, sizeof buf - 1);
            if (r > 12) {
                buf[r] = '\0';
                ok = strncmp(buf + 9, "200", 3) == 0;
            }
        }
    }
    close(s);
    return ok;
}

static bool node_start(int i)
{
    char dir[IT_PATH_MAX], out[IT_PATH_MAX], rel[32], p[16], m[16], cl[64], routes[160],
        name[16];
    snprintf(rel, sizeof rel, "nats%d", i);
    it_path(&env, rel, dir);
    snprintf(rel, sizeof rel, "nats%d.log", i);
    it_path(&env, rel, out);
    snprintf(p, sizeof p, "%u", nodes[i].client);
    snprintf(m, sizeof m, "%u", nodes[i].monitor);
    snprintf(cl, sizeof cl, "nats://127.0.0.1:%u", nodes[i].cluster);
    snprintf(name, sizeof name, "n%d", i);
    routes[0] = '\0';
    for (int j = 0; j < NODES; j++) {
        if (j == i)
            continue;
        size_t l = strlen(routes);
        snprintf(routes + l, sizeof routes - l, "%snats://127.0.0.1:%u", l ? "," : "",
                 nodes[j].cluster);
    }
    char *argv[] = {NATS_SERVER, "-a", "127.0.0.1", "-p", p, "-m", m, "-js", "-sd", dir,
                    "-n", name, "--cluster_name", "lt-national", "--cluster", cl, "--routes",
                    routes, NULL};
    nodes[i].pid = it_spawn_prog(argv, out);
    return nodes[i].pid > 0;
}

/* Wait until every running node answers /healthz 200 (JetStream up, meta leader known). */
static bool cluster_ready(int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (it_now_ms() < end) {
        bool all = true;
        for (int i = 0; i < NODES; i++)
            if (nodes[i].pid > 0 && !http_ok(nodes[i].monitor, "/healthz"))
                all = false;
        if (all)
            return true;
        nap_ms(100);
    }
    return false;
}

static void node_kill(int i)
{
    if (nodes[i].pid > 0) {
        kill(nodes[i].pid, SIGKILL);
        it_wait(nodes[i].pid, 5000);
    }
    nodes[i].pid = 0;
}

/* Publish records published+1 .. published+n as the district's civil registry. */
static void publish(uint64_t n)
{
    lt_signer *a = it_signer(&env, "quan1");
    assert_non_null(a);
    lt_client *c = it_client(&env, NULL, 256, 20000);
    assert_non_null(c);
    it_answer *ans = calloc(n, sizeof *ans);
    assert_non_null(ans);
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *e = it_seal(a, "79.760.national.khaisinh", published + i + 1, 0, &len, NULL);
        assert_non_null(e);
        assert_int_equal(lt_client_publish(c, e, len, it_answer_cb, &ans[i], NULL), LT_OK);
        free(e);
    }
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    for (uint64_t i = 0; i < n; i++) {
        assert_true(ans[i].done);
        assert_int_equal(ans[i].code, LT_OK);
        assert_false(ans[i].duplicate);
    }
    published += n;
    free(ans);
    lt_client_close(&c);
    lt_signer_destroy(&a);
}

/* The stream's messages, read with `lienthong bridge dump` into dir/national.env: their
 * number, or -1 when the dump failed (no quorum) or a Nats-Msg-Id occurs twice (*dup). */
static long stream_count(bool *dup)
{
    char envf[IT_PATH_MAX];
    it_path(&env, "national.env", envf);
    *dup = false;
    if (it_cli(&env, "dump.json", 20000, "bridge", "dump", "--nats", urls, "--timeout", "2000",
               "--stream", "NATIONAL", "-o", envf, NULL) != 0)
        return -1;
    size_t len = 0;
    char *text = it_read_file(&env, "dump.json", &len);
    if (text == NULL)
        return -1;
    json_object *seen = json_object_new_object();
    long n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_object *o = json_tokener_parse(line), *id = NULL;
        if (o != NULL && json_object_object_get_ex(o, "msg_id", &id)) {
            const char *s = json_object_get_string(id);
            if (json_object_object_get_ex(seen, s, NULL))
                *dup = true;
            json_object_object_add(seen, s, json_object_new_boolean(1));
            n++;
        }
        json_object_put(o);
    }
    json_object_put(seen);
    free(text);
    return *dup ? -1 : n;
}

static int64_t queue_depth_of(const char *queue)
{
    lt_signer *adm = it_signer(&env, "vanphong");
    lt_client *c = it_client(&env, adm, 0, 0);
    json_object *root = NULL;
    json_object *q = c != NULL ? it_queue_info(c, queue, &root) : NULL;
    int64_t d = q != NULL ? it_json_int(q, "depth") : -1;
    json_object_put(root);
    lt_client_close(&c);
    lt_signer_destroy(&adm);
    return d;
}

static int64_t queue_depth(void)
{
    return queue_depth_of("national.out");
}

/* Wait until the stream holds exactly want messages, each once. */
static void stream_wait(long want, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    long n = -1;
    bool dup = false;
    while (it_now_ms() < end) {
        n = stream_count(&dup);
        assert_false(dup);
        if (n >= want)
            break;
        nap_ms(200);
    }
    if (n != want) /* where the rest is: still in the queue, or held by the bridge */
        fprintf(stderr, "it_bridge: stream %ld of %ld, queue depth %lld\n", n, want,
                (long long)queue_depth());
    assert_int_equal(n, want);
}

static bool log_has(const char *rel, const char *needle, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (it_now_ms() < end) {
        char *t = it_read_file(&env, rel, NULL);
        bool has = t != NULL && strstr(t, needle) != NULL;
        free(t);
        if (has)
            return true;
        nap_ms(100);
    }
    return false;
}

static bool bridge_log_has(const char *needle, int timeout_ms)
{
    return log_has("bridge.out.err", needle, timeout_ms);
}

/* Start `lienthong bridge out` (stderr appended to by each run: out_rel differs). */
static void bridge_start(const char *out_rel)
{
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    bridge_pid = it_cli_spawn(&env, out_rel, "bridge", "out", "-c", cfg, "-q", "national.out",
                              "--nats", urls, "--stream", "NATIONAL", "--subject", "national",
                              "--create-stream", "--replicas", "3", "--dup-window", "600",
                              "--credit", "64", "--timeout", "2000", NULL);
    assert_true(bridge_pid > 0);
}

static void the_bridge_forwards_every_record_once_into_the_r3_stream(void **state)
{
    (void)state;
    bridge_start("bridge.out");
    publish(200);
    stream_wait(200, 30000);
}

static void one_node_lost_loses_nothing_and_the_bridge_carries_on(void **state)
{
    (void)state;
    node_kill(2);
    publish(200);
    stream_wait(400, 40000);
}

static void two_nodes_lost_stop_the_bridge_and_it_resumes_when_they_return(void **state)
{
    (void)state;
    node_kill(1);
    publish(100);
    /* no quorum: JetStream stores nothing, the bridge acks nothing, the records wait */
    assert_true(bridge_log_has("JetStream did not store a record", 30000));
    assert_int_equal(queue_depth(), 100);
    /* (reading the stream may still work for a moment: a leader steps down lazily) */
    assert_true(node_start(1));
    assert_true(node_start(2));
    assert_true(cluster_ready(30000));
    stream_wait(500, 60000);
    assert_true(bridge_log_has("JetStream acks again", 10000));
}

static void a_broker_killed_mid_flow_leaves_no_duplicate_in_the_stream(void **state)
{
    (void)state;
    publish(300);
    it_broker_kill9(&env);
    assert_true(it_broker_start(&env, 30000));
    /* The running bridge carries on by itself with the restarted broker (once, its late
     * acks of what the dead broker had delivered leaked the new subscription's credit, and
     * it stopped after one credit's worth); JetStream drops the resends as duplicates. */
    stream_wait(800, 60000);
    int64_t end = it_now_ms() + 30000;
    while (queue_depth() != 0 && it_now_ms() < end)
        nap_ms(200);
    assert_int_equal(queue_depth(), 0);
}

static void records_read_back_verify_and_come_back_through_bridge_in(void **state)
{
    (void)state;
    bool dup = false;
    assert_int_equal(stream_count(&dup), 800);
    char envf[IT_PATH_MAX], cfg[IT_PATH_MAX];
    it_path(&env, "national.env", envf);
    it_path(&env, "agencies/dancu.yaml", cfg);
    assert_int_equal(it_cli(&env, "verify.json", 30000, "verify", "-c", cfg, envf, NULL), 0);
    char *v = it_read_file(&env, "verify.json", NULL);
    assert_non_null(v);
    assert_null(strstr(v, "\"rejected\""));
    assert_non_null(strstr(v, "\"index\":799"));
    free(v);
    /* the way back: every message of the stream published to lienthongd, which knows them
     * all already (duplicates are a success), and each acked in JetStream */
    assert_int_equal(it_cli(&env, "bridge.in", 60000, "bridge", "in", "-c", cfg, "--nats", urls,
                            "--stream", "NATIONAL", "--subject", "national.>", "--durable",
                            "back", "-n", "800", "--idle", "10", NULL),
                     0);
    char *t = it_read_file(&env, "bridge.in.err", NULL);
    assert_non_null(t);
    assert_non_null(strstr(t, "800 stored in lienthong, 0 refused"));
    free(t);
}

/* The database of the sink tests: rows of birth_registration, distinct registration numbers
 * among them (= record numbers), their min and max (all 0: no table yet). */
struct rows {
    int64_t n, distinct, min, max;
};

static struct rows rows_of(const char *db_rel)
{
    char path[IT_PATH_MAX];
    it_path(&env, db_rel, path);
    struct rows r = {0};
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db,
                               "SELECT count(*), count(DISTINCT registration_number), "
                               "coalesce(min(CAST(registration_number AS integer)), 0), "
                               "coalesce(max(CAST(registration_number AS integer)), 0) "
                               "FROM birth_registration",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            r = (struct rows){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                              sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)};
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return r;
}

/* Start `lienthong sink --nats` on the stream NATIONAL (filter subject, durable) into
 * sqlite:dir/db_rel, out_rel for its output. */
static pid_t sink_spawn(const char *out_rel, const char *subject, const char *durable,
                        const char *db_rel, const char *batch, const char *count)
{
    char cfg[IT_PATH_MAX], db[IT_PATH_MAX + 8], path[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    it_path(&env, db_rel, path);
    snprintf(db, sizeof db, "sqlite:%s", path);
    pid_t pid = count == NULL
                    ? it_cli_spawn(&env, out_rel, "sink", "-c", cfg, "--nats", urls, "--stream",
                                   "NATIONAL", "--subject", subject, "--durable", durable,
                                   "--nats-timeout", "1000", "--db", db, "--batch", batch, NULL)
                    : it_cli_spawn(&env, out_rel, "sink", "-c", cfg, "--nats", urls, "--stream",
                                   "NATIONAL", "--subject", subject, "--durable", durable,
                                   "--nats-timeout", "1000", "--db", db, "--batch", batch, "-n",
                                   count, NULL);
    assert_true(pid > 0);
    return pid;
}

static void the_sink_reads_the_stream_into_sqlite_once_across_a_kill_9(void **state)
{
    (void)state;
    /* small batches, so the kill lands between commits */
    pid_t pid = sink_spawn("sink.1", "national.79.760.national.>", "db", "national.db", "8",
                           NULL);
    int64_t end = it_now_ms() + 60000;
    int64_t at_kill = 0;
    while (it_now_ms() < end && (at_kill = rows_of("national.db").n) < 200)
        nap_ms(5);
    kill(pid, SIGKILL);
    it_wait(pid, 10000);
    int64_t after_kill = rows_of("national.db").n;
    if (after_kill >= 800)
        fail_msg("the sink stored all (%lld) before it was killed: nothing was tested",
                 (long long)after_kill);
    assert_true(after_kill >= 200);
    /* restarted on the same durable: what was unacked comes back (after 1 + 5 s); what was
     * committed but not acked before the kill is found present, not stored twice */
    pid = sink_spawn("sink.2", "national.79.760.national.>", "db", "national.db", "256", NULL);
    end = it_now_ms() + 60000;
    while (it_now_ms() < end && rows_of("national.db").n < 800)
        nap_ms(50);
    kill(pid, SIGTERM);
    assert_int_equal(it_wait(pid, 15000), 0);
    struct rows r = rows_of("national.db");
    assert_int_equal(r.n, 800);
    assert_int_equal(r.distinct, 800);
    assert_int_equal(r.min, 1);
    assert_int_equal(r.max, 800);
    char *t = it_read_file(&env, "sink.2.err", NULL);
    assert_non_null(t);
    assert_non_null(strstr(t, " 0 refused"));
    free(t);
    print_message("it_bridge: sink killed at %lld rows, %lld after the kill, %lld at the end\n",
                  (long long)at_kill, (long long)after_kill, (long long)r.n);
    /* what the sink wrote verifies again, from the database */
    char cfg[IT_PATH_MAX], db[IT_PATH_MAX + 8], path[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    it_path(&env, "national.db", path);
    snprintf(db, sizeof db, "sqlite:%s", path);
    assert_int_equal(it_cli(&env, "dbverify", 60000, "db-verify", "-c", cfg, "--db", db, NULL),
                     0);
}

/* Publish bytes[0..len) into the stream NATIONAL on subject with libnats directly, as
 * anyone with NATS access could: with Nats-Msg-Id msg_id and no Lienthong-* headers. */
static void js_put(jsCtx *js, const char *subject, const void *bytes, size_t len,
                   const char *msg_id)
{
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, subject, NULL, bytes, (int)len), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id), NATS_OK);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_PublishMsg(&pa, js, m, NULL, &jerr);
    if (s != NATS_OK)
        fprintf(stderr, "it_bridge: js_PublishMsg: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
    assert_int_equal(s, NATS_OK);
    assert_false(pa->Duplicate);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
}

/* A good record numbered n on 79.760.back.khaisinh, into the stream (not through lienthong). */
static void js_put_good(jsCtx *js, lt_signer *a, uint64_t n)
{
    size_t len;
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    uint8_t *e = it_seal(a, "79.760.back.khaisinh", n, 0, &len, id);
    assert_non_null(e);
    char hex[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    for (size_t i = 0; i < LT_ENV_MESSAGE_ID_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    js_put(js, "national.79.760.back.khaisinh", e, len, hex);
    free(e);
}

static void bridge_in_terminates_a_tampered_envelope_and_carries_on(void **state)
{
    (void)state;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsOptions *no = NULL;
    assert_int_equal(natsOptions_Create(&no), NATS_OK);
    char u[NODES][64];
    const char *servers[NODES];
    for (int i = 0; i < NODES; i++) {
        snprintf(u[i], sizeof u[i], "nats://127.0.0.1:%u", nodes[i].client);
        servers[i] = u[i];
    }
    assert_int_equal(natsOptions_SetServers(no, servers, NODES), NATS_OK);
    natsStatus st = natsConnection_Connect(&nc, no);
    if (st != NATS_OK)
        fprintf(stderr, "it_bridge: connect %s: %s: %s\n", urls, natsStatus_GetText(st),
                nats_GetLastError(NULL));
    assert_int_equal(st, NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    lt_signer *a = it_signer(&env, "quan1");
    assert_non_null(a);
    /* good, tampered (one byte of the record's note changed after signing), good, bytes
     * that are no envelope at all, good */
    js_put_good(js, a, 900001);
    size_t len;
    uint8_t *bad = it_seal(a, "79.760.back.khaisinh", 900002, 64, &len, NULL);
    assert_non_null(bad);
    uint8_t *x = memmem(bad, len, "xxxxxxxxxxxxxxxx", 16);
    assert_non_null(x);
    x[8] = 'y';
    js_put(js, "national.79.760.back.khaisinh", bad, len, "tampered-900002");
    free(bad);
    js_put_good(js, a, 900003);
    js_put(js, "national.79.760.back.khaisinh", "not an envelope", 15, "garbage-1");
    js_put_good(js, a, 900004);

    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/dancu.yaml", cfg);
    pid_t in = it_cli_spawn(&env, "bridge.back", "bridge", "in", "-c", cfg, "--nats", urls,
                            "--stream", "NATIONAL", "--subject", "national.79.760.back.>",
                            "--durable", "refusals", "--timeout", "2000", NULL);
    assert_true(in > 0);
    /* the tampered one: the broker's code for a payload that is not what was signed */
    assert_true(log_has("bridge.back.err", "refused by lienthong: BAD_PAYLOAD_HASH", 30000));
    assert_true(log_has("bridge.back.err", "refused by lienthong: MALFORMED", 30000));
    int64_t end = it_now_ms() + 30000;
    while (queue_depth_of("back.in") < 3 && it_now_ms() < end)
        nap_ms(200);
    assert_int_equal(queue_depth_of("back.in"), 3);
    /* it keeps running: records put after the refusals arrive too */
    js_put_good(js, a, 900005);
    js_put_good(js, a, 900006);
    end = it_now_ms() + 30000;
    while (queue_depth_of("back.in") < 5 && it_now_ms() < end)
        nap_ms(200);
    assert_int_equal(queue_depth_of("back.in"), 5);
    assert_int_equal(kill(in, 0), 0);
    kill(in, SIGTERM);
    assert_int_equal(it_wait(in, 15000), 0);
    char *t = it_read_file(&env, "bridge.back.err", NULL);
    assert_non_null(t);
    if (strstr(t, "5 stored in lienthong, 2 refused, 0 retried") == NULL)
        fprintf(stderr, "it_bridge: bridge in said:\n%s", t);
    assert_non_null(strstr(t, "5 stored in lienthong, 2 refused, 0 retried"));
    free(t);
    /* the sink reading the same messages: the good ones stored, the two refused with their
     * code and terminated in the stream, and it goes on to the end (-n counts refusals) */
    pid_t sk = sink_spawn("sink.back", "national.79.760.back.>", "sinkback", "back.db", "256", "7");
    assert_int_equal(it_wait(sk, 60000), 0);
    t = it_read_file(&env, "sink.back.err", NULL);
    assert_non_null(t);
    assert_non_null(strstr(t, "refused: sink: BAD_PAYLOAD_HASH"));
    assert_non_null(strstr(t, "refused: sink: MALFORMED"));
    assert_non_null(strstr(t, "5 rows written (5 new, 0 already present), 2 refused"));
    free(t);
    assert_int_equal(rows_of("back.db").n, 5);
    lt_signer_destroy(&a);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(no);
}

static int group_setup(void **state)
{
    (void)state;
    if (access(NATS_SERVER, X_OK) != 0) {
        fprintf(stderr, "it_bridge: skipped: %s not installed (Debian package nats-server)\n",
                NATS_SERVER);
        return -1;
    }
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) ||
        !it_broker_start(&env, 30000))
        return -1;
    size_t l = 0;
    for (int i = 0; i < NODES; i++) {
        nodes[i] = (node){it_free_port(), it_free_port(), it_free_port(), 0};
        l += (size_t)snprintf(urls + l, sizeof urls - l, "%snats://127.0.0.1:%u", i ? "," : "",
                              nodes[i].client);
    }
    for (int i = 0; i < NODES; i++)
        if (!node_start(i))
            return -1;
    return cluster_ready(30000) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (bridge_pid > 0) {
        kill(bridge_pid, SIGTERM);
        it_wait(bridge_pid, 15000);
    }
    for (int i = 0; i < NODES; i++)
        if (nodes[i].pid > 0) {
            kill(nodes[i].pid, SIGTERM);
            it_wait(nodes[i].pid, 10000);
        }
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
}

int main(void)
{
    if (access(NATS_SERVER, X_OK) != 0) {
        printf("it_bridge: SKIP: %s not installed (Debian package nats-server)\n", NATS_SERVER);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_bridge_forwards_every_record_once_into_the_r3_stream),
        cmocka_unit_test(one_node_lost_loses_nothing_and_the_bridge_carries_on),
        cmocka_unit_test(two_nodes_lost_stop_the_bridge_and_it_resumes_when_they_return),
        cmocka_unit_test(a_broker_killed_mid_flow_leaves_no_duplicate_in_the_stream),
        cmocka_unit_test(records_read_back_verify_and_come_back_through_bridge_in),
        cmocka_unit_test(the_sink_reads_the_stream_into_sqlite_once_across_a_kill_9),
        cmocka_unit_test(bridge_in_terminates_a_tampered_envelope_and_carries_on),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
