/*
 * router.h - topics, topic patterns, and the table that maps a topic to every queue bound
 * to a matching pattern. The same matcher serves the publish ACLs (acl.h).
 *
 * A topic is 1..LT_TOPIC_MAX_TOKENS dot-separated tokens, each non-empty and made of
 * [A-Za-z0-9_-], LT_TOPIC_MAX bytes at most: "79.760.hotich.khaisinh". A pattern is a topic
 * whose tokens may also be "*" (exactly one token) or, as the last token only, ">" (one or
 * more remaining tokens), as NATS subjects: "79.*.hotich.>" matches "79.760.hotich.khaisinh"
 * but not "79.760.hotich".
 *
 * The table is a trie over tokens. lt_router_match does no allocation and changes nothing,
 * so any number of threads may match concurrently; lt_router_bind/unbind mutate and need
 * exclusive access (the usual way: build a new router and swap the pointer).
 */
#ifndef LT_BROKER_ROUTER_H
#define LT_BROKER_ROUTER_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_TOPIC_MAX 255       /* bytes of a topic or pattern */
#define LT_TOPIC_MAX_TOKENS 16 /* tokens of a topic or pattern */

/* LT_OK if topic (NUL-terminated) is a valid concrete topic (no wildcards), else
 * LT_EBADTOPIC with the reason ("empty token at byte 3", "'*' in a topic"...). */
lt_err lt_topic_check(const char *topic, lt_why *why);

/* LT_OK if pattern is a valid pattern, else LT_EBADTOPIC with the reason. */
lt_err lt_pattern_check(const char *pattern, lt_why *why);

/* Whether a valid pattern matches a valid topic (false if either is invalid). One-off use;
 * for many patterns build a router. */
bool lt_pattern_matches(const char *pattern, const char *topic);

typedef struct lt_router lt_router;

/* New empty table, owned by the caller (lt_router_destroy). LT_ENOMEM. */
lt_err lt_router_new(lt_router **out);

/* Accepts NULL; clears *r. */
void lt_router_destroy(lt_router **r);

/* Bind pattern (copied) to value (a queue id; any uint32). Binding the same pair twice is
 * harmless. LT_EBADTOPIC: invalid pattern (reason in why); LT_ENOMEM. */
lt_err lt_router_bind(lt_router *r, const char *pattern, uint32_t value, lt_why *why);

/* Remove the binding pattern -> value. LT_ENOTFOUND if it was not bound. */
lt_err lt_router_unbind(lt_router *r, const char *pattern, uint32_t value);

/* Every value bound to a pattern matching topic, each once, in ascending order, into
 * out[0..*n). LT_OK with *n = 0 when nothing matches (the caller's NO_ROUTE).
 * LT_EBADTOPIC: topic invalid (reason in why); LT_ETOOBIG: more than max distinct values
 * match (out holds the max smallest). No allocation; thread-safe against other matches. */
lt_err lt_router_match(const lt_router *r, const char *topic, uint32_t *out, size_t max,
                       size_t *n, lt_why *why);

/* Whether any pattern matches topic (false for an invalid topic). No allocation. */
bool lt_router_has_match(const lt_router *r, const char *topic);

/* Number of (pattern, value) bindings. */
size_t lt_router_count(const lt_router *r);

#endif
