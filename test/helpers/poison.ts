// Poison messages and the agents that fail them, for the dead-letter tests; reading a stream back.
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/** A tasks stream for `role` with one durable consumer `consumer` (max-deliver 3, a short ack wait). */
export async function createPoisonableConsumer(
  jsm: JetStreamManager,
  opts: { prefix?: string; role: string; consumer: string; ackWaitMs?: number; sampleFreq?: string },
): Promise<{ stream: string; subject: string }> {
  const prefix = opts.prefix ?? "genbrain";
  const stream = `AGENT_${opts.role.toUpperCase()}_TASKS`;
  const subject = `${prefix}.agents.${opts.role}.tasks`;
  await jsm.streams.add({ name: stream, subjects: [subject] });
  await jsm.consumers.add(stream, {
    durable_name: opts.consumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: 3,
    ack_wait: nanos(opts.ackWaitMs ?? 1_000),
    ...(opts.sampleFreq ? { sample_freq: opts.sampleFreq } : {}),
  });
  return { stream, subject };
}

/**
 * Delivery counts the server reported, per stream sequence, one entry per delivery seen. Count the
 * entries, not the values: under load nats-server 2.9 was seen reporting a third delivery as 1.
 */
export type Deliveries = Map<number, number[]>;

/**
 * An agent that pulls and never acks, until `done()`; each pull after a message's last delivery is
 * what makes nats-server 2.9 publish its max-deliveries advisory. `onDelivery` sees every delivery
 * with how many times this agent has now seen that message.
 */
export async function failEverything(
  js: JetStreamClient,
  stream: string,
  consumer: string,
  done: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; onDelivery?: (seq: number, seen: number) => Promise<void> | void } = {},
): Promise<Deliveries> {
  const c = await js.consumers.get(stream, consumer);
  const seen: Deliveries = new Map();
  const until = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!(await done())) {
    if (Date.now() > until) throw new Error(`failEverything(${stream}/${consumer}) timed out`);
    const batch = await c.fetch({ max_messages: 256, expires: 1_000 });
    try {
      for await (const m of batch) {
        const counts = seen.get(m.seq) ?? [];
        counts.push(m.info.deliveryCount);
        seen.set(m.seq, counts);
        await opts.onDelivery?.(m.seq, counts.length);
      }
    } catch (err) {
      // A busy test machine can miss a pull's idle heartbeat; the next pull goes on.
      if (!(err instanceof Error && err.message.includes("heartbeats missed"))) throw err;
    }
  }
  return seen;
}

/** Every message of a stream, in order. */
export async function readStream(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const si = await jsm.streams.info(stream);
  const out: StoredMsg[] = [];
  for (let seq = si.state.first_seq; seq <= si.state.last_seq && si.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m) out.push(m);
  }
  return out;
}

/** Messages stored in a stream now. */
export async function streamMessages(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}

/** True when orgwatch's advisory consumer has handled (acked) everything its stream holds. */
export async function advisoriesDrained(
  jsm: JetStreamManager,
  stream = "ORGWATCH_ADVISORIES",
  consumer = "orgwatch",
): Promise<boolean> {
  const ci = await jsm.consumers.info(stream, consumer).catch(() => undefined);
  return ci !== undefined && ci.num_pending === 0 && ci.num_ack_pending === 0;
}
