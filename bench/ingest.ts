// Ingest: status and event messages published by a separate process as fast as it can, received by
// orgwatch's own sources (agent-status, org-events: parse, validate, cap labels, update the model)
// and, in the same run, by a bare subscriber that only JSON-parses. Rate = messages / time from the
// first to the last one received; dropped = published − received.
import { execFile, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { configWith } from "../src/config/load.js";
import { silentLogger } from "../src/log.js";
import { Organization } from "../src/model/organization.js";
import { startAgentStatus } from "../src/sources/agent-status.js";
import { startOrgEvents } from "../src/sources/org-events.js";
import { createSourceContext } from "../src/sources/source.js";

export interface IngestSample {
  readonly received: number;
  readonly dropped: number;
  readonly ratePerSecond: number;
  readonly cpuMs: number;
}

export interface IngestResult {
  readonly messages: number;
  readonly orgwatch: IngestSample;
  readonly bare: IngestSample;
  /** orgwatch rate / bare rate (target ≥ 0.6). */
  readonly ratio: number;
  /** The publisher's own rate (an upper bound on what any subscriber can show). */
  readonly publisherRate: number;
}

const PUBLISHER = fileURLToPath(new URL("./publisher.ts", import.meta.url));
/** No new message for this long: the rest were dropped. */
const SETTLE_MS = 2000;

function publish(url: string, count: number, roles: number): Promise<{ published: number; ms: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", PUBLISHER, url, String(count), String(roles)],
      { maxBuffer: 1 << 20 },
      (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout) as { published: number; ms: number })),
    );
  });
}

export type IngestMode = "live" | "drain";

/**
 * live: the publisher runs while the subscriber works; on a small machine the rate is then bounded by
 * the publisher (and both share the CPUs). drain: the publisher runs to completion while this event
 * loop is blocked (spawnSync), the server holds the messages for the subscriber (the benchmark's
 * server allows a large write deadline and pending buffer for that), and the rate is how fast the
 * subscriber then works through them: its capacity, independent of the publisher's speed.
 */
async function receive(
  url: string,
  count: number,
  roles: number,
  received: () => number,
  mode: IngestMode,
): Promise<{ sample: IngestSample; publisherRate: number }> {
  let firstAt: number | undefined;
  let lastAt = 0;
  let last = 0;
  const cpu0 = process.cpuUsage();
  let pub: { published: number; ms: number };
  if (mode === "drain") {
    const r = spawnSync(process.execPath, ["--import", "tsx", PUBLISHER, url, String(count), String(roles)], {
      maxBuffer: 1 << 20,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`publisher failed: ${r.stderr}`);
    pub = JSON.parse(r.stdout) as { published: number; ms: number };
    firstAt = performance.now();
  }
  // A tight check on a timer: the subscriber itself does the work on the same event loop.
  const watch = setInterval(() => {
    const n = received();
    if (n > 0 && firstAt === undefined) firstAt = performance.now();
    if (n !== last) {
      last = n;
      lastAt = performance.now();
    }
  }, 2);
  if (mode === "live") pub = await publish(url, count, roles);
  // Until all arrived, or nothing more arrived for SETTLE_MS (the rest were dropped).
  let progressAt = performance.now();
  let seen = received();
  while (received() < count && performance.now() - progressAt < SETTLE_MS) {
    await new Promise((r) => setTimeout(r, 2));
    if (received() !== seen) {
      seen = received();
      progressAt = performance.now();
    }
  }
  clearInterval(watch);
  if (received() !== last) lastAt = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const n = received();
  const seconds = Math.max(1e-3, (lastAt - (firstAt ?? lastAt)) / 1000);
  return {
    sample: {
      received: n,
      dropped: count - n,
      ratePerSecond: n / seconds,
      cpuMs: (cpu.user + cpu.system) / 1000,
    },
    publisherRate: pub!.published / (pub!.ms / 1000),
  };
}

async function orgwatchIngest(url: string, count: number, roles: number, mode: IngestMode) {
  const nc = await connect({ servers: url, name: "bench-orgwatch" });
  const config = configWith({ "nats-url": [url], "labels.max-values": 100 });
  const org = new Organization(config);
  const ctx = await createSourceContext(nc, config, org, silentLogger());
  const sources = [await startAgentStatus(ctx), await startOrgEvents(ctx)];
  await nc.flush();
  const invalid = () => [...org.health.invalidMessages.values()].reduce((a, b) => a + b, 0);
  try {
    const r = await receive(
      url,
      count,
      roles,
      () => org.agents.statusMessages + org.agents.eventMessages + invalid(),
      mode,
    );
    return { ...r, invalid: invalid(), roster: org.agents.roster().length };
  } finally {
    for (const s of sources) await s.stop();
    await nc.close();
  }
}

async function bareIngest(url: string, count: number, roles: number, mode: IngestMode) {
  const nc: NatsConnection = await connect({ servers: url, name: "bench-bare" });
  let n = 0;
  const decoder = new TextDecoder();
  const onMsg = (_err: unknown, msg: { data: Uint8Array }) => {
    JSON.parse(decoder.decode(msg.data));
    n++;
  };
  nc.subscribe("genbrain.agents.*.status", { callback: onMsg });
  nc.subscribe("genbrain.org.events", { callback: onMsg });
  await nc.flush();
  try {
    return await receive(url, count, roles, () => n, mode);
  } finally {
    await nc.close();
  }
}

/** nats-server settings that let a blocked subscriber hold a backlog (drain mode). */
export const INGEST_SERVER_CONFIG = 'write_deadline: "120s"\nmax_pending: 1073741824\n';

export async function measureIngest(
  url: string,
  { messages = 400_000, roles = 60, mode = "drain" as IngestMode } = {},
): Promise<IngestResult & { mode: IngestMode }> {
  const bare = await bareIngest(url, messages, roles, mode);
  const ours = await orgwatchIngest(url, messages, roles, mode);
  if (ours.invalid > 0) throw new Error(`orgwatch counted ${ours.invalid} valid messages as invalid`);
  return {
    mode,
    messages,
    orgwatch: ours.sample,
    bare: bare.sample,
    ratio: ours.sample.ratePerSecond / bare.sample.ratePerSecond,
    publisherRate: Math.min(ours.publisherRate, bare.publisherRate),
  };
}
