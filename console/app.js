// orgwatch's console: draws the organization from the JSON API (/api/v1) and keeps it live over
// server-sent events. No framework, nothing fetched from elsewhere; every value from the server is
// put in the page as text (textContent), never as HTML.
const $ = (sel, root = document) => root.querySelector(sel);

/** el("div.card", {id: "x"}, child, "text") */
function el(spec, attrs, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const node = document.createElement(tag || "div");
  if (id) node.id = id;
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s === "never") return "never";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function ago(iso) {
  return duration(Math.max(0, (Date.now() - Date.parse(iso)) / 1000)) + " ago";
}

async function api(path, init) {
  const res = await fetch(path, { headers: { Accept: "application/json" }, ...init });
  let body;
  try {
    body = await res.json();
  } catch {
    body = { error: `${res.status} ${res.statusText}` };
  }
  if (!res.ok) throw Object.assign(new Error(body.error || res.statusText), { status: res.status });
  return body;
}

const taskLink = (id) => el("a.task", { href: `/tasks/${encodeURIComponent(id)}`, text: id });

// ---- the organization --------------------------------------------------------------------------

const state = { org: null, filter: "", collapseHealthy: false, feedIds: new Set() };

function sparkline(points) {
  const w = 160;
  const h = 32;
  const box = svg("svg", {
    viewBox: `0 0 ${w} ${h}`,
    class: "spark",
    role: "img",
    "aria-label": "lag over the last hour",
  });
  if (points.length === 0) return box;
  const now = Date.now();
  const from = now - 3600_000;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const xy = points.map(
    ([t, v]) => `${(((t - from) / 3600_000) * w).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`,
  );
  if (xy.length === 1) xy.push(`${w},${xy[0].split(",")[1]}`);
  box.append(svg("polyline", { points: xy.join(" "), fill: "none" }));
  box.append(svg("text", { x: 2, y: 10 }, `max ${max}`));
  return box;
}

function stat(label, value, cls) {
  return [el("dt", { text: label }), el(cls ? `dd.${cls}` : "dd", { text: value })];
}

function card(a) {
  const age = a.oldest_task_age_seconds;
  const over = age !== null && a.ack_wait_seconds !== null && age > a.ack_wait_seconds;
  return el(
    `article.card.h-${a.health}`,
    { id: `agent-${a.role}`, "data-role": a.role, "data-health": a.health },
    el(
      "header",
      {},
      el("h3", { text: a.role }),
      el(`span.badge.h-${a.health}`, { text: a.health }),
      el(`span.up.${a.up ? "yes" : "no"}`, { text: a.up ? `up · ${a.state}` : `down · ${a.state}` }),
    ),
    el(
      "dl",
      {},
      stat("work", a.status, a.status === "ok" ? null : "bad"),
      stat("lag", String(a.lag), a.lag > 0 ? "warn" : null),
      stat("oldest / ack wait", `${duration(age)} / ${duration(a.ack_wait_seconds)}`, over ? "bad" : null),
      stat("drains in", duration(a.drain_eta_seconds)),
      stat(
        "dead letters",
        `${a.dead_letters} (${a.dead_letters_last_hour} last hour)`,
        a.dead_letters_last_hour > 0 ? "bad" : null,
      ),
      stat("unacked broadcasts", String(a.unacked_broadcasts), a.unacked_broadcasts > 0 ? "warn" : null),
      stat("lost tasks", String(a.lost_tasks), a.lost_tasks > 0 ? "bad" : null),
    ),
    sparkline(a.lag_history),
    a.reasons.length
      ? el(
          "ul.reasons",
          {},
          a.reasons.map((r) => el("li", { text: r })),
        )
      : null,
  );
}

function renderCards() {
  const org = state.org;
  const grid = $("#cards");
  if (!org || !grid) return;
  const q = state.filter.trim().toLowerCase();
  const shown = org.agents.filter(
    (a) => (!q || a.role.toLowerCase().includes(q)) && !(state.collapseHealthy && a.health === "ok"),
  );
  grid.replaceChildren(...shown.map(card));
  $("#broadcasts").replaceChildren(broadcastMatrix(org.broadcasts));
  const counts = { ok: 0, warning: 0, critical: 0 };
  for (const a of org.agents) counts[a.health]++;
  $("#summary").textContent =
    `${org.agents.length} agents: ${counts.critical} critical, ${counts.warning} warning, ${counts.ok} ok` +
    (shown.length < org.agents.length ? ` (showing ${shown.length})` : "");
}

/** Roles laid out in columns by their distance from a chain's start; edges drawn with their counts. */
function flowGraph(edges) {
  const roles = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
  if (roles.length === 0) return el("p.muted", { text: "No on_complete links seen yet." });
  const incoming = new Map(roles.map((r) => [r, 0]));
  for (const e of edges) if (e.from !== e.to) incoming.set(e.to, incoming.get(e.to) + 1);
  const depth = new Map();
  const queue = roles.filter((r) => incoming.get(r) === 0);
  if (queue.length === 0) queue.push(roles[0]);
  for (const r of queue) depth.set(r, 0);
  while (queue.length) {
    const r = queue.shift();
    for (const e of edges)
      if (e.from === r && !depth.has(e.to)) {
        depth.set(e.to, depth.get(r) + 1);
        queue.push(e.to);
      }
  }
  for (const r of roles) if (!depth.has(r)) depth.set(r, 0);
  const columns = new Map();
  for (const r of roles) {
    const d = depth.get(r);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(r);
  }
  const colW = 170;
  const rowH = 46;
  const height = Math.max(...[...columns.values()].map((c) => c.length)) * rowH + 10;
  const width = columns.size * colW;
  const pos = new Map();
  for (const [d, list] of columns) list.forEach((r, i) => pos.set(r, { x: d * colW + 10, y: i * rowH + 10 }));
  const box = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "flow",
    role: "img",
    "aria-label": "on_complete flow",
  });
  box.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        {
          id: "arrow",
          viewBox: "0 0 10 10",
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: "auto",
        },
        svg("path", { d: "M0,0 L10,5 L0,10 z" }),
      ),
    ),
  );
  for (const e of edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    const x1 = a.x + 120;
    const y1 = a.y + 14;
    const x2 = b.x;
    const y2 = b.y + 14;
    const g = svg("g", {
      class: e.tasks > 0 ? "edge" : "edge planned",
      "data-from": e.from,
      "data-to": e.to,
    });
    g.append(svg("line", { x1, y1, x2: x2 === x1 ? x2 + 1 : x2, y2, "marker-end": "url(#arrow)" }));
    g.append(svg("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4 }, String(e.tasks)));
    box.append(g);
  }
  const health = new Map((state.org?.agents || []).map((a) => [a.role, a.health]));
  for (const [r, p] of pos) {
    const g = svg("g", { class: `node h-${health.get(r) || "ok"}` });
    g.append(svg("rect", { x: p.x, y: p.y, width: 120, height: 28, rx: 6 }));
    g.append(svg("text", { x: p.x + 60, y: p.y + 18, "text-anchor": "middle" }, r));
    box.append(g);
  }
  return box;
}

function broadcastMatrix(b) {
  if (b.recent.length === 0) return el("p.muted", { text: "No broadcasts yet." });
  const head = el(
    "tr",
    {},
    el("th", { text: "agent" }),
    b.recent.map((r) =>
      el("th", { title: `${r.stream} #${r.seq} · ${r.subject}`, text: `#${r.seq} · ${ago(r.at)}` }),
    ),
  );
  // Agents still owing a broadcast first; the filter box and "hide healthy" apply here too.
  const q = state.filter.trim().toLowerCase();
  const owing = (a) => a.cells.some((c) => c.state === "pending");
  const agents = b.agents
    .filter((a) => (!q || a.role.toLowerCase().includes(q)) && !(state.collapseHealthy && !owing(a)))
    .sort((x, y) => Number(owing(y)) - Number(owing(x)) || x.role.localeCompare(y.role));
  const rows = agents.map((a) =>
    el(
      "tr",
      { "data-role": a.role },
      el("th", { text: a.role }),
      a.cells.map((c) =>
        el(`td.b-${c.state === "n/a" ? "na" : c.state}`, {
          text:
            c.state === "acked"
              ? `✓ ${c.seconds !== null ? duration(c.seconds) : ""}`
              : c.state === "pending"
                ? `waiting ${duration(c.seconds)}`
                : "–",
        }),
      ),
    ),
  );
  return el("table.matrix", {}, el("thead", {}, head), el("tbody", {}, rows));
}

function feedItem(f) {
  return el(
    `li.f-${f.kind}`,
    { "data-id": f.id },
    el("time", { datetime: f.at, title: f.at, text: new Date(f.at).toLocaleTimeString() }),
    el("span.kind", { text: f.kind.replace("_", " ") }),
    el("b", { text: f.role }),
    " ",
    f.task_id ? el("a", { href: `/tasks/${encodeURIComponent(f.task_id)}`, text: f.text }) : f.text,
  );
}

function renderFeed(items) {
  const list = $("#feed");
  if (!list) return;
  state.feedIds = new Set(items.map((f) => f.id));
  list.replaceChildren(...items.map(feedItem));
}

function addFeed(f) {
  const list = $("#feed");
  if (!list || state.feedIds.has(f.id)) return;
  state.feedIds.add(f.id);
  const item = feedItem(f);
  item.classList.add("new");
  list.prepend(item);
  while (list.children.length > 50) list.lastElementChild.remove();
  if (f.kind === "dead_letter") loadRecentDeadLetters();
}

function renderOrganization(org) {
  const first = state.org === null;
  state.org = org;
  $("#conn").textContent =
    `NATS ${org.nats_connected ? "connected" : "not connected"} · ${org.polls_completed} polls · live`;
  $("#conn").className = org.nats_connected ? "ok" : "bad";
  renderCards();
  $("#flow").replaceChildren(flowGraph(org.flow));
  if (first) renderFeed(org.feed);
}

async function loadRecentDeadLetters() {
  const box = $("#recent-deadletters");
  if (!box) return;
  try {
    const list = await api("/api/v1/deadletters?limit=5");
    box.replaceChildren(deadLetterTable(list));
  } catch (err) {
    box.replaceChildren(el("p.bad", { text: `Dead letters: ${err.message}` }));
  }
}

function overview() {
  const app = $("#app");
  app.replaceChildren(
    el(
      "section.toolbar",
      {},
      el("input#filter", {
        type: "search",
        placeholder: "filter agents",
        "aria-label": "filter agents",
        oninput: (e) => ((state.filter = e.target.value), renderCards()),
      }),
      el(
        "label",
        {},
        el("input#collapse", {
          type: "checkbox",
          onchange: (e) => ((state.collapseHealthy = e.target.checked), renderCards()),
        }),
        " hide healthy",
      ),
      el("span#summary.muted"),
    ),
    el("section#cards.cards"),
    el(
      "section.row",
      {},
      el("div.panel", {}, el("h2", { text: "Flow between roles (on_complete)" }), el("div#flow")),
      el("div.panel", {}, el("h2", { text: "What just happened" }), el("ol#feed.feed")),
    ),
    el(
      "section.row",
      {},
      el("div.panel", {}, el("h2", { text: "Broadcasts" }), el("div#broadcasts")),
      el(
        "div.panel",
        {},
        el("h2", {}, el("a", { href: "/deadletters", text: "Latest dead letters" })),
        el("div#recent-deadletters"),
      ),
    ),
  );
  loadRecentDeadLetters();
  const events = new EventSource("/api/v1/events");
  events.addEventListener("organization", (e) => renderOrganization(JSON.parse(e.data)));
  events.addEventListener("feed", (e) => addFeed(JSON.parse(e.data)));
  events.addEventListener("error", () => {
    $("#conn").textContent = "reconnecting to orgwatch…";
    $("#conn").className = "bad";
  });
}

// ---- dead letters --------------------------------------------------------------------------------

function deadLetterTable(list) {
  if (list.stream === null)
    return el("p.muted", { text: `No stream stores ${list.subject}: dead letters are not kept.` });
  if (list.items.length === 0) return el("p.muted", { text: "No dead letters." });
  return el(
    "table.list",
    {},
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ["id", "when", "role", "task", "from", "deliveries", "reason"].map((h) => el("th", { text: h })),
      ),
    ),
    el(
      "tbody",
      {},
      list.items.map((d) =>
        el(
          "tr",
          { "data-id": d.id },
          el("td", {}, el("a", { href: `/deadletters/${d.id}`, text: `#${d.id}` })),
          el("td", { title: d.at, text: ago(d.at) }),
          el("td", { text: d.role }),
          el("td", {}, d.taskId ? taskLink(d.taskId) : "–"),
          el("td", { text: `${d.sourceStream ?? "?"} #${d.sourceSequence ?? "?"}` }),
          el("td", { text: d.deliveries ?? "–" }),
          el("td", { text: d.reason ?? "–" }),
        ),
      ),
    ),
  );
}

async function deadLetters() {
  const app = $("#app");
  const params = new URLSearchParams(location.search);
  const roleInput = el("input", {
    name: "role",
    placeholder: "role",
    value: params.get("role") || "",
    "aria-label": "role",
  });
  const since = el(
    "select",
    { name: "since", "aria-label": "since" },
    [
      ["", "any time"],
      ["3600", "last hour"],
      ["86400", "last day"],
      ["604800", "last week"],
    ].map(([v, t]) => el("option", { value: v, text: t, selected: params.get("since") === v })),
  );
  const box = el("div#deadletters");
  const load = async () => {
    const q = new URLSearchParams();
    if (roleInput.value) q.set("role", roleInput.value);
    if (since.value) q.set("since", String(Math.floor(Date.now() / 1000) - Number(since.value)));
    q.set("limit", "200");
    history.replaceState(
      null,
      "",
      `/deadletters?${new URLSearchParams({ ...(roleInput.value && { role: roleInput.value }), ...(since.value && { since: since.value }) })}`,
    );
    try {
      box.replaceChildren(deadLetterTable(await api(`/api/v1/deadletters?${q}`)));
    } catch (err) {
      box.replaceChildren(el("p.bad", { text: err.message }));
    }
  };
  app.replaceChildren(
    el("h2", { text: "Dead letters, newest first" }),
    el(
      "form.toolbar",
      { onsubmit: (e) => (e.preventDefault(), load()) },
      roleInput,
      since,
      el("button", { text: "filter" }),
    ),
    box,
  );
  await load();
}

function payloadBlock(p) {
  if (p.kind === "binary")
    return el(
      "div",
      {},
      el("p.muted", { text: "binary payload (hex, first bytes; base64 below)" }),
      el("pre.payload", { text: p.hex }),
      el("pre.payload", { text: p.base64 }),
    );
  return el("pre.payload", { text: p.text });
}

async function deadLetter(id) {
  const app = $("#app");
  let d;
  try {
    d = await api(`/api/v1/deadletters/${encodeURIComponent(id)}`);
  } catch (err) {
    app.replaceChildren(el("p.bad", { text: err.message }));
    return;
  }
  const s = d.summary;
  const result = el("div#replay-result");
  const replayBox = el("section#replay.panel", {}, el("h2", { text: "Replay" }));
  if (d.replayed)
    replayBox.append(
      el("p.warn", {
        text: `Replayed ${ago(d.replayed.at)} by ${d.replayed.by} to ${d.replayed.subject}${d.replayed.stream ? ` (${d.replayed.stream} #${d.replayed.seq})` : ""}. It can't be replayed again.`,
      }),
    );
  else if (!d.replay.possible)
    replayBox.append(el("p.muted", { text: `Cannot be replayed: ${d.replay.reason}` }));
  else {
    const dialog = el(
      "dialog#confirm",
      {},
      el("h3", { text: "Replay this dead letter?" }),
      el("p", {
        text: `It publishes the original payload (${s.bytes} bytes) and ${d.replay.headers} headers to`,
      }),
      el("p", {}, el("code", { text: d.replay.subject })),
      el("p", {
        text: `once, with Nats-Msg-Id ${d.replay.msgId} and Orgwatch-Replay-Of. A second replay is refused.`,
      }),
      el(
        "form",
        { method: "dialog" },
        el("button#cancel", { value: "cancel", text: "cancel" }),
        el("button#confirm-replay.danger", { value: "replay", text: `publish to ${d.replay.subject}` }),
      ),
    );
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "replay") return;
      try {
        const r = await api(`/api/v1/deadletters/${s.id}/replay`, { method: "POST" });
        result.replaceChildren(
          el("p.ok", { text: `Replayed to ${r.subject}: ${r.stream} #${r.seq} (${r.msgId}).` }),
        );
      } catch (err) {
        result.replaceChildren(el("p.bad", { text: `Refused (${err.status}): ${err.message}` }));
      }
    });
    replayBox.append(
      el("p", {
        text: d.adminApi
          ? "Publishes the original message again, once."
          : "Write actions are off on this orgwatch (--web.enable-admin-api): the server refuses a replay.",
      }),
      el("button#replay-button", { text: "Replay…", onclick: () => dialog.showModal() }),
      dialog,
    );
  }
  replayBox.append(result);
  app.replaceChildren(
    el("h2", { text: `Dead letter #${s.id}` }),
    el(
      "dl.summary",
      {},
      stat("when", `${s.at} (${ago(s.at)})`),
      stat("role", s.role || "–"),
      stat("task", s.taskId ?? "–"),
      stat("from", `${s.sourceStream ?? "?"} #${s.sourceSequence ?? "?"} (consumer ${s.consumer ?? "?"})`),
      stat("subject", s.subject ?? "–"),
      stat("deliveries", String(s.deliveries ?? "–")),
      stat("reason", s.reason ?? "–"),
      stat("trace", s.traceId ?? "–"),
    ),
    s.taskId ? el("p", {}, "Task: ", taskLink(s.taskId)) : null,
    d.traceLink
      ? el("p", {}, el("a", { href: d.traceLink, rel: "noreferrer", text: "open the trace" }))
      : null,
    el("h3", { text: "Payload" }),
    payloadBlock(d.payload),
    el("h3", { text: "Headers" }),
    el(
      "table.list",
      {},
      el(
        "tbody",
        {},
        d.headers.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))),
      ),
    ),
    replayBox,
  );
}

// ---- a task --------------------------------------------------------------------------------------

async function task(id) {
  const app = $("#app");
  let t;
  try {
    t = await api(`/api/v1/tasks/${encodeURIComponent(id)}`);
  } catch (err) {
    app.replaceChildren(el("h2", { text: `Task ${id}` }), el("p.bad", { text: err.message }));
    return;
  }
  app.replaceChildren(
    el("h2", { text: `Task ${t.task_id}` }),
    el(
      "dl.summary",
      {},
      stat("role", t.role),
      stat("type", t.type || "–"),
      stat("outcome", t.outcome ?? "open"),
      stat("where", `${t.stream} #${t.stream_sequence} (${t.subject})`),
      stat("deliveries", String(t.deliveries)),
      stat("next step", t.on_complete_publish_to ?? "–"),
      stat("trace", t.trace_id),
    ),
    t.trace_link
      ? el("p", {}, el("a", { href: t.trace_link, rel: "noreferrer", text: "open the trace" }))
      : null,
    el("h3", { text: "Timeline" }),
    el(
      "ol.timeline",
      {},
      t.timeline.map((e) =>
        el(
          `li.e-${e.event}`,
          {},
          el("time", { datetime: e.at, text: e.at }),
          " ",
          el("b", { text: e.event }),
          e.delivery ? ` (delivery ${e.delivery})` : "",
          e.consumer ? ` · ${e.consumer}` : "",
          e.reason ? ` · ${e.reason}` : "",
        ),
      ),
    ),
    el("h3", { text: "Chain" }),
    el(
      "ol.chain",
      {},
      t.chain.map((c) =>
        el(
          `li${c.task_id === t.task_id ? ".current" : ""}`,
          { "data-depth": c.depth },
          "→ ".repeat(c.depth),
          taskLink(c.task_id),
          ` ${c.role} · ${c.outcome ?? "open"}`,
        ),
      ),
    ),
  );
}

// ---- start ---------------------------------------------------------------------------------------

const view = document.body.dataset.view;
const param = document.body.dataset.param;
document.body.classList.add("js");
if (view === "overview") overview();
else if (view === "deadletters") deadLetters();
else if (view === "deadletter") deadLetter(param);
else if (view === "task") task(param);
