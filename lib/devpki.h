/*
 * devpki.h - a development PKI made with OpenSSL's APIs: a trust root CA, agency keys and
 * certificates, CRLs, and the odd certificates tests need (expired, revoked, from an unknown
 * CA). Used by `lienthong dev-init`, unit tests, integration tests and benchmarks.
 *
 * Never for production: a real deployment issues certificates from its own CA (see
 * certs/README.md). Keys are written PEM (PKCS#8, unencrypted) with mode 0600.
 *
 * Certificates issued here: X.509 v3, subject CN = agency id, O = the Vietnamese name as
 * UTF8String, C = VN; basicConstraints CA:FALSE (critical), keyUsage digitalSignature
 * (critical), extendedKeyUsage clientAuth, subject and authority key identifiers, a random
 * 16-byte serial. The CA: CA:TRUE (critical), keyCertSign + cRLSign.
 * A CA belongs to one thread at a time.
 */
#ifndef LT_LIB_DEVPKI_H
#define LT_LIB_DEVPKI_H

#include "err.h"
#include "pki.h"

#include <stddef.h>
#include <stdint.h>

#define LT_DEVPKI_DAY_MS (86400LL * 1000)

typedef struct lt_devpki_ca lt_devpki_ca;

/* Create a self-signed CA: key of alg, subject CN = cn, O = org (UTF-8), C = VN, valid
 * [not_before_ms, not_after_ms]. The caller owns *out (lt_devpki_ca_destroy).
 * LT_EINVAL: bad arguments; LT_ECRYPTO: OpenSSL failed. */
lt_err lt_devpki_ca_create(lt_sig_alg alg, const char *cn, const char *org,
                           int64_t not_before_ms, int64_t not_after_ms, lt_devpki_ca **out,
                           lt_why *why);

/* Load a CA from its PEM key and certificate. LT_EIO unreadable; LT_ECRYPTO not a matching
 * key and certificate. */
lt_err lt_devpki_ca_load(const char *key_path, const char *cert_path, lt_devpki_ca **out,
                         lt_why *why);

/* Write the CA's key (0600) and certificate (0644), replacing existing files. LT_EIO. */
lt_err lt_devpki_ca_save(const lt_devpki_ca *ca, const char *key_path, const char *cert_path,
                         lt_why *why);

/* Free. Accepts NULL; clears *cap. */
void lt_devpki_ca_destroy(lt_devpki_ca **cap);

/* What kind of certificate lt_devpki_issue makes: an agency's as described at the top, or,
 * for tests, one that every verifier must refuse. */
typedef enum lt_devpki_profile {
    LT_DEVPKI_PROFILE_AGENCY = 0, /* CA:FALSE, keyUsage digitalSignature */
    LT_DEVPKI_PROFILE_CA_FLAG,    /* CA:TRUE with keyUsage digitalSignature only (no keyCertSign) */
    LT_DEVPKI_PROFILE_NO_DIGSIG,  /* CA:FALSE, keyUsage keyEncipherment only */
} lt_devpki_profile;

/* An agency certificate to issue. */
typedef struct lt_devpki_cert_spec {
    const char *agency_id; /* CN; taken as given (tests issue malformed ones on purpose) */
    const char *org;       /* O, UTF-8; NULL: none */
    lt_sig_alg alg;        /* the agency key's algorithm */
    int64_t not_before_ms, not_after_ms;
    lt_devpki_profile profile; /* 0: an agency certificate */
} lt_devpki_cert_spec;

/* Generate a key and issue its certificate from ca; write the key to key_path (0600) and
 * the certificate to cert_path. LT_EINVAL, LT_ECRYPTO, LT_EIO. */
lt_err lt_devpki_issue(lt_devpki_ca *ca, const lt_devpki_cert_spec *spec, const char *key_path,
                       const char *cert_path, lt_why *why);

/* Write ca's CRL to crl_path: the serials of revoked_cert_paths[0..n) (PEM certificates) as
 * revoked at this_update_ms, thisUpdate = this_update_ms, nextUpdate = next_update_ms.
 * n may be 0 (an empty CRL). Replaces the file atomically (write + rename).
 * LT_EIO, LT_ECRYPTO, LT_EINVAL (a certificate not issued by ca). */
lt_err lt_devpki_write_crl(lt_devpki_ca *ca, const char *const *revoked_cert_paths, size_t n,
                           int64_t this_update_ms, int64_t next_update_ms, const char *crl_path,
                           lt_why *why);

/* Add cert_path's serial to the CRL at crl_path (read if it exists, else started empty),
 * re-sign it with ca and replace it atomically (thisUpdate = now_ms, nextUpdate = now_ms +
 * 30 days). Then SIGHUP the broker, or lt_trust_reload_crl. Errors as lt_devpki_write_crl. */
lt_err lt_devpki_revoke(lt_devpki_ca *ca, const char *cert_path, const char *crl_path,
                        int64_t now_ms, lt_why *why);

/* A complete test PKI in the existing directory dir, every key of alg, times around now_ms:
 *   ca.key.pem ca.cert.pem     the trust root (valid now - 1 day .. now + 10 years)
 *   crl.pem                    its CRL listing revoked.cert.pem (nextUpdate now + 30 days)
 *   a.key.pem a.cert.pem       LT_DEVPKI_AGENCY_A, valid now - 1 day .. now + 1 year
 *   b.key.pem b.cert.pem       LT_DEVPKI_AGENCY_B, same validity
 *   expired.{key,cert}.pem     agency A, valid now - 1 year .. now - 1 day
 *   future.{key,cert}.pem      agency A, valid now + 1 day .. now + 1 year
 *   revoked.{key,cert}.pem     agency A, valid, listed in crl.pem
 *   otherca.{key,cert}.pem     agency A, issued by other-ca.{key,cert}.pem, a CA with the
 *                              same name as the trust root that nobody trusts
 *   caflag.{key,cert}.pem      agency A, valid, but CA:TRUE (LT_DEVPKI_PROFILE_CA_FLAG)
 *   nodigsig.{key,cert}.pem    agency A, valid, keyUsage without digitalSignature
 * For unit and integration tests, fuzz seeds and benchmarks. Errors as lt_devpki_issue. */
#define LT_DEVPKI_AGENCY_A "VN:GOV:000.00.00.H29.760:hotich"
#define LT_DEVPKI_AGENCY_B "VN:GOV:000.00.00.G01:csdldancu"
lt_err lt_devpki_fixture(const char *dir, lt_sig_alg alg, int64_t now_ms, lt_why *why);

/* Write len bytes to path with mode via a temporary file + rename. LT_EIO. */
lt_err lt_devpki_write_file(const char *path, const void *data, size_t len, unsigned mode,
                            lt_why *why);

#endif
