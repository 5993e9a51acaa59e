#!/usr/bin/env python3
"""bench/ltadmin.py - what bench/run asks a running lienthongd's admin server (127.0.0.1).

usage:
  ltadmin.py start PORT TIMEOUT_S PIDFILE LOG -- COMMAND...
      Start COMMAND (lienthongd; its output to LOG, its pid written to PIDFILE at once) and
      poll GET /readyz (no token needed) every 5 ms until it answers 200 ("ready": true, every
      check ok). Prints JSON: {"pid", "ready_s": from just before the start to the first 200,
      "first_answer_s": to the first HTTP answer of any status (the admin server listening),
      "polls": n}, and leaves the server running. Starting it here rather than in the shell
      keeps this interpreter's own start-up out of the time. Exits 1 (why on stderr) after
      TIMEOUT_S or when the server exits; the server is then left as it is (PIDFILE).
  ltadmin.py depth PORT TOKEN_FILE
      Prints the sum of lienthong_queue_depth over every queue, from GET /metrics with the
      bearer token (the records waiting or in flight).
"""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request


def get(port, path, token=None, timeout=1.0):
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start(port, timeout, pidfile, log, cmd):
    with open(log, "ab") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    with open(pidfile, "w") as f:
        f.write("%d\n" % proc.pid)
    first = None
    polls = 0
    while True:
        if time.monotonic() - t0 > timeout:
            sys.exit("ltadmin: /readyz not ok after %.0f s" % timeout)
        if proc.poll() is not None:
            sys.exit("ltadmin: the server exited (status %s)" % proc.returncode)
        polls += 1
        try:
            status, _body = get(port, "/readyz", timeout=2.0)
        except (OSError, urllib.error.URLError):
            status = None  # not listening yet
        now = time.monotonic() - t0
        if status is not None and first is None:
            first = now
        if status == 200:
            print(json.dumps({"pid": proc.pid, "ready_s": round(now, 4),
                              "first_answer_s": round(first, 4), "polls": polls}))
            return
        time.sleep(0.005)


def depth(port, token_file):
    with open(token_file) as f:
        token = f.read().strip()
    status, body = get(port, "/metrics", token, timeout=30.0)
    if status != 200:
        sys.exit("ltadmin: GET /metrics: HTTP %s" % status)
    total = 0
    for line in body.decode().splitlines():
        if line.startswith("lienthong_queue_depth{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    print(total)


def main():
    if len(sys.argv) >= 8 and sys.argv[1] == "start" and sys.argv[6] == "--":
        start(sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[7:])
    elif len(sys.argv) == 4 and sys.argv[1] == "depth":
        depth(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
