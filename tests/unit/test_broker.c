/* test_broker.c - the daemon object in-process: a real lt_broker (ROUTER socket, verify
 * pool, committer, LMDB store, delivery) on 127.0.0.1 in a thread of this test, driven by
 * lib/client.h and by a raw DEALER for frames the client library would never send.
 * Every wait is bounded by a deadline; nothing sleeps for a fixed time to "let it happen". */
/* LT_WRAP: lt_store_sync mdb_env_sync lt_store_begin */
#include "broker.h"
#include "client.h"
#include "broker_config.h"
#include "devpki.h"
#include "envelope.h"
#include "pki.h"
#include "store.h"

#include <lienthong/v1/envelope.pb-c.h>
#include <lmdb.h>
#include <lienthong/v1/records/civil_status.pb-c.h>
#include <netinet/in.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include <zmq.h>

#include <cmocka.h>

typedef struct world {
    char dir[256];
    lt_broker_cfg *cfg;
    lt_broker *b;
    pthread_t thread;
    lt_err run_result;
    char endpoint[128];
    lt_signer *a, *b_signer, *expired, *revoked, *otherca;
    bool joined; /* a test stopped the broker and joined its thread */
} world;

static world W;

/* ---- the store's flush, held on request: the window between a batch's commit and its sync,
 * which a slow disk (or valgrind) opens wide, made deterministic ---- */

lt_err __real_lt_store_sync(lt_store *s, uint64_t ticket, lt_why *why);
lt_err __wrap_lt_store_sync(lt_store *s, uint64_t ticket, lt_why *why);

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold_sync;       /* under hold_mu: flushes wait while set */
static unsigned held_syncs;  /* under hold_mu: flushes that waited (or wait) */

lt_err __wrap_lt_store_sync(lt_store *s, uint64_t ticket, lt_why *why)
{
    pthread_mutex_lock(&hold_mu);
    if (hold_sync) {
        held_syncs++;
        pthread_cond_broadcast(&hold_cv);
        while (hold_sync)
            pthread_cond_wait(&hold_cv, &hold_mu);
    }
    pthread_mutex_unlock(&hold_mu);
    return __real_lt_store_sync(s, ticket, why);
}

static void sync_hold(void)
{
    pthread_mutex_lock(&hold_mu);
    hold_sync = true;
    held_syncs = 0;
    pthread_mutex_unlock(&hold_mu);
}

static void sync_release(void)
{
    pthread_mutex_lock(&hold_mu);
    hold_sync = false;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

/* Per-test teardown: a test that failed while holding the flush must not stall the rest. */
static int release_after(void **state)
{
    (void)state;
    sync_release();
    return 0;
}

static unsigned syncs_held(void)
{
    pthread_mutex_lock(&hold_mu);
    unsigned n = held_syncs;
    pthread_mutex_unlock(&hold_mu);
    return n;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return 0;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static char *path(const char *rel)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", W.dir, rel);
    return buf[i];
}

static lt_signer *signer(const char *stem)
{
    char k[64], c[64];
    snprintf(k, sizeof k, "%s.key.pem", stem);
    snprintf(c, sizeof c, "%s.cert.pem", stem);
    lt_signer *s = NULL;
    lt_why why;
    if (lt_signer_open(path(k), path(c), &s, &why) != LT_OK) {
        fprintf(stderr, "signer %s: %s\n", stem, why.msg);
        return NULL;
    }
    return s;
}

static void *run_thread(void *arg)
{
    (void)arg;
    W.run_result = lt_broker_run(W.b);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    snprintf(W.dir, sizeof W.dir, "/tmp/lt_test_broker.XXXXXX");
    if (!mkdtemp(W.dir))
        return -1;
    lt_why why;
    if (lt_devpki_fixture(W.dir, LT_SIG_ECDSA_P256, lt_env_now_ms(), &why) != LT_OK) {
        fprintf(stderr, "fixture: %s\n", why.msg);
        return -1;
    }
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "broker:\n"
             "  name: test\n"
             "  listen: tcp://127.0.0.1:*\n"
             "  data_dir: data\n"
             "  verify_threads: 2\n"
             "  max_frame_bytes: 65536\n"
             "  commit_max_batch: 512\n"
             "  admin:\n"
             "    listen: 127.0.0.1:%u\n"
             "    token_file: admin.token\n"
             "trust:\n"
             "  ca: ca.cert.pem\n"
             "  crl: crl.pem\n"
             "admins: [\"%s\"]\n"
             "acl:\n"
             "  - agency: %s\n"
             "    publish: [\"79.760.>\"]\n"
             "  - agency: %s\n"
             "    publish: []\n"
             "queues:\n"
             "  - name: q.main\n"
             "    owner: %s\n"
             "    bind: [\"79.760.hotich.>\"]\n"
             "  - name: q.retry\n"
             "    owner: %s\n"
             "    bind: [\"79.760.retry.>\"]\n"
             "    ack_wait_s: 1\n"
             "    max_deliver: 2\n"
             "    backoff_s: []\n"
             "  - name: q.hold\n"
             "    owner: %s\n"
             "    bind: [\"79.760.hold.>\"]\n"
             "    ack_wait_s: 30\n"
             "    max_deliver: 5\n"
             "    backoff_s: [1]\n"
             "  - name: q.small\n"
             "    owner: %s\n"
             "    bind: [\"79.760.small.>\"]\n"
             "    max_depth: 3\n",
             free_port(), LT_DEVPKI_AGENCY_B, LT_DEVPKI_AGENCY_A, LT_DEVPKI_AGENCY_B,
             LT_DEVPKI_AGENCY_B, LT_DEVPKI_AGENCY_B, LT_DEVPKI_AGENCY_B, LT_DEVPKI_AGENCY_B);
    if (lt_devpki_write_file(path("broker.yaml"), yaml, strlen(yaml), 0644, &why) != LT_OK)
        return -1;
    W.joined = false;
    if (lt_broker_config_load(path("broker.yaml"), &W.cfg, &why) != LT_OK) {
        fprintf(stderr, "config: %s\n", why.msg);
        return -1;
    }
    lt_broker_opts o = {.config_path = path("broker.yaml")};
    if (lt_broker_new(W.cfg, &o, &W.b, &why) != LT_OK) {
        fprintf(stderr, "broker: %s\n", why.msg);
        return -1;
    }
    snprintf(W.endpoint, sizeof W.endpoint, "%s", lt_broker_endpoint(W.b));
    W.a = signer("a");
    W.b_signer = signer("b");
    W.expired = signer("expired");
    W.revoked = signer("revoked");
    W.otherca = signer("otherca");
    if (!W.a || !W.b_signer || !W.expired || !W.revoked || !W.otherca)
        return -1;
    if (pthread_create(&W.thread, NULL, run_thread, NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sync_release(); /* a test that failed while holding the flush must not hang the stop */
    if (!W.joined) {
        lt_broker_stop(W.b);
        pthread_join(W.thread, NULL);
    }
    lt_broker_destroy(&W.b);
    lt_broker_config_destroy(&W.cfg);
    lt_signer_destroy(&W.a);
    lt_signer_destroy(&W.b_signer);
    lt_signer_destroy(&W.expired);
    lt_signer_destroy(&W.revoked);
    lt_signer_destroy(&W.otherca);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", W.dir);
    if (system(cmd) != 0)
        return -1;
    return W.run_result == LT_OK ? 0 : -1;
}

/* ---- helpers ---- */

/* A BirthRegistration whose note is text: the broker refuses payloads that are not their
 * record type. */
static uint8_t *seal(lt_signer *s, const char *topic, const char *text, const uint8_t *id,
                     size_t *len)
{
    Lienthong__V1__Records__BirthRegistration rec =
        LIENTHONG__V1__RECORDS__BIRTH_REGISTRATION__INIT;
    rec.note = (char *)text;
    uint8_t payload[256];
    assert_true(lienthong__v1__records__birth_registration__get_packed_size(&rec) <=
                sizeof payload);
    lt_env_spec sp = {
        .message_id = id,
        .topic = topic,
        .record_type = "lienthong.v1.records.BirthRegistration",
        .payload = payload,
        .payload_len = lienthong__v1__records__birth_registration__pack(&rec, payload),
    };
    uint8_t *out = NULL;
    lt_why why;
    assert_int_equal(lt_env_seal(s, &sp, &out, len, &why), LT_OK);
    return out;
}

typedef struct outcome {
    int n;
    lt_err code[1024];
    uint64_t seq[1024];
    bool dup[1024];
    char reason[1024][128];
} outcome;

static void on_pub(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                   const char *reason)
{
    outcome *o = user;
    assert_true(tag >= 1 && tag <= 1024);
    o->code[tag - 1] = code;
    o->seq[tag - 1] = seq;
    o->dup[tag - 1] = dup;
    snprintf(o->reason[tag - 1], sizeof o->reason[0], "%s", reason);
    o->n++;
}

static lt_client *client(lt_signer *auth_as)
{
    lt_client *c = NULL;
    lt_why why;
    lt_client_opts o = {.window = 256, .ack_timeout_ms = 10000, .request_timeout_ms = 10000};
    assert_int_equal(lt_client_open(W.endpoint, &o, &c, &why), LT_OK);
    if (auth_as)
        assert_int_equal(lt_client_auth(c, lt_signer_agency(auth_as), auth_as, &why), LT_OK);
    return c;
}

/* Publish one envelope, wait for its outcome; returns the code, *seq set. */
static lt_err publish1(lt_client *c, const uint8_t *env, size_t len, uint64_t *seq, bool *dup,
                       char *reason)
{
    static outcome o;
    memset(&o, 0, sizeof o);
    uint64_t tag;
    assert_int_equal(lt_client_publish(c, env, len, on_pub, &o, &tag), LT_OK);
    /* the client numbers tags per connection; this helper's outcome table is per call */
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    assert_int_equal(o.n, 1);
    size_t i = (size_t)tag - 1;
    if (seq)
        *seq = o.seq[i];
    if (dup)
        *dup = o.dup[i];
    if (reason)
        snprintf(reason, 128, "%s", o.reason[i]);
    return o.code[i];
}

typedef struct got {
    size_t n;
    uint64_t seq[2048];
    uint32_t count[2048];
    bool replay[2048];
    bool ack;
    lt_client *c;
    const char *queue;
} got;

static void on_deliver(void *user, const lt_client_delivery *d)
{
    got *g = user;
    if (g->n < 2048) {
        g->seq[g->n] = d->seq;
        g->count[g->n] = d->delivery_count;
        g->replay[g->n] = d->replay;
        g->n++;
    }
    if (g->ack && !d->replay)
        lt_client_ack(g->c, d->queue, d->seq);
}

/* Poll c until g has n deliveries or timeout_ms passed. */
static void wait_deliveries(lt_client *c, got *g, size_t n, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (g->n < n && mono_ms() < end)
        lt_client_poll(c, 50, NULL);
}

/* ---- tests ---- */

static void publishes_are_acked_and_delivered_in_order(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    static outcome o;
    memset(&o, 0, sizeof o);
    size_t len;
    for (int i = 0; i < 500; i++) {
        char rec[64];
        snprintf(rec, sizeof rec, "record %d", i);
        uint8_t *env = seal(W.a, "79.760.hotich.khaisinh", rec, NULL, &len);
        assert_int_equal(lt_client_publish(p, env, len, on_pub, &o, NULL), LT_OK);
        free(env);
    }
    assert_int_equal(lt_client_flush(p, 20000), LT_OK);
    assert_int_equal(o.n, 500);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(o.code[i], LT_OK);
        if (i > 0)
            assert_true(o.seq[i] > o.seq[i - 1]); /* stored in the order sent */
    }
    lt_client_close(&p);

    lt_client *c = client(W.b_signer);
    static got g;
    memset(&g, 0, sizeof g);
    g.ack = true;
    g.c = c;
    lt_why why;
    assert_int_equal(lt_client_subscribe(c, "q.main", 64, NULL, on_deliver, &g, &why), LT_OK);
    wait_deliveries(c, &g, 500, 20000);
    assert_int_equal(g.n, 500);
    for (size_t i = 0; i < 500; i++) {
        assert_int_equal(g.seq[i], o.seq[i]);
        assert_int_equal(g.count[i], 1);
    }
    assert_int_equal(lt_client_flush(c, 5000), LT_OK);

    /* everything acked: the queue is empty once the acks are committed */
    char *json = NULL;
    int64_t end = mono_ms() + 5000;
    bool empty = false;
    while (!empty && mono_ms() < end) {
        lt_client_poll(c, 20, NULL);
        assert_int_equal(lt_client_admin(c, "queues", "q.main", NULL, 0, 0, &json, &why), LT_OK);
        empty = strstr(json, "\"depth\":0,") != NULL;
        free(json);
    }
    lt_client_close(&c);
    assert_true(empty);
}

static void every_rejection_has_its_own_code_and_the_broker_goes_on(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    char reason[128];
    uint8_t *env;

    /* forged signature: flip a byte of the signature */
    env = seal(W.a, "79.760.hotich.khaisinh", "forged", NULL, &len);
    Lienthong__V1__Envelope *e = lienthong__v1__envelope__unpack(NULL, len, env);
    assert_non_null(e);
    e->signature.data[e->signature.len / 2] ^= 0x5a;
    size_t n2 = lienthong__v1__envelope__get_packed_size(e);
    uint8_t *forged = malloc(n2);
    lienthong__v1__envelope__pack(e, forged);
    lienthong__v1__envelope__free_unpacked(e, NULL);
    assert_int_equal(publish1(p, forged, n2, NULL, NULL, reason), LT_ESIG);
    free(forged);
    free(env);

    env = seal(W.expired, "79.760.hotich.khaisinh", "x", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ECERT_EXPIRED);
    free(env);
    env = seal(W.revoked, "79.760.hotich.khaisinh", "x", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ECERT_REVOKED);
    free(env);
    env = seal(W.otherca, "79.760.hotich.khaisinh", "x", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ECERT_UNKNOWN_CA);
    free(env);
    env = seal(W.a, "79.761.hotich.khaisinh", "x", NULL, &len); /* not A's district */
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_EACL);
    free(env);
    env = seal(W.b_signer, "79.760.hotich.khaisinh", "x", NULL, &len); /* B publishes nothing */
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_EACL);
    free(env);
    env = seal(W.a, "79.760.nothing.here", "x", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ENOROUTE);
    assert_non_null(strstr(reason, "79.760.nothing.here"));
    free(env);
    uint8_t junk[] = {1, 2, 3, 4};
    assert_int_equal(publish1(p, junk, sizeof junk, NULL, NULL, reason), LT_EPROTO);

    env = seal(W.a, "79.760.hotich.khaisinh", "still serving", NULL, &len);
    uint64_t seq = 0;
    assert_int_equal(publish1(p, env, len, &seq, NULL, reason), LT_OK);
    assert_true(seq > 0);
    free(env);
    lt_client_close(&p);
}

static void duplicate_id_is_acked_as_duplicate_and_stored_once(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    uint8_t id[16];
    lt_why why;
    assert_int_equal(lt_env_uuid7(lt_env_now_ms(), id, &why), LT_OK);
    size_t len;
    uint8_t *env = seal(W.a, "79.760.hotich.khaisinh", "once", id, &len);
    uint64_t s1 = 0, s2 = 0;
    bool d1 = true, d2 = false;
    assert_int_equal(publish1(p, env, len, &s1, &d1, NULL), LT_OK);
    assert_int_equal(publish1(p, env, len, &s2, &d2, NULL), LT_OK);
    assert_false(d1);
    assert_true(d2);
    assert_int_equal(s1, s2);
    free(env);
    lt_client_close(&p);

    /* consume q.main: exactly one delivery of s1 */
    lt_client *c = client(W.b_signer);
    static got g;
    memset(&g, 0, sizeof g);
    g.ack = true;
    g.c = c;
    assert_int_equal(lt_client_subscribe(c, "q.main", 16, NULL, on_deliver, &g, &why), LT_OK);
    wait_deliveries(c, &g, 1, 5000);
    wait_deliveries(c, &g, 100, 500); /* anything more would arrive now */
    size_t hits = 0;
    for (size_t i = 0; i < g.n; i++)
        hits += g.seq[i] == s1;
    assert_int_equal(hits, 1);
    lt_client_flush(c, 5000);
    lt_client_close(&c);
}

static void queue_full_is_nacked_and_never_silent(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    char reason[128];
    for (int i = 0; i < 3; i++) {
        uint8_t *env = seal(W.a, "79.760.small.x", "fill", NULL, &len);
        assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_OK);
        free(env);
    }
    uint8_t *env = seal(W.a, "79.760.small.x", "one too many", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_EQUEUE_FULL);
    free(env);
    lt_client_close(&p);
}

static void ack_wait_redelivers_then_dead_letters_and_requeue_brings_it_back(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    uint8_t *env = seal(W.a, "79.760.retry.x", "never acked", NULL, &len);
    uint64_t seq = 0;
    assert_int_equal(publish1(p, env, len, &seq, NULL, NULL), LT_OK);
    free(env);
    lt_client_close(&p);

    lt_client *c = client(W.b_signer);
    static got g;
    memset(&g, 0, sizeof g);
    g.c = c; /* no acks */
    lt_why why;
    assert_int_equal(lt_client_subscribe(c, "q.retry", 16, NULL, on_deliver, &g, &why), LT_OK);
    wait_deliveries(c, &g, 2, 10000);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.seq[0], seq);
    assert_int_equal(g.count[0], 1);
    assert_int_equal(g.seq[1], seq); /* after ack_wait (1 s), same message */
    assert_int_equal(g.count[1], 2);

    /* the second ack_wait expiry is the last allowed: dead-lettered with its reason */
    char *json = NULL;
    int64_t end = mono_ms() + 10000;
    for (;;) {
        lt_client_poll(c, 100, NULL);
        assert_int_equal(lt_client_admin(c, "dlq.ls", "q.retry", NULL, 0, 0, &json, &why), LT_OK);
        if (strstr(json, "max_deliver 2 reached; last: ack_wait expired"))
            break;
        free(json);
        json = NULL;
        assert_true(mono_ms() < end);
    }
    assert_non_null(strstr(json, "\"delivery_count\":2"));
    free(json);

    /* requeue: delivered again, delivery count restarts */
    assert_int_equal(lt_client_admin(c, "dlq.requeue", "q.retry", NULL, 0, 0, &json, &why), LT_OK);
    assert_non_null(strstr(json, "\"requeued\":1"));
    free(json);
    g.ack = true;
    wait_deliveries(c, &g, 3, 10000);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seq[2], seq);
    assert_int_equal(g.count[2], 1);
    lt_client_flush(c, 5000);
    lt_client_close(&c);
}

static void nak_redelivers_and_dead_letters_with_the_consumers_reason(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    uint8_t *env = seal(W.a, "79.760.retry.y", "refused", NULL, &len);
    uint64_t seq = 0;
    assert_int_equal(publish1(p, env, len, &seq, NULL, NULL), LT_OK);
    free(env);
    lt_client_close(&p);

    lt_client *c = client(W.b_signer);
    static got g;
    memset(&g, 0, sizeof g);
    g.c = c;
    lt_why why;
    assert_int_equal(lt_client_subscribe(c, "q.retry", 16, NULL, on_deliver, &g, &why), LT_OK);
    for (size_t want = 1; want <= 2; want++) {
        wait_deliveries(c, &g, want, 5000);
        assert_int_equal(g.n, want);
        assert_int_equal(g.seq[want - 1], seq);
        assert_int_equal(lt_client_nak(c, "q.retry", seq, 10, "schema mismatch"), LT_OK);
    }
    char *json = NULL;
    int64_t end = mono_ms() + 5000;
    for (;;) {
        lt_client_poll(c, 50, NULL);
        assert_int_equal(lt_client_admin(c, "dlq.show", "q.retry", &seq, 1, 0, &json, &why), LT_OK);
        if (strstr(json, "last: nak: schema mismatch"))
            break;
        free(json);
        json = NULL;
        assert_true(mono_ms() < end);
    }
    assert_non_null(strstr(json, "\"envelope\":\"")); /* show carries the envelope */
    free(json);
    assert_int_equal(lt_client_admin(c, "dlq.drop", "q.retry", &seq, 1, 0, &json, &why), LT_OK);
    assert_non_null(strstr(json, "\"dropped\":1"));
    free(json);
    lt_client_close(&c);
}

static void replay_streams_retained_history_without_acks(void **state)
{
    (void)state;
    lt_client *c = client(W.b_signer);
    static got g;
    memset(&g, 0, sizeof g);
    g.c = c;
    lt_why why;
    lt_client_replay r = {.from_seq = 1};
    assert_int_equal(lt_client_subscribe(c, "q.main", 32, &r, on_deliver, &g, &why), LT_OK);
    wait_deliveries(c, &g, 500, 10000);
    assert_true(g.n >= 500);
    for (size_t i = 0; i < g.n; i++) {
        assert_true(g.replay[i]);
        if (i > 0)
            assert_true(g.seq[i] > g.seq[i - 1]);
    }
    lt_client_close(&c);
}

/* Frames the client library never sends, from a raw DEALER. */
static void *dealer(void **ctx)
{
    *ctx = zmq_ctx_new();
    void *d = zmq_socket(*ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(d, W.endpoint), 0);
    return d;
}

static Lienthong__V1__Frame *recv_frame(void *d, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = d, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, d, 0) < 0)
        return NULL;
    Lienthong__V1__Frame *f =
        lienthong__v1__frame__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    return f;
}

static void send_frame(void *d, const Lienthong__V1__Frame *f)
{
    size_t n = lienthong__v1__frame__get_packed_size(f);
    uint8_t *buf = malloc(n);
    lienthong__v1__frame__pack(f, buf);
    assert_int_equal(zmq_send(d, buf, n, 0), (int)n);
    free(buf);
}

static void publish_frame(void *d, uint64_t tag, const uint8_t *env, size_t len)
{
    Lienthong__V1__Publish pb = LIENTHONG__V1__PUBLISH__INIT;
    pb.tag = tag;
    pb.envelope.data = (uint8_t *)env;
    pb.envelope.len = len;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
    f.publish = &pb;
    send_frame(d, &f);
}

static void ping_pong(void *d, uint64_t nonce)
{
    Lienthong__V1__Ping pi = LIENTHONG__V1__PING__INIT;
    pi.nonce = nonce;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &pi;
    send_frame(d, &f);
    Lienthong__V1__Frame *r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_PONG);
    assert_int_equal(r->pong->nonce, nonce);
    lienthong__v1__frame__free_unpacked(r, NULL);
}

static void malformed_oversized_and_multipart_frames_never_hurt_the_broker(void **state)
{
    (void)state;
    void *ctx;
    void *d = dealer(&ctx);

    /* a PUBLISH whose envelope is garbage: NACK MALFORMED with the tag */
    uint8_t garbage[] = {0xff, 0xff, 0xff, 0x01};
    publish_frame(d, 41, garbage, sizeof garbage);
    Lienthong__V1__Frame *r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_NACK);
    assert_int_equal(r->nack->tag, 41);
    assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__MALFORMED);
    lienthong__v1__frame__free_unpacked(r, NULL);

    /* a frame that is no Frame at all and has no tag: dropped and counted */
    uint8_t noise[] = {0x07, 0x00, 0xfe, 0x33};
    assert_int_equal(zmq_send(d, noise, sizeof noise, 0), (int)sizeof noise);
    ping_pong(d, 7); /* the next answer is the PONG: nothing was sent for the noise */

    /* a truncated PUBLISH whose tag is readable */
    uint8_t trunc[] = {0x0a, 0x40, 0x08, 0x2a, 0x12, 0x7f, 0x01};
    assert_int_equal(zmq_send(d, trunc, sizeof trunc, 0), (int)sizeof trunc);
    r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_NACK);
    assert_int_equal(r->nack->tag, 42);
    assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__MALFORMED);
    lienthong__v1__frame__free_unpacked(r, NULL);

    /* oversized: over max_frame_bytes (64 KiB) but under ZeroMQ's hard cap */
    size_t big = 100000;
    uint8_t *huge = calloc(1, big);
    publish_frame(d, 43, huge, big);
    free(huge);
    r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_NACK);
    assert_int_equal(r->nack->tag, 43);
    assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__TOO_LARGE);
    lienthong__v1__frame__free_unpacked(r, NULL);

    /* multipart: dropped */
    assert_int_equal(zmq_send(d, "a", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(d, "b", 1, 0), 1);
    ping_pong(d, 8);

    /* frames only brokers send; consumer frames before AUTH */
    Lienthong__V1__Ack ack = LIENTHONG__V1__ACK__INIT;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ACK;
    f.ack = &ack;
    send_frame(d, &f);
    ping_pong(d, 9);
    Lienthong__V1__Subscribe sub = LIENTHONG__V1__SUBSCRIBE__INIT;
    sub.queue = "q.main";
    sub.credit = 10;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_SUBSCRIBE;
    f.subscribe = &sub;
    send_frame(d, &f);
    r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_NACK);
    assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__NOT_AUTHENTICATED);
    lienthong__v1__frame__free_unpacked(r, NULL);

    /* and a good publish still goes through */
    size_t len;
    uint8_t *env = seal(W.a, "79.760.hotich.khaisinh", "after the noise", NULL, &len);
    publish_frame(d, 44, env, len);
    free(env);
    r = recv_frame(d, 5000);
    assert_non_null(r);
    assert_int_equal(r->kind_case, LIENTHONG__V1__FRAME__KIND_ACK);
    assert_int_equal(r->ack->tag, 44);
    lienthong__v1__frame__free_unpacked(r, NULL);
    zmq_close(d);
    zmq_ctx_term(ctx);
}

static void auth_with_another_agencys_certificate_is_refused(void **state)
{
    (void)state;
    lt_client *c = NULL;
    lt_why why;
    assert_int_equal(lt_client_open(W.endpoint, NULL, &c, &why), LT_OK);
    /* HELLO claims B, the certificate is A's */
    assert_int_equal(lt_client_auth(c, LT_DEVPKI_AGENCY_B, W.a, &why), LT_EAGENCY_MISMATCH);
    lt_client_close(&c);
    assert_int_equal(lt_client_open(W.endpoint, NULL, &c, &why), LT_OK);
    assert_int_equal(lt_client_auth(c, LT_DEVPKI_AGENCY_A, W.revoked, &why), LT_ECERT_REVOKED);
    lt_client_close(&c);
    /* A is authenticated but does not own q.main */
    c = client(W.a);
    static got g;
    memset(&g, 0, sizeof g);
    assert_int_equal(lt_client_subscribe(c, "q.main", 8, NULL, on_deliver, &g, &why), LT_OK);
    int64_t end = mono_ms() + 5000;
    lt_err last = LT_OK;
    while ((last = lt_client_last_error(c, NULL)) == LT_OK && mono_ms() < end)
        lt_client_poll(c, 50, NULL);
    assert_int_equal(last, LT_EACL);
    lt_client_close(&c);
}

/* Last: it revokes A and changes the ACL. SIGHUP reloads the CRL and the ACL. */
static void sighup_reloads_the_crl_and_the_acl(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    char reason[128];
    uint8_t *env = seal(W.a, "79.761.hotich.khaisinh", "x", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_EACL);

    /* allow A on 79.761.> (no queue binds it: NO_ROUTE, past the ACL) */
    char *yaml = NULL;
    {
        FILE *f = fopen(path("broker.yaml"), "r");
        assert_non_null(f);
        yaml = calloc(1, 8192);
        size_t n = fread(yaml, 1, 8191, f);
        fclose(f);
        yaml[n] = '\0';
    }
    char *at = strstr(yaml, "[\"79.760.>\"]");
    assert_non_null(at);
    char *nyaml = calloc(1, 8300);
    memcpy(nyaml, yaml, (size_t)(at - yaml));
    strcat(nyaml, "[\"79.760.>\", \"79.761.>\"]");
    strcat(nyaml, at + strlen("[\"79.760.>\"]"));
    lt_why why;
    assert_int_equal(lt_devpki_write_file(path("broker.yaml"), nyaml, strlen(nyaml), 0644, &why),
                     LT_OK);
    free(yaml);
    free(nyaml);

    assert_int_equal(kill(getpid(), SIGHUP), 0);
    lt_err e = LT_OK;
    int64_t end = mono_ms() + 5000;
    while ((e = publish1(p, env, len, NULL, NULL, reason)) == LT_EACL && mono_ms() < end)
        lt_client_poll(p, 20, NULL);
    assert_int_equal(e, LT_ENOROUTE); /* allowed now, and no queue binds it */
    free(env);

    /* revoke A's certificate: A publishes until the reload, then is refused */
    lt_devpki_ca *ca = NULL;
    assert_int_equal(lt_devpki_ca_load(path("ca.key.pem"), path("ca.cert.pem"), &ca, &why), LT_OK);
    assert_int_equal(
        lt_devpki_revoke(ca, path("a.cert.pem"), path("crl.pem"), lt_env_now_ms(), &why), LT_OK);
    lt_devpki_ca_destroy(&ca);
    env = seal(W.a, "79.760.hotich.khaisinh", "before the reload", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_OK);
    free(env);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    env = seal(W.a, "79.760.hotich.khaisinh", "after", NULL, &len);
    end = mono_ms() + 5000;
    while ((e = publish1(p, env, len, NULL, NULL, reason)) == LT_OK && mono_ms() < end)
        lt_client_poll(p, 20, NULL);
    assert_int_equal(e, LT_ECERT_REVOKED);
    free(env);
    lt_client_close(&p);
}


/* Wait (polling c) until a flush is being held, i.e. a batch is committed but not synced. */
static void wait_held_sync(lt_client *c)
{
    int64_t end = mono_ms() + 10000;
    while (syncs_held() == 0 && mono_ms() < end)
        lt_client_poll(c, 20, NULL);
    assert_true(syncs_held() > 0);
}

/* A round trip on c: every frame c sent before has been handled by the broker's loop. */
static void round_trip(lt_client *c)
{
    char *json = NULL;
    lt_why why;
    assert_int_equal(lt_client_admin(c, "queues", "q.hold", NULL, 0, 0, &json, &why), LT_OK);
    free(json);
}

/* The window between a batch's commit and its flush (wide on a slow disk or under
 * valgrind): a consumer that subscribes in it is served nothing yet, because a delivery
 * leaves only once its delivery count is durable and that count waits behind the held
 * flush; the message of the held batch, hidden while the queue was pumped (and found
 * "caught up"), is delivered as soon as it is durable, after the one before it. */
static void a_message_committed_while_the_queue_is_pumped_is_delivered_once_synced(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    uint8_t *env = seal(W.a, "79.760.hold.x", "first", NULL, &len);
    uint64_t s1 = 0, s2 = 0;
    assert_int_equal(publish1(p, env, len, &s1, NULL, NULL), LT_OK);
    free(env);
    lt_client *c = client(W.b_signer);
    lt_why why;

    sync_hold();
    static outcome o;
    memset(&o, 0, sizeof o);
    env = seal(W.a, "79.760.hold.x", "second", NULL, &len);
    uint64_t tag = 0;
    assert_int_equal(lt_client_publish(p, env, len, on_pub, &o, &tag), LT_OK);
    free(env);
    wait_held_sync(p); /* "second" is committed; its flush waits */

    /* the consumer (authenticated before: an AUTH is answered after a flush too) subscribes
     * in the window: the queue is read while "second" is in LMDB but not durable */
    static got g;
    memset(&g, 0, sizeof g);
    g.c = c;
    assert_int_equal(lt_client_subscribe(c, "q.hold", 16, NULL, on_deliver, &g, &why), LT_OK);
    wait_deliveries(c, &g, 1, 1000);
    assert_int_equal(g.n, 0); /* s1's delivery count is not durable yet */
    round_trip(c);

    sync_release();
    assert_int_equal(lt_client_flush(p, 10000), LT_OK);
    assert_int_equal(o.code[tag - 1], LT_OK);
    s2 = o.seq[tag - 1];
    assert_true(s2 > s1);
    wait_deliveries(c, &g, 2, 5000);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.seq[0], s1);
    assert_int_equal(g.seq[1], s2);
    /* a nak is redelivered, with its count */
    assert_int_equal(lt_client_nak(c, "q.hold", s1, 1, "later"), LT_OK);
    wait_deliveries(c, &g, 3, 5000);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seq[2], s1);
    assert_int_equal(g.count[2], 2);
    assert_int_equal(lt_client_ack(c, "q.hold", s1), LT_OK);
    assert_int_equal(lt_client_ack(c, "q.hold", s2), LT_OK);
    round_trip(c);
    lt_client_close(&c);
    lt_client_close(&p);
}

/* ---- a flush that fails: LMDB's mdb_env_sync answers EIO on request ---- */

int __real_mdb_env_sync(MDB_env *env, int force);
int __wrap_mdb_env_sync(MDB_env *env, int force);
lt_err __real_lt_store_begin(lt_store *s, lt_why *why);
lt_err __wrap_lt_store_begin(lt_store *s, lt_why *why);

static atomic_bool fail_env_sync;
static atomic_uint store_begins; /* write transactions the committer tried to open */

int __wrap_mdb_env_sync(MDB_env *env, int force)
{
    return atomic_load(&fail_env_sync) ? EIO : __real_mdb_env_sync(env, force);
}

lt_err __wrap_lt_store_begin(lt_store *s, lt_why *why)
{
    atomic_fetch_add(&store_begins, 1);
    return __real_lt_store_begin(s, why);
}

/* A failed flush is final (broker/store.c): the publish whose flush failed and every later
 * one are refused STORE_ERROR, even once the disk answers again. And the broken store must
 * not turn the commit thread into a busy loop that never lets the broker stop: its sweep,
 * due once a second, used to stay due forever when the batch could not begin. In a group of
 * its own: it leaves the store refusing writes, and stops the broker itself. */
static void a_failed_flush_refuses_what_follows_and_the_broker_still_stops(void **state)
{
    (void)state;
    lt_client *p = client(NULL);
    size_t len;
    char reason[128];
    uint8_t *env = seal(W.a, "79.760.hotich.flush", "before", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_OK);
    free(env);
    atomic_store(&fail_env_sync, true);
    env = seal(W.a, "79.760.hotich.flush", "its flush fails", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ESTORE);
    assert_non_null(strstr(reason, "flush"));
    free(env);
    atomic_store(&fail_env_sync, false);
    env = seal(W.a, "79.760.hotich.flush", "after", NULL, &len);
    assert_int_equal(publish1(p, env, len, NULL, NULL, reason), LT_ESTORE);
    free(env);
    /* An observation window of two sweep periods (not a wait for an event): an idle
     * committer opens about one batch a second; the busy loop opened hundreds of thousands. */
    unsigned before = atomic_load(&store_begins);
    int64_t end = mono_ms() + 2500;
    while (mono_ms() < end)
        lt_client_poll(p, 100, NULL);
    unsigned begins = atomic_load(&store_begins) - before;
    lt_client_close(&p);
    /* A busy committer can never be joined (and logs a line per turn): stop the whole
     * program rather than hang in teardown. */
    if (begins > 10) {
        fprintf(stderr, "the commit thread spins on the broken store: %u batches in 2.5 s\n",
                begins);
        abort();
    }
    lt_broker_stop(W.b);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20; /* the broker's own drain deadline is 10 s */
    if (pthread_timedjoin_np(W.thread, NULL, &until) != 0) {
        fprintf(stderr, "the broker did not stop within 20 s after a failed flush\n");
        abort();
    }
    W.joined = true;
    assert_int_equal(W.run_result, LT_OK); /* it drained: nothing was left to commit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publishes_are_acked_and_delivered_in_order),
        cmocka_unit_test(every_rejection_has_its_own_code_and_the_broker_goes_on),
        cmocka_unit_test(duplicate_id_is_acked_as_duplicate_and_stored_once),
        cmocka_unit_test(queue_full_is_nacked_and_never_silent),
        cmocka_unit_test(ack_wait_redelivers_then_dead_letters_and_requeue_brings_it_back),
        cmocka_unit_test(nak_redelivers_and_dead_letters_with_the_consumers_reason),
        cmocka_unit_test(replay_streams_retained_history_without_acks),
        cmocka_unit_test_teardown(
            a_message_committed_while_the_queue_is_pumped_is_delivered_once_synced,
            release_after),
        cmocka_unit_test(malformed_oversized_and_multipart_frames_never_hurt_the_broker),
        cmocka_unit_test(auth_with_another_agencys_certificate_is_refused),
        cmocka_unit_test(sighup_reloads_the_crl_and_the_acl),
    };
    /* a broker of its own: the failed flush leaves the store refusing writes */
    const struct CMUnitTest failed_flush[] = {
        cmocka_unit_test(a_failed_flush_refuses_what_follows_and_the_broker_still_stops),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + cmocka_run_group_tests(failed_flush, setup, teardown);
}
