/*
 * failsync.c - an LD_PRELOAD shim that makes chosen fsync / fdatasync / msync calls of a
 * process fail with EIO, for the fault campaign (tests/campaign/campaign.c, scenario c).
 *
 * Activated by the environment of the process it is preloaded into:
 *
 *   LT_FAILSYNC=FIRST[,COUNT[,THREAD]]
 *       Counted calls are numbered 1, 2, 3, ...; calls FIRST .. FIRST+COUNT-1 fail with EIO
 *       and do not reach the kernel (what they should have flushed stays unflushed).
 *       COUNT defaults to 1; COUNT 0 means every counted call from FIRST on fails (a disk
 *       that stays broken). THREAD, when given, counts only calls made by threads whose
 *       name (pthread_setname_np) starts with it: "lt-commit" is the broker's commit thread
 *       (LMDB's data-page fdatasync inside mdb_txn_commit), "lt-sync" its sync thread (the
 *       meta-page flush, mdb_env_sync).
 *   LT_FAILSYNC_FILE=NAME   count only fsync/fdatasync on fds whose path ends with "/NAME"
 *       (default "data.mdb", LMDB's data file). msync has no fd: it is always counted.
 *   LT_FAILSYNC_LOG=PATH    append one line per counted call:
 *       "<n> <function> fd=<fd> thread=<name> <ok|EIO> t_ms=<CLOCK_MONOTONIC ms>"
 *       The campaign reads the t_ms of the first EIO line to tell publishes sent after the
 *       failure from those sent before (CLOCK_MONOTONIC is one clock for every process).
 *
 * Without LT_FAILSYNC the shim only forwards. Thread-safe: the counter is atomic and each
 * log line is one write(2) on an O_APPEND descriptor.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);
int msync(void *addr, size_t len, int flags);

static atomic_uint calls;

typedef struct cfg {
    bool on;
    unsigned first, count; /* count 0: forever */
    char thread[16];
    char file[256];
    const char *log;
} cfg;

static cfg the_cfg;
static pthread_once_t the_once = PTHREAD_ONCE_INIT;

static void read_config(void)
{
    cfg *c = &the_cfg;
    snprintf(c->file, sizeof c->file, "%s",
             getenv("LT_FAILSYNC_FILE") ? getenv("LT_FAILSYNC_FILE") : "data.mdb");
    c->log = getenv("LT_FAILSYNC_LOG");
    const char *spec = getenv("LT_FAILSYNC");
    if (spec == NULL || spec[0] == '\0')
        return;
    char *end = NULL;
    unsigned long first = strtoul(spec, &end, 10);
    unsigned long count = 1;
    if (*end == ',') {
        count = strtoul(end + 1, &end, 10);
        if (*end == ',')
            snprintf(c->thread, sizeof c->thread, "%s", end + 1);
    }
    c->first = first > 0 ? (unsigned)first : 1;
    c->count = (unsigned)count;
    c->on = true;
}

static const cfg *conf(void)
{
    pthread_once(&the_once, read_config);
    return &the_cfg;
}

static bool fd_matches(int fd, const char *file)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    size_t fl = strlen(file), pl = (size_t)n;
    return pl > fl && path[pl - fl - 1] == '/' && strcmp(path + pl - fl, file) == 0;
}

static void log_call(const cfg *c, unsigned n, const char *fn, int fd, const char *thread,
                     bool failed)
{
    if (c->log == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char line[256];
    int len = snprintf(line, sizeof line, "%u %s fd=%d thread=%s %s t_ms=%lld\n", n, fn, fd, thread,
                       failed ? "EIO" : "ok", ms);
    int lfd = open(c->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0)
        return;
    if (len > 0)
        (void)!write(lfd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    close(lfd);
}

/* Whether this call (fd < 0: msync) is counted and must fail; logs counted calls. */
static bool should_fail(const char *fn, int fd)
{
    const cfg *c = conf();
    if (!c->on && c->log == NULL)
        return false;
    char thread[16] = "";
    pthread_getname_np(pthread_self(), thread, sizeof thread);
    if (c->thread[0] != '\0' && strncmp(thread, c->thread, strlen(c->thread)) != 0)
        return false;
    if (fd >= 0 && !fd_matches(fd, c->file))
        return false;
    unsigned n = atomic_fetch_add(&calls, 1) + 1;
    bool fail = c->on && n >= c->first && (c->count == 0 || n - c->first < c->count);
    log_call(c, n, fn, fd, thread, fail);
    return fail;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "fsync"); /* POSIX dlsym idiom */
    if (should_fail("fsync", fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
    if (should_fail("fdatasync", fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

int msync(void *addr, size_t len, int flags)
{
    static int (*real)(void *, size_t, int);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "msync");
    if (should_fail("msync", -1)) {
        errno = EIO;
        return -1;
    }
    return real(addr, len, flags);
}
