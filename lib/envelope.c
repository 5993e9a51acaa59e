/*
 * envelope.c - decoding, verifying and sealing envelopes (contract in envelope.h).
 *
 * Merkle tree over a batch of n headers (rules in envelope.proto, BatchProof):
 *
 *     level 0:  L0  L1  L2  L3  L4          Li = H(0x00 || header_i)
 *     level 1:  N01     N23     L4          N  = H(0x01 || left || right)
 *     level 2:  N0123          L4           an odd last node is promoted unchanged
 *     level 3:  ROOT = N(N0123, L4)
 *
 * The proof of leaf i lists, from level 0 upwards, the sibling of the path's node at each
 * level where it has one (none where it is promoted), so its length depends only on
 * (index, count) and is checked exactly.
 *
 * An lt_env owns its decoded protobuf-c messages - one flat allocation (envelope_flat.c) for
 * the common shape, protobuf-c's unpack (default allocator) for any other - and is never
 * modified after lt_env_decode, so readers need no lock.
 */
#include "envelope.h"
#include "envelope_int.h"

#include "agency.h"
#include "json.h"
#include "lienthong/v1/envelope.pb-c.h"
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lt_env {
    Lienthong__V1__Envelope *env;
    Lienthong__V1__Header *hdr;
    lt_env_flat *flat; /* env and hdr point into it; NULL: both from protobuf-c's unpack */
};

lt_env_limits lt_env_limits_default(void)
{
    lt_env_limits l = {
        .max_envelope = 4u << 20,
        .max_header = 16u << 10,
        .max_payload = (4u << 20) - (64u << 10),
    };
    return l;
}

int64_t lt_env_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

lt_err lt_env_uuid7(int64_t now_ms, uint8_t out[LT_ENV_MESSAGE_ID_LEN], lt_why *why)
{
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
    lt_err e = lt_pki_random(id, sizeof id, why);
    if (e != LT_OK)
        return e;
    uint64_t ms = (uint64_t)now_ms;
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (8 * (5 - i)));
    id[6] = (uint8_t)(0x70 | (id[6] & 0x0f)); /* version 7 */
    id[8] = (uint8_t)(0x80 | (id[8] & 0x3f)); /* variant 10 */
    memcpy(out, id, sizeof id);
    return LT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Merkle helpers.
 */
static lt_err leaf_hash(const uint8_t *header, size_t len, uint8_t out[32], lt_why *why)
{
    static const uint8_t tag = 0x00;
    const uint8_t *parts[2] = {&tag, header};
    size_t lens[2] = {1, len};
    return lt_pki_sha256v(parts, lens, 2, out, why);
}

static lt_err node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32], lt_why *why)
{
    static const uint8_t tag = 0x01;
    const uint8_t *parts[3] = {&tag, l, r};
    size_t lens[3] = {1, 32, 32};
    return lt_pki_sha256v(parts, lens, 3, out, why);
}

/* Number of siblings in the proof of leaf index among count leaves. */
static size_t proof_len(uint32_t index, uint32_t count)
{
    size_t n = 0;
    for (uint64_t idx = index, cnt = count; cnt > 1; idx /= 2, cnt = (cnt + 1) / 2)
        if (idx % 2 == 1 || idx + 1 < cnt)
            n++;
    return n;
}

/* The tree over n leaves as one array of levels: level 0 at nodes[0..n), each next level
 * right after. *levels_out receives the level count; offsets[l] / widths[l] locate level l
 * (arrays of at least 33 entries: n <= 2^32 leaves). Caller frees *nodes_out. */
static lt_err build_tree(const uint8_t (*leaves)[32], size_t n, uint8_t (**nodes_out)[32],
                         size_t offsets[33], size_t widths[33], size_t *levels_out, lt_why *why)
{
    size_t total = 0, w = n, levels = 0;
    for (;;) {
        offsets[levels] = total;
        widths[levels] = w;
        total += w;
        levels++;
        if (w == 1)
            break;
        w = (w + 1) / 2;
    }
    uint8_t(*nodes)[32] = malloc(total * 32);
    if (nodes == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory for a Merkle tree of %zu leaves", n);
    memcpy(nodes, leaves, n * 32);
    for (size_t l = 1; l < levels; l++) {
        uint8_t(*prev)[32] = nodes + offsets[l - 1];
        uint8_t(*cur)[32] = nodes + offsets[l];
        for (size_t i = 0; i < widths[l]; i++) {
            if (2 * i + 1 < widths[l - 1]) {
                lt_err e = node_hash(prev[2 * i], prev[2 * i + 1], cur[i], why);
                if (e != LT_OK) {
                    free(nodes);
                    return e;
                }
            } else {
                memcpy(cur[i], prev[2 * i], 32);
            }
        }
    }
    *nodes_out = nodes;
    *levels_out = levels;
    return LT_OK;
}

lt_err lt_env_merkle_root(const uint8_t *const *headers, const size_t *header_lens, size_t n,
                          uint8_t root[32], lt_why *why)
{
    if (n == 0 || n > LT_ENV_BATCH_MAX)
        return lt_fail(why, LT_EINVAL, "Merkle root over %zu leaves (1..%d)", n,
                       LT_ENV_BATCH_MAX);
    uint8_t(*leaves)[32] = malloc(n * 32);
    if (leaves == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = LT_OK;
    for (size_t i = 0; i < n && e == LT_OK; i++)
        e = leaf_hash(headers[i], header_lens[i], leaves[i], why);
    uint8_t(*nodes)[32] = NULL;
    size_t off[33], wid[33], levels = 0;
    if (e == LT_OK && (e = build_tree((const uint8_t(*)[32])leaves, n, &nodes, off, wid, &levels,
                                      why)) == LT_OK)
        memcpy(root, nodes[off[levels - 1]], 32);
    free(nodes);
    free(leaves);
    return e;
}

/* ---------------------------------------------------------------------------------------
 * Decode and accessors.
 */
static bool bin_len_is(const ProtobufCBinaryData *b, size_t n)
{
    return b->len == n;
}

static lt_err decode(const uint8_t *buf, size_t len, const lt_env_limits *lim, bool flat,
                     lt_env **out, lt_why *why)
{
    lt_env_limits dl = lt_env_limits_default();
    if (lim == NULL)
        lim = &dl;
    if (buf == NULL || len == 0)
        return lt_fail(why, LT_EPROTO, "empty envelope");
    if (len > lim->max_envelope)
        return lt_fail(why, LT_ETOOBIG, "envelope of %zu bytes (at most %zu)", len,
                       lim->max_envelope);
    lt_env *env = calloc(1, sizeof *env);
    if (env == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = LT_OK;
    bool nomem = false;
    env->flat = flat ? lt_env_flat_decode(buf, len, &nomem) : NULL;
    if (nomem) {
        e = lt_fail(why, LT_ENOMEM, "out of memory");
        goto out_free;
    }
    env->env = env->flat ? &env->flat->env : lienthong__v1__envelope__unpack(NULL, len, buf);
    if (env->env == NULL) {
        e = lt_fail(why, LT_EPROTO, "not a lienthong.v1.Envelope (%zu bytes)", len);
        goto out_free;
    }
    Lienthong__V1__Envelope *m = env->env;
    if (m->header.len == 0) {
        e = lt_fail(why, LT_EPROTO, "envelope has no header");
        goto out_free;
    }
    if (m->header.len > lim->max_header) {
        e = lt_fail(why, LT_ETOOBIG, "header of %zu bytes (at most %zu)", m->header.len,
                    lim->max_header);
        goto out_free;
    }
    if (m->payload.len > lim->max_payload) {
        e = lt_fail(why, LT_ETOOBIG, "payload of %zu bytes (at most %zu)", m->payload.len,
                    lim->max_payload);
        goto out_free;
    }
    if (m->certificate.len > LT_PKI_CERT_MAX) {
        e = lt_fail(why, LT_ETOOBIG, "certificate of %zu bytes (at most %d)", m->certificate.len,
                    LT_PKI_CERT_MAX);
        goto out_free;
    }
    if (m->signature.len > LT_PKI_SIG_MAX) {
        e = lt_fail(why, LT_ETOOBIG, "signature of %zu bytes (at most %d)", m->signature.len,
                    LT_PKI_SIG_MAX);
        goto out_free;
    }
    if (m->certificate.len == 0 || m->signature.len == 0) {
        e = lt_fail(why, LT_EPROTO, "envelope has no %s",
                    m->certificate.len == 0 ? "certificate" : "signature");
        goto out_free;
    }
    if (m->batch != NULL) {
        Lienthong__V1__BatchProof *p = m->batch;
        if (p->leaf_count == 0 || p->leaf_count > LT_ENV_BATCH_MAX ||
            p->leaf_index >= p->leaf_count) {
            e = lt_fail(why, LT_EPROTO, "batch proof: leaf %u of %u (count 1..%d)",
                        p->leaf_index, p->leaf_count, LT_ENV_BATCH_MAX);
            goto out_free;
        }
        if (!bin_len_is(&p->root, 32) || p->n_siblings > 32) {
            e = lt_fail(why, LT_EPROTO, "batch proof: root of %zu bytes, %zu siblings",
                        p->root.len, p->n_siblings);
            goto out_free;
        }
        for (size_t i = 0; i < p->n_siblings; i++) {
            if (!bin_len_is(&p->siblings[i], 32)) {
                e = lt_fail(why, LT_EPROTO, "batch proof: sibling %zu is %zu bytes, not 32", i,
                            p->siblings[i].len);
                goto out_free;
            }
        }
    }
    env->hdr = env->flat ? &env->flat->hdr
                         : lienthong__v1__header__unpack(NULL, m->header.len, m->header.data);
    if (env->hdr == NULL) {
        e = lt_fail(why, LT_EPROTO, "header is not a lienthong.v1.Header");
        goto out_free;
    }
    Lienthong__V1__Header *h = env->hdr;
    if (!bin_len_is(&h->message_id, LT_ENV_MESSAGE_ID_LEN)) {
        e = lt_fail(why, LT_EPROTO, "message id of %zu bytes (16 expected)", h->message_id.len);
        goto out_free;
    }
    static const uint8_t zero_id[LT_ENV_MESSAGE_ID_LEN];
    if (memcmp(h->message_id.data, zero_id, sizeof zero_id) == 0) {
        /* the value every unset id has: it would name every careless publisher's records */
        e = lt_fail(why, LT_EMSGID, "message id is all zero: give each record its own id "
                                    "(UUIDv7, or derived from its content)");
        goto out_free;
    }
    if (!bin_len_is(&h->payload_sha256, 32) || !bin_len_is(&h->signer_key_id, 32)) {
        e = lt_fail(why, LT_EPROTO, "payload hash of %zu / signer key id of %zu bytes (32 each)",
                    h->payload_sha256.len, h->signer_key_id.len);
        goto out_free;
    }
    size_t tl = strlen(h->topic), rl = strlen(h->record_type);
    if (tl == 0 || tl > LT_ENV_TOPIC_MAX || rl == 0 || rl > LT_ENV_RECORD_TYPE_MAX) {
        e = lt_fail(why, LT_EPROTO, "topic of %zu / record type of %zu bytes (1..255 each)", tl,
                    rl);
        goto out_free;
    }
    if (h->correlation_id.len > LT_ENV_CORRELATION_MAX ||
        (h->causation_id.len != 0 && h->causation_id.len != LT_ENV_MESSAGE_ID_LEN)) {
        e = lt_fail(why, LT_EPROTO, "correlation id of %zu bytes (at most %d) / causation id "
                    "of %zu bytes (0 or 16)",
                    h->correlation_id.len, LT_ENV_CORRELATION_MAX, h->causation_id.len);
        goto out_free;
    }
    lt_why inner;
    if (!lt_agency_is_normalized(h->source)) {
        lt_agency_id id;
        if (lt_agency_parse(h->source, strlen(h->source), &id, &inner) == LT_OK)
            lt_fail(&inner, LT_EAGENCY_ID, "not in normal form (%s)", id.id);
        e = lt_fail(why, LT_EAGENCY_ID, "source agency: %s", inner.msg);
        goto out_free;
    }
    *out = env;
    return LT_OK;

out_free:
    lt_env_destroy(&env);
    return e;
}

lt_err lt_env_decode(const uint8_t *buf, size_t len, const lt_env_limits *lim, lt_env **out,
                     lt_why *why)
{
    return decode(buf, len, lim, true, out, why);
}

lt_err lt_env_decode_unpacked(const uint8_t *buf, size_t len, const lt_env_limits *lim,
                              lt_env **out, lt_why *why)
{
    return decode(buf, len, lim, false, out, why);
}

bool lt_env_is_flat(const lt_env *env)
{
    return env->flat != NULL;
}

void lt_env_destroy(lt_env **envp)
{
    if (envp == NULL || *envp == NULL)
        return;
    lt_env *env = *envp;
    if (env->flat != NULL) {
        free(env->flat);
        free(env);
        *envp = NULL;
        return;
    }
    if (env->hdr != NULL)
        lienthong__v1__header__free_unpacked(env->hdr, NULL);
    if (env->env != NULL)
        lienthong__v1__envelope__free_unpacked(env->env, NULL);
    free(env);
    *envp = NULL;
}

const uint8_t *lt_env_message_id(const lt_env *env)
{
    return env->hdr->message_id.data;
}

const char *lt_env_source(const lt_env *env)
{
    return env->hdr->source;
}

const char *lt_env_topic(const lt_env *env)
{
    return env->hdr->topic;
}

const char *lt_env_record_type(const lt_env *env)
{
    return env->hdr->record_type;
}

int64_t lt_env_created_ms(const lt_env *env)
{
    return env->hdr->created_unix_ms;
}

const uint8_t *lt_env_payload_sha256(const lt_env *env)
{
    return env->hdr->payload_sha256.data;
}

uint32_t lt_env_schema_version(const lt_env *env)
{
    return env->hdr->schema_version;
}

const uint8_t *lt_env_key_id(const lt_env *env)
{
    return env->hdr->signer_key_id.data;
}

static const uint8_t *bin(const ProtobufCBinaryData *b, size_t *len)
{
    *len = b->len;
    return b->len ? b->data : NULL;
}

const uint8_t *lt_env_payload(const lt_env *env, size_t *len)
{
    *len = env->env->payload.len;
    return env->env->payload.data ? env->env->payload.data : (const uint8_t *)"";
}

const uint8_t *lt_env_header(const lt_env *env, size_t *len)
{
    return bin(&env->env->header, len);
}

const uint8_t *lt_env_certificate(const lt_env *env, size_t *len)
{
    return bin(&env->env->certificate, len);
}

const uint8_t *lt_env_signature(const lt_env *env, size_t *len)
{
    return bin(&env->env->signature, len);
}

const uint8_t *lt_env_correlation_id(const lt_env *env, size_t *len)
{
    return bin(&env->hdr->correlation_id, len);
}

const uint8_t *lt_env_causation_id(const lt_env *env, size_t *len)
{
    return bin(&env->hdr->causation_id, len);
}

bool lt_env_is_batch(const lt_env *env)
{
    return env->env->batch != NULL;
}

uint32_t lt_env_batch_index(const lt_env *env)
{
    return env->env->batch ? env->env->batch->leaf_index : 0;
}

uint32_t lt_env_batch_count(const lt_env *env)
{
    return env->env->batch ? env->env->batch->leaf_count : 1;
}

/* ---------------------------------------------------------------------------------------
 * Verify.
 */

/* Walk the proof from this header's leaf; LT_EPROOF unless it ends at the carried root. */
static lt_err check_proof(const lt_env *env, lt_why *why)
{
    const Lienthong__V1__BatchProof *p = env->env->batch;
    size_t want = proof_len(p->leaf_index, p->leaf_count);
    if (p->n_siblings != want)
        return lt_fail(why, LT_EPROOF, "batch proof of leaf %u of %u has %zu siblings, not %zu",
                       p->leaf_index, p->leaf_count, p->n_siblings, want);
    /* want <= 32 (leaf_count <= LT_ENV_BATCH_MAX), each sibling 32 bytes (checked at parse) */
    const uint8_t *sib[33];
    for (size_t i = 0; i < want; i++)
        sib[i] = p->siblings[i].data;
    uint8_t path[34][32]; /* the node at each level on the way up, path[0] the leaf */
    lt_err e = leaf_hash(env->env->header.data, env->env->header.len, path[0], why);
    if (e != LT_OK)
        return e;
    size_t k = 0;
    unsigned level = 0;
    for (uint64_t idx = p->leaf_index, cnt = p->leaf_count; cnt > 1;
         idx /= 2, cnt = (cnt + 1) / 2, level++) {
        /* a path this thread verified before meets this one here: compare, do not hash */
        if (lt_envmemo_path_known(p->root.data, p->leaf_count, level, idx, path[level], sib + k,
                                  want - k))
            return LT_OK;
        const uint8_t *h = path[level];
        memcpy(path[level + 1], h, 32); /* the last node of an odd level goes up alone */
        if (idx % 2 == 1)
            e = node_hash(sib[k++], h, path[level + 1], why);
        else if (idx + 1 < cnt)
            e = node_hash(h, sib[k++], path[level + 1], why);
        if (e != LT_OK)
            return e;
    }
    if (memcmp(path[level], p->root.data, 32) != 0)
        return lt_fail(why, LT_EPROOF,
                       "batch proof of leaf %u of %u does not lead to the signed root",
                       p->leaf_index, p->leaf_count);
    lt_envmemo_path_add(p->root.data, p->leaf_count, p->leaf_index, (const uint8_t(*)[32])path,
                        level + 1, sib, want);
    return LT_OK;
}

lt_err lt_env_verify_received(const lt_env *env, lt_trust *trust, int64_t now_ms, lt_why *why)
{
    int64_t created = lt_env_created_ms(env);
    return lt_env_verify(env, trust, created < now_ms ? created : now_ms, why);
}

lt_err lt_env_verify(const lt_env *env, lt_trust *trust, int64_t now_ms, lt_why *why)
{
    const Lienthong__V1__Envelope *m = env->env;
    const Lienthong__V1__Header *h = env->hdr;
    uint8_t d[32];

    lt_err e = lt_pki_sha256(m->payload.data, m->payload.len, d, why);
    if (e != LT_OK)
        return e;
    if (memcmp(d, h->payload_sha256.data, 32) != 0)
        return lt_fail(why, LT_EHASH, "payload of %zu bytes does not match the header's SHA-256",
                       m->payload.len);

    if ((e = lt_envmemo_cert_sha256(m->certificate.data, m->certificate.len, d, why)) != LT_OK)
        return e;
    if (memcmp(d, h->signer_key_id.data, 32) != 0)
        return lt_fail(why, LT_EKEYID,
                       "header's signer key id is not the SHA-256 of the enclosed certificate");

    lt_trust_cert cert;
    if ((e = lt_trust_cert_hold(trust, m->certificate.data, m->certificate.len, d, now_ms, &cert,
                                why)) != LT_OK)
        return e;

    int64_t skew = lt_trust_clock_skew_ms(trust);
    int64_t created = h->created_unix_ms;
    if (strcmp(cert.agency, h->source) != 0) {
        e = lt_fail(why, LT_EAGENCY_MISMATCH, "signed with the certificate of %s, not of %s",
                    cert.agency, h->source);
    } else if (created < now_ms - skew || created > now_ms + skew) {
        e = lt_fail(why, LT_ESKEW,
                    "created %+.3f s from now, outside the allowed clock skew of %lld s",
                    (double)(created - now_ms) / 1000.0, (long long)(skew / 1000));
    } else if (!lt_trust_cert_is_valid_at(&cert, created)) {
        bool early = created < cert.not_before_ms;
        e = lt_fail(why, early ? LT_ECERT_NOT_YET_VALID : LT_ECERT_EXPIRED,
                    "certificate of %s was not valid at the created time", cert.agency);
    } else if (m->batch != NULL) {
        if ((e = check_proof(env, why)) == LT_OK)
            e = lt_trust_verify_root(trust, &cert, m->batch->root.data, m->signature.data,
                                     m->signature.len, why);
    } else {
        e = lt_trust_cert_verify(&cert, LT_PKI_DOMAIN_ENVELOPE, m->header.data, m->header.len,
                                 m->signature.data, m->signature.len, why);
    }
    lt_trust_cert_rele(&cert);
    return e;
}

/* ---------------------------------------------------------------------------------------
 * Record checks.
 */
lt_err lt_env_check_record_type(const lt_env *env, lt_why *why)
{
    const Lienthong__V1__Header *h = env->hdr;
    if (lt_records_find(h->record_type) == NULL)
        return lt_fail(why, LT_ERECORD_TYPE, "record type '%s' is not a record type of the "
                       "contract (lienthong.v1.records.*)", h->record_type);
    if (h->schema_version != LT_ENV_SCHEMA_VERSION)
        return lt_fail(why, LT_ESCHEMA, "schema version %u of %s is not one the contract "
                       "defines (%d%s)", h->schema_version, h->record_type,
                       LT_ENV_SCHEMA_VERSION, h->schema_version == 0 ? "; 0 means unset" : "");
    return LT_OK;
}

#define FIELD_NUMBER_MAX 536870911u /* 2^29 - 1 */

/* Wire type a field of type t is sent with; a repeated scalar may also come packed (2). */
static unsigned wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    default:
        return 0;
    }
}

/* Where the top level of p[0..n) stops being a message of d, into why (LT_EPAYLOAD); false
 * when it walks clean (the fault is then inside a field: a nested message, a string). */
static bool wire_fault(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                       lt_why *why)
{
    size_t at = 0;
    while (at < n) {
        size_t start = at;
        uint64_t key = 0, len = 0;
        if (!lt_env_wire_varint(p, n, &at, &key)) {
            lt_fail(why, LT_EPAYLOAD, "truncated field key at byte %zu", start);
            return true;
        }
        unsigned wt = (unsigned)(key & 7);
        uint64_t num = key >> 3;
        if (num == 0 || num > FIELD_NUMBER_MAX) {
            lt_fail(why, LT_EPAYLOAD, "field number %llu at byte %zu", (unsigned long long)num,
                    start);
            return true;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(d, (unsigned)num);
        if (f != NULL && wt != wire_type_of(f->type) &&
            !(wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED)) {
            lt_fail(why, LT_EPAYLOAD, "field %s (%llu) at byte %zu has wire type %u, not %u",
                    f->name, (unsigned long long)num, start, wt, wire_type_of(f->type));
            return true;
        }
        bool ok = true;
        switch (wt) {
        case 0:
            ok = lt_env_wire_varint(p, n, &at, &len);
            break;
        case 1:
        case 5:
            ok = n - at >= (wt == 1 ? 8u : 4u);
            at += ok ? (wt == 1 ? 8u : 4u) : 0;
            break;
        case 2:
            ok = lt_env_wire_varint(p, n, &at, &len) && len <= n - at;
            at += ok ? (size_t)len : 0;
            break;
        default:
            lt_fail(why, LT_EPAYLOAD, "field %llu at byte %zu has wire type %u (groups and "
                    "unassigned types are not in the contract)", (unsigned long long)num, start,
                    wt);
            return true;
        }
        if (!ok) {
            lt_fail(why, LT_EPAYLOAD, "field %llu at byte %zu runs past the end",
                    (unsigned long long)num, start);
            return true;
        }
    }
    return false;
}

/* Where a record is, for reasons: "child.full_name", "holders[2]" (proto field names).
 * Formatted only when `track` is set: the walk runs untracked first (every record that
 * passes) and again, tracked, for the reason of one that does not. */
struct walk {
    char path[160];
    size_t len;
    bool track;
};

static size_t path_push(struct walk *w, const char *name, size_t index, bool indexed)
{
    size_t old = w->len;
    if (!w->track)
        return old;
    int n = indexed ? snprintf(w->path + old, sizeof w->path - old, "%s%s[%zu]", old ? "." : "",
                               name, index)
                    : snprintf(w->path + old, sizeof w->path - old, "%s%s", old ? "." : "", name);
    if (n > 0)
        w->len = old + (size_t)n < sizeof w->path ? old + (size_t)n : sizeof w->path - 1;
    return old;
}

/* What protobuf-c lets through and a strict decoder refuses, at any depth: a field the
 * schema does not define, a string that is not UTF-8. Unpacked records only nest as deep as
 * their schema, but the walk is bounded anyway. */
static lt_err check_message(struct walk *w, const ProtobufCMessage *m, unsigned depth,
                            lt_why *why)
{
    if (depth > LT_JSON_MAX_DEPTH)
        return lt_fail(why, LT_EPAYLOAD, "messages nested deeper than %d", LT_JSON_MAX_DEPTH);
    if (m->n_unknown_fields > 0)
        return lt_fail(why, LT_EPAYLOAD, "%s%s%u field(s) the schema does not define (first: "
                       "field %u)", w->path, w->len ? " carries " : "it carries ",
                       m->n_unknown_fields, m->unknown_fields[0].tag);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *at = (const char *)m + f->offset;
        const uint32_t *oneof_case = (const void *)((const char *)m + f->quantifier_offset);
        size_t n = 1;
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (repeated) {
            n = *(const size_t *)(const void *)((const char *)m + f->quantifier_offset);
            at = *(char *const *)(const void *)at;
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *oneof_case != f->id) {
            continue; /* another member of the oneof: the union holds something else */
        }
        /* string and message elements alike are pointers */
        for (size_t k = 0; k < n; k++) {
            const void *v = ((void *const *)(const void *)at)[k];
            if (v == NULL)
                continue;
            size_t old = path_push(w, f->name, k, repeated);
            lt_err e = LT_OK;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                e = check_message(w, v, depth + 1, why);
            else if (!lt_json_utf8_is_valid(v, strlen(v)))
                e = lt_fail(why, LT_EPAYLOAD, "%s is not valid UTF-8", w->path);
            w->len = old;
            w->path[old] = '\0';
            if (e != LT_OK)
                return e;
        }
    }
    return LT_OK;
}

lt_err lt_env_check_record(const lt_env *env, lt_why *why)
{
    lt_err e = lt_env_check_record_type(env, why);
    if (e != LT_OK)
        return e;
    const char *type = env->hdr->record_type;
    const ProtobufCMessageDescriptor *d = lt_records_find(type);
    const ProtobufCBinaryData *pl = &env->env->payload;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, pl->len, pl->data);
    lt_why inner;
    if (m == NULL) {
        if (!wire_fault(d, pl->data, pl->len, &inner))
            lt_fail(&inner, LT_EPAYLOAD, "a nested message does not decode");
        return lt_fail(why, LT_EPAYLOAD, "payload of %zu bytes is not a %s: %s", pl->len, type,
                       inner.msg);
    }
    struct walk w = {.len = 0, .track = false};
    if (check_message(&w, m, 0, &inner) != LT_OK) {
        w = (struct walk){.len = 0, .track = true};
        (void)check_message(&w, m, 0, &inner); /* again, for the field's path */
        e = lt_fail(why, LT_EPAYLOAD, "payload of %zu bytes is not a %s of schema version %d: %s",
                    pl->len, type, LT_ENV_SCHEMA_VERSION, inner.msg);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return e;
}

/* ---------------------------------------------------------------------------------------
 * Seal.
 */

/* Validate spec and pack its header (signed by s) into a malloc'ed buffer. */
static lt_err pack_header(lt_signer *s, const lt_env_spec *spec, int64_t now_ms, uint8_t **out,
                          size_t *out_len, lt_why *why)
{
    lt_env_limits lim = lt_env_limits_default();
    size_t tl = spec->topic ? strlen(spec->topic) : 0;
    size_t rl = spec->record_type ? strlen(spec->record_type) : 0;
    if (tl == 0 || tl > LT_ENV_TOPIC_MAX)
        return lt_fail(why, LT_EINVAL, "topic of %zu bytes (1..%d)", tl, LT_ENV_TOPIC_MAX);
    if (rl == 0 || rl > LT_ENV_RECORD_TYPE_MAX)
        return lt_fail(why, LT_EINVAL, "record type of %zu bytes (1..%d)", rl,
                       LT_ENV_RECORD_TYPE_MAX);
    if (spec->payload_len > lim.max_payload || (spec->payload == NULL && spec->payload_len))
        return lt_fail(why, LT_EINVAL, "payload of %zu bytes (at most %zu)", spec->payload_len,
                       lim.max_payload);
    if (spec->correlation_len > LT_ENV_CORRELATION_MAX ||
        (spec->correlation_id == NULL && spec->correlation_len))
        return lt_fail(why, LT_EINVAL, "correlation id of %zu bytes (at most %d)",
                       spec->correlation_len, LT_ENV_CORRELATION_MAX);
    if ((spec->causation_len != 0 && spec->causation_len != LT_ENV_MESSAGE_ID_LEN) ||
        (spec->causation_id == NULL && spec->causation_len))
        return lt_fail(why, LT_EINVAL, "causation id of %zu bytes (0 or 16)",
                       spec->causation_len);

    uint8_t id[LT_ENV_MESSAGE_ID_LEN], sha[32];
    lt_err e;
    if (spec->message_id != NULL)
        memcpy(id, spec->message_id, sizeof id);
    else if ((e = lt_env_uuid7(now_ms, id, why)) != LT_OK)
        return e;
    if ((e = lt_pki_sha256(spec->payload, spec->payload_len, sha, why)) != LT_OK)
        return e;

    Lienthong__V1__Header h = LIENTHONG__V1__HEADER__INIT;
    h.message_id.data = id;
    h.message_id.len = sizeof id;
    h.source = (char *)lt_signer_agency(s);
    h.topic = (char *)spec->topic;
    h.record_type = (char *)spec->record_type;
    h.created_unix_ms = spec->created_ms ? spec->created_ms : now_ms;
    h.payload_sha256.data = sha;
    h.payload_sha256.len = 32;
    h.signer_key_id.data = (uint8_t *)lt_signer_key_id(s);
    h.signer_key_id.len = LT_PKI_KEY_ID_LEN;
    h.correlation_id.data = (uint8_t *)spec->correlation_id;
    h.correlation_id.len = spec->correlation_len;
    h.causation_id.data = (uint8_t *)spec->causation_id;
    h.causation_id.len = spec->causation_len;
    h.schema_version = LT_ENV_SCHEMA_VERSION;
    size_t n = lienthong__v1__header__get_packed_size(&h);
    if (n > lim.max_header)
        return lt_fail(why, LT_EINVAL, "header of %zu bytes (at most %zu)", n, lim.max_header);
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lienthong__v1__header__pack(&h, buf);
    *out = buf;
    *out_len = n;
    return LT_OK;
}

static lt_err pack_envelope(lt_signer *s, const uint8_t *header, size_t header_len,
                            const lt_env_spec *spec, const uint8_t *sig, size_t sig_len,
                            Lienthong__V1__BatchProof *proof, uint8_t **out, size_t *out_len,
                            lt_why *why)
{
    Lienthong__V1__Envelope m = LIENTHONG__V1__ENVELOPE__INIT;
    size_t cert_len;
    const uint8_t *cert = lt_signer_cert_der(s, &cert_len);
    m.header.data = (uint8_t *)header;
    m.header.len = header_len;
    m.payload.data = (uint8_t *)spec->payload;
    m.payload.len = spec->payload_len;
    m.signature.data = (uint8_t *)sig;
    m.signature.len = sig_len;
    m.certificate.data = (uint8_t *)cert;
    m.certificate.len = cert_len;
    m.batch = proof;
    size_t n = lienthong__v1__envelope__get_packed_size(&m);
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lienthong__v1__envelope__pack(&m, buf);
    *out = buf;
    *out_len = n;
    return LT_OK;
}

lt_err lt_env_seal(lt_signer *s, const lt_env_spec *spec, uint8_t **out, size_t *out_len,
                   lt_why *why)
{
    uint8_t *header = NULL;
    size_t header_len = 0, sig_len = 0;
    uint8_t sig[LT_PKI_SIG_MAX];
    lt_err e = pack_header(s, spec, lt_env_now_ms(), &header, &header_len, why);
    if (e != LT_OK)
        return e;
    e = lt_signer_sign(s, LT_PKI_DOMAIN_ENVELOPE, header, header_len, sig, &sig_len, why);
    if (e == LT_OK)
        e = pack_envelope(s, header, header_len, spec, sig, sig_len, NULL, out, out_len, why);
    free(header);
    return e;
}

lt_err lt_env_seal_batch(lt_signer *s, const lt_env_spec *specs, size_t n, uint8_t **outs,
                         size_t *out_lens, lt_why *why)
{
    if (n == 0 || n > LT_ENV_BATCH_MAX)
        return lt_fail(why, LT_EINVAL, "batch of %zu envelopes (1..%d)", n, LT_ENV_BATCH_MAX);
    lt_err e = LT_OK;
    int64_t now = lt_env_now_ms();
    uint8_t **headers = calloc(n, sizeof *headers);
    size_t *hlens = calloc(n, sizeof *hlens);
    uint8_t(*leaves)[32] = malloc(n * 32);
    uint8_t(*nodes)[32] = NULL;
    ProtobufCBinaryData sib[33];
    size_t off[33], wid[33], levels = 0, done = 0;
    if (headers == NULL || hlens == NULL || leaves == NULL) {
        e = lt_fail(why, LT_ENOMEM, "out of memory for a batch of %zu", n);
        goto out;
    }
    for (size_t i = 0; i < n && e == LT_OK; i++) {
        lt_why inner;
        e = pack_header(s, &specs[i], now, &headers[i], &hlens[i], &inner);
        if (e != LT_OK)
            lt_fail(why, e, "batch item %zu: %s", i, inner.msg);
        else
            e = leaf_hash(headers[i], hlens[i], leaves[i], why);
    }
    if (e != LT_OK)
        goto out;
    if ((e = build_tree((const uint8_t(*)[32])leaves, n, &nodes, off, wid, &levels, why)) != LT_OK)
        goto out;
    uint8_t *root = nodes[off[levels - 1]];
    uint8_t sig[LT_PKI_SIG_MAX];
    size_t sig_len = 0;
    if ((e = lt_signer_sign(s, LT_PKI_DOMAIN_BATCH, root, 32, sig, &sig_len, why)) != LT_OK)
        goto out;
    for (done = 0; done < n; done++) {
        size_t ns = 0, idx = done;
        for (size_t l = 0; l + 1 < levels; l++, idx /= 2) {
            size_t sibling = idx % 2 == 1 ? idx - 1 : idx + 1;
            if (sibling < wid[l]) {
                sib[ns].data = nodes[off[l] + sibling];
                sib[ns].len = 32;
                ns++;
            }
        }
        Lienthong__V1__BatchProof p = LIENTHONG__V1__BATCH_PROOF__INIT;
        p.leaf_index = (uint32_t)done;
        p.leaf_count = (uint32_t)n;
        p.n_siblings = ns;
        p.siblings = sib;
        p.root.data = root;
        p.root.len = 32;
        e = pack_envelope(s, headers[done], hlens[done], &specs[done], sig, sig_len, &p,
                          &outs[done], &out_lens[done], why);
        if (e != LT_OK)
            break;
    }
out:
    if (e != LT_OK)
        for (size_t i = 0; i < done; i++) {
            free(outs[i]);
            outs[i] = NULL;
        }
    for (size_t i = 0; headers != NULL && i < n; i++)
        free(headers[i]);
    free(headers);
    free(hlens);
    free(leaves);
    free(nodes);
    return e;
}
