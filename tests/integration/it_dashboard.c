/*
 * it_dashboard.c - the dashboard in a real browser: a lienthongd with dev-init's setup, and
 * Debian's chromium driven headless by tests/integration/dashboard_check.py (chromium-driver
 * + python3-selenium, run with Debian's /usr/bin/python3). The script checks that a wrong
 * token shows an error and no data; that with the token the page's numbers (messages in,
 * the district's row, the queue backlog) and its chart follow traffic published through the
 * broker by `lienthong pub --count N` as District 1; that Vietnamese agency names render as
 * the same Unicode text; that the page fits 1366x768; and it saves a screenshot into the
 * build tree (LT_TEST_BINDIR/dashboard.png, and dashboard-wrong-token.png).
 *
 * This program asserts on the script's JSON report, then on the broker itself (the page's
 * numbers must be the broker's). Every wait is bounded; the script polls the DOM.
 */
#include "harness.h"
#include "harness_admin.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define PYTHON "/usr/bin/python3" /* Debian's: python3-selenium is installed there */
#define CHROMIUM "/usr/bin/chromium"
#define CHROMEDRIVER "/usr/bin/chromedriver"
#define QUAN1 "VN:GOV:000.00.00.H29.760:hotich"
#define QUEUE "dancu.capnhat"
#define COUNT "300"
#define NAME_VANPHONG "Văn phòng Ủy ban nhân dân Thành phố Hồ Chí Minh"
#define NAME_QUAN1 "Ủy ban nhân dân Quận 1"

static it_env env;
static char token[256];

static int group_setup(void **state)
{
    (void)state;
    if (access(PYTHON, X_OK) != 0 || access(CHROMIUM, X_OK) != 0 ||
        access(CHROMEDRIVER, X_OK) != 0) {
        fprintf(stderr, "it_dashboard: needs %s, %s and %s (scripts/install-deps)\n", PYTHON,
                CHROMIUM, CHROMEDRIVER);
        return -1;
    }
    if (!it_env_init(&env) || !it_use_dev_init_config(&env) || !it_broker_start(&env, 30000) ||
        !it_admin_token(&env, token, sizeof token))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (env.pid > 0) {
        int rc = it_broker_stop(&env, 15000);
        if (rc != 0)
            fprintf(stderr, "it_dashboard: lienthongd exited %d on SIGTERM\n", rc);
    }
    it_env_fini(&env);
    return 0;
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("no '%s' in %.2000s", key, json_object_to_json_string(o));
    return v;
}

/* Width and height from a PNG's IHDR; false if path is not a PNG. */
static bool png_size(const char *path, uint32_t *w, uint32_t *h)
{
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n != sizeof b || memcmp(b, "\x89PNG\r\n\x1a\n", 8) != 0 || memcmp(b + 12, "IHDR", 4))
        return false;
    *w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    *h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    return true;
}

/* The integer a displayed number stands for ("1.234" in vi-VN is 1234). */
static int64_t digits(const char *s)
{
    int64_t v = 0;
    for (; s != NULL && *s != '\0'; s++)
        if (*s >= '0' && *s <= '9')
            v = v * 10 + (*s - '0');
    return v;
}

/* The number in the broker's /api/v1/agencies for agency's key. */
static int64_t api_agency(const char *agency, const char *key, char *name, size_t cap)
{
    it_http_resp r;
    assert_true(it_http_get(env.admin_port, "/api/v1/agencies", token, 10000, &r));
    assert_int_equal(r.status, 200);
    json_object *arr = json_tokener_parse(r.body);
    it_http_resp_fini(&r);
    assert_non_null(arr);
    int64_t v = -1;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *a = json_object_array_get_idx(arr, i);
        if (strcmp(json_object_get_string(field(a, "id")), agency) == 0) {
            v = json_object_get_int64(field(a, key));
            snprintf(name, cap, "%s", json_object_get_string(field(a, "name")));
        }
    }
    json_object_put(arr);
    return v;
}

static void dashboard_follows_traffic_shows_vietnamese_names_and_refuses_a_wrong_token(
    void **state)
{
    (void)state;
    /* A refused publish first, so the page has a rejection to show (District 3 on District
     * 1's topic). */
    char q3[IT_PATH_MAX], q1[IT_PATH_MAX];
    it_path(&env, "agencies/quan3.yaml", q3);
    it_path(&env, "agencies/quan1.yaml", q1);
    int rc = it_cli(&env, "refused.out", 30000, "pub", "-c", q3, "-t", "79.760.hotich.khaisinh",
                    "--type", "BirthRegistration", "--json", "{}", (char *)NULL);
    assert_int_equal(rc, 1); /* NACKed */

    char url[128], shot[IT_PATH_MAX], result[IT_PATH_MAX], script[IT_PATH_MAX];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", env.admin_port);
    snprintf(shot, sizeof shot, "%s/dashboard.png", LT_TEST_BINDIR);
    snprintf(script, sizeof script, "%s/tests/integration/dashboard_check.py", LT_TEST_SRCDIR);
    it_path(&env, "dashboard.json", result);
    unlink(shot);
    char *argv[] = {
        (char *)PYTHON, script, "--url", url, "--token", token, "--agency", (char *)QUAN1,
        "--queue", (char *)QUEUE, "--count", (char *)COUNT, "--expect-text",
        (char *)NAME_VANPHONG, "--expect-text", (char *)NAME_QUAN1, "--expect-text",
        "ACL_DENIED", "--screenshot", shot, "--result", result, "--timeout", "30", "--",
        (char *)LT_LIENTHONG, "pub", "-c", q1, "-t", "79.760.hotich.khaisinh", "--type",
        "BirthRegistration", "--json",
        "{\"registration_number\":\"0042\",\"registering_agency_name\":\"UBND phường Sài "
        "Gòn\",\"note\":\"Khai sinh quá hạn\"}",
        "--count", (char *)COUNT, "--rate", "200", NULL};
    char out[IT_PATH_MAX];
    it_path(&env, "dashboard.out", out);
    pid_t pid = it_spawn_prog(argv, out);
    assert_true(pid > 0);
    rc = it_wait(pid, 240000);
    size_t len = 0;
    char *text = it_read_file(&env, result, &len);
    if (text == NULL) {
        char *err = it_read_file(&env, "dashboard.out.err", NULL);
        fail_msg("dashboard_check.py exited %d without a report:\n%s", rc, err ? err : "");
    }
    json_object *rep = json_tokener_parse(text);
    assert_non_null(rep);
    json_object_object_foreach(field(rep, "checks"), check, ok)
    {
        if (!json_object_get_boolean(ok))
            fail_msg("browser check '%s' failed; report:\n%s", check, text);
    }
    assert_int_equal(rc, 0);
    assert_true(json_object_get_boolean(field(rep, "passed")));
    /* The numbers the page showed are the broker's. */
    json_object *after = field(rep, "after");
    json_object *row = field(after, "agency_row");
    char name[256] = "";
    int64_t published = api_agency(QUAN1, "published", name, sizeof name);
    assert_int_equal(published, digits(json_object_get_string(json_object_array_get_idx(row, 1))));
    assert_int_equal(published, atoi(COUNT));
    assert_string_equal(name, NAME_QUAN1); /* the display name from broker.yaml */
    json_object_put(rep);
    free(text);
    /* The screenshot: a PNG of the laptop screen. */
    uint32_t w = 0, h = 0;
    assert_true(png_size(shot, &w, &h));
    assert_int_equal(w, 1366);
    assert_int_equal(h, 768);
    printf("it_dashboard: screenshot %s\n", shot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            dashboard_follows_traffic_shows_vietnamese_names_and_refuses_a_wrong_token),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
