/*
 * cmd_pub.c - `lienthong pub`: seal records as an agency (as `sign` does) and publish them to
 * the broker, pipelined. One JSON line per answer on stdout, a summary line on stderr.
 *
 * A publish that times out or loses its connection is republished (same envelope, same
 * message id: the broker acks a message it already holds as a duplicate) up to --retries
 * times. Exit status: 0 when every message was acked, 1 when any was NACKed or could not be
 * delivered, 2 for a usage error.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "envfile.h"
#include "fileio.h"
#include "json.h"
#include "records.h"
#include "tool_client.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lt_cmd_pub_summary[] = "seal records as an agency and publish them to the broker";

#define PUB_FILE_MAX (256u << 20)
#define PUB_BATCH_MAX 4096

struct pub;

/* One message until its final answer: the user pointer of its publish callback. */
struct msg {
    struct pub *p;
    uint8_t *env;
    size_t len;
    char id[2 * LT_ENV_MESSAGE_ID_LEN + 1]; /* "" when unknown (a raw envelope) */
    unsigned tries;
    struct msg *next; /* retry list */
};

/* Room to seal one batch (heap: a batch of PUB_BATCH_MAX is too big for the stack). */
struct scratch {
    lt_env_spec specs[PUB_BATCH_MAX];
    uint8_t ids[PUB_BATCH_MAX][LT_ENV_MESSAGE_ID_LEN];
    uint8_t *outs[PUB_BATCH_MAX];
    size_t lens[PUB_BATCH_MAX];
};

struct pub {
    struct scratch w;
    lt_client *c;
    bool quiet;
    unsigned retries;
    int64_t deliver_at_ms; /* 0: at once */
    uint64_t sent, acked, dups, nacked, failed;
    struct msg *retry_head, *retry_tail;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong pub -c AGENCY.yaml -t TOPIC --type RECORD_TYPE\n"
            "                     (--json JSON | -f FILE.jsonl) [--batch N] [--count N]\n"
            "                     [--rate R] [options]\n"
            "       lienthong pub -c AGENCY.yaml --file-envelopes FILE [options]\n\n"
            "%s.\n\n"
            "  -c, --config FILE        agency config (agencies/<short>.yaml from dev-init)\n"
            "  -t, --topic TOPIC        topic, e.g. 79.760.hotich.khaisinh\n"
            "      --type TYPE          record type (lienthong.v1.records.X, or just X)\n"
            "  -j, --json JSON          one record as JSON\n"
            "  -f, --file FILE          records as JSON, one per line ('-': stdin)\n"
            "  -b, --batch N            seal N envelopes under one batch signature\n"
            "      --count N            publish N messages, cycling through the records\n"
            "                           (each with a new message id; default: each once)\n"
            "      --rate R             at most R messages per second\n"
            "      --file-envelopes F   publish prebuilt envelopes from a length-delimited\n"
            "                           file (as written by `lienthong sign`), unchanged\n"
            "  -e, --endpoint EP        broker endpoint instead of the config's\n"
            "      --window N           publishes in flight at most (default %d)\n"
            "      --ack-timeout S      seconds to wait for each answer (default %d)\n"
            "      --retries N          republish after a timeout or lost connection (3)\n"
            "      --no-auth            do not authenticate the connection first\n"
            "      --delay MS           scheduled delivery: stored and acked now, delivered\n"
            "                           MS milliseconds from now\n"
            "      --deliver-at TIME    scheduled delivery at TIME (2026-12-31T08:00:00Z)\n"
            "  -q, --quiet              no line per answer, only the summary\n\n"
            "stdout: one JSON line per answer, as answers arrive:\n"
            "  {\"tag\":7,\"seq\":1234,\"duplicate\":false,\"message_id\":\"...\"}  accepted\n"
            "  {\"tag\":8,\"code\":\"BAD_SIGNATURE\",\"reason\":\"...\",\"message_id\":\"...\"}"
            "  refused\n"
            "  tag: the publish's number on this connection (1, 2, 3 ...; a retry gets a new\n"
            "       one), echoed by the broker; seq: the broker's stored sequence number;\n"
            "  code: the wire NackCode name (`lienthong codes` lists names and numbers).\n"
            "  TIMED_OUT, CLOSED and BUSY are retried (--retries) before they are printed.\n"
            "stderr: a summary. Exit 1 if any message was refused or not delivered.\n",
            lt_cmd_pub_summary, LT_CLIENT_WINDOW_DEFAULT, LT_CLIENT_ACK_TIMEOUT_MS_DEFAULT / 1000);
}

static void free_msg(struct msg *m)
{
    free(m->env);
    free(m);
}

static void print_line(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

static void on_answer(void *user, uint64_t tag, lt_err code, uint64_t seq, bool duplicate,
                      const char *reason)
{
    struct msg *m = user;
    struct pub *p = m->p;
    /* BUSY: the broker had no room for it now (see docs/security.md); like a timeout,
     * publishing again is safe (the broker dedups by message id) */
    if ((code == LT_ETIMEDOUT || code == LT_ECLOSED || code == LT_EBUSY) &&
        m->tries <= p->retries) {
        m->next = NULL;
        if (p->retry_tail != NULL)
            p->retry_tail->next = m;
        else
            p->retry_head = m;
        p->retry_tail = m;
        return;
    }
    if (code == LT_OK) {
        p->acked++;
        p->dups += duplicate;
    } else if (code == LT_ETIMEDOUT || code == LT_ECLOSED) {
        p->failed++;
    } else {
        p->nacked++;
    }
    if (!p->quiet) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "tag", json_object_new_uint64(tag));
        if (code == LT_OK) {
            json_object_object_add(o, "seq", json_object_new_uint64(seq));
            json_object_object_add(o, "duplicate", json_object_new_boolean(duplicate));
        } else {
            json_object_object_add(o, "code", json_object_new_string(lt_err_name(code)));
            json_object_object_add(o, "reason", json_object_new_string(reason));
        }
        if (m->id[0] != '\0')
            json_object_object_add(o, "message_id", json_object_new_string(m->id));
        print_line(o);
    }
    free_msg(m);
}

/* Hand m to the client; on failure it is counted and freed. On LT_OK m belongs to on_answer,
 * which may free it in any later client call (lib/client.h, Callbacks): nothing of m is read
 * after a successful publish, so everything this needs is taken before. */
static void send_msg(struct pub *p, struct msg *m)
{
    p->sent += m->tries == 0; /* a message counts once, however often it is retried */
    m->tries++;
    lt_err e = lt_client_publish_at(p->c, m->env, m->len, p->deliver_at_ms, on_answer, m, NULL);
    if (e == LT_OK)
        return;
    p->failed++;
    if (!p->quiet) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "tag", json_object_new_uint64(0));
        json_object_object_add(o, "code", json_object_new_string(lt_err_name(e)));
        json_object_object_add(o, "reason",
                               json_object_new_string(e == LT_ETIMEDOUT
                                                          ? "broker not reachable: not sent"
                                                          : lt_err_str(e)));
        if (m->id[0] != '\0')
            json_object_object_add(o, "message_id", json_object_new_string(m->id));
        print_line(o);
    }
    free_msg(m);
}

static void send_retries(struct pub *p)
{
    while (p->retry_head != NULL) {
        struct msg *m = p->retry_head;
        p->retry_head = m->next;
        if (p->retry_head == NULL)
            p->retry_tail = NULL;
        send_msg(p, m);
    }
}

/* Wait (pumping answers) until message number i may go out under --rate. */
static void pace(struct pub *p, double rate, int64_t t0, uint64_t i)
{
    if (rate <= 0)
        return;
    int64_t due = t0 + (int64_t)((double)i * 1000.0 / rate);
    for (int guard = 0; guard < 100000; guard++) {
        int64_t now = lt_tool_mono_ms();
        if (now >= due)
            return;
        lt_client_poll(p->c, (int)(due - now), NULL);
    }
}

/* The records to publish, as serialized payloads. */
struct payloads {
    uint8_t **data;
    size_t *len;
    size_t n, cap;
};

static lt_err add_record(struct payloads *pl, const char *type, const char *text, size_t len,
                         size_t line, lt_why *why)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 16;
        uint8_t **d = realloc(pl->data, cap * sizeof *d);
        if (d == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        pl->data = d;
        size_t *l = realloc(pl->len, cap * sizeof *l);
        if (l == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        pl->len = l;
        pl->cap = cap;
    }
    lt_why w = {{0}};
    lt_err e = lt_json_text_to_payload(type, text, len, &pl->data[pl->n], &pl->len[pl->n], &w);
    if (e != LT_OK) {
        if (line > 0)
            return lt_fail(why, e, "line %zu: %s", line, w.msg);
        return lt_fail(why, e, "%s", w.msg);
    }
    pl->n++;
    return LT_OK;
}

static void free_payloads(struct payloads *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->data[i]);
    free(pl->data);
    free(pl->len);
}

static lt_err load_jsonl(struct payloads *pl, const char *type, const char *path, lt_why *why)
{
    size_t len = 0;
    char *text = NULL;
    lt_err e = strcmp(path, "-") == 0
                   ? lt_file_read_stream(stdin, "-", PUB_FILE_MAX, &text, &len, why)
                   : lt_file_read(path, PUB_FILE_MAX, &text, &len, why);
    if (e != LT_OK)
        return e;
    size_t line = 0;
    for (char *s = text; e == LT_OK && s < text + len;) {
        char *nl = memchr(s, '\n', (size_t)(text + len - s));
        char *end = nl != NULL ? nl : text + len;
        line++;
        const char *q = s;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < end)
            e = add_record(pl, type, s, (size_t)(end - s), line, why);
        s = end + 1;
    }
    free(text);
    if (e == LT_OK && pl->n == 0)
        e = lt_fail(why, LT_EINVAL, "%s: no records", path);
    return e;
}

/* Seal k messages (ids fresh) from payload indexes [first, first + k) mod n and send them. */
static lt_err seal_and_send(struct pub *p, lt_signer *signer, const struct payloads *pl,
                            const char *topic, const char *type, uint64_t first, size_t k,
                            bool batch, double rate, int64_t t0, lt_why *why)
{
    struct scratch *w = &p->w;
    lt_env_spec *specs = w->specs;
    uint8_t(*ids)[LT_ENV_MESSAGE_ID_LEN] = w->ids;
    uint8_t **outs = w->outs;
    size_t *lens = w->lens;
    int64_t now = lt_env_now_ms();
    for (size_t i = 0; i < k; i++) {
        lt_err e = lt_env_uuid7(now, ids[i], why);
        if (e != LT_OK)
            return e;
        size_t r = (size_t)((first + i) % pl->n);
        specs[i] = (lt_env_spec){.message_id = ids[i],
                                 .topic = topic,
                                 .record_type = type,
                                 .payload = pl->data[r],
                                 .payload_len = pl->len[r]};
    }
    if (batch) {
        lt_err e = lt_env_seal_batch(signer, specs, k, outs, lens, why);
        if (e != LT_OK)
            return e;
    } else {
        for (size_t i = 0; i < k; i++) {
            lt_err e = lt_env_seal(signer, &specs[i], &outs[i], &lens[i], why);
            if (e != LT_OK) {
                for (size_t j = 0; j < i; j++)
                    free(outs[j]);
                return e;
            }
        }
    }
    for (size_t i = 0; i < k; i++) {
        struct msg *m = calloc(1, sizeof *m);
        if (m == NULL) {
            for (size_t j = i; j < k; j++)
                free(outs[j]);
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        m->p = p;
        m->env = outs[i];
        m->len = lens[i];
        lt_tool_hex(ids[i], LT_ENV_MESSAGE_ID_LEN, m->id);
        pace(p, rate, t0, first + i);
        send_msg(p, m);
        send_retries(p);
    }
    return LT_OK;
}

static lt_err publish_file(struct pub *p, const char *path, double rate, int64_t t0,
                           lt_why *why)
{
    lt_envfile_reader *r = NULL;
    lt_err e = lt_envfile_open_reader(path, LT_CLIENT_MAX_FRAME_DEFAULT, &r, why);
    if (e != LT_OK)
        return e;
    for (uint64_t i = 0;; i++) {
        const uint8_t *item = NULL;
        size_t len = 0;
        e = lt_envfile_read(r, &item, &len, why);
        if (e == LT_ENOTFOUND) {
            e = LT_OK;
            break;
        }
        if (e != LT_OK)
            break;
        struct msg *m = calloc(1, sizeof *m);
        if (m == NULL || (m->env = malloc(len)) == NULL) {
            free(m);
            e = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        memcpy(m->env, item, len);
        m->len = len;
        m->p = p;
        lt_env *env = NULL;
        if (lt_env_decode(item, len, NULL, &env, NULL) == LT_OK) {
            lt_tool_hex(lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN, m->id);
            lt_env_destroy(&env);
        }
        pace(p, rate, t0, i);
        send_msg(p, m);
        send_retries(p);
    }
    lt_envfile_close_reader(&r);
    return e;
}

int lt_cmd_pub(int argc, char **argv)
{
    enum { O_TYPE = 256, O_COUNT, O_RATE, O_FILE_ENV, O_WINDOW, O_ACK_TIMEOUT,
           O_RETRIES, O_NO_AUTH, O_DELAY, O_DELIVER_AT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"topic", required_argument, NULL, 't'},
        {"type", required_argument, NULL, O_TYPE},
        {"json", required_argument, NULL, 'j'},
        {"file", required_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"count", required_argument, NULL, O_COUNT},
        {"rate", required_argument, NULL, O_RATE},
        {"file-envelopes", required_argument, NULL, O_FILE_ENV},
        {"endpoint", required_argument, NULL, 'e'},
        {"window", required_argument, NULL, O_WINDOW},
        {"ack-timeout", required_argument, NULL, O_ACK_TIMEOUT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"no-auth", no_argument, NULL, O_NO_AUTH},
        {"delay", required_argument, NULL, O_DELAY},
        {"deliver-at", required_argument, NULL, O_DELIVER_AT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *topic = NULL, *type_arg = NULL, *json = NULL, *file = NULL;
    const char *env_file = NULL, *endpoint = NULL;
    uint64_t batch = 1, count = 0, window = 0, ack_timeout_s = 0, retries = 3;
    double rate = 0;
    int64_t deliver_at = 0;
    bool auth = true, quiet = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:t:f:e:j:b:qh", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 't': topic = optarg; break;
        case O_TYPE: type_arg = optarg; break;
        case 'j': json = optarg; break;
        case 'f': file = optarg; break;
        case O_FILE_ENV: env_file = optarg; break;
        case 'e': endpoint = optarg; break;
        case 'q': quiet = true; break;
        case O_NO_AUTH: auth = false; break;
        case O_DELAY: {
            uint64_t d = 0;
            ok = lt_tool_parse_u64(optarg, 1, 3660ULL * 86400 * 1000, &d);
            deliver_at = lt_env_now_ms() + (int64_t)d;
            break;
        }
        case O_DELIVER_AT: {
            int64_t t = 0;
            ok = lt_tool_parse_iso8601(optarg, &t);
            deliver_at = t;
            break;
        }
        case 'b': ok = lt_tool_parse_u64(optarg, 1, PUB_BATCH_MAX, &batch); break;
        case O_COUNT: ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX / 2, &count); break;
        case O_WINDOW: ok = lt_tool_parse_u64(optarg, 1, 1u << 20, &window); break;
        case O_ACK_TIMEOUT: ok = lt_tool_parse_u64(optarg, 1, 86400, &ack_timeout_s); break;
        case O_RETRIES: ok = lt_tool_parse_u64(optarg, 0, 1000, &retries); break;
        case O_RATE: {
            char *end = NULL;
            rate = strtod(optarg, &end);
            ok = end != optarg && *end == '\0' && rate > 0 && rate < 1e9;
            break;
        }
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong pub: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "lienthong pub: bad value '%s' for %s\n", optarg, argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong pub: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (cfg_path == NULL) {
        fprintf(stderr, "lienthong pub: -c AGENCY.yaml is required\n");
        return 2;
    }
    if (env_file == NULL && (topic == NULL || type_arg == NULL || (json == NULL) == (file == NULL))) {
        fprintf(stderr, "lienthong pub: need -t TOPIC, --type TYPE and one of --json, -f "
                        "(or --file-envelopes)\n");
        return 2;
    }
    if (env_file != NULL && (json != NULL || file != NULL)) {
        fprintf(stderr, "lienthong pub: --file-envelopes excludes --json and -f\n");
        return 2;
    }

    char type[LT_ENV_RECORD_TYPE_MAX + 1] = "";
    if (type_arg != NULL)
        snprintf(type, sizeof type, "%s%s",
                 strchr(type_arg, '.') != NULL ? "" : "lienthong.v1.records.", type_arg);
    lt_why why = {{0}};
    struct payloads pl = {0};
    lt_err e = LT_OK;
    if (json != NULL)
        e = add_record(&pl, type, json, strlen(json), 0, &why);
    else if (file != NULL)
        e = load_jsonl(&pl, type, file, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong pub: %s\n", why.msg);
        free_payloads(&pl);
        return 1;
    }

    lt_client_opts o = {.window = (unsigned)window,
                        .ack_timeout_ms = (int)ack_timeout_s * 1000,
                        .client_name = "lienthong-pub/" LT_VERSION};
    lt_tool_conn tc = {0};
    e = lt_tool_connect(cfg_path, endpoint, &o, auth, &tc, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong pub: %s\n", why.msg);
        free_payloads(&pl);
        return 1;
    }
    struct pub *pp = calloc(1, sizeof *pp);
    if (pp == NULL) {
        fprintf(stderr, "lienthong pub: out of memory\n");
        lt_tool_disconnect(&tc);
        free_payloads(&pl);
        return 1;
    }
    pp->c = tc.client;
    pp->quiet = quiet;
    pp->deliver_at_ms = deliver_at;
    pp->retries = (unsigned)retries;
    int64_t t0 = lt_tool_mono_ms();
    if (env_file != NULL) {
        e = publish_file(pp, env_file, rate, t0, &why);
    } else {
        if (count == 0)
            count = pl.n;
        for (uint64_t i = 0; e == LT_OK && i < count; i += batch) {
            size_t k = (size_t)(count - i < batch ? count - i : batch);
            e = seal_and_send(pp, tc.signer, &pl, topic, type, i, k, batch > 1, rate, t0, &why);
        }
    }
    /* Wait for every answer, republishing what timed out, boundedly. */
    for (unsigned round = 0; round < 1000 && (lt_client_inflight(pp->c) > 0 || pp->retry_head);
         round++) {
        send_retries(pp);
        lt_client_flush(pp->c, 1000);
    }
    send_retries(pp);
    lt_client_flush(pp->c, o.ack_timeout_ms > 0 ? o.ack_timeout_ms : -1);
    pp->retries = 0; /* closing completes what is still in flight: count it failed */
    lt_client_close(&tc.client);
    while (pp->retry_head != NULL) { /* out of rounds: what is left failed */
        struct msg *m = pp->retry_head;
        pp->retry_head = m->next;
        pp->failed++;
        free_msg(m);
    }
    double secs = (double)(lt_tool_mono_ms() - t0) / 1000.0;
    fflush(stdout);
    if (e != LT_OK)
        fprintf(stderr, "lienthong pub: %s\n", why.msg);
    fprintf(stderr,
            "lienthong pub: %llu sent, %llu acked (%llu duplicate), %llu nacked, %llu failed "
            "in %.2f s: %.0f msgs/s\n",
            (unsigned long long)pp->sent, (unsigned long long)pp->acked,
            (unsigned long long)pp->dups, (unsigned long long)pp->nacked,
            (unsigned long long)pp->failed, secs, secs > 0 ? (double)pp->acked / secs : 0.0);
    int rc = e != LT_OK || pp->nacked > 0 || pp->failed > 0 ? 1 : 0;
    lt_tool_disconnect(&tc);
    free(pp);
    free_payloads(&pl);
    return rc;
}
