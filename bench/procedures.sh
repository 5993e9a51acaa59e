#!/bin/sh
# bench/procedures.sh - what checking one-stop procedures costs a publisher: the same
# DossierStatusEvents published to a broker with the sample procedures (each event judged
# in the commit's transaction against the dossier's state, its copy kept for the trace) and
# to one without them (stored and routed only). Prints one line per run and the medians.
#
# usage: bench/procedures.sh [BUILD_DIR] [MESSAGES] [RUNS]   (default: build 20000 3)
#
# Every run: a fresh `lienthong dev-init` directory and data directory, a broker on free
# ports of 127.0.0.1 waited for by its ready line (bounded), `lienthong pub --count N` of one
# dossier's "accepted" event (status 2 may follow 2: every one is judged and accepted), the
# broker stopped by its pid. Nothing is left running, also on Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
build=${1:-build}
n=${2:-20000}
runs=${3:-3}
lt="$src/$build/tools/lienthong"
ltd="$src/$build/broker/lienthongd"
[ -x "$lt" ] && [ -x "$ltd" ] || { echo "bench/procedures.sh: build $build first" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lt-bench-proc.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { # a port nobody listens on, from a bounded number of tries
    i=0
    while [ $i -lt 50 ]; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
        ss -ltn "( sport = :$p )" | grep -q ":$p" || { echo $p; return; }
        i=$((i + 1))
    done
    echo "bench/procedures.sh: no free port" >&2
    exit 1
}

one_run() { # $1: proc | plain; prints msgs/s
    rm -rf "$work/pki"
    "$lt" dev-init "$work/pki" >/dev/null
    port=$(free_port)
    admin=$(free_port)
    sed -i "s#127.0.0.1:7400#127.0.0.1:$port#; s#127.0.0.1:7401#127.0.0.1:$admin#" \
        "$work/pki/broker.yaml" "$work/pki"/agencies/*.yaml
    if [ "$1" = proc ]; then
        printf 'procedures: %s/ops/procedures\ncalendar: %s/ops/calendar/vn-holidays.yaml\n' \
            "$src" "$src" >>"$work/pki/broker.yaml"
    fi
    : >"$work/broker.log"
    "$ltd" -c "$work/pki/broker.yaml" 2>>"$work/broker.log" &
    pid=$!
    i=0
    until grep -q "lienthongd: ready" "$work/broker.log"; do
        i=$((i + 1))
        [ $i -le 300 ] || { echo "bench/procedures.sh: broker not ready" >&2; exit 1; }
        kill -0 "$pid" 2>/dev/null || { cat "$work/broker.log" >&2; exit 1; }
        sleep 0.1
    done
    "$lt" pub -c "$work/pki/agencies/motcua.yaml" -t 79.26737.hoso.khaisinh_thuongtru_bhyt \
        --type DossierStatusEvent -q --count "$n" \
        --json '{"dossierCode":"BENCH-1","procedureCode":"1.001193","status":2}' 2>&1 |
        sed -n 's/.* \([0-9][0-9]*\) acked .*: \([0-9][0-9]*\) msgs\/s$/\1 \2/p' >"$work/out"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    read -r acked rate <"$work/out"
    [ "$acked" = "$n" ] || { echo "bench/procedures.sh: $1: only $acked of $n acked" >&2; exit 1; }
    echo "$rate"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$work/proc"
: >"$work/plain"
r=1
while [ $r -le "$runs" ]; do
    for mode in proc plain; do
        rate=$(one_run $mode)
        echo "$rate" >>"$work/$mode"
        echo "run $r $mode: $n dossier events, $rate msgs/s"
    done
    r=$((r + 1))
done
echo "median with procedures: $(median <"$work/proc") msgs/s, without: $(median <"$work/plain") msgs/s ($n events, $runs runs, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
