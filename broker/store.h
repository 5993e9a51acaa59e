/*
 * store.h - the durable store: every accepted envelope, every queue's delivery state and
 * dead letters, in one LMDB environment.
 *
 * Writes come from ONE thread (the commit thread): lt_store_begin, then any number of
 * operations (append, ack, nak, dead_letter, dlq_requeue, dlq_drop, sweep), then
 * lt_store_commit, which fsyncs before it returns (or lt_store_commit_nosync, and then
 * lt_store_sync, which may run on another thread while the next batch is built).
 * NOTHING an operation did is durable, and nothing may be acknowledged to a publisher or
 * delivered to a consumer, before lt_store_commit (or the lt_store_sync after
 * lt_store_commit_nosync) returned LT_OK.
 *
 * An operation refused for a reason of its own (duplicate, queue full, unknown queue, not
 * found, batch size budget) writes nothing and leaves the batch intact. An operation that
 * LMDB itself refuses (LT_ESTORE_FULL: map or disk full; LT_ESTORE: I/O error, corruption)
 * fails the WHOLE batch: every later operation returns that error, and so does the commit,
 * which then stores nothing. (Operations do not run in nested transactions, which cost a
 * multi-MB allocation each; such a refusal concerns every message of the moment anyway.)
 * The sweep alone keeps a nested transaction: a failing sweep leaves the batch intact.
 *
 * Reads come from any thread (the environment uses MDB_NOTLS): each read function runs one
 * short read transaction. Functions that visit entries call a callback with values that
 * point into the map: they are valid only during that call; copy what you keep. A visitor
 * must be quick (it holds a read transaction, which pins pages).
 *
 * Queues are declared by name (from the config) and then named by a small integer id
 * (qid), stable across restarts. A message is stored once however many queues it was
 * routed to; it is deleted when no queue references it any more (acked or dropped, and
 * past the queue's retention). The message's sequence number (seq) is global, starts at 1
 * and only grows, across restarts too.
 *
 * Times are milliseconds since the Unix epoch, given by the caller (testable; one clock).
 */
#ifndef LT_BROKER_STORE_H
#define LT_BROKER_STORE_H

#include "err.h"
#include "procedure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_store lt_store;

#define LT_STORE_ID_LEN 16          /* message id bytes (UUIDv7 or content-derived) */
#define LT_STORE_QUEUE_NAME_MAX 200 /* bytes of a queue name */
#define LT_STORE_REASON_MAX 200     /* bytes of a dead-letter reason kept (longer: cut) */
#define LT_STORE_MAX_QUEUES 65536   /* queues per environment */
#define LT_STORE_MAX_TARGETS 4096   /* queues one message may be routed to */
#define LT_STORE_SOURCE_MAX 255     /* bytes of a source agency id */
#define LT_STORE_HASH_LEN 32        /* SHA-256 */

/* What names a record for dedup, and what tells two records under one name apart. Message
 * ids are chosen by publishers, so an id is unique only within its source agency: the key
 * is (source, id). The same key again with the same payload hash and signer is the same
 * record (a resend: a duplicate); with another payload hash or another signer it is
 * another record under a name already taken: refused (LT_EID_CONFLICT), never acked as a
 * duplicate, so nobody can suppress a record by reusing its id. A resend signed by a
 * renewed certificate is such a conflict too: (source, id) names one signed record, and the
 * reason tells the publisher that the stored one has another signer. All borrowed. */
typedef struct lt_store_msgkey {
    const uint8_t *id;             /* LT_STORE_ID_LEN bytes */
    const char *source;            /* verified source agency id, 1..LT_STORE_SOURCE_MAX bytes */
    const uint8_t *payload_sha256; /* LT_STORE_HASH_LEN bytes (Header.payload_sha256, checked) */
    const uint8_t *signer_key_id;  /* LT_STORE_HASH_LEN bytes (SHA-256 of the signer's cert) */
} lt_store_msgkey;

typedef struct lt_store_opts {
    const char *dir;          /* environment directory; created (0700) if missing */
    uint64_t map_size;        /* bytes; 0 = 64 GiB. Sparse: costs disk only as it fills */
    unsigned max_readers;     /* concurrent read transactions; 0 = 126 */
    int64_t dedup_window_ms;  /* a message id is remembered this long; 0 = 24 h */
} lt_store_opts;

/* Open (creating if needed) the store in opts->dir. Clears stale reader slots left by
 * dead processes (mdb_reader_check) and loads queue counters. On LT_OK *out is the store,
 * owned by the caller (lt_store_close). LT_EIO: directory unusable; LT_ESTORE: LMDB
 * refused (corrupt, version mismatch, lock held...) with its reason in why; LT_ENOMEM. */
lt_err lt_store_open(lt_store **out, const lt_store_opts *opts, lt_why *why);

/* Abort any open batch and close the environment. Every reader must have finished.
 * Accepts NULL; clears *s. */
void lt_store_close(lt_store **s);

/* ---- queues (writer thread, outside a batch) ------------------------------------------ */

typedef struct lt_store_queue_limits {
    uint64_t max_depth;     /* pending (unacked) messages; 0 = unlimited */
    uint64_t max_bytes;     /* pending envelope bytes; 0 = unlimited */
    int64_t retention_ms;   /* keep a message for replay this long after it was stored
                             * (and at least until acked); 0 = delete at ack */
} lt_store_queue_limits;

/* Find or create queue name and (re)apply its limits. Runs and commits its own write
 * transaction: call it outside begin/commit, from the writer thread. On LT_OK *qid is the
 * queue's id (the same across restarts). LT_EINVAL: empty or too long name; LT_EAGAIN:
 * called inside a batch; LT_ESTORE / LT_ESTORE_FULL: LMDB failed, nothing changed. */
lt_err lt_store_queue_declare(lt_store *s, const char *name, const lt_store_queue_limits *lim,
                              uint32_t *qid, lt_why *why);

/* Id of queue name. Any thread. LT_ENOQUEUE if it was never declared. */
lt_err lt_store_queue_find(lt_store *s, const char *name, uint32_t *qid);

typedef struct lt_store_queue_stats {
    uint32_t qid;
    char name[LT_STORE_QUEUE_NAME_MAX + 1];
    uint64_t depth;           /* pending messages (not acked, not dead-lettered) */
    uint64_t bytes;           /* their envelope bytes */
    uint64_t dlq_depth;       /* messages in the dead-letter queue */
    uint64_t dlq_bytes;
    int64_t oldest_ms;        /* stored time of the oldest pending message; 0 if none */
    uint64_t first_seq;       /* seq of the oldest pending message; 0 if none */
    uint64_t last_seq;        /* seq of the newest pending message; 0 if none */
} lt_store_queue_stats;

/* Stats of queue qid as of the last commit. Any thread. LT_ENOQUEUE; LT_ESTORE. */
lt_err lt_store_queue_stats_get(lt_store *s, uint32_t qid, lt_store_queue_stats *out,
                                lt_why *why);

/* Call visit for each declared queue, in name order, with its stats (as of the last
 * commit); stop early when visit returns non-zero. Any thread. LT_ESTORE. */
typedef int (*lt_store_queue_visit)(void *arg, const lt_store_queue_stats *st);
lt_err lt_store_queue_list(lt_store *s, lt_store_queue_visit visit, void *arg, lt_why *why);

/* ---- the write batch (writer thread only) --------------------------------------------- */

/* Start a batch (one LMDB write transaction). LT_EAGAIN: a batch is already open;
 * LT_ESTORE: LMDB refused, or a flush failed earlier (lt_store_sync). */
lt_err lt_store_begin(lt_store *s, lt_why *why);

/* Make the batch durable (fsync) and publish it to readers. On LT_OK every operation of
 * the batch that returned LT_OK is on disk. When the commit fails NOTHING of the batch is
 * stored (the sequence numbers it handed out will be handed out again): LT_ESTORE_FULL (map
 * or disk full), LT_ESTORE (I/O error...), or the error that failed an operation of the
 * batch, with the reason. When the flush after it fails: LT_ESTORE, durability unknown,
 * and the store refuses writes from then on (see lt_store_sync). The batch is closed
 * either way. = lt_store_commit_nosync + lt_store_sync. */
lt_err lt_store_commit(lt_store *s, lt_why *why);

/* Commit the batch, its data pages fsynced, but its root (LMDB's meta page) not yet
 * flushed: a crash may still undo it (never corrupt it). Nothing of it may be acknowledged
 * before lt_store_sync(s, *ticket) returned LT_OK; the next batch may begin at once. Its
 * new messages are hidden from lt_store_pending and lt_store_replay until then. On LT_OK
 * *ticket identifies the batch. Errors as lt_store_commit (nothing stored). Writer thread. */
lt_err lt_store_commit_nosync(lt_store *s, uint64_t *ticket, lt_why *why);

/* Make every batch committed before this call durable (fsync), then let readers see the
 * messages of the batches up to ticket. Any thread, also while the writer builds the next
 * batch; calls are not serialized against each other (each is one fsync). LT_ESTORE: the
 * fsync failed (now or in an earlier call): the durability of every batch committed since
 * the last good sync is unknown (acknowledge none of them), their messages stay hidden,
 * and the store is read-only from then on: lt_store_begin and every later lt_store_sync
 * refuse with LT_ESTORE until the store is closed and reopened. */
lt_err lt_store_sync(lt_store *s, uint64_t ticket, lt_why *why);

/* Whether the store accepts writes: false (with the reason in why) once a flush has failed
 * (see lt_store_sync, for good), or while it is full: from a commit refused LT_ESTORE_FULL
 * until the next commit that succeeds. Any thread; for /readyz. */
bool lt_store_is_writable(lt_store *s, lt_why *why);

/* Drop the batch: nothing of it is stored. Accepts a store with no open batch. */
void lt_store_abort(lt_store *s);

/* Where an envelope's signer certificate lies inside it, so the store keeps the certificate
 * once per signer instead of in every message. All borrowed for the call. */
typedef struct lt_store_cert {
    const uint8_t *key_id; /* 32 bytes: SHA-256 of der (Header.signer_key_id), verified */
    const uint8_t *der;    /* the certificate, inside the envelope */
    size_t der_len;
    size_t field_off;      /* the whole Envelope.certificate field (tag 5, length, der) is */
    size_t field_len;      /* env[field_off .. field_off + field_len) */
} lt_store_cert;

/* As lt_store_append, and the envelope is stored without its certificate field, the
 * certificate once under its key id: every read (pending, get, dlq, replay) returns the
 * envelope byte for byte as received, certificate put back. The caller vouches that der's
 * SHA-256 is key_id (the verifier checked it). When cert is NULL or does not describe a
 * field that can be put back byte for byte (tag 5, minimal length varint, der), the
 * envelope is stored as it is. Same errors as lt_store_append. */
lt_err lt_store_append_cert(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                            size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                            int64_t now_ms, uint64_t *seq, bool *dup, lt_why *why);

/* Store env (the envelope exactly as received, len bytes, borrowed) for the queues
 * qids[0..nq) (distinct, declared; the router's answer), under key (see lt_store_msgkey).
 *  - the same record seen within the dedup window (in an earlier batch or this one):
 *    stores nothing, *seq = the original's seq, *dup = true, LT_OK.
 *  - another record under the same (source, id) within the window: LT_EID_CONFLICT (why
 *    names the stored seq and what differs), nothing written, the batch intact.
 *  - otherwise the message gets the next seq, stored_ms = now_ms (raised to the last
 *    stored time if the clock went back, so time order = seq order), *dup = false.
 * All or nothing across the queues. Refusals that write nothing and keep the batch:
 * LT_EQUEUE_FULL: a queue is at max_depth/max_bytes (why names it); LT_ENOQUEUE: a qid was
 * never declared; LT_EINVAL: nq is 0 or over LT_STORE_MAX_TARGETS, or len is 0;
 * LT_EINVAL: key's source is empty or too long;
 * LT_EAGAIN: no batch open, or the batch is at its size budget (half LMDB's dirty-page
 * limit; a message alone in a batch always fits): commit, then retry this message in the
 * next batch. Refusals that fail the whole batch (see the top): LT_ESTORE_FULL (map or
 * disk full), LT_ESTORE. Only a failure of lt_store_commit loses an LT_OK. */
lt_err lt_store_append(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                       size_t nq, const void *env, size_t len, int64_t now_ms, uint64_t *seq,
                       bool *dup, lt_why *why);

/* As lt_store_append_cert, and with due_ms > the stored time the message is SCHEDULED: it
 * is stored and counted in its queues at once (durable when the batch is), but each queue
 * entry has delivery_count 0 and not_before_ms = due_ms (lt_store_entry_is_scheduled) and
 * waits in the schedule until lt_store_sched_promote makes it deliverable. due_ms <= the
 * stored time (0 included) is an ordinary append. Same errors as lt_store_append. */
lt_err lt_store_append_at(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                          size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                          int64_t now_ms, int64_t due_ms, uint64_t *seq, bool *dup, lt_why *why);

/* The hops a message arrived with (Publish.hops, docs/network.md), kept with it and given
 * back with every read (lt_store_entry.hops), in the form the store keeps them: one byte n,
 * then n broker names, each NUL-terminated. At most LT_STORE_HOPS_MAX names of at most 64
 * bytes each. */
#define LT_STORE_HOPS_MAX 16
#define LT_STORE_HOPS_BYTES (1 + LT_STORE_HOPS_MAX * 65)

/* Encode hops[0..n) into out (LT_STORE_HOPS_BYTES bytes); *len = the bytes used. LT_EINVAL
 * when n > LT_STORE_HOPS_MAX or a name is empty or longer than 64 bytes. Pure. */
lt_err lt_store_hops_encode(const char *const *hops, size_t n, uint8_t *out, size_t *len);

/* Point names[] at the hops in the block p[0..len) (as lt_store_hops_encode wrote it; the
 * names point into p); their count, or -1 if the block is malformed. Pure. */
int lt_store_hops_decode(const uint8_t *p, size_t len, const char *names[LT_STORE_HOPS_MAX]);

/* As lt_store_append_at, and the message keeps hops (hops_len bytes from
 * lt_store_hops_encode; hops_len 0: none). LT_EINVAL: hops malformed. Same errors
 * otherwise. */
lt_err lt_store_append_hops(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                            size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                            const uint8_t *hops, size_t hops_len, int64_t now_ms, int64_t due_ms,
                            uint64_t *seq, bool *dup, lt_why *why);

/* Called for each queue entry lt_store_sched_promote made deliverable. */
typedef void (*lt_store_sched_visit)(void *arg, uint32_t qid, uint64_t seq);

/* In the open batch, make the scheduled entries due at or before now_ms deliverable, the
 * earliest due first, at most max of them: each leaves the schedule and becomes an
 * ordinary pending entry (not_before 0, delivery_count 0); visit (may be NULL) is called for
 * each. *next_due (may be NULL) = the earliest due time left in the schedule (INT64_MAX if
 * none). LT_ESTORE(_FULL) fail the batch; LT_EAGAIN (no batch). */
lt_err lt_store_sched_promote(lt_store *s, int64_t now_ms, size_t max,
                              lt_store_sched_visit visit, void *arg, int64_t *next_due,
                              lt_why *why);

/* Cancel message (source, id) where it is still scheduled, in the open batch: it leaves
 * those queues (as an ack would) and the schedule. *seq = its seq; *ncancelled (may be
 * NULL) = in how many queues. LT_ENOT_SCHEDULED (why says which): source stored no such
 * id (within the dedup window), or it is due, delivered or acked everywhere already.
 * LT_ESTORE(_FULL) fail the batch; LT_EAGAIN (no batch). */
lt_err lt_store_sched_cancel(lt_store *s, const char *source, const uint8_t *id, int64_t now_ms,
                             uint64_t *seq, size_t *ncancelled, lt_why *why);

/* Earliest due time in the committed schedule, INT64_MAX if none. Any thread. */
lt_err lt_store_sched_next(lt_store *s, int64_t *due, lt_why *why);

/* How many queue entries are scheduled (committed state). Any thread. */
lt_err lt_store_sched_count(lt_store *s, uint64_t *n, lt_why *why);

/* Consumer acked seq on queue qid: it leaves the queue (kept for replay if the queue has
 * a retention; the message itself is deleted when no queue needs it). LT_ENOTFOUND: not
 * pending on that queue (already acked, dead-lettered or never there): harmless.
 * LT_ESTORE(_FULL) fail the batch, LT_EAGAIN (no batch) as append. */
lt_err lt_store_ack(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms, lt_why *why);

/* Record a delivery attempt's outcome for a pending entry: delivery_count (deliveries so
 * far) and not_before_ms (do not deliver again before; 0 = at once). For a nak, for an
 * ack_wait expiry, and (optionally) when delivering, so the count survives a crash.
 * LT_ENOTFOUND: not pending there. LT_ESTORE(_FULL), LT_EAGAIN. */
lt_err lt_store_nak(lt_store *s, uint32_t qid, uint64_t seq, uint32_t delivery_count,
                    int64_t not_before_ms, lt_why *why);

/* Move pending seq of qid into the queue's dead-letter queue with delivery_count and
 * reason (a line of text, borrowed, cut at LT_STORE_REASON_MAX bytes), at now_ms. The
 * envelope stays stored. LT_ENOTFOUND: not pending. LT_ESTORE(_FULL), LT_EAGAIN. */
lt_err lt_store_dead_letter(lt_store *s, uint32_t qid, uint64_t seq, uint32_t delivery_count,
                            const char *reason, int64_t now_ms, lt_why *why);

/* Put dead letter seq of qid back in the queue as pending with delivery_count 0 and no
 * delay (it keeps its seq, so it is delivered in seq order with the others). Not subject
 * to max_depth (it was accepted once). LT_ENOTFOUND: not in the DLQ. LT_ESTORE(_FULL),
 * LT_EAGAIN. */
lt_err lt_store_dlq_requeue(lt_store *s, uint32_t qid, uint64_t seq, lt_why *why);

/* Delete dead letter seq of qid (as an ack would). LT_ENOTFOUND: not in the DLQ. */
lt_err lt_store_dlq_drop(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms,
                         lt_why *why);

/* Expire, at most budget entries' worth of work: message ids older than the dedup window,
 * and acked messages past their queue's retention (deleting envelopes no queue needs) -
 * or, while the store is full, before it (lt_store_retention_yielded).
 * *more (if not NULL) = true when expired work remains (call again soon). The sweep is one
 * step of the batch: on failure none of it is kept and the batch's other operations are
 * intact (unless LMDB fails to fold the sweep into the batch: then the batch fails).
 * LT_ESTORE(_FULL), LT_EAGAIN. */
lt_err lt_store_sweep(lt_store *s, int64_t now_ms, size_t budget, bool *more, lt_why *why);

/* Acked messages dropped before their queue's retention ran out because the store was
 * full (retention yields to live data: while a commit fails for want of space, acks and
 * the sweep drop acked history at once, oldest first within each queue). Any thread. */
uint64_t lt_store_retention_yielded(lt_store *s);

/* Seq the next append will get (1 on an empty store). Writer thread. */
uint64_t lt_store_next_seq(const lt_store *s);

/* ---- reads (any thread) ----------------------------------------------------------------- */

typedef enum lt_store_state {
    LT_STORE_PENDING = 1, /* in the queue, not acked */
    LT_STORE_DEAD = 2,    /* in the queue's dead-letter queue */
    LT_STORE_DONE = 3,    /* acked or dropped, retained for replay */
} lt_store_state;

/* One entry as a visitor sees it. Pointers are borrowed: valid during the visit only. */
typedef struct lt_store_entry {
    uint32_t qid;
    uint64_t seq;
    lt_store_state state;
    int64_t stored_ms;
    uint32_t delivery_count;  /* PENDING, DEAD */
    int64_t not_before_ms;    /* PENDING */
    int64_t moved_ms;         /* DEAD: when it was dead-lettered */
    const char *reason;       /* DEAD: NUL-terminated; "" otherwise */
    const uint8_t *id;        /* LT_STORE_ID_LEN bytes: the message id */
    const uint8_t *env;       /* the envelope exactly as received */
    size_t env_len;
    const char *hops[LT_STORE_HOPS_MAX]; /* the hops it arrived with (NUL-terminated, valid */
    size_t nhops;                        /* as long as env), oldest first; usually none */
} lt_store_entry;

/* A pending entry that waits for its due time (published with one): not deliverable until
 * lt_store_sched_promote makes it so. Delivery steps over it; the schedule brings it back. */
static inline bool lt_store_entry_is_scheduled(const lt_store_entry *e)
{
    return e->state == LT_STORE_PENDING && e->delivery_count == 0 && e->not_before_ms != 0;
}

/* Return 0 to go on, non-zero to stop (that value is not an error). */
typedef int (*lt_store_visit)(void *arg, const lt_store_entry *e);

/* Visit the pending entries of qid with seq > after_seq, in seq order, at most max of
 * them (0 = no limit), including delayed ones (the visitor sees not_before_ms and may
 * skip); messages of a batch committed but not yet synced are not visited. *last (if not NULL) = seq of the last entry visited (after_seq if none), to page
 * on. LT_ENOQUEUE; LT_ESTORE. */
lt_err lt_store_pending(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                        lt_store_visit visit, void *arg, uint64_t *last, lt_why *why);

/* As lt_store_pending, without reading the messages: the visitor gets each entry's seq,
 * state, delivery_count and not_before_ms; id, env and hops are NULL / 0, stored_ms 0. For
 * planning what to deliver, which needs the counts and not the bytes. */
lt_err lt_store_pending_keys(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                             lt_store_visit visit, void *arg, uint64_t *last, lt_why *why);

/* Visit one message as queue qid holds it (pending, dead or retained). LT_ENOTFOUND (also
 * for a message of a batch committed but not yet synced). */
lt_err lt_store_get(lt_store *s, uint32_t qid, uint64_t seq, lt_store_visit visit, void *arg,
                    lt_why *why);

/* lt_store_get for seqs[0..n), in that order, in one read transaction: each message found
 * is visited (until the visitor returns non-zero); one that is not there, not yet durable,
 * or unreadable is skipped without a visit (the visitor tells them apart by e->seq).
 * LT_ENOQUEUE; LT_ESTORE when the transaction cannot begin (nothing visited). */
lt_err lt_store_get_many(lt_store *s, uint32_t qid, const uint64_t *seqs, size_t n,
                         lt_store_visit visit, void *arg, lt_why *why);

/* Visit the dead letters of qid with seq > after_seq, in seq order, at most max (0 = all).
 * *last as lt_store_pending. LT_ENOQUEUE; LT_ESTORE. */
lt_err lt_store_dlq_list(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                         lt_store_visit visit, void *arg, uint64_t *last, lt_why *why);

/* Replay: visit every message queue qid still holds (pending, dead, or acked but within
 * retention) with seq >= from_seq, in seq order, at most max (0 = all). *last as
 * lt_store_pending (from_seq - 1 if none). A queue with retention 0 replays only what is
 * not yet acked. LT_ENOQUEUE; LT_ESTORE. */
lt_err lt_store_replay(lt_store *s, uint32_t qid, uint64_t from_seq, size_t max,
                       lt_store_visit visit, void *arg, uint64_t *last, lt_why *why);

/* The first seq stored at or after at_ms (stored times grow with seq): replay a queue
 * "from a time" with lt_store_replay(from_seq = *seq). When nothing was stored since,
 * *seq = the last committed seq + 1 (a replay from it visits nothing yet). LT_ENOQUEUE;
 * LT_ESTORE. */
lt_err lt_store_seq_at(lt_store *s, uint32_t qid, int64_t at_ms, uint64_t *seq, lt_why *why);

/* ---- dossiers of procedures (store_dossier.c) ------------------------------------------ */

/* Open (creating) the dossier databases in a write transaction of its own: call it once,
 * before any batch, when the broker enforces procedures. Until then the calls below answer
 * LT_ENOTFOUND ("no procedures"). LT_EAGAIN: a batch is open; LT_ESTORE, LT_ESTORE_FULL. */
lt_err lt_store_dossier_open(lt_store *s, lt_why *why);

/* The state of dossier code as the open batch sees it (earlier events of the same batch
 * included). LT_ENOTFOUND: no such dossier yet; LT_EINVAL: code empty or longer than
 * LT_PROC_DOSSIER_MAX; LT_ESTORE (fails the batch). Writer thread, inside a batch. */
lt_err lt_store_dossier_get(lt_store *s, const char *code, lt_dossier_state *st, lt_why *why);

/* The event that moved a dossier, as the trace keeps it. env is borrowed for the call. */
typedef struct lt_store_dossier_ev {
    uint64_t seq;          /* the message's seq (lt_store_append) */
    int64_t event_ms;      /* when it happened (the event's own time) */
    int64_t stored_ms;     /* when the broker stored it */
    const uint8_t *env;    /* the envelope exactly as received (certificate included) */
    size_t env_len;
} lt_store_dossier_ev;

/* Write dossier code's new state st (prev: the state it replaces, NULL for a new dossier),
 * add ev to its trace and move it in the deadline index (an open dossier with a deadline is
 * indexed by it; a closed one is not). In the open batch: durable with it, gone if it
 * aborts. LT_EINVAL (code); LT_ESTORE / LT_ESTORE_FULL fail the batch. Writer thread. */
lt_err lt_store_dossier_put(lt_store *s, const char *code, const lt_dossier_state *prev,
                            const lt_dossier_state *st, const lt_store_dossier_ev *ev,
                            lt_why *why);

/* Would lt_store_append take key as a duplicate of a record it already holds (a resend, to
 * be acked again, not judged again)? LT_OK with *dup; LT_ESTORE. Writer thread, in a batch. */
lt_err lt_store_dossier_is_duplicate(lt_store *s, const lt_store_msgkey *key, int64_t now_ms,
                                     bool *dup, lt_why *why);

/* One event of a dossier's trace as a reader sees it; env points into the map (valid
 * during the visit only). step and agency are the step and agency it was accepted as. */
typedef struct lt_store_dossier_event {
    uint64_t seq;
    int64_t event_ms, stored_ms;
    int64_t step_started_ms, step_deadline_ms; /* of the step it belongs to, as of it */
    uint8_t status;
    char step[LT_PROC_STEP_ID_MAX + 1];
    char agency[LT_AGENCY_ID_MAX];
    const uint8_t *env;
    size_t env_len;
} lt_store_dossier_event;
typedef int (*lt_store_dossier_visit)(void *arg, const lt_store_dossier_event *e);
typedef int (*lt_store_dossier_due_visit)(void *arg, const char *code,
                                          const lt_dossier_state *st);

/* Dossier code's state into *st, then visit its events in seq order (visit may be NULL;
 * non-zero from it stops). Any thread (one read transaction: keep visitors quick).
 * LT_ENOTFOUND (no such dossier, or no procedures); LT_EINVAL; LT_ESTORE. */
lt_err lt_store_dossier_read(lt_store *s, const char *code, lt_dossier_state *st,
                             lt_store_dossier_visit visit, void *arg, lt_why *why);

/* Visit the open dossiers whose current step is due before before_ms, earliest deadline
 * first, at most max (0 = all). Any thread. LT_ENOTFOUND (no procedures); LT_ESTORE. */
lt_err lt_store_dossier_due(lt_store *s, int64_t before_ms, size_t max,
                            lt_store_dossier_due_visit visit, void *arg, lt_why *why);

#endif
