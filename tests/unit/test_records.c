/* test_records.c - the record-type registry, and every canonical record round-tripping through
 * JSON and the wire format with realistic Vietnamese data.
 *
 * The sample records are the seed corpus of the JSON fuzz target
 * (tests/fuzz/corpus/json/record_<Type>.json), so the fuzzer starts from real records and the
 * samples stay valid: this test fails if a sample no longer parses or loses a field. */
#include "json.h"
#include "records.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *read_sample(const char *short_name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/json/record_%s.json", LT_TEST_SRCDIR,
             short_name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open sample %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void registry_lists_the_record_types_in_name_order(void **state)
{
    (void)state;
    static const char *const expected[] = {
        "lienthong.v1.records.BirthRegistration",      "lienthong.v1.records.DossierStatusEvent",
        "lienthong.v1.records.EDocument",              "lienthong.v1.records.EDocumentStatus",
        "lienthong.v1.records.EnterpriseRegistration", "lienthong.v1.records.LandParcel",
        "lienthong.v1.records.PopulationRecord",       "lienthong.v1.records.ResidenceChange",
        "lienthong.v1.records.TaskAssignment",         "lienthong.v1.records.TaskReminder",
        "lienthong.v1.records.TaskStatusUpdate",
    };
    size_t n = sizeof expected / sizeof expected[0];
    assert_int_equal(lt_records_count(), n);
    for (size_t i = 0; i < n; i++) {
        const lt_record_type *t = lt_records_at(i);
        assert_non_null(t);
        assert_string_equal(t->desc->name, expected[i]);
        assert_non_null(t->summary);
        assert_true(strlen(t->summary) > 10);
        assert_ptr_equal(lt_records_find(expected[i]), t->desc);
        if (i > 0)
            assert_true(strcmp(lt_records_at(i - 1)->desc->name, t->desc->name) < 0);
    }
    assert_null(lt_records_at(n));
}

static void registry_rejects_helpers_short_names_and_null(void **state)
{
    (void)state;
    assert_null(lt_records_find("lienthong.v1.records.Address"));
    assert_null(lt_records_find("lienthong.v1.records.Person"));
    assert_null(lt_records_find("BirthRegistration"));
    assert_null(lt_records_find("lienthong.v1.records.BirthRegistration "));
    assert_null(lt_records_find("lienthong.v1.Envelope"));
    assert_null(lt_records_find(""));
    assert_null(lt_records_find(NULL));
}

/* Top-level fields a realistic sample leaves at their default (a living person has no date of
 * death, an open dossier no finish time, ...). Every other field must be in the sample. */
static const char *const left_default[] = {
    "PopulationRecord.deathDate",       "DossierStatusEvent.finishedUnixMs",
    "DossierStatusEvent.returnedUnixMs", "EDocument.steeringType",
    "EDocument.businessDocReason",       "ResidenceChange.expiryDate",
};

static bool may_be_default(const char *type, const char *field)
{
    char key[300];
    snprintf(key, sizeof key, "%.120s.%.120s", type, field);
    for (size_t i = 0; i < sizeof left_default / sizeof left_default[0]; i++)
        if (strcmp(left_default[i], key) == 0)
            return true;
    return false;
}

static void json_key(const char *name, char *buf, size_t n)
{
    size_t j = 0;
    int up = 0;
    for (; *name && j + 1 < n; name++) {
        if (*name == '_') {
            up = 1;
            continue;
        }
        buf[j++] = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 32) : *name;
        up = 0;
    }
    buf[j] = '\0';
}

static void every_record_type_round_trips_through_json_and_the_wire(void **state)
{
    (void)state;
    for (size_t i = 0; i < lt_records_count(); i++) {
        const ProtobufCMessageDescriptor *desc = lt_records_at(i)->desc;
        size_t len;
        char *text = read_sample(desc->short_name, &len);
        lt_why why = {{0}};

        /* JSON -> message -> wire bytes -> message -> JSON */
        ProtobufCMessage *msg = NULL;
        lt_err e = lt_json_parse_pb(desc, text, len, &msg, &why);
        if (e != LT_OK)
            fail_msg("%s: %s", desc->short_name, why.msg);
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *wire = malloc(n + 1);
        assert_int_equal(protobuf_c_message_pack(msg, wire), n);
        char *out = NULL;
        assert_int_equal(lt_json_payload_to_string(desc->name, wire, n, &out, &why), LT_OK);

        /* Same JSON value as the sample (whose values are all canonical and non-default). */
        json_object *in_obj = json_tokener_parse(text);
        json_object *out_obj = json_tokener_parse(out);
        assert_non_null(in_obj);
        assert_non_null(out_obj);
        if (!json_object_equal(in_obj, out_obj))
            fail_msg("%s: JSON changed on the round trip:\n%s", desc->short_name, out);

        /* The sample exercises every top-level field of its record. */
        for (unsigned f = 0; f < desc->n_fields; f++) {
            char key[128];
            json_key(desc->fields[f].name, key, sizeof key);
            if (!json_object_object_get_ex(out_obj, key, NULL) &&
                !may_be_default(desc->short_name, key))
                fail_msg("%s: sample does not set field %s", desc->short_name, key);
        }

        /* And the text -> payload helper gives the same bytes. */
        uint8_t *payload = NULL;
        size_t plen = 0;
        assert_int_equal(lt_json_text_to_payload(desc->name, text, len, &payload, &plen, &why),
                         LT_OK);
        assert_int_equal(plen, n);
        assert_memory_equal(payload, wire, n);

        free(payload);
        json_object_put(in_obj);
        json_object_put(out_obj);
        free(out);
        free(wire);
        protobuf_c_message_free_unpacked(msg, NULL);
        free(text);
    }
}

static void vietnamese_text_survives_unchanged(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *desc =
        lt_records_find("lienthong.v1.records.BirthRegistration");
    /* NFC text with every tone mark and the letters ă â đ ê ô ơ ư, upper and lower case. */
    const char *name = "Đặng Thị Ngọc Ánh Ưng Ỷ Ỹ Ợ ă â đ ê ô ơ ư à ả ã á ạ";
    char text[512];
    snprintf(text, sizeof text, "{\"child\":{\"fullName\":\"%s\"}}", name);
    ProtobufCMessage *msg = NULL;
    lt_why why;
    assert_int_equal(lt_json_parse_pb(desc, text, strlen(text), &msg, &why), LT_OK);
    char *out = NULL;
    assert_int_equal(lt_json_pb_to_string(msg, &out, &why), LT_OK);
    assert_string_equal(out, text);
    free(out);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void mistyped_field_of_a_record_is_named_with_its_path(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *desc =
        lt_records_find("lienthong.v1.records.BirthRegistration");
    const char *text = "{\"registrationNumber\":\"152\",\"child\":{\"birthDate\":20250702}}";
    ProtobufCMessage *msg = NULL;
    lt_why why;
    assert_int_equal(lt_json_parse_pb(desc, text, strlen(text), &msg, &why), LT_EFORMAT);
    assert_null(msg);
    assert_string_equal(why.msg, "child.birthDate: expected a string, got number");
}

static void payload_of_unknown_type_or_garbage_is_refused(void **state)
{
    (void)state;
    lt_why why;
    char *out = NULL;
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(lt_json_payload_to_string("lienthong.v1.records.Nope", garbage, 2, &out, &why),
                     LT_ENOTFOUND);
    assert_non_null(strstr(why.msg, "lienthong.v1.records.Nope"));
    assert_int_equal(lt_json_payload_to_string("lienthong.v1.records.LandParcel", garbage,
                                               sizeof garbage, &out, &why),
                     LT_EPROTO);
    assert_null(out);
    /* An empty payload is a valid, empty record. */
    assert_int_equal(lt_json_payload_to_string("lienthong.v1.records.LandParcel", NULL, 0, &out,
                                               &why),
                     LT_OK);
    assert_string_equal(out, "{}");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_lists_the_record_types_in_name_order),
        cmocka_unit_test(registry_rejects_helpers_short_names_and_null),
        cmocka_unit_test(every_record_type_round_trips_through_json_and_the_wire),
        cmocka_unit_test(vietnamese_text_survives_unchanged),
        cmocka_unit_test(mistyped_field_of_a_record_is_named_with_its_path),
        cmocka_unit_test(payload_of_unknown_type_or_garbage_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
