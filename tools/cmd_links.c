/*
 * cmd_links.c - `lienthong links`: the links of a broker to its peers (docs/network.md), read
 * from the admin API (/api/v1/links): state, peer, direction, queue, lag in records and
 * seconds, counts, last error. A table, or the JSON with --json.
 */
#include "cmd_decls.h"
#include "tool_admin.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char lt_cmd_links_summary[] =
    "links of a broker to its peers: state, lag, counts, last error (admin API)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong links [--admin http://127.0.0.1:7401] [--token-file F | -c "
            "broker.yaml] [--json]\n\n"
            "%s.\nThe token: --token-file, else $LIENTHONG_ADMIN_TOKEN, else the broker config's\n"
            "broker.admin.token_file. Exit status 0 when every link is up, 3 when one is not.\n",
            lt_cmd_links_summary);
}

static const char *js(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static double jd(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

int lt_cmd_links(int argc, char **argv)
{
    const char *admin = NULL, *token_file = NULL, *config = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            as_json = true;
        } else if (strcmp(a, "--admin") == 0 && i + 1 < argc) {
            admin = argv[++i];
        } else if (strcmp(a, "--token-file") == 0 && i + 1 < argc) {
            token_file = argv[++i];
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else {
            fprintf(stderr, "lienthong links: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    lt_tool_admin t;
    lt_why why = {{0}};
    lt_err e = lt_tool_admin_open(admin, token_file, config, &t, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong links: %s\n", why.msg);
        return e == LT_EINVAL ? 2 : 1;
    }
    int status = 0;
    json_object *arr = NULL;
    e = lt_tool_admin_get(&t, "/api/v1/links", &status, &arr, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong links: %s\n", why.msg);
        return 1;
    }
    if (status != 200 || !json_object_is_type(arr, json_type_array)) {
        fprintf(stderr, "lienthong links: /api/v1/links answered HTTP %d%s\n", status,
                status == 401 ? " (the admin token was refused)" : "");
        json_object_put(arr);
        return 1;
    }
    size_t n = json_object_array_length(arr);
    bool all_up = true;
    for (size_t i = 0; i < n; i++)
        all_up = all_up && strcmp(js(json_object_array_get_idx(arr, i), "state"), "up") == 0;
    if (as_json) {
        printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
    } else if (n == 0) {
        printf("no links configured\n");
    } else {
        printf("%-24s %-12s %-8s %-10s %9s %9s %8s %10s %8s %8s  %s\n", "LINK", "PEER", "DIR",
               "STATE", "BACKLOG", "PENDING", "LAG_S", "FORWARDED", "REFUSED", "RETRIES",
               "LAST ERROR");
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_array_get_idx(arr, i);
            double backlog = jd(o, "backlog");
            char bl[32];
            if (backlog < 0)
                snprintf(bl, sizeof bl, "-");
            else
                snprintf(bl, sizeof bl, "%.0f", backlog);
            printf("%-24s %-12s %-8s %-10s %9s %9.0f %8.1f %10.0f %8.0f %8.0f  %s\n",
                   js(o, "name"), js(o, "peer"), js(o, "direction"), js(o, "state"), bl,
                   jd(o, "pending"), jd(o, "lag_s"), jd(o, "forwarded"), jd(o, "refused"),
                   jd(o, "retries"), js(o, "last_error"));
        }
    }
    json_object_put(arr);
    return all_up ? 0 : 3;
}
