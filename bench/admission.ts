// Admission control's answer time (DESIGN.md §8: under 5 ms, from the model, no NATS round trip per
// request): the decision itself in a tight loop (requests a second on one core), and requests over
// NATS through the micro service, one at a time (latency p50 / p99) and many in flight (throughput).
import { connect } from "@nats-io/transport-node";
import { Admission } from "../src/services/admission.js";
import { startAgentsDaemon } from "./topology.js";
import { median, percentile } from "./stats.js";

const AGENTS = 50;

export interface AdmissionResult {
  readonly consumers: number;
  /** Decisions a second, in-process (one core). */
  readonly decisionsPerSecond: number;
  /** Sequential NATS requests: round-trip latencies (ms). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Concurrent NATS requests (64 in flight): answers a second. */
  readonly requestsPerSecond: number;
}

export async function measureAdmission(
  url: string,
  options: { streams?: number; consumers?: number; requests?: number } = {},
): Promise<AdmissionResult> {
  // The model's size around the agents: the bench topology's consumers, and 50 agents' task streams.
  const { topology, daemon } = await startAgentsDaemon(
    url,
    options.streams ?? 100,
    options.consumers ?? 1000,
    AGENTS,
  );
  const nc = await connect({ servers: url, name: "bench-admission" });
  try {
    await daemon.pollNow();
    const poll = daemon.org.jetstream.current!;
    const roles = [
      ...new Set([...poll.consumers.values()].filter((c) => c.kind === "tasks").map((c) => c.role)),
    ];
    const bodies = roles.map((role) => ({ role, tasks: 1, complete_within_minutes: 60 }));
    const admission = new Admission(daemon.org);
    const n = options.requests ?? 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) admission.answer(bodies[i % bodies.length]);
    const decisionsPerSecond = n / ((performance.now() - t0) / 1000);

    const encoded = bodies.map((b) => JSON.stringify(b));
    const subject = "genbrain.orgwatch.admission";
    const latencies: number[] = [];
    const sequential = Math.min(2_000, n);
    for (let i = 0; i < sequential; i++) {
      const s = performance.now();
      await nc.request(subject, encoded[i % encoded.length]!, { timeout: 5_000 });
      latencies.push(performance.now() - s);
    }
    const inFlight = 64;
    const total = Math.min(10_000, n);
    let next = 0;
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < total) {
          const i = next++;
          await nc.request(subject, encoded[i % encoded.length]!, { timeout: 5_000 });
        }
      }),
    );
    const requestsPerSecond = total / ((performance.now() - t1) / 1000);
    return {
      consumers: topology.consumers + AGENTS,
      decisionsPerSecond,
      p50Ms: median(latencies),
      p99Ms: percentile(latencies, 99),
      requestsPerSecond,
    };
  } finally {
    await nc.close();
    await daemon.stop();
  }
}

export function admissionTable(r: AdmissionResult): string {
  return [
    "| consumers | decisions a second (in-process, one core) | NATS request p50 | NATS request p99 (target < 5 ms) | NATS requests a second (64 in flight) |",
    "|---|---|---|---|---|",
    `| ${r.consumers.toLocaleString("en-US")} | ${Math.round(r.decisionsPerSecond).toLocaleString("en-US")} | ${r.p50Ms.toFixed(2)} ms | ${r.p99Ms.toFixed(2)} ms | ${Math.round(r.requestsPerSecond).toLocaleString("en-US")} |`,
  ].join("\n");
}
