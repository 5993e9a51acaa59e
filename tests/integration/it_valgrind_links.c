/*
 * it_valgrind_links.c - two linked brokers, both under valgrind memcheck: the ward runs the
 * link thread (forward uplink -> the city, over CURVE with its key pair), the city receives
 * (its ZAP handler maps the ward's key, checked against the ward's certificate) and stores.
 * 100 records cross the link and are consumed at the city; both brokers then reload their
 * config on SIGHUP (the city with a changed curve_clients and peers: a new key table and ACL
 * swapped in; the ward its links), 10 more cross, and both are stopped by SIGTERM. Each must
 * exit 0: a valgrind error or a definite or indirect leak makes it exit IT_VG_STATUS, which
 * fails the test with valgrind's report printed.
 *
 * Skipped (with a message) without valgrind or in a sanitizer build (harness_valgrind.h).
 * One pair of brokers for the group; the tests run in order and the last one stops them.
 */
#include "harness.h"
#include "harness_client.h"
#include "harness_valgrind.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

#define VG_READY_MS 120000
#define TOPIC "79.760.hotich.khaisinh"
#define ID_WARD "VN:GOV:000.00.00.H29.26734:lienthong"
#define ID_CITY "VN:GOV:000.00.00.H29:lienthong"

/* @NAME@ the node, @CURVE@ its CURVE endpoint, @EXTRA@ its queues, peers and links. */
static const char node_tmpl[] = "broker:\n"
                                "  name: @NAME@\n"
                                "  listen: @LISTEN@\n"
                                "  data_dir: data-@NAME@\n"
                                "  map_size_mb: 256\n"
                                "  verify_threads: 1\n"
                                "  admin:\n"
                                "    listen: @ADMIN@\n"
                                "    token_file: admin.token\n"
                                "  identity:\n"
                                "    key: keys/broker-@NAME@.key.pem\n"
                                "    cert: certs/broker-@NAME@.cert.pem\n"
                                "  curve:\n"
                                "    listen: @CURVE@\n"
                                "    secret_key_file: keys/broker-@NAME@.curve\n"
                                "trust:\n"
                                "  ca: ca/ca.cert.pem\n"
                                "  crl: ca/crl.pem\n"
                                "acl:\n"
                                "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
                                "    publish: [\"79.760.>\"]\n"
                                "@EXTRA@";

static it_env base, ward, city;
static char ward_curve[64], city_curve[64], ward_pub[41], city_pub[41];

/* Write node e's config (named name) with extra (printf format) as its @EXTRA@. */
static bool node_yaml(it_env *e, const char *name, const char *curve, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool node_yaml(it_env *e, const char *name, const char *curve, const char *fmt, ...)
{
    char extra[2048], text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    size_t o = 0;
    for (const char *s = node_tmpl; *s && o + 1 < sizeof text;) {
        const char *v = NULL;
        size_t kl = 0;
        if (strncmp(s, "@NAME@", 6) == 0)
            v = name, kl = 6;
        else if (strncmp(s, "@CURVE@", 7) == 0)
            v = curve, kl = 7;
        else if (strncmp(s, "@EXTRA@", 7) == 0)
            v = extra, kl = 7;
        if (v) {
            o += (size_t)snprintf(text + o, sizeof text - o, "%s", v);
            s += kl;
        } else {
            text[o++] = *s++;
        }
    }
    text[o < sizeof text ? o : sizeof text - 1] = '\0';
    return o < sizeof text && it_write_broker_yaml(e, text);
}

/* The public CURVE key dev-init wrote for a broker identity. */
static bool curve_pub(const char *shortname, char out[41])
{
    char rel[128];
    snprintf(rel, sizeof rel, "certs/%s.curve.pub", shortname);
    char *t = it_read_file(&base, rel, NULL);
    bool ok = t && strlen(t) >= 40;
    if (ok) {
        memcpy(out, t, 40);
        out[40] = '\0';
    }
    free(t);
    return ok;
}

static bool write_ward(void)
{
    return node_yaml(&ward, "ward", ward_curve,
                     "queues:\n"
                     "  - name: uplink\n"
                     "    owner: " ID_WARD "\n"
                     "    bind: [\"79.760.>\"]\n"
                     "    max_deliver: 1000\n"
                     "peers:\n"
                     "  - name: city\n"
                     "    agency: " ID_CITY "\n"
                     "    curve_key: \"%s\"\n"
                     "links:\n"
                     "  - peer: city\n"
                     "    endpoint: %s\n"
                     "    forward: uplink\n"
                     "    retry_max_ms: 1000\n",
                     city_pub, city_curve);
}

/* The city's config; with a client key (Z85) in curve_clients unless NULL. */
static bool write_city(const char *client_key)
{
    char clients[256] = "";
    if (client_key)
        snprintf(clients, sizeof clients,
                 "curve_clients:\n"
                 "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
                 "    key: \"%s\"\n"
                 "    cert: certs/quan1.cert.pem\n",
                 client_key);
    return node_yaml(&city, "city", city_curve,
                     "queues:\n"
                     "  - name: uplink\n"
                     "    owner: " ID_CITY "\n"
                     "    bind: [\"79.>\"]\n"
                     "peers:\n"
                     "  - name: ward\n"
                     "    agency: " ID_WARD "\n"
                     "    relay: [\"79.760.>\"]\n"
                     "    curve_key: \"%s\"\n"
                     "    cert: certs/broker-ward.cert.pem\n"
                     "%s",
                     ward_pub, clients);
}

static int group_setup(void **state)
{
    (void)state;
    if (it_vg_skip_reason("it_valgrind_links") != NULL)
        return 0;
    if (!it_env_init(&base) || !it_env_init_node(&ward, &base, "ward") ||
        !it_env_init_node(&city, &base, "city"))
        return -1;
    snprintf(ward_curve, sizeof ward_curve, "tcp://127.0.0.1:%u", it_free_port());
    snprintf(city_curve, sizeof city_curve, "tcp://127.0.0.1:%u", it_free_port());
    if (!curve_pub("broker-ward", ward_pub) || !curve_pub("broker-city", city_pub) ||
        !write_ward() || !write_city(NULL))
        return -1;
    it_vg_wrap(&base);
    ward.wrap = city.wrap = base.wrap;
    int64_t t0 = it_now_ms();
    if (!it_broker_start(&city, VG_READY_MS) || !it_broker_start(&ward, VG_READY_MS))
        return -1;
    fprintf(stderr, "it_valgrind_links: both brokers ready under valgrind in %lld ms\n",
            (long long)(it_now_ms() - t0));
    return 0;
}

/* Stop node e by SIGTERM; its exit status (valgrind's report printed unless 0). */
static int stop(it_env *e, const char *name)
{
    pid_t pid = e->pid;
    int rc = it_broker_stop(e, 60000);
    if (rc != 0) {
        fprintf(stderr, "it_valgrind_links: %s exited %d on SIGTERM\n", name, rc);
        it_vg_print_log(&base, pid);
    }
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    if (ward.pid > 0)
        stop(&ward, "ward");
    if (city.pid > 0)
        stop(&city, "city");
    if (base.dir[0] != '\0') {
        it_env_fini(&ward);
        it_env_fini(&city);
        it_env_fini(&base);
    }
    return 0;
}

static void skip_if_unavailable(void)
{
    const char *why = it_vg_skip_reason("it_valgrind_links");
    if (why != NULL) {
        fprintf(stderr, "%s\n", why);
        skip();
    }
}

/* Publish records [first, first + n) of the district at the ward (each acked there), then
 * consume n at the city's uplink, acking each. */
static void carry(uint64_t first, size_t n)
{
    lt_signer *q1 = it_signer(&base, "quan1"), *cityid = it_signer(&base, "broker-city");
    assert_true(q1 && cityid);
    lt_client *c = it_client(&ward, NULL, 32, 60000);
    assert_non_null(c);
    it_answer *ans = calloc(n, sizeof *ans);
    assert_non_null(ans);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *env = it_seal(q1, TOPIC, first + i, 64, &len, NULL);
        assert_non_null(env);
        assert_int_equal(lt_client_publish(c, env, len, it_answer_cb, &ans[i], NULL), LT_OK);
        free(env);
    }
    assert_int_equal(lt_client_flush(c, 60000), LT_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ans[i].code, LT_OK);
    lt_client_close(&c);
    free(ans);

    lt_client *k = it_client(&city, cityid, 0, 0);
    assert_non_null(k);
    it_sink s = {.c = k, .ack = true};
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(k, "uplink", 256, NULL, it_sink_cb, &s, &why), LT_OK);
    assert_true(it_sink_wait(&s, n, 60000));
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) /* each record once, in the order published */
        assert_int_equal(s.v[i].n, first + i);
    assert_int_equal(lt_client_flush(k, 20000), LT_OK);
    lt_client_close(&k);
    it_sink_fini(&s);
    lt_signer_destroy(&q1);
    lt_signer_destroy(&cityid);
}

static void a_hundred_records_cross_a_curve_link_under_valgrind(void **state)
{
    (void)state;
    skip_if_unavailable();
    int64_t t0 = it_now_ms();
    carry(1, 100);
    fprintf(stderr, "it_valgrind_links: 100 records over the CURVE link in %lld ms\n",
            (long long)(it_now_ms() - t0));
}

static void sighup_reloads_keys_peers_and_links_under_valgrind(void **state)
{
    (void)state;
    skip_if_unavailable();
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_true(write_city(pub));
    assert_true(it_broker_hup(&city));
    assert_true(it_log_wait(&city, "CURVE keys reloaded", 60000));
    assert_true(it_broker_hup(&ward));
    assert_true(it_log_wait(&ward, "links reloaded", 60000));
    carry(1000, 10);
}

static void both_brokers_exit_0_under_valgrind_on_sigterm(void **state)
{
    (void)state;
    skip_if_unavailable();
    assert_true(it_broker_alive(&ward) && it_broker_alive(&city));
    /* the ward first: its link thread stops with records settled */
    int rw = stop(&ward, "ward");
    int rc = stop(&city, "city");
    if (rw != 0 || rc != 0)
        fail_msg("under valgrind the ward exited %d, the city %d on SIGTERM%s", rw, rc,
                 rw == IT_VG_STATUS || rc == IT_VG_STATUS
                     ? " (valgrind found errors or leaks: report above)"
                     : "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hundred_records_cross_a_curve_link_under_valgrind),
        cmocka_unit_test(sighup_reloads_keys_peers_and_links_under_valgrind),
        /* last: stops both brokers and checks their valgrind status */
        cmocka_unit_test(both_brokers_exit_0_under_valgrind_on_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
