/*
 * fuzz_bridge.c - libFuzzer target: what `lienthong bridge` and `lienthong sink --nats` take
 * from a NATS stream, where anyone with NATS access can write. Input:
 *   "<Nats-Msg-Id>\n<Lienthong-Topic>\n<Lienthong-Source>\n<Lienthong-Record-Type>\n" ENVELOPE
 * (an empty line: that header is absent). The envelope is decoded, the headers checked
 * against it (lt_bridge_hdrs_check), and the NATS message the bridge would build for it
 * (lt_bridge_msg_new: its subject from the envelope's topic) is built. Invariants: a built
 * message's subject is a literal NATS subject, its data is the envelope unchanged, and its
 * own headers agree with the envelope; every literal subject is also a valid filter.
 *
 * The seeds in corpus/bridge/ are the envelope seeds of corpus/envelope/ behind no headers,
 * behind forged ones, and a few subjects with bytes NATS refuses.
 */
#include "tool_bridge.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of data[*off..size) as a NUL-terminated copy in buf (NULL when empty). */
static const char *line(const uint8_t *data, size_t size, size_t *off, char *buf, size_t cap)
{
    size_t start = *off, end = start;
    while (end < size && data[end] != '\n')
        end++;
    *off = end < size ? end + 1 : end;
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(buf, data + start, n);
    buf[n] = '\0';
    return n > 0 ? buf : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool opened;
    if (!opened) {
        if (nats_Open(-1) != NATS_OK)
            abort();
        opened = true;
    }
    if (size > (1 << 20))
        return 0;
    char b[4][LT_BRIDGE_SUBJECT_MAX];
    size_t off = 0;
    lt_bridge_hdrs h = {
        line(data, size, &off, b[0], sizeof b[0]), line(data, size, &off, b[1], sizeof b[1]),
        line(data, size, &off, b[2], sizeof b[2]), line(data, size, &off, b[3], sizeof b[3])};
    lt_why why;
    /* the topic header as a subject: literal implies filter */
    if (h.topic != NULL && lt_bridge_subject_check(h.topic, false, &why) == LT_OK &&
        lt_bridge_subject_check(h.topic, true, &why) != LT_OK)
        __builtin_trap();
    const uint8_t *env_bytes = data + off;
    size_t len = size - off;
    lt_env *env = NULL;
    if (lt_env_decode(env_bytes, len, NULL, &env, &why) == LT_OK) {
        lt_bridge_hdrs_check(&h, env, &why);
        natsMsg *m = NULL;
        char id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
        if (lt_bridge_msg_new("national", env_bytes, len, &m, id, &why) == LT_OK) {
            const char *v[4] = {NULL, NULL, NULL, NULL};
            natsMsgHeader_Get(m, "Nats-Msg-Id", &v[0]);
            natsMsgHeader_Get(m, LT_BRIDGE_HDR_TOPIC, &v[1]);
            natsMsgHeader_Get(m, LT_BRIDGE_HDR_SOURCE, &v[2]);
            natsMsgHeader_Get(m, LT_BRIDGE_HDR_TYPE, &v[3]);
            lt_bridge_hdrs own = {v[0], v[1], v[2], v[3]};
            if (lt_bridge_subject_check(natsMsg_GetSubject(m), false, &why) != LT_OK ||
                natsMsg_GetDataLength(m) != (int)len ||
                memcmp(natsMsg_GetData(m), env_bytes, len) != 0 || v[0] == NULL ||
                strcmp(v[0], id) != 0 || lt_bridge_hdrs_check(&own, env, &why) != LT_OK)
                __builtin_trap();
            natsMsg_Destroy(m);
        }
        lt_env_destroy(&env);
    }
    return 0;
}
