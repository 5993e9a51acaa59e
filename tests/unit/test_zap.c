/* test_zap.c - the ZAP handler (broker/zap.h): the key table binds each listed key to its
 * agency and reads its certificate (of that agency only); a key is accepted, unknown,
 * revoked or not allowed by the trust and CRL in force; a real CURVE handshake through the
 * handler gets the agency as User-Id and the key as X-Curve-Key, or never opens; a table
 * swapped in while handshakes are judged on another thread is used from then on. */
#include "zap.h"

#include "devpki.h"
#include "envelope.h"

#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

static char dir[256];
static lt_trust *trust;
/* key pairs: a (agency A, a.cert), r (A, revoked.cert), x (A, expired.cert), b (B, no cert) */
static char a_pub[41], a_sec[41], r_pub[41], r_sec[41], x_pub[41], x_sec[41], b_pub[41],
    b_sec[41];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lt_test_zap.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    lt_why why = {{0}};
    if (lt_devpki_fixture(dir, LT_SIG_ECDSA_P256, lt_env_now_ms(), &why) != LT_OK) {
        fprintf(stderr, "fixture: %s\n", why.msg);
        return -1;
    }
    char ca[300], crl[300];
    snprintf(ca, sizeof ca, "%s/ca.cert.pem", dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", dir);
    if (lt_trust_open(ca, crl, NULL, &trust, &why) != LT_OK) {
        fprintf(stderr, "trust: %s\n", why.msg);
        return -1;
    }
    return zmq_curve_keypair(a_pub, a_sec) || zmq_curve_keypair(r_pub, r_sec) ||
                   zmq_curve_keypair(x_pub, x_sec) || zmq_curve_keypair(b_pub, b_sec)
               ? -1
               : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    lt_trust_destroy(&trust);
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The key table of the config text (paths relative to the fixture's directory). */
static lt_err keys_of(const char *text, lt_zap_keys **out, lt_why *why)
{
    char label[300];
    snprintf(label, sizeof label, "%s/broker.yaml", dir);
    lt_broker_cfg *cfg = NULL;
    lt_err e = lt_broker_config_parse(label, text, strlen(text), &cfg, why);
    if (e == LT_OK)
        e = lt_zap_keys_new(cfg, NULL, NULL, NULL, out, why);
    lt_broker_config_destroy(&cfg);
    return e;
}

/* curve_clients with the four keys (the last one only when all). */
static lt_zap_keys *four_keys(bool all)
{
    char text[2048];
    snprintf(text, sizeof text,
             "curve_clients:\n"
             "  - agency: " LT_DEVPKI_AGENCY_B "\n    key: \"%s\"\n"
             "%s%s%s%s%s%s",
             b_pub, all ? "  - agency: " LT_DEVPKI_AGENCY_A "\n    key: \"" : "",
             all ? a_pub : "", all ? "\"\n    cert: a.cert.pem\n" : "",
             all ? "  - agency: " LT_DEVPKI_AGENCY_A "\n    key: \"" : "", all ? r_pub : "",
             all ? "\"\n    cert: revoked.cert.pem\n" : "");
    if (all) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n,
                 "  - agency: " LT_DEVPKI_AGENCY_A "\n    key: \"%s\"\n    cert: expired.cert.pem\n",
                 x_pub);
    }
    lt_zap_keys *k = NULL;
    lt_why why = {{0}};
    if (keys_of(text, &k, &why) != LT_OK)
        fail_msg("%s", why.msg);
    return k;
}

static void each_key_is_accepted_unknown_revoked_or_not_allowed(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    lt_zap_keys *k = four_keys(true);
    assert_int_equal(lt_zap_keys_count(k), 4);
    lt_zap *z = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_zap_start(ctx, trust, k, &z, &why), LT_OK);
    char agency[LT_AGENCY_ID_MAX];
    assert_int_equal(lt_zap_check(z, a_pub, agency, &why), LT_ZAP_ACCEPTED);
    assert_string_equal(agency, LT_DEVPKI_AGENCY_A);
    assert_int_equal(lt_zap_check(z, b_pub, agency, &why), LT_ZAP_ACCEPTED); /* no cert */
    assert_string_equal(agency, LT_DEVPKI_AGENCY_B);
    assert_int_equal(lt_zap_check(z, r_pub, agency, &why), LT_ZAP_REVOKED);
    assert_non_null(strstr(why.msg, "CERT_REVOKED"));
    assert_int_equal(lt_zap_check(z, x_pub, agency, &why), LT_ZAP_NOT_ALLOWED);
    assert_non_null(strstr(why.msg, "CERT_EXPIRED"));
    char other[41], other_sec[41];
    assert_int_equal(zmq_curve_keypair(other, other_sec), 0);
    assert_int_equal(lt_zap_check(z, other, agency, &why), LT_ZAP_UNKNOWN_KEY);
    assert_int_equal(lt_zap_check(z, "not a key", agency, &why), LT_ZAP_UNKNOWN_KEY);
    /* a new table: only b's key is left */
    lt_zap_swap(z, four_keys(false));
    assert_int_equal(lt_zap_check(z, a_pub, agency, &why), LT_ZAP_UNKNOWN_KEY);
    assert_int_equal(lt_zap_check(z, b_pub, agency, &why), LT_ZAP_ACCEPTED);
    lt_zap_stop(&z);
    assert_null(z);
    zmq_ctx_term(ctx);
}

static void a_cert_of_another_agency_or_unreadable_is_refused(void **state)
{
    (void)state;
    char text[512];
    lt_zap_keys *k = NULL;
    lt_why why = {{0}};
    snprintf(text, sizeof text,
             "curve_clients:\n  - agency: " LT_DEVPKI_AGENCY_B "\n    key: \"%s\"\n"
             "    cert: a.cert.pem\n",
             b_pub);
    assert_int_equal(keys_of(text, &k, &why), LT_ECONFIG);
    assert_null(k);
    assert_non_null(strstr(why.msg, "curve_clients[0]"));
    assert_non_null(strstr(why.msg, "not of " LT_DEVPKI_AGENCY_B));
    snprintf(text, sizeof text,
             "curve_clients:\n  - agency: " LT_DEVPKI_AGENCY_B "\n    key: \"%s\"\n"
             "    cert: none.pem\n",
             b_pub);
    assert_int_equal(keys_of(text, &k, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "cannot read"));
    snprintf(text, sizeof text,
             "peers:\n  - name: w\n    agency: " LT_DEVPKI_AGENCY_B "\n    curve_key: \"%s\"\n"
             "    cert: ca.key.pem\n",
             b_pub);
    assert_int_equal(keys_of(text, &k, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "peers[0] (w)"));
    assert_non_null(strstr(why.msg, "no PEM certificate"));
}

/* A DEALER with key pair (pub, sec) sends "hi" to the CURVE ROUTER at ep (server key spub):
 * true when the ROUTER receives it within 1 s, with User-Id and X-Curve-Key into uid/key. */
static bool handshake(void *ctx, void *router, const char *ep, const char *spub, const char *pub,
                      const char *sec, char uid[LT_AGENCY_ID_MAX], char key[41])
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, spub, 40);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40);
    assert_int_equal(zmq_connect(d, ep), 0);
    zmq_send(d, "hi", 2, ZMQ_DONTWAIT);
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    bool got = zmq_poll(&it, 1, 1000) > 0;
    if (got) {
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        zmq_msg_recv(&id, router, 0);
        zmq_msg_recv(&m, router, 0);
        const char *u = zmq_msg_gets(&m, "User-Id"), *k = zmq_msg_gets(&m, LT_ZAP_KEY_PROPERTY);
        snprintf(uid, LT_AGENCY_ID_MAX, "%s", u ? u : "");
        snprintf(key, 41, "%s", k ? k : "");
        zmq_msg_close(&id);
        zmq_msg_close(&m);
    }
    zmq_close(d);
    return got;
}

static void a_curve_handshake_carries_the_agency_and_the_key_or_never_opens(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    lt_zap *z = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_zap_start(ctx, trust, four_keys(true), &z, &why), LT_OK);
    char spub[41], ssec[41], ep[64];
    assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, ssec, 40);
    zmq_setsockopt(r, ZMQ_ZAP_DOMAIN, LT_ZAP_DOMAIN, strlen(LT_ZAP_DOMAIN));
    assert_int_equal(zmq_bind(r, "tcp://127.0.0.1:*"), 0);
    size_t eplen = sizeof ep;
    assert_int_equal(zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
    char uid[LT_AGENCY_ID_MAX], key[41];
    assert_true(handshake(ctx, r, ep, spub, a_pub, a_sec, uid, key));
    assert_string_equal(uid, LT_DEVPKI_AGENCY_A);
    assert_string_equal(key, a_pub);
    assert_false(handshake(ctx, r, ep, spub, r_pub, r_sec, uid, key)); /* revoked */
    assert_false(handshake(ctx, r, ep, spub, x_pub, x_sec, uid, key)); /* expired */
    lt_zap_stats st;
    lt_zap_get_stats(z, &st);
    assert_int_equal(st.accepted, 1);
    assert_true(st.revoked >= 1);
    assert_true(st.not_allowed >= 1);
    zmq_close(r);
    lt_zap_stop(&z);
    zmq_ctx_term(ctx);
}

typedef struct judge_arg {
    lt_zap *z;
    atomic_bool stop;
    size_t accepted, unknown;
} judge_arg;

static void *judge_loop(void *p)
{
    judge_arg *a = p;
    char agency[LT_AGENCY_ID_MAX];
    while (!atomic_load(&a->stop)) {
        lt_why why = {{0}};
        if (lt_zap_check(a->z, a_pub, agency, &why) == LT_ZAP_ACCEPTED)
            a->accepted++;
        else
            a->unknown++;
    }
    return NULL;
}

static void tables_swapped_while_another_thread_judges_keys(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    judge_arg a = {0};
    atomic_init(&a.stop, false);
    lt_why why = {{0}};
    assert_int_equal(lt_zap_start(ctx, trust, four_keys(true), &a.z, &why), LT_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, judge_loop, &a), 0);
    for (int i = 0; i < 400; i++) /* a's key comes and goes */
        lt_zap_swap(a.z, four_keys(i % 2 == 1));
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    char agency[LT_AGENCY_ID_MAX];
    assert_int_equal(lt_zap_check(a.z, a_pub, agency, &why), LT_ZAP_ACCEPTED); /* the last */
    assert_true(a.accepted + a.unknown > 0);
    lt_zap_stop(&a.z);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_key_is_accepted_unknown_revoked_or_not_allowed),
        cmocka_unit_test(a_cert_of_another_agency_or_unreadable_is_refused),
        cmocka_unit_test(a_curve_handshake_carries_the_agency_and_the_key_or_never_opens),
        cmocka_unit_test(tables_swapped_while_another_thread_judges_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
