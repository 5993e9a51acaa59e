/*
 * delivery_int.h - the delivery state machine of one queue (its body: delivery_dq.c), without
 * sockets or store:
 * what is in flight and until when, what waits to be redelivered and from when, when a
 * message has used up its deliveries. delivery.c drives it from the loop thread (reading
 * envelopes from the store, sending DELIVER frames, posting acks/naks/DLQ moves to the
 * committer); tests drive it with explicit times.
 *
 * Messages are named by their store seq. A message the machine knows is in exactly one of
 * three states:
 *
 *     (store, seq > cursor) --sent_new--> INFLIGHT --ack--> (forgotten; caller acks store)
 *     (store, seq > cursor) --pick_new--> PICKED --sent--> INFLIGHT
 *                                            |  ^
 *                         nak / ack_wait     |  |  sent (after pick)
 *                         expiry, count <    v  |
 *                         max_deliver     DELAYED --due--> READY
 *                                            |
 *                 count == max_deliver  ---> DEAD (forgotten; caller dead-letters it)
 *
 * Messages the machine does not know are either acked, or still in the store past the
 * cursor (never delivered since the broker started): the caller reads those in seq order
 * with lt_store_pending(after = cursor). Redeliveries (READY) go before new messages, in
 * seq order. Memory is O(messages in flight or waiting), never O(backlog).
 *
 * Ack deadlines: ack_wait is one value per queue and time only moves forward, so in-flight
 * entries are kept in a list in deadline order (append at the tail, expire from the head),
 * and the caller needs one timer per queue: lt_dq_next_deadline().
 *
 * Times are milliseconds since the Unix epoch (the store keeps not_before_ms in the same
 * clock across restarts). Not thread-safe: one thread (the loop) owns an lt_dq.
 */
#ifndef LT_BROKER_DELIVERY_INT_H
#define LT_BROKER_DELIVERY_INT_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_DQ_BACKOFF_MAX 16

typedef struct lt_dq_cfg {
    uint32_t ack_wait_ms;                   /* an unacked delivery is redelivered after this */
    uint32_t max_deliver;                   /* deliveries before dead-lettering; 0 = unlimited */
    uint32_t max_ack_pending;               /* deliveries in flight at most; 0 = unlimited */
    uint32_t backoff_ms[LT_DQ_BACKOFF_MAX]; /* delay before the 2nd, 3rd... delivery */
    uint32_t nbackoff;                      /* 0 = redeliver at once */
} lt_dq_cfg;

enum lt_dq_state { LT_DQ_INFLIGHT = 1, LT_DQ_DELAYED = 2, LT_DQ_READY = 3, LT_DQ_PICKED = 4 };

typedef struct lt_dq_ent {
    uint64_t seq;
    int64_t when;   /* INFLIGHT: ack deadline; DELAYED: due time */
    uint32_t count; /* deliveries so far */
    uint8_t state;
    uint32_t hidx;                 /* index in the DELAYED or READY heap */
    struct lt_dq_ent *prev, *next; /* INFLIGHT list in deadline order; free list */
} lt_dq_ent;

typedef struct lt_dq_chunk lt_dq_chunk;

typedef struct lt_dq {
    lt_dq_cfg cfg;
    uint64_t cursor; /* every pending seq <= cursor is known here or was acked */
    /* seq -> entry, open addressing with linear probing */
    lt_dq_ent **tab;
    size_t tab_cap, tab_n;
    /* INFLIGHT, oldest deadline first */
    lt_dq_ent *if_head, *if_tail;
    size_t n_inflight; /* INFLIGHT + PICKED */
    /* DELAYED by (due, seq); READY by seq */
    lt_dq_ent **delayed, **ready;
    size_t n_delayed, cap_delayed, n_ready, cap_ready;
    /* entry pool: entries are recycled, never freed one by one */
    lt_dq_ent *free;
    lt_dq_chunk *chunks;
} lt_dq;

/* Set up dq with cfg (copied) and cursor (the last seq already handed out; 0 on a fresh
 * queue). Allocates nothing yet. */
void lt_dq_init(lt_dq *dq, const lt_dq_cfg *cfg, uint64_t cursor);

/* Free everything dq holds. dq may be re-initialized after. */
void lt_dq_fini(lt_dq *dq);

/* Change the limits (SIGHUP); entries keep their times. */
void lt_dq_set_cfg(lt_dq *dq, const lt_dq_cfg *cfg);

typedef enum lt_dq_pick_kind {
    LT_DQ_NONE = 0,  /* nothing to send now (nothing ready, or max_ack_pending reached) */
    LT_DQ_REDELIVER, /* *seq is a known message due again: read it, send it, lt_dq_sent */
    LT_DQ_NEW,       /* read the store's pending entries after dq->cursor, at most *room */
} lt_dq_pick_kind;

/* What to send next at time now. REDELIVER: the entry moves to PICKED (counted in flight)
 * and *seq / *count (deliveries so far) are set: the caller must then call lt_dq_sent or
 * lt_dq_forget for it. NEW: *room = how many more may go in flight (>= 1). */
lt_dq_pick_kind lt_dq_pick(lt_dq *dq, int64_t now, uint64_t *seq, uint32_t *count, size_t *room);

/* A PICKED seq was sent at now: INFLIGHT, count + 1, deadline now + ack_wait.
 * LT_ENOTFOUND if seq is not PICKED. */
lt_err lt_dq_sent(lt_dq *dq, uint64_t seq, int64_t now);

/* A store entry past the cursor (seq > cursor) with prev_count deliveries recorded is
 * picked for a delivery: PICKED (counted in flight, no deadline yet) with count prev_count;
 * the cursor moves to seq. The caller then calls lt_dq_sent (sent: count + 1) or
 * lt_dq_unpick. LT_EINVAL if seq <= cursor; LT_ENOMEM. */
lt_err lt_dq_pick_new(lt_dq *dq, uint64_t seq, uint32_t prev_count);

/* A PICKED seq was not sent after all: READY again, count unchanged. LT_ENOTFOUND if seq is
 * not PICKED; LT_ENOMEM (then the machine forgot it: the store still has it pending). */
lt_err lt_dq_unpick(lt_dq *dq, uint64_t seq);

/* A store entry past the cursor (seq > cursor) with prev_count deliveries recorded:
 *  - not_before <= now: it was sent at now: INFLIGHT with count prev_count + 1;
 *  - not_before > now: DELAYED until not_before (nothing sent).
 * Advances the cursor to seq. LT_EINVAL if seq <= cursor; LT_ENOMEM. */
lt_err lt_dq_sent_new(lt_dq *dq, uint64_t seq, uint32_t prev_count, int64_t now);
lt_err lt_dq_defer_new(lt_dq *dq, uint64_t seq, uint32_t prev_count, int64_t not_before);

/* A store entry past the cursor that is not the machine's to send (a scheduled one: the
 * schedule hands it back with lt_dq_add_ready when due): only advances the cursor to seq.
 * LT_EINVAL if seq <= cursor. */
lt_err lt_dq_pass(lt_dq *dq, uint64_t seq);

/* A seq at or before the cursor re-entered the queue (requeued from the DLQ): READY with
 * count prev_count. LT_EEXIST if known; LT_ENOMEM. A seq past the cursor needs nothing
 * (the store read will find it): LT_OK. */
lt_err lt_dq_add_ready(lt_dq *dq, uint64_t seq, uint32_t prev_count);

/* Forget seq whatever its state (the store no longer holds it pending, or it was acked).
 * True if it was known. */
bool lt_dq_forget(lt_dq *dq, uint64_t seq);

/* Consumer acked seq: forget it. True if it was known (INFLIGHT, DELAYED or READY): the
 * caller acks it in the store. False: unknown (a stale or bogus ack), ignore it. */
bool lt_dq_ack(lt_dq *dq, uint64_t seq);

typedef enum lt_dq_verdict {
    LT_DQ_IGNORED = 0, /* not in flight: nothing done */
    LT_DQ_RETRY,       /* DELAYED until *due; persist (count, due) */
    LT_DQ_DEAD,        /* max_deliver reached: forgotten; caller dead-letters it */
} lt_dq_verdict;

/* Consumer refused in-flight seq: redeliver after delay_ms, or (delay_ms 0) after the
 * backoff for its count. *count = deliveries so far; *due set on RETRY. */
lt_dq_verdict lt_dq_nak(lt_dq *dq, uint64_t seq, uint32_t delay_ms, int64_t now, uint32_t *count,
                        int64_t *due);

/* Called for each in-flight entry whose ack_wait passed, with its verdict (RETRY or
 * DEAD), seq, count and due time (RETRY). */
typedef void (*lt_dq_expired_fn)(void *arg, lt_dq_verdict v, uint64_t seq, uint32_t count,
                                 int64_t due);

/* Expire every in-flight entry whose deadline is <= now. Returns how many expired. */
size_t lt_dq_expire(lt_dq *dq, int64_t now, lt_dq_expired_fn fn, void *arg);

/* Earliest time something happens by itself (an ack deadline or a delayed entry becoming
 * ready), INT64_MAX if none. */
int64_t lt_dq_next_deadline(const lt_dq *dq);
/* Make every delayed redelivery due by now ready (lt_dq_pick does it too). After it,
 * lt_dq_next_deadline is never a due delayed entry's time, whether or not anyone has credit. */
size_t lt_dq_promote(lt_dq *dq, int64_t now); /* returns how many became ready */

/* When the queue's one timer must fire next, at now: due delayed entries are made ready
 * first; if any became ready and a consumer has credit (has_credit) and max_ack_pending
 * leaves room, now (send them: the caller's last pick may have run with an older now);
 * else lt_dq_next_deadline. */
int64_t lt_dq_wake_at(lt_dq *dq, int64_t now, bool has_credit);

/* Delay before the delivery after the count-th one (backoff list, last value repeated). */
uint32_t lt_dq_backoff(const lt_dq *dq, uint32_t count);

/* State of seq (LT_DQ_INFLIGHT...), or 0 if unknown. *count (may be NULL) set if known. */
int lt_dq_state_of(const lt_dq *dq, uint64_t seq, uint32_t *count);

size_t lt_dq_inflight(const lt_dq *dq);
size_t lt_dq_waiting(const lt_dq *dq); /* DELAYED + READY */

#endif
