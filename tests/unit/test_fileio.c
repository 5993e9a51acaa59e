/* test_fileio.c - whole-file reads: the bytes come back exactly, NUL-terminated; the cap holds
 * for regular files and for pipes; every failure names the file and writes no out-parameter. */
#include "fileio.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[256];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/lt-test-fileio-XXXXXX", tmp);
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"bin", "empty", "cap"};
    char p[400];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    return rmdir(dir);
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    static char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

/* A pipe holding data[0..len) and then EOF; len must fit the pipe's buffer (64 KiB). */
static FILE *pipe_with(const void *data, size_t len)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    assert_int_equal(write(fd[1], data, len), (ssize_t)len);
    close(fd[1]);
    FILE *f = fdopen(fd[0], "rb");
    assert_non_null(f);
    return f;
}

/* lt_file_read that must succeed; checks the NUL after the bytes. */
static char *read_ok(const char *p, size_t max, size_t *len)
{
    char *buf = NULL;
    lt_why why = {{0}};
    if (lt_file_read(p, max, &buf, len, &why) != LT_OK)
        fail_msg("read %s: %s", p, why.msg);
    assert_int_equal(buf[*len], '\0');
    return buf;
}

static void read_returns_the_bytes_exactly_with_a_nul_after_them(void **state)
{
    (void)state;
    static const char data[] = {'a', '\0', 'b', '\n', (char)0xff};
    size_t len = 0;
    char *buf = read_ok(write_file("bin", data, sizeof data), 1024, &len);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(buf, data, sizeof data);
    free(buf);
}

static void read_of_an_empty_file_gives_an_empty_string(void **state)
{
    (void)state;
    size_t len = 99;
    char *buf = read_ok(write_file("empty", "", 0), 0, &len);
    assert_int_equal(len, 0);
    free(buf);
}

static void read_takes_a_file_of_exactly_the_cap_and_refuses_it_under_a_smaller_cap(void **state)
{
    (void)state;
    const char *p = write_file("cap", "0123456789", 10);
    size_t len = 0;
    char *buf = read_ok(p, 10, &len);
    assert_int_equal(len, 10);
    free(buf);

    lt_why why = {{0}};
    char untouched;
    buf = &untouched;
    len = 7;
    assert_int_equal(lt_file_read(p, 9, &buf, &len, &why), LT_ETOOBIG);
    assert_ptr_equal(buf, &untouched);
    assert_int_equal(len, 7);
    assert_non_null(strstr(why.msg, p));
    assert_non_null(strstr(why.msg, "larger than 9 bytes"));
}

static void read_of_a_missing_file_is_eio_saying_cannot_open(void **state)
{
    (void)state;
    char p[400];
    snprintf(p, sizeof p, "%s/no-such-file", dir);
    char *buf = NULL;
    size_t len = 7;
    lt_why why = {{0}};
    assert_int_equal(lt_file_read(p, 1024, &buf, &len, &why), LT_EIO);
    assert_null(buf);
    assert_int_equal(len, 7);
    assert_non_null(strstr(why.msg, p));
    assert_non_null(strstr(why.msg, "cannot open"));
}

static void read_of_a_directory_is_a_read_error(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 7;
    lt_why why = {{0}};
    assert_int_equal(lt_file_read(dir, 1024, &buf, &len, &why), LT_EIO);
    assert_null(buf);
    assert_int_equal(len, 7);
    assert_non_null(strstr(why.msg, "read error"));
}

static void stream_read_grows_past_its_first_buffer(void **state)
{
    (void)state;
    static char data[20000]; /* 4 KiB first buffer: three doublings */
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    FILE *f = pipe_with(data, sizeof data);
    char *buf = NULL;
    size_t len = 0;
    lt_why why = {{0}};
    assert_int_equal(lt_file_read_stream(f, "pipe", SIZE_MAX, &buf, &len, &why), LT_OK);
    fclose(f);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(buf, data, sizeof data);
    assert_int_equal(buf[len], '\0');
    free(buf);
}

static void stream_read_refuses_a_pipe_over_the_cap(void **state)
{
    (void)state;
    static char data[5000];
    memset(data, 'x', sizeof data);
    FILE *f = pipe_with(data, sizeof data);
    char *buf = NULL;
    size_t len = 7;
    lt_why why = {{0}};
    assert_int_equal(lt_file_read_stream(f, "-", 4999, &buf, &len, &why), LT_ETOOBIG);
    fclose(f);
    assert_null(buf);
    assert_int_equal(len, 7);
    assert_string_equal(why.msg, "-: larger than 4999 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_returns_the_bytes_exactly_with_a_nul_after_them),
        cmocka_unit_test(read_of_an_empty_file_gives_an_empty_string),
        cmocka_unit_test(read_takes_a_file_of_exactly_the_cap_and_refuses_it_under_a_smaller_cap),
        cmocka_unit_test(read_of_a_missing_file_is_eio_saying_cannot_open),
        cmocka_unit_test(read_of_a_directory_is_a_read_error),
        cmocka_unit_test(stream_read_grows_past_its_first_buffer),
        cmocka_unit_test(stream_read_refuses_a_pipe_over_the_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
