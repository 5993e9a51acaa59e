/*
 * harness_client.h - what integration tests do as agencies: open an agency's signer, seal
 * numbered records, publish and wait for the answers, consume into a sink.
 *
 * Message ids carry the record's number: bytes 0..9 come from a UUIDv7 (time + random, so
 * every run differs), bytes 10..15 are the number n (48 bits, big-endian); a delivery's n is
 * read back from its id without trusting anything else in it.
 */
#ifndef LT_TESTS_INTEGRATION_HARNESS_CLIENT_H
#define LT_TESTS_INTEGRATION_HARNESS_CLIENT_H

#include "client.h"
#include "envelope.h"
#include "harness.h"
#include "pki.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IT_RECORD_TYPE "lienthong.v1.records.BirthRegistration"

/* The signer of dir/keys/<short>.key.pem + dir/certs/<short>.cert.pem; NULL on failure. */
lt_signer *it_signer(const it_env *e, const char *short_name);

/* The trust of dir/ca/ca.cert.pem + dir/ca/crl.pem; NULL on failure. */
lt_trust *it_trust(const it_env *e);

/* A client connected to the test broker, authenticated as auth_as unless it is NULL;
 * window 0 = default; ack timeout ack_timeout_ms (0 = default). NULL on failure. */
lt_client *it_client(const it_env *e, lt_signer *auth_as, unsigned window, int ack_timeout_ms);
/* it_client with default window and timeout whose subscriptions take one DELIVER frame per
 * record (lt_client_opts.single_deliveries) instead of Delivers frames. */
lt_client *it_client_single(const it_env *e, lt_signer *auth_as);

/* Seal a BirthRegistration numbered n (registrationNumber = n, a note of pad bytes) on
 * topic with s. Returns the malloc'ed envelope (*len set), NULL on failure; id (may be NULL)
 * receives its message id. */
uint8_t *it_seal(lt_signer *s, const char *topic, uint64_t n, size_t pad, size_t *len,
                 uint8_t id[LT_ENV_MESSAGE_ID_LEN]);

/* The record number carried in a message id. */
uint64_t it_id_number(const uint8_t id[LT_ENV_MESSAGE_ID_LEN]);

/* The answer to one publish. */
typedef struct it_answer {
    bool done;
    lt_err code;
    uint64_t seq;
    bool duplicate;
    char reason[LT_WHY_MAX];
} it_answer;

/* lt_client_publish_cb filling the it_answer given as user. */
void it_answer_cb(void *user, uint64_t tag, lt_err code, uint64_t seq, bool dup,
                  const char *reason);

/* Publish one envelope and wait (at most timeout_ms) for its answer into *a. false if it
 * could not be sent or no answer came. */
bool it_publish_wait(lt_client *c, const uint8_t *env, size_t len, it_answer *a,
                     int timeout_ms);

/* One delivery as a sink keeps it. */
typedef struct it_delivery {
    uint64_t seq;
    uint32_t count;
    bool replay;
    uint64_t n;                        /* it_id_number of its message id (UINT64_MAX: none) */
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    int64_t at_ms;                     /* it_now_ms when it arrived */
} it_delivery;

typedef struct it_sink {
    lt_client *c;
    bool ack;          /* ack each delivery as it arrives */
    it_delivery *v;
    size_t n, cap;
} it_sink;

/* lt_client_deliver_cb appending to the it_sink given as user (and acking if s->ack). */
void it_sink_cb(void *user, const lt_client_delivery *d);

/* Poll c until s holds at least want deliveries, at most timeout_ms. Then flush acks.
 * True when want was reached. */
bool it_sink_wait(it_sink *s, size_t want, int timeout_ms);

void it_sink_fini(it_sink *s);

/* The object of queue q in the broker's "queues" admin answer, asked over admin (an
 * authenticated client allowed to); *root owns it (json_object_put). Fails the test when
 * the answer is missing or q is not in it. */
struct json_object;
struct json_object *it_queue_info(lt_client *admin, const char *q, struct json_object **root);
/* The integer field key of o; fails the test when it is absent. */
int64_t it_json_int(struct json_object *o, const char *key);

/* Raw frames, for tests that speak the protocol as a stranger would: pack f and send it on
 * a ZeroMQ socket (fails the test if it cannot), or the next frame within timeout_ms
 * (NULL: none, or not a Frame; free with lienthong__v1__frame__free_unpacked). */
struct Lienthong__V1__Frame;
void it_frame_send(void *sock, const struct Lienthong__V1__Frame *f);
struct Lienthong__V1__Frame *it_frame_recv(void *sock, int timeout_ms);

/* Revoke the certificate certs/<short_name>.cert.pem of e's development PKI: the dev CA
 * (ca/ca.key.pem) re-signs ca/crl.pem with it listed. A broker sees it after a SIGHUP.
 * false (a message on stderr) on failure. */
bool it_revoke(const it_env *e, const char *short_name);

#endif
