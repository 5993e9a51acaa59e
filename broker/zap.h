/*
 * zap.h - the ZAP handler (ZeroMQ RFC 27) of the broker's CURVE endpoint: maps the CURVE
 * public key a client presents to the agency (curve_clients) or peer broker (peers[].
 * curve_key) it is bound to in broker.yaml, and refuses every other key. A key listed with
 * the certificate of its agency (`cert`) is accepted only while that certificate passes the
 * trust's check (chain, validity, the CRL in force): a revoked agency is refused at the
 * handshake. The mapped agency id becomes the connection's ZAP User-Id (the frontend then
 * requires the connection's AUTH to prove that same agency) and the key itself the
 * connection's metadata property "X-Curve-Key" (LT_ZAP_KEY_PROPERTY), so the broker can tell
 * on SIGHUP which connections hold a key it no longer accepts (docs/network.md).
 *
 * Only connections to an endpoint with CURVE (ZMQ_ZAP_DOMAIN "lienthong") reach it. It runs
 * in its own thread with a REP socket on inproc://zeromq.zap.01 in the broker's ZeroMQ
 * context. The key table (lt_zap_keys) is immutable and reference-counted: SIGHUP builds a
 * new one and swaps it in (lt_zap_swap) under the handler's mutex; a handshake holds the
 * table it started with until it answers. Counters are atomics, read by any thread.
 */
#ifndef LT_BROKER_ZAP_H
#define LT_BROKER_ZAP_H

#include "agency.h"
#include "broker_config.h"
#include "err.h"
#include "pki.h"

#include <stdbool.h>
#include <stdint.h>

#define LT_ZAP_DOMAIN "lienthong"
#define LT_ZAP_KEY_PROPERTY "X-Curve-Key"

typedef struct lt_zap lt_zap;
typedef struct lt_zap_keys lt_zap_keys;

typedef struct lt_zap_stats {
    uint64_t accepted;    /* CURVE handshakes with a known key (and a good certificate) */
    uint64_t unknown_key; /* refused: key bound to nobody */
    uint64_t revoked;     /* refused: the key's certificate is revoked by the CRL in force */
    uint64_t not_allowed; /* refused: the key's certificate fails otherwise (expired, not
                           * yet valid, unknown CA, no usable CRL) */
    uint64_t other;       /* refused: not CURVE, or a malformed request */
} lt_zap_stats;

/* What lt_zap_check decided for a key. */
typedef enum lt_zap_verdict {
    LT_ZAP_ACCEPTED = 0,
    LT_ZAP_UNKNOWN_KEY,
    LT_ZAP_REVOKED,
    LT_ZAP_NOT_ALLOWED,
} lt_zap_verdict;

/* The key table of cfg: its curve_clients, its peers' curve_key, and self_key (this broker's
 * own public key, Z85; NULL or "": none) bound to self_agency with the certificate
 * self_cert (NULL: none), for links to itself. Each `cert` file is read now (PEM, the first
 * certificate) and its subject CN must be the agency the key is bound to. On LT_OK *out is
 * the caller's (lt_zap_keys_rele, or hand it to lt_zap_start / lt_zap_swap). LT_ECONFIG with
 * "file:line: curve_clients: ..." in why; LT_ENOMEM. Any thread. */
lt_err lt_zap_keys_new(const lt_broker_cfg *cfg, const char *self_key, const char *self_agency,
                       const char *self_cert, lt_zap_keys **out, lt_why *why);

/* Drop a reference (the last one frees). Accepts NULL; clears *kp. Any thread. */
void lt_zap_keys_rele(lt_zap_keys **kp);

/* Number of keys in the table. */
size_t lt_zap_keys_count(const lt_zap_keys *k);

/* Bind the handler in zctx and start its thread with the table keys (taken, also on error)
 * and trust (borrowed: must outlive the handler; lt_trust is thread-safe, and a CRL reload
 * takes effect at the next handshake). Must run before an endpoint with CURVE is bound. On
 * LT_OK *out is the caller's (lt_zap_stop). LT_EIO: the inproc endpoint cannot be bound
 * (another handler?); LT_ENOMEM. */
lt_err lt_zap_start(void *zctx, lt_trust *trust, lt_zap_keys *keys, lt_zap **out, lt_why *why);

/* Put keys (taken) in force for every handshake from now on; the previous table is released
 * once the handshake holding it (if any) answered. Any thread. */
void lt_zap_swap(lt_zap *z, lt_zap_keys *keys);

/* What the handler would answer now to the CURVE public key z85 (40 characters of Z85):
 * on LT_ZAP_ACCEPTED agency (LT_AGENCY_ID_MAX bytes) holds the agency it is bound to; else
 * why says why it is refused. Counts nothing. Any thread. */
lt_zap_verdict lt_zap_check(lt_zap *z, const char *z85, char agency[LT_AGENCY_ID_MAX],
                            lt_why *why);

/* Stop the thread and close its socket (before the context is terminated). Accepts NULL;
 * clears *zp. */
void lt_zap_stop(lt_zap **zp);

void lt_zap_get_stats(const lt_zap *z, lt_zap_stats *out);

#endif
