/*
 * store_int.h - what the files of the store share: its on-disk constants, the big-endian
 * helpers, the in-memory state (struct lt_store) and the internal calls between them.
 *
 *   store.c        messages (msgs, certs), queues (qnames, queues, qent, qlog, dlq), the
 *                  write batch, reads, retention
 *   store_dedup.c  message ids: dedup and its time index dedupx (who sent what, when)
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

#define LAYOUT_VERSION 3u /* 3: dedup by (source, id) in dedup2/dedupx2 (store_dedup.c);
                          * 2: certref in msgs, certs db; 1 (no certref) still reads */
#define MSG_CERT 1u      /* flags: certificate stripped, certref follows */
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

typedef struct queue {
    uint32_t qid;
    char *name;
    lt_store_queue_limits lim;
    counters c;      /* including the open batch */
    counters saved;  /* as of the last commit (valid while dirty) */
    bool dirty;
    uint64_t sweep_at; /* next qlog seq the retention sweep looks at */
} queue;

struct lt_store {
    MDB_env *env;
    MDB_dbi meta, msgs, qnames, queues, qent, qlog, dlq, certs;
    MDB_dbi dedup, dedupx; /* store_dedup.c */
    int lock_fd;
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
    uint8_t cert_known[CERT_CACHE][KEY_ID_LEN]; /* key ids stored in certs (committed or in
                                                 * the open batch; cleared on abort) */
    unsigned ncert_known, cert_next;
    _Atomic uint64_t visible_next; /* seqs below it are durable: readers may see them */
    _Atomic int sync_failed;       /* errno of a failed flush (0: none): the store is
                                    * read-only from then on, see lt_store_sync */
    _Atomic bool full;             /* the last commit failed for want of space (map or disk);
                                    * cleared by the next commit that succeeds */
};

/* ---- shared internals ------------------------------------------------------------------ */

/* LMDB's rc as an lt_err with why = "what: reason" (MAP_FULL and disk full: LT_ESTORE_FULL). */
lt_err store_mdb_fail(const lt_store *s, lt_why *why, int rc, const char *what);
/* A write LMDB refused in the open batch: the batch can no longer commit. */
lt_err store_batch_fail(lt_store *s, int rc, const char *what, lt_why *why);

/* store_dedup.c */
/* Open the dedup databases in txn (creating them; an older layout's are dropped). */
lt_err store_dedup_open(lt_store *s, MDB_txn *txn, lt_why *why);
/* The newest seq the dedup index holds (0 if none), so no seq is handed out twice. */
lt_err store_dedup_last_seq(lt_store *s, MDB_txn *txn, uint64_t *seq);
/* Is key a record the window still remembers? LT_OK + *seq: the same record (duplicate);
 * LT_ENOTFOUND: new; LT_EID_CONFLICT: the key names another record (why says how it
 * differs); LT_ESTORE (read failed). Writes nothing. */
lt_err store_dedup_find(lt_store *s, const lt_store_msgkey *key, int64_t now_ms, uint64_t *seq,
                        lt_why *why);
/* Remember key as seq stored at stored_ms, in the open batch (fails the batch on error). */
lt_err store_dedup_put(lt_store *s, const lt_store_msgkey *key, uint64_t seq, int64_t stored_ms,
                       lt_why *why);
/* Forget keys older than the window, oldest first, at most *budget; *more when some remain.
 * Returns an LMDB rc (0 on success). */
int store_dedup_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more);

#endif
