#!/usr/bin/env bash
# bench/bridge.sh - records/s from lienthongd into an R3 JetStream stream through
# `lienthong bridge out`, next to a plain libnats JetStream publisher (bench_nats) into the
# same stream in the same run (issue 11: goal >= 80% of the plain publisher).
#
#   bench/bridge.sh [BUILD_DIR] [N] [CREDIT]        defaults: build, 100000, 2048
#
# A 3-node nats-server cluster (JetStream, file store) on free 127.0.0.1 ports, each waited
# for on /healthz; a fresh lienthongd (dev-init config). Then:
#   1. plain: bench_nats, one publisher, window 1024, Nats-Msg-Id on every message, into the
#      stream BENCH (R3, subjects bench.>), which it keeps;
#   2. plain again with a header Bench-Pad making its messages' headers as large as the
#      bridge's (Nats-Msg-Id of 32 hex digits and the three Lienthong-* headers);
#   3. records published to lienthongd's queue dancu.capnhat (not timed), then the time
#      `lienthong bridge out -n` takes to carry them into the same stream BENCH (subject
#      bench.<topic>), every one acked to lienthong after its PubAck; the clock runs from the
#      bridge's start to its exit (connecting and subscribing included).
# N messages each, in ROUNDS rounds (default 3) of 1-2-3: the load of whatever else shares the
# machine drifts, and in alternation each side sees about the same of it.
# The plain publisher's messages are as large as the bridge's envelopes (measured first with
# a small run). Prints both rates, their ratio and the bridge's own CPU time per record
# (user + sys: what the bridge costs whatever else shares the cores), lienthongd's and the
# nats-servers'. Everything started is stopped by pid.
# BRIDGE_PERF=FILE records the timed bridge run with `perf record -g -o FILE` (its rate is
# then perf's, not the bridge's: for the profile only).
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${1:-build}" && pwd) # absolute: lienthongd starts from its own directory
N=${2:-100000}
CREDIT=${3:-2048}
L="$B/tools/lienthong"
D=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
command -v nats-server >/dev/null || { echo "bench/bridge.sh: nats-server not installed (scripts/install-deps)" >&2; exit 2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU seconds (user + sys) the running processes PIDS... have used so far (/proc/PID/stat)
proc_cpu() { for p in "$@"; do cat "/proc/$p/stat"; done | awk -v hz="$(getconf CLK_TCK)" '{ s += $14 + $15 } END { print s / hz }'; }
# CPU seconds (user + sys) of the children this shell has reaped so far: bash's `times`,
# written to a file by this shell itself (in a $(...) subshell it would count the subshell's)
child_cpu() { tail -n 1 "$1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }'; }

declare -a CP RP MP
for i in 0 1 2; do CP[$i]=$(port); RP[$i]=$(port); MP[$i]=$(port); done
URLS="nats://127.0.0.1:${CP[0]},nats://127.0.0.1:${CP[1]},nats://127.0.0.1:${CP[2]}"
for i in 0 1 2; do
    routes=""
    for j in 0 1 2; do [ "$j" = "$i" ] || routes="$routes${routes:+,}nats://127.0.0.1:${RP[$j]}"; done
    nats-server -a 127.0.0.1 -p "${CP[$i]}" -m "${MP[$i]}" -js -sd "$D/n$i" -n "n$i" \
        --cluster_name lt-bench --cluster "nats://127.0.0.1:${RP[$i]}" --routes "$routes" \
        >"$D/n$i.log" 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 150); do
    ok=0
    for i in 0 1 2; do curl -fs "http://127.0.0.1:${MP[$i]}/healthz" >/dev/null 2>&1 && ok=$((ok + 1)); done
    [ "$ok" = 3 ] && break
    sleep 0.2
done
[ "$ok" = 3 ] || { echo "bench/bridge.sh: the NATS cluster did not become healthy" >&2; exit 1; }

"$L" dev-init "$D/lt" >/dev/null
lport=$(port); aport=$(port)
EP="tcp://127.0.0.1:$lport"
sed -e "s#tcp://127.0.0.1:7400#$EP#" -e "s#127.0.0.1:7401#127.0.0.1:$aport#" \
    "$D/lt/broker.yaml" >"$D/lt/bench.yaml"
(cd "$D/lt" && exec "$B/broker/lienthongd" -c "$D/lt/bench.yaml" 2>"$D/broker.log") &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$D/broker.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$D/broker.log" || { echo "bench/bridge.sh: lienthongd not ready" >&2; exit 1; }

fill() { # publish $1 records into dancu.capnhat
    "$L" pub -c "$D/lt/agencies/quan1.yaml" -e "$EP" -t 79.760.hotich.khaisinh \
        --type lienthong.v1.records.BirthRegistration -f scripts/demo-data/khaisinh-quan1.jsonl \
        --count "$1" --batch 64 -q >/dev/null 2>"$D/pub.err"
}
bridge() { # carry $1 records into the stream $2
    ${BRIDGE_PERF:+perf record -q ${BRIDGE_PERF_OPTS:--g} -o "$BRIDGE_PERF" --} "$L" bridge out -c "$D/lt/agencies/dancu.yaml" -e "$EP" -q dancu.capnhat --nats "$URLS" \
        --stream "$2" --subject bench --credit "$CREDIT" -n "$1" 2>>"$D/bridge.err"
}

# the envelope size, from a small run into a scratch stream
fill 1000
"$L" bridge out -c "$D/lt/agencies/dancu.yaml" -e "$EP" -q dancu.capnhat --nats "$URLS" \
    --stream SIZE --subject size --create-stream --replicas 3 -n 1000 2>>"$D/bridge.err"
"$L" bridge dump --nats "$URLS" --stream SIZE -o "$D/size.env" >"$D/size.json" 2>/dev/null
SIZE=$(( $(stat -c %s "$D/size.env") / 1000 - 2 )) # less the length prefix (2 bytes)
# The bridge's NATS header block (NATS/1.0, Nats-Msg-Id of 32 hex digits, the three
# Lienthong-* headers) against the plain publisher's (Nats-Msg-Id of at most 6 digits): the
# second plain run carries a Bench-Pad header making up the difference.
PAD=$(head -n 1 "$D/size.json" | python3 -c '
import json, sys
m = json.loads(sys.stdin.readline())
bridge = 10 + sum(len(k) + 2 + len(v) + 2 for k, v in (("Nats-Msg-Id", m["msg_id"]),
    ("Lienthong-Topic", m["topic"]), ("Lienthong-Source", m["source"]),
    ("Lienthong-Record-Type", m["record_type"]))) + 2
plain = 10 + len("Nats-Msg-Id") + 2 + 5 + 2 + len("Bench-Pad") + 2 + 2 + 2
print(bridge - plain)')

# ROUNDS rounds (default 3) of N / ROUNDS messages each, every round in the same order
# (plain, plain with the header bytes, bridge): on a machine shared with other work the
# load drifts, and in alternation each side sees about the same of it.
ROUNDS=${ROUNDS:-3}
PER=$((N / ROUNDS))
NATS_PIDS="${PIDS[0]} ${PIDS[1]} ${PIDS[2]}"
BROKER_PID=${PIDS[3]}
plain_run() { # plain_run PAD: one round of the plain publisher; "plain PAD msgs s nats_cpu"
    local n0 n1
    n0=$(proc_cpu $NATS_PIDS)
    "$B/bench/bench_nats" --url "nats://127.0.0.1:${CP[0]}" --stream BENCH --replicas 3 --msg-id \
        --keep --no-consume --publishers 1 --messages "$PER" --size "$SIZE" --header-pad "$1" >"$D/plain.json"
    n1=$(proc_cpu $NATS_PIDS)
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["publish"]["msgs_per_s"]
print("plain", sys.argv[2], sys.argv[3], int(sys.argv[3]) / r, float(sys.argv[5]) - float(sys.argv[4]))' \
        "$D/plain.json" "$1" "$PER" "$n0" "$n1"
}
for r in $(seq "$ROUNDS"); do
    plain_run 0 >>"$D/rounds"
    plain_run "$PAD" >>"$D/rounds"
    fill "$PER"
    n0=$(proc_cpu $NATS_PIDS); b0=$(proc_cpu "$BROKER_PID")
    times >"$D/times0"
    t0=$(date +%s.%N)
    bridge "$PER" BENCH
    t1=$(date +%s.%N)
    times >"$D/times1"
    n1=$(proc_cpu $NATS_PIDS); b1=$(proc_cpu "$BROKER_PID")
    echo "bridge $PER $t0 $t1 $n0 $n1 $b0 $b1 $(child_cpu "$D/times0") $(child_cpu "$D/times1")" >>"$D/rounds"
done
python3 - "$D/rounds" "$N" "$SIZE" "$CREDIT" "$PAD" "$ROUNDS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
n, size, credit, pad, rounds = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
# plain PAD MSGS SECONDS NATS_CPU / bridge MSGS T0 T1 NATS0 NATS1 BROKER0 BROKER1 CPU0 CPU1
def plain(p):
    rs = [r for r in rows if r[0] == "plain" and r[1] == p]
    return rs, sum(int(r[2]) for r in rs)
pl, npl = plain("0"); ph, nph = plain(pad)
br = [r[1:] for r in rows if r[0] == "bridge"]; nbr = sum(int(r[0]) for r in br)
rate_pl = npl / sum(float(r[3]) for r in pl)
rate_ph = nph / sum(float(r[3]) for r in ph)
rate_br = nbr / sum(float(r[2]) - float(r[1]) for r in br)
us = lambda cpu, m: cpu / m * 1e6
nats_pl = us(sum(float(r[4]) for r in pl), npl); nats_ph = us(sum(float(r[4]) for r in ph), nph)
nats_br = us(sum(float(r[4]) - float(r[3]) for r in br), nbr)
brk = us(sum(float(r[6]) - float(r[5]) for r in br), nbr)
bcpu = us(sum(float(r[8]) - float(r[7]) for r in br), nbr)
print(f"R3 stream, 3 nats-server nodes on one machine, {n} records of {size} B in {rounds} rounds")
print(f"plain libnats publisher (1 conn, window 1024, Nats-Msg-Id): {rate_pl:10.0f} msgs/s")
print(f"plain, with {pad} header bytes more (as many as the bridge's headers): {rate_ph:10.0f} msgs/s")
print(f"lienthong bridge out (credit {credit}, ack to lienthong after PubAck): {rate_br:10.0f} records/s")
print(f"ratio bridge / plain: {rate_br / rate_pl * 100:.0f}%")
print(f"ratio bridge / plain with as many header bytes: {rate_br / rate_ph * 100:.0f}%")
print(f"CPU per record (user + sys), bridge rounds: bridge {bcpu:.1f} us, lienthongd {brk:.1f} us, "
      f"3 nats-servers {nats_br:.1f} us; plain rounds: 3 nats-servers {nats_pl:.1f} us, "
      f"with the header bytes {nats_ph:.1f} us")
PY
tail -1 "$D/bridge.err"
