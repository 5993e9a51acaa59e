/* test_procedure.c - procedures as data: the working-day calendar (Tết, compensatory days,
 * office hours), loading and validating definitions, and a dossier's way through one. */
#include "procedure.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define H 3600000LL

/* ms of local time Y-M-D h:m at UTC+07:00, computed with the C library, not the module. */
static int64_t vn(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000 - 7 * H;
}

static lt_calendar *vn_calendar(void)
{
    lt_calendar *c = NULL;
    lt_why why = {{0}};
    lt_err e = lt_calendar_load(LT_TEST_SRCDIR "/ops/calendar/vn-holidays.yaml", &c, &why);
    if (e != LT_OK)
        fail_msg("%s", why.msg);
    return c;
}

static void five_working_days_from_the_friday_before_tet_end_two_weeks_later(void **state)
{
    (void)state;
    lt_calendar *c = vn_calendar();
    /* Fri 13/02/2026; 16-20/02 is Tết Bính Ngọ, 14-15 and 21-22 are weekends: the five
     * working days are 23..27/02, due at the end of office hours on Friday 27/02. */
    lt_allowance five = {.days = 5};
    assert_int_equal(lt_calendar_deadline(c, vn(2026, 2, 13, 10, 0), five),
                     vn(2026, 2, 27, 17, 0));
    assert_int_equal(lt_calendar_working_days(c, vn(2026, 2, 13, 10, 0), vn(2026, 2, 27, 16, 0)),
                     5);
    assert_false(lt_calendar_is_working_day(c, vn(2026, 2, 17, 9, 0)));
    assert_true(lt_calendar_is_working_day(c, vn(2026, 2, 23, 9, 0)));
    /* The default calendar (weekends only) would have said Friday 20/02. */
    lt_calendar *plain = NULL;
    assert_int_equal(lt_calendar_new_default(&plain), LT_OK);
    assert_int_equal(lt_calendar_deadline(plain, vn(2026, 2, 13, 10, 0), five),
                     vn(2026, 2, 20, 17, 0));
    lt_calendar_destroy(&plain);
    lt_calendar_destroy(&c);
    assert_null(c);
}

static void a_saturday_worked_in_exchange_counts_and_the_day_off_does_not(void **state)
{
    (void)state;
    lt_calendar *c = vn_calendar();
    /* 2025: Friday 02/05 off in exchange for Saturday 26/04 worked. */
    assert_true(lt_calendar_is_working_day(c, vn(2025, 4, 26, 9, 0)));
    assert_false(lt_calendar_is_working_day(c, vn(2025, 5, 2, 9, 0)));
    lt_allowance one = {.days = 1};
    assert_int_equal(lt_calendar_deadline(c, vn(2025, 4, 25, 9, 0), one), vn(2025, 4, 26, 17, 0));
    /* From Tue 29/04: 30/04, 01/05, 02/05 off, 03-04 weekend: due Monday 05/05. */
    assert_int_equal(lt_calendar_deadline(c, vn(2025, 4, 29, 9, 0), one), vn(2025, 5, 5, 17, 0));
    /* Hùng Kings' day 2026 falls on Sunday 26/04: Monday 27/04 is the day off instead. */
    assert_false(lt_calendar_is_working_day(c, vn(2026, 4, 27, 9, 0)));
    lt_calendar_destroy(&c);
}

static void working_hours_count_office_time_only(void **state)
{
    (void)state;
    lt_calendar *c = vn_calendar();
    lt_allowance four = {.hours = 4};
    /* 15:00 Friday before Tết: 2 h left that day, then 07:30 Monday 23/02 + 2 h. */
    assert_int_equal(lt_calendar_deadline(c, vn(2026, 2, 13, 15, 0), four), vn(2026, 2, 23, 9, 30));
    /* 10:00 on a Tuesday: 1.5 h to the lunch break, 2.5 h from 13:00. */
    assert_int_equal(lt_calendar_deadline(c, vn(2026, 3, 3, 10, 0), four), vn(2026, 3, 3, 15, 30));
    assert_int_equal(lt_calendar_working_ms(c, vn(2026, 3, 3, 10, 0), vn(2026, 3, 3, 15, 30)),
                     4 * H);
    /* Arriving at night counts from the next opening. */
    assert_int_equal(lt_calendar_deadline(c, vn(2026, 3, 3, 21, 0), four), vn(2026, 3, 4, 11, 30));
    lt_allowance none = {0};
    assert_true(lt_calendar_deadline(c, vn(2026, 3, 3, 10, 0), none) == INT64_MAX);
    lt_calendar_destroy(&c);
}

static void calendar_dates_are_checked(void **state)
{
    (void)state;
    int64_t d;
    assert_true(lt_calendar_parse_date("1970-01-01", &d));
    assert_int_equal(d, 0);
    assert_true(lt_calendar_parse_date("2024-02-29", &d));
    assert_false(lt_calendar_parse_date("2026-02-29", &d));
    assert_false(lt_calendar_parse_date("2026-13-01", &d));
    assert_false(lt_calendar_parse_date("2026-1-01", &d));
    assert_false(lt_calendar_parse_date("26-01-2026", &d));
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"holidays:\n  - {date: 2026-02-30, name: x}\n", "cal.yaml:2: holidays[0].date"},
        {"holidays:\n  - {from: 2026-02-20, to: 2026-02-16, name: x}\n", "runs forward"},
        {"holidays:\n  - {from: 2026-01-01, to: 2026-03-01, name: x}\n", "31 days at most"},
        {"holidays:\n  - {date: 2026-01-01, name: x}\n  - {date: 2026-01-01, name: y}\n",
         "listed twice"},
        {"holidays:\n  - {date: 2026-01-03, name: x}\nworkdays:\n  - {date: 2026-01-03, name: y}\n",
         "both a holiday and a workday"},
        {"holidays:\n  - {date: 2026-01-01}\n", "'name'"},
        {"weekend: [saturday, sunday, monday, tuesday, wednesday, thursday, friday]\n",
         "every weekday"},
        {"office_hours: [\"13:00-17:00\", \"07:30-11:30\"]\n", "ascending"},
        {"utc_offset: \"7\"\n", "+HH:MM"},
        {"years: {from: 2025, to: 2025}\nholidays:\n  - {date: 2026-01-01, name: x}\n",
         "outside years"},
        {"holiday: []\n", "unknown key 'holiday'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lt_calendar *c = NULL;
        lt_why why = {{0}};
        assert_int_equal(lt_calendar_parse("cal.yaml", bad[i].text, strlen(bad[i].text), &c, &why),
                         LT_ECONFIG);
        assert_null(c);
        if (!strstr(why.msg, bad[i].expect))
            fail_msg("case %zu: '%s' does not say '%s'", i, why.msg, bad[i].expect);
    }
}

static void agency_patterns_match_like_globs(void **state)
{
    (void)state;
    assert_true(lt_proc_agency_matches("VN:GOV:000.00.00.H29.*:motcua",
                                       "VN:GOV:000.00.00.H29.26737:motcua"));
    assert_false(lt_proc_agency_matches("VN:GOV:000.00.00.H29.*:motcua",
                                        "VN:GOV:000.00.00.H29.26737:hotich"));
    assert_false(lt_proc_agency_matches("VN:GOV:000.00.00.H29.*:motcua",
                                        "VN:GOV:000.00.00.H29:motcua"));
    assert_true(lt_proc_agency_matches("*", "anything"));
    assert_true(lt_proc_agency_matches("a*b*c", "aXbYbZc"));
    assert_false(lt_proc_agency_matches("a*b*c", "aXbYbZ"));
    assert_true(lt_proc_agency_matches("exact", "exact"));
    assert_false(lt_proc_agency_matches("exact", "exactly"));
}

static lt_procset *samples(void)
{
    lt_calendar *c = vn_calendar();
    lt_procset *ps = NULL;
    assert_int_equal(lt_procset_new(&c, &ps), LT_OK);
    assert_null(c);
    lt_why why = {{0}};
    if (lt_procset_add_path(ps, LT_TEST_SRCDIR "/ops/procedures", &why) != LT_OK)
        fail_msg("%s", why.msg);
    return ps;
}

static void the_sample_procedures_load(void **state)
{
    (void)state;
    lt_procset *ps = samples();
    assert_int_equal(lt_procset_count(ps), 3);
    const lt_proc *p = lt_procset_find(ps, "1.001193");
    assert_non_null(p);
    assert_int_equal(p->nsteps, 5);
    assert_string_equal(p->steps[0].id, "tiep_nhan");
    assert_true(p->steps[0].start);
    assert_true(lt_procset_covers_topic(ps, "79.26737.hoso.khaisinh_thuongtru_bhyt"));
    assert_true(lt_procset_covers_topic(ps, "79.26737.hoso.cap_gcn_qsdd"));
    assert_false(lt_procset_covers_topic(ps, "79.26737.hotich.khaisinh"));
    assert_non_null(lt_procset_find(ps, "HCM.DKDN.001"));
    assert_non_null(lt_procset_find(ps, "HCM.GCN.001"));
    /* loading the same directory again is refused, and leaves the set as it was */
    lt_why why = {{0}};
    assert_int_equal(lt_procset_add_path(ps, LT_TEST_SRCDIR "/ops/procedures", &why),
                     LT_ECONFIG);
    assert_non_null(strstr(why.msg, "already defined"));
    assert_int_equal(lt_procset_count(ps), 3);
    lt_procset_destroy(&ps);
    assert_null(ps);
}

#define MOTCUA "VN:GOV:000.00.00.H29.26737:motcua"
#define HOTICH "VN:GOV:000.00.00.H29.26737:hotich"
#define CONGAN "VN:GOV:000.00.00.G01.79.26737:cutru"
#define BHXH "VN:GOV:000.00.00.H29.BHXH:bhyt"
#define DOSSIER "000.00.00.H29.26737-260302-0001"

static lt_err step(const lt_procset *ps, const lt_proc *p, lt_dossier_state *st, bool is_new,
                   const char *agency, unsigned status, int64_t at, lt_why *why)
{
    lt_dossier_event ev = {.dossier_code = DOSSIER,
                           .procedure_code = p->code,
                           .agency = agency,
                           .status = status,
                           .at_ms = at};
    lt_dossier_state next;
    memset(&next, 0x5a, sizeof next);
    lt_err e = lt_proc_advance(ps, p, is_new ? NULL : st, &ev, &next, why);
    if (e == LT_OK)
        *st = next;
    return e;
}

static void a_dossier_goes_through_the_three_procedures_in_order(void **state)
{
    (void)state;
    lt_procset *ps = samples();
    const lt_proc *p = lt_procset_find(ps, "1.001193");
    lt_dossier_state st;
    lt_why why = {{0}};
    /* Monday 02/03/2026 09:00: registered and accepted at the ward's desk */
    assert_int_equal(step(ps, p, &st, true, MOTCUA, 1, vn(2026, 3, 2, 9, 0), &why), LT_OK);
    assert_string_equal(st.procedure, "1.001193");
    assert_string_equal(st.step, "tiep_nhan");
    assert_int_equal(st.status, 1);
    assert_int_equal(st.step_deadline_ms, vn(2026, 3, 2, 14, 30)); /* 4 office hours */
    assert_int_equal(step(ps, p, &st, false, MOTCUA, 2, vn(2026, 3, 2, 9, 30), &why), LT_OK);
    assert_string_equal(st.step, "tiep_nhan");
    assert_int_equal(st.step_started_ms, vn(2026, 3, 2, 9, 0)); /* same step: same clock */
    /* the civil-status officer takes it */
    assert_int_equal(step(ps, p, &st, false, HOTICH, 4, vn(2026, 3, 2, 10, 0), &why), LT_OK);
    assert_string_equal(st.step, "khai_sinh");
    assert_int_equal(st.step_started_ms, vn(2026, 3, 2, 10, 0));
    assert_int_equal(st.step_deadline_ms, vn(2026, 3, 3, 17, 0)); /* 1 working day */
    assert_int_equal(step(ps, p, &st, false, HOTICH, 9, vn(2026, 3, 2, 16, 0), &why), LT_OK);
    /* the ward police registers the residence */
    assert_int_equal(step(ps, p, &st, false, CONGAN, 4, vn(2026, 3, 3, 8, 0), &why), LT_OK);
    assert_string_equal(st.step, "thuong_tru");
    assert_int_equal(st.step_deadline_ms, vn(2026, 3, 6, 17, 0)); /* 3 working days */
    assert_int_equal(step(ps, p, &st, false, CONGAN, 9, vn(2026, 3, 4, 8, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, BHXH, 4, vn(2026, 3, 4, 9, 0), &why), LT_OK);
    assert_string_equal(st.step, "bhyt");
    assert_int_equal(step(ps, p, &st, false, BHXH, 9, vn(2026, 3, 4, 10, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, MOTCUA, 10, vn(2026, 3, 4, 14, 0), &why), LT_OK);
    assert_string_equal(st.step, "tra_ket_qua");
    assert_true(st.closed);
    assert_int_equal(st.started_ms, vn(2026, 3, 2, 9, 0));
    /* nothing follows a result returned */
    assert_int_equal(step(ps, p, &st, false, MOTCUA, 10, vn(2026, 3, 4, 15, 0), &why),
                     LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, "is closed"));
    lt_procset_destroy(&ps);
}

static void out_of_order_events_are_refused_with_what_was_expected(void **state)
{
    (void)state;
    lt_procset *ps = samples();
    const lt_proc *p = lt_procset_find(ps, "1.001193");
    lt_dossier_state st, before;
    lt_why why = {{0}};
    /* a dossier cannot begin at the police */
    assert_int_equal(step(ps, p, &st, true, CONGAN, 2, vn(2026, 3, 2, 9, 0), &why), LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, DOSSIER));
    assert_non_null(strstr(why.msg, "tiep_nhan"));
    assert_non_null(strstr(why.msg, CONGAN));
    assert_int_equal(step(ps, p, &st, true, MOTCUA, 2, vn(2026, 3, 2, 9, 0), &why), LT_OK);
    before = st;
    /* the social insurance before the civil-status step: wrong agency */
    assert_int_equal(step(ps, p, &st, false, BHXH, 4, vn(2026, 3, 2, 10, 0), &why), LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, DOSSIER));
    assert_non_null(strstr(why.msg, "expected step khai_sinh"));
    assert_non_null(strstr(why.msg, "VN:GOV:000.00.00.H29.*:hotich"));
    assert_non_null(strstr(why.msg, "got status 4 from " BHXH));
    assert_memory_equal(&st, &before, sizeof st); /* a refusal changes nothing */
    /* a result returned right after acceptance: status 10 cannot follow 2 */
    assert_int_equal(step(ps, p, &st, false, MOTCUA, 10, vn(2026, 3, 2, 10, 0), &why),
                     LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, "status 10 cannot follow 2"));
    /* an event dated before the dossier's last one */
    assert_int_equal(step(ps, p, &st, false, HOTICH, 4, vn(2026, 3, 2, 8, 0), &why), LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, "before its last event"));
    /* the police cannot skip the civil-status step, even once it is under way */
    assert_int_equal(step(ps, p, &st, false, HOTICH, 4, vn(2026, 3, 2, 10, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, CONGAN, 4, vn(2026, 3, 2, 11, 0), &why), LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, "at step khai_sinh (status 4)"));
    /* a status out of range */
    assert_int_equal(step(ps, p, &st, false, HOTICH, 11, vn(2026, 3, 2, 11, 0), &why),
                     LT_EPROCEDURE);
    /* a dossier of another procedure */
    const lt_proc *other = lt_procset_find(ps, "HCM.DKDN.001");
    lt_dossier_event ev = {.dossier_code = DOSSIER, .agency = "VN:GOV:H29.12:dkkd", .status = 4,
                           .at_ms = vn(2026, 3, 2, 12, 0)};
    lt_dossier_state next;
    assert_int_equal(lt_proc_advance(ps, other, &st, &ev, &next, &why), LT_EPROCEDURE);
    assert_non_null(strstr(why.msg, "belongs to procedure 1.001193"));
    lt_procset_destroy(&ps);
}

static void one_agency_doing_two_steps_moves_on_once_the_first_is_done(void **state)
{
    (void)state;
    lt_procset *ps = samples();
    const lt_proc *p = lt_procset_find(ps, "HCM.GCN.001");
    lt_dossier_state st;
    lt_why why = {{0}};
    const char *vp = "VN:GOV:H29.15:vpdkdd";
    assert_int_equal(step(ps, p, &st, true, MOTCUA, 2, vn(2026, 3, 2, 9, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, "VN:GOV:000.00.00.H29.26737:diachinh", 4,
                          vn(2026, 3, 2, 10, 0), &why),
                     LT_OK);
    assert_int_equal(step(ps, p, &st, false, "VN:GOV:000.00.00.H29.26737:diachinh", 9,
                          vn(2026, 3, 5, 10, 0), &why),
                     LT_OK);
    assert_int_equal(step(ps, p, &st, false, vp, 4, vn(2026, 3, 6, 10, 0), &why), LT_OK);
    assert_string_equal(st.step, "dang_ky");
    assert_int_equal(step(ps, p, &st, false, vp, 6, vn(2026, 3, 10, 10, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, vp, 4, vn(2026, 3, 12, 10, 0), &why), LT_OK);
    assert_string_equal(st.step, "dang_ky"); /* not done at 6: stays */
    assert_int_equal(step(ps, p, &st, false, vp, 9, vn(2026, 3, 13, 10, 0), &why), LT_OK);
    assert_int_equal(step(ps, p, &st, false, vp, 4, vn(2026, 3, 16, 10, 0), &why), LT_OK);
    assert_string_equal(st.step, "ky_gcn"); /* done at 9: the same agency's next step */
    assert_int_equal(st.step_deadline_ms, vn(2026, 3, 19, 17, 0));
    lt_procset_destroy(&ps);
}

static void invalid_definitions_are_refused_with_file_line_and_reason(void **state)
{
    (void)state;
    static const char head[] = "code: \"9.000001\"\nname: t\ntopics: [\"79.*.hoso.t\"]\n";
    static const struct {
        const char *steps, *expect;
    } bad[] = {
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true, next: [b], "
         "done: [2]}\n",
         "next step 'b' is not a step"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true, done: [9]}\n",
         "done status must be one of"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true}\n"
         "  - {id: b, name: B, agency: x, statuses: [4]}\n",
         "step 'b' cannot be reached"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2]}\n", "no step says start"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [11], start: true}\n",
         "t.yaml:5: steps[0].statuses[0]: expected a dossier status"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true}\n"
         "  - {id: a, name: B, agency: x, statuses: [4]}\n",
         "used twice"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [4], start: true}\n",
         "publishes no status a dossier may begin with"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true, next: [b]}\n"
         "  - {id: b, name: B, agency: x, statuses: [4]}\n",
         "no 'done' statuses"},
        {"steps:\n  - {id: A, name: A, agency: x, statuses: [2], start: true}\n", "a-z"},
        {"steps:\n  - {id: a, name: A, agency: \"x y\", statuses: [2], start: true}\n", "space"},
        {"steps:\n  - {id: a, name: A, agency: x, statuses: [2], start: true, "
         "allowance: {working_days: 1, working_hours: 2}}\n",
         "one, above 0"},
        {"steps: []\n", "1..64 steps"},
        {"stepz: []\n", "unknown key 'stepz'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", head, bad[i].steps);
        lt_procset *ps = NULL;
        assert_int_equal(lt_procset_new(NULL, &ps), LT_OK);
        lt_why why = {{0}};
        assert_int_equal(lt_procset_add_text(ps, "t.yaml", text, strlen(text), &why), LT_ECONFIG);
        if (!strstr(why.msg, bad[i].expect))
            fail_msg("case %zu: '%s' does not say '%s'", i, why.msg, bad[i].expect);
        assert_int_equal(lt_procset_count(ps), 0);
        lt_procset_destroy(&ps);
    }
    /* the topic must be a valid pattern, the code a code */
    const char *t2 = "code: \"a b\"\nname: t\ntopics: [x]\nsteps: []\n";
    lt_procset *ps = NULL;
    assert_int_equal(lt_procset_new(NULL, &ps), LT_OK);
    lt_why why = {{0}};
    assert_int_equal(lt_procset_add_text(ps, "t.yaml", t2, strlen(t2), &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "procedure code"));
    const char *t3 = "code: x\nname: t\ntopics: [\"a..b\"]\nsteps: []\n";
    assert_int_equal(lt_procset_add_text(ps, "t.yaml", t3, strlen(t3), &why), LT_ECONFIG);
    assert_non_null(strstr(why.msg, "topic pattern 'a..b'"));
    lt_procset_destroy(&ps);
}

static void a_procedure_may_give_its_own_follows_table(void **state)
{
    (void)state;
    const char *t = "code: x\nname: t\ntopics: [\"79.*.hoso.t\"]\n"
                    "follows: {\"0\": [2], \"2\": [10]}\n"
                    "steps:\n  - {id: a, name: A, agency: \"*\", statuses: [2, 10], start: true}\n";
    lt_procset *ps = NULL;
    assert_int_equal(lt_procset_new(NULL, &ps), LT_OK);
    lt_why why = {{0}};
    assert_int_equal(lt_procset_add_text(ps, "t.yaml", t, strlen(t), &why), LT_OK);
    const lt_proc *p = lt_procset_find(ps, "x");
    lt_dossier_state st;
    lt_dossier_event ev = {.dossier_code = "d", .agency = "any", .status = 2, .at_ms = 1000};
    assert_int_equal(lt_proc_advance(ps, p, NULL, &ev, &st, &why), LT_OK);
    assert_false(st.closed);
    ev.status = 10;
    lt_dossier_state st2;
    assert_int_equal(lt_proc_advance(ps, p, &st, &ev, &st2, &why), LT_OK);
    assert_true(st2.closed); /* nothing follows 10 in this table */
    ev.status = 4;
    assert_int_equal(lt_proc_advance(ps, p, &st, &ev, &st2, &why), LT_EPROCEDURE);
    assert_string_equal(lt_proc_status_name(4), "Đang xử lý");
    assert_string_equal(lt_proc_status_name(0), "?");
    lt_procset_destroy(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(five_working_days_from_the_friday_before_tet_end_two_weeks_later),
        cmocka_unit_test(a_saturday_worked_in_exchange_counts_and_the_day_off_does_not),
        cmocka_unit_test(working_hours_count_office_time_only),
        cmocka_unit_test(calendar_dates_are_checked),
        cmocka_unit_test(agency_patterns_match_like_globs),
        cmocka_unit_test(the_sample_procedures_load),
        cmocka_unit_test(a_dossier_goes_through_the_three_procedures_in_order),
        cmocka_unit_test(out_of_order_events_are_refused_with_what_was_expected),
        cmocka_unit_test(one_agency_doing_two_steps_moves_on_once_the_first_is_done),
        cmocka_unit_test(invalid_definitions_are_refused_with_file_line_and_reason),
        cmocka_unit_test(a_procedure_may_give_its_own_follows_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
