/*
 * test_store_io.c - broker/store_io.c: LMDB's data file written one page per call.
 *
 * The kernel's folio sizes cannot be seen from here, so the tests count what can be: the
 * write calls the process made (/proc/self/io syscw), the bytes where they belong, the file
 * offset writev leaves, and a failure in the middle of a split write (RLIMIT_FSIZE makes
 * the third page fail with EFBIG) answered as a failure with its own errno.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#define PAGE 4096

static long syscw(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

static int temp_file(char *path)
{
    strcpy(path, "/tmp/lt-store-io-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    return fd;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + seed);
}

static void a_watched_descriptor_is_written_one_page_per_call(void **state)
{
    (void)state;
    char path[64];
    int fd = temp_file(path);
    static uint8_t buf[4 * PAGE], back[6 * PAGE];
    fill(buf, sizeof buf, 1);

    long c0 = syscw();
    assert_int_equal(pwrite(fd, buf, sizeof buf, PAGE), (ssize_t)sizeof buf);
    long whole = syscw() - c0;
    assert_true(store_io_watch(fd, true));
    c0 = syscw();
    assert_int_equal(pwrite(fd, buf, sizeof buf, PAGE), (ssize_t)sizeof buf);
    long split = syscw() - c0;
    assert_int_equal(whole, 1);
    assert_int_equal(split, 4);

    /* an unaligned run: pieces end on page boundaries, bytes land where asked */
    fill(buf, sizeof buf, 9);
    assert_int_equal(pwrite(fd, buf, 2 * PAGE + 100, 300), 2 * PAGE + 100);
    assert_int_equal(pread(fd, back, sizeof back, 0), 5 * PAGE);
    assert_memory_equal(back + 300, buf, 2 * PAGE + 100);

    /* writev: at the file offset, which it moves past what it wrote */
    uint8_t a[PAGE + 10], b[3], c[2 * PAGE];
    fill(a, sizeof a, 2);
    fill(b, sizeof b, 3);
    fill(c, sizeof c, 4);
    struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    assert_int_equal(lseek(fd, 50, SEEK_SET), 50);
    c0 = syscw();
    ssize_t total = (ssize_t)(sizeof a + sizeof b + sizeof c);
    assert_int_equal(writev(fd, iov, 3), total);
    assert_true(syscw() - c0 >= 4);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 50 + total);
    assert_int_equal(pread(fd, back, (size_t)total, 50), total);
    assert_memory_equal(back, a, sizeof a);
    assert_memory_equal(back + sizeof a, b, sizeof b);
    assert_memory_equal(back + sizeof a + sizeof b, c, sizeof c);

    /* unwatched again: as the C library writes */
    store_io_watch(fd, false);
    c0 = syscw();
    assert_int_equal(pwrite(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_int_equal(syscw() - c0, 1);
    close(fd);
    unlink(path);
}

static void a_page_that_fails_fails_the_whole_write_with_its_errno(void **state)
{
    (void)state;
    char path[64];
    int fd = temp_file(path);
    assert_true(store_io_watch(fd, true));
    static uint8_t buf[4 * PAGE];
    fill(buf, sizeof buf, 5);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 2 * PAGE; /* the third page is beyond what the file may hold */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    errno = 0;
    ssize_t r = pwrite(fd, buf, sizeof buf, 0);
    int e = errno;
    struct iovec iov[1] = {{buf, sizeof buf}};
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    errno = 0;
    ssize_t rv = writev(fd, iov, 1);
    int ev = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(r, -1); /* not a short count, which LMDB would call EIO */
    assert_int_equal(e, EFBIG);
    assert_int_equal(rv, -1);
    assert_int_equal(ev, EFBIG);
    /* a descriptor the C library refuses is refused as the C library does */
    store_io_watch(fd, false);
    int ro = open(path, O_RDONLY);
    assert_true(ro >= 0);
    assert_true(store_io_watch(ro, true));
    errno = 0;
    assert_int_equal(pwrite(ro, buf, sizeof buf, 0), -1);
    assert_int_equal(errno, EBADF);
    store_io_watch(ro, false);
    close(ro);
    close(fd);
    unlink(path);
}

static void an_open_store_writes_its_data_file_page_by_page(void **state)
{
    (void)state;
    char dir[] = "/tmp/lt-store-io-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    lt_store_opts o = {.dir = dir};
    lt_store *s = NULL;
    lt_why why;
    if (lt_store_open(&s, &o, &why) != LT_OK)
        fail_msg("open: %s", why.msg);
    assert_true(s->io_fd >= 0);
    int fd = s->io_fd;
    static uint8_t buf[3 * PAGE];
    /* the descriptor is watched: a three-page write is three calls (written past the end,
     * where LMDB has nothing yet, and truncated away below) */
    off_t end = lseek(fd, 0, SEEK_END);
    long c0 = syscw();
    assert_int_equal(pwrite(fd, buf, sizeof buf, end), (ssize_t)sizeof buf);
    assert_int_equal(syscw() - c0, 3);
    assert_int_equal(ftruncate(fd, end), 0);
    lt_store_close(&s);
    /* closed: the descriptor number is no longer watched */
    char path[64];
    int f2 = temp_file(path);
    if (f2 == fd) {
        c0 = syscw();
        assert_int_equal(pwrite(f2, buf, sizeof buf, 0), (ssize_t)sizeof buf);
        assert_int_equal(syscw() - c0, 1);
    }
    close(f2);
    unlink(path);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    if (getenv("LIENTHONG_LMDB_WHOLE_WRITES")) {
        fprintf(stderr, "test_store_io: LIENTHONG_LMDB_WHOLE_WRITES is set; unset it\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_watched_descriptor_is_written_one_page_per_call),
        cmocka_unit_test(a_page_that_fails_fails_the_whole_write_with_its_errno),
        cmocka_unit_test(an_open_store_writes_its_data_file_page_by_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
