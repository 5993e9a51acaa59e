/*
 * cmd_dev_init.c - `lienthong dev-init DIR`: a complete development setup on one machine.
 *
 *   DIR/ca/ca.key.pem, ca.cert.pem   the development trust root (never use in production)
 *   DIR/ca/crl.pem                   its CRL (empty; nextUpdate in 30 days)
 *   DIR/keys/<short>.key.pem         each agency's private key (0600)
 *   DIR/certs/<short>.cert.pem       each agency's certificate (CN = agency id, O = name)
 *   DIR/agencies/<short>.yaml        each agency client's config (lib/config.h)
 *   DIR/keys/broker-<place>.key.pem  broker identities for a network of three (ward, city,
 *   DIR/certs/broker-<place>.cert.pem  national; broker.identity in docs/network.md)
 *   DIR/broker.yaml                  the broker config: ACLs and queues for the demo flow
 *   DIR/admin.token                  the admin API bearer token (0600)
 * With --state-dir STATE (the packaged service: STATE = /var/lib/lienthong, systemd's
 * StateDirectory) broker.yaml puts the LMDB environment in STATE/data and the admin token in
 * STATE/admin.token, which the broker creates there as its own user; DIR/admin.token is not
 * written.
 *
 * With --test-certs also the certificates tests need, for district 1 (quan1): one expired,
 * one revoked (listed in DIR/ca/crl.pem), one issued by another CA (DIR/otherca/), each with
 * its agency config (agencies/quan1-expired.yaml ...).
 *
 * The agencies are the HCMC People's Committee office, the Department of Justice, the People's
 * Committees of districts 1 and 3 (GSO codes 760, 770; the pre-July-2025 district level, as
 * records from before carry those codes), the national population database (Ministry of Public
 * Security, G01) and the national public-service portal (Government Office, G22). The codes of
 * the department and the districts are illustrative: QCVN 102 codes name the level-1 body
 * (000.00.00.H29); the lower levels below it are assigned by the province.
 */
#include "cmd_decls.h"

#include "devpki.h"
#include "envelope.h"
#include "pki.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

const char lt_cmd_dev_init_summary[] =
    "create a development trust root, agency keys, certificates and configs";

struct agency {
    const char *shortname, *id, *name;
    const char *publish; /* YAML flow list */
};

static const struct agency agencies[] = {
    {"vanphong", "VN:GOV:000.00.00.H29:vanphong",
     "Văn phòng Ủy ban nhân dân Thành phố Hồ Chí Minh", "[\"79.vp.>\"]"},
    {"tuphap", "VN:GOV:H29.20:tuphap", "Sở Tư pháp Thành phố Hồ Chí Minh",
     "[\"79.stp.>\", \"79.vp.nhiemvu.stp.trangthai\"]"},
    {"quan1", "VN:GOV:000.00.00.H29.760:hotich", "Ủy ban nhân dân Quận 1", "[\"79.760.>\"]"},
    {"quan3", "VN:GOV:000.00.00.H29.770:hotich", "Ủy ban nhân dân Quận 3", "[\"79.770.>\"]"},
    {"dancu", "VN:GOV:000.00.00.G01:csdldancu",
     "Cơ sở dữ liệu quốc gia về dân cư (Bộ Công an)", "[]"},
    {"dvcqg", "VN:GOV:000.00.00.G22:dvcqg",
     "Cổng Dịch vụ công quốc gia (Văn phòng Chính phủ)", "[]"},
    /* The agencies that perform the steps of the sample procedures (ops/procedures): a
     * ward's one-stop desk, civil-status officer and land officer (Phường Tân Định, 26737),
     * the ward police (residence), social insurance, the business registration office and
     * the land registration office. Codes below H29/G01 are development samples. A name
     * is a certificate's O: at most 64 characters. */
    {"motcua", "VN:GOV:000.00.00.H29.26737:motcua",
     "Bộ phận Một cửa, UBND Phường Tân Định", "[\"79.26737.hoso.>\"]"},
    {"hotich26737", "VN:GOV:000.00.00.H29.26737:hotich",
     "Tư pháp - hộ tịch, UBND Phường Tân Định", "[\"79.26737.>\"]"},
    {"diachinh", "VN:GOV:000.00.00.H29.26737:diachinh",
     "Địa chính, UBND Phường Tân Định", "[\"79.26737.hoso.>\"]"},
    {"congan", "VN:GOV:000.00.00.G01.79.26737:cutru", "Công an Phường Tân Định (cư trú)",
     "[\"79.*.cutru.>\", \"79.*.hoso.>\"]"},
    {"bhxh", "VN:GOV:000.00.00.H29.BHXH:bhyt", "Bảo hiểm xã hội Thành phố Hồ Chí Minh",
     "[\"79.*.hoso.>\"]"},
    {"dkkd", "VN:GOV:H29.12:dkkd", "Phòng Đăng ký kinh doanh, Sở Tài chính TP.HCM",
     "[\"79.*.dkkd.>\", \"79.*.hoso.>\"]"},
    {"vpdkdd", "VN:GOV:H29.15:vpdkdd",
     "Văn phòng Đăng ký đất đai (Sở Nông nghiệp và Môi trường TP.HCM)",
     "[\"79.*.hoso.>\"]"},
};
#define NAGENCIES (sizeof agencies / sizeof agencies[0])

/* Broker identities for a development network (docs/network.md): a ward system, the city
 * and the national population database, each lienthongd authenticating at its peers with
 * keys/<short>.key.pem and certs/<short>.cert.pem (broker.identity). */
static const struct agency brokers[] = {
    {"broker-ward", "VN:GOV:000.00.00.H29.26734:lienthong",
     "Hệ thống liên thông Phường Sài Gòn", NULL},
    {"broker-city", "VN:GOV:000.00.00.H29:lienthong",
     "Hệ thống liên thông Thành phố Hồ Chí Minh", NULL},
    {"broker-national", "VN:GOV:000.00.00.G01:lienthong",
     "Hệ thống liên thông Cơ sở dữ liệu quốc gia về dân cư", NULL},
};
#define NBROKERS (sizeof brokers / sizeof brokers[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong dev-init DIR [--alg ecdsa-p256|ed25519|rsa2048] [--force]\n"
            "                          [--test-certs] [--state-dir STATE]\n\n"
            "%s.\n\n"
            "  --alg ALG      key algorithm of the CA and the agencies (default ecdsa-p256)\n"
            "  --force        replace an existing setup in DIR (its keys are lost)\n"
            "  --test-certs   also issue an expired, a revoked and an unknown-CA certificate\n"
            "                 for district 1 (agencies/quan1-{expired,revoked,otherca}.yaml)\n"
            "  --state-dir STATE  broker.yaml keeps the store in STATE/data and the admin token\n"
            "                 in STATE/admin.token (created by the broker): for the packaged\n"
            "                 service, `dev-init /etc/lienthong --state-dir /var/lib/lienthong`\n\n"
            "Writes DIR/ca, DIR/keys (0600), DIR/certs, DIR/agencies/*.yaml, DIR/broker.yaml\n"
            "and DIR/admin.token. For development only: never deploy this CA.\n",
            lt_cmd_dev_init_summary);
}

static lt_err mkdir_p(const char *path, mode_t mode, lt_why *why)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return LT_OK;
    return lt_fail(why, LT_EIO, "%s: %s", path, strerror(errno));
}

static lt_err pathf(char *buf, size_t size, lt_why *why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static lt_err pathf(char *buf, size_t size, lt_why *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return lt_fail(why, LT_EINVAL, "path too long");
    return LT_OK;
}

static lt_err write_text(const char *path, const char *text, unsigned mode, lt_why *why)
{
    return lt_devpki_write_file(path, text, strlen(text), mode, why);
}

static lt_err agency_yaml(const char *dir, const char *shortname, const char *id,
                          const char *name, const char *keyname, const char *ca_rel,
                          lt_why *why)
{
    char path[4096], text[2048];
    lt_err e = pathf(path, sizeof path, why, "%s/agencies/%s.yaml", dir, shortname);
    if (e != LT_OK)
        return e;
    int n = snprintf(text, sizeof text,
                     "# Agency client config written by `lienthong dev-init` (see lib/config.h).\n"
                     "agency:\n"
                     "  id: %s\n"
                     "  name: \"%s\"\n"
                     "  key: ../keys/%s.key.pem\n"
                     "  cert: ../certs/%s.cert.pem\n"
                     "trust:\n"
                     "  ca: %s\n"
                     "  crl: ../ca/crl.pem\n"
                     "  clock_skew_s: 300\n"
                     "broker:\n"
                     "  endpoint: tcp://127.0.0.1:7400\n",
                     id, name, keyname, keyname, ca_rel);
    if (n < 0 || (size_t)n >= sizeof text)
        return lt_fail(why, LT_EINVAL, "config text too long");
    return write_text(path, text, 0644, why);
}

static lt_err broker_yaml(const char *dir, const char *state, lt_why *why)
{
    char path[4096], data[4096], token[4096];
    lt_err e = pathf(path, sizeof path, why, "%s/broker.yaml", dir);
    if (e == LT_OK)
        e = state ? pathf(data, sizeof data, why, "%s/data", state)
                  : pathf(data, sizeof data, why, "data");
    if (e == LT_OK)
        e = state ? pathf(token, sizeof token, why, "%s/admin.token", state)
                  : pathf(token, sizeof token, why, "admin.token");
    if (e != LT_OK)
        return e;
    char text[8192];
    size_t off = 0;
#define EMIT(...)                                                                                \
    do {                                                                                         \
        int n_ = snprintf(text + off, sizeof text - off, __VA_ARGS__);                           \
        if (n_ < 0 || (size_t)n_ >= sizeof text - off)                                           \
            return lt_fail(why, LT_EINVAL, "broker.yaml too long");                              \
        off += (size_t)n_;                                                                       \
    } while (0)
    EMIT("# Broker config written by `lienthong dev-init` (format: docs/config.md).\n"
         "broker:\n"
         "  name: hcmc-lienthong\n"
         "  listen: tcp://127.0.0.1:7400\n"
         "  data_dir: %s\n"
         "  map_size_mb: 65536\n"
         "  verify_threads: 0\n"
         "  max_frame_bytes: 4194304\n"
         "  dedup_window_s: 86400\n"
         "  commit_max_batch: 4096\n"
         "  admin:\n"
         "    listen: 127.0.0.1:7401\n"
         "    token_file: %s\n"
         "trust:\n"
         "  ca: ca/ca.cert.pem\n"
         "  crl: ca/crl.pem\n"
         "  clock_skew_s: 300\n"
         "admins:\n"
         "  - %s\n"
         "acl:\n",
         data, token, agencies[0].id);
    for (size_t i = 0; i < NAGENCIES; i++)
        EMIT("  - agency: %s\n    name: \"%s\"\n    publish: %s\n", agencies[i].id,
             agencies[i].name, agencies[i].publish);
    EMIT("queues:\n"
         "  - name: dancu.capnhat              # civil status and residence -> population DB\n"
         "    owner: %s\n"
         "    bind: [\"79.*.hotich.>\", \"79.*.cutru.>\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "    backoff_s: [1, 5, 30]\n"
         "    max_ack_pending: 1000\n"
         "    max_depth: 1000000\n"
         "    max_bytes: 1073741824\n"
         "    retention_s: 86400\n"
         "  - name: dvcqg.hoso                 # dossier status -> national public-service portal\n"
         "    owner: %s\n"
         "    bind: [\"79.*.hoso.>\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "    backoff_s: [1, 5, 30]\n"
         "    max_ack_pending: 1000\n"
         "    max_depth: 1000000\n"
         "    max_bytes: 1073741824\n"
         "    retention_s: 86400\n"
         "  - name: vanphong.vanban             # e-documents and task reports -> city office\n"
         "    owner: %s\n"
         "    bind: [\"79.*.vanban.>\", \"79.*.nhiemvu.>\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "    backoff_s: [1, 5, 30]\n"
         "    max_ack_pending: 1000\n"
         "    max_depth: 1000000\n"
         "    max_bytes: 1073741824\n"
         "    retention_s: 86400\n"
         "  - name: dkkd.doanhnghiep           # enterprise registrations (lienthong adapt) -> city office\n"
         "    owner: %s\n"
         "    bind: [\"79.*.dkkd.>\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "    backoff_s: [1, 5, 30]\n"
         "    max_ack_pending: 1000\n"
         "    max_depth: 1000000\n"
         "    max_bytes: 1073741824\n"
         "    retention_s: 86400\n"
         "  - name: nhiemvu.dichvu             # tasks and their status -> lienthong tasks\n"
         "    owner: %s\n"
         "    bind: [\"79.vp.nhiemvu.*\", \"79.vp.nhiemvu.*.trangthai\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "  - name: nhiemvu.stp                # tasks and reminders for the Department of Justice\n"
         "    owner: %s\n"
         "    bind: [\"79.vp.nhiemvu.stp\", \"79.vp.nhiemvu.stp.nhacviec\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n"
         "  - name: nhiemvu.quahan             # overdue warnings -> the city office\n"
         "    owner: %s\n"
         "    bind: [\"79.vp.nhiemvu.*.quahan\"]\n"
         "    ack_wait_s: 30\n"
         "    max_deliver: 5\n",
         agencies[4].id, agencies[5].id, agencies[0].id, agencies[0].id, agencies[0].id,
         agencies[1].id, agencies[0].id);
#undef EMIT
    return write_text(path, text, 0644, why);
}

static lt_err admin_token(const char *dir, lt_why *why)
{
    uint8_t raw[32];
    char hex[2 * sizeof raw + 2], path[4096];
    lt_err e = lt_pki_random(raw, sizeof raw, why);
    if (e != LT_OK || (e = pathf(path, sizeof path, why, "%s/admin.token", dir)) != LT_OK)
        return e;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * sizeof raw] = '\n';
    hex[2 * sizeof raw + 1] = '\0';
    return write_text(path, hex, 0600, why);
}

/* The extra certificates tests need (see the top of this file). */
static lt_err test_certs(const char *dir, lt_devpki_ca *ca, lt_sig_alg alg, int64_t now,
                         lt_why *why)
{
    const struct agency *a = &agencies[2];
    char key[4096], cert[4096], crl[4096], okey[4096], ocert[4096], odir[4096];
    lt_err e;
    lt_devpki_cert_spec spec = {.agency_id = a->id, .org = a->name, .alg = alg};

    /* Expired yesterday. */
    spec.not_before_ms = now - 400 * LT_DEVPKI_DAY_MS;
    spec.not_after_ms = now - LT_DEVPKI_DAY_MS;
    if ((e = pathf(key, sizeof key, why, "%s/keys/quan1-expired.key.pem", dir)) != LT_OK ||
        (e = pathf(cert, sizeof cert, why, "%s/certs/quan1-expired.cert.pem", dir)) != LT_OK ||
        (e = lt_devpki_issue(ca, &spec, key, cert, why)) != LT_OK ||
        (e = agency_yaml(dir, "quan1-expired", a->id, a->name, "quan1-expired",
                         "../ca/ca.cert.pem", why)) != LT_OK)
        return e;

    /* Valid, then revoked. */
    spec.not_before_ms = now - 3600 * 1000;
    spec.not_after_ms = now + 730 * LT_DEVPKI_DAY_MS;
    if ((e = pathf(key, sizeof key, why, "%s/keys/quan1-revoked.key.pem", dir)) != LT_OK ||
        (e = pathf(cert, sizeof cert, why, "%s/certs/quan1-revoked.cert.pem", dir)) != LT_OK ||
        (e = pathf(crl, sizeof crl, why, "%s/ca/crl.pem", dir)) != LT_OK ||
        (e = lt_devpki_issue(ca, &spec, key, cert, why)) != LT_OK ||
        (e = lt_devpki_revoke(ca, cert, crl, now, why)) != LT_OK ||
        (e = agency_yaml(dir, "quan1-revoked", a->id, a->name, "quan1-revoked",
                         "../ca/ca.cert.pem", why)) != LT_OK)
        return e;

    /* Issued by a CA nobody trusts, with the same name as the real one. */
    lt_devpki_ca *other = NULL;
    if ((e = pathf(odir, sizeof odir, why, "%s/otherca", dir)) != LT_OK ||
        (e = mkdir_p(odir, 0700, why)) != LT_OK ||
        (e = pathf(okey, sizeof okey, why, "%s/ca.key.pem", odir)) != LT_OK ||
        (e = pathf(ocert, sizeof ocert, why, "%s/ca.cert.pem", odir)) != LT_OK ||
        (e = pathf(key, sizeof key, why, "%s/keys/quan1-otherca.key.pem", dir)) != LT_OK ||
        (e = pathf(cert, sizeof cert, why, "%s/certs/quan1-otherca.cert.pem", dir)) != LT_OK)
        return e;
    e = lt_devpki_ca_create(alg, "lienthong development root CA", "lienthong (phát triển)",
                            now - 3600 * 1000, now + 3650 * LT_DEVPKI_DAY_MS, &other, why);
    if (e == LT_OK)
        e = lt_devpki_ca_save(other, okey, ocert, why);
    if (e == LT_OK)
        e = lt_devpki_issue(other, &spec, key, cert, why);
    lt_devpki_ca_destroy(&other);
    if (e == LT_OK)
        e = agency_yaml(dir, "quan1-otherca", a->id, a->name, "quan1-otherca",
                        "../ca/ca.cert.pem", why);
    return e;
}

/* keys/<short>.key.pem and certs/<short>.cert.pem of a, valid for two years. */
static lt_err issue(lt_devpki_ca *ca, const char *dir, const struct agency *a, lt_sig_alg alg,
                    int64_t now, lt_why *why)
{
    char key[4096], cert[4096];
    lt_devpki_cert_spec spec = {
        .agency_id = a->id,
        .org = a->name,
        .alg = alg,
        .not_before_ms = now - 3600 * 1000,
        .not_after_ms = now + 730 * LT_DEVPKI_DAY_MS,
    };
    lt_err e;
    if ((e = pathf(key, sizeof key, why, "%s/keys/%s.key.pem", dir, a->shortname)) != LT_OK ||
        (e = pathf(cert, sizeof cert, why, "%s/certs/%s.cert.pem", dir, a->shortname)) != LT_OK)
        return e;
    return lt_devpki_issue(ca, &spec, key, cert, why);
}

/* keys/<short>.curve (the CURVE secret key, 0600) and certs/<short>.curve.pub (its public
 * key), Z85 text, for broker.curve and peers[].curve_key. */
static lt_err curve_pair(const char *dir, const char *shortname, lt_why *why)
{
    char pub[48], sec[48], path[4096]; /* 40 characters, newline, NUL */
    lt_err e;
    if (zmq_curve_keypair(pub, sec) != 0)
        return lt_fail(why, LT_ECRYPTO, "CURVE key pair: %s", zmq_strerror(zmq_errno()));
    strcat(sec, "\n");
    strcat(pub, "\n");
    if ((e = pathf(path, sizeof path, why, "%s/keys/%s.curve", dir, shortname)) != LT_OK ||
        (e = write_text(path, sec, 0600, why)) != LT_OK ||
        (e = pathf(path, sizeof path, why, "%s/certs/%s.curve.pub", dir, shortname)) != LT_OK ||
        (e = write_text(path, pub, 0644, why)) != LT_OK) {
        memset(sec, 0, sizeof sec);
        return e;
    }
    memset(sec, 0, sizeof sec);
    return LT_OK;
}

static lt_err dev_init(const char *dir, const char *state, lt_sig_alg alg, bool force,
                       bool extra, lt_why *why)
{
    char p1[4096], p2[4096], p3[4096];
    lt_err e;
    if ((e = mkdir_p(dir, 0755, why)) != LT_OK ||
        (e = pathf(p1, sizeof p1, why, "%s/ca/ca.key.pem", dir)) != LT_OK)
        return e;
    if (!force && access(p1, F_OK) == 0)
        return lt_fail(why, LT_EEXIST,
                       "%s already holds a development PKI (--force replaces it and its keys)",
                       dir);
    static const char *const subdirs[] = {"ca", "keys", "certs", "agencies"};
    for (size_t i = 0; i < 4; i++) {
        if ((e = pathf(p2, sizeof p2, why, "%s/%s", dir, subdirs[i])) != LT_OK ||
            (e = mkdir_p(p2, i == 1 ? 0700 : 0755, why)) != LT_OK)
            return e;
    }

    int64_t now = lt_env_now_ms();
    lt_devpki_ca *ca = NULL;
    if ((e = lt_devpki_ca_create(alg, "lienthong development root CA",
                                 "lienthong (phát triển)", now - 3600 * 1000,
                                 now + 3650 * LT_DEVPKI_DAY_MS, &ca, why)) != LT_OK)
        return e;
    if ((e = pathf(p2, sizeof p2, why, "%s/ca/ca.cert.pem", dir)) != LT_OK ||
        (e = pathf(p3, sizeof p3, why, "%s/ca/crl.pem", dir)) != LT_OK ||
        (e = lt_devpki_ca_save(ca, p1, p2, why)) != LT_OK ||
        (e = lt_devpki_write_crl(ca, NULL, 0, now, now + 30 * LT_DEVPKI_DAY_MS, p3, why)) !=
            LT_OK)
        goto out;

    for (size_t i = 0; i < NAGENCIES; i++) {
        const struct agency *a = &agencies[i];
        if ((e = issue(ca, dir, a, alg, now, why)) != LT_OK ||
            (e = agency_yaml(dir, a->shortname, a->id, a->name, a->shortname,
                             "../ca/ca.cert.pem", why)) != LT_OK)
            goto out;
    }
    for (size_t i = 0; i < NBROKERS; i++)
        if ((e = issue(ca, dir, &brokers[i], alg, now, why)) != LT_OK ||
            (e = curve_pair(dir, brokers[i].shortname, why)) != LT_OK)
            goto out;
    if ((e = broker_yaml(dir, state, why)) != LT_OK ||
        (!state && (e = admin_token(dir, why)) != LT_OK))
        goto out;
    if (extra)
        e = test_certs(dir, ca, alg, now, why);
out:
    lt_devpki_ca_destroy(&ca);
    return e;
}

int lt_cmd_dev_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"alg", required_argument, NULL, 'a'},
        {"force", no_argument, NULL, 'f'},
        {"test-certs", no_argument, NULL, 't'},
        {"state-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    lt_sig_alg alg = LT_SIG_ECDSA_P256;
    bool force = false, extra = false;
    const char *state = NULL;
    lt_why why;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:fts:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (lt_sig_alg_parse(optarg, &alg, &why) != LT_OK) {
                fprintf(stderr, "lienthong dev-init: --alg: %s\n", why.msg);
                return 2;
            }
            break;
        case 'f':
            force = true;
            break;
        case 't':
            extra = true;
            break;
        case 's':
            if (optarg[0] != '/') {
                fprintf(stderr, "lienthong dev-init: --state-dir: %s is not an absolute path\n",
                        optarg);
                return 2;
            }
            state = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "lienthong dev-init: see 'lienthong dev-init --help'\n");
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "lienthong dev-init: expected one directory (see --help)\n");
        return 2;
    }
    const char *dir = argv[optind];
    lt_err e = dev_init(dir, state, alg, force, extra, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong dev-init: %s: %s\n", lt_err_name(e), why.msg);
        return 1;
    }
    printf("dev-init: %s: development CA (%s), %zu agencies%s, broker.yaml%s\n", dir,
           lt_sig_alg_name(alg), NAGENCIES, extra ? " + test certificates" : "",
           state ? "" : ", admin.token");
    for (size_t i = 0; i < NAGENCIES; i++)
        printf("  agencies/%s.yaml  %s  %s\n", agencies[i].shortname, agencies[i].id,
               agencies[i].name);
    return 0;
}
