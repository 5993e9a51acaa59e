/*
 * store_int.h - what the files of the store share: its on-disk constants, the big-endian
 * helpers, the in-memory state (struct lt_store) and the internal calls between them.
 *
 *   store.c        the environment, its layout version, meta, and the write batch
 *   store_msg.c    messages (msgs) and signers' certificates (certs); appends
 *   store_queue.c  queues (qnames, queues) and their indexes: pending (qent), history (qlog),
 *                  dead letters (dlq); acks, naks, retention, the readers of entries
 *   store_dedup.c  message ids: source numbers (dsrc) and two generations of entries
 *                  (dedupg0, dedupg1): who sent what, when
 *   store_sched.c  the schedule (sched): queue entries that become deliverable at a time
 *   store_dossier.c dossiers of procedures: their state, their events, their deadlines
 *   store_io.c     how LMDB's writes reach the data file (one page per write call)
 *
 * The on-disk layout of each database is drawn at the top of the file that owns it. Writer
 * thread only, except where store.h says a read may come from any thread.
 */
#ifndef LT_BROKER_STORE_INT_H
#define LT_BROKER_STORE_INT_H

#include "store.h"

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Layout history. 6: dedup entries keyed by a source number (dsrc) in two generations
 * (dedupg0/1) that the sweep rotates, with no time index; a layout-5 store's dedup2 is read
 * as the oldest generation until the first rotation empties it and dedupx2. Packs may carry
 * a pool (PACK_POOL), and their records splice lists (MSG_SPLICE) into it (store_msg.c); a
 * layout-5 pack has no pool and reads as before.
 * 5: messages are appended in packs (mpack/mlive, store_msg.c); the msgs
 * records of a layout-4 store stay readable where they are. 4: msgs records may carry hops
 * (MSG_HOPS); a layout-3 store is a layout-4 store without them (opened, its version
 * rewritten), plus sched, created when missing (an older store simply has nothing
 * scheduled). 3: dedup by (source, id) in dedup2/dedupx2 (store_dedup.c). 2: certref in
 * msgs, certs db. 1 (no certref) still reads. */
#define LAYOUT_VERSION 6u
#define MSG_CERT 1u      /* flags: certificate stripped, certref follows */
#define MSG_HOPS 2u      /* flags: a hops block [len u32][lt_store_hops_encode bytes] follows
                          * the qids (before the certref) */
/* flags: a splice list follows (after the certref), for values left out of the envelope
 * and kept once in the pack's pool (layout 6) */
#define MSG_SPLICE 4u
#define CERTREF_LEN 36u  /* key_id 32, at u32 */
#define KEY_ID_LEN 32u
#define ENV_CERT_TAG 0x2au /* Envelope.certificate: field 5, wire type 2 */
/* The batch's size budget: LMDB allows 128K dirty pages per transaction (MDB_TXN_FULL
 * beyond, which would fail the whole batch); appends stop at half of that. */
#define BATCH_PAGE_BUDGET 65536u
#define CERT_CACHE 64u   /* signers whose certificate is known to be in certs */
#define MSG_HDR 32u     /* stored_ms 8, id 16, nq 4, flags 4 */
#define QENT_LEN 24u    /* stored_ms 8, not_before 8, delivery_count 4, env_len 4 */
#define QLOG_LEN 8u
#define DLQ_HDR 24u     /* stored_ms 8, moved_ms 8, delivery_count 4, env_len 4 */
#define QROW_HDR 56u    /* 7 × 8 */
#define QKEY_LEN 12u    /* qid 4, seq 8 */
#define PACK_HDR 16u    /* first seq 8, n 4, flags 4 */
#define PACK_POOL 1u    /* pack flags: a pool follows the records (layout 6) */
/* record and pool bytes a pack takes before the next append starts another */
#define PACK_MAX 131072u
#define POOL_NMAX 4096u  /* strings in one pack's pool at most */
#define POOL_MAX 65536u  /* bytes of strings in one pack's pool at most */
#define POOL_SLOTS 8192u /* the writer's hash index over its pool (2 × POOL_NMAX) */

#define DEFAULT_MAP_SIZE (64ULL << 30)
#define DEFAULT_READERS 126u
#define DEFAULT_DEDUP_MS (24LL * 3600 * 1000)

/* ---- big-endian helpers ---------------------------------------------------------------- */

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static inline uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static inline void qkey(uint8_t k[QKEY_LEN], uint32_t qid, uint64_t seq)
{
    put32(k, qid);
    put64(k + 4, seq);
}

/* ---- in-memory state (writer thread) --------------------------------------------------- */

typedef struct counters {
    uint64_t depth, bytes, dlq_depth, dlq_bytes;
} counters;

/* store_dedup.c: which generation takes new entries, since when; whether a layout-5
 * store's dedup2 is still read (the oldest generation). */
typedef struct dedup_gen {
    int64_t started_ms;
    unsigned cur; /* 0 or 1: the index in dgen of the current generation */
    bool legacy;
} dedup_gen;

/* store_dedup.c: the source numbers of dsrc (and of the open batch), by name. */
typedef struct dedup_srcs {
    char **name; /* name[num - 1]: the source numbered num */
    uint32_t n, cap;
    uint32_t saved_n; /* n when the open batch began */
    uint32_t *slot;   /* open addressing: 0 empty, else a number; nslot a power of 2 > 2 n */
    uint32_t nslot;
} dedup_srcs;

typedef struct queue {
    uint32_t qid;
    char *name;
    lt_store_queue_limits lim;
    counters c;      /* including the open batch */
    counters saved;  /* as of the last commit (valid while dirty) */
    bool dirty;
    uint64_t sweep_at; /* next qlog seq the retention sweep looks at */
} queue;

/* The open batch's pack's pool (store_msg.c): the strings its records leave out, kept once. */
typedef struct store_pool {
    uint32_t n, len;
    uint8_t off[4 * (POOL_NMAX + 1)]; /* n + 1 big-endian offsets into bytes, as on disk */
    uint16_t slot[POOL_SLOTS];        /* hash index: string + 1, 0 = free */
    uint8_t bytes[POOL_MAX];
} store_pool;

struct lt_store {
    MDB_env *env;
    MDB_dbi meta, msgs, qnames, queues, qent, qlog, dlq, certs;
    MDB_dbi mpack, mlive; /* store_msg.c: the packs of messages, and which of them live */
    bool legacy_msgs;     /* msgs holds records (written before layout 5) */
    struct {              /* the open batch's pack, written at commit (store_msg_flush) */
        uint8_t *buf;     /* records */
        size_t len, cap;
        uint32_t *off; /* n + 1 record offsets into buf */
        uint8_t *dead; /* per record: deleted by the batch itself */
        size_t ocap;
        uint64_t first;
        uint32_t n;
        store_pool pool; /* strings its records share, written after them */
    } pk;
    MDB_dbi dsrc, dgen[2];  /* store_dedup.c: source numbers, the two generations */
    MDB_dbi dedup, dedupx;  /* a layout-5 store's dedup2/dedupx2 (while dg.legacy) */
    dedup_gen dg, saved_dg; /* saved_dg: as the open batch began */
    dedup_srcs src;
    MDB_dbi sched;         /* store_sched.c */
    MDB_dbi dossiers, dossierx; bool dossier_open; /* store_dossier.c (lt_store_dossier_open) */
    int lock_fd;
    int io_fd; /* the data file, written page by page (store_io.c); -1: as is */
    int64_t dedup_ms;
    uint64_t map_size;
    MDB_txn *txn;              /* the open batch, or NULL */
    uint64_t next_seq, saved_next_seq;
    int64_t last_ms, saved_last_ms;
    uint32_t next_qid;
    queue **qs;                /* indexed by qid (1..); NULL holes never happen */
    size_t nqs;                /* qs[0..nqs) valid; qs[0] unused */
    uint32_t *dirty;           /* qids touched by the open batch */
    size_t ndirty;
    uint32_t sweep_q;          /* queue the retention sweep resumes with */
    int fail_rc;               /* LMDB refused a write of the open batch: it cannot commit */
    const char *fail_what;
    size_t batch_pages;        /* estimate of the open batch's dirty pages */
    size_t batch_appends;
    size_t batch_freed;        /* messages the open batch deleted (store_msg_gc) */
    uint8_t cert_known[CERT_CACHE][KEY_ID_LEN]; /* key ids stored in certs (committed or in
                                                 * the open batch; cleared on abort) */
    unsigned ncert_known, cert_next;
    _Atomic uint64_t visible_next; /* seqs below it are durable: readers may see them */
    _Atomic int sync_failed;       /* errno of a failed flush (0: none): the store is
                                    * read-only from then on, see lt_store_sync */
    _Atomic bool full;             /* the last commit failed for want of space (map or disk);
                                    * cleared by the next commit that succeeds */
    _Atomic uint64_t retention_yielded; /* acked messages dropped before their retention
                                         * because the store was full */
};

/* ---- shared internals ------------------------------------------------------------------ */

/* LMDB's rc as an lt_err with why = "what: reason" (MAP_FULL and disk full: LT_ESTORE_FULL). */
lt_err store_mdb_fail(const lt_store *s, lt_why *why, int rc, const char *what);
/* A write LMDB refused in the open batch: the batch can no longer commit. */
lt_err store_batch_fail(lt_store *s, int rc, const char *what, lt_why *why);

/* store.c */
/* Begin a short read transaction (any thread). */
lt_err store_rbegin(lt_store *s, MDB_txn **txn, lt_why *why);
/* meta[key] as a u64 (a u32 is widened); LT_ENOTFOUND; LT_ESTORE. */
lt_err store_meta_get_u64(lt_store *s, MDB_txn *txn, const char *key, uint64_t *out);
int store_meta_put(lt_store *s, MDB_txn *txn, const char *key, const uint8_t *val, size_t len);
/* LT_OK when a batch is open and LMDB has refused none of its writes. */
lt_err store_batch_usable(lt_store *s, lt_why *why);
/* q's counters change in the open batch: save them for an abort, write them at commit. */
void store_touch(lt_store *s, queue *q);

/* store_msg.c */
/* A reader's buffer for envelopes whose certificate or pooled values are put back (lives for
 * one read call). */
typedef struct store_rbuf {
    uint8_t *p;
    size_t cap;
} store_rbuf;
/* Fill the message part of e (id, env, stored) from msgs[seq]; the envelope points into
 * the map, or into rb when its certificate or pooled values had to be put back. */
lt_err store_msg_read(lt_store *s, MDB_txn *txn, uint64_t seq, lt_store_entry *e, store_rbuf *rb,
                      lt_why *why);
/* As store_msg_read, in the writer's open batch (txn = s->txn): also finds the messages of
 * the batch's own pack, not yet in mpack. Writer thread. */
lt_err store_msg_read_batch(lt_store *s, uint64_t seq, lt_store_entry *e, store_rbuf *rb,
                            lt_why *why);
/* Is seq still referenced by any queue it was routed to? If not, delete it. LMDB rc. */
int store_msg_gc(lt_store *s, MDB_txn *txn, uint64_t seq);
/* Write the open batch's pack (before its commit). LMDB rc. Writer thread. */
int store_msg_flush(lt_store *s, MDB_txn *txn);
/* Forget the open batch's pack (the batch aborted). */
void store_msg_reset(lt_store *s);
/* Open mpack and mlive, and tell whether msgs holds records; *last = the highest seq any
 * of them holds (0: none). LMDB rc. */
int store_msg_open(lt_store *s, MDB_txn *txn, uint64_t *last);
/* The queues message seq was routed to (at most LT_STORE_MAX_TARGETS), in the open batch.
 * LT_ENOT_SCHEDULED when the message is gone; LT_ESTORE. */
lt_err store_msg_queues(lt_store *s, uint64_t seq, uint32_t *qids, size_t *nq, lt_why *why);

/* store_queue.c */
queue *store_queue_get(const lt_store *s, uint32_t qid);
lt_err store_queue_add(lt_store *s, uint32_t qid, const char *name, size_t name_len);
/* Load every queue row into memory (open). */
lt_err store_queue_load(lt_store *s, MDB_txn *txn, lt_why *why);
void store_queue_free_all(lt_store *s);
/* Write q's counters and limits (commit). */
lt_err store_queue_row_put(lt_store *s, MDB_txn *txn, const queue *q, lt_why *why);
/* LT_ENOQUEUE unless qid has a row in txn. */
lt_err store_queue_known(lt_store *s, MDB_txn *txn, uint32_t qid, lt_why *why);
/* May a message of len bytes go to qids[0..nq)? Writes nothing. LT_ENOQUEUE,
 * LT_EQUEUE_FULL, LT_EINVAL (a queue listed twice). */
lt_err store_queue_admit(lt_store *s, const uint32_t *qids, size_t nq, size_t len, lt_why *why);
/* Put seq in each queue's pending entries (and history, with retention), counted; with
 * due_ms > stored_ms as a scheduled entry, indexed in the schedule. Fails the batch. */
lt_err store_queue_enqueue(lt_store *s, const uint32_t *qids, size_t nq, uint64_t seq,
                           int64_t stored_ms, uint32_t len, int64_t due_ms, lt_why *why);
/* Remove seq from qid's pending entries if it is still scheduled there (*due = its due
 * time). LT_ENOTFOUND: not pending there, or already due. */
lt_err store_queue_unschedule(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms,
                              int64_t *due, lt_why *why);
/* Retention: drop history past each queue's retention, round-robin, at most *budget. */
int store_queue_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more);

/* store_sched.c */
lt_err store_sched_open(lt_store *s, MDB_txn *txn, lt_why *why);
/* Index (qid, seq) as due at due_ms, in the open batch (fails the batch on error). */
lt_err store_sched_put(lt_store *s, int64_t due_ms, uint32_t qid, uint64_t seq, lt_why *why);

/* store_dedup.c */
/* Open the dedup databases in txn (creating them; layout 2's are dropped, layout 5's read
 * until the first rotation), and load the source numbers (meta must be open). LT_ESTORE:
 * corrupt meta or dsrc, out of memory, or LMDB failed. */
lt_err store_dedup_open(lt_store *s, MDB_txn *txn, lt_why *why);
/* A batch begins: remember the source numbers and generation for an abort. */
void store_dedup_begin(lt_store *s);
/* The batch aborted: forget the source numbers it assigned, restore the generation. */
void store_dedup_undo(lt_store *s);
/* Free the in-memory source numbers (close). */
void store_dedup_free(lt_store *s);
/* Is key a record the window still remembers? LT_OK + *seq: the same record (duplicate);
 * LT_ENOTFOUND: new; LT_EID_CONFLICT: the key names another record (why says how it
 * differs); LT_ESTORE (read failed, or a corrupt entry). Writes nothing. */
lt_err store_dedup_find(lt_store *s, const lt_store_msgkey *key, int64_t now_ms, uint64_t *seq,
                        lt_why *why);
/* Remember key as seq stored at stored_ms, in the open batch (fails the batch on error). */
lt_err store_dedup_put(lt_store *s, const lt_store_msgkey *key, uint64_t seq, int64_t stored_ms,
                       lt_why *why);
/* The seq stored under (source, id), whatever the record (no window check: cancel by id).
 * LT_ENOTFOUND (why says so), LT_EINVAL, LT_ESTORE. */
lt_err store_dedup_lookup(lt_store *s, const char *source, const uint8_t *id, uint64_t *seq,
                          lt_why *why);
/* Rotate the generations once the current one is older than the window (emptying the
 * previous one, and a layout-5 store's tables): needs *budget > 0 (else *more), charges
 * the branch pages it reads. On success s->dg is the new generation; the caller restores
 * it if the transaction t is then aborted. Returns an LMDB rc (0 on success). */
int store_dedup_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more);

/* ---- store_io.c ---- */

/* Write LMDB's data file fd page by page from now on (on), or as LMDB asks again (!on).
 * Returns whether fd is now written page by page: false when LIENTHONG_LMDB_WHOLE_WRITES=1,
 * for descriptors of 1024 and above, or without the C library's functions. */
bool store_io_watch(int fd, bool on);

#endif
