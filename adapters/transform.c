/*
 * transform.c - the transform chain of a mapping field, its validation, and versioned
 * look-up tables (old -> new administrative-unit codes by effective date).
 *
 * Every transform works on a list of UTF-8 NFC strings (usually one; `split` makes several)
 * and either rewrites each string or fails naming the value and the reason. Nothing is
 * guessed: a date that does not match its format, a number whose separators do not follow
 * the configured convention, a value missing from a map or a table is an error for that row,
 * never a silent pass-through. Formats and tables are checked when the mapping is loaded.
 *
 * Regexes are POSIX extended (regcomp) and match bytes: fine for the ASCII classes used on
 * ids and codes; a class such as [[:alpha:]] does not know Vietnamese letters.
 * Threads: parsed transforms are immutable; apply may run in any number of threads.
 */
#include "mapping_int.h"

#include "reader.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void lt_mvals_clear(lt_mvals *vs)
{
    for (size_t i = 0; i < vs->n; i++)
        free(vs->v[i]);
    free(vs->v);
    vs->v = NULL;
    vs->n = 0;
}

bool lt_mvals_push(lt_mvals *vs, char *s)
{
    char **p = s == NULL ? NULL : realloc(vs->v, (vs->n + 1) * sizeof *p);
    if (p == NULL) {
        free(s);
        return false;
    }
    p[vs->n++] = s;
    vs->v = p;
    return true;
}

size_t lt_mutf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static lt_err bad_value(char *bad, size_t cap, const char *value, lt_why *why,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static lt_err bad_value(char *bad, size_t cap, const char *value, lt_why *why,
                        const char *fmt, ...)
{
    if (cap)
        snprintf(bad, cap, "%s", value ? value : "");
    if (why) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->msg, sizeof why->msg, fmt, ap);
        va_end(ap);
    }
    return LT_EVALIDATE;
}

/* ---- whitespace and case ------------------------------------------------------------ */

/* Length of the whitespace character at s (ASCII space class or U+00A0), 0 if none. */
static size_t ws_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f')
        return 1;
    if (c == 0xC2 && (unsigned char)s[1] == 0xA0)
        return 2;
    return 0;
}

/* trim: drop leading and trailing whitespace; collapse: also squeeze inner runs into one
 * space; remove: drop every whitespace character. */
static char *trim_dup(const char *s, bool collapse, bool remove)
{
    size_t w;
    while ((w = ws_len(s)) != 0)
        s += w;
    char *out = malloc(strlen(s) + 1), *o = out, *end = out;
    if (out == NULL)
        return NULL;
    while (*s) {
        if ((w = ws_len(s)) != 0) {
            if (remove) {
                s += w;
            } else if (collapse) {
                while ((w = ws_len(s)) != 0)
                    s += w;
                if (*s)
                    *o++ = ' ';
            } else {
                memcpy(o, s, w);
                o += w, s += w;
            }
            continue;
        }
        *o++ = *s++;
        end = o;
    }
    *end = 0;
    return out;
}

enum casing { CASE_UPPER, CASE_LOWER, CASE_TITLE };

static char *recase(const char *s, enum casing how)
{
    size_t n = strlen(s);
    /* case mapping of Vietnamese letters keeps the UTF-8 length within 2x */
    char *out = malloc(2 * n + 4);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    bool word_start = true;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t left = (utf8proc_ssize_t)n;
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, left, &cp);
        if (k <= 0) { /* not UTF-8: readers never hand such text; copy the byte */
            out[o++] = (char)*p;
            p++, left--;
            continue;
        }
        utf8proc_int32_t m = cp;
        if (how == CASE_UPPER)
            m = utf8proc_toupper(cp);
        else if (how == CASE_LOWER)
            m = utf8proc_tolower(cp);
        else
            m = word_start ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
        if (how == CASE_TITLE) {
            utf8proc_category_t c = utf8proc_category(cp);
            bool letter = (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) ||
                          (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
            word_start = !letter && cp != '\'';
        }
        utf8proc_ssize_t w = utf8proc_encode_char(m, (utf8proc_uint8_t *)out + o);
        if (w <= 0 || o + (size_t)w > 2 * n + 3) {
            free(out);
            return NULL;
        }
        o += (size_t)w;
        p += k, left -= k;
    }
    out[o] = 0;
    utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)out);
    free(out);
    return (char *)nfc;
}

/* ---- dates ------------------------------------------------------------------------- */

/* Field index of the token at fmt (0 year .. 5 second) and its length, or -1. */
static int tok_at(const char *fmt, size_t *len)
{
    static const struct {
        const char *t;
        int f;
    } toks[] = {{"yyyy", 0}, {"mm", 1}, {"dd", 2}, {"HH", 3}, {"MI", 4}, {"SS", 5}};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        size_t l = strlen(toks[i].t);
        if (strncmp(fmt, toks[i].t, l) == 0) {
            *len = l;
            return toks[i].f;
        }
    }
    return -1;
}

bool lt_mdate_fmt_ok(const char *fmt, bool need_date)
{
    bool seen[6] = {false};
    for (size_t i = 0; fmt[i];) {
        size_t l;
        int f = tok_at(fmt + i, &l);
        if (f < 0) {
            i++;
            continue;
        }
        if (seen[f])
            return false;
        seen[f] = true;
        i += l;
    }
    if (need_date && !(seen[0] && seen[1] && seen[2]))
        return false;
    /* a time needs its hour and minute */
    if ((seen[4] || seen[5]) && !seen[3])
        return false;
    return seen[0] || seen[1] || seen[2] || seen[3];
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

bool lt_mdate_parse(const char *fmt, const char *s, int f[6])
{
    int v[6] = {0, 1, 1, 0, 0, 0};
    size_t i = 0;
    while (fmt[i]) {
        size_t l;
        int t = tok_at(fmt + i, &l);
        if (t < 0) {
            if (*s != fmt[i])
                return false;
            s++, i++;
            continue;
        }
        i += l;
        size_t next_l;
        bool literal_next = fmt[i] == 0 || tok_at(fmt + i, &next_l) < 0;
        size_t want = t == 0 ? 4 : 2, got = 0;
        int x = 0;
        while (got < want && isdigit((unsigned char)s[got]))
            x = x * 10 + (s[got++] - '0');
        if (got != want && !(t != 0 && literal_next && got >= 1))
            return false;
        s += got;
        v[t] = x;
    }
    if (*s != 0)
        return false;
    if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays(v[0], v[1]) ||
        v[3] > 23 || v[4] > 59 || v[5] > 59)
        return false;
    memcpy(f, v, sizeof v);
    return true;
}

static char *date_format(const char *fmt, const int f[6])
{
    char buf[128];
    size_t o = 0;
    for (size_t i = 0; fmt[i] && o < sizeof buf - 8;) {
        size_t l;
        int t = tok_at(fmt + i, &l);
        if (t < 0) {
            buf[o++] = fmt[i++];
            continue;
        }
        o += (size_t)snprintf(buf + o, sizeof buf - o, t == 0 ? "%04d" : "%02d", f[t]);
        i += l;
    }
    buf[o] = 0;
    return strdup(buf);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool parse_tz(const char *s, int *min)
{
    if (strcmp(s, "Z") == 0 || strcmp(s, "UTC") == 0) {
        *min = 0;
        return true;
    }
    if ((s[0] != '+' && s[0] != '-') || !isdigit((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[2]) || s[3] != ':' || !isdigit((unsigned char)s[4]) ||
        !isdigit((unsigned char)s[5]) || s[6] != 0)
        return false;
    int h = (s[1] - '0') * 10 + (s[2] - '0'), m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59)
        return false;
    *min = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
    return true;
}

/* ---- numbers ----------------------------------------------------------------------- */

/* "1.234.567,89" with thousands "." and decimal "," -> "1234567.89". NULL if s does not
 * follow the convention (groups of three after the first, one decimal mark). */
static char *number_canon(const char *s, const char *th, const char *dec, bool integer,
                          bool *frac_lost)
{
    size_t tl = strlen(th), dl = strlen(dec), n = strlen(s);
    char *out = malloc(n + 3), *o = out;
    if (out == NULL)
        return NULL;
    *frac_lost = false;
    if (*s == '-' || *s == '+') {
        if (*s == '-')
            *o++ = '-';
        s++;
    }
    char *int_start = o;
    size_t group = 0, groups = 0;
    bool any = false;
    for (;;) {
        if (isdigit((unsigned char)*s)) {
            *o++ = *s++;
            group++;
            any = true;
        } else if (tl && strncmp(s, th, tl) == 0 && any) {
            if ((groups == 0 && group > 3) || (groups > 0 && group != 3))
                goto bad;
            groups++;
            group = 0;
            s += tl;
        } else {
            break;
        }
    }
    if (!any || (groups > 0 && group != 3))
        goto bad;
    char *frac = NULL;
    if (dl && strncmp(s, dec, dl) == 0) {
        s += dl;
        frac = o + 1;
        *o++ = '.';
        size_t fd = 0;
        while (isdigit((unsigned char)*s))
            *o++ = *s++, fd++;
        if (fd == 0)
            goto bad;
    }
    if (*s != 0)
        goto bad;
    *o = 0;
    if (frac) {
        /* drop trailing zeros of the fraction, and the mark if nothing is left */
        while (o > frac && o[-1] == '0')
            *--o = 0;
        if (o == frac)
            *--o = 0;
        else if (integer) {
            *frac_lost = true;
            goto bad;
        }
    }
    /* strip leading zeros of the integer part, keeping one */
    char *z = int_start;
    while (z[0] == '0' && isdigit((unsigned char)z[1]))
        z++;
    if (z != int_start)
        memmove(int_start, z, strlen(z) + 1);
    if (strcmp(out, "-0") == 0)
        memmove(out, out + 1, 2);
    return out;
bad:
    free(out);
    return NULL;
}

/* ---- look-up tables ---------------------------------------------------------------- */

static int row_cmp(const void *a, const void *b)
{
    const lt_mtable_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->effective, y->effective);
}

static bool is_iso_date(const char *s)
{
    int f[6];
    return strlen(s) == 10 && lt_mdate_parse("yyyy-mm-dd", s, f);
}

struct tload {
    lt_mtable *t;
    const char *cols[4]; /* key value effective note */
    lt_err err;
    lt_why why;
};

static bool add_row(struct tload *tl, const char *v[4], const char *where, size_t line)
{
    lt_mtable *t = tl->t;
    if (v[0] == NULL || v[1] == NULL) {
        tl->err = lt_fail(&tl->why, LT_ECONFIG, "%s:%zu: row without its %s column", where,
                          line, v[0] == NULL ? tl->cols[0] : tl->cols[1]);
        return false;
    }
    const char *eff = v[2] ? v[2] : "";
    if (*eff && !is_iso_date(eff)) {
        tl->err = lt_fail(&tl->why, LT_ECONFIG, "%s:%zu: %s '%.40s' is not a yyyy-mm-dd date",
                          where, line, tl->cols[2], eff);
        return false;
    }
    lt_mtable_row *p = realloc(t->rows, (t->n + 1) * sizeof *p);
    if (p == NULL)
        goto nomem;
    t->rows = p;
    lt_mtable_row r = {strdup(v[0]), strdup(v[1]), strdup(eff), strdup(v[3] ? v[3] : "")};
    if (!r.key || !r.value || !r.effective || !r.note) {
        free(r.key), free(r.value), free(r.effective), free(r.note);
        goto nomem;
    }
    t->rows[t->n++] = r;
    return true;
nomem:
    tl->err = lt_fail(&tl->why, LT_ENOMEM, "out of memory");
    return false;
}

static int table_csv_row(void *ctx, lt_record *rec)
{
    struct tload *tl = ctx;
    const char *v[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        if (tl->cols[i] == NULL)
            continue;
        lt_field_ref ref = {.by = LT_FIELD_NAME, .name = tl->cols[i]};
        lt_why w;
        if (lt_record_get(rec, &ref, &v[i], &w) != LT_OK)
            v[i] = NULL;
    }
    return add_row(tl, v, lt_record_file(rec), lt_record_line(rec)) ? 0 : 1;
}

static void table_csv_reject(void *ctx, const lt_reject *rej)
{
    struct tload *tl = ctx;
    if (tl->err == LT_OK)
        tl->err = lt_fail(&tl->why, LT_ECONFIG, "%s:%zu: %s", rej->file, rej->line, rej->reason);
}

lt_err lt_mtable_load(lt_mtable *t, const char *path, const char *key_col,
                      const char *value_col, const char *effective_col, const char *note_col,
                      lt_why *why)
{
    struct tload tl = {.t = t, .cols = {key_col, value_col, effective_col, note_col}};
    size_t pl = strlen(path);
    bool yaml = (pl > 5 && strcmp(path + pl - 5, ".yaml") == 0) ||
                (pl > 4 && strcmp(path + pl - 4, ".yml") == 0);
    if (yaml) {
        lt_ynode *root = NULL;
        const lt_ynode *rows = NULL;
        lt_err e = lt_ycfg_load(path, &root, why);
        if (e)
            return e == LT_EIO ? lt_fail(why, LT_ECONFIG, "%s", why->msg) : e;
        e = lt_ycfg_seq(root, "rows", true, &rows, why);
        for (size_t i = 0; e == LT_OK && i < lt_ycfg_len(rows); i++) {
            const lt_ynode *r = lt_ycfg_at(rows, i);
            if (lt_ycfg_kind(r) != LT_Y_MAP) {
                e = lt_ycfg_fail(r, why, "expected a map of column: value");
                break;
            }
            const char *v[4] = {NULL, NULL, NULL, NULL};
            for (int c = 0; c < 4; c++) {
                const lt_ynode *x = tl.cols[c] ? lt_ycfg_get(r, tl.cols[c]) : NULL;
                v[c] = x ? lt_ycfg_scalar(x) : NULL;
            }
            if (!add_row(&tl, v, lt_ycfg_file(r), (size_t)lt_ycfg_line(r))) {
                e = tl.err;
                *why = tl.why;
            }
        }
        lt_ycfg_free(&root);
        if (e)
            return e;
    } else {
        lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_UTF8};
        lt_reader_sink sink = {table_csv_row, table_csv_reject, &tl};
        lt_why w;
        lt_err e = lt_reader_run_file(&o, path, &sink, NULL, &w);
        if (tl.err) {
            *why = tl.why;
            return LT_ECONFIG;
        }
        if (e)
            return lt_fail(why, LT_ECONFIG, "%s", w.msg);
    }
    if (t->n == 0)
        return lt_fail(why, LT_ECONFIG, "%s: the table has no rows", path);
    qsort(t->rows, t->n, sizeof *t->rows, row_cmp);
    return LT_OK;
}

void lt_mtable_fini(lt_mtable *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->rows[i].key);
        free(t->rows[i].value);
        free(t->rows[i].effective);
        free(t->rows[i].note);
    }
    free(t->rows);
    free(t->name);
    memset(t, 0, sizeof *t);
}

/* ---- parsing transforms ------------------------------------------------------------ */

static lt_err compile_re(const lt_ynode *n, const char *pattern, regex_t *re, lt_why *why)
{
    int rc = regcomp(re, pattern, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof msg);
        return lt_ycfg_fail(n, why, "bad regular expression '%.60s': %s", pattern, msg);
    }
    return LT_OK;
}

static lt_err dup_opt(const lt_ynode *map, const char *key, const char *dflt, char **out,
                      lt_why *why)
{
    const char *s;
    lt_err e = lt_ycfg_str(map, key, dflt, &s, why);
    if (e)
        return e;
    if ((*out = strdup(s)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    return LT_OK;
}

lt_err lt_transform_parse(const lt_ynode *n, lt_transform *t, const lt_mtable *tables,
                          size_t ntables, int (*slot_of)(void *ctx, const char *name),
                          void *ctx, lt_why *why)
{
    static const struct {
        const char *name;
        lt_tf_kind kind;
        bool has_opts;
    } kinds[] = {
        {"trim", LT_TF_TRIM, false},       {"collapse_spaces", LT_TF_COLLAPSE, false},
        {"upper", LT_TF_UPPER, false},     {"lower", LT_TF_LOWER, false},
        {"title", LT_TF_TITLE, false},     {"remove_whitespace", LT_TF_REMOVE_WS, false},
        {"date", LT_TF_DATE, true},        {"unix_ms", LT_TF_UNIX_MS, true},
        {"number", LT_TF_NUMBER, true},    {"map", LT_TF_MAP, true},
        {"lookup", LT_TF_LOOKUP, true},    {"extract", LT_TF_EXTRACT, true},
        {"replace", LT_TF_REPLACE, true},  {"split", LT_TF_SPLIT, true},
        {"prefix", LT_TF_PREFIX, true},    {"suffix", LT_TF_SUFFIX, true},
        {"pad_left", LT_TF_PAD_LEFT, true},
    };
    memset(t, 0, sizeof *t);
    t->date_slot = -1;
    const char *name = NULL;
    const lt_ynode *opt = NULL;
    if (lt_ycfg_kind(n) == LT_Y_SCALAR) {
        name = lt_ycfg_scalar(n);
    } else if (lt_ycfg_kind(n) == LT_Y_MAP && lt_ycfg_len(n) == 1) {
        name = lt_ycfg_key_at(n, 0);
        opt = lt_ycfg_at(n, 0);
    } else {
        return lt_ycfg_fail(n, why, "a transform is a name (trim) or a map of one name to its "
                                    "options ({date: {from: dd/mm/yyyy}})");
    }
    size_t k = 0, nk = sizeof kinds / sizeof kinds[0];
    while (k < nk && strcmp(kinds[k].name, name) != 0)
        k++;
    if (k == nk)
        return lt_ycfg_fail(n, why,
                            "unknown transform '%.40s' (expected one of: trim, collapse_spaces, "
                            "upper, lower, title, remove_whitespace, date, unix_ms, number, map, "
                            "lookup, extract, replace, split, prefix, suffix, pad_left)",
                            name);
    t->kind = kinds[k].kind;
    if (kinds[k].has_opts && opt == NULL)
        return lt_ycfg_fail(n, why, "transform '%s' needs options", name);
    if (!kinds[k].has_opts && opt != NULL && lt_ycfg_kind(opt) != LT_Y_SCALAR)
        return lt_ycfg_fail(opt, why, "transform '%s' takes no options", name);
    lt_err e = LT_OK;
    bool scalar = opt && lt_ycfg_kind(opt) == LT_Y_SCALAR;
    switch (t->kind) {
    case LT_TF_DATE:
    case LT_TF_UNIX_MS: {
        static const char *const date_keys[] = {"from", "to", NULL};
        static const char *const ms_keys[] = {"from", "tz", NULL};
        if (scalar) {
            if ((t->a = strdup(lt_ycfg_scalar(opt))) == NULL)
                return lt_fail(why, LT_ENOMEM, "out of memory");
        } else if ((e = lt_ycfg_check_keys(opt, t->kind == LT_TF_DATE ? date_keys : ms_keys,
                                           why)) != LT_OK ||
                   (e = dup_opt(opt, "from", NULL, &t->a, why)) != LT_OK) {
            return e;
        }
        if (!lt_mdate_fmt_ok(t->a, true))
            return lt_ycfg_fail(opt, why,
                                "date format '%.40s' needs yyyy, mm and dd once each (HH, MI, "
                                "SS for the time)",
                                t->a);
        if (t->kind == LT_TF_DATE) {
            if (scalar)
                t->b = strdup("yyyy-mm-dd");
            else if ((e = dup_opt(opt, "to", "yyyy-mm-dd", &t->b, why)) != LT_OK)
                return e;
            if (t->b == NULL)
                return lt_fail(why, LT_ENOMEM, "out of memory");
            if (!lt_mdate_fmt_ok(t->b, false))
                return lt_ycfg_fail(opt, why, "output date format '%.40s' has no field", t->b);
        } else {
            const char *tz = "+07:00";
            if (!scalar && (e = lt_ycfg_str(opt, "tz", "+07:00", &tz, why)) != LT_OK)
                return e;
            if (!parse_tz(tz, &t->tz_min))
                return lt_ycfg_fail(scalar ? opt : lt_ycfg_get(opt, "tz"), why,
                                    "time zone '%.20s' is not Z or +HH:MM / -HH:MM", tz);
        }
        break;
    }
    case LT_TF_NUMBER: {
        static const char *const keys[] = {"thousands", "decimal", "integer", NULL};
        if ((e = lt_ycfg_check_keys(opt, keys, why)) != LT_OK ||
            (e = dup_opt(opt, "thousands", "", &t->a, why)) != LT_OK ||
            (e = dup_opt(opt, "decimal", ".", &t->b, why)) != LT_OK ||
            (e = lt_ycfg_bool(opt, "integer", false, &t->flag, why)) != LT_OK)
            return e;
        if (strcmp(t->a, t->b) == 0 || strlen(t->a) > 4 || strlen(t->b) > 4 || !*t->b ||
            strpbrk(t->a, "0123456789-+") || strpbrk(t->b, "0123456789-+"))
            return lt_ycfg_fail(opt, why,
                                "thousands and decimal marks must differ, be short and not "
                                "digits or signs");
        break;
    }
    case LT_TF_MAP: {
        static const char *const keys[] = {"values", "default", "ignore_case", NULL};
        const lt_ynode *vals = NULL;
        if ((e = lt_ycfg_check_keys(opt, keys, why)) != LT_OK ||
            (e = lt_ycfg_map(opt, "values", true, &vals, why)) != LT_OK ||
            (e = lt_ycfg_bool(opt, "ignore_case", false, &t->flag, why)) != LT_OK)
            return e;
        if (lt_ycfg_get(opt, "default") != NULL &&
            (e = dup_opt(opt, "default", NULL, &t->dflt, why)) != LT_OK)
            return e;
        size_t nv = lt_ycfg_len(vals);
        if (nv == 0)
            return lt_ycfg_fail(vals, why, "a map needs at least one value");
        t->keys = calloc(nv, sizeof *t->keys);
        t->vals = calloc(nv, sizeof *t->vals);
        if (!t->keys || !t->vals)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        for (size_t i = 0; i < nv; i++) {
            const lt_ynode *v = lt_ycfg_at(vals, i);
            if (lt_ycfg_kind(v) != LT_Y_SCALAR)
                return lt_ycfg_fail(v, why, "expected a scalar value");
            t->keys[i] = strdup(lt_ycfg_key_at(vals, i));
            t->vals[i] = strdup(lt_ycfg_scalar(v));
            t->npairs++;
            if (!t->keys[i] || !t->vals[i])
                return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        break;
    }
    case LT_TF_LOOKUP: {
        static const char *const keys[] = {"table", "date", "missing", NULL};
        const char *tname, *date, *missing;
        if ((e = lt_ycfg_check_keys(opt, keys, why)) != LT_OK ||
            (e = lt_ycfg_str(opt, "table", NULL, &tname, why)) != LT_OK ||
            (e = lt_ycfg_str(opt, "date", NULL, &date, why)) != LT_OK ||
            (e = lt_ycfg_str(opt, "missing", "error", &missing, why)) != LT_OK)
            return e;
        for (size_t i = 0; i < ntables && t->table == NULL; i++)
            if (strcmp(tables[i].name, tname) == 0)
                t->table = &tables[i];
        if (t->table == NULL)
            return lt_ycfg_fail(lt_ycfg_get(opt, "table"), why,
                                "no look-up table '%.40s' under lookups:", tname);
        if (strcmp(missing, "keep") == 0)
            t->flag = true;
        else if (strcmp(missing, "error") != 0)
            return lt_ycfg_fail(lt_ycfg_get(opt, "missing"), why,
                                "expected 'error' or 'keep', got '%.20s'", missing);
        if (is_iso_date(date)) {
            if ((t->date_const = strdup(date)) == NULL)
                return lt_fail(why, LT_ENOMEM, "out of memory");
        } else if ((t->date_slot = slot_of(ctx, date)) < 0) {
            return lt_ycfg_fail(lt_ycfg_get(opt, "date"), why,
                                "'%.60s' is neither a yyyy-mm-dd date nor a var or field "
                                "defined before this one",
                                date);
        }
        break;
    }
    case LT_TF_EXTRACT:
    case LT_TF_REPLACE: {
        static const char *const ex_keys[] = {"pattern", "group", NULL};
        static const char *const re_keys[] = {"pattern", "with", NULL};
        bool ex = t->kind == LT_TF_EXTRACT;
        const char *pat;
        int64_t group = -1;
        if ((e = lt_ycfg_check_keys(opt, ex ? ex_keys : re_keys, why)) != LT_OK ||
            (e = lt_ycfg_str(opt, "pattern", NULL, &pat, why)) != LT_OK ||
            (ex && (e = lt_ycfg_int(opt, "group", -1, 0, 9, &group, why)) != LT_OK) ||
            (!ex && (e = dup_opt(opt, "with", "", &t->b, why)) != LT_OK) ||
            (e = compile_re(lt_ycfg_get(opt, "pattern"), pat, &t->re, why)) != LT_OK)
            return e;
        t->has_re = true;
        if (ex) {
            t->group = group >= 0 ? (size_t)group : (t->re.re_nsub >= 1 ? 1 : 0);
            if (t->group > t->re.re_nsub)
                return lt_ycfg_fail(opt, why, "group %zu but the pattern has %zu", t->group,
                                    (size_t)t->re.re_nsub);
        }
        break;
    }
    case LT_TF_SPLIT:
    case LT_TF_PREFIX:
    case LT_TF_SUFFIX:
        if (!scalar)
            return lt_ycfg_fail(opt, why, "transform '%s' takes a string", name);
        if ((t->a = strdup(lt_ycfg_scalar(opt))) == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        if (t->kind == LT_TF_SPLIT && !*t->a)
            return lt_ycfg_fail(opt, why, "split needs a non-empty separator");
        break;
    case LT_TF_PAD_LEFT: {
        static const char *const keys[] = {"width", "char", NULL};
        int64_t w;
        if ((e = lt_ycfg_check_keys(opt, keys, why)) != LT_OK ||
            (e = lt_ycfg_int(opt, "width", 0, 1, 64, &w, why)) != LT_OK ||
            (e = dup_opt(opt, "char", "0", &t->a, why)) != LT_OK)
            return e;
        if (strlen(t->a) != 1)
            return lt_ycfg_fail(opt, why, "char must be one ASCII character");
        t->width = (size_t)w;
        break;
    }
    default:
        break;
    }
    return LT_OK;
}

void lt_transform_fini(lt_transform *t)
{
    free(t->a);
    free(t->b);
    free(t->dflt);
    free(t->date_const);
    for (size_t i = 0; i < t->npairs; i++) {
        free(t->keys[i]);
        free(t->vals[i]);
    }
    free(t->keys);
    free(t->vals);
    if (t->has_re)
        regfree(&t->re);
    memset(t, 0, sizeof *t);
}

/* ---- applying transforms ----------------------------------------------------------- */

static lt_err lookup_one(const lt_transform *t, const char *v, const char *date, char **out,
                         char *bad, size_t cap, lt_why *why)
{
    const lt_mtable *tb = t->table;
    size_t lo = 0, hi = tb->n;
    while (lo < hi) { /* first row whose key >= v */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(tb->rows[mid].key, v) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == tb->n || strcmp(tb->rows[lo].key, v) != 0) {
        if (t->flag) {
            *out = strdup(v);
            return *out ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
        }
        return bad_value(bad, cap, v, why, "'%.40s' is not in look-up table %s", v, tb->name);
    }
    if (date == NULL || !is_iso_date(date))
        return bad_value(bad, cap, v, why,
                         "look-up in %s needs a yyyy-mm-dd date, got '%.20s'", tb->name,
                         date ? date : "");
    const lt_mtable_row *hit = NULL;
    for (size_t i = lo; i < tb->n && strcmp(tb->rows[i].key, v) == 0; i++)
        if (strcmp(tb->rows[i].effective, date) <= 0)
            hit = &tb->rows[i];
    if (hit == NULL) { /* before every change of this code: it still meant itself */
        *out = strdup(v);
        return *out ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
    }
    if (!*hit->value)
        return bad_value(bad, cap, v, why, "'%.20s' has no single successor from %s in %s%s%.150s",
                         v, hit->effective, tb->name, *hit->note ? ": " : "", hit->note);
    *out = strdup(hit->value);
    return *out ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
}

static bool ci_equal(const char *a, const char *b)
{
    char *x = recase(a, CASE_LOWER), *y = recase(b, CASE_LOWER);
    bool eq = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

static char *replace_all(const regex_t *re, const char *s, const char *with)
{
    size_t cap = strlen(s) + 16, o = 0, wl = strlen(with);
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    const char *p = s;
    regmatch_t m;
    int flags = 0;
    for (int guard = 0; guard < 100000 && *p; guard++) {
        if (regexec(re, p, 1, &m, flags) != 0 || m.rm_so < 0)
            break;
        size_t so = (size_t)m.rm_so, eo = (size_t)m.rm_eo;
        size_t need = o + so + wl + (eo == so ? 1 : 0) + 1;
        if (need > cap) {
            char *q = realloc(out, cap = need * 2);
            if (q == NULL) {
                free(out);
                return NULL;
            }
            out = q;
        }
        memcpy(out + o, p, so);
        o += so;
        memcpy(out + o, with, wl);
        o += wl;
        if (eo == so) { /* empty match: copy one byte and move on */
            out[o++] = p[so];
            eo = so + 1;
        }
        p += eo;
        flags = REG_NOTBOL;
    }
    size_t rest = strlen(p);
    if (o + rest + 1 > cap) {
        char *q = realloc(out, o + rest + 1);
        if (q == NULL) {
            free(out);
            return NULL;
        }
        out = q;
    }
    memcpy(out + o, p, rest + 1);
    return out;
}

static lt_err apply_one(const lt_transform *t, const char *v, const char *date, char **out,
                        char *bad, size_t cap, lt_why *why)
{
    char *r = NULL;
    switch (t->kind) {
    case LT_TF_TRIM:
        r = trim_dup(v, false, false);
        break;
    case LT_TF_COLLAPSE:
        r = trim_dup(v, true, false);
        break;
    case LT_TF_REMOVE_WS:
        r = trim_dup(v, true, true);
        break;
    case LT_TF_UPPER:
        r = recase(v, CASE_UPPER);
        break;
    case LT_TF_LOWER:
        r = recase(v, CASE_LOWER);
        break;
    case LT_TF_TITLE:
        r = recase(v, CASE_TITLE);
        break;
    case LT_TF_DATE: {
        int f[6];
        if (!lt_mdate_parse(t->a, v, f))
            return bad_value(bad, cap, v, why, "'%.40s' is not a date in the form %s", v, t->a);
        r = date_format(t->b, f);
        break;
    }
    case LT_TF_UNIX_MS: {
        int f[6];
        if (!lt_mdate_parse(t->a, v, f))
            return bad_value(bad, cap, v, why, "'%.40s' is not a time in the form %s", v, t->a);
        int64_t s = days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5] -
                    (int64_t)t->tz_min * 60;
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)(s * 1000));
        r = strdup(buf);
        break;
    }
    case LT_TF_NUMBER: {
        bool lost = false;
        r = number_canon(v, t->a, t->b, t->flag, &lost);
        if (r == NULL) {
            if (lost)
                return bad_value(bad, cap, v, why, "'%.40s' has a fraction; an integer is expected",
                                 v);
            return bad_value(bad, cap, v, why,
                             "'%.40s' is not a number written with '%s' for thousands and '%s' "
                             "for decimals",
                             v, t->a, t->b);
        }
        break;
    }
    case LT_TF_MAP:
        for (size_t i = 0; i < t->npairs && r == NULL; i++)
            if (strcmp(t->keys[i], v) == 0 || (t->flag && ci_equal(t->keys[i], v)))
                if ((r = strdup(t->vals[i])) == NULL)
                    return lt_fail(why, LT_ENOMEM, "out of memory");
        if (r == NULL && t->dflt)
            r = strdup(t->dflt);
        else if (r == NULL) {
            char list[160];
            size_t o = 0;
            for (size_t i = 0; i < t->npairs && o < sizeof list - 1; i++) {
                int n = snprintf(list + o, sizeof list - o, "%s'%s'", i ? ", " : "", t->keys[i]);
                o = n < 0 ? o : o + (size_t)n > sizeof list - 1 ? sizeof list - 1 : o + (size_t)n;
            }
            return bad_value(bad, cap, v, why, "'%.40s' is not one of the mapped values (%s)", v,
                             list);
        }
        break;
    case LT_TF_LOOKUP:
        return lookup_one(t, v, date, out, bad, cap, why);
    case LT_TF_EXTRACT: {
        regmatch_t m[10];
        if (regexec(&t->re, v, 10, m, 0) != 0 || m[t->group].rm_so < 0)
            return bad_value(bad, cap, v, why, "'%.40s' does not match the extract pattern", v);
        r = dupn(v + m[t->group].rm_so, (size_t)(m[t->group].rm_eo - m[t->group].rm_so));
        break;
    }
    case LT_TF_REPLACE:
        r = replace_all(&t->re, v, t->b);
        break;
    case LT_TF_PREFIX:
    case LT_TF_SUFFIX: {
        size_t a = strlen(t->a), b = strlen(v);
        if ((r = malloc(a + b + 1)) != NULL) {
            if (t->kind == LT_TF_PREFIX)
                memcpy(r, t->a, a), memcpy(r + a, v, b + 1);
            else
                memcpy(r, v, b), memcpy(r + b, t->a, a + 1);
        }
        break;
    }
    case LT_TF_PAD_LEFT: {
        size_t n = lt_mutf8_len(v), b = strlen(v);
        size_t pad = n < t->width ? t->width - n : 0;
        if ((r = malloc(pad + b + 1)) != NULL) {
            memset(r, t->a[0], pad);
            memcpy(r + pad, v, b + 1);
        }
        break;
    }
    case LT_TF_SPLIT:
        break; /* handled by the caller */
    }
    if (r == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *out = r;
    return LT_OK;
}

lt_err lt_transform_apply(const lt_transform *t, lt_mvals *vs,
                          const char *(*date_of)(void *ctx, int slot), void *ctx, char *bad,
                          size_t cap, lt_why *why)
{
    if (t->kind == LT_TF_SPLIT) {
        lt_mvals out = {0};
        size_t sl = strlen(t->a);
        for (size_t i = 0; i < vs->n; i++) {
            const char *p = vs->v[i];
            for (;;) {
                const char *q = strstr(p, t->a);
                size_t n = q ? (size_t)(q - p) : strlen(p);
                if (n > 0 && !lt_mvals_push(&out, dupn(p, n))) {
                    lt_mvals_clear(&out);
                    return lt_fail(why, LT_ENOMEM, "out of memory");
                }
                if (q == NULL)
                    break;
                p = q + sl;
            }
        }
        lt_mvals_clear(vs);
        *vs = out;
        return LT_OK;
    }
    const char *date = NULL;
    if (t->kind == LT_TF_LOOKUP)
        date = t->date_const ? t->date_const : date_of(ctx, t->date_slot);
    for (size_t i = 0; i < vs->n; i++) {
        if (vs->v[i][0] == 0)
            continue; /* an empty value stays empty: `required` decides about it */
        char *r = NULL;
        lt_err e = apply_one(t, vs->v[i], date, &r, bad, cap, why);
        if (e)
            return e;
        free(vs->v[i]);
        vs->v[i] = r;
    }
    return LT_OK;
}

/* ---- validation -------------------------------------------------------------------- */

lt_err lt_validate_parse(const lt_ynode *n, lt_validate *v, lt_why *why)
{
    static const char *const keys[] = {"required", "pattern", "values", "min_length",
                                       "max_length", NULL};
    memset(v, 0, sizeof *v);
    if (n == NULL)
        return LT_OK;
    lt_err e;
    int64_t mn, mx;
    if ((e = lt_ycfg_check_keys(n, keys, why)) != LT_OK ||
        (e = lt_ycfg_bool(n, "required", false, &v->required, why)) != LT_OK ||
        (e = lt_ycfg_int(n, "min_length", 0, 0, 100000, &mn, why)) != LT_OK ||
        (e = lt_ycfg_int(n, "max_length", 0, 0, 100000, &mx, why)) != LT_OK ||
        (e = lt_ycfg_str_list(n, "values", (const char ***)&v->values, &v->nvalues, why)) !=
            LT_OK)
        return e;
    v->min_len = (size_t)mn;
    v->max_len = (size_t)mx;
    if (mx && mn > mx)
        return lt_ycfg_fail(n, why, "min_length %lld is over max_length %lld", (long long)mn,
                            (long long)mx);
    if (lt_ycfg_get(n, "values") != NULL && v->nvalues == 0)
        return lt_ycfg_fail(lt_ycfg_get(n, "values"), why, "values: needs at least one value");
    if (lt_ycfg_get(n, "pattern") != NULL) {
        const char *p;
        if ((e = lt_ycfg_str(n, "pattern", NULL, &p, why)) != LT_OK ||
            (e = compile_re(lt_ycfg_get(n, "pattern"), p, &v->re, why)) != LT_OK)
            return e;
        v->has_re = true;
        if ((v->pattern = strdup(p)) == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    return LT_OK;
}

void lt_validate_fini(lt_validate *v)
{
    if (v->has_re)
        regfree(&v->re);
    free(v->pattern);
    free(v->values); /* the strings are borrowed from the YAML tree */
    memset(v, 0, sizeof *v);
}

lt_err lt_validate_check(const lt_validate *v, const lt_mvals *vs, char *bad, size_t cap,
                         lt_why *why)
{
    bool any = false;
    for (size_t i = 0; i < vs->n; i++) {
        const char *s = vs->v[i];
        if (!*s)
            continue;
        any = true;
        if (v->has_re && regexec(&v->re, s, 0, NULL, 0) != 0)
            return bad_value(bad, cap, s, why, "'%.40s' does not match %s", s, v->pattern);
        if (v->nvalues) {
            size_t k = 0;
            while (k < v->nvalues && strcmp(v->values[k], s) != 0)
                k++;
            if (k == v->nvalues)
                return bad_value(bad, cap, s, why, "'%.40s' is not an allowed value", s);
        }
        size_t len = lt_mutf8_len(s);
        if (len < v->min_len)
            return bad_value(bad, cap, s, why, "%zu characters, at least %zu required", len,
                             v->min_len);
        if (v->max_len && len > v->max_len)
            return bad_value(bad, cap, s, why, "%zu characters, at most %zu allowed", len,
                             v->max_len);
    }
    if (v->required && !any)
        return bad_value(bad, cap, "", why, "required value is missing or empty");
    return LT_OK;
}
