/*
 * tool_bridge.h - `lienthong bridge`: a client of lienthongd and of a NATS JetStream cluster
 * that carries signed envelopes between them (docs/national.md). The broker has no NATS code:
 * the bridge is an ordinary lienthong client, so any broker can reach the national tier.
 *
 *   out   (tool_bridge_out.c)  lienthong queue -> JetStream stream, ack after PubAck
 *   in    (tool_bridge_in.c)   JetStream durable pull consumer -> lienthongd, ack after ACK
 *   dump  (tool_bridge_in.c)   a stream's envelopes -> a file `lienthong verify` reads
 *
 * This module (tool_bridge_nats.c) is the one place that calls libnats for the setup the
 * three share: connecting, creating the stream, the JetStream headers of an envelope.
 * Single-threaded except where a file says otherwise (libnats runs its own threads).
 */
#ifndef LT_TOOLS_TOOL_BRIDGE_H
#define LT_TOOLS_TOOL_BRIDGE_H

#include "err.h"

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>

/* Headers every envelope carries in the stream (national consumers filter without
 * decoding). Nats-Msg-Id is the hex message id: JetStream drops a resend within the
 * stream's duplicate window. */
#define LT_BRIDGE_HDR_TOPIC "Lienthong-Topic"
#define LT_BRIDGE_HDR_SOURCE "Lienthong-Source"
#define LT_BRIDGE_HDR_TYPE "Lienthong-Record-Type"

typedef struct lt_bridge_opts {
    const char *cfg_path;   /* agency config (lienthong side) */
    const char *endpoint;   /* broker endpoint, NULL: the config's */
    const char *nats_urls;  /* "nats://127.0.0.1:4222,nats://..." */
    const char *stream;     /* JetStream stream name */
    const char *subject;    /* out: subject prefix (records go to PREFIX.<topic>);
                               in/dump: filter subject */
    const char *queue;      /* out: lienthong queue */
    const char *durable;    /* in: durable consumer name */
    const char *dump_path;  /* dump: envelope file to write */
    bool create_stream;     /* out: create the stream (subjects PREFIX.>) if missing */
    int replicas;           /* with create_stream */
    int64_t dup_window_s;   /* with create_stream: duplicate window */
    uint32_t credit;        /* out: lienthong deliveries held at once (= publishes in flight);
                               in: messages fetched per pull */
    int64_t timeout_ms;     /* a JetStream / lienthong answer not back by then is a failure */
    uint64_t count;         /* stop after this many records (0: no limit) */
    int64_t idle_s;         /* stop after this long without a record (0: never) */
} lt_bridge_opts;

/* Connect to o->nats_urls (reconnecting for ever, like lienthong's client) and open a
 * JetStream context whose requests wait o->timeout_ms; async publishes (at most o->credit
 * pending) complete through on_ack(..., ack_user) on a libnats thread (NULL: no async
 * publishing). On LT_OK *nc and *js are the caller's (lt_bridge_nats_close). LT_EIO with the
 * reason in why. */
lt_err lt_bridge_nats_open(const lt_bridge_opts *o, jsPubAckHandler on_ack, void *ack_user,
                           natsConnection **nc, jsCtx **js, lt_why *why);

/* The three modes (cmd_bridge.c parses the options). Exit status: 0 done, 1 failed. */
int lt_bridge_out_run(const lt_bridge_opts *o);
int lt_bridge_in_run(const lt_bridge_opts *o);
int lt_bridge_dump_run(const lt_bridge_opts *o);

/* Destroy *js and *nc (either may be NULL) and set them to NULL. */
void lt_bridge_nats_close(natsConnection **nc, jsCtx **js);

/* Create stream o->stream (file store, subjects "<o->subject>.>", o->replicas replicas,
 * duplicate window o->dup_window_s) unless it exists already; an existing stream is kept as
 * it is. LT_EIO with JetStream's reason. */
lt_err lt_bridge_stream_ensure(const lt_bridge_opts *o, jsCtx *js, lt_why *why);

/* The libnats status s (and the last error text, and the JetStream error code when not 0)
 * as a reason in why; returns LT_EIO. */
lt_err lt_bridge_nats_fail(lt_why *why, natsStatus s, jsErrCode jerr, const char *what);

/* Back-off before attempt n (1, 2, ...) after a failure: 200 ms doubling to 5 s. */
uint32_t lt_bridge_backoff_ms(uint32_t attempt);

#endif
