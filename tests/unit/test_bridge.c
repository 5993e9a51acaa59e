/*
 * test_bridge.c - the pure parts of `lienthong bridge` (tools/tool_bridge.h): the subject of
 * a record, the NATS message built for an envelope (its headers), the check of headers read
 * back from a stream against the signed envelope, the check of the options, the back-off.
 * No NATS server: libnats builds and reads messages without a connection.
 */
#include "devpki.h"
#include "envelope.h"
#include "tool_bridge.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define BIRTH "lienthong.v1.records.BirthRegistration"

static const uint8_t MSG_ID[LT_ENV_MESSAGE_ID_LEN] = {0x01, 0x8f, 0x2a, 0x3b, 0x4c, 0x5d,
                                                      0x6e, 0x7f, 0x80, 0x91, 0xa2, 0xb3,
                                                      0xc4, 0xd5, 0xe6, 0xf7};
#define MSG_ID_HEX "018f2a3b4c5d6e7f8091a2b3c4d5e6f7"

static char dir[256];
static lt_signer *signer;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/lt-test-bridge-XXXXXX", tmp);
    if (mkdtemp(dir) == NULL)
        return -1;
    lt_why why = {{0}};
    char k[512], c[512];
    snprintf(k, sizeof k, "%s/a.key.pem", dir);
    snprintf(c, sizeof c, "%s/a.cert.pem", dir);
    if (nats_Open(-1) != NATS_OK) /* natsMsg_Destroy needs the library's globals */
        return -1;
    if (lt_devpki_fixture(dir, LT_SIG_ECDSA_P256, lt_env_now_ms(), &why) != LT_OK ||
        lt_signer_open(k, c, &signer, &why) != LT_OK) {
        fprintf(stderr, "test_bridge: %s\n", why.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lt_signer_destroy(&signer);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    nats_Close();
    return 0;
}

/* An envelope with MSG_ID on topic, signed by agency A; *len set; the caller frees it. */
static uint8_t *seal(const char *topic, size_t *len)
{
    static const uint8_t payload[] = {0x0a, 0x03, 'a', 'b', 'c'};
    lt_env_spec spec = {.message_id = MSG_ID, .topic = topic, .record_type = BIRTH,
                        .payload = payload, .payload_len = sizeof payload};
    uint8_t *out = NULL;
    lt_why why = {{0}};
    if (lt_env_seal(signer, &spec, &out, len, &why) != LT_OK)
        fail_msg("seal: %s", why.msg);
    return out;
}

static void subject_is_the_prefix_then_the_topic_token_for_token(void **state)
{
    (void)state;
    char out[LT_BRIDGE_SUBJECT_MAX];
    lt_why why = {{0}};
    assert_int_equal(lt_bridge_subject("national", "79.760.hotich.khaisinh", out, sizeof out,
                                       &why),
                     LT_OK);
    assert_string_equal(out, "national.79.760.hotich.khaisinh");
    assert_int_equal(lt_bridge_subject("vn.national", "a_b-C9", out, sizeof out, &why), LT_OK);
    assert_string_equal(out, "vn.national.a_b-C9");
}

static void subject_refuses_a_topic_nats_cannot_carry_with_the_reason(void **state)
{
    (void)state;
    static const struct {
        const char *topic, *reason;
    } bad[] = {
        {"79.760 x", "byte 0x20 at byte 6"}, {"79.\t.x", "byte 0x09"},
        {"79.760.*", "'*' in a subject token"}, {"79.>", "'>' in a subject token"},
        {"79..760", "empty token at byte 3"}, {".79", "empty token at byte 0"},
        {"79.", "empty token at byte 3"},     {"", "empty subject"},
        {"a\x7f" "b", "byte 0x7f"},           {"79.76*0", "'*' in a subject token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[LT_BRIDGE_SUBJECT_MAX] = "untouched";
        lt_why why = {{0}};
        assert_int_equal(lt_bridge_subject("national", bad[i].topic, out, sizeof out, &why),
                         LT_EBADTOPIC);
        if (strstr(why.msg, bad[i].reason) == NULL)
            fail_msg("topic '%s': reason '%s' lacks '%s'", bad[i].topic, why.msg,
                     bad[i].reason);
        assert_non_null(strstr(why.msg, "is no NATS subject"));
        assert_string_equal(out, "untouched"); /* written only on success */
    }
    lt_why why = {{0}};
    char out[LT_BRIDGE_SUBJECT_MAX];
    assert_int_equal(lt_bridge_subject("nat*", "79.760", out, sizeof out, &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "subject prefix 'nat*'"));
}

static void subject_refuses_what_does_not_fit_its_buffer(void **state)
{
    (void)state;
    char small[16];
    lt_why why = {{0}};
    assert_int_equal(lt_bridge_subject("national", "79.760.hotich", small, sizeof small, &why),
                     LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "longer than 15 bytes"));
    assert_int_equal(lt_bridge_subject("national", "123456", small, sizeof small, &why),
                     LT_OK);
    assert_string_equal(small, "national.123456");
    char big[LT_BRIDGE_SUBJECT_MAX + 8];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(lt_bridge_subject_check(big, false, &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "at most 511"));
}

static void wildcards_are_allowed_only_where_asked_and_only_as_tokens(void **state)
{
    (void)state;
    lt_why why = {{0}};
    assert_int_equal(lt_bridge_subject_check("national.>", true, &why), LT_OK);
    assert_int_equal(lt_bridge_subject_check("national.*.760.>", true, &why), LT_OK);
    assert_int_equal(lt_bridge_subject_check(">", true, &why), LT_OK);
    assert_int_equal(lt_bridge_subject_check("national.>", false, &why), LT_EBADTOPIC);
    assert_int_equal(lt_bridge_subject_check("national.*", false, &why), LT_EBADTOPIC);
    assert_int_equal(lt_bridge_subject_check("a.>.b", true, &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "'>' before the last token"));
    assert_int_equal(lt_bridge_subject_check("a.b*", true, &why), LT_EBADTOPIC);
    assert_int_equal(lt_bridge_subject_check("a.>>", true, &why), LT_EBADTOPIC);
}

static void the_message_of_an_envelope_carries_it_unchanged_with_its_headers(void **state)
{
    (void)state;
    size_t len;
    uint8_t *env = seal("79.760.hotich.khaisinh", &len);
    natsMsg *m = NULL;
    char id[2 * LT_ENV_MESSAGE_ID_LEN + 1];
    lt_why why = {{0}};
    assert_int_equal(lt_bridge_msg_new("national", env, len, &m, id, &why), LT_OK);
    assert_string_equal(id, MSG_ID_HEX);
    assert_string_equal(natsMsg_GetSubject(m), "national.79.760.hotich.khaisinh");
    assert_int_equal(natsMsg_GetDataLength(m), (int)len);
    assert_memory_equal(natsMsg_GetData(m), env, len);
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(m, "Nats-Msg-Id", &v), NATS_OK);
    assert_string_equal(v, MSG_ID_HEX);
    assert_int_equal(natsMsgHeader_Get(m, LT_BRIDGE_HDR_TOPIC, &v), NATS_OK);
    assert_string_equal(v, "79.760.hotich.khaisinh");
    assert_int_equal(natsMsgHeader_Get(m, LT_BRIDGE_HDR_SOURCE, &v), NATS_OK);
    assert_string_equal(v, LT_DEVPKI_AGENCY_A);
    assert_int_equal(natsMsgHeader_Get(m, LT_BRIDGE_HDR_TYPE, &v), NATS_OK);
    assert_string_equal(v, BIRTH);
    natsMsg_Destroy(m);
    free(env);
}

static void no_message_is_built_for_bytes_that_are_no_envelope_or_a_topic_nats_refuses(
    void **state)
{
    (void)state;
    natsMsg *m = NULL;
    char id[2 * LT_ENV_MESSAGE_ID_LEN + 1] = "";
    lt_why why = {{0}};
    static const uint8_t junk[] = "not an envelope";
    assert_int_equal(lt_bridge_msg_new("national", junk, sizeof junk, &m, id, &why), LT_EPROTO);
    assert_null(m);
    size_t len;
    uint8_t *env = seal("79.760.ho tich", &len); /* a broker refuses it; a forger need not */
    assert_int_equal(lt_bridge_msg_new("national", env, len, &m, id, &why), LT_EBADTOPIC);
    assert_non_null(strstr(why.msg, "topic '79.760.ho tich' is no NATS subject"));
    assert_null(m);
    assert_string_equal(id, "");
    free(env);
}

static void headers_read_back_must_agree_with_the_signed_envelope(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bytes = seal("79.760.hotich.khaisinh", &len);
    lt_env *env = NULL;
    lt_why why = {{0}};
    assert_int_equal(lt_env_decode(bytes, len, NULL, &env, &why), LT_OK);
    lt_bridge_hdrs ok = {MSG_ID_HEX, "79.760.hotich.khaisinh", LT_DEVPKI_AGENCY_A, BIRTH};
    assert_int_equal(lt_bridge_hdrs_check(&ok, env, &why), LT_OK);
    lt_bridge_hdrs none = {0}; /* any NATS client may publish without them */
    assert_int_equal(lt_bridge_hdrs_check(&none, env, &why), LT_OK);
    static const char *const names[] = {"Nats-Msg-Id", LT_BRIDGE_HDR_TOPIC,
                                        LT_BRIDGE_HDR_SOURCE, LT_BRIDGE_HDR_TYPE};
    for (int i = 0; i < 4; i++) {
        lt_bridge_hdrs h = ok;
        const char **f[] = {&h.msg_id, &h.topic, &h.source, &h.record_type};
        *f[i] = "forged";
        assert_int_equal(lt_bridge_hdrs_check(&h, env, &why), LT_EPROTO);
        char want[128];
        snprintf(want, sizeof want, "header %s 'forged' disagrees", names[i]);
        if (strstr(why.msg, want) == NULL)
            fail_msg("'%s' lacks '%s'", why.msg, want);
    }
    lt_bridge_hdrs upper = ok; /* the hex is lower-case, as the bridge writes it */
    upper.msg_id = "018F2A3B4C5D6E7F8091A2B3C4D5E6F7";
    assert_int_equal(lt_bridge_hdrs_check(&upper, env, &why), LT_EPROTO);
    lt_env_destroy(&env);
    free(bytes);
}

/* The options of a valid `bridge out`, changed by the tests. */
static lt_bridge_opts out_opts(void)
{
    return (lt_bridge_opts){.cfg_path = "a.yaml", .queue = "national.out",
                            .nats_urls = "nats://127.0.0.1:4222", .stream = "NATIONAL",
                            .subject = "national", .credit = 2048, .timeout_ms = 5000};
}

static void expect_refused(const char *mode, lt_bridge_opts o, const char *reason)
{
    lt_why why = {{0}};
    assert_int_equal(lt_bridge_opts_check(mode, &o, &why), LT_EINVAL);
    if (strstr(why.msg, reason) == NULL)
        fail_msg("%s: '%s' lacks '%s'", mode, why.msg, reason);
}

static void options_each_mode_requires_are_checked_with_the_reason(void **state)
{
    (void)state;
    lt_why why = {{0}};
    lt_bridge_opts o = out_opts();
    assert_int_equal(lt_bridge_opts_check("out", &o, &why), LT_OK);
    o.stream = NULL;
    expect_refused("out", o, "--stream is required");
    o = out_opts();
    o.queue = NULL;
    expect_refused("out", o, "-c, -q and --subject are required");
    o = out_opts();
    o.durable = NULL;
    expect_refused("in", o, "in: -c, --subject and --durable are required");
    expect_refused("sink", o, "--durable is required");
    expect_refused("dump", o, "-o FILE is required");
    o.create_stream = true;
    o.dump_path = "x.env";
    expect_refused("dump", o, "--create-stream is for out only");
    expect_refused("sideways", out_opts(), "unknown mode 'sideways'");
    o = out_opts();
    o.nats_urls = "";
    expect_refused("out", o, "--nats: no URL");
}

static void options_names_and_subjects_are_what_jetstream_accepts(void **state)
{
    (void)state;
    lt_why why = {{0}};
    lt_bridge_opts o = out_opts();
    o.stream = "NATIONAL.v2";
    expect_refused("out", o, "--stream: byte '.'");
    o.stream = "NATIONAL v2";
    expect_refused("out", o, "--stream: byte '?' (0x20)");
    o = out_opts();
    o.durable = "city/79";
    expect_refused("in", o, "--durable: byte '/'");
    o = out_opts();
    o.subject = "national.>"; /* out: a prefix, records go to PREFIX.<topic> */
    expect_refused("out", o, "--subject 'national.>'");
    o.durable = "city79";
    assert_int_equal(lt_bridge_opts_check("in", &o, &why), LT_OK);
    assert_int_equal(lt_bridge_opts_check("sink", &o, &why), LT_OK);
    o.subject = "national.*.corrections.>";
    assert_int_equal(lt_bridge_opts_check("in", &o, &why), LT_OK);
    o.dump_path = "x.env";
    o.subject = "national.>";
    assert_int_equal(lt_bridge_opts_check("dump", &o, &why), LT_OK);
    o.subject = "national.*.x"; /* dump matches a literal subject or PREFIX.> only */
    expect_refused("dump", o, "dump: a literal subject or PREFIX.>");
    o.subject = "national..>";
    expect_refused("dump", o, "empty token");
    o.subject = "national..x";
    expect_refused("in", o, "empty token");
}

static void transient_answers_are_retried_and_refusals_of_the_record_are_not(void **state)
{
    (void)state;
    static const lt_err later[] = {LT_ETIMEDOUT, LT_ECLOSED,     LT_EBUSY,  LT_ESTORE_FULL,
                                   LT_ESTORE,    LT_EQUEUE_FULL, LT_ESHUTDOWN, LT_EAGAIN,
                                   LT_ECRL,      LT_EAUTH_PENDING};
    static const lt_err never[] = {LT_EHASH,     LT_ESIG,           LT_EPROTO,
                                   LT_ECERT_REVOKED, LT_EACL,       LT_ENOROUTE,
                                   LT_EPAYLOAD,  LT_ERECORD_TYPE,   LT_EBADTOPIC,
                                   LT_EID_CONFLICT, LT_ESKEW,       LT_OK};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
        if (!lt_bridge_is_transient(later[i]))
            fail_msg("%s should be retried", lt_err_name(later[i]));
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (lt_bridge_is_transient(never[i]))
            fail_msg("%s should be terminated", lt_err_name(never[i]));
}

static void back_off_doubles_from_200_ms_to_5_s(void **state)
{
    (void)state;
    assert_int_equal(lt_bridge_backoff_ms(1), 200);
    assert_int_equal(lt_bridge_backoff_ms(2), 400);
    assert_int_equal(lt_bridge_backoff_ms(5), 3200);
    assert_int_equal(lt_bridge_backoff_ms(6), 5000);
    assert_int_equal(lt_bridge_backoff_ms(UINT32_MAX), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subject_is_the_prefix_then_the_topic_token_for_token),
        cmocka_unit_test(subject_refuses_a_topic_nats_cannot_carry_with_the_reason),
        cmocka_unit_test(subject_refuses_what_does_not_fit_its_buffer),
        cmocka_unit_test(wildcards_are_allowed_only_where_asked_and_only_as_tokens),
        cmocka_unit_test(the_message_of_an_envelope_carries_it_unchanged_with_its_headers),
        cmocka_unit_test(
            no_message_is_built_for_bytes_that_are_no_envelope_or_a_topic_nats_refuses),
        cmocka_unit_test(headers_read_back_must_agree_with_the_signed_envelope),
        cmocka_unit_test(options_each_mode_requires_are_checked_with_the_reason),
        cmocka_unit_test(options_names_and_subjects_are_what_jetstream_accepts),
        cmocka_unit_test(transient_answers_are_retried_and_refusals_of_the_record_are_not),
        cmocka_unit_test(back_off_doubles_from_200_ms_to_5_s),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
