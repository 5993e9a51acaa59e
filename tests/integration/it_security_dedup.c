/*
 * it_security_dedup.c - message ids are deduplicated per source agency, and a used id can
 * suppress nobody's record (issue: "Message ids are deduplicated across all agencies").
 *
 * Against a real lienthongd: agency A publishes id X; agency B publishes its own, correctly
 * signed record under X (stored and delivered); A resends its envelope (a duplicate, with
 * the first seq); A publishes another record under X (ID_CONFLICT, never acked); an all-zero
 * id is refused (BAD_MESSAGE_ID). The consumer receives exactly A's and B's records.
 */
#include "harness.h"
#include "harness_client.h"
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-dedup\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 256\n"
                                  "  verify_threads: 2\n"
                                  "  max_frame_bytes: 65536\n"
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
                                  "  - name: dedup.all\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.*.dedup.>\"]\n";

static it_env env;

/* A BirthRegistration with number reg, sealed by s under message id id. */
static uint8_t *seal_id(lt_signer *s, const char *topic, const uint8_t id[16], const char *reg,
                        size_t *len)
{
    char json[128];
    snprintf(json, sizeof json, "{\"registrationNumber\":\"%s\",\"bookNumber\":\"01/2025\"}", reg);
    uint8_t *payload = NULL;
    size_t plen = 0;
    lt_why why;
    assert_int_equal(
        lt_json_text_to_payload(IT_RECORD_TYPE, json, strlen(json), &payload, &plen, &why), LT_OK);
    lt_env_spec spec = {.message_id = id,
                        .topic = topic,
                        .record_type = IT_RECORD_TYPE,
                        .payload = payload,
                        .payload_len = plen};
    uint8_t *out = NULL;
    assert_int_equal(lt_env_seal(s, &spec, &out, len, &why), LT_OK);
    free(payload);
    return out;
}

static it_answer publish(lt_client *c, const uint8_t *e, size_t len)
{
    it_answer a;
    assert_true(it_publish_wait(c, e, len, &a, 10000));
    return a;
}

static void an_id_is_scoped_by_its_agency_and_names_one_record(void **state)
{
    (void)state;
    lt_signer *a = it_signer(&env, "quan1"), *b = it_signer(&env, "quan3"),
              *dancu = it_signer(&env, "dancu");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(dancu);
    lt_client *c = it_client(&env, NULL, 0, 0);
    assert_non_null(c);
    uint8_t x[16];
    lt_why why;
    assert_int_equal(lt_env_uuid7(lt_env_now_ms(), x, &why), LT_OK);

    size_t la, lb, la2, lz;
    uint8_t *ea = seal_id(a, "79.760.dedup.khaisinh", x, "A-1", &la);
    it_answer ra = publish(c, ea, la);
    assert_int_equal(ra.code, LT_OK);
    assert_false(ra.duplicate);

    /* B, another agency, uses the same id for its own record: a different record */
    uint8_t *eb = seal_id(b, "79.770.dedup.khaisinh", x, "B-1", &lb);
    it_answer rb = publish(c, eb, lb);
    assert_int_equal(rb.code, LT_OK);
    assert_false(rb.duplicate);
    assert_true(rb.seq != ra.seq);

    /* A resends its envelope: a duplicate, answered with the first seq */
    it_answer rr = publish(c, ea, la);
    assert_int_equal(rr.code, LT_OK);
    assert_true(rr.duplicate);
    assert_int_equal(rr.seq, ra.seq);

    /* A signs another record under the same id: refused, never acked */
    uint8_t *ea2 = seal_id(a, "79.760.dedup.khaisinh", x, "A-2", &la2);
    it_answer rc = publish(c, ea2, la2);
    assert_string_equal(lt_err_name(rc.code), "ID_CONFLICT");
    assert_non_null(strstr(rc.reason, "another record"));

    /* an all-zero id names no record */
    static const uint8_t zero[16];
    uint8_t *ez = seal_id(a, "79.760.dedup.khaisinh", zero, "A-3", &lz);
    it_answer rz = publish(c, ez, lz);
    assert_string_equal(lt_err_name(rz.code), "BAD_MESSAGE_ID");
    assert_true(strlen(rz.reason) > 0);

    /* the consumer gets exactly A's first record and B's */
    lt_client *cons = it_client(&env, dancu, 0, 0);
    assert_non_null(cons);
    it_sink s = {.c = cons, .ack = true};
    assert_int_equal(lt_client_subscribe(cons, "dedup.all", 100, NULL, it_sink_cb, &s, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s, 2, 10000));
    assert_false(it_sink_wait(&s, 3, 1500));
    assert_int_equal(s.n, 2);
    assert_true((s.v[0].seq == ra.seq && s.v[1].seq == rb.seq) ||
                (s.v[0].seq == rb.seq && s.v[1].seq == ra.seq));

    it_sink_fini(&s);
    lt_client_close(&cons);
    lt_client_close(&c);
    free(ea);
    free(eb);
    free(ea2);
    free(ez);
    lt_signer_destroy(&a);
    lt_signer_destroy(&b);
    lt_signer_destroy(&dancu);
}

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) ||
        !it_broker_start(&env, 30000))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_id_is_scoped_by_its_agency_and_names_one_record),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
