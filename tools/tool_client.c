/*
 * tool_client.c - shared connection setup and helpers for the broker commands.
 */
#include "tool_client.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lt_err lt_tool_connect(const char *cfg_path, const char *endpoint, const lt_client_opts *opts,
                       bool auth, lt_tool_conn *out, lt_why *why)
{
    lt_tool_conn tc = {0};
    lt_err e = lt_agency_config_load(cfg_path, &tc.cfg, why);
    if (e != LT_OK)
        return e;
    e = lt_agency_config_open_signer(tc.cfg, &tc.signer, why);
    if (e != LT_OK)
        goto out_fail;
    lt_client_opts o = opts ? *opts : (lt_client_opts){0};
    lt_curve_pair keys;
    e = lt_agency_config_curve(tc.cfg, &keys, &o, why); /* CURVE when the config asks */
    if (e == LT_OK)
        e = lt_client_open(endpoint != NULL ? endpoint : tc.cfg->broker_endpoint, &o,
                           &tc.client, why);
    memset(&keys, 0, sizeof keys);
    if (e != LT_OK)
        goto out_fail;
    if (auth) {
        e = lt_client_auth(tc.client, tc.cfg->id, tc.signer, why);
        if (e != LT_OK)
            goto out_fail;
    }
    *out = tc;
    return LT_OK;
out_fail:
    lt_tool_disconnect(&tc);
    return e;
}

void lt_tool_disconnect(lt_tool_conn *tc)
{
    lt_client_close(&tc->client);
    lt_signer_destroy(&tc->signer);
    lt_agency_config_destroy(&tc->cfg);
}

lt_err lt_tool_admin(const char *cfg_path, const char *endpoint, const char *client_name,
                     const char *op, const char *queue, const uint64_t *seqs, size_t n,
                     uint32_t limit, char **json_out, lt_why *why)
{
    lt_tool_conn tc = {0};
    lt_client_opts o = {.client_name = client_name};
    lt_err e = lt_tool_connect(cfg_path, endpoint, &o, true, &tc, why);
    if (e == LT_OK)
        e = lt_client_admin(tc.client, op, queue, seqs, n, limit, json_out, why);
    lt_tool_disconnect(&tc);
    return e;
}

json_object *lt_tool_answer_array(const char *text, const char *key, const char *cmd,
                                  json_object **root)
{
    json_object *r = json_tokener_parse(text), *arr = NULL;
    if (r != NULL && json_object_is_type(r, json_type_array))
        arr = r;
    else if (r != NULL)
        json_object_object_get_ex(r, key, &arr);
    if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
        fprintf(stderr, "lienthong %s: unexpected answer from the broker: %.200s\n", cmd, text);
        json_object_put(r);
        *root = NULL;
        return NULL;
    }
    *root = r;
    return arr;
}

void lt_tool_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

bool lt_tool_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool lt_tool_parse_iso8601(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return false;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return false;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5)
            return false;
        off_s = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out_ms = ((int64_t)t - off_s) * 1000 + ms;
    return true;
}

static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void lt_tool_catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool lt_tool_stopping(void)
{
    return stop_flag != 0;
}

int64_t lt_tool_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
