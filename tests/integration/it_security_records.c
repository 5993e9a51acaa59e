/*
 * it_security_records.c - lienthongd end to end against what an outside probe sent (issue 9):
 * a record signed with a CA certificate (CA:TRUE, keyUsage digitalSignature only), an
 * unknown record type, a schema version other than 1, and a payload that is not its record
 * type are each NACKed with their own code and a reason, nothing of them is stored or
 * delivered, the broker goes on serving, and `lienthong verify` refuses the same envelopes
 * with the same codes. Last, lienthongd (and `lienthongd --check`) refuse a config whose
 * dedup window is shorter than twice the clock skew.
 *
 * One broker for the group; the last test stops it. Every wait is bounded.
 */
#include "harness.h"
#include "harness_client.h"

#include "devpki.h"
#include "envfile.h"

#include "lienthong/v1/envelope.pb-c.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-security-records\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 256\n"
    "  verify_threads: 2\n"
    "  dedup_window_s: 600\n"
    "  admin:\n"
    "    listen: @ADMIN@\n"
    "    token_file: admin.token\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: ca/crl.pem\n"
    "  clock_skew_s: 300\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "  - agency: VN:GOV:000.00.00.G01:csdldancu\n"
    "    publish: []\n"
    "queues:\n"
    "  - name: it.records\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.760.hotich.>\"]\n";

#define TOPIC "79.760.hotich.khaisinh"

static it_env env;
static lt_signer *quan1, *caflag, *dancu;

/* Issue agency A's twin from the dev trust root with CA:TRUE and keyUsage digitalSignature
 * only: keys/quan1-caflag.key.pem, certs/quan1-caflag.cert.pem. */
static bool issue_caflag(void)
{
    char key[IT_PATH_MAX], cert[IT_PATH_MAX];
    lt_devpki_ca *ca = NULL;
    lt_why why = {{0}};
    const char *id = it_agency_id(&env, "quan1");
    if (id == NULL)
        return false;
    int64_t now = lt_env_now_ms();
    lt_devpki_cert_spec spec = {.agency_id = id,
                                .org = "Ủy ban nhân dân Quận 1",
                                .alg = LT_SIG_ECDSA_P256,
                                .not_before_ms = now - LT_DEVPKI_DAY_MS,
                                .not_after_ms = now + 30 * LT_DEVPKI_DAY_MS,
                                .profile = LT_DEVPKI_PROFILE_CA_FLAG};
    lt_err e = lt_devpki_ca_load(it_path(&env, "ca/ca.key.pem", key),
                                 it_path(&env, "ca/ca.cert.pem", cert), &ca, &why);
    if (e == LT_OK)
        e = lt_devpki_issue(ca, &spec, it_path(&env, "keys/quan1-caflag.key.pem", key),
                            it_path(&env, "certs/quan1-caflag.cert.pem", cert), &why);
    lt_devpki_ca_destroy(&ca);
    if (e != LT_OK)
        fprintf(stderr, "it_security_records: issuing the CA:TRUE certificate: %s\n", why.msg);
    return e == LT_OK;
}

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) || !issue_caflag() ||
        !it_broker_start(&env, 30000))
        return -1;
    quan1 = it_signer(&env, "quan1");
    caflag = it_signer(&env, "quan1-caflag");
    dancu = it_signer(&env, "dancu");
    return quan1 && caflag && dancu ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&caflag);
    lt_signer_destroy(&dancu);
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
}

/* Seal payload as type on TOPIC with s: nothing checks the record before it leaves. */
static uint8_t *seal_raw(lt_signer *s, const char *type, const void *payload, size_t plen,
                         size_t *len)
{
    lt_env_spec spec = {.topic = TOPIC,
                        .record_type = type,
                        .payload = payload,
                        .payload_len = plen};
    uint8_t *out = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_env_seal(s, &spec, &out, len, &why), LT_OK);
    return out;
}

/* A good record re-sealed with Header.schema_version = version, signed by s. */
static uint8_t *with_schema_version(lt_signer *s, uint32_t version, size_t *len)
{
    size_t gl = 0;
    uint8_t *good = it_seal(s, TOPIC, 3, 10, &gl, NULL);
    assert_non_null(good);
    Lienthong__V1__Envelope *e = lienthong__v1__envelope__unpack(NULL, gl, good);
    free(good);
    assert_non_null(e);
    Lienthong__V1__Header *h = lienthong__v1__header__unpack(NULL, e->header.len, e->header.data);
    assert_non_null(h);
    h->schema_version = version;
    size_t hl = lienthong__v1__header__get_packed_size(h);
    uint8_t *hdr = malloc(hl);
    assert_non_null(hdr);
    lienthong__v1__header__pack(h, hdr);
    lienthong__v1__header__free_unpacked(h, NULL);
    uint8_t sig[LT_PKI_SIG_MAX];
    size_t sl = 0;
    assert_int_equal(lt_signer_sign(s, LT_PKI_DOMAIN_ENVELOPE, hdr, hl, sig, &sl, NULL), LT_OK);
    ProtobufCBinaryData old_hdr = e->header, old_sig = e->signature;
    e->header = (ProtobufCBinaryData){hl, hdr};
    e->signature = (ProtobufCBinaryData){sl, sig};
    *len = lienthong__v1__envelope__get_packed_size(e);
    uint8_t *out = malloc(*len);
    assert_non_null(out);
    lienthong__v1__envelope__pack(e, out);
    e->header = old_hdr; /* the unpacked buffers go back before freeing */
    e->signature = old_sig;
    lienthong__v1__envelope__free_unpacked(e, NULL);
    free(hdr);
    return out;
}

struct probe {
    const char *what;
    const char *code;   /* lt_err name the broker answers, "OK" for an ack */
    const char *reason; /* a piece of the reason */
    uint8_t *env;
    size_t len;
};

/* The probe's envelopes, good ones first and last. n_out receives the count. */
static struct probe *probes(size_t *n_out)
{
    static const char garbage[] = "\xde\xad\xbe\xef not a birth registration";
    static struct probe p[8];
    size_t n = 0;
    memset(p, 0, sizeof p);
    p[n] = (struct probe){"a good record", "OK", "", NULL, 0};
    p[n].env = it_seal(quan1, TOPIC, 1, 10, &p[n].len, NULL);
    n++;
    p[n] = (struct probe){"signed with a CA:TRUE certificate", "CERT_IS_CA", "CA", NULL, 0};
    p[n].env = it_seal(caflag, TOPIC, 2, 10, &p[n].len, NULL);
    n++;
    p[n] = (struct probe){"an unknown record type", "UNKNOWN_RECORD_TYPE", "bench.Payload",
                          NULL, 0};
    p[n].env = seal_raw(quan1, "bench.Payload", "\x0a\x01x", 3, &p[n].len);
    n++;
    p[n] = (struct probe){"schema version 7", "UNKNOWN_SCHEMA_VERSION", "schema version 7",
                          NULL, 0};
    p[n].env = with_schema_version(quan1, 7, &p[n].len);
    n++;
    p[n] = (struct probe){"schema version 0 (unset)", "UNKNOWN_SCHEMA_VERSION",
                          "schema version 0", NULL, 0};
    p[n].env = with_schema_version(quan1, 0, &p[n].len);
    n++;
    p[n] = (struct probe){"a payload that is not its type", "BAD_PAYLOAD",
                          "is not a lienthong.v1.records.BirthRegistration", NULL, 0};
    p[n].env = seal_raw(quan1, IT_RECORD_TYPE, garbage, sizeof garbage - 1, &p[n].len);
    n++;
    p[n] = (struct probe){"a good record after them", "OK", "", NULL, 0};
    p[n].env = it_seal(quan1, TOPIC, 7, 10, &p[n].len, NULL);
    n++;
    for (size_t i = 0; i < n; i++)
        assert_non_null(p[i].env);
    *n_out = n;
    return p;
}

static void each_probe_is_nacked_with_its_code_and_a_reason_and_the_broker_serves_on(
    void **state)
{
    (void)state;
    size_t n = 0;
    struct probe *p = probes(&n);
    lt_client *pub = it_client(&env, NULL, 0, 0);
    assert_non_null(pub);
    for (size_t i = 0; i < n; i++) {
        it_answer a;
        assert_true(it_publish_wait(pub, p[i].env, p[i].len, &a, 10000));
        const char *got = a.code == LT_OK ? "OK" : lt_err_name(a.code);
        if (strcmp(got, p[i].code) != 0 || strstr(a.reason, p[i].reason) == NULL)
            fail_msg("%s: expected %s ('%s'), got %s: %s", p[i].what, p[i].code, p[i].reason,
                     got, a.reason);
        if (a.code != LT_OK)
            assert_true(strlen(a.reason) > 0);
    }
    assert_true(it_broker_alive(&env));
    lt_client_close(&pub);
    /* only the two good records were stored: the queue delivers them and nothing else */
    it_sink s = {0};
    lt_client *c = it_client(&env, dancu, 0, 0);
    assert_non_null(c);
    s.c = c;
    s.ack = true;
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(c, "it.records", 10, NULL, it_sink_cb, &s, &why), LT_OK);
    assert_true(it_sink_wait(&s, 2, 10000));
    assert_false(it_sink_wait(&s, 3, 1500));
    assert_int_equal(s.v[0].n, 1);
    assert_int_equal(s.v[1].n, 7);
    lt_client_close(&c);
    it_sink_fini(&s);
    for (size_t i = 0; i < n; i++)
        free(p[i].env);
}

static void a_ca_certificate_cannot_authenticate_either(void **state)
{
    (void)state;
    lt_client *c = NULL;
    lt_client_opts o = {.request_timeout_ms = 10000};
    lt_why why = {{0}};
    assert_int_equal(lt_client_open(env.endpoint, &o, &c, &why), LT_OK);
    lt_err e = lt_client_auth(c, lt_signer_agency(caflag), caflag, &why);
    if (e != LT_ECERT_CA)
        fail_msg("AUTH with a CA:TRUE certificate: %s: %s", lt_err_name(e), why.msg);
    lt_client_close(&c);
}

static void lienthong_verify_refuses_what_the_broker_refuses_with_the_same_codes(void **state)
{
    (void)state;
    size_t n = 0;
    struct probe *p = probes(&n);
    char path[IT_PATH_MAX], cfg[IT_PATH_MAX];
    lt_envfile_writer *w = NULL;
    assert_int_equal(lt_envfile_open_writer(it_path(&env, "probe.env", path), &w, NULL), LT_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(lt_envfile_write(w, p[i].env, p[i].len, NULL), LT_OK);
    assert_int_equal(lt_envfile_close_writer(&w, NULL), LT_OK);
    int rc = it_cli(&env, "verify.out", 30000, "verify", "-c",
                    it_path(&env, "agencies/dancu.yaml", cfg), path, (char *)NULL);
    assert_int_equal(rc, 1); /* some were rejected */
    char *out = it_read_file(&env, "verify.out", NULL);
    assert_non_null(out);
    size_t lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
        json_object *o = json_tokener_parse(line), *idx = NULL, *code = NULL;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "index", &idx));
        assert_true(json_object_object_get_ex(o, "code", &code));
        size_t i = (size_t)json_object_get_int64(idx);
        assert_true(i < n);
        if (strcmp(json_object_get_string(code), p[i].code) != 0)
            fail_msg("verify, %s: expected %s, got %s", p[i].what, p[i].code, line);
        json_object_put(o);
    }
    assert_int_equal(lines, n);
    free(out);
    for (size_t i = 0; i < n; i++)
        free(p[i].env);
}

static void a_dedup_window_below_twice_the_clock_skew_keeps_lienthongd_from_starting(
    void **state)
{
    (void)state;
    assert_int_equal(it_broker_stop(&env, 15000), 0);
    char *bad = strdup(BROKER_YAML);
    assert_non_null(bad);
    char *at = strstr(bad, "dedup_window_s: 600");
    assert_non_null(at);
    memcpy(at, "dedup_window_s: 599", 19); /* one second short of 2 x 300 */
    assert_true(it_write_broker_yaml(&env, bad));
    free(bad);
    /* --check refuses it, naming both keys, the file and the line */
    char cfg[IT_PATH_MAX], out[IT_PATH_MAX];
    char *argv[] = {(char *)LT_LIENTHONGD, (char *)"--check", (char *)"-c",
                    it_path(&env, "broker.yaml", cfg), NULL};
    pid_t pid = it_spawn_prog(argv, it_path(&env, "check.out", out));
    assert_true(pid > 0);
    assert_int_equal(it_wait(pid, 30000), 2);
    char *err = it_read_file(&env, "check.out.err", NULL);
    assert_non_null(err);
    if (strstr(err, "broker.yaml:7: broker.dedup_window_s: 599 s") == NULL ||
        strstr(err, "trust.clock_skew_s (300 s, line 14)") == NULL)
        fail_msg("lienthongd --check said: %s", err);
    free(err);
    /* and it does not start */
    assert_false(it_broker_start(&env, 10000));
    assert_false(it_broker_alive(&env));
    char *log = it_read_file(&env, env.log_path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log + env.log_off, "dedup_window_s"));
    assert_non_null(strstr(log + env.log_off, "clock_skew_s"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_probe_is_nacked_with_its_code_and_a_reason_and_the_broker_serves_on),
        cmocka_unit_test(a_ca_certificate_cannot_authenticate_either),
        cmocka_unit_test(lienthong_verify_refuses_what_the_broker_refuses_with_the_same_codes),
        /* last: it stops the broker for good */
        cmocka_unit_test(a_dedup_window_below_twice_the_clock_skew_keeps_lienthongd_from_starting),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
