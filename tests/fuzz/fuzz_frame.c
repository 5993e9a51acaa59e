/* fuzz_frame.c - the broker's PUBLISH fast path (frontend.c) against protobuf-c. Whatever
 * lt_fe_parse_publish accepts, protobuf_c must unpack as a Frame holding a Publish with the
 * same tag, envelope bytes, deliver_at, batched_ack and hops; lt_fe_peek_tag must never read out of
 * bounds. */
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
    static lt_fe_publish fp;
    if (!lt_fe_parse_publish(data, size, &fp))
        return 0;
    if (fp.env < data || fp.env + fp.env_len > data + size)
        __builtin_trap();
    Lienthong__V1__Frame *f = lienthong__v1__frame__unpack(NULL, size, data);
    if (!f || f->kind_case != LIENTHONG__V1__FRAME__KIND_PUBLISH || f->publish->tag != fp.tag ||
        f->publish->envelope.len != fp.env_len ||
        (fp.env_len && memcmp(f->publish->envelope.data, fp.env, fp.env_len) != 0) ||
        f->publish->deliver_at_unix_ms != fp.deliver_at ||
        (f->publish->batched_ack != 0) != fp.batched_ack || f->publish->n_hops != fp.nhops)
        __builtin_trap();
    for (size_t i = 0; i < fp.nhops; i++)
        if (strcmp(f->publish->hops[i], fp.hops[i]) != 0)
            __builtin_trap();
    lienthong__v1__frame__free_unpacked(f, NULL);
    return 0;
}
