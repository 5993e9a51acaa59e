/*
 * it_security_session.c - a session is exactly what its AUTH proved, bound to its
 * connection: the findings of the outside probe, reproduced against a real lienthongd with
 * raw ZeroMQ sockets (a client that does what the library never would).
 *
 *  - HELLO+AUTH as one agency and, in the same burst, HELLO as another with a garbage AUTH
 *    must not end WELCOMEd as the other agency;
 *  - a connection presenting the routing id of a live, authenticated connection must not
 *    take it over; one presenting it after that connection closed must inherit nothing;
 *  - a CANCEL without a session is refused NOT_AUTHENTICATED, one whose message id is not 16
 *    bytes BAD_MESSAGE_ID, each with its reason;
 *  - an ACKS or DELIVERS frame (broker to client only) from a client is refused MALFORMED:
 *    not answered (it has no tag to echo, docs/protocol.md §2.3) but counted, its logged
 *    reason naming the kind, and the connection and its session go on.
 *
 * "Nothing arrives" is checked by waiting a bounded time for a frame that must not come,
 * after a control frame (PING) that must come, so the wait ends early when the broker is
 * quick and a slow broker cannot make the test pass by being slow.
 */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"

#include <lienthong/v1/envelope.pb-c.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-session\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 256\n"
                                  "  verify_threads: 2\n"
                                  "  max_frame_bytes: 65536\n"
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
                                  "  - agency: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    publish: []\n"
                                  "queues:\n"
                                  "  - name: sess.dancu\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.sess.>\"]\n"
                                  "  - name: sess.acks\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.acks.>\"]\n"
                                  "  - name: sess.batch\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.batch.>\"]\n"
                                  "  - name: sess.refused\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.refused.>\"]\n";

static it_env env;
static void *zctx;
static lt_signer *quan1, *dancu;
static lt_client *pub;
static uint64_t next_n = 1;

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) ||
        !it_broker_start(&env, 30000))
        return -1;
    quan1 = it_signer(&env, "quan1");
    dancu = it_signer(&env, "dancu");
    pub = it_client(&env, NULL, 0, 0);
    zctx = zmq_ctx_new();
    return quan1 && dancu && pub && zctx ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_client_close(&pub);
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&dancu);
    /* zctx is not terminated: a failed test leaves its raw sockets open (cmocka jumps out
     * of it), and zmq_ctx_term would wait for them forever; the process ends here anyway */
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
}

/* ---- raw frames ---- */

static void *raw_socket(const char *routing_id)
{
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (routing_id)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, routing_id, strlen(routing_id));
    assert_int_equal(zmq_connect(s, env.endpoint), 0);
    return s;
}

/* The next frame of kind, skipping PINGs and other kinds, within timeout_ms; NULL if none. */
static Lienthong__V1__Frame *expect_kind(void *sock, int kind, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        Lienthong__V1__Frame *f = it_frame_recv(sock, 100);
        if (!f)
            continue;
        if ((int)f->kind_case == kind)
            return f;
        lienthong__v1__frame__free_unpacked(f, NULL);
    }
    return NULL;
}

static void send_hello(void *sock, const char *agency)
{
    Lienthong__V1__Hello h = LIENTHONG__V1__HELLO__INIT;
    h.agency = (char *)agency;
    h.client = "it_security_session";
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_HELLO;
    f.hello = &h;
    it_frame_send(sock, &f);
}

static void send_auth(void *sock, lt_signer *s, const uint8_t *nonce, size_t nonce_len,
                      bool garbage)
{
    uint8_t sig[LT_PKI_SIG_MAX];
    size_t sig_len = sizeof sig;
    lt_why why;
    assert_int_equal(lt_signer_sign(s, LT_PKI_DOMAIN_AUTH, nonce, nonce_len, sig, &sig_len, &why),
                     LT_OK);
    if (garbage)
        memset(sig, 0x5a, sig_len);
    Lienthong__V1__Auth a = LIENTHONG__V1__AUTH__INIT;
    size_t der_len = 0;
    a.certificate.data = (uint8_t *)lt_signer_cert_der(s, &der_len);
    a.certificate.len = der_len;
    a.signature.data = sig;
    a.signature.len = sig_len;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_AUTH;
    f.auth = &a;
    it_frame_send(sock, &f);
}

/* HELLO, CHALLENGE, AUTH, WELCOME as s's agency. */
static void handshake(void *sock, lt_signer *s)
{
    send_hello(sock, lt_signer_agency(s));
    Lienthong__V1__Frame *c = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_CHALLENGE, 10000);
    assert_non_null(c);
    send_auth(sock, s, c->challenge->nonce.data, c->challenge->nonce.len, false);
    lienthong__v1__frame__free_unpacked(c, NULL);
    Lienthong__V1__Frame *w = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_WELCOME, 10000);
    assert_non_null(w);
    assert_string_equal(w->welcome->agency, lt_signer_agency(s));
    lienthong__v1__frame__free_unpacked(w, NULL);
}

static void send_subscribe(void *sock, const char *queue, uint32_t credit)
{
    Lienthong__V1__Subscribe m = LIENTHONG__V1__SUBSCRIBE__INIT;
    m.queue = (char *)queue;
    m.credit = credit;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_SUBSCRIBE;
    f.subscribe = &m;
    it_frame_send(sock, &f);
}

static void send_credit(void *sock, const char *queue, uint32_t credit)
{
    Lienthong__V1__Credit m = LIENTHONG__V1__CREDIT__INIT;
    m.queue = (char *)queue;
    m.credit = credit;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_CREDIT;
    f.credit = &m;
    it_frame_send(sock, &f);
}

static void send_ping(void *sock, uint64_t nonce)
{
    Lienthong__V1__Ping m = LIENTHONG__V1__PING__INIT;
    m.nonce = nonce;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &m;
    it_frame_send(sock, &f);
}

/* Publish one record on topic and wait for its ACK. */
static void publish_to(const char *topic)
{
    size_t len = 0;
    uint8_t *e = it_seal(quan1, topic, next_n++, 0, &len, NULL);
    assert_non_null(e);
    it_answer a;
    assert_true(it_publish_wait(pub, e, len, &a, 10000));
    assert_int_equal(a.code, LT_OK);
    free(e);
}

/* Publish one record to the queue sess.dancu. */
static void publish_one(void)
{
    publish_to("79.760.sess.x");
}

/* Count DELIVER frames on sock for up to wait_ms; NACK codes seen go to nack_codes. */
static size_t count_delivers(void *sock, int wait_ms, int *last_nack)
{
    size_t n = 0;
    int64_t deadline = it_now_ms() + wait_ms;
    while (it_now_ms() < deadline) {
        Lienthong__V1__Frame *f = it_frame_recv(sock, 50);
        if (!f)
            continue;
        if (f->kind_case == LIENTHONG__V1__FRAME__KIND_DELIVER)
            n++;
        else if (f->kind_case == LIENTHONG__V1__FRAME__KIND_NACK && last_nack)
            *last_nack = f->nack->code;
        lienthong__v1__frame__free_unpacked(f, NULL);
    }
    return n;
}

/* ---- the tests ---- */

static void a_hello_during_an_auth_cannot_take_another_agencys_identity(void **state)
{
    (void)state;
    publish_one(); /* a record waits in dancu's queue: a stolen session would receive it */
    for (int round = 0; round < 5; round++) {
        void *sock = raw_socket(NULL);
        send_hello(sock, lt_signer_agency(quan1));
        Lienthong__V1__Frame *c = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_CHALLENGE, 10000);
        assert_non_null(c);
        /* one burst: a good AUTH as quan1, then HELLO as dancu and a garbage AUTH */
        send_auth(sock, quan1, c->challenge->nonce.data, c->challenge->nonce.len, false);
        send_hello(sock, lt_signer_agency(dancu));
        send_auth(sock, dancu, c->challenge->nonce.data, c->challenge->nonce.len, true);
        lienthong__v1__frame__free_unpacked(c, NULL);
        /* Either the HELLO arrives while the AUTH is checked (refused AUTH_IN_PROGRESS, and
         * so is the garbage AUTH), or after the WELCOME (a new epoch: CHALLENGE, and the
         * garbage AUTH is refused for its signature). Never a WELCOME naming dancu. */
        bool welcomed = false, second_refused = false;
        int64_t deadline = it_now_ms() + 10000;
        while (!(welcomed && second_refused) && it_now_ms() < deadline) {
            Lienthong__V1__Frame *f = it_frame_recv(sock, 100);
            if (!f)
                continue;
            if (f->kind_case == LIENTHONG__V1__FRAME__KIND_WELCOME) {
                assert_string_equal(f->welcome->agency, lt_signer_agency(quan1));
                assert_false(welcomed);
                welcomed = true;
            } else if (f->kind_case == LIENTHONG__V1__FRAME__KIND_NACK) {
                assert_true(f->nack->code == LIENTHONG__V1__NACK_CODE__AUTH_IN_PROGRESS ||
                            f->nack->code == LIENTHONG__V1__NACK_CODE__BAD_SIGNATURE);
                assert_true(strlen(f->nack->reason) > 0);
                second_refused = true;
            }
            lienthong__v1__frame__free_unpacked(f, NULL);
        }
        assert_true(welcomed);
        assert_true(second_refused);
        /* and the connection may not consume dancu's queue: it is quan1's, or nobody's */
        send_subscribe(sock, "sess.dancu", 10);
        int nack = -1;
        assert_int_equal(count_delivers(sock, 500, &nack), 0);
        assert_true(nack == LIENTHONG__V1__NACK_CODE__ACL_DENIED ||
                    nack == LIENTHONG__V1__NACK_CODE__NOT_AUTHENTICATED);
        zmq_close(sock);
    }
}

static void a_live_connections_routing_id_cannot_be_taken_over(void **state)
{
    (void)state;
    void *victim = raw_socket("victim-routing-id-1");
    handshake(victim, dancu);
    send_subscribe(victim, "sess.dancu", 1);
    /* the victim takes what waits (one credit), and leaves it unacked */
    assert_true(count_delivers(victim, 1000, NULL) >= 1);

    void *thief = raw_socket("victim-routing-id-1");
    send_credit(thief, "sess.dancu", 100);
    send_subscribe(thief, "sess.dancu", 100);
    send_ping(thief, 7);
    publish_one();
    publish_one();
    int nack = -1;
    assert_int_equal(count_delivers(thief, 1500, &nack), 0);
    /* the victim's connection is still its own */
    send_ping(victim, 8);
    Lienthong__V1__Frame *po = expect_kind(victim, LIENTHONG__V1__FRAME__KIND_PONG, 5000);
    assert_non_null(po);
    assert_int_equal(po->pong->nonce, 8);
    lienthong__v1__frame__free_unpacked(po, NULL);
    zmq_close(thief);
    zmq_close(victim);
}

static void a_routing_id_reused_after_its_connection_closed_inherits_nothing(void **state)
{
    (void)state;
    void *victim = raw_socket("victim-routing-id-2");
    handshake(victim, dancu);
    send_subscribe(victim, "sess.dancu", 1);
    publish_one();
    assert_true(count_delivers(victim, 1000, NULL) >= 1);
    zmq_close(victim);

    /* At once, before any heartbeat could notice. The thief's CREDIT is answered
     * NOT_AUTHENTICATED, or not at all while libzmq still holds the victim's routing id for
     * the victim's last frames (a connection that presents a held id is ignored): either
     * way, nothing may be delivered to it. */
    void *thief = raw_socket("victim-routing-id-2");
    int nack = -1;
    size_t stolen = 0;
    for (int i = 0; i < 15 && nack < 0; i++) {
        send_credit(thief, "sess.dancu", 100);
        stolen += count_delivers(thief, 200, &nack);
    }
    publish_one();
    send_credit(thief, "sess.dancu", 100);
    stolen += count_delivers(thief, 1500, &nack);
    assert_int_equal(stolen, 0);
    assert_true(nack == -1 || nack == LIENTHONG__V1__NACK_CODE__NOT_AUTHENTICATED);
    zmq_close(thief);

    /* the queue still serves its owner: everything published is there */
    void *owner = raw_socket(NULL);
    handshake(owner, dancu);
    send_subscribe(owner, "sess.dancu", 1000);
    assert_true(count_delivers(owner, 2000, NULL) >= 1);
    zmq_close(owner);
    assert_true(it_broker_alive(&env));
}

/* Subscribe.batched_deliver: a consumer that asks for it gets its deliveries several to a
 * Delivers frame (as many as one read of the store finds), each record once, and no lone
 * DELIVER. */
static void a_consumer_that_asks_gets_its_deliveries_in_delivers_frames(void **state)
{
    (void)state;
    enum { N = 30 };
    for (int i = 0; i < N; i++)
        publish_to("79.760.batch.x"); /* all in the queue before anyone subscribes */
    void *sock = raw_socket(NULL);
    handshake(sock, dancu);
    Lienthong__V1__Subscribe m = LIENTHONG__V1__SUBSCRIBE__INIT;
    m.queue = "sess.batch";
    m.credit = 100;
    m.batched_deliver = 1;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_SUBSCRIBE;
    f.subscribe = &m;
    it_frame_send(sock, &f);
    uint64_t seqs[N];
    size_t got = 0, frames = 0, widest = 0;
    int64_t deadline = it_now_ms() + 15000;
    while (got < N && it_now_ms() < deadline) {
        Lienthong__V1__Frame *r = it_frame_recv(sock, 200);
        if (r == NULL)
            continue;
        if (r->kind_case == LIENTHONG__V1__FRAME__KIND_DELIVER)
            fail_msg("a lone DELIVER to a consumer that takes Delivers frames");
        if (r->kind_case == LIENTHONG__V1__FRAME__KIND_DELIVERS) {
            frames++;
            if (r->delivers->n_delivers > widest)
                widest = r->delivers->n_delivers;
            for (size_t k = 0; k < r->delivers->n_delivers; k++) {
                const Lienthong__V1__Deliver *d = r->delivers->delivers[k];
                assert_string_equal(d->queue, "sess.batch");
                assert_int_equal(d->delivery_count, 1);
                assert_true(d->envelope.len > 0);
                for (size_t j = 0; j < got; j++)
                    assert_true(seqs[j] != d->seq); /* each record once */
                assert_true(got < N);
                seqs[got++] = d->seq;
            }
        }
        lienthong__v1__frame__free_unpacked(r, NULL);
    }
    zmq_close(sock);
    printf("%d deliveries in %zu Delivers frames (widest %zu)\n", N, frames, widest);
    assert_int_equal(got, N);
    assert_true(frames < N && widest >= 2);
}

static void send_ack(void *sock, const char *queue, uint64_t *seqs, size_t n)
{
    Lienthong__V1__ConsumerAck a = LIENTHONG__V1__CONSUMER_ACK__INIT;
    a.queue = (char *)queue;
    a.seqs = seqs;
    a.n_seqs = n;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_CONSUMER_ACK;
    f.consumer_ack = &a;
    it_frame_send(sock, &f);
}

/* Ten rounds of: a consumer takes five deliveries of sess.acks, acks them and closes its
 * connection while the broker is stopped, so that the broker learns of the close and holds
 * the acks at the same moment. With credit_between, a CREDIT follows the first ack and the
 * other four come after it (as the reference client sends an ack, then the credit it gives
 * back): a frame the closed session may no longer send must not end it before the acks
 * behind it are read. Every round must end with the queue empty. */
static void closing_consumer_rounds(bool credit_between)
{
    /* the operator's view, over one connection opened before the rounds (a new connection
     * between a close and the reading of its last frames would end that session early) */
    lt_signer *vp = it_signer(&env, "vanphong");
    assert_non_null(vp);
    lt_client *admin = it_client(&env, vp, 0, 0);
    assert_non_null(admin);
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 5; i++)
            publish_to("79.760.acks.x");
        void *sock = raw_socket(NULL);
        int linger = 2000;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
        handshake(sock, dancu);
        send_subscribe(sock, "sess.acks", 5);
        uint64_t seqs[5];
        size_t n = 0;
        int64_t deadline = it_now_ms() + 10000;
        while (n < 5 && it_now_ms() < deadline) {
            Lienthong__V1__Frame *f = it_frame_recv(sock, 100);
            if (f && f->kind_case == LIENTHONG__V1__FRAME__KIND_DELIVER)
                seqs[n++] = f->deliver->seq;
            if (f)
                lienthong__v1__frame__free_unpacked(f, NULL);
        }
        assert_int_equal(n, 5);
        /* The broker stopped, the acks and the close arrive together: when it resumes it
         * learns of the close and holds the acks at the same moment. (The pause only makes
         * that moment likely; too short a pause can let a broken broker pass, never fail a
         * correct one.) */
        assert_int_equal(kill(env.pid, SIGSTOP), 0);
        if (credit_between) {
            send_ack(sock, "sess.acks", seqs, 1);
            send_credit(sock, "sess.acks", 1);
            send_ack(sock, "sess.acks", seqs + 1, n - 1);
        } else {
            send_ack(sock, "sess.acks", seqs, n);
        }
        zmq_close(sock);
        usleep(100000);
        assert_int_equal(kill(env.pid, SIGCONT), 0);
        /* the five are acked: the queue is empty, nothing waits for a redelivery */
        int64_t depth = -1;
        deadline = it_now_ms() + 10000;
        while (it_now_ms() < deadline) {
            json_object *root = NULL, *q = it_queue_info(admin, "sess.acks", &root);
            depth = it_json_int(q, "depth");
            json_object_put(root);
            if (depth == 0)
                break;
            usleep(20000); /* bounded poll of the broker's own count */
        }
        if (depth != 0)
            fail_msg("round %d: %lld records of a closed consumer's acked five still pending", round,
                     (long long)depth);
    }
    lt_client_close(&admin);
    lt_signer_destroy(&vp);
}

/* Ending a session with its connection must not cost what the connection said last: acks
 * sent just before a close are taken, so nothing is delivered twice. */
static void a_consumers_last_acks_before_it_closes_are_kept(void **state)
{
    (void)state;
    closing_consumer_rounds(false);
}

/* A closed connection's CREDIT is refused (it asks for more), and the answer to it cannot
 * be sent; neither may end the session before the acks the consumer sent after the CREDIT
 * are read (a sink's last NAKs were lost that way, their records dead-lettered by ack_wait
 * instead of with the sink's reason). */
static void a_closed_consumers_credit_does_not_cost_the_acks_behind_it(void **state)
{
    (void)state;
    closing_consumer_rounds(true);
}

static void send_cancel(void *sock, uint64_t tag, const uint8_t *id, size_t id_len)
{
    Lienthong__V1__Cancel m = LIENTHONG__V1__CANCEL__INIT;
    m.tag = tag;
    m.message_id.data = (uint8_t *)id;
    m.message_id.len = id_len;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_CANCEL;
    f.cancel = &m;
    it_frame_send(sock, &f);
}

static void a_cancel_without_a_session_or_with_a_short_id_is_refused_with_its_reason(
    void **state)
{
    (void)state;
    static const uint8_t id16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    /* no HELLO/AUTH: NOT_AUTHENTICATED (tag 0, docs/protocol.md §2.1), naming the frame */
    void *sock = raw_socket(NULL);
    send_cancel(sock, 7, id16, sizeof id16);
    Lienthong__V1__Frame *n = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_NACK, 10000);
    assert_non_null(n);
    assert_string_equal(lt_err_name(lt_client_err_from_nack(n->nack->code)), "NOT_AUTHENTICATED");
    assert_int_equal(n->nack->tag, 0);
    assert_non_null(strstr(n->nack->reason, "CANCEL needs HELLO and AUTH first"));
    lienthong__v1__frame__free_unpacked(n, NULL);
    /* authenticated, a message id of 5 bytes: BAD_MESSAGE_ID naming the length */
    handshake(sock, quan1);
    send_cancel(sock, 8, id16, 5);
    n = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_NACK, 10000);
    assert_non_null(n);
    assert_string_equal(lt_err_name(lt_client_err_from_nack(n->nack->code)), "BAD_MESSAGE_ID");
    assert_int_equal(n->nack->tag, 8);
    assert_non_null(strstr(n->nack->reason, "5 bytes"));
    assert_non_null(strstr(n->nack->reason, "16-byte"));
    lienthong__v1__frame__free_unpacked(n, NULL);
    /* and one of 17 */
    uint8_t id17[17] = {0};
    memcpy(id17, id16, sizeof id16);
    id17[16] = 17;
    send_cancel(sock, 9, id17, sizeof id17);
    n = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_NACK, 10000);
    assert_non_null(n);
    assert_int_equal(n->nack->tag, 9);
    assert_non_null(strstr(n->nack->reason, "17 bytes"));
    lienthong__v1__frame__free_unpacked(n, NULL);
    zmq_close(sock);
}

/* lienthong_nacked_total{agency="_unknown",reason="MALFORMED"} now (0 while absent). */
static int64_t malformed_nacks(void)
{
    static const char key[] = "lienthong_nacked_total{agency=\"_unknown\",reason=\"MALFORMED\"} ";
    char tok[256];
    assert_true(it_admin_token(&env, tok, sizeof tok));
    it_http_resp r;
    assert_true(it_http_get(env.admin_port, "/metrics", tok, 10000, &r));
    assert_int_equal(r.status, 200);
    const char *at = strstr(r.body, key);
    int64_t v = at ? strtoll(at + strlen(key), NULL, 10) : 0;
    it_http_resp_fini(&r);
    return v;
}

/* Send f, then a PING: nothing but the PONG may answer (docs/protocol.md §2.3: a
 * broker-only kind carries no tag to answer with, so it gets no NACK). */
static void send_unanswered(void *sock, const Lienthong__V1__Frame *f, uint64_t nonce)
{
    it_frame_send(sock, f);
    send_ping(sock, nonce);
    int64_t deadline = it_now_ms() + 10000;
    for (;;) {
        assert_true(it_now_ms() < deadline);
        Lienthong__V1__Frame *r = it_frame_recv(sock, 100);
        if (!r)
            continue;
        if (r->kind_case == LIENTHONG__V1__FRAME__KIND_NACK)
            fail_msg("frame kind %d answered NACK %d: %s", (int)f->kind_case, (int)r->nack->code,
                     r->nack->reason);
        bool pong = r->kind_case == LIENTHONG__V1__FRAME__KIND_PONG && r->pong->nonce == nonce;
        lienthong__v1__frame__free_unpacked(r, NULL);
        if (pong)
            return;
    }
}

static void
acks_and_delivers_from_a_client_are_refused_malformed_and_the_connection_goes_on(void **state)
{
    (void)state;
    void *sock = raw_socket(NULL);
    handshake(sock, quan1);
    int64_t before = malformed_nacks();

    /* an ACKS frame, as the broker would send it (docs/protocol.md §2.2) */
    Lienthong__V1__Ack ack = LIENTHONG__V1__ACK__INIT;
    ack.tag = 5;
    ack.seq = 1;
    Lienthong__V1__Ack *acks_v[] = {&ack};
    Lienthong__V1__Acks acks = LIENTHONG__V1__ACKS__INIT;
    acks.n_acks = 1;
    acks.acks = acks_v;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ACKS;
    f.acks = &acks;
    send_unanswered(sock, &f, 21);
    assert_true(it_log_wait(&env, "frame kind 21 (acks) is broker-to-client only", 10000));

    /* a DELIVERS frame */
    Lienthong__V1__Deliver d = LIENTHONG__V1__DELIVER__INIT;
    d.queue = "sess.dancu";
    d.seq = 1;
    d.delivery_count = 1;
    d.envelope.data = (uint8_t *)"not an envelope";
    d.envelope.len = 15;
    Lienthong__V1__Deliver *delivers_v[] = {&d};
    Lienthong__V1__Delivers delivers = LIENTHONG__V1__DELIVERS__INIT;
    delivers.n_delivers = 1;
    delivers.delivers = delivers_v;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_DELIVERS;
    f.delivers = &delivers;
    send_unanswered(sock, &f, 22);
    assert_true(it_log_wait(&env, "frame kind 22 (delivers) is broker-to-client only", 10000));

    /* both counted as refused MALFORMED */
    assert_int_equal(malformed_nacks(), before + 2);

    /* the session goes on: a publish on the same connection is acked (to a queue of its
     * own, so the other tests' queues stay as they were) */
    size_t len = 0;
    uint8_t *e = it_seal(quan1, "79.760.refused.x", next_n++, 0, &len, NULL);
    assert_non_null(e);
    Lienthong__V1__Publish p = LIENTHONG__V1__PUBLISH__INIT;
    p.tag = 31;
    p.envelope.data = e;
    p.envelope.len = len;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    it_frame_send(sock, &f);
    free(e);
    Lienthong__V1__Frame *r = expect_kind(sock, LIENTHONG__V1__FRAME__KIND_ACK, 10000);
    assert_non_null(r);
    assert_int_equal(r->ack->tag, 31);
    assert_false(r->ack->duplicate);
    lienthong__v1__frame__free_unpacked(r, NULL);
    zmq_close(sock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hello_during_an_auth_cannot_take_another_agencys_identity),
        cmocka_unit_test(a_live_connections_routing_id_cannot_be_taken_over),
        cmocka_unit_test(a_routing_id_reused_after_its_connection_closed_inherits_nothing),
        cmocka_unit_test(a_consumers_last_acks_before_it_closes_are_kept),
        cmocka_unit_test(a_closed_consumers_credit_does_not_cost_the_acks_behind_it),
        cmocka_unit_test(a_consumer_that_asks_gets_its_deliveries_in_delivers_frames),
        cmocka_unit_test(a_cancel_without_a_session_or_with_a_short_id_is_refused_with_its_reason),
        cmocka_unit_test(
            acks_and_delivers_from_a_client_are_refused_malformed_and_the_connection_goes_on),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
