/*
 * link.c - links between brokers: one thread per link, a client of two brokers. The
 * contract, the outcomes and the order guarantee are in link.h.
 *
 * A link thread's life: open the signer; then, until stopped: connect and authenticate the
 * destination, then the source, subscribe at the source with the link's credit; move
 * records; when either end cannot be reached, close both, wait (back-off doubling from
 * 100 ms to retry_max_ms) and start again. lib/client.h reconnects a dropped connection by
 * itself (and authenticates and subscribes again): a link only starts over when that fails.
 *
 * Pending records (struct pend) form a list in delivery order. Each is WAITING (to send),
 * SENT (publish in flight at the destination, its callback will settle it) or DONE (to
 * free). The source may deliver a record again (ack_wait passed, or after a reconnect): a
 * delivery whose seq is already pending only refreshes that entry.
 *
 * Threads: struct link fields are the link thread's, except `stop` (atomic) and `st`
 * (under mu), which the loop thread reads.
 */
#include "link.h"

#include "client.h"
#include "log.h"
#include "pki.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MIN_MS 100
#define ACK_TIMEOUT_MS 10000
#define REQUEST_TIMEOUT_MS 5000
#define MAX_HOPS 16 /* what we carry along; the destination enforces its hop limit */

enum pend_state { P_WAITING, P_SENT, P_DONE };

struct pend {
    struct pend *next;
    struct link *l;
    uint64_t seq;
    uint8_t *env;
    size_t len;
    char *hops[MAX_HOPS + 1];
    size_t nhops;
    int state;
    unsigned extra; /* deliveries of the same seq after the first: each holds a credit */
    int64_t t_in;   /* monotonic ms when first delivered */
};

/* What a link runs with, copied from the config, so that a SIGHUP can replace the config
 * while unchanged links keep running. */
struct link_conf {
    lt_bcfg_link link;    /* name, peer, endpoint, queue: strdup'ed */
    lt_bcfg_peer peer;    /* name, curve_key (agency and relay unused) */
    char self_name[72];   /* this broker's name */
    char *key_path, *cert_path; /* broker.identity */
};

struct link {
    struct link_conf conf;
    const lt_bcfg_link *cfg;  /* &conf.link */
    const lt_bcfg_peer *peer; /* &conf.peer */
    char self_ep[256];
    const char *src_name, *dst_name; /* broker names at each end */
    char curve_pub[41], curve_sec[41]; /* this broker's CURVE key pair, "" without */
    pthread_t th;
    bool started;
    atomic_bool stop;

    /* link thread */
    lt_signer *signer;
    lt_client *src, *dst;
    struct pend *head, *tail;
    size_t npend;
    int64_t hold_until; /* monotonic ms: no sends before (after a transient failure) */
    unsigned backoff_ms;

    pthread_mutex_t mu;
    lt_link_status st; /* under mu */
};

struct lt_links {
    struct link **v; /* each its own allocation: a reload adds and removes them */
    size_t n;
    char self_ep[256];
    char curve_pub[41], curve_sec[41];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- status (copied out under mu) ---- */

static void set_state(struct link *l, const char *state)
{
    pthread_mutex_lock(&l->mu);
    l->st.state = state;
    pthread_mutex_unlock(&l->mu);
}

static void set_error(struct link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct link *l, const char *fmt, ...)
{
    char msg[sizeof l->st.last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&l->mu);
    bool same = strcmp(l->st.last_error, msg) == 0;
    snprintf(l->st.last_error, sizeof l->st.last_error, "%s", msg);
    pthread_mutex_unlock(&l->mu);
    if (!same) /* a link down for an hour logs its reason once, not every retry */
        lt_log(LT_LOG_WARN, "link %s: %s", l->cfg->name, msg);
}

/* ---- pending records ---- */

static void pend_free(struct pend *p)
{
    for (size_t i = 0; i < p->nhops; i++)
        free(p->hops[i]);
    free(p->env);
    free(p);
}

/* Free the settled records at the head, keeping delivery order. */
static void pend_reap(struct link *l)
{
    while (l->head && l->head->state == P_DONE) {
        struct pend *p = l->head;
        l->head = p->next;
        if (!l->head)
            l->tail = NULL;
        l->npend--;
        pend_free(p);
    }
    int64_t lag = l->head ? mono_ms() - l->head->t_in : 0;
    pthread_mutex_lock(&l->mu);
    l->st.pending = l->npend;
    l->st.lag_ms = lag;
    pthread_mutex_unlock(&l->mu);
}

static bool on_path(const struct pend *p, const char *name)
{
    for (size_t i = 0; i < p->nhops; i++)
        if (strcmp(p->hops[i], name) == 0)
            return true;
    return false;
}

/* Settle p at the source: ack it (or NAK it with reason), and ack its extra deliveries
 * too, which the broker ignores but which give their credit back. */
static void settle(struct link *l, struct pend *p, const char *nak_reason)
{
    if (nak_reason)
        lt_client_nak(l->src, l->cfg->queue, p->seq, 0, nak_reason);
    else
        lt_client_ack(l->src, l->cfg->queue, p->seq);
    for (; p->extra > 0; p->extra--)
        lt_client_ack(l->src, l->cfg->queue, p->seq);
    p->state = P_DONE;
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    struct link *l = user;
    for (struct pend *p = l->head; p; p = p->next)
        if (p->seq == d->seq && p->state != P_DONE) {
            p->extra++; /* redelivered while we hold it: it is already on its way */
            return;
        }
    struct pend *p = calloc(1, sizeof *p);
    if (!p || !(p->env = malloc(d->envelope_len ? d->envelope_len : 1))) {
        free(p);
        /* the source redelivers it after ack_wait */
        set_error(l, "out of memory holding delivery %llu", (unsigned long long)d->seq);
        return;
    }
    p->l = l;
    p->seq = d->seq;
    memcpy(p->env, d->envelope, d->envelope_len);
    p->len = d->envelope_len;
    p->t_in = mono_ms();
    /* the hops it came with, then the broker it leaves */
    size_t n = d->nhops < MAX_HOPS ? d->nhops : MAX_HOPS;
    bool oom = false;
    for (size_t i = 0; i < n && !oom; i++)
        oom = !(p->hops[p->nhops++] = strdup(d->hops[i]));
    if (!oom)
        oom = !(p->hops[p->nhops++] = strdup(l->src_name));
    if (oom) {
        pend_free(p);
        set_error(l, "out of memory holding delivery %llu", (unsigned long long)d->seq);
        return;
    }
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->npend++;
    if (on_path(p, l->dst_name)) {
        /* the destination already passed it: sending it there again would be a loop */
        settle(l, p, NULL);
        pthread_mutex_lock(&l->mu);
        l->st.loops++;
        pthread_mutex_unlock(&l->mu);
    }
}

/* Refusals that the destination (or its operator) will get over: keep the record. */
static bool transient(lt_err e)
{
    switch (e) {
    case LT_ETIMEDOUT:
    case LT_ECLOSED:
    case LT_EBUSY:
    case LT_EQUEUE_FULL:
    case LT_ESTORE_FULL:
    case LT_ESTORE:
    case LT_ESHUTDOWN:
    case LT_ENOT_PEER:
    case LT_ENOAUTH:
    case LT_ECRL:
    case LT_EIO:
    case LT_ENOMEM:
    case LT_EAGAIN:
        return true;
    default:
        return false;
    }
}

static void on_published(void *user, uint64_t tag, lt_err code, uint64_t seq, bool duplicate,
                         const char *reason)
{
    (void)tag;
    (void)seq;
    struct pend *p = user;
    struct link *l = p->l;
    if (code == LT_OK || code == LT_ELOOP) {
        settle(l, p, NULL);
        l->backoff_ms = 0;
        pthread_mutex_lock(&l->mu);
        if (code == LT_ELOOP)
            l->st.loops++;
        else
            l->st.forwarded++;
        if (duplicate)
            l->st.duplicates++;
        l->st.last_ok_ms = wall_ms();
        pthread_mutex_unlock(&l->mu);
        return;
    }
    if (transient(code)) {
        p->state = P_WAITING;
        l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : RETRY_MIN_MS;
        if (l->backoff_ms > l->cfg->retry_max_ms)
            l->backoff_ms = l->cfg->retry_max_ms;
        l->hold_until = mono_ms() + l->backoff_ms;
        pthread_mutex_lock(&l->mu);
        l->st.retries++;
        pthread_mutex_unlock(&l->mu);
        set_error(l, "%s: %s: %s (retrying)", l->dst_name, lt_err_name(code), reason);
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "link %s: %s refused it: %s: %s", l->cfg->name, l->dst_name,
             lt_err_name(code), reason);
    settle(l, p, why);
    pthread_mutex_lock(&l->mu);
    l->st.refused++;
    snprintf(l->st.last_error, sizeof l->st.last_error, "%s", why);
    pthread_mutex_unlock(&l->mu);
    lt_log(LT_LOG_WARN, "%s (seq %llu NAKed at %s)", why, (unsigned long long)p->seq,
           l->src_name);
}

/* Send the waiting records in order, as far as the window allows. */
static void send_waiting(struct link *l)
{
    if (mono_ms() < l->hold_until || !lt_client_is_connected(l->dst))
        return;
    for (struct pend *p = l->head; p; p = p->next) {
        if (p->state != P_WAITING)
            continue;
        /* never block in lt_client_publish on a full window: a stop must not wait for the
         * destination (which may be this very broker, busy joining this thread) */
        /* a publish runs the callbacks of answers already in: a transient refusal among
         * them sets hold_until, and order means nothing later goes before it is resent */
        if (atomic_load(&l->stop) || lt_client_inflight(l->dst) >= l->cfg->credit ||
            mono_ms() < l->hold_until)
            break;
        lt_err e = lt_client_publish_hops(l->dst, p->env, p->len, (const char *const *)p->hops,
                                          p->nhops, on_published, p, NULL);
        if (e == LT_OK) {
            p->state = P_SENT;
            continue;
        }
        if (e == LT_ETOOBIG) { /* cannot ever be sent: the source dead-letters it */
            on_published(p, 0, LT_ETOOBIG, 0, false, "envelope larger than the link's frames");
            continue;
        }
        break; /* window full, or disconnected: later */
    }
}

/* ---- connecting ---- */

static void close_ends(struct link *l)
{
    lt_client_close(&l->src); /* our unacked deliveries return to the source queue */
    lt_client_close(&l->dst); /* in-flight publishes complete LT_ECLOSED: back to WAITING */
    /* what was delivered by a source session that is gone will be delivered again */
    for (struct pend *p = l->head; p; p = p->next)
        p->state = P_DONE;
    pend_reap(l);
}

static void on_client_error(void *user, lt_err code, const char *reason)
{
    struct link *l = user;
    set_error(l, "%s", reason && reason[0] ? reason : lt_err_name(code));
}

/* Connect to ep and authenticate; remote: the peer's end, over CURVE when the peer has a
 * curve_key (this broker's key pair then authenticates us to its ZAP handler). */
static lt_err open_end(struct link *l, const char *ep, const char *who, bool remote,
                       lt_client **out)
{
    lt_client_opts o = {.window = l->cfg->credit,
                        .ack_timeout_ms = ACK_TIMEOUT_MS,
                        .request_timeout_ms = REQUEST_TIMEOUT_MS,
                        .client_name = "lienthongd-link"};
    if (remote && l->peer->curve_key[0]) {
        if (!l->curve_sec[0]) {
            set_error(l, "peer %s has a curve_key but this broker has no broker.curve key",
                      l->peer->name);
            return LT_ECONFIG;
        }
        o.curve_server_key = l->peer->curve_key;
        o.curve_public_key = l->curve_pub;
        o.curve_secret_key = l->curve_sec;
    }
    lt_why why = {{0}};
    lt_client *c = NULL;
    lt_err e = lt_client_open(ep, &o, &c, &why);
    if (e == LT_OK)
        e = lt_client_auth(c, NULL, l->signer, &why);
    if (e != LT_OK) {
        set_error(l, "%s (%s): %s: %s", who, ep, lt_err_name(e), why.msg);
        lt_client_close(&c);
        return e;
    }
    lt_client_set_error_cb(c, on_client_error, l);
    *out = c;
    return LT_OK;
}

static lt_err connect_ends(struct link *l)
{
    const char *src_ep = l->cfg->receive ? l->cfg->endpoint : l->self_ep;
    const char *dst_ep = l->cfg->receive ? l->self_ep : l->cfg->endpoint;
    lt_why why = {{0}};
    lt_err e;
    if ((e = open_end(l, dst_ep, l->dst_name, !l->cfg->receive, &l->dst)) != LT_OK ||
        (e = open_end(l, src_ep, l->src_name, l->cfg->receive, &l->src)) != LT_OK)
        return e;
    e = lt_client_subscribe(l->src, l->cfg->queue, l->cfg->credit, NULL, on_deliver, l, &why);
    if (e != LT_OK) {
        set_error(l, "subscribe to %s at %s: %s", l->cfg->queue, l->src_name, why.msg);
        return e;
    }
    /* a refusal of the SUBSCRIBE (unknown queue, not ours) arrives asynchronously: a round
     * trip makes sure it is here before we call the link up */
    lt_client_set_error_cb(l->src, NULL, NULL);
    lt_client_ping(l->src, REQUEST_TIMEOUT_MS, &why);
    lt_client_set_error_cb(l->src, on_client_error, l);
    lt_why lw = {{0}};
    e = lt_client_last_error(l->src, &lw);
    if (e == LT_ENOQUEUE || e == LT_EACL) {
        set_error(l, "subscribe to %s at %s: %s: %s", l->cfg->queue, l->src_name,
                  lt_err_name(e), lw.msg);
        return e;
    }
    return LT_OK;
}

/* Sleep ms, waking early when asked to stop. */
static void nap(struct link *l, unsigned ms)
{
    int64_t until = mono_ms() + ms;
    while (!atomic_load(&l->stop) && mono_ms() < until) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void run_connected(struct link *l)
{
    set_state(l, "up");
    pthread_mutex_lock(&l->mu);
    l->st.connects++;
    pthread_mutex_unlock(&l->mu);
    lt_log(LT_LOG_INFO, "link %s up: %s queue %s -> %s", l->cfg->name, l->src_name,
           l->cfg->queue, l->dst_name);
    while (!atomic_load(&l->stop)) {
        send_waiting(l);
        lt_err e1, e2;
        if (lt_client_inflight(l->dst) > 0) {
            e1 = lt_client_poll(l->dst, 5, NULL);
            e2 = lt_client_poll(l->src, 0, NULL);
        } else {
            bool waiting = l->head && mono_ms() < l->hold_until;
            e2 = lt_client_poll(l->src, waiting ? 5 : 50, NULL);
            e1 = lt_client_poll(l->dst, 0, NULL);
        }
        pend_reap(l);
        if (e1 != LT_OK || e2 != LT_OK) {
            set_error(l, "ZeroMQ failed: %s", lt_err_name(e1 != LT_OK ? e1 : e2));
            return;
        }
        bool up = lt_client_is_connected(l->src) && lt_client_is_connected(l->dst);
        set_state(l, up ? (l->hold_until > mono_ms() ? "retrying" : "up") : "connecting");
    }
}

static void *link_main(void *arg)
{
    struct link *l = arg;
    char tname[16];
    snprintf(tname, sizeof tname, "lt-link%.8s", l->cfg->name);
    pthread_setname_np(pthread_self(), tname);
    lt_why why = {{0}};
    lt_err e = lt_signer_open(l->conf.key_path, l->conf.cert_path, &l->signer, &why);
    if (e != LT_OK) {
        set_error(l, "broker.identity: %s: %s", lt_err_name(e), why.msg);
        set_state(l, "stopped");
        return NULL;
    }
    unsigned backoff = RETRY_MIN_MS;
    while (!atomic_load(&l->stop)) {
        set_state(l, "connecting");
        if (connect_ends(l) == LT_OK) {
            backoff = RETRY_MIN_MS;
            run_connected(l);
        }
        close_ends(l);
        if (atomic_load(&l->stop))
            break;
        set_state(l, "connecting");
        nap(l, backoff);
        backoff = backoff * 2 > l->cfg->retry_max_ms ? l->cfg->retry_max_ms : backoff * 2;
    }
    close_ends(l);
    lt_signer_destroy(&l->signer);
    set_state(l, "stopped");
    return NULL;
}

/* ---- life cycle (loop thread) ---- */

void lt_links_local_endpoint(const char *bound, char *out, size_t cap)
{
    static const char *const wild[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"};
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        size_t n = strlen(wild[i]);
        if (strncmp(bound, wild[i], n) == 0) {
            snprintf(out, cap, "tcp://127.0.0.1:%s", bound + n);
            return;
        }
    }
    snprintf(out, cap, "%s", bound);
}

lt_err lt_links_identity(const char *key_path, const char *cert_path, char *out, lt_why *why)
{
    lt_signer *s = NULL;
    lt_why w = {{0}};
    lt_err e = lt_signer_open(key_path, cert_path, &s, &w);
    if (e != LT_OK)
        return lt_fail(why, LT_ECONFIG, "broker.identity: %s", w.msg);
    snprintf(out, LT_AGENCY_ID_MAX, "%s", lt_signer_agency(s));
    lt_signer_destroy(&s);
    return LT_OK;
}

static void conf_free(struct link_conf *c)
{
    free(c->link.name);
    free(c->link.peer);
    free(c->link.endpoint);
    free(c->link.queue);
    free(c->peer.name);
    free(c->key_path);
    free(c->cert_path);
    memset(c, 0, sizeof *c);
}

/* Copy link i of cfg into c. LT_ENOMEM. */
static lt_err conf_copy(const lt_broker_cfg *cfg, size_t i, struct link_conf *c)
{
    const lt_bcfg_link *l = &cfg->links[i];
    const lt_bcfg_peer *p = lt_broker_config_peer(cfg, l->peer, false);
    memset(c, 0, sizeof *c);
    c->link = *l;
    c->link.name = strdup(l->name);
    c->link.peer = strdup(l->peer);
    c->link.endpoint = strdup(l->endpoint);
    c->link.queue = strdup(l->queue);
    c->peer.name = strdup(p->name);
    memcpy(c->peer.curve_key, p->curve_key, sizeof c->peer.curve_key);
    snprintf(c->self_name, sizeof c->self_name, "%s", cfg->name);
    c->key_path = strdup(cfg->identity_key);
    c->cert_path = strdup(cfg->identity_cert);
    if (!c->link.name || !c->link.peer || !c->link.endpoint || !c->link.queue ||
        !c->peer.name || !c->key_path || !c->cert_path) {
        conf_free(c);
        return LT_ENOMEM;
    }
    return LT_OK;
}

/* Whether a running link with conf a would run exactly as link b of a new config. */
static bool conf_same(const struct link_conf *a, const struct link_conf *b)
{
    return strcmp(a->link.name, b->link.name) == 0 && strcmp(a->link.peer, b->link.peer) == 0 &&
           strcmp(a->link.endpoint, b->link.endpoint) == 0 &&
           strcmp(a->link.queue, b->link.queue) == 0 && a->link.receive == b->link.receive &&
           a->link.credit == b->link.credit && a->link.retry_max_ms == b->link.retry_max_ms &&
           strcmp(a->peer.curve_key, b->peer.curve_key) == 0 &&
           strcmp(a->self_name, b->self_name) == 0 && strcmp(a->key_path, b->key_path) == 0 &&
           strcmp(a->cert_path, b->cert_path) == 0;
}

/* A new link running conf c (taken: freed on failure too). NULL with why on failure. */
static struct link *link_new(const lt_links *ls, struct link_conf *c, lt_why *why)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l) {
        conf_free(c);
        lt_fail(why, LT_ENOMEM, "no memory for a link");
        return NULL;
    }
    l->conf = *c;
    l->cfg = &l->conf.link;
    l->peer = &l->conf.peer;
    snprintf(l->self_ep, sizeof l->self_ep, "%s", ls->self_ep);
    l->src_name = l->cfg->receive ? l->peer->name : l->conf.self_name;
    l->dst_name = l->cfg->receive ? l->conf.self_name : l->peer->name;
    atomic_init(&l->stop, false);
    pthread_mutex_init(&l->mu, NULL);
    snprintf(l->st.name, sizeof l->st.name, "%s", l->cfg->name);
    snprintf(l->st.peer, sizeof l->st.peer, "%s", l->peer->name);
    snprintf(l->st.queue, sizeof l->st.queue, "%s", l->cfg->queue);
    snprintf(l->st.endpoint, sizeof l->st.endpoint, "%s", l->cfg->endpoint);
    l->st.receive = l->cfg->receive;
    snprintf(l->curve_pub, sizeof l->curve_pub, "%s", ls->curve_pub);
    snprintf(l->curve_sec, sizeof l->curve_sec, "%s", ls->curve_sec);
    l->st.state = "connecting";
    int rc = pthread_create(&l->th, NULL, link_main, l);
    if (rc != 0) {
        lt_fail(why, LT_EIO, "cannot start the thread of link %s: %s", l->cfg->name,
                strerror(rc));
        pthread_mutex_destroy(&l->mu);
        conf_free(&l->conf);
        free(l);
        return NULL;
    }
    l->started = true;
    return l;
}

/* Stop link l (join its thread: it closes its clients) and free it. */
static void link_destroy(struct link *l)
{
    atomic_store(&l->stop, true);
    if (l->started)
        pthread_join(l->th, NULL);
    pthread_mutex_destroy(&l->mu);
    memset(l->curve_sec, 0, sizeof l->curve_sec);
    conf_free(&l->conf);
    free(l);
}

lt_err lt_links_start(const lt_broker_cfg *cfg, const char *self_endpoint,
                      const char *curve_public, const char *curve_secret, lt_links **out,
                      lt_why *why)
{
    lt_links *ls = calloc(1, sizeof *ls);
    if (!ls)
        return lt_fail(why, LT_ENOMEM, "no memory for the links");
    lt_links_local_endpoint(self_endpoint, ls->self_ep, sizeof ls->self_ep);
    snprintf(ls->curve_pub, sizeof ls->curve_pub, "%s", curve_public ? curve_public : "");
    snprintf(ls->curve_sec, sizeof ls->curve_sec, "%s", curve_secret ? curve_secret : "");
    size_t added, removed;
    lt_err e = lt_links_reload(ls, cfg, &added, &removed, why);
    if (e != LT_OK) {
        lt_links_stop(&ls);
        return e;
    }
    *out = ls;
    return LT_OK;
}

lt_err lt_links_reload(lt_links *ls, const lt_broker_cfg *cfg, size_t *added, size_t *removed,
                       lt_why *why)
{
    *added = *removed = 0;
    struct link_conf *want = calloc(cfg->nlinks ? cfg->nlinks : 1, sizeof *want);
    struct link **next = calloc(cfg->nlinks ? cfg->nlinks : 1, sizeof *next);
    lt_err e = want && next ? LT_OK : lt_fail(why, LT_ENOMEM, "no memory for the links");
    size_t ncopied = 0;
    for (; e == LT_OK && ncopied < cfg->nlinks; ncopied++)
        if (conf_copy(cfg, ncopied, &want[ncopied]) != LT_OK)
            e = lt_fail(why, LT_ENOMEM, "no memory for link %s", cfg->links[ncopied].name);
    if (e != LT_OK) {
        for (size_t i = 0; want && i < ncopied; i++)
            conf_free(&want[i]);
        free(want);
        free(next);
        return e;
    }
    /* keep the running links the new config describes unchanged; stop the others */
    for (size_t i = 0; i < ls->n; i++) {
        size_t j = 0;
        while (j < cfg->nlinks && (next[j] || !conf_same(&ls->v[i]->conf, &want[j])))
            j++;
        if (j < cfg->nlinks) {
            next[j] = ls->v[i];
        } else {
            lt_log(LT_LOG_INFO, "link %s stopped (no longer in the config, or changed)",
                   ls->v[i]->cfg->name);
            link_destroy(ls->v[i]);
            (*removed)++;
        }
    }
    /* start the new ones */
    for (size_t j = 0; j < cfg->nlinks; j++) {
        if (next[j]) {
            conf_free(&want[j]);
            continue;
        }
        if (!(next[j] = link_new(ls, &want[j], why))) {
            e = LT_EIO;
            continue;
        }
        (*added)++;
    }
    /* compact: a link that could not start is left out (why says which) */
    size_t n = 0;
    for (size_t j = 0; j < cfg->nlinks; j++)
        if (next[j])
            next[n++] = next[j];
    free(ls->v);
    ls->v = next;
    ls->n = n;
    free(want);
    return e;
}

void lt_links_stop(lt_links **lp)
{
    lt_links *ls = lp ? *lp : NULL;
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++)
        atomic_store(&ls->v[i]->stop, true); /* all at once: they close in parallel */
    for (size_t i = 0; i < ls->n; i++)
        link_destroy(ls->v[i]);
    free(ls->v);
    memset(ls->curve_sec, 0, sizeof ls->curve_sec);
    free(ls);
    *lp = NULL;
}

size_t lt_links_count(const lt_links *l)
{
    return l ? l->n : 0;
}

void lt_links_status(lt_links *ls, size_t i, lt_link_status *out)
{
    struct link *l = ls->v[i];
    pthread_mutex_lock(&l->mu);
    *out = l->st;
    pthread_mutex_unlock(&l->mu);
}
