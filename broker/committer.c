/*
 * committer.c - the one thread that writes LMDB: group commit.
 *
 * Each round takes everything available - the run of verified ring slots starting at the
 * commit cursor (at most commit_max_batch of them, in arrival order), every queued op
 * (consumer acks, nak records, DLQ moves, admin DLQ requests), and a share of expiry work
 * (lt_store_sweep) once a second - applies it in ONE write transaction, commits (fsync),
 * and only then publishes the outcome to the loop (ring.done, finished jobs) and wakes it.
 * While one commit is fsyncing, the next batch accumulates: the fsync cost is shared by
 * everything that arrived meanwhile.
 *
 * Nothing in a batch is acknowledged before lt_store_commit returned LT_OK; when it fails,
 * every publish of the batch is NACKed with the store's code (STORE_FULL / STORE_ERROR).
 *
 * Threads: this thread only (plus lt_commit_post / lt_commit_is_idle from the loop, which
 * touch the ring's op list under its mutex).
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

static void apply_op(lt_broker *b, lt_op *op, int64_t now, lt_job **jobs)
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
        free(op->reason);
        op->reason = NULL;
        break;
    case LT_OP_DLQ_REQUEUE:
    case LT_OP_DLQ_DROP: {
        lt_job *j = op->job;
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
        j->next = *jobs;
        *jobs = j;
        return;
    }
    default:
        return;
    }
    if (e != LT_OK && e != LT_ENOTFOUND)
        lt_broker_log(LT_LOG_ERROR, "store: op %d on queue %u seq %llu failed: %s: %s", op->kind,
                      op->qid, (unsigned long long)op->seq, lt_err_name(e), why.msg);
}

/* One group commit of slots [first, first + n) and ops. */
static void run_batch(lt_broker *b, uint64_t first, uint64_t n, lt_oplist *ops, bool sweep,
                      lt_job **jobs)
{
    lt_ring *r = &b->ring;
    lt_why why = {{0}};
    int64_t now = lt_broker_now_ms();
    lt_err e = lt_store_begin(b->store, &why);
    size_t appended = 0;
    if (e == LT_OK) {
        for (uint64_t i = first; i < first + n; i++) {
            lt_slot *s = &r->slots[i & r->mask];
            if (s->kind != LT_SLOT_PUBLISH || s->err != LT_OK)
                continue;
            s->err = lt_store_append(b->store, s->msg_id, s->qids, s->nq, s->buf, s->len, now,
                                     &s->seq, &s->dup, &s->why);
            if (s->err == LT_OK && !s->dup)
                appended++;
        }
        for (size_t i = 0; i < ops->n; i++)
            apply_op(b, &ops->v[i], now, jobs);
        if (sweep) {
            bool more = false;
            lt_why sw = {{0}};
            lt_err se = lt_store_sweep(b->store, now, SWEEP_BUDGET, &more, &sw);
            if (se != LT_OK)
                lt_broker_log(LT_LOG_WARN, "store: sweep failed: %s: %s", lt_err_name(se), sw.msg);
            b->last_sweep_ms = more ? now - SWEEP_EVERY_MS + 50 : now;
        }
        int64_t t0 = mono_ns();
        e = lt_store_commit(b->store, &why);
        lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_FSYNC),
                           (double)(mono_ns() - t0) / 1e9);
        lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_COMMIT_BATCH), (double)appended);
    } else {
        /* ops that carry a job still go back to the loop */
        for (size_t i = 0; i < ops->n; i++) {
            lt_op *op = &ops->v[i];
            free(op->reason);
            op->reason = NULL;
            if (op->job) {
                op->job->next = *jobs;
                *jobs = op->job;
            }
        }
    }
    if (e != LT_OK) {
        if (e != LT_ESTORE_FULL)
            e = LT_ESTORE;
        lt_broker_log(LT_LOG_ERROR, "store: commit of %llu publishes and %zu ops failed: %s",
                      (unsigned long long)n, ops->n, why.msg);
        for (uint64_t i = first; i < first + n; i++) {
            lt_slot *s = &r->slots[i & r->mask];
            if (s->kind != LT_SLOT_PUBLISH || s->err != LT_OK)
                continue;
            s->err = e;
            s->why = why;
        }
        for (lt_job *j = *jobs; j; j = j->next) {
            j->err = e;
            j->why = why;
            for (size_t i = 0; i < j->n; i++)
                j->ok[i] = false;
        }
    }
    ops->n = 0;
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
        bool sweep = lt_broker_now_ms() - b->last_sweep_ms >= SWEEP_EVERY_MS;
        while (!slot_ready(r) && r->ops.n == 0 && !r->stop_commit && !sweep) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&r->cv_commit, &r->mu, &ts);
            sweep = lt_broker_now_ms() - b->last_sweep_ms >= SWEEP_EVERY_MS;
        }
        uint64_t first = r->commit, n = 0;
        while (n < max_batch && first + n < r->head && r->slots[(first + n) & r->mask].verified)
            n++;
        if (n == 0 && r->ops.n == 0 && !sweep && r->stop_commit)
            break;
        lt_oplist t = r->ops;
        r->ops = mine;
        mine = t;
        r->committer_busy = true;
        pthread_mutex_unlock(&r->mu);

        lt_job *jobs = NULL;
        run_batch(b, first, n, &mine, sweep, &jobs);

        pthread_mutex_lock(&r->mu);
        r->commit = first + n;
        r->done = r->commit;
        while (jobs) {
            lt_job *j = jobs;
            jobs = j->next;
            j->next = r->jobs_done;
            r->jobs_done = j;
        }
        r->committer_busy = false;
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&b->async);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    free(mine.v);
    return NULL;
}

lt_err lt_commit_start(lt_broker *b, lt_why *why)
{
    b->last_sweep_ms = lt_broker_now_ms();
    int rc = pthread_create(&b->committer, NULL, commit_main, b);
    if (rc != 0)
        return lt_fail(why, LT_ENOMEM, "cannot start the commit thread: %s", strerror(rc));
    b->committer_started = true;
    return LT_OK;
}

void lt_commit_stop(lt_broker *b)
{
    if (!b->committer_started)
        return;
    lt_ring *r = &b->ring;
    pthread_mutex_lock(&r->mu);
    r->stop_commit = true;
    pthread_cond_signal(&r->cv_commit);
    pthread_mutex_unlock(&r->mu);
    pthread_join(b->committer, NULL);
    b->committer_started = false;
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
    bool idle = r->ops.n == 0 && !r->committer_busy && r->commit == r->head && r->jobs_done == NULL;
    pthread_mutex_unlock(&r->mu);
    return idle;
}
