/* fuzz_frame.c - the broker's PUBLISH fast path (frontend.c) against protobuf-c. Whatever
 * lt_fe_parse_publish accepts, protobuf_c must unpack as a Frame holding a Publish with the
 * same tag and the same envelope bytes; lt_fe_peek_tag must never read out of bounds. */
#include "broker_int.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    (void)lt_fe_peek_tag(data, size);
    uint64_t tag = 0;
    const uint8_t *env = NULL;
    size_t len = 0;
    if (!lt_fe_parse_publish(data, size, &tag, &env, &len))
        return 0;
    if (env < data || env + len > data + size)
        __builtin_trap();
    Lienthong__V1__Frame *f = lienthong__v1__frame__unpack(NULL, size, data);
    if (!f || f->kind_case != LIENTHONG__V1__FRAME__KIND_PUBLISH || f->publish->tag != tag ||
        f->publish->envelope.len != len ||
        (len && memcmp(f->publish->envelope.data, env, len) != 0))
        __builtin_trap();
    lienthong__v1__frame__free_unpacked(f, NULL);
    return 0;
}
