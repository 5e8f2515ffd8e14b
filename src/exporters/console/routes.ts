// The console (DESIGN.md §9): the page, its assets and its JSON API under /api/v1, with the
// organization pushed live over server-sent events. Everything it shows is read from the model,
// except dead letters, which the dead-letter desk (services/deadletters.ts) reads from their stream.
// The one write action, replay, is refused here unless --web.enable-admin-api: by the server, with
// a 403, whatever the page shows.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import express from "express";
import { createChannel, createSession } from "better-sse";
import type { Logger } from "../../log.js";
import type { Organization } from "../../model/organization.js";
import { DeadLetterError, MAX_LIST, type DeadLetterDesk } from "../../services/deadletters.js";
import { feedItemView, organizationView, taskView, traceLink } from "./view.js";
import { ASSET_NAMES, consolePage, CONSOLE_CSP, type ConsolePageKind } from "./page.js";

const ASSETS_DIR = fileURLToPath(new URL("../../../console/", import.meta.url));

export interface ConsoleOptions {
  /** The dead-letter desk once orgwatch is connected to NATS; undefined until then. */
  readonly desk: () => DeadLetterDesk | undefined;
  readonly log: Logger;
}

export interface ConsoleRoutes {
  readonly router: express.Router;
  /** SSE clients connected now. */
  readonly clients: () => number;
  close(): void;
}

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of ASSET_NAMES) {
    const type = name.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8";
    assets.set(name, { body: readFileSync(ASSETS_DIR + name), type });
  }
  return assets;
}

function one(v: unknown): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === "string" ? x : undefined;
}

function sendError(res: express.Response, err: unknown, log: Logger): void {
  if (err instanceof DeadLetterError) {
    res.status(err.code).json({ error: err.message, code: err.code });
    return;
  }
  log.warn({ err: (err as Error).message }, "console API request failed");
  res.status(500).json({ error: "internal error", code: 500 });
}

/**
 * Same-origin check for a request that changes something: the browser's Origin (or, without it, its
 * Sec-Fetch-Site) must say the page came from here. A script on another site can make a browser
 * send a POST with the user's credentials, never with this site's Origin. Tools (curl) send neither.
 */
export function crossSiteReason(req: express.Request, externalUrl?: string): string | undefined {
  const origin = req.get("origin");
  const host = req.get("host");
  // Behind a proxy the page's origin is the external URL's, whatever Host the proxy sends on.
  if (origin !== undefined && externalUrl !== undefined && origin === new URL(externalUrl).origin)
    return undefined;
  if (origin !== undefined) {
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      return `Origin ${origin} is not a URL`;
    }
    if (host === undefined || originHost !== host)
      return `Origin ${origin} is not this server (${host ?? "no Host"})`;
    return undefined;
  }
  const site = req.get("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return `Sec-Fetch-Site is ${site}`;
  return undefined;
}

export function consoleRoutes(org: Organization, options: ConsoleOptions): ConsoleRoutes {
  const { log, desk } = options;
  const config = org.config;
  const router = express.Router();
  const assets = loadAssets();
  const channel = createChannel();
  const adminApi = config["web.enable-admin-api"];

  // One view per change, serialised once, whoever is watching: a hundred browsers cost NATS
  // nothing and the daemon one JSON.stringify per poll.
  let pending = false;
  const publishOrganization = () => {
    if (pending || channel.sessionCount === 0) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      channel.broadcast(JSON.stringify(organizationView(org)), "organization");
    });
  };
  const onFeed = (item: Parameters<typeof feedItemView>[0]) => {
    if (channel.sessionCount > 0) channel.broadcast(JSON.stringify(feedItemView(item)), "feed");
  };
  org.jetstream.on("applied", publishOrganization);
  org.history.on("feed", onFeed);

  const needDesk = (): DeadLetterDesk => {
    const d = desk();
    if (!d) throw new DeadLetterError(503, "not connected to NATS yet");
    return d;
  };
  const idOf = (req: express.Request): number => {
    const raw = String(req.params["id"]);
    if (!/^\d{1,15}$/.test(raw))
      throw new DeadLetterError(400, `"${raw.slice(0, 40)}" is not a dead letter id`);
    return Number(raw);
  };

  router.get("/api/v1/organization", (_req, res) => {
    res.json(organizationView(org));
  });
  router.get("/api/v1/events", async (req, res) => {
    const session = await createSession(req, res, { serializer: (d) => d as string, retry: 3000 });
    channel.register(session);
    session.push(JSON.stringify(organizationView(org)), "organization");
  });
  router.get("/api/v1/deadletters", async (req, res) => {
    try {
      const q = req.query;
      const limit = one(q["limit"]);
      const since = one(q["since"]);
      if (limit !== undefined && !/^\d+$/.test(limit))
        throw new DeadLetterError(400, `limit must be a whole number up to ${MAX_LIST}`);
      let sinceMs: number | undefined;
      if (since !== undefined && since !== "") {
        sinceMs = /^\d+$/.test(since) ? Number(since) * 1000 : Date.parse(since);
        if (!Number.isFinite(sinceMs))
          throw new DeadLetterError(400, `since must be an RFC 3339 time or Unix seconds`);
      }
      const list = await needDesk().list({
        role: one(q["role"]),
        sinceMs,
        limit: limit !== undefined ? Number(limit) : undefined,
      });
      res.json({
        stream: list.stream ?? null,
        subject: list.subject,
        truncated: list.truncated,
        items: list.items.map((s) => ({ ...s, traceLink: s.traceId ? traceLink(org, s.traceId) : null })),
      });
    } catch (err) {
      sendError(res, err, log);
    }
  });
  router.get("/api/v1/deadletters/:id", async (req, res) => {
    try {
      const detail = await needDesk().show(idOf(req));
      const t = detail.summary.traceId;
      res.json({ ...detail, traceLink: t ? traceLink(org, t) : null, adminApi });
    } catch (err) {
      sendError(res, err, log);
    }
  });
  router.post("/api/v1/deadletters/:id/replay", async (req, res) => {
    try {
      if (!adminApi) {
        res.status(403).json({
          error: "write actions are off: start orgwatch with --web.enable-admin-api to replay dead letters",
          code: 403,
        });
        return;
      }
      const cross = crossSiteReason(req, config["web.external-url"]);
      if (cross !== undefined) {
        res.status(403).json({ error: `refused as cross-site: ${cross}`, code: 403 });
        return;
      }
      const id = idOf(req);
      const by = (res.locals["user"] as string | undefined) ?? "anonymous";
      const result = await needDesk().replay(id, by);
      org.deadLetters.countReplay(result.role);
      log.info(
        {
          audit: "deadletter.replay",
          id,
          by,
          remote: req.socket.remoteAddress,
          subject: result.subject,
          msgId: result.msgId,
          stream: result.stream,
          seq: result.seq,
        },
        "dead letter replayed",
      );
      res.json(result);
    } catch (err) {
      if (err instanceof DeadLetterError && err.code === 409)
        log.info(
          { audit: "deadletter.replay", id: req.params["id"], refused: err.message },
          "dead letter replay refused",
        );
      sendError(res, err, log);
    }
  });
  router.get("/api/v1/tasks/:taskId", (req, res) => {
    const view = taskView(org, String(req.params["taskId"]));
    if (!view)
      res.status(404).json({
        error: `orgwatch remembers no task ${String(req.params["taskId"]).slice(0, 200)}`,
        code: 404,
      });
    else res.json(view);
  });

  const page = (kind: ConsolePageKind) => async (req: express.Request, res: express.Response) => {
    res
      .set("Content-Security-Policy", CONSOLE_CSP)
      .type("html")
      .send(await consolePage(kind, req, org, desk()));
  };
  router.get("/", page("overview"));
  router.get("/deadletters", page("deadletters"));
  router.get("/deadletters/:id", page("deadletter"));
  router.get("/tasks", (req, res) => {
    const id = one(req.query["id"])?.trim();
    if (id) res.redirect(303, `/tasks/${encodeURIComponent(id)}`);
    else res.redirect(303, "/");
  });
  router.get("/tasks/:taskId", page("task"));
  router.get("/console/:name", (req, res) => {
    const asset = assets.get(String(req.params["name"]));
    if (!asset) {
      res.status(404).type("text/plain").send("not found\n");
      return;
    }
    res
      .set({ "Content-Type": asset.type, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff" })
      .send(asset.body);
  });

  return {
    router,
    clients: () => channel.sessionCount,
    close() {
      org.jetstream.off("applied", publishOrganization);
      org.history.off("feed", onFeed);
      for (const s of channel.activeSessions) channel.deregister(s);
    },
  };
}
