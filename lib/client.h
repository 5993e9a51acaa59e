/*
 * client.h - a connection to lienthongd: pipelined publish with acks, subscribe with credit,
 * consumer ack/nak, admin requests, ping.
 *
 * Wire: one ZeroMQ DEALER socket connected to the broker's ROUTER; every ZeroMQ message is one
 * serialized lienthong.v1.Frame (proto/lienthong/v1/envelope.proto).
 *
 * Publishing. lt_client_publish sends PUBLISH(tag, envelope) without waiting for the answer; at
 * most `window` publishes are in flight. Each publish's callback runs exactly once: on ACK
 * (LT_OK, stored seq, duplicate flag), on NACK (the NACK's code as an lt_err, with the broker's
 * reason), on LT_ETIMEDOUT when no answer came within ack_timeout_ms, or on LT_ECLOSED when the
 * connection to the broker was lost while it was in flight, or when the client is closed. After
 * LT_ETIMEDOUT / LT_ECLOSED the message may or may not have been stored: republish the same
 * envelope (same message id) - the broker acks a message id it already holds as a duplicate.
 *
 * Consuming. SUBSCRIBE(queue, credit) lets the broker send up to `credit` deliveries; every
 * delivery uses one credit. They come several to a DELIVERS frame (Subscribe.batched_deliver;
 * one DELIVER frame each with lt_client_opts.single_deliveries); either way the deliver
 * callback runs once per delivery, with the same fields. When the application acks (or naks)
 * a delivery, the client gives that credit back to the broker with a CREDIT frame, so the
 * consumer holds at most `credit` unacked deliveries. Replayed deliveries need no ack: their
 * credit is given back when the deliver callback returns. Acks are batched into one
 * CONSUMER_ACK frame per queue; they are sent when 64 have gathered, at the end of every
 * lt_client_poll and of a publish's dispatch of what arrived, and by lt_client_flush.
 *
 * Reconnection. ZeroMQ reconnects by itself (100 ms, backing off to 2 s). The client watches
 * the connection (a socket monitor): when it drops, every publish in flight completes with
 * LT_ECLOSED (its ack, if any, can no longer arrive); when it comes back, a client that had
 * authenticated re-authenticates with the same signer and re-subscribes its queues with their
 * full credit. ZMQ_IMMEDIATE is set, so nothing is queued for a broker that is not connected:
 * a publish made while disconnected waits (pumping) until the connection is back or
 * ack_timeout_ms passes.
 *
 * Threads. An lt_client and its socket belong to one thread: every function here must be called
 * from the thread that opened it. Separate lt_client objects are independent and may live in
 * separate threads (they share one ZeroMQ context, which is thread-safe).
 *
 * Callbacks (publish, deliver, error): the contract.
 *   - Where they run: on the client's thread, only inside these calls of the same client:
 *     lt_client_publish, _publish_at, _publish_hops, _cancel, _poll, _flush, _auth, _admin,
 *     _ping and _close. Never inside lt_client_ack, _nak, _subscribe or _open, never between
 *     calls. Each publish, publish_at, publish_hops and cancel made from outside a callback
 *     first dispatches, without waiting, what has already arrived (answers, deliveries) and
 *     completes the publishes past their ack timeout (skipped when it last did so less than
 *     50 us ago, which keeps the cost of looking off the full-speed path); only then does
 *     it send, pumping while the window is full or the broker is not connected. So a
 *     publish's callback never runs inside the call that sent it, and a publisher sending at
 *     a set rate (its window never full) needs no lt_client_poll: each publish runs the
 *     callbacks of every answer that arrived 50 us before it or earlier. lt_client_poll is
 *     for a client with nothing to send (a consumer, an idle publisher); lt_client_flush
 *     waits for the last answers.
 *   - Exactly once: a publish (or cancel) that returned LT_OK completes exactly once; one that
 *     returned anything else sent nothing and never calls its callback. When lt_client_close
 *     returns, every callback has run (LT_ECLOSED for the publishes still unanswered).
 *   - The user pointer is passed back as given, never dereferenced by the client. The caller
 *     keeps what it points at valid until that callback has run, and may free it inside the
 *     callback: the client does not use it afterwards. As the callback may run in any later
 *     call of this client, read nothing through the pointer after that call.
 *   - Borrowed: reason, and every pointer in an lt_client_delivery, are valid only while the
 *     callback runs; copy what must outlive it.
 *   - Re-entrancy. A callback may call lt_client_publish, _publish_at, _publish_hops and
 *     _cancel (there they dispatch nothing and never wait: LT_EAGAIN when the window is full
 *     or the socket cannot take the frame, LT_ECLOSED inside lt_client_close), lt_client_ack,
 *     _nak, _subscribe, _set_error_cb and the getters. lt_client_poll and _flush return
 *     LT_EINVAL there, as do _auth, _admin and _ping. It must not call lt_client_close (an
 *     assertion stops the process).
 */
#ifndef LT_LIB_CLIENT_H
#define LT_LIB_CLIENT_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lt_signer;        /* lib/pki.h */
struct lt_agency_config; /* lib/config.h */

typedef struct lt_client lt_client;

/* Defaults used for a field left 0 (or NULL). */
#define LT_CLIENT_WINDOW_DEFAULT 1024
#define LT_CLIENT_ACK_TIMEOUT_MS_DEFAULT 30000
#define LT_CLIENT_REQUEST_TIMEOUT_MS_DEFAULT 10000
#define LT_CLIENT_MAX_FRAME_DEFAULT (16u << 20)

typedef struct lt_client_opts {
    unsigned window;           /* publishes in flight at most (tag span), 0 = default */
    int ack_timeout_ms;        /* a publish unanswered this long completes LT_ETIMEDOUT */
    int request_timeout_ms;    /* auth, admin and ping wait this long at most */
    size_t max_frame_bytes;    /* larger incoming frames are dropped; 0 = default */
    const char *client_name;   /* sent in HELLO; NULL = "lienthong-client/<version>" */
    /* CURVE (docs/network.md): when curve_server_key is set, the connection is encrypted
     * and authenticated with our key pair; the broker's ZAP handler must know our public
     * key. Z85 text, 40 characters each; copied by lt_client_open. */
    const char *curve_server_key; /* the broker's public key; NULL or "": plaintext */
    const char *curve_public_key;
    const char *curve_secret_key;
    /* Subscribe without Subscribe.batched_deliver: the broker then sends one DELIVER frame
     * per record instead of several to a Delivers frame (docs/protocol.md 8.1). Callbacks
     * see no difference either way. false (default): batched, which costs the broker and
     * the consumer less per record; true is for tools and tests that need the broker's
     * one-frame-per-record flow (its send queue filling frame by frame). */
    bool single_deliveries;
} lt_client_opts;

/* Completion of one publish; see the file comment for the codes. reason is "" on success and
 * is borrowed for the duration of the call. seq and duplicate are meaningful on LT_OK only. */
typedef void (*lt_client_publish_cb)(void *user, uint64_t tag, lt_err code, uint64_t seq,
                                     bool duplicate, const char *reason);

/* One delivered message. Every pointer is borrowed for the duration of the callback: copy what
 * must outlive it. envelope is exactly the bytes the publisher sent. */
typedef struct lt_client_delivery {
    const char *queue;
    uint64_t seq;
    uint32_t delivery_count; /* 1 on first delivery */
    bool replay;             /* replayed history: needs no ack */
    const uint8_t *envelope;
    size_t envelope_len;
    const char *const *hops; /* brokers the record passed before the one that delivered it */
    size_t nhops;            /* (links between brokers, docs/network.md); 0 for most */
} lt_client_delivery;

typedef void (*lt_client_deliver_cb)(void *user, const lt_client_delivery *d);

/* A NACK or admin error that answers no publish of ours (tag 0 or a tag not in flight): e.g.
 * UNKNOWN_QUEUE / ACL_DENIED for a SUBSCRIBE, NOT_AUTHENTICATED, a rejected re-auth. */
typedef void (*lt_client_error_cb)(void *user, lt_err code, const char *reason);

/* Replay: deliver a queue's retained history from a sequence number or a time instead of
 * its pending messages. Both 0 = no replay. */
typedef struct lt_client_replay {
    uint64_t from_seq;
    int64_t from_unix_ms;
} lt_client_replay;

/* Connect to endpoint ("tcp://127.0.0.1:7400"); opts may be NULL. Does not wait for the TCP
 * connection (the first publish or lt_client_auth does). On LT_OK *out is a new client to
 * release with lt_client_close. LT_EINVAL: bad endpoint or option; LT_EIO: ZeroMQ failed;
 * LT_ENOMEM. */
lt_err lt_client_open(const char *endpoint, const lt_client_opts *opts, lt_client **out,
                      lt_why *why);

/* Connect to cfg's broker endpoint and authenticate as cfg's agency with signer (borrowed: it
 * must outlive the client, re-authentication after a reconnect uses it). Errors as
 * lt_client_open and lt_client_auth. */
lt_err lt_client_open_agency(const struct lt_agency_config *cfg, struct lt_signer *signer,
                             const lt_client_opts *opts, lt_client **out, lt_why *why);

/* Complete every publish still in flight with LT_ECLOSED (callbacks run; a publish they make
 * returns LT_ECLOSED), close the socket (lingering at most 500 ms for frames already queued,
 * such as acks) and free the client. Call lt_client_flush first to wait for the answers and
 * until the broker has read the last acks and naks. Accepts
 * NULL and a pointer to NULL; sets *cp to NULL. Never from inside a callback (asserted). */
void lt_client_close(lt_client **cp);

/* Prove which agency this connection speaks for (agency_id NULL: the signer's certificate
 * agency): HELLO(agency) -> CHALLENGE(nonce) ->
 * AUTH(certificate, signature over "lienthong/v1 auth\0" || nonce) -> WELCOME. signer is
 * borrowed and must outlive the client (used again after a reconnect). Blocks up to
 * request_timeout_ms, pumping other frames. LT_ETIMEDOUT: no answer; a NACK's code (e.g.
 * LT_ESIG, LT_ECERT_REVOKED, LT_EAGENCY_MISMATCH) with its reason in why; LT_ECRYPTO: signing
 * failed. Needed before subscribe and admin; publishing needs no authentication (every
 * envelope carries its own signature). */
lt_err lt_client_auth(lt_client *c, const char *agency_id, struct lt_signer *signer,
                      lt_why *why);

/* Send one serialized Envelope (env, len: borrowed, copied before returning). First runs the
 * callbacks of what has already arrived, without waiting (see Callbacks). Returns LT_OK once
 * the frame is handed to ZeroMQ; cb(user, tag, ...) runs in a later call, exactly once.
 * Blocks, pumping replies (so other callbacks run), while the window is full or the broker is
 * not connected, at most ack_timeout_ms: then LT_ETIMEDOUT and cb is NOT called (nothing
 * sent). From inside a callback it returns LT_EAGAIN instead of blocking (LT_ECLOSED inside
 * lt_client_close). LT_ETOOBIG: larger than max_frame_bytes; LT_EIO: ZeroMQ failed. If
 * tag_out is not NULL it receives the tag (1, 2, 3, ... per client). */
lt_err lt_client_publish(lt_client *c, const uint8_t *env, size_t len, lt_client_publish_cb cb,
                         void *user, uint64_t *tag_out);

/* As lt_client_publish, with scheduled delivery: the broker stores (and acks) the record
 * at once and delivers it no sooner than deliver_at_unix_ms (0 or a past time: at once).
 * A time further ahead than the broker's max_schedule_days completes with BAD_SCHEDULE. */
lt_err lt_client_publish_at(lt_client *c, const uint8_t *env, size_t len,
                            int64_t deliver_at_unix_ms, lt_client_publish_cb cb, void *user,
                            uint64_t *tag_out);

/* Cancel the scheduled record message_id (16 bytes) that this client's agency published,
 * while it is not yet due. Waits and returns as lt_client_publish; cb completes it with
 * LT_OK (seq = the record's) or LT_ENOT_SCHEDULED (no such id of this agency, or due,
 * delivered or acked already) or another refusal. */
lt_err lt_client_cancel(lt_client *c, const uint8_t message_id[16], lt_client_publish_cb cb,
                        void *user, uint64_t *tag_out);

/* lt_client_publish with Publish.hops (docs/network.md): the brokers the envelope passed,
 * oldest first, each name borrowed and copied before returning. For links between brokers:
 * the broker refuses hops (NOT_A_PEER) unless this connection authenticated as one of its
 * peer brokers. */
lt_err lt_client_publish_hops(lt_client *c, const uint8_t *env, size_t len,
                              const char *const *hops, size_t nhops, lt_client_publish_cb cb,
                              void *user, uint64_t *tag_out);

/* Number of publishes in flight (sent, not yet completed). */
size_t lt_client_inflight(const lt_client *c);

/* Wait until no publish is in flight, pending consumer acks, naks and credits are sent, and
 * the broker has read every ack and nak sent so far: a PING sent after them has come back
 * (the broker reads a connection's frames in order). Pumps frames (callbacks run). A consumer
 * calls it before lt_client_close, so that its last acks and naks are taken: frames still
 * unread when the connection closes may be lost (docs/protocol.md 8.3). timeout_ms < 0 waits
 * as long as the publishes' own timeouts allow, and request_timeout_ms at most for that PING.
 * LT_OK when everything completed (whatever each publish's outcome; the acks and naks of a
 * connection lost meanwhile are not waited for: their deliveries come again), LT_ETIMEDOUT if
 * timeout_ms passed first, LT_EIO when ZeroMQ failed, LT_EINVAL from inside a callback. */
lt_err lt_client_flush(lt_client *c, int timeout_ms);

/* Receive and dispatch incoming frames for up to timeout_ms (0 = only what is already there,
 * < 0 = until at least one frame arrives), expire timed-out publishes, then send batched
 * acks and credit. For a client with nothing to send: publishing dispatches by itself.
 * *n_frames (may be NULL) gets the number of frames dispatched. LT_OK, LT_EIO when ZeroMQ
 * failed, LT_EINVAL from inside a callback. */
lt_err lt_client_poll(lt_client *c, int timeout_ms, unsigned *n_frames);

/* Subscribe to queue (copied) with credit > 0: the broker sends deliveries to cb(user, d).
 * replay may be NULL. Requires lt_client_auth. Asynchronous: a refusal (UNKNOWN_QUEUE,
 * ACL_DENIED, ...) arrives later at the error callback. Subscribing again to the same queue
 * replaces the callback and sends SUBSCRIBE again. LT_ENOAUTH: not authenticated; LT_EINVAL;
 * LT_EIO. At most 32 queues per client. */
lt_err lt_client_subscribe(lt_client *c, const char *queue, uint32_t credit,
                           const lt_client_replay *replay, lt_client_deliver_cb cb, void *user,
                           lt_why *why);

/* Acknowledge delivery seq of queue: the broker removes it. Batched (see the file comment)
 * and gives one credit back. LT_ENOTFOUND: not subscribed to queue. */
lt_err lt_client_ack(lt_client *c, const char *queue, uint64_t seq);

/* Refuse delivery seq of queue: the broker redelivers it no sooner than delay_ms (0 = at once)
 * until max_deliver, then dead-letters it with reason (may be NULL). Sent at once; gives one
 * credit back. LT_ENOTFOUND: not subscribed to queue; LT_EIO. */
lt_err lt_client_nak(lt_client *c, const char *queue, uint64_t seq, uint32_t delay_ms,
                     const char *reason);

/* Operator request, synchronous (matched by tag): op is "queues", "dlq.ls", "dlq.show",
 * "dlq.requeue" or "dlq.drop"; queue may be NULL for "queues"; seqs/n select messages (n = 0:
 * all, for requeue/drop); limit 0 = the broker's default. On LT_OK *json_out is the broker's
 * JSON answer, to free(). Errors: the reply's code (LT_ENOQUEUE, LT_EACL, LT_ENOAUTH ...) with
 * its reason; LT_ETIMEDOUT after request_timeout_ms; LT_EIO; LT_ENOMEM. */
lt_err lt_client_admin(lt_client *c, const char *op, const char *queue, const uint64_t *seqs,
                       size_t n, uint32_t limit, char **json_out, lt_why *why);

/* Round trip PING/PONG. LT_OK when the broker answered within timeout_ms (< 0: the request
 * timeout); LT_ETIMEDOUT otherwise. */
lt_err lt_client_ping(lt_client *c, int timeout_ms, lt_why *why);

/* Where NACKs and admin errors that answer no publish go (see lt_client_error_cb). The last
 * one is also kept: lt_client_last_error returns its code (LT_OK if none) and copies its
 * reason into why (may be NULL). */
void lt_client_set_error_cb(lt_client *c, lt_client_error_cb cb, void *user);
lt_err lt_client_last_error(const lt_client *c, lt_why *why);

/* True while the socket has a live connection to the broker. */
bool lt_client_is_connected(const lt_client *c);

/* The lt_err whose name equals the NackCode's name (the wire contract): LT_ESIG for
 * BAD_SIGNATURE, ...; LT_EPROTO for NACK_UNSPECIFIED or an unknown value. */
lt_err lt_client_err_from_nack(int nack_code);

#endif
