/*
 * tool_bridge_src.c - a durable JetStream pull consumer of envelopes (tool_bridge.h), the
 * reading side `lienthong bridge in` and `lienthong sink --nats` share.
 *
 * The consumer acks explicitly, holds at most o->credit messages unacked and has JetStream
 * deliver a message again when it is not acked within o->timeout_ms + 5 s: a reader killed
 * with its messages unacked gets them back (or the next reader on the same durable does).
 * Readers end every fetched message with an ack (after the message is safe on their side), a
 * TERM (it can never be accepted: a forged or tampered envelope) or a NAK with a back-off
 * (not now: the other side is busy or away).
 *
 * Single-threaded: fetches are synchronous.
 */
#include "tool_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lt_bridge_src {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
};

lt_err lt_bridge_src_open(const lt_bridge_opts *o, lt_bridge_src **out, lt_why *why)
{
    lt_bridge_src *src = calloc(1, sizeof *src);
    if (src == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = lt_bridge_nats_open(o, NULL, NULL, &src->nc, &src->js, why);
    if (e == LT_OK) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = o->stream;
        /* A durable that exists is bound with the values it has (JetStream refuses to bind
         * with others), after they are updated to ours: a reader restarted with another
         * batch size fetches as many as it asks for. */
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        int64_t ack_wait = (o->timeout_ms + 5000) * (int64_t)1000000; /* ns */
        if (js_GetConsumerInfo(&ci, src->js, o->stream, o->durable, NULL, &jerr) == NATS_OK) {
            jsConsumerConfig *cc = ci->Config;
            if (cc->AckWait != ack_wait || cc->MaxAckPending != (int64_t)o->credit) {
                jsConsumerInfo *ui = NULL;
                cc->AckWait = ack_wait;
                cc->MaxAckPending = o->credit;
                natsStatus us = js_UpdateConsumer(&ui, src->js, o->stream, cc, NULL, &jerr);
                if (us != NATS_OK)
                    e = lt_bridge_nats_fail(why, us, jerr, "cannot update the durable consumer");
                jsConsumerInfo_Destroy(ui);
            }
            jsConsumerInfo_Destroy(ci);
        } else {
            so.Config.AckPolicy = js_AckExplicit;
            so.Config.AckWait = ack_wait;
            so.Config.MaxAckPending = o->credit;
        }
        jerr = 0;
        natsStatus s = e != LT_OK ? NATS_OK
                                  : js_PullSubscribe(&src->sub, src->js,
                                                     o->subject != NULL ? o->subject : ">",
                                                     o->durable, NULL, &so, &jerr);
        if (s != NATS_OK)
            e = lt_bridge_nats_fail(why, s, jerr, "cannot create the pull consumer");
    }
    if (e != LT_OK) {
        lt_bridge_src_close(&src);
        return e;
    }
    *out = src;
    return LT_OK;
}

static const char *header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : NULL;
}

lt_err lt_bridge_src_fetch(lt_bridge_src *src, uint32_t max, int64_t wait_ms,
                           lt_bridge_item *items, size_t *n, lt_why *why)
{
    jsErrCode jerr = 0;
    natsMsgList list = {0};
    natsStatus s = natsSubscription_Fetch(&list, src->sub, (int)max, wait_ms, &jerr);
    if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        *n = 0;
        return LT_OK;
    }
    if (s != NATS_OK) {
        natsMsgList_Destroy(&list);
        return lt_bridge_nats_fail(why, s, jerr, "fetch");
    }
    size_t k = 0;
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        list.Msgs[i] = NULL; /* the item's now */
        if (k == max) {      /* cannot happen: Fetch returns at most max; redelivered later */
            natsMsg_Destroy(m);
            continue;
        }
        jsMsgMetaData *md = NULL;
        uint64_t seq = 0, delivered = 1;
        if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
            seq = md->Sequence.Stream;
            delivered = md->NumDelivered > 0 ? (uint64_t)md->NumDelivered : 1;
            jsMsgMetaData_Destroy(md);
        }
        int len = natsMsg_GetDataLength(m);
        items[k++] = (lt_bridge_item){
            .envelope = (const uint8_t *)natsMsg_GetData(m),
            .len = len > 0 ? (size_t)len : 0,
            .stream_seq = seq,
            .delivered = delivered,
            .hdrs = {header(m, "Nats-Msg-Id"), header(m, LT_BRIDGE_HDR_TOPIC),
                     header(m, LT_BRIDGE_HDR_SOURCE), header(m, LT_BRIDGE_HDR_TYPE)},
            .msg = m,
        };
    }
    natsMsgList_Destroy(&list);
    *n = k;
    return LT_OK;
}

void lt_bridge_src_done(lt_bridge_src *src, lt_bridge_item *item, lt_bridge_fate fate)
{
    (void)src;
    if (item->msg == NULL)
        return;
    switch (fate) {
    case LT_BRIDGE_ACK: natsMsg_Ack(item->msg, NULL); break;
    case LT_BRIDGE_TERM: natsMsg_Term(item->msg, NULL); break;
    case LT_BRIDGE_NAK:
        natsMsg_NakWithDelay(item->msg,
                             lt_bridge_backoff_ms(item->delivered > UINT32_MAX
                                                      ? UINT32_MAX
                                                      : (uint32_t)item->delivered),
                             NULL);
        break;
    case LT_BRIDGE_LEAVE: break;
    }
    natsMsg_Destroy(item->msg);
    *item = (lt_bridge_item){0};
}

void lt_bridge_src_close(lt_bridge_src **srcp)
{
    lt_bridge_src *src = *srcp;
    if (src == NULL)
        return;
    if (src->nc != NULL) /* the acks and terms still buffered */
        natsConnection_FlushTimeout(src->nc, 2000);
    natsSubscription_Destroy(src->sub);
    lt_bridge_nats_close(&src->nc, &src->js);
    free(src);
    *srcp = NULL;
}
