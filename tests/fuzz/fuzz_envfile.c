/*
 * fuzz_envfile.c - libFuzzer target: length-delimited envelope files (what `lienthong
 * verify` and `pub --file-envelopes` read) split by lt_envfile_next_mem, each record
 * decoded by lt_env_decode. Invariants: the reader always advances or stops, never reads
 * past the buffer, and every refusal carries a reason.
 */
#include "envelope.h"
#include "envfile.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_env_limits lim = lt_env_limits_default();
    size_t off = 0;
    for (unsigned n = 0; n < 4096; n++) {
        const uint8_t *item = NULL;
        size_t item_len = 0;
        lt_why why = {{0}};
        size_t before = off;
        lt_err e = lt_envfile_next_mem(data, size, &off, 1u << 20, &item, &item_len, &why);
        if (e == LT_ENOTFOUND)
            break;
        if (e != LT_OK) {
            if (why.msg[0] == '\0')
                abort();
            break;
        }
        if (off <= before || off > size || item < data || item + item_len > data + size)
            abort();
        lt_env *env = NULL;
        why.msg[0] = '\0';
        if (lt_env_decode(item, item_len, &lim, &env, &why) == LT_OK)
            lt_env_destroy(&env);
        else if (why.msg[0] == '\0')
            abort();
        if (env != NULL)
            abort();
    }
    return 0;
}
