#!/bin/sh
# bench/sigbench.sh [BUILD_DIR] - signatures per second: `openssl speed` (the raw primitive)
# next to lienthong's envelopes (bench_sigbench: single signatures and batches of 16, 64, 256)
# and the signature alone (lt_trust_cert_verify over 32 bytes, what bench/run subtracts as
# signature math), for ECDSA P-256, Ed25519 and RSA-2048, in the same run, as one table.
# Builds bench_sigbench into BUILD_DIR (default build-bench) when it is missing.
set -eu
cd "$(dirname "$0")/.."
B=${1:-build-bench}
SECS=${SIGBENCH_SECONDS:-3}
if [ ! -x "$B/bench/bench_sigbench" ]; then
    cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$B" --target bench_sigbench -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "# $(openssl version); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# one thread; rates per CPU second (openssl speed default: user time); openssl speed -seconds $SECS; lienthong $SECS s per measurement"
openssl speed -seconds "$SECS" ecdsap256 ed25519 rsa2048 >"$tmp/openssl" 2>/dev/null
"$B/bench/bench_sigbench" -t "$SECS" >"$tmp/lt"

# openssl speed's summary lines:
#   rsa 2048 bits 0.000626s 0.000018s   1597.6  55004.1
#    256 bits ecdsa (nistp256)   0.0000s   0.0001s  41364.4  13496.3
#    253 bits EdDSA (Ed25519)   0.0000s   0.0001s  24253.4   8539.2
awk '
/^rsa 2048 bits/            { print "rsa2048",    $(NF-1), $NF }
/bits ecdsa \(nistp256\)/   { print "ecdsa-p256", $(NF-1), $NF }
/bits EdDSA \(Ed25519\)/    { print "ed25519",    $(NF-1), $NF }
' "$tmp/openssl" >"$tmp/raw"

printf '%-11s %-22s %12s %12s %10s %10s\n' algorithm what sign/s verify/s "sign/raw" "verify/raw"
for alg in ecdsa-p256 ed25519 rsa2048; do
    set -- $(awk -v a="$alg" '$1 == a { print $2, $3 }' "$tmp/raw")
    rs=${1:-0}; rv=${2:-0}
    printf '%-11s %-22s %12.0f %12.0f %10s %10s\n' "$alg" "openssl speed (raw)" "$rs" "$rv" "1.00" "1.00"
    awk -v a="$alg" -v rs="$rs" -v rv="$rv" '$1 == a {
        what = ($2 == "single") ? "envelope, single sig" : \
               ($2 == "sig") ? "signature alone" : "envelope, " $2;
        printf "%-11s %-22s %12.0f %12.0f %10.2f %10.2f\n", a, what, $3, $4,
               (rs > 0 ? $3 / rs : 0), (rv > 0 ? $4 / rv : 0) }' "$tmp/lt"
done
