/*
 * lt_load.c - bench_lt_load: the lienthong side of the side-by-side benchmark (bench/run),
 * the same workload and the same JSON as bench_nats (bench/kit/benchkit.h).
 *
 *   - P publisher threads, each with its own lt_client and its own agency signer (publisher
 *     p uses --pub-config number p modulo their count), pipelining lt_client_publish under
 *     the client's window; the publish callback (run on the publisher's thread) records the
 *     broker's ACK;
 *   - C consumer threads, each with its own lt_client authenticated as the queues' owner,
 *     subscribed to its own queue (--queue, one per consumer: fan-out), decoding every
 *     delivered envelope to find the message's index (no signature check: the broker has
 *     verified it) and acking it;
 *   - signatures with the agency keys (dev-init --alg: ECDSA P-256 by default, Ed25519 or
 *     RSA-2048; reported as sign.alg), one per message (--sign single) or one per batch of
 *     --batch envelopes (--sign batch, Merkle proofs).
 *
 * Two ways to account for signing, reported separately:
 *   --presign   every publisher signs all its envelopes before the timed part (in parallel,
 *               timed on its own: "sign" in the JSON); the timed part then measures the
 *               broker (verify, route, group commit + fsync, deliver) and the client.
 *   (default)   signing happens inside the timed publish loop, as an agency system would do
 *               it: throughput includes the publisher's signing cost.
 *
 * Threads: main (setup, report), P publishers, C consumers; each lt_client stays on the
 * thread that opened it.
 */
#include "kit/benchkit.h"

#include "client.h"
#include "config.h"
#include "envelope.h"
#include "pki.h"

#include "lienthong/v1/records/land.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct load_opts {
    const char *endpoint; /* overrides the configs' broker */
    const char *sub_endpoint; /* the consumers' broker when not endpoint (links between
                                 brokers: publish at one end, consume at the other) */
    const char *pub_cfgs[LT_BENCH_PUBLISHERS_MAX];
    size_t n_pub_cfgs;
    const char *sub_cfg;
    const char *queues[LT_BENCH_CONSUMERS_MAX];
    size_t n_queues;
    const char *topic;
    bool batch;       /* --sign batch */
    unsigned batch_n; /* --batch */
    bool presign;
    unsigned credit; /* consumer credit (max unacked) */
} load_opts;

typedef struct load {
    load_opts o;
    lt_bench_run *run;
    uint64_t *idx_of; /* idx_of[i] == i: the user pointer of publish i */
    pthread_barrier_t ready, go;
    atomic_bool failed_setup;
    atomic_uint_least64_t nacks_reported, duplicates, env_bytes;
    _Atomic int64_t sign_ns_max; /* presign: the slowest publisher's signing time */
    _Atomic int64_t sign_ns_sum; /* inline: time inside lt_env_seal*, all publishers */
    atomic_int sig_alg;          /* the publishers' key algorithm (lt_sig_alg), -1 unknown */
} load;

typedef struct worker {
    load *l;
    unsigned id;
    pthread_t thread;
    lt_client *client;
    const char *queue;
    /* publisher: room to seal one chunk (a batch, or one message) */
    lt_env_spec *specs;
    uint8_t **outs;
    size_t *lens;
} worker;

static int opt_cb(void *user, const char *name, const char *value)
{
    load_opts *o = user;
    if (strcmp(name, "endpoint") == 0) {
        o->endpoint = value;
    } else if (strcmp(name, "sub-endpoint") == 0) {
        o->sub_endpoint = value;
    } else if (strcmp(name, "pub-config") == 0) {
        if (o->n_pub_cfgs == LT_BENCH_PUBLISHERS_MAX)
            return -1;
        o->pub_cfgs[o->n_pub_cfgs++] = value;
    } else if (strcmp(name, "sub-config") == 0) {
        o->sub_cfg = value;
    } else if (strcmp(name, "queue") == 0) {
        if (o->n_queues == LT_BENCH_CONSUMERS_MAX)
            return -1;
        o->queues[o->n_queues++] = value;
    } else if (strcmp(name, "topic") == 0) {
        o->topic = value;
    } else if (strcmp(name, "sign") == 0) {
        if (strcmp(value, "single") == 0)
            o->batch = false;
        else if (strcmp(value, "batch") == 0)
            o->batch = true;
        else {
            fprintf(stderr, "--sign: single or batch\n");
            return -1;
        }
    } else if (strcmp(name, "batch") == 0) {
        long v = atol(value);
        if (v < 1 || v > LT_ENV_BATCH_MAX) {
            fprintf(stderr, "--batch: 1..%d\n", LT_ENV_BATCH_MAX);
            return -1;
        }
        o->batch_n = (unsigned)v;
    } else if (strcmp(name, "presign") == 0) {
        o->presign = true;
    } else if (strcmp(name, "credit") == 0) {
        long v = atol(value);
        if (v < 1 || v > 1000000) {
            fprintf(stderr, "--credit: 1..1000000\n");
            return -1;
        }
        o->credit = (unsigned)v;
    } else {
        fprintf(stderr, "unknown option --%s\n", name);
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: bench_lt_load --pub-config AGENCY.yaml [--pub-config ...] --sub-config "
          "OWNER.yaml\n"
          "                     --queue Q [--queue Q2 ...] --topic T [options]\n"
          "(prints one JSON object; bench/run writes the configs)\n",
          out);
    lt_bench_params_usage(out);
    fputs("lienthong options:\n"
          "  --endpoint EP        broker endpoint, overriding the configs' broker.endpoint\n"
          "  --sub-endpoint EP    the consumers' broker, when not --endpoint (a network of\n"
          "                       brokers: publish at one end, consume at the other)\n"
          "  --pub-config FILE    agency config of a publisher (repeat: publisher p uses "
          "number p mod count)\n"
          "  --sub-config FILE    agency config of the queues' owner (the consumers)\n"
          "  --queue NAME         a queue bound to the topic; consumer c reads queue c\n"
          "  --topic TOPIC        publish topic\n"
          "  --sign single|batch  one signature per message, or per batch (single)\n"
          "  --batch B            envelopes per batch signature (64)\n"
          "  --presign            sign everything before the timed part (timed separately)\n"
          "  --credit C           consumer credit: unacked deliveries at most (1000)\n",
          out);
}

static void say_err(const char *what, lt_err e, const lt_why *why)
{
    fprintf(stderr, "bench_lt_load: %s: %s%s%s\n", what, lt_err_name(e),
            why && why->msg[0] ? ": " : "", why ? why->msg : "");
}

/* ---- publishers ---------------------------------------------------------------------- */

typedef struct sealed {
    uint8_t *env;
    size_t len;
} sealed;

/* The broker takes only records of the contract, so the bench bytes (benchkit's magic, index
 * and filler, --size of them) travel as the one field of a LandParcel, boundary_wkb (field
 * 12, bytes): on the wire the key 0x62, the length as a varint, then the bytes; the consumer
 * unpacks it with protobuf-c. The payload is WRAP_MAX bytes larger than --size at most. */
#define RECORD_TYPE "lienthong.v1.records.LandParcel"
#define WRAP_MAX 11

/* Write the record carrying message idx's bench bytes into slot (size + WRAP_MAX bytes);
 * its length. */
static size_t wrap_record(uint8_t *slot, size_t size, uint64_t idx)
{
    size_t at = 0;
    slot[at++] = 0x62;
    for (uint64_t n = size;; n >>= 7) {
        slot[at++] = (uint8_t)((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
        if (n < 0x80)
            break;
    }
    lt_bench_payload_fill(slot + at, size, idx);
    return at + size;
}

/* Seal n (<= the chunk size) consecutive messages of publisher w, its k0-th on, into
 * out[0..n); payloads has room for n payloads. On error nothing is left to free. */
static lt_err seal_some(worker *w, lt_signer *signer, uint64_t k0, size_t n, uint8_t *payloads,
                        sealed *out, lt_why *why)
{
    load *l = w->l;
    const lt_bench_params *p = lt_bench_run_params(l->run);
    lt_env_spec *specs = w->specs;
    uint8_t **outs = w->outs;
    size_t *lens = w->lens;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = w->id + (k0 + i) * p->publishers;
        uint8_t *pl = payloads + i * (p->size + WRAP_MAX);
        specs[i] = (lt_env_spec){.topic = l->o.topic,
                                 .record_type = RECORD_TYPE,
                                 .payload = pl,
                                 .payload_len = wrap_record(pl, p->size, idx)};
    }
    lt_err e;
    if (l->o.batch) {
        e = lt_env_seal_batch(signer, specs, n, outs, lens, why);
    } else {
        e = LT_OK;
        for (size_t i = 0; i < n && e == LT_OK; i++) {
            e = lt_env_seal(signer, &specs[i], &outs[i], &lens[i], why);
            if (e != LT_OK)
                for (size_t j = 0; j < i; j++)
                    free(outs[j]);
        }
    }
    if (e != LT_OK)
        return e;
    for (size_t i = 0; i < n; i++)
        out[i] = (sealed){outs[i], lens[i]};
    return LT_OK;
}

/* The user pointer of a publish is &idx_of[idx]; the load is found through a global (the
 * program runs one load). */
static load *g_load;

static void on_publish_done(void *user, uint64_t tag, lt_err code, uint64_t seq, bool duplicate,
                            const char *reason)
{
    (void)tag;
    (void)seq;
    load *l = g_load;
    uint64_t idx = *(const uint64_t *)user;
    if (code != LT_OK && atomic_fetch_add(&l->nacks_reported, 1) < 10)
        fprintf(stderr, "bench_lt_load: publish %" PRIu64 ": %s %s\n", idx, lt_err_name(code),
                reason ? reason : "");
    if (code == LT_OK && duplicate)
        atomic_fetch_add(&l->duplicates, 1);
    lt_bench_mark_acked(l->run, idx, code == LT_OK && !duplicate);
}

static void *publisher_main(void *arg)
{
    worker *w = arg;
    load *l = w->l;
    const lt_bench_params *p = lt_bench_run_params(l->run);
    lt_agency_config *cfg = NULL;
    lt_signer *signer = NULL;
    sealed *pre = NULL;
    sealed *chunk = NULL;
    uint8_t *payloads = NULL;
    lt_why why = {{0}};
    lt_err e;
    uint64_t mine =
        p->messages > w->id ? (p->messages - w->id + p->publishers - 1) / p->publishers : 0;
    size_t chunk_n = l->o.batch ? l->o.batch_n : 1;

    e = lt_agency_config_load(l->o.pub_cfgs[w->id % l->o.n_pub_cfgs], &cfg, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_signer(cfg, &signer, &why);
    if (e == LT_OK)
        atomic_store(&l->sig_alg, (int)lt_signer_alg(signer));
    if (e == LT_OK) {
        lt_client_opts co = {.window = p->window,
                             .ack_timeout_ms = (int)(p->idle_timeout_s * 1000),
                             .client_name = "bench_lt_load"};
        e = lt_client_open(l->o.endpoint ? l->o.endpoint : cfg->broker_endpoint, &co, &w->client,
                           &why);
    }
    if (e == LT_OK) {
        payloads = malloc(chunk_n * (p->size + WRAP_MAX));
        chunk = calloc(chunk_n, sizeof *chunk);
        w->specs = calloc(chunk_n, sizeof *w->specs);
        w->outs = calloc(chunk_n, sizeof *w->outs);
        w->lens = calloc(chunk_n, sizeof *w->lens);
        if (!payloads || !chunk || !w->specs || !w->outs || !w->lens)
            e = lt_fail(&why, LT_ENOMEM, "payload buffers");
    }
    if (e == LT_OK && l->o.presign) {
        /* Signing timed on its own, before the broker sees anything. */
        int64_t t = lt_bench_now_ns();
        pre = calloc(mine ? mine : 1, sizeof *pre);
        if (!pre)
            e = lt_fail(&why, LT_ENOMEM, "%" PRIu64 " presigned envelopes", mine);
        for (uint64_t k = 0; e == LT_OK && k < mine; k += chunk_n) {
            size_t n = (size_t)(mine - k < chunk_n ? mine - k : chunk_n);
            e = seal_some(w, signer, k, n, payloads, pre + k, &why);
        }
        int64_t dt = lt_bench_now_ns() - t, prev = atomic_load(&l->sign_ns_max);
        while (dt > prev && !atomic_compare_exchange_weak(&l->sign_ns_max, &prev, dt))
            ;
    }
    if (e != LT_OK) {
        say_err("publisher setup", e, &why);
        atomic_store(&l->failed_setup, true);
    }
    pthread_barrier_wait(&l->ready);
    pthread_barrier_wait(&l->go);
    if (atomic_load(&l->failed_setup))
        goto out;

    uint64_t bytes = 0;
    int64_t sign_ns = 0;
    for (uint64_t k = 0; k < mine; k++) {
        uint64_t idx = w->id + k * p->publishers;
        sealed *s;
        if (l->o.presign) {
            s = &pre[k];
        } else {
            size_t at = (size_t)(k % chunk_n);
            if (at == 0) {
                size_t n = (size_t)(mine - k < chunk_n ? mine - k : chunk_n);
                int64_t t = lt_bench_now_ns();
                e = seal_some(w, signer, k, n, payloads, chunk, &why);
                sign_ns += lt_bench_now_ns() - t;
                if (e != LT_OK) {
                    say_err("seal", e, &why);
                    for (uint64_t j = k; j < mine; j++)
                        lt_bench_mark_acked(l->run, w->id + j * p->publishers, false);
                    break;
                }
            }
            s = &chunk[at];
        }
        /* With --rate, sleep until this message's turn, as bench_nats does. No
         * lt_client_poll: each publish first runs the callbacks of the acks that have
         * arrived (lib/client.h), so an ack is timed at the publisher's next publish, at most
         * one interval (P / rate) late. (The poll loop that paced before woke on acks or
         * whole milliseconds: at 10k msgs/s it sent 0.5 ms after the message's turn on
         * average, in bursts just after a commit, and timed from that late send.) */
        lt_bench_pace(l->run, w->id, k);
        lt_bench_mark_sent(l->run, idx);
        e = lt_client_publish(w->client, s->env, s->len, on_publish_done, &l->idx_of[idx], NULL);
        bytes += s->len;
        free(s->env);
        s->env = NULL;
        if (e != LT_OK) {
            /* The run is already incomplete; with the broker gone every further publish
             * would wait ack_timeout_ms. Count the rest as failed and stop. */
            say_err("publish", e, NULL);
            for (uint64_t j = k; j < mine; j++)
                lt_bench_mark_acked(l->run, w->id + j * p->publishers, false);
            break;
        }
    }
    atomic_fetch_add(&l->env_bytes, bytes);
    atomic_fetch_add(&l->sign_ns_sum, sign_ns);
    if (lt_client_flush(w->client, (int)(p->idle_timeout_s * 1000)) != LT_OK)
        fprintf(stderr, "bench_lt_load: publisher %u: acks still missing after %.0f s\n", w->id,
                p->idle_timeout_s);
out:
    if (pre) {
        for (uint64_t k = 0; k < mine; k++)
            free(pre[k].env);
        free(pre);
    }
    for (size_t i = 0; chunk && i < chunk_n; i++)
        free(chunk[i].env);
    free(chunk);
    free(payloads);
    free(w->specs);
    free(w->outs);
    free(w->lens);
    lt_client_close(&w->client);
    lt_signer_destroy(&signer);
    lt_agency_config_destroy(&cfg);
    return NULL;
}

/* ---- consumers ----------------------------------------------------------------------- */

static void on_deliver(void *user, const lt_client_delivery *d)
{
    worker *w = user;
    load *l = w->l;
    if (d->replay)
        return;
    lt_env *env = NULL;
    lt_why why;
    uint64_t idx;
    size_t plen = 0;
    const uint8_t *payload = NULL;
    Lienthong__V1__Records__LandParcel *rec = NULL;
    lt_err e = lt_env_decode(d->envelope, d->envelope_len, NULL, &env, &why);
    if (e == LT_OK)
        payload = lt_env_payload(env, &plen); /* before plen is read */
    if (payload)
        rec = lienthong__v1__records__land_parcel__unpack(NULL, plen, payload);
    if (rec && lt_bench_payload_index(rec->boundary_wkb.data, rec->boundary_wkb.len, &idx)) {
        lt_bench_mark_consumed(l->run, w->id, idx);
    } else {
        if (atomic_fetch_add(&l->nacks_reported, 1) < 10)
            fprintf(stderr, "bench_lt_load: delivery %" PRIu64 " of %s: %s\n", d->seq, d->queue,
                    e != LT_OK ? why.msg : "not a bench payload");
        lt_bench_count_error(l->run);
    }
    if (rec)
        lienthong__v1__records__land_parcel__free_unpacked(rec, NULL);
    lt_env_destroy(&env);
    if (lt_client_ack(w->client, d->queue, d->seq) != LT_OK)
        lt_bench_count_error(l->run);
}

static void on_client_error(void *user, lt_err code, const char *reason)
{
    worker *w = user;
    fprintf(stderr, "bench_lt_load: consumer %u (%s): %s %s\n", w->id, w->queue, lt_err_name(code),
            reason ? reason : "");
    lt_bench_count_error(w->l->run);
}

static void *consumer_main(void *arg)
{
    worker *w = arg;
    load *l = w->l;
    const lt_bench_params *p = lt_bench_run_params(l->run);
    lt_agency_config *cfg = NULL;
    lt_signer *signer = NULL;
    lt_why why = {{0}};
    w->queue = l->o.queues[w->id];

    lt_err e = lt_agency_config_load(l->o.sub_cfg, &cfg, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_signer(cfg, &signer, &why);
    if (e == LT_OK) {
        lt_client_opts co = {.client_name = "bench_lt_load consumer"};
        const char *ep = l->o.sub_endpoint ? l->o.sub_endpoint
                         : l->o.endpoint   ? l->o.endpoint
                                           : cfg->broker_endpoint;
        e = lt_client_open(ep, &co, &w->client, &why);
    }
    if (e == LT_OK) {
        lt_client_set_error_cb(w->client, on_client_error, w);
        e = lt_client_auth(w->client, cfg->id, signer, &why);
    }
    if (e == LT_OK)
        e = lt_client_subscribe(w->client, w->queue, l->o.credit, NULL, on_deliver, w, &why);
    if (e != LT_OK) {
        say_err("consumer setup", e, &why);
        atomic_store(&l->failed_setup, true);
    }
    pthread_barrier_wait(&l->ready);
    pthread_barrier_wait(&l->go);
    if (atomic_load(&l->failed_setup))
        goto out;

    int64_t idle_ns = (int64_t)(p->idle_timeout_s * 1e9);
    int64_t last = lt_bench_now_ns();
    uint64_t seen = 0;
    while (lt_bench_consumed(l->run, w->id) < p->messages) {
        if (lt_client_poll(w->client, 100, NULL) != LT_OK) {
            fprintf(stderr, "bench_lt_load: consumer %u: poll failed\n", w->id);
            lt_bench_count_error(l->run);
            break;
        }
        uint64_t now_seen = lt_bench_consumed(l->run, w->id);
        int64_t now = lt_bench_now_ns();
        if (now_seen != seen) {
            seen = now_seen;
            last = now;
        } else if (now - last > idle_ns) {
            fprintf(stderr,
                    "bench_lt_load: consumer %u idle for %.0f s at %" PRIu64 " of %" PRIu64
                    " messages, giving up\n",
                    w->id, p->idle_timeout_s, seen, p->messages);
            break;
        }
    }
    if (lt_client_flush(w->client, 10000) != LT_OK)
        lt_bench_count_error(l->run);
    lt_bench_consumer_done(l->run, w->id);
out:
    lt_client_close(&w->client);
    lt_signer_destroy(&signer);
    lt_agency_config_destroy(&cfg);
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const flags[] = {"presign", NULL};
    static load l = {.o = {.batch_n = 64, .credit = 1000}, .sig_alg = -1};
    lt_bench_params p;
    int prc = lt_bench_params_parse(argc, argv, &p, flags, opt_cb, &l.o);
    if (prc != 0) {
        usage(prc > 0 ? stdout : stderr);
        return prc > 0 ? 0 : 2;
    }
    unsigned n_cons = p.consume ? p.consumers : 0;
    if (!l.o.n_pub_cfgs || !l.o.topic || (n_cons && (!l.o.sub_cfg || l.o.n_queues < n_cons))) {
        fprintf(stderr, "bench_lt_load: needs --pub-config, --topic, and with consumers "
                        "--sub-config and one --queue per consumer\n");
        usage(stderr);
        return 2;
    }
    g_load = &l;
    int rc = 1;
    worker *workers = calloc(p.publishers + n_cons, sizeof *workers);
    l.run = lt_bench_run_new(&p);
    l.idx_of = malloc((size_t)p.messages * sizeof *l.idx_of);
    if (!workers || !l.run || !l.idx_of) {
        fprintf(stderr, "bench_lt_load: out of memory\n");
        goto out;
    }
    for (uint64_t i = 0; i < p.messages; i++)
        l.idx_of[i] = i;

    pthread_barrier_init(&l.ready, NULL, p.publishers + n_cons + 1);
    pthread_barrier_init(&l.go, NULL, p.publishers + n_cons + 1);
    for (unsigned i = 0; i < p.publishers + n_cons; i++) {
        worker *w = &workers[i];
        w->l = &l;
        w->id = i < p.publishers ? i : i - p.publishers;
        pthread_create(&w->thread, NULL, i < p.publishers ? publisher_main : consumer_main, w);
    }
    pthread_barrier_wait(&l.ready); /* connected, subscribed, presigned */
    lt_bench_start(l.run);
    pthread_barrier_wait(&l.go);
    for (unsigned i = 0; i < p.publishers + n_cons; i++)
        pthread_join(workers[i].thread, NULL);
    pthread_barrier_destroy(&l.ready);
    pthread_barrier_destroy(&l.go);

    if (!atomic_load(&l.failed_setup)) {
        char mode[64], extra[1024];
        snprintf(mode, sizeof mode, "%s%s", l.o.batch ? "batch" : "single",
                 l.o.presign ? "-presigned" : "-inline");
        double sign_s = (double)atomic_load(l.o.presign ? &l.sign_ns_max : &l.sign_ns_sum) / 1e9;
        uint64_t env_bytes = atomic_load(&l.env_bytes);
        snprintf(
            extra, sizeof extra,
            ",\"batch\":%u,\"sign\":{\"alg\":\"%s\","
            "\"per\":\"%s\",\"presigned\":%s,\"seconds\":%.3f,"
            "\"envelopes_per_s\":%.1f,\"note\":\"%s\"},"
            "\"envelope_bytes_avg\":%.1f,\"duplicates\":%" PRIu64 ","
            "\"durability\":\"LMDB group commit fsync'ed before any ack\"",
            l.o.batch ? l.o.batch_n : 1,
            atomic_load(&l.sig_alg) < 0 ? "unknown"
                                        : lt_sig_alg_name((lt_sig_alg)atomic_load(&l.sig_alg)),
            l.o.batch ? "batch" : "message",
            l.o.presign ? "true" : "false", sign_s, sign_s > 0 ? (double)p.messages / sign_s : 0.0,
            l.o.presign ? "all publishers in parallel before the timed part; seconds = "
                          "the slowest publisher"
                        : "inside the timed loop; seconds = summed over publishers",
            p.messages ? (double)env_bytes / (double)p.messages : 0.0, atomic_load(&l.duplicates));
        rc = lt_bench_report(l.run, stdout, "lienthong", mode, extra) ? 0 : 1;
    }
out:
    free(l.idx_of);
    lt_bench_run_destroy(&l.run);
    free(workers);
    return rc;
}
