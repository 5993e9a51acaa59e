/*
 * main.c - lienthongd: options and wiring. Everything else lives in broker.c.
 *
 *   lienthongd -c broker.yaml [--check] [--debug]
 *
 * Exit status: 0 after a clean shutdown (or a good --check), 2 for a bad config or a file
 * it names, 1 for anything else (store, socket, a drain that timed out).
 */
#include "admin.h"
#include "broker.h"
#include "broker_config.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: lienthongd -c broker.yaml [--check] [--debug]\n"
               "  -c, --config FILE   broker config (YAML)\n"
               "      --check         validate the config and the files it names, then exit\n"
               "  -d, --debug         log debug lines too\n"
               "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
        {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false, debug = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:dhV", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'd':
            debug = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("lienthongd %s\n", LT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lt_log_debug(debug);

    lt_why why = {{0}};
    lt_broker_cfg *cfg = NULL;
    lt_err e = lt_broker_config_load(path, &cfg, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthongd: %s\n", why.msg);
        return 2;
    }
    if (check) {
        e = lt_broker_check(cfg, &why);
        if (e == LT_OK)
            e = lt_broker_config_check_paths(cfg, LT_ADMIN_TOKEN_MIN, &why);
        if (e != LT_OK)
            fprintf(stderr, "lienthongd: %s\n", why.msg);
        else
            printf("lienthongd: %s: OK (%zu queues, %zu ACL entries, %zu admins)\n", path,
                   cfg->nqueues, cfg->nacl, cfg->nadmins);
        lt_broker_config_destroy(&cfg);
        return e == LT_OK ? 0 : 2;
    }

    lt_broker_opts opts = {.config_path = path, .debug = debug};
    lt_broker *b = NULL;
    e = lt_broker_new(cfg, &opts, &b, &why);
    if (e != LT_OK) {
        fprintf(stderr, "lienthongd: %s\n", why.msg);
        lt_broker_config_destroy(&cfg);
        return e == LT_ECONFIG ? 2 : 1;
    }
    e = lt_broker_run(b);
    lt_broker_destroy(&b);
    lt_broker_config_destroy(&cfg);
    lt_log(LT_LOG_INFO, "stopped%s", e == LT_OK ? "" : " (drain timed out)");
    return e == LT_OK ? 0 : 1;
}
