/*
 * charset.c - decoding and encoding of Vietnamese legacy charsets (see charset.h).
 *
 * Every decoder produces raw UTF-8 into a growing buffer, then normalizes to NFC where the
 * source can carry combining marks (UTF-8 and Windows-1258; TCVN3 and VNI decode to
 * precomposed letters only, so their output is already NFC). Reverse lookups for the
 * encoders and the VNI (base, mark) index are built once from charset_tables.c.
 */
#include "charset.h"
#include "charset_int.h"
#include "syllable.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

/* ---- growing byte buffer ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static bool sb_reserve(struct sbuf *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->len)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool sb_put(struct sbuf *b, const void *s, size_t n)
{
    if (!sb_reserve(b, n))
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

static bool sb_byte(struct sbuf *b, uint8_t c)
{
    return sb_put(b, &c, 1);
}

static bool sb_cp(struct sbuf *b, uint32_t cp)
{
    uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, u);
    return n > 0 && sb_put(b, u, (size_t)n);
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- tables built once ---- */

#define REV_MAX 0x2200 /* above every code point the legacy charsets write (U+2122 is last) */

static uint16_t vni_pair[256][64]; /* [base][mark - 0xC0] -> code point */
static uint16_t vni_single[256];   /* one-byte VNI letters */
static bool vni_is_mark[256];      /* bytes that are VNI trailing marks */
static uint16_t vni_rev[REV_MAX];  /* code point -> base | mark << 8 (mark 0: one byte) */
static uint8_t tcvn3_rev[REV_MAX]; /* code point -> TCVN3 byte */
static uint8_t cp1252_rev[REV_MAX];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    for (int i = 0; i < 32; i++)
        if (lt_cp1252_80_9f[i])
            cp1252_rev[lt_cp1252_80_9f[i]] = (uint8_t)(0x80 + i);
    for (int b = 0xA0; b < 0x100; b++)
        cp1252_rev[b] = (uint8_t)b;
    for (int i = 0; i < 128; i++)
        if (lt_tcvn3_high[i])
            tcvn3_rev[lt_tcvn3_high[i]] = (uint8_t)(0x80 + i);
    /* VNI-Windows bytes 0x80..0xBF are the Windows-1252 / Latin-1 symbols; 0xC0..0xFF are
     * marks and letters only. */
    for (int b = 0x80; b < 0xC0; b++) {
        uint16_t cp = b < 0xA0 ? lt_cp1252_80_9f[b - 0x80] : (uint16_t)b;
        if (cp)
            vni_rev[cp] = (uint16_t)b;
    }
    for (int i = 0; i < LT_VN_LETTERS; i++) {
        const struct lt_vn_letter *l = &lt_vn_letters[i];
        if (tcvn3_rev[l->ucs] == 0)
            tcvn3_rev[l->ucs] = l->tcvn3; /* capitals: the small letter's byte */
        vni_rev[l->ucs] = (uint16_t)(l->vni_base | l->vni_mark << 8);
        if (l->vni_mark) {
            vni_pair[l->vni_base][l->vni_mark - 0xC0] = l->ucs;
            vni_is_mark[l->vni_mark] = true;
        }
        else
            vni_single[l->vni_base] = l->ucs;
    }
}

static void tables(void)
{
    pthread_once(&tables_once, build_tables);
}

/* ---- names ---- */

static const char *const names[LT_CHARSET_COUNT] = {
    "auto", "utf-8", "cp1258", "tcvn3", "vni",
    "utf-8+cp1252", "cp1258+cp1252", "tcvn3+cp1252", "vni+cp1252",
};

const char *lt_charset_name(lt_charset cs)
{
    return (unsigned)cs < LT_CHARSET_COUNT ? names[cs] : "?";
}

lt_err lt_charset_from_name(const char *name, lt_charset *cs, lt_why *why)
{
    static const struct {
        const char *alias;
        lt_charset cs;
    } aliases[] = {
        {"utf8", LT_CHARSET_UTF8},          {"windows-1258", LT_CHARSET_CP1258},
        {"cp-1258", LT_CHARSET_CP1258},     {"abc", LT_CHARSET_TCVN3},
        {"vni-windows", LT_CHARSET_VNI},    {"vni-win", LT_CHARSET_VNI},
    };
    if (name == NULL)
        return lt_fail(why, LT_EINVAL, "no charset name given");
    for (int i = 0; i < LT_CHARSET_COUNT; i++)
        if (strcasecmp(name, names[i]) == 0) {
            *cs = (lt_charset)i;
            return LT_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *cs = aliases[i].cs;
            return LT_OK;
        }
    return lt_fail(why, LT_EINVAL,
                   "unknown encoding '%.40s' (use auto, utf-8, cp1258, tcvn3, vni or "
                   "<one of those>+cp1252)",
                   name);
}

/* ---- decoders into raw UTF-8 ---- */

struct lt_charset_decoder {
    lt_charset cs;
    iconv_t cd;        /* CP1258 -> UTF-8 when cs needs it, else (iconv_t)-1 */
    struct sbuf bytes; /* the legacy bytes recovered from double-encoded text */
};

static bool is_utf8_family(lt_charset cs)
{
    return cs == LT_CHARSET_UTF8 || cs >= LT_CHARSET_UTF8_2X;
}

static lt_charset inner_of(lt_charset cs)
{
    return cs >= LT_CHARSET_UTF8_2X ? (lt_charset)(cs - LT_CHARSET_UTF8_2X + LT_CHARSET_UTF8)
                                    : cs;
}

static lt_err no_nul(const uint8_t *in, size_t len, lt_why *why)
{
    const uint8_t *z = memchr(in, 0, len);
    if (z != NULL)
        return lt_fail(why, LT_EENCODING, "NUL byte at offset %zu: binary data, not text",
                       (size_t)(z - in));
    return LT_OK;
}

static size_t skip_bom(const uint8_t *in, size_t len)
{
    return len >= 3 && in[0] == 0xEF && in[1] == 0xBB && in[2] == 0xBF ? 3 : 0;
}

static lt_err dec_utf8(const uint8_t *in, size_t len, struct sbuf *o, lt_why *why)
{
    size_t i = skip_bom(in, len);
    size_t start = i;
    while (i < len) {
        if (in[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(in + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return lt_fail(why, LT_EENCODING, "invalid UTF-8 byte 0x%02X at offset %zu",
                           in[i], i);
        i += (size_t)k;
    }
    return sb_put(o, in + start, len - start) ? LT_OK
                                              : lt_fail(why, LT_ENOMEM, "out of memory");
}

static lt_err dec_cp1258(iconv_t cd, const uint8_t *in, size_t len, struct sbuf *o,
                         lt_why *why)
{
    char *src = (char *)(uintptr_t)in;
    size_t left = len;
    iconv(cd, NULL, NULL, NULL, NULL);
    for (;;) {
        if (!sb_reserve(o, left * 3 + 16))
            return lt_fail(why, LT_ENOMEM, "out of memory");
        char *dst = o->p + o->len;
        size_t room = o->cap - o->len - 1;
        size_t r = left ? iconv(cd, &src, &left, &dst, &room) : iconv(cd, NULL, NULL, &dst, &room);
        int e = errno;
        o->len = (size_t)(dst - o->p);
        o->p[o->len] = 0;
        if (r != (size_t)-1) {
            if (left == 0) {
                /* flush the letter glibc holds back waiting for a combining tone */
                if (!sb_reserve(o, 16))
                    return lt_fail(why, LT_ENOMEM, "out of memory");
                dst = o->p + o->len;
                room = o->cap - o->len - 1;
                if (iconv(cd, NULL, NULL, &dst, &room) == (size_t)-1)
                    return lt_fail(why, LT_EENCODING, "cp1258: cannot finish the text");
                o->len = (size_t)(dst - o->p);
                o->p[o->len] = 0;
                return LT_OK;
            }
            continue;
        }
        if (e == E2BIG)
            continue;
        size_t at = (size_t)((const uint8_t *)src - in);
        return lt_fail(why, LT_EENCODING, "byte 0x%02X at offset %zu is not Windows-1258 text",
                       at < len ? in[at] : 0, at);
    }
}

static lt_err dec_tcvn3(const uint8_t *in, size_t len, struct sbuf *o, lt_why *why)
{
    if (!sb_reserve(o, len * 3))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        uint8_t b = in[i];
        if (b < 0x80) {
            o->p[o->len++] = (char)b;
            continue;
        }
        uint16_t cp = lt_tcvn3_high[b - 0x80];
        if (cp == 0)
            return lt_fail(why, LT_EENCODING, "byte 0x%02X at offset %zu is not TCVN3 text",
                           b, i);
        o->len += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)o->p + o->len);
    }
    o->p[o->len] = 0;
    return LT_OK;
}

static lt_err dec_vni(const uint8_t *in, size_t len, struct sbuf *o, lt_why *why)
{
    if (!sb_reserve(o, len * 3))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        uint8_t b = in[i];
        uint16_t cp = 0;
        if (i + 1 < len && in[i + 1] >= 0xC0 && (cp = vni_pair[b][in[i + 1] - 0xC0]) != 0) {
            i++;
        } else if (b < 0x80) {
            cp = b;
        } else if ((cp = vni_single[b]) == 0) {
            cp = b < 0xA0 ? lt_cp1252_80_9f[b - 0x80] : b < 0xC0 ? b : 0;
            if (cp == 0)
                return lt_fail(why, LT_EENCODING,
                               vni_is_mark[b] ? "byte 0x%02X at offset %zu is a VNI mark with no "
                                           "letter before it"
                                         : "byte 0x%02X at offset %zu is not VNI text",
                               b, i);
        }
        o->len += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)o->p + o->len);
    }
    o->p[o->len] = 0;
    return LT_OK;
}

/* UTF-8 text whose characters are all Windows-1252 (or Latin-1 C1 controls) -> the bytes a
 * Windows tool read them from. */
static lt_err undo_cp1252(const uint8_t *in, size_t len, struct sbuf *o, lt_why *why)
{
    size_t i = skip_bom(in, len);
    o->len = 0;
    if (!sb_reserve(o, len))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(in + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return lt_fail(why, LT_EENCODING, "invalid UTF-8 byte 0x%02X at offset %zu",
                           in[i], i);
        uint8_t b;
        if (cp < 0xA0)
            b = (uint8_t)cp;
        else if (cp < REV_MAX && cp1252_rev[cp])
            b = cp1252_rev[cp];
        else
            return lt_fail(why, LT_EENCODING,
                           "U+%04X at offset %zu is not a Windows-1252 character: not "
                           "double-encoded text",
                           (unsigned)cp, i);
        o->p[o->len++] = (char)b;
        i += (size_t)k;
    }
    o->p[o->len] = 0;
    return LT_OK;
}

/* Decode in as cs (not AUTO) into o, NFC; the "+cp1252" forms go through d->bytes. */
static lt_err dec_raw(lt_charset_decoder *d, const uint8_t *in, size_t len, struct sbuf *o,
                      lt_why *why)
{
    lt_err err = no_nul(in, len, why);
    if (err)
        return err;
    lt_charset cs = d->cs;
    if (cs >= LT_CHARSET_UTF8_2X) {
        if ((err = undo_cp1252(in, len, &d->bytes, why)) != LT_OK)
            return err;
        if ((err = no_nul((const uint8_t *)d->bytes.p, d->bytes.len, why)) != LT_OK)
            return err;
        in = (const uint8_t *)d->bytes.p;
        len = d->bytes.len;
        cs = inner_of(cs);
    }
    switch (cs) {
    case LT_CHARSET_UTF8: return dec_utf8(in, len, o, why);
    case LT_CHARSET_CP1258: return dec_cp1258(d->cd, in, len, o, why);
    case LT_CHARSET_TCVN3: return dec_tcvn3(in, len, o, why);
    case LT_CHARSET_VNI: return dec_vni(in, len, o, why);
    default: return lt_fail(why, LT_EINVAL, "charset %d cannot be decoded directly", (int)cs);
    }
}

static bool needs_nfc(lt_charset cs)
{
    lt_charset in = inner_of(cs);
    return in == LT_CHARSET_UTF8 || in == LT_CHARSET_CP1258;
}

static bool all_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Hand o's text to the caller as NFC; o is consumed either way. */
static lt_err finish(struct sbuf *o, bool nfc, char **out, size_t *out_len, lt_why *why)
{
    if (o->p == NULL && !sb_reserve(o, 0))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (nfc && !all_ascii(o->p, o->len)) {
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)o->p,
                                          (utf8proc_ssize_t)o->len, &dst,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        sb_free(o);
        if (n < 0)
            return lt_fail(why, n == UTF8PROC_ERROR_NOMEM ? LT_ENOMEM : LT_EENCODING,
                           "normalizing to NFC: %s", utf8proc_errmsg(n));
        *out = (char *)dst;
        *out_len = (size_t)n;
        return LT_OK;
    }
    *out = o->p;
    *out_len = o->len;
    o->p = NULL;
    o->len = o->cap = 0;
    return LT_OK;
}

lt_err lt_charset_decoder_open(lt_charset cs, lt_charset_decoder **dp, lt_why *why)
{
    if (cs <= LT_CHARSET_AUTO || cs >= LT_CHARSET_COUNT)
        return lt_fail(why, LT_EINVAL, "a decoder needs a concrete charset, not '%s'",
                       lt_charset_name(cs));
    tables();
    lt_charset_decoder *d = calloc(1, sizeof *d);
    if (d == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    d->cs = cs;
    d->cd = (iconv_t)-1;
    if (inner_of(cs) == LT_CHARSET_CP1258) {
        d->cd = iconv_open("UTF-8", "CP1258");
        if (d->cd == (iconv_t)-1) {
            free(d);
            return lt_fail(why, LT_EENCODING, "iconv has no CP1258 converter");
        }
    }
    *dp = d;
    return LT_OK;
}

void lt_charset_decoder_close(lt_charset_decoder **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    lt_charset_decoder *d = *dp;
    if (d->cd != (iconv_t)-1)
        iconv_close(d->cd);
    sb_free(&d->bytes);
    free(d);
    *dp = NULL;
}

lt_charset lt_charset_decoder_charset(const lt_charset_decoder *d)
{
    return d->cs;
}

lt_err lt_charset_decoder_run(lt_charset_decoder *d, const uint8_t *in, size_t len,
                              char **out, size_t *out_len, lt_why *why)
{
    struct sbuf o = {0};
    lt_err err = dec_raw(d, in, len, &o, why);
    if (err) {
        sb_free(&o);
        return err;
    }
    return finish(&o, needs_nfc(d->cs), out, out_len, why);
}

lt_err lt_charset_decode(lt_charset cs, const uint8_t *in, size_t len, char **out_utf8,
                         size_t *out_len, lt_why *why)
{
    lt_err err;
    if (cs == LT_CHARSET_AUTO && (err = lt_charset_detect(in, len, &cs, NULL, why)) != LT_OK)
        return err;
    lt_charset_decoder *d = NULL;
    if ((err = lt_charset_decoder_open(cs, &d, why)) != LT_OK)
        return err;
    err = lt_charset_decoder_run(d, in, len, out_utf8, out_len, why);
    lt_charset_decoder_close(&d);
    return err;
}

bool lt_charset_cuts_char(lt_charset cs, const uint8_t *s, size_t len, size_t pos)
{
    if (pos == 0 || pos >= len)
        return false;
    tables();
    switch (cs) {
    case LT_CHARSET_VNI:
        return s[pos] >= 0xC0 && vni_pair[s[pos - 1]][s[pos] - 0xC0] != 0;
    case LT_CHARSET_CP1258:
        /* the five combining tone bytes belong to the letter before them */
        return s[pos] == 0xCC || s[pos] == 0xEC || s[pos] == 0xDE || s[pos] == 0xD2 ||
               s[pos] == 0xF2;
    case LT_CHARSET_TCVN3:
    case LT_CHARSET_AUTO:
        return false;
    default:
        return (s[pos] & 0xC0) == 0x80;
    }
}

/* ---- encoders ---- */

static lt_err enc_cp1258(const char *s, size_t len, struct sbuf *o, lt_why *why)
{
    iconv_t cd = iconv_open("CP1258", "UTF-8");
    if (cd == (iconv_t)-1)
        return lt_fail(why, LT_EENCODING, "iconv has no CP1258 converter");
    char *src = (char *)(uintptr_t)s;
    size_t left = len;
    lt_err err = LT_OK;
    while (err == LT_OK) {
        if (!sb_reserve(o, left * 2 + 16)) {
            err = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        char *dst = o->p + o->len;
        size_t room = o->cap - o->len - 1;
        size_t r = left ? iconv(cd, &src, &left, &dst, &room) : iconv(cd, NULL, NULL, &dst, &room);
        int e = errno;
        o->len = (size_t)(dst - o->p);
        o->p[o->len] = 0;
        if (r != (size_t)-1) {
            if (left == 0 && r != (size_t)-1) {
                dst = o->p + o->len;
                room = o->cap - o->len - 1;
                iconv(cd, NULL, NULL, &dst, &room);
                o->len = (size_t)(dst - o->p);
                o->p[o->len] = 0;
                break;
            }
            continue;
        }
        if (e == E2BIG)
            continue;
        utf8proc_int32_t cp = 0;
        utf8proc_iterate((const uint8_t *)src, (utf8proc_ssize_t)left, &cp);
        err = lt_fail(why, LT_EENCODING, "U+%04X cannot be written in cp1258", (unsigned)cp);
    }
    iconv_close(cd);
    return err;
}

/* TCVN3 or VNI from NFC text: one table lookup per character. */
static lt_err enc_table(lt_charset cs, const char *s, size_t len, struct sbuf *o, lt_why *why)
{
    const uint8_t *in = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(in + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return lt_fail(why, LT_EENCODING, "invalid UTF-8 at offset %zu", i);
        i += (size_t)k;
        bool ok;
        if (cp < 0x80) {
            ok = sb_byte(o, (uint8_t)cp);
        } else if (cs == LT_CHARSET_TCVN3) {
            uint8_t b = cp < REV_MAX ? tcvn3_rev[cp] : 0;
            if (b == 0)
                return lt_fail(why, LT_EENCODING, "U+%04X cannot be written in tcvn3",
                               (unsigned)cp);
            ok = sb_byte(o, b);
        } else {
            uint16_t w = cp < REV_MAX ? vni_rev[cp] : 0;
            if (w == 0)
                return lt_fail(why, LT_EENCODING, "U+%04X cannot be written in vni",
                               (unsigned)cp);
            ok = sb_byte(o, (uint8_t)(w & 0xFF)) && (w >> 8 == 0 || sb_byte(o, (uint8_t)(w >> 8)));
        }
        if (!ok)
            return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    return LT_OK;
}

lt_err lt_charset_encode(lt_charset cs, const char *utf8, size_t len, uint8_t **out,
                         size_t *out_len, lt_why *why)
{
    if (cs <= LT_CHARSET_AUTO || cs >= LT_CHARSET_COUNT)
        return lt_fail(why, LT_EINVAL, "cannot encode into '%s'", lt_charset_name(cs));
    tables();
    lt_err err = no_nul((const uint8_t *)utf8, len, why);
    if (err)
        return err;
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)utf8, (utf8proc_ssize_t)len,
                                      &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0)
        return lt_fail(why, n == UTF8PROC_ERROR_NOMEM ? LT_ENOMEM : LT_EENCODING,
                       "input is not UTF-8: %s", utf8proc_errmsg(n));
    struct sbuf o = {0};
    lt_charset inner = inner_of(cs);
    const char *s = (const char *)nfc;
    size_t sl = (size_t)n;
    switch (inner) {
    case LT_CHARSET_UTF8:
        err = sb_put(&o, s, sl) ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
        break;
    case LT_CHARSET_CP1258: err = enc_cp1258(s, sl, &o, why); break;
    default: err = enc_table(inner, s, sl, &o, why); break;
    }
    free(nfc);
    if (err == LT_OK && cs >= LT_CHARSET_UTF8_2X) {
        /* what a Windows-1252 reader makes of those bytes, saved as UTF-8 */
        struct sbuf twice = {0};
        for (size_t i = 0; i < o.len && err == LT_OK; i++) {
            uint8_t b = (uint8_t)o.p[i];
            uint32_t cp = b >= 0x80 && b < 0xA0 && lt_cp1252_80_9f[b - 0x80]
                              ? lt_cp1252_80_9f[b - 0x80]
                              : b;
            if (!sb_cp(&twice, cp))
                err = lt_fail(why, LT_ENOMEM, "out of memory");
        }
        sb_free(&o);
        o = twice;
    }
    if (err == LT_OK && o.p == NULL && !sb_reserve(&o, 0))
        err = lt_fail(why, LT_ENOMEM, "out of memory");
    if (err) {
        sb_free(&o);
        return err;
    }
    *out = (uint8_t *)o.p;
    *out_len = o.len;
    return LT_OK;
}

/* ---- detection ---- */

static bool is_letter(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

static bool ascii_alpha(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void count_word(const char *w, size_t n, size_t *words, size_t *valid)
{
    (*words)++;
    *valid += lt_syllable_is_vietnamese(w, n);
}

/* Count the words of text that sit in a token with a non-ASCII character, and the valid
 * ones. A token is a run of ASCII letters and non-ASCII characters: the same runs in every
 * candidate, since an ASCII byte means the same in all of them. Inside a token, words are
 * split at non-letters ("Hà–Nội", or the "»‡" a wrong decoding leaves). */
static void score_text(const char *text, size_t len, size_t *words, size_t *valid)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80 && !ascii_alpha(s[i])) {
            i++;
            continue;
        }
        size_t t0 = i;
        bool wide = false;
        while (i < len && (s[i] >= 0x80 || ascii_alpha(s[i]))) {
            wide = wide || s[i] >= 0x80;
            i++;
        }
        if (!wide)
            continue;
        size_t j = t0, w0 = t0;
        while (j < i) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate(s + j, (utf8proc_ssize_t)(i - j), &cp);
            if (k <= 0)
                return; /* decoders only produce valid UTF-8 */
            if (!is_letter(cp)) {
                if (j > w0)
                    count_word(text + w0, j - w0, words, valid);
                w0 = j + (size_t)k;
            }
            j += (size_t)k;
        }
        if (i > w0)
            count_word(text + w0, i - w0, words, valid);
    }
}

static const lt_charset order[] = {
    LT_CHARSET_UTF8,    LT_CHARSET_CP1258,    LT_CHARSET_VNI,    LT_CHARSET_TCVN3,
    LT_CHARSET_UTF8_2X, LT_CHARSET_CP1258_2X, LT_CHARSET_VNI_2X, LT_CHARSET_TCVN3_2X,
};

static int rank_of(lt_charset cs)
{
    for (int i = 0; i < (int)(sizeof order / sizeof order[0]); i++)
        if (order[i] == cs)
            return i;
    return 99;
}

static int cmp_score(const void *a, const void *b)
{
    const lt_charset_score *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return rank_of(x->cs) - rank_of(y->cs);
}

lt_err lt_charset_rank(const uint8_t *in, size_t len, lt_charset_score *scores, size_t cap,
                       size_t *n)
{
    lt_charset_score all[LT_CHARSET_COUNT];
    size_t count = 0;
    bool wide = false;
    for (size_t i = 0; i < len && !wide; i++)
        wide = in[i] >= 0x80;
    bool bom = skip_bom(in, len) > 0;

    for (size_t c = 0; c < sizeof order / sizeof order[0]; c++) {
        lt_charset cs = order[c];
        if (!wide && cs != LT_CHARSET_UTF8)
            continue;
        if (bom && !is_utf8_family(cs))
            continue;
        lt_charset_score *sc = &all[count++];
        *sc = (lt_charset_score){.cs = cs, .err = LT_OK, .score = -1};
        lt_why why;
        char *text = NULL;
        size_t tl = 0;
        lt_err err = lt_charset_decode(cs, in, len, &text, &tl, &why);
        if (err == LT_ENOMEM)
            return err;
        if (err) {
            sc->err = err;
            continue;
        }
        score_text(text, tl, &sc->words, &sc->valid);
        sc->score = sc->words ? (double)sc->valid / (double)sc->words : 1.0;
        free(text);
    }
    qsort(all, count, sizeof all[0], cmp_score);
    size_t k = count < cap ? count : cap;
    memcpy(scores, all, k * sizeof all[0]);
    *n = k;
    return LT_OK;
}

lt_err lt_charset_detect(const uint8_t *in, size_t len, lt_charset *found, double *score,
                         lt_why *why)
{
    lt_charset_score s[LT_CHARSET_COUNT];
    size_t n = 0;
    lt_err err = lt_charset_rank(in, len, s, LT_CHARSET_COUNT, &n);
    if (err)
        return lt_fail(why, err, "out of memory while detecting the encoding");
    if (n == 0 || s[0].err != LT_OK) {
        /* say why the most likely candidates failed: UTF-8 and the first legacy one */
        lt_why w1 = {{0}}, w2 = {{0}};
        char *t = NULL;
        size_t tl;
        if (lt_charset_decode(LT_CHARSET_UTF8, in, len, &t, &tl, &w1) == LT_OK)
            free(t);
        if (lt_charset_decode(LT_CHARSET_TCVN3, in, len, &t, &tl, &w2) == LT_OK)
            free(t);
        return lt_fail(why, LT_EENCODING,
                       "not text in any supported encoding (utf-8: %.80s; tcvn3: %.80s)",
                       w1.msg, w2.msg);
    }
    if (s[0].score < LT_CHARSET_MIN_SCORE)
        return lt_fail(why, LT_EENCODING,
                       "no encoding convinces: best is %s with %zu of %zu words (%.0f%%) "
                       "Vietnamese syllables, %.0f%% needed; give the encoding explicitly",
                       lt_charset_name(s[0].cs), s[0].valid, s[0].words, s[0].score * 100,
                       LT_CHARSET_MIN_SCORE * 100);
    if (found)
        *found = s[0].cs;
    if (score)
        *score = s[0].score;
    return LT_OK;
}
