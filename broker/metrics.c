/*
 * metrics.c - lock-free metrics registry and its Prometheus / JSON exposition.
 *
 * Layout: two fixed arrays of slots (agencies, queues) allocated at lt_metrics_new and
 * never moved, so an index handed out stays valid for the registry's life and hot-path
 * updates are one relaxed atomic add on the slot. A slot becomes visible when the
 * registering thread stores the new count with release order; every reader loads the count
 * with acquire order and only then touches names. Names are also indexed by an
 * open-addressing table of atomic ints (written under reg_lock, read without it).
 *
 * Histograms keep per-bucket (non-cumulative) counts and the sum in integer units
 * (nanoseconds for *_seconds, plain counts otherwise) because C11 has no atomic add on
 * double; the exposition makes them cumulative and derives _count from the buckets so a
 * scrape never shows _count below the +Inf bucket.
 */
#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 65536
#define HIST_MAX_BUCKETS 16
/* An escaped label value is at most twice the name, plus NUL. */
#define LABEL_MAX (2 * LT_METRICS_NAME_MAX + 1)
#define DISPLAY_MAX 256

struct lt_hist {
    const char *name;
    const char *help;
    const double *bounds;
    size_t nb;
    double scale; /* units of sum per unit of value */
    char le[HIST_MAX_BUCKETS][24];
    _Atomic uint64_t buckets[HIST_MAX_BUCKETS + 1]; /* last one: above every bound */
    _Atomic uint64_t sum_units;
};

struct agency {
    _Alignas(64) _Atomic uint64_t published;
    _Atomic uint64_t bytes;
    _Atomic uint64_t acked;
    _Atomic uint64_t duplicates;
    _Atomic uint64_t rejected;
    _Atomic int64_t last_ms;
    _Atomic uint64_t nacks[LT_METRICS_MAX_CODES];
    char id[LT_METRICS_NAME_MAX];
    char label[LABEL_MAX];
    char display[DISPLAY_MAX];
};

struct queue {
    _Alignas(64) _Atomic uint64_t deliveries;
    _Atomic uint64_t redeliveries;
    _Atomic uint64_t cacks;
    _Atomic uint64_t cnaks;
    _Atomic uint64_t dlq_moves;
    _Atomic uint64_t depth;
    _Atomic uint64_t unacked;
    _Atomic uint64_t bytes;
    _Atomic uint64_t dlq_depth;
    _Atomic uint64_t oldest_bits; /* a double's bits: C11 has no atomic double store */
    char name[LT_METRICS_NAME_MAX];
    char label[LABEL_MAX];
};

struct rejection {
    int64_t time_ms;
    lt_err code;
    char agency[LT_METRICS_NAME_MAX];
    char topic[160];
    char msg_id[40];
    char reason[LT_WHY_MAX];
};

struct names {
    _Atomic int *table; /* slot index or -1; size mask+1, a power of two */
    size_t mask;
};

struct lt_metrics {
    struct agency *agencies;
    size_t max_agencies;
    _Atomic size_t n_agencies;
    struct names agency_names;

    struct queue *queues;
    size_t max_queues;
    _Atomic size_t n_queues;
    struct names queue_names;

    _Atomic uint64_t overflow_agencies;
    _Atomic uint64_t overflow_queues;

    struct lt_hist hists[LT_HIST_COUNT];
    _Atomic int64_t gauges[LT_GAUGE_COUNT];

    int64_t start_ms;
    pthread_mutex_t reg_lock;

    void (*collect)(void *ctx, lt_metrics *m);
    void *collect_ctx;
    void (*extra)(void *ctx, lt_metrics_buf *out); /* series of other modules (links) */
    void *extra_ctx;

    pthread_mutex_t rej_lock;
    uint64_t rej_head; /* rejections ever noted; guarded by rej_lock */
    struct rejection rej[LT_METRICS_REJECT_RING];
};

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                        1,      2.5,     5,      10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

static const char *const gauge_names[LT_GAUGE_COUNT][2] = {
    {"lienthong_connected_clients", "Client connections open on the frontend."},
    {"lienthong_lmdb_map_used_bytes", "Bytes of the LMDB map in use (last page times page size)."},
    {"lienthong_lmdb_map_size_bytes", "Size of the LMDB map (the store's hard limit)."},
    {"lienthong_disk_free_bytes", "Free bytes on the file system holding the store."},
    {"lienthong_disk_total_bytes", "Size of the file system holding the store."},
    {"lienthong_scheduled_entries", "Queue entries waiting for their due time (scheduled delivery)."},
    {"lienthong_retention_yielded_total",
     "Acked messages dropped before their queue's retention because the store was full."},
};

/* ---- buffer ---- */

static bool buf_reserve(lt_metrics_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void lt_metrics_buf_fini(lt_metrics_buf *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

void lt_metrics_buf_add(lt_metrics_buf *buf, const void *p, size_t n)
{
    if (!buf_reserve(buf, n))
        return;
    if (n > 0)
        memcpy(buf->data + buf->len, p, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

void lt_metrics_buf_puts(lt_metrics_buf *buf, const char *s)
{
    lt_metrics_buf_add(buf, s, strlen(s));
}

void lt_metrics_buf_printf(lt_metrics_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        lt_metrics_buf_add(buf, small, (size_t)n);
        return;
    }
    if (!buf_reserve(buf, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prometheus label values escape backslash, double quote and line feed (format 0.0.4). */
static void escape_label(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    for (const char *s = src; *s && o + 3 <= cap; s++) {
        if (*s == '\\' || *s == '"') {
            dst[o++] = '\\';
            dst[o++] = *s;
        } else if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static lt_err names_init(struct names *n, size_t slots)
{
    size_t size = 16;
    while (size < 2 * slots)
        size *= 2;
    n->table = malloc(size * sizeof *n->table);
    if (n->table == NULL)
        return LT_ENOMEM;
    for (size_t i = 0; i < size; i++)
        atomic_init(&n->table[i], -1);
    n->mask = size - 1;
    return LT_OK;
}

/* Probe for name; name_of(i) gives slot i's name. Returns the slot or -1, and in *hole the
 * first empty table position seen (for an insert). */
static int names_lookup(const struct names *n, const char *name,
                        const char *(*name_of)(const lt_metrics *, int), const lt_metrics *m,
                        size_t *hole)
{
    size_t pos = (size_t)hash_name(name) & n->mask;
    for (size_t probes = 0; probes <= n->mask; probes++) {
        int idx = atomic_load_explicit(&n->table[pos], memory_order_acquire);
        if (idx < 0) {
            if (hole)
                *hole = pos;
            return -1;
        }
        if (strcmp(name_of(m, idx), name) == 0)
            return idx;
        pos = (pos + 1) & n->mask;
    }
    return -1; /* cannot happen: the table is at least twice the slots */
}

static const char *agency_name_of(const lt_metrics *m, int i)
{
    return m->agencies[i].id;
}

static const char *queue_name_of(const lt_metrics *m, int i)
{
    return m->queues[i].name;
}

static void hist_init(struct lt_hist *h, const char *name, const char *help,
                      const double *bounds, size_t nb, double scale)
{
    assert(nb <= HIST_MAX_BUCKETS);
    h->name = name;
    h->help = help;
    h->bounds = bounds;
    h->nb = nb;
    h->scale = scale;
    for (size_t i = 0; i < nb; i++)
        snprintf(h->le[i], sizeof h->le[i], "%g", bounds[i]);
    for (size_t i = 0; i <= HIST_MAX_BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_units, 0);
}

/* ---- life cycle and registration ---- */

static int add_agency_locked(lt_metrics *m, const char *id, const char *display, size_t hole)
{
    size_t n = atomic_load_explicit(&m->n_agencies, memory_order_relaxed);
    struct agency *a = &m->agencies[n];
    copy_str(a->id, sizeof a->id, id);
    escape_label(a->label, sizeof a->label, id);
    copy_str(a->display, sizeof a->display, display ? display : "");
    atomic_store_explicit(&m->n_agencies, n + 1, memory_order_release);
    atomic_store_explicit(&m->agency_names.table[hole], (int)n, memory_order_release);
    return (int)n;
}

static int add_queue_locked(lt_metrics *m, const char *name, size_t hole)
{
    size_t n = atomic_load_explicit(&m->n_queues, memory_order_relaxed);
    struct queue *q = &m->queues[n];
    copy_str(q->name, sizeof q->name, name);
    escape_label(q->label, sizeof q->label, name);
    atomic_store_explicit(&m->n_queues, n + 1, memory_order_release);
    atomic_store_explicit(&m->queue_names.table[hole], (int)n, memory_order_release);
    return (int)n;
}

lt_err lt_metrics_new(size_t max_agencies, size_t max_queues, lt_metrics **out)
{
    if (max_agencies < 2 || max_queues < 1 || max_agencies > MAX_SLOTS ||
        max_queues > MAX_SLOTS)
        return LT_EINVAL;
    lt_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return LT_ENOMEM;
    /* calloc zero bits are a valid initial state for these lock-free atomics on every
     * platform we build for; the arrays are published by the caller receiving *out. */
    m->agencies = aligned_alloc(64, max_agencies * sizeof *m->agencies);
    m->queues = aligned_alloc(64, max_queues * sizeof *m->queues);
    if (m->agencies == NULL || m->queues == NULL || names_init(&m->agency_names, max_agencies) ||
        names_init(&m->queue_names, max_queues)) {
        free(m->agencies);
        free(m->queues);
        free(m->agency_names.table);
        free(m->queue_names.table);
        free(m);
        return LT_ENOMEM;
    }
    memset(m->agencies, 0, max_agencies * sizeof *m->agencies);
    memset(m->queues, 0, max_queues * sizeof *m->queues);
    m->max_agencies = max_agencies;
    m->max_queues = max_queues;
    atomic_init(&m->n_agencies, 0);
    atomic_init(&m->n_queues, 0);
    pthread_mutex_init(&m->reg_lock, NULL);
    pthread_mutex_init(&m->rej_lock, NULL);
    m->start_ms = now_ms();

    hist_init(&m->hists[LT_HIST_VERIFY], "lienthong_verify_duration_seconds",
              "Time to verify one envelope (structure, chain, CRL, ACL, signature).",
              latency_bounds, sizeof latency_bounds / sizeof latency_bounds[0], 1e9);
    hist_init(&m->hists[LT_HIST_COMMIT_BATCH], "lienthong_commit_batch_messages",
              "Messages stored by one group commit (one LMDB write transaction).",
              batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0], 1);
    hist_init(&m->hists[LT_HIST_FSYNC], "lienthong_fsync_duration_seconds",
              "Time of one commit's fsync (LMDB transaction commit).", latency_bounds,
              sizeof latency_bounds / sizeof latency_bounds[0], 1e9);
    hist_init(&m->hists[LT_HIST_PUBLISH_ACK], "lienthong_publish_ack_duration_seconds",
              "Time from a publish frame received to its ACK or NACK sent.", latency_bounds,
              sizeof latency_bounds / sizeof latency_bounds[0], 1e9);

    size_t hole = 0;
    names_lookup(&m->agency_names, "_unknown", agency_name_of, m, &hole);
    add_agency_locked(m, "_unknown", "(sender not identified)", hole);
    names_lookup(&m->agency_names, "_other", agency_name_of, m, &hole);
    add_agency_locked(m, "_other", "(agencies past the metrics cap)", hole);
    names_lookup(&m->queue_names, "_other", queue_name_of, m, &hole);
    add_queue_locked(m, "_other", hole);
    *out = m;
    return LT_OK;
}

void lt_metrics_destroy(lt_metrics **m_p)
{
    if (m_p == NULL || *m_p == NULL)
        return;
    lt_metrics *m = *m_p;
    pthread_mutex_destroy(&m->reg_lock);
    pthread_mutex_destroy(&m->rej_lock);
    free(m->agencies);
    free(m->queues);
    free(m->agency_names.table);
    free(m->queue_names.table);
    free(m);
    *m_p = NULL;
}

static bool name_ok(const char *name)
{
    return name != NULL && name[0] != '\0' && strnlen(name, LT_METRICS_NAME_MAX) < LT_METRICS_NAME_MAX;
}

int lt_metrics_agency(lt_metrics *m, const char *id, const char *display_name)
{
    if (!name_ok(id))
        return -1;
    int idx = lt_metrics_agency_find(m, id);
    if (idx >= 0)
        return idx;
    pthread_mutex_lock(&m->reg_lock);
    size_t hole = 0;
    idx = names_lookup(&m->agency_names, id, agency_name_of, m, &hole);
    if (idx < 0) {
        if (atomic_load_explicit(&m->n_agencies, memory_order_relaxed) < m->max_agencies) {
            idx = add_agency_locked(m, id, display_name, hole);
        } else {
            atomic_fetch_add_explicit(&m->overflow_agencies, 1, memory_order_relaxed);
            idx = LT_METRICS_AGENCY_OTHER;
        }
    }
    pthread_mutex_unlock(&m->reg_lock);
    return idx;
}

int lt_metrics_agency_find(const lt_metrics *m, const char *id)
{
    if (!name_ok(id))
        return -1;
    return names_lookup(&m->agency_names, id, agency_name_of, m, NULL);
}

int lt_metrics_queue(lt_metrics *m, const char *name)
{
    if (!name_ok(name))
        return -1;
    int idx = lt_metrics_queue_find(m, name);
    if (idx >= 0)
        return idx;
    pthread_mutex_lock(&m->reg_lock);
    size_t hole = 0;
    idx = names_lookup(&m->queue_names, name, queue_name_of, m, &hole);
    if (idx < 0) {
        if (atomic_load_explicit(&m->n_queues, memory_order_relaxed) < m->max_queues) {
            idx = add_queue_locked(m, name, hole);
        } else {
            atomic_fetch_add_explicit(&m->overflow_queues, 1, memory_order_relaxed);
            idx = LT_METRICS_QUEUE_OTHER;
        }
    }
    pthread_mutex_unlock(&m->reg_lock);
    return idx;
}

int lt_metrics_queue_find(const lt_metrics *m, const char *name)
{
    if (!name_ok(name))
        return -1;
    return names_lookup(&m->queue_names, name, queue_name_of, m, NULL);
}

/* ---- hot path ---- */

#define INC(field) atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)

static struct agency *agency_at(lt_metrics *m, int i)
{
    size_t n = atomic_load_explicit(&m->n_agencies, memory_order_acquire);
    if (i < 0 || (size_t)i >= n)
        i = LT_METRICS_AGENCY_UNKNOWN;
    return &m->agencies[i];
}

static struct queue *queue_at(lt_metrics *m, int i)
{
    size_t n = atomic_load_explicit(&m->n_queues, memory_order_acquire);
    if (i < 0 || (size_t)i >= n)
        i = LT_METRICS_QUEUE_OTHER;
    return &m->queues[i];
}

void lt_metrics_on_publish(lt_metrics *m, int agency, size_t bytes)
{
    struct agency *a = agency_at(m, agency);
    INC(a->published);
    atomic_fetch_add_explicit(&a->bytes, (uint64_t)bytes, memory_order_relaxed);
    atomic_store_explicit(&a->last_ms, now_ms(), memory_order_relaxed);
}

void lt_metrics_on_ack(lt_metrics *m, int agency, bool duplicate)
{
    struct agency *a = agency_at(m, agency);
    INC(a->acked);
    if (duplicate)
        INC(a->duplicates);
}

void lt_metrics_on_nack(lt_metrics *m, int agency, lt_err code)
{
    struct agency *a = agency_at(m, agency);
    INC(a->rejected);
    unsigned c = (unsigned)code;
    /* Codes outside the table count under a slot whose name is UNKNOWN. */
    if (c >= LT_METRICS_MAX_CODES || strcmp(lt_err_name(code), "UNKNOWN") == 0)
        c = LT_METRICS_MAX_CODES - 1;
    INC(a->nacks[c]);
}

void lt_metrics_on_deliver(lt_metrics *m, int queue, bool redelivery)
{
    struct queue *q = queue_at(m, queue);
    INC(q->deliveries);
    if (redelivery)
        INC(q->redeliveries);
}

void lt_metrics_on_consumer_ack(lt_metrics *m, int queue)
{
    INC(queue_at(m, queue)->cacks);
}

void lt_metrics_on_consumer_nak(lt_metrics *m, int queue)
{
    INC(queue_at(m, queue)->cnaks);
}

void lt_metrics_on_dlq_move(lt_metrics *m, int queue)
{
    INC(queue_at(m, queue)->dlq_moves);
}

static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

void lt_metrics_set_queue(lt_metrics *m, int queue, const lt_metrics_queue_gauges *g)
{
    size_t n = atomic_load_explicit(&m->n_queues, memory_order_acquire);
    if (queue <= LT_METRICS_QUEUE_OTHER || (size_t)queue >= n)
        return;
    struct queue *q = &m->queues[queue];
    atomic_store_explicit(&q->depth, g->depth, memory_order_relaxed);
    atomic_store_explicit(&q->unacked, g->unacked, memory_order_relaxed);
    atomic_store_explicit(&q->bytes, g->bytes, memory_order_relaxed);
    atomic_store_explicit(&q->dlq_depth, g->dlq_depth, memory_order_relaxed);
    double age = g->oldest_age_seconds;
    if (!(age > 0))
        age = 0;
    atomic_store_explicit(&q->oldest_bits, dbl_bits(age), memory_order_relaxed);
}

void lt_metrics_set_gauge(lt_metrics *m, lt_metrics_gauge_id id, int64_t value)
{
    if ((unsigned)id < LT_GAUGE_COUNT)
        atomic_store_explicit(&m->gauges[id], value, memory_order_relaxed);
}

void lt_metrics_add_gauge(lt_metrics *m, lt_metrics_gauge_id id, int64_t delta)
{
    if ((unsigned)id < LT_GAUGE_COUNT)
        atomic_fetch_add_explicit(&m->gauges[id], delta, memory_order_relaxed);
}

int64_t lt_metrics_gauge(const lt_metrics *m, lt_metrics_gauge_id id)
{
    if ((unsigned)id >= LT_GAUGE_COUNT)
        return 0;
    return atomic_load_explicit(&m->gauges[id], memory_order_relaxed);
}

lt_hist *lt_metrics_hist(lt_metrics *m, lt_metrics_hist_id id)
{
    assert((unsigned)id < LT_HIST_COUNT);
    return &m->hists[id];
}

void lt_metrics_observe(lt_hist *h, double value)
{
    if (!(value > 0)) /* negative and NaN */
        value = 0;
    size_t i = 0;
    while (i < h->nb && value > h->bounds[i])
        i++;
    INC(h->buckets[i]);
    double units = value * h->scale + 0.5;
    if (units > 9.2e18)
        units = 9.2e18;
    atomic_fetch_add_explicit(&h->sum_units, (uint64_t)units, memory_order_relaxed);
}

uint64_t lt_metrics_hist_count(const lt_hist *h, double le)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->nb; i++) {
        if (i < h->nb ? h->bounds[i] > le : !isinf(le))
            break;
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    }
    return total;
}

void lt_metrics_set_collect(lt_metrics *m, void (*fn)(void *ctx, lt_metrics *m), void *ctx)
{
    m->collect = fn;
    m->collect_ctx = ctx;
}

void lt_metrics_set_extra(lt_metrics *m, void (*fn)(void *ctx, lt_metrics_buf *out), void *ctx)
{
    m->extra = fn;
    m->extra_ctx = ctx;
}

static void run_collect(lt_metrics *m)
{
    if (m->collect)
        m->collect(m->collect_ctx, m);
}

void lt_metrics_note_rejection(lt_metrics *m, const char *agency, const char *topic,
                               const char *msg_id, lt_err code, const char *reason)
{
    int64_t t = now_ms();
    pthread_mutex_lock(&m->rej_lock);
    struct rejection *r = &m->rej[m->rej_head % LT_METRICS_REJECT_RING];
    r->time_ms = t;
    r->code = code;
    copy_str(r->agency, sizeof r->agency, agency);
    copy_str(r->topic, sizeof r->topic, topic);
    copy_str(r->msg_id, sizeof r->msg_id, msg_id);
    copy_str(r->reason, sizeof r->reason, reason ? reason : lt_err_str(code));
    m->rej_head++;
    pthread_mutex_unlock(&m->rej_lock);
}

/* ---- Prometheus exposition ---- */

/* Appends v in decimal; faster than printf, which matters at 10k series a scrape. */
static void put_u64(lt_metrics_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    lt_metrics_buf_add(b, tmp + i, sizeof tmp - i);
}

static void put_i64(lt_metrics_buf *b, int64_t v)
{
    if (v < 0) {
        lt_metrics_buf_add(b, "-", 1);
        put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

static void family(lt_metrics_buf *b, const char *name, const char *type, const char *help)
{
    lt_metrics_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v\n  (value already escaped) */
static void series_u64(lt_metrics_buf *b, const char *name, const char *label,
                       const char *value, uint64_t v)
{
    lt_metrics_buf_puts(b, name);
    lt_metrics_buf_add(b, "{", 1);
    lt_metrics_buf_puts(b, label);
    lt_metrics_buf_add(b, "=\"", 2);
    lt_metrics_buf_puts(b, value);
    lt_metrics_buf_add(b, "\"} ", 3);
    put_u64(b, v);
    lt_metrics_buf_add(b, "\n", 1);
}

enum { A_PUBLISHED, A_BYTES, A_ACKED, A_DUPLICATES };

static uint64_t agency_field(const struct agency *a, int f)
{
    switch (f) {
    case A_PUBLISHED: return atomic_load_explicit(&a->published, memory_order_relaxed);
    case A_BYTES: return atomic_load_explicit(&a->bytes, memory_order_relaxed);
    case A_ACKED: return atomic_load_explicit(&a->acked, memory_order_relaxed);
    default: return atomic_load_explicit(&a->duplicates, memory_order_relaxed);
    }
}

/* Reserved slots appear only once something was counted against them. */
static bool agency_shown(const struct agency *a, size_t i)
{
    return i > LT_METRICS_AGENCY_OTHER ||
           atomic_load_explicit(&a->published, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&a->rejected, memory_order_relaxed) != 0;
}

static bool queue_shown(const struct queue *q, size_t i)
{
    return i != LT_METRICS_QUEUE_OTHER ||
           atomic_load_explicit(&q->deliveries, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&q->cacks, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&q->cnaks, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&q->dlq_moves, memory_order_relaxed) != 0;
}

static void write_agencies(lt_metrics *m, lt_metrics_buf *b)
{
    static const struct {
        const char *name, *help;
    } fams[] = {
        {"lienthong_published_total", "Publish frames received, by sending agency."},
        {"lienthong_published_bytes_total", "Bytes of publish frames received, by agency."},
        {"lienthong_acked_total", "Publishes acknowledged (stored, or duplicates), by agency."},
        {"lienthong_duplicates_total", "Publishes acknowledged as duplicates, by agency."},
    };
    size_t n = atomic_load_explicit(&m->n_agencies, memory_order_acquire);
    for (int f = 0; f < 4; f++) {
        family(b, fams[f].name, "counter", fams[f].help);
        for (size_t i = 0; i < n; i++)
            if (agency_shown(&m->agencies[i], i))
                series_u64(b, fams[f].name, "agency", m->agencies[i].label,
                           agency_field(&m->agencies[i], f));
    }
    family(b, "lienthong_nacked_total", "counter",
           "Publishes refused with a NACK, by agency and reason code.");
    for (size_t i = 0; i < n; i++) {
        const struct agency *a = &m->agencies[i];
        for (unsigned c = 0; c < LT_METRICS_MAX_CODES; c++) {
            uint64_t v = atomic_load_explicit(&a->nacks[c], memory_order_relaxed);
            if (v == 0)
                continue;
            lt_metrics_buf_puts(b, "lienthong_nacked_total{agency=\"");
            lt_metrics_buf_puts(b, a->label);
            lt_metrics_buf_puts(b, "\",reason=\"");
            lt_metrics_buf_puts(b, lt_err_name((lt_err)c));
            lt_metrics_buf_add(b, "\"} ", 3);
            put_u64(b, v);
            lt_metrics_buf_add(b, "\n", 1);
        }
    }
}

static void write_queues(lt_metrics *m, lt_metrics_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"lienthong_deliveries_total", "counter", "Deliveries to consumers, by queue (redeliveries included)."},
        {"lienthong_redeliveries_total", "counter", "Redeliveries (after nak or ack_wait expiry), by queue."},
        {"lienthong_consumer_acks_total", "counter", "Deliveries acknowledged by the consumer, by queue."},
        {"lienthong_consumer_naks_total", "counter", "Deliveries refused (nak) by the consumer, by queue."},
        {"lienthong_dlq_moves_total", "counter", "Messages moved to the dead-letter queue, by queue."},
        {"lienthong_queue_depth", "gauge", "Messages in the queue (waiting or in flight)."},
        {"lienthong_queue_unacked", "gauge", "Messages delivered and not yet acknowledged."},
        {"lienthong_queue_bytes", "gauge", "Payload bytes held by the queue."},
        {"lienthong_dlq_depth", "gauge", "Messages in the queue's dead-letter queue."},
        {"lienthong_queue_oldest_age_seconds", "gauge", "Age of the oldest unacknowledged message."},
    };
    size_t n = atomic_load_explicit(&m->n_queues, memory_order_acquire);
    for (int f = 0; f < 10; f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < n; i++) {
            const struct queue *q = &m->queues[i];
            if (f >= 5 && i == LT_METRICS_QUEUE_OTHER)
                continue; /* gauges of queues past the cap are not kept */
            if (!queue_shown(q, i))
                continue;
            if (f == 9) {
                double age = bits_dbl(atomic_load_explicit(&q->oldest_bits, memory_order_relaxed));
                lt_metrics_buf_printf(b, "lienthong_queue_oldest_age_seconds{queue=\"%s\"} %.3f\n",
                                      q->label, age);
                continue;
            }
            const _Atomic uint64_t *fields[] = {&q->deliveries, &q->redeliveries, &q->cacks,
                                                &q->cnaks,      &q->dlq_moves,    &q->depth,
                                                &q->unacked,    &q->bytes,        &q->dlq_depth};
            series_u64(b, fams[f].name, "queue", q->label,
                       atomic_load_explicit(fields[f], memory_order_relaxed));
        }
    }
}

static void write_hist(const struct lt_hist *h, lt_metrics_buf *b)
{
    family(b, h->name, "histogram", h->help);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nb; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        lt_metrics_buf_puts(b, h->name);
        lt_metrics_buf_puts(b, "_bucket{le=\"");
        lt_metrics_buf_puts(b, i < h->nb ? h->le[i] : "+Inf");
        lt_metrics_buf_add(b, "\"} ", 3);
        put_u64(b, cum);
        lt_metrics_buf_add(b, "\n", 1);
    }
    uint64_t sum = atomic_load_explicit(&h->sum_units, memory_order_relaxed);
    if (h->scale == 1)
        lt_metrics_buf_printf(b, "%s_sum %llu\n", h->name, (unsigned long long)sum);
    else
        lt_metrics_buf_printf(b, "%s_sum %.9f\n", h->name, (double)sum / h->scale);
    lt_metrics_buf_printf(b, "%s_count %llu\n", h->name, (unsigned long long)cum);
}

lt_err lt_metrics_write_prometheus(lt_metrics *m, lt_metrics_buf *out)
{
    run_collect(m);
    family(out, "lienthong_build_info", "gauge", "Build of the running broker (always 1).");
    lt_metrics_buf_puts(out, "lienthong_build_info{version=\"" LT_VERSION "\"} 1\n");
    family(out, "lienthong_start_time_seconds", "gauge", "Start time of the broker, Unix seconds.");
    lt_metrics_buf_printf(out, "lienthong_start_time_seconds %.3f\n", (double)m->start_ms / 1000.0);
    write_agencies(m, out);
    write_queues(m, out);
    for (int h = 0; h < LT_HIST_COUNT; h++)
        write_hist(&m->hists[h], out);
    for (int g = 0; g < LT_GAUGE_COUNT; g++) {
        family(out, gauge_names[g][0], g == LT_GAUGE_RETENTION_YIELDED ? "counter" : "gauge",
               gauge_names[g][1]);
        lt_metrics_buf_puts(out, gauge_names[g][0]);
        lt_metrics_buf_add(out, " ", 1);
        put_i64(out, atomic_load_explicit(&m->gauges[g], memory_order_relaxed));
        lt_metrics_buf_add(out, "\n", 1);
    }
    family(out, "lienthong_metrics_overflow_total", "counter",
           "Agencies or queues refused a series of their own (cardinality cap reached).");
    series_u64(out, "lienthong_metrics_overflow_total", "kind", "agency",
               atomic_load_explicit(&m->overflow_agencies, memory_order_relaxed));
    series_u64(out, "lienthong_metrics_overflow_total", "kind", "queue",
               atomic_load_explicit(&m->overflow_queues, memory_order_relaxed));
    if (m->extra)
        m->extra(m->extra_ctx, out);
    return out->oom ? LT_ENOMEM : LT_OK;
}

/* ---- JSON ---- */

static json_object *ju64(uint64_t v)
{
    return json_object_new_uint64(v);
}

/* Quantile q of h estimated by linear interpolation inside its bucket (as Prometheus's
 * histogram_quantile does); 0 when empty, the top bound when in the overflow bucket. */
static double hist_quantile(const struct lt_hist *h, double q)
{
    uint64_t counts[HIST_MAX_BUCKETS + 1], total = 0;
    for (size_t i = 0; i <= h->nb; i++) {
        counts[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        total += counts[i];
    }
    if (total == 0)
        return 0;
    double rank = q * (double)total, cum = 0;
    for (size_t i = 0; i < h->nb; i++) {
        if (cum + (double)counts[i] >= rank && counts[i] > 0) {
            double lo = i ? h->bounds[i - 1] : 0;
            return lo + (h->bounds[i] - lo) * (rank - cum) / (double)counts[i];
        }
        cum += (double)counts[i];
    }
    return h->bounds[h->nb - 1];
}

lt_err lt_metrics_json_overview(lt_metrics *m, json_object **out)
{
    run_collect(m);
    json_object *o = json_object_new_object();
    json_object *t = json_object_new_object();
    json_object *qs = json_object_new_object();
    json_object *g = json_object_new_object();
    json_object *lat = json_object_new_object();
    if (!o || !t || !qs || !g || !lat) {
        json_object_put(o);
        json_object_put(t);
        json_object_put(qs);
        json_object_put(g);
        json_object_put(lat);
        return LT_ENOMEM;
    }
    int64_t now = now_ms();
    json_object_object_add(o, "version", json_object_new_string(LT_VERSION));
    json_object_object_add(o, "start_time_ms", json_object_new_int64(m->start_ms));
    json_object_object_add(o, "now_ms", json_object_new_int64(now));
    json_object_object_add(o, "uptime_seconds",
                           json_object_new_double((double)(now - m->start_ms) / 1000.0));

    uint64_t pub = 0, bytes = 0, acked = 0, dup = 0, rej = 0;
    size_t na = atomic_load_explicit(&m->n_agencies, memory_order_acquire);
    for (size_t i = 0; i < na; i++) {
        const struct agency *a = &m->agencies[i];
        pub += atomic_load_explicit(&a->published, memory_order_relaxed);
        bytes += atomic_load_explicit(&a->bytes, memory_order_relaxed);
        acked += atomic_load_explicit(&a->acked, memory_order_relaxed);
        dup += atomic_load_explicit(&a->duplicates, memory_order_relaxed);
        rej += atomic_load_explicit(&a->rejected, memory_order_relaxed);
    }
    uint64_t del = 0, redel = 0, cacks = 0, cnaks = 0, dlqm = 0;
    uint64_t depth = 0, unacked = 0, dlqd = 0, qbytes = 0;
    double oldest = 0;
    size_t nq = atomic_load_explicit(&m->n_queues, memory_order_acquire);
    for (size_t i = 0; i < nq; i++) {
        const struct queue *q = &m->queues[i];
        del += atomic_load_explicit(&q->deliveries, memory_order_relaxed);
        redel += atomic_load_explicit(&q->redeliveries, memory_order_relaxed);
        cacks += atomic_load_explicit(&q->cacks, memory_order_relaxed);
        cnaks += atomic_load_explicit(&q->cnaks, memory_order_relaxed);
        dlqm += atomic_load_explicit(&q->dlq_moves, memory_order_relaxed);
        depth += atomic_load_explicit(&q->depth, memory_order_relaxed);
        unacked += atomic_load_explicit(&q->unacked, memory_order_relaxed);
        qbytes += atomic_load_explicit(&q->bytes, memory_order_relaxed);
        dlqd += atomic_load_explicit(&q->dlq_depth, memory_order_relaxed);
        double age = bits_dbl(atomic_load_explicit(&q->oldest_bits, memory_order_relaxed));
        if (age > oldest)
            oldest = age;
    }
    json_object_object_add(t, "published", ju64(pub));
    json_object_object_add(t, "published_bytes", ju64(bytes));
    json_object_object_add(t, "acked", ju64(acked));
    json_object_object_add(t, "duplicates", ju64(dup));
    json_object_object_add(t, "rejected", ju64(rej));
    json_object_object_add(t, "deliveries", ju64(del));
    json_object_object_add(t, "redeliveries", ju64(redel));
    json_object_object_add(t, "consumer_acks", ju64(cacks));
    json_object_object_add(t, "consumer_naks", ju64(cnaks));
    json_object_object_add(t, "dlq_moves", ju64(dlqm));
    json_object_object_add(o, "totals", t);

    json_object_object_add(qs, "count", ju64(nq > 0 ? nq - 1 : 0));
    json_object_object_add(qs, "depth", ju64(depth));
    json_object_object_add(qs, "unacked", ju64(unacked));
    json_object_object_add(qs, "bytes", ju64(qbytes));
    json_object_object_add(qs, "dlq_depth", ju64(dlqd));
    json_object_object_add(qs, "oldest_age_seconds", json_object_new_double(oldest));
    json_object_object_add(o, "queues", qs);
    json_object_object_add(o, "agencies_count", ju64(na > 2 ? na - 2 : 0));

    static const char *const gkeys[LT_GAUGE_COUNT] = {
        "connected_clients", "lmdb_map_used_bytes", "lmdb_map_size_bytes", "disk_free_bytes",
        "disk_total_bytes", "scheduled_entries", "retention_yielded_total"};
    for (int i = 0; i < LT_GAUGE_COUNT; i++)
        json_object_object_add(g, gkeys[i], json_object_new_int64(lt_metrics_gauge(m, (lt_metrics_gauge_id)i)));
    json_object_object_add(o, "gauges", g);

    json_object_object_add(lat, "publish_ack_p50_seconds",
                           json_object_new_double(hist_quantile(&m->hists[LT_HIST_PUBLISH_ACK], 0.5)));
    json_object_object_add(lat, "publish_ack_p99_seconds",
                           json_object_new_double(hist_quantile(&m->hists[LT_HIST_PUBLISH_ACK], 0.99)));
    json_object_object_add(lat, "verify_p99_seconds",
                           json_object_new_double(hist_quantile(&m->hists[LT_HIST_VERIFY], 0.99)));
    json_object_object_add(lat, "fsync_p99_seconds",
                           json_object_new_double(hist_quantile(&m->hists[LT_HIST_FSYNC], 0.99)));
    json_object_object_add(lat, "commit_batch_p50",
                           json_object_new_double(hist_quantile(&m->hists[LT_HIST_COMMIT_BATCH], 0.5)));
    json_object_object_add(o, "latency", lat);
    *out = o;
    return LT_OK;
}

lt_err lt_metrics_json_agencies(lt_metrics *m, json_object **out)
{
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return LT_ENOMEM;
    size_t n = atomic_load_explicit(&m->n_agencies, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const struct agency *a = &m->agencies[i];
        if (!agency_shown(a, i))
            continue;
        json_object *o = json_object_new_object();
        json_object *r = json_object_new_object();
        if (o == NULL || r == NULL) {
            json_object_put(o);
            json_object_put(r);
            json_object_put(arr);
            return LT_ENOMEM;
        }
        json_object_object_add(o, "id", json_object_new_string(a->id));
        json_object_object_add(o, "name", json_object_new_string(a->display));
        json_object_object_add(o, "published", ju64(agency_field(a, A_PUBLISHED)));
        json_object_object_add(o, "published_bytes", ju64(agency_field(a, A_BYTES)));
        json_object_object_add(o, "acked", ju64(agency_field(a, A_ACKED)));
        json_object_object_add(o, "duplicates", ju64(agency_field(a, A_DUPLICATES)));
        json_object_object_add(o, "rejected",
                               ju64(atomic_load_explicit(&a->rejected, memory_order_relaxed)));
        for (unsigned c = 0; c < LT_METRICS_MAX_CODES; c++) {
            uint64_t v = atomic_load_explicit(&a->nacks[c], memory_order_relaxed);
            if (v)
                json_object_object_add(r, lt_err_name((lt_err)c), ju64(v));
        }
        json_object_object_add(o, "rejects", r);
        json_object_object_add(o, "last_publish_ms",
                               json_object_new_int64(atomic_load_explicit(&a->last_ms, memory_order_relaxed)));
        json_object_array_add(arr, o);
    }
    *out = arr;
    return LT_OK;
}

lt_err lt_metrics_json_queues(lt_metrics *m, json_object **out)
{
    run_collect(m);
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return LT_ENOMEM;
    size_t n = atomic_load_explicit(&m->n_queues, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const struct queue *q = &m->queues[i];
        if (!queue_shown(q, i))
            continue;
        json_object *o = json_object_new_object();
        if (o == NULL) {
            json_object_put(arr);
            return LT_ENOMEM;
        }
        json_object_object_add(o, "name", json_object_new_string(q->name));
        json_object_object_add(o, "depth", ju64(atomic_load_explicit(&q->depth, memory_order_relaxed)));
        json_object_object_add(o, "unacked", ju64(atomic_load_explicit(&q->unacked, memory_order_relaxed)));
        json_object_object_add(o, "bytes", ju64(atomic_load_explicit(&q->bytes, memory_order_relaxed)));
        json_object_object_add(o, "dlq_depth", ju64(atomic_load_explicit(&q->dlq_depth, memory_order_relaxed)));
        json_object_object_add(o, "oldest_age_seconds",
                               json_object_new_double(bits_dbl(atomic_load_explicit(&q->oldest_bits, memory_order_relaxed))));
        json_object_object_add(o, "deliveries", ju64(atomic_load_explicit(&q->deliveries, memory_order_relaxed)));
        json_object_object_add(o, "redeliveries", ju64(atomic_load_explicit(&q->redeliveries, memory_order_relaxed)));
        json_object_object_add(o, "consumer_acks", ju64(atomic_load_explicit(&q->cacks, memory_order_relaxed)));
        json_object_object_add(o, "consumer_naks", ju64(atomic_load_explicit(&q->cnaks, memory_order_relaxed)));
        json_object_object_add(o, "dlq_moves", ju64(atomic_load_explicit(&q->dlq_moves, memory_order_relaxed)));
        json_object_array_add(arr, o);
    }
    *out = arr;
    return LT_OK;
}

lt_err lt_metrics_json_rejections(lt_metrics *m, size_t limit, json_object **out)
{
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return LT_ENOMEM;
    if (limit == 0 || limit > LT_METRICS_REJECT_RING)
        limit = LT_METRICS_REJECT_RING;
    pthread_mutex_lock(&m->rej_lock);
    uint64_t head = m->rej_head;
    size_t kept = head < LT_METRICS_REJECT_RING ? (size_t)head : LT_METRICS_REJECT_RING;
    for (size_t k = 0; k < kept && k < limit; k++) {
        const struct rejection *r = &m->rej[(head - 1 - k) % LT_METRICS_REJECT_RING];
        json_object *o = json_object_new_object();
        if (o == NULL)
            break;
        json_object_object_add(o, "time_ms", json_object_new_int64(r->time_ms));
        json_object_object_add(o, "agency", json_object_new_string(r->agency));
        json_object_object_add(o, "topic", json_object_new_string(r->topic));
        json_object_object_add(o, "msg_id", json_object_new_string(r->msg_id));
        json_object_object_add(o, "code", json_object_new_int((int)r->code));
        json_object_object_add(o, "code_name", json_object_new_string(lt_err_name(r->code)));
        json_object_object_add(o, "reason", json_object_new_string(r->reason));
        json_object_array_add(arr, o);
    }
    pthread_mutex_unlock(&m->rej_lock);
    *out = arr;
    return LT_OK;
}
