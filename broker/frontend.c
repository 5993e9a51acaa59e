/*
 * frontend.c - the ZeroMQ ROUTER socket on the libuv loop and the sessions of its
 * connections, and nothing else: reads frames, answers what is cheap (HELLO, PING, bad
 * frames), hands publishes and AUTHs to the ring, the consumer frames of authenticated
 * sessions to the hooks broker.c set (lt_fe_hooks: delivery), and sends the ring's outcomes
 * (ACK / NACK / WELCOME). It calls no other part of the broker but the ring.
 *
 * Sessions (lt_peer): one per connection that sent a frame, bound to that connection (its
 * fd), never to the routing id a client may choose; see broker_int.h
 * and docs/security.md. A socket monitor reports closed connections (so does a send that
 * finds no route to one); a closed connection's frames already received are still read
 * before its session ends (lt_fe_peer_close). Every connection's
 * publishes in flight are counted against a budget (LT_INFLIGHT_* in broker_int.h), so
 * connections that never authenticate cannot fill the ring.
 *
 * ZMQ_FD is edge-triggered: it signals "state changed", not "readable". So every read
 * drains until ZMQ_EVENTS says nothing is pending; a prepare handle re-checks ZMQ_EVENTS
 * each time the loop is about to block (sends from timers or other callbacks may have
 * consumed the edge); and a read pass is bounded (READ_BUDGET messages) so one busy
 * socket cannot starve timers - when the budget runs out, an idle handle brings us back
 * without blocking.
 *
 * Back-pressure: while the ring is full (slots or bytes) nothing is read; ZeroMQ's
 * receive HWM then fills and TCP pushes back on publishers. Nothing is dropped. A publish
 * over its connection's budget is refused BUSY at once instead (no bytes kept).
 *
 * Limits: ZMQ_MAXMSGSIZE is a hard cap well above max_frame_bytes (libzmq disconnects a
 * peer past it, protecting our memory); frames between max_frame_bytes and that cap are
 * read and NACKed TOO_LARGE so the publisher learns why. A frame that does not parse is
 * NACKed MALFORMED when its tag can be read, else dropped and counted.
 *
 * Threads: loop thread only.
 */
#include "broker_int.h"
#include "zap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define READ_BUDGET 2048
#define RCVHWM 20000

/* ---- rate-limited logging of rejections (a flood must not flood the log) ---- */

static int64_t nack_log_window;
static unsigned nack_log_count, nack_log_suppressed;

static bool nack_log_ok(int64_t now_ms)
{
    if (now_ms - nack_log_window >= 1000) {
        if (nack_log_suppressed)
            lt_log(LT_LOG_INFO, "(%u more rejections not logged)", nack_log_suppressed);
        nack_log_window = now_ms;
        nack_log_count = 0;
        nack_log_suppressed = 0;
    }
    if (nack_log_count++ < 20)
        return true;
    nack_log_suppressed++;
    return false;
}

/* ---- peers: one per connection, bound to it ---- */

static size_t peer_hash(const uint8_t *id, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)h;
}

lt_peer *lt_fe_peer_find(lt_broker *b, const uint8_t *id, size_t len)
{
    if (!b->peers)
        return NULL;
    for (lt_peer *p = b->peers[peer_hash(id, len) % b->npeer_buckets]; p; p = p->hnext)
        if (p->id_len == len && memcmp(p->id, id, len) == 0)
            return p;
    return NULL;
}

static lt_peer *peer_new(lt_broker *b, const uint8_t *id, size_t len, int fd)
{
    if (!b->peers) {
        b->npeer_buckets = 1024;
        b->peers = calloc(b->npeer_buckets, sizeof *b->peers);
        if (!b->peers)
            return NULL;
    }
    lt_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id_len = (uint8_t)len;
    memcpy(p->id, id, len);
    p->fd = fd;
    p->conn = ++b->next_conn;
    p->session = p->conn;
    p->last_seen = (int64_t)uv_now(&b->loop);
    size_t h = peer_hash(id, len) % b->npeer_buckets;
    p->hnext = b->peers[h];
    b->peers[h] = p;
    b->npeers++;
    lt_metrics_add_gauge(b->metrics, LT_GAUGE_CONNECTED_CLIENTS, 1);
    return p;
}

void lt_fe_peer_drop(lt_broker *b, lt_peer *p, const char *why)
{
    /* Routing ids are never logged: they would tell an attacker which id to present. */
    if (p->state != LT_PEER_NEW)
        lt_log(LT_LOG_INFO, "connection #%llu (%s) dropped: %s", (unsigned long long)p->conn,
                      p->state == LT_PEER_AUTHED ? p->agency : "not authenticated", why);
    b->fe_hooks.on_session_end(b, p);
    if (p->closed)
        b->nclosed--;
    lt_peer **pp = &b->peers[peer_hash(p->id, p->id_len) % b->npeer_buckets];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    b->npeers--;
    lt_metrics_add_gauge(b->metrics, LT_GAUGE_CONNECTED_CLIENTS, -1);
    free(p);
}

void lt_fe_peer_close(lt_broker *b, lt_peer *p)
{
    if (p->closed)
        return;
    p->closed = true;
    b->nclosed++;
    for (lt_sub *s = p->subs; s; s = s->pnext)
        s->credit = 0;
}

/* Connection fd closed: its peers get no more deliveries (their credit ends), but what the
 * connection sent before it closed (a consumer's last acks) is still taken, until the socket
 * has been read empty (drop_closed). */
static void peers_close_fd(lt_broker *b, int fd)
{
    if (!b->peers || fd < 0)
        return;
    for (size_t i = 0; i < b->npeer_buckets; i++)
        for (lt_peer *p = b->peers[i]; p; p = p->hnext)
            if (p->fd == fd)
                lt_fe_peer_close(b, p);
}

/* The socket was read empty: the frames of every closed connection have been taken. */
static void drop_closed(lt_broker *b)
{
    if (!b->peers)
        return;
    for (size_t i = 0; i < b->npeer_buckets && b->nclosed > 0; i++)
        for (lt_peer *p = b->peers[i], *next; p; p = next) {
            next = p->hnext;
            if (p->closed)
                lt_fe_peer_drop(b, p, "connection closed");
        }
}

/* The ROUTER's monitor. ZMQ_EVENT_DISCONNECTED carries the fd of the connection that closed;
 * libzmq emits it before it closes the fd, so before a new connection can reuse the fd
 * number. ZMQ_EVENT_HANDSHAKE_SUCCEEDED says a new connection is about to be attached; libzmq
 * emits it before any frame of that connection can be read. With ROUTER_HANDOVER off a new
 * connection cannot hold a routing id while frames of the old one wait to be read. So a
 * closed session's own last frames are taken (its last acks) until either the socket was
 * read empty or a new connection completed its handshake - after which a frame under its
 * routing id could be the new connection's - and then the session ends. The broker reads
 * these events before it acts on any session frame. */
void lt_fe_sessions_sync(lt_broker *b)
{
    if (!b->zmon)
        return;
    for (unsigned guard = 0; guard < 100000; guard++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, b->zmon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&addr, b->zmon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&addr);
                break;
            }
            more = zmq_msg_more(&addr);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_DISCONNECTED)
            peers_close_fd(b, (int)value);
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            b->n_curve_refused_protocol++; /* e.g. a plaintext client on a CURVE endpoint */
        else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && b->nclosed > 0)
            drop_closed(b);
    }
}

/* The peer of the connection a frame came over, created if create. A peer found under the
 * frame's routing id but bound to another connection is dropped first: the id was reused
 * by a new connection, which inherits nothing. NULL: not found (or out of memory). */
static lt_peer *conn_peer(lt_broker *b, const zmq_msg_t *id, const zmq_msg_t *body, bool create)
{
    const uint8_t *pid = zmq_msg_data((zmq_msg_t *)id);
    size_t plen = zmq_msg_size((zmq_msg_t *)id);
    int fd = zmq_msg_get(body, ZMQ_SRCFD);
    lt_peer *p = lt_fe_peer_find(b, pid, plen);
    if (p && p->fd != fd) {
        lt_fe_peer_drop(b, p, "its routing id arrived over another connection");
        p = NULL;
    }
    if (!p && create && (p = peer_new(b, pid, plen, fd))) {
        const char *key = zmq_msg_gets((zmq_msg_t *)body, LT_ZAP_KEY_PROPERTY);
        const char *uid = key ? zmq_msg_gets((zmq_msg_t *)body, "User-Id") : NULL;
        if (key && uid && b->fe_hooks.on_curve_conn) { /* CURVE: still accepted? */
            snprintf(p->curve_key, sizeof p->curve_key, "%s", key);
            snprintf(p->zap_user, sizeof p->zap_user, "%s", uid);
            b->fe_hooks.on_curve_conn(b, p);
        }
    }
    if (p)
        p->last_seen = (int64_t)uv_now(&b->loop);
    return p;
}

/* ---- sending ---- */

Lienthong__V1__NackCode lt_fe_nack_code(lt_err e)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
        &lienthong__v1__nack_code__descriptor, lt_err_name(e));
    if (v)
        return (Lienthong__V1__NackCode)v->value;
    switch (e) {
    case LT_ENOMEM:
    case LT_EIO:
        return LIENTHONG__V1__NACK_CODE__STORE_ERROR;
    default:
        return LIENTHONG__V1__NACK_CODE__INVALID;
    }
}

static int send_msg(lt_broker *b, const uint8_t *peer, size_t peer_len, zmq_msg_t *m)
{
    if (zmq_send(b->zsock, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(m);
        b->n_dropped_sends++;
        return e;
    }
    if (zmq_msg_send(m, b->zsock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(m);
        b->n_dropped_sends++;
        return e;
    }
    return 0;
}

int lt_fe_send(lt_broker *b, const uint8_t *peer, size_t peer_len, const Lienthong__V1__Frame *f)
{
    size_t n = lienthong__v1__frame__get_packed_size(f);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, n) != 0)
        return ENOMEM;
    lienthong__v1__frame__pack(f, zmq_msg_data(&m));
    return send_msg(b, peer, peer_len, &m);
}

static void free_owned(void *data, void *base)
{
    (void)data;
    free(base);
}

int lt_fe_send_owned(lt_broker *b, const uint8_t *peer, size_t peer_len, uint8_t *data, size_t n,
                     void *base)
{
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, data, n, free_owned, base) != 0) {
        free(base);
        return ENOMEM;
    }
    return send_msg(b, peer, peer_len, &m);
}

int lt_fe_send_nack(lt_broker *b, const uint8_t *peer, size_t peer_len, uint64_t tag, lt_err code,
                    const char *reason)
{
    Lienthong__V1__Nack n = LIENTHONG__V1__NACK__INIT;
    n.tag = tag;
    n.code = lt_fe_nack_code(code);
    n.reason = (char *)(reason ? reason : "");
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_NACK;
    f.nack = &n;
    return lt_fe_send(b, peer, peer_len, &f);
}

static void send_failed(lt_broker *b, int err, const uint8_t *peer, size_t peer_len,
                        const char *what)
{
    if (err == 0)
        return;
    lt_peer *p = lt_fe_peer_find(b, peer, peer_len);
    if (err == EHOSTUNREACH && p) {
        lt_fe_peer_close(b, p); /* the frames it sent before are still to be read */
        return;
    }
    if (nack_log_ok(lt_env_now_ms()))
        lt_log(LT_LOG_WARN, "could not send %s to connection #%llu: %s", what,
                      p ? (unsigned long long)p->conn : 0ull, zmq_strerror(err));
}

/* ---- the fast path for PUBLISH: find tag and envelope without unpacking (no copy, no
 * allocation). Anything unusual falls back to protobuf_c unpack. ---- */

/* Frame = { 1: Publish { 1: tag (varint), 2: envelope (bytes), 3: deliver_at (varint),
 * 5: hops (strings) } }: tag, envelope and deliver_at at most once, at most LT_FE_FAST_HOPS
 * hops of 1..LT_FE_HOP_MAX bytes without NUL, nothing else. */
bool lt_fe_parse_publish(const uint8_t *p, size_t n, lt_fe_publish *out)
{
    size_t pos = 0;
    uint64_t key, len;
    if (!lt_env_wire_varint(p, n, &pos, &key) || key != ((1u << 3) | 2) ||
        !lt_env_wire_varint(p, n, &pos, &len) || len != n - pos)
        return false;
    bool have_tag = false, have_env = false, have_at = false, have_batched = false;
    out->tag = 0;
    out->deliver_at = 0;
    out->batched_ack = false;
    out->nhops = 0;
    while (pos < n) {
        if (!lt_env_wire_varint(p, n, &pos, &key))
            return false;
        if (key == ((1u << 3) | 0) && !have_tag) {
            if (!lt_env_wire_varint(p, n, &pos, &out->tag))
                return false;
            have_tag = true;
        } else if (key == ((3u << 3) | 0) && !have_at) {
            uint64_t v;
            if (!lt_env_wire_varint(p, n, &pos, &v))
                return false;
            out->deliver_at = (int64_t)v;
            have_at = true;
        } else if (key == ((6u << 3) | 0) && !have_batched) {
            uint64_t v;
            if (!lt_env_wire_varint(p, n, &pos, &v))
                return false;
            out->batched_ack = v != 0;
            have_batched = true;
        } else if (key == ((2u << 3) | 2) && !have_env) {
            if (!lt_env_wire_varint(p, n, &pos, &len) || len > n - pos)
                return false;
            out->env = p + pos;
            out->env_len = (size_t)len;
            pos += (size_t)len;
            have_env = true;
        } else if (key == ((5u << 3) | 2) && out->nhops < LT_FE_FAST_HOPS) {
            if (!lt_env_wire_varint(p, n, &pos, &len) || len > n - pos || len == 0 ||
                len > LT_FE_HOP_MAX || memchr(p + pos, 0, (size_t)len) != NULL)
                return false; /* the general path refuses it with its reason */
            memcpy(out->hop[out->nhops], p + pos, (size_t)len);
            out->hop[out->nhops][len] = '\0';
            out->hops[out->nhops] = out->hop[out->nhops];
            out->nhops++;
            pos += (size_t)len;
        } else {
            return false;
        }
    }
    return have_env;
}

/* Best effort: the tag of a PUBLISH or ADMIN frame whose rest is broken or too large. */
uint64_t lt_fe_peek_tag(const uint8_t *p, size_t n)
{
    size_t pos = 0;
    uint64_t key, len, tag = 0;
    if (!lt_env_wire_varint(p, n, &pos, &key) ||
        (key != ((1u << 3) | 2) && key != ((15u << 3) | 2)))
        return 0;
    if (!lt_env_wire_varint(p, n, &pos, &len))
        return 0;
    size_t end = len < n - pos ? pos + (size_t)len : n;
    if (lt_env_wire_varint(p, end, &pos, &key) && key == ((1u << 3) | 0) &&
        lt_env_wire_varint(p, end, &pos, &tag))
        return tag;
    return 0;
}

/* ---- frame handlers ---- */

static bool slot_for(lt_broker *b, const zmq_msg_t *id, lt_slot **out)
{
    lt_slot *s = lt_ring_slot_next(b);
    if (!s)
        return false; /* cannot happen: we read only while the ring has room */
    s->peer_len = (uint8_t)zmq_msg_size((zmq_msg_t *)id);
    memcpy(s->peer, zmq_msg_data((zmq_msg_t *)id), s->peer_len);
    s->batched_ack = false;
    *out = s;
    return true;
}

static void reject(lt_broker *b, const zmq_msg_t *id, uint64_t tag, lt_err code, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* A publish refused before verification: through the ring too, so every publisher's
 * answers leave in the order its frames came. */
static void reject(lt_broker *b, const zmq_msg_t *id, uint64_t tag, lt_err code, const char *fmt,
                   ...)
{
    lt_slot *s;
    if (!slot_for(b, id, &s))
        return;
    s->kind = LT_SLOT_REJECT;
    s->tag = tag;
    s->err = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why.msg, sizeof s->why.msg, fmt, ap);
    va_end(ap);
    lt_metrics_on_publish(b->metrics, LT_METRICS_AGENCY_UNKNOWN, 0);
    lt_metrics_note_rejection(b->metrics, NULL, NULL, NULL, code, s->why.msg);
    lt_ring_fill_done(b, s);
}

/* Count len bytes against p's in-flight budget (see LT_INFLIGHT_* in broker_int.h). False
 * (with the reason) when the publish must wait: the connection, or every connection that has
 * not authenticated together, already holds its share. */
static bool charge(lt_broker *b, lt_peer *p, size_t len, bool *unauth, char *why, size_t cap)
{
    size_t floor = b->cfg->max_frame_bytes;
    *unauth = p->state != LT_PEER_AUTHED;
    size_t conn_max = *unauth ? LT_INFLIGHT_UNAUTH_CONN : LT_INFLIGHT_AUTH_CONN;
    if (conn_max < floor)
        conn_max = floor;
    size_t all_max = LT_INFLIGHT_UNAUTH_TOTAL < floor ? floor : LT_INFLIGHT_UNAUTH_TOTAL;
    if (p->inflight + len > conn_max) {
        snprintf(why, cap,
                 "connection has %zu bytes of publishes in flight (at most %zu for %s "
                 "connection); retry when its ACKs arrive",
                 p->inflight, conn_max, *unauth ? "an unauthenticated" : "an authenticated");
        return false;
    }
    if (*unauth && b->inflight_unauth + len > all_max) {
        snprintf(why, cap,
                 "unauthenticated connections have %zu bytes in flight (at most %zu together); "
                 "authenticate (HELLO/AUTH) or retry later",
                 b->inflight_unauth, all_max);
        return false;
    }
    p->inflight += len;
    if (*unauth)
        b->inflight_unauth += len;
    return true;
}

/* The ring answered slot s: give its bytes back to its connection's budget (p: the peer of
 * its routing id, or NULL). */
static void uncharge(lt_broker *b, const lt_slot *s, lt_peer *p)
{
    if (s->charged == 0)
        return;
    if (s->charged_unauth)
        b->inflight_unauth -= s->charged;
    if (p && p->conn == s->conn)
        p->inflight -= s->charged;
}

/* ---- the network: Publish.hops and peer sessions (docs/network.md) ---- */

/* The refusal of every HELLO and PUBLISH of a connection whose CURVE key a reload no longer
 * accepts (lt_peer.key_refused), until the broker's close of it takes effect. */
#define KEY_REFUSED                                                                          \
    "this connection's CURVE key is no longer accepted by this broker (its config was "     \
    "reloaded): the connection is being closed"

/* LT_LINK_PEER when session p authenticated as a peer broker (the peers of the ACL in
 * force: the loop is the thread that swaps it), -1 if none; LT_LINK_SELF when it is this
 * broker's own identity (its receive links publish here). */
static int peer_of(const lt_broker *b, const lt_peer *p)
{
    if (p->state != LT_PEER_AUTHED)
        return -1;
    if (b->self_agency[0] != '\0' && strcmp(p->agency, b->self_agency) == 0)
        return LT_LINK_SELF;
    return lt_acl_peer_name(lt_acl_cell_peek(&b->acl), p->agency) ? LT_LINK_PEER : -1;
}

/* The hops of a publish from session p: only a peer broker may give them, never naming
 * this broker, fewer than LT_HOP_LIMIT. LT_OK or the refusal with its reason. */
static lt_err check_hops(const lt_broker *b, const lt_peer *p, char *const *hops, size_t n,
                         char *why, size_t cap)
{
    if (n == 0)
        return LT_OK;
    if (peer_of(b, p) == -1) {
        snprintf(why, cap, "hops are given by peer brokers only; this connection %s",
                 p->state == LT_PEER_AUTHED ? "authenticated as an agency that is not a peer"
                                            : "has not authenticated");
        return LT_ENOT_PEER;
    }
    for (size_t i = 0; i < n; i++) {
        if (!lt_broker_config_hop_name_ok(hops[i])) {
            snprintf(why, cap, "hop %zu is not a broker name (1..64 of A-Z a-z 0-9 _ - .)", i);
            return LT_EPROTO;
        }
        if (strcmp(hops[i], b->cfg->name) == 0) {
            snprintf(why, cap, "the record already passed this broker (%s, hop %zu of %zu)",
                     b->cfg->name, i + 1, n);
            return LT_ELOOP;
        }
    }
    if (n >= LT_HOP_LIMIT) {
        snprintf(why, cap, "the record passed %zu brokers; at most %d may be on its path", n,
                 LT_HOP_LIMIT);
        return LT_EHOP_LIMIT;
    }
    return LT_OK;
}

static void on_publish(lt_broker *b, const zmq_msg_t *id, const zmq_msg_t *body, uint64_t tag,
                       const uint8_t *env, size_t len, int64_t due_ms, char *const *hops,
                       size_t nhops, bool batched_ack)
{
    if (b->phase != LT_PHASE_RUNNING) {
        int e = lt_fe_send_nack(b, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id),
                                tag, LT_ESHUTDOWN, "broker is shutting down");
        lt_metrics_on_nack(b->metrics, LT_METRICS_AGENCY_UNKNOWN, LT_ESHUTDOWN);
        (void)e;
        return;
    }
    if (len == 0) {
        reject(b, id, tag, LT_EPROTO, "PUBLISH without an envelope");
        return;
    }
    lt_peer *p = conn_peer(b, id, body, true);
    if (!p) {
        reject(b, id, tag, LT_ESTORE, "broker out of memory");
        return;
    }
    if (p->key_refused) {
        reject(b, id, tag, LT_ENOAUTH, "%s", KEY_REFUSED);
        return;
    }
    bool unauth;
    char why[LT_WHY_MAX];
    lt_err he = check_hops(b, p, hops, nhops, why, sizeof why);
    if (he != LT_OK) {
        reject(b, id, tag, he, "%s", why);
        return;
    }
    if (!charge(b, p, len, &unauth, why, sizeof why)) {
        reject(b, id, tag, LT_EBUSY, "%s", why);
        return;
    }
    uint8_t hb[LT_STORE_HOPS_BYTES];
    size_t hlen = 0;
    if (nhops > 0 && lt_store_hops_encode((const char *const *)hops, nhops, hb, &hlen) != LT_OK)
        hlen = 0; /* cannot happen: check_hops allowed at most LT_HOP_LIMIT - 1 valid names */
    lt_slot *s;
    if (!slot_for(b, id, &s))
        return;
    s->conn = p->conn;
    s->charged = len;
    s->charged_unauth = unauth;
    if (lt_slot_reserve(s, len + hlen) != LT_OK) {
        s->kind = LT_SLOT_REJECT;
        s->tag = tag;
        s->err = LT_ESTORE;
        snprintf(s->why.msg, sizeof s->why.msg, "broker out of memory");
        lt_ring_fill_done(b, s);
        return;
    }
    s->kind = LT_SLOT_PUBLISH;
    s->tag = tag;
    s->batched_ack = batched_ack;
    s->due_ms = due_ms > 0 ? due_ms : 0;
    s->relay_peer = peer_of(b, p);
    if (s->relay_peer == LT_LINK_PEER)
        memcpy(s->relay_agency, p->agency, sizeof s->relay_agency);
    memcpy(s->buf, env, len);
    memcpy(s->buf + len, hb, hlen); /* the store keeps them with the message */
    s->hops_len = hlen;
    s->len = len;
    lt_ring_fill_done(b, s);
}

/* HELLO starts a new session epoch: whatever the connection proved before no longer
 * counts (its subscriptions end) until the AUTH of this epoch is verified. Refused while an
 * AUTH is being checked, so the answer to that AUTH applies to the session it was sent in. */
static void on_hello(lt_broker *b, const zmq_msg_t *id, const zmq_msg_t *body,
                     const Lienthong__V1__Hello *h)
{
    const uint8_t *pid = zmq_msg_data((zmq_msg_t *)id);
    size_t plen = zmq_msg_size((zmq_msg_t *)id);
    char agency[LT_AGENCY_ID_MAX];
    lt_why why = {{0}};
    if (lt_agency_normalize(h->agency ? h->agency : "", agency, &why) != LT_OK) {
        send_failed(b, lt_fe_send_nack(b, pid, plen, 0, LT_EAGENCY_ID, why.msg), pid, plen, "NACK");
        return;
    }
    lt_fe_sessions_sync(b);
    lt_peer *p = conn_peer(b, id, body, true);
    if (!p) {
        lt_fe_send_nack(b, pid, plen, 0, LT_ESTORE, "broker out of memory");
        return;
    }
    if (p->key_refused) {
        send_failed(b, lt_fe_send_nack(b, pid, plen, 0, LT_ENOAUTH, KEY_REFUSED), pid, plen,
                    "NACK");
        return;
    }
    if (p->state == LT_PEER_AUTHING) {
        send_failed(b,
                    lt_fe_send_nack(b, pid, plen, 0, LT_EAUTH_PENDING,
                                    "HELLO while this connection's AUTH is being checked: wait "
                                    "for its WELCOME or NACK"),
                    pid, plen, "NACK");
        return;
    }
    b->fe_hooks.on_session_end(b, p);
    p->session = ++b->next_conn;
    p->state = LT_PEER_NEW;
    p->agency[0] = '\0';
    if (lt_pki_random(p->nonce, sizeof p->nonce, &why) != LT_OK) {
        lt_fe_send_nack(b, pid, plen, 0, LT_ECRYPTO, why.msg);
        return;
    }
    snprintf(p->agency, sizeof p->agency, "%s", agency);
    p->state = LT_PEER_CHALLENGED;
    Lienthong__V1__Challenge c = LIENTHONG__V1__CHALLENGE__INIT;
    c.nonce.data = p->nonce;
    c.nonce.len = sizeof p->nonce;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_CHALLENGE;
    f.challenge = &c;
    send_failed(b, lt_fe_send(b, pid, plen, &f), pid, plen, "CHALLENGE");
}

static void on_auth(lt_broker *b, const zmq_msg_t *id, const zmq_msg_t *body,
                    const Lienthong__V1__Auth *a)
{
    const uint8_t *pid = zmq_msg_data((zmq_msg_t *)id);
    size_t plen = zmq_msg_size((zmq_msg_t *)id);
    lt_fe_sessions_sync(b);
    lt_peer *p = conn_peer(b, id, body, false);
    if (p && p->state == LT_PEER_AUTHING) {
        lt_fe_send_nack(b, pid, plen, 0, LT_EAUTH_PENDING,
                        "AUTH while this connection's AUTH is being checked: one at a time");
        return;
    }
    if (!p || p->state != LT_PEER_CHALLENGED) {
        lt_fe_send_nack(b, pid, plen, 0, LT_ENOAUTH,
                        p && p->state == LT_PEER_AUTHED
                            ? "AUTH without a new HELLO (each AUTH answers one CHALLENGE)"
                            : "AUTH without a HELLO first");
        return;
    }
    if (b->phase != LT_PHASE_RUNNING) {
        lt_fe_send_nack(b, pid, plen, 0, LT_ESHUTDOWN, "broker is shutting down");
        return;
    }
    if (a->certificate.len == 0 || a->certificate.len > LT_PKI_CERT_MAX || a->signature.len == 0 ||
        a->signature.len > LT_PKI_SIG_MAX) {
        p->state = LT_PEER_NEW;
        lt_fe_send_nack(b, pid, plen, 0, LT_EPROTO,
                        "AUTH needs a certificate (at most 16384 bytes) and a signature");
        return;
    }
    lt_slot *s;
    if (!slot_for(b, id, &s))
        return;
    size_t len = LT_NONCE_LEN + a->certificate.len + a->signature.len;
    if (lt_slot_reserve(s, len) != LT_OK) {
        lt_fe_send_nack(b, pid, plen, 0, LT_ESTORE, "broker out of memory");
        return;
    }
    s->kind = LT_SLOT_AUTH;
    s->tag = 0;
    memcpy(s->buf, p->nonce, LT_NONCE_LEN);
    memcpy(s->buf + LT_NONCE_LEN, a->certificate.data, a->certificate.len);
    memcpy(s->buf + LT_NONCE_LEN + a->certificate.len, a->signature.data, a->signature.len);
    s->len = len;
    s->cert_len = a->certificate.len;
    s->sig_len = a->signature.len;
    snprintf(s->agency, sizeof s->agency, "%s", p->agency);
    const char *uid = zmq_msg_gets((zmq_msg_t *)body, "User-Id"); /* CURVE: the key's agency */
    snprintf(s->zap_user, sizeof s->zap_user, "%s", uid ? uid : "");
    s->conn = p->conn;
    s->session = p->session;
    p->state = LT_PEER_AUTHING;
    lt_ring_fill_done(b, s);
}

/* The peer behind id if it proved its agency; else answer NOT_AUTHENTICATED. */
static lt_peer *authed(lt_broker *b, const zmq_msg_t *id, const zmq_msg_t *body,
                       const char *what)
{
    const uint8_t *pid = zmq_msg_data((zmq_msg_t *)id);
    size_t plen = zmq_msg_size((zmq_msg_t *)id);
    lt_fe_sessions_sync(b);
    lt_peer *p = conn_peer(b, id, body, false);
    /* a closed connection's last frames may settle deliveries, never ask for more */
    bool settles = strcmp(what, "CONSUMER_ACK") == 0 || strcmp(what, "CONSUMER_NAK") == 0;
    if (p && p->state == LT_PEER_AUTHED && (!p->closed || settles))
        return p;
    if (p && p->closed)
        return NULL; /* e.g. a CREDIT after its last NAK: no one is left to read an answer */
    char reason[128];
    snprintf(reason, sizeof reason, "%s needs HELLO and AUTH first", what);
    send_failed(b, lt_fe_send_nack(b, pid, plen, 0, LT_ENOAUTH, reason), pid, plen, "NACK");
    return NULL;
}

static void on_admin_unauth(lt_broker *b, const zmq_msg_t *id, const Lienthong__V1__AdminRequest *m)
{
    Lienthong__V1__AdminReply r = LIENTHONG__V1__ADMIN_REPLY__INIT;
    r.tag = m->tag;
    r.code = lt_fe_nack_code(LT_ENOAUTH);
    r.reason = "admin requests need HELLO and AUTH first";
    r.json = "";
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ADMIN_REPLY;
    f.admin_reply = &r;
    lt_fe_send(b, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id), &f);
}

static void malformed(lt_broker *b, const zmq_msg_t *id, const uint8_t *data, size_t n,
                      const char *what)
{
    b->n_malformed++;
    uint64_t tag = lt_fe_peek_tag(data, n);
    const uint8_t *pid = zmq_msg_data((zmq_msg_t *)id);
    size_t plen = zmq_msg_size((zmq_msg_t *)id);
    if (nack_log_ok(lt_env_now_ms())) {
        lt_peer *p = lt_fe_peer_find(b, pid, plen);
        lt_log(LT_LOG_INFO, "malformed frame from connection #%llu (%zu bytes, tag %llu): %s",
                      p ? (unsigned long long)p->conn : 0ull, n, (unsigned long long)tag, what);
    }
    if (tag != 0 && data[0] == ((1u << 3) | 2) && b->phase == LT_PHASE_RUNNING) {
        reject(b, id, tag, LT_EPROTO, "%s", what);
        return;
    }
    lt_metrics_on_publish(b->metrics, LT_METRICS_AGENCY_UNKNOWN, 0);
    lt_metrics_on_nack(b->metrics, LT_METRICS_AGENCY_UNKNOWN, LT_EPROTO);
    if (tag != 0)
        send_failed(b, lt_fe_send_nack(b, pid, plen, tag, LT_EPROTO, what), pid, plen, "NACK");
}

static void handle(lt_broker *b, const zmq_msg_t *id, zmq_msg_t *body)
{
    const uint8_t *data = zmq_msg_data(body);
    size_t n = zmq_msg_size(body);

    if (n > b->cfg->max_frame_bytes) {
        b->n_too_large++;
        uint64_t t = lt_fe_peek_tag(data, n);
        if (t != 0 && data[0] == ((1u << 3) | 2) && b->phase == LT_PHASE_RUNNING) {
            reject(b, id, t, LT_ETOOBIG, "frame of %zu bytes is over max_frame_bytes (%u)", n,
                   b->cfg->max_frame_bytes);
        } else {
            char reason[128];
            snprintf(reason, sizeof reason, "frame of %zu bytes is over max_frame_bytes (%u)", n,
                     b->cfg->max_frame_bytes);
            lt_fe_send_nack(b, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id), t,
                            LT_ETOOBIG, reason);
            lt_metrics_on_nack(b->metrics, LT_METRICS_AGENCY_UNKNOWN, LT_ETOOBIG);
        }
        return;
    }
    if (n == 0) {
        malformed(b, id, data, n, "empty frame");
        return;
    }
    lt_fe_publish fp;
    if (lt_fe_parse_publish(data, n, &fp)) {
        on_publish(b, id, body, fp.tag, fp.env, fp.env_len, fp.deliver_at, fp.hops, fp.nhops,
                   fp.batched_ack);
        return;
    }
    Lienthong__V1__Frame *f = lienthong__v1__frame__unpack(NULL, n, data);
    if (!f) {
        malformed(b, id, data, n, "not a lienthong.v1.Frame");
        return;
    }
    lt_peer *p;
    switch (f->kind_case) {
    case LIENTHONG__V1__FRAME__KIND_PUBLISH:
        on_publish(b, id, body, f->publish->tag, f->publish->envelope.data,
                   f->publish->envelope.len, f->publish->deliver_at_unix_ms, f->publish->hops,
                   f->publish->n_hops, f->publish->batched_ack != 0);
        break;
    case LIENTHONG__V1__FRAME__KIND_CANCEL:
        if ((p = authed(b, id, body, "CANCEL")))
            b->fe_hooks.on_cancel(b, p, f);
        break;
    case LIENTHONG__V1__FRAME__KIND_HELLO:
        on_hello(b, id, body, f->hello);
        break;
    case LIENTHONG__V1__FRAME__KIND_AUTH:
        on_auth(b, id, body, f->auth);
        break;
    case LIENTHONG__V1__FRAME__KIND_SUBSCRIBE:
        if ((p = authed(b, id, body, "SUBSCRIBE")))
            b->fe_hooks.on_frame(b, p, f);
        break;
    case LIENTHONG__V1__FRAME__KIND_CONSUMER_ACK:
        if ((p = authed(b, id, body, "CONSUMER_ACK")))
            b->fe_hooks.on_frame(b, p, f);
        break;
    case LIENTHONG__V1__FRAME__KIND_CONSUMER_NAK:
        if ((p = authed(b, id, body, "CONSUMER_NAK")))
            b->fe_hooks.on_frame(b, p, f);
        break;
    case LIENTHONG__V1__FRAME__KIND_CREDIT:
        if ((p = authed(b, id, body, "CREDIT")))
            b->fe_hooks.on_frame(b, p, f);
        break;
    case LIENTHONG__V1__FRAME__KIND_ADMIN: {
        lt_fe_sessions_sync(b);
        lt_peer *ap = conn_peer(b, id, body, false);
        if (ap && ap->state == LT_PEER_AUTHED && !ap->closed) {
            b->fe_hooks.on_frame(b, ap, f);
        } else {
            on_admin_unauth(b, id, f->admin);
        }
        break;
    }
    case LIENTHONG__V1__FRAME__KIND_PING: {
        conn_peer(b, id, body, false); /* seen */
        Lienthong__V1__Pong po = LIENTHONG__V1__PONG__INIT;
        po.nonce = f->ping->nonce;
        Lienthong__V1__Frame r = LIENTHONG__V1__FRAME__INIT;
        r.kind_case = LIENTHONG__V1__FRAME__KIND_PONG;
        r.pong = &po;
        lt_fe_send(b, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id), &r);
        break;
    }
    case LIENTHONG__V1__FRAME__KIND_PONG:
        conn_peer(b, id, body, false); /* seen */
        break;
    case LIENTHONG__V1__FRAME__KIND__NOT_SET:
        malformed(b, id, data, n, "frame with no kind set");
        break;
    default: {
        /* ack, nack, challenge, welcome, deliver, admin_reply, acks, delivers: named by the
         * schema, so the log says which kind a confused client sent */
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(
            &lienthong__v1__frame__descriptor, (unsigned)f->kind_case);
        char what[96];
        snprintf(what, sizeof what, "frame kind %d (%s) is broker-to-client only",
                 (int)f->kind_case, fd ? fd->name : "?");
        malformed(b, id, data, n, what);
        break;
    }
    }
    lienthong__v1__frame__free_unpacked(f, NULL);
}

/* ---- reading ---- */

static bool has_input(lt_broker *b)
{
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(b->zsock, ZMQ_EVENTS, &ev, &sz) != 0)
        return false;
    return (ev & ZMQ_POLLIN) != 0;
}

static void idle_set(lt_broker *b, bool on);

/* Read until the socket is empty, the budget is spent or the ring is full. */
static void drain(lt_broker *b)
{
    if (!b->zsock)
        return;
    b->t_batch_ns = uv_hrtime();
    unsigned budget = READ_BUDGET;
    bool more = true;
    while (budget > 0) {
        if (b->phase == LT_PHASE_RUNNING && !lt_ring_has_room(b)) {
            b->paused = true;
            more = false;
            break;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, b->zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            more = false;
            break;
        }
        budget--;
        if (!zmq_msg_more(&id)) { /* a ROUTER always prefixes the routing id */
            zmq_msg_close(&id);
            b->n_malformed++;
            continue;
        }
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, b->zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&body);
            zmq_msg_close(&id);
            continue;
        }
        if (zmq_msg_more(&body)) {
            /* one frame per message is the protocol: drop the rest, answer the first
             * (multipart messages arrive whole, so the rest is already here) */
            for (unsigned guard = 0; guard < 1000000; guard++) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                if (zmq_msg_recv(&extra, b->zsock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&extra);
                    break;
                }
                bool again = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                if (!again)
                    break;
            }
            malformed(b, &id, zmq_msg_data(&body), zmq_msg_size(&body),
                      "multipart message (one frame per message)");
        } else {
            handle(b, &id, &body);
        }
        zmq_msg_close(&body);
        zmq_msg_close(&id);
    }
    lt_ring_publish(b);
    if (more && budget == 0)
        idle_set(b, true); /* come back without blocking */
    else
        idle_set(b, false);
    if (b->nclosed > 0 && !more && !b->paused)
        drop_closed(b); /* read empty: closed connections sent all they will */
}

static void on_idle(uv_idle_t *h)
{
    lt_broker *b = h->data;
    if (!b->paused)
        drain(b);
    else
        idle_set(b, false);
}

static void idle_set(lt_broker *b, bool on)
{
    if (on == b->zidle_on)
        return;
    b->zidle_on = on;
    if (on)
        uv_idle_start(&b->zidle, on_idle);
    else
        uv_idle_stop(&b->zidle);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    lt_broker *b = h->data;
    if (!b->paused)
        drain(b);
}

static void on_monitor(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    lt_fe_sessions_sync(h->data);
}

/* Before the loop blocks: anything pending that the edge-triggered fd will not tell? */
static void on_prepare(uv_prepare_t *h)
{
    lt_broker *b = h->data;
    lt_fe_sessions_sync(b); /* the monitor's fd is edge-triggered too */
    if (b->nclosed > 0 && b->zsock && !b->paused && !has_input(b))
        drop_closed(b);
    if (b->zsock && !b->paused && has_input(b))
        drain(b);
}

void lt_fe_drain_mode(lt_broker *b)
{
    /* publishes are now refused without a ring slot: read whatever is queued */
    b->paused = false;
    idle_set(b, true);
}

void lt_fe_resume(lt_broker *b)
{
    if (!b->paused || !lt_ring_has_room(b))
        return;
    b->paused = false;
    idle_set(b, true);
}

/* ---- outcomes of the ring ---- */

/* ---- Acks frames: the ACKs of one lt_fe_on_done pass for publishes that set
 * Publish.batched_ack, one frame per connection, sent at the end of the pass
 * (docs/protocol.md §6.1). A group is a routing id with its connection number, not a peer
 * pointer: a failed send may drop a peer during the pass. ---- */

#define ACKS_GROUPS 16   /* sessions batched in one pass; the others get single ACK frames */
#define ACKS_FRAME 2048u /* ACKs in one Acks frame at most (about 30 KiB) */

typedef struct ack_group {
    uint8_t id_len;
    uint8_t id[LT_PEER_ID_MAX];
    uint64_t conn;
    size_t n;
} ack_group;

typedef struct ack_pass {
    size_t n, cap;
    Lienthong__V1__Ack *acks; /* in slot order; group[g] of acks[i] in gi[i] */
    uint8_t *gi;
    ack_group group[ACKS_GROUPS];
    size_t ngroups;
} ack_pass;

/* Take the ACK of slot s into the pass: false when it goes out alone (no pass, a publish
 * without Publish.batched_ack, too many connections in this pass). */
static bool acks_add(ack_pass *ap, const lt_slot *s)
{
    if (!ap || !s->batched_ack || s->conn == 0 || ap->n == ap->cap)
        return false;
    size_t g = 0;
    while (g < ap->ngroups && ap->group[g].conn != s->conn)
        g++;
    if (g == ap->ngroups) {
        if (g == ACKS_GROUPS)
            return false;
        ack_group *ng = &ap->group[ap->ngroups++];
        ng->id_len = s->peer_len;
        memcpy(ng->id, s->peer, s->peer_len);
        ng->conn = s->conn;
        ng->n = 0;
    }
    Lienthong__V1__Ack *a = &ap->acks[ap->n];
    *a = (Lienthong__V1__Ack)LIENTHONG__V1__ACK__INIT;
    a->tag = s->tag;
    a->seq = s->seq;
    a->duplicate = s->dup;
    ap->gi[ap->n++] = (uint8_t)g;
    ap->group[g].n++;
    return true;
}

/* Send each group's ACKs, in slot order, ACKS_FRAME to a frame. */
static void acks_flush(lt_broker *b, ack_pass *ap)
{
    Lienthong__V1__Ack *ptr[ACKS_FRAME];
    for (size_t g = 0; g < ap->ngroups; g++) {
        ack_group *gr = &ap->group[g];
        size_t i = 0;
        while (i < ap->n) {
            size_t k = 0;
            for (; i < ap->n && k < ACKS_FRAME; i++)
                if (ap->gi[i] == g)
                    ptr[k++] = &ap->acks[i];
            if (k == 0)
                break;
            Lienthong__V1__Acks m = LIENTHONG__V1__ACKS__INIT;
            m.n_acks = k;
            m.acks = ptr;
            Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
            f.kind_case = LIENTHONG__V1__FRAME__KIND_ACKS;
            f.acks = &m;
            send_failed(b, lt_fe_send(b, gr->id, gr->id_len, &f), gr->id, gr->id_len, "ACKS");
        }
    }
    ap->n = 0;
    ap->ngroups = 0;
}

static void answer(lt_broker *b, lt_slot *s, lt_peer *p, ack_pass *acks)
{
    int e = 0;
    if (s->kind == LT_SLOT_AUTH) {
        /* The answer applies to the session the AUTH was sent in and to nothing else: the
         * same connection (conn), the same HELLO epoch (session), still waiting for it. */
        lt_fe_sessions_sync(b); /* may drop peers: find it again */
        p = lt_fe_peer_find(b, s->peer, s->peer_len);
        if (!p || p->conn != s->conn || p->session != s->session || p->state != LT_PEER_AUTHING)
            return; /* its connection is gone */
        if (s->err != LT_OK) {
            p->state = LT_PEER_NEW;
            p->agency[0] = '\0';
            lt_log(LT_LOG_WARN, "auth refused for connection #%llu claiming %s: %s: %s",
                          (unsigned long long)p->conn, s->agency, lt_err_name(s->err), s->why.msg);
            e = lt_fe_send_nack(b, s->peer, s->peer_len, 0, s->err, s->why.msg);
        } else {
            /* s->agency is what the verifier proved: the certificate's agency, equal to
             * the one claimed in this epoch's HELLO */
            snprintf(p->agency, sizeof p->agency, "%s", s->agency);
            p->state = LT_PEER_AUTHED;
            lt_log(LT_LOG_INFO, "connection #%llu authenticated as %s",
                          (unsigned long long)p->conn, p->agency);
            Lienthong__V1__Welcome w = LIENTHONG__V1__WELCOME__INIT;
            char bname[300];
            snprintf(bname, sizeof bname, "%s lienthongd/%s", b->cfg->name, LT_VERSION);
            w.agency = p->agency;
            w.broker = bname;
            Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
            f.kind_case = LIENTHONG__V1__FRAME__KIND_WELCOME;
            f.welcome = &w;
            e = lt_fe_send(b, s->peer, s->peer_len, &f);
        }
        send_failed(b, e, s->peer, s->peer_len, "AUTH answer");
        return;
    }
    if (s->err == LT_OK) {
        if (!acks_add(acks, s)) {
            Lienthong__V1__Ack a = LIENTHONG__V1__ACK__INIT;
            a.tag = s->tag;
            a.seq = s->seq;
            a.duplicate = s->dup;
            Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
            f.kind_case = LIENTHONG__V1__FRAME__KIND_ACK;
            f.ack = &a;
            e = lt_fe_send(b, s->peer, s->peer_len, &f);
        }
        lt_metrics_on_ack(b->metrics, s->agency_slot, s->dup);
        lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_PUBLISH_ACK),
                           (double)(uv_hrtime() - s->t_in_ns) / 1e9);
        if (!s->dup)
            b->fe_hooks.on_stored(b, s->qids, s->nq, s->due_ms);
    } else {
        e = lt_fe_send_nack(b, s->peer, s->peer_len, s->tag, s->err, s->why.msg);
        lt_metrics_on_nack(b->metrics, s->agency_slot, s->err);
        if (nack_log_ok(lt_env_now_ms()))
            lt_log(LT_LOG_INFO, "publish tag %llu refused: %s: %s",
                          (unsigned long long)s->tag, lt_err_name(s->err), s->why.msg);
    }
    send_failed(b, e, s->peer, s->peer_len, s->err == LT_OK ? "ACK" : "NACK");
}

void lt_fe_on_done(lt_broker *b)
{
    lt_ring *r = &b->ring;
    pthread_mutex_lock(&r->mu);
    uint64_t done = r->done;
    pthread_mutex_unlock(&r->mu);

    /* the pass's ACKs for sessions that take Acks frames (none if out of memory: then
     * every ACK goes alone, as to any other session) */
    size_t n = (size_t)(done - r->tail);
    ack_pass ap = {.cap = n};
    ap.acks = n ? malloc(n * sizeof *ap.acks) : NULL;
    ap.gi = n ? malloc(n) : NULL;
    ack_pass *acks = ap.acks && ap.gi ? &ap : NULL;
    for (; r->tail < done; r->tail++) {
        lt_slot *s = &r->slots[r->tail & r->mask];
        lt_peer *p = lt_fe_peer_find(b, s->peer, s->peer_len);
        uncharge(b, s, p);
        answer(b, s, p, acks);
        r->bytes -= s->len;
        if (s->cap > LT_SLOT_KEEP) {
            free(s->buf);
            s->buf = NULL;
            s->cap = 0;
        }
        s->len = 0;
        s->verified = false;
    }
    if (acks)
        acks_flush(b, acks);
    free(ap.acks);
    free(ap.gi);
    lt_fe_resume(b);
}

void lt_fe_heartbeat(lt_broker *b)
{
    if (!b->peers)
        return;
    int64_t now = (int64_t)uv_now(&b->loop);
    for (size_t i = 0; i < b->npeer_buckets; i++) {
        lt_peer *p = b->peers[i];
        while (p) {
            lt_peer *next = p->hnext;
            /* Connections that only publish are not probed (a client need not expect a
             * PING before its HELLO); the monitor reports their close. */
            if (p->state != LT_PEER_NEW && !p->closed &&
                now - p->last_seen >= (int64_t)b->heartbeat_ms) {
                /* A probe: with ROUTER_MANDATORY, a routing id whose connection libzmq
                 * closed (ZMTP heartbeat timeout, TCP reset) fails with EHOSTUNREACH. */
                Lienthong__V1__Ping pi = LIENTHONG__V1__PING__INIT;
                pi.nonce = (uint64_t)now;
                Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
                f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
                f.ping = &pi;
                int e = lt_fe_send(b, p->id, p->id_len, &f);
                if (e == EHOSTUNREACH)
                    lt_fe_peer_close(b, p); /* dropped once its last frames are read */
            }
            p = next;
        }
    }
}

/* ---- setup ---- */

static int setopt_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

lt_err lt_fe_open(lt_broker *b, lt_why *why)
{
    b->zctx = zmq_ctx_new();
    if (!b->zctx)
        return lt_fail(why, LT_EIO, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    b->zsock = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (!b->zsock)
        return lt_fail(why, LT_EIO, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    /* The hard cap (libzmq disconnects past it) sits well above max_frame_bytes so that
     * what a client library sends by default (frames up to 16 MiB) is read and NACKed
     * TOO_LARGE, not cut off. */
    int64_t maxmsg = (int64_t)b->cfg->max_frame_bytes * 2;
    if (maxmsg < (int64_t)b->cfg->max_frame_bytes + (16 << 20))
        maxmsg = (int64_t)b->cfg->max_frame_bytes + (16 << 20);
    int hb = (int)b->heartbeat_ms;
    size_t sz;
    /* No ROUTER_HANDOVER: a second connection presenting a routing id that a live
     * connection holds is refused by libzmq instead of taking the id over. */
    if (setopt_int(b->zsock, ZMQ_ROUTER_MANDATORY, 1) != 0 ||
        setopt_int(b->zsock, ZMQ_ROUTER_HANDOVER, 0) != 0 ||
        setopt_int(b->zsock, ZMQ_SNDHWM, (int)b->cfg->send_hwm) != 0 ||
        setopt_int(b->zsock, ZMQ_RCVHWM, RCVHWM) != 0 ||
        setopt_int(b->zsock, ZMQ_LINGER, 1000) != 0 ||
        setopt_int(b->zsock, ZMQ_HEARTBEAT_IVL, hb) != 0 ||
        setopt_int(b->zsock, ZMQ_HEARTBEAT_TIMEOUT, 3 * hb) != 0 ||
        setopt_int(b->zsock, ZMQ_HEARTBEAT_TTL, 3 * hb) != 0 ||
        zmq_setsockopt(b->zsock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0)
        return lt_fail(why, LT_EIO, "ZeroMQ socket options: %s", zmq_strerror(zmq_errno()));
    /* Connection events, so that a session ends with its connection (see conn_peer). */
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://lt-fe-monitor-%p", (void *)b);
    if (zmq_socket_monitor(b->zsock, mon,
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(b->zmon = zmq_socket(b->zctx, ZMQ_PAIR)) || setopt_int(b->zmon, ZMQ_RCVHWM, 0) != 0 ||
        zmq_connect(b->zmon, mon) != 0)
        return lt_fail(why, LT_EIO, "ZeroMQ socket monitor: %s", zmq_strerror(zmq_errno()));
    sz = sizeof b->zmon_fd;
    if (zmq_getsockopt(b->zmon, ZMQ_FD, &b->zmon_fd, &sz) != 0)
        return lt_fail(why, LT_EIO, "ZMQ_FD of the monitor: %s", zmq_strerror(zmq_errno()));
    if (zmq_bind(b->zsock, b->cfg->listen) != 0)
        return lt_fail(why, LT_EIO, "%s: broker.listen: cannot listen on %s: %s",
                       b->cfg->file ? b->cfg->file : "config", b->cfg->listen,
                       zmq_strerror(zmq_errno()));
    sz = sizeof b->endpoint;
    if (zmq_getsockopt(b->zsock, ZMQ_LAST_ENDPOINT, b->endpoint, &sz) != 0)
        snprintf(b->endpoint, sizeof b->endpoint, "%s", b->cfg->listen);
    sz = sizeof b->zfd;
    if (zmq_getsockopt(b->zsock, ZMQ_FD, &b->zfd, &sz) != 0)
        return lt_fail(why, LT_EIO, "ZMQ_FD: %s", zmq_strerror(zmq_errno()));
    return LT_OK;
}

lt_err lt_fe_bind_curve(lt_broker *b, lt_why *why)
{
    /* libzmq takes the security options when an endpoint is bound: broker.listen (bound
     * before) stays plaintext, this one is CURVE only */
    if (setopt_int(b->zsock, ZMQ_CURVE_SERVER, 1) != 0 ||
        zmq_setsockopt(b->zsock, ZMQ_CURVE_SECRETKEY, b->curve_secret, 41) != 0 ||
        zmq_setsockopt(b->zsock, ZMQ_ZAP_DOMAIN, LT_ZAP_DOMAIN, strlen(LT_ZAP_DOMAIN)) != 0)
        return lt_fail(why, LT_EIO, "CURVE options: %s", zmq_strerror(zmq_errno()));
    int rc = zmq_bind(b->zsock, b->cfg->curve_listen);
    int err = zmq_errno();
    setopt_int(b->zsock, ZMQ_CURVE_SERVER, 0);
    if (rc != 0)
        return lt_fail(why, LT_EIO, "%s: broker.curve.listen: cannot listen on %s: %s",
                       b->cfg->file ? b->cfg->file : "config", b->cfg->curve_listen,
                       zmq_strerror(err));
    return LT_OK;
}

lt_err lt_fe_start(lt_broker *b, lt_why *why)
{
    b->zpoll.data = b->zprep.data = b->zidle.data = b->zmonpoll.data = b;
    if (uv_poll_init_socket(&b->loop, &b->zpoll, b->zfd) != 0 ||
        uv_poll_init_socket(&b->loop, &b->zmonpoll, b->zmon_fd) != 0 ||
        uv_prepare_init(&b->loop, &b->zprep) != 0 || uv_idle_init(&b->loop, &b->zidle) != 0)
        return lt_fail(why, LT_EIO, "cannot watch the ZeroMQ socket");
    uv_poll_start(&b->zpoll, UV_READABLE, on_poll);
    uv_poll_start(&b->zmonpoll, UV_READABLE, on_monitor);
    uv_prepare_start(&b->zprep, on_prepare);
    idle_set(b, true); /* first pass: anything already queued */
    return LT_OK;
}

void lt_fe_close(lt_broker *b)
{
    if (uv_is_active((uv_handle_t *)&b->zpoll) || b->zpoll.data) {
        if (!uv_is_closing((uv_handle_t *)&b->zpoll))
            uv_close((uv_handle_t *)&b->zpoll, NULL);
        if (!uv_is_closing((uv_handle_t *)&b->zprep))
            uv_close((uv_handle_t *)&b->zprep, NULL);
        if (!uv_is_closing((uv_handle_t *)&b->zidle))
            uv_close((uv_handle_t *)&b->zidle, NULL);
        if (b->zmonpoll.data && !uv_is_closing((uv_handle_t *)&b->zmonpoll))
            uv_close((uv_handle_t *)&b->zmonpoll, NULL);
    }
    if (b->peers) {
        for (size_t i = 0; i < b->npeer_buckets; i++) {
            while (b->peers[i]) {
                lt_peer *p = b->peers[i];
                b->peers[i] = p->hnext;
                free(p);
            }
        }
        free(b->peers);
        b->peers = NULL;
    }
    if (b->zmon) {
        zmq_close(b->zmon);
        b->zmon = NULL;
    }
    if (b->zsock) {
        zmq_socket_monitor(b->zsock, NULL, 0);
        zmq_close(b->zsock);
        b->zsock = NULL;
    }
    if (b->zctx) {
        zmq_ctx_term(b->zctx);
        b->zctx = NULL;
    }
}
