/*
 * benchkit.h - what the broker load programs (bench_nats, bench_lt_load) share, so that both
 * sides of a comparison run exactly the same workload and are measured the same way.
 *
 * The workload: P publisher threads publish N messages in total (publisher p owns message
 * indexes p, p + P, p + 2P, ...), each pipelined with a bounded window of unacknowledged
 * publishes; C consumers each receive every message (fan-out C) and acknowledge each one.
 * Every payload starts with a small header (magic, message index) and is filled to its size
 * with a fixed pattern; the index is how an ack or a delivery finds its message.
 *
 * Timing (CLOCK_MONOTONIC, ns). Publishers and consumers live in the same process, so one
 * clock serves both ends. Each publish stores its send time under its index just before the
 * message is handed to the client library (lt_bench_mark_sent); the publish->ack latency is
 * taken when the broker's ack for that index arrives (lt_bench_mark_acked), the end-to-end
 * latency when consumer 0 receives the index (lt_bench_mark_consumed). Keeping the send
 * time in memory rather than in the payload lets a side sign its payloads before the timed
 * part and still be timed from the moment each message is sent.
 *
 *   publish throughput      N / (last ack - start)
 *   end-to-end throughput   N / (last consumer has received, acked and flushed - start)
 *
 * Threads: an lt_bench_run is shared by every publisher and consumer thread; the mark
 * functions are safe from any thread (each index is sent once, so its slots have one
 * writer; counters are atomic). Parsing, lt_bench_run_new and the report are main-thread.
 */
#ifndef LT_BENCH_KIT_BENCHKIT_H
#define LT_BENCH_KIT_BENCHKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LT_BENCH_PAYLOAD_MIN 32 /* room for the payload header */
#define LT_BENCH_CONSUMERS_MAX 64
#define LT_BENCH_PUBLISHERS_MAX 64

/* The common workload parameters, their command-line names and defaults. */
typedef struct lt_bench_params {
    unsigned publishers;     /* --publishers P (2) */
    uint64_t messages;       /* --messages N (200000) */
    size_t size;             /* --size BYTES of payload (1024) */
    unsigned window;         /* --window W unacked publishes per publisher (1024) */
    unsigned consumers;      /* --consumers C, each gets every message (1) */
    double rate;             /* --rate R msgs/s over all publishers, 0 = as fast as possible */
    bool consume;            /* cleared by --no-consume (backlog runs) */
    uint64_t progress_every; /* --progress-every K: sample rate and server RSS every K acks */
    int server_pid;          /* --server-pid PID: whose RSS the progress samples read */
    double idle_timeout_s;   /* --idle-timeout S: give up after S s without progress (30) */
} lt_bench_params;

/* An option a program adds to the common ones: "--name VALUE" (or "--name=VALUE"); for a
 * flag (takes_value false) value is NULL. Returns 0 if accepted, -1 to refuse (the parser
 * prints usage). */
typedef int (*lt_bench_opt_cb)(void *user, const char *name, const char *value);

/* Parse argv into *p (defaults first), passing options it does not know to extra (may be
 * NULL). extra_flags is a NULL-terminated list of option names (without "--") that take no
 * value. Returns 0, or -1 after printing the reason to stderr. "--help" returns 1. */
int lt_bench_params_parse(int argc, char **argv, lt_bench_params *p, const char *const *extra_flags,
                          lt_bench_opt_cb extra, void *user);

/* The common options, for a usage message. */
void lt_bench_params_usage(FILE *out);

/* Monotonic time in ns. */
int64_t lt_bench_now_ns(void);

/* Write the payload for message index idx into buf[0..size) (size >= LT_BENCH_PAYLOAD_MIN). */
void lt_bench_payload_fill(uint8_t *buf, size_t size, uint64_t idx);

/* Read back the index of a payload made by lt_bench_payload_fill. False when buf is not one. */
bool lt_bench_payload_index(const uint8_t *buf, size_t len, uint64_t *idx);

typedef struct lt_bench_run lt_bench_run;

/* Allocate the per-message slots for p (copied). NULL when out of memory. */
lt_bench_run *lt_bench_run_new(const lt_bench_params *p);
void lt_bench_run_destroy(lt_bench_run **rp);

/* The parameters the run was made with. */
const lt_bench_params *lt_bench_run_params(const lt_bench_run *r);

/* Record the start of the timed part (after every thread is connected and ready). */
void lt_bench_start(lt_bench_run *r);
int64_t lt_bench_start_ns(const lt_bench_run *r);

/* With --rate: sleep until publisher pub may send its k-th message (k from 0). */
void lt_bench_pace(const lt_bench_run *r, unsigned pub, uint64_t k);

/* With --rate: when (lt_bench_now_ns) publisher pub may send its k-th message; 0 without
 * --rate. For a client that must keep pumping its socket instead of sleeping. */
int64_t lt_bench_pace_at(const lt_bench_run *r, unsigned pub, uint64_t k);

/* Message idx is being sent now. */
void lt_bench_mark_sent(lt_bench_run *r, uint64_t idx);

/* The broker answered the publish of idx: ok (stored) or not. Records the publish->ack
 * latency; the completion that brings the count to N records the end of publishing. */
void lt_bench_mark_acked(lt_bench_run *r, uint64_t idx, bool ok);

/* Consumer c received idx. Returns true when it is new for that consumer (false: a
 * redelivery, or idx out of range). Consumer 0 records end-to-end latency. */
bool lt_bench_mark_consumed(lt_bench_run *r, unsigned c, uint64_t idx);

/* Consumer c has received every message once, acked and flushed them (or gave up). */
void lt_bench_consumer_done(lt_bench_run *r, unsigned c);

/* Messages consumer c has received (distinct). */
uint64_t lt_bench_consumed(const lt_bench_run *r, unsigned c);
/* Publishes completed so far (acked or failed). */
uint64_t lt_bench_completed(const lt_bench_run *r);

/* Count a failure nobody else counts (a failed send, a consumer error). */
void lt_bench_count_error(lt_bench_run *r);

/* Peak and current resident set of process pid in KiB (VmHWM, VmRSS of /proc/PID/status);
 * -1 when unreadable. */
long lt_bench_proc_kib(int pid, const char *field);

/* Print ,"name":{"count","p50","p90","p99","p999","max","mean"} to out: nearest-rank
 * percentiles over the values >= 0 of v[0..n) (ns), in microseconds; ,"name":null when there
 * are none. Reorders v (the values kept are sorted to its front). */
void lt_bench_print_latency(FILE *out, const char *name, int64_t *v, size_t n);

/* Print the run's result as one JSON object (once: it sorts the latencies in place) (one line) to
 * out: {"system": system, "mode": mode, "params": {...}, "publish": {...}, "end_to_end": {...},
 * "pub_ack_latency_us": {...}, "e2e_latency_us": {...}, "progress": [...],
 * "server_cpu_timed_s": the --server-pid process's CPU seconds (utime + stime) since
 * lt_bench_start (null without --server-pid), "client_cpu_s": this process's CPU seconds
 * since lt_bench_start, "errors": n,
 * "complete": bool, <extra>}. extra is inserted verbatim as further members (a string
 * starting with a comma, or NULL). Returns true when the run was complete (every publish
 * acked OK and every consumer got every message). */
bool lt_bench_report(lt_bench_run *r, FILE *out, const char *system, const char *mode,
                     const char *extra);

#endif
