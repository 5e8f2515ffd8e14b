// Copies a message that exhausted max-deliver to the dead-letter subject, exactly once.
//
// Order, so that nothing is lost and nothing is routed twice, whatever dies when:
//   read the original by sequence → look its death up in the ledger (a KV bucket of orgwatch's own)
//   → publish (to a stream: with a Nats-Msg-Id, and wait for the stream's ack; to a core subject:
//   publish and flush) → record it in the ledger → the caller acks the advisory.
// A crash before the ledger write replays the advisory: a stream drops the second copy by its
// Nats-Msg-Id (within its duplicate window); the ledger covers everything after that, and the core
// subject case. The ledger keeps an entry as long as advisories are kept, so no replay outlives it.
import { headers, type NatsConnection } from "@nats-io/transport-node";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import {
  buildDeadLetter,
  deadLetterSize,
  withoutPayload,
  type ConsumerAdvisory,
  type DeadLetter,
  type OriginalMessage,
} from "../logic/advisory.js";

/** orgwatch's ledger of routed dead letters (its stream, KV_orgwatch_deadletters, is skipped by the poller). */
export const LEDGER_BUCKET = "orgwatch_deadletters";

/** Room left under the server's max_payload for the protocol line. */
const PAYLOAD_MARGIN = 512;

export interface RouteResult {
  /** The dead letter's identity (stable across replays). */
  readonly ledgerKey: string;
  /** False when the ledger or the dead-letter stream showed an earlier attempt had already routed it. */
  readonly published: boolean;
  /** The original was gone from its stream; a small record was routed instead. */
  readonly missing: boolean;
}

export interface RouterOptions {
  readonly subject: string;
  readonly storage: "file" | "memory";
  /** How long the ledger keeps an entry (ms): at least as long as advisories are kept. */
  readonly ledgerTtlMs: number;
  /** Replicas of the ledger bucket when it is created (own-streams.replicas). */
  readonly replicas: number;
}

function isNotFound(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

export class DeadLetterRouter {
  /** Whether the dead-letter subject is stored by a stream, and which; asked again after each poll. */
  private target: Promise<string | undefined> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly ledger: KV,
    private readonly options: RouterOptions,
  ) {}

  static async open(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    options: RouterOptions,
  ): Promise<DeadLetterRouter> {
    const ledger = await new Kvm(js).create(LEDGER_BUCKET, {
      history: 1,
      ttl: options.ledgerTtlMs,
      storage: options.storage,
      replicas: options.replicas,
      description: "dead letters orgwatch routed (key: stream.consumer.sequence.stored-time)",
    });
    return new DeadLetterRouter(nc, js, jsm, ledger, options);
  }

  get subject(): string {
    return this.options.subject;
  }

  /** Forget what the dead-letter subject is bound to (called after each poll: streams come and go). */
  refreshTarget(): void {
    this.target = undefined;
  }

  /** The stream storing the dead-letter subject, undefined when it is a core subject. */
  deadLetterStream(): Promise<string | undefined> {
    if (!this.target) {
      const found = this.jsm.streams.find(this.options.subject).catch((err: unknown) => {
        if (isNotFound(err, JetStreamApiCodes.StreamNotFound)) return undefined;
        throw err;
      });
      found.catch(() => (this.target = undefined));
      this.target = found;
    }
    return this.target;
  }

  async route(advisory: ConsumerAdvisory): Promise<RouteResult> {
    const original = await this.readOriginal(advisory.stream, advisory.streamSequence);
    let letter = buildDeadLetter(advisory, original);
    const maxPayload = this.nc.info?.max_payload ?? 1024 * 1024;
    if (deadLetterSize(letter) > maxPayload - PAYLOAD_MARGIN)
      letter = withoutPayload(letter, letter.data.length);

    const result = { ledgerKey: letter.ledgerKey, missing: original === undefined };
    if ((await this.ledger.get(letter.ledgerKey)) !== null) return { ...result, published: false };
    const fresh = await this.publish(letter);
    await this.ledger.put(
      letter.ledgerKey,
      JSON.stringify({ msg_id: letter.msgId, routed: new Date().toISOString() }),
    );
    return { ...result, published: fresh };
  }

  /** The original message, or undefined when it (or its whole stream) is gone. */
  private async readOriginal(stream: string, seq: number): Promise<OriginalMessage | undefined> {
    let stored;
    try {
      stored = await this.jsm.streams.getMessage(stream, { seq });
    } catch (err) {
      if (isNotFound(err, JetStreamApiCodes.StreamNotFound)) return undefined;
      throw err;
    }
    if (!stored) return undefined;
    const kept: [string, string][] = [];
    for (const [k, values] of stored.header) for (const v of values) kept.push([k, v]);
    return { subject: stored.subject, time: stored.timestamp, headers: kept, data: stored.data };
  }

  /** Publishes; false when the dead-letter stream already held this dead letter (a replay). */
  private async publish(letter: DeadLetter): Promise<boolean> {
    const h = headers();
    for (const [k, v] of letter.headers) h.append(k, v);
    const stream = await this.deadLetterStream();
    if (stream !== undefined) {
      try {
        const ack = await this.js.publish(this.options.subject, letter.data, { headers: h });
        return !ack.duplicate;
      } catch (err) {
        // The stream may have gone since it was looked up: look again on the retry.
        this.refreshTarget();
        throw err;
      }
    }
    this.nc.publish(this.options.subject, letter.data, { headers: h });
    // The server has it once the flush's PONG returns: the closest thing to an ack a core subject has.
    await this.nc.flush();
    return true;
  }
}
