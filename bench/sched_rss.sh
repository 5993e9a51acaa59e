#!/usr/bin/env bash
# bench/sched_rss.sh - what 100k scheduled records cost the broker in memory, next to 100k
# plain ones, in the same run (issue: scheduled delivery "with no timer per message").
#
#   bench/sched_rss.sh [BUILD_DIR] [N]        defaults: build, 100000
#
# For each kind: a fresh lienthongd on 127.0.0.1 (dev-init config), N records published by
# `lienthong pub --batch 64` (scheduled: --delay one hour), then a consumer subscribes for 5 s
# (the delivery scan walks the whole queue: plain records are delivered and acked, scheduled
# ones stepped over), and the broker's RssAnon (/proc/PID/status) is read after each phase.
# Prints one line per kind. The broker is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
N=${2:-100000}
L="$B/tools/lienthong"
D=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$D"' EXIT
"$L" dev-init "$D/lt" >/dev/null
rss() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }
for kind in plain scheduled; do
    rm -rf "$D/lt/data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed -e "s#tcp://127.0.0.1:7400#tcp://127.0.0.1:$port#" -e "s#127.0.0.1:7401#127.0.0.1:$aport#" \
        "$D/lt/broker.yaml" > "$D/lt/bench.yaml"
    (cd "$D/lt" && exec "$OLDPWD/$B/broker/lienthongd" -c "$D/lt/bench.yaml" 2>"$D/broker.log") &
    PID=$!
    for _ in $(seq 100); do grep -q ready "$D/broker.log" 2>/dev/null && break; sleep 0.1; done
    r0=$(rss "$PID")
    extra=()
    [ "$kind" = scheduled ] && extra=(--delay 3600000)
    "$L" pub -c "$D/lt/agencies/quan1.yaml" -e "tcp://127.0.0.1:$port" -t 79.760.hotich.khaisinh \
        --type lienthong.v1.records.BirthRegistration -f scripts/demo-data/khaisinh-quan1.jsonl \
        --count "$N" --batch 64 -q "${extra[@]}" >/dev/null 2>"$D/pub.err"
    r1=$(rss "$PID")
    "$L" sub -c "$D/lt/agencies/dancu.yaml" -e "tcp://127.0.0.1:$port" -q dancu.capnhat --timeout 5 --credit 1000 \
        >/dev/null 2>"$D/sub.err" || true
    r2=$(rss "$PID")
    printf '%-9s %7d records: broker RssAnon %6d KiB at start, %6d KiB after publishing, %6d KiB after a consumer pass (%s)\n' \
        "$kind" "$N" "$r0" "$r1" "$r2" "$(tail -1 "$D/sub.err")"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
