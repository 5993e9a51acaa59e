/* test_router.c - topic and pattern grammar, NATS wildcard semantics, the route table. */
#include "router.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void valid_topics_are_accepted(void **state)
{
    (void)state;
    const char *ok[] = {"79", "79.760.hotich.khaisinh", "a-b_c.D9", "x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(lt_topic_check(ok[i], NULL), LT_OK);
}

static void invalid_topics_are_refused_with_a_reason(void **state)
{
    (void)state;
    lt_why why;
    const char *bad[] = {"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "à.b", "a/b",
                         "x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n" /* 17 tokens */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why.msg[0] = '\0';
        assert_int_equal(lt_topic_check(bad[i], &why), LT_EBADTOPIC);
        assert_true(strlen(why.msg) > 0);
    }
    assert_int_equal(lt_topic_check(NULL, &why), LT_EBADTOPIC);
    char longt[300];
    memset(longt, 'a', sizeof longt);
    longt[256] = '\0'; /* 256 bytes, one token */
    assert_int_equal(lt_topic_check(longt, &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "255"));
    longt[255] = '\0';
    assert_int_equal(lt_topic_check(longt, &why), LT_OK);
    assert_int_equal(lt_topic_check("a..b", &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "empty token"));
    assert_int_equal(lt_topic_check("a.*.b", &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "wildcard"));
}

static void patterns_follow_the_nats_grammar(void **state)
{
    (void)state;
    lt_why why;
    const char *ok[] = {">", "*", "79.*.hotich.>", "*.*", "a.>", "a.*.b"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(lt_pattern_check(ok[i], &why), LT_OK);
    const char *bad[] = {"", "a.>.b", ">.a", "a*", "a.b*", "*a", "a.>>", "a..*", "a.**"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(lt_pattern_check(bad[i], &why), LT_EBADTOPIC);
    assert_int_equal(lt_pattern_check("a.>.b", &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "last"));
}

static void star_matches_exactly_one_token_and_gt_one_or_more(void **state)
{
    (void)state;
    assert_true(lt_pattern_matches("79.*.hotich.>", "79.760.hotich.khaisinh"));
    assert_true(lt_pattern_matches("79.*.hotich.>", "79.760.hotich.khaisinh.a.b"));
    assert_false(lt_pattern_matches("79.*.hotich.>", "79.760.hotich"));
    assert_false(lt_pattern_matches("79.*.hotich.>", "79.hotich.khaisinh"));
    assert_true(lt_pattern_matches("a.*", "a.b"));
    assert_false(lt_pattern_matches("a.*", "a"));
    assert_false(lt_pattern_matches("a.*", "a.b.c"));
    assert_true(lt_pattern_matches(">", "a"));
    assert_true(lt_pattern_matches(">", "a.b.c"));
    assert_true(lt_pattern_matches("*", "a"));
    assert_false(lt_pattern_matches("*", "a.b"));
    assert_true(lt_pattern_matches("a.b", "a.b"));
    assert_false(lt_pattern_matches("a.b", "a.bc"));
    assert_false(lt_pattern_matches("a.b", "A.b")); /* case-sensitive */
    assert_false(lt_pattern_matches("a.>", "a"));
    assert_false(lt_pattern_matches("a.>", "a.*")); /* a topic has no wildcards */
    assert_false(lt_pattern_matches("a..b", "a.b"));
}

static void match_returns_every_bound_queue_once_in_order(void **state)
{
    (void)state;
    lt_router *r;
    lt_why why;
    assert_int_equal(lt_router_new(&r), LT_OK);
    assert_int_equal(lt_router_bind(r, "79.*.hotich.>", 7, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, "79.*.cutru.>", 7, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, "79.760.>", 3, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, "79.760.hotich.khaisinh", 9, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, "79.760.hotich.khaisinh", 3, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, ">", 1, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, "*.*.*.*", 7, &why), LT_OK);
    assert_int_equal(lt_router_bind(r, ">", 1, &why), LT_OK); /* twice: harmless */
    assert_int_equal(lt_router_count(r), 7);
    uint32_t out[16];
    size_t n;
    assert_int_equal(lt_router_match(r, "79.760.hotich.khaisinh", out, 16, &n, &why), LT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(out[2], 7);
    assert_int_equal(out[3], 9);
    assert_int_equal(lt_router_match(r, "79.761.cutru.x.y", out, 16, &n, &why), LT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 7);
    assert_int_equal(lt_router_match(r, "80", out, 16, &n, &why), LT_OK);
    assert_int_equal(n, 1);
    /* too many: the smallest are kept and it says so */
    assert_int_equal(lt_router_match(r, "79.760.hotich.khaisinh", out, 2, &n, &why),
                     LT_ETOOBIG);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 3);
    assert_int_equal(lt_router_match(r, "79.*.x", out, 16, &n, &why), LT_EBADTOPIC);
    assert_int_equal(lt_router_bind(r, "a.>.b", 1, &why), LT_EBADTOPIC);
    /* unbind */
    assert_int_equal(lt_router_unbind(r, ">", 1), LT_OK);
    assert_int_equal(lt_router_unbind(r, ">", 1), LT_ENOTFOUND);
    assert_int_equal(lt_router_unbind(r, "no.such", 1), LT_ENOTFOUND);
    assert_int_equal(lt_router_match(r, "80", out, 16, &n, &why), LT_OK);
    assert_int_equal(n, 0);
    assert_false(lt_router_has_match(r, "80"));
    assert_true(lt_router_has_match(r, "79.760.x"));
    assert_false(lt_router_has_match(r, "79.761.x"));
    lt_router_destroy(&r);
    assert_null(r);
    lt_router_destroy(&r);
}

static void a_thousand_queues_route_independently(void **state)
{
    (void)state;
    lt_router *r;
    lt_why why;
    assert_int_equal(lt_router_new(&r), LT_OK);
    char p[64];
    for (uint32_t q = 0; q < 1000; q++) {
        snprintf(p, sizeof p, "79.%u.*.>", q);
        assert_int_equal(lt_router_bind(r, p, q, &why), LT_OK);
    }
    uint32_t out[4];
    size_t n;
    for (uint32_t q = 0; q < 1000; q += 97) {
        snprintf(p, sizeof p, "79.%u.hotich.khaisinh", q);
        assert_int_equal(lt_router_match(r, p, out, 4, &n, &why), LT_OK);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], q);
    }
    assert_int_equal(lt_router_match(r, "79.5.hotich", out, 4, &n, &why), LT_OK);
    assert_int_equal(n, 0);
    lt_router_destroy(&r);
}

/* The trie and the one-off matcher agree on every combination of a small vocabulary. */
static void the_trie_agrees_with_the_reference_matcher(void **state)
{
    (void)state;
    const char *pats[] = {"a", "b", "*", ">", "a.b", "a.*", "*.b", "a.>", "*.>", "a.b.c",
                          "a.*.c", "*.*.*", "a.b.>", "b.>", "*.*"};
    const char *topics[] = {"a", "b", "c", "a.b", "a.c", "b.b", "a.b.c", "a.c.c", "b.b.b",
                            "a.b.c.d", "c.c.c.c"};
    size_t np = sizeof pats / sizeof pats[0], nt = sizeof topics / sizeof topics[0];
    lt_router *r;
    lt_why why;
    assert_int_equal(lt_router_new(&r), LT_OK);
    for (size_t i = 0; i < np; i++)
        assert_int_equal(lt_router_bind(r, pats[i], (uint32_t)i, &why), LT_OK);
    for (size_t t = 0; t < nt; t++) {
        uint32_t out[32];
        size_t n, k = 0;
        assert_int_equal(lt_router_match(r, topics[t], out, 32, &n, &why), LT_OK);
        for (size_t i = 0; i < np; i++) {
            bool want = lt_pattern_matches(pats[i], topics[t]);
            bool got = k < n && out[k] == i;
            if (want != got)
                fail_msg("pattern %s topic %s: want %d got %d", pats[i], topics[t], want, got);
            if (got)
                k++;
        }
        assert_int_equal(k, n);
    }
    lt_router_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_topics_are_accepted),
        cmocka_unit_test(invalid_topics_are_refused_with_a_reason),
        cmocka_unit_test(patterns_follow_the_nats_grammar),
        cmocka_unit_test(star_matches_exactly_one_token_and_gt_one_or_more),
        cmocka_unit_test(match_returns_every_bound_queue_once_in_order),
        cmocka_unit_test(a_thousand_queues_route_independently),
        cmocka_unit_test(the_trie_agrees_with_the_reference_matcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
