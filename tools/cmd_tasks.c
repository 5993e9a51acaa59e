/*
 * cmd_tasks.c - `lienthong tasks`: the city's instant-task reminder service ("giao việc tức
 * thời - nhắc việc thông minh") as a client of the broker. No state of its own: the
 * reminders are scheduled records in the broker (Publish.deliver_at_unix_ms), and their
 * message ids are derived from (task, kind, offset), so
 *
 *   - a TaskAssignment on topic T schedules a TaskReminder for the assignee at each offset
 *     before the deadline (on T.nhacviec) and one OVERDUE TaskReminder for the assigner at
 *     the deadline (on T.quahan); offsets already past are skipped, an overdue task
 *     escalates at once;
 *   - a TaskStatusUpdate DONE or CANCELLED (on T.trangthai, by anyone the broker's ACL lets
 *     publish there) cancels them all (CANCEL of each derived id);
 *   - a redelivery or a second run re-publishes the same ids: the broker's dedup answers
 *     "duplicate" and nothing is scheduled twice, a cancelled reminder stays cancelled, and
 *     an overdue task escalates once.
 *
 * The service runs as the agency whose config it is given (the city office), which signs
 * every reminder. A delivery is acked once every publish and cancel it caused is answered;
 * one that could not be carried out is NAKed (redelivered, then dead-lettered with the
 * reason). Records that do not verify are NAKed with the reason, never acted on.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "lienthong/v1/records/task.pb-c.h"
#include "tool_client.h"

#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OFFSETS 8
#define REMINDER_TYPE "lienthong.v1.records.TaskReminder"

const char lt_cmd_tasks_summary[] =
    "task reminder service: schedule reminders and overdue warnings for assigned tasks";

struct svc {
    lt_client *c;
    lt_signer *signer;
    lt_trust *trust;
    int64_t offsets[MAX_OFFSETS]; /* ms before the deadline, as configured */
    size_t noffsets;
    double scale;                 /* offsets are divided by it (compressed time for demos) */
    uint64_t seen, scheduled, cancelled, refused;
    unsigned pending;             /* publishes/cancels of the current delivery not answered */
    bool failed;                  /* one of them was refused: NAK the delivery */
    char fail_reason[LT_WHY_MAX];
    uint64_t max;
    /* the delivery being handled (credit 1: one at a time), copied out of the callback so
     * that it is handled outside the client's callbacks */
    bool has_cur;
    char cur_queue[256];
    uint64_t cur_seq;
    uint8_t *cur_env;
    size_t cur_len;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong tasks -c AGENCY.yaml -q QUEUE [--remind LIST] [--time-scale N]\n"
            "                       [-n N] [--timeout S]\n\n"
            "%s.\n\n"
            "  -c, --config FILE     the agency that signs the reminders (the city office)\n"
            "  -q, --queue QUEUE     its queue of TaskAssignment and TaskStatusUpdate records\n"
            "      --remind LIST     reminders before the deadline, e.g. 3d,1d,2h (units s m h d;\n"
            "                        default 3d,1d,2h); keep it the same across runs: cancels\n"
            "                        find reminders by it\n"
            "      --time-scale N    divide the offsets by N (a demo: 86400 makes a day a second)\n"
            "  -n, --count N         exit after N records\n"
            "      --timeout S       exit after S seconds without a record\n"
            "  -e, --endpoint EP     broker endpoint instead of the config's\n\n"
            "A TaskAssignment on topic T schedules TaskReminder records: one per offset for the\n"
            "assignee on T.nhacviec, and an overdue warning for the assigner on T.quahan at the\n"
            "deadline. A TaskStatusUpdate DONE or CANCELLED (on T.trangthai) cancels them.\n"
            "stdout: one JSON line per record handled. Exit 1 on a broker or config error.\n",
            lt_cmd_tasks_summary);
}

/* "3d,1d,2h" -> ms offsets. */
static bool parse_offsets(const char *s, int64_t *out, size_t *n)
{
    *n = 0;
    while (*s) {
        char *end = NULL;
        long long v = strtoll(s, &end, 10);
        if (end == s || v <= 0 || *n == MAX_OFFSETS)
            return false;
        int64_t unit;
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60000; break;
        case 'h': unit = 3600000; break;
        case 'd': unit = 86400000; break;
        default: return false;
        }
        if (v > 3660LL * 86400000 / unit)
            return false;
        out[(*n)++] = (int64_t)v * unit;
        s = end + 1;
        if (*s == ',')
            s++;
        else if (*s)
            return false;
    }
    return *n > 0;
}

/* The message id of reminder (task, kind, offset): SHA-256 of them, as a UUIDv8. */
static void reminder_id(const char *source, const char *task, const char *kind, int64_t offset,
                        uint8_t id[LT_ENV_MESSAGE_ID_LEN])
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "lienthong tasks v1%c%s%c%s%c%s%c%lld", 0, source, 0,
                     task, 0, kind, 0, (long long)offset);
    uint8_t h[32];
    unsigned hl = 0;
    EVP_Digest(buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, h, &hl,
               EVP_sha256(), NULL);
    memcpy(id, h, LT_ENV_MESSAGE_ID_LEN);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x80); /* version 8 */
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant */
}

static void on_answer(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                      const char *reason)
{
    (void)tag;
    (void)seq;
    (void)dup;
    struct svc *s = user;
    if (s->pending > 0)
        s->pending--;
    /* a cancel of what is not scheduled (any more) is what we wanted */
    if (code != LT_OK && code != LT_ENOT_SCHEDULED && !s->failed) {
        s->failed = true;
        snprintf(s->fail_reason, sizeof s->fail_reason, "%s: %s", lt_err_name(code),
                 reason ? reason : "");
    }
}

/* Seal one TaskReminder and publish it for delivery at `at`. */
static lt_err schedule(struct svc *s, const char *topic, const uint8_t id[16],
                       Lienthong__V1__Records__TaskReminder *r, int64_t at, lt_why *why)
{
    size_t n = lienthong__v1__records__task_reminder__get_packed_size(r);
    uint8_t *payload = malloc(n ? n : 1);
    if (!payload)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lienthong__v1__records__task_reminder__pack(r, payload);
    lt_env_spec spec = {.message_id = id,
                        .topic = topic,
                        .record_type = REMINDER_TYPE,
                        .payload = payload,
                        .payload_len = n};
    uint8_t *env = NULL;
    size_t len = 0;
    lt_err e = lt_env_seal(s->signer, &spec, &env, &len, why);
    free(payload);
    if (e != LT_OK)
        return e;
    e = lt_client_publish_at(s->c, env, len, at, on_answer, s, NULL);
    free(env);
    if (e != LT_OK)
        return lt_fail(why, e, "publish of a reminder failed: %s", lt_err_str(e));
    s->pending++;
    s->scheduled++;
    return LT_OK;
}

/* The deadline of t in Unix ms: deadline_unix_ms, or 17:00 (Vietnam, UTC+7) of `deadline`. */
static int64_t deadline_of(const Lienthong__V1__Records__TaskAssignment *t)
{
    if (t->deadline_unix_ms > 0)
        return t->deadline_unix_ms;
    int y, m, d;
    if (!t->deadline || sscanf(t->deadline, "%4d-%2d-%2d", &y, &m, &d) != 3)
        return 0;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 10};
    time_t u = timegm(&tm); /* 17:00 at UTC+7 is 10:00 UTC */
    return u == (time_t)-1 ? 0 : (int64_t)u * 1000;
}

static lt_err on_assignment(struct svc *s, const char *topic, const char *source,
                            const Lienthong__V1__Records__TaskAssignment *t, json_object *o,
                            lt_why *why)
{
    if (!t->task_id || !t->task_id[0])
        return lt_fail(why, LT_EVALIDATE, "TaskAssignment without task_id");
    int64_t deadline = deadline_of(t);
    if (deadline <= 0)
        return lt_fail(why, LT_EVALIDATE, "task %s has no usable deadline", t->task_id);
    json_object_object_add(o, "deadline_unix_ms", json_object_new_int64(deadline));
    if (t->status == LIENTHONG__V1__RECORDS__TASK_STATUS__TASK_STATUS_DONE ||
        t->status == LIENTHONG__V1__RECORDS__TASK_STATUS__TASK_STATUS_CANCELLED) {
        json_object_object_add(o, "action", json_object_new_string("none: task already ended"));
        return LT_OK;
    }
    int64_t now = lt_env_now_ms();
    char rt[600], et[600];
    snprintf(rt, sizeof rt, "%s.nhacviec", topic);
    snprintf(et, sizeof et, "%s.quahan", topic);
    json_object *when = json_object_new_array();
    json_object_object_add(o, "reminders", when);
    for (size_t i = 0; i < s->noffsets; i++) {
        int64_t before = (int64_t)((double)s->offsets[i] / s->scale);
        int64_t at = deadline - before;
        if (at <= now)
            continue; /* that reminder's time has passed */
        Lienthong__V1__Records__TaskReminder r = LIENTHONG__V1__RECORDS__TASK_REMINDER__INIT;
        char msg[512], left[32];
        int64_t off = s->offsets[i]; /* as configured: what the reader understands */
        if (off % 86400000 == 0)
            snprintf(left, sizeof left, "%lld ngày", (long long)(off / 86400000));
        else if (off % 3600000 == 0)
            snprintf(left, sizeof left, "%lld giờ", (long long)(off / 3600000));
        else
            snprintf(left, sizeof left, "%lld phút", (long long)(off / 60000));
        snprintf(msg, sizeof msg, "Nhắc việc: %s - còn %s đến hạn.",
                 t->title ? t->title : t->task_id, left);
        r.task_id = t->task_id;
        r.kind = LIENTHONG__V1__RECORDS__TASK_REMINDER_KIND__TASK_REMINDER_KIND_BEFORE_DEADLINE;
        r.to = t->assignee;
        r.title = t->title;
        r.deadline_unix_ms = deadline;
        r.remind_unix_ms = at;
        r.before_deadline_ms = before;
        r.priority = t->priority;
        r.message = msg;
        uint8_t id[16];
        reminder_id(source, t->task_id, "before", s->offsets[i], id);
        lt_err e = schedule(s, rt, id, &r, at, why);
        if (e != LT_OK)
            return e;
        json_object_array_add(when, json_object_new_int64(at));
    }
    Lienthong__V1__Records__TaskReminder r = LIENTHONG__V1__RECORDS__TASK_REMINDER__INIT;
    char msg[512];
    snprintf(msg, sizeof msg, "Cảnh báo quá hạn: %s - chưa hoàn thành đúng hạn.",
             t->title ? t->title : t->task_id);
    r.task_id = t->task_id;
    r.kind = LIENTHONG__V1__RECORDS__TASK_REMINDER_KIND__TASK_REMINDER_KIND_OVERDUE;
    r.to = t->assigner;
    r.title = t->title;
    r.deadline_unix_ms = deadline;
    r.remind_unix_ms = deadline;
    r.priority = t->priority;
    r.message = msg;
    uint8_t id[16];
    reminder_id(source, t->task_id, "overdue", 0, id);
    json_object_object_add(o, "overdue_at", json_object_new_int64(deadline));
    return schedule(s, et, id, &r, deadline, why);
}

static lt_err on_update(struct svc *s, const Lienthong__V1__Records__TaskStatusUpdate *u,
                        json_object *o, lt_why *why)
{
    if (!u->task_id || !u->task_id[0])
        return lt_fail(why, LT_EVALIDATE, "TaskStatusUpdate without task_id");
    if (u->status != LIENTHONG__V1__RECORDS__TASK_STATUS__TASK_STATUS_DONE &&
        u->status != LIENTHONG__V1__RECORDS__TASK_STATUS__TASK_STATUS_CANCELLED) {
        json_object_object_add(o, "action", json_object_new_string("none: task goes on"));
        return LT_OK;
    }
    /* the reminders are ours: derived from our own agency id */
    const char *self = lt_signer_agency(s->signer);
    for (size_t i = 0; i <= s->noffsets; i++) {
        uint8_t id[16];
        if (i < s->noffsets)
            reminder_id(self, u->task_id, "before", s->offsets[i], id);
        else
            reminder_id(self, u->task_id, "overdue", 0, id);
        lt_err e = lt_client_cancel(s->c, id, on_answer, s, NULL);
        if (e != LT_OK)
            return lt_fail(why, e, "cancel failed: %s", lt_err_str(e));
        s->pending++;
        s->cancelled++;
    }
    json_object_object_add(o, "action", json_object_new_string("reminders cancelled"));
    return LT_OK;
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    struct svc *s = user;
    if (d->replay || s->has_cur)
        return; /* one at a time: an extra one is redelivered after ack_wait */
    s->cur_env = malloc(d->envelope_len ? d->envelope_len : 1);
    if (!s->cur_env)
        return;
    memcpy(s->cur_env, d->envelope, d->envelope_len);
    s->cur_len = d->envelope_len;
    s->cur_seq = d->seq;
    snprintf(s->cur_queue, sizeof s->cur_queue, "%s", d->queue);
    s->has_cur = true;
}

/* Handle the delivery on_deliver kept, then ack or nak it. */
static void handle(struct svc *s)
{
    lt_client_delivery dd = {.queue = s->cur_queue,
                             .seq = s->cur_seq,
                             .envelope = s->cur_env,
                             .envelope_len = s->cur_len};
    const lt_client_delivery *d = &dd;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "seq", json_object_new_uint64(d->seq));
    lt_why why = {{0}};
    lt_env *env = NULL;
    lt_err e = lt_env_decode(d->envelope, d->envelope_len, NULL, &env, &why);
    if (e == LT_OK)
        e = lt_env_verify_received(env, s->trust, lt_env_now_ms(), &why);
    if (e == LT_OK)
        e = lt_env_check_record(env, &why);
    s->failed = false;
    s->pending = 0;
    if (e == LT_OK) {
        const char *type = lt_env_record_type(env);
        size_t plen = 0;
        const uint8_t *payload = lt_env_payload(env, &plen);
        json_object_object_add(o, "record_type", json_object_new_string(type));
        json_object_object_add(o, "source", json_object_new_string(lt_env_source(env)));
        if (strcmp(type, "lienthong.v1.records.TaskAssignment") == 0) {
            Lienthong__V1__Records__TaskAssignment *t =
                lienthong__v1__records__task_assignment__unpack(NULL, plen, payload);
            if (!t) {
                e = lt_fail(&why, LT_EPAYLOAD, "payload is not a TaskAssignment");
            } else {
                json_object_object_add(o, "task_id", json_object_new_string(t->task_id));
                e = on_assignment(s, lt_env_topic(env), lt_signer_agency(s->signer), t, o,
                                  &why);
                lienthong__v1__records__task_assignment__free_unpacked(t, NULL);
            }
        } else if (strcmp(type, "lienthong.v1.records.TaskStatusUpdate") == 0) {
            Lienthong__V1__Records__TaskStatusUpdate *u =
                lienthong__v1__records__task_status_update__unpack(NULL, plen, payload);
            if (!u) {
                e = lt_fail(&why, LT_EPAYLOAD, "payload is not a TaskStatusUpdate");
            } else {
                json_object_object_add(o, "task_id", json_object_new_string(u->task_id));
                e = on_update(s, u, o, &why);
                lienthong__v1__records__task_status_update__free_unpacked(u, NULL);
            }
        } else {
            json_object_object_add(o, "action", json_object_new_string("none: not a task record"));
        }
    }
    lt_env_destroy(&env);
    /* wait for every publish and cancel it caused to be answered */
    int64_t end = lt_tool_mono_ms() + 30000;
    while (e == LT_OK && s->pending > 0 && lt_tool_mono_ms() < end)
        lt_client_poll(s->c, 100, NULL);
    if (e == LT_OK && s->pending > 0)
        e = lt_fail(&why, LT_ETIMEDOUT, "the broker did not answer every reminder in 30 s");
    if (e == LT_OK && s->failed)
        e = lt_fail(&why, LT_EIO, "a reminder was refused: %s", s->fail_reason);
    json_object_object_add(o, "ok", json_object_new_boolean(e == LT_OK));
    if (e != LT_OK) {
        json_object_object_add(o, "code", json_object_new_string(lt_err_name(e)));
        json_object_object_add(o, "reason", json_object_new_string(why.msg));
        char reason[LT_WHY_MAX + 32];
        snprintf(reason, sizeof reason, "lienthong tasks: %s: %s", lt_err_name(e), why.msg);
        lt_client_nak(s->c, d->queue, d->seq, 1000, reason);
        s->refused++;
    } else {
        lt_client_ack(s->c, d->queue, d->seq);
    }
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
    s->seen++;
    free(s->cur_env);
    s->cur_env = NULL;
    s->has_cur = false;
}

int lt_cmd_tasks(int argc, char **argv)
{
    enum { O_REMIND = 256, O_SCALE, O_TIMEOUT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, 'q'},
        {"remind", required_argument, NULL, O_REMIND},
        {"time-scale", required_argument, NULL, O_SCALE},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"endpoint", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *queue = NULL, *endpoint = NULL, *remind = "3d,1d,2h";
    uint64_t count = 0, timeout_s = 0, scale = 1;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:q:n:e:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'q': queue = optarg; break;
        case 'e': endpoint = optarg; break;
        case O_REMIND: remind = optarg; break;
        case O_SCALE: ok = lt_tool_parse_u64(optarg, 1, 100000000, &scale); break;
        case 'n': ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX / 2, &count); break;
        case O_TIMEOUT: ok = lt_tool_parse_u64(optarg, 1, 86400 * 365, &timeout_s); break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong tasks: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "lienthong tasks: bad value '%s' for %s\n", optarg,
                    argv[optind - 1]);
            return 2;
        }
    }
    struct svc s = {.scale = (double)scale, .max = count};
    if (!parse_offsets(remind, s.offsets, &s.noffsets)) {
        fprintf(stderr,
                "lienthong tasks: --remind '%s': expected up to %d offsets like 3d,1d,2h "
                "(units s m h d)\n",
                remind, MAX_OFFSETS);
        return 2;
    }
    if (cfg_path == NULL || queue == NULL || optind < argc) {
        fprintf(stderr, "lienthong tasks: -c AGENCY.yaml and -q QUEUE are required\n");
        return 2;
    }
    lt_tool_catch_stop();
    lt_why why = {{0}};
    lt_client_opts o = {.client_name = "lienthong-tasks/" LT_VERSION};
    lt_tool_conn tc = {0};
    lt_err e = lt_tool_connect(cfg_path, endpoint, &o, true, &tc, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_trust(tc.cfg, &s.trust, &why);
    if (e == LT_OK) {
        s.c = tc.client;
        s.signer = tc.signer;
        /* one record at a time: each is acked once its reminders are answered */
        e = lt_client_subscribe(s.c, queue, 1, NULL, on_deliver, &s, &why);
    }
    if (e != LT_OK) {
        fprintf(stderr, "lienthong tasks: %s\n", why.msg);
        lt_trust_destroy(&s.trust);
        lt_tool_disconnect(&tc);
        return 1;
    }
    int64_t last = lt_tool_mono_ms();
    while (!lt_tool_stopping() && (count == 0 || s.seen < count)) {
        if (timeout_s > 0 && lt_tool_mono_ms() - last >= (int64_t)timeout_s * 1000)
            break;
        uint64_t before = s.seen;
        e = lt_client_poll(s.c, 200, NULL);
        if (e != LT_OK) {
            fprintf(stderr, "lienthong tasks: receive failed: %s\n", lt_err_str(e));
            break;
        }
        if (s.has_cur)
            handle(&s);
        if (s.seen != before)
            last = lt_tool_mono_ms();
    }
    lt_client_flush(s.c, 2000);
    fprintf(stderr,
            "lienthong tasks: %llu records, %llu reminders scheduled, %llu cancels, %llu "
            "refused\n",
            (unsigned long long)s.seen, (unsigned long long)s.scheduled,
            (unsigned long long)s.cancelled, (unsigned long long)s.refused);
    lt_trust_destroy(&s.trust);
    lt_tool_disconnect(&tc);
    return e != LT_OK ? 1 : 0;
}
