/*
 * bench/store.c - the durable store alone: appends/s of 1 KiB envelopes with a group commit
 * of 1, 64 and 1024 messages (each commit fsyncs), then acks/s with the same batch sizes.
 *
 *   bench_store [DIR] [SECONDS_PER_CASE]
 *
 * DIR (default $TMPDIR or /tmp) gets a fresh store per case, deleted afterwards. The disk
 * under DIR decides the numbers: fsync latency bounds commits/s, so throughput is about
 * batch size / fsync time until the CPU cost per message takes over.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ENV_LEN 1024

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void rm_store(const char *dir)
{
    const char *files[] = {"data.mdb", "lock.mdb", "broker.lock"};
    char p[600];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void die(const char *what, const lt_why *why)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, why ? why->msg : "");
    exit(1);
}

static void run(const char *base, size_t batch, double seconds)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lt_bench_store_XXXXXX", base);
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    lt_store *s;
    lt_why why;
    lt_store_opts o = {.dir = dir, .map_size = 16ULL << 30};
    if (lt_store_open(&s, &o, &why))
        die("open", &why);
    uint32_t q;
    lt_store_queue_limits lim = {0, 0, 0};
    if (lt_store_queue_declare(s, "bench", &lim, &q, &why))
        die("declare", &why);
    static uint8_t env[ENV_LEN];
    memset(env, 0x5a, sizeof env);
    uint64_t n = 0, first = 0, last = 0, commits = 0;
    double t0 = now_s(), c0 = cpu_s(), t;
    /* appends */
    do {
        if (lt_store_begin(s, &why))
            die("begin", &why);
        int64_t ms = wall_ms();
        for (size_t i = 0; i < batch; i++) {
            uint8_t id[LT_STORE_ID_LEN] = {0};
            uint64_t k = n + i + 1;
            memcpy(id, &ms, sizeof ms); /* time-ordered, as UUIDv7 */
            memcpy(id + 8, &k, sizeof k);
            bool dup;
            static const uint8_t zero[LT_STORE_HASH_LEN];
            lt_store_msgkey key = {.id = id,
                                   .source = "VN:GOV:000.00.00.H29:bench",
                                   .payload_sha256 = zero,
                                   .signer_key_id = zero};
            if (lt_store_append(s, &key, &q, 1, env, sizeof env, ms, &last, &dup, &why))
                die("append", &why);
            if (!first)
                first = last;
        }
        if (lt_store_commit(s, &why))
            die("commit", &why);
        n += batch;
        commits++;
        t = now_s();
    } while (t - t0 < seconds);
    double app = (double)n / (t - t0);
    double cps = (double)commits / (t - t0);
    double app_cpu = (cpu_s() - c0) * 1e6 / (double)n;
    /* acks, oldest first, same batch size */
    uint64_t acked = 0, seq = first;
    t0 = now_s();
    c0 = cpu_s();
    while (seq <= last) {
        if (lt_store_begin(s, &why))
            die("begin", &why);
        int64_t ms = wall_ms();
        for (size_t i = 0; i < batch && seq <= last; i++, seq++)
            if (lt_store_ack(s, q, seq, ms, &why))
                die("ack", &why);
            else
                acked++;
        if (lt_store_commit(s, &why))
            die("commit", &why);
        t = now_s();
        if (t - t0 >= seconds)
            break;
    }
    double ack = (double)acked / (now_s() - t0);
    double ack_cpu = (cpu_s() - c0) * 1e6 / (double)(acked ? acked : 1);
    printf("batch %5zu: %9.0f appends/s (%5.0f commits/s, %5.1f us CPU/msg)  %9.0f acks/s "
           "(%5.1f us CPU/ack)\n",
           batch, app, cps, app_cpu, ack, ack_cpu);
    lt_store_close(&s);
    rm_store(dir);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    const char *base = argc > 1 ? argv[1] : (tmp ? tmp : "/tmp");
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    if (seconds <= 0)
        seconds = 3.0;
    printf("store: 1 KiB envelopes, 1 queue, fsync per commit, %s, %.1f s per case\n", base,
           seconds);
    const size_t batches[] = {1, 64, 1024};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        run(base, batches[i], seconds);
    return 0;
}
