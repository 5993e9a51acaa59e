/*
 * broker_config.h - the broker's configuration: broker.yaml (format in docs/config.md),
 * read with lib/ycfg.h, validated completely, every option defaulted.
 *
 * A bad file is refused with "file:line: key: reason" in why (LT_ECONFIG): unknown keys,
 * wrong types, out-of-range numbers, malformed agency ids, invalid topic patterns,
 * duplicate queue names, a queue bound to nothing, an ACL entry listed twice...
 * Relative paths are resolved against the directory of the file.
 *
 * A loaded lt_broker_cfg is immutable: read it from any thread. On SIGHUP the broker reads
 * the file again and builds from it the ACL (admins, acl, peers, with the queues' owners of
 * the running config: lt_broker_config_acl_next), the CURVE key table and the links; the
 * config it started with stays its b->cfg.
 */
#ifndef LT_BROKER_CONFIG_H
#define LT_BROKER_CONFIG_H

#include "acl.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults (one machine, `lienthong dev-init`). */
#define LT_BCFG_DEFAULT_NAME "lienthong"
#define LT_BCFG_DEFAULT_LISTEN "tcp://127.0.0.1:7400"
#define LT_BCFG_DEFAULT_DATA_DIR "data"
#define LT_BCFG_DEFAULT_MAP_SIZE_MB 65536
#define LT_BCFG_DEFAULT_MAX_FRAME_BYTES 4194304
#define LT_BCFG_DEFAULT_DEDUP_WINDOW_S 86400
#define LT_BCFG_DEFAULT_MAX_SCHEDULE_DAYS 400
#define LT_BCFG_DEFAULT_SEND_HWM 100000
#define LT_BCFG_DEFAULT_ADMIN_MIN_FREE_MB 1024
#define LT_BCFG_DEFAULT_COMMIT_MAX_BATCH 4096
#define LT_BCFG_DEFAULT_ADMIN_LISTEN "127.0.0.1:7401"
#define LT_BCFG_DEFAULT_ADMIN_TOKEN_FILE "admin.token"
#define LT_BCFG_DEFAULT_CA "ca/ca.cert.pem"
#define LT_BCFG_DEFAULT_CRL "ca/crl.pem"
#define LT_BCFG_DEFAULT_CLOCK_SKEW_S 300
#define LT_BCFG_DEFAULT_ACK_WAIT_S 30
#define LT_BCFG_DEFAULT_MAX_DELIVER 5
#define LT_BCFG_DEFAULT_MAX_ACK_PENDING 1000
#define LT_BCFG_DEFAULT_MAX_DEPTH 1000000
#define LT_BCFG_DEFAULT_MAX_BYTES 1073741824ULL
#define LT_BCFG_DEFAULT_RETENTION_S 86400
/* backoff_s default: [1, 5, 30] */
#define LT_BCFG_MAX_BACKOFF 16

typedef struct lt_bcfg_acl {
    char *agency;             /* validated agency id */
    char *name;               /* display name (UTF-8, < 256 bytes) for the dashboard; NULL if
                                 not given. Never a metrics label. */
    char **publish;           /* validated patterns; may be empty (publishes nothing) */
    size_t npublish;
    int line;
} lt_bcfg_acl;

typedef struct lt_bcfg_queue {
    char *name;               /* [A-Za-z0-9_.-], 1..LT_STORE_QUEUE_NAME_MAX bytes, unique */
    char *owner;              /* agency id: the only consumer */
    char **bind;              /* validated patterns, at least one */
    size_t nbind;
    uint32_t ack_wait_s;      /* 1..86400, default 30 */
    uint32_t max_deliver;     /* 1..1000, default 5 */
    uint32_t backoff_s[LT_BCFG_MAX_BACKOFF]; /* delay before the 2nd, 3rd... delivery; the
                                              * last one repeats */
    size_t nbackoff;          /* 0..LT_BCFG_MAX_BACKOFF; default [1, 5, 30] */
    uint32_t max_ack_pending; /* 1..1000000, default 1000 */
    uint64_t max_depth;       /* 0 = unlimited; default 1000000 */
    uint64_t max_bytes;       /* 0 = unlimited; default 1 GiB */
    uint64_t retention_s;     /* 0..10 years; default 86400 */
    int line;
} lt_bcfg_queue;

/* The network (docs/network.md). A peer is another broker that may publish here with
 * Publish.hops (it authenticates with its identity certificate like any agency); a link is a
 * thread of this broker that moves a queue's records to or from a peer. */
#define LT_BCFG_DEFAULT_LINK_CREDIT 256
#define LT_BCFG_DEFAULT_LINK_RETRY_MAX_MS 5000

/* A CURVE public key (Z85 text, 40 characters) bound to an agency (curve_clients). */
typedef struct lt_bcfg_curve_client {
    char *agency;
    char key[41];
    char *cert; /* resolved path of the agency's certificate (PEM), NULL if not given: then
                   ZAP also checks it (chain, validity, CRL) at every handshake */
    int line;
} lt_bcfg_curve_client;

typedef struct lt_bcfg_peer {
    char *name;      /* its broker.name: what its links put in hops */
    char *agency;    /* the agency id of its identity certificate (what its AUTH proves) */
    char curve_key[41]; /* its CURVE public key (Z85), "" if none: the key its links present
                           here and the server key links to it expect */
    char *cert;      /* resolved path of its identity certificate, NULL if not given (as
                        lt_bcfg_curve_client.cert) */
    char **relay;    /* topic patterns it may relay here; may be empty (relays nothing) */
    size_t nrelay;
    int line;
} lt_bcfg_peer;

typedef struct lt_bcfg_link {
    char *name;              /* unique; default "<peer>.<queue>" */
    char *peer;              /* a peers[] name */
    char *endpoint;          /* the peer broker's ZeroMQ endpoint */
    char *queue;             /* forward: a local queue; receive: a queue at the peer; owned by
                                this broker's identity in both cases */
    bool receive;            /* false: forward (here -> peer); true: receive (peer -> here) */
    uint32_t credit;         /* deliveries in flight on the link, 1..10000 (default 256) */
    uint32_t retry_max_ms;   /* reconnect / retry back-off cap, 100..600000 (default 5000) */
    int line;
} lt_bcfg_link;

typedef struct lt_broker_cfg {
    char *file;               /* the file it was read from */
    /* broker: */
    char *name;
    char *listen;             /* ZeroMQ endpoint */
    char *data_dir;           /* resolved path */
    uint64_t map_size_mb;     /* 1..16777216 (16 TiB) */
    uint32_t verify_threads;  /* 0 = one per core; at most 256 */
    uint32_t max_frame_bytes; /* 1024..268435456 */
    uint64_t dedup_window_s;  /* 1..31 days */
    uint32_t max_schedule_days; /* a publish may be scheduled this far ahead: 1..3660 */
    uint32_t send_hwm;          /* frames queued per connection before sends to it wait */
    uint32_t commit_max_batch;/* 1..1000000 */
    char *admin_listen;       /* host:port */
    char *admin_token_file;   /* resolved path */
    bool admin_allow_remote;  /* the admin server may listen beyond loopback */
    uint64_t admin_min_free_mb; /* /readyz fails with less free disk under data_dir */
    /* trust: */
    char *ca;                 /* resolved path */
    char *crl;                /* resolved path */
    uint32_t clock_skew_s;    /* 0..86400 */
    /* admins, acl, queues: */
    char **admins;
    size_t nadmins;
    lt_bcfg_acl *acl;
    size_t nacl;
    lt_bcfg_queue *queues;
    size_t nqueues;
    /* procedures (docs/procedures.md): resolved paths, each a procedure file or a directory
     * of them; none: dossier events are not checked. calendar: resolved path or NULL (then
     * Saturday and Sunday are the only days off). */
    char **procedures;
    size_t nprocedures;
    char *calendar;
    /* CURVE (docs/network.md): broker.curve.listen is bound with CURVE, its secret key
     * from broker.curve.secret_key_file; curve_clients and peers' curve_key map client
     * keys to agencies (ZAP). A non-loopback broker.listen needs allow_plaintext. */
    char *curve_listen;       /* NULL: no CURVE endpoint */
    char *curve_secret_file;  /* resolved path */
    bool allow_plaintext;
    lt_bcfg_curve_client *curve_clients;
    size_t ncurve_clients;
    /* the network: broker.identity, peers, links */
    char *identity_key;       /* resolved path; NULL when no identity is configured */
    char *identity_cert;      /* resolved path; NULL when no identity is configured */
    lt_bcfg_peer *peers;
    size_t npeers;
    lt_bcfg_link *links;
    size_t nlinks;
} lt_broker_cfg;

/* Read and validate the broker config at path. On LT_OK *out is owned by the caller
 * (lt_broker_config_destroy). LT_EIO: unreadable; LT_ECONFIG: invalid, with
 * "file:line: key: reason" in why; LT_ENOMEM. */
lt_err lt_broker_config_load(const char *path, lt_broker_cfg **out, lt_why *why);

/* As lt_broker_config_load, from the len bytes at text (no file is read); label names the
 * source in messages, and relative paths resolve against its directory (as for a file). */
lt_err lt_broker_config_parse(const char *label, const char *text, size_t len,
                              lt_broker_cfg **out, lt_why *why);

/* Accepts NULL; clears *c. */
void lt_broker_config_destroy(lt_broker_cfg **c);

/* Build the ACL of cfg: each acl entry's publish patterns, the admins, each queue's
 * owner, and the peers with their relay patterns. On LT_OK *out is owned by the caller (lt_acl_destroy). LT_ENOMEM. */
lt_err lt_broker_config_acl(const lt_broker_cfg *cfg, lt_acl **out, lt_why *why);

/* SIGHUP: re-read path and build the ACL from its admins and acl sections, and the owners
 * of the queues of current (queues cannot change without a restart: a queue added,
 * removed, or given another owner in the file is refused with LT_ECONFIG so the operator
 * learns it was not applied). The whole file must still be valid; on any error the
 * caller keeps its ACL. *out owned by the caller. LT_EIO, LT_ECONFIG, LT_ENOMEM. */
lt_err lt_broker_config_reload_acl(const char *path, const lt_broker_cfg *current,
                                   lt_acl **out, lt_why *why);

/* The part of lt_broker_config_reload_acl after the load: the ACL of next (a config read
 * again on SIGHUP; its peers and their relay patterns included) with the queue owners of
 * current, refused (LT_ECONFIG) when next adds, removes or re-owns a queue. *out owned by
 * the caller. LT_ECONFIG, LT_ENOMEM. */
lt_err lt_broker_config_acl_next(const lt_broker_cfg *current, const lt_broker_cfg *next,
                                 lt_acl **out, lt_why *why);

/* For --check: the two places the broker writes, tested as the calling user without
 * creating anything: broker.data_dir (an existing directory it may write and search, or a
 * missing one whose parent it may write) and broker.admin.token_file (a readable file whose
 * first line holds at least min_token characters, or a missing one whose directory it may
 * write). Run by systemd's ExecStartPre, the sandbox is the service's own, so a place the
 * unit makes read-only (ProtectSystem=strict) is refused before the start, not after.
 * LT_ECONFIG with "file: key: path: reason". */
lt_err lt_broker_config_check_paths(const lt_broker_cfg *cfg, size_t min_token, lt_why *why);

/* May a publish be scheduled for due_ms at now_ms (not further ahead than
 * max_schedule_days)? On false, why says so (code LT_ESCHEDULE). */
bool lt_broker_config_due_ok(const lt_broker_cfg *cfg, int64_t due_ms, int64_t now_ms,
                             lt_why *why);
/* The peer named name (or, by_agency, whose agency is name) in cfg, or NULL. */
const lt_bcfg_peer *lt_broker_config_peer(const lt_broker_cfg *cfg, const char *name,
                                          bool by_agency);

/* Whether s is a CURVE public or secret key in Z85 text (40 characters that decode). */
bool lt_broker_config_z85_key_ok(const char *s);

/* Whether a ZeroMQ endpoint is on this machine only (127.0.0.0/8, ::1, localhost, ipc://). */
bool lt_broker_config_endpoint_is_local(const char *endpoint);

/* Whether s may name a broker in Publish.hops: 1..64 bytes of A-Z a-z 0-9 _ - . */
bool lt_broker_config_hop_name_ok(const char *s);

/* The queue named name in cfg, or NULL. */
const lt_bcfg_queue *lt_broker_config_queue(const lt_broker_cfg *cfg, const char *name);

#endif
