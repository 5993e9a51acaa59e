/* test_json.c - the generic protobuf <-> JSON converter, on a message that has every field
 * kind protobuf-c knows: each scalar type, bytes, an enum, a nested and recursive message,
 * repeated fields, a oneof and a proto2-style optional with a has_ flag.
 *
 * protoc-c only runs over proto/lienthong, and the records use few scalar types, so the test
 * message "lt.test.Kitchen" is described here by hand, laid out exactly as protoc-c lays out
 * generated code (fields in number order, one number range, index by name), so that
 * protobuf-c's own pack, unpack and free work on it too. */
#include "json.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- enum lt.test.Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_GREEN = 2; } ---- */

static const ProtobufCEnumValue color_values[] = {
    {"COLOR_UNSPECIFIED", "LT_TEST_COLOR_UNSPECIFIED", 0},
    {"COLOR_RED", "LT_TEST_COLOR_RED", 1},
    {"COLOR_GREEN", "LT_TEST_COLOR_GREEN", 2},
};
static const ProtobufCEnumValueIndex color_by_name[] = {
    {"COLOR_GREEN", 2}, {"COLOR_RED", 1}, {"COLOR_UNSPECIFIED", 0}};
static const ProtobufCIntRange color_ranges[] = {{0, 0}, {0, 3}};
static const ProtobufCEnumDescriptor color_desc = {
    PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC, "lt.test.Color", "Color", "LtTestColor", "lt.test",
    3, color_values, 3, color_by_name, 1, color_ranges, NULL, NULL, NULL, NULL};

/* ---- message lt.test.Kitchen ---- */

typedef struct Kitchen Kitchen;
struct Kitchen {
    ProtobufCMessage base;
    int32_t int32_val;        /* 1 */
    int32_t sint32_val;       /* 2 */
    int32_t sfixed32_val;     /* 3 */
    uint32_t uint32_val;      /* 4 */
    uint32_t fixed32_val;     /* 5 */
    int64_t int64_val;        /* 6 */
    int64_t sint64_val;       /* 7 */
    int64_t sfixed64_val;     /* 8 */
    uint64_t uint64_val;      /* 9 */
    uint64_t fixed64_val;     /* 10 */
    float float_val;          /* 11 */
    double double_val;        /* 12 */
    protobuf_c_boolean bool_val; /* 13 */
    char *string_val;         /* 14 */
    ProtobufCBinaryData bytes_val; /* 15 */
    int color;                /* 16 */
    Kitchen *sub_msg;         /* 17 */
    size_t n_rep_int32;
    int32_t *rep_int32;       /* 18 */
    size_t n_rep_string;
    char **rep_string;        /* 19 */
    size_t n_rep_bytes;
    ProtobufCBinaryData *rep_bytes; /* 20 */
    size_t n_rep_color;
    int *rep_color;           /* 21 */
    size_t n_rep_msg;
    Kitchen **rep_msg;        /* 22 */
    uint32_t choice_case;
    union {
        int32_t choice_num;   /* 23 */
        char *choice_text;    /* 24 */
        Kitchen *choice_msg;  /* 25 */
    };
    protobuf_c_boolean has_opt_int32;
    int32_t opt_int32;        /* 26, proto2 optional */
    size_t n_rep_double;
    double *rep_double;       /* 27 */
};

extern const ProtobufCMessageDescriptor kitchen_desc;

#define F(name, id, label, type, q, member, sub, def, flags)                                    \
    {name, id, label, type, q, offsetof(Kitchen, member), sub, def, flags, 0, NULL, NULL}
#define N PROTOBUF_C_LABEL_NONE
#define R PROTOBUF_C_LABEL_REPEATED
#define T(x) PROTOBUF_C_TYPE_##x
#define ONEOF PROTOBUF_C_FIELD_FLAG_ONEOF
#define CASE offsetof(Kitchen, choice_case)

static const ProtobufCFieldDescriptor kitchen_fields[] = {
    F("int32_val", 1, N, T(INT32), 0, int32_val, NULL, NULL, 0),
    F("sint32_val", 2, N, T(SINT32), 0, sint32_val, NULL, NULL, 0),
    F("sfixed32_val", 3, N, T(SFIXED32), 0, sfixed32_val, NULL, NULL, 0),
    F("uint32_val", 4, N, T(UINT32), 0, uint32_val, NULL, NULL, 0),
    F("fixed32_val", 5, N, T(FIXED32), 0, fixed32_val, NULL, NULL, 0),
    F("int64_val", 6, N, T(INT64), 0, int64_val, NULL, NULL, 0),
    F("sint64_val", 7, N, T(SINT64), 0, sint64_val, NULL, NULL, 0),
    F("sfixed64_val", 8, N, T(SFIXED64), 0, sfixed64_val, NULL, NULL, 0),
    F("uint64_val", 9, N, T(UINT64), 0, uint64_val, NULL, NULL, 0),
    F("fixed64_val", 10, N, T(FIXED64), 0, fixed64_val, NULL, NULL, 0),
    F("float_val", 11, N, T(FLOAT), 0, float_val, NULL, NULL, 0),
    F("double_val", 12, N, T(DOUBLE), 0, double_val, NULL, NULL, 0),
    F("bool_val", 13, N, T(BOOL), 0, bool_val, NULL, NULL, 0),
    F("string_val", 14, N, T(STRING), 0, string_val, NULL, &protobuf_c_empty_string, 0),
    F("bytes_val", 15, N, T(BYTES), 0, bytes_val, NULL, NULL, 0),
    F("color", 16, N, T(ENUM), 0, color, &color_desc, NULL, 0),
    F("sub_msg", 17, N, T(MESSAGE), 0, sub_msg, &kitchen_desc, NULL, 0),
    F("rep_int32", 18, R, T(INT32), offsetof(Kitchen, n_rep_int32), rep_int32, NULL, NULL,
      PROTOBUF_C_FIELD_FLAG_PACKED),
    F("rep_string", 19, R, T(STRING), offsetof(Kitchen, n_rep_string), rep_string, NULL, NULL, 0),
    F("rep_bytes", 20, R, T(BYTES), offsetof(Kitchen, n_rep_bytes), rep_bytes, NULL, NULL, 0),
    F("rep_color", 21, R, T(ENUM), offsetof(Kitchen, n_rep_color), rep_color, &color_desc, NULL,
      PROTOBUF_C_FIELD_FLAG_PACKED),
    F("rep_msg", 22, R, T(MESSAGE), offsetof(Kitchen, n_rep_msg), rep_msg, &kitchen_desc, NULL, 0),
    F("choice_num", 23, N, T(INT32), CASE, choice_num, NULL, NULL, ONEOF),
    F("choice_text", 24, N, T(STRING), CASE, choice_text, NULL, &protobuf_c_empty_string, ONEOF),
    F("choice_msg", 25, N, T(MESSAGE), CASE, choice_msg, &kitchen_desc, NULL, ONEOF),
    F("opt_int32", 26, PROTOBUF_C_LABEL_OPTIONAL, T(INT32), offsetof(Kitchen, has_opt_int32),
      opt_int32, NULL, NULL, 0),
    F("rep_double", 27, R, T(DOUBLE), offsetof(Kitchen, n_rep_double), rep_double, NULL, NULL,
      PROTOBUF_C_FIELD_FLAG_PACKED),
};
#define N_KITCHEN_FIELDS (sizeof kitchen_fields / sizeof kitchen_fields[0])

static unsigned kitchen_by_name[N_KITCHEN_FIELDS]; /* filled by setup, sorted by name */
static const ProtobufCIntRange kitchen_ranges[] = {{1, 0}, {0, N_KITCHEN_FIELDS}};

static void kitchen_init(ProtobufCMessage *m)
{
    Kitchen *k = (Kitchen *)m;
    memset(k, 0, sizeof *k);
    k->base.descriptor = &kitchen_desc;
    k->string_val = (char *)protobuf_c_empty_string;
}

const ProtobufCMessageDescriptor kitchen_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "lt.test.Kitchen", "Kitchen", "Kitchen", "lt.test",
    sizeof(Kitchen), N_KITCHEN_FIELDS, kitchen_fields, kitchen_by_name, 1, kitchen_ranges,
    kitchen_init, NULL, NULL, NULL};

static int by_name(const void *a, const void *b)
{
    return strcmp(kitchen_fields[*(const unsigned *)a].name,
                  kitchen_fields[*(const unsigned *)b].name);
}

static int setup_descriptor(void **state)
{
    (void)state;
    for (unsigned i = 0; i < N_KITCHEN_FIELDS; i++)
        kitchen_by_name[i] = i;
    qsort(kitchen_by_name, N_KITCHEN_FIELDS, sizeof kitchen_by_name[0], by_name);
    return 0;
}

/* ---- helpers ---- */

static Kitchen *parse_ok(const char *text)
{
    ProtobufCMessage *m = NULL;
    lt_why why = {{0}};
    lt_err e = lt_json_parse_pb(&kitchen_desc, text, strlen(text), &m, &why);
    if (e != LT_OK)
        fail_msg("parse of %s failed: %s (%s)", text, why.msg, lt_err_name(e));
    assert_non_null(m);
    return (Kitchen *)m;
}

/* Parsing text must fail with code, and the reason must be exactly reason. */
static void parse_fails(const char *text, lt_err code, const char *reason)
{
    ProtobufCMessage *m = NULL;
    lt_why why = {{0}};
    lt_err e = lt_json_parse_pb(&kitchen_desc, text, strlen(text), &m, &why);
    if (e != code)
        fail_msg("parse of %s: expected %s, got %s (%s)", text, lt_err_name(code),
                 lt_err_name(e), why.msg);
    assert_null(m);
    if (reason != NULL && strcmp(why.msg, reason) != 0)
        fail_msg("parse of %s: reason \"%s\", expected \"%s\"", text, why.msg, reason);
}

static char *render(const Kitchen *k)
{
    char *out = NULL;
    lt_why why = {{0}};
    if (lt_json_pb_to_string(&k->base, &out, &why) != LT_OK)
        fail_msg("render failed: %s", why.msg);
    return out;
}

static void free_kitchen(Kitchen *k)
{
    protobuf_c_message_free_unpacked(&k->base, NULL);
}

/* ---- tests ---- */

static void every_scalar_type_round_trips_at_its_extremes(void **state)
{
    (void)state;
    static uint8_t all_bytes[256];
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (uint8_t)i;
    Kitchen k;
    kitchen_init(&k.base);
    k.int32_val = INT32_MIN;
    k.sint32_val = INT32_MAX;
    k.sfixed32_val = -1;
    k.uint32_val = UINT32_MAX;
    k.fixed32_val = 7;
    k.int64_val = INT64_MIN;
    k.sint64_val = INT64_MAX;
    k.sfixed64_val = -9007199254740993LL; /* 2^53 + 1: not exact as a double */
    k.uint64_val = UINT64_MAX;
    k.fixed64_val = 18446744073709551614ULL;
    k.float_val = 0.1f;
    k.double_val = -1.7976931348623157e308;
    k.bool_val = 1;
    k.string_val = "Nguyễn Văn Ân, phường Sài Gòn";
    k.bytes_val.data = all_bytes;
    k.bytes_val.len = sizeof all_bytes;
    k.color = 2;

    char *text = render(&k);
    assert_non_null(strstr(text, "\"int32Val\":-2147483648,"));
    assert_non_null(strstr(text, "\"uint32Val\":4294967295,"));
    assert_non_null(strstr(text, "\"int64Val\":\"-9223372036854775808\""));
    assert_non_null(strstr(text, "\"sint64Val\":\"9223372036854775807\""));
    assert_non_null(strstr(text, "\"sfixed64Val\":\"-9007199254740993\""));
    assert_non_null(strstr(text, "\"uint64Val\":\"18446744073709551615\""));
    assert_non_null(strstr(text, "\"floatVal\":0.1,"));
    assert_non_null(strstr(text, "\"doubleVal\":-1.7976931348623157e+308"));
    assert_non_null(strstr(text, "\"boolVal\":true"));
    assert_non_null(strstr(text, "\"stringVal\":\"Nguyễn Văn Ân, phường Sài Gòn\""));
    assert_non_null(strstr(text, "\"bytesVal\":\"AAECAwQF"));
    assert_non_null(strstr(text, "\"color\":\"COLOR_GREEN\""));

    /* Back from JSON, the message packs to the very same bytes. */
    Kitchen *back = parse_ok(text);
    size_t n1 = protobuf_c_message_get_packed_size(&k.base);
    size_t n2 = protobuf_c_message_get_packed_size(&back->base);
    assert_int_equal(n1, n2);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    protobuf_c_message_pack(&k.base, b1);
    protobuf_c_message_pack(&back->base, b2);
    assert_memory_equal(b1, b2, n1);
    assert_true(back->float_val == 0.1f);
    assert_int_equal(back->bytes_val.len, 256);
    assert_memory_equal(back->bytes_val.data, all_bytes, 256);
    free(b1);
    free(b2);
    free(text);
    free_kitchen(back);
}

static void default_values_are_omitted(void **state)
{
    (void)state;
    Kitchen k;
    kitchen_init(&k.base);
    char *text = render(&k);
    assert_string_equal(text, "{}");
    free(text);

    /* Defaults given explicitly are accepted and vanish again. */
    Kitchen *p = parse_ok("{\"int32Val\":0,\"int64Val\":\"0\",\"stringVal\":\"\",\"bytesVal\":\"\","
                          "\"color\":\"COLOR_UNSPECIFIED\",\"repInt32\":[],\"boolVal\":false,"
                          "\"subMsg\":null,\"doubleVal\":0}");
    text = render(p);
    assert_string_equal(text, "{}");
    free(text);
    free_kitchen(p);
}

static void sixty_four_bit_integers_accept_strings_and_numbers(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"int64Val\":\"-9223372036854775808\",\"uint64Val\":\"18446744073709551615\","
                          "\"sint64Val\":-9223372036854775807,\"fixed64Val\":9223372036854775808,"
                          "\"sfixed64Val\":1e3,\"int32Val\":\"-12\",\"uint32Val\":\"4294967295\"}");
    assert_true(p->int64_val == INT64_MIN);
    assert_true(p->uint64_val == UINT64_MAX);
    assert_true(p->sint64_val == -INT64_MAX);
    assert_true(p->fixed64_val == 9223372036854775808ULL);
    assert_true(p->sfixed64_val == 1000);
    assert_int_equal(p->int32_val, -12);
    assert_true(p->uint32_val == UINT32_MAX);
    free_kitchen(p);
}

static void integers_out_of_range_are_rejected_with_the_field(void **state)
{
    (void)state;
    parse_fails("{\"int32Val\":2147483648}", LT_EFORMAT,
                "int32Val: value 2147483648 out of range for int32");
    parse_fails("{\"int32Val\":-2147483649}", LT_EFORMAT,
                "int32Val: value -2147483649 out of range for int32");
    parse_fails("{\"uint32Val\":-1}", LT_EFORMAT, "uint32Val: value -1 out of range for uint32");
    parse_fails("{\"uint64Val\":\"18446744073709551616\"}", LT_EFORMAT,
                "uint64Val: integer \"18446744073709551616\" out of range");
    parse_fails("{\"int64Val\":\"9223372036854775808\"}", LT_EFORMAT,
                "int64Val: value 9223372036854775808 out of range for int64");
    /* json-c clamps numbers it cannot hold; a clamped number is refused, not stored. */
    parse_fails("{\"int64Val\":-9223372036854775809}", LT_EFORMAT, NULL);
    parse_fails("{\"uint64Val\":99999999999999999999}", LT_EFORMAT, NULL);
    parse_fails("{\"int32Val\":1.5}", LT_EFORMAT,
                "int32Val: expected an integer, got a fractional or non-finite number");
    parse_fails("{\"int64Val\":\"12a\"}", LT_EFORMAT,
                "int64Val: expected an integer, got string \"12a\"");
    parse_fails("{\"int64Val\":\" 12\"}", LT_EFORMAT, NULL);
    parse_fails("{\"int64Val\":\"\"}", LT_EFORMAT, NULL);
    parse_fails("{\"int32Val\":true}", LT_EFORMAT, "int32Val: expected an integer, got boolean");
}

static void floats_use_strings_for_nan_and_infinity(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"floatVal\":\"Infinity\",\"doubleVal\":\"NaN\","
                          "\"repDouble\":[\"-Infinity\",\"2.5\",3,-0.125]}");
    assert_true(isinf(p->float_val) && p->float_val > 0);
    assert_true(isnan(p->double_val));
    assert_int_equal(p->n_rep_double, 4);
    assert_true(isinf(p->rep_double[0]) && p->rep_double[0] < 0);
    assert_true(p->rep_double[1] == 2.5 && p->rep_double[2] == 3 && p->rep_double[3] == -0.125);
    char *text = render(p);
    assert_string_equal(text, "{\"floatVal\":\"Infinity\",\"doubleVal\":\"NaN\","
                              "\"repDouble\":[\"-Infinity\",2.5,3,-0.125]}");
    free(text);
    free_kitchen(p);
    parse_fails("{\"floatVal\":1e39}", LT_EFORMAT, "floatVal: value out of range for float");
    parse_fails("{\"doubleVal\":\"0x10\"}", LT_EFORMAT,
                "doubleVal: expected a number, got string \"0x10\"");
    parse_fails("{\"doubleVal\":\"inf\"}", LT_EFORMAT, NULL);
    parse_fails("{\"doubleVal\":[1]}", LT_EFORMAT, "doubleVal: expected a number, got array");
}

static void enums_are_written_by_name_and_read_by_name_or_number(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"color\":1,\"repColor\":[\"COLOR_GREEN\",0,\"COLOR_RED\"]}");
    assert_int_equal(p->color, 1);
    assert_int_equal(p->n_rep_color, 3);
    assert_int_equal(p->rep_color[0], 2);
    assert_int_equal(p->rep_color[1], 0);
    char *text = render(p);
    assert_string_equal(text, "{\"color\":\"COLOR_RED\",\"repColor\":[\"COLOR_GREEN\","
                              "\"COLOR_UNSPECIFIED\",\"COLOR_RED\"]}");
    free(text);
    /* A value the enum does not define (e.g. from a newer schema's binary) renders as its
     * number. */
    p->color = 7;
    text = render(p);
    assert_non_null(strstr(text, "\"color\":7"));
    free(text);
    free_kitchen(p);
    parse_fails("{\"color\":\"COLOR_BLUE\"}", LT_EFORMAT,
                "color: unknown value \"COLOR_BLUE\" for enum lt.test.Color");
    parse_fails("{\"color\":7}", LT_EFORMAT, "color: 7 is not a value of enum lt.test.Color");
    parse_fails("{\"repColor\":[1,\"red\"]}", LT_EFORMAT,
                "repColor[1]: unknown value \"red\" for enum lt.test.Color");
    parse_fails("{\"color\":{}}", LT_EFORMAT, "color: expected an enum name or number, got object");
}

static void original_proto_names_are_accepted_but_not_twice(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"string_val\":\"tên gốc\",\"sub_msg\":{\"int64_val\":\"5\"}}");
    assert_string_equal(p->string_val, "tên gốc");
    assert_non_null(p->sub_msg);
    assert_true(p->sub_msg->int64_val == 5);
    char *text = render(p);
    assert_string_equal(text, "{\"stringVal\":\"tên gốc\",\"subMsg\":{\"int64Val\":\"5\"}}");
    free(text);
    free_kitchen(p);
    parse_fails("{\"stringVal\":\"a\",\"string_val\":\"b\"}", LT_EFORMAT,
                "string_val: field given twice (as string_val and as its other name)");
}

static void unknown_field_is_rejected_with_its_path(void **state)
{
    (void)state;
    parse_fails("{\"stringVal\":\"a\",\"nope\":1}", LT_EFORMAT,
                "nope: unknown field of lt.test.Kitchen");
    parse_fails("{\"subMsg\":{\"repMsg\":[{},{\"birthDate\":\"2025-01-01\"}]}}", LT_EFORMAT,
                "subMsg.repMsg[1].birthDate: unknown field of lt.test.Kitchen");
    /* Case matters: only the exact lowerCamelCase or the exact proto name. */
    parse_fails("{\"StringVal\":\"a\"}", LT_EFORMAT, "StringVal: unknown field of lt.test.Kitchen");
    /* A key full of junk is shown as printable ASCII, cut short. */
    parse_fails("{\"\\u0001\\\"x\":1}", LT_EFORMAT, "??x: unknown field of lt.test.Kitchen");
}

static void mistyped_field_is_rejected_with_its_path(void **state)
{
    (void)state;
    parse_fails("{\"subMsg\":{\"stringVal\":5}}", LT_EFORMAT,
                "subMsg.stringVal: expected a string, got number");
    parse_fails("{\"repMsg\":[{},{\"subMsg\":{\"boolVal\":\"true\"}}]}", LT_EFORMAT,
                "repMsg[1].subMsg.boolVal: expected a boolean, got string");
    parse_fails("{\"repString\":\"a\"}", LT_EFORMAT, "repString: expected an array, got string");
    parse_fails("{\"repString\":[\"a\",null]}", LT_EFORMAT,
                "repString[1]: null is not allowed in an array");
    parse_fails("{\"subMsg\":[]}", LT_EFORMAT, "subMsg: expected an object, got array");
    parse_fails("{\"bytesVal\":12}", LT_EFORMAT, "bytesVal: expected a base64 string, got number");
}

static void bytes_are_base64_in_both_alphabets(void **state)
{
    (void)state;
    /* 0xfb 0xff 0xbf: "+/+/" in the standard alphabet, "-_-_" in the URL-safe one. */
    Kitchen *p = parse_ok("{\"bytesVal\":\"-_-_\",\"repBytes\":[\"+/+/\",\"YQ\",\"YQ==\",\"YWI\",\"\"]}");
    static const uint8_t fb[] = {0xfb, 0xff, 0xbf};
    assert_int_equal(p->bytes_val.len, 3);
    assert_memory_equal(p->bytes_val.data, fb, 3);
    assert_int_equal(p->n_rep_bytes, 5);
    assert_memory_equal(p->rep_bytes[0].data, fb, 3);
    assert_int_equal(p->rep_bytes[1].len, 1);
    assert_int_equal(p->rep_bytes[2].len, 1);
    assert_memory_equal(p->rep_bytes[3].data, "ab", 2);
    assert_int_equal(p->rep_bytes[4].len, 0);
    char *text = render(p);
    assert_string_equal(text, "{\"bytesVal\":\"+/+/\",\"repBytes\":[\"+/+/\",\"YQ==\",\"YQ==\","
                              "\"YWI=\",\"\"]}");
    free(text);
    free_kitchen(p);
}

static void bad_base64_is_rejected_with_the_field(void **state)
{
    (void)state;
    parse_fails("{\"bytesVal\":\"abc$\"}", LT_EFORMAT,
                "bytesVal: not valid base64 (at character 3)");
    parse_fails("{\"bytesVal\":\"a\"}", LT_EFORMAT, "bytesVal: not valid base64 (at character 0)");
    parse_fails("{\"bytesVal\":\"YQ=\"}", LT_EFORMAT, NULL);
    parse_fails("{\"bytesVal\":\"Y=Q=\"}", LT_EFORMAT, NULL);
    parse_fails("{\"bytesVal\":\"YWJj ZA==\"}", LT_EFORMAT, NULL);
    parse_fails("{\"repBytes\":[\"YQ==\",\"====\"]}", LT_EFORMAT, NULL);
}

static void oneof_holds_one_member(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"choiceText\":\"một\"}");
    assert_int_equal(p->choice_case, 24);
    assert_string_equal(p->choice_text, "một");
    char *text = render(p);
    assert_string_equal(text, "{\"choiceText\":\"một\"}");
    free(text);
    free_kitchen(p);

    /* A member set to its default is still the chosen member, and is written. */
    p = parse_ok("{\"choiceNum\":0,\"choiceMsg\":null}");
    assert_int_equal(p->choice_case, 23);
    text = render(p);
    assert_string_equal(text, "{\"choiceNum\":0}");
    free(text);
    free_kitchen(p);

    p = parse_ok("{\"choiceMsg\":{\"choiceMsg\":{}}}");
    assert_int_equal(p->choice_case, 25);
    text = render(p);
    assert_string_equal(text, "{\"choiceMsg\":{\"choiceMsg\":{}}}");
    free(text);
    free_kitchen(p);

    parse_fails("{\"choiceText\":\"a\",\"choiceMsg\":{\"int32Val\":1}}", LT_EFORMAT,
                "choiceMsg: another member of the same oneof (choiceText) is already set");
}

static void optional_field_is_written_when_its_has_flag_is_set(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"optInt32\":0}");
    assert_true(p->has_opt_int32);
    char *text = render(p);
    assert_string_equal(text, "{\"optInt32\":0}");
    free(text);
    p->has_opt_int32 = 0;
    text = render(p);
    assert_string_equal(text, "{}");
    free(text);
    free_kitchen(p);
}

static void strings_must_be_utf8_without_nul(void **state)
{
    (void)state;
    parse_fails("{\"stringVal\":\"a\\u0000b\"}", LT_EFORMAT,
                "stringVal: string contains a NUL character");
    /* A lone surrogate escape is not a character: json-c turns it into U+FFFD. */
    Kitchen *p = parse_ok("{\"repString\":[\"\\ud800\"]}");
    assert_string_equal(p->rep_string[0], "\xef\xbf\xbd");
    free_kitchen(p);
    /* Raw invalid UTF-8 in the text is refused by the parser... */
    parse_fails("{\"stringVal\":\"\xc3\x28\"}", LT_EFORMAT, NULL);
    /* ...and in a json_object built by hand, by the converter. */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "stringVal", json_object_new_string("Ph\xe1\xbb\x9d\xc0\xaf"));
    ProtobufCMessage *m = NULL;
    lt_why why;
    assert_int_equal(lt_json_to_pb(&kitchen_desc, o, &m, &why), LT_EFORMAT);
    assert_string_equal(why.msg, "stringVal: string is not valid UTF-8");
    json_object_put(o);
    /* Invalid UTF-8 inside a binary record is not rendered either. */
    Kitchen k;
    kitchen_init(&k.base);
    k.string_val = "\xed\xa0\x80"; /* encoded surrogate */
    char *out = NULL;
    assert_int_equal(lt_json_pb_to_string(&k.base, &out, &why), LT_EPROTO);
    assert_null(out);
    assert_string_equal(why.msg, "stringVal: string is not valid UTF-8");
}

static void json_syntax_errors_are_reported_with_their_offset(void **state)
{
    (void)state;
    parse_fails("{\"int32Val\": 1,}", LT_EFORMAT, NULL);
    parse_fails("{\"int32Val\": ", LT_EFORMAT, NULL);
    parse_fails("", LT_EFORMAT, NULL);
    parse_fails("{} {}", LT_EFORMAT, NULL);
    parse_fails("[]", LT_EFORMAT, "expected a JSON object, got array");
    parse_fails("null", LT_EFORMAT, "expected a JSON object, got null");
    parse_fails("\"x\"", LT_EFORMAT, "expected a JSON object, got string");
    Kitchen *p = parse_ok("  \r\n{\"int32Val\": 1}\n\t ");
    free_kitchen(p);
    ProtobufCMessage *m = NULL;
    lt_why why;
    assert_int_equal(lt_json_parse_pb(&kitchen_desc, "{}\0{}", 5, &m, &why), LT_EFORMAT);
    assert_string_equal(why.msg, "JSON text contains a NUL byte at offset 2");
    /* Only the given length is read: the text need not be NUL-terminated. */
    assert_int_equal(lt_json_parse_pb(&kitchen_desc, "{\"int32Val\":12}garbage", 15, &m, &why),
                     LT_OK);
    assert_int_equal(((Kitchen *)m)->int32_val, 12);
    free_kitchen((Kitchen *)m);
}

static char *nested(int levels, const char *key)
{
    size_t klen = strlen(key);
    char *s = malloc((size_t)levels * (klen + 5) + 8);
    size_t j = 0;
    s[j++] = '{';
    for (int i = 0; i < levels; i++) {
        j += (size_t)sprintf(s + j, "\"%s\":{", key);
    }
    for (int i = 0; i <= levels; i++)
        s[j++] = '}';
    s[j] = '\0';
    return s;
}

static void too_deep_nesting_is_refused(void **state)
{
    (void)state;
    /* 30 nested messages are fine... */
    char *ok = nested(30, "subMsg");
    Kitchen *p = parse_ok(ok);
    free_kitchen(p);
    free(ok);
    /* ...40 are not, whether the JSON parser or the converter sees it first. */
    char *deep = nested(40, "subMsg");
    parse_fails(deep, LT_ETOOBIG, NULL);
    free(deep);
    char *arrays = malloc(20002);
    memset(arrays, '[', 10000);
    memset(arrays + 10000, ']', 10000);
    arrays[20000] = '\0';
    parse_fails(arrays, LT_ETOOBIG, NULL);
    free(arrays);

    /* A json_object built in memory has no parser limit: the converter's own bound holds. */
    json_object *root = json_object_new_object(), *cur = root;
    for (int i = 0; i < 100; i++) {
        json_object *child = json_object_new_object();
        json_object_object_add(cur, "subMsg", child);
        cur = child;
    }
    ProtobufCMessage *m = NULL;
    lt_why why;
    assert_int_equal(lt_json_to_pb(&kitchen_desc, root, &m, &why), LT_ETOOBIG);
    assert_null(m);
    assert_non_null(strstr(why.msg, "nested deeper than 32"));
    json_object_put(root);

    /* And rendering a message chain deeper than the bound refuses too. */
    Kitchen chain[40];
    for (int i = 0; i < 40; i++) {
        kitchen_init(&chain[i].base);
        chain[i].sub_msg = i + 1 < 40 ? &chain[i + 1] : NULL;
    }
    char *out = NULL;
    assert_int_equal(lt_json_pb_to_string(&chain[0].base, &out, &why), LT_ETOOBIG);
    assert_null(out);
}

static void oversized_text_is_refused_before_parsing(void **state)
{
    (void)state;
    size_t len = (size_t)LT_JSON_MAX_TEXT + 1;
    char *big = malloc(len);
    memset(big, ' ', len);
    big[0] = '{';
    big[len - 1] = '}';
    ProtobufCMessage *m = NULL;
    lt_why why;
    assert_int_equal(lt_json_parse_pb(&kitchen_desc, big, len, &m, &why), LT_ETOOBIG);
    assert_null(m);
    free(big);
}

static void repeated_messages_and_partial_failures_do_not_leak(void **state)
{
    (void)state;
    Kitchen *p = parse_ok("{\"repMsg\":[{\"repString\":[\"a\",\"b\"]},{\"bytesVal\":\"YQ==\"},"
                          "{\"subMsg\":{\"stringVal\":\"c\"}}],\"repInt32\":[1,-2,\"3\"]}");
    assert_int_equal(p->n_rep_msg, 3);
    assert_int_equal(p->rep_msg[0]->n_rep_string, 2);
    assert_string_equal(p->rep_msg[2]->sub_msg->string_val, "c");
    assert_int_equal(p->n_rep_int32, 3);
    assert_int_equal(p->rep_int32[2], 3);
    free_kitchen(p);
    /* Fails in the third element after allocating strings, bytes and messages: ASan's leak
     * check (the sanitizer build) proves the partial message is released. */
    parse_fails("{\"stringVal\":\"x\",\"repMsg\":[{\"repString\":[\"a\"]},{\"bytesVal\":\"YQ==\"},"
                "{\"subMsg\":{\"stringVal\":1}}]}",
                LT_EFORMAT, "repMsg[2].subMsg.stringVal: expected a string, got number");
    parse_fails("{\"choiceText\":\"x\",\"repString\":[\"a\",\"b\",3]}", LT_EFORMAT,
                "repString[2]: expected a string, got number");
}

static void null_arguments_are_refused(void **state)
{
    (void)state;
    lt_why why;
    ProtobufCMessage *m = NULL;
    json_object *o = NULL;
    char *s = NULL;
    assert_int_equal(lt_json_parse_pb(NULL, "{}", 2, &m, &why), LT_EINVAL);
    assert_int_equal(lt_json_parse_pb(&kitchen_desc, "{}", 2, NULL, &why), LT_EINVAL);
    assert_int_equal(lt_json_to_pb(&kitchen_desc, NULL, &m, &why), LT_EFORMAT);
    assert_string_equal(why.msg, "expected an object, got null");
    assert_int_equal(lt_json_from_pb(NULL, &o, &why), LT_EINVAL);
    assert_int_equal(lt_json_pb_to_string(NULL, &s, &why), LT_EINVAL);
    assert_null(m);
    assert_null(o);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_scalar_type_round_trips_at_its_extremes),
        cmocka_unit_test(default_values_are_omitted),
        cmocka_unit_test(sixty_four_bit_integers_accept_strings_and_numbers),
        cmocka_unit_test(integers_out_of_range_are_rejected_with_the_field),
        cmocka_unit_test(floats_use_strings_for_nan_and_infinity),
        cmocka_unit_test(enums_are_written_by_name_and_read_by_name_or_number),
        cmocka_unit_test(original_proto_names_are_accepted_but_not_twice),
        cmocka_unit_test(unknown_field_is_rejected_with_its_path),
        cmocka_unit_test(mistyped_field_is_rejected_with_its_path),
        cmocka_unit_test(bytes_are_base64_in_both_alphabets),
        cmocka_unit_test(bad_base64_is_rejected_with_the_field),
        cmocka_unit_test(oneof_holds_one_member),
        cmocka_unit_test(optional_field_is_written_when_its_has_flag_is_set),
        cmocka_unit_test(strings_must_be_utf8_without_nul),
        cmocka_unit_test(json_syntax_errors_are_reported_with_their_offset),
        cmocka_unit_test(too_deep_nesting_is_refused),
        cmocka_unit_test(oversized_text_is_refused_before_parsing),
        cmocka_unit_test(repeated_messages_and_partial_failures_do_not_leak),
        cmocka_unit_test(null_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, setup_descriptor, NULL);
}
