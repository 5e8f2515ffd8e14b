// What the JetStream poller last saw: every stream and consumer of the organization, classified.
// Written only by sources/jetstream-poller.ts; read by the exporters and by derived models.
import { EventEmitter } from "node:events";
import type { Kind } from "../logic/classify.js";
import type { ConsumerStatus } from "../logic/consumer-status.js";
import { backgroundTurn } from "../turns.js";

export interface StreamState {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly kind: Kind;
  readonly role: string;
  readonly messages: number;
  readonly bytes: number;
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly consumers: number;
  readonly storage: "file" | "memory";
  readonly replicas: number;
  /** Max age in milliseconds, 0 = unlimited. */
  readonly maxAgeMs: number;
  /** Limits on what the stream keeps; -1 = unlimited. */
  readonly maxMsgs: number;
  readonly maxBytes: number;
  readonly maxMsgsPerSubject: number;
  /** Stored time of the first message (epoch ms), when the stream holds any. */
  readonly firstMs: number | undefined;
  /** How many sequences inside [first, last] were deleted (interior gaps). */
  readonly numDeleted: number;
  /** Those sequences, ascending, read when numDeleted > 0 (one STREAM.INFO when it changes). */
  readonly deleted: readonly number[] | undefined;
  /** The JetStream cluster holding the stream; undefined when the server is not clustered. */
  readonly cluster: string | undefined;
  /** Direct get enabled: message reads go to any replica, not the leader's API. */
  readonly allowDirect: boolean;
}

export interface ConsumerState {
  readonly stream: string;
  readonly name: string;
  readonly kind: Kind;
  readonly role: string;
  readonly filterSubjects: readonly string[];
  /** The queue group a push consumer's subscribers share; undefined for pull consumers and plain push ones. */
  readonly deliverGroup: string | undefined;
  readonly ackPolicy: string;
  /** Created with a durable name; ephemeral consumers (tools, orgwatch's own readers) are nobody's workers. */
  readonly durable: boolean;
  /** Ack sampling as configured ("100%"); "" when off. */
  readonly sampleFrequency: string;
  /** Not yet delivered. */
  readonly pending: number;
  /** Delivered, not acknowledged. */
  readonly ackPending: number;
  readonly redelivered: number;
  readonly waitingPulls: number;
  readonly deliveredStreamSequence: number;
  /** Counts every delivery, redeliveries included. */
  readonly deliveredConsumerSequence: number;
  readonly ackFloorStreamSequence: number;
  readonly ackFloorConsumerSequence: number;
  /** When the consumer was created (epoch ms): a consumer deleted and re-created starts afresh. */
  readonly createdMs: number | undefined;
  /** Epoch milliseconds; undefined when the server does not say (2.9) or nothing happened yet. */
  readonly lastDeliveryMs: number | undefined;
  readonly lastAckMs: number | undefined;
  readonly ackWaitMs: number;
  /** -1 unlimited. */
  readonly maxDeliver: number;
  /**
   * Stream sequence and stored time (epoch ms) of the oldest unacknowledged message: the first
   * message of the consumer's filter after its ack floor. Undefined when nothing is unacknowledged.
   * On nats-server 2.9 a message that exhausted max-deliver stays here (the ack floor stays below
   * it) even though lag is 0.
   */
  readonly oldestUnackedSequence: number | undefined;
  readonly oldestUnackedMs: number | undefined;
  /** Burrow-style evaluation over the last polls; see logic/consumer-status.ts. */
  readonly status: ConsumerStatus;
  /** Acknowledgements per second over --backpressure.window (logic/ack-rate.ts); undefined until two polls. */
  readonly ackRatePerSecond: number | undefined;
  /** Lag ÷ that rate: 0 with no lag, Infinity with lag and no acks, undefined while the rate is unknown. */
  readonly drainEtaSeconds: number | undefined;
}

export interface PollResult {
  /** Epoch milliseconds when the poll started. */
  readonly at: number;
  readonly streams: ReadonlyMap<string, StreamState>;
  /** Keyed by `${stream}/${consumer}`. */
  readonly consumers: ReadonlyMap<string, ConsumerState>;
  /** JetStream API requests the poll sent. */
  readonly requests: number;
  /** The server that answered (its id changes when it restarts), and its version. */
  readonly serverId?: string;
  readonly serverVersion?: string;
}

export function consumerKey(stream: string, consumer: string): string {
  return `${stream}/${consumer}`;
}

/**
 * The consumer group whose members a consumer delivers to (OTel `messaging.consumer.group.name`):
 * its deliver group when its subscribers share one, else the consumer itself, by name.
 */
export function consumerGroupOf(c: Pick<ConsumerState, "name" | "deliverGroup">): string {
  return c.deliverGroup ?? c.name;
}

interface JetStreamEvents {
  /**
   * A poll completed; listeners derive their own views (broadcast acks, roster, findings). A
   * listener with much to do may return the rest as steps (a generator): see applyPollYielding.
   */
  polled: [result: PollResult, previous: PollResult | undefined];
  /** Every "polled" listener has run: the whole model reflects this poll (the console shows it). */
  applied: [result: PollResult];
}

type PolledListener = (result: PollResult, previous: PollResult | undefined) => unknown;

/** What a "polled" listener returned, if it is work still to do (an iterator of steps). */
function stepsOf(returned: unknown): Iterator<unknown> | undefined {
  if (typeof returned !== "object" || returned === null) return undefined;
  const next = (returned as { next?: unknown }).next;
  return typeof next === "function" ? (returned as Iterator<unknown>) : undefined;
}

export class JetStreamModel extends EventEmitter<JetStreamEvents> {
  constructor() {
    super();
    // Every derived part of the model and the console listen to polls: more than Node's default ten.
    this.setMaxListeners(50);
  }

  current: PollResult | undefined;

  /** Every listener, and every step a listener returns, at once. */
  applyPoll(result: PollResult): void {
    const previous = this.current;
    this.current = result;
    for (const listener of this.rawListeners("polled") as PolledListener[]) {
      const steps = stepsOf(listener.call(this, result, previous));
      if (steps) while (!steps.next().done);
    }
    this.emit("applied", result);
  }

  /**
   * applyPoll with a turn of the event loop between listeners, and between the steps of a listener
   * that returns steps: at 10,000 consumers each derived view (findings, tasks, broadcasts, roster,
   * the metrics text) takes milliseconds to tens of them, and run back to back they would stall the
   * loop for their sum. Resolves when every listener has run; one removed meanwhile (its source
   * stopping) is skipped; a listener's error rejects. A listener's steps once started are finished,
   * even when a newer poll comes meanwhile: half a view would be neither poll's.
   */
  async applyPollYielding(result: PollResult): Promise<void> {
    const previous = this.current;
    this.current = result;
    const turn = backgroundTurn;
    const listeners = this.rawListeners("polled") as PolledListener[];
    for (const [i, listener] of listeners.entries()) {
      if (i > 0) await turn();
      if (this.current !== result) return; // a newer poll was applied meanwhile (applyPoll by hand)
      if (!this.rawListeners("polled").includes(listener)) continue;
      const steps = stepsOf(listener.call(this, result, previous));
      if (steps) while (!steps.next().done) await turn();
    }
    this.emit("applied", result);
  }
}
