/*
 * router.c - topic validation and the pattern trie (see router.h).
 *
 * The trie has one level per token. A node holds its literal children (sorted, binary
 * searched), a '*' child, the values of patterns that end at it, and the values of
 * patterns that end with '>' right after it. Matching a topic of n tokens walks at most
 * two branches per level (the literal and the '*'), collecting values into the caller's
 * array, sorted and without duplicates. Nothing is allocated and nothing is written but
 * the caller's array, so matches may run concurrently.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

typedef struct vals {
    uint32_t *v; /* sorted, unique */
    size_t n, cap;
} vals;

typedef struct node node;

typedef struct child {
    char *tok;
    size_t len;
    node *n;
} child;

struct node {
    child *kids; /* sorted by (len, bytes) */
    size_t nkids, cap;
    node *star;
    vals here; /* patterns ending at this node */
    vals gt;   /* patterns "...this node.>" */
};

struct lt_router {
    node root;
    size_t count;
};

typedef struct tok {
    const char *p;
    size_t len;
} tok;

/* ---- validation --------------------------------------------------------------------------- */

static bool tok_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* Split s into tokens, checking the grammar. wild: allow '*' and '>' (pattern). */
static lt_err split(const char *s, bool wild, tok t[LT_TOPIC_MAX_TOKENS], size_t *nt,
                    lt_why *why)
{
    const char *what = wild ? "pattern" : "topic";
    if (!s || !*s)
        return lt_fail(why, LT_EBADTOPIC, "%s is empty", what);
    size_t len = strnlen(s, LT_TOPIC_MAX + 1);
    if (len > LT_TOPIC_MAX)
        return lt_fail(why, LT_EBADTOPIC, "%s longer than %d bytes", what, LT_TOPIC_MAX);
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            unsigned char c = (unsigned char)s[i];
            if (!tok_char(c) && !(wild && (c == '*' || c == '>'))) {
                if (c == '*' || c == '>')
                    return lt_fail(why, LT_EBADTOPIC,
                                   "wildcard '%c' at byte %zu: a topic has no wildcards", c,
                                   i);
                if (c >= 0x21 && c < 0x7f)
                    return lt_fail(why, LT_EBADTOPIC,
                                   "character '%c' at byte %zu of %s '%.*s' is not allowed "
                                   "(tokens are A-Z a-z 0-9 _ -)",
                                   c, i, what, (int)len, s);
                return lt_fail(why, LT_EBADTOPIC,
                               "byte 0x%02x at byte %zu of %s is not allowed (tokens are A-Z "
                               "a-z 0-9 _ -)",
                               c, i, what);
            }
            continue;
        }
        size_t tl = i - start;
        if (tl == 0)
            return lt_fail(why, LT_EBADTOPIC, "empty token at byte %zu of %s '%.*s'", start,
                           what, (int)len, s);
        if (n == LT_TOPIC_MAX_TOKENS)
            return lt_fail(why, LT_EBADTOPIC, "%s has more than %d tokens", what,
                           LT_TOPIC_MAX_TOKENS);
        const char *tp = s + start;
        if (wild && tl > 1 && (memchr(tp, '*', tl) || memchr(tp, '>', tl)))
            return lt_fail(why, LT_EBADTOPIC,
                           "wildcard inside token '%.*s': '*' and '>' stand alone", (int)tl,
                           tp);
        if (wild && tl == 1 && *tp == '>' && i != len)
            return lt_fail(why, LT_EBADTOPIC, "'>' must be the last token of '%.*s'",
                           (int)len, s);
        t[n].p = tp;
        t[n].len = tl;
        n++;
        start = i + 1;
    }
    *nt = n;
    return LT_OK;
}

lt_err lt_topic_check(const char *topic, lt_why *why)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t n;
    return split(topic, false, t, &n, why);
}

lt_err lt_pattern_check(const char *pattern, lt_why *why)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t n;
    return split(pattern, true, t, &n, why);
}

static bool is(const tok *t, char c)
{
    return t->len == 1 && t->p[0] == c;
}

bool lt_pattern_matches(const char *pattern, const char *topic)
{
    tok p[LT_TOPIC_MAX_TOKENS], t[LT_TOPIC_MAX_TOKENS];
    size_t np, nt;
    if (split(pattern, true, p, &np, NULL) || split(topic, false, t, &nt, NULL))
        return false;
    for (size_t i = 0; i < np; i++) {
        if (is(&p[i], '>'))
            return nt > i; /* one or more remaining */
        if (i >= nt)
            return false;
        if (!is(&p[i], '*') &&
            (p[i].len != t[i].len || memcmp(p[i].p, t[i].p, t[i].len) != 0))
            return false;
    }
    return np == nt;
}

/* ---- the trie ----------------------------------------------------------------------------- */

static int tokcmp(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl)
        return al < bl ? -1 : 1;
    return memcmp(a, b, al);
}

/* Index of tok in n's children, or where to insert it (*found false). */
static size_t kid_find(const node *n, const tok *t, bool *found)
{
    size_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = tokcmp(n->kids[mid].tok, n->kids[mid].len, t->p, t->len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static size_t val_find(const vals *v, uint32_t x, bool *found)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->v[mid] == x) {
            *found = true;
            return mid;
        }
        if (v->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* 1 added, 0 already there, -1 out of memory. */
static int val_add(vals *v, uint32_t x)
{
    bool found;
    size_t at = val_find(v, x, &found);
    if (found)
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        uint32_t *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        v->v = nv;
        v->cap = cap;
    }
    memmove(v->v + at + 1, v->v + at, (v->n - at) * sizeof *v->v);
    v->v[at] = x;
    v->n++;
    return 1;
}

static bool val_del(vals *v, uint32_t x)
{
    bool found;
    size_t at = val_find(v, x, &found);
    if (!found)
        return false;
    memmove(v->v + at, v->v + at + 1, (v->n - at - 1) * sizeof *v->v);
    v->n--;
    return true;
}

static void node_fini(node *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        node_fini(n->kids[i].n);
        free(n->kids[i].n);
        free(n->kids[i].tok);
    }
    free(n->kids);
    if (n->star) {
        node_fini(n->star);
        free(n->star);
    }
    free(n->here.v);
    free(n->gt.v);
}

lt_err lt_router_new(lt_router **out)
{
    lt_router *r = calloc(1, sizeof *r);
    if (!r)
        return LT_ENOMEM;
    *out = r;
    return LT_OK;
}

void lt_router_destroy(lt_router **rp)
{
    if (!rp || !*rp)
        return;
    node_fini(&(*rp)->root);
    free(*rp);
    *rp = NULL;
}

/* The child of n for token t, created when create is set; NULL if absent / no memory. */
static node *step(node *n, const tok *t, bool create)
{
    if (is(t, '*')) {
        if (!n->star && create)
            n->star = calloc(1, sizeof *n->star);
        return n->star;
    }
    bool found;
    size_t at = kid_find(n, t, &found);
    if (found)
        return n->kids[at].n;
    if (!create)
        return NULL;
    if (n->nkids == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 4;
        child *k = realloc(n->kids, cap * sizeof *k);
        if (!k)
            return NULL;
        n->kids = k;
        n->cap = cap;
    }
    node *c = calloc(1, sizeof *c);
    char *s = malloc(t->len + 1);
    if (!c || !s) {
        free(c);
        free(s);
        return NULL;
    }
    memcpy(s, t->p, t->len);
    s[t->len] = '\0';
    memmove(n->kids + at + 1, n->kids + at, (n->nkids - at) * sizeof *n->kids);
    n->kids[at] = (child){s, t->len, c};
    n->nkids++;
    return c;
}

lt_err lt_router_bind(lt_router *r, const char *pattern, uint32_t value, lt_why *why)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t nt;
    lt_err err = split(pattern, true, t, &nt, why);
    if (err)
        return err;
    node *n = &r->root;
    bool gt = is(&t[nt - 1], '>');
    for (size_t i = 0; i < nt - (gt ? 1 : 0); i++)
        if (!(n = step(n, &t[i], true)))
            return lt_fail(why, LT_ENOMEM, "out of memory binding %s", pattern);
    int added = val_add(gt ? &n->gt : &n->here, value);
    if (added < 0)
        return lt_fail(why, LT_ENOMEM, "out of memory binding %s", pattern);
    r->count += (size_t)added;
    return LT_OK;
}

lt_err lt_router_unbind(lt_router *r, const char *pattern, uint32_t value)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t nt;
    if (split(pattern, true, t, &nt, NULL))
        return LT_EBADTOPIC;
    node *n = &r->root;
    bool gt = is(&t[nt - 1], '>');
    for (size_t i = 0; i < nt - (gt ? 1 : 0) && n; i++)
        n = step(n, &t[i], false);
    /* Empty nodes stay: unbinding is rare (reload builds a new table) and they cost a
     * little memory, not match time beyond one failed lookup. */
    if (!n || !val_del(gt ? &n->gt : &n->here, value))
        return LT_ENOTFOUND;
    r->count--;
    return LT_OK;
}

typedef struct sink {
    uint32_t *out;
    size_t max, n;
    bool over;
} sink;

static void emit(sink *k, const vals *v)
{
    for (size_t i = 0; i < v->n; i++) {
        uint32_t x = v->v[i];
        /* Binary search in the sorted output, insert unless present. */
        size_t lo = 0, hi = k->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (k->out[mid] < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < k->n && k->out[lo] == x)
            continue;
        if (k->n == k->max) {
            k->over = true;
            if (lo == k->n)
                continue; /* larger than all we keep */
            k->n--;       /* drop the largest to keep the smallest max */
        }
        memmove(k->out + lo + 1, k->out + lo, (k->n - lo) * sizeof *k->out);
        k->out[lo] = x;
        k->n++;
    }
}

static void walk(const node *n, const tok *t, size_t i, size_t nt, sink *k)
{
    if (i == nt) {
        emit(k, &n->here);
        return;
    }
    emit(k, &n->gt);
    bool found;
    size_t at = kid_find(n, &t[i], &found);
    if (found)
        walk(n->kids[at].n, t, i + 1, nt, k);
    if (n->star)
        walk(n->star, t, i + 1, nt, k);
}

lt_err lt_router_match(const lt_router *r, const char *topic, uint32_t *out, size_t max,
                       size_t *n, lt_why *why)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t nt = 0;
    lt_err err = split(topic, false, t, &nt, why);
    if (err)
        return err;
    sink k = {out, max, 0, false};
    walk(&r->root, t, 0, nt, &k);
    *n = k.n;
    if (k.over)
        return lt_fail(why, LT_ETOOBIG, "topic %s matches more than %zu queues", topic, max);
    return LT_OK;
}

static bool any(const node *n, const tok *t, size_t i, size_t nt)
{
    if (i == nt)
        return n->here.n > 0;
    if (n->gt.n > 0)
        return true;
    bool found;
    size_t at = kid_find(n, &t[i], &found);
    if (found && any(n->kids[at].n, t, i + 1, nt))
        return true;
    return n->star && any(n->star, t, i + 1, nt);
}

bool lt_router_has_match(const lt_router *r, const char *topic)
{
    tok t[LT_TOPIC_MAX_TOKENS];
    size_t nt = 0;
    if (split(topic, false, t, &nt, NULL))
        return false;
    return any(&r->root, t, 0, nt);
}

size_t lt_router_count(const lt_router *r)
{
    return r->count;
}
