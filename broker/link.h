/*
 * link.h - links between brokers (docs/network.md): each link is one thread of lienthongd
 * that is nothing but a client of two brokers (lib/client.h). It consumes a queue at its
 * source broker with credit and publishes each delivered envelope, byte for byte, to its
 * destination broker with Publish.hops; it acks the source only after the destination
 * acked (a broker acks only after fsync), so a record leaves the source queue only once the
 * next broker holds it durably.
 *
 *   forward link   source = this broker (a local queue), destination = the peer
 *   receive link   source = the peer (a queue there), destination = this broker
 *
 * Both ends authenticate with this broker's identity (broker.identity): the local queue of
 * a forward link and the peer's queue of a receive link are owned by it, and the
 * destination lists it as a peer (or it is this broker itself), so it accepts the hops.
 *
 * Outcomes at the destination, for each record:
 *   ACK (duplicate or not)        ack at the source: a resend after a crash is harmless
 *   LOOP                          the destination already passed it: ack at the source
 *   BUSY, QUEUE_FULL, STORE_FULL,
 *   STORE_ERROR, SHUTTING_DOWN,
 *   NOT_A_PEER, NOT_AUTHENTICATED,
 *   CRL_ERROR, timeout, closed    kept and sent again, in order, after a back-off doubling
 *                                 from 100 ms to retry_max_ms (the destination or its
 *                                 config will recover: nothing is dead-lettered for it)
 *   any other refusal             NAK at the source with the code and reason: it is
 *                                 redelivered and reaches the source's DLQ after
 *                                 max_deliver; logged and counted
 * Before sending, a record whose hops already name the destination broker is not sent
 * (acked at the source, counted as a loop): "never forward to a broker on the path".
 *
 * Order: records are sent in the order the source delivered them and a connection's
 * publishes are stored in arrival order, so a disconnect or a resend keeps each
 * publisher's order. A transient refusal of one record while a later one (already in
 * flight) is accepted can put that later record first; then it is the only reordering.
 *
 * Threads: lt_links_start / lt_links_stop / lt_links_status from the loop thread; each link
 * runs in its own thread owning its two clients and its signer. Status is copied out under
 * a mutex.
 */
#ifndef LT_BROKER_LINK_H
#define LT_BROKER_LINK_H

#include "broker_config.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_links lt_links;

typedef struct lt_link_status {
    char name[201];  /* link name (config; at most LT_STORE_QUEUE_NAME_MAX) */
    char peer[72];                          /* peer broker name */
    char queue[201]; /* at most LT_STORE_QUEUE_NAME_MAX */
    char endpoint[256];  /* the peer's */
    bool receive;        /* false: forward */
    const char *state;   /* "connecting", "up", "retrying", "stopped" (static strings) */
    uint64_t forwarded;  /* records the destination acked (stored) */
    uint64_t duplicates; /* ... of which it already held */
    uint64_t loops;      /* records not sent because the destination was on their path */
    uint64_t refused;    /* permanent refusals, NAKed at the source */
    uint64_t retries;    /* transient failures, sent again */
    uint64_t connects;   /* successful (re)connections of both ends */
    uint64_t pending;    /* delivered by the source, not yet settled */
    int64_t lag_ms;      /* how long the oldest pending record has waited in the link */
    int64_t last_ok_ms;  /* wall time of the last record the destination acked, 0: none */
    char last_error[320];
} lt_link_status;

/* Start one thread per link of cfg (copied: cfg may be freed after). self_endpoint is
 * this broker's ZeroMQ endpoint as clients on this machine reach it (copied). curve_public
 * and curve_secret (Z85, copied; NULL or "": none) are this broker's CURVE key pair, used
 * towards a peer that has a curve_key in cfg (link.c open_end). On LT_OK
 * *out is owned by the caller (lt_links_stop), also when cfg has no links.
 * LT_ECONFIG: broker.identity unusable (why says why); LT_ENOMEM; LT_EIO: a thread could
 * not start. */
lt_err lt_links_start(const lt_broker_cfg *cfg, const char *self_endpoint,
                      const char *curve_public, const char *curve_secret, lt_links **out,
                      lt_why *why);

/* SIGHUP: make the running links those of cfg (copied; cfg may be freed after). A link
 * whose config is unchanged keeps running; one removed or changed is stopped (its thread
 * joined: at most about a second) and a new or changed one started. *added / *removed count
 * them. LT_ENOMEM / LT_EIO (a thread could not start; why names the link, the others run).
 * Loop thread. */
lt_err lt_links_reload(lt_links *ls, const lt_broker_cfg *cfg, size_t *added, size_t *removed,
                       lt_why *why);

/* Ask every link to stop, join the threads (each closes its clients: unacked deliveries go
 * back to their source queue after its ack_wait) and free. Accepts NULL; clears *lp. */
void lt_links_stop(lt_links **lp);

/* Number of links, and a copy of link i's status (i < lt_links_count). */
size_t lt_links_count(const lt_links *l);
void lt_links_status(lt_links *l, size_t i, lt_link_status *out);

/* The agency id of the certificate at cert_path into out (LT_AGENCY_ID_MAX bytes), for the
 * broker to know its identity. LT_ECONFIG with the reason. */
lt_err lt_links_identity(const char *key_path, const char *cert_path, char *out, lt_why *why);

/* this broker's endpoint as a client on this machine reaches it: a wildcard host (0.0.0.0,
 * *, [::]) becomes the loopback address. Into out (cap bytes). */
void lt_links_local_endpoint(const char *bound, char *out, size_t cap);

#endif
