/*
 * acl.c - publish patterns per agency, queue owners, admins (see acl.h).
 *
 * Four string-keyed tables (open addressing, FNV-1a, power-of-two sizes, never more than
 * half full): agency -> its publish patterns (an lt_router with value 0), queue -> owner,
 * the admin set, and peer broker identity -> its name and relay patterns. Built by one thread, then only read: lookups allocate nothing.
 */
#include "acl.h"

#include "router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char *key;
    void *val; /* agency: lt_router*; owner: char*; admin: unused; peer: peer* */
} slot;

typedef struct table {
    slot *s;
    size_t cap, n;
} table;

typedef struct peer {
    char *name;
    lt_router *relay;
} peer;

struct lt_acl {
    table agencies;
    table owners;
    table admins;
    table peers;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static slot *find(const table *t, const char *key)
{
    if (!t->cap || !key)
        return NULL;
    for (size_t i = fnv(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->s[i].key)
            return NULL;
        if (strcmp(t->s[i].key, key) == 0)
            return &t->s[i];
    }
}

/* The slot for key, inserting it (with val NULL) if absent; NULL when out of memory. */
static slot *upsert(table *t, const char *key)
{
    slot *hit = find(t, key);
    if (hit)
        return hit;
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        slot *ns = calloc(cap, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->s[i].key)
                continue;
            size_t j = fnv(t->s[i].key) & (cap - 1);
            while (ns[j].key)
                j = (j + 1) & (cap - 1);
            ns[j] = t->s[i];
        }
        free(t->s);
        t->s = ns;
        t->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    size_t i = fnv(key) & (t->cap - 1);
    while (t->s[i].key)
        i = (i + 1) & (t->cap - 1);
    t->s[i].key = k;
    t->s[i].val = NULL;
    t->n++;
    return &t->s[i];
}

static void table_fini(table *t, void (*free_val)(void *))
{
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->s[i].key)
            continue;
        free(t->s[i].key);
        if (free_val && t->s[i].val)
            free_val(t->s[i].val);
    }
    free(t->s);
}

static void router_free(void *p)
{
    lt_router *r = p;
    lt_router_destroy(&r);
}

static void peer_free(void *p)
{
    peer *pe = p;
    free(pe->name);
    lt_router_destroy(&pe->relay);
    free(pe);
}

lt_err lt_acl_new(lt_acl **out)
{
    lt_acl *a = calloc(1, sizeof *a);
    if (!a)
        return LT_ENOMEM;
    *out = a;
    return LT_OK;
}

void lt_acl_destroy(lt_acl **ap)
{
    if (!ap || !*ap)
        return;
    lt_acl *a = *ap;
    table_fini(&a->agencies, router_free);
    table_fini(&a->owners, free);
    table_fini(&a->admins, NULL);
    table_fini(&a->peers, peer_free);
    free(a);
    *ap = NULL;
}

static lt_err agency_slot(lt_acl *a, const char *agency, slot **out, lt_why *why)
{
    if (!agency || !*agency)
        return lt_fail(why, LT_EINVAL, "empty agency id in ACL");
    slot *s = upsert(&a->agencies, agency);
    if (!s)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    if (!s->val && lt_router_new((lt_router **)&s->val) != LT_OK)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *out = s;
    return LT_OK;
}

lt_err lt_acl_add_agency(lt_acl *a, const char *agency, lt_why *why)
{
    slot *s;
    return agency_slot(a, agency, &s, why);
}

lt_err lt_acl_allow_publish(lt_acl *a, const char *agency, const char *pattern, lt_why *why)
{
    lt_err err = lt_pattern_check(pattern, why);
    if (err)
        return err;
    slot *s = NULL;
    if ((err = agency_slot(a, agency, &s, why)))
        return err;
    return lt_router_bind(s->val, pattern, 0, why);
}

lt_err lt_acl_add_admin(lt_acl *a, const char *agency, lt_why *why)
{
    if (!agency || !*agency)
        return lt_fail(why, LT_EINVAL, "empty admin agency id");
    return upsert(&a->admins, agency) ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
}

lt_err lt_acl_set_owner(lt_acl *a, const char *queue, const char *agency, lt_why *why)
{
    if (!queue || !*queue || !agency || !*agency)
        return lt_fail(why, LT_EINVAL, "queue owner needs a queue name and an agency id");
    slot *s = find(&a->owners, queue);
    if (s)
        return strcmp(s->val, agency) == 0
                   ? LT_OK
                   : lt_fail(why, LT_EEXIST, "queue %s is already owned by %s", queue,
                             (const char *)s->val);
    char *v = strdup(agency);
    if (!v || !(s = upsert(&a->owners, queue))) {
        free(v);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    s->val = v;
    return LT_OK;
}

lt_err lt_acl_check_publish(const lt_acl *a, const char *agency, const char *topic,
                            lt_why *why)
{
    lt_err err = lt_topic_check(topic, why);
    if (err)
        return err;
    const slot *s = find(&a->agencies, agency);
    if (!s)
        return lt_fail(why, LT_EACL, "agency %s may not publish (not in the ACL)",
                       agency ? agency : "(none)");
    if (!lt_router_has_match(s->val, topic))
        return lt_fail(why, LT_EACL, "agency %s may not publish on %s", agency, topic);
    return LT_OK;
}

lt_err lt_acl_check_consume(const lt_acl *a, const char *agency, const char *queue,
                            lt_why *why)
{
    const slot *s = find(&a->owners, queue);
    if (!s)
        return lt_fail(why, LT_ENOQUEUE, "no queue %s", queue ? queue : "(none)");
    if (!agency || strcmp(s->val, agency) != 0)
        return lt_fail(why, LT_EACL, "agency %s may not consume from %s (owned by %s)",
                       agency ? agency : "(none)", queue, (const char *)s->val);
    return LT_OK;
}

bool lt_acl_is_admin(const lt_acl *a, const char *agency)
{
    return find(&a->admins, agency) != NULL;
}

lt_err lt_acl_check_admin(const lt_acl *a, const char *agency, const char *queue, lt_why *why)
{
    if (lt_acl_is_admin(a, agency))
        return LT_OK;
    const slot *s = queue ? find(&a->owners, queue) : NULL;
    if (s && agency && strcmp(s->val, agency) == 0)
        return LT_OK;
    if (queue)
        return lt_fail(why, LT_EACL, "agency %s is neither an admin nor the owner of %s",
                       agency ? agency : "(none)", queue);
    return lt_fail(why, LT_EACL, "agency %s is not an admin", agency ? agency : "(none)");
}

const char *lt_acl_owner(const lt_acl *a, const char *queue)
{
    const slot *s = find(&a->owners, queue);
    return s ? s->val : NULL;
}

void lt_acl_cell_init(lt_acl_cell *c, lt_acl *a)
{
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    c->acl = a;
}

const lt_acl *lt_acl_cell_hold(lt_acl_cell *c)
{
    pthread_rwlock_rdlock(&c->lock);
    return c->acl;
}

void lt_acl_cell_rele(lt_acl_cell *c)
{
    pthread_rwlock_unlock(&c->lock);
}

void lt_acl_cell_swap(lt_acl_cell *c, lt_acl *a)
{
    pthread_rwlock_wrlock(&c->lock);
    lt_acl *old = c->acl;
    c->acl = a;
    pthread_rwlock_unlock(&c->lock);
    lt_acl_destroy(&old);
}

const lt_acl *lt_acl_cell_peek(const lt_acl_cell *c)
{
    return c->acl;
}

void lt_acl_cell_fini(lt_acl_cell *c)
{
    lt_acl_destroy(&c->acl);
    pthread_rwlock_destroy(&c->lock);
}

lt_err lt_acl_add_peer(lt_acl *a, const char *agency, const char *name, lt_why *why)
{
    if (!agency || !*agency || !name || !*name)
        return lt_fail(why, LT_EINVAL, "a peer needs an agency id and a name");
    if (find(&a->peers, agency))
        return lt_fail(why, LT_EEXIST, "%s is already a peer", agency);
    peer *pe = calloc(1, sizeof *pe);
    slot *s = NULL;
    if (!pe || !(pe->name = strdup(name)) || lt_router_new(&pe->relay) != LT_OK ||
        !(s = upsert(&a->peers, agency))) {
        if (pe)
            peer_free(pe);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    s->val = pe;
    return LT_OK;
}

lt_err lt_acl_allow_relay(lt_acl *a, const char *agency, const char *pattern, lt_why *why)
{
    lt_err err = lt_pattern_check(pattern, why);
    if (err)
        return err;
    const slot *s = find(&a->peers, agency);
    if (!s)
        return lt_fail(why, LT_EINVAL, "%s is not a peer", agency ? agency : "(none)");
    return lt_router_bind(((peer *)s->val)->relay, pattern, 0, why);
}

const char *lt_acl_peer_name(const lt_acl *a, const char *agency)
{
    const slot *s = find(&a->peers, agency);
    return s ? ((const peer *)s->val)->name : NULL;
}

lt_err lt_acl_check_relay(const lt_acl *a, const char *agency, const char *topic, lt_why *why)
{
    const slot *s = find(&a->peers, agency);
    if (!s)
        return lt_fail(why, LT_ENOT_PEER, "%s is no peer broker of this one (any more)",
                       agency ? agency : "(none)");
    const peer *pe = s->val;
    if (!lt_router_has_match(pe->relay, topic))
        return lt_fail(why, LT_EACL, "peer broker %s may not relay topic %s", pe->name, topic);
    return LT_OK;
}
