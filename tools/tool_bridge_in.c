/*
 * tool_bridge_in.c - `lienthong bridge in` (a JetStream durable pull consumer into lienthongd)
 * and `lienthong bridge dump` (a stream's envelopes into an envelope file).
 *
 * in: each fetched message's payload is an envelope, published to lienthongd as by any
 * client: the broker verifies its signature and its source agency's ACL (the bridge proves
 * no identity of its own; publishing needs none). A message is acked to JetStream only after
 * lienthong's ACK (a duplicate ACK is a success too: the record is there). A refusal of the
 * record itself (bad signature, ACL, not a record of the contract ...) terminates it in
 * JetStream (+TERM) with the reason logged and counted: sending it again cannot succeed. A
 * lienthong that does not answer, or refuses for now (queue full, busy, shutting down), NAKs
 * it with a growing delay: JetStream delivers it again.
 *
 * dump: reads the stream by sequence (direct get, no consumer state) and writes every
 * envelope, unchanged, to the length-delimited file `lienthong verify` reads; one JSON line
 * per message on stdout (stream sequence, subject, Nats-Msg-Id, Lienthong-* headers).
 *
 * Single-threaded: fetches are synchronous and lienthong's callbacks run in lt_client_flush.
 */
#include "tool_bridge.h"

#include "envfile.h"
#include "tool_client.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct result {
    bool done;
    lt_err code;
    char reason[LT_WHY_MAX];
} result;

static void on_published(void *user, uint64_t tag, lt_err code, uint64_t seq, bool duplicate,
                         const char *reason)
{
    (void)tag;
    (void)seq;
    (void)duplicate; /* a duplicate is stored already: success */
    result *r = user;
    r->done = true;
    r->code = code;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

int lt_bridge_in_run(const lt_bridge_opts *o)
{
    lt_why why = {{0}};
    lt_tool_conn tc = {0};
    lt_bridge_src *src = NULL;
    result *res = calloc(o->credit, sizeof *res);
    lt_bridge_item *items = calloc(o->credit, sizeof *items);
    uint64_t stored = 0, refused = 0, retried = 0;
    int64_t last = lt_tool_mono_ms();
    lt_err e = res != NULL && items != NULL ? LT_OK : lt_fail(&why, LT_ENOMEM, "out of memory");
    if (e == LT_OK)
        e = lt_bridge_src_open(o, &src, &why);
    lt_client_opts co = {.client_name = "lienthong-bridge/" LT_VERSION,
                         .ack_timeout_ms = (int)o->timeout_ms};
    if (e == LT_OK)
        e = lt_tool_connect(o->cfg_path, o->endpoint, &co, false, &tc, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong bridge in: %s\n", why.msg);
        goto out_close;
    }
    fprintf(stderr, "lienthong bridge in: stream %s (%s), durable %s -> lienthong\n",
            o->stream, o->subject, o->durable);
    bool lost = false;
    while (!lt_tool_stopping() && (o->count == 0 || stored + refused < o->count)) {
        size_t n = 0;
        if (lt_bridge_src_fetch(src, o->credit, 500, items, &n, &why) != LT_OK) {
            /* no quorum, a leader election: JetStream keeps the messages */
            fprintf(stderr, "lienthong bridge in: %s; trying again\n", why.msg);
            lt_client_poll(tc.client, 500, NULL);
            continue;
        }
        if (n == 0) {
            if (o->idle_s > 0 && lt_tool_mono_ms() - last >= o->idle_s * 1000)
                break;
            continue;
        }
        last = lt_tool_mono_ms();
        for (size_t i = 0; i < n; i++) {
            res[i] = (result){0};
            lt_err pe = lt_client_publish(tc.client, items[i].envelope, items[i].len,
                                          on_published, &res[i], NULL);
            if (pe != LT_OK)
                res[i] = (result){.done = true, .code = pe};
        }
        if (lt_client_flush(tc.client, -1) != LT_OK && lt_client_inflight(tc.client) > 0) {
            /* answers may still come into res[]: never reuse it for another batch. The
             * fetched messages stay unacked in JetStream, which delivers them again. */
            fprintf(stderr, "lienthong bridge in: lienthongd's answers cannot be awaited; "
                            "stopping (JetStream redelivers what was not acked)\n");
            lost = true;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            lt_err c = res[i].done ? res[i].code : LT_ETIMEDOUT;
            lt_bridge_fate f = c == LT_OK ? LT_BRIDGE_ACK
                               : lt_bridge_is_transient(c) ? LT_BRIDGE_NAK
                                                 : LT_BRIDGE_TERM;
            if (f == LT_BRIDGE_TERM)
                fprintf(stderr,
                        "lienthong bridge in: stream seq %llu refused by lienthong: %s: %s; "
                        "terminated in JetStream\n",
                        (unsigned long long)items[i].stream_seq, lt_err_name(c),
                        res[i].reason[0] ? res[i].reason : lt_err_str(c));
            stored += f == LT_BRIDGE_ACK;
            retried += f == LT_BRIDGE_NAK;
            refused += f == LT_BRIDGE_TERM;
            lt_bridge_src_done(src, &items[i], f);
        }
    }
    e = lost ? LT_EIO : LT_OK;
out_close:
    fprintf(stderr, "lienthong bridge in: %llu stored in lienthong, %llu refused, %llu retried\n",
            (unsigned long long)stored, (unsigned long long)refused, (unsigned long long)retried);
    lt_tool_disconnect(&tc);
    lt_bridge_src_close(&src);
    free(items);
    free(res);
    return e == LT_OK ? 0 : 1;
}

/* One JSON line describing stream message m at seq. */
static void print_msg(natsMsg *m, uint64_t seq)
{
    static const char *const keys[][2] = {{"Nats-Msg-Id", "msg_id"},
                                          {LT_BRIDGE_HDR_TOPIC, "topic"},
                                          {LT_BRIDGE_HDR_SOURCE, "source"},
                                          {LT_BRIDGE_HDR_TYPE, "record_type"}};
    json_object *j = json_object_new_object();
    json_object_object_add(j, "stream_seq", json_object_new_uint64(seq));
    json_object_object_add(j, "subject", json_object_new_string(natsMsg_GetSubject(m)));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = NULL;
        if (natsMsgHeader_Get(m, keys[i][0], &v) == NATS_OK && v != NULL)
            json_object_object_add(j, keys[i][1], json_object_new_string(v));
    }
    puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
}

int lt_bridge_dump_run(const lt_bridge_opts *o)
{
    lt_why why = {{0}};
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    lt_envfile_writer *w = NULL;
    uint64_t written = 0;
    lt_err e = lt_bridge_nats_open(o, NULL, NULL, &nc, &js, &why);
    if (e == LT_OK) {
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, js, o->stream, NULL, &jerr);
        if (s != NATS_OK)
            e = lt_bridge_nats_fail(&why, s, jerr, "stream info");
    }
    if (e == LT_OK)
        e = lt_envfile_open_writer(o->dump_path, &w, &why);
    for (uint64_t seq = si != NULL ? si->State.FirstSeq : 1;
         e == LT_OK && si != NULL && seq <= si->State.LastSeq && seq != 0; seq++) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetMsg(&m, js, o->stream, seq, NULL, &jerr);
        if (s == NATS_NOT_FOUND)
            continue; /* deleted from the stream */
        if (s != NATS_OK) {
            e = lt_bridge_nats_fail(&why, s, jerr, "get message");
            break;
        }
        size_t plen = o->subject != NULL ? strlen(o->subject) : 0;
        const char *subj = natsMsg_GetSubject(m);
        /* --subject: a literal subject or "PREFIX.>" */
        bool match = o->subject == NULL || strcmp(subj, o->subject) == 0 ||
                     (plen >= 2 && strcmp(o->subject + plen - 2, ".>") == 0 &&
                      strncmp(subj, o->subject, plen - 1) == 0);
        if (match) {
            e = lt_envfile_write(w, (const uint8_t *)natsMsg_GetData(m),
                                 (size_t)natsMsg_GetDataLength(m), &why);
            if (e == LT_OK) {
                print_msg(m, seq);
                written++;
            }
        }
        natsMsg_Destroy(m);
        if (o->count > 0 && written >= o->count)
            break;
    }
    if (w != NULL) {
        lt_why cw = {{0}};
        lt_err ce = lt_envfile_close_writer(&w, &cw);
        if (e == LT_OK && ce != LT_OK) {
            e = ce;
            why = cw;
        }
    }
    if (e != LT_OK)
        fprintf(stderr, "lienthong bridge dump: %s\n", why.msg);
    fprintf(stderr, "lienthong bridge dump: %llu envelope%s written\n",
            (unsigned long long)written, written == 1 ? "" : "s");
    jsStreamInfo_Destroy(si);
    lt_bridge_nats_close(&nc, &js);
    return e == LT_OK ? 0 : 1;
}
