// What the console shows over time, kept in memory and bounded: each agent's lag over the last hour
// (the highest lag seen in each of a fixed number of buckets) and a feed of what just happened
// (dead letters, lost tasks, agents falling silent or coming back, consumers stalling). Derived from
// the other parts of the model as they change (wired in model/organization.ts); nothing is saved.
import { EventEmitter } from "node:events";
import type { ConsumerStatus } from "../logic/consumer-status.js";
import type { TaskEvent, TaskRecord } from "./tasks/index.js";

export type FeedKind =
  "dead_letter" | "lost" | "agent_silent" | "agent_back" | "consumer_status" | "broken_chain";

export interface FeedItem {
  /** Increasing: the SSE event id, and how a client tells items apart. */
  readonly id: number;
  readonly atMs: number;
  readonly kind: FeedKind;
  readonly role: string;
  readonly text: string;
  readonly taskId?: string;
  /** Only on consumer_status items. */
  readonly status?: ConsumerStatus;
}

export interface HistorySettings {
  /** How far back the sparklines go. */
  readonly windowMs: number;
  /** Points per sparkline: the window is cut into this many buckets. */
  readonly points: number;
  /** Feed items kept. */
  readonly feedSize: number;
  /** Roles whose lag series are kept (the rest are not drawn; a bound, not a choice). */
  readonly maxRoles: number;
  /** Ended tasks whose timelines are kept for the console (the task model drops them once sent). */
  readonly timelines: number;
}

/** Broadcast ack times kept: the console shows the latest 8 broadcasts for every agent (1,000 agents). */
const MAX_BROADCAST_ACKS = 8000;

export const DEFAULT_HISTORY: HistorySettings = {
  windowMs: 3_600_000,
  points: 120,
  feedSize: 200,
  maxRoles: 2000,
  timelines: 5000,
};

interface HistoryEvents {
  feed: [item: FeedItem];
}

export class HistoryModel extends EventEmitter<HistoryEvents> {
  /** Per role: [bucket start ms, highest lag in it], oldest first. */
  private readonly lag = new Map<string, [number, number][]>();
  private readonly items: FeedItem[] = [];
  private nextId = 1;
  /** Seconds from publication to acknowledgement, by `${consumer}\u0000${seq}` (recent broadcasts only). */
  private readonly broadcastAcks = new Map<string, number>();
  /** Ended tasks' events by task id, oldest first (a Map keeps insertion order). */
  private readonly timelineOf = new Map<string, readonly TaskEvent[]>();

  constructor(readonly settings: HistorySettings = DEFAULT_HISTORY) {
    super();
  }

  private get bucketMs(): number {
    return Math.max(1, Math.floor(this.settings.windowMs / this.settings.points));
  }

  /** One poll's lag per role, at `atMs`. Roles not in it stop getting points and age out. */
  recordLag(atMs: number, lagByRole: ReadonlyMap<string, number>): void {
    const bucket = atMs - (atMs % this.bucketMs);
    const oldest = atMs - this.settings.windowMs;
    for (const [role, lag] of lagByRole) {
      let series = this.lag.get(role);
      if (!series) {
        if (this.lag.size >= this.settings.maxRoles) continue;
        series = [];
        this.lag.set(role, series);
      }
      const last = series[series.length - 1];
      if (last && last[0] === bucket) last[1] = Math.max(last[1], lag);
      else series.push([bucket, lag]);
    }
    for (const [role, series] of this.lag) {
      while (series.length > 0 && series[0]![0] < oldest) series.shift();
      if (series.length === 0) this.lag.delete(role);
    }
  }

  /** The role's lag series over the window: [bucket start ms, highest lag], oldest first. */
  lagSeries(role: string): readonly (readonly [number, number])[] {
    return this.lag.get(role) ?? [];
  }

  add(item: Omit<FeedItem, "id">): FeedItem {
    const full = { ...item, id: this.nextId++ };
    this.items.push(full);
    if (this.items.length > this.settings.feedSize) this.items.shift();
    this.emit("feed", full);
    return full;
  }

  recordBroadcastAck(consumer: string, seq: number, seconds: number): void {
    this.broadcastAcks.set(`${consumer}\u0000${seq}`, seconds);
    if (this.broadcastAcks.size > MAX_BROADCAST_ACKS)
      this.broadcastAcks.delete(this.broadcastAcks.keys().next().value!);
  }

  /** How long the agent behind `consumer` took to acknowledge broadcast `seq`, when observed. */
  broadcastAckSeconds(consumer: string, seq: number): number | undefined {
    return this.broadcastAcks.get(`${consumer}\u0000${seq}`);
  }

  /** Keeps an ended task's events: the task model drops them once its span is sent. */
  rememberTimeline(task: TaskRecord): void {
    this.timelineOf.delete(task.taskId);
    this.timelineOf.set(task.taskId, [...task.events]);
    if (this.timelineOf.size > this.settings.timelines)
      this.timelineOf.delete(this.timelineOf.keys().next().value!);
  }

  /** The task's events: the task model's while it keeps them, else the ones remembered here. */
  timeline(task: TaskRecord): readonly TaskEvent[] {
    return task.events.length > 0 ? task.events : (this.timelineOf.get(task.taskId) ?? []);
  }

  /** Newest first. */
  feed(): FeedItem[] {
    return [...this.items].reverse();
  }
}
