/*
 * scrape.c - bench_scrape: what Prometheus costs the broker (issue 6), end to end over HTTP.
 *
 * Sets up a real lienthongd with QUEUES queues (default 1000: `lienthong dev-init`, then a
 * broker.yaml with bench.fan0 bound to the load topic "bench.load" and QUEUES-1 more queues
 * bound to topics nobody publishes on, so every queue has its series in /metrics), then:
 *
 *   1. scrape latency: SCRAPES back-to-back GET /metrics with the bearer token on one
 *      keep-alive connection (as Prometheus does), each timed from the request's first byte
 *      sent to the response's last byte parsed (http-parser); min / median / p99 / bytes;
 *   2. throughput with and without a scraper: ROUNDS rounds of bench_lt_load (the load
 *      program of bench/run: 2 publishers, 1 consumer acking every message, presigned
 *      envelopes) alternating "no scraper" and "a scraper GETting /metrics every
 *      INTERVAL ms" (order A B B A A B B A ... so drift hits both alike), on the same broker;
 *      the medians of the publish throughputs and their relative difference. The scrapes
 *      taken under load are reported too.
 *
 *   bench_scrape [--queues N] [--scrapes R] [--rounds K] [--messages M] [--interval-ms I]
 *                [--bin BUILD_DIR] [--keep] [-- extra bench_lt_load options]
 *
 * BUILD_DIR (default: the directory above this program's) holds broker/lienthongd,
 * tools/lienthong and bench/bench_lt_load. Everything runs on 127.0.0.1 on free ports in a
 * temporary directory, removed at the end unless --keep. Prints a report and one JSON line.
 *
 * Threads: main (setup, rounds), one scraper thread during "with scraper" rounds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <http_parser.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PATH_CAP 1024
#define ROUNDS_MAX 64
#define LOAD_ARGS_MAX 32

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(double *sorted, size_t n, unsigned p)
{
    if (n == 0)
        return 0;
    size_t i = (n * p + 99) / 100;
    return sorted[i == 0 ? 0 : i - 1];
}

/* ---- processes ------------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *out, const char *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fprintf(stderr, "bench_scrape: cannot run %s: %s\n", argv[0], strerror(r));
        return -1;
    }
    return pid;
}

/* Wait for pid at most timeout_s (then SIGKILL); its exit code, 128+signal, or -1. */
static int reap(pid_t pid, int timeout_s)
{
    int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* A whole file (also /proc files, whose size reads as 0), NUL-terminated; NULL on failure. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t n = 0, cap = 4096;
    char *s = malloc(cap);
    while (s != NULL) {
        size_t got = fread(s + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *ns = realloc(s, cap * 2);
            if (ns == NULL) {
                free(s);
                s = NULL;
                break;
            }
            s = ns;
            cap *= 2;
        }
    }
    if (s != NULL)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* CPU seconds (user + system) pid has used, from /proc/<pid>/stat; -1 if unreadable. */
static double cpu_seconds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *t = slurp(path);
    const char *p = t ? strrchr(t, ')') : NULL; /* comm may hold spaces */
    unsigned long ut = 0, st = 0;
    double r = -1;
    if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) == 2)
        r = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    free(t);
    return r;
}

static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static unsigned free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    unsigned port = 0;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

/* The "id:" value of an agency config written by dev-init, into id. */
static bool agency_id(const char *path, char *id, size_t cap)
{
    char *t = slurp(path);
    const char *p = t ? strstr(t, "\n  id: ") : NULL;
    bool ok = p != NULL;
    if (ok)
        snprintf(id, cap, "%.*s", (int)strcspn(p + 7, " \r\n#"), p + 7);
    free(t);
    return ok;
}

/* ---- a keep-alive HTTP client (responses parsed by http-parser) ----------------------- */

typedef struct hc {
    unsigned port;
    int fd;
    http_parser p;
    http_parser_settings s;
    bool done;
    size_t body;
    bool keep;          /* keep the body (text, len) */
    char *text;
    size_t len, cap;
} hc;

static int hc_on_body(http_parser *p, const char *at, size_t len)
{
    hc *c = p->data;
    c->body += len;
    if (c->keep) {
        if (c->len + len + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 65536;
            while (cap < c->len + len + 1)
                cap *= 2;
            char *nt = realloc(c->text, cap);
            if (nt == NULL)
                return 1;
            c->text = nt;
            c->cap = cap;
        }
        memcpy(c->text + c->len, at, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    return 0;
}

static int hc_on_done(http_parser *p)
{
    ((hc *)p->data)->done = true;
    http_parser_pause(p, 1); /* one response at a time */
    return 0;
}

static bool hc_connect(hc *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return false;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
}

static void hc_init(hc *c, unsigned port)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    c->fd = -1;
    http_parser_settings_init(&c->s);
    c->s.on_body = hc_on_body;
    c->s.on_message_complete = hc_on_done;
}

static void hc_close(hc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* GET path with the token; the HTTP status (0 on failure), *secs the time from sending to
 * the response parsed, *bytes its body length. Reconnects if the server closed. */
static int hc_get(hc *c, const char *path, const char *token, double *secs, size_t *bytes)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && !hc_connect(c))
            return 0;
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                         path, token);
        http_parser_init(&c->p, HTTP_RESPONSE);
        c->p.data = c;
        c->done = false;
        c->body = 0;
        int64_t t0 = now_ns();
        if (n <= 0 || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            hc_close(c);
            continue;
        }
        bool fail = false;
        while (!c->done && !fail) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            if (poll(&pfd, 1, 10000) <= 0) {
                fail = true;
                break;
            }
            char buf[65536];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got <= 0) {
                fail = true;
                break;
            }
            http_parser_execute(&c->p, &c->s, buf, (size_t)got);
            if (HTTP_PARSER_ERRNO(&c->p) != HPE_OK && HTTP_PARSER_ERRNO(&c->p) != HPE_PAUSED)
                fail = true;
        }
        if (fail) {
            hc_close(c);
            if (attempt == 0 && c->body == 0)
                continue; /* the server closed an idle connection: once more */
            return 0;
        }
        *secs = (double)(now_ns() - t0) / 1e9;
        *bytes = c->body;
        if (!http_should_keep_alive(&c->p))
            hc_close(c);
        return (int)c->p.status_code;
    }
    return 0;
}

/* ---- the scraper thread ------------------------------------------------------------- */

typedef struct scraper {
    unsigned port;
    const char *token;
    unsigned interval_ms;
    atomic_bool stop;
    double *lat; /* seconds, grows */
    size_t n, cap, failed;
    pthread_t th;
} scraper;

static void *scrape_loop(void *arg)
{
    scraper *s = arg;
    hc c;
    hc_init(&c, s->port);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&s->stop)) {
        double secs = 0;
        size_t bytes = 0;
        if (hc_get(&c, "/metrics", s->token, &secs, &bytes) == 200) {
            if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                double *nl = realloc(s->lat, cap * sizeof *nl);
                if (nl == NULL)
                    break;
                s->lat = nl;
                s->cap = cap;
            }
            s->lat[s->n++] = secs;
        } else {
            s->failed++;
        }
        next.tv_nsec += (long)s->interval_ms * 1000000;
        while (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
    }
    hc_close(&c);
    return NULL;
}

/* ---- setup ---------------------------------------------------------------------------- */

typedef struct world {
    char dir[PATH_CAP / 2];
    char bin[PATH_CAP / 2];
    char lienthongd[PATH_CAP], lienthong[PATH_CAP], load[PATH_CAP];
    char endpoint[64], token[256];
    unsigned port, admin_port;
    pid_t broker;
} world;

static bool write_broker_yaml(world *w, unsigned queues)
{
    char p1[PATH_CAP], p3[PATH_CAP], pd[PATH_CAP], q1[256], q3[256], owner[256];
    snprintf(p1, sizeof p1, "%s/agencies/quan1.yaml", w->dir);
    snprintf(p3, sizeof p3, "%s/agencies/quan3.yaml", w->dir);
    snprintf(pd, sizeof pd, "%s/agencies/dancu.yaml", w->dir);
    if (!agency_id(p1, q1, sizeof q1) || !agency_id(p3, q3, sizeof q3) ||
        !agency_id(pd, owner, sizeof owner)) {
        fprintf(stderr, "bench_scrape: dev-init's agencies/{quan1,quan3,dancu}.yaml missing\n");
        return false;
    }
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/broker.yaml", w->dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f,
            "# bench_scrape: %u queues, one of them loaded\n"
            "broker:\n"
            "  name: bench-scrape\n"
            "  listen: %s\n"
            "  data_dir: data\n"
            "  map_size_mb: 65536\n"
            "  admin:\n"
            "    listen: 127.0.0.1:%u\n"
            "    token_file: admin.token\n"
            "trust:\n"
            "  ca: ca/ca.cert.pem\n"
            "  crl: ca/crl.pem\n"
            "acl:\n"
            "  - agency: %s\n"
            "    publish: [\"bench.>\"]\n"
            "  - agency: %s\n"
            "    publish: [\"bench.>\"]\n"
            "  - agency: %s\n"
            "    publish: []\n"
            "queues:\n"
            "  - name: bench.fan0\n"
            "    owner: %s\n"
            "    bind: [\"bench.>\"]\n"
            "    max_depth: 0\n"
            "    max_bytes: 0\n",
            queues, w->endpoint, w->admin_port, q1, q3, owner, owner);
    for (unsigned i = 1; i < queues; i++)
        fprintf(f,
                "  - name: idle.q%04u\n"
                "    owner: %s\n"
                "    bind: [\"idle.q%04u.>\"]\n",
                i, owner, i);
    return fclose(f) == 0;
}

static bool broker_start(world *w)
{
    char cfg[PATH_CAP], log[PATH_CAP];
    snprintf(cfg, sizeof cfg, "%s/broker.yaml", w->dir);
    snprintf(log, sizeof log, "%s/lienthongd.log", w->dir);
    char *argv[] = {w->lienthongd, "-c", cfg, NULL};
    w->broker = spawn(argv, log, log);
    if (w->broker < 0)
        return false;
    int64_t deadline = now_ns() + 60 * (int64_t)1000000000;
    while (now_ns() < deadline) {
        char *t = slurp(log);
        bool ready = t != NULL && strstr(t, "lienthongd: ready") != NULL;
        free(t);
        if (ready)
            return true;
        if (waitpid(w->broker, NULL, WNOHANG) == w->broker) {
            w->broker = 0;
            break;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    char *t = slurp(log);
    fprintf(stderr, "bench_scrape: lienthongd did not get ready:\n%s\n", t ? t : "");
    free(t);
    return false;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- one load round ------------------------------------------------------------------- */

/* Run bench_lt_load once; its publish msgs/s (0 on failure). */
static double load_round(world *w, unsigned round, const char *messages, char **extra,
                         int nextra)
{
    char q1[PATH_CAP], q3[PATH_CAP], dc[PATH_CAP], out[PATH_CAP], err[PATH_CAP];
    snprintf(q1, sizeof q1, "%s/agencies/quan1.yaml", w->dir);
    snprintf(q3, sizeof q3, "%s/agencies/quan3.yaml", w->dir);
    snprintf(dc, sizeof dc, "%s/agencies/dancu.yaml", w->dir);
    snprintf(out, sizeof out, "%s/load%02u.json", w->dir, round);
    snprintf(err, sizeof err, "%s/load.err", w->dir);
    char *argv[LOAD_ARGS_MAX + 24] = {w->load,         "--endpoint", w->endpoint,
                                      "--topic",       "bench.load", "--pub-config",
                                      q1,              "--pub-config", q3,
                                      "--sub-config",  dc,           "--queue",
                                      "bench.fan0",    "--presign",  "--messages",
                                      (char *)messages};
    int n = 16;
    for (int i = 0; i < nextra && n < LOAD_ARGS_MAX + 22; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = spawn(argv, out, err);
    int rc = pid > 0 ? reap(pid, 600) : -1;
    char *t = slurp(out);
    json_object *j = t ? json_tokener_parse(t) : NULL, *pub, *v;
    double mps = 0;
    if (rc == 0 && j != NULL && json_object_object_get_ex(j, "publish", &pub) &&
        json_object_object_get_ex(pub, "msgs_per_s", &v))
        mps = json_object_get_double(v);
    else
        fprintf(stderr, "bench_scrape: round %u: bench_lt_load exit %d (see %s)\n", round, rc,
                err);
    json_object_put(j);
    free(t);
    return mps;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_scrape [--queues N] [--scrapes R] [--rounds K] [--messages M]\n"
               "                    [--interval-ms I] [--bin BUILD_DIR] [--keep]\n"
               "                    [-- bench_lt_load options]\n");
}

int main(int argc, char **argv)
{
    unsigned queues = 1000, scrapes = 500, rounds = 8, interval_ms = 100;
    const char *messages = "20000";
    bool keep = false;
    world w;
    memset(&w, 0, sizeof w);
    char self[PATH_CAP];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(w.bin, sizeof w.bin, "%s/..", dirname(self));
    static const struct option opts[] = {
        {"queues", required_argument, NULL, 'q'},  {"scrapes", required_argument, NULL, 's'},
        {"rounds", required_argument, NULL, 'r'},  {"messages", required_argument, NULL, 'm'},
        {"interval-ms", required_argument, NULL, 'i'}, {"bin", required_argument, NULL, 'b'},
        {"keep", no_argument, NULL, 'k'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': queues = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': scrapes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': messages = optarg; break;
        case 'i': interval_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': snprintf(w.bin, sizeof w.bin, "%s", optarg); break;
        case 'k': keep = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (queues < 1 || queues > 4000 || scrapes < 1 || scrapes > 100000 || rounds > ROUNDS_MAX ||
        interval_ms < 1 || argc - optind > LOAD_ARGS_MAX) {
        usage(stderr);
        return 2;
    }
    snprintf(w.lienthongd, sizeof w.lienthongd, "%s/broker/lienthongd", w.bin);
    snprintf(w.lienthong, sizeof w.lienthong, "%s/tools/lienthong", w.bin);
    snprintf(w.load, sizeof w.load, "%s/bench/bench_lt_load", w.bin);
    if (access(w.lienthongd, X_OK) || access(w.lienthong, X_OK) || access(w.load, X_OK)) {
        fprintf(stderr, "bench_scrape: need %s, %s and %s (build them, or --bin DIR)\n",
                w.lienthongd, w.lienthong, w.load);
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(w.dir, sizeof w.dir, "%s/lt-scrape-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w.dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int status = 1;
    w.port = free_port();
    do
        w.admin_port = free_port();
    while (w.admin_port == w.port);
    snprintf(w.endpoint, sizeof w.endpoint, "tcp://127.0.0.1:%u", w.port);
    char out[PATH_CAP], err[PATH_CAP], tokpath[PATH_CAP];
    snprintf(out, sizeof out, "%s/dev-init.out", w.dir);
    snprintf(err, sizeof err, "%s/dev-init.err", w.dir);
    char *di[] = {w.lienthong, "dev-init", w.dir, "--force", NULL};
    pid_t pid = spawn(di, out, err);
    if (pid < 0 || reap(pid, 120) != 0 || !write_broker_yaml(&w, queues) ||
        !broker_start(&w))
        goto out;
    snprintf(tokpath, sizeof tokpath, "%s/admin.token", w.dir);
    char *tok = slurp(tokpath);
    if (tok == NULL)
        goto out;
    snprintf(w.token, sizeof w.token, "%.*s", (int)strcspn(tok, "\r\n"), tok);
    free(tok);

    /* 1. Scrape latency, idle broker (every queue's series present). */
    hc h;
    hc_init(&h, w.admin_port);
    double load0 = loadavg(), cpu0 = cpu_seconds(w.broker);
    double *lat = calloc(scrapes, sizeof *lat);
    size_t bytes = 0, series = 0;
    for (unsigned i = 0; lat != NULL && i < scrapes; i++) {
        if (hc_get(&h, "/metrics", w.token, &lat[i], &bytes) != 200) {
            fprintf(stderr, "bench_scrape: GET /metrics failed\n");
            free(lat);
            goto out;
        }
    }
    if (lat == NULL)
        goto out;
    double cpu_per_scrape = (cpu_seconds(w.broker) - cpu0) / scrapes;
    {
        /* Count the queue series once, to show the scrape covers every queue. */
        double secs;
        h.keep = true;
        h.len = 0;
        if (hc_get(&h, "/metrics", w.token, &secs, &bytes) == 200 && h.text != NULL)
            for (const char *q = h.text; (q = strstr(q, "\nlienthong_queue_depth{")); q++)
                series++;
        free(h.text);
    }
    hc_close(&h);
    double med = median(lat, scrapes);
    printf("scrape  queues=%u (queue_depth series: %zu) bytes=%zu runs=%u  min=%.3f ms  "
           "median=%.3f ms  p99=%.3f ms  max=%.3f ms\n"
           "scrape  broker CPU per scrape (user+sys, /proc): %.3f ms; load average %.2f\n",
           queues, series, bytes, scrapes, lat[0] * 1e3, med * 1e3,
           pct(lat, scrapes, 99) * 1e3, lat[scrapes - 1] * 1e3, cpu_per_scrape * 1e3, load0);
    fflush(stdout);

    /* 2. Throughput, alternating A (no scraper) and B (scraper every interval_ms). */
    double a[ROUNDS_MAX], b[ROUNDS_MAX], ca[ROUNDS_MAX], cb[ROUNDS_MAX];
    /* Each block of four rounds (A B B A) gives one ratio B/A from neighbours in time, so
     * slow drift of the machine's load cancels within a block. */
    double all[ROUNDS_MAX], ratio[ROUNDS_MAX / 4];
    size_t nratio = 0;
    size_t na = 0, nb = 0;
    double msgs = strtod(messages, NULL);
    if (strchr(messages, 'k') || strchr(messages, 'K'))
        msgs *= 1e3;
    else if (strchr(messages, 'M'))
        msgs *= 1e6;
    scraper sc = {.port = w.admin_port, .token = w.token, .interval_ms = interval_ms};
    for (unsigned r = 0; r < rounds; r++) {
        bool with = (r % 4 == 1 || r % 4 == 2); /* A B B A A B B A ... */
        if (with) {
            atomic_store(&sc.stop, false);
            if (pthread_create(&sc.th, NULL, scrape_loop, &sc) != 0)
                goto out;
        }
        double c0 = cpu_seconds(w.broker);
        double mps = load_round(&w, r, messages, argv + optind, argc - optind);
        if (with) {
            atomic_store(&sc.stop, true);
            pthread_join(sc.th, NULL);
        }
        /* Broker CPU per message over the whole round (signing phase included, when the
         * broker idles but is scraped: this overstates the scraper's share). */
        double us = (cpu_seconds(w.broker) - c0) / msgs * 1e6;
        printf("round %2u  %-14s publish %.1f msgs/s  broker CPU %.1f us/msg\n", r,
               with ? "with scraper" : "no scraper", mps, us);
        fflush(stdout);
        if (mps <= 0)
            goto out;
        all[r] = mps;
        if (r % 4 == 3)
            ratio[nratio++] = (all[r - 2] + all[r - 1]) / (all[r - 3] + all[r]);
        if (with) {
            cb[nb] = us;
            b[nb++] = mps;
        } else {
            ca[na] = us;
            a[na++] = mps;
        }
    }
    if (na > 0 && nb > 0) {
        double ma = median(a, na), mb = median(b, nb);
        double ls = median(sc.lat, sc.n);
        printf("throughput  no scraper: median %.1f msgs/s (%zu rounds, %.1f..%.1f)\n", ma, na,
               a[0], a[na - 1]);
        printf("throughput  scraper every %u ms: median %.1f msgs/s (%zu rounds, %.1f..%.1f)\n",
               interval_ms, mb, nb, b[0], b[nb - 1]);
        printf("change  %+.2f %% (medians)\n", (mb - ma) / ma * 100);
        double mr = median(ratio, nratio);
        if (nratio > 0)
            printf("change  %+.2f %% (median of %zu A-B-B-A blocks' ratios, %+.1f..%+.1f %%)\n",
                   (mr - 1) * 100, nratio, (ratio[0] - 1) * 100, (ratio[nratio - 1] - 1) * 100);
        double ua = median(ca, na), ub = median(cb, nb);
        printf("broker CPU per message  no scraper: median %.1f us; with scraper: %.1f us "
               "(%+.2f %%)\n",
               ua, ub, (ub - ua) / ua * 100);
        printf("loop thread busy scraping: %.2f %% of its time (CPU per scrape / interval)\n",
               cpu_per_scrape * 1e3 / interval_ms * 100);
        printf("scrapes under load  n=%zu failed=%zu median=%.3f ms p99=%.3f ms\n", sc.n,
               sc.failed, ls * 1e3, pct(sc.lat, sc.n, 99) * 1e3);
        printf("{\"queues\":%u,\"scrape_bytes\":%zu,\"scrape_median_ms\":%.3f,"
               "\"scrape_p99_ms\":%.3f,\"load_scrape_median_ms\":%.3f,"
               "\"load_scrape_p99_ms\":%.3f,\"no_scraper_msgs_per_s\":%.1f,"
               "\"scraper_msgs_per_s\":%.1f,\"change_pct\":%.2f,\"rounds\":%u,"
               "\"interval_ms\":%u,\"broker_cpu_ms_per_scrape\":%.3f,"
               "\"loadavg_start\":%.2f,\"loadavg_end\":%.2f,"
               "\"cpu_us_per_msg_no_scraper\":%.2f,\"cpu_us_per_msg_scraper\":%.2f,"
               "\"block_ratio_change_pct\":%.2f}\n",
               queues, bytes, med * 1e3, pct(lat, scrapes, 99) * 1e3, ls * 1e3,
               pct(sc.lat, sc.n, 99) * 1e3, ma, mb, (mb - ma) / ma * 100, rounds, interval_ms,
               cpu_per_scrape * 1e3, load0, loadavg(), ua, ub, nratio ? (mr - 1) * 100 : 0.0);
    }
    free(sc.lat);
    free(lat);
    status = 0;
out:
    if (w.broker > 0) {
        kill(w.broker, SIGTERM);
        reap(w.broker, 30);
    }
    if (keep || status != 0)
        fprintf(stderr, "bench_scrape: kept %s\n", w.dir);
    else
        nftw(w.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
