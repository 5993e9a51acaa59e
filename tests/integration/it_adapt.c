/*
 * it_adapt.c - `lienthong adapt` into a real lienthongd on 127.0.0.1, with the broker.yaml
 * that `lienthong dev-init` writes (its ACLs and queues, only the ports changed): every sample
 * feed is accepted; importing again is acked as duplicates only; --watch takes a dropped file,
 * moves it to done/ with its report and records it in the state file.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static it_env env;

struct sample {
    const char *mapping, *agency, *file;
    int rows;
};

static const struct sample samples[] = {
    {"births_760.yaml", "quan1", "births_760_cp1258.csv", 60},
    {"residence_26737.yaml", "quan1", "residence_26737_tcvn3.txt", 40},
    {"businesses_760.yaml", "quan1", "businesses_vni.csv", 50},
    {"edxml_package.yaml", "vanphong", "edxml/2417-UBND-VX.edxml", 1},
    {"edxml_package.yaml", "vanphong", "edxml/5123-VPCP-KGVX.edxml", 1},
    {"edxml_status.yaml", "vanphong", "edxml/2417-UBND-VX.status-01.edxml", 1},
};

/* Replace every occurrence of from in s (malloc'd) by to; returns a new string. */
static char *replace(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = s; (p = strstr(p, from)) != NULL; p += fl)
        n++;
    char *out = malloc(strlen(s) + n * (tl + 1) + 1), *o = out;
    assert_non_null(out);
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        size_t k = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        if (q == NULL)
            break;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    *o = 0;
    return out;
}

static int setup(void **state)
{
    (void)state;
    if (!it_env_init(&env))
        return -1;
    /* the broker.yaml dev-init wrote, on this test's ports */
    char *y = it_read_file(&env, "broker.yaml", NULL);
    if (y == NULL)
        return -1;
    char *a = replace(y, "tcp://127.0.0.1:7400", "@LISTEN@");
    char *b = replace(a, "127.0.0.1:7401", "@ADMIN@");
    bool ok = it_write_broker_yaml(&env, b);
    free(y), free(a), free(b);
    return ok && it_broker_start(&env, 20000) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_broker_stop(&env, 10000);
    it_env_fini(&env);
    return 0;
}

static void src(const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/adapters/samples/%s", LT_TEST_SRCDIR, rel);
}

/* Run adapt on one sample; assert exit 0 and the summary "N published (D duplicates)". */
static void adapt_sample(const struct sample *s, int want_dups)
{
    char cfg[IT_PATH_MAX], rel[64], map[1024], file[1024], want[128];
    snprintf(rel, sizeof rel, "agencies/%s.yaml", s->agency);
    it_path(&env, rel, cfg);
    snprintf(rel, sizeof rel, "mappings/%s", s->mapping);
    src(rel, map, sizeof map);
    src(s->file, file, sizeof file);
    int rc = it_cli(&env, "adapt.out", 60000, "adapt", "-c", cfg, "-m", map, "--batch", "16",
                    file, (char *)NULL);
    char *err = it_read_file(&env, "adapt.out.err", NULL);
    snprintf(want, sizeof want, "%d rows: %d published (%d duplicates), 0 rejected", s->rows,
             s->rows, want_dups);
    bool ok = rc == 0 && err != NULL && strstr(err, want) != NULL;
    if (!ok)
        fprintf(stderr, "adapt %s %s: exit %d, want '%s' in:\n%s\n", s->mapping, s->file, rc,
                want, err ? err : "(no stderr)");
    free(err);
    assert_true(ok);
}

static void every_sample_is_accepted_by_the_broker(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        adapt_sample(&samples[i], 0);
}

static void importing_again_is_acked_as_duplicates_only(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        adapt_sample(&samples[i], samples[i].rows);
}

static void rows_the_broker_refuses_are_in_the_reject_report(void **state)
{
    (void)state;
    /* the city office may not publish on District 1's topics: every row NACKed ACL_DENIED */
    char cfg[IT_PATH_MAX], map[1024], file[1024], report[IT_PATH_MAX];
    it_path(&env, "agencies/vanphong.yaml", cfg);
    it_path(&env, "denied.csv", report);
    src("mappings/births_760.yaml", map, sizeof map);
    src("births_760_cp1258.csv", file, sizeof file);
    int rc = it_cli(&env, "denied.out", 60000, "adapt", "-c", cfg, "-m", map, "--report", report,
                    file, (char *)NULL);
    assert_int_equal(rc, 1);
    char *rep = it_read_file(&env, "denied.csv", NULL);
    assert_non_null(rep);
    size_t lines = 0;
    for (const char *p = rep; (p = strstr(p, ",ACL_DENIED,")) != NULL; p++)
        lines++;
    free(rep);
    assert_int_equal(lines, 60);
}

static bool exists(const char *rel)
{
    char p[IT_PATH_MAX];
    struct stat st;
    return stat(it_path(&env, rel, p), &st) == 0;
}

static void watch_moves_a_dropped_file_to_done(void **state)
{
    (void)state;
    char cfg[IT_PATH_MAX], map[1024], file[1024], drop[IT_PATH_MAX];
    it_path(&env, "agencies/quan1.yaml", cfg);
    it_path(&env, "drop", drop);
    assert_int_equal(mkdir(drop, 0755), 0);
    src("mappings/births_760.yaml", map, sizeof map);
    src("births_760_cp1258.csv", file, sizeof file);
    pid_t pid = it_cli_spawn(&env, "watch.out", "adapt", "-c", cfg, "-m", map, "--watch", drop,
                             "--scan-ms", "100", "--settle-ms", "100", (char *)NULL);
    assert_true(pid > 0);
    size_t len = 0;
    char *data = it_read_file(&env, file, &len);
    assert_non_null(data);
    assert_true(it_write_file(&env, "drop/births.csv", data));
    free(data);
    int64_t deadline = it_now_ms() + 30000;
    while (!exists("drop/done/births.csv") && it_now_ms() < deadline) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGTERM);
    assert_int_equal(it_wait(pid, 10000), 0);
    assert_true(exists("drop/done/births.csv"));
    assert_true(exists("drop/done/births.csv.report.csv"));
    assert_false(exists("drop/births.csv"));
    char *st = it_read_file(&env, "drop/.lienthong-adapt.state", NULL);
    assert_non_null(st);
    bool recorded = strstr(st, " done births.csv") != NULL;
    free(st);
    assert_true(recorded);
    char *err = it_read_file(&env, "watch.out.err", NULL);
    assert_non_null(err);
    /* imported above already: all 60 acked as duplicates, nothing published twice */
    bool dup = strstr(err, "60 rows: 60 published (60 duplicates), 0 rejected") != NULL;
    free(err);
    assert_true(dup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_sample_is_accepted_by_the_broker),
        cmocka_unit_test(importing_again_is_acked_as_duplicates_only),
        cmocka_unit_test(rows_the_broker_refuses_are_in_the_reject_report),
        cmocka_unit_test(watch_moves_a_dropped_file_to_done),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
