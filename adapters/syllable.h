/*
 * syllable.h - is a word one well-formed Vietnamese syllable?
 *
 * Used by charset detection to score a decoding: text decoded under the right encoding is
 * made of Vietnamese syllables, text decoded under a wrong one mostly is not. The check is
 * phonotactic and spelling-based (onset, optional medial o/u, vowel nucleus, coda, at most
 * one tone mark, stop codas c/ch/p/t only with the acute or dot-below tone), not a
 * dictionary: it accepts some syllables nobody uses and rejects loanwords written with
 * f, j, w or z. Case must be all lower, all upper, or a capital then lower.
 * Pure functions; any thread.
 */
#ifndef LT_ADAPTERS_SYLLABLE_H
#define LT_ADAPTERS_SYLLABLE_H

#include <stdbool.h>
#include <stddef.h>

/* True if the len bytes at word are valid UTF-8 spelling exactly one Vietnamese syllable,
 * precomposed or decomposed (NFC or NFD). Anything else (empty, digits, punctuation,
 * several syllables, more than 8 letters) is false. */
bool lt_syllable_is_vietnamese(const char *word, size_t len);

#endif
