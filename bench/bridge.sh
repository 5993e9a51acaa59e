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
#   2. N records published to lienthongd's queue dancu.capnhat (not timed), then the time
#      `lienthong bridge out -n N` takes to carry them into the same stream BENCH (subject
#      bench.<topic>), every one acked to lienthong after its PubAck; the clock runs from the
#      bridge's start to its exit (connecting and subscribing included).
# The plain publisher's messages are as large as the bridge's envelopes (measured first with
# a small run). Prints both rates and their ratio. Everything started is stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${2:-100000}
CREDIT=${3:-2048}
L="$B/tools/lienthong"
D=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
command -v nats-server >/dev/null || { echo "bench/bridge.sh: nats-server not installed (scripts/install-deps)" >&2; exit 2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
(cd "$D/lt" && exec "$OLDPWD/$B/broker/lienthongd" -c "$D/lt/bench.yaml" 2>"$D/broker.log") &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$D/broker.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$D/broker.log" || { echo "bench/bridge.sh: lienthongd not ready" >&2; exit 1; }

fill() { # publish $1 records into dancu.capnhat
    "$L" pub -c "$D/lt/agencies/quan1.yaml" -e "$EP" -t 79.760.hotich.khaisinh \
        --type lienthong.v1.records.BirthRegistration -f scripts/demo-data/khaisinh-quan1.jsonl \
        --count "$1" --batch 64 -q >/dev/null 2>"$D/pub.err"
}
bridge() { # carry $1 records into the stream $2
    "$L" bridge out -c "$D/lt/agencies/dancu.yaml" -e "$EP" -q dancu.capnhat --nats "$URLS" \
        --stream "$2" --subject bench --credit "$CREDIT" -n "$1" 2>>"$D/bridge.err"
}

# the envelope size, from a small run into a scratch stream
fill 1000
"$L" bridge out -c "$D/lt/agencies/dancu.yaml" -e "$EP" -q dancu.capnhat --nats "$URLS" \
    --stream SIZE --subject size --create-stream --replicas 3 -n 1000 2>>"$D/bridge.err"
"$L" bridge dump --nats "$URLS" --stream SIZE -o "$D/size.env" >/dev/null 2>&1
SIZE=$(( $(stat -c %s "$D/size.env") / 1000 - 2 )) # less the length prefix (2 bytes)

"$B/bench/bench_nats" --url "nats://127.0.0.1:${CP[0]}" --stream BENCH --replicas 3 --msg-id \
    --keep --no-consume --publishers 1 --messages "$N" --size "$SIZE" >"$D/plain.json"
PLAIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["publish"]["msgs_per_s"])' "$D/plain.json")

fill "$N"
t0=$(date +%s.%N)
bridge "$N" BENCH
t1=$(date +%s.%N)
BR=$(python3 -c "print(round($N / ($t1 - $t0), 1))")
python3 - "$PLAIN" "$BR" "$N" "$SIZE" "$CREDIT" <<'PY'
import sys
plain, br, n, size, credit = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print(f"R3 stream, 3 nats-server nodes on one machine, {n} records of {size} B")
print(f"plain libnats publisher (1 conn, window 1024, Nats-Msg-Id): {plain:10.0f} msgs/s")
print(f"lienthong bridge out (credit {credit}, ack to lienthong after PubAck): {br:10.0f} records/s")
print(f"ratio bridge / plain: {br / plain * 100:.0f}%")
PY
tail -1 "$D/bridge.err"
