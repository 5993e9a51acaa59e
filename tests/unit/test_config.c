/* test_config.c - the agency client config: paths resolve against the file, defaults apply,
 * and bad files are refused with file, line and key. */
/* By path: broker/config.h (also on this binary's include path) shadows the name. */
#include "config.h"
#include "devpki.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/lt-test-config-XXXXXX", tmp);
    if (mkdtemp(dir) == NULL)
        return -1;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/pki", dir);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/agencies", dir);
    mkdir(sub, 0755);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char pki[300];
    snprintf(pki, sizeof pki, "%s/pki", dir);
    lt_why why;
    return lt_devpki_fixture(pki, LT_SIG_ED25519, (int64_t)ts.tv_sec * 1000, &why) == LT_OK ? 0
                                                                                           : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static const char *write_cfg(const char *name, const char *text)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/agencies/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void a_full_config_loads_and_opens_signer_and_trust(void **state)
{
    (void)state;
    const char *p = write_cfg("a.yaml", "agency:\n"
                                        "  id: vn:gov:000.00.00.h29.760:HOTICH\n"
                                        "  name: \"Ủy ban nhân dân Quận 1\"\n"
                                        "  key: ../pki/a.key.pem\n"
                                        "  cert: ../pki/a.cert.pem\n"
                                        "trust:\n"
                                        "  ca: ../pki/ca.cert.pem\n"
                                        "  crl: ../pki/crl.pem\n"
                                        "  clock_skew_s: 60\n");
    lt_agency_config *c = NULL;
    lt_why why;
    assert_int_equal(lt_agency_config_load(p, &c, &why), LT_OK);
    assert_string_equal(c->id, "VN:GOV:000.00.00.H29.760:hotich");
    assert_string_equal(c->name, "Ủy ban nhân dân Quận 1");
    assert_int_equal(c->clock_skew_s, 60);
    assert_string_equal(c->broker_endpoint, "tcp://127.0.0.1:7400");
    lt_signer *s = NULL;
    if (lt_agency_config_open_signer(c, &s, &why) != LT_OK)
        fail_msg("%s", why.msg);
    assert_string_equal(lt_signer_agency(s), c->id);
    lt_trust *t = NULL;
    assert_int_equal(lt_agency_config_open_trust(c, &t, &why), LT_OK);
    assert_int_equal(lt_trust_clock_skew_ms(t), 60000);
    lt_trust_destroy(&t);
    lt_signer_destroy(&s);
    lt_agency_config_destroy(&c);
    assert_null(c);
}

static void a_certificate_of_another_agency_is_refused_at_open(void **state)
{
    (void)state;
    const char *p = write_cfg("b.yaml", "agency:\n"
                                        "  id: VN:GOV:000.00.00.H29:vanphong\n"
                                        "  key: ../pki/a.key.pem\n"
                                        "  cert: ../pki/a.cert.pem\n");
    lt_agency_config *c = NULL;
    lt_why why;
    assert_int_equal(lt_agency_config_load(p, &c, &why), LT_OK);
    lt_signer *s = NULL;
    assert_int_equal(lt_agency_config_open_signer(c, &s, &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "is for VN:GOV:000.00.00.H29.760:hotich"));
    lt_agency_config_destroy(&c);
}

static void a_verify_only_config_needs_no_key(void **state)
{
    (void)state;
    const char *p = write_cfg("v.yaml", "agency:\n  id: VN:GOV:000.00.00.G01:csdldancu\n");
    lt_agency_config *c = NULL;
    lt_why why;
    assert_int_equal(lt_agency_config_load(p, &c, &why), LT_OK);
    assert_null(c->key_path);
    assert_non_null(strstr(c->ca_path, "ca/ca.cert.pem")); /* the dev-init layout default */
    lt_signer *s = NULL;
    assert_int_equal(lt_agency_config_open_signer(c, &s, &why), LT_ECONFIG);
    lt_agency_config_destroy(&c);
}

static void bad_configs_are_refused_with_file_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"agency:\n  id: VN:GOV:000.00.H29:x\n", "bad.yaml:2: agency.id: "},
        {"agency:\n  id: VN:GOV:000.00.00.H29:x\n  kee: k.pem\n", "unknown key 'kee'"},
        {"agency:\n  id: VN:GOV:000.00.00.H29:x\ntrust:\n  clock_skew_s: -1\n", "clock_skew_s"},
        {"agency:\n  name: x\n", "id"},
        {"agency:\n  id: VN:GOV:000.00.00.H29:x\nbroker:\n  endpoint: 127.0.0.1:7400\n",
         "ZeroMQ endpoint"},
        {"trust: {}\n", "agency"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_cfg("bad.yaml", bad[i].text);
        lt_agency_config *c = NULL;
        lt_why why = {{0}};
        lt_err e = lt_agency_config_load(p, &c, &why);
        if (e != LT_ECONFIG || strstr(why.msg, bad[i].want) == NULL)
            fail_msg("case %zu: %d '%s', wanted '%s'", i, e, why.msg, bad[i].want);
        assert_null(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_config_loads_and_opens_signer_and_trust),
        cmocka_unit_test(a_certificate_of_another_agency_is_refused_at_open),
        cmocka_unit_test(a_verify_only_config_needs_no_key),
        cmocka_unit_test(bad_configs_are_refused_with_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
