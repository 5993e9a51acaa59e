/* fuzz_hops.c - Publish.hops from outside (docs/network.md): a frame's hops, as the broker
 * takes them (frontend.c check_hops: each a broker name, fewer than LT_HOP_LIMIT), encoded
 * for the store (lt_store_hops_encode) must decode (lt_store_hops_decode) to the same
 * names; and the store's decoder, given the raw bytes as a stored block, must never read out
 * of bounds nor accept a block that does not end exactly after its last name. */
#include "broker_config.h"
#include "broker_int.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    const char *names[LT_STORE_HOPS_MAX];
    int n = lt_store_hops_decode(data, size, names);
    if (n >= 0) { /* a block that decodes re-encodes to itself */
        uint8_t again[LT_STORE_HOPS_BYTES + 64];
        size_t len = 0;
        bool short_names = true;
        for (int i = 0; i < n; i++)
            short_names = short_names && strlen(names[i]) <= 64;
        if (short_names && size <= sizeof again &&
            (lt_store_hops_encode(names, (size_t)n, again, &len) != LT_OK || len != size ||
             memcmp(again, data, size) != 0))
            __builtin_trap();
    }
    Lienthong__V1__Frame *f = lienthong__v1__frame__unpack(NULL, size, data);
    if (!f)
        return 0;
    if (f->kind_case == LIENTHONG__V1__FRAME__KIND_PUBLISH && f->publish->n_hops > 0 &&
        f->publish->n_hops < LT_HOP_LIMIT) {
        bool ok = true;
        for (size_t i = 0; i < f->publish->n_hops; i++)
            ok = ok && lt_broker_config_hop_name_ok(f->publish->hops[i]);
        uint8_t block[LT_STORE_HOPS_BYTES];
        size_t len = 0;
        if (ok) { /* what the frontend lets through, the store keeps and gives back */
            if (lt_store_hops_encode((const char *const *)f->publish->hops, f->publish->n_hops,
                                     block, &len) != LT_OK ||
                lt_store_hops_decode(block, len, names) != (int)f->publish->n_hops)
                __builtin_trap();
            for (size_t i = 0; i < f->publish->n_hops; i++)
                if (strcmp(names[i], f->publish->hops[i]) != 0)
                    __builtin_trap();
        }
    }
    lienthong__v1__frame__free_unpacked(f, NULL);
    return 0;
}
