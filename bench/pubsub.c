/*
 * pubsub.c - bench_pubsub: publish->ack throughput, end-to-end throughput and p50/p99
 * publish->ack latency of 1 KiB records against a running lienthongd, with single and with
 * batch signatures.
 *
 *   bench_pubsub -c PUBLISHER.yaml --sub CONSUMER.yaml -q QUEUE -t TOPIC
 *                [-n N] [--window W] [--batch B] [--size BYTES]
 *
 * Envelopes are sealed before the clock starts (the sealing rate is reported on its own),
 * so the numbers are the broker's: verify, dedup, route, group commit with fsync, ack, and
 * delivery. A consumer thread (its own connection) subscribes to QUEUE and acks; end-to-end
 * is first publish -> last delivery of this run's messages (others in the queue are acked
 * and not counted). Without --batch, runs single signatures, then batches of 64.
 */
#include "client.h"
/* the agency config of lib/ (bench targets also see broker/config.h by that name) */
#include "config.h"
#include "envelope.h"
#include "json.h"
#include "pki.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct run {
    size_t n, size;
    unsigned window, batch;
    const char *topic, *queue;
    lt_agency_config *pcfg, *scfg;
    lt_signer *psigner, *ssigner;
    /* per message */
    uint8_t **env;
    size_t *len;
    uint8_t (*id)[LT_ENV_MESSAGE_ID_LEN];
    int64_t *sent_ns, *lat_ns;
    size_t acked, nacked;
    /* consumer */
    volatile int sub_ready, stop;
    size_t delivered;
    int64_t last_delivery_ns;
    int sub_err;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t id_number(const uint8_t *id)
{
    uint64_t n = 0;
    for (int i = 8; i < 16; i++)
        n = (n << 8) | id[i];
    return n;
}

static void on_ack(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                   const char *reason)
{
    (void)seq, (void)dup;
    struct run *r = user;
    size_t i = (size_t)(tag - 1);
    if (i >= r->n)
        return;
    r->lat_ns[i] = now_ns() - r->sent_ns[i];
    if (code == LT_OK) {
        r->acked++;
    } else {
        if (r->nacked++ == 0)
            fprintf(stderr, "bench_pubsub: first refusal: %s: %s\n", lt_err_name(code), reason);
    }
}

static void on_deliver(void *user, const lt_client_delivery *d);

struct subctx {
    struct run *r;
    lt_client *c;
};

static void on_deliver(void *user, const lt_client_delivery *d)
{
    struct subctx *s = user;
    struct run *r = s->r;
    lt_env *env = NULL;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        const uint8_t *id = lt_env_message_id(env);
        uint64_t k = id_number(id);
        if (k < r->n && memcmp(r->id[k], id, LT_ENV_MESSAGE_ID_LEN) == 0) {
            r->delivered++;
            r->last_delivery_ns = now_ns();
        }
        lt_env_destroy(&env);
    }
    lt_client_ack(s->c, d->queue, d->seq);
}

static void *consumer_main(void *arg)
{
    struct run *r = arg;
    struct subctx s = {.r = r};
    lt_why why = {{0}};
    lt_client_opts o = {.client_name = "bench_pubsub-sub"};
    if (lt_client_open_agency(r->scfg, r->ssigner, &o, &s.c, &why) != LT_OK ||
        lt_client_subscribe(s.c, r->queue, 1000, NULL, on_deliver, &s, &why) != LT_OK) {
        fprintf(stderr, "bench_pubsub: consumer: %s\n", why.msg);
        r->sub_err = 1;
        r->sub_ready = 1;
        lt_client_close(&s.c);
        return NULL;
    }
    r->sub_ready = 1;
    while (!r->stop && r->delivered < r->n)
        lt_client_poll(s.c, 100, NULL);
    lt_client_flush(s.c, 5000);
    lt_client_close(&s.c);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int seal_all(struct run *r)
{
    lt_why why = {{0}};
    char *note = malloc(r->size + 1);
    char *json = malloc(r->size + 256);
    if (note == NULL || json == NULL)
        return -1;
    memset(note, 'x', r->size);
    note[r->size] = '\0';
    uint8_t *payload = NULL;
    size_t plen = 0;
    /* a BirthRegistration whose serialized size is about r->size bytes */
    snprintf(json, r->size + 256,
             "{\"registrationNumber\":\"1\",\"bookNumber\":\"01/2025\",\"note\":\"%.*s\"}",
             (int)(r->size > 40 ? r->size - 40 : 1), note);
    if (lt_json_text_to_payload("lienthong.v1.records.BirthRegistration", json, strlen(json),
                                &payload, &plen, &why) != LT_OK) {
        fprintf(stderr, "bench_pubsub: record: %s\n", why.msg);
        return -1;
    }
    free(note);
    free(json);
    lt_env_spec *specs = calloc(r->batch, sizeof *specs);
    int64_t t0 = now_ns();
    for (size_t i = 0; i < r->n; i += r->batch) {
        size_t k = r->n - i < r->batch ? r->n - i : r->batch;
        for (size_t j = 0; j < k; j++) {
            uint8_t *id = r->id[i + j];
            lt_env_uuid7(lt_env_now_ms(), id, NULL);
            uint64_t n = i + j;
            for (int b = 15; b >= 8; b--, n >>= 8)
                id[b] = (uint8_t)n;
            specs[j] = (lt_env_spec){.message_id = id,
                                     .topic = r->topic,
                                     .record_type = "lienthong.v1.records.BirthRegistration",
                                     .payload = payload,
                                     .payload_len = plen};
        }
        lt_err e = r->batch > 1
                       ? lt_env_seal_batch(r->psigner, specs, k, &r->env[i], &r->len[i], &why)
                       : lt_env_seal(r->psigner, &specs[0], &r->env[i], &r->len[i], &why);
        if (e != LT_OK) {
            fprintf(stderr, "bench_pubsub: seal: %s\n", why.msg);
            return -1;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("  seal:          %8.0f envelopes/s  (%zu-byte payload, %zu-byte envelope)\n",
           (double)r->n / secs, plen, r->len[0]);
    free(specs);
    free(payload);
    return 0;
}

static int run_once(struct run *r)
{
    r->env = calloc(r->n, sizeof *r->env);
    r->len = calloc(r->n, sizeof *r->len);
    r->id = calloc(r->n, sizeof *r->id);
    r->sent_ns = calloc(r->n, sizeof *r->sent_ns);
    r->lat_ns = calloc(r->n, sizeof *r->lat_ns);
    r->acked = r->nacked = r->delivered = 0;
    r->stop = r->sub_ready = 0;
    r->sub_err = 0;
    if (!r->env || !r->len || !r->id || !r->sent_ns || !r->lat_ns)
        return -1;
    printf("bench_pubsub: %zu records of ~%zu bytes, %s, window %u\n", r->n, r->size,
           r->batch > 1 ? "batch signatures" : "single signatures", r->window);
    if (r->batch > 1)
        printf("  (batches of %u under one signature)\n", r->batch);
    int rc = seal_all(r);
    pthread_t th;
    if (rc == 0 && pthread_create(&th, NULL, consumer_main, r) != 0)
        rc = -1;
    if (rc != 0)
        return rc;
    for (int i = 0; i < 1000 && !r->sub_ready; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    lt_why why = {{0}};
    lt_client *c = NULL;
    lt_client_opts o = {.window = r->window, .client_name = "bench_pubsub"};
    if (r->sub_err || lt_client_open_agency(r->pcfg, r->psigner, &o, &c, &why) != LT_OK) {
        fprintf(stderr, "bench_pubsub: publisher: %s\n", why.msg);
        r->stop = 1;
        pthread_join(th, NULL);
        return -1;
    }
    int64_t t0 = now_ns();
    for (size_t i = 0; i < r->n; i++) {
        r->sent_ns[i] = now_ns();
        if (lt_client_publish(c, r->env[i], r->len[i], on_ack, r, NULL) != LT_OK) {
            fprintf(stderr, "bench_pubsub: publish %zu not sent\n", i);
            break;
        }
    }
    lt_client_flush(c, 60000);
    int64_t t_ack = now_ns();
    for (int i = 0; i < 600 && r->delivered < r->n; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    r->stop = 1;
    pthread_join(th, NULL);
    lt_client_close(&c);
    double pub_s = (double)(t_ack - t0) / 1e9;
    double e2e_s = (double)(r->last_delivery_ns - t0) / 1e9;
    qsort(r->lat_ns, r->n, sizeof *r->lat_ns, cmp_i64);
    printf("  publish->ack:  %8.0f msgs/s  (%zu acked, %zu refused, %.2f s)\n",
           (double)r->acked / pub_s, r->acked, r->nacked, pub_s);
    printf("  latency:       p50 %.2f ms, p99 %.2f ms, max %.2f ms (publish->ack, %u in flight)\n",
           (double)r->lat_ns[r->n / 2] / 1e6, (double)r->lat_ns[r->n * 99 / 100] / 1e6,
           (double)r->lat_ns[r->n - 1] / 1e6, r->window);
    if (r->delivered == r->n)
        printf("  end-to-end:    %8.0f msgs/s  (first publish -> last delivery, %.2f s)\n",
               (double)r->n / e2e_s, e2e_s);
    else
        printf("  end-to-end:    only %zu of %zu delivered within 60 s\n", r->delivered, r->n);
    for (size_t i = 0; i < r->n; i++)
        free(r->env[i]);
    free(r->env);
    free(r->len);
    free(r->id);
    free(r->sent_ns);
    free(r->lat_ns);
    return r->acked == r->n && r->delivered == r->n ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"sub", required_argument, NULL, 's'},
        {"queue", required_argument, NULL, 'q'},  {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},  {"window", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},  {"size", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *pcfg = NULL, *scfg = NULL;
    struct run r = {.n = 20000, .size = 1024, .window = 1024, .topic = NULL, .queue = NULL};
    unsigned batch = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:s:q:t:n:w:b:z:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': pcfg = optarg; break;
        case 's': scfg = optarg; break;
        case 'q': r.queue = optarg; break;
        case 't': r.topic = optarg; break;
        case 'n': r.n = strtoul(optarg, NULL, 10); break;
        case 'w': r.window = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'z': r.size = strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: bench_pubsub -c PUBLISHER.yaml --sub CONSUMER.yaml -q QUEUE "
                            "-t TOPIC [-n N] [--window W] [--batch B] [--size BYTES]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!pcfg || !scfg || !r.queue || !r.topic || r.n == 0 || r.n > 10000000 || r.size == 0 ||
        r.size > 1000000 || batch > LT_ENV_BATCH_MAX) {
        fprintf(stderr, "bench_pubsub: need -c, --sub, -q, -t (and sane -n, --size, --batch)\n");
        return 2;
    }
    lt_why why = {{0}};
    if (lt_agency_config_load(pcfg, &r.pcfg, &why) != LT_OK ||
        lt_agency_config_open_signer(r.pcfg, &r.psigner, &why) != LT_OK ||
        lt_agency_config_load(scfg, &r.scfg, &why) != LT_OK ||
        lt_agency_config_open_signer(r.scfg, &r.ssigner, &why) != LT_OK) {
        fprintf(stderr, "bench_pubsub: %s\n", why.msg);
        return 1;
    }
    int rc = 0;
    unsigned batches[2] = {batch ? batch : 1, 64};
    for (int i = 0; i < (batch ? 1 : 2); i++) {
        r.batch = batches[i];
        rc |= run_once(&r);
    }
    lt_signer_destroy(&r.psigner);
    lt_signer_destroy(&r.ssigner);
    lt_agency_config_destroy(&r.pcfg);
    lt_agency_config_destroy(&r.scfg);
    return rc;
}
