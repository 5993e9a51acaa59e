/*
 * campaign.c - the fault campaign (issue 12): real lienthongd processes on 127.0.0.1, started,
 * killed and starved through the integration harness (tests/integration/harness*.c), and
 * checks that count what every publisher and consumer saw. Not part of ctest: started by
 * tests/campaign/run (README.md there).
 *
 *   a) kill -9 under load, --rounds times: a publisher republishes until acked (same bytes,
 *      same id), a consumer acks; after the last restart everything is drained and checked:
 *      every acked id delivered, no id delivered that was never published, a redelivery keeps
 *      its id, one id is stored under one seq; duplicates are counted.
 *   b) the data directory on a small tmpfs fills up: refusals and their NackCode, /readyz
 *      while full, recovery without restart (a filler file deleted, then the tmpfs grown),
 *      nothing acked lost.
 *   c) a failing fsync/fdatasync (failsync.so, LD_PRELOAD): no ACK for a publish sent after
 *      the failure; what the broker answers and reports next; nothing acked lost after a
 *      restart without the shim.
 *   d) a consumer process SIGSTOPped longer than ack_wait: its deliveries are redelivered
 *      (to another consumer, or to it after SIGCONT), nothing lost, counts right.
 *
 * Every wait is bounded in time; every process started is stopped by its pid. Each check
 * prints "ok" or "FAIL" with its numbers; the exit status is 1 when any check failed.
 *
 * Also "campaign consume DIR ENDPOINT QUEUE OUT DELAY_MS MAX_S": the separate consumer process
 * of scenario d (authenticates as dancu, logs every delivery to OUT, acks it after DELAY_MS).
 */
#include "harness.h"
#include "harness_admin.h"
#include "harness_client.h"

#include <errno.h>
#include <ftw.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if !defined(LT_FAILSYNC_SO) || !defined(LT_FAILSYNC_PRELOAD)
#error "LT_FAILSYNC_SO (failsync.so) and LT_FAILSYNC_PRELOAD must be defined by the build"
#endif

#define MAX_RECS (1u << 21) /* records per scenario (calloc'ed: untouched pages cost nothing) */
#define NERR 128
#define TOPIC "79.760.campaign.x"
#define QUEUE "campaign.q"

/* ---- checks --------------------------------------------------------------------------- */

static unsigned checks_failed, checks_run;

__attribute__((format(printf, 2, 3))) static bool check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s  ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    checks_run++;
    checks_failed += !ok;
    return ok;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- the ledger: what was published and what was delivered -------------------------------- */

typedef struct rec {
    uint8_t *env;
    size_t len;
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    bool acked, inflight;
    lt_err last;                  /* the last answer (LT_OK: acked) */
    uint64_t ack_seq;             /* the seq the ACK named */
    uint32_t deliveries;          /* times a consumer received it */
    uint32_t max_count;           /* the highest delivery_count it came with */
    uint64_t seq;                 /* the seq it was delivered under (0: none yet) */
    int64_t sent_ms, answered_ms; /* the last publish of it, CLOCK_MONOTONIC */
} rec;

typedef struct ledger {
    lt_signer *signer;
    size_t pad;
    rec *recs;
    size_t n;   /* records sealed */
    size_t *rq; /* FIFO of record numbers not acked, to republish */
    size_t rq_head, rq_tail;
    size_t inflight;
    size_t attempts, acked, acked_dup, answers_after_ack;
    size_t refused[NERR]; /* NACKs by code (timeouts and lost connections not counted) */
    char first_reason[NERR][160];
    size_t timeouts, closed;
    /* consumer side */
    size_t delivered, redelivered, foreign, id_mismatch, double_stored;
    uint64_t *seq_n; /* seq -> record number + 1 */
    size_t seq_cap;
    lt_client *pub, *sub;
} ledger;

static ledger *L; /* the ledger of the scenario running (the callbacks' world) */

static bool ledger_init(ledger *l, lt_signer *s, size_t pad)
{
    memset(l, 0, sizeof *l);
    l->signer = s;
    l->pad = pad;
    l->recs = calloc(MAX_RECS, sizeof *l->recs);
    l->rq = calloc(MAX_RECS, sizeof *l->rq);
    L = l;
    return l->recs != NULL && l->rq != NULL;
}

static void ledger_fini(ledger *l)
{
    lt_client_close(&l->pub);
    lt_client_close(&l->sub);
    for (size_t i = 0; l->recs != NULL && i < l->n; i++)
        free(l->recs[i].env);
    free(l->recs);
    free(l->rq);
    free(l->seq_n);
    memset(l, 0, sizeof *l);
}

static void on_answer(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                      const char *reason)
{
    (void)tag;
    rec *r = user;
    r->inflight = false;
    r->answered_ms = it_now_ms();
    r->last = code;
    L->inflight--;
    if (code == LT_OK) {
        if (r->acked)
            L->answers_after_ack++;
        else
            L->acked++;
        L->acked_dup += dup;
        r->acked = true;
        r->ack_seq = seq;
        free(r->env); /* never published again: keep the memory of long runs flat */
        r->env = NULL;
        return;
    }
    if (code == LT_ETIMEDOUT)
        L->timeouts++;
    else if (code == LT_ECLOSED)
        L->closed++;
    else if ((unsigned)code < NERR) {
        if (L->refused[code]++ == 0)
            snprintf(L->first_reason[code], sizeof L->first_reason[code], "%s", reason);
    }
    if (!r->acked)
        L->rq[L->rq_tail++ % MAX_RECS] = (size_t)(r - L->recs);
}

/* Publish up to k records: republished ones first (when retry), else new ones (when fresh). */
static void publish_some(ledger *l, unsigned k, bool retry, bool fresh)
{
    for (unsigned i = 0; i < k; i++) {
        rec *r = NULL;
        if (retry && l->rq_head != l->rq_tail) {
            r = &l->recs[l->rq[l->rq_head++ % MAX_RECS]];
            if (r->acked || r->inflight)
                continue;
        } else if (fresh && l->n < MAX_RECS) {
            r = &l->recs[l->n];
            r->env = it_seal(l->signer, TOPIC, l->n, l->pad, &r->len, r->id);
            if (r->env == NULL) {
                fprintf(stderr, "campaign: cannot seal record %zu\n", l->n);
                return;
            }
            l->n++;
        } else {
            return;
        }
        r->inflight = true;
        r->sent_ms = it_now_ms();
        l->inflight++;
        l->attempts++;
        lt_err e = lt_client_publish(l->pub, r->env, r->len, on_answer, r, NULL);
        if (e != LT_OK) { /* not sent (broker down past the timeout): later */
            r->inflight = false;
            l->inflight--;
            l->rq[l->rq_tail++ % MAX_RECS] = (size_t)(r - l->recs);
            return;
        }
    }
}

static size_t unacked(const ledger *l)
{
    return l->inflight + (l->rq_tail - l->rq_head);
}

static void on_deliver(void *user, const lt_client_delivery *d)
{
    ledger *l = user;
    l->delivered++;
    if (d->delivery_count > 1)
        l->redelivered++;
    lt_env *env = NULL;
    size_t n = SIZE_MAX;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        const uint8_t *id = lt_env_message_id(env);
        uint64_t k = it_id_number(id);
        if (k < l->n && memcmp(l->recs[k].id, id, LT_ENV_MESSAGE_ID_LEN) == 0)
            n = (size_t)k;
        lt_env_destroy(&env);
    }
    if (n == SIZE_MAX) {
        l->foreign++; /* never published by us: a phantom */
    } else {
        rec *r = &l->recs[n];
        r->deliveries++;
        if (d->delivery_count > r->max_count)
            r->max_count = d->delivery_count;
        if (r->seq != 0 && r->seq != d->seq)
            l->double_stored++; /* one id under two seqs: dedup lost */
        r->seq = d->seq;
        if (d->seq >= l->seq_cap) {
            size_t cap = l->seq_cap ? l->seq_cap : 4096;
            while (cap <= d->seq)
                cap *= 2;
            uint64_t *m = realloc(l->seq_n, cap * sizeof *m);
            if (m == NULL)
                abort();
            memset(m + l->seq_cap, 0, (cap - l->seq_cap) * sizeof *m);
            l->seq_n = m;
            l->seq_cap = cap;
        }
        if (l->seq_n[d->seq] != 0 && l->seq_n[d->seq] != n + 1)
            l->id_mismatch++; /* a redelivery of a seq with another id */
        l->seq_n[d->seq] = n + 1;
    }
    if (!d->replay)
        lt_client_ack(l->sub, d->queue, d->seq);
}

/* Acked records never delivered. */
static size_t lost(const ledger *l)
{
    size_t m = 0;
    for (size_t i = 0; i < l->n; i++)
        m += l->recs[i].acked && l->recs[i].deliveries == 0;
    return m;
}

static size_t distinct_delivered(const ledger *l)
{
    size_t m = 0;
    for (size_t i = 0; i < l->n; i++)
        m += l->recs[i].deliveries > 0;
    return m;
}

/* Poll sub until every acked record was delivered, at most timeout_ms; then poll quiet_ms
 * more so that late redeliveries are counted too. */
static void drain(ledger *l, int timeout_ms, int quiet_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (lost(l) > 0 && it_now_ms() < deadline)
        lt_client_poll(l->sub, 100, NULL);
    int64_t until = it_now_ms() + quiet_ms;
    while (it_now_ms() < until)
        lt_client_poll(l->sub, 100, NULL);
    lt_client_flush(l->sub, 5000);
}

static void print_refusals(const ledger *l)
{
    for (int c = 0; c < NERR; c++)
        if (l->refused[c] > 0)
            say("    refused %-12s x%zu  e.g. \"%s\"\n", lt_err_name((lt_err)c), l->refused[c],
                l->first_reason[c]);
}

/* The broker's "queues" answer for QUEUE, asked over c (its owner). */
typedef struct qstats {
    int64_t depth, unacked, dlq, redeliveries, consumers;
} qstats;

static bool queue_stats(lt_client *c, qstats *qs)
{
    char *json = NULL;
    lt_why why = {{0}};
    if (lt_client_admin(c, "queues", NULL, NULL, 0, 0, &json, &why) != LT_OK) {
        say("    admin queues: %s\n", why.msg);
        return false;
    }
    json_object *root = json_tokener_parse(json), *arr = root;
    free(json);
    bool found = false;
    if (root != NULL && !json_object_is_type(arr, json_type_array))
        json_object_object_get_ex(root, "queues", &arr);
    for (size_t i = 0; arr != NULL && i < json_object_array_length(arr) && !found; i++) {
        json_object *o = json_object_array_get_idx(arr, i), *v = NULL;
        if (!json_object_object_get_ex(o, "name", &v) ||
            strcmp(json_object_get_string(v), QUEUE) != 0)
            continue;
        found = true;
        qs->depth = json_object_object_get_ex(o, "depth", &v) ? json_object_get_int64(v) : -1;
        qs->unacked = json_object_object_get_ex(o, "unacked", &v) ? json_object_get_int64(v) : -1;
        qs->dlq = json_object_object_get_ex(o, "dlq_depth", &v) ? json_object_get_int64(v) : -1;
        qs->redeliveries =
            json_object_object_get_ex(o, "redeliveries", &v) ? json_object_get_int64(v) : -1;
        qs->consumers =
            json_object_object_get_ex(o, "consumers", &v) ? json_object_get_int64(v) : -1;
    }
    json_object_put(root);
    return found;
}

/* Poll c (and the optional other client) until QUEUE holds nothing pending or unacked, at most
 * timeout_ms. */
static bool queue_settles(lt_client *c, lt_client *other, qstats *qs, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        bool got = queue_stats(c, qs);
        if (got && qs->depth == 0 && qs->unacked == 0)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        lt_client_poll(c, 200, NULL);
        if (other != NULL)
            lt_client_poll(other, 0, NULL);
    }
}

/* /readyz: its status, and the ok flag and reason of its "store" and "disk" checks. */
typedef struct ready {
    int status; /* -1: no answer */
    bool store_ok, disk_ok;
    char store[256], disk[256];
} ready;

static void readyz(const it_env *e, ready *rd)
{
    it_http_resp r = {0};
    memset(rd, 0, sizeof *rd);
    rd->status = -1;
    if (!it_http_get(e->admin_port, "/readyz", NULL, 5000, &r))
        return;
    rd->status = r.status;
    json_object *root = json_tokener_parse(r.body), *checks = NULL;
    if (root != NULL && json_object_object_get_ex(root, "checks", &checks))
        for (size_t i = 0; i < json_object_array_length(checks); i++) {
            json_object *c = json_object_array_get_idx(checks, i), *name, *ok, *why;
            if (!json_object_object_get_ex(c, "name", &name) ||
                !json_object_object_get_ex(c, "ok", &ok) ||
                !json_object_object_get_ex(c, "reason", &why))
                continue;
            bool is_store = strcmp(json_object_get_string(name), "store") == 0;
            bool is_disk = strcmp(json_object_get_string(name), "disk") == 0;
            if (is_store || is_disk) {
                *(is_store ? &rd->store_ok : &rd->disk_ok) = json_object_get_boolean(ok);
                snprintf(is_store ? rd->store : rd->disk, sizeof rd->store, "%s",
                         json_object_get_string(why));
            }
        }
    json_object_put(root);
    it_http_resp_fini(&r);
}

static void say_ready(const char *when, const ready *rd)
{
    say("    /readyz %s: HTTP %d; store %s (%s); disk %s (%s)\n", when, rd->status,
        rd->store_ok ? "ok" : "NOT ok", rd->store, rd->disk_ok ? "ok" : "NOT ok", rd->disk);
}

/* The lines of the current broker run's log that contain needle (at most max of them). */
static void log_lines(const it_env *e, const char *needle, int max)
{
    char *log = it_read_file(e, e->log_path, NULL);
    if (log == NULL)
        return;
    int shown = 0;
    for (char *line = strtok(log + (e->log_off < (long)strlen(log) ? e->log_off : 0), "\n");
         line != NULL && shown < max; line = strtok(NULL, "\n"))
        if (strstr(line, needle) != NULL) {
            say("    log: %.300s\n", line);
            shown++;
        }
    free(log);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Remove e's data directory (the broker is stopped): the next run starts a fresh store. */
static void rm_data(const it_env *e)
{
    char p[IT_PATH_MAX];
    nftw(it_path(e, "data", p), rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* One broker.yaml for every scenario: the publishing agency (quan1's District 1 hotich), one
 * queue QUEUE owned by dancu bound to the campaign's topics, and what differs: the map size
 * and the queue's ack_wait_s, max_deliver and one more line (backoff_s, retention_s). */
static bool env_up(it_env *e, const char *name, int map_mb, int ack_wait_s, int max_deliver,
                   const char *queue_extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "broker:\n"
             "  name: campaign-%s\n"
             "  listen: @LISTEN@\n"
             "  data_dir: data\n"
             "  map_size_mb: %d\n"
             "  verify_threads: 1\n"
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
             "  - name: " QUEUE "\n"
             "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
             "    bind: [\"79.*.campaign.>\"]\n"
             "    ack_wait_s: %d\n"
             "    max_deliver: %d\n"
             "    %s\n",
             name, map_mb, ack_wait_s, max_deliver, queue_extra);
    if (!it_env_init(e) || !it_write_broker_yaml(e, yaml)) {
        fprintf(stderr, "campaign: cannot set up a test directory\n");
        return false;
    }
    return true;
}

/* The two agencies of every scenario (quan1 publishes, dancu consumes), a ledger with
 * records of pad bytes, and a publisher with the given window and ack timeout. false (after
 * a failed check naming what) when any of it cannot be had. */
static bool agents_open(const it_env *e, ledger *l, lt_signer **quan1, lt_signer **dancu,
                        size_t pad, unsigned window, int ack_timeout_ms, const char *what)
{
    *quan1 = it_signer(e, "quan1");
    *dancu = it_signer(e, "dancu");
    if (*quan1 == NULL || *dancu == NULL || !ledger_init(l, *quan1, pad))
        return check(false, "%s: signers and memory", what);
    l->pub = it_client(e, NULL, window, ack_timeout_ms);
    if (l->pub == NULL)
        return check(false, "%s: the publisher connects", what);
    return true;
}

/* Undo agents_open and env_up: clients, broker (SIGTERM), directory, signers. */
static void agents_close(it_env *e, ledger *l, lt_signer **quan1, lt_signer **dancu)
{
    ledger_fini(l);
    if (e->pid > 0)
        it_broker_stop(e, 15000);
    it_env_fini(e);
    lt_signer_destroy(quan1);
    lt_signer_destroy(dancu);
}

/* Subscribe l's consumer (dancu) if it has none, drain, print the tally and check it. */
static void drain_and_check(const it_env *e, ledger *l, lt_signer *dancu, const char *what)
{
    lt_why why = {{0}};
    if (l->sub == NULL) {
        l->sub = it_client(e, dancu, 0, 0);
        if (l->sub == NULL ||
            lt_client_subscribe(l->sub, QUEUE, 500, NULL, on_deliver, l, &why) != LT_OK) {
            check(false, "%s: the consumer connects (%s)", what, why.msg);
            return;
        }
    }
    drain(l, 120000, 2000);
    size_t m = lost(l), distinct = distinct_delivered(l);
    say("  %s: published %zu, acked %zu, delivered %zu (%zu distinct), lost %zu, phantom %zu, "
        "duplicates %zu\n",
        what, l->n, l->acked, l->delivered, distinct, m, l->foreign, l->delivered - distinct);
    print_refusals(l);
    check(m == 0, "%s: every acked record is delivered (lost %zu)", what, m);
    check(l->foreign == 0 && l->id_mismatch == 0 && l->double_stored == 0,
          "%s: no phantom (%zu), no seq under another id (%zu), no id under two seqs (%zu)", what,
          l->foreign, l->id_mismatch, l->double_stored);
}

/* ---- a) kill -9 under load ------------------------------------------------------------- */

static void scenario_kill(unsigned rounds)
{
    say("\n== a) kill -9 of lienthongd under load, %u rounds ==\n", rounds);
    it_env e;
    ledger l;
    memset(&l, 0, sizeof l);
    lt_signer *quan1 = NULL, *dancu = NULL;
    if (!env_up(&e, "kill", 2048, 2, 1000, "backoff_s: [1]") || !it_broker_start(&e, 30000)) {
        check(false, "a: the broker starts");
        it_env_fini(&e);
        return;
    }
    if (!agents_open(&e, &l, &quan1, &dancu, 200, 128, 3000, "a"))
        goto out;
    l.sub = it_client(&e, dancu, 0, 0);
    lt_why why = {{0}};
    if (l.sub == NULL ||
        lt_client_subscribe(l.sub, QUEUE, 200, NULL, on_deliver, &l, &why) != LT_OK) {
        check(false, "a: publisher and consumer connect (%s)", why.msg);
        goto out;
    }
    unsigned restarted = 0;
    int64_t t0 = it_now_ms(), slowest_restart = 0;
    for (unsigned k = 0; k < rounds; k++) {
        int64_t at = it_now_ms() + 100 + rand() % 500; /* a random moment of load */
        while (it_now_ms() < at) {
            publish_some(&l, 16, true, true);
            lt_client_poll(l.pub, 0, NULL);
            lt_client_poll(l.sub, 5, NULL);
        }
        it_broker_kill9(&e);
        int64_t r0 = it_now_ms();
        if (!it_broker_start(&e, 30000)) {
            check(false, "a: restart %u reaches its ready line (LMDB opens)", k + 1);
            goto out;
        }
        if (it_now_ms() - r0 > slowest_restart)
            slowest_restart = it_now_ms() - r0;
        restarted++;
        if ((k + 1) % 10 == 0)
            say("  round %u: %zu sealed, %zu acked, %zu delivered\n", k + 1, l.n, l.acked,
                l.delivered);
    }
    /* Quiesce: republish until every record is acked, then drain the queue. */
    int64_t deadline = it_now_ms() + 180000;
    while (unacked(&l) > 0 && it_now_ms() < deadline) {
        publish_some(&l, 16, true, false);
        lt_client_poll(l.pub, 10, NULL);
        lt_client_poll(l.sub, 10, NULL);
    }
    drain(&l, 180000, 5000);
    qstats qs = {0};
    bool settled = queue_settles(l.sub, NULL, &qs, 30000);
    size_t m = lost(&l), distinct = distinct_delivered(&l);
    say("  rounds %u, published %zu (%zu publish attempts, %zu acked as duplicates), acked %zu, "
        "delivered %zu (%zu distinct, %zu redeliveries), lost %zu, phantom %zu, duplicates "
        "%zu; slowest restart %lld ms; %lld s in all\n",
        restarted, l.n, l.attempts, l.acked_dup, l.acked, l.delivered, distinct, l.redelivered, m,
        l.foreign, l.delivered - distinct, (long long)slowest_restart,
        (long long)(it_now_ms() - t0) / 1000);
    print_refusals(&l);
    check(restarted == rounds, "a: %u of %u restarts reached the ready line", restarted, rounds);
    check(unacked(&l) == 0 && l.acked == l.n, "a: every record acked in the end (%zu of %zu)",
          l.acked, l.n);
    check(m == 0, "a: every acked id delivered at least once (lost %zu)", m);
    check(l.foreign == 0, "a: no id delivered that was never published (phantom %zu)", l.foreign);
    check(l.id_mismatch == 0, "a: a redelivered seq keeps its id (mismatches %zu)", l.id_mismatch);
    check(l.double_stored == 0, "a: one id is stored under one seq (ids under two seqs %zu)",
          l.double_stored);
    check(settled, "a: the queue drains: depth %lld, unacked %lld, dlq %lld", (long long)qs.depth,
          (long long)qs.unacked, (long long)qs.dlq);
    check(l.n > 1000, "a: the load was real (%zu records)", l.n);
out:
    agents_close(&e, &l, &quan1, &dancu);
}

/* ---- b) the disk fills up -------------------------------------------------------------- */

#define TMPFS_MB 12
#define FILLER_MB 6
#define GROWN_MB 64

static size_t refusals(const ledger *l)
{
    size_t m = 0;
    for (int c = 0; c < NERR; c++)
        m += l->refused[c];
    return m;
}

/* Publish new records until at least want refusals came back (or timeout_ms); then wait for
 * every answer. */
static void fill_until_refused(ledger *l, size_t want, int timeout_ms)
{
    size_t before = refusals(l);
    int64_t deadline = it_now_ms() + timeout_ms;
    while (refusals(l) - before < want && it_now_ms() < deadline) {
        publish_some(l, 8, false, true);
        lt_client_poll(l->pub, 0, NULL);
    }
    lt_client_flush(l->pub, 15000);
}

/* Republish every refused record until all are acked, at most timeout_ms (polling the
 * consumer too, if any); the time it took, -1 if it did not. */
static int64_t recover(ledger *l, int timeout_ms)
{
    int64_t t0 = it_now_ms(), deadline = t0 + timeout_ms;
    while (unacked(l) > 0 && it_now_ms() < deadline) {
        publish_some(l, 8, true, false);
        lt_client_poll(l->pub, 20, NULL);
        if (l->sub != NULL)
            lt_client_poll(l->sub, 0, NULL);
    }
    return unacked(l) == 0 ? it_now_ms() - t0 : -1;
}

typedef enum { FREE_FILLER, FREE_GROW, FREE_CONSUME } freeing;

/* Fill the store until publishes are refused, look at the refusals and /readyz, free space
 * the way given, and see the same broker accept again. */
static void full_phase(it_env *e, ledger *l, lt_signer *dancu, const char *how, freeing fr,
                       const char *data_dir, const char *filler)
{
    size_t refused0[NERR];
    memcpy(refused0, l->refused, sizeof refused0);
    size_t acked0 = l->acked, before = refusals(l);
    fill_until_refused(l, 50, 120000);
    size_t got = refusals(l) - before;
    size_t full = l->refused[LT_ESTORE_FULL] - refused0[LT_ESTORE_FULL];
    size_t err = l->refused[LT_ESTORE] - refused0[LT_ESTORE];
    say("    filled: %zu more acked, then %zu refusals: %zu STORE_FULL, %zu STORE_ERROR, %zu "
        "other\n",
        l->acked - acked0, got, full, err, got - full - err);
    check(got >= 50, "b/%s: the full store refuses publishes (%zu refusals)", how, got);
    check(got > 0 && full == got,
          "b/%s: every refusal is STORE_FULL (%zu of %zu; %zu "
          "STORE_ERROR)",
          how, full, got, err);
    /* Right after a refusal, and again a second later (the committer's sweep commits once a
     * second): /readyz must say not ready, and the store check must say why. */
    ready rd;
    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            int64_t until = it_now_ms() + 1500;
            while (it_now_ms() < until)
                lt_client_poll(l->pub, 100, NULL);
        }
        readyz(e, &rd);
        say_ready(k == 0 ? "right after the refusals" : "1.5 s later, still full", &rd);
        check(rd.status == 503 && (!rd.store_ok || !rd.disk_ok),
              "b/%s: /readyz says not ready while full, with a failing check (HTTP %d)", how,
              rd.status);
        check(!rd.store_ok,
              "b/%s: /readyz's store check says the store is full (it says: "
              "%s)",
              how, rd.store);
    }
    log_lines(e, "failed", 2);
    pid_t pid = e->pid;
    unsigned runs = e->runs;
    if (fr == FREE_FILLER) {
        check(unlink(filler) == 0, "b/%s: the filler file is deleted", how);
    } else if (fr == FREE_GROW) {
        char opts[64];
        snprintf(opts, sizeof opts, "size=%dm", GROWN_MB);
        int rc = mount("lt-campaign", data_dir, "tmpfs", MS_REMOUNT, opts);
        check(rc == 0, "b/%s: the tmpfs grows to %d MiB (%s)", how, GROWN_MB,
              rc == 0 ? "remounted" : strerror(errno));
    } else {
        lt_why why = {{0}};
        l->sub = it_client(e, dancu, 0, 0);
        bool subscribed = l->sub != NULL && lt_client_subscribe(l->sub, QUEUE, 500, NULL,
                                                                on_deliver, l, &why) == LT_OK;
        if (subscribed)
            drain(l, 60000, 0);
        check(subscribed && lost(l) == 0,
              "b/%s: a consumer takes and acks everything acked so far (%zu left; %s)", how,
              lost(l), why.msg);
    }
    int64_t took = recover(l, 60000);
    check(took >= 0,
          "b/%s: once space returns every refused record is acked, without a "
          "restart, in %lld ms (%zu not acked)",
          how, (long long)took, unacked(l));
    check(it_broker_alive(e) && e->pid == pid && e->runs == runs,
          "b/%s: the same broker process (pid %d) did it", how, (int)pid);
    int64_t deadline = it_now_ms() + 15000;
    do {
        readyz(e, &rd);
        lt_client_poll(l->pub, 200, NULL);
    } while (!rd.store_ok && it_now_ms() < deadline);
    say_ready("after recovery", &rd);
    check(rd.store_ok, "b/%s: /readyz's store check is ok again", how);
    if (fr == FREE_CONSUME)
        check(rd.status == 200, "b/%s: /readyz is ready again (HTTP %d)", how, rd.status);
}

/* b/disk: the data directory on a tmpfs; a filler file deleted, then the tmpfs grown. */
static void full_disk(void)
{
    say("  b/disk: the data directory on a tmpfs of %d MiB\n", TMPFS_MB);
    it_env e;
    ledger l;
    memset(&l, 0, sizeof l);
    lt_signer *quan1 = NULL, *dancu = NULL;
    char data_dir[IT_PATH_MAX], filler[IT_PATH_MAX];
    bool mounted = false;
    if (!env_up(&e, "disk", 1024, 5, 1000, "backoff_s: [1]")) {
        check(false, "b: a test directory");
        return;
    }
    it_path(&e, "data", data_dir);
    it_path(&e, "data/filler", filler);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%dm,mode=0700", TMPFS_MB);
    if (mkdir(data_dir, 0700) != 0 || mount("lt-campaign", data_dir, "tmpfs", 0, opts) != 0) {
        say("  SKIP b/disk: cannot mount a tmpfs on the data directory: %s (run as root, "
            "outside a container that forbids mount)\n",
            strerror(errno));
        it_env_fini(&e);
        return;
    }
    mounted = true;
    /* A filler file takes half the tmpfs; deleting it is the first recovery. */
    FILE *f = fopen(filler, "w");
    static char mb[1 << 20];
    memset(mb, 'f', sizeof mb);
    for (int i = 0; f != NULL && i < FILLER_MB; i++)
        fwrite(mb, 1, sizeof mb, f);
    if (f == NULL || fclose(f) != 0) {
        check(false, "b: the filler file is written");
        goto out;
    }
    if (!it_broker_start(&e, 30000)) {
        check(false, "b: the broker starts on the tmpfs");
        goto out;
    }
    if (!agents_open(&e, &l, &quan1, &dancu, 1000, 32, 10000, "b/disk"))
        goto out;
    say("  phase 1: fill the tmpfs, then delete a %d MiB filler file\n", FILLER_MB);
    full_phase(&e, &l, dancu, "filler", FREE_FILLER, data_dir, filler);
    say("  phase 2: fill it again, then grow the tmpfs to %d MiB\n", GROWN_MB);
    full_phase(&e, &l, dancu, "grow", FREE_GROW, data_dir, NULL);
    drain_and_check(&e, &l, dancu, "b/disk");
out:
    ledger_fini(&l);
    if (e.pid > 0)
        it_broker_stop(&e, 15000);
    if (mounted && umount(data_dir) != 0)
        umount2(data_dir, MNT_DETACH);
    agents_close(&e, &l, &quan1, &dancu);
}

/* b/map: the LMDB map (map_size_mb: 8) fills up on a roomy disk; consuming (retention_s: 0)
 * frees it. Here the disk check of /readyz is fine, so only the store check can say why. */
static void full_map(void)
{
    say("  b/map: an LMDB map of 8 MiB on the ordinary disk, retention_s 0\n");
    it_env e;
    ledger l;
    memset(&l, 0, sizeof l);
    lt_signer *quan1 = NULL, *dancu = NULL;
    if (!env_up(&e, "map", 8, 5, 1000, "retention_s: 0") || !it_broker_start(&e, 30000))
        check(false, "b/map: the broker starts");
    else if (agents_open(&e, &l, &quan1, &dancu, 1000, 32, 10000, "b/map")) {
        full_phase(&e, &l, dancu, "map", FREE_CONSUME, NULL, NULL);
        drain_and_check(&e, &l, dancu, "b/map");
    }
    agents_close(&e, &l, &quan1, &dancu);
}

static void scenario_full(void)
{
    say("\n== b) the store fills up ==\n");
    full_disk();
    full_map();
}

/* ---- c) a failing fsync ------------------------------------------------------------------ */

typedef struct sync_case {
    const char *name;
    const char *spec; /* LT_FAILSYNC */
} sync_case;

static const sync_case SYNC_CASES[] = {
    {"the sync thread's flush fails once", "5,1,lt-sync"},
    {"the sync thread's flush fails from then on", "5,0,lt-sync"},
    {"the commit thread's data sync fails once", "5,1,lt-commit"},
    {"the commit thread's data sync fails from then on", "5,0,lt-commit"},
};

/* CLOCK_MONOTONIC ms of the first failed call in the shim's log, -1 if none yet; *line gets
 * that line. */
static int64_t first_failure(const it_env *e, const char *log_rel, char *line, size_t cap)
{
    char *text = it_read_file(e, log_rel, NULL);
    if (text == NULL)
        return -1;
    int64_t t = -1;
    for (char *s = strtok(text, "\n"); s != NULL; s = strtok(NULL, "\n")) {
        const char *tm = strstr(s, "t_ms=");
        if (strstr(s, " EIO ") != NULL && tm != NULL) {
            t = atoll(tm + 5);
            snprintf(line, cap, "%s", s);
            break;
        }
    }
    free(text);
    return t;
}

static void sync_case_run(it_env *e, lt_signer *quan1, lt_signer *dancu, unsigned i)
{
    const sync_case *sc = &SYNC_CASES[i];
    say("  case %u: %s (LT_FAILSYNC=%s)\n", i + 1, sc->name, sc->spec);
    char log_rel[64], log_path[IT_PATH_MAX], pre[IT_PATH_MAX + 16], spec[64],
        logenv[IT_PATH_MAX + 32];
    snprintf(log_rel, sizeof log_rel, "failsync-%u.log", i + 1);
    it_path(e, log_rel, log_path);
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", LT_FAILSYNC_PRELOAD);
    snprintf(spec, sizeof spec, "LT_FAILSYNC=%s", sc->spec);
    snprintf(logenv, sizeof logenv, "LT_FAILSYNC_LOG=%s", log_path);
    const char *wrap[] = {"/usr/bin/env", pre, spec, logenv, NULL};
    ledger l;
    memset(&l, 0, sizeof l);
    /* a fresh store for every case */
    rm_data(e);
    e->wrap = wrap;
    bool up = it_broker_start(e, 30000);
    e->wrap = NULL;
    if (!up || !ledger_init(&l, quan1, 200)) {
        check(false, "c%u: the broker starts with failsync.so preloaded", i + 1);
        goto out;
    }
    l.pub = it_client(e, NULL, 32, 5000);
    if (l.pub == NULL) {
        check(false, "c%u: the publisher connects", i + 1);
        goto out;
    }
    /* Publish (no republishing: each record is published once) until the failure, and
     * 2 s on. */
    char fail_line[256] = "";
    int64_t t_fail = -1, deadline = it_now_ms() + 30000, stop_at = INT64_MAX;
    while (it_now_ms() < deadline && it_now_ms() < stop_at && it_broker_alive(e)) {
        publish_some(&l, 8, false, true);
        lt_client_poll(l.pub, 5, NULL);
        if (t_fail < 0 && (t_fail = first_failure(e, log_rel, fail_line, sizeof fail_line)) >= 0)
            stop_at = it_now_ms() + 2000;
    }
    lt_client_flush(l.pub, 15000);
    if (!check(t_fail >= 0, "c%u: the shim failed a sync call: %s", i + 1, fail_line))
        goto out;
    /* Tally by when each record was sent and answered relative to the failure. */
    size_t before_acked = 0, before_n = 0, span_acked = 0, span_n = 0, after_acked = 0, after_n = 0,
           after_unanswered = 0;
    size_t after_code[NERR] = {0};
    for (size_t k = 0; k < l.n; k++) {
        rec *r = &l.recs[k];
        if (r->sent_ms < t_fail && r->answered_ms != 0 && r->answered_ms < t_fail) {
            before_n++;
            before_acked += r->acked;
        } else if (r->sent_ms < t_fail) {
            span_n++;
            span_acked += r->acked;
        } else {
            after_n++;
            after_acked += r->acked;
            if (r->inflight)
                after_unanswered++;
            else if ((unsigned)r->last < NERR)
                after_code[r->last]++;
        }
    }
    say("    sent and answered before the failure: %zu (%zu acked); in flight across it: %zu "
        "(%zu acked); sent after it: %zu (%zu acked, %zu unanswered)\n",
        before_n, before_acked, span_n, span_acked, after_n, after_acked, after_unanswered);
    for (int c = 0; c < NERR; c++)
        if (after_code[c] > 0)
            say("    after the failure: %s x%zu%s%s%s\n", lt_err_name((lt_err)c), after_code[c],
                c == LT_OK ? "" : " e.g. \"", c == LT_OK ? "" : l.first_reason[c],
                c == LT_OK ? "" : "\"");
    log_lines(e, "failed", 3);
    ready rd;
    readyz(e, &rd);
    say_ready("after the failure", &rd);
    check(after_n > 0, "c%u: publishes were sent after the failure (%zu)", i + 1, after_n);
    check(span_n + after_n > span_acked + after_acked,
          "c%u: the broker refused publishes once the sync failed (%zu refused)", i + 1,
          span_n + after_n - span_acked - after_acked);
    check(after_acked == 0,
          "c%u: no publish sent after the failed sync is acked (%zu of %zu acked)", i + 1,
          after_acked, after_n);
    /* Restart without the shim: nothing acked is lost, nothing invented. */
    int rc = it_broker_stop(e, 15000);
    say("    broker stopped with status %d\n", rc);
    if (!it_broker_start(e, 30000)) {
        check(false, "c%u: the broker restarts without the shim", i + 1);
        goto out;
    }
    l.sub = it_client(e, dancu, 0, 0);
    lt_why why = {{0}};
    if (l.sub == NULL ||
        lt_client_subscribe(l.sub, QUEUE, 500, NULL, on_deliver, &l, &why) != LT_OK) {
        check(false, "c%u: the consumer connects (%s)", i + 1, why.msg);
        goto out;
    }
    drain(&l, 60000, 1500);
    size_t m = lost(&l), refused_stored = 0;
    for (size_t k = 0; k < l.n; k++)
        refused_stored += !l.recs[k].acked && l.recs[k].deliveries > 0;
    say("    after a restart without the shim: published %zu, acked %zu, delivered %zu, lost "
        "%zu, phantom %zu; refused yet stored (outcome unknown, as STORE_ERROR says): %zu\n",
        l.n, l.acked, l.delivered, m, l.foreign, refused_stored);
    check(m == 0 && l.foreign == 0, "c%u: nothing acked lost (%zu), nothing phantom (%zu)", i + 1,
          m, l.foreign);
out:
    ledger_fini(&l);
    if (e->pid > 0)
        it_broker_stop(e, 15000);
}

static void scenario_sync(void)
{
    say("\n== c) a failing fsync/fdatasync (failsync.so) ==\n");
    it_env e;
    lt_signer *quan1 = NULL, *dancu = NULL;
    if (!env_up(&e, "sync", 2048, 2, 1000, "backoff_s: [1]")) {
        check(false, "c: a test directory");
        return;
    }
    quan1 = it_signer(&e, "quan1");
    dancu = it_signer(&e, "dancu");
    if (quan1 == NULL || dancu == NULL || access(LT_FAILSYNC_SO, R_OK) != 0) {
        check(false, "c: signers and %s", LT_FAILSYNC_SO);
    } else {
        for (unsigned i = 0; i < sizeof SYNC_CASES / sizeof SYNC_CASES[0]; i++)
            sync_case_run(&e, quan1, dancu, i);
    }
    it_env_fini(&e);
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&dancu);
}

/* ---- d) a consumer SIGSTOPped longer than ack_wait ------------------------------------- */

#define STOP_RECORDS 600
#define STOP_ACK_WAIT_MS 2000

static volatile sig_atomic_t consumer_stop;

static void on_term(int sig)
{
    (void)sig;
    consumer_stop = 1;
}

typedef struct consumer {
    FILE *out;
    lt_client *c;
    unsigned delay_ms;
} consumer;

static void consumer_cb(void *user, const lt_client_delivery *d)
{
    consumer *k = user;
    uint64_t n = UINT64_MAX;
    lt_env *env = NULL;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        n = it_id_number(lt_env_message_id(env));
        lt_env_destroy(&env);
    }
    fprintf(k->out, "D %llu %u %llu\n", (unsigned long long)d->seq, d->delivery_count,
            (unsigned long long)n);
    fflush(k->out);
    struct timespec ts = {0, (long)k->delay_ms * 1000000L}; /* the work a delivery takes */
    nanosleep(&ts, NULL);
    lt_client_ack(k->c, d->queue, d->seq);
}

/* campaign consume DIR ENDPOINT QUEUE OUT DELAY_MS MAX_S */
static int consume_main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: campaign consume DIR ENDPOINT QUEUE OUT DELAY_MS MAX_S\n");
        return 2;
    }
    it_env e;
    memset(&e, 0, sizeof e);
    snprintf(e.dir, sizeof e.dir, "%s", argv[2]);
    snprintf(e.endpoint, sizeof e.endpoint, "%s", argv[3]);
    signal(SIGTERM, on_term);
    consumer k = {.delay_ms = (unsigned)atoi(argv[6])};
    k.out = fopen(argv[5], "w");
    lt_signer *dancu = it_signer(&e, "dancu");
    if (k.out == NULL || dancu == NULL)
        return 1;
    k.c = it_client(&e, dancu, 0, 0);
    lt_why why = {{0}};
    if (k.c == NULL || lt_client_subscribe(k.c, argv[4], 50, NULL, consumer_cb, &k, &why)) {
        fprintf(stderr, "campaign consume: %s\n", why.msg);
        return 1;
    }
    fprintf(k.out, "subscribed\n");
    fflush(k.out);
    int64_t deadline = it_now_ms() + (int64_t)atoi(argv[7]) * 1000;
    while (!consumer_stop && it_now_ms() < deadline)
        lt_client_poll(k.c, 100, NULL);
    lt_client_flush(k.c, 2000);
    lt_client_close(&k.c);
    lt_signer_destroy(&dancu);
    fclose(k.out);
    return 0;
}

/* The consumer process's deliveries, read from its log. */
typedef struct seen {
    uint32_t *count_a; /* per record number: deliveries to A */
    uint32_t *max_count_a;
    size_t lines;
    bool subscribed;
} seen;

static void read_consumer_log(const it_env *e, const char *rel, size_t nrec, seen *s)
{
    memset(s->count_a, 0, nrec * sizeof *s->count_a);
    memset(s->max_count_a, 0, nrec * sizeof *s->max_count_a);
    s->lines = 0;
    s->subscribed = false;
    char *text = it_read_file(e, rel, NULL);
    if (text == NULL)
        return;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned long long seq, n;
        unsigned count;
        if (strcmp(line, "subscribed") == 0)
            s->subscribed = true;
        else if (sscanf(line, "D %llu %u %llu", &seq, &count, &n) == 3 && n < nrec) {
            s->lines++;
            s->count_a[n]++;
            if (count > s->max_count_a[n])
                s->max_count_a[n] = count;
        }
    }
    free(text);
}

/* Consumer A (a process) is stopped for hold_ms while it holds unacked deliveries; with
 * other, consumer B (this process) subscribes meanwhile. */
static void stop_variant(it_env *e, lt_signer *quan1, lt_signer *dancu, const char *self,
                         const char *v, bool other, int hold_ms)
{
    say("  variant %s: consumer A stopped %d ms (ack_wait %d ms, the broker's heartbeat "
        "timeout 15000 ms); %s\n",
        v, hold_ms, STOP_ACK_WAIT_MS,
        other ? "consumer B takes over meanwhile" : "nobody else consumes; A resumes");
    ledger l;
    pid_t a = -1;
    seen s = {0};
    rm_data(e);
    if (!it_broker_start(e, 30000) || !ledger_init(&l, quan1, 200)) {
        check(false, "%s: the broker starts", v);
        return;
    }
    s.count_a = calloc(STOP_RECORDS, sizeof *s.count_a);
    s.max_count_a = calloc(STOP_RECORDS, sizeof *s.max_count_a);
    l.pub = it_client(e, NULL, 64, 10000);
    l.sub = it_client(e, dancu, 0, 0); /* B, and the admin view of the queue */
    if (l.pub == NULL || l.sub == NULL || s.count_a == NULL || s.max_count_a == NULL) {
        check(false, "%s: clients connect", v);
        goto out;
    }
    while (l.n < STOP_RECORDS)
        publish_some(&l, 1, false, true);
    lt_client_flush(l.pub, 30000);
    if (!check(l.acked == STOP_RECORDS, "%s: %d records published and acked (%zu)", v, STOP_RECORDS,
               l.acked))
        goto out;
    char out_rel[64], out_path[IT_PATH_MAX];
    snprintf(out_rel, sizeof out_rel, "consumer-%s.log", v + 2); /* d/<name> */
    it_path(e, out_rel, out_path);
    char *argv[] = {(char *)self, (char *)"consume", e->dir,        e->endpoint, (char *)QUEUE,
                    out_path,     (char *)"5",       (char *)"120", NULL};
    char spawn_out[IT_PATH_MAX];
    it_path(e, "consumer.out", spawn_out);
    a = it_spawn_prog(argv, spawn_out);
    int64_t deadline = it_now_ms() + 30000;
    do {
        read_consumer_log(e, out_rel, STOP_RECORDS, &s);
        lt_client_poll(l.sub, 20, NULL);
    } while (s.lines < 100 && it_now_ms() < deadline);
    if (!check(s.lines >= 100, "%s: consumer A (pid %d) consumes (%zu deliveries)", v, (int)a,
               s.lines))
        goto out;
    kill(a, SIGSTOP);
    int64_t t_stop = it_now_ms();
    read_consumer_log(e, out_rel, STOP_RECORDS, &s);
    size_t a_before = s.lines;
    qstats qs = {0};
    queue_stats(l.sub, &qs);
    say("    A stopped after %zu deliveries; the broker counts %lld unacked, %lld pending\n",
        a_before, (long long)qs.unacked, (long long)qs.depth);
    check(qs.unacked > 0, "%s: A holds unacked deliveries while stopped (%lld)", v,
          (long long)qs.unacked);
    if (other) {
        lt_why why = {{0}};
        if (lt_client_subscribe(l.sub, QUEUE, 200, NULL, on_deliver, &l, &why) != LT_OK) {
            check(false, "%s: consumer B subscribes (%s)", v, why.msg);
            goto out;
        }
    }
    while (it_now_ms() - t_stop < hold_ms)
        lt_client_poll(l.sub, 50, NULL);
    kill(a, SIGCONT);
    say("    A resumed after %lld ms\n", (long long)(it_now_ms() - t_stop));
    /* Everything ends up acked by A or B: the queue settles. */
    bool settled = queue_settles(l.sub, NULL, &qs, 60000);
    kill(a, SIGTERM);
    int rc = it_wait(a, 15000);
    a = -1;
    read_consumer_log(e, out_rel, STOP_RECORDS, &s);
    size_t never = 0, to_both = 0, a_redelivered = 0, a_twice = 0, distinct = 0, count_off = 0;
    for (size_t k = 0; k < STOP_RECORDS; k++) {
        size_t copies = s.count_a[k] + l.recs[k].deliveries;
        uint32_t maxc =
            s.max_count_a[k] > l.recs[k].max_count ? s.max_count_a[k] : l.recs[k].max_count;
        never += copies == 0;
        distinct += copies > 0;
        to_both += s.count_a[k] > 0 && l.recs[k].deliveries > 0;
        a_redelivered += s.max_count_a[k] > 1;
        a_twice += s.count_a[k] > 1;
        count_off += copies > 0 && maxc != copies; /* delivery_count n = the n-th copy */
    }
    size_t total = s.lines + l.delivered;
    say("    A: %zu deliveries (%zu records delivered to it twice or more, %zu with a count > "
        "1); B: %zu deliveries (%zu with a count > 1); records delivered to both: %zu; never "
        "delivered: %zu; A exited %d\n",
        s.lines, a_twice, a_redelivered, l.delivered, l.redelivered, to_both, never, rc);
    say("    broker: depth %lld, unacked %lld, dlq %lld, redeliveries %lld; duplicates "
        "delivered %zu\n",
        (long long)qs.depth, (long long)qs.unacked, (long long)qs.dlq, (long long)qs.redeliveries,
        total - distinct);
    check(never == 0, "%s: every record delivered to A or B (never delivered: %zu)", v, never);
    check(l.foreign == 0 && l.id_mismatch == 0,
          "%s: B got no phantom (%zu) and no seq under another id (%zu)", v, l.foreign,
          l.id_mismatch);
    check(settled && qs.dlq == 0, "%s: the queue settles: depth %lld, unacked %lld, dlq %lld", v,
          (long long)qs.depth, (long long)qs.unacked, (long long)qs.dlq);
    if (other)
        check(l.redelivered > 0, "%s: what A held went to B as redeliveries (%zu)", v,
              l.redelivered);
    else if (hold_ms < 15000) /* A keeps its connection: its late acks still count */
        say("    (A kept its connection: its late acks of what it held were taken, %lld "
            "redeliveries were needed)\n",
            (long long)qs.redeliveries);
    else
        check(a_redelivered > 0,
              "%s: A lost its connection while stopped and got what it "
              "held again after resuming (%zu records with a count > 1)",
              v, a_redelivered);
    check(count_off == 0,
          "%s: each record's highest delivery_count equals the copies delivered (%zu differ)", v,
          count_off);
    check(qs.redeliveries >= 0 && (size_t)qs.redeliveries == total - distinct,
          "%s: the broker's redelivery count (%lld) equals the duplicates delivered (%zu)", v,
          (long long)qs.redeliveries, total - distinct);
out:
    if (a > 0) {
        kill(a, SIGCONT);
        kill(a, SIGTERM);
        it_wait(a, 15000);
    }
    free(s.count_a);
    free(s.max_count_a);
    ledger_fini(&l);
    if (e->pid > 0)
        it_broker_stop(e, 15000);
}

static void scenario_stop(const char *self)
{
    say("\n== d) a consumer process SIGSTOPped longer than ack_wait ==\n");
    it_env e;
    lt_signer *quan1 = NULL, *dancu = NULL;
    if (!env_up(&e, "stop", 1024, STOP_ACK_WAIT_MS / 1000, 5, "backoff_s: [0]")) {
        check(false, "d: a test directory");
        return;
    }
    quan1 = it_signer(&e, "quan1");
    dancu = it_signer(&e, "dancu");
    if (quan1 == NULL || dancu == NULL) {
        check(false, "d: signers");
    } else {
        stop_variant(&e, quan1, dancu, self, "d/other", true, 3 * STOP_ACK_WAIT_MS);
        stop_variant(&e, quan1, dancu, self, "d/alone", false, 3 * STOP_ACK_WAIT_MS);
        stop_variant(&e, quan1, dancu, self, "d/long", false, 20000);
    }
    it_env_fini(&e);
    lt_signer_destroy(&quan1);
    lt_signer_destroy(&dancu);
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: campaign [--rounds N] [--only a,b,c,d] [--seed S]\n"
                    "  --rounds N   kill -9 rounds of scenario a (default 100)\n"
                    "  --only LIST  run only these scenarios (default all)\n"
                    "  --seed S     random seed (default: the clock; printed)\n"
                    "LT_IT_KEEP=1 keeps the test directories.\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "consume") == 0)
        return consume_main(argc, argv);
    unsigned rounds = 100, seed = (unsigned)it_now_ms();
    const char *only = "a,b,c,d";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0)
            rounds = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            usage();
            return 2;
        }
    }
    char self[IT_PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "campaign: cannot find its own executable\n");
        return 1;
    }
    self[sl] = '\0';
    signal(SIGPIPE, SIG_IGN);
    srand(seed);
    int64_t t0 = it_now_ms();
    say("campaign: seed %u, kill rounds %u, scenarios %s\n", seed, rounds, only);
    if (strchr(only, 'a'))
        scenario_kill(rounds);
    if (strchr(only, 'b'))
        scenario_full();
    if (strchr(only, 'c'))
        scenario_sync();
    if (strchr(only, 'd'))
        scenario_stop(self);
    say("\ncampaign: %u checks, %u failed, %lld s\n", checks_run, checks_failed,
        (long long)(it_now_ms() - t0) / 1000);
    return checks_failed == 0 ? 0 : 1;
}
