// JetStream advisories captured in orgwatch's own stream, read through a durable consumer, so that
// advisories published while orgwatch is down or restarting are handled when it comes back:
// - max-deliveries: the message is counted once and routed to the dead-letter subject (see
//   deadletter-router.ts), and the advisory is acked only after that;
// - naks and terms: counted;
// - sampled acks ($JS.EVENT.METRIC.CONSUMER.ACK.>): a plain subscription by default (high volume,
//   losing some is acceptable), or captured in the stream too (`advisories.ack-samples capture`).
// Everything goes into the model: org.deadLetters (counters, processing times) and org.tasks /
// org.broadcasts (what happened to each message).
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  JetStreamError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JsMsg,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { Msg, Subscription } from "@nats-io/transport-node";
import {
  ACK_SAMPLE_SUBJECT,
  CONSUMER_ADVISORY_SUBJECTS,
  parseAckSample,
  parseConsumerAdvisory,
  type AckSample,
  type ConsumerAdvisory,
} from "../logic/advisory.js";
import { serverRemovalReason } from "../logic/removal.js";
import type { SignalOutcome, StreamMessageRef } from "../model/tasks/index.js";
import { ConsumerDirectory } from "./consumer-directory.js";
import { DeadLetterRouter } from "./deadletter-router.js";
import { invalidReporter } from "./invalid-input.js";
import { isOwnStream, type RunningSource, type SourceContext } from "./source.js";

/** orgwatch's durable consumer on its advisory stream (instances sharing a server share the work). */
export const ADVISORY_CONSUMER = "orgwatch";

/**
 * The advisory consumer of a replica: a named replica of a pair has its own, so that each sees every
 * advisory (both models whole; dead letters are still routed once, by the ledger and message ids).
 */
export function advisoryConsumerName(replica: string): string {
  return replica === "" ? ADVISORY_CONSUMER : `${ADVISORY_CONSUMER}_${replica}`;
}

const BATCH = 128;
const MAX_ACK_PENDING = 32 * BATCH;
/** Advisories held back unacknowledged at most (their tasks not read yet; see hold()). */
const MAX_HELD = 8 * BATCH;
const FETCH_EXPIRES_MS = 2_000;
const RETRY_MS = 1_000;
/** Dead letters remembered as counted by this process, so a replayed advisory is not counted twice. */
const MAX_REMEMBERED = 100_000;

const nanos = (ms: number) => Math.round(ms * 1_000_000);

export async function startAdvisories(ctx: SourceContext): Promise<RunningSource> {
  const { nc, js, jsm, config, org, log } = ctx;
  const streamName = config["advisories.stream"];
  const consumerName = advisoryConsumerName(config["pair.replica"]);
  const route = config["deadletter.route"];
  const deadLetterSubject = config["deadletter.subject"] ?? `${config["subject-prefix"]}.org.deadletter`;
  const ackSamples = config["advisories.ack-samples"];
  // In a cluster, one replica would make the node holding it a single point of failure.
  const replicas = config["own-streams.replicas"];
  const directory = new ConsumerDirectory(ctx);
  const invalidAdvisory = invalidReporter(org.health, log, "advisory");
  const invalidSample = invalidReporter(org.health, log, "ack_sample");
  const counted = new Set<string>();
  /** Advisories held back (see hold), by their sequence in the advisory stream: first and last held. */
  const held = new Map<number, { first: number; last: number }>();
  let router: DeadLetterRouter | undefined;
  let stopped = false;
  let stopFetch: (() => void) | undefined;
  let wake: (() => void) | undefined;

  const onPoll = (...[result, previous]: Parameters<typeof org.deadLetters.forgetVanished>) => {
    org.deadLetters.forgetVanished(result, previous);
    router?.refreshTarget();
  };
  org.jetstream.on("polled", onPoll);

  function refOf(a: {
    stream: string;
    consumer: string;
    streamSequence: number;
    deliveries: number;
    atMs: number;
  }): StreamMessageRef {
    return {
      stream: a.stream,
      consumer: a.consumer,
      streamSequence: a.streamSequence,
      deliveries: a.deliveries,
      atMs: a.atMs,
    };
  }

  async function labelsFor(stream: string, consumer: string, metric: string) {
    const id = await directory.identify(stream, consumer);
    if (id.overflow) org.health.countOverflow(metric);
    return id;
  }

  /** Counts a dead letter once per process (the ledger key identifies the message's death). */
  function countOnce(key: string, count: () => void): void {
    if (counted.has(key)) return;
    if (counted.size >= MAX_REMEMBERED) counted.delete(counted.values().next().value!);
    counted.add(key);
    count();
  }

  /**
   * A MSG_TERMINATED advisory for a message its stream no longer holds: the server removed it
   * while delivered and unacknowledged (max-age, limits, delete). 2.10.4+ says so in its reason;
   * on 2.9 an agent's own term() looks the same, but leaves the message in the stream.
   */
  async function removedFromStream(advisory: ConsumerAdvisory): Promise<boolean> {
    if (serverRemovalReason(advisory.reason) !== undefined) return true;
    if (advisory.reason) return false; // an agent's term(reason)
    try {
      return (await jsm.streams.getMessage(advisory.stream, { seq: advisory.streamSequence })) === null;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return true;
      throw err;
    }
  }

  async function onRemovedUnacked(advisory: ConsumerAdvisory): Promise<SignalOutcome> {
    let firstSequence: number | undefined;
    try {
      firstSequence = (await jsm.streams.info(advisory.stream)).state.first_seq;
    } catch {
      // The stream went too: the message left with it (reason from what the last poll knew).
    }
    const stream = org.jetstream.current?.streams.get(advisory.stream);
    const task = org.tasks.taskAt(advisory.stream, advisory.streamSequence);
    const reason = org.lostWork.recordRemovedUnacked(
      stream,
      advisory.stream,
      advisory.consumer,
      advisory.streamSequence,
      advisory.atMs,
      task?.publishedMs,
      firstSequence,
    );
    if (reason === undefined) return task ? "applied" : "ignored"; // counted before
    if (task)
      org.tasks.markLost(advisory.stream, advisory.streamSequence, reason, advisory.atMs, advisory.consumer);
    log.warn(
      {
        stream: advisory.stream,
        consumer: advisory.consumer,
        seq: advisory.streamSequence,
        reason,
        task: task?.taskId,
      },
      "unacknowledged message removed from its stream: lost",
    );
    return task ? "applied" : "ignored";
  }

  async function onMaxDeliveries(advisory: ConsumerAdvisory, redelivered: boolean): Promise<SignalOutcome> {
    org.lostWork.recordDeadLetter(advisory.stream, advisory.consumer, advisory.streamSequence);
    const id = await labelsFor(advisory.stream, advisory.consumer, "orgwatch_deadletter_messages_total");
    const count = () =>
      org.deadLetters.countDeadLetter(id.labels, {
        streamSequence: advisory.streamSequence,
        deliveries: advisory.deliveries,
        atMs: advisory.atMs,
      });
    // Every time (idempotent): the task may not have been read when this advisory was first handled.
    const outcome = org.tasks.recordDeadLetter(refOf(advisory));
    const plainKey = `${advisory.stream}\u0000${advisory.consumer}\u0000${advisory.streamSequence}`;
    // A message dying on the dead-letter stream itself is counted, never routed: that would loop.
    const fromDeadLetters =
      id.kind === "deadletter" ||
      (router !== undefined && advisory.stream === (await router.deadLetterStream()));
    if (!router || fromDeadLetters) {
      countOnce(plainKey, count);
      return outcome;
    }

    const result = await router.route(advisory);
    // Already routed: by an earlier attempt at this advisory that died before acking it (counted
    // here, since that process's count died with it), or a second advisory for the same death /
    // a replay of a handled one (the advisory's first delivery to orgwatch: not counted again).
    if (result.published || redelivered) countOnce(result.ledgerKey, count);
    if (result.published) {
      log.info(
        {
          stream: advisory.stream,
          consumer: advisory.consumer,
          seq: advisory.streamSequence,
          deliveries: advisory.deliveries,
          missing: result.missing,
          subject: router.subject,
        },
        "dead letter routed",
      );
    }
    return outcome;
  }

  /** `again`: this process handled it before (and held it back): counted already. */
  async function onAdvisory(
    advisory: ConsumerAdvisory,
    redelivered: boolean,
    again: boolean,
  ): Promise<SignalOutcome> {
    if (isOwnStream(advisory.stream, config)) return "ignored";
    switch (advisory.kind) {
      case "max_deliveries":
        return onMaxDeliveries(advisory, redelivered);
      case "nak": {
        const id = await labelsFor(advisory.stream, advisory.consumer, "orgwatch_consumer_naks_total");
        if (!again) {
          org.deadLetters.countNak(id.labels);
          const state = org.jetstream.current?.consumers.get(`${advisory.stream}/${advisory.consumer}`);
          org.lostWork.recordNak(
            advisory.stream,
            advisory.consumer,
            advisory.streamSequence,
            advisory.deliveries,
            state?.maxDeliver ?? -1,
          );
        }
        return org.tasks.recordNak(refOf(advisory));
      }
      case "terminated": {
        if (await removedFromStream(advisory)) return onRemovedUnacked(advisory);
        const id = await labelsFor(advisory.stream, advisory.consumer, "orgwatch_consumer_terminated_total");
        if (!again) org.deadLetters.countTerminated(id.labels);
        // The task model's contract: a terminated message is done for good, like a dead letter.
        return org.tasks.recordDeadLetter(refOf(advisory));
      }
    }
  }

  async function onAckSample(sample: AckSample, again: boolean): Promise<SignalOutcome> {
    if (isOwnStream(sample.stream, config)) return "ignored";
    const ref = refOf(sample);
    const outcome = org.tasks.recordAck(ref);
    org.lostWork.recordAck(sample.stream, sample.consumer, sample.streamSequence);
    org.broadcasts.recordAck(ref);
    const id = await directory.identify(sample.stream, sample.consumer);
    // Only tasks: broadcasts have their own histogram, and other traffic is not an agent's work.
    if (id.kind === "tasks" && !again)
      org.deadLetters.observeProcessing({ role: id.role, seconds: sample.ackSeconds, ref });
    return outcome;
  }

  /**
   * One captured message; resolves with what became of it for its task ("waiting": the task is not
   * read yet), throws when it must be handled again later.
   */
  async function handle(m: JsMsg, again: boolean): Promise<SignalOutcome> {
    if (m.subject.startsWith("$JS.EVENT.METRIC.")) {
      const parsed = parseAckSample(m.data, Date.now());
      if (!parsed.ok) {
        invalidSample(parsed.reason, m.subject);
        return "ignored";
      }
      return onAckSample(parsed.value, again);
    }
    const parsed = parseConsumerAdvisory(m.data, Date.now());
    if (!parsed.ok) {
      invalidAdvisory(parsed.reason, m.subject);
      return "ignored";
    }
    // Delivered again after a hold of this process's own is not a sign of another's crash.
    return onAdvisory(parsed.value, m.info.deliveryCount > 1 && !again, again);
  }

  /**
   * Holds back (does not acknowledge) an advisory about a task not read yet: kept only in memory
   * until the task is read, it would be lost with a crash. Delivered again after the ack wait, it
   * is handled again, by then (or by the next orgwatch) with its task. Bounded in number (MAX_HELD
   * at once) and in time: a task still unread after a few ack waits is not coming (its reader is
   * cut off, or it never was a task), so the advisory is acknowledged as handled; the task's end
   * then comes from the polls or its timeout. Holds whose redelivery never came (the advisory
   * expired) are forgotten after the same time.
   */
  function hold(seq: number): boolean {
    const now = Date.now();
    const limit = 4 * config["advisories.ack-wait"];
    for (const [s, { last }] of held) if (now - last > limit) held.delete(s);
    const previous = held.get(seq);
    if (previous ? now - previous.first > limit : held.size >= MAX_HELD) return false;
    held.set(seq, { first: previous?.first ?? now, last: now });
    return true;
  }

  async function ensureStream(): Promise<void> {
    const subjects: string[] = [...CONSUMER_ADVISORY_SUBJECTS];
    if (ackSamples === "capture") subjects.push(ACK_SAMPLE_SUBJECT);
    const maxAge = nanos(config["advisories.max-age"]);
    try {
      const si = await jsm.streams.info(streamName);
      const have = [...(si.config.subjects ?? [])].sort().join(" ");
      if (have !== [...subjects].sort().join(" ") || si.config.max_age !== maxAge) {
        await jsm.streams.update(streamName, { ...si.config, subjects, max_age: maxAge });
        log.info({ stream: streamName, subjects }, "advisory stream updated");
      }
      if (
        si.config.storage !== config["advisories.storage"] ||
        si.config.retention !== config["advisories.retention"]
      ) {
        log.warn(
          { stream: streamName, storage: si.config.storage, retention: si.config.retention },
          "the advisory stream exists with another storage or retention; it is used as it is (delete it to change them)",
        );
      }
      if ((si.config.num_replicas || 1) !== replicas) {
        log.warn(
          { stream: streamName, replicas: si.config.num_replicas, wanted: replicas },
          `the advisory stream exists with another number of replicas; it is used as it is (nats stream edit ${streamName} --replicas ${replicas})`,
        );
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      const cfg: Partial<StreamConfig> & { name: string } = {
        name: streamName,
        description: "JetStream advisories captured by orgwatch (dead letters, naks, terms)",
        subjects,
        retention:
          config["advisories.retention"] === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
        storage: config["advisories.storage"] === "memory" ? StorageType.Memory : StorageType.File,
        max_age: maxAge,
        discard: DiscardPolicy.Old,
        num_replicas: replicas,
      };
      await jsm.streams.add(cfg);
      log.info({ stream: streamName, subjects }, "advisory stream created");
    }
  }

  async function ensureConsumer(): Promise<void> {
    const ackWait = nanos(config["advisories.ack-wait"]);
    const cfg: Partial<ConsumerConfig> = {
      durable_name: consumerName,
      description: "orgwatch: dead-letter routing and delivery metrics",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ackWait,
      // Acks wait for the next save of chain state (about a second): room for that many.
      max_ack_pending: MAX_ACK_PENDING,
    };
    try {
      const ci = await jsm.consumers.info(streamName, consumerName);
      if (ci.config.ack_wait !== ackWait || (ci.config.max_ack_pending ?? 0) < MAX_ACK_PENDING)
        await jsm.consumers.update(streamName, consumerName, {
          ack_wait: ackWait,
          max_ack_pending: MAX_ACK_PENDING,
        });
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(streamName, cfg);
    }
  }

  async function setUp(): Promise<void> {
    await ensureStream();
    await ensureConsumer();
    if (route && !router) {
      router = await DeadLetterRouter.open(nc, js, jsm, {
        subject: deadLetterSubject,
        storage: config["advisories.storage"],
        // As long as advisories are kept (a replay cannot be older), and never under a day.
        ledgerTtlMs: Math.max(config["advisories.max-age"], 24 * 3_600_000),
        replicas,
      });
    }
  }

  /**
   * Acknowledges a handled advisory once the task state it changed is saved (write-ahead): acked
   * before, a crash in between would lose a task's completion or dead letter for good. Not acked
   * (stopping, the state not saved): delivered again to the next orgwatch, which handles it again.
   */
  function ackWhenSaved(m: JsMsg): void {
    void org.tasks.whenSaved().then(() => {
      try {
        m.ack();
      } catch (err) {
        log.debug({ err: (err as Error).message }, "advisory not acknowledged; it will be handled again");
      }
    });
  }

  /** Pulls and handles advisories until stopped; `healthy` is called after each batch handled in full. */
  async function consumeBatches(healthy: () => void): Promise<void> {
    const consumer = await js.consumers.get(streamName, consumerName);
    while (!stopped) {
      const batch = await consumer.fetch({ max_messages: BATCH, expires: FETCH_EXPIRES_MS });
      stopFetch = () => batch.stop();
      try {
        for await (const m of batch) {
          // A failure leaves the advisory unacked: it is handled again after the consumer's ack wait.
          // The rest of the batch waits too (the same failure would most likely hit them).
          const again = held.has(m.seq);
          const outcome = await handle(m, again);
          if (outcome === "waiting" && hold(m.seq)) continue;
          held.delete(m.seq);
          ackWhenSaved(m);
        }
      } catch (err) {
        // A busy process can miss a pull's idle heartbeat: nothing is lost, the next pull goes on.
        if (!(err instanceof JetStreamError && err.message === "heartbeats missed")) throw err;
      } finally {
        stopFetch = undefined;
      }
      healthy();
    }
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  async function run(firstSetUp: Promise<void>): Promise<void> {
    let setUpDone = firstSetUp;
    let failing = false;
    while (!stopped) {
      try {
        await setUpDone;
        await consumeBatches(() => (failing = false));
      } catch (err) {
        if (stopped) break;
        // Once per outage at warn (NATS down, no JetStream, a dead-letter stream refusing), then debug.
        const level = failing ? "debug" : "warn";
        failing = true;
        log[level](
          { err: (err as Error).message, stream: streamName },
          "advisories: cannot read or route; retrying (unacked advisories are handled again)",
        );
        await sleep(RETRY_MS);
        setUpDone = setUp();
      }
    }
  }

  // The stream exists once start resolves: from then on no advisory is missed.
  const firstSetUp = setUp();
  await firstSetUp.catch(() => undefined);
  const loop = run(firstSetUp);

  let sampleSub: Subscription | undefined;
  if (ackSamples === "subscribe") {
    sampleSub = nc.subscribe(ACK_SAMPLE_SUBJECT, {
      callback: (err: Error | null, m: Msg) => {
        if (err) return;
        const parsed = parseAckSample(m.data, Date.now());
        if (!parsed.ok) return invalidSample(parsed.reason, m.subject);
        onAckSample(parsed.value, false).catch((e: unknown) =>
          log.debug({ err: (e as Error).message }, "ack sample not observed"),
        );
      },
    });
  }

  return {
    async stop() {
      stopped = true;
      org.jetstream.off("polled", onPoll);
      directory.close();
      sampleSub?.unsubscribe();
      stopFetch?.();
      wake?.();
      await loop;
    },
  };
}
