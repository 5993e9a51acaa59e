/*
 * cmd_queues.c - `lienthong queues`: the broker's queues with depth, unacked deliveries, the
 * age of the oldest pending message and the dead-letter depth (admin request "queues": the
 * caller sees the queues it owns, or all of them if it is a broker admin).
 */
#include "cmd_decls.h"
#include "tool_client.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char lt_cmd_queues_summary[] = "list the broker's queues: depth, unacked, oldest, DLQ";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong queues -c AGENCY.yaml [--json] [-e ENDPOINT]\n\n%s.\n\n"
            "  -c, --config FILE   agency config (an admin agency sees every queue)\n"
            "      --json          print the broker's answer as JSON\n"
            "  -e, --endpoint EP   broker endpoint instead of the config's\n",
            lt_cmd_queues_summary);
}

/* The first of keys present in o as an integer, or -1. */
static int64_t get_int(json_object *o, const char *const *keys)
{
    for (; *keys != NULL; keys++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(o, *keys, &v) && v != NULL)
            return json_object_get_int64(v);
    }
    return -1;
}

static void fmt_age(int64_t ms, char *out, size_t cap)
{
    if (ms < 0)
        snprintf(out, cap, "-");
    else if (ms < 60000)
        snprintf(out, cap, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(out, cap, "%lldm", (long long)(ms / 60000));
    else if (ms < 86400000)
        snprintf(out, cap, "%.1fh", (double)ms / 3600000.0);
    else
        snprintf(out, cap, "%.1fd", (double)ms / 86400000.0);
}

static int print_table(const char *text)
{
    json_object *root = NULL;
    json_object *arr = lt_tool_answer_array(text, "queues", "queues", &root);
    if (arr == NULL)
        return 1;
    static const char *const k_depth[] = {"depth", "pending", NULL};
    static const char *const k_unacked[] = {"unacked", "ack_pending", "inflight", NULL};
    static const char *const k_age[] = {"oldest_age_ms", NULL};
    static const char *const k_oldest[] = {"oldest_ms", NULL};
    static const char *const k_dlq[] = {"dlq_depth", "dlq", NULL};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    printf("%-32s %10s %8s %8s %8s\n", "QUEUE", "DEPTH", "UNACKED", "OLDEST", "DLQ");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *q = json_object_array_get_idx(arr, i);
        json_object *name = NULL;
        json_object_object_get_ex(q, "name", &name);
        int64_t age = get_int(q, k_age);
        json_object *age_s = NULL;
        if (age < 0 && json_object_object_get_ex(q, "oldest_age_s", &age_s))
            age = (int64_t)(json_object_get_double(age_s) * 1000.0);
        if (age < 0) {
            int64_t oldest = get_int(q, k_oldest);
            age = oldest > 0 ? now_ms - oldest : -1;
        }
        char agebuf[32];
        fmt_age(age, agebuf, sizeof agebuf);
        int64_t depth = get_int(q, k_depth), unacked = get_int(q, k_unacked),
                dlq = get_int(q, k_dlq);
        if (depth <= 0)
            snprintf(agebuf, sizeof agebuf, "-"); /* nothing pending: no oldest */
        printf("%-32s %10lld %8lld %8s %8lld\n", name ? json_object_get_string(name) : "?",
               (long long)(depth < 0 ? 0 : depth), (long long)(unacked < 0 ? 0 : unacked),
               agebuf, (long long)(dlq < 0 ? 0 : dlq));
    }
    json_object_put(root);
    return 0;
}

int lt_cmd_queues(int argc, char **argv)
{
    enum { O_JSON = 256 };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, O_JSON},
        {"endpoint", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *endpoint = NULL;
    bool as_json = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:e:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'e': endpoint = optarg; break;
        case O_JSON: as_json = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong queues: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong queues: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (cfg_path == NULL) {
        fprintf(stderr, "lienthong queues: -c AGENCY.yaml is required\n");
        return 2;
    }
    lt_why why = {{0}};
    char *json = NULL;
    lt_err e = lt_tool_admin(cfg_path, endpoint, "lienthong-queues/" LT_VERSION, "queues", NULL,
                             NULL, 0, 0, &json, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong queues: %s\n", why.msg);
        return 1;
    }
    int rc = 0;
    if (as_json)
        puts(json);
    else
        rc = print_table(json);
    free(json);
    return rc;
}
