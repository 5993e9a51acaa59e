/*
 * syllable.c - Vietnamese syllable checker (see syllable.h).
 *
 * A syllable is ONSET? MEDIAL? NUCLEUS CODA? with one tone on the whole. The word is first
 * reduced to its lowercase toneless spelling ("Nguyễn" -> "nguyên", tone tilde), then every
 * onset that is a prefix is tried against the rhyme tables below. Tables follow standard
 * Vietnamese orthography (e.g. "gi"/"qu" onsets, "iê"/"yê", "uô", "ươ" need a coda).
 */
#include "syllable.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_LETTERS 8

enum { TONE_NONE, TONE_ACUTE, TONE_GRAVE, TONE_HOOK, TONE_TILDE, TONE_DOT };

/* Longest first, so "ngh" is tried before "ng" and "n"; every match is tried anyway. */
static const char *const onsets[] = {
    "ngh", "ng", "nh", "ch", "gh", "gi", "kh", "ph", "th", "tr", "qu", "b", "c", "d",
    "\xc4\x91" /* đ */, "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "",
};

struct nucleus {
    const char *v;     /* toneless spelling */
    int open;          /* may end the syllable without a coda */
    const char *codas; /* allowed codas, space-separated with spaces around */
    int medial;        /* which medials may precede: 1 'o', 2 'u' (or the u of "qu") */
};

static const struct nucleus nuclei[] = {
    {"a", 1, " c ch m n ng nh p t i o u y ", 1},
    {"\xc4\x83" /* ă */, 0, " c m n ng p t ", 1},
    {"\xc3\xa2" /* â */, 0, " c m n ng p t u y ", 2},
    {"e", 1, " c ch m n ng p t o ", 1},
    {"\xc3\xaa" /* ê */, 1, " ch m n nh p t u ", 2},
    {"i", 1, " ch m n nh p t u ", 0},
    {"o", 1, " c m n ng p t i ", 0},
    {"\xc3\xb4" /* ô */, 1, " c m n ng p t i ", 0},
    {"\xc6\xa1" /* ơ */, 1, " m n p t i ", 2},
    {"u", 1, " c m n ng p t i ", 0},
    {"\xc6\xb0" /* ư */, 1, " c m n ng t i u ", 0},
    {"y", 1, " ", 2},
    {"ia", 1, " ", 0},
    {"i\xc3\xaa" /* iê */, 0, " c m n ng p t u ", 0},
    {"ya", 1, " ", 2},
    {"y\xc3\xaa" /* yê */, 0, " c m n ng p t u ", 2},
    {"ua", 1, " ", 0},
    {"u\xc3\xb4" /* uô */, 0, " c m n ng t i ", 0},
    {"\xc6\xb0" "a" /* ưa */, 1, " ", 0},
    {"\xc6\xb0\xc6\xa1" /* ươ */, 0, " c m n ng p t i u ", 0},
    {"oo", 0, " c ng ", 0},
};

/* "y" after the medial u (uy, quy) takes codas that a bare y does not. */
static const char uy_codas[] = " ch n nh p t u ";

static bool is_stop(const char *coda, size_t n)
{
    return (n == 1 && (coda[0] == 'c' || coda[0] == 'p' || coda[0] == 't')) ||
           (n == 2 && coda[0] == 'c' && coda[1] == 'h');
}

static bool coda_allowed(const char *list, const char *coda, size_t n)
{
    if (n == 0 || n > 2)
        return false;
    char key[5] = {' ', coda[0], n == 2 ? coda[1] : ' ', ' ', 0};
    if (n == 1)
        key[3] = 0;
    return strstr(list, key) != NULL;
}

/* rhyme: toneless spelling after the onset (and after the u of "qu" when qu is set). */
static bool rhyme_ok(const char *r, size_t n, int tone, bool qu)
{
    for (int medial = 0; medial <= 2; medial++) {
        const char *p = r;
        size_t left = n;
        if (medial == 1) {
            if (qu || left == 0 || p[0] != 'o')
                continue;
            p++, left--;
        } else if (medial == 2) {
            if (qu || left == 0 || p[0] != 'u')
                continue;
            p++, left--;
        }
        for (size_t i = 0; i < sizeof nuclei / sizeof nuclei[0]; i++) {
            const struct nucleus *nu = &nuclei[i];
            size_t vl = strlen(nu->v);
            if (vl > left || memcmp(p, nu->v, vl) != 0)
                continue;
            int need = medial;
            if (qu) {
                /* the u of "qu" is the medial: "quốc", "quân", "quyết", but no "quu" */
                if (nu->v[0] == 'u' || strncmp(nu->v, "\xc6\xb0", 2) == 0)
                    continue;
                need = 2;
            } else if (need != 0 && !(nu->medial & need)) {
                continue;
            }
            const char *coda = p + vl;
            size_t cl = left - vl;
            const char *codas = nu->codas;
            if (need == 2 && strcmp(nu->v, "y") == 0)
                codas = uy_codas;
            if (cl == 0) {
                if (nu->open)
                    return true;
                continue;
            }
            if (!coda_allowed(codas, coda, cl))
                continue;
            if (is_stop(coda, cl) && tone != TONE_ACUTE && tone != TONE_DOT)
                continue;
            return true;
        }
    }
    return false;
}

static int tone_of(utf8proc_int32_t c)
{
    switch (c) {
    case 0x0301: return TONE_ACUTE;
    case 0x0300: return TONE_GRAVE;
    case 0x0309: return TONE_HOOK;
    case 0x0303: return TONE_TILDE;
    case 0x0323: return TONE_DOT;
    default: return -1;
    }
}

/* Apply a vowel modifier (circumflex, breve, horn) to a lowercase base; 0 if it does not fit. */
static utf8proc_int32_t modify(utf8proc_int32_t base, utf8proc_int32_t mark)
{
    if (mark == 0x0302) {
        if (base == 'a') return 0xE2;
        if (base == 'e') return 0xEA;
        if (base == 'o') return 0xF4;
    } else if (mark == 0x0306) {
        if (base == 'a') return 0x103;
    } else if (mark == 0x031B) {
        if (base == 'o') return 0x1A1;
        if (base == 'u') return 0x1B0;
    }
    return 0;
}

static bool is_vn_base(utf8proc_int32_t c)
{
    if (c == 0x111)
        return true;
    if (c < 'a' || c > 'z')
        return false;
    return c != 'f' && c != 'j' && c != 'w' && c != 'z';
}

bool lt_syllable_is_vietnamese(const char *word, size_t len)
{
    utf8proc_int32_t letters[MAX_LETTERS];
    bool upper[MAX_LETTERS];
    int n = 0, tone = TONE_NONE;
    bool have_tone = false;
    const uint8_t *s = (const uint8_t *)word;
    size_t i = 0;

    if (len == 0 || len > 64)
        return false;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return false;
        i += (size_t)k;
        utf8proc_int32_t dec[8];
        int last;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, dec, 8, UTF8PROC_DECOMPOSE, &last);
        if (nd <= 0 || nd > 8)
            return false;
        for (utf8proc_ssize_t j = 0; j < nd; j++) {
            utf8proc_int32_t c = dec[j];
            int t = tone_of(c);
            if (t >= 0) {
                if (have_tone || n == 0)
                    return false;
                have_tone = true;
                tone = t;
                continue;
            }
            if (c == 0x0302 || c == 0x0306 || c == 0x031B) {
                if (n == 0)
                    return false;
                utf8proc_int32_t m = modify(letters[n - 1], c);
                if (m == 0)
                    return false;
                letters[n - 1] = m;
                continue;
            }
            utf8proc_int32_t lo = utf8proc_tolower(c);
            if (!is_vn_base(lo) || n == MAX_LETTERS)
                return false;
            upper[n] = lo != c;
            letters[n++] = lo;
        }
    }
    /* lower, UPPER or Title case only */
    bool all_upper = true, rest_lower = true;
    for (int j = 0; j < n; j++) {
        all_upper = all_upper && upper[j];
        if (j > 0)
            rest_lower = rest_lower && !upper[j];
    }
    if (!all_upper && !rest_lower)
        return false;

    char sp[MAX_LETTERS * 4 + 1];
    size_t sl = 0;
    for (int j = 0; j < n; j++)
        sl += (size_t)utf8proc_encode_char(letters[j], (utf8proc_uint8_t *)sp + sl);
    sp[sl] = 0;

    for (size_t o = 0; o < sizeof onsets / sizeof onsets[0]; o++) {
        size_t ol = strlen(onsets[o]);
        if (ol > sl || memcmp(sp, onsets[o], ol) != 0)
            continue;
        bool qu = ol == 2 && sp[0] == 'q';
        /* "gi" before a consonant or at the end is g + i: "gìn", "gì" (tried via "g"). */
        if (rhyme_ok(sp + ol, sl - ol, tone, qu))
            return true;
    }
    return false;
}
