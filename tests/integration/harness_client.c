/*
 * harness_client.c - agency-side helpers of the integration tests (contract in
 * harness_client.h).
 */
#include "harness_client.h"

#include "devpki.h"

#include "json.h"

#include <lienthong/v1/envelope.pb-c.h>

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

lt_signer *it_signer(const it_env *e, const char *short_name)
{
    char key[IT_PATH_MAX], cert[IT_PATH_MAX], rel[256];
    snprintf(rel, sizeof rel, "keys/%s.key.pem", short_name);
    it_path(e, rel, key);
    snprintf(rel, sizeof rel, "certs/%s.cert.pem", short_name);
    it_path(e, rel, cert);
    lt_signer *s = NULL;
    lt_why why = {{0}};
    if (lt_signer_open(key, cert, &s, &why) != LT_OK) {
        fprintf(stderr, "harness: signer %s: %s\n", short_name, why.msg);
        return NULL;
    }
    return s;
}

lt_trust *it_trust(const it_env *e)
{
    char ca[IT_PATH_MAX], crl[IT_PATH_MAX];
    lt_trust *t = NULL;
    lt_why why = {{0}};
    if (lt_trust_open(it_path(e, "ca/ca.cert.pem", ca), it_path(e, "ca/crl.pem", crl), NULL, &t,
                      &why) != LT_OK) {
        fprintf(stderr, "harness: trust: %s\n", why.msg);
        return NULL;
    }
    return t;
}

static lt_client *client_with(const it_env *e, lt_signer *auth_as, const lt_client_opts *opts);

lt_client *it_client(const it_env *e, lt_signer *auth_as, unsigned window, int ack_timeout_ms)
{
    lt_client_opts o = {.window = window,
                        .ack_timeout_ms = ack_timeout_ms,
                        .request_timeout_ms = 30000,
                        .client_name = "it"};
    return client_with(e, auth_as, &o);
}

lt_client *it_client_single(const it_env *e, lt_signer *auth_as)
{
    lt_client_opts o = {
        .request_timeout_ms = 30000, .client_name = "it", .single_deliveries = true};
    return client_with(e, auth_as, &o);
}

static lt_client *client_with(const it_env *e, lt_signer *auth_as, const lt_client_opts *opts)
{
    const lt_client_opts o = *opts;
    lt_client *c = NULL;
    lt_why why = {{0}};
    if (lt_client_open(e->endpoint, &o, &c, &why) != LT_OK) {
        fprintf(stderr, "harness: client: %s\n", why.msg);
        return NULL;
    }
    if (auth_as != NULL && lt_client_auth(c, NULL, auth_as, &why) != LT_OK) {
        fprintf(stderr, "harness: auth as %s: %s\n", lt_signer_agency(auth_as), why.msg);
        lt_client_close(&c);
        return NULL;
    }
    return c;
}

uint64_t it_id_number(const uint8_t id[LT_ENV_MESSAGE_ID_LEN])
{
    uint64_t n = 0;
    for (int i = 10; i < 16; i++)
        n = (n << 8) | id[i];
    return n;
}

uint8_t *it_seal(lt_signer *s, const char *topic, uint64_t n, size_t pad, size_t *len,
                 uint8_t id_out[LT_ENV_MESSAGE_ID_LEN])
{
    lt_why why = {{0}};
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    if (lt_env_uuid7(lt_env_now_ms(), id, &why) != LT_OK)
        return NULL;
    for (int i = 15; i >= 10; i--, n >>= 8)
        id[i] = (uint8_t)(n & 0xff);
    n = it_id_number(id);
    char *note = malloc(pad + 1);
    if (note == NULL)
        return NULL;
    memset(note, 'x', pad);
    note[pad] = '\0';
    size_t jcap = pad + 256;
    char *json = malloc(jcap);
    if (json == NULL) {
        free(note);
        return NULL;
    }
    snprintf(json, jcap,
             "{\"registrationNumber\":\"%llu\",\"bookNumber\":\"01/2025\","
             "\"registrationDate\":\"2025-06-30\",\"note\":\"%s\"}",
             (unsigned long long)n, note);
    free(note);
    uint8_t *payload = NULL;
    size_t plen = 0;
    lt_err e = lt_json_text_to_payload(IT_RECORD_TYPE, json, strlen(json), &payload, &plen,
                                       &why);
    free(json);
    if (e != LT_OK) {
        fprintf(stderr, "harness: record: %s\n", why.msg);
        return NULL;
    }
    lt_env_spec spec = {.message_id = id,
                        .topic = topic,
                        .record_type = IT_RECORD_TYPE,
                        .payload = payload,
                        .payload_len = plen};
    uint8_t *out = NULL;
    e = lt_env_seal(s, &spec, &out, len, &why);
    free(payload);
    if (e != LT_OK) {
        fprintf(stderr, "harness: seal: %s\n", why.msg);
        return NULL;
    }
    if (id_out != NULL)
        memcpy(id_out, id, sizeof id);
    return out;
}

void it_answer_cb(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                  const char *reason)
{
    (void)tag;
    it_answer *a = user;
    a->done = true;
    a->code = code;
    a->seq = seq;
    a->duplicate = dup;
    snprintf(a->reason, sizeof a->reason, "%s", reason);
}

bool it_publish_wait(lt_client *c, const uint8_t *env, size_t len, it_answer *a,
                     int timeout_ms)
{
    memset(a, 0, sizeof *a);
    if (lt_client_publish(c, env, len, it_answer_cb, a, NULL) != LT_OK)
        return false;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (!a->done && it_now_ms() < deadline)
        lt_client_poll(c, 100, NULL);
    return a->done;
}

void it_sink_cb(void *user, const lt_client_delivery *d)
{
    it_sink *s = user;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        it_delivery *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return;
        s->v = v;
        s->cap = cap;
    }
    it_delivery *x = &s->v[s->n++];
    memset(x, 0, sizeof *x);
    x->seq = d->seq;
    x->count = d->delivery_count;
    x->replay = d->replay;
    x->at_ms = it_now_ms();
    x->n = UINT64_MAX;
    lt_env *env = NULL;
    if (lt_env_decode(d->envelope, d->envelope_len, NULL, &env, NULL) == LT_OK) {
        memcpy(x->id, lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN);
        x->n = it_id_number(x->id);
        lt_env_destroy(&env);
    }
    if (s->ack && !d->replay)
        lt_client_ack(s->c, d->queue, d->seq);
}

bool it_sink_wait(it_sink *s, size_t want, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (s->n < want && it_now_ms() < deadline)
        lt_client_poll(s->c, 100, NULL);
    lt_client_flush(s->c, 2000);
    return s->n >= want;
}

void it_sink_fini(it_sink *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

json_object *it_queue_info(lt_client *admin, const char *q, json_object **root)
{
    char *json = NULL;
    lt_why why = {{0}};
    if (lt_client_admin(admin, "queues", NULL, NULL, 0, 0, &json, &why) != LT_OK)
        fail_msg("admin queues: %s", why.msg);
    *root = json_tokener_parse(json);
    free(json);
    if (*root == NULL)
        fail_msg("admin queues: not JSON");
    json_object *arr = *root;
    if (!json_object_is_type(arr, json_type_array) &&
        !json_object_object_get_ex(*root, "queues", &arr))
        fail_msg("admin queues: no list");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *name = NULL;
        if (json_object_object_get_ex(o, "name", &name) &&
            strcmp(json_object_get_string(name), q) == 0)
            return o;
    }
    fail_msg("queue %s not in the queues answer", q);
    return NULL;
}

int64_t it_json_int(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("no '%s' in %s", key, json_object_to_json_string(o));
    return json_object_get_int64(v);
}

void it_frame_send(void *sock, const Lienthong__V1__Frame *f)
{
    size_t n = lienthong__v1__frame__get_packed_size(f);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    lienthong__v1__frame__pack(f, buf);
    assert_int_equal(zmq_send(sock, buf, n, 0), (int)n);
    free(buf);
}

Lienthong__V1__Frame *it_frame_recv(void *sock, int timeout_ms)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Lienthong__V1__Frame *f =
        lienthong__v1__frame__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    return f;
}

bool it_revoke(const it_env *e, const char *short_name)
{
    char key[IT_PATH_MAX], cert[IT_PATH_MAX], crl[IT_PATH_MAX], rel[128], victim[IT_PATH_MAX];
    snprintf(rel, sizeof rel, "certs/%s.cert.pem", short_name);
    lt_devpki_ca *ca = NULL;
    lt_why why = {{0}};
    lt_err err = lt_devpki_ca_load(it_path(e, "ca/ca.key.pem", key),
                                   it_path(e, "ca/ca.cert.pem", cert), &ca, &why);
    if (err == LT_OK)
        err = lt_devpki_revoke(ca, it_path(e, rel, victim), it_path(e, "ca/crl.pem", crl),
                               lt_env_now_ms(), &why);
    lt_devpki_ca_destroy(&ca);
    if (err != LT_OK)
        fprintf(stderr, "harness: cannot revoke %s: %s\n", rel, why.msg);
    return err == LT_OK;
}
