/* test_agency.c - agency ids: the three code forms parse and normalize; malformed ids are
 * refused with LT_EAGENCY_ID and a reason that says what is wrong. */
#include "agency.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void qcvn102_id_parses_into_its_parts(void **state)
{
    (void)state;
    lt_agency_id id;
    const char *s = "VN:GOV:000.00.00.H29:vanphong";
    assert_int_equal(lt_agency_parse(s, strlen(s), &id, NULL), LT_OK);
    assert_string_equal(id.id, s);
    assert_string_equal(id.code, "000.00.00.H29");
    assert_string_equal(id.subsystem, "vanphong");
    assert_string_equal(id.level1, "H29");
    assert_int_equal(id.form, LT_AGENCY_FORM_QCVN102);
}

static void decision20_left_to_right_codes_parse(void **state)
{
    (void)state;
    lt_agency_id id;
    const char *s = "VN:GOV:H29.20.1:tuphap";
    assert_int_equal(lt_agency_parse(s, strlen(s), &id, NULL), LT_OK);
    assert_int_equal(id.form, LT_AGENCY_FORM_QD20);
    assert_string_equal(id.level1, "H29");
    s = "VN:GOV:G09.20:dvc";
    assert_int_equal(lt_agency_parse(s, strlen(s), &id, NULL), LT_OK);
    assert_string_equal(id.level1, "G09");
    assert_string_equal(lt_agency_form_name(id.form), "QD20");
}

static void extended_qcvn102_codes_parse(void **state)
{
    (void)state;
    lt_agency_id id;
    const char *s = "VN:GOV:000.00.00.H29.760:hotich";
    assert_int_equal(lt_agency_parse(s, strlen(s), &id, NULL), LT_OK);
    assert_int_equal(id.form, LT_AGENCY_FORM_QCVN102_EXT);
    assert_string_equal(id.level1, "H29");
}

static void normalize_trims_and_fixes_case(void **state)
{
    (void)state;
    char out[LT_AGENCY_ID_MAX];
    assert_int_equal(lt_agency_normalize("  vn:gov:000.00.00.g22:VpcpDvcProvider\n", out, NULL),
                     LT_OK);
    assert_string_equal(out, "VN:GOV:000.00.00.G22:vpcpdvcprovider");
    assert_true(lt_agency_is_normalized("VN:GOV:000.00.00.G22:vpcpdvcprovider"));
    assert_false(lt_agency_is_normalized("vn:GOV:000.00.00.G22:vpcpdvcprovider"));
    assert_false(lt_agency_is_normalized(" VN:GOV:000.00.00.G22:vpcpdvcprovider"));
}

static void code_alone_normalizes_like_an_edxml_organ_id(void **state)
{
    (void)state;
    char out[LT_AGENCY_CODE_MAX + 1];
    lt_agency_form f;
    assert_int_equal(lt_agency_code_normalize(" 000.00.18.g12 ", 15, out, &f, NULL), LT_OK);
    assert_string_equal(out, "000.00.18.G12");
    assert_int_equal(f, LT_AGENCY_FORM_QCVN102);
}

struct bad {
    const char *id;
    const char *reason_part;
};

static void malformed_ids_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct bad bad[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"VN:GOV:000.00.00.H29", "expected VN:GOV:"},
        {"VN:GOV:000.00.00.H29:a:b", "more than 4"},
        {"EE:GOV:000.00.00.H29:x", "instance must be VN"},
        {"VN:COM:000.00.00.H29:x", "member class must be GOV"},
        {"VN:GOV::x", "agency code"},
        {"VN:GOV:000.00.00.H29:", "subsystem is empty"},
        {"VN:GOV:000.00.H29:x", "QCVN 102"},
        {"VN:GOV:000.00.00.HH9:x", "QCVN 102"},
        {"VN:GOV:00.00.00.H29:x", "QCVN 102"},
        {"VN:GOV:000..00.H29:x", "empty group"},
        {"VN:GOV:.H29:x", "empty group"},
        {"VN:GOV:H29.:x", "empty group"},
        {"VN:GOV:H29.20-1:x", "not one of"},
        {"VN:GOV:29.20:x", "level-1"},
        {"VN:GOV:H29.1234567890.1234567890.1234567890:x", "at most 35"},
        {"VN:GOV:000.00.00.H29:_x", "subsystem may hold"},
        {"VN:GOV:000.00.00.H29:ho tich", "subsystem may hold"},
        {"VN:GOV:000.00.00.H29:hộtịch", "subsystem may hold"},
        {"VN:GOV: 000.00.00.H29:x", "padded"},
        {"VN:GOV:000.00.00.H29:"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "longer than 64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_agency_id id;
        lt_why why = {{0}};
        lt_err e = lt_agency_parse(bad[i].id, strlen(bad[i].id), &id, &why);
        if (e != LT_EAGENCY_ID || strstr(why.msg, bad[i].reason_part) == NULL)
            fail_msg("'%s': got %d '%s', wanted LT_EAGENCY_ID with '%s'", bad[i].id, e, why.msg,
                     bad[i].reason_part);
    }
}

static void embedded_nul_and_control_bytes_are_refused(void **state)
{
    (void)state;
    lt_agency_id id;
    const char s[] = "VN:GOV:000.00.00.H29:van\0phong";
    assert_int_equal(lt_agency_parse(s, sizeof s - 1, &id, NULL), LT_EAGENCY_ID);
    const char t[] = "VN:GOV:000.00.00.H29\x01:x";
    lt_why why;
    assert_int_equal(lt_agency_parse(t, sizeof t - 1, &id, &why), LT_EAGENCY_ID);
    assert_null(strchr(why.msg, '\x01')); /* the reason never echoes raw control bytes */
}

static void overlong_input_is_refused_before_scanning(void **state)
{
    (void)state;
    char big[LT_AGENCY_INPUT_MAX + 10];
    memset(big, 'A', sizeof big);
    lt_agency_id id;
    lt_why why;
    assert_int_equal(lt_agency_parse(big, sizeof big, &id, &why), LT_EAGENCY_ID);
    assert_non_null(strstr(why.msg, "bytes"));
}

static void out_is_untouched_on_error(void **state)
{
    (void)state;
    char out[LT_AGENCY_ID_MAX] = "sentinel";
    assert_int_equal(lt_agency_normalize("VN:GOV:bad:x", out, NULL), LT_EAGENCY_ID);
    assert_string_equal(out, "sentinel");
    assert_int_equal(lt_agency_normalize(NULL, out, NULL), LT_EAGENCY_ID);
    assert_false(lt_agency_is_normalized(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qcvn102_id_parses_into_its_parts),
        cmocka_unit_test(decision20_left_to_right_codes_parse),
        cmocka_unit_test(extended_qcvn102_codes_parse),
        cmocka_unit_test(normalize_trims_and_fixes_case),
        cmocka_unit_test(code_alone_normalizes_like_an_edxml_organ_id),
        cmocka_unit_test(malformed_ids_are_refused_with_a_reason),
        cmocka_unit_test(embedded_nul_and_control_bytes_are_refused),
        cmocka_unit_test(overlong_input_is_refused_before_scanning),
        cmocka_unit_test(out_is_untouched_on_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
