#!/usr/bin/env python3
"""bench/ltconf.py - adapt a `lienthong dev-init` setup for a benchmark run.

usage: ltconf.py DEVDIR PORT ADMIN_PORT FANOUT [key=value ...]

Rewrites DEVDIR/broker.yaml in place:
  - listen on tcp://127.0.0.1:PORT, admin on 127.0.0.1:ADMIN_PORT, data in DEVDIR/data;
  - the district agencies (ACL patterns "<province>.<district>.>") may publish on "bench.>";
  - the queues are replaced by FANOUT queues bench.fan0 .. bench.fan<FANOUT-1>, each bound
    to "bench.>" and owned by the owner of dev-init's first queue (the national population
    database), with no depth or byte limit (a backlog run must not meet QUEUE_FULL);
  - extra key=value pairs set broker options (e.g. commit_max_batch=4096).
Prints the bench_lt_load arguments, one per line, and writes DEVDIR/bench.datadir.
"""
import glob
import os
import re
import sys

import yaml

TOPIC = "bench.load"


def main():
    devdir, port, aport, fanout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    path = os.path.join(devdir, "broker.yaml")
    with open(path) as f:
        cfg = yaml.safe_load(f)

    agency_files = {}
    for p in sorted(glob.glob(os.path.join(devdir, "agencies", "*.yaml"))):
        with open(p) as f:
            a = yaml.safe_load(f)
        agency_files[a["agency"]["id"]] = os.path.abspath(p)

    broker = cfg.setdefault("broker", {})
    broker["listen"] = "tcp://127.0.0.1:%s" % port
    broker.setdefault("admin", {})["listen"] = "127.0.0.1:%s" % aport
    broker["data_dir"] = "data"
    for kv in sys.argv[5:]:
        k, v = kv.split("=", 1)
        broker[k] = int(v) if re.fullmatch(r"-?\d+", v) else v

    district = re.compile(r"^\d+\.\d+\.>$")
    publishers = []
    for entry in cfg.get("acl") or []:
        pats = entry.get("publish") or []
        if pats and all(district.match(p) for p in pats) and entry["agency"] in agency_files:
            entry["publish"] = ["bench.>"]
            publishers.append(entry["agency"])
    if not publishers:
        sys.exit("ltconf: no district agency with an ACL entry in %s" % path)

    queues = cfg.get("queues") or []
    if not queues:
        sys.exit("ltconf: %s has no queue to take an owner from" % path)
    owner = queues[0]["owner"]
    if owner not in agency_files:
        sys.exit("ltconf: no agency config for the queue owner %s" % owner)
    cfg["queues"] = [{"name": "bench.fan%d" % i, "owner": owner, "bind": ["bench.>"],
                      "max_depth": 0, "max_bytes": 0} for i in range(fanout)]

    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    with open(os.path.join(devdir, "bench.datadir"), "w") as f:
        f.write(os.path.abspath(os.path.join(devdir, "data")) + "\n")

    args = ["--endpoint", broker["listen"], "--topic", TOPIC,
            "--sub-config", agency_files[owner]]
    for a in publishers:
        args += ["--pub-config", agency_files[a]]
    for i in range(fanout):
        args += ["--queue", "bench.fan%d" % i]
    print("\n".join(args))


if __name__ == "__main__":
    main()
