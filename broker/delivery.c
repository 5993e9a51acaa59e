/*
 * delivery.c - queues' consumer state.
 *
 * The per-queue state machine is delivery_dq.c (delivery_int.h). This file drives it on the
 * loop thread: subscriptions and their credit, reading envelopes
 * from the store (short read transactions) and sending DELIVER frames, one timer per queue
 * for ack deadlines and delayed redeliveries, consumer acks / naks and DLQ moves posted to
 * the committer, replay streams, and the admin requests (queues, dlq.*) of the protocol and
 * of the admin HTTP server.
 *
 * A queue is pumped when something changed (a commit routed messages to it, credit came,
 * an ack freed room, its timer fired). New messages are read from the store in seq order
 * past the state machine's cursor, so memory holds what is in flight or waiting, never the
 * backlog. During shutdown nothing new is delivered (acks are still taken).
 */
#include "broker_int.h"
#include "delivery_int.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 256    /* store entries read per pass */
#define PUMP_GUARD 100000 /* deliveries per pump call at most (fairness between queues) */
#define ADMIN_LIMIT_DEFAULT 100
#define ADMIN_LIMIT_MAX 1000
#define ADMIN_ALL_MAX 100000 /* dead letters one requeue/drop "all" takes */
#define OPBUF 64

/* Ops gathered by one handler and posted to the committer in one go. */
typedef struct opbuf {
    lt_broker *b;
    lt_op v[OPBUF];
    size_t n;
} opbuf;

static void ops_flush(opbuf *o)
{
    if (o->n == 0)
        return;
    if (lt_commit_post(o->b, o->v, o->n) != LT_OK) {
        lt_log(LT_LOG_ERROR, "out of memory queueing %zu store operations", o->n);
        for (size_t i = 0; i < o->n; i++)
            free(o->v[i].reason);
    }
    o->n = 0;
}

static void ops_add(opbuf *o, const lt_op *op)
{
    if (o->n == OPBUF)
        ops_flush(o);
    o->v[o->n++] = *op;
}

static lt_dq_cfg dq_cfg_of(const lt_bcfg_queue *qc)
{
    lt_dq_cfg c;
    memset(&c, 0, sizeof c);
    c.ack_wait_ms = qc->ack_wait_s * 1000u;
    c.max_deliver = qc->max_deliver;
    c.max_ack_pending = qc->max_ack_pending;
    c.nbackoff = (uint32_t)(qc->nbackoff < LT_DQ_BACKOFF_MAX ? qc->nbackoff : LT_DQ_BACKOFF_MAX);
    for (uint32_t i = 0; i < c.nbackoff; i++)
        c.backoff_ms[i] = qc->backoff_s[i] * 1000u;
    return c;
}

lt_queue *lt_dlv_queue_by_name(lt_broker *b, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < b->nqueues; i++)
        if (strcmp(b->queues[i].cfg->name, name) == 0)
            return &b->queues[i];
    return NULL;
}

static lt_queue *queue_by_qid(lt_broker *b, uint32_t qid)
{
    return qid < b->qid_cap ? b->by_qid[qid] : NULL;
}

static void mark_dirty(lt_broker *b, lt_queue *q)
{
    if (q->dirty)
        return;
    q->dirty = true;
    q->dnext = b->dirty;
    b->dirty = q;
}

void lt_dlv_wake(lt_broker *b, uint32_t qid)
{
    lt_queue *q = queue_by_qid(b, qid);
    if (!q)
        return;
    q->more = true;
    mark_dirty(b, q);
}

void lt_dlv_on_stored(lt_broker *b, const uint32_t *qids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lt_dlv_wake(b, qids[i]);
}

/* A promotion is durable. Past the cursor the store read finds the entry as it finds new
 * ones; at or before it (stepped over while scheduled) it joins the redeliveries. One
 * window stays: if a read met the entry already promoted, sent it and the consumer acked
 * it before this call, it is delivered once more (at least once; the ack is still on its
 * way to the store, so the redelivery read finds it pending). */
void lt_dlv_on_due(lt_broker *b, uint32_t qid, uint64_t seq)
{
    lt_queue *q = queue_by_qid(b, qid);
    if (!q)
        return;
    if (seq <= q->dq.cursor && lt_dq_state_of(&q->dq, seq, NULL) == 0 &&
        lt_dq_add_ready(&q->dq, seq, 0) == LT_ENOMEM)
        lt_log(LT_LOG_ERROR, "queue %s: no memory to deliver scheduled seq %" PRIu64
                             " now; it is delivered after a restart",
               q->cfg->name, seq);
    q->more = true;
    mark_dirty(b, q);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);
static uint64_t total_credit(const lt_queue *q);
static char *dead_reason(uint32_t max_deliver, const char *last, const char *detail);
static lt_sub *sub_of(lt_peer *p, lt_queue *q);

/* Arm q's timer for its next deadline (lt_dq_wake_at), or for the retry of a send that
 * ZeroMQ refused (EAGAIN: the consumer's pipe is full; nothing else would wake the queue
 * while that consumer reads without acking). The 1 ms floor keeps even an entry that
 * cannot be sent from spinning the loop. */
static void rearm(lt_broker *b, lt_queue *q)
{
    int64_t now = lt_env_now_ms();
    int64_t t = lt_dq_wake_at(&q->dq, now, total_credit(q) > 0);
    if (q->retry_at < t)
        t = q->retry_at;
    if (t == INT64_MAX) {
        if (q->timer_at != INT64_MAX)
            uv_timer_stop(&q->timer);
        q->timer_at = INT64_MAX;
        return;
    }
    if (t == q->timer_at)
        return;
    int64_t delay = t - now;
    if (delay < 1)
        delay = 1;
    q->timer_at = t;
    uv_timer_start(&q->timer, on_timer, (uint64_t)delay, 0);
    (void)b;
}

/* A send to a consumer of q failed with EAGAIN at now: retry soon, backing off to 200 ms
 * while it stays full. */
static void send_stalled(lt_queue *q, int64_t now)
{
    if (q->retry_ms == 0)
        lt_log(LT_LOG_INFO,
               "queue %s: a consumer's ZeroMQ queue is full (send_hwm); delivery retries "
               "until it reads",
               q->cfg->name);
    q->retry_ms = q->retry_ms ? (q->retry_ms * 2 > 200 ? 200 : q->retry_ms * 2) : 5;
    q->retry_at = now + q->retry_ms;
}

/* ---- sending ---- */

static int send_deliver(lt_broker *b, lt_sub *s, uint64_t seq, uint32_t count, const uint8_t *env,
                        size_t len, bool replay, const lt_store_entry *e)
{
    Lienthong__V1__Deliver d = LIENTHONG__V1__DELIVER__INIT;
    d.hops = (char **)e->hops; /* the hops it arrived with, for a link forwarding it further */
    d.n_hops = e->nhops;
    d.queue = s->q->cfg->name;
    d.seq = seq;
    d.delivery_count = count;
    d.envelope.data = (uint8_t *)env;
    d.envelope.len = len;
    d.replay = replay;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_DELIVER;
    f.deliver = &d;
    return lt_fe_send(b, s->peer->id, s->peer->id_len, &f);
}

/* Next consumer (not replay) with credit, round robin. */
static lt_sub *next_sub(lt_queue *q)
{
    if (!q->subs)
        return NULL;
    lt_sub *start = q->rr ? q->rr : q->subs;
    lt_sub *s = start;
    do {
        lt_sub *nx = s->qnext ? s->qnext : q->subs;
        if (!s->replay && s->credit > 0) {
            q->rr = nx;
            return s;
        }
        s = nx;
    } while (s != start);
    return NULL;
}

static uint64_t total_credit(const lt_queue *q)
{
    uint64_t c = 0;
    for (const lt_sub *s = q->subs; s; s = s->qnext)
        if (!s->replay)
            c += s->credit;
    return c;
}

/* A send failed for s's peer. Its connection gone, it gets nothing more; its session ends
 * once the frames it sent before (its last acks and naks) are read (lt_fe_peer_close). */
static void after_send_error(lt_broker *b, lt_peer *p, int err)
{
    if (err == EHOSTUNREACH)
        lt_fe_peer_close(b, p);
    else if (err != EAGAIN) /* EAGAIN: send_stalled retries, and says so once */
        lt_log(LT_LOG_WARN, "delivery to %s stalled: %s", p->agency, strerror(err));
}

/* ---- deliveries wait for their count to be durable ----
 *
 * A delivery leaves only once its delivery count is in the store: the pump picks what to
 * send (PICKED in the state machine, the consumer's credit taken), and posts one DELIVER
 * job per consumer to the committer, which writes each entry's count + 1 in its batch. When
 * the job comes back after the fsync, the frames go out (lt_dlv_on_job_done). So a record
 * whose delivery kills the broker has its count raised each time, and after max_deliver
 * such crashes it is dead-lettered instead of delivered (visit_new). The price: one small
 * write per delivery in the group commit, and a delivery leaves one commit later. */

typedef struct plan {
    lt_broker *b;
    lt_queue *q;
    lt_job **jobs; /* one per consumer of this pump */
    lt_sub **subs;
    size_t n, cap;
    opbuf ops;     /* dead letters found on the way */
} plan;

static lt_job *job_of(plan *pl, lt_sub *s)
{
    for (size_t i = 0; i < pl->n; i++)
        if (pl->subs[i] == s)
            return pl->jobs[i];
    if (pl->n == pl->cap) {
        size_t ncap = pl->cap ? pl->cap * 2 : 4;
        lt_job **nj = realloc(pl->jobs, ncap * sizeof *nj);
        if (nj)
            pl->jobs = nj;
        lt_sub **ns = realloc(pl->subs, ncap * sizeof *ns);
        if (ns)
            pl->subs = ns;
        if (!nj || !ns)
            return NULL;
        pl->cap = ncap;
    }
    lt_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->kind = LT_OP_DELIVER;
    j->qid = pl->q->qid;
    j->peer_len = s->peer->id_len;
    memcpy(j->peer, s->peer->id, s->peer->id_len);
    j->conn = s->peer->conn;
    pl->jobs[pl->n] = j;
    pl->subs[pl->n] = s;
    pl->n++;
    return j;
}

/* Plan delivery number count of seq (PICKED) to s. False: no memory (the caller unpicks). */
static bool plan_add(plan *pl, lt_sub *s, uint64_t seq, uint32_t count)
{
    lt_job *j = job_of(pl, s);
    if (!j)
        return false;
    if (j->n == j->cap) {
        size_t ncap = j->cap ? j->cap * 2 : 64;
        uint64_t *ns = realloc(j->seqs, ncap * sizeof *ns);
        if (ns)
            j->seqs = ns;
        uint32_t *nc = realloc(j->counts, ncap * sizeof *nc);
        if (nc)
            j->counts = nc;
        bool *no = realloc(j->ok, ncap * sizeof *no);
        if (no)
            j->ok = no;
        if (!ns || !nc || !no)
            return false;
        j->cap = ncap;
    }
    j->seqs[j->n] = seq;
    j->counts[j->n] = count;
    j->ok[j->n] = false;
    j->n++;
    s->credit--;
    return true;
}

static void job_free(lt_job *j)
{
    free(j->seqs);
    free(j->ok);
    free(j->qids);
    free(j->counts);
    free(j);
}

/* Hand the planned jobs to the committer (or, without memory, put their entries back). */
static void plan_post(plan *pl)
{
    ops_flush(&pl->ops);
    for (size_t i = 0; i < pl->n; i++) {
        lt_job *j = pl->jobs[i];
        if (j->n == 0) {
            job_free(j);
            continue;
        }
        lt_op o = {.kind = LT_OP_DELIVER, .qid = j->qid, .job = j};
        if (lt_commit_post(pl->b, &o, 1) != LT_OK) {
            for (size_t k = 0; k < j->n; k++)
                lt_dq_unpick(&pl->q->dq, j->seqs[k]);
            pl->subs[i]->credit += (uint32_t)j->n;
            job_free(j);
        }
    }
    free(pl->jobs);
    free(pl->subs);
    pl->jobs = NULL;
    pl->subs = NULL;
    pl->n = pl->cap = 0;
}

typedef struct visit_ctx {
    lt_broker *b;
    lt_queue *q;
    lt_sub *sub; /* fixed target (replay, sending) */
    plan *pl;
    int64_t now;
    size_t visited, sent;
    bool stopped;
    int err;
    lt_peer *err_peer;
} visit_ctx;

static int visit_new(void *arg, const lt_store_entry *e)
{
    visit_ctx *v = arg;
    lt_queue *q = v->q;
    v->visited++;
    if (lt_store_entry_is_scheduled(e)) {
        /* the schedule hands it back when due (lt_dlv_on_due): no memory meanwhile */
        (void)lt_dq_pass(&q->dq, e->seq);
        return 0;
    }
    uint32_t max = q->dq.cfg.max_deliver;
    if (max && e->delivery_count >= max) {
        /* delivered max_deliver times without an ack or a nak: the broker went down during
         * those deliveries (a crash, or a record that causes one). Never again. */
        lt_op op = {.kind = LT_OP_DEAD, .qid = q->qid, .seq = e->seq, .count = e->delivery_count};
        op.reason = dead_reason(max, "no ack: the broker restarted during its deliveries",
                                NULL);
        ops_add(&v->pl->ops, &op);
        (void)lt_dq_pass(&q->dq, e->seq);
        q->dlq_moves++;
        lt_metrics_on_dlq_move(v->b->metrics, q->mslot);
        lt_log(LT_LOG_WARN,
               "queue %s: seq %" PRIu64 " dead-lettered: delivered %u times without an ack "
               "while the broker restarted",
               q->cfg->name, e->seq, e->delivery_count);
        return 0;
    }
    if (e->not_before_ms > v->now) {
        if (lt_dq_defer_new(&q->dq, e->seq, e->delivery_count, e->not_before_ms) != LT_OK) {
            v->stopped = true;
            return 1;
        }
        return 0;
    }
    lt_sub *s = next_sub(q);
    if (!s) {
        v->stopped = true;
        return 1;
    }
    if (lt_dq_pick_new(&q->dq, e->seq, e->delivery_count) != LT_OK) {
        v->stopped = true; /* no memory: it stays pending past the cursor, read again later */
        return 1;
    }
    if (!plan_add(v->pl, s, e->seq, e->delivery_count + 1)) {
        lt_dq_unpick(&q->dq, e->seq);
        v->stopped = true;
        return 1;
    }
    v->sent++;
    return 0;
}

static int visit_replay(void *arg, const lt_store_entry *e)
{
    visit_ctx *v = arg;
    lt_sub *s = v->sub;
    v->visited++;
    uint32_t count = e->delivery_count > 0 ? e->delivery_count : 1;
    int err = send_deliver(v->b, s, e->seq, count, e->env, e->env_len, true, e);
    if (err) {
        v->err = err;
        v->err_peer = s->peer;
        v->stopped = true;
        return 1;
    }
    s->replay_next = e->seq + 1;
    s->credit--;
    v->sent++;
    return s->credit == 0 ? 1 : 0;
}

/* Stream retained history to a replay subscription while it has credit. */
static void pump_replay(lt_broker *b, lt_sub *s)
{
    for (unsigned guard = 0; guard < PUMP_GUARD / READ_CHUNK && s->credit > 0; guard++) {
        size_t max = s->credit < READ_CHUNK ? s->credit : READ_CHUNK;
        visit_ctx v = {.b = b, .q = s->q, .sub = s};
        lt_why why = {{0}};
        lt_err e =
            lt_store_replay(b->store, s->q->qid, s->replay_next, max, visit_replay, &v, NULL, &why);
        if (e != LT_OK) {
            lt_log(LT_LOG_ERROR, "replay of %s failed: %s", s->q->cfg->name, why.msg);
            return;
        }
        if (v.err) {
            after_send_error(b, v.err_peer, v.err);
            return;
        }
        if (v.visited < max) {
            s->replay_live = true;
            return;
        }
    }
}

/* Plan what q can send now (see "deliveries wait for their count to be durable"). */
static void pump(lt_broker *b, lt_queue *q)
{
    if (b->phase != LT_PHASE_RUNNING)
        return;
    int64_t now = lt_env_now_ms();
    plan pl = {.b = b, .q = q, .ops = {.b = b}};
    for (unsigned guard = 0; guard < PUMP_GUARD; guard++) {
        lt_sub *s = next_sub(q);
        if (!s)
            break;
        uint64_t seq = 0;
        uint32_t count = 0;
        size_t room = 0;
        lt_dq_pick_kind k = lt_dq_pick(&q->dq, now, &seq, &count, &room);
        if (k == LT_DQ_NONE)
            break;
        if (k == LT_DQ_REDELIVER) {
            if (!plan_add(&pl, s, seq, count + 1)) {
                lt_dq_unpick(&q->dq, seq);
                break;
            }
            continue;
        }
        /* LT_DQ_NEW */
        if (!q->more)
            break;
        uint64_t credit = total_credit(q);
        size_t max = room;
        if (max > credit)
            max = (size_t)credit;
        if (max > READ_CHUNK)
            max = READ_CHUNK;
        visit_ctx v = {.b = b, .q = q, .now = now, .pl = &pl};
        lt_why why = {{0}};
        lt_err e =
            lt_store_pending_keys(b->store, q->qid, q->dq.cursor, max, visit_new, &v, NULL, &why);
        if (e != LT_OK) {
            lt_log(LT_LOG_ERROR, "reading queue %s failed: %s", q->cfg->name, why.msg);
            break;
        }
        if (!v.stopped && v.visited < max)
            q->more = false; /* caught up with the store */
        if (v.visited == 0 || v.stopped)
            break;
    }
    plan_post(&pl);
    for (lt_sub *s = q->subs, *nx; s; s = nx) {
        nx = s->qnext;
        if (s->replay && s->credit > 0)
            pump_replay(b, s); /* may drop s; nx belongs to another peer (one sub per
                                * peer and queue), so it stays valid */
    }
    rearm(b, q);
}

/* deliver_done's reading of a job: the entries to send, read in one store transaction. */
typedef struct send_ctx {
    lt_broker *b;
    lt_queue *q;
    lt_sub *s;
    lt_job *j;
    size_t *idx;   /* job indexes of seqs[] */
    uint8_t *done; /* per job index: 1 once the store visited it and it was sent or failed */
    size_t nwant;  /* entries of idx */
    size_t next;   /* the next of idx the store may visit */
    int64_t now;
    int err; /* a send failed: the rest go back to the queue */
    size_t unsent; /* entries whose credit the consumer gets back */
    struct dbatch *db; /* the consumer takes Delivers frames: what is encoded, not yet sent */
} send_ctx;

/* ---- Delivers frames (Subscribe.batched_deliver): one job's deliveries to a consumer,
 * encoded as the store visits them and sent DELIVERS_BYTES at a time without a copy of the
 * frame (lt_fe_send_owned). A delivery counts as sent (lt_dq_sent, metrics) once its frame
 * is; a frame that cannot be sent puts all of its deliveries back. ---- */

#define DELIVERS_BYTES (256u << 10)
#define DELIVERS_HEAD 16u /* room before the deliveries for the Frame's key and length */
#define DELIVERS_KEY ((22u << 3) | 2u) /* Frame.delivers */

typedef struct dbatch {
    uint8_t *buf;    /* DELIVERS_HEAD bytes, then each Deliver as a Delivers.delivers field */
    size_t len, cap; /* bytes after the head; room after the head */
    size_t n, ncap;
    uint64_t *seqs;
    uint32_t *counts;
} dbatch;

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* Send what db holds to c's consumer; its deliveries are then sent, or back in the queue
 * (c->err set). 0 or the send's errno. */
static int dbatch_flush(send_ctx *c, dbatch *db)
{
    if (db->n == 0)
        return 0;
    uint8_t head[DELIVERS_HEAD];
    size_t hl = put_varint(head, DELIVERS_KEY);
    hl += put_varint(head + hl, db->len);
    uint8_t *frame = db->buf + DELIVERS_HEAD - hl;
    memcpy(frame, head, hl);
    int err =
        lt_fe_send_owned(c->b, c->s->peer->id, c->s->peer->id_len, frame, hl + db->len, db->buf);
    db->buf = NULL; /* the frontend's now */
    db->len = db->cap = 0;
    lt_queue *q = c->q;
    for (size_t k = 0; k < db->n; k++) {
        if (err) {
            lt_dq_unpick(&q->dq, db->seqs[k]);
            c->unsent++;
            continue;
        }
        lt_dq_sent(&q->dq, db->seqs[k], c->now);
        if (db->counts[k] > 1)
            q->redeliveries++;
        lt_metrics_on_deliver(c->b->metrics, q->mslot, db->counts[k] > 1);
    }
    db->n = 0;
    if (err)
        c->err = err;
    return err;
}

/* Encode the delivery of entry e (count) into db, flushing when it is full. 0 or errno (the
 * delivery and the frame's others are then back in the queue). */
static int dbatch_add(send_ctx *c, dbatch *db, uint32_t count, const lt_store_entry *e)
{
    Lienthong__V1__Deliver d = LIENTHONG__V1__DELIVER__INIT;
    d.hops = (char **)e->hops;
    d.n_hops = e->nhops;
    d.queue = c->q->cfg->name;
    d.seq = e->seq;
    d.delivery_count = count;
    d.envelope.data = (uint8_t *)e->env;
    d.envelope.len = e->env_len;
    size_t sz = lienthong__v1__deliver__get_packed_size(&d), need = 1 + 10 + sz;
    if (db->len + need > db->cap || db->n == db->ncap) {
        size_t cap = db->cap ? db->cap : DELIVERS_BYTES / 4;
        while (cap < db->len + need)
            cap *= 2;
        size_t ncap = db->ncap ? db->ncap * 2 : 256;
        uint8_t *nb = realloc(db->buf, DELIVERS_HEAD + cap);
        if (nb)
            db->buf = nb;
        uint64_t *ns = db->n == db->ncap ? realloc(db->seqs, ncap * sizeof *ns) : db->seqs;
        if (ns)
            db->seqs = ns;
        uint32_t *nc = db->n == db->ncap ? realloc(db->counts, ncap * sizeof *nc) : db->counts;
        if (nc)
            db->counts = nc;
        if (!nb || !ns || !nc) {
            lt_dq_unpick(&c->q->dq, e->seq);
            c->unsent++;
            dbatch_flush(c, db); /* what is encoded still goes */
            c->err = ENOMEM;
            return ENOMEM;
        }
        db->cap = cap;
        if (db->n == db->ncap)
            db->ncap = ncap;
    }
    uint8_t *at = db->buf + DELIVERS_HEAD + db->len;
    at[0] = (1u << 3) | 2u; /* Delivers.delivers */
    size_t hl = 1 + put_varint(at + 1, sz);
    lienthong__v1__deliver__pack(&d, at + hl);
    db->len += hl + sz;
    db->seqs[db->n] = e->seq;
    db->counts[db->n++] = count;
    return db->len >= DELIVERS_BYTES ? dbatch_flush(c, db) : 0;
}

static int visit_send(void *arg, const lt_store_entry *e)
{
    send_ctx *c = arg;
    lt_job *j = c->j;
    size_t i = SIZE_MAX;
    while (c->next < c->nwant) { /* the store visits in the order asked, skipping the missing */
        size_t k = c->idx[c->next++];
        if (j->seqs[k] == e->seq) {
            i = k;
            break;
        }
    }
    if (i == SIZE_MAX || e->state != LT_STORE_PENDING)
        return 0; /* acked meanwhile (history, or dead): left for the sweep below */
    lt_queue *q = c->q;
    if (c->db) {
        c->done[i] = 1;
        return dbatch_add(c, c->db, j->counts[i], e) ? 1 : 0;
    }
    int err = send_deliver(c->b, c->s, e->seq, j->counts[i], e->env, e->env_len, false, e);
    c->done[i] = 1;
    if (err) {
        c->err = err;
        lt_dq_unpick(&q->dq, e->seq);
        c->unsent++;
        return 1;
    }
    lt_dq_sent(&q->dq, e->seq, c->now);
    if (j->counts[i] > 1)
        q->redeliveries++;
    lt_metrics_on_deliver(c->b->metrics, q->mslot, j->counts[i] > 1);
    return 0;
}

/* A DELIVER job is back: its counts are durable (or the commit failed). Send each entry
 * still picked to the consumer that was chosen for it, if its session still holds the
 * subscription; otherwise the entry goes back to the queue. */
static void deliver_done(lt_broker *b, lt_job *j)
{
    lt_queue *q = queue_by_qid(b, j->qid);
    if (!q)
        return;
    lt_fe_sessions_sync(b);
    lt_peer *p = lt_fe_peer_find(b, j->peer, j->peer_len);
    lt_sub *s = (p && p->conn == j->conn && !p->closed) ? sub_of(p, q) : NULL;
    send_ctx c = {.b = b, .q = q, .s = s, .j = j, .now = lt_env_now_ms()};
    uint64_t *want = malloc(j->n * sizeof *want);
    c.idx = malloc(j->n * sizeof *c.idx);
    c.done = calloc(j->n, 1);
    bool mem = want && c.idx && c.done;
    size_t nwant = 0;
    for (size_t i = 0; i < j->n; i++) {
        uint64_t seq = j->seqs[i];
        if (lt_dq_state_of(&q->dq, seq, NULL) != LT_DQ_PICKED) {
            c.unsent++; /* acked or dropped meanwhile (a late ack of an earlier delivery) */
        } else if (j->err != LT_OK || !j->ok[i] || !s || !mem) {
            if (j->ok[i] || j->err != LT_OK || !mem)
                lt_dq_unpick(&q->dq, seq);
            else
                lt_dq_forget(&q->dq, seq); /* no longer pending in the store */
            c.unsent++;
        } else {
            want[nwant] = seq; /* done[] is read only for these */
            c.idx[nwant++] = i;
        }
    }
    c.nwant = nwant;
    dbatch db = {0};
    c.db = s && s->batched ? &db : NULL;
    lt_why why = {{0}};
    if (nwant > 0 &&
        lt_store_get_many(b->store, q->qid, want, nwant, visit_send, &c, &why) != LT_OK)
        lt_log(LT_LOG_ERROR, "queue %s: reading %zu deliveries failed: %s", q->cfg->name, nwant,
               why.msg);
    if (c.db && !c.err)
        dbatch_flush(&c, &db);
    free(db.buf);
    free(db.seqs);
    free(db.counts);
    /* What the store did not visit: after a failed send, back to the queue; otherwise gone
     * from the store (acked, dropped) or unreadable: forgotten. */
    for (size_t w = 0; w < nwant; w++) {
        size_t i = c.idx[w];
        if (c.done[i])
            continue;
        if (c.err && w >= c.next)
            lt_dq_unpick(&q->dq, j->seqs[i]);
        else
            lt_dq_forget(&q->dq, j->seqs[i]);
        c.unsent++;
    }
    free(want);
    free(c.idx);
    free(c.done);
    int err = c.err;
    int64_t now = c.now;
    if (s && c.unsent > 0 && err != EHOSTUNREACH)
        s->credit += (uint32_t)c.unsent; /* it never received them */
    if (j->err != LT_OK) {
        /* the store could not record the counts: nothing was sent; try again in a second */
        lt_log(LT_LOG_ERROR, "queue %s: delivery counts not stored (%s): %s", q->cfg->name,
               lt_err_name(j->err), j->why.msg);
        q->retry_at = now + 1000;
    } else if (err == EAGAIN) {
        send_stalled(q, now); /* the retry timer pumps again */
    } else {
        if (err)
            after_send_error(b, s->peer, err);
        if (c.unsent > 0)
            mark_dirty(b, q); /* what went back, or the credit, serves another delivery */
    }
    if (!err && j->err == LT_OK)
        q->retry_ms = 0;
    rearm(b, q);
}

void lt_dlv_flush(lt_broker *b)
{
    if (b->dirty)
        lt_fe_sessions_sync(b); /* deliver to no session whose connection closed */
    while (b->dirty) {
        lt_queue *q = b->dirty;
        b->dirty = q->dnext;
        q->dirty = false;
        q->dnext = NULL;
        pump(b, q);
    }
}

/* ---- expiry ---- */

typedef struct expire_ctx {
    lt_broker *b;
    lt_queue *q;
    opbuf ops;
} expire_ctx;

static char *dead_reason(uint32_t max_deliver, const char *last, const char *detail)
{
    char buf[LT_STORE_REASON_MAX + 1];
    if (detail && detail[0])
        snprintf(buf, sizeof buf, "max_deliver %u reached; last: %s: %s", max_deliver, last,
                 detail);
    else
        snprintf(buf, sizeof buf, "max_deliver %u reached; last: %s", max_deliver, last);
    return strdup(buf);
}

static void on_expired(void *arg, lt_dq_verdict v, uint64_t seq, uint32_t count, int64_t due)
{
    expire_ctx *x = arg;
    lt_queue *q = x->q;
    lt_op op = {.qid = q->qid, .seq = seq, .count = count};
    if (v == LT_DQ_DEAD) {
        op.kind = LT_OP_DEAD;
        op.reason = dead_reason(q->cfg->max_deliver, "ack_wait expired", NULL);
        q->dlq_moves++;
        lt_metrics_on_dlq_move(x->b->metrics, q->mslot);
        lt_log(LT_LOG_INFO,
                      "queue %s: seq %" PRIu64 " dead-lettered after %u deliveries "
                      "(ack_wait expired)",
                      q->cfg->name, seq, count);
    } else {
        op.kind = LT_OP_NAK;
        op.when = due;
    }
    ops_add(&x->ops, &op);
}

static void on_timer(uv_timer_t *t)
{
    lt_queue *q = t->data;
    lt_broker *b = q->timer.loop->data;
    q->timer_at = INT64_MAX;
    q->retry_at = INT64_MAX;
    expire_ctx x = {.b = b, .q = q, .ops = {.b = b}};
    lt_dq_expire(&q->dq, lt_env_now_ms(), on_expired, &x);
    ops_flush(&x.ops);
    pump(b, q);
    rearm(b, q);
}

/* ---- consumer frames ---- */

static lt_sub *sub_of(lt_peer *p, lt_queue *q)
{
    for (lt_sub *s = p->subs; s; s = s->pnext)
        if (s->q == q)
            return s;
    return NULL;
}

static void nack0(lt_broker *b, lt_peer *p, lt_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void nack0(lt_broker *b, lt_peer *p, lt_err code, const char *fmt, ...)
{
    char reason[LT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    lt_fe_send_nack(b, p->id, p->id_len, 0, code, reason);
}

/* The queue named name if p's agency may consume from it; else NACK and NULL. */
static lt_queue *consumable(lt_broker *b, lt_peer *p, const char *name, const char *what)
{
    lt_queue *q = lt_dlv_queue_by_name(b, name);
    if (!q) {
        nack0(b, p, LT_ENOQUEUE, "%s: no queue named '%s'", what, name ? name : "");
        return NULL;
    }
    lt_why why = {{0}};
    const lt_acl *acl = lt_acl_cell_hold(&b->acl);
    lt_err e = lt_acl_check_consume(acl, p->agency, q->cfg->name, &why);
    lt_acl_cell_rele(&b->acl);
    if (e != LT_OK) {
        nack0(b, p, e, "%s: %s", what, why.msg);
        return NULL;
    }
    return q;
}

static void on_subscribe(lt_broker *b, lt_peer *p, const Lienthong__V1__Subscribe *m)
{
    lt_queue *q = consumable(b, p, m->queue, "SUBSCRIBE");
    if (!q)
        return;
    bool replay = m->replay_from_seq != 0 || m->replay_from_unix_ms != 0;
    uint64_t from = m->replay_from_seq;
    if (replay && from == 0) {
        lt_why why = {{0}};
        if (lt_store_seq_at(b->store, q->qid, m->replay_from_unix_ms, &from, &why) != LT_OK) {
            nack0(b, p, LT_ESTORE, "SUBSCRIBE: %s", why.msg);
            return;
        }
    }
    lt_sub *s = sub_of(p, q);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            nack0(b, p, LT_ESTORE, "SUBSCRIBE: broker out of memory");
            return;
        }
        s->peer = p;
        s->q = q;
        s->qnext = q->subs;
        if (q->subs)
            q->subs->qprev = s;
        q->subs = s;
        q->nsubs++;
        s->pnext = p->subs;
        p->subs = s;
    }
    s->credit = m->credit;
    s->replay = replay;
    s->batched = m->batched_deliver != 0;
    s->replay_live = false;
    s->replay_next = from;
    /* the connection's number, never its routing id (docs/security.md) */
    if (replay)
        lt_log(LT_LOG_INFO, "%s (connection #%llu) replays %s from seq %" PRIu64 ", credit %u",
               p->agency, (unsigned long long)p->conn, q->cfg->name, from, m->credit);
    else
        lt_log(LT_LOG_INFO, "%s (connection #%llu) subscribed to %s, credit %u", p->agency,
               (unsigned long long)p->conn, q->cfg->name, m->credit);
    pump(b, q);
}

static void on_credit(lt_broker *b, lt_peer *p, const Lienthong__V1__Credit *m)
{
    lt_queue *q = lt_dlv_queue_by_name(b, m->queue);
    lt_sub *s = q ? sub_of(p, q) : NULL;
    if (!s) {
        nack0(b, p, LT_ENOQUEUE, "CREDIT: not subscribed to '%s'", m->queue ? m->queue : "");
        return;
    }
    uint64_t c = (uint64_t)s->credit + m->credit;
    s->credit = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    pump(b, q);
}

static void on_ack(lt_broker *b, lt_peer *p, const Lienthong__V1__ConsumerAck *m)
{
    lt_queue *q = consumable(b, p, m->queue, "CONSUMER_ACK");
    if (!q)
        return;
    opbuf o = {.b = b};
    int64_t now = lt_env_now_ms();
    for (size_t i = 0; i < m->n_seqs; i++) {
        if (!lt_dq_ack(&q->dq, m->seqs[i]))
            continue; /* not delivered (any more): stale or bogus */
        lt_op op = {.kind = LT_OP_ACK, .qid = q->qid, .seq = m->seqs[i], .when = now};
        ops_add(&o, &op);
        lt_metrics_on_consumer_ack(b->metrics, q->mslot);
    }
    ops_flush(&o);
    pump(b, q);
}

static void on_nak(lt_broker *b, lt_peer *p, const Lienthong__V1__ConsumerNak *m)
{
    lt_queue *q = consumable(b, p, m->queue, "CONSUMER_NAK");
    if (!q)
        return;
    uint32_t count = 0;
    int64_t due = 0;
    int64_t now = lt_env_now_ms();
    lt_dq_verdict v = lt_dq_nak(&q->dq, m->seq, m->delay_ms, now, &count, &due);
    if (v == LT_DQ_IGNORED)
        return;
    lt_metrics_on_consumer_nak(b->metrics, q->mslot);
    lt_op op = {.qid = q->qid, .seq = m->seq, .count = count};
    if (v == LT_DQ_DEAD) {
        op.kind = LT_OP_DEAD;
        op.reason = dead_reason(q->cfg->max_deliver, "nak", m->reason);
        q->dlq_moves++;
        lt_metrics_on_dlq_move(b->metrics, q->mslot);
        lt_log(LT_LOG_INFO,
                      "queue %s: seq %" PRIu64 " dead-lettered after %u deliveries "
                      "(nak: %s)",
                      q->cfg->name, m->seq, count, m->reason ? m->reason : "");
    } else {
        op.kind = LT_OP_NAK;
        op.when = due;
    }
    if (lt_commit_post(b, &op, 1) != LT_OK)
        free(op.reason);
    pump(b, q);
}

void lt_dlv_on_session_end(lt_broker *b, lt_peer *p)
{
    while (p->subs)
        lt_dlv_drop_sub(b, p->subs); /* unlinks itself from p->subs */
}

void lt_dlv_drop_sub(lt_broker *b, lt_sub *s)
{
    (void)b;
    lt_queue *q = s->q;
    if (s->qprev)
        s->qprev->qnext = s->qnext;
    else
        q->subs = s->qnext;
    if (s->qnext)
        s->qnext->qprev = s->qprev;
    if (q->rr == s)
        q->rr = s->qnext;
    q->nsubs--;
    lt_sub **pp = &s->peer->subs;
    while (*pp && *pp != s)
        pp = &(*pp)->pnext;
    if (*pp)
        *pp = s->pnext;
    s->q = NULL;
    free(s);
}

/* ---- admin ---- */

static void hexid(const uint8_t *id, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static json_object *b64(const uint8_t *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    json_object *o = json_object_new_string(s);
    free(s);
    return o;
}

/* One dead letter (or any entry) as JSON. Both the admin HTTP API's names (msg_id,
 * deliveries, payload_b64) and the CLI's (message_id, delivery_count, envelope) are
 * written, so `lienthong dlq` and the dashboard read the same answer. payload: add the
 * envelope, base64. */
static json_object *entry_json(const lt_store_entry *e, bool payload)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    char id[33];
    hexid(e->id, id);
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
    json_object_object_add(o, "msg_id", json_object_new_string(id));
    json_object_object_add(o, "message_id", json_object_new_string(id));
    lt_env *env = NULL;
    if (lt_env_decode(e->env, e->env_len, NULL, &env, NULL) == LT_OK) {
        json_object_object_add(o, "topic", json_object_new_string(lt_env_topic(env)));
        json_object_object_add(o, "source", json_object_new_string(lt_env_source(env)));
        json_object_object_add(o, "record_type", json_object_new_string(lt_env_record_type(env)));
        lt_env_destroy(&env);
    }
    if (e->state == LT_STORE_DEAD)
        json_object_object_add(o, "code", json_object_new_string("MAX_DELIVER"));
    json_object_object_add(o, "reason", json_object_new_string(e->reason ? e->reason : ""));
    json_object_object_add(o, "deliveries", json_object_new_int64(e->delivery_count));
    json_object_object_add(o, "delivery_count", json_object_new_int64(e->delivery_count));
    json_object_object_add(
        o, "time_ms",
        json_object_new_int64(e->state == LT_STORE_DEAD ? e->moved_ms : e->stored_ms));
    json_object_object_add(o, "stored_ms", json_object_new_int64(e->stored_ms));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)e->env_len));
    if (payload) {
        json_object_object_add(o, "payload_b64", b64(e->env, e->env_len));
        json_object_object_add(o, "envelope", b64(e->env, e->env_len));
    }
    return o;
}

typedef struct list_ctx {
    json_object *arr;
    bool payload;
    uint64_t *seqs; /* collecting seqs instead */
    size_t n, cap;
} list_ctx;

static int visit_list(void *arg, const lt_store_entry *e)
{
    list_ctx *l = arg;
    if (l->seqs) {
        if (l->n < l->cap)
            l->seqs[l->n++] = e->seq;
        return l->n < l->cap ? 0 : 1;
    }
    json_object *o = entry_json(e, l->payload);
    if (o)
        json_object_array_add(l->arr, o);
    return 0;
}

static int visit_one(void *arg, const lt_store_entry *e)
{
    list_ctx *l = arg;
    if (e->state == LT_STORE_DEAD) {
        json_object *o = entry_json(e, l->payload);
        if (o)
            json_object_array_add(l->arr, o);
    }
    return 1;
}

static void admin_reply(lt_broker *b, const uint8_t *peer, size_t peer_len, uint64_t tag,
                        lt_err code, const char *reason, json_object *json)
{
    Lienthong__V1__AdminReply r = LIENTHONG__V1__ADMIN_REPLY__INIT;
    r.tag = tag;
    r.code = code == LT_OK ? LIENTHONG__V1__NACK_CODE__NACK_UNSPECIFIED : lt_fe_nack_code(code);
    r.reason = (char *)(reason ? reason : "");
    r.json = (char *)(json ? json_object_to_json_string_ext(json, JSON_C_TO_STRING_PLAIN) : "");
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_ADMIN_REPLY;
    f.admin_reply = &r;
    lt_fe_send(b, peer, peer_len, &f);
}

static json_object *queue_json(lt_broker *b, lt_queue *q)
{
    lt_store_queue_stats st;
    memset(&st, 0, sizeof st);
    lt_why why = {{0}};
    lt_store_queue_stats_get(b->store, q->qid, &st, &why);
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    int64_t now = lt_env_now_ms();
    json_object_object_add(o, "name", json_object_new_string(q->cfg->name));
    json_object_object_add(o, "owner", json_object_new_string(q->cfg->owner));
    json_object_object_add(o, "depth", json_object_new_int64((int64_t)st.depth));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)st.bytes));
    json_object_object_add(o, "unacked", json_object_new_int64((int64_t)lt_dq_inflight(&q->dq)));
    json_object_object_add(o, "waiting", json_object_new_int64((int64_t)lt_dq_waiting(&q->dq)));
    json_object_object_add(o, "oldest_ms", json_object_new_int64(st.oldest_ms));
    json_object_object_add(o, "oldest_age_ms",
                           json_object_new_int64(st.oldest_ms ? now - st.oldest_ms : 0));
    json_object_object_add(o, "dlq_depth", json_object_new_int64((int64_t)st.dlq_depth));
    json_object_object_add(o, "first_seq", json_object_new_int64((int64_t)st.first_seq));
    json_object_object_add(o, "last_seq", json_object_new_int64((int64_t)st.last_seq));
    json_object_object_add(o, "consumers", json_object_new_int64((int64_t)q->nsubs));
    json_object_object_add(o, "redeliveries", json_object_new_int64((int64_t)q->redeliveries));
    json_object_object_add(o, "dlq_moves", json_object_new_int64((int64_t)q->dlq_moves));
    return o;
}

static void on_admin(lt_broker *b, lt_peer *p, const Lienthong__V1__AdminRequest *m)
{
    const char *op = m->op ? m->op : "";
    const char *qname = m->queue && m->queue[0] ? m->queue : NULL;
    lt_why why = {{0}};
    json_object *out = NULL;
    lt_err e = LT_OK;
    const lt_acl *acl = lt_acl_cell_hold(&b->acl);
    bool admin = lt_acl_is_admin(acl, p->agency);
    lt_queue *q = NULL;
    if (strcmp(op, "queues") != 0 || qname) {
        q = lt_dlv_queue_by_name(b, qname);
        if (!q) {
            e = qname ? lt_fail(&why, LT_ENOQUEUE, "no queue named '%s'", qname)
                      : lt_fail(&why, LT_EINVAL, "%s needs a queue", op);
        } else {
            e = lt_acl_check_admin(acl, p->agency, q->cfg->name, &why);
        }
    }
    lt_acl_cell_rele(&b->acl);
    if (e != LT_OK)
        goto reply;
    size_t limit = m->limit ? m->limit : ADMIN_LIMIT_DEFAULT;
    if (limit > ADMIN_LIMIT_MAX)
        limit = ADMIN_LIMIT_MAX;

    if (strcmp(op, "queues") == 0) {
        out = json_object_new_array();
        for (size_t i = 0; i < b->nqueues; i++) {
            lt_queue *x = &b->queues[i];
            if (q && x != q)
                continue;
            if (!admin && strcmp(x->cfg->owner, p->agency) != 0)
                continue;
            json_object *o = queue_json(b, x);
            if (o)
                json_object_array_add(out, o);
        }
    } else if (strcmp(op, "dlq.ls") == 0 || strcmp(op, "dlq.show") == 0) {
        bool show = op[4] == 's' && op[5] == 'h';
        list_ctx l = {.arr = json_object_new_array(), .payload = show};
        out = l.arr;
        if (m->n_seqs > 0) {
            for (size_t i = 0; i < m->n_seqs && i < ADMIN_LIMIT_MAX; i++)
                lt_store_get(b->store, q->qid, m->seqs[i], visit_one, &l, &why);
        } else {
            e = lt_store_dlq_list(b->store, q->qid, 0, limit, visit_list, &l, NULL, &why);
        }
    } else if (strcmp(op, "dlq.requeue") == 0 || strcmp(op, "dlq.drop") == 0) {
        lt_job *j = calloc(1, sizeof *j);
        size_t n = m->n_seqs ? m->n_seqs : ADMIN_ALL_MAX;
        if (j) {
            j->seqs = calloc(n, sizeof *j->seqs);
            j->ok = calloc(n, sizeof *j->ok);
        }
        if (!j || !j->seqs || !j->ok) {
            if (j) {
                free(j->seqs);
                free(j->ok);
            }
            free(j);
            e = lt_fail(&why, LT_ESTORE, "broker out of memory");
            goto reply;
        }
        if (m->n_seqs) {
            memcpy(j->seqs, m->seqs, n * sizeof *j->seqs);
            j->n = n;
        } else {
            list_ctx l = {.seqs = j->seqs, .cap = n};
            e = lt_store_dlq_list(b->store, q->qid, 0, n, visit_list, &l, NULL, &why);
            j->n = l.n;
        }
        j->kind = op[4] == 'r' ? LT_OP_DLQ_REQUEUE : LT_OP_DLQ_DROP;
        j->qid = q->qid;
        j->tag = m->tag;
        j->peer_len = p->id_len;
        memcpy(j->peer, p->id, p->id_len);
        j->conn = p->conn;
        lt_op o = {.kind = j->kind, .qid = q->qid, .job = j};
        if (e == LT_OK && lt_commit_post(b, &o, 1) == LT_OK) {
            lt_log(LT_LOG_INFO, "%s: %s on %s, %zu messages", p->agency, op, q->cfg->name,
                          j->n);
            return; /* answered when committed: lt_dlv_on_job_done */
        }
        if (e == LT_OK)
            e = lt_fail(&why, LT_ESTORE, "broker out of memory");
        free(j->seqs);
        free(j->ok);
        free(j);
    } else {
        e = lt_fail(&why, LT_EINVAL,
                    "unknown admin op '%s' (queues, dlq.ls, dlq.show, dlq.requeue, dlq.drop)", op);
    }
reply:
    admin_reply(b, p->id, p->id_len, m->tag, e, e == LT_OK ? "" : why.msg, e == LT_OK ? out : NULL);
    if (out)
        json_object_put(out);
}

void lt_dlv_on_frame(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f)
{
    switch (f->kind_case) {
    case LIENTHONG__V1__FRAME__KIND_SUBSCRIBE:
        on_subscribe(b, p, f->subscribe);
        break;
    case LIENTHONG__V1__FRAME__KIND_CREDIT:
        on_credit(b, p, f->credit);
        break;
    case LIENTHONG__V1__FRAME__KIND_CONSUMER_ACK:
        on_ack(b, p, f->consumer_ack);
        break;
    case LIENTHONG__V1__FRAME__KIND_CONSUMER_NAK:
        on_nak(b, p, f->consumer_nak);
        break;
    case LIENTHONG__V1__FRAME__KIND_ADMIN:
        on_admin(b, p, f->admin);
        break;
    default:
        break; /* the frontend hands on only these */
    }
}

void lt_dlv_on_job_done(lt_broker *b, lt_job *j)
{
    if (j->kind == LT_OP_DELIVER) {
        deliver_done(b, j);
        job_free(j);
        return;
    }
    lt_queue *q = queue_by_qid(b, j->qid);
    json_object *out = json_object_new_object();
    json_object *missing = json_object_new_array();
    size_t done = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->ok[i]) {
            done++;
            if (j->kind == LT_OP_DLQ_REQUEUE && q)
                lt_dq_add_ready(&q->dq, j->seqs[i], 0);
        } else if (missing) {
            json_object_array_add(missing, json_object_new_int64((int64_t)j->seqs[i]));
        }
    }
    if (out) {
        json_object_object_add(out, "queue", json_object_new_string(q ? q->cfg->name : ""));
        json_object_object_add(out, j->kind == LT_OP_DLQ_REQUEUE ? "requeued" : "dropped",
                               json_object_new_int64((int64_t)done));
        json_object_object_add(out, "not_found", missing);
    } else {
        json_object_put(missing);
    }
    if (q && j->kind == LT_OP_DLQ_REQUEUE && done > 0) {
        q->more = true;
        mark_dirty(b, q);
    }
    /* answer the connection that asked, not whoever holds its routing id now */
    lt_fe_sessions_sync(b);
    lt_peer *p = lt_fe_peer_find(b, j->peer, j->peer_len);
    if (p && p->conn == j->conn)
        admin_reply(b, j->peer, j->peer_len, j->tag, j->err, j->err ? j->why.msg : "",
                    j->err ? NULL : out);
    if (out)
        json_object_put(out);
    free(j->seqs);
    free(j->ok);
    free(j);
}

/* ---- admin HTTP providers and metrics ---- */

void lt_dlv_collect(void *ctx, lt_metrics *m)
{
    lt_broker *b = ctx;
    int64_t now = lt_env_now_ms();
    for (size_t i = 0; i < b->nqueues; i++) {
        lt_queue *q = &b->queues[i];
        lt_store_queue_stats st;
        memset(&st, 0, sizeof st);
        lt_why why = {{0}};
        if (lt_store_queue_stats_get(b->store, q->qid, &st, &why) != LT_OK)
            continue;
        lt_metrics_queue_gauges g = {
            .depth = st.depth,
            .unacked = lt_dq_inflight(&q->dq),
            .bytes = st.bytes,
            .dlq_depth = st.dlq_depth,
            .oldest_age_seconds = st.oldest_ms ? (double)(now - st.oldest_ms) / 1e3 : 0.0,
        };
        lt_metrics_set_queue(m, q->mslot, &g);
    }
}

lt_err lt_dlv_admin_queues(void *ctx, json_object **out)
{
    lt_broker *b = ctx;
    json_object *o = json_object_new_object();
    if (!o)
        return LT_ENOMEM;
    for (size_t i = 0; i < b->nqueues; i++) {
        const lt_bcfg_queue *c = b->queues[i].cfg;
        json_object *x = json_object_new_object();
        if (!x)
            continue;
        json_object_object_add(x, "owner", json_object_new_string(c->owner));
        json_object *bind = json_object_new_array();
        for (size_t k = 0; k < c->nbind; k++)
            json_object_array_add(bind, json_object_new_string(c->bind[k]));
        json_object_object_add(x, "bind", bind);
        json_object_object_add(x, "ack_wait_s", json_object_new_int64(c->ack_wait_s));
        json_object_object_add(x, "max_deliver", json_object_new_int64(c->max_deliver));
        json_object_object_add(x, "max_ack_pending", json_object_new_int64(c->max_ack_pending));
        json_object_object_add(x, "max_depth", json_object_new_int64((int64_t)c->max_depth));
        json_object_object_add(x, "max_bytes", json_object_new_int64((int64_t)c->max_bytes));
        json_object_object_add(x, "retention_s", json_object_new_int64((int64_t)c->retention_s));
        json_object_object_add(x, "consumers", json_object_new_int64((int64_t)b->queues[i].nsubs));
        json_object_object_add(x, "in_flight",
                               json_object_new_int64((int64_t)lt_dq_inflight(&b->queues[i].dq)));
        json_object_object_add(o, c->name, x);
    }
    *out = o;
    return LT_OK;
}

lt_err lt_dlv_admin_dlq(void *ctx, const char *queue, bool payload, size_t limit, json_object **out,
                        lt_why *why)
{
    lt_broker *b = ctx;
    lt_queue *q = lt_dlv_queue_by_name(b, queue);
    if (!q)
        return lt_fail(why, LT_ENOQUEUE, "no queue named '%s'", queue ? queue : "");
    list_ctx l = {.arr = json_object_new_array(), .payload = payload};
    if (!l.arr)
        return LT_ENOMEM;
    lt_err e = lt_store_dlq_list(b->store, q->qid, 0, limit, visit_list, &l, NULL, why);
    if (e != LT_OK) {
        json_object_put(l.arr);
        return e;
    }
    *out = l.arr;
    return LT_OK;
}

/* ---- setup ---- */

lt_err lt_dlv_open(lt_broker *b, lt_why *why)
{
    const lt_broker_cfg *cfg = b->cfg;
    lt_err e = lt_router_new(&b->router);
    if (e != LT_OK)
        return lt_fail(why, e, "no memory for the router");
    b->queues = calloc(cfg->nqueues ? cfg->nqueues : 1, sizeof *b->queues);
    if (!b->queues)
        return lt_fail(why, LT_ENOMEM, "no memory for %zu queues", cfg->nqueues);
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const lt_bcfg_queue *qc = &cfg->queues[i];
        lt_queue *q = &b->queues[i];
        lt_store_queue_limits lim = {
            .max_depth = qc->max_depth,
            .max_bytes = qc->max_bytes,
            .retention_ms = (int64_t)qc->retention_s * 1000,
        };
        lt_why w = {{0}};
        e = lt_store_queue_declare(b->store, qc->name, &lim, &q->qid, &w);
        if (e != LT_OK)
            return lt_fail(why, e, "queue %s: %s", qc->name, w.msg);
        q->cfg = qc;
        lt_dq_cfg dc = dq_cfg_of(qc);
        lt_dq_init(&q->dq, &dc, 0);
        q->more = true;
        q->timer_at = INT64_MAX;
        q->retry_at = INT64_MAX;
        q->mslot = lt_metrics_queue(b->metrics, qc->name);
        if (q->mslot < 0)
            q->mslot = LT_METRICS_QUEUE_OTHER;
        uv_timer_init(&b->loop, &q->timer);
        q->timer.data = q;
        b->nqueues = i + 1;
        for (size_t k = 0; k < qc->nbind; k++) {
            e = lt_router_bind(b->router, qc->bind[k], q->qid, &w);
            if (e != LT_OK)
                return lt_fail(why, e, "queue %s: bind %s: %s", qc->name, qc->bind[k], w.msg);
        }
        if (q->qid >= b->qid_cap) {
            size_t ncap = b->qid_cap ? b->qid_cap : 16;
            while (ncap <= q->qid)
                ncap *= 2;
            lt_queue **nb = realloc(b->by_qid, ncap * sizeof *nb);
            if (!nb)
                return lt_fail(why, LT_ENOMEM, "no memory for the queue index");
            memset(nb + b->qid_cap, 0, (ncap - b->qid_cap) * sizeof *nb);
            b->by_qid = nb;
            b->qid_cap = ncap;
        }
        b->by_qid[q->qid] = q;
        lt_store_queue_stats st;
        memset(&st, 0, sizeof st);
        if (lt_store_queue_stats_get(b->store, q->qid, &st, &w) == LT_OK)
            lt_log(LT_LOG_INFO,
                          "queue %s (owner %s): %" PRIu64 " pending, %" PRIu64 " dead letters",
                          qc->name, qc->owner, st.depth, st.dlq_depth);
        mark_dirty(b, q);
    }
    return LT_OK;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void lt_dlv_close(lt_broker *b)
{
    for (size_t i = 0; i < b->nqueues; i++) {
        lt_queue *q = &b->queues[i];
        while (q->subs)
            lt_dlv_drop_sub(b, q->subs);
        if (!uv_is_closing((uv_handle_t *)&q->timer))
            uv_close((uv_handle_t *)&q->timer, on_timer_closed);
    }
}

void lt_dlv_free(lt_broker *b)
{
    for (size_t i = 0; i < b->nqueues; i++)
        lt_dq_fini(&b->queues[i].dq);
    free(b->queues);
    b->queues = NULL;
    b->nqueues = 0;
    free(b->by_qid);
    b->by_qid = NULL;
    lt_router_destroy(&b->router);
}
