#!/usr/bin/env python3
"""bench/report.py - turn bench/run's raw runs into results JSON and a table for people.

usage: report.py RUNS.jsonl META.json OUT.json

RUNS.jsonl has one line per run: {"case", "group", "x", "label", "result": <the load
program's JSON>, "server": {"peak_rss_kib", "cpu_s", "disk_bytes", ...}}.
Every metric is the median over the runs of a case, taken metric by metric.
"""
import json
import statistics
import sys

METRICS = [
    # key, path into a run, table heading, scale, format
    ("publish_msgs_per_s", ("result", "publish", "msgs_per_s"), "pub msg/s", 1, "{:.0f}"),
    ("publish_mb_per_s", ("result", "publish", "mb_per_s"), "pub MB/s", 1, "{:.1f}"),
    ("e2e_msgs_per_s", ("result", "end_to_end", "msgs_per_s"), "e2e msg/s", 1, "{:.0f}"),
    ("e2e_mb_per_s", ("result", "end_to_end", "mb_per_s"), "e2e MB/s", 1, "{:.1f}"),
    ("pub_ack_p50_ms", ("result", "pub_ack_latency_us", "p50"), "ack p50 ms", 1e-3, "{:.2f}"),
    ("pub_ack_p99_ms", ("result", "pub_ack_latency_us", "p99"), "ack p99 ms", 1e-3, "{:.2f}"),
    ("pub_ack_p999_ms", ("result", "pub_ack_latency_us", "p999"), "ack p99.9", 1e-3, "{:.2f}"),
    ("e2e_p50_ms", ("result", "e2e_latency_us", "p50"), "e2e p50 ms", 1e-3, "{:.1f}"),
    ("e2e_p99_ms", ("result", "e2e_latency_us", "p99"), "e2e p99 ms", 1e-3, "{:.1f}"),
    ("server_peak_rss_mib", ("server", "peak_rss_kib"), "RSS MiB", 1 / 1024, "{:.0f}"),
    ("server_anon_rss_mib", ("server", "rss_anon_kib"), "anon MiB", 1 / 1024, "{:.0f}"),
    ("server_cpu_s", ("server", "cpu_s"), "CPU s", 1, "{:.1f}"),
    ("client_cpu_s", ("result", "client_cpu_s"), "client CPU", 1, "{:.1f}"),
    ("disk_mib", ("server", "disk_bytes"), "disk MiB", 1 / 1048576, "{:.0f}"),
]
SIGN_METRICS = [
    ("sign_per_s", ("result", "sign", "envelopes_per_s")),
    ("sign_seconds", ("result", "sign", "seconds")),
]


def dig(obj, path):
    for k in path:
        if not isinstance(obj, dict) or obj.get(k) is None:
            return None
        obj = obj[k]
    return obj


def federation(scaling):
    """The cost of a hop and of CURVE, from the federation curve of this run (bench/run
    --full): each h-link rate against the (h-1)-link one, each CURVE rate against the same
    chain in plaintext."""
    rate = {}
    for c in scaling:
        if c["group"] == "federation" and c["median"].get("e2e_msgs_per_s"):
            rate[c["case"]] = c["median"]["e2e_msgs_per_s"]
    out = []
    for h in (1, 2, 3):
        a, b = rate.get("lt-fed-%d" % h), rate.get("lt-fed-%d" % (h - 1))
        if a and b:
            out.append({"what": "link %d (through %d links vs %d)" % (h, h, h - 1), "rate": a,
                        "base": b, "cost": 1 - a / b, "goal": 0.20})
    for h in (1, 2):
        a, b = rate.get("lt-fed-curve-%d" % h), rate.get("lt-fed-%d" % h)
        if a and b:
            out.append({"what": "CURVE on %d links" % h, "rate": a, "base": b,
                        "cost": 1 - a / b, "goal": 0.15})
    return out


def median_of(runs, path, scale=1):
    vals = [dig(r, path) for r in runs]
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None
    return statistics.median(vals) * scale


def summarize(case, runs):
    med = {}
    for key, path, _h, scale, _f in METRICS:
        med[key] = median_of(runs, path, scale)
    for key, path in SIGN_METRICS:
        v = median_of(runs, path)
        if v is not None:
            med[key] = v
    first = runs[0]
    out = {
        "case": case,
        "label": first.get("label", case),
        "group": first.get("group"),
        "x": first.get("x"),
        "system": dig(first, ("result", "system")),
        "mode": dig(first, ("result", "mode")),
        "durability": dig(first, ("result", "durability")),
        "params": dig(first, ("result", "params")),
        "complete_runs": sum(1 for r in runs if dig(r, ("result", "complete"))),
        "runs": len(runs),
        "median": med,
        "raw": runs,
    }
    progress = [dig(r, ("result", "progress")) for r in runs]
    progress = [p for p in progress if p]
    if progress:
        out["progress"] = progress[0]
    return out


def fmt(v, f):
    return "-" if v is None else f.format(v)


def table(cases, out):
    width = max([len(c["label"]) for c in cases] + [10])
    head = "{:<{w}}".format("", w=width) + "".join(
        "{:>11}".format(h) for _k, _p, h, _s, _f in METRICS)
    print(head, file=out)
    for c in cases:
        row = "{:<{w}}".format(c["label"], w=width)
        for key, _p, _h, _s, f in METRICS:
            row += "{:>11}".format(fmt(c["median"].get(key), f))
        if c["complete_runs"] != c["runs"]:
            row += "   ({}/{} runs complete)".format(c["complete_runs"], c["runs"])
        print(row, file=out)


def ratios(cases, base_case):
    """Each lienthong case against its NATS peer: a "-half" case against nats-half."""
    out = {}
    for c in cases:
        if c["system"] != "lienthong":
            continue
        want = base_case + "-half" if c["case"].endswith("-half") else base_case
        base = next((b for b in cases if b["case"] == want), None)
        if not base:
            continue
        r = {}
        for key, _p, _h, _s, _f in METRICS:
            a, b = c["median"].get(key), base["median"].get(key)
            r[key] = (a / b) if (a is not None and b) else None
        out["{}/{}".format(c["case"], want)] = r
    return out


def targets(result, cases, meta):
    """The issue's targets, each with the measured value and whether it is met."""
    by = {c["case"]: c for c in cases}
    out = []

    def med(case, key):
        c = by.get(case)
        return c["median"].get(key) if c else None

    a, b = med("lt-batch64", "e2e_msgs_per_s"), med("nats", "e2e_msgs_per_s")
    if a and b:
        out.append({"target": "batch-signed end-to-end >= 1.0x NATS JetStream (default)",
                    "value": round(a / b, 3), "met": a / b >= 1.0})
    v = meta.get("openssl_verify_per_s")
    a = med("lt-single", "e2e_msgs_per_s")
    if a and v:
        out.append({"target": "per-message-signed >= 85% of openssl speed -multi ecdsap256 "
                              "verify/s", "value": round(a / v, 3), "met": a / v >= 0.85})
    a = med("lt-batch64-half", "pub_ack_p99_ms")
    if a is not None:
        out.append({"target": "publish->ack p99 < 2 ms at half of lienthong's max rate "
                              "(batch-64)", "value": round(a, 3), "met": a < 2.0})
    for c in result.get("scaling", []):
        if c["group"] == "backlog" and c["system"] == "lienthong" and c.get("progress"):
            for key, what in (("server_rss_kib", "RSS"),
                              ("server_rss_anon_kib", "anonymous RSS (without LMDB's map)")):
                rss = [s[key] for s in c["progress"] if (s.get(key) or -1) > 0]
                if len(rss) < 2:
                    continue
                lo, hi = min(rss), max(rss)
                spread = (hi - lo) / lo
                out.append({"target": "server {} flat (+-10%) as the backlog grows to {}"
                                      .format(what, c["x"]), "value": round(spread, 3),
                            "met": spread <= 0.10,
                            "note": "{}..{} MiB over the samples (first sample at {})".format(
                                lo // 1024, hi // 1024, c["progress"][0]["acked"])})
    return out


def main():
    runs_path, meta_path, out_path = sys.argv[1:4]
    with open(meta_path) as f:
        meta = json.load(f)
    by_case = {}
    order = []
    with open(runs_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r["case"] not in by_case:
                by_case[r["case"]] = []
                order.append(r["case"])
            by_case[r["case"]].append(r)
    cases = [summarize(c, by_case[c]) for c in order]
    headline = [c for c in cases if c["group"] == "headline"]
    result = dict(meta)
    result["headline"] = headline
    result["ratios_vs_nats"] = ratios(headline, "nats")
    result["scaling"] = [c for c in cases if c["group"] != "headline"]
    result["targets"] = targets(result, cases, meta)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    out = sys.stdout
    print("", file=out)
    print("{} cpus ({}), load average {} at start, {} at the end; {} s in all".format(
        meta.get("cpus"), meta.get("cpu_model"), meta.get("loadavg_start"),
        meta.get("loadavg_end"), meta.get("seconds")), file=out)
    print("durability: NATS: {}; lienthong: {}".format(
        meta.get("nats_durability"), meta.get("lienthong_durability")), file=out)
    if meta.get("lienthong_skipped"):
        print("lienthong side skipped: {}".format(meta["lienthong_skipped"]), file=out)
    print("Headline: P={} publishers, N={} msgs, {} B payload, window {}; median of {} runs"
          .format(meta.get("publishers"), meta.get("messages"), meta.get("size"),
                  meta.get("window"), meta.get("runs")), file=out)
    table(headline, out)
    rs = result["ratios_vs_nats"]
    if rs:
        print("", file=out)
        print("Ratios lienthong / NATS (throughput: higher is better; latency, RSS, CPU, disk:"
              " lower is better)", file=out)
        fake = []
        for name, r in rs.items():
            fake.append({"label": name, "median": {k: v for k, v in r.items()},
                         "complete_runs": 1, "runs": 1})
        width = max(len(c["label"]) for c in fake)
        head = "{:<{w}}".format("", w=width) + "".join(
            "{:>11}".format(h) for _k, _p, h, _s, _f in METRICS)
        print(head, file=out)
        for c in fake:
            row = "{:<{w}}".format(c["label"], w=width)
            for key, _p, _h, _s, _f in METRICS:
                row += "{:>11}".format(fmt(c["median"].get(key), "{:.2f}x"))
            print(row, file=out)
    for c in headline:
        s = c["median"].get("sign_per_s")
        if s:
            raw = c["raw"][0]["result"]["sign"]
            print("{}: signing {:.0f} envelopes/s ({})".format(
                c["label"], s, "all publishers in parallel, before the timed part"
                if raw.get("presigned") else "inside the timed loop, per publisher-second"),
                file=out)
    if meta.get("openssl_verify_per_s"):
        print("openssl speed -multi {} ecdsap256: {:.0f} verify/s, {:.0f} sign/s".format(
            meta.get("cpus"), meta["openssl_verify_per_s"],
            meta.get("openssl_sign_per_s") or 0), file=out)
    if result["targets"]:
        print("", file=out)
        print("Targets (issue 4):", file=out)
        for t in result["targets"]:
            print("  [{}] {}: {}{}".format("met" if t["met"] else "MISSED", t["target"],
                                          t["value"], "  ({})".format(t["note"])
                                          if t.get("note") else ""), file=out)
    scaling = result["scaling"]
    if scaling:
        groups = []
        for c in scaling:
            if c["group"] not in groups:
                groups.append(c["group"])
        for g in groups:
            print("", file=out)
            print("Scaling: {}".format(g), file=out)
            table([c for c in scaling if c["group"] == g], out)
            for c in scaling:
                if c["group"] == g and c.get("progress"):
                    print("  {} backlog curve (acked, interval msg/s, server RSS MiB, its "
                          "anonymous part MiB):".format(c["label"]), file=out)
                    for s in c["progress"]:
                        rss = s.get("server_rss_kib")
                        anon = s.get("server_rss_anon_kib")
                        print("    {:>10} {:>10.0f} {:>8} {:>8}".format(
                            s["acked"], s["interval_msgs_per_s"],
                            "-" if rss is None or rss < 0 else "{:.0f}".format(rss / 1024),
                            "-" if anon is None or anon < 0 else "{:.0f}".format(anon / 1024)),
                            file=out)
    fed = federation(scaling)
    if fed:
        result["federation"] = fed
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print("", file=out)
        print("Federation (end-to-end msg/s; goals: a hop < 20% of one broker, CURVE < 15%):",
              file=out)
        for r in fed:
            print("  {}: {:.0f} vs {:.0f} msg/s = {:.1%} lower ({})".format(
                r["what"], r["rate"], r["base"], r["cost"],
                "met" if r["cost"] < r["goal"] else "MISSED"), file=out)
    print("", file=out)
    print("JSON: {}".format(out_path), file=out)


if __name__ == "__main__":
    main()
