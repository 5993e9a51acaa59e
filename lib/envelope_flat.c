/*
 * envelope_flat.c - the common envelope decoded without protobuf-c (contract in
 * envelope_int.h).
 *
 * protobuf-c's unpack allocates every field of an Envelope and its Header on its own (about
 * twenty mallocs, and as many frees) and copies each bytes field. Every record a broker
 * takes is decoded once, so that was most of the verifier's time outside the signature
 * math. Here one allocation holds the protobuf-c structs, one copy of the input bytes that
 * the bytes fields point into, and the header's three strings with their terminating NUL.
 *
 * Only the plain shape is taken: each field at most once with its own wire type, no field
 * the schema does not name, strings of printable ASCII (no NUL, no byte above 0x7e),
 * uint32 varints of at most 5 bytes that fit 32 bits, at most LT_ENV_FLAT_SIBLINGS
 * siblings. That is what every encoder this project knows of writes. Anything else is left
 * to protobuf-c (lt_env_decode falls back), which decides what the unusual shapes mean
 * (merged repeats, unknown fields, long varints); so the two decoders can only ever
 * differ in speed. tests/unit/test_envelope.c and tests/fuzz/fuzz_envelope.c hold them
 * side by side.
 */
#include "envelope_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    size_t off, len;
    bool set;
} span;

/* A length-delimited value at p[*at..n): its span, *at past it. */
static bool take_len(const uint8_t *p, size_t n, size_t *at, span *s)
{
    uint64_t len;
    if (s->set || !lt_env_wire_varint(p, n, at, &len) || len > n - *at)
        return false;
    *s = (span){*at, (size_t)len, true};
    *at += (size_t)len;
    return true;
}

static bool take_u32(const uint8_t *p, size_t n, size_t *at, bool *seen, uint32_t *v)
{
    size_t start = *at;
    uint64_t x;
    if (*seen || !lt_env_wire_varint(p, n, at, &x) || *at - start > 5 || x > UINT32_MAX)
        return false;
    *v = (uint32_t)x;
    *seen = true;
    return true;
}

static bool printable(const uint8_t *p, span s)
{
    for (size_t i = 0; i < s.len; i++)
        if (p[s.off + i] < 0x20 || p[s.off + i] > 0x7e)
            return false;
    return true;
}

/* Where each field is, relative to the envelope's first byte. sib[] comes last: only its
 * first nsib entries are ever read, so it is not cleared. */
typedef struct layout {
    span header, payload, signature, batch, certificate;
    bool has_index, has_count;
    uint32_t leaf_index, leaf_count;
    size_t nsib;
    span root;
    span id, source, topic, record_type, sha, key_id, corr, cause;
    bool has_created, has_version;
    uint64_t created;
    uint32_t version;
    span sib[LT_ENV_FLAT_SIBLINGS];
} layout;

/* One field of a message at p[*at..n) with this key: taken into l, *at past it. */
typedef bool field_fn(const uint8_t *p, size_t n, size_t *at, uint64_t key, layout *l);

/* Every field of the message at p[s.off, s.off + s.len), through take. */
static bool walk(const uint8_t *p, span s, field_fn *take, layout *l)
{
    size_t at = s.off, n = s.off + s.len;
    uint64_t key;
    while (at < n)
        if (!lt_env_wire_varint(p, n, &at, &key) || !take(p, n, &at, key, l))
            return false;
    return true;
}

static bool batch_field(const uint8_t *p, size_t n, size_t *at, uint64_t key, layout *l)
{
    switch (key) {
    case (1u << 3) | 0:
        return take_u32(p, n, at, &l->has_index, &l->leaf_index);
    case (2u << 3) | 0:
        return take_u32(p, n, at, &l->has_count, &l->leaf_count);
    case (3u << 3) | 2:
        if (l->nsib == LT_ENV_FLAT_SIBLINGS)
            return false;
        l->sib[l->nsib].set = false;
        return take_len(p, n, at, &l->sib[l->nsib++]);
    case (4u << 3) | 2:
        return take_len(p, n, at, &l->root);
    default:
        return false;
    }
}

static bool header_field(const uint8_t *p, size_t n, size_t *at, uint64_t key, layout *l)
{
    switch (key) {
    case (1u << 3) | 2:
        return take_len(p, n, at, &l->id);
    case (2u << 3) | 2:
        return take_len(p, n, at, &l->source) && printable(p, l->source);
    case (3u << 3) | 2:
        return take_len(p, n, at, &l->topic) && printable(p, l->topic);
    case (4u << 3) | 2:
        return take_len(p, n, at, &l->record_type) && printable(p, l->record_type);
    case (5u << 3) | 0:
        if (l->has_created)
            return false;
        l->has_created = true;
        return lt_env_wire_varint(p, n, at, &l->created);
    case (6u << 3) | 2:
        return take_len(p, n, at, &l->sha);
    case (7u << 3) | 2:
        return take_len(p, n, at, &l->key_id);
    case (8u << 3) | 2:
        return take_len(p, n, at, &l->corr);
    case (9u << 3) | 2:
        return take_len(p, n, at, &l->cause);
    case (10u << 3) | 0:
        return take_u32(p, n, at, &l->has_version, &l->version);
    default:
        return false;
    }
}

static bool envelope_field(const uint8_t *p, size_t n, size_t *at, uint64_t key, layout *l)
{
    switch (key) {
    case (1u << 3) | 2:
        return take_len(p, n, at, &l->header);
    case (2u << 3) | 2:
        return take_len(p, n, at, &l->payload);
    case (3u << 3) | 2:
        return take_len(p, n, at, &l->signature);
    case (4u << 3) | 2:
        return take_len(p, n, at, &l->batch);
    case (5u << 3) | 2:
        return take_len(p, n, at, &l->certificate);
    default:
        return false;
    }
}

static bool scan(const uint8_t *p, size_t n, layout *l)
{
    return walk(p, (span){0, n, true}, envelope_field, l) &&
           (!l->batch.set || walk(p, l->batch, batch_field, l)) &&
           (!l->header.set || walk(p, l->header, header_field, l));
}

static ProtobufCBinaryData bin(const uint8_t *base, span s)
{
    return (ProtobufCBinaryData){s.len, s.len ? (uint8_t *)base + s.off : NULL};
}

/* s's bytes and a NUL at *to, advanced past them. */
static char *str(const uint8_t *base, span s, char **to)
{
    char *r = *to;
    memcpy(r, base + s.off, s.len);
    r[s.len] = '\0';
    *to += s.len + 1;
    return r;
}

lt_env_flat *lt_env_flat_decode(const uint8_t *buf, size_t len, bool *nomem)
{
    *nomem = false;
    layout l;
    memset(&l, 0, offsetof(layout, sib));
    if (len == 0 || !scan(buf, len, &l))
        return NULL;
    size_t strings = l.source.len + l.topic.len + l.record_type.len + 3;
    lt_env_flat *f = malloc(sizeof *f + len + strings);
    if (f == NULL) {
        *nomem = true;
        return NULL;
    }
    uint8_t *data = (uint8_t *)(f + 1);
    char *to = (char *)data + len;
    memcpy(data, buf, len);

    f->env = (Lienthong__V1__Envelope)LIENTHONG__V1__ENVELOPE__INIT;
    f->env.header = bin(data, l.header);
    f->env.payload = bin(data, l.payload);
    f->env.signature = bin(data, l.signature);
    f->env.certificate = bin(data, l.certificate);
    f->env.batch = NULL;
    if (l.batch.set) {
        f->batch = (Lienthong__V1__BatchProof)LIENTHONG__V1__BATCH_PROOF__INIT;
        f->batch.leaf_index = l.leaf_index;
        f->batch.leaf_count = l.leaf_count;
        for (size_t i = 0; i < l.nsib; i++)
            f->siblings[i] = bin(data, l.sib[i]);
        f->batch.n_siblings = l.nsib;
        f->batch.siblings = l.nsib ? f->siblings : NULL;
        f->batch.root = bin(data, l.root);
        f->env.batch = &f->batch;
    }
    f->hdr = (Lienthong__V1__Header)LIENTHONG__V1__HEADER__INIT;
    f->hdr.message_id = bin(data, l.id);
    f->hdr.source = str(data, l.source, &to);
    f->hdr.topic = str(data, l.topic, &to);
    f->hdr.record_type = str(data, l.record_type, &to);
    f->hdr.created_unix_ms = (int64_t)l.created;
    f->hdr.payload_sha256 = bin(data, l.sha);
    f->hdr.signer_key_id = bin(data, l.key_id);
    f->hdr.correlation_id = bin(data, l.corr);
    f->hdr.causation_id = bin(data, l.cause);
    f->hdr.schema_version = l.version;
    f->has_header = l.header.set;
    return f;
}

/* ---- the reference ------------------------------------------------------------------------ */

static bool bin_eq(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool header_eq(const Lienthong__V1__Header *a, const Lienthong__V1__Header *b)
{
    return bin_eq(a->message_id, b->message_id) && str_eq(a->source, b->source) &&
           str_eq(a->topic, b->topic) && str_eq(a->record_type, b->record_type) &&
           a->created_unix_ms == b->created_unix_ms &&
           bin_eq(a->payload_sha256, b->payload_sha256) &&
           bin_eq(a->signer_key_id, b->signer_key_id) &&
           bin_eq(a->correlation_id, b->correlation_id) &&
           bin_eq(a->causation_id, b->causation_id) && a->schema_version == b->schema_version;
}

static bool envelope_eq(const Lienthong__V1__Envelope *a, const Lienthong__V1__Envelope *b)
{
    if (!bin_eq(a->header, b->header) || !bin_eq(a->payload, b->payload) ||
        !bin_eq(a->signature, b->signature) || !bin_eq(a->certificate, b->certificate) ||
        (a->batch == NULL) != (b->batch == NULL))
        return false;
    if (a->batch == NULL)
        return true;
    const Lienthong__V1__BatchProof *x = a->batch, *y = b->batch;
    if (x->leaf_index != y->leaf_index || x->leaf_count != y->leaf_count ||
        x->n_siblings != y->n_siblings || !bin_eq(x->root, y->root))
        return false;
    for (size_t i = 0; i < x->n_siblings; i++)
        if (!bin_eq(x->siblings[i], y->siblings[i]))
            return false;
    return true;
}

bool lt_env_flat_agrees(const uint8_t *buf, size_t len, bool *took)
{
    bool nomem;
    lt_env_flat *f = lt_env_flat_decode(buf, len, &nomem);
    *took = f != NULL;
    if (f == NULL)
        return true; /* protobuf-c decides */
    bool same = false;
    Lienthong__V1__Envelope *e = lienthong__v1__envelope__unpack(NULL, len, buf);
    Lienthong__V1__Header *h = NULL;
    if (e != NULL && envelope_eq(&f->env, e)) {
        h = lienthong__v1__header__unpack(NULL, e->header.len, e->header.data);
        same = h != NULL && header_eq(&f->hdr, h);
    }
    if (h != NULL)
        lienthong__v1__header__free_unpacked(h, NULL);
    if (e != NULL)
        lienthong__v1__envelope__free_unpacked(e, NULL);
    free(f);
    return same;
}
