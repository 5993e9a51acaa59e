/*
 * json.c - the generic protobuf <-> JSON converter (proto3 JSON mapping; see json.h).
 *
 * Everything is driven by the protobuf-c descriptors: a field's offset, label, type and
 * quantifier say where its value lives, whether it is present and how to render it. Parsing
 * builds the message the way protobuf_c_message_unpack does (malloc'd message, malloc'd
 * strings, bytes, arrays and sub-messages), and keeps it consistent at every step: a repeated
 * field's count only covers elements already built, a string pointer is replaced only by a
 * complete copy. So on any error the partial message is released with
 * protobuf_c_message_free_unpacked, and nothing leaks.
 *
 * Error reasons carry the field path ("holders[1].person.fullName"); anything taken from the
 * input into a reason (a key, a value) is cut short and reduced to printable ASCII, so a
 * reason is always safe to log or to put into JSON.
 */
#include "json.h"

#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"

/* ---------------------------------------------------------------------------------------- */
/* Context: the path of the field being converted, for error reasons.                         */

#define PATH_MAX_LEN 160

struct ctx {
    lt_why *why;
    int depth;
    size_t plen;
    char path[PATH_MAX_LEN];
};

static void ctx_init(struct ctx *c, lt_why *why)
{
    c->why = why;
    c->depth = 0;
    c->plen = 0;
    c->path[0] = '\0';
}

/* Copy at most 40 bytes of s (len bytes) into dst as printable ASCII: other bytes become '?',
 * and a longer s ends in "...". */
static void sanitize(char *dst, size_t n, const char *s, size_t len)
{
    size_t max = len > 40 ? 40 : len, j = 0;
    for (size_t i = 0; i < max && j + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
    }
    if (len > max)
        for (int k = 0; k < 3 && j + 1 < n; k++)
            dst[j++] = '.';
    dst[j] = '\0';
}

/* Append ".name" (or "name" at the root) to the path; returns the length to restore. A path
 * that no longer fits is cut (the reason stays readable, only shorter). */
static size_t path_push(struct ctx *c, const char *name)
{
    size_t old = c->plen;
    char clean[64];
    sanitize(clean, sizeof clean, name, strlen(name));
    int w = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? "." : "",
                     clean);
    if (w > 0)
        c->plen += (size_t)w < sizeof c->path - c->plen ? (size_t)w : sizeof c->path - c->plen - 1;
    return old;
}

static size_t path_push_index(struct ctx *c, size_t i)
{
    size_t old = c->plen;
    int w = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%zu]", i);
    if (w > 0)
        c->plen += (size_t)w < sizeof c->path - c->plen ? (size_t)w : sizeof c->path - c->plen - 1;
    return old;
}

static void path_pop(struct ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static lt_err fail(struct ctx *c, lt_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static lt_err fail(struct ctx *c, lt_err code, const char *fmt, ...)
{
    char what[LT_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->plen == 0)
        return lt_fail(c->why, code, "%s", what);
    return lt_fail(c->why, code, "%s: %s", c->path, what);
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers: names, UTF-8, base64, numbers in the C locale.                             */

/* protoc's ToJsonName: drop each '_' and upper-case the character after it. */
static void json_name(const char *name, char *buf, size_t n)
{
    size_t j = 0;
    bool up = false;
    for (const char *p = name; *p != '\0' && j + 1 < n; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        buf[j++] = (up && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
        up = false;
    }
    buf[j] = '\0';
}

/* Does key equal json_name(name)? (No buffer, so any name length works.) */
static bool json_name_eq(const char *name, const char *key)
{
    bool up = false;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        char want = (up && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
        up = false;
        if (*key++ != want)
            return false;
    }
    return *key == '\0';
}

bool lt_json_utf8_is_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (b >= 0xc2 && b <= 0xdf) {
            n = 1;
            cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
            n = 2;
            cp = b & 0x0f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            n = 3;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard, padded base64 of data (len bytes) as a new NUL-terminated string, or NULL. */
static char *b64_encode(const uint8_t *data, size_t len)
{
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    size_t i = 0, j = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[j++] = b64_alphabet[v >> 18];
        out[j++] = b64_alphabet[(v >> 12) & 63];
        out[j++] = b64_alphabet[(v >> 6) & 63];
        out[j++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        out[j++] = b64_alphabet[v >> 18];
        out[j++] = b64_alphabet[(v >> 12) & 63];
        out[j++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[j++] = '=';
    }
    out[j] = '\0';
    return out;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Decode base64 (standard or URL-safe alphabet, padding optional but, when present, only at
 * the end and completing a group of 4). On success *out is malloc'd (NULL when empty) and the
 * function returns -1; otherwise it returns the offset of the first bad character. */
static long b64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
        pad++;
    size_t n = len - pad; /* significant characters */
    if (pad > 0 && len % 4 != 0)
        return (long)n;
    if (n % 4 == 1)
        return (long)(n - 1);
    size_t cap = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    uint8_t *buf = NULL;
    if (cap > 0 && (buf = malloc(cap)) == NULL)
        return -2;
    uint32_t acc = 0;
    size_t j = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return (long)i;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[j++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out = buf;
    *out_len = j;
    return -1;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
    c_locale_obj = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Switch this thread to the C locale for numbers; returns what to restore (or 0). */
static locale_t c_locale_enter(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale_obj ? uselocale(c_locale_obj) : (locale_t)0;
}

static void c_locale_leave(locale_t old)
{
    if (old != (locale_t)0)
        uselocale(old);
}

/* Shortest "%g" text that reads back as the same float (is_float) or double. */
static void format_real(double d, bool is_float, char *buf, size_t n)
{
    locale_t old = c_locale_enter();
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (is_float ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    c_locale_leave(old);
}

static const char *jtype_name(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "boolean";
    case json_type_double:
    case json_type_int: return "number";
    case json_type_object: return "object";
    case json_type_array: return "array";
    case json_type_string: return "string";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------------------------- */
/* Field storage, as protobuf-c lays it out.                                                 */

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off) ((const void *)((const char *)(msg) + (off)))

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Types whose proto2/proto3-optional presence is a has_ flag (strings and messages use the
 * pointer instead). */
static bool has_flag(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_MESSAGE;
}

/* Is a singular value at its proto3 default (zero, empty, unset)? */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return *(const uint32_t *)p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return *(const uint64_t *)p == 0;
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p == 0;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p == 0;
    case PROTOBUF_C_TYPE_ENUM: return *(const int *)p == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p == NULL;
    }
    return true;
}

/* Is singular field f present in msg, i.e. does it appear in the JSON? */
static bool is_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const void *p = CMEMBER(msg, f->offset);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)CMEMBER(msg, f->quantifier_offset) == f->id &&
               (f->type != PROTOBUF_C_TYPE_STRING || *(char *const *)p != NULL) &&
               (f->type != PROTOBUF_C_TYPE_MESSAGE || *(ProtobufCMessage *const *)p != NULL);
    switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return f->type == PROTOBUF_C_TYPE_STRING ? *(char *const *)p != NULL
               : f->type == PROTOBUF_C_TYPE_MESSAGE ? *(ProtobufCMessage *const *)p != NULL
                                                    : true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (has_flag(f->type))
            return *(const protobuf_c_boolean *)CMEMBER(msg, f->quantifier_offset) != 0;
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(char *const *)p != NULL && *(char *const *)p != f->default_value;
        return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_LABEL_NONE:
    default:
        return !is_default(f, p);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* protobuf -> JSON                                                                         */

static lt_err render_message(struct ctx *c, const ProtobufCMessage *msg, json_object **out);

/* Render the value at p (one element of field f). */
static lt_err render_value(struct ctx *c, const ProtobufCFieldDescriptor *f, const void *p,
                           json_object **out)
{
    char buf[64];
    json_object *v = NULL;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: v = json_object_new_int(*(const int32_t *)p); break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: v = json_object_new_int64(*(const uint32_t *)p); break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)p);
        v = json_object_new_string(buf);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
        v = json_object_new_string(buf);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        bool is_float = f->type == PROTOBUF_C_TYPE_FLOAT;
        double d = is_float ? (double)*(const float *)p : *(const double *)p;
        if (isnan(d))
            v = json_object_new_string("NaN");
        else if (isinf(d))
            v = json_object_new_string(d > 0 ? "Infinity" : "-Infinity");
        else {
            format_real(d, is_float, buf, sizeof buf);
            v = json_object_new_double_s(d, buf);
        }
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: v = json_object_new_boolean(*(const protobuf_c_boolean *)p != 0); break;
    case PROTOBUF_C_TYPE_ENUM: {
        int n = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, n);
        v = ev ? json_object_new_string(ev->name) : json_object_new_int(n);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (s == NULL)
            s = "";
        size_t len = strlen(s);
        if (!lt_json_utf8_is_valid(s, len))
            return fail(c, LT_EPROTO, "string is not valid UTF-8");
        v = json_object_new_string_len(s, (int)len);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        char *b64 = b64_encode(bd->data, bd->len);
        if (b64 == NULL)
            return fail(c, LT_ENOMEM, "out of memory encoding %zu bytes", bd->len);
        v = json_object_new_string(b64);
        free(b64);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL)
            return fail(c, LT_EPROTO, "null message in a repeated field");
        return render_message(c, sub, out);
    }
    default: return fail(c, LT_EPROTO, "field of unknown type %d", (int)f->type);
    }
    if (v == NULL)
        return fail(c, LT_ENOMEM, "out of memory");
    *out = v;
    return LT_OK;
}

static lt_err render_field(struct ctx *c, const ProtobufCMessage *msg,
                           const ProtobufCFieldDescriptor *f, json_object *obj)
{
    json_object *v = NULL;
    lt_err e = LT_OK;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)CMEMBER(msg, f->quantifier_offset);
        const char *arr = *(char *const *)CMEMBER(msg, f->offset);
        if (n == 0)
            return LT_OK;
        if (arr == NULL)
            return fail(c, LT_EPROTO, "%zu elements but no array", n);
        if ((v = json_object_new_array_ext((int)(n > INT32_MAX ? INT32_MAX : n))) == NULL)
            return fail(c, LT_ENOMEM, "out of memory");
        size_t es = elem_size(f->type);
        for (size_t i = 0; i < n && e == LT_OK; i++) {
            size_t old = path_push_index(c, i);
            json_object *ev = NULL;
            e = render_value(c, f, arr + i * es, &ev);
            if (e == LT_OK && json_object_array_add(v, ev) != 0) {
                json_object_put(ev);
                e = fail(c, LT_ENOMEM, "out of memory");
            }
            path_pop(c, old);
        }
    } else {
        if (!is_present(msg, f))
            return LT_OK;
        e = render_value(c, f, CMEMBER(msg, f->offset), &v);
    }
    if (e == LT_OK) {
        char key[256];
        json_name(f->name, key, sizeof key);
        if (json_object_object_add(obj, key, v) != 0)
            e = fail(c, LT_ENOMEM, "out of memory");
        else
            v = NULL;
    }
    json_object_put(v);
    return e;
}

static lt_err render_message(struct ctx *c, const ProtobufCMessage *msg, json_object **out)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (desc == NULL || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return fail(c, LT_EPROTO, "not a protobuf-c message");
    if (c->depth >= LT_JSON_MAX_DEPTH)
        return fail(c, LT_ETOOBIG, "messages nested deeper than %d", LT_JSON_MAX_DEPTH);
    json_object *obj = json_object_new_object();
    if (obj == NULL)
        return fail(c, LT_ENOMEM, "out of memory");
    c->depth++;
    lt_err e = LT_OK;
    for (unsigned i = 0; i < desc->n_fields && e == LT_OK; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        char key[256];
        json_name(f->name, key, sizeof key);
        size_t old = path_push(c, key);
        e = render_field(c, msg, f, obj);
        path_pop(c, old);
    }
    c->depth--;
    if (e != LT_OK) {
        json_object_put(obj);
        return e;
    }
    *out = obj;
    return LT_OK;
}

lt_err lt_json_from_pb(const ProtobufCMessage *msg, json_object **out, lt_why *why)
{
    if (msg == NULL || out == NULL)
        return lt_fail(why, LT_EINVAL, "lt_json_from_pb: NULL argument");
    struct ctx c;
    ctx_init(&c, why);
    return render_message(&c, msg, out);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON -> protobuf                                                                         */

/* An integer from JSON as sign and magnitude, so every 64-bit value of either sign fits. */
struct integer {
    bool neg;
    uint64_t mag;
};

static lt_err get_integer(struct ctx *c, json_object *v, struct integer *out)
{
    switch (json_object_get_type(v)) {
    case json_type_int: {
        /* json-c clamps what does not fit in int64/uint64 to these limits, silently. */
        int64_t i = json_object_get_int64(v);
        if (i < 0) {
            if (i == INT64_MIN)
                return fail(c, LT_EFORMAT,
                            "number out of range or clamped (write 64-bit values as strings)");
            out->neg = true;
            out->mag = (uint64_t)(-i);
            return LT_OK;
        }
        uint64_t u = json_object_get_uint64(v);
        if (u == UINT64_MAX)
            return fail(c, LT_EFORMAT,
                        "number out of range or clamped (write 64-bit values as strings)");
        out->neg = false;
        out->mag = u;
        return LT_OK;
    }
    case json_type_double: {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d != trunc(d))
            return fail(c, LT_EFORMAT, "expected an integer, got a fractional or non-finite number");
        if (d <= -18446744073709551616.0 || d >= 18446744073709551616.0)
            return fail(c, LT_EFORMAT, "number out of range");
        out->neg = d < 0;
        out->mag = (uint64_t)(d < 0 ? -d : d);
        return LT_OK;
    }
    case json_type_string: {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        char shown[64];
        sanitize(shown, sizeof shown, s, len);
        size_t i = 0;
        out->neg = false;
        out->mag = 0;
        if (len > 0 && s[0] == '-') {
            out->neg = true;
            i = 1;
        }
        if (i == len)
            return fail(c, LT_EFORMAT, "expected an integer, got string \"%s\"", shown);
        for (; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return fail(c, LT_EFORMAT, "expected an integer, got string \"%s\"", shown);
            unsigned dgt = (unsigned)(s[i] - '0');
            if (out->mag > (UINT64_MAX - dgt) / 10)
                return fail(c, LT_EFORMAT, "integer \"%s\" out of range", shown);
            out->mag = out->mag * 10 + dgt;
        }
        return LT_OK;
    }
    default: return fail(c, LT_EFORMAT, "expected an integer, got %s", jtype_name(v));
    }
}

/* Integer field value into p, checked against the type's range. */
static lt_err parse_integer(struct ctx *c, const ProtobufCFieldDescriptor *f, json_object *v,
                            void *p)
{
    struct integer n;
    lt_err e = get_integer(c, v, &n);
    if (e != LT_OK)
        return e;
    bool is_signed, wide;
    const char *tname;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: is_signed = true, wide = false, tname = "int32"; break;
    case PROTOBUF_C_TYPE_SINT32: is_signed = true, wide = false, tname = "sint32"; break;
    case PROTOBUF_C_TYPE_SFIXED32: is_signed = true, wide = false, tname = "sfixed32"; break;
    case PROTOBUF_C_TYPE_UINT32: is_signed = false, wide = false, tname = "uint32"; break;
    case PROTOBUF_C_TYPE_FIXED32: is_signed = false, wide = false, tname = "fixed32"; break;
    case PROTOBUF_C_TYPE_INT64: is_signed = true, wide = true, tname = "int64"; break;
    case PROTOBUF_C_TYPE_SINT64: is_signed = true, wide = true, tname = "sint64"; break;
    case PROTOBUF_C_TYPE_SFIXED64: is_signed = true, wide = true, tname = "sfixed64"; break;
    case PROTOBUF_C_TYPE_UINT64: is_signed = false, wide = true, tname = "uint64"; break;
    case PROTOBUF_C_TYPE_FIXED64: is_signed = false, wide = true, tname = "fixed64"; break;
    default: return fail(c, LT_EPROTO, "not an integer field");
    }
    uint64_t pos_max = is_signed ? (wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX)
                                 : (wide ? UINT64_MAX : (uint64_t)UINT32_MAX);
    uint64_t neg_max = is_signed ? pos_max + 1 : 0; /* magnitude of the minimum */
    if (n.neg && n.mag == 0)
        n.neg = false; /* "-0" */
    if ((n.neg && n.mag > neg_max) || (!n.neg && n.mag > pos_max))
        return fail(c, LT_EFORMAT, "value %s%" PRIu64 " out of range for %s", n.neg ? "-" : "",
                    n.mag, tname);
    if (wide) {
        uint64_t u = n.neg ? (uint64_t)0 - n.mag : n.mag; /* two's complement */
        memcpy(p, &u, sizeof u);
    } else {
        uint32_t u = n.neg ? (uint32_t)(0u - (uint32_t)n.mag) : (uint32_t)n.mag;
        memcpy(p, &u, sizeof u);
    }
    return LT_OK;
}

static lt_err parse_real(struct ctx *c, const ProtobufCFieldDescriptor *f, json_object *v,
                         void *p)
{
    bool is_float = f->type == PROTOBUF_C_TYPE_FLOAT;
    double d;
    switch (json_object_get_type(v)) {
    case json_type_int:
    case json_type_double:
        d = json_object_get_double(v);
        if (!isfinite(d))
            return fail(c, LT_EFORMAT, "number out of range (write \"NaN\", \"Infinity\" or "
                                       "\"-Infinity\" as strings)");
        break;
    case json_type_string: {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        char shown[64];
        sanitize(shown, sizeof shown, s, len);
        if (strcmp(s, "NaN") == 0)
            d = NAN;
        else if (strcmp(s, "Infinity") == 0)
            d = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            d = -INFINITY;
        else {
            /* Only JSON number syntax: strtod alone would also take hex, "inf", spaces. */
            bool ok = len > 0 && len < 400 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'));
            for (size_t i = 0; ok && i < len; i++)
                ok = (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '+' ||
                     s[i] == '.' || s[i] == 'e' || s[i] == 'E';
            char *end = NULL;
            if (ok) {
                locale_t old = c_locale_enter();
                d = strtod(s, &end);
                c_locale_leave(old);
                ok = end == s + len && isfinite(d);
            }
            if (!ok)
                return fail(c, LT_EFORMAT, "expected a number, got string \"%s\"", shown);
        }
        break;
    }
    default: return fail(c, LT_EFORMAT, "expected a number, got %s", jtype_name(v));
    }
    if (is_float) {
        if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
            return fail(c, LT_EFORMAT, "value out of range for float");
        float fl = (float)d;
        memcpy(p, &fl, sizeof fl);
    } else {
        memcpy(p, &d, sizeof d);
    }
    return LT_OK;
}

static lt_err parse_message(struct ctx *c, const ProtobufCMessageDescriptor *desc,
                            json_object *obj, ProtobufCMessage **out);

/* Parse v (not null) as one value of field f into p. On error nothing was stored at p. */
static lt_err parse_value(struct ctx *c, const ProtobufCFieldDescriptor *f, json_object *v,
                          void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return parse_integer(c, f, v, p);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: return parse_real(c, f, v, p);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            return fail(c, LT_EFORMAT, "expected a boolean, got %s", jtype_name(v));
        *(protobuf_c_boolean *)p = json_object_get_boolean(v) ? 1 : 0;
        return LT_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = NULL;
        if (json_object_is_type(v, json_type_string)) {
            const char *s = json_object_get_string(v);
            ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
            if (ev == NULL) {
                char shown[64];
                sanitize(shown, sizeof shown, s, (size_t)json_object_get_string_len(v));
                return fail(c, LT_EFORMAT, "unknown value \"%s\" for enum %s", shown, ed->name);
            }
        } else if (json_object_is_type(v, json_type_int) ||
                   json_object_is_type(v, json_type_double)) {
            struct integer n;
            lt_err e = get_integer(c, v, &n);
            if (e != LT_OK)
                return e;
            if (n.mag <= (uint64_t)INT32_MAX)
                ev = protobuf_c_enum_descriptor_get_value(ed, n.neg ? -(int)n.mag : (int)n.mag);
            if (ev == NULL)
                return fail(c, LT_EFORMAT, "%s%" PRIu64 " is not a value of enum %s",
                            n.neg ? "-" : "", n.mag, ed->name);
        } else {
            return fail(c, LT_EFORMAT, "expected an enum name or number, got %s", jtype_name(v));
        }
        *(int *)p = ev->value;
        return LT_OK;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_object_is_type(v, json_type_string))
            return fail(c, LT_EFORMAT, "expected a string, got %s", jtype_name(v));
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        if (memchr(s, '\0', len) != NULL)
            return fail(c, LT_EFORMAT, "string contains a NUL character");
        if (!lt_json_utf8_is_valid(s, len))
            return fail(c, LT_EFORMAT, "string is not valid UTF-8");
        char *copy = malloc(len + 1);
        if (copy == NULL)
            return fail(c, LT_ENOMEM, "out of memory");
        memcpy(copy, s, len);
        copy[len] = '\0';
        *(char **)p = copy;
        return LT_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_object_is_type(v, json_type_string))
            return fail(c, LT_EFORMAT, "expected a base64 string, got %s", jtype_name(v));
        uint8_t *data = NULL;
        size_t n = 0;
        long bad = b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                              &data, &n);
        if (bad == -2)
            return fail(c, LT_ENOMEM, "out of memory");
        if (bad >= 0)
            return fail(c, LT_EFORMAT, "not valid base64 (at character %ld)", bad);
        ProtobufCBinaryData *bd = p;
        bd->data = data;
        bd->len = n;
        return LT_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE: return parse_message(c, f->descriptor, v, (ProtobufCMessage **)p);
    }
    return fail(c, LT_EPROTO, "field of unknown type %d", (int)f->type);
}

/* Parse v into field f of msg (f not yet set). */
static lt_err parse_field(struct ctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                          json_object *v)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        lt_err e = parse_value(c, f, v, MEMBER(msg, f->offset));
        if (e != LT_OK)
            return e;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)MEMBER(msg, f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && has_flag(f->type))
            *(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 1;
        return LT_OK;
    }
    if (!json_object_is_type(v, json_type_array))
        return fail(c, LT_EFORMAT, "expected an array, got %s", jtype_name(v));
    size_t n = json_object_array_length(v), es = elem_size(f->type);
    if (n == 0)
        return LT_OK;
    char *arr = calloc(n, es);
    if (arr == NULL)
        return fail(c, LT_ENOMEM, "out of memory for %zu elements", n);
    /* The message owns the array from here; the count grows with each finished element. */
    *(void **)MEMBER(msg, f->offset) = arr;
    size_t *count = MEMBER(msg, f->quantifier_offset);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(c, i);
        json_object *ev = json_object_array_get_idx(v, i);
        lt_err e = ev == NULL ? fail(c, LT_EFORMAT, "null is not allowed in an array")
                              : parse_value(c, f, ev, arr + i * es);
        path_pop(c, old);
        if (e != LT_OK)
            return e;
        *count = i + 1;
    }
    return LT_OK;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const char *key)
{
    for (unsigned i = 0; i < desc->n_fields; i++)
        if (json_name_eq(desc->fields[i].name, key) || strcmp(desc->fields[i].name, key) == 0)
            return &desc->fields[i];
    return NULL;
}

/* The oneof member currently selected in the oneof whose case lives at case_off, or NULL. */
static const ProtobufCFieldDescriptor *oneof_selected(const ProtobufCMessageDescriptor *desc,
                                                      const ProtobufCMessage *msg,
                                                      unsigned case_off)
{
    uint32_t id = *(const uint32_t *)CMEMBER(msg, case_off);
    for (unsigned i = 0; id != 0 && i < desc->n_fields; i++)
        if ((desc->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            desc->fields[i].quantifier_offset == case_off && desc->fields[i].id == id)
            return &desc->fields[i];
    return NULL;
}

static lt_err parse_message(struct ctx *c, const ProtobufCMessageDescriptor *desc,
                            json_object *obj, ProtobufCMessage **out)
{
    if (!json_object_is_type(obj, json_type_object))
        return fail(c, LT_EFORMAT, "expected an object, got %s", jtype_name(obj));
    if (c->depth >= LT_JSON_MAX_DEPTH)
        return fail(c, LT_ETOOBIG, "messages nested deeper than %d", LT_JSON_MAX_DEPTH);
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (msg == NULL)
        return fail(c, LT_ENOMEM, "out of memory");
    protobuf_c_message_init(desc, msg);
    /* seen[i]: field i was given (under either name), so a second key for it is an error. */
    unsigned char *seen = calloc(desc->n_fields ? desc->n_fields : 1, 1);
    if (seen == NULL) {
        free(msg);
        return fail(c, LT_ENOMEM, "out of memory");
    }
    c->depth++;
    lt_err e = LT_OK;
    json_object_object_foreach(obj, key, val)
    {
        size_t old = path_push(c, key);
        const ProtobufCFieldDescriptor *f = find_field(desc, key);
        if (f == NULL) {
            e = fail(c, LT_EFORMAT, "unknown field of %s", desc->name);
        } else if (seen[f - desc->fields]) {
            e = fail(c, LT_EFORMAT, "field given twice (as %s and as its other name)", f->name);
        } else {
            seen[f - desc->fields] = 1;
            const ProtobufCFieldDescriptor *other = NULL;
            if (val == NULL) {
                /* null: the field keeps its default */
            } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                       (other = oneof_selected(desc, msg, f->quantifier_offset)) != NULL) {
                char oname[256];
                json_name(other->name, oname, sizeof oname);
                e = fail(c, LT_EFORMAT, "another member of the same oneof (%s) is already set",
                         oname);
            } else {
                e = parse_field(c, msg, f, val);
            }
        }
        path_pop(c, old);
        if (e != LT_OK)
            break;
    }
    c->depth--;
    free(seen);
    if (e != LT_OK) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return e;
    }
    *out = msg;
    return LT_OK;
}

lt_err lt_json_to_pb(const ProtobufCMessageDescriptor *desc, json_object *in,
                     ProtobufCMessage **out, lt_why *why)
{
    if (desc == NULL || out == NULL)
        return lt_fail(why, LT_EINVAL, "lt_json_to_pb: NULL argument");
    if (desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return lt_fail(why, LT_EINVAL, "lt_json_to_pb: not a message descriptor");
    struct ctx c;
    ctx_init(&c, why);
    return parse_message(&c, desc, in, out);
}

lt_err lt_json_parse_pb(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                        ProtobufCMessage **out, lt_why *why)
{
    if (desc == NULL || out == NULL || (text == NULL && len > 0))
        return lt_fail(why, LT_EINVAL, "lt_json_parse_pb: NULL argument");
    if (len > LT_JSON_MAX_TEXT)
        return lt_fail(why, LT_ETOOBIG, "JSON text of %zu bytes is over the limit of %u", len,
                       LT_JSON_MAX_TEXT);
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul != NULL)
        return lt_fail(why, LT_EFORMAT, "JSON text contains a NUL byte at offset %zu",
                       (size_t)(nul - text));
    /* json-c needs the terminating NUL to see the end of the input (a bare "null" or "1"
     * would otherwise wait for more), so parse a NUL-terminated copy. */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory for %zu bytes of JSON", len);
    if (len)
        memcpy(copy, text, len);
    copy[len] = '\0';
    /* json-c counts the outermost level too: depth N allows N - 1 nested levels. */
    struct json_tokener *tok = json_tokener_new_ex(LT_JSON_MAX_DEPTH + 1);
    if (tok == NULL) {
        free(copy);
        return lt_fail(why, LT_ENOMEM, "out of memory for a JSON parser");
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, copy, (int)len + 1);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    lt_err e = LT_OK;
    if (jerr == json_tokener_error_depth) {
        e = lt_fail(why, LT_ETOOBIG, "JSON nested deeper than %d levels (at offset %zu)",
                    LT_JSON_MAX_DEPTH, end);
    } else if (jerr != json_tokener_success) {
        e = lt_fail(why, LT_EFORMAT, "JSON syntax error at offset %zu: %s",
                    end > len ? len : end, json_tokener_error_desc(jerr));
    } else {
        /* After the value only whitespace may follow (the NUL ends it). */
        for (size_t i = end; i < len && e == LT_OK; i++)
            if (copy[i] != ' ' && copy[i] != '\t' && copy[i] != '\n' && copy[i] != '\r')
                e = lt_fail(why, LT_EFORMAT, "trailing characters after the JSON value at "
                                             "offset %zu", i);
        if (e == LT_OK && !json_object_is_type(obj, json_type_object))
            e = lt_fail(why, LT_EFORMAT, "expected a JSON object, got %s",
                        obj == NULL ? "null" : jtype_name(obj));
    }
    json_tokener_free(tok);
    free(copy);
    if (e == LT_OK)
        e = lt_json_to_pb(desc, obj, out, why);
    json_object_put(obj);
    return e;
}

lt_err lt_json_pb_to_string(const ProtobufCMessage *msg, char **out_json, lt_why *why)
{
    if (out_json == NULL)
        return lt_fail(why, LT_EINVAL, "lt_json_pb_to_string: NULL argument");
    json_object *obj = NULL;
    lt_err e = lt_json_from_pb(msg, &obj, why);
    if (e != LT_OK)
        return e;
    const char *s = json_object_to_json_string_ext(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = s ? strdup(s) : NULL;
    json_object_put(obj);
    if (copy == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory rendering JSON");
    *out_json = copy;
    return LT_OK;
}

lt_err lt_json_payload_to_string(const char *record_type, const uint8_t *payload, size_t len,
                                 char **out_json, lt_why *why)
{
    if (out_json == NULL || (payload == NULL && len > 0))
        return lt_fail(why, LT_EINVAL, "lt_json_payload_to_string: NULL argument");
    const ProtobufCMessageDescriptor *desc = lt_records_find(record_type);
    if (desc == NULL) {
        char shown[64];
        sanitize(shown, sizeof shown, record_type ? record_type : "(null)",
                 strlen(record_type ? record_type : "(null)"));
        return lt_fail(why, LT_ENOTFOUND, "unknown record type \"%s\"", shown);
    }
    static const uint8_t empty[1];
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, len ? payload : empty);
    if (msg == NULL)
        return lt_fail(why, LT_EPROTO, "payload of %zu bytes is not a valid %s", len, desc->name);
    lt_err e = lt_json_pb_to_string(msg, out_json, why);
    protobuf_c_message_free_unpacked(msg, NULL);
    return e;
}

lt_err lt_json_text_to_payload(const char *record_type, const char *text, size_t len,
                               uint8_t **out, size_t *out_len, lt_why *why)
{
    if (out == NULL || out_len == NULL)
        return lt_fail(why, LT_EINVAL, "lt_json_text_to_payload: NULL argument");
    const ProtobufCMessageDescriptor *desc = lt_records_find(record_type);
    if (desc == NULL) {
        char shown[64];
        sanitize(shown, sizeof shown, record_type ? record_type : "(null)",
                 strlen(record_type ? record_type : "(null)"));
        return lt_fail(why, LT_ENOTFOUND, "unknown record type \"%s\"", shown);
    }
    ProtobufCMessage *msg = NULL;
    lt_err e = lt_json_parse_pb(desc, text, len, &msg, why);
    if (e != LT_OK)
        return e;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return lt_fail(why, LT_ENOMEM, "out of memory for a %zu-byte payload", n);
    }
    size_t packed = protobuf_c_message_pack(msg, buf);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (packed != n) {
        free(buf);
        return lt_fail(why, LT_EPROTO, "packed %zu bytes, expected %zu", packed, n);
    }
    *out = buf;
    *out_len = n;
    return LT_OK;
}
