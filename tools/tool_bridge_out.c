/*
 * tool_bridge_out.c - `lienthong bridge out`: a lienthong queue into a JetStream stream.
 *
 * Each delivery's envelope is published unchanged to "<prefix>.<topic>" with Nats-Msg-Id =
 * the hex message id and the Lienthong-* headers, asynchronously (js_PublishMsgAsync). The
 * delivery is acked to lienthong only after JetStream's PubAck. A JetStream error, a lost
 * quorum or no answer within --timeout keeps the delivery unacked and publishes it again
 * after a growing delay (200 ms to 5 s). It is not NAKed: a NAK counts toward the queue's
 * max_deliver and would end in the DLQ during a long outage; held unacked it counts only
 * when ack_wait expires (docs/national.md: ack_wait_s 3600). Records past the credit stay in
 * LMDB, undelivered. Nothing is acked that JetStream did not store, and a resend of what it
 * did store (after a crash of either side) carries the same Nats-Msg-Id, which the stream's
 * duplicate window drops.
 *
 * In flight at most `credit` envelopes: the queue's credit bounds the unacked deliveries and
 * every unacked delivery is one publish waiting for its PubAck.
 *
 * Threads: the main thread owns the lt_client and every slot. libnats calls on_puback on its
 * own thread; on_puback only appends to `done` under `mu`, and the main thread drains it.
 */
#include "tool_bridge.h"

#include "tool_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    natsMsg *msg; /* NULL: free */
    uint64_t seq;
    uint32_t held;     /* deliveries of seq we hold: redelivered after ack_wait while here */
    uint32_t attempts; /* publishes that failed */
    int64_t retry_at;  /* 0: publish in flight (libnats owns msg); else waiting, ours */
} slot;

typedef struct completion {
    natsMsg *msg;
    bool ok;
    bool duplicate;
    char reason[160];
} completion;

typedef struct out {
    const lt_bridge_opts *o;
    lt_client *c;
    jsCtx *js;
    slot *slots; /* credit of them */
    uint32_t inflight;
    uint32_t waiting; /* slots waiting for a publish again (retry_at != 0) */
    uint32_t hint[2]; /* where find_msg starts: [0] a message's slot, [1] a free slot */
    pthread_mutex_t mu;
    completion *done; /* credit of them: one completion per publish at most */
    uint32_t n_done;
    uint64_t forwarded, duplicates, retries, delivered;
    bool failing; /* the last publish failed: said once, and again when it recovers */
    bool error;
} out;

static void on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *user)
{
    (void)js;
    out *b = user;
    pthread_mutex_lock(&b->mu);
    if (b->n_done < b->o->credit) {
        completion *d = &b->done[b->n_done++];
        d->msg = msg;
        d->ok = pa != NULL;
        d->duplicate = pa != NULL && pa->Duplicate;
        d->reason[0] = '\0';
        if (pae != NULL) {
            const char *st = natsStatus_GetText(pae->Err), *tx = pae->ErrText;
            bool more = tx != NULL && *tx != '\0' && strcmp(tx, st) != 0;
            snprintf(d->reason, sizeof d->reason, "%s%s%s", st, more ? ": " : "",
                     more ? tx : "");
        }
        msg = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    /* Not ours (cannot happen: at most credit publishes are in flight): the delivery is
     * neither acked nor naked, so the broker delivers it again after ack_wait. */
    natsMsg_Destroy(msg);
}

static slot *find_seq(out *b, uint64_t seq)
{
    for (uint32_t i = 0; i < b->o->credit; i++)
        if (b->slots[i].msg != NULL && b->slots[i].seq == seq)
            return &b->slots[i];
    return NULL;
}

/* The slot holding m (NULL: a free one). The search starts after the last hit: PubAcks come
 * back, and slots free up, mostly in the order of sending, so it is short. */
static slot *find_msg(out *b, const natsMsg *m)
{
    uint32_t n = b->o->credit;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (b->hint[m == NULL] + k) % n;
        if (b->slots[i].msg == m) {
            b->hint[m == NULL] = (i + 1) % n;
            return &b->slots[i];
        }
    }
    return NULL;
}

static void fail_state(out *b, bool failing, const char *reason)
{
    if (failing && !b->failing)
        fprintf(stderr,
                "lienthong bridge out: JetStream did not store a record (%s): not acked, "
                "records wait in lienthong and are sent again\n",
                reason);
    else if (!failing && b->failing)
        fprintf(stderr, "lienthong bridge out: JetStream acks again\n");
    b->failing = failing;
}

/* The publish of s ended: stored, ack it to lienthong (once per delivery we hold) and free
 * the slot; else keep it (and its message) to publish again after a back-off. */
static void settle(out *b, slot *s, bool ok, const char *reason)
{
    fail_state(b, !ok, reason);
    if (!ok) {
        s->attempts++;
        s->retry_at = lt_tool_mono_ms() + lt_bridge_backoff_ms(s->attempts);
        b->retries++;
        b->waiting++;
        return;
    }
    for (uint32_t i = 0; i < s->held; i++)
        lt_client_ack(b->c, b->o->queue, s->seq);
    natsMsg_Destroy(s->msg);
    *s = (slot){0};
    b->inflight--;
}

/* Publish s->msg (again); a synchronous failure is settled as a failed publish. */
static void send_slot(out *b, slot *s)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = b->o->timeout_ms;
    natsMsg *send = s->msg; /* js_PublishMsgAsync takes it (sets send to NULL) on success */
    if (s->retry_at != 0)
        b->waiting--;
    s->retry_at = 0;
    natsStatus st = js_PublishMsgAsync(b->js, &send, &po);
    if (st != NATS_OK) {
        char reason[160];
        snprintf(reason, sizeof reason, "publish: %s", natsStatus_GetText(st));
        settle(b, s, false, reason);
    }
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    out *b = user;
    if (d->replay)
        return;
    b->delivered++;
    /* Delivery counts are durable, so a first delivery is never one we hold already. */
    slot *s = d->delivery_count > 1 ? find_seq(b, d->seq) : NULL;
    if (s != NULL) { /* ack_wait expired while its publish is in flight: settled together */
        s->held++;
        return;
    }
    s = find_msg(b, NULL);
    if (s == NULL) { /* more deliveries than credit: a broker bug; it comes back later */
        lt_client_nak(b->c, d->queue, d->seq, 1000, "lienthong bridge: no free slot");
        return;
    }
    lt_why why = {{0}};
    char id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    natsMsg *m = NULL;
    if (lt_bridge_msg_new(b->o->subject, d->envelope, d->envelope_len, &m, id, &why) != LT_OK) {
        fprintf(stderr, "lienthong bridge out: seq %llu not forwarded: %s\n",
                (unsigned long long)d->seq, why.msg);
        char reason[LT_WHY_MAX + 32];
        snprintf(reason, sizeof reason, "lienthong bridge: %s", why.msg);
        lt_client_nak(b->c, d->queue, d->seq, lt_bridge_backoff_ms(d->delivery_count), reason);
        return;
    }
    *s = (slot){.msg = m, .seq = d->seq, .held = 1};
    b->inflight++;
    send_slot(b, s);
}

static void on_error(void *user, lt_err code, const char *reason)
{
    out *b = user;
    fprintf(stderr, "lienthong bridge out: broker refused: %s: %s\n", lt_err_name(code), reason);
    b->error = true;
}

/* Settle every PubAck (or failure) that arrived; returns how many. */
static uint32_t drain(out *b)
{
    completion local[64];
    uint32_t n;
    pthread_mutex_lock(&b->mu);
    n = b->n_done < 64 ? b->n_done : 64;
    memcpy(local, b->done + b->n_done - n, n * sizeof *local);
    b->n_done -= n;
    pthread_mutex_unlock(&b->mu);
    for (uint32_t i = 0; i < n; i++) {
        slot *s = find_msg(b, local[i].msg);
        if (s == NULL) { /* cannot happen: each publish completes once */
            natsMsg_Destroy(local[i].msg);
            continue;
        }
        if (local[i].ok) {
            b->forwarded++;
            b->duplicates += local[i].duplicate;
        }
        settle(b, s, local[i].ok, local[i].reason);
    }
    return n;
}

/* Publish again every waiting slot whose back-off has passed (the slots are looked at only
 * while some wait: not at every turn of the loop). */
static void retry_due(out *b)
{
    if (b->waiting == 0)
        return;
    int64_t now = lt_tool_mono_ms();
    for (uint32_t i = 0; i < b->o->credit; i++) {
        slot *s = &b->slots[i];
        if (s->msg != NULL && s->retry_at != 0 && s->retry_at <= now)
            send_slot(b, s);
    }
}

int lt_bridge_out_run(const lt_bridge_opts *o)
{
    out b = {.o = o};
    lt_why why = {{0}};
    lt_tool_conn tc = {0};
    natsConnection *nc = NULL;
    int rc = 1;
    pthread_mutex_init(&b.mu, NULL);
    b.slots = calloc(o->credit, sizeof *b.slots);
    b.done = calloc(o->credit, sizeof *b.done);
    lt_err e = b.slots != NULL && b.done != NULL ? LT_OK : LT_ENOMEM;
    if (e != LT_OK)
        lt_fail(&why, e, "out of memory");
    if (e == LT_OK)
        e = lt_bridge_nats_open(o, on_puback, &b, &nc, &b.js, &why);
    if (e == LT_OK && o->create_stream)
        e = lt_bridge_stream_ensure(o, b.js, &why);
    lt_client_opts co = {.client_name = "lienthong-bridge/" LT_VERSION};
    if (e == LT_OK)
        e = lt_tool_connect(o->cfg_path, o->endpoint, &co, true, &tc, &why);
    if (e == LT_OK) {
        b.c = tc.client;
        lt_client_set_error_cb(b.c, on_error, &b);
        e = lt_client_subscribe(b.c, o->queue, o->credit, NULL, on_deliver, &b, &why);
    }
    if (e != LT_OK) {
        fprintf(stderr, "lienthong bridge out: %s\n", why.msg);
        goto out_close;
    }
    fprintf(stderr, "lienthong bridge out: %s -> stream %s (%s.<topic>), credit %u\n",
            o->queue, o->stream, o->subject, o->credit);
    int64_t last = lt_tool_mono_ms();
    while (!lt_tool_stopping() && !b.error && (o->count == 0 || b.forwarded < o->count)) {
        uint64_t before = b.delivered + b.forwarded;
        e = lt_client_poll(b.c, b.inflight > 0 ? 1 : 100, NULL);
        if (e != LT_OK) {
            fprintf(stderr, "lienthong bridge out: receive failed: %s\n", lt_err_str(e));
            break;
        }
        while (drain(&b) > 0)
            ;
        retry_due(&b);
        int64_t now = lt_tool_mono_ms();
        if (b.delivered + b.forwarded != before || b.inflight > 0)
            last = now;
        else if (o->idle_s > 0 && now - last >= o->idle_s * 1000)
            break;
    }
    /* Wait for the PubAcks still due, then give lienthong its acks. What is still pending
     * after that is neither acked nor naked: the broker delivers it again after ack_wait. */
    int64_t deadline = lt_tool_mono_ms() + o->timeout_ms + 1000;
    while (b.inflight > 0 && lt_tool_mono_ms() < deadline) {
        lt_client_poll(b.c, 5, NULL);
        drain(&b);
    }
    lt_client_flush(b.c, 2000);
    rc = b.error || e != LT_OK ? 1 : 0;
out_close:
    fprintf(stderr,
            "lienthong bridge out: %llu deliveries, %llu forwarded (%llu duplicate%s in the "
            "stream), %llu sent again after a failure, %u unsettled at exit\n",
            (unsigned long long)b.delivered, (unsigned long long)b.forwarded,
            (unsigned long long)b.duplicates, b.duplicates == 1 ? "" : "s",
            (unsigned long long)b.retries, b.inflight);
    lt_tool_disconnect(&tc);
    if (b.js != NULL) {
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, b.js) == NATS_OK)
            natsMsgList_Destroy(&pending);
    }
    lt_bridge_nats_close(&nc, &b.js);
    pthread_mutex_lock(&b.mu);
    for (uint32_t i = 0; i < b.n_done; i++)
        natsMsg_Destroy(b.done[i].msg);
    pthread_mutex_unlock(&b.mu);
    for (uint32_t i = 0; b.slots != NULL && i < o->credit; i++)
        if (b.slots[i].msg != NULL && b.slots[i].retry_at != 0) /* waiting: ours */
            natsMsg_Destroy(b.slots[i].msg);
    free(b.slots);
    free(b.done);
    pthread_mutex_destroy(&b.mu);
    return rc;
}
