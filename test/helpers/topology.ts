// The reference topology (shared/reference): a task stream per role, durable {role}-worker
// consumers (explicit ack, max-deliver 3, ack-wait 30m), a broadcasts stream with one consumer per agent.
import {
  AckPolicy,
  DeliverPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

export interface TopologyOptions {
  prefix?: string;
  roles: string[];
  /** Roles that get a broadcast consumer; all roles when absent. */
  broadcastRoles?: string[];
  ackWaitMs?: number;
  maxDeliver?: number;
}

export async function createReferenceTopology(
  jsm: JetStreamManager,
  options: TopologyOptions,
): Promise<void> {
  const prefix = options.prefix ?? "genbrain";
  const ackWait = nanos(options.ackWaitMs ?? 30 * 60_000);
  for (const role of options.roles) {
    const stream = `AGENT_${role.toUpperCase()}_TASKS`;
    await jsm.streams.add({
      name: stream,
      subjects: [`${prefix}.agents.${role}.tasks`],
      storage: StorageType.File,
      max_age: nanos(72 * 3600_000),
      num_replicas: 1,
    });
    await jsm.consumers.add(stream, {
      durable_name: `${role}-worker`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_deliver: options.maxDeliver ?? 3,
      ack_wait: ackWait,
    });
  }
  await jsm.streams.add({
    name: "ORG_BROADCASTS",
    subjects: [`${prefix}.org.broadcasts`],
    storage: StorageType.File,
    max_age: nanos(72 * 3600_000),
  });
  for (const role of options.broadcastRoles ?? options.roles) {
    await jsm.consumers.add("ORG_BROADCASTS", {
      durable_name: `${role}-broadcasts`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(5 * 60_000),
    });
  }
}

/**
 * One role's task stream (`AGENT_{ROLE}_TASKS` on `genbrain.agents.{role}.tasks`) with the given
 * stream settings, and reference-like durable consumers on it (explicit ack, max-deliver 3, ack
 * wait 30m) with the given overrides.
 */
export async function addTaskStream(
  jsm: JetStreamManager,
  role: string,
  stream: Partial<StreamConfig> = {},
  consumers: string[] = [`${role}-worker`],
  consumer: Partial<ConsumerConfig> = {},
): Promise<{ stream: string; subject: string }> {
  const name = `AGENT_${role.toUpperCase()}_TASKS`;
  const subject = `genbrain.agents.${role}.tasks`;
  await jsm.streams.add({ name, subjects: [subject], ...stream });
  for (const durable of consumers) {
    await jsm.consumers.add(name, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_deliver: 3,
      ack_wait: nanos(30 * 60_000),
      ...consumer,
    });
  }
  return { stream: name, subject };
}
