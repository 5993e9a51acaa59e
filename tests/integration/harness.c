/*
 * harness.c - temporary directories, dev-init, broker processes and CLI runs for the
 * integration tests. Every wait is bounded by a deadline and polls a condition.
 */
#include "harness.h"
#include "fileio.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef LT_LIENTHONGD
#error "LT_LIENTHONGD (path of lienthongd) must be defined by the build"
#endif
#ifndef LT_LIENTHONG
#error "LT_LIENTHONG (path of lienthong) must be defined by the build"
#endif

extern char **environ;

#define IT_ARGS_MAX 64
#define IT_POLL_NS 5000000L /* 5 ms between checks of a condition */

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
    struct timespec ts = {0, IT_POLL_NS};
    nanosleep(&ts, NULL);
}

char *it_path(const it_env *e, const char *rel, char *out)
{
    int n;
    if (rel[0] == '/')
        n = snprintf(out, IT_PATH_MAX, "%.*s", IT_PATH_MAX - 1, rel);
    else
        n = snprintf(out, IT_PATH_MAX, "%s/%.*s", e->dir, IT_PATH_MAX / 2 - 2, rel);
    (void)n; /* paths here are short; a truncated one fails to open loudly */
    return out;
}

bool it_write_file(const it_env *e, const char *rel, const char *text)
{
    char p[IT_PATH_MAX], tmp[IT_PATH_MAX + 8];
    it_path(e, rel, p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "harness: cannot write %s: %s\n", tmp, strerror(errno));
        return false;
    }
    bool ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, p) == 0;
}

char *it_read_file(const it_env *e, const char *rel, size_t *len)
{
    char p[IT_PATH_MAX];
    it_path(e, rel, p);
    char *buf = NULL;
    size_t n = 0;
    if (lt_file_read(p, SIZE_MAX, &buf, &n, NULL) != LT_OK)
        return NULL;
    if (len != NULL)
        *len = n;
    return buf;
}

/* Whether port is free to listen on at 127.0.0.1 right now (0: let the kernel choose; the
 * port it chose). */
static unsigned try_port(unsigned port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    unsigned got = 0;
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        got = ntohs(a.sin_port);
    close(s);
    return got;
}

/* A port free on 127.0.0.1 right now, below the kernel's ephemeral range when it can: a port
 * from that range (what bind to port 0 gives) may be taken by any test's outgoing connection
 * before our broker binds it, and a network test's nodes bind theirs minutes after choosing
 * them. Random candidates from 10000 up to the range, so parallel tests rarely pick alike. */
unsigned it_free_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)it_now_ms();
    unsigned lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%u", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    for (int i = 0; lo > 11000 && i < 200; i++) {
        unsigned port = 10000 + (unsigned)rand_r(&seed) % (lo - 10000);
        if (try_port(port) == port)
            return port;
    }
    return try_port(0);
}

/* Collect a NULL-terminated va_list of strings after argv0 into argv. */
static int collect_args(const char *argv0, va_list ap, char **argv)
{
    int n = 0;
    argv[n++] = (char *)argv0;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < IT_ARGS_MAX - 1)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    return n;
}

/* posix_spawn prog argv with stdout to out_path (NULL: /dev/null), stderr to err_path
 * (appended when append). -1 on failure. */
static pid_t spawn(char *const argv[], const char *out_path, const char *err_path, bool append)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path != NULL ? out_path : "/dev/null", flags,
                                     0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path != NULL ? err_path : "/dev/null", flags,
                                     0644);
    pid_t pid = -1;
    int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fprintf(stderr, "harness: cannot spawn %s: %s\n", argv[0], strerror(r));
        return -1;
    }
    return pid;
}

static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int it_wait(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    int64_t deadline = it_now_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return status_code(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (it_now_ms() >= deadline)
            break;
        nap();
    }
    fprintf(stderr, "harness: pid %d still running after %d ms: killed\n", (int)pid,
            timeout_ms);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return status_code(st);
}

/* argv with e->wrap put before it, into out (IT_ARGS_MAX entries, truncated to fit);
 * returns out, or argv itself when there is no wrap. */
static char **wrapped(const it_env *e, char **argv, char **out)
{
    if (e->wrap == NULL)
        return argv;
    int n = 0;
    for (const char *const *w = e->wrap; *w != NULL && n < IT_ARGS_MAX - 1; w++)
        out[n++] = (char *)*w;
    for (char **a = argv; *a != NULL && n < IT_ARGS_MAX - 1; a++)
        out[n++] = *a;
    out[n] = NULL;
    return out;
}

static pid_t cli_spawn_v(it_env *e, const char *out_rel, va_list ap)
{
    char *args[IT_ARGS_MAX], *wargs[IT_ARGS_MAX];
    collect_args(LT_LIENTHONG, ap, args);
    char **argv = wrapped(e, args, wargs);
    char out[IT_PATH_MAX], err[IT_PATH_MAX + 8];
    it_path(e, out_rel, out);
    snprintf(err, sizeof err, "%s.err", out);
    return spawn(argv, out, err, false);
}

int it_cli(it_env *e, const char *out_rel, int timeout_ms, ...)
{
    va_list ap;
    va_start(ap, timeout_ms);
    pid_t pid = cli_spawn_v(e, out_rel, ap);
    va_end(ap);
    return it_wait(pid, timeout_ms);
}

pid_t it_cli_spawn(it_env *e, const char *out_rel, ...)
{
    va_list ap;
    va_start(ap, out_rel);
    pid_t pid = cli_spawn_v(e, out_rel, ap);
    va_end(ap);
    return pid;
}

pid_t it_spawn_prog(char *const argv[], const char *out_path)
{
    char err_path[IT_PATH_MAX + 8];
    snprintf(err_path, sizeof err_path, "%s.err", out_path);
    return spawn(argv, out_path, err_path, false);
}

pid_t it_spawn_group(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid = -1;
    int r = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fprintf(stderr, "harness: cannot spawn %s: %s\n", argv[0], strerror(r));
        return -1;
    }
    return pid;
}

/* Replace the value of every "endpoint:" line of path with ep. */
static bool point_at(const char *path, const char *ep)
{
    it_env tmp;
    memset(&tmp, 0, sizeof tmp);
    char *text = it_read_file(&tmp, path, NULL);
    if (text == NULL)
        return false;
    size_t cap = strlen(text) + 256;
    char *out = malloc(cap);
    if (out == NULL) {
        free(text);
        return false;
    }
    out[0] = '\0';
    size_t n = 0;
    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line + 1) : strlen(line);
        char *k = strstr(line, "endpoint:");
        if (k != NULL && k < line + len && n + 128 < cap) {
            n += (size_t)snprintf(out + n, cap - n, "%.*sendpoint: %s\n", (int)(k - line),
                                  line, ep);
        } else if (n + len < cap) {
            memcpy(out + n, line, len);
            n += len;
            out[n] = '\0';
        }
        line += len;
    }
    bool ok = it_write_file(&tmp, path, out);
    free(out);
    free(text);
    return ok;
}

/* Two distinct free ports for e (listen and admin) and its endpoint. */
static bool pick_ports(it_env *e)
{
    e->port = it_free_port();
    e->admin_port = it_free_port();
    for (int i = 0; i < 10 && e->admin_port == e->port; i++)
        e->admin_port = it_free_port();
    if (e->port == 0 || e->admin_port == 0 || e->port == e->admin_port) {
        fprintf(stderr, "harness: no free port on 127.0.0.1\n");
        return false;
    }
    snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%u", e->port);
    return true;
}

bool it_env_init_node(it_env *e, const it_env *base, const char *name)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s", base->dir);
    snprintf(e->cfg_name, sizeof e->cfg_name, "broker-%s.yaml", name);
    char rel[128];
    snprintf(rel, sizeof rel, "lienthongd-%s.log", name);
    it_path(e, rel, e->log_path);
    e->node = true;
    e->wrap = base->wrap;
    return pick_ports(e);
}

/* Point every agencies/<short>.yaml at the test's endpoint. */
static bool point_agencies(const it_env *e)
{
    char agencies[IT_PATH_MAX];
    it_path(e, "agencies", agencies);
    DIR *d = opendir(agencies);
    if (d == NULL) {
        fprintf(stderr, "harness: dev-init wrote no %s\n", agencies);
        return false;
    }
    bool ok = true;
    struct dirent *de;
    while (ok && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0)
            continue;
        char p[IT_PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", agencies, de->d_name);
        ok = point_at(p, e->endpoint);
        if (!ok)
            fprintf(stderr, "harness: cannot rewrite %s\n", p);
    }
    closedir(d);
    return ok;
}

bool it_env_init(it_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->cfg_name, sizeof e->cfg_name, "broker.yaml");
    const char *tmpdir = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/lt-it-XXXXXX",
             tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    if (mkdtemp(e->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", e->dir, strerror(errno));
        return false;
    }
    it_path(e, "lienthongd.log", e->log_path);
    if (!pick_ports(e))
        return false;
    int rc = it_cli(e, "dev-init.out", 120000, "dev-init", e->dir, "--test-certs", (char *)NULL);
    if (rc != 0) {
        char *err = it_read_file(e, "dev-init.out.err", NULL);
        fprintf(stderr, "harness: lienthong dev-init %s failed (%d): %s\n", e->dir, rc,
                err != NULL ? err : "");
        free(err);
        return false;
    }
    return point_agencies(e);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void it_env_fini(it_env *e)
{
    if (e->pid > 0)
        it_broker_kill9(e);
    free(e->tmpl);
    e->tmpl = NULL;
    if (e->dir[0] == '\0' || e->node)
        return;
    if (getenv("LT_IT_KEEP") != NULL) {
        fprintf(stderr, "harness: kept %s\n", e->dir);
        return;
    }
    nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    e->dir[0] = '\0';
}

bool it_write_broker_yaml(it_env *e, const char *tmpl)
{
    char admin[64];
    snprintf(admin, sizeof admin, "127.0.0.1:%u", e->admin_port);
    const char *keys[] = {"@LISTEN@", "@ADMIN@", "@DIR@"};
    const char *vals[] = {e->endpoint, admin, e->dir};
    size_t cap = strlen(tmpl) * 2 + 4096, n = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return false;
    for (const char *s = tmpl; *s != '\0';) {
        int hit = -1;
        for (int k = 0; k < 3; k++)
            if (strncmp(s, keys[k], strlen(keys[k])) == 0)
                hit = k;
        if (hit >= 0) {
            size_t vl = strlen(vals[hit]);
            if (n + vl + 1 >= cap)
                break;
            memcpy(out + n, vals[hit], vl);
            n += vl;
            s += strlen(keys[hit]);
        } else {
            if (n + 2 >= cap)
                break;
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    bool ok = it_write_file(e, e->cfg_name[0] ? e->cfg_name : "broker.yaml", out);
    free(out);
    if (ok && tmpl != e->tmpl) {
        char *copy = strdup(tmpl);
        free(e->tmpl);
        e->tmpl = copy; /* NULL when out of memory: then no retry on new ports */
    }
    return ok;
}

const char *it_agency_id(const it_env *e, const char *short_name)
{
    static char id[256];
    char rel[IT_PATH_MAX];
    snprintf(rel, sizeof rel, "agencies/%s.yaml", short_name);
    char *text = it_read_file(e, rel, NULL);
    if (text == NULL)
        return NULL;
    const char *found = NULL;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (p != line && strncmp(p, "id:", 3) == 0) {
            p += 3;
            while (*p == ' ' || *p == '"' || *p == '\'')
                p++;
            size_t l = strcspn(p, " \"'#\r");
            snprintf(id, sizeof id, "%.*s", (int)l, p);
            found = id;
            break;
        }
    }
    free(text);
    return found;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The current run's log text (malloc'ed) or NULL. */
static char *run_log(const it_env *e)
{
    char *all = it_read_file(e, e->log_path, NULL);
    if (all == NULL)
        return NULL;
    size_t len = strlen(all);
    if ((size_t)e->log_off > len)
        return all;
    memmove(all, all + e->log_off, len - (size_t)e->log_off + 1);
    return all;
}

static void print_log_tail(const it_env *e)
{
    char *log = run_log(e);
    if (log == NULL)
        return;
    size_t len = strlen(log);
    fprintf(stderr, "---- lienthongd log (tail) ----\n%s\n-------------------------------\n",
            len > 3000 ? log + len - 3000 : log);
    free(log);
}

bool it_broker_alive(it_env *e)
{
    if (e->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(e->pid, &st, WNOHANG);
    if (r == e->pid) {
        fprintf(stderr, "harness: lienthongd %d exited: %d\n", (int)e->pid, status_code(st));
        e->pid = 0;
        return false;
    }
    return true;
}

bool it_log_wait(it_env *e, const char *needle, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *log = run_log(e);
        bool hit = log != NULL && strstr(log, needle) != NULL;
        free(log);
        if (hit)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        nap();
    }
}

bool it_log_wait_count(it_env *e, const char *needle, size_t count, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *log = run_log(e);
        size_t n = 0;
        for (const char *at = log; at && (at = strstr(at, needle)) != NULL; at++)
            n++;
        free(log);
        if (n >= count)
            return true;
        if (it_now_ms() >= deadline)
            return false;
        nap();
    }
}

/* The broker that just exited could not bind a port another test took after it_free_port
 * chose it. On an environment's first start (nothing depends on its ports yet; not a node,
 * whose peers' configs name them), choose new ports, write the agency configs and the
 * broker's config again and start once more, twice at most. */
static bool port_taken_retry(it_env *e, int timeout_ms)
{
    static const char taken[] = "Address already in use";
    char *log = run_log(e);
    /* every start so far failed this way */
    bool retry = log != NULL && strstr(log, taken) != NULL && e->runs == e->port_retries + 1 &&
                 e->port_retries < 2 && !e->node && e->tmpl != NULL;
    free(log);
    if (!retry)
        return false;
    e->port_retries++;
    fprintf(stderr, "harness: a port of %s was taken before lienthongd bound it: new ports\n",
            e->endpoint);
    if (!pick_ports(e) || !point_agencies(e) || !it_write_broker_yaml(e, e->tmpl))
        return false;
    return it_broker_start(e, timeout_ms);
}

bool it_broker_start(it_env *e, int timeout_ms)
{
    if (e->pid > 0)
        it_broker_stop(e, 10000);
    char cfg[IT_PATH_MAX];
    it_path(e, e->cfg_name[0] ? e->cfg_name : "broker.yaml", cfg);
    char *args[] = {(char *)LT_LIENTHONGD, (char *)"-c", cfg, NULL};
    char *wargs[IT_ARGS_MAX];
    char **argv = wrapped(e, args, wargs);
    e->log_off = file_size(e->log_path);
    e->pid = spawn(argv, e->log_path, e->log_path, true);
    if (e->pid < 0) {
        e->pid = 0;
        return false;
    }
    e->runs++;
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *log = run_log(e);
        bool ready = log != NULL && (strstr(log, " ready") != NULL || strstr(log, "READY") != NULL);
        free(log);
        if (ready)
            return true;
        if (!it_broker_alive(e)) {
            print_log_tail(e);
            return port_taken_retry(e, timeout_ms);
        }
        if (it_now_ms() >= deadline) {
            fprintf(stderr, "harness: lienthongd not ready within %d ms\n", timeout_ms);
            print_log_tail(e);
            it_broker_kill9(e);
            return false;
        }
        nap();
    }
}

int it_broker_stop(it_env *e, int timeout_ms)
{
    if (e->pid <= 0)
        return -1;
    pid_t pid = e->pid;
    kill(pid, SIGTERM);
    int rc = it_wait(pid, timeout_ms);
    e->pid = 0;
    return rc;
}

void it_broker_kill9(it_env *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGKILL);
    int st;
    while (waitpid(e->pid, &st, 0) < 0 && errno == EINTR)
        ;
    e->pid = 0;
}

bool it_broker_hup(it_env *e)
{
    return it_broker_signal(e, SIGHUP);
}

bool it_broker_signal(it_env *e, int sig)
{
    return e->pid > 0 && kill(e->pid, sig) == 0;
}

bool it_group_up(it_env *e, const char *tmpl)
{
    return it_env_init(e) && it_write_broker_yaml(e, tmpl) && it_broker_start(e, 30000);
}

void it_group_down(it_env *e)
{
    if (e->pid > 0)
        it_broker_stop(e, 15000);
    it_env_fini(e);
}
