/*
 * it_poison.c - a record whose deliveries keep taking the broker down reaches the dead-letter
 * queue after max_deliver of them (issue: "Reliability", delivery counts persisted before a
 * delivery leaves).
 *
 * Each round: a consumer receives the record, and the broker is killed (-9) before an ack,
 * a nak or the ack_wait expiry could record anything, as a crash caused by the delivery
 * would. The broker stores the delivery count before the delivery leaves, so the count
 * grows across the crashes: deliveries number 1, 2, 3, and after max_deliver (3) the record
 * is dead-lettered at the next start instead of delivered a fourth time. (Before, the count
 * was only stored on nak and expiry: every restart delivered it as the first delivery,
 * forever.)
 */
#include "harness.h"
#include "harness_client.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_DELIVER 3

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-poison\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 256\n"
                                  "  verify_threads: 2\n"
                                  "  admin:\n"
                                  "    listen: @ADMIN@\n"
                                  "    token_file: admin.token\n"
                                  "trust:\n"
                                  "  ca: ca/ca.cert.pem\n"
                                  "  crl: ca/crl.pem\n"
                                  "acl:\n"
                                  "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
                                  "    publish: [\"79.760.>\"]\n"
                                  "queues:\n"
                                  "  - name: poison.q\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.760.poison.>\"]\n"
                                  "    ack_wait_s: 600\n"
                                  "    max_deliver: 3\n";

static it_env env;

static void a_record_that_takes_the_broker_down_is_dead_lettered_after_max_deliver(void **state)
{
    (void)state;
    lt_signer *a = it_signer(&env, "quan1"), *dancu = it_signer(&env, "dancu");
    assert_non_null(a);
    assert_non_null(dancu);
    lt_client *p = it_client(&env, a, 0, 0);
    assert_non_null(p);
    size_t len;
    it_answer ans;
    uint8_t *e = it_seal(a, "79.760.poison.khaisinh", 1, 0, &len, NULL);
    assert_true(it_publish_wait(p, e, len, &ans, 10000));
    assert_int_equal(ans.code, LT_OK);
    lt_client_close(&p);
    free(e);

    lt_why why;
    for (uint32_t round = 1; round <= MAX_DELIVER; round++) {
        lt_client *c = it_client(&env, dancu, 0, 0);
        assert_non_null(c);
        it_sink s = {.c = c, .ack = false};
        assert_int_equal(lt_client_subscribe(c, "poison.q", 10, NULL, it_sink_cb, &s, &why),
                         LT_OK);
        assert_true(it_sink_wait(&s, 1, 10000));
        assert_int_equal(s.v[0].seq, ans.seq);
        assert_int_equal(s.v[0].count, round); /* the count survived the crashes */
        it_sink_fini(&s);
        lt_client_close(&c);
        it_broker_kill9(&env);
        assert_true(it_broker_start(&env, 30000));
    }

    /* after max_deliver crashes it is dead-lettered, never delivered again */
    lt_client *c = it_client(&env, dancu, 0, 0);
    assert_non_null(c);
    it_sink s = {.c = c, .ack = false};
    assert_int_equal(lt_client_subscribe(c, "poison.q", 10, NULL, it_sink_cb, &s, &why), LT_OK);
    assert_false(it_sink_wait(&s, 1, 1500));
    char *json = NULL;
    assert_int_equal(lt_client_admin(c, "dlq.ls", "poison.q", NULL, 0, 10, &json, &why), LT_OK);
    assert_non_null(json);
    assert_non_null(strstr(json, "max_deliver 3 reached"));
    assert_non_null(strstr(json, "restarted"));
    json_object *arr = json_tokener_parse(json);
    assert_non_null(arr);
    assert_int_equal(json_object_array_length(arr), 1);
    json_object_put(arr);
    free(json);
    it_sink_fini(&s);
    lt_client_close(&c);
    lt_signer_destroy(&a);
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
        cmocka_unit_test(a_record_that_takes_the_broker_down_is_dead_lettered_after_max_deliver),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
