// The workload of bench/chains.ts, in its own process: chains of three tasks (a → b → c) started at
// a steady rate, each task pulled by its agent's durable consumer, acked, announced with a
// task.completed event, and (steps 1 and 2) followed by its chained task carrying parent_task_id.
// argv: <nats url> <chains> <tasks per second> <output file>. Writes {taskId: completion epoch ms}.
import { writeFileSync } from "node:fs";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

export const CHAIN_ROLES = ["alpha", "beta", "gamma"] as const;

const [url, chainsArg, rateArg, out] = process.argv.slice(2);
const chains = Number(chainsArg);
const tasksPerSecond = Number(rateArg);
const nc = await connect({ servers: url!, name: "bench-chain-workload" });
const js = jetstream(nc);
const completedAt: Record<string, number> = {};
const total = chains * CHAIN_ROLES.length;
let done = 0;
let finish: () => void;
const finished = new Promise<void>((r) => (finish = r));

const subject = (role: string) => `genbrain.agents.${role}.tasks`;
const agents = CHAIN_ROLES.map(async (role, step) => {
  const consumer = await js.consumers.get(`AGENT_${role.toUpperCase()}_TASKS`, `${role}-worker`);
  const messages = await consumer.consume({ max_messages: 500 });
  for await (const m of messages) {
    const task = m.json<{ task_id: string; chain: number }>();
    m.ack();
    const now = Date.now();
    completedAt[task.task_id] = now;
    nc.publish(
      "genbrain.org.events",
      JSON.stringify({ type: "task.completed", role, task_id: task.task_id, ts: now / 1000 }),
    );
    const next = CHAIN_ROLES[step + 1];
    if (next !== undefined) {
      nc.publish(
        subject(next),
        JSON.stringify({
          task_id: `c${task.chain}-${step + 2}`,
          type: `step_${step + 2}`,
          chain: task.chain,
          parent_task_id: task.task_id,
        }),
      );
    }
    if (++done === total) finish();
  }
});

// Step 1 of each chain at tasksPerSecond / 3 chains a second (every chain makes three tasks).
const chainsPerSecond = tasksPerSecond / CHAIN_ROLES.length;
const t0 = performance.now();
for (let i = 0; i < chains; i++) {
  const due = t0 + (i / chainsPerSecond) * 1000;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  nc.publish(subject(CHAIN_ROLES[0]), JSON.stringify({ task_id: `c${i}-1`, type: "step_1", chain: i }));
}
const offeredSeconds = (performance.now() - t0) / 1000;
await Promise.race([finished, new Promise((r) => setTimeout(r, 120_000))]);
writeFileSync(out!, JSON.stringify({ completedAt, offeredSeconds, done }));
await nc.drain();
process.exit(0);
void agents;
