/* test_err.c - error names are unique, stable and round-trip; lt_fail formats the reason. */
#include "err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void every_code_has_a_unique_name_that_round_trips(void **state)
{
    (void)state;
    int named = 0;
    for (int a = 0; a < 100; a++) {
        const char *na = lt_err_name((lt_err)a);
        if (strcmp(na, "UNKNOWN") == 0)
            continue;
        named++;
        assert_int_equal(lt_err_from_name(na), a);
        for (int b = a + 1; b < 100; b++)
            assert_string_not_equal(na, lt_err_name((lt_err)b));
    }
    assert_true(named > 30);
}

static void fail_formats_reason_and_returns_code(void **state)
{
    (void)state;
    lt_why why;
    assert_int_equal(lt_fail(&why, LT_ESIG, "agency %s, %d bytes", "VN:GOV:x:y", 12), LT_ESIG);
    assert_string_equal(why.msg, "agency VN:GOV:x:y, 12 bytes");
    assert_int_equal(lt_fail(NULL, LT_EIO, "ignored"), LT_EIO);
}

static void nack_names_match_the_wire_contract(void **state)
{
    (void)state;
    assert_string_equal(lt_err_name(LT_ESIG), "BAD_SIGNATURE");
    assert_string_equal(lt_err_name(LT_EQUEUE_FULL), "QUEUE_FULL");
    assert_string_equal(lt_err_name(LT_ENOROUTE), "NO_ROUTE");
    assert_string_equal(lt_err_name((lt_err)999), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_unique_name_that_round_trips),
        cmocka_unit_test(fail_formats_reason_and_returns_code),
        cmocka_unit_test(nack_names_match_the_wire_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
