/*
 * tool_client.h - what the broker commands (pub, sub, queues, dlq) share: load an agency
 * config, open its signer, connect to its broker and authenticate; small output helpers.
 * Single-threaded, like the commands.
 */
#ifndef LT_TOOLS_TOOL_CLIENT_H
#define LT_TOOLS_TOOL_CLIENT_H

#include "client.h"
#include "config.h"
#include "pki.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_tool_conn {
    lt_agency_config *cfg;
    lt_signer *signer;
    lt_client *client;
} lt_tool_conn;

/* Load cfg_path, open its signer, connect to endpoint (NULL: the config's) and, when auth,
 * authenticate as the config's agency. On LT_OK *out holds all three (lt_tool_disconnect);
 * on error nothing is held and why says what failed. */
lt_err lt_tool_connect(const char *cfg_path, const char *endpoint, const lt_client_opts *opts,
                       bool auth, lt_tool_conn *out, lt_why *why);

/* Close the client and free the signer and config. Accepts a zeroed struct. */
void lt_tool_disconnect(lt_tool_conn *tc);

/* Lower-case hex of data[0..len) into out (room for 2 * len + 1). */
void lt_tool_hex(const uint8_t *data, size_t len, char *out);

/* Parse a decimal unsigned in [min, max] from s (the whole string). */
bool lt_tool_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or +HH:MM offset) into ms since
 * the epoch. */
bool lt_tool_parse_iso8601(const char *s, int64_t *out_ms);

/* Monotonic ms. */
int64_t lt_tool_mono_ms(void);

#endif
