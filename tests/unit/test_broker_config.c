/* test_broker_config.c - broker.yaml: the documented example loads with every value and
 * default; each kind of mistake is refused with file, line, key and reason (procedure and
 * calendar files too); the ACL built from it, peers' relay patterns included; reloading the
 * ACL section alone. */
#include "broker_config.h"
#include "dossier.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char good[] =
    "broker:\n"
    "  name: hcmc-lienthong\n"
    "  listen: tcp://127.0.0.1:7400\n"
    "  data_dir: data\n"
    "  map_size_mb: 65536\n"
    "  verify_threads: 0\n"
    "  max_frame_bytes: 4194304\n"
    "  dedup_window_s: 86400\n"
    "  commit_max_batch: 4096\n"
    "  admin:\n"
    "    listen: 127.0.0.1:7401\n"
    "    token_file: admin.token\n"
    "    allow_remote: true\n"
    "    min_free_disk_mb: 64\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: /etc/lt/crl.pem\n"
    "  clock_skew_s: 300\n"
    "admins:\n"
    "  - VN:GOV:000.00.00.H29:vanphong\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "  - agency: VN:GOV:000.00.00.G01:csdldancu\n"
    "    publish: []\n"
    "queues:\n"
    "  - name: dancu.capnhat\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.hotich.>\", \"79.*.cutru.>\"]\n"
    "    ack_wait_s: 30\n"
    "    max_deliver: 5\n"
    "    backoff_s: [1, 5, 30]\n"
    "    max_ack_pending: 1000\n"
    "    max_depth: 1000000\n"
    "    max_bytes: 1073741824\n"
    "    retention_s: 86400\n"
    "  - name: audit\n"
    "    owner: VN:GOV:000.00.00.H29:vanphong\n"
    "    bind: [\">\"]\n"
    "    max_deliver: 9\n"
    "    backoff_s: []\n";

static lt_err parse(const char *text, lt_broker_cfg **c, lt_why *why)
{
    why->msg[0] = '\0';
    return lt_broker_config_parse("/etc/lt/broker.yaml", text, strlen(text), c, why);
}

static void the_documented_example_loads_with_every_value(void **state)
{
    (void)state;
    lt_broker_cfg *c;
    lt_why why;
    lt_err err = parse(good, &c, &why);
    if (err)
        fail_msg("%s", why.msg);
    assert_string_equal(c->name, "hcmc-lienthong");
    assert_string_equal(c->listen, "tcp://127.0.0.1:7400");
    assert_string_equal(c->data_dir, "/etc/lt/data");
    assert_int_equal(c->map_size_mb, 65536);
    assert_int_equal(c->max_frame_bytes, 4194304);
    assert_int_equal(c->dedup_window_s, 86400);
    assert_int_equal(c->commit_max_batch, 4096);
    assert_string_equal(c->admin_listen, "127.0.0.1:7401");
    assert_string_equal(c->admin_token_file, "/etc/lt/admin.token");
    assert_true(c->admin_allow_remote);
    assert_int_equal(c->admin_min_free_mb, 64);
    assert_string_equal(c->ca, "/etc/lt/ca/ca.cert.pem");
    assert_string_equal(c->crl, "/etc/lt/crl.pem");
    assert_int_equal(c->clock_skew_s, 300);
    assert_int_equal(c->nadmins, 1);
    assert_string_equal(c->admins[0], "VN:GOV:000.00.00.H29:vanphong");
    assert_int_equal(c->nacl, 2);
    assert_int_equal(c->acl[0].npublish, 1);
    assert_string_equal(c->acl[0].publish[0], "79.760.>");
    assert_int_equal(c->acl[1].npublish, 0);
    assert_int_equal(c->nqueues, 2);
    const lt_bcfg_queue *q = lt_broker_config_queue(c, "dancu.capnhat");
    assert_non_null(q);
    assert_string_equal(q->owner, "VN:GOV:000.00.00.G01:csdldancu");
    assert_int_equal(q->nbind, 2);
    assert_string_equal(q->bind[1], "79.*.cutru.>");
    assert_int_equal(q->nbackoff, 3);
    assert_int_equal(q->backoff_s[2], 30);
    assert_int_equal(q->max_depth, 1000000);
    assert_int_equal(q->max_bytes, 1073741824ULL);
    assert_int_equal(q->retention_s, 86400);
    q = lt_broker_config_queue(c, "audit");
    assert_non_null(q);
    assert_int_equal(q->max_deliver, 9);
    assert_int_equal(q->nbackoff, 0); /* explicitly empty: redeliver at once */
    assert_int_equal(q->ack_wait_s, LT_BCFG_DEFAULT_ACK_WAIT_S);
    assert_null(lt_broker_config_queue(c, "nope"));
    lt_broker_config_destroy(&c);
    assert_null(c);
}

static void an_empty_file_gives_working_defaults(void **state)
{
    (void)state;
    lt_broker_cfg *c;
    lt_why why;
    assert_int_equal(parse("", &c, &why), LT_OK);
    assert_string_equal(c->listen, LT_BCFG_DEFAULT_LISTEN);
    assert_string_equal(c->data_dir, "/etc/lt/data");
    assert_int_equal(c->map_size_mb, LT_BCFG_DEFAULT_MAP_SIZE_MB);
    assert_int_equal(c->dedup_window_s, LT_BCFG_DEFAULT_DEDUP_WINDOW_S);
    assert_string_equal(c->admin_listen, LT_BCFG_DEFAULT_ADMIN_LISTEN);
    assert_string_equal(c->ca, "/etc/lt/ca/ca.cert.pem");
    assert_int_equal(c->nqueues, 0);
    lt_broker_config_destroy(&c);
    /* a queue with only the required keys gets every default */
    assert_int_equal(parse("queues:\n"
                           "  - name: q\n"
                           "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
                           "    bind: [\"a.>\"]\n",
                           &c, &why),
                     LT_OK);
    assert_int_equal(c->queues[0].max_deliver, LT_BCFG_DEFAULT_MAX_DELIVER);
    assert_int_equal(c->queues[0].nbackoff, 3);
    assert_int_equal(c->queues[0].backoff_s[1], 5);
    assert_int_equal(c->queues[0].max_ack_pending, LT_BCFG_DEFAULT_MAX_ACK_PENDING);
    assert_int_equal(c->queues[0].retention_s, LT_BCFG_DEFAULT_RETENTION_S);
    assert_string_equal(c->admin_token_file, "/etc/lt/admin.token");
    lt_broker_config_destroy(&c);
}

/* Pieces of network configs (broker.identity, peers) for the cases below. */
#define NET_ID "broker:\n  identity:\n    key: k.pem\n    cert: c.pem\n"
#define NET_PEER "peers:\n  - name: w\n    agency: VN:GOV:000.00.00.H29:lienthong\n"
#define NET_LINK "links:\n  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n"
/* A CURVE public key (Z85) */
#define Z85_A "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

/* Each bad config: its text, and fragments the message must contain. */
typedef struct bad {
    const char *text;
    const char *want[3];
} bad;

static const bad bads[] = {
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "    max_delivr: 3\n",
     {"broker.yaml:", "max_delivr", "queues[0]"}},
    {"brokr:\n  name: x\n", {"broker.yaml:", "unknown key 'brokr'", NULL}},
    {"broker:\n  map_size_mb: lots\n", {"broker.yaml:2", "map_size_mb", "integer"}},
    {"broker:\n  map_size_mb: 0\n", {"broker.yaml:2", "map_size_mb", "1..16777216"}},
    {"broker:\n  listen: 127.0.0.1:7400\n", {"broker.yaml:2", "listen", "tcp://"}},
    {"broker:\n  listen: tcp://127.0.0.1:99999\n", {"broker.yaml:2", "listen", NULL}},
    {"broker:\n  admin:\n    listen: localhost\n", {"broker.yaml:3", "admin.listen", "PORT"}},
    {"broker:\n  admin:\n    tokenfile: x\n", {"broker.yaml:3", "tokenfile", NULL}},
    {"broker:\n  data_dir: \"\"\n", {"broker.yaml:", "data_dir", "empty"}},
    {"trust:\n  clock_skew_s: -1\n", {"broker.yaml:2", "clock_skew_s", NULL}},
    {"admins:\n  - VN:GOV:000.00.00.H29:vanphong\n  - not-an-agency\n",
     {"broker.yaml:3", "admins[1]", NULL}},
    {"admins:\n  - VN:GOV:000.00.00.H29:vanphong\n  - vn:gov:000.00.00.H29:vanphong\n",
     {"broker.yaml:3", "listed twice", NULL}},
    {"acl:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n    publish: [\"79.>.x\"]\n",
     {"broker.yaml:3", "acl[0].publish[0]", "bad topic pattern"}},
    {"acl:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
     "  - agency: VN:GOV:000.00.00.H29.760:hotich\n",
     {"broker.yaml:3", "already has an ACL entry", NULL}},
    {"acl:\n  - publish: [\"a\"]\n", {"broker.yaml:2", "agency", "missing"}},
    {"acl:\n  - just-a-string\n", {"broker.yaml:2", "acl[0]", "map"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n",
     {"broker.yaml:2", "bind", "missing"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: []\n",
     {"broker.yaml:4", "bind", "at least one"}},
    {"queues:\n  - name: q\n    bind: [\"a\"]\n", {"broker.yaml:2", "owner", "missing"}},
    {"queues:\n  - name: q\n    owner: x\n    bind: [\"a\"]\n",
     {"broker.yaml:3", "queues[0].owner", NULL}},
    {"queues:\n  - name: \"bad name\"\n    owner: VN:GOV:000.00.00.G01:csdldancu\n"
     "    bind: [\"a\"]\n",
     {"broker.yaml:2", "queues[0].name", "A-Z"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"b\"]\n",
     {"broker.yaml:5", "already defined", "line 2"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "    max_deliver: 0\n",
     {"broker.yaml:5", "queues[0].max_deliver", "1..1000"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "    backoff_s: [1, -5]\n",
     {"broker.yaml:5", "backoff_s[1]", "0..86400"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "    backoff_s: 5\n",
     {"broker.yaml:5", "backoff_s", "list"}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n"
     "    bind: [\"a\", \"a\"]\n",
     {"broker.yaml:4", "listed twice", NULL}},
    {"queues:\n  - name: q\n    owner: VN:GOV:000.00.00.G01:csdldancu\n    bind: [\"a\"]\n"
     "    max_depth: -1\n",
     {"broker.yaml:5", "max_depth", NULL}},
    {"queues: {a: 1}\n", {"broker.yaml:1", "queues", "list"}},
    /* found by fuzzing: a section given as a scalar */
    {"admins:\n -agency\n", {"broker.yaml:", "admins", "list"}},
    {"acl: everyone\n", {"broker.yaml:1", "acl", "list"}},
    {"queues: q\n", {"broker.yaml:1", "queues", "list"}},
    {"broker: [1, 2]\n", {"broker.yaml:1", "broker", "map"}},
    {"a: &x 1\nb: *x\n", {"broker.yaml", NULL, NULL}},
    {"broker:\n  name: a\n  name: b\n", {"broker.yaml:3", NULL, NULL}},
    {"- 1\n- 2\n", {"broker.yaml", NULL, NULL}},
    {"broker:\n  name: \"unterminated\n", {"broker.yaml", NULL, NULL}},
    /* the network (docs/network.md) */
    {"peers:\n  - name: w\n    agency: VN:GOV:000.00.00.H29:lienthong\n"
     "links:\n  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n    receive: in\n",
     {"broker.yaml:5", "links", "broker.identity"}},
    {NET_ID "links:\n  - peer: nobody\n    endpoint: tcp://10.0.0.1:7400\n    receive: in\n",
     {"broker.yaml:6", "links[0].peer", "no peer named 'nobody'"}},
    {NET_ID NET_PEER "links:\n  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n"
     "    receive: in\n    forward: out\n",
     {"broker.yaml:9", "links[0]", "exactly one of forward"}},
    {NET_ID NET_PEER "links:\n  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n"
     "    forward: nosuch\n",
     {"broker.yaml:11", "links[0].forward", "no queue named 'nosuch'"}},
    {NET_ID NET_PEER "links:\n  - peer: w\n    endpoint: \"tcp://*:7400\"\n    receive: in\n",
     {"broker.yaml:10", "links[0].endpoint", "tcp://"}},
    {NET_ID NET_PEER "links:\n  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n    receive: in\n"
     "  - peer: w\n    endpoint: tcp://10.0.0.1:7400\n    receive: in\n",
     {"broker.yaml:12", "link w.in is already defined", "line 9"}},
    {NET_PEER "  - name: w\n    agency: VN:GOV:000.00.00.H29.1:lienthong\n",
     {"broker.yaml:4", "peers[1].name", "listed twice"}},
    {NET_PEER "  - name: v\n    agency: VN:GOV:000.00.00.H29:lienthong\n",
     {"broker.yaml:5", "peers[1].agency", "another peer"}},
    {"broker:\n  name: me\n" NET_PEER "  - name: me\n    agency: VN:GOV:000.00.00.H29.1:x\n",
     {"broker.yaml:6", "peers[1].name", "own name"}},
    {"broker:\n  name: \"my broker\"\n" NET_PEER,
     {"broker.yaml:2", "broker.name", "hops"}},
    {NET_PEER "    relay: [\"79.>.x\"]\n", {"broker.yaml:4", "relay", "bad topic pattern"}},
    {"broker:\n  identity:\n    key: k.pem\n", {"broker.yaml:", "identity", "cert"}},
    /* round 2: scheduling, send queue, admin, procedures, calendar */
    {"broker:\n  max_schedule_days: 0\n", {"broker.yaml:2", "max_schedule_days", "1..3660"}},
    {"broker:\n  max_schedule_days: 3661\n", {"broker.yaml:2", "max_schedule_days", "1..3660"}},
    {"broker:\n  max_schedule_days: soon\n", {"broker.yaml:2", "max_schedule_days", "integer"}},
    {"broker:\n  send_hwm: 4095\n", {"broker.yaml:2", "send_hwm", "4096..10000000"}},
    {"broker:\n  send_hwm: many\n", {"broker.yaml:2", "send_hwm", "integer"}},
    {"broker:\n  admin:\n    allow_remote: sometimes\n",
     {"broker.yaml:3", "admin.allow_remote", "true or false"}},
    {"broker:\n  admin:\n    min_free_disk_mb: -1\n",
     {"broker.yaml:3", "admin.min_free_disk_mb", "0..16777216"}},
    {"broker:\n  admin:\n    min_free_disk_mb: plenty\n",
     {"broker.yaml:3", "admin.min_free_disk_mb", "integer"}},
    {"procedures: {dir: p}\n", {"broker.yaml:1", "procedures", "a path"}},
    {"procedures: []\n", {"broker.yaml:1", "procedures", "a path"}},
    {"procedures: [\"\"]\n", {"broker.yaml:1", "procedures", "a path"}},
    {"calendar: \"\"\n", {"broker.yaml:1", "calendar", "empty"}},
    {"calendar: [a, b]\n", {"broker.yaml:1", "calendar", NULL}},
    /* round 2: CURVE */
    {"broker:\n  curve:\n    listen: 7410\n    secret_key_file: k\n",
     {"broker.yaml:3", "curve.listen", "tcp://"}},
    {"broker:\n  curve:\n    listen: tcp://127.0.0.1:7410\n",
     {"broker.yaml:3", "secret_key_file", "missing"}},
    {"broker:\n  curve:\n    listen: tcp://127.0.0.1:7410\n    secret_key_file: k\n"
     "    public_key: x\n",
     {"broker.yaml:", "unknown key 'public_key'", NULL}},
    {"curve_clients:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n    key: \"abc\"\n",
     {"broker.yaml:3", "curve_clients[0].key", "40 characters of Z85"}},
    {"curve_clients:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
     "    key: \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n",
     {"broker.yaml:3", "curve_clients[0].key", "40 characters of Z85"}},
    {"curve_clients:\n  - key: \"" Z85_A "\"\n", {"broker.yaml:2", "agency", "missing"}},
    {"curve_clients:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n    key: \"" Z85_A "\"\n"
     "  - agency: VN:GOV:000.00.00.H29.770:hotich\n    key: \"" Z85_A "\"\n",
     {"broker.yaml:5", "curve_clients[1].key", "already bound to"}},
    {"curve_clients:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n    key: \"" Z85_A "\"\n"
     "    cert: \"\"\n",
     {"broker.yaml:", "cert", "empty"}},
    {"curve_clients: " Z85_A "\n", {"broker.yaml:1", "curve_clients", "list"}},
    /* round 2: peers and links */
    {NET_PEER "    curve_key: \"not a key\"\n",
     {"broker.yaml:4", "peers[0].curve_key", "40 characters of Z85"}},
    {NET_PEER "    cert: c.pem\n", {"broker.yaml:4", "peers[0].cert", "curve_key"}},
    {NET_PEER "    relay: [\"\"]\n", {"broker.yaml:4", "peers[0].relay[0]", "empty value"}},
    {NET_PEER "    relay: \"79.>\"\n", {"broker.yaml:4", "relay", "list"}},
    {NET_PEER "    curve_key: \"" Z85_A "\"\n"
     "curve_clients:\n  - agency: VN:GOV:000.00.00.H29.760:hotich\n    key: \"" Z85_A "\"\n",
     {"broker.yaml:2", "peers[0].curve_key", "one key, one identity"}},
    {NET_ID NET_PEER NET_LINK "    receive: \"bad queue\"\n",
     {"broker.yaml:11", "links[0].receive", "A-Z"}},
    {NET_ID NET_PEER NET_LINK "    forward: \"q/../x\"\n",
     {"broker.yaml:11", "links[0].forward", "A-Z"}},
    {NET_ID NET_PEER NET_LINK "    receive: in\n    credit: 0\n",
     {"broker.yaml:12", "links[0].credit", "1..10000"}},
};

static void a_dedup_window_shorter_than_twice_the_clock_skew_is_refused(void **state)
{
    (void)state;
    lt_broker_cfg *c = NULL;
    lt_why why = {{0}};
    /* both set: the refusal points at dedup_window_s and names the skew's line */
    assert_int_equal(parse("broker:\n  dedup_window_s: 599\ntrust:\n  clock_skew_s: 300\n", &c,
                           &why),
                     LT_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(why.msg, "broker.yaml:2"));
    assert_non_null(strstr(why.msg, "broker.dedup_window_s: 599 s"));
    assert_non_null(strstr(why.msg, "trust.clock_skew_s (300 s, line 4) = 600 s"));
    /* exactly twice the skew is enough */
    assert_int_equal(parse("broker:\n  dedup_window_s: 600\ntrust:\n  clock_skew_s: 300\n", &c,
                           &why),
                     LT_OK);
    lt_broker_config_destroy(&c);
    /* the default window (a day) under a skew of more than half a day: points at the skew */
    assert_int_equal(parse("trust:\n  clock_skew_s: 43201\n", &c, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "broker.yaml:2"));
    assert_non_null(strstr(why.msg, "trust.clock_skew_s: 2 x 43201 s"));
    assert_non_null(strstr(why.msg, "broker.dedup_window_s (86400 s, the default)"));
    /* a short window under the default skew (300 s) */
    assert_int_equal(parse("broker:\n  dedup_window_s: 120\n", &c, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "broker.yaml:2"));
    assert_non_null(strstr(why.msg, "(300 s, the default)"));
}

static void each_kind_of_mistake_is_refused_with_file_line_key_and_reason(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        lt_broker_cfg *c = NULL;
        lt_why why;
        lt_err err = parse(bads[i].text, &c, &why);
        if (err != LT_ECONFIG)
            fail_msg("case %zu: expected LT_ECONFIG, got %d (%s)", i, err, why.msg);
        assert_null(c);
        for (int j = 0; j < 3 && bads[i].want[j]; j++)
            if (!strstr(why.msg, bads[i].want[j]))
                fail_msg("case %zu: '%s' not in '%s'", i, bads[i].want[j], why.msg);
    }
}

static void a_network_config_loads_peers_links_and_identity(void **state)
{
    (void)state;
    static const char net[] =
        "broker:\n  name: city\n  identity:\n    key: keys/city.key.pem\n"
        "    cert: /etc/lt/city.cert.pem\n"
        "queues:\n  - name: uplink\n    owner: VN:GOV:000.00.00.H29:lienthong\n"
        "    bind: [\"79.>\"]\n"
        "peers:\n  - name: ward\n    agency: vn:gov:000.00.00.H29.26734:LienThong\n"
        "    relay: [\"79.760.>\"]\n  - name: national\n"
        "    agency: VN:GOV:000.00.00.G01:lienthong\n"
        "links:\n  - peer: national\n    endpoint: tcp://10.0.0.2:7400\n    forward: uplink\n"
        "  - name: from-ward\n    peer: ward\n    endpoint: tcp://10.0.0.3:7400\n"
        "    receive: city.inbox\n    credit: 64\n    retry_max_ms: 100\n";
    lt_broker_cfg *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(parse(net, &c, &why), LT_OK);
    assert_string_equal(c->identity_key, "/etc/lt/keys/city.key.pem");
    assert_string_equal(c->identity_cert, "/etc/lt/city.cert.pem");
    assert_int_equal(c->npeers, 2);
    assert_string_equal(c->peers[0].agency, "VN:GOV:000.00.00.H29.26734:lienthong");
    assert_int_equal(c->peers[0].nrelay, 1);
    assert_int_equal(c->peers[1].nrelay, 0);
    assert_ptr_equal(lt_broker_config_peer(c, "VN:GOV:000.00.00.G01:lienthong", true),
                     &c->peers[1]);
    assert_null(lt_broker_config_peer(c, "city", false));
    assert_int_equal(c->nlinks, 2);
    assert_string_equal(c->links[0].name, "national.uplink");
    assert_false(c->links[0].receive);
    assert_int_equal(c->links[0].credit, LT_BCFG_DEFAULT_LINK_CREDIT);
    assert_int_equal(c->links[0].retry_max_ms, LT_BCFG_DEFAULT_LINK_RETRY_MAX_MS);
    assert_string_equal(c->links[1].name, "from-ward");
    assert_true(c->links[1].receive);
    assert_string_equal(c->links[1].queue, "city.inbox");
    assert_int_equal(c->links[1].credit, 64);
    assert_true(lt_broker_config_hop_name_ok("ward-1.a_b"));
    assert_false(lt_broker_config_hop_name_ok(""));
    assert_false(lt_broker_config_hop_name_ok("a b"));
    lt_broker_config_destroy(&c);
}

static void the_acl_built_from_the_config_follows_it(void **state)
{
    (void)state;
    lt_broker_cfg *c;
    lt_acl *a;
    lt_why why;
    assert_int_equal(parse(good, &c, &why), LT_OK);
    assert_int_equal(lt_broker_config_acl(c, &a, &why), LT_OK);
    assert_int_equal(lt_acl_check_publish(a, "VN:GOV:000.00.00.H29.760:hotich",
                                          "79.760.hotich.khaisinh", &why),
                     LT_OK);
    assert_int_equal(lt_acl_check_publish(a, "VN:GOV:000.00.00.G01:csdldancu",
                                          "79.760.hotich.khaisinh", &why),
                     LT_EACL);
    assert_int_equal(lt_acl_check_consume(a, "VN:GOV:000.00.00.G01:csdldancu",
                                          "dancu.capnhat", &why),
                     LT_OK);
    assert_true(lt_acl_is_admin(a, "VN:GOV:000.00.00.H29:vanphong"));
    lt_acl_destroy(&a);
    lt_broker_config_destroy(&c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void reloading_applies_acl_changes_and_refuses_queue_changes(void **state)
{
    (void)state;
    char dir[256], path[300];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lt_bcfg_XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/broker.yaml", dir);
    write_file(path, good);
    lt_broker_cfg *c;
    lt_acl *a;
    lt_why why;
    assert_int_equal(lt_broker_config_load(path, &c, &why), LT_OK);
    assert_non_null(strstr(c->data_dir, dir));
    /* the district is now also allowed 79.761.> */
    char *text = malloc(sizeof good + 64);
    assert_non_null(text);
    strcpy(text, good);
    char *p = strstr(text, "[\"79.760.>\"]");
    assert_non_null(p);
    p++; /* after the '[' */
    memmove(p + 12, p, strlen(p) + 1);
    memcpy(p, "\"79.761.>\", ", 12);
    write_file(path, text);
    assert_int_equal(lt_broker_config_reload_acl(path, c, &a, &why), LT_OK);
    assert_int_equal(lt_acl_check_publish(a, "VN:GOV:000.00.00.H29.760:hotich",
                                          "79.761.hotich.khaisinh", &why),
                     LT_OK);
    lt_acl_destroy(&a);
    /* a queue removed is refused */
    p = strstr(text, "  - name: audit");
    assert_non_null(p);
    *p = '\0';
    write_file(path, text);
    assert_int_equal(lt_broker_config_reload_acl(path, c, &a, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "audit"));
    assert_non_null(strstr(why.msg, "restart"));
    /* a broken file is refused and names itself */
    write_file(path, "acl: [\n");
    assert_int_equal(lt_broker_config_reload_acl(path, c, &a, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "broker.yaml"));
    unlink(path);
    assert_int_equal(lt_broker_config_load(path, &c, &why) != LT_OK, true);
    rmdir(dir);
    free(text);
    lt_broker_config_destroy(&c);
}

/* A temporary directory under TMPDIR into dir (256 bytes). */
static void temp_dir(char dir[256])
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, 256, "%s/lt_bcfg_XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
}

/* Parse text (paths relative to dir) and check its procedure and calendar files: the code,
 * and every fragment of want in the reason. */
static void check_files(const char *dir, const char *text, lt_err code, const char *want0,
                        const char *want1)
{
    char label[300];
    snprintf(label, sizeof label, "%s/broker.yaml", dir);
    lt_broker_cfg *c = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_broker_config_parse(label, text, strlen(text), &c, &why), LT_OK);
    lt_err e = lt_dossier_check_config(c, &why);
    lt_broker_config_destroy(&c);
    if (e != code)
        fail_msg("%s: expected %s, got %s (%s)", text, lt_err_name(code), lt_err_name(e),
                 why.msg);
    if (want0 && !strstr(why.msg, want0))
        fail_msg("'%s' not in '%s'", want0, why.msg);
    if (want1 && !strstr(why.msg, want1))
        fail_msg("'%s' not in '%s'", want1, why.msg);
}

static void procedure_and_calendar_files_that_fail_are_refused_naming_the_key(void **state)
{
    (void)state;
    char dir[256], path[300], proc[300];
    temp_dir(dir);
    snprintf(path, sizeof path, "%s/calendar.yaml", dir);
    write_file(path, "years: [unclosed\n");
    snprintf(proc, sizeof proc, "%s/bad.yaml", dir);
    write_file(proc, "procedure: {code: [\n");
    /* a calendar that is missing or malformed, with procedures or without */
    check_files(dir, "calendar: none.yaml\n", LT_ECONFIG, "calendar: ", "none.yaml");
    check_files(dir, "calendar: calendar.yaml\n", LT_ECONFIG, "calendar: ", "calendar.yaml");
    check_files(dir, "calendar: calendar.yaml\nprocedures: bad.yaml\n", LT_ECONFIG, "calendar: ",
                NULL);
    /* a procedure path that is missing or a file that is malformed */
    check_files(dir, "procedures: [none.yaml]\n", LT_ECONFIG, "procedures[0]: ", "none.yaml");
    check_files(dir, "procedures: [bad.yaml]\n", LT_ECONFIG, "procedures[0]: ", "bad.yaml");
    /* the repository's samples pass */
    char good_text[1024];
    snprintf(good_text, sizeof good_text, "calendar: %s/ops/calendar/vn-holidays.yaml\n"
             "procedures: %s/ops/procedures\n", LT_TEST_SRCDIR, LT_TEST_SRCDIR);
    check_files(dir, good_text, LT_OK, NULL, NULL);
    unlink(path);
    unlink(proc);
    rmdir(dir);
}

static void the_peers_relay_patterns_are_in_the_acl_and_follow_a_reload(void **state)
{
    (void)state;
    static const char a[] = "peers:\n  - name: ward\n    agency: VN:GOV:000.00.00.H29.1:lt\n"
                            "    relay: [\"79.>\"]\n  - name: national\n"
                            "    agency: VN:GOV:000.00.00.G01:lt\n";
    static const char b[] = "peers:\n  - name: ward\n    agency: VN:GOV:000.00.00.H29.1:lt\n"
                            "    relay: [\"79.761.>\"]\n";
    lt_broker_cfg *ca = NULL, *cb = NULL;
    lt_acl *acl = NULL;
    lt_why why = {{0}};
    assert_int_equal(parse(a, &ca, &why), LT_OK);
    assert_int_equal(lt_broker_config_acl(ca, &acl, &why), LT_OK);
    assert_string_equal(lt_acl_peer_name(acl, "VN:GOV:000.00.00.H29.1:lt"), "ward");
    assert_int_equal(lt_acl_check_relay(acl, "VN:GOV:000.00.00.H29.1:lt", "79.760.x", &why),
                     LT_OK);
    /* a peer with no relay patterns is a peer that relays nothing */
    assert_string_equal(lt_acl_peer_name(acl, "VN:GOV:000.00.00.G01:lt"), "national");
    assert_int_equal(lt_acl_check_relay(acl, "VN:GOV:000.00.00.G01:lt", "79.760.x", &why),
                     LT_EACL);
    assert_non_null(strstr(why.msg, "peer broker national may not relay topic 79.760.x"));
    assert_null(lt_acl_peer_name(acl, "VN:GOV:000.00.00.H29.760:hotich"));
    lt_acl_destroy(&acl);
    /* the file read again: ward narrowed, national gone */
    assert_int_equal(parse(b, &cb, &why), LT_OK);
    assert_int_equal(lt_broker_config_acl_next(ca, cb, &acl, &why), LT_OK);
    assert_int_equal(lt_acl_check_relay(acl, "VN:GOV:000.00.00.H29.1:lt", "79.760.x", &why),
                     LT_EACL);
    assert_int_equal(lt_acl_check_relay(acl, "VN:GOV:000.00.00.H29.1:lt", "79.761.x", &why),
                     LT_OK);
    assert_int_equal(lt_acl_check_relay(acl, "VN:GOV:000.00.00.G01:lt", "79.761.x", &why),
                     LT_ENOT_PEER);
    assert_non_null(strstr(why.msg, "no peer broker"));
    lt_acl_destroy(&acl);
    lt_broker_config_destroy(&ca);
    lt_broker_config_destroy(&cb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_documented_example_loads_with_every_value),
        cmocka_unit_test(an_empty_file_gives_working_defaults),
        cmocka_unit_test(each_kind_of_mistake_is_refused_with_file_line_key_and_reason),
        cmocka_unit_test(a_dedup_window_shorter_than_twice_the_clock_skew_is_refused),
        cmocka_unit_test(a_network_config_loads_peers_links_and_identity),
        cmocka_unit_test(the_acl_built_from_the_config_follows_it),
        cmocka_unit_test(reloading_applies_acl_changes_and_refuses_queue_changes),
        cmocka_unit_test(procedure_and_calendar_files_that_fail_are_refused_naming_the_key),
        cmocka_unit_test(the_peers_relay_patterns_are_in_the_acl_and_follow_a_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
