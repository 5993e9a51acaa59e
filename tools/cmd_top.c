/*
 * cmd_top.c - `lienthong top`: the dashboard's overview in a terminal, refreshed every
 * second from the broker's admin API (broker/admin.h). Plain ANSI (clear screen, bold),
 * no curses. `--once` prints one frame without escapes and exits (scripts, tests).
 *
 * The HTTP side is a tiny client over a blocking socket: one GET per resource with
 * "Connection: close", the response parsed by http-parser (as the server parses requests),
 * every read bounded in time and size.
 *
 * The token comes from --token-file, else $LIENTHONG_ADMIN_TOKEN, else the broker config
 * (-c broker.yaml: broker.admin.token_file, default admin.token beside it); the address
 * from --admin, else broker.admin.listen, else http://127.0.0.1:7401.
 */
#include "cmd_decls.h"
#include "err.h"
#include "ycfg.h"

#include <errno.h>
#include <http_parser.h>
#include <json-c/json.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char lt_cmd_top_summary[] = "live overview of a broker (admin API) in the terminal";

#define BODY_MAX (16u << 20)

struct target {
    char host[256];
    char port[8];
    char token[512];
};

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

static int dial(const struct target *t, lt_why *why)
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

/* GET path; on LT_OK *status is the HTTP status and *json the parsed body (NULL if it is
 * not JSON). LT_EIO / LT_EPROTO with why. */
static lt_err http_get(const struct target *t, const char *path, int *status, json_object **json,
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

/* "http://host:port[/]" or "host:port" into t. */
static bool parse_admin_url(const char *s, struct target *t)
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

static lt_err from_broker_config(const char *path, struct target *t, bool want_addr,
                                 bool want_token, lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_load(path, &root, why);
    if (e != LT_OK)
        return e;
    const lt_ynode *admin = lt_ycfg_get(lt_ycfg_get(root, "broker"), "admin");
    const char *listen = lt_ycfg_scalar(lt_ycfg_get(admin, "listen"));
    const char *tf = lt_ycfg_scalar(lt_ycfg_get(admin, "token_file"));
    if (want_addr && listen && !parse_admin_url(listen, t))
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

/* ---- rendering ---- */

static double jd(json_object *o, const char *k1, const char *k2)
{
    json_object *v = o;
    if (!json_object_object_get_ex(v, k1, &v))
        return 0;
    if (k2 && !json_object_object_get_ex(v, k2, &v))
        return 0;
    return json_object_get_double(v);
}

static const char *js(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

/* Print s in exactly w terminal columns (UTF-8 aware: one column per code point, which
 * holds for Vietnamese in precomposed NFC form), cutting with '~' when longer. */
static void col(const char *s, int w)
{
    int cols = 0;
    const char *p = s;
    while (*p && cols < w) {
        const char *q = p + 1;
        while ((*q & 0xC0) == 0x80)
            q++;
        if (cols == w - 1 && *q) {
            fputc('~', stdout);
            cols++;
            p = q;
            break;
        }
        fwrite(p, 1, (size_t)(q - p), stdout);
        cols++;
        p = q;
    }
    for (; cols < w; cols++)
        fputc(' ', stdout);
}

static void fmt_age(char *b, size_t cap, double s)
{
    if (s < 60)
        snprintf(b, cap, "%.1fs", s);
    else if (s < 3600)
        snprintf(b, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(b, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void fmt_clock(char *b, size_t cap, int64_t ms)
{
    if (ms <= 0) {
        snprintf(b, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(b, cap, "%H:%M:%S", &tm);
}

struct prev {
    bool have;
    double t_ms, pub, del;
};

static void render(const struct target *t, json_object *ov, json_object *ag, json_object *qs,
                   json_object *rj, struct prev *pv, bool ansi)
{
    const char *B = ansi ? "\x1b[1m" : "", *N = ansi ? "\x1b[0m" : "";
    double now = jd(ov, "now_ms", NULL), pub = jd(ov, "totals", "published"),
           del = jd(ov, "totals", "deliveries");
    char up[32], old[32];
    fmt_age(up, sizeof up, jd(ov, "uptime_seconds", NULL));
    fmt_age(old, sizeof old, jd(ov, "queues", "oldest_age_seconds"));
    if (ansi)
        fputs("\x1b[H\x1b[2J", stdout);
    printf("%slienthong top%s  http://%s:%s  version %s  uptime %s\n", B, N, t->host, t->port,
           js(ov, "version"), up);
    if (pv->have && now > pv->t_ms)
        printf("in %.1f/s  out %.1f/s  ", (pub - pv->pub) * 1000.0 / (now - pv->t_ms),
               (del - pv->del) * 1000.0 / (now - pv->t_ms));
    printf("published %.0f  delivered %.0f  rejected %.0f  duplicates %.0f  clients %.0f\n", pub,
           del, jd(ov, "totals", "rejected"), jd(ov, "totals", "duplicates"),
           jd(ov, "gauges", "connected_clients"));
    printf("queues %.0f  backlog %.0f  unacked %.0f  oldest %s  DLQ %.0f  redeliveries %.0f  "
           "p99 publish->ack %.1f ms  LMDB %.1f/%.1f GiB\n",
           jd(ov, "queues", "count"), jd(ov, "queues", "depth"), jd(ov, "queues", "unacked"), old,
           jd(ov, "queues", "dlq_depth"), jd(ov, "totals", "redeliveries"),
           jd(ov, "latency", "publish_ack_p99_seconds") * 1000.0,
           jd(ov, "gauges", "lmdb_map_used_bytes") / 1073741824.0,
           jd(ov, "gauges", "lmdb_map_size_bytes") / 1073741824.0);
    pv->have = true;
    pv->t_ms = now;
    pv->pub = pub;
    pv->del = del;

    printf("\n%s", B);
    col("AGENCY", 44);
    printf("%10s %10s %9s %12s  %-8s%s\n", "SENT", "ACKED", "REJECTED", "BYTES", "LAST", N);
    for (size_t i = 0; ag && i < json_object_array_length(ag) && i < 20; i++) {
        json_object *a = json_object_array_get_idx(ag, i);
        const char *name = js(a, "name");
        char label[400], last[16];
        snprintf(label, sizeof label, "%s%s%s%s", name[0] ? name : js(a, "id"),
                 name[0] ? " (" : "", name[0] ? js(a, "id") : "", name[0] ? ")" : "");
        fmt_clock(last, sizeof last, (int64_t)jd(a, "last_publish_ms", NULL));
        col(label, 44);
        printf("%10.0f %10.0f %9.0f %12.0f  %-8s\n", jd(a, "published", NULL), jd(a, "acked", NULL),
               jd(a, "rejected", NULL), jd(a, "published_bytes", NULL), last);
    }
    printf("\n%s", B);
    col("QUEUE", 32);
    printf("%10s %9s %9s %7s %11s%s\n", "DEPTH", "UNACKED", "OLDEST", "DLQ", "DELIVERED", N);
    for (size_t i = 0; qs && i < json_object_array_length(qs) && i < 30; i++) {
        json_object *q = json_object_array_get_idx(qs, i);
        fmt_age(old, sizeof old, jd(q, "oldest_age_seconds", NULL));
        col(js(q, "name"), 32);
        printf("%10.0f %9.0f %9s %7.0f %11.0f\n", jd(q, "depth", NULL), jd(q, "unacked", NULL), old,
               jd(q, "dlq_depth", NULL), jd(q, "deliveries", NULL));
    }
    printf("\n%sRECENT REJECTIONS%s\n", B, N);
    for (size_t i = 0; rj && i < json_object_array_length(rj) && i < 8; i++) {
        json_object *r = json_object_array_get_idx(rj, i);
        char when[16];
        fmt_clock(when, sizeof when, (int64_t)jd(r, "time_ms", NULL));
        printf("%-8s ", when);
        col(js(r, "agency"), 32);
        printf(" %-18s ", js(r, "code_name"));
        col(js(r, "reason"), 60);
        printf("\n");
    }
    fflush(stdout);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong top [--admin http://127.0.0.1:7401] [--token-file F | -c broker.yaml]\n"
            "                     [--interval S] [--once]\n\n"
            "%s.\nThe token: --token-file, else $LIENTHONG_ADMIN_TOKEN, else the broker config's\n"
            "broker.admin.token_file. --once prints one frame without terminal escapes.\n",
            lt_cmd_top_summary);
}

int lt_cmd_top(int argc, char **argv)
{
    const char *admin = NULL, *token_file = NULL, *config = NULL;
    bool once = false;
    double interval = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--once") == 0) {
            once = true;
        } else if (strcmp(a, "--admin") == 0 && has) {
            admin = argv[++i];
        } else if (strcmp(a, "--token-file") == 0 && has) {
            token_file = argv[++i];
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has) {
            config = argv[++i];
        } else if (strcmp(a, "--interval") == 0 && has) {
            interval = atof(argv[++i]);
            if (!(interval >= 0.1 && interval <= 3600)) {
                fprintf(stderr, "lienthong top: --interval: expected 0.1..3600 seconds\n");
                return 2;
            }
        } else {
            fprintf(stderr, "lienthong top: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    struct target t = {.host = "127.0.0.1", .port = "7401"};
    lt_why why = {""};
    if (config && from_broker_config(config, &t, admin == NULL,
                                     token_file == NULL && getenv("LIENTHONG_ADMIN_TOKEN") == NULL,
                                     &why) != LT_OK) {
        fprintf(stderr, "lienthong top: %s\n", why.msg);
        return 1;
    }
    if (admin && !parse_admin_url(admin, &t)) {
        fprintf(stderr, "lienthong top: --admin: expected http://host:port, got '%s'\n", admin);
        return 2;
    }
    if (token_file) {
        if (!read_token_file(token_file, t.token, sizeof t.token, &why)) {
            fprintf(stderr, "lienthong top: %s\n", why.msg);
            return 1;
        }
    } else if (!config || getenv("LIENTHONG_ADMIN_TOKEN")) {
        const char *env = getenv("LIENTHONG_ADMIN_TOKEN");
        if (env == NULL || *env == '\0') {
            fprintf(stderr, "lienthong top: no admin token: give --token-file F, -c broker.yaml, "
                            "or set LIENTHONG_ADMIN_TOKEN\n");
            return 2;
        }
        snprintf(t.token, sizeof t.token, "%s", env);
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    bool ansi = !once && isatty(STDOUT_FILENO);
    struct prev pv = {0};
    int rc = 0;
    while (!stop) {
        static const char *const paths[4] = {"/api/v1/overview", "/api/v1/agencies",
                                             "/api/v1/queues", "/api/v1/rejections?limit=8"};
        json_object *doc[4] = {NULL, NULL, NULL, NULL};
        int status = 0;
        lt_err e = LT_OK;
        for (int i = 0; i < 4 && e == LT_OK; i++) {
            e = http_get(&t, paths[i], &status, &doc[i], &why);
            if (e == LT_OK && status != 200) {
                e = lt_fail(&why, status == 401 ? LT_ENOAUTH : LT_EPROTO,
                            status == 401 ? "the admin token was refused (401)"
                                          : "%s answered HTTP %d", paths[i], status);
            } else if (e == LT_OK && doc[i] == NULL) {
                e = lt_fail(&why, LT_EPROTO, "%s: the answer is not JSON", paths[i]);
            }
        }
        if (e == LT_OK)
            render(&t, doc[0], doc[1], doc[2], doc[3], &pv, ansi);
        else
            fprintf(stderr, "lienthong top: %s\n", why.msg);
        for (int i = 0; i < 4; i++)
            json_object_put(doc[i]);
        if (once || e == LT_ENOAUTH) {
            rc = e == LT_OK ? 0 : 1;
            break;
        }
        struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
    return rc;
}
