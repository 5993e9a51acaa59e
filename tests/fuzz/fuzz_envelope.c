/*
 * fuzz_envelope.c - libFuzzer target: lt_env_decode, then lt_env_verify against a fixed trust
 * root at a fixed time, so every path of the verifier (hash, key id, certificate cache and
 * chain, CRL, agency, skew, batch proof, root cache, signature) is reachable from the input,
 * then lt_env_check_record (record type, schema version, the payload decoded as its type).
 *
 * The seeds in corpus/envelope/ are envelopes sealed at FUZZ_NOW_MS by agency certificates of
 * the CA below (made with lib/devpki.h and lt_env_seal; the keys were thrown away): a single
 * signature, a batch of 5 and one of 1, one from a revoked certificate (listed in the CRL
 * below), an empty payload, a truncated and a garbage input. The CA and CRL are valid until
 * 2126, so the seeds keep verifying.
 *
 * First, the flat decoder (lib/envelope_flat.c) must read whatever it takes exactly as
 * protobuf-c does, and lt_env_decode must answer as it does through protobuf-c alone.
 */
#include "envelope.h"
#include "envelope_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW_MS 1780272000000LL /* 2026-06-01T00:00:00Z */

static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB9TCCAZugAwIBAgIQW2ZQfuFbIbb3yLFqgea+vzAKBggqhkjOPQQDAjBJMQsw\n"
    "CQYDVQQGEwJWTjEZMBcGA1UECgwQbGllbnRob25nIChmdXp6KTEfMB0GA1UEAwwW\n"
    "bGllbnRob25nIGZ1enogcm9vdCBDQTAgFw0yNTA2MDEwMDAwMDBaGA8yMTI2MDUw\n"
    "ODAwMDAwMFowSTELMAkGA1UEBhMCVk4xGTAXBgNVBAoMEGxpZW50aG9uZyAoZnV6\n"
    "eikxHzAdBgNVBAMMFmxpZW50aG9uZyBmdXp6IHJvb3QgQ0EwWTATBgcqhkjOPQIB\n"
    "BggqhkjOPQMBBwNCAARSGzf19FFkYcNtBCr7ejX+VOAGEyyr8rFisNMXCmUIqh3t\n"
    "qECKaoUzbi2EaxhAd6wGEiqFwklXXaYw9wnfyVVjo2MwYTAPBgNVHRMBAf8EBTAD\n"
    "AQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUWNseAa+IxshlwiTocLlHjnVE\n"
    "KT8wHwYDVR0jBBgwFoAUWNseAa+IxshlwiTocLlHjnVEKT8wCgYIKoZIzj0EAwID\n"
    "SAAwRQIgaegsbcxkqmrLMRP0aymuFfCZ569lPjwm/LaFjFG7mqMCIQCHKyAdUJU2\n"
    "d0v1pdR9v3M2OGyGAcD4OhLyyqDLA/sZ+Q==\n"
    "-----END CERTIFICATE-----\n";

static const char crl_pem[] =
    "-----BEGIN X509 CRL-----\n"
    "MIH4MIGfAgEBMAoGCCqGSM49BAMCMEkxCzAJBgNVBAYTAlZOMRkwFwYDVQQKDBBs\n"
    "aWVudGhvbmcgKGZ1enopMR8wHQYDVQQDDBZsaWVudGhvbmcgZnV6eiByb290IENB\n"
    "Fw0yNjA1MzEwMDAwMDBaGA8yMTI2MDUwODAwMDAwMFowIzAhAhAN6emKkfyVs2Yx\n"
    "5vvASIN7Fw0yNjA1MzEwMDAwMDBaMAoGCCqGSM49BAMCA0gAMEUCIC3X2WOaErlL\n"
    "Mqua8e6NDcISIKvJFCztgnHrMWWILSdUAiEA5ZRQTgfzUy7NanhWyZHOyU2Ibvzk\n"
    "X25QwJ6R1+V29qM=\n"
    "-----END X509 CRL-----\n";

static lt_trust *trust;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (trust == NULL) {
        lt_why why;
        if (lt_trust_open_pem(ca_pem, strlen(ca_pem), crl_pem, strlen(crl_pem), NULL, &trust,
                              &why) != LT_OK)
            abort(); /* the fixture itself is broken: nothing below would be exercised */
    }
    bool took;
    if (!lt_env_flat_agrees(data, size, &took))
        abort();
    lt_env *env = NULL, *ref = NULL;
    lt_why why, rwhy;
    lt_err d = lt_env_decode(data, size, NULL, &env, &why);
    lt_err r = lt_env_decode_unpacked(data, size, NULL, &ref, &rwhy);
    if (d != r || (d != LT_OK && strcmp(why.msg, rwhy.msg) != 0))
        abort(); /* the same answer, for the same reason */
    lt_env_destroy(&ref);
    if (d != LT_OK)
        return 0;
    size_t n;
    (void)lt_env_payload(env, &n);
    (void)lt_env_header(env, &n);
    lt_err e = lt_env_verify(env, trust, FUZZ_NOW_MS, &why);
    if (e != LT_OK && strlen(why.msg) == 0)
        abort(); /* every refusal carries a reason */
    /* the record checks decode the payload (outside bytes) whatever the signature said */
    e = lt_env_check_record(env, &why);
    if (e != LT_OK && strlen(why.msg) == 0)
        abort();
    lt_env_destroy(&env);
    return 0;
}
