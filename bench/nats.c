/*
 * nats.c - bench_nats: the NATS JetStream side of the side-by-side benchmark (bench/run).
 *
 * The workload of benchkit.h against a running nats-server with JetStream, through libnats:
 *   - a stream (default "BENCH", file storage, subjects "bench.>") deleted and created fresh;
 *   - C durable pull consumers (explicit ack), one thread and one connection each, fetching
 *     in batches and acking every message (natsMsg_Ack: one +ACK per message);
 *   - P publisher threads, one connection and one JetStream context each, publishing with
 *     js_PublishAsync under PublishAsync.MaxPending = window; the ack handler (run by the
 *     library's reply-subscription thread) records each PubAck;
 *   - one JSON object on stdout (lt_bench_report), exit 0 when the run was complete.
 *
 * Durability is the server's business: nats-server 2.9 syncs its file store every 2 minutes
 * and has no per-message sync setting (sync_interval arrived in 2.10); see bench/README.md.
 *
 * Threads: main (setup, report), P publishers, C consumers, and libnats' own threads.
 */
#include "kit/benchkit.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct nats_opts {
    const char *url;
    const char *stream;
    const char *subject;
    int fetch;               /* messages per pull request */
    int64_t max_ack_pending; /* consumer's MaxAckPending, 0 = server default (1000) */
    jsStorageType storage;
    jsRetentionPolicy retention;
    int replicas;
    bool msg_id; /* set Nats-Msg-Id (server-side dedup) on every publish */
    bool keep;   /* leave the stream in place after the run */
    int header_pad; /* a Bench-Pad header of this many bytes on every publish (0: none) */
} nats_opts;

typedef struct bench {
    nats_opts o;
    lt_bench_run *run;
    pthread_barrier_t ready; /* every publisher and consumer connected + main */
    pthread_barrier_t go;    /* main has taken the start time */
    atomic_bool failed_setup;
} bench;

typedef struct worker {
    bench *b;
    unsigned id;
    pthread_t thread;
} worker;

static int opt_cb(void *user, const char *name, const char *value)
{
    nats_opts *o = user;
    if (strcmp(name, "url") == 0) {
        o->url = value;
    } else if (strcmp(name, "stream") == 0) {
        o->stream = value;
    } else if (strcmp(name, "subject") == 0) {
        o->subject = value;
    } else if (strcmp(name, "fetch") == 0) {
        o->fetch = atoi(value);
        if (o->fetch < 1 || o->fetch > 100000) {
            fprintf(stderr, "--fetch: 1..100000\n");
            return -1;
        }
    } else if (strcmp(name, "max-ack-pending") == 0) {
        o->max_ack_pending = atoll(value);
    } else if (strcmp(name, "storage") == 0) {
        if (strcmp(value, "file") == 0)
            o->storage = js_FileStorage;
        else if (strcmp(value, "memory") == 0)
            o->storage = js_MemoryStorage;
        else {
            fprintf(stderr, "--storage: file or memory\n");
            return -1;
        }
    } else if (strcmp(name, "retention") == 0) {
        if (strcmp(value, "limits") == 0)
            o->retention = js_LimitsPolicy;
        else if (strcmp(value, "workqueue") == 0)
            o->retention = js_WorkQueuePolicy;
        else if (strcmp(value, "interest") == 0)
            o->retention = js_InterestPolicy;
        else {
            fprintf(stderr, "--retention: limits, workqueue or interest\n");
            return -1;
        }
    } else if (strcmp(name, "replicas") == 0) {
        o->replicas = atoi(value);
        if (o->replicas < 1 || o->replicas > 5) {
            fprintf(stderr, "--replicas: 1..5\n");
            return -1;
        }
    } else if (strcmp(name, "msg-id") == 0) {
        o->msg_id = true;
    } else if (strcmp(name, "keep") == 0) {
        o->keep = true;
    } else if (strcmp(name, "header-pad") == 0) {
        o->header_pad = atoi(value);
        if (o->header_pad < 0 || o->header_pad > 4096) {
            fprintf(stderr, "--header-pad: 0..4096\n");
            return -1;
        }
    } else {
        fprintf(stderr, "unknown option --%s\n", name);
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: bench_nats [options]   (prints one JSON object)\n", out);
    lt_bench_params_usage(out);
    fputs("nats options:\n"
          "  --url URL            server (nats://127.0.0.1:4222)\n"
          "  --stream NAME        stream, deleted and created fresh (BENCH)\n"
          "  --subject SUBJ       publish subject, under bench.> (bench.data)\n"
          "  --fetch B            messages per pull request (256)\n"
          "  --max-ack-pending M  consumer MaxAckPending (server default: 1000)\n"
          "  --storage file|memory          (file)\n"
          "  --retention limits|workqueue|interest   (limits, the NATS default)\n"
          "  --replicas R         stream replicas, R3 on a 3-node cluster (1)\n"
          "  --msg-id             set Nats-Msg-Id on every publish (server dedup)\n"
          "  --keep               do not delete the stream at the end\n"
          "  --header-pad N       a header Bench-Pad of N bytes on every publish (as many\n"
          "                       header bytes as another publisher's headers carry)\n",
          out);
}

static void report_status(const char *what, natsStatus s)
{
    const char *last = nats_GetLastError(NULL);
    fprintf(stderr, "bench_nats: %s: %s%s%s\n", what, natsStatus_GetText(s),
            last && *last ? ": " : "", last && *last ? last : "");
}

static natsStatus connect(const bench *b, const char *name, natsConnection **nc)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, b->o.url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 5000);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    return s;
}

/* ---- setup: stream and consumers ------------------------------------------------------ */

static int setup(bench *b)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    int rc = -1;
    natsStatus s = connect(b, "bench-setup", &nc);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) {
        report_status("connect", s);
        goto out;
    }
    /* Fresh stream: delete whatever an earlier run left (not found is fine). */
    js_DeleteStream(js, b->o.stream, NULL, &jerr);

    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"bench.>"};
    sc.Name = b->o.stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = b->o.storage;
    sc.Retention = b->o.retention;
    sc.Replicas = b->o.replicas;
    jsStreamInfo *si = NULL;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        report_status("add stream", s);
        goto out;
    }
    const lt_bench_params *p = lt_bench_run_params(b->run);
    for (unsigned c = 0; p->consume && c < p->consumers; c++) {
        char durable[32];
        snprintf(durable, sizeof durable, "c%u", c);
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = durable;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        if (b->o.max_ack_pending)
            cc.MaxAckPending = b->o.max_ack_pending;
        jsConsumerInfo *ci = NULL;
        s = js_AddConsumer(&ci, js, b->o.stream, &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        if (s != NATS_OK) {
            report_status("add consumer", s);
            goto out;
        }
    }
    rc = 0;
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}

static void teardown(bench *b)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    if (connect(b, "bench-teardown", &nc) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
        js_DeleteStream(js, b->o.stream, NULL, &jerr);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* ---- publishers ---------------------------------------------------------------------- */

static void on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    bench *b = closure;
    uint64_t idx;
    if (lt_bench_payload_index((const uint8_t *)natsMsg_GetData(msg),
                               (size_t)natsMsg_GetDataLength(msg), &idx))
        lt_bench_mark_acked(b->run, idx, pa != NULL && pae == NULL);
    else
        lt_bench_count_error(b->run);
    natsMsg_Destroy(msg);
}

static void *publisher_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    const lt_bench_params *p = lt_bench_run_params(b->run);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    uint8_t *buf = malloc(p->size);
    char *pad = calloc(1, (size_t)b->o.header_pad + 1);
    char name[32];
    snprintf(name, sizeof name, "bench-pub-%u", w->id);
    if (pad != NULL)
        memset(pad, 'x', (size_t)b->o.header_pad);

    natsStatus s = buf && pad ? connect(b, name, &nc) : NATS_NO_MEMORY;
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = p->window;
        jo.PublishAsync.AckHandler = on_puback;
        jo.PublishAsync.AckHandlerClosure = b;
        /* A full window waits for acks; never give up on a stall inside the run. */
        jo.PublishAsync.StallWait = (int64_t)(p->idle_timeout_s * 1000);
        s = natsConnection_JetStream(&js, nc, &jo);
    }
    if (s != NATS_OK) {
        report_status("publisher connect", s);
        atomic_store(&b->failed_setup, true);
    }
    pthread_barrier_wait(&b->ready);
    pthread_barrier_wait(&b->go);
    if (atomic_load(&b->failed_setup))
        goto out;

    uint64_t k = 0;
    for (uint64_t idx = w->id; idx < p->messages; idx += p->publishers, k++) {
        lt_bench_pace(b->run, w->id, k);
        lt_bench_payload_fill(buf, p->size, idx);
        natsMsg *msg = NULL;
        s = natsMsg_Create(&msg, b->o.subject, NULL, (const char *)buf, (int)p->size);
        if (s == NATS_OK && b->o.msg_id) {
            char id[32];
            snprintf(id, sizeof id, "%" PRIu64, idx);
            s = natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
        }
        if (s == NATS_OK && b->o.header_pad > 0)
            s = natsMsgHeader_Set(msg, "Bench-Pad", pad);
        lt_bench_mark_sent(b->run, idx);
        if (s == NATS_OK)
            s = js_PublishMsgAsync(js, &msg, NULL);
        natsMsg_Destroy(msg); /* no-op when the library took it */
        if (s != NATS_OK) {
            /* The run is already incomplete; a lost connection would stall every further
             * publish for StallWait. Count the rest as failed and stop. */
            report_status("publish", s);
            for (uint64_t j = idx; j < p->messages; j += p->publishers)
                lt_bench_mark_acked(b->run, j, false);
            break;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = (int64_t)(p->idle_timeout_s * 1000);
    s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK)
        report_status("waiting for publish acks", s);
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(buf);
    free(pad);
    return NULL;
}

/* ---- consumers ----------------------------------------------------------------------- */

static void *consumer_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    const lt_bench_params *p = lt_bench_run_params(b->run);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    char name[32], durable[32];
    snprintf(name, sizeof name, "bench-con-%u", w->id);
    snprintf(durable, sizeof durable, "c%u", w->id);

    natsStatus s = connect(b, name, &nc);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = b->o.stream;
        so.Consumer = durable;
        s = js_PullSubscribe(&sub, js, "bench.>", durable, NULL, &so, &jerr);
    }
    if (s != NATS_OK) {
        report_status("consumer subscribe", s);
        atomic_store(&b->failed_setup, true);
    }
    pthread_barrier_wait(&b->ready);
    pthread_barrier_wait(&b->go);
    if (atomic_load(&b->failed_setup))
        goto out;

    int64_t idle_ns = (int64_t)(p->idle_timeout_s * 1e9);
    int64_t last_progress = lt_bench_now_ns();
    while (lt_bench_consumed(b->run, w->id) < p->messages) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, b->o.fetch, 1000, &jerr);
        if (s == NATS_OK) {
            for (int i = 0; i < list.Count; i++) {
                natsMsg *m = list.Msgs[i];
                uint64_t idx;
                if (lt_bench_payload_index((const uint8_t *)natsMsg_GetData(m),
                                           (size_t)natsMsg_GetDataLength(m), &idx))
                    lt_bench_mark_consumed(b->run, w->id, idx);
                if (natsMsg_Ack(m, NULL) != NATS_OK)
                    lt_bench_count_error(b->run);
            }
            if (list.Count > 0)
                last_progress = lt_bench_now_ns();
            natsMsgList_Destroy(&list);
        } else if (s != NATS_TIMEOUT) {
            report_status("fetch", s);
            lt_bench_count_error(b->run);
            break;
        }
        if (lt_bench_now_ns() - last_progress > idle_ns) {
            fprintf(stderr,
                    "bench_nats: consumer %u idle for %.0f s at %" PRIu64 " of %" PRIu64
                    " messages, giving up\n",
                    w->id, p->idle_timeout_s, lt_bench_consumed(b->run, w->id), p->messages);
            break;
        }
    }
    /* The acks are fire-and-forget publishes: make sure the server has them all. */
    if (natsConnection_FlushTimeout(nc, 10000) != NATS_OK)
        lt_bench_count_error(b->run);
    lt_bench_consumer_done(b->run, w->id);
out:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const flags[] = {"msg-id", "keep", NULL};
    bench b = {.o = {.url = "nats://127.0.0.1:4222",
                     .stream = "BENCH",
                     .subject = "bench.data",
                     .fetch = 256,
                     .storage = js_FileStorage,
                     .retention = js_LimitsPolicy,
                     .replicas = 1}};
    lt_bench_params p;
    int prc = lt_bench_params_parse(argc, argv, &p, flags, opt_cb, &b.o);
    if (prc != 0) {
        usage(prc > 0 ? stdout : stderr);
        return prc > 0 ? 0 : 2;
    }
    if (strncmp(b.o.subject, "bench.", 6) != 0 || !b.o.subject[6]) {
        fprintf(stderr, "--subject must be under bench.>\n");
        return 2;
    }
    if (nats_Open(-1) != NATS_OK) {
        fprintf(stderr, "bench_nats: nats_Open failed\n");
        return 1;
    }
    int rc = 1;
    unsigned n_cons = p.consume ? p.consumers : 0;
    worker *workers = calloc(p.publishers + n_cons, sizeof *workers);
    b.run = lt_bench_run_new(&p);
    if (!workers || !b.run) {
        fprintf(stderr, "bench_nats: out of memory\n");
        goto out;
    }
    if (setup(&b) < 0)
        goto out;

    pthread_barrier_init(&b.ready, NULL, p.publishers + n_cons + 1);
    pthread_barrier_init(&b.go, NULL, p.publishers + n_cons + 1);
    for (unsigned i = 0; i < p.publishers + n_cons; i++) {
        worker *w = &workers[i];
        w->b = &b;
        w->id = i < p.publishers ? i : i - p.publishers;
        pthread_create(&w->thread, NULL, i < p.publishers ? publisher_main : consumer_main, w);
    }
    pthread_barrier_wait(&b.ready); /* everyone connected and subscribed */
    lt_bench_start(b.run);
    pthread_barrier_wait(&b.go);
    for (unsigned i = 0; i < p.publishers + n_cons; i++)
        pthread_join(workers[i].thread, NULL);
    pthread_barrier_destroy(&b.ready);
    pthread_barrier_destroy(&b.go);

    if (!atomic_load(&b.failed_setup)) {
        char extra[256];
        snprintf(extra, sizeof extra,
                 ",\"client\":\"libnats %s\",\"storage\":\"%s\",\"retention\":\"%s\","
                 "\"fetch\":%d,\"replicas\":%d,\"msg_id\":%s,\"durability\":\"%s\"",
                 nats_GetVersion(), b.o.storage == js_FileStorage ? "file" : "memory",
                 b.o.retention == js_LimitsPolicy      ? "limits"
                 : b.o.retention == js_WorkQueuePolicy ? "workqueue"
                                                       : "interest",
                 b.o.fetch, b.o.replicas, b.o.msg_id ? "true" : "false",
                 b.o.storage == js_FileStorage
                     ? "file store, fsync every 2 min (nats-server 2.9 default, not settable)"
                     : "memory only");
        rc = lt_bench_report(b.run, stdout, "nats-jetstream", "default", extra) ? 0 : 1;
    }
    if (!b.o.keep)
        teardown(&b);
out:
    lt_bench_run_destroy(&b.run);
    free(workers);
    nats_Close();
    return rc;
}
