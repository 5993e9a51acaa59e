/*
 * procedure.c - procedure definitions and the working-day calendar (see procedure.h), read
 * from YAML with lib/ycfg.h and validated completely at load, so that lt_proc_advance only
 * walks tables.
 *
 * Days are numbered from 1970-01-01 in the calendar's local time; a day's office hours are
 * minutes from its midnight. Every walk over days is bounded (LT_CAL_HORIZON_DAYS), so a
 * calendar that declares everything a holiday cannot hang the committer.
 */
#include "procedure.h"

#include "router.h"
#include "ycfg.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DAY_MS 86400000LL
#define MAX_OFFICE 4
#define LT_CAL_HORIZON_DAYS 3660 /* ten years: no deadline is looked for further away */
#define PATTERN_MAX 255

static const char *const status_names[LT_PROC_STATUS_MAX + 1] = {
    "?",
    "Mới đăng ký",
    "Được tiếp nhận",
    "Không được tiếp nhận",
    "Đang xử lý",
    "Yêu cầu bổ sung giấy tờ",
    "Yêu cầu thực hiện nghĩa vụ tài chính",
    "Công dân yêu cầu rút hồ sơ",
    "Dừng xử lý",
    "Đã xử lý xong",
    "Đã trả kết quả",
};

#define B(s) ((uint16_t)(1u << (s)))
/* The portal's life cycle of a dossier (docs/procedures.md): which status may follow
 * which. 0 stands for "no event yet". 3 (not accepted), 7 (withdrawn), 8 (stopped) and 10
 * (result returned) end a dossier. 9 -> 2 / 4: the next agency of an inter-agency
 * procedure receives or processes what the previous one finished. */
static const uint16_t default_follows[LT_PROC_STATUS_MAX + 1] = {
    [0] = B(1) | B(2),
    [1] = B(2) | B(3) | B(7),
    [2] = B(2) | B(4) | B(5) | B(6) | B(7) | B(8) | B(9),
    [4] = B(4) | B(5) | B(6) | B(7) | B(8) | B(9),
    [5] = B(2) | B(4) | B(7) | B(8),
    [6] = B(4) | B(7) | B(8) | B(9),
    [9] = B(2) | B(4) | B(9) | B(10),
};

const char *lt_proc_status_name(unsigned status)
{
    return status >= 1 && status <= LT_PROC_STATUS_MAX ? status_names[status] : "?";
}

/* ---- calendar -------------------------------------------------------------------------- */

struct lt_calendar {
    char *name;
    int64_t offset_ms;
    uint8_t weekend; /* bit w: weekday w (0 = Sunday) is a day off */
    int32_t office[MAX_OFFICE][2]; /* minutes from midnight, ascending, not overlapping */
    size_t noffice;
    int64_t *holidays; /* sorted day numbers */
    size_t nholidays;
    int64_t *workdays; /* sorted: weekend days worked instead (làm bù) */
    size_t nworkdays;
    int first_year, last_year;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = floor_div(y, 400);
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool lt_calendar_parse_date(const char *s, int64_t *day)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    if (d > mdays[m - 1] + (m == 2 && is_leap(y)))
        return false;
    *day = days_from_civil(y, (unsigned)m, (unsigned)d);
    return true;
}

static int year_of_day(int64_t day)
{
    /* civil_from_days, year only */
    day += 719468;
    const int64_t era = floor_div(day, 146097);
    const unsigned doe = (unsigned)(day - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return (int)((int64_t)yoe + era * 400 + (m <= 2));
}

static int64_t day_of(const lt_calendar *c, int64_t ms)
{
    return floor_div(ms + c->offset_ms, DAY_MS);
}

static int64_t day_start_ms(const lt_calendar *c, int64_t day)
{
    return day * DAY_MS - c->offset_ms;
}

static bool in_sorted(const int64_t *v, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == x)
            return true;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool working_day(const lt_calendar *c, int64_t day)
{
    if (in_sorted(c->workdays, c->nworkdays, day))
        return true;
    if (in_sorted(c->holidays, c->nholidays, day))
        return false;
    int wd = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    return !(c->weekend & (1u << wd));
}

static void set_defaults(lt_calendar *c)
{
    c->offset_ms = 7 * 3600 * 1000LL;
    c->weekend = (1u << 0) | (1u << 6);
    c->office[0][0] = 7 * 60 + 30;
    c->office[0][1] = 11 * 60 + 30;
    c->office[1][0] = 13 * 60;
    c->office[1][1] = 17 * 60;
    c->noffice = 2;
}

lt_err lt_calendar_new_default(lt_calendar **out)
{
    lt_calendar *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(""))) {
        free(c);
        return LT_ENOMEM;
    }
    set_defaults(c);
    *out = c;
    return LT_OK;
}

void lt_calendar_destroy(lt_calendar **cp)
{
    if (!cp || !*cp)
        return;
    free((*cp)->name);
    free((*cp)->holidays);
    free((*cp)->workdays);
    free(*cp);
    *cp = NULL;
}

const char *lt_calendar_name(const lt_calendar *c)
{
    return c->name ? c->name : "";
}

void lt_calendar_years(const lt_calendar *c, int *first, int *last)
{
    *first = c->first_year;
    *last = c->last_year;
}

bool lt_calendar_is_working_day(const lt_calendar *c, int64_t ms)
{
    return working_day(c, day_of(c, ms));
}

int64_t lt_calendar_deadline(const lt_calendar *c, int64_t start_ms, lt_allowance a)
{
    if (a.days == 0 && a.hours == 0)
        return INT64_MAX;
    int64_t day = day_of(c, start_ms);
    if (a.hours == 0) {
        uint32_t k = 0;
        int64_t steps = 0, limit = (int64_t)a.days + LT_CAL_HORIZON_DAYS;
        if (a.days == 0) {
            while (!working_day(c, day) && steps++ < limit)
                day++;
        } else {
            while (k < a.days && steps++ < limit)
                if (working_day(c, ++day))
                    k++;
        }
        if (steps >= limit)
            return INT64_MAX;
        return day_start_ms(c, day) + (int64_t)c->office[c->noffice - 1][1] * 60000;
    }
    int64_t left = (int64_t)a.hours * 3600000;
    int64_t limit = (int64_t)a.hours / 4 + LT_CAL_HORIZON_DAYS;
    for (int64_t i = 0; i < limit; i++, day++) {
        if (!working_day(c, day))
            continue;
        int64_t base = day_start_ms(c, day);
        for (size_t j = 0; j < c->noffice; j++) {
            int64_t from = base + (int64_t)c->office[j][0] * 60000;
            int64_t to = base + (int64_t)c->office[j][1] * 60000;
            if (from < start_ms)
                from = start_ms;
            if (from >= to)
                continue;
            if (to - from >= left)
                return from + left;
            left -= to - from;
        }
    }
    return INT64_MAX;
}

uint32_t lt_calendar_working_days(const lt_calendar *c, int64_t from_ms, int64_t to_ms)
{
    int64_t d0 = day_of(c, from_ms), d1 = day_of(c, to_ms);
    if (d1 - d0 > 10 * LT_CAL_HORIZON_DAYS)
        d1 = d0 + 10 * LT_CAL_HORIZON_DAYS;
    uint32_t n = 0;
    for (int64_t d = d0 + 1; d <= d1; d++)
        n += working_day(c, d);
    return n;
}

int64_t lt_calendar_working_ms(const lt_calendar *c, int64_t from_ms, int64_t to_ms)
{
    if (to_ms <= from_ms)
        return 0;
    int64_t d0 = day_of(c, from_ms), d1 = day_of(c, to_ms);
    if (d1 - d0 > 10 * LT_CAL_HORIZON_DAYS)
        d1 = d0 + 10 * LT_CAL_HORIZON_DAYS;
    int64_t sum = 0;
    for (int64_t d = d0; d <= d1; d++) {
        if (!working_day(c, d))
            continue;
        int64_t base = day_start_ms(c, d);
        for (size_t j = 0; j < c->noffice; j++) {
            int64_t a = base + (int64_t)c->office[j][0] * 60000;
            int64_t b = base + (int64_t)c->office[j][1] * 60000;
            if (a < from_ms)
                a = from_ms;
            if (b > to_ms)
                b = to_ms;
            if (b > a)
                sum += b - a;
        }
    }
    return sum;
}

/* "HH:MM" into minutes; -1 if malformed. 24:00 is allowed (end of day). */
static int hhmm(const char *s)
{
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return -1;
    return h * 60 + m;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Read a list of {date | from+to, name} into *v (sorted), each day once. */
static lt_err read_days(const lt_ynode *root, const char *key, int64_t **v, size_t *n,
                        lt_why *why)
{
    static const char *const keys[] = {"date", "from", "to", "name", NULL};
    const lt_ynode *seq;
    lt_err err = lt_ycfg_seq(root, key, false, &seq, why);
    if (err || !seq)
        return err;
    size_t cap = 0;
    for (size_t i = 0; i < lt_ycfg_len(seq); i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map with date (or from and to) and name");
        if ((err = lt_ycfg_check_keys(m, keys, why)))
            return err;
        const char *date, *from, *to, *name;
        if ((err = lt_ycfg_str(m, "date", "", &date, why)) ||
            (err = lt_ycfg_str(m, "from", "", &from, why)) ||
            (err = lt_ycfg_str(m, "to", "", &to, why)) ||
            (err = lt_ycfg_str(m, "name", NULL, &name, why)))
            return err;
        int64_t a, b;
        if (*date) {
            if (*from || *to)
                return lt_ycfg_fail(m, why, "give either date or from and to, not both");
            if (!lt_calendar_parse_date(date, &a))
                return lt_ycfg_fail(lt_ycfg_get(m, "date"), why,
                                    "'%s' is not a date YYYY-MM-DD", date);
            b = a;
        } else {
            if (!lt_calendar_parse_date(from, &a))
                return lt_ycfg_fail(lt_ycfg_get(m, "from") ? lt_ycfg_get(m, "from") : m, why,
                                    "'%s' is not a date YYYY-MM-DD", from);
            if (!lt_calendar_parse_date(to, &b))
                return lt_ycfg_fail(lt_ycfg_get(m, "to") ? lt_ycfg_get(m, "to") : m, why,
                                    "'%s' is not a date YYYY-MM-DD", to);
            if (b < a || b - a > 30)
                return lt_ycfg_fail(m, why, "from %s to %s: a range runs forward, 31 days at most",
                                    from, to);
        }
        for (int64_t d = a; d <= b; d++) {
            if (*n >= LT_PROC_MAX_HOLIDAYS)
                return lt_ycfg_fail(m, why, "more than %d days", LT_PROC_MAX_HOLIDAYS);
            if (*n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                int64_t *nv = realloc(*v, nc * sizeof *nv);
                if (!nv)
                    return lt_fail(why, LT_ENOMEM, "out of memory");
                *v = nv;
                cap = nc;
            }
            (*v)[(*n)++] = d;
        }
    }
    if (*n)
        qsort(*v, *n, sizeof **v, cmp_i64);
    for (size_t i = 1; i < *n; i++)
        if ((*v)[i] == (*v)[i - 1])
            return lt_ycfg_fail(seq, why, "a day is listed twice (day %lld of the epoch)",
                                (long long)(*v)[i]);
    return LT_OK;
}

static lt_err read_calendar(const lt_ynode *root, lt_calendar *c, lt_why *why)
{
    static const char *const keys[] = {"name",     "utc_offset", "weekend", "office_hours",
                                       "years",    "holidays",   "workdays", NULL};
    static const char *const wdays[] = {"sunday",   "monday", "tuesday", "wednesday",
                                        "thursday", "friday", "saturday"};
    lt_err err = lt_ycfg_check_keys(root, keys, why);
    if (err)
        return err;
    const char *name, *off;
    if ((err = lt_ycfg_str(root, "name", "", &name, why)) ||
        (err = lt_ycfg_str(root, "utc_offset", "+07:00", &off, why)))
        return err;
    if (!(c->name = strdup(name)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    int om = (off[0] == '+' || off[0] == '-') ? hhmm(off + 1) : -1;
    if (om < 0 || om > 14 * 60)
        return lt_ycfg_fail(lt_ycfg_get(root, "utc_offset"), why,
                            "expected +HH:MM or -HH:MM (at most 14 hours), got '%s'", off);
    c->offset_ms = (off[0] == '-' ? -1 : 1) * (int64_t)om * 60000;

    const lt_ynode *seq;
    if ((err = lt_ycfg_seq(root, "weekend", false, &seq, why)))
        return err;
    if (seq) {
        c->weekend = 0;
        for (size_t i = 0; i < lt_ycfg_len(seq); i++) {
            const char *s = lt_ycfg_scalar(lt_ycfg_at(seq, i));
            int w = -1;
            for (int k = 0; s && k < 7; k++)
                if (strcmp(s, wdays[k]) == 0)
                    w = k;
            if (w < 0)
                return lt_ycfg_fail(lt_ycfg_at(seq, i), why,
                                    "expected a weekday in English (saturday, sunday...)");
            if (c->weekend & (1u << w))
                return lt_ycfg_fail(lt_ycfg_at(seq, i), why, "%s listed twice", s);
            c->weekend |= (uint8_t)(1u << w);
        }
        if (c->weekend == 0x7f)
            return lt_ycfg_fail(seq, why, "every weekday is a day off: nothing could be due");
    }
    if ((err = lt_ycfg_seq(root, "office_hours", false, &seq, why)))
        return err;
    if (seq) {
        size_t n = lt_ycfg_len(seq);
        if (n == 0 || n > MAX_OFFICE)
            return lt_ycfg_fail(seq, why, "1 to %d intervals \"HH:MM-HH:MM\"", MAX_OFFICE);
        c->noffice = 0;
        for (size_t i = 0; i < n; i++) {
            const char *s = lt_ycfg_scalar(lt_ycfg_at(seq, i));
            char a[6], b[6];
            int x = -1, y = -1;
            if (s && strlen(s) == 11 && s[5] == '-') {
                memcpy(a, s, 5);
                a[5] = 0;
                memcpy(b, s + 6, 5);
                b[5] = 0;
                x = hhmm(a);
                y = hhmm(b);
            }
            int prev = c->noffice ? c->office[c->noffice - 1][1] : -1;
            if (x < 0 || y <= x || x < prev)
                return lt_ycfg_fail(lt_ycfg_at(seq, i), why,
                                    "expected \"HH:MM-HH:MM\", ascending and not overlapping");
            c->office[c->noffice][0] = x;
            c->office[c->noffice][1] = y;
            c->noffice++;
        }
    }
    const lt_ynode *years;
    if ((err = lt_ycfg_map(root, "years", false, &years, why)))
        return err;
    if (years) {
        static const char *const ykeys[] = {"from", "to", NULL};
        int64_t a, b;
        if ((err = lt_ycfg_check_keys(years, ykeys, why)) ||
            (err = lt_ycfg_int(years, "from", -1, 1970, 9999, &a, why)) ||
            (err = lt_ycfg_int(years, "to", -1, 1970, 9999, &b, why)))
            return err;
        if (b < a)
            return lt_ycfg_fail(years, why, "to %lld is before from %lld", (long long)b,
                                (long long)a);
        c->first_year = (int)a;
        c->last_year = (int)b;
    }
    if ((err = read_days(root, "holidays", &c->holidays, &c->nholidays, why)) ||
        (err = read_days(root, "workdays", &c->workdays, &c->nworkdays, why)))
        return err;
    for (size_t i = 0; i < c->nworkdays; i++)
        if (in_sorted(c->holidays, c->nholidays, c->workdays[i]))
            return lt_ycfg_fail(lt_ycfg_get(root, "workdays"), why,
                                "a day is both a holiday and a workday");
    for (size_t i = 0; c->first_year && i < c->nholidays; i++) {
        int y = year_of_day(c->holidays[i]);
        if (y < c->first_year || y > c->last_year)
            return lt_ycfg_fail(lt_ycfg_get(root, "holidays"), why,
                                "a holiday in %d, outside years %d..%d", y, c->first_year,
                                c->last_year);
    }
    return LT_OK;
}

static lt_err calendar_from(const lt_ynode *root, lt_calendar **out, lt_why *why)
{
    lt_calendar *c = calloc(1, sizeof *c);
    if (!c)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    set_defaults(c);
    lt_err err = read_calendar(root, c, why);
    if (err) {
        lt_calendar_destroy(&c);
        return err;
    }
    *out = c;
    return LT_OK;
}

lt_err lt_calendar_load(const char *path, lt_calendar **out, lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_load(path, &root, why);
    if (err)
        return err;
    err = calendar_from(root, out, why);
    lt_ycfg_free(&root);
    return err;
}

lt_err lt_calendar_parse(const char *label, const char *text, size_t len, lt_calendar **out,
                         lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_parse(label, text, len, &root, why);
    if (err)
        return err;
    err = calendar_from(root, out, why);
    lt_ycfg_free(&root);
    return err;
}

/* ---- procedures ------------------------------------------------------------------------ */

struct lt_procset {
    lt_calendar *cal;
    lt_proc **v;
    size_t n;
};

bool lt_proc_agency_matches(const char *p, const char *s)
{
    /* iterative glob with one backtrack point: linear in practice, never recursive */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static void proc_free(lt_proc *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nsteps; i++) {
        lt_proc_step *s = &p->steps[i];
        free(s->id);
        free(s->name);
        for (size_t j = 0; j < s->nagencies; j++)
            free(s->agencies[j]);
        free(s->agencies);
        free(s->next);
    }
    free(p->steps);
    for (size_t i = 0; i < p->ntopics; i++)
        free(p->topics[i]);
    free(p->topics);
    free(p->code);
    free(p->name);
    free(p->file);
    free(p);
}

lt_err lt_procset_new(lt_calendar **cal_p, lt_procset **out)
{
    lt_procset *ps = calloc(1, sizeof *ps);
    if (!ps)
        return LT_ENOMEM;
    if (cal_p && *cal_p) {
        ps->cal = *cal_p;
        *cal_p = NULL;
    } else if (lt_calendar_new_default(&ps->cal) != LT_OK) {
        free(ps);
        return LT_ENOMEM;
    }
    *out = ps;
    return LT_OK;
}

void lt_procset_destroy(lt_procset **psp)
{
    if (!psp || !*psp)
        return;
    lt_procset *ps = *psp;
    for (size_t i = 0; i < ps->n; i++)
        proc_free(ps->v[i]);
    free(ps->v);
    lt_calendar_destroy(&ps->cal);
    free(ps);
    *psp = NULL;
}

const lt_calendar *lt_procset_calendar(const lt_procset *ps)
{
    return ps->cal;
}

size_t lt_procset_count(const lt_procset *ps)
{
    return ps->n;
}

const lt_proc *lt_procset_at(const lt_procset *ps, size_t i)
{
    return i < ps->n ? ps->v[i] : NULL;
}

const lt_proc *lt_procset_find(const lt_procset *ps, const char *code)
{
    for (size_t i = 0; code && i < ps->n; i++)
        if (strcmp(ps->v[i]->code, code) == 0)
            return ps->v[i];
    return NULL;
}

bool lt_procset_covers_topic(const lt_procset *ps, const char *topic)
{
    for (size_t i = 0; ps && topic && i < ps->n; i++)
        for (size_t j = 0; j < ps->v[i]->ntopics; j++)
            if (lt_pattern_matches(ps->v[i]->topics[j], topic))
                return true;
    return false;
}

const lt_proc_step *lt_proc_step_find(const lt_proc *p, const char *id, size_t *idx)
{
    for (size_t i = 0; id && i < p->nsteps; i++)
        if (strcmp(p->steps[i].id, id) == 0) {
            if (idx)
                *idx = i;
            return &p->steps[i];
        }
    return NULL;
}

static lt_err dup_str(char **dst, const char *s, lt_why *why)
{
    if (!(*dst = strdup(s)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    return LT_OK;
}

/* A list of statuses 1..10 (or 0..10 with allow_zero) as a bit set; required: non-empty. */
static lt_err status_set(const lt_ynode *seq, bool allow_zero, uint16_t *out, lt_why *why)
{
    if (lt_ycfg_kind(seq) != LT_Y_SEQ)
        return lt_ycfg_fail(seq, why, "expected a list of dossier statuses 1..10");
    uint16_t set = 0;
    for (size_t i = 0; i < lt_ycfg_len(seq); i++) {
        const lt_ynode *it = lt_ycfg_at(seq, i);
        const char *s = lt_ycfg_scalar(it);
        char *end = NULL;
        long v = s ? strtol(s, &end, 10) : -1;
        if (!s || !*s || *end || v < (allow_zero ? 0 : 1) || v > LT_PROC_STATUS_MAX)
            return lt_ycfg_fail(it, why, "expected a dossier status %d..10, got '%s'",
                                allow_zero ? 0 : 1, s ? s : "(not a scalar)");
        if (set & B(v))
            return lt_ycfg_fail(it, why, "status %ld listed twice", v);
        set |= B(v);
    }
    *out = set;
    return LT_OK;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LT_PROC_STEP_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static bool code_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LT_PROC_CODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* A scalar or a list of scalars under key, each passing check, into a malloc'ed array. */
static lt_err str_or_list(const lt_ynode *map, const char *key, char ***out, size_t *n,
                          const char *what, lt_why *why)
{
    const lt_ynode *v = lt_ycfg_get(map, key);
    if (!v)
        return lt_ycfg_fail(map, why, "required key '%s' is missing", key);
    size_t cnt = lt_ycfg_kind(v) == LT_Y_SCALAR ? 1 : lt_ycfg_len(v);
    if (lt_ycfg_kind(v) == LT_Y_MAP || cnt == 0)
        return lt_ycfg_fail(v, why, "expected %s, or a list of them", what);
    char **arr = calloc(cnt, sizeof *arr);
    if (!arr)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *out = arr;
    *n = 0;
    for (size_t i = 0; i < cnt; i++) {
        const lt_ynode *it = lt_ycfg_kind(v) == LT_Y_SCALAR ? v : lt_ycfg_at(v, i);
        const char *s = lt_ycfg_scalar(it);
        if (!s || !*s || strlen(s) > PATTERN_MAX)
            return lt_ycfg_fail(it, why, "expected %s (1..%d bytes)", what, PATTERN_MAX);
        for (const char *c = s; *c; c++)
            if ((unsigned char)*c <= ' ')
                return lt_ycfg_fail(it, why, "%s '%s' holds a space or control byte", what, s);
        if (!(arr[i] = strdup(s)))
            return lt_fail(why, LT_ENOMEM, "out of memory");
        (*n)++;
    }
    return LT_OK;
}

static lt_err read_allowance(const lt_ynode *m, lt_allowance *a, lt_why *why)
{
    static const char *const keys[] = {"working_days", "working_hours", NULL};
    const lt_ynode *al;
    lt_err err = lt_ycfg_map(m, "allowance", false, &al, why);
    if (err || !al)
        return err;
    int64_t d, h;
    if ((err = lt_ycfg_check_keys(al, keys, why)) ||
        (err = lt_ycfg_int(al, "working_days", 0, 0, 3650, &d, why)) ||
        (err = lt_ycfg_int(al, "working_hours", 0, 0, 10000, &h, why)))
        return err;
    if ((d != 0) + (h != 0) != 1)
        return lt_ycfg_fail(al, why, "give working_days or working_hours (one, above 0)");
    a->days = (uint32_t)d;
    a->hours = (uint32_t)h;
    return LT_OK;
}

static lt_err read_step(const lt_ynode *m, lt_proc_step *s, lt_why *why)
{
    static const char *const keys[] = {"id",   "name",      "agency", "statuses", "done",
                                       "next", "allowance", "start",  NULL};
    if (lt_ycfg_kind(m) != LT_Y_MAP)
        return lt_ycfg_fail(m, why, "expected a map with id, name, agency, statuses...");
    lt_err err = lt_ycfg_check_keys(m, keys, why);
    const char *id, *name;
    if (err || (err = lt_ycfg_str(m, "id", NULL, &id, why)) ||
        (err = lt_ycfg_str(m, "name", NULL, &name, why)))
        return err;
    if (!id_ok(id))
        return lt_ycfg_fail(lt_ycfg_get(m, "id"), why,
                            "a step id is 1..%d characters of a-z, 0-9 and _, got '%s'",
                            LT_PROC_STEP_ID_MAX, id);
    if ((err = dup_str(&s->id, id, why)) || (err = dup_str(&s->name, name, why)) ||
        (err = str_or_list(m, "agency", &s->agencies, &s->nagencies, "an agency id pattern",
                           why)))
        return err;
    const lt_ynode *st = lt_ycfg_get(m, "statuses");
    if (!st)
        return lt_ycfg_fail(m, why, "required key 'statuses' is missing");
    if ((err = status_set(st, false, &s->statuses, why)))
        return err;
    if (s->statuses == 0)
        return lt_ycfg_fail(st, why, "a step publishes at least one status");
    const lt_ynode *dn = lt_ycfg_get(m, "done");
    if (dn && (err = status_set(dn, false, &s->done, why)))
        return err;
    if (s->done & ~s->statuses)
        return lt_ycfg_fail(dn, why, "a done status must be one of the step's statuses");
    if ((err = read_allowance(m, &s->allowance, why)) ||
        (err = lt_ycfg_bool(m, "start", false, &s->start, why)))
        return err;
    return LT_OK;
}

/* Resolve each step's next ids to indexes, and check that every step can be reached. */
static lt_err link_steps(const lt_ynode *steps, lt_proc *p, lt_why *why)
{
    for (size_t i = 0; i < p->nsteps; i++) {
        const lt_ynode *m = lt_ycfg_at(steps, i);
        lt_proc_step *s = &p->steps[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->steps[j].id, s->id) == 0)
                return lt_ycfg_fail(m, why, "step id '%s' is used twice", s->id);
        const char **ids = NULL;
        size_t n = 0;
        lt_err err = lt_ycfg_str_list(m, "next", &ids, &n, why);
        if (err)
            return err;
        if (n && !(s->next = calloc(n, sizeof *s->next))) {
            free(ids);
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < n; k++) {
            size_t idx;
            if (!lt_proc_step_find(p, ids[k], &idx)) {
                err = lt_ycfg_fail(lt_ycfg_get(m, "next"), why, "next step '%s' is not a step",
                                   ids[k]);
                break;
            }
            for (size_t q = 0; q < s->nnext; q++)
                if (s->next[q] == idx)
                    err = lt_ycfg_fail(lt_ycfg_get(m, "next"), why, "'%s' listed twice", ids[k]);
            if (err)
                break;
            s->next[s->nnext++] = idx;
        }
        free(ids);
        if (err)
            return err;
        if (s->nnext && !s->done)
            return lt_ycfg_fail(m, why,
                                "step '%s' has next steps but no 'done' statuses: say at which "
                                "status it is finished",
                                s->id);
    }
    /* which steps a start reaches (a plain fixed point: at most 64 steps) */
    uint64_t reach = 0;
    for (size_t i = 0; i < p->nsteps; i++)
        if (p->steps[i].start)
            reach |= 1ull << i;
    if (!reach)
        return lt_ycfg_fail(steps, why, "no step says start: true");
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < p->nsteps; i++)
            if (reach & (1ull << i))
                for (size_t k = 0; k < p->steps[i].nnext; k++)
                    if (!(reach & (1ull << p->steps[i].next[k]))) {
                        reach |= 1ull << p->steps[i].next[k];
                        grew = true;
                    }
    }
    for (size_t i = 0; i < p->nsteps; i++) {
        if (!(reach & (1ull << i)))
            return lt_ycfg_fail(lt_ycfg_at(steps, i), why,
                                "step '%s' cannot be reached from a start step",
                                p->steps[i].id);
        if (p->steps[i].start && !(p->steps[i].statuses & p->follows[0]))
            return lt_ycfg_fail(lt_ycfg_at(steps, i), why,
                                "start step '%s' publishes no status a dossier may begin with",
                                p->steps[i].id);
    }
    return LT_OK;
}

static lt_err read_follows(const lt_ynode *root, lt_proc *p, lt_why *why)
{
    memcpy(p->follows, default_follows, sizeof p->follows);
    const lt_ynode *f;
    lt_err err = lt_ycfg_map(root, "follows", false, &f, why);
    if (err || !f)
        return err;
    memset(p->follows, 0, sizeof p->follows);
    for (size_t i = 0; i < lt_ycfg_len(f); i++) {
        const char *k = lt_ycfg_key_at(f, i);
        char *end = NULL;
        long x = strtol(k, &end, 10);
        if (!*k || *end || x < 0 || x > LT_PROC_STATUS_MAX)
            return lt_ycfg_fail(lt_ycfg_at(f, i), why,
                                "key '%s': expected a status 0..10 (0: no event yet)", k);
        if ((err = status_set(lt_ycfg_at(f, i), false, &p->follows[x], why)))
            return err;
    }
    if (!p->follows[0])
        return lt_ycfg_fail(f, why, "follows.0 (the statuses a dossier may begin with) is "
                                    "missing or empty");
    return LT_OK;
}

static lt_err proc_from(const lt_ynode *root, lt_proc *p, lt_why *why)
{
    static const char *const keys[] = {"code", "name", "topics", "follows", "steps", NULL};
    lt_err err = lt_ycfg_check_keys(root, keys, why);
    const char *code, *name;
    if (err || (err = lt_ycfg_str(root, "code", NULL, &code, why)) ||
        (err = lt_ycfg_str(root, "name", NULL, &name, why)))
        return err;
    if (!code_ok(code))
        return lt_ycfg_fail(lt_ycfg_get(root, "code"), why,
                            "a procedure code is 1..%d characters of A-Z a-z 0-9 . - _, got "
                            "'%s'",
                            LT_PROC_CODE_MAX, code);
    if ((err = dup_str(&p->code, code, why)) || (err = dup_str(&p->name, name, why)) ||
        (err = dup_str(&p->file, lt_ycfg_file(root), why)) ||
        (err = str_or_list(root, "topics", &p->topics, &p->ntopics, "a topic pattern", why)))
        return err;
    for (size_t i = 0; i < p->ntopics; i++) {
        lt_why tw = {{0}};
        if (lt_pattern_check(p->topics[i], &tw) != LT_OK)
            return lt_ycfg_fail(lt_ycfg_get(root, "topics"), why, "topic pattern '%s': %s",
                                p->topics[i], tw.msg);
    }
    if ((err = read_follows(root, p, why)))
        return err;
    const lt_ynode *steps;
    if ((err = lt_ycfg_seq(root, "steps", true, &steps, why)))
        return err;
    size_t n = lt_ycfg_len(steps);
    if (n == 0 || n > LT_PROC_MAX_STEPS)
        return lt_ycfg_fail(steps, why, "1..%d steps", LT_PROC_MAX_STEPS);
    if (!(p->steps = calloc(n, sizeof *p->steps)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        p->nsteps = i + 1; /* counted before filling, so proc_free frees what was read */
        if ((err = read_step(lt_ycfg_at(steps, i), &p->steps[i], why)))
            return err;
    }
    return link_steps(steps, p, why);
}

static lt_err add_tree(lt_procset *ps, const lt_ynode *root, lt_why *why)
{
    if (ps->n >= LT_PROC_MAX_PROCEDURES)
        return lt_fail(why, LT_ECONFIG, "%s: more than %d procedures", lt_ycfg_file(root),
                       LT_PROC_MAX_PROCEDURES);
    lt_proc *p = calloc(1, sizeof *p);
    if (!p)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err err = proc_from(root, p, why);
    if (!err) {
        const lt_proc *was = lt_procset_find(ps, p->code);
        if (was)
            err = lt_ycfg_fail(lt_ycfg_get(root, "code"), why,
                               "procedure %s is already defined in %s", p->code, was->file);
    }
    lt_proc **nv = err ? NULL : realloc(ps->v, (ps->n + 1) * sizeof *nv);
    if (!err && !nv)
        err = lt_fail(why, LT_ENOMEM, "out of memory");
    if (err) {
        proc_free(p);
        return err;
    }
    ps->v = nv;
    ps->v[ps->n++] = p;
    return LT_OK;
}

lt_err lt_procset_add_text(lt_procset *ps, const char *label, const char *text, size_t len,
                           lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_parse(label, text, len, &root, why);
    if (err)
        return err;
    err = add_tree(ps, root, why);
    lt_ycfg_free(&root);
    return err;
}

static lt_err add_file(lt_procset *ps, const char *path, lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_load(path, &root, why);
    if (err)
        return err;
    err = add_tree(ps, root, why);
    lt_ycfg_free(&root);
    return err;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
                           (l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

lt_err lt_procset_add_path(lt_procset *ps, const char *path, lt_why *why)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return lt_fail(why, LT_EIO, "procedures: %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return add_file(ps, path, why);
    DIR *d = opendir(path);
    if (!d)
        return lt_fail(why, LT_EIO, "procedures: %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    lt_err err = LT_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL && !err;) {
        if (!yaml_name(e->d_name))
            continue;
        if (n >= LT_PROC_MAX_PROCEDURES) {
            err = lt_fail(why, LT_ECONFIG, "procedures: %s: more than %d files", path,
                          LT_PROC_MAX_PROCEDURES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(names, cap * sizeof *nv);
            if (!nv) {
                err = lt_fail(why, LT_ENOMEM, "out of memory");
                break;
            }
            names = nv;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            err = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (!err && n)
        qsort(names, n, sizeof *names, cmp_str);
    size_t before = ps->n;
    for (size_t i = 0; i < n && !err; i++)
        err = add_file(ps, names[i], why);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (err) { /* all or nothing: the set is unchanged */
        while (ps->n > before)
            proc_free(ps->v[--ps->n]);
    }
    return err;
}

/* ---- advancing a dossier --------------------------------------------------------------- */

static bool agency_in(const lt_proc_step *s, const char *agency)
{
    for (size_t i = 0; i < s->nagencies; i++)
        if (lt_proc_agency_matches(s->agencies[i], agency))
            return true;
    return false;
}

/* "4|5|9" into buf. */
static const char *set_str(uint16_t set, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned s = 0; s <= LT_PROC_STATUS_MAX && at + 4 < cap; s++)
        if (set & B(s))
            at += (size_t)snprintf(buf + at, cap - at, "%s%u", at ? "|" : "", s);
    if (at == 0)
        snprintf(buf, cap, "none");
    return buf;
}

static void enter(const lt_procset *ps, const lt_proc *p, const lt_proc_step *s,
                  const lt_dossier_event *ev, const lt_dossier_state *cur,
                  lt_dossier_state *next)
{
    lt_dossier_state n;
    if (cur && strcmp(cur->step, s->id) == 0) {
        n = *cur;
    } else {
        memset(&n, 0, sizeof n);
        if (cur) {
            n.started_ms = cur->started_ms;
            n.last_seq = cur->last_seq;
            n.nevents = cur->nevents;
        } else {
            n.started_ms = ev->at_ms;
        }
        snprintf(n.procedure, sizeof n.procedure, "%s", p->code);
        snprintf(n.step, sizeof n.step, "%s", s->id);
        n.step_started_ms = ev->at_ms;
        n.step_deadline_ms = lt_calendar_deadline(ps->cal, ev->at_ms, s->allowance);
    }
    n.status = (uint8_t)ev->status;
    snprintf(n.agency, sizeof n.agency, "%s", ev->agency);
    n.last_event_ms = ev->at_ms;
    n.closed = p->follows[ev->status] == 0;
    *next = n;
}

lt_err lt_proc_advance(const lt_procset *ps, const lt_proc *p, const lt_dossier_state *cur,
                       const lt_dossier_event *ev, lt_dossier_state *next, lt_why *why)
{
    const char *dc = ev->dossier_code ? ev->dossier_code : "";
    unsigned y = ev->status;
    char a[64], b[64];
    if (y < 1 || y > LT_PROC_STATUS_MAX)
        return lt_fail(why, LT_EPROCEDURE, "dossier %s: status %u is not a dossier status 1..10",
                       dc, y);
    if (!cur) {
        for (size_t i = 0; i < p->nsteps; i++) {
            const lt_proc_step *s = &p->steps[i];
            if (s->start && (s->statuses & p->follows[0] & B(y)) && agency_in(s, ev->agency)) {
                enter(ps, p, s, ev, NULL, next);
                return LT_OK;
            }
        }
        const lt_proc_step *s0 = NULL;
        for (size_t i = 0; i < p->nsteps && !s0; i++)
            if (p->steps[i].start)
                s0 = &p->steps[i];
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s is new to procedure %s: expected step %s by %s with status "
                       "%s; got status %u from %s",
                       dc, p->code, s0->id, s0->agencies[0],
                       set_str(s0->statuses & p->follows[0], a, sizeof a), y, ev->agency);
    }
    if (strcmp(cur->procedure, p->code) != 0)
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s belongs to procedure %s; got an event of procedure %s", dc,
                       cur->procedure, p->code);
    if (cur->closed)
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s is closed (step %s, status %u %s); got status %u from %s", dc,
                       cur->step, cur->status, lt_proc_status_name(cur->status), y, ev->agency);
    if (ev->at_ms < cur->last_event_ms)
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s: event time %lld ms is before its last event's (%lld ms)",
                       dc, (long long)ev->at_ms, (long long)cur->last_event_ms);
    size_t si;
    const lt_proc_step *s = lt_proc_step_find(p, cur->step, &si);
    if (!s)
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s is at step %s, which procedure %s no longer defines", dc,
                       cur->step, p->code);
    uint16_t may = p->follows[cur->status];
    if (!(may & B(y)))
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s at step %s: status %u cannot follow %u (may: %s); from %s",
                       dc, s->id, y, cur->status, set_str(may, a, sizeof a), ev->agency);
    /* A step at a done status hands over: an event that fits a next step moves the dossier
     * there, even when the step itself could take it (one agency doing two steps). */
    bool done = (s->done & B(cur->status)) != 0;
    for (size_t k = 0; done && k < s->nnext; k++) {
        const lt_proc_step *t = &p->steps[s->next[k]];
        if ((t->statuses & B(y)) && agency_in(t, ev->agency)) {
            enter(ps, p, t, ev, cur, next);
            return LT_OK;
        }
    }
    if ((s->statuses & B(y)) && agency_in(s, ev->agency)) {
        enter(ps, p, s, ev, cur, next);
        return LT_OK;
    }
    /* Say what could have come: this step's statuses by its agency, and (once the step is
     * done) the first next step's. */
    if (!done || s->nnext == 0)
        return lt_fail(why, LT_EPROCEDURE,
                       "dossier %s at step %s (status %u): expected status %s from %s%s%s; got "
                       "status %u from %s",
                       dc, s->id, cur->status, set_str(s->statuses & may, a, sizeof a),
                       s->agencies[0], s->nnext ? ", next steps after status " : "",
                       s->nnext ? set_str(s->done, b, sizeof b) : "", y, ev->agency);
    const lt_proc_step *t = &p->steps[s->next[0]];
    return lt_fail(why, LT_EPROCEDURE,
                   "dossier %s at step %s (status %u): expected step %s by %s with status %s "
                   "(or %s by %s); got status %u from %s",
                   dc, s->id, cur->status, t->id, t->agencies[0],
                   set_str(t->statuses & may, a, sizeof a), s->id, s->agencies[0], y,
                   ev->agency);
}
