/*
 * schedule.h - scheduled delivery: records published with a due time (Publish.
 * deliver_at_unix_ms) wait in the store's schedule (store_sched.c) and become deliverable
 * when due, across restarts and kill -9, with ONE timer for the whole broker.
 *
 *   publish(due) --committer--> qent (scheduled) + sched[due][qid][seq], ACK after fsync
 *   timer at the earliest due --> job SCHED_DUE to the committer: lt_store_sched_promote
 *   job back on the loop --> lt_dlv_on_due(qid, seq) for each, timer re-armed
 *
 * Delivery steps over scheduled entries (they cost no memory while they wait); a promoted
 * entry is handed back to it by lt_dlv_on_due. A CANCEL frame removes a record that is
 * still scheduled (only its publishing agency's session may), answered ACK/NACK once the
 * cancel is durable.
 *
 * Loop thread only; the committer runs the jobs (committer.c apply_op).
 */
#ifndef LT_BROKER_SCHEDULE_H
#define LT_BROKER_SCHEDULE_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lt_broker lt_broker;
typedef struct lt_peer lt_peer;
typedef struct lt_job lt_job;
typedef struct Lienthong__V1__Frame Lienthong__V1__Frame;

/* How many entries one SCHED_DUE job promotes at most (the next job follows at once). */
#define LT_SCHED_BATCH 4096

/* Read the earliest due time from the store and arm the timer. LT_ESTORE. */
lt_err lt_sched_start(lt_broker *b, lt_why *why);
/* Stop the timer (its handle is closed with the loop's). */
void lt_sched_stop(lt_broker *b);
/* A record scheduled for due_ms was committed: re-arm if it is the earliest. */
void lt_sched_note(lt_broker *b, int64_t due_ms);
/* The frontend's hook for CANCEL frames of an authenticated session. */
void lt_sched_on_cancel(lt_broker *b, lt_peer *p, const Lienthong__V1__Frame *f);
/* Is job one of the schedule's (SCHED_DUE, CANCEL)? */
bool lt_sched_owns_job(const lt_job *j);
/* The committer finished job (takes it): hand what became due to delivery, answer a
 * cancel, re-arm. */
void lt_sched_on_job_done(lt_broker *b, lt_job *j);

#endif
