/*
 * harness_admin.c - dev-init's broker config on the test's ports, the admin token, and a
 * blocking HTTP/1.1 GET: connect, send, read until http-parser says the response is complete
 * or the server closes (we ask for "Connection: close").
 */
#include "harness_admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IT_HTTP_BODY_MAX (64u << 20)

struct rx {
    it_http_resp *r;
    size_t cap;
    bool complete, oom, in_ctype;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct rx *x = p->data;
    x->in_ctype = len == 12 && strncasecmp(at, "Content-Type", 12) == 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct rx *x = p->data;
    if (x->in_ctype)
        snprintf(x->r->content_type, sizeof x->r->content_type, "%.*s", (int)len, at);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct rx *x = p->data;
    it_http_resp *r = x->r;
    if (r->len + len + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *nb = cap <= IT_HTTP_BODY_MAX ? realloc(r->body, cap) : NULL;
        if (nb == NULL) {
            x->oom = true;
            return 1;
        }
        r->body = nb;
        x->cap = cap;
    }
    memcpy(r->body + r->len, at, len);
    r->len += len;
    r->body[r->len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    struct rx *x = p->data;
    x->complete = true;
    return 0;
}

void it_http_resp_fini(it_http_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int connect_local(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool it_http_get(unsigned port, const char *path, const char *token, int timeout_ms,
                 it_http_resp *r)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = now_ms() + timeout_ms;
    int fd = connect_local(port);
    if (fd < 0) {
        fprintf(stderr, "http: connect 127.0.0.1:%u: %s\n", port, strerror(errno));
        return false;
    }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s%s%sConnection: close\r\n\r\n",
                     path, port, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    bool ok = n > 0 && (size_t)n < sizeof req && send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    http_parser p;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_body = on_body;
    s.on_message_complete = on_complete;
    struct rx x = {.r = r};
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &x;
    while (ok && !x.complete) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            fprintf(stderr, "http: GET %s: no complete response within %d ms\n", path,
                    timeout_ms);
            ok = false;
            break;
        }
        char buf[16384];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            ok = false;
            break;
        }
        size_t used = http_parser_execute(&p, &s, buf, (size_t)got); /* got == 0: EOF */
        if (p.http_errno != HPE_OK || (got > 0 && used != (size_t)got && !x.complete)) {
            fprintf(stderr, "http: GET %s: bad response: %s\n", path,
                    http_errno_description(HTTP_PARSER_ERRNO(&p)));
            ok = false;
        } else if (got == 0 && !x.complete) {
            fprintf(stderr, "http: GET %s: connection closed mid-response\n", path);
            ok = false;
        }
    }
    close(fd);
    if (!ok || x.oom) {
        it_http_resp_fini(r);
        return false;
    }
    r->status = (int)p.status_code;
    if (r->body == NULL) {
        r->body = calloc(1, 1);
        if (r->body == NULL)
            return false;
    }
    return true;
}

bool it_admin_token(const it_env *e, char *tok, size_t cap)
{
    char path[IT_PATH_MAX];
    FILE *f = fopen(it_path(e, "admin.token", path), "r");
    if (f == NULL)
        return false;
    bool ok = fgets(tok, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    tok[strcspn(tok, "\r\n")] = '\0';
    return tok[0] != '\0';
}

/* Replace the value after the first "key:" at the start of a line (after indentation) in
 * text with repl; returns a new string or NULL. */
static char *replace_value(const char *text, const char *key, const char *repl)
{
    size_t kl = strlen(key);
    for (const char *line = text; *line != '\0';) {
        const char *p = line;
        while (*p == ' ')
            p++;
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            eol = p + strlen(p);
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            size_t head = (size_t)(p - text) + kl + 1, tail = strlen(eol);
            char *out = malloc(head + 1 + strlen(repl) + tail + 1);
            if (out == NULL)
                return NULL;
            sprintf(out, "%.*s %s%s", (int)head, text, repl, eol);
            return out;
        }
        line = *eol ? eol + 1 : eol;
    }
    return NULL;
}

bool it_use_dev_init_config(it_env *e)
{
    char *text = it_read_file(e, "broker.yaml", NULL);
    if (text == NULL) {
        fprintf(stderr, "harness: dev-init wrote no broker.yaml in %s\n", e->dir);
        return false;
    }
    /* broker.listen comes before broker.admin.listen in dev-init's file. */
    char *a = replace_value(text, "listen", "@LISTEN@");
    char *b = a ? replace_value(strstr(a, "@LISTEN@") + 8, "listen", "@ADMIN@") : NULL;
    bool ok = false;
    if (b != NULL) {
        size_t head = (size_t)(strstr(a, "@LISTEN@") + 8 - a);
        char *tmpl = malloc(head + strlen(b) + 1);
        if (tmpl != NULL) {
            sprintf(tmpl, "%.*s%s", (int)head, a, b);
            ok = it_write_broker_yaml(e, tmpl);
            free(tmpl);
        }
    } else {
        fprintf(stderr, "harness: dev-init's broker.yaml has no listen / admin.listen\n");
    }
    free(b);
    free(a);
    free(text);
    return ok;
}
