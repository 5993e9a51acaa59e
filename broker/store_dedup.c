/*
 * store_dedup.c - the store's memory of message ids: which record each (source agency,
 * message id) named, for the dedup window (see lt_store_msgkey in store.h).
 *
 * On-disk layout (integers big-endian, as in store.c):
 *
 *   dedup2   [source][0x00][id 16] -> [seq u64][stored_ms i64][payload_sha256 32][signer 32]
 *            the key is the raw (source, id): no hash, so no two records can collide; a
 *            source is at most LT_STORE_SOURCE_MAX bytes and holds no NUL, so the key is at
 *            most 272 bytes (LMDB's limit is 511)
 *   dedupx2  seq u64 -> [stored_ms i64][source][0x00][id 16]
 *            time index (MDB_APPEND: seq order is stored-time order), swept from its head
 *            when past the window; it names the dedup2 key to delete
 *
 * Layout 2 kept `dedup` (id -> seq, stored_ms) and `dedupx` keyed by the id alone, across
 * agencies; store_dedup_open drops them when it opens an older store. Their entries only
 * protected against resends for the rest of their window, which a broker upgrade ends.
 *
 * Writer thread only (the batch's transaction, or the sweep's).
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define VAL_LEN (8u + 8u + 2 * LT_STORE_HASH_LEN)
#define KEY_MAX (LT_STORE_SOURCE_MAX + 1u + LT_STORE_ID_LEN)

/* The dedup2 key of k into out (KEY_MAX bytes); its length, 0 if the source is unusable. */
static size_t key_of(const lt_store_msgkey *k, uint8_t out[KEY_MAX])
{
    size_t n = k->source ? strlen(k->source) : 0;
    if (n == 0 || n > LT_STORE_SOURCE_MAX)
        return 0;
    memcpy(out, k->source, n);
    out[n] = 0;
    memcpy(out + n + 1, k->id, LT_STORE_ID_LEN);
    return n + 1 + LT_STORE_ID_LEN;
}

static void hex8(const uint8_t *p, char out[17])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[16] = '\0';
}

lt_err store_dedup_open(lt_store *s, MDB_txn *txn, lt_why *why)
{
    int rc = mdb_dbi_open(txn, "dedup2", MDB_CREATE, &s->dedup);
    if (!rc)
        rc = mdb_dbi_open(txn, "dedupx2", MDB_CREATE, &s->dedupx);
    if (rc)
        return store_mdb_fail(s, why, rc, "open the dedup databases");
    static const char *const old[] = {"dedup", "dedupx"};
    for (size_t i = 0; i < 2; i++) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(txn, old[i], 0, &dbi);
        if (rc == MDB_NOTFOUND)
            continue;
        if (!rc)
            rc = mdb_drop(txn, dbi, 1);
        if (rc)
            return store_mdb_fail(s, why, rc, "drop the layout-2 dedup databases");
    }
    return LT_OK;
}

lt_err store_dedup_last_seq(lt_store *s, MDB_txn *txn, uint64_t *seq)
{
    MDB_cursor *c;
    MDB_val k, v;
    *seq = 0;
    if (mdb_cursor_open(txn, s->dedupx, &c))
        return LT_ESTORE;
    int rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        *seq = get64(k.mv_data);
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? LT_OK : LT_ESTORE;
}

lt_err store_dedup_find(lt_store *s, const lt_store_msgkey *key, int64_t now_ms, uint64_t *seq,
                        lt_why *why)
{
    uint8_t kb[KEY_MAX];
    size_t kn = key_of(key, kb);
    if (kn == 0)
        return lt_fail(why, LT_EINVAL, "a record's source agency id has 1..%d bytes",
                       LT_STORE_SOURCE_MAX);
    MDB_val dk = {kn, kb}, dv;
    int rc = mdb_get(s->txn, s->dedup, &dk, &dv);
    if (rc == MDB_NOTFOUND)
        return LT_ENOTFOUND;
    if (rc)
        return store_mdb_fail(s, why, rc, "read dedup");
    const uint8_t *v = dv.mv_data;
    if (dv.mv_size != VAL_LEN || (int64_t)get64(v + 8) + s->dedup_ms <= now_ms)
        return LT_ENOTFOUND; /* past the window (the sweep has not come by yet): a new record */
    const uint8_t *hash = v + 16, *signer = v + 16 + LT_STORE_HASH_LEN;
    char was[17], now[17];
    if (memcmp(hash, key->payload_sha256, LT_STORE_HASH_LEN) != 0) {
        hex8(hash, was);
        hex8(key->payload_sha256, now);
        return lt_fail(why, LT_EID_CONFLICT,
                       "%s already used this message id for another record (seq %llu, payload "
                       "SHA-256 %s..., this one %s...): give each record its own id",
                       key->source, (unsigned long long)get64(v), was, now);
    }
    if (memcmp(signer, key->signer_key_id, LT_STORE_HASH_LEN) != 0) {
        hex8(signer, was);
        hex8(key->signer_key_id, now);
        return lt_fail(why, LT_EID_CONFLICT,
                       "%s stored this message id as seq %llu signed by key %s..., this copy is "
                       "signed by key %s...: a resend must be the stored envelope",
                       key->source, (unsigned long long)get64(v), was, now);
    }
    *seq = get64(v);
    return LT_OK;
}

lt_err store_dedup_lookup(lt_store *s, const char *source, const uint8_t *id, uint64_t *seq,
                          lt_why *why)
{
    lt_store_msgkey k = {.source = source, .id = id};
    uint8_t kb[KEY_MAX];
    size_t kn = key_of(&k, kb);
    if (kn == 0)
        return lt_fail(why, LT_EINVAL, "a record's source agency id has 1..%d bytes",
                       LT_STORE_SOURCE_MAX);
    MDB_val dk = {kn, kb}, dv;
    int rc = mdb_get(s->txn, s->dedup, &dk, &dv);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOTFOUND, "%s has no message with this id in the store's window",
                       source);
    if (rc)
        return store_mdb_fail(s, why, rc, "read dedup");
    if (dv.mv_size != VAL_LEN)
        return lt_fail(why, LT_ESTORE, "corrupt dedup entry");
    *seq = get64(dv.mv_data);
    return LT_OK;
}

lt_err store_dedup_put(lt_store *s, const lt_store_msgkey *key, uint64_t seq, int64_t stored_ms,
                       lt_why *why)
{
    uint8_t kb[KEY_MAX];
    size_t kn = key_of(key, kb);
    if (kn == 0)
        return lt_fail(why, LT_EINVAL, "a record's source agency id has 1..%d bytes",
                       LT_STORE_SOURCE_MAX);
    uint8_t vb[VAL_LEN];
    put64(vb, seq);
    put64(vb + 8, (uint64_t)stored_ms);
    memcpy(vb + 16, key->payload_sha256, LT_STORE_HASH_LEN);
    memcpy(vb + 16 + LT_STORE_HASH_LEN, key->signer_key_id, LT_STORE_HASH_LEN);
    MDB_val dk = {kn, kb}, dv = {VAL_LEN, vb};
    int rc = mdb_put(s->txn, s->dedup, &dk, &dv, 0);
    if (rc)
        return store_batch_fail(s, rc, "write dedup", why);
    uint8_t sk[8], xb[8 + KEY_MAX];
    put64(sk, seq);
    put64(xb, (uint64_t)stored_ms);
    memcpy(xb + 8, kb, kn);
    MDB_val xk = {8, sk}, xv = {8 + kn, xb};
    if ((rc = mdb_put(s->txn, s->dedupx, &xk, &xv, MDB_APPEND)))
        return store_batch_fail(s, rc, "write dedup index", why);
    return LT_OK;
}

int store_dedup_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(t, s->dedupx, &c);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) {
        if (k.mv_size != 8 || v.mv_size <= 8 + 1 + LT_STORE_ID_LEN || v.mv_size > 8 + KEY_MAX) {
            rc = MDB_CORRUPTED;
            break;
        }
        if ((int64_t)get64(v.mv_data) + s->dedup_ms > now_ms)
            break; /* the rest is younger */
        if (*budget == 0) {
            *more = true;
            break;
        }
        (*budget)--;
        uint8_t kb[KEY_MAX];
        size_t kn = v.mv_size - 8;
        uint64_t seq = get64(k.mv_data);
        memcpy(kb, (const uint8_t *)v.mv_data + 8, kn);
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        /* The key may have been stored again (after an earlier expiry) under a newer seq;
         * only the entry this index row wrote is ours to delete. */
        MDB_val dk = {kn, kb}, dv;
        rc = mdb_get(t, s->dedup, &dk, &dv);
        if (rc == 0 && dv.mv_size == VAL_LEN && get64(dv.mv_data) == seq)
            rc = mdb_del(t, s->dedup, &dk, NULL);
        if (rc && rc != MDB_NOTFOUND)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
