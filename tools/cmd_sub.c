/*
 * cmd_sub.c - `lienthong sub`: consume a queue as its owning agency. One JSON line per
 * delivered record (sequence, delivery count, source, topic, record type, the record as JSON,
 * and the envelope's verification re-checked here against the agency's own trust), then an
 * ack (or a nak with --nak). A record that fails the check is never acked: it is NAKed with
 * the reason, so the broker redelivers it until max_deliver and then dead-letters it with
 * that reason (nothing is skipped silently). Exits after -n records, or after --timeout
 * seconds without a delivery, or on SIGINT/SIGTERM.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "json.h"
#include "records.h"
#include "tool_client.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lt_cmd_sub_summary[] = "consume a queue: print each record as JSON, then ack it";

struct sub {
    lt_client *c;
    lt_trust *trust;
    uint64_t max;  /* -n: 0 = no limit */
    uint64_t seen; /* records printed */
    bool nak;
    uint32_t nak_delay_ms;
    bool error;
    lt_err error_code;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong sub -c AGENCY.yaml -q QUEUE [-n N] [--timeout S] [--credit C]\n"
            "                     [--from-seq S | --from-time ISO8601] [--nak [--nak-delay MS]]\n\n"
            "%s.\n\n"
            "  -c, --config FILE     agency config of the queue's owner\n"
            "  -q, --queue QUEUE     queue to consume\n"
            "  -n, --count N         exit after N records\n"
            "      --timeout S       exit after S seconds without a delivery\n"
            "      --credit C        deliveries held unacked at most (default 100)\n"
            "      --from-seq S      replay the queue's retained history from sequence S\n"
            "      --from-time T     replay from a time, e.g. 2025-07-01T00:00:00Z\n"
            "      --nak             refuse each delivery instead of acking it (redelivered)\n"
            "      --nak-delay MS    with --nak: redeliver no sooner than MS milliseconds\n"
            "  -e, --endpoint EP     broker endpoint instead of the config's\n\n"
            "stdout, one line per record: {\"queue\",\"seq\",\"delivery_count\",\"replay\",\n"
            "\"message_id\",\"source\",\"topic\",\"record_type\",\"created_ms\",\"verified\",\n"
            "\"verify_code\",\"verify_reason\",\"record\"}. Replayed records need no ack.\n"
            "A record that does not verify (verified:false) is NAKed with the reason, never\n"
            "acked: after the queue's max_deliver it is in the DLQ with that reason.\n",
            lt_cmd_sub_summary);
}

/* The record as a JSON object, or NULL with why set. */
static json_object *record_json(const char *type, const uint8_t *payload, size_t len,
                                lt_why *why)
{
    const ProtobufCMessageDescriptor *d = lt_records_find(type);
    if (d == NULL) {
        lt_fail(why, LT_ENOTFOUND, "unknown record type '%s'", type);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, payload);
    if (m == NULL) {
        lt_fail(why, LT_EPROTO, "payload is not a %s", type);
        return NULL;
    }
    json_object *o = NULL;
    if (lt_json_from_pb(m, &o, why) != LT_OK)
        o = NULL;
    protobuf_c_message_free_unpacked(m, NULL);
    return o;
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    struct sub *s = user;
    if (s->max > 0 && s->seen >= s->max)
        return; /* over -n: left unacked, the broker redelivers it to the next consumer */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "queue", json_object_new_string(d->queue));
    json_object_object_add(o, "seq", json_object_new_uint64(d->seq));
    json_object_object_add(o, "delivery_count", json_object_new_int64(d->delivery_count));
    json_object_object_add(o, "replay", json_object_new_boolean(d->replay));
    lt_why why = {{0}};
    lt_env *env = NULL;
    lt_err e = lt_env_decode(d->envelope, d->envelope_len, NULL, &env, &why);
    if (e == LT_OK) {
        char id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
        lt_tool_hex(lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN, id);
        json_object_object_add(o, "message_id", json_object_new_string(id));
        json_object_object_add(o, "source", json_object_new_string(lt_env_source(env)));
        json_object_object_add(o, "topic", json_object_new_string(lt_env_topic(env)));
        json_object_object_add(o, "record_type",
                               json_object_new_string(lt_env_record_type(env)));
        json_object_object_add(o, "created_ms", json_object_new_int64(lt_env_created_ms(env)));
        e = lt_env_verify_received(env, s->trust, lt_env_now_ms(), &why);
        if (e == LT_OK) /* the broker's rule: a record of the contract, nothing else */
            e = lt_env_check_record(env, &why);
    }
    json_object_object_add(o, "verified", json_object_new_boolean(e == LT_OK));
    json_object_object_add(o, "verify_code", json_object_new_string(lt_err_name(e)));
    if (e != LT_OK)
        json_object_object_add(o, "verify_reason", json_object_new_string(why.msg));
    if (env != NULL) {
        size_t len = 0;
        const uint8_t *payload = lt_env_payload(env, &len);
        lt_why rw = {{0}};
        json_object *rec = record_json(lt_env_record_type(env), payload, len, &rw);
        json_object_object_add(o, "record", rec);
        if (rec == NULL)
            json_object_object_add(o, "record_error", json_object_new_string(rw.msg));
        lt_env_destroy(&env);
    }
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
    s->seen++;
    if (d->replay)
        return;
    if (e != LT_OK) {
        char reason[LT_WHY_MAX + 64];
        snprintf(reason, sizeof reason, "lienthong sub: %s: %s", lt_err_name(e), why.msg);
        lt_client_nak(s->c, d->queue, d->seq, s->nak_delay_ms, reason);
    } else if (s->nak) {
        lt_client_nak(s->c, d->queue, d->seq, s->nak_delay_ms, "lienthong sub --nak");
    } else {
        lt_client_ack(s->c, d->queue, d->seq);
    }
}

static void on_error(void *user, lt_err code, const char *reason)
{
    struct sub *s = user;
    fprintf(stderr, "lienthong sub: broker refused: %s: %s\n", lt_err_name(code), reason);
    s->error = true;
    s->error_code = code;
}

int lt_cmd_sub(int argc, char **argv)
{
    enum { O_TIMEOUT = 256, O_CREDIT, O_FROM_SEQ, O_FROM_TIME, O_NAK, O_NAK_DELAY };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"credit", required_argument, NULL, O_CREDIT},
        {"from-seq", required_argument, NULL, O_FROM_SEQ},
        {"from-time", required_argument, NULL, O_FROM_TIME},
        {"nak", no_argument, NULL, O_NAK},
        {"nak-delay", required_argument, NULL, O_NAK_DELAY},
        {"endpoint", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *queue = NULL, *endpoint = NULL;
    uint64_t count = 0, timeout_s = 0, credit = 100, nak_delay = 0;
    lt_client_replay replay = {0, 0};
    bool nak = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:q:n:e:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'q': queue = optarg; break;
        case 'e': endpoint = optarg; break;
        case 'n': ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX, &count); break;
        case O_TIMEOUT: ok = lt_tool_parse_u64(optarg, 1, 86400 * 365, &timeout_s); break;
        case O_CREDIT: ok = lt_tool_parse_u64(optarg, 1, 1000000, &credit); break;
        case O_FROM_SEQ: ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX, &replay.from_seq); break;
        case O_FROM_TIME: ok = lt_tool_parse_iso8601(optarg, &replay.from_unix_ms); break;
        case O_NAK: nak = true; break;
        case O_NAK_DELAY: ok = lt_tool_parse_u64(optarg, 0, UINT32_MAX, &nak_delay); break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong sub: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "lienthong sub: bad value '%s' for %s\n", optarg, argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong sub: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (cfg_path == NULL || queue == NULL) {
        fprintf(stderr, "lienthong sub: -c AGENCY.yaml and -q QUEUE are required\n");
        return 2;
    }
    if (replay.from_seq != 0 && replay.from_unix_ms != 0) {
        fprintf(stderr, "lienthong sub: --from-seq and --from-time exclude each other\n");
        return 2;
    }

    lt_tool_catch_stop();

    lt_why why = {{0}};
    lt_client_opts o = {.client_name = "lienthong-sub/" LT_VERSION};
    lt_tool_conn tc = {0};
    struct sub s = {.max = count, .nak = nak, .nak_delay_ms = (uint32_t)nak_delay};
    lt_err e = lt_tool_connect(cfg_path, endpoint, &o, true, &tc, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_trust(tc.cfg, &s.trust, &why);
    if (e == LT_OK) {
        s.c = tc.client;
        lt_client_set_error_cb(s.c, on_error, &s);
        e = lt_client_subscribe(s.c, queue, (uint32_t)credit,
                                replay.from_seq || replay.from_unix_ms ? &replay : NULL,
                                on_deliver, &s, &why);
    }
    if (e != LT_OK) {
        fprintf(stderr, "lienthong sub: %s\n", why.msg);
        lt_trust_destroy(&s.trust);
        lt_tool_disconnect(&tc);
        return 1;
    }
    int64_t last = lt_tool_mono_ms();
    while (!lt_tool_stopping() && !s.error && (count == 0 || s.seen < count)) {
        int64_t now = lt_tool_mono_ms();
        if (timeout_s > 0 && now - last >= (int64_t)timeout_s * 1000)
            break;
        uint64_t before = s.seen;
        e = lt_client_poll(s.c, 200, NULL);
        if (e != LT_OK) {
            fprintf(stderr, "lienthong sub: receive failed: %s\n", lt_err_str(e));
            break;
        }
        if (s.seen != before)
            last = lt_tool_mono_ms();
    }
    lt_client_flush(s.c, 2000); /* the last acks */
    fprintf(stderr, "lienthong sub: %llu record%s from %s\n", (unsigned long long)s.seen,
            s.seen == 1 ? "" : "s", queue);
    lt_trust_destroy(&s.trust);
    lt_tool_disconnect(&tc);
    return s.error || e != LT_OK ? 1 : 0;
}
