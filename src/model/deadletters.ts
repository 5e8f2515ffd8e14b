// Dead letters, naks and terminations per consumer, and task processing times from sampled acks.
// Written by sources/advisories.ts; read by exporters/metrics/deadletters.ts.
import { EventEmitter } from "node:events";
import { consumerKey, type PollResult } from "./jetstream.js";
import type { StreamMessageRef } from "./tasks/index.js";

/** The labels a consumer's counters are exported with. */
export interface ConsumerLabels {
  readonly stream: string;
  readonly consumer: string;
  readonly role: string;
}

export interface ConsumerCounts {
  readonly labels: ConsumerLabels;
  /** Messages dead-lettered: each message once, whatever its delivery count. */
  deadLetters: number;
  naks: number;
  terminated: number;
}

export interface ProcessingObservation {
  readonly role: string;
  /** Delivery → ack. */
  readonly seconds: number;
  readonly ref: StreamMessageRef;
}

/** The one message a dead-letter count is about. */
export interface DeadLetterDetail {
  readonly streamSequence: number;
  readonly deliveries: number;
  readonly atMs: number;
}

interface DeadLetterEvents {
  /** A message was counted dead (once per message): the console's feed. */
  deadLetter: [labels: ConsumerLabels, detail: DeadLetterDetail];
  /** A task's delivery → ack time (from a sampled ack); the exporter observes it in a histogram. */
  processed: [observation: ProcessingObservation];
}

type Counter = "deadLetters" | "naks" | "terminated";

export class DeadLettersModel extends EventEmitter<DeadLetterEvents> {
  private readonly counts = new Map<string, ConsumerCounts>();
  /** Dead letters this orgwatch replayed (console API), by role. */
  readonly replays = new Map<string, number>();

  countReplay(role: string): void {
    this.replays.set(role, (this.replays.get(role) ?? 0) + 1);
  }

  countDeadLetter(labels: ConsumerLabels, detail?: DeadLetterDetail): void {
    this.bump(labels, "deadLetters");
    if (detail) this.emit("deadLetter", labels, detail);
  }

  countNak(labels: ConsumerLabels): void {
    this.bump(labels, "naks");
  }

  countTerminated(labels: ConsumerLabels): void {
    this.bump(labels, "terminated");
  }

  observeProcessing(observation: ProcessingObservation): void {
    this.emit("processed", observation);
  }

  /** Every consumer with at least one count. */
  consumers(): IterableIterator<ConsumerCounts> {
    return this.counts.values();
  }

  get(stream: string, consumer: string): ConsumerCounts | undefined {
    return this.counts.get(consumerKey(stream, consumer));
  }

  /** Consumers that were in the previous poll and are gone from this one lose their series. */
  forgetVanished(result: PollResult, previous: PollResult | undefined): void {
    if (!previous) return;
    for (const key of previous.consumers.keys()) {
      if (!result.consumers.has(key)) this.counts.delete(key);
    }
  }

  private bump(labels: ConsumerLabels, counter: Counter): void {
    const key = consumerKey(labels.stream, labels.consumer);
    let entry = this.counts.get(key);
    if (!entry) {
      entry = { labels, deadLetters: 0, naks: 0, terminated: 0 };
      this.counts.set(key, entry);
    }
    entry[counter]++;
  }
}
