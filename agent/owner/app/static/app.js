// The owner's page: a thin face on the server's JSON API (agent/owner/app/server.py).
// Everything shown was verified by the server with the device's key; nothing here holds a key.
const CSRF = document.querySelector('meta[name="csrf"]').content;
const $ = (id) => document.getElementById(id);
const state = { device: null, page: 0, pages: 1, me: null, events: new Map(), notify: false };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function banner(text) {
  const b = $("banner");
  b.textContent = text || "";
  b.hidden = !text;
}

async function api(path, body) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-Doorward-CSRF"] = CSRF;
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new Error("the app's server does not answer: is `doorward owner app` still running?");
  }
  if (res.status === 401) throw new Error("signed out: open the address `doorward owner app` printed");
  const doc = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(doc.error || `HTTP ${res.status}`);
  return doc;
}

const dev = () => encodeURIComponent(state.device);
const when = (t) => (t ? new Date(typeof t === "number" ? t * 1000 : t).toLocaleString() : "—");
const expiry = (g) => (g.expires_at ? `until ${when(g.expires_at)}` : "until revoked");

// ---- pages -------------------------------------------------------------------------------------
const loaders = { now: loadNow, clips: loadClips, consent: loadConsent, ledger: loadLedger,
                  members: loadMembers, pair: () => {} };

function show() {
  const hash = location.hash.slice(1);
  const [name, arg] = hash.split("=");
  const page = loaders[name] ? name : "now";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== `page-${page}`;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!state.device && page !== "pair") {
    banner("no paired device yet: pair one on the Pairing page");
    return;
  }
  loaders[page](arg).catch((e) => banner(e.message));
}

async function start() {
  state.me = await api("/api/me");
  const sel = $("device");
  sel.replaceChildren(...state.me.devices.map((d) => h("option", { value: d.device_id }, d.device_id)));
  state.device = state.me.devices[0]?.device_id || null;
  sel.addEventListener("change", () => { state.device = sel.value; show(); });
  window.addEventListener("hashchange", show);
  wire();
  live();
  show();
}

// ---- Now ---------------------------------------------------------------------------------------
async function loadNow() {
  const now = await api("/api/now");
  const down = now.brokers.filter((b) => !b.connected);
  if (down.length) {
    banner(`the broker ${down[0].url} is unreachable (${down[0].error}): check that it runs and ` +
           "that this computer can reach it; the live feed and commands wait for it");
  } else banner("");
  $("devices").replaceChildren(...now.devices.map((d) => {
    const s = d.status || {};
    const online = s.state === "online";
    return h("div", { class: "card", "data-device": d.device_id },
      h("strong", {}, d.device_id), " ",
      h("span", { class: `badge ${online ? "ok" : "bad"}` }, s.state || "unknown"),
      h("div", { class: "muted" }, `version ${s.version || "?"} · last seen ${when(s.last_seen)}`),
      h("div", { class: "muted" }, `fingerprint ${d.fingerprint}`),
      h("div", { class: "muted" }, d.pin ? `ledger pinned: ${d.pin}` : "ledger not pinned yet"),
      h("button", { type: "button", class: "live-button", onclick: () => openLive(d.device_id) }, "Live"));
  }));
  for (const e of now.events.slice().reverse()) addEvent(e);
  api(`/api/devices/${dev()}/consent`).then((c) => {
    $("now-consent").replaceChildren(grantList(c));
  }).catch((e) => { $("now-consent").textContent = e.message; });
  api(`/api/devices/${dev()}/ledger`).then((l) => {
    $("now-members").replaceChildren(h("ul", {}, l.members.map((m) =>
      h("li", {}, `${m.role || "member"} ${m.key_id}`, m.key_id === state.me.key_id ? " (you)" : ""))));
  }).catch((e) => { $("now-members").textContent = e.message; });
}

function grantList(c) {
  if (!c.grants || !c.grants.length) return h("p", { class: "warn" }, "no consent in force: nothing leaves the device");
  return h("ul", { class: "grants" }, c.grants.map((g) =>
    h("li", { "data-scope": g.scope }, h("strong", {}, g.scope), ` ${expiry(g)}`)));
}

// ---- the live feed -----------------------------------------------------------------------------
function live() {
  const src = new EventSource("/api/events");
  src.onopen = () => { $("live-state").textContent = "live: events appear as the device sends them"; };
  src.onerror = () => { $("live-state").textContent = "live feed interrupted: reconnecting…"; };
  src.addEventListener("event", (m) => addEvent(JSON.parse(m.data), true));
  src.addEventListener("rejected", (m) => addEvent(JSON.parse(m.data), true));
  src.addEventListener("snapshot", (m) => {
    const s = JSON.parse(m.data);
    const e = state.events.get(s.id);
    if (e) { e.snapshot = s.snapshot; render(e); if (e.kind === "ring") ringNotice(e); }
  });
  src.addEventListener("status", () => { if (!$("page-now").hidden) loadNow().catch(() => {}); });
}

function addEvent(e, fresh = false) {
  if (state.events.has(e.id)) return;
  state.events.set(e.id, e);
  render(e);
  if (fresh && e.kind === "ring") {
    // a notification with the picture when it comes; without one if it takes too long
    setTimeout(() => ringNotice(e), 5000);
  }
}

function render(e) {
  const ring = e.kind === "ring";
  const label = e.type === "rejected" ? `rejected: ${e.reason}` :
    ring ? "Someone rang" : (e.kind || e.typ);
  e.shownAt = e.shownAt || Date.now();  // when the page showed it (the benchmark reads these)
  const img = e.snapshot ? h("img", { src: e.snapshot, alt: `picture of ${label}` })
                         : h("img", { alt: "no picture yet", src: "data:," });
  if (e.snapshot) {
    img.addEventListener("load", () => {
      e.snapshotAt = e.snapshotAt || Date.now();
      li.dataset.snapshotAt = e.snapshotAt;
    });
  }
  const li = h("li", { id: `ev-${e.id}`, class: `${ring ? "ring" : ""} ${e.type === "rejected" ? "bad" : ""}`,
                       "data-kind": e.kind || e.type, "data-at": e.at || "",
                       "data-event-id": e.event_id || null,
                       "data-shown-at": e.shownAt, "data-snapshot-at": e.snapshotAt || null },
    img,
    h("div", {},
      h("div", { class: "kind" }, label),
      h("div", { class: "muted" }, `${when(e.at || e.received_at)} · ${e.device_id}` +
        (e.clip_id ? ` · clip ${e.clip_id}` : "") + (e.seq ? ` · #${e.seq}` : "")),
      e.chain && e.chain.length ? h("div", { class: "warn" }, `chain: ${e.chain.join("; ")}`) : null,
      e.clip_id ? h("a", { href: `#clips=${encodeURIComponent(e.clip_id)}` }, "open clip") : null,
      ring && e.device_id ? h("button", { type: "button", class: "live-button", onclick: () => openLive(e.device_id) }, "Live") : null));
  const old = $(`ev-${e.id}`);
  if (old) old.replaceWith(li);
  else $("feed").prepend(li);
}

function ringNotice(e) {
  if (!state.notify || e.notified || Notification.permission !== "granted") return;
  e.notified = true;
  new Notification("Someone rang at the door", {
    body: `${e.device_id} at ${when(e.at)}`, icon: e.snapshot || undefined,
    image: e.snapshot || undefined, tag: `ring-${e.id}` });
}

// ---- Clips -------------------------------------------------------------------------------------
async function loadClips(open, refresh = false) {
  const doc = await api(`/api/devices/${dev()}/clips?page=${state.page}${refresh ? "&refresh=1" : ""}`);
  state.pages = doc.pages;
  const c = doc.chain;
  $("chain").className = `box ${c.ok ? "ok" : "bad"}`;
  $("chain").textContent = c.ok
    ? `${doc.total} clip(s): every manifest is signed by ${doc.device_id} and the chain is unbroken`
    : `PROBLEMS: ${doc.unverified.length} manifest(s) failed verification` +
      (c.missing.length ? `; missing from the chain: ${c.missing.map((r) => r.join("–")).join(", ")}` : "") +
      (c.broken.length ? `; broken links at ${c.broken.join(", ")}` : "");
  $("unverified").replaceChildren(...doc.unverified.map((k) =>
    h("li", { class: "unverified", "data-key": k },
      `failed verification, not played: ${k.split("/").pop()} (not signed by this device, or altered)`)));
  const recording = doc.page === 0 ? doc.in_progress.map((p) => h("li", { class: "recording", "data-clip": p.clip_id },
    h("strong", {}, "being recorded"), h("br"),
    `${p.segments} segment(s) sealed so far, last at ${when(p.updated_at)}; ` +
    "`doorward owner clips fetch` gives what arrived")) : [];
  $("clips").replaceChildren(...recording, ...doc.clips.map((r) => h("li", { "data-clip": r.clip_id },
    h("button", { type: "button", onclick: () => play(r), "aria-label": `play clip ${r.clip_id}` },
      r.snapshot ? h("img", { loading: "lazy", alt: "",
        src: `/api/devices/${dev()}/clips/${encodeURIComponent(r.clip_id)}/snapshot` }) : h("span", {}, "no picture"),
      h("span", {}, h("strong", {}, when(r.started_at)), h("br"),
        `${(r.duration_s ?? 0).toFixed(1)} s · #${r.seq}` + (r.truncated ? " · cut short" : "") +
        (r.video ? "" : " · picture only"))))));
  $("pageinfo").textContent = `page ${doc.page + 1} of ${doc.pages}`;
  $("prev").disabled = doc.page <= 0;
  $("next").disabled = doc.page + 1 >= doc.pages;
  if (open) {
    const r = doc.clips.find((x) => x.clip_id === decodeURIComponent(open));
    if (r) play(r);
    else banner(`clip ${decodeURIComponent(open)} is not on this page or has no verified manifest yet`);
  }
}

function play(r) {
  const base = `/api/devices/${dev()}/clips/${encodeURIComponent(r.clip_id)}`;
  $("player").hidden = false;
  $("player").scrollIntoView({ block: "start" });
  $("player-title").textContent = `${when(r.started_at)} · ${(r.duration_s ?? 0).toFixed(1)} s`;
  const v = $("video");
  v.dataset.clip = r.clip_id;
  v.dataset.duration = r.duration_s ?? "";
  if (r.video) { v.src = `${base}/video`; v.hidden = false; }
  else { v.removeAttribute("src"); v.hidden = true; }
  $("download").href = `${base}/video?download=1`;
  $("export").href = `${base}/export`;
  v.focus();
  v.play().catch(() => {});
}

// ---- Consent -----------------------------------------------------------------------------------
async function loadConsent() {
  $("grants").textContent = "asking the device…";
  const c = await api(`/api/devices/${dev()}/consent`);
  $("grants").replaceChildren(grantList(c));
}

function checked(form) {
  return [...form.querySelectorAll('input[name="scope"]:checked')].map((i) => i.value);
}

async function consentCall(path, body) {
  $("consent-reply").textContent = "sending the signed command…";
  try {
    const r = await api(`/api/devices/${dev()}/consent/${path}`, body);
    $("consent-reply").textContent = `the device answered:\n${JSON.stringify(r, null, 2)}`;
    $("grants").replaceChildren(grantList(r));
  } catch (e) { $("consent-reply").textContent = e.message; }
}

// ---- Ledger and members ------------------------------------------------------------------------
async function loadLedger() {
  $("ledger-verdict").textContent = "fetching the ledger with a signed command and verifying it…";
  const l = await api(`/api/devices/${dev()}/ledger`);
  const v = $("ledger-verdict");
  v.className = `box ${l.ok ? "ok" : "bad"}`;
  v.replaceChildren(
    h("strong", {}, l.ok ? "verified" : (l.rollback ? "ROLLBACK: do not trust this history" : "FAILED verification")),
    h("ul", {}, [...l.problems.map((p) => h("li", { class: "bad" }, p)),
                 ...l.notes.map((n) => h("li", {}, n)),
                 l.pinned ? h("li", {}, l.pinned) : null]));
  $("ledger-rows").replaceChildren(...l.entries.map((e) => {
    const d = e.data || {};
    const link = d.clip_id ? h("a", { href: `#clips=${encodeURIComponent(d.clip_id)}` }, `clip ${d.clip_id}`) : null;
    return h("tr", { "data-kind": e.kind },
      h("td", {}, e.seq), h("td", {}, when(e.ts)), h("td", {}, e.kind),
      h("td", {}, link, link ? " " : "", summary(e.kind, d)));
  }));
  return l;
}

function summary(kind, d) {
  if (kind.startsWith("consent")) return `${(d.scopes || ["all"]).join(", ")}` + (d.expires_at ? ` until ${when(d.expires_at)}` : "") + (d.by ? ` by ${d.by}` : "");
  if (kind === "disclosure") return `${d.scope} to ${d.bucket}: ${(d.objects || []).length} object(s)`;
  const { by, jti, ctr, ...rest } = d;
  return JSON.stringify(rest).slice(0, 300);
}

async function loadMembers() {
  const l = await api(`/api/devices/${dev()}/ledger`);
  $("members").replaceChildren(...l.members.map((m) => h("li", { "data-key": m.key_id },
    h("strong", {}, m.role || "member"), h("code", {}, m.key_id), m.key_id === state.me.key_id ? " (you)" : "",
    m.key_id === state.me.key_id ? null : h("button", { type: "button", class: "danger",
      onclick: () => memberCall("members/remove", { key_id: m.key_id }) }, `Remove ${m.key_id}`))));
}

async function memberCall(path, body) {
  $("member-reply").textContent = "sending the signed command…";
  try {
    const r = await api(`/api/devices/${dev()}/${path}`, body);
    $("member-reply").textContent = `the device answered:\n${JSON.stringify(r, null, 2)}`;
    await loadMembers();
  } catch (e) { $("member-reply").textContent = e.message; }
}

// ---- live view (issue 17) ----------------------------------------------------------------------
// The server signs liveView.start, verifies and decrypts; the socket brings {"codec"}, the init
// segment, then one fMP4 fragment per frame, which Media Source Extensions play. Closing the
// dialog closes the socket: the server sends liveView.stop and the device ends the session.
const liveView = { ws: null, ms: null, sb: null, queue: [] };

function openLive(deviceId) {
  closeLive();
  const video = $("live-video");
  const status = $("live-status");
  status.textContent = `asking ${deviceId} for live view…`;
  $("live-dialog").showModal();
  const ms = new MediaSource();
  liveView.ms = ms;
  video.src = URL.createObjectURL(ms);
  ms.addEventListener("sourceopen", () => {
    const url = `ws://${location.host}/api/devices/${encodeURIComponent(deviceId)}/live?seconds=3600`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    liveView.ws = ws;
    ws.onmessage = (m) => {
      if (typeof m.data === "string") {
        const doc = JSON.parse(m.data);
        if (doc.codec) {
          const type = `video/mp4; codecs="${doc.codec}"`;
          if (!MediaSource.isTypeSupported(type)) { status.textContent = `this browser cannot play ${type}`; ws.close(); return; }
          liveView.sb = ms.addSourceBuffer(type);
          liveView.sb.addEventListener("updateend", pump);
          status.textContent = `live from ${deviceId}: sealed to you, signed by the device`;
        } else if (doc.error) status.textContent = doc.error;
        else if (doc.end) status.textContent = `ended (${doc.end})`;
        return;
      }
      liveView.queue.push(m.data);
      pump();
    };
    ws.onclose = () => { if (liveView.ws === ws) liveView.ws = null; };
  }, { once: true });
}

function pump() {
  const sb = liveView.sb;
  if (!sb || sb.updating || !liveView.queue.length) return;
  const video = $("live-video");
  const b = sb.buffered;
  if (b.length && b.end(b.length - 1) - video.currentTime > 1.5) video.currentTime = b.end(b.length - 1) - 0.2;  // stay live
  try { sb.appendBuffer(liveView.queue.shift()); } catch (e) { $("live-status").textContent = `cannot play: ${e.message}`; }
}

function closeLive() {
  if (liveView.ws) liveView.ws.close();
  liveView.ws = null; liveView.sb = null; liveView.queue = [];
  const video = $("live-video");
  video.pause(); video.removeAttribute("src"); video.load();
}

// ---- wiring ------------------------------------------------------------------------------------
function wire() {
  $("live-close").addEventListener("click", () => { closeLive(); $("live-dialog").close(); });
  $("live-dialog").addEventListener("close", closeLive);
  $("clips-refresh").addEventListener("click", () => loadClips(null, true).catch((e) => banner(e.message)));
  $("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadClips().catch((e) => banner(e.message)); });
  $("next").addEventListener("click", () => { state.page += 1; loadClips().catch((e) => banner(e.message)); });
  $("player-close").addEventListener("click", () => { const v = $("video"); v.pause(); v.removeAttribute("src"); v.load(); $("player").hidden = true; });
  $("ledger-refresh").addEventListener("click", () => loadLedger().catch((e) => banner(e.message)));
  $("grant-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const until = f.until_revoked.checked;
    consentCall("grant", { scopes: checked(f), days: until ? null : Number(f.days.value), until_revoked: until });
  });
  $("revoke-form").addEventListener("submit", (ev) => { ev.preventDefault(); consentCall("revoke", { scopes: checked(ev.target) }); });
  $("revoke-all").addEventListener("click", () => consentCall("revoke", { scopes: null }));
  $("member-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    memberCall("members", { public_key: f.public_key.value, recipient: f.recipient.value, role: f.role.value });
  });
  $("pair-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const body = Object.fromEntries(new FormData(f).entries());
    $("pair-wait").hidden = false;
    $("pair-reply").textContent = "";
    f.querySelector("button").disabled = true;
    try {
      const d = await api("/api/pair", body);
      $("pair-reply").textContent = `paired with ${d.device_id} (fingerprint ${d.fingerprint}). Reload the page to see it.`;
    } catch (e) { $("pair-reply").textContent = e.message; }
    finally { $("pair-wait").hidden = true; f.querySelector("button").disabled = false; }
  });
  $("notify").addEventListener("click", async () => {
    if (!("Notification" in window)) { banner("this browser has no notifications"); return; }
    const p = await Notification.requestPermission();
    state.notify = p === "granted";
    $("notify").textContent = state.notify ? "Notifications on" : "Notifications blocked";
  });
  if ("Notification" in window && Notification.permission === "granted") {
    state.notify = true;
    $("notify").textContent = "Notifications on";
  }
}

// ---- Requests (footage requests from third parties, issue 16) ---------------------------------
loaders.requests = loadRequests;

async function loadRequests() {
  $("requests-reply").textContent = "asking the device with a signed command…";
  const r = await api(`/api/devices/${dev()}/requests`);
  $("requests-reply").textContent = r.clips_checked ? "" : "start the app with --bucket to see the clips in each window";
  const counted = Object.entries(r.counted || {});
  $("requests-counted").hidden = !counted.length;
  $("requests-counted").textContent = counted.map(([k, n]) => `${n} request(s) ${k.replace("_", "-")}: counted, not stored`).join("; ");
  $("requests").replaceChildren(...r.requests.map((q) => {
    const who = q.requester || { name: "?", key_id: "?" };
    const boxes = q.clips.map((c) => h("label", {}, h("input", { type: "checkbox", name: "clip", value: c, checked: true }), ` ${c} `));
    const days = h("input", { type: "number", min: 1, max: 7, value: 2, "aria-label": "days" });
    const reason = h("input", { type: "text", placeholder: "reason (optional, sent sealed)", "aria-label": "reason" });
    const pending = q.state === "pending";
    return h("li", { "data-request": q.id, class: `box ${q.state}` },
      h("strong", {}, who.name), " ", h("code", {}, who.key_id), ` — ${q.state}`,
      h("div", {}, `window ${when(q.from)} … ${when(q.to)}`, q.case ? `, case ${q.case}` : ""),
      h("div", {}, h("em", {}, q.reason || "(sealed to another owner key)")),
      h("div", {}, q.clips.length ? boxes : "no clips in this window"),
      pending ? h("div", {},
        q.clips.length ? h("button", { type: "button", onclick: () => decide(q.id, "approve", {
          clips: [...document.querySelectorAll(`li[data-request="${q.id}"] input[name=clip]:checked`)].map((b) => b.value),
          days: Number(days.value) }) }, "Approve checked clips for ") : null,
        q.clips.length ? days : null, q.clips.length ? " day(s) " : null,
        reason, h("button", { type: "button", class: "danger", onclick: () => decide(q.id, "deny", { reason: reason.value || null }) }, "Deny"))
        : h("div", { class: "muted" }, q.approved.length ? `approved: ${q.approved.join(", ")}` : ""));
  }));
}

async function decide(id, action, body) {
  $("requests-reply").textContent = "sending…";
  try {
    const r = await api(`/api/devices/${dev()}/requests/${encodeURIComponent(id)}/${action}`, body);
    await loadRequests();
    $("requests-reply").textContent = `done:\n${JSON.stringify(r, null, 2)}`;
  } catch (e) { $("requests-reply").textContent = e.message; }
}

document.addEventListener("DOMContentLoaded", () => {
  $("requests-refresh").addEventListener("click", () => loadRequests().catch((e) => banner(e.message)));
});
// ---- end Requests -------------------------------------------------------------------------------

start().catch((e) => banner(e.message));
