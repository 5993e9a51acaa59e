/*
 * ycfg.c - YAML configuration trees (see ycfg.h).
 *
 * Built from libyaml's event stream rather than its document loader, so an alias can be
 * refused before it is expanded and every node gets its line and key path as it is made.
 */
#include "ycfg.h"
#include "fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_FILE (16u << 20)

struct lt_ynode {
    lt_ykind kind;
    int line;
    char *path;
    char *scalar;
    size_t n, cap;
    char **keys;
    int *key_lines; /* line of each key of a map (its value may start lines later) */
    lt_ynode **items;
    struct src *src; /* shared by every node of a tree; freed with the root */
};

struct src {
    char *file;
    char *dir;
};

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static void node_free(lt_ynode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->items[i]);
        if (n->keys != NULL)
            free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->key_lines);
    free(n->scalar);
    free(n->path);
    free(n);
}

void lt_ycfg_free(lt_ynode **root)
{
    if (root == NULL || *root == NULL)
        return;
    struct src *s = (*root)->src;
    node_free(*root);
    if (s != NULL) {
        free(s->file);
        free(s->dir);
        free(s);
    }
    *root = NULL;
}

static lt_ynode *node_new(lt_ykind kind, int line, const char *path, struct src *src)
{
    lt_ynode *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = line;
    n->src = src;
    n->path = dupstr(path);
    if (n->path == NULL) {
        free(n);
        return NULL;
    }
    return n;
}

static int node_add(lt_ynode *parent, char *key, int key_line, lt_ynode *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        lt_ynode **items = realloc(parent->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        parent->items = items;
        if (parent->kind == LT_Y_MAP) {
            char **keys = realloc(parent->keys, cap * sizeof *keys);
            if (keys == NULL)
                return -1;
            parent->keys = keys;
            int *lines = realloc(parent->key_lines, cap * sizeof *lines);
            if (lines == NULL)
                return -1;
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    parent->items[parent->n] = child;
    if (parent->kind == LT_Y_MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
    }
    parent->n++;
    return 0;
}

struct builder {
    yaml_parser_t parser;
    struct src *src;
    lt_why *why;
};

static lt_err bfail(struct builder *b, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* why = "file:line: [path: ]" + the formatted message, truncated to fit. */
static void vprefixed(lt_why *why, const char *file, int line, const char *path,
                      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void vprefixed(lt_why *why, const char *file, int line, const char *path,
                      const char *fmt, va_list ap)
{
    int used = path != NULL ? snprintf(why->msg, sizeof why->msg, "%s:%d: %s: ", file, line, path)
                            : snprintf(why->msg, sizeof why->msg, "%s:%d: ", file, line);
    if (used < 0 || (size_t)used >= sizeof why->msg)
        return;
    vsnprintf(why->msg + used, sizeof why->msg - (size_t)used, fmt, ap);
}

static lt_err bfail(struct builder *b, int line, const char *fmt, ...)
{
    if (b->why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vprefixed(b->why, b->src->file, line, NULL, fmt, ap);
        va_end(ap);
    }
    return LT_ECONFIG;
}

static lt_err next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        int line = (int)b->parser.problem_mark.line + 1;
        return bfail(b, line, "not valid YAML: %s",
                     b->parser.problem ? b->parser.problem : "parse error");
    }
    return LT_OK;
}

/* Build the node that starts with event ev (already read). */
static lt_err build(struct builder *b, yaml_event_t *ev, const char *path, int depth,
                    lt_ynode **out)
{
    int line = (int)ev->start_mark.line + 1;
    if (depth > MAX_DEPTH)
        return bfail(b, line, "nesting deeper than %d levels", MAX_DEPTH);
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return bfail(b, line, "%s: YAML aliases are not allowed in configuration",
                     *path ? path : "(top)");
    case YAML_SCALAR_EVENT: {
        lt_ynode *n = node_new(LT_Y_SCALAR, line, path, b->src);
        if (n == NULL)
            return lt_fail(b->why, LT_ENOMEM, "out of memory reading %s", b->src->file);
        n->scalar = malloc(ev->data.scalar.length + 1);
        if (n->scalar == NULL) {
            node_free(n);
            return lt_fail(b->why, LT_ENOMEM, "out of memory reading %s", b->src->file);
        }
        memcpy(n->scalar, ev->data.scalar.value, ev->data.scalar.length);
        n->scalar[ev->data.scalar.length] = '\0';
        if (strlen(n->scalar) != ev->data.scalar.length) {
            node_free(n);
            return bfail(b, line, "%s: NUL byte in a value", *path ? path : "(top)");
        }
        *out = n;
        return LT_OK;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool is_map = ev->type == YAML_MAPPING_START_EVENT;
        lt_ynode *n = node_new(is_map ? LT_Y_MAP : LT_Y_SEQ, line, path, b->src);
        if (n == NULL)
            return lt_fail(b->why, LT_ENOMEM, "out of memory reading %s", b->src->file);
        for (;;) {
            yaml_event_t kev;
            lt_err err = next_event(b, &kev);
            if (err != LT_OK) {
                node_free(n);
                return err;
            }
            if (kev.type == YAML_SEQUENCE_END_EVENT || kev.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&kev);
                break;
            }
            char *key = NULL;
            int key_line = 0;
            char child_path[512];
            yaml_event_t vev;
            if (is_map) {
                if (kev.type != YAML_SCALAR_EVENT) {
                    int kl = (int)kev.start_mark.line + 1;
                    yaml_event_delete(&kev);
                    node_free(n);
                    return bfail(b, kl, "%s: keys must be plain scalars", *path ? path : "(top)");
                }
                key = malloc(kev.data.scalar.length + 1);
                if (key == NULL) {
                    yaml_event_delete(&kev);
                    node_free(n);
                    return lt_fail(b->why, LT_ENOMEM, "out of memory");
                }
                memcpy(key, kev.data.scalar.value, kev.data.scalar.length);
                key[kev.data.scalar.length] = '\0';
                int kl = (int)kev.start_mark.line + 1;
                key_line = kl;
                yaml_event_delete(&kev);
                if (lt_ycfg_get(n, key) != NULL) {
                    lt_err e2 = bfail(b, kl, "%s%s%s: duplicate key", path, *path ? "." : "", key);
                    free(key);
                    node_free(n);
                    return e2;
                }
                snprintf(child_path, sizeof child_path, "%s%s%s", path, *path ? "." : "", key);
                err = next_event(b, &vev);
                if (err != LT_OK) {
                    free(key);
                    node_free(n);
                    return err;
                }
            } else {
                snprintf(child_path, sizeof child_path, "%s[%zu]", path, n->n);
                vev = kev;
            }
            lt_ynode *child = NULL;
            err = build(b, &vev, child_path, depth + 1, &child);
            yaml_event_delete(&vev);
            if (err != LT_OK) {
                free(key);
                node_free(n);
                return err;
            }
            if (node_add(n, key, key_line, child) != 0) {
                free(key);
                node_free(child);
                node_free(n);
                return lt_fail(b->why, LT_ENOMEM, "out of memory");
            }
        }
        *out = n;
        return LT_OK;
    }
    default:
        return bfail(b, line, "unexpected YAML structure");
    }
}

static lt_err parse_with(struct builder *b, lt_ynode **root)
{
    yaml_event_t ev;
    lt_ynode *top = NULL;
    lt_err err;
    /* STREAM-START, then DOCUMENT-START or STREAM-END (empty file). */
    if ((err = next_event(b, &ev)) != LT_OK)
        return err;
    yaml_event_delete(&ev);
    if ((err = next_event(b, &ev)) != LT_OK)
        return err;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        top = node_new(LT_Y_MAP, 1, "", b->src);
        if (top == NULL)
            return lt_fail(b->why, LT_ENOMEM, "out of memory");
        *root = top;
        return LT_OK;
    }
    yaml_event_delete(&ev);
    if ((err = next_event(b, &ev)) != LT_OK)
        return err;
    err = build(b, &ev, "", 0, &top);
    int line = (int)ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (err != LT_OK)
        return err;
    if (top->kind == LT_Y_SCALAR && top->scalar[0] == '\0') {
        top->kind = LT_Y_MAP; /* a document holding only comments */
        free(top->scalar);
        top->scalar = NULL;
    }
    if (top->kind != LT_Y_MAP) {
        node_free(top);
        return bfail(b, line, "the top level must be a map of settings");
    }
    /* DOCUMENT-END, then STREAM-END: a second document is refused. */
    if ((err = next_event(b, &ev)) != LT_OK) {
        node_free(top);
        return err;
    }
    yaml_event_delete(&ev);
    if ((err = next_event(b, &ev)) != LT_OK) {
        node_free(top);
        return err;
    }
    bool end = ev.type == YAML_STREAM_END_EVENT;
    line = (int)ev.start_mark.line + 1;
    yaml_event_delete(&ev);
    if (!end) {
        node_free(top);
        return bfail(b, line, "only one YAML document is allowed");
    }
    *root = top;
    return LT_OK;
}

static struct src *src_new(const char *label)
{
    struct src *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->file = dupstr(label);
    s->dir = dupstr(label);
    if (s->file == NULL || s->dir == NULL) {
        free(s->file);
        free(s->dir);
        free(s);
        return NULL;
    }
    char *slash = strrchr(s->dir, '/');
    if (slash == NULL)
        strcpy(s->dir, ".");
    else if (slash == s->dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return s;
}

lt_err lt_ycfg_parse(const char *label, const char *buf, size_t len, lt_ynode **root,
                     lt_why *why)
{
    struct builder b;
    memset(&b, 0, sizeof b);
    b.why = why;
    b.src = src_new(label);
    if (b.src == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (!yaml_parser_initialize(&b.parser)) {
        free(b.src->file);
        free(b.src->dir);
        free(b.src);
        return lt_fail(why, LT_ENOMEM, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)buf, len);
    lt_ynode *top = NULL;
    lt_err err = parse_with(&b, &top);
    yaml_parser_delete(&b.parser);
    if (err != LT_OK) {
        free(b.src->file);
        free(b.src->dir);
        free(b.src);
        return err;
    }
    *root = top;
    return LT_OK;
}

lt_err lt_ycfg_load(const char *path, lt_ynode **root, lt_why *why)
{
    char *buf = NULL;
    size_t len = 0;
    lt_err err = lt_file_read(path, MAX_FILE, &buf, &len, why);
    if (err == LT_ETOOBIG)
        return LT_ECONFIG; /* the contract: an oversized file is a bad config (why says so) */
    if (err != LT_OK)
        return err;
    err = lt_ycfg_parse(path, buf, len, root, why);
    free(buf);
    return err;
}

lt_ykind lt_ycfg_kind(const lt_ynode *n)
{
    return n->kind;
}

int lt_ycfg_line(const lt_ynode *n)
{
    return n->line;
}

const char *lt_ycfg_path(const lt_ynode *n)
{
    return n->path;
}

const char *lt_ycfg_file(const lt_ynode *n)
{
    return n->src->file;
}

const char *lt_ycfg_dir(const lt_ynode *n)
{
    return n->src->dir;
}

size_t lt_ycfg_len(const lt_ynode *n)
{
    return n == NULL || n->kind == LT_Y_SCALAR ? 0 : n->n;
}

const lt_ynode *lt_ycfg_at(const lt_ynode *n, size_t i)
{
    return n != NULL && i < lt_ycfg_len(n) ? n->items[i] : NULL;
}

const char *lt_ycfg_key_at(const lt_ynode *n, size_t i)
{
    return n != NULL && n->kind == LT_Y_MAP && i < n->n ? n->keys[i] : NULL;
}

const char *lt_ycfg_scalar(const lt_ynode *n)
{
    return n != NULL && n->kind == LT_Y_SCALAR ? n->scalar : NULL;
}

const lt_ynode *lt_ycfg_get(const lt_ynode *map, const char *key)
{
    if (map == NULL || map->kind != LT_Y_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->items[i];
    return NULL;
}

static void prefixed(lt_why *why, const char *file, int line, const char *path,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void prefixed(lt_why *why, const char *file, int line, const char *path,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprefixed(why, file, line, path, fmt, ap);
    va_end(ap);
}

lt_err lt_ycfg_fail(const lt_ynode *n, lt_why *why, const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vprefixed(why, n->src->file, n->line, *n->path ? n->path : "(top)", fmt, ap);
        va_end(ap);
    }
    return LT_ECONFIG;
}

lt_err lt_ycfg_check_keys(const lt_ynode *map, const char *const allowed[], lt_why *why)
{
    if (map == NULL)
        return LT_OK;
    if (map->kind != LT_Y_MAP)
        return lt_ycfg_fail(map, why, "expected a map of settings");
    for (size_t i = 0; i < map->n; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j] != NULL; j++)
            if (strcmp(map->keys[i], allowed[j]) == 0)
                ok = true;
        if (!ok) {
            char list[160] = "";
            size_t used = 0;
            for (size_t j = 0; allowed[j] != NULL && used < sizeof list; j++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "",
                                 allowed[j]);
                if (w < 0)
                    break;
                used += (size_t)w;
            }
            if (why != NULL) {
                char path[300];
                snprintf(path, sizeof path, "%s%s%s", map->path, *map->path ? "." : "",
                         map->keys[i]);
                prefixed(why, map->src->file, map->key_lines[i], path,
                         "unknown key '%s' (expected one of: %s)", map->keys[i], list);
            }
            return LT_ECONFIG;
        }
    }
    return LT_OK;
}

/* The scalar under key, or NULL when absent; LT_ECONFIG when present but not a scalar. */
static lt_err scalar_at(const lt_ynode *map, const char *key, const lt_ynode **node,
                        lt_why *why)
{
    const lt_ynode *v = lt_ycfg_get(map, key);
    if (v != NULL && v->kind != LT_Y_SCALAR)
        return lt_ycfg_fail(v, why, "expected a single value, got a %s",
                            v->kind == LT_Y_MAP ? "map" : "list");
    *node = v;
    return LT_OK;
}

static lt_err missing(const lt_ynode *map, const char *key, lt_why *why)
{
    return lt_ycfg_fail(map, why, "required key '%s' is missing", key);
}

lt_err lt_ycfg_str(const lt_ynode *map, const char *key, const char *dflt, const char **out,
                   lt_why *why)
{
    const lt_ynode *v = NULL;
    lt_err err = scalar_at(map, key, &v, why);
    if (err != LT_OK)
        return err;
    if (v == NULL) {
        if (dflt == NULL)
            return missing(map, key, why);
        *out = dflt;
        return LT_OK;
    }
    *out = v->scalar;
    return LT_OK;
}

lt_err lt_ycfg_int(const lt_ynode *map, const char *key, int64_t dflt, int64_t min, int64_t max,
                   int64_t *out, lt_why *why)
{
    const lt_ynode *v = NULL;
    lt_err err = scalar_at(map, key, &v, why);
    if (err != LT_OK)
        return err;
    if (v == NULL) {
        *out = dflt;
        return LT_OK;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v->scalar, &end, 10);
    if (v->scalar[0] == '\0' || *end != '\0' || errno != 0 || x < min || x > max)
        return lt_ycfg_fail(v, why, "expected an integer in %lld..%lld, got '%s'",
                            (long long)min, (long long)max, v->scalar);
    *out = x;
    return LT_OK;
}

lt_err lt_ycfg_bool(const lt_ynode *map, const char *key, bool dflt, bool *out, lt_why *why)
{
    const lt_ynode *v = NULL;
    lt_err err = scalar_at(map, key, &v, why);
    if (err != LT_OK)
        return err;
    if (v == NULL) {
        *out = dflt;
        return LT_OK;
    }
    if (strcmp(v->scalar, "true") == 0 || strcmp(v->scalar, "yes") == 0)
        *out = true;
    else if (strcmp(v->scalar, "false") == 0 || strcmp(v->scalar, "no") == 0)
        *out = false;
    else
        return lt_ycfg_fail(v, why, "expected true or false, got '%s'", v->scalar);
    return LT_OK;
}

lt_err lt_ycfg_filepath(const lt_ynode *map, const char *key, const char *dflt, char **out,
                        lt_why *why)
{
    const char *s = NULL;
    lt_err err = lt_ycfg_str(map, key, dflt, &s, why);
    if (err != LT_OK)
        return err;
    if (s[0] == '\0')
        return lt_ycfg_fail(map, why, "'%s' must not be empty", key);
    char *p;
    if (s[0] == '/') {
        p = dupstr(s);
    } else {
        size_t n = strlen(map->src->dir) + 1 + strlen(s) + 1;
        p = malloc(n);
        if (p != NULL)
            snprintf(p, n, "%s/%s", map->src->dir, s);
    }
    if (p == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *out = p;
    return LT_OK;
}

static lt_err container(const lt_ynode *map, const char *key, bool required, lt_ykind kind,
                        const lt_ynode **out, lt_why *why)
{
    const lt_ynode *v = lt_ycfg_get(map, key);
    if (v == NULL) {
        if (required)
            return missing(map, key, why);
        *out = NULL;
        return LT_OK;
    }
    /* "key:" with nothing after it is an empty scalar: treat it as an empty container. */
    if (v->kind == LT_Y_SCALAR && v->scalar[0] == '\0' && !required) {
        *out = NULL;
        return LT_OK;
    }
    if (v->kind != kind)
        return lt_ycfg_fail(v, why, "expected a %s", kind == LT_Y_MAP ? "map" : "list");
    *out = v;
    return LT_OK;
}

lt_err lt_ycfg_map(const lt_ynode *map, const char *key, bool required, const lt_ynode **out,
                   lt_why *why)
{
    return container(map, key, required, LT_Y_MAP, out, why);
}

lt_err lt_ycfg_seq(const lt_ynode *map, const char *key, bool required, const lt_ynode **out,
                   lt_why *why)
{
    return container(map, key, required, LT_Y_SEQ, out, why);
}

lt_err lt_ycfg_str_list(const lt_ynode *map, const char *key, const char ***out, size_t *n,
                        lt_why *why)
{
    const lt_ynode *seq;
    lt_err err = lt_ycfg_seq(map, key, false, &seq, why);
    if (err != LT_OK)
        return err;
    if (seq == NULL || seq->n == 0) {
        *out = NULL;
        *n = 0;
        return LT_OK;
    }
    const char **list = malloc(seq->n * sizeof *list);
    if (list == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < seq->n; i++) {
        if (seq->items[i]->kind != LT_Y_SCALAR) {
            free(list);
            return lt_ycfg_fail(seq->items[i], why, "expected a single value");
        }
        list[i] = seq->items[i]->scalar;
    }
    *out = list;
    *n = seq->n;
    return LT_OK;
}
