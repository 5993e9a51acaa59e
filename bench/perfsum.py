#!/usr/bin/env python3
"""bench/perfsum.py - where lienthongd's CPU time goes, from perf samples with call chains.

usage: perf script -i perf.data -F comm,tid,ip,sym,dso | perfsum.py LABEL > summary.json

(perf record --call-graph dwarf -p <lienthongd pid>, as bench/run --profile does.)

Each sample is given to the first thing, walking from the sampled instruction towards the
thread's start, that names a part of the work:
  signature verification  EVP_DigestVerify*, EC_*, ECDSA_*, lt_trust_cert_verify, ...
  hashing                 SHA256*, EVP_Digest{Init,Update,Final}*, lt_pki_sha256, Merkle
  protobuf                protobuf_c_*, generated lienthong__v1__* code
  LMDB                    mdb_*  (its write() and fsync() system calls included)
  ZeroMQ                  zmq_* and libzmq's own threads
  libuv                   uv_*
  malloc/free             malloc, free and friends called from anywhere
  lienthong code          our own functions (lt_*, the broker's statics)
Kernel and libc frames (other than malloc) are skipped over, so a system call or a memcpy is
counted for whoever made it; a sample with no user-space frame at all is "kernel (other)".
Also gives each thread role's share (the function the thread started in: verify_main,
commit_main, main, ...). Prints JSON; a short table on stderr.
"""
import json
import re
import sys

FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")

RULES = [
    ("signature verification (ECDSA)",
     re.compile(r"^(EVP_DigestVerify|EVP_PKEY_verify|EC_|ECDSA_|ossl_ec|ossl_ecdsa|"
                r"lt_trust_cert_verify|lt_trust_verify_root|lt_trust_verify_sig)")),
    ("hashing (SHA-256)",
     re.compile(r"^(SHA256|sha256|EVP_Digest(Init|Update|Final)|EVP_Digest$|EVP_Q_digest|"
                r"lt_pki_sha256|lt_env_merkle)")),
    ("certificate checks (X.509, CRL)",
     re.compile(r"^(X509_|d2i_X509|lt_trust_cert_hold|lt_trust_check_cert)")),
    ("protobuf", re.compile(r"^(protobuf_c_|lienthong__v1__)")),
    ("LMDB", re.compile(r"^mdb_")),
    ("ZeroMQ", re.compile(r"^zmq_")),
    ("libuv", re.compile(r"^uv_|^uv__")),
    ("malloc/free",
     re.compile(r"^(malloc|free|calloc|realloc|_int_malloc|_int_free|__GI___libc_malloc|"
                r"__GI___libc_free|__libc_malloc|__libc_free|cfree|sysmalloc|"
                r"malloc_consolidate|_int_realloc|__libc_calloc|tcache_)")),
]
SKIP_DSO = re.compile(r"(\[kernel|libc\.so|ld-linux|\[vdso\]|\[unknown\])")


def classify(frames):
    """frames: [(sym, dso)] leaf first."""
    saw_user = False
    for sym, dso in frames:
        base = sym.split("+")[0]
        for name, rx in RULES:
            if rx.search(base):
                return name
        if "libzmq" in dso:
            return "ZeroMQ"
        if "libuv" in dso:
            return "libuv"
        if "lmdb" in dso:
            return "LMDB"
        if "protobuf-c" in dso:
            return "protobuf"
        if not dso.startswith("[kernel"):
            saw_user = True
        if SKIP_DSO.search(dso) or "libcrypto" in dso:
            continue
        if "lienthongd" in dso:
            return "lienthong code"
    if not saw_user:
        return "kernel (other)"
    for sym, dso in frames:
        if "libcrypto" in dso:
            return "OpenSSL (other)"
    return "other"


def role(frames):
    """The function a thread started in (the frame under start_thread), or main."""
    for i, (sym, _dso) in enumerate(frames):
        base = sym.split("+")[0]
        if base in ("start_thread", "clone3", "clone") and i > 0:
            return frames[i - 1][0].split("+")[0]
        if base in ("main", "__libc_start_call_main"):
            return "main"
    return "?"


def samples(stream):
    head, frames = None, []
    for line in stream:
        if not line.strip():
            if head is not None:
                yield head, frames
            head, frames = None, []
            continue
        if not line[0].isspace():
            if head is not None:
                yield head, frames
            head, frames = line.split(), []
            continue
        m = FRAME.match(line)
        if m:
            frames.append((m.group(2), m.group(3)))
    if head is not None:
        yield head, frames


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "lienthongd"
    cats, roles, total = {}, {}, 0
    for head, frames in samples(sys.stdin):
        total += 1
        c = classify(frames)
        comm = head[0] if head else "?"
        r = "ZeroMQ I/O thread" if comm.startswith("ZMQ") else role(frames)
        cats[c] = cats.get(c, 0) + 1
        roles[r] = roles.get(r, 0) + 1
    if not total:
        print("perfsum: no samples", file=sys.stderr)
        sys.exit(1)

    def pct(d):
        return {k: round(100.0 * v / total, 1)
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])}

    out = {"label": label, "samples": total, "categories_percent": pct(cats),
           "threads_percent": pct(roles)}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    print("profile of lienthongd, {} ({} samples):".format(label, total), file=sys.stderr)
    for k, v in out["categories_percent"].items():
        print("  {:>6.1f}%  {}".format(v, k), file=sys.stderr)
    print("  by thread:", file=sys.stderr)
    for k, v in out["threads_percent"].items():
        print("  {:>6.1f}%  {}".format(v, k), file=sys.stderr)


if __name__ == "__main__":
    main()
