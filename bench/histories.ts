// What the poller's per-consumer histories cost over a daemon's life, which the scrape benchmark
// (a minute a child, four or five polls) does not reach: the status window
// (--consumer.status-window polls) and the ack-rate samples (one a minute over
// --backpressure.window, an hour by default). The logic is driven the way
// sources/jetstream-poller.ts drives it, one sample per consumer per poll, and the heap they hold is
// measured after eight polls (two minutes) and after an hour of polls.
import { configWith } from "../src/config/load.js";
import { ackRatePerSecond, observeAcks, type AckHistory } from "../src/logic/ack-rate.js";
import { evaluateStatus, observe, type ConsumerHistory } from "../src/logic/consumer-status.js";
import { fullCollector } from "./collect.js";

export interface HistoriesResult {
  readonly consumers: number;
  readonly pollIntervalMs: number;
  /** Heap held by the histories (MB) after `polls` polls, for each measured count. */
  readonly heldMb: readonly { readonly polls: number; readonly mb: number }[];
  /** observe + evaluate + ack rate for every consumer, per poll (ms), over the hour. */
  readonly msPerPoll: number;
}

/** The daemon's defaults (the URL is never dialled): the window sizes the poller would use. */
const DEFAULTS = configWith({ "nats-url": ["nats://127.0.0.1:4222"] });
const WINDOW = DEFAULTS["consumer.status-window"];
const BACKPRESSURE_WINDOW_MS = DEFAULTS["backpressure.window"];
/** The reference organization's ack wait. */
const ACK_WAIT_MS = 30 * 60_000;

export function measureHistories(consumers = 10_000, pollIntervalMs = 15_000): HistoriesResult {
  // A full collection before each measurement.
  const gc = fullCollector();
  const hour = Math.round(BACKPRESSURE_WINDOW_MS / pollIntervalMs);
  const checkpoints = [...new Set([Math.min(8, hour), hour])];
  const keys = Array.from({ length: consumers }, (_, i) => `BENCH_${i % 1000}/w${Math.floor(i / 1000)}`);
  const created = Date.UTC(2026, 0, 1);
  gc();
  const base = process.memoryUsage().heapUsed;
  let histories = new Map<string, ConsumerHistory>();
  let ackHistories = new Map<string, AckHistory>();
  const heldMb: { polls: number; mb: number }[] = [];
  let busyMs = 0;
  for (let poll = 1; poll <= hour; poll++) {
    const atMs = created + 3_600_000 + poll * pollIntervalMs;
    const t0 = performance.now();
    const nextHistories = new Map<string, ConsumerHistory>();
    const nextAckHistories = new Map<string, AckHistory>();
    for (let i = 0; i < consumers; i++) {
      const key = keys[i]!;
      // A third lag by two messages; the rest keep up, acking one a poll.
      const lag = i % 3 === 0 ? 2 : 0;
      const floor = i % 3 === 0 ? 0 : poll;
      const history = observe(
        histories.get(key),
        {
          atMs,
          pending: lag,
          ackPending: 0,
          deliveredConsumerSequence: floor,
          ackFloorStreamSequence: floor,
          ackFloorConsumerSequence: floor,
          lastAckMs: floor > 0 ? atMs - 1_000 : undefined,
          createdMs: created,
          oldestUnackedMs: lag > 0 ? created : undefined,
          unackedDelivered: false,
        },
        WINDOW,
      );
      evaluateStatus(history, ACK_WAIT_MS, WINDOW);
      nextHistories.set(key, history);
      const acks = observeAcks(
        ackHistories.get(key),
        { atMs, lag, arrivals: floor + lag, ended: 0, createdMs: created, floorOnly: false },
        BACKPRESSURE_WINDOW_MS,
      );
      ackRatePerSecond(acks);
      nextAckHistories.set(key, acks);
    }
    histories = nextHistories;
    ackHistories = nextAckHistories;
    busyMs += performance.now() - t0;
    if (checkpoints.includes(poll)) {
      gc();
      heldMb.push({ polls: poll, mb: (process.memoryUsage().heapUsed - base) / 1e6 });
    }
  }
  // Held to here, so that the last measurement counts them.
  if (histories.size + ackHistories.size !== 2 * consumers) throw new Error("histories lost");
  return { consumers, pollIntervalMs, heldMb, msPerPoll: busyMs / hour };
}

export function historiesTable(r: HistoriesResult): string {
  const held = r.heldMb.map((h) => `${h.mb.toFixed(1)} MB after ${h.polls} polls`).join(", ");
  return [
    "| consumers | heap held by the histories | observe + status + ack rate, per poll |",
    "|---|---|---|",
    `| ${r.consumers.toLocaleString("en-US")} (poll every ${r.pollIntervalMs / 1000} s) | ${held} | ${r.msPerPoll.toFixed(1)} ms |`,
  ].join("\n");
}
