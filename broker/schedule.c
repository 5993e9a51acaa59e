/*
 * schedule.c - scheduled delivery on the loop (see schedule.h for the contract).
 *
 * One uv timer for the broker, armed for the earliest due time the store's schedule holds
 * (b->sched_at). When it fires, one SCHED_DUE job goes to the committer, which promotes
 * what is due in its write batch; the job comes back after the fsync with the (queue, seq)
 * pairs it promoted and the next due time. At most one such job is out at a time; a job
 * that promoted a full LT_SCHED_BATCH is followed by the next at once.
 *
 * The timer follows the wall clock (lt_env_now_ms), as due times do: it is re-armed from
 * the wall clock each time, so a clock step is absorbed at the next firing (at most a
 * minute apart: SCHED_MAX_SLEEP_MS).
 */
#include "broker_int.h"
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

#define SCHED_MAX_SLEEP_MS 60000 /* re-read the wall clock at least this often */

static void on_timer(uv_timer_t *t);

static void arm(lt_broker *b, int64_t due)
{
    b->sched_at = due;
    if (!b->sched_timer_init || b->phase != LT_PHASE_RUNNING)
        return;
    if (due == INT64_MAX) {
        uv_timer_stop(&b->sched_timer);
        return;
    }
    int64_t delay = due - lt_env_now_ms();
    if (delay < 0)
        delay = 0;
    if (delay > SCHED_MAX_SLEEP_MS)
        delay = SCHED_MAX_SLEEP_MS;
    uv_timer_start(&b->sched_timer, on_timer, (uint64_t)delay, 0);
}

static void post_due(lt_broker *b)
{
    if (b->sched_busy)
        return;
    lt_job *j = calloc(1, sizeof *j);
    if (j) {
        j->cap = LT_SCHED_BATCH;
        j->seqs = malloc(j->cap * sizeof *j->seqs);
        j->qids = malloc(j->cap * sizeof *j->qids);
    }
    if (!j || !j->seqs || !j->qids) {
        if (j) {
            free(j->seqs);
            free(j->qids);
        }
        free(j);
        lt_log(LT_LOG_ERROR, "scheduled delivery: out of memory; retrying in a second");
        arm(b, lt_env_now_ms() + 1000);
        return;
    }
    j->kind = LT_OP_SCHED_DUE;
    j->now = lt_env_now_ms();
    j->next_due = INT64_MAX;
    lt_op o = {.kind = LT_OP_SCHED_DUE, .job = j};
    if (lt_commit_post(b, &o, 1) != LT_OK) {
        free(j->seqs);
        free(j->qids);
        free(j);
        arm(b, lt_env_now_ms() + 1000);
        return;
    }
    b->sched_busy = true;
}

static void on_timer(uv_timer_t *t)
{
    lt_broker *b = t->loop->data;
    if (b->phase != LT_PHASE_RUNNING)
        return;
    if (b->sched_at > lt_env_now_ms()) {
        arm(b, b->sched_at); /* woke for the clock check only */
        return;
    }
    post_due(b);
}

lt_err lt_sched_start(lt_broker *b, lt_why *why)
{
    int64_t due = INT64_MAX;
    lt_err e = lt_store_sched_next(b->store, &due, why);
    if (e != LT_OK)
        return e;
    uv_timer_init(&b->loop, &b->sched_timer);
    b->sched_timer_init = true;
    b->sched_busy = false;
    arm(b, due);
    return LT_OK;
}

void lt_sched_stop(lt_broker *b)
{
    if (b->sched_timer_init)
        uv_timer_stop(&b->sched_timer);
}

void lt_sched_note(lt_broker *b, int64_t due_ms)
{
    if (due_ms > 0 && due_ms < b->sched_at && !b->sched_busy)
        arm(b, due_ms);
    else if (due_ms > 0 && due_ms < b->sched_at)
        b->sched_at = due_ms; /* the job's answer re-arms with the earlier of the two */
}

bool lt_sched_owns_job(const lt_job *j)
{
    return j->kind == LT_OP_SCHED_DUE || j->kind == LT_OP_CANCEL;
}

void lt_sched_on_cancel(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f)
{
    const Lienthong__V1__Cancel *c = f->cancel;
    if (c->message_id.len != LT_STORE_ID_LEN) {
        char why[96];
        snprintf(why, sizeof why,
                 "CANCEL.message_id is %zu bytes: it must be the record's 16-byte message id",
                 c->message_id.len);
        lt_fe_send_nack(b, p->id, p->id_len, c->tag, LT_EMSGID, why);
        return;
    }
    lt_job *j = calloc(1, sizeof *j);
    if (!j) {
        lt_fe_send_nack(b, p->id, p->id_len, c->tag, LT_ESTORE, "broker out of memory");
        return;
    }
    j->kind = LT_OP_CANCEL;
    j->tag = c->tag;
    j->peer_len = p->id_len;
    memcpy(j->peer, p->id, p->id_len);
    j->conn = p->conn;
    j->now = lt_env_now_ms();
    snprintf(j->agency, sizeof j->agency, "%s", p->agency);
    memcpy(j->msg_id, c->message_id.data, LT_STORE_ID_LEN);
    lt_op o = {.kind = LT_OP_CANCEL, .job = j};
    if (lt_commit_post(b, &o, 1) != LT_OK) {
        free(j);
        lt_fe_send_nack(b, p->id, p->id_len, c->tag, LT_ESTORE, "broker out of memory");
    }
}

static void answer_cancel(lt_broker *b, lt_job *j)
{
    /* answer the connection that asked, not whoever holds its routing id now */
    lt_fe_sessions_sync(b);
    lt_peer *p = lt_fe_peer_find(b, j->peer, j->peer_len);
    if (!p || p->conn != j->conn)
        return;
    if (j->err != LT_OK) {
        lt_fe_send_nack(b, j->peer, j->peer_len, j->tag, j->err, j->why.msg);
        return;
    }
    b->sched_cancelled++;
    Lienthong__V1__Ack a = LIENTHONG__V1__ACK__INIT;
    a.tag = j->tag;
    a.seq = j->seq;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ACK;
    f.ack = &a;
    lt_fe_send(b, j->peer, j->peer_len, &f);
}

void lt_sched_on_job_done(lt_broker *b, lt_job *j)
{
    if (j->kind == LT_OP_CANCEL) {
        answer_cancel(b, j);
        free(j);
        return;
    }
    b->sched_busy = false;
    int64_t next = j->next_due;
    if (j->err != LT_OK) {
        /* nothing of it is durable: what was due still is; try again in a second */
        lt_log(LT_LOG_ERROR, "scheduled delivery: promoting due records failed: %s: %s",
               lt_err_name(j->err), j->why.msg);
        next = j->now + 1000;
    } else {
        for (size_t i = 0; i < j->n; i++)
            lt_dlv_on_due(b, j->qids[i], j->seqs[i]);
        b->sched_promoted += j->n;
        if (j->n == j->cap)
            next = j->now; /* a full batch: more may be due */
    }
    /* a record scheduled while the job was out may be due earlier than what it saw */
    if (b->sched_at < next && b->sched_at > j->now)
        next = b->sched_at;
    free(j->seqs);
    free(j->qids);
    free(j);
    arm(b, next);
}
