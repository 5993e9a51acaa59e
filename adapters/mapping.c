/*
 * mapping.c - loading a mapping file and running it over an input file (mapping.h).
 *
 * Loading resolves everything that can be resolved before a row is read: target paths
 * against the record type's descriptor, look-up tables, regexes, date formats, the topic
 * template's references and the natural key. A row then goes: reader record -> one value list
 * per var and field (source, transforms, validation; every failure noted, not just the
 * first) -> JSON object -> lt_json_to_pb -> packed payload, topic, key, message id.
 *
 * Vars and fields share one numbering ("slots"): vars first, then fields, in file order, so
 * a look-up's date and the topic may refer to either by name.
 */
#include "mapping.h"

#include "fileio.h"
#include "json.h"
#include "mapping_int.h"
#include "records.h"
#include "ycfg.h"

#include <assert.h>
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_NONE (-1)
#define SEG_EACH (-2)
#define MAX_FIXED_INDEX 1000

struct seg {
    char *name;
    int index; /* SEG_NONE, SEG_EACH ([]), or a fixed index */
    const ProtobufCFieldDescriptor *fd;
};

enum src_kind { SRC_REF = 1, SRC_CONST = 2 };

struct mfield {
    char *target; /* var name or target path as written */
    bool is_var;
    const lt_ynode *node;
    enum src_kind src;
    lt_field_ref ref;
    char *ref_text; /* name or XPath of ref */
    char *constant, *dflt;
    lt_transform *tf;
    size_t ntf;
    lt_validate v;
    struct seg *segs;
    size_t nsegs;
    int each; /* index of the [] segment, or -1 */
};

/* A topic template is literal text and {references}. */
struct tpart {
    char *text; /* literal, or the reference's name */
    bool ref;
    int slot; /* reference to a slot, or -1 for a source field of that name */
};

struct lt_mapping {
    lt_ynode *root; /* kept: validation value lists borrow its strings */
    char *name;
    const ProtobufCMessageDescriptor *desc;
    lt_mapping_policy policy;
    lt_reader_opts ropts;
    lt_fixed_field *layout;
    size_t nlayout;
    const char *edxml_kind; /* "edoc" / "status" for edXML inputs, else NULL */
    struct tpart *topic;
    size_t ntopic;
    int *key;
    size_t nkey;
    lt_mtable *tables;
    size_t ntables;
    struct mfield *f;
    size_t nf;
};

/* ---- loading ----------------------------------------------------------------------- */

static int slot_by_name(const lt_mapping *m, const char *name, size_t upto)
{
    for (size_t i = 0; i < upto && i < m->nf; i++)
        if (strcmp(m->f[i].target, name) == 0)
            return (int)i;
    return -1;
}

struct slot_ctx {
    const lt_mapping *m;
    size_t upto;
};

static int slot_of_cb(void *ctx, const char *name)
{
    struct slot_ctx *c = ctx;
    return slot_by_name(c->m, name, c->upto);
}

/* Resolve "a.b[].c" against desc. */
static lt_err parse_path(const lt_ynode *n, const ProtobufCMessageDescriptor *desc,
                         const char *path, struct mfield *f, lt_why *why)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err e = LT_OK;
    f->each = -1;
    const ProtobufCMessageDescriptor *d = desc;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (d == NULL) {
            e = lt_ycfg_fail(n, why, "'%s' goes past a field that is not a message", path);
            break;
        }
        int index = SEG_NONE;
        char *br = strchr(tok, '[');
        if (br) {
            char *end = NULL;
            if (br[1] == ']' && br[2] == 0) {
                index = SEG_EACH;
            } else {
                errno = 0;
                long v = strtol(br + 1, &end, 10);
                if (end == br + 1 || *end != ']' || end[1] != 0 || v < 0 || v > MAX_FIXED_INDEX) {
                    e = lt_ycfg_fail(n, why, "bad index in '%s' (use [] or [0..%d])", tok,
                                     MAX_FIXED_INDEX);
                    break;
                }
                index = (int)v;
            }
            *br = 0;
        }
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, tok);
        if (fd == NULL) {
            e = lt_ycfg_fail(n, why, "%s has no field '%s'", d->name, tok);
            break;
        }
        bool repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;
        if (index != SEG_NONE && !repeated) {
            e = lt_ycfg_fail(n, why, "'%s' is not a repeated field: no [] index", tok);
            break;
        }
        if (index == SEG_EACH) {
            if (f->each >= 0) {
                e = lt_ycfg_fail(n, why, "at most one [] per path");
                break;
            }
            f->each = (int)f->nsegs;
        }
        struct seg *s = realloc(f->segs, (f->nsegs + 1) * sizeof *s);
        if (s == NULL || (tok = strdup(tok)) == NULL) {
            if (s)
                f->segs = s;
            e = lt_fail(why, LT_ENOMEM, "out of memory");
            break;
        }
        f->segs = s;
        f->segs[f->nsegs++] = (struct seg){tok, index, fd};
        d = fd->type == PROTOBUF_C_TYPE_MESSAGE ? fd->descriptor : NULL;
    }
    free(copy);
    if (e)
        return e;
    if (f->nsegs == 0)
        return lt_ycfg_fail(n, why, "empty target path");
    for (size_t i = 0; i + 1 < f->nsegs; i++)
        if (f->segs[i].fd->label == PROTOBUF_C_LABEL_REPEATED && f->segs[i].index == SEG_NONE)
            return lt_ycfg_fail(n, why, "'%s' is repeated: write %s[] (one element per value) "
                                        "or %s[N]",
                                f->segs[i].name, f->segs[i].name, f->segs[i].name);
    const struct seg *leaf = &f->segs[f->nsegs - 1];
    if (leaf->fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return lt_ycfg_fail(n, why, "'%s' is a message (%s): map its fields instead", path,
                            leaf->fd->descriptor ? ((const ProtobufCMessageDescriptor *)
                                                        leaf->fd->descriptor)->name
                                                 : "?");
    if (leaf->fd->label == PROTOBUF_C_LABEL_REPEATED && leaf->index != SEG_NONE)
        return lt_ycfg_fail(n, why, "'%s' is a repeated scalar: it takes the whole value list, "
                                    "without an index",
                            leaf->name);
    if (leaf->fd->label == PROTOBUF_C_LABEL_REPEATED && f->each >= 0)
        return lt_ycfg_fail(n, why, "a repeated scalar cannot sit under []");
    return LT_OK;
}

static lt_err parse_source(const lt_ynode *sn, const lt_mapping *m, struct mfield *f,
                           lt_why *why)
{
    static const char *const keys[] = {"name", "column", "bytes", "xpath", "json", "const",
                                       "default", NULL};
    lt_err e = lt_ycfg_check_keys(sn, keys, why);
    if (e)
        return e;
    if (lt_ycfg_kind(sn) != LT_Y_MAP)
        return lt_ycfg_fail(sn, why, "expected a map such as {name: \"Họ và tên\"}");
    int kinds = 0;
    for (size_t i = 0; i < 6; i++)
        kinds += lt_ycfg_get(sn, keys[i]) != NULL;
    if (kinds != 1)
        return lt_ycfg_fail(sn, why, "a source needs exactly one of name, column, bytes, "
                                     "xpath, json, const");
    if (lt_ycfg_get(sn, "default") && (e = lt_ycfg_str(sn, "default", NULL,
                                                       (const char **)&f->dflt, why)) != LT_OK)
        return e;
    if (f->dflt && (f->dflt = strdup(f->dflt)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_reader_format fmt = m->ropts.format;
    const char *s;
    int64_t col;
    f->src = SRC_REF;
    if (lt_ycfg_get(sn, "const")) {
        if ((e = lt_ycfg_str(sn, "const", NULL, &s, why)) != LT_OK)
            return e;
        f->src = SRC_CONST;
        f->constant = strdup(s);
        return f->constant ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
    }
    if (lt_ycfg_get(sn, "column")) {
        if ((e = lt_ycfg_int(sn, "column", 0, 1, 100000, &col, why)) != LT_OK)
            return e;
        f->ref = (lt_field_ref){.by = LT_FIELD_COLUMN, .column = (size_t)col};
        return LT_OK;
    }
    if (lt_ycfg_get(sn, "bytes")) {
        const lt_ynode *b = lt_ycfg_get(sn, "bytes");
        static const char *const bkeys[] = {"offset", "width", NULL};
        int64_t off, w;
        if (fmt != LT_FORMAT_FIXED)
            return lt_ycfg_fail(b, why, "bytes: applies to fixed-width input only");
        if ((e = lt_ycfg_check_keys(b, bkeys, why)) != LT_OK ||
            (e = lt_ycfg_int(b, "offset", -1, 0, 1 << 20, &off, why)) != LT_OK ||
            (e = lt_ycfg_int(b, "width", -1, 1, 1 << 20, &w, why)) != LT_OK)
            return e;
        if (off < 0 || w < 1)
            return lt_ycfg_fail(b, why, "bytes needs offset and width");
        f->ref = (lt_field_ref){.by = LT_FIELD_BYTES, .offset = (size_t)off, .width = (size_t)w};
        return LT_OK;
    }
    const char *key = lt_ycfg_get(sn, "xpath") ? "xpath" : lt_ycfg_get(sn, "json") ? "json" : "name";
    if ((e = lt_ycfg_str(sn, key, NULL, &s, why)) != LT_OK)
        return e;
    if (strcmp(key, "xpath") == 0 && fmt != LT_FORMAT_EDXML)
        return lt_ycfg_fail(lt_ycfg_get(sn, key), why, "xpath: applies to edXML input only");
    if (strcmp(key, "json") == 0 && fmt != LT_FORMAT_JSONL)
        return lt_ycfg_fail(lt_ycfg_get(sn, key), why, "json: applies to jsonl input only");
    if (!*s)
        return lt_ycfg_fail(lt_ycfg_get(sn, key), why, "empty %s", key);
    if ((f->ref_text = strdup(s)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    f->ref = (lt_field_ref){.by = strcmp(key, "xpath") == 0 ? LT_FIELD_XPATH : LT_FIELD_NAME,
                            .name = f->ref_text};
    if (fmt == LT_FORMAT_FIXED && f->ref.by == LT_FIELD_NAME) {
        size_t i = 0;
        while (i < m->nlayout && strcmp(m->layout[i].name, s) != 0)
            i++;
        if (i == m->nlayout)
            return lt_ycfg_fail(lt_ycfg_get(sn, key), why, "no field '%.60s' in input.layout", s);
    }
    return LT_OK;
}

static lt_err parse_field(const lt_ynode *n, const char *target, bool is_var, lt_mapping *m,
                          struct mfield *f, lt_why *why)
{
    static const char *const keys[] = {"source", "transforms", "validate", NULL};
    lt_err e;
    f->node = n;
    f->is_var = is_var;
    f->each = -1;
    if ((f->target = strdup(target)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (lt_ycfg_kind(n) != LT_Y_MAP)
        return lt_ycfg_fail(n, why, "expected a map with source, transforms, validate");
    const lt_ynode *src = NULL, *tfs = NULL, *val = NULL;
    if ((e = lt_ycfg_check_keys(n, keys, why)) != LT_OK ||
        (e = lt_ycfg_map(n, "source", true, &src, why)) != LT_OK ||
        (e = lt_ycfg_seq(n, "transforms", false, &tfs, why)) != LT_OK ||
        (e = lt_ycfg_map(n, "validate", false, &val, why)) != LT_OK)
        return e;
    if (!is_var && (e = parse_path(n, m->desc, target, f, why)) != LT_OK)
        return e;
    if (is_var && (strchr(target, '.') || strchr(target, '[') || !*target))
        return lt_ycfg_fail(n, why, "a var name is one word (no '.' or '[')");
    if ((e = parse_source(src, m, f, why)) != LT_OK)
        return e;
    size_t nt = lt_ycfg_len(tfs);
    if (nt) {
        if ((f->tf = calloc(nt, sizeof *f->tf)) == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        struct slot_ctx sc = {m, (size_t)(f - m->f)};
        for (size_t i = 0; i < nt; i++) {
            e = lt_transform_parse(lt_ycfg_at(tfs, i), &f->tf[i], m->tables, m->ntables,
                                   slot_of_cb, &sc, why);
            f->ntf = i + 1;
            if (e)
                return e;
        }
    }
    return lt_validate_parse(val, &f->v, why);
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static lt_err parse_topic(const lt_ynode *n, lt_mapping *m, lt_why *why)
{
    const char *t = lt_ycfg_scalar(n);
    if (t == NULL || !*t)
        return lt_ycfg_fail(n, why, "expected a topic template such as 79.{district}.hotich.khaisinh");
    for (const char *p = t; *p;) {
        struct tpart part = {.slot = -1};
        size_t len;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (end == NULL || end == p + 1)
                return lt_ycfg_fail(n, why, "unclosed or empty {} in the topic template");
            len = (size_t)(end - p - 1);
            part.ref = true;
            part.text = strndup(p + 1, len);
            p = end + 1;
        } else {
            len = strcspn(p, "{");
            for (size_t i = 0; i < len; i++)
                if (!token_char(p[i]) && p[i] != '.')
                    return lt_ycfg_fail(n, why, "'%c' cannot appear in a topic (tokens are "
                                                "[A-Za-z0-9_-], separated by '.')",
                                        p[i]);
            part.text = strndup(p, len);
            p += len;
        }
        struct tpart *q = realloc(m->topic, (m->ntopic + 1) * sizeof *q);
        if (q == NULL || part.text == NULL) {
            free(part.text);
            if (q)
                m->topic = q;
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        m->topic = q;
        m->topic[m->ntopic++] = part;
    }
    if (strstr(t, "..") || t[0] == '.' || t[strlen(t) - 1] == '.')
        return lt_ycfg_fail(n, why, "empty token in the topic template");
    return LT_OK;
}

static lt_err parse_input(const lt_ynode *in, lt_mapping *m, lt_why *why)
{
    static const char *const keys[] = {"format", "encoding", "separator", "header", "layout",
                                       NULL};
    const char *fmt, *enc, *sep;
    bool header;
    lt_why w;
    lt_err e;
    if ((e = lt_ycfg_check_keys(in, keys, why)) != LT_OK ||
        (e = lt_ycfg_str(in, "format", NULL, &fmt, why)) != LT_OK ||
        (e = lt_ycfg_str(in, "encoding", "auto", &enc, why)) != LT_OK ||
        (e = lt_ycfg_str(in, "separator", "", &sep, why)) != LT_OK ||
        (e = lt_ycfg_bool(in, "header", true, &header, why)) != LT_OK)
        return e;
    if (strcmp(fmt, "edxml-status") == 0) {
        m->ropts.format = LT_FORMAT_EDXML;
        m->edxml_kind = "status";
    } else if (lt_reader_format_from_name(fmt, &m->ropts.format, &w) != LT_OK) {
        return lt_ycfg_fail(lt_ycfg_get(in, "format"), why,
                            "expected csv, fixed, edxml, edxml-status or jsonl, got '%.30s'", fmt);
    } else if (m->ropts.format == LT_FORMAT_EDXML) {
        m->edxml_kind = "edoc";
    }
    if (strcmp(enc, "auto") == 0)
        m->ropts.charset = LT_CHARSET_AUTO;
    else if (lt_charset_from_name(enc, &m->ropts.charset, &w) != LT_OK)
        return lt_ycfg_fail(lt_ycfg_get(in, "encoding"), why, "%s", w.msg);
    if (!*sep)
        m->ropts.separator = 0;
    else if (strcmp(sep, ",") == 0 || strcmp(sep, ";") == 0)
        m->ropts.separator = sep[0];
    else if (strcmp(sep, "\t") == 0 || strcmp(sep, "tab") == 0)
        m->ropts.separator = '\t';
    else
        return lt_ycfg_fail(lt_ycfg_get(in, "separator"), why,
                            "expected \",\", \";\" or tab, got '%.10s'", sep);
    if (m->ropts.format != LT_FORMAT_CSV && (lt_ycfg_get(in, "separator") || lt_ycfg_get(in, "header")))
        return lt_ycfg_fail(in, why, "separator and header apply to csv input only");
    m->ropts.no_header = !header;
    const lt_ynode *lay = NULL;
    if ((e = lt_ycfg_seq(in, "layout", m->ropts.format == LT_FORMAT_FIXED, &lay, why)) != LT_OK)
        return e;
    if (lay && m->ropts.format != LT_FORMAT_FIXED)
        return lt_ycfg_fail(lay, why, "layout applies to fixed input only");
    size_t nl = lt_ycfg_len(lay);
    if (m->ropts.format == LT_FORMAT_FIXED && nl == 0)
        return lt_ycfg_fail(lay ? lay : in, why, "fixed input needs a layout of {name, offset, width}");
    if (nl && (m->layout = calloc(nl, sizeof *m->layout)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < nl; i++) {
        static const char *const lkeys[] = {"name", "offset", "width", NULL};
        const lt_ynode *it = lt_ycfg_at(lay, i);
        const char *name;
        int64_t off, wd;
        if (lt_ycfg_kind(it) != LT_Y_MAP)
            return lt_ycfg_fail(it, why, "expected {name, offset, width}");
        if ((e = lt_ycfg_check_keys(it, lkeys, why)) != LT_OK ||
            (e = lt_ycfg_str(it, "name", NULL, &name, why)) != LT_OK ||
            (e = lt_ycfg_int(it, "offset", -1, 0, 1 << 20, &off, why)) != LT_OK ||
            (e = lt_ycfg_int(it, "width", -1, 1, 1 << 20, &wd, why)) != LT_OK)
            return e;
        if (off < 0 || wd < 1)
            return lt_ycfg_fail(it, why, "a layout field needs offset and width");
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->layout[j].name, name) == 0)
                return lt_ycfg_fail(it, why, "layout field '%.40s' given twice", name);
        m->layout[i] = (lt_fixed_field){name, (size_t)off, (size_t)wd};
        m->nlayout = i + 1;
    }
    m->ropts.fields = m->layout;
    m->ropts.nfields = m->nlayout;
    return LT_OK;
}

static lt_err parse_lookups(const lt_ynode *lk, lt_mapping *m, lt_why *why)
{
    size_t n = lt_ycfg_len(lk);
    if (n == 0)
        return LT_OK;
    if ((m->tables = calloc(n, sizeof *m->tables)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        static const char *const keys[] = {"file", "key", "value", "effective", "note", NULL};
        const lt_ynode *t = lt_ycfg_at(lk, i);
        char *path = NULL;
        const char *k, *v, *eff, *note;
        lt_err e;
        if (lt_ycfg_kind(t) != LT_Y_MAP)
            return lt_ycfg_fail(t, why, "expected {file, key, value, effective, note}");
        if ((e = lt_ycfg_check_keys(t, keys, why)) != LT_OK ||
            (e = lt_ycfg_str(t, "key", NULL, &k, why)) != LT_OK ||
            (e = lt_ycfg_str(t, "value", NULL, &v, why)) != LT_OK ||
            (e = lt_ycfg_str(t, "effective", "", &eff, why)) != LT_OK ||
            (e = lt_ycfg_str(t, "note", "", &note, why)) != LT_OK ||
            (e = lt_ycfg_filepath(t, "file", NULL, &path, why)) != LT_OK)
            return e;
        m->ntables = i + 1;
        if ((m->tables[i].name = strdup(lt_ycfg_key_at(lk, i))) == NULL) {
            free(path);
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        lt_why w;
        e = lt_mtable_load(&m->tables[i], path, k, v, *eff ? eff : NULL, *note ? note : NULL, &w);
        free(path);
        if (e == LT_ENOMEM)
            return lt_fail(why, e, "%s", w.msg);
        if (e)
            return lt_ycfg_fail(lt_ycfg_get(t, "file"), why, "%s", w.msg);
    }
    return LT_OK;
}

static lt_err load_tree(lt_ynode *root, const char *label, lt_mapping **out, lt_why *why)
{
    static const char *const top[] = {"mapping", "input", "lookups", "vars", "fields", NULL};
    static const char *const mkeys[] = {"name", "description", "record_type", "topic", "key",
                                        "policy", NULL};
    lt_mapping *m = calloc(1, sizeof *m);
    if (m == NULL) {
        lt_ycfg_free(&root);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    m->root = root;
    const lt_ynode *mp = NULL, *in = NULL, *lk = NULL, *vars = NULL, *fields = NULL;
    const char *rt, *name, *policy;
    lt_err e;
    if ((e = lt_ycfg_check_keys(root, top, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "mapping", true, &mp, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "input", true, &in, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "lookups", false, &lk, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "vars", false, &vars, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "fields", true, &fields, why)) != LT_OK ||
        (e = lt_ycfg_check_keys(mp, mkeys, why)) != LT_OK ||
        (e = lt_ycfg_str(mp, "record_type", NULL, &rt, why)) != LT_OK ||
        (e = lt_ycfg_str(mp, "name", label, &name, why)) != LT_OK ||
        (e = lt_ycfg_str(mp, "policy", "publish_good", &policy, why)) != LT_OK)
        goto fail;
    if ((m->name = strdup(name)) == NULL) {
        e = lt_fail(why, LT_ENOMEM, "out of memory");
        goto fail;
    }
    if ((m->desc = lt_records_find(rt)) == NULL) {
        e = lt_ycfg_fail(lt_ycfg_get(mp, "record_type"), why,
                         "'%.80s' is not a record type (full names such as "
                         "lienthong.v1.records.BirthRegistration)",
                         rt);
        goto fail;
    }
    if (strcmp(policy, "publish_good") == 0)
        m->policy = LT_MAPPING_PUBLISH_GOOD;
    else if (strcmp(policy, "reject_file") == 0)
        m->policy = LT_MAPPING_REJECT_FILE;
    else {
        e = lt_ycfg_fail(lt_ycfg_get(mp, "policy"), why,
                         "expected publish_good or reject_file, got '%.30s'", policy);
        goto fail;
    }
    if ((e = parse_input(in, m, why)) != LT_OK || (e = parse_lookups(lk, m, why)) != LT_OK)
        goto fail;
    size_t nv = lt_ycfg_len(vars), nfl = lt_ycfg_len(fields);
    if (nfl == 0) {
        e = lt_ycfg_fail(fields, why, "no fields to map");
        goto fail;
    }
    if ((m->f = calloc(nv + nfl, sizeof *m->f)) == NULL) {
        e = lt_fail(why, LT_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nv + nfl; i++) {
        bool var = i < nv;
        const lt_ynode *src = var ? vars : fields;
        size_t k = var ? i : i - nv;
        const char *target = lt_ycfg_key_at(src, k);
        m->nf = i + 1;
        if (slot_by_name(m, target, i) >= 0) {
            e = lt_ycfg_fail(lt_ycfg_at(src, k), why, "'%s' is both a var and a field", target);
            goto fail;
        }
        if ((e = parse_field(lt_ycfg_at(src, k), target, var, m, &m->f[i], why)) != LT_OK)
            goto fail;
    }
    const lt_ynode *tn = lt_ycfg_get(mp, "topic");
    if (tn == NULL) {
        e = lt_ycfg_fail(mp, why, "missing key 'topic'");
        goto fail;
    }
    if ((e = parse_topic(tn, m, why)) != LT_OK)
        goto fail;
    for (size_t i = 0; i < m->ntopic; i++)
        if (m->topic[i].ref)
            m->topic[i].slot = slot_by_name(m, m->topic[i].text, m->nf);
    const char **keys = NULL;
    size_t nk = 0;
    if ((e = lt_ycfg_str_list(mp, "key", &keys, &nk, why)) != LT_OK)
        goto fail;
    if (nk == 0) {
        free(keys);
        e = lt_ycfg_fail(lt_ycfg_get(mp, "key") ? lt_ycfg_get(mp, "key") : mp, why,
                         "key: needs the natural key fields, e.g. [registration_number]");
        goto fail;
    }
    if ((m->key = calloc(nk, sizeof *m->key)) == NULL) {
        free(keys);
        e = lt_fail(why, LT_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nk; i++) {
        if ((m->key[i] = slot_by_name(m, keys[i], m->nf)) < 0) {
            e = lt_ycfg_fail(lt_ycfg_get(mp, "key"), why, "key '%.60s' is no var or field",
                             keys[i]);
            free(keys);
            goto fail;
        }
        m->nkey = i + 1;
    }
    free(keys);
    *out = m;
    return LT_OK;
fail:
    lt_mapping_destroy(&m);
    return e;
}

lt_err lt_mapping_load(const char *path, lt_mapping **out, lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_load(path, &root, why);
    if (e)
        return e;
    const char *base = strrchr(path, '/');
    return load_tree(root, base ? base + 1 : path, out, why);
}

lt_err lt_mapping_parse(const char *label, const char *buf, size_t len, lt_mapping **out,
                        lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_parse(label, buf, len, &root, why);
    if (e)
        return e;
    return load_tree(root, label, out, why);
}

void lt_mapping_destroy(lt_mapping **mp)
{
    lt_mapping *m = mp ? *mp : NULL;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nf; i++) {
        struct mfield *f = &m->f[i];
        free(f->target);
        free(f->ref_text);
        free(f->constant);
        free(f->dflt);
        for (size_t k = 0; k < f->ntf; k++)
            lt_transform_fini(&f->tf[k]);
        free(f->tf);
        lt_validate_fini(&f->v);
        for (size_t k = 0; k < f->nsegs; k++)
            free(f->segs[k].name);
        free(f->segs);
    }
    free(m->f);
    for (size_t i = 0; i < m->ntables; i++)
        lt_mtable_fini(&m->tables[i]);
    free(m->tables);
    for (size_t i = 0; i < m->ntopic; i++)
        free(m->topic[i].text);
    free(m->topic);
    free(m->key);
    free(m->layout);
    free(m->name);
    lt_ycfg_free(&m->root);
    free(m);
    *mp = NULL;
}

const lt_reader_opts *lt_mapping_reader_opts(const lt_mapping *m)
{
    return &m->ropts;
}

const char *lt_mapping_record_type(const lt_mapping *m)
{
    return m->desc->name;
}

const char *lt_mapping_name(const lt_mapping *m)
{
    return m->name;
}

lt_mapping_policy lt_mapping_get_policy(const lt_mapping *m)
{
    return m->policy;
}

/* ---- message ids ------------------------------------------------------------------- */

void lt_mapping_message_id(const char *agency_id, const char *record_type, const char *key,
                           const uint8_t *payload, size_t payload_len,
                           uint8_t out[LT_ENV_MESSAGE_ID_LEN])
{
    static const char domain[] = "lienthong/v1 adapt";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    /* SHA-256 cannot fail on a live context; a failed allocation must not yield a
     * constant id, so assert rather than fall back */
    assert(c != NULL);
    int ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, domain, sizeof domain) &&
             EVP_DigestUpdate(c, agency_id, strlen(agency_id) + 1) &&
             EVP_DigestUpdate(c, record_type, strlen(record_type) + 1) &&
             EVP_DigestUpdate(c, key, strlen(key) + 1) &&
             EVP_DigestUpdate(c, payload, payload_len) && EVP_DigestFinal_ex(c, md, &mdl);
    EVP_MD_CTX_free(c);
    assert(ok && mdl >= LT_ENV_MESSAGE_ID_LEN);
    memcpy(out, md, LT_ENV_MESSAGE_ID_LEN);
    out[6] = (uint8_t)((out[6] & 0x0F) | 0x80); /* version 8 */
    out[8] = (uint8_t)((out[8] & 0x3F) | 0x80); /* variant 10 */
}

/* ---- running ----------------------------------------------------------------------- */

/* A record kept back until the end of the file (policy reject_file). */
struct held {
    char *topic, *key, *json;
    uint8_t *payload;
    size_t payload_len, line, index;
    uint8_t id[LT_ENV_MESSAGE_ID_LEN];
};

struct run {
    const lt_mapping *m;
    const char *agency;
    const char *file;
    const lt_mapping_sink *sink;
    lt_mapping_stats st;
    lt_mvals *slots;
    struct held *held;
    size_t nheld, capheld;
    bool stop;
    lt_err err;
    lt_why why;
    size_t last_rejected_index; /* reader rejects: count each row once */
};

static void emit_reject(struct run *r, size_t line, size_t index, const char *field,
                        const char *value, lt_err code, const char *reason)
{
    lt_map_reject rej = {r->file, line, index, field ? field : "", value ? value : "", code,
                         reason};
    r->st.issues++;
    r->sink->reject(r->sink->ctx, &rej);
}

static const char *date_of(void *ctx, int slot)
{
    struct run *r = ctx;
    if (slot < 0 || r->slots[slot].n == 0)
        return NULL;
    return r->slots[slot].v[0];
}

static const char *first(const lt_mvals *v)
{
    return v->n ? v->v[0] : "";
}

/* A value of a scalar field of type fd->type as JSON for lt_json_to_pb. */
static json_object *leaf_json(const ProtobufCFieldDescriptor *fd, const char *s, lt_why *why)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "có"))
            return json_object_new_boolean(1);
        if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "không"))
            return json_object_new_boolean(0);
        lt_fail(why, LT_EVALIDATE, "'%.40s' is not a boolean (true/false, 1/0, có/không)", s);
        return NULL;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (end == s || *end || errno) {
            lt_fail(why, LT_EVALIDATE, "'%.40s' is not a number", s);
            return NULL;
        }
        return json_object_new_double(d);
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || *end || errno || v < INT32_MIN || v > (long long)UINT32_MAX) {
            lt_fail(why, LT_EVALIDATE, "'%.40s' is not a 32-bit integer", s);
            return NULL;
        }
        return json_object_new_int64(v);
    }
    default: /* strings, bytes (base64), enums (names), 64-bit integers (as strings) */
        return json_object_new_string(s);
    }
}

/* Place value at f's path with the [] segment at element k. */
static lt_err put(json_object *root, const struct mfield *f, size_t k, json_object *val,
                  lt_why *why)
{
    json_object *cur = root;
    for (size_t i = 0; i + 1 < f->nsegs; i++) {
        const struct seg *s = &f->segs[i];
        json_object *next = NULL;
        if (s->fd->label == PROTOBUF_C_LABEL_REPEATED) {
            json_object *arr = NULL;
            if (!json_object_object_get_ex(cur, s->name, &arr)) {
                if ((arr = json_object_new_array()) == NULL)
                    goto nomem;
                json_object_object_add(cur, s->name, arr);
            }
            size_t idx = s->index == SEG_EACH ? k : (size_t)s->index;
            while (json_object_array_length(arr) <= idx) {
                json_object *o = json_object_new_object();
                if (o == NULL)
                    goto nomem;
                json_object_array_add(arr, o);
            }
            next = json_object_array_get_idx(arr, idx);
        } else if (!json_object_object_get_ex(cur, s->name, &next)) {
            if ((next = json_object_new_object()) == NULL)
                goto nomem;
            json_object_object_add(cur, s->name, next);
        }
        cur = next;
    }
    json_object_object_add(cur, f->segs[f->nsegs - 1].name, val);
    return LT_OK;
nomem:
    json_object_put(val);
    return lt_fail(why, LT_ENOMEM, "out of memory");
}

/* Put f's values into root. LT_EVALIDATE with the reason (and the bad value in bad). */
static lt_err place(json_object *root, const struct mfield *f, const lt_mvals *vs, char *bad,
                    size_t cap, lt_why *why)
{
    const ProtobufCFieldDescriptor *leaf = f->segs[f->nsegs - 1].fd;
    size_t nonempty = 0;
    for (size_t i = 0; i < vs->n; i++)
        nonempty += vs->v[i][0] != 0;
    if (nonempty == 0)
        return LT_OK; /* absent or empty: the field keeps its default */
    if (leaf->label == PROTOBUF_C_LABEL_REPEATED) {
        json_object *arr = json_object_new_array();
        if (arr == NULL)
            return lt_fail(why, LT_ENOMEM, "out of memory");
        for (size_t i = 0; i < vs->n; i++) {
            if (!vs->v[i][0])
                continue;
            json_object *j = leaf_json(leaf, vs->v[i], why);
            if (j == NULL) {
                snprintf(bad, cap, "%s", vs->v[i]);
                json_object_put(arr);
                return LT_EVALIDATE;
            }
            json_object_array_add(arr, j);
        }
        return put(root, f, 0, arr, why);
    }
    if (f->each < 0 && vs->n > 1) {
        snprintf(bad, cap, "%s", vs->v[0]);
        return lt_fail(why, LT_EVALIDATE, "%zu values for a single field (map it to a [] path)",
                       vs->n);
    }
    for (size_t k = 0; k < vs->n; k++) {
        if (!vs->v[k][0])
            continue;
        json_object *j = leaf_json(leaf, vs->v[k], why);
        if (j == NULL) {
            snprintf(bad, cap, "%s", vs->v[k]);
            return LT_EVALIDATE;
        }
        lt_err e = put(root, f, k, j, why);
        if (e)
            return e;
    }
    return LT_OK;
}

struct strbuf {
    char *s;
    size_t n, cap;
};

static bool sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (p == NULL)
            return false;
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return true;
}

/* The row's topic, or a reject reason. */
static lt_err make_topic(struct run *r, lt_record *rec, char **out, char *bad, size_t cap,
                         lt_why *why)
{
    const lt_mapping *m = r->m;
    struct strbuf b = {0};
    for (size_t i = 0; i < m->ntopic; i++) {
        const struct tpart *p = &m->topic[i];
        const char *v = p->text;
        if (p->ref) {
            if (p->slot >= 0) {
                v = first(&r->slots[p->slot]);
            } else {
                lt_field_ref ref = {.by = LT_FIELD_NAME, .name = p->text};
                lt_why w;
                if (lt_record_get(rec, &ref, &v, &w) != LT_OK)
                    v = "";
            }
            size_t n = strlen(v), k = 0;
            while (k < n && token_char(v[k]))
                k++;
            if (n == 0 || k != n) {
                free(b.s);
                snprintf(bad, cap, "%s", v);
                return lt_fail(why, LT_EVALIDATE,
                               "topic part {%s} = '%.40s' is not a topic token ([A-Za-z0-9_-]+)",
                               p->text, v);
            }
        }
        if (!sb_add(&b, v, strlen(v))) {
            free(b.s);
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
    }
    if (b.n > LT_ENV_TOPIC_MAX) {
        free(b.s);
        snprintf(bad, cap, "%s", "");
        return lt_fail(why, LT_EVALIDATE, "topic longer than %d bytes", LT_ENV_TOPIC_MAX);
    }
    *out = b.s;
    return LT_OK;
}

static lt_err deliver(struct run *r, const struct held *h)
{
    lt_mapped mp = {.file = r->file, .line = h->line, .index = h->index, .topic = h->topic,
                    .record_type = r->m->desc->name, .key = h->key, .json = h->json,
                    .payload = h->payload, .payload_len = h->payload_len};
    memcpy(mp.message_id, h->id, sizeof mp.message_id);
    r->st.records++;
    if (r->sink->record(r->sink->ctx, &mp) != 0) {
        r->stop = true;
        return LT_ECLOSED;
    }
    return LT_OK;
}

static void held_free(struct held *h)
{
    free(h->topic);
    free(h->key);
    free(h->json);
    free(h->payload);
}

/* Map one reader record. Returns non-zero to stop the reader. */
static int on_record(void *ctx, lt_record *rec)
{
    struct run *r = ctx;
    const lt_mapping *m = r->m;
    size_t line = lt_record_line(rec), index = lt_record_index(rec);
    size_t issues0 = r->st.issues;
    char bad[160];
    lt_why w;
    r->st.rows++;

    if (m->edxml_kind) {
        lt_field_ref kref = {.by = LT_FIELD_NAME, .name = "kind"};
        const char *kind = "";
        if (lt_record_get(rec, &kref, &kind, &w) != LT_OK || strcmp(kind, m->edxml_kind) != 0) {
            emit_reject(r, line, index, "", "", LT_EFORMAT,
                        strcmp(m->edxml_kind, "status") == 0
                            ? "expected an edXML status message (MessageStatus); this is a "
                              "package"
                            : "expected an edXML package (MessageHeader); this is a status "
                              "message");
            r->st.rejected++;
            return 0;
        }
    }
    for (size_t i = 0; i < m->nf; i++) {
        const struct mfield *f = &m->f[i];
        lt_mvals *vs = &r->slots[i];
        lt_mvals_clear(vs);
        const char *v = NULL;
        bool ok = true;
        if (f->src == SRC_CONST) {
            v = f->constant;
        } else {
            lt_err e = lt_record_get(rec, &f->ref, &v, &w);
            if (e == LT_ENOTFOUND && (m->ropts.format == LT_FORMAT_CSV ||
                                      m->ropts.format == LT_FORMAT_FIXED)) {
                char reason[LT_WHY_MAX];
                if (f->ref.by == LT_FIELD_COLUMN)
                    snprintf(reason, sizeof reason, "the row has no column %zu", f->ref.column);
                else
                    snprintf(reason, sizeof reason, "no column '%.80s' in this file",
                             f->ref_text ? f->ref_text : "?");
                emit_reject(r, line, index, f->target, "", LT_EFORMAT, reason);
                ok = false;
            } else if (e == LT_ENOTFOUND) {
                v = NULL;
            } else if (e) {
                emit_reject(r, line, index, f->target, "", e, w.msg);
                ok = false;
            }
        }
        if (!ok)
            continue;
        if ((v == NULL || *v == 0) && f->dflt)
            v = f->dflt;
        if (v != NULL) {
            char *c = strdup(v);
            if (c == NULL || !lt_mvals_push(vs, c)) {
                r->err = lt_fail(&r->why, LT_ENOMEM, "out of memory");
                return 1;
            }
        }
        for (size_t t = 0; t < f->ntf && ok; t++) {
            lt_err e = lt_transform_apply(&f->tf[t], vs, date_of, r, bad, sizeof bad, &w);
            if (e == LT_ENOMEM) {
                r->err = lt_fail(&r->why, e, "out of memory");
                return 1;
            }
            if (e) {
                emit_reject(r, line, index, f->target, bad, e, w.msg);
                lt_mvals_clear(vs);
                ok = false;
            }
        }
        if (ok && lt_validate_check(&f->v, vs, bad, sizeof bad, &w) != LT_OK)
            emit_reject(r, line, index, f->target, bad, LT_EVALIDATE, w.msg);
    }
    for (size_t k = 0; k < m->nkey; k++) {
        const struct mfield *f = &m->f[m->key[k]];
        if (first(&r->slots[m->key[k]])[0] == 0)
            emit_reject(r, line, index, f->target, "", LT_EVALIDATE,
                        "part of the natural key, must not be empty");
    }
    if (r->st.issues != issues0) {
        r->st.rejected++;
        return 0;
    }

    /* build the record */
    struct held h = {.line = line, .index = index};
    json_object *root = json_object_new_object();
    ProtobufCMessage *msg = NULL;
    lt_err e = root ? LT_OK : LT_ENOMEM;
    for (size_t i = 0; e == LT_OK && i < m->nf; i++) {
        if (m->f[i].is_var)
            continue;
        e = place(root, &m->f[i], &r->slots[i], bad, sizeof bad, &w);
        if (e == LT_EVALIDATE)
            emit_reject(r, line, index, m->f[i].target, bad, e, w.msg);
    }
    if (e == LT_OK && (e = lt_json_to_pb(m->desc, root, &msg, &w)) != LT_OK && e != LT_ENOMEM)
        emit_reject(r, line, index, "", "", LT_EVALIDATE, w.msg);
    json_object_put(root);
    if (e == LT_OK) {
        h.payload_len = protobuf_c_message_get_packed_size(msg);
        if ((h.payload = malloc(h.payload_len ? h.payload_len : 1)) == NULL)
            e = LT_ENOMEM;
        else
            protobuf_c_message_pack(msg, h.payload);
    }
    if (e == LT_OK && r->sink->want_json && (e = lt_json_pb_to_string(msg, &h.json, &w)) != LT_OK &&
        e != LT_ENOMEM)
        emit_reject(r, line, index, "", "", e, w.msg);
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (e == LT_OK && (e = make_topic(r, rec, &h.topic, bad, sizeof bad, &w)) == LT_EVALIDATE)
        emit_reject(r, line, index, "topic", bad, e, w.msg);
    if (e == LT_OK) {
        struct strbuf kb = {0};
        for (size_t k = 0; k < m->nkey && e == LT_OK; k++) {
            const char *kv = first(&r->slots[m->key[k]]);
            if ((k && !sb_add(&kb, "|", 1)) || !sb_add(&kb, kv, strlen(kv)))
                e = LT_ENOMEM;
        }
        h.key = kb.s;
        if (e == LT_OK)
            lt_mapping_message_id(r->agency, m->desc->name, h.key, h.payload, h.payload_len,
                                  h.id);
    }
    if (e == LT_ENOMEM) {
        held_free(&h);
        r->err = lt_fail(&r->why, LT_ENOMEM, "out of memory");
        return 1;
    }
    if (e) {
        held_free(&h);
        r->st.rejected++;
        return 0;
    }
    if (m->policy == LT_MAPPING_PUBLISH_GOOD) {
        e = deliver(r, &h);
        held_free(&h);
        return e ? 1 : 0;
    }
    if (r->nheld == r->capheld) {
        size_t cap = r->capheld ? r->capheld * 2 : 64;
        struct held *p = realloc(r->held, cap * sizeof *p);
        if (p == NULL) {
            held_free(&h);
            r->err = lt_fail(&r->why, LT_ENOMEM, "out of memory");
            return 1;
        }
        r->held = p, r->capheld = cap;
    }
    r->held[r->nheld++] = h;
    return 0;
}

static void on_reader_reject(void *ctx, const lt_reject *rej)
{
    struct run *r = ctx;
    /* a row the reader could not read is a bad row; a file-level reject is not a row */
    if (rej->record > 0 && rej->record != r->last_rejected_index) {
        r->st.rows++;
        r->st.rejected++;
        r->last_rejected_index = rej->record;
    }
    emit_reject(r, rej->line, rej->record, rej->field, "", rej->code, rej->reason);
}

lt_err lt_mapping_run(const lt_mapping *m, const char *agency_id, const char *file,
                      const uint8_t *data, size_t len, const lt_mapping_sink *sink,
                      lt_mapping_stats *stats, lt_why *why)
{
    struct run r = {.m = m, .agency = agency_id, .file = file, .sink = sink};
    if ((r.slots = calloc(m->nf, sizeof *r.slots)) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_reader_sink rs = {on_record, on_reader_reject, &r};
    lt_reader_stats rst = {0};
    lt_why w;
    lt_err e = lt_reader_run(&m->ropts, file, data, len, &rs, &rst, &w);
    r.st.charset = rst.charset;
    r.st.charset_score = rst.charset_score;
    if (r.err) {
        e = r.err;
        *why = r.why;
    } else if (e == LT_ECLOSED && r.stop) {
        lt_fail(why, LT_ECLOSED, "%s: stopped by the record callback", file);
    } else if (e) {
        lt_fail(why, e, "%s", w.msg);
    }
    bool file_bad = e != LT_OK || r.st.rejected > 0;
    if (m->policy == LT_MAPPING_REJECT_FILE && r.err == LT_OK) {
        if (file_bad) {
            char reason[LT_WHY_MAX];
            snprintf(reason, sizeof reason,
                     "not published: the file was rejected (policy reject_file; %zu bad "
                     "row%s)",
                     r.st.rejected, r.st.rejected == 1 ? "" : "s");
            for (size_t i = 0; i < r.nheld; i++) {
                emit_reject(&r, r.held[i].line, r.held[i].index, "", "", LT_EVALIDATE, reason);
                r.st.rejected++;
            }
            if (e == LT_OK)
                e = lt_fail(why, LT_EVALIDATE, "%s: %zu bad row%s, file rejected", file,
                            r.st.rejected - r.nheld, r.st.rejected - r.nheld == 1 ? "" : "s");
        } else {
            for (size_t i = 0; i < r.nheld && e == LT_OK; i++)
                if ((e = deliver(&r, &r.held[i])) != LT_OK)
                    lt_fail(why, e, "%s: stopped by the record callback", file);
        }
    }
    for (size_t i = 0; i < r.nheld; i++)
        held_free(&r.held[i]);
    free(r.held);
    for (size_t i = 0; i < m->nf; i++)
        lt_mvals_clear(&r.slots[i]);
    free(r.slots);
    if (stats)
        *stats = r.st;
    return e;
}

lt_err lt_mapping_run_file(const lt_mapping *m, const char *agency_id, const char *path,
                           const lt_mapping_sink *sink, lt_mapping_stats *stats, lt_why *why)
{
    char *buf = NULL;
    size_t n = 0;
    lt_err e = lt_file_read(path, (size_t)1 << 31, &buf, &n, why);
    if (e) {
        lt_map_reject rej = {path, 0, 0, "", "", e, why->msg};
        sink->reject(sink->ctx, &rej);
        if (stats)
            *stats = (lt_mapping_stats){.issues = 1};
        return e;
    }
    e = lt_mapping_run(m, agency_id, path, (const uint8_t *)buf, n, sink, stats, why);
    free(buf);
    return e;
}
