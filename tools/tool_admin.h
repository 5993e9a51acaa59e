/*
 * tool_admin.h - what the commands that read the broker's admin HTTP API share (top,
 * trace): where the API is and its token, and one GET. Single-threaded, like the commands.
 */
#ifndef LT_TOOLS_TOOL_ADMIN_H
#define LT_TOOLS_TOOL_ADMIN_H

#include "err.h"
#include "ycfg.h"

#include <json-c/json.h>
#include <stdbool.h>

typedef struct lt_tool_admin {
    char host[256];
    char port[8];
    char token[512];
} lt_tool_admin;

/* Where the admin API is and its token: the address from admin ("http://host:port"), else
 * the broker config's broker.admin.listen (config: a broker.yaml), else 127.0.0.1:7401;
 * the token from token_file, else $LIENTHONG_ADMIN_TOKEN, else the config's
 * broker.admin.token_file. Each may be NULL. LT_EINVAL (a usage error: bad address, no
 * token), LT_ECONFIG / LT_EIO (a file) with why. */
lt_err lt_tool_admin_open(const char *admin, const char *token_file, const char *config,
                          lt_tool_admin *t, lt_why *why);

/* "http://host:port[/]" or "host:port" into t's address. */
bool lt_tool_admin_parse_url(const char *s, lt_tool_admin *t);

/* GET path; on LT_OK *status is the HTTP status and *json the parsed body (NULL if it is
 * not JSON; the caller puts it). LT_EIO / LT_EPROTO with why. */
lt_err lt_tool_admin_get(const lt_tool_admin *t, const char *path, int *status,
                         json_object **json, lt_why *why);

#endif
