/*
 * pki.c - signers, trust roots, CRLs and the verifier's caches, over OpenSSL 3 EVP.
 *
 * Process-wide: SHA-256 is fetched once (pthread_once); each thread keeps its own
 * EVP_MD_CTX pair (one for hashing, one for signatures) in thread-specific data, freed when
 * the thread exits.
 *
 * lt_trust layout and locking:
 *   store, cas        immutable after open; X509_STORE lookups are internally locked
 *   lock (rwlock)     guards the CRL set and the certificate cache (index + entries).
 *                     Readers: cache hits. Writers: cache inserts, CRL reloads.
 *   root_lock         guards the batch-root cache.
 *   flight_mu/cv      the batch roots being verified right now (flights): a thread that
 *                     misses the cache on a root another thread is verifying waits for that
 *                     one outcome instead of doing the same signature math again (the verify
 *                     pool splits one batch's envelopes among its threads).
 *   stats             C11 atomics, read without locks.
 * A cache hit copies what it needs out of the entry (the public key with EVP_PKEY_up_ref) and
 * drops the lock before any signature math, so an eviction or a reload never waits on one.
 *
 * Both caches are FIFO sets of 32-byte keys (SHA-256 outputs, so their first bytes index
 * the hash buckets uniformly): when full, the oldest entry is evicted.
 */
#include "pki.h"
#include "fileio.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEM_FILE_MAX (64u << 20)

/* ---------------------------------------------------------------------------------------
 * Process-wide algorithms and per-thread contexts.
 */
/* Verify contexts kept per thread and key: EVP_DigestVerifyInit builds a fresh
 * EVP_PKEY_CTX (and fetches the signature method) on every call, a fifth of a P-256
 * verify. A cached context holds a reference to its key, so the pointer cannot be reused
 * by another key while it is here. */
#define VK_SLOTS 8
struct vk {
    EVP_PKEY *key;
    EVP_PKEY_CTX *ctx;
};

struct tctx {
    EVP_MD_CTX *hash;
    EVP_MD_CTX *sig;
    struct vk vk[VK_SLOTS];
    unsigned vk_next;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static EVP_MD *g_sha256;
static pthread_key_t g_tkey;
static bool g_tkey_ok;

static void tctx_free(void *p)
{
    struct tctx *t = p;
    if (t == NULL)
        return;
    EVP_MD_CTX_free(t->hash);
    EVP_MD_CTX_free(t->sig);
    for (unsigned i = 0; i < VK_SLOTS; i++)
        EVP_PKEY_CTX_free(t->vk[i].ctx);
    free(t);
}

static void init_once(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_tkey_ok = pthread_key_create(&g_tkey, tctx_free) == 0;
}

/* This thread's contexts, created on first use; NULL when out of memory or init failed. */
static struct tctx *thread_ctx(void)
{
    pthread_once(&g_once, init_once);
    if (g_sha256 == NULL || !g_tkey_ok)
        return NULL;
    struct tctx *t = pthread_getspecific(g_tkey);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->hash = EVP_MD_CTX_new();
    t->sig = EVP_MD_CTX_new();
    if (t->hash == NULL || t->sig == NULL || pthread_setspecific(g_tkey, t) != 0) {
        tctx_free(t);
        return NULL;
    }
    return t;
}

lt_err lt_pki_sha256(const uint8_t *data, size_t len, uint8_t out[32], lt_why *why)
{
    struct tctx *t = thread_ctx();
    if (t == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 unavailable");
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(t->hash, g_sha256, NULL) != 1 ||
        EVP_DigestUpdate(t->hash, data, len) != 1 || EVP_DigestFinal_ex(t->hash, out, &n) != 1 ||
        n != 32)
        return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 failed");
    return LT_OK;
}

lt_err lt_pki_sha256v(const uint8_t *const parts[], const size_t lens[], size_t n,
                      uint8_t out[32], lt_why *why)
{
    struct tctx *t = thread_ctx();
    if (t == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 unavailable");
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(t->hash, g_sha256, NULL) != 1)
        return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 failed");
    for (size_t i = 0; i < n; i++)
        if (lens[i] > 0 && EVP_DigestUpdate(t->hash, parts[i], lens[i]) != 1)
            return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 failed");
    if (EVP_DigestFinal_ex(t->hash, out, &len) != 1 || len != 32)
        return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 failed");
    return LT_OK;
}

lt_err lt_pki_random(uint8_t *out, size_t len, lt_why *why)
{
    if (len > INT32_MAX || RAND_bytes(out, (int)len) != 1)
        return lt_fail_ssl(why, LT_ECRYPTO, "random generator failed");
    return LT_OK;
}

const char *lt_sig_alg_name(lt_sig_alg alg)
{
    switch (alg) {
    case LT_SIG_ECDSA_P256:
        return "ecdsa-p256";
    case LT_SIG_ED25519:
        return "ed25519";
    case LT_SIG_RSA2048:
        return "rsa2048";
    }
    return "?";
}

lt_err lt_sig_alg_parse(const char *name, lt_sig_alg *out, lt_why *why)
{
    static const lt_sig_alg all[] = {LT_SIG_ECDSA_P256, LT_SIG_ED25519, LT_SIG_RSA2048};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, lt_sig_alg_name(all[i])) == 0) {
            *out = all[i];
            return LT_OK;
        }
    }
    return lt_fail(why, LT_EINVAL, "unknown algorithm '%s' (expected ecdsa-p256, ed25519 or rsa2048)",
                   name ? name : "");
}

/* Which lt_sig_alg a key is; LT_EINVAL (reason in why) for anything we do not accept. */
static lt_err key_alg(EVP_PKEY *k, lt_sig_alg *out, lt_why *why)
{
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_EC: {
        char group[64] = "";
        size_t gl = 0;
        if (EVP_PKEY_get_group_name(k, group, sizeof group, &gl) != 1) {
            ERR_clear_error();
            return lt_fail(why, LT_EINVAL, "EC key without a named curve");
        }
        if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)
            return lt_fail(why, LT_EINVAL, "EC curve %s is not P-256", group);
        *out = LT_SIG_ECDSA_P256;
        return LT_OK;
    }
    case EVP_PKEY_ED25519:
        *out = LT_SIG_ED25519;
        return LT_OK;
    case EVP_PKEY_RSA: {
        int bits = EVP_PKEY_get_bits(k);
        if (bits < 2048 || bits > 8192)
            return lt_fail(why, LT_EINVAL, "RSA key of %d bits (2048..8192 accepted)", bits);
        *out = LT_SIG_RSA2048;
        return LT_OK;
    }
    default:
        return lt_fail(why, LT_EINVAL, "key type %s not supported (ECDSA P-256, Ed25519, RSA)",
                       OBJ_nid2sn(EVP_PKEY_get_base_id(k)));
    }
}

/* The digest a signature algorithm hashes with (NULL: Ed25519 signs the message itself). */
static const EVP_MD *alg_md(lt_sig_alg alg)
{
    return alg == LT_SIG_ED25519 ? NULL : g_sha256;
}

/* domain || 0x00 || data into a buffer: small ones on the caller's stack. */
struct msgbuf {
    uint8_t small[512];
    uint8_t *p;
    size_t len;
};

static lt_err msg_build(struct msgbuf *m, const char *domain, const uint8_t *data, size_t len,
                        lt_why *why)
{
    size_t dl = strlen(domain);
    if (len > SIZE_MAX - dl - 1)
        return lt_fail(why, LT_ETOOBIG, "message too large to sign");
    m->len = dl + 1 + len;
    m->p = m->len <= sizeof m->small ? m->small : malloc(m->len);
    if (m->p == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory building a %zu-byte message", m->len);
    memcpy(m->p, domain, dl);
    m->p[dl] = 0;
    if (len > 0)
        memcpy(m->p + dl + 1, data, len);
    return LT_OK;
}

static void msg_free(struct msgbuf *m)
{
    if (m->p != m->small)
        free(m->p);
    m->p = NULL;
}

static int64_t asn1_time_ms(const ASN1_TIME *t, int64_t dflt)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return dflt;
    }
    return (int64_t)timegm(&tm) * 1000;
}

static void fmt_ms(int64_t ms, char buf[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, 32, "%lld ms", (long long)ms);
}

/* A PEM file whole, NUL-terminated (lt_file_read). pki.h promises LT_EIO for a file that
 * cannot be used, so an oversized one is LT_EIO too (why says it is too large). */
static lt_err read_file(const char *path, char **out, size_t *len, lt_why *why)
{
    lt_err e = lt_file_read(path, PEM_FILE_MAX, out, len, why);
    return e == LT_ETOOBIG ? LT_EIO : e;
}

/* A distinguished name as one readable UTF-8 line ("C=VN, O=..., CN=..."). */
static const char *name_str(const X509_NAME *n, char *buf, size_t size)
{
    BIO *b = BIO_new(BIO_s_mem());
    buf[0] = '\0';
    if (b != NULL && X509_NAME_print_ex(b, n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        int len = BIO_read(b, buf, (int)size - 1);
        buf[len > 0 ? len : 0] = '\0';
    }
    BIO_free(b);
    ERR_clear_error();
    return buf;
}

/* PEM pass-phrase callback: never prompt on a terminal; encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* The certificate's subject CN as a normalized agency id into out. */
static lt_err cert_agency(X509 *x, char out[LT_AGENCY_ID_MAX], lt_why *why)
{
    X509_NAME *subj = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i < 0)
        return lt_fail(why, LT_ECERT_INVALID, "certificate subject has no CN (agency id)");
    if (X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
        return lt_fail(why, LT_ECERT_INVALID, "certificate subject has more than one CN");
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
    if (n < 0)
        return lt_fail_ssl(why, LT_ECERT_INVALID, "certificate CN unreadable");
    lt_why inner;
    lt_agency_id id;
    lt_err e = lt_agency_parse((const char *)utf8, (size_t)n, &id, &inner);
    if (e == LT_OK && (strlen(id.id) != (size_t)n || memcmp(id.id, utf8, (size_t)n) != 0)) {
        lt_fail(&inner, LT_EAGENCY_ID, "CN is not in normal form (expected %s)", id.id);
        e = LT_EAGENCY_ID;
    }
    OPENSSL_free(utf8);
    if (e != LT_OK)
        return lt_fail(why, LT_ECERT_INVALID, "certificate CN is not an agency id: %s",
                       inner.msg);
    memcpy(out, id.id, strlen(id.id) + 1);
    return LT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Signer.
 */
struct lt_signer {
    EVP_PKEY *key;
    lt_sig_alg alg;
    uint8_t *der;
    size_t der_len;
    uint8_t key_id[LT_PKI_KEY_ID_LEN];
    char agency[LT_AGENCY_ID_MAX];
};

lt_err lt_signer_open_pem(const char *key_pem, size_t key_len, const char *cert_pem,
                          size_t cert_len, lt_signer **out, lt_why *why)
{
    lt_err e = LT_OK;
    X509 *cert = NULL;
    lt_signer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (key_len > INT32_MAX || cert_len > INT32_MAX) {
        e = lt_fail(why, LT_EINVAL, "PEM input too large");
        goto out_free;
    }
    BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
    s->key = kb ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    BIO_free(kb);
    if (s->key == NULL) {
        e = lt_fail_ssl(why, LT_EINVAL, "private key unreadable (PEM, unencrypted)");
        goto out_free;
    }
    BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
    cert = cb ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    BIO_free(cb);
    if (cert == NULL) {
        e = lt_fail_ssl(why, LT_ECERT_INVALID, "certificate unreadable (PEM)");
        goto out_free;
    }
    if ((e = key_alg(s->key, &s->alg, why)) != LT_OK)
        goto out_free;
    if (X509_check_private_key(cert, s->key) != 1) {
        e = lt_fail_ssl(why, LT_ECERT_INVALID, "private key does not match the certificate");
        goto out_free;
    }
    if ((e = cert_agency(cert, s->agency, why)) != LT_OK)
        goto out_free;
    int n = i2d_X509(cert, &s->der);
    if (n <= 0) {
        e = lt_fail_ssl(why, LT_ECERT_INVALID, "certificate cannot be encoded");
        goto out_free;
    }
    s->der_len = (size_t)n;
    if (s->der_len > LT_PKI_CERT_MAX) {
        e = lt_fail(why, LT_ECERT_INVALID, "certificate is %zu bytes (at most %d)", s->der_len,
                    LT_PKI_CERT_MAX);
        goto out_free;
    }
    if ((e = lt_pki_sha256(s->der, s->der_len, s->key_id, why)) != LT_OK)
        goto out_free;
    X509_free(cert);
    *out = s;
    return LT_OK;

out_free:
    X509_free(cert);
    lt_signer_destroy(&s);
    return e;
}

lt_err lt_signer_open(const char *key_path, const char *cert_path, lt_signer **out,
                      lt_why *why)
{
    char *kp = NULL, *cp = NULL;
    size_t kl = 0, cl = 0;
    lt_err e = read_file(key_path, &kp, &kl, why);
    if (e != LT_OK)
        return e;
    if ((e = read_file(cert_path, &cp, &cl, why)) != LT_OK) {
        OPENSSL_clear_free(kp, kl);
        return e;
    }
    lt_why inner;
    e = lt_signer_open_pem(kp, kl, cp, cl, out, &inner);
    if (e != LT_OK)
        lt_fail(why, e, "%s / %s: %s", key_path, cert_path, inner.msg);
    OPENSSL_clear_free(kp, kl);
    free(cp);
    return e;
}

void lt_signer_destroy(lt_signer **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    lt_signer *s = *sp;
    EVP_PKEY_free(s->key);
    OPENSSL_free(s->der);
    free(s);
    *sp = NULL;
}

const char *lt_signer_agency(const lt_signer *s)
{
    return s->agency;
}

lt_sig_alg lt_signer_alg(const lt_signer *s)
{
    return s->alg;
}

const uint8_t *lt_signer_cert_der(const lt_signer *s, size_t *len)
{
    *len = s->der_len;
    return s->der;
}

const uint8_t *lt_signer_key_id(const lt_signer *s)
{
    return s->key_id;
}

lt_err lt_signer_sign(lt_signer *s, const char *domain, const uint8_t *data, size_t len,
                      uint8_t *sig, size_t *sig_len, lt_why *why)
{
    struct tctx *t = thread_ctx();
    if (t == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "no signing context");
    struct msgbuf m;
    lt_err e = msg_build(&m, domain, data, len, why);
    if (e != LT_OK)
        return e;
    size_t n = LT_PKI_SIG_MAX;
    EVP_MD_CTX_reset(t->sig);
    if (EVP_DigestSignInit(t->sig, NULL, alg_md(s->alg), NULL, s->key) != 1 ||
        EVP_DigestSign(t->sig, sig, &n, m.p, m.len) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "signing failed");
    } else {
        *sig_len = n;
    }
    EVP_MD_CTX_reset(t->sig);
    msg_free(&m);
    return e;
}

/* Verify sig over domain || 0 || data with key. */
/* This thread's verify context for key (ECDSA or RSA: verifying a SHA-256 digest),
 * initialised once; NULL on failure (error queue left for the caller). */
static EVP_PKEY_CTX *vk_ctx(struct tctx *t, EVP_PKEY *key, lt_sig_alg alg)
{
    for (unsigned i = 0; i < VK_SLOTS; i++)
        if (t->vk[i].key == key && t->vk[i].ctx != NULL)
            return t->vk[i].ctx;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, g_sha256) != 1 ||
        (alg == LT_SIG_RSA2048 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    struct vk *slot = &t->vk[t->vk_next++ % VK_SLOTS];
    EVP_PKEY_CTX_free(slot->ctx);
    slot->key = key;
    slot->ctx = ctx;
    return ctx;
}

static lt_err verify_with(EVP_PKEY *key, lt_sig_alg alg, const char *domain, const uint8_t *data,
                          size_t len, const uint8_t *sig, size_t sig_len, lt_why *why)
{
    struct tctx *t = thread_ctx();
    if (t == NULL)
        return lt_fail_ssl(why, LT_ECRYPTO, "no verifying context");
    if (sig_len == 0 || sig_len > LT_PKI_SIG_MAX)
        return lt_fail(why, LT_ESIG, "signature of %zu bytes", sig_len);
    lt_err e = LT_OK;
    if (alg != LT_SIG_ED25519) {
        /* ECDSA and RSA PKCS#1 v1.5 sign SHA-256(domain || 0 || data): hash it here and
         * verify the digest with the thread's cached context for this key. */
        uint8_t md[32];
        unsigned mdlen = 0;
        EVP_PKEY_CTX *ctx = vk_ctx(t, key, alg);
        if (ctx == NULL)
            return lt_fail_ssl(why, LT_ECRYPTO, "verify init failed");
        if (EVP_DigestInit_ex(t->hash, g_sha256, NULL) != 1 ||
            EVP_DigestUpdate(t->hash, domain, strlen(domain) + 1) != 1 ||
            (len > 0 && EVP_DigestUpdate(t->hash, data, len) != 1) ||
            EVP_DigestFinal_ex(t->hash, md, &mdlen) != 1 || mdlen != sizeof md)
            return lt_fail_ssl(why, LT_ECRYPTO, "SHA-256 failed");
        if (EVP_PKEY_verify(ctx, sig, sig_len, md, sizeof md) != 1) {
            ERR_clear_error();
            e = lt_fail(why, LT_ESIG, "%s signature does not verify with the certificate's key",
                        lt_sig_alg_name(alg));
        }
        return e;
    }
    struct msgbuf m;
    e = msg_build(&m, domain, data, len, why);
    if (e != LT_OK)
        return e;
    EVP_MD_CTX_reset(t->sig);
    if (EVP_DigestVerifyInit(t->sig, NULL, alg_md(alg), NULL, key) != 1) {
        e = lt_fail_ssl(why, LT_ECRYPTO, "verify init failed");
    } else if (EVP_DigestVerify(t->sig, sig, sig_len, m.p, m.len) != 1) {
        ERR_clear_error();
        e = lt_fail(why, LT_ESIG, "%s signature does not verify with the certificate's key",
                    lt_sig_alg_name(alg));
    }
    EVP_MD_CTX_reset(t->sig);
    msg_free(&m);
    return e;
}

/* ---------------------------------------------------------------------------------------
 * FIFO sets of 32-byte keys with a chained hash index.
 */
#define NONE UINT32_MAX

struct fifo {
    uint8_t (*keys)[32];
    uint32_t *next;    /* chain within a bucket */
    uint32_t *buckets; /* head slot per bucket */
    size_t cap, nb, count, ring;
};

static lt_err fifo_init(struct fifo *f, size_t cap, lt_why *why)
{
    memset(f, 0, sizeof *f);
    if (cap == 0)
        cap = 1;
    if (cap > (1u << 24))
        cap = 1u << 24;
    size_t nb = 1;
    while (nb < cap * 2)
        nb <<= 1;
    f->keys = calloc(cap, 32);
    f->next = calloc(cap, sizeof *f->next);
    f->buckets = malloc(nb * sizeof *f->buckets);
    if (f->keys == NULL || f->next == NULL || f->buckets == NULL) {
        free(f->keys);
        free(f->next);
        free(f->buckets);
        return lt_fail(why, LT_ENOMEM, "out of memory for a cache of %zu", cap);
    }
    for (size_t i = 0; i < nb; i++)
        f->buckets[i] = NONE;
    f->cap = cap;
    f->nb = nb;
    return LT_OK;
}

static void fifo_fini(struct fifo *f)
{
    free(f->keys);
    free(f->next);
    free(f->buckets);
    memset(f, 0, sizeof *f);
}

static size_t fifo_bucket(const struct fifo *f, const uint8_t k[32])
{
    uint64_t h;
    memcpy(&h, k, sizeof h);
    return (size_t)(h & (f->nb - 1));
}

static int64_t fifo_find(const struct fifo *f, const uint8_t k[32])
{
    for (uint32_t i = f->buckets[fifo_bucket(f, k)]; i != NONE; i = f->next[i])
        if (memcmp(f->keys[i], k, 32) == 0)
            return i;
    return -1;
}

/* Insert k (not present) and return its slot; *evicted tells whether the slot held the
 * oldest entry, whose value the caller must release first. */
static uint32_t fifo_insert(struct fifo *f, const uint8_t k[32], bool *evicted)
{
    uint32_t slot;
    if (f->count < f->cap) {
        slot = (uint32_t)f->count++;
        *evicted = false;
    } else {
        slot = (uint32_t)f->ring;
        f->ring = (f->ring + 1) % f->cap;
        *evicted = true;
        uint32_t *pp = &f->buckets[fifo_bucket(f, f->keys[slot])];
        while (*pp != slot) {
            assert(*pp != NONE); /* every used slot is on its bucket's chain */
            pp = &f->next[*pp];
        }
        *pp = f->next[slot];
    }
    memcpy(f->keys[slot], k, 32);
    size_t b = fifo_bucket(f, k);
    f->next[slot] = f->buckets[b];
    f->buckets[b] = slot;
    return slot;
}

/* ---------------------------------------------------------------------------------------
 * Trust.
 */
struct crl_item {
    X509_CRL *crl;
    int ca;          /* index in cas of its issuer */
    int64_t next_ms; /* nextUpdate; INT64_MAX when absent */
    int64_t this_ms;
};

struct crl_set {
    struct crl_item *v;
    size_t n;
    size_t revoked; /* entries over all CRLs */
};

/* A certificate that chained. Written under the write lock, copied out under the read lock;
 * cert is only read under a lock (revocation checks). */
struct centry {
    EVP_PKEY *key;
    X509 *cert;
    int ca;
    char agency[LT_AGENCY_ID_MAX];
    int64_t nb, na;
    lt_sig_alg alg;
    lt_err rev;       /* LT_OK, LT_ECERT_REVOKED, or LT_ECRL (no CRL from its issuer) */
    int64_t crl_next; /* the issuer CRL's nextUpdate; INT64_MAX without CRL checking */
};

/* A batch root one thread is verifying (lt_trust_verify_root): key as in the root cache. */
#define ROOT_FLIGHTS 16
struct root_flight {
    uint8_t key[32];
    bool busy;
};

struct lt_trust {
    X509_STORE *store;
    STACK_OF(X509) *cas;
    char *crl_path; /* file to reload; NULL when opened from memory */
    bool check_crl;
    lt_trust_opts opts;

    pthread_rwlock_t lock; /* crls, cidx, cents */
    struct crl_set crls;
    struct fifo cidx;
    struct centry *cents;

    pthread_rwlock_t root_lock; /* roots */
    struct fifo roots;

    pthread_mutex_t flight_mu; /* flights */
    pthread_cond_t flight_cv;
    struct root_flight flights[ROOT_FLIGHTS];

    atomic_uint_fast64_t cert_hits, cert_misses, cert_evictions, root_hits, root_misses,
        root_waits, crl_reloads;
};

lt_trust_opts lt_trust_opts_default(void)
{
    lt_trust_opts o = {.clock_skew_ms = 300000, .cert_cache_max = 4096, .root_cache_max = 65536};
    return o;
}

static bool pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    bool end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    if (end)
        ERR_clear_error();
    return end;
}

static lt_err load_cas(const char *pem, size_t len, STACK_OF(X509) **out, lt_why *why)
{
    if (len > INT32_MAX)
        return lt_fail(why, LT_ECONFIG, "CA file too large");
    STACK_OF(X509) *cas = sk_X509_new_null();
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    lt_err e = LT_OK;
    if (cas == NULL || b == NULL) {
        e = lt_fail_ssl(why, LT_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
        if (x == NULL) {
            if (!pem_at_end())
                e = lt_fail_ssl(why, LT_ECONFIG, "CA file: malformed PEM certificate");
            break;
        }
        if (X509_check_ca(x) == 0) {
            char name[256];
            name_str(X509_get_subject_name(x), name, sizeof name);
            X509_free(x);
            e = lt_fail(why, LT_ECONFIG, "CA file: %s is not a CA certificate", name);
            break;
        }
        if (sk_X509_push(cas, x) <= 0) {
            X509_free(x);
            e = lt_fail_ssl(why, LT_ENOMEM, "out of memory");
            break;
        }
    }
    if (e == LT_OK && sk_X509_num(cas) == 0)
        e = lt_fail(why, LT_ECONFIG, "CA file holds no certificate");
out:
    BIO_free(b);
    if (e != LT_OK) {
        sk_X509_pop_free(cas, X509_free);
        return e;
    }
    *out = cas;
    return LT_OK;
}

static void crl_set_free(struct crl_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        X509_CRL_free(s->v[i].crl);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Parse every CRL of pem; each must be signed by one of cas. Of two CRLs from one CA the
 * newer (thisUpdate) wins. */
static lt_err load_crls(STACK_OF(X509) *cas, const char *pem, size_t len, struct crl_set *out,
                        lt_why *why)
{
    if (len > INT32_MAX)
        return lt_fail(why, LT_ECRL, "CRL file too large");
    struct crl_set s = {0};
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL)
        return lt_fail_ssl(why, LT_ENOMEM, "out of memory");
    lt_err e = LT_OK;
    int ncas = sk_X509_num(cas);
    for (;;) {
        X509_CRL *crl = PEM_read_bio_X509_CRL(b, NULL, no_passphrase, NULL);
        if (crl == NULL) {
            if (!pem_at_end())
                e = lt_fail_ssl(why, LT_ECRL, "CRL file: malformed PEM CRL");
            break;
        }
        int ca = -1;
        for (int i = 0; i < ncas && ca < 0; i++) {
            X509 *x = sk_X509_value(cas, i);
            if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(x)) == 0 &&
                X509_CRL_verify(crl, X509_get0_pubkey(x)) == 1)
                ca = i;
        }
        ERR_clear_error();
        if (ca < 0) {
            char name[256];
            name_str(X509_CRL_get_issuer(crl), name, sizeof name);
            X509_CRL_free(crl);
            e = lt_fail(why, LT_ECRL, "CRL from %s is not signed by a trusted CA", name);
            break;
        }
        struct crl_item it = {
            .crl = crl,
            .ca = ca,
            .next_ms = asn1_time_ms(X509_CRL_get0_nextUpdate(crl), INT64_MAX),
            .this_ms = asn1_time_ms(X509_CRL_get0_lastUpdate(crl), 0),
        };
        size_t k = 0;
        while (k < s.n && s.v[k].ca != ca)
            k++;
        if (k < s.n) {
            if (it.this_ms > s.v[k].this_ms) {
                X509_CRL_free(s.v[k].crl);
                s.v[k] = it;
            } else {
                X509_CRL_free(crl);
            }
            continue;
        }
        struct crl_item *nv = realloc(s.v, (s.n + 1) * sizeof *nv);
        if (nv == NULL) {
            X509_CRL_free(crl);
            e = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        s.v = nv;
        s.v[s.n++] = it;
    }
    BIO_free(b);
    if (e == LT_OK && s.n == 0)
        e = lt_fail(why, LT_ECRL, "CRL file holds no CRL");
    if (e != LT_OK) {
        crl_set_free(&s);
        return e;
    }
    for (size_t i = 0; i < s.n; i++) {
        STACK_OF(X509_REVOKED) *r = X509_CRL_get_REVOKED(s.v[i].crl);
        s.revoked += r ? (size_t)sk_X509_REVOKED_num(r) : 0;
    }
    *out = s;
    return LT_OK;
}

/* Recompute e's revocation against t's CRL set. Write lock held (CRL lookups sort lazily). */
static void entry_recheck(const lt_trust *t, struct centry *e)
{
    e->rev = LT_OK;
    e->crl_next = INT64_MAX;
    if (!t->check_crl)
        return;
    for (size_t i = 0; i < t->crls.n; i++) {
        if (t->crls.v[i].ca != e->ca)
            continue;
        X509_REVOKED *r = NULL;
        int rc = X509_CRL_get0_by_cert(t->crls.v[i].crl, &r, e->cert);
        e->rev = rc == 1 ? LT_ECERT_REVOKED : LT_OK;
        e->crl_next = t->crls.v[i].next_ms;
        ERR_clear_error();
        return;
    }
    e->rev = LT_ECRL;
}

static void entry_free(struct centry *e)
{
    EVP_PKEY_free(e->key);
    X509_free(e->cert);
    memset(e, 0, sizeof *e);
}

static lt_err trust_new(STACK_OF(X509) *cas, const lt_trust_opts *opts, lt_trust **out,
                        lt_why *why)
{
    lt_trust *t = calloc(1, sizeof *t);
    if (t == NULL) {
        sk_X509_pop_free(cas, X509_free);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    t->cas = cas;
    t->opts = opts ? *opts : lt_trust_opts_default();
    if (t->opts.clock_skew_ms < 0)
        t->opts.clock_skew_ms = 0;
    pthread_rwlock_init(&t->lock, NULL);
    pthread_rwlock_init(&t->root_lock, NULL);
    pthread_mutex_init(&t->flight_mu, NULL);
    pthread_cond_init(&t->flight_cv, NULL);
    lt_err e = fifo_init(&t->cidx, t->opts.cert_cache_max, why);
    if (e == LT_OK && (e = fifo_init(&t->roots, t->opts.root_cache_max, why)) == LT_OK) {
        t->cents = calloc(t->cidx.cap, sizeof *t->cents);
        if (t->cents == NULL)
            e = lt_fail(why, LT_ENOMEM, "out of memory");
    }
    if (e == LT_OK) {
        t->store = X509_STORE_new();
        if (t->store == NULL)
            e = lt_fail_ssl(why, LT_ENOMEM, "X509_STORE_new");
    }
    for (int i = 0; e == LT_OK && i < sk_X509_num(cas); i++)
        if (X509_STORE_add_cert(t->store, sk_X509_value(cas, i)) != 1)
            e = lt_fail_ssl(why, LT_ECRYPTO, "adding a trust anchor");
    /* Time is checked per use from the cached window, revocation from our CRL set: the
     * chain check proper is the only thing OpenSSL does, once per certificate. */
    if (e == LT_OK &&
        X509_STORE_set_flags(t->store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME) != 1)
        e = lt_fail_ssl(why, LT_ECRYPTO, "X509_STORE_set_flags");
    if (e != LT_OK) {
        lt_trust_destroy(&t);
        return e;
    }
    *out = t;
    return LT_OK;
}

lt_err lt_trust_open_pem(const char *ca_pem, size_t ca_len, const char *crl_pem,
                         size_t crl_len, const lt_trust_opts *opts, lt_trust **out,
                         lt_why *why)
{
    STACK_OF(X509) *cas = NULL;
    lt_err e = load_cas(ca_pem, ca_len, &cas, why);
    if (e != LT_OK)
        return e;
    struct crl_set crls = {0};
    if (crl_pem != NULL && (e = load_crls(cas, crl_pem, crl_len, &crls, why)) != LT_OK) {
        sk_X509_pop_free(cas, X509_free);
        return e;
    }
    lt_trust *t = NULL;
    if ((e = trust_new(cas, opts, &t, why)) != LT_OK) {
        crl_set_free(&crls);
        return e; /* trust_new freed cas through lt_trust_destroy */
    }
    t->crls = crls;
    t->check_crl = crl_pem != NULL;
    *out = t;
    return LT_OK;
}

lt_err lt_trust_open(const char *ca_path, const char *crl_path, const lt_trust_opts *opts,
                     lt_trust **out, lt_why *why)
{
    char *ca = NULL, *crl = NULL;
    size_t cal = 0, crll = 0;
    lt_err e = read_file(ca_path, &ca, &cal, why);
    if (e != LT_OK)
        return e;
    if (crl_path != NULL && (e = read_file(crl_path, &crl, &crll, why)) != LT_OK) {
        free(ca);
        return e;
    }
    lt_why inner;
    lt_trust *t = NULL;
    e = lt_trust_open_pem(ca, cal, crl, crll, opts, &t, &inner);
    free(ca);
    free(crl);
    if (e != LT_OK)
        return lt_fail(why, e, "%s: %s", e == LT_ECRL ? crl_path : ca_path, inner.msg);
    if (crl_path != NULL && (t->crl_path = strdup(crl_path)) == NULL) {
        lt_trust_destroy(&t);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    *out = t;
    return LT_OK;
}

void lt_trust_destroy(lt_trust **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    lt_trust *t = *tp;
    if (t->cents != NULL)
        for (size_t i = 0; i < t->cidx.count; i++)
            entry_free(&t->cents[i]);
    free(t->cents);
    fifo_fini(&t->cidx);
    fifo_fini(&t->roots);
    crl_set_free(&t->crls);
    X509_STORE_free(t->store);
    sk_X509_pop_free(t->cas, X509_free);
    pthread_rwlock_destroy(&t->lock);
    pthread_rwlock_destroy(&t->root_lock);
    pthread_mutex_destroy(&t->flight_mu);
    pthread_cond_destroy(&t->flight_cv);
    free(t->crl_path);
    free(t);
    *tp = NULL;
}

lt_err lt_trust_reload_crl(lt_trust *trust, lt_why *why)
{
    if (trust->crl_path == NULL)
        return lt_fail(why, LT_EINVAL, "trust was opened without a CRL file to reload");
    char *pem = NULL;
    size_t len = 0;
    lt_err e = read_file(trust->crl_path, &pem, &len, why);
    if (e != LT_OK)
        return e;
    struct crl_set fresh = {0};
    lt_why inner;
    e = load_crls(trust->cas, pem, len, &fresh, &inner);
    free(pem);
    if (e != LT_OK)
        return lt_fail(why, e, "%s: %s (previous CRL kept)", trust->crl_path, inner.msg);
    pthread_rwlock_wrlock(&trust->lock);
    struct crl_set old = trust->crls;
    trust->crls = fresh;
    for (size_t i = 0; i < trust->cidx.count; i++)
        entry_recheck(trust, &trust->cents[i]);
    pthread_rwlock_unlock(&trust->lock);
    crl_set_free(&old);
    atomic_fetch_add_explicit(&trust->crl_reloads, 1, memory_order_relaxed);
    return LT_OK;
}

int64_t lt_trust_clock_skew_ms(const lt_trust *trust)
{
    return trust->opts.clock_skew_ms;
}

/* An agency certificate signs; it never issues. basicConstraints is read directly:
 * X509_check_ca answers 0 for CA:TRUE without keyCertSign, so a CA certificate whose
 * keyUsage is digitalSignature alone would pass it. X509_check_ca still catches the other
 * issuers (keyCertSign without basicConstraints, a v1 self-signed certificate). */
static lt_err check_agency_profile(X509 *x, lt_why *why)
{
    char name[160];
    uint32_t flags = X509_get_extension_flags(x); /* caches the extensions */
    if ((flags & EXFLAG_CA) != 0 || X509_check_ca(x) != 0)
        return lt_fail(why, LT_ECERT_CA,
                       "certificate of %s is a CA certificate (basicConstraints CA:TRUE or "
                       "keyCertSign), not an agency's",
                       name_str(X509_get_subject_name(x), name, sizeof name));
    uint32_t ku = X509_get_key_usage(x);
    if (ku != UINT32_MAX && (ku & KU_DIGITAL_SIGNATURE) == 0)
        return lt_fail(why, LT_ECERT_INVALID,
                       "certificate of %s has a keyUsage without digitalSignature",
                       name_str(X509_get_subject_name(x), name, sizeof name));
    return LT_OK;
}

/* Parse der, chain it to a trust anchor and check it is an agency certificate; on LT_OK e
 * owns a certificate and a key reference. No lock held (X509_STORE locks itself). */
static lt_err check_chain(lt_trust *t, const uint8_t *der, size_t len, struct centry *e,
                          lt_why *why)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return lt_fail(why, LT_ECERT_INVALID, "certificate is not one DER X.509 certificate");
    }
    lt_err rc = LT_OK;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, t->store, x, NULL) != 1) {
        rc = lt_fail_ssl(why, LT_ENOMEM, "X509_STORE_CTX");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        char name[160];
        name_str(X509_get_issuer_name(x), name, sizeof name);
        ERR_clear_error();
        switch (err) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
            rc = lt_fail(why, LT_ECERT_UNKNOWN_CA,
                         "certificate issued by %s does not chain to the trust root (%s)", name,
                         X509_verify_cert_error_string(err));
            break;
        default:
            rc = lt_fail(why, LT_ECERT_INVALID, "certificate rejected: %s",
                         X509_verify_cert_error_string(err));
        }
        goto out;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    if (chain == NULL || sk_X509_num(chain) < 2) {
        rc = lt_fail(why, LT_ECERT_INVALID, "certificate is itself a trust anchor");
        goto out;
    }
    X509 *issuer = sk_X509_value(chain, 1);
    e->ca = -1;
    for (int i = 0; i < sk_X509_num(t->cas) && e->ca < 0; i++)
        if (X509_cmp(sk_X509_value(t->cas, i), issuer) == 0)
            e->ca = i;
    if (e->ca < 0) {
        rc = lt_fail(why, LT_ECERT_UNKNOWN_CA, "certificate's issuer is not a trust anchor");
        goto out;
    }
    if ((rc = check_agency_profile(x, why)) != LT_OK)
        goto out;
    EVP_PKEY *k = X509_get0_pubkey(x);
    if (k == NULL) {
        rc = lt_fail_ssl(why, LT_ECERT_INVALID, "certificate's public key unreadable");
        goto out;
    }
    lt_why inner;
    if (key_alg(k, &e->alg, &inner) != LT_OK) {
        rc = lt_fail(why, LT_ECERT_INVALID, "certificate key: %s", inner.msg);
        goto out;
    }
    if ((rc = cert_agency(x, e->agency, why)) != LT_OK)
        goto out;
    e->nb = INT64_MIN;
    e->na = INT64_MAX;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        int64_t nb = asn1_time_ms(X509_get0_notBefore(c), INT64_MAX);
        int64_t na = asn1_time_ms(X509_get0_notAfter(c), INT64_MIN);
        e->nb = nb > e->nb ? nb : e->nb;
        e->na = na < e->na ? na : e->na;
    }
    EVP_PKEY_up_ref(k);
    e->key = k;
    e->cert = x;
    x = NULL;
out:
    X509_STORE_CTX_free(ctx);
    X509_free(x);
    return rc;
}

lt_err lt_trust_cert_hold(lt_trust *trust, const uint8_t *der, size_t len,
                          const uint8_t key_id[LT_PKI_KEY_ID_LEN], int64_t now_ms,
                          lt_trust_cert *out, lt_why *why)
{
    if (der == NULL || len == 0)
        return lt_fail(why, LT_ECERT_INVALID, "no certificate");
    if (len > LT_PKI_CERT_MAX)
        return lt_fail(why, LT_ETOOBIG, "certificate of %zu bytes (at most %d)", len,
                       LT_PKI_CERT_MAX);
    uint8_t fp[32];
    if (key_id != NULL) {
        memcpy(fp, key_id, 32);
    } else {
        lt_err e = lt_pki_sha256(der, len, fp, why);
        if (e != LT_OK)
            return e;
    }

    struct centry c;
    bool found = false;
    pthread_rwlock_rdlock(&trust->lock);
    int64_t slot = fifo_find(&trust->cidx, fp);
    if (slot >= 0) {
        c = trust->cents[slot];
        EVP_PKEY_up_ref(c.key);
        found = true;
    }
    pthread_rwlock_unlock(&trust->lock);

    if (found) {
        atomic_fetch_add_explicit(&trust->cert_hits, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&trust->cert_misses, 1, memory_order_relaxed);
        if (key_id != NULL) { /* never cache a certificate under someone else's fingerprint */
            uint8_t real[32];
            lt_err e = lt_pki_sha256(der, len, real, why);
            if (e != LT_OK)
                return e;
            if (memcmp(real, key_id, 32) != 0)
                return lt_fail(why, LT_EKEYID, "key id is not the certificate's SHA-256");
        }
        struct centry fresh = {0};
        lt_err e = check_chain(trust, der, len, &fresh, why);
        if (e != LT_OK)
            return e;
        pthread_rwlock_wrlock(&trust->lock);
        slot = fifo_find(&trust->cidx, fp);
        if (slot >= 0) { /* another thread cached it meanwhile */
            entry_free(&fresh);
        } else {
            bool evicted = false;
            slot = fifo_insert(&trust->cidx, fp, &evicted);
            if (evicted) {
                entry_free(&trust->cents[slot]);
                atomic_fetch_add_explicit(&trust->cert_evictions, 1, memory_order_relaxed);
            }
            entry_recheck(trust, &fresh);
            trust->cents[slot] = fresh;
        }
        c = trust->cents[slot];
        EVP_PKEY_up_ref(c.key);
        pthread_rwlock_unlock(&trust->lock);
    }
    c.cert = NULL; /* not ours outside the lock */

    char t1[32], t2[32];
    lt_err e = LT_OK;
    if (c.rev == LT_ECERT_REVOKED) {
        e = lt_fail(why, LT_ECERT_REVOKED, "certificate of %s is revoked (listed in the CRL)",
                    c.agency);
    } else if (c.rev == LT_ECRL) {
        e = lt_fail(why, LT_ECRL, "no CRL from the CA that issued the certificate of %s",
                    c.agency);
    } else if (now_ms > c.crl_next) {
        fmt_ms(c.crl_next, t1);
        e = lt_fail(why, LT_ECRL, "the CRL of %s's CA expired at %s (nextUpdate)", c.agency, t1);
    } else if (now_ms < c.nb) {
        fmt_ms(c.nb, t1);
        e = lt_fail(why, LT_ECERT_NOT_YET_VALID, "certificate of %s not valid before %s",
                    c.agency, t1);
    } else if (now_ms > c.na) {
        fmt_ms(c.na, t1);
        fmt_ms(now_ms, t2);
        e = lt_fail(why, LT_ECERT_EXPIRED, "certificate of %s expired at %s (now %s)", c.agency,
                    t1, t2);
    }
    if (e != LT_OK) {
        EVP_PKEY_free(c.key);
        return e;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->agency, c.agency, sizeof out->agency);
    out->not_before_ms = c.nb;
    out->not_after_ms = c.na;
    out->alg = c.alg;
    memcpy(out->key_id, fp, 32);
    out->key_ = c.key;
    return LT_OK;
}

void lt_trust_cert_rele(lt_trust_cert *c)
{
    if (c == NULL)
        return;
    EVP_PKEY_free(c->key_);
    c->key_ = NULL;
}

bool lt_trust_cert_is_valid_at(const lt_trust_cert *c, int64_t at_ms)
{
    return at_ms >= c->not_before_ms && at_ms <= c->not_after_ms;
}

lt_err lt_trust_cert_verify(const lt_trust_cert *c, const char *domain, const uint8_t *data,
                            size_t len, const uint8_t *sig, size_t sig_len, lt_why *why)
{
    if (c->key_ == NULL)
        return lt_fail(why, LT_EINVAL, "certificate not held");
    return verify_with(c->key_, c->alg, domain, data, len, sig, sig_len, why);
}

lt_err lt_trust_check_cert(lt_trust *trust, const uint8_t *der, size_t len, int64_t now_ms,
                           char agency_out[LT_AGENCY_ID_MAX], lt_why *why)
{
    lt_trust_cert c;
    lt_err e = lt_trust_cert_hold(trust, der, len, NULL, now_ms, &c, why);
    if (e != LT_OK)
        return e;
    if (agency_out != NULL)
        memcpy(agency_out, c.agency, sizeof c.agency);
    lt_trust_cert_rele(&c);
    return LT_OK;
}

lt_err lt_trust_verify_sig(lt_trust *trust, const uint8_t *der, size_t der_len, int64_t now_ms,
                           const char *domain, const uint8_t *data, size_t len,
                           const uint8_t *sig, size_t sig_len,
                           char agency_out[LT_AGENCY_ID_MAX], lt_why *why)
{
    lt_trust_cert c;
    lt_err e = lt_trust_cert_hold(trust, der, der_len, NULL, now_ms, &c, why);
    if (e != LT_OK)
        return e;
    e = lt_trust_cert_verify(&c, domain, data, len, sig, sig_len, why);
    if (e == LT_OK && agency_out != NULL)
        memcpy(agency_out, c.agency, sizeof c.agency);
    lt_trust_cert_rele(&c);
    return e;
}

static bool root_cached(lt_trust *trust, const uint8_t key[32])
{
    pthread_rwlock_rdlock(&trust->root_lock);
    bool hit = fifo_find(&trust->roots, key) >= 0;
    pthread_rwlock_unlock(&trust->root_lock);
    return hit;
}

static struct root_flight *flight_find(lt_trust *trust, const uint8_t key[32])
{
    for (size_t i = 0; i < ROOT_FLIGHTS; i++)
        if (trust->flights[i].busy && memcmp(trust->flights[i].key, key, 32) == 0)
            return &trust->flights[i];
    return NULL;
}

/* Wait while another thread verifies this root; then take a flight of our own (NULL when
 * every flight is taken: verify without one). *hit when the other thread's outcome put the
 * root in the cache meanwhile. A failed root is never cached: its waiters verify it again
 * themselves, one at a time, and each gets its own reason. */
static struct root_flight *flight_begin(lt_trust *trust, const uint8_t key[32], bool *hit)
{
    *hit = false;
    pthread_mutex_lock(&trust->flight_mu);
    while (flight_find(trust, key) != NULL)
        pthread_cond_wait(&trust->flight_cv, &trust->flight_mu);
    /* Looked up again under flight_mu: a flight inserts before it ends, so a root verified
     * between our first lookup and here is found now, and is never verified twice. */
    if (root_cached(trust, key)) {
        pthread_mutex_unlock(&trust->flight_mu);
        *hit = true;
        return NULL;
    }
    struct root_flight *f = NULL;
    for (size_t i = 0; i < ROOT_FLIGHTS && f == NULL; i++)
        if (!trust->flights[i].busy)
            f = &trust->flights[i];
    if (f != NULL) {
        memcpy(f->key, key, 32);
        f->busy = true;
    }
    pthread_mutex_unlock(&trust->flight_mu);
    return f;
}

static void flight_end(lt_trust *trust, struct root_flight *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&trust->flight_mu);
    f->busy = false;
    pthread_cond_broadcast(&trust->flight_cv);
    pthread_mutex_unlock(&trust->flight_mu);
}

lt_err lt_trust_verify_root(lt_trust *trust, const lt_trust_cert *c, const uint8_t root[32],
                            const uint8_t *sig, size_t sig_len, lt_why *why)
{
    if (sig_len == 0 || sig_len > LT_PKI_SIG_MAX)
        return lt_fail(why, LT_ESIG, "batch signature of %zu bytes", sig_len);
    uint8_t key[32];
    const uint8_t *parts[3] = {root, c->key_id, sig};
    size_t lens[3] = {32, LT_PKI_KEY_ID_LEN, sig_len};
    lt_err e = lt_pki_sha256v(parts, lens, 3, key, why);
    if (e != LT_OK)
        return e;
    if (root_cached(trust, key)) {
        atomic_fetch_add_explicit(&trust->root_hits, 1, memory_order_relaxed);
        return LT_OK;
    }
    bool hit;
    struct root_flight *f = flight_begin(trust, key, &hit);
    if (hit) {
        atomic_fetch_add_explicit(&trust->root_waits, 1, memory_order_relaxed);
        return LT_OK;
    }
    atomic_fetch_add_explicit(&trust->root_misses, 1, memory_order_relaxed);
    lt_why inner;
    e = lt_trust_cert_verify(c, LT_PKI_DOMAIN_BATCH, root, 32, sig, sig_len, &inner);
    if (e == LT_OK) {
        pthread_rwlock_wrlock(&trust->root_lock);
        if (fifo_find(&trust->roots, key) < 0) {
            bool evicted;
            fifo_insert(&trust->roots, key, &evicted);
        }
        pthread_rwlock_unlock(&trust->root_lock);
    }
    flight_end(trust, f); /* after the insert: a waiter finds the root cached */
    if (e != LT_OK)
        return lt_fail(why, e, "batch root: %s", inner.msg);
    return LT_OK;
}

void lt_trust_get_stats(lt_trust *trust, lt_trust_stats *out)
{
    memset(out, 0, sizeof *out);
    out->cert_hits = atomic_load_explicit(&trust->cert_hits, memory_order_relaxed);
    out->cert_misses = atomic_load_explicit(&trust->cert_misses, memory_order_relaxed);
    out->cert_evictions = atomic_load_explicit(&trust->cert_evictions, memory_order_relaxed);
    out->root_hits = atomic_load_explicit(&trust->root_hits, memory_order_relaxed);
    out->root_misses = atomic_load_explicit(&trust->root_misses, memory_order_relaxed);
    out->root_waits = atomic_load_explicit(&trust->root_waits, memory_order_relaxed);
    out->crl_reloads = atomic_load_explicit(&trust->crl_reloads, memory_order_relaxed);
    pthread_rwlock_rdlock(&trust->lock);
    out->crl_revoked = trust->crls.revoked;
    pthread_rwlock_unlock(&trust->lock);
}
