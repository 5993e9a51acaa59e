/*
 * sigbench.c - envelopes sealed and verified per second, on one thread, for ECDSA P-256,
 * Ed25519 and RSA-2048: one signature per envelope, and batches of 16, 64 and 256 under one
 * signature over their Merkle root.
 *
 * Rates are per second of this thread's CPU time (like `openssl speed` without -elapsed).
 *
 *   sign/s    lt_env_seal (or lt_env_seal_batch / N): envelopes built, hashed, signed,
 *             serialized
 *   verify/s  lt_env_decode + lt_env_verify of every envelope, certificate cached; for a
 *             batch each envelope is verified on its own, its root through the root cache, so a
 *             batch of N costs one signature check. Every pass uses a fresh trust (empty root
 *             cache) over envelopes it has not seen, so no signature is skipped that a real
 *             verifier would have to check.
 *
 * Mode "sig" is the signature math alone, no envelope: lt_signer_sign and
 * lt_trust_cert_verify (the call the broker's verifier makes, certificate held) of one
 * signature over a 32-byte batch root, distinct roots. bench/run subtracts it from the
 * broker's CPU per message: 1 per message with single signatures, 1/64 with batches of 64.
 *
 * usage: bench_sigbench [-t SECONDS_PER_MEASUREMENT] [-a ALG] [-m MODE]
 *   MODE: single, batch16, batch64, batch256 or sig (default: all of them)
 * Output: one line per (algorithm, mode): "alg mode sign_per_s verify_per_s". Run
 * bench/sigbench.sh for the table next to `openssl speed`.
 */
#include "devpki.h"
#include "envelope.h"
#include "pki.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL 2048 /* distinct envelopes per verify pass */

/* CPU time of this thread, as `openssl speed` measures by default (user time, not elapsed),
 * so both sides of the table are comparable on a shared machine. */
static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void die(const char *what, const lt_why *why)
{
    fprintf(stderr, "sigbench: %s: %s\n", what, why ? why->msg : "");
    exit(1);
}

static uint8_t payload[320];

static lt_env_spec spec(void)
{
    lt_env_spec s = {.topic = "79.760.hotich.khaisinh",
                     .record_type = "lienthong.v1.records.BirthRegistration",
                     .payload = payload,
                     .payload_len = sizeof payload};
    return s;
}

/* Seal POOL envelopes, n per batch (n = 0: single signatures), into outs/lens. */
static void seal_pool(lt_signer *s, size_t n, uint8_t **outs, size_t *lens)
{
    lt_why why;
    lt_env_spec specs[256];
    for (size_t i = 0; i < 256; i++)
        specs[i] = spec();
    for (size_t done = 0; done < POOL;) {
        if (n == 0) {
            if (lt_env_seal(s, &specs[0], &outs[done], &lens[done], &why) != LT_OK)
                die("seal", &why);
            done++;
        } else {
            if (lt_env_seal_batch(s, specs, n, &outs[done], &lens[done], &why) != LT_OK)
                die("seal batch", &why);
            done += n;
        }
    }
}

static double measure_sign(lt_signer *s, size_t n, double secs)
{
    lt_env_spec specs[256];
    for (size_t i = 0; i < 256; i++)
        specs[i] = spec();
    uint8_t *outs[256];
    size_t lens[256], count = 0;
    lt_why why;
    double t0 = mono(), t;
    do {
        if (n == 0) {
            for (int k = 0; k < 16; k++) {
                if (lt_env_seal(s, &specs[0], &outs[0], &lens[0], &why) != LT_OK)
                    die("seal", &why);
                free(outs[0]);
                count++;
            }
        } else {
            if (lt_env_seal_batch(s, specs, n, outs, lens, &why) != LT_OK)
                die("seal batch", &why);
            for (size_t i = 0; i < n; i++)
                free(outs[i]);
            count += n;
        }
        t = mono() - t0;
    } while (t < secs);
    return (double)count / t;
}

static double measure_verify(const char *ca, const char *crl, lt_signer *s, size_t n,
                             double secs)
{
    uint8_t **outs = calloc(POOL, sizeof *outs);
    size_t *lens = calloc(POOL, sizeof *lens), count = 0;
    lt_why why;
    double spent = 0;
    int64_t now = lt_env_now_ms();
    while (spent < secs) {
        seal_pool(s, n, outs, lens); /* fresh envelopes: new roots, new signatures */
        lt_trust *t = NULL;
        if (lt_trust_open(ca, crl, NULL, &t, &why) != LT_OK)
            die("trust", &why);
        double t0 = mono();
        for (size_t i = 0; i < POOL; i++) {
            lt_env *env = NULL;
            if (lt_env_decode(outs[i], lens[i], NULL, &env, &why) != LT_OK ||
                lt_env_verify(env, t, now, &why) != LT_OK)
                die("verify", &why);
            lt_env_destroy(&env);
        }
        spent += mono() - t0;
        count += POOL;
        lt_trust_destroy(&t);
        for (size_t i = 0; i < POOL; i++)
            free(outs[i]);
    }
    free(outs);
    free(lens);
    return (double)count / spent;
}

/* The signature alone: POOL distinct 32-byte roots signed once, then verified over and
 * over with the certificate held (lt_trust_cert_verify caches no result: every call is the
 * full check), on this thread's CPU clock. Returns the verify rate; *sign_rate the signing
 * rate. */
static double measure_sig(const char *ca, const char *crl, lt_signer *s, double secs,
                          double *sign_rate)
{
    typedef struct {
        uint8_t root[32], sig[LT_PKI_SIG_MAX];
        size_t sig_len;
    } signed_root;
    signed_root *pool = calloc(POOL, sizeof *pool);
    if (pool == NULL)
        die("out of memory", NULL);
    lt_why why;
    double t0 = mono();
    for (size_t i = 0; i < POOL; i++) {
        if (lt_pki_random(pool[i].root, sizeof pool[i].root, &why) != LT_OK ||
            lt_signer_sign(s, LT_PKI_DOMAIN_BATCH, pool[i].root, sizeof pool[i].root,
                           pool[i].sig, &pool[i].sig_len, &why) != LT_OK)
            die("sign", &why);
    }
    *sign_rate = POOL / (mono() - t0);

    size_t der_len = 0;
    const uint8_t *der = lt_signer_cert_der(s, &der_len);
    lt_trust *t = NULL;
    lt_trust_cert cert = {0};
    if (lt_trust_open(ca, crl, NULL, &t, &why) != LT_OK ||
        lt_trust_cert_hold(t, der, der_len, NULL, lt_env_now_ms(), &cert, &why) != LT_OK)
        die("trust", &why);
    size_t count = 0;
    double spent = 0;
    while (spent < secs) {
        t0 = mono();
        for (size_t i = 0; i < POOL; i++)
            if (lt_trust_cert_verify(&cert, LT_PKI_DOMAIN_BATCH, pool[i].root,
                                     sizeof pool[i].root, pool[i].sig, pool[i].sig_len,
                                     &why) != LT_OK)
                die("verify", &why);
        spent += mono() - t0;
        count += POOL;
    }
    lt_trust_cert_rele(&cert);
    lt_trust_destroy(&t);
    free(pool);
    return (double)count / spent;
}

int main(int argc, char **argv)
{
    double secs = 1.0;
    const char *only = NULL, *only_mode = NULL;
    int c;
    while ((c = getopt(argc, argv, "t:a:m:h")) != -1) {
        if (c == 't')
            secs = atof(optarg);
        else if (c == 'a')
            only = optarg;
        else if (c == 'm')
            only_mode = optarg;
        else {
            fprintf(stderr, "usage: bench_sigbench [-t SECONDS] [-a ecdsa-p256|ed25519|rsa2048]"
                            " [-m single|batch16|batch64|batch256|sig]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    static const lt_sig_alg algs[] = {LT_SIG_ECDSA_P256, LT_SIG_ED25519, LT_SIG_RSA2048};
    static const size_t batches[] = {0, 16, 64, 256};
    printf("# alg mode sign/s verify/s  (envelopes per CPU second, one thread, %.1f s each)\n", secs);
    for (size_t a = 0; a < 3; a++) {
        if (only != NULL && strcmp(only, lt_sig_alg_name(algs[a])) != 0)
            continue;
        char dir[256], key[300], cert[300], ca[300], crl[300];
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/lt-sigbench-XXXXXX", tmp);
        if (mkdtemp(dir) == NULL)
            die("mkdtemp", NULL);
        lt_why why;
        if (lt_devpki_fixture(dir, algs[a], lt_env_now_ms(), &why) != LT_OK)
            die("fixture", &why);
        snprintf(key, sizeof key, "%s/a.key.pem", dir);
        snprintf(cert, sizeof cert, "%s/a.cert.pem", dir);
        snprintf(ca, sizeof ca, "%s/ca.cert.pem", dir);
        snprintf(crl, sizeof crl, "%s/crl.pem", dir);
        lt_signer *s = NULL;
        if (lt_signer_open(key, cert, &s, &why) != LT_OK)
            die("signer", &why);
        for (size_t b = 0; b < 4; b++) {
            char mode[32];
            if (batches[b] == 0)
                snprintf(mode, sizeof mode, "single");
            else
                snprintf(mode, sizeof mode, "batch%zu", batches[b]);
            if (only_mode != NULL && strcmp(only_mode, mode) != 0)
                continue;
            double sign = measure_sign(s, batches[b], secs);
            double verify = measure_verify(ca, crl, s, batches[b], secs);
            printf("%s %s %.0f %.0f\n", lt_sig_alg_name(algs[a]), mode, sign, verify);
            fflush(stdout);
        }
        if (only_mode == NULL || strcmp(only_mode, "sig") == 0) {
            double sign = 0, verify = measure_sig(ca, crl, s, secs, &sign);
            printf("%s sig %.0f %.0f\n", lt_sig_alg_name(algs[a]), sign, verify);
            fflush(stdout);
        }
        lt_signer_destroy(&s);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}
