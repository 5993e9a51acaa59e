/*
 * it_schedule.c - scheduled delivery against a real lienthongd (issue: "One-stop procedures
 * and instant tasks", delayed and scheduled delivery).
 *
 * A record published with Publish.deliver_at_unix_ms is acked at once, is not delivered
 * before its time, and is delivered within a second after it, across a kill -9 and a
 * restart in between. A scheduled record its agency cancels is never delivered; a second
 * cancel, a cancel by another agency and a cancel of a record that is already due are
 * refused NOT_SCHEDULED; a due time past max_schedule_days is refused BAD_SCHEDULE.
 */
#include "harness.h"
#include "harness_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-schedule\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 256\n"
                                  "  verify_threads: 2\n"
                                  "  max_schedule_days: 30\n"
                                  "  admin:\n"
                                  "    listen: @ADMIN@\n"
                                  "    token_file: admin.token\n"
                                  "trust:\n"
                                  "  ca: ca/ca.cert.pem\n"
                                  "  crl: ca/crl.pem\n"
                                  "acl:\n"
                                  "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
                                  "    publish: [\"79.760.>\"]\n"
                                  "  - agency: VN:GOV:000.00.00.H29.770:hotich\n"
                                  "    publish: [\"79.770.>\"]\n"
                                  "queues:\n"
                                  "  - name: sched.all\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.sched.>\"]\n";

static it_env env;

static it_answer publish_at(lt_client *c, const uint8_t *e, size_t len, int64_t due)
{
    it_answer a;
    memset(&a, 0, sizeof a);
    assert_int_equal(lt_client_publish_at(c, e, len, due, it_answer_cb, &a, NULL), LT_OK);
    int64_t deadline = it_now_ms() + 10000;
    while (!a.done && it_now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_true(a.done);
    return a;
}

static it_answer cancel(lt_client *c, const uint8_t id[16])
{
    it_answer a;
    memset(&a, 0, sizeof a);
    assert_int_equal(lt_client_cancel(c, id, it_answer_cb, &a, NULL), LT_OK);
    int64_t deadline = it_now_ms() + 10000;
    while (!a.done && it_now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    assert_true(a.done);
    return a;
}

/* The deliveries of s with record number n. */
static size_t count_n(const it_sink *s, uint64_t n, int64_t *at)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].n == n) {
            k++;
            if (at)
                *at = s->v[i].at_ms;
        }
    return k;
}

static void a_scheduled_record_waits_for_its_time_across_a_kill_9(void **state)
{
    (void)state;
    lt_signer *a = it_signer(&env, "quan1"), *b = it_signer(&env, "quan3"),
              *dancu = it_signer(&env, "dancu");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(dancu);
    lt_client *pa = it_client(&env, a, 0, 0), *pb = it_client(&env, b, 0, 0);
    assert_non_null(pa);
    assert_non_null(pb);
    size_t l1, l2, l3, l4, l5;
    uint8_t id1[16], id3[16], id5[16];
    uint8_t *e1 = it_seal(a, "79.760.sched.khaisinh", 1, 0, &l1, id1);
    uint8_t *e2 = it_seal(a, "79.760.sched.khaisinh", 2, 0, &l2, NULL);
    uint8_t *e3 = it_seal(a, "79.760.sched.khaisinh", 3, 0, &l3, id3);
    uint8_t *e4 = it_seal(a, "79.760.sched.khaisinh", 4, 0, &l4, NULL);
    uint8_t *e5 = it_seal(a, "79.760.sched.khaisinh", 5, 0, &l5, id5);

    /* due times are wall-clock Unix ms; the harness measures arrival on its monotonic clock */
    int64_t wall = lt_env_now_ms(), due = it_now_ms() + 6000, due_wall = wall + 6000;
    assert_int_equal(publish_at(pa, e1, l1, due_wall).code, LT_OK); /* scheduled */
    assert_int_equal(publish_at(pa, e2, l2, 0).code, LT_OK);        /* at once */
    assert_int_equal(publish_at(pa, e3, l3, due_wall).code, LT_OK); /* to be cancelled */
    assert_int_equal(publish_at(pa, e5, l5, lt_env_now_ms() + 300).code, LT_OK); /* soon due */
    it_answer far = publish_at(pa, e4, l4, lt_env_now_ms() + 31LL * 86400 * 1000);
    assert_string_equal(lt_err_name(far.code), "BAD_SCHEDULE");
    assert_non_null(strstr(far.reason, "max_schedule_days"));

    /* only the owner of a scheduled record may cancel it, once */
    assert_string_equal(lt_err_name(cancel(pb, id3).code), "NOT_SCHEDULED");
    it_answer c3 = cancel(pa, id3);
    assert_int_equal(c3.code, LT_OK);
    assert_true(c3.seq > 0);
    assert_string_equal(lt_err_name(cancel(pa, id3).code), "NOT_SCHEDULED");

    /* the consumer sees the immediate one and the soon-due one, not the scheduled one */
    lt_client *cons = it_client(&env, dancu, 0, 0);
    assert_non_null(cons);
    it_sink s = {.c = cons, .ack = true};
    lt_why why;
    assert_int_equal(lt_client_subscribe(cons, "sched.all", 100, NULL, it_sink_cb, &s, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s, 2, 10000));
    assert_int_equal(count_n(&s, 2, NULL), 1);
    assert_int_equal(count_n(&s, 5, NULL), 1);
    /* due already: too late to cancel */
    assert_string_equal(lt_err_name(cancel(pa, id5).code), "NOT_SCHEDULED");
    assert_false(it_sink_wait(&s, 3, 1000));
    assert_true(it_now_ms() < due);
    it_sink_fini(&s);
    lt_client_close(&cons);
    lt_client_close(&pa);
    lt_client_close(&pb);

    /* kill -9 before it is due; it still comes, on time, after the restart */
    it_broker_kill9(&env);
    assert_true(it_broker_start(&env, 30000));
    assert_true(it_now_ms() < due - 500);
    cons = it_client(&env, dancu, 0, 0);
    assert_non_null(cons);
    it_sink s2 = {.c = cons, .ack = true};
    assert_int_equal(lt_client_subscribe(cons, "sched.all", 100, NULL, it_sink_cb, &s2, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s2, 1, (int)(due - it_now_ms()) + 5000));
    int64_t at = 0;
    assert_int_equal(count_n(&s2, 1, &at), 1);
    assert_true(at >= due);
    assert_true(at <= due + 1000);
    /* the cancelled one never comes */
    assert_false(it_sink_wait(&s2, 2, 1500));
    assert_int_equal(count_n(&s2, 3, NULL), 0);

    it_sink_fini(&s2);
    lt_client_close(&cons);
    free(e1);
    free(e2);
    free(e3);
    free(e4);
    free(e5);
    lt_signer_destroy(&a);
    lt_signer_destroy(&b);
    lt_signer_destroy(&dancu);
}

static int group_setup(void **state)
{
    (void)state;
    return it_group_up(&env, BROKER_YAML) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    it_group_down(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_scheduled_record_waits_for_its_time_across_a_kill_9),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
