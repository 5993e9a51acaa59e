/*
 * test_client.c - lib/client.c against a scripted fake broker (a ROUTER socket in a thread
 * on 127.0.0.1): pipelined publishes and their callbacks, NACK codes, ack timeouts, a lost
 * connection, the window, and the consumer side (batched acks, credit given back, naks).
 */
#include "client.h"
#include "devpki.h"
#include "envelope.h"
#include "err.h"
#include "pki.h"

#include "lienthong/v1/envelope.pb-c.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

enum mode {
    ACK_ALL,      /* ACK every publish: seq = tag * 10, duplicate when tag is odd */
    NACK_ALL,     /* NACK every publish BAD_SIGNATURE */
    SWALLOW,      /* answer nothing */
    CLOSE_AFTER,  /* answer nothing; close the socket after close_after publishes */
    ACK_DELAYED,  /* hold acks until hold publishes have arrived, then ack them all */
};

struct fake {
    void *ctx, *router;
    char ep[128];
    pthread_t th;
    enum mode mode;
    unsigned close_after, hold;
    volatile int stop;
    /* seen (read by the test after join or under the deadline loops) */
    volatile unsigned publishes;
    volatile unsigned acks_sent; /* ACK_ALL: acks handed to the socket */
    volatile int closed;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_to(void *router, zmq_msg_t *id, const Lienthong__V1__Frame *f)
{
    zmq_msg_t idc;
    zmq_msg_init(&idc);
    zmq_msg_copy(&idc, id);
    zmq_msg_send(&idc, router, ZMQ_SNDMORE);
    size_t n = lienthong__v1__frame__get_packed_size(f);
    zmq_msg_t m;
    zmq_msg_init_size(&m, n);
    lienthong__v1__frame__pack(f, zmq_msg_data(&m));
    zmq_msg_send(&m, router, 0);
}

static void send_ack(void *router, zmq_msg_t *id, uint64_t tag)
{
    Lienthong__V1__Ack a = LIENTHONG__V1__ACK__INIT;
    a.tag = tag;
    a.seq = tag * 10;
    a.duplicate = (tag & 1) != 0;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ACK;
    f.ack = &a;
    send_to(router, id, &f);
}

static void *fake_main(void *arg)
{
    struct fake *fk = arg;
    uint64_t held[4096];
    unsigned nheld = 0;
    zmq_msg_t held_id;
    zmq_msg_init(&held_id);
    while (!fk->stop && !fk->closed) {
        zmq_pollitem_t it = {fk->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&id, fk->router, 0) < 0 || zmq_msg_recv(&m, fk->router, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&m);
            continue;
        }
        Lienthong__V1__Frame *f =
            lienthong__v1__frame__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (f != NULL && f->kind_case == LIENTHONG__V1__FRAME__KIND_PUBLISH) {
            uint64_t tag = f->publish->tag;
            fk->publishes++;
            if (fk->mode == ACK_ALL) {
                send_ack(fk->router, &id, tag);
                fk->acks_sent++;
            } else if (fk->mode == NACK_ALL) {
                Lienthong__V1__Nack n = LIENTHONG__V1__NACK__INIT;
                n.tag = tag;
                n.code = LIENTHONG__V1__NACK_CODE__BAD_SIGNATURE;
                n.reason = (char *)"signature does not verify";
                Lienthong__V1__Frame r = LIENTHONG__V1__FRAME__INIT;
                r.kind_case = LIENTHONG__V1__FRAME__KIND_NACK;
                r.nack = &n;
                send_to(fk->router, &id, &r);
            } else if (fk->mode == ACK_DELAYED) {
                held[nheld++] = tag;
                zmq_msg_copy(&held_id, &id);
                if (nheld >= fk->hold) {
                    for (unsigned i = 0; i < nheld; i++)
                        send_ack(fk->router, &held_id, held[i]);
                    nheld = 0;
                }
            } else if (fk->mode == CLOSE_AFTER && fk->publishes >= fk->close_after) {
                int zero = 0;
                zmq_setsockopt(fk->router, ZMQ_LINGER, &zero, sizeof zero);
                zmq_close(fk->router);
                fk->router = NULL;
                fk->closed = 1;
            }
        } else if (f != NULL && f->kind_case == LIENTHONG__V1__FRAME__KIND_PING) {
            Lienthong__V1__Pong p = LIENTHONG__V1__PONG__INIT;
            p.nonce = f->ping->nonce;
            Lienthong__V1__Frame r = LIENTHONG__V1__FRAME__INIT;
            r.kind_case = LIENTHONG__V1__FRAME__KIND_PONG;
            r.pong = &p;
            send_to(fk->router, &id, &r);
        }
        if (f != NULL)
            lienthong__v1__frame__free_unpacked(f, NULL);
        zmq_msg_close(&id);
        zmq_msg_close(&m);
    }
    zmq_msg_close(&held_id);
    return NULL;
}

static struct fake *fake_start(enum mode mode)
{
    struct fake *fk = calloc(1, sizeof *fk);
    assert_non_null(fk);
    fk->mode = mode;
    fk->ctx = zmq_ctx_new();
    fk->router = zmq_socket(fk->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(fk->router, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(fk->router, ZMQ_RCVHWM, &zero, sizeof zero);
    assert_int_equal(zmq_bind(fk->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fk->ep;
    assert_int_equal(zmq_getsockopt(fk->router, ZMQ_LAST_ENDPOINT, fk->ep, &len), 0);
    return fk;
}

static void fake_run(struct fake *fk)
{
    assert_int_equal(pthread_create(&fk->th, NULL, fake_main, fk), 0);
}

static void fake_stop(struct fake *fk)
{
    fk->stop = 1;
    pthread_join(fk->th, NULL);
    if (fk->router != NULL) {
        int zero = 0;
        zmq_setsockopt(fk->router, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(fk->router);
    }
    zmq_ctx_term(fk->ctx);
    free(fk);
}

/* What the publish callbacks saw. */
struct results {
    unsigned calls[8192];
    lt_err code[8192];
    uint64_t seq[8192];
    bool dup[8192];
    char reason[LT_WHY_MAX];
    unsigned total;
};

static void on_result(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                      const char *reason)
{
    struct results *r = user;
    if (tag < 8192) {
        r->calls[tag]++;
        r->code[tag] = code;
        r->seq[tag] = seq;
        r->dup[tag] = dup;
    }
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->total++;
}

static const uint8_t ENV[] = "not really an envelope: the fake broker does not look";

static void publishes_are_pipelined_and_each_callback_runs_once_with_its_ack(void **state)
{
    (void)state;
    struct fake *fk = fake_start(ACK_ALL);
    fake_run(fk);
    lt_client_opts o = {.window = 64, .ack_timeout_ms = 10000};
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(fk->ep, &o, &c, &why), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    assert_non_null(r);
    for (unsigned i = 1; i <= 5000; i++) {
        uint64_t tag = 0;
        assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, &tag), LT_OK);
        assert_int_equal(tag, i);
        assert_true(lt_client_inflight(c) <= 64);
    }
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    assert_int_equal(lt_client_inflight(c), 0);
    assert_int_equal(r->total, 5000);
    for (unsigned t = 1; t <= 5000; t++) {
        assert_int_equal(r->calls[t], 1);
        assert_int_equal(r->code[t], LT_OK);
        assert_int_equal(r->seq[t], t * 10);
        assert_int_equal(r->dup[t], (t & 1) != 0);
    }
    lt_client_close(&c);
    assert_null(c);
    fake_stop(fk);
    free(r);
}

static void a_nack_completes_with_the_matching_error_code_and_reason(void **state)
{
    (void)state;
    struct fake *fk = fake_start(NACK_ALL);
    fake_run(fk);
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, NULL, &c, NULL), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    assert_int_equal(r->calls[1], 1);
    assert_int_equal(r->code[1], LT_ESIG);
    assert_string_equal(r->reason, "signature does not verify");
    lt_client_close(&c);
    fake_stop(fk);
    free(r);
}

static void nack_codes_map_to_error_codes_of_the_same_name(void **state)
{
    (void)state;
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__MALFORMED), LT_EPROTO);
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__TOO_LARGE), LT_ETOOBIG);
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__CERT_REVOKED),
                     LT_ECERT_REVOKED);
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__NO_ROUTE), LT_ENOROUTE);
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__QUEUE_FULL),
                     LT_EQUEUE_FULL);
    assert_int_equal(lt_client_err_from_nack(LIENTHONG__V1__NACK_CODE__INVALID), LT_EINVAL);
    assert_int_equal(lt_client_err_from_nack(0), LT_EPROTO);
    assert_int_equal(lt_client_err_from_nack(9999), LT_EPROTO);
    /* every NackCode name is an lt_err name: the wire contract */
    const ProtobufCEnumDescriptor *d = &lienthong__v1__nack_code__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        if (d->values[i].value == 0)
            continue;
        lt_err e = lt_client_err_from_nack(d->values[i].value);
        assert_string_equal(lt_err_name(e), d->values[i].name);
    }
}

static void a_publish_without_answer_completes_timed_out(void **state)
{
    (void)state;
    struct fake *fk = fake_start(SWALLOW);
    fake_run(fk);
    lt_client_opts o = {.ack_timeout_ms = 300};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    int64_t t0 = now_ms();
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    for (int i = 0; i < 100 && r->total < 2; i++)
        lt_client_poll(c, 100, NULL);
    int64_t took = now_ms() - t0;
    assert_int_equal(r->total, 2);
    assert_int_equal(r->code[1], LT_ETIMEDOUT);
    assert_int_equal(r->code[2], LT_ETIMEDOUT);
    assert_true(took >= 250);
    assert_true(took < 5000);
    assert_int_equal(lt_client_inflight(c), 0);
    lt_client_close(&c);
    fake_stop(fk);
    free(r);
}

static void a_lost_connection_completes_what_is_in_flight_closed(void **state)
{
    (void)state;
    struct fake *fk = fake_start(CLOSE_AFTER);
    fk->close_after = 3;
    fake_run(fk);
    lt_client_opts o = {.ack_timeout_ms = 60000};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    int64_t t0 = now_ms();
    for (int i = 0; i < 100 && r->total < 3; i++)
        lt_client_poll(c, 100, NULL);
    assert_int_equal(r->total, 3);
    for (int t = 1; t <= 3; t++)
        assert_int_equal(r->code[t], LT_ECLOSED);
    assert_true(now_ms() - t0 < 5000); /* long before the 60 s ack timeout */
    assert_false(lt_client_is_connected(c));
    lt_client_close(&c);
    fake_stop(fk);
    free(r);
}

struct reentry {
    lt_client *c;
    lt_err inner;
    unsigned calls;
};

static void publish_from_callback(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                                  const char *reason)
{
    (void)tag, (void)code, (void)seq, (void)dup, (void)reason;
    struct reentry *re = user;
    re->calls++;
    if (re->calls == 1)
        re->inner = lt_client_publish(re->c, ENV, sizeof ENV, NULL, NULL, NULL);
}

static void the_window_bounds_publishes_in_flight(void **state)
{
    (void)state;
    struct fake *fk = fake_start(ACK_DELAYED);
    fk->hold = 4; /* acks come only once 4 publishes arrived */
    fake_run(fk);
    lt_client_opts o = {.window = 4, .ack_timeout_ms = 10000};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct reentry re = {.c = c};
    for (int i = 0; i < 4; i++)
        assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, publish_from_callback, &re, NULL),
                         LT_OK);
    assert_int_equal(lt_client_inflight(c), 4);
    /* The fifth waits for the window until the acks of the first four free it. A publish
     * made inside a callback never blocks: it is sent if the window has room, else it
     * returns LT_EAGAIN. */
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, NULL, NULL, NULL), LT_OK);
    assert_true(re.calls >= 1);
    assert_true(re.inner == LT_OK || re.inner == LT_EAGAIN);
    assert_true(lt_client_inflight(c) <= 4);
    lt_client_close(&c);
    fake_stop(fk);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A publisher sending at a set rate never fills its window and never polls: each publish
 * dispatches the answers that have already arrived, before sending (so a publish's own
 * callback never runs inside the call that sent it). */
static void a_rate_limited_publisher_gets_its_acks_without_polling(void **state)
{
    (void)state;
    struct fake *fk = fake_start(ACK_ALL);
    fake_run(fk);
    lt_client_opts o = {.window = 1024, .ack_timeout_ms = 10000};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    assert_non_null(r);
    for (unsigned k = 1; k <= 5; k++) {
        assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
        assert_int_equal(r->calls[k], 0); /* not inside the publish that sent it */
        if (k > 1) /* but the previous one's, whose ack has arrived, ran before it sent */
            assert_int_equal(r->calls[k - 1], 1);
        /* the fake has sent ack k, plus time for loopback TCP to bring it in */
        for (int i = 0; i < 500 && fk->acks_sent < k; i++)
            sleep_ms(10);
        assert_int_equal(fk->acks_sent, k);
        sleep_ms(100);
        assert_int_equal(r->calls[k], 0); /* nothing runs between calls */
    }
    /* the next publish runs ack 5's callback before it returns */
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    for (unsigned k = 1; k <= 5; k++) {
        assert_int_equal(r->calls[k], 1);
        assert_int_equal(r->code[k], LT_OK);
        assert_int_equal(r->seq[k], k * 10);
    }
    assert_int_equal(r->calls[6], 0);
    assert_int_equal(lt_client_inflight(c), 1);
    lt_client_close(&c);
    assert_int_equal(r->calls[6], 1);
    assert_int_equal(r->code[6], LT_ECLOSED);
    assert_int_equal(r->total, 6);
    fake_stop(fk);
    free(r);
}

/* Expiry needs no poll either: the next publish completes an overdue one LT_ETIMEDOUT. */
static void a_publish_completes_the_overdue_ones_before_it_sends(void **state)
{
    (void)state;
    struct fake *fk = fake_start(SWALLOW);
    fake_run(fk);
    lt_client_opts o = {.ack_timeout_ms = 200};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct results *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    sleep_ms(300);
    assert_int_equal(r->calls[1], 0);
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_result, r, NULL), LT_OK);
    assert_int_equal(r->calls[1], 1);
    assert_int_equal(r->code[1], LT_ETIMEDOUT);
    assert_int_equal(r->calls[2], 0);
    lt_client_close(&c);
    assert_int_equal(r->calls[2], 1);
    assert_int_equal(r->code[2], LT_ECLOSED);
    fake_stop(fk);
    free(r);
}

/* What a callback run by lt_client_close may do, and what it saw. */
struct closing {
    lt_client *c;
    unsigned calls[8];
    lt_err code[8];
    lt_err republish, poll, flush;
    int *owned[8]; /* freed by the callback: the caller's user state, as `lienthong pub` has */
};

static void on_closing(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                       const char *reason)
{
    (void)seq, (void)dup, (void)reason;
    struct closing *k = user;
    if (tag >= 8)
        return;
    k->calls[tag]++;
    k->code[tag] = code;
    free(k->owned[tag]);
    k->owned[tag] = NULL;
    if (tag == 1) { /* nothing may start or wait from here */
        k->republish = lt_client_publish(k->c, ENV, sizeof ENV, on_closing, k, NULL);
        k->poll = lt_client_poll(k->c, 0, NULL);
        k->flush = lt_client_flush(k->c, 0);
    }
}

static void close_completes_every_pending_publish_once_with_closed(void **state)
{
    (void)state;
    struct fake *fk = fake_start(SWALLOW);
    fake_run(fk);
    lt_client_opts o = {.ack_timeout_ms = 60000};
    lt_client *c = NULL;
    assert_int_equal(lt_client_open(fk->ep, &o, &c, NULL), LT_OK);
    struct closing k = {.c = c};
    for (unsigned t = 1; t <= 5; t++) {
        k.owned[t] = malloc(sizeof(int));
        assert_non_null(k.owned[t]);
        assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, on_closing, &k, NULL), LT_OK);
    }
    for (int i = 0; i < 500 && fk->publishes < 5; i++)
        sleep_ms(10);
    assert_int_equal(fk->publishes, 5);
    assert_int_equal(lt_client_inflight(c), 5);
    lt_client_close(&c);
    assert_null(c);
    for (unsigned t = 1; t <= 5; t++) {
        assert_int_equal(k.calls[t], 1);
        assert_int_equal(k.code[t], LT_ECLOSED);
        assert_null(k.owned[t]);
    }
    assert_int_equal(k.calls[6], 0); /* the publish refused from the callback never runs */
    assert_int_equal(k.republish, LT_ECLOSED);
    assert_int_equal(k.poll, LT_EINVAL);
    assert_int_equal(k.flush, LT_EINVAL);
    fake_stop(fk);
}

static void ping_gets_its_pong(void **state)
{
    (void)state;
    struct fake *fk = fake_start(ACK_ALL);
    fake_run(fk);
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(fk->ep, NULL, &c, NULL), LT_OK);
    assert_int_equal(lt_client_ping(c, 5000, &why), LT_OK);
    assert_true(lt_client_is_connected(c));
    lt_client_close(&c);
    fake_stop(fk);
}

static void without_a_broker_ping_and_publish_time_out(void **state)
{
    (void)state;
    lt_client *c = NULL;
    lt_why why = {{0}};
    /* a port nobody listens on: bind and close to find one */
    struct fake *fk = fake_start(SWALLOW);
    char ep[128];
    snprintf(ep, sizeof ep, "%s", fk->ep);
    fake_stop(fk);
    lt_client_opts o = {.ack_timeout_ms = 300};
    assert_int_equal(lt_client_open(ep, &o, &c, NULL), LT_OK);
    int64_t t0 = now_ms();
    assert_int_equal(lt_client_ping(c, 300, &why), LT_ETIMEDOUT);
    assert_true(now_ms() - t0 < 3000);
    /* nothing is queued for an absent broker: the publish itself times out, unsent */
    assert_int_equal(lt_client_publish(c, ENV, sizeof ENV, NULL, NULL, NULL), LT_ETIMEDOUT);
    assert_int_equal(lt_client_inflight(c), 0);
    lt_client_close(&c);
}

static void open_refuses_a_bad_endpoint(void **state)
{
    (void)state;
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open("nonsense://x", NULL, &c, &why), LT_EINVAL);
    assert_null(c);
    assert_true(strlen(why.msg) > 0);
    assert_int_equal(lt_client_open(NULL, NULL, &c, &why), LT_EINVAL);
    lt_client_close(&c);
    lt_client_close(NULL);
}


/* ---- the consumer side: a fake broker that authenticates and delivers ----------------- */

struct pkidir {
    char dir[256], key[300], cert[300], ca[300], crl[300];
    lt_signer *signer;
    lt_trust *trust;
};

static void pki_make(struct pkidir *p)
{
    snprintf(p->dir, sizeof p->dir, "/tmp/lt-test-client-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->key, sizeof p->key, "%s/a.key.pem", p->dir);
    snprintf(p->cert, sizeof p->cert, "%s/a.cert.pem", p->dir);
    snprintf(p->ca, sizeof p->ca, "%s/ca.cert.pem", p->dir);
    snprintf(p->crl, sizeof p->crl, "%s/crl.pem", p->dir);
    char cakey[300];
    snprintf(cakey, sizeof cakey, "%s/ca.key.pem", p->dir);
    lt_why why = {{0}};
    int64_t now = lt_env_now_ms();
    lt_devpki_ca *ca = NULL;
    assert_int_equal(lt_devpki_ca_create(LT_SIG_ECDSA_P256, "test CA", "test", now - 3600000,
                                         now + 86400000, &ca, &why),
                     LT_OK);
    assert_int_equal(lt_devpki_ca_save(ca, cakey, p->ca, &why), LT_OK);
    lt_devpki_cert_spec spec = {.agency_id = "VN:GOV:000.00.00.G01:csdldancu",
                                .org = "dân cư",
                                .alg = LT_SIG_ECDSA_P256,
                                .not_before_ms = now - 3600000,
                                .not_after_ms = now + 86400000};
    assert_int_equal(lt_devpki_issue(ca, &spec, p->key, p->cert, &why), LT_OK);
    assert_int_equal(lt_devpki_write_crl(ca, NULL, 0, now, now + 86400000, p->crl, &why), LT_OK);
    lt_devpki_ca_destroy(&ca);
    assert_int_equal(lt_signer_open(p->key, p->cert, &p->signer, &why), LT_OK);
    assert_int_equal(lt_trust_open(p->ca, p->crl, NULL, &p->trust, &why), LT_OK);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void pki_free(struct pkidir *p)
{
    lt_signer_destroy(&p->signer);
    lt_trust_destroy(&p->trust);
    nftw(p->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

struct cbroker {
    void *ctx, *router;
    char ep[128];
    pthread_t th;
    volatile int stop;
    lt_trust *trust;
    bool refuse_auth;   /* answer AUTH with NACK CERT_REVOKED */
    unsigned total;     /* messages to deliver on queue "q" */
    volatile int slow_ms; /* a slow broker: it reads each frame this long after the last */
    /* seen */
    volatile unsigned hellos, auths_ok, subscribes, ack_frames, acked, naks, pings;
    volatile uint64_t credit_given, credit_back, delivered, max_outstanding;
    uint64_t acked_seqs[4096];
    uint64_t nak_seq;
    uint32_t nak_delay;
    char nak_reason[64];
};

static void cb_send(struct cbroker *b, zmq_msg_t *id, const Lienthong__V1__Frame *f)
{
    send_to(b->router, id, f);
}

/* Deliver while credit lasts. */
static void cb_deliver(struct cbroker *b, zmq_msg_t *id, uint64_t *credit)
{
    while (*credit > 0 && b->delivered < b->total) {
        Lienthong__V1__Deliver d = LIENTHONG__V1__DELIVER__INIT;
        d.queue = (char *)"q";
        d.seq = ++b->delivered;
        d.delivery_count = 1;
        d.envelope.data = (uint8_t *)ENV;
        d.envelope.len = sizeof ENV;
        Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
        f.kind_case = LIENTHONG__V1__FRAME__KIND_DELIVER;
        f.deliver = &d;
        cb_send(b, id, &f);
        (*credit)--;
        uint64_t out = b->delivered - b->acked - b->naks;
        if (out > b->max_outstanding)
            b->max_outstanding = out;
    }
}

static void *cbroker_main(void *arg)
{
    struct cbroker *b = arg;
    uint8_t nonce[32];
    uint64_t credit = 0;
    while (!b->stop) {
        zmq_pollitem_t it = {b->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&id, b->router, 0) < 0 || zmq_msg_recv(&m, b->router, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&m);
            continue;
        }
        if (b->slow_ms > 0)
            usleep((useconds_t)b->slow_ms * 1000);
        Lienthong__V1__Frame *f =
            lienthong__v1__frame__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        Lienthong__V1__Frame r = LIENTHONG__V1__FRAME__INIT;
        switch (f != NULL ? f->kind_case : LIENTHONG__V1__FRAME__KIND__NOT_SET) {
        case LIENTHONG__V1__FRAME__KIND_HELLO: {
            b->hellos++;
            lt_pki_random(nonce, sizeof nonce, NULL);
            Lienthong__V1__Challenge ch = LIENTHONG__V1__CHALLENGE__INIT;
            ch.nonce.data = nonce;
            ch.nonce.len = sizeof nonce;
            r.kind_case = LIENTHONG__V1__FRAME__KIND_CHALLENGE;
            r.challenge = &ch;
            cb_send(b, &id, &r);
            break;
        }
        case LIENTHONG__V1__FRAME__KIND_AUTH: {
            char agency[LT_AGENCY_ID_MAX];
            lt_err e = lt_trust_verify_sig(b->trust, f->auth->certificate.data,
                                           f->auth->certificate.len, lt_env_now_ms(),
                                           LT_PKI_DOMAIN_AUTH, nonce, sizeof nonce,
                                           f->auth->signature.data, f->auth->signature.len,
                                           agency, NULL);
            if (e == LT_OK && !b->refuse_auth) {
                b->auths_ok++;
                Lienthong__V1__Welcome w = LIENTHONG__V1__WELCOME__INIT;
                w.agency = agency;
                r.kind_case = LIENTHONG__V1__FRAME__KIND_WELCOME;
                r.welcome = &w;
                cb_send(b, &id, &r);
            } else {
                Lienthong__V1__Nack n = LIENTHONG__V1__NACK__INIT;
                n.code = e == LT_OK ? LIENTHONG__V1__NACK_CODE__CERT_REVOKED
                                    : LIENTHONG__V1__NACK_CODE__BAD_SIGNATURE;
                n.reason = (char *)"certificate revoked";
                r.kind_case = LIENTHONG__V1__FRAME__KIND_NACK;
                r.nack = &n;
                cb_send(b, &id, &r);
            }
            break;
        }
        case LIENTHONG__V1__FRAME__KIND_SUBSCRIBE:
            b->subscribes++;
            credit = f->subscribe->credit;
            b->credit_given = credit;
            cb_deliver(b, &id, &credit);
            break;
        case LIENTHONG__V1__FRAME__KIND_CONSUMER_ACK:
            b->ack_frames++;
            for (size_t i = 0; i < f->consumer_ack->n_seqs && b->acked < 4096; i++)
                b->acked_seqs[b->acked++] = f->consumer_ack->seqs[i];
            break;
        case LIENTHONG__V1__FRAME__KIND_CONSUMER_NAK:
            b->naks++;
            b->nak_seq = f->consumer_nak->seq;
            b->nak_delay = f->consumer_nak->delay_ms;
            snprintf(b->nak_reason, sizeof b->nak_reason, "%s", f->consumer_nak->reason);
            break;
        case LIENTHONG__V1__FRAME__KIND_CREDIT:
            b->credit_back += f->credit->credit;
            credit += f->credit->credit;
            cb_deliver(b, &id, &credit);
            break;
        case LIENTHONG__V1__FRAME__KIND_PING: {
            b->pings++;
            Lienthong__V1__Pong po = LIENTHONG__V1__PONG__INIT;
            po.nonce = f->ping->nonce;
            r.kind_case = LIENTHONG__V1__FRAME__KIND_PONG;
            r.pong = &po;
            cb_send(b, &id, &r);
            break;
        }
        default:
            break;
        }
        if (f != NULL)
            lienthong__v1__frame__free_unpacked(f, NULL);
        zmq_msg_close(&id);
        zmq_msg_close(&m);
    }
    return NULL;
}

static struct cbroker *cbroker_start(const char *ep, lt_trust *trust, unsigned total)
{
    struct cbroker *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->trust = trust;
    b->total = total;
    b->ctx = zmq_ctx_new();
    b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(b->router, ZMQ_LINGER, &zero, sizeof zero);
    /* rebinding the port a closed broker used: retry briefly while the kernel lets go */
    int rc = -1;
    for (int i = 0; i < 200 && rc != 0; i++) {
        rc = zmq_bind(b->router, ep != NULL ? ep : "tcp://127.0.0.1:*");
        if (rc != 0)
            usleep(10000);
    }
    assert_int_equal(rc, 0);
    size_t len = sizeof b->ep;
    zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, b->ep, &len);
    assert_int_equal(pthread_create(&b->th, NULL, cbroker_main, b), 0);
    return b;
}

static void cbroker_stop(struct cbroker *b)
{
    b->stop = 1;
    pthread_join(b->th, NULL);
    zmq_close(b->router);
    zmq_ctx_term(b->ctx);
    free(b);
}

struct consumer {
    lt_client *c;
    unsigned got;
    uint64_t last_seq;
    bool in_order;
    uint64_t nak_this; /* nak this seq instead of acking it */
};

static void consume(void *user, const lt_client_delivery *d)
{
    struct consumer *k = user;
    k->got++;
    if (d->seq != k->last_seq + 1)
        k->in_order = false;
    k->last_seq = d->seq;
    assert_int_equal(d->envelope_len, sizeof ENV);
    assert_string_equal(d->queue, "q");
    if (d->seq == k->nak_this)
        assert_int_equal(lt_client_nak(k->c, d->queue, d->seq, 250, "not now"), LT_OK);
    else
        assert_int_equal(lt_client_ack(k->c, d->queue, d->seq), LT_OK);
}

static void consumer_acks_are_batched_and_credit_comes_back_as_the_app_acks(void **state)
{
    (void)state;
    struct pkidir p;
    pki_make(&p);
    struct cbroker *b = cbroker_start(NULL, p.trust, 1000);
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(b->ep, NULL, &c, &why), LT_OK);
    assert_int_equal(lt_client_subscribe(c, "q", 10, NULL, consume, NULL, &why), LT_ENOAUTH);
    assert_int_equal(lt_client_auth(c, NULL, p.signer, &why), LT_OK);
    assert_int_equal(b->auths_ok, 1);
    struct consumer k = {.c = c, .in_order = true, .nak_this = 5};
    assert_int_equal(lt_client_subscribe(c, "q", 10, NULL, consume, &k, &why), LT_OK);
    int64_t deadline = now_ms() + 10000;
    while ((k.got < 1000 || b->acked + b->naks < 1000) && now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_int_equal(lt_client_flush(c, 5000), LT_OK);
    /* the flush sent the last CREDIT; the fake broker's thread may still be reading it */
    deadline = now_ms() + 5000;
    while (b->credit_back < 1000 && now_ms() < deadline)
        lt_client_poll(c, 10, NULL);
    assert_int_equal(k.got, 1000);
    assert_true(k.in_order);
    assert_int_equal(b->subscribes, 1);
    assert_int_equal(b->credit_given, 10);
    assert_true(b->max_outstanding <= 10);
    assert_int_equal(b->acked, 999);
    assert_int_equal(b->naks, 1);
    assert_int_equal(b->nak_seq, 5);
    assert_int_equal(b->nak_delay, 250);
    assert_string_equal(b->nak_reason, "not now");
    for (unsigned i = 1; i < 999; i++)
        assert_true(b->acked_seqs[i] > b->acked_seqs[i - 1]);
    assert_true(b->ack_frames < 999); /* batched, not one frame per ack */
    /* every settled delivery gave its credit back, no more */
    assert_int_equal(b->credit_back, 1000);
    assert_int_equal(lt_client_ack(c, "other", 1), LT_ENOTFOUND);
    lt_client_close(&c);
    cbroker_stop(b);
    pki_free(&p);
}

/* A consumer about to close flushes: lt_client_flush returns only once the broker has read
 * its last acks and its last nak (a PING after them came back), even from a broker slow to
 * read, so that closing the connection cannot lose them. */
static void flush_returns_once_the_broker_has_read_the_last_acks_and_naks(void **state)
{
    (void)state;
    struct pkidir p;
    pki_make(&p);
    struct cbroker *b = cbroker_start(NULL, p.trust, 6);
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(b->ep, NULL, &c, &why), LT_OK);
    assert_int_equal(lt_client_auth(c, NULL, p.signer, &why), LT_OK);
    struct consumer k = {.c = c, .in_order = true, .nak_this = 6}; /* the last one, as a sink */
    b->slow_ms = 50;
    assert_int_equal(lt_client_subscribe(c, "q", 10, NULL, consume, &k, &why), LT_OK);
    int64_t deadline = now_ms() + 10000;
    while (k.got < 6 && now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_int_equal(k.got, 6);
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    /* read, not only sent: no poll in between */
    assert_int_equal(b->acked, 5);
    assert_int_equal(b->naks, 1);
    assert_int_equal(b->nak_seq, 6);
    assert_true(b->pings >= 1);
    /* nothing settled since: a second flush has nothing to confirm */
    unsigned pings = b->pings;
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    assert_int_equal(b->pings, pings);
    lt_client_close(&c);
    cbroker_stop(b);
    pki_free(&p);
}

static void a_refused_authentication_returns_the_nack_code_and_reason(void **state)
{
    (void)state;
    struct pkidir p;
    pki_make(&p);
    struct cbroker *b = cbroker_start(NULL, p.trust, 0);
    b->refuse_auth = true;
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(b->ep, NULL, &c, &why), LT_OK);
    assert_int_equal(lt_client_auth(c, NULL, p.signer, &why), LT_ECERT_REVOKED);
    assert_non_null(strstr(why.msg, "certificate revoked"));
    assert_int_equal(lt_client_subscribe(c, "q", 10, NULL, consume, NULL, &why), LT_ENOAUTH);
    lt_client_close(&c);
    cbroker_stop(b);
    pki_free(&p);
}

static void after_a_reconnect_the_client_authenticates_and_subscribes_again(void **state)
{
    (void)state;
    struct pkidir p;
    pki_make(&p);
    struct cbroker *b = cbroker_start(NULL, p.trust, 5);
    char ep[128];
    snprintf(ep, sizeof ep, "%s", b->ep);
    lt_client *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(ep, NULL, &c, &why), LT_OK);
    assert_int_equal(lt_client_auth(c, NULL, p.signer, &why), LT_OK);
    struct consumer k = {.c = c, .in_order = true};
    assert_int_equal(lt_client_subscribe(c, "q", 10, NULL, consume, &k, &why), LT_OK);
    int64_t deadline = now_ms() + 5000;
    while (k.got < 5 && now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_int_equal(k.got, 5);
    cbroker_stop(b); /* the broker goes away ... */
    deadline = now_ms() + 5000;
    while (lt_client_is_connected(c) && now_ms() < deadline)
        lt_client_poll(c, 50, NULL);
    assert_false(lt_client_is_connected(c));
    b = cbroker_start(ep, p.trust, 3); /* ... and comes back on the same endpoint */
    k.last_seq = 0;
    deadline = now_ms() + 10000;
    while (k.got < 8 && now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_int_equal(b->hellos, 1);
    assert_int_equal(b->auths_ok, 1);
    assert_int_equal(b->subscribes, 1);
    assert_int_equal(b->credit_given, 10);
    assert_int_equal(k.got, 8);
    lt_client_close(&c);
    cbroker_stop(b);
    pki_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publishes_are_pipelined_and_each_callback_runs_once_with_its_ack),
        cmocka_unit_test(a_nack_completes_with_the_matching_error_code_and_reason),
        cmocka_unit_test(nack_codes_map_to_error_codes_of_the_same_name),
        cmocka_unit_test(a_publish_without_answer_completes_timed_out),
        cmocka_unit_test(a_lost_connection_completes_what_is_in_flight_closed),
        cmocka_unit_test(the_window_bounds_publishes_in_flight),
        cmocka_unit_test(a_rate_limited_publisher_gets_its_acks_without_polling),
        cmocka_unit_test(a_publish_completes_the_overdue_ones_before_it_sends),
        cmocka_unit_test(close_completes_every_pending_publish_once_with_closed),
        cmocka_unit_test(ping_gets_its_pong),
        cmocka_unit_test(without_a_broker_ping_and_publish_time_out),
        cmocka_unit_test(open_refuses_a_bad_endpoint),
        cmocka_unit_test(consumer_acks_are_batched_and_credit_comes_back_as_the_app_acks),
        cmocka_unit_test(flush_returns_once_the_broker_has_read_the_last_acks_and_naks),
        cmocka_unit_test(a_refused_authentication_returns_the_nack_code_and_reason),
        cmocka_unit_test(after_a_reconnect_the_client_authenticates_and_subscribes_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
