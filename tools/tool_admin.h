/*
 * tool_admin.h - what the commands that read the broker's admin HTTP API (top, links) share:
 * where the API is and its token, and one GET. Single-threaded, like the commands.
 */
#ifndef LT_TOOLS_TOOL_ADMIN_H
#define LT_TOOLS_TOOL_ADMIN_H

#include "err.h"

#include <json-c/json.h>
#include <stdbool.h>

typedef struct lt_admin_target {
    char host[256];
    char port[8];
    char token[512];
} lt_admin_target;

/* The admin options every such command takes, as given (NULL when absent). */
typedef struct lt_admin_args {
    const char *admin, *token_file, *config;
} lt_admin_args;

/* If argv[*i] is --admin URL, --token-file F or -c/--config FILE, take it (and its value:
 * *i moves past it) into a and return true. */
bool lt_admin_args_take(int argc, char **argv, int *i, lt_admin_args *a);

/* Where the admin API is and its token, for command cmd: the address from admin ("http://
 * host:port"), else config's broker.admin.listen, else 127.0.0.1:7401; the token from
 * token_file, else $LIENTHONG_ADMIN_TOKEN, else config's broker.admin.token_file. Each may
 * be NULL. 0 on success, else the exit status, with a message on stderr. */
int lt_admin_target_resolve(const char *cmd, const char *admin, const char *token_file,
                            const char *config, lt_admin_target *t);

/* GET path (one request per connection, "Connection: close", bounded reads); on LT_OK
 * *status is the HTTP status and *json the parsed body (NULL if it is not JSON, else
 * json_object_put it). LT_EIO / LT_EPROTO with why. */
lt_err lt_admin_http_get(const lt_admin_target *t, const char *path, int *status,
                         json_object **json, lt_why *why);

#endif
