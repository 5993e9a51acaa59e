/*
 * dossier.h - procedures at work in the broker: a DossierStatusEvent published on a
 * procedure's topic is checked against the dossier's state in the store, in the
 * committer's write transaction, and refused PROCEDURE_VIOLATION when it is out of order;
 * the admin API traces dossiers and lists the late ones.
 *
 *   verifier thread   lt_dossier_inspect: decode the event (the payload was already checked
 *                     as its record type), find its procedure; refusals that need no
 *                     state (unknown procedure, a topic the procedure does not use) here
 *   commit thread     lt_dossier_gate before the append (reads the state in the open batch,
 *                     so two events of one dossier in one batch are judged in order; a
 *                     resend is left to dedup), lt_dossier_record after it (writes the new
 *                     state, the event and the deadline in the same batch)
 *   loop thread       the admin provider's calls (each one short read transaction)
 *
 * The procedures, the calendar and the store's dossier databases exist only when
 * broker.yaml has `procedures:`; without it every call here is a no-op (admin: 404).
 */
#ifndef LT_BROKER_DOSSIER_H
#define LT_BROKER_DOSSIER_H

#include "broker_config.h"
#include "envelope.h"
#include "err.h"
#include "procedure.h"
#include "store.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lt_broker lt_broker;
typedef struct lt_slot lt_slot;

#define LT_DOSSIER_RECORD_TYPE "lienthong.v1.records.DossierStatusEvent"

/* A slot's dossier event: filled by the verifier, judged by the committer. Kept with its
 * slot (allocated once, reused) and freed with the ring. */
typedef struct lt_dossier_slot {
    bool on;                                /* this publish is a dossier event to judge */
    char code[LT_PROC_DOSSIER_MAX + 1];
    const lt_proc *proc;
    unsigned status;
    int64_t at_ms;
    /* committer: the verdict between gate and record */
    bool judged, had_prev;
    lt_dossier_state prev, next;
} lt_dossier_slot;

/* Load cfg's procedures and calendar and open the store's dossier databases (before the
 * commit thread starts). No `procedures:`: nothing to do. LT_ECONFIG with the file, line
 * and reason; LT_EIO; LT_ESTORE. Logs what was loaded, and warns when the calendar does not
 * cover the current year. */
lt_err lt_dossier_open(lt_broker *b, lt_why *why);
void lt_dossier_close(lt_broker *b);

/* Read cfg's procedures and calendar without starting anything (lienthongd --check). */
lt_err lt_dossier_check_config(const lt_broker_cfg *cfg, lt_why *why);

/* Verifier: env passed every check and routes somewhere. When it is a DossierStatusEvent on
 * a procedure's topic, note it in s->dossier. LT_EPROCEDURE: no dossier code, a procedure
 * this broker does not define or that does not travel on this topic, an event time ahead of
 * now by more than the clock skew; LT_ENOMEM. */
lt_err lt_dossier_inspect(lt_broker *b, lt_slot *s, const lt_env *env, int64_t now_ms,
                          lt_why *why);

/* Committer, in the open batch, before s is appended: may its event move its dossier?
 * LT_OK (the verdict is kept for lt_dossier_record; a resend of an event already stored is
 * let through for dedup to ack); LT_EPROCEDURE with the reason; LT_ESTORE (the batch
 * failed). Not a dossier event: LT_OK. */
lt_err lt_dossier_gate(lt_broker *b, lt_slot *s, const lt_store_msgkey *key, int64_t now_ms,
                       lt_why *why);

/* Committer, after the append of s: when it was appended (s->err LT_OK, not a duplicate) at
 * s->seq, write the verdict of lt_dossier_gate; otherwise drop it. A failure fails the batch
 * (the store says so at commit). */
void lt_dossier_record(lt_broker *b, lt_slot *s, int64_t now_ms);

/* Admin provider: GET /api/v1/dossiers/<code>: the dossier's state, its steps (how long each
 * took against its allowance) and its first limit events (envelopes base64; more:
 * "events_truncated": true, the loop thread builds no unbounded answer). LT_ENOTFOUND (404). */
lt_err lt_dossier_admin_get(void *ctx, const char *code, size_t limit, json_object **out,
                            lt_why *why);
/* GET /api/v1/dossiers?late=1[&within_h=N]: open dossiers whose step is late, or due within
 * N hours (default 24), by agency. */
lt_err lt_dossier_admin_due(void *ctx, int64_t within_ms, size_t limit, json_object **out,
                            lt_why *why);

#endif
