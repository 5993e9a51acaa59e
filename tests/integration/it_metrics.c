/*
 * it_metrics.c - the admin server of a real lienthongd (dev-init's setup) seen from outside:
 * /healthz answers without a token, /metrics refuses a missing or wrong one, and after a
 * known workload (n publishes accepted, m refused with known codes, n delivered and acked)
 * the Prometheus counters, parsed by the reference parser (python3-prometheus-client via
 * tests/unit/prom_parse.py), moved by exactly those amounts.
 *
 * One broker for the group. Counters are compared as differences between two scrapes, so the
 * tests do not depend on their order. Every wait is bounded.
 */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"

#include "../unit/prom_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define QUAN1 "VN:GOV:000.00.00.H29.760:hotich"
#define QUAN3 "VN:GOV:000.00.00.H29.770:hotich"
#define TOPIC "79.760.hotich.khaisinh"
#define QUEUE "dancu.capnhat"

static it_env env;
static char token[256];
static lt_signer *quan1, *quan3, *revoked, *dancu;

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_use_dev_init_config(&env) || !it_broker_start(&env, 30000) ||
        !it_admin_token(&env, token, sizeof token))
        return -1;
    quan1 = it_signer(&env, "quan1");
    quan3 = it_signer(&env, "quan3");
    revoked = it_signer(&env, "quan1-revoked");
    dancu = it_signer(&env, "dancu");
    return quan1 && quan3 && revoked && dancu ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&quan3);
    lt_signer_destroy(&revoked);
    lt_signer_destroy(&dancu);
    if (env.pid > 0) {
        int rc = it_broker_stop(&env, 15000);
        if (rc != 0)
            fprintf(stderr, "it_metrics: lienthongd exited %d on SIGTERM\n", rc);
    }
    it_env_fini(&env);
    return 0;
}

static int get(const char *path, const char *tok, it_http_resp *r)
{
    assert_true(it_http_get(env.admin_port, path, tok, 10000, r));
    return r->status;
}

/* /metrics with the token, parsed by the reference parser (caller puts it). */
static json_object *scrape(void)
{
    it_http_resp r;
    assert_int_equal(get("/metrics", token, &r), 200);
    json_object *j = prom_parse(r.body, r.len);
    if (j == NULL)
        fail_msg("the reference parser refused /metrics:\n%.2000s", r.body);
    it_http_resp_fini(&r);
    return j;
}

/* A sample's value, 0 when the series is absent (counters with a reason label appear only
 * once they are non-zero). */
static double val(json_object *p, const char *name, const char *label, const char *value)
{
    double v = prom_sample(p, name, label, value);
    return v < 0 ? 0 : v;
}

/* The sample name{agency=agency,reason=reason}; 0 when absent. */
static double nacked(json_object *p, const char *agency, const char *reason)
{
    json_object *samples;
    if (!json_object_object_get_ex(p, "samples", &samples))
        return 0;
    for (size_t i = 0; i < json_object_array_length(samples); i++) {
        json_object *s = json_object_array_get_idx(samples, i), *a, *r;
        json_object *labels = json_object_array_get_idx(s, 1);
        if (strcmp(json_object_get_string(json_object_array_get_idx(s, 0)),
                   "lienthong_nacked_total") == 0 &&
            json_object_object_get_ex(labels, "agency", &a) &&
            json_object_object_get_ex(labels, "reason", &r) &&
            strcmp(json_object_get_string(a), agency) == 0 &&
            strcmp(json_object_get_string(r), reason) == 0)
            return json_object_get_double(json_object_array_get_idx(s, 2));
    }
    return 0;
}

static void healthz_answers_without_a_token(void **state)
{
    (void)state;
    it_http_resp r;
    assert_int_equal(get("/healthz", NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"ok\""));
    it_http_resp_fini(&r);
    assert_int_equal(get("/readyz", NULL, &r), 200); /* fresh store, CRL valid, disk free */
    it_http_resp_fini(&r);
}

static void metrics_and_api_refuse_a_missing_or_wrong_token(void **state)
{
    (void)state;
    it_http_resp r;
    assert_int_equal(get("/metrics", NULL, &r), 401);
    assert_null(strstr(r.body, "lienthong_published_total")); /* no data leaks with the 401 */
    it_http_resp_fini(&r);
    assert_int_equal(get("/metrics", "wrong-token-wrong-token-wrong", &r), 401);
    assert_null(strstr(r.body, "lienthong_published_total"));
    it_http_resp_fini(&r);
    /* a prefix of the right token is wrong too */
    char half[sizeof token];
    snprintf(half, sizeof half, "%.*s", (int)strlen(token) / 2, token);
    assert_int_equal(get("/metrics", half, &r), 401);
    it_http_resp_fini(&r);
    assert_int_equal(get("/api/v1/overview", NULL, &r), 401);
    it_http_resp_fini(&r);
    assert_int_equal(get("/metrics", token, &r), 200);
    assert_non_null(strstr(r.content_type, "text/plain"));
    assert_non_null(strstr(r.body, "lienthong_published_total"));
    it_http_resp_fini(&r);
}

/* Publish envs[0..n) pipelined on c and wait for every answer. */
static void publish(lt_client *c, uint8_t **envs, const size_t *lens, size_t n, it_answer *a)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(lt_client_publish(c, envs[i], lens[i], it_answer_cb, &a[i], NULL),
                         LT_OK);
    assert_int_equal(lt_client_flush(c, 60000), LT_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(a[i].done);
}

static void counters_move_by_exactly_a_known_workload(void **state)
{
    (void)state;
    enum { N = 50, N_ACL = 3, N_ROUTE = 2, N_REVOKED = 1, M = N_ACL + N_ROUTE + N_REVOKED };
    json_object *before = scrape();

    /* The workload: N accepted from district 1, then M refused with known codes. */
    uint8_t *envs[N + M];
    size_t lens[N + M], n = 0;
    double quan1_bytes = 0;
    for (size_t i = 0; i < N; i++, n++) {
        envs[n] = it_seal(quan1, TOPIC, 7000 + i, 100, &lens[n], NULL);
        quan1_bytes += (double)lens[n];
    }
    for (size_t i = 0; i < N_ACL; i++, n++) /* district 3 on district 1's topic */
        envs[n] = it_seal(quan3, TOPIC, 8000 + i, 10, &lens[n], NULL);
    for (size_t i = 0; i < N_ROUTE; i++, n++) { /* a topic no queue is bound to */
        envs[n] = it_seal(quan1, "79.760.nothing.here", 8100 + i, 10, &lens[n], NULL);
        quan1_bytes += (double)lens[n];
    }
    for (size_t i = 0; i < N_REVOKED; i++, n++) /* a revoked certificate: sender unknown */
        envs[n] = it_seal(revoked, TOPIC, 8200 + i, 10, &lens[n], NULL);
    for (size_t i = 0; i < n; i++)
        assert_non_null(envs[i]);
    it_answer a[N + M];
    memset(a, 0, sizeof a);
    lt_client *pub = it_client(&env, NULL, 64, 0);
    assert_non_null(pub);
    publish(pub, envs, lens, n, a);
    for (size_t i = 0; i < n; i++) {
        const char *want = i < N                    ? "OK"
                           : i < N + N_ACL          ? "ACL_DENIED"
                           : i < N + N_ACL + N_ROUTE ? "NO_ROUTE"
                                                     : "CERT_REVOKED";
        const char *got = a[i].code == LT_OK ? "OK" : lt_err_name(a[i].code);
        if (strcmp(want, got) != 0)
            fail_msg("publish %zu: expected %s, got %s (%s)", i, want, got, a[i].reason);
        free(envs[i]);
    }
    lt_client_close(&pub);

    /* N delivered to the population database's consumer, each acked. */
    it_sink s = {.ack = true};
    s.c = it_client(&env, dancu, 0, 0);
    assert_non_null(s.c);
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(s.c, QUEUE, 100, NULL, it_sink_cb, &s, &why), LT_OK);
    assert_true(it_sink_wait(&s, N, 30000));

    /* Consumer acks commit asynchronously: wait (bounded) until the scrape shows them. */
    json_object *after = NULL;
    double base_acks = val(before, "lienthong_consumer_acks_total", "queue", QUEUE);
    for (int64_t deadline = it_now_ms() + 15000;;) {
        after = scrape();
        double acks = val(after, "lienthong_consumer_acks_total", "queue", QUEUE);
        if (acks - base_acks >= N || it_now_ms() >= deadline)
            break;
        json_object_put(after);
        lt_client_poll(s.c, 50, NULL);
    }
    assert_int_equal(s.n, N); /* nothing more was delivered */

#define DELTA(name_, label_, value_) \
    (val(after, name_, label_, value_) - val(before, name_, label_, value_))
    assert_int_equal(DELTA("lienthong_published_total", "agency", QUAN1), N + N_ROUTE);
    assert_int_equal(DELTA("lienthong_acked_total", "agency", QUAN1), N);
    assert_int_equal(DELTA("lienthong_duplicates_total", "agency", QUAN1), 0);
    assert_int_equal(DELTA("lienthong_published_bytes_total", "agency", QUAN1), quan1_bytes);
    assert_int_equal(DELTA("lienthong_published_total", "agency", QUAN3), N_ACL);
    assert_int_equal(DELTA("lienthong_acked_total", "agency", QUAN3), 0);
    assert_int_equal(nacked(after, QUAN3, "ACL_DENIED") - nacked(before, QUAN3, "ACL_DENIED"),
                     N_ACL);
    assert_int_equal(nacked(after, QUAN1, "NO_ROUTE") - nacked(before, QUAN1, "NO_ROUTE"),
                     N_ROUTE);
    /* A revoked certificate identifies nobody: counted against "_unknown". */
    assert_int_equal(nacked(after, "_unknown", "CERT_REVOKED") -
                         nacked(before, "_unknown", "CERT_REVOKED"),
                     N_REVOKED);
    assert_int_equal(nacked(after, QUAN1, "ACL_DENIED") - nacked(before, QUAN1, "ACL_DENIED"),
                     0);
    assert_int_equal(DELTA("lienthong_deliveries_total", "queue", QUEUE), N);
    assert_int_equal(DELTA("lienthong_redeliveries_total", "queue", QUEUE), 0);
    assert_int_equal(DELTA("lienthong_consumer_acks_total", "queue", QUEUE), N);
    assert_int_equal(DELTA("lienthong_consumer_naks_total", "queue", QUEUE), 0);
    assert_int_equal(DELTA("lienthong_dlq_moves_total", "queue", QUEUE), 0);
    assert_int_equal(DELTA("lienthong_deliveries_total", "queue", "dvcqg.hoso"), 0);
    /* Every frame was verified once; every accepted one was timed from frame to ACK. */
    assert_int_equal(DELTA("lienthong_verify_duration_seconds_count", NULL, NULL), N + M);
    assert_int_equal(DELTA("lienthong_publish_ack_duration_seconds_count", NULL, NULL), N);
    /* The parser saw the declared types, histograms with their buckets. */
    assert_string_equal(prom_type(after, "lienthong_published"), "counter");
    assert_string_equal(prom_type(after, "lienthong_queue_depth"), "gauge");
    assert_string_equal(prom_type(after, "lienthong_publish_ack_duration_seconds"), "histogram");
    assert_true(prom_sample(after, "lienthong_publish_ack_duration_seconds_bucket", "le", "+Inf") >=
                N);
    /* The consumer is connected; the publisher has gone. */
    assert_true(val(after, "lienthong_connected_clients", NULL, NULL) >= 1);
#undef DELTA
    json_object_put(after);
    json_object_put(before);

    /* Acked messages leave the queue: the depth gauge comes back to 0 (bounded wait). */
    double depth = -1;
    for (int64_t deadline = it_now_ms() + 15000; depth != 0 && it_now_ms() < deadline;) {
        json_object *p = scrape();
        depth = val(p, "lienthong_queue_depth", "queue", QUEUE);
        json_object_put(p);
        if (depth != 0)
            lt_client_poll(s.c, 50, NULL);
    }
    assert_true(depth == 0);
    lt_client_close(&s.c);
    it_sink_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_answers_without_a_token),
        cmocka_unit_test(metrics_and_api_refuse_a_missing_or_wrong_token),
        cmocka_unit_test(counters_move_by_exactly_a_known_workload),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
