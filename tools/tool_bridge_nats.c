/*
 * tool_bridge_nats.c - the libnats setup `lienthong bridge` shares (tool_bridge.h).
 */
#include "tool_bridge.h"

#include "tool_client.h"

#include <limits.h>
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

bool lt_bridge_is_transient(lt_err code)
{
    switch (code) {
    case LT_ETIMEDOUT:
    case LT_ECLOSED:
    case LT_EIO:
    case LT_EAGAIN:
    case LT_ENOMEM:
    case LT_ECRYPTO:
    case LT_ECRL:
    case LT_EQUEUE_FULL:
    case LT_ESTORE:
    case LT_ESTORE_FULL:
    case LT_ESHUTDOWN:
    case LT_EBUSY:
    case LT_EAUTH_PENDING: return true;
    default: return false;
    }
}

uint32_t lt_bridge_backoff_ms(uint32_t attempt)
{
    uint32_t ms = 200;
    for (uint32_t i = 1; i < attempt && ms < 5000; i++)
        ms *= 2;
    return ms < 5000 ? ms : 5000;
}

lt_err lt_bridge_subject_check(const char *subject, bool wildcards, lt_why *why)
{
    size_t len = strlen(subject);
    if (len == 0)
        return lt_fail(why, LT_EBADTOPIC, "empty subject");
    if (len >= LT_BRIDGE_SUBJECT_MAX)
        return lt_fail(why, LT_EBADTOPIC, "subject of %zu bytes (at most %d)", len,
                       LT_BRIDGE_SUBJECT_MAX - 1);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = (unsigned char)subject[i];
        if (ch != '.' && ch != '\0') {
            if (ch <= 0x20 || ch == 0x7f)
                return lt_fail(why, LT_EBADTOPIC, "byte 0x%02x at byte %zu of a subject", ch,
                               i);
            continue;
        }
        size_t tl = i - start;
        const char *tok = subject + start;
        if (tl == 0)
            return lt_fail(why, LT_EBADTOPIC, "empty token at byte %zu of a subject", i);
        bool star = tl == 1 && tok[0] == '*', gt = tl == 1 && tok[0] == '>';
        if (wildcards && star)
            ; /* a whole-token '*' */
        else if (wildcards && gt && ch != '\0')
            return lt_fail(why, LT_EBADTOPIC, "'>' before the last token of a subject");
        else if (!(wildcards && gt) && memchr(tok, '*', tl) != NULL)
            return lt_fail(why, LT_EBADTOPIC, "'*' in a subject token (at byte %zu)", start);
        else if (!(wildcards && gt) && memchr(tok, '>', tl) != NULL)
            return lt_fail(why, LT_EBADTOPIC, "'>' in a subject token (at byte %zu)", start);
        start = i + 1;
    }
    return LT_OK;
}

lt_err lt_bridge_subject(const char *prefix, const char *topic, char *out, size_t cap,
                         lt_why *why)
{
    lt_why w = {{0}};
    if (lt_bridge_subject_check(prefix, false, &w) != LT_OK)
        return lt_fail(why, LT_EBADTOPIC, "subject prefix '%s': %s", prefix, w.msg);
    if (lt_bridge_subject_check(topic, false, &w) != LT_OK)
        return lt_fail(why, LT_EBADTOPIC, "topic '%s' is no NATS subject: %s", topic, w.msg);
    int n = snprintf(NULL, 0, "%s.%s", prefix, topic);
    if (n < 0 || (size_t)n >= cap || n >= LT_BRIDGE_SUBJECT_MAX)
        return lt_fail(why, LT_EBADTOPIC, "subject '%s.%s' longer than %zu bytes", prefix,
                       topic, (cap < LT_BRIDGE_SUBJECT_MAX ? cap : LT_BRIDGE_SUBJECT_MAX) - 1);
    snprintf(out, cap, "%s.%s", prefix, topic);
    return LT_OK;
}

lt_err lt_bridge_msg_new(const char *prefix, const uint8_t *env_bytes, size_t len,
                         natsMsg **out, char *id_hex, lt_why *why)
{
    lt_env *env = NULL;
    char subj[LT_BRIDGE_SUBJECT_MAX], id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    lt_err e = lt_env_decode(env_bytes, len, NULL, &env, why);
    if (e == LT_OK)
        e = lt_bridge_subject(prefix, lt_env_topic(env), subj, sizeof subj, why);
    if (e == LT_OK && len > INT_MAX)
        e = lt_fail(why, LT_ETOOBIG, "envelope of %zu bytes", len);
    if (e != LT_OK) {
        lt_env_destroy(&env);
        return e;
    }
    lt_tool_hex(lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN, id);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subj, NULL, (const char *)env_bytes, (int)len);
    if (s == NATS_OK) /* JetStream's dedup key, the same on every resend */
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, LT_BRIDGE_HDR_TOPIC, lt_env_topic(env));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, LT_BRIDGE_HDR_SOURCE, lt_env_source(env));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, LT_BRIDGE_HDR_TYPE, lt_env_record_type(env));
    lt_env_destroy(&env);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return lt_bridge_nats_fail(why, s, 0, "cannot build the NATS message");
    }
    *out = m;
    memcpy(id_hex, id, sizeof id);
    return LT_OK;
}

lt_err lt_bridge_hdrs_check(const lt_bridge_hdrs *h, const lt_env *env, lt_why *why)
{
    char id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    lt_tool_hex(lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN, id);
    const struct {
        const char *name, *got, *want;
    } hs[] = {
        {"Nats-Msg-Id", h->msg_id, id},
        {LT_BRIDGE_HDR_TOPIC, h->topic, lt_env_topic(env)},
        {LT_BRIDGE_HDR_SOURCE, h->source, lt_env_source(env)},
        {LT_BRIDGE_HDR_TYPE, h->record_type, lt_env_record_type(env)},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (hs[i].got != NULL && strcmp(hs[i].got, hs[i].want) != 0)
            return lt_fail(why, LT_EPROTO,
                           "header %s '%.64s' disagrees with the signed envelope's '%.64s'",
                           hs[i].name, hs[i].got, hs[i].want);
    return LT_OK;
}

/* A stream or consumer name JetStream accepts (it refuses these bytes in names). */
static lt_err name_check(const char *opt, const char *name, lt_why *why)
{
    if (*name == '\0')
        return lt_fail(why, LT_EINVAL, "%s: empty name", opt);
    if (strlen(name) > 255)
        return lt_fail(why, LT_EINVAL, "%s: a name of %zu bytes (at most 255)", opt,
                       strlen(name));
    for (const char *p = name; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f || strchr(".*>/\\", ch) != NULL)
            return lt_fail(why, LT_EINVAL, "%s: byte '%c' (0x%02x) not allowed in a name", opt,
                           ch > 0x20 && ch != 0x7f ? ch : '?', ch);
    }
    return LT_OK;
}

lt_err lt_bridge_opts_check(const char *mode, const lt_bridge_opts *o, lt_why *why)
{
    bool out = strcmp(mode, "out") == 0, in = strcmp(mode, "in") == 0,
         dump = strcmp(mode, "dump") == 0, sink = strcmp(mode, "sink") == 0;
    lt_why w = {{0}};
    if (!out && !in && !dump && !sink)
        return lt_fail(why, LT_EINVAL, "unknown mode '%s': out, in or dump", mode);
    if (o->stream == NULL)
        return lt_fail(why, LT_EINVAL, "--stream is required");
    if (o->nats_urls == NULL || *o->nats_urls == '\0')
        return lt_fail(why, LT_EINVAL, "--nats: no URL");
    if (out && (o->cfg_path == NULL || o->queue == NULL || o->subject == NULL))
        return lt_fail(why, LT_EINVAL, "out: -c, -q and --subject are required");
    if (in && (o->cfg_path == NULL || o->subject == NULL || o->durable == NULL))
        return lt_fail(why, LT_EINVAL, "in: -c, --subject and --durable are required");
    if (sink && o->durable == NULL)
        return lt_fail(why, LT_EINVAL, "--durable is required with --nats");
    if (dump && o->dump_path == NULL)
        return lt_fail(why, LT_EINVAL, "dump: -o FILE is required");
    if (!out && o->create_stream)
        return lt_fail(why, LT_EINVAL, "--create-stream is for out only");
    lt_err e = name_check("--stream", o->stream, why);
    if (e == LT_OK && o->durable != NULL)
        e = name_check("--durable", o->durable, why);
    if (e != LT_OK || o->subject == NULL)
        return e;
    size_t sl = strlen(o->subject);
    bool dump_prefix = dump && sl >= 2 && strcmp(o->subject + sl - 2, ".>") == 0;
    if (dump_prefix) {
        char pre[LT_BRIDGE_SUBJECT_MAX];
        snprintf(pre, sizeof pre, "%.*s", (int)(sl - 2), o->subject);
        if (lt_bridge_subject_check(pre, false, &w) != LT_OK)
            return lt_fail(why, LT_EINVAL, "--subject '%s': %s", o->subject, w.msg);
        return LT_OK;
    }
    if (lt_bridge_subject_check(o->subject, in || sink, &w) != LT_OK)
        return lt_fail(why, LT_EINVAL, "--subject '%s': %s%s", o->subject, w.msg,
                       out ? " (out: a literal prefix; records go to PREFIX.<topic>)"
                       : dump ? " (dump: a literal subject or PREFIX.>)" : "");
    return LT_OK;
}
