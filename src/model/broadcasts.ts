// Broadcast acknowledgements per agent, derived from the broadcasts stream's consumers (one per
// agent) at each poll, and from sampled acks where the consumer has ack sampling on.
//
// What is counted, given that explicit acks may come out of order: a consumer's ack floor only moves
// over a contiguous prefix of acknowledged messages, so a broadcast is counted as acknowledged by an
// agent when that agent's ack floor passes it; a later broadcast acked before an earlier one is
// counted when the floor passes it, never before and never twice. Its ack time is the sampled ack's
// exact time when a sample for it arrived first; otherwise the consumer's last ack time as the
// server reports it (ack_floor.last_active, present on 2.9.10 too: an upper bound, late by the time
// between this broadcast's ack and the floor passing it), otherwise the time orgwatch saw the floor
// past it (at most one poll late). Unacknowledged counts come from the server's own counters
// (pending + ack pending), so out-of-order acks are exact there. docs/agents-and-broadcasts.md.
import { EventEmitter } from "node:events";
import { isSameConsumer, lagOf } from "../logic/consumer-status.js";
import { consumerKey, type PollResult } from "./jetstream.js";
import type { StreamMessageRef } from "./tasks/index.js";

/** How many of the latest broadcasts the console shows against every agent. */
export const RECENT_BROADCASTS = 8;
/** A floor that passed more broadcasts than this in one poll is observed for its latest ones only. */
const MAX_OBSERVED_PER_POLL = 1000;
/** Sampled acks waiting for their consumer's ack floor to pass them, across all consumers. */
const MAX_PENDING_SAMPLES = 10_000;

export interface BroadcastConsumer {
  readonly stream: string;
  readonly name: string;
  readonly role: string;
  /** Broadcasts after the ack floor not acknowledged: not yet delivered + delivered and not acked. */
  readonly unacked: number;
  /** Stored time (epoch ms) of the oldest unacknowledged broadcast, when there is one and it was read. */
  readonly oldestUnackedMs: number | undefined;
  /** Every broadcast up to this stream sequence is acknowledged. */
  readonly ackFloor: number;
  /** When non-empty, only broadcasts on these subjects are this agent's. */
  readonly filterSubjects: readonly string[];
}

/** One of the latest broadcasts, as read back by sources/broadcast-acks.ts (for the console). */
export interface RecentBroadcast {
  readonly stream: string;
  readonly seq: number;
  readonly subject: string;
  readonly storedMs: number;
}

/** The broadcasts one consumer's ack floor passed since the previous poll: stream sequences `from..to`. */
export interface PassedRange {
  readonly stream: string;
  readonly consumer: string;
  readonly role: string;
  readonly from: number;
  readonly to: number;
  /** When non-empty, only messages on these subjects are this consumer's. */
  readonly filterSubjects: readonly string[];
  /** The ack time to use where no sample says better (an upper bound). */
  readonly ackedByMs: number;
}

export interface AckObservation {
  readonly role: string;
  readonly consumer: string;
  readonly streamSequence: number;
  readonly seconds: number;
  /** From a sampled ack rather than bounded by a poll. */
  readonly exact: boolean;
}

interface BroadcastEvents {
  /** A broadcast was acknowledged by an agent (its ack floor passed it): once per broadcast per agent. */
  acked: [observation: AckObservation];
}

export class BroadcastsModel extends EventEmitter<BroadcastEvents> {
  /** Broadcast consumers as of the last poll. */
  consumers: readonly BroadcastConsumer[] = [];
  /** Whether the last poll saw any broadcasts stream or consumer (else no agent can miss one). */
  hasBroadcasts = false;
  /** The latest broadcasts of every broadcasts stream, newest first (RECENT_BROADCASTS at most). */
  recent: readonly RecentBroadcast[] = [];
  /** Ack floor up to which acks were handed out for observation, by consumer key. */
  private readonly floors = new Map<string, { floor: number; createdMs: number | undefined }>();
  /** Sampled ack times by consumer key, then stream sequence. */
  private readonly samples = new Map<string, Map<number, number>>();
  private sampleCount = 0;
  private broadcastStreams = new Set<string>();
  /** Passed ranges handed out by applyPoll and not yet observed (their stored times are being read). */
  private rangesInFlight = 0;

  /** Sampled acks held until their consumer's ack floor passes them. */
  get pendingSamples(): number {
    return this.sampleCount;
  }

  /** Whether some acknowledged broadcasts are still being read before being observed. */
  get observing(): boolean {
    return this.rangesInFlight > 0;
  }

  /**
   * Takes a poll: refreshes the consumers' view and returns what each ack floor passed since the
   * previous poll. A consumer's first poll only sets its baseline (what it acked before orgwatch
   * watched is not observed); a consumer re-created (another creation time, or a floor that went
   * back) starts a new baseline the same way.
   */
  applyPoll(result: PollResult, nowMs: number): PassedRange[] {
    const consumers: BroadcastConsumer[] = [];
    const streams = new Set<string>();
    const seen = new Set<string>();
    const passed: PassedRange[] = [];
    let hasBroadcasts = false;
    for (const s of result.streams.values()) if (s.kind === "broadcasts") hasBroadcasts = true;
    for (const c of result.consumers.values()) {
      if (c.kind !== "broadcasts") continue;
      hasBroadcasts = true;
      streams.add(c.stream);
      const key = consumerKey(c.stream, c.name);
      seen.add(key);
      const unacked = lagOf(c);
      consumers.push({
        stream: c.stream,
        name: c.name,
        role: c.role,
        unacked,
        oldestUnackedMs: unacked > 0 ? c.oldestUnackedMs : undefined,
        ackFloor: c.ackFloorStreamSequence,
        filterSubjects: c.filterSubjects,
      });
      const floor = c.ackFloorStreamSequence;
      const previous = this.floors.get(key);
      this.floors.set(key, { floor, createdMs: c.createdMs });
      if (
        previous === undefined ||
        !isSameConsumer(previous.createdMs, c.createdMs) ||
        floor <= previous.floor
      )
        continue;
      const first = result.streams.get(c.stream)?.firstSequence ?? 0;
      const from = Math.max(previous.floor + 1, floor - MAX_OBSERVED_PER_POLL + 1, first);
      if (from > floor) continue;
      passed.push({
        stream: c.stream,
        consumer: c.name,
        role: c.role,
        from,
        to: floor,
        filterSubjects: c.filterSubjects,
        ackedByMs: c.lastAckMs !== undefined ? Math.min(c.lastAckMs, nowMs) : nowMs,
      });
    }
    for (const key of this.floors.keys()) {
      if (!seen.has(key)) {
        this.floors.delete(key);
        this.dropSamples(key, Infinity);
      }
    }
    this.consumers = consumers;
    this.broadcastStreams = streams;
    this.hasBroadcasts = hasBroadcasts;
    this.rangesInFlight += passed.length;
    return passed;
  }

  /**
   * Observes the broadcasts of a passed range whose stored times are known (`storedMs` by
   * sequence; sequences absent from it were deleted, not this consumer's, or unreadable).
   */
  observePassed(range: PassedRange, storedMs: ReadonlyMap<number, number>): void {
    this.rangesInFlight = Math.max(0, this.rangesInFlight - 1);
    const key = consumerKey(range.stream, range.consumer);
    const sampled = this.samples.get(key);
    for (let seq = range.from; seq <= range.to; seq++) {
      const published = storedMs.get(seq);
      if (published === undefined) continue;
      const exactMs = sampled?.get(seq);
      const ackedMs = exactMs ?? range.ackedByMs;
      this.emit("acked", {
        role: range.role,
        consumer: range.consumer,
        streamSequence: seq,
        seconds: Math.max(0, ackedMs - published) / 1000,
        exact: exactMs !== undefined,
      });
    }
    this.dropSamples(key, range.to);
  }

  /**
   * A sampled ack of any message (sources/advisories.ts calls this for every ack sample; samples
   * not on a broadcasts stream are ignored here). Gives exact publish → ack times where sampling is on.
   */
  recordAck(ref: StreamMessageRef): void {
    if (!this.broadcastStreams.has(ref.stream)) return;
    const key = consumerKey(ref.stream, ref.consumer);
    const floor = this.floors.get(key)?.floor;
    // Not yet watched, or already observed: the floor passed it.
    if (floor === undefined || ref.streamSequence <= floor) return;
    let bySeq = this.samples.get(key);
    if (bySeq?.has(ref.streamSequence)) return;
    if (this.sampleCount >= MAX_PENDING_SAMPLES) return;
    if (!bySeq) this.samples.set(key, (bySeq = new Map()));
    bySeq.set(ref.streamSequence, ref.atMs);
    this.sampleCount++;
  }

  private dropSamples(key: string, upTo: number): void {
    const bySeq = this.samples.get(key);
    if (!bySeq) return;
    for (const seq of bySeq.keys()) {
      if (seq <= upTo) {
        bySeq.delete(seq);
        this.sampleCount--;
      }
    }
    if (bySeq.size === 0) this.samples.delete(key);
  }
}
