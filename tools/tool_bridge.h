/*
 * tool_bridge.h - `lienthong bridge`: a client of lienthongd and of a NATS JetStream cluster
 * that carries signed envelopes between them (docs/national.md). The broker has no NATS code:
 * the bridge is an ordinary lienthong client, so any broker can reach the national tier.
 *
 *   out   (tool_bridge_out.c)  lienthong queue -> JetStream stream, ack after PubAck
 *   in    (tool_bridge_in.c)   JetStream durable pull consumer -> lienthongd, ack after ACK
 *   dump  (tool_bridge_in.c)   a stream's envelopes -> a file `lienthong verify` reads
 *
 *   (tool_bridge_src.c)        a durable pull consumer of envelopes: `bridge in` and
 *                              `lienthong sink --nats` read the stream through it
 *
 * This module (tool_bridge_nats.c) is the one place that calls libnats for the setup they
 * share: connecting, creating the stream, the subject and JetStream headers of an envelope,
 * the check of the options. Single-threaded except where a file says otherwise (libnats
 * runs its own threads).
 *
 * Subjects. A record goes to "<prefix>.<topic>". lienthong topics are dot-separated tokens of
 * [A-Za-z0-9_-] (the broker refuses others), so a topic maps to NATS subject tokens one to
 * one, unescaped: a consumer subscribes to "national.79.760.>" as it would bind the pattern
 * "79.760.>" in lienthong. A topic NATS could not carry as literal tokens (an empty token,
 * a space or control byte, '*' or '>') is refused with the reason, never escaped: an
 * escaped subject would no longer be the topic a national consumer filters on.
 */
#ifndef LT_TOOLS_TOOL_BRIDGE_H
#define LT_TOOLS_TOOL_BRIDGE_H

#include "envelope.h"
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

/* The longest subject the bridge builds or accepts (prefix, '.', topic). */
#define LT_BRIDGE_SUBJECT_MAX 512

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

/* LT_OK if subject is a NATS subject: dot-separated non-empty tokens of printable bytes other
 * than space (no byte <= 0x20, no 0x7f), at most LT_BRIDGE_SUBJECT_MAX - 1 bytes. With
 * wildcards a token may be "*" and the last one ">"; without, '*' and '>' are refused
 * anywhere. LT_EBADTOPIC with the reason (which token, which byte). */
lt_err lt_bridge_subject_check(const char *subject, bool wildcards, lt_why *why);

/* "<prefix>.<topic>" into out[0..cap). LT_EBADTOPIC: prefix or topic not literal subject
 * tokens (lt_bridge_subject_check), or the result longer than cap - 1; out is written only
 * on LT_OK. */
lt_err lt_bridge_subject(const char *prefix, const char *topic, char *out, size_t cap,
                         lt_why *why);

/* The NATS message of one envelope env_bytes[0..len) (borrowed): subject
 * "<prefix>.<topic>", data the envelope unchanged, headers Nats-Msg-Id (the 32 hex digits of
 * the message id) and the three Lienthong-* headers. On LT_OK *out is the caller's
 * (natsMsg_Destroy) and id_hex (room for 33) holds the Nats-Msg-Id. LT_EPROTO/LT_ETOOBIG/...:
 * not an envelope (lt_env_decode); LT_EBADTOPIC: its topic cannot be a subject; LT_EIO:
 * libnats failed. Reason in why. libnats must be open (nats_Open, or a connection made). */
lt_err lt_bridge_msg_new(const char *prefix, const uint8_t *env_bytes, size_t len,
                         natsMsg **out, char *id_hex, lt_why *why);

/* The headers of a message read from a stream (each NULL when absent). */
typedef struct lt_bridge_hdrs {
    const char *msg_id, *topic, *source, *record_type;
} lt_bridge_hdrs;

/* Whether the headers of a message read from the stream agree with env, the envelope it
 * carries: each header present must equal the envelope's value (Nats-Msg-Id: its message id
 * in lower-case hex). Headers are not signed: one that disagrees was written by someone
 * else than the bridge, and a consumer filtering on it would be misled. LT_EPROTO naming the
 * header and both values. Absent headers are not an error (any NATS client may publish). */
lt_err lt_bridge_hdrs_check(const lt_bridge_hdrs *h, const lt_env *env, lt_why *why);

/* Check the options of mode ("out", "in", "dump" or "sink", the NATS source of `lienthong
 * sink`) after parsing: what the mode requires is there, the stream and durable names are
 * names JetStream accepts (no '.', '*', '>', '/', '\\', space or control byte), --subject is
 * a literal subject prefix for out, a filter (wildcards allowed) for in and sink, a literal
 * subject or "PREFIX.>" for dump. LT_EINVAL with the option and the reason in why. */
lt_err lt_bridge_opts_check(const char *mode, const lt_bridge_opts *o, lt_why *why);

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

/* A durable JetStream pull consumer of envelopes (tool_bridge_src.c): explicit acks, at most
 * o->credit unacked, redelivered after o->timeout_ms + 5 s without an ack (a durable that exists
 * is updated to these values). `bridge in` and `lienthong sink
 * --nats` read the stream through it. One thread. */
typedef struct lt_bridge_src lt_bridge_src;

/* One fetched message. envelope points into msg (valid until lt_bridge_src_done). */
typedef struct lt_bridge_item {
    const uint8_t *envelope;
    size_t len;
    uint64_t stream_seq;
    uint64_t delivered; /* times JetStream delivered it (1: first) */
    lt_bridge_hdrs hdrs;
    natsMsg *msg;
} lt_bridge_item;

/* How a fetched message ends: acked (stored), terminated (never deliverable), NAKed
 * (delivered again after a back-off growing with its deliveries: 200 ms .. 5 s), or left
 * unacked (delivered again after the ack wait: the reader could not keep it). */
typedef enum lt_bridge_fate {
    LT_BRIDGE_ACK,
    LT_BRIDGE_TERM,
    LT_BRIDGE_NAK,
    LT_BRIDGE_LEAVE
} lt_bridge_fate;

/* Connect (lt_bridge_nats_open) and bind the durable consumer o->durable on stream
 * o->stream, filter subject o->subject, creating it if missing. On LT_OK *out is the
 * caller's (lt_bridge_src_close). LT_EIO/LT_EINVAL with the reason. */
lt_err lt_bridge_src_open(const lt_bridge_opts *o, lt_bridge_src **out, lt_why *why);

/* Fetch up to max (<= o->credit) messages into items, waiting at most wait_ms for the
 * first. LT_OK with *n = 0 when none came. LT_EIO (no quorum, a leader election, the
 * connection lost: JetStream keeps the messages) with the reason. Every item fetched must be
 * ended with lt_bridge_src_done before the next fetch. */
lt_err lt_bridge_src_fetch(lt_bridge_src *src, uint32_t max, int64_t wait_ms,
                           lt_bridge_item *items, size_t *n, lt_why *why);

/* End item as fate says and free its message (an item without one: nothing; src may then be
 * NULL). Acks are not waited for: one lost is a redelivery, which both readers take as a
 * duplicate. */
void lt_bridge_src_done(lt_bridge_src *src, lt_bridge_item *item, lt_bridge_fate fate);

/* Close the consumer (it stays in the stream, durable) and the connection; NULL-safe,
 * clears *srcp. */
void lt_bridge_src_close(lt_bridge_src **srcp);

/* Whether lienthong's answer code may be different later (NAK with a back-off, the message
 * comes again): no answer (a timeout, the connection lost), the broker busy, full, shutting
 * down or failing (store, CRL, crypto, memory), an AUTH still being checked. Every other code
 * refuses the record itself (its signature, certificate, ACL, topic, record type ...):
 * delivered again it would be refused again, so it is terminated. */
bool lt_bridge_is_transient(lt_err code);

/* Back-off before attempt n (1, 2, ...) after a failure: 200 ms doubling to 5 s. */
uint32_t lt_bridge_backoff_ms(uint32_t attempt);

#endif
