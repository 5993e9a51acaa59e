/*
 * store.c - the durable store on LMDB (see store.h for the contract).
 *
 * On-disk layout: one environment, a fixed set of named databases (never one per queue,
 * so thousands of queues cost nothing extra). Every integer is big-endian, in keys (so
 * byte order is numeric order) and in values (so the files are portable).
 *
 *   meta    "next_seq" -> u64            seq the next append gets (never reused)
 *           "last_ms"  -> i64            stored time of the last append (clock clamp)
 *           "next_qid" -> u32
 *           "version"  -> u32            LAYOUT_VERSION
 *   msgs    seq u64 -> +----------+--------+-------+-------+-----------+-----------+----------+
 *                      | stored_ms| id[16] | nq u32| flags | qids u32×nq| [certref] | envelope |
 *                      +----------+--------+-------+-------+-----------+-----------+----------+
 *                      i64          MSG_HDR = 32 bytes, then 4·nq. flags & MSG_CERT: a certref
 *                      [key_id 32][at u32] follows, and the envelope is stored without its
 *                      certificate field (Envelope.certificate, tag 5), which was at byte `at`
 *                      and is put back from `certs` on every read: readers always get the
 *                      envelope exactly as received. Without MSG_CERT the envelope is stored
 *                      verbatim. Written once (MDB_APPEND: seq only grows), never updated.
 *           A 1 KiB-payload envelope without its ~500-byte certificate is ~1.4 KB: under
 *           LMDB's node limit for 4 KiB pages (2022 data bytes with an 8-byte key), so it
 *           lives in leaf pages (2 per page) instead of taking a 4 KiB overflow page.
 *   certs   key_id[32] -> certificate DER       one row per signer, written by the first
 *                                               append that carries it; never deleted
 *   dedup2, dedupx2                              message ids: see store_dedup.c
 *   qnames  name -> qid u32
 *   queues  qid u32 -> [depth u64][bytes u64][dlq_depth u64][dlq_bytes u64]
 *                      [max_depth u64][max_bytes u64][retention_ms i64][name...]
 *                      counters written once per batch (at commit) for the queues it touched
 *   qent    [qid u32][seq u64] -> [stored_ms i64][not_before_ms i64][delivery_count u32]
 *                                 [env_len u32]           pending (unacked) entries
 *   qlog    [qid u32][seq u64] -> [stored_ms i64]         replay history (only for queues
 *                                 with retention > 0), removed when acked and expired
 *   dlq     [qid u32][seq u64] -> [stored_ms i64][moved_ms i64][delivery_count u32]
 *                                 [env_len u32][reason, NUL-terminated]
 *
 * References instead of a refcount: a message is referenced by queue q while q has it in
 * qent, dlq or qlog. The message records the queues it went to (qids), so whoever removes
 * a queue's last reference checks those few keys and deletes the message when none is
 * left. That costs a few reads at removal and no write at all per reference (a stored
 * refcount would rewrite the whole record, envelope included, at every ack).
 *
 * Appending one message to one queue is 4 puts (msgs, dedup2, dedupx2, qent; +qlog with
 * retention); acking is a get and a delete (+ the message delete and its checks when no
 * queue keeps it). Queue counters live in memory and are written at commit; they are
 * restored from their saved copy when a batch aborts.
 *
 * No nested transactions on the hot path (a nested txn costs a multi-MB malloc in
 * mdb_txn_begin): each operation first checks everything that can refuse it (dedup, queue
 * limits, existence, the batch's size budget) and writes only when it will succeed. A write
 * that LMDB refuses anyway (map or disk full, I/O error) leaves LMDB's transaction unusable,
 * so it fails the BATCH: every later operation and the commit return that error and the
 * batch is aborted. Only lt_store_sweep (once a second, off the hot path) still runs in a
 * nested transaction, so a failing sweep leaves the batch intact.
 *
 * Durability: the environment is opened with MDB_NOMETASYNC, which keeps LMDB's integrity
 * (data pages are fsynced before the meta page that points at them is written) but leaves
 * the meta page unflushed at commit. lt_store_commit flushes it (mdb_env_sync) before it
 * returns; lt_store_commit_nosync leaves that to lt_store_sync, which another thread may run
 * while the next batch is built (the committer's pipeline). Until a batch is synced, the
 * readers of pending entries and of replay do not see its new messages (visible_next).
 *
 * Threads: every write (begin..commit, declare, sweep) is the writer thread's. Readers use
 * their own short read transactions (MDB_NOTLS) and touch no writer memory: they read the
 * committed counters from `queues`.
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

/* ---- errors ----------------------------------------------------------------------------- */

lt_err store_mdb_fail(const lt_store *s, lt_why *why, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return lt_fail(why, LT_ESTORE_FULL,
                       "store is full: LMDB map of %llu MiB used up (%s); raise "
                       "broker.map_size_mb",
                       (unsigned long long)(s->map_size >> 20), what);
    if (rc == ENOSPC || rc == EDQUOT)
        return lt_fail(why, LT_ESTORE_FULL, "store is full: no space left on disk (%s)", what);
    if (rc == MDB_TXN_FULL)
        return lt_fail(why, LT_EAGAIN, "write batch is full (%s): commit and retry", what);
    return lt_fail(why, LT_ESTORE, "LMDB %s: %s", what, mdb_strerror(rc));
}

/* ---- open / close ----------------------------------------------------------------------- */

static queue *qget(const lt_store *s, uint32_t qid)
{
    return (qid > 0 && qid < s->nqs) ? s->qs[qid] : NULL;
}

static lt_err qadd(lt_store *s, uint32_t qid, const char *name, size_t name_len)
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

static lt_err qrow_put(lt_store *s, MDB_txn *txn, const queue *q, lt_why *why)
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

static lt_err meta_get_u64(lt_store *s, MDB_txn *txn, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return LT_ENOTFOUND;
    if (rc || (v.mv_size != 8 && v.mv_size != 4))
        return LT_ESTORE;
    *out = v.mv_size == 8 ? get64(v.mv_data) : get32(v.mv_data);
    return LT_OK;
}

static int meta_put(lt_store *s, MDB_txn *txn, const char *key, const uint8_t *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

static lt_err last_key_u64(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
    MDB_cursor *c;
    MDB_val k, v;
    *out = 0;
    if (mdb_cursor_open(txn, dbi, &c))
        return LT_ESTORE;
    int rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        *out = get64(k.mv_data);
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? LT_OK : LT_ESTORE;
}

/* Create the named databases, check the layout version, load meta and queue rows. */
static lt_err load(lt_store *s, lt_why *why)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return store_mdb_fail(s, why, rc, "begin");
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"meta", &s->meta},     {"msgs", &s->msgs},     {"qnames", &s->qnames},
               {"queues", &s->queues},
               {"qent", &s->qent},     {"qlog", &s->qlog},     {"dlq", &s->dlq},
               {"certs", &s->certs}};
    lt_err err = LT_OK;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc) {
            err = store_mdb_fail(s, why, rc, "open database");
            goto out_abort;
        }
    }
    if ((err = store_dedup_open(s, txn, why)) != LT_OK)
        goto out_abort;
    uint64_t ver = 0;
    err = meta_get_u64(s, txn, "version", &ver);
    if (err == LT_ENOTFOUND || (err == LT_OK && (ver == 1 || ver == 2))) {
        /* new store, or layout 1 (whose records are layout-2 records without certref) or
         * 2 (whose dedup tables store_dedup_open replaced) */
        uint8_t b[4];
        put32(b, LAYOUT_VERSION);
        if ((rc = meta_put(s, txn, "version", b, 4))) {
            err = store_mdb_fail(s, why, rc, "write version");
            goto out_abort;
        }
        err = LT_OK;
    } else if (err || ver != LAYOUT_VERSION) {
        err = lt_fail(why, LT_ESTORE, "store layout version %llu, this broker reads %u",
                      (unsigned long long)ver, LAYOUT_VERSION);
        goto out_abort;
    }
    uint64_t v64 = 0, a = 0, b = 0;
    s->next_seq = 1;
    if (meta_get_u64(s, txn, "next_seq", &v64) == LT_OK)
        s->next_seq = v64;
    /* Belt and braces: never hand out a seq that is still in use. */
    if (last_key_u64(txn, s->msgs, &a) || store_dedup_last_seq(s, txn, &b)) {
        err = lt_fail(why, LT_ESTORE, "cannot read the last sequence number");
        goto out_abort;
    }
    if (a + 1 > s->next_seq)
        s->next_seq = a + 1;
    if (b + 1 > s->next_seq)
        s->next_seq = b + 1;
    s->last_ms = 0;
    if (meta_get_u64(s, txn, "last_ms", &v64) == LT_OK)
        s->last_ms = (int64_t)v64;
    s->next_qid = 1;
    if (meta_get_u64(s, txn, "next_qid", &v64) == LT_OK)
        s->next_qid = (uint32_t)v64;

    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->queues, &c))) {
        err = store_mdb_fail(s, why, rc, "open cursor");
        goto out_abort;
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4 || v.mv_size < QROW_HDR ||
            v.mv_size > QROW_HDR + LT_STORE_QUEUE_NAME_MAX) {
            err = lt_fail(why, LT_ESTORE, "corrupt queue row");
            break;
        }
        uint32_t qid = get32(k.mv_data);
        err = qadd(s, qid, (const char *)v.mv_data + QROW_HDR, v.mv_size - QROW_HDR);
        if (err) {
            lt_fail(why, err, "cannot load queue %u", qid);
            break;
        }
        qrow_decode(s->qs[qid], v.mv_data);
        if (qid >= s->next_qid)
            s->next_qid = qid + 1;
    }
    mdb_cursor_close(c);
    if (err)
        goto out_abort;
    if (rc != MDB_NOTFOUND) {
        err = store_mdb_fail(s, why, rc, "read queues");
        goto out_abort;
    }
    if ((rc = mdb_txn_commit(txn)) || (rc = mdb_env_sync(s->env, 1)))
        return store_mdb_fail(s, why, rc, "commit");
    s->saved_next_seq = s->next_seq;
    s->saved_last_ms = s->last_ms;
    atomic_store(&s->visible_next, s->next_seq);
    return LT_OK;
out_abort:
    mdb_txn_abort(txn);
    return err;
}

lt_err lt_store_open(lt_store **out, const lt_store_opts *opts, lt_why *why)
{
    if (!opts || !opts->dir || !*opts->dir)
        return lt_fail(why, LT_EINVAL, "store directory not given");
    if (mkdir(opts->dir, 0700) != 0 && errno != EEXIST)
        return lt_fail(why, LT_EIO, "cannot create store directory %s: %s", opts->dir,
                       strerror(errno));
    lt_store *s = calloc(1, sizeof *s);
    if (!s)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    s->lock_fd = -1;
    s->map_size = opts->map_size ? opts->map_size : DEFAULT_MAP_SIZE;
    s->dedup_ms = opts->dedup_window_ms > 0 ? opts->dedup_window_ms : DEFAULT_DEDUP_MS;
    lt_err err;

    /* LMDB lets several processes share an environment; two brokers on one store would
     * each believe they are the only writer of the queues' counters. Refuse the second. */
    char lockpath[4096];
    if ((size_t)snprintf(lockpath, sizeof lockpath, "%s/broker.lock", opts->dir) >=
        sizeof lockpath) {
        err = lt_fail(why, LT_EINVAL, "store directory path too long");
        goto out_free;
    }
    s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        err = lt_fail(why, LT_EIO, "cannot open %s: %s", lockpath, strerror(errno));
        goto out_free;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        err = lt_fail(why, LT_ESTORE, "store %s is in use by another process", opts->dir);
        goto out_free;
    }

    int rc = mdb_env_create(&s->env);
    if (rc) {
        err = store_mdb_fail(s, why, rc, "create environment");
        goto out_free;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, 16)) ||
        (rc = mdb_env_set_maxreaders(s->env, opts->max_readers ? opts->max_readers
                                                                : DEFAULT_READERS)) ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size))) {
        err = store_mdb_fail(s, why, rc, "configure environment");
        goto out_env;
    }
    /* MDB_NOMETASYNC and nothing weaker: commit fsyncs the data pages before it writes the
     * meta page, and every commit path flushes the meta page (mdb_env_sync) before anything
     * is acknowledged, which is what makes an ack durable and a kill -9 or a power cut
     * harmless. MDB_NOTLS: read transactions are not tied to
     * threads (verify workers, admin). */
    rc = mdb_env_open(s->env, opts->dir, MDB_NOTLS | MDB_NOMETASYNC, 0600);
    if (rc) {
        err = store_mdb_fail(s, why, rc, "open environment");
        goto out_env;
    }
    int dead = 0;
    if ((rc = mdb_reader_check(s->env, &dead))) {
        err = store_mdb_fail(s, why, rc, "reader check");
        goto out_env;
    }
    if ((err = load(s, why)))
        goto out_env;
    *out = s;
    return LT_OK;
out_env:
    mdb_env_close(s->env);
    s->env = NULL;
out_free:
    for (size_t i = 0; i < s->nqs; i++)
        if (s->qs[i]) {
            free(s->qs[i]->name);
            free(s->qs[i]);
        }
    free(s->qs);
    free(s->dirty);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    return err;
}

void lt_store_close(lt_store **sp)
{
    if (!sp || !*sp)
        return;
    lt_store *s = *sp;
    lt_store_abort(s);
    mdb_env_sync(s->env, 1); /* a last commit_nosync's root */
    mdb_env_close(s->env);
    for (size_t i = 0; i < s->nqs; i++)
        if (s->qs[i]) {
            free(s->qs[i]->name);
            free(s->qs[i]);
        }
    free(s->qs);
    free(s->dirty);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s);
    *sp = NULL;
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
        lt_err e = qadd(s, s->next_qid, name, nl);
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
    if ((err = qrow_put(s, txn, q, why)))
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
        if ((rc = meta_put(s, txn, "next_qid", b, 4))) {
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

static lt_err rbegin(lt_store *s, MDB_txn **txn, lt_why *why)
{
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    return rc ? store_mdb_fail(s, why, rc, "begin read") : LT_OK;
}

lt_err lt_store_queue_find(lt_store *s, const char *name, uint32_t *qid)
{
    size_t nl;
    if (!name_ok(name, &nl))
        return LT_ENOQUEUE;
    MDB_txn *txn;
    if (rbegin(s, &txn, NULL))
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
    lt_err err = rbegin(s, &txn, why);
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
    lt_err err = rbegin(s, &txn, why);
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

/* ---- the batch ---------------------------------------------------------------------------- */

/* A failed flush leaves the durability of every batch committed since the last good one
 * unknown, and Linux may have dropped the failed pages' dirty state (a later fsync then
 * "succeeds" without writing them). LMDB's copy-on-write trees share pages across commits,
 * so a later batch acknowledged after a good flush could still point at lost pages. Hence a
 * failed flush is final: no later batch begins or is acknowledged, until a restart reopens
 * the store from what is really on disk. */
static lt_err sync_failed_refusal(int rc, lt_why *why)
{
    return lt_fail(why, LT_ESTORE,
                   "a flush of the store failed (%s): what was committed since is of unknown "
                   "durability; the store refuses writes until the broker restarts",
                   mdb_strerror(rc));
}

bool lt_store_is_writable(lt_store *s, lt_why *why)
{
    int failed = atomic_load(&s->sync_failed);
    if (failed) {
        (void)sync_failed_refusal(failed, why);
        return false;
    }
    if (atomic_load(&s->full)) {
        lt_fail(why, LT_ESTORE_FULL,
                "store is full (map_size_mb or the disk): publishes are refused STORE_FULL "
                "until a commit succeeds again (consumers ack, the sweep frees, space grows)");
        return false;
    }
    return true;
}

lt_err lt_store_begin(lt_store *s, lt_why *why)
{
    if (s->txn)
        return lt_fail(why, LT_EAGAIN, "a batch is already open");
    int failed = atomic_load(&s->sync_failed);
    if (failed)
        return sync_failed_refusal(failed, why);
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc) {
        s->txn = NULL;
        return store_mdb_fail(s, why, rc, "begin");
    }
    s->saved_next_seq = s->next_seq;
    s->saved_last_ms = s->last_ms;
    s->ndirty = 0;
    s->fail_rc = 0;
    s->fail_what = NULL;
    s->batch_pages = 0;
    s->batch_appends = 0;
    return LT_OK;
}

static void touch(lt_store *s, queue *q)
{
    if (!q->dirty) {
        q->dirty = true;
        q->saved = q->c;
        s->dirty[s->ndirty++] = q->qid;
    }
}

static void undo_memory(lt_store *s)
{
    for (size_t i = 0; i < s->ndirty; i++) {
        queue *q = s->qs[s->dirty[i]];
        q->c = q->saved;
        q->dirty = false;
    }
    s->ndirty = 0;
    s->next_seq = s->saved_next_seq;
    s->last_ms = s->saved_last_ms;
    s->ncert_known = 0; /* certificates the batch added are gone with it */
    s->cert_next = 0;
}

void lt_store_abort(lt_store *s)
{
    if (!s || !s->txn)
        return;
    mdb_txn_abort(s->txn);
    s->txn = NULL;
    undo_memory(s);
}

/* LMDB refused a write of the batch: its transaction cannot commit any more. Remember it,
 * so every later operation and the commit fail the same way. */
lt_err store_batch_fail(lt_store *s, int rc, const char *what, lt_why *why)
{
    if (!s->fail_rc) {
        s->fail_rc = rc;
        s->fail_what = what;
    }
    return store_mdb_fail(s, why, rc, what);
}

static lt_err batch_usable(lt_store *s, lt_why *why)
{
    if (!s->txn)
        return lt_fail(why, LT_EAGAIN, "no batch open");
    if (s->fail_rc) {
        lt_why inner;
        lt_err e = store_mdb_fail(s, &inner, s->fail_rc, s->fail_what);
        return lt_fail(why, e, "batch failed earlier: %s", inner.msg);
    }
    return LT_OK;
}

static lt_err commit_txn(lt_store *s, lt_why *why)
{
    lt_err err = batch_usable(s, why);
    if (err) {
        if (s->txn)
            lt_store_abort(s);
        return err;
    }
    int rc;
    for (size_t i = 0; i < s->ndirty && !err; i++)
        err = qrow_put(s, s->txn, s->qs[s->dirty[i]], why);
    if (!err && s->next_seq != s->saved_next_seq) {
        uint8_t b[8];
        put64(b, s->next_seq);
        if ((rc = meta_put(s, s->txn, "next_seq", b, 8)) == 0) {
            put64(b, (uint64_t)s->last_ms);
            rc = meta_put(s, s->txn, "last_ms", b, 8);
        }
        if (rc)
            err = store_mdb_fail(s, why, rc, "write sequence");
    }
    if (err) {
        lt_store_abort(s);
        return err;
    }
    rc = mdb_txn_commit(s->txn); /* frees the txn whatever it returns */
    s->txn = NULL;
    if (rc) {
        undo_memory(s);
        return store_mdb_fail(s, why, rc, "commit");
    }
    for (size_t i = 0; i < s->ndirty; i++)
        s->qs[s->dirty[i]]->dirty = false;
    s->ndirty = 0;
    return LT_OK;
}

lt_err lt_store_commit_nosync(lt_store *s, uint64_t *ticket, lt_why *why)
{
    lt_err err = commit_txn(s, why);
    if (err == LT_ESTORE_FULL)
        atomic_store(&s->full, true);
    else if (err == LT_OK)
        atomic_store(&s->full, false);
    if (err == LT_OK)
        *ticket = s->next_seq;
    return err;
}

lt_err lt_store_sync(lt_store *s, uint64_t ticket, lt_why *why)
{
    int failed = atomic_load(&s->sync_failed);
    if (failed)
        return sync_failed_refusal(failed, why);
    int rc = mdb_env_sync(s->env, 1);
    if (rc) {
        int expected = 0;
        atomic_compare_exchange_strong(&s->sync_failed, &expected, rc);
        return sync_failed_refusal(rc, why);
    }
    uint64_t v = atomic_load(&s->visible_next);
    while (v < ticket && !atomic_compare_exchange_weak(&s->visible_next, &v, ticket))
        ;
    return LT_OK;
}

lt_err lt_store_commit(lt_store *s, lt_why *why)
{
    uint64_t ticket = 0;
    lt_err err = lt_store_commit_nosync(s, &ticket, why);
    return err ? err : lt_store_sync(s, ticket, why);
}

uint64_t lt_store_next_seq(const lt_store *s)
{
    return s->next_seq;
}

/* Open a nested transaction for one operation of the batch (the sweep only). */
static lt_err step_begin(lt_store *s, MDB_txn **child, lt_why *why)
{
    lt_err err = batch_usable(s, why);
    if (err)
        return err;
    int rc = mdb_txn_begin(s->env, s->txn, 0, child);
    return rc ? store_mdb_fail(s, why, rc, "begin step") : LT_OK;
}

static lt_err step_end(lt_store *s, MDB_txn *child, lt_err err, int rc, const char *what,
                       lt_why *why)
{
    if (!err && rc)
        err = store_mdb_fail(s, why, rc, what);
    if (err) {
        mdb_txn_abort(child);
        return err;
    }
    rc = mdb_txn_commit(child);
    return rc ? store_batch_fail(s, rc, what, why) : LT_OK; /* a failed child commit dooms the parent */
}

/* Is seq still referenced by any queue it was routed to? If not, delete it. */
static int gc(lt_store *s, MDB_txn *txn, uint64_t seq)
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
    return mdb_del(txn, s->msgs, &k, NULL);
}

static bool expired(const queue *q, int64_t stored_ms, int64_t now_ms)
{
    return q->lim.retention_ms <= 0 || stored_ms + q->lim.retention_ms <= now_ms;
}

/* The queue no longer needs seq as pending/dead: drop its history entry too when it is
 * past retention, and the message when no queue needs it any more. */
static int release(lt_store *s, MDB_txn *txn, const queue *q, uint64_t seq, int64_t stored_ms,
                   int64_t now_ms)
{
    if (!expired(q, stored_ms, now_ms))
        return 0;
    uint8_t kb[QKEY_LEN];
    qkey(kb, q->qid, seq);
    MDB_val k = {QKEY_LEN, kb};
    int rc = mdb_del(txn, s->qlog, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    return gc(s, txn, seq);
}

/* Varint length of n, as protobuf writes it (minimal). */
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

lt_err lt_store_append_cert(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                            size_t nq, const void *env, size_t len, const lt_store_cert *cert,
                            int64_t now_ms, uint64_t *seq, bool *dup, lt_why *why)
{
    lt_err err = batch_usable(s, why);
    if (err)
        return err;
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
    for (size_t i = 0; i < nq; i++) {
        const queue *q = qget(s, qids[i]);
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

    bool strip = cert_strippable(env, len, cert);
    size_t body = len - (strip ? cert->field_len : 0);
    size_t vlen = MSG_HDR + 4 * nq + (strip ? CERTREF_LEN : 0) + body;
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
    put32(p + 28, strip ? MSG_CERT : 0);
    for (size_t i = 0; i < nq; i++)
        put32(p + MSG_HDR + 4 * i, qids[i]);
    p += MSG_HDR + 4 * nq;
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
    uint8_t eb[QENT_LEN];
    put64(eb, (uint64_t)stored);
    put64(eb + 8, 0);
    put32(eb + 16, 0);
    put32(eb + 20, (uint32_t)len);
    for (size_t i = 0; i < nq; i++) {
        const queue *q = s->qs[qids[i]];
        uint8_t kb[QKEY_LEN];
        qkey(kb, q->qid, sq);
        MDB_val qk = {QKEY_LEN, kb}, qv = {QENT_LEN, eb};
        if ((rc = mdb_put(s->txn, s->qent, &qk, &qv, 0)))
            return store_batch_fail(s, rc, "write queue entry", why);
        if (q->lim.retention_ms > 0) {
            MDB_val lv = {QLOG_LEN, eb};
            if ((rc = mdb_put(s->txn, s->qlog, &qk, &lv, 0)))
                return store_batch_fail(s, rc, "write queue history", why);
        }
    }

    for (size_t i = 0; i < nq; i++) {
        queue *q = s->qs[qids[i]];
        touch(s, q);
        q->c.depth++;
        q->c.bytes += len;
    }
    s->batch_pages += pages;
    s->batch_appends++;
    s->next_seq = sq + 1;
    s->last_ms = stored;
    *seq = sq;
    *dup = false;
    return LT_OK;
}

lt_err lt_store_append(lt_store *s, const lt_store_msgkey *key, const uint32_t *qids,
                       size_t nq, const void *env, size_t len, int64_t now_ms, uint64_t *seq,
                       bool *dup, lt_why *why)
{
    return lt_store_append_cert(s, key, qids, nq, env, len, NULL, now_ms, seq, dup, why);
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
    lt_err err = batch_usable(s, why);
    if (err)
        return err;
    if (!(*q = qget(s, qid)))
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
    touch(s, q);
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
    touch(s, q);
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
    touch(s, q);
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
        if (!expired(q, stored, now_ms)) {
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
        if ((rc = gc(s, t, seq)))
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

lt_err lt_store_sweep(lt_store *s, int64_t now_ms, size_t budget, bool *more, lt_why *why)
{
    MDB_txn *t;
    bool more_work = false;
    lt_err err = step_begin(s, &t, why);
    if (err)
        return err;
    int rc = store_dedup_sweep(s, t, now_ms, &budget, &more_work);
    /* Retention: round-robin over the queues so none starves. */
    size_t visited = 0;
    while (rc == 0 && budget > 0 && visited < s->nqs) {
        if (s->sweep_q == 0 || s->sweep_q >= s->nqs)
            s->sweep_q = 1;
        queue *q = s->qs[s->sweep_q];
        bool done = true;
        if (q)
            rc = sweep_queue(s, t, q, now_ms, &budget, &more_work, &done);
        if (done)
            s->sweep_q++;
        visited++;
    }
    if ((err = step_end(s, t, LT_OK, rc, "sweep", why)))
        return err;
    if (more)
        *more = more_work;
    return LT_OK;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* A reader's buffer for envelopes whose certificate is put back (lives for one read call). */
typedef struct rbuf {
    uint8_t *p;
    size_t cap;
} rbuf;

/* Fill the message part of e (id, env, stored) from msgs[seq]; the envelope points into
 * the map, or into rb when its certificate had to be put back. */
static lt_err msg_read(lt_store *s, MDB_txn *txn, uint64_t seq, lt_store_entry *e, rbuf *rb,
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

static lt_err queue_known(lt_store *s, MDB_txn *txn, uint32_t qid, lt_why *why)
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
static lt_err scan_one(lt_store *s, MDB_dbi dbi, lt_store_state st, uint32_t qid,
                       uint64_t after, size_t max, lt_store_visit visit, void *arg,
                       uint64_t *last, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = rbegin(s, &txn, why);
    if (err)
        return err;
    uint64_t at = after;
    if ((err = queue_known(s, txn, qid, why)) || after == UINT64_MAX)
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
    rbuf rb = {NULL, 0};
    /* new messages of a batch that is not yet durable stay out of sight */
    uint64_t limit = st == LT_STORE_PENDING ? atomic_load(&s->visible_next) : UINT64_MAX;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != QKEY_LEN || get32(k.mv_data) != qid ||
            get64((const uint8_t *)k.mv_data + 4) >= limit)
            break;
        lt_store_entry e;
        e.qid = qid;
        if ((err = state_decode(st, &v, &e, why)) ||
            (err = msg_read(s, txn, get64((const uint8_t *)k.mv_data + 4), &e, &rb, why)))
            break;
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
    return scan_one(s, s->qent, LT_STORE_PENDING, qid, after_seq, max, visit, arg, last, why);
}

lt_err lt_store_dlq_list(lt_store *s, uint32_t qid, uint64_t after_seq, size_t max,
                         lt_store_visit visit, void *arg, uint64_t *last, lt_why *why)
{
    return scan_one(s, s->dlq, LT_STORE_DEAD, qid, after_seq, max, visit, arg, last, why);
}

lt_err lt_store_get(lt_store *s, uint32_t qid, uint64_t seq, lt_store_visit visit, void *arg,
                    lt_why *why)
{
    rbuf rb = {NULL, 0};
    MDB_txn *txn;
    lt_err err = rbegin(s, &txn, why);
    if (err)
        return err;
    if ((err = queue_known(s, txn, qid, why)))
        goto out;
    uint8_t kb[QKEY_LEN];
    qkey(kb, qid, seq);
    const MDB_dbi dbs[3] = {s->qent, s->dlq, s->qlog};
    const lt_store_state sts[3] = {LT_STORE_PENDING, LT_STORE_DEAD, LT_STORE_DONE};
    err = lt_fail(why, LT_ENOTFOUND, "queue %u holds no message %llu", qid,
                  (unsigned long long)seq);
    /* as the scans: a message of a batch that is not yet durable is not there yet */
    for (int i = 0; i < 3 && seq < atomic_load(&s->visible_next); i++) {
        MDB_val k = {QKEY_LEN, kb}, v;
        int rc = mdb_get(txn, dbs[i], &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc) {
            err = store_mdb_fail(s, why, rc, "read entry");
            break;
        }
        lt_store_entry e;
        e.qid = qid;
        if ((err = state_decode(sts[i], &v, &e, why)) ||
            (err = msg_read(s, txn, seq, &e, &rb, why)))
            break;
        visit(arg, &e);
        break;
    }
out:
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
    lt_err err = rbegin(s, &txn, why);
    if (err)
        return err;
    uint64_t at = from_seq ? from_seq - 1 : 0;
    MDB_cursor *c[3] = {NULL, NULL, NULL};
    const MDB_dbi dbs[3] = {s->qent, s->dlq, s->qlog};
    const lt_store_state sts[3] = {LT_STORE_PENDING, LT_STORE_DEAD, LT_STORE_DONE};
    MDB_val ck[3], cv[3];
    bool live[3];
    int rc = 0;
    rbuf rb = {NULL, 0};
    uint64_t limit = atomic_load(&s->visible_next);
    if ((err = queue_known(s, txn, qid, why)))
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
            (err = msg_read(s, txn, bseq, &e, &rb, why)))
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

lt_err lt_store_seq_at(lt_store *s, uint32_t qid, int64_t at_ms, uint64_t *seq, lt_why *why)
{
    MDB_txn *txn;
    lt_err err = rbegin(s, &txn, why);
    if (err)
        return err;
    MDB_cursor *c = NULL;
    uint64_t hi = 1, lo = 1;
    if ((err = queue_known(s, txn, qid, why)))
        goto out;
    if (meta_get_u64(s, txn, "next_seq", &hi) != LT_OK)
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
