/*
 * store_io.c - how LMDB's writes reach the data file: one page per write() call.
 *
 * Why. LMDB (without MDB_WRITEMAP) writes a commit's dirty pages with pwrite() and, for
 * several runs, lseek() + writev(); a run of contiguous pages (a new pack, pages appended at
 * the end of the file) is one call of many pages. Since Linux 6.x ext4 caches such a write
 * in large folios (up to 2 MiB), and a folio is written back whole once any byte of it is
 * dirty. LMDB then rewrites single pages inside those runs at every later commit (the pages
 * it frees and reuses, B-tree leaves), so each later 4 KiB page cost a write-back of up to
 * 2 MiB: on this project's bench machine (kernel 6.18) the broker's block-level writes were
 * 7.4x its write() bytes (16 KiB per 1 KiB message; /proc/PID/io write_bytes vs wchar), and
 * the commit and fsync time that went with it. Writing each page with its own pwrite()
 * makes the kernel cache it in a page-sized folio, so a later rewrite of it writes back that
 * page alone. Measured A/B with bench_lt_load, 200k batch-64 messages, alternating: write
 * bytes 3.4 GB -> 0.47 GB, server CPU -18%, end-to-end msg/s +20%. The extra syscalls
 * (about one per page of a commit, ~1 us each) are included in those figures.
 *
 * How. lienthongd defines pwrite() and writev() itself; being in the executable, those
 * definitions are the ones liblmdb's calls bind to. For a file descriptor registered with
 * store_io_watch (the data file of an open store) they write page by page with the C
 * library's pwrite(); every other call goes straight to the C library's function, unchanged.
 * A failed page write fails the whole call with its errno (ENOSPC stays ENOSPC; LMDB would
 * read a short count as EIO), and LMDB abandons the commit as it does for any failed write.
 * writev() keeps its contract: it writes at the file offset and moves it past what it wrote.
 *
 * The environment variable LIENTHONG_LMDB_WHOLE_WRITES=1 turns the splitting off (for
 * measuring it; nothing else changes).
 *
 * Thread-safe: the watch set is a bitmap of atomics; the C library's functions are looked up
 * once (dlsym, RTLD_NEXT: the next definition after ours, the C library's or a sanitizer's).
 */
#include "store_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define WATCH_FDS 1024 /* descriptors above are written as LMDB asks (correct, not split) */

typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);
typedef ssize_t writev_fn(int, const struct iovec *, int);

static _Atomic uint64_t watched_fds[WATCH_FDS / 64];
static pwrite_fn *c_pwrite;
static writev_fn *c_writev;
static size_t page_size;
static bool whole_writes;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void resolve(void)
{
    /* dlsym's object pointers as function pointers, the way POSIX allows */
    void *p = dlsym(RTLD_NEXT, "pwrite"), *v = dlsym(RTLD_NEXT, "writev");
    memcpy(&c_pwrite, &p, sizeof p);
    memcpy(&c_writev, &v, sizeof v);
    long ps = sysconf(_SC_PAGESIZE);
    page_size = ps > 0 ? (size_t)ps : 4096;
    const char *w = getenv("LIENTHONG_LMDB_WHOLE_WRITES");
    whole_writes = w != NULL && strcmp(w, "1") == 0;
}

static bool ready(void)
{
    pthread_once(&once, resolve);
    return c_pwrite != NULL && c_writev != NULL;
}

static bool watched(int fd)
{
    return fd >= 0 && fd < WATCH_FDS &&
           ((atomic_load_explicit(&watched_fds[fd / 64], memory_order_relaxed) >> (fd % 64)) & 1);
}

bool store_io_watch(int fd, bool on)
{
    if (!ready() || whole_writes || fd < 0 || fd >= WATCH_FDS)
        return false;
    uint64_t bit = (uint64_t)1 << (fd % 64);
    if (on)
        atomic_fetch_or(&watched_fds[fd / 64], bit);
    else
        atomic_fetch_and(&watched_fds[fd / 64], ~bit);
    return on;
}

/* p[0..len) at off, one page-aligned page per call. 0, or -1 with errno. */
static int write_pages(int fd, const uint8_t *p, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        size_t at = (size_t)(off + (off_t)done) % page_size, n = page_size - at;
        if (n > len - done)
            n = len - done;
        ssize_t r = c_pwrite(fd, p + done, n, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO; /* a regular file that takes nothing: not a state to loop in */
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

__attribute__((visibility("default"))) ssize_t pwrite(int fd, const void *buf, size_t len,
                                                      off_t off)
{
    if (!ready()) {
        errno = ENOSYS;
        return -1;
    }
    if (len <= page_size || !watched(fd))
        return c_pwrite(fd, buf, len, off);
    return write_pages(fd, buf, len, off) == 0 ? (ssize_t)len : -1;
}

__attribute__((visibility("default"))) ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (!ready()) {
        errno = ENOSYS;
        return -1;
    }
    if (!watched(fd) || n <= 0 || n > IOV_MAX)
        return c_writev(fd, iov, n); /* including its refusals */
    off_t off = lseek(fd, 0, SEEK_CUR);
    if (off < 0)
        return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (write_pages(fd, iov[i].iov_base, iov[i].iov_len, off + (off_t)total) != 0)
            return -1;
        total += iov[i].iov_len;
    }
    if (lseek(fd, off + (off_t)total, SEEK_SET) < 0)
        return -1;
    return (ssize_t)total;
}
