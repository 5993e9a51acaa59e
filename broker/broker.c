/*
 * broker.c - the daemon object: builds every part from the config, owns the libuv loop,
 * the signals (SIGTERM/SIGINT drain and stop, SIGHUP reloads the CRL, the ACL, peers, CURVE
 * keys and links), the
 * wakeup from the commit thread, the admin HTTP server and its provider, the log.
 *
 * Shutdown (drain): stop delivering, NACK new publishes SHUTTING_DOWN, let every publish
 * already read go through verify and commit and get its ACK, commit the consumer acks
 * received, then stop the threads, close the socket (lingering 1 s so the last ACKs leave)
 * and the store.
 *
 * Threads: everything here runs on the loop thread, except lt_broker_stop (any thread).
 */
#include "broker_int.h"
#include "schedule.h"
#include "sdnotify.h"
#include "link.h"
#include "zap.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define DRAIN_TIMEOUT_MS 10000
#define DRAIN_CHECK_MS 20

const char *lt_broker_endpoint(const lt_broker *b)
{
    return b->endpoint;
}

/* nextUpdate of the first CRL in path (Unix seconds), 0 if unreadable. For /readyz. */
static int64_t crl_next_update(const char *path)
{
    if (!path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    X509_CRL *crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
    fclose(f);
    int64_t t = 0;
    if (crl) {
        const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
        struct tm tm;
        if (nu && ASN1_TIME_to_tm(nu, &tm) == 1)
            t = (int64_t)timegm(&tm);
        X509_CRL_free(crl);
    }
    ERR_clear_error();
    return t;
}

/* ---- metrics collection (at each scrape, loop thread) ---- */

static void collect(void *ctx, lt_metrics *m)
{
    lt_broker *b = ctx;
    lt_dlv_collect(b, m);
    lt_metrics_set_gauge(m, LT_GAUGE_LMDB_MAP_SIZE, (int64_t)(b->cfg->map_size_mb << 20));
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", b->cfg->data_dir);
    if (stat(p, &st) == 0) /* the map is sparse: allocated blocks are what is used */
        lt_metrics_set_gauge(m, LT_GAUGE_LMDB_MAP_USED, (int64_t)st.st_blocks * 512);
    uint64_t n = 0;
    lt_why w = {{0}};
    if (lt_store_sched_count(b->store, &n, &w) == LT_OK)
        lt_metrics_set_gauge(m, LT_GAUGE_SCHEDULED, (int64_t)n);
    lt_metrics_set_gauge(m, LT_GAUGE_RETENTION_YIELDED,
                         (int64_t)lt_store_retention_yielded(b->store));
}

/* /metrics beyond the registry's own series: the network's, then the verifier's caches. */
static void write_extra_metrics(void *ctx, lt_metrics_buf *out)
{
    lt_net_write_metrics(ctx, out);
    lt_verify_write_metrics(ctx, out);
}

/* The frontend's on_stored hook: a scheduled publish tells the schedule its due time;
 * delivery steps over it until then. */
static void on_stored(lt_broker *b, const uint32_t *qids, size_t n, int64_t due_ms)
{
    if (due_ms > 0)
        lt_sched_note(b, due_ms);
    else
        lt_dlv_on_stored(b, qids, n);
}

/* ---- admin provider ---- */

static void prov_status(void *ctx, lt_admin_status *st)
{
    lt_broker *b = ctx;
    lt_why w = {{0}};
    st->store_open = b->store != NULL && lt_store_is_writable(b->store, &w);
    st->trust_loaded = b->trust != NULL;
    st->crl_configured = b->cfg->crl != NULL && b->cfg->crl[0] != '\0';
    st->crl_next_update = crl_next_update(b->cfg->crl);
    if (w.msg[0] != '\0')
        snprintf(st->store_reason, sizeof st->store_reason, "%s", w.msg);
    else
        snprintf(st->store_reason, sizeof st->store_reason, "LMDB store at %s", b->cfg->data_dir);
    snprintf(st->trust_reason, sizeof st->trust_reason, "trust root %s", b->cfg->ca);
}

static lt_err prov_overview(void *ctx, json_object **out)
{
    lt_broker *b = ctx;
    json_object *o = json_object_new_object();
    if (!o)
        return LT_ENOMEM;
    json_object_object_add(o, "name", json_object_new_string(b->cfg->name));
    json_object_object_add(o, "listen", json_object_new_string(b->endpoint));
    json_object_object_add(o, "data_dir", json_object_new_string(b->cfg->data_dir));
    json_object_object_add(o, "verify_threads", json_object_new_int64(b->nverifiers));
    json_object_object_add(o, "commit_max_batch", json_object_new_int64(b->cfg->commit_max_batch));
    json_object_object_add(o, "durability", json_object_new_string("fsync before every ack"));
    json_object_object_add(o, "peers", json_object_new_int64((int64_t)b->npeers));
    json_object_object_add(o, "malformed_frames", json_object_new_int64((int64_t)b->n_malformed));
    json_object_object_add(o, "oversized_frames", json_object_new_int64((int64_t)b->n_too_large));
    json_object_object_add(o, "failed_sends", json_object_new_int64((int64_t)b->n_dropped_sends));
    json_object_object_add(o, "draining", json_object_new_boolean(b->phase != LT_PHASE_RUNNING));
    *out = o;
    return LT_OK;
}

/* The admin token: first line of token_file; created (random, 0600) if missing so a
 * fresh install has one. */
static lt_err admin_token(const char *path, char *tok, size_t cap, lt_why *why)
{
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) {
        uint8_t rnd[24];
        if (lt_pki_random(rnd, sizeof rnd, why) != LT_OK)
            return LT_ECRYPTO;
        char hex[49];
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            return lt_fail(why, LT_ECONFIG, "broker.admin.token_file: cannot create %s: %s", path,
                           strerror(errno));
        dprintf(fd, "%s\n", hex);
        close(fd);
        lt_log(LT_LOG_INFO, "admin token created in %s", path);
        f = fopen(path, "r");
    }
    if (!f)
        return lt_fail(why, LT_ECONFIG, "broker.admin.token_file: cannot read %s: %s", path,
                       strerror(errno));
    if (!fgets(tok, (int)cap, f))
        tok[0] = '\0';
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    if (strlen(tok) < LT_ADMIN_TOKEN_MIN)
        return lt_fail(why, LT_ECONFIG,
                       "broker.admin.token_file: %s: token shorter than %d characters", path,
                       LT_ADMIN_TOKEN_MIN);
    return LT_OK;
}

static lt_err admin_open(lt_broker *b, lt_why *why)
{
    const char *file = b->cfg->file ? b->cfg->file : "broker.yaml";
    lt_admin_config ac;
    lt_admin_config_defaults(&ac);
    char host[256];
    lt_why w = {{0}};
    if (lt_admin_parse_listen(b->cfg->admin_listen, host, sizeof host, &ac.port, &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: broker.admin.listen: %s", file, w.msg);
    ac.host = host;
    char tok[512];
    if (admin_token(b->cfg->admin_token_file, tok, sizeof tok, &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: %s", file, w.msg);
    ac.token = tok;
    ac.data_dir = b->cfg->data_dir;
    ac.allow_remote = b->cfg->admin_allow_remote;
    ac.min_free_bytes = b->cfg->admin_min_free_mb << 20;
    lt_admin_provider p = {
        .ctx = b,
        .status = prov_status,
        .overview = prov_overview,
        .queues = lt_dlv_admin_queues,
        .dlq = lt_dlv_admin_dlq,
        .dossier = lt_dossier_admin_get,
        .dossiers_due = lt_dossier_admin_due,
        .links = lt_net_admin_links,
    };
    lt_err e = lt_admin_new(&ac, b->metrics, &p, &b->admin, &w);
    memset(tok, 0, sizeof tok);
    if (e != LT_OK)
        return lt_fail(why, e == LT_ECONFIG ? LT_ECONFIG : e, "%s: broker.admin: %s", file, w.msg);
    return LT_OK;
}

/* ---- signals, wakeups, drain ---- */

/* The commit thread moved on: answer the publishes it finished, hand its jobs back to
 * delivery (admin DLQ requests) and the schedule, and deliver what was stored. */
static void on_committed(lt_broker *b)
{
    lt_fe_on_done(b);
    for (lt_job *j = lt_ring_take_jobs(b), *next; j; j = next) {
        next = j->next;
        if (lt_sched_owns_job(j))
            lt_sched_on_job_done(b, j);
        else
            lt_dlv_on_job_done(b, j);
    }
    lt_dlv_flush(b);
}

static void finish(lt_broker *b)
{
    if (b->phase == LT_PHASE_DONE)
        return;
    /* everything read was answered or is committed: stop the threads, answer the rest */
    lt_verify_stop(b);
    lt_commit_stop(b);
    on_committed(b);
    b->phase = LT_PHASE_DONE;
    uv_timer_stop(&b->hb_timer);
    lt_sched_stop(b);
    if (b->admin)
        lt_admin_stop(b->admin);
    uv_stop(&b->loop);
}

static void check_drain(lt_broker *b)
{
    if (b->phase != LT_PHASE_DRAINING)
        return;
    bool empty = b->ring.tail == b->ring.fill && lt_commit_is_idle(b);
    if (empty) {
        lt_log(LT_LOG_INFO, "drained: every accepted publish committed and answered");
        finish(b);
    } else if ((int64_t)uv_now(&b->loop) >= b->drain_deadline) {
        lt_log(LT_LOG_WARN,
                      "drain took over %d ms: stopping anyway (what was "
                      "committed is safe)",
                      DRAIN_TIMEOUT_MS);
        b->run_result = LT_ETIMEDOUT;
        finish(b);
    }
}

static void on_hb(uv_timer_t *t);

static void begin_drain(lt_broker *b, const char *why)
{
    if (b->phase != LT_PHASE_RUNNING)
        return;
    lt_log(LT_LOG_INFO, "%s: shutting down (stop accepting, finish in-flight commits)", why);
    b->phase = LT_PHASE_DRAINING;
    lt_links_stop(&b->links); /* their records in flight return to their source queues */
    b->drain_deadline = (int64_t)uv_now(&b->loop) + DRAIN_TIMEOUT_MS;
    lt_ring_publish(b);
    lt_fe_drain_mode(b);
    uv_timer_start(&b->hb_timer, on_hb, DRAIN_CHECK_MS, DRAIN_CHECK_MS);
    check_drain(b);
}

static void on_hb(uv_timer_t *t)
{
    lt_broker *b = t->data;
    if (b->phase == LT_PHASE_DRAINING) {
        check_drain(b);
        return;
    }
    lt_fe_heartbeat(b);
}

static void reload_links(lt_broker *b, const lt_broker_cfg *next);

/* SIGHUP: the CRL, then the config file once more: the ACL with the peers and their relay
 * patterns, the CURVE key table (curve_clients, peers' curve_key), the links. The ACL, peers
 * and keys are built completely from the new file before any is put in force, so a file
 * that fails leaves all of them as they were. */
static void reload(lt_broker *b)
{
    lt_why why = {{0}};
    lt_log(LT_LOG_INFO, "SIGHUP: reloading the CRL, the ACL, peers, curve_clients and links");
    if (b->cfg->crl && b->cfg->crl[0]) {
        lt_err e = lt_trust_reload_crl(b->trust, &why);
        if (e == LT_OK) {
            lt_trust_stats st;
            lt_trust_get_stats(b->trust, &st);
            lt_log(LT_LOG_INFO, "CRL reloaded from %s: %zu revoked serials", b->cfg->crl,
                          st.crl_revoked);
        } else {
            lt_log(LT_LOG_ERROR, "CRL reload failed, previous CRL stays in force: %s: %s",
                          lt_err_name(e), why.msg);
        }
    }
    const char *path = b->config_path ? b->config_path : b->cfg->file;
    lt_broker_cfg *next = NULL;
    lt_acl *nacl = NULL;
    lt_zap_keys *keys = NULL;
    lt_err e = lt_broker_config_load(path, &next, &why);
    if (e == LT_OK)
        e = lt_broker_config_acl_next(b->cfg, next, &nacl, &why);
    if (e == LT_OK && b->zap)
        e = lt_zap_keys_new(next, b->curve_public, b->self_agency, b->cfg->identity_cert, &keys,
                            &why);
    if (e != LT_OK) {
        lt_log(LT_LOG_ERROR, "config reload failed, the previous ACL, peers, curve_clients and "
                             "links stay in force: %s", why.msg);
        lt_acl_destroy(&nacl);
        lt_broker_config_destroy(&next);
        /* the CRL may still have revoked a key's certificate */
        size_t closed = lt_net_curve_recheck(b);
        if (closed)
            lt_log(LT_LOG_WARN, "%zu CURVE connections closed: their key is no longer accepted",
                   closed);
        return;
    }
    lt_acl_cell_swap(&b->acl, nacl);
    lt_log(LT_LOG_INFO, "ACL reloaded from %s: %zu peers", path, next->npeers);
    if (keys) {
        size_t nkeys = lt_zap_keys_count(keys);
        lt_zap_swap(b->zap, keys);
        lt_log(LT_LOG_INFO, "CURVE keys reloaded from %s: %zu keys", path, nkeys);
    }
    size_t closed = lt_net_curve_recheck(b);
    if (closed)
        lt_log(LT_LOG_WARN, "%zu CURVE connections closed: their key is no longer accepted",
               closed);
    reload_links(b, next);
    lt_broker_config_destroy(&next);
}

static void on_signal(uv_signal_t *h, int sig)
{
    lt_broker *b = h->data;
    if (sig == SIGHUP) {
        reload(b);
        return;
    }
    if (b->phase == LT_PHASE_DRAINING) {
        lt_log(LT_LOG_WARN, "%s again while draining: still draining (at most %d ms)",
                      strsignal(sig), DRAIN_TIMEOUT_MS);
        return;
    }
    begin_drain(b, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_async(uv_async_t *h)
{
    lt_broker *b = h->data;
    on_committed(b);
    check_drain(b);
}

static void on_stop_async(uv_async_t *h)
{
    lt_broker *b = h->data;
    begin_drain(b, "stop requested");
}

void lt_broker_stop(lt_broker *b)
{
    uv_async_send(&b->stop_async);
}

/* ---- life cycle ---- */

static lt_err register_agencies(lt_broker *b)
{
    const lt_broker_cfg *c = b->cfg;
    for (size_t i = 0; i < c->nacl; i++)
        lt_metrics_agency(b->metrics, c->acl[i].agency, c->acl[i].name);
    for (size_t i = 0; i < c->nadmins; i++)
        lt_metrics_agency(b->metrics, c->admins[i], NULL);
    for (size_t i = 0; i < c->nqueues; i++)
        lt_metrics_agency(b->metrics, c->queues[i].owner, NULL);
    return LT_OK;
}

/* ---- the network (link.h): this broker's identity, its links ---- */

/* The CURVE key pair from path: its first line is the secret key (Z85, 40 characters);
 * the public key is derived from it. */
static lt_err curve_keys(const char *path, char pub[41], char sec[41], lt_why *why)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return lt_fail(why, LT_ECONFIG, "cannot read %s: %s", path, strerror(errno));
    char line[128] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    uint8_t raw[32];
    if (strlen(line) != 40 || !zmq_z85_decode(raw, line) || zmq_curve_public(pub, line) != 0) {
        memset(line, 0, sizeof line);
        return lt_fail(why, LT_ECONFIG, "%s: the first line must be a CURVE secret key (40 "
                                        "characters of Z85; lienthong curve-keygen)", path);
    }
    memcpy(sec, line, 41);
    memset(line, 0, sizeof line);
    return LT_OK;
}

static lt_err check_links(const lt_broker_cfg *c, const lt_broker_cfg *queues_from,
                          const char *self_agency, lt_why *why);

/* Know our identity; a forward link consumes a local queue as that identity, so it must
 * own the queue. */
static lt_err net_open(lt_broker *b, lt_why *why)
{
    const lt_broker_cfg *c = b->cfg;
    const char *file = c->file ? c->file : "broker.yaml";
    lt_why w = {{0}};
    lt_err e;
    if (c->identity_key &&
        lt_links_identity(c->identity_key, c->identity_cert, b->self_agency, &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: %s", file, w.msg);
    if (c->curve_listen) {
        if ((e = curve_keys(c->curve_secret_file, b->curve_public, b->curve_secret, &w)) != LT_OK)
            return lt_fail(why, LT_ECONFIG, "%s: broker.curve.secret_key_file: %s", file, w.msg);
        lt_zap_keys *keys = NULL;
        if ((e = lt_zap_keys_new(c, b->curve_public, b->self_agency, c->identity_cert, &keys,
                                 why)) != LT_OK ||
            (e = lt_zap_start(b->zctx, b->trust, keys, &b->zap, why)) != LT_OK ||
            (e = lt_fe_bind_curve(b, why)) != LT_OK)
            return e;
        lt_log(LT_LOG_INFO, "CURVE on %s, public key %s", c->curve_listen, b->curve_public);
    }
    return check_links(c, b->cfg, b->self_agency, why);
}

/* Each forward link of c consumes a queue of queues_from (the queues the broker runs) as
 * this broker's identity self_agency, which must own it. */
static lt_err check_links(const lt_broker_cfg *c, const lt_broker_cfg *queues_from,
                          const char *self_agency, lt_why *why)
{
    for (size_t i = 0; i < c->nlinks; i++) {
        const lt_bcfg_link *l = &c->links[i];
        const lt_bcfg_queue *q = lt_broker_config_queue(queues_from, l->queue);
        if (l->receive)
            continue;
        if (!q)
            return lt_fail(why, LT_ECONFIG, "%s:%d: links: link %s forwards queue %s, which this "
                           "broker does not run (a new queue needs a restart)", c->file, l->line,
                           l->name, l->queue);
        if (strcmp(q->owner, self_agency) != 0)
            return lt_fail(why, LT_ECONFIG,
                           "%s:%d: links: link %s forwards queue %s, owned by %s: a link "
                           "consumes as this broker's identity %s, which must own it",
                           c->file, l->line, l->name, q->name, q->owner, self_agency);
    }
    return LT_OK;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: start the links of next added to the config, stop the removed ones, restart the
 * changed ones (a peer's curve_key changed restarts its links). The identity and the broker's
 * name are read at start only: a change there is refused rather than half-applied. */
static void reload_links(lt_broker *b, const lt_broker_cfg *next)
{
    if (!b->links)
        return;
    lt_why why = {{0}};
    lt_err e = LT_OK;
    if (!same_str(next->identity_key, b->cfg->identity_key) ||
        !same_str(next->identity_cert, b->cfg->identity_cert) ||
        strcmp(next->name, b->cfg->name) != 0)
        e = lt_fail(&why, LT_ECONFIG, "broker.name or broker.identity changed: that needs a "
                                      "restart");
    else
        e = check_links(next, b->cfg, b->self_agency, &why);
    size_t added = 0, removed = 0;
    if (e == LT_OK)
        e = lt_links_reload(b->links, next, &added, &removed, &why);
    if (e != LT_OK)
        lt_log(LT_LOG_ERROR, "links not reloaded, the running ones stay: %s", why.msg);
    else
        lt_log(LT_LOG_INFO, "links reloaded from %s: %zu started, %zu stopped, %zu running",
               next->file, added, removed, lt_links_count(b->links));
}

lt_err lt_broker_new(const lt_broker_cfg *cfg, const lt_broker_opts *opts, lt_broker **out,
                     lt_why *why)
{
    const char *file = cfg->file ? cfg->file : "broker.yaml";
    lt_broker *b = calloc(1, sizeof *b);
    if (!b)
        return lt_fail(why, LT_ENOMEM, "no memory for the broker");
    lt_err e = LT_OK;
    lt_why w = {{0}};
    b->cfg = cfg;
    b->heartbeat_ms = opts && opts->heartbeat_ms ? opts->heartbeat_ms : 5000;
    const char *cp = opts && opts->config_path ? opts->config_path : cfg->file;
    b->config_path = cp ? strdup(cp) : NULL;
    b->run_result = LT_OK;
    if (uv_loop_init(&b->loop) != 0) {
        free(b->config_path);
        free(b);
        return lt_fail(why, LT_EIO, "cannot create the event loop");
    }
    b->loop.data = b;
    lt_acl_cell_init(&b->acl, NULL);
    uv_async_init(&b->loop, &b->async, on_async);
    uv_async_init(&b->loop, &b->stop_async, on_stop_async);
    uv_timer_init(&b->loop, &b->hb_timer);
    uv_signal_init(&b->loop, &b->sig_int);
    uv_signal_init(&b->loop, &b->sig_term);
    uv_signal_init(&b->loop, &b->sig_hup);
    b->async.data = b->stop_async.data = b->hb_timer.data = b;
    b->sig_int.data = b->sig_term.data = b->sig_hup.data = b;
    *out = b; /* from here on lt_broker_destroy undoes whatever was done */

    b->env_limits = lt_env_limits_default();
    b->env_limits.max_envelope = cfg->max_frame_bytes;
    if (b->env_limits.max_payload > cfg->max_frame_bytes)
        b->env_limits.max_payload = cfg->max_frame_bytes;
    if (b->env_limits.max_header > cfg->max_frame_bytes)
        b->env_limits.max_header = cfg->max_frame_bytes;

    if ((e = lt_metrics_new(256, 4096, &b->metrics)) != LT_OK) {
        e = lt_fail(why, e, "no memory for metrics");
        goto fail;
    }
    register_agencies(b);

    lt_trust_opts to = lt_trust_opts_default();
    to.clock_skew_ms = (int64_t)cfg->clock_skew_s * 1000;
    e = lt_trust_open(cfg->ca, cfg->crl && cfg->crl[0] ? cfg->crl : NULL, &to, &b->trust, &w);
    if (e != LT_OK) {
        e = lt_fail(why, LT_ECONFIG, "%s: %s: %s", file, e == LT_ECRL ? "trust.crl" : "trust.ca",
                    w.msg);
        goto fail;
    }
    if ((e = lt_broker_config_acl(cfg, &b->acl.acl, &w)) != LT_OK) {
        e = lt_fail(why, e, "%s: acl: %s", file, w.msg);
        goto fail;
    }

    lt_store_opts so = {
        .dir = cfg->data_dir,
        .map_size = cfg->map_size_mb << 20,
        .max_readers = 0,
        .dedup_window_ms = (int64_t)cfg->dedup_window_s * 1000,
    };
    if ((e = lt_store_open(&b->store, &so, &w)) != LT_OK) {
        e = lt_fail(why, e == LT_EIO ? LT_ECONFIG : e, "%s: broker.data_dir: %s", file, w.msg);
        goto fail;
    }
    lt_log(LT_LOG_INFO, "store %s open, next seq %llu", cfg->data_dir,
                  (unsigned long long)lt_store_next_seq(b->store));
    if ((e = lt_ring_init(&b->ring, LT_RING_SLOTS)) != LT_OK) {
        e = lt_fail(why, e, "no memory for the publish ring");
        goto fail;
    }
    if ((e = lt_dlv_open(b, why)) != LT_OK || (e = lt_dossier_open(b, why)) != LT_OK)
        goto fail;
    lt_metrics_set_collect(b->metrics, collect, b);
    lt_metrics_set_extra(b->metrics, write_extra_metrics, b);
    b->fe_hooks = (lt_fe_hooks){.on_frame = lt_dlv_on_frame,
                                .on_session_end = lt_dlv_on_session_end,
                                .on_stored = on_stored,
                                .on_cancel = lt_sched_on_cancel,
                                .on_curve_conn = lt_net_curve_conn};
    if ((e = lt_fe_open(b, why)) != LT_OK)
        goto fail;
    if ((e = net_open(b, why)) != LT_OK)
        goto fail;
    if ((e = admin_open(b, why)) != LT_OK)
        goto fail;

    unsigned nv = cfg->verify_threads;
    if (nv == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nv = n > 0 ? (unsigned)n : 1;
    }
    if ((e = lt_verify_start(b, nv, why)) != LT_OK)
        goto fail;
    if ((e = lt_commit_start(b, why)) != LT_OK)
        goto fail;
    return LT_OK;
fail:
    lt_broker_destroy(out);
    return e;
}

lt_err lt_broker_check(const lt_broker_cfg *cfg, lt_why *why)
{
    const char *file = cfg->file ? cfg->file : "broker.yaml";
    lt_trust *t = NULL;
    lt_trust_opts to = lt_trust_opts_default();
    lt_why w = {{0}};
    lt_err e = lt_trust_open(cfg->ca, cfg->crl && cfg->crl[0] ? cfg->crl : NULL, &to, &t, &w);
    if (e != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: %s: %s", file, e == LT_ECRL ? "trust.crl" : "trust.ca",
                       w.msg);
    lt_trust_destroy(&t);
    lt_acl *acl = NULL;
    if ((e = lt_broker_config_acl(cfg, &acl, &w)) != LT_OK)
        return lt_fail(why, e, "%s: acl: %s", file, w.msg);
    lt_acl_destroy(&acl);
    char host[256];
    uint16_t port;
    if (lt_admin_parse_listen(cfg->admin_listen, host, sizeof host, &port, &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: broker.admin.listen: %s", file, w.msg);
    /* the network: the identity and the CURVE key open */
    char agency[LT_AGENCY_ID_MAX], pub[41], sec[41];
    if (cfg->identity_key && lt_links_identity(cfg->identity_key, cfg->identity_cert, agency,
                                               &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: %s", file, w.msg);
    if (cfg->curve_listen && curve_keys(cfg->curve_secret_file, pub, sec, &w) != LT_OK)
        return lt_fail(why, LT_ECONFIG, "%s: broker.curve.secret_key_file: %s", file, w.msg);
    memset(sec, 0, sizeof sec);
    lt_zap_keys *keys = NULL; /* every curve_clients / peers cert readable, of its agency */
    if (cfg->curve_listen &&
        (e = lt_zap_keys_new(cfg, pub, cfg->identity_key ? agency : NULL, cfg->identity_cert,
                             &keys, why)) != LT_OK)
        return e;
    lt_zap_keys_rele(&keys);
    return lt_dossier_check_config(cfg, why);
}

lt_err lt_broker_run(lt_broker *b)
{
    lt_why why = {{0}};
    lt_err e = lt_fe_start(b, &why);
    if (e != LT_OK) {
        lt_log(LT_LOG_ERROR, "%s", why.msg);
        return e;
    }
    if (b->admin) {
        e = lt_admin_start(b->admin, &b->loop, &why);
        if (e != LT_OK) {
            lt_log(LT_LOG_ERROR, "admin server: %s", why.msg);
            return e;
        }
        char host[256];
        uint16_t port = 0;
        lt_why w2 = {{0}};
        if (lt_admin_parse_listen(b->cfg->admin_listen, host, sizeof host, &port, &w2) != LT_OK)
            snprintf(host, sizeof host, "?");
        snprintf(b->admin_addr, sizeof b->admin_addr, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
                 lt_admin_port(b->admin));
    } else {
        snprintf(b->admin_addr, sizeof b->admin_addr, "off");
    }
    uv_signal_start(&b->sig_int, on_signal, SIGINT);
    uv_signal_start(&b->sig_term, on_signal, SIGTERM);
    uv_signal_start(&b->sig_hup, on_signal, SIGHUP);
    uv_timer_start(&b->hb_timer, on_hb, b->heartbeat_ms, b->heartbeat_ms);
    b->phase = LT_PHASE_RUNNING;
    lt_why sw = {{0}};
    if (lt_sched_start(b, &sw) != LT_OK) {
        lt_log(LT_LOG_ERROR, "scheduled delivery cannot start: %s", sw.msg);
        return LT_ESTORE;
    }
    lt_dlv_flush(b); /* start delivering what the store holds */
    if ((e = lt_links_start(b->cfg, b->endpoint, b->curve_public, b->curve_secret, &b->links,
                            &why)) != LT_OK) {
        lt_log(LT_LOG_ERROR, "links: %s", why.msg);
        return e;
    }
    lt_log(LT_LOG_INFO, "%s ready: %u verify threads, %zu queues, commit batches up to %u",
                  b->cfg->name, b->nverifiers, b->nqueues, b->cfg->commit_max_batch);
    /* The line integration tests and scripts wait for (exact format). */
    fprintf(stderr, "lienthongd: ready listen=%s admin=%s\n", b->endpoint, b->admin_addr);
    fflush(stderr);
    lt_why nw = {{0}}; /* systemd Type=notify readiness (sdnotify.h); a no-op elsewhere */
    if (lt_sd_notify("READY=1", &nw) != LT_OK)
        lt_log(LT_LOG_WARN, "%s", nw.msg);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return b->run_result;
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, on_close_noop);
}

void lt_broker_destroy(lt_broker **bp)
{
    lt_broker *b = bp ? *bp : NULL;
    if (!b)
        return;
    /* threads first: nothing may touch the loop's handles or the store after */
    lt_links_stop(&b->links);
    lt_verify_stop(b);
    lt_commit_stop(b);
    if (b->admin)
        lt_admin_destroy(&b->admin);
    lt_dlv_close(b);
    lt_zap_stop(&b->zap); /* its socket, before the frontend terminates the context */
    lt_fe_close(b);
    close_handle((uv_handle_t *)&b->async);
    close_handle((uv_handle_t *)&b->stop_async);
    close_handle((uv_handle_t *)&b->hb_timer);
    if (b->sched_timer_init)
        close_handle((uv_handle_t *)&b->sched_timer);
    close_handle((uv_handle_t *)&b->sig_int);
    close_handle((uv_handle_t *)&b->sig_term);
    close_handle((uv_handle_t *)&b->sig_hup);
    uv_run(&b->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    if (uv_loop_close(&b->loop) != 0)
        lt_log(LT_LOG_WARN, "event loop closed with handles still open");
    lt_dlv_free(b);
    lt_ring_fini(&b->ring);
    lt_store_close(&b->store);
    lt_dossier_close(b);
    lt_trust_destroy(&b->trust);
    lt_acl_cell_fini(&b->acl);
    lt_metrics_destroy(&b->metrics);
    memset(b->curve_secret, 0, sizeof b->curve_secret);
    free(b->config_path);
    free(b);
    *bp = NULL;
}
