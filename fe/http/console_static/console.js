// tabletsim console: polls /api/console/state and redraws itself. Plain JS, inline SVG sparklines.
"use strict";

const POLL_MS = 1500;
const LEGEND = {
  healthy: "healthy",
  version: "missing versions",
  dead: "BE dead / bad",
  cloning: "being cloned",
  decommission: "decommissioning",
  missing: "replica missing",
};
const SCHED_COLUMNS = [
  ["TabletId", "tablet"], ["Type", "type"], ["Status", "status"], ["State", "state"],
  ["DynmPrio", "prio"], ["SrcBe", "src BE"], ["DestBe", "dest BE"], ["Create", "created"],
  ["Finished", "finished"], ["Rate", "rate"], ["FailedRunning", "fails"], ["ErrMsg", "message"],
];

const shown = {};  // element id -> the HTML last set: unchanged parts are not redrawn (tooltips stay)
let lastState = null;

function $(id) { return document.getElementById(id); }

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function put(id, html) {
  if (shown[id] !== html) {
    $(id).innerHTML = html;
    shown[id] = html;
  }
}

function num(n, digits = 0) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${num(seconds, seconds < 10 ? 1 : 0)} s ago`;
  if (seconds < 5400) return `${num(seconds / 60)} min ago`;
  return `${num(seconds / 3600, 1)} h ago`;
}

function pill(text, cls) { return `<span class="pill ${esc(cls || text)}">${esc(text)}</span>`; }

// ---- sparklines: an inline SVG of [[time ms, value], ...] over the last windowMs -----------------
// The x axis spans the samples kept (at least MIN_SPAN_MS, at most windowMs), ending now.
const MIN_SPAN_MS = 60 * 1000;

function spanMs(points, now, windowMs) {
  const first = points && points.length ? points[0][0] : now;
  return Math.min(windowMs, Math.max(MIN_SPAN_MS, now - first));
}

function spanText(ms) {
  return ms >= 90 * 1000 ? `${Math.round(ms / 60000)} min` : `${Math.round(ms / 1000)} s`;
}

function sparkline(points, opts) {
  const w = opts.width || 150, h = opts.height || 28, pad = 2;
  const end = opts.now, start = end - spanMs(points, end, opts.windowMs);
  const pts = (points || []).filter((p) => p[0] >= start);
  const max = Math.max(opts.min || 1, ...pts.map((p) => p[1]));
  const x = (t) => pad + ((t - start) / (end - start)) * (w - 2 * pad);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  let body = `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#e3e7ee" stroke-width="1"/>`;
  if (pts.length > 1) {
    const line = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const first = x(pts[0][0]).toFixed(1), last = x(pts[pts.length - 1][0]).toFixed(1);
    body += `<polygon points="${first},${h - pad} ${line} ${last},${h - pad}" fill="${opts.color}" fill-opacity="0.12"/>`;
    body += `<polyline points="${line}" fill="none" stroke="${opts.color}" stroke-width="1.5" stroke-linejoin="round"/>`;
  }
  const title = opts.title
    ? `<title>${esc(opts.title)}, last ${spanText(end - start)} (max ${num(max, 1)})</title>` : "";
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">${title}${body}</svg>`;
}

// ---- sections ------------------------------------------------------------------------------------
function renderHeader(s) {
  const fe = s.fe;
  put("fe-info", `FE <b>${esc(fe.address)}</b> ${pill(fe.role)}` +
    (fe.leader && fe.role !== "LEADER" ? ` &nbsp;leader <b>${esc(fe.leader)}</b>` : "") +
    ` &nbsp;<span class="sub">updated ${esc(new Date(s.now_ms).toLocaleTimeString())}</span>`);
  const note = $("note");
  if (fe.note) {
    const link = fe.leader_console && fe.role !== "LEADER"
      ? ` <a href="${esc(fe.leader_console)}">Open the leader's console</a>` : "";
    put("note", esc(fe.note) + "." + link);
    note.hidden = false;
  } else {
    note.hidden = true;
  }
  note.classList.remove("error");
  const others = fe.frontends.map((f) =>
    `${f.is_self ? "<b>" : ""}${esc(f.name)} ${esc(f.role)}${f.alive ? "" : " (dead)"}${f.is_self ? "</b>" : ""}` +
    (f.console && !f.is_self ? ` <a href="${esc(f.console)}">console</a>` : ""));
  put("frontends", `Frontends: ${others.join(" · ")} · history kept ${Math.round(s.history_seconds / 60)} min · ` +
    `refreshed every ${POLL_MS / 1000} s`);
}

function tile(label, value, cls, extra) {
  return `<div class="tile ${cls || ""}"><div class="label">${esc(label)}</div>` +
    `<div class="value">${value}</div>${extra || ""}</div>`;
}

function renderSummary(s) {
  const m = s.summary, t = s.txns;
  const dead = m.backends_total - m.backends_alive;
  const unhealthy = m.unhealthy_tablets;
  const running = s.routine.filter((j) => j.state === "RUNNING").length;
  const rate = t.committed_per_s;
  put("summary", [
    tile("Backends alive", `<span data-testid="alive-count">${m.backends_alive}</span><small> / ${m.backends_total}</small>`,
      dead ? "bad" : "good"),
    tile("Tablets", `${num(m.tablets)}<small> · ${num(m.replicas)} replicas</small>`),
    tile("Unhealthy tablets", unhealthy === null ? `–<small> leader only</small>`
      : `<span data-testid="unhealthy-count">${num(unhealthy)}</span>`, unhealthy ? "bad" : unhealthy === 0 ? "good" : ""),
    tile("Transactions / s", t.counted_here ? num(rate, rate !== null && rate < 10 ? 1 : 0) : `–<small> leader only</small>`),
    tile("Routine load jobs", `${running}<small> running of ${s.routine.length}</small>`),
    tile("Tablet scheduler", s.sched.active
      ? `${s.sched.running_total}<small> running · ${s.sched.pending_total} pending</small>`
      : `<small>not on this FE</small>`),
  ].join(""));
}

function renderBackends(s) {
  if (!s.backends.length) {
    put("backends", `<div class="empty">No backend has registered yet.</div>`);
    return;
  }
  const rows = s.backends.map((b) => {
    const state = b.alive ? pill("alive") : pill("DEAD", "dead");
    const decom = b.decommissioned
      ? pill(`decommissioning · ${b.tablets_left_to_move} left`, "decom") : `<span class="sub">no</span>`;
    return `<tr class="be ${b.alive ? "alive" : "dead"}" data-be-id="${b.id}" data-be-port="${b.be_port}" data-alive="${b.alive}">` +
      `<td class="mono">${b.id}</td><td class="mono addr">${esc(b.host)}:${b.be_port}</td>` +
      `<td>${state}</td><td class="num">${num(b.tablets)}</td>` +
      `<td class="num">${esc(b.data_used)}</td><td class="num">${esc(b.avail)}</td>` +
      `<td class="num">${esc(b.used_pct)}</td>` +
      `<td title="${esc(b.last_heartbeat)}">${esc(ago(b.heartbeat_age_s))}</td>` +
      `<td>${decom}</td><td class="err" title="${esc(b.err_msg)}">${esc(b.err_msg)}</td></tr>`;
  });
  put("backends", `<table><thead><tr><th>BackendId</th><th>Host:BePort</th><th>State</th><th class="num">Tablets</th>` +
    `<th class="num">Data used</th><th class="num">Avail</th><th class="num">Used %</th>` +
    (s.fe.scheduler_running ? `<th>Last heartbeat</th>`
      : `<th title="a follower hears no heartbeat: it shows the leader's last journaled liveness record">Last heartbeat (journaled)</th>`) +
    `<th>Decommission</th><th>ErrMsg</th></tr></thead><tbody>${rows.join("")}</tbody></table>`);
}

function cellTitle(c, where, s) {
  const part = c[2] >= 0 ? s.replicas.partitions[c[2]] : "";
  const version = c[3] >= 0 ? ` · version ${c[3]}` : "";
  return `tablet ${c[0]} · ${part}${version} · ${LEGEND[c[1]]}${where}`;
}

function renderReplicas(s) {
  const r = s.replicas;
  put("legend", Object.keys(LEGEND).map((k) =>
    `<span><i class="cell ${k}"></i>${esc(LEGEND[k])} <b data-count="${k}">${num(r.counts[k] || 0)}</b></span>`).join(""));
  if (!r.tablets_total) {
    put("replicas", `<div class="empty">No tablets yet: create a table and its replicas appear here.</div>`);
    return;
  }
  const panels = s.backends.map((b) => {
    const cells = r.cells[String(b.id)] || [];
    const where = ` · BE ${b.id}`;
    const state = b.alive ? (b.decommissioned ? pill("decommissioning", "decom") : pill("alive")) : pill("DEAD", "dead");
    return `<div class="map-panel ${b.alive ? "alive" : "dead"}" data-be-id="${b.id}" data-be-port="${b.be_port}">` +
      `<div class="head"><span class="name">BE ${b.id} <span class="sub mono">${esc(b.host)}:${b.be_port}</span></span>` +
      `<span>${state} <span class="sub">${num(cells.length)}</span></span></div>` +
      `<div class="cells">${cells.map((c) => `<i class="cell ${c[1]}" title="${esc(cellTitle(c, where, s))}"></i>`).join("")}` +
      `${cells.length ? "" : `<span class="empty" style="line-height:normal">no replicas</span>`}</div></div>`;
  });
  const missing = r.cells.missing || [];
  if (missing.length) {
    panels.push(`<div class="map-panel missing" data-be-id="missing"><div class="head"><span class="name">Missing replicas</span>` +
      `<span class="sub">${num(missing.length)}</span></div><div class="cells">` +
      missing.map((c) => `<i class="cell missing" title="${esc(cellTitle(c, "", s))}"></i>`).join("") + `</div></div>`);
  }
  const capped = r.tablets_shown < r.tablets_total
    ? `<div class="map-note">Showing the first ${num(r.tablets_shown)} of ${num(r.tablets_total)} tablets (at most ${num(r.cap)}).</div>`
    : `<div class="map-note">${num(r.tablets_total)} tablets in ${num(r.partitions.length)} partitions.</div>`;
  put("replicas", `<div class="map">${panels.join("")}</div>${capped}`);
}

function renderRoutine(s) {
  if (!s.routine.length) {
    put("routine", `<div class="empty">No routine load jobs. CREATE ROUTINE LOAD (AdminService/CreateRoutineLoad) and they appear here.</div>`);
    return;
  }
  const windowMs = s.history_seconds * 1000;
  const rows = s.routine.map((j) => {
    const reason = j.reason || j.other_msg;
    const lagSpark = sparkline(j.history.lag, { now: s.now_ms, windowMs, color: "#d97706", title: "lag (messages)" });
    const rateSpark = sparkline(j.history.rows_per_s, { now: s.now_ms, windowMs, color: "#2b5fab", title: "rows loaded per second" });
    const lagParts = Object.entries(j.lag || {}).map(([p, v]) => `p${p}: ${v}`).join(", ");
    return `<tr data-job="${esc(j.name)}"><td><b>${esc(j.name)}</b><div class="sub">${esc(j.db)}.${esc(j.table)} · id ${j.id}</div></td>` +
      `<td>${pill(j.state)}<div class="sub">${j.tasks} task${j.tasks === 1 ? "" : "s"}</div></td>` +
      `<td class="num"><span data-loaded>${num(j.loaded_rows)}</span><div class="sub">${num(j.error_rows)} error rows</div></td>` +
      `<td><div class="spark-cell">${rateSpark}<span class="v">${num(j.rows_per_s, 0)}<span class="sub"> rows/s</span></span></div></td>` +
      `<td title="${esc(lagParts)}"><div class="spark-cell">${lagSpark}<span class="v" data-lag>${num(j.lag_total)}</span></div></td>` +
      `<td class="err" title="${esc(reason)}">${esc(reason)}</td></tr>`;
  });
  put("routine", `<table><thead><tr><th>Job</th><th>State</th><th class="num">Loaded rows</th>` +
    `<th class="num">Rows / s</th><th class="num">Lag (messages)</th><th>Reason</th></tr></thead>` +
    `<tbody>${rows.join("")}</tbody></table>`);
}

function renderTxns(s) {
  const t = s.txns;
  const windowMs = s.history_seconds * 1000;
  if (!t.counted_here) {
    put("txns", `<div class="inactive">Transactions commit on the leader FE; this FE does not count them.` +
      ` ${num(t.running)} running transactions known from the journal.</div>`);
    return;
  }
  put("txns", `<div class="txn-now"><div><div class="sub">committed / s</div><div class="big">${num(t.committed_per_s, 1)}</div></div>` +
    `<div><div class="sub">aborted / s</div><div class="big ${t.aborted_per_s ? "bad" : ""}">${num(t.aborted_per_s, 1)}</div></div>` +
    `<div><div class="sub">running</div><div class="big">${num(t.running)}</div></div></div>` +
    sparkline(t.history.committed_per_s, { now: s.now_ms, windowMs, color: "#2b5fab", width: 360, height: 60, title: "committed per second" }) +
    sparkline(t.history.aborted_per_s, { now: s.now_ms, windowMs, color: "#d64545", width: 360, height: 24, title: "aborted per second" }) +
    `<div class="axis" style="width:360px"><span>−${spanText(spanMs(t.history.committed_per_s, s.now_ms, windowMs))}</span>` +
    `<span>now</span></div>`);
}

function schedTable(rows, empty) {
  if (!rows.length) return `<div class="empty">${esc(empty)}</div>`;
  const head = SCHED_COLUMNS.map(([, label]) => `<th>${esc(label)}</th>`).join("");
  const body = rows.map((r) => `<tr>${SCHED_COLUMNS.map(([col]) => {
    const v = r[col];
    if (col === "State") return `<td>${pill(v)}</td>`;
    if (col === "ErrMsg") return `<td class="msg" title="${esc(v)}">${esc(v === "N/A" ? "" : v)}</td>`;
    if (col === "Create" || col === "Finished") {
      const time = /^\d{4}-\d\d-\d\d (\S+)$/.exec(v || "");
      return `<td title="${esc(v)}">${esc(time ? time[1] : v === "N/A" ? "–" : v)}</td>`;
    }
    if (col === "Rate") return `<td class="nowrap">${esc(v === "N/A" ? "–" : v)}</td>`;
    if (col === "SrcBe" || col === "DestBe") return `<td class="mono">${esc(v === "-1" ? "–" : v)}</td>`;
    return `<td class="${col === "TabletId" ? "mono" : ""}">${esc(v)}</td>`;
  }).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function renderSched(s) {
  const q = s.sched;
  if (!q.active) {
    const fe = s.fe;
    const link = fe.leader_console && fe.role !== "LEADER" ? ` <a href="${esc(fe.leader_console)}">Open the leader's console.</a>` : "";
    put("sched", `<div class="inactive" data-testid="sched-inactive">The tablet checker and scheduler do not run on this FE ` +
      `(${esc(fe.role)}${fe.serving ? "" : ", starting"}): only the leader repairs and balances tablets.${link}</div>`);
    return;
  }
  const more = (n, total) => (total > n ? ` <small>first ${n} of ${total}</small>` : "");
  put("sched",
    `<h3>Running <small>${q.running_total}</small>${more(q.running.length, q.running_total)}</h3>` +
    schedTable(q.running, "No clone or repair task is running.") +
    `<h3>Pending <small>${q.pending_total}</small>${more(q.pending.length, q.pending_total)}</h3>` +
    schedTable(q.pending, "Nothing waits to be scheduled: every tablet is healthy.") +
    `<h3>History <small>newest ${q.history.length} of ${q.history_total}</small></h3>` +
    schedTable(q.history, "No task has finished yet."));
}

function render(s) {
  lastState = s;
  renderHeader(s);
  if (s.starting) {
    put("summary", tile("FE", "starting…"));
    return;
  }
  renderSummary(s);
  renderBackends(s);
  renderReplicas(s);
  renderRoutine(s);
  renderTxns(s);
  renderSched(s);
  document.body.dataset.ready = "true";
}

function setLive(live, error) {
  const conn = $("conn");
  conn.dataset.live = String(live);
  $("conn-text").textContent = live ? "live" : "connection lost";
  if (!live) {
    const note = $("note");
    note.textContent = `Cannot reach the FE (${error}); retrying every ${POLL_MS / 1000} s.` +
      (lastState ? " The page shows the last state it received." : "");
    note.classList.add("error");
    note.hidden = false;
    shown.note = undefined;
  }
}

async function poll() {
  try {
    const resp = await fetch("/api/console/state", { cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    render(await resp.json());
    setLive(true);
  } catch (err) {
    setLive(false, err.message || err);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
