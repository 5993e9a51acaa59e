/*
 * broker.h - lienthongd, the daemon object: owns the libuv loop, the ZeroMQ ROUTER socket,
 * the verify pool, the commit thread, the store, the delivery state and the admin server.
 *
 *   loop thread      ROUTER socket (frontend.c), peers and AUTH state, delivery (delivery.c),
 *                    admin HTTP, signals, timers
 *   verify threads   decode + verify + ACL + route each publish, check AUTH signatures
 *                    (verifier.c)
 *   commit thread    the only LMDB writer: group commit of everything (committer.c)
 *
 * Publishes flow through one ring (frontend -> verifiers -> committer -> frontend) in
 * arrival order, so every publisher's messages are stored in the order it sent them and
 * nothing is acknowledged before the transaction that holds it was committed (fsync).
 */
#ifndef LT_BROKER_BROKER_H
#define LT_BROKER_BROKER_H

#include "broker_config.h"
#include "err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lt_broker lt_broker;

typedef struct lt_broker_opts {
    const char *config_path; /* re-read on SIGHUP for the ACL */
    bool debug;              /* log DEBUG lines too */
    unsigned heartbeat_ms;   /* ZMTP heartbeat and idle-peer probe interval; 0 = 5000 */
} lt_broker_opts;

/* Build the daemon for cfg (borrowed: must outlive the broker): open the store and
 * declare the queues, load the trust root and CRL, build the ACL and the router, bind the
 * ROUTER socket, create the metrics registry and the admin server, start the verify and
 * commit threads. Nothing is read from the socket before lt_broker_run. On LT_OK the
 * caller owns *out (lt_broker_destroy).
 * LT_ECONFIG: a file the config names is unusable (why says "file: key: reason");
 * LT_EIO: the listen endpoint or admin address cannot be bound; LT_ESTORE: the store
 * cannot be opened; LT_ENOMEM. */
lt_err lt_broker_new(const lt_broker_cfg *cfg, const lt_broker_opts *opts, lt_broker **out,
                     lt_why *why);

/* What --check does beyond loading the config: the trust root and CRL load, the ACL
 * builds, the admin address parses. LT_ECONFIG with "file: key: reason"; LT_ENOMEM. */
lt_err lt_broker_check(const lt_broker_cfg *cfg, lt_why *why);

/* Serve until SIGTERM/SIGINT (or lt_broker_stop): prints the ready line on stderr, then
 * runs the loop. On a stop request it stops accepting publishes (NACK SHUTTING_DOWN),
 * lets every accepted publish finish (commit + ACK), commits pending consumer acks,
 * stops the threads and returns. LT_OK on a clean stop; LT_ETIMEDOUT if draining took
 * longer than 10 s (what was committed is safe either way). Call once, from the thread
 * that will be the loop thread. */
lt_err lt_broker_run(lt_broker *b);

/* Ask a running broker to stop, as SIGTERM does. Any thread (async-signal-safe it is not). */
void lt_broker_stop(lt_broker *b);

/* The endpoint the ROUTER socket is bound to ("tcp://127.0.0.1:7400"), borrowed. */
const char *lt_broker_endpoint(const lt_broker *b);

/* Free everything. The loop must not be running. Accepts NULL; clears *bp. */
void lt_broker_destroy(lt_broker **bp);

#endif
