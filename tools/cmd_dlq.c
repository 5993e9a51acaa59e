/*
 * cmd_dlq.c - `lienthong dlq`: a queue's dead letters (messages that reached max_deliver or
 * were refused for good): list them with their reason and delivery count, show them with the
 * record, requeue them (delivered again from a fresh delivery count) or drop them.
 */
#include "cmd_decls.h"
#include "envelope.h"
#include "json.h"
#include "tool_client.h"

#include <getopt.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char lt_cmd_dlq_summary[] = "dead-letter queues: ls, show, requeue, drop";

#define DLQ_SEQS_MAX 10000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong dlq -c AGENCY.yaml ls QUEUE [--limit N] [--json]\n"
            "       lienthong dlq -c AGENCY.yaml show QUEUE SEQ...\n"
            "       lienthong dlq -c AGENCY.yaml requeue QUEUE [SEQ... | --all]\n"
            "       lienthong dlq -c AGENCY.yaml drop QUEUE (SEQ... | --all)\n\n%s.\n\n"
            "  -c, --config FILE   agency config (the queue's owner or a broker admin)\n"
            "      --limit N       list at most N dead letters (broker default otherwise)\n"
            "      --all           requeue / drop every dead letter of the queue\n"
            "      --json          ls: print the broker's answer as JSON\n"
            "  -e, --endpoint EP   broker endpoint instead of the config's\n",
            lt_cmd_dlq_summary);
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && v != NULL ? json_object_get_string(v) : "";
}

static int print_ls(const char *text)
{
    json_object *root = NULL;
    json_object *arr = lt_tool_answer_array(text, "dead", "dlq", &root);
    if (arr == NULL)
        return 1;
    printf("%-10s %5s %-32s %-28s %s\n", "SEQ", "DELIV", "MESSAGE_ID", "TOPIC", "REASON");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *d = json_object_array_get_idx(arr, i);
        json_object *v = NULL;
        long long seq = json_object_object_get_ex(d, "seq", &v) ? json_object_get_int64(v) : 0;
        long long n = json_object_object_get_ex(d, "deliveries", &v) ||
                              json_object_object_get_ex(d, "delivery_count", &v)
                          ? json_object_get_int64(v)
                          : 0;
        const char *id = get_str(d, "msg_id");
        printf("%-10lld %5lld %-32s %-28s %s\n", seq, n, id[0] ? id : get_str(d, "message_id"),
               get_str(d, "topic"), get_str(d, "reason"));
    }
    json_object_put(root);
    return 0;
}

/* Add "record" (decoded from the entry's base64 "envelope") to d when possible. */
static void add_record(json_object *d)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(d, "envelope", &v) || !json_object_is_type(v, json_type_string))
        return;
    const char *b64 = json_object_get_string(v);
    size_t n = strlen(b64);
    if (n == 0 || n > (64u << 20))
        return;
    unsigned char *raw = malloc(n / 4 * 3 + 3);
    if (raw == NULL)
        return;
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (len > 0) {
        for (size_t k = n; k > 0 && b64[k - 1] == '='; k--)
            len--; /* EVP_DecodeBlock counts padding as zero bytes */
        lt_env *env = NULL;
        char *json = NULL;
        if (lt_env_decode(raw, (size_t)len, NULL, &env, NULL) == LT_OK) {
            size_t plen = 0;
            const uint8_t *payload = lt_env_payload(env, &plen);
            if (lt_json_payload_to_string(lt_env_record_type(env), payload, plen, &json, NULL) ==
                LT_OK) {
                json_object_object_add(d, "record", json_tokener_parse(json));
                free(json);
            }
            lt_env_destroy(&env);
        }
    }
    free(raw);
}

static int print_show(const char *text)
{
    json_object *root = NULL;
    json_object *arr = lt_tool_answer_array(text, "dead", "dlq", &root);
    if (arr == NULL)
        return 1;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *d = json_object_array_get_idx(arr, i);
        add_record(d);
        puts(json_object_to_json_string_ext(d, JSON_C_TO_STRING_PRETTY));
    }
    json_object_put(root);
    return 0;
}

int lt_cmd_dlq(int argc, char **argv)
{
    enum { O_LIMIT = 256, O_ALL, O_JSON };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"limit", required_argument, NULL, O_LIMIT},
        {"all", no_argument, NULL, O_ALL},
        {"json", no_argument, NULL, O_JSON},
        {"endpoint", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL, *endpoint = NULL;
    uint64_t limit = 0;
    bool all = false, as_json = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:e:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'e': endpoint = optarg; break;
        case O_ALL: all = true; break;
        case O_JSON: as_json = true; break;
        case O_LIMIT:
            if (!lt_tool_parse_u64(optarg, 1, UINT32_MAX, &limit)) {
                fprintf(stderr, "lienthong dlq: bad value '%s' for --limit\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong dlq: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (cfg_path == NULL || argc - optind < 2) {
        fprintf(stderr, "lienthong dlq: usage: lienthong dlq -c AGENCY.yaml "
                        "ls|show|requeue|drop QUEUE [SEQ...] (see --help)\n");
        return 2;
    }
    const char *action = argv[optind], *queue = argv[optind + 1];
    const char *op = NULL;
    if (strcmp(action, "ls") == 0)
        op = "dlq.ls";
    else if (strcmp(action, "show") == 0)
        op = "dlq.show";
    else if (strcmp(action, "requeue") == 0)
        op = "dlq.requeue";
    else if (strcmp(action, "drop") == 0)
        op = "dlq.drop";
    if (op == NULL) {
        fprintf(stderr, "lienthong dlq: unknown action '%s' (ls, show, requeue, drop)\n", action);
        return 2;
    }
    size_t n = (size_t)(argc - optind - 2);
    if (n > DLQ_SEQS_MAX) {
        fprintf(stderr, "lienthong dlq: more than %d sequence numbers\n", DLQ_SEQS_MAX);
        return 2;
    }
    if (strcmp(action, "ls") == 0 && n > 0) {
        fprintf(stderr, "lienthong dlq: ls takes no sequence numbers\n");
        return 2;
    }
    if ((strcmp(action, "show") == 0 || strcmp(action, "drop") == 0) && n == 0 && !all) {
        fprintf(stderr, "lienthong dlq: %s needs sequence numbers%s\n", action,
                strcmp(action, "drop") == 0 ? " or --all" : "");
        return 2;
    }
    if (all && n > 0) {
        fprintf(stderr, "lienthong dlq: --all excludes sequence numbers\n");
        return 2;
    }
    uint64_t *seqs = calloc(n + 1, sizeof *seqs);
    if (seqs == NULL) {
        fprintf(stderr, "lienthong dlq: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!lt_tool_parse_u64(argv[optind + 2 + (int)i], 1, UINT64_MAX, &seqs[i])) {
            fprintf(stderr, "lienthong dlq: bad sequence number '%s'\n",
                    argv[optind + 2 + (int)i]);
            free(seqs);
            return 2;
        }
    }
    lt_why why = {{0}};
    char *json = NULL;
    lt_err e = lt_tool_admin(cfg_path, endpoint, "lienthong-dlq/" LT_VERSION, op, queue, seqs, n,
                             (uint32_t)limit, &json, &why);
    free(seqs);
    if (e != LT_OK) {
        fprintf(stderr, "lienthong dlq: %s\n", why.msg);
        return 1;
    }
    int rc = 0;
    if (strcmp(action, "ls") == 0 && !as_json)
        rc = print_ls(json);
    else if (strcmp(action, "show") == 0)
        rc = print_show(json);
    else
        puts(json);
    free(json);
    return rc;
}
