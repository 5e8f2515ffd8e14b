// A separate process publishing status and event messages as fast as it can (bench/ingest.ts).
// argv: <nats url> <count> <roles>. Half status updates, half events, in realistic shapes.
import { connect } from "@nats-io/transport-node";

const [url, countArg, rolesArg] = process.argv.slice(2);
const count = Number(countArg);
const roles = Array.from({ length: Number(rolesArg) }, (_, i) => `agent${i}`);
const STATES = ["idle", "busy", "busy", "error", "offline"];
const TYPES = ["task.assigned", "task.started", "agent.heartbeat", "policy.acknowledged", "task.progress"];

const nc = await connect({ servers: url!, name: "bench-publisher" });
const encoder = new TextEncoder();
const statuses = roles.flatMap((role) =>
  STATES.map((state, k) => ({
    subject: `genbrain.agents.${role}.status`,
    data: encoder.encode(JSON.stringify({ state, task_id: `task-${k}`, ts: 1_700_000_000 + k })),
  })),
);
const events = roles.flatMap((role) =>
  TYPES.map((type, k) =>
    encoder.encode(JSON.stringify({ type, role, task_id: `task-${k}`, ts: 1_700_000_000 + k })),
  ),
);
const t0 = performance.now();
for (let i = 0; i < count; i++) {
  if (i % 2 === 0) {
    const s = statuses[(i >> 1) % statuses.length]!;
    nc.publish(s.subject, s.data);
  } else {
    nc.publish("genbrain.org.events", events[(i >> 1) % events.length]!);
  }
  // Let the socket drain now and then: the client buffers everything otherwise.
  if (i % 5000 === 4999) await nc.flush();
}
await nc.flush();
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ published: count, ms }) + "\n");
await nc.close();
