/*
 * net_ops.c - what operators see of the network (docs/network.md): the links' state in
 * /metrics (lienthong_link_*), in /api/v1/links (and so `lienthong links`), and the CURVE
 * handshakes refused (lienthong_curve_*); and the connections a SIGHUP no longer accepts
 * the CURVE key of. Everything here runs on the loop thread, at a scrape, an API request, a
 * new connection's first frame or a SIGHUP; link status is copied out under each link's
 * mutex.
 */
#include "broker_int.h"
#include "link.h"
#include "zap.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The backlog of a forward link: its local queue's depth (records stored here, not yet
 * acked by the link); -1 for a receive link (the backlog is at the peer). */
static int64_t backlog(lt_broker *b, const lt_link_status *st)
{
    if (st->receive)
        return -1;
    lt_queue *q = lt_dlv_queue_by_name(b, st->queue);
    lt_store_queue_stats qs;
    lt_why why = {{0}};
    if (!q || lt_store_queue_stats_get(b->store, q->qid, &qs, &why) != LT_OK)
        return -1;
    return (int64_t)qs.depth;
}

static void family(lt_metrics_buf *out, const char *name, const char *type, const char *help)
{
    lt_metrics_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void lt_net_write_metrics(void *ctx, lt_metrics_buf *out)
{
    lt_broker *b = ctx;
    if (b->zap) {
        lt_zap_stats zs;
        lt_zap_get_stats(b->zap, &zs);
        family(out, "lienthong_curve_handshakes_total", "counter",
               "CURVE handshakes on broker.curve.listen by outcome: accepted (key bound to an "
               "agency or peer), unknown_key (refused by ZAP), revoked (refused by ZAP: the "
               "key's certificate is revoked by the CRL in force), not_allowed (refused by "
               "ZAP: the key's certificate fails otherwise), protocol (refused: not CURVE, "
               "e.g. a plaintext client).");
        const struct {
            const char *outcome;
            uint64_t n;
        } rows[] = {{"accepted", zs.accepted},
                    {"unknown_key", zs.unknown_key + zs.other},
                    {"revoked", zs.revoked},
                    {"not_allowed", zs.not_allowed},
                    {"protocol", b->n_curve_refused_protocol}};
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            lt_metrics_buf_printf(out, "lienthong_curve_handshakes_total{outcome=\"%s\"} %llu\n",
                                  rows[i].outcome, (unsigned long long)rows[i].n);
        family(out, "lienthong_curve_sessions_closed_total", "counter",
               "Connections on broker.curve.listen the broker closed because a SIGHUP no "
               "longer accepts their key (removed, bound to another agency, certificate "
               "revoked).");
        lt_metrics_buf_printf(out, "lienthong_curve_sessions_closed_total %llu\n",
                              (unsigned long long)b->n_curve_closed);
    }
    size_t n = lt_links_count(b->links);
    if (n == 0)
        return;
    static const char *const names[][3] = {
        {"lienthong_link_up", "gauge", "1 while both ends of the link are connected."},
        {"lienthong_link_forwarded_total", "counter",
         "Records the destination acked (stored), duplicates included."},
        {"lienthong_link_duplicates_total", "counter",
         "Records the destination already held (a resend after a crash)."},
        {"lienthong_link_refused_total", "counter",
         "Records the destination refused for good, NAKed at the source."},
        {"lienthong_link_retries_total", "counter",
         "Transient failures (busy, full, disconnected, timed out): sent again."},
        {"lienthong_link_loops_total", "counter",
         "Records not sent: the destination was already on their path."},
        {"lienthong_link_pending", "gauge", "Records delivered to the link, not yet settled."},
        {"lienthong_link_backlog", "gauge",
         "Records waiting in a forward link's local queue (pending ones included)."},
        {"lienthong_link_lag_seconds", "gauge",
         "How long the oldest record held by the link has waited in it."},
    };
    lt_link_status *st = calloc(n, sizeof *st);
    if (!st)
        return;
    for (size_t i = 0; i < n; i++)
        lt_links_status(b->links, i, &st[i]);
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        family(out, names[f][0], names[f][1], names[f][2]);
        for (size_t i = 0; i < n; i++) {
            const lt_link_status *s = &st[i];
            double v = 0;
            switch (f) {
            case 0: v = strcmp(s->state, "up") == 0 || strcmp(s->state, "retrying") == 0; break;
            case 1: v = (double)s->forwarded; break;
            case 2: v = (double)s->duplicates; break;
            case 3: v = (double)s->refused; break;
            case 4: v = (double)s->retries; break;
            case 5: v = (double)s->loops; break;
            case 6: v = (double)s->pending; break;
            case 7: {
                int64_t bl = backlog(b, s);
                if (bl < 0)
                    continue;
                v = (double)bl;
                break;
            }
            default: v = (double)s->lag_ms / 1000.0; break;
            }
            /* link, peer and queue names are [A-Za-z0-9_.-] (broker_config.c): safe labels */
            lt_metrics_buf_printf(out, "%s{link=\"%s\",peer=\"%s\",direction=\"%s\"} %.17g\n",
                                  names[f][0], s->name, s->peer,
                                  s->receive ? "receive" : "forward", v);
        }
    }
    free(st);
}

lt_err lt_net_admin_links(void *ctx, json_object **out)
{
    lt_broker *b = ctx;
    json_object *arr = json_object_new_array();
    if (!arr)
        return LT_ENOMEM;
    for (size_t i = 0; i < lt_links_count(b->links); i++) {
        lt_link_status s;
        lt_links_status(b->links, i, &s);
        json_object *o = json_object_new_object();
        if (!o)
            break;
        json_object_object_add(o, "name", json_object_new_string(s.name));
        json_object_object_add(o, "peer", json_object_new_string(s.peer));
        json_object_object_add(o, "direction",
                               json_object_new_string(s.receive ? "receive" : "forward"));
        json_object_object_add(o, "queue", json_object_new_string(s.queue));
        json_object_object_add(o, "endpoint", json_object_new_string(s.endpoint));
        json_object_object_add(o, "state", json_object_new_string(s.state));
        json_object_object_add(o, "forwarded", json_object_new_uint64(s.forwarded));
        json_object_object_add(o, "duplicates", json_object_new_uint64(s.duplicates));
        json_object_object_add(o, "refused", json_object_new_uint64(s.refused));
        json_object_object_add(o, "retries", json_object_new_uint64(s.retries));
        json_object_object_add(o, "loops", json_object_new_uint64(s.loops));
        json_object_object_add(o, "connects", json_object_new_uint64(s.connects));
        json_object_object_add(o, "pending", json_object_new_uint64(s.pending));
        json_object_object_add(o, "backlog", json_object_new_int64(backlog(b, &s)));
        json_object_object_add(o, "lag_s", json_object_new_double((double)s.lag_ms / 1000.0));
        json_object_object_add(o, "last_ok_ms", json_object_new_int64(s.last_ok_ms));
        json_object_object_add(o, "last_error", json_object_new_string(s.last_error));
        json_object_array_add(arr, o);
    }
    *out = arr;
    return LT_OK;
}

/* ---- CURVE sessions after a reload (docs/network.md "Reloading keys and peers") ---- */

/* Whether p's key is still accepted for the agency ZAP bound it to; if not, end its session,
 * refuse what it sends from now on and close its connection: shutdown(2) of the socket makes
 * libzmq see the connection end (it closes the descriptor itself and reports it, and the
 * session is dropped as for any closed connection). The client's reconnection then meets
 * the ZAP handler, which refuses the key. */
static bool curve_still_ok(lt_broker *b, lt_peer *p)
{
    char agency[LT_AGENCY_ID_MAX] = "";
    lt_why why = {{0}};
    lt_zap_verdict v = lt_zap_check(b->zap, p->curve_key, agency, &why);
    if (v == LT_ZAP_ACCEPTED && strcmp(agency, p->zap_user) == 0)
        return true;
    if (v == LT_ZAP_ACCEPTED)
        snprintf(why.msg, sizeof why.msg, "now bound to %s, not %s", agency, p->zap_user);
    lt_log(LT_LOG_WARN,
           "connection #%llu: CURVE key %s (bound to %s at its handshake) is no longer "
           "accepted: %s; closing it",
           (unsigned long long)p->conn, p->curve_key, p->zap_user, why.msg);
    b->fe_hooks.on_session_end(b, p);
    p->key_refused = true;
    p->session = ++b->next_conn; /* an AUTH still being checked answers nothing */
    p->state = LT_PEER_NEW;
    p->agency[0] = '\0';
    if (p->fd >= 0)
        shutdown(p->fd, SHUT_RDWR);
    b->n_curve_closed++;
    return false;
}

bool lt_net_curve_conn(lt_broker *b, lt_peer *p)
{
    return !b->zap || curve_still_ok(b, p);
}

size_t lt_net_curve_recheck(lt_broker *b)
{
    size_t n = 0;
    if (!b->zap || !b->peers)
        return 0;
    for (size_t i = 0; i < b->npeer_buckets; i++)
        for (lt_peer *p = b->peers[i]; p; p = p->hnext)
            if (p->curve_key[0] && !p->key_refused && !p->closed && !curve_still_ok(b, p))
                n++;
    return n;
}
