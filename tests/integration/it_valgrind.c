/*
 * it_valgrind.c - a publish/consume run with lienthongd, `lienthong pub`, `sub`, `queues` and
 * `dlq` all under valgrind memcheck: records published as a district agency with single and
 * batch signatures, consumed and acked, a nak, an ack_wait redelivery, a dead letter listed,
 * shown, requeued and dropped, rejected envelopes and a malformed frame, a SIGHUP reload of a
 * CRL that now revokes a certificate, then SIGTERM. Every valgrind'ed process must exit with
 * its own status: definite or indirect leaks and invalid reads/writes make valgrind exit 99
 * (--error-exitcode), which fails the test with valgrind's report printed. "Still reachable"
 * blocks (library globals of OpenSSL, ZeroMQ, ...) are not errors.
 *
 * Skipped (with a message) when /usr/bin/valgrind is absent or the build is a sanitizer build
 * (valgrind cannot run AddressSanitizer binaries). One broker for the whole group; the tests
 * run in order and the last one stops it.
 */
#include "harness.h"
#include "harness_client.h"
#include "harness_valgrind.h"

#include "envfile.h"

#include "lienthong/v1/envelope.pb-c.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#ifndef LT_TEST_SRCDIR
#error "LT_TEST_SRCDIR must be defined by the build"
#endif

#define VG_STATUS IT_VG_STATUS
#define VG_READY_MS 120000    /* lienthongd's readiness under valgrind */
#define VG_CLI_MS 90000       /* one CLI run under valgrind, at most */

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-valgrind\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 256\n"
    "  verify_threads: 2\n"
    "  max_frame_bytes: 65536\n"
    "  commit_max_batch: 1024\n"
    "  admin:\n"
    "    listen: @ADMIN@\n"
    "    token_file: admin.token\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: ca/crl.pem\n"
    "  clock_skew_s: 300\n"
    "admins:\n"
    "  - VN:GOV:000.00.00.H29:vanphong\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29:vanphong\n"
    "    publish: [\"79.vp.>\"]\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "  - agency: VN:GOV:000.00.00.H29.770:hotich\n"
    "    publish: [\"79.770.>\"]\n"
    "  - agency: VN:GOV:000.00.00.G01:csdldancu\n"
    "    publish: []\n"
    "queues:\n"
    "  - name: vg.main\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.hotich.>\"]\n"
    "  - name: vg.nak\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.nak.>\"]\n"
    "    max_deliver: 10\n"
    "    backoff_s: [1]\n"
    "  - name: vg.redeliver\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.redeliver.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 5\n"
    "    backoff_s: [1]\n"
    "  - name: vg.dlq\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.dlq.>\"]\n"
    "    max_deliver: 2\n"
    "    backoff_s: [1]\n";

static const char RECORD[] = "{\"registrationNumber\":\"42\",\"note\":\"Khai sinh đúng hạn\"}";

static it_env env;
static lt_signer *quan1, *dancu;
static char quan1_cfg[IT_PATH_MAX], quan3_cfg[IT_PATH_MAX], dancu_cfg[IT_PATH_MAX];

/* Why this build cannot run the test, or NULL when it can. */
static const char *skip_reason(void)
{
    return it_vg_skip_reason("it_valgrind");
}

/* Print valgrind's report of process pid (its --log-file), if any. */
static void print_vg_log(pid_t pid)
{
    it_vg_print_log(&env, pid);
}

/* Wait for a `lienthong` run under valgrind; fail with valgrind's report and the command's
 * stderr unless it exited with want. */
static void vg_expect(pid_t pid, const char *out_rel, int want)
{
    assert_true(pid > 0);
    int rc = it_wait(pid, VG_CLI_MS);
    if (rc == want)
        return;
    print_vg_log(pid);
    char rel[IT_PATH_MAX];
    snprintf(rel, sizeof rel, "%s.err", out_rel);
    char *err = it_read_file(&env, rel, NULL);
    fprintf(stderr, "---- stderr of %s ----\n%s\n--------\n", out_rel, err != NULL ? err : "");
    free(err);
    fail_msg("lienthong (%s) under valgrind exited %d, expected %d%s", out_rel, rc, want,
             rc == VG_STATUS ? " (valgrind found errors or leaks: report above)" : "");
}

/* Run `lienthong ARGS...` under valgrind and require exit status want. */
#define VG_CLI(want, out_rel, ...)                                                             \
    vg_expect(it_cli_spawn(&env, (out_rel), __VA_ARGS__, (char *)NULL), (out_rel), (want))

/* The JSON lines of dir/rel, parsed; *n set. Each must parse. Free with free_lines. */
static json_object **read_lines(const char *rel, size_t *n)
{
    char *text = it_read_file(&env, rel, NULL);
    assert_non_null(text);
    size_t cap = 16;
    json_object **v = malloc(cap * sizeof *v);
    assert_non_null(v);
    *n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[*n] = json_tokener_parse(line);
        if (v[*n] == NULL)
            fail_msg("%s: not JSON: %s", rel, line);
        (*n)++;
    }
    free(text);
    return v;
}

static void free_lines(json_object **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_object_put(v[i]);
    free(v);
}

static int64_t field_int(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("no '%s' in %s", key, json_object_to_json_string(o));
    return json_object_get_int64(v);
}

static const char *field_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

/* Every line of a `sub` output verified; returns how many lines. */
static size_t check_sub_output(const char *rel, uint64_t *first_seq, int64_t *first_count)
{
    size_t n = 0;
    json_object **v = read_lines(rel, &n);
    for (size_t i = 0; i < n; i++) {
        json_object *ok = NULL;
        assert_true(json_object_object_get_ex(v[i], "verified", &ok));
        if (!json_object_get_boolean(ok))
            fail_msg("%s: not verified: %s", rel, json_object_to_json_string(v[i]));
    }
    if (n > 0 && first_seq != NULL)
        *first_seq = (uint64_t)field_int(v[0], "seq");
    if (n > 0 && first_count != NULL)
        *first_count = field_int(v[0], "delivery_count");
    free_lines(v, n);
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    if (skip_reason() != NULL)
        return 0;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML))
        return -1;
    it_vg_wrap(&env);
    it_path(&env, "agencies/quan1.yaml", quan1_cfg);
    it_path(&env, "agencies/quan3.yaml", quan3_cfg);
    it_path(&env, "agencies/dancu.yaml", dancu_cfg);
    quan1 = it_signer(&env, "quan1");
    dancu = it_signer(&env, "dancu");
    if (quan1 == NULL || dancu == NULL)
        return -1;
    int64_t t0 = it_now_ms();
    if (!it_broker_start(&env, VG_READY_MS))
        return -1;
    fprintf(stderr, "it_valgrind: lienthongd ready under valgrind in %lld ms\n",
            (long long)(it_now_ms() - t0));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&dancu);
    if (env.pid > 0) {
        pid_t pid = env.pid;
        int rc = it_broker_stop(&env, 60000);
        if (rc != 0) {
            fprintf(stderr, "it_valgrind: lienthongd exited %d on SIGTERM\n", rc);
            print_vg_log(pid);
        }
    }
    if (env.dir[0] != '\0')
        it_env_fini(&env);
    return 0;
}

static void skip_if_unavailable(void)
{
    const char *why = skip_reason();
    if (why != NULL) {
        fprintf(stderr, "%s\n", why);
        skip();
    }
}

static void records_published_single_and_batch_are_consumed_and_acked(void **state)
{
    (void)state;
    skip_if_unavailable();
    int64_t t0 = it_now_ms();
    VG_CLI(0, "pub-single.out", "pub", "-c", quan1_cfg, "-t", "79.760.hotich.khaisinh", "--type",
           "BirthRegistration", "--json", RECORD, "--count", "150", "-q");
    VG_CLI(0, "pub-batch.out", "pub", "-c", quan1_cfg, "-t", "79.760.hotich.khaisinh", "--type",
           "BirthRegistration", "--json", RECORD, "--count", "150", "--batch", "25");
    size_t n = 0;
    json_object **v = read_lines("pub-batch.out", &n);
    assert_int_equal(n, 150);
    for (size_t i = 0; i < n; i++) {
        assert_null(field_str(v[i], "code")); /* acks carry no code */
        assert_true(field_int(v[i], "seq") > 0);
    }
    free_lines(v, n);
    VG_CLI(0, "sub-main.out", "sub", "-c", dancu_cfg, "-q", "vg.main", "-n", "300", "--timeout",
           "30");
    assert_int_equal(check_sub_output("sub-main.out", NULL, NULL), 300);
    /* acked: a second consumer finds nothing */
    VG_CLI(0, "sub-main2.out", "sub", "-c", dancu_cfg, "-q", "vg.main", "--timeout", "2");
    assert_int_equal(check_sub_output("sub-main2.out", NULL, NULL), 0);
    fprintf(stderr, "it_valgrind: 300 records published and consumed under valgrind in %lld ms\n",
            (long long)(it_now_ms() - t0));
}

static void a_nak_redelivers_and_the_redelivery_is_acked(void **state)
{
    (void)state;
    skip_if_unavailable();
    VG_CLI(0, "pub-nak.out", "pub", "-c", quan1_cfg, "-t", "79.760.nak.x", "--type",
           "BirthRegistration", "--json", RECORD);
    VG_CLI(0, "sub-nak.out", "sub", "-c", dancu_cfg, "-q", "vg.nak", "-n", "1", "--nak",
           "--nak-delay", "200", "--timeout", "20");
    uint64_t seq1 = 0, seq2 = 0;
    int64_t count1 = 0, count2 = 0;
    assert_int_equal(check_sub_output("sub-nak.out", &seq1, &count1), 1);
    VG_CLI(0, "sub-nak2.out", "sub", "-c", dancu_cfg, "-q", "vg.nak", "-n", "1", "--timeout",
           "20");
    assert_int_equal(check_sub_output("sub-nak2.out", &seq2, &count2), 1);
    assert_int_equal(seq2, seq1);
    assert_int_equal(count1, 1);
    assert_int_equal(count2, 2);
}

static void an_unacked_delivery_is_redelivered_after_ack_wait(void **state)
{
    (void)state;
    skip_if_unavailable();
    VG_CLI(0, "pub-redeliver.out", "pub", "-c", quan1_cfg, "-t", "79.760.redeliver.x", "--type",
           "BirthRegistration", "--json", RECORD);
    lt_client *c = it_client(&env, dancu, 0, 0);
    assert_non_null(c);
    it_sink s = {.c = c, .ack = false};
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(c, "vg.redeliver", 10, NULL, it_sink_cb, &s, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s, 1, 30000));
    assert_true(it_sink_wait(&s, 2, 30000)); /* ack_wait is 2 s */
    assert_int_equal(s.v[1].seq, s.v[0].seq);
    assert_int_equal(s.v[1].count, 2);
    assert_int_equal(lt_client_ack(c, "vg.redeliver", s.v[1].seq), LT_OK);
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    assert_false(it_sink_wait(&s, 3, 2500)); /* acked: no third delivery */
    lt_client_close(&c);
    it_sink_fini(&s);
}

/* The seqs listed by `dlq ls --json` (at most max) into seqs; returns how many. */
static size_t dlq_seqs(const char *out_rel, uint64_t *seqs, size_t max)
{
    char *text = it_read_file(&env, out_rel, NULL);
    assert_non_null(text);
    json_object *root = json_tokener_parse(text);
    free(text);
    assert_non_null(root);
    json_object *arr = root;
    if (!json_object_is_type(arr, json_type_array))
        assert_true(json_object_object_get_ex(root, "dead", &arr));
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n && i < max; i++)
        seqs[i] = (uint64_t)field_int(json_object_array_get_idx(arr, i), "seq");
    json_object_put(root);
    return n;
}

static void dead_letters_are_listed_shown_requeued_and_dropped(void **state)
{
    (void)state;
    skip_if_unavailable();
    VG_CLI(0, "pub-dlq.out", "pub", "-c", quan1_cfg, "-t", "79.760.dlq.x", "--type",
           "BirthRegistration", "--json", RECORD, "--count", "2");
    /* each of the 2 is delivered twice (max_deliver 2) and refused each time */
    VG_CLI(0, "sub-dlq.out", "sub", "-c", dancu_cfg, "-q", "vg.dlq", "-n", "4", "--nak",
           "--timeout", "20");
    assert_int_equal(check_sub_output("sub-dlq.out", NULL, NULL), 4);
    uint64_t seqs[4] = {0};
    size_t n = 0;
    for (int i = 0; i < 20 && n < 2; i++) { /* the last nak commits asynchronously */
        VG_CLI(0, "dlq-ls.out", "dlq", "-c", dancu_cfg, "ls", "vg.dlq", "--json");
        n = dlq_seqs("dlq-ls.out", seqs, 4);
    }
    assert_int_equal(n, 2);
    char s0[32], s1[32];
    snprintf(s0, sizeof s0, "%llu", (unsigned long long)seqs[0]);
    snprintf(s1, sizeof s1, "%llu", (unsigned long long)seqs[1]);
    VG_CLI(0, "dlq-show.out", "dlq", "-c", dancu_cfg, "show", "vg.dlq", s0, s1);
    char *show = it_read_file(&env, "dlq-show.out", NULL);
    assert_non_null(show);
    assert_true(strlen(show) > 0);
    free(show);
    VG_CLI(0, "dlq-requeue.out", "dlq", "-c", dancu_cfg, "requeue", "vg.dlq", s0);
    VG_CLI(0, "dlq-drop.out", "dlq", "-c", dancu_cfg, "drop", "vg.dlq", s1);
    /* the requeued one is delivered again and acked */
    VG_CLI(0, "sub-dlq2.out", "sub", "-c", dancu_cfg, "-q", "vg.dlq", "-n", "1", "--timeout",
           "20");
    uint64_t seq = 0;
    assert_int_equal(check_sub_output("sub-dlq2.out", &seq, NULL), 1);
    assert_int_equal(seq, seqs[0]);
    VG_CLI(0, "dlq-ls2.out", "dlq", "-c", dancu_cfg, "ls", "vg.dlq", "--json");
    assert_int_equal(dlq_seqs("dlq-ls2.out", seqs, 4), 0);
    VG_CLI(0, "queues.out", "queues", "-c", dancu_cfg);
    char *q = it_read_file(&env, "queues.out", NULL);
    assert_non_null(q);
    assert_non_null(strstr(q, "vg.dlq"));
    free(q);
}

/* env with its signature's last byte flipped (malloc'ed). */
static uint8_t *forge(const uint8_t *in, size_t len, size_t *out_len)
{
    Lienthong__V1__Envelope *e = lienthong__v1__envelope__unpack(NULL, len, in);
    assert_non_null(e);
    assert_true(e->signature.len > 0);
    e->signature.data[e->signature.len - 1] ^= 0x01;
    *out_len = lienthong__v1__envelope__get_packed_size(e);
    uint8_t *out = malloc(*out_len);
    assert_non_null(out);
    lienthong__v1__envelope__pack(e, out);
    lienthong__v1__envelope__free_unpacked(e, NULL);
    return out;
}

static void rejected_envelopes_and_a_malformed_frame_leave_no_leak(void **state)
{
    (void)state;
    skip_if_unavailable();
    const char *t = "79.760.hotich.khaisinh";
    uint8_t *v[4];
    size_t lens[4], len = 0;
    const char *want[4] = {"BAD_SIGNATURE", "OK", "ACL_DENIED", "NO_ROUTE"};
    uint8_t *good = it_seal(quan1, t, 1, 10, &len, NULL);
    assert_non_null(good);
    v[0] = forge(good, len, &lens[0]);
    free(good);
    v[1] = it_seal(quan1, t, 2, 10, &lens[1], NULL);
    v[2] = it_seal(quan1, "79.770.hotich.khaisinh", 3, 10, &lens[2], NULL);
    v[3] = it_seal(quan1, "79.760.nothing.here", 4, 10, &lens[3], NULL);
    char path[IT_PATH_MAX];
    lt_envfile_writer *w = NULL;
    assert_int_equal(lt_envfile_open_writer(it_path(&env, "rejected.env", path), &w, NULL),
                     LT_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(v[i]);
        assert_int_equal(lt_envfile_write(w, v[i], lens[i], NULL), LT_OK);
        free(v[i]);
    }
    assert_int_equal(lt_envfile_close_writer(&w, NULL), LT_OK);
    VG_CLI(1, "pub-rejected.out", "pub", "-c", quan1_cfg, "--file-envelopes", path, "--window",
           "1");
    size_t n = 0;
    json_object **lines = read_lines("pub-rejected.out", &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        int64_t tag = field_int(lines[i], "tag");
        assert_true(tag >= 1 && tag <= 4);
        const char *code = field_str(lines[i], "code");
        if (code == NULL)
            code = "OK";
        if (strcmp(code, want[tag - 1]) != 0)
            fail_msg("envelope %lld: expected %s, got %s", (long long)tag, want[tag - 1], code);
    }
    free_lines(lines, n);
    /* a frame that is not a protobuf Frame, then a ping: the broker answers the ping */
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sock, env.endpoint), 0);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
    assert_int_equal(zmq_send(sock, junk, sizeof junk, 0), (int)sizeof junk);
    Lienthong__V1__Ping ping = LIENTHONG__V1__PING__INIT;
    ping.nonce = 99;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &ping;
    uint8_t buf[64];
    size_t fl = lienthong__v1__frame__pack(&f, buf);
    assert_int_equal(zmq_send(sock, buf, fl, 0), (int)fl);
    bool pong = false;
    int64_t deadline = it_now_ms() + 30000;
    while (!pong && it_now_ms() < deadline) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) >= 0) {
            Lienthong__V1__Frame *r =
                lienthong__v1__frame__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            pong = r != NULL && r->kind_case == LIENTHONG__V1__FRAME__KIND_PONG &&
                   r->pong->nonce == 99;
            if (r != NULL)
                lienthong__v1__frame__free_unpacked(r, NULL);
        }
        zmq_msg_close(&m);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    assert_true(pong);
    assert_true(it_broker_alive(&env));
}

static void sighup_reloads_a_crl_that_revokes_a_district(void **state)
{
    (void)state;
    skip_if_unavailable();
    assert_true(it_revoke(&env, "quan3"));
    assert_true(it_broker_hup(&env));
    assert_true(it_log_wait(&env, "ACL reloaded", 30000));
    VG_CLI(1, "pub-revoked.out", "pub", "-c", quan3_cfg, "--no-auth", "-t",
           "79.770.hotich.khaisinh", "--type", "BirthRegistration", "--json", RECORD);
    size_t n = 0;
    json_object **lines = read_lines("pub-revoked.out", &n);
    assert_int_equal(n, 1);
    const char *code = field_str(lines[0], "code");
    assert_non_null(code);
    assert_string_equal(code, "CERT_REVOKED");
    free_lines(lines, n);
}

static void the_broker_exits_0_under_valgrind_on_sigterm(void **state)
{
    (void)state;
    skip_if_unavailable();
    assert_true(it_broker_alive(&env));
    pid_t pid = env.pid;
    int64_t t0 = it_now_ms();
    int rc = it_broker_stop(&env, 60000);
    if (rc != 0) {
        print_vg_log(pid);
        fail_msg("lienthongd under valgrind exited %d on SIGTERM%s", rc,
                 rc == VG_STATUS ? " (valgrind found errors or leaks: report above)" : "");
    }
    fprintf(stderr, "it_valgrind: lienthongd stopped clean under valgrind in %lld ms\n",
            (long long)(it_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_published_single_and_batch_are_consumed_and_acked),
        cmocka_unit_test(a_nak_redelivers_and_the_redelivery_is_acked),
        cmocka_unit_test(an_unacked_delivery_is_redelivered_after_ack_wait),
        cmocka_unit_test(dead_letters_are_listed_shown_requeued_and_dropped),
        cmocka_unit_test(rejected_envelopes_and_a_malformed_frame_leave_no_leak),
        cmocka_unit_test(sighup_reloads_a_crl_that_revokes_a_district),
        /* last: stops the broker and checks its valgrind status */
        cmocka_unit_test(the_broker_exits_0_under_valgrind_on_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
