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

#include <json-c/json.h>
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

/* One operator request (lt_client_admin: op, queue, seqs/n, limit) over a connection of its
 * own: connect to endpoint (NULL: the config's) and authenticate as cfg_path's agency, ask,
 * disconnect. client_name is how we introduce ourselves to the broker. On LT_OK *json_out is
 * the broker's answer, to free(); errors are those of lt_tool_connect and lt_client_admin. */
lt_err lt_tool_admin(const char *cfg_path, const char *endpoint, const char *client_name,
                     const char *op, const char *queue, const uint64_t *seqs, size_t n,
                     uint32_t limit, char **json_out, lt_why *why);

/* The array in an admin answer: text itself when it is a JSON array, else its member key. On
 * success returns the array, borrowed from *root (json_object_put(*root) when done with it).
 * Otherwise prints "lienthong CMD: unexpected answer from the broker: ..." on stderr and
 * returns NULL with nothing held (*root NULL). */
json_object *lt_tool_answer_array(const char *text, const char *key, const char *cmd,
                                  json_object **root);

/* Lower-case hex of data[0..len) into out (room for 2 * len + 1). */
void lt_tool_hex(const uint8_t *data, size_t len, char *out);

/* Parse a decimal unsigned in [min, max] from s (the whole string). */
bool lt_tool_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse an ISO 8601 UTC time "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or +HH:MM offset) into ms since
 * the epoch. */
bool lt_tool_parse_iso8601(const char *s, int64_t *out_ms);

/* From now on SIGINT and SIGTERM only set the flag lt_tool_stopping() reads. No SA_RESTART:
 * a blocking lt_client_poll returns early, so the command's loop sees the flag at once. */
void lt_tool_catch_stop(void);

/* Whether SIGINT or SIGTERM arrived since lt_tool_catch_stop. */
bool lt_tool_stopping(void);

/* Monotonic ms. */
int64_t lt_tool_mono_ms(void);

#endif
