#!/usr/bin/env python3
"""bench/report.py - turn bench/run's raw runs into results JSON and a table for people.

usage: report.py RUNS.jsonl META.json OUT.json

RUNS.jsonl has one line per run: {"case", "group", "x", "label", "result": <the load
program's JSON>, "server": {"peak_rss_kib", "cpu_s", "disk_bytes", ...}}.
Every metric is the median over the runs of a case, taken metric by metric; per-message
figures (CPU, disk) are computed run by run, then their median taken.

META.json carries the machine, the parameters and what bench/run measured besides the runs:
the signature math alone (sigbench), the disk's commit latency (fsyncbench) and the restarts
on a backlog (restart). The goals of issue 14 are computed from these and the runs, printed
with met / missed and stored under "goals"; issue 4's targets follow under "targets".
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
    ("server_cpu_us_per_msg", ("derived", "server_cpu_us_per_msg"), "CPU us/msg", 1, "{:.1f}"),
    ("client_cpu_s", ("result", "client_cpu_s"), "client CPU", 1, "{:.1f}"),
    ("disk_mib", ("server", "disk_bytes"), "disk MiB", 1 / 1048576, "{:.0f}"),
]
SIGN_METRICS = [
    ("sign_per_s", ("result", "sign", "envelopes_per_s")),
    ("sign_seconds", ("result", "sign", "seconds")),
]
# Medians kept in the JSON but not in the table.
EXTRA_METRICS = [
    ("server_cpu_timed_s", ("result", "server_cpu_timed_s")),
    ("server_cpu_life_us_per_msg", ("derived", "server_cpu_life_us_per_msg")),
    ("disk_bytes_per_msg", ("derived", "disk_bytes_per_msg")),
    ("envelope_bytes_avg", ("result", "envelope_bytes_avg")),
]
# Totals that grow with N: no ratio between cases of different N.
EXTENSIVE = {"server_cpu_s", "client_cpu_s", "disk_mib"}


def derive(run):
    """Per-message figures of one run: the server's CPU over the timed part (from the load
    program, read from /proc/PID/stat at the start and at the end) and over its whole life
    (bench/run, setup included), and the data directory's allocated bytes, each divided by
    the messages published."""
    n = dig(run, ("result", "params", "messages"))
    d = {}
    if n:
        t = dig(run, ("result", "server_cpu_timed_s"))
        life = dig(run, ("server", "cpu_s"))
        disk = dig(run, ("server", "disk_bytes"))
        d["server_cpu_us_per_msg"] = t * 1e6 / n if t is not None else None
        d["server_cpu_life_us_per_msg"] = life * 1e6 / n if life is not None else None
        d["disk_bytes_per_msg"] = disk / n if disk is not None else None
    run["derived"] = d


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
    for key, path in SIGN_METRICS + EXTRA_METRICS:
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
        same_n = dig(c, ("params", "messages")) == dig(base, ("params", "messages"))
        for key, _p, _h, _s, _f in METRICS:
            a, b = c["median"].get(key), base["median"].get(key)
            r[key] = (a / b) if (a is not None and b and (same_n or key not in EXTENSIVE)) \
                else None
        out["{}/{}".format(c["case"], want)] = r
    return out


GOAL_E2E_VS_NATS = 1.5       # batch-64 end-to-end msg/s, lienthong / NATS
GOAL_CPU_US = 8.0             # server CPU us per message, signature math excluded
GOAL_DISK_VS_NATS = 1.25      # disk bytes per stored message, lienthong / NATS
GOAL_FSYNC_MARGIN_MS = 1.0    # half-load publish->ack p99 <= fdatasync p99 + this
GOAL_RESTART_S = 2.0          # restart to /readyz ok on a backlog of ...
GOAL_RESTART_RECORDS = 10000000


def first_result(case):
    raw = case.get("raw") or []
    return (raw[0].get("result") or {}) if raw else {}


def goals(cases, meta):
    """Issue 14's goals, each with its figure from this run and met (True), missed (False)
    or not measured here (None)."""
    by = {c["case"]: c for c in cases}
    sig = meta.get("sigbench") or {}
    out = []

    def med(case, key):
        c = by.get(case)
        return c["median"].get(key) if c else None

    def add(gid, goal, value, limit, met, detail):
        out.append({"id": gid, "goal": goal, "value": value, "limit": limit, "met": met,
                    "detail": detail})

    g = "batch-64 end to end >= %.1fx NATS JetStream (median e2e msg/s)" % GOAL_E2E_VS_NATS
    a, b = med("lt-batch64", "e2e_msgs_per_s"), med("nats", "e2e_msgs_per_s")
    if a and b:
        add("e2e_vs_nats", g, round(a / b, 3), GOAL_E2E_VS_NATS, a / b >= GOAL_E2E_VS_NATS,
            "%.2fx: %.0f vs %.0f msg/s" % (a / b, a, b))
    else:
        add("e2e_vs_nats", g, None, GOAL_E2E_VS_NATS, None, "needs the lt-batch64 and nats cases")

    nats_cpu = med("nats", "server_cpu_us_per_msg")
    for case, what in (("lt-single", "per-message ECDSA"), ("lt-batch64", "batch-64 ECDSA")):
        g = "server CPU per message excluding signature math <= %.0f us, %s" % (GOAL_CPU_US, what)
        c, total = by.get(case), med(case, "server_cpu_us_per_msg")
        r = first_result(c) if c else {}
        alg = (r.get("sign") or {}).get("alg")
        batch = r.get("batch") or 1
        v = (sig.get(alg) or {}).get("verify_us")
        if total is None or v is None:
            add("cpu_" + case, g, None, GOAL_CPU_US, None,
                "needs the %s case with the server's timed CPU and sigbench's verify (%s)"
                % (case, alg or "no run"))
            continue
        excl = total - v / batch
        add("cpu_" + case, g, round(excl, 2), GOAL_CPU_US, excl <= GOAL_CPU_US,
            "%.1f us/msg in the timed part - %.2f us signature math (%s verify %.1f us%s) "
            "= %.1f us/msg; whole life %.1f us/msg%s"
            % (total, v / batch, alg, v, " / %d" % batch if batch > 1 else " x 1", excl,
               med(case, "server_cpu_life_us_per_msg") or float("nan"),
               "; NATS %.1f us/msg" % nats_cpu if nats_cpu is not None else ""))

    nats_disk = med("nats", "disk_bytes_per_msg")
    for case, what in (("lt-batch64", "batch-64"), ("lt-single", "per-message")):
        g = "disk per stored message <= %.2fx NATS's, %s" % (GOAL_DISK_VS_NATS, what)
        a = med(case, "disk_bytes_per_msg")
        if a is None or not nats_disk:
            add("disk_" + case, g, None, GOAL_DISK_VS_NATS, None,
                "needs the %s and nats cases" % case)
            continue
        env = med(case, "envelope_bytes_avg")
        add("disk_" + case, g, round(a / nats_disk, 3), GOAL_DISK_VS_NATS,
            a / nats_disk <= GOAL_DISK_VS_NATS,
            "%.2fx: %.0f vs %.0f B/msg (data directory allocated bytes / N)%s"
            % (a / nats_disk, a, nats_disk,
               "; envelope %.0f B on the wire" % env if env else ""))

    fs = meta.get("fsyncbench") or {}
    fl = fs.get("fdatasync_us") or {}
    g = "publish->ack p99 at half load <= the disk's fdatasync p99 + %.0f ms (batch-64)" \
        % GOAL_FSYNC_MARGIN_MS
    a = med("lt-batch64-half", "pub_ack_p99_ms")
    if a is not None and fl.get("p99") is not None:
        lim = fl["p99"] / 1e3 + GOAL_FSYNC_MARGIN_MS
        c = by["lt-batch64-half"]
        nh = med("nats-half", "pub_ack_p99_ms")
        add("ack_p99_half", g, round(a, 3), round(lim, 3), a <= lim,
            "%.2f ms at %.0f msg/s vs %.2f + %.0f = %.2f ms; fdatasync p50 %.2f, p99 %.2f, "
            "max %.2f ms (%d commits of %d B, %s)%s"
            % (a, dig(c, ("params", "rate")) or 0, fl["p99"] / 1e3, GOAL_FSYNC_MARGIN_MS, lim,
               fl["p50"] / 1e3, fl["p99"] / 1e3, fl["max"] / 1e3, fs.get("count", 0),
               fs.get("commit_bytes", 0), meta.get("fsyncbench_fs") or "?",
               "; NATS at half load %.2f ms" % nh if nh is not None else ""))
    else:
        add("ack_p99_half", g, None, None, None, "needs lt-batch64-half and bench_fsyncbench")

    g = "per-message RSA-2048 and Ed25519 rows in the headline, each with its verify cost"
    rows = [by.get(k) for k in ("lt-single", "lt-single-ed25519", "lt-single-rsa2048")]
    ok = all(c and c["complete_runs"] == c["runs"] for c in rows[1:])
    add("alg_rows", g, None, None, ok if rows[1] or rows[2] else None,
        "see the table below" if rows[1] or rows[2] else "left out (--alg-messages 0)")

    g = "restart with a %dM-record backlog < %.0f s to /readyz ok (--full)" \
        % (GOAL_RESTART_RECORDS // 1000000, GOAL_RESTART_S)
    rs = meta.get("restart") or []
    term = next((r for r in rs if r.get("signal") == "TERM"), None)
    if term and term.get("ready"):
        t = term["ready"]["ready_s"]
        n = term.get("records_before") or 0
        kill = next((r for r in rs if r.get("signal") == "KILL"), None)
        kt = ((kill or {}).get("ready") or {}).get("ready_s")
        detail = ("%.2f s after SIGTERM (stopped in %s s) on %d records; %s after kill -9"
                  % (t, term.get("stop_s"), n, "%.2f s" % kt if kt is not None else "-"))
        met = t < GOAL_RESTART_S if n >= GOAL_RESTART_RECORDS else None
        if met is None:
            detail += "; the goal's point is %d records (--backlog)" % GOAL_RESTART_RECORDS
        add("restart", g, t, GOAL_RESTART_S, met, detail)
    else:
        add("restart", g, None, GOAL_RESTART_S, None,
            "measured by bench/run --full --curves backlog --backlog %d" % GOAL_RESTART_RECORDS)
    return out


def alg_rows(cases, meta):
    """The per-message cases by key algorithm, each next to its signature verify cost."""
    sig = meta.get("sigbench") or {}
    rows = []
    for c in cases:
        if c["group"] != "headline" or c["mode"] != "single-presigned" or c["case"].endswith(
                "-half"):
            continue
        alg = (first_result(c).get("sign") or {}).get("alg")
        v = (sig.get(alg) or {}).get("verify_us")
        cpu = c["median"].get("server_cpu_us_per_msg")
        rows.append({"case": c["case"], "alg": alg, "messages": dig(c, ("params", "messages")),
                     "runs": c["runs"], "e2e_msgs_per_s": c["median"].get("e2e_msgs_per_s"),
                     "verify_us": v, "verify_per_s_one_core": (sig.get(alg) or {}).get(
                         "verify_per_s"),
                     "server_cpu_us_per_msg": cpu,
                     "server_cpu_us_per_msg_excl_sig": cpu - v if cpu is not None and v else None,
                     "envelope_bytes_avg": c["median"].get("envelope_bytes_avg")})
    return rows


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
            derive(r)
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
    result["goals"] = goals(cases, meta)
    result["key_algorithms"] = alg_rows(cases, meta)
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
    print("", file=out)
    print("Goals (issue 14), from this run:", file=out)
    for g in result["goals"]:
        status = {True: "met", False: "MISSED", None: "n/a"}[g["met"]]
        print("  [{}] {}: {}".format(status, g["goal"], g["detail"]), file=out)
    if result["key_algorithms"]:
        print("  per-message signatures by key algorithm (verify: bench_sigbench -m sig, one "
              "thread; excl. sig = CPU us/msg - 1 verify):", file=out)
        print("    {:<11} {:>8} {:>5} {:>10} {:>10} {:>12} {:>11} {:>10} {:>9}".format(
            "algorithm", "msgs", "runs", "e2e msg/s", "verify us", "verify/s/core",
            "CPU us/msg", "excl. sig", "env B"), file=out)
        for r in result["key_algorithms"]:
            print("    {:<11} {:>8} {:>5} {:>10} {:>10} {:>12} {:>11} {:>10} {:>9}".format(
                r["alg"] or "?", r["messages"] or "-", r["runs"],
                fmt(r["e2e_msgs_per_s"], "{:.0f}"), fmt(r["verify_us"], "{:.1f}"),
                fmt(r["verify_per_s_one_core"], "{:.0f}"),
                fmt(r["server_cpu_us_per_msg"], "{:.1f}"),
                fmt(r["server_cpu_us_per_msg_excl_sig"], "{:.1f}"),
                fmt(r["envelope_bytes_avg"], "{:.0f}")), file=out)
    for r in meta.get("restart") or []:
        rd = r.get("ready") or {}
        print("  restart after SIG{} on {} records: /readyz ok {} s after the start (admin "
              "answering after {} s); {} records after".format(
                  r["signal"], r.get("records_before"), rd.get("ready_s", "-"),
                  rd.get("first_answer_s", "-"), r.get("records_after")), file=out)
    if result["targets"]:
        print("", file=out)
        print("Targets (issue 4, kept as they were):", file=out)
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
