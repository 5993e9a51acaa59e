/*
 * it_links.c - the network: real lienthongd processes on 127.0.0.1 linked ward -> city ->
 * national (docs/network.md). A district agency publishes at the ward broker; the national
 * population database consumes at the national broker, two links away, and verifies every
 * record there against the district's certificate.
 *
 *   ward      queue uplink (owner: the ward broker's identity) --link--> city
 *   city      queue uplink (owner: the city broker's identity) --link--> national
 *   national  queue dancu.capnhat (owner: the population database)
 *
 * Tests: a 3-hop path delivers every record once, in order, byte for byte, verifiable; the
 * city broker killed -9 ten times under load loses no acked record and delivers none twice;
 * the national broker stopped (SIGSTOP) longer than the city's ack_wait recovers; a loop
 * A -> B -> A does not circulate; a peer's hops are checked (LOOP, HOP_LIMIT, NOT_A_PEER,
 * relay patterns) and a tampered envelope on a link is refused at the next hop; SIGHUP
 * applies curve_clients and peers (a key added connects, a key removed cannot, its open
 * connection is closed, a narrowed relay pattern refuses) and a revoked agency's CURVE key is
 * refused at the handshake.
 */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"


#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <zmq.h>

#define TOPIC "79.760.hotich.khaisinh"
#define START_MS 30000
#define ID_WARD "VN:GOV:000.00.00.H29.26734:lienthong"
#define ID_CITY "VN:GOV:000.00.00.H29:lienthong"
#define ID_NATIONAL "VN:GOV:000.00.00.G01:lienthong"

/* What every node shares: limits small enough for a test, the district's ACL. @NAME@ is the
 * node's name, @ID@ its identity's short name; @EXTRA@ its queues, peers and links. */
static const char node_tmpl[] =
    "broker:\n"
    "  name: @NAME@\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data-@NAME@\n"
    "  map_size_mb: 256\n"
    "  verify_threads: 1\n"
    "  admin:\n"
    "    listen: @ADMIN@\n"
    "    token_file: admin.token\n"
    "  identity:\n"
    "    key: keys/broker-@NAME@.key.pem\n"
    "    cert: certs/broker-@NAME@.cert.pem\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: ca/crl.pem\n"
    "admins: [" ID_WARD ", " ID_CITY ", " ID_NATIONAL "]\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "@EXTRA@";

typedef struct net {
    it_env base;  /* the PKI and agency configs; no broker of its own */
    it_env ward, city, national;
} net;

/* Replace each "@KEY@" of keys[] in tmpl by vals[]; malloc'ed. */
static char *subst(const char *tmpl, const char *const keys[], const char *const vals[], size_t n)
{
    size_t cap = strlen(tmpl) + 1;
    for (size_t k = 0; k < n; k++)
        cap += 8 * strlen(vals[k]);
    char *out = malloc(cap);
    assert_non_null(out);
    size_t o = 0;
    for (const char *s = tmpl; *s;) {
        size_t k = 0;
        while (k < n && strncmp(s, keys[k], strlen(keys[k])) != 0)
            k++;
        if (k < n) {
            size_t vl = strlen(vals[k]);
            assert_true(o + vl < cap);
            memcpy(out + o, vals[k], vl);
            o += vl;
            s += strlen(keys[k]);
        } else {
            assert_true(o + 1 < cap);
            out[o++] = *s++;
        }
    }
    out[o] = '\0';
    return out;
}

/* Write node e's config: the common part plus extra (printf format). */
static void node_yaml(it_env *e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void node_yaml(it_env *e, const char *name, const char *fmt, ...)
{
    char extra[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    const char *keys[] = {"@NAME@", "@EXTRA@"};
    const char *vals[] = {name, extra};
    char *t = subst(node_tmpl, keys, vals, 2);
    assert_true(it_write_broker_yaml(e, t));
    free(t);
}

static void net_write_national(net *n);
static double metric(net *n, it_env *e, const char *prefix);

/* ward -> city -> national; ack_wait_s of the links' queues as given. */
static void net_write(net *n, unsigned ack_wait_s)
{
    node_yaml(&n->ward, "ward",
              "queues:\n"
              "  - name: uplink\n"
              "    owner: " ID_WARD "\n"
              "    bind: [\"79.760.>\"]\n"
              "    max_deliver: 1000\n"
              "    ack_wait_s: %u\n"
              "peers:\n"
              "  - name: city\n"
              "    agency: " ID_CITY "\n"
              "links:\n"
              "  - peer: city\n"
              "    endpoint: %s\n"
              "    forward: uplink\n"
              "    retry_max_ms: 500\n",
              ack_wait_s, n->city.endpoint);
    node_yaml(&n->city, "city",
              "queues:\n"
              "  - name: uplink\n"
              "    owner: " ID_CITY "\n"
              "    bind: [\"79.>\"]\n"
              "    max_deliver: 1000\n"
              "    ack_wait_s: %u\n"
              "peers:\n"
              "  - name: ward\n"
              "    agency: " ID_WARD "\n"
              "    relay: [\"79.760.>\"]\n"
              "  - name: national\n"
              "    agency: " ID_NATIONAL "\n"
              "links:\n"
              "  - peer: national\n"
              "    endpoint: %s\n"
              "    forward: uplink\n"
              "    retry_max_ms: 500\n",
              ack_wait_s, n->national.endpoint);
    net_write_national(n);
}

static void net_write_national(net *n)
{
    node_yaml(&n->national, "national",
              "queues:\n"
              "  - name: dancu.capnhat\n"
              "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
              "    bind: [\"79.*.hotich.>\"]\n"
              "    max_deliver: 1000\n"
              "peers:\n"
              "  - name: city\n"
              "    agency: " ID_CITY "\n"
              "    relay: [\"79.>\"]\n");
}

static int setup(void **state)
{
    net *n = calloc(1, sizeof *n);
    if (!n || !it_env_init(&n->base) || !it_env_init_node(&n->ward, &n->base, "ward") ||
        !it_env_init_node(&n->city, &n->base, "city") ||
        !it_env_init_node(&n->national, &n->base, "national"))
        return -1;
    *state = n;
    return 0;
}

static int teardown(void **state)
{
    net *n = *state;
    it_env_fini(&n->ward);
    it_env_fini(&n->city);
    it_env_fini(&n->national);
    it_env_fini(&n->base);
    free(n);
    return 0;
}

static void net_start(net *n)
{
    assert_true(it_broker_start(&n->national, START_MS));
    assert_true(it_broker_start(&n->city, START_MS));
    assert_true(it_broker_start(&n->ward, START_MS));
}

static void net_stop(net *n)
{
    it_broker_stop(&n->ward, 15000);
    it_broker_stop(&n->city, 15000);
    it_broker_stop(&n->national, 15000);
}

/* Field key of queue q at node e, asked as the broker identity id_short (an admin). */
static int64_t qfield(net *n, it_env *e, const char *id_short, const char *q, const char *key)
{
    lt_signer *s = it_signer(&n->base, id_short);
    assert_non_null(s);
    lt_client *c = it_client(e, s, 0, 0);
    assert_non_null(c);
    struct json_object *root = NULL;
    int64_t v = it_json_int(it_queue_info(c, q, &root), key);
    json_object_put(root);
    lt_client_close(&c);
    lt_signer_destroy(&s);
    return v;
}

static void count_cb(void *user, const lt_client_delivery *d)
{
    (void)d;
    (*(size_t *)user)++;
}

/* How many records queue q at node e ever stored (its retained history, replayed from seq
 * 1 as the broker identity id_short): read until 1 s passes without a delivery. */
static size_t stored_count(net *n, it_env *e, const char *id_short, const char *q)
{
    lt_signer *s = it_signer(&n->base, id_short);
    assert_non_null(s);
    lt_client *c = it_client(e, s, 0, 0);
    assert_non_null(c);
    size_t count = 0;
    lt_client_replay r = {.from_seq = 1};
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(c, q, 1000, &r, count_cb, &count, &why), LT_OK);
    int64_t deadline = it_now_ms() + 20000, quiet = it_now_ms() + 1000;
    while (it_now_ms() < quiet && it_now_ms() < deadline) {
        size_t before = count;
        lt_client_poll(c, 100, NULL);
        if (count != before)
            quiet = it_now_ms() + 1000;
    }
    lt_client_close(&c);
    lt_signer_destroy(&s);
    return count;
}

/* ---- a consumer that keeps every envelope ---- */

typedef struct keep {
    uint8_t **env;
    size_t *len;
    uint64_t *num;
    size_t n, cap;
    size_t via_ward_city; /* deliveries whose hops were exactly [ward, city] */
    lt_client *c;
} keep;

static void keep_cb(void *user, const lt_client_delivery *d)
{
    keep *k = user;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 256;
        k->env = realloc(k->env, k->cap * sizeof *k->env);
        k->len = realloc(k->len, k->cap * sizeof *k->len);
        k->num = realloc(k->num, k->cap * sizeof *k->num);
        assert_true(k->env && k->len && k->num);
    }
    k->env[k->n] = malloc(d->envelope_len);
    assert_non_null(k->env[k->n]);
    memcpy(k->env[k->n], d->envelope, d->envelope_len);
    k->len[k->n] = d->envelope_len;
    lt_env *env = NULL;
    k->num[k->n] = UINT64_MAX;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        k->num[k->n] = it_id_number(lt_env_message_id(env));
        lt_env_destroy(&env);
    }
    k->n++;
    if (d->nhops == 2 && strcmp(d->hops[0], "ward") == 0 && strcmp(d->hops[1], "city") == 0)
        k->via_ward_city++;
    lt_client_ack(k->c, d->queue, d->seq);
}

/* Consume dancu.capnhat at national until want records arrived (at most timeout_ms), then
 * quiet_ms more to catch any extra one. */
static void keep_collect(net *n, keep *k, size_t want, int timeout_ms, int quiet_ms)
{
    lt_signer *dancu = it_signer(&n->base, "dancu");
    assert_non_null(dancu);
    k->c = it_client(&n->national, dancu, 0, 0);
    assert_non_null(k->c);
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(k->c, "dancu.capnhat", 500, NULL, keep_cb, k, &why),
                     LT_OK);
    int64_t deadline = it_now_ms() + timeout_ms;
    while (k->n < want && it_now_ms() < deadline)
        lt_client_poll(k->c, 100, NULL);
    int64_t quiet = it_now_ms() + quiet_ms;
    while (it_now_ms() < quiet)
        lt_client_poll(k->c, 100, NULL);
    lt_client_flush(k->c, 5000);
    lt_client_close(&k->c);
    lt_signer_destroy(&dancu);
}

static void keep_fini(keep *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->env[i]);
    free(k->env);
    free(k->len);
    free(k->num);
    memset(k, 0, sizeof *k);
}

/* ---- publishing at the ward ---- */

typedef struct pubs {
    uint8_t **env;
    size_t *len;
    it_answer *ans;
    size_t n;
} pubs;

static void pubs_seal(net *n, pubs *p, size_t count, uint64_t first)
{
    lt_signer *q1 = it_signer(&n->base, "quan1");
    assert_non_null(q1);
    p->env = calloc(count, sizeof *p->env);
    p->len = calloc(count, sizeof *p->len);
    p->ans = calloc(count, sizeof *p->ans);
    assert_true(p->env && p->len && p->ans);
    p->n = count;
    for (size_t i = 0; i < count; i++) {
        p->env[i] = it_seal(q1, TOPIC, first + i, 64, &p->len[i], NULL);
        assert_non_null(p->env[i]);
    }
    lt_signer_destroy(&q1);
}

/* Send p's envelopes [from, to) to c without waiting for answers. */
static void pubs_send(lt_client *c, pubs *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        assert_int_equal(lt_client_publish(c, p->env[i], p->len[i], it_answer_cb, &p->ans[i],
                                           NULL),
                         LT_OK);
}

static void pubs_fini(pubs *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->env[i]);
    free(p->env);
    free(p->len);
    free(p->ans);
}

/* ---- tests ---- */

static void three_hops_deliver_every_record_once_in_order_byte_for_byte(void **state)
{
    net *n = *state;
    net_write(n, 30);
    net_start(n);
    pubs p;
    pubs_seal(n, &p, 300, 1000);
    lt_client *c = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(c);
    pubs_send(c, &p, 0, p.n);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    for (size_t i = 0; i < p.n; i++) {
        assert_true(p.ans[i].done);
        assert_int_equal(p.ans[i].code, LT_OK);
    }
    lt_client_close(&c);

    keep k = {0};
    keep_collect(n, &k, p.n, 60000, 1000);
    assert_int_equal(k.n, p.n);
    assert_int_equal(k.via_ward_city, p.n); /* each broker kept the hops and added its own */
    lt_trust *trust = it_trust(&n->base);
    assert_non_null(trust);
    for (size_t i = 0; i < k.n; i++) {
        /* in the order published, the very bytes the district signed, verifiable */
        assert_int_equal(k.num[i], 1000 + i);
        assert_int_equal(k.len[i], p.len[i]);
        assert_memory_equal(k.env[i], p.env[i], p.len[i]);
        lt_env *env = NULL;
        lt_why why = {{0}};
        assert_int_equal(lt_env_decode(k.env[i], k.len[i], NULL, &env, &why), LT_OK);
        assert_int_equal(lt_env_verify_received(env, trust, lt_env_now_ms(), &why), LT_OK);
        assert_string_equal(lt_env_source(env), "VN:GOV:000.00.00.H29.760:hotich");
        lt_env_destroy(&env);
    }
    lt_trust_destroy(&trust);
    /* what an operator sees: `lienthong links` at the ward, the link up, every record
     * forwarded */
    char cfg[IT_PATH_MAX];
    it_path(&n->ward, n->ward.cfg_name, cfg);
    assert_int_equal(it_cli(&n->ward, "links.out", 30000, "links", "-c", cfg, "--json",
                            (char *)NULL),
                     0);
    char *out = it_read_file(&n->ward, "links.out", NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"name\":\"city.uplink\""));
    assert_non_null(strstr(out, "\"state\":\"up\""));
    assert_non_null(strstr(out, "\"forwarded\":300"));
    free(out);
    keep_fini(&k);
    pubs_fini(&p);
    net_stop(n);
}

static void middle_broker_killed_ten_times_loses_nothing_and_duplicates_nothing(void **state)
{
    net *n = *state;
    net_write(n, 5);
    net_start(n);
    enum { ROUNDS = 10, PER_ROUND = 150 };
    pubs p;
    pubs_seal(n, &p, ROUNDS * PER_ROUND, 5000);
    lt_client *c = it_client(&n->ward, NULL, 256, 30000);
    assert_non_null(c);
    for (size_t r = 0; r < ROUNDS; r++) {
        /* records on their way through the links while the city broker dies */
        pubs_send(c, &p, r * PER_ROUND, (r + 1) * PER_ROUND);
        lt_client_poll(c, 20, NULL);
        it_broker_kill9(&n->city);
        assert_int_equal(lt_client_flush(c, 30000), LT_OK);
        assert_true(it_broker_start(&n->city, START_MS));
    }
    lt_client_close(&c);
    size_t acked = 0;
    for (size_t i = 0; i < p.n; i++)
        acked += p.ans[i].done && p.ans[i].code == LT_OK;
    assert_int_equal(acked, p.n); /* the ward never went down */

    keep k = {0};
    keep_collect(n, &k, p.n, 120000, 3000);
    uint8_t *seen = calloc(p.n, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < k.n; i++) {
        assert_true(k.num[i] >= 5000 && k.num[i] < 5000 + p.n);
        size_t at = (size_t)(k.num[i] - 5000);
        assert_int_equal(seen[at], 0); /* none twice */
        seen[at] = 1;
    }
    assert_int_equal(k.n, p.n); /* none lost */
    free(seen);
    keep_fini(&k);
    pubs_fini(&p);
    net_stop(n);
}

static void a_peer_stopped_longer_than_ack_wait_recovers(void **state)
{
    net *n = *state;
    net_write(n, 1);
    net_start(n);
    pubs p;
    pubs_seal(n, &p, 200, 9000);
    assert_true(it_broker_signal(&n->national, SIGSTOP));
    lt_client *c = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(c);
    pubs_send(c, &p, 0, p.n);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    lt_client_close(&c);
    /* the city's link holds them past its queue's ack_wait (1 s): the city redelivers them
     * to its link while national does not answer */
    int64_t deadline = it_now_ms() + 30000;
    while (qfield(n, &n->city, "broker-city", "uplink", "redeliveries") == 0 &&
           it_now_ms() < deadline)
        it_log_wait(&n->city, "\x01", 200); /* a bounded pause between two looks */
    assert_true(qfield(n, &n->city, "broker-city", "uplink", "redeliveries") > 0);
    assert_true(it_broker_signal(&n->national, SIGCONT));
    keep k = {0};
    keep_collect(n, &k, p.n, 60000, 2000);
    assert_int_equal(k.n, p.n);
    for (size_t i = 0; i < k.n; i++)
        assert_int_equal(k.num[i], 9000 + i);
    keep_fini(&k);
    pubs_fini(&p);
    net_stop(n);
}

/* A -> B -> A: the ward forwards to the city, the city forwards the same topics back. */
static void a_loop_in_the_config_does_not_circulate(void **state)
{
    net *n = *state;
    node_yaml(&n->ward, "ward",
              "queues:\n"
              "  - name: uplink\n"
              "    owner: " ID_WARD "\n"
              "    bind: [\"79.760.>\"]\n"
              "  - name: dancu.capnhat\n"
              "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
              "    bind: [\"79.*.hotich.>\"]\n"
              "peers:\n"
              "  - name: city\n"
              "    agency: " ID_CITY "\n"
              "    relay: [\"79.>\"]\n"
              "links:\n"
              "  - peer: city\n"
              "    endpoint: %s\n"
              "    forward: uplink\n",
              n->city.endpoint);
    node_yaml(&n->city, "city",
              "queues:\n"
              "  - name: back\n"
              "    owner: " ID_CITY "\n"
              "    bind: [\"79.>\"]\n"
              "peers:\n"
              "  - name: ward\n"
              "    agency: " ID_WARD "\n"
              "    relay: [\"79.760.>\"]\n"
              "links:\n"
              "  - peer: ward\n"
              "    endpoint: %s\n"
              "    forward: back\n",
              n->ward.endpoint);
    assert_true(it_broker_start(&n->city, START_MS));
    assert_true(it_broker_start(&n->ward, START_MS));
    pubs p;
    pubs_seal(n, &p, 20, 100);
    lt_client *c = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(c);
    pubs_send(c, &p, 0, p.n);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    lt_client_close(&c);
    /* each record went ward -> city -> ward once, and the ward took it back as a duplicate
     * (or refused it as a loop): wait until both links' queues are drained */
    int64_t deadline = it_now_ms() + 30000;
    for (;;) {
        bool drained = qfield(n, &n->ward, "broker-ward", "uplink", "depth") == 0 &&
                       qfield(n, &n->city, "broker-city", "back", "depth") == 0 &&
                       qfield(n, &n->ward, "broker-ward", "dancu.capnhat", "depth") ==
                           (int64_t)p.n;
        if (drained || it_now_ms() >= deadline)
            break;
        it_log_wait(&n->ward, "\x01", 200); /* a bounded pause between two looks */
    }
    assert_int_equal(qfield(n, &n->ward, "broker-ward", "uplink", "depth"), 0);
    assert_int_equal(qfield(n, &n->city, "broker-city", "back", "depth"), 0);
    /* nothing circulates: two seconds later each broker still stored each record once */
    it_log_wait(&n->ward, "\x01", 2000);
    assert_int_equal(stored_count(n, &n->city, "broker-city", "back"), p.n);
    assert_int_equal(stored_count(n, &n->ward, "broker-ward", "uplink"), p.n);
    assert_int_equal(qfield(n, &n->ward, "broker-ward", "dancu.capnhat", "depth"),
                     (int64_t)p.n);
    pubs_fini(&p);
    it_broker_stop(&n->ward, 15000);
    it_broker_stop(&n->city, 15000);
}

/* Publish env with hops over c and return the answer's code. */
static lt_err publish_hops(lt_client *c, const uint8_t *env, size_t len, const char *const *hops,
                           size_t nhops, char *reason, size_t cap)
{
    it_answer a = {0};
    assert_int_equal(lt_client_publish_hops(c, env, len, hops, nhops, it_answer_cb, &a, NULL),
                     LT_OK);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    assert_true(a.done);
    if (reason)
        snprintf(reason, cap, "%s", a.reason);
    return a.code;
}

static void hops_are_checked_and_a_tampered_envelope_is_refused_at_the_next_hop(void **state)
{
    net *n = *state;
    net_write(n, 30);
    assert_true(it_broker_start(&n->national, START_MS));
    lt_signer *q1 = it_signer(&n->base, "quan1"), *city = it_signer(&n->base, "broker-city");
    assert_true(q1 && city);
    size_t len;
    uint8_t *env = it_seal(q1, TOPIC, 1, 0, &len, NULL);
    assert_non_null(env);
    char why[LT_WHY_MAX];

    /* not a peer: unauthenticated, or an agency */
    lt_client *anon = it_client(&n->national, NULL, 0, 0);
    const char *ward[] = {"ward"};
    assert_int_equal(publish_hops(anon, env, len, ward, 1, why, sizeof why), LT_ENOT_PEER);
    lt_client_close(&anon);
    lt_client *agency = it_client(&n->national, q1, 0, 0);
    assert_int_equal(publish_hops(agency, env, len, ward, 1, why, sizeof why), LT_ENOT_PEER);
    lt_client_close(&agency);

    lt_client *peer = it_client(&n->national, city, 0, 0);
    assert_non_null(peer);
    /* a loop: the hops name national already */
    const char *loop[] = {"ward", "national", "city"};
    assert_int_equal(publish_hops(peer, env, len, loop, 3, why, sizeof why), LT_ELOOP);
    assert_non_null(strstr(why, "national"));
    /* the hop limit: 8 names */
    const char *eight[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    assert_int_equal(publish_hops(peer, env, len, eight, 8, why, sizeof why), LT_EHOP_LIMIT);
    assert_int_equal(publish_hops(peer, env, len, eight, 7, why, sizeof why), LT_OK);
    /* a tampered envelope on the link: one payload byte changed */
    uint8_t *bad = it_seal(q1, TOPIC, 2, 0, &len, NULL);
    assert_non_null(bad);
    bad[len / 2] ^= 0x01;
    lt_err e = publish_hops(peer, bad, len, ward, 1, why, sizeof why);
    assert_true(e == LT_EHASH || e == LT_ESIG || e == LT_EPROTO || e == LT_EPAYLOAD ||
                e == LT_ECERT_INVALID || e == LT_EKEYID);
    free(bad);
    lt_client_close(&peer);
    free(env);

    /* a peer relays only its relay patterns: the ward's broker is no peer of national, and
     * national lists the city with 79.>; the district's ACL still applies to the record */
    uint8_t *other = it_seal(q1, "79.761.hotich.khaisinh", 3, 0, &len, NULL);
    peer = it_client(&n->national, city, 0, 0);
    assert_int_equal(publish_hops(peer, other, len, ward, 1, why, sizeof why), LT_EACL);
    free(other);
    lt_client_close(&peer);
    lt_signer *wardid = it_signer(&n->base, "broker-ward");
    peer = it_client(&n->national, wardid, 0, 0);
    env = it_seal(q1, TOPIC, 4, 0, &len, NULL);
    assert_int_equal(publish_hops(peer, env, len, ward, 1, why, sizeof why), LT_ENOT_PEER);
    free(env);
    lt_client_close(&peer);
    lt_signer_destroy(&wardid);
    lt_signer_destroy(&q1);
    lt_signer_destroy(&city);
    it_broker_stop(&n->national, 15000);
}

/* Publish env over c and wait for its answer's code. */
static lt_err publish_code(lt_client *c, const uint8_t *env, size_t len)
{
    it_answer a = {0};
    assert_true(it_publish_wait(c, env, len, &a, 30000));
    return a.code;
}

static void a_revoked_agencys_records_are_refused_at_every_hop_after_sighup(void **state)
{
    net *n = *state;
    net_write(n, 30);
    net_start(n);
    pubs before, queued;
    pubs_seal(n, &before, 10, 30000);
    pubs_seal(n, &queued, 10, 31000);
    lt_client *c = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(c);
    pubs_send(c, &before, 0, before.n);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    keep k = {0};
    keep_collect(n, &k, before.n, 60000, 0);
    assert_int_equal(k.n, before.n);
    keep_fini(&k);
    /* the city is down: these wait in the ward's uplink */
    assert_int_equal(it_broker_stop(&n->city, 15000), 0);
    pubs_send(c, &queued, 0, queued.n);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    for (size_t i = 0; i < queued.n; i++)
        assert_int_equal(queued.ans[i].code, LT_OK);

    /* the district's certificate is revoked; every broker reloads the CRL */
    assert_true(it_revoke(&n->base, "quan1"));
    assert_true(it_broker_hup(&n->ward));
    assert_true(it_broker_hup(&n->national));
    assert_true(it_log_wait(&n->ward, "CRL reloaded", 10000));
    assert_true(it_log_wait(&n->national, "CRL reloaded", 10000));
    assert_true(it_broker_start(&n->city, START_MS)); /* reads the new CRL */

    /* at the ward: a new record of the district is refused */
    lt_signer *q1 = it_signer(&n->base, "quan1");
    size_t len;
    uint8_t *env = it_seal(q1, TOPIC, 32000, 0, &len, NULL);
    assert_int_equal(publish_code(c, env, len), LT_ECERT_REVOKED);
    lt_client_close(&c);
    /* at the city: the ten queued at the ward are refused when the link brings them, and the
     * link NAKs them at the ward (counted as refused) */
    int64_t deadline = it_now_ms() + 30000;
    while (metric(n, &n->ward, "lienthong_link_refused_total{link=\"city.uplink\",peer=\"city\","
                               "direction=\"forward\"}") < 10 &&
           it_now_ms() < deadline)
        it_log_wait(&n->ward, "\x01", 200); /* a bounded pause between two looks */
    assert_true(metric(n, &n->ward, "lienthong_link_refused_total{link=\"city.uplink\","
                                    "peer=\"city\",direction=\"forward\"}") >= 10);
    assert_true(it_log_wait(&n->ward, "CERT_REVOKED", 1000));
    /* at national: the same record relayed by the city's identity */
    lt_signer *city = it_signer(&n->base, "broker-city");
    lt_client *peer = it_client(&n->national, city, 0, 0);
    assert_non_null(peer);
    const char *hops[] = {"ward", "city"};
    char r[LT_WHY_MAX];
    assert_int_equal(publish_hops(peer, env, len, hops, 2, r, sizeof r), LT_ECERT_REVOKED);
    lt_client_close(&peer);
    /* and nothing of the district's reached the national database after the revocation */
    keep_collect(n, &k, 1, 2000, 0);
    assert_int_equal(k.n, 0);
    keep_fini(&k);
    free(env);
    lt_signer_destroy(&q1);
    lt_signer_destroy(&city);
    pubs_fini(&before);
    pubs_fini(&queued);
    net_stop(n);
}

/* The ward's config as net_write writes it, with its links section or without. */
static void ward_with_link(net *n, bool link)
{
    net_write(n, 30);
    if (link)
        return;
    char *text = it_read_file(&n->base, n->ward.cfg_name, NULL);
    assert_non_null(text);
    char *cut = strstr(text, "links:\n");
    assert_non_null(cut);
    *cut = '\0';
    assert_true(it_write_file(&n->base, n->ward.cfg_name, text));
    free(text);
}

static void sighup_adds_and_removes_a_link_without_a_restart(void **state)
{
    net *n = *state;
    ward_with_link(n, false);
    net_start(n);
    pid_t ward_pid = n->ward.pid;
    pubs p;
    pubs_seal(n, &p, 20, 40000);
    lt_client *c = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(c);
    pubs_send(c, &p, 0, 10);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    /* no link yet: they wait at the ward */
    keep k = {0};
    keep_collect(n, &k, 1, 1000, 0);
    assert_int_equal(k.n, 0);
    keep_fini(&k);
    /* the link is added to the file: SIGHUP starts it */
    ward_with_link(n, true);
    assert_true(it_broker_hup(&n->ward));
    assert_true(it_log_wait(&n->ward, "links reloaded", 10000));
    assert_true(it_log_wait(&n->ward, "1 started, 0 stopped, 1 running", 1000));
    keep_collect(n, &k, 10, 30000, 0);
    assert_int_equal(k.n, 10);
    keep_fini(&k);
    /* removed again: SIGHUP stops it, new records wait at the ward */
    ward_with_link(n, false);
    assert_true(it_broker_hup(&n->ward));
    assert_true(it_log_wait(&n->ward, "0 started, 1 stopped, 0 running", 10000));
    pubs_send(c, &p, 10, 20);
    assert_int_equal(lt_client_flush(c, 30000), LT_OK);
    keep_collect(n, &k, 1, 1500, 0);
    assert_int_equal(k.n, 0);
    keep_fini(&k);
    assert_int_equal(qfield(n, &n->ward, "broker-ward", "uplink", "depth"), 10);
    assert_int_equal(n->ward.pid, ward_pid); /* never restarted */
    assert_true(it_broker_alive(&n->ward));
    lt_client_close(&c);
    pubs_fini(&p);
    net_stop(n);
}

/* The public CURVE key dev-init wrote for a broker identity (certs/<short>.curve.pub). */
static void curve_pub(net *n, const char *shortname, char out[41])
{
    char rel[128];
    snprintf(rel, sizeof rel, "certs/%s.curve.pub", shortname);
    char *t = it_read_file(&n->base, rel, NULL);
    assert_non_null(t);
    assert_true(strlen(t) >= 40);
    memcpy(out, t, 40);
    out[40] = '\0';
    free(t);
}

/* A client of endpoint over CURVE with the given server key and key pair (plaintext when
 * server is NULL); authenticated as as unless NULL. Returns the client and the AUTH's
 * outcome in *auth (LT_OK when not asked). */
static lt_client *curve_client(const char *endpoint, const char *server, const char *pub,
                               const char *sec, lt_signer *as, lt_err *auth)
{
    lt_client_opts o = {.request_timeout_ms = 3000,
                        .ack_timeout_ms = 3000,
                        .curve_server_key = server,
                        .curve_public_key = pub,
                        .curve_secret_key = sec};
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(endpoint, &o, &c, &why), LT_OK);
    *auth = as ? lt_client_auth(c, NULL, as, &why) : LT_OK;
    return c;
}

/* The value of the series line starting with prefix in the node's /metrics, -1 if absent. */
static double metric(net *n, it_env *e, const char *prefix)
{
    char tok[256];
    assert_true(it_admin_token(&n->base, tok, sizeof tok));
    it_http_resp r = {0};
    assert_true(it_http_get(e->admin_port, "/metrics", tok, 10000, &r));
    assert_int_equal(r.status, 200);
    double v = -1;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            v = atof(line + strlen(prefix));
    it_http_resp_fini(&r);
    return v;
}

/* Give node e's config a CURVE endpoint on listen with keys/<key>.curve (dev-init's): its
 * links present that key, its ZAP handler maps the keys it lists. */
static void add_curve(net *n, it_env *e, const char *listen, const char *key)
{
    char *text = it_read_file(&n->base, e->cfg_name, NULL);
    assert_non_null(text);
    char curve[512];
    snprintf(curve, sizeof curve,
             "  curve:\n    listen: %s\n    secret_key_file: keys/%s.curve\n  identity:\n", listen,
             key);
    char *t = subst(text, (const char *[]){"  identity:\n"}, (const char *[]){curve}, 1);
    assert_true(it_write_file(&n->base, e->cfg_name, t));
    free(text);
    free(t);
}

static void curve_links_carry_records_and_a_client_without_the_right_key_cannot_connect(
    void **state)
{
    net *n = *state;
    char ward_pub[41], city_pub[41], q1_pub[41], q1_sec[41], bad_pub[41], bad_sec[41];
    curve_pub(n, "broker-ward", ward_pub);
    curve_pub(n, "broker-city", city_pub);
    assert_int_equal(zmq_curve_keypair(q1_pub, q1_sec), 0);
    assert_int_equal(zmq_curve_keypair(bad_pub, bad_sec), 0);
    char city_curve[64], ward_curve[64];
    snprintf(city_curve, sizeof city_curve, "tcp://127.0.0.1:%u", it_free_port());
    snprintf(ward_curve, sizeof ward_curve, "tcp://127.0.0.1:%u", it_free_port());
    node_yaml(&n->ward, "ward",
              "queues:\n"
              "  - name: uplink\n"
              "    owner: " ID_WARD "\n"
              "    bind: [\"79.760.>\"]\n"
              "    max_deliver: 1000\n"
              "peers:\n"
              "  - name: city\n"
              "    agency: " ID_CITY "\n"
              "    curve_key: \"%s\"\n"
              "links:\n"
              "  - peer: city\n"
              "    endpoint: %s\n"
              "    forward: uplink\n"
              "    retry_max_ms: 500\n",
              city_pub, city_curve);
    add_curve(n, &n->ward, ward_curve, "broker-ward");
    node_yaml(&n->city, "city",
              "queues:\n"
              "  - name: uplink\n"
              "    owner: " ID_CITY "\n"
              "    bind: [\"79.>\"]\n"
              "    max_deliver: 1000\n"
              "peers:\n"
              "  - name: ward\n"
              "    agency: " ID_WARD "\n"
              "    relay: [\"79.760.>\"]\n"
              "    curve_key: \"%s\"\n"
              "  - name: national\n"
              "    agency: " ID_NATIONAL "\n"
              "curve_clients:\n"
              "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
              "    key: \"%s\"\n"
              "links:\n"
              "  - peer: national\n"
              "    endpoint: %s\n"
              "    forward: uplink\n"
              "    retry_max_ms: 500\n",
              ward_pub, q1_pub, n->national.endpoint);
    add_curve(n, &n->city, city_curve, "broker-city");
    net_write_national(n);
    net_start(n);

    /* records cross the CURVE link ward -> city */
    pubs p;
    pubs_seal(n, &p, 50, 20000);
    lt_client *pc = it_client(&n->ward, NULL, 64, 30000);
    assert_non_null(pc);
    pubs_send(pc, &p, 0, p.n);
    assert_int_equal(lt_client_flush(pc, 30000), LT_OK);
    lt_client_close(&pc);
    keep k = {0};
    keep_collect(n, &k, p.n, 60000, 500);
    assert_int_equal(k.n, p.n);
    keep_fini(&k);
    pubs_fini(&p);

    /* an agency whose key the city lists: AUTH as that agency works, as another is refused */
    lt_signer *q1 = it_signer(&n->base, "quan1"), *tp = it_signer(&n->base, "tuphap");
    lt_err auth;
    lt_client *ok = curve_client(city_curve, city_pub, q1_pub, q1_sec, q1, &auth);
    assert_int_equal(auth, LT_OK);
    lt_client_close(&ok);
    lt_client *other = curve_client(city_curve, city_pub, q1_pub, q1_sec, tp, &auth);
    assert_int_equal(auth, LT_EAGENCY_MISMATCH);
    lt_client_close(&other);
    /* a key the city does not list, and a plaintext client: no connection at all */
    lt_why why = {{0}};
    lt_client *bad = curve_client(city_curve, city_pub, bad_pub, bad_sec, NULL, &auth);
    assert_int_equal(lt_client_ping(bad, 2000, &why), LT_ETIMEDOUT);
    lt_client_close(&bad);
    lt_client *plain = curve_client(city_curve, NULL, NULL, NULL, NULL, &auth);
    assert_int_equal(lt_client_ping(plain, 2000, &why), LT_ETIMEDOUT);
    lt_client_close(&plain);
    /* the CLI over CURVE: an agency config with its key file and the broker's public key */
    char line[64], yaml[1024];
    snprintf(line, sizeof line, "%s\n", q1_sec);
    assert_true(it_write_file(&n->base, "keys/quan1.curve", line));
    snprintf(yaml, sizeof yaml,
             "agency:\n  id: VN:GOV:000.00.00.H29.760:hotich\n  key: ../keys/quan1.key.pem\n"
             "  cert: ../certs/quan1.cert.pem\n  curve_key: ../keys/quan1.curve\n"
             "broker:\n  endpoint: %s\n  curve_server_key: \"%s\"\n",
             city_curve, city_pub);
    assert_true(it_write_file(&n->base, "agencies/quan1-curve.yaml", yaml));
    char cfg[IT_PATH_MAX], data[IT_PATH_MAX];
    it_path(&n->base, "agencies/quan1-curve.yaml", cfg);
    snprintf(data, sizeof data, "%s/scripts/demo-data/khaisinh-quan1.jsonl", LT_TEST_SRCDIR);
    assert_int_equal(it_cli(&n->base, "pub-curve.out", 30000, "pub", "-c", cfg, "-t", TOPIC,
                            "--type", IT_RECORD_TYPE, "-f", data, (char *)NULL),
                     0);
    char *pub_err = it_read_file(&n->base, "pub-curve.out.err", NULL);
    assert_non_null(pub_err);
    assert_non_null(strstr(pub_err, "0 nacked, 0 failed"));
    free(pub_err);
    /* both refusals counted */
    assert_true(metric(n, &n->city, "lienthong_curve_handshakes_total{outcome=\"unknown_key\"}") >=
                1);
    assert_true(metric(n, &n->city, "lienthong_curve_handshakes_total{outcome=\"protocol\"}") >=
                1);
    assert_true(metric(n, &n->city, "lienthong_curve_handshakes_total{outcome=\"accepted\"}") >=
                3);
    assert_true(metric(n, &n->ward,
                       "lienthong_link_forwarded_total{link=\"city.uplink\",peer=\"city\","
                       "direction=\"forward\"}") == 50);
    assert_true(metric(n, &n->city, "lienthong_link_forwarded_total{link=\"national.uplink\","
                                     "peer=\"national\",direction=\"forward\"}") >= 50);
    lt_signer_destroy(&q1);
    lt_signer_destroy(&tp);
    net_stop(n);
}

/* The national broker with a CURVE endpoint on listen (its dev-init key pair), the city as
 * its peer relaying relay (a YAML flow list), and clients (a curve_clients section, or ""). */
static void national_curve(net *n, const char *listen, const char *relay, const char *clients)
{
    node_yaml(&n->national, "national",
              "queues:\n"
              "  - name: dancu.capnhat\n"
              "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
              "    bind: [\"79.*.hotich.>\"]\n"
              "peers:\n"
              "  - name: city\n"
              "    agency: " ID_CITY "\n"
              "    relay: %s\n"
              "%s",
              relay, clients);
    add_curve(n, &n->national, listen, "broker-national");
}

/* A curve_clients section binding the key pub to the district (with its certificate when
 * cert). */
static void district_key(char *out, size_t cap, const char *pub, bool cert)
{
    snprintf(out, cap,
             "curve_clients:\n"
             "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
             "    key: \"%s\"\n"
             "%s",
             pub, cert ? "    cert: certs/quan1.cert.pem\n" : "");
}

/* Whether a CURVE client with key pair (pub, sec) gets a PONG from listen within 2 s. */
static bool curve_connects(const char *listen, const char *server, const char *pub,
                           const char *sec)
{
    lt_err auth;
    lt_why why = {{0}};
    lt_client *c = curve_client(listen, server, pub, sec, NULL, &auth);
    lt_err e = lt_client_ping(c, 2000, &why);
    lt_client_close(&c);
    return e == LT_OK;
}

/* What the broker answers to env published over c within 3 s; LT_ETIMEDOUT when nothing. */
static lt_err publish_answer(lt_client *c, const uint8_t *env, size_t len)
{
    it_answer a = {0};
    if (lt_client_publish(c, env, len, it_answer_cb, &a, NULL) != LT_OK)
        return LT_EIO;
    lt_client_flush(c, 3000);
    return a.done ? a.code : LT_ETIMEDOUT;
}

static void sighup_applies_curve_clients_and_peers_without_a_restart(void **state)
{
    net *n = *state;
    char nat_pub[41], a_pub[41], a_sec[41], b_pub[41], b_sec[41], listen[64], clients[512];
    curve_pub(n, "broker-national", nat_pub);
    assert_int_equal(zmq_curve_keypair(a_pub, a_sec), 0);
    assert_int_equal(zmq_curve_keypair(b_pub, b_sec), 0);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%u", it_free_port());
    district_key(clients, sizeof clients, a_pub, false);
    national_curve(n, listen, "[\"79.>\"]", clients);
    assert_true(it_broker_start(&n->national, START_MS));
    pid_t pid = n->national.pid;
    lt_signer *q1 = it_signer(&n->base, "quan1"), *city = it_signer(&n->base, "broker-city");
    assert_true(q1 && city);
    const char *hops[] = {"ward", "city"};
    char reason[LT_WHY_MAX];
    size_t len;

    /* before: key A connects and authenticates, key B cannot connect, the city relays 79.> */
    lt_err auth;
    lt_why why = {{0}};
    lt_client *a_old = curve_client(listen, nat_pub, a_pub, a_sec, q1, &auth);
    assert_int_equal(auth, LT_OK);
    assert_false(curve_connects(listen, nat_pub, b_pub, b_sec));
    uint8_t *env = it_seal(q1, TOPIC, 1, 0, &len, NULL);
    lt_client *peer = it_client(&n->national, city, 0, 0);
    assert_int_equal(publish_hops(peer, env, len, hops, 2, reason, sizeof reason), LT_OK);
    lt_client_close(&peer);
    free(env);

    /* a malformed file: refused with its reason, the old keys and peers stay in force */
    assert_true(it_write_file(&n->base, n->national.cfg_name, "broker: [unclosed\n"));
    assert_true(it_broker_hup(&n->national));
    assert_true(it_log_wait(&n->national, "config reload failed, the previous ACL, peers, "
                                          "curve_clients and links stay in force",
                            10000));
    assert_int_equal(lt_client_ping(a_old, 3000, &why), LT_OK);
    assert_true(curve_connects(listen, nat_pub, a_pub, a_sec));

    /* the file changes: B replaces A, the city may relay only 79.761.> */
    district_key(clients, sizeof clients, b_pub, false);
    national_curve(n, listen, "[\"79.761.>\"]", clients);
    assert_true(it_broker_hup(&n->national));
    assert_true(it_log_wait(&n->national, "CURVE keys reloaded", 10000));
    /* a key added by SIGHUP connects and authenticates as its agency */
    lt_client *b = curve_client(listen, nat_pub, b_pub, b_sec, q1, &auth);
    assert_int_equal(auth, LT_OK);
    lt_client_close(&b);
    /* a key removed by SIGHUP cannot connect any more ... */
    assert_false(curve_connects(listen, nat_pub, a_pub, a_sec));
    /* ... and its connection from before was closed: nothing it sends is taken */
    assert_true(it_log_wait(&n->national, "is no longer accepted", 5000));
    env = it_seal(q1, TOPIC, 2, 0, &len, NULL);
    assert_int_not_equal(publish_answer(a_old, env, len), LT_OK);
    lt_client_close(&a_old);
    assert_true(metric(n, &n->national, "lienthong_curve_sessions_closed_total ") >= 1);
    assert_true(metric(n, &n->national,
                       "lienthong_curve_handshakes_total{outcome=\"unknown_key\"}") >= 2);
    /* the narrowed relay pattern refuses the record it accepted before */
    peer = it_client(&n->national, city, 0, 0);
    assert_int_equal(publish_hops(peer, env, len, hops, 2, reason, sizeof reason), LT_EACL);
    assert_non_null(strstr(reason, "may not relay"));
    lt_client_close(&peer);
    /* the city removed from the peers: its hops are refused, NOT_A_PEER */
    node_yaml(&n->national, "national",
              "queues:\n"
              "  - name: dancu.capnhat\n"
              "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
              "    bind: [\"79.*.hotich.>\"]\n"
              "%s",
              clients);
    add_curve(n, &n->national, listen, "broker-national");
    assert_true(it_broker_hup(&n->national));
    assert_true(it_log_wait(&n->national, "ACL reloaded from", 10000));
    assert_true(it_log_wait(&n->national, ": 0 peers", 10000));
    peer = it_client(&n->national, city, 0, 0);
    assert_int_equal(publish_hops(peer, env, len, hops, 2, reason, sizeof reason), LT_ENOT_PEER);
    lt_client_close(&peer);
    free(env);
    assert_int_equal(n->national.pid, pid); /* never restarted */
    lt_signer_destroy(&q1);
    lt_signer_destroy(&city);
    it_broker_stop(&n->national, 15000);
}

static void a_revoked_agencys_curve_key_is_refused_at_the_handshake(void **state)
{
    net *n = *state;
    char nat_pub[41], pub[41], sec[41], listen[64], clients[512];
    curve_pub(n, "broker-national", nat_pub);
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%u", it_free_port());
    district_key(clients, sizeof clients, pub, true);
    national_curve(n, listen, "[\"79.>\"]", clients);
    assert_true(it_broker_start(&n->national, START_MS));
    lt_signer *q1 = it_signer(&n->base, "quan1");
    assert_non_null(q1);
    lt_err auth;
    lt_client *old = curve_client(listen, nat_pub, pub, sec, q1, &auth);
    assert_int_equal(auth, LT_OK);
    assert_true(metric(n, &n->national, "lienthong_curve_handshakes_total{outcome=\"revoked\"}") ==
                0);

    /* the district's certificate is revoked; the national broker reloads the CRL */
    assert_true(it_revoke(&n->base, "quan1"));
    assert_true(it_broker_hup(&n->national));
    assert_true(it_log_wait(&n->national, "CRL reloaded", 10000));
    /* its connection is closed, and its key is refused at the handshake, counted */
    assert_true(it_log_wait(&n->national, "is no longer accepted", 5000));
    assert_false(curve_connects(listen, nat_pub, pub, sec));
    assert_true(it_log_wait(&n->national, "refused at the handshake", 5000));
    assert_true(it_log_wait(&n->national, "CERT_REVOKED", 1000));
    assert_true(metric(n, &n->national, "lienthong_curve_handshakes_total{outcome=\"revoked\"}") >=
                1);
    size_t len;
    uint8_t *env = it_seal(q1, TOPIC, 1, 0, &len, NULL);
    assert_int_not_equal(publish_answer(old, env, len), LT_OK);
    free(env);
    lt_client_close(&old);
    lt_signer_destroy(&q1);
    it_broker_stop(&n->national, 15000);
}

/* `lienthongd --check` of node e's config: its exit status, stderr in *err (malloc'ed). */
static int check_config(net *n, it_env *e, char **err)
{
    char cfg[IT_PATH_MAX], out[IT_PATH_MAX];
    char *argv[] = {(char *)LT_LIENTHONGD, (char *)"--check", (char *)"-c",
                    it_path(&n->base, e->cfg_name, cfg), NULL};
    pid_t pid = it_spawn_prog(argv, it_path(&n->base, "check.out", out));
    assert_true(pid > 0);
    int rc = it_wait(pid, 30000);
    *err = it_read_file(&n->base, "check.out.err", NULL);
    assert_non_null(*err);
    return rc;
}

static void a_curve_key_bound_to_another_agencys_cert_or_a_bad_secret_key_is_refused(
    void **state)
{
    net *n = *state;
    char pub[41], sec[41], listen[64], clients[512];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%u", it_free_port());
    district_key(clients, sizeof clients, pub, true);
    national_curve(n, listen, "[\"79.>\"]", clients);
    char *err = NULL;
    assert_int_equal(check_config(n, &n->national, &err), 0);
    free(err);
    /* the district's key listed with the Department of Justice's certificate */
    char *wrong = subst(clients, (const char *[]){"quan1.cert"}, (const char *[]){"tuphap.cert"},
                        1);
    national_curve(n, listen, "[\"79.>\"]", wrong);
    free(wrong);
    assert_int_equal(check_config(n, &n->national, &err), 2);
    assert_non_null(strstr(err, "curve_clients[0]"));
    assert_non_null(strstr(err, "not of VN:GOV:000.00.00.H29.760:hotich"));
    free(err);
    /* a secret key file whose first line is no CURVE secret key */
    national_curve(n, listen, "[\"79.>\"]", clients);
    assert_true(it_write_file(&n->base, "keys/broker-national.curve", "not a key\n"));
    assert_int_equal(check_config(n, &n->national, &err), 2);
    assert_non_null(strstr(err, "broker.curve.secret_key_file"));
    assert_non_null(strstr(err, "40 characters of Z85"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sighup_applies_curve_clients_and_peers_without_a_restart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_revoked_agencys_curve_key_is_refused_at_the_handshake,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_curve_key_bound_to_another_agencys_cert_or_a_bad_secret_key_is_refused, setup,
            teardown),
        cmocka_unit_test_setup_teardown(sighup_adds_and_removes_a_link_without_a_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_revoked_agencys_records_are_refused_at_every_hop_after_sighup, setup, teardown),
        cmocka_unit_test_setup_teardown(
            curve_links_carry_records_and_a_client_without_the_right_key_cannot_connect, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            hops_are_checked_and_a_tampered_envelope_is_refused_at_the_next_hop, setup, teardown),
        cmocka_unit_test_setup_teardown(three_hops_deliver_every_record_once_in_order_byte_for_byte,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_loop_in_the_config_does_not_circulate, setup, teardown),
        cmocka_unit_test_setup_teardown(a_peer_stopped_longer_than_ack_wait_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            middle_broker_killed_ten_times_loses_nothing_and_duplicates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
