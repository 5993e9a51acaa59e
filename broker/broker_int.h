/*
 * broker_int.h - what broker.c, frontend.c, verifier.c, committer.c and delivery.c share:
 * the daemon object, the publish ring, the committer's op list, peers, queues,
 * subscriptions. Each struct says which thread owns it.
 *
 * The publish ring. Every PUBLISH (and AUTH, which needs signature math too) takes one
 * slot, in arrival order. Four cursors only grow; slot i lives at slots[i & mask]:
 *
 *      tail          done            commit        claim          head
 *       |  committed   |  (committer     |  verified  |  verifying   |  filled,
 *       |  replies to  |   working on)   |  or not    |              |  waiting
 *       |  send (loop) |                 |            |              |
 *
 *   head   loop fills slots[head..] then publishes them (under mu)
 *   claim  verifiers claim batches (under mu), verify outside the lock, mark `verified`
 *   commit committer takes the run of verified slots starting here (in order, so every
 *          publisher's messages are stored in the order they arrived); it moves past a
 *          batch once the batch is committed (lt_store_commit_nosync) and hands it to the
 *          sync thread (`synced`: up to where batches wait for their flush)
 *   done   the sync thread publishes it after lt_store_sync made the batches durable
 *          (under mu), then wakes the loop (uv_async_send); the loop sends
 *          ACK/NACK/WELCOME for [tail, done)
 *   tail   loop-private: slots before it are free again
 * The loop stops reading the socket while the ring is full (count or bytes): back-pressure
 * rather than loss. Slots keep their buffers (up to LT_SLOT_KEEP bytes) for reuse, so the
 * hot path does not allocate.
 */
#ifndef LT_BROKER_BROKER_INT_H
#define LT_BROKER_BROKER_INT_H

#include "acl.h"
#include "admin.h"
#include "broker.h"
#include "broker_config.h"
#include "delivery_int.h"
#include "dossier.h"
#include "envelope.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "pki.h"
#include "router.h"
#include "store.h"

#include <lienthong/v1/envelope.pb-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LT_PEER_ID_MAX 255 /* ZeroMQ routing ids are at most 255 bytes */
#define LT_NONCE_LEN 32
#define LT_RING_SLOTS 8192         /* publishes between the socket and the ACK, at most */
#define LT_RING_BYTES (256u << 20) /* and their envelope bytes, at most */
#define LT_SLOT_KEEP (64u << 10)   /* a slot keeps a buffer this big for the next one */
#define LT_MAX_TARGETS 1024        /* queues one message may be routed to */
/* The network (docs/network.md): a publish whose hops hold LT_HOP_LIMIT names or more is
 * refused HOP_LIMIT, so a record crosses at most LT_HOP_LIMIT - 1 links (8 brokers on its
 * path, the origin included). lt_slot.relay_peer of this broker's own links. */
#define LT_HOP_LIMIT 8
#define LT_LINK_SELF (-2)
#define LT_LINK_PEER 0 /* lt_slot.relay_peer of a peer broker's session */
/* In-flight budgets (envelope bytes between the socket and the ACK). A connection that has
 * not proved its agency may hold at most LT_INFLIGHT_UNAUTH_CONN, and all such connections
 * together LT_INFLIGHT_UNAUTH_TOTAL, so they can never fill the ring (LT_RING_BYTES) that
 * authenticated publishers use; an authenticated connection at most LT_INFLIGHT_AUTH_CONN.
 * Each is raised to max_frame_bytes when smaller, so one frame always fits an idle
 * connection. A publish over its budget is refused BUSY at once (no bytes kept). */
#define LT_INFLIGHT_UNAUTH_CONN (8u << 20)
#define LT_INFLIGHT_UNAUTH_TOTAL (32u << 20)
#define LT_INFLIGHT_AUTH_CONN (64u << 20)

enum lt_slot_kind { LT_SLOT_PUBLISH = 1, LT_SLOT_AUTH = 2, LT_SLOT_REJECT = 3 };

/* One publish (or AUTH) on its way. Fields are written by one stage and read by the next
 * after the ring mutex handed the slot over. */
typedef struct lt_slot {
    /* loop */
    uint8_t kind;
    uint8_t peer_len;
    uint8_t peer[LT_PEER_ID_MAX];
    uint64_t tag;
    uint64_t conn;    /* the connection's number (lt_peer.conn); 0: none */
    uint64_t session; /* AUTH: the session epoch it answers (lt_peer.session) */
    size_t charged;   /* bytes counted against the connection's in-flight budget */
    bool charged_unauth; /* ... and against the unauthenticated total */
    uint8_t *buf; /* PUBLISH: the envelope; AUTH: nonce || certificate || signature */
    size_t len, cap;
    size_t cert_len, sig_len; /* AUTH */
    uint64_t t_in_ns;         /* arrival (uv_hrtime) */
    /* verifiers */
    bool verified;
    lt_err err;
    lt_why why;
    uint8_t msg_id[LT_STORE_ID_LEN];
    int agency_slot; /* metrics slot of the source agency */
    uint32_t *qids;
    size_t nq, qcap;
    char agency[LT_AGENCY_ID_MAX]; /* AUTH: the proven agency; PUBLISH: the source */
    uint8_t payload_sha256[32];    /* PUBLISH: with agency and key_id, the dedup key */
    bool has_cert;           /* verifiers: the certificate field, for the store */
    bool batched_ack;        /* PUBLISH: its ACK may go in an Acks frame (lt_fe_on_done) */
    uint8_t key_id[32];      /* PUBLISH: the signer's (verified) */
    size_t cert_field_off, cert_field_len, cert_der_off, cert_der_len;
    lt_dossier_slot *dossier; /* verifiers -> committer: a dossier event (dossier.h) */
    /* committer */
    uint64_t seq;
    bool dup;
    int64_t due_ms; /* PUBLISH: deliver not before (0: now) */
    /* loop: LT_LINK_PEER when a peer broker's session published it (relay_agency: that
     * peer's identity; the verifiers apply the relay patterns of the ACL in force), -1 none,
     * LT_LINK_SELF this broker's own identity */
    int relay_peer;
    char relay_agency[LT_AGENCY_ID_MAX];
    size_t hops_len; /* loop: its Publish.hops (lt_store_hops_encode) at buf + len */
    char zap_user[LT_AGENCY_ID_MAX]; /* AUTH over CURVE: the agency its key is bound to
                                      * (ZAP User-Id), which the AUTH must prove; "" else */
} lt_slot;

/* Work for the committer besides publishes. Written by the loop, applied by the
 * committer in one batch, some returned to the loop when done. */
enum lt_op_kind {
    LT_OP_ACK = 1,     /* consumer acked (qid, seq) */
    LT_OP_NAK,         /* record (qid, seq) delivery count and not_before */
    LT_OP_DEAD,        /* move (qid, seq) to the DLQ with count and reason */
    LT_OP_DLQ_REQUEUE, /* admin: move (qid, seqs) back; returned to the loop */
    LT_OP_DLQ_DROP,    /* admin: delete (qid, seqs) from the DLQ; returned to the loop */
    LT_OP_SCHED_DUE,   /* sched: make what is due by `now` deliverable; returned to the loop */
    LT_OP_CANCEL,      /* sched: cancel (agency, msg_id) where scheduled; returned to the loop */
    LT_OP_DELIVER,     /* delivery: store counts[i] for (qid, seqs[i]) before they are sent */
};

typedef struct lt_op {
    uint8_t kind;
    uint32_t qid;
    uint32_t count;
    uint64_t seq;
    int64_t when;       /* ms: ack time, not_before, moved time */
    char *reason;       /* DEAD: malloc'ed, freed by the committer */
    struct lt_job *job; /* admin ops */
} lt_op;

/* A request the committer carries out and returns to the loop with results: an admin DLQ
 * request or deliveries waiting for their counts (delivery.c), or the schedule's promotions
 * and cancels (schedule.c). peer/peer_len/conn: the connection that asked (DLQ, CANCEL) or
 * is to receive (DELIVER). */
typedef struct lt_job {
    struct lt_job *next;
    uint8_t kind; /* LT_OP_DLQ_REQUEUE / LT_OP_DLQ_DROP / LT_OP_SCHED_DUE / LT_OP_CANCEL */
    uint32_t qid;
    uint64_t tag;
    uint8_t peer_len;
    uint8_t peer[LT_PEER_ID_MAX];
    uint64_t conn;  /* lt_peer.conn of the connection that asked */
    uint64_t *seqs; /* DLQ in: which; out: done[i] tells. SCHED_DUE out: what became due */
    bool *ok;
    uint32_t *qids; /* SCHED_DUE out: the queue of each seqs[i] */
    uint32_t *counts; /* DELIVER in: the delivery number of each seqs[i] */
    size_t n, cap;
    int64_t now;      /* SCHED_DUE in: promote what is due by then */
    int64_t next_due; /* SCHED_DUE out: the earliest due time left (INT64_MAX: none) */
    char agency[LT_AGENCY_ID_MAX];     /* CANCEL in: the session's agency */
    uint8_t msg_id[LT_STORE_ID_LEN];   /* CANCEL in */
    uint64_t seq;                      /* CANCEL out */
    lt_err err; /* the operation's, else the batch's commit */
    lt_why why;
} lt_job;

typedef struct lt_oplist {
    lt_op *v;
    size_t n, cap;
} lt_oplist;

typedef struct lt_ring {
    pthread_mutex_t mu;
    pthread_cond_t cv_verify; /* verifiers: head moved, or stop */
    pthread_cond_t cv_commit; /* committer: a slot verified, ops queued, or stop */
    pthread_cond_t cv_sync;   /* sync thread: a batch committed, or stop */
    lt_slot *slots;
    size_t cap, mask;
    uint64_t head, claim, commit, done; /* under mu (commit: committer only) */
    uint64_t tail;                      /* loop only */
    uint64_t fill;                      /* loop only: slots filled, not yet published */
    size_t bytes;                       /* loop only: envelope bytes in [tail, fill) */
    lt_oplist ops;                      /* under mu: loop appends, committer swaps */
    lt_job *jobs_done;                  /* under mu: sync thread appends, loop takes */
    uint64_t to_sync;                   /* under mu: committed batches end here (>= done) */
    uint64_t sync_ticket;               /* under mu: their lt_store_sync ticket */
    int64_t sync_commit_ns;             /* under mu: their commits' time, for the metric */
    lt_job *jobs_sync;                  /* under mu: jobs of committed batches */
    bool stop_verify, stop_commit, stop_sync;
    bool committer_busy; /* under mu: the committer holds a batch */
} lt_ring;

typedef struct lt_peer lt_peer;
typedef struct lt_queue lt_queue;

/* A consumer's subscription to one queue. Loop thread. */
typedef struct lt_sub {
    lt_peer *peer;
    lt_queue *q;
    uint32_t credit;              /* deliveries it may still receive */
    bool replay;                  /* a replay stream: needs no acks */
    bool batched;                 /* takes Delivers frames (Subscribe.batched_deliver) */
    bool replay_live;             /* caught up with the end of the queue */
    uint64_t replay_next;         /* next seq to replay */
    struct lt_sub *qnext, *qprev; /* in q's list */
    struct lt_sub *pnext;         /* in peer's list */
} lt_sub;

enum lt_peer_state { LT_PEER_NEW = 0, LT_PEER_CHALLENGED, LT_PEER_AUTHING, LT_PEER_AUTHED };

/* One connection that sent a frame: its session (what its AUTH proved), the subscriptions
 * it holds, and its in-flight bytes. A session is bound to the connection, never to the
 * routing id alone: the routing id is the client's choice (ZMQ_ROUTING_ID), so the peer
 * also records the connection's file descriptor (ZMQ_SRCFD of its frames) and ends when
 * ZeroMQ reports that connection closed (see lt_fe_sessions_sync), or when a frame with its
 * routing id arrives over another connection. Loop thread. */
struct lt_peer {
    uint8_t id_len;
    uint8_t id[LT_PEER_ID_MAX];
    uint8_t state;
    int fd;          /* the connection (ZMQ_SRCFD); -1 if unknown */
    bool closed;     /* ZeroMQ reported the connection closed, or a send found no route to
                      * it (lt_fe_peer_close): frames it sent before are still taken (acks,
                      * naks), nothing is delivered to it; dropped once the socket has been
                      * read empty or a new connection shook hands */
    uint64_t conn;    /* unique number of this peer object, for logs and ring slots */
    uint64_t session; /* bumped by every HELLO: an AUTH answers only the epoch it was sent in */
    size_t inflight;  /* envelope bytes of its publishes in the ring */
    char agency[LT_AGENCY_ID_MAX]; /* NEW: empty; CHALLENGED/AUTHING: claimed in HELLO;
                                    * AUTHED: exactly what the verified AUTH proved */
    uint8_t nonce[LT_NONCE_LEN];
    /* CURVE: the connection's key (Z85, ZAP metadata LT_ZAP_KEY_PROPERTY) and the agency
     * ZAP bound it to, "" on the plaintext endpoint; key_refused once a reload no longer
     * accepts that key: the connection is being closed, its HELLO and PUBLISH are refused */
    char curve_key[41];
    char zap_user[LT_AGENCY_ID_MAX];
    bool key_refused;
    int64_t last_seen; /* uv_now */
    lt_sub *subs;
    struct lt_peer *hnext; /* hash chain */
};

/* One queue's delivery side. Loop thread. */
struct lt_queue {
    uint32_t qid;
    const lt_bcfg_queue *cfg;
    int mslot; /* metrics slot */
    lt_dq dq;
    bool more;       /* the store may hold pending entries past dq.cursor */
    bool dirty;      /* in the broker's dirty list */
    lt_queue *dnext; /* dirty list */
    lt_sub *subs;    /* consumers, round robin from rr */
    lt_sub *rr;
    size_t nsubs;
    uv_timer_t timer;
    int64_t timer_at; /* wall ms the timer is armed for; INT64_MAX if idle */
    int64_t retry_at; /* a send hit EAGAIN: pump again then (INT64_MAX: none) */
    uint32_t retry_ms; /* its back-off */
    uint64_t redeliveries, dlq_moves;
};

/* What the frontend hands on to the rest of the broker. broker.c sets them before the
 * frontend starts; the frontend calls no other part of the broker, so it owns sockets and
 * sessions and nothing else. Loop thread. */
typedef struct lt_fe_hooks {
    /* a consumer frame (SUBSCRIBE, CREDIT, CONSUMER_ACK, CONSUMER_NAK, ADMIN) of the
     * authenticated session p; f is borrowed for the call */
    void (*on_frame)(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f);
    /* session p ends (HELLO again, connection closed): end what it holds */
    void (*on_session_end)(lt_broker *b, lt_peer *p);
    /* a publish was stored for the queues qids[0..n) (due_ms > 0: scheduled for then) */
    void (*on_stored)(lt_broker *b, const uint32_t *qids, size_t n, int64_t due_ms);
    /* CANCEL of the authenticated session p; f is borrowed for the call */
    void (*on_cancel)(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f);
    /* a new connection p on the CURVE endpoint (p->curve_key set) sent its first frame:
     * whether its key is still accepted now (false: sets p->key_refused, closes it) */
    bool (*on_curve_conn)(lt_broker *b, lt_peer *p);
} lt_fe_hooks;

enum lt_broker_phase { LT_PHASE_INIT = 0, LT_PHASE_RUNNING, LT_PHASE_DRAINING, LT_PHASE_DONE };

struct lt_broker {
    const lt_broker_cfg *cfg;
    char *config_path;
    unsigned heartbeat_ms;
    int phase;
    int64_t drain_deadline; /* uv_now ms */
    lt_err run_result;

    uv_loop_t loop;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_async_t async; /* committer -> loop: ring done moved, jobs done */
    uv_async_t stop_async;
    uv_timer_t hb_timer; /* peer probes, drain progress */

    /* frontend (loop thread) */
    lt_fe_hooks fe_hooks;
    void *zctx, *zsock;
    int zfd;
    uv_poll_t zpoll;
    uv_prepare_t zprep;
    uv_idle_t zidle;
    bool zidle_on;
    bool paused; /* ring full: not reading */
    char endpoint[256];
    Lienthong__V1__Frame *frame_scratch;
    lt_peer **peers; /* hash by routing id */
    size_t npeer_buckets, npeers;
    uint64_t n_malformed, n_dropped_sends, n_too_large;
    void *zmon;            /* PAIR receiving the ROUTER's connection events */
    int zmon_fd;
    uv_poll_t zmonpoll;
    uint64_t next_conn;    /* numbers of peers and sessions */
    size_t inflight_unauth; /* bytes charged by unauthenticated connections */
    size_t nclosed;         /* peers with closed set, not yet dropped */
    uint64_t t_batch_ns; /* uv_hrtime of the current read batch */

    /* shared, read-only after start except where noted */
    lt_store *store;
    lt_trust *trust;
    lt_router *router;
    lt_acl_cell acl; /* the ACL in force (swapped on SIGHUP) */
    lt_metrics *metrics;
    lt_admin *admin;
    char admin_addr[300];
    lt_env_limits env_limits;
    struct lt_dossiers *dossiers; /* procedures (dossier.c); NULL when none are configured */

    /* pipeline */
    lt_ring ring;
    pthread_t *verifiers;
    unsigned nverifiers, verifiers_started;
    pthread_t committer, syncer;
    bool committer_started, syncer_started;
    int64_t last_sweep_ms; /* committer only */

    /* delivery (loop thread) */
    lt_queue *queues; /* array of nqueues */
    size_t nqueues;
    lt_queue **by_qid; /* qid -> queue, size qid_cap */
    size_t qid_cap;
    lt_queue *dirty; /* queues to pump */

    /* scheduled delivery (schedule.c, loop thread) */
    uv_timer_t sched_timer;
    bool sched_timer_init;
    int64_t sched_at;   /* wall ms the timer is armed for; INT64_MAX: idle */
    bool sched_busy;    /* a SCHED_DUE job is with the committer */
    uint64_t sched_promoted, sched_cancelled;
    /* the network (link.c): this broker's identity agency ("" without broker.identity) and
     * the links running (loop thread starts, stops and reads their status) */
    char self_agency[LT_AGENCY_ID_MAX];
    struct lt_links *links;
    /* CURVE (zap.h): our key pair (Z85), the ZAP handler, refused handshakes (loop) */
    char curve_public[41], curve_secret[41];
    struct lt_zap *zap;
    uint64_t n_curve_refused_protocol; /* handshakes that failed before ZAP (plaintext) */
    uint64_t n_curve_closed; /* connections closed: a reload no longer accepts their key */
};


/* ---- frontend.c (loop thread) ---- */
/* Nack code on the wire for an lt_err (names are equal by contract). Any thread. */
Lienthong__V1__NackCode lt_fe_nack_code(lt_err e);
lt_err lt_fe_open(lt_broker *b, lt_why *why);  /* socket bound, not yet polled */
lt_err lt_fe_start(lt_broker *b, lt_why *why); /* poll the socket on the loop */
void lt_fe_close(lt_broker *b);                /* handles closed, socket closed */
/* Bind cfg->curve_listen with CURVE (our secret key, ZAP domain "lienthong"); the ZAP
 * handler must be running. LT_EIO with the reason. */
lt_err lt_fe_bind_curve(lt_broker *b, lt_why *why);
void lt_fe_resume(lt_broker *b);               /* ring has room again: read */
void lt_fe_drain_mode(lt_broker *b);           /* shutting down: read, refuse publishes */
/* Pack f and send it to peer. 0 on success, else errno (EHOSTUNREACH: peer gone,
 * EAGAIN: its pipe is full). */
int lt_fe_send(lt_broker *b, const uint8_t *peer, size_t peer_len, const Lienthong__V1__Frame *f);
/* Send data[0..n), a whole encoded Frame inside the malloc'ed block base, to peer without
 * copying it: base is the callee's from the call on (freed once ZeroMQ is done with it, or
 * at once when the send fails). 0 or errno as lt_fe_send. */
int lt_fe_send_owned(lt_broker *b, const uint8_t *peer, size_t peer_len, uint8_t *data, size_t n,
                     void *base);
/* Send a NACK (tag may be 0). */
int lt_fe_send_nack(lt_broker *b, const uint8_t *peer, size_t peer_len, uint64_t tag, lt_err code,
                    const char *reason);
/* Answer the committed ring slots [tail, done); called on the async wakeup. */
void lt_fe_on_done(lt_broker *b);
/* Periodic: probe idle peers, forget the gone ones. */
void lt_fe_heartbeat(lt_broker *b);
/* The PUBLISH fast path: when the frame is a plain Frame{publish{tag, envelope,
 * deliver_at, hops}} (each single field once, a few short hops, nothing else), find its
 * fields without unpacking (env points into p; hops are copied, NUL-terminated, into out)
 * and return true; false means "unpack it the general way", which also gives the reason of
 * a refusal. Pure; for the fuzzer too. */
#define LT_FE_FAST_HOPS 8 /* more than the hop limit allows: the general path refuses them */
#define LT_FE_HOP_MAX 64  /* a broker name's bytes at most */
typedef struct lt_fe_publish {
    uint64_t tag;
    const uint8_t *env;
    size_t env_len;
    int64_t deliver_at;
    bool batched_ack; /* Publish.batched_ack: its ACK may go in an Acks frame */
    size_t nhops;
    char *hops[LT_FE_FAST_HOPS];
    char hop[LT_FE_FAST_HOPS][LT_FE_HOP_MAX + 1];
} lt_fe_publish;
bool lt_fe_parse_publish(const uint8_t *p, size_t n, lt_fe_publish *out);
/* Best effort tag of a PUBLISH or ADMIN frame that does not parse (0 if unreadable). */
uint64_t lt_fe_peek_tag(const uint8_t *p, size_t n);
lt_peer *lt_fe_peer_find(lt_broker *b, const uint8_t *id, size_t len);
void lt_fe_peer_drop(lt_broker *b, lt_peer *p, const char *why);
/* p's connection is gone (the monitor said so, or a send to it found no route): nothing
 * more is delivered to it (its credit ends), but what it sent before is still taken - a
 * consumer's last acks and naks may still wait in the socket behind the frame being handled
 * - until the socket has been read empty; then the session ends (lt_fe_peer_drop). A send
 * that fails never drops a session at once. */
void lt_fe_peer_close(lt_broker *b, lt_peer *p);
/* Take the ROUTER's connection events now (connections closed since the last call drop
 * their sessions). Call before sending what only a session may receive. */
void lt_fe_sessions_sync(lt_broker *b);

/* ---- verifier.c ---- */
lt_err lt_ring_init(lt_ring *r, size_t cap);
void lt_ring_fini(lt_ring *r);
/* Loop: the admin jobs the commit thread finished (a list, to lt_dlv_on_job_done). */
lt_job *lt_ring_take_jobs(lt_broker *b);
/* Loop: a free slot to fill (NULL when full), then publish every filled slot. */
lt_slot *lt_ring_slot_next(lt_broker *b);
void lt_ring_fill_done(lt_broker *b, lt_slot *s); /* s is filled: counts it */
void lt_ring_publish(lt_broker *b);
bool lt_ring_has_room(const lt_broker *b);
/* Ensure the slot's buffer holds len bytes. LT_ENOMEM. */
lt_err lt_slot_reserve(lt_slot *s, size_t len);
lt_err lt_verify_start(lt_broker *b, unsigned n, lt_why *why);
void lt_verify_stop(lt_broker *b);
/* The verifier's caches in /metrics (lienthong_trust_cache_total); any thread. */
void lt_verify_write_metrics(lt_broker *b, lt_metrics_buf *out);
/* Where the Envelope.certificate field (field 5, length-delimited) lies in p[0..n): false
 * unless it occurs exactly once at the top level and everything parses; the out-parameters
 * may be written either way. The store keeps the certificate once per signer and puts the
 * field back on every read. Any thread. */
bool lt_verify_cert_field(const uint8_t *p, size_t n, size_t *field_off, size_t *field_len,
                          size_t *der_off, size_t *der_len);

/* ---- committer.c ---- */
lt_err lt_commit_start(lt_broker *b, lt_why *why);
void lt_commit_stop(lt_broker *b); /* commits what is pending, then joins */
/* Loop: queue n ops (copied; each op's reason and job pass to the committer). LT_ENOMEM
 * (then the caller still owns them). */
lt_err lt_commit_post(lt_broker *b, const lt_op *ops, size_t n);
/* True when the committer has nothing pending (ops, jobs, slots). */
bool lt_commit_is_idle(lt_broker *b);

/* ---- net_ops.c (loop thread): the network in /metrics and /api/v1/links ---- */
void lt_net_write_metrics(void *ctx, lt_metrics_buf *out);
lt_err lt_net_admin_links(void *ctx, json_object **out);
/* The frontend's on_curve_conn hook (lt_fe_hooks). */
bool lt_net_curve_conn(lt_broker *b, lt_peer *p);
/* After a SIGHUP swapped the ZAP key table: end the session of every connection whose key
 * the table no longer accepts (or binds to another agency) and close the connection.
 * Returns how many. */
size_t lt_net_curve_recheck(lt_broker *b);

/* ---- delivery.c (loop thread) ---- */
lt_err lt_dlv_open(lt_broker *b, lt_why *why); /* queues declared, state built */
void lt_dlv_close(lt_broker *b);               /* subscriptions dropped, timers closing */
void lt_dlv_free(lt_broker *b);                /* after the loop closed the timers */
/* Messages were committed to queue qid. */
void lt_dlv_wake(lt_broker *b, uint32_t qid);
/* Pump every woken queue. */
void lt_dlv_flush(lt_broker *b);
/* The frontend's hooks (lt_fe_hooks): a consumer frame of session p, the end of session p
 * (its subscriptions end, unacked deliveries return to their queues), a stored publish. */
void lt_dlv_on_frame(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f);
void lt_dlv_on_session_end(lt_broker *b, lt_peer *p);
void lt_dlv_on_stored(lt_broker *b, const uint32_t *qids, size_t n);
/* Scheduled entry seq of queue qid became deliverable (schedule.c). */
void lt_dlv_on_due(lt_broker *b, uint32_t qid, uint64_t seq);
void lt_dlv_on_job_done(lt_broker *b, lt_job *job); /* takes job */
void lt_dlv_drop_sub(lt_broker *b, lt_sub *s);
/* Admin HTTP and metrics providers. */
void lt_dlv_collect(void *ctx, lt_metrics *m);
lt_err lt_dlv_admin_queues(void *ctx, json_object **out);
lt_err lt_dlv_admin_dlq(void *ctx, const char *queue, bool payload, size_t limit, json_object **out,
                        lt_why *why);
lt_queue *lt_dlv_queue_by_name(lt_broker *b, const char *name);

#endif
