// Soak (npm run test:soak; not in CI): orgwatch as its own process watching a simulated organization
// for SOAK_MINUTES (default 5), with a stream of distinct event types and roles on top (what a
// hostile or buggy publisher would send), and killed (SIGKILL) and restarted once in the middle.
// Resident memory of the orgwatch process is sampled and printed as a table; it must be flat: the
// last quarter's peak no more than 25% above the second quarter's, once warmed up.
import { readFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { expect, it } from "vitest";
import { startSimulatedOrganization } from "../../src/demo/simulator.js";
import { DEADLETTER_STREAM } from "../../src/demo/topology.js";
import { startNatsServer } from "../../src/nats/server-process.js";
import { spawnOrgwatch } from "../helpers/cli.js";
import { scrape } from "../helpers/metrics.js";
import { advisoriesDrained, readStream, streamMessages } from "../helpers/poison.js";
import { waitFor } from "../helpers/wait.js";

const MINUTES = Number(process.env["SOAK_MINUTES"] ?? "5");
const SAMPLE_MS = Math.max(1000, Math.min(10_000, (MINUTES * 60_000) / 40));
const enc = new TextEncoder();

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

function startOrgwatch(natsUrl: string): { child: ChildProcess; url: Promise<string> } {
  const child = spawnOrgwatch([
    "--nats-url",
    natsUrl,
    "--web.listen-address",
    "127.0.0.1:0",
    "--poll-interval",
    "2s",
  ]);
  child.stdout?.resume();
  let head = "";
  const url = new Promise<string>((resolve) => {
    child.stderr?.on("data", (d: Buffer) => {
      if (head.length > 100_000) return;
      head += d.toString();
      const m = /"url":"(http:[^"]+)","telemetryPath"/.exec(head);
      if (m) resolve(m[1]!);
    });
  });
  return { child, url };
}

it(`orgwatch's resident memory stays flat over ${MINUTES} minutes`, async () => {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const sim = await startSimulatedOrganization({ servers: nats.url, pace: 600, agents: 12, seed: 3 });
  let ow = startOrgwatch(nats.url);
  let web = await ow.url;
  const samples: { minute: number; rssMb: number; series: number }[] = [];
  const started = Date.now();
  const end = started + MINUTES * 60_000;
  let restarted = false;
  let distinct = 0;
  try {
    while (Date.now() < end) {
      // Distinct event types and roles, never seen before: capped, counted, never kept.
      for (let i = 0; i < 2000; i++, distinct++)
        nc.publish(
          "genbrain.org.events",
          enc.encode(JSON.stringify({ type: `soak-${distinct}`, role: `r${distinct}` })),
        );
      await nc.flush();
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      if (!restarted && Date.now() > started + (end - started) / 2) {
        // Once, mid-run: a kill and a restart (memory then starts again from its floor).
        ow.child.kill("SIGKILL");
        ow = startOrgwatch(nats.url);
        web = await ow.url;
        restarted = true;
        samples.length = 0;
        continue;
      }
      const m = await scrape(web);
      samples.push({
        minute: (Date.now() - started) / 60_000,
        rssMb: rssMb(ow.child.pid!),
        series: m.text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length,
      });
    }
    console.log("minute  rss_mb  series");
    for (const s of samples)
      console.log(`${s.minute.toFixed(2).padStart(6)}  ${s.rssMb.toFixed(1).padStart(6)}  ${s.series}`);
    const q = Math.floor(samples.length / 4);
    const second = Math.max(...samples.slice(q, 2 * q).map((s) => s.rssMb));
    const last = Math.max(...samples.slice(3 * q).map((s) => s.rssMb));
    console.log(
      `${distinct} distinct event types sent; peak RSS 2nd quarter ${second.toFixed(1)} MB, last quarter ${last.toFixed(1)} MB`,
    );
    expect(last).toBeLessThanOrEqual(second * 1.25);
    // Dead letters: each routed once, across the restart.
    await sim.stop();
    await waitFor(() => advisoriesDrained(jsm), { timeoutMs: 60_000, what: "advisories handled" });
    const routed = await streamMessages(jsm, DEADLETTER_STREAM);
    const ids = (await readStream(jsm, DEADLETTER_STREAM)).map((m) => m.json<{ task_id: string }>().task_id);
    console.log(`${routed} dead letters routed, ${new Set(ids).size} distinct tasks`);
    expect(new Set(ids).size).toBe(ids.length);
  } finally {
    await sim.stop().catch(() => undefined);
    ow.child.kill("SIGTERM");
    await nc.close();
    await nats.stop();
  }
});
