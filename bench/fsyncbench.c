/*
 * fsyncbench.c - bench_fsyncbench: what the disk under a directory takes to make a small
 * commit durable, the floor under the broker's publish->ack latency (issue 14's goal: p99 at
 * half load <= this p99 + 1 ms).
 *
 *   bench_fsyncbench [-n COUNT] [-m FILE_MIB] [-t MAX_SECONDS] DIR
 *
 * In DIR (bench/run gives it a directory next to the half-load runs' data directories, on
 * the same file system) it creates a file of FILE_MIB (64) MiB, filled with written zeros and
 * fsynced (real blocks, as an LMDB file whose pages are reused: no unwritten extents, no
 * size change), then COUNT (2000) times writes as an LMDB commit does - 16 KiB of data pages
 * at a random page-aligned offset, then the 4 KiB meta page (the two meta pages of the first
 * 8 KiB in turn) - and fdatasyncs. Each sample is one commit: the two writes and the
 * fdatasync, timed together (the writes land in the page cache: the fdatasync is nearly all of
 * it). Stops early after MAX_SECONDS (30) so a slow disk cannot stall a benchmark; the JSON
 * says how many commits were timed. The file is removed at the end.
 *
 * Output: one JSON object on stdout: {"file_mib", "count", "seconds", "commit_bytes",
 * "fdatasync_us": {"count", "p50", "p90", "p99", "p999", "max", "mean"}} (nearest-rank
 * percentiles, lt_bench_print_latency).
 */
#include "kit/benchkit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096
#define DATA_BYTES (4 * PAGE) /* data pages of one commit */
#define META_PAGES 2          /* LMDB's two meta pages, written in turn */

/* xorshift64*: offsets only need to be spread, not unpredictable. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static int write_all(int fd, const uint8_t *buf, size_t len, off_t at)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
        at += n;
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: bench_fsyncbench [-n COUNT] [-m FILE_MIB] [-t MAX_SECONDS] DIR\n"
          "  COUNT commits (2000) of 16 KiB data + a 4 KiB meta page + fdatasync, in a\n"
          "  FILE_MIB (64) MiB file in DIR; stops after MAX_SECONDS (30). Prints JSON.\n",
          out);
}

int main(int argc, char **argv)
{
    long count = 2000, file_mib = 64;
    double max_s = 30;
    int c;
    while ((c = getopt(argc, argv, "n:m:t:h")) != -1) {
        if (c == 'n')
            count = atol(optarg);
        else if (c == 'm')
            file_mib = atol(optarg);
        else if (c == 't')
            max_s = atof(optarg);
        else {
            usage(c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind + 1 != argc || count < 1 || file_mib < 1 || file_mib > 65536 || max_s <= 0) {
        usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    char path[4096];
    if (snprintf(path, sizeof path, "%s/fsyncbench.dat", dir) >= (int)sizeof path) {
        fprintf(stderr, "bench_fsyncbench: directory name too long\n");
        return 2;
    }

    int rc = 1;
    uint8_t *buf = NULL;
    int64_t *lat = malloc((size_t)count * sizeof *lat);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "bench_fsyncbench: %s: %s\n", path, strerror(errno));
        free(lat);
        return 1;
    }
    if (lat == NULL || posix_memalign((void **)&buf, PAGE, 1 << 20) != 0) {
        fprintf(stderr, "bench_fsyncbench: out of memory\n");
        goto out;
    }
    /* Preallocate with written blocks, so a commit neither extends the file nor converts
     * unwritten extents (both would add file-system metadata to every fdatasync). */
    memset(buf, 0, 1 << 20);
    off_t size = (off_t)file_mib << 20;
    for (off_t at = 0; at < size; at += 1 << 20)
        if (write_all(fd, buf, 1 << 20, at) != 0) {
            fprintf(stderr, "bench_fsyncbench: preallocate: %s\n", strerror(errno));
            goto out;
        }
    if (fsync(fd) != 0) {
        fprintf(stderr, "bench_fsyncbench: fsync: %s\n", strerror(errno));
        goto out;
    }

    uint64_t seed = (uint64_t)lt_bench_now_ns() | 1;
    uint64_t data_pages = (uint64_t)(size - META_PAGES * PAGE - DATA_BYTES) / PAGE;
    long done = 0;
    int64_t t_start = lt_bench_now_ns(), deadline = t_start + (int64_t)(max_s * 1e9);
    for (; done < count && lt_bench_now_ns() < deadline; done++) {
        off_t data_at = (off_t)(META_PAGES + next_rand(&seed) % data_pages) * PAGE;
        off_t meta_at = (off_t)(done % META_PAGES) * PAGE;
        memset(buf, (int)(done & 0xff), DATA_BYTES); /* new bytes every time */
        int64_t t = lt_bench_now_ns();
        if (write_all(fd, buf, DATA_BYTES, data_at) != 0 ||
            write_all(fd, buf, PAGE, meta_at) != 0 || fdatasync(fd) != 0) {
            fprintf(stderr, "bench_fsyncbench: commit %ld: %s\n", done, strerror(errno));
            goto out;
        }
        lat[done] = lt_bench_now_ns() - t;
    }
    double secs = (double)(lt_bench_now_ns() - t_start) / 1e9;

    if (done == 0) {
        fprintf(stderr, "bench_fsyncbench: no commit in %.1f s\n", max_s);
        goto out;
    }
    printf("{\"file_mib\":%ld,\"count\":%ld,\"requested\":%ld,\"seconds\":%.3f,"
           "\"commit_bytes\":%d",
           file_mib, done, count, secs, DATA_BYTES + PAGE);
    lt_bench_print_latency(stdout, "fdatasync_us", lat, (size_t)done);
    printf("}\n");
    rc = 0;
out:
    close(fd);
    unlink(path);
    free(buf);
    free(lat);
    return rc;
}
