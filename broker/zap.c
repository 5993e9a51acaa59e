/*
 * zap.c - the ZAP handler: CURVE public key -> agency id (contract in zap.h).
 *
 * ZAP request (RFC 27), one multipart message on the REP socket:
 *   version "1.0" | request id | domain | address | routing id | mechanism | credentials...
 * with CURVE: one credential, the client's 32-byte public key. Reply:
 *   version "1.0" | request id | status "200"/"400"/"500" | status text | user id | metadata
 * libzmq closes the connection on anything but 200 and gives the user id and the metadata
 * properties to every message of an accepted one (zmq_msg_gets "User-Id", "X-Curve-Key").
 * Metadata is ZMTP's property list: name length (1 byte) | name | value length (4 bytes,
 * network order) | value.
 *
 * Threads: the handler thread answers requests; lt_zap_swap and lt_zap_check run on any
 * thread. z->mu guards only the pointer to the table in force: a reader takes a reference
 * under it and reads the table (immutable) without it.
 */
#include "zap.h"

#include "log.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MAX_PARTS 8

typedef struct zkey {
    uint8_t key[32];
    char agency[LT_AGENCY_ID_MAX];
    uint8_t *der; /* the agency's certificate (DER), NULL when the config gives none */
    size_t der_len;
} zkey;

struct lt_zap_keys {
    atomic_uint refs;
    zkey *v;
    size_t n;
};

struct lt_zap {
    void *sock;
    pthread_t th;
    bool started;
    atomic_bool stop;
    lt_trust *trust;
    pthread_mutex_t mu; /* guards keys (the pointer) */
    lt_zap_keys *keys;
    _Atomic uint64_t accepted, unknown_key, revoked, not_allowed, other;
};

/* ---- the key table ---- */

static lt_zap_keys *keys_hold(lt_zap *z)
{
    pthread_mutex_lock(&z->mu);
    lt_zap_keys *k = z->keys;
    atomic_fetch_add(&k->refs, 1);
    pthread_mutex_unlock(&z->mu);
    return k;
}

void lt_zap_keys_rele(lt_zap_keys **kp)
{
    lt_zap_keys *k = kp ? *kp : NULL;
    if (!k)
        return;
    *kp = NULL;
    if (atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i].der);
    free(k->v);
    free(k);
}

size_t lt_zap_keys_count(const lt_zap_keys *k)
{
    return k ? k->n : 0;
}

/* The first certificate of the PEM file path as DER into k, its subject CN checked against
 * k->agency. what names the config entry for the reason. */
static lt_err load_cert(zkey *k, const char *path, const char *what, lt_why *why)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return lt_fail(why, LT_ECONFIG, "%s: cert: cannot read %s: %s", what, path,
                       strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    lt_err e = LT_OK;
    char cn[LT_AGENCY_ID_MAX] = "";
    unsigned char *der = NULL;
    int len;
    if (!x) {
        e = lt_fail(why, LT_ECONFIG, "%s: cert: %s holds no PEM certificate", what, path);
    } else if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                         sizeof cn) <= 0 ||
               strcmp(cn, k->agency) != 0) {
        e = lt_fail(why, LT_ECONFIG,
                    "%s: cert: %s is the certificate of '%s', not of %s (the agency the key "
                    "is bound to)",
                    what, path, cn, k->agency);
    } else if ((len = i2d_X509(x, &der)) <= 0) {
        e = lt_fail(why, LT_ENOMEM, "%s: cert: cannot encode %s", what, path);
    } else {
        k->der = malloc((size_t)len);
        if (!k->der)
            e = lt_fail(why, LT_ENOMEM, "out of memory");
        else
            memcpy(k->der, der, (size_t)len), k->der_len = (size_t)len;
    }
    OPENSSL_free(der);
    X509_free(x);
    ERR_clear_error();
    return e;
}

/* Append (z85, agency, cert) to t; an empty z85 is skipped. */
static lt_err add_key(lt_zap_keys *t, const char *z85, const char *agency, const char *cert,
                      const char *what, lt_why *why)
{
    if (!z85 || !z85[0])
        return LT_OK;
    zkey *k = &t->v[t->n];
    if (strlen(z85) != 40 || !zmq_z85_decode(k->key, z85))
        return lt_fail(why, LT_ECONFIG, "%s: the CURVE key of %s is not Z85", what, agency);
    snprintf(k->agency, sizeof k->agency, "%s", agency);
    if (cert) {
        lt_err e = load_cert(k, cert, what, why);
        if (e != LT_OK)
            return e;
    }
    t->n++;
    return LT_OK;
}

lt_err lt_zap_keys_new(const lt_broker_cfg *cfg, const char *self_key, const char *self_agency,
                       const char *self_cert, lt_zap_keys **out, lt_why *why)
{
    lt_zap_keys *t = calloc(1, sizeof *t);
    if (!t || !(t->v = calloc(cfg->ncurve_clients + cfg->npeers + 1, sizeof *t->v))) {
        free(t);
        return lt_fail(why, LT_ENOMEM, "no memory for the ZAP key table");
    }
    atomic_init(&t->refs, 1);
    const char *file = cfg->file ? cfg->file : "broker.yaml";
    char what[512];
    lt_err e = LT_OK;
    for (size_t i = 0; i < cfg->ncurve_clients && e == LT_OK; i++) {
        const lt_bcfg_curve_client *c = &cfg->curve_clients[i];
        snprintf(what, sizeof what, "%s:%d: curve_clients[%zu]", file, c->line, i);
        e = add_key(t, c->key, c->agency, c->cert, what, why);
    }
    for (size_t i = 0; i < cfg->npeers && e == LT_OK; i++) {
        const lt_bcfg_peer *p = &cfg->peers[i];
        snprintf(what, sizeof what, "%s:%d: peers[%zu] (%s)", file, p->line, i, p->name);
        e = add_key(t, p->curve_key, p->agency, p->cert, what, why);
    }
    if (e == LT_OK && self_key && self_key[0] && self_agency && self_agency[0]) {
        snprintf(what, sizeof what, "%s: broker.identity", file);
        e = add_key(t, self_key, self_agency, self_cert, what, why);
    }
    if (e != LT_OK) {
        lt_zap_keys_rele(&t);
        return e;
    }
    *out = t;
    return LT_OK;
}

/* ---- the verdict ---- */

static const zkey *lookup(const lt_zap_keys *t, const uint8_t *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (memcmp(t->v[i].key, key, 32) == 0)
            return &t->v[i];
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The verdict for the raw 32-byte key, with the table in force. */
static lt_zap_verdict judge(lt_zap *z, const uint8_t *key, char agency[LT_AGENCY_ID_MAX],
                            lt_why *why)
{
    lt_zap_keys *t = keys_hold(z);
    const zkey *k = lookup(t, key);
    lt_zap_verdict v = LT_ZAP_ACCEPTED;
    if (!k) {
        lt_fail(why, LT_EACL, "bound to no agency or peer in the config");
        v = LT_ZAP_UNKNOWN_KEY;
    } else {
        lt_err e = LT_OK;
        if (k->der) { /* the same check, cache and CRL as every AUTH (lt_trust is shared) */
            char cn[LT_AGENCY_ID_MAX];
            e = lt_trust_check_cert(z->trust, k->der, k->der_len, now_ms(), cn, why);
        }
        if (e == LT_ECERT_REVOKED)
            v = LT_ZAP_REVOKED;
        else if (e != LT_OK)
            v = LT_ZAP_NOT_ALLOWED;
        else
            snprintf(agency, LT_AGENCY_ID_MAX, "%s", k->agency);
        if (e != LT_OK) {
            char r[LT_WHY_MAX];
            snprintf(r, sizeof r, "%s", why ? why->msg : "");
            lt_fail(why, e, "bound to %s, whose certificate is refused: %s: %s", k->agency,
                    lt_err_name(e), r);
        }
    }
    lt_zap_keys_rele(&t);
    return v;
}

lt_zap_verdict lt_zap_check(lt_zap *z, const char *z85, char agency[LT_AGENCY_ID_MAX],
                            lt_why *why)
{
    uint8_t raw[32];
    if (!z85 || strlen(z85) != 40 || !zmq_z85_decode(raw, z85)) {
        lt_fail(why, LT_EINVAL, "not a CURVE public key");
        return LT_ZAP_UNKNOWN_KEY;
    }
    return judge(z, raw, agency, why);
}

/* ---- the handler thread ---- */

static void reply(lt_zap *z, zmq_msg_t *reqid, const char *status, const char *text,
                  const char *user, const char *key_z85)
{
    uint8_t md[1 + sizeof LT_ZAP_KEY_PROPERTY + 4 + 40];
    size_t mdlen = 0;
    if (key_z85) { /* the one metadata property: the client's key, in Z85 */
        size_t nl = strlen(LT_ZAP_KEY_PROPERTY);
        md[mdlen++] = (uint8_t)nl;
        memcpy(md + mdlen, LT_ZAP_KEY_PROPERTY, nl);
        mdlen += nl;
        md[mdlen++] = 0, md[mdlen++] = 0, md[mdlen++] = 0, md[mdlen++] = 40;
        memcpy(md + mdlen, key_z85, 40);
        mdlen += 40;
    }
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(z->sock, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->sock, md, mdlen, 0);
}

static void handle(lt_zap *z)
{
    zmq_msg_t part[MAX_PARTS];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, z->sock, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < MAX_PARTS)
            part[n++] = m;
        else
            zmq_msg_close(&m);
    }
    if (n < 2) { /* no request id to answer: the REP socket still owes a reply */
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        reply(z, &empty, "500", "malformed ZAP request", "", NULL);
        zmq_msg_close(&empty);
        atomic_fetch_add(&z->other, 1);
    } else if (n < 7 || zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) ||
               zmq_msg_size(&part[6]) != 32) {
        reply(z, &part[1], "400", "CURVE required", "", NULL);
        atomic_fetch_add(&z->other, 1);
    } else {
        char z85[41] = "", agency[LT_AGENCY_ID_MAX] = "";
        zmq_z85_encode(z85, zmq_msg_data(&part[6]), 32);
        lt_why why = {{0}};
        lt_zap_verdict v = judge(z, zmq_msg_data(&part[6]), agency, &why);
        static const char *const text[] = {"OK", "unknown CURVE key", "certificate revoked",
                                           "certificate not allowed"};
        if (v == LT_ZAP_ACCEPTED) {
            reply(z, &part[1], "200", text[v], agency, z85);
            atomic_fetch_add(&z->accepted, 1);
        } else {
            lt_log(LT_LOG_WARN, "CURVE key %s refused at the handshake: %s", z85, why.msg);
            reply(z, &part[1], "400", text[v], "", NULL);
            atomic_fetch_add(v == LT_ZAP_UNKNOWN_KEY ? &z->unknown_key
                             : v == LT_ZAP_REVOKED   ? &z->revoked
                                                     : &z->not_allowed,
                             1);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void *zap_main(void *arg)
{
    lt_zap *z = arg;
    pthread_setname_np(pthread_self(), "lt-zap");
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {.socket = z->sock, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, 200);
        if (rc > 0 && (it.revents & ZMQ_POLLIN))
            handle(z);
    }
    return NULL;
}

lt_err lt_zap_start(void *zctx, lt_trust *trust, lt_zap_keys *keys, lt_zap **out, lt_why *why)
{
    lt_zap *z = calloc(1, sizeof *z);
    if (!z) {
        lt_zap_keys_rele(&keys);
        return lt_fail(why, LT_ENOMEM, "no memory for the ZAP handler");
    }
    pthread_mutex_init(&z->mu, NULL);
    z->keys = keys;
    z->trust = trust;
    atomic_init(&z->stop, false);
    lt_err e;
    int zero = 0;
    if (!(z->sock = zmq_socket(zctx, ZMQ_REP)) ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        e = lt_fail(why, LT_EIO, "ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int rc = pthread_create(&z->th, NULL, zap_main, z);
    if (rc != 0) {
        e = lt_fail(why, LT_EIO, "cannot start the ZAP thread: %s", strerror(rc));
        goto fail;
    }
    z->started = true;
    *out = z;
    return LT_OK;
fail:
    lt_zap_stop(&z);
    return e;
}

void lt_zap_swap(lt_zap *z, lt_zap_keys *keys)
{
    pthread_mutex_lock(&z->mu);
    lt_zap_keys *old = z->keys;
    z->keys = keys;
    pthread_mutex_unlock(&z->mu);
    lt_zap_keys_rele(&old);
}

void lt_zap_stop(lt_zap **zp)
{
    lt_zap *z = zp ? *zp : NULL;
    if (!z)
        return;
    atomic_store(&z->stop, true);
    if (z->started)
        pthread_join(z->th, NULL);
    if (z->sock)
        zmq_close(z->sock);
    lt_zap_keys_rele(&z->keys);
    pthread_mutex_destroy(&z->mu);
    free(z);
    *zp = NULL;
}

void lt_zap_get_stats(const lt_zap *z, lt_zap_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!z)
        return;
    lt_zap *m = (lt_zap *)z;
    out->accepted = atomic_load(&m->accepted);
    out->unknown_key = atomic_load(&m->unknown_key);
    out->revoked = atomic_load(&m->revoked);
    out->not_allowed = atomic_load(&m->not_allowed);
    out->other = atomic_load(&m->other);
}
