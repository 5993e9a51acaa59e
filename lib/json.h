/*
 * json.h - protobuf records <-> JSON, generically, through the protobuf-c descriptors.
 *
 * One converter for every message type (no per-record code), following the proto3 JSON
 * mapping:
 *   - field names in lowerCamelCase on output ("birthDate"); on input the lowerCamelCase name
 *     or the original proto name ("birth_date") is accepted;
 *   - 64-bit integers (int64, uint64, sint64, fixed64, sfixed64) are written as strings; on
 *     input a string or a number is accepted (numbers are exact only up to 2^53 in most JSON
 *     tools; a number json-c had to clamp - beyond the type's range, or exactly INT64_MIN /
 *     UINT64_MAX - is rejected: write those as strings);
 *   - 32-bit integers are numbers (strings of decimal digits accepted on input); floats and
 *     doubles are numbers, with "NaN", "Infinity", "-Infinity" as strings;
 *   - bytes are base64 (standard alphabet, padded) on output; standard or URL-safe, padded or
 *     not, on input;
 *   - enums by value name ("SEX_FEMALE") on output, or the number if the value has no name;
 *     on input a name or a number, which must be a value the enum defines;
 *   - repeated fields are arrays, messages are objects, a oneof is the one member set;
 *   - fields at their default (0, "", empty, unset message, unselected oneof) are omitted on
 *     output; a JSON null on input means "default";
 *   - strings must be valid UTF-8 without NUL characters, both ways (json-c's parser turns a
 *     lone surrogate escape such as "\ud800" into U+FFFD).
 * Unknown fields, a field given twice (under both names), two members of one oneof, and
 * values of the wrong JSON type are errors whose reason names the field path, e.g.
 * "child.birthDate: expected a string, got number" or "holders[1].person: oneof holder already
 * set by organization".
 *
 * Hostile input: JSON text is at most LT_JSON_MAX_TEXT bytes and nests at most
 * LT_JSON_MAX_DEPTH objects/arrays deep; messages nest at most LT_JSON_MAX_DEPTH deep both
 * ways. Maps (proto map<,>) are not special-cased: the records use none.
 *
 * Thread-safe: no shared mutable state. Number formatting and parsing use the C locale
 * whatever the process locale is.
 */
#ifndef LT_LIB_JSON_H
#define LT_LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

#include "err.h"

#define LT_JSON_MAX_DEPTH 32            /* nesting of JSON objects/arrays and of messages */
#define LT_JSON_MAX_TEXT (16u << 20)    /* bytes of JSON text accepted by the parsers */

/* Strict UTF-8, as every string of a record must be: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool lt_json_utf8_is_valid(const char *s, size_t len);

/* Render msg as a JSON object. On LT_OK *out is a new json_object the caller releases with
 * json_object_put. Errors: LT_EPROTO (a string field is not valid UTF-8, or the message is
 * malformed), LT_ETOOBIG (messages nested deeper than LT_JSON_MAX_DEPTH), LT_ENOMEM,
 * LT_EINVAL (NULL argument). */
lt_err lt_json_from_pb(const ProtobufCMessage *msg, json_object **out, lt_why *why);

/* Build a message of type desc from the JSON object in (borrowed). On LT_OK *out is a new
 * message allocated with the system allocator exactly as protobuf_c_message_unpack(desc,
 * NULL, ...) would, so the caller frees it with protobuf_c_message_free_unpacked(*out, NULL).
 * Errors: LT_EFORMAT (unknown field, field given twice, wrong JSON type, value out of range,
 * unknown enum value, bad base64, bad UTF-8 or NUL in a string, two members of one oneof),
 * LT_ETOOBIG (nesting deeper than LT_JSON_MAX_DEPTH), LT_ENOMEM, LT_EINVAL (NULL argument).
 * The reason names the field path. */
lt_err lt_json_to_pb(const ProtobufCMessageDescriptor *desc, json_object *in,
                     ProtobufCMessage **out, lt_why *why);

/* Parse JSON text (len bytes, need not be NUL-terminated; one JSON object, surrounding
 * whitespace allowed) into a message of type desc; *out as for lt_json_to_pb. Errors: as
 * lt_json_to_pb, plus LT_EFORMAT for JSON syntax errors (with the byte offset), trailing
 * characters or a top level that is not an object, and LT_ETOOBIG for text longer than
 * LT_JSON_MAX_TEXT or nested deeper than LT_JSON_MAX_DEPTH. */
lt_err lt_json_parse_pb(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                        ProtobufCMessage **out, lt_why *why);

/* Render msg as compact JSON text (one line, UTF-8, no trailing newline). On LT_OK *out_json
 * is a NUL-terminated string the caller frees with free(). Errors: as lt_json_from_pb. */
lt_err lt_json_pb_to_string(const ProtobufCMessage *msg, char **out_json, lt_why *why);

/* Unpack payload (len bytes, a serialized record of the record type named record_type, e.g.
 * "lienthong.v1.records.BirthRegistration") and render it as compact JSON text; *out_json as
 * for lt_json_pb_to_string. Errors: LT_ENOTFOUND (record_type is not a record type, see
 * records.h), LT_EPROTO (payload does not unpack as that type, or holds invalid UTF-8),
 * LT_ENOMEM, LT_EINVAL. */
lt_err lt_json_payload_to_string(const char *record_type, const uint8_t *payload, size_t len,
                                 char **out_json, lt_why *why);

/* The reverse: parse JSON text as a record of type record_type and serialize it. On LT_OK
 * *out (malloc'd, free() it; never NULL, even for an empty record) holds *out_len bytes.
 * Errors: LT_ENOTFOUND (unknown record type), else as lt_json_parse_pb. */
lt_err lt_json_text_to_payload(const char *record_type, const char *text, size_t len,
                               uint8_t **out, size_t *out_len, lt_why *why);

#endif
