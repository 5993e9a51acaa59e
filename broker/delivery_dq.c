/*
 * delivery_dq.c - the delivery state machine of one queue (see delivery_int.h): in-flight
 * table with ack deadlines, delayed and ready redeliveries, max_deliver. It knows no
 * sockets, no store and no clock: delivery.c drives it on the loop thread, tests drive it
 * with explicit times.
 */
#include "delivery_int.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ENTS 256

struct lt_dq_chunk {
    lt_dq_chunk *next;
    lt_dq_ent ents[CHUNK_ENTS];
};

static size_t hslot(uint64_t seq, size_t cap)
{
    return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static lt_dq_ent *hget(const lt_dq *dq, uint64_t seq)
{
    if (dq->tab_cap == 0)
        return NULL;
    for (size_t i = hslot(seq, dq->tab_cap);; i = (i + 1) & (dq->tab_cap - 1)) {
        lt_dq_ent *e = dq->tab[i];
        if (!e)
            return NULL;
        if (e->seq == seq)
            return e;
    }
}

static lt_err hgrow(lt_dq *dq)
{
    size_t ncap = dq->tab_cap ? dq->tab_cap * 2 : 64;
    lt_dq_ent **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return LT_ENOMEM;
    for (size_t i = 0; i < dq->tab_cap; i++) {
        lt_dq_ent *e = dq->tab[i];
        if (!e)
            continue;
        size_t j = hslot(e->seq, ncap);
        while (nt[j])
            j = (j + 1) & (ncap - 1);
        nt[j] = e;
    }
    free(dq->tab);
    dq->tab = nt;
    dq->tab_cap = ncap;
    return LT_OK;
}

/* Insert e (its seq not present). The table is grown beforehand by ent_new. */
static void hput(lt_dq *dq, lt_dq_ent *e)
{
    size_t i = hslot(e->seq, dq->tab_cap);
    while (dq->tab[i])
        i = (i + 1) & (dq->tab_cap - 1);
    dq->tab[i] = e;
    dq->tab_n++;
}

/* Remove e; backward-shift deletion keeps every probe chain unbroken. */
static void hdel(lt_dq *dq, const lt_dq_ent *e)
{
    size_t mask = dq->tab_cap - 1;
    size_t i = hslot(e->seq, dq->tab_cap);
    while (dq->tab[i] != e)
        i = (i + 1) & mask;
    size_t j = i;
    for (;;) {
        dq->tab[i] = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!dq->tab[j]) {
                dq->tab_n--;
                return;
            }
            size_t k = hslot(dq->tab[j]->seq, dq->tab_cap);
            /* move tab[j] into the hole at i unless its home k lies cyclically in (i, j] */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        dq->tab[i] = dq->tab[j];
        i = j;
    }
}

static lt_dq_ent *ent_new(lt_dq *dq, uint64_t seq)
{
    if ((dq->tab_n + 1) * 2 > dq->tab_cap && hgrow(dq) != LT_OK)
        return NULL;
    if (!dq->free) {
        lt_dq_chunk *c = malloc(sizeof *c);
        if (!c)
            return NULL;
        c->next = dq->chunks;
        dq->chunks = c;
        for (size_t i = 0; i < CHUNK_ENTS; i++) {
            c->ents[i].next = dq->free;
            dq->free = &c->ents[i];
        }
    }
    lt_dq_ent *e = dq->free;
    dq->free = e->next;
    memset(e, 0, sizeof *e);
    e->seq = seq;
    hput(dq, e);
    return e;
}

static void ent_free(lt_dq *dq, lt_dq_ent *e)
{
    hdel(dq, e);
    e->state = 0;
    e->next = dq->free;
    dq->free = e;
}

/* ---- binary heaps of entries; each entry knows its index (hidx) ---- */

static bool delayed_less(const lt_dq_ent *a, const lt_dq_ent *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static bool ready_less(const lt_dq_ent *a, const lt_dq_ent *b)
{
    return a->seq < b->seq;
}

typedef bool (*less_fn)(const lt_dq_ent *, const lt_dq_ent *);

static void heap_set(lt_dq_ent **h, size_t i, lt_dq_ent *e)
{
    h[i] = e;
    e->hidx = (uint32_t)i;
}

static void heap_up(lt_dq_ent **h, size_t i, less_fn less)
{
    lt_dq_ent *e = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(e, h[p]))
            break;
        heap_set(h, i, h[p]);
        i = p;
    }
    heap_set(h, i, e);
}

static void heap_down(lt_dq_ent **h, size_t n, size_t i, less_fn less)
{
    lt_dq_ent *e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && less(h[c + 1], h[c]))
            c++;
        if (!less(h[c], e))
            break;
        heap_set(h, i, h[c]);
        i = c;
    }
    heap_set(h, i, e);
}

static lt_err heap_push(lt_dq_ent ***h, size_t *n, size_t *cap, lt_dq_ent *e, less_fn less)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        lt_dq_ent **nh = realloc(*h, ncap * sizeof *nh);
        if (!nh)
            return LT_ENOMEM;
        *h = nh;
        *cap = ncap;
    }
    heap_set(*h, *n, e);
    (*n)++;
    heap_up(*h, *n - 1, less);
    return LT_OK;
}

static void heap_remove(lt_dq_ent **h, size_t *n, lt_dq_ent *e, less_fn less)
{
    size_t i = e->hidx;
    assert(i < *n && h[i] == e);
    (*n)--;
    if (i == *n)
        return;
    heap_set(h, i, h[*n]);
    heap_down(h, *n, i, less);
    heap_up(h, i, less);
}

/* ---- state transitions ---- */

static void if_append(lt_dq *dq, lt_dq_ent *e)
{
    e->next = NULL;
    e->prev = dq->if_tail;
    if (dq->if_tail)
        dq->if_tail->next = e;
    else
        dq->if_head = e;
    dq->if_tail = e;
}

static void if_unlink(lt_dq *dq, lt_dq_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        dq->if_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        dq->if_tail = e->prev;
    e->prev = e->next = NULL;
}

/* Take e out of whatever structure holds it (it stays in the hash). */
static void detach(lt_dq *dq, lt_dq_ent *e)
{
    switch (e->state) {
    case LT_DQ_INFLIGHT:
        if_unlink(dq, e);
        dq->n_inflight--;
        break;
    case LT_DQ_PICKED:
        dq->n_inflight--;
        break;
    case LT_DQ_DELAYED:
        heap_remove(dq->delayed, &dq->n_delayed, e, delayed_less);
        break;
    case LT_DQ_READY:
        heap_remove(dq->ready, &dq->n_ready, e, ready_less);
        break;
    default:
        assert(!"entry in no state");
    }
    e->state = 0;
}

static void make_inflight(lt_dq *dq, lt_dq_ent *e, int64_t now)
{
    e->state = LT_DQ_INFLIGHT;
    e->when = now + (int64_t)dq->cfg.ack_wait_ms;
    e->count++;
    if_append(dq, e);
    dq->n_inflight++;
}

static lt_err make_delayed(lt_dq *dq, lt_dq_ent *e, int64_t due)
{
    e->when = due;
    e->state = LT_DQ_DELAYED;
    return heap_push(&dq->delayed, &dq->n_delayed, &dq->cap_delayed, e, delayed_less);
}

static lt_err make_ready(lt_dq *dq, lt_dq_ent *e)
{
    e->state = LT_DQ_READY;
    return heap_push(&dq->ready, &dq->n_ready, &dq->cap_ready, e, ready_less);
}

/* DELAYED entries due by now become READY. On allocation failure they stay DELAYED (and
 * are retried at the next call). */
size_t lt_dq_promote(lt_dq *dq, int64_t now)
{
    size_t n = 0;
    while (dq->n_delayed > 0 && dq->delayed[0]->when <= now) {
        lt_dq_ent *e = dq->delayed[0];
        if (dq->n_ready == dq->cap_ready) {
            size_t ncap = dq->cap_ready ? dq->cap_ready * 2 : 64;
            lt_dq_ent **nh = realloc(dq->ready, ncap * sizeof *nh);
            if (!nh)
                return n;
            dq->ready = nh;
            dq->cap_ready = ncap;
        }
        heap_remove(dq->delayed, &dq->n_delayed, e, delayed_less);
        (void)make_ready(dq, e); /* room reserved above: cannot fail */
        n++;
    }
    return n;
}

void lt_dq_init(lt_dq *dq, const lt_dq_cfg *cfg, uint64_t cursor)
{
    memset(dq, 0, sizeof *dq);
    dq->cfg = *cfg;
    if (dq->cfg.nbackoff > LT_DQ_BACKOFF_MAX)
        dq->cfg.nbackoff = LT_DQ_BACKOFF_MAX;
    dq->cursor = cursor;
}

void lt_dq_fini(lt_dq *dq)
{
    while (dq->chunks) {
        lt_dq_chunk *c = dq->chunks;
        dq->chunks = c->next;
        free(c);
    }
    free(dq->tab);
    free(dq->delayed);
    free(dq->ready);
    memset(dq, 0, sizeof *dq);
}

void lt_dq_set_cfg(lt_dq *dq, const lt_dq_cfg *cfg)
{
    dq->cfg = *cfg;
    if (dq->cfg.nbackoff > LT_DQ_BACKOFF_MAX)
        dq->cfg.nbackoff = LT_DQ_BACKOFF_MAX;
}

uint32_t lt_dq_backoff(const lt_dq *dq, uint32_t count)
{
    if (dq->cfg.nbackoff == 0 || count == 0)
        return 0;
    uint32_t i = count - 1;
    if (i >= dq->cfg.nbackoff)
        i = dq->cfg.nbackoff - 1;
    return dq->cfg.backoff_ms[i];
}

static size_t room(const lt_dq *dq)
{
    if (dq->cfg.max_ack_pending == 0)
        return SIZE_MAX;
    if (dq->n_inflight >= dq->cfg.max_ack_pending)
        return 0;
    return dq->cfg.max_ack_pending - dq->n_inflight;
}

lt_dq_pick_kind lt_dq_pick(lt_dq *dq, int64_t now, uint64_t *seq, uint32_t *count, size_t *room_out)
{
    size_t r = room(dq);
    if (r == 0)
        return LT_DQ_NONE;
    lt_dq_promote(dq, now);
    if (dq->n_ready > 0) {
        lt_dq_ent *e = dq->ready[0];
        detach(dq, e);
        e->state = LT_DQ_PICKED;
        dq->n_inflight++;
        *seq = e->seq;
        *count = e->count;
        return LT_DQ_REDELIVER;
    }
    *room_out = r;
    return LT_DQ_NEW;
}

lt_err lt_dq_sent(lt_dq *dq, uint64_t seq, int64_t now)
{
    lt_dq_ent *e = hget(dq, seq);
    if (!e || e->state != LT_DQ_PICKED)
        return LT_ENOTFOUND;
    dq->n_inflight--;
    make_inflight(dq, e, now);
    return LT_OK;
}

lt_err lt_dq_pick_new(lt_dq *dq, uint64_t seq, uint32_t prev_count)
{
    if (seq <= dq->cursor)
        return LT_EINVAL;
    lt_dq_ent *e = ent_new(dq, seq);
    if (!e)
        return LT_ENOMEM;
    e->count = prev_count;
    e->state = LT_DQ_PICKED;
    dq->n_inflight++;
    dq->cursor = seq;
    return LT_OK;
}

lt_err lt_dq_unpick(lt_dq *dq, uint64_t seq)
{
    lt_dq_ent *e = hget(dq, seq);
    if (!e || e->state != LT_DQ_PICKED)
        return LT_ENOTFOUND;
    detach(dq, e);
    if (make_ready(dq, e) != LT_OK) {
        ent_free(dq, e); /* no memory: it stays pending in the store, delivered after a restart */
        return LT_ENOMEM;
    }
    return LT_OK;
}

lt_err lt_dq_sent_new(lt_dq *dq, uint64_t seq, uint32_t prev_count, int64_t now)
{
    if (seq <= dq->cursor)
        return LT_EINVAL;
    lt_dq_ent *e = ent_new(dq, seq);
    if (!e)
        return LT_ENOMEM;
    e->count = prev_count;
    make_inflight(dq, e, now);
    dq->cursor = seq;
    return LT_OK;
}

lt_err lt_dq_defer_new(lt_dq *dq, uint64_t seq, uint32_t prev_count, int64_t not_before)
{
    if (seq <= dq->cursor)
        return LT_EINVAL;
    lt_dq_ent *e = ent_new(dq, seq);
    if (!e)
        return LT_ENOMEM;
    e->count = prev_count;
    if (make_delayed(dq, e, not_before) != LT_OK) {
        e->state = 0;
        ent_free(dq, e);
        return LT_ENOMEM;
    }
    dq->cursor = seq;
    return LT_OK;
}

lt_err lt_dq_pass(lt_dq *dq, uint64_t seq)
{
    if (seq <= dq->cursor)
        return LT_EINVAL;
    dq->cursor = seq;
    return LT_OK;
}

lt_err lt_dq_add_ready(lt_dq *dq, uint64_t seq, uint32_t prev_count)
{
    if (seq > dq->cursor)
        return LT_OK;
    if (hget(dq, seq))
        return LT_EEXIST;
    lt_dq_ent *e = ent_new(dq, seq);
    if (!e)
        return LT_ENOMEM;
    e->count = prev_count;
    if (make_ready(dq, e) != LT_OK) {
        e->state = 0;
        ent_free(dq, e);
        return LT_ENOMEM;
    }
    return LT_OK;
}

bool lt_dq_forget(lt_dq *dq, uint64_t seq)
{
    lt_dq_ent *e = hget(dq, seq);
    if (!e)
        return false;
    detach(dq, e);
    ent_free(dq, e);
    return true;
}

bool lt_dq_ack(lt_dq *dq, uint64_t seq)
{
    return lt_dq_forget(dq, seq);
}

/* After a failed delivery (nak or expiry) of e, which has been detached: either dead or
 * delayed until due. */
static lt_dq_verdict retry_or_die(lt_dq *dq, lt_dq_ent *e, uint32_t delay_ms, int64_t now,
                                  int64_t *due)
{
    if (dq->cfg.max_deliver > 0 && e->count >= dq->cfg.max_deliver) {
        ent_free(dq, e);
        return LT_DQ_DEAD;
    }
    int64_t d = now + (int64_t)delay_ms;
    if (make_delayed(dq, e, d) != LT_OK) {
        /* No memory for the heap: let the entry fall back to "in the store past nothing
         * we know". It stays pending in the store and is found again after a restart;
         * meanwhile keep it in flight with a fresh deadline so it is retried. */
        e->count--; /* make_inflight counts a delivery; this is not one */
        make_inflight(dq, e, d);
    }
    *due = d;
    return LT_DQ_RETRY;
}

lt_dq_verdict lt_dq_nak(lt_dq *dq, uint64_t seq, uint32_t delay_ms, int64_t now, uint32_t *count,
                        int64_t *due)
{
    lt_dq_ent *e = hget(dq, seq);
    if (!e || e->state != LT_DQ_INFLIGHT)
        return LT_DQ_IGNORED;
    detach(dq, e);
    *count = e->count;
    if (delay_ms == 0)
        delay_ms = lt_dq_backoff(dq, e->count);
    return retry_or_die(dq, e, delay_ms, now, due);
}

size_t lt_dq_expire(lt_dq *dq, int64_t now, lt_dq_expired_fn fn, void *arg)
{
    size_t n = 0;
    while (dq->if_head && dq->if_head->when <= now) {
        lt_dq_ent *e = dq->if_head;
        detach(dq, e);
        uint64_t seq = e->seq;
        uint32_t count = e->count;
        int64_t due = 0;
        lt_dq_verdict v = retry_or_die(dq, e, lt_dq_backoff(dq, count), now, &due);
        n++;
        if (fn)
            fn(arg, v, seq, count, due);
    }
    return n;
}

int64_t lt_dq_next_deadline(const lt_dq *dq)
{
    int64_t t = INT64_MAX;
    if (dq->if_head)
        t = dq->if_head->when;
    if (dq->n_delayed > 0 && dq->delayed[0]->when < t)
        t = dq->delayed[0]->when;
    return t;
}

int64_t lt_dq_wake_at(lt_dq *dq, int64_t now, bool has_credit)
{
    /* Due delayed entries become ready here: they wait for credit, not for time, and a
     * deadline left in the past would fire the timer at once, forever. But one that became
     * ready after the pump's last pick (its `now` is older than ours) has nothing else to
     * send it while the consumer stays silent: wake at once for it. */
    size_t promoted = lt_dq_promote(dq, now);
    if (promoted > 0 && has_credit && room(dq) > 0)
        return now;
    return lt_dq_next_deadline(dq);
}

int lt_dq_state_of(const lt_dq *dq, uint64_t seq, uint32_t *count)
{
    const lt_dq_ent *e = hget(dq, seq);
    if (!e)
        return 0;
    if (count)
        *count = e->count;
    return e->state;
}

size_t lt_dq_inflight(const lt_dq *dq)
{
    return dq->n_inflight;
}

size_t lt_dq_waiting(const lt_dq *dq)
{
    return dq->n_delayed + dq->n_ready;
}
