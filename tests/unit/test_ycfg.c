/* test_ycfg.c - configuration trees: values, defaults, and refusals that name file, line, key. */
#include "ycfg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char good[] = "broker:\n"
                           "  name: \"Cổng liên thông TP.HCM\"\n"
                           "  verify_threads: 4\n"
                           "  strict: yes\n"
                           "queues:\n"
                           "  - name: dancu.capnhat\n"
                           "    bind: [\"79.*.hotich.>\", \"79.*.cutru.>\"]\n"
                           "    max_deliver: abc\n";

static lt_ynode *parse(const char *text)
{
    lt_ynode *root = NULL;
    lt_why why;
    assert_int_equal(lt_ycfg_parse("/etc/lt/broker.yaml", text, strlen(text), &root, &why), LT_OK);
    return root;
}

static void typed_getters_read_values_and_defaults(void **state)
{
    (void)state;
    lt_ynode *root = parse(good);
    lt_why why;
    const lt_ynode *broker;
    assert_int_equal(lt_ycfg_map(root, "broker", true, &broker, &why), LT_OK);
    const char *name;
    assert_int_equal(lt_ycfg_str(broker, "name", NULL, &name, &why), LT_OK);
    assert_string_equal(name, "Cổng liên thông TP.HCM");
    int64_t n;
    assert_int_equal(lt_ycfg_int(broker, "verify_threads", 0, 0, 64, &n, &why), LT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(lt_ycfg_int(broker, "absent", 77, 0, 100, &n, &why), LT_OK);
    assert_int_equal(n, 77);
    bool b = false;
    assert_int_equal(lt_ycfg_bool(broker, "strict", false, &b, &why), LT_OK);
    assert_true(b);
    char *path = NULL;
    assert_int_equal(lt_ycfg_filepath(broker, "ca", "ca/ca.pem", &path, &why), LT_OK);
    assert_string_equal(path, "/etc/lt/ca/ca.pem");
    free(path);
    const lt_ynode *queues;
    assert_int_equal(lt_ycfg_seq(root, "queues", true, &queues, &why), LT_OK);
    assert_int_equal(lt_ycfg_len(queues), 1);
    const char **list;
    size_t count;
    assert_int_equal(lt_ycfg_str_list(lt_ycfg_at(queues, 0), "bind", &list, &count, &why), LT_OK);
    assert_int_equal(count, 2);
    assert_string_equal(list[1], "79.*.cutru.>");
    free(list);
    lt_ycfg_free(&root);
    assert_null(root);
}

static void bad_value_names_file_line_and_key_path(void **state)
{
    (void)state;
    lt_ynode *root = parse(good);
    lt_why why;
    const lt_ynode *q = lt_ycfg_at(lt_ycfg_get(root, "queues"), 0);
    int64_t n = 5;
    assert_int_equal(lt_ycfg_int(q, "max_deliver", 5, 1, 1000, &n, &why), LT_ECONFIG);
    assert_int_equal(n, 5);
    assert_string_equal(why.msg, "/etc/lt/broker.yaml:8: queues[0].max_deliver: expected an "
                                 "integer in 1..1000, got 'abc'");
    const lt_ynode *broker = lt_ycfg_get(root, "broker");
    assert_int_equal(lt_ycfg_int(broker, "verify_threads", 0, 0, 2, &n, &why), LT_ECONFIG);
    const char *s;
    assert_int_equal(lt_ycfg_str(broker, "listen", NULL, &s, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "required key 'listen' is missing"));
    lt_ycfg_free(&root);
}

static void unknown_keys_are_refused_with_the_expected_ones(void **state)
{
    (void)state;
    lt_ynode *root = parse(good);
    lt_why why;
    static const char *const allowed[] = {"name", "verify_threads", NULL};
    assert_int_equal(lt_ycfg_check_keys(lt_ycfg_get(root, "broker"), allowed, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, ":4: broker.strict: unknown key 'strict'"));
    assert_non_null(strstr(why.msg, "name, verify_threads"));
    lt_ycfg_free(&root);
    /* The line is the key's, even when its value (a map) starts on the next line. */
    root = parse("brokr:\n  name: x\n");
    static const char *const top[] = {"broker", NULL};
    assert_int_equal(lt_ycfg_check_keys(root, top, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "broker.yaml:1: brokr: unknown key 'brokr'"));
    lt_ycfg_free(&root);
}

static void refuses_aliases_duplicates_non_maps_and_broken_yaml(void **state)
{
    (void)state;
    const char *bad[] = {
        "a: &x [1, 2]\nb: *x\n",       /* alias */
        "a: 1\na: 2\n",                /* duplicate key */
        "- 1\n- 2\n",                  /* top is a list */
        "a: [1, 2\n",                  /* unterminated */
        "a: 1\n---\nb: 2\n",           /* second document */
        "{[1]: 2}\n",                  /* non-scalar key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_ynode *root = NULL;
        lt_why why = {{0}};
        assert_int_equal(lt_ycfg_parse("x.yaml", bad[i], strlen(bad[i]), &root, &why), LT_ECONFIG);
        assert_null(root);
        assert_true(strncmp(why.msg, "x.yaml:", 7) == 0);
    }
}

static void empty_file_is_an_empty_map_and_missing_file_is_io_error(void **state)
{
    (void)state;
    lt_ynode *root = NULL;
    lt_why why;
    assert_int_equal(lt_ycfg_parse("e.yaml", "", 0, &root, &why), LT_OK);
    assert_int_equal(lt_ycfg_kind(root), LT_Y_MAP);
    assert_int_equal(lt_ycfg_len(root), 0);
    lt_ycfg_free(&root);
    assert_int_equal(lt_ycfg_load("/nonexistent/dir/broker.yaml", &root, &why), LT_EIO);
    assert_non_null(strstr(why.msg, "cannot open"));
}

static void deep_nesting_is_refused(void **state)
{
    (void)state;
    char buf[4096];
    size_t n = 0;
    n += (size_t)snprintf(buf, sizeof buf, "a: ");
    for (int i = 0; i < 200; i++)
        buf[n++] = '[';
    buf[n] = '\0';
    lt_ynode *root = NULL;
    lt_why why;
    assert_int_equal(lt_ycfg_parse("d.yaml", buf, n, &root, &why), LT_ECONFIG);
    assert_null(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(typed_getters_read_values_and_defaults),
        cmocka_unit_test(bad_value_names_file_line_and_key_path),
        cmocka_unit_test(unknown_keys_are_refused_with_the_expected_ones),
        cmocka_unit_test(refuses_aliases_duplicates_non_maps_and_broken_yaml),
        cmocka_unit_test(empty_file_is_an_empty_map_and_missing_file_is_io_error),
        cmocka_unit_test(deep_nesting_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
