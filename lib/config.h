/*
 * config.h - the agency client config (DIR/agencies/<short>.yaml, written by dev-init):
 *
 *     agency:
 *       id: VN:GOV:000.00.00.H29:vanphong    # must equal the certificate's CN (normal form)
 *       name: "Văn phòng UBND Thành phố Hồ Chí Minh"
 *       key: ../keys/vanphong.key.pem        # optional for verify-only clients
 *       cert: ../certs/vanphong.cert.pem     # optional for verify-only clients
 *     trust:
 *       ca: ../ca/ca.cert.pem                # default ../ca/ca.cert.pem
 *       crl: ../ca/crl.pem                   # default ../ca/crl.pem
 *       clock_skew_s: 300                    # 0..86400, default 300
 *     broker:
 *       endpoint: tcp://127.0.0.1:7400       # default tcp://127.0.0.1:7400
 *       curve_server_key: "..."              # optional: the broker's CURVE public key (Z85);
 *                                            # then agency.curve_key is required
 *
 * and, with CURVE, agency.curve_key: ../keys/<short>.curve (the CURVE secret key file,
 * `lienthong curve-keygen`; its public key is listed in the broker's curve_clients).
 *
 * Paths are relative to the file's directory. Unknown keys and bad values are refused with
 * "file:line: key: reason" (lib/ycfg.h). A loaded config is plain immutable data.
 */
#ifndef LT_LIB_CONFIG_H
#define LT_LIB_CONFIG_H

#include "agency.h"
#include "err.h"
#include "pki.h"

#include <stdint.h>

typedef struct lt_agency_config {
    char *path;                   /* the file it came from */
    char id[LT_AGENCY_ID_MAX];    /* normalized agency id */
    char *name;                   /* "" when absent */
    char *key_path, *cert_path;   /* absolute or relative to the cwd; NULL when absent */
    char *ca_path, *crl_path;     /* resolved against the file's directory */
    int64_t clock_skew_s;
    char *broker_endpoint;
    char *curve_key_path;         /* agency.curve_key, resolved; NULL when absent */
    char curve_server_key[41];    /* broker.curve_server_key (Z85); "" when absent */
} lt_agency_config;

/* A CURVE key pair read from a secret key file (Z85 text). */
typedef struct lt_curve_pair {
    char public_key[41];
    char secret_key[41];
} lt_curve_pair;

/* Load and validate path. On LT_OK the caller owns *out (lt_agency_config_destroy).
 * LT_EIO: unreadable; LT_ECONFIG: not YAML, unknown key, missing agency.id, bad value —
 * with "file:line: key: reason" in why; LT_ENOMEM. Files are not opened here. */
lt_err lt_agency_config_load(const char *path, lt_agency_config **out, lt_why *why);

/* Free. Accepts NULL; clears *cp. */
void lt_agency_config_destroy(lt_agency_config **cp);

/* Open the config's signer; also checks the certificate's agency equals agency.id.
 * LT_ECONFIG: key or cert not configured, or CN differs from agency.id; else as
 * lt_signer_open. */
lt_err lt_agency_config_open_signer(const lt_agency_config *cfg, lt_signer **out, lt_why *why);

/* With broker.curve_server_key set: read agency.curve_key into *out and return LT_OK; set
 * the client options' curve_* to the pair and the server key (pointers into *out and cfg,
 * which must outlive the lt_client_open call). Without it: LT_OK and o untouched.
 * LT_ECONFIG: no curve_key, file unreadable or not a CURVE secret key. */
struct lt_client_opts;
lt_err lt_agency_config_curve(const lt_agency_config *cfg, lt_curve_pair *out,
                              struct lt_client_opts *o, lt_why *why);

/* Open the config's trust (ca, crl, clock skew; other options default). As lt_trust_open. */
lt_err lt_agency_config_open_trust(const lt_agency_config *cfg, lt_trust **out, lt_why *why);

#endif
