/*
 * it_service.c - what running lienthongd as a service needs (ops/systemd/lienthongd.service):
 *
 *   - `lienthongd --check -c FILE` accepts a good config and refuses each kind of bad one
 *     (syntax, values, trust files, the store's directory and the admin token) with exit
 *     status 2 and a reason naming the file and the key, without opening the store,
 *     creating the admin token or binding a socket (it passes while a broker on the same
 *     config holds the ports);
 *   - the broker sends READY=1 to $NOTIFY_SOCKET (a path or an abstract name) when it logs
 *     `ready`, and a broken $NOTIFY_SOCKET is a warning, not a failure;
 *   - `lienthong dev-init DIR --state-dir STATE` writes a config that keeps every file the
 *     broker writes under STATE.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

static const char BROKER_YAML[] =
    "broker:\n"
    "  name: it-service\n"
    "  listen: @LISTEN@\n"
    "  data_dir: data\n"
    "  map_size_mb: 64\n"
    "  verify_threads: 1\n"
    "  dedup_window_s: 86400\n"
    "  admin:\n"
    "    listen: @ADMIN@\n"
    "    token_file: service.token\n"
    "trust:\n"
    "  ca: ca/ca.cert.pem\n"
    "  crl: ca/crl.pem\n"
    "  clock_skew_s: 300\n"
    "admins:\n"
    "  - VN:GOV:000.00.00.H29:vanphong\n"
    "acl:\n"
    "  - agency: VN:GOV:000.00.00.H29.760:hotich\n"
    "    publish: [\"79.760.>\"]\n"
    "queues:\n"
    "  - name: dancu.capnhat\n"
    "    owner: VN:GOV:000.00.00.G01:csdldancu\n"
    "    bind: [\"79.*.hotich.>\"]\n";

static it_env env;

static int group_setup(void **state)
{
    (void)state;
    return it_env_init(&env) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (env.pid > 0)
        it_broker_stop(&env, 15000);
    it_env_fini(&env);
    return 0;
}

/* Run `lienthongd --check -c dir/rel`; its exit status, its stdout and stderr in *out and
 * *err (malloc'ed). */
static int check(const char *rel, char **out, char **err)
{
    char cfg[IT_PATH_MAX], o[IT_PATH_MAX];
    char *argv[] = {(char *)LT_LIENTHONGD, (char *)"--check", (char *)"-c",
                    it_path(&env, rel, cfg), NULL};
    pid_t pid = it_spawn_prog(argv, it_path(&env, "check.out", o));
    assert_true(pid > 0);
    int rc = it_wait(pid, 30000);
    *out = it_read_file(&env, "check.out", NULL);
    *err = it_read_file(&env, "check.out.err", NULL);
    assert_non_null(*out);
    assert_non_null(*err);
    return rc;
}

static bool exists(const char *rel)
{
    char p[IT_PATH_MAX];
    struct stat st;
    return stat(it_path(&env, rel, p), &st) == 0;
}

/* The broker template with the first occurrence of from replaced by to. */
static char *edited(const char *from, const char *to)
{
    const char *at = strstr(BROKER_YAML, from);
    assert_non_null(at);
    size_t head = (size_t)(at - BROKER_YAML), n = strlen(BROKER_YAML) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, BROKER_YAML, head);
    strcpy(s + head, to);
    strcat(s, at + strlen(from));
    return s;
}

static void check_accepts_a_good_config_without_opening_the_store_or_binding(void **state)
{
    (void)state;
    assert_true(it_write_broker_yaml(&env, BROKER_YAML));
    char *out, *err;
    assert_int_equal(check("broker.yaml", &out, &err), 0);
    if (strstr(out, "broker.yaml: OK (1 queues, 1 ACL entries, 1 admins)") == NULL)
        fail_msg("lienthongd --check said: %s / %s", out, err);
    free(out);
    free(err);
    /* nothing of the broker's own was created */
    assert_false(exists("data"));
    assert_false(exists("service.token"));

    /* and it binds nothing: it passes while a broker on the same config holds the ports */
    assert_true(it_broker_start(&env, 30000));
    assert_int_equal(check("broker.yaml", &out, &err), 0);
    free(out);
    free(err);
    assert_true(it_broker_alive(&env));
    assert_int_equal(it_broker_stop(&env, 15000), 0);
    assert_true(exists("data"));
    assert_true(exists("service.token"));
}

static void check_refuses_each_bad_config_with_its_reason(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *reason;
    } bad[] = {
        {"  verify_threads: 1\n", "  verify_threads: 1\n  max_delivr: 5\n", "unknown key"},
        {"ca/ca.cert.pem", "ca/missing.pem", "trust.ca"},
        /* named by its path: broker.c lt_broker_check labels an unreadable CRL "trust.ca" */
        {"ca/crl.pem", "ca/missing-crl.pem", "ca/missing-crl.pem"},
        {"ca/ca.cert.pem", "certs/quan1.cert.pem", "trust.ca"},
        {"    listen: @ADMIN@\n", "    listen: 127.0.0.1:notaport\n", "broker.admin.listen"},
        {"  dedup_window_s: 86400\n", "  dedup_window_s: 60\n", "dedup_window_s"},
        {"  - agency: VN:GOV:000.00.00.H29.760:hotich\n", "  - agency: not-an-agency\n",
         "not-an-agency"},
        {"  map_size_mb: 64\n", "  map_size_mb: lots\n", "map_size_mb"},
        {"queues:\n", "queues: [\n", "broker.yaml"},
        /* the places the broker writes (as root, only missing directories can be shown) */
        {"  data_dir: data\n", "  data_dir: ca/ca.cert.pem\n", "broker.data_dir"},
        {"  data_dir: data\n", "  data_dir: no/such/dir/data\n", "cannot be created"},
        {"token_file: service.token", "token_file: no-dir/admin.token", "broker.admin.token_file"},
        {"token_file: service.token", "token_file: short.token", "token shorter than 16"},
    };
    assert_true(it_write_file(&env, "short.token", "short\n"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *yaml = edited(bad[i].from, bad[i].to);
        assert_true(it_write_broker_yaml(&env, yaml));
        free(yaml);
        char *out, *err;
        int rc = check("broker.yaml", &out, &err);
        if (rc != 2 || strstr(err, bad[i].reason) == NULL || strstr(err, "broker.yaml") == NULL)
            fail_msg("bad config %zu (%s): exit %d, said: %s%s", i, bad[i].to, rc, out, err);
        free(out);
        free(err);
    }
    /* a file that is not there */
    char *out, *err;
    assert_int_equal(check("no-such-broker.yaml", &out, &err), 2);
    assert_non_null(strstr(err, "no-such-broker.yaml"));
    free(out);
    free(err);
}

/* An AF_UNIX datagram socket bound to name ("@..." abstract, else a path). */
static int notify_socket(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    assert_true(len < sizeof sa.sun_path);
    memcpy(sa.sun_path, name, len);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        salen++;
    if (bind(fd, (struct sockaddr *)&sa, salen) != 0)
        fail_msg("bind %s: %s", name, strerror(errno));
    return fd;
}

/* Start the broker with NOTIFY_SOCKET=name and expect READY=1 on fd by the time it is
 * ready (it sends right after its ready line). */
static void expect_ready(int fd, const char *name)
{
    assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
    bool started = it_broker_start(&env, 30000);
    unsetenv("NOTIFY_SOCKET");
    assert_true(started);
    char buf[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 10000);
    if (n != 1)
        fail_msg("no datagram on %s within 10 s after `ready`", name);
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(got > 0);
    buf[got] = '\0';
    assert_string_equal(buf, "READY=1");
    assert_int_equal(it_broker_stop(&env, 15000), 0);
}

static void ready_is_sent_to_notify_socket_as_a_path_or_an_abstract_name(void **state)
{
    (void)state;
    assert_true(it_write_broker_yaml(&env, BROKER_YAML));
    char path[IT_PATH_MAX];
    it_path(&env, "notify.sock", path);
    if (strlen(path) >= sizeof((struct sockaddr_un *)0)->sun_path)
        skip(); /* a temporary directory too deep for a socket path */
    int fd = notify_socket(path);
    expect_ready(fd, path);
    close(fd);

    char abstract[64];
    snprintf(abstract, sizeof abstract, "@lienthong-it-service-%ld", (long)getpid());
    fd = notify_socket(abstract);
    expect_ready(fd, abstract);
    close(fd);
}

static void a_broken_notify_socket_is_a_warning_not_a_failure(void **state)
{
    (void)state;
    assert_true(it_write_broker_yaml(&env, BROKER_YAML));
    assert_int_equal(setenv("NOTIFY_SOCKET", "relative/notify.sock", 1), 0);
    bool started = it_broker_start(&env, 30000);
    unsetenv("NOTIFY_SOCKET");
    assert_true(started);
    assert_true(it_log_wait(&env, "NOTIFY_SOCKET=relative/notify.sock", 10000));
    assert_true(it_broker_alive(&env));
    assert_int_equal(it_broker_stop(&env, 15000), 0);
}

static void dev_init_state_dir_keeps_what_the_broker_writes_under_it(void **state)
{
    (void)state;
    char etc[IT_PATH_MAX], st[IT_PATH_MAX];
    it_path(&env, "etc-lienthong", etc);
    it_path(&env, "var-lib-lienthong", st);
    assert_int_equal(mkdir(st, 0750), 0);
    assert_int_equal(
        it_cli(&env, "devinit2.out", 120000, "dev-init", etc, "--state-dir", st, (char *)NULL), 0);
    char *yaml = it_read_file(&env, "etc-lienthong/broker.yaml", NULL);
    assert_non_null(yaml);
    char want[2 * IT_PATH_MAX];
    snprintf(want, sizeof want, "  data_dir: %s/data\n", st);
    assert_non_null(strstr(yaml, want));
    snprintf(want, sizeof want, "    token_file: %s/admin.token\n", st);
    assert_non_null(strstr(yaml, want));
    free(yaml);
    assert_false(exists("etc-lienthong/admin.token"));
    char *out, *err;
    if (check("etc-lienthong/broker.yaml", &out, &err) != 0)
        fail_msg("--check of dev-init --state-dir's config: %s%s", out, err);
    assert_non_null(strstr(out, "OK (7 queues"));
    free(out);
    free(err);
    /* a relative state dir is refused: the service's config must not depend on a cwd */
    assert_int_equal(it_cli(&env, "devinit3.out", 120000, "dev-init", etc, "--force",
                            "--state-dir", "var/lib", (char *)NULL),
                     2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_accepts_a_good_config_without_opening_the_store_or_binding),
        cmocka_unit_test(check_refuses_each_bad_config_with_its_reason),
        cmocka_unit_test(ready_is_sent_to_notify_socket_as_a_path_or_an_abstract_name),
        cmocka_unit_test(a_broken_notify_socket_is_a_warning_not_a_failure),
        cmocka_unit_test(dev_init_state_dir_keeps_what_the_broker_writes_under_it),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
