/*
 * fuzz_pack.c - the store's packs and their pools (broker/store_msg.c), from two sides:
 *
 *   byte 0 even: the rest is envelopes, each [len u16 big-endian][bytes] (the last may be
 *     cut short). Each is appended in one batch (its certificate left out when it has one
 *     Envelope.certificate field at the top level, key id = SHA-256 of it, as the verifier
 *     vouches; bit 1 of byte 0: with hops) and must read back byte for byte, from the open
 *     batch's pack and again from the pack once written. Any bytes: what the store cannot
 *     walk it stores as it is.
 *   byte 0 odd: the rest is a pack value as found on disk. Reading its records must give a
 *     message or an error, never a read outside the value (ASan) or a crash.
 *
 * One store in a temporary directory serves every input; each input's batch is aborted.
 * The seeds in corpus/pack/: envelopes of the envelope corpus, and a pack with a pool written
 * by a batch-64 run of bench_lt_load.
 */
#include "broker_int.h"
#include "envelope.h"
#include "pki.h"
#include "store_int.h"

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENV_MAX 8

static lt_store *S;
static uint32_t Q;
static char DIR_[256];
static uint32_t next_id;

static void cleanup(void)
{
    lt_store_close(&S);
    const char *files[] = {"data.mdb", "lock.mdb", "broker.lock"};
    char p[300];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", DIR_, files[i]);
        unlink(p);
    }
    rmdir(DIR_);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(DIR_, sizeof DIR_, "%s/lt_fuzz_pack_XXXXXX", tmp ? tmp : "/tmp");
    lt_why why;
    lt_store_opts o = {.dir = DIR_, .map_size = 256ULL << 20, .dedup_window_ms = 60000};
    lt_store_queue_limits lim = {0, 0, 0};
    if (!mkdtemp(DIR_) || lt_store_open(&S, &o, &why) ||
        lt_store_queue_declare(S, "q", &lim, &Q, &why)) {
        fprintf(stderr, "fuzz_pack: no store in %s\n", DIR_);
        abort();
    }
    atexit(cleanup);
}

/* Where Envelope.certificate lies, as the verifier finds it (lt_verify_cert_field); its
 * key id is the SHA-256 of its DER, as the verifier vouches. */
static bool find_cert(const uint8_t *p, size_t n, lt_store_cert *c, uint8_t key_id[32])
{
    size_t der_off, der_len;
    if (!lt_verify_cert_field(p, n, &c->field_off, &c->field_len, &der_off, &der_len) ||
        der_len == 0 || lt_pki_sha256(p + der_off, der_len, key_id, NULL) != LT_OK)
        return false;
    c->der = p + der_off;
    c->der_len = der_len;
    c->key_id = key_id;
    return true;
}

static void same_or_trap(lt_err err, const lt_store_entry *e, const uint8_t *env, size_t len)
{
    if (err != LT_OK || e->env_len != len || memcmp(e->env, env, len) != 0)
        __builtin_trap();
}

static void round_trip(const uint8_t *data, size_t size, bool hops)
{
    const uint8_t *env[ENV_MAX];
    size_t len[ENV_MAX], n = 0;
    uint64_t seq[ENV_MAX];
    while (size > 0 && n < ENV_MAX) {
        size_t l = size >= 2 ? (size_t)data[0] << 8 | data[1] : 0, at = size >= 2 ? 2 : size;
        if (l > size - at)
            l = size - at;
        env[n] = data + at;
        len[n] = l;
        data += at + l;
        size -= at + l;
        if (l > 0)
            n++;
    }
    const char *names[] = {"a", "b"};
    uint8_t hb[LT_STORE_HOPS_BYTES];
    size_t hl = 0;
    lt_why why;
    if ((hops && lt_store_hops_encode(names, 2, hb, &hl)) || lt_store_begin(S, &why))
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        lt_store_cert c;
        uint8_t key_id[32], id[16] = {1};
        memcpy(id + 12, &(uint32_t){++next_id}, 4);
        lt_store_msgkey k = {.id = id,
                             .source = "VN:GOV:000.00.00.H29:fuzz",
                             .payload_sha256 = key_id,
                             .signer_key_id = key_id};
        bool dup;
        memset(key_id, 0, sizeof key_id);
        bool strip = find_cert(env[i], len[i], &c, key_id);
        if (lt_store_append_hops(S, &k, &Q, 1, env[i], len[i], strip ? &c : NULL, hops ? hb : NULL,
                                 hl, 1000, 0, &seq[i], &dup, &why) ||
            dup)
            __builtin_trap();
    }
    store_rbuf rb = {NULL, 0};
    lt_store_entry e;
    for (size_t i = 0; i < n; i++) /* from the open batch's pack */
        same_or_trap(store_msg_read_batch(S, seq[i], &e, &rb, &why), &e, env[i], len[i]);
    if (store_msg_flush(S, S->txn))
        __builtin_trap();
    for (size_t i = 0; i < n; i++) /* from the pack written */
        same_or_trap(store_msg_read(S, S->txn, seq[i], &e, &rb, &why), &e, env[i], len[i]);
    free(rb.p);
    lt_store_abort(S);
}

static void read_pack(const uint8_t *data, size_t size)
{
    lt_why why;
    if (lt_store_begin(S, &why))
        __builtin_trap();
    uint8_t kb[8] = {0, 0, 1, 0, 0, 0, 0, 0}, zero[32] = {0};
    MDB_val k = {8, kb}, v = {size, (void *)data}, ck = {32, zero}, cv = {5, "DER!!"};
    /* a certificate the records may name: key id all zero */
    if (mdb_put(S->txn, S->certs, &ck, &cv, 0) || mdb_put(S->txn, S->mpack, &k, &v, 0))
        __builtin_trap();
    uint64_t first = size >= 8 ? get64(data) : 1;
    store_rbuf rb = {NULL, 0};
    for (uint64_t i = 0; i < 64 && first + i < get64(kb); i++) {
        lt_store_entry e;
        (void)store_msg_read(S, S->txn, first + i, &e, &rb, &why);
    }
    free(rb.p);
    lt_store_abort(S);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    if (!S)
        setup();
    if (data[0] & 1)
        read_pack(data + 1, size - 1);
    else
        round_trip(data + 1, size - 1, data[0] & 2);
    return 0;
}
