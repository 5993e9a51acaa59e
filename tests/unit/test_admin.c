/* test_admin.c - the admin HTTP server: started on an ephemeral 127.0.0.1 port in this
 * process (its libuv loop on a thread of its own) with a fake provider, and spoken to with
 * a raw socket client; plus the session layer driven directly, byte by byte. */
#include "admin.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "prom_parse.h"

#define TOKEN "test-token-0123456789abcdef"

/* ---- fake daemon ---- */

struct fake {
    bool store_open;
    bool crl_expired;
    int dlq_calls;
    bool last_payload;
    size_t last_limit;
};

static void fake_status(void *ctx, lt_admin_status *st)
{
    struct fake *f = ctx;
    st->store_open = f->store_open;
    if (!f->store_open)
        snprintf(st->store_reason, sizeof st->store_reason, "LMDB at data/: not opened yet");
    st->trust_loaded = true;
    st->crl_configured = true;
    st->crl_next_update = time(NULL) + (f->crl_expired ? -3600 : 3600);
}

static lt_err fake_overview(void *ctx, json_object **out)
{
    (void)ctx;
    *out = json_object_new_object();
    json_object_object_add(*out, "name", json_object_new_string("hcmc-test"));
    return LT_OK;
}

static lt_err fake_queues(void *ctx, json_object **out)
{
    (void)ctx;
    *out = json_object_new_object();
    json_object *q = json_object_new_object();
    json_object_object_add(q, "owner", json_object_new_string("VN:GOV:000.00.00.G01:csdldancu"));
    json_object_object_add(*out, "dancu.capnhat", q);
    return LT_OK;
}

static lt_err fake_dlq(void *ctx, const char *queue, bool payload, size_t limit,
                       json_object **out, lt_why *why)
{
    struct fake *f = ctx;
    f->dlq_calls++;
    f->last_payload = payload;
    f->last_limit = limit;
    if (strcmp(queue, "dancu.capnhat") != 0)
        return lt_fail(why, LT_ENOQUEUE, "no queue %s", queue);
    *out = json_object_new_array();
    json_object *e = json_object_new_object();
    json_object_object_add(e, "seq", json_object_new_int(7));
    json_object_object_add(e, "reason", json_object_new_string("max_deliver reached"));
    if (payload)
        json_object_object_add(e, "envelope", json_object_new_string("AAEC"));
    json_object_array_add(*out, e);
    return LT_OK;
}

/* ---- the server on its thread ---- */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    lt_admin *admin;
    lt_metrics *m;
    struct fake fake;
    pthread_t th;
    uint16_t port;
    int agency;
    int queue;
};

static void on_stop(uv_async_t *h)
{
    struct server *s = h->data;
    lt_admin_destroy(&s->admin);
    uv_close((uv_handle_t *)h, NULL);
}

static void *run_loop(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* A server on an ephemeral port; request_timeout_ms 0 keeps the default (10 s). */
static struct server *server_start(unsigned request_timeout_ms)
{
    struct server *s = calloc(1, sizeof *s);
    s->fake.store_open = true;
    assert_int_equal(lt_metrics_new(32, 64, &s->m), LT_OK);
    s->agency = lt_metrics_agency(s->m, "VN:GOV:000.00.00.H29.760:hotich", "UBND Quận 1 — Hộ tịch");
    s->queue = lt_metrics_queue(s->m, "dancu.capnhat");
    lt_admin_config cfg;
    lt_admin_config_defaults(&cfg);
    cfg.port = 0;
    cfg.token = TOKEN;
    cfg.data_dir = ".";
    cfg.min_free_bytes = 1;
    cfg.max_conns = 4;
    cfg.max_header_bytes = 4096;
    cfg.max_body_bytes = 1024;
    cfg.request_timeout_ms = request_timeout_ms;
    lt_admin_provider p = {.ctx = &s->fake, .status = fake_status, .overview = fake_overview,
                           .queues = fake_queues, .dlq = fake_dlq};
    lt_why why = {""};
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(lt_admin_new(&cfg, s->m, &p, &s->admin, &why), LT_OK);
    assert_int_equal(lt_admin_start(s->admin, &s->loop, &why), LT_OK);
    s->port = lt_admin_port(s->admin);
    assert_true(s->port != 0);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    assert_int_equal(pthread_create(&s->th, NULL, run_loop, s), 0);
    return s;
}

static void server_stop(struct server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->th, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0); /* every handle was closed */
    lt_metrics_destroy(&s->m);
    free(s);
}

static int setup(void **state)
{
    *state = server_start(0);
    return 0;
}

static int teardown(void **state)
{
    server_stop(*state);
    return 0;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- raw socket client ---- */

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0}; /* bounds every read */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early (limits): what it said is still read */
        p += w;
        n -= (size_t)w;
    }
}

/* Everything until the server closes (or 5 s pass). Caller frees. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct resp {
    int status;
    char *raw;
    size_t len;
    const char *body;
};

/* One request on a fresh connection; raw is sent as is. */
static struct resp exchange(struct server *s, const char *raw, size_t rawlen)
{
    int fd = dial(s->port);
    send_all(fd, raw, rawlen);
    shutdown(fd, SHUT_WR);
    struct resp r = {0};
    r.raw = read_all(fd, &r.len);
    close(fd);
    sscanf(r.raw, "HTTP/1.1 %d", &r.status);
    const char *b = strstr(r.raw, "\r\n\r\n");
    r.body = b ? b + 4 : "";
    return r;
}

static struct resp get(struct server *s, const char *path, const char *auth)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sConnection: close\r\n\r\n",
                     path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    return exchange(s, req, (size_t)n);
}

/* ---- tests ---- */

static void healthz_answers_without_a_token(void **state)
{
    struct resp r = get(*state, "/healthz", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    assert_non_null(strstr(r.raw, "Content-Type: application/json"));
    free(r.raw);
}

static void readyz_reports_each_check_with_its_reason(void **state)
{
    struct server *s = *state;
    struct resp r = get(s, "/readyz", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"ready\":true"));
    assert_non_null(strstr(r.body, "\"name\":\"disk\",\"ok\":true"));
    free(r.raw);

    s->fake.crl_expired = true;
    s->fake.store_open = false;
    r = get(s, "/readyz", NULL);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"ready\":false"));
    assert_non_null(strstr(r.body, "\"name\":\"store\",\"ok\":false,\"reason\":\"LMDB at data/: not opened yet\""));
    assert_non_null(strstr(r.body, "CRL expired at"));
    assert_non_null(strstr(r.body, "\"name\":\"trust_root\",\"ok\":true"));
    free(r.raw);
    s->fake.crl_expired = false;
    s->fake.store_open = true;
}

static void metrics_needs_the_bearer_token(void **state)
{
    struct resp r = get(*state, "/metrics", NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.raw, "WWW-Authenticate: Bearer"));
    free(r.raw);
    r = get(*state, "/metrics", "Bearer not-the-token-0123456789abcdef");
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.raw, "error=\"invalid_token\""));
    free(r.raw);
    r = get(*state, "/metrics", "Bearer " TOKEN "x"); /* a prefix of the right one is not it */
    assert_int_equal(r.status, 401);
    free(r.raw);
    r = get(*state, "/metrics", "Basic " TOKEN);
    assert_int_equal(r.status, 401);
    free(r.raw);
    r = get(*state, "/api/v1/nothing-here", NULL); /* unknown paths do not leak a 404 */
    assert_int_equal(r.status, 401);
    free(r.raw);
    r = get(*state, "/metrics", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.raw, "Content-Type: text/plain; version=0.0.4"));
    free(r.raw);
}

static void scraped_counters_follow_a_known_workload(void **state)
{
    struct server *s = *state;
    struct resp r0 = get(s, "/metrics", "Bearer " TOKEN);
    json_object *p0 = prom_parse(r0.body, r0.len - (size_t)(r0.body - r0.raw));
    assert_non_null(p0);
    double pub0 = prom_sample(p0, "lienthong_published_total", "agency", "VN:GOV:000.00.00.H29.760:hotich");
    double del0 = prom_sample(p0, "lienthong_deliveries_total", "queue", "dancu.capnhat");
    json_object_put(p0);
    free(r0.raw);

    for (int i = 0; i < 250; i++) {
        lt_metrics_on_publish(s->m, s->agency, 1024);
        lt_metrics_on_ack(s->m, s->agency, false);
        lt_metrics_on_deliver(s->m, s->queue, false);
    }
    lt_metrics_on_nack(s->m, s->agency, LT_EACL);

    struct resp r = get(s, "/metrics", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    json_object *p = prom_parse(r.body, r.len - (size_t)(r.body - r.raw));
    assert_non_null(p);
    assert_true(prom_sample(p, "lienthong_published_total", "agency", "VN:GOV:000.00.00.H29.760:hotich") == pub0 + 250);
    assert_true(prom_sample(p, "lienthong_deliveries_total", "queue", "dancu.capnhat") == del0 + 250);
    assert_true(prom_sample(p, "lienthong_nacked_total", "reason", "ACL_DENIED") >= 1);
    assert_string_equal(prom_type(p, "lienthong_fsync_duration_seconds"), "histogram");
    assert_string_equal(prom_type(p, "lienthong_published"), "counter");
    assert_true(prom_sample(p, "lienthong_disk_free_bytes", NULL, NULL) > 0);
    json_object_put(p);
    free(r.raw);
}

static void api_answers_json_in_utf8(void **state)
{
    struct server *s = *state;
    lt_metrics_on_publish(s->m, s->agency, 10);
    struct resp r = get(s, "/api/v1/agencies", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.raw, "charset=utf-8"));
    assert_non_null(strstr(r.body, "\"name\":\"UBND Quận 1 — Hộ tịch\""));
    free(r.raw);

    r = get(s, "/api/v1/overview", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"broker\":{\"name\":\"hcmc-test\"}"));
    assert_non_null(strstr(r.body, "\"totals\":"));
    free(r.raw);

    r = get(s, "/api/v1/queues", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"owner\":\"VN:GOV:000.00.00.G01:csdldancu\""));
    free(r.raw);

    lt_metrics_note_rejection(s->m, "VN:GOV:x", "79.760.hotich", "ab", LT_ESIG, "chữ ký sai");
    r = get(s, "/api/v1/rejections?limit=1", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"reason\":\"chữ ký sai\""));
    free(r.raw);
}

static void dlq_shows_payload_only_when_asked(void **state)
{
    struct server *s = *state;
    struct resp r = get(s, "/api/v1/dlq/dancu.capnhat", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_false(s->fake.last_payload);
    assert_int_equal(s->fake.last_limit, 100);
    assert_null(strstr(r.body, "envelope"));
    assert_non_null(strstr(r.body, "max_deliver reached"));
    free(r.raw);
    r = get(s, "/api/v1/dlq/dancu%2Ecapnhat?payload=1&limit=5", "Bearer " TOKEN);
    assert_int_equal(r.status, 200);
    assert_true(s->fake.last_payload);
    assert_int_equal(s->fake.last_limit, 5);
    assert_non_null(strstr(r.body, "\"envelope\":\"AAEC\""));
    free(r.raw);
    r = get(s, "/api/v1/dlq/nope", "Bearer " TOKEN);
    assert_int_equal(r.status, 404);
    free(r.raw);
    r = get(s, "/api/v1/dlq/a%2Fb", "Bearer " TOKEN); /* no slash smuggled into a name */
    assert_int_equal(r.status, 404);
    free(r.raw);
}

static void malformed_requests_get_400_and_the_server_lives_on(void **state)
{
    static const char *const bad[] = {
        "THIS IS NOT HTTP\r\n\r\n",
        "GET / HTTP/9.Z\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct resp r = exchange(*state, bad[i], strlen(bad[i]));
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.raw, "Connection: close"));
        free(r.raw);
    }
    struct resp r = get(*state, "/healthz", NULL);
    assert_int_equal(r.status, 200);
    free(r.raw);
}

static void oversized_headers_and_bodies_are_refused(void **state)
{
    size_t n = 8192;
    char *req = malloc(n + 128);
    int k = snprintf(req, 128, "GET /healthz HTTP/1.1\r\nX-Big: ");
    memset(req + k, 'a', n);
    memcpy(req + k + n, "\r\n\r\n", 5);
    struct resp r = exchange(*state, req, (size_t)k + n + 4);
    assert_int_equal(r.status, 431);
    free(r.raw);
    free(req);

    const char body[] = "POST /healthz HTTP/1.1\r\nContent-Length: 100000\r\n\r\nxxxx";
    r = exchange(*state, body, sizeof body - 1);
    assert_int_equal(r.status, 413);
    free(r.raw);

    const char post[] = "POST /healthz HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxx";
    r = exchange(*state, post, sizeof post - 1);
    assert_int_equal(r.status, 405);
    free(r.raw);
}

static void keep_alive_answers_pipelined_requests_in_order(void **state)
{
    const char two[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                       "HEAD /metrics HTTP/1.1\r\nAuthorization: Bearer " TOKEN "\r\n\r\n"
                       "GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\n\r\n"; /* after close: ignored */
    struct resp r = exchange(*state, two, sizeof two - 1);
    const char *a = strstr(r.raw, "HTTP/1.1 200");
    assert_non_null(a);
    const char *b = strstr(a + 1, "HTTP/1.1 200");
    assert_non_null(b);
    assert_non_null(strstr(b, "text/plain; version=0.0.4"));
    assert_null(strstr(b, "# HELP")); /* HEAD: no body */
    const char *c = strstr(b + 1, "HTTP/1.1 200");
    assert_non_null(c);
    assert_non_null(strstr(c, "\"ready\":true"));
    assert_null(strstr(c + 1, "HTTP/1.1"));
    free(r.raw);
}

static void dashboard_is_served_with_utf8_and_no_external_sources(void **state)
{
    struct resp r = get(*state, "/", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.raw, "Content-Type: text/html; charset=utf-8"));
    assert_non_null(strstr(r.raw, "Content-Security-Policy: default-src 'self'"));
    assert_non_null(strstr(r.body, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(r.body, "<canvas"));
    assert_non_null(strstr(r.body, "Hàng đợi"));
    assert_null(strstr(r.body, "http://"));
    assert_null(strstr(r.body, "https://"));
    free(r.raw);
    r = get(*state, "/app.js", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.raw, "text/javascript"));
    assert_non_null(strstr(r.body, "sessionStorage"));
    assert_null(strstr(r.body, "https://"));
    free(r.raw);
    r = get(*state, "/style.css", NULL);
    assert_int_equal(r.status, 200);
    free(r.raw);
}

static void a_newcomer_past_the_limit_evicts_the_connection_waiting_longest(void **state)
{
    struct server *s = *state;
    int fds[4]; /* max_conns, each left idle after one answered request */
    char buf[512];
    for (int i = 0; i < 4; i++) {
        fds[i] = dial(s->port);
        /* each answered once, so the server surely accepted it before the next */
        send_all(fds[i], "GET /healthz HTTP/1.1\r\n\r\n", 25);
        assert_true(recv(fds[i], buf, sizeof buf, 0) > 0);
    }
    struct resp r = get(s, "/healthz", NULL);
    assert_int_equal(r.status, 200);
    free(r.raw);
    /* the first, idle longest, made room: it reads EOF (not the 5 s receive timeout) */
    ssize_t n = recv(fds[0], buf, sizeof buf, 0);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    /* the others are still served */
    send_all(fds[3], "GET /healthz HTTP/1.1\r\n\r\n", 25);
    n = recv(fds[3], buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    for (int i = 0; i < 4; i++)
        close(fds[i]);
}

/* Send the next byte of a request whose X-Slow header never ends. */
static void trickle(int fd, size_t *sent)
{
    static const char head[] = "GET /healthz HTTP/1.1\r\nX-Slow: ";
    char b = *sent < sizeof head - 1 ? head[*sent] : 'a';
    send_all(fd, &b, 1);
    (*sent)++;
}

static void healthz_answers_while_more_slow_clients_than_slots_trickle_bytes(void **state)
{
    struct server *s = *state;
    enum { SLOW = 12 }; /* three times max_conns */
    int fds[SLOW];
    size_t sent[SLOW] = {0};
    for (int i = 0; i < SLOW; i++) { /* each new one trickles, and so do the older ones */
        fds[i] = dial(s->port);
        for (int j = 0; j <= i; j++)
            trickle(fds[j], &sent[j]);
    }
    for (int round = 0; round < 3; round++) {
        for (int j = 0; j < SLOW; j++)
            trickle(fds[j], &sent[j]);
        double t0 = now_ms();
        struct resp r = get(s, "/healthz", NULL);
        double took = now_ms() - t0;
        assert_int_equal(r.status, 200);
        free(r.raw);
        assert_true(took < 2000); /* answered at once, not after some timeout */
    }
    for (int i = 0; i < SLOW; i++)
        close(fds[i]);
}

static void a_request_trickled_past_its_deadline_gets_408(void **state)
{
    (void)state;
    struct server *t = server_start(400); /* idle timeout stays 30 s */
    int fd = dial(t->port);
    double t0 = now_ms();
    size_t sent = 0;
    bool answered = false;
    /* a byte every 50 ms, far inside the idle timeout; bounded at 100 bytes (5 s) */
    for (int i = 0; i < 100 && !answered; i++) {
        trickle(fd, &sent);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        answered = poll(&p, 1, 50) > 0;
    }
    double took = now_ms() - t0;
    assert_true(answered);
    size_t len;
    char *raw = read_all(fd, &len);
    close(fd);
    assert_non_null(strstr(raw, "HTTP/1.1 408 Request Timeout"));
    assert_non_null(strstr(raw, "Connection: close"));
    free(raw);
    /* not before its deadline (the server's loop clock may run a few ms behind ours), and
     * not only when the trickle ends (100 bytes, 5 s) */
    if (!(took >= 350 && took < 4500))
        fail_msg("408 after %.0f ms (deadline 400 ms)", took);

    /* between keep-alive requests the deadline does not run, and each request gets its own */
    fd = dial(t->port);
    char buf[512];
    for (int i = 0; i < 2; i++) {
        send_all(fd, "GET /healthz HTTP/1.1\r\n\r\n", 25);
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 600), 0); /* still open past 400 ms, and silent */
    }
    close(fd);
    server_stop(t);
}

static void top_once_prints_the_overview_from_the_api(void **state)
{
    struct server *s = *state;
    char cli[1024], tokf[] = "/tmp/lt_top_token_XXXXXX";
    snprintf(cli, sizeof cli, "%s/tools/lienthong", LT_TEST_BINDIR);
    if (access(cli, X_OK) != 0)
        skip(); /* the CLI target is not built in this tree */
    int fd = mkstemp(tokf);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, TOKEN "\n", sizeof TOKEN), (ssize_t)sizeof TOKEN);
    close(fd);
    lt_metrics_on_publish(s->m, s->agency, 5);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s top --once --admin http://127.0.0.1:%u --token-file %s 2>&1",
             cli, s->port, tokf);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "lienthong top"));
    assert_non_null(strstr(out, "UBND Quận 1 — Hộ tịch"));
    assert_non_null(strstr(out, "dancu.capnhat"));
    assert_null(strstr(out, "\x1b[")); /* --once: no escapes */

    /* a wrong token is reported, with a failing exit status */
    assert_int_equal(truncate(tokf, 0), 0);
    fd = open(tokf, O_WRONLY);
    assert_int_equal(write(fd, "wrong-token-0123456789\n", 23), 23);
    close(fd);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "refused"));
    unlink(tokf);
}

/* ---- the session without a socket ---- */

static void a_request_fed_byte_by_byte_gets_the_same_answer(void **state)
{
    struct server *s = *state;
    (void)s;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    lt_admin_config cfg;
    lt_admin_config_defaults(&cfg);
    cfg.token = TOKEN;
    lt_admin *a;
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, NULL), LT_OK);
    lt_admin_session *ss;
    assert_int_equal(lt_admin_session_new(a, &ss), LT_OK);
    const char req[] = "GET /api/v1/overview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                       "\r\nX-Other: 1\r\n\r\n";
    lt_metrics_buf out = {0};
    for (size_t i = 0; i < sizeof req - 1; i++)
        assert_true(lt_admin_session_feed(ss, req + i, 1, &out));
    assert_non_null(out.data);
    assert_non_null(strstr(out.data, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(out.data, "\"totals\""));
    lt_metrics_buf_fini(&out);
    /* readyz without a status provider says why */
    const char rz[] = "GET /readyz HTTP/1.1\r\n\r\n";
    assert_true(lt_admin_session_feed(ss, rz, sizeof rz - 1, &out));
    assert_non_null(strstr(out.data, "503"));
    assert_non_null(strstr(out.data, "the broker reports no status"));
    lt_metrics_buf_fini(&out);
    const char dlq[] = "GET /api/v1/dlq/q HTTP/1.1\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
    assert_true(lt_admin_session_feed(ss, dlq, sizeof dlq - 1, &out));
    assert_non_null(strstr(out.data, "501"));
    lt_metrics_buf_fini(&out);
    lt_admin_session_destroy(&ss);
    assert_null(ss);
    lt_admin_destroy(&a);
    assert_null(a);
    lt_metrics_destroy(&m);
}

static void non_loopback_addresses_need_allow_remote(void **state)
{
    (void)state;
    lt_metrics *m;
    assert_int_equal(lt_metrics_new(8, 8, &m), LT_OK);
    lt_admin_config cfg;
    lt_admin_config_defaults(&cfg);
    cfg.token = TOKEN;
    lt_admin *a = NULL;
    lt_why why = {""};
    cfg.host = "0.0.0.0";
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "allow_remote"));
    cfg.host = "10.1.2.3";
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_ECONFIG);
    cfg.host = "admin.example";
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_ECONFIG);
    cfg.host = "10.1.2.3";
    cfg.allow_remote = true;
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_OK);
    lt_admin_destroy(&a);
    cfg.host = "::1";
    cfg.allow_remote = false;
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_OK);
    lt_admin_destroy(&a);
    cfg.token = "short";
    assert_int_equal(lt_admin_new(&cfg, m, NULL, &a, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "token"));

    char host[64];
    uint16_t port = 0;
    assert_int_equal(lt_admin_parse_listen("127.0.0.1:7401", host, sizeof host, &port, NULL), LT_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7401);
    assert_int_equal(lt_admin_parse_listen("[::1]:9", host, sizeof host, &port, NULL), LT_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(lt_admin_parse_listen("127.0.0.1", host, sizeof host, &port, NULL), LT_EINVAL);
    assert_int_equal(lt_admin_parse_listen("127.0.0.1:99999", host, sizeof host, &port, NULL), LT_EINVAL);
    assert_true(lt_admin_is_loopback("127.8.9.1"));
    assert_false(lt_admin_is_loopback("128.0.0.1"));
    lt_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_answers_without_a_token),
        cmocka_unit_test(readyz_reports_each_check_with_its_reason),
        cmocka_unit_test(metrics_needs_the_bearer_token),
        cmocka_unit_test(scraped_counters_follow_a_known_workload),
        cmocka_unit_test(api_answers_json_in_utf8),
        cmocka_unit_test(dlq_shows_payload_only_when_asked),
        cmocka_unit_test(malformed_requests_get_400_and_the_server_lives_on),
        cmocka_unit_test(oversized_headers_and_bodies_are_refused),
        cmocka_unit_test(keep_alive_answers_pipelined_requests_in_order),
        cmocka_unit_test(dashboard_is_served_with_utf8_and_no_external_sources),
        cmocka_unit_test(a_newcomer_past_the_limit_evicts_the_connection_waiting_longest),
        cmocka_unit_test(healthz_answers_while_more_slow_clients_than_slots_trickle_bytes),
        cmocka_unit_test(a_request_trickled_past_its_deadline_gets_408),
        cmocka_unit_test(top_once_prints_the_overview_from_the_api),
        cmocka_unit_test(a_request_fed_byte_by_byte_gets_the_same_answer),
        cmocka_unit_test(non_loopback_addresses_need_allow_remote),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
