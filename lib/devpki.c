/*
 * devpki.c - development CA, agency certificates and CRLs, with OpenSSL 3 APIs (no shelling
 * out to the openssl command). Contract in devpki.h.
 */
#include "devpki.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lt_devpki_ca {
    EVP_PKEY *key;
    X509 *cert;
};

lt_err lt_devpki_write_file(const char *path, const void *data, size_t len, unsigned mode,
                            lt_why *why)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return lt_fail(why, LT_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return lt_fail(why, LT_EIO, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    lt_err e = LT_OK;
    if (fchmod(fd, (mode_t)mode) != 0)
        e = lt_fail(why, LT_EIO, "%s: chmod: %s", tmp, strerror(errno));
    while (e == LT_OK && left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = lt_fail(why, LT_EIO, "%s: write: %s", tmp, strerror(errno));
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (e == LT_OK && fsync(fd) != 0)
        e = lt_fail(why, LT_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && e == LT_OK)
        e = lt_fail(why, LT_EIO, "%s: close: %s", tmp, strerror(errno));
    if (e == LT_OK && rename(tmp, path) != 0)
        e = lt_fail(why, LT_EIO, "%s: rename: %s", path, strerror(errno));
    if (e != LT_OK)
        unlink(tmp);
    return e;
}

/* Write what a PEM writer puts into a memory BIO to path. */
static lt_err write_bio(BIO *b, const char *path, unsigned mode, lt_why *why)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0)
        return lt_fail_ssl(why, LT_ECRYPTO, "PEM encoding failed");
    return lt_devpki_write_file(path, data, (size_t)n, mode, why);
}

static lt_err write_key(EVP_PKEY *k, const char *path, lt_why *why)
{
    BIO *b = BIO_new(BIO_s_mem());
    lt_err e;
    if (b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1)
        e = lt_fail_ssl(why, LT_ECRYPTO, "encoding a private key");
    else
        e = write_bio(b, path, 0600, why);
    BIO_free(b);
    return e;
}

static lt_err write_cert(X509 *x, const char *path, lt_why *why)
{
    BIO *b = BIO_new(BIO_s_mem());
    lt_err e;
    if (b == NULL || PEM_write_bio_X509(b, x) != 1)
        e = lt_fail_ssl(why, LT_ECRYPTO, "encoding a certificate");
    else
        e = write_bio(b, path, 0644, why);
    BIO_free(b);
    return e;
}

static lt_err keygen(lt_sig_alg alg, EVP_PKEY **out, lt_why *why)
{
    EVP_PKEY *k = NULL;
    switch (alg) {
    case LT_SIG_ECDSA_P256:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case LT_SIG_ED25519:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    case LT_SIG_RSA2048:
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        break;
    default:
        return lt_fail(why, LT_EINVAL, "unknown key algorithm %d", (int)alg);
    }
    if (k == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "key generation failed");
    *out = k;
    return LT_OK;
}

/* The digest X509_sign wants for key k: none for Ed25519. */
static const EVP_MD *sign_md(EVP_PKEY *k)
{
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

static lt_err set_time(ASN1_TIME *t, int64_t ms, lt_why *why)
{
    if (ASN1_TIME_set(t, (time_t)(ms / 1000)) == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "setting a certificate time");
    return LT_OK;
}

static lt_err random_serial(ASN1_INTEGER *serial, lt_why *why)
{
    unsigned char b[16];
    lt_err e = lt_pki_random(b, sizeof b, why);
    if (e != LT_OK)
        return e;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x01; /* and never shorter than 16 bytes' worth of leading zeros */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, serial) == NULL) {
        BN_free(bn);
        return lt_fail_ssl(why, LT_ECRYPTO, "setting a serial number");
    }
    BN_free(bn);
    return LT_OK;
}

static lt_err add_name(X509_NAME *n, const char *field, const char *value, lt_why *why)
{
    if (X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value, -1, -1,
                                   0) != 1)
        return lt_fail_ssl(why, LT_ECRYPTO, "setting a name field");
    return LT_OK;
}

static lt_err add_ext(X509 *x, X509 *issuer, int nid, const char *value, lt_why *why)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
        X509_EXTENSION_free(ext);
        return lt_fail_ssl(why, LT_ECRYPTO, "adding a certificate extension");
    }
    X509_EXTENSION_free(ext);
    return LT_OK;
}

/* The extensions that make a certificate what it is (eku NULL: none). */
struct profile {
    const char *bc, *ku, *eku;
};

static const struct profile CA_PROFILE = {"critical,CA:TRUE", "critical,keyCertSign,cRLSign",
                                          NULL};
static const struct profile AGENCY_PROFILES[] = {
    [LT_DEVPKI_PROFILE_AGENCY] = {"critical,CA:FALSE", "critical,digitalSignature", "clientAuth"},
    [LT_DEVPKI_PROFILE_CA_FLAG] = {"critical,CA:TRUE", "critical,digitalSignature", "clientAuth"},
    [LT_DEVPKI_PROFILE_NO_DIGSIG] = {"critical,CA:FALSE", "critical,keyEncipherment",
                                     "clientAuth"},
};

/* Build and sign a certificate of profile pr for pub: issued by issuer (NULL: self-signed)
 * with issuer_key. */
static lt_err make_cert(EVP_PKEY *pub, const char *cn, const char *org, const struct profile *pr,
                        int64_t nb, int64_t na, X509 *issuer, EVP_PKEY *issuer_key, X509 **out,
                        lt_why *why)
{
    X509 *x = X509_new();
    if (x == NULL)
        return lt_fail_ssl(why, LT_ENOMEM, "X509_new");
    lt_err e = LT_OK;
    X509_NAME *subj = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, pub) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "building a certificate");
        goto out;
    }
    if ((e = random_serial(X509_get_serialNumber(x), why)) != LT_OK ||
        (e = set_time(X509_getm_notBefore(x), nb, why)) != LT_OK ||
        (e = set_time(X509_getm_notAfter(x), na, why)) != LT_OK ||
        (e = add_name(subj, "C", "VN", why)) != LT_OK ||
        (org != NULL && (e = add_name(subj, "O", org, why)) != LT_OK) ||
        (e = add_name(subj, "CN", cn, why)) != LT_OK)
        goto out;
    if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "setting the issuer");
        goto out;
    }
    X509 *iss = issuer ? issuer : x;
    if ((e = add_ext(x, iss, NID_basic_constraints, pr->bc, why)) != LT_OK ||
        (e = add_ext(x, iss, NID_key_usage, pr->ku, why)) != LT_OK ||
        (pr->eku != NULL && (e = add_ext(x, iss, NID_ext_key_usage, pr->eku, why)) != LT_OK) ||
        (e = add_ext(x, iss, NID_subject_key_identifier, "hash", why)) != LT_OK ||
        (e = add_ext(x, iss, NID_authority_key_identifier, "keyid:always", why)) != LT_OK)
        goto out;
    if (X509_sign(x, issuer_key, sign_md(issuer_key)) <= 0) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "signing a certificate");
        goto out;
    }
    *out = x;
    return LT_OK;
out:
    X509_free(x);
    return e;
}

lt_err lt_devpki_ca_create(lt_sig_alg alg, const char *cn, const char *org,
                           int64_t not_before_ms, int64_t not_after_ms, lt_devpki_ca **out,
                           lt_why *why)
{
    if (cn == NULL || not_after_ms <= not_before_ms)
        return lt_fail(why, LT_EINVAL, "CA needs a name and a validity period");
    lt_devpki_ca *ca = calloc(1, sizeof *ca);
    if (ca == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = keygen(alg, &ca->key, why);
    if (e == LT_OK)
        e = make_cert(ca->key, cn, org, &CA_PROFILE, not_before_ms, not_after_ms, NULL, ca->key,
                      &ca->cert, why);
    if (e != LT_OK) {
        lt_devpki_ca_destroy(&ca);
        return e;
    }
    *out = ca;
    return LT_OK;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static X509 *read_cert(const char *path)
{
    BIO *b = BIO_new_file(path, "rb");
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return x;
}

lt_err lt_devpki_ca_load(const char *key_path, const char *cert_path, lt_devpki_ca **out,
                         lt_why *why)
{
    lt_devpki_ca *ca = calloc(1, sizeof *ca);
    if (ca == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    BIO *b = BIO_new_file(key_path, "rb");
    ca->key = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    ca->cert = read_cert(cert_path);
    lt_err e = LT_OK;
    if (ca->key == NULL || ca->cert == NULL)
        e = lt_fail_ssl(why, LT_EIO, ca->key ? cert_path : key_path);
    else if (X509_check_private_key(ca->cert, ca->key) != 1)
        e = lt_fail_ssl(why, LT_ECRYPTO, "CA key does not match its certificate");
    if (e != LT_OK) {
        lt_devpki_ca_destroy(&ca);
        return e;
    }
    *out = ca;
    return LT_OK;
}

lt_err lt_devpki_ca_save(const lt_devpki_ca *ca, const char *key_path, const char *cert_path,
                         lt_why *why)
{
    lt_err e = write_key(ca->key, key_path, why);
    return e != LT_OK ? e : write_cert(ca->cert, cert_path, why);
}

void lt_devpki_ca_destroy(lt_devpki_ca **cap)
{
    if (cap == NULL || *cap == NULL)
        return;
    EVP_PKEY_free((*cap)->key);
    X509_free((*cap)->cert);
    free(*cap);
    *cap = NULL;
}

lt_err lt_devpki_issue(lt_devpki_ca *ca, const lt_devpki_cert_spec *spec, const char *key_path,
                       const char *cert_path, lt_why *why)
{
    if (spec->agency_id == NULL || spec->not_after_ms <= spec->not_before_ms)
        return lt_fail(why, LT_EINVAL, "certificate needs an agency id and a validity period");
    if ((size_t)spec->profile >= sizeof AGENCY_PROFILES / sizeof AGENCY_PROFILES[0])
        return lt_fail(why, LT_EINVAL, "unknown certificate profile %d", (int)spec->profile);
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    lt_err e = keygen(spec->alg, &k, why);
    if (e == LT_OK)
        e = make_cert(k, spec->agency_id, spec->org, &AGENCY_PROFILES[spec->profile],
                      spec->not_before_ms, spec->not_after_ms, ca->cert, ca->key, &x, why);
    if (e == LT_OK)
        e = write_key(k, key_path, why);
    if (e == LT_OK)
        e = write_cert(x, cert_path, why);
    X509_free(x);
    EVP_PKEY_free(k);
    return e;
}

/* Sign a CRL holding revoked (borrowed entries are duplicated) and write it. */
static lt_err write_crl(lt_devpki_ca *ca, STACK_OF(X509_REVOKED) *revoked, int64_t this_ms,
                        int64_t next_ms, const char *crl_path, lt_why *why)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t1 = ASN1_TIME_new(), *t2 = ASN1_TIME_new();
    BIO *b = BIO_new(BIO_s_mem());
    lt_err e = LT_OK;
    if (crl == NULL || t1 == NULL || t2 == NULL || b == NULL) {
        e = lt_fail_ssl(why, LT_ENOMEM, "out of memory");
        goto out;
    }
    if ((e = set_time(t1, this_ms, why)) != LT_OK || (e = set_time(t2, next_ms, why)) != LT_OK)
        goto out;
    if (X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1 ||
        X509_CRL_set1_lastUpdate(crl, t1) != 1 || X509_CRL_set1_nextUpdate(crl, t2) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "building a CRL");
        goto out;
    }
    for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
        X509_REVOKED *r = X509_REVOKED_dup(sk_X509_REVOKED_value(revoked, i));
        if (r == NULL || X509_CRL_add0_revoked(crl, r) != 1) {
            X509_REVOKED_free(r);
            e = lt_fail_ssl(why, LT_ECRYPTO, "adding a CRL entry");
            goto out;
        }
    }
    X509_CRL_sort(crl);
    if (X509_CRL_sign(crl, ca->key, sign_md(ca->key)) <= 0 || PEM_write_bio_X509_CRL(b, crl) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "signing a CRL");
        goto out;
    }
    e = write_bio(b, crl_path, 0644, why);
out:
    BIO_free(b);
    ASN1_TIME_free(t1);
    ASN1_TIME_free(t2);
    X509_CRL_free(crl);
    return e;
}

/* A revocation entry for certificate x at time ms; x must be issued by ca. */
static lt_err revoked_entry(lt_devpki_ca *ca, X509 *x, int64_t ms, X509_REVOKED **out,
                            lt_why *why)
{
    if (X509_check_issued(ca->cert, x) != X509_V_OK)
        return lt_fail(why, LT_EINVAL, "certificate was not issued by this CA");
    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_TIME *t = ASN1_TIME_new();
    lt_err e = LT_OK;
    if (r == NULL || t == NULL || ASN1_TIME_set(t, (time_t)(ms / 1000)) == NULL ||
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(x)) != 1 ||
        X509_REVOKED_set_revocationDate(r, t) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "building a CRL entry");
        X509_REVOKED_free(r);
    } else {
        *out = r;
    }
    ASN1_TIME_free(t);
    return e;
}

lt_err lt_devpki_write_crl(lt_devpki_ca *ca, const char *const *revoked_cert_paths, size_t n,
                           int64_t this_update_ms, int64_t next_update_ms, const char *crl_path,
                           lt_why *why)
{
    STACK_OF(X509_REVOKED) *rs = sk_X509_REVOKED_new_null();
    if (rs == NULL)
        return lt_fail_ssl(why, LT_ENOMEM, "out of memory");
    lt_err e = LT_OK;
    for (size_t i = 0; i < n && e == LT_OK; i++) {
        X509 *x = read_cert(revoked_cert_paths[i]);
        X509_REVOKED *r = NULL;
        if (x == NULL)
            e = lt_fail_ssl(why, LT_EIO, revoked_cert_paths[i]);
        else if ((e = revoked_entry(ca, x, this_update_ms, &r, why)) == LT_OK &&
                 sk_X509_REVOKED_push(rs, r) <= 0) {
            X509_REVOKED_free(r);
            e = lt_fail(why, LT_ENOMEM, "out of memory");
        }
        X509_free(x);
    }
    if (e == LT_OK)
        e = write_crl(ca, rs, this_update_ms, next_update_ms, crl_path, why);
    sk_X509_REVOKED_pop_free(rs, X509_REVOKED_free);
    return e;
}

lt_err lt_devpki_revoke(lt_devpki_ca *ca, const char *cert_path, const char *crl_path,
                        int64_t now_ms, lt_why *why)
{
    X509 *x = read_cert(cert_path);
    if (x == NULL)
        return lt_fail_ssl(why, LT_EIO, cert_path);
    X509_CRL *old = NULL;
    BIO *b = BIO_new_file(crl_path, "rb");
    if (b != NULL)
        old = PEM_read_bio_X509_CRL(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    ERR_clear_error(); /* no previous CRL is fine */
    STACK_OF(X509_REVOKED) *prev = old ? X509_CRL_get_REVOKED(old) : NULL;
    STACK_OF(X509_REVOKED) *rs = sk_X509_REVOKED_new_null();
    lt_err e = rs ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
    bool already = false;
    for (int i = 0; e == LT_OK && prev != NULL && i < sk_X509_REVOKED_num(prev); i++) {
        const X509_REVOKED *p = sk_X509_REVOKED_value(prev, i);
        if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(p), X509_get_serialNumber(x)) == 0)
            already = true;
        if (sk_X509_REVOKED_push(rs, (X509_REVOKED *)p) <= 0)
            e = lt_fail(why, LT_ENOMEM, "out of memory");
    }
    X509_REVOKED *r = NULL;
    if (e == LT_OK && !already && (e = revoked_entry(ca, x, now_ms, &r, why)) == LT_OK &&
        sk_X509_REVOKED_push(rs, r) <= 0)
        e = lt_fail(why, LT_ENOMEM, "out of memory");
    if (e == LT_OK)
        e = write_crl(ca, rs, now_ms, now_ms + 30 * LT_DEVPKI_DAY_MS, crl_path, why);
    sk_X509_REVOKED_free(rs); /* entries: borrowed from old, or r */
    X509_REVOKED_free(r);
    X509_CRL_free(old);
    X509_free(x);
    return e;
}

lt_err lt_devpki_fixture(const char *dir, lt_sig_alg alg, int64_t now_ms, lt_why *why)
{
    static const char *const names[] = {"ca",      "other-ca", "a",      "b",       "expired",
                                        "future",  "revoked",  "otherca", "caflag", "nodigsig"};
    enum { N = sizeof names / sizeof names[0] };
    char key[N][4096], cert[N][4096], crl[4096];
    for (size_t i = 0; i < N; i++) {
        int n1 = snprintf(key[i], sizeof key[i], "%s/%s.key.pem", dir, names[i]);
        int n2 = snprintf(cert[i], sizeof cert[i], "%s/%s.cert.pem", dir, names[i]);
        if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof key[i] || (size_t)n2 >= sizeof cert[i])
            return lt_fail(why, LT_EINVAL, "fixture directory path too long");
    }
    if ((size_t)snprintf(crl, sizeof crl, "%s/crl.pem", dir) >= sizeof crl)
        return lt_fail(why, LT_EINVAL, "fixture directory path too long");

    const int64_t day = LT_DEVPKI_DAY_MS, year = 365 * LT_DEVPKI_DAY_MS;
    const char *cn = "lienthong test root CA", *org = "lienthong (kiểm thử)";
    lt_devpki_ca *ca = NULL, *other = NULL;
    lt_err e = lt_devpki_ca_create(alg, cn, org, now_ms - day, now_ms + 10 * year, &ca, why);
    if (e == LT_OK)
        e = lt_devpki_ca_create(alg, cn, org, now_ms - day, now_ms + 10 * year, &other, why);
    if (e == LT_OK)
        e = lt_devpki_ca_save(ca, key[0], cert[0], why);
    if (e == LT_OK)
        e = lt_devpki_ca_save(other, key[1], cert[1], why);

    const char *q1 = "Ủy ban nhân dân Quận 1";
    struct {
        const char *id, *org;
        int64_t nb, na;
        lt_devpki_ca *by;
        lt_devpki_profile profile;
    } certs[N - 2] = {
        {LT_DEVPKI_AGENCY_A, q1, now_ms - day, now_ms + year, ca, 0},
        {LT_DEVPKI_AGENCY_B, "Cơ sở dữ liệu quốc gia về dân cư", now_ms - day, now_ms + year, ca,
         0},
        {LT_DEVPKI_AGENCY_A, q1, now_ms - year, now_ms - day, ca, 0},
        {LT_DEVPKI_AGENCY_A, q1, now_ms + day, now_ms + year, ca, 0},
        {LT_DEVPKI_AGENCY_A, q1, now_ms - day, now_ms + year, ca, 0},
        {LT_DEVPKI_AGENCY_A, q1, now_ms - day, now_ms + year, other, 0},
        {LT_DEVPKI_AGENCY_A, q1, now_ms - day, now_ms + year, ca, LT_DEVPKI_PROFILE_CA_FLAG},
        {LT_DEVPKI_AGENCY_A, q1, now_ms - day, now_ms + year, ca, LT_DEVPKI_PROFILE_NO_DIGSIG},
    };
    for (size_t i = 0; e == LT_OK && i < N - 2; i++) {
        lt_devpki_cert_spec spec = {.agency_id = certs[i].id,
                                    .org = certs[i].org,
                                    .alg = alg,
                                    .not_before_ms = certs[i].nb,
                                    .not_after_ms = certs[i].na,
                                    .profile = certs[i].profile};
        e = lt_devpki_issue(certs[i].by, &spec, key[i + 2], cert[i + 2], why);
    }
    const char *revoked = cert[6];
    if (e == LT_OK)
        e = lt_devpki_write_crl(ca, &revoked, 1, now_ms - 60000, now_ms + 30 * day, crl, why);
    lt_devpki_ca_destroy(&ca);
    lt_devpki_ca_destroy(&other);
    return e;
}
