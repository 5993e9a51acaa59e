/*
 * test_charset.c - charset tables entry by entry, round trips, detection, junk, repair of
 * double-encoded text, the syllable checker.
 *
 * Expected values come from sources independent of the table under test where one exists:
 * glibc iconv's TCVN5712-1 (libiconv tcvn.h) for TCVN3, glibc CP1252 for the Windows-1252
 * symbols, and for VNI the meaning of each mark byte (base letter + combining marks,
 * composed by utf8proc) as documented in ../shared/reference/vietnam.md §3.3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "charset.h"
#include "charset_int.h"
#include "syllable.h"

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- helpers ---- */

static uint32_t only_cp(const char *s, size_t n)
{
    utf8proc_int32_t cp = -1;
    utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)s, (utf8proc_ssize_t)n, &cp);
    if (k <= 0 || (size_t)k != n)
        return 0xFFFFFFFF;
    return (uint32_t)cp;
}

static uint32_t decode_one(lt_charset cs, const uint8_t *b, size_t n)
{
    char *out = NULL;
    size_t ol = 0;
    lt_why why;
    if (lt_charset_decode(cs, b, n, &out, &ol, &why) != LT_OK)
        return 0;
    uint32_t cp = only_cp(out, ol);
    free(out);
    return cp;
}

/* glibc's view of bytes in charset `from`, as one code point (0 if not exactly one). */
static uint32_t iconv_one(const char *from, const uint8_t *b, size_t n)
{
    iconv_t cd = iconv_open("UTF-8", from);
    assert_true(cd != (iconv_t)-1);
    char in[8], out[16];
    memcpy(in, b, n);
    char *ip = in, *op = out;
    size_t il = n, left = sizeof out;
    size_t r = iconv(cd, &ip, &il, &op, &left);
    iconv(cd, NULL, NULL, &op, &left);
    iconv_close(cd);
    if (r == (size_t)-1)
        return 0;
    /* glibc may leave a combining mark decomposed: compose before comparing */
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nn = utf8proc_map((const uint8_t *)out, (utf8proc_ssize_t)(op - out), &nfc,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    uint32_t cp = nn > 0 ? only_cp((const char *)nfc, (size_t)nn) : 0;
    free(nfc);
    return cp;
}

static char *dec(lt_charset cs, const void *b, size_t n, lt_err want)
{
    char *out = NULL;
    size_t ol = 0;
    lt_why why = {{0}};
    lt_err err = lt_charset_decode(cs, b, n, &out, &ol, &why);
    if (err != want)
        fail_msg("decode as %s: got %s (%s), wanted %s", lt_charset_name(cs), lt_err_name(err),
                 why.msg, lt_err_name(want));
    if (err == LT_OK)
        assert_int_equal(strlen(out), ol);
    return out;
}

static uint8_t *enc(lt_charset cs, const char *s, size_t *n)
{
    uint8_t *out = NULL;
    lt_why why = {{0}};
    lt_err err = lt_charset_encode(cs, s, strlen(s), &out, n, &why);
    if (err != LT_OK)
        fail_msg("encode '%s' as %s: %s", s, lt_charset_name(cs), why.msg);
    return out;
}

static const char *const sentences[] = {
    "Thành phố Hồ Chí Minh là trung tâm kinh tế lớn nhất của Việt Nam.",
    "Phường Bến Nghé, đường Lê Thánh Tôn, số nhà 86, khu phố 3.",
    "Người nộp hồ sơ: Trần Thị Thu Hương, sinh ngày 12/03/1990 tại Bình Dương.",
    "Công ty trách nhiệm hữu hạn một thành viên Thương mại Dịch vụ Sài Gòn Xanh.",
    "Đăng ký thường trú tại phường Tân Định; chuyển đến từ tỉnh Quảng Ngãi, quê quán Nghệ An.",
    "Giấy khai sinh cấp cho cháu Nguyễn Ngọc Quyên, con ông Phạm Văn Khoa và bà Võ Thị Yến.",
};

/* ---- tables, entry by entry ---- */

static void tcvn3_every_byte_matches_glibc_tcvn5712(void **state)
{
    (void)state;
    int letters = 0;
    for (int b = 0x80; b < 0x100; b++) {
        uint8_t byte = (uint8_t)b;
        uint16_t want = lt_tcvn3_high[b - 0x80];
        uint32_t got = decode_one(LT_CHARSET_TCVN3, &byte, 1);
        if (want == 0) {
            assert_int_equal(got, 0); /* not TCVN3 text: rejected */
            continue;
        }
        assert_int_equal(got, want);
        if (b >= 0xA0) {
            /* libiconv's TCVN 5712 VN1 is a superset: same letter on every TCVN3 byte */
            uint32_t glibc = iconv_one("TCVN5712-1", &byte, 1);
            if (glibc != want)
                fail_msg("TCVN3 byte 0x%02X: table U+%04X, glibc U+%04X", b, want, glibc);
            letters += b > 0xA0;
        } else {
            assert_int_equal(want, iconv_one("CP1252", &byte, 1));
        }
    }
    assert_int_equal(letters, 74); /* the 74 non-ASCII TCVN3 letters */
}

static void cp1252_table_matches_glibc(void **state)
{
    (void)state;
    for (int b = 0x80; b < 0xA0; b++) {
        uint8_t byte = (uint8_t)b;
        assert_int_equal(lt_cp1252_80_9f[b - 0x80], iconv_one("CP1252", &byte, 1));
    }
}

static void every_letter_decodes_from_its_tcvn3_byte(void **state)
{
    (void)state;
    for (int i = 0; i < LT_VN_LETTERS; i++) {
        const struct lt_vn_letter *l = &lt_vn_letters[i];
        uint32_t got = decode_one(LT_CHARSET_TCVN3, &l->tcvn3, 1);
        uint32_t lower = (uint32_t)utf8proc_tolower(l->ucs);
        bool own_capital = l->tcvn3 >= 0xA1 && l->tcvn3 <= 0xA7;
        /* toned capitals have no byte of their own: they come back lowercase */
        if (got != (own_capital ? l->ucs : lower))
            fail_msg("U+%04X via TCVN3 0x%02X gave U+%04X", l->ucs, l->tcvn3, got);
        size_t n;
        char u[8] = {0};
        utf8proc_encode_char(l->ucs, (uint8_t *)u);
        uint8_t *e = enc(LT_CHARSET_TCVN3, u, &n);
        assert_int_equal(n, 1);
        assert_int_equal(e[0], l->tcvn3);
        free(e);
    }
}

/* VNI mark byte -> the combining marks it stands for (lowercase marks E0..FC; the
 * uppercase set is the same minus 0x20). */
static const struct {
    uint8_t mark;
    const char *combining;
} vni_marks[] = {
    {0xE0, "\xcc\x82\xcc\x80"}, {0xE1, "\xcc\x82\xcc\x81"}, {0xE2, "\xcc\x82"},
    {0xE3, "\xcc\x82\xcc\x83"}, {0xE4, "\xcc\x82\xcc\xa3"}, {0xE5, "\xcc\x82\xcc\x89"},
    {0xE8, "\xcc\x86\xcc\x80"}, {0xE9, "\xcc\x86\xcc\x81"}, {0xEA, "\xcc\x86"},
    {0xEB, "\xcc\x86\xcc\xa3"}, {0xFA, "\xcc\x86\xcc\x89"}, {0xFC, "\xcc\x86\xcc\x83"},
    {0xEF, "\xcc\xa3"},         {0xF5, "\xcc\x83"},         {0xF8, "\xcc\x80"},
    {0xF9, "\xcc\x81"},         {0xFB, "\xcc\x89"},
};

/* VNI one-byte letters (reference §3.3). */
static const struct {
    uint8_t b;
    uint16_t ucs;
} vni_singles[] = {
    {0xC6, 0x1EC8}, {0xCC, 0x00CC}, {0xCD, 0x00CD}, {0xCE, 0x1EF4}, {0xD1, 0x0110},
    {0xD2, 0x1ECA}, {0xD3, 0x0128}, {0xD4, 0x01A0}, {0xD6, 0x01AF}, {0xE6, 0x1EC9},
    {0xEC, 0x00EC}, {0xED, 0x00ED}, {0xEE, 0x1EF5}, {0xF1, 0x0111}, {0xF2, 0x1ECB},
    {0xF3, 0x0129}, {0xF4, 0x01A1}, {0xF6, 0x01B0},
};

static uint32_t vni_expected(uint8_t base, uint8_t mark)
{
    char s[32] = {0};
    size_t n = 0;
    if (base < 0x80) {
        s[n++] = (char)base;
    } else {
        for (size_t i = 0; i < sizeof vni_singles / sizeof vni_singles[0]; i++)
            if (vni_singles[i].b == base)
                n += (size_t)utf8proc_encode_char(vni_singles[i].ucs, (uint8_t *)s + n);
    }
    uint8_t lower_mark = mark < 0xE0 ? (uint8_t)(mark + 0x20) : mark;
    for (size_t i = 0; i < sizeof vni_marks / sizeof vni_marks[0]; i++)
        if (vni_marks[i].mark == lower_mark) {
            strcpy(s + n, vni_marks[i].combining);
            n += strlen(vni_marks[i].combining);
        }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nn = utf8proc_map((const uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    uint32_t cp = nn > 0 ? only_cp((const char *)nfc, (size_t)nn) : 0;
    free(nfc);
    return cp;
}

static void every_letter_decodes_from_its_vni_bytes(void **state)
{
    (void)state;
    int pairs = 0, singles = 0;
    for (int i = 0; i < LT_VN_LETTERS; i++) {
        const struct lt_vn_letter *l = &lt_vn_letters[i];
        uint8_t b[2] = {l->vni_base, l->vni_mark};
        size_t n = l->vni_mark ? 2 : 1;
        uint32_t got = decode_one(LT_CHARSET_VNI, b, n);
        uint32_t want = l->vni_mark ? vni_expected(l->vni_base, l->vni_mark)
                                    : vni_expected(l->vni_base, 0);
        if (got != l->ucs || want != l->ucs)
            fail_msg("VNI %02X %02X: table U+%04X, decoded U+%04X, marks say U+%04X",
                     l->vni_base, l->vni_mark, l->ucs, got, want);
        /* capital bases take the C0..DC marks, small ones E0..FC */
        if (l->vni_mark)
            assert_int_equal(l->vni_mark >= 0xE0, utf8proc_tolower(l->ucs) == (int32_t)l->ucs);
        pairs += l->vni_mark != 0;
        singles += l->vni_mark == 0;
        char u[8] = {0};
        utf8proc_encode_char(l->ucs, (uint8_t *)u);
        size_t en;
        uint8_t *e = enc(LT_CHARSET_VNI, u, &en);
        assert_int_equal(en, n);
        assert_memory_equal(e, b, n);
        free(e);
    }
    assert_int_equal(singles, 18);
    assert_int_equal(pairs, LT_VN_LETTERS - 18);
}

static void every_letter_decodes_from_its_cp1258_bytes(void **state)
{
    (void)state;
    for (int i = 0; i < LT_VN_LETTERS; i++) {
        const struct lt_vn_letter *l = &lt_vn_letters[i];
        uint8_t b[2] = {l->cp_base, l->cp_mark};
        size_t n = l->cp_mark ? 2 : 1;
        uint32_t got = decode_one(LT_CHARSET_CP1258, b, n);
        if (got != l->ucs)
            fail_msg("CP1258 %02X %02X: decoded U+%04X, want U+%04X", l->cp_base, l->cp_mark,
                     got, l->ucs);
        /* and back: glibc may pick a precomposed byte, so compare by decoding again */
        char u[8] = {0};
        utf8proc_encode_char(l->ucs, (uint8_t *)u);
        size_t en;
        uint8_t *e = enc(LT_CHARSET_CP1258, u, &en);
        assert_int_equal(decode_one(LT_CHARSET_CP1258, e, en), l->ucs);
        free(e);
    }
}

static void vni_single_bytes_and_symbols_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vni_singles / sizeof vni_singles[0]; i++)
        assert_int_equal(decode_one(LT_CHARSET_VNI, &vni_singles[i].b, 1), vni_singles[i].ucs);
    uint8_t quote[] = {0x93}; /* “ in the Windows-1252 range VNI fonts keep */
    assert_int_equal(decode_one(LT_CHARSET_VNI, quote, 1), 0x201C);
}

/* ---- round trips and detection ---- */

static const lt_charset all_cs[] = {
    LT_CHARSET_UTF8,    LT_CHARSET_CP1258,    LT_CHARSET_TCVN3,    LT_CHARSET_VNI,
    LT_CHARSET_UTF8_2X, LT_CHARSET_CP1258_2X, LT_CHARSET_TCVN3_2X, LT_CHARSET_VNI_2X,
};

static void sentences_round_trip_through_every_charset(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof all_cs / sizeof all_cs[0]; c++)
        for (size_t s = 0; s < sizeof sentences / sizeof sentences[0]; s++) {
            size_t n;
            uint8_t *b = enc(all_cs[c], sentences[s], &n);
            char *back = dec(all_cs[c], b, n, LT_OK);
            if (strcmp(back, sentences[s]) != 0)
                fail_msg("%s: '%s' came back as '%s'", lt_charset_name(all_cs[c]),
                         sentences[s], back);
            free(back);
            free(b);
        }
}

static void tcvn3_loses_the_case_of_toned_capitals_only(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = enc(LT_CHARSET_TCVN3, "Ủy ban ẤP Đông, Ông Ánh", &n);
    char *back = dec(LT_CHARSET_TCVN3, b, n, LT_OK);
    assert_string_equal(back, "ủy ban ấP Đông, Ông ánh");
    free(back);
    free(b);
    /* the reference's example: "VI\xD6T NAM" is VIỆT NAM drawn in .VnTimeH */
    back = dec(LT_CHARSET_TCVN3, "VI\xD6T NAM", 8, LT_OK);
    assert_string_equal(back, "VIệT NAM");
    free(back);
}

static void known_legacy_spellings_decode(void **state)
{
    (void)state;
    /* VNI: "Xin chaøo caùc baïn" (reference ENC-VNI-NPM) */
    char *s = dec(LT_CHARSET_VNI, "Xin cha\xf8o ca\xf9" "c ba\xefn", 19, LT_OK);
    assert_string_equal(s, "Xin chào các bạn");
    free(s);
    /* TCVN3: "M\xADêng Kh\xACng" = Mường Khương (reference ENC-TCVN3-EXAMPLE) */
    s = dec(LT_CHARSET_TCVN3, "M\xad\xeang Kh\xad\xacng", 12, LT_OK);
    assert_string_equal(s, "Mường Khương");
    free(s);
    /* CP1258: combining tone after a precomposed base is composed to NFC */
    s = dec(LT_CHARSET_CP1258, "Vi\xea\xf2t Nam", 9, LT_OK);
    assert_string_equal(s, "Việt Nam");
    free(s);
}

static void detect_finds_the_charset_of_each_sentence(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof all_cs / sizeof all_cs[0]; c++)
        for (size_t s = 0; s < sizeof sentences / sizeof sentences[0]; s++) {
            size_t n;
            uint8_t *b = enc(all_cs[c], sentences[s], &n);
            lt_charset found = LT_CHARSET_AUTO;
            double score = 0;
            lt_why why = {{0}};
            lt_err err = lt_charset_detect(b, n, &found, &score, &why);
            if (err != LT_OK || found != all_cs[c])
                fail_msg("sentence %zu in %s: detected %s (%s) score %.2f", s,
                         lt_charset_name(all_cs[c]), lt_charset_name(found), why.msg, score);
            assert_true(score >= LT_CHARSET_MIN_SCORE);
            char *text = dec(LT_CHARSET_AUTO, b, n, LT_OK);
            assert_string_equal(text, sentences[s]);
            free(text);
            free(b);
        }
}

static void detect_takes_pure_ascii_as_utf8(void **state)
{
    (void)state;
    lt_charset found;
    double score;
    lt_why why;
    assert_int_equal(lt_charset_detect((const uint8_t *)"ma_ho_so;ngay\n1;2\n", 18, &found,
                                       &score, &why),
                     LT_OK);
    assert_int_equal(found, LT_CHARSET_UTF8);
}

static void detect_rejects_junk_with_a_clear_message(void **state)
{
    (void)state;
    uint8_t junk[2048];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)((x >> 16) | 0x01); /* no NUL: junk, not binary */
    }
    lt_charset found = LT_CHARSET_AUTO;
    lt_why why = {{0}};
    assert_int_equal(lt_charset_detect(junk, sizeof junk, &found, NULL, &why), LT_EENCODING);
    assert_int_equal(found, LT_CHARSET_AUTO); /* untouched on failure */
    assert_true(strstr(why.msg, "no encoding convinces") != NULL ||
                strstr(why.msg, "not text in any supported encoding") != NULL);

    /* Latin-1 French text decodes under cp1258 but is not Vietnamese */
    const char *fr = "Le ch\xe2teau \xe9tait \xe0 c\xf4t\xe9 de la for\xeat, pr\xe8s du lac.";
    assert_int_equal(lt_charset_detect((const uint8_t *)fr, strlen(fr), &found, NULL, &why),
                     LT_EENCODING);
    assert_non_null(strstr(why.msg, "no encoding convinces"));

    assert_int_equal(lt_charset_detect((const uint8_t *)"ab\0cd\xe0", 6, &found, NULL, &why),
                     LT_EENCODING);
}

static void strict_decoders_name_the_bad_byte_and_offset(void **state)
{
    (void)state;
    char *out = NULL;
    size_t ol;
    lt_why why = {{0}};
    assert_int_equal(lt_charset_decode(LT_CHARSET_UTF8, (const uint8_t *)"ab\xc3(", 4, &out,
                                       &ol, &why),
                     LT_EENCODING);
    assert_non_null(strstr(why.msg, "offset 2"));
    assert_null(out);
    assert_int_equal(lt_charset_decode(LT_CHARSET_TCVN3, (const uint8_t *)"abc\xff", 4, &out,
                                       &ol, &why),
                     LT_EENCODING);
    assert_non_null(strstr(why.msg, "0xFF"));
    assert_non_null(strstr(why.msg, "offset 3"));
    /* a VNI mark after a consonant belongs to no letter */
    assert_int_equal(lt_charset_decode(LT_CHARSET_VNI, (const uint8_t *)"b\xf9", 2, &out, &ol,
                                       &why),
                     LT_EENCODING);
    assert_non_null(strstr(why.msg, "mark"));
    assert_int_equal(lt_charset_decode(LT_CHARSET_CP1258, (const uint8_t *)"x\x8a", 2, &out,
                                       &ol, &why),
                     LT_EENCODING);
    assert_int_equal(lt_charset_decode(LT_CHARSET_UTF8, (const uint8_t *)"a\0b", 3, &out, &ol,
                                       &why),
                     LT_EENCODING);
    assert_non_null(strstr(why.msg, "NUL"));
}

static void double_encoded_text_is_repaired(void **state)
{
    (void)state;
    /* TCVN3 "Thành phố" read as Windows-1252 and saved as UTF-8 */
    const char *tcvn2x = "Th\xc2\xb5nh ph\xc3\xa8 H\xc3\xa5 Ch\xc3\x9d Minh";
    char *s = dec(LT_CHARSET_TCVN3_2X, tcvn2x, strlen(tcvn2x), LT_OK);
    assert_string_equal(s, "Thành phố Hồ Chí Minh");
    free(s);
    /* VNI "Thaønh phoá" the same way */
    const char *vni2x = "Tha\xc3\xb8nh pho\xc3\xa1 Ho\xc3\xa0 Ch\xc3\xad Minh";
    s = dec(LT_CHARSET_VNI_2X, vni2x, strlen(vni2x), LT_OK);
    assert_string_equal(s, "Thành phố Hồ Chí Minh");
    free(s);
    /* UTF-8 read as Windows-1252: "Nguyá»…n" */
    const char *u2x = "Nguy\xc3\xa1\xc2\xbb\xe2\x80\xa6n V\xc3\x84\xc6\x92n";
    s = dec(LT_CHARSET_UTF8_2X, u2x, strlen(u2x), LT_OK);
    assert_string_equal(s, "Nguyễn Văn");
    free(s);
    lt_charset found;
    lt_why why;
    assert_int_equal(lt_charset_detect((const uint8_t *)u2x, strlen(u2x), &found, NULL, &why),
                     LT_OK);
    assert_int_equal(found, LT_CHARSET_UTF8_2X);
    /* a character Windows-1252 cannot hold means the text is not double-encoded */
    assert_int_equal(lt_charset_decode(LT_CHARSET_TCVN3_2X, (const uint8_t *)"Vi\xe1\xbb\x87t",
                                       6, &s, &(size_t){0}, &why),
                     LT_EENCODING);
}

static void utf8_bom_is_dropped(void **state)
{
    (void)state;
    char *s = dec(LT_CHARSET_UTF8, "\xef\xbb\xbfH\xc3\xa0 N\xe1\xbb\x99i", 12, LT_OK);
    assert_string_equal(s, "Hà Nội");
    free(s);
    s = dec(LT_CHARSET_AUTO, "\xef\xbb\xbfH\xc3\xa0 N\xe1\xbb\x99i", 12, LT_OK);
    assert_string_equal(s, "Hà Nội");
    free(s);
}

static void decomposed_utf8_comes_out_nfc(void **state)
{
    (void)state;
    /* "Việt" as e + circumflex + dot below */
    char *s = dec(LT_CHARSET_UTF8, "Vie\xcc\x82\xcc\xa3t", 8, LT_OK);
    assert_string_equal(s, "Việt");
    free(s);
}

static void encode_refuses_what_the_charset_cannot_write(void **state)
{
    (void)state;
    uint8_t *out = NULL;
    size_t n;
    lt_why why;
    assert_int_equal(lt_charset_encode(LT_CHARSET_TCVN3, "\xe4\xb8\xad", 3, &out, &n, &why),
                     LT_EENCODING); /* 中 */
    assert_non_null(strstr(why.msg, "U+4E2D"));
    assert_int_equal(lt_charset_encode(LT_CHARSET_VNI, "\xc3\xa4", 2, &out, &n, &why),
                     LT_EENCODING); /* ä */
    assert_int_equal(lt_charset_encode(LT_CHARSET_AUTO, "a", 1, &out, &n, &why), LT_EINVAL);
    assert_null(out);
}

static void names_parse_and_print(void **state)
{
    (void)state;
    lt_charset cs;
    lt_why why;
    for (int i = 0; i < LT_CHARSET_COUNT; i++) {
        assert_int_equal(lt_charset_from_name(lt_charset_name((lt_charset)i), &cs, &why), LT_OK);
        assert_int_equal(cs, i);
    }
    assert_int_equal(lt_charset_from_name("Windows-1258", &cs, &why), LT_OK);
    assert_int_equal(cs, LT_CHARSET_CP1258);
    assert_int_equal(lt_charset_from_name("latin9", &cs, &why), LT_EINVAL);
    assert_non_null(strstr(why.msg, "tcvn3"));
}

static void cuts_inside_characters_are_seen(void **state)
{
    (void)state;
    const uint8_t vni[] = {'b', 'a', 0xF9, 'c'};
    assert_true(lt_charset_cuts_char(LT_CHARSET_VNI, vni, 4, 2));
    assert_false(lt_charset_cuts_char(LT_CHARSET_VNI, vni, 4, 1));
    assert_false(lt_charset_cuts_char(LT_CHARSET_VNI, vni, 4, 3));
    const uint8_t u8[] = {'a', 0xC3, 0xA0};
    assert_true(lt_charset_cuts_char(LT_CHARSET_UTF8, u8, 3, 2));
    assert_false(lt_charset_cuts_char(LT_CHARSET_UTF8, u8, 3, 1));
    const uint8_t cp[] = {'a', 0xEC, 'b'};
    assert_true(lt_charset_cuts_char(LT_CHARSET_CP1258, cp, 3, 1));
    assert_false(lt_charset_cuts_char(LT_CHARSET_TCVN3, cp, 3, 1));
}

/* ---- syllables ---- */

static void syllable_checker_accepts_vietnamese(void **state)
{
    (void)state;
    const char *ok[] = {"Nguyễn", "người", "phường", "quốc", "Quyết", "gìn", "giữ", "khuya",
                        "thuở", "hoà", "hòa", "Ánh", "ĐỨC", "yêu", "uyên", "nghiêng", "Việt",
                        "xoong", "oai", "Khuê", "Huỳnh", "tuổi", "Thủy", "Thuỷ", "a", "y",
                        "Vie\xcc\x82\xcc\xa3t"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!lt_syllable_is_vietnamese(ok[i], strlen(ok[i])))
            fail_msg("'%s' should be a syllable", ok[i]);
}

static void syllable_checker_rejects_the_rest(void **state)
{
    (void)state;
    const char *bad[] = {"", "NguyÔn", "thµnh", "Thaønh", "Viá»", "hă", "bàt", "việc2",
                         "strong", "fix", "nguyeãn", "q", "nghiênggg", "ĐứC", "aa", "nguyễnn",
                         "Vie\xcc\x82\xcc\x82t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lt_syllable_is_vietnamese(bad[i], strlen(bad[i])))
            fail_msg("'%s' should not be a syllable", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcvn3_every_byte_matches_glibc_tcvn5712),
        cmocka_unit_test(cp1252_table_matches_glibc),
        cmocka_unit_test(every_letter_decodes_from_its_tcvn3_byte),
        cmocka_unit_test(every_letter_decodes_from_its_vni_bytes),
        cmocka_unit_test(every_letter_decodes_from_its_cp1258_bytes),
        cmocka_unit_test(vni_single_bytes_and_symbols_decode),
        cmocka_unit_test(sentences_round_trip_through_every_charset),
        cmocka_unit_test(tcvn3_loses_the_case_of_toned_capitals_only),
        cmocka_unit_test(known_legacy_spellings_decode),
        cmocka_unit_test(detect_finds_the_charset_of_each_sentence),
        cmocka_unit_test(detect_takes_pure_ascii_as_utf8),
        cmocka_unit_test(detect_rejects_junk_with_a_clear_message),
        cmocka_unit_test(strict_decoders_name_the_bad_byte_and_offset),
        cmocka_unit_test(double_encoded_text_is_repaired),
        cmocka_unit_test(utf8_bom_is_dropped),
        cmocka_unit_test(decomposed_utf8_comes_out_nfc),
        cmocka_unit_test(encode_refuses_what_the_charset_cannot_write),
        cmocka_unit_test(names_parse_and_print),
        cmocka_unit_test(cuts_inside_characters_are_seen),
        cmocka_unit_test(syllable_checker_accepts_vietnamese),
        cmocka_unit_test(syllable_checker_rejects_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
