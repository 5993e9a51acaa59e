/*
 * harness.h - integration tests' world: a temporary directory with a development PKI
 * (`lienthong dev-init`), a broker.yaml written for the test (free ports on 127.0.0.1, small
 * limits), a real lienthongd spawned with posix_spawn, its stderr captured to a file, waited
 * for by its ready line (polling the file against a deadline, never a fixed sleep), stopped by
 * pid (SIGTERM, then SIGKILL after a deadline) or killed with SIGKILL for crash tests.
 *
 * The programs are the build's own: LT_LIENTHONGD and LT_LIENTHONG (compile definitions).
 * Everything is single-threaded; one it_env per test group.
 */
#ifndef LT_TESTS_INTEGRATION_HARNESS_H
#define LT_TESTS_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IT_PATH_MAX 1024

typedef struct it_env {
    char dir[IT_PATH_MAX / 2];  /* the temporary directory (dev-init output) */
    char log_path[IT_PATH_MAX]; /* lienthongd's stderr, every run appended */
    char endpoint[64];          /* tcp://127.0.0.1:<port> */
    unsigned port, admin_port;
    pid_t pid;     /* running lienthongd, 0 if none */
    long log_off;  /* log offset where the current run started */
    unsigned runs; /* lienthongd processes started */
    /* NULL, or a NULL-terminated argv prefix (e.g. valgrind and its options) put before
     * every lienthongd and lienthong started after it is set (it_env_init clears it, so
     * dev-init always runs bare). Borrowed: must outlive the environment's use. */
    const char *const *wrap;
    /* A node of a network test (it_env_init_node): its broker reads cfg_name in dir, shared
     * with the environment it was made from, which owns (and removes) the directory. */
    char cfg_name[64]; /* "broker.yaml" unless a node */
    bool node;
    /* A copy of the template it_write_broker_yaml wrote last (freed by it_env_fini): a first
     * start that finds its port taken (by a parallel test, between it_free_port and the
     * bind) writes it again on new ports and retries (it_broker_start). */
    char *tmpl;
    unsigned port_retries;
} it_env;

/* Create the directory, run `lienthong dev-init` in it, pick free ports and point every
 * agencies/<short>.yaml at the test's endpoint. false (with a message on stderr) on failure. */
bool it_env_init(it_env *e);

/* One more broker in base's directory (its PKI and agency configs), named name: config
 * dir/broker-<name>.yaml (it_write_broker_yaml), log dir/lienthongd-<name>.log, ports of
 * its own. Start it with it_broker_start; it_env_fini stops it and leaves the directory to
 * base. false (message on stderr) when no port is free. */
bool it_env_init_node(it_env *e, const it_env *base, const char *name);

/* Stop the broker if running (SIGKILL), and remove the directory unless the environment
 * variable LT_IT_KEEP is set (then its path is printed). */
void it_env_fini(it_env *e);

/* dir/rel into out (IT_PATH_MAX bytes); returns out. */
char *it_path(const it_env *e, const char *rel, char *out);

/* Write text to dir/rel (replacing it). */
bool it_write_file(const it_env *e, const char *rel, const char *text);

/* Read dir/rel (or an absolute path) whole; malloc'ed, NUL-terminated, NULL on failure. */
char *it_read_file(const it_env *e, const char *rel, size_t *len);

/* Write dir/broker.yaml (a node: its cfg_name) from tmpl with "@LISTEN@" replaced by the endpoint, "@ADMIN@" by
 * 127.0.0.1:<admin port>, "@DIR@" by the directory. */
bool it_write_broker_yaml(it_env *e, const char *tmpl);

/* Agency ids of the dev-init agencies by their short name ("vanphong", "hotich760", ...),
 * read from dir/agencies/<short>.yaml; NULL if absent. Borrowed from a static buffer
 * overwritten by the next call. */
const char *it_agency_id(const it_env *e, const char *short_name);

/* Spawn `lienthongd -c dir/broker.yaml` (stderr appended to the log) and wait for its ready
 * line, at most timeout_ms. false if it exited or did not get ready (the log's tail is
 * printed). */
bool it_broker_start(it_env *e, int timeout_ms);

/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status as the shell shows
 * it (128 + signal when killed), -1 if no broker ran. */
int it_broker_stop(it_env *e, int timeout_ms);

/* SIGKILL at once and reap it. */
void it_broker_kill9(it_env *e);

/* Send SIGHUP. */
bool it_broker_hup(it_env *e);

/* Send sig (SIGSTOP, SIGCONT) to the running broker. */
bool it_broker_signal(it_env *e, int sig);

/* True while the broker process lives (reaps it if it exited). */
bool it_broker_alive(it_env *e);

/* Wait until the current run's log contains needle, at most timeout_ms. */
bool it_log_wait(it_env *e, const char *needle, int timeout_ms);

/* Wait until the current run's log contains needle at least count times, at most
 * timeout_ms (a second SIGHUP's line, say). */
bool it_log_wait_count(it_env *e, const char *needle, size_t count, int timeout_ms);

/* Run `lienthong ARGS...` (NULL-terminated) with stdout to dir/out_rel and stderr to
 * dir/out_rel.err, at most timeout_ms (then SIGKILL). Returns its exit status (128 + signal
 * when killed, -1 when it could not be spawned). */
int it_cli(it_env *e, const char *out_rel, int timeout_ms, ...) __attribute__((sentinel));

/* Start `lienthong ARGS...` in the background (stdout/stderr as it_cli); returns its pid or
 * -1. Collect it with it_wait. */
pid_t it_cli_spawn(it_env *e, const char *out_rel, ...) __attribute__((sentinel));

/* posix_spawn argv (argv[0] an absolute path) with stdin from /dev/null, stdout to out_path
 * and stderr to out_path + ".err" (both truncated). Its pid, or -1 (message on stderr).
 * Collect it with it_wait. */
pid_t it_spawn_prog(char *const argv[], const char *out_path);

/* posix_spawn argv (argv[0] an absolute path) in a process group of its own (its pgid is its
 * pid: kill(-pid, ...) reaches what it starts), stdin from /dev/null, stdout and stderr both
 * to log_path (truncated). Its pid, or -1 (message on stderr). Collect it with it_wait. */
pid_t it_spawn_group(char *const argv[], const char *log_path);

/* A test group's broker: it_env_init, write tmpl as broker.yaml, start it (30 s). false
 * (and a message) on failure. it_group_down stops it by pid and removes the directory. */
bool it_group_up(it_env *e, const char *tmpl);
void it_group_down(it_env *e);

/* Wait for pid at most timeout_ms (then SIGKILL); exit status as it_cli. */
int it_wait(pid_t pid, int timeout_ms);

/* A port the kernel considers free on 127.0.0.1 right now (0 on failure): a second
 * endpoint of a broker, a NATS server's port. */
unsigned it_free_port(void);

/* Monotonic milliseconds. */
int64_t it_now_ms(void);

#endif
