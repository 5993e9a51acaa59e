/*
 * store.c - the durable store on LMDB (see store.h for the contract): the environment, its
 * layout version and meta, and the write batch every other file of the store writes in.
 *
 * One environment, a fixed set of named databases (never one per queue, so thousands of
 * queues cost nothing extra), each owned by one file (store_int.h lists them). Every
 * integer is big-endian, in keys (so byte order is numeric order) and in values (so the
 * files are portable).
 *
 *   meta    "next_seq" -> u64            seq the next append gets (never reused)
 *           "last_ms"  -> i64            stored time of the last append (clock clamp)
 *           "next_qid" -> u32
 *           "version"  -> u32            LAYOUT_VERSION
 *           "dedup_gen"                  the dedup generations (store_dedup.c)
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
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- errors ----------------------------------------------------------------------------- */

/* Is the data directory's file system (nearly) out of space? LMDB reports a write that
 * the disk could not take in full as EIO ("short write, filesystem full?"), which is then
 * a full disk, not an I/O error. */
#define DISK_FULL_MARGIN (16u << 20) /* an EIO with less free than this: a full disk */
#define DISK_FULL_READY (1u << 20)   /* less free than this: not writable (readiness) */
static bool disk_nearly_full(const lt_store *s, uint64_t margin, uint64_t *free_bytes)
{
    struct statvfs v;
    if (s->lock_fd < 0 || fstatvfs(s->lock_fd, &v) != 0)
        return false;
    *free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    return *free_bytes < margin;
}

lt_err store_mdb_fail(const lt_store *s, lt_why *why, int rc, const char *what)
{
    uint64_t free_bytes = 0;
    if (rc == MDB_MAP_FULL)
        return lt_fail(why, LT_ESTORE_FULL,
                       "store is full: LMDB map of %llu MiB used up (%s); raise "
                       "broker.map_size_mb",
                       (unsigned long long)(s->map_size >> 20), what);
    if (rc == ENOSPC || rc == EDQUOT)
        return lt_fail(why, LT_ESTORE_FULL, "store is full: no space left on disk (%s)", what);
    if (rc == EIO && disk_nearly_full(s, DISK_FULL_MARGIN, &free_bytes))
        return lt_fail(why, LT_ESTORE_FULL,
                       "store is full: a write did not fit on the disk (%s; %llu KiB free)", what,
                       (unsigned long long)(free_bytes >> 10));
    if (rc == MDB_TXN_FULL)
        return lt_fail(why, LT_EAGAIN, "write batch is full (%s): commit and retry", what);
    return lt_fail(why, LT_ESTORE, "LMDB %s: %s", what, mdb_strerror(rc));
}

/* ---- open / close ----------------------------------------------------------------------- */

lt_err store_rbegin(lt_store *s, MDB_txn **txn, lt_why *why)
{
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    return rc ? store_mdb_fail(s, why, rc, "begin read") : LT_OK;
}

lt_err store_meta_get_u64(lt_store *s, MDB_txn *txn, const char *key, uint64_t *out)
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

int store_meta_put(lt_store *s, MDB_txn *txn, const char *key, const uint8_t *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    return mdb_put(txn, s->meta, &k, &v, 0);
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
    uint64_t ver = 0;
    err = store_meta_get_u64(s, txn, "version", &ver);
    if (err == LT_ENOTFOUND || (err == LT_OK && ver >= 1 && ver < LAYOUT_VERSION)) {
        /* new store, or layout 1 (whose records are layout-2 records without certref) or
         * 2 (whose dedup tables store_dedup_open replaced) or 3 (records without hops) or
         * 4 (records in msgs, which stay there and are read there: store_msg_open) or 5
         * (dedup2, read by store_dedup.c until its first rotation; packs without a pool,
         * read as they are) */
        uint8_t b[4];
        put32(b, LAYOUT_VERSION);
        if ((rc = store_meta_put(s, txn, "version", b, 4))) {
            err = store_mdb_fail(s, why, rc, "write version");
            goto out_abort;
        }
        err = LT_OK;
    } else if (err || ver != LAYOUT_VERSION) {
        err = lt_fail(why, LT_ESTORE, "store layout version %llu, this broker reads %u",
                      (unsigned long long)ver, LAYOUT_VERSION);
        goto out_abort;
    }
    if ((err = store_dedup_open(s, txn, why)) != LT_OK)
        goto out_abort;
    uint64_t v64 = 0, a = 0;
    s->next_seq = 1;
    if (store_meta_get_u64(s, txn, "next_seq", &v64) == LT_OK)
        s->next_seq = v64;
    /* Belt and braces: never hand out a seq that is still in use. next_seq is written by
     * the same commit as every dedup entry that names a seq, so the dedup tables need no
     * index of their own for this; the packs' last key backs it. */
    if ((rc = store_msg_open(s, txn, &a))) {
        err = store_mdb_fail(s, why, rc, "open the message packs");
        goto out_abort;
    }
    if (a + 1 > s->next_seq)
        s->next_seq = a + 1;
    s->last_ms = 0;
    if (store_meta_get_u64(s, txn, "last_ms", &v64) == LT_OK)
        s->last_ms = (int64_t)v64;
    s->next_qid = 1;
    if (store_meta_get_u64(s, txn, "next_qid", &v64) == LT_OK)
        s->next_qid = (uint32_t)v64;

    if ((err = store_queue_load(s, txn, why)) != LT_OK ||
        (err = store_sched_open(s, txn, why)) != LT_OK)
        goto out_abort;
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
    s->io_fd = -1;
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
    if ((rc = mdb_env_set_maxdbs(s->env, 32)) ||
        (rc = mdb_env_set_maxreaders(s->env,
                                     opts->max_readers ? opts->max_readers : DEFAULT_READERS)) ||
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
    int fd = -1;
    if (mdb_env_get_fd(s->env, &fd) == 0 && store_io_watch(fd, true))
        s->io_fd = fd;
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
    if (s->io_fd >= 0)
        store_io_watch(s->io_fd, false);
    mdb_env_close(s->env);
    s->env = NULL;
out_free:
    store_queue_free_all(s);
    store_dedup_free(s);
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
    if (s->io_fd >= 0)
        store_io_watch(s->io_fd, false);
    mdb_env_close(s->env);
    store_queue_free_all(s);
    store_dedup_free(s);
    free(s->pk.buf);
    free(s->pk.off);
    free(s->pk.dead);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s);
    *sp = NULL;
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
    uint64_t free_bytes = 0;
    if (disk_nearly_full(s, DISK_FULL_READY, &free_bytes)) {
        lt_fail(why, LT_ESTORE_FULL,
                "store is full: %llu KiB free on the store's disk; publishes are refused "
                "STORE_FULL until space returns",
                (unsigned long long)(free_bytes >> 10));
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
    s->batch_freed = 0;
    store_dedup_begin(s);
    return LT_OK;
}

void store_touch(lt_store *s, queue *q)
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
    store_msg_reset(s); /* the batch's pack is gone with it */
    s->ncert_known = 0; /* certificates the batch added are gone with it */
    s->cert_next = 0;
    store_dedup_undo(s); /* and the source numbers it assigned, and a rotation */
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

lt_err store_batch_usable(lt_store *s, lt_why *why)
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
    lt_err err = store_batch_usable(s, why);
    if (err) {
        if (s->txn)
            lt_store_abort(s);
        return err;
    }
    int rc = store_msg_flush(s, s->txn);
    if (rc)
        err = store_batch_fail(s, rc, "write message pack", why);
    for (size_t i = 0; i < s->ndirty && !err; i++)
        err = store_queue_row_put(s, s->txn, s->qs[s->dirty[i]], why);
    if (!err && s->next_seq != s->saved_next_seq) {
        uint8_t b[8];
        put64(b, s->next_seq);
        if ((rc = store_meta_put(s, s->txn, "next_seq", b, 8)) == 0) {
            put64(b, (uint64_t)s->last_ms);
            rc = store_meta_put(s, s->txn, "last_ms", b, 8);
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
        err = store_mdb_fail(s, why, rc, "commit");
        if (err == LT_ESTORE && rc == EIO) {
            /* The commit's own fdatasync failed (not a full disk: store_mdb_fail tells
             * that one apart). Under MDB_NOMETASYNC it also covered the previous batch's
             * meta page, and the kernel may have dropped the failed pages' dirty state:
             * final, like a failed flush (see sync_failed_refusal). */
            int expected = 0;
            atomic_compare_exchange_strong(&s->sync_failed, &expected, rc);
            err = sync_failed_refusal(rc, why);
        }
        return err;
    }
    for (size_t i = 0; i < s->ndirty; i++)
        s->qs[s->dirty[i]]->dirty = false;
    s->ndirty = 0;
    return LT_OK;
}

lt_err lt_store_commit_nosync(lt_store *s, uint64_t *ticket, lt_why *why)
{
    bool wrote = s->batch_appends > 0 || s->batch_freed > 0;
    lt_err err = commit_txn(s, why);
    /* Full until a commit shows room again: one that stored a message or deleted one (its
     * pages are free for the next). A commit of count updates alone proves nothing: the
     * committer retries the ops of a full batch on their own at once. */
    if (err == LT_ESTORE_FULL)
        atomic_store(&s->full, true);
    else if (err == LT_OK && wrote)
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

uint64_t lt_store_retention_yielded(lt_store *s)
{
    return atomic_load(&s->retention_yielded);
}

uint64_t lt_store_next_seq(const lt_store *s)
{
    return s->next_seq;
}

/* Open a nested transaction for one operation of the batch (the sweep only). */
static lt_err step_begin(lt_store *s, MDB_txn **child, lt_why *why)
{
    lt_err err = store_batch_usable(s, why);
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

lt_err lt_store_sweep(lt_store *s, int64_t now_ms, size_t budget, bool *more, lt_why *why)
{
    MDB_txn *t;
    bool more_work = false;
    lt_err err = step_begin(s, &t, why);
    if (err)
        return err;
    dedup_gen g = s->dg;
    int rc = store_dedup_sweep(s, t, now_ms, &budget, &more_work);
    if (rc == 0)
        rc = store_queue_sweep(s, t, now_ms, &budget, &more_work);
    if ((err = step_end(s, t, LT_OK, rc, "sweep", why))) {
        s->dg = g; /* the rotation is undone with the step */
        return err;
    }
    if (more)
        *more = more_work;
    return LT_OK;
}

