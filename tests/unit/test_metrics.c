/* test_metrics.c - the metrics registry: counters move, histograms bucket, labels are
 * escaped, cardinality is capped, updates from many threads add up, and the exposition is
 * accepted by the reference Prometheus parser (python3-prometheus-client). */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "prom_parse.h"

static char *scrape(lt_metrics *m, size_t *len)
{
    lt_metrics_buf b = {0};
    assert_int_equal(lt_metrics_write_prometheus(m, &b), LT_OK);
    *len = b.len;
    return b.data;
}

static void counters_move_with_the_events_reported(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(16, 16, &m), LT_OK);
    int a = lt_metrics_agency(m, "VN:GOV:000.00.00.H29.760:hotich", "UBND Phường Sài Gòn");
    int q = lt_metrics_queue(m, "dancu.capnhat");
    assert_true(a > LT_METRICS_AGENCY_OTHER);
    assert_true(q > LT_METRICS_QUEUE_OTHER);
    for (int i = 0; i < 3; i++)
        lt_metrics_on_publish(m, a, 100);
    lt_metrics_on_ack(m, a, false);
    lt_metrics_on_ack(m, a, true);
    lt_metrics_on_nack(m, a, LT_ESIG);
    lt_metrics_on_deliver(m, q, false);
    lt_metrics_on_deliver(m, q, true);
    lt_metrics_on_consumer_ack(m, q);
    lt_metrics_on_dlq_move(m, q);
    lt_metrics_queue_gauges g = {.depth = 7, .unacked = 2, .bytes = 700, .dlq_depth = 1,
                                 .oldest_age_seconds = 12.5};
    lt_metrics_set_queue(m, q, &g);

    size_t len;
    char *t = scrape(m, &len);
    assert_non_null(strstr(t, "lienthong_published_total{agency=\"VN:GOV:000.00.00.H29.760:hotich\"} 3\n"));
    assert_non_null(strstr(t, "lienthong_published_bytes_total{agency=\"VN:GOV:000.00.00.H29.760:hotich\"} 300\n"));
    assert_non_null(strstr(t, "lienthong_acked_total{agency=\"VN:GOV:000.00.00.H29.760:hotich\"} 2\n"));
    assert_non_null(strstr(t, "lienthong_duplicates_total{agency=\"VN:GOV:000.00.00.H29.760:hotich\"} 1\n"));
    assert_non_null(strstr(t, "lienthong_nacked_total{agency=\"VN:GOV:000.00.00.H29.760:hotich\",reason=\"BAD_SIGNATURE\"} 1\n"));
    assert_non_null(strstr(t, "lienthong_deliveries_total{queue=\"dancu.capnhat\"} 2\n"));
    assert_non_null(strstr(t, "lienthong_redeliveries_total{queue=\"dancu.capnhat\"} 1\n"));
    assert_non_null(strstr(t, "lienthong_dlq_moves_total{queue=\"dancu.capnhat\"} 1\n"));
    assert_non_null(strstr(t, "lienthong_queue_depth{queue=\"dancu.capnhat\"} 7\n"));
    assert_non_null(strstr(t, "lienthong_queue_oldest_age_seconds{queue=\"dancu.capnhat\"} 12.500\n"));
    /* reserved slots with nothing counted stay out of the exposition */
    assert_null(strstr(t, "agency=\"_unknown\""));
    free(t);

    json_object *arr;
    assert_int_equal(lt_metrics_json_agencies(m, &arr), LT_OK);
    assert_int_equal(json_object_array_length(arr), 1);
    json_object *o = json_object_array_get_idx(arr, 0), *v, *r;
    assert_true(json_object_object_get_ex(o, "name", &v));
    assert_string_equal(json_object_get_string(v), "UBND Phường Sài Gòn");
    assert_true(json_object_object_get_ex(o, "rejects", &r));
    assert_true(json_object_object_get_ex(r, "BAD_SIGNATURE", &v));
    assert_int_equal(json_object_get_int(v), 1);
    json_object_put(arr);
    lt_metrics_destroy(&m);
    assert_null(m);
}

static void unknown_sender_and_bad_indexes_count_against_reserved_slots(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    lt_metrics_on_publish(m, LT_METRICS_AGENCY_UNKNOWN, 10);
    lt_metrics_on_nack(m, LT_METRICS_AGENCY_UNKNOWN, LT_EPROTO);
    lt_metrics_on_nack(m, 9999, LT_EPROTO);   /* out of range: still counted */
    lt_metrics_on_nack(m, -5, (lt_err)77);    /* unnamed code: one UNKNOWN series */
    lt_metrics_on_nack(m, -5, (lt_err)1234);
    lt_metrics_on_deliver(m, 4242, false);
    size_t len;
    char *t = scrape(m, &len);
    assert_non_null(strstr(t, "lienthong_nacked_total{agency=\"_unknown\",reason=\"MALFORMED\"} 2\n"));
    assert_non_null(strstr(t, "lienthong_nacked_total{agency=\"_unknown\",reason=\"UNKNOWN\"} 2\n"));
    assert_non_null(strstr(t, "lienthong_deliveries_total{queue=\"_other\"} 1\n"));
    free(t);
    lt_metrics_destroy(&m);
}

static void label_values_are_escaped_as_the_text_format_requires(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    int q = lt_metrics_queue(m, "a\"b\\c\nd");
    lt_metrics_on_deliver(m, q, false);
    int a = lt_metrics_agency(m, "VN:GOV:Sở Tư pháp", NULL);
    lt_metrics_on_publish(m, a, 1);
    size_t len;
    char *t = scrape(m, &len);
    assert_non_null(strstr(t, "lienthong_deliveries_total{queue=\"a\\\"b\\\\c\\nd\"} 1\n"));

    json_object *p = prom_parse(t, len);
    assert_non_null(p);
    assert_true(prom_sample(p, "lienthong_deliveries_total", "queue", "a\"b\\c\nd") == 1);
    assert_true(prom_sample(p, "lienthong_published_total", "agency", "VN:GOV:Sở Tư pháp") == 1);
    json_object_put(p);
    free(t);
    lt_metrics_destroy(&m);
}

static void registration_is_idempotent_and_capped(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(4, 3, &m), LT_OK); /* 2 agencies, 2 queues of our own */
    int a1 = lt_metrics_agency(m, "A1", NULL), a2 = lt_metrics_agency(m, "A2", NULL);
    assert_int_equal(a1, 2);
    assert_int_equal(a2, 3);
    assert_int_equal(lt_metrics_agency(m, "A1", NULL), a1);
    assert_int_equal(lt_metrics_agency_find(m, "A2"), a2);
    assert_int_equal(lt_metrics_agency(m, "A3", NULL), LT_METRICS_AGENCY_OTHER);
    assert_int_equal(lt_metrics_agency(m, "A4", NULL), LT_METRICS_AGENCY_OTHER);
    assert_int_equal(lt_metrics_agency_find(m, "A3"), -1);
    assert_int_equal(lt_metrics_queue(m, "q1"), 1);
    assert_int_equal(lt_metrics_queue(m, "q2"), 2);
    assert_int_equal(lt_metrics_queue(m, "q3"), LT_METRICS_QUEUE_OTHER);
    char longname[LT_METRICS_NAME_MAX + 8];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(lt_metrics_agency(m, longname, NULL), -1);
    assert_int_equal(lt_metrics_queue(m, ""), -1);
    assert_int_equal(lt_metrics_queue(m, NULL), -1);
    assert_int_equal(lt_metrics_new(1, 1, &(lt_metrics *){NULL}), LT_EINVAL);

    size_t len;
    char *t = scrape(m, &len);
    assert_non_null(strstr(t, "lienthong_metrics_overflow_total{kind=\"agency\"} 2\n"));
    assert_non_null(strstr(t, "lienthong_metrics_overflow_total{kind=\"queue\"} 1\n"));
    free(t);
    lt_metrics_destroy(&m);
}

static void histograms_are_cumulative_with_sum_and_count(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    lt_hist *h = lt_metrics_hist(m, LT_HIST_PUBLISH_ACK);
    lt_metrics_observe(h, 0.0003);
    lt_metrics_observe(h, 0.002);
    lt_metrics_observe(h, 20);
    lt_metrics_observe(h, -1);  /* counts as 0 */
    lt_metrics_observe(h, NAN); /* counts as 0 */
    assert_int_equal(lt_metrics_hist_count(h, 0.0001), 2);
    assert_int_equal(lt_metrics_hist_count(h, 0.0005), 3);
    assert_int_equal(lt_metrics_hist_count(h, 0.0025), 4);
    assert_int_equal(lt_metrics_hist_count(h, 10), 4);
    assert_int_equal(lt_metrics_hist_count(h, INFINITY), 5);
    lt_hist *b = lt_metrics_hist(m, LT_HIST_COMMIT_BATCH);
    lt_metrics_observe(b, 3);
    lt_metrics_observe(b, 100);

    size_t len;
    char *t = scrape(m, &len);
    json_object *p = prom_parse(t, len);
    assert_non_null(p);
    assert_string_equal(prom_type(p, "lienthong_publish_ack_duration_seconds"), "histogram");
    assert_true(prom_sample(p, "lienthong_publish_ack_duration_seconds_bucket", "le", "0.0005") == 3);
    assert_true(prom_sample(p, "lienthong_publish_ack_duration_seconds_bucket", "le", "+Inf") == 5);
    assert_true(prom_sample(p, "lienthong_publish_ack_duration_seconds_count", NULL, NULL) == 5);
    double sum = prom_sample(p, "lienthong_publish_ack_duration_seconds_sum", NULL, NULL);
    assert_true(fabs(sum - 20.0023) < 1e-6);
    assert_true(prom_sample(p, "lienthong_commit_batch_messages_bucket", "le", "4") == 1);
    assert_true(prom_sample(p, "lienthong_commit_batch_messages_sum", NULL, NULL) == 103);
    json_object_put(p);
    free(t);
    lt_metrics_destroy(&m);
}

struct worker {
    lt_metrics *m;
    int id;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    char name[32];
    snprintf(name, sizeof name, "agency-%d", w->id % 2);
    int a = lt_metrics_agency(w->m, name, NULL); /* two threads race to register each */
    int q = lt_metrics_queue(w->m, "shared");
    lt_hist *h = lt_metrics_hist(w->m, LT_HIST_VERIFY);
    for (int i = 0; i < 100000; i++) {
        lt_metrics_on_publish(w->m, a, 2);
        lt_metrics_on_deliver(w->m, q, (i & 1) != 0);
        lt_metrics_observe(h, 0.001);
        lt_metrics_add_gauge(w->m, LT_GAUGE_CONNECTED_CLIENTS, (i & 1) ? -1 : 1);
    }
    return NULL;
}

static void updates_from_many_threads_add_up(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){m, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    /* scrape while they run: must neither crash nor see torn series */
    for (int i = 0; i < 20; i++) {
        size_t len;
        free(scrape(m, &len));
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    size_t len;
    char *t = scrape(m, &len);
    json_object *p = prom_parse(t, len);
    assert_non_null(p);
    assert_true(prom_sample(p, "lienthong_published_total", "agency", "agency-0") == 200000);
    assert_true(prom_sample(p, "lienthong_published_total", "agency", "agency-1") == 200000);
    assert_true(prom_sample(p, "lienthong_published_bytes_total", "agency", "agency-1") == 400000);
    assert_true(prom_sample(p, "lienthong_deliveries_total", "queue", "shared") == 400000);
    assert_true(prom_sample(p, "lienthong_redeliveries_total", "queue", "shared") == 200000);
    assert_true(prom_sample(p, "lienthong_verify_duration_seconds_count", NULL, NULL) == 400000);
    assert_true(prom_sample(p, "lienthong_connected_clients", NULL, NULL) == 0);
    json_object_put(p);
    free(t);
    lt_metrics_destroy(&m);
}

static void collect_refresh(void *ctx, lt_metrics *m)
{
    int *calls = ctx;
    (*calls)++;
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "q%04d", i);
        lt_metrics_queue_gauges g = {.depth = (uint64_t)i, .unacked = 1,
                                     .oldest_age_seconds = i * 0.5};
        lt_metrics_set_queue(m, lt_metrics_queue_find(m, name), &g);
    }
}

static void a_thousand_queues_scrape_complete_and_parse(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(64, 4096, &m), LT_OK);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "q%04d", i);
        int q = lt_metrics_queue(m, name);
        assert_true(q > 0);
        lt_metrics_on_deliver(m, q, false);
    }
    int calls = 0;
    lt_metrics_set_collect(m, collect_refresh, &calls);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len;
    char *t = scrape(m, &len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Reported, not asserted: timing belongs in bench/ (bench_metrics_scrape). */
    print_message("1000 queues: %zu bytes in %.3f ms\n", len,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    assert_int_equal(calls, 1);
    json_object *p = prom_parse(t, len);
    assert_non_null(p);
    assert_true(prom_sample(p, "lienthong_queue_depth", "queue", "q0999") == 999);
    assert_true(prom_sample(p, "lienthong_queue_oldest_age_seconds", "queue", "q0500") == 250);
    assert_true(prom_sample(p, "lienthong_deliveries_total", "queue", "q0000") == 1);
    json_object *samples;
    json_object_object_get_ex(p, "samples", &samples);
    size_t depth_series = 0;
    for (size_t i = 0; i < json_object_array_length(samples); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(json_object_array_get_idx(samples, i), 0)),
                   "lienthong_queue_depth") == 0)
            depth_series++;
    assert_int_equal(depth_series, 1000);
    json_object_put(p);
    free(t);
    lt_metrics_destroy(&m);
}

static void rejections_ring_keeps_the_newest_first(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    for (int i = 0; i < LT_METRICS_REJECT_RING + 10; i++) {
        char reason[32];
        snprintf(reason, sizeof reason, "reason %d", i);
        lt_metrics_note_rejection(m, "VN:GOV:x", "79.760.hotich.khaisinh", "00ff", LT_EACL, reason);
    }
    json_object *arr;
    assert_int_equal(lt_metrics_json_rejections(m, 0, &arr), LT_OK);
    assert_int_equal(json_object_array_length(arr), LT_METRICS_REJECT_RING);
    json_object *first = json_object_array_get_idx(arr, 0), *v;
    json_object_object_get_ex(first, "reason", &v);
    char want[32];
    snprintf(want, sizeof want, "reason %d", LT_METRICS_REJECT_RING + 9);
    assert_string_equal(json_object_get_string(v), want);
    json_object_object_get_ex(first, "code_name", &v);
    assert_string_equal(json_object_get_string(v), "ACL_DENIED");
    json_object_put(arr);
    assert_int_equal(lt_metrics_json_rejections(m, 5, &arr), LT_OK);
    assert_int_equal(json_object_array_length(arr), 5);
    json_object_put(arr);
    lt_metrics_note_rejection(m, NULL, NULL, NULL, LT_EPROTO, NULL); /* NULLs are fine */
    lt_metrics_destroy(&m);
}

static void overview_sums_agencies_and_queues(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    int a = lt_metrics_agency(m, "A", NULL), b = lt_metrics_agency(m, "B", NULL);
    lt_metrics_on_publish(m, a, 5);
    lt_metrics_on_publish(m, b, 5);
    lt_metrics_on_nack(m, b, LT_ENOROUTE);
    int q1 = lt_metrics_queue(m, "q1"), q2 = lt_metrics_queue(m, "q2");
    lt_metrics_set_queue(m, q1, &(lt_metrics_queue_gauges){.depth = 3, .dlq_depth = 1, .oldest_age_seconds = 9});
    lt_metrics_set_queue(m, q2, &(lt_metrics_queue_gauges){.depth = 4, .oldest_age_seconds = 2});
    json_object *o, *t, *q, *v;
    assert_int_equal(lt_metrics_json_overview(m, &o), LT_OK);
    assert_true(json_object_object_get_ex(o, "totals", &t));
    json_object_object_get_ex(t, "published", &v);
    assert_int_equal(json_object_get_int(v), 2);
    json_object_object_get_ex(t, "rejected", &v);
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(o, "queues", &q));
    json_object_object_get_ex(q, "depth", &v);
    assert_int_equal(json_object_get_int(v), 7);
    json_object_object_get_ex(q, "dlq_depth", &v);
    assert_int_equal(json_object_get_int(v), 1);
    json_object_object_get_ex(q, "oldest_age_seconds", &v);
    assert_true(json_object_get_double(v) == 9);
    json_object_object_get_ex(q, "count", &v);
    assert_int_equal(json_object_get_int(v), 2);
    json_object_put(o);
    lt_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_move_with_the_events_reported),
        cmocka_unit_test(unknown_sender_and_bad_indexes_count_against_reserved_slots),
        cmocka_unit_test(label_values_are_escaped_as_the_text_format_requires),
        cmocka_unit_test(registration_is_idempotent_and_capped),
        cmocka_unit_test(histograms_are_cumulative_with_sum_and_count),
        cmocka_unit_test(updates_from_many_threads_add_up),
        cmocka_unit_test(a_thousand_queues_scrape_complete_and_parse),
        cmocka_unit_test(rejections_ring_keeps_the_newest_first),
        cmocka_unit_test(overview_sums_agencies_and_queues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
