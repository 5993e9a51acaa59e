/*
 * reader_jsonl.c - JSON lines via json-c: one object per line, blank lines skipped.
 *
 * Fields are the top-level keys in file order; a string value is given as is, null is an
 * absent field, numbers and booleans as their JSON text, objects and arrays as compact
 * JSON. Look-ups by name also follow dotted paths into nested objects and arrays
 * ("address.ward_code", "children.0.name"). Nesting is bounded (32) by the tokener.
 */
#include "reader_int.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

static char *value_text(struct json_object *v)
{
    if (json_object_is_type(v, json_type_string))
        return strndup(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
}

lt_err lt_reader_jsonl_path(struct lt_record *r, const char *path, const char **value,
                            lt_why *why)
{
    struct json_object *cur = r->json;
    const char *p = path;
    while (cur != NULL && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[128];
        if (n == 0 || n >= sizeof key)
            return lt_fail(why, LT_ENOTFOUND, "no field at '%.80s'", path);
        memcpy(key, p, n);
        key[n] = 0;
        struct json_object *next = NULL;
        if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, key, &next))
                next = NULL;
        } else if (json_object_is_type(cur, json_type_array)) {
            char *end;
            unsigned long i = strtoul(key, &end, 10);
            if (*end == 0 && key[0] >= '0' && key[0] <= '9' &&
                i < json_object_array_length(cur))
                next = json_object_array_get_idx(cur, i);
        }
        cur = next;
        p += n + (dot != NULL);
    }
    if (cur == NULL || p == path)
        return lt_fail(why, LT_ENOTFOUND, "no field at '%.80s'", path);
    char *s = lt_rec_keep(r, value_text(cur));
    if (s == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *value = s;
    return LT_OK;
}

lt_err lt_reader_jsonl(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why)
{
    struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    if (tok == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct lt_record rec = {.file = run->file, .cs = lt_charset_decoder_charset(run->dec)};
    size_t pos = 0, line = 0, index = 0;
    lt_err fatal = LT_OK;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        pos = 3;
    while (pos < len && !fatal) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
        const uint8_t *l = data + pos;
        pos += n + (nl != NULL);
        line++;
        size_t a = 0, b = n;
        while (a < b && (l[a] == ' ' || l[a] == '\t' || l[a] == '\r'))
            a++;
        while (b > a && (l[b - 1] == ' ' || l[b - 1] == '\t' || l[b - 1] == '\r'))
            b--;
        if (a == b)
            continue;
        index++;
        char *text = NULL;
        lt_why w;
        if (lt_run_decode(run, l + a, b - a, &text, &w) != LT_OK) {
            lt_run_reject(run, line, index, NULL, LT_EENCODING, "%s", w.msg);
            continue;
        }
        size_t tl = strlen(text);
        json_tokener_reset(tok);
        struct json_object *obj =
            tl > INT32_MAX ? NULL : json_tokener_parse_ex(tok, text, (int)tl);
        enum json_tokener_error je = json_tokener_get_error(tok);
        size_t used = json_tokener_get_parse_end(tok);
        free(text);
        if (obj == NULL || je != json_tokener_success || used != tl) {
            lt_run_reject(run, line, index, NULL, LT_EFORMAT, "not one JSON value: %s",
                          obj == NULL || je != json_tokener_success
                              ? json_tokener_error_desc(je == json_tokener_continue
                                                            ? json_tokener_error_parse_eof
                                                            : je)
                              : "text after the value");
            json_object_put(obj);
            continue;
        }
        if (!json_object_is_type(obj, json_type_object)) {
            lt_run_reject(run, line, index, NULL, LT_EFORMAT, "line is JSON but not an object");
            json_object_put(obj);
            continue;
        }
        lt_rec_clear(&rec);
        rec.json = obj;
        rec.line = line;
        rec.index = index;
        bool ok = true;
        json_object_object_foreach(obj, key, val)
        {
            if (val == NULL)
                continue; /* null: absent */
            if (json_object_is_type(val, json_type_string) &&
                strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val)) {
                /* "\u0000" inside a string: refuse rather than cut the value short */
                lt_run_reject(run, line, index, key, LT_EFORMAT,
                              "field %.60s holds a NUL character", key);
                ok = false;
                break;
            }
            char *v = value_text(val);
            if (v == NULL || lt_rec_add(&rec, key, v) != LT_OK) {
                fatal = lt_fail(why, LT_ENOMEM, "out of memory");
                ok = false;
                break;
            }
        }
        if (ok)
            fatal = lt_run_deliver(run, &rec, why);
        lt_rec_clear(&rec);
        rec.json = NULL;
        json_object_put(obj);
    }
    lt_rec_fini(&rec);
    json_tokener_free(tok);
    return fatal;
}
