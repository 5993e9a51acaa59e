/*
 * tool_bridge_nats.c - the libnats setup `lienthong bridge` shares (tool_bridge.h).
 */
#include "tool_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lt_err lt_bridge_nats_fail(lt_why *why, natsStatus s, jsErrCode jerr, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    if (jerr != 0)
        return lt_fail(why, LT_EIO, "%s: %s (JetStream error %d): %s", what,
                       natsStatus_GetText(s), (int)jerr, last != NULL ? last : "");
    return lt_fail(why, LT_EIO, "%s: %s%s%s", what, natsStatus_GetText(s),
                   last != NULL && *last ? ": " : "", last != NULL ? last : "");
}

lt_err lt_bridge_nats_open(const lt_bridge_opts *o, jsPubAckHandler on_ack, void *ack_user,
                           natsConnection **nc, jsCtx **js, lt_why *why)
{
    natsOptions *no = NULL;
    natsConnection *c = NULL;
    jsCtx *j = NULL;
    jsOptions jo;
    char list[1024], *servers[16], *save = NULL;
    int n = 0;
    if (snprintf(list, sizeof list, "%s", o->nats_urls) >= (int)sizeof list)
        return lt_fail(why, LT_EINVAL, "--nats: list too long");
    for (char *u = strtok_r(list, ",", &save); u != NULL && n < 16;
         u = strtok_r(NULL, ",", &save))
        servers[n++] = u;
    if (n == 0)
        return lt_fail(why, LT_EINVAL, "--nats: no URL");
    natsStatus s = natsOptions_Create(&no);
    if (s == NATS_OK)
        s = natsOptions_SetServers(no, (const char **)servers, n);
    if (s == NATS_OK) /* -1: for ever; records wait in lienthong meanwhile */
        s = natsOptions_SetMaxReconnect(no, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(no, 250);
    if (s == NATS_OK)
        s = natsConnection_Connect(&c, no);
    if (s == NATS_OK)
        s = jsOptions_Init(&jo);
    if (s == NATS_OK) {
        jo.Wait = o->timeout_ms;
        jo.PublishAsync.MaxPending = o->credit; /* never stalls: credit bounds the window */
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = ack_user;
        s = natsConnection_JetStream(&j, c, &jo);
    }
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        lt_bridge_nats_fail(why, s, 0, "cannot connect to NATS");
        natsConnection_Destroy(c);
        return LT_EIO;
    }
    *nc = c;
    *js = j;
    return LT_OK;
}

void lt_bridge_nats_close(natsConnection **nc, jsCtx **js)
{
    jsCtx_Destroy(*js);
    *js = NULL;
    if (*nc != NULL) {
        natsConnection_Close(*nc);
        natsConnection_Destroy(*nc);
    }
    *nc = NULL;
}

lt_err lt_bridge_stream_ensure(const lt_bridge_opts *o, jsCtx *js, lt_why *why)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, o->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return LT_OK;
    }
    if (s != NATS_NOT_FOUND)
        return lt_bridge_nats_fail(why, s, jerr, "stream info");
    char subj[512];
    if (snprintf(subj, sizeof subj, "%s.>", o->subject) >= (int)sizeof subj)
        return lt_fail(why, LT_EINVAL, "subject prefix too long");
    const char *subjects[] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = o->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = o->replicas;
    sc.Duplicates = o->dup_window_s * (int64_t)1000000000; /* ns */
    jerr = 0;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s != NATS_OK)
        return lt_bridge_nats_fail(why, s, jerr, "cannot create the stream");
    jsStreamInfo_Destroy(si);
    return LT_OK;
}

uint32_t lt_bridge_backoff_ms(uint32_t attempt)
{
    uint32_t ms = 200;
    for (uint32_t i = 1; i < attempt && ms < 5000; i++)
        ms *= 2;
    return ms < 5000 ? ms : 5000;
}
