/*
 * reader.c - the common part of the readers: options, charset choice, the record object,
 * look-ups, and the reject/deliver plumbing. Formats live in reader_<format>.c.
 */
#include "reader_int.h"
#include "fileio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- record ---- */

lt_err lt_rec_add(struct lt_record *r, const char *name, char *value)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        const char **nn = realloc(r->names, cap * sizeof *nn);
        if (nn == NULL) {
            free(value);
            return LT_ENOMEM;
        }
        r->names = nn;
        char **nv = realloc(r->values, cap * sizeof *nv);
        if (nv == NULL) {
            free(value);
            return LT_ENOMEM;
        }
        r->values = nv;
        r->cap = cap;
    }
    r->names[r->n] = name;
    r->values[r->n] = value;
    r->n++;
    return LT_OK;
}

char *lt_rec_keep(struct lt_record *r, char *s)
{
    if (s == NULL)
        return NULL;
    if (r->nscratch == r->capscratch) {
        size_t cap = r->capscratch ? r->capscratch * 2 : 8;
        char **p = realloc(r->scratch, cap * sizeof *p);
        if (p == NULL) {
            free(s);
            return NULL;
        }
        r->scratch = p;
        r->capscratch = cap;
    }
    r->scratch[r->nscratch++] = s;
    return s;
}

void lt_rec_clear(struct lt_record *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->values[i]);
    r->n = 0;
    for (size_t i = 0; i < r->nscratch; i++)
        free(r->scratch[i]);
    r->nscratch = 0;
    r->raw = NULL;
    r->raw_len = 0;
}

void lt_rec_fini(struct lt_record *r)
{
    lt_rec_clear(r);
    free(r->names);
    free(r->values);
    free(r->scratch);
    r->names = NULL;
    r->values = NULL;
    r->scratch = NULL;
    r->cap = r->capscratch = 0;
}

const char *lt_record_file(const lt_record *r) { return r->file; }
size_t lt_record_line(const lt_record *r) { return r->line; }
size_t lt_record_index(const lt_record *r) { return r->index; }
lt_charset lt_record_charset(const lt_record *r) { return r->cs; }
size_t lt_record_nfields(const lt_record *r) { return r->n; }

const char *lt_record_name(const lt_record *r, size_t i)
{
    return i < r->n ? r->names[i] : NULL;
}

const char *lt_record_value(const lt_record *r, size_t i)
{
    return i < r->n ? r->values[i] : NULL;
}

static lt_err get_bytes(lt_record *r, size_t off, size_t width, const char **value, lt_why *why)
{
    if (r->raw == NULL || r->dec == NULL)
        return lt_fail(why, LT_EINVAL, "byte ranges apply to fixed-width records only");
    if (width > SIZE_MAX - off)
        return lt_fail(why, LT_EINVAL, "byte range overflows");
    size_t end = off + width;
    size_t a = off < r->raw_len ? off : r->raw_len;
    size_t b = end < r->raw_len ? end : r->raw_len;
    lt_charset cs = lt_charset_decoder_charset(r->dec);
    if (lt_charset_cuts_char(cs, r->raw, r->raw_len, a) ||
        lt_charset_cuts_char(cs, r->raw, r->raw_len, b))
        return lt_fail(why, LT_EENCODING, "bytes %zu..%zu cut a %s character in two", off,
                       end, lt_charset_name(cs));
    char *s = NULL;
    size_t sl;
    lt_err err = lt_charset_decoder_run(r->dec, r->raw + a, b - a, &s, &sl, why);
    if (err)
        return err;
    if (lt_rec_keep(r, s) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *value = s;
    return LT_OK;
}

lt_err lt_record_get(lt_record *r, const lt_field_ref *ref, const char **value, lt_why *why)
{
    switch (ref->by) {
    case LT_FIELD_NAME:
        if (ref->name == NULL)
            return lt_fail(why, LT_EINVAL, "field look-up without a name");
        for (size_t i = 0; i < r->n; i++)
            if (strcmp(r->names[i], ref->name) == 0) {
                *value = r->values[i];
                return LT_OK;
            }
        if (r->json != NULL)
            return lt_reader_jsonl_path(r, ref->name, value, why);
        if (r->doc != NULL)
            return lt_reader_edxml_missing(r, ref->name, why);
        return lt_fail(why, LT_ENOTFOUND, "no field named '%.80s'", ref->name);
    case LT_FIELD_COLUMN:
        if (ref->column == 0 || ref->column > r->n)
            return lt_fail(why, LT_ENOTFOUND, "no column %zu (the record has %zu)",
                           ref->column, r->n);
        *value = r->values[ref->column - 1];
        return LT_OK;
    case LT_FIELD_BYTES:
        return get_bytes(r, ref->offset, ref->width, value, why);
    case LT_FIELD_XPATH:
        if (r->doc == NULL)
            return lt_fail(why, LT_EINVAL, "XPath applies to edXML records only");
        if (ref->name == NULL)
            return lt_fail(why, LT_EINVAL, "XPath look-up without an expression");
        return lt_reader_edxml_xpath(r, ref->name, value, why);
    }
    return lt_fail(why, LT_EINVAL, "unknown field look-up kind %d", (int)ref->by);
}

/* ---- run plumbing ---- */

void lt_run_reject(struct lt_run *run, size_t line, size_t record, const char *field,
                   lt_err code, const char *fmt, ...)
{
    char reason[LT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    run->stats->rejects++;
    if (run->sink->reject == NULL)
        return;
    lt_reject rej = {.file = run->file, .line = line, .record = record, .field = field,
                     .code = code, .reason = reason};
    run->sink->reject(run->sink->ctx, &rej);
}

lt_err lt_run_deliver(struct lt_run *run, struct lt_record *r, lt_why *why)
{
    run->stats->records++;
    if (run->sink->record != NULL && run->sink->record(run->sink->ctx, r) != 0)
        return lt_fail(why, LT_ECLOSED, "%s: reading stopped by the caller at record %zu",
                       run->file, r->index);
    return LT_OK;
}

lt_err lt_run_decode(struct lt_run *run, const uint8_t *in, size_t len, char **out,
                     lt_why *why)
{
    size_t ol;
    return lt_charset_decoder_run(run->dec, in, len, out, &ol, why);
}

lt_err lt_reader_format_from_name(const char *name, lt_reader_format *f, lt_why *why)
{
    static const struct {
        const char *name;
        lt_reader_format f;
    } t[] = {{"csv", LT_FORMAT_CSV},     {"fixed", LT_FORMAT_FIXED},
             {"edxml", LT_FORMAT_EDXML}, {"jsonl", LT_FORMAT_JSONL},
             {"json-lines", LT_FORMAT_JSONL}};
    for (size_t i = 0; name != NULL && i < sizeof t / sizeof t[0]; i++)
        if (strcasecmp(name, t[i].name) == 0) {
            *f = t[i].f;
            return LT_OK;
        }
    return lt_fail(why, LT_EINVAL, "unknown input format '%.40s' (use csv, fixed, edxml, jsonl)",
                   name ? name : "");
}

lt_err lt_reader_run(const lt_reader_opts *opts, const char *file, const uint8_t *data,
                     size_t len, const lt_reader_sink *sink, lt_reader_stats *stats,
                     lt_why *why)
{
    lt_reader_stats local;
    if (stats == NULL)
        stats = &local;
    *stats = (lt_reader_stats){.charset = opts->charset, .charset_score = 1.0};
    struct lt_run run = {.opts = opts, .file = file ? file : "-", .sink = sink, .stats = stats};
    lt_why w;
    if (why == NULL)
        why = &w;
    lt_err err;

    if ((unsigned)opts->charset >= LT_CHARSET_COUNT) {
        err = lt_fail(why, LT_EINVAL, "unknown charset %d", (int)opts->charset);
        goto out_report;
    }
    lt_charset cs = opts->charset;
    /* edXML says its own encoding in the XML declaration; libxml2 honours it. */
    bool xml_own = opts->format == LT_FORMAT_EDXML &&
                   (cs == LT_CHARSET_AUTO || cs == LT_CHARSET_UTF8);
    if (cs == LT_CHARSET_AUTO && !xml_own) {
        err = lt_charset_detect(data, len, &cs, &stats->charset_score, why);
        if (err)
            goto out_report;
    }
    stats->charset = xml_own ? LT_CHARSET_UTF8 : cs;
    if (!xml_own && (err = lt_charset_decoder_open(cs, &run.dec, why)) != LT_OK)
        goto out_report;

    switch (opts->format) {
    case LT_FORMAT_CSV: err = lt_reader_csv(&run, data, len, why); break;
    case LT_FORMAT_FIXED: err = lt_reader_fixed(&run, data, len, why); break;
    case LT_FORMAT_EDXML: err = lt_reader_edxml(&run, data, len, why); break;
    case LT_FORMAT_JSONL: err = lt_reader_jsonl(&run, data, len, why); break;
    default: err = lt_fail(why, LT_EINVAL, "unknown input format %d", (int)opts->format); break;
    }
    lt_charset_decoder_close(&run.dec);
    return err; /* the format readers report their own fatal errors */

out_report:
    lt_run_reject(&run, 0, 0, NULL, err, "%s", why->msg);
    return err;
}

lt_err lt_reader_run_file(const lt_reader_opts *opts, const char *path,
                          const lt_reader_sink *sink, lt_reader_stats *stats, lt_why *why)
{
    char *buf = NULL;
    size_t n = 0;
    lt_err err = lt_file_read(path, SIZE_MAX, &buf, &n, why);
    if (err != LT_OK)
        return err;
    err = lt_reader_run(opts, path, (const uint8_t *)buf, n, sink, stats, why);
    free(buf);
    return err;
}
