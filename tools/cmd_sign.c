/*
 * cmd_sign.c - `lienthong sign`: turn JSON records into signed envelopes, written to a
 * length-delimited envelope file (lib/envfile.h). One record from --json, or one per line of
 * a JSON Lines file (-f; blank lines skipped). With --batch N the records are signed N at a
 * time under one signature over their Merkle root, each envelope carrying its proof.
 * Errors: one line on stderr; exit 1 when a record or the signing fails, 2 on usage errors.
 */
#include "cmd_decls.h"

#include "config.h"
#include "envelope.h"
#include "envfile.h"
#include "json.h"
#include "records.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lt_cmd_sign_summary[] = "sign JSON records as an agency into an envelope file";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong sign -c AGENCY.yaml -t TOPIC --type RECORD_TYPE\n"
            "                      (--json JSON | -f FILE.jsonl) [--batch N] -o OUT\n\n"
            "%s.\n\n"
            "  -c, --config FILE   agency config (its key and certificate sign)\n"
            "  -t, --topic TOPIC   topic of every envelope, e.g. 79.760.hotich.khaisinh\n"
            "      --type TYPE     record type, e.g. lienthong.v1.records.BirthRegistration\n"
            "  -j, --json JSON     one record as a JSON object\n"
            "  -f, --file FILE     JSON Lines: one record per line ('-': standard input)\n"
            "  -b, --batch N       sign N records at a time over their Merkle root (1..%d);\n"
            "                      default: one signature per record\n"
            "  -o, --out OUT       envelope file to write ('-': standard output)\n\n"
            "Record types:\n",
            lt_cmd_sign_summary, LT_ENV_BATCH_MAX);
    for (size_t i = 0; i < lt_records_count(); i++)
        fprintf(out, "  %s\n", lt_records_at(i)->desc->name);
}

struct pending {
    uint8_t **payloads;
    size_t *lens;
    size_t n, cap;
};

struct run {
    lt_signer *signer;
    lt_envfile_writer *w;
    const char *topic, *type;
    size_t batch; /* 0: single signatures */
    struct pending p;
    size_t written, batches;
};

static void pending_clear(struct pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->payloads[i]);
    p->n = 0;
}

/* Seal and write what is pending. */
static lt_err flush(struct run *r, lt_why *why)
{
    struct pending *p = &r->p;
    if (p->n == 0)
        return LT_OK;
    lt_env_spec *specs = calloc(p->n, sizeof *specs);
    uint8_t **outs = calloc(p->n, sizeof *outs);
    size_t *lens = calloc(p->n, sizeof *lens);
    lt_err e = LT_OK;
    if (specs == NULL || outs == NULL || lens == NULL) {
        e = lt_fail(why, LT_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->n; i++)
        specs[i] = (lt_env_spec){.topic = r->topic,
                                 .record_type = r->type,
                                 .payload = p->payloads[i],
                                 .payload_len = p->lens[i]};
    if (r->batch > 0) {
        e = lt_env_seal_batch(r->signer, specs, p->n, outs, lens, why);
        if (e == LT_OK)
            r->batches++;
    } else {
        for (size_t i = 0; i < p->n && e == LT_OK; i++)
            e = lt_env_seal(r->signer, &specs[i], &outs[i], &lens[i], why);
    }
    for (size_t i = 0; i < p->n && e == LT_OK; i++) {
        e = lt_envfile_write(r->w, outs[i], lens[i], why);
        if (e == LT_OK)
            r->written++;
    }
out:
    for (size_t i = 0; outs != NULL && i < p->n; i++)
        free(outs[i]);
    free(outs);
    free(lens);
    free(specs);
    pending_clear(p);
    return e;
}

/* Convert one JSON record (label names it in errors) and queue it; flush when a batch is
 * full (or at once without --batch). */
static lt_err add_record(struct run *r, const char *label, const char *text, size_t len,
                         lt_why *why)
{
    uint8_t *payload = NULL;
    size_t plen = 0;
    lt_why inner;
    lt_err e = lt_json_text_to_payload(r->type, text, len, &payload, &plen, &inner);
    if (e != LT_OK)
        return lt_fail(why, e, "%s: %s", label, inner.msg);
    struct pending *p = &r->p;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        uint8_t **np = realloc(p->payloads, cap * sizeof *np);
        if (np != NULL)
            p->payloads = np;
        size_t *nl = np ? realloc(p->lens, cap * sizeof *nl) : NULL;
        if (nl == NULL) {
            free(payload);
            return lt_fail(why, LT_ENOMEM, "out of memory");
        }
        p->lens = nl;
        p->cap = cap;
    }
    p->payloads[p->n] = payload;
    p->lens[p->n] = plen;
    p->n++;
    if (p->n >= (r->batch ? r->batch : 1))
        return flush(r, why);
    return LT_OK;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static lt_err sign_lines(struct run *r, const char *path, lt_why *why)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL)
        return lt_fail(why, LT_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    lt_err e = LT_OK;
    while (e == LT_OK && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (blank(line, (size_t)n))
            continue;
        char label[4200];
        snprintf(label, sizeof label, "%s:%zu", path, lineno);
        e = add_record(r, label, line, (size_t)n, why);
    }
    if (e == LT_OK && ferror(f))
        e = lt_fail(why, LT_EIO, "%s: read error: %s", path, strerror(errno));
    free(line);
    if (f != stdin)
        fclose(f);
    return e;
}

int lt_cmd_sign(int argc, char **argv)
{
    enum { OPT_TYPE = 256 };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"topic", required_argument, NULL, 't'},
        {"type", required_argument, NULL, OPT_TYPE}, {"json", required_argument, NULL, 'j'},
        {"file", required_argument, NULL, 'f'},   {"batch", required_argument, NULL, 'b'},
        {"out", required_argument, NULL, 'o'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *json = NULL, *file = NULL, *out = NULL;
    struct run r = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:t:j:f:b:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_path = optarg;
            break;
        case 't':
            r.topic = optarg;
            break;
        case OPT_TYPE:
            r.type = optarg;
            break;
        case 'j':
            json = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'b': {
            char *end = NULL;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > LT_ENV_BATCH_MAX) {
                fprintf(stderr, "lienthong sign: --batch: expected 1..%d, got '%s'\n",
                        LT_ENV_BATCH_MAX, optarg);
                return 2;
            }
            r.batch = v;
            break;
        }
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "lienthong sign: see 'lienthong sign --help'\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "lienthong sign: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (cfg_path == NULL || r.topic == NULL || r.type == NULL || out == NULL ||
        (json == NULL) == (file == NULL)) {
        fprintf(stderr, "lienthong sign: need -c, -t, --type, -o and one of --json or -f "
                        "(see --help)\n");
        return 2;
    }
    if (lt_records_find(r.type) == NULL) {
        fprintf(stderr, "lienthong sign: --type: '%s' is not a record type (see --help)\n",
                r.type);
        return 2;
    }

    lt_why why;
    lt_agency_config *cfg = NULL;
    lt_err e = lt_agency_config_load(cfg_path, &cfg, &why);
    if (e == LT_OK)
        e = lt_agency_config_open_signer(cfg, &r.signer, &why);
    if (e == LT_OK)
        e = lt_envfile_open_writer(out, &r.w, &why);
    if (e == LT_OK)
        e = json ? add_record(&r, "--json", json, strlen(json), &why)
                 : sign_lines(&r, file, &why);
    if (e == LT_OK)
        e = flush(&r, &why);
    lt_why cwhy;
    lt_err ce = lt_envfile_close_writer(&r.w, &cwhy);
    if (e == LT_OK && ce != LT_OK) {
        e = ce;
        why = cwhy;
    }
    pending_clear(&r.p);
    free(r.p.payloads);
    free(r.p.lens);
    if (e == LT_OK)
        fprintf(strcmp(out, "-") == 0 ? stderr : stdout,
                "sign: %zu envelope%s by %s (%s, %s) -> %s\n", r.written,
                r.written == 1 ? "" : "s", lt_signer_agency(r.signer),
                lt_sig_alg_name(lt_signer_alg(r.signer)),
                r.batch ? "batch-signed" : "one signature each", out);
    lt_signer_destroy(&r.signer);
    lt_agency_config_destroy(&cfg);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong sign: %s: %s\n", lt_err_name(e), why.msg);
        return 1;
    }
    return 0;
}
