/*
 * config.c - broker.yaml: read with ycfg, validated completely, defaults for every option
 * (see broker_config.h and docs/config.md for the format).
 *
 * The tree is only a step: everything the broker keeps is copied into lt_broker_cfg, so
 * the tree is freed before load returns. Agency ids are stored in normal form (what
 * certificates carry), so the ACL compares them byte for byte.
 */
#include "broker_config.h"

#include "agency.h"
#include "router.h"
#include "store.h"
#include "ycfg.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const top_keys[] = {"broker",     "trust",    "admins", "acl",   "queues",
                                       "procedures", "calendar", "peers",  "links", "curve_clients",
                                       NULL};
static const char *const broker_keys[] = {"name",           "listen",         "data_dir",
                                          "map_size_mb",    "verify_threads", "max_frame_bytes",
                                          "dedup_window_s", "commit_max_batch", "admin",
                                          "max_schedule_days", "send_hwm",        "identity",
                                          "curve",             "allow_plaintext", NULL};
static const char *const admin_keys[] = {"listen", "token_file", "allow_remote",
                                         "min_free_disk_mb", NULL};
static const char *const trust_keys[] = {"ca", "crl", "clock_skew_s", NULL};
static const char *const acl_keys[] = {"agency", "name", "publish", NULL};
static const char *const queue_keys[] = {"name",        "owner",           "bind",
                                         "ack_wait_s",  "max_deliver",     "backoff_s",
                                         "max_ack_pending", "max_depth",   "max_bytes",
                                         "retention_s", NULL};

static const char *const identity_keys[] = {"key", "cert", NULL};
static const char *const peer_keys[] = {"name", "agency", "relay", "curve_key", "cert", NULL};
static const char *const curve_keys[] = {"listen", "secret_key_file", NULL};
static const char *const curve_client_keys[] = {"agency", "key", "cert", NULL};
static const char *const link_keys[] = {"name",    "peer",   "endpoint",     "forward",
                                        "receive", "credit", "retry_max_ms", NULL};

static const uint32_t default_backoff[] = {1, 5, 30};

/* ---- helpers ------------------------------------------------------------------------------ */

static lt_err dup_into(char **dst, const char *s, lt_why *why)
{
    if (!(*dst = strdup(s)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    return LT_OK;
}

static lt_err str_opt(const lt_ynode *map, const char *key, const char *dflt, char **out,
                      lt_why *why)
{
    const char *s = NULL;
    lt_err err = lt_ycfg_str(map, key, dflt, &s, why);
    if (err)
        return err;
    if (!*s)
        return lt_ycfg_fail(lt_ycfg_get(map, key), why, "must not be empty");
    return dup_into(out, s, why);
}

static lt_err int_opt(const lt_ynode *map, const char *key, int64_t dflt, int64_t min,
                      int64_t max, uint64_t *out, lt_why *why)
{
    int64_t v;
    lt_err err = lt_ycfg_int(map, key, dflt, min, max, &v, why);
    if (!err)
        *out = (uint64_t)v;
    return err;
}

static lt_err u32_opt(const lt_ynode *map, const char *key, int64_t dflt, int64_t min,
                      int64_t max, uint32_t *out, lt_why *why)
{
    uint64_t v;
    lt_err err = int_opt(map, key, dflt, min, max, &v, why);
    if (!err)
        *out = (uint32_t)v;
    return err;
}

/* The scalar text of a sequence item, or a refusal naming it. */
static lt_err item_str(const lt_ynode *item, const char *what, const char **out, lt_why *why)
{
    const char *s = lt_ycfg_scalar(item);
    if (!s)
        return lt_ycfg_fail(item, why, "expected %s, got a %s", what,
                            lt_ycfg_kind(item) == LT_Y_MAP ? "map" : "list");
    if (!*s)
        return lt_ycfg_fail(item, why, "expected %s, got an empty value", what);
    *out = s;
    return LT_OK;
}

/* Agency id at node n (a scalar), normalized into a new string. */
static lt_err agency_at(const lt_ynode *n, char **out, lt_why *why)
{
    const char *s = NULL;
    lt_err err = item_str(n, "an agency id", &s, why);
    if (err)
        return err;
    char norm[LT_AGENCY_ID_MAX];
    lt_why aw;
    if (lt_agency_normalize(s, norm, &aw) != LT_OK)
        return lt_ycfg_fail(n, why, "%s", aw.msg);
    return dup_into(out, norm, why);
}

/* Sequence of topic patterns under key of map into a new array of strings. */
static lt_err patterns_at(const lt_ynode *map, const char *key, bool need_one, char ***out,
                          size_t *n, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(map, key, need_one, &seq, why);
    if (err)
        return err;
    size_t len = seq ? lt_ycfg_len(seq) : 0;
    if (need_one && len == 0)
        return lt_ycfg_fail(seq ? seq : map, why, "'%s' needs at least one topic pattern",
                            key);
    *out = NULL;
    *n = 0;
    if (len == 0)
        return LT_OK;
    char **v = calloc(len, sizeof *v);
    if (!v)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *out = v;
    for (size_t i = 0; i < len; i++) {
        const lt_ynode *it = lt_ycfg_at(seq, i);
        const char *p = NULL;
        lt_why pw;
        if ((err = item_str(it, "a topic pattern", &p, why)))
            return err;
        if (lt_pattern_check(p, &pw) != LT_OK)
            return lt_ycfg_fail(it, why, "bad topic pattern '%s': %s", p, pw.msg);
        for (size_t j = 0; j < *n; j++)
            if (strcmp(v[j], p) == 0)
                return lt_ycfg_fail(it, why, "pattern '%s' listed twice", p);
        if ((err = dup_into(&v[i], p, why)))
            return err;
        (*n)++;
    }
    return LT_OK;
}

static void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A ZeroMQ endpoint we can bind: tcp://host:port (port 1..65535 or *) or ipc://path. */
static bool endpoint_ok(const char *e)
{
    if (strncmp(e, "ipc://", 6) == 0)
        return e[6] != '\0';
    if (strncmp(e, "tcp://", 6) != 0)
        return false;
    const char *colon = strrchr(e + 6, ':');
    if (!colon || colon == e + 6)
        return false;
    if (strcmp(colon + 1, "*") == 0)
        return true;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return colon[1] && *end == '\0' && errno == 0 && port >= 1 && port <= 65535;
}

/* host:port for the admin HTTP listener. */
static bool hostport_ok(const char *e)
{
    const char *colon = strrchr(e, ':');
    if (!colon || colon == e)
        return false;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return colon[1] && *end == '\0' && errno == 0 && port >= 1 && port <= 65535;
}

static bool queue_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LT_STORE_QUEUE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* The section under key, or root when it is absent: the getters then find none of their
 * keys there (root's keys are the section names) and use their defaults, and relative
 * paths still resolve against the file's directory. */
static lt_err section(const lt_ynode *root, const char *key, const char *const keys[],
                      const lt_ynode **out, lt_why *why)
{
    const lt_ynode *m;
    lt_err err = lt_ycfg_map(root, key, false, &m, why);
    if (err)
        return err;
    if (m && (err = lt_ycfg_check_keys(m, keys, why)))
        return err;
    *out = m ? m : root;
    return LT_OK;
}

/* ---- sections ----------------------------------------------------------------------------- */

static lt_err read_broker(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *b, *a;
    lt_err err;
    if ((err = section(root, "broker", broker_keys, &b, why)))
        return err;
    if ((err = str_opt(b, "name", LT_BCFG_DEFAULT_NAME, &c->name, why)) ||
        (err = str_opt(b, "listen", LT_BCFG_DEFAULT_LISTEN, &c->listen, why)) ||
        (err = lt_ycfg_filepath(b, "data_dir", LT_BCFG_DEFAULT_DATA_DIR, &c->data_dir, why)) ||
        (err = int_opt(b, "map_size_mb", LT_BCFG_DEFAULT_MAP_SIZE_MB, 1, 16777216,
                       &c->map_size_mb, why)) ||
        (err = u32_opt(b, "verify_threads", 0, 0, 256, &c->verify_threads, why)) ||
        (err = u32_opt(b, "max_frame_bytes", LT_BCFG_DEFAULT_MAX_FRAME_BYTES, 1024, 268435456,
                       &c->max_frame_bytes, why)) ||
        (err = int_opt(b, "dedup_window_s", LT_BCFG_DEFAULT_DEDUP_WINDOW_S, 1, 31 * 86400,
                       &c->dedup_window_s, why)) ||
        (err = u32_opt(b, "commit_max_batch", LT_BCFG_DEFAULT_COMMIT_MAX_BATCH, 1, 1000000,
                       &c->commit_max_batch, why)) ||
        (err = u32_opt(b, "max_schedule_days", LT_BCFG_DEFAULT_MAX_SCHEDULE_DAYS, 1, 3660,
                       &c->max_schedule_days, why)) ||
        (err = u32_opt(b, "send_hwm", LT_BCFG_DEFAULT_SEND_HWM, 4096, 10000000, &c->send_hwm, why)))
        return err;
    if (!endpoint_ok(c->listen))
        return lt_ycfg_fail(lt_ycfg_get(b, "listen"), why,
                            "expected tcp://HOST:PORT or ipc://PATH, got '%s'", c->listen);
    if (strlen(c->name) > 64)
        return lt_ycfg_fail(lt_ycfg_get(b, "name"), why, "longer than 64 bytes");
    if (b == root) {
        a = root;
    } else if ((err = section(b, "admin", admin_keys, &a, why))) {
        return err;
    } else if (a == b) {
        a = root; /* broker: without admin: */
    }
    if ((err = str_opt(a, "listen", LT_BCFG_DEFAULT_ADMIN_LISTEN, &c->admin_listen, why)) ||
        (err = lt_ycfg_filepath(a, "token_file", LT_BCFG_DEFAULT_ADMIN_TOKEN_FILE,
                                &c->admin_token_file, why)) ||
        (err = lt_ycfg_bool(a, "allow_remote", false, &c->admin_allow_remote, why)) ||
        (err = int_opt(a, "min_free_disk_mb", LT_BCFG_DEFAULT_ADMIN_MIN_FREE_MB, 0, 16777216,
                       &c->admin_min_free_mb, why)))
        return err;
    if (!hostport_ok(c->admin_listen))
        return lt_ycfg_fail(lt_ycfg_get(a, "listen"), why,
                            "expected HOST:PORT (port 1..65535), got '%s'", c->admin_listen);
    return LT_OK;
}

/* Replay inside the skew: an envelope created at t is accepted while now lies in
 * [t - skew, t + skew]. First seen as early as t - skew, its id must be remembered until
 * t + skew, or a captured copy is accepted a second time: the dedup window must be at least
 * 2 x clock_skew_s. The refusal points at the key the file sets (dedup_window_s first). */
_Static_assert(LT_BCFG_DEFAULT_DEDUP_WINDOW_S >= 2 * LT_BCFG_DEFAULT_CLOCK_SKEW_S,
               "the default dedup window must cover twice the default clock skew");

static lt_err check_replay_window(const lt_ynode *root, const lt_broker_cfg *c, lt_why *why)
{
    uint64_t need = 2 * (uint64_t)c->clock_skew_s;
    if (c->dedup_window_s >= need)
        return LT_OK;
    const lt_ynode *dw = lt_ycfg_get(lt_ycfg_get(root, "broker"), "dedup_window_s");
    const lt_ynode *cs = lt_ycfg_get(lt_ycfg_get(root, "trust"), "clock_skew_s");
    static const char why_so[] = "a copy replayed after its id left the window would still be "
                                 "inside the skew and accepted again";
    if (dw == NULL) /* the default window: the skew set here is too large */
        return lt_ycfg_fail(cs, why, "2 x %u s is more than broker.dedup_window_s (%llu s, the "
                            "default): %s", c->clock_skew_s,
                            (unsigned long long)c->dedup_window_s, why_so);
    char line[32];
    const char *skew_at = "the default";
    if (cs) {
        snprintf(line, sizeof line, "line %d", lt_ycfg_line(cs));
        skew_at = line;
    }
    return lt_ycfg_fail(dw, why, "%llu s is below 2 x trust.clock_skew_s (%u s, %s) = %llu s: %s",
                        (unsigned long long)c->dedup_window_s, c->clock_skew_s, skew_at,
                        (unsigned long long)need, why_so);
}

static lt_err read_trust(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *t;
    lt_err err;
    if ((err = section(root, "trust", trust_keys, &t, why)))
        return err;
    if ((err = lt_ycfg_filepath(t, "ca", LT_BCFG_DEFAULT_CA, &c->ca, why)) ||
        (err = lt_ycfg_filepath(t, "crl", LT_BCFG_DEFAULT_CRL, &c->crl, why)) ||
        (err = u32_opt(t, "clock_skew_s", LT_BCFG_DEFAULT_CLOCK_SKEW_S, 0, 86400,
                       &c->clock_skew_s, why)))
        return err;
    return check_replay_window(root, c, why); /* read_broker ran first */
}

static lt_err read_admins(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(root, "admins", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!(c->admins = calloc(n, sizeof *c->admins)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *it = lt_ycfg_at(seq, i);
        char *id;
        if ((err = agency_at(it, &id, why)))
            return err;
        for (size_t j = 0; j < c->nadmins; j++)
            if (strcmp(c->admins[j], id) == 0) {
                free(id);
                return lt_ycfg_fail(it, why, "admin listed twice");
            }
        c->admins[c->nadmins++] = id;
    }
    return LT_OK;
}

static lt_err read_acl(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(root, "acl", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!(c->acl = calloc(n, sizeof *c->acl)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map with agency and publish");
        if ((err = lt_ycfg_check_keys(m, acl_keys, why)))
            return err;
        lt_bcfg_acl *e = &c->acl[c->nacl++];
        e->line = lt_ycfg_line(m);
        const lt_ynode *an = lt_ycfg_get(m, "agency");
        if (!an)
            return lt_ycfg_fail(m, why, "required key 'agency' is missing");
        if ((err = agency_at(an, &e->agency, why)))
            return err;
        for (size_t j = 0; j + 1 < c->nacl; j++)
            if (strcmp(c->acl[j].agency, e->agency) == 0)
                return lt_ycfg_fail(an, why, "agency %s already has an ACL entry (line %d)",
                                    e->agency, c->acl[j].line);
        if ((err = patterns_at(m, "publish", false, &e->publish, &e->npublish, why)))
            return err;
        const char *name = "";
        if ((err = lt_ycfg_str(m, "name", "", &name, why)))
            return err;
        if (strlen(name) > 255)
            return lt_ycfg_fail(lt_ycfg_get(m, "name"), why, "name longer than 255 bytes");
        if (name[0] && !(e->name = strdup(name)))
            return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    return LT_OK;
}

static lt_err read_backoff(const lt_ynode *m, lt_bcfg_queue *q, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(m, "backoff_s", false, &seq, why);
    if (err)
        return err;
    if (!lt_ycfg_get(m, "backoff_s")) {
        q->nbackoff = sizeof default_backoff / sizeof default_backoff[0];
        memcpy(q->backoff_s, default_backoff, sizeof default_backoff);
        return LT_OK;
    }
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (n > LT_BCFG_MAX_BACKOFF)
        return lt_ycfg_fail(seq, why, "at most %d delays", LT_BCFG_MAX_BACKOFF);
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *it = lt_ycfg_at(seq, i);
        const char *s = NULL;
        if ((err = item_str(it, "a delay in seconds", &s, why)))
            return err;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*end != '\0' || errno != 0 || v < 0 || v > 86400)
            return lt_ycfg_fail(it, why, "expected an integer in 0..86400, got '%s'", s);
        q->backoff_s[i] = (uint32_t)v;
    }
    q->nbackoff = n;
    return LT_OK;
}

static lt_err read_queues(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(root, "queues", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!(c->queues = calloc(n, sizeof *c->queues)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map describing a queue");
        if ((err = lt_ycfg_check_keys(m, queue_keys, why)))
            return err;
        lt_bcfg_queue *q = &c->queues[c->nqueues++];
        q->line = lt_ycfg_line(m);
        const char *name;
        if ((err = lt_ycfg_str(m, "name", NULL, &name, why)))
            return err;
        if (!queue_name_ok(name))
            return lt_ycfg_fail(lt_ycfg_get(m, "name"), why,
                                "queue name '%s' must be 1..%d bytes of A-Z a-z 0-9 _ - .",
                                name, LT_STORE_QUEUE_NAME_MAX);
        for (size_t j = 0; j + 1 < c->nqueues; j++)
            if (strcmp(c->queues[j].name, name) == 0)
                return lt_ycfg_fail(lt_ycfg_get(m, "name"), why,
                                    "queue %s is already defined (line %d)", name,
                                    c->queues[j].line);
        if ((err = dup_into(&q->name, name, why)))
            return err;
        const lt_ynode *on = lt_ycfg_get(m, "owner");
        if (!on)
            return lt_ycfg_fail(m, why, "required key 'owner' is missing");
        if ((err = agency_at(on, &q->owner, why)) ||
            (err = patterns_at(m, "bind", true, &q->bind, &q->nbind, why)) ||
            (err = u32_opt(m, "ack_wait_s", LT_BCFG_DEFAULT_ACK_WAIT_S, 1, 86400,
                           &q->ack_wait_s, why)) ||
            (err = u32_opt(m, "max_deliver", LT_BCFG_DEFAULT_MAX_DELIVER, 1, 1000,
                           &q->max_deliver, why)) ||
            (err = read_backoff(m, q, why)) ||
            (err = u32_opt(m, "max_ack_pending", LT_BCFG_DEFAULT_MAX_ACK_PENDING, 1, 1000000,
                           &q->max_ack_pending, why)) ||
            (err = int_opt(m, "max_depth", LT_BCFG_DEFAULT_MAX_DEPTH, 0, INT64_C(1) << 48,
                           &q->max_depth, why)) ||
            (err = int_opt(m, "max_bytes", (int64_t)LT_BCFG_DEFAULT_MAX_BYTES, 0,
                           INT64_C(1) << 56, &q->max_bytes, why)) ||
            (err = int_opt(m, "retention_s", LT_BCFG_DEFAULT_RETENTION_S, 0, 10 * 366 * 86400,
                           &q->retention_s, why)))
            return err;
    }
    return LT_OK;
}

/* procedures: a path (a file, or a directory of *.yaml) or a list of them; calendar: a path.
 * Relative paths resolve against the config's directory; the files are read by the broker
 * (procedure.h), which names them in its refusals. */
static lt_err read_procedures(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *pr = lt_ycfg_get(root, "procedures");
    if (pr) {
        bool one = lt_ycfg_kind(pr) == LT_Y_SCALAR;
        size_t n = one ? 1 : lt_ycfg_len(pr);
        if (lt_ycfg_kind(pr) == LT_Y_MAP || n == 0)
            return lt_ycfg_fail(pr, why, "expected a path (a file or a directory of procedure "
                                         "files) or a list of them");
        if (!(c->procedures = calloc(n, sizeof *c->procedures)))
            return lt_fail(why, LT_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const lt_ynode *it = one ? pr : lt_ycfg_at(pr, i);
            const char *p = lt_ycfg_scalar(it);
            if (!p || !*p)
                return lt_ycfg_fail(it, why, "expected a path");
            size_t len = strlen(lt_ycfg_dir(root)) + strlen(p) + 2;
            if (!(c->procedures[i] = malloc(len)))
                return lt_fail(why, LT_ENOMEM, "out of memory");
            c->nprocedures = i + 1;
            if (p[0] == '/')
                snprintf(c->procedures[i], len, "%s", p);
            else
                snprintf(c->procedures[i], len, "%s/%s", lt_ycfg_dir(root), p);
        }
    }
    if (lt_ycfg_get(root, "calendar"))
        return lt_ycfg_filepath(root, "calendar", NULL, &c->calendar, why);
    return LT_OK;
}

/* ---- the network: broker.identity, peers, links (docs/network.md) ------------------------ */

bool lt_broker_config_hop_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n <= 64 && queue_name_ok(s);
}

const lt_bcfg_peer *lt_broker_config_peer(const lt_broker_cfg *cfg, const char *name,
                                          bool by_agency)
{
    for (size_t i = 0; name && i < cfg->npeers; i++) {
        const char *k = by_agency ? cfg->peers[i].agency : cfg->peers[i].name;
        if (k && strcmp(k, name) == 0) /* k is NULL while the entry is being read */
            return &cfg->peers[i];
    }
    return NULL;
}

bool lt_broker_config_z85_key_ok(const char *s)
{
    uint8_t raw[32];
    return strlen(s) == 40 && zmq_z85_decode(raw, s) != NULL;
}

bool lt_broker_config_endpoint_is_local(const char *e)
{
    if (strncmp(e, "ipc://", 6) == 0 || strncmp(e, "inproc://", 9) == 0)
        return true;
    if (strncmp(e, "tcp://", 6) != 0)
        return false;
    e += 6;
    return strncmp(e, "127.", 4) == 0 || strncmp(e, "localhost:", 10) == 0 ||
           strncmp(e, "[::1]:", 6) == 0;
}

/* The optional certificate of a CURVE key's agency (docs/network.md "Binding a CURVE key"):
 * a resolved path into *out, NULL when absent. The file is read by the ZAP key table. */
static lt_err cert_at(const lt_ynode *map, char **out, lt_why *why)
{
    *out = NULL;
    return lt_ycfg_get(map, "cert") ? lt_ycfg_filepath(map, "cert", NULL, out, why) : LT_OK;
}

/* A Z85 CURVE public key under key of map into out (41 bytes); absent: "" unless required. */
static lt_err z85_at(const lt_ynode *map, const char *key, bool required, char out[41],
                     lt_why *why)
{
    const char *k;
    lt_err err = lt_ycfg_str(map, key, required ? NULL : "", &k, why);
    if (err)
        return err;
    if (k[0] && !lt_broker_config_z85_key_ok(k))
        return lt_ycfg_fail(lt_ycfg_get(map, key), why,
                            "expected a CURVE public key: 40 characters of Z85 text "
                            "(lienthong curve-keygen)");
    snprintf(out, 41, "%s", k);
    return LT_OK;
}

static lt_err read_curve(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *b = lt_ycfg_get(root, "broker"), *cv = NULL;
    lt_err err;
    if (b && ((err = lt_ycfg_map(b, "curve", false, &cv, why)) ||
              (err = lt_ycfg_bool(b, "allow_plaintext", false, &c->allow_plaintext, why))))
        return err;
    if (cv) {
        if ((err = lt_ycfg_check_keys(cv, curve_keys, why)) ||
            (err = str_opt(cv, "listen", NULL, &c->curve_listen, why)) ||
            (err = lt_ycfg_filepath(cv, "secret_key_file", NULL, &c->curve_secret_file, why)))
            return err;
        if (!endpoint_ok(c->curve_listen))
            return lt_ycfg_fail(lt_ycfg_get(cv, "listen"), why,
                                "expected tcp://HOST:PORT or ipc://PATH, got '%s'",
                                c->curve_listen);
    }
    if (!c->allow_plaintext && !lt_broker_config_endpoint_is_local(c->listen))
        return lt_ycfg_fail(b ? lt_ycfg_get(b, "listen") : root, why,
                            "%s is reachable from other machines without encryption: bind "
                            "broker.listen to 127.0.0.1 and serve the network on broker.curve."
                            "listen, or set broker.allow_plaintext: true (a trusted network "
                            "only)", c->listen);
    const lt_ynode *seq = NULL;
    err = lt_ycfg_seq(root, "curve_clients", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!(c->curve_clients = calloc(n, sizeof *c->curve_clients)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map with agency and key");
        if ((err = lt_ycfg_check_keys(m, curve_client_keys, why)))
            return err;
        lt_bcfg_curve_client *cc = &c->curve_clients[c->ncurve_clients++];
        cc->line = lt_ycfg_line(m);
        const lt_ynode *an = lt_ycfg_get(m, "agency");
        if (!an)
            return lt_ycfg_fail(m, why, "required key 'agency' is missing");
        if ((err = agency_at(an, &cc->agency, why)) ||
            (err = z85_at(m, "key", true, cc->key, why)) || (err = cert_at(m, &cc->cert, why)))
            return err;
        for (size_t j = 0; j + 1 < c->ncurve_clients; j++)
            if (strcmp(c->curve_clients[j].key, cc->key) == 0)
                return lt_ycfg_fail(lt_ycfg_get(m, "key"), why,
                                    "this key is already bound to %s (line %d): one key, one "
                                    "agency", c->curve_clients[j].agency,
                                    c->curve_clients[j].line);
    }
    return LT_OK;
}

static lt_err read_identity(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *b = lt_ycfg_get(root, "broker"), *id = NULL;
    lt_err err;
    if (!b || (err = lt_ycfg_map(b, "identity", false, &id, why)) || !id)
        return b ? err : LT_OK;
    if ((err = lt_ycfg_check_keys(id, identity_keys, why)) ||
        (err = lt_ycfg_filepath(id, "key", NULL, &c->identity_key, why)) ||
        (err = lt_ycfg_filepath(id, "cert", NULL, &c->identity_cert, why)))
        return err;
    return LT_OK;
}

static lt_err read_peers(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(root, "peers", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!(c->peers = calloc(n, sizeof *c->peers)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map with name, agency and relay");
        if ((err = lt_ycfg_check_keys(m, peer_keys, why)))
            return err;
        lt_bcfg_peer *p = &c->peers[c->npeers++];
        p->line = lt_ycfg_line(m);
        const char *name;
        if ((err = lt_ycfg_str(m, "name", NULL, &name, why)))
            return err;
        const lt_ynode *nn = lt_ycfg_get(m, "name");
        if (!lt_broker_config_hop_name_ok(name))
            return lt_ycfg_fail(nn, why, "peer name '%s' must be 1..64 bytes of A-Z a-z 0-9 _ - .",
                                name);
        if (strcmp(name, c->name) == 0)
            return lt_ycfg_fail(nn, why, "peer %s is this broker's own name", name);
        if (lt_broker_config_peer(c, name, false))
            return lt_ycfg_fail(nn, why, "peer %s is listed twice", name);
        if ((err = dup_into(&p->name, name, why)))
            return err;
        const lt_ynode *an = lt_ycfg_get(m, "agency");
        if (!an)
            return lt_ycfg_fail(m, why, "required key 'agency' is missing");
        char *agency;
        if ((err = agency_at(an, &agency, why)))
            return err;
        if (lt_broker_config_peer(c, agency, true)) {
            free(agency);
            return lt_ycfg_fail(an, why, "another peer already has this agency id");
        }
        p->agency = agency;
        if ((err = patterns_at(m, "relay", false, &p->relay, &p->nrelay, why)) ||
            (err = z85_at(m, "curve_key", false, p->curve_key, why)) ||
            (err = cert_at(m, &p->cert, why)))
            return err;
        if (p->cert && !p->curve_key[0])
            return lt_ycfg_fail(lt_ycfg_get(m, "cert"), why,
                                "cert binds the peer's curve_key to its certificate: give "
                                "curve_key too");
    }
    return LT_OK;
}

static lt_err read_links(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    const lt_ynode *seq = NULL;
    lt_err err = lt_ycfg_seq(root, "links", false, &seq, why);
    size_t n = seq ? lt_ycfg_len(seq) : 0;
    if (err || n == 0)
        return err;
    if (!c->identity_key)
        return lt_ycfg_fail(seq, why, "links need broker.identity (key and cert): a link "
                                      "authenticates with it at both ends");
    if (!(c->links = calloc(n, sizeof *c->links)))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lt_ynode *m = lt_ycfg_at(seq, i);
        if (lt_ycfg_kind(m) != LT_Y_MAP)
            return lt_ycfg_fail(m, why, "expected a map with peer, endpoint and forward or "
                                        "receive");
        if ((err = lt_ycfg_check_keys(m, link_keys, why)))
            return err;
        lt_bcfg_link *l = &c->links[c->nlinks++];
        l->line = lt_ycfg_line(m);
        const char *peer, *endpoint, *fwd, *rcv, *name;
        if ((err = lt_ycfg_str(m, "peer", NULL, &peer, why)) ||
            (err = lt_ycfg_str(m, "endpoint", NULL, &endpoint, why)) ||
            (err = lt_ycfg_str(m, "forward", "", &fwd, why)) ||
            (err = lt_ycfg_str(m, "receive", "", &rcv, why)) ||
            (err = u32_opt(m, "credit", LT_BCFG_DEFAULT_LINK_CREDIT, 1, 10000, &l->credit,
                           why)) ||
            (err = u32_opt(m, "retry_max_ms", LT_BCFG_DEFAULT_LINK_RETRY_MAX_MS, 100, 600000,
                           &l->retry_max_ms, why)))
            return err;
        if (!lt_broker_config_peer(c, peer, false))
            return lt_ycfg_fail(lt_ycfg_get(m, "peer"), why, "no peer named '%s' in peers",
                                peer);
        if (!endpoint_ok(endpoint) || strchr(endpoint, '*'))
            return lt_ycfg_fail(lt_ycfg_get(m, "endpoint"), why,
                                "expected tcp://HOST:PORT or ipc://PATH, got '%s'", endpoint);
        if ((fwd[0] != '\0') == (rcv[0] != '\0'))
            return lt_ycfg_fail(m, why, "a link needs exactly one of forward (a local queue) "
                                        "and receive (a queue at the peer)");
        l->receive = rcv[0] != '\0';
        const char *queue = l->receive ? rcv : fwd;
        const lt_ynode *qn = lt_ycfg_get(m, l->receive ? "receive" : "forward");
        if (!queue_name_ok(queue))
            return lt_ycfg_fail(qn, why, "queue name '%s' must be 1..%d bytes of A-Z a-z 0-9 _ - .",
                                queue, LT_STORE_QUEUE_NAME_MAX);
        if (!l->receive && !lt_broker_config_queue(c, queue))
            return lt_ycfg_fail(qn, why, "no queue named '%s' in queues", queue);
        char dflt[LT_STORE_QUEUE_NAME_MAX + 72]; /* peer (64) "." queue: checked below */
        snprintf(dflt, sizeof dflt, "%s.%s", peer, queue);
        if ((err = lt_ycfg_str(m, "name", dflt, &name, why)))
            return err;
        if (!queue_name_ok(name))
            return lt_ycfg_fail(m, why, "link name '%s' must be 1..%d bytes of A-Z a-z 0-9 _ - "
                                        ".", name, LT_STORE_QUEUE_NAME_MAX);
        for (size_t j = 0; j + 1 < c->nlinks; j++)
            if (strcmp(c->links[j].name, name) == 0)
                return lt_ycfg_fail(m, why, "link %s is already defined (line %d)", name,
                                    c->links[j].line);
        if ((err = dup_into(&l->name, name, why)) || (err = dup_into(&l->peer, peer, why)) ||
            (err = dup_into(&l->endpoint, endpoint, why)) ||
            (err = dup_into(&l->queue, queue, why)))
            return err;
    }
    return LT_OK;
}

static lt_err read_net(const lt_ynode *root, lt_broker_cfg *c, lt_why *why)
{
    lt_err err;
    if ((err = read_curve(root, c, why)) || (err = read_identity(root, c, why)) ||
        (err = read_peers(root, c, why)) || (err = read_links(root, c, why)))
        return err;
    for (size_t i = 0; i < c->npeers; i++) /* one key, one identity, for ZAP */
        for (size_t j = 0; c->peers[i].curve_key[0] && j < c->ncurve_clients; j++)
            if (strcmp(c->peers[i].curve_key, c->curve_clients[j].key) == 0)
                return lt_fail(why, LT_ECONFIG,
                               "%s:%d: peers[%zu].curve_key: already bound to %s (line %d): "
                               "one key, one identity", c->file, c->peers[i].line, i,
                               c->curve_clients[j].agency, c->curve_clients[j].line);
    if ((c->npeers > 0 || c->nlinks > 0) && !lt_broker_config_hop_name_ok(c->name))
        return lt_ycfg_fail(lt_ycfg_get(lt_ycfg_get(root, "broker"), "name"), why,
                            "with peers or links the broker's name goes into hops: it must be "
                            "1..64 bytes of A-Z a-z 0-9 _ - ., got '%s'", c->name);
    return LT_OK;
}

/* ---- load --------------------------------------------------------------------------------- */

static lt_err from_tree(const lt_ynode *root, lt_broker_cfg **out, lt_why *why)
{
    lt_broker_cfg *c = calloc(1, sizeof *c);
    if (!c)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err err;
    if ((err = lt_ycfg_check_keys(root, top_keys, why)) ||
        (err = dup_into(&c->file, lt_ycfg_file(root), why)) ||
        (err = read_broker(root, c, why)) || (err = read_trust(root, c, why)) ||
        (err = read_admins(root, c, why)) || (err = read_acl(root, c, why)) ||
        (err = read_queues(root, c, why)) || (err = read_procedures(root, c, why)) ||
        (err = read_net(root, c, why))) {
        lt_broker_config_destroy(&c);
        return err;
    }
    *out = c;
    return LT_OK;
}

lt_err lt_broker_config_load(const char *path, lt_broker_cfg **out, lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_load(path, &root, why);
    if (err)
        return err;
    err = from_tree(root, out, why);
    lt_ycfg_free(&root);
    return err;
}

lt_err lt_broker_config_parse(const char *label, const char *text, size_t len,
                              lt_broker_cfg **out, lt_why *why)
{
    lt_ynode *root;
    lt_err err = lt_ycfg_parse(label ? label : "broker.yaml", text, len, &root, why);
    if (err)
        return err;
    err = from_tree(root, out, why);
    lt_ycfg_free(&root);
    return err;
}

void lt_broker_config_destroy(lt_broker_cfg **cp)
{
    if (!cp || !*cp)
        return;
    lt_broker_cfg *c = *cp;
    free(c->file);
    free(c->name);
    free(c->listen);
    free(c->data_dir);
    free(c->admin_listen);
    free(c->admin_token_file);
    free(c->ca);
    free(c->crl);
    strv_free(c->admins, c->nadmins);
    strv_free(c->procedures, c->nprocedures);
    free(c->calendar);
    for (size_t i = 0; i < c->nacl; i++) {
        free(c->acl[i].agency);
        free(c->acl[i].name);
        strv_free(c->acl[i].publish, c->acl[i].npublish);
    }
    free(c->acl);
    for (size_t i = 0; i < c->nqueues; i++) {
        free(c->queues[i].name);
        free(c->queues[i].owner);
        strv_free(c->queues[i].bind, c->queues[i].nbind);
    }
    free(c->queues);
    free(c->identity_key);
    free(c->identity_cert);
    free(c->curve_listen);
    free(c->curve_secret_file);
    for (size_t i = 0; i < c->ncurve_clients; i++) {
        free(c->curve_clients[i].agency);
        free(c->curve_clients[i].cert);
    }
    free(c->curve_clients);
    for (size_t i = 0; i < c->npeers; i++) {
        free(c->peers[i].name);
        free(c->peers[i].agency);
        free(c->peers[i].cert);
        strv_free(c->peers[i].relay, c->peers[i].nrelay);
    }
    free(c->peers);
    for (size_t i = 0; i < c->nlinks; i++) {
        free(c->links[i].name);
        free(c->links[i].peer);
        free(c->links[i].endpoint);
        free(c->links[i].queue);
    }
    free(c->links);
    free(c);
    *cp = NULL;
}

const lt_bcfg_queue *lt_broker_config_queue(const lt_broker_cfg *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->nqueues; i++)
        if (strcmp(cfg->queues[i].name, name) == 0)
            return &cfg->queues[i];
    return NULL;
}

/* ---- ACL ---------------------------------------------------------------------------------- */

static lt_err build_acl(const lt_broker_cfg *acl_from, const lt_broker_cfg *owners_from,
                        lt_acl **out, lt_why *why)
{
    lt_acl *a;
    if (lt_acl_new(&a))
        return lt_fail(why, LT_ENOMEM, "out of memory");
    lt_err err = LT_OK;
    for (size_t i = 0; i < acl_from->nadmins && !err; i++)
        err = lt_acl_add_admin(a, acl_from->admins[i], why);
    for (size_t i = 0; i < acl_from->nacl && !err; i++) {
        const lt_bcfg_acl *e = &acl_from->acl[i];
        err = lt_acl_add_agency(a, e->agency, why);
        for (size_t j = 0; j < e->npublish && !err; j++)
            err = lt_acl_allow_publish(a, e->agency, e->publish[j], why);
    }
    for (size_t i = 0; i < owners_from->nqueues && !err; i++)
        err = lt_acl_set_owner(a, owners_from->queues[i].name, owners_from->queues[i].owner,
                               why);
    for (size_t i = 0; i < acl_from->npeers && !err; i++) {
        const lt_bcfg_peer *p = &acl_from->peers[i];
        err = lt_acl_add_peer(a, p->agency, p->name, why);
        for (size_t j = 0; j < p->nrelay && !err; j++)
            err = lt_acl_allow_relay(a, p->agency, p->relay[j], why);
    }
    if (err) {
        lt_acl_destroy(&a);
        return err;
    }
    *out = a;
    return LT_OK;
}

/* May the caller create an entry in the directory that holds path? */
static lt_err parent_writable(const char *file, const char *key, const char *path, lt_why *why)
{
    char *copy = strdup(path);
    if (!copy)
        return lt_fail(why, LT_ENOMEM, "no memory");
    const char *dir = dirname(copy);
    lt_err e = LT_OK;
    if (access(dir, W_OK | X_OK) != 0)
        e = lt_fail(why, LT_ECONFIG, "%s: %s: %s does not exist and cannot be created in %s: %s",
                    file, key, path, dir, strerror(errno));
    free(copy);
    return e;
}

lt_err lt_broker_config_check_paths(const lt_broker_cfg *cfg, size_t min_token, lt_why *why)
{
    const char *file = cfg->file ? cfg->file : "broker.yaml";
    struct stat st;
    const char *dd = cfg->data_dir;
    if (stat(dd, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return lt_fail(why, LT_ECONFIG, "%s: broker.data_dir: %s is not a directory", file,
                           dd);
        if (access(dd, W_OK | X_OK) != 0)
            return lt_fail(why, LT_ECONFIG, "%s: broker.data_dir: %s is not writable: %s", file,
                           dd, strerror(errno));
    } else {
        lt_err e = errno == ENOENT ? parent_writable(file, "broker.data_dir", dd, why)
                                   : lt_fail(why, LT_ECONFIG, "%s: broker.data_dir: %s: %s",
                                             file, dd, strerror(errno));
        if (e != LT_OK)
            return e;
    }

    const char *tf = cfg->admin_token_file;
    FILE *f = fopen(tf, "r");
    if (!f)
        return errno == ENOENT ? parent_writable(file, "broker.admin.token_file", tf, why)
                               : lt_fail(why, LT_ECONFIG, "%s: broker.admin.token_file: %s: %s",
                                         file, tf, strerror(errno));
    char line[512];
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    size_t n = strlen(line);
    memset(line, 0, sizeof line);
    if (n < min_token)
        return lt_fail(why, LT_ECONFIG,
                       "%s: broker.admin.token_file: %s: token shorter than %zu characters", file,
                       tf, min_token);
    return LT_OK;
}

lt_err lt_broker_config_acl(const lt_broker_cfg *cfg, lt_acl **out, lt_why *why)
{
    return build_acl(cfg, cfg, out, why);
}

lt_err lt_broker_config_acl_next(const lt_broker_cfg *current, const lt_broker_cfg *next,
                                 lt_acl **out, lt_why *why)
{
    lt_err err = LT_OK;
    /* Queues are wired into the store and the router at start: a change there is refused
     * loudly rather than half-applied. */
    for (size_t i = 0; i < next->nqueues && !err; i++) {
        const lt_bcfg_queue *q = &next->queues[i];
        const lt_bcfg_queue *was = lt_broker_config_queue(current, q->name);
        if (!was)
            err = lt_fail(why, LT_ECONFIG,
                          "%s:%d: queues: queue %s is new: adding a queue needs a restart",
                          next->file, q->line, q->name);
        else if (strcmp(was->owner, q->owner) != 0)
            err = lt_fail(why, LT_ECONFIG,
                          "%s:%d: queues: the owner of %s changed: that needs a restart",
                          next->file, q->line, q->name);
    }
    for (size_t i = 0; i < current->nqueues && !err; i++)
        if (!lt_broker_config_queue(next, current->queues[i].name))
            err = lt_fail(why, LT_ECONFIG,
                          "%s: queues: queue %s was removed: removing a queue needs a restart",
                          next->file, current->queues[i].name);
    return err ? err : build_acl(next, current, out, why);
}

lt_err lt_broker_config_reload_acl(const char *path, const lt_broker_cfg *current,
                                   lt_acl **out, lt_why *why)
{
    lt_broker_cfg *next;
    lt_err err = lt_broker_config_load(path, &next, why);
    if (err)
        return err;
    err = lt_broker_config_acl_next(current, next, out, why);
    lt_broker_config_destroy(&next);
    return err;
}

bool lt_broker_config_due_ok(const lt_broker_cfg *cfg, int64_t due_ms, int64_t now_ms,
                             lt_why *why)
{
    int64_t max = (int64_t)cfg->max_schedule_days * 86400 * 1000;
    if (due_ms <= now_ms || due_ms - now_ms <= max)
        return true;
    lt_fail(why, LT_ESCHEDULE,
            "deliver_at_unix_ms %lld is %lld days ahead; this broker schedules at most %u days "
            "ahead (broker.max_schedule_days)",
            (long long)due_ms, (long long)((due_ms - now_ms) / 86400000), cfg->max_schedule_days);
    return false;
}
