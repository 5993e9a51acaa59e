/*
 * test_mapping.c - declarative mappings (adapters/mapping.h): every transform, validation
 * failures with their field and reason, the two error policies, content-derived message ids,
 * refusal of bad mapping files with file:line:key, and the sample mappings over the sample
 * feeds (adapters/samples/, found through LT_TEST_SRCDIR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapping.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 256

struct got {
    size_t nrec, nrej;
    char *json[MAXN];
    char *topic[MAXN];
    uint8_t id[MAXN][LT_ENV_MESSAGE_ID_LEN];
    char *rej_field[MAXN], *rej_value[MAXN], *rej_reason[MAXN];
    size_t rej_line[MAXN];
};

static int on_rec(void *ctx, const lt_mapped *r)
{
    struct got *g = ctx;
    if (g->nrec < MAXN) {
        g->json[g->nrec] = strdup(r->json ? r->json : "");
        g->topic[g->nrec] = strdup(r->topic);
        memcpy(g->id[g->nrec], r->message_id, LT_ENV_MESSAGE_ID_LEN);
    }
    g->nrec++;
    return 0;
}

static void on_rej(void *ctx, const lt_map_reject *j)
{
    struct got *g = ctx;
    if (g->nrej < MAXN) {
        g->rej_field[g->nrej] = strdup(j->field);
        g->rej_value[g->nrej] = strdup(j->value);
        g->rej_reason[g->nrej] = strdup(j->reason);
        g->rej_line[g->nrej] = j->line;
    }
    g->nrej++;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < MAXN; i++) {
        free(g->json[i]);
        free(g->topic[i]);
        free(g->rej_field[i]);
        free(g->rej_value[i]);
        free(g->rej_reason[i]);
    }
    memset(g, 0, sizeof *g);
}

static lt_mapping *parse_ok(const char *yaml)
{
    lt_mapping *m = NULL;
    lt_why why;
    lt_err e = lt_mapping_parse("t.yaml", yaml, strlen(yaml), &m, &why);
    if (e != LT_OK)
        fail_msg("mapping refused: %s", why.msg);
    return m;
}

static lt_err run(const lt_mapping *m, const char *agency, const char *data, struct got *g)
{
    lt_mapping_sink sink = {on_rec, on_rej, g, true};
    lt_why why;
    return lt_mapping_run(m, agency, "in", (const uint8_t *)data, strlen(data), &sink, NULL,
                          &why);
}

/* The string at dotted path in the JSON text (malloc'd), or NULL. */
static char *json_at(const char *text, const char *path)
{
    json_object *root = json_tokener_parse(text), *cur = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && cur; t = strtok_r(NULL, ".", &save)) {
        json_object *next = NULL;
        if (json_object_is_type(cur, json_type_array))
            next = json_object_array_get_idx(cur, (size_t)atoi(t));
        else if (!json_object_object_get_ex(cur, t, &next))
            next = NULL;
        cur = next;
    }
    char *out = cur ? strdup(json_object_get_string(cur)) : NULL;
    json_object_put(root);
    return out;
}

/* ---- one transform chain on one value ------------------------------------------------ */

static char table_path[1024];

/* Map value through the transforms (YAML flow list body) into BirthRegistration.note. On
 * success returns the note (malloc'd) and *reason is NULL; on a reject returns NULL and
 * *reason is the reason (malloc'd). */
static char *through(const char *transforms, const char *value, char **reason)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "mapping: {record_type: lienthong.v1.records.BirthRegistration, topic: t.x, "
             "key: [k]}\n"
             "input: {format: jsonl, encoding: utf-8}\n"
             "lookups:\n"
             "  w: {file: \"%s\", key: old_code, value: new_code, effective: effective, "
             "note: note}\n"
             "fields:\n"
             "  registration_number:\n    source: {const: k1}\n"
             "  note:\n    source: {json: v}\n    transforms: [%s]\n"
             "vars:\n  k:\n    source: {const: x}\n",
             table_path, transforms);
    lt_mapping *m = parse_ok(yaml);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "v", json_object_new_string(value));
    char data[1024];
    snprintf(data, sizeof data, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    struct got g = {0};
    run(m, "VN:GOV:000.00.00.H29.760:hotich", data, &g);
    char *out = NULL;
    *reason = NULL;
    if (g.nrec == 1) {
        out = json_at(g.json[0], "note");
        if (out == NULL)
            out = strdup("");
    } else if (g.nrej >= 1) {
        *reason = strdup(g.rej_reason[0]);
    }
    got_free(&g);
    lt_mapping_destroy(&m);
    return out;
}

static void expect(const char *tf, const char *in, const char *want)
{
    char *reason = NULL, *out = through(tf, in, &reason);
    if (out == NULL || strcmp(out, want) != 0)
        fail_msg("[%s] '%s': want '%s', got '%s' (%s)", tf, in, want, out ? out : "(none)",
                 reason ? reason : "");
    free(out);
    free(reason);
}

static void expect_reject(const char *tf, const char *in, const char *reason_part)
{
    char *reason = NULL, *out = through(tf, in, &reason);
    if (out != NULL || reason == NULL || strstr(reason, reason_part) == NULL)
        fail_msg("[%s] '%s': want a reject with '%s', got '%s' / '%s'", tf, in, reason_part,
                 out ? out : "(none)", reason ? reason : "(none)");
    free(out);
    free(reason);
}

static void whitespace_transforms_trim_collapse_and_remove(void **state)
{
    (void)state;
    expect("trim", "  a  b \t", "a  b");
    expect("trim", "\xc2\xa0x\xc2\xa0", "x"); /* Excel's no-break spaces */
    expect("collapse_spaces", "  Nguyễn   Văn \t A  ", "Nguyễn Văn A");
    expect("remove_whitespace", " 079 224\n890129 ", "079224890129");
}

static void case_transforms_know_vietnamese_letters(void **state)
{
    (void)state;
    expect("upper", "nguyễn thị ánh", "NGUYỄN THỊ ÁNH");
    expect("lower", "ĐẶNG THU HẠNH", "đặng thu hạnh");
    expect("title", "võ mỹ ánh", "Võ Mỹ Ánh"); /* TCVN3 names decode lowercase */
    expect("title", "ĐỖ đức-hải", "Đỗ Đức-Hải");
}

static void date_transform_converts_and_refuses_impossible_dates(void **state)
{
    (void)state;
    expect("{date: {from: dd/mm/yyyy}}", "25/08/2024", "2024-08-25");
    expect("{date: {from: dd/mm/yyyy}}", "5/8/2024", "2024-08-05");
    expect("{date: {from: dd/mm/yyyy}}", "29/02/2024", "2024-02-29");
    expect("{date: {from: yyyymmdd, to: dd.mm.yyyy}}", "20250509", "09.05.2025");
    expect("{date: yyyy/mm/dd}", "2025/06/20", "2025-06-20");
    expect_reject("{date: {from: dd/mm/yyyy}}", "29/02/2023", "not a date in the form dd/mm/yyyy");
    expect_reject("{date: {from: dd/mm/yyyy}}", "2024-08-25", "not a date");
    expect_reject("{date: {from: yyyymmdd}}", "2025050", "not a date");
}

static void unix_ms_transform_applies_the_time_zone(void **state)
{
    (void)state;
    /* 2025-06-20 16:40:12 in Vietnam is 09:40:12 UTC */
    expect("{unix_ms: {from: \"yyyy/mm/dd HH:MI:SS\", tz: \"+07:00\"}}", "2025/06/20 16:40:12",
           "1750412412000");
    expect("{unix_ms: {from: \"yyyy-mm-dd HH:MI\", tz: Z}}", "1970-01-02 00:01", "86460000");
    expect_reject("{unix_ms: {from: \"yyyy/mm/dd HH:MI:SS\"}}", "2025/06/20 24:00:00",
                  "not a time");
}

static void number_transform_follows_the_declared_separators(void **state)
{
    (void)state;
    const char *vn = "{number: {thousands: \".\", decimal: \",\"}}";
    expect(vn, "1.234.567,50", "1234567.5");
    expect(vn, "-0,0", "0");
    expect(vn, "007", "7");
    expect("{number: {thousands: \".\", decimal: \",\", integer: true}}", "20.898.000.000",
           "20898000000");
    expect_reject(vn, "1.5", "not a number written with '.' for thousands");
    expect_reject(vn, "1,234.5", "not a number");
    expect_reject("{number: {thousands: \".\", decimal: \",\", integer: true}}", "12,5",
                  "has a fraction");
}

static void map_transform_maps_values_and_refuses_unknown_ones(void **state)
{
    (void)state;
    expect("{map: {values: {Nam: SEX_MALE, \"Nữ\": SEX_FEMALE}}}", "Nữ", "SEX_FEMALE");
    expect("{map: {values: {Nam: SEX_MALE}, ignore_case: true}}", "NAM", "SEX_MALE");
    expect("{map: {values: {Nam: SEX_MALE}, default: SEX_UNSPECIFIED}}", "?", "SEX_UNSPECIFIED");
    expect_reject("{map: {values: {Nam: SEX_MALE}}}", "nam", "not one of the mapped values ('Nam')");
}

static void lookup_translates_ward_codes_by_effective_date(void **state)
{
    (void)state;
    /* HCMC 2025 reform: old Tân Định 26734 -> new Tân Định 26737; Bến Nghé 26740 -> Sài Gòn
     * 26740; Đa Kao 26737 was split. Before 2025-07-01 every code still means itself. */
    expect("{lookup: {table: w, date: \"2025-07-01\"}}", "26734", "26737");
    expect("{lookup: {table: w, date: \"2025-07-01\"}}", "26740", "26740");
    expect("{lookup: {table: w, date: \"2025-06-30\"}}", "26734", "26734");
    expect("{lookup: {table: w, date: \"2024-01-01\"}}", "26737", "26737");
    expect_reject("{lookup: {table: w, date: \"2025-07-01\"}}", "26737", "split between");
    expect_reject("{lookup: {table: w, date: \"2025-07-01\"}}", "99999", "not in look-up table w");
    expect("{lookup: {table: w, date: \"2025-07-01\", missing: keep}}", "99999", "99999");
}

static void regex_and_text_transforms(void **state)
{
    (void)state;
    expect("{extract: {pattern: \"/([0-9]{4})$\"}}", "101/2024", "2024");
    expect_reject("{extract: {pattern: \"^[0-9]+$\"}}", "12a", "does not match the extract");
    expect("{replace: {pattern: \"[.]\", with: \"\"}}", "1.234.567", "1234567");
    expect("{prefix: \"VN-\"}", "01", "VN-01");
    expect("{suffix: \"/2024\"}", "101", "101/2024");
    expect("{pad_left: {width: 10}}", "322044750", "0322044750");
    expect("trim, {split: \";\"}, trim", "only", "only");
}

/* ---- validation, policies ---------------------------------------------------------- */

static const char csv_mapping[] =
    "mapping:\n"
    "  record_type: lienthong.v1.records.BirthRegistration\n"
    "  topic: \"79.{d}.hotich.khaisinh\"\n"
    "  key: [registration_number]\n"
    "  policy: %s\n"
    "input: {format: csv, encoding: utf-8, separator: \";\"}\n"
    "vars:\n"
    "  d: {source: {const: \"760\"}}\n"
    "fields:\n"
    "  registration_number:\n"
    "    source: {name: so}\n"
    "    validate: {required: true}\n"
    "  child.personal_id:\n"
    "    source: {column: 2}\n"
    "    validate: {required: true, pattern: \"^0[0-9]{11}$\"}\n"
    "  child.full_name:\n"
    "    source: {name: ten}\n"
    "    transforms: [collapse_spaces]\n"
    "    validate: {min_length: 2, max_length: 20}\n"
    "  child.sex:\n"
    "    source: {name: gt}\n"
    "    validate: {values: [SEX_MALE, SEX_FEMALE]}\n";

static const char csv_rows[] = "so;id;ten;gt\n"
                               "1;079224890129;Lý Quốc Tuấn;SEX_MALE\n"
                               "2;79224890129;A;SEX_X\n"
                               "3;079324348204;Đặng Thu Hạnh;SEX_FEMALE\n";

static lt_mapping *csv_map(const char *policy)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, csv_mapping, policy);
    return parse_ok(yaml);
}

static void validation_failures_name_the_field_the_value_and_the_reason(void **state)
{
    (void)state;
    lt_mapping *m = csv_map("publish_good");
    struct got g = {0};
    assert_int_equal(run(m, "VN:GOV:000.00.00.H29.760:hotich", csv_rows, &g), LT_OK);
    assert_int_equal(g.nrec, 2);
    assert_int_equal(g.nrej, 3); /* row 2: id, name, sex - every bad field, not the first */
    assert_string_equal(g.rej_field[0], "child.personal_id");
    assert_string_equal(g.rej_value[0], "79224890129");
    assert_non_null(strstr(g.rej_reason[0], "does not match ^0[0-9]{11}$"));
    assert_int_equal(g.rej_line[0], 3);
    assert_string_equal(g.rej_field[1], "child.full_name");
    assert_non_null(strstr(g.rej_reason[1], "at least 2"));
    assert_string_equal(g.rej_field[2], "child.sex");
    assert_non_null(strstr(g.rej_reason[2], "not an allowed value"));
    assert_string_equal(g.topic[0], "79.760.hotich.khaisinh");
    got_free(&g);

    /* required: an empty value and a missing column */
    assert_int_equal(run(m, "VN:GOV:000.00.00.H29.760:hotich",
                         "so;id;ten;gt\n;079224890129;Ab;SEX_MALE\n", &g),
                     LT_OK);
    assert_int_equal(g.nrec, 0);
    assert_string_equal(g.rej_field[0], "registration_number");
    assert_non_null(strstr(g.rej_reason[0], "required"));
    got_free(&g);
    assert_int_equal(run(m, "VN:GOV:000.00.00.H29.760:hotich", "id;ten\n079224890129;Ab\n", &g),
                     LT_OK);
    assert_int_equal(g.nrec, 0);
    assert_non_null(strstr(g.rej_reason[0], "no column 'so' in this file"));
    got_free(&g);
    lt_mapping_destroy(&m);
}

static void policy_publish_good_publishes_the_good_rows(void **state)
{
    (void)state;
    lt_mapping *m = csv_map("publish_good");
    struct got g = {0};
    lt_mapping_sink sink = {on_rec, on_rej, &g, false};
    lt_mapping_stats st;
    lt_why why;
    assert_int_equal(lt_mapping_run(m, "VN:GOV:000.00.00.H29.760:hotich", "in",
                                    (const uint8_t *)csv_rows, strlen(csv_rows), &sink, &st, &why),
                     LT_OK);
    assert_int_equal(st.rows, 3);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(g.nrec, 2);
    got_free(&g);
    lt_mapping_destroy(&m);
}

static void policy_reject_file_publishes_nothing_and_reports_every_row(void **state)
{
    (void)state;
    lt_mapping *m = csv_map("reject_file");
    assert_int_equal(lt_mapping_get_policy(m), LT_MAPPING_REJECT_FILE);
    struct got g = {0};
    assert_int_equal(run(m, "VN:GOV:000.00.00.H29.760:hotich", csv_rows, &g), LT_EVALIDATE);
    assert_int_equal(g.nrec, 0);
    assert_int_equal(g.nrej, 5); /* 3 bad fields of row 2, then rows 1 and 3 not published */
    assert_non_null(strstr(g.rej_reason[3], "policy reject_file"));
    assert_int_equal(g.rej_line[3], 2);
    assert_int_equal(g.rej_line[4], 4);
    got_free(&g);
    /* a clean file goes through whole */
    const char clean[] = "so;id;ten;gt\n1;079224890129;Lý Quốc Tuấn;SEX_MALE\n";
    assert_int_equal(run(m, "VN:GOV:000.00.00.H29.760:hotich", clean, &g), LT_OK);
    assert_int_equal(g.nrec, 1);
    assert_int_equal(g.nrej, 0);
    got_free(&g);
    lt_mapping_destroy(&m);
}

static void message_ids_are_stable_and_follow_content_and_agency(void **state)
{
    (void)state;
    lt_mapping *m = csv_map("publish_good");
    struct got a = {0}, b = {0}, c = {0}, d = {0};
    const char *ag = "VN:GOV:000.00.00.H29.760:hotich";
    run(m, ag, csv_rows, &a);
    run(m, ag, csv_rows, &b);
    assert_int_equal(a.nrec, 2);
    assert_memory_equal(a.id[0], b.id[0], LT_ENV_MESSAGE_ID_LEN);
    assert_memory_equal(a.id[1], b.id[1], LT_ENV_MESSAGE_ID_LEN);
    assert_memory_not_equal(a.id[0], a.id[1], LT_ENV_MESSAGE_ID_LEN);
    assert_int_equal(a.id[0][6] >> 4, 8);       /* UUIDv8 */
    assert_int_equal(a.id[0][8] & 0xC0, 0x80);  /* variant 10 */
    /* one letter of the name changed: a new id */
    run(m, ag, "so;id;ten;gt\n1;079224890129;Lý Quốc Tuân;SEX_MALE\n", &c);
    assert_int_equal(c.nrec, 1);
    assert_memory_not_equal(a.id[0], c.id[0], LT_ENV_MESSAGE_ID_LEN);
    /* same row from another agency: another id */
    run(m, "VN:GOV:000.00.00.H29.770:hotich", csv_rows, &d);
    assert_memory_not_equal(a.id[0], d.id[0], LT_ENV_MESSAGE_ID_LEN);
    got_free(&a), got_free(&b), got_free(&c), got_free(&d);
    lt_mapping_destroy(&m);
}

/* ---- bad mapping files ------------------------------------------------------------- */

static void refuse(const char *yaml, const char *part)
{
    lt_mapping *m = NULL;
    lt_why why = {{0}};
    lt_err e = lt_mapping_parse("bad.yaml", yaml, strlen(yaml), &m, &why);
    if (e == LT_OK || strstr(why.msg, part) == NULL)
        fail_msg("want a refusal with '%s', got %d '%s'", part, e, why.msg);
    assert_null(m);
}

static void bad_mapping_files_are_refused_with_file_line_and_key(void **state)
{
    (void)state;
    const char *head = "mapping: {record_type: lienthong.v1.records.BirthRegistration, "
                       "topic: t.x, key: [registration_number]}\n"
                       "input: {format: csv}\n"
                       "fields:\n"
                       "  registration_number: {source: {name: a}}\n";
    char y[2048];
    snprintf(y, sizeof y, "%s  child.fulname: {source: {name: b}}\n", head);
    refuse(y, "bad.yaml:5: fields.child.fulname: lienthong.v1.records.Person has no field "
              "'fulname'");
    snprintf(y, sizeof y, "%s  note:\n    source: {name: b}\n    transforms: [trimm]\n", head);
    refuse(y, "bad.yaml:7: fields.note.transforms[0]: unknown transform 'trimm'");
    snprintf(y, sizeof y, "%s  note:\n    source: {name: b}\n    validate: {pattern: \"[\"}\n",
             head);
    refuse(y, "bad.yaml:7: fields.note.validate.pattern: bad regular expression");
    snprintf(y, sizeof y, "%s  note: {source: {name: b}, colour: red}\n", head);
    refuse(y, "bad.yaml:5: fields.note.colour: unknown key 'colour'");
    snprintf(y, sizeof y, "%s  child: {source: {name: b}}\n", head);
    refuse(y, "is a message");
    snprintf(y, sizeof y, "%s  note:\n    source: {name: b}\n    transforms: [{date: {from: dd/mm}}]\n",
             head);
    refuse(y, "bad.yaml:7: fields.note.transforms[0].date: date format 'dd/mm' needs yyyy");
    snprintf(y, sizeof y, "%s  note:\n    source: {name: b}\n    transforms: [{lookup: {table: nope, date: x}}]\n",
             head);
    refuse(y, "no look-up table 'nope'");
    refuse("mapping: {record_type: lienthong.v1.records.Nope, topic: t, key: [a]}\n"
           "input: {format: csv}\nfields: {a: {source: {name: a}}}\n",
           "bad.yaml:1: mapping.record_type: 'lienthong.v1.records.Nope' is not a record type");
    refuse("mapping: {record_type: lienthong.v1.records.BirthRegistration, topic: \"a b\", "
           "key: [note]}\ninput: {format: csv}\nfields: {note: {source: {name: a}}}\n",
           "cannot appear in a topic");
    refuse("mapping: {record_type: lienthong.v1.records.BirthRegistration, topic: t, "
           "key: [nokey]}\ninput: {format: csv}\nfields: {note: {source: {name: a}}}\n",
           "key 'nokey' is no var or field");
    refuse("mapping: {record_type: lienthong.v1.records.BirthRegistration, topic: t, "
           "key: [note]}\ninput: {format: xls}\nfields: {note: {source: {name: a}}}\n",
           "bad.yaml:2: input.format: expected csv, fixed, edxml, edxml-status or jsonl");
}

/* ---- the samples ------------------------------------------------------------------- */

static lt_mapping *sample_map(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/adapters/samples/mappings/%s", LT_TEST_SRCDIR, name);
    lt_mapping *m = NULL;
    lt_why why;
    if (lt_mapping_load(path, &m, &why) != LT_OK)
        fail_msg("%s: %s", name, why.msg);
    return m;
}

static void run_sample(const char *mapping, const char *file, const char *agency, struct got *g,
                       lt_mapping_stats *st)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/adapters/samples/%s", LT_TEST_SRCDIR, file);
    lt_mapping *m = sample_map(mapping);
    lt_mapping_sink sink = {on_rec, on_rej, g, true};
    lt_why why;
    lt_err e = lt_mapping_run_file(m, agency, path, &sink, st, &why);
    if (e != LT_OK)
        fail_msg("%s over %s: %s", mapping, file, why.msg);
    lt_mapping_destroy(&m);
}

static void sample_births_decode_cp1258_and_convert_dates(void **state)
{
    (void)state;
    struct got g = {0};
    lt_mapping_stats st;
    run_sample("births_760.yaml", "births_760_cp1258.csv", "VN:GOV:000.00.00.H29.760:hotich", &g,
               &st);
    assert_int_equal(st.charset, LT_CHARSET_CP1258);
    assert_int_equal(g.nrec, 60);
    assert_int_equal(g.nrej, 0);
    char *v = json_at(g.json[0], "child.fullName");
    assert_string_equal(v, "Lý Quốc Tuấn");
    free(v);
    v = json_at(g.json[0], "child.birthDate");
    assert_string_equal(v, "2024-08-25");
    free(v);
    v = json_at(g.json[1], "child.sex");
    assert_string_equal(v, "SEX_FEMALE");
    free(v);
    v = json_at(g.json[0], "birthFacility");
    assert_string_equal(v, "Bệnh viện Hùng Vương, Quận 5, TP. Hồ Chí Minh");
    free(v);
    assert_string_equal(g.topic[0], "79.760.hotich.khaisinh");
    got_free(&g);
}

static void sample_residence_reads_tcvn3_fixed_width(void **state)
{
    (void)state;
    struct got g = {0};
    lt_mapping_stats st;
    run_sample("residence_26737.yaml", "residence_26737_tcvn3.txt",
               "VN:GOV:000.00.00.H29.760:hotich", &g, &st);
    assert_int_equal(g.nrec, 40);
    assert_int_equal(g.nrej, 0);
    char *v = json_at(g.json[0], "fullName");
    assert_string_equal(v, "Phạm Minh Nhân");
    free(v);
    v = json_at(g.json[0], "effectiveDate");
    assert_string_equal(v, "2025-05-09");
    free(v);
    v = json_at(g.json[0], "toAddress.addressLine");
    assert_string_equal(v, "159 Điện Biên Phủ, khu phố 5");
    free(v);
    bool capital_restored = false;
    for (size_t i = 0; i < g.nrec; i++) {
        v = json_at(g.json[i], "fullName");
        capital_restored |= v && strstr(v, " Ánh") != NULL;
        free(v);
    }
    assert_true(capital_restored); /* "ánh" in TCVN3, title-cased back */
    assert_string_equal(g.topic[0], "79.760.cutru.thuongtru");
    got_free(&g);
}

static void sample_businesses_read_vni_and_vietnamese_numbers(void **state)
{
    (void)state;
    struct got g = {0};
    lt_mapping_stats st;
    run_sample("businesses_760.yaml", "businesses_vni.csv", "VN:GOV:000.00.00.H29.760:hotich", &g,
               &st);
    assert_int_equal(st.charset, LT_CHARSET_VNI);
    assert_int_equal(g.nrec, 50);
    assert_int_equal(g.nrej, 0);
    char *v = json_at(g.json[0], "nameVi");
    assert_string_equal(v, "Doanh nghiệp tư nhân In ấn, Thực phẩm Nam Việt");
    free(v);
    v = json_at(g.json[0], "charterCapitalVnd");
    assert_string_equal(v, "20898000000");
    free(v);
    v = json_at(g.json[0], "legalRepresentatives.0.fullName");
    assert_string_equal(v, "Phạm Bảo Hà");
    free(v);
    got_free(&g);
}

static void sample_edxml_package_and_status_replies(void **state)
{
    (void)state;
    struct got g = {0};
    lt_mapping_stats st;
    run_sample("edxml_package.yaml", "edxml/2417-UBND-VX.edxml", "VN:GOV:000.00.00.H29:vanphong",
               &g, &st);
    assert_int_equal(g.nrec, 1);
    char *v = json_at(g.json[0], "to.1.organName");
    assert_string_equal(v, "Bộ Nội vụ");
    free(v);
    v = json_at(g.json[0], "promulgationDate");
    assert_string_equal(v, "2025-06-20");
    free(v);
    v = json_at(g.json[0], "attachments.0.contentType");
    assert_string_equal(v, "application/pdf");
    free(v);
    got_free(&g);
    static const char *const codes[] = {"01", "03", "06"};
    static const char *const want[] = {"E_DOCUMENT_STATUS_CODE_ARRIVED",
                                       "E_DOCUMENT_STATUS_CODE_ACCEPTED",
                                       "E_DOCUMENT_STATUS_CODE_DONE"};
    for (int i = 0; i < 3; i++) {
        char f[128];
        snprintf(f, sizeof f, "edxml/2417-UBND-VX.status-%s.edxml", codes[i]);
        run_sample("edxml_status.yaml", f, "VN:GOV:000.00.00.H29:vanphong", &g, &st);
        assert_int_equal(g.nrec, 1);
        v = json_at(g.json[0], "statusCode");
        assert_string_equal(v, want[i]);
        free(v);
        got_free(&g);
    }
    /* a package given to the status mapping is refused, not mis-mapped */
    lt_mapping *m = sample_map("edxml_status.yaml");
    char path[1024];
    snprintf(path, sizeof path, "%s/adapters/samples/edxml/2417-UBND-VX.edxml", LT_TEST_SRCDIR);
    lt_mapping_sink sink = {on_rec, on_rej, &g, true};
    lt_why why;
    assert_int_equal(lt_mapping_run_file(m, "VN:GOV:000.00.00.H29:vanphong", path, &sink, &st, &why),
                     LT_EVALIDATE);
    assert_int_equal(g.nrec, 0);
    assert_non_null(strstr(g.rej_reason[0], "expected an edXML status message"));
    got_free(&g);
    lt_mapping_destroy(&m);
}

/* A package written as real senders do (edXML: prefix declared on edXMLEnvelope only,
 * AttachmentEncoded under it out of scope, an XML-DSig Signature): every field the mapping
 * names is mapped, both attachments included. */
static void sample_prefixed_edxml_package_maps_every_field_and_attachment(void **state)
{
    (void)state;
    struct got g = {0};
    lt_mapping_stats st;
    run_sample("edxml_package.yaml", "edxml/5123-VPCP-KGVX.edxml",
               "VN:GOV:000.00.00.G22:vanphong", &g, &st);
    if (g.nrej != 0)
        fail_msg("rejected: %s", g.rej_reason[0]);
    assert_int_equal(g.nrec, 1);
    static const char *const want[][2] = {
        {"from.organId", "000.00.00.G22"},
        {"from.organName", "Văn phòng Chính phủ"},
        {"from.organizationInCharge", "Chính phủ"},
        {"from.organAddress", "Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội"},
        {"from.email", "vanthu@chinhphu.vn"},
        {"from.telephone", "02408043100"},
        {"to.0.organId", "000.00.00.H29"},
        {"to.1.organId", "000.00.00.H41"},
        {"to.1.organName", "Ủy ban nhân dân tỉnh Nghệ An"},
        {"codeNumber", "5123"},
        {"codeNotation", "VPCP-KGVX"},
        {"promulgationPlace", "Hà Nội"},
        {"promulgationDate", "2025-07-08"},
        {"documentType", "3"},
        {"documentTypeName", "Công văn"},
        {"subject", "Về việc thống nhất dữ liệu hộ tịch sau sắp xếp đơn vị hành chính cấp xã"},
        {"signer.competence", "KT. BỘ TRƯỞNG, CHỦ NHIỆM"},
        {"signer.position", "Phó Chủ nhiệm"},
        {"signer.fullName", "Nguyễn Văn Hùng"},
        {"dueDate", "2025-08-15"},
        {"toPlaces.1", "UBND tỉnh Nghệ An"},
        {"priority", "1"},
        {"steeringType", "1"},
        {"documentId", "000.00.00.G22,2025/07/08,5123/VPCP-KGVX"},
        {"businessDocType", "BUSINESS_DOC_TYPE_NEW"},
        {"businessDocReason", "Văn bản mới"},
        {"pageAmount", "2"},
        {"promulgationAmount", "65"},
        {"sentUnixMs", "1751940760000"},
        {"attachments.0.contentId", "cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0001"},
        {"attachments.0.name", "5123-VPCP-KGVX.pdf"},
        {"attachments.0.contentType", "application/pdf"},
        {"attachments.1.contentId", "cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0002"},
        {"attachments.1.name", "Phu-luc-ma-don-vi.docx"},
        {"attachments.1.contentType",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        /* base64 wrapped over lines in the package, whole in the record */
        {"attachments.1.data", "UEsDBBQAAAAIAHdvcmQvZG9jdW1lbnQueG1sPHc6ZG9jdW1lbnQ+PHc6Ym9keT48"
                               "dzpwPjx3OnI+PHc6dD5QaOG7pSBs4bulYzwvdzp0PjwvdzpyPjwvdzpwPjwvdzpi"
                               "b2R5Pjwvdzpkb2N1bWVudD5QSwUGAAAAAAAAAAAAAAAAAAAAAAAA"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *v = json_at(g.json[0], want[i][0]);
        if (v == NULL || strcmp(v, want[i][1]) != 0)
            fail_msg("%s: got '%s', want '%s'", want[i][0], v ? v : "(absent)", want[i][1]);
        free(v);
    }
    char *v = json_at(g.json[0], "attachments.0.data");
    assert_non_null(v);
    assert_true(strncmp(v, "JVBERi0xLjQK", 12) == 0); /* "%PDF-1.4\n" */
    free(v);
    assert_null(json_at(g.json[0], "attachments.2"));
    got_free(&g);
}

/* The same package with its attachments under a prefix declared nowhere: every attachment
 * field the mapping names is a reject naming the path and the element, never a record
 * published without its attachments. */
static void an_attachment_under_an_unknown_prefix_is_a_reject_naming_both(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/adapters/samples/edxml/5123-VPCP-KGVX.edxml", LT_TEST_SRCDIR);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char x[16384];
    size_t n = fread(x, 1, sizeof x - 1, fp);
    fclose(fp);
    x[n] = '\0';
    /* edXML:Attachment -> att:Attachment (same length: edit in place) */
    for (char *p = x; (p = strstr(p, "edXML:Attachment>")) != NULL; p++)
        memcpy(p, "att:A", 5), memmove(p + 5, p + 7, strlen(p + 7) + 1);
    lt_mapping *m = sample_map("edxml_package.yaml");
    struct got g = {0};
    lt_mapping_stats st;
    lt_mapping_sink sink = {on_rec, on_rej, &g, true};
    lt_why why;
    lt_err e = lt_mapping_run(m, "VN:GOV:000.00.00.G22:vanphong", "att.edxml",
                              (const uint8_t *)x, strlen(x), &sink, &st, &why);
    assert_int_not_equal(e, LT_OK);
    assert_int_equal(g.nrec, 0);
    assert_true(g.nrej >= 4);
    bool data = false;
    for (size_t i = 0; i < g.nrej; i++) {
        assert_non_null(strstr(g.rej_reason[i], "<att:Attachment>"));
        data |= strstr(g.rej_reason[i], "//AttachmentEncoded/Attachment/ContentTransferEncoded") !=
                NULL;
    }
    assert_true(data);
    got_free(&g);
    lt_mapping_destroy(&m);
}

int main(void)
{
    snprintf(table_path, sizeof table_path,
             "%s/adapters/samples/mappings/lookups/hcmc_wards_2025.csv", LT_TEST_SRCDIR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whitespace_transforms_trim_collapse_and_remove),
        cmocka_unit_test(case_transforms_know_vietnamese_letters),
        cmocka_unit_test(date_transform_converts_and_refuses_impossible_dates),
        cmocka_unit_test(unix_ms_transform_applies_the_time_zone),
        cmocka_unit_test(number_transform_follows_the_declared_separators),
        cmocka_unit_test(map_transform_maps_values_and_refuses_unknown_ones),
        cmocka_unit_test(lookup_translates_ward_codes_by_effective_date),
        cmocka_unit_test(regex_and_text_transforms),
        cmocka_unit_test(validation_failures_name_the_field_the_value_and_the_reason),
        cmocka_unit_test(policy_publish_good_publishes_the_good_rows),
        cmocka_unit_test(policy_reject_file_publishes_nothing_and_reports_every_row),
        cmocka_unit_test(message_ids_are_stable_and_follow_content_and_agency),
        cmocka_unit_test(bad_mapping_files_are_refused_with_file_line_and_key),
        cmocka_unit_test(sample_births_decode_cp1258_and_convert_dates),
        cmocka_unit_test(sample_residence_reads_tcvn3_fixed_width),
        cmocka_unit_test(sample_businesses_read_vni_and_vietnamese_numbers),
        cmocka_unit_test(sample_edxml_package_and_status_replies),
        cmocka_unit_test(sample_prefixed_edxml_package_maps_every_field_and_attachment),
        cmocka_unit_test(an_attachment_under_an_unknown_prefix_is_a_reject_naming_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
