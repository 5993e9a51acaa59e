/*
 * test_readers.c - CSV, fixed-width, edXML and JSON-lines readers: good records, look-ups
 * of every kind, and malformed inputs turning into reject entries (never crashes).
 * The samples of adapters/samples/ are read too (found through LT_TEST_SRCDIR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "charset.h"
#include "reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEEP 256

/* What a run produced, copied out of the callbacks. */
struct got {
    size_t nrec, nrej;
    char rec[MAX_KEEP][2048]; /* "line|name=value|name=value..." */
    char rej[MAX_KEEP][320]; /* "line|record|field|reason" */
    size_t lines[MAX_KEEP];
    lt_field_ref extra;      /* a look-up to try on every record */
    char extra_val[MAX_KEEP][256];
    lt_err extra_err[MAX_KEEP];
};

static int on_rec(void *ctx, lt_record *r)
{
    struct got *g = ctx;
    if (g->nrec < MAX_KEEP) {
        char *s = g->rec[g->nrec];
        size_t n = (size_t)snprintf(s, 2048, "%zu", lt_record_line(r));
        for (size_t i = 0; i < lt_record_nfields(r) && n < 2048; i++)
            n += (size_t)snprintf(s + n, 2048 - n, "|%s=%s", lt_record_name(r, i),
                                  lt_record_value(r, i));
        g->lines[g->nrec] = lt_record_line(r);
        if (g->extra.by) {
            const char *v = NULL;
            lt_why why;
            g->extra_err[g->nrec] = lt_record_get(r, &g->extra, &v, &why);
            snprintf(g->extra_val[g->nrec], 256, "%s", v ? v : why.msg);
        }
    }
    g->nrec++;
    return 0;
}

static void on_rej(void *ctx, const lt_reject *j)
{
    struct got *g = ctx;
    if (g->nrej < MAX_KEEP)
        snprintf(g->rej[g->nrej], 320, "%zu|%zu|%s|%s", j->line, j->record,
                 j->field ? j->field : "-", j->reason);
    g->nrej++;
}

static lt_err run(const lt_reader_opts *o, const void *data, size_t len, struct got *g)
{
    lt_reader_sink sink = {on_rec, on_rej, g};
    lt_reader_stats st;
    lt_why why = {{0}};
    lt_err err = lt_reader_run(o, "t", data, len, &sink, &st, &why);
    assert_int_equal(st.records, g->nrec);
    assert_int_equal(st.rejects, g->nrej);
    return err;
}

static struct got *fresh(void)
{
    struct got *g = calloc(1, sizeof *g);
    assert_non_null(g);
    return g;
}

/* ---- CSV ---- */

static void csv_reads_quotes_embedded_newlines_and_doubled_quotes(void **state)
{
    (void)state;
    const char *csv = "ho_ten,dia_chi,ghi_chu\r\n"
                      "Nguyễn Văn An,\"12 Lê Lợi, Bến Nghé\",\"dòng 1\r\ndòng 2\"\r\n"
                      "\r\n"
                      "Trần Thị Bình,\"nói \"\"xin chào\"\"\",\r\n";
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_UTF8};
    struct got *g = fresh();
    assert_int_equal(run(&o, csv, strlen(csv), g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_int_equal(g->nrej, 0);
    assert_string_equal(g->rec[0], "2|ho_ten=Nguyễn Văn An|dia_chi=12 Lê Lợi, Bến Nghé|"
                                   "ghi_chu=dòng 1\r\ndòng 2");
    assert_string_equal(g->rec[1], "5|ho_ten=Trần Thị Bình|dia_chi=nói \"xin chào\"|ghi_chu=");
    free(g);
}

static void csv_detects_semicolons_and_legacy_charset(void **state)
{
    (void)state;
    const char *utf = "Mã phường;Tên phường;Ghi chú\n26734;Tân Định;\"có dấu ; trong ô\"\n"
                      "26740;Bến Nghé;Phường trung tâm của thành phố\n";
    uint8_t *b = NULL;
    size_t n;
    lt_why why;
    assert_int_equal(lt_charset_encode(LT_CHARSET_VNI, utf, strlen(utf), &b, &n, &why), LT_OK);
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_AUTO};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_COLUMN, .column = 2};
    assert_int_equal(run(&o, b, n, g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_string_equal(g->rec[0], "2|Mã phường=26734|Tên phường=Tân Định|Ghi chú=có dấu ; trong ô");
    assert_string_equal(g->extra_val[1], "Bến Nghé");
    free(g);
    free(b);
}

static void csv_rejects_bad_rows_and_keeps_reading(void **state)
{
    (void)state;
    const char *csv = "a,b\n"
                      "1,2\n"
                      "1,2,3\n"            /* too many fields */
                      "x\"y,2\n"           /* stray quote: strict RFC 4180 */
                      "3,\xff\n"           /* not UTF-8 */
                      "4,5\n"
                      "6,\"never closed\n7,8\n";
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_UTF8};
    struct got *g = fresh();
    assert_int_equal(run(&o, csv, strlen(csv), g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_string_equal(g->rec[0], "2|a=1|b=2");
    assert_string_equal(g->rec[1], "6|a=4|b=5");
    assert_int_equal(g->nrej, 4);
    assert_non_null(strstr(g->rej[0], "3|2|-|row has 3 fields, the header has 2"));
    assert_non_null(strstr(g->rej[1], "4|3|-|malformed CSV on line 4"));
    assert_non_null(strstr(g->rej[2], "5|4|b|invalid UTF-8 byte 0xFF"));
    assert_non_null(strstr(g->rej[3], "never closed"));
    free(g);
}

static void csv_without_header_names_columns_by_number(void **state)
{
    (void)state;
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_UTF8, .no_header = true,
                        .separator = ';'};
    struct got *g = fresh();
    assert_int_equal(run(&o, "x;y\nz;w\n", 8, g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_string_equal(g->rec[1], "2|1=z|2=w");
    free(g);
}

static void csv_with_undetectable_encoding_is_one_reject(void **state)
{
    (void)state;
    uint8_t junk[600];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(0x80 + (i * 37) % 127);
    lt_reader_opts o = {.format = LT_FORMAT_CSV, .charset = LT_CHARSET_AUTO};
    struct got *g = fresh();
    assert_int_equal(run(&o, junk, sizeof junk, g), LT_EENCODING);
    assert_int_equal(g->nrec, 0);
    assert_int_equal(g->nrej, 1);
    free(g);
}

/* ---- fixed width ---- */

static const lt_fixed_field layout[] = {{"id", 0, 3}, {"name", 3, 8}, {"code", 11, 2}};

static void fixed_cuts_bytes_before_decoding(void **state)
{
    (void)state;
    /* "Nguyễn" in VNI is 7 bytes (e + E3 mark): width 8 holds it plus a space */
    uint8_t *line = NULL;
    size_t n;
    lt_why why;
    const char *utf = "001Nguyễn AB\r\n002Hà     CD\r\n";
    assert_int_equal(lt_charset_encode(LT_CHARSET_VNI, utf, strlen(utf), &line, &n, &why), LT_OK);
    lt_reader_opts o = {.format = LT_FORMAT_FIXED, .charset = LT_CHARSET_VNI,
                        .fields = layout, .nfields = 3};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_BYTES, .offset = 3, .width = 5};
    assert_int_equal(run(&o, line, n, g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_string_equal(g->rec[0], "1|id=001|name=Nguyễn |code=AB");
    assert_string_equal(g->rec[1], "2|id=002|name=Hà     |code=CD");
    /* bytes 3..8 end between "e" and its mark in line 1: refused, not split */
    assert_int_equal(g->extra_err[0], LT_EENCODING);
    assert_non_null(strstr(g->extra_val[0], "cut a vni character"));
    assert_int_equal(g->extra_err[1], LT_OK);
    assert_string_equal(g->extra_val[1], "Hà  ");
    free(g);
    free(line);
}

static void fixed_rejects_a_layout_that_splits_a_vni_letter(void **state)
{
    (void)state;
    /* "Phạm" = P h a EF m: a field ending after "Pha" would split ạ */
    const lt_fixed_field bad[] = {{"first", 0, 3}, {"rest", 3, 5}};
    lt_reader_opts o = {.format = LT_FORMAT_FIXED, .charset = LT_CHARSET_VNI, .fields = bad,
                        .nfields = 2};
    struct got *g = fresh();
    assert_int_equal(run(&o, "Pha\xefm\nTra\xe0n\n", 12, g), LT_OK);
    assert_int_equal(g->nrec, 0);
    assert_int_equal(g->nrej, 2);
    assert_non_null(strstr(g->rej[0], "1|1|first|field first (bytes 0..3) cuts a vni character"));
    free(g);
}

static void fixed_short_lines_read_as_padded(void **state)
{
    (void)state;
    lt_reader_opts o = {.format = LT_FORMAT_FIXED, .charset = LT_CHARSET_TCVN3,
                        .fields = layout, .nfields = 3};
    struct got *g = fresh();
    assert_int_equal(run(&o, "007H\xb5\n", 6, g), LT_OK);
    assert_int_equal(g->nrec, 1);
    assert_string_equal(g->rec[0], "1|id=007|name=Hà|code=");
    free(g);
}

/* ---- edXML ---- */

static char *slurp(const char *rel, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", LT_TEST_SRCDIR, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    b[sz] = 0;
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void edxml_package_header_fields_are_extracted(void **state)
{
    (void)state;
    size_t n;
    char *x = slurp("adapters/samples/edxml/2417-UBND-VX.edxml", &n);
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_XPATH,
                              .name = "//edXMLManifest/Reference/AttachmentName"};
    assert_int_equal(run(&o, x, n, g), LT_OK);
    assert_int_equal(g->nrec, 1);
    const char *r = g->rec[0];
    assert_non_null(strstr(r, "|kind=edoc|"));
    assert_non_null(strstr(r, "|from.organ_id=000.00.00.H29|"));
    assert_non_null(strstr(r, "|to.organ_id=000.00.00.G22; 000.00.00.G09|"));
    assert_non_null(strstr(r, "|code.number=2417|code.notation=UBND-VX|"));
    assert_non_null(strstr(r, "|promulgation.date=2025/06/20|"));
    assert_non_null(strstr(r, "|document_type.name=Công văn|"));
    assert_non_null(strstr(r, "|signer.full_name=Trần Thị Diệu Thúy|"));
    assert_non_null(strstr(r, "|due_date=2025/07/15|"));
    assert_non_null(strstr(r, "|document_id=000.00.00.H29,2025/06/20,2417/UBND-VX|"));
    assert_non_null(strstr(r, "|business.doc_type=0|"));
    assert_string_equal(g->extra_val[0], "2417-UBND-VX.pdf");
    free(g);
    free(x);
}

static void edxml_status_reply_fields_are_extracted(void **state)
{
    (void)state;
    size_t n;
    char *x = slurp("adapters/samples/edxml/2417-UBND-VX.status-03.edxml", &n);
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_NAME, .name = "status.description"};
    assert_int_equal(run(&o, x, n, g), LT_OK);
    assert_int_equal(g->nrec, 1);
    assert_non_null(strstr(g->rec[0], "|kind=status|"));
    assert_non_null(strstr(g->rec[0], "|status.code=03|"));
    assert_non_null(strstr(g->rec[0], "|status.timestamp=2025/06/21 08:15:03|"));
    assert_non_null(strstr(g->rec[0], "|response_for.document_id=000.00.00.H29,2025/06/20,2417/UBND-VX|"));
    assert_string_equal(g->extra_val[0], "Đã tiếp nhận");
    free(g);
    free(x);
}

static void edxml_namespace_variants_and_malformed_input(void **state)
{
    (void)state;
    const char *godoc = "<edXML xmlns=\"http://www.go.vn/eDoc\"><edXMLEnvelope><edXMLHeader>"
                        "<MessageHeader><From><OrganId>000.00.00.H41</OrganId></From>"
                        "<Subject>Thử</Subject></MessageHeader></edXMLHeader></edXMLEnvelope></edXML>";
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    struct got *g = fresh();
    assert_int_equal(run(&o, godoc, strlen(godoc), g), LT_OK);
    assert_string_equal(g->rec[0], "1|kind=edoc|from.organ_id=000.00.00.H41|subject=Thử");
    free(g);

    g = fresh();
    assert_int_equal(run(&o, "<edXML><a>\n<b></edXML>", 22, g), LT_EFORMAT);
    assert_int_equal(g->nrej, 1);
    assert_non_null(strstr(g->rej[0], "not well-formed XML"));
    free(g);

    const char *dtd = "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><edXML>&a;</edXML>";
    g = fresh();
    assert_int_equal(run(&o, dtd, strlen(dtd), g), LT_EFORMAT);
    assert_non_null(strstr(g->rej[0], "DTD"));
    free(g);

    g = fresh();
    assert_int_equal(run(&o, "<edXML><MessageHeader/></edXML>", 31, g), LT_OK);
    assert_int_equal(g->nrec, 0);
    assert_non_null(strstr(g->rej[0], "without from.organ_id"));
    free(g);

    g = fresh();
    assert_int_equal(run(&o, "<html/>", 7, g), LT_EFORMAT);
    assert_non_null(strstr(g->rej[0], "neither MessageHeader nor MessageStatus"));
    free(g);
}

/* libxml2 writes some errors (a failed charset conversion, an encoder error) straight to
 * stderr whatever XML_PARSE_NOERROR says; the reader's report is the one place they go. */
static void edxml_encoding_errors_are_one_reject_and_nothing_on_stderr(void **state)
{
    (void)state;
    const char *doc = "<?xml version=\"1.0\" encoding=\"ISO-2022-JP\"?>\n"
                      "<edXMLEnvelope>\xc4\x83n </edXMLEnvelope>\n";
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    struct got *g = fresh();
    FILE *err = tmpfile();
    assert_non_null(err);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0 && dup2(fileno(err), 2) == 2);
    lt_err e = run(&o, doc, strlen(doc), g);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(err, 0, SEEK_END);
    long written = ftell(err);
    char said[256] = "";
    rewind(err);
    size_t n = fread(said, 1, sizeof said - 1, err);
    said[n] = '\0';
    fclose(err);
    assert_int_equal(e, LT_EFORMAT);
    assert_int_equal(g->nrej, 1);
    assert_non_null(strstr(g->rej[0], "not well-formed XML"));
    if (written != 0)
        fail_msg("libxml2 wrote %ld bytes to stderr: %s", written, said);
    free(g);
}

/* Real senders' shape (adapters/samples/gen_samples.c: edxml_prefixed): the edXML: prefix
 * declared on edXMLEnvelope, used out of its scope on AttachmentEncoded. */
static void edxml_prefixed_package_reads_every_field_and_attachment(void **state)
{
    (void)state;
    size_t n;
    char *x = slurp("adapters/samples/edxml/5123-VPCP-KGVX.edxml", &n);
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_XPATH,
                              .name = "//AttachmentEncoded/Attachment/ContentId"};
    assert_int_equal(run(&o, x, n, g), LT_OK);
    assert_int_equal(g->nrec, 1);
    assert_int_equal(g->nrej, 0);
    const char *r = g->rec[0];
    assert_non_null(strstr(r, "|kind=edoc|"));
    assert_non_null(strstr(r, "|from.organ_id=000.00.00.G22|from.organ_name=Văn phòng Chính phủ|"));
    assert_non_null(strstr(r, "|to.organ_id=000.00.00.H29; 000.00.00.H41|"));
    assert_non_null(strstr(r, "|code.number=5123|code.notation=VPCP-KGVX|"));
    assert_non_null(strstr(r, "|signer.full_name=Nguyễn Văn Hùng|"));
    assert_non_null(strstr(r, "|document_id=000.00.00.G22,2025/07/08,5123/VPCP-KGVX|"));
    assert_non_null(strstr(r, "|business.doc_type=0|"));
    assert_non_null(strstr(r, "|attachments=5123-VPCP-KGVX.pdf; Phu-luc-ma-don-vi.docx"));
    assert_int_equal(g->extra_err[0], LT_OK);
    assert_string_equal(g->extra_val[0], "cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0001; "
                                         "cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0002");
    free(g);

    /* XML-DSig keeps its namespace: reached with ds:, and a plain //Signature says where
     * it is instead of finding nothing. */
    g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_XPATH, .name = "//ds:Signature/ds:SignatureValue"};
    assert_int_equal(run(&o, x, n, g), LT_OK);
    assert_int_equal(g->extra_err[0], LT_OK);
    assert_string_equal(g->extra_val[0], "c2FtcGxlIHNpZ25hdHVyZSwgbm90IHNpZ25lZA==");
    free(g);
    g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_XPATH, .name = "//Signature/SignatureValue"};
    assert_int_equal(run(&o, x, n, g), LT_OK);
    assert_int_equal(g->extra_err[0], LT_EFORMAT);
    assert_non_null(strstr(g->extra_val[0], "//Signature/SignatureValue"));
    assert_non_null(strstr(g->extra_val[0], "http://www.w3.org/2000/09/xmldsig#"));
    free(g);
    free(x);
}

/* An element that is there, but under a prefix declared nowhere or in a namespace that is
 * not edXML's: a look-up that misses it is an error naming the path and the element, by
 * XPath and by standard field name; one that finds nothing anywhere stays "not found". */
static void edxml_lookup_missing_an_element_of_another_namespace_names_both(void **state)
{
    (void)state;
    static const char head[] =
        "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><edXMLHeader>"
        "<MessageHeader><From><OrganId>000.00.00.H41</OrganId></From><Subject>Thử</Subject>"
        "</MessageHeader></edXMLHeader></edXMLEnvelope>";
    static const char *const att[] = {
        "<att:AttachmentEncoded><att:Attachment><att:AttachmentName>a.pdf</att:AttachmentName>"
        "</att:Attachment></att:AttachmentEncoded></edXML>",
        "<AttachmentEncoded xmlns=\"urn:vendor:attach\"><Attachment><AttachmentName>a.pdf"
        "</AttachmentName></Attachment></AttachmentEncoded></edXML>",
    };
    static const char *const named[] = {"<att:AttachmentName>", "urn:vendor:attach"};
    lt_reader_opts o = {.format = LT_FORMAT_EDXML};
    char doc[1024];
    for (size_t i = 0; i < 2; i++) {
        snprintf(doc, sizeof doc, "%s%s", head, att[i]);
        struct got *g = fresh();
        g->extra = (lt_field_ref){.by = LT_FIELD_XPATH,
                                  .name = "//AttachmentEncoded/Attachment/AttachmentName"};
        assert_int_equal(run(&o, doc, strlen(doc), g), LT_OK);
        assert_int_equal(g->nrec, 1);
        assert_null(strstr(g->rec[0], "attachments="));
        assert_int_equal(g->extra_err[0], LT_EFORMAT);
        if (strstr(g->extra_val[0], "//AttachmentEncoded/Attachment/AttachmentName") == NULL ||
            strstr(g->extra_val[0], named[i]) == NULL)
            fail_msg("%zu: %s", i, g->extra_val[0]);
        free(g);

        g = fresh();
        g->extra = (lt_field_ref){.by = LT_FIELD_NAME, .name = "attachments"};
        assert_int_equal(run(&o, doc, strlen(doc), g), LT_OK);
        assert_int_equal(g->extra_err[0], LT_EFORMAT);
        assert_non_null(strstr(g->extra_val[0], named[i]));
        free(g);

        g = fresh();
        g->extra = (lt_field_ref){.by = LT_FIELD_XPATH, .name = "//MessageHeader/DueDate"};
        assert_int_equal(run(&o, doc, strlen(doc), g), LT_OK);
        assert_int_equal(g->extra_err[0], LT_ENOTFOUND);
        free(g);
    }
    /* The whole header under another namespace: the file is refused saying where it is. */
    const char *other = "<edXML xmlns=\"urn:not-edxml\"><MessageHeader><From><OrganId>x</OrganId>"
                        "</From></MessageHeader></edXML>";
    struct got *g = fresh();
    assert_int_equal(run(&o, other, strlen(other), g), LT_EFORMAT);
    assert_non_null(strstr(g->rej[0], "urn:not-edxml"));
    free(g);
}

/* ---- JSON lines ---- */

static void jsonl_reads_objects_and_reports_bad_lines(void **state)
{
    (void)state;
    const char *j = "{\"so_dinh_danh\":\"079203001234\",\"tuoi\":21,\"dia_chi\":{\"ma_xa\":\"26737\"},"
                    "\"con\":[{\"ten\":\"Bé Na\"}],\"ghi_chu\":null}\n"
                    "\n"
                    "[1,2]\n"
                    "{\"a\":1} trailing\n"
                    "{\"a\":\n"
                    "{\"ho_ten\":\"Lê Thị Mai\"}\n";
    lt_reader_opts o = {.format = LT_FORMAT_JSONL, .charset = LT_CHARSET_AUTO};
    struct got *g = fresh();
    g->extra = (lt_field_ref){.by = LT_FIELD_NAME, .name = "dia_chi.ma_xa"};
    assert_int_equal(run(&o, j, strlen(j), g), LT_OK);
    assert_int_equal(g->nrec, 2);
    assert_string_equal(g->rec[0], "1|so_dinh_danh=079203001234|tuoi=21|"
                                   "dia_chi={\"ma_xa\":\"26737\"}|con=[{\"ten\":\"Bé Na\"}]");
    assert_string_equal(g->extra_val[0], "26737");
    assert_int_equal(g->extra_err[1], LT_ENOTFOUND);
    assert_int_equal(g->lines[1], 6);
    assert_int_equal(g->nrej, 3);
    assert_non_null(strstr(g->rej[0], "3|2|-|line is JSON but not an object"));
    assert_non_null(strstr(g->rej[1], "4|3|-|not one JSON value"));
    assert_non_null(strstr(g->rej[2], "5|4|-|not one JSON value"));
    free(g);
}

/* ---- samples ---- */

static void samples_read_without_rejects(void **state)
{
    (void)state;
    static const lt_fixed_field residence[] = {
        {"so_dinh_danh", 0, 12}, {"ho_ten", 12, 30},   {"ngay_sinh", 42, 8},
        {"loai", 50, 4},         {"ma_xa_di", 54, 5},  {"ma_xa_den", 59, 5},
        {"ngay_thay_doi", 64, 8}, {"dia_chi", 72, 50},
    };
    static const struct {
        const char *file;
        lt_reader_format f;
        lt_charset want;
        size_t records;
    } s[] = {
        {"adapters/samples/births_760_cp1258.csv", LT_FORMAT_CSV, LT_CHARSET_CP1258, 60},
        {"adapters/samples/businesses_vni.csv", LT_FORMAT_CSV, LT_CHARSET_VNI, 50},
        {"adapters/samples/residence_26737_tcvn3.txt", LT_FORMAT_FIXED, LT_CHARSET_TCVN3, 40},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        size_t n;
        char *data = slurp(s[i].file, &n);
        lt_reader_opts o = {.format = s[i].f, .charset = LT_CHARSET_AUTO, .fields = residence,
                            .nfields = sizeof residence / sizeof residence[0]};
        struct got *g = fresh();
        lt_reader_sink sink = {on_rec, on_rej, g};
        lt_reader_stats st;
        lt_why why = {{0}};
        assert_int_equal(lt_reader_run(&o, s[i].file, (const uint8_t *)data, n, &sink, &st, &why),
                         LT_OK);
        if (g->nrej)
            fail_msg("%s: %s", s[i].file, g->rej[0]);
        assert_int_equal(st.charset, s[i].want);
        assert_int_equal(g->nrec, s[i].records);
        free(g);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_reads_quotes_embedded_newlines_and_doubled_quotes),
        cmocka_unit_test(csv_detects_semicolons_and_legacy_charset),
        cmocka_unit_test(csv_rejects_bad_rows_and_keeps_reading),
        cmocka_unit_test(csv_without_header_names_columns_by_number),
        cmocka_unit_test(csv_with_undetectable_encoding_is_one_reject),
        cmocka_unit_test(fixed_cuts_bytes_before_decoding),
        cmocka_unit_test(fixed_rejects_a_layout_that_splits_a_vni_letter),
        cmocka_unit_test(fixed_short_lines_read_as_padded),
        cmocka_unit_test(edxml_package_header_fields_are_extracted),
        cmocka_unit_test(edxml_status_reply_fields_are_extracted),
        cmocka_unit_test(edxml_namespace_variants_and_malformed_input),
        cmocka_unit_test(edxml_encoding_errors_are_one_reject_and_nothing_on_stderr),
        cmocka_unit_test(edxml_prefixed_package_reads_every_field_and_attachment),
        cmocka_unit_test(edxml_lookup_missing_an_element_of_another_namespace_names_both),
        cmocka_unit_test(jsonl_reads_objects_and_reports_bad_lines),
        cmocka_unit_test(samples_read_without_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
