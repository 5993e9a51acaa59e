/*
 * bench/sched.c - scheduled delivery in the store: N records scheduled (appended with a due
 * time, 1024 per group commit, each commit fsynced), then made deliverable when due
 * (lt_store_sched_promote, LT_SCHED_BATCH per commit, as the broker's one timer does) and read
 * back in seq order as delivery reads them; records per second for each phase, next to the
 * same N appended unscheduled and read, in the same run.
 *
 *   bench_sched [N] [DIR]          N default 1000000; DIR default $TMPDIR or /tmp
 *
 * The broker adds its network and signature work around this; what this isolates is the
 * cost of the schedule index (one more put at append, a put and a delete at promotion).
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ENV_LEN 1024
#define BATCH 1024
#define PROMOTE_BATCH 4096

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const lt_why *why)
{
    fprintf(stderr, "bench_sched: %s: %s\n", what, why ? why->msg : "");
    exit(1);
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

static int count_visit(void *arg, const lt_store_entry *e)
{
    (void)e;
    (*(uint64_t *)arg)++;
    return 0;
}

static void promoted(void *arg, uint32_t qid, uint64_t seq)
{
    (void)qid;
    (void)seq;
    (*(uint64_t *)arg)++;
}

/* Append n records (due at `due`, 0 = not scheduled); records/s. */
static double append_all(lt_store *s, uint32_t q, uint64_t n, int64_t now, int64_t due)
{
    static uint8_t env[ENV_LEN];
    static const uint8_t zero[LT_STORE_HASH_LEN];
    memset(env, 0x5a, sizeof env);
    lt_why why;
    double t0 = now_s();
    for (uint64_t k = 0; k < n;) {
        if (lt_store_begin(s, &why))
            die("begin", &why);
        for (size_t i = 0; i < BATCH && k < n; i++, k++) {
            uint8_t id[LT_STORE_ID_LEN] = {1};
            memcpy(id + 8, &k, sizeof k);
            lt_store_msgkey key = {.id = id,
                                   .source = "VN:GOV:000.00.00.H29:bench",
                                   .payload_sha256 = zero,
                                   .signer_key_id = zero};
            uint64_t seq;
            bool dup;
            if (lt_store_append_at(s, &key, &q, 1, env, sizeof env, NULL, now, due, &seq, &dup,
                                   &why))
                die("append", &why);
        }
        if (lt_store_commit(s, &why))
            die("commit", &why);
    }
    return (double)n / (now_s() - t0);
}

/* Read every pending entry in seq order, as delivery does; returns records/s. */
static double read_all(lt_store *s, uint32_t q, uint64_t n)
{
    lt_why why;
    uint64_t seen = 0, after = 0;
    double t0 = now_s();
    while (seen < n) {
        uint64_t before = seen;
        if (lt_store_pending(s, q, after, 256, count_visit, &seen, &after, &why))
            die("pending", &why);
        if (seen == before)
            break;
    }
    if (seen != n)
        fprintf(stderr, "bench_sched: read %llu of %llu\n", (unsigned long long)seen,
                (unsigned long long)n);
    return (double)seen / (now_s() - t0);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    const char *tmp = getenv("TMPDIR");
    const char *base = argc > 2 ? argv[2] : (tmp ? tmp : "/tmp");
    if (n == 0)
        n = 1000000;
    for (int scheduled = 0; scheduled < 2; scheduled++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/lt_bench_sched_XXXXXX", base);
        if (!mkdtemp(dir))
            die("mkdtemp", NULL);
        lt_store *s;
        lt_why why;
        lt_store_opts o = {.dir = dir, .map_size = 64ULL << 30};
        if (lt_store_open(&s, &o, &why))
            die("open", &why);
        uint32_t q;
        lt_store_queue_limits lim = {0, 0, 0};
        if (lt_store_queue_declare(s, "bench", &lim, &q, &why))
            die("declare", &why);
        int64_t now = 1000000, due = scheduled ? now + 60000 : 0;
        double app = append_all(s, q, n, now, due);
        double prom = 0;
        if (scheduled) {
            uint64_t done = 0;
            double t0 = now_s();
            int64_t next = 0;
            while (done < n) {
                if (lt_store_begin(s, &why))
                    die("begin", &why);
                if (lt_store_sched_promote(s, due, PROMOTE_BATCH, promoted, &done, &next, &why))
                    die("promote", &why);
                if (lt_store_commit(s, &why))
                    die("commit", &why);
                if (next == INT64_MAX)
                    break;
            }
            prom = (double)done / (now_s() - t0);
        }
        double rd = read_all(s, q, n);
        if (scheduled)
            printf("scheduled %8llu: %9.0f scheduled/s  %9.0f made due/s  %9.0f read/s\n",
                   (unsigned long long)n, app, prom, rd);
        else
            printf("plain     %8llu: %9.0f appended/s  %20s  %9.0f read/s\n",
                   (unsigned long long)n, app, "", rd);
        fflush(stdout);
        lt_store_close(&s);
        rm_store(dir);
    }
    return 0;
}
