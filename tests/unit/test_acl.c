/* test_acl.c - deny by default, publish patterns per agency, owners consume, admins. */
#include "acl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define HOTICH "VN:GOV:000.00.00.H29.760:hotich"
#define DANCU "VN:GOV:000.00.00.G01:csdldancu"
#define VP "VN:GOV:000.00.00.H29:vanphong"

static lt_acl *sample(void)
{
    lt_acl *a;
    lt_why why;
    assert_int_equal(lt_acl_new(&a), LT_OK);
    assert_int_equal(lt_acl_allow_publish(a, HOTICH, "79.760.>", &why), LT_OK);
    assert_int_equal(lt_acl_add_agency(a, DANCU, &why), LT_OK);
    assert_int_equal(lt_acl_add_admin(a, VP, &why), LT_OK);
    assert_int_equal(lt_acl_set_owner(a, "dancu.capnhat", DANCU, &why), LT_OK);
    return a;
}

static void an_empty_acl_denies_everything(void **state)
{
    (void)state;
    lt_acl *a;
    lt_why why;
    assert_int_equal(lt_acl_new(&a), LT_OK);
    assert_int_equal(lt_acl_check_publish(a, HOTICH, "79.760.hotich", &why), LT_EACL);
    assert_int_equal(lt_acl_check_consume(a, DANCU, "q", &why), LT_ENOQUEUE);
    assert_int_equal(lt_acl_check_admin(a, VP, NULL, &why), LT_EACL);
    assert_false(lt_acl_is_admin(a, VP));
    lt_acl_destroy(&a);
    assert_null(a);
}

static void agencies_publish_only_where_their_patterns_allow(void **state)
{
    (void)state;
    lt_acl *a = sample();
    lt_why why;
    assert_int_equal(lt_acl_check_publish(a, HOTICH, "79.760.hotich.khaisinh", &why), LT_OK);
    assert_int_equal(lt_acl_check_publish(a, HOTICH, "79.761.hotich.khaisinh", &why),
                     LT_EACL);
    assert_non_null(strstr(why.msg, HOTICH));
    assert_non_null(strstr(why.msg, "79.761.hotich.khaisinh"));
    assert_int_equal(lt_acl_check_publish(a, HOTICH, "79.760", &why), LT_EACL);
    /* listed with no pattern: publishes nothing */
    assert_int_equal(lt_acl_check_publish(a, DANCU, "79.760.hotich", &why), LT_EACL);
    /* unknown agency, and a near-miss spelling of a known one */
    assert_int_equal(lt_acl_check_publish(a, "VN:GOV:000.00.00.H29.761:hotich",
                                          "79.760.hotich", &why),
                     LT_EACL);
    assert_int_equal(lt_acl_check_publish(a, NULL, "79.760.hotich", &why), LT_EACL);
    assert_int_equal(lt_acl_check_publish(a, HOTICH, "79.760.*", &why), LT_EBADTOPIC);
    assert_int_equal(lt_acl_allow_publish(a, HOTICH, "79.>.x", &why), LT_EBADTOPIC);
    assert_int_equal(lt_acl_allow_publish(a, "", "79.>", &why), LT_EINVAL);
    lt_acl_destroy(&a);
}

static void only_the_owner_consumes_and_admins_administer(void **state)
{
    (void)state;
    lt_acl *a = sample();
    lt_why why;
    assert_int_equal(lt_acl_check_consume(a, DANCU, "dancu.capnhat", &why), LT_OK);
    assert_int_equal(lt_acl_check_consume(a, HOTICH, "dancu.capnhat", &why), LT_EACL);
    assert_non_null(strstr(why.msg, "owned by"));
    assert_int_equal(lt_acl_check_consume(a, VP, "dancu.capnhat", &why), LT_EACL);
    assert_int_equal(lt_acl_check_consume(a, DANCU, "other", &why), LT_ENOQUEUE);
    assert_string_equal(lt_acl_owner(a, "dancu.capnhat"), DANCU);
    assert_null(lt_acl_owner(a, "other"));
    assert_true(lt_acl_is_admin(a, VP));
    assert_int_equal(lt_acl_check_admin(a, VP, "dancu.capnhat", &why), LT_OK);
    assert_int_equal(lt_acl_check_admin(a, VP, NULL, &why), LT_OK);
    assert_int_equal(lt_acl_check_admin(a, DANCU, "dancu.capnhat", &why), LT_OK);
    assert_int_equal(lt_acl_check_admin(a, DANCU, NULL, &why), LT_EACL);
    assert_int_equal(lt_acl_check_admin(a, HOTICH, "dancu.capnhat", &why), LT_EACL);
    /* a second owner is refused; the same owner again is fine */
    assert_int_equal(lt_acl_set_owner(a, "dancu.capnhat", HOTICH, &why), LT_EEXIST);
    assert_int_equal(lt_acl_set_owner(a, "dancu.capnhat", DANCU, &why), LT_OK);
    lt_acl_destroy(&a);
}

static void many_agencies_and_queues_are_kept_apart(void **state)
{
    (void)state;
    lt_acl *a;
    lt_why why;
    assert_int_equal(lt_acl_new(&a), LT_OK);
    char ag[64], pat[32], q[32];
    for (int i = 0; i < 500; i++) {
        snprintf(ag, sizeof ag, "VN:GOV:000.00.00.H29.%d:hotich", i);
        snprintf(pat, sizeof pat, "79.%d.>", i);
        snprintf(q, sizeof q, "q%d", i);
        assert_int_equal(lt_acl_allow_publish(a, ag, pat, &why), LT_OK);
        assert_int_equal(lt_acl_set_owner(a, q, ag, &why), LT_OK);
    }
    for (int i = 0; i < 500; i += 37) {
        snprintf(ag, sizeof ag, "VN:GOV:000.00.00.H29.%d:hotich", i);
        snprintf(pat, sizeof pat, "79.%d.x", i);
        snprintf(q, sizeof q, "q%d", i);
        assert_int_equal(lt_acl_check_publish(a, ag, pat, &why), LT_OK);
        snprintf(pat, sizeof pat, "79.%d.x", i + 1);
        assert_int_equal(lt_acl_check_publish(a, ag, pat, &why), LT_EACL);
        assert_int_equal(lt_acl_check_consume(a, ag, q, &why), LT_OK);
        snprintf(q, sizeof q, "q%d", i + 1);
        assert_int_equal(lt_acl_check_consume(a, ag, q, &why), LT_EACL);
    }
    lt_acl_destroy(&a);
}

static void a_peer_relays_only_its_patterns_and_nothing_else_is_a_peer(void **state)
{
    (void)state;
    lt_acl *a;
    lt_why why = {{0}};
    assert_int_equal(lt_acl_new(&a), LT_OK);
    assert_int_equal(lt_acl_add_peer(a, "VN:GOV:000.00.00.H29:lt", "city", &why), LT_OK);
    assert_int_equal(lt_acl_add_peer(a, "VN:GOV:000.00.00.H29:lt", "again", &why), LT_EEXIST);
    assert_int_equal(lt_acl_add_peer(a, "", "x", &why), LT_EINVAL);
    assert_int_equal(lt_acl_allow_relay(a, "VN:GOV:000.00.00.H29:lt", "79.>", &why), LT_OK);
    assert_int_equal(lt_acl_allow_relay(a, "VN:GOV:000.00.00.H29:lt", "79.>.x", &why),
                     LT_EBADTOPIC);
    assert_int_equal(lt_acl_allow_relay(a, "VN:GOV:000.00.00.G01:lt", "79.>", &why), LT_EINVAL);
    assert_string_equal(lt_acl_peer_name(a, "VN:GOV:000.00.00.H29:lt"), "city");
    assert_null(lt_acl_peer_name(a, "VN:GOV:000.00.00.G01:lt"));
    assert_int_equal(lt_acl_check_relay(a, "VN:GOV:000.00.00.H29:lt", "79.760.x", &why), LT_OK);
    assert_int_equal(lt_acl_check_relay(a, "VN:GOV:000.00.00.H29:lt", "01.x", &why), LT_EACL);
    assert_non_null(strstr(why.msg, "peer broker city may not relay topic 01.x"));
    assert_int_equal(lt_acl_check_relay(a, "VN:GOV:000.00.00.G01:lt", "79.760.x", &why),
                     LT_ENOT_PEER);
    /* a peer is no publishing agency for it */
    assert_int_equal(lt_acl_check_publish(a, "VN:GOV:000.00.00.H29:lt", "79.760.x", &why),
                     LT_EACL);
    lt_acl_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_acl_denies_everything),
        cmocka_unit_test(agencies_publish_only_where_their_patterns_allow),
        cmocka_unit_test(only_the_owner_consumes_and_admins_administer),
        cmocka_unit_test(many_agencies_and_queues_are_kept_apart),
        cmocka_unit_test(a_peer_relays_only_its_patterns_and_nothing_else_is_a_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
