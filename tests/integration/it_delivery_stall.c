/*
 * it_delivery_stall.c - the lost wake-up of a full send queue (issue: "Reliability", the
 * latent lost wake-ups of delivery.c).
 *
 * A consumer with credit for everything is stopped (SIGSTOP) while records pour in: its
 * TCP buffers and the broker's ZeroMQ queue for it (send_hwm 4096) fill, and the broker's
 * sends fail with EAGAIN. Then it resumes and only reads: it never acks and never sends
 * credit, so nothing but the broker itself can restart the delivery. It must receive every
 * record. (Before the fix the broker stopped at the first EAGAIN and waited for an ack or
 * credit that a silent consumer never sends.)
 */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"

#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define N 24000

static const char BROKER_YAML[] = "broker:\n"
                                  "  name: it-stall\n"
                                  "  listen: @LISTEN@\n"
                                  "  data_dir: data\n"
                                  "  map_size_mb: 512\n"
                                  "  verify_threads: 2\n"
                                  "  send_hwm: 4096\n"
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
                                  "  - name: stall.q\n"
                                  "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                                  "    bind: [\"79.760.stall.>\"]\n"
                                  "    ack_wait_s: 600\n"
                                  "    max_ack_pending: 100000\n";

static it_env env;
/* The forked consumer while it may live (0 otherwise): a failed assertion jumps out of the
 * test with it stopped, and only kill_consumer (the test's teardown) then ends it. */
static pid_t child;

/* The silent consumer: subscribe with credit N, say so, then read (never ack) until N
 * deliveries or 20 s without one. Exit 0 when all N came. */
static void consumer(void)
{
    lt_signer *dancu = it_signer(&env, "dancu");
    /* one DELIVER frame per record: the broker's queue for it (send_hwm frames) must fill */
    lt_client *c = dancu ? it_client_single(&env, dancu) : NULL;
    if (!c)
        _exit(3);
    it_sink s = {.c = c, .ack = false};
    lt_why why;
    if (lt_client_subscribe(c, "stall.q", N, NULL, it_sink_cb, &s, &why) != LT_OK)
        _exit(4);
    lt_client_poll(c, 200, NULL);
    if (!it_write_file(&env, "consumer.ready", "ready\n"))
        _exit(5);
    int64_t last = it_now_ms();
    size_t seen = 0;
    while (s.n < N && it_now_ms() - last < 20000) {
        lt_client_poll(c, 100, NULL);
        if (s.n != seen) {
            seen = s.n;
            last = it_now_ms();
        }
    }
    char line[64];
    snprintf(line, sizeof line, "%zu\n", s.n);
    it_write_file(&env, "consumer.count", line);
    _exit(s.n == N ? 0 : 1);
}

static int64_t failed_sends(const char *tok)
{
    it_http_resp r;
    if (!it_http_get(env.admin_port, "/api/v1/overview", tok, 5000, &r))
        return -1;
    int64_t v = -1;
    json_object *o = json_tokener_parse(r.body), *br, *f;
    if (o && json_object_object_get_ex(o, "broker", &br) &&
        json_object_object_get_ex(br, "failed_sends", &f))
        v = json_object_get_int64(f);
    json_object_put(o);
    it_http_resp_fini(&r);
    return v;
}

static void a_silent_consumer_gets_every_record_after_its_queue_was_full(void **state)
{
    (void)state;
    child = fork();
    assert_true(child >= 0);
    if (child == 0)
        consumer();

    int64_t deadline = it_now_ms() + 20000;
    size_t len;
    char *ready = NULL;
    while (!(ready = it_read_file(&env, "consumer.ready", &len)) && it_now_ms() < deadline)
        usleep(20000);
    assert_non_null(ready);
    free(ready);
    assert_int_equal(kill(child, SIGSTOP), 0);

    char tok[256];
    assert_true(it_admin_token(&env, tok, sizeof tok));
    int64_t before = failed_sends(tok);
    assert_true(before >= 0);
    lt_signer *a = it_signer(&env, "quan1");
    assert_non_null(a);
    lt_client *p = it_client(&env, a, 0, 0);
    assert_non_null(p);
    for (uint64_t i = 1; i <= N; i++) {
        size_t l;
        uint8_t *e = it_seal(a, "79.760.stall.khaisinh", i, 200, &l, NULL);
        assert_non_null(e);
        assert_int_equal(lt_client_publish(p, e, l, NULL, NULL, NULL), LT_OK);
        free(e);
    }
    assert_int_equal(lt_client_flush(p, 60000), LT_OK);
    /* the broker's sends to the stopped consumer hit EAGAIN */
    deadline = it_now_ms() + 20000;
    while (failed_sends(tok) <= before && it_now_ms() < deadline)
        usleep(50000);
    assert_true(failed_sends(tok) > before);

    assert_int_equal(kill(child, SIGCONT), 0);
    int rc = it_wait(child, 90000);
    child = 0; /* reaped: the pid may be another process's now */
    char *count = it_read_file(&env, "consumer.count", &len);
    if (rc != 0)
        fprintf(stderr, "consumer exit %d, received %s", rc, count ? count : "?\n");
    assert_int_equal(rc, 0);
    free(count);
    lt_client_close(&p);
    lt_signer_destroy(&a);
}

/* Whatever path the test left by: a stopped or orphaned consumer would hold ctest's output
 * pipe open until the test's timeout. SIGKILL ends a stopped process too. */
static int kill_consumer(void **state)
{
    (void)state;
    if (child > 0) {
        kill(child, SIGKILL);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
        child = 0;
    }
    return 0;
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
        cmocka_unit_test_teardown(a_silent_consumer_gets_every_record_after_its_queue_was_full,
                                  kill_consumer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
