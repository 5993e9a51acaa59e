/*
 * zap.h - the ZAP handler (ZeroMQ RFC 27) of the broker's CURVE endpoint: maps the CURVE
 * public key a client presents to the agency (curve_clients) or peer broker (peers[].
 * curve_key) it is bound to in broker.yaml, and refuses every other key. The mapped agency
 * id becomes the connection's ZAP User-Id; the frontend then requires the connection's AUTH
 * to prove that same agency (docs/network.md "Binding a CURVE key to an agency").
 *
 * Only connections to an endpoint with CURVE (ZMQ_ZAP_DOMAIN "lienthong") reach it. It runs
 * in its own thread with a REP socket on inproc://zeromq.zap.01 in the broker's ZeroMQ
 * context; the key table is immutable after start. Counters are atomics, read by any thread.
 */
#ifndef LT_BROKER_ZAP_H
#define LT_BROKER_ZAP_H

#include "broker_config.h"
#include "err.h"

#include <stdint.h>

#define LT_ZAP_DOMAIN "lienthong"

typedef struct lt_zap lt_zap;

typedef struct lt_zap_stats {
    uint64_t accepted;       /* CURVE handshakes with a known key */
    uint64_t unknown_key;    /* refused: key bound to nobody */
    uint64_t other;          /* refused: not CURVE, or a malformed request */
} lt_zap_stats;

/* Bind the handler in zctx and start its thread with the keys of cfg (borrowed: must
 * outlive the handler): its curve_clients and its peers' curve_key, and self_key/self_agency
 * (this broker's own public key, for its links to itself; NULL: none). Must run before an
 * endpoint with CURVE is bound. On LT_OK *out is the caller's (lt_zap_stop). LT_EIO: the
 * inproc endpoint cannot be bound (another handler?); LT_ENOMEM. */
lt_err lt_zap_start(void *zctx, const lt_broker_cfg *cfg, const char *self_key,
                    const char *self_agency, lt_zap **out, lt_why *why);

/* Stop the thread and close its socket (before the context is terminated). Accepts NULL;
 * clears *zp. */
void lt_zap_stop(lt_zap **zp);

void lt_zap_get_stats(const lt_zap *z, lt_zap_stats *out);

#endif
