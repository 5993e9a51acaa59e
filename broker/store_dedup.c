/*
 * store_dedup.c - the store's memory of message ids: which record each (source agency,
 * message id) named, for the dedup window (see lt_store_msgkey in store.h).
 *
 * On-disk layout (integers big-endian, as in store.c):
 *
 *   dsrc      [source] -> number u32
 *             each source agency's number, 1, 2, ... in the order first seen; never reused
 *             or deleted (one row per agency that ever published)
 *   dedupg0   [number u32][id 16] -> [seq u64][stored_ms i64][payload_sha256 16][signer 8]
 *   dedupg1   the same: two generations of entries, the current one and the previous one
 *   meta      "dedup_gen" -> [started_ms i64][current u8]
 *
 * The value keeps the first 16 bytes of the payload's SHA-256 and the first 8 of the
 * signer's key id. That is enough: only the source itself can sign a record under its own
 * source id (the broker refuses AGENCY_MISMATCH before dedup), so a collision could only
 * make a source's own second record under one id pass for a resend of its first: odds of
 * 2^-128 for the payload, 2^-64 for the signer.
 *
 * Generations instead of a time index. New entries go to the current generation; lookups
 * read the current one, then the previous one, and the first entry found decides (a key
 * stored again after its expiry is in the current one, its old copy in the previous one).
 * The window itself is checked exactly against the entry's stored_ms: an entry past the
 * window is "not found", wherever it sits. store_dedup_sweep rotates once the current
 * generation is older than the window: it empties the previous generation and makes the
 * current one previous. The previous generation then holds only entries stored before the
 * current one started, which are past the window by then: an entry stays on disk between
 * one and two windows, and no lookup answers differently for the rotation. This costs no
 * write per message beyond its own entry, and one B-tree per commit instead of two.
 *
 * A layout-5 store kept dedup2 ([source][0x00][id 16] -> [seq][stored_ms][sha 32][signer
 * 32], 80 bytes) and its time index dedupx2 (seq -> [stored_ms][dedup2 key]). Opened here,
 * dedup2 is read as a third, oldest generation until the first rotation, which empties both
 * tables (every entry in them was stored before the current generation started); the next
 * open deletes them. Layout 2 kept `dedup` and `dedupx` keyed by the id alone, across
 * agencies; store_dedup_open drops them: their entries only protected against resends for
 * the rest of their window, which a broker upgrade ends.
 *
 * The source numbers live in memory too (s->src, a hash map over the names), loaded at
 * open. A batch that aborts takes the numbers it assigned with it (store_dedup_undo): the
 * next batch assigns them again, so dsrc stays dense and no number is ever on disk without
 * its row. The generation state (s->dg) is saved and restored the same way.
 *
 * Writer thread only (the batch's transaction, or the sweep's).
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN (4u + LT_STORE_ID_LEN)
#define SHA_KEPT 16u
#define SIGNER_KEPT 8u
#define VAL_LEN (8u + 8u + SHA_KEPT + SIGNER_KEPT)
#define GEN_LEN 9u
#define OLD_VAL_LEN (8u + 8u + 2 * LT_STORE_HASH_LEN)
#define OLD_KEY_MAX (LT_STORE_SOURCE_MAX + 1u + LT_STORE_ID_LEN)

/* An entry as read from either format: the hashes are prefixes of hlen and slen bytes. */
typedef struct entry {
    uint64_t seq;
    int64_t stored_ms;
    const uint8_t *hash, *signer;
    size_t hlen, slen;
} entry;

static size_t source_len(const char *source)
{
    size_t n = source ? strnlen(source, LT_STORE_SOURCE_MAX + 1) : 0;
    return n > LT_STORE_SOURCE_MAX ? 0 : n;
}

static lt_err bad_source(lt_why *why)
{
    return lt_fail(why, LT_EINVAL, "a record's source agency id has 1..%d bytes",
                   LT_STORE_SOURCE_MAX);
}

/* ---- source numbers in memory ---------------------------------------------------------- */

static uint32_t src_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

/* The number of source p[0..n), 0 if it has none. */
static uint32_t src_find(const lt_store *s, const char *p, size_t n)
{
    const dedup_srcs *m = &s->src;
    if (m->nslot == 0)
        return 0;
    for (uint32_t i = src_hash(p, n) & (m->nslot - 1);; i = (i + 1) & (m->nslot - 1)) {
        uint32_t num = m->slot[i];
        if (num == 0)
            return 0;
        const char *name = m->name[num - 1];
        if (strlen(name) == n && memcmp(name, p, n) == 0)
            return num;
    }
}

static void src_index(dedup_srcs *m, uint32_t num)
{
    const char *name = m->name[num - 1];
    uint32_t i = src_hash(name, strlen(name)) & (m->nslot - 1);
    while (m->slot[i] != 0)
        i = (i + 1) & (m->nslot - 1);
    m->slot[i] = num;
}

/* Index name[0..n) afresh in at least nslot slots (a power of 2, more than twice n). */
static int src_rehash(dedup_srcs *m, uint32_t nslot)
{
    if (nslot < 16)
        nslot = 16;
    while (nslot / 2 <= m->n)
        nslot *= 2;
    uint32_t *slot = calloc(nslot, sizeof *slot);
    if (!slot)
        return ENOMEM;
    free(m->slot);
    m->slot = slot;
    m->nslot = nslot;
    for (uint32_t num = 1; num <= m->n; num++)
        src_index(m, num);
    return 0;
}

/* Give source p[0..n) the number m->n + 1 in memory. ENOMEM. */
static int src_add(dedup_srcs *m, const char *p, size_t n)
{
    if (m->n == m->cap) {
        uint32_t cap = m->cap ? 2 * m->cap : 16;
        char **name = realloc(m->name, cap * sizeof *name);
        if (!name)
            return ENOMEM;
        m->name = name;
        m->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return ENOMEM;
    memcpy(copy, p, n);
    copy[n] = '\0';
    m->name[m->n++] = copy;
    if ((m->n + 1) * 2 > m->nslot) {
        int rc = src_rehash(m, m->nslot);
        if (rc) {
            free(m->name[--m->n]);
            return rc;
        }
        return 0;
    }
    src_index(m, m->n);
    return 0;
}

void store_dedup_free(lt_store *s)
{
    for (uint32_t i = 0; i < s->src.n; i++)
        free(s->src.name[i]);
    free(s->src.name);
    free(s->src.slot);
    memset(&s->src, 0, sizeof s->src);
}

void store_dedup_begin(lt_store *s)
{
    s->src.saved_n = s->src.n;
    s->saved_dg = s->dg;
}

void store_dedup_undo(lt_store *s)
{
    dedup_srcs *m = &s->src;
    s->dg = s->saved_dg;
    if (m->n == m->saved_n)
        return;
    while (m->n > m->saved_n)
        free(m->name[--m->n]);
    memset(m->slot, 0, m->nslot * sizeof *m->slot);
    for (uint32_t num = 1; num <= m->n; num++)
        src_index(m, num);
}

/* Load dsrc into memory: numbers 1..n, each once. LMDB rc (MDB_CORRUPTED, ENOMEM). */
static int src_load(lt_store *s, MDB_txn *txn)
{
    MDB_stat st;
    int rc = mdb_stat(txn, s->dsrc, &st);
    if (rc)
        return rc;
    dedup_srcs *m = &s->src;
    size_t n = st.ms_entries;
    if (n >= UINT32_MAX / 4)
        return MDB_CORRUPTED;
    m->cap = n > 16 ? (uint32_t)n : 16;
    if (!(m->name = calloc(m->cap, sizeof *m->name)))
        return ENOMEM;
    MDB_cursor *c;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(txn, s->dsrc, &c)))
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        uint32_t num = v.mv_size == 4 ? get32(v.mv_data) : 0;
        if (k.mv_size == 0 || k.mv_size > LT_STORE_SOURCE_MAX || memchr(k.mv_data, 0, k.mv_size) ||
            num == 0 || num > n || m->name[num - 1]) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (!(m->name[num - 1] = malloc(k.mv_size + 1))) {
            rc = ENOMEM;
            break;
        }
        memcpy(m->name[num - 1], k.mv_data, k.mv_size);
        m->name[num - 1][k.mv_size] = '\0';
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc ? rc : MDB_CORRUPTED;
    m->n = (uint32_t)n; /* every number 1..n was seen once: n rows, each in range, no twin */
    return src_rehash(m, 16);
}

/* ---- open ------------------------------------------------------------------------------ */

static int gen_put(lt_store *s, MDB_txn *txn, const dedup_gen *g)
{
    uint8_t b[GEN_LEN];
    put64(b, (uint64_t)g->started_ms);
    b[8] = (uint8_t)g->cur;
    return store_meta_put(s, txn, "dedup_gen", b, GEN_LEN);
}

/* Open dedup2/dedupx2 of a layout-5 store, if any: *legacy when dedup2 holds entries (kept
 * as the oldest generation); emptied ones are deleted. LMDB rc. */
static int legacy_open(lt_store *s, MDB_txn *txn, bool *legacy)
{
    *legacy = false;
    int rc = mdb_dbi_open(txn, "dedup2", 0, &s->dedup);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (!rc)
        rc = mdb_dbi_open(txn, "dedupx2", MDB_CREATE, &s->dedupx);
    MDB_stat st;
    if (!rc)
        rc = mdb_stat(txn, s->dedup, &st);
    if (rc)
        return rc;
    if (st.ms_entries > 0) {
        *legacy = true;
        return 0;
    }
    if (!(rc = mdb_drop(txn, s->dedupx, 1)))
        rc = mdb_drop(txn, s->dedup, 1);
    return rc;
}

lt_err store_dedup_open(lt_store *s, MDB_txn *txn, lt_why *why)
{
    int rc = mdb_dbi_open(txn, "dsrc", MDB_CREATE, &s->dsrc);
    if (!rc)
        rc = mdb_dbi_open(txn, "dedupg0", MDB_CREATE, &s->dgen[0]);
    if (!rc)
        rc = mdb_dbi_open(txn, "dedupg1", MDB_CREATE, &s->dgen[1]);
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
    bool legacy = false;
    if ((rc = legacy_open(s, txn, &legacy)))
        return store_mdb_fail(s, why, rc, "open the layout-5 dedup databases");

    MDB_val k = {9, (void *)"dedup_gen"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        if (v.mv_size != GEN_LEN || p[8] > 1 || (int64_t)get64(p) < 0)
            return lt_fail(why, LT_ESTORE, "corrupt dedup generation in meta (%zu bytes)",
                           v.mv_size);
        s->dg.started_ms = (int64_t)get64(p);
        s->dg.cur = p[8];
    } else if (rc == MDB_NOTFOUND) {
        /* A new store, or a layout-5 one: every entry dedup2 holds was stored at or before
         * its last append, so the first generation starts there. */
        uint64_t last = 0;
        if (store_meta_get_u64(s, txn, "last_ms", &last) == LT_ESTORE)
            return lt_fail(why, LT_ESTORE, "corrupt last_ms in meta");
        s->dg.started_ms = (int64_t)last;
        s->dg.cur = 0;
        if ((rc = gen_put(s, txn, &s->dg)))
            return store_mdb_fail(s, why, rc, "write the dedup generation");
    } else {
        return store_mdb_fail(s, why, rc, "read the dedup generation");
    }
    s->dg.legacy = legacy;
    if ((rc = src_load(s, txn)))
        return store_mdb_fail(s, why, rc, "load the dedup sources");
    store_dedup_begin(s);
    return LT_OK;
}

/* ---- lookups --------------------------------------------------------------------------- */

static void hex8(const uint8_t *p, char out[17])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[16] = '\0';
}

/* The newest entry under (source, id): the current generation, the previous one, then a
 * layout-5 store's dedup2. 0, MDB_NOTFOUND, MDB_CORRUPTED (a value of the wrong size), or
 * another LMDB rc. */
static int entry_get(lt_store *s, const char *source, size_t sn, const uint8_t *id, entry *e)
{
    MDB_val dk, dv;
    int rc = MDB_NOTFOUND;
    uint32_t num = src_find(s, source, sn);
    if (num != 0) {
        uint8_t kb[KEY_LEN];
        put32(kb, num);
        memcpy(kb + 4, id, LT_STORE_ID_LEN);
        const MDB_dbi gens[2] = {s->dgen[s->dg.cur], s->dgen[1 - s->dg.cur]};
        for (int i = 0; i < 2 && rc == MDB_NOTFOUND; i++) {
            dk = (MDB_val){KEY_LEN, kb};
            rc = mdb_get(s->txn, gens[i], &dk, &dv);
        }
        if (rc == 0) {
            if (dv.mv_size != VAL_LEN)
                return MDB_CORRUPTED;
            e->hlen = SHA_KEPT;
            e->slen = SIGNER_KEPT;
        }
    }
    if (rc == MDB_NOTFOUND && s->dg.legacy) {
        uint8_t kb[OLD_KEY_MAX];
        memcpy(kb, source, sn);
        kb[sn] = 0;
        memcpy(kb + sn + 1, id, LT_STORE_ID_LEN);
        dk = (MDB_val){sn + 1 + LT_STORE_ID_LEN, kb};
        if ((rc = mdb_get(s->txn, s->dedup, &dk, &dv)) == 0) {
            if (dv.mv_size != OLD_VAL_LEN)
                return MDB_CORRUPTED;
            e->hlen = e->slen = LT_STORE_HASH_LEN;
        }
    }
    if (rc)
        return rc;
    const uint8_t *p = dv.mv_data;
    e->seq = get64(p);
    e->stored_ms = (int64_t)get64(p + 8);
    e->hash = p + 16;
    e->signer = p + 16 + e->hlen;
    return 0;
}

static lt_err read_fail(lt_store *s, int rc, lt_why *why)
{
    if (rc == MDB_CORRUPTED)
        return lt_fail(why, LT_ESTORE, "corrupt dedup entry (a value of the wrong size)");
    return store_mdb_fail(s, why, rc, "read dedup");
}

lt_err store_dedup_find(lt_store *s, const lt_store_msgkey *key, int64_t now_ms, uint64_t *seq,
                        lt_why *why)
{
    size_t sn = source_len(key->source);
    if (sn == 0)
        return bad_source(why);
    entry e;
    int rc = entry_get(s, key->source, sn, key->id, &e);
    if (rc == MDB_NOTFOUND)
        return LT_ENOTFOUND;
    if (rc)
        return read_fail(s, rc, why);
    if (e.stored_ms <= now_ms - s->dedup_ms)
        return LT_ENOTFOUND; /* past the window (not rotated out yet): a new record */
    char was[17], now[17];
    if (memcmp(e.hash, key->payload_sha256, e.hlen) != 0) {
        hex8(e.hash, was);
        hex8(key->payload_sha256, now);
        return lt_fail(why, LT_EID_CONFLICT,
                       "%s already used this message id for another record (seq %llu, payload "
                       "SHA-256 %s..., this one %s...): give each record its own id",
                       key->source, (unsigned long long)e.seq, was, now);
    }
    if (memcmp(e.signer, key->signer_key_id, e.slen) != 0) {
        hex8(e.signer, was);
        hex8(key->signer_key_id, now);
        return lt_fail(why, LT_EID_CONFLICT,
                       "%s stored this message id as seq %llu signed by key %s..., this copy is "
                       "signed by key %s...: a resend must be the stored envelope",
                       key->source, (unsigned long long)e.seq, was, now);
    }
    *seq = e.seq;
    return LT_OK;
}

lt_err store_dedup_lookup(lt_store *s, const char *source, const uint8_t *id, uint64_t *seq,
                          lt_why *why)
{
    size_t sn = source_len(source);
    if (sn == 0)
        return bad_source(why);
    entry e;
    int rc = entry_get(s, source, sn, id, &e);
    if (rc == MDB_NOTFOUND)
        return lt_fail(why, LT_ENOTFOUND, "%s has no message with this id in the store's window",
                       source);
    if (rc)
        return read_fail(s, rc, why);
    *seq = e.seq;
    return LT_OK;
}

/* ---- writes ---------------------------------------------------------------------------- */

lt_err store_dedup_put(lt_store *s, const lt_store_msgkey *key, uint64_t seq, int64_t stored_ms,
                       lt_why *why)
{
    size_t sn = source_len(key->source);
    if (sn == 0)
        return bad_source(why);
    int rc;
    uint32_t num = src_find(s, key->source, sn);
    if (num == 0) {
        if (s->src.n == UINT32_MAX - 1)
            return lt_fail(why, LT_ESTORE, "no source number left for %s", key->source);
        if ((rc = src_add(&s->src, key->source, sn)))
            return store_batch_fail(s, rc, "number a dedup source", why);
        num = s->src.n;
        uint8_t nb[4];
        put32(nb, num);
        MDB_val sk = {sn, (void *)key->source}, sv = {4, nb};
        if ((rc = mdb_put(s->txn, s->dsrc, &sk, &sv, MDB_NOOVERWRITE)))
            return store_batch_fail(s, rc, "write dedup source", why);
    }
    uint8_t kb[KEY_LEN], vb[VAL_LEN];
    put32(kb, num);
    memcpy(kb + 4, key->id, LT_STORE_ID_LEN);
    put64(vb, seq);
    put64(vb + 8, (uint64_t)stored_ms);
    memcpy(vb + 16, key->payload_sha256, SHA_KEPT);
    memcpy(vb + 16 + SHA_KEPT, key->signer_key_id, SIGNER_KEPT);
    MDB_val dk = {KEY_LEN, kb}, dv = {VAL_LEN, vb};
    if ((rc = mdb_put(s->txn, s->dgen[s->dg.cur], &dk, &dv, 0)))
        return store_batch_fail(s, rc, "write dedup", why);
    return LT_OK;
}

/* The rotation empties a generation with mdb_drop(txn, dbi, 0): one call that cannot be cut
 * short. On a table without overflow pages LMDB reads only its branch pages (about one page
 * in 130: a 1 GB generation has some 2,000) and lists every page as free, reading and
 * writing no leaf; at commit the free list grows by 8 bytes per freed page. The sweep runs
 * it when any budget is left and charges the branch pages it reads. */
int store_dedup_sweep(lt_store *s, MDB_txn *t, int64_t now_ms, size_t *budget, bool *more)
{
    if (s->dg.started_ms > now_ms - s->dedup_ms)
        return 0; /* the current generation is younger than the window */
    if (*budget == 0) {
        *more = true;
        return 0;
    }
    dedup_gen g = {.cur = 1 - s->dg.cur, .legacy = false};
    MDB_stat st;
    size_t cost = 1;
    int rc = mdb_stat(t, s->dgen[g.cur], &st);
    if (!rc) {
        cost += st.ms_branch_pages;
        rc = mdb_drop(t, s->dgen[g.cur], 0);
    }
    if (!rc && s->dg.legacy && !(rc = mdb_stat(t, s->dedup, &st))) {
        cost += st.ms_branch_pages;
        if (!(rc = mdb_drop(t, s->dedup, 0)))
            rc = mdb_drop(t, s->dedupx, 0);
    }
    /* Every entry of the generation that becomes previous was stored at or before the
     * batch's last append (the clock clamp): it is past the window when this one is. */
    g.started_ms = now_ms > s->last_ms ? now_ms : s->last_ms;
    if (!rc)
        rc = gen_put(s, t, &g);
    if (rc)
        return rc;
    s->dg = g;
    *budget -= cost < *budget ? cost : *budget;
    return 0;
}
