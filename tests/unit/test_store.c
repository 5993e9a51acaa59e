/* test_store.c - the durable store: append/dedup/ack/refs, nak, DLQ, replay, retention,
 * back-pressure, batch isolation of failures, durability across close and kill -9, and
 * LMDB's error paths (map full, failing put, failing commit). */
/* LT_WRAP: mdb_put mdb_txn_commit mdb_env_sync */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker_int.h"
#include "devpki.h"
#include "envelope.h"
#include "store_int.h"
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
/* ---- wrapped LMDB calls: pass through unless a test arms them ------------------------------ */

int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags);
int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);

int __real_mdb_env_sync(MDB_env *env, int force);
int __wrap_mdb_env_sync(MDB_env *env, int force);

/* The dedup key of a test message: one source, one payload hash and one signer, so the id
 * alone tells messages apart (the dedup tests below vary the rest). */
static const uint8_t ZERO32[32];
#define KEY(idp)                                                                           \
    (&(lt_store_msgkey){.id = (idp),                                                       \
                        .source = "VN:GOV:000.00.00.H29:test",                             \
                        .payload_sha256 = ZERO32,                                          \
                        .signer_key_id = ZERO32})

static bool mock_put, mock_commit;
static int fail_sync; /* != 0: the store's next flushes fail with it */

/* When armed, each call takes its outcome from will_return: 0 = do the real call. */
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags)
{
    if (mock_put) {
        int rc = mock_type(int);
        if (rc)
            return rc;
    }
    return __real_mdb_put(txn, dbi, key, data, flags);
}

int __wrap_mdb_txn_commit(MDB_txn *txn)
{
    if (mock_commit) {
        int rc = mock_type(int);
        if (rc) {
            mdb_txn_abort(txn); /* a failed commit frees the txn, as the real one does */
            return rc;
        }
    }
    return __real_mdb_txn_commit(txn);
}

int __wrap_mdb_env_sync(MDB_env *env, int force)
{
    if (fail_sync)
        return fail_sync;
    return __real_mdb_env_sync(env, force);
}

/* ---- fixture ---------------------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    lt_store *s;
    uint32_t q1, q2;
} fx;

static const lt_store_queue_limits no_limits = {0, 0, 0};

static void rm_dir(const char *dir)
{
    const char *files[] = {"data.mdb", "lock.mdb", "broker.lock"};
    char p[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void open_store(fx *f, uint64_t map_size)
{
    lt_why why;
    lt_store_opts o = {.dir = f->dir, .map_size = map_size, .dedup_window_ms = 60000};
    lt_err err = lt_store_open(&f->s, &o, &why);
    if (err)
        fail_msg("open: %d %s", err, why.msg);
}

static int new_dir(fx *f)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/lt_store_XXXXXX", tmp ? tmp : "/tmp");
    return mkdtemp(f->dir) ? 0 : -1;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || new_dir(f))
        return -1;
    open_store(f, 64ULL << 20);
    lt_why why;
    if (lt_store_queue_declare(f->s, "q.one", &no_limits, &f->q1, &why) ||
        lt_store_queue_declare(f->s, "q.two", &no_limits, &f->q2, &why))
        return -1;
    mock_put = mock_commit = false;
    fail_sync = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mock_put = mock_commit = false;
    fail_sync = 0;
    lt_store_close(&f->s);
    rm_dir(f->dir);
    free(f);
    return 0;
}

static void mkid(uint8_t id[16], unsigned n)
{
    memset(id, 0xab, 16);
    id[12] = (uint8_t)(n >> 24);
    id[13] = (uint8_t)(n >> 16);
    id[14] = (uint8_t)(n >> 8);
    id[15] = (uint8_t)n;
}

/* Append one message "env-<n>" with id n to the given queues. */
static lt_err put_msg(fx *f, unsigned n, const uint32_t *qids, size_t nq, int64_t now,
                      uint64_t *seq, bool *dup, lt_why *why)
{
    uint8_t id[16];
    char env[64];
    mkid(id, n);
    int len = snprintf(env, sizeof env, "env-%u", n);
    return lt_store_append(f->s, KEY(id), qids, nq, env, (size_t)len, now, seq, dup, why);
}

static void commit_ok(fx *f)
{
    lt_why why;
    lt_err err = lt_store_commit(f->s, &why);
    if (err)
        fail_msg("commit: %s", why.msg);
}

/* Collects what a visitor sees. */
typedef struct seen {
    size_t n;
    uint64_t seq[64];
    uint32_t dc[64];
    int64_t nb[64], stored[64];
    lt_store_state st[64];
    char env[64][32];
    char reason[64][64];
    size_t stop_after; /* 0 = never */
} seen;

static int collect(void *arg, const lt_store_entry *e)
{
    seen *s = arg;
    if (s->n < 64) {
        s->seq[s->n] = e->seq;
        s->dc[s->n] = e->delivery_count;
        s->nb[s->n] = e->not_before_ms;
        s->stored[s->n] = e->stored_ms;
        s->st[s->n] = e->state;
        size_t l = e->env_len < 31 ? e->env_len : 31;
        if (l > 0)
            memcpy(s->env[s->n], e->env, l);
        s->env[s->n][l] = '\0';
        snprintf(s->reason[s->n], sizeof s->reason[s->n], "%s", e->reason);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static seen pending(fx *f, uint32_t qid)
{
    seen s;
    memset(&s, 0, sizeof s);
    lt_why why;
    assert_int_equal(lt_store_pending(f->s, qid, 0, 0, collect, &s, NULL, &why), LT_OK);
    return s;
}

static lt_store_queue_stats stats(fx *f, uint32_t qid)
{
    lt_store_queue_stats st;
    lt_why why;
    assert_int_equal(lt_store_queue_stats_get(f->s, qid, &st, &why), LT_OK);
    return st;
}

static int count_msgs_visit(void *arg, const lt_store_entry *e)
{
    (void)e;
    (*(size_t *)arg)++;
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void append_stores_the_envelope_and_it_is_pending_after_commit(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq;
    bool dup;
    assert_int_equal(lt_store_next_seq(f->s), 1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &seq, &dup, &why), LT_OK);
    assert_int_equal(seq, 1);
    assert_false(dup);
    /* Not visible to readers before commit. */
    assert_int_equal(pending(f, f->q1).n, 0);
    commit_ok(f);
    seen s = pending(f, f->q1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 1);
    assert_string_equal(s.env[0], "env-1");
    assert_int_equal(s.dc[0], 0);
    assert_int_equal(s.st[0], LT_STORE_PENDING);
    assert_int_equal(s.stored[0], 1000);
    lt_store_queue_stats st = stats(f, f->q1);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.bytes, 5);
    assert_int_equal(st.oldest_ms, 1000);
    assert_int_equal(st.first_seq, 1);
    assert_string_equal(st.name, "q.one");
    assert_int_equal(pending(f, f->q2).n, 0);
    uint32_t qid;
    assert_int_equal(lt_store_queue_find(f->s, "q.two", &qid), LT_OK);
    assert_int_equal(qid, f->q2);
    assert_int_equal(lt_store_queue_find(f->s, "nope", &qid), LT_ENOQUEUE);
}

static void duplicate_id_within_window_returns_original_seq_and_stores_nothing(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq, seq2;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 7, &f->q1, 1, 1000, &seq, &dup, &why), LT_OK);
    /* same batch */
    assert_int_equal(put_msg(f, 7, &f->q1, 1, 1001, &seq2, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(seq2, seq);
    commit_ok(f);
    /* later batch, still in the 60 s window, even to another queue */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 7, &f->q2, 1, 50000, &seq2, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(seq2, seq);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 1);
    assert_int_equal(pending(f, f->q2).n, 0);
    assert_int_equal(stats(f, f->q1).depth, 1);
    /* past the window the id is new again */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 7, &f->q1, 1, 1000 + 60000, &seq2, &dup, &why), LT_OK);
    assert_false(dup);
    assert_int_equal(seq2, seq + 1);
    commit_ok(f);
}

static void a_message_routed_to_two_queues_is_deleted_only_when_both_acked(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq;
    bool dup;
    uint32_t both[2] = {f->q1, f->q2};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, both, 2, 1000, &seq, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q1, seq, 2000, &why), LT_OK);
    /* acking twice is harmless and says so */
    assert_int_equal(lt_store_ack(f->s, f->q1, seq, 2000, &why), LT_ENOTFOUND);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(stats(f, f->q1).depth, 0);
    assert_int_equal(stats(f, f->q1).bytes, 0);
    /* still readable through the other queue */
    seen s = pending(f, f->q2);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.env[0], "env-1");
    size_t n = 0;
    assert_int_equal(lt_store_get(f->s, f->q2, seq, count_msgs_visit, &n, &why), LT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lt_store_get(f->s, f->q1, seq, count_msgs_visit, &n, &why),
                     LT_ENOTFOUND);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q2, seq, 2000, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_get(f->s, f->q2, seq, count_msgs_visit, &n, &why),
                     LT_ENOTFOUND);
    /* the envelope itself is gone: replay (retention 0) finds nothing either */
    seen r;
    memset(&r, 0, sizeof r);
    assert_int_equal(lt_store_replay(f->s, f->q2, 1, 0, collect, &r, NULL, &why), LT_OK);
    assert_int_equal(r.n, 0);
}

static void nak_records_delivery_count_and_not_before(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &seq, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_nak(f->s, f->q1, seq, 2, 9000, &why), LT_OK);
    assert_int_equal(lt_store_nak(f->s, f->q1, seq + 100, 2, 9000, &why), LT_ENOTFOUND);
    commit_ok(f);
    seen s = pending(f, f->q1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.dc[0], 2);
    assert_int_equal(s.nb[0], 9000);
    assert_int_equal(stats(f, f->q1).depth, 1);
}

static void dead_letter_keeps_payload_and_reason_then_requeue_and_drop(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, s1, 5, "max_deliver 5 reached", 3000,
                                          &why),
                     LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, s2, 5, "schema rejected", 3000, &why),
                     LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, s2, 5, "again", 3000, &why),
                     LT_ENOTFOUND);
    commit_ok(f);
    lt_store_queue_stats st = stats(f, f->q1);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.dlq_depth, 2);
    assert_int_equal(st.dlq_bytes, 10);
    seen d;
    memset(&d, 0, sizeof d);
    assert_int_equal(lt_store_dlq_list(f->s, f->q1, 0, 0, collect, &d, NULL, &why), LT_OK);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.reason[0], "max_deliver 5 reached");
    assert_string_equal(d.env[0], "env-1");
    assert_int_equal(d.dc[0], 5);
    assert_int_equal(d.st[1], LT_STORE_DEAD);
    /* requeue the first: pending again with a fresh count; drop the second */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dlq_requeue(f->s, f->q1, s1, &why), LT_OK);
    assert_int_equal(lt_store_dlq_requeue(f->s, f->q1, s1, &why), LT_ENOTFOUND);
    assert_int_equal(lt_store_dlq_drop(f->s, f->q1, s2, 4000, &why), LT_OK);
    commit_ok(f);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.seq[0], s1);
    assert_int_equal(p.dc[0], 0);
    st = stats(f, f->q1);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.dlq_depth, 0);
    assert_int_equal(st.dlq_bytes, 0);
    size_t n = 0;
    assert_int_equal(lt_store_get(f->s, f->q1, s2, count_msgs_visit, &n, &why), LT_ENOTFOUND);
}

static void replay_by_seq_and_by_time_sees_acked_messages_within_retention(void **state)
{
    fx *f = *state;
    lt_why why;
    uint32_t qr;
    lt_store_queue_limits lim = {0, 0, 10000};
    assert_int_equal(lt_store_queue_declare(f->s, "q.replay", &lim, &qr, &why), LT_OK);
    uint64_t seq[6];
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(put_msg(f, 100 + i, &qr, 1, 1000 + 1000 * i, &seq[i], &dup, &why),
                         LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(lt_store_ack(f->s, qr, seq[i], 7000, &why), LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, qr, seq[4], 3, "bad", 7000, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(pending(f, qr).n, 1);

    seen r;
    memset(&r, 0, sizeof r);
    uint64_t last = 0;
    assert_int_equal(lt_store_replay(f->s, qr, seq[2], 0, collect, &r, &last, &why), LT_OK);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.seq[0], seq[2]);
    assert_int_equal(r.st[0], LT_STORE_DONE);
    assert_int_equal(r.st[2], LT_STORE_DEAD);
    assert_int_equal(r.st[3], LT_STORE_PENDING);
    assert_string_equal(r.env[1], "env-103");
    assert_int_equal(last, seq[5]);
    /* paging: at most 2 */
    memset(&r, 0, sizeof r);
    assert_int_equal(lt_store_replay(f->s, qr, 1, 2, collect, &r, &last, &why), LT_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(last, seq[1]);
    /* by time: stored at 1000, 2000, ... 6000 */
    uint64_t from;
    assert_int_equal(lt_store_seq_at(f->s, qr, 3500, &from, &why), LT_OK);
    assert_int_equal(from, seq[3]);
    assert_int_equal(lt_store_seq_at(f->s, qr, 0, &from, &why), LT_OK);
    assert_true(from <= seq[0]);
    assert_int_equal(lt_store_seq_at(f->s, qr, 99999, &from, &why), LT_OK);
    assert_int_equal(from, seq[5] + 1);
    assert_int_equal(lt_store_replay(f->s, 999, 1, 0, collect, &r, &last, &why), LT_ENOQUEUE);
}

static void retention_sweep_deletes_acked_messages_only_past_retention(void **state)
{
    fx *f = *state;
    lt_why why;
    uint32_t qr;
    lt_store_queue_limits lim = {0, 0, 10000};
    assert_int_equal(lt_store_queue_declare(f->s, "q.ret", &lim, &qr, &why), LT_OK);
    uint64_t seq[5];
    bool dup, more;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(put_msg(f, 200 + i, &qr, 1, 1000 + i, &seq[i], &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    /* acked: 0, 1, 3; 2 stays pending; 4 is acked */
    assert_int_equal(lt_store_ack(f->s, qr, seq[0], 2000, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qr, seq[1], 2000, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qr, seq[3], 2000, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qr, seq[4], 2000, &why), LT_OK);
    /* within retention: nothing to do */
    assert_int_equal(lt_store_sweep(f->s, 5000, 100, &more, &why), LT_OK);
    commit_ok(f);
    seen r;
    memset(&r, 0, sizeof r);
    assert_int_equal(lt_store_replay(f->s, qr, 1, 0, collect, &r, NULL, &why), LT_OK);
    assert_int_equal(r.n, 5);
    /* past retention: a budget of 1 does one entry and says there is more */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sweep(f->s, 20000, 1, &more, &why), LT_OK);
    assert_true(more);
    for (int i = 0; i < 20 && more; i++)
        assert_int_equal(lt_store_sweep(f->s, 20000, 1, &more, &why), LT_OK);
    assert_false(more);
    commit_ok(f);
    memset(&r, 0, sizeof r);
    assert_int_equal(lt_store_replay(f->s, qr, 1, 0, collect, &r, NULL, &why), LT_OK);
    assert_int_equal(r.n, 1); /* only the pending one */
    assert_int_equal(r.seq[0], seq[2]);
    size_t n = 0;
    assert_int_equal(lt_store_get(f->s, qr, seq[0], count_msgs_visit, &n, &why),
                     LT_ENOTFOUND);
    /* acking the pending one past retention removes it at once */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qr, seq[2], 30000, &why), LT_OK);
    commit_ok(f);
    memset(&r, 0, sizeof r);
    assert_int_equal(lt_store_replay(f->s, qr, 1, 0, collect, &r, NULL, &why), LT_OK);
    assert_int_equal(r.n, 0);
}

/* The sweep rotates the dedup generations once the current one is older than the window:
 * an id stays on disk between one and two windows, and is a duplicate only within its
 * window (each lookup checks that exactly). */
static void dedup_sweep_forgets_ids_past_the_window(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq, seq2;
    bool dup, more;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 9, &f->q1, 1, 1000, &seq, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sweep(f->s, 30000, 10, &more, &why), LT_OK);
    assert_false(more);
    /* still within the window: still a duplicate */
    assert_int_equal(put_msg(f, 9, &f->q1, 1, 30000, &seq2, &dup, &why), LT_OK);
    assert_true(dup);
    /* the first rotation keeps it, in the previous generation */
    assert_int_equal(lt_store_sweep(f->s, 61001, 10, &more, &why), LT_OK);
    assert_false(more);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 9, &f->q1, 1, 60999, &seq2, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(seq2, seq);
    /* the next rotation is due a window after the first: a sweep without budget says so */
    assert_int_equal(lt_store_sweep(f->s, 121000, 10, &more, &why), LT_OK);
    assert_int_equal(put_msg(f, 9, &f->q1, 1, 2000, &seq2, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(lt_store_sweep(f->s, 121001, 0, &more, &why), LT_OK);
    assert_true(more);
    assert_int_equal(lt_store_sweep(f->s, 121001, 10, &more, &why), LT_OK);
    assert_false(more);
    commit_ok(f);
    /* gone from disk: the id is new, even read with a clock inside the old window */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 9, &f->q1, 1, 2000, &seq2, &dup, &why), LT_OK);
    assert_false(dup);
    commit_ok(f);
}

static void full_queue_refuses_with_queue_full_naming_it(void **state)
{
    fx *f = *state;
    lt_why why;
    uint32_t qd, qb;
    lt_store_queue_limits ld = {2, 0, 0}, lb = {0, 12, 0};
    assert_int_equal(lt_store_queue_declare(f->s, "q.depth", &ld, &qd, &why), LT_OK);
    assert_int_equal(lt_store_queue_declare(f->s, "q.bytes", &lb, &qb, &why), LT_OK);
    uint64_t seq;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &qd, 1, 1000, &seq, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &qd, 1, 1000, &seq, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 3, &qd, 1, 1000, &seq, &dup, &why), LT_EQUEUE_FULL);
    assert_non_null(strstr(why.msg, "q.depth"));
    assert_int_equal(put_msg(f, 4, &qb, 1, 1000, &seq, &dup, &why), LT_OK); /* 5 bytes */
    assert_int_equal(put_msg(f, 5, &qb, 1, 1000, &seq, &dup, &why), LT_OK); /* 10 */
    assert_int_equal(put_msg(f, 6, &qb, 1, 1000, &seq, &dup, &why), LT_EQUEUE_FULL);
    assert_non_null(strstr(why.msg, "q.bytes"));
    /* all or nothing: a message for a full queue and a free one is refused for both */
    uint32_t two[2] = {f->q1, qd};
    assert_int_equal(put_msg(f, 7, two, 2, 1000, &seq, &dup, &why), LT_EQUEUE_FULL);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(stats(f, qd).depth, 2);
    /* an ack makes room */
    seen p = pending(f, qd);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qd, p.seq[0], 2000, &why), LT_OK);
    assert_int_equal(put_msg(f, 3, &qd, 1, 2000, &seq, &dup, &why), LT_OK);
    commit_ok(f);
    /* unknown queue, no queue */
    uint32_t bad = 4242;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 8, &bad, 1, 1000, &seq, &dup, &why), LT_ENOQUEUE);
    assert_int_equal(put_msg(f, 8, &bad, 0, 1000, &seq, &dup, &why), LT_EINVAL);
    lt_store_abort(f->s);
}

/* Contract since the store stopped nesting a transaction per operation: a write LMDB
 * refuses (map full, I/O error) fails the whole batch - later operations and the commit
 * return the same error and nothing of the batch is stored. */
static void a_failing_put_fails_the_whole_batch_and_stores_nothing(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, s3;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    /* second message: its 2nd put (qent, after its dedup entry) fails as if the map were
     * full */
    mock_put = true;
    will_return(__wrap_mdb_put, 0);
    will_return(__wrap_mdb_put, MDB_MAP_FULL);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_ESTORE_FULL);
    assert_non_null(strstr(why.msg, "map_size_mb"));
    mock_put = false;
    /* the batch is spent: everything after says so, and the commit stores nothing */
    assert_int_equal(put_msg(f, 3, &f->q1, 1, 1000, &s3, &dup, &why), LT_ESTORE_FULL);
    assert_non_null(strstr(why.msg, "batch failed"));
    assert_int_equal(lt_store_ack(f->s, f->q1, s1, 1000, &why), LT_ESTORE_FULL);
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE_FULL);
    /* /readyz says so until a commit succeeds again */
    assert_false(lt_store_is_writable(f->s, &why));
    assert_non_null(strstr(why.msg, "store is full"));
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(stats(f, f->q1).depth, 0);
    assert_int_equal(lt_store_next_seq(f->s), s1);
    /* no id of the failed batch was remembered: all can be published again */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(put_msg(f, i, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
        assert_false(dup);
        assert_int_equal(s2, s1 + i - 1);
    }
    commit_ok(f);
    assert_true(lt_store_is_writable(f->s, &why));
    assert_int_equal(stats(f, f->q1).depth, 3);
    /* a dead-letter whose put fails: the batch (with its ack) is refused, the entry stays
     * pending */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q1, s1 + 1, 2000, &why), LT_OK);
    mock_put = true;
    will_return(__wrap_mdb_put, EIO);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, s1, 5, "x", 2000, &why), LT_ESTORE);
    mock_put = false;
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE);
    assert_int_equal(pending(f, f->q1).n, 3);
    assert_int_equal(stats(f, f->q1).dlq_depth, 0);
}

/* Refusals of the operation itself (duplicate, queue full, not found) write nothing and
 * keep the batch. */
static void a_refused_operation_keeps_the_batch(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    uint32_t q;
    lt_store_queue_limits one = {1, 0, 0};
    assert_int_equal(lt_store_queue_declare(f->s, "q.small", &one, &q, &why), LT_OK);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &q, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &q, 1, 1000, &s2, &dup, &why), LT_EQUEUE_FULL);
    assert_int_equal(lt_store_ack(f->s, f->q1, 999, 1000, &why), LT_ENOTFOUND);
    assert_int_equal(lt_store_dlq_drop(f->s, f->q1, 999, 1000, &why), LT_ENOTFOUND);
    assert_int_equal(put_msg(f, 3, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    assert_int_equal(s2, s1 + 1);
    commit_ok(f);
    assert_int_equal(stats(f, q).depth, 1);
    assert_int_equal(stats(f, f->q1).depth, 1);
}

/* An envelope-shaped message: field 1 (header), 2 (payload), 3 (signature), then 5 (the
 * certificate) where cert_last, else before the signature. */
static size_t fake_env(uint8_t *out, const uint8_t *cert, size_t cert_len, bool cert_last,
                       size_t *field_off, const uint8_t **der)
{
    size_t n = 0;
    const char *hdr = "header-bytes", *pl = "payload-bytes", *sig = "signature";
    out[n++] = 0x0a;
    out[n++] = (uint8_t)strlen(hdr);
    memcpy(out + n, hdr, strlen(hdr));
    n += strlen(hdr);
    out[n++] = 0x12;
    out[n++] = (uint8_t)strlen(pl);
    memcpy(out + n, pl, strlen(pl));
    n += strlen(pl);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == (cert_last ? 1 : 0)) {
            *field_off = n;
            out[n++] = 0x2a;
            out[n++] = (uint8_t)(0x80 | (cert_len & 0x7f)); /* two-byte varint */
            out[n++] = (uint8_t)(cert_len >> 7);
            *der = out + n;
            memcpy(out + n, cert, cert_len);
            n += cert_len;
        } else {
            out[n++] = 0x1a;
            out[n++] = (uint8_t)strlen(sig);
            memcpy(out + n, sig, strlen(sig));
            n += strlen(sig);
        }
    }
    return n;
}

typedef struct envcopy {
    size_t n;
    uint8_t buf[4][1024];
    size_t len[4];
} envcopy;

static int copy_env(void *arg, const lt_store_entry *e)
{
    envcopy *c = arg;
    if (c->n < 4 && e->env_len <= sizeof c->buf[0]) {
        memcpy(c->buf[c->n], e->env, e->env_len);
        c->len[c->n] = e->env_len;
    }
    c->n++;
    return 0;
}

static void certificates_are_stored_once_and_every_read_returns_the_envelope_as_received(
    void **state)
{
    fx *f = *state;
    lt_why why;
    uint8_t cert[300], env[2][700];
    for (size_t i = 0; i < sizeof cert; i++)
        cert[i] = (uint8_t)(i * 7);
    uint8_t key_id[32];
    memset(key_id, 0x5c, sizeof key_id);
    uint64_t seq[3];
    bool dup;
    size_t len[2];
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (int i = 0; i < 2; i++) {
        lt_store_cert c = {.key_id = key_id, .der_len = sizeof cert};
        len[i] = fake_env(env[i], cert, sizeof cert, i == 0, &c.field_off, &c.der);
        c.field_len = 3 + sizeof cert;
        uint8_t id[16];
        mkid(id, 10 + (unsigned)i);
        assert_int_equal(lt_store_append_cert(f->s, KEY(id), &f->q1, 1, env[i], len[i], &c, 1000,
                                              &seq[i], &dup, &why),
                         LT_OK);
    }
    /* a description that does not match the bytes: stored verbatim, read back the same */
    lt_store_cert bad = {.key_id = key_id, .der = env[0] + 1, .der_len = 5, .field_off = 0,
                         .field_len = 7};
    uint8_t id[16];
    mkid(id, 12);
    assert_int_equal(lt_store_append_cert(f->s, KEY(id), &f->q1, 1, env[0], len[0], &bad, 1000,
                                          &seq[2], &dup, &why),
                     LT_OK);
    commit_ok(f);
    envcopy got;
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_pending(f->s, f->q1, 0, 0, copy_env, &got, NULL, &why), LT_OK);
    assert_int_equal(got.n, 3);
    for (int i = 0; i < 3; i++) {
        size_t want = i < 2 ? len[i] : len[0];
        assert_int_equal(got.len[i], want);
        assert_memory_equal(got.buf[i], i < 2 ? env[i] : env[0], want);
    }
    /* the dead-letter view and replay get the same bytes */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, seq[1], 3, "poison", 2000, &why), LT_OK);
    commit_ok(f);
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_dlq_list(f->s, f->q1, 0, 0, copy_env, &got, NULL, &why), LT_OK);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.len[0], len[1]);
    assert_memory_equal(got.buf[0], env[1], len[1]);
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_replay(f->s, f->q1, 1, 0, copy_env, &got, NULL, &why), LT_OK);
    assert_int_equal(got.n, 3);
    assert_memory_equal(got.buf[1], env[1], len[1]);
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_get(f->s, f->q1, seq[0], copy_env, &got, &why), LT_OK);
    assert_int_equal(got.len[0], len[0]);
    assert_memory_equal(got.buf[0], env[0], len[0]);
    /* and after reopening (the certificate comes from disk, not from memory) */
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_pending(f->s, f->q1, 0, 0, copy_env, &got, NULL, &why), LT_OK);
    assert_int_equal(got.n, 2);
    assert_memory_equal(got.buf[0], env[0], len[0]);
}

static void a_batch_committed_without_sync_is_hidden_from_readers_until_synced(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, ticket = 0;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(lt_store_commit_nosync(f->s, &ticket, &why), LT_OK);
    assert_int_equal(ticket, s1 + 1);
    assert_int_equal(pending(f, f->q1).n, 0);
    /* the next batch may begin before the sync */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(lt_store_sync(f->s, ticket, &why), LT_OK);
    assert_int_equal(pending(f, f->q1).n, 1);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 1);
}

static int count_get(void *arg, const lt_store_entry *e)
{
    (void)e;
    (*(size_t *)arg)++;
    return 1;
}

/* lt_store_get, the redelivery and dlq.show read, sees no more than the scans do. */
static void a_message_not_yet_synced_is_not_found_by_get(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, ticket = 0;
    bool dup;
    size_t n = 0;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(lt_store_commit_nosync(f->s, &ticket, &why), LT_OK);
    assert_int_equal(lt_store_get(f->s, f->q1, s1, count_get, &n, &why), LT_ENOTFOUND);
    assert_int_equal(n, 0);
    assert_int_equal(lt_store_sync(f->s, ticket, &why), LT_OK);
    assert_int_equal(lt_store_get(f->s, f->q1, s1, count_get, &n, &why), LT_OK);
    assert_int_equal(n, 1);
}

/* A failed flush leaves everything committed since the last good one of unknown durability,
 * and a later flush that "succeeds" proves nothing about it (the kernel may have dropped the
 * failed pages). So the first failure is final: later syncs refuse (no ack), new batches are
 * refused, the messages stay hidden; reopening starts again from what is on disk. */
static void a_failed_flush_is_final_until_the_store_is_reopened(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, t1 = 0, t2 = 0;
    bool dup;
    assert_true(lt_store_is_writable(f->s, &why));
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(lt_store_commit_nosync(f->s, &t1, &why), LT_OK);
    /* the writer goes on with the next batch while the first one's flush runs */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    fail_sync = EIO;
    assert_int_equal(lt_store_sync(f->s, t1, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "flush"));
    assert_false(lt_store_is_writable(f->s, &why)); /* /readyz says so, with the reason */
    assert_non_null(strstr(why.msg, "refuses writes"));
    fail_sync = 0;
    assert_int_equal(lt_store_commit_nosync(f->s, &t2, &why), LT_OK); /* opened before */
    assert_int_equal(lt_store_sync(f->s, t2, &why), LT_ESTORE);       /* but never acked */
    assert_int_equal(lt_store_sync(f->s, t1, &why), LT_ESTORE);
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(lt_store_begin(f->s, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "restart"));
    assert_int_equal(lt_store_commit(f->s, &why), LT_EAGAIN); /* no batch open */
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 3, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    commit_ok(f);
    assert_true(pending(f, f->q1).n >= 1);
}

static void a_failing_commit_stores_nothing_and_reuses_the_seqs(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    mock_commit = true;
    will_return(__wrap_mdb_txn_commit, MDB_BAD_TXN);
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE);
    mock_commit = false;
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(stats(f, f->q1).depth, 0);
    assert_int_equal(lt_store_next_seq(f->s), s1);
    /* disk full at commit is reported as store full */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    assert_false(dup); /* the failed batch's id was not remembered */
    assert_int_equal(s2, s1);
    mock_commit = true;
    will_return(__wrap_mdb_txn_commit, ENOSPC);
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE_FULL);
    mock_commit = false;
    /* and an abort forgets as well */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    lt_store_abort(f->s);
    assert_int_equal(lt_store_next_seq(f->s), s1);
    assert_int_equal(pending(f, f->q1).n, 0);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(stats(f, f->q1).depth, 1);
}

/* An I/O error from the commit itself (its fdatasync; the disk has room) is final like a
 * failed flush: under MDB_NOMETASYNC that sync also covered the previous batch's meta page.
 * No later batch begins, the store is not writable, until it is reopened. */
static void an_io_error_at_commit_is_final_until_the_store_is_reopened(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    mock_commit = true;
    will_return(__wrap_mdb_txn_commit, EIO);
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE);
    mock_commit = false;
    assert_non_null(strstr(why.msg, "restarts"));
    assert_false(lt_store_is_writable(f->s, &why));
    assert_int_equal(lt_store_begin(f->s, &why), LT_ESTORE);
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    assert_true(lt_store_is_writable(f->s, &why));
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    commit_ok(f);
}

/* Full stays full until a commit shows room: one of count updates alone does not clear it
 * (the committer commits a full batch's ops on their own right away), one that deletes a
 * message or stores one does. */
static void store_full_is_cleared_only_by_a_commit_that_frees_or_stores(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    mock_commit = true;
    will_return(__wrap_mdb_txn_commit, MDB_MAP_FULL);
    assert_int_equal(lt_store_commit(f->s, &why), LT_ESTORE_FULL);
    mock_commit = false;
    assert_false(lt_store_is_writable(f->s, &why));
    assert_non_null(strstr(why.msg, "full"));
    /* a nak (count update) commits, but frees nothing */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_nak(f->s, f->q1, s1, 1, 0, &why), LT_OK);
    commit_ok(f);
    assert_false(lt_store_is_writable(f->s, &why));
    /* an ack deletes the message: room again */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q1, s1, 2000, &why), LT_OK);
    commit_ok(f);
    assert_true(lt_store_is_writable(f->s, &why));
}

static void operations_outside_a_batch_are_refused(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq;
    bool dup;
    uint32_t qid;
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &seq, &dup, &why), LT_EAGAIN);
    assert_int_equal(lt_store_ack(f->s, f->q1, 1, 0, &why), LT_EAGAIN);
    assert_int_equal(lt_store_commit(f->s, &why), LT_EAGAIN);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_begin(f->s, &why), LT_EAGAIN);
    assert_int_equal(lt_store_queue_declare(f->s, "q.x", &no_limits, &qid, &why), LT_EAGAIN);
    lt_store_abort(f->s);
    assert_int_equal(lt_store_queue_declare(f->s, "", &no_limits, &qid, &why), LT_EINVAL);
}

typedef struct hopsseen {
    size_t n;
    char hops[4][3][16];
    size_t nhops[4];
} hopsseen;

static int collect_hops(void *arg, const lt_store_entry *e)
{
    hopsseen *h = arg;
    if (h->n < 4) {
        h->nhops[h->n] = e->nhops;
        for (size_t i = 0; i < e->nhops && i < 3; i++)
            snprintf(h->hops[h->n][i], sizeof h->hops[h->n][i], "%s", e->hops[i]);
    }
    h->n++;
    return 0;
}

/* Links between brokers (docs/network.md): the hops a record arrived with are kept with it
 * and given back by every read; a message without hops reads none; malformed hops are
 * refused before anything is written. */
static void hops_are_kept_with_the_message_and_read_back(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    const char *hops[] = {"ward", "city"};
    uint8_t hb[LT_STORE_HOPS_BYTES];
    size_t hl = 0;
    assert_int_equal(lt_store_hops_encode(hops, 2, hb, &hl), LT_OK);
    assert_int_equal(hl, 1 + 5 + 5);
    const char *bad[] = {""};
    assert_int_equal(lt_store_hops_encode(bad, 1, hb + 100, &hl), LT_EINVAL);
    hl = 11;
    uint8_t id[16];
    mkid(id, 1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_append_hops(f->s, KEY(id), &f->q1, 1, "env-1", 5, NULL, hb, hl,
                                          1000, 0, &s1, &dup, &why),
                     LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    uint8_t broken[3] = {2, 'a', 0}; /* says two names, holds one */
    mkid(id, 3);
    assert_int_equal(lt_store_append_hops(f->s, KEY(id), &f->q1, 1, "env-3", 5, NULL, broken,
                                          sizeof broken, 1000, 0, &s2, &dup, &why),
                     LT_EINVAL);
    commit_ok(f);
    hopsseen h;
    memset(&h, 0, sizeof h);
    assert_int_equal(lt_store_pending(f->s, f->q1, 0, 0, collect_hops, &h, NULL, &why), LT_OK);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.nhops[0], 2);
    assert_string_equal(h.hops[0][0], "ward");
    assert_string_equal(h.hops[0][1], "city");
    assert_int_equal(h.nhops[1], 0);
    seen p = pending(f, f->q1); /* the envelope is untouched by the hops before it */
    assert_string_equal(p.env[0], "env-1");
    assert_string_equal(p.env[1], "env-2");
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Layout 4 and older kept one record per message in msgs (seq -> record), where layout 5
 * packs them (mpack: last seq -> [first u64][n u32][0 u32][off u32 x n+1][records]): move
 * every packed record to msgs, as an older broker would have written it. */
static void unpack_into_msgs(MDB_txn *txn)
{
    MDB_dbi msgs, mpack, mlive;
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &msgs), 0);
    if (mdb_dbi_open(txn, "mpack", 0, &mpack) != 0)
        return;
    assert_int_equal(mdb_dbi_open(txn, "mlive", 0, &mlive), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, mpack, &c), 0);
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *p = v.mv_data;
        uint64_t first = be64(p);
        uint32_t n = be32(p + 8);
        const uint8_t *recs = p + 16 + 4 * ((size_t)n + 1);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t a = be32(p + 16 + 4 * i), b = be32(p + 20 + 4 * i);
            uint8_t kb[8];
            for (int j = 0; j < 8; j++)
                kb[j] = (uint8_t)((first + i) >> (56 - 8 * j));
            MDB_val rk = {8, kb}, rv = {b - a, (void *)(recs + a)};
            assert_int_equal(mdb_put(txn, msgs, &rk, &rv, 0), 0);
        }
    }
    mdb_cursor_close(c);
    assert_int_equal(mdb_drop(txn, mpack, 1), 0);
    assert_int_equal(mdb_drop(txn, mlive, 1), 0);
}

/* Rewrite the closed store in f->dir as the layout `version` wrote it: meta "version" set,
 * (for layout 4 and older) every message in msgs, and (for layout 1) no certs database. */
static void set_layout(fx *f, uint32_t version, bool drop_certs)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta, certs;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64ULL << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t b[4] = {(uint8_t)(version >> 24), (uint8_t)(version >> 16), (uint8_t)(version >> 8),
                    (uint8_t)version};
    MDB_val k = {7, (void *)"version"}, v = {4, b};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    if (drop_certs) {
        assert_int_equal(mdb_dbi_open(txn, "certs", 0, &certs), 0);
        assert_int_equal(mdb_drop(txn, certs, 1), 0);
    }
    if (version < 5)
        unpack_into_msgs(txn);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A layout-1 store (envelopes stored whole, no certs database) opens as layout 2: its
 * messages read back unchanged, new ones get the certificate treatment. An unknown
 * layout is refused, not misread. */
static void a_layout_1_store_is_upgraded_in_place_and_a_newer_one_is_refused(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    set_layout(f, 1, true);
    open_store(f, 64ULL << 20);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.env[0], "env-1");
    /* a certificate-carrying envelope after the upgrade */
    uint8_t cert[200], env[600];
    for (size_t i = 0; i < sizeof cert; i++)
        cert[i] = (uint8_t)(i * 3 + 1);
    uint8_t key_id[32], id[16];
    memset(key_id, 0x17, sizeof key_id);
    lt_store_cert c = {.key_id = key_id, .der_len = sizeof cert};
    size_t len = fake_env(env, cert, sizeof cert, true, &c.field_off, &c.der);
    c.field_len = 3 + sizeof cert;
    mkid(id, 2);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(
        lt_store_append_cert(f->s, KEY(id), &f->q1, 1, env, len, &c, 1000, &s2, &dup, &why), LT_OK);
    commit_ok(f);
    envcopy got;
    memset(&got, 0, sizeof got);
    assert_int_equal(lt_store_get(f->s, f->q1, s2, copy_env, &got, &why), LT_OK);
    assert_int_equal(got.len[0], len);
    assert_memory_equal(got.buf[0], env, len);
    /* reopening the upgraded store keeps both */
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    assert_int_equal(pending(f, f->q1).n, 2);
    /* a layout this broker does not know */
    lt_store_close(&f->s);
    set_layout(f, 7, false);
    lt_store_opts o = {.dir = f->dir, .map_size = 64ULL << 20, .dedup_window_ms = 60000};
    assert_int_equal(lt_store_open(&f->s, &o, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "version 7"));
    assert_null(f->s);
    set_layout(f, 2, false);
    open_store(f, 64ULL << 20);
}

/* ---- dedup by (source, id) ---- */

static uint8_t HASH_A[32] = {1}, HASH_B[32] = {2}, SIGNER_A[32] = {3}, SIGNER_B[32] = {4};

static lt_err put_keyed(fx *f, const char *source, uint32_t n, const uint8_t *hash,
                        const uint8_t *signer, int64_t now, uint64_t *seq, bool *dup, lt_why *why)
{
    uint8_t id[16];
    mkid(id, n);
    lt_store_msgkey k = {.id = id, .source = source, .payload_sha256 = hash, .signer_key_id = signer};
    return lt_store_append(f->s, &k, &f->q1, 1, "keyed", 5, now, seq, dup, why);
}

static void the_same_id_from_two_agencies_is_two_records(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a, b;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 7, HASH_A, SIGNER_A, 1000, &a, &dup, &why), LT_OK);
    assert_false(dup);
    assert_int_equal(put_keyed(f, "VN:GOV:B:x", 7, HASH_B, SIGNER_B, 1000, &b, &dup, &why), LT_OK);
    assert_false(dup);
    assert_true(b != a);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 2);
}

static void a_resend_is_a_duplicate_across_a_commit_and_a_reopen(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a, b;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 8, HASH_A, SIGNER_A, 1000, &a, &dup, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 8, HASH_A, SIGNER_A, 1000, &b, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(b, a);
    commit_ok(f);
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 8, HASH_A, SIGNER_A, 2000, &b, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(b, a);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 1);
}

static void another_record_under_a_used_id_is_refused_and_the_batch_goes_on(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a, b, c;
    bool dup = false;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 9, HASH_A, SIGNER_A, 1000, &a, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    /* another payload */
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 9, HASH_B, SIGNER_A, 1000, &b, &dup, &why),
                     LT_EID_CONFLICT);
    assert_non_null(strstr(why.msg, "another record"));
    char want[160];
    snprintf(want, sizeof want,
             "(seq %llu, payload SHA-256 0100000000000000..., this one "
             "0200000000000000...)",
             (unsigned long long)a);
    assert_non_null(strstr(why.msg, want));
    /* another signer */
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 9, HASH_A, SIGNER_B, 1000, &b, &dup, &why),
                     LT_EID_CONFLICT);
    snprintf(want, sizeof want,
             "as seq %llu signed by key 0300000000000000..., this copy "
             "is signed by key 0400000000000000...",
             (unsigned long long)a);
    assert_non_null(strstr(why.msg, want));
    /* the batch is intact: a new record in it commits */
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 10, HASH_B, SIGNER_A, 1000, &c, &dup, &why), LT_OK);
    assert_false(dup);
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 2);
}

static void an_id_past_the_window_names_a_new_record(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a, b;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 11, HASH_A, SIGNER_A, 1000, &a, &dup, &why), LT_OK);
    commit_ok(f);
    /* the window is 60 s: a minute later the id is free, with or without a sweep */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 11, HASH_B, SIGNER_A, 62000, &b, &dup, &why), LT_OK);
    assert_false(dup);
    assert_true(b > a);
    bool more = false;
    assert_int_equal(lt_store_sweep(f->s, 200000, 100, &more, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:A:x", 11, HASH_A, SIGNER_A, 200001, &b, &dup, &why), LT_OK);
    assert_false(dup);
    commit_ok(f);
}

/* A layout-2 store kept ids across agencies in `dedup`/`dedupx`: they are dropped, the
 * messages stay, and ids are scoped by source from then on. */
static void a_layout_2_store_drops_its_agency_blind_dedup_tables(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &a, &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi d;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64ULL << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedup", MDB_CREATE, &d), 0);
    MDB_val k = {16, (void *)"0123456789abcdef"}, v = {16, (void *)"0000000100000002"};
    assert_int_equal(mdb_put(txn, d, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    set_layout(f, 2, false);
    open_store(f, 64ULL << 20);
    assert_int_equal(pending(f, f->q1).n, 1);
    lt_store_close(&f->s);
    env = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedup", 0, &d), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    open_store(f, 64ULL << 20);
}

static void reopening_keeps_messages_state_counters_and_sequence(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, s3;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 3, &f->q2, 1, 1000, &s3, &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_nak(f->s, f->q1, s1, 3, 5000, &why), LT_OK);
    assert_int_equal(lt_store_dead_letter(f->s, f->q1, s2, 5, "poison", 1500, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q2, s3, 1500, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    assert_null(f->s);
    open_store(f, 64ULL << 20);
    /* same queue ids, by name */
    uint32_t qid;
    assert_int_equal(lt_store_queue_declare(f->s, "q.two", &no_limits, &qid, &why), LT_OK);
    assert_int_equal(qid, f->q2);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.dc[0], 3);
    assert_int_equal(p.nb[0], 5000);
    lt_store_queue_stats st = stats(f, f->q1);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.dlq_depth, 1);
    assert_int_equal(stats(f, f->q2).depth, 0);
    /* the dedup memory and the sequence survive; the acked last message does not bring
     * its seq back */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    uint64_t s4;
    assert_int_equal(put_msg(f, 3, &f->q1, 1, 2000, &s4, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(s4, s3);
    assert_int_equal(put_msg(f, 4, &f->q1, 1, 2000, &s4, &dup, &why), LT_OK);
    assert_int_equal(s4, s3 + 1);
    commit_ok(f);
    /* the counters are written by the writer: after reopening they continue */
    assert_int_equal(stats(f, f->q1).depth, 2);
}

typedef struct qlist {
    size_t n;
    char names[8][LT_STORE_QUEUE_NAME_MAX + 1];
} qlist;

static int list_visit(void *arg, const lt_store_queue_stats *st)
{
    qlist *l = arg;
    if (l->n < 8)
        snprintf(l->names[l->n], sizeof l->names[0], "%s", st->name);
    l->n++;
    return 0;
}

static void queues_are_listed_in_name_order(void **state)
{
    fx *f = *state;
    lt_why why;
    uint32_t qid;
    assert_int_equal(lt_store_queue_declare(f->s, "a.first", &no_limits, &qid, &why), LT_OK);
    qlist l;
    memset(&l, 0, sizeof l);
    assert_int_equal(lt_store_queue_list(f->s, list_visit, &l, &why), LT_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "a.first");
    assert_string_equal(l.names[1], "q.one");
    assert_string_equal(l.names[2], "q.two");
}

static void a_second_process_cannot_open_the_same_store(void **state)
{
    fx *f = *state;
    lt_store *other = NULL;
    lt_why why;
    lt_store_opts o = {.dir = f->dir};
    assert_int_equal(lt_store_open(&other, &o, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "in use"));
    assert_null(other);
}

static void a_tiny_map_fills_up_with_store_full_and_keeps_the_batch(void **state)
{
    fx *f = *state;
    lt_why why;
    lt_store_close(&f->s);
    rm_dir(f->dir);
    assert_int_equal(new_dir(f), 0);
    open_store(f, 1u << 20); /* 1 MiB */
    uint32_t q;
    assert_int_equal(lt_store_queue_declare(f->s, "tiny", &no_limits, &q, &why), LT_OK);
    char env[2000];
    memset(env, 'x', sizeof env);
    uint64_t seq, ok = 0;
    bool dup;
    lt_err err = LT_OK;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 5000 && !err; i++) {
        uint8_t id[16];
        mkid(id, i);
        err = lt_store_append(f->s, KEY(id), &q, 1, env, sizeof env, 1000, &seq, &dup, &why);
        if (!err)
            ok++;
    }
    assert_int_equal(err, LT_ESTORE_FULL);
    assert_non_null(strstr(why.msg, "full"));
    assert_true(ok > 10);
    /* what fitted before the refusal commits, unless the commit itself has no room: then
     * the whole batch is refused as full, never a crash */
    err = lt_store_commit(f->s, &why);
    if (err == LT_OK) {
        assert_int_equal(stats(f, q).depth, ok);
    } else {
        assert_int_equal(err, LT_ESTORE_FULL);
        assert_int_equal(stats(f, q).depth, 0);
    }
}

/* ---- the schedule (store_sched.c) ---- */

static lt_err put_at(fx *f, unsigned n, const uint32_t *qids, size_t nq, int64_t now, int64_t due,
                     uint64_t *seq)
{
    uint8_t id[16];
    char env[64];
    bool dup;
    lt_why why;
    mkid(id, n);
    int len = snprintf(env, sizeof env, "env-%u", n);
    return lt_store_append_at(f->s, KEY(id), qids, nq, env, (size_t)len, NULL, now, due, seq,
                              &dup, &why);
}

typedef struct due_seen {
    size_t n;
    uint32_t qid[16];
    uint64_t seq[16];
} due_seen;

static void due_visit(void *arg, uint32_t qid, uint64_t seq)
{
    due_seen *d = arg;
    if (d->n < 16) {
        d->qid[d->n] = qid;
        d->seq[d->n] = seq;
    }
    d->n++;
}

static void a_scheduled_message_is_stored_and_counted_but_waits_for_its_due_time(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, s3, n = 0;
    uint32_t both[2] = {f->q1, f->q2};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_at(f, 1, both, 2, 1000, 5000, &s1), LT_OK);
    assert_int_equal(put_at(f, 2, &f->q1, 1, 1000, 3000, &s2), LT_OK);
    assert_int_equal(put_at(f, 3, &f->q1, 1, 1000, 0, &s3), LT_OK); /* not scheduled */
    commit_ok(f);
    assert_int_equal(lt_store_sched_count(f->s, &n, &why), LT_OK);
    assert_int_equal(n, 3); /* s1 in two queues, s2 in one */
    int64_t next = 0;
    assert_int_equal(lt_store_sched_next(f->s, &next, &why), LT_OK);
    assert_int_equal(next, 3000);
    assert_int_equal(stats(f, f->q1).depth, 3);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 3);
    lt_store_entry e = {.state = LT_STORE_PENDING, .delivery_count = p.dc[0], .not_before_ms = p.nb[0]};
    assert_true(lt_store_entry_is_scheduled(&e));
    assert_int_equal(p.nb[0], 5000);
    e.not_before_ms = p.nb[2];
    assert_false(lt_store_entry_is_scheduled(&e));

    /* nothing due at 2999; at 3000 only s2, earliest first */
    due_seen d = {0};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sched_promote(f->s, 2999, 100, due_visit, &d, &next, &why), LT_OK);
    assert_int_equal(d.n, 0);
    assert_int_equal(next, 3000);
    assert_int_equal(lt_store_sched_promote(f->s, 3000, 100, due_visit, &d, &next, &why), LT_OK);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.seq[0], s2);
    assert_int_equal(next, 5000);
    commit_ok(f);
    p = pending(f, f->q1);
    assert_int_equal(p.nb[1], 0); /* s2 is an ordinary pending entry now */
    assert_int_equal(p.dc[1], 0);

    /* a budget of 1 promotes one queue entry and leaves the other due one for next time */
    memset(&d, 0, sizeof d);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sched_promote(f->s, 9000, 1, due_visit, &d, &next, &why), LT_OK);
    assert_int_equal(d.n, 1);
    assert_int_equal(next, 5000);
    assert_int_equal(lt_store_sched_promote(f->s, 9000, 1, due_visit, &d, &next, &why), LT_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(next, INT64_MAX);
    commit_ok(f);
    assert_int_equal(d.seq[0], s1);
    assert_int_equal(d.seq[1], s1);
    assert_true(d.qid[0] != d.qid[1]);
    assert_int_equal(lt_store_sched_count(f->s, &n, &why), LT_OK);
    assert_int_equal(n, 0);
}

static void a_schedule_survives_a_reopen(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_at(f, 7, &f->q1, 1, 1000, 4000, &s1), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    int64_t next = 0;
    assert_int_equal(lt_store_sched_next(f->s, &next, &why), LT_OK);
    assert_int_equal(next, 4000);
    due_seen d = {0};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sched_promote(f->s, 4000, 10, due_visit, &d, &next, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.seq[0], s1);
}

static void a_cancel_removes_a_scheduled_message_and_refuses_a_due_one(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, seq = 0;
    size_t nc = 0;
    uint32_t both[2] = {f->q1, f->q2};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_at(f, 1, both, 2, 1000, 5000, &s1), LT_OK);
    assert_int_equal(put_at(f, 2, &f->q1, 1, 1000, 3000, &s2), LT_OK);
    commit_ok(f);
    uint8_t id[16];
    mkid(id, 1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sched_cancel(f->s, "VN:GOV:000.00.00.H29:test", id, 2000, &seq, &nc, &why),
                     LT_OK);
    assert_int_equal(seq, s1);
    assert_int_equal(nc, 2);
    /* another agency cannot name it */
    assert_int_equal(lt_store_sched_cancel(f->s, "VN:GOV:000.00.00.H29:other", id, 2000, &seq, &nc, &why),
                     LT_ENOT_SCHEDULED);
    commit_ok(f);
    assert_int_equal(stats(f, f->q2).depth, 0);
    assert_int_equal(stats(f, f->q1).depth, 1);
    uint64_t n = 9;
    assert_int_equal(lt_store_sched_count(f->s, &n, &why), LT_OK);
    assert_int_equal(n, 1);
    /* cancelled twice: not scheduled any more */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sched_cancel(f->s, "VN:GOV:000.00.00.H29:test", id, 2000, &seq, &nc, &why),
                     LT_ENOT_SCHEDULED);
    /* once promoted, s2 can no longer be cancelled */
    assert_int_equal(lt_store_sched_promote(f->s, 3000, 10, NULL, NULL, NULL, &why), LT_OK);
    mkid(id, 2);
    assert_int_equal(lt_store_sched_cancel(f->s, "VN:GOV:000.00.00.H29:test", id, 3000, &seq, &nc, &why),
                     LT_ENOT_SCHEDULED);
    assert_non_null(strstr(why.msg, "not scheduled"));
    commit_ok(f);
    assert_int_equal(pending(f, f->q1).n, 1);
}

static void a_full_store_makes_retention_yield_to_live_data(void **state)
{
    fx *f = *state;
    lt_why why;
    lt_store_close(&f->s);
    rm_dir(f->dir);
    assert_int_equal(new_dir(f), 0);
    open_store(f, 1u << 20); /* 1 MiB */
    uint32_t q;
    lt_store_queue_limits day = {0, 0, 86400000};
    assert_int_equal(lt_store_queue_declare(f->s, "kept", &day, &q, &why), LT_OK);
    char env[1500];
    memset(env, 'x', sizeof env);
    bool dup;
    unsigned stored = 0;
    lt_err err = LT_OK;
    /* fill the map with messages that are acked at once but kept a day for replay */
    for (unsigned i = 0; i < 5000 && err == LT_OK; i++) {
        uint8_t id[16];
        uint64_t seq;
        mkid(id, i);
        assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
        err = lt_store_append(f->s, KEY(id), &q, 1, env, sizeof env, 1000, &seq, &dup, &why);
        if (err == LT_OK)
            err = lt_store_ack(f->s, q, seq, 1000, &why);
        if (err == LT_OK)
            err = lt_store_commit(f->s, &why);
        else
            lt_store_abort(f->s);
        if (err == LT_OK)
            stored++;
    }
    assert_int_equal(err, LT_ESTORE_FULL);
    assert_true(stored > 10);
    assert_int_equal(lt_store_retention_yielded(f->s), 0);
    /* the full store's sweep drops acked history within its retention, and a new message
     * fits; one sweep per batch, as the committer runs it (a batch reuses no page it frees,
     * and the 1 MiB map has no room for all of the sweep's copies at once) */
    bool more = true;
    for (int i = 0; i < 100 && more; i++) {
        assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
        assert_int_equal(lt_store_sweep(f->s, 2000, 100, &more, &why), LT_OK);
        commit_ok(f);
    }
    assert_true(lt_store_retention_yielded(f->s) > 0);
    uint8_t id[16];
    uint64_t seq;
    mkid(id, 99999);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_append(f->s, KEY(id), &q, 1, env, sizeof env, 3000, &seq, &dup, &why),
                     LT_OK);
    commit_ok(f);
    /* no longer full: the next acks keep their retention again */
    uint64_t y = lt_store_retention_yielded(f->s);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, q, seq, 3000, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_retention_yielded(f->s), y);
}

/* kill -9 in the middle of continuous commits: every commit reported OK is there after
 * reopening, and LMDB opens cleanly. */
static void every_committed_message_survives_kill_9(void **state)
{
    fx *f = *state;
    lt_store_close(&f->s);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        lt_store *s;
        lt_why why;
        lt_store_opts o = {.dir = f->dir};
        if (lt_store_open(&s, &o, &why))
            _exit(2);
        uint32_t q;
        if (lt_store_queue_declare(s, "q.one", &no_limits, &q, &why))
            _exit(3);
        for (unsigned b = 0; b < 100000; b++) {
            uint64_t last = 0;
            bool dup;
            if (lt_store_begin(s, &why))
                _exit(4);
            for (unsigned i = 0; i < 16; i++) {
                uint8_t id[16];
                mkid(id, 1000000 + b * 16 + i);
                if (lt_store_append(s, KEY(id), &q, 1, "crash-test", 10, 1000, &last, &dup, &why))
                    _exit(5);
            }
            if (lt_store_commit(s, &why))
                _exit(6);
            if (write(pfd[1], &last, sizeof last) != sizeof last)
                _exit(7);
        }
        _exit(0);
    }
    close(pfd[1]);
    uint64_t acked = 0, v;
    /* let it commit a few batches, then kill it mid-flight */
    for (int i = 0; i < 20 && read(pfd[0], &v, sizeof v) == sizeof v; i++)
        acked = v;
    kill(pid, SIGKILL);
    while (read(pfd[0], &v, sizeof v) == sizeof v)
        acked = v; /* reports written before the kill */
    close(pfd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_true(acked >= 20 * 16);
    open_store(f, 64ULL << 20);
    lt_store_queue_stats qs = stats(f, f->q1);
    assert_true(qs.depth >= acked);
    assert_true(qs.last_seq >= acked);
    assert_true(lt_store_next_seq(f->s) > qs.last_seq);
    size_t n = 0;
    lt_why why;
    assert_int_equal(lt_store_pending(f->s, f->q1, 0, 0, count_msgs_visit, &n, NULL, &why),
                     LT_OK);
    assert_int_equal(n, qs.depth);
}

/* The planner reads counts without messages; the sender reads a job's messages in one
 * transaction, in the order asked, skipping the ones the queue no longer holds. */
static void pending_keys_skip_the_bytes_and_get_many_reads_in_order_skipping_the_gone(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq[4];
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(put_msg(f, 40 + i, &f->q1, 1, 1000, &seq[i], &dup, &why), LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_nak(f->s, f->q1, seq[1], 3, 0, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q1, seq[2], 2000, &why), LT_OK);
    commit_ok(f);

    seen k;
    memset(&k, 0, sizeof k);
    assert_int_equal(lt_store_pending_keys(f->s, f->q1, 0, 0, collect, &k, NULL, &why), LT_OK);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], seq[0]);
    assert_int_equal(k.seq[1], seq[1]);
    assert_int_equal(k.dc[1], 3);
    assert_int_equal(k.seq[2], seq[3]);
    assert_string_equal(k.env[0], ""); /* no bytes read */

    /* asked out of seq order, with an acked one (retention 0: gone) and an unknown seq */
    uint64_t want[5] = {seq[3], seq[2], 999999, seq[0], seq[1]};
    seen g;
    memset(&g, 0, sizeof g);
    assert_int_equal(lt_store_get_many(f->s, f->q1, want, 5, collect, &g, &why), LT_OK);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seq[0], seq[3]);
    assert_string_equal(g.env[0], "env-43");
    assert_int_equal(g.seq[1], seq[0]);
    assert_string_equal(g.env[1], "env-40");
    assert_int_equal(g.seq[2], seq[1]);
    assert_int_equal(g.dc[2], 3);
    /* the visitor stops it */
    memset(&g, 0, sizeof g);
    g.stop_after = 1;
    assert_int_equal(lt_store_get_many(f->s, f->q1, want, 5, collect, &g, &why), LT_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(lt_store_get_many(f->s, 4242, want, 5, collect, &g, &why), LT_ENOQUEUE);
}

/* ---- packs (layout 5) ---- */

/* Entries of the named database of the closed store in f->dir. */
static size_t db_entries(fx *f, const char *name)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64ULL << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &st), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return st.ms_entries;
}

static void ack_ok(fx *f, uint32_t qid, uint64_t seq)
{
    lt_why why;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, qid, seq, 2000, &why), LT_OK);
    commit_ok(f);
}

/* A batch's messages share one pack; it goes when the last of them is acked, not before. */
static void a_batch_is_one_pack_freed_with_its_last_message(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t seq[3];
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(put_msg(f, 60 + i, &f->q1, 1, 1000, &seq[i], &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "mpack"), 1);
    assert_int_equal(db_entries(f, "mlive"), 1);
    open_store(f, 64ULL << 20);
    ack_ok(f, f->q1, seq[0]);
    ack_ok(f, f->q1, seq[2]);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.env[0], "env-61");
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "mpack"), 1);
    open_store(f, 64ULL << 20);
    ack_ok(f, f->q1, seq[1]);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "mpack"), 0);
    assert_int_equal(db_entries(f, "mlive"), 0);
    open_store(f, 64ULL << 20);
}

/* A message acked in the batch that stored it never reaches the disk's pack; an aborted
 * batch leaves no pack, and the next batch packs from the same seq on. */
static void a_pack_keeps_only_what_its_batch_did_not_delete_or_abort(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, s3;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 70, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    lt_store_abort(f->s);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 71, &f->q1, 1, 1000, &s2, &dup, &why), LT_OK);
    assert_int_equal(s2, s1); /* the aborted seq is handed out again */
    assert_int_equal(put_msg(f, 72, &f->q1, 1, 1000, &s3, &dup, &why), LT_OK);
    assert_int_equal(lt_store_ack(f->s, f->q1, s2, 1500, &why), LT_OK);
    commit_ok(f);
    size_t n = 0;
    assert_int_equal(lt_store_get(f->s, f->q1, s2, count_msgs_visit, &n, &why), LT_ENOTFOUND);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.env[0], "env-72");
    ack_ok(f, f->q1, s3);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "mpack"), 0);
    assert_int_equal(db_entries(f, "mlive"), 0);
    open_store(f, 64ULL << 20);
}

/* A batch larger than PACK_MAX is cut into several packs, every message readable. */
static void a_large_batch_spans_several_packs(void **state)
{
    fx *f = *state;
    lt_why why;
    bool dup;
    static uint8_t env[20000];
    uint64_t seq[20];
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 20; i++) {
        uint8_t id[16];
        mkid(id, 80 + i);
        memset(env, (int)('a' + i), sizeof env);
        assert_int_equal(
            lt_store_append(f->s, KEY(id), &f->q1, 1, env, sizeof env, 1000, &seq[i], &dup, &why),
            LT_OK);
    }
    commit_ok(f);
    for (unsigned i = 0; i < 20; i += 7) {
        envcopy got;
        memset(&got, 0, sizeof got);
        assert_int_equal(lt_store_get(f->s, f->q1, seq[i], copy_env, &got, &why), LT_OK);
        assert_int_equal(got.n, 1);
    }
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 20);
    assert_int_equal(p.env[19][0], 'a' + 19);
    lt_store_close(&f->s);
    size_t packs = db_entries(f, "mpack");
    assert_true(packs >= 3 && packs <= 4); /* 400 KB in packs of at most 128 KiB */
    open_store(f, 64ULL << 20);
}

/* A layout-4 store keeps its messages in msgs: they are read, found by time, and deleted
 * there, while new messages go to packs and seqs go on after the old ones. */
static void a_layout_4_store_reads_its_old_messages_and_packs_new_ones(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t old1, old2, new1;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 90, &f->q1, 1, 1000, &old1, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 91, &f->q1, 1, 2000, &old2, &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    set_layout(f, 4, false);
    assert_int_equal(db_entries(f, "msgs"), 2);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 92, &f->q1, 1, 3000, &new1, &dup, &why), LT_OK);
    assert_int_equal(new1, old2 + 1);
    commit_ok(f);
    seen p = pending(f, f->q1);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.env[0], "env-90");
    assert_string_equal(p.env[2], "env-92");
    uint64_t at = 0;
    assert_int_equal(lt_store_seq_at(f->s, f->q1, 1500, &at, &why), LT_OK);
    assert_int_equal(at, old2);
    assert_int_equal(lt_store_seq_at(f->s, f->q1, 2500, &at, &why), LT_OK);
    assert_int_equal(at, new1);
    ack_ok(f, f->q1, old1);
    ack_ok(f, f->q1, new1);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "msgs"), 1);
    assert_int_equal(db_entries(f, "mpack"), 0);
    open_store(f, 64ULL << 20);
    p = pending(f, f->q1);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.env[0], "env-91");
}

/* ---- dedup generations (layout 6) ---- */

/* Open the closed store in f->dir with LMDB itself (read-only, or to write: MDB_RDONLY or
 * 0), in one transaction; raw_close commits it (a write) and closes the environment. */
static MDB_txn *raw_open(fx *f, unsigned flags, MDB_env **env)
{
    MDB_txn *txn = NULL;
    assert_int_equal(mdb_env_create(env), 0);
    assert_int_equal(mdb_env_set_maxdbs(*env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(*env, 64ULL << 20), 0);
    assert_int_equal(mdb_env_open(*env, f->dir, flags, 0600), 0);
    assert_int_equal(mdb_txn_begin(*env, NULL, flags, &txn), 0);
    return txn;
}

static void raw_close(MDB_env *env, MDB_txn *txn)
{
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A key stored again after its expiry goes to the current generation while its old copy
 * still sits in the previous one: every lookup takes the newer one, and a rotation that
 * drops the old copy keeps the new. */
static void a_reput_id_is_found_in_the_current_generation_before_its_old_copy(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t a, b, c, got;
    bool dup, more;
    size_t nc = 0;
    uint8_t id[16];
    mkid(id, 20);
    lt_store_msgkey k = {
        .id = id, .source = "VN:GOV:A:x", .payload_sha256 = HASH_A, .signer_key_id = SIGNER_A};
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "first", 5, 1000, &a, &dup, &why), LT_OK);
    commit_ok(f);
    /* rotation 1: the entry moves to the previous generation */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sweep(f->s, 61000, 10, &more, &why), LT_OK);
    commit_ok(f);
    /* past its window the id names a new record, scheduled so that a cancel can tell which
     * seq the lookup found */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(
        lt_store_append_at(f->s, &k, &f->q1, 1, "again", 5, NULL, 61000, 100000, &b, &dup, &why),
        LT_OK);
    assert_false(dup);
    assert_true(b > a);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "again", 5, 62000, &got, &dup, &why),
                     LT_OK);
    assert_true(dup);
    assert_int_equal(got, b);
    k.payload_sha256 = HASH_B;
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "other", 5, 62000, &got, &dup, &why),
                     LT_EID_CONFLICT);
    char want[32];
    snprintf(want, sizeof want, "(seq %llu,", (unsigned long long)b);
    assert_non_null(strstr(why.msg, want));
    k.payload_sha256 = HASH_A;
    assert_int_equal(lt_store_sched_cancel(f->s, "VN:GOV:A:x", id, 62000, &got, &nc, &why), LT_OK);
    assert_int_equal(got, b);
    assert_int_equal(nc, 1);
    commit_ok(f);
    /* rotation 2 drops the old copy and keeps the new one, within its window */
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_sweep(f->s, 121000, 10, &more, &why), LT_OK);
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "again", 5, 120999, &got, &dup, &why),
                     LT_OK);
    assert_true(dup);
    assert_int_equal(got, b);
    /* and past that window the id is new once more */
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "third", 5, 121000, &c, &dup, &why),
                     LT_OK);
    assert_false(dup);
    assert_true(c > b);
    commit_ok(f);
    lt_store_close(&f->s);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(lt_store_append(f->s, &k, &f->q1, 1, "third", 5, 121500, &got, &dup, &why),
                     LT_OK);
    assert_true(dup);
    assert_int_equal(got, c);
    commit_ok(f);
}

/* dsrc as a map from source to number, read from the closed store in f->dir. */
static uint32_t dsrc_number(fx *f, const char *source, size_t *n)
{
    MDB_env *env = NULL;
    MDB_txn *txn = raw_open(f, MDB_RDONLY, &env);
    MDB_dbi dbi;
    MDB_stat st;
    assert_int_equal(mdb_dbi_open(txn, "dsrc", 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &st), 0);
    *n = st.ms_entries;
    MDB_val k = {strlen(source), (void *)source}, v;
    uint32_t num = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 4)
        num = be32(v.mv_data);
    raw_close(env, txn);
    return num;
}

/* A source first seen in a batch that aborts gets no number: the next batch's new source
 * takes that number, and the aborted one gets the next when it comes back. */
static void an_aborted_batch_leaves_no_source_number_behind(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, got;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:S1:x", 30, HASH_A, SIGNER_A, 1000, &s1, &dup, &why),
                     LT_OK);
    lt_store_abort(f->s);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:S2:x", 31, HASH_A, SIGNER_A, 1000, &s2, &dup, &why),
                     LT_OK);
    commit_ok(f);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:S1:x", 30, HASH_A, SIGNER_A, 1000, &s1, &dup, &why),
                     LT_OK);
    assert_false(dup);
    commit_ok(f);
    lt_store_close(&f->s);
    size_t n = 0;
    assert_int_equal(dsrc_number(f, "VN:GOV:S2:x", &n), 1);
    assert_int_equal(dsrc_number(f, "VN:GOV:S1:x", &n), 2);
    assert_int_equal(n, 2);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_keyed(f, "VN:GOV:S1:x", 30, HASH_A, SIGNER_A, 2000, &got, &dup, &why),
                     LT_OK);
    assert_true(dup);
    assert_int_equal(got, s1);
    assert_int_equal(put_keyed(f, "VN:GOV:S2:x", 31, HASH_A, SIGNER_A, 2000, &got, &dup, &why),
                     LT_OK);
    assert_true(dup);
    assert_int_equal(got, s2);
    commit_ok(f);
}

static bool db_exists(fx *f, const char *name)
{
    MDB_env *env = NULL;
    MDB_txn *txn = raw_open(f, MDB_RDONLY, &env);
    MDB_dbi dbi;
    int rc = mdb_dbi_open(txn, name, 0, &dbi);
    raw_close(env, txn);
    return rc == 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Rewrite the closed store in f->dir as layout 5 kept its dedup entries: each entry of
 * dedupg0 (source number + id -> 40 bytes) becomes a dedup2 entry (source, NUL, id -> seq,
 * stored_ms, full payload hash, full signer) with its dedupx2 row, and the layout-6
 * tables and meta row go. The full hashes are those of put_msg's key (all zero). */
static void make_layout_5_dedup(fx *f)
{
    MDB_env *env = NULL;
    MDB_txn *txn = raw_open(f, 0, &env);
    MDB_dbi meta, dsrc, g0, g1, d2, x2;
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "dsrc", 0, &dsrc), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedupg0", 0, &g0), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedupg1", 0, &g1), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedup2", MDB_CREATE, &d2), 0);
    assert_int_equal(mdb_dbi_open(txn, "dedupx2", MDB_CREATE, &x2), 0);
    char names[4][64] = {{0}};
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(txn, dsrc, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        uint32_t num = be32(v.mv_data);
        assert_true(num >= 1 && num <= 4 && k.mv_size < 64);
        memcpy(names[num - 1], k.mv_data, k.mv_size);
    }
    mdb_cursor_close(c);
    assert_int_equal(mdb_cursor_open(txn, g0, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        assert_int_equal(k.mv_size, 20);
        assert_int_equal(v.mv_size, 40);
        const char *src = names[be32(k.mv_data) - 1];
        size_t sn = strlen(src);
        uint8_t kb[300], vb[80] = {0}, xb[8 + 300];
        memcpy(kb, src, sn + 1);
        memcpy(kb + sn + 1, (const uint8_t *)k.mv_data + 4, 16);
        memcpy(vb, v.mv_data, 16); /* seq, stored_ms */
        MDB_val dk = {sn + 17, kb}, dv = {80, vb};
        assert_int_equal(mdb_put(txn, d2, &dk, &dv, 0), 0);
        memcpy(xb, (const uint8_t *)v.mv_data + 8, 8);
        memcpy(xb + 8, kb, sn + 17);
        MDB_val xk = {8, v.mv_data}, xv = {8 + sn + 17, xb};
        assert_int_equal(mdb_put(txn, x2, &xk, &xv, 0), 0);
    }
    mdb_cursor_close(c);
    assert_int_equal(mdb_drop(txn, dsrc, 1), 0);
    assert_int_equal(mdb_drop(txn, g0, 1), 0);
    assert_int_equal(mdb_drop(txn, g1, 1), 0);
    k = (MDB_val){9, (void *)"dedup_gen"};
    assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
    uint8_t b[8];
    put_be64(b, 5000); /* the store's last append, later than every entry */
    k = (MDB_val){7, (void *)"last_ms"};
    v = (MDB_val){8, b};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    raw_close(env, txn);
    set_layout(f, 5, false);
}

/* A layout-5 store's dedup2 is read as the oldest generation (80-byte values, full
 * hashes) until the first rotation, a window after its last append, empties it and
 * dedupx2; the next open deletes them. */
static void a_layout_5_store_dedups_from_its_old_table_until_the_first_rotation(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, s2, got;
    bool dup, more;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 4000, &s2, &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    make_layout_5_dedup(f);
    assert_int_equal(db_entries(f, "dedup2"), 2);
    assert_false(db_exists(f, "dedupg0"));
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 2000, &got, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(got, s1);
    /* another record under the old id: the full hashes of the old entry are compared */
    assert_int_equal(
        put_keyed(f, "VN:GOV:000.00.00.H29:test", 2, HASH_A, ZERO32, 2000, &got, &dup, &why),
        LT_EID_CONFLICT);
    char want[32];
    snprintf(want, sizeof want, "(seq %llu,", (unsigned long long)s2);
    assert_non_null(strstr(why.msg, want));
    /* past its window an old entry names a new record, before any rotation */
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 61000, &got, &dup, &why), LT_OK);
    assert_false(dup);
    assert_true(got > s2);
    uint64_t s3 = got;
    /* the first rotation is due a window after the last append (5000) */
    assert_int_equal(lt_store_sweep(f->s, 64999, 10, &more, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "dedup2"), 2);
    assert_int_equal(db_entries(f, "dedupx2"), 2);
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 3000, &got, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(got, s2);
    assert_int_equal(lt_store_sweep(f->s, 65000, 10, &more, &why), LT_OK);
    /* emptied: message 2 is unknown even to a clock inside its window, message 1's new
     * record (in the generation now previous) is still known */
    assert_int_equal(put_msg(f, 2, &f->q1, 1, 3000, &got, &dup, &why), LT_OK);
    assert_false(dup);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 62000, &got, &dup, &why), LT_OK);
    assert_true(dup);
    assert_int_equal(got, s3);
    commit_ok(f);
    lt_store_close(&f->s);
    assert_int_equal(db_entries(f, "dedup2"), 0);
    assert_int_equal(db_entries(f, "dedupx2"), 0);
    open_store(f, 64ULL << 20);
    lt_store_close(&f->s);
    assert_false(db_exists(f, "dedup2"));
    assert_false(db_exists(f, "dedupx2"));
    open_store(f, 64ULL << 20);
}

/* Overwrite key k of the named database of the closed store in f->dir with v. */
static void poke(fx *f, const char *name, MDB_val k, MDB_val v)
{
    MDB_env *env = NULL;
    MDB_txn *txn = raw_open(f, 0, &env);
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    raw_close(env, txn);
}

/* A dedup entry of the wrong size is refused as corrupt (the publish fails, nothing is
 * misread); a source number out of range keeps the store from opening. */
static void a_corrupt_dedup_entry_or_source_number_is_an_error_not_a_guess(void **state)
{
    fx *f = *state;
    lt_why why;
    uint64_t s1, got;
    bool dup;
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 1000, &s1, &dup, &why), LT_OK);
    commit_ok(f);
    lt_store_close(&f->s);
    uint8_t kb[20] = {0, 0, 0, 1};
    mkid(kb + 4, 1);
    uint8_t short_val[39] = {0};
    poke(f, "dedupg0", (MDB_val){20, kb}, (MDB_val){sizeof short_val, short_val});
    open_store(f, 64ULL << 20);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    assert_int_equal(put_msg(f, 1, &f->q1, 1, 2000, &got, &dup, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "corrupt dedup entry"));
    lt_store_abort(f->s);
    lt_store_close(&f->s);
    uint8_t num[4] = {0, 0, 0, 9};
    const char *src = "VN:GOV:000.00.00.H29:test";
    poke(f, "dsrc", (MDB_val){strlen(src), (void *)src}, (MDB_val){4, num});
    lt_store_opts o = {.dir = f->dir, .map_size = 64ULL << 20, .dedup_window_ms = 60000};
    assert_int_equal(lt_store_open(&f->s, &o, &why), LT_ESTORE);
    assert_non_null(strstr(why.msg, "dedup sources"));
    num[3] = 1;
    poke(f, "dsrc", (MDB_val){strlen(src), (void *)src}, (MDB_val){4, num});
    open_store(f, 64ULL << 20);
}

/* ---- pools (layout 6) ---- */

#define SPLICE_NMAX_TEST 32 /* store_msg.c's SPLICE_NMAX */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int j = 0; j < 4; j++)
        p[j] = (uint8_t)(v >> (24 - 8 * j));
}

static void pool_put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* Envelopes a test appended and the seqs they got: every read must give them back byte for
 * byte, with their hops. */
#define WANT_MAX 512
typedef struct want {
    uint32_t qid; /* the queue they went to */
    size_t n;
    uint64_t seq[WANT_MAX];
    uint8_t *env[WANT_MAX];
    size_t len[WANT_MAX];
    bool hops[WANT_MAX];
    size_t seen, bad;
} want;

static want *want_new(uint32_t qid)
{
    want *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->qid = qid;
    return w;
}

static void want_free(want *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->env[i]);
    free(w);
}

static int check_env(void *arg, const lt_store_entry *e)
{
    want *w = arg;
    w->seen++;
    for (size_t i = 0; i < w->n; i++)
        if (w->seq[i] == e->seq) {
            if (e->env_len != w->len[i] || memcmp(e->env, w->env[i], w->len[i]) != 0 ||
                e->nhops != (w->hops[i] ? 2 : 0))
                w->bad++;
            return 0;
        }
    w->bad++;
    return 0;
}

/* Where Envelope.certificate lies, as the verifier finds it (lt_verify_cert_field); its
 * key id is the SHA-256 of its DER, as the verifier vouches. */
static bool find_cert(const uint8_t *p, size_t n, lt_store_cert *c, uint8_t key_id[32])
{
    size_t der_off, der_len;
    if (!lt_verify_cert_field(p, n, &c->field_off, &c->field_len, &der_off, &der_len) ||
        der_len == 0 || lt_pki_sha256(p + der_off, der_len, key_id, NULL) != LT_OK)
        return false;
    c->der = p + der_off;
    c->der_len = der_len;
    c->key_id = key_id;
    return true;
}

/* Append a copy of env[0..len) to q1 in the open batch (its certificate left out when
 * strip and it has one; with two hops when hops) and remember it in w. */
static void append_want(fx *f, want *w, const uint8_t *env, size_t len, bool strip, bool hops)
{
    assert_true(w->n < WANT_MAX);
    size_t i = w->n++;
    w->env[i] = malloc(len ? len : 1);
    assert_non_null(w->env[i]);
    memcpy(w->env[i], env, len);
    w->len[i] = len;
    w->hops[i] = hops;
    lt_store_cert c;
    uint8_t key_id[32];
    bool has_cert = strip && find_cert(w->env[i], len, &c, key_id);
    const char *names[] = {"ward", "city"};
    uint8_t hb[LT_STORE_HOPS_BYTES];
    size_t hl = 0;
    if (hops)
        assert_int_equal(lt_store_hops_encode(names, 2, hb, &hl), LT_OK);
    uint8_t id[16];
    mkid(id, 100000 + (unsigned)lt_store_next_seq(f->s));
    bool dup;
    lt_why why;
    lt_err err =
        lt_store_append_hops(f->s, KEY(id), &w->qid, 1, w->env[i], len, has_cert ? &c : NULL,
                             hops ? hb : NULL, hl, 1000, 0, &w->seq[i], &dup, &why);
    if (err)
        fail_msg("append: %s", why.msg);
    assert_false(dup);
}

/* Every envelope of w reads back as appended: from the open batch (the writer's view, its
 * pack not yet written) when batch, else from the store (pending, get and replay). */
static void check_all(fx *f, want *w, bool batch)
{
    lt_why why;
    w->seen = w->bad = 0;
    if (batch) {
        store_rbuf rb = {NULL, 0};
        for (size_t i = 0; i < w->n; i++) {
            lt_store_entry e;
            lt_err err = store_msg_read_batch(f->s, w->seq[i], &e, &rb, &why);
            if (err)
                fail_msg("read %llu in the batch: %s", (unsigned long long)w->seq[i], why.msg);
            check_env(w, &e);
        }
        free(rb.p);
    } else {
        assert_int_equal(lt_store_pending(f->s, w->qid, 0, 0, check_env, w, NULL, &why), LT_OK);
        for (size_t i = 0; i < w->n; i += 7)
            assert_int_equal(lt_store_get(f->s, w->qid, w->seq[i], check_env, w, &why), LT_OK);
        assert_int_equal(lt_store_replay(f->s, w->qid, 1, 0, check_env, w, NULL, &why), LT_OK);
        assert_int_equal(w->seen, 2 * w->n + (w->n + 6) / 7);
    }
    if (batch)
        assert_int_equal(w->seen, w->n);
    assert_int_equal(w->bad, 0);
}

/* The value of the one pack in the closed store in f->dir (copied into *v, malloc'ed). */
static size_t pack_get(fx *f, uint8_t **v, uint8_t key[8])
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, val;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "mpack", 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &val, MDB_FIRST), 0);
    memcpy(key, k.mv_data, 8);
    *v = malloc(val.mv_size);
    assert_non_null(*v);
    memcpy(*v, val.mv_data, val.mv_size);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return val.mv_size;
}

/* Replace the pack keyed key in the closed store in f->dir by v[0..len). */
static void pack_put(fx *f, const uint8_t key[8], const uint8_t *v, size_t len)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64ULL << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "mpack", 0, &dbi), 0);
    MDB_val k = {8, (void *)key}, val = {len, (void *)v};
    assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* A batch of n envelopes sealed under one signature (a test PKI's agency A), with payloads
 * of payload_len bytes; outs[i] malloc'ed. */
static void seal_batch(size_t n, size_t payload_len, uint8_t **outs, size_t *lens)
{
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lt_pki_XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    lt_why why;
    if (lt_devpki_fixture(dir, LT_SIG_ECDSA_P256, lt_env_now_ms(), &why) != LT_OK)
        fail_msg("pki: %s", why.msg);
    char k[300], c[300];
    snprintf(k, sizeof k, "%s/a.key.pem", dir);
    snprintf(c, sizeof c, "%s/a.cert.pem", dir);
    lt_signer *s = NULL;
    if (lt_signer_open(k, c, &s, &why) != LT_OK)
        fail_msg("signer: %s", why.msg);
    lt_env_spec *specs = calloc(n, sizeof *specs);
    uint8_t *payload = malloc(payload_len);
    assert_true(specs && payload);
    for (size_t i = 0; i < payload_len; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < n; i++)
        specs[i] = (lt_env_spec){.topic = "79.760.hotich.khaisinh",
                                 .record_type = "lienthong.v1.records.BirthRegistration",
                                 .payload = payload,
                                 .payload_len = payload_len};
    if (lt_env_seal_batch(s, specs, n, outs, lens, &why) != LT_OK)
        fail_msg("seal: %s", why.msg);
    free(payload);
    free(specs);
    lt_signer_destroy(&s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A publisher's signed batch usually lands in one pack: the values its envelopes share
 * (signature, Merkle root and siblings, source, topic, record type, key id) are kept once
 * in the pack's pool, and every read, from the open batch or from the disk, with or
 * without the certificate left out, with hops or not, gives each envelope back as sent. */
static void a_signed_batch_shares_one_pool_and_reads_back_byte_for_byte(void **state)
{
    fx *f = *state;
    lt_why why;
    enum { N = 64 };
    uint8_t *outs[N];
    size_t lens[N];
    seal_batch(N, 300, outs, lens);
    want *w = want_new(f->q1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (size_t i = 0; i < N; i++) {
        append_want(f, w, outs[i], lens[i], i % 4 != 3, i % 5 == 1);
    }
    check_all(f, w, true);
    commit_ok(f);
    check_all(f, w, false);
    lt_store_close(&f->s);
    /* one pack with a pool; the shared values left the records */
    uint8_t *v, key[8];
    size_t vlen = pack_get(f, &v, key);
    assert_int_equal(be32(v + 8), N);
    assert_int_equal(be32(v + 12), PACK_POOL);
    /* what layout 5 stored: the records whole, certificates left out */
    size_t old = 16 + 4 * (N + 1);
    for (size_t i = 0; i < N; i++) {
        lt_store_cert c;
        uint8_t kid[32];
        assert_true(find_cert(outs[i], lens[i], &c, kid));
        old += 36 + (i % 5 == 1 ? 4 + 11 : 0) + (i % 4 != 3 ? 36 + lens[i] - c.field_len : lens[i]);
    }
    /* each envelope leaves signature 72, root 32, 6 siblings, source, topic, record type and
     * key id (~350 bytes) in the pool, for a splice list of ~30 bytes; the pool holds the
     * batch's 126 Merkle nodes, ~70 bytes per envelope */
    print_message("pack of %zu bytes, %zu as layout 5\n", vlen, old);
    assert_true(vlen + N * 200 <= old);
    free(v);
    open_store(f, 64ULL << 20); /* from the disk, certificates from certs */
    check_all(f, w, false);
    for (size_t i = 0; i < N; i++)
        free(outs[i]);
    want_free(w);
}

/* Test envelopes: protobuf built by hand, fields in any order, some repeated, unknown ones,
 * values drawn from small sets so that they repeat, some bytes broken afterwards. */
typedef struct wb {
    uint8_t p[4096];
    size_t n;
} wb;

static uint64_t rnd_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t below)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % below);
}

static void wb_varint(wb *b, uint64_t v)
{
    while (v >= 0x80) {
        b->p[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->n++] = (uint8_t)v;
}

static void wb_bytes(wb *b, unsigned field, const uint8_t *d, size_t len)
{
    wb_varint(b, field << 3 | 2);
    wb_varint(b, len);
    memcpy(b->p + b->n, d, len);
    b->n += len;
}

/* One of k values of field of a few lengths (15, 16, 32, 72 ...) */
static void wb_value(wb *b, unsigned field, unsigned k)
{
    static const size_t lens[] = {15, 16, 17, 32, 32, 32, 40, 71, 72};
    uint8_t d[80];
    unsigned which = rnd(k);
    size_t len = lens[(which * 7 + field) % (sizeof lens / sizeof lens[0])];
    for (size_t i = 0; i < len; i++)
        d[i] = (uint8_t)(which * 13 + field * 101 + i);
    wb_bytes(b, field, d, len);
}

static size_t random_env(uint8_t *out)
{
    wb h = {.n = 0}, bp = {.n = 0}, e = {.n = 0};
    unsigned order[6] = {1, 2, 3, 4, 5, 6};
    for (unsigned i = 0; i < 6; i++) { /* shuffle */
        unsigned j = rnd(6), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (unsigned f = 1; f <= 11; f++) { /* Header, 11 an unknown field */
        if (rnd(8) == 0)
            continue;
        if (f == 5 || f == 10) {
            wb_varint(&h, f << 3);
            wb_varint(&h, rnd(1u << 30));
        } else {
            wb_value(&h, f, f == 1 || f == 6 ? 64 : 3);
        }
        if (rnd(10) == 0)
            wb_value(&h, f, 3); /* repeated */
    }
    wb_varint(&bp, 1 << 3);
    wb_varint(&bp, rnd(64));
    wb_varint(&bp, 2 << 3);
    wb_varint(&bp, 64);
    for (unsigned i = rnd(8); i > 0; i--)
        wb_value(&bp, 3, 12);
    wb_value(&bp, 4, 2);
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)rnd(256);
    for (unsigned i = 0; i < 6; i++) {
        switch (order[i]) {
        case 1:
            wb_bytes(&e, 1, h.p, h.n);
            break;
        case 2:
            wb_bytes(&e, 2, payload, rnd(sizeof payload));
            break;
        case 3:
            wb_value(&e, 3, 4);
            break;
        case 4:
            if (rnd(3))
                wb_bytes(&e, 4, bp.p, bp.n);
            break;
        case 5:
            if (rnd(3)) { /* one of two certificates */
                uint8_t der[400];
                unsigned which = rnd(2);
                for (size_t j = 0; j < sizeof der; j++)
                    der[j] = (uint8_t)(which * 77 + j * 3);
                wb_bytes(&e, 5, der, 200 + 200 * which);
            }
            break;
        default:
            if (rnd(4) == 0) { /* fixed64 and fixed32 fields */
                wb_varint(&e, 9 << 3 | 1);
                memset(e.p + e.n, 0x11, 8);
                e.n += 8;
                wb_varint(&e, 10 << 3 | 5);
                memset(e.p + e.n, 0x22, 4);
                e.n += 4;
            }
        }
    }
    switch (rnd(12)) { /* broken afterwards: a byte changed, cut short, a group */
    case 0:
        e.p[rnd((uint32_t)e.n)] ^= (uint8_t)(1 + rnd(255));
        break;
    case 1:
        e.n = 1 + rnd((uint32_t)e.n);
        break;
    case 2:
        e.p[e.n++] = 3 << 3 | 3;
        break;
    default:
        break;
    }
    memcpy(out, e.p, e.n);
    return e.n;
}

/* Hundreds of envelopes of every shape (several packs of one batch, each with its own
 * pool), then the fuzzers' envelope corpus: each reads back exactly as appended, from the
 * batch and from the disk. Whatever cannot be walked is stored as it is. */
static void envelopes_of_any_shape_read_back_byte_for_byte(void **state)
{
    fx *f = *state;
    lt_why why;
    want *w = want_new(f->q1);
    uint8_t env[4096];
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (unsigned i = 0; i < 300; i++) {
        size_t len = random_env(env);
        append_want(f, w, env, len ? len : 1, i % 3 != 0, i % 7 == 0);
    }
    check_all(f, w, true);
    commit_ok(f);
    check_all(f, w, false);
    lt_store_close(&f->s);
    assert_true(db_entries(f, "mpack") >= 2);
    open_store(f, 64ULL << 20);
    check_all(f, w, false);
    want_free(w);

    w = want_new(f->q2); /* the corpus, in the other queue */
    DIR *d = opendir(LT_TEST_SRCDIR "/tests/fuzz/corpus/envelope");
    assert_non_null(d);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    struct dirent *de;
    while ((de = readdir(d)) != NULL && w->n < WANT_MAX) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/envelope/%s", LT_TEST_SRCDIR, de->d_name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        size_t len = fread(env, 1, sizeof env, fp);
        fclose(fp);
        if (len > 0)
            append_want(f, w, env, len, true, w->n % 9 == 0);
    }
    closedir(d);
    assert_true(w->n > 100);
    check_all(f, w, true);
    commit_ok(f);
    check_all(f, w, false);
    want_free(w);
}

/* A test envelope: a header holding source (when source_len), a signature of sig_len bytes
 * made of sig_seed, a certificate (when cert_seed). */
static size_t mix_env(uint8_t *out, size_t source_len, size_t sig_len, unsigned sig_seed,
                      unsigned cert_seed)
{
    wb h = {.n = 0}, e = {.n = 0};
    uint8_t d[1000];
    if (source_len) {
        memset(d, 's', source_len);
        wb_bytes(&h, 2, d, source_len);
        wb_bytes(&e, 1, h.p, h.n);
    }
    wb_value(&e, 2, 1); /* Envelope.payload: never pooled */
    for (size_t j = 0; j < sig_len; j++)
        d[j] = (uint8_t)(sig_seed + j * 5);
    wb_bytes(&e, 3, d, sig_len);
    if (cert_seed) {
        for (size_t j = 0; j < 300; j++)
            d[j] = (uint8_t)(cert_seed * 11 + j);
        wb_bytes(&e, 5, d, 300);
    }
    memcpy(out, e.p, e.n);
    return e.n;
}

/* Records with and without splices share a pack: envelopes that are not protobuf; and once
 * the pool is full, values stored in their records, and a certificate whose key id finds no
 * room taking a certref as in layout 5. */
static void a_pack_mixes_pooled_and_verbatim_records(void **state)
{
    fx *f = *state;
    lt_why why;
    want *w = want_new(f->q1);
    uint8_t env[2048];
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    append_want(f, w, (const uint8_t *)"env-1", 5, true, false);
    /* 65 distinct 1000-byte signatures and a key id: 65032 of the pool's 65536 bytes */
    for (unsigned i = 1; i <= 65; i++)
        append_want(f, w, env, mix_env(env, 0, 1000, i, i == 10 ? 1 : 0), true, false);
    /* 484 more: 20 bytes left */
    append_want(f, w, env, mix_env(env, 0, 484, 66, 0), true, false);
    /* a new key id does not fit, a 16-byte source does, a new signature does not */
    append_want(f, w, env, mix_env(env, 16, 1000, 67, 2), true, false);
    /* a known key id and a new signature: the certificate splices, the signature stays */
    append_want(f, w, env, mix_env(env, 0, 1000, 68, 1), true, false);
    append_want(f, w, env, mix_env(env, 0, 1000, 69, 0), true, true);
    append_want(f, w, (const uint8_t *)"\x1a\x05short", 7, true, false);
    check_all(f, w, true);
    commit_ok(f);
    check_all(f, w, false);
    lt_store_close(&f->s);
    uint8_t *v, key[8];
    size_t vlen = pack_get(f, &v, key);
    uint32_t n = be32(v + 8);
    assert_int_equal(n, w->n); /* one pack */
    assert_int_equal(be32(v + 12), PACK_POOL);
    size_t base = 16 + 4 * ((size_t)n + 1), end = be32(v + 16 + 4 * (size_t)n);
    uint32_t np = be32(v + base + end);
    assert_int_equal(np, 65 + 1 + 1 + 1);
    assert_int_equal(vlen, base + end + 4 + 4 * ((size_t)np + 1) + POOL_MAX - 4);
    for (uint32_t i = 0; i < n; i++) { /* what each record's flags say */
        uint32_t flags = be32(v + base + be32(v + 16 + 4 * i) + 28);
        uint32_t want_flags = i == 0 || i == 69 || i == 70 ? 0 : MSG_SPLICE;
        if (i == 67)
            want_flags |= MSG_CERT;
        if (i == 69)
            want_flags |= MSG_HOPS;
        if (flags != want_flags)
            fail_msg("record %u: flags %u, not %u", i, flags, want_flags);
    }
    free(v);
    open_store(f, 64ULL << 20);
    check_all(f, w, false);
    want_free(w);
}

/* A pack whose pool or splices do not add up reads as an error that says so; the reader
 * never reads past the pack. */
static void a_corrupt_pool_reads_as_an_error_naming_it(void **state)
{
    fx *f = *state;
    lt_why why;
    enum { N = 4 };
    uint8_t *outs[N];
    size_t lens[N];
    seal_batch(N, 100, outs, lens);
    want *w = want_new(f->q1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    for (size_t i = 0; i < N; i++)
        append_want(f, w, outs[i], lens[i], false, false);
    commit_ok(f);
    lt_store_close(&f->s);
    uint8_t *v, key[8];
    size_t vlen = pack_get(f, &v, key);
    uint8_t *bad = malloc(vlen);
    assert_non_null(bad);
    size_t base = 16 + 4 * (N + 1), end = be32(v + 16 + 4 * N), pool = base + end;
    size_t rec0 = base + be32(v + 16), list0 = rec0 + 32 + 4;
    uint32_t np = be32(v + pool);
    assert_true(np > 8);
    size_t list_end = list0 + 1; /* record 0's splice list: [ns][gap, index] x ns */
    for (unsigned k = 0; k < 2u * v[list0]; k++)
        while (v[list_end++] & 0x80)
            ;
    for (int c = 0; c < 10; c++) {
        size_t blen = vlen;
        const char *says = "";
        memcpy(bad, v, vlen);
        switch (c) {
        case 0: /* a pack flag this broker does not know */
            bad[12] = 0x80;
            says = "its pack is corrupt (header)";
            break;
        case 1: /* no pool, yet splices */
            bad[15] = 0;
            says = "its splice list";
            break;
        case 2: /* more strings than a pool holds */
            bad[pool] = 0x7f;
            says = "its pack is corrupt (pool header)";
            break;
        case 3: /* no strings: the record's indexes point past them */
            bad[pool + 3] = 0;
            says = "its splice list";
            break;
        case 4: /* the pool's bytes cut short: string 0 ends past them */
            blen = pool + 4 + 4 * ((size_t)np + 1) + be32(v + pool + 8) - 1;
            says = "its splice list";
            break;
        case 5: /* more splices than an envelope has */
            bad[list0] = SPLICE_NMAX_TEST + 1;
            says = "its splice list";
            break;
        case 6: /* the pool cut short */
            blen = pool + 3;
            says = "its pack is corrupt (pool header)";
            break;
        case 7: /* the records end past the value */
            put_be32(bad + 16 + 4 * N, (uint32_t)vlen);
            says = "its pack is corrupt (record offsets)";
            break;
        case 8: /* record 0 cut 10 bytes after its splice list: the values do not fit */
            put_be32(bad + 20, (uint32_t)(list_end - base + 10));
            says = "do not fit";
            break;
        default: /* a splice list cut short */
            put_be32(bad + 20, (uint32_t)(list0 + 3 - base));
            says = "its splice list";
            break;
        }
        pack_put(f, key, bad, blen);
        open_store(f, 64ULL << 20);
        w->seen = w->bad = 0;
        lt_err err = lt_store_get(f->s, f->q1, w->seq[0], check_env, w, &why);
        if (err != LT_ESTORE || !strstr(why.msg, says))
            fail_msg("case %d: %s: %s (wanted %s)", c, lt_err_name(err), err ? why.msg : "read",
                     says);
        lt_store_close(&f->s);
    }
    pack_put(f, key, v, vlen); /* as written, it reads */
    open_store(f, 64ULL << 20);
    check_all(f, w, false);
    free(bad);
    free(v);
    for (size_t i = 0; i < N; i++)
        free(outs[i]);
    want_free(w);
}

/* A pack as layout 5 wrote it (no pool, flags 0; a record with its certificate left out at
 * its offset, with hops; a record stored verbatim) reads as it always did. */
static void a_pack_without_a_pool_reads_as_before(void **state)
{
    fx *f = *state;
    lt_why why;
    enum { N = 2 };
    uint8_t *outs[N];
    size_t lens[N];
    seal_batch(N, 100, outs, lens);
    want *w = want_new(f->q1);
    assert_int_equal(lt_store_begin(f->s, &why), LT_OK);
    append_want(f, w, outs[0], lens[0], true, true);
    append_want(f, w, outs[1], lens[1], false, false);
    commit_ok(f);
    lt_store_close(&f->s);
    uint8_t *v, key[8], pk[8192];
    assert_true(pack_get(f, &v, key) > 16);
    assert_int_equal(be32(v + 12), PACK_POOL); /* replaced by one without */
    free(v);
    /* the same two records, written by hand as layout 5 did */
    lt_store_cert c;
    uint8_t kid[32];
    assert_true(find_cert(outs[0], lens[0], &c, kid));
    const char *names[] = {"ward", "city"};
    uint8_t hb[LT_STORE_HOPS_BYTES];
    size_t hl = 0;
    assert_int_equal(lt_store_hops_encode(names, 2, hb, &hl), LT_OK);
    size_t n = 16 + 4 * (N + 1), base = n;
    memset(pk, 0, n);
    pool_put_be64(pk, w->seq[0]);
    put_be32(pk + 8, N);
    for (size_t i = 0; i < N; i++) {
        put_be32(pk + 16 + 4 * i, (uint32_t)(n - base));
        uint8_t *r = pk + n;
        pool_put_be64(r, 1000); /* stored_ms */
        mkid(r + 8, 100000 + (unsigned)w->seq[i]);
        put_be32(r + 24, 1);                  /* nq */
        put_be32(r + 28, i == 0 ? 1 | 2 : 0); /* MSG_CERT | MSG_HOPS, or nothing */
        put_be32(r + 32, f->q1);
        n += 36;
        if (i == 0) {
            put_be32(pk + n, (uint32_t)hl);
            memcpy(pk + n + 4, hb, hl);
            n += 4 + hl;
            memcpy(pk + n, kid, 32);
            put_be32(pk + n + 32, (uint32_t)c.field_off);
            n += 36;
            memcpy(pk + n, outs[0], c.field_off);
            memcpy(pk + n + c.field_off, outs[0] + c.field_off + c.field_len,
                   lens[0] - c.field_off - c.field_len);
            n += lens[0] - c.field_len;
        } else {
            memcpy(pk + n, outs[1], lens[1]);
            n += lens[1];
        }
    }
    put_be32(pk + 16 + 4 * N, (uint32_t)(n - base));
    pack_put(f, key, pk, n);
    set_layout(f, 5, false);
    open_store(f, 64ULL << 20);
    check_all(f, w, false);
    for (size_t i = 0; i < N; i++)
        free(outs[i]);
    want_free(w);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(append_stores_the_envelope_and_it_is_pending_after_commit),
        T(duplicate_id_within_window_returns_original_seq_and_stores_nothing),
        T(the_same_id_from_two_agencies_is_two_records),
        T(a_resend_is_a_duplicate_across_a_commit_and_a_reopen),
        T(another_record_under_a_used_id_is_refused_and_the_batch_goes_on),
        T(an_id_past_the_window_names_a_new_record),
        T(a_layout_2_store_drops_its_agency_blind_dedup_tables),
        T(a_message_routed_to_two_queues_is_deleted_only_when_both_acked),
        T(pending_keys_skip_the_bytes_and_get_many_reads_in_order_skipping_the_gone),
        T(a_batch_is_one_pack_freed_with_its_last_message),
        T(a_pack_keeps_only_what_its_batch_did_not_delete_or_abort),
        T(a_large_batch_spans_several_packs),
        T(a_layout_4_store_reads_its_old_messages_and_packs_new_ones),
        T(nak_records_delivery_count_and_not_before),
        T(dead_letter_keeps_payload_and_reason_then_requeue_and_drop),
        T(replay_by_seq_and_by_time_sees_acked_messages_within_retention),
        T(retention_sweep_deletes_acked_messages_only_past_retention),
        T(dedup_sweep_forgets_ids_past_the_window),
        T(a_reput_id_is_found_in_the_current_generation_before_its_old_copy),
        T(an_aborted_batch_leaves_no_source_number_behind),
        T(a_layout_5_store_dedups_from_its_old_table_until_the_first_rotation),
        T(a_corrupt_dedup_entry_or_source_number_is_an_error_not_a_guess),
        T(full_queue_refuses_with_queue_full_naming_it),
        T(a_failing_put_fails_the_whole_batch_and_stores_nothing),
        T(a_refused_operation_keeps_the_batch),
        T(certificates_are_stored_once_and_every_read_returns_the_envelope_as_received),
        T(a_batch_committed_without_sync_is_hidden_from_readers_until_synced),
        T(a_message_not_yet_synced_is_not_found_by_get),
        T(a_failed_flush_is_final_until_the_store_is_reopened),
        T(a_failing_commit_stores_nothing_and_reuses_the_seqs),
        T(operations_outside_a_batch_are_refused),
        T(an_io_error_at_commit_is_final_until_the_store_is_reopened),
        T(store_full_is_cleared_only_by_a_commit_that_frees_or_stores),
        T(reopening_keeps_messages_state_counters_and_sequence),
        T(hops_are_kept_with_the_message_and_read_back),
        T(a_layout_1_store_is_upgraded_in_place_and_a_newer_one_is_refused),
        T(queues_are_listed_in_name_order),
        T(a_second_process_cannot_open_the_same_store),
        T(a_tiny_map_fills_up_with_store_full_and_keeps_the_batch),
        T(every_committed_message_survives_kill_9),
        T(a_scheduled_message_is_stored_and_counted_but_waits_for_its_due_time),
        T(a_schedule_survives_a_reopen),
        T(a_cancel_removes_a_scheduled_message_and_refuses_a_due_one),
        T(a_full_store_makes_retention_yield_to_live_data),
        T(a_signed_batch_shares_one_pool_and_reads_back_byte_for_byte),
        T(envelopes_of_any_shape_read_back_byte_for_byte),
        T(a_pack_mixes_pooled_and_verbatim_records),
        T(a_corrupt_pool_reads_as_an_error_naming_it),
        T(a_pack_without_a_pool_reads_as_before),
};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
