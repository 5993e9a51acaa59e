/*
 * err.c - names and descriptions of lt_err codes, and lt_why formatting.
 */
#include "err.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct row {
    lt_err code;
    const char *name;
    const char *str;
};

static const struct row rows[] = {
    {LT_OK, "OK", "success"},
    {LT_ENOMEM, "NO_MEMORY", "out of memory"},
    {LT_EINVAL, "INVALID", "invalid argument or value"},
    {LT_EIO, "IO_ERROR", "input/output error"},
    {LT_ENOTFOUND, "NOT_FOUND", "not found"},
    {LT_EEXIST, "EXISTS", "already exists"},
    {LT_ETIMEDOUT, "TIMED_OUT", "timed out"},
    {LT_ECLOSED, "CLOSED", "connection or resource closed"},
    {LT_ECONFIG, "BAD_CONFIG", "configuration invalid"},
    {LT_ECRYPTO, "CRYPTO_ERROR", "cryptographic library failure"},
    {LT_EAGAIN, "TRY_AGAIN", "resource temporarily unavailable"},
    {LT_EPROTO, "MALFORMED", "malformed message"},
    {LT_ETOOBIG, "TOO_LARGE", "over the size limit"},
    {LT_EHASH, "BAD_PAYLOAD_HASH", "payload does not match the header's hash"},
    {LT_ESIG, "BAD_SIGNATURE", "signature does not verify"},
    {LT_EPROOF, "BAD_BATCH_PROOF", "batch proof does not lead to the signed root"},
    {LT_ECERT_UNKNOWN_CA, "UNKNOWN_CA", "certificate not issued by the trust root"},
    {LT_ECERT_EXPIRED, "CERT_EXPIRED", "certificate expired"},
    {LT_ECERT_NOT_YET_VALID, "CERT_NOT_YET_VALID", "certificate not yet valid"},
    {LT_ECERT_REVOKED, "CERT_REVOKED", "certificate revoked"},
    {LT_ECERT_INVALID, "CERT_INVALID", "certificate invalid"},
    {LT_EKEYID, "KEY_ID_MISMATCH", "signer key id is not the certificate's fingerprint"},
    {LT_EAGENCY_MISMATCH, "AGENCY_MISMATCH", "certificate belongs to another agency"},
    {LT_ESKEW, "CLOCK_SKEW", "created time outside the allowed clock skew"},
    {LT_EAGENCY_ID, "BAD_AGENCY_ID", "malformed agency id"},
    {LT_ECRL, "CRL_ERROR", "revocation list unusable"},
    {LT_EMSGID, "BAD_MESSAGE_ID", "message id is not a usable id"},
    {LT_ERECORD_TYPE, "UNKNOWN_RECORD_TYPE", "record type is not in the contract"},
    {LT_EPAYLOAD, "BAD_PAYLOAD", "payload does not decode as its record type"},
    {LT_ESCHEMA, "UNKNOWN_SCHEMA_VERSION", "schema version is not in the contract"},
    {LT_ECERT_CA, "CERT_IS_CA", "a CA certificate may not sign records"},
    {LT_EACL, "ACL_DENIED", "not allowed by the access control list"},
    {LT_ENOROUTE, "NO_ROUTE", "topic matches no queue"},
    {LT_EQUEUE_FULL, "QUEUE_FULL", "a target queue is full"},
    {LT_ESTORE, "STORE_ERROR", "durable store failure"},
    {LT_ESTORE_FULL, "STORE_FULL", "durable store is full"},
    {LT_ENOQUEUE, "UNKNOWN_QUEUE", "no such queue"},
    {LT_ENOAUTH, "NOT_AUTHENTICATED", "connection not authenticated"},
    {LT_EBADTOPIC, "BAD_TOPIC", "malformed topic or pattern"},
    {LT_ESHUTDOWN, "SHUTTING_DOWN", "broker is shutting down"},
    {LT_EID_CONFLICT, "ID_CONFLICT", "message id already used by this agency for another record"},
    {LT_EBUSY, "BUSY", "over this connection's in-flight budget; retry later"},
    {LT_EAUTH_PENDING, "AUTH_IN_PROGRESS", "an authentication of this connection is being checked"},
    {LT_ESCHEDULE, "BAD_SCHEDULE", "the due time is further ahead than the broker accepts"},
    {LT_ENOT_SCHEDULED, "NOT_SCHEDULED", "the message is not scheduled (any more)"},
    {LT_EPROCEDURE, "PROCEDURE_VIOLATION", "the dossier event does not follow its procedure"},
    {LT_ELOOP, "LOOP", "the record already passed this broker"},
    {LT_EHOP_LIMIT, "HOP_LIMIT", "the record passed too many brokers"},
    {LT_ENOT_PEER, "NOT_A_PEER", "hops given by a session that is not a peer broker"},
    {LT_EENCODING, "BAD_ENCODING", "text encoding not recognised"},
    {LT_EFORMAT, "BAD_FORMAT", "input format malformed"},
    {LT_EVALIDATE, "VALIDATION_FAILED", "field failed validation"},
    {LT_EDB, "DATABASE_ERROR", "database failure"},
    {LT_EDB_REFUSED, "DATABASE_REFUSED", "database refused the row"},
};

static const struct row *find(lt_err code)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == code)
            return &rows[i];
    return NULL;
}

const char *lt_err_name(lt_err code)
{
    const struct row *r = find(code);
    return r ? r->name : "UNKNOWN";
}

const char *lt_err_str(lt_err code)
{
    const struct row *r = find(code);
    return r ? r->str : "unknown error";
}

lt_err lt_err_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strcmp(rows[i].name, name) == 0)
            return rows[i].code;
    return LT_EINVAL;
}

lt_err lt_fail(lt_why *why, lt_err code, const char *fmt, ...)
{
    if (why != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->msg, sizeof why->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

lt_err lt_fail_ssl(lt_why *why, lt_err code, const char *what)
{
    unsigned long e = ERR_get_error();
    if (why != NULL) {
        char buf[160] = "no detail";
        if (e != 0)
            ERR_error_string_n(e, buf, sizeof buf);
        snprintf(why->msg, sizeof why->msg, "%s: %s", what, buf);
    }
    ERR_clear_error();
    return code;
}
