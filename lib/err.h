/*
 * err.h - lienthong's error codes and the reason strings that travel with them.
 *
 * Every action returns an lt_err (LT_OK = 0). A failure that a person will read (a log line,
 * a NACK sent to a publisher, a CLI message) also fills an lt_why with one line saying what
 * and why. Each code has a stable upper-case name (lt_err_name) used on the wire and in JSON:
 * those names are part of the contract with agencies, so never renumber or rename one.
 *
 * Thread-safe: the tables are constant; an lt_why belongs to its caller.
 */
#ifndef LT_LIB_ERR_H
#define LT_LIB_ERR_H

#include <stddef.h>

typedef enum lt_err {
    LT_OK = 0,
    /* generic */
    LT_ENOMEM = 1,  /* out of memory */
    LT_EINVAL = 2,  /* bad argument or value (a config value, a CLI option, a field) */
    LT_EIO = 3,     /* file or socket I/O failed */
    LT_ENOTFOUND = 4,
    LT_EEXIST = 5,
    LT_ETIMEDOUT = 6,
    LT_ECLOSED = 7,   /* peer or resource went away */
    LT_ECONFIG = 8,   /* config file unreadable or invalid */
    LT_ECRYPTO = 9,   /* OpenSSL failed for a reason that is not the input's fault */
    LT_EAGAIN = 10,   /* try again later (would block, no credit) */
    /* envelope and verification: each failure has its own code */
    LT_EPROTO = 20,           /* malformed bytes: not a valid envelope / frame / record */
    LT_ETOOBIG = 21,          /* over a size limit */
    LT_EHASH = 22,            /* payload does not match the header's SHA-256 */
    LT_ESIG = 23,             /* signature does not verify with the certificate's key */
    LT_EPROOF = 24,           /* batch proof does not lead to the signed root */
    LT_ECERT_UNKNOWN_CA = 25, /* certificate does not chain to the trust root */
    LT_ECERT_EXPIRED = 26,    /* certificate not valid now or at the header's created time */
    LT_ECERT_NOT_YET_VALID = 27,
    LT_ECERT_REVOKED = 28,    /* certificate listed in the CRL */
    LT_ECERT_INVALID = 29,    /* certificate unparsable, wrong key usage, no agency id */
    LT_EKEYID = 30,           /* header's signer key id is not the certificate's fingerprint */
    LT_EAGENCY_MISMATCH = 31, /* certificate's agency is not the header's source agency */
    LT_ESKEW = 32,            /* created time outside the allowed clock skew */
    LT_EAGENCY_ID = 33,       /* malformed agency id */
    LT_ECRL = 34,             /* CRL missing, unreadable, badly signed or expired */
    LT_EMSGID = 35,           /* message id all zero (or otherwise not an id) */
    LT_ERECORD_TYPE = 36,     /* record_type is not a record type of the contract */
    LT_EPAYLOAD = 37,         /* payload does not decode as its record_type */
    LT_ESCHEMA = 38,          /* schema_version is not one the contract defines */
    LT_ECERT_CA = 39,         /* a CA certificate (basicConstraints CA:TRUE) signed it */
    /* broker */
    LT_EACL = 40,         /* agency may not publish on / consume from this */
    LT_ENOROUTE = 41,     /* topic matches no queue */
    LT_EQUEUE_FULL = 42,  /* a target queue is past max_depth / max_bytes */
    LT_ESTORE = 43,       /* the durable store failed (disk, LMDB) */
    LT_ESTORE_FULL = 44,  /* the store's map or disk is full */
    LT_ENOQUEUE = 45,     /* no such queue */
    LT_ENOAUTH = 46,      /* the connection has not proved which agency it is */
    LT_EBADTOPIC = 47,    /* topic or pattern malformed */
    LT_ESHUTDOWN = 48,    /* broker is shutting down */
    LT_EID_CONFLICT = 49, /* (source, message id) already stored for a different record */
    LT_EBUSY = 50,        /* over this connection's share of the in-flight budget: retry */
    LT_EAUTH_PENDING = 51, /* an AUTH of this connection is still being checked */
    LT_ESCHEDULE = 56,     /* a due time the broker does not accept (too far ahead) */
    LT_ENOT_SCHEDULED = 57, /* cancel: the message is not (or no longer) scheduled */
    LT_EPROCEDURE = 58,     /* a dossier event out of its procedure's order (wrong agency,
                             * a status that cannot follow, an unknown dossier's first step) */
    /* the network (links between brokers) */
    LT_ELOOP = 70,        /* the record already passed the receiving broker */
    LT_EHOP_LIMIT = 71,   /* the record passed too many brokers */
    LT_ENOT_PEER = 72,    /* hops given by a session that is not a peer broker */
    /* adapters */
    LT_EENCODING = 60,    /* bytes are not text in the declared / any detected encoding */
    LT_EFORMAT = 61,      /* input file malformed (CSV, fixed-width, XML, JSON) */
    LT_EVALIDATE = 62,    /* a field failed validation */
    LT_EDB = 63,          /* database sink failed */
    LT_EDB_REFUSED = 64,  /* the database refused a row (constraint, value of a wrong type) */
} lt_err;

/* One human-readable line (what and why), filled by the function that failed. */
#define LT_WHY_MAX 256
typedef struct lt_why {
    char msg[LT_WHY_MAX];
} lt_why;

/* Stable upper-case name of code ("BAD_SIGNATURE"), "UNKNOWN" for a value not listed. */
const char *lt_err_name(lt_err code);

/* Short English description of code ("signature does not verify"). */
const char *lt_err_str(lt_err code);

/* The code whose lt_err_name is name, or LT_EINVAL if none. */
lt_err lt_err_from_name(const char *name);

/* Record a failure: formats fmt into why (if why is not NULL) and returns code, so a
 * failing path reads `return lt_fail(why, LT_ESIG, "signature of %s ...", id);`. */
lt_err lt_fail(lt_why *why, lt_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append the pending OpenSSL error queue to why (after its current text) and clear the
 * queue, so an error never leaks into the next call. Returns code. */
lt_err lt_fail_ssl(lt_why *why, lt_err code, const char *what);

#endif
