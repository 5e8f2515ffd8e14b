// The reference topology (shared/reference): a task stream per role, durable {role}-worker
// consumers (explicit ack, max-deliver 3, ack-wait 30m), a broadcasts stream with one consumer per agent.
import { AckPolicy, DeliverPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
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
