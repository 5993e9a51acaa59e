/*
 * test_benchkit.c - the shared benchmark kit: payloads, options, bookkeeping, report.
 * Nothing here is timed; numbers in the report are only checked for shape and counts.
 */
#include "benchkit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static void payload_round_trips_its_index(void **state)
{
    (void)state;
    uint8_t buf[1024];
    uint64_t idx = 0;
    lt_bench_payload_fill(buf, sizeof buf, 123456789);
    assert_true(lt_bench_payload_index(buf, sizeof buf, &idx));
    assert_int_equal(idx, 123456789);
}

static void payload_index_refuses_foreign_bytes(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint64_t idx = 7;
    memset(buf, 0xab, sizeof buf);
    assert_false(lt_bench_payload_index(buf, sizeof buf, &idx));
    lt_bench_payload_fill(buf, sizeof buf, 1);
    assert_false(lt_bench_payload_index(buf, 15, &idx)); /* too short */
    assert_int_equal(idx, 7);
}

typedef struct seen_opts {
    char name[32], value[32];
    int flags;
} seen_opts;

static int record_opt(void *user, const char *name, const char *value)
{
    seen_opts *s = user;
    if (strcmp(name, "reject") == 0)
        return -1;
    if (value == NULL) {
        s->flags++;
        return 0;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->value, sizeof s->value, "%s", value);
    return 0;
}

static void params_parse_gives_defaults_and_reads_suffixes(void **state)
{
    (void)state;
    lt_bench_params p;
    char *none[] = {"prog"};
    assert_int_equal(lt_bench_params_parse(1, none, &p, NULL, NULL, NULL), 0);
    assert_int_equal(p.publishers, 2);
    assert_int_equal(p.messages, 200000);
    assert_int_equal(p.size, 1024);
    assert_true(p.consume);

    char *argv[] = {"prog", "--messages", "2k", "--size=256", "--no-consume", "--rate", "1.5M"};
    assert_int_equal(lt_bench_params_parse(7, argv, &p, NULL, NULL, NULL), -1); /* 1.5M */
    argv[6] = "1500";
    assert_int_equal(lt_bench_params_parse(7, argv, &p, NULL, NULL, NULL), 0);
    assert_int_equal(p.messages, 2000);
    assert_int_equal(p.size, 256);
    assert_false(p.consume);
    assert_true(p.rate == 1500.0);
}

static void params_parse_refuses_out_of_range_and_missing_values(void **state)
{
    (void)state;
    lt_bench_params p;
    char *small[] = {"prog", "--size", "8"};
    assert_int_equal(lt_bench_params_parse(3, small, &p, NULL, NULL, NULL), -1);
    char *zero[] = {"prog", "--publishers", "0"};
    assert_int_equal(lt_bench_params_parse(3, zero, &p, NULL, NULL, NULL), -1);
    char *missing[] = {"prog", "--messages"};
    assert_int_equal(lt_bench_params_parse(2, missing, &p, NULL, NULL, NULL), -1);
    char *neg[] = {"prog", "--messages", "-5"};
    assert_int_equal(lt_bench_params_parse(3, neg, &p, NULL, NULL, NULL), -1);
    char *help[] = {"prog", "--help"};
    assert_int_equal(lt_bench_params_parse(2, help, &p, NULL, NULL, NULL), 1);
}

static void params_parse_hands_unknown_options_to_the_program(void **state)
{
    (void)state;
    lt_bench_params p;
    seen_opts s = {0};
    const char *const flags[] = {"presign", NULL};
    char *argv[] = {"prog", "--url", "nats://x", "--presign", "--window", "8"};
    assert_int_equal(lt_bench_params_parse(6, argv, &p, flags, record_opt, &s), 0);
    assert_string_equal(s.name, "url");
    assert_string_equal(s.value, "nats://x");
    assert_int_equal(s.flags, 1);
    assert_int_equal(p.window, 8);

    char *bad[] = {"prog", "--reject", "1"};
    assert_int_equal(lt_bench_params_parse(3, bad, &p, flags, record_opt, &s), -1);
    char *flag_value[] = {"prog", "--presign=1"};
    assert_int_equal(lt_bench_params_parse(2, flag_value, &p, flags, record_opt, &s), -1);
}

static char *report_of(lt_bench_run *r, bool *complete)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    *complete = lt_bench_report(r, f, "test", "mode", ",\"extra\":1");
    fclose(f);
    /* A copy: gcc's -Wdangling-pointer takes what points into text for a pointer to the
     * local open_memstream was given. */
    char *copy = strdup(text);
    assert_non_null(copy);
    free(text);
    return copy;
}

static lt_bench_run *run_of(uint64_t n, unsigned consumers)
{
    lt_bench_params p;
    char *argv[] = {"prog"};
    assert_int_equal(lt_bench_params_parse(1, argv, &p, NULL, NULL, NULL), 0);
    p.messages = n;
    p.consumers = consumers;
    lt_bench_run *r = lt_bench_run_new(&p);
    assert_non_null(r);
    lt_bench_start(r);
    return r;
}

static void a_run_where_everything_arrives_is_complete(void **state)
{
    (void)state;
    lt_bench_run *r = run_of(100, 2);
    for (uint64_t i = 0; i < 100; i++) {
        lt_bench_mark_sent(r, i);
        lt_bench_mark_acked(r, i, true);
        assert_true(lt_bench_mark_consumed(r, 0, i));
        assert_true(lt_bench_mark_consumed(r, 1, i));
    }
    assert_false(lt_bench_mark_consumed(r, 0, 5));   /* a redelivery */
    assert_false(lt_bench_mark_consumed(r, 0, 100)); /* out of range */
    assert_false(lt_bench_mark_consumed(r, 2, 1));   /* no such consumer */
    assert_int_equal(lt_bench_consumed(r, 0), 100);
    assert_int_equal(lt_bench_completed(r), 100);
    lt_bench_consumer_done(r, 0);
    lt_bench_consumer_done(r, 1);

    bool complete = false;
    char *text = report_of(r, &complete);
    assert_true(complete);
    assert_non_null(strstr(text, "\"system\":\"test\""));
    assert_non_null(strstr(text, "\"publish\":{\"msgs\":100,"));
    assert_non_null(strstr(text, "\"end_to_end\":{\"msgs\":100,"));
    assert_non_null(strstr(text, "\"pub_ack_latency_us\":{\"count\":100,"));
    assert_non_null(strstr(text, "\"e2e_latency_us\":{\"count\":100,"));
    assert_non_null(strstr(text, "\"complete\":true,\"extra\":1}"));
    assert_non_null(strstr(text, "\"server_cpu_timed_s\":null")); /* no --server-pid */
    free(text);
    lt_bench_run_destroy(&r);
    assert_null(r);
}

static void a_failed_publish_or_a_missing_delivery_makes_it_incomplete(void **state)
{
    (void)state;
    lt_bench_run *r = run_of(10, 1);
    for (uint64_t i = 0; i < 10; i++) {
        lt_bench_mark_sent(r, i);
        lt_bench_mark_acked(r, i, i != 3);
        if (i != 7)
            lt_bench_mark_consumed(r, 0, i);
    }
    lt_bench_consumer_done(r, 0);
    bool complete = true;
    char *text = report_of(r, &complete);
    assert_false(complete);
    assert_non_null(strstr(text, "\"publish\":{\"msgs\":9,"));
    assert_non_null(strstr(text, "\"end_to_end\":{\"msgs\":9,"));
    assert_non_null(strstr(text, "\"errors\":1,"));
    free(text);
    lt_bench_run_destroy(&r);
}

static void progress_samples_every_k_completions(void **state)
{
    (void)state;
    lt_bench_run *r = run_of(10, 1);
    lt_bench_params p = *lt_bench_run_params(r);
    lt_bench_run_destroy(&r);
    p.progress_every = 4;
    p.consume = false;
    r = lt_bench_run_new(&p);
    assert_non_null(r);
    lt_bench_start(r);
    for (uint64_t i = 0; i < 10; i++)
        lt_bench_mark_acked(r, i, true);
    bool complete = false;
    char *text = report_of(r, &complete);
    assert_true(complete);
    assert_non_null(strstr(text, "\"end_to_end\":null"));
    assert_non_null(strstr(text, "{\"acked\":4,"));
    assert_non_null(strstr(text, "{\"acked\":8,"));
    assert_null(strstr(text, "{\"acked\":10,"));
    assert_non_null(strstr(text, "\"server_rss_kib\":-1")); /* no --server-pid */
    free(text);
    lt_bench_run_destroy(&r);
}

static void proc_kib_reads_this_process_and_refuses_unknown_fields(void **state)
{
    (void)state;
    assert_true(lt_bench_proc_kib((int)getpid(), "VmRSS") > 0);
    assert_int_equal(lt_bench_proc_kib((int)getpid(), "NoSuchField"), -1);
    assert_int_equal(lt_bench_proc_kib(0x7ffffff0, "VmRSS"), -1);
}

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The number after "name": in text, or -1. */
static double json_number(const char *text, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(text, key);
    return at ? strtod(at + strlen(key), NULL) : -1;
}

static void server_cpu_counts_only_what_the_server_spends_after_the_start(void **state)
{
    (void)state;
    lt_bench_params p;
    char *argv[] = {"prog"};
    assert_int_equal(lt_bench_params_parse(1, argv, &p, NULL, NULL, NULL), 0);
    p.messages = 1;
    p.server_pid = (int)getpid(); /* this process stands in for the server */
    lt_bench_run *r = lt_bench_run_new(&p);
    assert_non_null(r);
    volatile uint64_t spin = 0;
    for (double t = process_cpu_s(); process_cpu_s() - t < 0.2;) /* before: not counted */
        spin++;
    lt_bench_start(r);
    for (double t = process_cpu_s(); process_cpu_s() - t < 0.1;) /* after: counted */
        spin++;
    lt_bench_mark_acked(r, 0, true);
    lt_bench_mark_consumed(r, 0, 0);
    lt_bench_consumer_done(r, 0);
    bool complete = false;
    char *text = report_of(r, &complete);
    double v = json_number(text, "server_cpu_timed_s");
    free(text);
    /* 0.1 s spun, counted in clock ticks (1/100 s), plus the report itself */
    assert_true(v >= 0.07);
    assert_true(v < 0.19);
    lt_bench_run_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(payload_round_trips_its_index),
        cmocka_unit_test(payload_index_refuses_foreign_bytes),
        cmocka_unit_test(params_parse_gives_defaults_and_reads_suffixes),
        cmocka_unit_test(params_parse_refuses_out_of_range_and_missing_values),
        cmocka_unit_test(params_parse_hands_unknown_options_to_the_program),
        cmocka_unit_test(a_run_where_everything_arrives_is_complete),
        cmocka_unit_test(a_failed_publish_or_a_missing_delivery_makes_it_incomplete),
        cmocka_unit_test(progress_samples_every_k_completions),
        cmocka_unit_test(proc_kib_reads_this_process_and_refuses_unknown_fields),
        cmocka_unit_test(server_cpu_counts_only_what_the_server_spends_after_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
