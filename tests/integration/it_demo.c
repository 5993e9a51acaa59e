/*
 * it_demo.c - the README's first command must not break silently. Runs scripts/demo-run (the
 * flow `./scripts/demo` ends with) against this build tree into a temporary directory, on
 * free ports (LT_DEMO_PORT, LT_DEMO_ADMIN_PORT), in its own process group; checks that it
 * passes every step (exit 0, its closing line, the rows it puts in SQLite) and leaves no
 * process behind; and that a step that fails (the broker's port taken) makes it exit
 * non-zero with a message naming the step.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEMO_TIMEOUT_MS 600000 /* the ASan build is several times slower than the plain one */

static it_env env;

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

/* Wait for pid at most timeout_ms; on timeout SIGKILL its whole process group (the script
 * and the lienthongd it started). Exit status as the shell shows it, -1 on error. */
static int wait_group(pid_t pid, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (it_now_ms() >= deadline) {
            fprintf(stderr, "it_demo: demo-run still running after %d ms: killed\n",
                    timeout_ms);
            kill(-pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* True when no process is left in process group pgid (a broker the script forgot). */
static bool group_is_empty(pid_t pgid)
{
    for (int i = 0; i < 200; i++) { /* a process in exit needs a moment to disappear */
        if (kill(-pgid, 0) < 0 && errno == ESRCH)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(-pgid, SIGKILL);
    return false;
}

/* Run `scripts/demo-run BINDIR dir/demo_rel` with the given broker and admin ports, stdout
 * and stderr both to dir/log_rel. Returns the exit status; *pgid gets its process group. */
static int run_demo(const char *demo_rel, const char *log_rel, unsigned port,
                    unsigned admin_port, pid_t *pgid)
{
    char script[1024], demo[IT_PATH_MAX], log[IT_PATH_MAX], p[16], a[16];
    snprintf(script, sizeof script, "%s/scripts/demo-run", LT_TEST_SRCDIR);
    it_path(&env, demo_rel, demo);
    it_path(&env, log_rel, log);
    snprintf(p, sizeof p, "%u", port);
    snprintf(a, sizeof a, "%u", admin_port);
    assert_int_equal(setenv("LT_DEMO_PORT", p, 1), 0);
    assert_int_equal(setenv("LT_DEMO_ADMIN_PORT", a, 1), 0);

    char *argv[] = {script, (char *)LT_TEST_BINDIR, demo, NULL};
    pid_t pid = it_spawn_group(argv, log);
    unsetenv("LT_DEMO_PORT");
    unsetenv("LT_DEMO_ADMIN_PORT");
    if (pid < 0)
        return -1;
    *pgid = pid;
    return wait_group(pid, DEMO_TIMEOUT_MS);
}

/* Print the end of the demo's output (for a failing assertion's context). */
static void show_tail(const char *out)
{
    size_t n = strlen(out);
    fprintf(stderr, "---- demo-run output (end) ----\n%s\n----\n", n > 4000 ? out + n - 4000 : out);
}

static void the_demo_passes_every_step_on_free_ports(void **state)
{
    (void)state;
    pid_t pgid = 0;
    int64_t t0 = it_now_ms();
    int rc = run_demo("demo", "demo.log", env.port, env.admin_port, &pgid);
    int64_t ms = it_now_ms() - t0;
    char *out = it_read_file(&env, "demo.log", NULL);
    assert_non_null(out);
    static const char *const want[] = {
        "demo-run: 6 records verified, the altered one and the revoked signer's one rejected",
        "births_760_cp1258.csv: cp1258, 60 rows: 60 published (0 duplicates), 0 rejected",
        "residence_26737_tcvn3.txt: tcvn3, 40 rows: 40 published (0 duplicates), 0 rejected",
        "businesses_vni.csv: vni, 50 rows: 50 published (0 duplicates), 0 rejected",
        "births_760_cp1258.csv: cp1258, 60 rows: 60 published (60 duplicates), 0 rejected",
        "31/02/2024,VALIDATION_FAILED",
        "100 rows written (100 new, 0 already present), 0 refused",
        "Lý Quốc Tuấn", /* the first birth row, decoded from Windows-1258, shown by sqlite3 */
        "lienthong db-verify: 2 tables, 100 rows: 100 verified, 0 failed",
        "demo-run: every step passed in ",
    };
    bool ok = rc == 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(out, want[i]) == NULL) {
            fprintf(stderr, "it_demo: missing from the output: %s\n", want[i]);
            ok = false;
        }
    if (!ok) {
        fprintf(stderr, "it_demo: demo-run exited %d after %lld ms\n", rc, (long long)ms);
        show_tail(out);
    }
    free(out);
    assert_true(ok);
    assert_true(group_is_empty(pgid)); /* the broker was stopped */

    /* the rows are in the database the demo names, where an operator would look */
    char db[IT_PATH_MAX];
    struct stat st;
    assert_int_equal(stat(it_path(&env, "demo/national.db", db), &st), 0);
    assert_true(st.st_size > 0);
}

static void a_failing_step_stops_the_demo_with_a_message_and_an_error(void **state)
{
    (void)state;
    /* Someone else already listens on the broker's port. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)env.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s, 1), 0);

    pid_t pgid = 0;
    int rc = run_demo("demo-busy", "demo-busy.log", env.port, env.admin_port, &pgid);
    close(s);
    char *out = it_read_file(&env, "demo-busy.log", NULL);
    assert_non_null(out);
    bool ok = rc == 1 && strstr(out, "demo-run: FAILED in step 5 (the broker)") != NULL &&
              strstr(out, "lienthongd did not get ready") != NULL &&
              strstr(out, "every step passed") == NULL;
    if (!ok) {
        fprintf(stderr, "it_demo: demo-run exited %d\n", rc);
        show_tail(out);
    }
    free(out);
    assert_true(ok);
    assert_true(group_is_empty(pgid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_demo_passes_every_step_on_free_ports),
        cmocka_unit_test(a_failing_step_stops_the_demo_with_a_message_and_an_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
