// Dead letters for people (DESIGN.md §9): listed, read and replayed, by the console's API and by
// `orgwatch deadletters`. Reads are stream message gets by sequence on the dead-letter stream — no
// consumer, so looking changes nothing. A replay republishes the original payload and headers to the
// original subject once: recorded first in orgwatch's KV bucket of replays with an atomic create (a
// second replay, from any orgwatch or terminal, finds the record: refused at any time, not only in
// the stream's duplicate window), then published with a Nats-Msg-Id derived from the dead letter.
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Config } from "../config/schema.js";
import {
  payloadView,
  replayPlan,
  summarise,
  type DeadLetterSummary,
  type PayloadView,
  type ReplayPlan,
  type StoredDeadLetter,
} from "../logic/deadletter-view.js";

/** orgwatch's record of replayed dead letters (its stream, KV_orgwatch_replays, is skipped by the poller). */
export const REPLAYS_BUCKET = "orgwatch_replays";

/** Dead letters read at most for one list (a filter that matches few still answers promptly). */
const MAX_SCANNED = 2000;
export const MAX_LIST = 500;

export class DeadLetterError extends Error {
  constructor(
    readonly code: 400 | 404 | 409 | 502 | 503,
    message: string,
  ) {
    super(message);
    this.name = "DeadLetterError";
  }
}

export interface ListQuery {
  readonly role?: string | undefined;
  /** Only dead letters stored at or after this time. */
  readonly sinceMs?: number | undefined;
  readonly limit?: number | undefined;
}

export interface DeadLetterList {
  /** The stream storing the dead-letter subject; undefined when it is a core subject (nothing kept). */
  readonly stream: string | undefined;
  readonly subject: string;
  readonly items: DeadLetterSummary[];
  /** More matched than were read (the limit, or the scan bound). */
  readonly truncated: boolean;
}

export interface ReplayRecord {
  readonly at: string;
  readonly by: string;
  readonly subject: string;
  readonly msgId: string;
  /** Where the replay was stored, once published. */
  readonly stream?: string;
  readonly seq?: number;
}

export interface DeadLetterDetail {
  readonly summary: DeadLetterSummary;
  readonly headers: readonly (readonly [string, string])[];
  readonly payload: PayloadView;
  /** What a replay would publish where, or why it can't. */
  readonly replay:
    | { readonly possible: true; readonly subject: string; readonly msgId: string; readonly headers: number }
    | { readonly possible: false; readonly reason: string };
  readonly replayed: ReplayRecord | undefined;
}

export interface ReplayResult {
  readonly id: number;
  readonly subject: string;
  readonly msgId: string;
  readonly replayOf: string;
  readonly stream: string;
  readonly seq: number;
  readonly role: string;
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

export function deadLetterSubject(config: Config): string {
  return config["deadletter.subject"] ?? `${config["subject-prefix"]}.org.deadletter`;
}

export class DeadLetterDesk {
  private replays: Promise<KV> | undefined;

  private constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly config: Config,
  ) {}

  static async open(nc: NatsConnection, config: Config): Promise<DeadLetterDesk> {
    return new DeadLetterDesk(await jetstreamManager(nc, { checkAPI: false }), jetstream(nc), config);
  }

  get subject(): string {
    return deadLetterSubject(this.config);
  }

  /** The stream storing the dead-letter subject, undefined for a core subject. */
  async stream(): Promise<string | undefined> {
    try {
      return await this.jsm.streams.find(this.subject);
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return undefined;
      throw new DeadLetterError(503, `cannot find the dead-letter stream: ${(err as Error).message}`);
    }
  }

  private async read(stream: string, seq: number): Promise<StoredDeadLetter | undefined> {
    let m;
    try {
      m = await this.jsm.streams.getMessage(stream, { seq });
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.NoMessageFound)) return undefined;
      throw new DeadLetterError(503, `cannot read ${stream} #${seq}: ${(err as Error).message}`);
    }
    if (!m) return undefined;
    const headers: [string, string][] = [];
    if (m.header) for (const [k, values] of m.header) for (const v of values) headers.push([k, v]);
    return { seq: m.seq, subject: m.subject, storedMs: m.time.getTime(), headers, data: m.data };
  }

  /** Newest first. */
  async list(query: ListQuery = {}): Promise<DeadLetterList> {
    const limit = Math.min(Math.max(1, query.limit ?? 50), MAX_LIST);
    const stream = await this.stream();
    if (stream === undefined) return { stream, subject: this.subject, items: [], truncated: false };
    const info = await this.jsm.streams.info(stream).catch((err: unknown) => {
      throw new DeadLetterError(503, `cannot read ${stream}: ${(err as Error).message}`);
    });
    const prefix = this.config["subject-prefix"];
    const items: DeadLetterSummary[] = [];
    let scanned = 0;
    let truncated = false;
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0; seq--) {
      if (scanned++ >= MAX_SCANNED || items.length >= limit) {
        truncated = true;
        break;
      }
      const letter = await this.read(stream, seq);
      if (!letter || letter.subject !== this.subject) continue;
      if (query.sinceMs !== undefined && letter.storedMs < query.sinceMs) break;
      const summary = summarise(letter, prefix);
      if (query.role !== undefined && query.role !== "" && summary.role !== query.role) continue;
      items.push(summary);
    }
    return { stream, subject: this.subject, items, truncated };
  }

  private async letter(id: number): Promise<{ stream: string; letter: StoredDeadLetter }> {
    if (!Number.isSafeInteger(id) || id < 1)
      throw new DeadLetterError(400, "a dead letter's id is a positive integer");
    const stream = await this.stream();
    if (stream === undefined)
      throw new DeadLetterError(404, `no stream stores ${this.subject}: dead letters are not kept`);
    const letter = await this.read(stream, id);
    if (!letter) throw new DeadLetterError(404, `no dead letter ${id} in ${stream}`);
    return { stream, letter };
  }

  async show(id: number): Promise<DeadLetterDetail> {
    const { stream, letter } = await this.letter(id);
    const summary = summarise(letter, this.config["subject-prefix"]);
    const planned = replayPlan(letter, stream);
    const replayed = "plan" in planned ? await this.replayRecord(planned.plan.recordKey) : undefined;
    return {
      summary,
      headers: letter.headers,
      payload: payloadView(letter.data),
      replay:
        "plan" in planned
          ? {
              possible: true,
              subject: planned.plan.subject,
              msgId: planned.plan.msgId,
              headers: planned.plan.headers.length,
            }
          : { possible: false, reason: planned.refused },
      replayed,
    };
  }

  /** Republishes the dead letter once; `by` names who asked (the audit log's and the record's). */
  async replay(id: number, by: string): Promise<ReplayResult> {
    const { stream, letter } = await this.letter(id);
    const planned = replayPlan(letter, stream);
    if ("refused" in planned)
      throw new DeadLetterError(409, `dead letter ${id} cannot be replayed: ${planned.refused}`);
    const plan = planned.plan;
    const kv = await this.replaysBucket(true);
    const record: ReplayRecord = {
      at: new Date().toISOString(),
      by,
      subject: plan.subject,
      msgId: plan.msgId,
    };
    let revision: number;
    try {
      revision = await kv.create(plan.recordKey, JSON.stringify(record));
    } catch (err) {
      const earlier = await this.replayRecord(plan.recordKey).catch(() => undefined);
      if (
        earlier ||
        isApiError(err, JetStreamApiCodes.StreamWrongLastSequence) ||
        /wrong last sequence|exists/i.test(String(err))
      )
        throw new DeadLetterError(
          409,
          `dead letter ${id} was already replayed${earlier ? ` at ${earlier.at} by ${earlier.by}` : ""}`,
        );
      throw new DeadLetterError(503, `cannot record the replay: ${(err as Error).message}`);
    }
    let ack;
    try {
      ack = await this.publish(plan);
    } catch (err) {
      // Not published: the record goes, so that it can be tried again.
      await kv.delete(plan.recordKey, { previousSeq: revision }).catch(() => undefined);
      throw new DeadLetterError(502, `could not publish to ${plan.subject}: ${(err as Error).message}`);
    }
    await kv
      .update(plan.recordKey, JSON.stringify({ ...record, stream: ack.stream, seq: ack.seq }), revision)
      .catch(() => undefined);
    return {
      id,
      subject: plan.subject,
      msgId: plan.msgId,
      replayOf: plan.replayOf,
      stream: ack.stream,
      seq: ack.seq,
      role: summarise(letter, this.config["subject-prefix"]).role,
    };
  }

  private async publish(plan: ReplayPlan): Promise<{ stream: string; seq: number }> {
    const h = natsHeaders();
    for (const [k, v] of plan.headers) h.append(k, v);
    const ack = await this.js.publish(plan.subject, plan.data, { headers: h });
    return { stream: ack.stream, seq: ack.seq };
  }

  private async replayRecord(key: string): Promise<ReplayRecord | undefined> {
    const kv = await this.replaysBucket(false);
    if (!kv) return undefined;
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    try {
      return JSON.parse(entry.string()) as ReplayRecord;
    } catch {
      return undefined;
    }
  }

  /** The bucket of replays: created for the first replay; reading never creates it. */
  private async replaysBucket(create: true): Promise<KV>;
  private async replaysBucket(create: false): Promise<KV | undefined>;
  private async replaysBucket(create: boolean): Promise<KV | undefined> {
    if (this.replays) return this.replays;
    const kvm = new Kvm(this.js);
    if (!create) {
      try {
        await this.jsm.streams.info(`KV_${REPLAYS_BUCKET}`);
      } catch (err) {
        if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return undefined;
        throw err;
      }
      this.replays = kvm.open(REPLAYS_BUCKET);
    } else {
      this.replays = kvm.create(REPLAYS_BUCKET, {
        history: 1,
        storage: this.config["advisories.storage"],
        replicas: this.config["own-streams.replicas"],
        description: "dead letters replayed by orgwatch (key: replay.<digest of the dead letter's id>)",
      });
    }
    this.replays.catch(() => (this.replays = undefined));
    return this.replays;
  }
}
