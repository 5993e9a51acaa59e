/*
 * store_msg.c - the store's messages: each envelope stored once, whatever the number of
 * queues it goes to, and each signer's certificate once.
 *
 *   msgs    seq u64 -> +----------+--------+-------+-------+-----------+-----------+----------+
 *                      | stored_ms| id[16] | nq u32| flags | qids u32×nq| [certref] | envelope |
 *                      +----------+--------+-------+-------+-----------+-----------+----------+
 *                      i64          MSG_HDR = 32 bytes, then 4·nq. flags & MSG_CERT: a certref
 *                      [key_id 32][at u32] follows, and the envelope is stored without its
 *                      certificate field (Envelope.certificate, tag 5), which was at byte `at`
 *                      and is put back from `certs` on every read: readers always get the
 *                      envelope exactly as received. Without MSG_CERT the envelope is stored
 *                      verbatim. Written once (MDB_APPEND: seq only grows), never updated.
 *           flags & MSG_HOPS (layout 4): [len u32][hops] follows the qids, before the
 *           certref: the hops the record arrived with (lt_store_hops_encode: n, then n
 *           NUL-terminated names), given back by every read.
 *           A 1 KiB-payload envelope without its ~500-byte certificate is ~1.4 KB: under
 *           LMDB's node limit for 4 KiB pages (2022 data bytes with an 8-byte key), so it
 *           lives in leaf pages (2 per page) instead of taking a 4 KiB overflow page.
 *   certs   key_id[32] -> certificate DER       one row per signer, written by the first
 *                                               append that carries it; never deleted
 *
 * References instead of a refcount: a message is referenced by queue q while q has it in
 * qent, dlq or qlog (store_queue.c). The message records the queues it went to (qids), so
 * whoever removes a queue's last reference calls store_msg_gc, which checks those few keys
 * and deletes the message when none is left. That costs a few reads at removal and no write
 * at all per reference (a stored refcount would rewrite the whole record at every ack).
 *
 * Appending one message to one queue is 4 puts (msgs, dedup2, dedupx2, qent; +qlog with
 * retention, +sched when it is scheduled). Writer thread for appends and gc; readers
 * (store_msg_read, lt_store_seq_at) in their own read transactions.
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

int store_msg_gc(lt_store *s, MDB_txn *txn, uint64_t seq)
{
    uint8_t sk[8];
    put64(sk, seq);
    MDB_val k = {8, sk}, v;
    int rc = mdb_get(txn, s->msgs, &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if (v.mv_size < MSG_HDR)
        return MDB_CORRUPTED;
    const uint8_t *p = v.mv_data;
    uint32_t nq = get32(p + 24);
    if ((uint64_t)nq * 4 + MSG_HDR > v.mv_size)
        return MDB_CORRUPTED;
    const MDB_dbi refs[3] = {s->qent, s->dlq, s->qlog};
    for (uint32_t i = 0; i < nq; i++) {
        uint8_t kb[QKEY_LEN];
        qkey(kb, get32(p + MSG_HDR + 4 * i), seq);
        for (int j = 0; j < 3; j++) {
            MDB_val qk = {QKEY_LEN, kb}, qv;
            rc = mdb_get(txn, refs[j], &qk, &qv);
            if (rc == 0)
                return 0; /* still needed */
            if (rc != MDB_NOTFOUND)
                return rc;
        }
    }
    rc = mdb_del(txn, s->msgs, &k, NULL);
    if (rc == 0)
        s->batch_freed++;
    return rc;
}

static size_t varint_len(uint64_t n)
{
    size_t l = 1;
    while (n >= 0x80) {
        n >>= 7;
        l++;
    }
    return l;
}

static size_t varint_put(uint8_t *p, uint64_t n)
{
    size_t l = 0;
    while (n >= 0x80) {
        p[l++] = (uint8_t)(n | 0x80);
        n >>= 7;
    }
    p[l++] = (uint8_t)n;
    return l;
}

/* Can cert be left out of env and put back byte for byte? Only when the field is exactly
 * tag 5, minimal varint length, then the DER, inside env. */
static bool cert_strippable(const void *env, size_t len, const lt_store_cert *c)
{
    if (!c || !c->key_id || !c->der || c->der_len == 0 || c->der_len > UINT32_MAX)
        return false;
    const uint8_t *e = env, *f = e + c->field_off;
    if (c->field_off > len || c->field_len > len - c->field_off ||
        c->field_len != 1 + varint_len(c->der_len) + c->der_len || f[0] != ENV_CERT_TAG)
        return false;
    uint8_t vb[10];
    size_t vl = varint_put(vb, c->der_len);
    return memcmp(f + 1, vb, vl) == 0 && f + 1 + vl == c->der &&
           c->field_off <= UINT32_MAX;
}

static bool cert_is_known(const lt_store *s, const uint8_t *key_id)
{
    for (unsigned i = 0; i < s->ncert_known; i++)
        if (memcmp(s->cert_known[i], key_id, KEY_ID_LEN) == 0)
            return true;
    return false;
}

/* Make sure certs holds key_id's certificate (a get per new signer, a put per first use). */
static int cert_store(lt_store *s, const lt_store_cert *c)
{
    if (cert_is_known(s, c->key_id))
        return 0;
    MDB_val k = {KEY_ID_LEN, (void *)c->key_id}, v;
    int rc = mdb_get(s->txn, s->certs, &k, &v);
    if (rc == MDB_NOTFOUND) {
        v.mv_size = c->der_len;
        v.mv_data = (void *)c->der;
        rc = mdb_put(s->txn, s->certs, &k, &v, 0);
    }
    if (rc)
        return rc;
    memcpy(s->cert_known[s->cert_next], c->key_id, KEY_ID_LEN);
    s->cert_next = (s->cert_next + 1) % CERT_CACHE;
    if (s->ncert_known < CERT_CACHE)
        s->ncert_known++;
    return 0;
}

/* ---- hops (docs/network.md) ---- */

lt_err lt_store_hops_encode(const char *const *hops, size_t n, uint8_t *out, size_t *len)
{
    if (n > LT_STORE_HOPS_MAX)
        return LT_EINVAL;
    size_t at = 0;
    out[at++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(hops[i]);
        if (l == 0 || l > 64)
            return LT_EINVAL;
        memcpy(out + at, hops[i], l + 1);
        at += l + 1;
    }
    *len = at;
    return LT_OK;
}

int lt_store_hops_decode(const uint8_t *p, size_t len, const char *names[LT_STORE_HOPS_MAX])
{
    if (len < 1 || p[0] > LT_STORE_HOPS_MAX)
        return -1;
    size_t at = 1;
    for (unsigned i = 0; i < p[0]; i++) {
        const uint8_t *nul = at < len ? memchr(p + at, 0, len - at) : NULL;
        if (!nul || nul == p + at)
            return -1;
        names[i] = (const char *)(p + at);
        at = (size_t)(nul - p) + 1;
    }
    return at == len ? p[0] : -1;
}

lt_err lt_store_append_at(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                          size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                          int64_t now_ms, int64_t due_ms, uint64_t *seq, bool *dup, lt_why *why)
{
    return lt_store_append_hops(s, key, qids, nq, env, len, cert, NULL, 0, now_ms, due_ms, seq,
                                dup, why);
}

lt_err lt_store_append_hops(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                            size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                            const uint8_t *hops, size_t hops_len, int64_t now_ms, int64_t due_ms,
                            uint64_t *seq, bool *dup, lt_why *why)
{
    lt_err err = store_batch_usable(s, why);
    if (err)
        return err;
    const char *names[LT_STORE_HOPS_MAX];
    if (hops_len > 0 &&
        (hops_len > LT_STORE_HOPS_BYTES || lt_store_hops_decode(hops, hops_len, names) < 0))
        return lt_fail(why, LT_EINVAL, "malformed hops (%zu bytes)", hops_len);
    size_t hops_room = hops_len > 0 ? 4 + hops_len : 0;
    if (nq == 0 || nq > LT_STORE_MAX_TARGETS)
        return lt_fail(why, LT_EINVAL, "a message goes to 1..%d queues, not %zu",
                       LT_STORE_MAX_TARGETS, nq);
    if (len == 0 || len > UINT32_MAX)
        return lt_fail(why, LT_EINVAL, "envelope of %zu bytes", len);

    /* The same record within the window: answer with the original, store nothing. */
    uint64_t first = 0;
    err = store_dedup_find(s, key, now_ms, &first, why);
    if (err == LT_OK) {
        *seq = first;
        *dup = true;
        return LT_OK;
    }
    if (err != LT_ENOTFOUND)
        return err;
    int rc;

    /* Check every target before writing anything: all or nothing. */
    if ((err = store_queue_admit(s, qids, nq, len, why)) != LT_OK)
        return err;

    bool strip = cert_strippable(env, len, cert);
    size_t body = len - (strip ? cert->field_len : 0);
    size_t vlen = MSG_HDR + 4 * nq + hops_room + (strip ? CERTREF_LEN : 0) + body;
    /* The batch's size budget: refuse before writing (the caller commits and retries). A
     * message alone in its batch always gets in. */
    size_t pages = vlen / 4096 + 1 + 2 * nq + 2;
    if (s->batch_appends > 0 && s->batch_pages + pages > BATCH_PAGE_BUDGET)
        return lt_fail(why, LT_EAGAIN, "write batch is full: commit and retry");

    /* From here on a refusal can only come from LMDB itself: it fails the batch. */
    uint64_t sq = s->next_seq;
    int64_t stored = now_ms > s->last_ms ? now_ms : s->last_ms;
    if (strip && (rc = cert_store(s, cert)))
        return store_batch_fail(s, rc, "write certificate", why);
    uint8_t sk[8];
    put64(sk, sq);
    MDB_val k = {8, sk}, v = {vlen, NULL};
    rc = mdb_put(s->txn, s->msgs, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return store_batch_fail(s, rc, "write message", why);
    uint8_t *p = v.mv_data;
    put64(p, (uint64_t)stored);
    memcpy(p + 8, key->id, LT_STORE_ID_LEN);
    put32(p + 24, (uint32_t)nq);
    put32(p + 28, (strip ? MSG_CERT : 0) | (hops_room ? MSG_HOPS : 0));
    for (size_t i = 0; i < nq; i++)
        put32(p + MSG_HDR + 4 * i, qids[i]);
    p += MSG_HDR + 4 * nq;
    if (hops_room) {
        put32(p, (uint32_t)hops_len);
        memcpy(p + 4, hops, hops_len);
        p += hops_room;
    }
    if (strip) {
        const uint8_t *e = env;
        memcpy(p, cert->key_id, KEY_ID_LEN);
        put32(p + KEY_ID_LEN, (uint32_t)cert->field_off);
        p += CERTREF_LEN;
        memcpy(p, e, cert->field_off);
        memcpy(p + cert->field_off, e + cert->field_off + cert->field_len,
               len - cert->field_off - cert->field_len);
    } else {
        memcpy(p, env, len);
    }

    if ((err = store_dedup_put(s, key, sq, stored, why)) != LT_OK)
        return err;
    if ((err = store_queue_enqueue(s, qids, nq, sq, stored, (uint32_t)len, due_ms, why)) != LT_OK)
        return err;
    s->batch_pages += pages;
    s->batch_appends++;
    s->next_seq = sq + 1;
    s->last_ms = stored;
    *seq = sq;
    *dup = false;
    return LT_OK;
}

lt_err lt_store_append_cert(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                            size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                            int64_t now_ms, uint64_t *seq, bool *dup, lt_why *why)
{
    return lt_store_append_at(s, key, qids, nq, env, len, cert, now_ms, 0, seq, dup, why);
}

lt_err lt_store_append(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                       size_t nq, const void *env, size_t len, int64_t now_ms, uint64_t *seq,
                       bool *dup, lt_why *why)
{
    return lt_store_append_at(s, key, qids, nq, env, len, NULL, now_ms, 0, seq, dup, why);
}

lt_err store_msg_queues(lt_store *s, uint64_t seq, uint32_t *qids, size_t *nq, lt_why *why)
{
    uint8_t sk[8];
    put64(sk, seq);
    MDB_val k = {8, sk}, v;
    int rc = mdb_get(s->txn, s->msgs, &k, &v);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOT_SCHEDULED, "message %llu is no longer stored",
                       (unsigned long long)seq);
    if (rc)
        return store_mdb_fail(s, why, rc, "read message");
    const uint8_t *p = v.mv_data;
    uint32_t n = v.mv_size >= MSG_HDR ? get32(p + 24) : UINT32_MAX;
    if (n > LT_STORE_MAX_TARGETS || (uint64_t)n * 4 + MSG_HDR > v.mv_size)
        return lt_fail(why, LT_ESTORE, "message %llu is corrupt", (unsigned long long)seq);
    for (uint32_t i = 0; i < n; i++)
        qids[i] = get32(p + MSG_HDR + 4 * i);
    *nq = n;
    return LT_OK;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Fill the message part of e (id, env, stored) from msgs[seq]; the envelope points into
 * the map, or into rb when its certificate had to be put back. */
lt_err store_msg_read(lt_store *s, MDB_txn *txn, uint64_t seq, lt_store_entry *e, store_rbuf *rb,
                       lt_why *why)
{
    uint8_t sk[8];
    put64(sk, seq);
    MDB_val k = {8, sk}, v;
    int rc = mdb_get(txn, s->msgs, &k, &v);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ESTORE, "message %llu is referenced but missing",
                       (unsigned long long)seq);
    if (rc)
        return store_mdb_fail(s, why, rc, "read message");
    const uint8_t *p = v.mv_data;
    if (v.mv_size < MSG_HDR || (uint64_t)get32(p + 24) * 4 + MSG_HDR > v.mv_size)
        return lt_fail(why, LT_ESTORE, "message %llu is corrupt", (unsigned long long)seq);
    size_t off = MSG_HDR + 4 * (size_t)get32(p + 24);
    e->seq = seq;
    e->stored_ms = (int64_t)get64(p);
    e->id = p + 8;
    e->nhops = 0;
    if (get32(p + 28) & MSG_HOPS) {
        size_t room = v.mv_size - off, hl = room >= 4 ? get32(p + off) : 0;
        int nh = room >= 4 && hl <= room - 4 ? lt_store_hops_decode(p + off + 4, hl, e->hops)
                                              : -1;
        if (nh < 0)
            return lt_fail(why, LT_ESTORE, "message %llu: its hops are corrupt",
                           (unsigned long long)seq);
        e->nhops = (size_t)nh;
        off += 4 + hl;
    }
    if (!(get32(p + 28) & MSG_CERT)) {
        e->env = p + off;
        e->env_len = v.mv_size - off;
        return LT_OK;
    }
    if (v.mv_size - off < CERTREF_LEN)
        return lt_fail(why, LT_ESTORE, "message %llu is corrupt", (unsigned long long)seq);
    const uint8_t *body = p + off + CERTREF_LEN;
    size_t blen = v.mv_size - off - CERTREF_LEN, at = get32(p + off + KEY_ID_LEN);
    MDB_val ck = {KEY_ID_LEN, (void *)(p + off)}, cv;
    int crc = mdb_get(txn, s->certs, &ck, &cv);
    if (crc || at > blen)
        return crc && crc != MDB_NOTFOUND
                   ? store_mdb_fail(s, why, crc, "read certificate")
                   : lt_fail(why, LT_ESTORE, "message %llu: its certificate is missing",
                             (unsigned long long)seq);
    uint8_t vb[10];
    size_t vl = varint_put(vb, cv.mv_size);
    size_t need = blen + 1 + vl + cv.mv_size;
    if (need > rb->cap) {
        size_t ncap = rb->cap ? rb->cap : 4096;
        while (ncap < need)
            ncap *= 2;
        uint8_t *np = realloc(rb->p, ncap);
        if (!np)
            return lt_fail(why, LT_ENOMEM, "out of memory reading message %llu",
                           (unsigned long long)seq);
        rb->p = np;
        rb->cap = ncap;
    }
    uint8_t *o = rb->p;
    memcpy(o, body, at);
    o += at;
    *o++ = ENV_CERT_TAG;
    memcpy(o, vb, vl);
    o += vl;
    memcpy(o, cv.mv_data, cv.mv_size);
    o += cv.mv_size;
    memcpy(o, body + at, blen - at);
    e->env = rb->p;
    e->env_len = need;
    return LT_OK;
}

lt_err lt_store_seq_at(lt_store *s, uint32_t qid, int64_t at_ms, uint64_t *seq, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    MDB_cursor *c = NULL;
    uint64_t hi = 1, lo = 1;
    if ((err = store_queue_known(s, txn, qid, why)))
        goto out;
    if (store_meta_get_u64(s, txn, "next_seq", &hi) != LT_OK)
        hi = 1;
    int rc = mdb_cursor_open(txn, s->msgs, &c);
    if (rc) {
        err = store_mdb_fail(s, why, rc, "open cursor");
        goto out;
    }
    /* Stored times never decrease with seq (append clamps them), so the first seq stored
     * at or after at_ms is found by bisection over the seq space; deleted seqs are skipped
     * by SET_RANGE (each probe lands on the next message that still exists). */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t kb[8];
        put64(kb, mid);
        MDB_val k = {8, kb}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            hi = mid;
            continue;
        }
        if (rc || v.mv_size < MSG_HDR || k.mv_size != 8) {
            err = rc ? store_mdb_fail(s, why, rc, "seek by time")
                     : lt_fail(why, LT_ESTORE, "corrupt message");
            goto out;
        }
        uint64_t found = get64(k.mv_data);
        if ((int64_t)get64(v.mv_data) >= at_ms)
            hi = mid;
        else
            lo = found + 1;
    }
    *seq = lo;
out:
    if (c)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return err;
}

