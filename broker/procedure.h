/*
 * procedure.h - one-stop procedures as data: which agency does each step of a procedure,
 * which dossier statuses each step may publish, which steps may follow, and how long each
 * step may take in WORKING time (a calendar of weekends, public holidays and compensatory
 * working days, also data). Formats: docs/procedures.md.
 *
 * Pure: nothing here touches the store, the network or the clock. The broker loads a
 * procedure set at start (broker.yaml `procedures:` and `calendar:`), and its committer asks
 * lt_proc_advance whether an incoming DossierStatusEvent may move a dossier from the state
 * the store holds (store_dossier.c) to a new one.
 *
 * The dossier statuses are the national public-service portal's TrangThaiHoSo 1..10
 * (proto/lienthong/v1/records/dossier.proto DossierStatus). Which status may follow which
 * is the portal's life cycle by default (see LT_PROC_DEFAULT_FOLLOWS in procedure.c and
 * docs/procedures.md); a procedure may replace the table with its own `follows:`.
 *
 * Times are milliseconds since the Unix epoch; days are the calendar's local days (its
 * utc_offset, +07:00 for Vietnam, which has no daylight saving time).
 *
 * Threads: a loaded lt_calendar and lt_procset are immutable: read them from any thread.
 */
#ifndef LT_BROKER_PROCEDURE_H
#define LT_BROKER_PROCEDURE_H

#include "agency.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_PROC_CODE_MAX 64        /* bytes of a procedure code (MaTTHC, "1.001193") */
#define LT_PROC_STEP_ID_MAX 48     /* bytes of a step id ([a-z0-9_]) */
#define LT_PROC_DOSSIER_MAX 100    /* bytes of a dossier code (MaHoSo) */
#define LT_PROC_STATUS_MAX 10      /* statuses are 1..10 */
#define LT_PROC_MAX_STEPS 64       /* steps of one procedure */
#define LT_PROC_MAX_PROCEDURES 1024
#define LT_PROC_MAX_HOLIDAYS 4096  /* holiday and compensatory-workday dates of a calendar */

/* ---- calendar -------------------------------------------------------------------------- */

typedef struct lt_calendar lt_calendar;

/* A step's time allowance: working days, or working hours (office hours of working days).
 * Both zero: no allowance (the step has no deadline). */
typedef struct lt_allowance {
    uint32_t days;
    uint32_t hours;
} lt_allowance;

/* The default calendar: Saturday and Sunday off, no holidays, office hours 07:30-11:30 and
 * 13:00-17:00 at UTC+07:00. *out owned by the caller. LT_ENOMEM. */
lt_err lt_calendar_new_default(lt_calendar **out);

/* Read a calendar file (YAML, docs/procedures.md). LT_EIO: unreadable; LT_ECONFIG:
 * "file:line: key: reason" (a date that is not a date, a range backwards or longer than
 * 31 days, a date listed twice, a holiday that is also a workday, office hours out of
 * order...); LT_ENOMEM. */
lt_err lt_calendar_load(const char *path, lt_calendar **out, lt_why *why);
/* As lt_calendar_load, from memory (label names it in messages). */
lt_err lt_calendar_parse(const char *label, const char *text, size_t len, lt_calendar **out,
                         lt_why *why);
void lt_calendar_destroy(lt_calendar **c); /* accepts NULL; clears *c */

/* The calendar's name ("" when it has none) and the first and last year its holidays are
 * given for (0, 0 for the default calendar). */
const char *lt_calendar_name(const lt_calendar *c);
void lt_calendar_years(const lt_calendar *c, int *first, int *last);

/* Is the local day holding ms a working day? */
bool lt_calendar_is_working_day(const lt_calendar *c, int64_t ms);

/* When a step that began at start_ms with allowance a is due:
 *   days:  the end of office hours of the a.days-th working day AFTER the day of start_ms
 *          (the day a dossier arrives does not count, as the one-stop desks count; a 0-day
 *          allowance ends with the office hours of the first working day from start's);
 *   hours: after a.hours hours of office time of working days, from start_ms on.
 * No allowance: INT64_MAX. A calendar with no working day for ten years ahead: INT64_MAX. */
int64_t lt_calendar_deadline(const lt_calendar *c, int64_t start_ms, lt_allowance a);

/* Working days d with day(from_ms) < d <= day(to_ms) (0 when to <= from): how many working
 * days a step that began at from_ms and ended at to_ms used, counted as its allowance is. */
uint32_t lt_calendar_working_days(const lt_calendar *c, int64_t from_ms, int64_t to_ms);

/* Office time (ms) of working days between from_ms and to_ms. */
int64_t lt_calendar_working_ms(const lt_calendar *c, int64_t from_ms, int64_t to_ms);

/* Parse "YYYY-MM-DD" into the day number since 1970-01-01 (proleptic Gregorian). */
bool lt_calendar_parse_date(const char *s, int64_t *day);

/* ---- procedures ------------------------------------------------------------------------ */

/* One step of a procedure. Read-only after load. */
typedef struct lt_proc_step {
    char *id;              /* unique within the procedure, [a-z0-9_], 1..LT_PROC_STEP_ID_MAX */
    char *name;            /* what people read */
    char **agencies;       /* agency id patterns: '*' matches any run of characters */
    size_t nagencies;
    uint16_t statuses;     /* bit s: status s (1..10) may be published in this step */
    uint16_t done;         /* bit s: the step is finished at status s: a next step may begin */
    lt_allowance allowance;
    size_t *next;          /* indexes of the steps that may follow it */
    size_t nnext;
    bool start;            /* a dossier may begin here */
} lt_proc_step;

/* One procedure. Read-only after load. */
typedef struct lt_proc {
    char *code;            /* MaTTHC, e.g. "1.001193" */
    char *name;
    char *file;            /* the file it came from */
    char **topics;         /* topic patterns its DossierStatusEvents travel on */
    size_t ntopics;
    lt_proc_step *steps;
    size_t nsteps;
    uint16_t follows[LT_PROC_STATUS_MAX + 1]; /* follows[x] bit y: status y may follow x;
                                                 follows[0]: the first status of a dossier */
} lt_proc;

typedef struct lt_procset lt_procset;

/* An empty set using calendar *cal_p (taken: *cal_p is cleared; NULL: the default
 * calendar). LT_ENOMEM. */
lt_err lt_procset_new(lt_calendar **cal_p, lt_procset **out);
void lt_procset_destroy(lt_procset **ps); /* accepts NULL; clears *ps */

/* Add the procedure in file path, or every *.yaml / *.yml file of directory path (in name
 * order). LT_EIO; LT_ECONFIG with "file:line: key: reason": an unknown key, a missing step,
 * a `next` naming no step, a status out of 1..10, a `done` status the step cannot publish,
 * a step no start reaches, a procedure code already loaded, an agency pattern with a space
 * or a control byte...; LT_ENOMEM. On error the set is unchanged (a directory: all or
 * nothing). */
lt_err lt_procset_add_path(lt_procset *ps, const char *path, lt_why *why);
/* As lt_procset_add_path for one file's text (label names it). */
lt_err lt_procset_add_text(lt_procset *ps, const char *label, const char *text, size_t len,
                           lt_why *why);

const lt_calendar *lt_procset_calendar(const lt_procset *ps);
size_t lt_procset_count(const lt_procset *ps);
const lt_proc *lt_procset_at(const lt_procset *ps, size_t i);
/* The procedure with this code, or NULL. */
const lt_proc *lt_procset_find(const lt_procset *ps, const char *code);
/* Does any procedure's topic pattern match topic? (Only events on such topics are
 * checked.) */
bool lt_procset_covers_topic(const lt_procset *ps, const char *topic);

/* The step of p with this id, or NULL (its index in *idx when idx is not NULL). */
const lt_proc_step *lt_proc_step_find(const lt_proc *p, const char *id, size_t *idx);

/* Does agency id match pattern ('*': any run of characters, including none)? */
bool lt_proc_agency_matches(const char *pattern, const char *agency);

/* The portal's name of a status ("Đang xử lý"), "?" outside 1..10. */
const char *lt_proc_status_name(unsigned status);

/* ---- a dossier's way through its procedure -------------------------------------------- */

/* Where a dossier stands. A plain value (the store keeps it: store_dossier.c). */
typedef struct lt_dossier_state {
    char procedure[LT_PROC_CODE_MAX + 1];
    char step[LT_PROC_STEP_ID_MAX + 1];
    uint8_t status;                   /* the last status published, 1..10 */
    char agency[LT_AGENCY_ID_MAX];    /* who published it */
    int64_t started_ms;               /* the dossier's first event */
    int64_t step_started_ms;          /* the first event of the current step */
    int64_t step_deadline_ms;         /* when the current step is due (INT64_MAX: no limit) */
    int64_t last_event_ms;            /* the last event's time */
    uint64_t last_seq;                /* the store's seq of the last event */
    uint32_t nevents;
    bool closed;                      /* the last status lets nothing follow */
} lt_dossier_state;

/* An incoming event; strings borrowed. */
typedef struct lt_dossier_event {
    const char *dossier_code;         /* DossierStatusEvent.dossier_code */
    const char *procedure_code;       /* DossierStatusEvent.procedure_code */
    const char *agency;               /* the verified signing (source) agency */
    unsigned status;                  /* DossierStatusEvent.status */
    int64_t at_ms;                    /* when it happened */
} lt_dossier_event;

/* May ev move the dossier from cur (NULL: the store knows no such dossier) under procedure
 * p? On LT_OK *next is the new state: the same step with the new status, or the next step
 * (its step_started_ms = ev->at_ms and its deadline from the calendar); last_seq and
 * nevents are the caller's to set. LT_EPROCEDURE with a reason naming the dossier, the step
 * it is at, what may come (which statuses, from which agencies, which next steps) and what
 * came: a status that cannot follow, a step by another agency, a closed dossier, an event
 * older than the dossier's last one, a dossier of another procedure, a first event that
 * starts no step. *next untouched on error. */
lt_err lt_proc_advance(const lt_procset *ps, const lt_proc *p, const lt_dossier_state *cur,
                       const lt_dossier_event *ev, lt_dossier_state *next, lt_why *why);

#endif
