/*
 * benchkit.c - the shared workload, clock and report of the broker load programs.
 *
 * Per-message slots (send time, publish->ack latency, end-to-end latency) are indexed by
 * message index and written by exactly one thread each: the publisher that owns the index
 * writes its send time, the thread that runs the client library's ack callback writes its
 * ack latency, consumer 0 writes its end-to-end latency. Send times are atomics because
 * they are read by another thread than the one that wrote them.
 */
#include "benchkit.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MAGIC 0x4c54424e43484d31ull /* "LTBNCHM1" */

typedef struct sample {
    uint64_t acked;
    int64_t t_ns;
    long server_rss_kib, server_anon_kib; /* RSS, and its anonymous part (heap, stacks) */
} sample;

struct lt_bench_run {
    lt_bench_params p;
    int64_t t0;
    double cpu0;                           /* this process's CPU seconds at the start */
    double server_cpu0;                    /* --server-pid's CPU seconds at the start, or -1 */
    _Atomic int64_t *sent;                 /* [N] send time, 0 = not sent */
    int64_t *lat_ack;                      /* [N] ns, -1 = no ack */
    int64_t *lat_e2e;                      /* [N] ns, -1 = not received by consumer 0 */
    uint8_t *seen[LT_BENCH_CONSUMERS_MAX]; /* [N/8] bitmaps, one writer each */
    _Atomic uint64_t consumed[LT_BENCH_CONSUMERS_MAX];
    int64_t cons_end[LT_BENCH_CONSUMERS_MAX];
    _Atomic uint64_t completed, acked_ok, errors;
    _Atomic int64_t pub_end;
    sample *samples;
    size_t n_samples_max;
};

int64_t lt_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------- */

static int parse_u64(const char *name, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (end && (*end == 'k' || *end == 'K')) {
        mul = 1000;
        end++;
    } else if (end && (*end == 'm' || *end == 'M')) {
        mul = 1000000;
        end++;
    }
    if (errno || end == s || *end || s[0] == '-' || (mul > 1 && v > UINT64_MAX / mul)) {
        fprintf(stderr, "--%s: '%s' is not a count (digits, optional k or M)\n", name, s);
        return -1;
    }
    *out = (uint64_t)v * mul;
    return 0;
}

static int parse_uint(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v;
    if (parse_u64(name, s, &v) < 0)
        return -1;
    if (v < lo || v > hi) {
        fprintf(stderr, "--%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]\n", name, v,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *name, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || isinf(v)) {
        fprintf(stderr, "--%s: '%s' is not a non-negative number\n", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

void lt_bench_params_usage(FILE *out)
{
    fputs("common options:\n"
          "  --publishers P       publisher threads, each with its own connection (2)\n"
          "  --messages N         messages in total, k/M suffixes allowed (200k)\n"
          "  --size BYTES         payload size (1024)\n"
          "  --window W           unacked publishes per publisher at most (1024)\n"
          "  --consumers C        consumers, each receives and acks every message (1)\n"
          "  --rate R             total publish rate in msgs/s, 0 = flat out (0)\n"
          "  --no-consume         publish only (backlog runs)\n"
          "  --progress-every K   sample throughput and server RSS every K acks (0 = off)\n"
          "  --server-pid PID     the server whose RSS the samples read\n"
          "  --idle-timeout S     give up after S seconds without progress (30)\n",
          out);
}

static bool is_flag(const char *name, const char *const *flags)
{
    for (size_t i = 0; flags && flags[i]; i++)
        if (strcmp(flags[i], name) == 0)
            return true;
    return false;
}

static int set_common(lt_bench_params *p, const char *name, const char *val, bool *known)
{
    uint64_t v;
    *known = true;
    if (strcmp(name, "publishers") == 0) {
        if (parse_uint(name, val, 1, LT_BENCH_PUBLISHERS_MAX, &v) < 0)
            return -1;
        p->publishers = (unsigned)v;
    } else if (strcmp(name, "messages") == 0) {
        if (parse_uint(name, val, 1, UINT64_C(1) << 36, &v) < 0)
            return -1;
        p->messages = v;
    } else if (strcmp(name, "size") == 0) {
        if (parse_uint(name, val, LT_BENCH_PAYLOAD_MIN, 64u << 20, &v) < 0)
            return -1;
        p->size = (size_t)v;
    } else if (strcmp(name, "window") == 0) {
        if (parse_uint(name, val, 1, 1u << 20, &v) < 0)
            return -1;
        p->window = (unsigned)v;
    } else if (strcmp(name, "consumers") == 0) {
        if (parse_uint(name, val, 1, LT_BENCH_CONSUMERS_MAX, &v) < 0)
            return -1;
        p->consumers = (unsigned)v;
    } else if (strcmp(name, "rate") == 0) {
        return parse_double(name, val, &p->rate);
    } else if (strcmp(name, "progress-every") == 0) {
        return parse_u64(name, val, &p->progress_every);
    } else if (strcmp(name, "server-pid") == 0) {
        if (parse_uint(name, val, 1, INT32_MAX, &v) < 0)
            return -1;
        p->server_pid = (int)v;
    } else if (strcmp(name, "idle-timeout") == 0) {
        return parse_double(name, val, &p->idle_timeout_s);
    } else {
        *known = false;
    }
    return 0;
}

int lt_bench_params_parse(int argc, char **argv, lt_bench_params *p, const char *const *extra_flags,
                          lt_bench_opt_cb extra, void *user)
{
    *p = (lt_bench_params){.publishers = 2,
                           .messages = 200000,
                           .size = 1024,
                           .window = 1024,
                           .consumers = 1,
                           .consume = true,
                           .idle_timeout_s = 30};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "unexpected argument '%s'\n", arg);
            return -1;
        }
        char name[64];
        const char *eq = strchr(arg + 2, '=');
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen == 0 || nlen >= sizeof name) {
            fprintf(stderr, "bad option '%s'\n", arg);
            return -1;
        }
        memcpy(name, arg + 2, nlen);
        name[nlen] = '\0';
        if (strcmp(name, "help") == 0)
            return 1;
        if (strcmp(name, "no-consume") == 0 || is_flag(name, extra_flags)) {
            if (eq) {
                fprintf(stderr, "--%s takes no value\n", name);
                return -1;
            }
            if (strcmp(name, "no-consume") == 0)
                p->consume = false;
            else if (!extra || extra(user, name, NULL) < 0)
                return -1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "--%s needs a value\n", name);
            return -1;
        }
        bool known;
        if (set_common(p, name, val, &known) < 0)
            return -1;
        if (!known && (!extra || extra(user, name, val) < 0)) {
            if (!extra)
                fprintf(stderr, "unknown option --%s\n", name);
            return -1;
        }
    }
    if (p->size < LT_BENCH_PAYLOAD_MIN) {
        fprintf(stderr, "--size must be at least %d\n", LT_BENCH_PAYLOAD_MIN);
        return -1;
    }
    return 0;
}

/* ---- payload ------------------------------------------------------------------------- */

/* Payload layout (little-endian):  0 magic u64 | 8 index u64 | 16.. pattern byte (i * 31) */
static void put_u64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

void lt_bench_payload_fill(uint8_t *buf, size_t size, uint64_t idx)
{
    put_u64(buf, PAYLOAD_MAGIC);
    put_u64(buf + 8, idx);
    for (size_t i = 16; i < size; i++)
        buf[i] = (uint8_t)(i * 31u);
}

bool lt_bench_payload_index(const uint8_t *buf, size_t len, uint64_t *idx)
{
    if (len < 16 || get_u64(buf) != PAYLOAD_MAGIC)
        return false;
    *idx = get_u64(buf + 8);
    return true;
}

/* ---- run ----------------------------------------------------------------------------- */

lt_bench_run *lt_bench_run_new(const lt_bench_params *p)
{
    lt_bench_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->p = *p;
    size_t n = (size_t)p->messages;
    r->sent = calloc(n, sizeof *r->sent);
    r->lat_ack = malloc(n * sizeof *r->lat_ack);
    r->lat_e2e = malloc(n * sizeof *r->lat_e2e);
    if (!r->sent || !r->lat_ack || !r->lat_e2e)
        goto out_free;
    for (size_t i = 0; i < n; i++)
        r->lat_ack[i] = r->lat_e2e[i] = -1;
    for (unsigned c = 0; c < p->consumers; c++)
        if (!(r->seen[c] = calloc(n / 8 + 1, 1)))
            goto out_free;
    if (p->progress_every) {
        r->n_samples_max = (size_t)(p->messages / p->progress_every) + 1;
        if (!(r->samples = calloc(r->n_samples_max, sizeof *r->samples)))
            goto out_free;
    }
    return r;
out_free:
    lt_bench_run_destroy(&r);
    return NULL;
}

void lt_bench_run_destroy(lt_bench_run **rp)
{
    lt_bench_run *r = rp ? *rp : NULL;
    if (!r)
        return;
    free(r->sent);
    free(r->lat_ack);
    free(r->lat_e2e);
    for (unsigned c = 0; c < LT_BENCH_CONSUMERS_MAX; c++)
        free(r->seen[c]);
    free(r->samples);
    free(r);
    *rp = NULL;
}

const lt_bench_params *lt_bench_run_params(const lt_bench_run *r)
{
    return &r->p;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Process pid's user + system CPU seconds (all its threads, exited ones included: utime and
 * stime of /proc/PID/stat, fields 14 and 15), or -1 when unreadable. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields 3.. follow the
     * last ')'. utime and stime are then the 12th and 13th. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)(ut + st) / (double)hz : -1;
}

void lt_bench_start(lt_bench_run *r)
{
    r->server_cpu0 = r->p.server_pid > 0 ? proc_cpu_s(r->p.server_pid) : -1;
    r->cpu0 = self_cpu_s();
    r->t0 = lt_bench_now_ns();
}

int64_t lt_bench_start_ns(const lt_bench_run *r)
{
    return r->t0;
}

int64_t lt_bench_pace_at(const lt_bench_run *r, unsigned pub, uint64_t k)
{
    if (r->p.rate <= 0)
        return 0;
    /* Publishers interleave: publisher pub's k-th message is overall number k*P + pub. */
    double at_s = ((double)k * r->p.publishers + pub) / r->p.rate;
    return r->t0 + (int64_t)(at_s * 1e9);
}

void lt_bench_pace(const lt_bench_run *r, unsigned pub, uint64_t k)
{
    int64_t at = lt_bench_pace_at(r, pub, k);
    if (at == 0)
        return;
    struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void lt_bench_mark_sent(lt_bench_run *r, uint64_t idx)
{
    if (idx < r->p.messages)
        atomic_store_explicit(&r->sent[idx], lt_bench_now_ns(), memory_order_relaxed);
}

static void take_sample(lt_bench_run *r, uint64_t n, int64_t now)
{
    size_t i = (size_t)(n / r->p.progress_every) - 1;
    if (i >= r->n_samples_max)
        return;
    r->samples[i].acked = n;
    r->samples[i].t_ns = now;
    r->samples[i].server_rss_kib =
        r->p.server_pid > 0 ? lt_bench_proc_kib(r->p.server_pid, "VmRSS") : -1;
    r->samples[i].server_anon_kib =
        r->p.server_pid > 0 ? lt_bench_proc_kib(r->p.server_pid, "RssAnon") : -1;
}

void lt_bench_mark_acked(lt_bench_run *r, uint64_t idx, bool ok)
{
    int64_t now = lt_bench_now_ns();
    if (idx < r->p.messages && ok) {
        int64_t sent = atomic_load_explicit(&r->sent[idx], memory_order_relaxed);
        if (sent > 0)
            r->lat_ack[idx] = now - sent;
        atomic_fetch_add(&r->acked_ok, 1);
    } else {
        atomic_fetch_add(&r->errors, 1);
    }
    uint64_t n = atomic_fetch_add(&r->completed, 1) + 1;
    if (r->p.progress_every && n % r->p.progress_every == 0)
        take_sample(r, n, now);
    if (n == r->p.messages)
        atomic_store(&r->pub_end, now);
}

bool lt_bench_mark_consumed(lt_bench_run *r, unsigned c, uint64_t idx)
{
    if (c >= r->p.consumers || idx >= r->p.messages)
        return false;
    uint8_t bit = (uint8_t)(1u << (idx & 7));
    if (r->seen[c][idx >> 3] & bit)
        return false;
    r->seen[c][idx >> 3] |= bit;
    if (c == 0) {
        int64_t sent = atomic_load_explicit(&r->sent[idx], memory_order_relaxed);
        if (sent > 0)
            r->lat_e2e[idx] = lt_bench_now_ns() - sent;
    }
    atomic_fetch_add(&r->consumed[c], 1);
    return true;
}

void lt_bench_consumer_done(lt_bench_run *r, unsigned c)
{
    if (c < r->p.consumers)
        r->cons_end[c] = lt_bench_now_ns();
}

uint64_t lt_bench_consumed(const lt_bench_run *r, unsigned c)
{
    return c < r->p.consumers ? atomic_load(&r->consumed[c]) : 0;
}

uint64_t lt_bench_completed(const lt_bench_run *r)
{
    return atomic_load(&r->completed);
}

void lt_bench_count_error(lt_bench_run *r)
{
    atomic_fetch_add(&r->errors, 1);
}

long lt_bench_proc_kib(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* ---- report -------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void lt_bench_print_latency(FILE *out, const char *name, int64_t *v, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= 0)
            v[m++] = v[i];
    if (m == 0) {
        fprintf(out, ",\"%s\":null", name);
        return;
    }
    qsort(v, m, sizeof *v, cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += (double)v[i];
    static const double qs[] = {0.50, 0.90, 0.99, 0.999};
    static const char *const qn[] = {"p50", "p90", "p99", "p999"};
    fprintf(out, ",\"%s\":{\"count\":%zu", name, m);
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)ceil(qs[k] * (double)m);
        if (rank < 1)
            rank = 1;
        fprintf(out, ",\"%s\":%.1f", qn[k], (double)v[rank - 1] / 1e3);
    }
    fprintf(out, ",\"max\":%.1f,\"mean\":%.1f}", (double)v[m - 1] / 1e3, sum / (double)m / 1e3);
}

static void print_rate(FILE *out, const char *name, uint64_t msgs, int64_t ns, size_t size)
{
    double s = (double)ns / 1e9;
    if (ns <= 0) {
        fprintf(out, ",\"%s\":null", name);
        return;
    }
    fprintf(out,
            ",\"%s\":{\"msgs\":%" PRIu64 ",\"seconds\":%.4f,\"msgs_per_s\":%.1f,"
            "\"mb_per_s\":%.2f}",
            name, msgs, s, (double)msgs / s, (double)msgs * (double)size / 1e6 / s);
}

bool lt_bench_report(lt_bench_run *r, FILE *out, const char *system, const char *mode,
                     const char *extra)
{
    const lt_bench_params *p = &r->p;
    uint64_t ok = atomic_load(&r->acked_ok), errors = atomic_load(&r->errors);
    int64_t pub_end = atomic_load(&r->pub_end);
    bool complete = ok == p->messages && errors == 0;

    fprintf(out,
            "{\"system\":\"%s\",\"mode\":\"%s\",\"params\":{\"publishers\":%u,"
            "\"messages\":%" PRIu64 ",\"size\":%zu,\"window\":%u,\"consumers\":%u,"
            "\"rate\":%.1f,\"consume\":%s}",
            system, mode, p->publishers, p->messages, p->size, p->window, p->consumers, p->rate,
            p->consume ? "true" : "false");
    print_rate(out, "publish", ok, pub_end ? pub_end - r->t0 : 0, p->size);

    if (p->consume) {
        uint64_t min_consumed = UINT64_MAX;
        int64_t end = 0;
        for (unsigned c = 0; c < p->consumers; c++) {
            uint64_t got = atomic_load(&r->consumed[c]);
            if (got < min_consumed)
                min_consumed = got;
            if (r->cons_end[c] > end)
                end = r->cons_end[c];
        }
        if (min_consumed != p->messages)
            complete = false;
        print_rate(out, "end_to_end", min_consumed, end ? end - r->t0 : 0, p->size);
    } else {
        fputs(",\"end_to_end\":null", out);
    }
    lt_bench_print_latency(out, "pub_ack_latency_us", r->lat_ack, (size_t)p->messages);
    lt_bench_print_latency(out, "e2e_latency_us", r->lat_e2e, (size_t)p->messages);

    fputs(",\"progress\":[", out);
    int64_t prev_t = r->t0;
    uint64_t prev_n = 0;
    bool first = true;
    for (size_t i = 0; i < r->n_samples_max; i++) {
        const sample *s = &r->samples[i];
        if (!s->acked)
            continue;
        double dt = (double)(s->t_ns - prev_t) / 1e9;
        fprintf(out,
                "%s{\"acked\":%" PRIu64 ",\"t_s\":%.3f,\"interval_msgs_per_s\":%.1f,"
                "\"server_rss_kib\":%ld,\"server_rss_anon_kib\":%ld}",
                first ? "" : ",", s->acked, (double)(s->t_ns - r->t0) / 1e9,
                dt > 0 ? (double)(s->acked - prev_n) / dt : 0.0, s->server_rss_kib,
                s->server_anon_kib);
        prev_t = s->t_ns;
        prev_n = s->acked;
        first = false;
    }
    /* The load program's own CPU in the timed part (publishers, consumers, client
     * libraries): on a small machine it competes with the server for the same cores. */
    double client_cpu = self_cpu_s() - r->cpu0;
    /* The server's CPU over the same part: from the start to now (every publisher and
     * consumer thread has ended), so setup and signing before the start are left out. */
    double server_now = r->server_cpu0 >= 0 ? proc_cpu_s(r->p.server_pid) : -1;
    if (server_now >= 0)
        fprintf(out, "],\"server_cpu_timed_s\":%.2f", server_now - r->server_cpu0);
    else
        fputs("],\"server_cpu_timed_s\":null", out);
    fprintf(out, ",\"client_cpu_s\":%.2f,\"errors\":%" PRIu64 ",\"complete\":%s%s}\n", client_cpu,
            errors, complete ? "true" : "false", extra ? extra : "");
    fflush(out);
    return complete;
}
