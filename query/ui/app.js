// The live view of the audit trail. No dependencies, no build step.
//
// Everything shown comes from audit records, which hold what clients sent
// (paths, headers, names): it is put on the page with textContent only,
// never as HTML, and links are built only from trace ids that are 32 hex
// digits.
"use strict";
(function () {
  const TOKEN_KEY = "slogaudit.token";
  const MAX_ROWS = 1000;
  const BACKLOG = 200;
  const body = document.body;
  const traceURL = body.dataset.traceUrl || "";
  const streamURL = body.dataset.stream || "stream";
  const $ = (id) => document.getElementById(id);
  const tbody = document.querySelector("#events tbody");

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let ctrl = null;       // aborts the current stream
  let lastSeq = 0;       // of the newest event shown: where a reconnect resumes
  let generation = 0;    // bumps when the filters change, ending older loops
  let live = false;

  function setState(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "state " + (cls || "");
  }

  function showLogin(msg) {
    if (ctrl) ctrl.abort();
    $("app").hidden = true;
    $("login").hidden = false;
    $("signout").hidden = true;
    $("who").textContent = "";
    $("login-error").textContent = msg || "";
    $("token").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = "signed in";
  }

  function filterParams() {
    const p = new URLSearchParams();
    const f = $("filters").elements;
    for (const name of ["event", "action", "resource", "principal", "client", "status"]) {
      const v = f[name].value.trim();
      if (v) p.set(name, v);
    }
    for (const name of ["since", "until"]) {
      const v = f[name].value;
      if (v) {
        const d = new Date(v); // datetime-local is local time
        if (!isNaN(d)) p.set(name, d.toISOString().replace(/\.\d{3}Z$/, "Z"));
      }
    }
    return p;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    if (text != null && String(text).length > 40) td.title = String(text);
    tr.appendChild(td);
    return td;
  }

  function traceLink(id) {
    if (!/^[0-9a-f]{32}$/.test(id || "")) return null;
    if (!traceURL) {
      const s = document.createElement("span");
      s.textContent = id.slice(0, 8) + "…";
      s.title = id;
      return s;
    }
    const a = document.createElement("a");
    a.href = traceURL.split("{trace_id}").join(id);
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = id.slice(0, 8) + "…";
    a.title = "trace " + id;
    a.className = "trace";
    a.addEventListener("click", (e) => e.stopPropagation());
    return a;
  }

  function str(v) { return typeof v === "string" ? v : v == null ? "" : JSON.stringify(v); }

  function addRow(ev, fresh) {
    const tr = document.createElement("tr");
    tr.className = "ev";
    const status = str(ev.status);
    if (ev.event === "security_alert") tr.classList.add("alert");
    else if (status === "failed" || status === "denied") tr.classList.add("bad");
    if (fresh) tr.classList.add("new");
    tr.dataset.seq = ev.seq;
    tr.dataset.event = str(ev.event);
    tr.dataset.action = str(ev.action);
    tr.dataset.status = status;
    tr.dataset.verified = ev.verified ? "true" : "false";
    const t = str(ev.time);
    cell(tr, t ? t.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1") : "", "time");
    cell(tr, ev.seq, "seq");
    const v = cell(tr, ev.verified ? "✓" : "✗", ev.verified ? "ok" : "nok");
    v.title = ev.verified ? "chain link verified (" + ev.file + " line " + ev.line + ")" : "NOT verified: run auditctl verify";
    cell(tr, ev.level);
    cell(tr, ev.event, "event");
    cell(tr, ev.action, "action");
    const res = ev.resource_type ? str(ev.resource_type) + "/" + str(ev.resource) : str(ev.resource);
    cell(tr, res, "resource");
    cell(tr, status, "status");
    cell(tr, ev["user.id"], "principal");
    cell(tr, ev["client.address"] || ev["client.claimed_id"], "client");
    let msg = str(ev.msg);
    if (ev.event === "security_alert" && ev.alert && Array.isArray(ev.alert.trace_ids)) {
      msg += " — traces: " + ev.alert.trace_ids.length;
    }
    cell(tr, msg, "msg");
    const tc = cell(tr, "", "trace");
    const link = traceLink(ev.trace_id);
    if (link) tc.appendChild(link);
    tr.addEventListener("click", () => toggleDetail(tr, ev));
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
    $("empty").hidden = true;
    $("count").textContent = tbody.querySelectorAll("tr.ev").length + " events shown";
  }

  function toggleDetail(tr, ev) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("detail")) { next.remove(); return; }
    const d = document.createElement("tr");
    d.className = "detail";
    const td = document.createElement("td");
    td.colSpan = 12;
    td.textContent = JSON.stringify(ev, null, 2);
    if (ev.alert && Array.isArray(ev.alert.trace_ids)) {
      const p = document.createElement("div");
      p.textContent = "triggering traces: ";
      for (const id of ev.alert.trace_ids) {
        const l = traceLink(id);
        if (l) { p.appendChild(l); p.appendChild(document.createTextNode(" ")); }
      }
      td.appendChild(p);
    }
    d.appendChild(td);
    tr.after(d);
  }

  // One SSE event (its lines) from the stream.
  function dispatch(block, gen) {
    let event = "message", data = "", id = "";
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (gen !== generation) return;
    if (event === "audit") {
      const ev = JSON.parse(data);
      addRow(ev, live);
      if (id) lastSeq = Number(id);
    } else if (event === "live") {
      live = true;
      setState("live", "live");
      if (!tbody.rows.length) $("empty").hidden = false;
    } else if (event === "retracted") {
      // Records shown that the writer rolled back (its fsync failed): not in
      // the trail. The records that took their seqs follow; a reconnect
      // resumes before them.
      const r = JSON.parse(data);
      const seqs = Array.isArray(r.seqs) ? r.seqs.map(Number) : [];
      for (const tr of tbody.querySelectorAll("tr.ev")) {
        if (seqs.includes(Number(tr.dataset.seq)) && !tr.classList.contains("retracted")) {
          tr.classList.add("retracted");
          tr.title = "rolled back by the writer: not in the audit trail";
        }
      }
      if (seqs.length) lastSeq = Math.min(lastSeq, Math.min(...seqs) - 1);
      setState("rolled back by the writer, not in the trail: seq " + seqs.join(", ") + " (" + str(r.file) + ")", "down");
    } else if (event === "unreadable") {
      // A damaged file was skipped: its events past the damage are missing;
      // or (with an error) one line of it too long to read.
      const u = JSON.parse(data);
      if (u.error) setState("unreadable line passed over in " + str(u.file) + ": " + str(u.error) + " (run auditctl verify)", "down");
      else setState("damaged audit file skipped: " + str(u.file) + " (run auditctl verify)", "down");
    }
  }

  // connect reads the stream with fetch(), which can send the token in a
  // header (EventSource cannot; a token in the URL would end up in logs),
  // and parses the SSE frames itself. It reconnects after errors, resuming
  // after the last seq shown.
  async function connect(gen) {
    while (gen === generation) {
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const p = filterParams();
      if (lastSeq > 0) p.set("after", String(lastSeq));
      else p.set("backlog", String(BACKLOG));
      live = false;
      setState("connecting");
      let res;
      try {
        res = await fetch(streamURL + "?" + p.toString(), {
          headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
          cache: "no-store", signal: ctrl.signal,
        });
      } catch (e) {
        if (gen !== generation) return;
        setState("disconnected, retrying", "down");
        await sleep(2000);
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = "";
        showLogin(res.status === 401 ? "The token was not accepted." : "This token may not read the audit log.");
        return;
      }
      if (!res.ok) {
        let msg = "HTTP " + res.status;
        try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
        setState("error: " + msg, "down");
        if (res.status === 400) return; // a bad filter: wait for new ones
        await sleep(3000);
        continue;
      }
      try {
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            dispatch(buf.slice(0, i), gen);
            buf = buf.slice(i + 2);
          }
        }
      } catch (e) {
        if (gen !== generation) return;
      }
      if (gen !== generation) return;
      setState("disconnected, retrying", "down");
      await sleep(1000);
    }
  }

  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  function restart() {
    generation++;
    lastSeq = 0;
    tbody.textContent = "";
    $("count").textContent = "";
    $("empty").hidden = true;
    connect(generation);
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    // Check the token against the page itself: 200 means it may read the
    // audit log (and the access is audited as such).
    let res;
    try {
      res = await fetch(location.pathname, { headers: { Authorization: "Bearer " + t }, cache: "no-store" });
    } catch (err) {
      $("login-error").textContent = "Cannot reach the server.";
      return;
    }
    if (res.status === 401) { $("login-error").textContent = "The token was not accepted."; return; }
    if (res.status === 403) { $("login-error").textContent = "This token may not read the audit log."; return; }
    if (!res.ok) { $("login-error").textContent = "HTTP " + res.status; return; }
    token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    showApp();
    restart();
  });

  $("signout").addEventListener("click", () => {
    generation++;
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    tbody.textContent = "";
    showLogin();
  });

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); restart(); });
  $("clear").addEventListener("click", () => { $("filters").reset(); restart(); });

  if (token) { showApp(); restart(); } else { showLogin(); }
})();
