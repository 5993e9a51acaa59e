/*
 * it_tasks.c - instant tasks and their reminders on the bus (issue: "One-stop procedures
 * and instant tasks", tasks and reminders), against a real lienthongd and a real
 * `lienthong tasks` service.
 *
 * The city office assigns task A (deadline in 5 s) and task B (deadline in 6 s) to the
 * Department of Justice; the service runs with reminders 3 s and 1 s before the deadline.
 * The department reports B done at once. Then: A's two reminders reach the department in
 * order, none before its time; A's overdue warning reaches the city office once, at the
 * deadline; nothing of B is ever delivered. Assigning A again (a new envelope of the same
 * task) schedules nothing twice: A escalates once.
 */
#include "harness.h"
#include "harness_client.h"
#include "json.h"
#include "lienthong/v1/records/task.pb-c.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-tasks\n"
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
                                  "  - agency: VN:GOV:000.00.00.H29:vanphong\n"
                                  "    publish: [\"79.vp.>\"]\n"
                                  "  - agency: VN:GOV:H29.20:tuphap\n"
                                  "    publish: [\"79.vp.nhiemvu.stp.trangthai\"]\n"
                                  "queues:\n"
                                  "  - name: nhiemvu.dichvu\n"
                                  "    owner: VN:GOV:000.00.00.H29:vanphong\n"
                                  "    bind: [\"79.vp.nhiemvu.*\", \"79.vp.nhiemvu.*.trangthai\"]\n"
                                  "  - name: nhiemvu.stp\n"
                                  "    owner: VN:GOV:H29.20:tuphap\n"
                                  "    bind: [\"79.vp.nhiemvu.stp.nhacviec\"]\n"
                                  "  - name: nhiemvu.quahan\n"
                                  "    owner: VN:GOV:000.00.00.H29:vanphong\n"
                                  "    bind: [\"79.vp.nhiemvu.*.quahan\"]\n";

static it_env env;

typedef struct seen_reminder {
    char task[64];
    int kind;
    int64_t remind_ms, at_ms; /* when it was due, when it arrived (wall clock) */
} seen_reminder;

typedef struct reminders {
    lt_client *c;
    seen_reminder v[32];
    size_t n;
} reminders;

static void on_reminder(void *user, const lt_client_delivery *d)
{
    reminders *r = user;
    lt_env *e = NULL;
    lt_why why;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &e, &why) == LT_OK) {
        size_t len = 0;
        const uint8_t *p = lt_env_payload(e, &len);
        Lienthong__V1__Records__TaskReminder *m =
            lienthong__v1__records__task_reminder__unpack(NULL, len, p);
        if (m && r->n < 32) {
            seen_reminder *s = &r->v[r->n++];
            snprintf(s->task, sizeof s->task, "%s", m->task_id);
            s->kind = m->kind;
            s->remind_ms = m->remind_unix_ms;
            s->at_ms = lt_env_now_ms();
        }
        if (m)
            lienthong__v1__records__task_reminder__free_unpacked(m, NULL);
        lt_env_destroy(&e);
    }
    lt_client_ack(r->c, d->queue, d->seq);
}

static uint8_t *seal_json(lt_signer *s, const char *topic, const char *type, const char *json,
                          size_t *len)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    lt_why why;
    if (lt_json_text_to_payload(type, json, strlen(json), &payload, &plen, &why) != LT_OK)
        fail_msg("%s: %s", type, why.msg);
    lt_env_spec spec = {.topic = topic, .record_type = type, .payload = payload, .payload_len = plen};
    uint8_t *out = NULL;
    assert_int_equal(lt_env_seal(s, &spec, &out, len, &why), LT_OK);
    free(payload);
    return out;
}

static void assign(lt_client *c, lt_signer *s, const char *task, int64_t deadline)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"taskId\":\"%s\",\"assigner\":{\"agencyCode\":\"000.00.00.H29\","
             "\"fullName\":\"Chủ tịch\"},\"assignee\":{\"agencyCode\":\"H29.20\","
             "\"unitName\":\"Sở Tư pháp\"},\"title\":\"Báo cáo %s\","
             "\"deadlineUnixMs\":\"%lld\",\"priority\":\"TASK_PRIORITY_URGENT\","
             "\"status\":\"TASK_STATUS_NOT_STARTED\"}",
             task, task, (long long)deadline);
    size_t len;
    uint8_t *e = seal_json(s, "79.vp.nhiemvu.stp", "lienthong.v1.records.TaskAssignment", json,
                           &len);
    it_answer a;
    assert_true(it_publish_wait(c, e, len, &a, 10000));
    assert_int_equal(a.code, LT_OK);
    free(e);
}

static void poll_until(reminders *a, reminders *b, int64_t until_wall_ms)
{
    while (lt_env_now_ms() < until_wall_ms) {
        lt_client_poll(a->c, 50, NULL);
        lt_client_poll(b->c, 50, NULL);
    }
    lt_client_flush(a->c, 2000);
    lt_client_flush(b->c, 2000);
}

static void reminders_fire_in_order_stop_when_done_and_escalate_once(void **state)
{
    (void)state;
    char cfg[IT_PATH_MAX];
    it_path(&env, "agencies/vanphong.yaml", cfg);
    pid_t svc = it_cli_spawn(&env, "tasks.out", "tasks", "-c", cfg, "-q", "nhiemvu.dichvu",
                             "--remind", "3s,1s", "--timeout", "60", NULL);
    assert_true(svc > 0);
    lt_signer *vp = it_signer(&env, "vanphong"), *stp = it_signer(&env, "tuphap");
    assert_non_null(vp);
    assert_non_null(stp);
    lt_client *pv = it_client(&env, vp, 0, 0), *ps = it_client(&env, stp, 0, 0);
    assert_non_null(pv);
    assert_non_null(ps);
    lt_client *cs = it_client(&env, stp, 0, 0), *cv = it_client(&env, vp, 0, 0);
    assert_non_null(cs);
    assert_non_null(cv);
    static reminders dept, office;
    dept.c = cs;
    office.c = cv;
    lt_why why;
    assert_int_equal(lt_client_subscribe(cs, "nhiemvu.stp", 10, NULL, on_reminder, &dept, &why),
                     LT_OK);
    assert_int_equal(
        lt_client_subscribe(cv, "nhiemvu.quahan", 10, NULL, on_reminder, &office, &why), LT_OK);

    int64_t t0 = lt_env_now_ms();
    int64_t dl_a = t0 + 5000, dl_b = t0 + 6000;
    assign(pv, vp, "NV-A", dl_a);
    assign(pv, vp, "NV-B", dl_b);
    size_t len;
    uint8_t *done = seal_json(stp, "79.vp.nhiemvu.stp.trangthai",
                              "lienthong.v1.records.TaskStatusUpdate",
                              "{\"taskId\":\"NV-B\",\"status\":\"TASK_STATUS_DONE\","
                              "\"note\":\"Đã hoàn thành\"}",
                              &len);
    it_answer a;
    assert_true(it_publish_wait(ps, done, len, &a, 10000));
    assert_int_equal(a.code, LT_OK);
    free(done);

    poll_until(&dept, &office, dl_b + 1500);
    /* A: reminders 3 s and 1 s before its deadline, in order, each on time */
    assert_int_equal(dept.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(dept.v[i].task, "NV-A");
        assert_int_equal(dept.v[i].kind, 1);
        assert_true(dept.v[i].at_ms >= dept.v[i].remind_ms);
        assert_true(dept.v[i].at_ms <= dept.v[i].remind_ms + 1500);
    }
    assert_int_equal(dept.v[0].remind_ms, dl_a - 3000);
    assert_int_equal(dept.v[1].remind_ms, dl_a - 1000);
    /* A escalates to the city office at its deadline; B, done, never */
    assert_int_equal(office.n, 1);
    assert_string_equal(office.v[0].task, "NV-A");
    assert_int_equal(office.v[0].kind, 2);
    assert_true(office.v[0].at_ms >= dl_a);

    /* the same task assigned again: nothing is scheduled twice, no second escalation */
    assign(pv, vp, "NV-A", dl_a);
    poll_until(&dept, &office, lt_env_now_ms() + 2500);
    assert_int_equal(dept.n, 2);
    assert_int_equal(office.n, 1);

    kill(svc, SIGTERM);
    assert_int_equal(it_wait(svc, 10000), 0);
    size_t olen;
    char *out = it_read_file(&env, "tasks.out", &olen);
    assert_non_null(out);
    assert_non_null(strstr(out, "reminders cancelled"));
    free(out);
    lt_client_close(&cs);
    lt_client_close(&cv);
    lt_client_close(&pv);
    lt_client_close(&ps);
    lt_signer_destroy(&vp);
    lt_signer_destroy(&stp);
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
        cmocka_unit_test(reminders_fire_in_order_stop_when_done_and_escalate_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
