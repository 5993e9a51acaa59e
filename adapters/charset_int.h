/*
 * charset_int.h - the data tables behind charset.c, shared with its tests.
 *
 * Tables are data (charset_tables.c), derived from two public sources and cross-checked
 * against each other and against glibc iconv by tests/unit/test_charset.c:
 *   - Unikey's VnConv tables, unikey/data.cpp (fcitx/fcitx5-unikey, (C) Pham Kim Long, GPL-2+):
 *     UnicodeTable, SingleByteTables[TCVN3], DoubleByteTables[VNI-WIN], WinCP1258;
 *   - GNU libiconv lib/tcvn.h (TCVN 5712 VN1, a superset of TCVN3), which glibc ships as
 *     the TCVN5712-1 converter.
 * Read-only after load; any thread.
 */
#ifndef LT_ADAPTERS_CHARSET_INT_H
#define LT_ADAPTERS_CHARSET_INT_H

#include <stdint.h>

/* One Vietnamese letter outside ASCII (Unikey's order: for each vowel a, â, ă, e, ê, i, o, ô,
 * ơ, u, ư, y: no tone, acute, grave, hook, tilde, dot below; capital then small; and Đ đ).
 *   tcvn3:            its TCVN3 byte; a capital with a tone shares the byte of its small
 *                     letter (TCVN3 does not encode case for those: decoding gives lowercase);
 *   vni_base/vni_mark: VNI-Windows bytes, base then trailing mark (mark 0: one byte only);
 *   cp_base/cp_mark:  Windows-1258 bytes, base then combining tone byte (0: none). */
struct lt_vn_letter {
    uint16_t ucs;
    uint8_t tcvn3;
    uint8_t vni_base, vni_mark;
    uint8_t cp_base, cp_mark;
};

#define LT_VN_LETTERS 134
extern const struct lt_vn_letter lt_vn_letters[LT_VN_LETTERS];

/* TCVN3 bytes 0x80..0xFF -> code point; 0 where the byte is not TCVN3 text. */
extern const uint16_t lt_tcvn3_high[128];

/* Windows-1252 bytes 0x80..0x9F -> code point; 0 where undefined (81 8D 8F 90 9D). Bytes
 * 0xA0..0xFF of Windows-1252 are Latin-1, i.e. the code point equals the byte. */
extern const uint16_t lt_cp1252_80_9f[32];

#endif
