/* test_envelope.c - sealing and verifying envelopes: every way an envelope can be wrong is
 * refused with its own code; batches of every shape verify alone and through the root cache;
 * all three algorithms; CRL reload; concurrent verification.
 *
 * LT_WRAP: EVP_DigestSign
 */
#include "devpki.h"
#include "envelope.h"
#include "envelope_int.h"
#include "lienthong/v1/envelope.pb-c.h"
#include "pki.h"

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- EVP_DigestSign failure injection ---- */
int __real_EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sig, size_t *siglen,
                          const unsigned char *tbs, size_t tbslen);
int __wrap_EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sig, size_t *siglen,
                          const unsigned char *tbs, size_t tbslen);
static int fail_sign;

int __wrap_EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sig, size_t *siglen,
                          const unsigned char *tbs, size_t tbslen)
{
    if (fail_sign) {
        ERR_raise(ERR_LIB_EVP, ERR_R_INTERNAL_ERROR);
        return 0;
    }
    return __real_EVP_DigestSign(ctx, sig, siglen, tbs, tbslen);
}

/* ---- fixture ---- */
struct fx {
    char dir[256];
    int64_t now;
    lt_trust *trust;
    lt_signer *a, *b, *expired, *future, *revoked, *otherca, *caflag;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static lt_signer *open_signer(const char *dir, const char *name)
{
    char k[512], c[512];
    snprintf(k, sizeof k, "%s/%s.key.pem", dir, name);
    snprintf(c, sizeof c, "%s/%s.cert.pem", dir, name);
    lt_signer *s = NULL;
    lt_why why;
    if (lt_signer_open(k, c, &s, &why) != LT_OK)
        fail_msg("open signer %s: %s", name, why.msg);
    return s;
}

static lt_trust *open_trust(const char *dir, const lt_trust_opts *o)
{
    char ca[512], crl[512];
    snprintf(ca, sizeof ca, "%s/ca.cert.pem", dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", dir);
    lt_trust *t = NULL;
    lt_why why;
    if (lt_trust_open(ca, crl, o, &t, &why) != LT_OK)
        fail_msg("open trust: %s", why.msg);
    return t;
}

static struct fx *fx_new(lt_sig_alg alg)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof f->dir, "%s/lt-test-env-XXXXXX", tmp);
    assert_non_null(mkdtemp(f->dir));
    f->now = lt_env_now_ms();
    lt_why why;
    if (lt_devpki_fixture(f->dir, alg, f->now, &why) != LT_OK)
        fail_msg("fixture: %s", why.msg);
    f->trust = open_trust(f->dir, NULL);
    f->a = open_signer(f->dir, "a");
    f->b = open_signer(f->dir, "b");
    f->expired = open_signer(f->dir, "expired");
    f->future = open_signer(f->dir, "future");
    f->revoked = open_signer(f->dir, "revoked");
    f->otherca = open_signer(f->dir, "otherca");
    f->caflag = open_signer(f->dir, "caflag");
    return f;
}

static void fx_free(struct fx *f)
{
    if (f == NULL)
        return;
    lt_trust_destroy(&f->trust);
    lt_signer_destroy(&f->a);
    lt_signer_destroy(&f->b);
    lt_signer_destroy(&f->expired);
    lt_signer_destroy(&f->future);
    lt_signer_destroy(&f->revoked);
    lt_signer_destroy(&f->otherca);
    lt_signer_destroy(&f->caflag);
    rm_rf(f->dir);
    free(f);
}

static int group_setup(void **state)
{
    *state = fx_new(LT_SIG_ECDSA_P256);
    return 0;
}

static int group_teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static const uint8_t PAYLOAD[] = "\x0a\x03" "125\x12\x07" "01/2025";

static lt_env_spec spec(void)
{
    lt_env_spec s = {
        .topic = "79.760.hotich.khaisinh",
        .record_type = "lienthong.v1.records.BirthRegistration",
        .payload = PAYLOAD,
        .payload_len = sizeof PAYLOAD - 1,
    };
    return s;
}

static uint8_t *seal(lt_signer *s, size_t *len)
{
    lt_env_spec sp = spec();
    uint8_t *out = NULL;
    lt_why why;
    if (lt_env_seal(s, &sp, &out, len, &why) != LT_OK)
        fail_msg("seal: %s", why.msg);
    return out;
}

/* Decode and verify buf at now; the code of whichever step refused it. */
static lt_err check_at(struct fx *f, const uint8_t *buf, size_t len, int64_t now, lt_why *why)
{
    lt_env *env = NULL;
    lt_err e = lt_env_decode(buf, len, NULL, &env, why);
    if (e != LT_OK)
        return e;
    e = lt_env_verify(env, f->trust, now, why);
    lt_env_destroy(&env);
    return e;
}

static lt_err check(struct fx *f, const uint8_t *buf, size_t len)
{
    lt_why why;
    return check_at(f, buf, len, lt_env_now_ms(), &why);
}

/* ---- tampering through protobuf-c ---- */
struct parts {
    Lienthong__V1__Envelope *e;
    Lienthong__V1__Header *h;
};

static struct parts unpack(const uint8_t *buf, size_t len)
{
    struct parts p;
    p.e = lienthong__v1__envelope__unpack(NULL, len, buf);
    assert_non_null(p.e);
    p.h = lienthong__v1__header__unpack(NULL, p.e->header.len, p.e->header.data);
    assert_non_null(p.h);
    return p;
}

/* Serialize p again: the header from p.h (re-signed by resign unless NULL), the rest as is.
 * Frees p. */
static uint8_t *repack(struct parts p, lt_signer *resign, size_t *len)
{
    size_t hl = lienthong__v1__header__get_packed_size(p.h);
    uint8_t *hb = malloc(hl);
    assert_non_null(hb);
    lienthong__v1__header__pack(p.h, hb);
    ProtobufCBinaryData oh = p.e->header, os = p.e->signature;
    uint8_t sig[LT_PKI_SIG_MAX];
    size_t sl = 0;
    p.e->header.data = hb;
    p.e->header.len = hl;
    if (resign != NULL) {
        assert_int_equal(lt_signer_sign(resign, LT_PKI_DOMAIN_ENVELOPE, hb, hl, sig, &sl, NULL),
                         LT_OK);
        p.e->signature.data = sig;
        p.e->signature.len = sl;
    }
    *len = lienthong__v1__envelope__get_packed_size(p.e);
    uint8_t *out = malloc(*len);
    assert_non_null(out);
    lienthong__v1__envelope__pack(p.e, out);
    p.e->header = oh;
    p.e->signature = os;
    free(hb);
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);
    return out;
}

/* ---- tests ---- */

static const uint8_t CORR[] = "G09.20-20260609-0092637", CAUSE[16] = {1, 2, 3};

/* spec() with a correlation and a causation id (CORR, CAUSE). */
static lt_env_spec spec_with_ids(void)
{
    lt_env_spec sp = spec();
    sp.correlation_id = CORR;
    sp.correlation_len = sizeof CORR - 1;
    sp.causation_id = CAUSE;
    sp.causation_len = sizeof CAUSE;
    return sp;
}

static void sealed_envelope_verifies_and_round_trips_its_fields(void **state)
{
    struct fx *f = *state;
    lt_env_spec sp = spec_with_ids();
    const uint8_t *corr = CORR, *cause = CAUSE;
    sp.created_ms = f->now - 1000;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, NULL), LT_OK);

    lt_env *env = NULL;
    lt_why why;
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, &why), LT_OK);
    assert_string_equal(lt_env_source(env), LT_DEVPKI_AGENCY_A);
    assert_string_equal(lt_env_topic(env), sp.topic);
    assert_string_equal(lt_env_record_type(env), sp.record_type);
    assert_int_equal(lt_env_created_ms(env), f->now - 1000);
    assert_int_equal(lt_env_schema_version(env), 1);
    size_t n;
    const uint8_t *p = lt_env_payload(env, &n);
    assert_int_equal(n, sp.payload_len);
    assert_memory_equal(p, PAYLOAD, n);
    p = lt_env_correlation_id(env, &n);
    assert_int_equal(n, sizeof CORR - 1);
    assert_memory_equal(p, corr, n);
    p = lt_env_causation_id(env, &n);
    assert_int_equal(n, 16);
    assert_memory_equal(p, cause, 16);
    assert_memory_equal(lt_env_key_id(env), lt_signer_key_id(f->a), 32);
    assert_int_equal(lt_env_message_id(env)[6] >> 4, 7); /* UUIDv7 */
    assert_false(lt_env_is_batch(env));
    if (lt_env_verify(env, f->trust, lt_env_now_ms(), &why) != LT_OK)
        fail_msg("verify: %s", why.msg);
    lt_env_destroy(&env);
    lt_env_destroy(&env); /* clears: a second destroy is a no-op */
    free(buf);
}

static void verify_rejects_tampered_payload(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    p.e->payload.data[0] ^= 1;
    free(buf);
    buf = repack(p, NULL, &len);
    assert_int_equal(check(f, buf, len), LT_EHASH);
    free(buf);
}

static void verify_rejects_tampered_header(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    free(buf);
    free(p.h->topic);
    p.h->topic = strdup("79.770.hotich.khaisinh"); /* same signature, another district */
    buf = repack(p, NULL, &len);
    assert_int_equal(check(f, buf, len), LT_ESIG);

    /* A flipped bit anywhere in the raw header bytes is caught too. */
    free(buf);
    buf = seal(f->a, &len);
    p = unpack(buf, len);
    lt_why why;
    for (size_t i = 0; i < p.e->header.len; i++) {
        p.e->header.data[i] ^= 0x10;
        size_t tl = lienthong__v1__envelope__get_packed_size(p.e);
        uint8_t *t = malloc(tl);
        lienthong__v1__envelope__pack(p.e, t);
        lt_err e = check_at(f, t, tl, lt_env_now_ms(), &why);
        if (e == LT_OK)
            fail_msg("header byte %zu flipped, still verifies", i);
        free(t);
        p.e->header.data[i] ^= 0x10;
    }
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);
    free(buf);
}

static void verify_rejects_signature_by_wrong_key(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    /* Header and certificate of A, signature by B's key. */
    struct parts p = unpack(buf, len);
    free(buf);
    buf = repack(p, f->b, &len);
    lt_why why;
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_ESIG);
    assert_non_null(strstr(why.msg, "does not verify"));
    free(buf);
}

static void verify_rejects_certificate_of_another_agency(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->b, &len); /* B signs, with B's certificate... */
    struct parts p = unpack(buf, len);
    free(buf);
    /* ...a header that claims to come from A, re-signed by B. */
    free(p.h->source);
    p.h->source = strdup(LT_DEVPKI_AGENCY_A);
    buf = repack(p, f->b, &len);
    lt_why why;
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_EAGENCY_MISMATCH);
    assert_non_null(strstr(why.msg, LT_DEVPKI_AGENCY_B));
    free(buf);
}

static void verify_rejects_expired_certificate(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->expired, &len);
    assert_int_equal(check(f, buf, len), LT_ECERT_EXPIRED);
    free(buf);
}

static void verify_rejects_certificate_not_yet_valid(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->future, &len);
    assert_int_equal(check(f, buf, len), LT_ECERT_NOT_YET_VALID);
    free(buf);
}

static void verify_rejects_revoked_certificate(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->revoked, &len);
    assert_int_equal(check(f, buf, len), LT_ECERT_REVOKED);
    free(buf);
}

static void verify_rejects_certificate_from_unknown_ca(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->otherca, &len);
    assert_int_equal(check(f, buf, len), LT_ECERT_UNKNOWN_CA);
    free(buf);
}

static void verify_rejects_an_envelope_signed_with_a_ca_certificate(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->caflag, &len); /* CA:TRUE, keyUsage digitalSignature only */
    lt_why why = {{0}};
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_ECERT_CA);
    assert_non_null(strstr(why.msg, LT_DEVPKI_AGENCY_A));
    free(buf);
}

/* Seal payload[0..len) as type with agency A, decode, verify (it must: the signature is
 * good whatever the payload), then lt_env_check_record; its code. */
static lt_err record_check(struct fx *f, const char *type, const void *payload, size_t len,
                           lt_why *why)
{
    lt_env_spec sp = spec();
    sp.record_type = type;
    sp.payload = payload;
    sp.payload_len = len;
    uint8_t *buf = NULL;
    size_t bl = 0;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &bl, NULL), LT_OK);
    lt_env *env = NULL;
    assert_int_equal(lt_env_decode(buf, bl, NULL, &env, why), LT_OK);
    assert_int_equal(lt_env_verify(env, f->trust, lt_env_now_ms(), why), LT_OK);
    lt_err e = lt_env_check_record(env, why);
    assert_int_equal(lt_env_check_record_type(env, NULL), e == LT_ERECORD_TYPE ? e : LT_OK);
    lt_env_destroy(&env);
    free(buf);
    return e;
}

static void check_record_accepts_a_record_of_its_type(void **state)
{
    struct fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(record_check(f, spec().record_type, PAYLOAD, sizeof PAYLOAD - 1, &why),
                     LT_OK);
    /* proto3: a record with every field at its default is an empty payload */
    assert_int_equal(record_check(f, "lienthong.v1.records.LandParcel", "", 0, &why), LT_OK);
}

static void check_record_refuses_a_record_type_outside_the_contract(void **state)
{
    struct fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(record_check(f, "bench.Payload", PAYLOAD, sizeof PAYLOAD - 1, &why),
                     LT_ERECORD_TYPE);
    assert_non_null(strstr(why.msg, "'bench.Payload'"));
    /* a helper message of the records package is not a record type */
    assert_int_equal(record_check(f, "lienthong.v1.records.Address", "", 0, &why),
                     LT_ERECORD_TYPE);
    assert_non_null(strstr(why.msg, "lienthong.v1.records.Address"));
}

static void check_record_refuses_schema_versions_other_than_one(void **state)
{
    struct fx *f = *state;
    const uint32_t versions[] = {7, 0, 2};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        size_t len;
        uint8_t *buf = seal(f->a, &len);
        struct parts p = unpack(buf, len);
        free(buf);
        assert_int_equal(p.h->schema_version, LT_ENV_SCHEMA_VERSION); /* what seal sets */
        p.h->schema_version = versions[i];
        buf = repack(p, f->a, &len); /* signed by A as it is: only the contract refuses it */
        lt_env *env = NULL;
        lt_why why = {{0}};
        assert_int_equal(lt_env_decode(buf, len, NULL, &env, &why), LT_OK);
        assert_int_equal(lt_env_verify(env, f->trust, lt_env_now_ms(), &why), LT_OK);
        assert_int_equal(lt_env_check_record_type(env, &why), LT_ESCHEMA);
        assert_int_equal(lt_env_check_record(env, &why), LT_ESCHEMA);
        char v[32];
        snprintf(v, sizeof v, "schema version %u", versions[i]);
        assert_non_null(strstr(why.msg, v));
        lt_env_destroy(&env);
        free(buf);
    }
}

static void check_record_refuses_a_payload_that_is_not_its_record_type(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *reason; /* a piece of why */
    } bad[] = {
        {"\xff\xff\xff", 3, "truncated field key"},
        {"garbage that is not a record", 28, "BirthRegistration"},
        {"\x0a\x05" "ab", 4, "runs past the end"},                /* string of 5, 2 sent */
        {"\x08\x01", 2, "field registration_number (1)"},        /* a string sent as varint */
        {"\x0f", 1, "wire type 7"},                               /* no such wire type */
        {"\x00\x01", 2, "field number 0"},
        {"\x0a\x03" "125\x98\x06\x01", 8, "field 99"},          /* unknown field 99 */
        {"\x8a\x01\x03" "\xff\xfe\xfd", 6, "note is not valid UTF-8"},
        {"\x3a\x02\x08\x01", 4, "does not decode"},   /* child: a Person, garbled inside */
        {"\x3a\x03\xa0\x06\x01", 5, "child carries 1 field"}, /* child.field 100 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_why why = {{0}};
        lt_err e = record_check(f, spec().record_type, bad[i].bytes, bad[i].len, &why);
        if (e != LT_EPAYLOAD || strstr(why.msg, bad[i].reason) == NULL)
            fail_msg("payload %zu: %s: %s (wanted BAD_PAYLOAD, '%s')", i, lt_err_name(e), why.msg,
                     bad[i].reason);
        assert_non_null(strstr(why.msg, spec().record_type));
    }
}

static void verify_rejects_key_id_that_is_not_the_certificates(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    free(buf);
    size_t bl;
    const uint8_t *bder = lt_signer_cert_der(f->b, &bl);
    ProtobufCBinaryData oc = p.e->certificate;
    p.e->certificate.data = (uint8_t *)bder; /* B's certificate under A's header */
    p.e->certificate.len = bl;
    len = lienthong__v1__envelope__get_packed_size(p.e);
    buf = malloc(len);
    lienthong__v1__envelope__pack(p.e, buf);
    p.e->certificate = oc;
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);
    assert_int_equal(check(f, buf, len), LT_EKEYID);
    free(buf);
}

static void verify_rejects_created_time_outside_clock_skew(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    lt_env *env = NULL;
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, NULL), LT_OK);
    int64_t created = lt_env_created_ms(env), skew = lt_trust_clock_skew_ms(f->trust);
    lt_why why;
    assert_int_equal(lt_env_verify(env, f->trust, created + skew, &why), LT_OK);
    assert_int_equal(lt_env_verify(env, f->trust, created - skew, &why), LT_OK);
    assert_int_equal(lt_env_verify(env, f->trust, created + skew + 1, &why), LT_ESKEW);
    assert_int_equal(lt_env_verify(env, f->trust, created - skew - 1, &why), LT_ESKEW);
    lt_env_destroy(&env);
    free(buf);
}

/* A record read from a queue long after it was published verifies at its own time (sub,
 * sink and verify share this rule), while today's CRL still applies to it. */
static void a_received_record_verifies_at_its_own_time_with_todays_crl(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    lt_env *env = NULL;
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, NULL), LT_OK);
    int64_t created = lt_env_created_ms(env), skew = lt_trust_clock_skew_ms(f->trust);
    int64_t day_later = created + 86400000;
    lt_why why;
    assert_int_equal(lt_env_verify(env, f->trust, day_later, &why), LT_ESKEW);
    assert_int_equal(lt_env_verify_received(env, f->trust, day_later, &why), LT_OK);
    /* a record from the future is still held to the skew */
    assert_int_equal(lt_env_verify_received(env, f->trust, created - skew - 1, &why), LT_ESKEW);
    lt_env_destroy(&env);
    free(buf);
    /* and a revoked certificate stays revoked, however old the record */
    buf = seal(f->revoked, &len);
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, NULL), LT_OK);
    assert_int_equal(lt_env_verify_received(env, f->trust, lt_env_created_ms(env) + 86400000, &why),
                     LT_ECERT_REVOKED);
    lt_env_destroy(&env);
    free(buf);
}

static void verify_rejects_certificate_not_valid_at_created_time(void **state)
{
    struct fx *f = *state;
    /* A wide skew lets a header claim a time before A's certificate began (now - 1 day). */
    lt_trust_opts o = lt_trust_opts_default();
    o.clock_skew_ms = 30 * LT_DEVPKI_DAY_MS;
    lt_trust *wide = open_trust(f->dir, &o);
    lt_env_spec sp = spec();
    sp.created_ms = f->now - 2 * LT_DEVPKI_DAY_MS;
    uint8_t *buf;
    size_t len;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, NULL), LT_OK);
    lt_env *env = NULL;
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, NULL), LT_OK);
    lt_why why;
    assert_int_equal(lt_env_verify(env, wide, lt_env_now_ms(), &why), LT_ECERT_NOT_YET_VALID);
    assert_non_null(strstr(why.msg, "created time"));
    lt_env_destroy(&env);
    lt_trust_destroy(&wide);
    free(buf);
}

static void decode_rejects_truncated_envelopes(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    lt_why why;
    for (size_t cut = 0; cut < len; cut++) {
        lt_err e = check_at(f, buf, cut, lt_env_now_ms(), &why);
        if (e == LT_OK)
            fail_msg("prefix of %zu of %zu bytes verified", cut, len);
    }
    assert_int_equal(check_at(f, buf, len - 1, lt_env_now_ms(), &why), LT_EPROTO);
    assert_int_equal(check_at(f, buf, 0, lt_env_now_ms(), &why), LT_EPROTO);
    free(buf);
}

static void decode_rejects_oversized_envelopes(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    lt_env *env = NULL;
    lt_why why;
    lt_env_limits lim = lt_env_limits_default();
    lim.max_envelope = len - 1;
    assert_int_equal(lt_env_decode(buf, len, &lim, &env, &why), LT_ETOOBIG);
    lim = lt_env_limits_default();
    lim.max_payload = sizeof PAYLOAD - 2;
    assert_int_equal(lt_env_decode(buf, len, &lim, &env, &why), LT_ETOOBIG);
    lim = lt_env_limits_default();
    lim.max_header = 10;
    assert_int_equal(lt_env_decode(buf, len, &lim, &env, &why), LT_ETOOBIG);
    assert_null(env);
    free(buf);

    /* The sealer refuses to build what a verifier would refuse. */
    size_t big = lt_env_limits_default().max_payload + 1;
    uint8_t *payload = calloc(1, big);
    lt_env_spec sp = spec();
    sp.payload = payload;
    sp.payload_len = big;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, &why), LT_EINVAL);
    free(payload);
}

static void decode_rejects_malformed_source_agency_id(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    free(buf);
    free(p.h->source);
    p.h->source = strdup("VN:GOV:000.00.H29:hotich");
    buf = repack(p, f->a, &len);
    lt_why why;
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_EAGENCY_ID);
    assert_non_null(strstr(why.msg, "QCVN 102"));
    free(buf);

    buf = seal(f->a, &len);
    p = unpack(buf, len);
    free(buf);
    free(p.h->source);
    p.h->source = strdup("vn:gov:000.00.00.h29.760:hotich"); /* valid, but not normal form */
    buf = repack(p, f->a, &len);
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_EAGENCY_ID);
    free(buf);
}

static void decode_rejects_an_all_zero_message_id_with_its_own_code(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    free(buf);
    memset(p.h->message_id.data, 0, p.h->message_id.len);
    buf = repack(p, f->a, &len); /* correctly signed */
    lt_env *env = NULL;
    lt_why why;
    assert_int_equal(lt_env_decode(buf, len, NULL, &env, &why), LT_EMSGID);
    assert_non_null(strstr(why.msg, "all zero"));
    assert_null(env);
    free(buf);
}

static void decode_rejects_fields_of_the_wrong_size(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    struct parts p = unpack(buf, len);
    free(buf);
    p.h->message_id.len = 15;
    buf = repack(p, f->a, &len);
    assert_int_equal(check(f, buf, len), LT_EPROTO);
    free(buf);

    buf = seal(f->a, &len);
    p = unpack(buf, len);
    free(buf);
    p.e->certificate.len = 0;
    buf = repack(p, NULL, &len);
    assert_int_equal(check(f, buf, len), LT_EPROTO);
    free(buf);

    assert_int_equal(check(f, (const uint8_t *)"\xff\xff\xff", 3), LT_EPROTO);
}

/* A batch of n, sealed; outs/lens owned by the caller. */
static void seal_batch(lt_signer *s, size_t n, uint8_t **outs, size_t *lens)
{
    lt_env_spec *specs = calloc(n, sizeof *specs);
    for (size_t i = 0; i < n; i++)
        specs[i] = spec();
    lt_why why;
    if (lt_env_seal_batch(s, specs, n, outs, lens, &why) != LT_OK)
        fail_msg("seal batch of %zu: %s", n, why.msg);
    free(specs);
}

static void batches_of_every_shape_verify_each_envelope_alone(void **state)
{
    struct fx *f = *state;
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 16, 17, 64};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        uint8_t *outs[64];
        size_t lens[64];
        seal_batch(f->a, n, outs, lens);
        /* A fresh trust per batch: nothing cached, each envelope verified from scratch. */
        const uint8_t *hdrs[64];
        size_t hlens[64];
        lt_env *envs[64];
        for (size_t i = 0; i < n; i++) {
            lt_why why;
            assert_int_equal(lt_env_decode(outs[i], lens[i], NULL, &envs[i], &why), LT_OK);
            assert_true(lt_env_is_batch(envs[i]));
            assert_int_equal(lt_env_batch_index(envs[i]), i);
            assert_int_equal(lt_env_batch_count(envs[i]), n);
            lt_trust *fresh = open_trust(f->dir, NULL);
            if (lt_env_verify(envs[i], fresh, lt_env_now_ms(), &why) != LT_OK)
                fail_msg("batch of %zu, envelope %zu: %s", n, i, why.msg);
            lt_trust_destroy(&fresh);
            hdrs[i] = lt_env_header(envs[i], &hlens[i]);
        }
        /* The proof's root is the Merkle root over the headers. */
        uint8_t root[32];
        assert_int_equal(lt_env_merkle_root(hdrs, hlens, n, root, NULL), LT_OK);
        struct parts p = unpack(outs[0], lens[0]);
        assert_memory_equal(p.e->batch->root.data, root, 32);
        lienthong__v1__header__free_unpacked(p.h, NULL);
        lienthong__v1__envelope__free_unpacked(p.e, NULL);
        for (size_t i = 0; i < n; i++) {
            lt_env_destroy(&envs[i]);
            free(outs[i]);
        }
    }
}

/* Both decoders give the same answer for in: the same code and reason, and when the flat
 * decoder takes it, the same fields (lt_env_flat_agrees). *flat: lt_env_decode took it flat. */
static void decoders_agree(const uint8_t *in, size_t len, bool *flat)
{
    bool took;
    if (!lt_env_flat_agrees(in, len, &took))
        fail_msg("the flat decoder reads %zu bytes otherwise than protobuf-c", len);
    lt_env *a = NULL, *b = NULL;
    lt_why wa = {{0}}, wb = {{0}};
    lt_err ea = lt_env_decode(in, len, NULL, &a, &wa);
    lt_err eb = lt_env_decode_unpacked(in, len, NULL, &b, &wb);
    if (ea != eb || strcmp(wa.msg, wb.msg) != 0)
        fail_msg("decode: %s (%s) flat, %s (%s) through protobuf-c", lt_err_name(ea), wa.msg,
                 lt_err_name(eb), wb.msg);
    *flat = a != NULL && lt_env_is_flat(a);
    if (a != NULL && b != NULL) {
        size_t na, nb;
        const uint8_t *pa = lt_env_header(a, &na), *pb = lt_env_header(b, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na);
        assert_string_equal(lt_env_source(a), lt_env_source(b));
        assert_string_equal(lt_env_topic(a), lt_env_topic(b));
    }
    if (ea == LT_OK)
        assert_int_equal(took, *flat); /* taken flat exactly when the flat decoder reads it */
    lt_env_destroy(&a);
    lt_env_destroy(&b);
}

static void the_flat_decoder_reads_every_sealed_shape_as_protobuf_c_does(void **state)
{
    struct fx *f = *state;
    bool flat;
    size_t len;
    uint8_t *one = seal(f->a, &len);
    decoders_agree(one, len, &flat);
    assert_true(flat); /* the common shape takes the fast way */
    lt_env_spec sp = spec_with_ids();
    uint8_t *full = NULL;
    size_t flen = 0;
    assert_int_equal(lt_env_seal(f->a, &sp, &full, &flen, NULL), LT_OK);
    decoders_agree(full, flen, &flat);
    assert_true(flat);
    for (size_t n = 1; n <= 70; n += (n < 9 ? 1 : 15)) {
        uint8_t *outs[70];
        size_t lens[70];
        seal_batch(f->a, n, outs, lens);
        for (size_t i = 0; i < n; i++) {
            decoders_agree(outs[i], lens[i], &flat);
            assert_true(flat);
            free(outs[i]);
        }
    }
    /* every byte of a batch envelope and of the full one changed three ways: whatever the
     * flat decoder still takes, it reads as protobuf-c does, and refusals keep their reason */
    uint8_t *outs[5];
    size_t lens[5];
    seal_batch(f->a, 5, outs, lens);
    const uint8_t *bufs[2] = {outs[3], full};
    const size_t blens[2] = {lens[3], flen};
    size_t nflat = 0, nslow = 0;
    for (size_t k = 0; k < 2; k++) {
        uint8_t *m = malloc(blens[k]);
        for (size_t i = 0; i < blens[k]; i++) {
            static const uint8_t delta[] = {0x01, 0x80, 0xff};
            for (size_t d = 0; d < sizeof delta; d++) {
                memcpy(m, bufs[k], blens[k]);
                m[i] ^= delta[d];
                decoders_agree(m, blens[k], &flat);
                flat ? nflat++ : nslow++;
            }
        }
        free(m);
    }
    assert_true(nflat > 0 && nslow > 0); /* both ways were exercised */
    for (size_t i = 0; i < 5; i++)
        free(outs[i]);
    free(full);
    free(one);
}

static void unusual_wire_shapes_are_left_to_protobuf_c(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *buf = seal(f->a, &len);
    uint8_t *m = malloc(len + 64);
    bool flat;
    /* an unknown field (99, varint) after the envelope: protobuf-c skips it */
    memcpy(m, buf, len);
    size_t n = len;
    m[n++] = 0x98; /* key (99 << 3) | 0 as a varint */
    m[n++] = 0x06;
    m[n++] = 0x2a;
    decoders_agree(m, n, &flat);
    assert_false(flat);
    lt_env *env = NULL;
    lt_why why;
    assert_int_equal(lt_env_decode(m, n, NULL, &env, &why), LT_OK);
    lt_env_destroy(&env);
    /* a second payload field: protobuf-c keeps the last one */
    memcpy(m, buf, len);
    n = len;
    m[n++] = 0x12; /* field 2, length-delimited */
    m[n++] = 3;
    memcpy(m + n, "abc", 3);
    n += 3;
    decoders_agree(m, n, &flat);
    assert_false(flat);
    assert_int_equal(lt_env_decode(m, n, NULL, &env, &why), LT_OK);
    size_t pl;
    const uint8_t *p = lt_env_payload(env, &pl);
    assert_int_equal(pl, 3);
    assert_memory_equal(p, "abc", 3);
    lt_env_destroy(&env);
    free(m);
    free(buf);
}

static void merkle_root_follows_the_documented_rules(void **state)
{
    (void)state;
    const uint8_t *h[3] = {(const uint8_t *)"a", (const uint8_t *)"b", (const uint8_t *)"c"};
    size_t l[3] = {1, 1, 1};
    uint8_t leaf[3][32], n01[32], want[32], got[32], buf[65];
    for (int i = 0; i < 3; i++) {
        buf[0] = 0;
        buf[1] = h[i][0];
        EVP_Digest(buf, 2, leaf[i], NULL, EVP_sha256(), NULL);
    }
    buf[0] = 1;
    memcpy(buf + 1, leaf[0], 32);
    memcpy(buf + 33, leaf[1], 32);
    EVP_Digest(buf, 65, n01, NULL, EVP_sha256(), NULL);
    memcpy(buf + 1, n01, 32);
    memcpy(buf + 33, leaf[2], 32); /* c is promoted unchanged, then joined */
    EVP_Digest(buf, 65, want, NULL, EVP_sha256(), NULL);
    assert_int_equal(lt_env_merkle_root(h, l, 3, got, NULL), LT_OK);
    assert_memory_equal(got, want, 32);
    assert_int_equal(lt_env_merkle_root(h, l, 1, got, NULL), LT_OK);
    assert_memory_equal(got, leaf[0], 32);
    assert_int_equal(lt_env_merkle_root(h, l, 0, got, NULL), LT_EINVAL);
}

static void verify_rejects_batch_proof_that_misses_the_signed_root(void **state)
{
    struct fx *f = *state;
    uint8_t *outs[5];
    size_t lens[5], len;
    seal_batch(f->a, 5, outs, lens);
    lt_why why;

    /* A sibling changed. */
    struct parts p = unpack(outs[1], lens[1]);
    p.e->batch->siblings[0].data[3] ^= 1;
    uint8_t *buf = repack(p, NULL, &len);
    assert_int_equal(check_at(f, buf, len, lt_env_now_ms(), &why), LT_EPROOF);
    free(buf);

    /* The leaf index moved. */
    p = unpack(outs[1], lens[1]);
    p.e->batch->leaf_index = 0;
    buf = repack(p, NULL, &len);
    assert_int_equal(check(f, buf, len), LT_EPROOF);
    free(buf);

    /* A sibling too few. */
    p = unpack(outs[2], lens[2]);
    p.e->batch->n_siblings--;
    len = lienthong__v1__envelope__get_packed_size(p.e);
    buf = malloc(len);
    lienthong__v1__envelope__pack(p.e, buf);
    p.e->batch->n_siblings++; /* so that every sibling is freed */
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);
    assert_int_equal(check(f, buf, len), LT_EPROOF);
    free(buf);

    /* The header of another batch member under this proof. */
    p = unpack(outs[3], lens[3]);
    struct parts q = unpack(outs[4], lens[4]);
    ProtobufCBinaryData oh = p.e->header;
    p.e->header = q.e->header;
    len = lienthong__v1__envelope__get_packed_size(p.e);
    buf = malloc(len);
    lienthong__v1__envelope__pack(p.e, buf);
    p.e->header = oh;
    assert_int_equal(check(f, buf, len), LT_EPROOF);
    free(buf);
    lienthong__v1__header__free_unpacked(q.h, NULL);
    lienthong__v1__envelope__free_unpacked(q.e, NULL);
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);

    /* A root the proof leads to but nobody signed: the signature fails. */
    p = unpack(outs[0], lens[0]);
    p.e->signature.data[p.e->signature.len / 2] ^= 1;
    buf = repack(p, NULL, &len);
    assert_int_equal(check(f, buf, len), LT_ESIG);
    free(buf);

    for (size_t i = 0; i < 5; i++)
        free(outs[i]);
}

/* The thread's memo of verified paths (envelope_memo.c) skips hashing where an envelope's
 * path meets a known one; it must never skip a check: once the whole batch has verified, a
 * sibling changed at any level, or a header swapped in, is still refused. */
static void a_known_batch_still_refuses_a_proof_tampered_at_any_level(void **state)
{
    struct fx *f = *state;
    enum { N = 16 };
    uint8_t *outs[N];
    size_t lens[N], len;
    seal_batch(f->a, N, outs, lens);
    lt_why why;
    for (int round = 0; round < 2; round++) /* the second round runs on the memo */
        for (size_t i = 0; i < N; i++)
            if (check_at(f, outs[i], lens[i], lt_env_now_ms(), &why) != LT_OK)
                fail_msg("round %d, envelope %zu: %s", round, i, why.msg);
    for (size_t i = 0; i < N; i += 5) {
        struct parts p = unpack(outs[i], lens[i]);
        size_t nsib = p.e->batch->n_siblings;
        lienthong__v1__header__free_unpacked(p.h, NULL);
        lienthong__v1__envelope__free_unpacked(p.e, NULL);
        for (size_t lv = 0; lv < nsib; lv++) {
            p = unpack(outs[i], lens[i]);
            p.e->batch->siblings[lv].data[lv] ^= 0x40;
            uint8_t *buf = repack(p, NULL, &len);
            if (check(f, buf, len) != LT_EPROOF)
                fail_msg("envelope %zu with sibling %zu changed was not refused", i, lv);
            free(buf);
        }
    }
    /* another member's header under a known proof */
    struct parts p = unpack(outs[6], lens[6]);
    struct parts q = unpack(outs[7], lens[7]);
    ProtobufCBinaryData oh = p.e->header;
    p.e->header = q.e->header;
    len = lienthong__v1__envelope__get_packed_size(p.e);
    uint8_t *buf = malloc(len);
    lienthong__v1__envelope__pack(p.e, buf);
    p.e->header = oh;
    assert_int_equal(check(f, buf, len), LT_EPROOF);
    free(buf);
    lienthong__v1__header__free_unpacked(q.h, NULL);
    lienthong__v1__envelope__free_unpacked(q.e, NULL);
    lienthong__v1__header__free_unpacked(p.h, NULL);
    lienthong__v1__envelope__free_unpacked(p.e, NULL);
    /* and the untouched ones still verify */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(check_at(f, outs[i], lens[i], lt_env_now_ms(), &why), LT_OK);
        free(outs[i]);
    }
}

static void batch_costs_one_signature_check_through_the_root_cache(void **state)
{
    struct fx *f = *state;
    lt_trust *t = open_trust(f->dir, NULL);
    uint8_t *outs[16];
    size_t lens[16];
    seal_batch(f->a, 16, outs, lens);
    for (size_t i = 0; i < 16; i++) {
        lt_env *env = NULL;
        lt_why why;
        assert_int_equal(lt_env_decode(outs[i], lens[i], NULL, &env, NULL), LT_OK);
        if (lt_env_verify(env, t, lt_env_now_ms(), &why) != LT_OK)
            fail_msg("%zu: %s", i, why.msg);
        lt_env_destroy(&env);
        free(outs[i]);
    }
    lt_trust_stats st;
    lt_trust_get_stats(t, &st);
    assert_int_equal(st.root_misses, 1);
    assert_int_equal(st.root_hits, 15);
    assert_int_equal(st.cert_misses, 1);
    assert_int_equal(st.cert_hits, 15);
    lt_trust_destroy(&t);
}

static void every_algorithm_seals_and_verifies(void **state)
{
    (void)state;
    static const lt_sig_alg algs[] = {LT_SIG_ECDSA_P256, LT_SIG_ED25519, LT_SIG_RSA2048};
    for (size_t k = 0; k < 3; k++) {
        struct fx *g = fx_new(algs[k]);
        assert_int_equal(lt_signer_alg(g->a), algs[k]);
        size_t len;
        uint8_t *buf = seal(g->a, &len);
        lt_why why = {{0}};
        lt_err e = check_at(g, buf, len, lt_env_now_ms(), &why);
        if (e != LT_OK)
            fail_msg("%s: %s", lt_sig_alg_name(algs[k]), why.msg);
        struct parts p = unpack(buf, len);
        free(buf);
        buf = repack(p, g->b, &len);
        assert_int_equal(check(g, buf, len), LT_ESIG);
        free(buf);
        uint8_t *outs[3];
        size_t lens[3];
        seal_batch(g->a, 3, outs, lens);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(check(g, outs[i], lens[i]), LT_OK);
            free(outs[i]);
        }
        buf = seal(g->revoked, &len);
        assert_int_equal(check(g, buf, len), LT_ECERT_REVOKED);
        free(buf);
        fx_free(g);
    }
}

static void crl_reload_revokes_a_cached_certificate(void **state)
{
    (void)state;
    struct fx *g = fx_new(LT_SIG_ECDSA_P256);
    size_t len;
    uint8_t *buf = seal(g->a, &len);
    assert_int_equal(check(g, buf, len), LT_OK); /* now cached */

    char key[512], cert[512], ca_cert[512], crl[512];
    snprintf(key, sizeof key, "%s/ca.key.pem", g->dir);
    snprintf(ca_cert, sizeof ca_cert, "%s/ca.cert.pem", g->dir);
    snprintf(cert, sizeof cert, "%s/a.cert.pem", g->dir);
    snprintf(crl, sizeof crl, "%s/crl.pem", g->dir);
    lt_devpki_ca *ca = NULL;
    lt_why why;
    assert_int_equal(lt_devpki_ca_load(key, ca_cert, &ca, &why), LT_OK);
    assert_int_equal(lt_devpki_revoke(ca, cert, crl, lt_env_now_ms(), &why), LT_OK);
    assert_int_equal(check(g, buf, len), LT_OK); /* not reloaded yet */
    assert_int_equal(lt_trust_reload_crl(g->trust, &why), LT_OK);
    assert_int_equal(check(g, buf, len), LT_ECERT_REVOKED);

    lt_trust_stats st;
    lt_trust_get_stats(g->trust, &st);
    assert_int_equal(st.crl_reloads, 1);
    assert_int_equal(st.crl_revoked, 2); /* revoked.cert.pem and now a.cert.pem */

    /* A damaged CRL file is refused and the one in force stays. */
    assert_int_equal(lt_devpki_write_file(crl, "garbage", 7, 0644, &why), LT_OK);
    assert_int_equal(lt_trust_reload_crl(g->trust, &why), LT_ECRL);
    assert_non_null(strstr(why.msg, "previous CRL kept"));
    assert_int_equal(check(g, buf, len), LT_ECERT_REVOKED);
    lt_devpki_ca_destroy(&ca);
    free(buf);
    fx_free(g);
}

struct worker {
    struct fx *f;
    uint8_t **bufs;
    size_t *lens, n;
    int failures;
};

static void *verify_worker(void *arg)
{
    struct worker *w = arg;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < w->n; i++)
            if (check(w->f, w->bufs[i], w->lens[i]) != LT_OK)
                w->failures++;
    return NULL;
}

static void verifying_threads_share_one_trust_while_the_crl_reloads(void **state)
{
    struct fx *f = *state;
    uint8_t *outs[32];
    size_t lens[32];
    seal_batch(f->a, 16, outs, lens);
    for (size_t i = 16; i < 32; i++)
        outs[i] = seal(i % 2 ? f->a : f->b, &lens[i]);
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.f = f, .bufs = outs, .lens = lens, .n = 32};
        assert_int_equal(pthread_create(&th[i], NULL, verify_worker, &w[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        lt_why why;
        assert_int_equal(lt_trust_reload_crl(f->trust, &why), LT_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    for (size_t i = 0; i < 32; i++)
        free(outs[i]);
}

/* Threads that verify the same batch root at once: one does the signature math, the
 * others wait for its outcome (lt_trust_verify_root). A forged root is never cached: each
 * thread then verifies it itself and is refused, and none waits for ever. */
struct root_worker {
    lt_trust *t;
    const lt_trust_cert *cert;
    const uint8_t *root, *sig;
    size_t sig_len;
    pthread_barrier_t *go;
    lt_err e;
};

static void *root_worker_main(void *arg)
{
    struct root_worker *w = arg;
    lt_why why;
    pthread_barrier_wait(w->go);
    w->e = lt_trust_verify_root(w->t, w->cert, w->root, w->sig, w->sig_len, &why);
    return NULL;
}

static void run_root_workers(lt_trust *t, const lt_trust_cert *c, const uint8_t root[32],
                             const uint8_t *sig, size_t sig_len, lt_err want)
{
    enum { NT = 8 };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NT);
    struct root_worker w[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (struct root_worker){t, c, root, sig, sig_len, &go, LT_EINVAL};
        assert_int_equal(pthread_create(&th[i], NULL, root_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].e, want);
    }
    pthread_barrier_destroy(&go);
}

static void threads_verifying_one_batch_root_do_its_signature_math_once(void **state)
{
    struct fx *f = *state;
    for (int round = 0; round < 5; round++) {
        lt_trust *t = open_trust(f->dir, NULL);
        size_t der_len = 0;
        const uint8_t *der = lt_signer_cert_der(f->a, &der_len);
        lt_trust_cert c;
        lt_why why;
        assert_int_equal(lt_trust_cert_hold(t, der, der_len, NULL, f->now, &c, &why), LT_OK);
        uint8_t root[32], sig[LT_PKI_SIG_MAX];
        size_t sig_len = 0;
        memset(root, 0x40 + round, sizeof root);
        assert_int_equal(lt_signer_sign(f->a, LT_PKI_DOMAIN_BATCH, root, 32, sig, &sig_len, &why),
                         LT_OK);
        run_root_workers(t, &c, root, sig, sig_len, LT_OK);
        lt_trust_stats st;
        lt_trust_get_stats(t, &st);
        assert_int_equal(st.root_misses, 1);
        assert_int_equal(st.root_hits + st.root_waits, 7);

        root[0] ^= 1; /* the same signature over another root: a forgery */
        run_root_workers(t, &c, root, sig, sig_len, LT_ESIG);
        lt_trust_get_stats(t, &st);
        assert_int_equal(st.root_misses, 1 + 8); /* each refused by its own verification */
        lt_trust_cert_rele(&c);
        lt_trust_destroy(&t);
    }
}

static void signing_failure_is_reported_and_the_error_queue_drained(void **state)
{
    struct fx *f = *state;
    lt_env_spec sp = spec();
    uint8_t *buf = NULL;
    size_t len = 0;
    lt_why why;
    fail_sign = 1;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, &why), LT_ECRYPTO);
    assert_non_null(strstr(why.msg, "signing failed"));
    assert_int_equal(ERR_peek_error(), 0);
    uint8_t *outs[2] = {NULL, NULL};
    size_t lens[2];
    lt_env_spec two[2] = {sp, sp};
    assert_int_equal(lt_env_seal_batch(f->a, two, 2, outs, lens, &why), LT_ECRYPTO);
    assert_null(outs[0]);
    fail_sign = 0;
    assert_null(buf);
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, &why), LT_OK);
    free(buf);
}

static void seal_refuses_invalid_specs(void **state)
{
    struct fx *f = *state;
    uint8_t *buf = NULL;
    size_t len;
    lt_env_spec sp = spec();
    sp.topic = "";
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, NULL), LT_EINVAL);
    sp = spec();
    sp.record_type = NULL;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, NULL), LT_EINVAL);
    sp = spec();
    sp.causation_id = (const uint8_t *)"short";
    sp.causation_len = 5;
    assert_int_equal(lt_env_seal(f->a, &sp, &buf, &len, NULL), LT_EINVAL);
    assert_int_equal(lt_env_seal_batch(f->a, &sp, 0, &buf, &len, NULL), LT_EINVAL);
    assert_null(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sealed_envelope_verifies_and_round_trips_its_fields),
        cmocka_unit_test(verify_rejects_tampered_payload),
        cmocka_unit_test(verify_rejects_tampered_header),
        cmocka_unit_test(verify_rejects_signature_by_wrong_key),
        cmocka_unit_test(verify_rejects_certificate_of_another_agency),
        cmocka_unit_test(verify_rejects_expired_certificate),
        cmocka_unit_test(verify_rejects_certificate_not_yet_valid),
        cmocka_unit_test(verify_rejects_revoked_certificate),
        cmocka_unit_test(verify_rejects_certificate_from_unknown_ca),
        cmocka_unit_test(verify_rejects_an_envelope_signed_with_a_ca_certificate),
        cmocka_unit_test(check_record_accepts_a_record_of_its_type),
        cmocka_unit_test(check_record_refuses_a_record_type_outside_the_contract),
        cmocka_unit_test(check_record_refuses_schema_versions_other_than_one),
        cmocka_unit_test(check_record_refuses_a_payload_that_is_not_its_record_type),
        cmocka_unit_test(verify_rejects_key_id_that_is_not_the_certificates),
        cmocka_unit_test(verify_rejects_created_time_outside_clock_skew),
        cmocka_unit_test(a_received_record_verifies_at_its_own_time_with_todays_crl),
        cmocka_unit_test(verify_rejects_certificate_not_valid_at_created_time),
        cmocka_unit_test(decode_rejects_truncated_envelopes),
        cmocka_unit_test(the_flat_decoder_reads_every_sealed_shape_as_protobuf_c_does),
        cmocka_unit_test(unusual_wire_shapes_are_left_to_protobuf_c),
        cmocka_unit_test(decode_rejects_oversized_envelopes),
        cmocka_unit_test(decode_rejects_malformed_source_agency_id),
        cmocka_unit_test(decode_rejects_fields_of_the_wrong_size),
        cmocka_unit_test(decode_rejects_an_all_zero_message_id_with_its_own_code),
        cmocka_unit_test(batches_of_every_shape_verify_each_envelope_alone),
        cmocka_unit_test(merkle_root_follows_the_documented_rules),
        cmocka_unit_test(verify_rejects_batch_proof_that_misses_the_signed_root),
        cmocka_unit_test(a_known_batch_still_refuses_a_proof_tampered_at_any_level),
        cmocka_unit_test(batch_costs_one_signature_check_through_the_root_cache),
        cmocka_unit_test(every_algorithm_seals_and_verifies),
        cmocka_unit_test(crl_reload_revokes_a_cached_certificate),
        cmocka_unit_test(verifying_threads_share_one_trust_while_the_crl_reloads),
        cmocka_unit_test(threads_verifying_one_batch_root_do_its_signature_math_once),
        cmocka_unit_test(signing_failure_is_reported_and_the_error_queue_drained),
        cmocka_unit_test(seal_refuses_invalid_specs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
