// What a simulated organization did, as its own events and the server's advisories tell it: the
// truth the kill and pair tests hold orgwatch's output against.
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { MAX_DELIVER } from "../../src/demo/plan.js";
import type { SimulatedOrganization } from "../../src/demo/simulator.js";
import { DEADLETTER_STREAM, taskStreamName, workerName } from "../../src/demo/topology.js";
import { advisoriesDrained, readStream } from "./poison.js";
import { waitFor } from "./wait.js";

export interface SimulatedWork {
  /** Task id → its parent's (chained tasks only). */
  readonly parentOf: Map<string, string>;
  /** Task id → when the simulator published it / an agent finished it (ms). */
  readonly published: Map<string, number>;
  readonly finished: Map<string, number>;
  /**
   * Once the simulator is stopped: pulls the poison agent's consumer (nats-server 2.9 advises a
   * message's death only on the next pull) until every dead task is routed and the advisories are
   * drained; then the dead tasks and the dead-letter stream's task ids, in order.
   */
  drainDeadLetters(advisoryConsumers?: string[]): Promise<{ dead: Set<string>; letters: string[] }>;
}

/** Starts following `sim` (and the server's max-deliveries advisories) on `nc`. */
export function followSimulatedWork(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  sim: SimulatedOrganization,
): SimulatedWork {
  const parentOf = new Map<string, string>();
  const published = new Map<string, number>();
  const finished = new Map<string, number>();
  sim.on("published", ({ task }) => {
    if (task.parent_task_id) parentOf.set(task.task_id, task.parent_task_id);
    published.set(task.task_id, Date.now());
  });
  sim.on("finished", ({ taskId }) => finished.set(taskId, Date.now()));
  // The server's own word: every message it declared dead, whoever took its last delivery (an
  // agent stopping with the simulation can take one without announcing it).
  const declaredDead: { stream: string; seq: number }[] = [];
  nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", {
    callback: (_err, msg) => {
      const a = msg.json<{ stream: string; stream_seq: number }>();
      if (/^AGENT_.+_TASKS$/.test(a.stream)) declaredDead.push({ stream: a.stream, seq: a.stream_seq });
    },
  });
  // Every delivery an agent takes is announced (task.started with its delivery count): a task that
  // had its last delivery and was never acknowledged must reach the dead letters, once.
  const lastDelivered = new Set<string>();
  nc.subscribe("genbrain.org.events", {
    callback: (_err, msg) => {
      const e = msg.json<{ type?: string; task_id?: string; delivery?: number }>();
      if (e.type === "task.started" && e.task_id && (e.delivery ?? 0) >= MAX_DELIVER)
        lastDelivered.add(e.task_id);
    },
  });
  const declaredIds = new Map<string, string>();
  const deadTasks = async () => {
    const dead = new Set<string>();
    for (const id of lastDelivered) if (!finished.has(id)) dead.add(id);
    for (const { stream, seq } of declaredDead) {
      const key = `${stream}/${seq}`;
      if (!declaredIds.has(key)) {
        const sm = await jsm.streams.getMessage(stream, { seq });
        declaredIds.set(key, sm!.json<{ task_id: string }>().task_id);
      }
      dead.add(declaredIds.get(key)!);
    }
    return dead;
  };
  const flaky = sim.story.flaky!;

  return {
    parentOf,
    published,
    finished,
    async drainDeadLetters(advisoryConsumers = ["orgwatch"]) {
      const consumer = await js.consumers.get(taskStreamName(flaky), workerName(flaky));
      let letters: string[] = [];
      let dead = new Set<string>();
      await waitFor(
        async () => {
          const m = await consumer.next({ expires: 1000 });
          if (m && m.info.deliveryCount >= MAX_DELIVER)
            lastDelivered.add(m.json<{ task_id: string }>().task_id);
          letters = (await readStream(jsm, DEADLETTER_STREAM)).map(
            (s) => s.json<{ task_id: string }>().task_id,
          );
          const routed = new Set(letters);
          dead = await deadTasks();
          if (![...dead].every((id) => routed.has(id))) return false;
          for (const c of advisoryConsumers) if (!(await advisoriesDrained(jsm, undefined, c))) return false;
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: "every dead poison task routed" },
      );
      return { dead, letters };
    },
  };
}
