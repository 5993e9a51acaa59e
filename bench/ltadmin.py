#!/usr/bin/env python3
"""bench/ltadmin.py - what bench/run asks a running lienthongd's admin server (127.0.0.1).

usage:
  ltadmin.py ready PORT T0 TIMEOUT_S [PID]
      Poll GET /readyz (no token needed) every 5 ms until it answers 200 ("ready": true, every
      check ok). T0 is the moment (Unix seconds, as `date +%s.%N` prints) the server was
      started. Prints JSON: {"ready_s": T0 to the first 200, "first_answer_s": T0 to the first
      HTTP answer of any status (the admin server listening), "polls": n}. Exits 1 (and prints
      why on stderr) after TIMEOUT_S, or as soon as process PID is gone.
  ltadmin.py depth PORT TOKEN_FILE
      Prints the sum of lienthong_queue_depth over every queue, from GET /metrics with the
      bearer token (the records waiting or in flight).
"""
import json
import os
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


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def ready(port, t0, timeout, pid):
    first = None
    polls = 0
    while True:
        now = time.time()
        if now - t0 > timeout:
            sys.exit("ltadmin: /readyz not ok after %.0f s" % timeout)
        if pid and not alive(pid):
            sys.exit("ltadmin: the server (pid %d) is gone" % pid)
        polls += 1
        try:
            status, _body = get(port, "/readyz", timeout=2.0)
        except (OSError, urllib.error.URLError):
            status = None  # not listening yet
        if status is not None and first is None:
            first = time.time() - t0
        if status == 200:
            print(json.dumps({"ready_s": round(time.time() - t0, 4),
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
    if len(sys.argv) >= 5 and sys.argv[1] == "ready":
        pid = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        ready(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), pid)
    elif len(sys.argv) == 4 and sys.argv[1] == "depth":
        depth(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
