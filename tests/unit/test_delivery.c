/* test_delivery.c - the per-queue delivery state machine: in flight, ack_wait, nak, backoff,
 * max_deliver, redelivery order, requeue; driven with explicit times, no sockets. */
#include "delivery_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static lt_dq_cfg cfg_default(void)
{
    lt_dq_cfg c;
    memset(&c, 0, sizeof c);
    c.ack_wait_ms = 30000;
    c.max_deliver = 3;
    c.max_ack_pending = 1000;
    c.backoff_ms[0] = 1000;
    c.backoff_ms[1] = 5000;
    c.nbackoff = 2;
    return c;
}

struct expired {
    size_t n;
    lt_dq_verdict v[64];
    uint64_t seq[64];
    uint32_t count[64];
    int64_t due[64];
};

static void on_expired(void *arg, lt_dq_verdict v, uint64_t seq, uint32_t count, int64_t due)
{
    struct expired *x = arg;
    assert_true(x->n < 64);
    x->v[x->n] = v;
    x->seq[x->n] = seq;
    x->count[x->n] = count;
    x->due[x->n] = due;
    x->n++;
}

/* Deliver every new seq in [from, to] at now, as delivery.c does after a store read. */
static void send_new(lt_dq *dq, uint64_t from, uint64_t to, int64_t now)
{
    for (uint64_t s = from; s <= to; s++)
        assert_int_equal(lt_dq_sent_new(dq, s, 0, now), LT_OK);
}

static void new_messages_go_in_flight_and_ack_forgets_them(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    uint64_t seq;
    uint32_t count;
    size_t room = 0;
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_NEW);
    assert_int_equal(room, 1000);
    send_new(&dq, 1, 10, 0);
    assert_int_equal(lt_dq_inflight(&dq), 10);
    assert_int_equal(dq.cursor, 10);
    assert_int_equal(lt_dq_state_of(&dq, 5, &count), LT_DQ_INFLIGHT);
    assert_int_equal(count, 1);
    assert_true(lt_dq_ack(&dq, 5));
    assert_false(lt_dq_ack(&dq, 5));
    assert_false(lt_dq_ack(&dq, 11));
    assert_int_equal(lt_dq_inflight(&dq), 9);
    assert_int_equal(lt_dq_next_deadline(&dq), 30000);
    lt_dq_fini(&dq);
}

static void max_ack_pending_stops_picking(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    c.max_ack_pending = 4;
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    uint64_t seq;
    uint32_t count;
    size_t room = 0;
    send_new(&dq, 1, 3, 0);
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_NEW);
    assert_int_equal(room, 1);
    send_new(&dq, 4, 4, 0);
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_NONE);
    assert_true(lt_dq_ack(&dq, 2));
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_NEW);
    assert_int_equal(room, 1);
    lt_dq_fini(&dq);
}

static void ack_wait_expiry_delays_by_backoff_then_redelivers_in_seq_order(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 3, 100);
    struct expired x = {0};
    assert_int_equal(lt_dq_expire(&dq, 30099, on_expired, &x), 0);
    assert_int_equal(lt_dq_expire(&dq, 30100, on_expired, &x), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(x.v[i], LT_DQ_RETRY);
        assert_int_equal(x.seq[i], i + 1);
        assert_int_equal(x.count[i], 1);
        assert_int_equal(x.due[i], 30100 + 1000); /* backoff[0]: before the 2nd delivery */
    }
    assert_int_equal(lt_dq_inflight(&dq), 0);
    assert_int_equal(lt_dq_waiting(&dq), 3);
    assert_int_equal(lt_dq_next_deadline(&dq), 31100);

    uint64_t seq;
    uint32_t count;
    size_t room;
    /* not due yet: nothing to redeliver, new messages may go */
    assert_int_equal(lt_dq_pick(&dq, 31099, &seq, &count, &room), LT_DQ_NEW);
    for (uint64_t want = 1; want <= 3; want++) {
        assert_int_equal(lt_dq_pick(&dq, 31100, &seq, &count, &room), LT_DQ_REDELIVER);
        assert_int_equal(seq, want);
        assert_int_equal(count, 1);
        assert_int_equal(lt_dq_sent(&dq, seq, 31100), LT_OK);
    }
    assert_int_equal(lt_dq_state_of(&dq, 2, &count), LT_DQ_INFLIGHT);
    assert_int_equal(count, 2);
    assert_int_equal(lt_dq_next_deadline(&dq), 31100 + 30000);
    lt_dq_fini(&dq);
}

static void backoff_uses_the_last_value_past_the_list(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    assert_int_equal(lt_dq_backoff(&dq, 1), 1000);
    assert_int_equal(lt_dq_backoff(&dq, 2), 5000);
    assert_int_equal(lt_dq_backoff(&dq, 7), 5000);
    c.nbackoff = 0;
    lt_dq_set_cfg(&dq, &c);
    assert_int_equal(lt_dq_backoff(&dq, 3), 0);
    lt_dq_fini(&dq);
}

static void max_deliver_reached_by_expiry_is_dead(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    c.nbackoff = 0;
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 7, 7, 0);
    int64_t now = 0;
    uint64_t seq;
    uint32_t count;
    size_t room;
    for (uint32_t round = 1; round <= 3; round++) {
        struct expired x = {0};
        now += 30000;
        assert_int_equal(lt_dq_expire(&dq, now, on_expired, &x), 1);
        assert_int_equal(x.count[0], round);
        if (round < 3) {
            assert_int_equal(x.v[0], LT_DQ_RETRY);
            assert_int_equal(x.due[0], now); /* no backoff: at once */
            assert_int_equal(lt_dq_pick(&dq, now, &seq, &count, &room), LT_DQ_REDELIVER);
            assert_int_equal(seq, 7);
            assert_int_equal(lt_dq_sent(&dq, seq, now), LT_OK);
        } else {
            assert_int_equal(x.v[0], LT_DQ_DEAD);
        }
    }
    assert_int_equal(lt_dq_state_of(&dq, 7, NULL), 0);
    assert_int_equal(lt_dq_inflight(&dq) + lt_dq_waiting(&dq), 0);
    lt_dq_fini(&dq);
}

static void nak_with_delay_waits_that_long_and_nak_past_max_is_dead(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    c.max_deliver = 2;
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 1, 0);
    uint32_t count = 0;
    int64_t due = 0;
    assert_int_equal(lt_dq_nak(&dq, 1, 250, 10, &count, &due), LT_DQ_RETRY);
    assert_int_equal(count, 1);
    assert_int_equal(due, 260);
    /* a nak for something not in flight is ignored */
    assert_int_equal(lt_dq_nak(&dq, 1, 0, 20, &count, &due), LT_DQ_IGNORED);
    assert_int_equal(lt_dq_nak(&dq, 99, 0, 20, &count, &due), LT_DQ_IGNORED);
    uint64_t seq;
    size_t room;
    assert_int_equal(lt_dq_pick(&dq, 259, &seq, &count, &room), LT_DQ_NEW);
    assert_int_equal(lt_dq_pick(&dq, 260, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(lt_dq_sent(&dq, 1, 260), LT_OK);
    /* nak without delay uses the backoff; but this was the 2nd of max 2: dead */
    assert_int_equal(lt_dq_nak(&dq, 1, 0, 300, &count, &due), LT_DQ_DEAD);
    assert_int_equal(count, 2);
    assert_int_equal(lt_dq_state_of(&dq, 1, NULL), 0);
    lt_dq_fini(&dq);
}

/* With no consumer to pick it, a due delayed redelivery must not leave the queue's next
 * deadline in the past: the broker's timer would re-fire at once, forever. */
static void due_delayed_entries_leave_no_past_deadline_once_promoted(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 1, 0);
    uint32_t count = 0;
    int64_t due = 0;
    assert_int_equal(lt_dq_nak(&dq, 1, 250, 10, &count, &due), LT_DQ_RETRY);
    assert_int_equal(lt_dq_next_deadline(&dq), 260);
    lt_dq_promote(&dq, 259);
    assert_int_equal(lt_dq_next_deadline(&dq), 260); /* not due yet: still waiting */
    lt_dq_promote(&dq, 1000);
    assert_int_equal(lt_dq_next_deadline(&dq), INT64_MAX); /* ready: waits for credit */
    assert_int_equal(lt_dq_waiting(&dq), 1);
    uint64_t seq;
    size_t room;
    assert_int_equal(lt_dq_pick(&dq, 1000, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 1);
    lt_dq_fini(&dq);
}

/* The lost wake-up of a stale `now`: the pump picked at 259 (nothing due), the timer is
 * re-armed at 261 when the entry due at 260 is already due. It becomes ready there, and
 * nothing else (no ack, no credit: a silent consumer) would pump the queue again: the
 * timer must fire at once. Without credit it waits for credit, and does not spin. */
static void an_entry_that_falls_due_after_the_last_pick_wakes_the_queue_at_once(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 1, 0);
    uint32_t count = 0;
    int64_t due = 0;
    uint64_t seq;
    size_t room;
    assert_int_equal(lt_dq_nak(&dq, 1, 250, 10, &count, &due), LT_DQ_RETRY);
    assert_int_equal(lt_dq_pick(&dq, 259, &seq, &count, &room), LT_DQ_NEW);
    assert_int_equal(lt_dq_wake_at(&dq, 261, true), 261);
    assert_int_equal(lt_dq_pick(&dq, 261, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 1);
    lt_dq_fini(&dq);

    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 1, 0);
    assert_int_equal(lt_dq_nak(&dq, 1, 250, 10, &count, &due), LT_DQ_RETRY);
    assert_int_equal(lt_dq_wake_at(&dq, 261, false), INT64_MAX);
    assert_int_equal(lt_dq_wake_at(&dq, 262, false), INT64_MAX);
    assert_int_equal(lt_dq_waiting(&dq), 1);
    lt_dq_fini(&dq);
}

static void ack_of_a_waiting_message_removes_it(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    send_new(&dq, 1, 2, 0);
    uint32_t count;
    int64_t due;
    assert_int_equal(lt_dq_nak(&dq, 1, 100, 0, &count, &due), LT_DQ_RETRY);
    assert_int_equal(lt_dq_nak(&dq, 2, 100, 0, &count, &due), LT_DQ_RETRY);
    assert_int_equal(lt_dq_waiting(&dq), 2);
    /* a late ack of a delayed one */
    assert_true(lt_dq_ack(&dq, 1));
    uint64_t seq;
    size_t room;
    assert_int_equal(lt_dq_pick(&dq, 100, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 2);
    /* a picked one can be forgotten when the store no longer has it */
    assert_true(lt_dq_forget(&dq, 2));
    assert_int_equal(lt_dq_inflight(&dq) + lt_dq_waiting(&dq), 0);
    lt_dq_fini(&dq);
}

static void store_entries_with_a_delay_wait_until_it(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    assert_int_equal(lt_dq_defer_new(&dq, 4, 2, 5000), LT_OK);
    assert_int_equal(lt_dq_sent_new(&dq, 3, 0, 0), LT_EINVAL); /* behind the cursor */
    assert_int_equal(dq.cursor, 4);
    assert_int_equal(lt_dq_next_deadline(&dq), 5000);
    uint64_t seq;
    uint32_t count;
    size_t room;
    assert_int_equal(lt_dq_pick(&dq, 5000, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 4);
    assert_int_equal(count, 2);
    assert_int_equal(lt_dq_sent(&dq, 4, 5000), LT_OK);
    assert_int_equal(lt_dq_state_of(&dq, 4, &count), LT_DQ_INFLIGHT);
    assert_int_equal(count, 3);
    lt_dq_fini(&dq);
}

static void requeued_seq_behind_the_cursor_is_ready_before_new_ones(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    lt_dq dq;
    lt_dq_init(&dq, &c, 50);
    assert_int_equal(lt_dq_add_ready(&dq, 60, 0),
                     LT_OK); /* past the cursor: the store read finds it */
    assert_int_equal(lt_dq_waiting(&dq), 0);
    assert_int_equal(lt_dq_add_ready(&dq, 20, 0), LT_OK);
    assert_int_equal(lt_dq_add_ready(&dq, 10, 0), LT_OK);
    assert_int_equal(lt_dq_add_ready(&dq, 10, 0), LT_EEXIST);
    uint64_t seq;
    uint32_t count;
    size_t room;
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 10);
    assert_int_equal(count, 0);
    assert_int_equal(lt_dq_sent(&dq, 10, 0), LT_OK);
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_REDELIVER);
    assert_int_equal(seq, 20);
    assert_int_equal(lt_dq_sent(&dq, 20, 0), LT_OK);
    assert_int_equal(lt_dq_pick(&dq, 0, &seq, &count, &room), LT_DQ_NEW);
    lt_dq_fini(&dq);
}

/* Many entries through the hash, heaps and list, acked in a scrambled order: nothing is
 * lost or found twice (exercises growth and backward-shift deletion). */
static void many_entries_survive_growth_and_scrambled_acks(void **state)
{
    (void)state;
    lt_dq_cfg c = cfg_default();
    c.max_ack_pending = 0;
    c.max_deliver = 0;
    lt_dq dq;
    lt_dq_init(&dq, &c, 0);
    const uint64_t n = 20000;
    for (uint64_t s = 1; s <= n; s++)
        assert_int_equal(lt_dq_sent_new(&dq, s * 3, 0, (int64_t)s), LT_OK);
    /* half of them naked with varying delays */
    for (uint64_t s = 1; s <= n; s += 2) {
        uint32_t count;
        int64_t due;
        assert_int_equal(lt_dq_nak(&dq, s * 3, (uint32_t)((s * 7919) % 1000) + 1, 0, &count, &due),
                         LT_DQ_RETRY);
    }
    assert_int_equal(lt_dq_inflight(&dq), n / 2);
    assert_int_equal(lt_dq_waiting(&dq), n / 2);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t s = (i * 7001) % n + 1; /* 7001 is prime to 20000: a permutation */
        assert_true(lt_dq_ack(&dq, s * 3));
        assert_false(lt_dq_ack(&dq, s * 3 + 1));
    }
    assert_int_equal(lt_dq_inflight(&dq) + lt_dq_waiting(&dq), 0);
    assert_int_equal(dq.tab_n, 0);
    assert_int_equal(lt_dq_next_deadline(&dq), INT64_MAX);
    lt_dq_fini(&dq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_messages_go_in_flight_and_ack_forgets_them),
        cmocka_unit_test(max_ack_pending_stops_picking),
        cmocka_unit_test(ack_wait_expiry_delays_by_backoff_then_redelivers_in_seq_order),
        cmocka_unit_test(backoff_uses_the_last_value_past_the_list),
        cmocka_unit_test(max_deliver_reached_by_expiry_is_dead),
        cmocka_unit_test(nak_with_delay_waits_that_long_and_nak_past_max_is_dead),
        cmocka_unit_test(due_delayed_entries_leave_no_past_deadline_once_promoted),
        cmocka_unit_test(ack_of_a_waiting_message_removes_it),
        cmocka_unit_test(store_entries_with_a_delay_wait_until_it),
        cmocka_unit_test(requeued_seq_behind_the_cursor_is_ready_before_new_ones),
        cmocka_unit_test(many_entries_survive_growth_and_scrambled_acks),
        cmocka_unit_test(an_entry_that_falls_due_after_the_last_pick_wakes_the_queue_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
