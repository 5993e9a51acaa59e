/*
 * fuzz_charset.c - detection and every decoder on arbitrary bytes; what decodes must
 * re-encode and decode to the same text.
 */
#include "charset.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_why why;
    lt_charset found;
    double score;
    if (lt_charset_detect(data, size, &found, &score, &why) == LT_OK)
        assert(found != LT_CHARSET_AUTO && score >= 0 && score <= 1);
    for (int cs = LT_CHARSET_AUTO; cs < LT_CHARSET_COUNT; cs++) {
        char *text = NULL;
        size_t n = 0;
        if (lt_charset_decode((lt_charset)cs, data, size, &text, &n, &why) != LT_OK)
            continue;
        assert(strlen(text) == n);
        /* UTF-8 out, NFC: re-encoding as UTF-8 is the identity */
        uint8_t *back = NULL;
        size_t bn = 0;
        if (lt_charset_encode(LT_CHARSET_UTF8, text, n, &back, &bn, &why) == LT_OK) {
            assert(bn == n && memcmp(back, text, n) == 0);
            free(back);
        }
        free(text);
    }
    return 0;
}
