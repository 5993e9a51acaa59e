/*
 * store_msg.c - the store's messages: each envelope stored once, whatever the number of
 * queues it goes to, and each signer's certificate once.
 *
 *   mpack   last seq u64 -> +-----------+------+-----------+-----------------+---------+--------+
 *                            | first u64 | n u32| flags u32 | off u32 × (n+1) | records | [pool] |
 *                            +-----------+------+-----------+-----------------+---------+--------+
 *           the messages a batch appended, seqs first..last (= first + n - 1), packed into
 *           one value: record i (seq first + i) is records[off[i] .. off[i+1]). A pack ends
 *           with its batch, or at PACK_MAX bytes of records and pool. Written once
 *           (MDB_APPEND), never updated; deleted when its last live record is.
 *           flags & PACK_POOL (layout 6; 0 before): the pool follows, at records[off[n]]:
 *             [np u32][poff u32 × (np+1)][bytes]   string j is bytes[poff[j] .. poff[j+1])
 *           np <= POOL_NMAX, bytes <= POOL_MAX; each string is there once.
 *   mlive   last seq u64 -> [live u32][n u32][bitmap, bit i = record i is live]
 *           the pack's records still referenced (store_msg_gc clears them).
 *   record  +----------+--------+-------+-------+------------+------+---------+---------+------+
 *           | stored_ms| id[16] | nq u32| flags | qids u32×nq|[hops]|[certref]|[splices]| body |
 *           +----------+--------+-------+-------+------------+------+---------+---------+------+
 *           i64          MSG_HDR = 32 bytes, then 4·nq. The body is the envelope as
 *           received, less what the flags say was left out; every read puts it back, so
 *           readers always get the envelope exactly as received:
 *           MSG_HOPS (layout 4): [len u32][hops]: the hops the record arrived with
 *             (lt_store_hops_encode: n, then n NUL-terminated names), given back by every
 *             read; nothing left out.
 *           MSG_CERT: a certref [key_id 32][at u32]: the certificate field (Envelope.
 *             certificate, tag 5, length, DER) was at byte `at` of the envelope; its DER
 *             is in `certs`. Layout 6 writes it only when the pool is full.
 *           MSG_SPLICE (layout 6): [ns][gap, code] × ns, varints, in envelope order: gap
 *             counts the envelope's bytes between the end of the previous entry's (or 0)
 *             and this one; code 2j: pool string j was there; code 2j + 1: the
 *             certificate field whose key id is pool string j (once at most).
 *           Neither: the envelope is stored verbatim.
 *   msgs    seq u64 -> record       layout 4 and older: one record per value. Still read,
 *                                   and deleted record by record; nothing new goes there.
 *   certs   key_id[32] -> certificate DER       one row per signer, written by the first
 *                                               append that carries it; never deleted
 *
 * Why packs: a 1 KiB-payload envelope without its certificate is ~1.4 KB, so LMDB's 4 KiB
 * leaf pages held two of them and left ~1 KB of every page empty (2,048 bytes on disk per
 * message). A pack spans contiguous overflow pages and wastes at most part of its last one;
 * it is also one B-tree insert per batch instead of one per message. The cost: a pack's
 * pages are freed only when every record in it is gone.
 *
 * Why a pool: the envelopes of one signed batch carry the same signature (~72 bytes for
 * ECDSA), Merkle root (32) and, of their 6 siblings (a batch of 64), about 4 the others
 * carry too (126 distinct nodes for 64 × 6); and those of one publisher the same header
 * source, topic, record type (20-40 bytes each) and signer key id (32). A pack usually
 * holds a whole batch, so those values (16 bytes or more; the append walks the envelope's
 * wire format to find them, and stores whatever it cannot walk as it is) go once into the
 * pack's pool, and each record keeps a splice list of 2-4 bytes per value. Every candidate
 * value is pooled, including those no other record shares (a batch's 64 leaf siblings,
 * per-message signatures): each costs a 4-byte pool offset and a splice for nothing, ~7
 * bytes, where pooling only repeats would need records that refer to the bytes of other
 * records (2-3 bytes more per splice, for every one of ~12) or a repeated value stored twice.
 * Pooling every value also keeps the pool self-contained: a reader needs the pack's header,
 * the record and the pool, never another record.
 * The certificate is one more splice: its key id is the header's signer_key_id, already in
 * the pool, so it costs 2-3 bytes where a certref took 36. Measured with bench_lt_load (200k
 * messages of 1 KiB, publish only), mpack pages per message: batch-64 signatures 1,649 ->
 * 1,301 bytes (12 splices, 31 bytes of lists, 78 of pool), per-message 1,400 -> 1,277 (5
 * splices); the values no other record shares cost ~7 bytes a message in either case.
 * Appending walks the envelope and looks its values up (~0.3 us with the envelope in the
 * cache); reading copies the envelope into the reader's buffer (store_rbuf), as a
 * certificate already did.
 *
 * References instead of a refcount: a message is referenced by queue q while q has it in
 * qent, dlq or qlog (store_queue.c). The message records the queues it went to (qids), so
 * whoever removes a queue's last reference calls store_msg_gc, which checks those few keys
 * and deletes the message when none is left. That costs a few reads at removal and no write
 * at all per reference (a stored refcount would rewrite the whole record at every ack).
 *
 * Appending one message to one queue is 2 puts (the current dedup generation, qent; +dsrc
 * for a source seen first, +qlog with retention, +sched when it is scheduled) and its share
 * of its pack's 2. Writer thread for
 * appends, gc and the open batch's pack and pool (s->pk; store_msg_read_batch reads them);
 * readers (store_msg_read, lt_store_seq_at) in their own read transactions, which never look
 * at s->pk.
 */
#include "store_int.h"

#include "envelope.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- packs --------------------------------------------------------------------------------- */

#define PACK_NMAX 4096u /* records in one pack at most: its bitmap fits MLIVE_MAX */
#define MLIVE_MAX (8u + PACK_NMAX / 8u)

/* A pool as a reader sees it: a pack's on disk, or the open batch's in memory (the same
 * layout). String i is bytes[get32(off + 4i) .. get32(off + 4i + 4)). */
typedef struct pool_view {
    uint32_t n;
    const uint8_t *off;
    const uint8_t *bytes;
    size_t len;
} pool_view;

/* Where a message's record is. */
typedef enum { AT_PENDING, AT_PACK, AT_LEGACY } msg_at;
typedef struct msg_loc {
    msg_at at;
    MDB_val rec;
    pool_view pool; /* AT_PENDING, AT_PACK: its pack's pool (n = 0: none) */
    uint8_t key[8]; /* AT_PACK: the pack's key; AT_LEGACY: the record's */
    uint32_t i;     /* AT_PENDING, AT_PACK: the record's index in its pack */
    const char *bad; /* MDB_CORRUPTED from the pack: what is wrong with it */
} msg_loc;

/* Record seq of the pack pv into rec, and the pack's pool. MDB_NOTFOUND: not in this pack;
 * MDB_CORRUPTED (*bad says why). */
static int pack_record(const MDB_val *pv, uint64_t seq, MDB_val *rec, uint32_t *idx,
                       pool_view *pool, const char **bad)
{
    const uint8_t *p = pv->mv_data;
    *bad = "header";
    if (pv->mv_size < PACK_HDR)
        return MDB_CORRUPTED;
    uint64_t first = get64(p);
    uint32_t n = get32(p + 8), flags = get32(p + 12);
    size_t base = PACK_HDR + 4 * ((size_t)n + 1);
    if (n == 0 || n > PACK_NMAX || base > pv->mv_size || (flags & ~PACK_POOL))
        return MDB_CORRUPTED;
    if (seq < first || seq - first >= n)
        return MDB_NOTFOUND;
    uint32_t i = (uint32_t)(seq - first);
    uint32_t a = get32(p + PACK_HDR + 4 * (size_t)i), b = get32(p + PACK_HDR + 4 * (size_t)i + 4);
    size_t room = pv->mv_size - base, end = get32(p + PACK_HDR + 4 * (size_t)n);
    *bad = "record offsets";
    if (a > b || b > end || end > room)
        return MDB_CORRUPTED;
    pool->n = 0;
    if (flags & PACK_POOL) { /* [np u32][off u32 × (np + 1)][bytes] after the records */
        const uint8_t *q = p + base + end;
        room -= end;
        *bad = "pool header";
        if (room < 4 || get32(q) > POOL_NMAX || 4 * ((size_t)get32(q) + 1) > room - 4)
            return MDB_CORRUPTED;
        pool->n = get32(q);
        pool->off = q + 4;
        pool->bytes = q + 4 + 4 * ((size_t)pool->n + 1);
        pool->len = room - 4 - 4 * ((size_t)pool->n + 1);
    }
    rec->mv_data = (uint8_t *)p + base + a;
    rec->mv_size = b - a;
    *idx = i;
    *bad = NULL;
    return 0;
}

/* String i of pool into *src, *len; false when there is none (a corrupt record or pool). */
static bool pool_get(const pool_view *pool, uint64_t i, const uint8_t **src, size_t *len)
{
    if (i >= pool->n)
        return false;
    uint32_t a = get32(pool->off + 4 * i), b = get32(pool->off + 4 * i + 4);
    if (a > b || b > pool->len)
        return false;
    *src = pool->bytes + a;
    *len = b - a;
    return true;
}

/* Find message seq: in the open batch's pack (writer only: s->pk is the writer's), in
 * mpack, or in the msgs of an older layout. LMDB rc (MDB_NOTFOUND: not stored). */
static int msg_locate(lt_store *s, MDB_txn *txn, bool writer, uint64_t seq, msg_loc *l)
{
    l->bad = NULL;
    if (writer && s->pk.n > 0 && seq >= s->pk.first && seq - s->pk.first < s->pk.n) {
        uint32_t i = (uint32_t)(seq - s->pk.first);
        if (s->pk.dead[i])
            return MDB_NOTFOUND;
        l->at = AT_PENDING;
        l->i = i;
        l->rec.mv_data = s->pk.buf + s->pk.off[i];
        l->rec.mv_size = s->pk.off[i + 1] - s->pk.off[i];
        l->pool = (pool_view){s->pk.pool.n, s->pk.pool.off, s->pk.pool.bytes, s->pk.pool.len};
        return 0;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->mpack, &c);
    if (rc)
        return rc;
    put64(l->key, seq);
    MDB_val k = {8, l->key}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); /* the pack whose last seq is >= seq */
    if (rc == 0 && k.mv_size != 8) {
        rc = MDB_CORRUPTED;
        l->bad = "key";
    } else if (rc == 0) {
        rc = pack_record(&v, seq, &l->rec, &l->i, &l->pool, &l->bad);
        if (rc != MDB_CORRUPTED)
            l->bad = NULL;
        if (rc == 0) {
            l->at = AT_PACK;
            memcpy(l->key, k.mv_data, 8);
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND || !s->legacy_msgs)
        return rc;
    put64(l->key, seq);
    k = (MDB_val){8, l->key};
    rc = mdb_get(txn, s->msgs, &k, &l->rec);
    if (rc == 0) {
        l->at = AT_LEGACY;
        l->pool.n = 0;
    }
    return rc;
}

/* Record i of the pack keyed key is no longer referenced: clear its live bit, and delete
 * the pack when it was the last. */
static int pack_kill(lt_store *s, MDB_txn *txn, const uint8_t key[8], uint32_t i)
{
    MDB_val k = {8, (void *)key}, v;
    int rc = mdb_get(txn, s->mlive, &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc; /* a pack without its live row */
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 8 || v.mv_size > MLIVE_MAX)
        return MDB_CORRUPTED;
    uint32_t live = get32(p), n = get32(p + 4);
    if (i >= n || v.mv_size < 8 + ((size_t)n + 7) / 8)
        return MDB_CORRUPTED;
    if (!(p[8 + i / 8] & (1u << (i % 8))))
        return 0; /* deleted already */
    if (live <= 1) {
        if ((rc = mdb_del(txn, s->mpack, &k, NULL)) || (rc = mdb_del(txn, s->mlive, &k, NULL)))
            return rc;
        s->batch_freed++;
        return 0;
    }
    uint8_t nb[MLIVE_MAX];
    memcpy(nb, p, v.mv_size);
    put32(nb, live - 1);
    nb[8 + i / 8] &= (uint8_t) ~(1u << (i % 8));
    MDB_val nv = {v.mv_size, nb};
    return mdb_put(txn, s->mlive, &k, &nv, 0);
}

void store_msg_reset(lt_store *s)
{
    s->pk.n = 0;
    s->pk.len = 0;
    if (s->pk.pool.n > 0)
        memset(s->pk.pool.slot, 0, sizeof s->pk.pool.slot);
    s->pk.pool.n = 0;
    s->pk.pool.len = 0; /* off[0] stays 0 */
}

int store_msg_flush(lt_store *s, MDB_txn *txn)
{
    uint32_t n = s->pk.n, live = 0;
    if (n == 0)
        return 0;
    uint8_t lb[MLIVE_MAX];
    memset(lb, 0, sizeof lb);
    for (uint32_t i = 0; i < n; i++)
        if (!s->pk.dead[i]) {
            live++;
            lb[8 + i / 8] |= (uint8_t)(1u << (i % 8));
        }
    int rc = 0;
    if (live > 0) { /* a pack whose records the batch itself deleted is never written */
        const store_pool *pl = &s->pk.pool;
        size_t hdr = PACK_HDR + 4 * ((size_t)n + 1);
        size_t pool = pl->n > 0 ? 4 + 4 * ((size_t)pl->n + 1) + pl->len : 0;
        uint8_t kb[8];
        put64(kb, s->pk.first + n - 1);
        MDB_val k = {8, kb}, v = {hdr + s->pk.len + pool, NULL};
        rc = mdb_put(txn, s->mpack, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rc == 0) {
            uint8_t *p = v.mv_data;
            put64(p, s->pk.first);
            put32(p + 8, n);
            put32(p + 12, pl->n > 0 ? PACK_POOL : 0);
            for (uint32_t i = 0; i <= n; i++)
                put32(p + PACK_HDR + 4 * (size_t)i, s->pk.off[i]);
            memcpy(p + hdr, s->pk.buf, s->pk.len);
            if (pool) {
                uint8_t *q = p + hdr + s->pk.len;
                put32(q, pl->n);
                memcpy(q + 4, pl->off, 4 * ((size_t)pl->n + 1));
                memcpy(q + 4 + 4 * ((size_t)pl->n + 1), pl->bytes, pl->len);
            }
            put32(lb, live);
            put32(lb + 4, n);
            MDB_val lv = {8 + ((size_t)n + 7) / 8, lb};
            rc = mdb_put(txn, s->mlive, &k, &lv, MDB_APPEND);
        }
    }
    store_msg_reset(s);
    return rc;
}

/* Room for a record of at most vlen bytes with seq in the open batch's pack (ending the
 * pack first when seq does not follow it or it is full); pack_trim gives back what the
 * record did not use. NULL with *rc set (LMDB rc, ENOMEM). */
static uint8_t *pack_reserve(lt_store *s, uint64_t seq, size_t vlen, int *rc)
{
    if (s->pk.n > 0 && (seq != s->pk.first + s->pk.n ||
                        s->pk.len + s->pk.pool.len + vlen > PACK_MAX || s->pk.n >= PACK_NMAX)) {
        if ((*rc = store_msg_flush(s, s->txn)))
            return NULL;
    }
    if (vlen > UINT32_MAX - s->pk.len) {
        *rc = MDB_BAD_VALSIZE;
        return NULL;
    }
    if (s->pk.len + vlen > s->pk.cap) {
        size_t ncap = s->pk.cap ? s->pk.cap : 65536;
        while (ncap < s->pk.len + vlen)
            ncap *= 2;
        uint8_t *nb = realloc(s->pk.buf, ncap);
        if (!nb) {
            *rc = ENOMEM;
            return NULL;
        }
        s->pk.buf = nb;
        s->pk.cap = ncap;
    }
    if ((size_t)s->pk.n + 2 > s->pk.ocap) {
        size_t ncap = s->pk.ocap ? s->pk.ocap * 2 : 256;
        uint32_t *no = realloc(s->pk.off, ncap * sizeof *no);
        if (no)
            s->pk.off = no;
        uint8_t *nd = realloc(s->pk.dead, ncap);
        if (nd)
            s->pk.dead = nd;
        if (!no || !nd) {
            *rc = ENOMEM;
            return NULL;
        }
        s->pk.ocap = ncap;
    }
    if (s->pk.n == 0) {
        s->pk.first = seq;
        s->pk.off[0] = 0;
    }
    uint8_t *p = s->pk.buf + s->pk.len;
    s->pk.dead[s->pk.n] = 0;
    s->pk.len += vlen;
    s->pk.n++;
    s->pk.off[s->pk.n] = (uint32_t)s->pk.len;
    return p;
}

/* The last record reserved ends at end. */
static void pack_trim(lt_store *s, const uint8_t *end)
{
    assert(s->pk.n > 0 && end >= s->pk.buf + s->pk.off[s->pk.n - 1] &&
           end <= s->pk.buf + s->pk.len);
    s->pk.len = (size_t)(end - s->pk.buf);
    s->pk.off[s->pk.n] = (uint32_t)s->pk.len;
}

int store_msg_open(lt_store *s, MDB_txn *txn, uint64_t *last)
{
    int rc = mdb_dbi_open(txn, "mpack", MDB_CREATE, &s->mpack);
    if (!rc)
        rc = mdb_dbi_open(txn, "mlive", MDB_CREATE, &s->mlive);
    *last = 0;
    const MDB_dbi dbs[2] = {s->msgs, s->mpack};
    for (int i = 0; i < 2 && !rc; i++) {
        MDB_cursor *c;
        MDB_val k, v;
        if ((rc = mdb_cursor_open(txn, dbs[i], &c)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == 8 && get64(k.mv_data) > *last)
            *last = get64(k.mv_data);
        if (i == 0)
            s->legacy_msgs = rc == 0;
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return rc;
}

int store_msg_gc(lt_store *s, MDB_txn *txn, uint64_t seq)
{
    msg_loc l;
    int rc = msg_locate(s, txn, true, seq, &l);
    if (rc)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if (l.rec.mv_size < MSG_HDR)
        return MDB_CORRUPTED;
    const uint8_t *p = l.rec.mv_data;
    uint32_t nq = get32(p + 24);
    if ((uint64_t)nq * 4 + MSG_HDR > l.rec.mv_size)
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
    switch (l.at) {
    case AT_PENDING:
        s->pk.dead[l.i] = 1;
        return 0;
    case AT_PACK:
        return pack_kill(s, txn, l.key, l.i);
    case AT_LEGACY:
    default: {
        MDB_val k = {8, l.key};
        rc = mdb_del(txn, s->msgs, &k, NULL);
        if (rc == 0)
            s->batch_freed++;
        return rc;
    }
    }
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

/* ---- splices: values left out of a record, kept once in its pack's pool ---- */

/* Shorter values stay in their record (a splice costs 2-4 bytes); so do longer ones (no
 * signature or name is that long), so that one value cannot take much of the pool. */
#define POOL_MINLEN 16u
#define POOL_VMAX 1024u
/* Values of one envelope pooled at most: a batch of 65536 has 16 siblings, plus the
 * signature, the root and 4 header fields. */
#define SPLICE_NMAX 32u
#define SPLICES_MAX(n) (1 + 7 * (size_t)(n)) /* [ns][gap ≤ 5 bytes, code ≤ 2] × n */

/* env[at .. at + len) */
typedef struct span {
    size_t at, len;
} span;

/* A piece put back: the bytes src[0..len) at offset at of the envelope. */
typedef struct piece {
    size_t at;
    const uint8_t *src;
    size_t len;
} piece;

/* lt_env_wire_varint, its one-byte case (tags, short lengths) inline */
static inline bool varint_get(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    if (*at < n && p[*at] < 0x80) {
        *v = p[(*at)++];
        return true;
    }
    return lt_env_wire_varint(p, n, at, v);
}

enum { IN_ENVELOPE, IN_HEADER, IN_BATCH };

/* Does field f of a message of kind `in` hold a value worth pooling: one the envelopes of a
 * signed batch, or of one publisher, share? */
static bool pooled_field(int in, uint64_t f)
{
    switch (in) {
    case IN_ENVELOPE:
        return f == 3; /* Envelope.signature: the batch's */
    case IN_HEADER:    /* Header.source, topic, record_type, signer_key_id */
        return f == 2 || f == 3 || f == 4 || f == 7;
    default: /* BatchProof.siblings, root */
        return f == 3 || f == 4;
    }
}

/* Walk the protobuf message p[0..n) (at offset base of the envelope) of kind `in`, adding the
 * values to pool to v (up to SPLICE_NMAX, in order). false when the wire format is not one we
 * can walk (the envelope is then stored verbatim): this never judges the envelope, the
 * verifier did. Envelope.header and .batch are walked into; nothing deeper. */
static bool walk(const uint8_t *p, size_t n, size_t base, int in, span *v, size_t *nv)
{
    size_t at = 0;
    while (at < n) {
        uint64_t key, x;
        if (!varint_get(p, n, &at, &key) || key >> 3 == 0)
            return false;
        switch (key & 7) {
        case 0:
            if (!varint_get(p, n, &at, &x))
                return false;
            break;
        case 1:
        case 5:
            x = (key & 7) == 1 ? 8 : 4;
            if (n - at < x)
                return false;
            at += x;
            break;
        case 2:
            if (!varint_get(p, n, &at, &x) || x > n - at)
                return false;
            if (in == IN_ENVELOPE && (key >> 3 == 1 || key >> 3 == 4)) {
                if (!walk(p + at, x, base + at, key >> 3 == 1 ? IN_HEADER : IN_BATCH, v, nv))
                    return false;
            } else if (pooled_field(in, key >> 3) && x >= POOL_MINLEN && x <= POOL_VMAX &&
                       *nv < SPLICE_NMAX) {
                v[(*nv)++] = (span){base + at, x};
            }
            at += x;
            break;
        default:
            return false;
        }
    }
    return true;
}

/* The values of env to pool, in order, none inside the certificate field when it is left
 * out (hole); 0 when there are none or env cannot be walked. */
static size_t env_values(const uint8_t *env, size_t len, const span *hole, span v[SPLICE_NMAX])
{
    size_t nv = 0, k = 0;
    if (!walk(env, len, 0, IN_ENVELOPE, v, &nv))
        return 0;
    for (size_t i = 0; i < nv; i++)
        if (!hole || v[i].at + v[i].len <= hole->at || v[i].at >= hole->at + hole->len)
            v[k++] = v[i];
    return k;
}

/* Pool strings are hashes, signatures and names of 16 bytes or more: their first and last 8
 * bytes and their length tell them apart, at a fraction of the cost of hashing every byte. */
static uint32_t pool_hash(const uint8_t *p, size_t n)
{
    uint64_t a, b;
    assert(n >= 8);
    memcpy(&a, p, 8);
    memcpy(&b, p + n - 8, 8);
    return (uint32_t)(((a ^ (b * 0x9e3779b97f4a7c15u) ^ n) * 0xff51afd7ed558ccdu) >> 32);
}

/* The index of the string p[0..n) in the open batch's pack's pool, added when new; -1 when
 * the pool is full (the value then stays in its record). */
static int pool_put(store_pool *pl, const uint8_t *p, size_t n)
{
    uint32_t i = pool_hash(p, n) & (POOL_SLOTS - 1);
    for (; pl->slot[i]; i = (i + 1) & (POOL_SLOTS - 1)) { /* slots outnumber strings */
        uint32_t e = pl->slot[i], a = get32(pl->off + 4 * (e - 1)), b = get32(pl->off + 4 * e);
        if (b - a == n && memcmp(pl->bytes + a, p, n) == 0)
            return (int)e - 1;
    }
    if (pl->n >= POOL_NMAX || n > POOL_MAX - pl->len)
        return -1;
    memcpy(pl->bytes + pl->len, p, n);
    pl->len += (uint32_t)n;
    pl->n++;
    put32(pl->off + 4 * pl->n, pl->len);
    pl->slot[i] = (uint16_t)pl->n;
    return (int)pl->n - 1;
}

/* Copy env[0..len) to out without the holes h[0..n) (in order, disjoint): the bytes
 * written. splice_out is its inverse. */
static size_t cut(const uint8_t *env, size_t len, const span *h, size_t n, uint8_t *out)
{
    size_t at = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + o, env + at, h[i].at - at);
        o += h[i].at - at;
        at = h[i].at + h[i].len;
    }
    memcpy(out + o, env + at, len - at);
    return o + len - at;
}

/* Put sp[0..n) (by offset) back into body[0..blen): out gets blen + their lengths. false,
 * out partly written, when they do not fit the body (a corrupt record). */
static bool splice_out(const uint8_t *body, size_t blen, const piece *sp, size_t n, uint8_t *out)
{
    size_t o = 0, b = 0; /* how far out and body are */
    for (size_t i = 0; i < n; i++) {
        if (sp[i].at < o || sp[i].at - o > blen - b)
            return false;
        size_t k = sp[i].at - o;
        memcpy(out + o, body + b, k);
        o += k;
        b += k;
        memcpy(out + o, sp[i].src, sp[i].len);
        o += sp[i].len;
    }
    memcpy(out + o, body + b, blen - b);
    return true;
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
    span hole = {strip ? cert->field_off : 0, strip ? cert->field_len : 0}, v[SPLICE_NMAX];
    size_t nv = env_values(env, len, strip ? &hole : NULL, v);
    /* at most: every value left in, and a splice list for all of them */
    size_t vlen = MSG_HDR + 4 * nq + hops_room + (strip ? CERTREF_LEN : 0) + len - hole.len +
                  SPLICES_MAX(nv + strip);
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
    uint8_t *rec = pack_reserve(s, sq, vlen, &rc), *p = rec;
    if (!rec)
        return store_batch_fail(s, rc, "write message", why);
    put64(p, (uint64_t)stored);
    memcpy(p + 8, key->id, LT_STORE_ID_LEN);
    put32(p + 24, (uint32_t)nq);
    for (size_t i = 0; i < nq; i++)
        put32(p + MSG_HDR + 4 * i, qids[i]);
    p += MSG_HDR + 4 * nq;
    if (hops_room) {
        put32(p, (uint32_t)hops_len);
        memcpy(p + 4, hops, hops_len);
        p += hops_room;
    }
    /* The values into the pool (a value already there costs its record 2-4 bytes), and the
     * holes they leave, in order. The certificate is one more splice, its key id a pool
     * string (the header's signer_key_id usually is already); only when the pool is full
     * does it take a certref, as in layout 5. */
    int cert_code = strip ? pool_put(&s->pk.pool, cert->key_id, KEY_ID_LEN) : -1;
    if (strip && cert_code < 0) {
        memcpy(p, cert->key_id, KEY_ID_LEN);
        put32(p + KEY_ID_LEN, (uint32_t)cert->field_off);
        p += CERTREF_LEN;
    }
    span holes[SPLICE_NMAX + 1];
    size_t nh = 0, ns = 0, prev = 0;
    bool cert_cut = !strip;
    uint8_t *sl = p + 1;
    for (size_t i = 0; i <= nv; i++) {
        if (!cert_cut && (i == nv || hole.at < v[i].at)) {
            holes[nh++] = hole;
            cert_cut = true;
            if (cert_code >= 0) {
                sl += varint_put(sl, hole.at - prev);
                sl += varint_put(sl, (uint64_t)cert_code << 1 | 1);
                prev = hole.at + hole.len;
                ns++;
            }
        }
        int idx = i < nv ? pool_put(&s->pk.pool, (const uint8_t *)env + v[i].at, v[i].len) : -1;
        if (idx < 0)
            continue;
        holes[nh++] = v[i];
        sl += varint_put(sl, v[i].at - prev);
        sl += varint_put(sl, (uint64_t)idx << 1);
        prev = v[i].at + v[i].len;
        ns++;
    }
    if (ns > 0) {
        p[0] = (uint8_t)ns; /* a varint: ns <= SPLICE_NMAX + 1 */
        p = sl;
    }
    put32(rec + 28, (strip && cert_code < 0 ? MSG_CERT : 0) | (hops_room ? MSG_HOPS : 0) |
                        (ns ? MSG_SPLICE : 0));
    pack_trim(s, p + cut(env, len, holes, nh, p));

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
    msg_loc l;
    int rc = msg_locate(s, s->txn, true, seq, &l);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOT_SCHEDULED, "message %llu is no longer stored",
                       (unsigned long long)seq);
    if (rc)
        return store_mdb_fail(s, why, rc, "read message");
    MDB_val v = l.rec;
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

/* A corrupt record: the reason names the message and what is wrong with it. */
static lt_err corrupt(lt_why *why, uint64_t seq, const char *what)
{
    return lt_fail(why, LT_ESTORE, "message %llu is corrupt: %s", (unsigned long long)seq, what);
}

/* The certificate field under key_id: its tag and length into tl (11 bytes), then its DER
 * from certs, as two pieces at offset at into sp[0..2). */
static lt_err cert_pieces(lt_store *s, MDB_txn *txn, uint64_t seq, const uint8_t *key_id, size_t at,
                          uint8_t *tl, piece *sp, lt_why *why)
{
    MDB_val ck = {KEY_ID_LEN, (void *)key_id}, cv;
    int rc = mdb_get(txn, s->certs, &ck, &cv);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ESTORE, "message %llu: its certificate is missing",
                       (unsigned long long)seq);
    if (rc)
        return store_mdb_fail(s, why, rc, "read certificate");
    tl[0] = ENV_CERT_TAG;
    size_t tlen = 1 + varint_put(tl + 1, cv.mv_size);
    sp[0] = (piece){at, tl, tlen};
    sp[1] = (piece){at + tlen, cv.mv_data, cv.mv_size};
    return LT_OK;
}

/* Read the splice list at p[0..n) (a record's, after any certref) against pool into
 * sp[0..*np), in offset order; *used = its bytes. An entry is [gap][code]: gap counts the
 * envelope's bytes from the end of the previous entry's, code is 2·i for pool string i, or
 * 2·i + 1 for the certificate field whose key id is pool string i (at most one: its tag
 * and length go to tl). LT_ESTORE when it is corrupt or the certificate missing. */
static lt_err splices_read(lt_store *s, MDB_txn *txn, uint64_t seq, const uint8_t *p, size_t n,
                           const pool_view *pool, uint8_t *tl, piece *sp, size_t *np, size_t *used,
                           lt_why *why)
{
    size_t at = 0, k = 0;
    uint64_t cnt, gap, code, prev = 0;
    bool cert = false;
    if (!varint_get(p, n, &at, &cnt) || cnt == 0 || cnt > SPLICE_NMAX + 1)
        return corrupt(why, seq, "its splice list");
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *src;
        size_t len;
        if (!varint_get(p, n, &at, &gap) || !varint_get(p, n, &at, &code) || gap > UINT32_MAX ||
            !pool_get(pool, code >> 1, &src, &len) || ((code & 1) && (cert || len != KEY_ID_LEN)))
            return corrupt(why, seq, "its splice list");
        size_t to = (size_t)(prev + gap); /* < 33 · (2^32 + POOL_MAX): no overflow */
        if (code & 1) {
            lt_err err = cert_pieces(s, txn, seq, src, to, tl, sp + k, why);
            if (err)
                return err;
            cert = true;
            k += 2;
            prev = sp[k - 1].at + sp[k - 1].len;
        } else {
            sp[k++] = (piece){to, src, len};
            prev = to + len;
        }
    }
    *np = k;
    *used = at;
    return LT_OK;
}

/* Fill the message part of e from the record at l; the envelope points into the record, or
 * into rb when a certificate or pooled values had to be put back. */
static lt_err msg_env(lt_store *s, MDB_txn *txn, uint64_t seq, const msg_loc *l, lt_store_entry *e,
                      store_rbuf *rb, lt_why *why)
{
    MDB_val v = l->rec;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < MSG_HDR || (uint64_t)get32(p + 24) * 4 + MSG_HDR > v.mv_size)
        return corrupt(why, seq, "its header");
    size_t off = MSG_HDR + 4 * (size_t)get32(p + 24);
    uint32_t flags = get32(p + 28);
    e->seq = seq;
    e->stored_ms = (int64_t)get64(p);
    e->id = p + 8;
    e->nhops = 0;
    if (flags & MSG_HOPS) {
        size_t room = v.mv_size - off, hl = room >= 4 ? get32(p + off) : 0;
        int nh = room >= 4 && hl <= room - 4 ? lt_store_hops_decode(p + off + 4, hl, e->hops)
                                              : -1;
        if (nh < 0)
            return corrupt(why, seq, "its hops");
        e->nhops = (size_t)nh;
        off += 4 + hl;
    }
    /* What was left out goes back in one pass, in offset order: pooled values, and the
     * certificate field (its tag and length, then its DER from certs). */
    piece sp[SPLICE_NMAX + 4];
    size_t ns = 0;
    uint8_t tl[11], ctl[11];
    const uint8_t *cref = NULL;
    lt_err err;
    if (flags & MSG_CERT) { /* a certref: [key_id][at] */
        if (v.mv_size - off < CERTREF_LEN)
            return corrupt(why, seq, "its certificate reference");
        cref = p + off;
        off += CERTREF_LEN;
    }
    if (flags & MSG_SPLICE) {
        size_t used = 0;
        if ((err = splices_read(s, txn, seq, p + off, v.mv_size - off, &l->pool, tl, sp, &ns, &used,
                                why)))
            return err;
        off += used;
    }
    if (cref) { /* the certificate goes in among the splices, by its offset */
        size_t at = get32(cref + KEY_ID_LEN), k = ns;
        while (k > 0 && sp[k - 1].at > at)
            k--;
        memmove(sp + k + 2, sp + k, (ns - k) * sizeof *sp);
        if ((err = cert_pieces(s, txn, seq, cref, at, ctl, sp + k, why)))
            return err;
        ns += 2;
    }
    const uint8_t *body = p + off;
    size_t blen = v.mv_size - off, need = blen;
    if (ns == 0) {
        e->env = body;
        e->env_len = blen;
        return LT_OK;
    }
    for (size_t i = 0; i < ns; i++)
        need += sp[i].len; /* no overflow: a certificate is an LMDB value, the rest is small */
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
    if (!splice_out(body, blen, sp, ns, rb->p))
        return corrupt(why, seq, "its splices do not fit its envelope");
    e->env = rb->p;
    e->env_len = need;
    return LT_OK;
}

static lt_err msg_read(lt_store *s, MDB_txn *txn, bool writer, uint64_t seq, lt_store_entry *e,
                       store_rbuf *rb, lt_why *why)
{
    msg_loc l;
    int rc = msg_locate(s, txn, writer, seq, &l);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ESTORE, "message %llu is referenced but missing",
                       (unsigned long long)seq);
    if (rc == MDB_CORRUPTED && l.bad)
        return lt_fail(why, LT_ESTORE, "message %llu: its pack is corrupt (%s)",
                       (unsigned long long)seq, l.bad);
    if (rc)
        return store_mdb_fail(s, why, rc, "read message");
    return msg_env(s, txn, seq, &l, e, rb, why);
}

lt_err store_msg_read(lt_store *s, MDB_txn *txn, uint64_t seq, lt_store_entry *e, store_rbuf *rb,
                      lt_why *why)
{
    return msg_read(s, txn, false, seq, e, rb, why);
}

lt_err store_msg_read_batch(lt_store *s, uint64_t seq, lt_store_entry *e, store_rbuf *rb,
                            lt_why *why)
{
    if (!s->txn)
        return lt_fail(why, LT_EINVAL, "no batch is open");
    return msg_read(s, s->txn, true, seq, e, rb, why);
}

/* The first message stored at or after seq (deleted records of a live pack included:
 * their times still order the search), from the packs and the older msgs: its seq and
 * stored time. LMDB rc. */
static int seq_probe(lt_store *s, MDB_txn *txn, uint64_t seq, uint64_t *found, int64_t *stored)
{
    uint64_t best = UINT64_MAX;
    int rc = MDB_NOTFOUND;
    const MDB_dbi dbs[2] = {s->mpack, s->msgs};
    for (int i = 0; i < (s->legacy_msgs ? 2 : 1); i++) {
        MDB_cursor *c;
        int r = mdb_cursor_open(txn, dbs[i], &c);
        if (r)
            return r;
        uint8_t kb[8];
        put64(kb, seq);
        MDB_val k = {8, kb}, v, rec;
        r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (r == 0 && k.mv_size != 8)
            r = MDB_CORRUPTED;
        if (r == 0) {
            uint64_t at = get64(k.mv_data); /* msgs: the record's seq */
            uint32_t idx;
            pool_view pool;
            const char *bad;
            if (i == 0) { /* mpack: the pack's last seq; the record is max(seq, first) */
                at = v.mv_size >= PACK_HDR && get64(v.mv_data) > seq ? get64(v.mv_data) : seq;
                r = pack_record(&v, at, &rec, &idx, &pool, &bad);
            } else {
                rec = v;
            }
            if (r == 0 && rec.mv_size < MSG_HDR)
                r = MDB_CORRUPTED;
            if (r == 0 && at < best) {
                best = at;
                *stored = (int64_t)get64(rec.mv_data);
            }
        }
        mdb_cursor_close(c);
        if (r && r != MDB_NOTFOUND)
            return r;
        if (r == 0)
            rc = 0;
    }
    *found = best;
    return rc;
}

lt_err lt_store_seq_at(lt_store *s, uint32_t qid, int64_t at_ms, uint64_t *seq, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = store_rbegin(s, &txn, why);
    if (err)
        return err;
    uint64_t hi = 1, lo = 1;
    if ((err = store_queue_known(s, txn, qid, why)))
        goto out;
    if (store_meta_get_u64(s, txn, "next_seq", &hi) != LT_OK)
        hi = 1;
    /* Stored times never decrease with seq (append clamps them), so the first seq stored
     * at or after at_ms is found by bisection over the seq space; deleted seqs are skipped
     * (each probe lands on the next message that is still there). */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, found;
        int64_t stored;
        int rc = seq_probe(s, txn, mid, &found, &stored);
        if (rc == MDB_NOTFOUND) {
            hi = mid;
            continue;
        }
        if (rc) {
            err = store_mdb_fail(s, why, rc, "seek by time");
            goto out;
        }
        if (stored >= at_ms)
            hi = mid;
        else
            lo = found + 1;
    }
    *seq = lo;
out:
    mdb_txn_abort(txn);
    return err;
}
