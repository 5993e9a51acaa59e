/*
 * tool_admin.c - a tiny client of the broker's admin HTTP API (broker/admin.h) for the
 * commands that read it (top, trace): one GET per resource over a blocking socket with
 * "Connection: close", the response parsed by http-parser (as the server parses requests),
 * every read bounded in time and size; and where the address and the token come from.
 */
#include "tool_admin.h"

#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BODY_MAX (16u << 20)

/* ---- HTTP client ---- */

struct reply {
    char *body;
    size_t len;
    size_t cap;
    bool complete;
    bool too_big;
};

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct reply *r = p->data;
    if (r->len + n > BODY_MAX) {
        r->too_big = true;
        return -1;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return -1;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, at, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct reply *)p->data)->complete = true;
    return 0;
}

static int dial(const lt_tool_admin *t, lt_why *why)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int e = getaddrinfo(t->host, t->port, &hints, &res);
    if (e != 0) {
        lt_fail(why, LT_EIO, "%s: %s", t->host, gai_strerror(e));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        lt_fail(why, LT_EIO, "cannot connect to %s:%s: %s", t->host, t->port, strerror(errno));
    return fd;
}

lt_err lt_tool_admin_get(const lt_tool_admin *t, const char *path, int *status, json_object **json,
                       lt_why *why)
{
    int fd = dial(t, why);
    if (fd < 0)
        return LT_EIO;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n",
                     path, t->host, t->port, t->token);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return lt_fail(why, LT_EIO, "cannot send the request to %s:%s", t->host, t->port);
    }
    static const http_parser_settings settings = {.on_body = on_body,
                                                  .on_message_complete = on_complete};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    struct reply r = {0};
    p.data = &r;
    char buf[16384];
    lt_err err = LT_OK;
    while (!r.complete) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got < 0) {
            err = lt_fail(why, LT_EIO, "reading from %s:%s: %s", t->host, t->port,
                          errno == EAGAIN ? "timed out" : strerror(errno));
            break;
        }
        http_parser_execute(&p, &settings, buf, (size_t)got); /* got == 0 signals EOF */
        if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
            err = lt_fail(why, LT_EPROTO, "bad HTTP response from %s:%s: %s", t->host, t->port,
                          r.too_big ? "body too large" : http_errno_description(HTTP_PARSER_ERRNO(&p)));
            break;
        }
        if (got == 0) {
            if (!r.complete)
                err = lt_fail(why, LT_EPROTO, "%s:%s closed before a full response", t->host, t->port);
            break;
        }
    }
    close(fd);
    if (err == LT_OK) {
        *status = (int)p.status_code;
        *json = r.body ? json_tokener_parse(r.body) : NULL;
    }
    free(r.body);
    return err;
}

/* ---- configuration ---- */

static bool read_token_file(const char *path, char *tok, size_t cap, lt_why *why)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        lt_fail(why, LT_EIO, "cannot read token file %s: %s", path, strerror(errno));
        return false;
    }
    bool ok = fgets(tok, (int)cap, f) != NULL;
    fclose(f);
    if (ok)
        tok[strcspn(tok, "\r\n")] = '\0';
    if (!ok || tok[0] == '\0') {
        lt_fail(why, LT_ECONFIG, "token file %s is empty", path);
        return false;
    }
    return true;
}

bool lt_tool_admin_parse_url(const char *s, lt_tool_admin *t)
{
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    else if (strstr(s, "://"))
        return false; /* https is not served by the broker: use a local TLS proxy */
    const char *host = s, *colon, *hend;
    if (*s == '[') {
        hend = strchr(s, ']');
        if (hend == NULL)
            return false;
        host = s + 1;
        colon = hend[1] == ':' ? hend + 1 : NULL;
    } else {
        colon = strchr(s, ':');
        hend = colon ? colon : s + strcspn(s, "/");
    }
    size_t hl = (size_t)(hend - host);
    if (hl == 0 || hl >= sizeof t->host)
        return false;
    memcpy(t->host, host, hl);
    t->host[hl] = '\0';
    if (colon) {
        size_t pl = strcspn(colon + 1, "/");
        if (pl == 0 || pl >= sizeof t->port)
            return false;
        memcpy(t->port, colon + 1, pl);
        t->port[pl] = '\0';
    } else {
        snprintf(t->port, sizeof t->port, "7401");
    }
    return true;
}

static lt_err from_broker_config(const char *path, lt_tool_admin *t, bool want_addr,
                                 bool want_token, lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_load(path, &root, why);
    if (e != LT_OK)
        return e;
    const lt_ynode *admin = lt_ycfg_get(lt_ycfg_get(root, "broker"), "admin");
    const char *listen = lt_ycfg_scalar(lt_ycfg_get(admin, "listen"));
    const char *tf = lt_ycfg_scalar(lt_ycfg_get(admin, "token_file"));
    if (want_addr && listen && !lt_tool_admin_parse_url(listen, t))
        e = lt_fail(why, LT_ECONFIG, "%s: broker.admin.listen: bad address '%s'", path, listen);
    if (e == LT_OK && want_token) {
        char p[4096];
        if (tf == NULL)
            tf = "admin.token";
        if (tf[0] == '/')
            snprintf(p, sizeof p, "%s", tf);
        else
            snprintf(p, sizeof p, "%s/%s", lt_ycfg_dir(root), tf);
        if (!read_token_file(p, t->token, sizeof t->token, why))
            e = LT_ECONFIG;
    }
    lt_ycfg_free(&root);
    return e;
}

lt_err lt_tool_admin_open(const char *admin, const char *token_file, const char *config,
                          lt_tool_admin *t, lt_why *why)
{
    memset(t, 0, sizeof *t);
    snprintf(t->host, sizeof t->host, "127.0.0.1");
    snprintf(t->port, sizeof t->port, "7401");
    const char *env = getenv("LIENTHONG_ADMIN_TOKEN");
    lt_err e;
    if (config && (e = from_broker_config(config, t, admin == NULL,
                                          token_file == NULL && env == NULL, why)) != LT_OK)
        return e;
    if (admin && !lt_tool_admin_parse_url(admin, t))
        return lt_fail(why, LT_EINVAL, "--admin: expected http://host:port, got '%s'", admin);
    if (token_file) {
        if (!read_token_file(token_file, t->token, sizeof t->token, why))
            return LT_ECONFIG;
    } else if (!config || env) {
        if (env == NULL || *env == '\0')
            return lt_fail(why, LT_EINVAL, "no admin token: give --token-file F, -c broker.yaml, "
                                           "or set LIENTHONG_ADMIN_TOKEN");
        snprintf(t->token, sizeof t->token, "%s", env);
    }
    return LT_OK;
}
