/*
 * reader_edxml.c - edXML packages and status messages (QCVN 102:2016) via libxml2.
 *
 * One file is one record. Namespaces are removed after parsing, because real packages use
 * either "http://www.mic.gov.vn/TBT/QCVN_102_2016" or "http://www.go.vn/eDoc" (or none),
 * so XPath look-ups are written without prefixes: //MessageHeader/Subject. The standard
 * header fields are extracted up front under stable names (tables below); a package
 * without From/OrganId, or a status without StatusCode, is rejected.
 *
 * Safety: no network (XML_PARSE_NONET), entities are never substituted, and a document
 * carrying a DTD is rejected, so no entity expansion can blow up memory.
 */
#include "reader_int.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct std_field {
    const char *name;
    const char *xpath;
};

/* edXML package: MessageHeader (From may be nested in From in some senders' output). */
static const struct std_field edoc_fields[] = {
    {"from.organ_id", "(//MessageHeader/From//OrganId)[1]"},
    {"from.organ_name", "(//MessageHeader/From//OrganName)[1]"},
    {"to.organ_id", "//MessageHeader/To/OrganId"},
    {"to.organ_name", "//MessageHeader/To/OrganName"},
    {"code.number", "//MessageHeader/Code/CodeNumber"},
    {"code.notation", "//MessageHeader/Code/CodeNotation"},
    {"promulgation.place", "//MessageHeader/PromulgationInfo/Place"},
    {"promulgation.date", "//MessageHeader/PromulgationInfo/PromulgationDate"},
    {"document_type.type", "//MessageHeader/DocumentType/Type"},
    {"document_type.name", "//MessageHeader/DocumentType/TypeName"},
    {"subject", "//MessageHeader/Subject"},
    {"content", "//MessageHeader/Content"},
    {"signer.competence", "//MessageHeader/SignerInfo/Competence"},
    {"signer.position", "//MessageHeader/SignerInfo/Position"},
    {"signer.full_name", "//MessageHeader/SignerInfo/FullName"},
    {"due_date", "//MessageHeader/DueDate"},
    {"steering_type", "//MessageHeader/SteeringType"},
    {"document_id", "//MessageHeader/DocumentId"},
    {"business.doc_type", "//TraceHeaderList/Bussiness/BussinessDocType"},
    {"business.doc_reason", "//TraceHeaderList/Bussiness/BussinessDocReason"},
    {"attachments", "//AttachmentEncoded/Attachment/AttachmentName"},
};

/* edXML status message: MessageStatus. */
static const struct std_field status_fields[] = {
    {"response_for.organ_id", "//MessageStatus/ResponseFor/OrganId"},
    {"response_for.code", "//MessageStatus/ResponseFor/Code"},
    {"response_for.promulgation_date", "//MessageStatus/ResponseFor/PromulgationDate"},
    {"response_for.document_id", "//MessageStatus/ResponseFor/DocumentId"},
    {"from.organ_id", "(//MessageStatus/From//OrganId)[1]"},
    {"from.organ_name", "(//MessageStatus/From//OrganName)[1]"},
    {"status.code", "//MessageStatus/StatusCode"},
    {"status.description", "//MessageStatus/Description"},
    {"status.timestamp", "//MessageStatus/Timestamp"},
    {"staff.department", "//MessageStatus/StaffInfo/Department"},
    {"staff.name", "//MessageStatus/StaffInfo/Staff"},
    {"staff.mobile", "//MessageStatus/StaffInfo/Mobile"},
    {"staff.email", "//MessageStatus/StaffInfo/Email"},
};

static void quiet(void *ctx, xmlErrorPtr e)
{
    (void)ctx;
    (void)e;
}

/* Drop every namespace so XPath needs no prefixes. Iterative: depth is the parser's to
 * bound, not ours. */
static void strip_namespaces(xmlNodePtr root)
{
    xmlNodePtr n = root;
    while (n != NULL) {
        if (n->type == XML_ELEMENT_NODE) {
            n->ns = NULL;
            for (xmlAttrPtr a = n->properties; a != NULL; a = a->next)
                a->ns = NULL;
        }
        if (n->type == XML_ELEMENT_NODE && n->children != NULL) {
            n = n->children;
            continue;
        }
        while (n != NULL && n != root && n->next == NULL)
            n = n->parent;
        if (n == NULL || n == root)
            break;
        n = n->next;
    }
}

/* Append s (trimmed of surrounding whitespace) to *acc, separated by "; ". */
static bool append_trimmed(char **acc, size_t *al, const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r'))
        b--;
    if (a == b)
        return true;
    size_t need = *al + (*al ? 2 : 0) + (b - a) + 1;
    char *p = realloc(*acc, need);
    if (p == NULL)
        return false;
    if (*al) {
        memcpy(p + *al, "; ", 2);
        *al += 2;
    }
    memcpy(p + *al, s + a, b - a);
    *al += b - a;
    p[*al] = 0;
    *acc = p;
    return true;
}

/* Evaluate expr in doc into a malloc'd string. LT_ENOTFOUND when it selects nothing (or
 * only empty text), LT_EINVAL when malformed. */
static lt_err eval(xmlDocPtr doc, const char *expr, char **out, lt_why *why)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    if (ctx == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    ctx->error = quiet;
    xmlXPathObjectPtr res = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    lt_err err = LT_OK;
    char *acc = NULL;
    size_t al = 0;
    if (res == NULL) {
        err = lt_fail(why, LT_EINVAL, "malformed XPath '%.80s'", expr);
    } else if (res->type == XPATH_NODESET) {
        for (int i = 0; res->nodesetval != NULL && i < res->nodesetval->nodeNr; i++) {
            xmlChar *c = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
            bool ok = c == NULL || append_trimmed(&acc, &al, (const char *)c);
            xmlFree(c);
            if (!ok) {
                err = lt_fail(why, LT_ENOMEM, "out of memory");
                break;
            }
        }
        if (err == LT_OK && acc == NULL)
            err = lt_fail(why, LT_ENOTFOUND, "XPath '%.80s' selects nothing", expr);
    } else {
        xmlChar *c = xmlXPathCastToString(res);
        if (c == NULL || !append_trimmed(&acc, &al, (const char *)c))
            err = lt_fail(why, LT_ENOMEM, "out of memory");
        else if (acc == NULL && (acc = strdup("")) == NULL)
            err = lt_fail(why, LT_ENOMEM, "out of memory");
        xmlFree(c);
    }
    xmlXPathFreeObject(res);
    xmlXPathFreeContext(ctx);
    if (err) {
        free(acc);
        return err;
    }
    *out = acc;
    return LT_OK;
}

lt_err lt_reader_edxml_xpath(struct lt_record *r, const char *expr, const char **value,
                             lt_why *why)
{
    char *s = NULL;
    lt_err err = eval(r->doc, expr, &s, why);
    if (err)
        return err;
    if (lt_rec_keep(r, s) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *value = s;
    return LT_OK;
}

/* Does expr select at least one node? */
static bool selects(xmlDocPtr doc, const char *expr)
{
    char count[64];
    snprintf(count, sizeof count, "count(%s)", expr);
    char *v = NULL;
    lt_why w;
    bool yes = eval(doc, count, &v, &w) == LT_OK && strcmp(v, "0") != 0;
    free(v);
    return yes;
}

static lt_err fatal(struct lt_run *run, size_t line, lt_err code, lt_why *why, const char *msg)
{
    lt_fail(why, code, "%s: %s", run->file, msg);
    lt_run_reject(run, line, line ? 1 : 0, NULL, code, "%s", msg);
    return code;
}

lt_err lt_reader_edxml(struct lt_run *run, const uint8_t *data, size_t len, lt_why *why)
{
    char *decoded = NULL;
    const char *xml = (const char *)data;
    size_t xl = len;
    if (run->dec != NULL) {
        /* configured legacy charset: decode first, then let libxml2 read UTF-8 */
        lt_why w;
        if (lt_run_decode(run, data, len, &decoded, &w) != LT_OK)
            return fatal(run, 0, LT_EENCODING, why, w.msg);
        xml = decoded;
        xl = strlen(decoded);
    }
    if (xl > INT_MAX) {
        free(decoded);
        return fatal(run, 0, LT_ETOOBIG, why, "edXML file larger than 2 GiB");
    }
    xmlInitParser();
    xmlResetLastError();
    xmlDocPtr doc = xmlReadMemory(xml, (int)xl, run->file, decoded ? "UTF-8" : NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    free(decoded);
    if (doc == NULL) {
        const xmlError *e = xmlGetLastError();
        char msg[LT_WHY_MAX];
        snprintf(msg, sizeof msg, "not well-formed XML: %s",
                 e && e->message ? e->message : "unreadable");
        size_t ml = strlen(msg);
        while (ml > 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
            msg[--ml] = 0;
        return fatal(run, e && e->line > 0 ? (size_t)e->line : 0, LT_EFORMAT, why, msg);
    }
    lt_err err = LT_OK;
    struct lt_record rec = {0};
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        err = fatal(run, 1, LT_EFORMAT, why, "a DTD is not allowed in an edXML file");
        goto out_free_doc;
    }
    if (root == NULL) {
        err = fatal(run, 1, LT_EFORMAT, why, "no root element");
        goto out_free_doc;
    }
    strip_namespaces(root);
    size_t line = (size_t)(xmlGetLineNo(root) > 0 ? xmlGetLineNo(root) : 1);

    lt_why w;
    const struct std_field *fields;
    size_t nf;
    const char *kind, *required;
    if (selects(doc, "//MessageHeader")) {
        kind = "edoc", required = "from.organ_id";
        fields = edoc_fields, nf = sizeof edoc_fields / sizeof edoc_fields[0];
    } else if (selects(doc, "//MessageStatus")) {
        kind = "status", required = "status.code";
        fields = status_fields, nf = sizeof status_fields / sizeof status_fields[0];
    } else {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "not an edXML package or status: root <%.40s> holds neither MessageHeader "
                 "nor MessageStatus",
                 (const char *)root->name);
        err = fatal(run, line, LT_EFORMAT, why, msg);
        goto out_free_doc;
    }

    rec = (struct lt_record){.file = run->file, .line = line, .index = 1, .doc = doc,
                             .cs = run->stats->charset};
    char *k = strdup(kind);
    if (k == NULL || lt_rec_add(&rec, "kind", k) != LT_OK) {
        err = lt_fail(why, LT_ENOMEM, "out of memory");
        goto out_free_rec;
    }
    bool have_required = false;
    for (size_t i = 0; i < nf; i++) {
        char *v = NULL;
        lt_err e = eval(doc, fields[i].xpath, &v, &w);
        if (e == LT_ENOTFOUND)
            continue;
        if (e) {
            err = lt_fail(why, e, "%s", w.msg);
            goto out_free_rec;
        }
        if (strcmp(fields[i].name, required) == 0)
            have_required = true;
        if (lt_rec_add(&rec, fields[i].name, v) != LT_OK) {
            err = lt_fail(why, LT_ENOMEM, "out of memory");
            goto out_free_rec;
        }
    }
    if (!have_required) {
        char msg[120];
        snprintf(msg, sizeof msg, "edXML %s without %s", kind, required);
        lt_run_reject(run, line, 1, required, LT_EFORMAT, "%s", msg);
        goto out_free_rec;
    }
    err = lt_run_deliver(run, &rec, why);

out_free_rec:
out_free_doc:
    lt_rec_fini(&rec);
    xmlFreeDoc(doc);
    return err;
}
