/*
 * cmd_sink.c - `lienthong sink`: consume a queue into a database (adapters/sink.h).
 *
 * Credit = batch size: the broker holds at most B deliveries out to us. Each delivery is
 * decoded and verified again here against the agency's own trust; one that fails is NAKed
 * with the reason (the broker redelivers it up to the queue's max_deliver, then dead-letters
 * it: never silently dropped). Verified deliveries gather into a batch that is written in ONE
 * database transaction when B are pending or no more are waiting; they are ACKed only after
 * COMMIT returned. A crash at any point therefore loses nothing (unacked messages come back)
 * and duplicates nothing (rows are keyed by message id, ON CONFLICT DO NOTHING).
 *
 * A row the database refuses (a constraint, a value its column type refuses: sink.h says
 * how that is told from a database that is unavailable) is NAKed with the database's reason,
 * like an envelope that fails verification, and the rest of its batch is committed: one bad
 * record never stops the sink. A database failure rolls the batch back, reconnects and
 * retries (1, 2, 4 s); after the third failure the command exits 1 with the batch unacked
 * (the broker redelivers it): an unavailable database is never a reason to NAK.
 *
 * With --nats the envelopes come from a JetStream stream instead (docs/national.md), through
 * a durable pull consumer (tool_bridge_src.c): the same verification (plus the stream's
 * headers checked against the signed envelope: lt_bridge_hdrs_check), the same batches and
 * the same ack after COMMIT, as JetStream acks. What lienthong would NAK for good (an
 * envelope that fails verification, a row the database refuses) is terminated in the
 * stream (+TERM: JetStream would deliver it for ever) and reported with the reason; a batch
 * the database could not take is left unacked, delivered again after --nats-timeout + 5 s. A
 * message id already stored (a redelivery after a kill -9 between COMMIT and the ack) is
 * "already present", not a second row.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "sink.h"
#include "tool_bridge.h"
#include "tool_client.h"

#include <assert.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char lt_cmd_sink_summary[] = "consume a queue into SQLite or PostgreSQL (ack after commit)";

typedef struct pending {
    uint64_t seq; /* the broker's, or the stream's */
    bool replay;
    lt_bridge_item item; /* --nats: the stream message (else item.msg is NULL) */
    uint8_t *buf;
    size_t len;
    lt_env *env;
    int64_t received_ms;
    lt_err row_err; /* set by the write: a row error to NAK with row_why */
    lt_why row_why;
} pending;

typedef struct sink_run {
    lt_client *c;      /* a lienthong queue ... */
    lt_bridge_src *src; /* ... or a JetStream stream (--nats) */
    lt_trust *trust;
    lt_sink *db;
    const char *db_url;
    const char *queue; /* the lienthong queue; with --nats the stream (the rows' queue) */
    pending *batch;
    size_t n, cap;
    uint64_t max;                      /* -n: 0 = no limit */
    uint64_t handled;                  /* stored + present + refused */
    uint64_t stored, present, refused; /* refused: NAKed (verify or row errors) */
    int64_t first_ms, last_ms;         /* first delivery, last commit (monotonic): the rate */
    int64_t db_ms;                     /* time spent writing batches */
    uint64_t batches;
    bool error;
} sink_run;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong sink -c AGENCY.yaml -q QUEUE --db sqlite:PATH|postgresql://...\n"
            "                      [-n N] [--timeout S] [--batch B] [-e ENDPOINT]\n"
            "       lienthong sink -c AGENCY.yaml --nats URLS --stream S --durable NAME\n"
            "                      [--subject FILTER] --db ... [-n N] [--timeout S] [--batch B]\n\n"
            "%s.\n\n"
            "  -c, --config FILE   agency config of the queue's owner (its trust verifies)\n"
            "  -q, --queue QUEUE   queue to consume\n"
            "      --db URL        sqlite:PATH, or a libpq URI postgresql://user@host:port/db\n"
            "  -n, --count N       exit after N deliveries handled (stored, present or refused)\n"
            "      --timeout S     exit after S seconds without a delivery\n"
            "      --batch B       deliveries per database transaction, and the credit (256)\n"
            "  -e, --endpoint EP   broker endpoint instead of the config's\n"
            "      --nats URLS     read a NATS JetStream stream instead of a queue (comma-\n"
            "                      separated URLs), through the durable pull consumer NAME\n"
            "      --stream S      the stream (with --nats)\n"
            "      --durable NAME  the durable consumer (with --nats; created if missing)\n"
            "      --subject F     the consumer's filter subject (default: the whole stream)\n"
            "      --nats-timeout MS  a JetStream answer later than MS fails; a message left\n"
            "                      unacked is delivered again after MS + 5000 ms (default 5000)\n\n"
            "One table per record type (see adapters/sink.h); a message id already stored is\n"
            "not written again. Envelopes that fail verification, and rows the database\n"
            "refuses (a constraint, a value of the wrong type), are NAKed with the reason\n"
            "(dead-lettered after the queue's max_deliver; with --nats terminated in the stream);\n"
            "the others are stored, and acked only after their COMMIT. Progress and a summary\n"
            "(rows/s) go to stderr.\n",
            lt_cmd_sink_summary);
}

/* Settle one message: ack it (reason NULL: stored, or already there), or refuse it for good
 * with reason: a NAK in lienthong (the queue's max_deliver then dead-letters it), a TERM in
 * JetStream. Replayed deliveries need neither. */
static void settle(sink_run *r, uint64_t seq, bool replay, lt_bridge_item *item,
                   const char *reason)
{
    if (reason != NULL)
        fprintf(stderr, "lienthong sink: %s %llu refused: %s\n",
                item->msg != NULL ? "stream seq" : "seq", (unsigned long long)seq, reason);
    if (item->msg != NULL)
        lt_bridge_src_done(r->src, item, reason == NULL ? LT_BRIDGE_ACK : LT_BRIDGE_TERM);
    else if (replay)
        ;
    else if (reason == NULL)
        lt_client_ack(r->c, r->queue, seq);
    else
        lt_client_nak(r->c, r->queue, seq, 0, reason);
}

/* Verify one envelope (bytes borrowed) and add it to the batch, or refuse it. item (NULL
 * for a lienthong delivery) is the stream message; the batch takes it over. */
static void take(sink_run *r, const uint8_t *bytes, size_t len, uint64_t seq, bool replay,
                 lt_bridge_item *item)
{
    lt_bridge_item none = {0};
    if (item == NULL)
        item = &none;
    if (r->first_ms == 0)
        r->first_ms = lt_tool_mono_ms();
    lt_why why = {{0}};
    lt_env *env = NULL;
    lt_err e = lt_env_decode(bytes, len, NULL, &env, &why);
    if (e == LT_OK)
        e = lt_env_verify_received(env, r->trust, lt_env_now_ms(), &why);
    if (e == LT_OK)
        e = lt_env_check_record(env, &why);
    if (e == LT_OK && item->msg != NULL)
        e = lt_bridge_hdrs_check(&item->hdrs, env, &why);
    if (e != LT_OK) {
        char reason[LT_WHY_MAX + 32];
        snprintf(reason, sizeof reason, "sink: %s: %s", lt_err_name(e), why.msg);
        settle(r, seq, replay, item, reason);
        lt_env_destroy(&env);
        r->refused++;
        r->handled++;
        return;
    }
    assert(r->n < r->cap);
    pending *p = &r->batch[r->n];
    memset(p, 0, sizeof *p);
    p->buf = malloc(len ? len : 1);
    if (p->buf == NULL) {
        lt_env_destroy(&env);
        r->error = true; /* unacked: redelivered */
        return;
    }
    memcpy(p->buf, bytes, len);
    p->len = len;
    p->seq = seq;
    p->replay = replay;
    p->item = *item;
    *item = (lt_bridge_item){0};
    p->env = env;
    p->received_ms = lt_env_now_ms();
    r->n++;
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    sink_run *r = user;
    if (r->max > 0 && r->handled + r->n >= r->max)
        return; /* over -n: left unacked, the broker redelivers it to the next consumer */
    take(r, d->envelope, d->envelope_len, d->seq, d->replay, NULL);
}

/* Free the batch; a stream message still in it is released unacked: JetStream delivers it
 * again after the ack wait. */
static void batch_clear(sink_run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        lt_bridge_src_done(r->src, &r->batch[i].item, LT_BRIDGE_LEAVE);
        free(r->batch[i].buf);
        lt_env_destroy(&r->batch[i].env);
    }
    r->n = 0;
}

/* One transaction for the whole batch, its rows written together (lt_sink_put_batch: on
 * PostgreSQL a few multi-row INSERTs in one round trip, not one round trip per row). */
static lt_err write_batch(sink_run *r, uint64_t *stored, uint64_t *present, lt_why *why)
{
    lt_sink_item *items = calloc(r->n, sizeof *items);
    if (items == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        pending *p = &r->batch[i];
        items[i] = (lt_sink_item){
            .env = p->env,
            .envelope = p->buf,
            .len = p->len,
            .meta = {.queue = r->queue, .broker_seq = p->seq, .received_ms = p->received_ms},
        };
    }
    lt_err e = lt_sink_begin(r->db, why);
    if (e == LT_OK)
        e = lt_sink_put_batch(r->db, items, r->n, why);
    for (size_t i = 0; e == LT_OK && i < r->n; i++) {
        pending *p = &r->batch[i];
        p->row_err = items[i].err; /* nothing written for it; NAKed after the commit */
        p->row_why = items[i].why;
        if (items[i].err == LT_OK)
            (*(items[i].inserted ? stored : present))++;
    }
    free(items);
    if (e == LT_OK)
        return lt_sink_commit(r->db, why);
    lt_sink_rollback(r->db);
    return e;
}

static lt_err flush_batch(sink_run *r)
{
    if (r->n == 0)
        return LT_OK;
    lt_why why = {{0}};
    uint64_t stored = 0, present = 0;
    lt_err e = LT_OK;
    for (int attempt = 0; attempt < 4; attempt++) {
        stored = present = 0;
        if (r->db == NULL)
            e = lt_sink_open(r->db_url, &r->db, &why);
        int64_t w0 = lt_tool_mono_ms();
        if (e == LT_OK)
            e = write_batch(r, &stored, &present, &why);
        r->db_ms += lt_tool_mono_ms() - w0;
        if (e == LT_OK)
            break;
        fprintf(stderr, "lienthong sink: database: %s%s\n", why.msg,
                attempt < 3 ? " (retrying)" : "");
        lt_sink_close(&r->db); /* reconnect: the connection may be what failed */
        if (attempt < 3) {
            /* Keep the broker connection alive while waiting. */
            int64_t until = lt_tool_mono_ms() + (1000 << attempt);
            while (!lt_tool_stopping() && lt_tool_mono_ms() < until) {
                if (r->c != NULL)
                    lt_client_poll(r->c, 100, NULL);
                else
                    nanosleep(&(struct timespec){0, 100000000}, NULL);
            }
            e = LT_OK;
        }
    }
    if (e != LT_OK) {
        r->error = true;
        batch_clear(r); /* unacked: the broker redelivers them */
        return e;
    }
    /* Committed: now, and only now, the broker may forget them. */
    for (size_t i = 0; i < r->n; i++) {
        pending *p = &r->batch[i];
        char reason[LT_WHY_MAX + 32];
        if (p->row_err != LT_OK)
            snprintf(reason, sizeof reason, "sink: %s: %s", lt_err_name(p->row_err),
                     p->row_why.msg);
        settle(r, p->seq, p->replay, &p->item, p->row_err != LT_OK ? reason : NULL);
        r->refused += p->row_err != LT_OK;
    }
    r->handled += r->n;
    r->batches++;
    r->last_ms = lt_tool_mono_ms();
    r->stored += stored;
    r->present += present;
    batch_clear(r);
    return LT_OK;
}

static void on_error(void *user, lt_err code, const char *reason)
{
    sink_run *r = user;
    fprintf(stderr, "lienthong sink: broker refused: %s: %s\n", lt_err_name(code), reason);
    r->error = true;
}

/* Rows/s over the time from the first delivery to the last commit (idle time before and
 * after, e.g. --timeout, does not count). */
static void progress(const sink_run *r, bool final)
{
    double s = r->first_ms > 0 && r->last_ms > r->first_ms
                   ? (double)(r->last_ms - r->first_ms) / 1000.0
                   : 0;
    double rate = s > 0 ? (double)(r->stored + r->present) / s : 0;
    fprintf(stderr,
            "lienthong sink: %s%llu rows written (%llu new, %llu already present), %llu "
            "refused, %.1f s, %.0f rows/s (%llu transactions, %.1f s in the database)%s",
            final ? "" : "... ", (unsigned long long)(r->stored + r->present),
            (unsigned long long)r->stored, (unsigned long long)r->present,
            (unsigned long long)r->refused, s, rate, (unsigned long long)r->batches,
            (double)r->db_ms / 1000.0, final || !isatty(STDERR_FILENO) ? "\n" : "\r");
}

/* One round of the lienthong source: the deliveries that arrived (on_deliver takes them),
 * then the batch written when full or when no more are waiting. */
static lt_err poll_queue(sink_run *r)
{
    unsigned frames = 0;
    /* With a batch gathering, take only what has already arrived, then write it. */
    lt_err e = lt_client_poll(r->c, r->n > 0 ? 0 : 200, &frames);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong sink: receive failed: %s\n", lt_err_str(e));
        return e;
    }
    bool full = r->n == r->cap || (r->max > 0 && r->handled + r->n >= r->max);
    if (r->n > 0 && (full || frames == 0))
        flush_batch(r);
    return LT_OK;
}

/* One round of the stream source: a fetch of up to a batch (at most what -n leaves), all of
 * it written in one transaction. A failed fetch (no quorum, a leader election) is said and
 * tried again: the stream keeps the messages. */
static lt_err poll_stream(sink_run *r, lt_bridge_item *items)
{
    uint64_t want = r->cap - r->n;
    if (r->max > 0 && r->max - r->handled - r->n < want)
        want = r->max - r->handled - r->n;
    size_t n = 0;
    lt_why why = {{0}};
    if (lt_bridge_src_fetch(r->src, (uint32_t)want, 200, items, &n, &why) != LT_OK) {
        fprintf(stderr, "lienthong sink: %s; trying again\n", why.msg);
        nanosleep(&(struct timespec){0, 200000000}, NULL);
        return LT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        take(r, items[i].envelope, items[i].len, items[i].stream_seq, false, &items[i]);
        lt_bridge_src_done(r->src, &items[i], LT_BRIDGE_LEAVE); /* not taken: out of memory */
    }
    if (r->n > 0)
        flush_batch(r);
    return LT_OK;
}

int lt_cmd_sink(int argc, char **argv)
{
    enum { O_TIMEOUT = 256, O_BATCH, O_DB, O_NATS, O_STREAM, O_DURABLE, O_SUBJECT, O_NTIMEOUT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"queue", required_argument, NULL, 'q'},
        {"db", required_argument, NULL, O_DB},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"batch", required_argument, NULL, O_BATCH},
        {"endpoint", required_argument, NULL, 'e'},
        {"nats", required_argument, NULL, O_NATS},
        {"stream", required_argument, NULL, O_STREAM},
        {"durable", required_argument, NULL, O_DURABLE},
        {"subject", required_argument, NULL, O_SUBJECT},
        {"nats-timeout", required_argument, NULL, O_NTIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *queue = NULL, *endpoint = NULL, *db_url = NULL;
    uint64_t count = 0, timeout_s = 0, batch = 256, v = 0;
    lt_bridge_opts no = {.timeout_ms = 5000};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:q:n:e:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'q': queue = optarg; break;
        case 'e': endpoint = optarg; break;
        case O_DB: db_url = optarg; break;
        case O_NATS: no.nats_urls = optarg; break;
        case O_STREAM: no.stream = optarg; break;
        case O_DURABLE: no.durable = optarg; break;
        case O_SUBJECT: no.subject = optarg; break;
        case O_NTIMEOUT:
            ok = lt_tool_parse_u64(optarg, 100, 600000, &v);
            no.timeout_ms = (int64_t)v;
            break;
        case 'n': ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX, &count); break;
        case O_TIMEOUT: ok = lt_tool_parse_u64(optarg, 1, 86400 * 365, &timeout_s); break;
        case O_BATCH: ok = lt_tool_parse_u64(optarg, 1, 65536, &batch); break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong sink: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "lienthong sink: bad value '%s' for %s\n", optarg, argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong sink: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    bool nats = no.nats_urls != NULL;
    lt_why why = {{0}};
    if (cfg_path == NULL || db_url == NULL || (queue == NULL) == !nats) {
        fprintf(stderr, "lienthong sink: -c AGENCY.yaml, --db URL and one of -q QUEUE or "
                        "--nats URLS are required\n");
        return 2;
    }
    no.credit = (uint32_t)batch;
    if (nats && lt_bridge_opts_check("sink", &no, &why) != LT_OK) {
        fprintf(stderr, "lienthong sink: %s\n", why.msg);
        return 2;
    }

    lt_tool_catch_stop();

    sink_run r = {.db_url = db_url, .queue = nats ? no.stream : queue, .max = count,
                  .cap = (size_t)batch};
    r.batch = calloc(r.cap, sizeof *r.batch);
    lt_bridge_item *items = nats ? calloc(r.cap, sizeof *items) : NULL;
    if (r.batch == NULL || (nats && items == NULL)) {
        fprintf(stderr, "lienthong sink: out of memory\n");
        free(r.batch);
        return 1;
    }
    lt_err e = lt_sink_open(db_url, &r.db, &why);
    lt_client_opts o = {.client_name = "lienthong-sink/" LT_VERSION};
    lt_tool_conn tc = {0};
    if (e == LT_OK && nats)
        e = lt_agency_config_load(cfg_path, &tc.cfg, &why);
    else if (e == LT_OK)
        e = lt_tool_connect(cfg_path, endpoint, &o, true, &tc, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_trust(tc.cfg, &r.trust, &why);
    if (e == LT_OK && nats) {
        e = lt_bridge_src_open(&no, &r.src, &why);
    } else if (e == LT_OK) {
        r.c = tc.client;
        lt_client_set_error_cb(r.c, on_error, &r);
        e = lt_client_subscribe(r.c, queue, (uint32_t)batch, NULL, on_deliver, &r, &why);
    }
    if (e != LT_OK) {
        fprintf(stderr, "lienthong sink: %s\n", why.msg);
        goto out_close;
    }
    if (nats)
        fprintf(stderr, "lienthong sink: stream %s (durable %s) -> %s (%s), batch %llu\n",
                no.stream, no.durable, db_url, lt_sink_backend(r.db), (unsigned long long)batch);
    else
        fprintf(stderr, "lienthong sink: %s -> %s (%s), batch %llu\n", queue, db_url,
                lt_sink_backend(r.db), (unsigned long long)batch);
    int64_t last = lt_tool_mono_ms(), shown = last;
    while (!lt_tool_stopping() && !r.error && (count == 0 || r.handled < count)) {
        int64_t now = lt_tool_mono_ms();
        if (timeout_s > 0 && now - last >= (int64_t)timeout_s * 1000)
            break;
        if (now - shown >= 2000) {
            progress(&r, false);
            shown = now;
        }
        uint64_t before = r.handled + r.n;
        e = nats ? poll_stream(&r, items) : poll_queue(&r);
        if (e != LT_OK)
            break;
        if (r.handled + r.n != before)
            last = lt_tool_mono_ms();
    }
    if (!r.error)
        flush_batch(&r); /* what a signal interrupted */
    batch_clear(&r);
    if (r.c != NULL)
        lt_client_flush(r.c, 2000); /* the last acks */
    progress(&r, true);
out_close:
    lt_bridge_src_close(&r.src); /* flushes the last acks to JetStream */
    lt_trust_destroy(&r.trust);
    lt_tool_disconnect(&tc); /* with --nats only its config */
    lt_sink_close(&r.db);
    free(items);
    free(r.batch);
    if (nats)
        nats_Close();
    return r.error || e != LT_OK ? 1 : 0;
}
