/*
 * store_queue.c - the store's queues and their indexes: which messages each queue holds,
 * in which state, with its counters and limits. Messages themselves are store_msg.c's.
 *
 *   qnames  name -> qid u32
 *   queues  qid u32 -> [depth u64][bytes u64][dlq_depth u64][dlq_bytes u64]
 *                      [max_depth u64][max_bytes u64][retention_ms i64][name...]
 *                      counters written once per batch (at commit) for the queues it touched
 *   qent    [qid u32][seq u64] -> [stored_ms i64][not_before_ms i64][delivery_count u32]
 *                                 [env_len u32]           pending (unacked) entries
 *           not_before_ms: 0 = deliverable; with delivery_count 0 it is the due time of a
 *           scheduled message (store_sched.c holds its index and makes it deliverable);
 *           with delivery_count > 0 the redelivery delay a nak or an expiry asked for
 *   qlog    [qid u32][seq u64] -> [stored_ms i64]         replay history (only for queues
 *                                 with retention > 0), removed when acked and expired
 *   dlq     [qid u32][seq u64] -> [stored_ms i64][moved_ms i64][delivery_count u32]
 *                                 [env_len u32][reason, NUL-terminated]
 *
 * Queue counters live in memory and are written at commit; they are restored from their
 * saved copy when a batch aborts. Writer thread, except the reads (pending, dlq list, get,
 * replay, stats), which open their own read transactions.
 */
#include "store_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

queue *store_queue_get(const lt_store *s, uint32_t qid)
{
    return (qid > 0 && qid < s->nqs) ? s->qs[qid] : NULL;
}

lt_err store_queue_add(lt_store *s, uint32_t qid, const char *name, size_t name_len)
{
    if (qid >= LT_STORE_MAX_QUEUES)
        return LT_EINVAL;
    if (qid >= s->nqs) {
        size_t n = s->nqs ? s->nqs : 16;
        while (n <= qid)
            n *= 2;
        queue **qs = realloc(s->qs, n * sizeof *qs);
        uint32_t *d = realloc(s->dirty, n * sizeof *d);
        if (qs)
            s->qs = qs;
        if (d)
            s->dirty = d;
        if (!qs || !d)
            return LT_ENOMEM;
        memset(s->qs + s->nqs, 0, (n - s->nqs) * sizeof *qs);
        s->nqs = n;
    }
    if (s->qs[qid])
        return LT_EEXIST;
    queue *q = calloc(1, sizeof *q);
    if (!q || !(q->name = malloc(name_len + 1))) {
        free(q);
        return LT_ENOMEM;
    }
    memcpy(q->name, name, name_len);
    q->name[name_len] = '\0';
    q->qid = qid;
    s->qs[qid] = q;
    return LT_OK;
}

static void qrow_decode(queue *q, const uint8_t *p)
{
    q->c.depth = get64(p);
    q->c.bytes = get64(p + 8);
    q->c.dlq_depth = get64(p + 16);
    q->c.dlq_bytes = get64(p + 24);
    q->lim.max_depth = get64(p + 32);
    q->lim.max_bytes = get64(p + 40);
    q->lim.retention_ms = (int64_t)get64(p + 48);
    q->saved = q->c;
}

lt_err store_queue_row_put(lt_store *s, MDB_txn *txn, const queue *q, lt_why *why)
{
    size_t nl = strlen(q->name);
    uint8_t k[4], v[QROW_HDR + LT_STORE_QUEUE_NAME_MAX];
    put32(k, q->qid);
    put64(v, q->c.depth);
    put64(v + 8, q->c.bytes);
    put64(v + 16, q->c.dlq_depth);
    put64(v + 24, q->c.dlq_bytes);
    put64(v + 32, q->lim.max_depth);
    put64(v + 40, q->lim.max_bytes);
    put64(v + 48, (uint64_t)q->lim.retention_ms);
    memcpy(v + QROW_HDR, q->name, nl);
    MDB_val kv = {sizeof k, k}, vv = {QROW_HDR + nl, v};
    int rc = mdb_put(txn, s->queues, &kv, &vv, 0);
    return rc ? store_mdb_fail(s, why, rc, "write queue counters") : LT_OK;
}

lt_err store_queue_load(lt_store *s, MDB_txn *txn, lt_why *why)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->queues, &c);
    if (rc)
        return store_mdb_fail(s, why, rc, "open cursor");
    lt_err err = LT_OK;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4 || v.mv_size < QROW_HDR ||
            v.mv_size > QROW_HDR + LT_STORE_QUEUE_NAME_MAX) {
            err = lt_fail(why, LT_ESTORE, "corrupt queue row");
            break;
        }
        uint32_t qid = get32(k.mv_data);
        err = store_queue_add(s, qid, (const char *)v.mv_data + QROW_HDR, v.mv_size - QROW_HDR);
        if (err) {
            lt_fail(why, err, "cannot load queue %u", qid);
            break;
        }
        qrow_decode(s->qs[qid], v.mv_data);
        if (qid >= s->next_qid)
            s->next_qid = qid + 1;
    }
    mdb_cursor_close(c);
    if (!err && rc != MDB_NOTFOUND)
        err = store_mdb_fail(s, why, rc, "read queues");
    return err;
}

void store_queue_free_all(lt_store *s)
{
    for (size_t i = 0; i < s->nqs; i++)
        if (s->qs[i]) {
            free(s->qs[i]->name);
            free(s->qs[i]);
        }
    free(s->qs);
    free(s->dirty);
    s->qs = NULL;
    s->dirty = NULL;
    s->nqs = 0;
}

/* ---- queues ----------------------------------------------------------------------------- */

static bool name_ok(const char *name, size_t *len)
{
    if (!name)
        return false;
    *len = strnlen(name, LT_STORE_QUEUE_NAME_MAX + 1);
    return *len > 0 && *len <= LT_STORE_QUEUE_NAME_MAX;
}

lt_err lt_store_queue_declare(lt_store *s, const char *name, const lt_store_queue_limits *lim,
                              uint32_t *qid, lt_why *why)
{
    size_t nl;
    if (!name_ok(name, &nl))
        return lt_fail(why, LT_EINVAL, "queue name must be 1..%d bytes",
                       LT_STORE_QUEUE_NAME_MAX);
    if (s->txn)
        return lt_fail(why, LT_EAGAIN, "cannot declare queue %s inside a batch", name);
    lt_store_queue_limits zero = {0, 0, 0};
    if (!lim)
        lim = &zero;
    queue *q = NULL;
    for (size_t i = 1; i < s->nqs; i++)
        if (s->qs[i] && strcmp(s->qs[i]->name, name) == 0) {
            q = s->qs[i];
            break;
        }
    bool created = false;
    if (!q) {
        if (s->next_qid >= LT_STORE_MAX_QUEUES)
            return lt_fail(why, LT_EINVAL, "too many queues (%d)", LT_STORE_MAX_QUEUES);
        lt_err e = store_queue_add(s, s->next_qid, name, nl);
        if (e)
            return lt_fail(why, e, "cannot add queue %s", name);
        q = s->qs[s->next_qid];
        created = true;
    }
    lt_store_queue_limits old = q->lim;
    q->lim = *lim;

    MDB_txn *txn;
    lt_err err;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        err = store_mdb_fail(s, why, rc, "begin");
        goto out_undo;
    }
    if ((err = store_queue_row_put(s, txn, q, why)))
        goto out_abort;
    if (created) {
        uint8_t b[4];
        put32(b, q->qid);
        MDB_val k = {nl, (void *)name}, v = {4, b};
        if ((rc = mdb_put(txn, s->qnames, &k, &v, 0))) {
            err = store_mdb_fail(s, why, rc, "write queue name");
            goto out_abort;
        }
        put32(b, q->qid + 1);
        if ((rc = store_meta_put(s, txn, "next_qid", b, 4))) {
            err = store_mdb_fail(s, why, rc, "write next_qid");
            goto out_abort;
        }
    }
    if ((rc = mdb_txn_commit(txn))) {
        err = store_mdb_fail(s, why, rc, "commit queue");
        goto out_undo;
    }
    if (created)
        s->next_qid++; /* committed: memory follows, whatever the flush says */
    if ((rc = mdb_env_sync(s->env, 1)))
        return store_mdb_fail(s, why, rc, "flush queue");
    *qid = q->qid;
    return LT_OK;
out_abort:
    mdb_txn_abort(txn);
out_undo:
    if (created) {
        s->qs[q->qid] = NULL;
        free(q->name);
        free(q);
    } else {
        q->lim = old;
    }
    return err;
}

lt_err lt_store_queue_find(lt_store *s, const char *name, uint32_t *qid)
{
    size_t nl;
    if (!name_ok(name, &nl))
        return LT_ENOQUEUE;
    MDB_txn *txn;
    if (store_rbegin(s, &txn, NULL))
        return LT_ESTORE;
    MDB_val k = {nl, (void *)name}, v;
    int rc = mdb_get(txn, s->qnames, &k, &v);
    lt_err err = LT_ENOQUEUE;
    if (rc == 0 && v.mv_size == 4) {
        *qid = get32(v.mv_data);
        err = LT_OK;
    } else if (rc != MDB_NOTFOUND) {
        err = LT_ESTORE;
    }
    mdb_txn_abort(txn);
    return err;
}

/* First and last key of qid in a [qid][seq]-keyed db; *first = 0 when it has none. */
static int qrange(MDB_txn *txn, MDB_dbi dbi, uint32_t qid, uint64_t *first, uint64_t *last,
                  MDB_val *first_val)
{
    MDB_cursor *c;
    uint8_t kb[QKEY_LEN];
    MDB_val k = {QKEY_LEN, kb}, v;
    *first = *last = 0;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    qkey(kb, qid, 0);
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size == QKEY_LEN && get32(k.mv_data) == qid) {
        *first = get64((const uint8_t *)k.mv_data + 4);
        if (first_val)
            *first_val = v;
        k.mv_size = QKEY_LEN;
        k.mv_data = kb;
        qkey(kb, qid + 1, 0);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 || rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
        if (rc == 0 && k.mv_size == QKEY_LEN && get32(k.mv_data) == qid)
            *last = get64((const uint8_t *)k.mv_data + 4);
    } else if (rc == 0) {
        rc = MDB_NOTFOUND;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static lt_err stats_read(lt_store *s, MDB_txn *txn, uint32_t qid, const MDB_val *row,
                         lt_store_queue_stats *st, lt_why *why)
{
    if (row->mv_size < QROW_HDR || row->mv_size > QROW_HDR + LT_STORE_QUEUE_NAME_MAX)
        return lt_fail(why, LT_ESTORE, "corrupt row of queue %u", qid);
    const uint8_t *p = row->mv_data;
    memset(st, 0, sizeof *st);
    st->qid = qid;
    st->depth = get64(p);
    st->bytes = get64(p + 8);
    st->dlq_depth = get64(p + 16);
    st->dlq_bytes = get64(p + 24);
    memcpy(st->name, p + QROW_HDR, row->mv_size - QROW_HDR);
    st->name[row->mv_size - QROW_HDR] = '\0';
    MDB_val fv = {0, NULL};
    int rc = qrange(txn, s->qent, qid, &st->first_seq, &st->last_seq, &fv);
    if (rc)
        return store_mdb_fail(s, why, rc, "read queue range");
    if (st->first_seq && fv.mv_size == QENT_LEN)
        st->oldest_ms = (int64_t)get64(fv.mv_data);
    return LT_OK;
}

lt_err lt_store_queue_stats_get(lt_store *s, uint32_t qid, lt_store_queue_stats *out,
                                lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    uint8_t kb[4];
    put32(kb, qid);
    MDB_val k = {4, kb}, v;
    int rc = mdb_get(txn, s->queues, &k, &v);
    if (rc == MDB_NOTFOUND)
        err = lt_fail(why, LT_ENOQUEUE, "no queue with id %u", qid);
    else if (rc)
        err = store_mdb_fail(s, why, rc, "read queue");
    else {
        lt_store_queue_stats st;
        err = stats_read(s, txn, qid, &v, &st, why);
        if (!err)
            *out = st;
    }
    mdb_txn_abort(txn);
    return err;
}

lt_err lt_store_queue_list(lt_store *s, lt_store_queue_visit visit, void *arg, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->qnames, &c);
    if (rc) {
        mdb_txn_abort(txn);
        return store_mdb_fail(s, why, rc, "open cursor");
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !err;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 4) {
            err = lt_fail(why, LT_ESTORE, "corrupt queue name index");
            break;
        }
        uint32_t qid = get32(v.mv_data);
        uint8_t kb[4];
        put32(kb, qid);
        MDB_val rk = {4, kb}, rv;
        int r2 = mdb_get(txn, s->queues, &rk, &rv);
        if (r2) {
            err = store_mdb_fail(s, why, r2, "read queue");
            break;
        }
        lt_store_queue_stats st;
        if ((err = stats_read(s, txn, qid, &rv, &st, why)))
            break;
        if (visit(arg, &st))
            break;
    }
    if (!err && rc != 0 && rc != MDB_NOTFOUND)
        err = store_mdb_fail(s, why, rc, "list queues");
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return err;
}

static bool expired(const queue *q, int64_t stored_ms, int64_t now_ms)
{
    return q->lim.retention_ms <= 0 || stored_ms + q->lim.retention_ms <= now_ms;
}

/* Past retention, or retention yields: while the store is full, acked history is the
 * first thing to go (counted in retention_yielded), so consuming frees space at once
 * instead of a day later. */
static bool droppable(lt_store *s, const queue *q, int64_t stored_ms, int64_t now_ms)
{
    if (expired(q, stored_ms, now_ms))
        return true;
    if (!atomic_load(&s->full))
        return false;
    atomic_fetch_add(&s->retention_yielded, 1);
    return true;
}

/* The queue no longer needs seq as pending/dead: drop its history entry too when it is
 * past retention, and the message when no queue needs it any more. */
static int release(lt_store *s, MDB_txn *txn, const queue *q, uint64_t seq, int64_t stored_ms,
                   int64_t now_ms)
{
    if (!droppable(s, q, stored_ms, now_ms))
        return 0;
    uint8_t kb[QKEY_LEN];
    qkey(kb, q->qid, seq);
    MDB_val k = {QKEY_LEN, kb};
    int rc = mdb_del(txn, s->qlog, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    return store_msg_gc(s, txn, seq);
}

/* Varint length of n, as protobuf writes it (minimal). */
lt_err store_queue_admit(lt_store *s, const uint32_t *qids, size_t nq, size_t len, lt_why *why)
{
    for (size_t i = 0; i < nq; i++) {
        const queue *q = store_queue_get(s, qids[i]);
        if (!q)
            return lt_fail(why, LT_ENOQUEUE, "no queue with id %u", qids[i]);
        if (q->lim.max_depth && q->c.depth + 1 > q->lim.max_depth)
            return lt_fail(why, LT_EQUEUE_FULL, "queue %s is full: %llu messages (max_depth)",
                           q->name, (unsigned long long)q->c.depth);
        if (q->lim.max_bytes && q->c.bytes + len > q->lim.max_bytes)
            return lt_fail(why, LT_EQUEUE_FULL,
                           "queue %s is full: %llu + %zu bytes over max_bytes %llu", q->name,
                           (unsigned long long)q->c.bytes, len,
                           (unsigned long long)q->lim.max_bytes);
        if (nq <= 64)
            for (size_t j = 0; j < i; j++)
                if (qids[j] == qids[i])
                    return lt_fail(why, LT_EINVAL, "queue %s listed twice", q->name);
    }
    return LT_OK;
}

lt_err store_queue_enqueue(lt_store *s, const uint32_t *qids, size_t nq, uint64_t seq,
                           int64_t stored_ms, uint32_t len, int64_t due_ms, lt_why *why)
{
    int rc;
    lt_err err;
    bool scheduled = due_ms > stored_ms;
    uint8_t eb[QENT_LEN];
    put64(eb, (uint64_t)stored_ms);
    put64(eb + 8, scheduled ? (uint64_t)due_ms : 0);
    put32(eb + 16, 0);
    put32(eb + 20, len);
    for (size_t i = 0; i < nq; i++) {
        const queue *q = s->qs[qids[i]];
        uint8_t kb[QKEY_LEN];
        qkey(kb, q->qid, seq);
        MDB_val qk = {QKEY_LEN, kb}, qv = {QENT_LEN, eb};
        if ((rc = mdb_put(s->txn, s->qent, &qk, &qv, 0)))
            return store_batch_fail(s, rc, "write queue entry", why);
        if (q->lim.retention_ms > 0) {
            MDB_val lv = {QLOG_LEN, eb};
            if ((rc = mdb_put(s->txn, s->qlog, &qk, &lv, 0)))
                return store_batch_fail(s, rc, "write queue history", why);
        }
        if (scheduled && (err = store_sched_put(s, due_ms, q->qid, seq, why)) != LT_OK)
            return err;
    }
    for (size_t i = 0; i < nq; i++) {
        queue *q = s->qs[qids[i]];
        store_touch(s, q);
        q->c.depth++;
        q->c.bytes += len;
    }
    return LT_OK;
}

/* Fetch the pending entry of (qid, seq) from the batch. */
static lt_err qent_read(lt_store *s, const queue *q, uint64_t seq, uint8_t out[QENT_LEN],
                        lt_why *why)
{
    uint8_t kb[QKEY_LEN];
    qkey(kb, q->qid, seq);
    MDB_val k = {QKEY_LEN, kb}, v;
    int rc = mdb_get(s->txn, s->qent, &k, &v);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOTFOUND, "message %llu is not pending on queue %s",
                       (unsigned long long)seq, q->name);
    if (rc)
        return store_mdb_fail(s, why, rc, "read queue entry");
    if (v.mv_size != QENT_LEN)
        return lt_fail(why, LT_ESTORE, "corrupt entry %llu of queue %s",
                       (unsigned long long)seq, q->name);
    memcpy(out, v.mv_data, QENT_LEN);
    return LT_OK;
}

static lt_err op_queue(lt_store *s, uint32_t qid, queue **q, lt_why *why)
{
    lt_err err = store_batch_usable(s, why);
    if (err)
        return err;
    if (!(*q = store_queue_get(s, qid)))
        return lt_fail(why, LT_ENOQUEUE, "no queue with id %u", qid);
    return LT_OK;
}

/* Delete seq's entry from dbi (qent or dlq: both headers begin with the message's stored_ms
 * and hold its length at offset 20), release the message, and count it out of *depth and
 * *bytes. what names the operation in a failure. */
static lt_err remove_entry(lt_store *s, queue *q, MDB_dbi dbi, uint64_t seq, const uint8_t *hdr,
                           uint64_t *depth, uint64_t *bytes, const char *what, int64_t now_ms,
                           lt_why *why)
{
    uint8_t kb[QKEY_LEN];
    qkey(kb, q->qid, seq);
    MDB_val k = {QKEY_LEN, kb};
    int rc = mdb_del(s->txn, dbi, &k, NULL);
    if (rc == 0)
        rc = release(s, s->txn, q, seq, (int64_t)get64(hdr), now_ms);
    if (rc)
        return store_batch_fail(s, rc, what, why);
    store_touch(s, q);
    (*depth)--;
    *bytes -= get32(hdr + 20);
    return LT_OK;
}

lt_err lt_store_ack(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms, lt_why *why)
{
    queue *q;
    uint8_t e[QENT_LEN];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = qent_read(s, q, seq, e, why)))
        return err;
    return remove_entry(s, q, s->qent, seq, e, &q->c.depth, &q->c.bytes, "ack", now_ms, why);
}

lt_err lt_store_nak(lt_store *s, uint32_t qid, uint64_t seq, uint32_t delivery_count,
                    int64_t not_before_ms, lt_why *why)
{
    queue *q;
    uint8_t e[QENT_LEN];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = qent_read(s, q, seq, e, why)))
        return err;
    put64(e + 8, (uint64_t)not_before_ms);
    put32(e + 16, delivery_count);
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, seq);
    MDB_val k = {QKEY_LEN, kb}, v = {QENT_LEN, e};
    int rc = mdb_put(s->txn, s->qent, &k, &v, 0);
    return rc ? store_batch_fail(s, rc, "nak", why) : LT_OK;
}

lt_err store_queue_unschedule(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms,
                              int64_t *due, lt_why *why)
{
    queue *q;
    uint8_t e[QENT_LEN];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = qent_read(s, q, seq, e, why)))
        return err;
    int64_t nb = (int64_t)get64(e + 8);
    if (get32(e + 16) != 0 || nb == 0)
        return LT_ENOTFOUND; /* due already: an ordinary pending entry */
    if ((err = remove_entry(s, q, s->qent, seq, e, &q->c.depth, &q->c.bytes, "cancel", now_ms,
                            why)))
        return err;
    *due = nb;
    return LT_OK;
}

lt_err lt_store_dead_letter(lt_store *s, uint32_t qid, uint64_t seq, uint32_t delivery_count,
                            const char *reason, int64_t now_ms, lt_why *why)
{
    queue *q;
    uint8_t e[QENT_LEN];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = qent_read(s, q, seq, e, why)))
        return err;
    size_t rl = reason ? strnlen(reason, LT_STORE_REASON_MAX) : 0;
    uint8_t d[DLQ_HDR + LT_STORE_REASON_MAX + 1];
    memcpy(d, e, 8); /* stored_ms */
    put64(d + 8, (uint64_t)now_ms);
    put32(d + 16, delivery_count);
    memcpy(d + 20, e + 20, 4); /* env_len */
    if (rl)
        memcpy(d + DLQ_HDR, reason, rl);
    d[DLQ_HDR + rl] = '\0';
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, seq);
    MDB_val k = {QKEY_LEN, kb}, v = {DLQ_HDR + rl + 1, d};
    int rc = mdb_del(s->txn, s->qent, &k, NULL);
    if (rc == 0)
        rc = mdb_put(s->txn, s->dlq, &k, &v, 0);
    if (rc)
        return store_batch_fail(s, rc, "dead-letter", why);
    uint32_t len = get32(e + 20);
    store_touch(s, q);
    q->c.depth--;
    q->c.bytes -= len;
    q->c.dlq_depth++;
    q->c.dlq_bytes += len;
    return LT_OK;
}

static lt_err dlq_read(lt_store *s, const queue *q, uint64_t seq, uint8_t out[DLQ_HDR],
                       lt_why *why)
{
    uint8_t kb[QKEY_LEN];
    qkey(kb, q->qid, seq);
    MDB_val k = {QKEY_LEN, kb}, v;
    int rc = mdb_get(s->txn, s->dlq, &k, &v);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOTFOUND, "message %llu is not in the dead-letter queue of %s",
                       (unsigned long long)seq, q->name);
    if (rc)
        return store_mdb_fail(s, why, rc, "read dead letter");
    if (v.mv_size <= DLQ_HDR)
        return lt_fail(why, LT_ESTORE, "corrupt dead letter %llu of queue %s",
                       (unsigned long long)seq, q->name);
    memcpy(out, v.mv_data, DLQ_HDR);
    return LT_OK;
}

lt_err lt_store_dlq_requeue(lt_store *s, uint32_t qid, uint64_t seq, lt_why *why)
{
    queue *q;
    uint8_t d[DLQ_HDR];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = dlq_read(s, q, seq, d, why)))
        return err;
    uint8_t e[QENT_LEN];
    memcpy(e, d, 8);
    put64(e + 8, 0);
    put32(e + 16, 0);
    memcpy(e + 20, d + 20, 4);
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, seq);
    MDB_val k = {QKEY_LEN, kb}, v = {QENT_LEN, e};
    int rc = mdb_del(s->txn, s->dlq, &k, NULL);
    if (rc == 0)
        rc = mdb_put(s->txn, s->qent, &k, &v, 0);
    if (rc)
        return store_batch_fail(s, rc, "requeue", why);
    uint32_t len = get32(d + 20);
    store_touch(s, q);
    q->c.dlq_depth--;
    q->c.dlq_bytes -= len;
    q->c.depth++;
    q->c.bytes += len;
    return LT_OK;
}

lt_err lt_store_dlq_drop(lt_store *s, uint32_t qid, uint64_t seq, int64_t now_ms, lt_why *why)
{
    queue *q;
    uint8_t d[DLQ_HDR];
    lt_err err = op_queue(s, qid, &q, why);
    if (err || (err = dlq_read(s, q, seq, d, why)))
        return err;
    return remove_entry(s, q, s->dlq, seq, d, &q->c.dlq_depth, &q->c.dlq_bytes, "drop", now_ms,
                        why);
}

/* Drop history entries of q past retention that no longer are pending or dead. Resumes
 * at q->sweep_at; wraps to the start once it reaches entries still within retention. */
static int sweep_queue(lt_store *s, MDB_txn *t, queue *q, int64_t now_ms, size_t *budget,
                       bool *more, bool *done)
{
    MDB_cursor *c;
    uint8_t kb[QKEY_LEN];
    MDB_val k = {QKEY_LEN, kb}, v;
    *done = false;
    int rc = mdb_cursor_open(t, s->qlog, &c);
    if (rc)
        return rc;
    qkey(kb, q->qid, q->sweep_at);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT)) {
        if (k.mv_size != QKEY_LEN || get32(k.mv_data) != q->qid) {
            rc = MDB_NOTFOUND;
            break;
        }
        if (v.mv_size != QLOG_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t seq = get64((const uint8_t *)k.mv_data + 4);
        int64_t stored = (int64_t)get64(v.mv_data);
        if (!expired(q, stored, now_ms) && !atomic_load(&s->full)) {
            rc = MDB_NOTFOUND; /* the rest is younger */
            break;
        }
        if (*budget == 0) {
            *more = true;
            q->sweep_at = seq;
            mdb_cursor_close(c);
            return 0;
        }
        (*budget)--;
        uint8_t ek[QKEY_LEN];
        memcpy(ek, k.mv_data, QKEY_LEN);
        MDB_val rk = {QKEY_LEN, ek}, rv;
        bool held = false;
        const MDB_dbi refs[2] = {s->qent, s->dlq};
        for (int j = 0; j < 2 && !held; j++) {
            rc = mdb_get(t, refs[j], &rk, &rv);
            if (rc == 0)
                held = true;
            else if (rc != MDB_NOTFOUND)
                goto out;
        }
        if (held) {
            /* Still pending or dead: ack/drop will release it. Step over. */
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            if (rc)
                break;
            continue;
        }
        if ((rc = mdb_cursor_del(c, 0)))
            goto out;
        if (!expired(q, stored, now_ms))
            atomic_fetch_add(&s->retention_yielded, 1);
        if ((rc = store_msg_gc(s, t, seq)))
            goto out;
        /* After a delete the cursor sits on the next item (or is past the end). Re-seek
         * to be independent of that detail. */
        k.mv_size = QKEY_LEN;
        k.mv_data = kb;
        qkey(kb, q->qid, seq + 1);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc)
            break;
    }
    if (rc == MDB_NOTFOUND) {
        rc = 0;
        q->sweep_at = 0;
        *done = true;
    }
out:
    mdb_cursor_close(c);
    return rc;
}

int store_queue_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more)
{
    /* Round-robin over the queues so none starves. */
    int rc = 0;
    size_t visited = 0;
    while (rc == 0 && *budget > 0 && visited < s->nqs) {
        if (s->sweep_q == 0 || s->sweep_q >= s->nqs)
            s->sweep_q = 1;
        queue *q = s->qs[s->sweep_q];
        bool done = true;
        if (q)
            rc = sweep_queue(s, t, q, now_ms, budget, more, &done);
        if (done)
            s->sweep_q++;
        visited++;
    }
    return rc;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Decode a value of qent / dlq / qlog into e (state fields). */
static lt_err state_decode(lt_store_state st, const MDB_val *v, lt_store_entry *e, lt_why *why)
{
    const uint8_t *p = v->mv_data;
    e->state = st;
    e->reason = "";
    e->delivery_count = 0;
    e->not_before_ms = 0;
    e->moved_ms = 0;
    switch (st) {
    case LT_STORE_PENDING:
        if (v->mv_size != QENT_LEN)
            return lt_fail(why, LT_ESTORE, "corrupt queue entry");
        e->not_before_ms = (int64_t)get64(p + 8);
        e->delivery_count = get32(p + 16);
        break;
    case LT_STORE_DEAD:
        if (v->mv_size <= DLQ_HDR || p[v->mv_size - 1] != '\0')
            return lt_fail(why, LT_ESTORE, "corrupt dead letter");
        e->moved_ms = (int64_t)get64(p + 8);
        e->delivery_count = get32(p + 16);
        e->reason = (const char *)p + DLQ_HDR;
        break;
    case LT_STORE_DONE:
        if (v->mv_size != QLOG_LEN)
            return lt_fail(why, LT_ESTORE, "corrupt history entry");
        break;
    }
    return LT_OK;
}

lt_err store_queue_known(lt_store *s, MDB_txn *txn, uint32_t qid, lt_why *why)
{
    uint8_t kb[4];
    put32(kb, qid);
    MDB_val k = {4, kb}, v;
    int rc = mdb_get(txn, s->queues, &k, &v);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOQUEUE, "no queue with id %u", qid);
    return rc ? store_mdb_fail(s, why, rc, "read queue") : LT_OK;
}

/* Visit entries of one [qid][seq]-keyed db (qent or dlq) from seq > after. */
static lt_err scan_one(lt_store *s, MDB_dbi dbi, lt_store_state st, bool with_msg,
                       uint32_t qid, uint64_t after, size_t max, lt_store_visit visit, void *arg,
                       uint64_t *last, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    uint64_t at = after;
    if ((err = store_queue_known(s, txn, qid, why)) || after == UINT64_MAX)
        goto out;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) {
        err = store_mdb_fail(s, why, rc, "open cursor");
        goto out;
    }
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, after + 1);
    MDB_val k = {QKEY_LEN, kb}, v;
    size_t n = 0;
    store_rbuf rb = {NULL, 0};
    /* new messages of a batch that is not yet durable stay out of sight */
    uint64_t limit = st == LT_STORE_PENDING ? atomic_load(&s->visible_next) : UINT64_MAX;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != QKEY_LEN || get32(k.mv_data) != qid ||
            get64((const uint8_t *)k.mv_data + 4) >= limit)
            break;
        lt_store_entry e;
        e.qid = qid;
        uint64_t seq = get64((const uint8_t *)k.mv_data + 4);
        if ((err = state_decode(st, &v, &e, why)))
            break;
        if (with_msg) {
            if ((err = store_msg_read(s, txn, seq, &e, &rb, why)))
                break;
        } else {
            e.seq = seq;
            e.stored_ms = 0;
            e.id = NULL;
            e.env = NULL;
            e.env_len = 0;
            e.nhops = 0;
        }
        at = e.seq;
        n++;
        if (visit(arg, &e) || (max && n >= max))
            break;
    }
    if (!err && rc && rc != MDB_NOTFOUND)
        err = store_mdb_fail(s, why, rc, "scan");
    mdb_cursor_close(c);
    free(rb.p);
out:
    mdb_txn_abort(txn);
    if (!err && last)
        *last = at;
    return err;
}

lt_err lt_store_pending(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                        lt_store_visit visit, void *arg, uint64_t *last, lt_why *why)
{
    return scan_one(s, s->qent, LT_STORE_PENDING, true, qid, after_seq, max, visit, arg, last,
                    why);
}

lt_err lt_store_pending_keys(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                             lt_store_visit visit, void *arg, uint64_t *last, lt_why *why)
{
    return scan_one(s, s->qent, LT_STORE_PENDING, false, qid, after_seq, max, visit, arg, last,
                    why);
}

lt_err lt_store_dlq_list(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                         lt_store_visit visit, void *arg, uint64_t *last, lt_why *why)
{
    return scan_one(s, s->dlq, LT_STORE_DEAD, true, qid, after_seq, max, visit, arg, last, why);
}

/* Find seq in the first of qent, dlq, qlog that holds it and visit it: 0 visited (*stop
 * = the visitor's answer), MDB_NOTFOUND, or an error (why set). */
static lt_err get_in(lt_store *s, MDB_txn *txn, uint32_t qid, uint64_t seq, store_rbuf *rb,
                     lt_store_visit visit, void *arg, int *stop, lt_why *why)
{
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, seq);
    const MDB_dbi dbs[3] = {s->qent, s->dlq, s->qlog};
    const lt_store_state sts[3] = {LT_STORE_PENDING, LT_STORE_DEAD, LT_STORE_DONE};
    /* as the scans: a message of a batch that is not yet durable is not there yet */
    for (int i = 0; i < 3 && seq < atomic_load(&s->visible_next); i++) {
        MDB_val k = {QKEY_LEN, kb}, v;
        int rc = mdb_get(txn, dbs[i], &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc)
            return store_mdb_fail(s, why, rc, "read entry");
        lt_store_entry e;
        e.qid = qid;
        lt_err err;
        if ((err = state_decode(sts[i], &v, &e, why)) ||
            (err = store_msg_read(s, txn, seq, &e, rb, why)))
            return err;
        *stop = visit(arg, &e);
        return LT_OK;
    }
    return LT_ENOTFOUND;
}

lt_err lt_store_get(lt_store *s, uint32_t qid, uint64_t seq, lt_store_visit visit, void *arg,
                    lt_why *why)
{
    store_rbuf rb = {NULL, 0};
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    int stop = 0;
    if ((err = store_queue_known(s, txn, qid, why)) == LT_OK &&
        (err = get_in(s, txn, qid, seq, &rb, visit, arg, &stop, why)) == LT_ENOTFOUND)
        err = lt_fail(why, LT_ENOTFOUND, "queue %u holds no message %llu", qid,
                      (unsigned long long)seq);
    free(rb.p);
    mdb_txn_abort(txn);
    return err;
}

lt_err lt_store_get_many(lt_store *s, uint32_t qid, const uint64_t *seqs, size_t n,
                         lt_store_visit visit, void *arg, lt_why *why)
{
    store_rbuf rb = {NULL, 0};
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    if ((err = store_queue_known(s, txn, qid, why)) == LT_OK) {
        int stop = 0;
        for (size_t i = 0; i < n && !stop; i++) {
            lt_why ignored;
            (void)get_in(s, txn, qid, seqs[i], &rb, visit, arg, &stop, &ignored);
        }
    }
    free(rb.p);
    mdb_txn_abort(txn);
    return err;
}

/* Replay merges three ordered streams of one queue (pending, dead, history): a message is
 * in history when the queue has retention, and in pending or dead until acked/dropped. */
lt_err lt_store_replay(lt_store *s, uint32_t qid, uint64_t from_seq, size_t max,
                       lt_store_visit visit, void *arg, uint64_t *last, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    uint64_t at = from_seq ? from_seq - 1 : 0;
    MDB_cursor *c[3] = {NULL, NULL, NULL};
    const MDB_dbi dbs[3] = {s->qent, s->dlq, s->qlog};
    const lt_store_state sts[3] = {LT_STORE_PENDING, LT_STORE_DEAD, LT_STORE_DONE};
    MDB_val ck[3], cv[3];
    bool live[3];
    int rc = 0;
    store_rbuf rb = {NULL, 0};
    uint64_t limit = atomic_load(&s->visible_next);
    if ((err = store_queue_known(s, txn, qid, why)))
        goto out;
    for (int i = 0; i < 3; i++) {
        if ((rc = mdb_cursor_open(txn, dbs[i], &c[i]))) {
            err = store_mdb_fail(s, why, rc, "open cursor");
            goto out;
        }
        uint8_t kb[QKEY_LEN];
        qkey(kb, qid, from_seq);
        ck[i].mv_size = QKEY_LEN;
        ck[i].mv_data = kb;
        rc = mdb_cursor_get(c[i], &ck[i], &cv[i], MDB_SET_RANGE);
        live[i] = rc == 0 && ck[i].mv_size == QKEY_LEN && get32(ck[i].mv_data) == qid;
        if (rc && rc != MDB_NOTFOUND) {
            err = store_mdb_fail(s, why, rc, "replay");
            goto out;
        }
    }
    for (size_t n = 0; !max || n < max; n++) {
        int best = -1;
        uint64_t bseq = 0;
        for (int i = 0; i < 3; i++) {
            if (!live[i])
                continue;
            uint64_t sq = get64((const uint8_t *)ck[i].mv_data + 4);
            if (best < 0 || sq < bseq) {
                best = i;
                bseq = sq;
            }
        }
        if (best < 0 || bseq >= limit)
            break;
        lt_store_entry e;
        e.qid = qid;
        if ((err = state_decode(sts[best], &cv[best], &e, why)) ||
            (err = store_msg_read(s, txn, bseq, &e, &rb, why)))
            goto out;
        at = bseq;
        if (visit(arg, &e))
            break;
        for (int i = 0; i < 3; i++) {
            if (!live[i] || get64((const uint8_t *)ck[i].mv_data + 4) != bseq)
                continue;
            rc = mdb_cursor_get(c[i], &ck[i], &cv[i], MDB_NEXT);
            live[i] = rc == 0 && ck[i].mv_size == QKEY_LEN && get32(ck[i].mv_data) == qid;
            if (rc && rc != MDB_NOTFOUND) {
                err = store_mdb_fail(s, why, rc, "replay");
                goto out;
            }
        }
    }
out:
    for (int i = 0; i < 3; i++)
        if (c[i])
            mdb_cursor_close(c[i]);
    free(rb.p);
    mdb_txn_abort(txn);
    if (!err && last)
        *last = at;
    return err;
}

