/*
 * acl.h - who may do what: publish patterns per agency (deny by default), the owner of
 * each queue (only the owner consumes), and the admins (admin operations on every queue;
 * a queue's owner may also run them on its own queues).
 *
 * Built once (from the config, see broker_config.h lt_broker_config_acl) and then read-only: the
 * query functions allocate nothing and may run on any number of threads at once. On a
 * reload (SIGHUP) build a new lt_acl and swap the pointer; destroy the old one when no
 * thread uses it any more.
 */
#ifndef LT_BROKER_ACL_H
#define LT_BROKER_ACL_H

#include "err.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct lt_acl lt_acl;

/* New empty ACL (denies everything), owned by the caller (lt_acl_destroy). LT_ENOMEM. */
lt_err lt_acl_new(lt_acl **out);

/* Accepts NULL; clears *a. */
void lt_acl_destroy(lt_acl **a);

/* Allow agency (copied) to publish on topics matching pattern. An agency listed with no
 * pattern (lt_acl_add_agency) is known but may publish nothing. LT_EBADTOPIC: invalid
 * pattern; LT_EINVAL: empty agency; LT_ENOMEM. */
lt_err lt_acl_allow_publish(lt_acl *a, const char *agency, const char *pattern, lt_why *why);
lt_err lt_acl_add_agency(lt_acl *a, const char *agency, lt_why *why);

/* Make agency an admin. LT_EINVAL: empty; LT_ENOMEM. */
lt_err lt_acl_add_admin(lt_acl *a, const char *agency, lt_why *why);

/* Record that agency owns queue. LT_EEXIST: queue already has another owner;
 * LT_EINVAL: empty name; LT_ENOMEM. */
lt_err lt_acl_set_owner(lt_acl *a, const char *queue, const char *agency, lt_why *why);

/* LT_OK if agency may publish on topic; LT_EACL with the reason ("agency X may not
 * publish on 79.761.hotich.khaisinh") otherwise, and LT_EBADTOPIC for an invalid topic. */
lt_err lt_acl_check_publish(const lt_acl *a, const char *agency, const char *topic,
                            lt_why *why);

/* LT_OK if agency owns queue; LT_ENOQUEUE if no such queue is known; LT_EACL otherwise. */
lt_err lt_acl_check_consume(const lt_acl *a, const char *agency, const char *queue,
                            lt_why *why);

/* LT_OK if agency is an admin, or owns queue (queue may be NULL: admins only); LT_EACL
 * otherwise. */
lt_err lt_acl_check_admin(const lt_acl *a, const char *agency, const char *queue, lt_why *why);

bool lt_acl_is_admin(const lt_acl *a, const char *agency);

/* Owner of queue (borrowed, valid while a lives), or NULL. */
const char *lt_acl_owner(const lt_acl *a, const char *queue);

/* ---- peer brokers (docs/network.md): which may give hops, which topics each may relay ---- */

/* Make agency (the identity of the peer broker named name; both copied) a peer that relays
 * nothing yet. LT_EEXIST: agency is already a peer; LT_EINVAL: empty; LT_ENOMEM. */
lt_err lt_acl_add_peer(lt_acl *a, const char *agency, const char *name, lt_why *why);

/* Let peer agency (lt_acl_add_peer first, else LT_EINVAL) relay topics matching pattern.
 * LT_EBADTOPIC: invalid pattern; LT_ENOMEM. */
lt_err lt_acl_allow_relay(lt_acl *a, const char *agency, const char *pattern, lt_why *why);

/* The name of the peer broker whose identity is agency (borrowed, valid while a lives), or
 * NULL when agency is no peer. */
const char *lt_acl_peer_name(const lt_acl *a, const char *agency);

/* LT_OK if the peer broker whose identity is agency may relay topic; LT_ENOT_PEER when
 * agency is no peer (e.g. removed by a reload since its session began); LT_EACL otherwise. */
lt_err lt_acl_check_relay(const lt_acl *a, const char *agency, const char *topic, lt_why *why);

/* ---- the ACL in force: read by any thread, replaced on SIGHUP ---- */

/* Holds one ACL. Readers hold it for a batch at a time; the lock prefers the writer, so a
 * reload is never starved by readers that come back to back. */
typedef struct lt_acl_cell {
    pthread_rwlock_t lock;
    lt_acl *acl;
} lt_acl_cell;

/* Start holding a (owned by the cell from now on; may be NULL until the first swap). */
void lt_acl_cell_init(lt_acl_cell *c, lt_acl *a);
/* The ACL in force, read-locked until lt_acl_cell_rele. Any thread. */
const lt_acl *lt_acl_cell_hold(lt_acl_cell *c);
void lt_acl_cell_rele(lt_acl_cell *c);
/* Put a in force (the cell owns it) once no reader holds the old one, and free the old. */
void lt_acl_cell_swap(lt_acl_cell *c, lt_acl *a);
/* The ACL in force without a lock, for the one thread that swaps it (the loop): no other
 * thread replaces it under that thread's feet. */
const lt_acl *lt_acl_cell_peek(const lt_acl_cell *c);
/* Free the ACL held; no reader may hold it. */
void lt_acl_cell_fini(lt_acl_cell *c);

#endif
