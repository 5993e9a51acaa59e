/*
 * metrics.h - the broker's metrics registry: counters, gauges and histograms updated from
 * every thread without locks, exposed as Prometheus text (version 0.0.4) and as JSON for
 * the admin API and the dashboard.
 *
 * Cardinality is bounded by construction. Series are labelled only by agency, by queue and
 * by reason code (an lt_err, < LT_METRICS_MAX_CODES), never by message. Agencies and queues
 * are registered when they are configured or first seen, up to a hard cap given to
 * lt_metrics_new(); past it they share the "_other" slot and
 * lienthong_metrics_overflow_total{kind=...} counts the refusals. Slot 0 of the agencies is
 * "_unknown" (a publish whose sender is not yet known: a malformed frame, an unknown CA).
 *
 * Threads: the on_* / observe / set functions are safe from any thread and take no lock
 * (C11 relaxed atomics on 64-byte aligned slots). Registration takes a mutex (it is not on
 * the hot path) and publishes the new slot with a release store, so lookups
 * (lt_metrics_*_find) stay lock-free. The rejection ring takes a short mutex on the reject
 * path only (a copy of ~500 bytes). Exposition (lt_metrics_write_prometheus, lt_metrics_json_*)
 * may run concurrently with updates; it reads each value once, so a scrape is a consistent
 * snapshot per series, not across series.
 *
 * Typical daemon use:
 *     lt_metrics *m; lt_metrics_new(256, 4096, &m);
 *     int a = lt_metrics_agency(m, "VN:GOV:000.00.00.H29:hotich", "UBND Quận 1"); (config load)
 *     lt_metrics_on_publish(m, a, frame_len);                 (frontend / verify thread)
 *     lt_metrics_observe(lt_metrics_hist(m, LT_HIST_VERIFY), secs);
 *     lt_metrics_on_nack(m, a, LT_ESIG); lt_metrics_note_rejection(m, ...);
 *     lt_metrics_set_collect(m, refresh_queue_gauges, daemon);  (called at each scrape)
 */
#ifndef LT_BROKER_METRICS_H
#define LT_BROKER_METRICS_H

#include "err.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lt_metrics lt_metrics;
typedef struct lt_hist lt_hist;

/* Reserved agency slots. */
#define LT_METRICS_AGENCY_UNKNOWN 0 /* label "_unknown": sender not identified */
#define LT_METRICS_AGENCY_OTHER 1   /* label "_other": agencies past the cap */
/* Reserved queue slot. */
#define LT_METRICS_QUEUE_OTHER 0 /* label "_other": queues past the cap */

/* Reason codes counted per agency: lt_err values below this; others count as UNKNOWN. */
#define LT_METRICS_MAX_CODES 100
/* Longest agency id / queue name kept (longer names are refused with -1). */
#define LT_METRICS_NAME_MAX 128
/* Rejections kept for /api/v1/rejections (the newest ones). */
#define LT_METRICS_REJECT_RING 256

/* Histograms, each with fixed buckets chosen for what it measures. */
typedef enum lt_metrics_hist_id {
    LT_HIST_VERIFY = 0,   /* lienthong_verify_duration_seconds: one envelope verification */
    LT_HIST_COMMIT_BATCH, /* lienthong_commit_batch_messages: messages per group commit */
    LT_HIST_FSYNC,        /* lienthong_fsync_duration_seconds: one commit's fsync */
    LT_HIST_PUBLISH_ACK,  /* lienthong_publish_ack_duration_seconds: frame in -> ACK out */
    LT_HIST_COUNT
} lt_metrics_hist_id;

/* Process-wide gauges. */
typedef enum lt_metrics_gauge_id {
    LT_GAUGE_CONNECTED_CLIENTS = 0, /* lienthong_connected_clients */
    LT_GAUGE_LMDB_MAP_USED,         /* lienthong_lmdb_map_used_bytes */
    LT_GAUGE_LMDB_MAP_SIZE,         /* lienthong_lmdb_map_size_bytes */
    LT_GAUGE_DISK_FREE,             /* lienthong_disk_free_bytes (store's file system) */
    LT_GAUGE_DISK_TOTAL,            /* lienthong_disk_total_bytes */
    LT_GAUGE_SCHEDULED,             /* lienthong_scheduled_entries */
    LT_GAUGE_RETENTION_YIELDED,     /* lienthong_retention_yielded_total (a counter) */
    LT_GAUGE_COUNT
} lt_metrics_gauge_id;

/* A queue's state at one moment, set by the daemon (usually from the collect callback). */
typedef struct lt_metrics_queue_gauges {
    uint64_t depth;            /* messages waiting or in flight */
    uint64_t unacked;          /* delivered, not yet acked */
    uint64_t bytes;            /* payload bytes held */
    uint64_t dlq_depth;        /* messages in the queue's dead-letter queue */
    double oldest_age_seconds; /* age of the oldest message not acked; 0 if empty */
} lt_metrics_queue_gauges;

/* A growable byte buffer (exposition output, HTTP responses). Zero-initialised is empty.
 * After an allocation failure it stays failed (oom) and further appends do nothing. */
typedef struct lt_metrics_buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    bool oom;
} lt_metrics_buf;

/* Release buf's memory and zero it. Accepts a zeroed buf. */
void lt_metrics_buf_fini(lt_metrics_buf *buf);
/* Append n bytes. */
void lt_metrics_buf_add(lt_metrics_buf *buf, const void *p, size_t n);
/* Append a NUL-terminated string. */
void lt_metrics_buf_puts(lt_metrics_buf *buf, const char *s);
/* Append printf-formatted text. */
void lt_metrics_buf_printf(lt_metrics_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Create a registry with room for max_agencies agencies and max_queues queues (each
 * including the reserved slots; minimums 2 and 1, maximum 65536). On LT_OK *out owns the
 * registry. LT_EINVAL: bad caps; LT_ENOMEM. */
lt_err lt_metrics_new(size_t max_agencies, size_t max_queues, lt_metrics **out);

/* Free the registry and clear *m_p. Accepts NULL / *m_p == NULL. No other thread may use
 * it any more. */
void lt_metrics_destroy(lt_metrics **m_p);

/* Register agency id (or find it if registered) and return its slot index. display_name
 * (may be NULL; copied, UTF-8, shown by the dashboard, never a label) is set at first
 * registration. Returns LT_METRICS_AGENCY_OTHER when the cap is reached (and counts it),
 * -1 when id is NULL, empty or longer than LT_METRICS_NAME_MAX-1. Any thread; takes a
 * mutex. */
int lt_metrics_agency(lt_metrics *m, const char *id, const char *display_name);

/* Slot index of a registered agency, or -1. Lock-free; any thread. */
int lt_metrics_agency_find(const lt_metrics *m, const char *id);

/* Register queue name (or find it) and return its slot index; LT_METRICS_QUEUE_OTHER past
 * the cap (counted), -1 for a NULL, empty or too long name. Any thread; takes a mutex. */
int lt_metrics_queue(lt_metrics *m, const char *name);

/* Slot index of a registered queue, or -1. Lock-free; any thread. */
int lt_metrics_queue_find(const lt_metrics *m, const char *name);

/* Hot-path events. An index out of range counts against the "_unknown" agency /
 * "_other" queue rather than being lost. Lock-free; any thread. */
void lt_metrics_on_publish(lt_metrics *m, int agency, size_t bytes); /* frame received */
void lt_metrics_on_ack(lt_metrics *m, int agency, bool duplicate);  /* ACK sent */
void lt_metrics_on_nack(lt_metrics *m, int agency, lt_err code);    /* NACK sent */
void lt_metrics_on_deliver(lt_metrics *m, int queue, bool redelivery);
void lt_metrics_on_consumer_ack(lt_metrics *m, int queue);
void lt_metrics_on_consumer_nak(lt_metrics *m, int queue);
void lt_metrics_on_dlq_move(lt_metrics *m, int queue);

/* Set a queue's gauges (copied). Setting the "_other" slot is ignored: gauges of queues
 * past the cap are not exposed. Lock-free; any thread. */
void lt_metrics_set_queue(lt_metrics *m, int queue, const lt_metrics_queue_gauges *g);

/* Set / add to a process gauge. Lock-free; any thread. */
void lt_metrics_set_gauge(lt_metrics *m, lt_metrics_gauge_id id, int64_t value);
void lt_metrics_add_gauge(lt_metrics *m, lt_metrics_gauge_id id, int64_t delta);
/* Current value of a process gauge. */
int64_t lt_metrics_gauge(const lt_metrics *m, lt_metrics_gauge_id id);

/* The histogram id (borrowed, lives as long as m). */
lt_hist *lt_metrics_hist(lt_metrics *m, lt_metrics_hist_id id);

/* Record one observation: seconds for the *_seconds histograms, a count for
 * LT_HIST_COMMIT_BATCH. Negative or NaN values count as 0. Lock-free; any thread. */
void lt_metrics_observe(lt_hist *h, double value);

/* Cumulative count of observations <= le in h (le must be one of its bucket bounds, or
 * INFINITY for all). For tests and the JSON overview. */
uint64_t lt_metrics_hist_count(const lt_hist *h, double le);

/* Called at the start of every exposition (Prometheus or JSON) on the scraping thread so
 * the daemon can refresh queue and process gauges (lt_metrics_set_queue, set_gauge).
 * fn == NULL removes it. Set it before the admin server starts. */
void lt_metrics_set_collect(lt_metrics *m, void (*fn)(void *ctx, lt_metrics *m), void *ctx);

/* fn(ctx, out) appends whole metric families (HELP, TYPE, series) of its own at the end of
 * every Prometheus scrape, on the thread that scrapes (the loop thread): the links and CURVE
 * series of broker/net_ops.c. One writer; NULL removes it. */
void lt_metrics_set_extra(lt_metrics *m, void (*fn)(void *ctx, lt_metrics_buf *out), void *ctx);

/* Keep one rejection for /api/v1/rejections (the newest LT_METRICS_REJECT_RING are kept).
 * Strings are copied and truncated; any may be NULL. This does not count it: call
 * lt_metrics_on_nack for that. Any thread; takes a short mutex. */
void lt_metrics_note_rejection(lt_metrics *m, const char *agency, const char *topic,
                               const char *msg_id, lt_err code, const char *reason);

/* Append the Prometheus text exposition (format 0.0.4) of every metric to out. LT_ENOMEM
 * if out could not grow (out then holds a truncated text). Any thread. */
lt_err lt_metrics_write_prometheus(lt_metrics *m, lt_metrics_buf *out);

/* JSON views for the admin API. On LT_OK *out is a new object the caller owns
 * (json_object_put). LT_ENOMEM. Any thread.
 *   overview:   {"version","start_time_ms","now_ms","uptime_seconds","totals":{...},
 *                "queues":{"count","depth","unacked","dlq_depth","oldest_age_seconds"},
 *                "gauges":{...},"latency":{"publish_ack_p50_seconds",...}}
 *   agencies:   [{"id","name","published","published_bytes","acked","duplicates",
 *                 "rejected","rejects":{"CODE":n,...},"last_publish_ms"}]
 *   queues:     [{"name","depth","unacked","bytes","dlq_depth","oldest_age_seconds",
 *                 "deliveries","redeliveries","consumer_acks","consumer_naks","dlq_moves"}]
 *   rejections: [{"time_ms","agency","topic","msg_id","code","code_name","reason"}]
 *               newest first, at most limit (0 = all kept). */
lt_err lt_metrics_json_overview(lt_metrics *m, json_object **out);
lt_err lt_metrics_json_agencies(lt_metrics *m, json_object **out);
lt_err lt_metrics_json_queues(lt_metrics *m, json_object **out);
lt_err lt_metrics_json_rejections(lt_metrics *m, size_t limit, json_object **out);

#endif
