/*
 * cmd_verify.c - `lienthong verify -c CONFIG FILE`: verify every envelope of a
 * length-delimited envelope file against the trust of an agency config, printing one JSON
 * line per envelope. Exit 0 when all verify, 1 when any does not (or the file is damaged),
 * 2 on usage or config errors.
 */
#include "cmd_decls.h"

#include "config.h"
#include "envelope.h"
#include "envfile.h"
#include "json.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char lt_cmd_verify_summary[] = "verify an envelope file: one JSON verdict per envelope";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong verify -c AGENCY.yaml [--at MS] [--table] FILE\n\n"
            "%s.\n\n"
            "  -c, --config FILE   agency config whose trust section (CA, CRL, clock skew)\n"
            "                      verifies; its key is not used\n"
            "      --at MS         verify as of this time (ms since the epoch); without it each\n"
            "                      envelope is verified at its own created time (or now, if\n"
            "                      that is earlier) with the CRL in force now, as sub and\n"
            "                      sink do, so a record that waited stays verifiable\n"
            "      --table         one human-readable line per envelope instead of JSON\n"
            "  FILE                envelope file from 'lienthong sign' ('-': standard input)\n\n"
            "stdout, one line per envelope: {\"index\",\"message_id\",\"source\",\"topic\",\n"
            "\"record_type\",\"created\",\"batch\",\"record\",\"verdict\",\"code\",\"reason\"};\n"
            "verdict is \"ok\" or \"rejected\", code an error name of 'lienthong codes'.\n",
            lt_cmd_verify_summary);
}

static bool table;

static const char *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "-";
}

/* Print o as JSON, or as a table row (index, verdict, code, source, topic, reason). */
static void print_line(json_object *o)
{
    if (table)
        printf("%3s  %-8s  %-18s  %-34s  %-24s  %s\n", field(o, "index"), field(o, "verdict"),
               field(o, "code"), field(o, "source"), field(o, "topic"), field(o, "reason"));
    else
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static json_object *hex(const uint8_t *p, size_t n)
{
    char buf[2 * 64 + 1];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        snprintf(buf + 2 * i, 3, "%02x", p[i]);
    buf[2 * n] = '\0';
    return json_object_new_string(buf);
}

static json_object *iso_time(int64_t ms)
{
    char buf[40];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return json_object_new_int64(ms);
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)((ms % 1000 + 1000) % 1000));
    return json_object_new_string(buf);
}

static void verdict(json_object *o, lt_err e, const char *reason)
{
    json_object_object_add(o, "verdict", json_object_new_string(e == LT_OK ? "ok" : "rejected"));
    json_object_object_add(o, "code", json_object_new_string(lt_err_name(e)));
    json_object_object_add(o, "reason", json_object_new_string(e == LT_OK ? "" : reason));
}

/* Verify one envelope and print its line; returns its verdict. */
/* at: --at, or 0 for the consumers' rule (lt_env_verify_received). */
static lt_err one(size_t index, const uint8_t *buf, size_t len, lt_trust *trust, int64_t at)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "index", json_object_new_int64((int64_t)index));
    lt_why why;
    lt_env *env = NULL;
    lt_err e = lt_env_decode(buf, len, NULL, &env, &why);
    if (e != LT_OK) {
        verdict(o, e, why.msg);
        print_line(o);
        return e;
    }
    json_object_object_add(o, "message_id", hex(lt_env_message_id(env), LT_ENV_MESSAGE_ID_LEN));
    json_object_object_add(o, "source", json_object_new_string(lt_env_source(env)));
    json_object_object_add(o, "topic", json_object_new_string(lt_env_topic(env)));
    json_object_object_add(o, "record_type", json_object_new_string(lt_env_record_type(env)));
    json_object_object_add(o, "created", iso_time(lt_env_created_ms(env)));
    if (lt_env_is_batch(env)) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "index", json_object_new_int64(lt_env_batch_index(env)));
        json_object_object_add(b, "count", json_object_new_int64(lt_env_batch_count(env)));
        json_object_object_add(o, "batch", b);
    }
    e = at ? lt_env_verify(env, trust, at, &why)
           : lt_env_verify_received(env, trust, lt_env_now_ms(), &why);
    if (e == LT_OK) /* what the broker refuses is refused here, with the broker's code */
        e = lt_env_check_record(env, &why);

    /* The record is shown even when the verdict is negative: an operator wants to see what
     * was rejected. A payload that is not a valid record of its type is itself a rejection. */
    size_t plen = 0;
    const uint8_t *payload = lt_env_payload(env, &plen);
    char *text = NULL;
    lt_why jwhy;
    lt_err je = lt_json_payload_to_string(lt_env_record_type(env), payload, plen, &text, &jwhy);
    json_object *rec = je == LT_OK ? json_tokener_parse(text) : NULL;
    json_object_object_add(o, "record", rec);
    free(text);
    if (e == LT_OK && je != LT_OK) {
        e = je == LT_ENOTFOUND ? LT_EPROTO : je;
        lt_fail(&why, e, "signature good, but the payload is not a %s: %s",
                lt_env_record_type(env), jwhy.msg);
    }
    verdict(o, e, why.msg);
    print_line(o);
    lt_env_destroy(&env);
    return e;
}

int lt_cmd_verify(int argc, char **argv)
{
    enum { OPT_AT = 256, OPT_TABLE };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"at", required_argument, NULL, OPT_AT},
        {"table", no_argument, NULL, OPT_TABLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL;
    int64_t now = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case OPT_AT: {
            char *end = NULL;
            long long v = strtoll(optarg, &end, 10);
            if (end == optarg || *end || v <= 0) {
                fprintf(stderr, "lienthong verify: --at: expected ms since the epoch, got '%s'\n",
                        optarg);
                return 2;
            }
            now = v;
            break;
        }
        case OPT_TABLE:
            table = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "lienthong verify: see 'lienthong verify --help'\n");
            return 2;
        }
    }
    if (cfg_path == NULL || optind != argc - 1) {
        fprintf(stderr, "lienthong verify: need -c CONFIG and one FILE (see --help)\n");
        return 2;
    }
    const char *path = argv[optind];
    lt_why why;
    lt_agency_config *cfg = NULL;
    lt_trust *trust = NULL;
    lt_err e = lt_agency_config_load(cfg_path, &cfg, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_trust(cfg, &trust, &why);
    lt_agency_config_destroy(&cfg);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong verify: %s: %s\n", lt_err_name(e), why.msg);
        return 2;
    }
    lt_env_limits lim = lt_env_limits_default();
    lt_envfile_reader *r = NULL;
    if ((e = lt_envfile_open_reader(path, lim.max_envelope, &r, &why)) != LT_OK) {
        fprintf(stderr, "lienthong verify: %s: %s\n", lt_err_name(e), why.msg);
        lt_trust_destroy(&trust);
        return 2;
    }
    size_t total = 0, bad = 0;
    if (table)
        printf("%3s  %-8s  %-18s  %-34s  %-24s  %s\n", "#", "verdict", "code", "source", "topic",
               "reason");
    for (;;) {
        const uint8_t *item;
        size_t len;
        e = lt_envfile_read(r, &item, &len, &why);
        if (e == LT_ENOTFOUND)
            break;
        if (e != LT_OK) {
            /* The framing is broken: nothing after this point can be trusted to line up. */
            json_object *o = json_object_new_object();
            json_object_object_add(o, "index", json_object_new_int64((int64_t)total));
            verdict(o, e, why.msg);
            print_line(o);
            bad++;
            total++;
            break;
        }
        if (one(total, item, len, trust, now) != LT_OK)
            bad++;
        total++;
    }
    lt_envfile_close_reader(&r);
    lt_trust_destroy(&trust);
    fflush(stdout);
    fprintf(stderr, "verify: %zu envelope%s, %zu ok, %zu rejected\n", total,
            total == 1 ? "" : "s", total - bad, bad);
    return bad ? 1 : 0;
}
