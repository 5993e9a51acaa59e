/*
 * harness_admin.h - what the ops tests (it_metrics, it_dashboard) need around the broker's
 * admin server: the broker.yaml that `lienthong dev-init` writes, moved to the test's free
 * ports; the admin token; and an HTTP client (one GET per connection on 127.0.0.1, the
 * response parsed by http-parser, Debian libhttp-parser-dev, the parser the server uses),
 * every step bounded by a deadline. Single-threaded.
 */
#ifndef LT_TESTS_INTEGRATION_HARNESS_ADMIN_H
#define LT_TESTS_INTEGRATION_HARNESS_ADMIN_H

#include "harness.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A parsed response. body is malloc'ed and NUL-terminated (also when empty). */
typedef struct it_http_resp {
    int status;
    char *body;
    size_t len;
    char content_type[128]; /* "" when absent */
} it_http_resp;

/* GET path from 127.0.0.1:port, with "Authorization: Bearer <token>" unless token is NULL,
 * waiting at most timeout_ms for the whole response. On true *r holds the response (free
 * it with it_http_resp_fini); false (a message on stderr) when the connection failed, the
 * deadline passed or the bytes were not an HTTP response. */
bool it_http_get(unsigned port, const char *path, const char *token, int timeout_ms,
                 it_http_resp *r);

/* Free r's body and zero r. Accepts a zeroed r. */
void it_http_resp_fini(it_http_resp *r);

/* The first line of e's admin.token (written by dev-init), without its newline, into tok
 * (cap bytes). false if it cannot be read or is empty. */
bool it_admin_token(const it_env *e, char *tok, size_t cap);

/* Turn the broker.yaml dev-init wrote into e's (its listen and admin addresses replaced by
 * e's free ports, everything else as dev-init wrote it) and write it. false on failure. */
bool it_use_dev_init_config(it_env *e);

#endif
