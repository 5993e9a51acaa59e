/*
 * admin.c - admin HTTP/1.1 server: http-parser for requests, libuv for sockets, metrics.c
 * and the daemon's provider for the data.
 *
 * Two layers. A session (lt_admin_session) turns a connection's bytes into responses with
 * no I/O of its own, so tests and the fuzzer drive it directly. The server wraps each
 * accepted uv_tcp_t in a conn holding a session and one timer.
 *
 * Slow clients. The timer is never restarted by bytes arriving, because a client sending one
 * byte every few seconds would then hold its connection forever (slowloris). A conn is in
 * one of three phases, each with its own single-shot timer:
 *   request  from the accept, or from the first byte of a keep-alive request, until that
 *            request is complete: request_timeout_ms, then 408 and close (on_deadline);
 *   idle     after a request is answered, until the next one begins: idle_timeout_ms, then
 *            close (on_idle); bytes that do not begin a request (stray CRLF) do not extend it;
 *   linger   after the last response: LINGER_MS of draining input, then close.
 * Eviction: past max_conns, a newcomer takes the slot of the live conn with the oldest
 * `waiting_since` (its accept, or its last answered request) that is not being answered
 * (no write pending, not closing or lingering). The attacker cannot push an honest probe
 * out by opening connections: each new one evicts the oldest waiting conn, which is the
 * attacker's own unless the probe itself has waited longer than all of them; a probe
 * that sends its request in one packet is answered on its first read. Only when every
 * conn is being answered is the newcomer refused with 503 (its slot is freed by LINGER_MS).
 * Limits are the LT_ADMIN_* defaults of admin.h; the daemon sets no others.
 *
 * Handle life cycle: a conn owns two handles (tcp, timer) and is freed in the second close
 * callback; the server struct is freed when its listener and every conn are closed, which
 * may be after lt_admin_destroy returned (the loop must run). Everything runs on the loop
 * thread.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <assert.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>

#define URL_MAX 2048
#define AUTH_MAX 512
#define FIELD_MAX 32
#define NAME_MAX_Q 128
#define WRITE_QUEUE_MAX (8u << 20) /* a client that does not read is dropped past this */
#define LINGER_MS 2000 /* after our last response, how long unread input is drained */

struct conn;

struct lt_admin {
    lt_admin_config cfg; /* strings below are our copies */
    char *host;
    char *token;
    size_t token_len;
    char *data_dir;
    lt_metrics *m;
    lt_admin_provider prov;

    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    bool stopping;
    bool destroyed; /* destroy was called: free when the last handle closes */
    uint16_t port;
    struct conn *conns;
    size_t nconns; /* conns in the list, closing ones included (freed in their callback) */
    size_t nlive;  /* conns not closing: the ones that hold a slot of max_conns */
};

struct lt_admin_session {
    lt_admin *a;
    http_parser parser;
    lt_metrics_buf *out;
    bool dead;
    int limit_status; /* 431 or 413 when a limit stopped the parse */
    /* the request being parsed */
    size_t header_bytes;
    size_t body_bytes;
    char url[URL_MAX];
    size_t url_len;
    char field[FIELD_MAX];
    size_t field_len; /* FIELD_MAX + 1: longer than any field we care about */
    bool in_value;
    bool value_is_auth;
    char auth[AUTH_MAX];
    size_t auth_len;
    bool auth_seen;
    bool in_request;   /* a request has begun and is not complete */
    uint64_t answered; /* requests completed so far */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    lt_admin *a;
    lt_admin_session *s;
    struct conn *prev, *next;
    int open_handles;
    bool closing;
    bool close_after_write;
    bool lingering;
    bool idle;              /* between keep-alive requests: the idle timer runs, not the
                               request deadline */
    uint64_t answered;      /* the session's answered count when last looked at */
    uint64_t waiting_since; /* loop ms of the accept or of the last answered request:
                               the eviction order */
    size_t writes_pending;
    uv_shutdown_t shut;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    char *data;
};

/* ---- configuration ---- */

void lt_admin_config_defaults(lt_admin_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = LT_ADMIN_DEFAULT_HOST;
    cfg->port = LT_ADMIN_DEFAULT_PORT;
    cfg->min_free_bytes = 1ull << 30;
    cfg->max_conns = LT_ADMIN_MAX_CONNS;
    cfg->max_header_bytes = LT_ADMIN_MAX_HEADER_BYTES;
    cfg->max_body_bytes = LT_ADMIN_MAX_BODY_BYTES;
    cfg->request_timeout_ms = LT_ADMIN_REQUEST_TIMEOUT_MS;
    cfg->idle_timeout_ms = LT_ADMIN_IDLE_TIMEOUT_MS;
}

lt_err lt_admin_parse_listen(const char *s, char *host, size_t cap, uint16_t *port, lt_why *why)
{
    if (s == NULL || *s == '\0')
        return lt_fail(why, LT_EINVAL, "admin listen address is empty");
    const char *h = s, *colon;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return lt_fail(why, LT_EINVAL, "admin listen '%s': expected [v6]:port", s);
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return lt_fail(why, LT_EINVAL, "admin listen '%s': expected host:port", s);
        hl = (size_t)(colon - s);
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return lt_fail(why, LT_EINVAL, "admin listen '%s': bad port", s);
    if (hl == 0 || hl >= cap)
        return lt_fail(why, LT_EINVAL, "admin listen '%s': bad host", s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return LT_OK;
}

bool lt_admin_is_loopback(const char *host)
{
    if (host == NULL)
        return false;
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

static const char *numeric_host(const char *host)
{
    return strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
}

lt_err lt_admin_new(const lt_admin_config *cfg, lt_metrics *m, const lt_admin_provider *p,
                    lt_admin **out, lt_why *why)
{
    if (cfg->token == NULL || strlen(cfg->token) < LT_ADMIN_TOKEN_MIN)
        return lt_fail(why, LT_ECONFIG, "admin.token: missing or shorter than %d characters",
                       LT_ADMIN_TOKEN_MIN);
    const char *host = cfg->host ? cfg->host : LT_ADMIN_DEFAULT_HOST;
    struct sockaddr_storage ss;
    const char *nh = numeric_host(host);
    if (uv_ip4_addr(nh, 0, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(nh, 0, (struct sockaddr_in6 *)&ss) != 0)
        return lt_fail(why, LT_ECONFIG, "admin.listen: '%s' is not a numeric IP address", host);
    if (!cfg->allow_remote && !lt_admin_is_loopback(host))
        return lt_fail(why, LT_ECONFIG,
                       "admin.listen: '%s' is not a loopback address; the admin API exposes "
                       "queues and dead letters, set admin.allow_remote: true to allow it",
                       host);
    lt_admin *a = calloc(1, sizeof *a);
    if (a == NULL)
        return LT_ENOMEM;
    a->cfg = *cfg;
    a->host = strdup(host);
    a->token = strdup(cfg->token);
    a->data_dir = cfg->data_dir ? strdup(cfg->data_dir) : NULL;
    if (a->host == NULL || a->token == NULL || (cfg->data_dir && a->data_dir == NULL)) {
        free(a->host);
        free(a->token);
        free(a->data_dir);
        free(a);
        return LT_ENOMEM;
    }
    a->token_len = strlen(a->token);
    a->cfg.host = a->host;
    a->cfg.token = a->token;
    a->cfg.data_dir = a->data_dir;
    if (a->cfg.max_conns == 0)
        a->cfg.max_conns = LT_ADMIN_MAX_CONNS;
    if (a->cfg.max_header_bytes == 0)
        a->cfg.max_header_bytes = LT_ADMIN_MAX_HEADER_BYTES;
    if (a->cfg.request_timeout_ms == 0)
        a->cfg.request_timeout_ms = LT_ADMIN_REQUEST_TIMEOUT_MS;
    if (a->cfg.idle_timeout_ms == 0)
        a->cfg.idle_timeout_ms = LT_ADMIN_IDLE_TIMEOUT_MS;
    a->m = m;
    if (p)
        a->prov = *p;
    *out = a;
    return LT_OK;
}

/* ---- responses ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* One complete response. keep: the connection stays open; head: no body. */
static void respond(lt_metrics_buf *out, int status, bool keep, bool head, const char *ctype,
                    const char *extra, const char *body, size_t len)
{
    lt_metrics_buf_printf(out,
                          "HTTP/1.1 %d %s\r\n"
                          "Content-Type: %s\r\n"
                          "Content-Length: %zu\r\n"
                          "Cache-Control: no-store\r\n"
                          "X-Content-Type-Options: nosniff\r\n"
                          "Connection: %s\r\n",
                          status, status_text(status), ctype, len, keep ? "keep-alive" : "close");
    if (extra)
        lt_metrics_buf_puts(out, extra);
    lt_metrics_buf_add(out, "\r\n", 2);
    if (!head)
        lt_metrics_buf_add(out, body, len);
}

static const char JSON_TYPE[] = "application/json; charset=utf-8";

static void respond_json(lt_admin_session *s, int status, bool keep, bool head,
                         const char *extra, json_object *o)
{
    size_t len = 0;
    const char *txt = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (txt == NULL) {
        txt = "{\"error\":\"out of memory\"}";
        len = strlen(txt);
        status = 500;
    }
    respond(s->out, status, keep, head, JSON_TYPE, extra, txt, len);
}

static void respond_error(lt_admin_session *s, int status, bool keep, bool head,
                          const char *extra, const char *msg)
{
    json_object *o = json_object_new_object();
    if (o) {
        json_object_object_add(o, "error", json_object_new_string(msg));
        json_object_object_add(o, "status", json_object_new_int(status));
    }
    if (o == NULL) {
        respond(s->out, 500, false, head, JSON_TYPE, NULL, "{}", 2);
        return;
    }
    respond_json(s, status, keep, head, extra, o);
    json_object_put(o);
}

/* ---- request helpers ---- */

/* Compare the presented bearer token with ours in time independent of where they differ
 * (only the presented length can show). */
static bool token_ok(const lt_admin *a, const char *hdr, size_t len)
{
    if (len < 7 || strncasecmp(hdr, "Bearer ", 7) != 0)
        return false;
    const char *t = hdr + 7;
    size_t tl = len - 7;
    while (tl > 0 && *t == ' ') {
        t++;
        tl--;
    }
    while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
        tl--;
    unsigned diff = (tl != a->token_len);
    for (size_t i = 0; i < a->token_len; i++)
        diff |= (unsigned char)a->token[i] ^ (unsigned char)(i < tl ? t[i] : 0);
    return diff == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode src[0..n) into dst (cap bytes, NUL-terminated). False if malformed, too
 * long, or it decodes to a NUL or a '/'. */
static bool pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || c == '/' || o + 1 >= cap)
            return false;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return o > 0;
}

/* Value of key in the query string q[0..n) (not decoded: our keys take digits and
 * words), copied into val; false if absent. */
static bool query_get(const char *q, size_t n, const char *key, char *val, size_t cap)
{
    size_t kl = strlen(key), i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        if (j - i > kl && memcmp(q + i, key, kl) == 0 && q[i + kl] == '=') {
            size_t vl = j - i - kl - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(val, q + i + kl + 1, vl);
            val[vl] = '\0';
            return true;
        }
        if (j - i == kl && memcmp(q + i, key, kl) == 0) {
            val[0] = '\0';
            return true;
        }
        i = j + 1;
    }
    return false;
}

static size_t query_limit(const char *q, size_t n, size_t dflt, size_t max)
{
    char v[24];
    if (!query_get(q, n, "limit", v, sizeof v))
        return dflt;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || x == 0)
        return dflt;
    return x > max ? max : (size_t)x;
}

/* Refresh the disk gauges from data_dir's file system; false (and reason) on failure. */
static bool disk_space(lt_admin *a, uint64_t *free_b, uint64_t *total_b)
{
    if (a->data_dir == NULL)
        return false;
    struct statvfs v;
    if (statvfs(a->data_dir, &v) != 0)
        return false;
    *free_b = (uint64_t)v.f_bavail * v.f_frsize;
    *total_b = (uint64_t)v.f_blocks * v.f_frsize;
    lt_metrics_set_gauge(a->m, LT_GAUGE_DISK_FREE, (int64_t)*free_b);
    lt_metrics_set_gauge(a->m, LT_GAUGE_DISK_TOTAL, (int64_t)*total_b);
    return true;
}

static void add_check(json_object *arr, const char *name, bool ok, const char *reason)
{
    json_object *c = json_object_new_object();
    if (c == NULL)
        return;
    json_object_object_add(c, "name", json_object_new_string(name));
    json_object_object_add(c, "ok", json_object_new_boolean(ok));
    json_object_object_add(c, "reason", json_object_new_string(reason));
    json_object_array_add(arr, c);
}

static void fmt_time(char *buf, size_t cap, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%lld", (long long)unix_s);
}

/* ---- routes ---- */

static void route_readyz(lt_admin_session *s, bool keep, bool head)
{
    lt_admin *a = s->a;
    lt_admin_status st;
    memset(&st, 0, sizeof st);
    bool have = a->prov.status != NULL;
    if (have)
        a->prov.status(a->prov.ctx, &st);
    json_object *o = json_object_new_object();
    json_object *checks = json_object_new_array();
    if (o == NULL || checks == NULL) {
        json_object_put(o);
        json_object_put(checks);
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    bool ready = true;
    char why[LT_WHY_MAX + 64];

    bool ok = have && st.store_open;
    snprintf(why, sizeof why, "%s", !have ? "the broker reports no status"
                                    : st.store_reason[0] ? st.store_reason
                                    : ok ? "store open" : "store not open");
    add_check(checks, "store", ok, why);
    ready &= ok;

    ok = have && st.trust_loaded;
    snprintf(why, sizeof why, "%s", !have ? "the broker reports no status"
                                    : st.trust_reason[0] ? st.trust_reason
                                    : ok ? "trust root loaded" : "trust root not loaded");
    add_check(checks, "trust_root", ok, why);
    ready &= ok;

    char when[40];
    if (!have) {
        ok = false;
        snprintf(why, sizeof why, "the broker reports no status");
    } else if (!st.crl_configured) {
        ok = true;
        snprintf(why, sizeof why, "no CRL configured");
    } else {
        fmt_time(when, sizeof when, st.crl_next_update);
        ok = (int64_t)time(NULL) < st.crl_next_update;
        snprintf(why, sizeof why, ok ? "CRL valid until %s" : "CRL expired at %s (next update missed)",
                 when);
    }
    add_check(checks, "crl", ok, why);
    ready &= ok;

    uint64_t fb = 0, tb = 0;
    if (a->data_dir == NULL) {
        ok = true;
        snprintf(why, sizeof why, "not checked (no data directory configured)");
    } else if (!disk_space(a, &fb, &tb)) {
        ok = false;
        snprintf(why, sizeof why, "cannot stat the data directory");
    } else {
        ok = fb >= a->cfg.min_free_bytes;
        snprintf(why, sizeof why, "%.1f MiB free of %.1f MiB (minimum %.1f MiB)",
                 (double)fb / 1048576.0, (double)tb / 1048576.0,
                 (double)a->cfg.min_free_bytes / 1048576.0);
    }
    add_check(checks, "disk", ok, why);
    ready &= ok;

    json_object_object_add(o, "ready", json_object_new_boolean(ready));
    json_object_object_add(o, "checks", checks);
    respond_json(s, ready ? 200 : 503, keep, head, NULL, o);
    json_object_put(o);
}

static void route_metrics(lt_admin_session *s, bool keep, bool head)
{
    uint64_t fb, tb;
    disk_space(s->a, &fb, &tb);
    lt_metrics_buf text = {0};
    if (lt_metrics_write_prometheus(s->a->m, &text) != LT_OK) {
        lt_metrics_buf_fini(&text);
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    respond(s->out, 200, keep, head, "text/plain; version=0.0.4; charset=utf-8", NULL,
            text.data ? text.data : "", text.len);
    lt_metrics_buf_fini(&text);
}

static void route_overview(lt_admin_session *s, bool keep, bool head)
{
    uint64_t fb, tb;
    disk_space(s->a, &fb, &tb);
    json_object *o = NULL;
    if (lt_metrics_json_overview(s->a->m, &o) != LT_OK) {
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    json_object *extra = NULL;
    if (s->a->prov.overview && s->a->prov.overview(s->a->prov.ctx, &extra) == LT_OK && extra)
        json_object_object_add(o, "broker", extra);
    respond_json(s, 200, keep, head, NULL, o);
    json_object_put(o);
}

static void route_links(lt_admin_session *s, bool keep, bool head)
{
    json_object *arr = NULL;
    lt_err e = s->a->prov.links ? s->a->prov.links(s->a->prov.ctx, &arr) : LT_OK;
    if (e == LT_OK && !arr)
        arr = json_object_new_array();
    if (e != LT_OK || !arr) {
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    respond_json(s, 200, keep, head, NULL, arr);
    json_object_put(arr);
}

static void route_queues(lt_admin_session *s, bool keep, bool head)
{
    json_object *arr = NULL;
    if (lt_metrics_json_queues(s->a->m, &arr) != LT_OK) {
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    json_object *extra = NULL;
    if (s->a->prov.queues && s->a->prov.queues(s->a->prov.ctx, &extra) == LT_OK && extra) {
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n; i++) {
            json_object *q = json_object_array_get_idx(arr, i), *name, *more;
            if (!json_object_object_get_ex(q, "name", &name) ||
                !json_object_object_get_ex(extra, json_object_get_string(name), &more) ||
                !json_object_is_type(more, json_type_object))
                continue;
            json_object_object_foreach(more, k, v)
            {
                if (!json_object_object_get_ex(q, k, NULL))
                    json_object_object_add(q, k, json_object_get(v));
            }
        }
        json_object_put(extra);
    }
    respond_json(s, 200, keep, head, NULL, arr);
    json_object_put(arr);
}

static void route_dlq(lt_admin_session *s, const char *rest, size_t rest_len, const char *q,
                      size_t qlen, bool keep, bool head)
{
    char name[NAME_MAX_Q];
    if (!pct_decode(rest, rest_len, name, sizeof name)) {
        respond_error(s, 404, keep, head, NULL, "no such queue");
        return;
    }
    if (s->a->prov.dlq == NULL) {
        respond_error(s, 501, keep, head, NULL, "dead-letter listing not available");
        return;
    }
    char v[8];
    bool payload = query_get(q, qlen, "payload", v, sizeof v) &&
                   (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    size_t limit = query_limit(q, qlen, 100, 1000);
    json_object *entries = NULL;
    lt_why why = {""};
    lt_err e = s->a->prov.dlq(s->a->prov.ctx, name, payload, limit, &entries, &why);
    if (e == LT_ENOQUEUE || e == LT_ENOTFOUND) {
        respond_error(s, 404, keep, head, NULL, "no such queue");
        return;
    }
    if (e != LT_OK) {
        respond_error(s, 500, keep, head, NULL, why.msg[0] ? why.msg : lt_err_str(e));
        return;
    }
    json_object *o = json_object_new_object();
    if (o == NULL) {
        json_object_put(entries);
        respond_error(s, 500, keep, head, NULL, "out of memory");
        return;
    }
    json_object_object_add(o, "queue", json_object_new_string(name));
    json_object_object_add(o, "payload", json_object_new_boolean(payload));
    json_object_object_add(o, "entries", entries ? entries : json_object_new_array());
    respond_json(s, 200, keep, head, NULL, o);
    json_object_put(o);
}

/* GET /api/v1/dossiers/<code> (rest: the code, percent-encoded) and /api/v1/dossiers?late=1 */
static void route_dossiers(lt_admin_session *s, const char *rest, size_t rest_len, const char *q,
                           size_t qlen, bool keep, bool head)
{
    const lt_admin_provider *p = &s->a->prov;
    json_object *o = NULL;
    lt_why why = {""};
    lt_err e;
    if (rest_len == 0) {
        char v[16];
        if (!query_get(q, qlen, "late", v, sizeof v) || strcmp(v, "1") != 0) {
            respond_error(s, 404, keep, head, NULL, "list dossiers with ?late=1");
            return;
        }
        if (p->dossiers_due == NULL) {
            respond_error(s, 501, keep, head, NULL, "dossiers not available");
            return;
        }
        int64_t within_h = 24;
        if (query_get(q, qlen, "within_h", v, sizeof v)) {
            char *end = NULL;
            long h = strtol(v, &end, 10);
            if (!*v || *end || h < 0 || h > 24 * 366) {
                respond_error(s, 400, keep, head, NULL, "within_h: hours 0..8784");
                return;
            }
            within_h = h;
        }
        e = p->dossiers_due(p->ctx, within_h * 3600000, query_limit(q, qlen, 1000, 10000), &o,
                            &why);
    } else {
        char code[NAME_MAX_Q];
        if (!pct_decode(rest, rest_len, code, sizeof code) || strchr(code, '/')) {
            respond_error(s, 404, keep, head, NULL, "no such dossier");
            return;
        }
        if (p->dossier == NULL) {
            respond_error(s, 501, keep, head, NULL, "dossiers not available");
            return;
        }
        e = p->dossier(p->ctx, code, query_limit(q, qlen, 1000, 10000), &o, &why);
    }
    if (e == LT_ENOTFOUND || e == LT_EINVAL) {
        respond_error(s, 404, keep, head, NULL, why.msg[0] ? why.msg : "no such dossier");
        return;
    }
    if (e != LT_OK) {
        respond_error(s, 500, keep, head, NULL, why.msg[0] ? why.msg : lt_err_str(e));
        return;
    }
    respond_json(s, 200, keep, head, NULL, o);
    json_object_put(o);
}

static const lt_admin_asset *find_asset(const char *path, size_t len)
{
    if (len == 1 && path[0] == '/') {
        path = "/index.html";
        len = strlen(path);
    }
    for (size_t i = 0; i < lt_admin_n_assets; i++)
        if (strlen(lt_admin_assets[i].path) == len &&
            memcmp(lt_admin_assets[i].path, path, len) == 0)
            return &lt_admin_assets[i];
    return NULL;
}

static bool path_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static const char CSP[] =
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'\r\n";

/* The whole request is parsed: answer it. */
static void handle(lt_admin_session *s, bool keep)
{
    lt_admin *a = s->a;
    unsigned method = s->parser.method;
    bool head = method == HTTP_HEAD;
    if (method != HTTP_GET && method != HTTP_HEAD) {
        respond_error(s, 405, keep, false, "Allow: GET, HEAD\r\n", "only GET and HEAD");
        return;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(s->url, s->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        respond_error(s, 400, false, head, NULL, "bad request target");
        return;
    }
    const char *path = s->url + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    const char *q = "";
    size_t qlen = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        q = s->url + u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
    }

    if (path_is(path, plen, "/healthz")) {
        json_object *o = json_object_new_object();
        if (o == NULL) {
            respond_error(s, 500, keep, head, NULL, "out of memory");
            return;
        }
        json_object_object_add(o, "status", json_object_new_string("ok"));
        json_object_object_add(o, "version", json_object_new_string(LT_VERSION));
        respond_json(s, 200, keep, head, NULL, o);
        json_object_put(o);
        return;
    }
    if (path_is(path, plen, "/readyz")) {
        route_readyz(s, keep, head);
        return;
    }
    const lt_admin_asset *asset = find_asset(path, plen);
    if (asset) {
        respond(s->out, 200, keep, head, asset->content_type, CSP, (const char *)asset->data,
                asset->len);
        return;
    }

    if (!s->auth_seen) {
        respond_error(s, 401, keep, head,
                      "WWW-Authenticate: Bearer realm=\"lienthong-admin\"\r\n",
                      "a bearer token is required");
        return;
    }
    if (!token_ok(a, s->auth, s->auth_len)) {
        respond_error(s, 401, keep, head,
                      "WWW-Authenticate: Bearer realm=\"lienthong-admin\", error=\"invalid_token\"\r\n",
                      "the bearer token is not valid");
        return;
    }

    static const char dlq_prefix[] = "/api/v1/dlq/";
    static const char dossier_prefix[] = "/api/v1/dossiers/";
    if (path_is(path, plen, "/metrics"))
        route_metrics(s, keep, head);
    else if (path_is(path, plen, "/api/v1/overview"))
        route_overview(s, keep, head);
    else if (path_is(path, plen, "/api/v1/queues"))
        route_queues(s, keep, head);
    else if (path_is(path, plen, "/api/v1/links"))
        route_links(s, keep, head);
    else if (path_is(path, plen, "/api/v1/agencies")) {
        json_object *arr = NULL;
        if (lt_metrics_json_agencies(a->m, &arr) != LT_OK) {
            respond_error(s, 500, keep, head, NULL, "out of memory");
            return;
        }
        respond_json(s, 200, keep, head, NULL, arr);
        json_object_put(arr);
    } else if (path_is(path, plen, "/api/v1/rejections")) {
        json_object *arr = NULL;
        if (lt_metrics_json_rejections(a->m, query_limit(q, qlen, 100, LT_METRICS_REJECT_RING),
                                       &arr) != LT_OK) {
            respond_error(s, 500, keep, head, NULL, "out of memory");
            return;
        }
        respond_json(s, 200, keep, head, NULL, arr);
        json_object_put(arr);
    } else if (plen > sizeof dlq_prefix - 1 &&
               memcmp(path, dlq_prefix, sizeof dlq_prefix - 1) == 0) {
        route_dlq(s, path + sizeof dlq_prefix - 1, plen - (sizeof dlq_prefix - 1), q, qlen,
                  keep, head);
    } else if (path_is(path, plen, "/api/v1/dossiers")) {
        route_dossiers(s, "", 0, q, qlen, keep, head);
    } else if (plen > sizeof dossier_prefix - 1 &&
               memcmp(path, dossier_prefix, sizeof dossier_prefix - 1) == 0) {
        route_dossiers(s, path + sizeof dossier_prefix - 1, plen - (sizeof dossier_prefix - 1),
                       q, qlen, keep, head);
    } else {
        respond_error(s, 404, keep, head, NULL, "no such resource");
    }
}

/* ---- http-parser callbacks ---- */

static bool count_header(lt_admin_session *s, size_t n)
{
    s->header_bytes += n;
    if (s->header_bytes > s->a->cfg.max_header_bytes) {
        s->limit_status = 431;
        return false;
    }
    return true;
}

static int on_message_begin(http_parser *p)
{
    lt_admin_session *s = p->data;
    s->header_bytes = 0;
    s->body_bytes = 0;
    s->url_len = 0;
    s->field_len = 0;
    s->in_value = false;
    s->value_is_auth = false;
    s->auth_len = 0;
    s->auth_seen = false;
    s->in_request = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    lt_admin_session *s = p->data;
    if (!count_header(s, n))
        return -1;
    if (s->url_len + n >= URL_MAX) {
        s->limit_status = 431; /* URI too long: same treatment as oversized headers */
        return -1;
    }
    memcpy(s->url + s->url_len, at, n);
    s->url_len += n;
    s->url[s->url_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    lt_admin_session *s = p->data;
    if (!count_header(s, n))
        return -1;
    if (s->in_value) { /* a new field starts */
        s->in_value = false;
        s->field_len = 0;
    }
    if (s->field_len + n < FIELD_MAX) {
        memcpy(s->field + s->field_len, at, n);
        s->field_len += n;
    } else {
        s->field_len = FIELD_MAX + 1; /* too long to be one we read */
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    lt_admin_session *s = p->data;
    if (!count_header(s, n))
        return -1;
    if (!s->in_value) { /* the field is complete */
        s->in_value = true;
        s->value_is_auth = s->field_len == 13 && strncasecmp(s->field, "Authorization", 13) == 0;
        if (s->value_is_auth) {
            s->auth_len = 0;
            s->auth_seen = true;
        }
    }
    if (s->value_is_auth) {
        if (s->auth_len + n > AUTH_MAX) {
            s->auth_len = 0; /* longer than any token we issue: it cannot match */
            s->value_is_auth = false;
            return 0;
        }
        memcpy(s->auth + s->auth_len, at, n);
        s->auth_len += n;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    lt_admin_session *s = p->data;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->a->cfg.max_body_bytes) {
        s->limit_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    (void)at;
    lt_admin_session *s = p->data;
    s->body_bytes += n;
    if (s->body_bytes > s->a->cfg.max_body_bytes) {
        s->limit_status = 413;
        return -1;
    }
    return 0; /* no route takes a body: it is read and dropped */
}

static int on_message_complete(http_parser *p)
{
    lt_admin_session *s = p->data;
    bool keep = http_should_keep_alive(p) && !p->upgrade;
    s->in_request = false;
    s->answered++;
    handle(s, keep);
    if (!keep)
        http_parser_pause(p, 1); /* ignore whatever follows on this connection */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- sessions ---- */

/* Append a final error response to out; the session takes no more input. */
static void session_refuse(lt_admin_session *s, int status, const char *extra, const char *msg,
                           lt_metrics_buf *out)
{
    s->out = out;
    respond_error(s, status, false, false, extra, msg);
    s->out = NULL;
    s->dead = true;
}

lt_err lt_admin_session_new(lt_admin *a, lt_admin_session **out)
{
    lt_admin_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return LT_ENOMEM;
    s->a = a;
    http_parser_init(&s->parser, HTTP_REQUEST);
    s->parser.data = s;
    *out = s;
    return LT_OK;
}

bool lt_admin_session_feed(lt_admin_session *s, const char *data, size_t len, lt_metrics_buf *out)
{
    if (s->dead)
        return false;
    s->out = out;
    http_parser_execute(&s->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&s->parser);
    s->out = NULL;
    if (e == HPE_PAUSED) { /* a request asked to close: its response is in out */
        s->dead = true;
        return false;
    }
    if (e != HPE_OK) {
        int status = s->limit_status ? s->limit_status : 400;
        session_refuse(s, status, NULL,
                       status == 431   ? "request headers too large"
                       : status == 413 ? "request body too large"
                                       : http_errno_description(e),
                       out);
        return false;
    }
    if (s->parser.upgrade) { /* we speak no other protocol */
        s->dead = true;
        return false;
    }
    return true;
}

bool lt_admin_session_is_mid_request(const lt_admin_session *s)
{
    return s->in_request;
}

uint64_t lt_admin_session_answered(const lt_admin_session *s)
{
    return s->answered;
}

void lt_admin_session_destroy(lt_admin_session **s_p)
{
    if (s_p == NULL || *s_p == NULL)
        return;
    free(*s_p);
    *s_p = NULL;
}

/* ---- server ---- */

static void maybe_free(lt_admin *a)
{
    if (a->destroyed && !a->listener_open && a->conns == NULL) {
        free(a->host);
        free(a->token);
        free(a->data_dir);
        free(a);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    lt_admin *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    lt_admin_session_destroy(&c->s);
    free(c);
    maybe_free(a);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->a->nlive--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    if (status < 0)
        conn_close(req->data);
}

/* The last response is written: send FIN, then drain what the client still sends for a
 * moment before closing. Closing with unread input would make the kernel send RST, which
 * can destroy the response (a 400 or 431) before the client reads it. */
static void conn_finish(struct conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = true;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_idle, LINGER_MS, 0);
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r != 0 && r != UV_EALREADY)
        conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    free(w->data);
    free(w);
    c->writes_pending--;
    if (status < 0)
        conn_close(c);
    else if (c->close_after_write && c->writes_pending == 0)
        conn_finish(c);
}

/* Send buf's bytes (taking its memory). */
static void conn_send(struct conn *c, lt_metrics_buf *buf)
{
    if (buf->oom) {
        lt_metrics_buf_fini(buf);
        conn_close(c);
        return;
    }
    if (buf->len == 0) {
        lt_metrics_buf_fini(buf);
        return;
    }
    struct wreq *w = malloc(sizeof *w);
    if (w == NULL || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_QUEUE_MAX) {
        free(w);
        lt_metrics_buf_fini(buf);
        conn_close(c);
        return;
    }
    w->c = c;
    w->data = buf->data;
    uv_buf_t b = uv_buf_init(buf->data, (unsigned)buf->len);
    memset(buf, 0, sizeof *buf);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w->data);
        free(w);
        conn_close(c);
        return;
    }
    c->writes_pending++;
}

/* out is the connection's last response: take no more input and close once it is
 * written (taking out's memory). */
static void conn_send_last(struct conn *c, lt_metrics_buf *out)
{
    c->close_after_write = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_send(c, out);
    if (c->writes_pending == 0)
        conn_finish(c);
}

/* Answer status on c's behalf, whatever its session was parsing, and close. */
static void conn_refuse(struct conn *c, int status, const char *extra, const char *msg)
{
    lt_metrics_buf out = {0};
    session_refuse(c->s, status, extra, msg, &out);
    conn_send_last(c, &out);
}

/* The request phase is over and the request is not complete. */
static void on_deadline(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->close_after_write) { /* its last response is not read: nothing more to say */
        conn_close(c);
        return;
    }
    conn_refuse(c, 408, NULL, "the request did not arrive in time");
}

/* After the session read bytes: a completed request starts the idle phase (or, if the
 * next one already began, a new deadline); the first byte of a request in the idle phase
 * starts its deadline. Nothing else touches the timer, so trickled bytes buy no time. */
static void conn_update_phase(struct conn *c)
{
    lt_admin *a = c->a;
    uint64_t answered = lt_admin_session_answered(c->s);
    bool mid = lt_admin_session_is_mid_request(c->s);
    if (answered != c->answered) {
        c->answered = answered;
        c->waiting_since = uv_now(a->loop);
    } else if (!c->idle || !mid) {
        return;
    }
    c->idle = !mid;
    if (mid)
        uv_timer_start(&c->timer, on_deadline, a->cfg.request_timeout_ms, 0);
    else
        uv_timer_start(&c->timer, on_idle, a->cfg.idle_timeout_ms, 0);
}

/* The live conn that has waited longest for a complete request and is not being answered,
 * or NULL. A linear scan: max_conns is small and this runs only when the server is full.
 * Ties go to the earlier accepted (the list is newest first). */
static struct conn *eviction_victim(lt_admin *a, const struct conn *newcomer)
{
    struct conn *victim = NULL;
    for (struct conn *c = a->conns; c; c = c->next) {
        if (c == newcomer || c->closing || c->close_after_write || c->lingering ||
            c->writes_pending > 0)
            continue;
        if (victim == NULL || c->waiting_since <= victim->waiting_since)
            victim = c;
    }
    return victim;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    if (suggested > 65536)
        suggested = 65536;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread < 0) {
        free(buf->base);
        conn_close(c);
        return;
    }
    if (c->lingering) { /* input after our last response is dropped */
        free(buf->base);
        return;
    }
    if (nread == 0 || c->closing || c->close_after_write) {
        free(buf->base);
        return;
    }
    lt_metrics_buf out = {0};
    bool open = lt_admin_session_feed(c->s, buf->base, (size_t)nread, &out);
    free(buf->base);
    if (!open) {
        conn_send_last(c, &out);
        return;
    }
    conn_update_phase(c); /* before sending: a failed send closes c and its timer */
    conn_send(c, &out);
}

static void on_connection(uv_stream_t *server, int status)
{
    lt_admin *a = server->data;
    if (status < 0 || a->stopping)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->a = a;
    if (lt_admin_session_new(a, &c->s) != LT_OK) {
        free(c);
        return;
    }
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->waiting_since = uv_now(a->loop);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    a->nlive++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (a->nlive > a->cfg.max_conns) {
        struct conn *victim = eviction_victim(a, c);
        if (victim == NULL) { /* every other conn is being answered: they end soon */
            conn_refuse(c, 503, "Retry-After: 1\r\n", "too many connections");
            return;
        }
        conn_close(victim);
    }
    /* The first request's deadline counts from the accept: a conn that sends nothing
     * is as slow as one that trickles. */
    uv_timer_start(&c->timer, on_deadline, a->cfg.request_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

lt_err lt_admin_start(lt_admin *a, uv_loop_t *loop, lt_why *why)
{
    if (a->loop != NULL)
        return lt_fail(why, LT_EINVAL, "admin server already started");
    struct sockaddr_storage ss;
    const char *nh = numeric_host(a->host);
    if (uv_ip4_addr(nh, a->cfg.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(nh, a->cfg.port, (struct sockaddr_in6 *)&ss) != 0)
        return lt_fail(why, LT_ECONFIG, "admin.listen: bad address '%s'", a->host);
    a->loop = loop;
    uv_tcp_init(loop, &a->listener);
    a->listener.data = a;
    a->listener_open = true;
    int r = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
    if (r != 0) {
        lt_fail(why, LT_EIO, "admin: cannot listen on %s:%u: %s", a->host, a->cfg.port,
                uv_strerror(r));
        lt_admin_stop(a);
        return LT_EIO;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET)
            a->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else
            a->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return LT_OK;
}

uint16_t lt_admin_port(const lt_admin *a)
{
    return a->port;
}

static void on_listener_closed(uv_handle_t *h)
{
    lt_admin *a = h->data;
    a->listener_open = false;
    maybe_free(a);
}

void lt_admin_stop(lt_admin *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    if (a->listener_open && !uv_is_closing((uv_handle_t *)&a->listener))
        uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    for (struct conn *c = a->conns; c; c = c->next)
        conn_close(c);
}

void lt_admin_destroy(lt_admin **a_p)
{
    if (a_p == NULL || *a_p == NULL)
        return;
    lt_admin *a = *a_p;
    *a_p = NULL;
    lt_admin_stop(a);
    a->destroyed = true;
    maybe_free(a);
}
