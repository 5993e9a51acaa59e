/* test_envfile.c - length-delimited envelope files: records round-trip through a file and
 * through memory; damaged framing is refused, never skipped. */
#include "envfile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void varints_encode_like_protobuf(void **state)
{
    (void)state;
    uint8_t b[LT_ENVFILE_VARINT_MAX];
    assert_int_equal(lt_envfile_varint_put(b, 1), 1);
    assert_int_equal(b[0], 1);
    assert_int_equal(lt_envfile_varint_put(b, 300), 2);
    assert_int_equal(b[0], 0xac);
    assert_int_equal(b[1], 0x02);
    assert_int_equal(lt_envfile_varint_put(b, UINT32_MAX), 5);
}

static void records_round_trip_through_a_file(void **state)
{
    (void)state;
    char path[] = "/tmp/lt-test-envfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    lt_envfile_writer *w = NULL;
    lt_why why;
    assert_int_equal(lt_envfile_open_writer(path, &w, &why), LT_OK);
    uint8_t big[300];
    memset(big, 0xab, sizeof big);
    assert_int_equal(lt_envfile_write(w, (const uint8_t *)"one", 3, &why), LT_OK);
    assert_int_equal(lt_envfile_write(w, big, sizeof big, &why), LT_OK);
    assert_int_equal(lt_envfile_write(w, big, 0, &why), LT_EINVAL);
    assert_int_equal(lt_envfile_close_writer(&w, &why), LT_OK);
    assert_null(w);

    lt_envfile_reader *r = NULL;
    const uint8_t *item;
    size_t len;
    assert_int_equal(lt_envfile_open_reader(path, 1000, &r, &why), LT_OK);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(item, "one", 3);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_OK);
    assert_int_equal(len, 300);
    assert_memory_equal(item, big, 300);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_ENOTFOUND);
    assert_int_equal(lt_envfile_reader_count(r), 2);
    lt_envfile_close_reader(&r);

    /* The same file under a smaller limit: the second record is refused. */
    assert_int_equal(lt_envfile_open_reader(path, 100, &r, &why), LT_OK);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_OK);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_ETOOBIG);
    lt_envfile_close_reader(&r);

    /* Cut inside the second record: truncated, not a clean end. */
    assert_int_equal(truncate(path, 4 + 2 + 100), 0);
    assert_int_equal(lt_envfile_open_reader(path, 1000, &r, &why), LT_OK);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_OK);
    assert_int_equal(lt_envfile_read(r, &item, &len, &why), LT_EPROTO);
    assert_non_null(strstr(why.msg, "truncated"));
    lt_envfile_close_reader(&r);
    unlink(path);
    assert_int_equal(lt_envfile_open_reader(path, 1000, &r, &why), LT_EIO);
}

static void damaged_framing_in_memory_is_refused(void **state)
{
    (void)state;
    const uint8_t ok[] = {2, 'h', 'i', 1, 'x'};
    size_t off = 0, len;
    const uint8_t *item;
    lt_why why;
    assert_int_equal(lt_envfile_next_mem(ok, sizeof ok, &off, 10, &item, &len, &why), LT_OK);
    assert_int_equal(len, 2);
    assert_int_equal(lt_envfile_next_mem(ok, sizeof ok, &off, 10, &item, &len, &why), LT_OK);
    assert_int_equal(lt_envfile_next_mem(ok, sizeof ok, &off, 10, &item, &len, &why),
                     LT_ENOTFOUND);

    const uint8_t zero[] = {0};
    off = 0;
    assert_int_equal(lt_envfile_next_mem(zero, 1, &off, 10, &item, &len, &why), LT_EPROTO);
    const uint8_t longvar[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    off = 0;
    assert_int_equal(lt_envfile_next_mem(longvar, 6, &off, 10, &item, &len, &why), LT_EPROTO);
    const uint8_t cut[] = {0x80};
    off = 0;
    assert_int_equal(lt_envfile_next_mem(cut, 1, &off, 10, &item, &len, &why), LT_EPROTO);
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    off = 0;
    assert_int_equal(lt_envfile_next_mem(over, 5, &off, 10, &item, &len, &why), LT_EPROTO);
    const uint8_t short_body[] = {5, 'a'};
    off = 0;
    assert_int_equal(lt_envfile_next_mem(short_body, 2, &off, 10, &item, &len, &why), LT_EPROTO);
    assert_int_equal(off, 0); /* not advanced on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(varints_encode_like_protobuf),
        cmocka_unit_test(records_round_trip_through_a_file),
        cmocka_unit_test(damaged_framing_in_memory_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
