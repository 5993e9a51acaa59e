/*
 * envelope_int.h - what envelope.c shares with envelope_memo.c: a verifying thread's memory
 * of work it has done before, so a stream of envelopes from a few signers in batches does
 * not repeat it. Not installed (cmake/install.cmake leaves *_int.h out).
 *
 * Both memos are per thread (no locks) and pure shortcuts: every answer is the one the full
 * computation gives. They may forget anything at any time (a full cache, no memory).
 */
#ifndef LT_LIB_ENVELOPE_INT_H
#define LT_LIB_ENVELOPE_INT_H

#include "envelope.h"
#include "err.h"
#include "lienthong/v1/envelope.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SHA-256 of a certificate (the signer key id), remembered for the last few certificates
 * this thread hashed: compared byte for byte, so a different certificate is hashed anew.
 * LT_ECRYPTO as lt_pki_sha256. */
lt_err lt_envmemo_cert_sha256(const uint8_t *der, size_t len, uint8_t out[32], lt_why *why);

/* A Merkle path this thread has verified: the tree of root (count leaves) holds node hash h
 * at (level, index), and every node on the way from there to the root, with its sibling,
 * is known. The memo keeps a few trees (one per batch in flight from each signer). */

/* Is the proof from h at (level, index) upwards made of known nodes, siblings[0..nsib)
 * being the carried siblings of levels level, level + 1, ...? True: it leads to root
 * (no hashing needed). False: unknown, or it differs; verify it by hashing. */
bool lt_envmemo_path_known(const uint8_t root[32], uint32_t count, unsigned level, uint64_t index,
                           const uint8_t h[32], const uint8_t *const *siblings, size_t nsib);

/* Remember a path verified by hashing to lead to root: node[l] is the node at level l on
 * the way up from leaf index (node[0] the leaf hash), siblings as carried (one per level
 * that has one). */
void lt_envmemo_path_add(const uint8_t root[32], uint32_t count, uint64_t index,
                         const uint8_t (*node)[32], size_t nlevels, const uint8_t *const *siblings,
                         size_t nsib);

/* ---- the flat decoder (envelope_flat.c) ---------------------------------------------- */

#define LT_ENV_FLAT_SIBLINGS 32 /* as many as lt_env_decode accepts */

/* An Envelope and its Header as protobuf-c structs in one allocation (free() it): the bytes
 * fields point into the allocation's own copy of the input, the strings are copied with
 * their NUL. has_header: the envelope had field 1 (hdr is then its decoded bytes). */
typedef struct lt_env_flat {
    Lienthong__V1__Envelope env;
    Lienthong__V1__BatchProof batch;
    Lienthong__V1__Header hdr;
    ProtobufCBinaryData siblings[LT_ENV_FLAT_SIBLINGS];
    bool has_header;
} lt_env_flat;

/* buf[0..len) decoded flat, when it has the plain shape every known encoder writes (each
 * field once, with its own wire type; no unknown field; ASCII strings; short varints; at
 * most LT_ENV_FLAT_SIBLINGS siblings). NULL otherwise - not an error: protobuf-c decides
 * what the other shapes mean - and NULL with *nomem set when out of memory. Either way what
 * it decodes equals what protobuf-c's unpack of the Envelope and then of its header bytes
 * gives. Thread-safe; buf is not kept. */
lt_env_flat *lt_env_flat_decode(const uint8_t *buf, size_t len, bool *nomem);

/* For tests and fuzzing: buf decoded by lt_env_flat_decode and by protobuf-c's unpack of the
 * Envelope and then of its header bytes. true when the flat decoder left it to protobuf-c
 * (*took false) or both give the same fields; false when they differ, or protobuf-c refuses
 * what the flat decoder took. */
bool lt_env_flat_agrees(const uint8_t *buf, size_t len, bool *took);

/* lt_env_decode through protobuf-c alone (the reference the flat decoder is tested
 * against), and whether an env came from the flat decoder. */
lt_err lt_env_decode_unpacked(const uint8_t *buf, size_t len, const lt_env_limits *lim,
                              lt_env **out, lt_why *why);
bool lt_env_is_flat(const lt_env *env);

#endif
