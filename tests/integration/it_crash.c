/*
 * it_crash.c - kill -9 lienthongd at random moments under continuous publishing and
 * consuming, at least 20 times, restarting it each time. Then:
 *   - every message a publisher saw acked is delivered at least once;
 *   - nothing is delivered that was not published (ids are checked against what was sent);
 *   - a redelivery carries the same id as the first delivery of its seq, and one message id
 *     is never stored under two seqs (dedup survives the crashes);
 *   - LMDB opens cleanly every time (every restart reaches its ready line).
 * A publish that times out or loses its connection is republished with the same bytes
 * (same message id), as a real publisher would. Every loop is bounded in count and time.
 *
 * LT_IT_CRASH_KILLS overrides the number of kills (default 20).
 */
#include "harness.h"
#include "harness_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-crash\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 1024\n"
    "  verify_threads: 2\n"
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
    "  - name: it.crash\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.crash.>\"]\n"
    "    ack_wait_s: 2\n"
    "    max_deliver: 1000\n"
    "    backoff_s: [1]\n";

#define MAX_MSGS 200000

struct rec {
    uint8_t *env;
    size_t len;
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    bool acked;      /* the publisher saw an ACK */
    bool inflight;   /* a publish is outstanding */
    bool retry;      /* to republish */
    uint32_t deliveries;
    uint64_t seq;    /* the seq it was delivered under (0: none yet) */
};

struct world {
    it_env env;
    lt_signer *quan1, *dancu;
    struct rec *recs;
    size_t n;          /* records sealed so far */
    size_t *retry_q;   /* record numbers to republish (a FIFO) */
    size_t retry_head, retry_tail, inflight;
    size_t acked, republished, refused;
    /* consumer checks */
    size_t delivered, redelivered, foreign, id_mismatch, double_stored;
    uint64_t *seq_n;   /* seq -> record number + 1 (0: none yet) */
    size_t seq_cap;
    lt_client *pub, *sub;
};

static struct world w;

static void on_answer(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                      const char *reason)
{
    (void)tag, (void)seq, (void)dup, (void)reason;
    struct rec *r = user;
    r->inflight = false;
    w.inflight--;
    if (code == LT_OK) {
        if (!r->acked)
            w.acked++;
        r->acked = true;
    } else if (!r->acked) {
        /* timed out, connection lost, or refused while shutting down: send it again */
        if (code != LT_ETIMEDOUT && code != LT_ECLOSED && code != LT_ESHUTDOWN)
            w.refused++;
        r->retry = true;
        w.retry_q[w.retry_tail++ % MAX_MSGS] = (size_t)(r - w.recs);
    }
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    (void)user;
    w.delivered++;
    if (d->delivery_count > 1)
        w.redelivered++;
    lt_env *env = NULL;
    size_t n = SIZE_MAX;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        const uint8_t *id = lt_env_message_id(env);
        uint64_t k = it_id_number(id);
        if (k < w.n && memcmp(w.recs[k].id, id, LT_ENV_MESSAGE_ID_LEN) == 0)
            n = (size_t)k;
        lt_env_destroy(&env);
    }
    if (n == SIZE_MAX) {
        w.foreign++; /* not something we published */
    } else {
        struct rec *r = &w.recs[n];
        r->deliveries++;
        if (r->seq != 0 && r->seq != d->seq)
            w.double_stored++; /* one id, two seqs: dedup lost across a crash */
        r->seq = d->seq;
        if (d->seq >= w.seq_cap) {
            size_t cap = w.seq_cap ? w.seq_cap : 4096;
            while (cap <= d->seq)
                cap *= 2;
            uint64_t *m = realloc(w.seq_n, cap * sizeof *m);
            assert_non_null(m);
            memset(m + w.seq_cap, 0, (cap - w.seq_cap) * sizeof *m);
            w.seq_n = m;
            w.seq_cap = cap;
        }
        if (w.seq_n[d->seq] != 0 && w.seq_n[d->seq] != n + 1)
            w.id_mismatch++; /* a redelivery of this seq with another id */
        w.seq_n[d->seq] = n + 1;
    }
    lt_client_ack(w.sub, d->queue, d->seq);
}

static int setup(void **state)
{
    (void)state;
    memset(&w, 0, sizeof w);
    if (!it_env_init(&w.env) || !it_write_broker_yaml(&w.env, BROKER_YAML) ||
        !it_broker_start(&w.env, 30000))
        return -1;
    w.quan1 = it_signer(&w.env, "quan1");
    w.dancu = it_signer(&w.env, "dancu");
    w.recs = calloc(MAX_MSGS, sizeof *w.recs);
    w.retry_q = calloc(MAX_MSGS, sizeof *w.retry_q);
    return w.quan1 && w.dancu && w.recs && w.retry_q ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    lt_client_close(&w.pub);
    lt_client_close(&w.sub);
    if (w.env.pid > 0)
        it_broker_stop(&w.env, 15000);
    it_env_fini(&w.env);
    for (size_t i = 0; i < w.n; i++)
        free(w.recs[i].env);
    free(w.recs);
    free(w.retry_q);
    free(w.seq_n);
    lt_signer_destroy(&w.quan1);
    lt_signer_destroy(&w.dancu);
    return 0;
}

/* Take a record to republish, or seal the next one; publish it. k times. */
static void publish_some(unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        struct rec *r = NULL;
        if (w.retry_head != w.retry_tail) { /* republish first, oldest first */
            r = &w.recs[w.retry_q[w.retry_head++ % MAX_MSGS]];
            w.republished++;
        } else {
            if (w.n == MAX_MSGS)
                return;
            r = &w.recs[w.n];
            r->env = it_seal(w.quan1, "79.760.crash.x", w.n, 100, &r->len, r->id);
            assert_non_null(r->env);
            w.n++;
        }
        r->retry = false;
        r->inflight = true;
        w.inflight++;
        lt_err e = lt_client_publish(w.pub, r->env, r->len, on_answer, r, NULL);
        if (e != LT_OK) { /* not even sent (broker down past the timeout): later */
            r->inflight = false;
            w.inflight--;
            r->retry = true;
            w.retry_q[w.retry_tail++ % MAX_MSGS] = (size_t)(r - w.recs);
            return;
        }
    }
}

/* Records not yet acked: waiting for an answer or for their republish. */
static size_t pending_retries(void)
{
    return w.inflight + (w.retry_tail - w.retry_head);
}

static void kill9_at_random_moments_loses_nothing_acked_and_invents_nothing(void **state)
{
    (void)state;
    unsigned kills = 20;
    const char *ks = getenv("LT_IT_CRASH_KILLS");
    if (ks != NULL && atoi(ks) > 0)
        kills = (unsigned)atoi(ks);
    srand((unsigned)it_now_ms());
    w.pub = it_client(&w.env, NULL, 128, 3000);
    w.sub = it_client(&w.env, w.dancu, 0, 0);
    assert_non_null(w.pub);
    assert_non_null(w.sub);
    lt_why why = {{0}};
    assert_int_equal(lt_client_subscribe(w.sub, "it.crash", 200, NULL, on_deliver, NULL, &why),
                     LT_OK);
    unsigned restarts_ok = 0;
    for (unsigned kill = 0; kill < kills; kill++) {
        int64_t at = it_now_ms() + 100 + rand() % 700; /* a random moment */
        while (it_now_ms() < at) {
            publish_some(16);
            lt_client_poll(w.pub, 0, NULL);
            lt_client_poll(w.sub, 5, NULL);
        }
        it_broker_kill9(&w.env);
        /* LMDB must open cleanly: the broker reaches its ready line */
        bool up = it_broker_start(&w.env, 30000);
        assert_true(up);
        restarts_ok++;
    }
    /* Quiesce: republish until everything is acked, then drain the queue. */
    int64_t deadline = it_now_ms() + 120000;
    while (pending_retries() > 0 && it_now_ms() < deadline) {
        if (w.retry_head != w.retry_tail)
            publish_some(1);
        lt_client_poll(w.pub, 10, NULL);
        lt_client_poll(w.sub, 10, NULL);
    }
    assert_int_equal(pending_retries(), 0);
    size_t missing = w.acked;
    deadline = it_now_ms() + 120000;
    while (it_now_ms() < deadline) {
        missing = 0;
        for (size_t j = 0; j < w.n; j++)
            missing += w.recs[j].acked && w.recs[j].deliveries == 0;
        if (missing == 0)
            break;
        lt_client_poll(w.sub, 100, NULL);
    }
    lt_client_flush(w.sub, 5000);
    fprintf(stderr,
            "it_crash: %u kills, %zu messages, %zu acked, %zu republished, %zu refused; "
            "%zu deliveries (%zu redeliveries), %zu missing, %zu foreign, %zu id mismatches, "
            "%zu ids stored twice\n",
            restarts_ok, w.n, w.acked, w.republished, w.refused, w.delivered, w.redelivered,
            missing, w.foreign, w.id_mismatch, w.double_stored);
    assert_int_equal(restarts_ok, kills);
    assert_int_equal(w.acked, w.n); /* every message was eventually acked */
    assert_int_equal(missing, 0);   /* every acked message was delivered */
    assert_int_equal(w.foreign, 0); /* nothing delivered that was not published */
    assert_int_equal(w.id_mismatch, 0);
    assert_int_equal(w.double_stored, 0);
    assert_true(w.n > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            kill9_at_random_moments_loses_nothing_acked_and_invents_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
