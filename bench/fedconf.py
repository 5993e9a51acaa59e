#!/usr/bin/env python3
"""bench/fedconf.py - configs for the federation curve: a chain of brokers linked in a row.

usage: fedconf.py DEVDIR HOPS CURVE PORT...

From a `lienthong dev-init` setup in DEVDIR (after bench/ltconf.py adapted its broker.yaml:
the district agencies may publish on "bench.>"), writes DEVDIR/fed/b0.yaml .. b<HOPS>.yaml:
  b0 -> b1 -> ... -> b<HOPS>, each broker forwarding queue "uplink" (bound to "bench.>") to
  the next with a link; the last one holds bench.fan0 (owned by the population database, no
  limits) where the consumer reads. HOPS 0 is the single broker, configured the same way.
CURVE 1: every link goes to its peer's CURVE endpoint (broker.curve.listen); 0: plaintext.
PORT...: 3 free ports per broker (listen, admin, CURVE).
The three development broker identities (ward, city, national) take turns, so a chain of any
length needs no other certificate: each broker lists only the one before it as a peer.
Prints the bench_lt_load arguments, one per line, and writes DEVDIR/fed/datadirs (one per
line, b0 first).
"""
import os
import sys

import yaml

IDS = [("broker-ward", "VN:GOV:000.00.00.H29.26734:lienthong"),
       ("broker-city", "VN:GOV:000.00.00.H29:lienthong"),
       ("broker-national", "VN:GOV:000.00.00.G01:lienthong")]


def main():
    devdir, hops, curve = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    ports = [int(p) for p in sys.argv[4:]]
    if len(ports) < 3 * (hops + 1):
        sys.exit("fedconf: need 3 ports per broker")
    with open(os.path.join(devdir, "broker.yaml")) as f:
        base = yaml.safe_load(f)
    fed = os.path.join(devdir, "fed")
    os.makedirs(fed, exist_ok=True)
    owner = base["queues"][0]["owner"]
    pub = lambda k: open(os.path.join(devdir, "certs", IDS[k % 3][0] + ".curve.pub")).read().strip()
    datadirs = []
    for i in range(hops + 1):
        me = IDS[i % 3]
        listen, admin, cport = ports[3 * i:3 * i + 3]
        cfg = {
            "broker": {
                "name": "b%d" % i,
                "listen": "tcp://127.0.0.1:%d" % listen,
                "data_dir": "data-b%d" % i,
                "admin": {"listen": "127.0.0.1:%d" % admin, "token_file": "../admin.token"},
                "identity": {"key": "../keys/%s.key.pem" % me[0],
                             "cert": "../certs/%s.cert.pem" % me[0]},
                "curve": {"listen": "tcp://127.0.0.1:%d" % cport,
                          "secret_key_file": "../keys/%s.curve" % me[0]},
            },
            "trust": {"ca": "../ca/ca.cert.pem", "crl": "../ca/crl.pem"},
            "acl": base["acl"],
        }
        if i < hops:
            cfg["queues"] = [{"name": "uplink", "owner": me[1], "bind": ["bench.>"],
                              "max_depth": 0, "max_bytes": 0, "max_deliver": 1000,
                              "max_ack_pending": 100000, "ack_wait_s": 60}]
            nxt = IDS[(i + 1) % 3]
            peer = {"name": "b%d" % (i + 1), "agency": nxt[1]}
            if curve:
                peer["curve_key"] = pub(i + 1)
            cfg["peers"] = [peer]
            nport = ports[3 * (i + 1) + (2 if curve else 0)]
            cfg["links"] = [{"peer": "b%d" % (i + 1), "endpoint": "tcp://127.0.0.1:%d" % nport,
                             "forward": "uplink", "credit": 1024, "retry_max_ms": 1000}]
        else:
            cfg["queues"] = [{"name": "bench.fan0", "owner": owner, "bind": ["bench.>"],
                              "max_depth": 0, "max_bytes": 0}]
        if i > 0:
            prev = IDS[(i - 1) % 3]
            p = {"name": "b%d" % (i - 1), "agency": prev[1], "relay": ["bench.>"]}
            if curve:
                p["curve_key"] = pub(i - 1)
            cfg.setdefault("peers", []).append(p)
        with open(os.path.join(fed, "b%d.yaml" % i), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
        datadirs.append(os.path.abspath(os.path.join(fed, "data-b%d" % i)))
    with open(os.path.join(fed, "datadirs"), "w") as f:
        f.write("\n".join(datadirs) + "\n")

    agencies = {}
    for name in os.listdir(os.path.join(devdir, "agencies")):
        with open(os.path.join(devdir, "agencies", name)) as f:
            a = yaml.safe_load(f)
        agencies[a["agency"]["id"]] = os.path.abspath(os.path.join(devdir, "agencies", name))
    pubs = [e["agency"] for e in base["acl"] if e.get("publish") == ["bench.>"]]
    args = ["--endpoint", "tcp://127.0.0.1:%d" % ports[0],
            "--sub-endpoint", "tcp://127.0.0.1:%d" % ports[3 * hops],
            "--topic", "bench.load", "--sub-config", agencies[owner], "--queue", "bench.fan0"]
    for a in pubs:
        args += ["--pub-config", agencies[a]]
    print("\n".join(args))


if __name__ == "__main__":
    main()
