/*
 * reader_edxml.c - edXML packages and status messages (QCVN 102:2016) via libxml2.
 *
 * One file is one record. Elements are matched by namespace and local name. Real packages
 * put edXML's elements in "http://www.mic.gov.vn/TBT/QCVN_102_2016" or
 * "http://www.go.vn/eDoc" (or in none), as a default namespace or under a prefix
 * (<edXML:Subject>); after parsing, every element in one of those becomes a plain local name,
 * so XPath look-ups are written without prefixes: //MessageHeader/Subject. Senders also
 * declare the prefix on edXMLEnvelope and go on using it after it (<edXML:AttachmentEncoded>
 * is the envelope's sibling): libxml2 then keeps "edXML:AttachmentEncoded" as the name, in
 * no namespace. Such an element takes the namespace the document declares for its prefix
 * elsewhere (when every declaration of that prefix agrees). Elements of any other
 * namespace (XML-DSig's Signature) keep it: an XPath reaches them with the document's own
 * prefixes, or ds: for XML-DSig.
 *
 * A look-up that selects nothing, but would select an element if namespaces were ignored,
 * is an error naming the path and that element (its prefix or namespace): an attachment
 * under an unknown namespace is never dropped without a word. The standard header fields
 * are extracted up front under stable names (tables below), with the same rule; a package
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
#include <stdio.h>
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

static const char *const EDXML_NS[] = {
    "http://www.mic.gov.vn/TBT/QCVN_102_2016",
    "http://www.go.vn/eDoc",
};
#define XMLDSIG_NS "http://www.w3.org/2000/09/xmldsig#"

static bool is_edxml_ns(const xmlChar *href)
{
    for (size_t i = 0; i < sizeof EDXML_NS / sizeof EDXML_NS[0]; i++)
        if (href != NULL && strcmp((const char *)href, EDXML_NS[i]) == 0)
            return true;
    return false;
}

/* An element not in edXML's namespaces: its own namespace (NULL for a prefix declared
 * nowhere) and name, and its local name. */
struct foreign {
    xmlNodePtr node;
    xmlNsPtr ns;
    const xmlChar *name, *local;
};

/* A standard field not found where the document has it under another namespace. */
struct missed {
    const char *field;
    char reason[LT_WHY_MAX];
};

/* What the namespace pass learnt about one document; doc->_private while it is read. */
struct nsinfo {
    xmlNsPtr *decl; /* every namespace declaration, in document order */
    size_t ndecl, capdecl;
    struct foreign *fv;
    size_t nf, capf;
    struct missed *mv;
    size_t nm, capm;
};

static void nsinfo_free(struct nsinfo *ni)
{
    if (ni == NULL)
        return;
    free(ni->decl);
    free(ni->fv);
    free(ni->mv);
    free(ni);
}

static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? 2 * *cap : 16;
    void *p = realloc(*v, nc * size);
    if (p == NULL)
        return false;
    *v = p;
    *cap = nc;
    return true;
}

/* The next node of a depth-first walk below root (NULL at the end). Iterative: depth is
 * the parser's to bound, not ours. */
static xmlNodePtr walk_next(xmlNodePtr root, xmlNodePtr n)
{
    if (n->type == XML_ELEMENT_NODE && n->children != NULL)
        return n->children;
    while (n != NULL && n != root && n->next == NULL)
        n = n->parent;
    return n == NULL || n == root ? NULL : n->next;
}

/* The one namespace the document declares for prefix (len bytes); NULL when it declares
 * none, or several that differ. */
static xmlNsPtr declared(const struct nsinfo *ni, const xmlChar *prefix, size_t len)
{
    xmlNsPtr found = NULL;
    for (size_t i = 0; i < ni->ndecl; i++) {
        xmlNsPtr d = ni->decl[i];
        if (d->prefix == NULL || strlen((const char *)d->prefix) != len ||
            memcmp(d->prefix, prefix, len) != 0)
            continue;
        if (found != NULL && !xmlStrEqual(found->href, d->href))
            return NULL;
        found = d;
    }
    return found;
}

/* Put every element of edXML's namespaces in no namespace under its local name (see the
 * file comment), and list the others. LT_ENOMEM. */
static lt_err normalize_namespaces(xmlNodePtr root, struct nsinfo *ni)
{
    for (xmlNodePtr n = root; n != NULL; n = walk_next(root, n))
        for (xmlNsPtr d = n->type == XML_ELEMENT_NODE ? n->nsDef : NULL; d != NULL; d = d->next) {
            if (!grow((void **)&ni->decl, &ni->capdecl, ni->ndecl, sizeof *ni->decl))
                return LT_ENOMEM;
            ni->decl[ni->ndecl++] = d;
        }
    for (xmlNodePtr n = root; n != NULL; n = walk_next(root, n)) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        for (xmlAttrPtr a = n->properties; a != NULL; a = a->next)
            a->ns = NULL;
        const xmlChar *colon = n->ns == NULL ? (const xmlChar *)strchr((const char *)n->name, ':')
                                             : NULL;
        if (colon != NULL) {
            /* A prefix not declared in scope: libxml2 kept "prefix:local" as the name. */
            xmlNsPtr d = declared(ni, n->name, (size_t)(colon - n->name));
            if (d != NULL) {
                xmlNodeSetName(n, colon + 1);
                n->ns = d;
            }
        }
        if (n->ns != NULL && is_edxml_ns(n->ns->href)) {
            n->ns = NULL;
            continue;
        }
        if (n->ns == NULL && colon == NULL)
            continue; /* no namespace at all: edXML without xmlns */
        if (!grow((void **)&ni->fv, &ni->capf, ni->nf, sizeof *ni->fv))
            return LT_ENOMEM;
        const xmlChar *c = (const xmlChar *)strchr((const char *)n->name, ':');
        ni->fv[ni->nf++] = (struct foreign){.node = n, .ns = n->ns, .name = n->name,
                                            .local = c != NULL ? c + 1 : n->name};
    }
    return LT_OK;
}

/* Make the foreign elements look like edXML's (blind) or put them back. The names are only
 * pointed at, never freed or copied: the document is unchanged once put back. */
static void set_blind(struct nsinfo *ni, bool blind)
{
    for (size_t i = 0; i < ni->nf; i++) {
        struct foreign *f = &ni->fv[i];
        f->node->ns = blind ? NULL : f->ns;
        f->node->name = blind ? f->local : f->name;
    }
}

/* "<edXML:Attachment> (line 78, prefix 'edXML' declared nowhere in scope)" or
 * "<Signature> (line 40, namespace 'http://...')". */
static void describe(const struct foreign *f, char *out, size_t cap)
{
    long line = xmlGetLineNo(f->node);
    if (f->ns == NULL) {
        snprintf(out, cap, "<%.60s> (line %ld, its prefix declared nowhere in scope)",
                 (const char *)f->name, line);
        return;
    }
    snprintf(out, cap, "<%s%s%.60s> (line %ld, namespace '%.80s')",
             f->ns->prefix ? (const char *)f->ns->prefix : "", f->ns->prefix ? ":" : "",
             (const char *)f->name, line, (const char *)f->ns->href);
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
    /* The document's own prefixes (of namespaces other than edXML's) and ds: reach the
     * foreign elements. */
    const struct nsinfo *ni = doc->_private;
    xmlXPathRegisterNs(ctx, (const xmlChar *)"ds", (const xmlChar *)XMLDSIG_NS);
    for (size_t i = 0; ni != NULL && i < ni->ndecl; i++)
        if (ni->decl[i]->prefix != NULL && !is_edxml_ns(ni->decl[i]->href) &&
            xmlXPathNsLookup(ctx, ni->decl[i]->prefix) == NULL)
            xmlXPathRegisterNs(ctx, ni->decl[i]->prefix, ni->decl[i]->href);
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

/* expr selected nothing. When it selects something with namespaces ignored, the element
 * it would have found is in another namespace (or under an undeclared prefix): LT_EFORMAT
 * naming both. Otherwise LT_ENOTFOUND (why untouched). */
static lt_err explain_miss(xmlDocPtr doc, const char *expr, lt_why *why)
{
    struct nsinfo *ni = doc->_private;
    if (ni == NULL || ni->nf == 0)
        return LT_ENOTFOUND;
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    if (ctx == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    ctx->error = quiet;
    set_blind(ni, true);
    xmlXPathObjectPtr res = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    set_blind(ni, false);
    const struct foreign *hit = NULL;
    if (res != NULL && res->type == XPATH_NODESET && res->nodesetval != NULL &&
        res->nodesetval->nodeNr > 0) {
        /* The selected element, or the nearest ancestor of it, that is foreign. */
        for (xmlNodePtr n = res->nodesetval->nodeTab[0]; n != NULL && hit == NULL; n = n->parent)
            for (size_t i = 0; i < ni->nf && hit == NULL; i++)
                if (ni->fv[i].node == n)
                    hit = &ni->fv[i];
        if (hit == NULL)
            hit = &ni->fv[0]; /* a predicate needed it */
    }
    xmlXPathFreeObject(res);
    xmlXPathFreeContext(ctx);
    if (hit == NULL)
        return LT_ENOTFOUND;
    char what[256];
    describe(hit, what, sizeof what);
    return lt_fail(why, LT_EFORMAT,
                   "XPath '%.70s' selects nothing in edXML's namespace, but matches under %s",
                   expr, what);
}

lt_err lt_reader_edxml_xpath(struct lt_record *r, const char *expr, const char **value,
                             lt_why *why)
{
    char *s = NULL;
    lt_err err = eval(r->doc, expr, &s, why);
    if (err == LT_ENOTFOUND) {
        lt_why w;
        lt_err miss = explain_miss(r->doc, expr, &w);
        if (miss != LT_ENOTFOUND)
            return lt_fail(why, miss, "%s", w.msg);
    }
    if (err)
        return err;
    if (lt_rec_keep(r, s) == NULL)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    *value = s;
    return LT_OK;
}

lt_err lt_reader_edxml_missing(struct lt_record *r, const char *name, lt_why *why)
{
    const struct nsinfo *ni = r->doc->_private;
    for (size_t i = 0; ni != NULL && i < ni->nm; i++)
        if (strcmp(ni->mv[i].field, name) == 0)
            return lt_fail(why, LT_EFORMAT, "%s: %s", name, ni->mv[i].reason);
    return lt_fail(why, LT_ENOTFOUND, "no field named '%.80s'", name);
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
    /* XML_PARSE_NOERROR does not cover charset conversion and I/O errors, which libxml2
     * prints on stderr through its global handler; a structured handler of our own (per
     * thread in libxml2) takes them for the parse: the report names them, via the last error. */
    xmlStructuredErrorFunc prev = xmlStructuredError;
    void *prev_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(NULL, quiet);
    xmlDocPtr doc = xmlReadMemory(xml, (int)xl, run->file, decoded ? "UTF-8" : NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlSetStructuredErrorFunc(prev_ctx, prev);
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
    struct nsinfo *ni = calloc(1, sizeof *ni);
    if (ni == NULL || normalize_namespaces(root, ni) != LT_OK) {
        nsinfo_free(ni);
        err = lt_fail(why, LT_ENOMEM, "out of memory");
        goto out_free_doc;
    }
    doc->_private = ni;
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
        char msg[LT_WHY_MAX];
        lt_why ns;
        if (explain_miss(doc, "//MessageHeader | //MessageStatus", &ns) == LT_EFORMAT)
            snprintf(msg, sizeof msg, "not an edXML package or status: %.200s", ns.msg);
        else
            snprintf(msg, sizeof msg,
                     "not an edXML package or status: root <%.40s> holds neither "
                     "MessageHeader nor MessageStatus",
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
        if (e == LT_ENOTFOUND && explain_miss(doc, fields[i].xpath, &w) == LT_EFORMAT) {
            /* Absent in edXML's namespace, present in another: asking for it is an error. */
            if (!grow((void **)&ni->mv, &ni->capm, ni->nm, sizeof *ni->mv)) {
                err = lt_fail(why, LT_ENOMEM, "out of memory");
                goto out_free_rec;
            }
            ni->mv[ni->nm].field = fields[i].name;
            snprintf(ni->mv[ni->nm++].reason, LT_WHY_MAX, "%s", w.msg);
            continue;
        }
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
        lt_why nsw;
        if (lt_reader_edxml_missing(&rec, required, &nsw) == LT_EFORMAT)
            lt_run_reject(run, line, 1, required, LT_EFORMAT, "edXML %s without %s: %s", kind,
                          required, nsw.msg);
        else
            lt_run_reject(run, line, 1, required, LT_EFORMAT, "edXML %s without %s", kind,
                          required);
        goto out_free_rec;
    }
    err = lt_run_deliver(run, &rec, why);

out_free_rec:
out_free_doc:
    lt_rec_fini(&rec);
    nsinfo_free(doc->_private);
    doc->_private = NULL;
    xmlFreeDoc(doc);
    return err;
}
