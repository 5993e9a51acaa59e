/*
 * verifier.c - the publish ring (see broker_int.h) and the verify pool: N threads that take
 * batches of filled slots and, for each, decode the envelope, check its record type and
 * schema version, verify it against the trust root (signature or batch proof, chain,
 * validity, CRL, source = certificate agency), check the publish ACL, decode the payload as
 * its record type and find the queues its topic routes to; or, for an AUTH slot,
 * check the certificate and the signature over the challenge nonce.
 *
 * Threads: the ring's producer side (lt_ring_slot_next / fill_done / publish) is the loop
 * thread's; verifier threads touch only the slots they claimed, and the ring cursors under
 * its mutex. The router is read-only after start; the ACL is read under the broker's
 * rwlock (swapped on SIGHUP); lt_trust is thread-safe.
 */
#include "broker_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VERIFY_BATCH_MAX 32

lt_err lt_ring_init(lt_ring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0 || (cap & (cap - 1)) != 0)
        return LT_EINVAL;
    r->slots = calloc(cap, sizeof *r->slots);
    if (!r->slots)
        return LT_ENOMEM;
    r->cap = cap;
    r->mask = cap - 1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv_verify, NULL);
    pthread_cond_init(&r->cv_commit, NULL);
    pthread_cond_init(&r->cv_sync, NULL);
    return LT_OK;
}

void lt_ring_fini(lt_ring *r)
{
    if (!r->slots)
        return;
    for (size_t i = 0; i < r->cap; i++) {
        free(r->slots[i].buf);
        free(r->slots[i].qids);
        free(r->slots[i].dossier);
    }
    free(r->slots);
    for (size_t i = 0; i < r->ops.n; i++)
        free(r->ops.v[i].reason);
    free(r->ops.v);
    lt_job *lists[2] = {r->jobs_done, r->jobs_sync};
    for (int l = 0; l < 2; l++)
        while (lists[l]) {
            lt_job *j = lists[l];
            lists[l] = j->next;
            free(j->seqs);
            free(j->ok);
            free(j);
        }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv_verify);
    pthread_cond_destroy(&r->cv_commit);
    pthread_cond_destroy(&r->cv_sync);
    memset(r, 0, sizeof *r);
}

lt_job *lt_ring_take_jobs(lt_broker *b)
{
    lt_ring *r = &b->ring;
    pthread_mutex_lock(&r->mu);
    lt_job *jobs = r->jobs_done;
    r->jobs_done = NULL;
    pthread_mutex_unlock(&r->mu);
    return jobs;
}

bool lt_ring_has_room(const lt_broker *b)
{
    const lt_ring *r = &b->ring;
    return r->fill - r->tail < r->cap && r->bytes < LT_RING_BYTES;
}

lt_slot *lt_ring_slot_next(lt_broker *b)
{
    lt_ring *r = &b->ring;
    if (!lt_ring_has_room(b))
        return NULL;
    lt_slot *s = &r->slots[r->fill & r->mask];
    s->kind = 0;
    s->len = 0;
    s->conn = s->session = 0;
    s->charged = 0;
    s->charged_unauth = false;
    s->err = LT_OK;
    s->why.msg[0] = '\0';
    s->nq = 0;
    s->seq = 0;
    s->dup = false;
    s->has_cert = false;
    s->verified = false;
    s->relay_peer = -1;
    s->hops_len = 0;
    s->zap_user[0] = '\0';
    s->agency_slot = LT_METRICS_AGENCY_UNKNOWN;
    s->agency[0] = '\0';
    s->t_in_ns = b->t_batch_ns;
    return s;
}

void lt_ring_fill_done(lt_broker *b, lt_slot *s)
{
    lt_ring *r = &b->ring;
    assert(s == &r->slots[r->fill & r->mask]);
    r->fill++;
    r->bytes += s->len;
}

void lt_ring_publish(lt_broker *b)
{
    lt_ring *r = &b->ring;
    if (r->fill == r->head) /* head only moves here, on this thread */
        return;
    pthread_mutex_lock(&r->mu);
    r->head = r->fill;
    pthread_cond_broadcast(&r->cv_verify);
    pthread_mutex_unlock(&r->mu);
}

lt_err lt_slot_reserve(lt_slot *s, size_t len)
{
    if (len <= s->cap)
        return LT_OK;
    size_t ncap = s->cap ? s->cap : 1024;
    while (ncap < len)
        ncap *= 2;
    uint8_t *nb = malloc(ncap);
    if (!nb)
        return LT_ENOMEM;
    free(s->buf);
    s->buf = nb;
    s->cap = ncap;
    return LT_OK;
}

static void hex16(const uint8_t *id, char out[33])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = d[id[i] >> 4];
        out[2 * i + 1] = d[id[i] & 15];
    }
    out[32] = '\0';
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool lt_verify_cert_field(const uint8_t *p, size_t n, size_t *field_off, size_t *field_len,
                          size_t *der_off, size_t *der_len)
{
    size_t at = 0, found = 0;
    while (at < n) {
        size_t start = at;
        uint64_t key, len;
        if (!lt_env_wire_varint(p, n, &at, &key))
            return false;
        switch (key & 7) {
        case 0:
            if (!lt_env_wire_varint(p, n, &at, &len))
                return false;
            break;
        case 1:
            if (n - at < 8)
                return false;
            at += 8;
            break;
        case 2:
            if (!lt_env_wire_varint(p, n, &at, &len) || len > n - at)
                return false;
            if (key >> 3 == 5) {
                found++;
                *field_off = start;
                *der_off = at;
                *der_len = (size_t)len;
            }
            at += (size_t)len;
            if (key >> 3 == 5)
                *field_len = at - start;
            break;
        case 5:
            if (n - at < 4)
                return false;
            at += 4;
            break;
        default:
            return false;
        }
    }
    return found == 1;
}

/* A record a peer broker relays may have waited in queues on its way (a link down for
 * hours): it is verified as every consumer verifies what it received (at its created time,
 * CRL in force now), and accepted while it is younger than dedup_window_s - clock_skew_s,
 * so a resend of it is still recognised as a duplicate here. Older: CLOCK_SKEW. */
static lt_err verify_relayed(lt_broker *b, const lt_env *env, int64_t now_ms, lt_why *why)
{
    lt_err e = lt_env_verify_received(env, b->trust, now_ms, why);
    if (e != LT_OK)
        return e;
    int64_t max_age = ((int64_t)b->cfg->dedup_window_s - (int64_t)b->cfg->clock_skew_s) * 1000;
    int64_t age = now_ms - lt_env_created_ms(env);
    if (age > max_age)
        return lt_fail(why, LT_ESKEW,
                       "relayed record created %lld s ago: older than dedup_window_s - "
                       "clock_skew_s (%lld s), a resend could no longer be told from it",
                       (long long)(age / 1000), (long long)(max_age / 1000));
    return LT_OK;
}

/* Route buffer per thread: lt_router_match writes here, the slot keeps what matched. */
typedef struct vctx {
    lt_broker *b;
    uint32_t targets[LT_MAX_TARGETS];
} vctx;

static void verify_publish(vctx *v, lt_slot *s, const lt_acl *acl, int64_t now_ms)
{
    lt_broker *b = v->b;
    lt_env *env = NULL;
    const char *src = NULL, *topic = NULL;
    int64_t t0 = mono_ns();
    lt_err e = lt_env_decode(s->buf, s->len, &b->env_limits, &env, &s->why);
    if (e != LT_OK)
        goto out;
    memcpy(s->msg_id, lt_env_message_id(env), LT_STORE_ID_LEN);
    src = lt_env_source(env);
    topic = lt_env_topic(env);
    /* record type and schema version from the header: no signature math for what we refuse
     * anyway; the payload is decoded only once the signature holds and the ACL allows */
    e = lt_env_check_record_type(env, &s->why);
    if (e == LT_OK && s->relay_peer != -1)
        e = verify_relayed(b, env, now_ms, &s->why);
    else if (e == LT_OK)
        e = lt_env_verify(env, b->trust, now_ms, &s->why);
    if (e != LT_OK)
        goto out;
    /* Known agency now (its certificate chains to our root): give it a metrics slot. */
    s->agency_slot = lt_metrics_agency(b->metrics, src, NULL);
    if (s->agency_slot < 0)
        s->agency_slot = LT_METRICS_AGENCY_OTHER;
    e = lt_acl_check_publish(acl, src, topic, &s->why);
    /* a peer broker relays only the topics of its relay patterns in the ACL in force (after
     * the source agency's own ACL: a link never widens what an agency may publish) */
    if (e == LT_OK && s->relay_peer == LT_LINK_PEER)
        e = lt_acl_check_relay(acl, s->relay_agency, topic, &s->why);
    if (e == LT_OK)
        e = lt_env_check_record(env, &s->why);
    if (e == LT_OK && s->due_ms > 0 && !lt_broker_config_due_ok(b->cfg, s->due_ms, now_ms, &s->why))
        e = LT_ESCHEDULE;
    if (e != LT_OK)
        goto out;
    size_t n = 0;
    e = lt_router_match(b->router, topic, v->targets, LT_MAX_TARGETS, &n, &s->why);
    if (e == LT_ETOOBIG)
        e = lt_fail(&s->why, LT_EINVAL, "topic %s routes to more than %d queues", topic,
                    LT_MAX_TARGETS);
    if (e != LT_OK)
        goto out;
    if (n == 0) {
        e = lt_fail(&s->why, LT_ENOROUTE, "topic %s matches no queue", topic);
        goto out;
    }
    if (n > s->qcap) {
        uint32_t *nq = realloc(s->qids, n * sizeof *nq);
        if (!nq) {
            e = lt_fail(&s->why, LT_ESTORE, "out of memory routing %s", topic);
            goto out;
        }
        s->qids = nq;
        s->qcap = n;
    }
    memcpy(s->qids, v->targets, n * sizeof *s->qids);
    s->nq = n;
    /* the certificate the verify checked (its SHA-256 is the key id), located in the raw
     * bytes for the store */
    size_t cl = 0;
    const uint8_t *cert = lt_env_certificate(env, &cl);
    /* what dedup tells records apart by (store.h lt_store_msgkey) */
    size_t sl = strnlen(src, sizeof s->agency - 1); /* a normalized agency id: it fits */
    memcpy(s->agency, src, sl);
    s->agency[sl] = '\0';
    memcpy(s->payload_sha256, lt_env_payload_sha256(env), sizeof s->payload_sha256);
    memcpy(s->key_id, lt_env_key_id(env), sizeof s->key_id);
    s->has_cert = lt_verify_cert_field(s->buf, s->len, &s->cert_field_off, &s->cert_field_len,
                                       &s->cert_der_off, &s->cert_der_len) &&
                  s->cert_der_len == cl && memcmp(s->buf + s->cert_der_off, cert, cl) == 0;
    e = lt_dossier_inspect(b, s, env, now_ms, &s->why); /* procedures (dossier.h) */
out:
    s->err = e;
    lt_metrics_on_publish(b->metrics, s->agency_slot, s->len);
    lt_metrics_observe(lt_metrics_hist(b->metrics, LT_HIST_VERIFY), (double)(mono_ns() - t0) / 1e9);
    if (e != LT_OK) {
        char idhex[33] = "";
        if (env)
            hex16(s->msg_id, idhex);
        lt_metrics_note_rejection(b->metrics, src, topic, env ? idhex : NULL, e, s->why.msg);
    }
    lt_env_destroy(&env);
}

static void verify_auth(vctx *v, lt_slot *s, int64_t now_ms)
{
    lt_broker *b = v->b;
    const uint8_t *nonce = s->buf;
    const uint8_t *cert = s->buf + LT_NONCE_LEN;
    const uint8_t *sig = cert + s->cert_len;
    char agency[LT_AGENCY_ID_MAX];
    lt_err e = lt_trust_verify_sig(b->trust, cert, s->cert_len, now_ms, LT_PKI_DOMAIN_AUTH, nonce,
                                   LT_NONCE_LEN, sig, s->sig_len, agency, &s->why);
    if (e == LT_OK && strcmp(agency, s->agency) != 0)
        e = lt_fail(&s->why, LT_EAGENCY_MISMATCH, "certificate belongs to %s, HELLO said %s",
                    agency, s->agency);
    if (e == LT_OK && s->zap_user[0] != '\0' && strcmp(agency, s->zap_user) != 0)
        e = lt_fail(&s->why, LT_EAGENCY_MISMATCH,
                    "this connection's CURVE key is bound to %s, the certificate to %s",
                    s->zap_user, agency);
    s->err = e;
}

static void *verify_main(void *arg)
{
    vctx *v = arg;
    lt_broker *b = v->b;
    lt_ring *r = &b->ring;
    pthread_setname_np(pthread_self(), "lt-verify");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->claim == r->head && !r->stop_verify)
            pthread_cond_wait(&r->cv_verify, &r->mu);
        if (r->claim == r->head)
            break; /* stopping, nothing left */
        uint64_t avail = r->head - r->claim;
        uint64_t n = avail / (b->nverifiers ? b->nverifiers : 1);
        if (n == 0)
            n = 1;
        if (n > VERIFY_BATCH_MAX)
            n = VERIFY_BATCH_MAX;
        uint64_t first = r->claim;
        r->claim += n;
        pthread_mutex_unlock(&r->mu);

        const lt_acl *acl = lt_acl_cell_hold(&b->acl);
        int64_t now_ms = lt_env_now_ms();
        for (uint64_t i = first; i < first + n; i++) {
            lt_slot *s = &r->slots[i & r->mask];
            if (s->kind == LT_SLOT_PUBLISH)
                verify_publish(v, s, acl, now_ms);
            else if (s->kind == LT_SLOT_AUTH)
                verify_auth(v, s, now_ms);
        }
        lt_acl_cell_rele(&b->acl);

        pthread_mutex_lock(&r->mu);
        for (uint64_t i = first; i < first + n; i++)
            r->slots[i & r->mask].verified = true;
        if (first <= r->commit && r->commit < first + n)
            pthread_cond_signal(&r->cv_commit);
    }
    pthread_mutex_unlock(&r->mu);
    free(v);
    return NULL;
}

void lt_verify_write_metrics(lt_broker *b, lt_metrics_buf *out)
{
    lt_trust_stats st;
    lt_trust_get_stats(b->trust, &st);
    lt_metrics_buf_printf(
        out, "# HELP lienthong_trust_cache_total Lookups in the verifier's caches: cache=cert "
             "(parsed, chain-checked certificates), cache=batch_root (batch signatures already "
             "verified). result=miss did the work; result=wait found a batch root verified by "
             "another verify thread after waiting for it (one signature per batch, however the "
             "pool splits it).\n# TYPE lienthong_trust_cache_total counter\n");
    const struct {
        const char *cache, *result;
        uint64_t n;
    } rows[] = {{"cert", "hit", st.cert_hits},          {"cert", "miss", st.cert_misses},
                {"batch_root", "hit", st.root_hits},    {"batch_root", "miss", st.root_misses},
                {"batch_root", "wait", st.root_waits}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        lt_metrics_buf_printf(out, "lienthong_trust_cache_total{cache=\"%s\",result=\"%s\"} %llu\n",
                              rows[i].cache, rows[i].result, (unsigned long long)rows[i].n);
}

lt_err lt_verify_start(lt_broker *b, unsigned n, lt_why *why)
{
    b->verifiers = calloc(n, sizeof *b->verifiers);
    if (!b->verifiers)
        return lt_fail(why, LT_ENOMEM, "no memory for %u verify threads", n);
    b->nverifiers = n;
    for (unsigned i = 0; i < n; i++) {
        vctx *v = malloc(sizeof *v);
        if (!v)
            return lt_fail(why, LT_ENOMEM, "no memory for verify thread %u", i);
        v->b = b;
        int rc = pthread_create(&b->verifiers[i], NULL, verify_main, v);
        if (rc != 0) {
            free(v);
            return lt_fail(why, LT_ENOMEM, "cannot start verify thread %u: %s", i, strerror(rc));
        }
        b->verifiers_started++;
    }
    return LT_OK;
}

void lt_verify_stop(lt_broker *b)
{
    lt_ring *r = &b->ring;
    if (!r->slots)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop_verify = true;
    pthread_cond_broadcast(&r->cv_verify);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < b->verifiers_started; i++)
        pthread_join(b->verifiers[i], NULL);
    b->verifiers_started = 0;
    free(b->verifiers);
    b->verifiers = NULL;
}
