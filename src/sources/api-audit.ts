// JetStream API audit advisories ($JS.EVENT.ADVISORY.API, core NATS): the server sends one for every
// API call. orgwatch keeps only purges and message deletes, which tell the lost-work model why
// messages left a stream (a purge and the expiry of the same messages look alike in a poll). A
// cheap byte test drops every other call before any JSON is parsed (orgwatch's own polls included).
// Missed while orgwatch is down: the reason then comes from the polls alone (docs/lost-work.md).
import type { RunningSource, SourceContext } from "./source.js";

export const API_AUDIT_SUBJECT = "$JS.EVENT.ADVISORY.API";
const PURGE = ".STREAM.PURGE.";
const DELETE = ".STREAM.MSG.DELETE.";

export interface ApiRemoval {
  readonly stream: string;
  readonly kind: "purge" | "delete";
  readonly seq?: number;
  readonly atMs: number;
}

/** A purge or delete named by an audit advisory, or undefined for any other API call or bad input. */
export function parseApiRemoval(data: Uint8Array): ApiRemoval | undefined {
  // The subject field comes early in the advisory: look for the two calls in the first bytes only.
  const head = Buffer.from(data.buffer, data.byteOffset, Math.min(data.length, 1024)).toString("latin1");
  if (!head.includes(PURGE) && !head.includes(DELETE)) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== "object") return undefined;
  const a = doc as Record<string, unknown>;
  const subject = typeof a["subject"] === "string" ? a["subject"] : "";
  const response = typeof a["response"] === "string" ? a["response"] : "";
  if (!response.includes('"success":true')) return undefined;
  const atMs = typeof a["timestamp"] === "string" ? Date.parse(a["timestamp"]) : Date.now();
  const at = Number.isFinite(atMs) ? atMs : Date.now();
  const purge = subject.indexOf(PURGE);
  if (purge >= 0) return { stream: subject.slice(purge + PURGE.length), kind: "purge", atMs: at };
  const del = subject.indexOf(DELETE);
  if (del < 0) return undefined;
  let seq: number | undefined;
  try {
    const req = JSON.parse(typeof a["request"] === "string" ? a["request"] : "{}") as { seq?: unknown };
    if (typeof req.seq === "number") seq = req.seq;
  } catch {
    // A delete without a readable request still says a delete happened.
  }
  return {
    stream: subject.slice(del + DELETE.length),
    kind: "delete",
    atMs: at,
    ...(seq !== undefined ? { seq } : {}),
  };
}

export function startApiAudit(ctx: SourceContext): RunningSource {
  const { nc, config, org } = ctx;
  if (!config["lost.api-audit"]) return { stop: async () => undefined };
  const sub = nc.subscribe(API_AUDIT_SUBJECT, {
    callback: (err, msg) => {
      if (err) return;
      const removal = parseApiRemoval(msg.data);
      if (removal) org.lostWork.recordApiRemoval(removal.stream, removal.kind, removal.atMs, removal.seq);
    },
  });
  return {
    async stop() {
      sub.unsubscribe();
    },
  };
}
