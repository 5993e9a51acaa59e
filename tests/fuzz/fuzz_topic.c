/* fuzz_topic.c - topic and pattern grammar and matching. Input: "pattern\ntopic". The
 * checks and the matchers must agree: a valid pattern bound in a router matches a valid
 * topic exactly when lt_pattern_matches says so. */
#include "router.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char buf[4097];
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *pattern = buf, *topic = strchr(buf, '\n');
    if (topic)
        *topic++ = '\0';
    else
        topic = buf;
    lt_why why;
    bool pat_ok = lt_pattern_check(pattern, &why) == LT_OK;
    bool top_ok = lt_topic_check(topic, &why) == LT_OK;
    /* every valid topic is a valid pattern, and matches itself */
    if (top_ok && (lt_pattern_check(topic, &why) != LT_OK || !lt_pattern_matches(topic, topic)))
        __builtin_trap();
    bool m = lt_pattern_matches(pattern, topic);
    if (m && !(pat_ok && top_ok))
        __builtin_trap();
    lt_router *r;
    if (lt_router_new(&r) != LT_OK)
        return 0;
    lt_err b = lt_router_bind(r, pattern, 42, &why);
    if ((b == LT_OK) != pat_ok)
        __builtin_trap();
    uint32_t out[2];
    size_t n = 0;
    lt_err e = lt_router_match(r, topic, out, 2, &n, &why);
    if ((e == LT_OK) != top_ok)
        __builtin_trap();
    if (e == LT_OK && (n == 1) != m)
        __builtin_trap();
    if (lt_router_has_match(r, topic) != m)
        __builtin_trap();
    if (pat_ok && lt_router_unbind(r, pattern, 42) != LT_OK)
        __builtin_trap();
    lt_router_destroy(&r);
    return 0;
}
