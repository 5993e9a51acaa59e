/*
 * envelope.h - signed envelopes: the unit every agency sends.
 *
 * Wire form: lienthong.v1.Envelope (proto/lienthong/v1/envelope.proto). The signature covers
 * "lienthong/v1\0" || header bytes exactly as sent, and the header carries the SHA-256 of the
 * payload, so nothing is re-serialized before verifying. A batch-signed envelope instead
 * carries a BatchProof: its signature covers "lienthong/v1 batch\0" || root, where root is
 * the Merkle root over the batch's headers (leaf = H(0x00 || header), node = H(0x01 || l || r),
 * an odd node promoted unchanged), and the proof leads from this header's leaf to that root.
 * Every envelope carries its signer's certificate and stays verifiable on its own.
 *
 * lt_env_verify checks, in this order, each failure with its own code:
 *   decode:   size limits (LT_ETOOBIG), structure (LT_EPROTO), source id (LT_EAGENCY_ID)
 *   1. SHA-256(payload) == header.payload_sha256                       LT_EHASH
 *   2. SHA-256(certificate) == header.signer_key_id                     LT_EKEYID
 *   3. certificate: parses, is an agency cert, not a CA's (LT_ECERT_INVALID / LT_ECERT_CA),
 *      chains to the trust root
 *      (LT_ECERT_UNKNOWN_CA), not revoked (LT_ECERT_REVOKED), issuer's CRL current (LT_ECRL),
 *      valid now (LT_ECERT_EXPIRED / LT_ECERT_NOT_YET_VALID)
 *   4. certificate's agency == header.source                            LT_EAGENCY_MISMATCH
 *   5. |created - now| <= the trust's clock skew                         LT_ESKEW
 *   6. certificate valid at the created time            LT_ECERT_EXPIRED / LT_ECERT_NOT_YET_VALID
 *   7. batch proof well-formed and leads to its root                    LT_EPROOF
 *   8. signature over the header, or over the root (root cache)         LT_ESIG
 * Cheap checks come first so forged traffic costs no signature math.
 *
 * An lt_env is immutable after decode; any number of threads may read and verify it.
 */
#ifndef LT_LIB_ENVELOPE_H
#define LT_LIB_ENVELOPE_H

#include "err.h"
#include "pki.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_ENV_MESSAGE_ID_LEN 16
#define LT_ENV_TOPIC_MAX 255        /* bytes of a topic */
#define LT_ENV_RECORD_TYPE_MAX 255  /* bytes of a record type name */
#define LT_ENV_CORRELATION_MAX 64   /* bytes of a correlation id */
#define LT_ENV_BATCH_MAX 65536      /* envelopes under one batch signature */
#define LT_ENV_SCHEMA_VERSION 1

typedef struct lt_env_limits {
    size_t max_envelope; /* whole serialized envelope (4 MiB) */
    size_t max_header;   /* serialized header (16 KiB) */
    size_t max_payload;  /* payload (4 MiB - 64 KiB) */
} lt_env_limits;

/* The defaults above. */
lt_env_limits lt_env_limits_default(void);

/* A decoded envelope and its header. Immutable after decode. */
typedef struct lt_env lt_env;

/* Decode buf[0..len) (borrowed; not referenced after return) under lim (NULL: defaults).
 * On LT_OK the caller owns *out (lt_env_destroy). LT_ETOOBIG: over a limit; LT_EPROTO: not an
 * envelope, no header, header not a Header, a field of the wrong size (message id 16 bytes,
 * hashes 32, causation id 0 or 16, ...), empty topic / record type / signature /
 * certificate, malformed batch proof sizes; LT_EMSGID: the message id is all zero;
 * LT_EAGENCY_ID: source is not a normalized agency id; LT_ENOMEM. Nothing is verified here.
 * Thread-safe. */
lt_err lt_env_decode(const uint8_t *buf, size_t len, const lt_env_limits *lim, lt_env **out,
                     lt_why *why);

/* Free env. Accepts NULL; clears *envp. */
void lt_env_destroy(lt_env **envp);

/* Accessors: borrowed from env, valid while it lives. */
const uint8_t *lt_env_message_id(const lt_env *env);  /* 16 bytes */
const char *lt_env_source(const lt_env *env);         /* normalized agency id */
const char *lt_env_topic(const lt_env *env);
const char *lt_env_record_type(const lt_env *env);
int64_t lt_env_created_ms(const lt_env *env);
uint32_t lt_env_schema_version(const lt_env *env);
const uint8_t *lt_env_key_id(const lt_env *env);      /* 32 bytes */
const uint8_t *lt_env_payload_sha256(const lt_env *env); /* 32 bytes, as the header says */
const uint8_t *lt_env_payload(const lt_env *env, size_t *len);
const uint8_t *lt_env_header(const lt_env *env, size_t *len); /* exactly as signed */
const uint8_t *lt_env_certificate(const lt_env *env, size_t *len); /* DER */
const uint8_t *lt_env_signature(const lt_env *env, size_t *len);
/* Optional ids: NULL and *len = 0 when absent. */
const uint8_t *lt_env_correlation_id(const lt_env *env, size_t *len);
const uint8_t *lt_env_causation_id(const lt_env *env, size_t *len);
/* Batch-signed? Then index and count of this envelope in its batch. */
bool lt_env_is_batch(const lt_env *env);
uint32_t lt_env_batch_index(const lt_env *env);
uint32_t lt_env_batch_count(const lt_env *env);

/* Verify env against trust at time now_ms (ms since the epoch), in the order and with the
 * codes listed at the top of this file. LT_OK means: the payload is what the agency named
 * in lt_env_source signed, with a certificate valid now and when it signed. Thread-safe;
 * trust's caches are updated. */
lt_err lt_env_verify(const lt_env *env, lt_trust *trust, int64_t now_ms, lt_why *why);

/* The one rule for every consumer of a record that the broker accepted earlier and that may
 * have waited since (in a queue, a stream, a database, a file): verify it as lt_env_verify
 * does at the record's own time - its created time, or now_ms if that is earlier (a record
 * from the future is still held to the clock skew) - with the revocation list in force now
 * (trust's, as loaded). So a record that waited longer than the clock skew still verifies,
 * and one whose certificate is revoked today does not. Same codes as lt_env_verify. */
lt_err lt_env_verify_received(const lt_env *env, lt_trust *trust, int64_t now_ms, lt_why *why);

/* Is env a record of the contract? Checked from the header alone, so cheap enough to run
 * before any signature math: record_type names a canonical record type (records.h), else
 * LT_ERECORD_TYPE; schema_version is LT_ENV_SCHEMA_VERSION, else LT_ESCHEMA (0, "unset", is
 * refused too: every producer's lt_env_seal sets it). why names the type or the version.
 * Thread-safe. */
lt_err lt_env_check_record_type(const lt_env *env, lt_why *why);

/* lt_env_check_record_type, then decode the payload as that record type (protobuf-c, then
 * freed): LT_EPAYLOAD when protobuf-c refuses it (why says where the wire format breaks, or
 * which field has the wrong wire type, when a walk over the top level can tell), or when it
 * carries fields unknown to the schema. A proto3 decoder skips unknown fields, so garbage
 * that happens to parse would otherwise pass as a record with every field empty; a payload
 * of a schema version we know has no field we do not know. The payload's signature is not
 * looked at: a verifier calls this after lt_env_verify, so a forger learns nothing cheaper.
 * LT_ENOMEM cannot be told from a refusal by protobuf-c and is reported as LT_EPAYLOAD.
 * Thread-safe. */
lt_err lt_env_check_record(const lt_env *env, lt_why *why);

/* Protobuf wire format, for walkers of raw message bytes: read the varint at p[*at..n) into
 * *v and advance *at past it. false (*at moved, *v untouched) when it is truncated or holds
 * more than 64 bits. Inline: the frame and envelope readers call it for every field. */
static inline bool lt_env_wire_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    if (*at < n && p[*at] < 0x80) { /* one byte: tags, small lengths and numbers */
        *v = p[(*at)++];
        return true;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *at < n; shift += 7) {
        uint8_t c = p[(*at)++];
        if (shift == 63 && c > 1)
            return false; /* more than 64 bits */
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* What to seal. Borrowed for the call. */
typedef struct lt_env_spec {
    const uint8_t *message_id; /* 16 bytes; NULL: a new UUIDv7 */
    const char *topic, *record_type;
    const uint8_t *payload;
    size_t payload_len;
    int64_t created_ms; /* 0: now */
    const uint8_t *correlation_id;
    size_t correlation_len; /* <= LT_ENV_CORRELATION_MAX */
    const uint8_t *causation_id;
    size_t causation_len; /* 0 or 16 */
} lt_env_spec;

/* Build, sign and serialize one envelope from spec with s. On LT_OK *out is malloc'ed (the
 * caller frees it with free()) and *out_len set. LT_EINVAL: spec invalid (empty topic or
 * record type, bad id lengths, over the default limits); LT_ECRYPTO: signing failed;
 * LT_ENOMEM. */
lt_err lt_env_seal(lt_signer *s, const lt_env_spec *spec, uint8_t **out, size_t *out_len,
                   lt_why *why);

/* Seal n envelopes (1 <= n <= LT_ENV_BATCH_MAX) under one signature over the Merkle root of
 * their headers; envelope i carries its proof. On LT_OK outs[i] (malloc'ed, caller frees
 * each) and out_lens[i] are set for every i; on error none is (nothing to free). Errors as
 * lt_env_seal. */
lt_err lt_env_seal_batch(lt_signer *s, const lt_env_spec *specs, size_t n, uint8_t **outs,
                         size_t *out_lens, lt_why *why);

/* Merkle root over n leaves' header bytes, as the proof rules above (for tools and tests).
 * LT_EINVAL when n is 0; LT_ENOMEM. */
lt_err lt_env_merkle_root(const uint8_t *const *headers, const size_t *header_lens, size_t n,
                          uint8_t root[32], lt_why *why);

/* A new UUIDv7 for time now_ms: 48-bit ms timestamp, version 7, variant 10, random rest.
 * LT_ECRYPTO if the RNG fails. */
lt_err lt_env_uuid7(int64_t now_ms, uint8_t out[LT_ENV_MESSAGE_ID_LEN], lt_why *why);

/* Wall-clock time in ms since the epoch (CLOCK_REALTIME). */
int64_t lt_env_now_ms(void);

#endif
