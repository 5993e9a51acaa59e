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

#include "err.h"

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

#endif
