/*
 * agency.c - parsing and normalizing agency ids (see agency.h for the grammar).
 *
 * Hand-written scanner over bytes: no locale, no regex, every length bounded before use.
 */
#include "agency.h"

#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static char to_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Does g[0..n) look like a level-1 code: one letter and two digits ("H29", "G01")? */
static bool is_level1(const char *g, size_t n)
{
    return n == 3 && is_upper(g[0]) && is_digit(g[1]) && is_digit(g[2]);
}

static bool all_digits(const char *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(g[i]))
            return false;
    return true;
}

/* Printable rendering of untrusted input for a reason string: at most 40 bytes, anything
 * outside printable ASCII as '?'. */
static const char *shown(const char *s, size_t len, char buf[48])
{
    size_t n = len < 40 ? len : 40;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (len > 40) {
        memcpy(buf + 37, "...", 3);
        n = 40;
    }
    buf[n] = '\0';
    return buf;
}

lt_err lt_agency_code_normalize(const char *s, size_t len, char out[LT_AGENCY_CODE_MAX + 1],
                                lt_agency_form *form, lt_why *why)
{
    char show[48];
    if (s == NULL)
        return lt_fail(why, LT_EAGENCY_ID, "agency code missing");
    while (len > 0 && is_blank(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    if (len == 0)
        return lt_fail(why, LT_EAGENCY_ID, "agency code is empty");
    if (len > LT_AGENCY_CODE_MAX)
        return lt_fail(why, LT_EAGENCY_ID, "agency code '%s' is %zu characters (at most %d)",
                       shown(s, len, show), len, LT_AGENCY_CODE_MAX);

    char code[LT_AGENCY_CODE_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char c = to_upper(s[i]);
        if (!(is_digit(c) || is_upper(c) || c == '.'))
            return lt_fail(why, LT_EAGENCY_ID,
                           "agency code '%s': character %zu is not one of 0-9, A-Z, '.'",
                           shown(s, len, show), i + 1);
        code[i] = c;
    }
    code[len] = '\0';
    if (code[0] == '.' || code[len - 1] == '.' || strstr(code, "..") != NULL)
        return lt_fail(why, LT_EAGENCY_ID, "agency code '%s': empty group between dots", code);

    /* Split into groups (at most 18 fit in 35 characters). */
    const char *g[LT_AGENCY_CODE_MAX];
    size_t gl[LT_AGENCY_CODE_MAX], ng = 0;
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (i == len || code[i] == '.') {
            g[ng] = code + start;
            gl[ng] = i - start;
            ng++;
            start = i + 1;
        }
    }

    lt_agency_form f;
    bool qcvn = ng >= 4 && gl[0] == 3 && all_digits(g[0], 3) && gl[1] == 2 &&
                all_digits(g[1], 2) && gl[2] == 2 && all_digits(g[2], 2) && is_level1(g[3], gl[3]);
    if (qcvn) {
        f = ng == 4 ? LT_AGENCY_FORM_QCVN102 : LT_AGENCY_FORM_QCVN102_EXT;
    } else if (is_level1(g[0], gl[0])) {
        f = LT_AGENCY_FORM_QD20;
    } else if (ng >= 4 || (gl[0] == 3 && all_digits(g[0], 3))) {
        return lt_fail(why, LT_EAGENCY_ID,
                       "agency code '%s': QCVN 102 codes are ddd.dd.dd.Xnn (e.g. 000.00.00.H29)",
                       code);
    } else {
        return lt_fail(why, LT_EAGENCY_ID,
                       "agency code '%s': expected QCVN 102 (000.00.00.H29) or Decision 20/2020 "
                       "left-to-right form starting with a level-1 code (H29.20.1)",
                       code);
    }
    memcpy(out, code, len + 1);
    if (form != NULL)
        *form = f;
    return LT_OK;
}

lt_err lt_agency_parse(const char *s, size_t len, lt_agency_id *out, lt_why *why)
{
    char show[48];
    if (s == NULL)
        return lt_fail(why, LT_EAGENCY_ID, "agency id missing");
    if (len > LT_AGENCY_INPUT_MAX)
        return lt_fail(why, LT_EAGENCY_ID, "agency id is %zu bytes (at most %d)", len,
                       LT_AGENCY_INPUT_MAX);
    while (len > 0 && is_blank(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    if (len == 0)
        return lt_fail(why, LT_EAGENCY_ID, "agency id is empty");

    /* Four parts separated by ':'. */
    const char *part[4];
    size_t pl[4], np = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ':') {
            if (np == 4)
                return lt_fail(why, LT_EAGENCY_ID,
                               "agency id '%s': more than 4 ':'-separated parts "
                               "(VN:GOV:<agency code>:<subsystem>)",
                               shown(s, len, show));
            part[np] = s + start;
            pl[np] = i - start;
            np++;
            start = i + 1;
        }
    }
    if (np != 4)
        return lt_fail(why, LT_EAGENCY_ID,
                       "agency id '%s': expected VN:GOV:<agency code>:<subsystem>",
                       shown(s, len, show));
    if (!(pl[0] == 2 && to_upper(part[0][0]) == 'V' && to_upper(part[0][1]) == 'N'))
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': instance must be VN",
                       shown(s, len, show));
    if (!(pl[1] == 3 && to_upper(part[1][0]) == 'G' && to_upper(part[1][1]) == 'O' &&
          to_upper(part[1][2]) == 'V'))
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': member class must be GOV",
                       shown(s, len, show));

    lt_agency_id id;
    lt_why inner;
    if (pl[2] == 0 || is_blank(part[2][0]) || is_blank(part[2][pl[2] - 1]))
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': agency code is empty or padded",
                       shown(s, len, show));
    if (lt_agency_code_normalize(part[2], pl[2], id.code, &id.form, &inner) != LT_OK)
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': %s", shown(s, len, show),
                       inner.msg);

    size_t sl = pl[3];
    if (sl == 0)
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': subsystem is empty",
                       shown(s, len, show));
    if (sl > LT_AGENCY_SUBSYSTEM_MAX)
        return lt_fail(why, LT_EAGENCY_ID, "agency id '%s': subsystem longer than %d",
                       shown(s, len, show), LT_AGENCY_SUBSYSTEM_MAX);
    for (size_t i = 0; i < sl; i++) {
        char c = to_lower(part[3][i]);
        bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return lt_fail(why, LT_EAGENCY_ID,
                           "agency id '%s': subsystem may hold a-z, 0-9, '_' and '-' and must "
                           "start with a letter or digit",
                           shown(s, len, show));
        id.subsystem[i] = c;
    }
    id.subsystem[sl] = '\0';

    /* Level-1 code: the 4th group of a QCVN 102 code, the 1st of a Decision 20 one. */
    const char *l1 = id.form == LT_AGENCY_FORM_QD20 ? id.code : id.code + 10;
    memcpy(id.level1, l1, 3);
    id.level1[3] = '\0';

    /* "VN:GOV:" + code + ":" + subsystem fits: 7 + 35 + 1 + 64 < LT_AGENCY_ID_MAX. */
    size_t cl = strlen(id.code);
    memcpy(id.id, "VN:GOV:", 7);
    memcpy(id.id + 7, id.code, cl);
    id.id[7 + cl] = ':';
    memcpy(id.id + 8 + cl, id.subsystem, sl + 1);
    *out = id;
    return LT_OK;
}

lt_err lt_agency_normalize(const char *s, char out[LT_AGENCY_ID_MAX], lt_why *why)
{
    if (s == NULL)
        return lt_fail(why, LT_EAGENCY_ID, "agency id missing");
    lt_agency_id id;
    lt_err e = lt_agency_parse(s, strnlen(s, LT_AGENCY_INPUT_MAX + 1), &id, why);
    if (e != LT_OK)
        return e;
    memcpy(out, id.id, strlen(id.id) + 1);
    return LT_OK;
}

bool lt_agency_is_normalized(const char *s)
{
    if (s == NULL)
        return false;
    lt_agency_id id;
    size_t n = strnlen(s, LT_AGENCY_INPUT_MAX + 1);
    return lt_agency_parse(s, n, &id, NULL) == LT_OK && strcmp(id.id, s) == 0;
}

const char *lt_agency_form_name(lt_agency_form form)
{
    switch (form) {
    case LT_AGENCY_FORM_QCVN102:
        return "QCVN102";
    case LT_AGENCY_FORM_QCVN102_EXT:
        return "QCVN102_EXT";
    case LT_AGENCY_FORM_QD20:
        return "QD20";
    }
    return "?";
}
