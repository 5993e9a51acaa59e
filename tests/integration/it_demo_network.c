/*
 * it_demo_network.c - the network demo (`./scripts/demo` ends with it) must not break
 * silently. Runs scripts/demo-network against this build tree into a temporary directory on
 * nine free consecutive ports (LT_DEMO_NET_PORT), with 600 records (LT_DEMO_NET_RECORDS), in
 * its own process group; checks that every step passes (three brokers with CURVE between
 * them, the city killed -9 mid-flow, every record at national once and verified) and that
 * no process is left behind.
 *
 * `it_demo_network --national nats` (ctest it_demo_network_nats) runs the demo's NATS ending
 * instead: ward and city lienthongd, a 3-node nats-server cluster, the city's bridge into an
 * R3 stream, the city killed -9 mid-flow, the stream read back and verified; fifteen ports.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 600000 /* the ASan build is several times slower */
#define NPORTS 15 /* 9 used by the lienthong ending, 15 by the NATS one */

static it_env env;
static bool nats; /* --national nats */

static int setup(void **state)
{
    (void)state;
    return it_env_init(&env) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_env_fini(&env);
    return 0;
}

static bool port_free(unsigned port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return false;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(s, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(s);
    return ok;
}

/* The first of NPORTS consecutive free ports, 0 if none was found in 50 tries. */
static unsigned free_run(void)
{
    for (int t = 0; t < 50; t++) {
        unsigned base = it_free_port();
        if (base == 0 || base > 65535 - NPORTS)
            continue;
        bool ok = true;
        for (unsigned i = 0; i < NPORTS && ok; i++)
            ok = port_free(base + i);
        if (ok)
            return base;
    }
    return 0;
}

static void the_network_demo_passes_every_step(void **state)
{
    (void)state;
    unsigned base = free_run();
    assert_true(base != 0);
    char script[1024], demo[IT_PATH_MAX], log[IT_PATH_MAX], p[16];
    snprintf(script, sizeof script, "%s/scripts/demo-network", LT_TEST_SRCDIR);
    it_path(&env, "demo-network", demo);
    it_path(&env, "demo-network.log", log);
    snprintf(p, sizeof p, "%u", base);
    assert_int_equal(setenv("LT_DEMO_NET_PORT", p, 1), 0);
    assert_int_equal(setenv("LT_DEMO_NET_RECORDS", "600", 1), 0);
    char *argv[] = {script, (char *)LT_TEST_BINDIR, demo, NULL, NULL, NULL};
    if (nats) {
        char *with[] = {script, "--national", "nats", (char *)LT_TEST_BINDIR, demo, NULL};
        memcpy(argv, with, sizeof with);
    }
    pid_t pid = it_spawn_group(argv, log);
    unsetenv("LT_DEMO_NET_PORT");
    unsetenv("LT_DEMO_NET_RECORDS");
    assert_true(pid > 0);
    int rc = it_wait(pid, RUN_TIMEOUT_MS);
    if (rc != 0)
        kill(-pid, SIGKILL); /* the brokers it may have left */
    char *out = it_read_file(&env, "demo-network.log", NULL);
    assert_non_null(out);
    static const char *const want[] = {
        "lienthong pub: 600 sent, 600 acked",
        "received 600 records, 600 distinct message ids, 600 verified",
        "crash:      the city broker killed with SIGKILL mid-flow and restarted",
        "demo-network: every step passed in ",
    };
    static const char *const want_nats[] = {
        "lienthong pub: 600 sent, 600 acked",
        "nats: 3 nodes, JetStream up",
        "holds 600 records, 600 distinct Nats-Msg-Ids, 600 verified against the district's",
        "crash:      the city broker killed with SIGKILL mid-flow and restarted",
        "arrived:    600 in the stream, 600 distinct",
        "demo-network: every step passed in ",
    };
    const char *const *w = nats ? want_nats : want;
    size_t nw = nats ? sizeof want_nats / sizeof want_nats[0] : sizeof want / sizeof want[0];
    bool ok = rc == 0;
    for (size_t i = 0; i < nw; i++)
        if (strstr(out, w[i]) == NULL) {
            fprintf(stderr, "it_demo_network: missing from the output: %s\n", w[i]);
            ok = false;
        }
    if (!ok) {
        size_t n = strlen(out);
        fprintf(stderr, "it_demo_network: exit %d; output (end):\n%s\n", rc,
                n > 4000 ? out + n - 4000 : out);
    }
    free(out);
    assert_true(ok);
    bool gone = false; /* every broker it started was stopped (a moment to disappear) */
    for (int i = 0; i < 200 && !gone; i++) {
        gone = kill(-pid, 0) < 0 && errno == ESRCH;
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (!gone)
            nanosleep(&ts, NULL);
    }
    if (!gone)
        kill(-pid, SIGKILL);
    assert_true(gone);
}

int main(int argc, char **argv)
{
    nats = argc == 3 && strcmp(argv[1], "--national") == 0 && strcmp(argv[2], "nats") == 0;
    if (nats && access("/usr/sbin/nats-server", X_OK) != 0) {
        printf("it_demo_network: SKIP: nats-server not installed (Debian package nats-server)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_network_demo_passes_every_step, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
