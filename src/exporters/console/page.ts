// The console's HTML: one shell for every view, with the basics rendered on the server so that the
// page reads without JavaScript (cards as a table, the feed, dead letters, a task's timeline);
// console/app.js then draws the live console into it from the JSON API. No inline script or style:
// the Content-Security-Policy allows this server's own files only.
import type express from "express";
import type { Organization } from "../../model/organization.js";
import type { DeadLetterDesk } from "../../services/deadletters.js";
import { VERSION } from "../../version.js";
import { organizationView, taskView } from "./view.js";

export type ConsolePageKind = "overview" | "deadletters" | "deadletter" | "task";

/** The files under console/ served at /console/{name}. */
export const ASSET_NAMES = ["app.js", "app.css"] as const;

export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function seconds(s: number | "never" | null): string {
  if (s === null) return "–";
  if (s === "never") return "never";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function overview(org: Organization): string {
  const v = organizationView(org);
  const rows = v.agents
    .map(
      (a) =>
        `<tr class="h-${a.health}"><td><a href="#agent-${escapeHtml(a.role)}">${escapeHtml(a.role)}</a></td><td>${a.health}</td><td>${a.up ? "up" : "down"} (${escapeHtml(a.state)})</td><td>${a.status}</td><td>${a.lag}</td><td>${seconds(a.oldest_task_age_seconds)} / ${seconds(a.ack_wait_seconds)}</td><td>${seconds(a.drain_eta_seconds)}</td><td>${a.dead_letters}</td><td>${a.unacked_broadcasts}</td><td>${a.lost_tasks}</td></tr>`,
    )
    .join("\n");
  const feed = v.feed
    .map(
      (f) =>
        `<li><time>${escapeHtml(f.at)}</time> ${escapeHtml(f.kind)} <b>${escapeHtml(f.role)}</b> ${f.task_id ? `<a href="/tasks/${encodeURIComponent(f.task_id)}">${escapeHtml(f.text)}</a>` : escapeHtml(f.text)}</li>`,
    )
    .join("\n");
  const flow = v.flow
    .map((e) => `<li>${escapeHtml(e.from)} → ${escapeHtml(e.to)}: ${e.tasks}</li>`)
    .join("\n");
  return `<section id="agents-basic"><h2>Agents</h2>
<table class="basic"><thead><tr><th>agent</th><th>health</th><th>up</th><th>work</th><th>lag</th><th>oldest / ack wait</th><th>drains in</th><th>dead letters</th><th>unacked broadcasts</th><th>lost</th></tr></thead>
<tbody>${rows}</tbody></table></section>
<section id="flow-basic"><h2>Flow (on_complete)</h2><ul>${flow}</ul></section>
<section id="feed-basic"><h2>What just happened</h2><ul>${feed}</ul></section>`;
}

async function deadLetters(desk: DeadLetterDesk | undefined, role: string | undefined): Promise<string> {
  if (!desk) return `<p>Not connected to NATS yet.</p>`;
  try {
    const list = await desk.list({ role, limit: 100 });
    if (list.stream === undefined)
      return `<p>No stream stores ${escapeHtml(list.subject)}: dead letters are not kept.</p>`;
    const rows = list.items
      .map(
        (d) =>
          `<tr><td><a href="/deadletters/${d.id}">${d.id}</a></td><td>${escapeHtml(d.at)}</td><td>${escapeHtml(d.role)}</td><td>${escapeHtml(d.taskId ?? "")}</td><td>${escapeHtml(d.sourceStream ?? "")} #${d.sourceSequence ?? ""}</td><td>${d.deliveries ?? ""}</td><td>${escapeHtml(d.reason ?? "")}</td></tr>`,
      )
      .join("\n");
    return `<table class="basic"><thead><tr><th>id</th><th>at</th><th>role</th><th>task</th><th>from</th><th>deliveries</th><th>reason</th></tr></thead><tbody>${rows}</tbody></table>`;
  } catch (err) {
    return `<p>Could not read dead letters: ${escapeHtml((err as Error).message)}</p>`;
  }
}

async function deadLetter(desk: DeadLetterDesk | undefined, id: string): Promise<string> {
  if (!desk) return `<p>Not connected to NATS yet.</p>`;
  try {
    const d = await desk.show(Number(id));
    const payload = d.payload.kind === "binary" ? d.payload.hex : d.payload.text;
    const headers = d.headers
      .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
      .join("");
    return `<h3>Dead letter ${d.summary.id}</h3><table class="basic">${headers}</table><pre>${escapeHtml(payload)}</pre>`;
  } catch (err) {
    return `<p>${escapeHtml((err as Error).message)}</p>`;
  }
}

function task(org: Organization, id: string): string {
  const t = taskView(org, id);
  if (!t) return `<p>orgwatch remembers no task ${escapeHtml(id)}.</p>`;
  const timeline = t.timeline
    .map((e) => `<li><time>${escapeHtml(e.at)}</time> ${escapeHtml(e.event)}</li>`)
    .join("");
  const chain = t.chain
    .map(
      (c) =>
        `<li><a href="/tasks/${encodeURIComponent(c.task_id)}">${escapeHtml(c.task_id)}</a> (${escapeHtml(c.role)}) ${escapeHtml(c.outcome ?? "open")}</li>`,
    )
    .join("");
  return `<h3>Task ${escapeHtml(t.task_id)}</h3><ol>${timeline}</ol><h3>Chain</h3><ol>${chain}</ol>`;
}

export async function consolePage(
  kind: ConsolePageKind,
  req: express.Request,
  org: Organization,
  desk: DeadLetterDesk | undefined,
): Promise<string> {
  const param = String(req.params["id"] ?? req.params["taskId"] ?? "");
  const role = typeof req.query["role"] === "string" ? req.query["role"] : undefined;
  const basics =
    kind === "overview"
      ? overview(org)
      : kind === "deadletters"
        ? await deadLetters(desk, role)
        : kind === "deadletter"
          ? await deadLetter(desk, param)
          : task(org, param);
  const h = org.health;
  const telemetry = org.config["web.telemetry-path"];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>orgwatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/app.css">
<script type="module" src="/console/app.js"></script>
</head>
<body data-view="${kind}" data-param="${escapeHtml(param)}">
<header><a class="brand" href="/">orgwatch</a>
<nav><a href="/">organization</a> <a href="/deadletters">dead letters</a> <a href="/runbooks">runbooks</a> <a href="${escapeHtml(telemetry)}">metrics</a></nav>
<form class="search" action="/tasks" method="get"><input name="id" placeholder="task id" aria-label="task id"><button>find</button></form>
<span id="conn" class="${h.natsConnected ? "ok" : "bad"}">NATS ${h.natsConnected ? "connected" : "not connected"} · ${h.pollsCompleted} polls</span>
</header>
<main id="app">
${basics}
</main>
<footer>orgwatch ${escapeHtml(VERSION)} · <a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></footer>
</body></html>
`;
}
