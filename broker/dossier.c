/*
 * dossier.c - procedures at work in the broker (see dossier.h): the verifier's decode of
 * dossier events, the committer's gate and record around the append, and the admin API's
 * dossier trace and late list.
 */
#include "dossier.h"

#include "broker_int.h"

#include <lienthong/v1/records/dossier.pb-c.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the broker holds for procedures. Immutable after lt_dossier_open. */
struct lt_dossiers {
    lt_procset *procs;
};

/* A failure reading the file that config key names: LT_ECONFIG (LT_ENOMEM stays), the
 * reason prefixed with the key of broker.yaml that named the file. */
static lt_err key_fail(lt_err e, const char *key, lt_why *why)
{
    if (e == LT_ENOMEM)
        return e;
    char r[LT_WHY_MAX] = "";
    if (why)
        memcpy(r, why->msg, sizeof r - 1);
    return lt_fail(why, LT_ECONFIG, "%s: %s", key, r);
}

static lt_err load_set(const lt_broker_cfg *cfg, lt_procset **out, lt_why *why)
{
    lt_calendar *cal = NULL;
    lt_err e;
    if (cfg->calendar && (e = lt_calendar_load(cfg->calendar, &cal, why)) != LT_OK)
        return key_fail(e, "calendar", why);
    lt_procset *ps = NULL;
    if ((e = lt_procset_new(&cal, &ps)) != LT_OK) {
        lt_calendar_destroy(&cal);
        return lt_fail(why, e, "out of memory");
    }
    for (size_t i = 0; i < cfg->nprocedures; i++)
        if ((e = lt_procset_add_path(ps, cfg->procedures[i], why)) != LT_OK) {
            lt_procset_destroy(&ps);
            char key[48];
            snprintf(key, sizeof key, "procedures[%zu]", i);
            return key_fail(e, key, why);
        }
    *out = ps;
    return LT_OK;
}

/* A calendar without procedures is used by nothing, but a file that fails is still refused
 * (docs/config.md: a bad calendar stops lienthongd), not left to fail on the day procedures
 * are added. */
static lt_err check_calendar_alone(const lt_broker_cfg *cfg, lt_why *why)
{
    if (!cfg->calendar)
        return LT_OK;
    lt_calendar *cal = NULL;
    lt_err e = lt_calendar_load(cfg->calendar, &cal, why);
    lt_calendar_destroy(&cal);
    return e == LT_OK ? LT_OK : key_fail(e, "calendar", why);
}

lt_err lt_dossier_check_config(const lt_broker_cfg *cfg, lt_why *why)
{
    if (cfg->nprocedures == 0)
        return check_calendar_alone(cfg, why);
    lt_procset *ps = NULL;
    lt_err e = load_set(cfg, &ps, why);
    lt_procset_destroy(&ps);
    return e;
}

lt_err lt_dossier_open(lt_broker *b, lt_why *why)
{
    if (b->cfg->nprocedures == 0)
        return check_calendar_alone(b->cfg, why);
    struct lt_dossiers *d = calloc(1, sizeof *d);
    if (!d)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = load_set(b->cfg, &d->procs, why);
    if (e == LT_OK)
        e = lt_store_dossier_open(b->store, why);
    if (e != LT_OK) {
        lt_procset_destroy(&d->procs);
        free(d);
        return e;
    }
    b->dossiers = d;
    const lt_calendar *cal = lt_procset_calendar(d->procs);
    int first, last;
    lt_calendar_years(cal, &first, &last);
    lt_log(LT_LOG_INFO, "procedures: %zu loaded; calendar: %s", lt_procset_count(d->procs),
           b->cfg->calendar ? b->cfg->calendar : "weekends only (no calendar file)");
    time_t now = (time_t)(lt_env_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    int year = tm.tm_year + 1900;
    if (b->cfg->calendar && (year < first || year > last))
        lt_log(LT_LOG_WARN,
               "calendar %s gives holidays for %d..%d, not for %d: deadlines this year count "
               "weekends only; add the year's holidays",
               b->cfg->calendar, first, last, year);
    return LT_OK;
}

void lt_dossier_close(lt_broker *b)
{
    if (!b->dossiers)
        return;
    lt_procset_destroy(&b->dossiers->procs);
    free(b->dossiers);
    b->dossiers = NULL;
}

/* ---- verifier -------------------------------------------------------------------------- */

lt_err lt_dossier_inspect(lt_broker *b, lt_slot *s, const lt_env *env, int64_t now_ms,
                          lt_why *why)
{
    if (s->dossier)
        s->dossier->on = false;
    if (!b->dossiers || strcmp(lt_env_record_type(env), LT_DOSSIER_RECORD_TYPE) != 0 ||
        !lt_procset_covers_topic(b->dossiers->procs, lt_env_topic(env)))
        return LT_OK;
    size_t plen = 0;
    const uint8_t *payload = lt_env_payload(env, &plen);
    Lienthong__V1__Records__DossierStatusEvent *ev =
        lienthong__v1__records__dossier_status_event__unpack(NULL, plen, payload);
    if (!ev) /* lt_env_check_record decoded it already: only memory can fail here */
        return lt_fail(why, LT_ENOMEM, "cannot decode the dossier event");
    lt_err e = LT_OK;
    const char *topic = lt_env_topic(env);
    const lt_proc *p = lt_procset_find(b->dossiers->procs, ev->procedure_code);
    size_t clen = strlen(ev->dossier_code);
    int64_t at = ev->event_unix_ms > 0 ? ev->event_unix_ms : lt_env_created_ms(env);
    int64_t skew = (int64_t)b->cfg->clock_skew_s * 1000;
    if (clen == 0 || clen > LT_PROC_DOSSIER_MAX)
        e = lt_fail(why, LT_EPROCEDURE, "dossier event on %s: dossier_code must be 1..%d bytes",
                    topic, LT_PROC_DOSSIER_MAX);
    else if (!p)
        e = lt_fail(why, LT_EPROCEDURE,
                    "dossier %s: procedure_code '%s' is not a procedure this broker knows",
                    ev->dossier_code, ev->procedure_code);
    else if (at > now_ms + skew)
        e = lt_fail(why, LT_EPROCEDURE,
                    "dossier %s: event time %lld ms is %lld s ahead of the broker's clock",
                    ev->dossier_code, (long long)at, (long long)((at - now_ms) / 1000));
    if (e == LT_OK) {
        bool on_topic = false;
        for (size_t i = 0; i < p->ntopics && !on_topic; i++)
            on_topic = lt_pattern_matches(p->topics[i], topic);
        if (!on_topic)
            e = lt_fail(why, LT_EPROCEDURE,
                        "dossier %s: procedure %s does not travel on topic %s (its topics: %s)",
                        ev->dossier_code, p->code, topic, p->topics[0]);
    }
    if (e == LT_OK && !s->dossier && !(s->dossier = calloc(1, sizeof *s->dossier)))
        e = lt_fail(why, LT_ENOMEM, "out of memory");
    if (e == LT_OK) {
        lt_dossier_slot *d = s->dossier;
        memset(d, 0, sizeof *d);
        d->on = true;
        memcpy(d->code, ev->dossier_code, clen + 1);
        d->proc = p;
        d->status = (unsigned)ev->status;
        d->at_ms = at;
    }
    lienthong__v1__records__dossier_status_event__free_unpacked(ev, NULL);
    return e;
}

/* ---- committer ------------------------------------------------------------------------- */

lt_err lt_dossier_gate(lt_broker *b, lt_slot *s, const lt_store_msgkey *key, int64_t now_ms,
                       lt_why *why)
{
    lt_dossier_slot *d = s->dossier;
    if (!b->dossiers || !d || !d->on)
        return LT_OK;
    d->judged = false;
    bool dup = false;
    lt_err e = lt_store_dossier_is_duplicate(b->store, key, now_ms, &dup, why);
    if (e != LT_OK || dup)
        return e; /* a resend: dedup acks it, it moves nothing */
    e = lt_store_dossier_get(b->store, d->code, &d->prev, why);
    if (e != LT_OK && e != LT_ENOTFOUND)
        return e;
    d->had_prev = e == LT_OK;
    lt_dossier_event ev = {.dossier_code = d->code,
                           .procedure_code = d->proc->code,
                           .agency = s->agency,
                           .status = d->status,
                           .at_ms = d->at_ms};
    e = lt_proc_advance(b->dossiers->procs, d->proc, d->had_prev ? &d->prev : NULL, &ev,
                        &d->next, why);
    if (e == LT_OK)
        d->judged = true;
    return e;
}

void lt_dossier_record(lt_broker *b, lt_slot *s, int64_t now_ms)
{
    lt_dossier_slot *d = s->dossier;
    if (!b->dossiers || !d || !d->on || !d->judged)
        return;
    d->judged = false;
    if (s->err != LT_OK || s->dup)
        return; /* refused by the store, or a resend: the dossier does not move */
    d->next.last_seq = s->seq;
    d->next.nevents = (d->had_prev ? d->prev.nevents : 0) + 1;
    lt_store_dossier_ev ev = {.seq = s->seq,
                              .event_ms = d->at_ms,
                              .stored_ms = now_ms,
                              .env = s->buf,
                              .env_len = s->len};
    lt_why w = {{0}};
    if (lt_store_dossier_put(b->store, d->code, d->had_prev ? &d->prev : NULL, &d->next, &ev,
                             &w) != LT_OK)
        lt_log(LT_LOG_ERROR, "store: dossier %s: %s", d->code, w.msg);
}

/* ---- admin ----------------------------------------------------------------------------- */

static json_object *b64(const uint8_t *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *str = malloc(cap);
    if (!str)
        return NULL;
    EVP_EncodeBlock((unsigned char *)str, p, (int)n);
    json_object *o = json_object_new_string(str);
    free(str);
    return o;
}

static json_object *ms_or_null(int64_t ms)
{
    return ms == INT64_MAX ? NULL : json_object_new_int64(ms);
}

static json_object *allowance_json(lt_allowance a)
{
    if (a.days == 0 && a.hours == 0)
        return NULL;
    json_object *o = json_object_new_object();
    if (a.days)
        json_object_object_add(o, "working_days", json_object_new_int64(a.days));
    else
        json_object_object_add(o, "working_hours", json_object_new_int64(a.hours));
    return o;
}

/* How long a step took (from..to), against its allowance and deadline. */
static void add_duration(json_object *o, const lt_calendar *cal, int64_t from, int64_t to,
                         int64_t deadline)
{
    json_object_object_add(o, "elapsed_ms", json_object_new_int64(to - from));
    json_object_object_add(o, "working_days_used",
                           json_object_new_int64(lt_calendar_working_days(cal, from, to)));
    json_object_object_add(o, "working_ms_used",
                           json_object_new_int64(lt_calendar_working_ms(cal, from, to)));
    json_object_object_add(o, "on_time", json_object_new_boolean(to <= deadline));
}

typedef struct trace_ctx {
    const lt_proc *p;
    const lt_calendar *cal;
    json_object *events, *steps;
    json_object *cur_step; /* the last element of steps */
    char cur_id[LT_PROC_STEP_ID_MAX + 1];
    int64_t cur_started, cur_deadline, last_ms;
    size_t n, limit;
    bool truncated;
} trace_ctx;

static void close_step(trace_ctx *t, int64_t end)
{
    if (!t->cur_step)
        return;
    json_object_object_add(t->cur_step, "ended_ms", json_object_new_int64(end));
    add_duration(t->cur_step, t->cal, t->cur_started, end, t->cur_deadline);
}

static int trace_visit(void *arg, const lt_store_dossier_event *e)
{
    trace_ctx *t = arg;
    if (t->n >= t->limit) {
        t->truncated = true;
        return 1;
    }
    t->n++;
    const lt_proc_step *st = lt_proc_step_find(t->p, e->step, NULL);
    if (strcmp(t->cur_id, e->step) != 0 || e->step_started_ms != t->cur_started) {
        close_step(t, e->event_ms);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(e->step));
        json_object_object_add(o, "name", json_object_new_string(st ? st->name : ""));
        json_object_object_add(o, "agency", json_object_new_string(e->agency));
        json_object_object_add(o, "allowance", st ? allowance_json(st->allowance) : NULL);
        json_object_object_add(o, "started_ms", json_object_new_int64(e->step_started_ms));
        json_object_object_add(o, "deadline_ms", ms_or_null(e->step_deadline_ms));
        json_object_array_add(t->steps, o);
        t->cur_step = o;
        snprintf(t->cur_id, sizeof t->cur_id, "%s", e->step);
        t->cur_started = e->step_started_ms;
        t->cur_deadline = e->step_deadline_ms;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
    json_object_object_add(o, "agency", json_object_new_string(e->agency));
    json_object_object_add(o, "event_ms", json_object_new_int64(e->event_ms));
    json_object_object_add(o, "stored_ms", json_object_new_int64(e->stored_ms));
    json_object_object_add(o, "status", json_object_new_int(e->status));
    json_object_object_add(o, "status_name", json_object_new_string(lt_proc_status_name(e->status)));
    json_object_object_add(o, "step", json_object_new_string(e->step));
    json_object_object_add(o, "step_started_ms", json_object_new_int64(e->step_started_ms));
    json_object_object_add(o, "step_deadline_ms", ms_or_null(e->step_deadline_ms));
    add_duration(o, t->cal, e->step_started_ms, e->event_ms, e->step_deadline_ms);
    json_object_object_add(o, "envelope", b64(e->env, e->env_len));
    json_object_array_add(t->events, o);
    t->last_ms = e->event_ms;
    return 0;
}

lt_err lt_dossier_admin_get(void *ctx, const char *code, size_t limit, json_object **out,
                            lt_why *why)
{
    lt_broker *b = ctx;
    if (!b->dossiers)
        return lt_fail(why, LT_ENOTFOUND, "no procedures are configured on this broker");
    lt_dossier_state st;
    trace_ctx t = {.limit = limit,
                   .cal = lt_procset_calendar(b->dossiers->procs),
                   .events = json_object_new_array(),
                   .steps = json_object_new_array()};
    /* the procedure is known only once the state is read: read the state first */
    lt_err e = lt_store_dossier_read(b->store, code, &st, NULL, NULL, why);
    if (e == LT_OK) {
        t.p = lt_procset_find(b->dossiers->procs, st.procedure);
        if (!t.p)
            e = lt_fail(why, LT_ENOTFOUND, "dossier %s: procedure %s is no longer defined",
                        code, st.procedure);
    }
    if (e == LT_OK)
        e = lt_store_dossier_read(b->store, code, &st, trace_visit, &t, why);
    if (e != LT_OK) {
        json_object_put(t.events);
        json_object_put(t.steps);
        return e;
    }
    int64_t now = lt_env_now_ms();
    if (st.closed && !t.truncated)
        close_step(&t, t.last_ms);
    else if (t.cur_step) /* the step under way: how long so far */
        add_duration(t.cur_step, t.cal, t.cur_started, now, t.cur_deadline);
    const lt_proc_step *cur = lt_proc_step_find(t.p, st.step, NULL);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "dossier", json_object_new_string(code));
    json_object *po = json_object_new_object();
    json_object_object_add(po, "code", json_object_new_string(t.p->code));
    json_object_object_add(po, "name", json_object_new_string(t.p->name));
    json_object_object_add(o, "procedure", po);
    json_object_object_add(o, "step", json_object_new_string(st.step));
    json_object_object_add(o, "step_name", json_object_new_string(cur ? cur->name : ""));
    json_object_object_add(o, "status", json_object_new_int(st.status));
    json_object_object_add(o, "status_name", json_object_new_string(lt_proc_status_name(st.status)));
    json_object_object_add(o, "agency", json_object_new_string(st.agency));
    json_object_object_add(o, "closed", json_object_new_boolean(st.closed));
    json_object_object_add(o, "started_ms", json_object_new_int64(st.started_ms));
    json_object_object_add(o, "step_started_ms", json_object_new_int64(st.step_started_ms));
    json_object_object_add(o, "step_deadline_ms", ms_or_null(st.step_deadline_ms));
    json_object_object_add(o, "late",
                           json_object_new_boolean(!st.closed && now > st.step_deadline_ms));
    json_object_object_add(o, "events_count", json_object_new_int64(st.nevents));
    json_object_object_add(o, "events_truncated", json_object_new_boolean(t.truncated));
    json_object_object_add(o, "calendar",
                           json_object_new_string(lt_calendar_name(t.cal)));
    json_object_object_add(o, "steps", t.steps);
    json_object_object_add(o, "events", t.events);
    *out = o;
    return LT_OK;
}

typedef struct due_ctx {
    lt_broker *b;
    int64_t now;
    json_object *by_agency; /* agency -> {agency, name, late, near, dossiers[]} */
    size_t n;
} due_ctx;

static const char *agency_name(const lt_broker *b, const char *agency)
{
    for (size_t i = 0; i < b->cfg->nacl; i++)
        if (strcmp(b->cfg->acl[i].agency, agency) == 0 && b->cfg->acl[i].name)
            return b->cfg->acl[i].name;
    return "";
}

static int due_visit(void *arg, const char *code, const lt_dossier_state *st)
{
    due_ctx *c = arg;
    json_object *g;
    if (!json_object_object_get_ex(c->by_agency, st->agency, &g)) {
        g = json_object_new_object();
        json_object_object_add(g, "agency", json_object_new_string(st->agency));
        json_object_object_add(g, "name", json_object_new_string(agency_name(c->b, st->agency)));
        json_object_object_add(g, "late", json_object_new_int(0));
        json_object_object_add(g, "near", json_object_new_int(0));
        json_object_object_add(g, "dossiers", json_object_new_array());
        json_object_object_add(c->by_agency, st->agency, g);
    }
    bool late = c->now > st->step_deadline_ms;
    json_object *cnt = json_object_object_get(g, late ? "late" : "near");
    json_object_set_int(cnt, json_object_get_int(cnt) + 1);
    const lt_proc *p = lt_procset_find(c->b->dossiers->procs, st->procedure);
    const lt_proc_step *s = p ? lt_proc_step_find(p, st->step, NULL) : NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "dossier", json_object_new_string(code));
    json_object_object_add(o, "procedure", json_object_new_string(st->procedure));
    json_object_object_add(o, "procedure_name", json_object_new_string(p ? p->name : ""));
    json_object_object_add(o, "step", json_object_new_string(st->step));
    json_object_object_add(o, "step_name", json_object_new_string(s ? s->name : ""));
    json_object_object_add(o, "status", json_object_new_int(st->status));
    json_object_object_add(o, "status_name", json_object_new_string(lt_proc_status_name(st->status)));
    json_object_object_add(o, "step_started_ms", json_object_new_int64(st->step_started_ms));
    json_object_object_add(o, "step_deadline_ms", json_object_new_int64(st->step_deadline_ms));
    json_object_object_add(o, "late", json_object_new_boolean(late));
    json_object_object_add(o, "overdue_ms", json_object_new_int64(c->now - st->step_deadline_ms));
    json_object_array_add(json_object_object_get(g, "dossiers"), o);
    c->n++;
    return 0;
}

lt_err lt_dossier_admin_due(void *ctx, int64_t within_ms, size_t limit, json_object **out,
                            lt_why *why)
{
    lt_broker *b = ctx;
    if (!b->dossiers)
        return lt_fail(why, LT_ENOTFOUND, "no procedures are configured on this broker");
    due_ctx c = {.b = b, .now = lt_env_now_ms(), .by_agency = json_object_new_object()};
    lt_err e = lt_store_dossier_due(b->store, c.now + within_ms, limit, due_visit, &c, why);
    if (e != LT_OK) {
        json_object_put(c.by_agency);
        return e;
    }
    json_object *arr = json_object_new_array();
    json_object_object_foreach(c.by_agency, k, v)
    {
        (void)k;
        json_object_array_add(arr, json_object_get(v));
    }
    json_object_put(c.by_agency);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "now_ms", json_object_new_int64(c.now));
    json_object_object_add(o, "within_ms", json_object_new_int64(within_ms));
    json_object_object_add(o, "count", json_object_new_int64((int64_t)c.n));
    json_object_object_add(o, "agencies", arr);
    *out = o;
    return LT_OK;
}
