// The reference topology, created or brought up to date (a simulator restarted on a kept store,
// perhaps at another pace, must not fail on streams that already exist).
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import {
  ACK_WAIT_MINUTES,
  BROADCAST_ACK_WAIT_MINUTES,
  MAX_DELIVER,
  tasksSubject,
  type AgentSpec,
  type Scale,
} from "./plan.js";

const MAX_AGE_MS = 72 * 3600_000;
/** Below this an ack wait is a race with the agent's own timers, whatever the pace. */
const MIN_ACK_WAIT_MS = 1000;

export const BROADCASTS_STREAM = "ORG_BROADCASTS";
export const DEADLETTER_STREAM = "ORG_DEADLETTER";

export function taskStreamName(role: string): string {
  return `AGENT_${role.toUpperCase()}_TASKS`;
}
export function workerName(role: string): string {
  return `${role}-worker`;
}
export function broadcastConsumerName(role: string): string {
  return `${role}-broadcasts`;
}

/** Simulated minutes → real milliseconds at `pace`. */
export function realMs(minutes: number, pace: number): number {
  return (minutes * 60_000) / pace;
}

function isNotFound(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound)
  );
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }) {
  try {
    const { config: current } = await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, { ...current, subjects: config.subjects, max_age: config.max_age });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig>) {
  const name = config.durable_name!;
  try {
    await jsm.consumers.info(stream, name);
    const { ack_wait, max_deliver, sample_freq } = config;
    await jsm.consumers.update(stream, name, { ack_wait, max_deliver, sample_freq });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(stream, config);
  }
}

/** The reference's agent consumer: durable, explicit ack, every message, max-deliver 3, acks sampled. */
function agentConsumer(name: string, ackWait: number): Partial<ConsumerConfig> {
  return {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: MAX_DELIVER,
    ack_wait: ackWait,
    sample_freq: "100%",
  };
}

/**
 * One task stream per agent with its durable `{role}-worker` (explicit ack, max-deliver 3, the
 * 30-minute ack wait scaled by the pace), the broadcasts stream with one consumer per agent, and
 * the dead-letter stream. Acks are sampled at 100% so that processing times and chains are exact.
 */
export async function ensureTopology(
  jsm: JetStreamManager,
  agents: readonly AgentSpec[],
  scale: Scale,
  replicas = 1,
): Promise<void> {
  // Whole milliseconds: JetStream takes durations as integer nanoseconds (5 min / 288 is not one).
  const ackWait = nanos(Math.round(Math.max(MIN_ACK_WAIT_MS, realMs(ACK_WAIT_MINUTES, scale.pace))));
  const broadcastAckWait = nanos(
    Math.round(Math.max(MIN_ACK_WAIT_MS, realMs(BROADCAST_ACK_WAIT_MINUTES, scale.pace))),
  );
  const durable = { storage: StorageType.File, max_age: nanos(MAX_AGE_MS), num_replicas: replicas };
  for (const { role } of agents) {
    const stream = taskStreamName(role);
    await ensureStream(jsm, { name: stream, subjects: [tasksSubject(scale.prefix, role)], ...durable });
    await ensureConsumer(jsm, stream, agentConsumer(workerName(role), ackWait));
  }
  await ensureStream(jsm, {
    name: BROADCASTS_STREAM,
    subjects: [`${scale.prefix}.org.broadcasts`],
    ...durable,
  });
  for (const { role } of agents) {
    await ensureConsumer(
      jsm,
      BROADCASTS_STREAM,
      agentConsumer(broadcastConsumerName(role), broadcastAckWait),
    );
  }
  await ensureStream(jsm, {
    name: DEADLETTER_STREAM,
    subjects: [`${scale.prefix}.org.deadletter`],
    ...durable,
  });
}
