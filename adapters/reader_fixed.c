/*
 * reader_fixed.c - fixed-width lines, as old agency databases export them.
 *
 * Widths are in bytes of the legacy encoding (what the exporting program counted), so each
 * field is cut from the raw line first and decoded after. A cut that would split a
 * character (a VNI base letter from its mark byte, a UTF-8 sequence, a CP1258 letter from
 * its tone byte) rejects the line: the layout does not fit the data and guessing would
 * corrupt a name. Lines shorter than the layout are read as if padded (exporters often
 * drop trailing spaces); bytes beyond the last field are ignored. Values keep their padding:
 * trimming is the mapping's business.
 */
#include "reader_int.h"

#include <stdlib.h>
#include <string.h>

lt_err lt_reader_fixed(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why)
{
    const lt_reader_opts *o = run->opts;
    if (o->fields == NULL || o->nfields == 0) {
        lt_err err = lt_fail(why, LT_EINVAL, "a fixed-width layout needs at least one field");
        lt_run_reject(run, 0, 0, NULL, err, "%s", why->msg);
        return err;
    }
    for (size_t f = 0; f < o->nfields; f++)
        if (o->fields[f].name == NULL || o->fields[f].width == 0 ||
            o->fields[f].width > SIZE_MAX / 2 || o->fields[f].offset > SIZE_MAX / 2) {
            lt_err err = lt_fail(why, LT_EINVAL, "layout field %zu has no name or no width", f + 1);
            lt_run_reject(run, 0, 0, NULL, err, "%s", why->msg);
            return err;
        }
    lt_charset cs = lt_charset_decoder_charset(run->dec);
    struct lt_record rec = {.file = run->file, .cs = cs, .dec = run->dec};
    size_t pos = 0, line = 0, index = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        pos = 3;
    lt_err fatal = LT_OK;
    while (pos < len && !fatal) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
        const uint8_t *l = data + pos;
        pos += n + (nl != NULL);
        line++;
        size_t ll = n;
        if (ll > 0 && l[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            continue; /* blank line */
        index++;
        lt_rec_clear(&rec);
        rec.raw = l;
        rec.raw_len = ll;
        rec.line = line;
        rec.index = index;
        bool bad = false;
        for (size_t f = 0; f < o->nfields && !bad; f++) {
            const lt_fixed_field *fd = &o->fields[f];
            size_t a = fd->offset < ll ? fd->offset : ll;
            size_t end = fd->offset + fd->width;
            size_t b = end < ll ? end : ll;
            if (lt_charset_cuts_char(cs, l, ll, a) || lt_charset_cuts_char(cs, l, ll, b)) {
                lt_run_reject(run, line, index, fd->name, LT_EENCODING,
                              "field %s (bytes %zu..%zu) cuts a %s character in two: the "
                              "layout does not fit this line",
                              fd->name, fd->offset, end, lt_charset_name(cs));
                bad = true;
                break;
            }
            char *text = NULL;
            lt_why w;
            lt_err err = lt_run_decode(run, l + a, b - a, &text, &w);
            if (err) {
                lt_run_reject(run, line, index, fd->name, err, "field %s: %s", fd->name, w.msg);
                bad = true;
                break;
            }
            if (lt_rec_add(&rec, fd->name, text) != LT_OK) {
                fatal = lt_fail(why, LT_ENOMEM, "out of memory");
                bad = true;
            }
        }
        if (!bad)
            fatal = lt_run_deliver(run, &rec, why);
    }
    lt_rec_fini(&rec);
    return fatal;
}
