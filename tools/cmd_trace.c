/*
 * cmd_trace.c - `lienthong trace DOSSIER_CODE`: a dossier's whole path across agencies, from
 * the broker's admin API (GET /api/v1/dossiers/<code>, broker/dossier.h): each step, who did
 * it, when, how long it took against its allowance; and each event's envelope verified
 * again here, with the library (lt_env_verify_received: signature, certificate chain to the
 * trust root, revocation as of now), its payload decoded and compared with what the broker
 * says of it (dossier, status, signer). The broker is trusted for nothing it says about an
 * event that the event's own signature does not show.
 *
 * Exit status: 0 every event verified, 1 an event failed, the trace is incomplete (the
 * broker sends at most 5000 events of a dossier to trace) or the API could not be read, 2 usage.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "err.h"
#include "pki.h"
#include "tool_admin.h"
#include "ycfg.h"

#include <lienthong/v1/records/dossier.pb-c.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char lt_cmd_trace_summary[] =
    "a dossier's path through its procedure, every event verified again";

#define VN_OFFSET_MS (7 * 3600 * 1000LL) /* times are shown in Vietnam's time, UTC+07:00 */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong trace DOSSIER_CODE [-c broker.yaml] [--admin http://host:port]\n"
            "                       [--token-file F] [--ca CA.pem [--crl CRL.pem]] [--json]\n\n"
            "%s.\n\n"
            "  -c, --config F   the broker's config: admin address and token, trust root\n"
            "  --admin URL      the admin API (default: the config's, else 127.0.0.1:7401)\n"
            "  --token-file F   the admin token (else $LIENTHONG_ADMIN_TOKEN, else the config's)\n"
            "  --ca, --crl      the trust root and CRL to verify with (default: the config's)\n"
            "  --json           the API's document, each event with \"verified\" and its reason\n\n"
            "Exit status: 0 every event verified, 1 one did not (or the API failed), 2 usage.\n",
            lt_cmd_trace_summary);
}

static const char *js(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static int64_t ji(json_object *o, const char *k, int64_t dflt)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : dflt;
}

static bool jb(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v && json_object_get_boolean(v);
}

static void fmt_time(char *b, size_t cap, int64_t ms)
{
    if (ms <= 0 || ms == INT64_MAX) {
        snprintf(b, cap, "-");
        return;
    }
    time_t t = (time_t)((ms + VN_OFFSET_MS) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(b, cap, "%Y-%m-%d %H:%M", &tm);
}

static void fmt_allowance(char *b, size_t cap, json_object *o)
{
    json_object *a;
    if (!json_object_object_get_ex(o, "allowance", &a) || !a)
        snprintf(b, cap, "no limit");
    else if (ji(a, "working_days", 0))
        snprintf(b, cap, "%lld working day(s)", (long long)ji(a, "working_days", 0));
    else
        snprintf(b, cap, "%lld working hour(s)", (long long)ji(a, "working_hours", 0));
}

/* The broker config's trust.ca and trust.crl (defaults as docs/config.md), resolved. */
static lt_err trust_paths(const char *config, char *ca, char *crl, size_t cap, lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_load(config, &root, why);
    if (e != LT_OK)
        return e;
    const lt_ynode *t = lt_ycfg_get(root, "trust");
    const char *c = lt_ycfg_scalar(lt_ycfg_get(t, "ca"));
    const char *r = lt_ycfg_scalar(lt_ycfg_get(t, "crl"));
    if (!c)
        c = "ca/ca.cert.pem";
    if (!r)
        r = "ca/crl.pem";
    snprintf(ca, cap, c[0] == '/' ? "%s%s" : "%s/%s", c[0] == '/' ? "" : lt_ycfg_dir(root), c);
    if (*r)
        snprintf(crl, cap, r[0] == '/' ? "%s%s" : "%s/%s", r[0] == '/' ? "" : lt_ycfg_dir(root),
                 r);
    else
        crl[0] = '\0';
    lt_ycfg_free(&root);
    return LT_OK;
}

/* Verify one event's envelope (base64 in the API's document) and check that its signed
 * payload says what the broker says: the dossier, the status, the signing agency. */
static lt_err verify_event(lt_trust *trust, const char *code, json_object *ev, lt_why *why)
{
    const char *b64 = js(ev, "envelope");
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0)
        return lt_fail(why, LT_EPROTO, "no envelope in the answer");
    uint8_t *raw = malloc(n / 4 * 3 + 1);
    if (!raw)
        return lt_fail(why, LT_ENOMEM, "out of memory");
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (len < 0) {
        free(raw);
        return lt_fail(why, LT_EPROTO, "envelope is not base64");
    }
    len -= (b64[n - 1] == '=') + (n > 1 && b64[n - 2] == '=');
    lt_env_limits lim = lt_env_limits_default();
    lt_env *env = NULL;
    lt_err e = lt_env_decode(raw, (size_t)len, &lim, &env, why);
    if (e == LT_OK)
        e = lt_env_verify_received(env, trust, lt_env_now_ms(), why);
    if (e == LT_OK && strcmp(lt_env_source(env), js(ev, "agency")) != 0)
        e = lt_fail(why, LT_EAGENCY_MISMATCH, "signed by %s, the broker says %s",
                    lt_env_source(env), js(ev, "agency"));
    if (e == LT_OK && strcmp(lt_env_record_type(env), "lienthong.v1.records.DossierStatusEvent"))
        e = lt_fail(why, LT_ERECORD_TYPE, "a %s, not a DossierStatusEvent",
                    lt_env_record_type(env));
    if (e == LT_OK) {
        size_t pl = 0;
        const uint8_t *p = lt_env_payload(env, &pl);
        Lienthong__V1__Records__DossierStatusEvent *d =
            lienthong__v1__records__dossier_status_event__unpack(NULL, pl, p);
        if (!d)
            e = lt_fail(why, LT_EPAYLOAD, "payload is not a DossierStatusEvent");
        else if (strcmp(d->dossier_code, code) != 0)
            e = lt_fail(why, LT_EPAYLOAD, "signed for dossier %s", d->dossier_code);
        else if ((int64_t)d->status != ji(ev, "status", -1))
            e = lt_fail(why, LT_EPAYLOAD, "signed status %d, the broker says %lld", d->status,
                        (long long)ji(ev, "status", -1));
        if (d)
            lienthong__v1__records__dossier_status_event__free_unpacked(d, NULL);
    }
    lt_env_destroy(&env);
    free(raw);
    return e;
}

/* s padded with spaces to w columns (one column per UTF-8 code point: Vietnamese in NFC). */
static void col(const char *s, int w)
{
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        cols += (*p & 0xC0) != 0x80;
    fputs(s, stdout);
    for (; cols < w; cols++)
        fputc(' ', stdout);
}

static void print_text(const char *code, json_object *doc, size_t nverified)
{
    json_object *proc = json_object_object_get(doc, "procedure");
    json_object *steps = json_object_object_get(doc, "steps");
    json_object *events = json_object_object_get(doc, "events");
    char t1[32], t2[32], t3[32], al[48];
    printf("Dossier %s\n", code);
    printf("  procedure %s: %s\n", js(proc, "code"), js(proc, "name"));
    fmt_time(t1, sizeof t1, ji(doc, "started_ms", 0));
    fmt_time(t2, sizeof t2, ji(doc, "step_deadline_ms", INT64_MAX));
    printf("  now at step %s (%s), status %lld %s, %s; started %s; step due %s%s\n",
           js(doc, "step"), js(doc, "step_name"), (long long)ji(doc, "status", 0),
           js(doc, "status_name"), jb(doc, "closed") ? "closed" : "open", t1, t2,
           jb(doc, "late") ? "  LATE" : "");
    printf("  times in UTC+07:00; working days by the calendar \"%s\"\n\n", js(doc, "calendar"));
    printf("Steps\n");
    for (size_t i = 0; i < json_object_array_length(steps); i++) {
        json_object *s = json_object_array_get_idx(steps, i);
        fmt_time(t1, sizeof t1, ji(s, "started_ms", 0));
        fmt_time(t2, sizeof t2, ji(s, "ended_ms", 0));
        fmt_time(t3, sizeof t3, ji(s, "deadline_ms", INT64_MAX));
        fmt_allowance(al, sizeof al, s);
        double wh = (double)ji(s, "working_ms_used", 0) / 3600000.0;
        printf("  %zu. %-20s %s\n", i + 1, js(s, "id"), js(s, "name"));
        printf("     by %s\n", js(s, "agency"));
        printf("     %s -> %s  took %.1f working hours (%lld working days) of %s, due %s: %s\n",
               t1, json_object_object_get(s, "ended_ms") ? t2 : "(under way)", wh,
               (long long)ji(s, "working_days_used", 0), al, t3,
               jb(s, "on_time") ? "on time" : "LATE");
    }
    printf("\nEvents\n");
    for (size_t i = 0; i < json_object_array_length(events); i++) {
        json_object *e = json_object_array_get_idx(events, i);
        fmt_time(t1, sizeof t1, ji(e, "event_ms", 0));
        printf("  seq %-6lld %s  %-2lld ", (long long)ji(e, "seq", 0), t1,
               (long long)ji(e, "status", 0));
        col(js(e, "status_name"), 37);
        col(js(e, "step"), 15);
        printf("%s\n", js(e, "agency"));
        printf("             %s\n", jb(e, "verified") ? "verified: signature, certificate, payload"
                                                      : js(e, "verify_error"));
    }
    printf("\n%zu events, %zu verified\n", json_object_array_length(events), nverified);
    if (jb(doc, "events_truncated"))
        printf("INCOMPLETE: the dossier has %lld events; the broker sent the first %zu\n",
               (long long)ji(doc, "events_count", 0), json_object_array_length(events));
}

int lt_cmd_trace(int argc, char **argv)
{
    const char *admin = NULL, *token_file = NULL, *config = NULL, *code = NULL;
    const char *ca_opt = NULL, *crl_opt = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            as_json = true;
        } else if (strcmp(a, "--admin") == 0 && has) {
            admin = argv[++i];
        } else if (strcmp(a, "--token-file") == 0 && has) {
            token_file = argv[++i];
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has) {
            config = argv[++i];
        } else if (strcmp(a, "--ca") == 0 && has) {
            ca_opt = argv[++i];
        } else if (strcmp(a, "--crl") == 0 && has) {
            crl_opt = argv[++i];
        } else if (a[0] != '-' && !code) {
            code = a;
        } else {
            fprintf(stderr, "lienthong trace: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!code || !*code || strlen(code) > 100) {
        fprintf(stderr, "lienthong trace: give one DOSSIER_CODE (1..100 bytes)\n");
        usage(stderr);
        return 2;
    }
    if (!ca_opt && !config) {
        fprintf(stderr, "lienthong trace: the trust root to verify with: --ca FILE or -c "
                        "broker.yaml\n");
        return 2;
    }
    lt_why why = {""};
    lt_tool_admin t;
    lt_err e = lt_tool_admin_open(admin, token_file, config, &t, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong trace: %s\n", why.msg);
        return e == LT_EINVAL ? 2 : 1;
    }
    char ca[4096], crl[4096] = "";
    if (ca_opt) {
        snprintf(ca, sizeof ca, "%s", ca_opt);
        snprintf(crl, sizeof crl, "%s", crl_opt ? crl_opt : "");
    } else if ((e = trust_paths(config, ca, crl, sizeof ca, &why)) != LT_OK) {
        fprintf(stderr, "lienthong trace: %s\n", why.msg);
        return 1;
    }
    lt_trust_opts to = lt_trust_opts_default();
    lt_trust *trust = NULL;
    if ((e = lt_trust_open(ca, crl[0] ? crl : NULL, &to, &trust, &why)) != LT_OK) {
        fprintf(stderr, "lienthong trace: trust root: %s\n", why.msg);
        return 1;
    }
    /* the code as one path segment: percent-encode everything but unreserved bytes */
    char path[512];
    size_t at = (size_t)snprintf(path, sizeof path, "/api/v1/dossiers/");
    const size_t room = sizeof path - sizeof "?limit=5000";
    for (const unsigned char *p = (const unsigned char *)code; *p && at + 4 < room; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            path[at++] = (char)*p;
        else
            at += (size_t)snprintf(path + at, sizeof path - at, "%%%02X", *p);
    }
    snprintf(path + at, sizeof path - at, "?limit=5000");
    int status = 0;
    json_object *doc = NULL;
    int rc = 1;
    e = lt_tool_admin_get(&t, path, &status, &doc, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong trace: %s\n", why.msg);
        goto out;
    }
    if (status != 200 || !doc) {
        fprintf(stderr, "lienthong trace: %s: HTTP %d: %s\n", code, status,
                doc ? js(doc, "error") : "(not JSON)");
        goto out;
    }
    json_object *events = json_object_object_get(doc, "events");
    size_t n = events ? json_object_array_length(events) : 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *ev = json_object_array_get_idx(events, i);
        lt_why vw = {""};
        lt_err ve = verify_event(trust, code, ev, &vw);
        json_object_object_add(ev, "verified", json_object_new_boolean(ve == LT_OK));
        if (ve != LT_OK) {
            char msg[LT_WHY_MAX + 64];
            snprintf(msg, sizeof msg, "NOT VERIFIED: %s: %s", lt_err_name(ve), vw.msg);
            json_object_object_add(ev, "verify_error", json_object_new_string(msg));
        } else {
            ok++;
        }
    }
    bool complete = !jb(doc, "events_truncated");
    json_object_object_add(doc, "all_verified",
                           json_object_new_boolean(ok == n && n > 0 && complete));
    if (as_json)
        printf("%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        print_text(code, doc, ok);
    rc = ok == n && n > 0 && complete ? 0 : 1;
out:
    json_object_put(doc);
    lt_trust_destroy(&trust);
    return rc;
}
