/*
 * charset.h - Vietnamese legacy encodings to UTF-8 NFC, and back.
 *
 * Agency exports come as UTF-8 (with or without BOM), Windows-1258 (base letters plus
 * combining tone bytes), TCVN3/ABC (one byte per letter; toned capitals share the byte of
 * their small letter, so their case is lost and they decode as lowercase), VNI-Windows
 * (base letter then a trailing mark byte, plus 18 one-byte letters), or "double-encoded"
 * text: bytes of one of those read as Windows-1252 and saved again as UTF-8
 * ("ThÂµnh phÃ¨" for TCVN3 "Thành phố"). Every decoder is strict: a byte that is not
 * text in the encoding is an LT_EENCODING with its offset, never a silent '?'.
 *
 * Detection (LT_CHARSET_AUTO) decodes the whole input under every candidate and scores
 * the share of words that are well-formed Vietnamese syllables (syllable.h); the best
 * candidate wins if it reaches LT_CHARSET_MIN_SCORE, otherwise detection fails.
 *
 * Windows-1258 goes through glibc iconv (which composes tone marks where it can); NFC by
 * utf8proc. TCVN3, VNI and Windows-1252 use the tables of charset_tables.c.
 * Thread-safe: no shared mutable state (tables are built once under pthread_once); a
 * decoder object belongs to one thread at a time.
 */
#ifndef LT_ADAPTERS_CHARSET_H
#define LT_ADAPTERS_CHARSET_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lt_charset {
    LT_CHARSET_AUTO = 0,
    LT_CHARSET_UTF8 = 1,   /* "utf-8" (a leading BOM is dropped) */
    LT_CHARSET_CP1258 = 2, /* "cp1258", Windows-1258 */
    LT_CHARSET_TCVN3 = 3,  /* "tcvn3", TCVN 5712:1993 VN3 as used by the ABC fonts */
    LT_CHARSET_VNI = 4,    /* "vni", VNI-Windows */
    /* Double-encoded: text in the first charset whose bytes were read as Windows-1252 (or
     * Latin-1) and saved again as UTF-8. Named "<charset>+cp1252". */
    LT_CHARSET_UTF8_2X = 5,
    LT_CHARSET_CP1258_2X = 6,
    LT_CHARSET_TCVN3_2X = 7,
    LT_CHARSET_VNI_2X = 8,
} lt_charset;

#define LT_CHARSET_COUNT 9
/* Smallest share of words that must be Vietnamese syllables for detection to decide. */
#define LT_CHARSET_MIN_SCORE 0.6

/* Canonical name of cs ("utf-8", "tcvn3+cp1252"); "?" for a value not listed. */
const char *lt_charset_name(lt_charset cs);

/* Parse a charset name: the canonical names and the aliases utf8, windows-1258, abc,
 * vni-windows. Case-insensitive. LT_EINVAL (with the accepted names in why) if unknown. */
lt_err lt_charset_from_name(const char *name, lt_charset *cs, lt_why *why);

/* A decoder for one charset, reusable for many strings (readers decode field by field).
 * cs must not be LT_CHARSET_AUTO (LT_EINVAL). LT_ENOMEM, or LT_EENCODING if iconv lacks
 * CP1258. Close with lt_charset_decoder_close (accepts NULL, clears *d). */
typedef struct lt_charset_decoder lt_charset_decoder;
lt_err lt_charset_decoder_open(lt_charset cs, lt_charset_decoder **d, lt_why *why);
void lt_charset_decoder_close(lt_charset_decoder **d);
lt_charset lt_charset_decoder_charset(const lt_charset_decoder *d);

/* Decode len bytes at in. On LT_OK *out is a malloc'd NUL-terminated UTF-8 NFC string the
 * caller frees, *out_len its length without the NUL. LT_EENCODING when a byte sequence is
 * not text in the charset (why names the byte and its offset; a NUL byte counts as not
 * text), LT_ENOMEM. Outputs are written only on success. */
lt_err lt_charset_decoder_run(lt_charset_decoder *d, const uint8_t *in, size_t len,
                              char **out, size_t *out_len, lt_why *why);

/* One-shot decode. With LT_CHARSET_AUTO, detects first (lt_charset_detect) and fails as
 * it does. Same contract as lt_charset_decoder_run. */
lt_err lt_charset_decode(lt_charset cs, const uint8_t *in, size_t len, char **out_utf8,
                         size_t *out_len, lt_why *why);

/* Encode len bytes of UTF-8 text (normalized to NFC first) into cs, which must not be
 * AUTO. TCVN3 writes toned capitals with the byte of their small letter (case loss, see
 * above). The "+cp1252" charsets produce the double-encoded UTF-8 a Windows tool would
 * have written. On LT_OK *out is malloc'd (caller frees; NUL-terminated for convenience,
 * not counted in *out_len). LT_EENCODING: invalid UTF-8 input, or a character the charset
 * cannot write (why names it). LT_EINVAL, LT_ENOMEM. */
lt_err lt_charset_encode(lt_charset cs, const char *utf8, size_t len, uint8_t **out,
                         size_t *out_len, lt_why *why);

/* True if cutting the len bytes at s before byte pos would split one character of cs in
 * two: a UTF-8 sequence, a VNI base + mark pair, a CP1258 letter + combining tone. For the
 * "+cp1252" charsets, as for their UTF-8 outer form. pos 0 and pos >= len never split. */
bool lt_charset_cuts_char(lt_charset cs, const uint8_t *s, size_t len, size_t pos);

/* Result of scoring one candidate charset. */
typedef struct lt_charset_score {
    lt_charset cs;
    lt_err err;   /* LT_OK, or why the input does not decode under cs (then score < 0) */
    double score; /* valid / words, in [0,1]; 1 when there are no contested words */
    size_t words; /* words containing a non-ASCII character after decoding */
    size_t valid; /* of those, well-formed Vietnamese syllables */
} lt_charset_score;

/* Score every candidate charset for in (only UTF-8 based ones when it starts with a BOM),
 * best first (ties broken in the order utf-8, cp1258, vni, tcvn3, then the double-encoded
 * ones). Writes at most cap entries to scores, the count to *n. LT_ENOMEM only; an input
 * that decodes nowhere yields entries whose err is set. Pure ASCII input yields utf-8
 * alone with score 1 (every candidate decodes it the same). */
lt_err lt_charset_rank(const uint8_t *in, size_t len, lt_charset_score *scores, size_t cap,
                       size_t *n);

/* Detect the charset of in. On LT_OK *found is a concrete charset (never AUTO) and *score
 * its score (either may be NULL). LT_EENCODING with a readable reason when no candidate
 * decodes the input, or the best scores under LT_CHARSET_MIN_SCORE. LT_ENOMEM. */
lt_err lt_charset_detect(const uint8_t *in, size_t len, lt_charset *found, double *score,
                         lt_why *why);

#endif
