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
#include "tool_admin.h"
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

static void render(const lt_tool_admin *t, json_object *ov, json_object *ag, json_object *qs,
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

    lt_tool_admin t;
    lt_why why = {""};
    lt_err oe = lt_tool_admin_open(admin, token_file, config, &t, &why);
    if (oe != LT_OK) {
        fprintf(stderr, "lienthong top: %s\n", why.msg);
        return oe == LT_EINVAL ? 2 : 1;
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
            e = lt_tool_admin_get(&t, paths[i], &status, &doc[i], &why);
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
