/*
 * committer.c - the one thread that writes LMDB (group commit), and the sync thread that
 * makes its batches durable.
 *
 * Each round takes everything available - the run of verified ring slots starting at the
 * commit cursor (at most commit_max_batch of them, in arrival order), every queued op
 * (consumer acks, nak records, DLQ moves, admin DLQ requests), and a share of expiry work
 * (lt_store_sweep) once a second - applies it in ONE write transaction and commits it with
 * lt_store_commit_nosync (data pages written and fsynced, LMDB's root written but not yet
 * flushed). It hands the batch to the sync thread and starts the next round at once.
 *
 * The sync thread flushes (lt_store_sync: one fsync covers every batch handed to it so far)
 * and only then publishes the outcome to the loop (ring.done, finished jobs) and wakes it.
 * So a commit costs the committer one fsync, not two, and the next batch is built while the
 * previous one's second fsync runs; whatever arrived meanwhile forms the next batch
 * (natural group commit).
 *
 *      committer:  [apply N][write+fsync N][apply N+1][write+fsync N+1][apply N+2]...
 *      sync:                               [flush N -> ack N]          [flush N+1 -> ack]
 *
 * Nothing in a batch is acknowledged before its lt_store_sync returned LT_OK. When the
 * commit fails, every publish of the batch is NACKed with the store's code (STORE_FULL /
 * STORE_ERROR); when it failed for a full map or disk, the batch's ops (acks, DLQ moves:
 * they free space) are committed again on their own, without the publishes. When the
 * flush fails, the batch's publishes are NACKed with STORE_ERROR (their durability is
 * unknown; a publisher that retries gets them deduplicated if they did survive).
 *
 * Threads: these two (plus lt_commit_post / lt_commit_is_idle from the loop, which touch
 * the ring's op list under its mutex).
 */
#include "broker_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SWEEP_EVERY_MS 1000
#define SWEEP_BUDGET 2000

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool slot_ready(const lt_ring *r)
{
    return r->commit < r->head && r->slots[r->commit & r->mask].verified;
}

/* lt_store_sched_promote's visitor: note each promoted entry in the SCHED_DUE job. */
static void sched_due_visit(void *arg, uint32_t qid, uint64_t seq)
{
    lt_job *j = arg;
    if (j->n < j->cap) {
        j->qids[j->n] = qid;
        j->seqs[j->n] = seq;
        j->n++;
    }
}

static void apply_op(lt_broker *b, lt_op *op, int64_t now)
{
    lt_why why = {{0}};
    lt_err e = LT_OK;
    switch (op->kind) {
    case LT_OP_ACK:
        e = lt_store_ack(b->store, op->qid, op->seq, op->when, &why);
        break;
    case LT_OP_NAK:
        e = lt_store_nak(b->store, op->qid, op->seq, op->count, op->when, &why);
        break;
    case LT_OP_DEAD:
        e = lt_store_dead_letter(b->store, op->qid, op->seq, op->count,
                                 op->reason ? op->reason : "", now, &why);
        break;
    case LT_OP_DLQ_REQUEUE:
    case LT_OP_DLQ_DROP: {
        lt_job *j = op->job;
        j->err = LT_OK;
        for (size_t i = 0; i < j->n; i++) {
            lt_err je = op->kind == LT_OP_DLQ_REQUEUE
                            ? lt_store_dlq_requeue(b->store, j->qid, j->seqs[i], &why)
                            : lt_store_dlq_drop(b->store, j->qid, j->seqs[i], now, &why);
            j->ok[i] = je == LT_OK;
            if (je != LT_OK && je != LT_ENOTFOUND && j->err == LT_OK) {
                j->err = je;
                j->why = why;
            }
        }
        return;
    }
    case LT_OP_DELIVER: {
        lt_job *j = op->job;
        j->err = LT_OK;
        for (size_t i = 0; i < j->n; i++) {
            lt_err de = lt_store_nak(b->store, j->qid, j->seqs[i], j->counts[i], 0, &why);
            j->ok[i] = de == LT_OK;
            if (de != LT_OK && de != LT_ENOTFOUND && j->err == LT_OK) {
                j->err = de;
                j->why = why;
            }
        }
        return;
    }
    case LT_OP_SCHED_DUE: {
        lt_job *j = op->job;
        j->n = 0; /* the batch may be applied twice (see run_batch) */
        j->err = lt_store_sched_promote(b->store, j->now, j->cap, sched_due_visit, j,
                                        &j->next_due, &j->why);
        return;
    }
    case LT_OP_CANCEL: {
        lt_job *j = op->job;
        j->err = lt_store_sched_cancel(b->store, j->agency, j->msg_id, now, &j->seq, NULL,
                                       &j->why);
        return;
    }
    default:
        return;
    }
    if (e != LT_OK && e != LT_ENOTFOUND)
        lt_log(LT_LOG_ERROR, "store: op %d on queue %u seq %llu failed: %s: %s", op->kind,
                      op->qid, (unsigned long long)op->seq, lt_err_name(e), why.msg);
}

/* The ops are done with (committed, or given up): free what they own. */
static void ops_release(lt_oplist *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        free(ops->v[i].reason);
        ops->v[i].reason = NULL;
    }
    ops->n = 0;
}

/* Apply the publishes of slots [first, first + *n) (none when with_publishes is false) and
 * ops in one transaction and commit it without the flush. A publish the batch has no room
 * for (LT_EAGAIN) ends the batch there: *n shrinks, the rest waits for the next round. */
static lt_err apply_batch(lt_broker *b, uint64_t first, uint64_t *n, bool with_publishes,
                          lt_oplist *ops, bool sweep, size_t *appended,
                          uint64_t *ticket, lt_why *why)
{
    lt_ring *r = &b->ring;
    int64_t now = lt_env_now_ms();
    *appended = 0;
    if (sweep) /* due again in a second even if this batch cannot begin (a failed flush) */
        b->last_sweep_ms = now;
    lt_err e = lt_store_begin(b->store, why);
    if (e != LT_OK)
        return e;
    for (uint64_t i = first; with_publishes && i < first + *n; i++) {
        lt_slot *s = &r->slots[i & r->mask];
        if (s->kind != LT_SLOT_PUBLISH || s->err != LT_OK)
            continue;
        lt_store_cert c = {.key_id = s->key_id,
                           .der = s->buf + s->cert_der_off,
                           .der_len = s->cert_der_len,
                           .field_off = s->cert_field_off,
                           .field_len = s->cert_field_len};
        lt_store_msgkey key = {.id = s->msg_id,
                               .source = s->agency,
                               .payload_sha256 = s->payload_sha256,
                               .signer_key_id = s->key_id};
        lt_err ge = lt_dossier_gate(b, s, &key, now, &s->why); /* procedures (dossier.h) */
        if (ge != LT_OK) {
            s->err = ge;
            continue;
        }
        lt_why w = {{0}};
        lt_err ae = lt_store_append_hops(b->store, &key, s->qids, s->nq, s->buf, s->len,
                                         s->has_cert ? &c : NULL, s->buf + s->len, s->hops_len,
                                         now, s->due_ms, &s->seq, &s->dup, &w);
        if (ae == LT_EAGAIN && i > first) {
            *n = i - first; /* batch full: this one and the rest go in the next round */
            break;
        }
        s->err = ae;
        s->why = w;
        if (ae == LT_OK && !s->dup)
            (*appended)++;
        lt_dossier_record(b, s, now); /* procedures (dossier.h): once appended, not a dup */
    }
    for (size_t i = 0; i < ops->n; i++)
        apply_op(b, &ops->v[i], now);
    if (sweep) {
        bool more = false;
        lt_why sw = {{0}};
        lt_err se = lt_store_sweep(b->store, now, SWEEP_BUDGET, &more, &sw);
        if (se != LT_OK)
            lt_log(LT_LOG_WARN, "store: sweep failed: %s: %s", lt_err_name(se), sw.msg);
        b->last_sweep_ms = more ? now - SWEEP_EVERY_MS + 50 : now;
    }
    return lt_store_commit_nosync(b->store, ticket, why);
}

/* Every publish of slots [first, first + n) still OK fails with e. */
static void fail_publishes(lt_ring *r, uint64_t first, uint64_t n, lt_err e, const lt_why *why)
{
    for (uint64_t i = first; i < first + n; i++) {
        lt_slot *s = &r->slots[i & r->mask];
        if (s->kind != LT_SLOT_PUBLISH || s->err != LT_OK)
            continue;
        s->err = e;
        s->why = *why;
    }
}

static void fail_jobs(lt_job *jobs, lt_err e, const lt_why *why)
{
    for (lt_job *j = jobs; j; j = j->next) {
        j->err = e;
        j->why = *why;
        for (size_t i = 0; j->ok && i < j->n; i++)
            j->ok[i] = false;
        if (j->kind == LT_OP_SCHED_DUE)
            j->n = 0; /* nothing of it is durable */
    }
}

/* Append list (in its order) at the end of *head: jobs go back to the loop in the order
 * they were posted (a consumer's deliveries leave in seq order). Lists are short. */
static void jobs_append(lt_job **head, lt_job *list)
{
    while (*head)
        head = &(*head)->next;
    *head = list;
}

/* One group commit of slots [first, first + *n) and ops; *ticket for the sync thread. */
static void run_batch(lt_broker *b, uint64_t first, uint64_t *n, lt_oplist *ops, bool sweep,
                      lt_job **jobs, uint64_t *ticket)
{
    lt_ring *r = &b->ring;
    lt_why why = {{0}};
    size_t appended = 0;
    int64_t t0 = mono_ns();
    lt_job **tail = jobs; /* jobs go back to the loop, done or not, in order */
    while (*tail)
        tail = &(*tail)->next;
    for (size_t i = 0; i < ops->n; i++)
        if (ops->v[i].job) {
            ops->v[i].job->next = NULL;
            *tail = ops->v[i].job;
            tail = &ops->v[i].job->next;
        }
    lt_err e = apply_batch(b, first, n, true, ops, sweep, &appended, ticket, &why);
    if (e == LT_ESTORE_FULL && *n > 0) {
        /* A full map or disk concerns every publish of the moment: refuse them all, and
         * commit the ops again on their own (acks and drops are what frees space). */
        lt_log(LT_LOG_ERROR, "store: commit of %llu publishes and %zu ops failed: %s",
                      (unsigned long long)*n, ops->n, why.msg);
        fail_publishes(r, first, *n, e, &why);
        uint64_t none = 0;
        /* with the sweep: a full store makes retention yield (lt_store_sweep) */
        e = apply_batch(b, first, &none, false, ops, true, &appended, ticket, &why);
        if (e == LT_OK)
            appended = 0;
    }
    lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_COMMIT_BATCH), (double)appended);
    if (e != LT_OK) {
        if (e != LT_ESTORE_FULL)
            e = LT_ESTORE;
        if (*n > 0 || ops->n > 0) /* a sweep alone: nothing of anyone's failed */
            lt_log(LT_LOG_ERROR, "store: commit of %llu publishes and %zu ops failed: %s",
                   (unsigned long long)*n, ops->n, why.msg);
        fail_publishes(r, first, *n, e, &why);
        fail_jobs(*jobs, e, &why);
    }
    ops_release(ops);
    pthread_mutex_lock(&r->mu);
    r->sync_commit_ns += mono_ns() - t0;
    pthread_mutex_unlock(&r->mu);
}

static void *commit_main(void *arg)
{
    lt_broker *b = arg;
    lt_ring *r = &b->ring;
    uint64_t max_batch = b->cfg->commit_max_batch ? b->cfg->commit_max_batch : 4096;
    lt_oplist mine = {0};
    pthread_setname_np(pthread_self(), "lt-commit");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        bool sweep = lt_env_now_ms() - b->last_sweep_ms >= SWEEP_EVERY_MS;
        while (!slot_ready(r) && r->ops.n == 0 && !r->stop_commit && !sweep) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&r->cv_commit, &r->mu, &ts);
            sweep = lt_env_now_ms() - b->last_sweep_ms >= SWEEP_EVERY_MS;
        }
        uint64_t first = r->commit, n = 0;
        while (n < max_batch && first + n < r->head && r->slots[(first + n) & r->mask].verified)
            n++;
        if (n == 0 && r->ops.n == 0 && r->stop_commit)
            break; /* a sweep that is due does not hold up the stop */
        lt_oplist t = r->ops;
        r->ops = mine;
        mine = t;
        r->committer_busy = true;
        pthread_mutex_unlock(&r->mu);

        lt_job *jobs = NULL;
        uint64_t ticket = 0;
        run_batch(b, first, &n, &mine, sweep, &jobs, &ticket);

        pthread_mutex_lock(&r->mu);
        r->commit = first + n;
        r->to_sync = r->commit;
        if (ticket > r->sync_ticket)
            r->sync_ticket = ticket;
        jobs_append(&r->jobs_sync, jobs);
        r->committer_busy = false;
        pthread_cond_signal(&r->cv_sync);
    }
    pthread_mutex_unlock(&r->mu);
    free(mine.v);
    return NULL;
}

static void *sync_main(void *arg)
{
    lt_broker *b = arg;
    lt_ring *r = &b->ring;
    pthread_setname_np(pthread_self(), "lt-sync");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->to_sync == r->done && r->jobs_sync == NULL && !r->stop_sync)
            pthread_cond_wait(&r->cv_sync, &r->mu);
        if (r->to_sync == r->done && r->jobs_sync == NULL)
            break; /* stopping, nothing left */
        uint64_t from = r->done, upto = r->to_sync, ticket = r->sync_ticket;
        int64_t commit_ns = r->sync_commit_ns;
        r->sync_commit_ns = 0;
        lt_job *jobs = r->jobs_sync;
        r->jobs_sync = NULL;
        pthread_mutex_unlock(&r->mu);

        lt_why why = {{0}};
        int64_t t0 = mono_ns();
        lt_err e = lt_store_sync(b->store, ticket, &why);
        lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_FSYNC),
                           (double)(commit_ns + mono_ns() - t0) / 1e9);
        if (e != LT_OK) {
            lt_log(LT_LOG_ERROR, "store: flush of %llu publishes failed: %s",
                          (unsigned long long)(upto - from), why.msg);
            fail_publishes(r, from, upto - from, LT_ESTORE, &why);
            fail_jobs(jobs, LT_ESTORE, &why);
        }

        pthread_mutex_lock(&r->mu);
        r->done = upto;
        jobs_append(&r->jobs_done, jobs);
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&b->async);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

lt_err lt_commit_start(lt_broker *b, lt_why *why)
{
    b->last_sweep_ms = lt_env_now_ms();
    lt_ring *r = &b->ring;
    r->to_sync = r->done = r->commit;
    int rc = pthread_create(&b->syncer, NULL, sync_main, b);
    if (rc != 0)
        return lt_fail(why, LT_ENOMEM, "cannot start the sync thread: %s", strerror(rc));
    b->syncer_started = true;
    rc = pthread_create(&b->committer, NULL, commit_main, b);
    if (rc != 0)
        return lt_fail(why, LT_ENOMEM, "cannot start the commit thread: %s", strerror(rc));
    b->committer_started = true;
    return LT_OK;
}

void lt_commit_stop(lt_broker *b)
{
    lt_ring *r = &b->ring;
    if (b->committer_started) {
        pthread_mutex_lock(&r->mu);
        r->stop_commit = true;
        pthread_cond_signal(&r->cv_commit);
        pthread_mutex_unlock(&r->mu);
        pthread_join(b->committer, NULL);
        b->committer_started = false;
    }
    if (b->syncer_started) {
        pthread_mutex_lock(&r->mu);
        r->stop_sync = true; /* after the committer: it flushes what was committed last */
        pthread_cond_signal(&r->cv_sync);
        pthread_mutex_unlock(&r->mu);
        pthread_join(b->syncer, NULL);
        b->syncer_started = false;
    }
}

lt_err lt_commit_post(lt_broker *b, const lt_op *ops, size_t n)
{
    lt_ring *r = &b->ring;
    pthread_mutex_lock(&r->mu);
    if (r->ops.n + n > r->ops.cap) {
        size_t ncap = r->ops.cap ? r->ops.cap : 256;
        while (ncap < r->ops.n + n)
            ncap *= 2;
        lt_op *nv = realloc(r->ops.v, ncap * sizeof *nv);
        if (!nv) {
            pthread_mutex_unlock(&r->mu);
            return LT_ENOMEM;
        }
        r->ops.v = nv;
        r->ops.cap = ncap;
    }
    memcpy(r->ops.v + r->ops.n, ops, n * sizeof *ops);
    r->ops.n += n;
    pthread_cond_signal(&r->cv_commit);
    pthread_mutex_unlock(&r->mu);
    return LT_OK;
}

bool lt_commit_is_idle(lt_broker *b)
{
    lt_ring *r = &b->ring;
    pthread_mutex_lock(&r->mu);
    bool idle = r->ops.n == 0 && !r->committer_busy && r->commit == r->head &&
                r->done == r->commit && r->jobs_sync == NULL && r->jobs_done == NULL;
    pthread_mutex_unlock(&r->mu);
    return idle;
}
