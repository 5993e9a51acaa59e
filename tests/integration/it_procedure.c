/* it_procedure.c - a dossier through a sample procedure (ops/procedures, the "liên thông 3
 * thủ tục": birth registration, permanent residence, health insurance for a child under 6)
 * on a real lienthongd: signed DossierStatusEvents from the agencies that do each step are
 * accepted, out-of-order ones (a step by the wrong agency, a status that cannot follow) are
 * refused PROCEDURE_VIOLATION with a reason, two events of one dossier sent back to back are
 * judged in order, a resend is a duplicate (not a violation), the state survives a restart,
 * the trace (admin API and `lienthong trace`) is complete with every event verified again -
 * and not verified against another trust root - and a late dossier is listed by its agency,
 * in the API and on the dashboard's page (headless chromium). */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"
#include "json.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define TOPIC "79.26737.hoso.khaisinh_thuongtru_bhyt"
#define RECORD "lienthong.v1.records.DossierStatusEvent"
#define DOSSIER "000.00.00.H29.26737-261204-0001"
#define LATE_DOSSIER "000.00.00.H29.26737-260302-0042"
#define TIMEOUT_MS 15000
#define CHROMIUM "/usr/bin/chromium"

static it_env env;
static char token[256];

static int setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_use_dev_init_config(&env) ||
        !it_admin_token(&env, token, sizeof token))
        return -1;
    /* the dev-init config, plus the sample procedures and the holiday calendar */
    char *yaml = it_read_file(&env, "broker.yaml", NULL);
    if (!yaml)
        return -1;
    size_t cap = strlen(yaml) + 1024;
    char *text = malloc(cap);
    snprintf(text, cap,
             "%sprocedures: %s/ops/procedures\ncalendar: %s/ops/calendar/vn-holidays.yaml\n", yaml,
             LT_TEST_SRCDIR, LT_TEST_SRCDIR);
    bool ok = it_write_file(&env, "broker.yaml", text);
    free(text);
    free(yaml);
    return ok && it_broker_start(&env, 20000) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_broker_stop(&env, 10000);
    it_env_fini(&env);
    return 0;
}

/* A DossierStatusEvent of dossier code with status at at_ms, signed by agency short. */
static uint8_t *seal_event(const char *short_name, const char *code, int status, int64_t at_ms,
                           size_t *len)
{
    lt_signer *s = it_signer(&env, short_name);
    assert_non_null(s);
    char json[512];
    snprintf(json, sizeof json,
             "{\"dossierCode\":\"%s\",\"procedureCode\":\"1.001193\",\"status\":%d,"
             "\"eventUnixMs\":\"%lld\",\"handlingUnit\":\"%s\"}",
             code, status, (long long)at_ms, short_name);
    uint8_t *payload = NULL;
    size_t plen = 0;
    lt_why why = {{0}};
    assert_int_equal(lt_json_text_to_payload(RECORD, json, strlen(json), &payload, &plen, &why),
                     LT_OK);
    lt_env_spec spec = {.topic = TOPIC, .record_type = RECORD, .payload = payload,
                        .payload_len = plen};
    uint8_t *out = NULL;
    assert_int_equal(lt_env_seal(s, &spec, &out, len, &why), LT_OK);
    free(payload);
    lt_signer_destroy(&s);
    return out;
}

/* Publish one event as agency short and wait for the answer. */
static it_answer publish(const char *short_name, const char *code, int status, int64_t at_ms)
{
    size_t len = 0;
    uint8_t *e = seal_event(short_name, code, status, at_ms, &len);
    lt_signer *s = it_signer(&env, short_name);
    lt_client *c = it_client(&env, s, 0, TIMEOUT_MS);
    assert_non_null(c);
    it_answer a;
    assert_true(it_publish_wait(c, e, len, &a, TIMEOUT_MS));
    lt_client_close(&c);
    lt_signer_destroy(&s);
    free(e);
    return a;
}

static void expect_ok(const char *short_name, int status, int64_t at_ms)
{
    it_answer a = publish(short_name, DOSSIER, status, at_ms);
    if (a.code != LT_OK)
        fail_msg("%s status %d: %s: %s", short_name, status, lt_err_name(a.code), a.reason);
    assert_false(a.duplicate);
}

static json_object *get_json(const char *path)
{
    it_http_resp r = {0};
    assert_true(it_http_get(env.admin_port, path, token, TIMEOUT_MS, &r));
    if (r.status != 200)
        fail_msg("GET %s: %d %s", path, r.status, r.body);
    json_object *o = json_tokener_parse(r.body);
    it_http_resp_fini(&r);
    assert_non_null(o);
    return o;
}

static void a_dossier_goes_through_its_procedure_and_out_of_order_steps_are_refused(void **st)
{
    (void)st;
    int64_t t = lt_env_now_ms() - 3600000; /* an hour ago, one minute between events */
    expect_ok("motcua", 1, t += 60000);
    expect_ok("motcua", 2, t += 60000);
    expect_ok("hotich26737", 4, t += 60000);

    /* the social insurance before the civil-status step is done: wrong agency for the step */
    it_answer a = publish("bhxh", DOSSIER, 4, t += 60000);
    assert_int_equal(a.code, LT_EPROCEDURE);
    assert_non_null(strstr(a.reason, DOSSIER));
    assert_non_null(strstr(a.reason, "khai_sinh"));
    assert_non_null(strstr(a.reason, "VN:GOV:000.00.00.H29.BHXH:bhyt"));

    expect_ok("hotich26737", 9, t += 60000);

    /* a result returned straight after the civil-status step: 10 may follow 9, but the
     * ward's desk is not the next step's agency (the police is) */
    a = publish("motcua", DOSSIER, 10, t += 60000);
    assert_int_equal(a.code, LT_EPROCEDURE);
    assert_non_null(strstr(a.reason, "expected step thuong_tru"));

    /* the police processes it; a status that cannot follow "processing": newly registered */
    expect_ok("congan", 4, t += 60000);
    a = publish("congan", DOSSIER, 1, t += 60000);
    assert_int_equal(a.code, LT_EPROCEDURE);
    assert_non_null(strstr(a.reason, "status 1 cannot follow 4"));

    /* two events of the dossier back to back on one connection (likely one commit batch):
     * judged in order, both accepted */
    size_t l1 = 0, l2 = 0;
    uint8_t *e1 = seal_event("congan", DOSSIER, 9, t += 60000, &l1);
    uint8_t *e2 = seal_event("bhxh", DOSSIER, 4, t += 60000, &l2);
    lt_signer *sc = it_signer(&env, "congan"), *sb = it_signer(&env, "bhxh");
    lt_client *cc = it_client(&env, sc, 0, TIMEOUT_MS), *cb = it_client(&env, sb, 0, TIMEOUT_MS);
    it_answer a1 = {0}, a2 = {0};
    assert_int_equal(lt_client_publish(cc, e1, l1, it_answer_cb, &a1, NULL), LT_OK);
    assert_int_equal(lt_client_flush(cc, TIMEOUT_MS), LT_OK);
    assert_int_equal(lt_client_publish(cb, e2, l2, it_answer_cb, &a2, NULL), LT_OK);
    int64_t deadline = it_now_ms() + TIMEOUT_MS;
    while ((!a1.done || !a2.done) && it_now_ms() < deadline) {
        lt_client_poll(cc, 20, NULL);
        lt_client_poll(cb, 20, NULL);
    }
    assert_true(a1.done && a2.done);
    if (a1.code != LT_OK || a2.code != LT_OK)
        fail_msg("back to back: %s (%s), %s (%s)", lt_err_name(a1.code), a1.reason,
                 lt_err_name(a2.code), a2.reason);
    /* the same envelope again: a duplicate, acked as such, not judged again */
    it_answer again;
    assert_true(it_publish_wait(cc, e1, l1, &again, TIMEOUT_MS));
    assert_int_equal(again.code, LT_OK);
    assert_true(again.duplicate);
    lt_client_close(&cc);
    lt_client_close(&cb);
    lt_signer_destroy(&sc);
    lt_signer_destroy(&sb);
    free(e1);
    free(e2);

    /* the dossier's state is in the store: it survives a restart */
    assert_int_equal(it_broker_stop(&env, 10000), 0);
    assert_true(it_broker_start(&env, 20000));
    a = publish("motcua", DOSSIER, 10, t += 60000); /* BHXH is at 4: not done */
    assert_int_equal(a.code, LT_EPROCEDURE);
    expect_ok("bhxh", 9, t += 60000);
    expect_ok("motcua", 10, t += 60000);
    a = publish("motcua", DOSSIER, 10, t += 60000);
    assert_int_equal(a.code, LT_EPROCEDURE);
    assert_non_null(strstr(a.reason, "is closed"));
}

static void the_trace_is_complete_and_every_event_verifies(void **st)
{
    (void)st;
    json_object *d = get_json("/api/v1/dossiers/" DOSSIER);
    json_object *events = json_object_object_get(d, "events");
    json_object *steps = json_object_object_get(d, "steps");
    /* 1, 2 (desk), 4, 9 (civil status), 4, 9 (police), 4, 9 (insurance), 10 (desk) */
    assert_int_equal(json_object_array_length(events), 9);
    assert_int_equal(json_object_array_length(steps), 5);
    assert_true(json_object_get_boolean(json_object_object_get(d, "closed")));
    static const char *const step_ids[] = {"tiep_nhan", "khai_sinh", "thuong_tru", "bhyt",
                                           "tra_ket_qua"};
    for (size_t i = 0; i < 5; i++) {
        json_object *s = json_object_array_get_idx(steps, i);
        assert_string_equal(json_object_get_string(json_object_object_get(s, "id")), step_ids[i]);
        assert_non_null(json_object_object_get(s, "ended_ms"));
        assert_non_null(json_object_object_get(s, "on_time"));
    }
    int64_t prev = 0;
    for (size_t i = 0; i < 9; i++) {
        json_object *e = json_object_array_get_idx(events, i);
        int64_t seq = json_object_get_int64(json_object_object_get(e, "seq"));
        assert_true(seq > prev); /* in seq order */
        prev = seq;
    }
    json_object_put(d);

    /* the CLI verifies each envelope again with the library */
    char cfg[IT_PATH_MAX], out[IT_PATH_MAX];
    it_path(&env, "broker.yaml", cfg);
    int rc = it_cli(&env, "trace.out", 30000, "trace", DOSSIER, "-c", cfg, (char *)NULL);
    char *text = it_read_file(&env, "trace.out", NULL);
    assert_non_null(text);
    if (rc != 0)
        fail_msg("trace exited %d: %s", rc, text);
    assert_non_null(strstr(text, "9 events, 9 verified"));
    assert_non_null(strstr(text, "thuong_tru"));
    assert_non_null(strstr(text, "VN:GOV:000.00.00.G01.79.26737:cutru"));
    free(text);
    rc = it_cli(&env, "trace.json", 30000, "trace", DOSSIER, "-c", cfg, "--json", (char *)NULL);
    assert_int_equal(rc, 0);
    text = it_read_file(&env, "trace.json", NULL);
    json_object *j = json_tokener_parse(text);
    assert_non_null(j);
    assert_true(json_object_get_boolean(json_object_object_get(j, "all_verified")));
    json_object_put(j);
    free(text);

    /* against another trust root nothing verifies, and the exit status says so */
    rc = it_cli(&env, "trace-other.out", 30000, "trace", DOSSIER, "-c", cfg, "--ca",
                it_path(&env, "otherca/ca.cert.pem", out), (char *)NULL);
    assert_int_equal(rc, 1);
    text = it_read_file(&env, "trace-other.out", NULL);
    assert_non_null(strstr(text, "9 events, 0 verified"));
    assert_non_null(strstr(text, "NOT VERIFIED"));
    free(text);

    /* an unknown dossier: 404 from the API, exit 1 from the CLI */
    it_http_resp r = {0};
    assert_true(it_http_get(env.admin_port, "/api/v1/dossiers/no-such-dossier", token, TIMEOUT_MS,
                            &r));
    assert_int_equal(r.status, 404);
    it_http_resp_fini(&r);
    assert_int_equal(it_cli(&env, "trace-none.out", 30000, "trace", "no-such-dossier", "-c", cfg,
                            (char *)NULL),
                     1);
}

static void a_late_dossier_is_listed_by_its_agency(void **st)
{
    (void)st;
    /* received on Monday 02/03/2026 09:00 (+07): its 4 working hours ended at 14:30 */
    it_answer a = publish("motcua", LATE_DOSSIER, 2, 1772416800000LL);
    if (a.code != LT_OK)
        fail_msg("%s: %s", lt_err_name(a.code), a.reason);
    json_object *o = get_json("/api/v1/dossiers?late=1");
    json_object *ags = json_object_object_get(o, "agencies");
    bool found = false;
    for (size_t i = 0; i < json_object_array_length(ags); i++) {
        json_object *g = json_object_array_get_idx(ags, i);
        if (strcmp(json_object_get_string(json_object_object_get(g, "agency")),
                   "VN:GOV:000.00.00.H29.26737:motcua") != 0)
            continue;
        assert_true(json_object_get_int(json_object_object_get(g, "late")) >= 1);
        json_object *ds = json_object_object_get(g, "dossiers");
        for (size_t k = 0; k < json_object_array_length(ds); k++) {
            json_object *d = json_object_array_get_idx(ds, k);
            if (strcmp(json_object_get_string(json_object_object_get(d, "dossier")),
                       LATE_DOSSIER) == 0) {
                found = true;
                assert_true(json_object_get_boolean(json_object_object_get(d, "late")));
                assert_int_equal(json_object_get_int64(json_object_object_get(d, "step_deadline_ms")),
                                 1772436600000LL); /* 02/03/2026 14:30 +07 */
            }
        }
    }
    assert_true(found);
    /* the closed dossier is not listed, however wide the window */
    json_object_put(o);
    o = get_json("/api/v1/dossiers?late=1&within_h=8784");
    assert_null(strstr(json_object_to_json_string(o), DOSSIER "\""));
    json_object_put(o);
}

/* The dashboard's page of late dossiers, rendered by Debian's headless chromium: the DOM
 * after the page's script ran lists the late dossier under the desk's name, marked late. */
static void the_dashboard_lists_the_late_dossier(void **st)
{
    (void)st;
    if (access(CHROMIUM, X_OK) != 0)
        skip(); /* scripts/install-deps installs it; CI has it */
    char url[512], profile[IT_PATH_MAX], out[IT_PATH_MAX];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/#dossiers&token=%s", env.admin_port, token);
    char arg_profile[IT_PATH_MAX + 32];
    snprintf(arg_profile, sizeof arg_profile, "--user-data-dir=%s",
             it_path(&env, "chromium-profile", profile));
    char *const argv[] = {CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", arg_profile, "--virtual-time-budget=5000",
                          "--dump-dom", url, NULL};
    pid_t pid = it_spawn_prog(argv, it_path(&env, "dossiers.html", out));
    assert_true(pid > 0);
    assert_int_equal(it_wait(pid, 60000), 0);
    char *dom = it_read_file(&env, "dossiers.html", NULL);
    assert_non_null(dom);
    const char *table = strstr(dom, "data-testid=\"dossiers\"");
    if (!table || !strstr(table, LATE_DOSSIER) ||
        !strstr(table, "Bộ phận Một cửa, UBND Phường Tân Định") || !strstr(table, "trễ · late"))
        fail_msg("the page does not list %s as late: %.2000s", LATE_DOSSIER,
                 table ? table : dom);
    free(dom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_dossier_goes_through_its_procedure_and_out_of_order_steps_are_refused),
        cmocka_unit_test(the_trace_is_complete_and_every_event_verifies),
        cmocka_unit_test(a_late_dossier_is_listed_by_its_agency),
        cmocka_unit_test(the_dashboard_lists_the_late_dossier),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
