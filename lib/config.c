/*
 * config.c - the agency client config (format in config.h and docs/config.md), read
 * through lib/ycfg.h so every refusal names file, line and key.
 */
#include "config.h"

#include "client.h"
#include <stdio.h>
#include <zmq.h>

#include "ycfg.h"

#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"agency", "trust", "broker", NULL};
static const char *const agency_keys[] = {"id", "name", "key", "cert", "curve_key", NULL};
static const char *const trust_keys[] = {"ca", "crl", "clock_skew_s", NULL};
static const char *const broker_keys[] = {"endpoint", "curve_server_key", NULL};

static lt_err dup_str(const char *s, char **out, lt_why *why)
{
    *out = strdup(s);
    return *out ? LT_OK : lt_fail(why, LT_ENOMEM, "out of memory");
}

static lt_err load(const lt_ynode *root, lt_agency_config *c, lt_why *why)
{
    const lt_ynode *agency, *trust, *broker, *idn;
    const char *s;
    lt_err e;
    if ((e = lt_ycfg_check_keys(root, top_keys, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "agency", true, &agency, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "trust", false, &trust, why)) != LT_OK ||
        (e = lt_ycfg_map(root, "broker", false, &broker, why)) != LT_OK ||
        (e = lt_ycfg_check_keys(agency, agency_keys, why)) != LT_OK ||
        (e = lt_ycfg_check_keys(trust, trust_keys, why)) != LT_OK ||
        (e = lt_ycfg_check_keys(broker, broker_keys, why)) != LT_OK)
        return e;

    if ((e = lt_ycfg_str(agency, "id", NULL, &s, why)) != LT_OK)
        return e;
    idn = lt_ycfg_get(agency, "id");
    lt_why inner;
    if (lt_agency_normalize(s, c->id, &inner) != LT_OK)
        return lt_ycfg_fail(idn, why, "%s", inner.msg);
    if ((e = lt_ycfg_str(agency, "name", "", &s, why)) != LT_OK ||
        (e = dup_str(s, &c->name, why)) != LT_OK)
        return e;
    if (lt_ycfg_get(agency, "key") != NULL &&
        (e = lt_ycfg_filepath(agency, "key", NULL, &c->key_path, why)) != LT_OK)
        return e;
    if (lt_ycfg_get(agency, "cert") != NULL &&
        (e = lt_ycfg_filepath(agency, "cert", NULL, &c->cert_path, why)) != LT_OK)
        return e;
    if (lt_ycfg_get(agency, "curve_key") != NULL &&
        (e = lt_ycfg_filepath(agency, "curve_key", NULL, &c->curve_key_path, why)) != LT_OK)
        return e;

    /* An absent section takes every default; defaults resolve against the file's directory,
     * which the getters learn from the node they are given: the root stands in. */
    if (trust == NULL)
        trust = root;
    if (broker == NULL)
        broker = root;
    if ((e = lt_ycfg_filepath(trust, "ca", "../ca/ca.cert.pem", &c->ca_path, why)) != LT_OK ||
        (e = lt_ycfg_filepath(trust, "crl", "../ca/crl.pem", &c->crl_path, why)) != LT_OK ||
        (e = lt_ycfg_int(trust, "clock_skew_s", 300, 0, 86400, &c->clock_skew_s, why)) != LT_OK)
        return e;

    if ((e = lt_ycfg_str(broker, "curve_server_key", "", &s, why)) != LT_OK)
        return e;
    uint8_t raw[32];
    if (s[0] && (strlen(s) != 40 || zmq_z85_decode(raw, s) == NULL))
        return lt_ycfg_fail(lt_ycfg_get(broker, "curve_server_key"), why,
                            "expected the broker's CURVE public key: 40 characters of Z85");
    if (s[0] && c->curve_key_path == NULL)
        return lt_ycfg_fail(lt_ycfg_get(broker, "curve_server_key"), why,
                            "CURVE needs this agency's key too: agency.curve_key");
    snprintf(c->curve_server_key, sizeof c->curve_server_key, "%s", s);
    if ((e = lt_ycfg_str(broker, "endpoint", "tcp://127.0.0.1:7400", &s, why)) != LT_OK)
        return e;
    if (strncmp(s, "tcp://", 6) != 0 && strncmp(s, "ipc://", 6) != 0 &&
        strncmp(s, "inproc://", 9) != 0)
        return lt_ycfg_fail(lt_ycfg_get(broker, "endpoint"), why,
                            "expected a ZeroMQ endpoint (tcp://host:port), got '%s'", s);
    return dup_str(s, &c->broker_endpoint, why);
}

lt_err lt_agency_config_load(const char *path, lt_agency_config **out, lt_why *why)
{
    lt_ynode *root = NULL;
    lt_err e = lt_ycfg_load(path, &root, why);
    if (e != LT_OK)
        return e;
    lt_agency_config *c = calloc(1, sizeof *c);
    if (c == NULL) {
        lt_ycfg_free(&root);
        return lt_fail(why, LT_ENOMEM, "out of memory");
    }
    e = load(root, c, why);
    if (e == LT_OK)
        e = dup_str(path, &c->path, why);
    lt_ycfg_free(&root);
    if (e != LT_OK) {
        lt_agency_config_destroy(&c);
        return e;
    }
    *out = c;
    return LT_OK;
}

void lt_agency_config_destroy(lt_agency_config **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    lt_agency_config *c = *cp;
    free(c->path);
    free(c->name);
    free(c->key_path);
    free(c->cert_path);
    free(c->ca_path);
    free(c->crl_path);
    free(c->broker_endpoint);
    free(c->curve_key_path);
    free(c);
    *cp = NULL;
}

lt_err lt_agency_config_open_signer(const lt_agency_config *cfg, lt_signer **out, lt_why *why)
{
    if (cfg->key_path == NULL || cfg->cert_path == NULL)
        return lt_fail(why, LT_ECONFIG, "%s: agency.key and agency.cert are needed to sign",
                       cfg->path);
    lt_signer *s = NULL;
    lt_err e = lt_signer_open(cfg->key_path, cfg->cert_path, &s, why);
    if (e != LT_OK)
        return e;
    if (strcmp(lt_signer_agency(s), cfg->id) != 0) {
        e = lt_fail(why, LT_ECONFIG, "%s: agency.id is %s but the certificate %s is for %s",
                    cfg->path, cfg->id, cfg->cert_path, lt_signer_agency(s));
        lt_signer_destroy(&s);
        return e;
    }
    *out = s;
    return LT_OK;
}

lt_err lt_agency_config_open_trust(const lt_agency_config *cfg, lt_trust **out, lt_why *why)
{
    lt_trust_opts o = lt_trust_opts_default();
    o.clock_skew_ms = cfg->clock_skew_s * 1000;
    return lt_trust_open(cfg->ca_path, cfg->crl_path, &o, out, why);
}

lt_err lt_agency_config_curve(const lt_agency_config *cfg, lt_curve_pair *out,
                              struct lt_client_opts *o, lt_why *why)
{
    if (cfg->curve_server_key[0] == '\0')
        return LT_OK;
    FILE *f = cfg->curve_key_path ? fopen(cfg->curve_key_path, "r") : NULL;
    if (f == NULL)
        return lt_fail(why, LT_ECONFIG, "%s: agency.curve_key: cannot read %s", cfg->path,
                       cfg->curve_key_path ? cfg->curve_key_path : "(not set)");
    char line[128] = "";
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    lt_err e = LT_OK;
    if (strlen(line) != 40 || zmq_curve_public(out->public_key, line) != 0)
        e = lt_fail(why, LT_ECONFIG, "%s: agency.curve_key: %s is not a CURVE secret key (40 "
                                     "characters of Z85)", cfg->path, cfg->curve_key_path);
    else
        memcpy(out->secret_key, line, 41);
    memset(line, 0, sizeof line);
    if (e == LT_OK) {
        o->curve_server_key = cfg->curve_server_key;
        o->curve_public_key = out->public_key;
        o->curve_secret_key = out->secret_key;
    }
    return e;
}
