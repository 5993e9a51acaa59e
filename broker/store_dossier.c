/*
 * store_dossier.c - the store's memory of dossiers: where each dossier of a procedure
 * stands, every event that moved it (with the envelope as received, so a trace can verify
 * it again whatever the queues' retention did), and which open dossiers are due when.
 *
 * On-disk layout (integers big-endian, as in store.c):
 *
 *   dossiers  [dossier code] -> state
 *             0 ver u8 (1) | 1 status u8 | 2 closed u8 | 3 0 | 4 nevents u32
 *             8 started_ms | 16 step_started_ms | 24 step_deadline_ms | 32 last_event_ms
 *             40 last_seq u64 | 48 proc_len u8, procedure | step_len u8, step |
 *             agency_len u8, agency
 *   dossierx  two indexes in one database (a prefix byte apart, so the store needs one
 *             named database less of its 16):
 *             [0x01][dossier code][0x00][seq u64] -> event
 *                 0 event_ms | 8 stored_ms | 16 step_started_ms | 24 step_deadline_ms
 *                 32 status u8 | 33 step_len u8 | 34 agency_len u8 | 35 0 | 36 env_len u32
 *                 40 step | agency | envelope
 *                 a dossier's events in seq order: its trace
 *             [0x02][step_deadline_ms u64][dossier code] -> (empty)
 *                 each OPEN dossier whose step has a deadline, by deadline: late and
 *                 near-deadline dossiers are a prefix, read without scanning the rest
 *
 * A dossier code is 1..LT_PROC_DOSSIER_MAX bytes without NUL, so keys stay far below
 * LMDB's 511. Writes happen in the committer's open batch, so two events of one dossier in
 * one batch see each other (the second reads the state the first wrote).
 *
 * Threads: lt_store_dossier_open before the commit thread starts; get, put and
 * is_duplicate on the writer thread inside a batch; read and due from any thread (each in
 * its own short read transaction).
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_HDR 48u
#define EV_HDR 40u
#define IDX_EVENT 0x01u
#define IDX_DUE 0x02u
#define EKEY_MAX (1u + LT_PROC_DOSSIER_MAX + 1u + 8u)
#define DKEY_MAX (1u + 8u + LT_PROC_DOSSIER_MAX)

static bool code_ok(const char *code, size_t *len)
{
    size_t n = code ? strlen(code) : 0;
    if (n == 0 || n > LT_PROC_DOSSIER_MAX)
        return false;
    *len = n;
    return true;
}

lt_err lt_store_dossier_open(lt_store *s, lt_why *why)
{
    if (s->txn)
        return lt_fail(why, LT_EAGAIN, "open the dossier databases outside a batch");
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, "dossiers", MDB_CREATE, &s->dossiers);
    if (!rc)
        rc = mdb_dbi_open(txn, "dossierx", MDB_CREATE, &s->dossierx);
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        return store_mdb_fail(s, why, rc, "open the dossier databases");
    }
    if ((rc = mdb_txn_commit(txn)))
        return store_mdb_fail(s, why, rc, "open the dossier databases");
    s->dossier_open = true;
    return LT_OK;
}

static lt_err need_open(const lt_store *s, lt_why *why)
{
    return s->dossier_open ? LT_OK
                           : lt_fail(why, LT_ENOTFOUND, "this broker keeps no dossiers (no "
                                                        "procedures are configured)");
}

/* ---- encoding -------------------------------------------------------------------------- */

static size_t put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    if (n > 255)
        n = 255;
    p[0] = (uint8_t)n;
    memcpy(p + 1, s, n);
    return 1 + n;
}

/* Read a u8-length string at *at of v[0..n) into out (cap bytes); false if it overruns. */
static bool get_str(const uint8_t *v, size_t n, size_t *at, char *out, size_t cap)
{
    if (*at >= n)
        return false;
    size_t l = v[*at];
    if (l >= cap || l > n - *at - 1)
        return false;
    memcpy(out, v + *at + 1, l);
    out[l] = '\0';
    *at += 1 + l;
    return true;
}

static size_t state_encode(const lt_dossier_state *st, uint8_t *v)
{
    memset(v, 0, ST_HDR);
    v[0] = 1;
    v[1] = st->status;
    v[2] = st->closed;
    put32(v + 4, st->nevents);
    put64(v + 8, (uint64_t)st->started_ms);
    put64(v + 16, (uint64_t)st->step_started_ms);
    put64(v + 24, (uint64_t)st->step_deadline_ms);
    put64(v + 32, (uint64_t)st->last_event_ms);
    put64(v + 40, st->last_seq);
    size_t at = ST_HDR;
    at += put_str(v + at, st->procedure);
    at += put_str(v + at, st->step);
    at += put_str(v + at, st->agency);
    return at;
}

static bool state_decode(const uint8_t *v, size_t n, lt_dossier_state *st)
{
    if (n < ST_HDR || v[0] != 1)
        return false;
    memset(st, 0, sizeof *st);
    st->status = v[1];
    st->closed = v[2] != 0;
    st->nevents = get32(v + 4);
    st->started_ms = (int64_t)get64(v + 8);
    st->step_started_ms = (int64_t)get64(v + 16);
    st->step_deadline_ms = (int64_t)get64(v + 24);
    st->last_event_ms = (int64_t)get64(v + 32);
    st->last_seq = get64(v + 40);
    size_t at = ST_HDR;
    return get_str(v, n, &at, st->procedure, sizeof st->procedure) &&
           get_str(v, n, &at, st->step, sizeof st->step) &&
           get_str(v, n, &at, st->agency, sizeof st->agency) && at == n;
}

static size_t event_key(uint8_t *k, const char *code, size_t clen, uint64_t seq)
{
    k[0] = IDX_EVENT;
    memcpy(k + 1, code, clen);
    k[1 + clen] = 0;
    put64(k + 2 + clen, seq);
    return 2 + clen + 8;
}

static size_t due_key(uint8_t *k, int64_t deadline, const char *code, size_t clen)
{
    k[0] = IDX_DUE;
    put64(k + 1, (uint64_t)deadline);
    memcpy(k + 9, code, clen);
    return 9 + clen;
}

/* Is st indexed by its deadline (open, with one)? */
static bool indexed(const lt_dossier_state *st)
{
    return !st->closed && st->step_deadline_ms != INT64_MAX && st->step_deadline_ms >= 0;
}

/* ---- writer ---------------------------------------------------------------------------- */

lt_err lt_store_dossier_get(lt_store *s, const char *code, lt_dossier_state *st, lt_why *why)
{
    lt_err err = need_open(s, why);
    if (err || (err = store_batch_usable(s, why)))
        return err;
    size_t clen;
    if (!code_ok(code, &clen))
        return lt_fail(why, LT_EINVAL, "a dossier code is 1..%d bytes", LT_PROC_DOSSIER_MAX);
    MDB_val k = {clen, (void *)code}, v;
    int rc = mdb_get(s->txn, s->dossiers, &k, &v);
    if (rc == MDB_NOTFOUND)
        return LT_ENOTFOUND;
    if (rc)
        return store_batch_fail(s, rc, "read dossier", why);
    if (!state_decode(v.mv_data, v.mv_size, st))
        return store_batch_fail(s, MDB_CORRUPTED, "decode dossier", why);
    return LT_OK;
}

lt_err lt_store_dossier_put(lt_store *s, const char *code, const lt_dossier_state *prev,
                            const lt_dossier_state *st, const lt_store_dossier_ev *ev,
                            lt_why *why)
{
    lt_err err = need_open(s, why);
    if (err || (err = store_batch_usable(s, why)))
        return err;
    size_t clen;
    if (!code_ok(code, &clen))
        return lt_fail(why, LT_EINVAL, "a dossier code is 1..%d bytes", LT_PROC_DOSSIER_MAX);
    if (ev->env_len > UINT32_MAX)
        return lt_fail(why, LT_EINVAL, "envelope too large to index");
    uint8_t sv[ST_HDR + 3 * 256];
    MDB_val k = {clen, (void *)code}, v = {state_encode(st, sv), sv};
    int rc = mdb_put(s->txn, s->dossiers, &k, &v, 0);
    if (rc)
        return store_batch_fail(s, rc, "write dossier", why);
    /* the event, in the dossier's trace */
    uint8_t ek[EKEY_MAX];
    size_t slen = strlen(st->step), alen = strlen(st->agency);
    if (slen > 255)
        slen = 255;
    if (alen > 255)
        alen = 255;
    MDB_val evk = {event_key(ek, code, clen, ev->seq), ek};
    MDB_val evv = {EV_HDR + slen + alen + ev->env_len, NULL};
    if ((rc = mdb_put(s->txn, s->dossierx, &evk, &evv, MDB_RESERVE)))
        return store_batch_fail(s, rc, "write dossier event", why);
    uint8_t *p = evv.mv_data;
    memset(p, 0, EV_HDR);
    put64(p, (uint64_t)ev->event_ms);
    put64(p + 8, (uint64_t)ev->stored_ms);
    put64(p + 16, (uint64_t)st->step_started_ms);
    put64(p + 24, (uint64_t)st->step_deadline_ms);
    p[32] = st->status;
    p[33] = (uint8_t)slen;
    p[34] = (uint8_t)alen;
    put32(p + 36, (uint32_t)ev->env_len);
    memcpy(p + EV_HDR, st->step, slen);
    memcpy(p + EV_HDR + slen, st->agency, alen);
    memcpy(p + EV_HDR + slen + alen, ev->env, ev->env_len);
    /* the due index: the old deadline out, the new one in */
    uint8_t dk[DKEY_MAX];
    if (prev && indexed(prev)) {
        MDB_val k2 = {due_key(dk, prev->step_deadline_ms, code, clen), dk};
        rc = mdb_del(s->txn, s->dossierx, &k2, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return store_batch_fail(s, rc, "update dossier deadline", why);
    }
    if (indexed(st)) {
        MDB_val k2 = {due_key(dk, st->step_deadline_ms, code, clen), dk}, e = {0, NULL};
        if ((rc = mdb_put(s->txn, s->dossierx, &k2, &e, 0)))
            return store_batch_fail(s, rc, "index dossier deadline", why);
    }
    return LT_OK;
}

lt_err lt_store_dossier_is_duplicate(lt_store *s, const lt_store_msgkey *key, int64_t now_ms,
                                     bool *dup, lt_why *why)
{
    uint64_t seq;
    lt_err err = store_dedup_find(s, key, now_ms, &seq, why);
    if (err == LT_OK || err == LT_ENOTFOUND) {
        *dup = err == LT_OK;
        return LT_OK;
    }
    return err;
}

/* ---- readers --------------------------------------------------------------------------- */

lt_err lt_store_dossier_read(lt_store *s, const char *code, lt_dossier_state *st,
                             lt_store_dossier_visit visit, void *arg, lt_why *why)
{
    lt_err err = need_open(s, why);
    if (err)
        return err;
    size_t clen;
    if (!code_ok(code, &clen))
        return lt_fail(why, LT_EINVAL, "a dossier code is 1..%d bytes", LT_PROC_DOSSIER_MAX);
    MDB_txn *txn;
    if ((err = store_rbegin(s, &txn, why)))
        return err;
    MDB_val k = {clen, (void *)code}, v;
    int rc = mdb_get(txn, s->dossiers, &k, &v);
    if (rc == MDB_NOTFOUND) {
        err = lt_fail(why, LT_ENOTFOUND, "no dossier %s", code);
        goto out;
    }
    if (rc || !state_decode(v.mv_data, v.mv_size, st)) {
        err = store_mdb_fail(s, why, rc ? rc : MDB_CORRUPTED, "read dossier");
        goto out;
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->dossierx, &c))) {
        err = store_mdb_fail(s, why, rc, "open dossier cursor");
        goto out;
    }
    uint8_t ek[EKEY_MAX];
    MDB_val ck = {event_key(ek, code, clen, 0), ek}, cv;
    size_t plen = 2 + clen; /* [0x01][code][0x00] */
    for (rc = mdb_cursor_get(c, &ck, &cv, MDB_SET_RANGE); rc == 0 && visit;
         rc = mdb_cursor_get(c, &ck, &cv, MDB_NEXT)) {
        if (ck.mv_size != plen + 8 || memcmp(ck.mv_data, ek, plen) != 0)
            break;
        const uint8_t *p = cv.mv_data;
        if (cv.mv_size < EV_HDR || cv.mv_size != EV_HDR + p[33] + p[34] + get32(p + 36)) {
            rc = MDB_CORRUPTED;
            break;
        }
        lt_store_dossier_event e = {
            .seq = get64((const uint8_t *)ck.mv_data + plen),
            .event_ms = (int64_t)get64(p),
            .stored_ms = (int64_t)get64(p + 8),
            .step_started_ms = (int64_t)get64(p + 16),
            .step_deadline_ms = (int64_t)get64(p + 24),
            .status = p[32],
            .env = p + EV_HDR + p[33] + p[34],
            .env_len = get32(p + 36),
        };
        memcpy(e.step, p + EV_HDR, p[33]);
        e.step[p[33] < sizeof e.step ? p[33] : sizeof e.step - 1] = '\0';
        size_t al = p[34] < sizeof e.agency ? p[34] : sizeof e.agency - 1;
        memcpy(e.agency, p + EV_HDR + p[33], al);
        e.agency[al] = '\0';
        if (visit(arg, &e))
            break;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        err = store_mdb_fail(s, why, rc, "read dossier events");
out:
    mdb_txn_abort(txn);
    return err;
}

lt_err lt_store_dossier_due(lt_store *s, int64_t before_ms, size_t max,
                            lt_store_dossier_due_visit visit, void *arg, lt_why *why)
{
    lt_err err = need_open(s, why);
    if (err)
        return err;
    MDB_txn *txn;
    if ((err = store_rbegin(s, &txn, why)))
        return err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dossierx, &c);
    if (rc) {
        mdb_txn_abort(txn);
        return store_mdb_fail(s, why, rc, "open dossier cursor");
    }
    uint8_t start = IDX_DUE;
    MDB_val k = {1, &start}, v;
    size_t n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && (max == 0 || n < max);
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size < 10 || kp[0] != IDX_DUE || (int64_t)get64(kp + 1) >= before_ms)
            break;
        char code[LT_PROC_DOSSIER_MAX + 1];
        size_t clen = k.mv_size - 9 < LT_PROC_DOSSIER_MAX ? k.mv_size - 9 : LT_PROC_DOSSIER_MAX;
        memcpy(code, kp + 9, clen);
        code[clen] = '\0';
        MDB_val sk = {clen, code}, sv;
        lt_dossier_state st;
        int grc = mdb_get(txn, s->dossiers, &sk, &sv);
        if (grc || !state_decode(sv.mv_data, sv.mv_size, &st)) {
            rc = grc ? grc : MDB_CORRUPTED;
            break;
        }
        n++;
        if (visit(arg, code, &st))
            break;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (rc && rc != MDB_NOTFOUND)
        return store_mdb_fail(s, why, rc, "read dossier deadlines");
    return LT_OK;
}
