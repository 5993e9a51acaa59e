/*
 * admin.h - the broker's admin HTTP/1.1 server: health, readiness, Prometheus metrics, the
 * JSON API and the embedded dashboard, on the daemon's libuv loop.
 *
 * Requests are parsed by http-parser (Debian libhttp-parser-dev); nothing here parses HTTP by
 * hand. Routes:
 *   GET /healthz                 alive (no token)
 *   GET /readyz                  store open, trust root loaded, CRL not expired, disk space
 *                                above min_free_bytes; 200 or 503 with each check's reason
 *                                (no token)
 *   GET /, /app.js, /style.css   the dashboard (no token: static files; the page asks for
 *                                the token and sends it with every API call)
 *   GET /metrics                 Prometheus text 0.0.4                         (token)
 *   GET /api/v1/overview         totals, queue summary, gauges, latency        (token)
 *   GET /api/v1/agencies         per agency counts, rejects by reason, last exchange
 *   GET /api/v1/queues           per queue depth, unacked, oldest age, DLQ depth, counters
 *   GET /api/v1/dlq/<queue>      dead letters' metadata; payload only with ?payload=1;
 *                                ?limit=N (default 100, max 1000)
 *   GET /api/v1/rejections       the newest rejections with reasons; ?limit=N
 *   GET /api/v1/dossiers/<code>  a dossier of a procedure: state, steps against their
 *                                allowances, events with their envelopes (base64);
 *                                ?limit=N events (default 1000, max 10000)
 *   GET /api/v1/dossiers?late=1  open dossiers late or due within ?within_h=N (default 24)
 *                                hours, by agency; ?limit=N (default 1000, max 10000)
 * Every route but the four unauthenticated ones needs "Authorization: Bearer <token>"
 * (compared in constant time); a missing or wrong token gets 401 with WWW-Authenticate.
 * HEAD is answered like GET without a body; other methods get 405. Limits: header bytes,
 * body bytes, open connections, request time, idle time; a request over a limit gets
 * 431 / 413 / 408 and the connection is closed; bytes that are not HTTP get 400. Keep-alive
 * and pipelining are supported; responses go out in request order.
 *
 * Slow clients (slowloris) cannot hold the server:
 *   - Request deadline: a request's head and body must all arrive within request_timeout_ms,
 *     counted from the accept for a connection's first request and from the first byte of
 *     each later one. Bytes arriving do not extend it; past it the client gets 408 and the
 *     connection is closed. Between keep-alive requests idle_timeout_ms applies instead.
 *   - Eviction: when a connection arrives and max_conns are open, the open connection that
 *     has waited longest for a complete request (since its accept or its last answered
 *     request; idle keep-alive connections included) is closed to make room. Connections
 *     being answered (response still being written, or closing) are never chosen; only if
 *     every one is, the newcomer gets 503. An attacker who opens more connections evicts
 *     its own oldest ones first, and a probe that sends its request at once is answered
 *     before it could become the oldest, so /healthz, /readyz and /metrics stay reachable.
 *
 * The daemon's config (broker.yaml, read by broker/broker_config.h) feeds lt_admin_config:
 *     broker:
 *       admin:
 *         listen: 127.0.0.1:7401     # host:port, [::1]:7401 for IPv6 (lt_admin_parse_listen)
 *         token_file: admin.token    # first line is the bearer token, >= 16 characters
 *         allow_remote: false        # needed to listen on a non-loopback address
 *         min_free_disk_mb: 1024     # /readyz fails below this
 * `lienthong top -c broker.yaml` reads the same listen and token_file keys.
 *
 * Threads: everything here runs on the loop thread given to lt_admin_start, including the
 * provider's callbacks (keep them short: a read transaction, not a scan of the store).
 */
#ifndef LT_BROKER_ADMIN_H
#define LT_BROKER_ADMIN_H

#include "err.h"
#include "metrics.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LT_ADMIN_DEFAULT_HOST "127.0.0.1"
#define LT_ADMIN_DEFAULT_PORT 7401
#define LT_ADMIN_TOKEN_MIN 16
/* Defaults of lt_admin_config (there are no config file keys for these). */
#define LT_ADMIN_MAX_CONNS 64
#define LT_ADMIN_MAX_HEADER_BYTES 8192
#define LT_ADMIN_MAX_BODY_BYTES 16384
#define LT_ADMIN_REQUEST_TIMEOUT_MS 10000 /* whole request, head and body */
#define LT_ADMIN_IDLE_TIMEOUT_MS 30000    /* between keep-alive requests */

typedef struct lt_admin lt_admin;
typedef struct lt_admin_session lt_admin_session;

typedef struct lt_admin_config {
    const char *host;         /* numeric IPv4/IPv6 address or "localhost" */
    uint16_t port;            /* 0: an ephemeral port (see lt_admin_port) */
    bool allow_remote;        /* must be true to listen on a non-loopback address */
    const char *token;        /* the bearer token, >= LT_ADMIN_TOKEN_MIN bytes; copied */
    const char *data_dir;     /* store directory: its file system's free space is checked
                                 by /readyz and exported as gauges; NULL: not checked */
    uint64_t min_free_bytes;  /* /readyz fails below this much free space */
    size_t max_conns;         /* open connections; past it the one waiting longest for a
                                 request is evicted (see the top of this file) */
    size_t max_header_bytes;  /* request line + headers; more -> 431 */
    size_t max_body_bytes;    /* request body; more -> 413 */
    unsigned request_timeout_ms; /* a request not complete this long after it began (or
                                    after the accept, for the first) -> 408 */
    unsigned idle_timeout_ms; /* a keep-alive connection with no new request this long
                                 after its last one is closed */
} lt_admin_config;

/* What /readyz needs from the daemon. Reasons are shown to the operator as they are. */
typedef struct lt_admin_status {
    bool store_open;
    bool trust_loaded;
    bool crl_configured;
    int64_t crl_next_update; /* Unix seconds; the CRL is expired from then on */
    char store_reason[LT_WHY_MAX]; /* e.g. the LMDB path, or why it is not open */
    char trust_reason[LT_WHY_MAX]; /* e.g. the trust root's subject, or the load error */
} lt_admin_status;

/* The daemon's side of the admin API. Every callback is optional (NULL): a route that
 * needs a missing one answers 501 ("not available") or leaves its part out. Callbacks run
 * on the loop thread; on LT_OK they hand *out to the caller (admin.c puts it). */
typedef struct lt_admin_provider {
    void *ctx;
    /* Fill *st (zeroed before the call) for /readyz. */
    void (*status)(void *ctx, lt_admin_status *st);
    /* Extra overview fields (store path, config, federation links...), shown under
     * "broker" in /api/v1/overview. */
    lt_err (*overview)(void *ctx, json_object **out);
    /* An object keyed by queue name whose values (owner agency, patterns, limits) are
     * merged into each queue of /api/v1/queues. */
    lt_err (*queues)(void *ctx, json_object **out);
    /* At most limit dead letters of queue, oldest first, as an array of objects in the
     * shape of the client protocol's dlq.ls: {"seq","message_id","source","topic",
     * "record_type","delivery_count","reason","dead_at_ms"}, and "envelope" (base64) only
     * when payload is true. LT_ENOQUEUE: no such queue (404). Other
     * errors: 500 with why. */
    lt_err (*dlq)(void *ctx, const char *queue, bool payload, size_t limit,
                  json_object **out, lt_why *why);
    /* GET /api/v1/dossiers/<code>[?limit=N]: one dossier's state, steps and its first limit
     * events (broker/dossier.h). LT_ENOTFOUND: 404 with why. */
    lt_err (*dossier)(void *ctx, const char *code, size_t limit, json_object **out,
                      lt_why *why);
    /* GET /api/v1/dossiers?late=1[&within_h=N][&limit=N]: open dossiers late or due within
     * within_ms, by agency. LT_ENOTFOUND (no procedures): 404 with why. */
    lt_err (*dossiers_due)(void *ctx, int64_t within_ms, size_t limit, json_object **out,
                           lt_why *why);
    /* /api/v1/links: an array, one object per link to another broker (broker/net_ops.c);
     * NULL: an empty array. */
    lt_err (*links)(void *ctx, json_object **out);
} lt_admin_provider;

/* An embedded dashboard file. The table is generated at build time from the files in
 * broker/ui (see broker/CMakeLists.txt and cmake/embed_ui.cmake). */
typedef struct lt_admin_asset {
    const char *path; /* "/index.html", "/app.js", ... */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} lt_admin_asset;
extern const lt_admin_asset lt_admin_assets[];
extern const size_t lt_admin_n_assets;

/* Fill cfg with the defaults: 127.0.0.1:7401, loopback only, no token (one must be set),
 * no data_dir, 1 GiB free, 64 connections, 8 KiB of headers, 16 KiB of body, 10 s per
 * request, 30 s idle (the LT_ADMIN_* constants above). lt_admin_new takes a zero max_conns,
 * max_header_bytes, request_timeout_ms or idle_timeout_ms to mean its default. */
void lt_admin_config_defaults(lt_admin_config *cfg);

/* Parse "host:port" / "[v6]:port" into host (cap bytes) and *port. LT_EINVAL with why. */
lt_err lt_admin_parse_listen(const char *s, char *host, size_t cap, uint16_t *port, lt_why *why);

/* True if host is a loopback address (127.0.0.0/8, ::1, "localhost"). */
bool lt_admin_is_loopback(const char *host);

/* Make a server for cfg (strings copied), reading metrics m and asking provider p (copied;
 * may be NULL). m is borrowed and must outlive the server. LT_ECONFIG with why: no token
 * or a short one, an unparsable host, or a non-loopback host without allow_remote;
 * LT_ENOMEM. Not listening yet. */
lt_err lt_admin_new(const lt_admin_config *cfg, lt_metrics *m, const lt_admin_provider *p,
                    lt_admin **out, lt_why *why);

/* Listen on cfg's address on loop. LT_EIO with why (address in use, no permission...);
 * LT_EINVAL if already started. Loop thread. */
lt_err lt_admin_start(lt_admin *a, uv_loop_t *loop, lt_why *why);

/* The port listened on (useful with port 0), or 0 before start. */
uint16_t lt_admin_port(const lt_admin *a);

/* Stop accepting and close every connection (responses not yet written are dropped).
 * Idempotent. Loop thread. */
void lt_admin_stop(lt_admin *a);

/* Stop a and release it; clears *a_p; accepts NULL. If handles are still closing, the
 * memory is released by their last close callback: run the loop (uv_run) before
 * uv_loop_close. Loop thread. */
void lt_admin_destroy(lt_admin **a_p);

/* A connection's request handling without a socket (used by the server for each
 * connection, and by tests and the fuzzer). On LT_OK *out is owned by the caller. */
lt_err lt_admin_session_new(lt_admin *a, lt_admin_session **out);

/* Parse len bytes of a connection's input, appending the responses of every request they
 * complete to out. Returns false when the connection must be closed once out is written
 * (Connection: close, a parse error, a limit); the session then ignores further input. */
bool lt_admin_session_feed(lt_admin_session *s, const char *data, size_t len,
                           lt_metrics_buf *out);

/* True while a request has begun (a byte of it arrived) and is not yet complete. */
bool lt_admin_session_is_mid_request(const lt_admin_session *s);

/* How many requests the session has completed (and answered) so far. */
uint64_t lt_admin_session_answered(const lt_admin_session *s);

/* Free a session; clears *s_p; accepts NULL. */
void lt_admin_session_destroy(lt_admin_session **s_p);

#endif
