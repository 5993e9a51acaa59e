/*
 * cmd_bridge.c - `lienthong bridge out|in|dump`: carry signed envelopes between lienthongd
 * and a NATS JetStream cluster (the national tier, docs/national.md). Option parsing only;
 * the modes live in tool_bridge_out.c and tool_bridge_in.c.
 */
#include "cmd_decls.h"
#include "tool_bridge.h"
#include "tool_client.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

const char lt_cmd_bridge_summary[] =
    "carry envelopes between a lienthong queue and a NATS JetStream stream";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lienthong bridge out  -c AGENCY.yaml -q QUEUE --nats URLS --stream S\n"
            "                             --subject PREFIX [--create-stream [--replicas N]\n"
            "                             [--dup-window S]] [--credit N] [common options]\n"
            "       lienthong bridge in   -c AGENCY.yaml --nats URLS --stream S --subject SUBJ\n"
            "                             --durable NAME [--credit N] [common options]\n"
            "       lienthong bridge dump --nats URLS --stream S -o FILE [--subject SUBJ]\n\n"
            "%s.\n\n"
            "  out   consume QUEUE (as its owner, -c) and publish each envelope unchanged to\n"
            "        PREFIX.<topic> with Nats-Msg-Id = the hex message id and the headers\n"
            "        Lienthong-Topic, Lienthong-Source, Lienthong-Record-Type; ack to lienthong\n"
            "        only after JetStream's PubAck, else NAK with back-off (nothing dropped).\n"
            "  in    a durable pull consumer on SUBJ; each envelope is published to the broker\n"
            "        of -c, which verifies it; JetStream ack after lienthong's ACK; a refused\n"
            "        record is terminated in JetStream with the reason logged.\n"
            "  dump  write the stream's envelopes to FILE for 'lienthong verify'; one JSON line\n"
            "        per message on stdout (stream_seq, subject, msg_id, topic, source,\n"
            "        record_type).\n\n"
            "  -c, --config FILE     agency config (lienthong side)\n"
            "  -e, --endpoint EP     broker endpoint instead of the config's\n"
            "  -q, --queue QUEUE     out: lienthong queue to forward (docs/national.md)\n"
            "      --nats URLS       comma-separated NATS URLs (default nats://127.0.0.1:4222)\n"
            "      --stream S        JetStream stream\n"
            "      --subject SUBJ    out: subject prefix; in: filter subject; dump: filter\n"
            "      --durable NAME    in: durable consumer name\n"
            "      --create-stream   out: create the stream (subjects PREFIX.>) if missing\n"
            "      --replicas N      with --create-stream (default 3)\n"
            "      --dup-window S    with --create-stream: duplicate window (default 86400)\n"
            "      --credit N        records in flight at most (default 2048)\n"
            "      --timeout MS      a JetStream or lienthong answer later than this is a\n"
            "                        failure, sent again (default 5000)\n"
            "  -n, --count N         exit after N records\n"
            "      --idle S          exit after S seconds without a record\n"
            "  -o, --output FILE     dump: envelope file to write ('-': stdout)\n",
            lt_cmd_bridge_summary);
}

int lt_cmd_bridge(int argc, char **argv)
{
    enum { O_NATS = 256, O_STREAM, O_SUBJECT, O_DURABLE, O_CREATE, O_REPLICAS, O_DUPWIN,
           O_CREDIT, O_TIMEOUT, O_IDLE };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"endpoint", required_argument, NULL, 'e'},
        {"queue", required_argument, NULL, 'q'},
        {"nats", required_argument, NULL, O_NATS},
        {"stream", required_argument, NULL, O_STREAM},
        {"subject", required_argument, NULL, O_SUBJECT},
        {"durable", required_argument, NULL, O_DURABLE},
        {"create-stream", no_argument, NULL, O_CREATE},
        {"replicas", required_argument, NULL, O_REPLICAS},
        {"dup-window", required_argument, NULL, O_DUPWIN},
        {"credit", required_argument, NULL, O_CREDIT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"count", required_argument, NULL, 'n'},
        {"idle", required_argument, NULL, O_IDLE},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    lt_bridge_opts o = {.nats_urls = "nats://127.0.0.1:4222", .replicas = 3,
                        .dup_window_s = 86400, .credit = 2048, .timeout_ms = 5000};
    uint64_t v = 0;
    int opt;
    optind = 2;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:e:q:n:o:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'c': o.cfg_path = optarg; break;
        case 'e': o.endpoint = optarg; break;
        case 'q': o.queue = optarg; break;
        case 'o': o.dump_path = optarg; break;
        case O_NATS: o.nats_urls = optarg; break;
        case O_STREAM: o.stream = optarg; break;
        case O_SUBJECT: o.subject = optarg; break;
        case O_DURABLE: o.durable = optarg; break;
        case O_CREATE: o.create_stream = true; break;
        case O_REPLICAS:
            ok = lt_tool_parse_u64(optarg, 1, 5, &v);
            o.replicas = (int)v;
            break;
        case O_DUPWIN:
            ok = lt_tool_parse_u64(optarg, 1, 86400 * 30, &v);
            o.dup_window_s = (int64_t)v;
            break;
        case O_CREDIT:
            ok = lt_tool_parse_u64(optarg, 1, 65536, &v);
            o.credit = (uint32_t)v;
            break;
        case O_TIMEOUT:
            ok = lt_tool_parse_u64(optarg, 100, 600000, &v);
            o.timeout_ms = (int64_t)v;
            break;
        case O_IDLE:
            ok = lt_tool_parse_u64(optarg, 1, 86400 * 365, &v);
            o.idle_s = (int64_t)v;
            break;
        case 'n': ok = lt_tool_parse_u64(optarg, 1, UINT64_MAX, &o.count); break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "lienthong bridge: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "lienthong bridge: bad value '%s' for %s\n", optarg,
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lienthong bridge: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    lt_why why = {{0}};
    if (strcmp(mode, "sink") == 0) /* lt_bridge_opts_check's mode for `lienthong sink` */
        mode = "?";
    if (lt_bridge_opts_check(mode, &o, &why) != LT_OK) {
        fprintf(stderr, "lienthong bridge: %s\n", why.msg);
        return 2;
    }
    lt_tool_catch_stop();
    int rc = strcmp(mode, "out") == 0  ? lt_bridge_out_run(&o)
             : strcmp(mode, "in") == 0 ? lt_bridge_in_run(&o)
                                       : lt_bridge_dump_run(&o);
    nats_Close(); /* libnats' threads and globals: nothing left for the leak checker */
    return rc;
}
