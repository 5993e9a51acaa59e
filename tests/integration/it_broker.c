/*
 * it_broker.c - lienthongd end to end, on 127.0.0.1: ordered delivery of thousands of
 * messages, every rejection with its own code while the broker goes on serving, dedup,
 * ack_wait redelivery, nak with delay, max_deliver -> DLQ -> requeue, QUEUE_FULL
 * back-pressure, a restart with a backlog, a CRL reloaded on SIGHUP, and the reference
 * client's consumer taking Delivers frames by default.
 *
 * One broker for the whole group (tests use their own topics and queues); the restart and
 * SIGHUP tests restart or signal it. Every loop is bounded in count and time.
 */
#include "harness.h"
#include "harness_client.h"

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

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-broker\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 1024\n"
    "  verify_threads: 2\n"
    "  max_frame_bytes: 65536\n"
    "  dedup_window_s: 86400\n"
    "  commit_max_batch: 4096\n"
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
    "  - name: dancu.capnhat\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.hotich.>\"]\n"
    "  - name: it.dup\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.dup.>\"]\n"
    "  - name: it.redeliver\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.redeliver.>\"]\n"
    "    ack_wait_s: 1\n"
    "    max_deliver: 5\n"
    "    backoff_s: [1]\n"
    "  - name: it.nak\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.nak.>\"]\n"
    "    max_deliver: 10\n"
    "    backoff_s: [1]\n"
    "  - name: it.dlq\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.dlq.>\"]\n"
    "    max_deliver: 2\n"
    "    backoff_s: [1]\n"
    "  - name: it.full\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.full.>\"]\n"
    "    max_depth: 5\n"
    "  - name: it.restart\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.restart.>\"]\n"
    "  - name: it.cli\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.cli.>\"]\n"
    "  - name: it.hup\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.hup.>\"]\n"
    "  - name: it.frames.batch\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.frames.>\"]\n"
    "  - name: it.frames.single\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.frames.>\"]\n";

static it_env env;
static lt_signer *quan1, *quan3, *dancu;

static int group_setup(void **state)
{
    (void)state;
    if (!it_env_init(&env) || !it_write_broker_yaml(&env, BROKER_YAML) ||
        !it_broker_start(&env, 30000))
        return -1;
    quan1 = it_signer(&env, "quan1");
    quan3 = it_signer(&env, "quan3");
    dancu = it_signer(&env, "dancu");
    return quan1 && quan3 && dancu ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&quan3);
    lt_signer_destroy(&dancu);
    if (env.pid > 0) {
        int rc = it_broker_stop(&env, 15000);
        if (rc != 0)
            fprintf(stderr, "it_broker: lienthongd exited %d on SIGTERM\n", rc);
    }
    it_env_fini(&env);
    return 0;
}

/* The consumer of queue q with credit, acking when ack. */
static lt_client *consumer(it_sink *s, const char *q, uint32_t credit, bool ack)
{
    lt_client *c = it_client(&env, dancu, 0, 0);
    assert_non_null(c);
    memset(s, 0, sizeof *s);
    s->c = c;
    s->ack = ack;
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(c, q, credit, NULL, it_sink_cb, s, &why), LT_OK);
    return c;
}

/* The queue object named q in the broker's "queues" answer (owned by *root). */
/* Publish n records numbered first.. on topic as s, pipelined; every answer must be an ack;
 * seqs[i] (if not NULL) gets record first+i's seq. */
static void publish_all(lt_client *c, lt_signer *s, const char *topic, uint64_t first, size_t n,
                        uint64_t *seqs)
{
    it_answer *a = calloc(n, sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        uint8_t *e = it_seal(s, topic, first + i, 200, &len, NULL);
        assert_non_null(e);
        assert_int_equal(lt_client_publish(c, e, len, it_answer_cb, &a[i], NULL), LT_OK);
        free(e);
    }
    assert_int_equal(lt_client_flush(c, 60000), LT_OK);
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i].done);
        if (a[i].code != LT_OK)
            fail_msg("record %zu: %s: %s", i, lt_err_name(a[i].code), a[i].reason);
        assert_false(a[i].duplicate);
        if (i > 0)
            assert_true(a[i].seq > a[i - 1].seq); /* stored in the order sent */
        if (seqs != NULL)
            seqs[i] = a[i].seq;
    }
    free(a);
}

static void thousands_of_messages_are_delivered_in_order_and_acked(void **state)
{
    (void)state;
    enum { N = 3000 };
    lt_client *pub = it_client(&env, NULL, 256, 0);
    assert_non_null(pub);
    uint64_t *seqs = calloc(N, sizeof *seqs);
    publish_all(pub, quan1, "79.760.hotich.khaisinh", 0, N, seqs);
    it_sink s;
    lt_client *c = consumer(&s, "dancu.capnhat", 100, true);
    assert_true(it_sink_wait(&s, N, 60000));
    assert_int_equal(s.n, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(s.v[i].n, i);        /* in publish order */
        assert_int_equal(s.v[i].seq, seqs[i]); /* with the seq its ack said */
        assert_int_equal(s.v[i].count, 1);
    }
    /* acked: nothing more comes, and the queue is empty */
    lt_client_poll(c, 300, NULL);
    assert_int_equal(s.n, N);
    lt_client *admin = it_client(&env, dancu, 0, 0);
    json_object *root = NULL;
    int64_t depth = -1;
    for (int i = 0; i < 100 && depth != 0; i++) { /* acks commit asynchronously */
        json_object *q = it_queue_info(admin, "dancu.capnhat", &root);
        depth = it_json_int(q, "depth");
        json_object_put(root);
        if (depth != 0)
            lt_client_poll(admin, 50, NULL);
    }
    assert_int_equal(depth, 0);
    lt_client_close(&admin);
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
    free(seqs);
}

/* ---- rejections ---------------------------------------------------------------------- */

enum tamper { T_SIG, T_PAYLOAD, T_SOURCE };

/* A copy of env changed as what says; T_SOURCE re-signs a header claiming source with s. */
static uint8_t *tamper(const uint8_t *in, size_t len, enum tamper what, lt_signer *s,
                       const char *source, size_t *out_len)
{
    Lienthong__V1__Envelope *e = lienthong__v1__envelope__unpack(NULL, len, in);
    assert_non_null(e);
    uint8_t sig[LT_PKI_SIG_MAX];
    uint8_t *hdr_buf = NULL;
    ProtobufCBinaryData old_hdr = e->header, old_sig = e->signature;
    if (what == T_SIG) {
        e->signature.data[e->signature.len - 1] ^= 0x01;
    } else if (what == T_PAYLOAD) {
        e->payload.data[0] ^= 0x01;
    } else {
        Lienthong__V1__Header *h =
            lienthong__v1__header__unpack(NULL, e->header.len, e->header.data);
        assert_non_null(h);
        char *old = h->source;
        h->source = (char *)source;
        size_t hl = lienthong__v1__header__get_packed_size(h);
        hdr_buf = malloc(hl);
        lienthong__v1__header__pack(h, hdr_buf);
        h->source = old;
        lienthong__v1__header__free_unpacked(h, NULL);
        size_t sl = 0;
        assert_int_equal(lt_signer_sign(s, LT_PKI_DOMAIN_ENVELOPE, hdr_buf, hl, sig, &sl, NULL),
                         LT_OK);
        e->header.data = hdr_buf; /* the originals are put back before freeing */
        e->header.len = hl;
        e->signature.data = sig;
        e->signature.len = sl;
    }
    size_t n = lienthong__v1__envelope__get_packed_size(e);
    uint8_t *out = malloc(n);
    lienthong__v1__envelope__pack(e, out);
    *out_len = n;
    e->header = old_hdr;
    e->signature = old_sig;
    lienthong__v1__envelope__free_unpacked(e, NULL);
    free(hdr_buf);
    return out;
}

struct expect {
    const char *what;
    const char *code; /* lt_err name, "OK" for an ack */
};

static void each_rejection_has_its_own_code_while_the_broker_serves_others(void **state)
{
    (void)state;
    lt_signer *otherca = it_signer(&env, "quan1-otherca");
    lt_signer *revoked = it_signer(&env, "quan1-revoked");
    lt_signer *expired = it_signer(&env, "quan1-expired");
    assert_non_null(otherca);
    assert_non_null(revoked);
    assert_non_null(expired);
    const char *t = "79.760.hotich.khaisinh";
    struct {
        uint8_t *env;
        size_t len;
        const char *code;
        const char *what;
    } v[16];
    size_t n = 0, len = 0;
    uint8_t *good = NULL;
#define ADD(e_, l_, code_, what_) (v[n].env = (e_), v[n].len = (l_), v[n].code = (code_), \
                                   v[n].what = (what_), n++)
    good = it_seal(quan1, t, 1000001, 10, &len, NULL);
    ADD(good, len, "OK", "valid");
    good = it_seal(quan1, t, 1000002, 10, &len, NULL);
    ADD(tamper(good, len, T_SIG, NULL, NULL, &len), len, "BAD_SIGNATURE", "forged signature");
    free(good);
    good = it_seal(quan1, t, 1000003, 10, &len, NULL);
    ADD(tamper(good, len, T_PAYLOAD, NULL, NULL, &len), len, "BAD_PAYLOAD_HASH",
        "tampered payload");
    free(good);
    good = it_seal(quan3, t, 1000004, 10, &len, NULL);
    ADD(tamper(good, len, T_SOURCE, quan3, "VN:GOV:000.00.00.H29.760:hotich", &len), len,
        "AGENCY_MISMATCH", "district 3 signing as district 1");
    free(good);
    good = it_seal(quan1, t, 1000005, 10, &len, NULL);
    ADD(good, len, "OK", "valid");
    ADD(it_seal(otherca, t, 1000006, 10, &len, NULL), len, "UNKNOWN_CA", "unknown CA");
    ADD(it_seal(revoked, t, 1000007, 10, &len, NULL), len, "CERT_REVOKED", "revoked cert");
    ADD(it_seal(expired, t, 1000008, 10, &len, NULL), len, "CERT_EXPIRED", "expired cert");
    ADD(it_seal(quan3, t, 1000009, 10, &len, NULL), len, "ACL_DENIED",
        "district 3 on district 1's topic");
    ADD(it_seal(quan1, "79.760.nothing.here", 1000010, 10, &len, NULL), len, "NO_ROUTE",
        "unknown topic");
    ADD(it_seal(quan1, t, 1000011, 10, &len, NULL), len, "OK", "valid");
#undef ADD
    /* Through the CLI: `lienthong pub --file-envelopes` sends them unchanged. */
    char path[IT_PATH_MAX];
    lt_envfile_writer *w = NULL;
    assert_int_equal(lt_envfile_open_writer(it_path(&env, "forged.env", path), &w, NULL), LT_OK);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(v[i].env);
        assert_int_equal(lt_envfile_write(w, v[i].env, v[i].len, NULL), LT_OK);
    }
    assert_int_equal(lt_envfile_close_writer(&w, NULL), LT_OK);
    char cfg[IT_PATH_MAX];
    int rc = it_cli(&env, "forged.out", 60000, "pub", "-c",
                    it_path(&env, "agencies/quan1.yaml", cfg), "--file-envelopes", path,
                    "--window", "1", (char *)NULL);
    assert_int_equal(rc, 1); /* some were refused */
    char *out = it_read_file(&env, "forged.out", NULL);
    assert_non_null(out);
    size_t lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
        json_object *o = json_tokener_parse(line);
        assert_non_null(o);
        int64_t tag = it_json_int(o, "tag");
        assert_true(tag >= 1 && (size_t)tag <= n);
        json_object *code = NULL;
        const char *got = json_object_object_get_ex(o, "code", &code)
                              ? json_object_get_string(code)
                              : "OK";
        if (strcmp(got, v[tag - 1].code) != 0)
            fail_msg("%s: expected %s, got %s (%s)", v[tag - 1].what, v[tag - 1].code, got,
                     line);
        json_object_put(o);
    }
    assert_int_equal(lines, n);
    free(out);
    for (size_t i = 0; i < n; i++)
        free(v[i].env);
    lt_signer_destroy(&otherca);
    lt_signer_destroy(&revoked);
    lt_signer_destroy(&expired);
}

static void replay_from_a_seq_or_a_time_streams_acked_history_without_acks(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    int64_t t_before = lt_env_now_ms();
    uint64_t seqs[10];
    publish_all(pub, quan1, "79.760.hotich.replay", 5000, 10, seqs);
    lt_client_close(&pub);
    it_sink s;
    lt_client *c = consumer(&s, "dancu.capnhat", 100, true); /* consume and ack: gone */
    assert_true(it_sink_wait(&s, 10, 10000));
    lt_client_close(&c);
    it_sink_fini(&s);
    /* from a seq: the 10 acked messages come again, marked replay, needing no ack */
    lt_client *r = it_client(&env, dancu, 0, 0);
    memset(&s, 0, sizeof s);
    s.c = r;
    lt_client_replay from = {.from_seq = seqs[0]};
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(r, "dancu.capnhat", 4, &from, it_sink_cb, &s, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s, 10, 10000)); /* credit 4 < 10: credit flows back by itself */
    for (size_t i = 0; i < 10; i++) {
        assert_true(s.v[i].replay);
        assert_int_equal(s.v[i].seq, seqs[i]);
        assert_int_equal(s.v[i].n, 5000 + i);
    }
    lt_client_close(&r);
    it_sink_fini(&s);
    /* from a time: the same ones (and nothing older than that time) */
    r = it_client(&env, dancu, 0, 0);
    memset(&s, 0, sizeof s);
    s.c = r;
    from = (lt_client_replay){.from_unix_ms = t_before};
    assert_int_equal(lt_client_subscribe(r, "dancu.capnhat", 100, &from, it_sink_cb, &s, &why),
                     LT_OK);
    assert_true(it_sink_wait(&s, 10, 10000));
    assert_int_equal(s.v[0].seq, seqs[0]);
    lt_client_close(&r);
    it_sink_fini(&s);
}

struct refusal {
    lt_err code;
    char reason[LT_WHY_MAX];
};

static void on_refusal(void *user, lt_err code, const char *reason)
{
    struct refusal *x = user;
    x->code = code;
    snprintf(x->reason, sizeof x->reason, "%s", reason);
}

enum { NFRAMES = 40 };

/* What a deliver callback saw, copied (the envelope malloc'ed). */
struct seen {
    char queue[64];
    uint64_t seq;
    uint32_t count;
    bool replay;
    uint8_t *env;
    size_t env_len;
    size_t nhops;
};

struct seen_all {
    lt_client *c;
    struct seen v[NFRAMES];
    size_t n;
};

static void on_seen(void *user, const lt_client_delivery *d)
{
    struct seen_all *s = user;
    if (s->n < NFRAMES) {
        struct seen *x = &s->v[s->n];
        snprintf(x->queue, sizeof x->queue, "%s", d->queue);
        x->seq = d->seq;
        x->count = d->delivery_count;
        x->replay = d->replay;
        x->env = malloc(d->envelope_len);
        if (x->env != NULL)
            memcpy(x->env, d->envelope, d->envelope_len);
        x->env_len = d->envelope_len;
        x->nhops = d->nhops;
    }
    s->n++;
    lt_client_ack(s->c, d->queue, d->seq);
}

/* Subscribe c to q with credit for every record, take NFRAMES deliveries into s and ack
 * them; the number of frames the client dispatched meanwhile. */
static unsigned take_all(lt_client *c, const char *q, struct seen_all *s)
{
    s->c = c;
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(c, q, 2 * NFRAMES, NULL, on_seen, s, &why), LT_OK);
    unsigned frames = 0;
    int64_t deadline = it_now_ms() + 30000;
    while (s->n < NFRAMES && it_now_ms() < deadline) {
        unsigned k = 0;
        assert_int_equal(lt_client_poll(c, 100, &k), LT_OK);
        frames += k;
    }
    assert_int_equal(s->n, NFRAMES);
    assert_int_equal(lt_client_flush(c, 10000), LT_OK);
    return frames;
}

/* The reference client's default: a consumer takes its deliveries several to a Delivers
 * frame, and its callback sees each of them exactly as a consumer that asked for one DELIVER
 * frame per record (lt_client_opts.single_deliveries) sees it. The two queues hold the same
 * records (same seqs, same envelopes), all stored before either consumer subscribes. */
static void a_default_consumer_takes_delivers_frames_and_sees_what_a_single_one_sees(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    assert_non_null(pub);
    publish_all(pub, quan1, "79.760.frames.khaisinh", 0, NFRAMES, NULL);
    struct seen_all *b = calloc(1, sizeof *b), *one = calloc(1, sizeof *one);
    assert_true(b != NULL && one != NULL);
    lt_client *cb = it_client(&env, dancu, 0, 0);
    lt_client *cs = it_client_single(&env, dancu);
    assert_true(cb != NULL && cs != NULL);
    unsigned fb = take_all(cb, "it.frames.batch", b);
    unsigned fs = take_all(cs, "it.frames.single", one);
    printf("%d deliveries: %u frames by default, %u with single_deliveries\n", NFRAMES, fb, fs);
    /* a DELIVER frame carries one delivery: fewer frames than deliveries means some frame
     * carried several */
    assert_true(fb < NFRAMES);
    assert_true(fs >= NFRAMES);
    for (size_t i = 0; i < NFRAMES; i++) {
        const struct seen *x = &b->v[i], *y = &one->v[i];
        assert_string_equal(x->queue, "it.frames.batch");
        assert_string_equal(y->queue, "it.frames.single");
        assert_int_equal(x->seq, y->seq);
        if (i > 0)
            assert_true(x->seq > b->v[i - 1].seq); /* in seq order */
        assert_int_equal(x->count, 1);
        assert_int_equal(y->count, 1);
        assert_false(x->replay);
        assert_false(y->replay);
        assert_int_equal(x->nhops, y->nhops);
        assert_non_null(x->env);
        assert_non_null(y->env);
        assert_int_equal(x->env_len, y->env_len);
        assert_memory_equal(x->env, y->env, x->env_len);
    }
    for (size_t i = 0; i < NFRAMES; i++) {
        free(b->v[i].env);
        free(one->v[i].env);
    }
    free(b);
    free(one);
    lt_client_close(&cs);
    lt_client_close(&cb);
    lt_client_close(&pub);
}

static void subscribing_to_an_unknown_or_a_foreign_queue_is_refused(void **state)
{
    (void)state;
    struct {
        lt_signer *who;
        const char *queue;
        lt_err code;
    } cases[] = {{dancu, "no.such.queue", LT_ENOQUEUE}, {quan1, "dancu.capnhat", LT_EACL}};
    for (size_t i = 0; i < 2; i++) {
        lt_client *c = it_client(&env, cases[i].who, 0, 0);
        assert_non_null(c);
        struct refusal x = {LT_OK, ""};
        lt_client_set_error_cb(c, on_refusal, &x);
        it_sink s = {.c = c};
        lt_why why = {{0}};
        assert_int_equal(lt_client_subscribe(c, cases[i].queue, 10, NULL, it_sink_cb, &s, &why),
                         LT_OK);
        for (int k = 0; k < 100 && x.code == LT_OK; k++)
            lt_client_poll(c, 100, NULL);
        assert_int_equal(x.code, cases[i].code);
        assert_true(strlen(x.reason) > 0);
        assert_int_equal(lt_client_last_error(c, &why), cases[i].code);
        lt_client_close(&c);
        it_sink_fini(&s);
    }
}

/* Publish.batched_ack: the publishes that ask for it are answered in Acks frames (several
 * ACKs to a frame when they commit together), the others one ACK frame each, on the same
 * connection. */
static void acks_come_batched_only_for_publishes_that_ask(void **state)
{
    (void)state;
    enum { BATCHED = 40, SINGLE = 10 };
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sock, env.endpoint), 0);
    for (int i = 0; i < BATCHED + SINGLE; i++) {
        size_t len = 0;
        uint8_t *e =
            it_seal(quan1, "79.760.hotich.khaisinh", 3000000 + (uint64_t)i, 10, &len, NULL);
        assert_non_null(e);
        Lienthong__V1__Publish p = LIENTHONG__V1__PUBLISH__INIT;
        p.tag = i < BATCHED ? (uint64_t)i + 1 : (uint64_t)(i - BATCHED) + 1001;
        p.envelope.data = e;
        p.envelope.len = len;
        p.batched_ack = i < BATCHED;
        Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
        f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
        f.publish = &p;
        it_frame_send(sock, &f);
        free(e);
    }
    bool seen[BATCHED + SINGLE] = {false};
    size_t answered = 0, acks_frames = 0, widest = 0;
    int64_t deadline = it_now_ms() + 15000;
    while (answered < BATCHED + SINGLE && it_now_ms() < deadline) {
        Lienthong__V1__Frame *r = it_frame_recv(sock, 200);
        if (r == NULL)
            continue;
        if (r->kind_case == LIENTHONG__V1__FRAME__KIND_ACKS) {
            acks_frames++;
            if (r->acks->n_acks > widest)
                widest = r->acks->n_acks;
            for (size_t k = 0; k < r->acks->n_acks; k++) {
                uint64_t t = r->acks->acks[k]->tag;
                assert_true(t >= 1 && t <= BATCHED); /* only what asked for it */
                assert_false(seen[t - 1]);
                assert_true(r->acks->acks[k]->seq > 0);
                seen[t - 1] = true;
                answered++;
            }
        } else if (r->kind_case == LIENTHONG__V1__FRAME__KIND_ACK) {
            uint64_t t = r->ack->tag;
            if (!(t >= 1001 && t < 1001 + SINGLE))
                fail_msg("ACK frame for tag %llu", (unsigned long long)t);
            assert_false(seen[BATCHED + t - 1001]);
            seen[BATCHED + t - 1001] = true;
            answered++;
        } else {
            fail_msg("unexpected frame kind %d", (int)r->kind_case);
        }
        lienthong__v1__frame__free_unpacked(r, NULL);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    printf("%d batched publishes answered in %zu Acks frames (widest %zu)\n", BATCHED, acks_frames,
           widest);
    assert_int_equal(answered, BATCHED + SINGLE);
    assert_true(acks_frames < BATCHED && widest >= 2); /* committed together, answered so */
}

static void malformed_and_oversized_frames_are_refused_and_the_broker_goes_on(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sock, env.endpoint), 0);
    /* garbage that is no Frame at all: maybe answered, never fatal */
    assert_int_equal(zmq_send(sock, "\xff\xff\xff\xff garbage", 13, 0), 13);
    /* a PUBLISH whose envelope is garbage: NACK MALFORMED for its tag */
    Lienthong__V1__Publish p = LIENTHONG__V1__PUBLISH__INIT;
    p.tag = 77;
    p.envelope.data = (uint8_t *)"not an envelope";
    p.envelope.len = 15;
    Lienthong__V1__Frame f = LIENTHONG__V1__FRAME__INIT;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PUBLISH;
    f.publish = &p;
    it_frame_send(sock, &f);
    /* an oversized PUBLISH (over max_frame_bytes = 65536): NACK TOO_LARGE for its tag */
    uint8_t *big = calloc(1, 70000);
    p.tag = 78;
    p.envelope.data = big;
    p.envelope.len = 70000;
    it_frame_send(sock, &f);
    free(big);
    /* then a ping: the broker still answers */
    Lienthong__V1__Ping ping = LIENTHONG__V1__PING__INIT;
    ping.nonce = 4242;
    f.kind_case = LIENTHONG__V1__FRAME__KIND_PING;
    f.ping = &ping;
    it_frame_send(sock, &f);
    bool got77 = false, got78 = false, pong = false;
    int64_t deadline = it_now_ms() + 10000;
    while (!(got77 && got78 && pong) && it_now_ms() < deadline) {
        Lienthong__V1__Frame *r = it_frame_recv(sock, 200);
        if (r == NULL)
            continue;
        if (r->kind_case == LIENTHONG__V1__FRAME__KIND_NACK && r->nack->tag == 77) {
            assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__MALFORMED);
            got77 = true;
        } else if (r->kind_case == LIENTHONG__V1__FRAME__KIND_NACK && r->nack->tag == 78) {
            assert_int_equal(r->nack->code, LIENTHONG__V1__NACK_CODE__TOO_LARGE);
            got78 = true;
        } else if (r->kind_case == LIENTHONG__V1__FRAME__KIND_PONG) {
            assert_int_equal(r->pong->nonce, 4242);
            pong = true;
        }
        lienthong__v1__frame__free_unpacked(r, NULL);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    assert_true(got77);
    assert_true(got78);
    assert_true(pong);
    assert_true(it_broker_alive(&env));
    /* and the library's own publish of an oversized envelope gets TOO_LARGE too */
    lt_client *c = it_client(&env, NULL, 0, 0);
    size_t len = 0;
    uint8_t *e = it_seal(quan1, "79.760.hotich.khaisinh", 2000000, 70000, &len, NULL);
    it_answer a;
    assert_true(it_publish_wait(c, e, len, &a, 10000));
    assert_string_equal(lt_err_name(a.code), "TOO_LARGE");
    free(e);
    lt_client_close(&c);
}

static void a_duplicate_id_is_acked_as_duplicate_and_delivered_once(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    size_t len = 0;
    uint8_t *e = it_seal(quan1, "79.760.dup.x", 7, 100, &len, NULL);
    it_answer a1, a2;
    assert_true(it_publish_wait(pub, e, len, &a1, 10000));
    assert_int_equal(a1.code, LT_OK);
    assert_false(a1.duplicate);
    assert_true(it_publish_wait(pub, e, len, &a2, 10000));
    assert_int_equal(a2.code, LT_OK);
    assert_true(a2.duplicate);
    free(e);
    it_sink s;
    lt_client *c = consumer(&s, "it.dup", 10, true);
    assert_true(it_sink_wait(&s, 1, 10000));
    assert_false(it_sink_wait(&s, 2, 1500)); /* nothing more comes */
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0].n, 7);
    assert_int_equal(s.v[0].seq, a1.seq);
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
}

static void an_unacked_delivery_is_redelivered_after_ack_wait(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    publish_all(pub, quan1, "79.760.redeliver.x", 300, 1, NULL);
    it_sink s;
    lt_client *c = consumer(&s, "it.redeliver", 10, false); /* never acks */
    assert_true(it_sink_wait(&s, 1, 10000));
    assert_int_equal(s.v[0].count, 1);
    assert_true(it_sink_wait(&s, 2, 10000)); /* ack_wait is 1 s */
    assert_int_equal(s.v[1].n, 300);         /* the same message, the same id */
    assert_memory_equal(s.v[1].id, s.v[0].id, LT_ENV_MESSAGE_ID_LEN);
    assert_int_equal(s.v[1].seq, s.v[0].seq);
    assert_int_equal(s.v[1].count, 2);
    assert_true(s.v[1].at_ms - s.v[0].at_ms >= 900);
    assert_int_equal(lt_client_ack(c, "it.redeliver", s.v[1].seq), LT_OK);
    assert_int_equal(lt_client_flush(c, 5000), LT_OK);
    assert_false(it_sink_wait(&s, 3, 3000)); /* acked: no third delivery */
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
}

static void a_nak_with_delay_redelivers_no_sooner(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    publish_all(pub, quan1, "79.760.nak.x", 400, 1, NULL);
    it_sink s;
    lt_client *c = consumer(&s, "it.nak", 10, false);
    assert_true(it_sink_wait(&s, 1, 10000));
    assert_int_equal(lt_client_nak(c, "it.nak", s.v[0].seq, 700, "try later"), LT_OK);
    assert_true(it_sink_wait(&s, 2, 10000));
    assert_int_equal(s.v[1].seq, s.v[0].seq);
    assert_int_equal(s.v[1].count, 2);
    assert_true(s.v[1].at_ms - s.v[0].at_ms >= 650);
    assert_int_equal(lt_client_ack(c, "it.nak", s.v[1].seq), LT_OK);
    assert_false(it_sink_wait(&s, 3, 1500));
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
}

static void max_deliver_dead_letters_with_the_reason_and_requeue_delivers_again(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    uint64_t seq = 0;
    publish_all(pub, quan1, "79.760.dlq.x", 500, 1, &seq);
    it_sink s;
    lt_client *c = consumer(&s, "it.dlq", 10, false);
    assert_true(it_sink_wait(&s, 1, 10000));
    assert_int_equal(lt_client_nak(c, "it.dlq", seq, 0, "cannot parse the birth date"), LT_OK);
    assert_true(it_sink_wait(&s, 2, 10000));
    assert_int_equal(s.v[1].count, 2);
    assert_int_equal(lt_client_nak(c, "it.dlq", seq, 0, "cannot parse the birth date"), LT_OK);
    assert_int_equal(lt_client_flush(c, 5000), LT_OK);
    assert_false(it_sink_wait(&s, 3, 1500)); /* max_deliver 2: not delivered again */
    /* it is in the DLQ with its reason and delivery count */
    char *json = NULL;
    lt_why why = {{0}};
    json_object *root = NULL, *arr = NULL;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(lt_client_admin(c, "dlq.ls", "it.dlq", NULL, 0, 0, &json, &why), LT_OK);
        root = json_tokener_parse(json);
        free(json);
        assert_non_null(root);
        arr = root;
        if (!json_object_is_type(arr, json_type_array))
            assert_true(json_object_object_get_ex(root, "dead", &arr));
        if (json_object_array_length(arr) > 0)
            break;
        json_object_put(root);
        root = NULL;
        lt_client_poll(c, 100, NULL);
    }
    assert_non_null(root);
    assert_int_equal(json_object_array_length(arr), 1);
    json_object *d = json_object_array_get_idx(arr, 0), *reason = NULL;
    assert_int_equal(it_json_int(d, "seq"), (int64_t)seq);
    assert_int_equal(it_json_int(d, "deliveries"), 2);
    json_object *code = NULL;
    assert_true(json_object_object_get_ex(d, "code", &code));
    assert_string_equal(json_object_get_string(code), "MAX_DELIVER");
    assert_true(json_object_object_get_ex(d, "reason", &reason));
    assert_non_null(strstr(json_object_get_string(reason), "cannot parse the birth date"));
    json_object_put(root);
    /* requeue through the CLI: delivered again, then acked for good */
    char path[IT_PATH_MAX], seqs[32];
    snprintf(seqs, sizeof seqs, "%llu", (unsigned long long)seq);
    assert_int_equal(it_cli(&env, "dlq-ls.out", 30000, "dlq", "-c",
                            it_path(&env, "agencies/dancu.yaml", path), "ls", "it.dlq",
                            (char *)NULL),
                     0);
    char *ls = it_read_file(&env, "dlq-ls.out", NULL);
    assert_non_null(ls);
    assert_non_null(strstr(ls, "cannot parse the birth date"));
    free(ls);
    assert_int_equal(it_cli(&env, "dlq-requeue.out", 30000, "dlq", "-c",
                            it_path(&env, "agencies/dancu.yaml", path), "requeue", "it.dlq",
                            seqs, (char *)NULL),
                     0);
    s.ack = true;
    assert_true(it_sink_wait(&s, 3, 10000));
    assert_int_equal(s.v[2].n, 500);
    assert_false(it_sink_wait(&s, 4, 1500));
    assert_int_equal(lt_client_admin(c, "dlq.ls", "it.dlq", NULL, 0, 0, &json, &why), LT_OK);
    root = json_tokener_parse(json);
    free(json);
    arr = root;
    if (!json_object_is_type(arr, json_type_array))
        assert_true(json_object_object_get_ex(root, "dead", &arr));
    assert_int_equal(json_object_array_length(arr), 0);
    json_object_put(root);
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
}

static void a_full_queue_refuses_publishes_with_queue_full_until_drained(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    publish_all(pub, quan1, "79.760.full.x", 600, 5, NULL); /* max_depth 5 */
    size_t len = 0;
    uint8_t *e = it_seal(quan1, "79.760.full.x", 605, 10, &len, NULL);
    it_answer a;
    assert_true(it_publish_wait(pub, e, len, &a, 10000));
    assert_string_equal(lt_err_name(a.code), "QUEUE_FULL");
    assert_true(strlen(a.reason) > 0);
    /* drain: room again, and the refused message can be republished */
    it_sink s;
    lt_client *c = consumer(&s, "it.full", 10, true);
    assert_true(it_sink_wait(&s, 5, 10000));
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) { /* acks commit asynchronously */
        assert_true(it_publish_wait(pub, e, len, &a, 10000));
        ok = a.code == LT_OK;
        if (!ok)
            lt_client_poll(c, 100, NULL);
    }
    assert_true(ok);
    assert_true(it_sink_wait(&s, 6, 10000));
    assert_int_equal(s.v[5].n, 605);
    free(e);
    lt_client_close(&c);
    lt_client_close(&pub);
    it_sink_fini(&s);
}

static void a_restart_with_a_backlog_loses_nothing(void **state)
{
    (void)state;
    enum { N = 500 };
    lt_client *pub = it_client(&env, NULL, 128, 0);
    publish_all(pub, quan1, "79.760.restart.x", 0, N, NULL);
    lt_client_close(&pub);
    assert_int_equal(it_broker_stop(&env, 15000), 0);
    assert_true(it_broker_start(&env, 30000));
    it_sink s;
    lt_client *c = consumer(&s, "it.restart", 100, true);
    assert_true(it_sink_wait(&s, N, 30000));
    assert_false(it_sink_wait(&s, N + 1, 1000));
    for (size_t i = 0; i < N; i++)
        assert_int_equal(s.v[i].n, i);
    lt_client_close(&c);
    it_sink_fini(&s);
}

static void pub_and_sub_commands_carry_records_end_to_end(void **state)
{
    (void)state;
    char cfg[IT_PATH_MAX], dcfg[IT_PATH_MAX];
    it_path(&env, "agencies/quan1.yaml", cfg);
    it_path(&env, "agencies/dancu.yaml", dcfg);
    int rc = it_cli(&env, "cli-pub.out", 60000, "pub", "-c", cfg, "-t", "79.760.cli.khaisinh",
                    "--type", "BirthRegistration", "--json",
                    "{\"registrationNumber\":\"42\",\"note\":\"Khai sinh đúng hạn\"}",
                    "--count", "20", (char *)NULL);
    assert_int_equal(rc, 0);
    char *out = it_read_file(&env, "cli-pub.out", NULL);
    size_t lines = 0;
    for (char *p = out; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        lines++;
    assert_int_equal(lines, 20);
    free(out);
    rc = it_cli(&env, "cli-sub.out", 60000, "sub", "-c", dcfg, "-q", "it.cli", "-n", "20",
                "--timeout", "10", (char *)NULL);
    assert_int_equal(rc, 0);
    out = it_read_file(&env, "cli-sub.out", NULL);
    assert_non_null(out);
    lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"), lines++) {
        json_object *o = json_tokener_parse(line), *v = NULL, *rec = NULL;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "verified", &v));
        assert_true(json_object_get_boolean(v));
        assert_true(json_object_object_get_ex(o, "source", &v));
        assert_string_equal(json_object_get_string(v), "VN:GOV:000.00.00.H29.760:hotich");
        assert_true(json_object_object_get_ex(o, "record", &rec));
        assert_true(json_object_object_get_ex(rec, "note", &v));
        assert_string_equal(json_object_get_string(v), "Khai sinh đúng hạn");
        json_object_put(o);
    }
    assert_int_equal(lines, 20);
    free(out);
    /* acked by sub: a second sub finds nothing */
    rc = it_cli(&env, "cli-sub2.out", 60000, "sub", "-c", dcfg, "-q", "it.cli", "--timeout", "2",
                (char *)NULL);
    assert_int_equal(rc, 0);
    out = it_read_file(&env, "cli-sub2.out", NULL);
    assert_string_equal(out, "");
    free(out);
    /* queues lists it */
    char vcfg[IT_PATH_MAX];
    rc = it_cli(&env, "queues.out", 30000, "queues", "-c",
                it_path(&env, "agencies/vanphong.yaml", vcfg), (char *)NULL);
    assert_int_equal(rc, 0);
    out = it_read_file(&env, "queues.out", NULL);
    assert_non_null(strstr(out, "it.cli"));
    free(out);
}

static void sighup_reloads_a_crl_that_now_revokes_a_certificate(void **state)
{
    (void)state;
    lt_client *pub = it_client(&env, NULL, 0, 0);
    size_t len = 0;
    uint8_t *e = it_seal(quan3, "79.770.hup.x", 1, 10, &len, NULL);
    it_answer a;
    assert_true(it_publish_wait(pub, e, len, &a, 10000));
    assert_int_equal(a.code, LT_OK);
    free(e);
    /* revoke district 3's certificate in the CRL file, then SIGHUP */
    assert_true(it_revoke(&env, "quan3"));
    assert_true(it_broker_hup(&env));
    bool revoked = false;
    for (uint64_t i = 2; i < 200 && !revoked; i++) { /* the reload is asynchronous */
        e = it_seal(quan3, "79.770.hup.x", i, 10, &len, NULL);
        assert_true(it_publish_wait(pub, e, len, &a, 10000));
        free(e);
        revoked = a.code == LT_ECERT_REVOKED;
        if (!revoked) {
            assert_int_equal(a.code, LT_OK);
            lt_client_poll(pub, 50, NULL);
        }
    }
    assert_true(revoked);
    assert_true(it_broker_alive(&env));
    lt_client_close(&pub);

    /* A record accepted before the revocation does not verify for its consumer now: sub
     * shows it and NAKs it with the reason, it does not ack it away. */
    lt_signer *vp = it_signer(&env, "vanphong");
    assert_non_null(vp);
    lt_client *admin = it_client(&env, vp, 0, 0);
    assert_non_null(admin);
    json_object *root = NULL;
    int64_t before = it_json_int(it_queue_info(admin, "it.hup", &root), "depth");
    json_object_put(root);
    assert_true(before >= 1);
    char dcfg[IT_PATH_MAX];
    int rc = it_cli(&env, "cli-hup.out", 60000, "sub", "-c",
                    it_path(&env, "agencies/dancu.yaml", dcfg), "-q", "it.hup", "-n", "1",
                    "--timeout", "10", (char *)NULL);
    assert_int_equal(rc, 0);
    char *out = it_read_file(&env, "cli-hup.out", NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"verified\":false"));
    assert_non_null(strstr(out, "CERT_REVOKED"));
    free(out);
    /* an ack would take it out of the queue within moments: watch a while (bounded) */
    int64_t after = before;
    for (int64_t until = it_now_ms() + 1500; after == before && it_now_ms() < until;) {
        after = it_json_int(it_queue_info(admin, "it.hup", &root), "depth");
        json_object_put(root);
        usleep(50000);
    }
    assert_int_equal(after, before);
    lt_client_close(&admin);
    lt_signer_destroy(&vp);
}

/* A record that waited in a queue longer than the clock skew still verifies for sub: every
 * consumer verifies at the record's own time (lt_env_verify_received). */
static void sub_verifies_a_record_that_waited_longer_than_the_clock_skew(void **state)
{
    (void)state;
    char *yaml = it_read_file(&env, "agencies/dancu.yaml", NULL);
    assert_non_null(yaml);
    char *at = strstr(yaml, "clock_skew_s: 300");
    assert_non_null(at);
    memcpy(at, "clock_skew_s: 1  ", 17);
    assert_true(it_write_file(&env, "agencies/dancu-skew1.yaml", yaml));
    free(yaml);
    lt_client *c = it_client(&env, NULL, 0, 0);
    size_t len = 0;
    uint8_t *e = it_seal(quan1, "79.760.cli.khaisinh", 77, 0, &len, NULL);
    it_answer a;
    assert_true(it_publish_wait(c, e, len, &a, 10000));
    assert_int_equal(a.code, LT_OK);
    free(e);
    lt_client_close(&c);
    usleep(2500 * 1000); /* the point of the test: the record waits past the 1 s skew */
    char dcfg[IT_PATH_MAX];
    int rc = it_cli(&env, "cli-skew.out", 60000, "sub", "-c",
                    it_path(&env, "agencies/dancu-skew1.yaml", dcfg), "-q", "it.cli", "-n", "1",
                    "--timeout", "10", (char *)NULL);
    assert_int_equal(rc, 0);
    char *out = it_read_file(&env, "cli-skew.out", NULL);
    assert_non_null(out);
    json_object *o = json_tokener_parse(out), *v = NULL;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "verified", &v));
    if (!json_object_get_boolean(v))
        fail_msg("sub refused a record that waited: %s", out);
    json_object_put(o);
    free(out);
}

/* The help and the code table say what travels on the wire: tag is the publish's number,
 * codes are listed with their NackCode numbers. */
static void codes_and_pub_help_describe_the_wire(void **state)
{
    (void)state;
    assert_int_equal(it_cli(&env, "codes.out", 10000, "codes", NULL), 0);
    char *out = it_read_file(&env, "codes.out", NULL);
    assert_non_null(out);
    const ProtobufCEnumDescriptor *d = &lienthong__v1__nack_code__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        char line[80];
        snprintf(line, sizeof line, "\n%4d  %s ", d->values[i].value, d->values[i].name);
        assert_non_null(strstr(out, line));
    }
    assert_non_null(strstr(out, "   -  NO_MEMORY "));
    free(out);
    assert_int_equal(it_cli(&env, "pubhelp.out", 10000, "pub", "--help", NULL), 0);
    out = it_read_file(&env, "pubhelp.out", NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "tag: the publish's number on this connection"));
    assert_null(strstr(out, "1 for an ack"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thousands_of_messages_are_delivered_in_order_and_acked),
        cmocka_unit_test(each_rejection_has_its_own_code_while_the_broker_serves_others),
        cmocka_unit_test(malformed_and_oversized_frames_are_refused_and_the_broker_goes_on),
        cmocka_unit_test(acks_come_batched_only_for_publishes_that_ask),
        cmocka_unit_test(a_duplicate_id_is_acked_as_duplicate_and_delivered_once),
        cmocka_unit_test(an_unacked_delivery_is_redelivered_after_ack_wait),
        cmocka_unit_test(a_nak_with_delay_redelivers_no_sooner),
        cmocka_unit_test(max_deliver_dead_letters_with_the_reason_and_requeue_delivers_again),
        cmocka_unit_test(a_full_queue_refuses_publishes_with_queue_full_until_drained),
        cmocka_unit_test(replay_from_a_seq_or_a_time_streams_acked_history_without_acks),
        cmocka_unit_test(a_default_consumer_takes_delivers_frames_and_sees_what_a_single_one_sees),
        cmocka_unit_test(subscribing_to_an_unknown_or_a_foreign_queue_is_refused),
        cmocka_unit_test(pub_and_sub_commands_carry_records_end_to_end),
        cmocka_unit_test(codes_and_pub_help_describe_the_wire),
        cmocka_unit_test(sub_verifies_a_record_that_waited_longer_than_the_clock_skew),
        cmocka_unit_test(a_restart_with_a_backlog_loses_nothing),
        /* last: it revokes district 3 for good */
        cmocka_unit_test(sighup_reloads_a_crl_that_now_revokes_a_certificate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
