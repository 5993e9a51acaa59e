/*
 * pki.h - agency keys and certificates: who signs (lt_signer) and whom a verifier trusts
 * (lt_trust). OpenSSL 3 EVP underneath; no OpenSSL type appears in this header.
 *
 * Every signature in lienthong covers  domain || 0x00 || data,  with domain one of
 *     LT_PKI_DOMAIN_ENVELOPE  "lienthong/v1"        data = serialized Header, exactly as sent
 *     LT_PKI_DOMAIN_BATCH     "lienthong/v1 batch"  data = 32-byte Merkle root
 *     LT_PKI_DOMAIN_AUTH      "lienthong/v1 auth"   data = the broker's challenge nonce
 * so a signature made for one purpose can never be replayed as another.
 *
 * Algorithms: ECDSA P-256 with SHA-256 (default; DER-encoded signature), Ed25519 (pure, the
 * message signed as is), RSA-2048 (or larger) with SHA-256 and PKCS#1 v1.5 padding. PKCS#1
 * v1.5 rather than PSS because the USB tokens and HSMs Vietnamese officials sign with
 * (CKM_SHA256_RSA_PKCS) all offer it, it is deterministic, and OpenSSL verifies it strictly;
 * the padding is fixed by the protocol, never chosen by the signer.
 *
 * An agency certificate is an X.509 certificate issued by a trust root (or by a CA listed
 * next to it in the trust file), whose subject CN is the agency id in normal form
 * (agency.h) and whose O is the agency's Vietnamese name (UTF8String). It must not be a CA
 * (basicConstraints CA:TRUE is refused even when keyUsage lacks keyCertSign: LT_ECERT_CA),
 * and if it has a keyUsage it must include digitalSignature. Every verifier (the broker's
 * envelopes and AUTH, sub, sink, verify) goes through the same check, lt_trust_cert_hold.
 *
 * Threads: an lt_signer may be used by one thread at a time (the caller serializes). An
 * lt_trust is shared by any number of verifying threads; lt_trust_reload_crl may run in
 * another thread (e.g. on SIGHUP) at the same time. Each thread gets its own EVP_MD_CTX
 * (thread-local); algorithms are fetched once per process.
 */
#ifndef LT_LIB_PKI_H
#define LT_LIB_PKI_H

#include "agency.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_PKI_DOMAIN_ENVELOPE "lienthong/v1"
#define LT_PKI_DOMAIN_BATCH "lienthong/v1 batch"
#define LT_PKI_DOMAIN_AUTH "lienthong/v1 auth"

#define LT_PKI_SIG_MAX 1024  /* largest signature accepted (RSA-8192); sig buffers this big */
#define LT_PKI_CERT_MAX 16384 /* largest certificate (DER) accepted */
#define LT_PKI_KEY_ID_LEN 32  /* SHA-256 of the certificate's DER */

typedef enum lt_sig_alg {
    LT_SIG_ECDSA_P256 = 1,
    LT_SIG_ED25519 = 2,
    LT_SIG_RSA2048 = 3, /* any RSA key of 2048 bits or more */
} lt_sig_alg;

/* "ecdsa-p256", "ed25519", "rsa2048" ("?" otherwise). */
const char *lt_sig_alg_name(lt_sig_alg alg);
/* Inverse of lt_sig_alg_name; LT_EINVAL with the accepted names for anything else. */
lt_err lt_sig_alg_parse(const char *name, lt_sig_alg *out, lt_why *why);

/* SHA-256 of data[0..len) into out (32 bytes). LT_ECRYPTO only if OpenSSL fails. Any thread. */
lt_err lt_pki_sha256(const uint8_t *data, size_t len, uint8_t out[32], lt_why *why);

/* SHA-256 of parts[0] || parts[1] || ... (n parts) into out, without concatenating. */
lt_err lt_pki_sha256v(const uint8_t *const parts[], const size_t lens[], size_t n,
                      uint8_t out[32], lt_why *why);

/* Cryptographically random bytes. LT_ECRYPTO if the RNG fails. Any thread. */
lt_err lt_pki_random(uint8_t *out, size_t len, lt_why *why);

/* ---------------------------------------------------------------------------------------
 * Signer: one agency's private key and certificate.
 */
typedef struct lt_signer lt_signer;

/* Load a PEM private key and PEM certificate from files. Checks that the key matches the
 * certificate, that the algorithm is one of lt_sig_alg, and that the certificate's CN is
 * a normalized agency id. On LT_OK the caller owns *out (lt_signer_destroy).
 * LT_EIO: a file unreadable; LT_ECERT_INVALID: certificate unusable, CN not an agency id,
 * key does not match; LT_EINVAL: unsupported key type. Nothing else is checked (validity,
 * chain): that is the verifier's job. */
lt_err lt_signer_open(const char *key_path, const char *cert_path, lt_signer **out,
                      lt_why *why);

/* As lt_signer_open, from PEM text in memory. */
lt_err lt_signer_open_pem(const char *key_pem, size_t key_len, const char *cert_pem,
                          size_t cert_len, lt_signer **out, lt_why *why);

/* Free a signer (the key is cleansed by OpenSSL). Accepts NULL; clears *sp. */
void lt_signer_destroy(lt_signer **sp);

/* The agency id (certificate CN, normal form), borrowed from s. */
const char *lt_signer_agency(const lt_signer *s);
lt_sig_alg lt_signer_alg(const lt_signer *s);
/* The certificate's DER bytes (borrowed; *len set) and its 32-byte fingerprint. */
const uint8_t *lt_signer_cert_der(const lt_signer *s, size_t *len);
const uint8_t *lt_signer_key_id(const lt_signer *s);

/* Sign domain || 0x00 || data[0..len) into sig (room for LT_PKI_SIG_MAX bytes); *sig_len set
 * on LT_OK. LT_ECRYPTO when OpenSSL fails (reason from its error queue, which is drained). */
lt_err lt_signer_sign(lt_signer *s, const char *domain, const uint8_t *data, size_t len,
                      uint8_t *sig, size_t *sig_len, lt_why *why);

/* ---------------------------------------------------------------------------------------
 * Trust: the root CA(s), the CRL, and the caches that make verifying cheap.
 *
 * Certificate cache: fingerprint -> (public key, agency id, validity window, issuer, serial,
 * revoked?). The chain is checked once per certificate; validity (now and at a given time)
 * and revocation are checked on every use from the cached data. A CRL reload recomputes
 * every cached entry's revocation. Only certificates that chain are cached.
 * Root cache: (batch root, signer key id, signature) that verified -> ok, so a batch costs
 * one signature check. Both are bounded; the oldest entries are evicted first.
 */
typedef struct lt_trust lt_trust;

typedef struct lt_trust_opts {
    int64_t clock_skew_ms;  /* header created time may differ from now by this (300000) */
    size_t cert_cache_max;  /* certificates cached (4096) */
    size_t root_cache_max;  /* verified batch roots cached (65536) */
} lt_trust_opts;

/* The defaults above. */
lt_trust_opts lt_trust_opts_default(void);

/* Load the trust root(s) from ca_path (PEM, one or more CA certificates; each is a trust
 * anchor) and the revocation list(s) from crl_path (PEM, one or more CRLs, each signed by one
 * of those CAs). crl_path NULL: no revocation checking (tests, offline tools only).
 * opts NULL: defaults. On LT_OK the caller owns *out (lt_trust_destroy).
 * LT_EIO: a file unreadable; LT_ECONFIG: no CA certificate in ca_path, or one is not a CA;
 * LT_ECRL: a CRL unparsable or not signed by any of the CAs. */
lt_err lt_trust_open(const char *ca_path, const char *crl_path, const lt_trust_opts *opts,
                     lt_trust **out, lt_why *why);

/* As lt_trust_open, from PEM text in memory (crl_pem NULL: no revocation checking); a later
 * lt_trust_reload_crl reads nothing and returns LT_EINVAL. */
lt_err lt_trust_open_pem(const char *ca_pem, size_t ca_len, const char *crl_pem,
                         size_t crl_len, const lt_trust_opts *opts, lt_trust **out,
                         lt_why *why);

/* Free a trust (no thread may still use it). Accepts NULL; clears *tp. */
void lt_trust_destroy(lt_trust **tp);

/* Re-read the CRL file given to lt_trust_open and swap it in atomically; cached certificates
 * are re-checked against it. Safe while other threads verify. On error the previous CRL
 * stays in force: LT_EIO unreadable, LT_ECRL unparsable or badly signed, LT_EINVAL when the
 * trust was opened without a CRL file. */
lt_err lt_trust_reload_crl(lt_trust *trust, lt_why *why);

int64_t lt_trust_clock_skew_ms(const lt_trust *trust);

/* Check a certificate (DER) for use at time now_ms: parses, chains to a trust anchor, is an
 * agency certificate, valid at now_ms, not revoked, issuer's CRL not past its nextUpdate.
 * On LT_OK agency_out (may be NULL) receives the agency id (normal form).
 * LT_ECERT_CA: a CA's certificate (basicConstraints CA:TRUE, or keyCertSign), whatever its
 * keyUsage; LT_ECERT_INVALID (also: a keyUsage without digitalSignature), LT_ECERT_UNKNOWN_CA,
 * LT_ECERT_EXPIRED, LT_ECERT_NOT_YET_VALID, LT_ECERT_REVOKED, LT_ECRL (no usable CRL from the issuer), LT_ETOOBIG (over
 * LT_PKI_CERT_MAX), LT_ENOMEM. Thread-safe. This is what the broker's AUTH calls. */
lt_err lt_trust_check_cert(lt_trust *trust, const uint8_t *der, size_t len, int64_t now_ms,
                           char agency_out[LT_AGENCY_ID_MAX], lt_why *why);

/* lt_trust_check_cert, then verify sig over domain || 0x00 || data with the certificate's
 * key. The broker's AUTH: lt_trust_verify_sig(t, der, n, now, LT_PKI_DOMAIN_AUTH, nonce, 32,
 * sig, sig_len, agency, &why). LT_ESIG when the signature does not verify, else as
 * lt_trust_check_cert. Thread-safe. */
lt_err lt_trust_verify_sig(lt_trust *trust, const uint8_t *der, size_t der_len, int64_t now_ms,
                           const char *domain, const uint8_t *data, size_t len,
                           const uint8_t *sig, size_t sig_len,
                           char agency_out[LT_AGENCY_ID_MAX], lt_why *why);

/* A held reference to a checked certificate (the envelope verifier's building block).
 * Embedded by the caller; fields are read-only; release with lt_trust_cert_rele. */
typedef struct lt_trust_cert {
    char agency[LT_AGENCY_ID_MAX];
    int64_t not_before_ms, not_after_ms; /* intersection over the certificate and its CA */
    lt_sig_alg alg;
    uint8_t key_id[LT_PKI_KEY_ID_LEN];
    void *key_; /* private: a reference to the public key */
} lt_trust_cert;

/* As lt_trust_check_cert, and on LT_OK *out holds the certificate's key until
 * lt_trust_cert_rele. key_id: the DER's SHA-256 if the caller has computed it, NULL to have
 * it computed. A cached certificate is found by key_id alone (der is not re-read); on a
 * miss a key_id that is not der's SHA-256 is refused with LT_EKEYID, so nothing is ever
 * cached under another certificate's fingerprint. */
lt_err lt_trust_cert_hold(lt_trust *trust, const uint8_t *der, size_t len,
                          const uint8_t key_id[LT_PKI_KEY_ID_LEN], int64_t now_ms,
                          lt_trust_cert *out, lt_why *why);

/* Release what lt_trust_cert_hold took. Accepts a zeroed struct; safe to call twice. */
void lt_trust_cert_rele(lt_trust_cert *c);

/* True when at_ms lies within c's validity window. */
bool lt_trust_cert_is_valid_at(const lt_trust_cert *c, int64_t at_ms);

/* Verify sig over domain || 0x00 || data with c's key. LT_ESIG when it does not verify
 * (OpenSSL's error queue drained). Thread-safe. */
lt_err lt_trust_cert_verify(const lt_trust_cert *c, const char *domain, const uint8_t *data,
                            size_t len, const uint8_t *sig, size_t sig_len, lt_why *why);

/* Verify a batch signature over LT_PKI_DOMAIN_BATCH || 0x00 || root with c's key, through the
 * root cache: a (root, key id, signature) already verified costs a lookup. LT_ESIG when it
 * does not verify (never cached). Thread-safe: a thread that misses the cache while another
 * verifies the same root waits for that outcome rather than verifying it too. */
lt_err lt_trust_verify_root(lt_trust *trust, const lt_trust_cert *c, const uint8_t root[32],
                            const uint8_t *sig, size_t sig_len, lt_why *why);

/* Counters since lt_trust_open, for tests, benchmarks and /metrics. */
typedef struct lt_trust_stats {
    uint64_t cert_hits, cert_misses, cert_evictions;
    uint64_t root_hits, root_misses; /* misses: roots verified (signature math done) */
    uint64_t root_waits; /* found verified after waiting for another thread's verification */
    uint64_t crl_reloads;
    size_t crl_revoked; /* serials listed in the CRLs in force */
} lt_trust_stats;
void lt_trust_get_stats(lt_trust *trust, lt_trust_stats *out);

#endif
