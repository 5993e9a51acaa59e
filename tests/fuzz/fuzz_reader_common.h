/*
 * fuzz_reader_common.h - the record and reject callbacks the reader fuzz targets share:
 * they touch every field and every kind of look-up, so bad pointers surface.
 */
#ifndef LT_TESTS_FUZZ_READER_COMMON_H
#define LT_TESTS_FUZZ_READER_COMMON_H

#include "reader.h"

#include <assert.h>
#include <string.h>

static size_t fuzz_sink_bytes;

static int fuzz_on_record(void *ctx, lt_record *r)
{
    (void)ctx;
    lt_why why;
    const char *v;
    for (size_t i = 0; i < lt_record_nfields(r); i++) {
        fuzz_sink_bytes += strlen(lt_record_name(r, i)) + strlen(lt_record_value(r, i));
        lt_field_ref by_name = {.by = LT_FIELD_NAME, .name = lt_record_name(r, i)};
        assert(lt_record_get(r, &by_name, &v, &why) == LT_OK);
        lt_field_ref by_col = {.by = LT_FIELD_COLUMN, .column = i + 1};
        assert(lt_record_get(r, &by_col, &v, &why) == LT_OK);
    }
    lt_field_ref bytes = {.by = LT_FIELD_BYTES, .offset = 3, .width = 5};
    if (lt_record_get(r, &bytes, &v, &why) == LT_OK)
        fuzz_sink_bytes += strlen(v);
    lt_field_ref xp = {.by = LT_FIELD_XPATH, .name = "//MessageHeader/Subject"};
    if (lt_record_get(r, &xp, &v, &why) == LT_OK)
        fuzz_sink_bytes += strlen(v);
    lt_field_ref att = {.by = LT_FIELD_NAME, .name = "attachments"};
    if (lt_record_get(r, &att, &v, &why) == LT_OK)
        fuzz_sink_bytes += strlen(v);
    lt_field_ref path = {.by = LT_FIELD_NAME, .name = "a.b.0"};
    if (lt_record_get(r, &path, &v, &why) == LT_OK)
        fuzz_sink_bytes += strlen(v);
    assert(lt_record_line(r) >= 1 && lt_record_index(r) >= 1);
    return 0;
}

static void fuzz_on_reject(void *ctx, const lt_reject *rej)
{
    (void)ctx;
    assert(rej->reason != NULL && rej->file != NULL);
    fuzz_sink_bytes += strlen(rej->reason);
}

static const lt_reader_sink fuzz_sink = {fuzz_on_record, fuzz_on_reject, NULL};

/* Runs the reader and checks the stats add up. */
static void fuzz_run(const lt_reader_opts *o, const uint8_t *data, size_t size)
{
    lt_reader_stats st;
    lt_why why;
    lt_reader_run(o, "fuzz", data, size, &fuzz_sink, &st, &why);
    assert(st.records + st.rejects <= size + 2);
}

#endif
