/*
 * metrics_scrape.c - cost of one Prometheus scrape of the metrics registry with N queues
 * (default 1000) and 50 agencies with rejects, gauges refreshed by a collect callback as
 * the daemon does. Prints min / median / p99 over R runs (default 200).
 *   bench_metrics_scrape [QUEUES [RUNS]]
 * This measures the registry's exposition alone (what the admin server's /metrics adds on
 * the loop thread); the end-to-end effect on broker throughput needs the daemon (issue 6).
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int nq;

static void refresh(void *ctx, lt_metrics *m)
{
    (void)ctx;
    for (int i = 0; i < nq; i++) {
        lt_metrics_queue_gauges g = {.depth = (uint64_t)i * 3, .unacked = (uint64_t)i % 7,
                                     .bytes = (uint64_t)i * 1024, .dlq_depth = (uint64_t)i % 3,
                                     .oldest_age_seconds = i * 0.25};
        lt_metrics_set_queue(m, i + 1, &g);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    nq = argc > 1 ? atoi(argv[1]) : 1000;
    int runs = argc > 2 ? atoi(argv[2]) : 200;
    if (nq < 1 || nq > 60000 || runs < 1 || runs > 100000) {
        fprintf(stderr, "usage: bench_metrics_scrape [QUEUES<=60000 [RUNS]]\n");
        return 2;
    }
    lt_metrics *m;
    if (lt_metrics_new(256, (size_t)nq + 1, &m) != LT_OK)
        return 1;
    for (int i = 0; i < nq; i++) {
        char name[64];
        snprintf(name, sizeof name, "79.%03d.hotich.queue%05d", i % 1000, i);
        int q = lt_metrics_queue(m, name);
        for (int k = 0; k < 10; k++)
            lt_metrics_on_deliver(m, q, k == 0);
        lt_metrics_on_consumer_ack(m, q);
    }
    for (int a = 0; a < 50; a++) {
        char id[64];
        snprintf(id, sizeof id, "VN:GOV:000.00.00.H29.%03d:hotich", a);
        int ai = lt_metrics_agency(m, id, "UBND phường");
        lt_metrics_on_publish(m, ai, 1024);
        lt_metrics_on_nack(m, ai, LT_ESIG);
        lt_metrics_on_nack(m, ai, LT_EACL);
    }
    for (int i = 0; i < 1000; i++)
        lt_metrics_observe(lt_metrics_hist(m, LT_HIST_PUBLISH_ACK), i * 1e-5);
    lt_metrics_set_collect(m, refresh, NULL);

    double *t = malloc(sizeof *t * (size_t)runs);
    size_t bytes = 0;
    for (int r = 0; r < runs; r++) {
        lt_metrics_buf b = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        lt_metrics_write_prometheus(m, &b);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        t[r] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        bytes = b.len;
        lt_metrics_buf_fini(&b);
    }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    printf("queues=%d agencies=50 runs=%d bytes=%zu min=%.3fms median=%.3fms p99=%.3fms\n", nq,
           runs, bytes, t[0], t[runs / 2], t[(runs * 99) / 100]);
    free(t);
    lt_metrics_destroy(&m);
    return 0;
}
