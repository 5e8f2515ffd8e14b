// JetStream polling: every --poll-interval, the paged list APIs (STREAM.LIST, CONSUMER.LIST.<stream>)
// with bounded concurrency, never one info request per consumer. Writes a PollResult into the model.
import pLimit from "p-limit";
import type { ConsumerInfo, StreamInfo } from "@nats-io/jetstream";
import { classifyConsumer, classifyStream } from "../logic/classify.js";
import { consumerKey, type ConsumerState, type PollResult, type StreamState } from "../model/jetstream.js";
import type { RunningSource, SourceContext } from "./source.js";

export interface RunningPoller extends RunningSource {
  /** Runs one poll now (or waits for the one in flight) and resolves when it is in the model. */
  pollNow(): Promise<void>;
}

const NS_PER_MS = 1_000_000;

/** `last_active` is an RFC 3339 string on the wire (typed as nanos by nats.js); absent on 2.9. */
function activityMs(value: unknown): number | undefined {
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isFinite(ms) && ms > 0 ? ms : undefined;
  }
  if (typeof value === "number" && value > 0) return value / NS_PER_MS;
  return undefined;
}

function toStreamState(ctx: SourceContext, si: StreamInfo): StreamState {
  const subjects = si.config.subjects ?? [];
  const { kind, role } = classifyStream(ctx.config["subject-prefix"], subjects);
  return {
    name: si.config.name,
    subjects,
    kind,
    role,
    messages: si.state.messages,
    bytes: si.state.bytes,
    firstSequence: si.state.first_seq,
    lastSequence: si.state.last_seq,
    consumers: si.state.consumer_count,
    storage: si.config.storage === "memory" ? "memory" : "file",
    replicas: si.config.num_replicas ?? 1,
    maxAgeMs: (si.config.max_age ?? 0) / NS_PER_MS,
  };
}

function toConsumerState(
  ctx: SourceContext,
  stream: StreamState,
  ci: ConsumerInfo,
  rolePattern: RegExp,
): ConsumerState {
  const cfg = ci.config;
  const filterSubjects = cfg.filter_subjects ?? (cfg.filter_subject ? [cfg.filter_subject] : []);
  const { kind, role } = classifyConsumer(
    ctx.config["subject-prefix"],
    stream,
    ci.name,
    filterSubjects,
    rolePattern,
  );
  return {
    stream: stream.name,
    name: ci.name,
    kind,
    role,
    filterSubjects,
    deliverGroup: cfg.deliver_group,
    ackPolicy: String(cfg.ack_policy),
    pending: ci.num_pending,
    ackPending: ci.num_ack_pending,
    redelivered: ci.num_redelivered,
    waitingPulls: ci.num_waiting,
    deliveredStreamSequence: ci.delivered.stream_seq,
    ackFloorStreamSequence: ci.ack_floor.stream_seq,
    lastDeliveryMs: activityMs(ci.delivered.last_active),
    lastAckMs: activityMs(ci.ack_floor.last_active),
    ackWaitMs: (cfg.ack_wait ?? 30_000 * NS_PER_MS) / NS_PER_MS,
    maxDeliver: cfg.max_deliver ?? -1,
    oldestUnackedMs: undefined,
    status: "ok",
  };
}

export function startJetStreamPoller(ctx: SourceContext): RunningPoller {
  const { config, org, log } = ctx;
  const health = org.health;
  const limit = pLimit(config["poll-concurrency"]);
  const rolePattern = new RegExp(config["broadcast.role-pattern"]);
  let inFlight: Promise<void> | undefined;
  let stopped = false;

  async function poll(): Promise<void> {
    const started = Date.now();
    const t0 = performance.now();
    let requests = 0;
    try {
      const streams = new Map<string, StreamState>();
      requests++;
      const lister = ctx.jsm.streams.list();
      for await (const si of lister) streams.set(si.config.name, toStreamState(ctx, si));
      const consumers = new Map<string, ConsumerState>();
      await Promise.all(
        [...streams.values()].map((stream) =>
          limit(async () => {
            requests++;
            for await (const ci of ctx.jsm.consumers.list(stream.name)) {
              consumers.set(consumerKey(stream.name, ci.name), toConsumerState(ctx, stream, ci, rolePattern));
            }
          }),
        ),
      );
      const result: PollResult = { at: started, streams, consumers, requests };
      org.jetstream.applyPoll(result);
      health.pollsCompleted++;
      health.lastPollSuccessMs = Date.now();
      health.lastPollDurationSeconds = (performance.now() - t0) / 1000;
    } catch (err) {
      health.pollErrors++;
      log.warn({ err: (err as Error).message }, "JetStream poll failed; keeping the last values");
    }
  }

  function pollNow(): Promise<void> {
    if (!inFlight) inFlight = poll().finally(() => (inFlight = undefined));
    return inFlight;
  }

  const timer = setInterval(() => {
    if (!stopped) void pollNow();
  }, config["poll-interval"]);
  void pollNow();

  return {
    pollNow,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}
