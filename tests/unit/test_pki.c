/* test_pki.c - signers, trust roots, CRLs and the certificate cache: each bad certificate and
 * each bad trust file is refused with its own code; signatures are bound to their domain;
 * OpenSSL failures are translated and the error queue drained.
 *
 * LT_WRAP: RAND_bytes
 */
#include "devpki.h"
#include "pki.h"

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

int __real_RAND_bytes(unsigned char *buf, int num);
int __wrap_RAND_bytes(unsigned char *buf, int num);
static int fail_rand;

int __wrap_RAND_bytes(unsigned char *buf, int num)
{
    if (fail_rand) {
        ERR_raise(ERR_LIB_RAND, ERR_R_INTERNAL_ERROR);
        return 0;
    }
    return __real_RAND_bytes(buf, num);
}

struct fx {
    char dir[256];
    int64_t now;
    lt_trust *trust;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static char *path(struct fx *f, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", f->dir, name);
    return buf[k];
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int group_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof f->dir, "%s/lt-test-pki-XXXXXX", tmp);
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->now = now_ms();
    lt_why why;
    if (lt_devpki_fixture(f->dir, LT_SIG_ECDSA_P256, f->now, &why) != LT_OK ||
        lt_trust_open(path(f, "ca.cert.pem"), path(f, "crl.pem"), NULL, &f->trust, &why) != LT_OK) {
        fprintf(stderr, "fixture: %s\n", why.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    lt_trust_destroy(&f->trust);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static lt_signer *signer(struct fx *f, const char *name)
{
    char k[64], c[64];
    snprintf(k, sizeof k, "%s.key.pem", name);
    snprintf(c, sizeof c, "%s.cert.pem", name);
    char kp[512], cp[512];
    snprintf(kp, sizeof kp, "%s", path(f, k));
    snprintf(cp, sizeof cp, "%s", path(f, c));
    lt_signer *s = NULL;
    lt_why why;
    if (lt_signer_open(kp, cp, &s, &why) != LT_OK)
        fail_msg("%s: %s", name, why.msg);
    return s;
}

/* Check the certificate of fixture name at now; its code. */
static lt_err check_named(struct fx *f, const char *name, lt_why *why)
{
    lt_signer *s = signer(f, name);
    size_t len;
    const uint8_t *der = lt_signer_cert_der(s, &len);
    char agency[LT_AGENCY_ID_MAX] = "";
    lt_err e = lt_trust_check_cert(f->trust, der, len, now_ms(), agency, why);
    if (e == LT_OK)
        assert_string_equal(agency, lt_signer_agency(s));
    lt_signer_destroy(&s);
    return e;
}

static void sha256_matches_the_standard_test_vector(void **state)
{
    (void)state;
    uint8_t d[32];
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    assert_int_equal(lt_pki_sha256((const uint8_t *)"abc", 3, d, NULL), LT_OK);
    assert_memory_equal(d, abc, 32);
    const uint8_t *parts[3] = {(const uint8_t *)"a", (const uint8_t *)"", (const uint8_t *)"bc"};
    size_t lens[3] = {1, 0, 2};
    assert_int_equal(lt_pki_sha256v(parts, lens, 3, d, NULL), LT_OK);
    assert_memory_equal(d, abc, 32);
}

static void algorithm_names_round_trip(void **state)
{
    (void)state;
    lt_sig_alg a;
    lt_why why;
    assert_int_equal(lt_sig_alg_parse("ed25519", &a, NULL), LT_OK);
    assert_int_equal(a, LT_SIG_ED25519);
    assert_string_equal(lt_sig_alg_name(LT_SIG_RSA2048), "rsa2048");
    assert_int_equal(lt_sig_alg_parse("dsa", &a, &why), LT_EINVAL);
    assert_non_null(strstr(why.msg, "ecdsa-p256"));
}

static void signer_knows_its_agency_and_key_id(void **state)
{
    struct fx *f = *state;
    lt_signer *s = signer(f, "a");
    assert_string_equal(lt_signer_agency(s), LT_DEVPKI_AGENCY_A);
    assert_int_equal(lt_signer_alg(s), LT_SIG_ECDSA_P256);
    size_t len;
    const uint8_t *der = lt_signer_cert_der(s, &len);
    uint8_t fp[32];
    lt_pki_sha256(der, len, fp, NULL);
    assert_memory_equal(fp, lt_signer_key_id(s), 32);
    lt_signer_destroy(&s);
    assert_null(s);
    lt_signer_destroy(NULL);
}

static void signer_refuses_a_key_that_does_not_match_its_certificate(void **state)
{
    struct fx *f = *state;
    lt_signer *s = NULL;
    lt_why why;
    char kp[512];
    snprintf(kp, sizeof kp, "%s", path(f, "a.key.pem"));
    assert_int_equal(lt_signer_open(kp, path(f, "b.cert.pem"), &s, &why), LT_ECERT_INVALID);
    assert_non_null(strstr(why.msg, "does not match"));
    assert_int_equal(lt_signer_open(path(f, "missing.pem"), path(f, "b.cert.pem"), &s, &why),
                     LT_EIO);
    assert_int_equal(ERR_peek_error(), 0);
    assert_null(s);
}

static void signer_refuses_a_certificate_whose_cn_is_not_an_agency_id(void **state)
{
    struct fx *f = *state;
    lt_devpki_ca *ca = NULL;
    lt_why why;
    char kp[512];
    snprintf(kp, sizeof kp, "%s", path(f, "ca.key.pem"));
    assert_int_equal(lt_devpki_ca_load(kp, path(f, "ca.cert.pem"), &ca, &why), LT_OK);
    lt_devpki_cert_spec spec = {.agency_id = "UBND Quan 1", .org = "x", .alg = LT_SIG_ED25519,
                                .not_before_ms = f->now - 1000, .not_after_ms = f->now + 100000};
    snprintf(kp, sizeof kp, "%s", path(f, "bad.key.pem"));
    assert_int_equal(lt_devpki_issue(ca, &spec, kp, path(f, "bad.cert.pem"), &why), LT_OK);
    lt_devpki_ca_destroy(&ca);
    lt_signer *s = NULL;
    assert_int_equal(lt_signer_open(kp, path(f, "bad.cert.pem"), &s, &why), LT_ECERT_INVALID);
    assert_non_null(strstr(why.msg, "not an agency id"));
}

static void signatures_are_bound_to_their_domain(void **state)
{
    struct fx *f = *state;
    lt_signer *s = signer(f, "a");
    uint8_t nonce[32] = {7}, sig[LT_PKI_SIG_MAX];
    size_t sl, dl;
    assert_int_equal(lt_signer_sign(s, LT_PKI_DOMAIN_AUTH, nonce, 32, sig, &sl, NULL), LT_OK);
    const uint8_t *der = lt_signer_cert_der(s, &dl);
    char agency[LT_AGENCY_ID_MAX];
    lt_why why;
    assert_int_equal(lt_trust_verify_sig(f->trust, der, dl, now_ms(), LT_PKI_DOMAIN_AUTH, nonce, 32,
                                         sig, sl, agency, &why),
                     LT_OK);
    assert_string_equal(agency, LT_DEVPKI_AGENCY_A);
    assert_int_equal(lt_trust_verify_sig(f->trust, der, dl, now_ms(), LT_PKI_DOMAIN_BATCH, nonce,
                                         32, sig, sl, NULL, &why),
                     LT_ESIG);
    nonce[0] ^= 1;
    assert_int_equal(lt_trust_verify_sig(f->trust, der, dl, now_ms(), LT_PKI_DOMAIN_AUTH, nonce, 32,
                                         sig, sl, NULL, &why),
                     LT_ESIG);
    assert_int_equal(ERR_peek_error(), 0);
    lt_signer_destroy(&s);
}

static void check_cert_gives_each_bad_certificate_its_code(void **state)
{
    struct fx *f = *state;
    lt_why why;
    assert_int_equal(check_named(f, "a", &why), LT_OK);
    assert_int_equal(check_named(f, "b", &why), LT_OK);
    assert_int_equal(check_named(f, "expired", &why), LT_ECERT_EXPIRED);
    assert_int_equal(check_named(f, "future", &why), LT_ECERT_NOT_YET_VALID);
    assert_int_equal(check_named(f, "revoked", &why), LT_ECERT_REVOKED);
    assert_int_equal(check_named(f, "otherca", &why), LT_ECERT_UNKNOWN_CA);
    assert_non_null(strstr(why.msg, "does not chain"));
    assert_int_equal(lt_trust_check_cert(f->trust, (const uint8_t *)"\x30\x03\x02\x01\x01", 5,
                                         now_ms(), NULL, &why),
                     LT_ECERT_INVALID);
    assert_int_equal(lt_trust_check_cert(f->trust, NULL, 0, now_ms(), NULL, &why),
                     LT_ECERT_INVALID);
    uint8_t big[LT_PKI_CERT_MAX + 1] = {0};
    assert_int_equal(lt_trust_check_cert(f->trust, big, sizeof big, now_ms(), NULL, &why),
                     LT_ETOOBIG);
    assert_int_equal(ERR_peek_error(), 0);
}

static void a_ca_certificate_is_refused_even_when_its_key_usage_is_only_digital_signature(
    void **state)
{
    struct fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(check_named(f, "caflag", &why), LT_ECERT_CA);
    assert_non_null(strstr(why.msg, LT_DEVPKI_AGENCY_A)); /* names whose certificate it is */
    assert_non_null(strstr(why.msg, "CA"));
    /* AUTH goes through the same check: a good signature by the CA's key is not enough */
    lt_signer *s = signer(f, "caflag");
    uint8_t nonce[32] = {9}, sig[LT_PKI_SIG_MAX];
    size_t sl = 0, dl = 0;
    assert_int_equal(lt_signer_sign(s, LT_PKI_DOMAIN_AUTH, nonce, 32, sig, &sl, NULL), LT_OK);
    const uint8_t *der = lt_signer_cert_der(s, &dl);
    assert_int_equal(lt_trust_verify_sig(f->trust, der, dl, now_ms(), LT_PKI_DOMAIN_AUTH, nonce,
                                         32, sig, sl, NULL, &why),
                     LT_ECERT_CA);
    /* and a second look (nothing cached for it) refuses it again */
    assert_int_equal(lt_trust_check_cert(f->trust, der, dl, now_ms(), NULL, &why), LT_ECERT_CA);
    assert_int_equal(ERR_peek_error(), 0);
    lt_signer_destroy(&s);
}

static void a_certificate_whose_key_usage_lacks_digital_signature_is_refused(void **state)
{
    struct fx *f = *state;
    lt_why why = {{0}};
    assert_int_equal(check_named(f, "nodigsig", &why), LT_ECERT_INVALID);
    assert_non_null(strstr(why.msg, "digitalSignature"));
    assert_non_null(strstr(why.msg, LT_DEVPKI_AGENCY_A));
}

static void the_trust_anchor_itself_is_not_an_agency_certificate(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(path(f, "ca.cert.pem"), "r");
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    lt_why why;
    lt_err e = lt_trust_check_cert(f->trust, der, (size_t)n, now_ms(), NULL, &why);
    assert_true(e == LT_ECERT_INVALID || e == LT_ECERT_UNKNOWN_CA);
    OPENSSL_free(der);
    X509_free(x);
}

static void check_cert_is_cached_and_the_cache_is_bounded(void **state)
{
    struct fx *f = *state;
    lt_trust_opts o = lt_trust_opts_default();
    o.cert_cache_max = 2;
    lt_trust *t = NULL;
    lt_why why;
    char ca[512];
    snprintf(ca, sizeof ca, "%s", path(f, "ca.cert.pem"));
    assert_int_equal(lt_trust_open(ca, path(f, "crl.pem"), &o, &t, &why), LT_OK);
    static const char *const names[] = {"a", "b", "a", "expired", "a", "b"};
    for (size_t i = 0; i < 6; i++) {
        lt_signer *s = signer(f, names[i]);
        size_t len;
        const uint8_t *der = lt_signer_cert_der(s, &len);
        lt_trust_check_cert(t, der, len, now_ms(), NULL, &why);
        lt_signer_destroy(&s);
    }
    lt_trust_stats st;
    lt_trust_get_stats(t, &st);
    /* a miss, b miss, a hit, expired miss (evicts a), a miss (evicts b), b miss */
    assert_int_equal(st.cert_hits, 1);
    assert_int_equal(st.cert_misses, 5);
    assert_int_equal(st.cert_evictions, 3);
    lt_trust_destroy(&t);
}

static void a_certificate_is_never_cached_under_another_fingerprint(void **state)
{
    struct fx *f = *state;
    lt_signer *a = signer(f, "a"), *b = signer(f, "b");
    size_t len;
    const uint8_t *der = lt_signer_cert_der(a, &len);
    lt_trust *t = NULL;
    lt_why why;
    char ca[512];
    snprintf(ca, sizeof ca, "%s", path(f, "ca.cert.pem"));
    assert_int_equal(lt_trust_open(ca, path(f, "crl.pem"), NULL, &t, &why), LT_OK);
    lt_trust_cert c;
    assert_int_equal(lt_trust_cert_hold(t, der, len, lt_signer_key_id(b), now_ms(), &c, &why),
                     LT_EKEYID);
    assert_int_equal(lt_trust_cert_hold(t, der, len, lt_signer_key_id(a), now_ms(), &c, &why),
                     LT_OK);
    assert_string_equal(c.agency, LT_DEVPKI_AGENCY_A);
    assert_true(lt_trust_cert_is_valid_at(&c, now_ms()));
    assert_false(lt_trust_cert_is_valid_at(&c, now_ms() + 2 * 365 * LT_DEVPKI_DAY_MS));
    lt_trust_cert_rele(&c);
    lt_trust_cert_rele(&c); /* twice is harmless */
    lt_trust_destroy(&t);
    lt_signer_destroy(&a);
    lt_signer_destroy(&b);
}

static void trust_open_refuses_bad_files(void **state)
{
    struct fx *f = *state;
    lt_trust *t = NULL;
    lt_why why;
    char ca[512], other[512];
    snprintf(ca, sizeof ca, "%s", path(f, "ca.cert.pem"));
    snprintf(other, sizeof other, "%s", path(f, "other-ca.cert.pem"));
    assert_int_equal(lt_trust_open(path(f, "nope.pem"), NULL, NULL, &t, &why), LT_EIO);
    /* An agency certificate is not a CA. */
    assert_int_equal(lt_trust_open(path(f, "a.cert.pem"), NULL, NULL, &t, &why), LT_ECONFIG);
    /* The CRL must be signed by a trusted CA. */
    assert_int_equal(lt_trust_open(other, path(f, "crl.pem"), NULL, &t, &why), LT_ECRL);
    assert_non_null(strstr(why.msg, "not signed by a trusted CA"));
    assert_int_equal(lt_trust_open(ca, path(f, "a.cert.pem"), NULL, &t, &why), LT_ECRL);
    assert_null(t);
    assert_int_equal(ERR_peek_error(), 0);
    /* Without a CRL file there is nothing to reload. */
    assert_int_equal(lt_trust_open(ca, NULL, NULL, &t, &why), LT_OK);
    assert_int_equal(lt_trust_reload_crl(t, &why), LT_EINVAL);
    assert_int_equal(check_named(f, "a", &why), LT_OK);
    lt_trust_destroy(&t);
}

static void certificates_of_a_ca_without_a_crl_are_refused(void **state)
{
    struct fx *f = *state;
    /* Both CAs trusted, but the CRL file only holds the first one's CRL. */
    char bundle[512];
    snprintf(bundle, sizeof bundle, "%s", path(f, "bundle.pem"));
    FILE *out = fopen(bundle, "w");
    static const char *const parts[] = {"ca.cert.pem", "other-ca.cert.pem"};
    for (int i = 0; i < 2; i++) {
        FILE *in = fopen(path(f, parts[i]), "r");
        int c;
        while ((c = fgetc(in)) != EOF)
            fputc(c, out);
        fclose(in);
    }
    fclose(out);
    lt_trust *t = NULL;
    lt_why why;
    assert_int_equal(lt_trust_open(bundle, path(f, "crl.pem"), NULL, &t, &why), LT_OK);
    lt_signer *s = signer(f, "otherca");
    size_t len;
    const uint8_t *der = lt_signer_cert_der(s, &len);
    assert_int_equal(lt_trust_check_cert(t, der, len, now_ms(), NULL, &why), LT_ECRL);
    lt_signer_destroy(&s);
    lt_trust_destroy(&t);
}

static void an_expired_crl_makes_every_certificate_unusable(void **state)
{
    struct fx *f = *state;
    lt_devpki_ca *ca = NULL;
    lt_why why;
    char kp[512], crl[512];
    snprintf(kp, sizeof kp, "%s", path(f, "ca.key.pem"));
    snprintf(crl, sizeof crl, "%s", path(f, "old-crl.pem"));
    assert_int_equal(lt_devpki_ca_load(kp, path(f, "ca.cert.pem"), &ca, &why), LT_OK);
    assert_int_equal(lt_devpki_write_crl(ca, NULL, 0, f->now - 2 * LT_DEVPKI_DAY_MS,
                                         f->now - LT_DEVPKI_DAY_MS, crl, &why),
                     LT_OK);
    lt_devpki_ca_destroy(&ca);
    lt_trust *t = NULL;
    snprintf(kp, sizeof kp, "%s", path(f, "ca.cert.pem"));
    assert_int_equal(lt_trust_open(kp, crl, NULL, &t, &why), LT_OK);
    lt_signer *s = signer(f, "a");
    size_t len;
    const uint8_t *der = lt_signer_cert_der(s, &len);
    assert_int_equal(lt_trust_check_cert(t, der, len, now_ms(), NULL, &why), LT_ECRL);
    assert_non_null(strstr(why.msg, "nextUpdate"));
    lt_signer_destroy(&s);
    lt_trust_destroy(&t);
}

static void revoking_twice_lists_the_certificate_once(void **state)
{
    struct fx *f = *state;
    lt_devpki_ca *ca = NULL;
    lt_why why;
    char kp[512], crl[512];
    snprintf(kp, sizeof kp, "%s", path(f, "ca.key.pem"));
    snprintf(crl, sizeof crl, "%s", path(f, "twice-crl.pem"));
    assert_int_equal(lt_devpki_ca_load(kp, path(f, "ca.cert.pem"), &ca, &why), LT_OK);
    snprintf(kp, sizeof kp, "%s", path(f, "b.cert.pem"));
    assert_int_equal(lt_devpki_revoke(ca, kp, crl, f->now, &why), LT_OK);
    assert_int_equal(lt_devpki_revoke(ca, kp, crl, f->now, &why), LT_OK);
    /* A certificate another CA issued cannot be revoked by this one. */
    snprintf(kp, sizeof kp, "%s", path(f, "otherca.cert.pem"));
    assert_int_equal(lt_devpki_revoke(ca, kp, crl, f->now, &why), LT_EINVAL);
    lt_devpki_ca_destroy(&ca);
    lt_trust *t = NULL;
    snprintf(kp, sizeof kp, "%s", path(f, "ca.cert.pem"));
    assert_int_equal(lt_trust_open(kp, crl, NULL, &t, &why), LT_OK);
    lt_trust_stats st;
    lt_trust_get_stats(t, &st);
    assert_int_equal(st.crl_revoked, 1);
    lt_trust_destroy(&t);
}

static void rng_failure_is_translated_and_drained(void **state)
{
    (void)state;
    uint8_t b[16];
    lt_why why;
    fail_rand = 1;
    assert_int_equal(lt_pki_random(b, sizeof b, &why), LT_ECRYPTO);
    fail_rand = 0;
    assert_non_null(strstr(why.msg, "random"));
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(lt_pki_random(b, sizeof b, &why), LT_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_matches_the_standard_test_vector),
        cmocka_unit_test(algorithm_names_round_trip),
        cmocka_unit_test(signer_knows_its_agency_and_key_id),
        cmocka_unit_test(signer_refuses_a_key_that_does_not_match_its_certificate),
        cmocka_unit_test(signer_refuses_a_certificate_whose_cn_is_not_an_agency_id),
        cmocka_unit_test(signatures_are_bound_to_their_domain),
        cmocka_unit_test(check_cert_gives_each_bad_certificate_its_code),
        cmocka_unit_test(
            a_ca_certificate_is_refused_even_when_its_key_usage_is_only_digital_signature),
        cmocka_unit_test(a_certificate_whose_key_usage_lacks_digital_signature_is_refused),
        cmocka_unit_test(the_trust_anchor_itself_is_not_an_agency_certificate),
        cmocka_unit_test(check_cert_is_cached_and_the_cache_is_bounded),
        cmocka_unit_test(a_certificate_is_never_cached_under_another_fingerprint),
        cmocka_unit_test(trust_open_refuses_bad_files),
        cmocka_unit_test(certificates_of_a_ca_without_a_crl_are_refused),
        cmocka_unit_test(an_expired_crl_makes_every_certificate_unusable),
        cmocka_unit_test(revoking_twice_lists_the_certificate_once),
        cmocka_unit_test(rng_failure_is_translated_and_drained),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
