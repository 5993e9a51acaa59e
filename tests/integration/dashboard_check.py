#!/usr/bin/python3
"""dashboard_check.py - the browser half of tests/integration/it_dashboard.c.

Drives Debian's chromium (headless, through chromium-driver and python3-selenium) against a
running lienthongd's dashboard:
  1. with a wrong token the page shows an error and no data;
  2. with the right token (given as /#token=...) it reads the page's numbers: messages in,
     the publishing agency's row in the per-agency table, the queue backlog, and the chart;
  3. it runs the publish command given after "--" (traffic through the broker);
  4. it polls the DOM (bounded, no fixed sleeps) until the numbers grew by the expected
     count and the chart drew the traffic;
  5. it checks that the expected texts (Vietnamese agency names) are in the page as the same
     Unicode strings, that the page fits the window without horizontal scrolling, and saves
     a screenshot.
Prints a JSON report on stdout (also written to --result); exit 0 when every check passed,
1 when one failed, 2 when the browser could not be driven at all.

Run it with Debian's /usr/bin/python3 (selenium is a Debian package there).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Everything the page shows, in one round trip. Numbers are read from what is displayed
# (vi-VN formatting: "1.234"), not from the API, so the test sees what an operator sees.
READ_JS = r"""
const q = (s) => document.querySelector(s);
const txt = (s) => { const e = q(s); return e ? e.textContent : null; };
const row = (table, attr, key) => {
  for (const tr of document.querySelectorAll(table + " tbody tr"))
    if (tr.dataset[attr] === key) return Array.from(tr.cells, (c) => c.textContent);
  return null;
};
const c = q("[data-testid=chart]");
let inPixels = 0, outPixels = 0, dataUrl = "";
if (c && c.width && c.height) {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  /* The series colours of style.css (--in #1f6fd1, --out #1b9e5a), allowing antialiasing. */
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 200) continue;
    const r = d[i], g = d[i + 1], b = d[i + 2];
    if (Math.abs(r - 0x1f) < 24 && Math.abs(g - 0x6f) < 24 && Math.abs(b - 0xd1) < 24) inPixels++;
    if (Math.abs(r - 0x1b) < 24 && Math.abs(g - 0x9e) < 24 && Math.abs(b - 0x5a) < 24) outPixels++;
  }
  dataUrl = c.toDataURL();
}
const st = window.__lienthong || {};
/* Visible as rendered (CSS can override the hidden attribute), not as the DOM says. */
const shown = (s) => { const e = q(s); return !!e && e.getClientRects().length > 0 &&
  getComputedStyle(e).visibility !== "hidden"; };
const r = c ? c.getBoundingClientRect() : null;
return {
  updates: Number(document.body.dataset.updates || 0),
  dash_visible: shown("#dash"),
  login_visible: shown("#login"),
  login_error: txt("#login-error"),
  status: txt("[data-testid=status]"),
  published: txt("[data-testid=tot-published]"),
  rate_in: txt("[data-testid=rate-in]"),
  backlog: txt("[data-testid=backlog]"),
  agency_row: row("[data-testid=agencies]", "agency", arguments[0]),
  queue_row: row("[data-testid=queues]", "queue", arguments[1]),
  agency_rows: document.querySelectorAll("[data-testid=agencies] tbody tr").length,
  chart_in_pixels: inPixels,
  chart_out_pixels: outPixels,
  chart_data_url_len: dataUrl.length,
  chart_hash: (() => { let h = 0; for (let i = 0; i < dataUrl.length; i++) h = (h * 31 + dataUrl.charCodeAt(i)) | 0; return h; })(),
  chart_max_in: st.chart ? st.chart.max_in : null,
  chart_bottom: r ? r.bottom : null,
  body_text: document.body.innerText,
  scroll_width: document.documentElement.scrollWidth,
  inner_width: window.innerWidth,
  inner_height: window.innerHeight,
};
"""


def number(text):
    """The integer a displayed number stands for ("1.234" -> 1234); None for "–" or None."""
    if text is None:
        return None
    digits = re.sub(r"[^0-9]", "", text)
    return int(digits) if digits else None


def browser(width, height):
    profile = tempfile.mkdtemp(prefix="lt-chromium-")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--user-data-dir=" + profile,
                 "--window-size=%d,%d" % (width, height), "--lang=vi-VN"):
        o.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    # --window-size is the outer window; make the viewport the laptop's screen exactly.
    d.set_window_size(width, height)
    inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:
        d.set_window_size(width + (width - inner[0]), height + (height - inner[1]))
    return d, profile


def wait_for(d, pred, args, timeout_s, what):
    """Poll READ_JS every 100 ms until pred(view) is true; (view, elapsed) or raise."""
    t0 = time.monotonic()
    view = None
    while time.monotonic() - t0 < timeout_s:
        view = d.execute_script(READ_JS, *args)
        if pred(view):
            return view, time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError("%s: not within %.0f s; last view: %s" % (
        what, timeout_s, json.dumps({k: v for k, v in (view or {}).items() if k != "body_text"},
                                    ensure_ascii=False)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:7401/")
    ap.add_argument("--token", required=True)
    ap.add_argument("--agency", required=True, help="id of the publishing agency")
    ap.add_argument("--queue", required=True, help="queue its messages land in")
    ap.add_argument("--count", type=int, required=True, help="messages the command publishes")
    ap.add_argument("--expect-text", action="append", default=[])
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--result")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=1366)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("a publish command is needed after --")

    report = {"checks": {}, "before": None, "after": None, "error": None}
    checks = report["checks"]
    rc = 0
    d = profile = None
    keys = (a.agency, a.queue)
    try:
        d, profile = browser(a.width, a.height)
        base = a.url.split("#")[0]

        # 1. A wrong token: an error, and no data.
        d.get(base + "#token=" + "not-the-token-" + "x" * 20)
        view, _ = wait_for(d, lambda v: v["login_visible"] and v["login_error"], keys,
                           a.timeout, "the error for a wrong token")
        checks["wrong_token_shows_error"] = bool(view["login_error"]) and not view["dash_visible"]
        checks["wrong_token_shows_no_data"] = view["updates"] == 0 and number(view["published"]) is None
        report["wrong_token_error"] = view["login_error"]
        root, ext = os.path.splitext(a.screenshot)
        d.save_screenshot(root + "-wrong-token" + ext)

        # 2. The right token: wait for two refreshes (a rate needs two samples).
        d.get("about:blank")
        d.get(base + "#token=" + a.token)
        before, _ = wait_for(d, lambda v: v["updates"] >= 2 and v["agency_row"] is not None
                             and v["queue_row"] is not None, keys, a.timeout,
                             "the dashboard's first data")
        checks["token_not_left_in_address_bar"] = "token=" not in d.current_url
        checks["login_hidden_with_data"] = before["dash_visible"] and not before["login_visible"]

        # 3. Traffic through the broker.
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=a.timeout * 4)
        report["publish_seconds"] = round(time.monotonic() - t0, 3)
        report["publish_stderr"] = p.stderr.decode("utf-8", "replace")[-500:]
        checks["publish_command_succeeded"] = p.returncode == 0

        # 4. The page catches up by itself.
        b_pub = number(before["published"])
        b_sent = number(before["agency_row"][1])
        b_depth = number(before["queue_row"][1])
        b_backlog = number(before["backlog"])

        def caught_up(v):
            return (v["agency_row"] is not None and v["queue_row"] is not None
                    and number(v["published"]) >= b_pub + a.count
                    and number(v["agency_row"][1]) >= b_sent + a.count
                    and number(v["queue_row"][1]) >= b_depth + a.count
                    and number(v["backlog"]) >= b_backlog + a.count
                    and v["chart_max_in"] is not None and v["chart_max_in"] > 0
                    and v["chart_in_pixels"] > before["chart_in_pixels"])
        try:
            after, waited = wait_for(d, caught_up, keys, a.timeout, "the page showing the traffic")
            report["seconds_until_page_showed_traffic"] = round(waited, 2)
        except TimeoutError as e:
            after = d.execute_script(READ_JS, *keys)
            report["error"] = str(e)
        checks["messages_in_grew_by_count"] = number(after["published"]) == b_pub + a.count
        checks["agency_row_sent_grew_by_count"] = (after["agency_row"] is not None and
                                                   number(after["agency_row"][1]) == b_sent + a.count)
        checks["queue_backlog_grew_by_count"] = (after["queue_row"] is not None and
                                                 number(after["queue_row"][1]) == b_depth + a.count
                                                 and number(after["backlog"]) == b_backlog + a.count)
        checks["chart_changed"] = (after["chart_hash"] != before["chart_hash"]
                                   and after["chart_in_pixels"] > before["chart_in_pixels"]
                                   and (after["chart_max_in"] or 0) > 0)

        # 5. Vietnamese names as Unicode, and the layout on a laptop screen.
        text = after["body_text"]
        missing = [t for t in a.expect_text if t not in text]
        report["missing_texts"] = missing
        checks["vietnamese_names_render"] = not missing and "\ufffd" not in text and "Ã" not in text
        checks["no_horizontal_scroll"] = after["scroll_width"] <= after["inner_width"]
        checks["cards_and_chart_above_the_fold"] = (after["chart_bottom"] is not None and
                                                    after["chart_bottom"] <= after["inner_height"])
        d.save_screenshot(a.screenshot)
        checks["screenshot_saved"] = os.path.getsize(a.screenshot) > 1000

        for v in (before, after):
            v.pop("body_text", None)
        report["before"], report["after"] = before, after
        rc = 0 if all(checks.values()) else 1
    except (WebDriverException, TimeoutError, OSError, subprocess.SubprocessError) as e:
        report["error"] = "%s: %s" % (type(e).__name__, e)
        rc = 2 if not checks else 1
        if d is not None:
            try:
                d.save_screenshot(a.screenshot)
            except WebDriverException:
                pass
    finally:
        if d is not None:
            d.quit()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
    report["passed"] = rc == 0
    out = json.dumps(report, ensure_ascii=False, indent=1)
    print(out)
    if a.result:
        with open(a.result, "w", encoding="utf-8") as f:
            f.write(out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
