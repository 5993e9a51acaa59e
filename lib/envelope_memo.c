/*
 * envelope_memo.c - a verifying thread's memory of certificate hashes and Merkle paths
 * (envelope_int.h). Each thread has its own (a pthread key frees it with the thread), so
 * nothing here is shared or locked.
 *
 * Why: with batch signatures every envelope carries the path from its header to the signed
 * root, log2(batch) node hashes. The envelopes of one batch share their upper nodes, so once
 * one path is verified, the next envelope's walk meets a known node after a level or two
 * and only compares the rest of its carried siblings with the known ones. For 64-envelope
 * batches: ~2 node hashes per envelope instead of 6. And every envelope encloses its
 * signer's certificate, whose SHA-256 (the key id) is the same for every record of that
 * signer: compared byte for byte, not hashed again.
 *
 * Trees are kept for batches of at most MEMO_LEAVES leaves (bigger ones are verified by
 * hashing every time), MEMO_TREES of them per thread, the least recently used replaced.
 */
#include "envelope_int.h"

#include "pki.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_CERTS 4
#define MEMO_CERT_MAX 16384u
#define MEMO_TREES 8
#define MEMO_LEAVES 4096u
#define MEMO_LEVELS 14 /* levels of a MEMO_LEAVES tree: 13 + the root */

struct cert_memo {
    size_t len; /* 0: empty */
    uint8_t *der;
    uint8_t sha[32];
};

struct tree_memo {
    bool used;
    uint8_t root[32];
    uint32_t count;
    unsigned nlevels;
    size_t base[MEMO_LEVELS + 1]; /* level l's nodes are node[base[l] .. base[l + 1]) */
    size_t cap;
    uint8_t (*node)[32];
    uint8_t *known;
    uint64_t used_at;
};

struct memo {
    struct cert_memo cert[MEMO_CERTS];
    unsigned cert_next;
    struct tree_memo tree[MEMO_TREES];
    uint64_t clock;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_key_ok;

static void memo_free(void *p)
{
    struct memo *m = p;
    if (m == NULL)
        return;
    for (unsigned i = 0; i < MEMO_CERTS; i++)
        free(m->cert[i].der);
    for (unsigned i = 0; i < MEMO_TREES; i++) {
        free(m->tree[i].node);
        free(m->tree[i].known);
    }
    free(m);
}

static void init_once(void)
{
    g_key_ok = pthread_key_create(&g_key, memo_free) == 0;
}

/* This thread's memo, created on first use; NULL without memory. */
static struct memo *memo(void)
{
    pthread_once(&g_once, init_once);
    if (!g_key_ok)
        return NULL;
    struct memo *m = pthread_getspecific(g_key);
    if (m == NULL && (m = calloc(1, sizeof *m)) != NULL && pthread_setspecific(g_key, m) != 0) {
        free(m);
        m = NULL;
    }
    return m;
}

lt_err lt_envmemo_cert_sha256(const uint8_t *der, size_t len, uint8_t out[32], lt_why *why)
{
    struct memo *m = memo();
    if (m == NULL || len == 0 || len > MEMO_CERT_MAX)
        return lt_pki_sha256(der, len, out, why);
    for (unsigned i = 0; i < MEMO_CERTS; i++) {
        struct cert_memo *c = &m->cert[i];
        if (c->len == len && memcmp(c->der, der, len) == 0) {
            memcpy(out, c->sha, 32);
            return LT_OK;
        }
    }
    lt_err e = lt_pki_sha256(der, len, out, why);
    if (e != LT_OK)
        return e;
    struct cert_memo *c = &m->cert[m->cert_next];
    uint8_t *copy = realloc(c->der, len);
    if (copy != NULL) {
        memcpy(copy, der, len);
        c->der = copy;
        c->len = len;
        memcpy(c->sha, out, 32);
        m->cert_next = (m->cert_next + 1) % MEMO_CERTS;
    }
    return LT_OK;
}

static struct tree_memo *tree_find(struct memo *m, const uint8_t root[32], uint32_t count)
{
    for (unsigned i = 0; i < MEMO_TREES; i++) {
        struct tree_memo *t = &m->tree[i];
        if (t->used && t->count == count && memcmp(t->root, root, 32) == 0) {
            t->used_at = ++m->clock;
            return t;
        }
    }
    return NULL;
}

/* The tree of (root, count), made empty in the least recently used slot if it is new. */
static struct tree_memo *tree_make(struct memo *m, const uint8_t root[32], uint32_t count)
{
    struct tree_memo *t = tree_find(m, root, count);
    if (t != NULL)
        return t;
    if (count < 2 || count > MEMO_LEAVES)
        return NULL;
    t = &m->tree[0];
    for (unsigned i = 1; i < MEMO_TREES; i++)
        if (!m->tree[i].used || (t->used && m->tree[i].used_at < t->used_at))
            t = &m->tree[i];
    size_t total = 0, c = count;
    unsigned l = 0;
    for (;; l++) {
        t->base[l] = total;
        total += c;
        if (c == 1)
            break;
        c = (c + 1) / 2;
    }
    t->base[l + 1] = total;
    if (total > t->cap) {
        uint8_t(*nn)[32] = realloc(t->node, total * sizeof *nn);
        if (nn == NULL)
            return NULL;
        t->node = nn;
        uint8_t *nk = realloc(t->known, total);
        if (nk == NULL)
            return NULL;
        t->known = nk;
        t->cap = total;
    }
    memset(t->known, 0, total);
    t->used = true;
    t->nlevels = l + 1;
    t->count = count;
    memcpy(t->root, root, 32);
    t->used_at = ++m->clock;
    return t;
}

/* The node at (level, index) when the tree knows it. */
static const uint8_t *known_node(const struct tree_memo *t, unsigned level, uint64_t index)
{
    if (level >= t->nlevels || index >= t->base[level + 1] - t->base[level])
        return NULL;
    size_t i = t->base[level] + (size_t)index;
    return t->known[i] ? t->node[i] : NULL;
}

static void set_node(struct tree_memo *t, unsigned level, uint64_t index, const uint8_t h[32])
{
    if (level >= t->nlevels || index >= t->base[level + 1] - t->base[level])
        return;
    size_t i = t->base[level] + (size_t)index;
    memcpy(t->node[i], h, 32);
    t->known[i] = 1;
}

/* The sibling of node idx on a level of cnt nodes; false for the last node of an odd level,
 * which goes up alone. */
static bool sibling_of(uint64_t idx, uint64_t cnt, uint64_t *sidx)
{
    if (idx % 2 == 1)
        *sidx = idx - 1;
    else if (idx + 1 < cnt)
        *sidx = idx + 1;
    else
        return false;
    return true;
}

bool lt_envmemo_path_known(const uint8_t root[32], uint32_t count, unsigned level, uint64_t index,
                           const uint8_t h[32], const uint8_t *const *siblings, size_t nsib)
{
    struct memo *m = memo();
    struct tree_memo *t = m ? tree_find(m, root, count) : NULL;
    if (t == NULL || level >= t->nlevels)
        return false;
    const uint8_t *n = known_node(t, level, index);
    if (n == NULL || memcmp(n, h, 32) != 0)
        return false;
    size_t k = 0;
    uint64_t cnt = t->base[level + 1] - t->base[level];
    for (uint64_t idx = index; cnt > 1; idx /= 2, cnt = (cnt + 1) / 2, level++) {
        uint64_t sidx;
        if (!sibling_of(idx, cnt, &sidx))
            continue;
        const uint8_t *s = known_node(t, level, sidx);
        if (k >= nsib || s == NULL || memcmp(s, siblings[k], 32) != 0)
            return false;
        k++;
    }
    return k == nsib;
}

void lt_envmemo_path_add(const uint8_t root[32], uint32_t count, uint64_t index,
                         const uint8_t (*node)[32], size_t nlevels, const uint8_t *const *siblings,
                         size_t nsib)
{
    struct memo *m = memo();
    struct tree_memo *t = m ? tree_make(m, root, count) : NULL;
    if (t == NULL || nlevels != t->nlevels)
        return;
    size_t k = 0;
    unsigned level = 0;
    uint64_t idx = index;
    for (uint64_t cnt = count; cnt > 1; idx /= 2, cnt = (cnt + 1) / 2, level++) {
        set_node(t, level, idx, node[level]);
        uint64_t sidx;
        if (!sibling_of(idx, cnt, &sidx))
            continue;
        if (k >= nsib)
            return;
        set_node(t, level, sidx, siblings[k++]);
    }
    set_node(t, level, 0, root);
}
