/*
 * app.js - the lienthong dashboard. Plain JavaScript, no libraries, no external network:
 * every byte comes from the broker's admin server. It asks for the admin token once (kept
 * in sessionStorage, so it goes with the tab), polls the JSON API every 2 s, and draws
 * messages in/out per second on a <canvas>. Data is written with textContent only, never
 * as HTML, so agency names and rejection reasons cannot inject markup.
 *
 * A token may also be given in the URL fragment (#token=...): it is moved to
 * sessionStorage and removed from the address bar (the fragment never reaches a server).
 */
"use strict";

(function () {
  const POLL_MS = 2000;
  const HISTORY_MS = 10 * 60 * 1000; /* the chart shows the last ten minutes */
  const KEY = "lienthong.admin.token";

  const $ = (id) => document.getElementById(id);
  const state = { samples: [], timer: null, updates: 0, last: null };
  /* Read by the browser test. */
  window.__lienthong = state;

  function token() { return sessionStorage.getItem(KEY); }

  function takeFragmentToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      /* keep the page (#dossiers&token=...), drop the token */
      const rest = location.hash.replace(m[0], "").replace(/^#?&?/, "");
      history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    }
  }

  function setStatus(text, bad) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("err", !!bad);
  }

  function showLogin(message) {
    if (state.timer) { clearTimeout(state.timer); state.timer = null; }
    $("dash").hidden = true;
    $("dossiers-page").hidden = true;
    $("nav").hidden = true;
    $("logout").hidden = true;
    $("version").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function showDash() {
    $("login").hidden = true;
    $("dash").hidden = false;
    $("logout").hidden = false;
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
    if (r.status === 401) {
      const e = new Error("token refused");
      e.unauthorized = true;
      throw e;
    }
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  const nf = new Intl.NumberFormat("vi-VN");
  function num(n) { return n === undefined || n === null ? "–" : nf.format(n); }
  function rate(n) { return n >= 100 ? nf.format(Math.round(n)) : (Math.round(n * 10) / 10).toLocaleString("vi-VN"); }
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }
  function age(s) {
    if (!s) return "0 s";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " ph " + Math.floor(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " ph";
  }
  function clock(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    return d.toLocaleTimeString("vi-VN", { hour12: false });
  }
  function ms(s) { return s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s"; }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function fillTable(id, rows, render) {
    const tb = $(id).tBodies[0];
    const frag = document.createDocumentFragment();
    for (const row of rows) {
      const tr = document.createElement("tr");
      render(tr, row);
      frag.appendChild(tr);
    }
    tb.replaceChildren(frag);
  }

  function setCard(id, text, nonzero) {
    const el = $(id);
    el.textContent = text;
    el.classList.toggle("nonzero", !!nonzero);
  }

  function render(ov, agencies, queues, rejections) {
    const t = ov.totals;
    const now = ov.now_ms;
    state.samples.push({ t: now, pub: t.published, del: t.deliveries });
    while (state.samples.length > 2 && now - state.samples[0].t > HISTORY_MS) state.samples.shift();
    const n = state.samples.length;
    let rin = 0, rout = 0;
    if (n >= 2) {
      const a = state.samples[n - 2], b = state.samples[n - 1];
      const dt = Math.max((b.t - a.t) / 1000, 0.001);
      rin = Math.max(0, (b.pub - a.pub) / dt);
      rout = Math.max(0, (b.del - a.del) / dt);
    }
    setCard("rate-in", n >= 2 ? rate(rin) : "–");
    setCard("rate-out", n >= 2 ? rate(rout) : "–");
    setCard("tot-published", num(t.published));
    setCard("tot-delivered", num(t.deliveries));
    setCard("backlog", num(ov.queues.depth));
    setCard("oldest", age(ov.queues.oldest_age_seconds));
    setCard("dlq", num(ov.queues.dlq_depth), ov.queues.dlq_depth > 0);
    setCard("rejected", num(t.rejected), t.rejected > 0);
    setCard("clients", num(ov.gauges.connected_clients));
    setCard("p99", ms(ov.latency.publish_ack_p99_seconds));
    $("version").textContent = "v" + ov.version + " · chạy · up " + age(ov.uptime_seconds);

    /* The busiest first (stable: config order among equals), so active agencies stay in
       view when the table scrolls. */
    const ags = agencies.slice().sort((x, y) => y.published - x.published);
    fillTable("agencies", ags, (tr, a) => {
      tr.dataset.agency = a.id;
      if (a.rejected > 0) tr.className = "bad";
      const td = cell(tr, a.name || a.id);
      if (a.name) {
        const id = document.createElement("span");
        id.className = "id";
        id.textContent = a.id;
        td.appendChild(id);
      }
      cell(tr, num(a.published), "n");
      cell(tr, num(a.acked), "n");
      const reasons = Object.entries(a.rejects || {}).map(([k, v]) => k + " " + v).join(", ");
      const r = cell(tr, num(a.rejected), "n");
      if (reasons) r.title = reasons;
      cell(tr, bytes(a.published_bytes), "n");
      cell(tr, clock(a.last_publish_ms));
    });

    const qs = queues.slice().sort((x, y) => y.depth - x.depth || x.name.localeCompare(y.name));
    fillTable("queues", qs, (tr, q) => {
      tr.dataset.queue = q.name;
      if (q.dlq_depth > 0) tr.className = "bad";
      const td = cell(tr, q.name);
      if (q.owner) td.title = q.owner;
      cell(tr, num(q.depth), "n");
      cell(tr, num(q.unacked), "n");
      cell(tr, q.depth > 0 ? age(q.oldest_age_seconds) : "–", "n");
      cell(tr, num(q.dlq_depth), "n");
      cell(tr, num(q.deliveries), "n");
    });

    const names = new Map(agencies.map((a) => [a.id, a.name]));
    fillTable("rejections", rejections, (tr, r) => {
      cell(tr, clock(r.time_ms));
      const who = cell(tr, names.get(r.agency) || r.agency || "?");
      if (r.agency) who.title = r.agency;
      cell(tr, r.topic);
      cell(tr, r.code_name);
      cell(tr, r.reason);
    });

    drawChart();
    state.updates++;
    state.last = { overview: ov, rate_in: rin, rate_out: rout };
    document.body.dataset.updates = String(state.updates);
    setStatus("cập nhật · updated " + clock(now));
  }

  function drawChart() {
    const c = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 1300, h = c.clientHeight || 150;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const colIn = css.getPropertyValue("--in").trim() || "#1f6fd1";
    const colOut = css.getPropertyValue("--out").trim() || "#1b9e5a";

    const s = state.samples;
    const pts = [];
    for (let i = 1; i < s.length; i++) {
      const dt = Math.max((s[i].t - s[i - 1].t) / 1000, 0.001);
      pts.push({ t: s[i].t, in: Math.max(0, (s[i].pub - s[i - 1].pub) / dt), out: Math.max(0, (s[i].del - s[i - 1].del) / dt) });
    }
    const L = 56, R = 10, T = 8, B = 22;
    const pw = w - L - R, ph = h - T - B;
    let max = 4, maxIn = 0, maxOut = 0; /* an idle chart counts 0..4 in whole steps */
    for (const p of pts) { maxIn = Math.max(maxIn, p.in); maxOut = Math.max(maxOut, p.out); }
    max = Math.max(max, maxIn, maxOut);
    /* What the chart shows, for the browser test. */
    state.chart = { points: pts.length, max_in: maxIn, max_out: maxOut };
    /* Four grid steps of a round size (1, 2, 2.5 or 5 times a power of ten). */
    const raw = max / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((v) => v >= raw);
    max = step * 4;
    const tEnd = s.length ? s[s.length - 1].t : Date.now();
    const tStart = tEnd - Math.min(HISTORY_MS, Math.max(60000, s.length ? tEnd - s[0].t : 0));
    const x = (t) => L + ((t - tStart) / (tEnd - tStart || 1)) * pw;
    const y = (v) => T + ph - (v / max) * ph;

    g.font = "11px sans-serif";
    g.fillStyle = "#66707a";
    g.strokeStyle = "#dde2e7";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(L + pw, yy); g.stroke();
      g.fillText(rate(v), L - 6, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const span = tEnd - tStart;
    for (let i = 0; i <= 5; i++) {
      const t = tStart + (span * i) / 5;
      const ago = Math.round((tEnd - t) / 1000);
      g.textAlign = i === 0 ? "left" : i === 5 ? "right" : "center";
      g.fillText(ago ? "-" + ago + " s" : "0 s", x(t), T + ph + 6);
    }
    for (const [key, col] of [["in", colIn], ["out", colOut]]) {
      if (pts.length === 0) break;
      g.strokeStyle = col;
      g.lineWidth = 2;
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
      g.stroke();
    }
    if (pts.length === 0) {
      g.fillStyle = "#66707a";
      g.textBaseline = "middle";
      g.fillText("đang thu thập · collecting…", L + pw / 2, T + ph / 2);
    }
  }

  /* ---- late and near-deadline dossiers (GET /api/v1/dossiers?late=1) ---- */

  function onDossierPage() { return location.hash === "#dossiers"; }

  function dayTime(ms) {
    if (!ms) return "–";
    return new Date(ms).toLocaleString("vi-VN", { hour12: false, timeZone: "Asia/Ho_Chi_Minh",
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }

  function span(ms) {
    const m = Math.round(Math.abs(ms) / 60000);
    if (m < 60) return m + " ph";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " ph";
    return Math.floor(h / 24) + " ngày " + (h % 24) + " h";
  }

  function renderDossiers(doc) {
    const groups = (doc.agencies || []).slice().sort((a, b) => b.late - a.late || b.near - a.near);
    $("dossiers-note").textContent = doc.count === 0
      ? "Không có hồ sơ trễ hạn hay sắp đến hạn · no dossier is late or near its deadline"
      : doc.count + " hồ sơ · dossiers, " + groups.length + " cơ quan · agencies";
    const cards = document.createDocumentFragment();
    const rows = [];
    for (const g of groups) {
      const c = document.createElement("div");
      c.className = "card agency" + (g.late ? " late" : "");
      const k = document.createElement("div");
      k.className = "k";
      k.textContent = g.name || g.agency;
      const en = document.createElement("span");
      en.className = "en";
      en.textContent = g.agency;
      k.appendChild(en);
      const v = document.createElement("div");
      v.className = "v";
      v.textContent = num(g.late);
      const sub = document.createElement("span");
      sub.textContent = "trễ · late, " + num(g.near) + " sắp · near";
      v.appendChild(sub);
      c.append(k, v);
      cards.appendChild(c);
      for (const d of g.dossiers) rows.push(Object.assign({ agencyName: g.name || g.agency }, d));
    }
    $("dossier-agencies").replaceChildren(cards);
    rows.sort((a, b) => a.step_deadline_ms - b.step_deadline_ms);
    fillTable("dossiers", rows, (tr, d) => {
      cell(tr, d.agencyName);
      const c = cell(tr, d.dossier);
      c.title = "lienthong trace " + d.dossier;
      const p = cell(tr, d.procedure);
      const pn = document.createElement("span");
      pn.className = "id";
      pn.textContent = d.procedure_name;
      p.appendChild(pn);
      const s = cell(tr, d.step);
      const sn = document.createElement("span");
      sn.className = "id";
      sn.textContent = d.step_name;
      s.appendChild(sn);
      cell(tr, d.status + " " + d.status_name);
      cell(tr, dayTime(d.step_deadline_ms));
      cell(tr, (d.late ? "trễ · late " : "còn · left ") + span(d.overdue_ms), "n " + (d.late ? "late" : "near"));
    });
  }

  async function pollDossiers() {
    const r = await fetch("/api/v1/dossiers?late=1&within_h=" + encodeURIComponent($("within").value),
      { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
    if (r.status === 401) {
      const e = new Error("token refused");
      e.unauthorized = true;
      throw e;
    }
    if (r.status === 404) { /* no procedures on this broker */
      $("dossiers-note").textContent = "Máy chủ này chưa cấu hình thủ tục · no procedures are configured (broker.yaml procedures:)";
      $("dossier-agencies").replaceChildren();
      fillTable("dossiers", [], () => {});
      return;
    }
    if (!r.ok) throw new Error("dossiers: HTTP " + r.status);
    renderDossiers(await r.json());
    state.dossierUpdates = (state.dossierUpdates || 0) + 1;
  }

  function showPage() {
    const d = onDossierPage();
    $("nav").hidden = false;
    $("nav-overview").classList.toggle("on", !d);
    $("nav-dossiers").classList.toggle("on", d);
    $("dossiers-page").hidden = !d;
    return d;
  }

  async function poll() {
    state.timer = null;
    if (token() && showPage()) {
      try {
        $("login").hidden = true;
        $("dash").hidden = true;
        $("logout").hidden = false;
        await pollDossiers();
        setStatus("cập nhật · updated " + clock(Date.now()), false);
      } catch (e) {
        if (e.unauthorized) {
          sessionStorage.removeItem(KEY);
          $("dossiers-page").hidden = true;
          showLogin("Mã không đúng · the token was refused");
          return;
        }
        setStatus("lỗi · error: " + e.message, true);
      }
      state.timer = setTimeout(poll, POLL_MS);
      return;
    }
    try {
      const [ov, ag, qs, rj] = await Promise.all([
        api("/api/v1/overview"), api("/api/v1/agencies"), api("/api/v1/queues"),
        api("/api/v1/rejections?limit=50"),
      ]);
      showDash();
      render(ov, ag, qs, rj);
    } catch (e) {
      if (e.unauthorized) {
        sessionStorage.removeItem(KEY);
        showLogin("Mã không đúng · the token was refused");
        return;
      }
      setStatus("lỗi · error: " + e.message, true);
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    takeFragmentToken();
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      poll();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      state.samples = [];
      showLogin("");
    });
    window.addEventListener("resize", drawChart);
    window.addEventListener("hashchange", () => {
      if (state.timer) { clearTimeout(state.timer); state.timer = null; }
      if (token()) poll();
    });
    $("within").addEventListener("change", () => { if (token()) pollDossiers().catch(() => {}); });
    if (token()) poll();
    else showLogin("");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
