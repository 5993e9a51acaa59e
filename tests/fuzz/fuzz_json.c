/*
 * fuzz_json.c - libFuzzer target for the JSON converter (lib/json.c).
 *
 * The input is tried as JSON text of every record type. Whatever parses must render back to
 * JSON, parse again, and pack to the very same bytes (the converter's round-trip invariant);
 * a difference aborts. The input is also tried as a binary payload of every record type and
 * rendered, which drives the protobuf -> JSON direction with arbitrary messages. Nothing may
 * crash or leak (ASan's leak checker runs at exit under libFuzzer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *pack(const ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*n ? *n : 1);
    if (buf == NULL)
        abort();
    if (protobuf_c_message_pack(m, buf) != *n)
        abort();
    return buf;
}

static void round_trip(const ProtobufCMessageDescriptor *desc, const char *text, size_t len)
{
    lt_why why;
    ProtobufCMessage *m = NULL;
    if (lt_json_parse_pb(desc, text, len, &m, &why) != LT_OK)
        return;
    char *again = NULL;
    if (lt_json_pb_to_string(m, &again, &why) != LT_OK) {
        fprintf(stderr, "%s: parsed but does not render: %s\n", desc->name, why.msg);
        abort();
    }
    ProtobufCMessage *m2 = NULL;
    if (lt_json_parse_pb(desc, again, strlen(again), &m2, &why) != LT_OK) {
        fprintf(stderr, "%s: rendered JSON does not parse: %s\n%s\n", desc->name, why.msg, again);
        abort();
    }
    size_t n1, n2;
    uint8_t *b1 = pack(m, &n1), *b2 = pack(m2, &n2);
    if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
        fprintf(stderr, "%s: JSON round trip changed the record:\n%s\n", desc->name, again);
        abort();
    }
    free(b1);
    free(b2);
    free(again);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    for (size_t i = 0; i < lt_records_count(); i++) {
        const ProtobufCMessageDescriptor *desc = lt_records_at(i)->desc;
        round_trip(desc, (const char *)data, size);
        char *json = NULL;
        lt_why why;
        if (lt_json_payload_to_string(desc->name, data, size, &json, &why) == LT_OK)
            free(json);
    }
    return 0;
}
