/*
 * store_sched.c - the store's schedule: which queue entries become deliverable when.
 *
 * A message published with a due time is stored at once like any other (its queue entries
 * in qent, counted in depth and bytes, acked to the publisher after the fsync), but each
 * entry carries not_before_ms = due with delivery_count 0, and the schedule indexes it:
 *
 *   sched   [due_ms i64][qid u32][seq u64] -> (empty)
 *           ordered by due time, so what is due is a prefix of the database and the next
 *           due time is its first key: one timer per broker, no timer per message and no
 *           memory per scheduled message (readers of pending entries step over scheduled
 *           ones; store.h lt_store_entry_is_scheduled)
 *
 * lt_store_sched_promote takes the due prefix in the open batch: each entry leaves the
 * index and its qent gets not_before 0, so from that commit on it is an ordinary pending
 * entry. An entry that left qent meanwhile (cancelled, or its queue purged) only leaves the
 * index. lt_store_sched_cancel removes a message that is still scheduled from its queues.
 *
 * Writer thread for promote, cancel and the puts of an append; lt_store_sched_next and
 * lt_store_sched_count open their own read transactions.
 */
#include "store_int.h"

#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#define SKEY_LEN 20u /* due 8, qid 4, seq 8 */

static void skey(uint8_t k[SKEY_LEN], int64_t due, uint32_t qid, uint64_t seq)
{
    put64(k, (uint64_t)due);
    put32(k + 8, qid);
    put64(k + 12, seq);
}

lt_err store_sched_open(lt_store *s, MDB_txn *txn, lt_why *why)
{
    int rc = mdb_dbi_open(txn, "sched", MDB_CREATE, &s->sched);
    return rc ? store_mdb_fail(s, why, rc, "open the schedule") : LT_OK;
}

lt_err store_sched_put(lt_store *s, int64_t due_ms, uint32_t qid, uint64_t seq, lt_why *why)
{
    uint8_t kb[SKEY_LEN];
    skey(kb, due_ms, qid, seq);
    MDB_val k = {SKEY_LEN, kb}, v = {0, NULL};
    int rc = mdb_put(s->txn, s->sched, &k, &v, 0);
    return rc ? store_batch_fail(s, rc, "write schedule", why) : LT_OK;
}

/* The first due time in txn's view of the schedule, INT64_MAX if it is empty. */
static int first_due(lt_store *s, MDB_txn *txn, int64_t *due)
{
    MDB_cursor *c;
    MDB_val k, v;
    *due = INT64_MAX;
    int rc = mdb_cursor_open(txn, s->sched, &c);
    if (rc)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == SKEY_LEN)
        *due = (int64_t)get64(k.mv_data);
    else if (rc == 0)
        rc = MDB_CORRUPTED;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

lt_err lt_store_sched_promote(lt_store *s, int64_t now_ms, size_t max,
                              lt_store_sched_visit visit, void *arg, int64_t *next_due,
                              lt_why *why)
{
    lt_err err = store_batch_usable(s, why);
    if (err)
        return err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(s->txn, s->sched, &c);
    if (rc)
        return store_mdb_fail(s, why, rc, "open schedule cursor");
    MDB_val k, v;
    size_t n = 0;
    int64_t next = INT64_MAX;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) {
        if (k.mv_size != SKEY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        const uint8_t *kp = k.mv_data;
        int64_t due = (int64_t)get64(kp);
        if (due > now_ms || n >= max) {
            next = due;
            break;
        }
        uint32_t qid = get32(kp + 8);
        uint64_t seq = get64(kp + 12);
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        n++;
        uint8_t qk[QKEY_LEN];
        qkey(qk, qid, seq);
        MDB_val ek = {QKEY_LEN, qk}, ev;
        rc = mdb_get(s->txn, s->qent, &ek, &ev);
        if (rc == MDB_NOTFOUND) {
            rc = 0; /* cancelled, or its queue let it go: nothing to make due */
            continue;
        }
        if (rc)
            break;
        if (ev.mv_size != QENT_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint8_t e[QENT_LEN];
        memcpy(e, ev.mv_data, QENT_LEN);
        if (get32(e + 16) != 0 || (int64_t)get64(e + 8) != due)
            continue; /* not the entry this key scheduled: leave it as it is */
        put64(e + 8, 0);
        MDB_val nv = {QENT_LEN, e};
        if ((rc = mdb_put(s->txn, s->qent, &ek, &nv, 0)))
            break;
        if (visit)
            visit(arg, qid, seq);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return store_batch_fail(s, rc, "promote scheduled messages", why);
    if (next_due)
        *next_due = next;
    return LT_OK;
}

lt_err lt_store_sched_next(lt_store *s, int64_t *due, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    int64_t d;
    int rc = first_due(s, txn, &d);
    mdb_txn_abort(txn);
    if (rc)
        return store_mdb_fail(s, why, rc, "read schedule");
    *due = d;
    return LT_OK;
}

lt_err lt_store_sched_count(lt_store *s, uint64_t *n, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    MDB_stat st;
    int rc = mdb_stat(txn, s->sched, &st);
    mdb_txn_abort(txn);
    if (rc)
        return store_mdb_fail(s, why, rc, "read schedule size");
    *n = st.ms_entries;
    return LT_OK;
}

lt_err lt_store_sched_cancel(lt_store *s, const char *source, const uint8_t *id, int64_t now_ms,
                             uint64_t *seq, size_t *ncancelled, lt_why *why)
{
    lt_err err = store_batch_usable(s, why);
    if (err)
        return err;
    uint64_t sq;
    if ((err = store_dedup_lookup(s, source, id, &sq, why)) == LT_ENOTFOUND)
        return lt_fail(why, LT_ENOT_SCHEDULED,
                       "%s has no record with this message id in the store's window", source);
    if (err != LT_OK)
        return err;
    uint32_t qids[LT_STORE_MAX_TARGETS];
    size_t nq = 0;
    if ((err = store_msg_queues(s, sq, qids, &nq, why)) != LT_OK)
        return err;
    size_t n = 0;
    for (size_t i = 0; i < nq; i++) {
        int64_t due;
        if ((err = store_queue_unschedule(s, qids[i], sq, now_ms, &due, why)) == LT_ENOTFOUND)
            continue;
        if (err)
            return err;
        uint8_t kb[SKEY_LEN];
        skey(kb, due, qids[i], sq);
        MDB_val k = {SKEY_LEN, kb};
        int rc = mdb_del(s->txn, s->sched, &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return store_batch_fail(s, rc, "cancel scheduled message", why);
        n++;
    }
    if (n == 0)
        return lt_fail(why, LT_ENOT_SCHEDULED,
                       "message %llu of %s is not scheduled any more: it is due, delivered or "
                       "acked",
                       (unsigned long long)sq, source);
    *seq = sq;
    if (ncancelled)
        *ncancelled = n;
    return LT_OK;
}
