/*
 * zap.c - the ZAP handler: CURVE public key -> agency id (contract in zap.h).
 *
 * ZAP request (RFC 27), one multipart message on the REP socket:
 *   version "1.0" | request id | domain | address | routing id | mechanism | credentials...
 * with CURVE: one credential, the client's 32-byte public key. Reply:
 *   version "1.0" | request id | status "200"/"400"/"500" | status text | user id | metadata
 * libzmq closes the connection on anything but 200 and gives the user id to every message
 * of an accepted one (zmq_msg_gets "User-Id").
 */
#include "zap.h"

#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MAX_PARTS 8

typedef struct zkey {
    uint8_t key[32];
    const char *who;
} zkey;

struct lt_zap {
    void *sock;
    pthread_t th;
    bool started;
    atomic_bool stop;
    zkey *keys;
    size_t nkeys;
    char self_agency[128];
    _Atomic uint64_t accepted, unknown_key, other;
};

static const char *lookup(const lt_zap *z, const uint8_t *key)
{
    for (size_t i = 0; i < z->nkeys; i++)
        if (memcmp(z->keys[i].key, key, 32) == 0)
            return z->keys[i].who;
    return NULL;
}

static void reply(lt_zap *z, zmq_msg_t *reqid, const char *status, const char *text,
                  const char *user)
{
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(z->sock, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, 0);
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
        reply(z, &empty, "500", "malformed ZAP request", "");
        zmq_msg_close(&empty);
        atomic_fetch_add(&z->other, 1);
    } else if (n < 7 || zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) ||
               zmq_msg_size(&part[6]) != 32) {
        reply(z, &part[1], "400", "CURVE required", "");
        atomic_fetch_add(&z->other, 1);
    } else {
        const char *who = lookup(z, zmq_msg_data(&part[6]));
        if (who) {
            reply(z, &part[1], "200", "OK", who);
            atomic_fetch_add(&z->accepted, 1);
        } else {
            char z85[41] = "";
            zmq_z85_encode(z85, zmq_msg_data(&part[6]), 32);
            lt_log(LT_LOG_WARN, "CURVE key %s refused: bound to no agency or peer in the config",
                   z85);
            reply(z, &part[1], "400", "unknown CURVE key", "");
            atomic_fetch_add(&z->unknown_key, 1);
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

static lt_err add_key(lt_zap *z, const char *z85, const char *who, lt_why *why)
{
    if (!z85 || !z85[0])
        return LT_OK;
    zkey *k = &z->keys[z->nkeys];
    if (!zmq_z85_decode(k->key, z85))
        return lt_fail(why, LT_ECONFIG, "CURVE key of %s is not Z85", who);
    k->who = who;
    z->nkeys++;
    return LT_OK;
}

lt_err lt_zap_start(void *zctx, const lt_broker_cfg *cfg, const char *self_key,
                    const char *self_agency, lt_zap **out, lt_why *why)
{
    lt_zap *z = calloc(1, sizeof *z);
    if (!z || !(z->keys = calloc(cfg->ncurve_clients + cfg->npeers + 1, sizeof *z->keys))) {
        free(z);
        return lt_fail(why, LT_ENOMEM, "no memory for the ZAP handler");
    }
    snprintf(z->self_agency, sizeof z->self_agency, "%s", self_agency ? self_agency : "");
    lt_err e = LT_OK;
    for (size_t i = 0; i < cfg->ncurve_clients && e == LT_OK; i++)
        e = add_key(z, cfg->curve_clients[i].key, cfg->curve_clients[i].agency, why);
    for (size_t i = 0; i < cfg->npeers && e == LT_OK; i++)
        e = add_key(z, cfg->peers[i].curve_key, cfg->peers[i].agency, why);
    if (e == LT_OK && self_key && z->self_agency[0])
        e = add_key(z, self_key, z->self_agency, why);
    atomic_init(&z->stop, false);
    if (e != LT_OK)
        goto fail;
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
    free(z->keys);
    free(z);
    *zp = NULL;
}

void lt_zap_get_stats(const lt_zap *z, lt_zap_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!z)
        return;
    out->accepted = atomic_load(&((lt_zap *)z)->accepted);
    out->unknown_key = atomic_load(&((lt_zap *)z)->unknown_key);
    out->other = atomic_load(&((lt_zap *)z)->other);
}
