/*
 * cmd_db_verify.c - `lienthong db-verify`: verify every row a sink stored, again, from the
 * envelope kept in it (adapters/sink.h, lt_sink_verify_rows): the signature against a trust
 * root, and every column against the signed record. One line per failing row on stdout,
 * a summary on stderr; exit 0 when every row verified, 1 when some did not, 2 on usage or
 * database errors.
 */
#include "cmd_decls.h"
#include "config.h"
#include "sink.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

const char lt_cmd_db_verify_summary[] = "re-verify every row a sink stored (signature, columns)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong db-verify --db sqlite:PATH|postgresql://... (-c AGENCY.yaml |\n"
            "                           --ca CA.pem [--crl CRL.pem]) [--json]\n\n"
            "%s.\n\n"
            "  --db URL        the sink's database\n"
            "  -c FILE         take the trust (ca, crl, clock skew) from an agency config\n"
            "  --ca FILE       trust root(s), PEM           (instead of -c)\n"
            "  --crl FILE      revocation list(s), PEM      (without it: no revocation check)\n"
            "  --json          failing rows as JSON lines\n\n"
            "Each row's envelope is verified at its created time (or its received time if\n"
            "earlier) with the current CRL; message id, source, topic, record type, created\n"
            "time and every record column must equal what the envelope says.\n"
            "stdout, one line per failing row: TABLE MESSAGE_ID CODE REASON.\n",
            lt_cmd_db_verify_summary);
}

struct out {
    bool json;
};

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void on_bad(void *user, const lt_sink_bad_row *b)
{
    const struct out *o = user;
    if (o->json) {
        fputs("{\"table\":", stdout);
        json_str(b->table);
        fputs(",\"message_id\":", stdout);
        json_str(b->message_id);
        fputs(",\"code\":", stdout);
        json_str(lt_err_name(b->code));
        fputs(",\"reason\":", stdout);
        json_str(b->reason);
        fputs("}\n", stdout);
    } else {
        printf("%s %s %s %s\n", b->table, b->message_id, lt_err_name(b->code), b->reason);
    }
}

int lt_cmd_db_verify(int argc, char **argv)
{
    enum { O_DB = 256, O_CA, O_CRL, O_JSON };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},   {"config", required_argument, NULL, 'c'},
        {"ca", required_argument, NULL, O_CA},   {"crl", required_argument, NULL, O_CRL},
        {"json", no_argument, NULL, O_JSON},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_url = NULL, *cfg_path = NULL, *ca = NULL, *crl = NULL;
    struct out o = {false};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_DB: db_url = optarg; break;
        case 'c': cfg_path = optarg; break;
        case O_CA: ca = optarg; break;
        case O_CRL: crl = optarg; break;
        case O_JSON: o.json = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong db-verify: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong db-verify: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (db_url == NULL || (cfg_path == NULL) == (ca == NULL)) {
        fprintf(stderr, "lienthong db-verify: --db URL and one of -c AGENCY.yaml or --ca "
                        "CA.pem are required\n");
        return 2;
    }
    lt_why why = {{0}};
    lt_trust *trust = NULL;
    lt_err e;
    if (cfg_path != NULL) {
        lt_agency_config *cfg = NULL;
        e = lt_agency_config_load(cfg_path, &cfg, &why);
        if (e == LT_OK)
            e = lt_agency_config_open_trust(cfg, &trust, &why);
        lt_agency_config_destroy(&cfg);
    } else {
        e = lt_trust_open(ca, crl, NULL, &trust, &why);
    }
    lt_sink *db = NULL;
    if (e == LT_OK)
        e = lt_sink_open(db_url, &db, &why);
    lt_sink_verify_stats st = {0};
    if (e == LT_OK)
        e = lt_sink_verify_rows(db, trust, on_bad, &o, &st, &why);
    fflush(stdout);
    lt_sink_close(&db);
    lt_trust_destroy(&trust);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong db-verify: %s\n", why.msg);
        return 2;
    }
    fprintf(stderr, "lienthong db-verify: %llu tables, %llu rows: %llu verified, %llu failed\n",
            (unsigned long long)st.tables, (unsigned long long)st.rows,
            (unsigned long long)st.ok, (unsigned long long)st.bad);
    return st.bad > 0 ? 1 : 0;
}
