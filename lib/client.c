/*
 * client.c - the broker connection: one DEALER socket, a ring of publishes in flight, the
 * AUTH state machine, subscriptions with their batched acks and credit.
 *
 * Invariants:
 *   - Publish tags are 1, 2, 3, ... Tags in [oldest, next_tag) may be in flight; their span is
 *     below cap, so tag % cap picks a ring slot that no other live tag uses. A slot is live
 *     until its callback has been called (exactly once).
 *   - Admin tags have the top bit set and never meet the ring.
 *   - Deadlines of live slots grow with their tags, so expiry scans from oldest and stops at
 *     the first live slot still in time.
 *   - Every send is ZMQ_DONTWAIT. A frame that cannot go out now (EAGAIN: not connected, or
 *     the send HWM reached) stays pending as state (auth step, need_subscribe, acks, credit,
 *     naks) and is retried by send_pending() after every pump; only publish, admin and ping
 *     wait for the socket, and only at the top level (never inside a callback).
 *   - A tagged send from the top level first runs catch_up() (dispatch what has arrived,
 *     without waiting), then sends and returns at once: a publish's callback never runs
 *     inside the call that sent it. depth > 0 (inside a callback) skips catch_up, so
 *     dispatching never nests.
 *   - The socket's receive HWM is unlimited on purpose: the broker's ROUTER drops what it
 *     cannot queue for us, so we must always take what it sends; the window and the credit
 *     bound that amount.
 *
 * Threads: everything runs on the owning thread; the ZeroMQ context (one per client) has its
 * own I/O thread that we never touch directly.
 */
#include "client.h"
#include "config.h"
#include "pki.h"

#include "lienthong/v1/envelope.pb-c.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MAX_SUBS 32
#define ACK_BATCH 64
#define LINGER_MS 500
#define ADMIN_TAG_BIT (UINT64_C(1) << 63)
#define DRAIN_MAX 4096 /* frames handled per pump before giving control back */
#define PUBLISH_OVERHEAD 32 /* Frame + Publish tags and lengths around an envelope */
#define CATCH_UP_NS 50000   /* a publish dispatches what arrived at most every 50 us */
#define BARRIER_NONCE_BIT (UINT64_C(1) << 63) /* PINGs of lt_client_flush, not lt_client_ping */

struct slot {
    uint64_t tag;
    int64_t deadline_ms;
    lt_client_publish_cb cb;
    void *user;
    bool live;
};

struct nak {
    uint64_t seq;
    uint32_t delay_ms;
    char *reason;
};

struct sub {
    char *queue;
    uint32_t credit;
    lt_client_replay replay;
    lt_client_deliver_cb cb;
    void *user;
    uint64_t *acks; /* seqs acked by the application, not yet sent */
    size_t nacks, acks_cap;
    struct nak *naks; /* naks not yet sent */
    size_t nnaks, naks_cap;
    uint32_t outstanding; /* deliveries of this subscription not yet acked or naked */
    uint32_t credit_back; /* credit to give back to the broker */
    bool need_subscribe;  /* SUBSCRIBE to (re)send once authenticated */
};

enum auth_state {
    AUTH_NONE,       /* never asked */
    AUTH_WANT_HELLO, /* HELLO to send when connected */
    AUTH_HELLO_SENT, /* waiting for CHALLENGE */
    AUTH_CHALLENGED, /* AUTH signed, to send */
    AUTH_AUTH_SENT,  /* waiting for WELCOME */
    AUTH_OK,
    AUTH_FAILED,
};

struct lt_client {
    void *ctx, *sock, *mon;
    lt_client_opts o;
    char client_name[64];

    struct slot *ring;
    unsigned cap;
    uint64_t next_tag, oldest;
    size_t inflight;

    struct sub subs[MAX_SUBS];
    unsigned nsubs;

    lt_signer *signer;
    char agency[LT_AGENCY_ID_MAX];
    enum auth_state auth;
    lt_err auth_err;
    char auth_reason[LT_WHY_MAX];
    uint8_t auth_sig[LT_PKI_SIG_MAX];
    size_t auth_sig_len;

    uint64_t admin_seq, admin_wait_tag;
    bool admin_done;
    lt_err admin_code;
    char admin_reason[LT_WHY_MAX];
    char *admin_json;

    uint64_t ping_nonce;
    bool pong;

    /* Settling frames (CONSUMER_ACK, CONSUMER_NAK) handed to ZeroMQ, and how many of them the
     * broker is known to have read: it answers a PING after every frame sent before it, so
     * the PONG of a PING sent after settles_sent of them confirms that many. */
    uint64_t settles_sent, settles_read;
    uint64_t barriers;      /* PINGs lt_client_flush sent, for their nonces */
    uint64_t barrier_nonce; /* the one whose PONG is awaited (0: none) ... */
    uint64_t barrier_upto;  /* ... and the settles_sent it confirms */

    lt_client_error_cb ecb;
    void *euser;
    lt_err last_err;
    char last_reason[LT_WHY_MAX];

    bool connected;
    bool out_blocked;     /* a send met EAGAIN: wake up when the socket is writable */
    bool closing;         /* lt_client_close is completing what is in flight */
    int depth;            /* callback nesting */
    int64_t caught_up_ns; /* when catch_up last ran */
    int64_t mon_seen_ms;  /* when catch_up last read the monitor */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
    return mono_ns() / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t r = deadline - mono_ms();
    if (r < 0)
        return 0;
    return r > 1000000000 ? 1000000000 : (int)r;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

lt_err lt_client_err_from_nack(int nack_code)
{
    if (nack_code == 0)
        return LT_EPROTO;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&lienthong__v1__nack_code__descriptor, nack_code);
    if (v == NULL)
        return LT_EPROTO;
    lt_err e = lt_err_from_name(v->name);
    return strcmp(lt_err_name(e), v->name) == 0 ? e : LT_EPROTO;
}

/* ---- sending ------------------------------------------------------------------------- */

/* Pack f and send it without waiting. 0, or the errno (EAGAIN: try later). */
static int send_frame(lt_client *c, const Lienthong__V1__Frame *f)
{
    size_t n = lienthong__v1__frame__get_packed_size(f);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, n) != 0)
        return ENOMEM;
    lienthong__v1__frame__pack(f, zmq_msg_data(&m));
    if (zmq_msg_send(&m, c->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&m);
        if (e == EAGAIN)
            c->out_blocked = true;
        return e;
    }
    return 0;
}

static bool can_send_consumer_frames(const lt_client *c)
{
    return c->connected && c->auth == AUTH_OK;
}

/* Send what is pending, in protocol order, stopping at the first frame that cannot go. */
static void send_pending(lt_client *c)
{
    if (!c->connected)
        return;
    if (c->auth == AUTH_WANT_HELLO) {
        Lienthong__V1__Hello h = LIENTHONG__V1__HELLO__INIT;
        h.agency = c->agency;
        h.client = c->client_name;
        Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
        f.kind_case = LIENTHONG__V1__FRAME__KIND_HELLO;
        f.hello = &h;
        if (send_frame(c, &f) != 0)
            return;
        c->auth = AUTH_HELLO_SENT;
    }
    if (c->auth == AUTH_CHALLENGED) {
        Lienthong__V1__Auth a = LIENTHONG__V1__AUTH__INIT;
        size_t der_len = 0;
        const uint8_t *der = lt_signer_cert_der(c->signer, &der_len);
        a.certificate.data = (uint8_t *)der;
        a.certificate.len = der_len;
        a.signature.data = c->auth_sig;
        a.signature.len = c->auth_sig_len;
        Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
        f.kind_case = LIENTHONG__V1__FRAME__KIND_AUTH;
        f.auth = &a;
        if (send_frame(c, &f) != 0)
            return;
        c->auth = AUTH_AUTH_SENT;
    }
    if (!can_send_consumer_frames(c))
        return;
    for (unsigned i = 0; i < c->nsubs; i++) {
        struct sub *s = &c->subs[i];
        Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
        if (s->need_subscribe) {
            Lienthong__V1__Subscribe m = LIENTHONG__V1__SUBSCRIBE__INIT;
            m.queue = s->queue;
            m.credit = s->credit;
            m.replay_from_seq = s->replay.from_seq;
            m.replay_from_unix_ms = s->replay.from_unix_ms;
            m.batched_deliver = !c->o.single_deliveries; /* dispatch reads Delivers */
            f.kind_case = LIENTHONG__V1__FRAME__KIND_SUBSCRIBE;
            f.subscribe = &m;
            if (send_frame(c, &f) != 0)
                return;
            s->need_subscribe = false;
            s->outstanding = 0;
            s->credit_back = 0;
        }
        if (s->nacks > 0) {
            Lienthong__V1__ConsumerAck m = LIENTHONG__V1__CONSUMER_ACK__INIT;
            m.queue = s->queue;
            m.n_seqs = s->nacks;
            m.seqs = s->acks;
            f.kind_case = LIENTHONG__V1__FRAME__KIND_CONSUMER_ACK;
            f.consumer_ack = &m;
            if (send_frame(c, &f) != 0)
                return;
            s->nacks = 0;
            c->settles_sent++;
        }
        while (s->nnaks > 0) {
            struct nak *k = &s->naks[0];
            Lienthong__V1__ConsumerNak m = LIENTHONG__V1__CONSUMER_NAK__INIT;
            m.queue = s->queue;
            m.seq = k->seq;
            m.delay_ms = k->delay_ms;
            m.reason = k->reason != NULL ? k->reason : (char *)"";
            f.kind_case = LIENTHONG__V1__FRAME__KIND_CONSUMER_NAK;
            f.consumer_nak = &m;
            if (send_frame(c, &f) != 0)
                return;
            free(k->reason);
            memmove(&s->naks[0], &s->naks[1], (s->nnaks - 1) * sizeof s->naks[0]);
            s->nnaks--;
            c->settles_sent++;
        }
        if (s->credit_back > 0) {
            Lienthong__V1__Credit m = LIENTHONG__V1__CREDIT__INIT;
            m.queue = s->queue;
            m.credit = s->credit_back;
            f.kind_case = LIENTHONG__V1__FRAME__KIND_CREDIT;
            f.credit = &m;
            if (send_frame(c, &f) != 0)
                return;
            s->credit_back = 0;
        }
    }
}

/* True while acks or naks went out over the current connection that the broker may not have
 * read yet (see settles_read). */
static bool has_unread_settles(const lt_client *c)
{
    return c->connected && c->settles_read < c->settles_sent;
}

/* Send a PING after the settles sent so far, unless one is out for all of them already;
 * its PONG confirms them. A PING that cannot go now is tried again at the next call. */
static void send_barrier(lt_client *c)
{
    if (c->barrier_nonce != 0 && c->barrier_upto == c->settles_sent)
        return;
    Lienthong__V1__Ping p = LIENTHONG__V1__PING__INIT;
    p.nonce = BARRIER_NONCE_BIT | (c->barriers + 1);
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &p;
    if (send_frame(c, &f) != 0)
        return;
    c->barriers++;
    c->barrier_nonce = p.nonce;
    c->barrier_upto = c->settles_sent;
}

/* True when send_pending has something it could send now. */
static bool has_pending(const lt_client *c)
{
    if (!c->connected)
        return false;
    if (c->auth == AUTH_WANT_HELLO || c->auth == AUTH_CHALLENGED)
        return true;
    if (!can_send_consumer_frames(c))
        return false;
    for (unsigned i = 0; i < c->nsubs; i++) {
        const struct sub *s = &c->subs[i];
        if (s->need_subscribe || s->nacks > 0 || s->nnaks > 0 || s->credit_back > 0)
            return true;
    }
    return false;
}

/* ---- completing publishes ------------------------------------------------------------ */

static void complete(lt_client *c, struct slot *s, lt_err code, uint64_t seq, bool dup,
                     const char *reason)
{
    lt_client_publish_cb cb = s->cb;
    void *user = s->user;
    uint64_t tag = s->tag;
    s->live = false;
    c->inflight--;
    if (cb != NULL) {
        c->depth++;
        cb(user, tag, code, seq, dup, reason != NULL ? reason : "");
        c->depth--;
    }
}

static struct slot *find_slot(lt_client *c, uint64_t tag)
{
    if (tag == 0 || (tag & ADMIN_TAG_BIT) != 0 || tag < c->oldest || tag >= c->next_tag)
        return NULL;
    struct slot *s = &c->ring[tag % c->cap];
    return s->live && s->tag == tag ? s : NULL;
}

/* Move oldest past completed tags; with expire, complete those past their deadline. */
static void advance(lt_client *c, bool expire, int64_t now)
{
    while (c->oldest < c->next_tag) {
        struct slot *s = &c->ring[c->oldest % c->cap];
        if (s->live && s->tag == c->oldest) {
            if (!expire || s->deadline_ms > now)
                break;
            complete(c, s, LT_ETIMEDOUT, 0, false,
                     "no answer from the broker within the ack timeout; republish (the "
                     "broker dedups by message id)");
        }
        c->oldest++;
    }
}

static void fail_all_inflight(lt_client *c, lt_err code, const char *reason)
{
    for (uint64_t t = c->oldest; t < c->next_tag && c->inflight > 0; t++) {
        struct slot *s = &c->ring[t % c->cap];
        if (s->live && s->tag == t)
            complete(c, s, code, 0, false, reason);
    }
    advance(c, false, 0);
}

/* Milliseconds until the oldest live publish expires (-1: none live). */
static int64_t next_expiry(lt_client *c)
{
    advance(c, false, 0);
    if (c->oldest >= c->next_tag)
        return -1;
    int64_t r = c->ring[c->oldest % c->cap].deadline_ms - mono_ms();
    return r < 0 ? 0 : r;
}

/* ---- receiving ----------------------------------------------------------------------- */

static void report_error(lt_client *c, lt_err code, const char *reason)
{
    c->last_err = code;
    copy_str(c->last_reason, sizeof c->last_reason, reason);
    if (c->ecb != NULL) {
        c->depth++;
        c->ecb(c->euser, code, c->last_reason);
        c->depth--;
    }
}

static struct sub *find_sub(lt_client *c, const char *queue)
{
    for (unsigned i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].queue, queue) == 0)
            return &c->subs[i];
    return NULL;
}

static void on_nack(lt_client *c, const Lienthong__V1__Nack *n)
{
    lt_err code = lt_client_err_from_nack((int)n->code);
    const char *reason = n->reason != NULL ? n->reason : "";
    struct slot *s = find_slot(c, n->tag);
    if (s != NULL) {
        complete(c, s, code, 0, false, reason);
        advance(c, false, 0);
        return;
    }
    if (n->tag == 0 && (c->auth == AUTH_HELLO_SENT || c->auth == AUTH_CHALLENGED ||
                        c->auth == AUTH_AUTH_SENT)) {
        c->auth = AUTH_FAILED;
        c->auth_err = code;
        copy_str(c->auth_reason, sizeof c->auth_reason, reason);
        report_error(c, code, reason);
        return;
    }
    if (n->tag != 0 && n->tag == c->admin_wait_tag) {
        c->admin_done = true;
        c->admin_code = code;
        copy_str(c->admin_reason, sizeof c->admin_reason, reason);
        return;
    }
    report_error(c, code, reason);
}

static void on_challenge(lt_client *c, const Lienthong__V1__Challenge *ch)
{
    if (c->auth != AUTH_HELLO_SENT || c->signer == NULL)
        return;
    lt_why why = {{0}};
    if (ch->nonce.len < 16 || ch->nonce.len > 256) {
        c->auth = AUTH_FAILED;
        c->auth_err = LT_EPROTO;
        snprintf(c->auth_reason, sizeof c->auth_reason,
                 "broker's challenge nonce has %zu bytes (expected 32)", ch->nonce.len);
        return;
    }
    lt_err e = lt_signer_sign(c->signer, LT_PKI_DOMAIN_AUTH, ch->nonce.data, ch->nonce.len,
                              c->auth_sig, &c->auth_sig_len, &why);
    if (e != LT_OK) {
        c->auth = AUTH_FAILED;
        c->auth_err = e;
        copy_str(c->auth_reason, sizeof c->auth_reason, why.msg);
        return;
    }
    c->auth = AUTH_CHALLENGED;
}

static void on_deliver(lt_client *c, const Lienthong__V1__Deliver *d)
{
    struct sub *s = d->queue != NULL ? find_sub(c, d->queue) : NULL;
    if (s == NULL || s->cb == NULL)
        return; /* not ours (any more): the broker redelivers after ack_wait */
    lt_client_delivery dv = {
        .queue = s->queue,
        .seq = d->seq,
        .delivery_count = d->delivery_count,
        .replay = d->replay != 0,
        .envelope = d->envelope.data,
        .envelope_len = d->envelope.len,
        .hops = (const char *const *)d->hops,
        .nhops = d->n_hops,
    };
    if (dv.replay)
        s->credit_back++; /* needs no ack: its credit comes back at once */
    else
        s->outstanding++;
    c->depth++;
    s->cb(s->user, &dv);
    c->depth--;
}

static void dispatch(lt_client *c, const Lienthong__V1__Frame *f)
{
    switch (f->kind_case) {
    case LIENTHONG__V1__FRAME__KIND_ACK: {
        struct slot *s = find_slot(c, f->ack->tag);
        if (s != NULL) {
            complete(c, s, LT_OK, f->ack->seq, f->ack->duplicate != 0, "");
            advance(c, false, 0);
        }
        break;
    }
    case LIENTHONG__V1__FRAME__KIND_ACKS: {
        bool any = false;
        for (size_t i = 0; i < f->acks->n_acks; i++) {
            const Lienthong__V1__Ack *a = f->acks->acks[i];
            struct slot *s = find_slot(c, a->tag);
            if (s != NULL) {
                complete(c, s, LT_OK, a->seq, a->duplicate != 0, "");
                any = true;
            }
        }
        if (any)
            advance(c, false, 0);
        break;
    }
    case LIENTHONG__V1__FRAME__KIND_NACK:
        on_nack(c, f->nack);
        break;
    case LIENTHONG__V1__FRAME__KIND_CHALLENGE:
        on_challenge(c, f->challenge);
        break;
    case LIENTHONG__V1__FRAME__KIND_WELCOME:
        if (c->auth == AUTH_AUTH_SENT)
            c->auth = AUTH_OK;
        break;
    case LIENTHONG__V1__FRAME__KIND_DELIVER:
        on_deliver(c, f->deliver);
        break;
    case LIENTHONG__V1__FRAME__KIND_DELIVERS:
        for (size_t i = 0; i < f->delivers->n_delivers; i++)
            on_deliver(c, f->delivers->delivers[i]);
        break;
    case LIENTHONG__V1__FRAME__KIND_PONG:
        if (f->pong->nonce == c->ping_nonce)
            c->pong = true;
        if (c->barrier_nonce != 0 && f->pong->nonce == c->barrier_nonce) {
            c->settles_read = c->barrier_upto; /* the broker read every one sent before */
            c->barrier_nonce = 0;
        }
        break;
    case LIENTHONG__V1__FRAME__KIND_ADMIN_REPLY:
        if (c->admin_wait_tag != 0 && f->admin_reply->tag == c->admin_wait_tag) {
            const Lienthong__V1__AdminReply *r = f->admin_reply;
            c->admin_done = true;
            c->admin_code = r->code == 0 ? LT_OK : lt_client_err_from_nack((int)r->code);
            copy_str(c->admin_reason, sizeof c->admin_reason, r->reason);
            free(c->admin_json);
            c->admin_json = strdup(r->json != NULL ? r->json : "");
        }
        break;
    default:
        break; /* frames a broker does not send to clients: ignored */
    }
}

/* Receive and dispatch what is already queued, at most DRAIN_MAX frames. */
static lt_err drain_sock(lt_client *c, unsigned *n)
{
    for (unsigned i = 0; i < DRAIN_MAX; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            if (e == EAGAIN || e == EINTR)
                return LT_OK;
            return LT_EIO;
        }
        bool more = zmq_msg_more(&m) != 0;
        size_t len = zmq_msg_size(&m);
        Lienthong__V1__Frame *f = NULL;
        if (!more && len <= c->o.max_frame_bytes)
            f = lienthong__v1__frame__unpack(NULL, len, zmq_msg_data(&m));
        zmq_msg_close(&m);
        while (more) { /* the protocol is one part per message: drop the rest */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m) != 0;
            zmq_msg_close(&m);
        }
        if (f == NULL)
            continue; /* malformed or oversized: dropped */
        (*n)++;
        dispatch(c, f);
        lienthong__v1__frame__free_unpacked(f, NULL);
    }
    return LT_OK;
}

static void on_connected(lt_client *c)
{
    c->connected = true;
    c->out_blocked = false;
}

static void on_disconnected(lt_client *c)
{
    unsigned n = 0;
    (void)drain_sock(c, &n); /* answers that arrived before the drop still count */
    c->connected = false;
    /* Settles the lost connection carried can no longer be confirmed: the broker redelivers
     * what it did not take. */
    c->settles_read = c->settles_sent;
    c->barrier_nonce = 0;
    fail_all_inflight(c, LT_ECLOSED,
                      "connection to the broker lost before the answer; republish (the "
                      "broker dedups by message id)");
    if (c->signer != NULL && c->auth != AUTH_NONE && c->auth != AUTH_FAILED)
        c->auth = AUTH_WANT_HELLO;
    for (unsigned i = 0; i < c->nsubs; i++) {
        c->subs[i].need_subscribe = true;
        c->subs[i].outstanding = 0;
        c->subs[i].credit_back = 0;
    }
}

static void drain_mon(lt_client *c)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        bool more = zmq_msg_more(&ev) != 0;
        zmq_msg_close(&ev);
        while (more) { /* second part: the endpoint */
            zmq_msg_t ep;
            zmq_msg_init(&ep);
            if (zmq_msg_recv(&ep, c->mon, 0) < 0) {
                zmq_msg_close(&ep);
                break;
            }
            more = zmq_msg_more(&ep) != 0;
            zmq_msg_close(&ep);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            on_connected(c);
        else if (event == ZMQ_EVENT_DISCONNECTED)
            on_disconnected(c);
    }
}

/* One round: send what is pending, wait up to timeout_ms (< 0: no limit) for frames, a
 * connection event or writability, dispatch everything, expire, send again. */
static lt_err pump(lt_client *c, int timeout_ms, unsigned *nout)
{
    unsigned n = 0;
    send_pending(c);
    long wait = timeout_ms;
    int64_t exp = next_expiry(c);
    if (exp >= 0 && (wait < 0 || exp < wait))
        wait = (long)exp;
    if (has_pending(c) && !c->out_blocked)
        wait = 0;
    zmq_pollitem_t it[2] = {
        {c->sock, 0, (short)(ZMQ_POLLIN | (c->out_blocked ? ZMQ_POLLOUT : 0)), 0},
        {c->mon, 0, ZMQ_POLLIN, 0},
    };
    int r = zmq_poll(it, 2, wait);
    if (r < 0 && zmq_errno() != EINTR)
        return LT_EIO;
    if (r > 0 && (it[0].revents & ZMQ_POLLOUT) != 0)
        c->out_blocked = false;
    lt_err e = drain_sock(c, &n);
    drain_mon(c);
    advance(c, true, mono_ms());
    send_pending(c);
    if (nout != NULL)
        *nout += n;
    return e;
}

/* Dispatch what has already arrived (answers, deliveries), complete the publishes past their
 * deadline and read the connection events; never waits. Every tagged send made from outside
 * a callback starts with this, so a publisher that never fills its window (one sending at a
 * set rate) gets its callbacks at its next publish without calling lt_client_poll.
 * Each round ends with a failed non-blocking receive per socket, a poll(2) of libzmq's
 * command mailbox (about 0.7 us each here): at full speed that added some 60% to the client's
 * CPU per publish, so a round runs at most every CATCH_UP_NS (the monitor: every ms). */
static lt_err catch_up(lt_client *c)
{
    int64_t now_ns = mono_ns();
    if (now_ns - c->caught_up_ns < CATCH_UP_NS)
        return LT_OK;
    c->caught_up_ns = now_ns;
    unsigned n = 0;
    lt_err e = drain_sock(c, &n);
    int64_t now = now_ns / 1000000;
    bool mon = now != c->mon_seen_ms;
    if (mon) {
        c->mon_seen_ms = now;
        drain_mon(c);
    }
    advance(c, true, now);
    if (n > 0 || mon)
        send_pending(c); /* acks and credit the callbacks gave back */
    return e;
}

/* Send f, waiting (pumping) while the socket cannot take it, until deadline. */
static lt_err send_wait(lt_client *c, const Lienthong__V1__Frame *f, int64_t deadline,
                        lt_why *why)
{
    for (;;) {
        int e = send_frame(c, f);
        if (e == 0)
            return LT_OK;
        if (e != EAGAIN)
            return lt_fail(why, LT_EIO, "send to broker: %s", zmq_strerror(e));
        if (mono_ms() >= deadline)
            return lt_fail(why, LT_ETIMEDOUT, "broker not connected (request not sent)");
        int w = remaining_ms(deadline);
        lt_err pe = pump(c, w < 100 ? w : 100, NULL);
        if (pe != LT_OK)
            return lt_fail(why, pe, "receive from broker: %s", zmq_strerror(zmq_errno()));
    }
}

/* ---- public API ---------------------------------------------------------------------- */

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* CURVE on sock as a client of the broker whose public key is o->curve_server_key, with our
 * key pair (Z85 text, 40 characters each). LT_EINVAL with the reason. */
static lt_err curve_client(void *sock, const lt_client_opts *o, lt_why *why)
{
    const char *keys[3] = {o->curve_server_key, o->curve_public_key, o->curve_secret_key};
    const int opt[3] = {ZMQ_CURVE_SERVERKEY, ZMQ_CURVE_PUBLICKEY, ZMQ_CURVE_SECRETKEY};
    static const char *const what[3] = {"the broker's public key", "our public key",
                                        "our secret key"};
    if (!zmq_has("curve"))
        return lt_fail(why, LT_EINVAL, "this libzmq has no CURVE");
    for (int i = 0; i < 3; i++) {
        uint8_t raw[32];
        if (keys[i] == NULL || strlen(keys[i]) != 40 || zmq_z85_decode(raw, keys[i]) == NULL)
            return lt_fail(why, LT_EINVAL, "CURVE: %s is not 40 characters of Z85", what[i]);
        if (zmq_setsockopt(sock, opt[i], keys[i], 41) != 0)
            return lt_fail(why, LT_EINVAL, "CURVE: %s: %s", what[i], zmq_strerror(zmq_errno()));
    }
    return LT_OK;
}

lt_err lt_client_open(const char *endpoint, const lt_client_opts *opts, lt_client **out,
                      lt_why *why)
{
    if (endpoint == NULL || endpoint[0] == '\0' || out == NULL)
        return lt_fail(why, LT_EINVAL, "no broker endpoint given");
    lt_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory opening a client");
    if (opts != NULL)
        c->o = *opts;
    if (c->o.window == 0)
        c->o.window = LT_CLIENT_WINDOW_DEFAULT;
    if (c->o.ack_timeout_ms <= 0)
        c->o.ack_timeout_ms = LT_CLIENT_ACK_TIMEOUT_MS_DEFAULT;
    if (c->o.request_timeout_ms <= 0)
        c->o.request_timeout_ms = LT_CLIENT_REQUEST_TIMEOUT_MS_DEFAULT;
    if (c->o.max_frame_bytes == 0)
        c->o.max_frame_bytes = LT_CLIENT_MAX_FRAME_DEFAULT;
    if (c->o.window > (1u << 20)) {
        free(c);
        return lt_fail(why, LT_EINVAL, "publish window %u too large (at most %u)",
                       opts->window, 1u << 20);
    }
    snprintf(c->client_name, sizeof c->client_name, "%s",
             c->o.client_name != NULL ? c->o.client_name : "lienthong-client/" LT_VERSION);
    c->o.client_name = NULL; /* not kept: the copy above is */
    c->cap = c->o.window;
    c->next_tag = c->oldest = 1;
    c->ring = calloc(c->cap, sizeof *c->ring);
    lt_err err = LT_EIO;
    if (c->ring == NULL) {
        err = lt_fail(why, LT_ENOMEM, "out of memory for a window of %u", c->cap);
        goto out_free;
    }
    c->ctx = zmq_ctx_new();
    if (c->ctx == NULL) {
        lt_fail(why, LT_EIO, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto out_free;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (c->sock == NULL) {
        lt_fail(why, LT_EIO, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto out_term;
    }
    int64_t maxmsg = (int64_t)c->o.max_frame_bytes;
    /* IMMEDIATE: nothing is queued for a broker we are not connected to, so a publish made
     * during an outage waits visibly instead of vanishing with a dead pipe. SNDHWM leaves
     * room for the whole window plus control frames; RCVHWM 0: see the file comment. */
    if (set_int(c->sock, ZMQ_IMMEDIATE, 1) != 0 ||
        set_int(c->sock, ZMQ_SNDHWM, (int)c->cap + 1024) != 0 ||
        set_int(c->sock, ZMQ_RCVHWM, 0) != 0 || set_int(c->sock, ZMQ_LINGER, LINGER_MS) != 0 ||
        set_int(c->sock, ZMQ_RECONNECT_IVL, 100) != 0 ||
        set_int(c->sock, ZMQ_RECONNECT_IVL_MAX, 2000) != 0 ||
        set_int(c->sock, ZMQ_HEARTBEAT_IVL, 2000) != 0 ||
        set_int(c->sock, ZMQ_HEARTBEAT_TIMEOUT, 6000) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0) {
        lt_fail(why, LT_EIO, "zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
        goto out_close;
    }
    if (c->o.curve_server_key != NULL && c->o.curve_server_key[0] != '\0' &&
        curve_client(c->sock, &c->o, why) != LT_OK) {
        err = LT_EINVAL;
        goto out_close;
    }
    c->o.curve_server_key = c->o.curve_public_key = c->o.curve_secret_key = NULL; /* not kept */
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://lt-client-monitor-%p", (void *)c);
    if (zmq_socket_monitor(c->sock, addr,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
        lt_fail(why, LT_EIO, "zmq_socket_monitor: %s", zmq_strerror(zmq_errno()));
        goto out_close;
    }
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (c->mon == NULL || set_int(c->mon, ZMQ_LINGER, 0) != 0 || zmq_connect(c->mon, addr) != 0) {
        lt_fail(why, LT_EIO, "monitor socket: %s", zmq_strerror(zmq_errno()));
        goto out_close;
    }
    if (zmq_connect(c->sock, endpoint) != 0) {
        err = lt_fail(why, LT_EINVAL, "cannot connect to '%s': %s", endpoint,
                      zmq_strerror(zmq_errno()));
        goto out_close;
    }
    *out = c;
    return LT_OK;

out_close:
    if (c->mon != NULL) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->mon);
    }
    set_int(c->sock, ZMQ_LINGER, 0);
    zmq_close(c->sock);
out_term:
    zmq_ctx_term(c->ctx);
out_free:
    free(c->ring);
    free(c);
    return err;
}

void lt_client_close(lt_client **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    lt_client *c = *cp;
    assert(c->depth == 0 && "lt_client_close called from a callback");
    *cp = NULL;
    c->closing = true;
    fail_all_inflight(c, LT_ECLOSED, "client closed before the broker answered");
    send_pending(c); /* best effort: acks and credit already due */
    zmq_socket_monitor(c->sock, NULL, 0);
    zmq_close(c->mon);
    zmq_close(c->sock);
    zmq_ctx_term(c->ctx);
    for (unsigned i = 0; i < c->nsubs; i++) {
        struct sub *s = &c->subs[i];
        for (size_t k = 0; k < s->nnaks; k++)
            free(s->naks[k].reason);
        free(s->naks);
        free(s->acks);
        free(s->queue);
    }
    free(c->admin_json);
    free(c->ring);
    free(c);
}

lt_err lt_client_auth(lt_client *c, const char *agency_id, lt_signer *signer, lt_why *why)
{
    if (c == NULL || signer == NULL)
        return lt_fail(why, LT_EINVAL, "no client or signer");
    if (c->depth > 0)
        return lt_fail(why, LT_EINVAL, "lt_client_auth called from a callback");
    copy_str(c->agency, sizeof c->agency,
             agency_id != NULL ? agency_id : lt_signer_agency(signer));
    c->signer = signer;
    c->auth = AUTH_WANT_HELLO;
    c->auth_reason[0] = '\0';
    int64_t deadline = mono_ms() + c->o.request_timeout_ms;
    while (c->auth != AUTH_OK && c->auth != AUTH_FAILED) {
        if (mono_ms() >= deadline) {
            bool conn = c->connected;
            c->auth = AUTH_NONE;
            c->signer = NULL;
            return lt_fail(why, LT_ETIMEDOUT, "%s within %d ms",
                           conn ? "no WELCOME from the broker"
                                : "could not connect to the broker",
                           c->o.request_timeout_ms);
        }
        lt_err e = pump(c, remaining_ms(deadline), NULL);
        if (e != LT_OK)
            return lt_fail(why, e, "receive from broker: %s", zmq_strerror(zmq_errno()));
    }
    if (c->auth == AUTH_FAILED) {
        c->signer = NULL;
        return lt_fail(why, c->auth_err, "authentication as %s refused: %s", c->agency,
                       c->auth_reason);
    }
    return LT_OK;
}

lt_err lt_client_open_agency(const lt_agency_config *cfg, lt_signer *signer,
                             const lt_client_opts *opts, lt_client **out, lt_why *why)
{
    if (cfg == NULL || signer == NULL || out == NULL)
        return lt_fail(why, LT_EINVAL, "no agency config or signer");
    lt_client *c = NULL;
    lt_client_opts o = opts ? *opts : (lt_client_opts){0};
    lt_curve_pair keys;
    lt_err e = lt_agency_config_curve(cfg, &keys, &o, why); /* CURVE when the config asks */
    if (e == LT_OK)
        e = lt_client_open(cfg->broker_endpoint, &o, &c, why);
    memset(&keys, 0, sizeof keys);
    if (e != LT_OK)
        return e;
    e = lt_client_auth(c, cfg->id, signer, why);
    if (e != LT_OK) {
        lt_client_close(&c);
        return e;
    }
    *out = c;
    return LT_OK;
}

/* Send f, whose request carries its tag at *tag_field, as the next tagged request: ACK or
 * NACK with that tag completes it through cb. See lt_client_publish for the waiting. */
static lt_err send_tagged(lt_client *c, const Lienthong__V1__Frame *f, uint64_t *tag_field,
                          lt_client_publish_cb cb, void *user, uint64_t *tag_out)
{
    if (c->closing)
        return LT_ECLOSED;
    /* Answers first, then our frame: so cb never runs inside the call that sends it. */
    if (c->depth == 0) {
        lt_err ce = catch_up(c);
        if (ce != LT_OK)
            return ce;
    }
    int64_t deadline = mono_ms() + c->o.ack_timeout_ms;
    for (;;) {
        advance(c, false, 0);
        if (c->next_tag - c->oldest < c->cap) {
            *tag_field = c->next_tag; /* re-read: a callback may have published meanwhile */
            int e = send_frame(c, f);
            if (e == 0) {
                uint64_t tag = *tag_field;
                struct slot *s = &c->ring[tag % c->cap];
                *s = (struct slot){.tag = tag,
                                   .deadline_ms = mono_ms() + c->o.ack_timeout_ms,
                                   .cb = cb,
                                   .user = user,
                                   .live = true};
                c->next_tag++;
                c->inflight++;
                if (tag_out != NULL)
                    *tag_out = tag;
                return LT_OK;
            }
            if (e != EAGAIN)
                return e == ENOMEM ? LT_ENOMEM : LT_EIO;
        }
        if (c->depth > 0)
            return LT_EAGAIN;
        if (mono_ms() >= deadline)
            return LT_ETIMEDOUT;
        int w = remaining_ms(deadline);
        lt_err pe = pump(c, w < 1000 ? w : 1000, NULL);
        if (pe != LT_OK)
            return pe;
    }
}

lt_err lt_client_publish_at(lt_client *c, const uint8_t *env, size_t len,
                            int64_t deliver_at_unix_ms, lt_client_publish_cb cb, void *user,
                            uint64_t *tag_out)
{
    if (c == NULL || (env == NULL && len > 0))
        return LT_EINVAL;
    if (len > c->o.max_frame_bytes - PUBLISH_OVERHEAD)
        return LT_ETOOBIG;
    Lienthong__V1__Publish p = LIENTHONG__V1__PUBLISH__INIT;
    p.envelope.data = (uint8_t *)env;
    p.envelope.len = len;
    p.deliver_at_unix_ms = deliver_at_unix_ms > 0 ? deliver_at_unix_ms : 0;
    p.batched_ack = 1; /* dispatch reads Acks frames */
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    return send_tagged(c, &f, &p.tag, cb, user, tag_out);
}

lt_err lt_client_publish(lt_client *c, const uint8_t *env, size_t len, lt_client_publish_cb cb,
                         void *user, uint64_t *tag_out)
{
    return lt_client_publish_at(c, env, len, 0, cb, user, tag_out);
}

lt_err lt_client_publish_hops(lt_client *c, const uint8_t *env, size_t len,
                              const char *const *hops, size_t nhops, lt_client_publish_cb cb,
                              void *user, uint64_t *tag_out)
{
    if (c == NULL || (env == NULL && len > 0) || (hops == NULL && nhops > 0))
        return LT_EINVAL;
    size_t hop_bytes = 0;
    for (size_t i = 0; i < nhops; i++)
        hop_bytes += strlen(hops[i]) + 3;
    if (len > c->o.max_frame_bytes - PUBLISH_OVERHEAD ||
        hop_bytes > c->o.max_frame_bytes - PUBLISH_OVERHEAD - len)
        return LT_ETOOBIG;
    Lienthong__V1__Publish p = LIENTHONG__V1__PUBLISH__INIT;
    p.envelope.data = (uint8_t *)env;
    p.envelope.len = len;
    p.hops = (char **)hops;
    p.n_hops = nhops;
    p.batched_ack = 1;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    return send_tagged(c, &f, &p.tag, cb, user, tag_out);
}

lt_err lt_client_cancel(lt_client *c, const uint8_t message_id[16], lt_client_publish_cb cb,
                        void *user, uint64_t *tag_out)
{
    if (c == NULL || message_id == NULL)
        return LT_EINVAL;
    Lienthong__V1__Cancel k = LIENTHONG__V1__CANCEL__INIT;
    k.message_id.data = (uint8_t *)message_id;
    k.message_id.len = 16;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_CANCEL;
    f.cancel = &k;
    return send_tagged(c, &f, &k.tag, cb, user, tag_out);
}

size_t lt_client_inflight(const lt_client *c)
{
    return c != NULL ? c->inflight : 0;
}

lt_err lt_client_flush(lt_client *c, int timeout_ms)
{
    if (c == NULL || c->depth > 0)
        return LT_EINVAL;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    /* Without a timeout, the PONG that confirms the settles is waited for as a ping would. */
    int64_t pong_deadline = INT64_MAX;
    send_pending(c);
    while (c->inflight > 0 || has_pending(c) || has_unread_settles(c)) {
        int64_t now = mono_ms();
        if (now >= deadline)
            return LT_ETIMEDOUT;
        if (!has_pending(c) && has_unread_settles(c)) {
            if (timeout_ms < 0 && pong_deadline == INT64_MAX)
                pong_deadline = now + c->o.request_timeout_ms;
            if (c->inflight == 0 && now >= pong_deadline)
                return LT_ETIMEDOUT;
            send_barrier(c); /* after the last settle */
        }
        int w = timeout_ms < 0 ? 1000 : remaining_ms(deadline);
        lt_err e = pump(c, w < 1000 ? w : 1000, NULL);
        if (e != LT_OK)
            return e;
    }
    return LT_OK;
}

lt_err lt_client_poll(lt_client *c, int timeout_ms, unsigned *n_frames)
{
    if (c == NULL || c->depth > 0)
        return LT_EINVAL;
    unsigned n = 0;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    lt_err e;
    do {
        int w = timeout_ms < 0 ? -1 : remaining_ms(deadline);
        e = pump(c, w, &n);
    } while (e == LT_OK && n == 0 && mono_ms() < deadline);
    if (n_frames != NULL)
        *n_frames = n;
    return e;
}

lt_err lt_client_subscribe(lt_client *c, const char *queue, uint32_t credit,
                           const lt_client_replay *replay, lt_client_deliver_cb cb, void *user,
                           lt_why *why)
{
    if (c == NULL || queue == NULL || queue[0] == '\0' || credit == 0 || cb == NULL)
        return lt_fail(why, LT_EINVAL, "subscribe needs a queue, a credit > 0 and a callback");
    if (c->signer == NULL)
        return lt_fail(why, LT_ENOAUTH, "subscribe to '%s' before authenticating", queue);
    struct sub *s = find_sub(c, queue);
    if (s == NULL) {
        if (c->nsubs == MAX_SUBS)
            return lt_fail(why, LT_EINVAL, "more than %d subscriptions", MAX_SUBS);
        s = &c->subs[c->nsubs];
        memset(s, 0, sizeof *s);
        s->queue = strdup(queue);
        if (s->queue == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        c->nsubs++;
    }
    s->credit = credit;
    s->replay = replay != NULL ? *replay : (lt_client_replay){0, 0};
    s->cb = cb;
    s->user = user;
    s->need_subscribe = true;
    send_pending(c);
    return LT_OK;
}

/* A delivery was settled by the application: its credit can go back. */
static void settle(struct sub *s)
{
    if (s->outstanding > 0) {
        s->outstanding--;
        s->credit_back++;
    }
}

lt_err lt_client_ack(lt_client *c, const char *queue, uint64_t seq)
{
    if (c == NULL || queue == NULL)
        return LT_EINVAL;
    struct sub *s = find_sub(c, queue);
    if (s == NULL)
        return LT_ENOTFOUND;
    if (s->nacks == s->acks_cap) {
        size_t cap = s->acks_cap ? s->acks_cap * 2 : ACK_BATCH;
        uint64_t *a = realloc(s->acks, cap * sizeof *a);
        if (a == NULL)
            return LT_ENOMEM;
        s->acks = a;
        s->acks_cap = cap;
    }
    s->acks[s->nacks++] = seq;
    settle(s);
    if (s->nacks >= ACK_BATCH)
        send_pending(c);
    return LT_OK;
}

lt_err lt_client_nak(lt_client *c, const char *queue, uint64_t seq, uint32_t delay_ms,
                     const char *reason)
{
    if (c == NULL || queue == NULL)
        return LT_EINVAL;
    struct sub *s = find_sub(c, queue);
    if (s == NULL)
        return LT_ENOTFOUND;
    if (s->nnaks == s->naks_cap) {
        size_t cap = s->naks_cap ? s->naks_cap * 2 : 16;
        struct nak *k = realloc(s->naks, cap * sizeof *k);
        if (k == NULL)
            return LT_ENOMEM;
        s->naks = k;
        s->naks_cap = cap;
    }
    char *r = NULL;
    if (reason != NULL && (r = strdup(reason)) == NULL)
        return LT_ENOMEM;
    s->naks[s->nnaks++] = (struct nak){.seq = seq, .delay_ms = delay_ms, .reason = r};
    settle(s);
    send_pending(c);
    return LT_OK;
}

lt_err lt_client_admin(lt_client *c, const char *op, const char *queue, const uint64_t *seqs,
                       size_t n, uint32_t limit, char **json_out, lt_why *why)
{
    if (c == NULL || op == NULL || json_out == NULL || (n > 0 && seqs == NULL))
        return lt_fail(why, LT_EINVAL, "admin request needs an op and an output");
    if (c->depth > 0)
        return lt_fail(why, LT_EINVAL, "lt_client_admin called from a callback");
    Lienthong__V1__AdminRequest r = LIENTHONG__V1__ADMIN_REQUEST__INIT;
    r.tag = ADMIN_TAG_BIT | ++c->admin_seq;
    r.op = (char *)op;
    r.queue = (char *)(queue != NULL ? queue : "");
    r.n_seqs = n;
    r.seqs = (uint64_t *)seqs;
    r.limit = limit;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ADMIN;
    f.admin = &r;
    int64_t deadline = mono_ms() + c->o.request_timeout_ms;
    c->admin_wait_tag = r.tag;
    c->admin_done = false;
    lt_err e = send_wait(c, &f, deadline, why);
    while (e == LT_OK && !c->admin_done) {
        if (mono_ms() >= deadline)
            e = lt_fail(why, LT_ETIMEDOUT, "no answer to admin '%s' within %d ms", op,
                        c->o.request_timeout_ms);
        else if (pump(c, remaining_ms(deadline), NULL) != LT_OK)
            e = lt_fail(why, LT_EIO, "receive from broker: %s", zmq_strerror(zmq_errno()));
    }
    c->admin_wait_tag = 0;
    if (e != LT_OK)
        return e;
    if (c->admin_code != LT_OK)
        return lt_fail(why, c->admin_code, "admin '%s'%s%s refused: %s", op,
                       queue != NULL ? " on " : "", queue != NULL ? queue : "",
                       c->admin_reason);
    if (c->admin_json == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *json_out = c->admin_json;
    c->admin_json = NULL;
    return LT_OK;
}

lt_err lt_client_ping(lt_client *c, int timeout_ms, lt_why *why)
{
    if (c == NULL)
        return lt_fail(why, LT_EINVAL, "no client");
    if (c->depth > 0)
        return lt_fail(why, LT_EINVAL, "lt_client_ping called from a callback");
    if (timeout_ms < 0)
        timeout_ms = c->o.request_timeout_ms;
    int64_t deadline = mono_ms() + timeout_ms;
    Lienthong__V1__Ping p = LIENTHONG__V1__PING__INIT;
    p.nonce = c->ping_nonce = (((uint64_t)mono_ms() << 16) ^ (uintptr_t)c) & ~BARRIER_NONCE_BIT;
    c->pong = false;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &p;
    lt_err e = send_wait(c, &f, deadline, why);
    while (e == LT_OK && !c->pong) {
        if (mono_ms() >= deadline)
            return lt_fail(why, LT_ETIMEDOUT, "no PONG within %d ms", timeout_ms);
        if (pump(c, remaining_ms(deadline), NULL) != LT_OK)
            return lt_fail(why, LT_EIO, "receive from broker: %s", zmq_strerror(zmq_errno()));
    }
    return e;
}

void lt_client_set_error_cb(lt_client *c, lt_client_error_cb cb, void *user)
{
    c->ecb = cb;
    c->euser = user;
}

lt_err lt_client_last_error(const lt_client *c, lt_why *why)
{
    if (why != NULL)
        copy_str(why->msg, sizeof why->msg, c->last_reason);
    return c->last_err;
}

bool lt_client_is_connected(const lt_client *c)
{
    return c != NULL && c->connected;
}
