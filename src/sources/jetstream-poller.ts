// JetStream polling: every --poll-interval, the paged list APIs (STREAM.LIST, CONSUMER.LIST.<stream>)
// with bounded concurrency, never one info request per consumer, plus one message read per consumer
// with unacknowledged work (the stored time of its oldest unacknowledged message). Writes a
// PollResult into the model.
//
// Cost of one poll: ceil(streams / page) stream-list requests, ceil(consumers / page) consumer-list
// requests for each stream that has consumers (streams without consumers are not asked), and one
// message read per distinct (stream, ack floor, filter) among consumers with unacknowledged work
// that was not already read by an earlier poll. orgwatch's own streams and consumers (named with
// OWN_CONSUMER_PREFIX) are left out: orgwatch is not part of the organization it watches.
// The requests go out on one reply subscription of the poller's own (src/nats/requests.ts, under
// `_INBOX.>` like nats.js's): nats.js's request() costs an Error per request.
import pLimit from "p-limit";
import { NoRespondersError, type Msg } from "@nats-io/transport-node";
import { startRequests } from "../nats/requests.js";
import type { ConsumerConfig, ConsumerInfo, StreamInfo } from "@nats-io/jetstream";
import { classifyConsumer, classifyStream } from "../logic/classify.js";
import { evaluateStatus, observe, type ConsumerHistory } from "../logic/consumer-status.js";
import { keepsDeadRedeliveredEntry } from "../logic/server-version.js";
import { ackRatePerSecond, drainEtaSeconds, observeAcks, type AckHistory } from "../logic/ack-rate.js";
import { subjectMatches } from "../logic/subject-match.js";
import { consumerKey, type ConsumerState, type PollResult, type StreamState } from "../model/jetstream.js";
import { isOwnStream, OWN_CONSUMER_PREFIX, type RunningSource, type SourceContext } from "./source.js";
import { createTimeSlicer } from "./time-slicer.js";
import { backgroundTurn } from "../turns.js";

export interface RunningPoller extends RunningSource {
  /** Runs a poll that starts after this call and resolves when its result is in the model. */
  pollNow(): Promise<void>;
  /** How many consumers' histories are kept: those of the last successful poll (and of failed ones since). */
  readonly keptHistories: number;
}

const NS_PER_MS = 1_000_000;
/** The longest the poll's own synchronous work (parsing, building states) holds the event loop at once. */
const SLICE_BUDGET_MS = 5;
/** Consumer states built in one job of the time slicer (a stream may have thousands of consumers). */
const STATES_PER_JOB = 500;
/** nats-server's error code for "stream not found": the stream went away during the poll. */
const STREAM_NOT_FOUND = 10059;

/** `last_active` / `created` are RFC 3339 strings on the wire (typed as nanos by nats.js). */
function timeMs(value: unknown): number | undefined {
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isFinite(ms) && ms > 0 ? ms : undefined;
  }
  if (typeof value === "number" && value > 0) return value / NS_PER_MS;
  return undefined;
}

/** What the poller keeps of a consumer between polls. */
interface ConsumerHistories {
  status: ConsumerHistory | undefined;
  acks: AckHistory | undefined;
  /** The poll that last saw the consumer (or kept its last values when the cluster did not answer). */
  polled: number;
}

class JetStreamApiError extends Error {
  constructor(
    readonly subject: string,
    readonly errCode: number,
    description: string,
  ) {
    super(`${subject}: ${description} (err_code ${errCode})`);
  }
}

/** The `error` member of a JetStream API reply. */
interface ApiErrorReply {
  code: number;
  err_code?: number;
  description?: string;
}

interface ListPage {
  total: number;
  offset: number;
  limit: number;
  streams?: StreamInfo[];
  consumers?: ConsumerInfo[];
  /** In a cluster: streams or consumers whose leader did not answer in time (e.g. during an election). */
  missing?: string[];
  error?: ApiErrorReply;
}

interface StoredTime {
  readonly seq: number;
  readonly ms: number;
}

function toStreamState(prefix: string, si: StreamInfo): StreamState {
  const subjects = si.config.subjects ?? [];
  const { kind, role } = classifyStream(prefix, subjects);
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
    maxMsgs: si.config.max_msgs ?? -1,
    maxBytes: si.config.max_bytes ?? -1,
    maxMsgsPerSubject: si.config.max_msgs_per_subject ?? -1,
    firstMs: si.state.messages > 0 ? timeMs(si.state.first_ts) : undefined,
    numDeleted: si.state.num_deleted ?? 0,
    deleted: undefined,
    cluster: si.cluster?.name,
    allowDirect: si.config.allow_direct === true,
  };
}

/** The consumer's filter subjects, whichever of the two config fields holds them; [] for none. */
export function filterSubjectsOf(cfg: Pick<ConsumerConfig, "filter_subject" | "filter_subjects">): string[] {
  if (cfg.filter_subjects && cfg.filter_subjects.length > 0) return cfg.filter_subjects;
  return cfg.filter_subject ? [cfg.filter_subject] : [];
}

/**
 * A direct get's reply: the message's sequence and stored time from its headers, undefined when
 * none is at or after the sequence asked (status 404); another status is the request's error.
 */
export function directRead(subject: string, msg: Msg): { seq: number; ms: number } | undefined {
  const h = msg.headers;
  const code = h?.code ?? 0;
  if (code === 404) return undefined;
  if (code !== 0 || !h)
    throw new Error(`${subject}: ${code} ${h?.description ?? "no headers in a direct get reply"}`);
  const seq = Number(h.last("Nats-Sequence"));
  const ms = Date.parse(h.last("Nats-Time-Stamp"));
  if (!Number.isSafeInteger(seq) || Number.isNaN(ms))
    throw new Error(`${subject}: a direct get reply without its sequence or time`);
  return { seq, ms };
}

export function isDurable(cfg: Pick<ConsumerConfig, "durable_name">): boolean {
  return cfg.durable_name !== undefined && cfg.durable_name !== "";
}

export function startJetStreamPoller(ctx: SourceContext): RunningPoller {
  const { config, org, log, nc, jsm } = ctx;
  const health = org.health;
  const prefix = config["subject-prefix"];
  const windowSize = config["consumer.status-window"];
  const limit = pLimit(config["poll-concurrency"]);
  const rolePattern = new RegExp(config["broadcast.role-pattern"]);
  const { apiPrefix = "$JS.API", timeout = 5000 } = jsm.getOptions();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const slicer = createTimeSlicer(SLICE_BUDGET_MS);
  const requests = startRequests(nc, timeout);

  /**
   * Each consumer's histories: for the status evaluation (logic/consumer-status.ts) and for the ack
   * rate and drain time (logic/ack-rate.ts), by consumerKey. Both are updated in place by the poll
   * that observes the consumer: a poll that fails after some of them keeps its samples, which are
   * what the server said then. One map kept from poll to poll, swept of consumers the last
   * successful poll did not see: two new maps of every consumer a poll, each key string hashed
   * four times, were ~40 ms of a 30,000-consumer poll's CPU (BENCHMARKS.md).
   */
  const histories = new Map<string, ConsumerHistories>();
  /** Counts polls: `ConsumerHistories.polled` says which one last saw a consumer. */
  let pollNumber = 0;
  const backpressureWindow = config["backpressure.window"];
  /** Message reads of the last poll by `${stream}\0${seq}\0${filter}`; an unchanged floor costs nothing. */
  let reads = new Map<string, StoredTime>();
  let inFlight: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  let stopped = false;

  async function poll(): Promise<void> {
    const started = Date.now();
    const t0 = performance.now();
    let sent = 0;
    const nextReads = new Map<string, Promise<StoredTime | undefined>>();
    /**
     * Names a cluster left out of a list because their leader did not answer (an election, a node
     * lost), by list subject. They are not deleted: they keep their last values instead of losing
     * their series (which would resolve their alerts) until the cluster answers for them again.
     */
    const missing = new Map<string, string[]>();

    /** One JetStream API request of this poll, counted. */
    function send(subject: string, body: object): Promise<Msg> {
      sent++;
      return requests.request(subject, encoder.encode(JSON.stringify(body)));
    }

    async function listPage(subject: string, offset: number): Promise<ListPage> {
      const msg = await send(subject, { offset });
      const page = await slicer.run(() => JSON.parse(decoder.decode(msg.data)) as ListPage);
      if (page.error) {
        throw new JetStreamApiError(
          subject,
          page.error.err_code ?? page.error.code,
          page.error.description ?? "error",
        );
      }
      if (page.missing !== undefined && page.missing.length > 0) {
        missing.set(subject, [...(missing.get(subject) ?? []), ...page.missing]);
      }
      return page;
    }

    /** Every item of a paged list: the first page gives the total, the others are fetched in parallel. */
    async function listAll<K extends "streams" | "consumers">(
      subject: string,
      field: K,
    ): Promise<NonNullable<ListPage[K]>> {
      const first = await limit(() => listPage(subject, 0));
      const items: (StreamInfo | ConsumerInfo)[] = [...(first[field] ?? [])];
      const pageSize = first.limit > 0 ? first.limit : items.length;
      if (pageSize === 0) return items as unknown as NonNullable<ListPage[K]>;
      const offsets: number[] = [];
      for (let offset = items.length; offset < first.total; offset += pageSize) offsets.push(offset);
      const pages = await Promise.all(offsets.map((o) => limit(() => listPage(subject, o))));
      for (const page of pages) items.push(...(page[field] ?? []));
      return items as unknown as NonNullable<ListPage[K]>;
    }

    /**
     * The deleted sequences (interior gaps) of streams that have some: carried from the last poll
     * while the gaps stay the same, else one STREAM.INFO with deleted_details (lost work needs them:
     * a deleted message is gone as surely as an expired one).
     */
    async function readDeletedSequences(
      streams: Map<string, StreamState>,
      before: ReadonlyMap<string, StreamState> | undefined,
    ): Promise<void> {
      await Promise.all(
        [...streams.values()].map(async (s) => {
          if (s.numDeleted === 0 || s.consumers === 0) return;
          const last = before?.get(s.name);
          if (
            last?.deleted !== undefined &&
            last.numDeleted === s.numDeleted &&
            last.firstSequence === s.firstSequence
          ) {
            streams.set(s.name, { ...s, deleted: last.deleted });
            return;
          }
          const info = await limit(async () => {
            const msg = await send(`${apiPrefix}.STREAM.INFO.${s.name}`, { deleted_details: true });
            return JSON.parse(decoder.decode(msg.data)) as {
              state?: { deleted?: number[] };
              error?: ApiErrorReply;
            };
          });
          if (info.error || !info.state) return;
          const deleted = [...(info.state.deleted ?? [])].sort((a, b) => a - b);
          streams.set(s.name, { ...s, deleted });
        }),
      );
    }

    /** The first message at or after `seq` on `filter`: its sequence and stored time. */
    async function readNext(
      stream: StreamState,
      seq: number,
      filter: string,
    ): Promise<StoredTime | undefined> {
      const key = `${stream.name}\u0000${seq}\u0000${filter}`;
      let pending = nextReads.get(key);
      if (!pending) {
        const cached = reads.get(key);
        // A cached message older than the stream's first sequence was removed (age, limits, purge).
        if (cached !== undefined && cached.seq >= stream.firstSequence) {
          pending = Promise.resolve(cached);
        } else {
          pending = limit(async () => {
            const body = { seq, next_by_subj: filter };
            if (stream.allowDirect) {
              const subject = `${apiPrefix}.DIRECT.GET.${stream.name}`;
              try {
                return directRead(subject, await send(subject, body));
              } catch (err) {
                // No responders: the stream was deleted since the list; it is gone at the next poll.
                if (err instanceof NoRespondersError) return undefined;
                throw err;
              }
            }
            const subject = `${apiPrefix}.STREAM.MSG.GET.${stream.name}`;
            const msg = await send(subject, body);
            const r = JSON.parse(decoder.decode(msg.data)) as {
              message?: { seq: number; time: string };
              error?: ApiErrorReply;
            };
            if (r.error || !r.message) return undefined;
            return { seq: r.message.seq, ms: Date.parse(r.message.time) };
          });
        }
        nextReads.set(key, pending);
      }
      return pending;
    }

    /** The first message of `filter` at or after `seq` that is not one of `dead`. */
    async function readNextLive(
      stream: StreamState,
      seq: number,
      filter: string,
      dead: ReadonlySet<number>,
    ): Promise<{ live: StoredTime | undefined; skipped: boolean }> {
      let from = seq;
      let skipped = false;
      for (let i = 0; i <= dead.size; i++) {
        const m = await readNext(stream, from, filter);
        if (!m || !dead.has(m.seq)) return { live: m, skipped };
        skipped = true;
        from = m.seq + 1;
      }
      return { live: undefined, skipped };
    }

    /**
     * The oldest unacknowledged message of a consumer: the first of its filter after its ack floor,
     * passing over messages orgwatch saw dead-lettered (nats-server up to 2.12.8 may hold the floor
     * below one). `heldByDead`: the floor is held by such a message.
     */
    async function oldestUnacked(
      stream: StreamState,
      ci: ConsumerInfo,
      key: string,
    ): Promise<{ oldest: StoredTime | undefined; heldByDead: boolean }> {
      const floor = ci.ack_floor.stream_seq;
      const lag = ci.num_pending + ci.num_ack_pending;
      // Nothing waits, except possibly (2.9) a delivered message that exhausted max-deliver, which
      // keeps the floor below the delivered sequence with lag 0.
      if (lag === 0 && floor >= ci.delivered.stream_seq) return { oldest: undefined, heldByDead: false };
      const dead = new Set<number>(
        org.lostWork.deadSequences(stream.name, ci.name, key).filter((seq) => seq > floor),
      );
      const filters = filterSubjectsOf(ci.config);
      const found = await Promise.all(
        (filters.length > 0 ? filters : [">"]).map((f) => readNextLive(stream, floor + 1, f, dead)),
      );
      let oldest: StoredTime | undefined;
      let heldByDead = false;
      for (const { live, skipped } of found) {
        heldByDead ||= skipped && (live === undefined || live.seq > floor + 1);
        if (live && (!oldest || live.seq < oldest.seq)) oldest = live;
      }
      if (lag === 0 && oldest && oldest.seq > ci.delivered.stream_seq) oldest = undefined;
      return { oldest, heldByDead };
    }

    /** `key`: consumerKey of the consumer (made once a poll: each new key string is hashed anew). */
    function toConsumerState(
      stream: StreamState,
      ci: ConsumerInfo,
      { oldest, heldByDead }: { oldest: StoredTime | undefined; heldByDead: boolean },
      key: string,
    ): ConsumerState {
      const cfg = ci.config;
      const filterSubjects = filterSubjectsOf(cfg);
      const { kind, role } = classifyConsumer(prefix, stream, ci.name, filterSubjects, rolePattern);
      let kept = histories.get(key);
      if (kept) kept.polled = thisPoll;
      else histories.set(key, (kept = { status: undefined, acks: undefined, polled: thisPoll }));
      const ackWaitMs = (cfg.ack_wait ?? 30_000 * NS_PER_MS) / NS_PER_MS;
      const lastAckMs = timeMs(ci.ack_floor.last_active);
      const createdMs = timeMs(ci.created);
      // A floor held by a dead letter says nothing of the live work: its progress is then the
      // acks of the rest (deliveries less those waiting), and the floor the live work's own.
      const floorStream = heldByDead
        ? (oldest?.seq ?? ci.delivered.stream_seq + 1) - 1
        : ci.ack_floor.stream_seq;
      const floorConsumer = heldByDead
        ? ci.delivered.consumer_seq - ci.num_ack_pending
        : ci.ack_floor.consumer_seq;
      const dead = org.lostWork.deadSequences(stream.name, ci.name, key);
      const redelivered = keepsDeadEntry ? Math.max(0, ci.num_redelivered - dead.length) : ci.num_redelivered;
      const history = observe(
        kept.status,
        {
          atMs: started,
          pending: ci.num_pending,
          ackPending: ci.num_ack_pending,
          deliveredConsumerSequence: ci.delivered.consumer_seq,
          ackFloorStreamSequence: floorStream,
          ackFloorConsumerSequence: floorConsumer,
          lastAckMs,
          createdMs,
          oldestUnackedMs: oldest?.ms,
          unackedDelivered: oldest !== undefined && ci.num_pending + ci.num_ack_pending === 0,
        },
        windowSize,
      );
      kept.status = history;
      const whole =
        filterSubjects.length === 0 ||
        stream.subjects.every((subject) => filterSubjects.some((f) => subjectMatches(f, subject)));
      const counts = org.deadLetters.get(stream.name, ci.name);
      const acks = observeAcks(
        kept.acks,
        {
          atMs: started,
          lag: ci.num_pending + ci.num_ack_pending,
          arrivals: whole ? stream.lastSequence : floorConsumer,
          ended:
            (counts?.deadLetters ?? 0) +
            (counts?.terminated ?? 0) +
            org.lostWork.lostTotal(stream.name, ci.name, key),
          createdMs,
          floorOnly: !whole,
        },
        backpressureWindow,
      );
      kept.acks = acks;
      const rate = ackRatePerSecond(acks);
      return {
        stream: stream.name,
        name: ci.name,
        kind,
        role,
        filterSubjects,
        deliverGroup: cfg.deliver_group || undefined,
        ackPolicy: String(cfg.ack_policy),
        durable: isDurable(cfg),
        sampleFrequency: cfg.sample_freq ?? "",
        pending: ci.num_pending,
        ackPending: ci.num_ack_pending,
        redelivered,
        waitingPulls: ci.num_waiting,
        deliveredStreamSequence: ci.delivered.stream_seq,
        deliveredConsumerSequence: ci.delivered.consumer_seq,
        ackFloorStreamSequence: ci.ack_floor.stream_seq,
        ackFloorConsumerSequence: ci.ack_floor.consumer_seq,
        createdMs,
        lastDeliveryMs: timeMs(ci.delivered.last_active),
        lastAckMs,
        ackWaitMs,
        maxDeliver: cfg.max_deliver !== undefined && cfg.max_deliver > 0 ? cfg.max_deliver : -1,
        oldestUnackedSequence: oldest?.seq,
        oldestUnackedMs: oldest?.ms,
        status: evaluateStatus(history, ackWaitMs, windowSize),
        ackRatePerSecond: rate,
        drainEtaSeconds: drainEtaSeconds(ci.num_pending + ci.num_ack_pending, rate),
      };
    }

    const thisPoll = ++pollNumber;
    const serverId = nc.info?.server_id;
    const serverVersion = nc.info?.version;
    const keepsDeadEntry = keepsDeadRedeliveredEntry(serverVersion);
    try {
      // While disconnected, requests would wait out their timeout in the client's buffer: fail now,
      // so that the failure is visible at once and polls do not pile up behind it.
      if (!health.natsConnected) throw new Error("not connected to NATS");
      const previous = org.jetstream.current;
      const streams = new Map<string, StreamState>();
      const streamList = `${apiPrefix}.STREAM.LIST`;
      for (const si of await listAll(streamList, "streams")) {
        if (!isOwnStream(si.config.name, config)) streams.set(si.config.name, toStreamState(prefix, si));
      }
      await readDeletedSequences(streams, previous?.streams);
      const consumers = new Map<string, ConsumerState>();
      let carried = 0;
      const carry = (key: string) => {
        const last = previous?.consumers.get(key);
        if (!last || consumers.has(key)) return;
        consumers.set(key, last);
        const kept = histories.get(key);
        if (kept) kept.polled = thisPoll;
        carried++;
      };
      const unanswered = new Set<string>();
      for (const name of missing.get(streamList) ?? []) {
        const last = previous?.streams.get(name);
        if (!last || streams.has(name)) continue;
        streams.set(name, last);
        unanswered.add(name);
        carried++;
        for (const [key, c] of previous!.consumers) if (c.stream === name) carry(key);
      }
      // A stream at a time per request slot: its consumer list, then its message reads, then its
      // states. With every stream's list queued at once, the reads waited behind all the lists and
      // every stream's parsed consumer infos (10,000 at 10,000 consumers) stayed alive until the
      // end, outliving young-generation collections (each copied them: pauses of 25–50 ms).
      const streamLimit = pLimit(config["poll-concurrency"]);
      await Promise.all(
        [...streams.values()].map((stream) =>
          streamLimit(async () => {
            if (stream.consumers === 0 || unanswered.has(stream.name)) return;
            let infos: ConsumerInfo[];
            try {
              infos = await listAll(`${apiPrefix}.CONSUMER.LIST.${stream.name}`, "consumers");
            } catch (err) {
              // Deleted since the stream list: it is gone, like its consumers.
              if (err instanceof JetStreamApiError && err.errCode === STREAM_NOT_FOUND) {
                streams.delete(stream.name);
                return;
              }
              throw err;
            }
            const theirs = infos.filter((ci) => !ci.name.startsWith(OWN_CONSUMER_PREFIX));
            const keys = theirs.map((ci) => consumerKey(stream.name, ci.name));
            const oldest = await Promise.all(theirs.map((ci, i) => oldestUnacked(stream, ci, keys[i]!)));
            const states: ConsumerState[] = [];
            for (let start = 0; start < theirs.length; start += STATES_PER_JOB) {
              const job = theirs.slice(start, start + STATES_PER_JOB);
              states.push(
                ...(await slicer.run(() =>
                  job.map((ci, i) => toConsumerState(stream, ci, oldest[start + i], keys[start + i]!)),
                )),
              );
            }
            for (let i = 0; i < states.length; i++) consumers.set(keys[i]!, states[i]!);
            const notAnswering = (missing.get(`${apiPrefix}.CONSUMER.LIST.${stream.name}`) ?? []).filter(
              (name) => !name.startsWith(OWN_CONSUMER_PREFIX),
            );
            for (const name of notAnswering) carry(consumerKey(stream.name, name));
            // The stream's consumer count is the organization's too.
            const count = theirs.length + notAnswering.length;
            if (count !== stream.consumers) streams.set(stream.name, { ...stream, consumers: count });
          }),
        ),
      );
      if (stopped) return;
      if (carried > 0) {
        // Partly failed: counted as a poll error (the disruption shows, and a node lost for good
        // keeps "polls failing" alerting), though everything that did answer is applied.
        health.pollErrors++;
        health.lastPollError = `the cluster did not answer for ${carried} streams or consumers`;
        log.warn(
          { kept: carried },
          "the cluster did not answer for some streams or consumers; their last values are kept",
        );
      }
      const settled = new Map<string, StoredTime>();
      for (const [key, read] of nextReads) {
        const value = await read;
        if (value !== undefined) settled.set(key, value);
      }
      reads = settled;
      for (const [key, kept] of histories) if (kept.polled !== thisPoll) histories.delete(key);
      const result: PollResult = { at: started, streams, consumers, requests: sent, serverId, serverVersion };
      // The last consumer-list replies arrive in bursts handled back to back: let the loop breathe
      // before the model's listeners, which then run one per turn.
      await backgroundTurn();
      if (stopped) return;
      // Stamped before it is applied: the model applies it over several turns, and a scrape in
      // between must not show the new values beside the previous poll's timestamp. Readiness
      // (polls completed) waits for the whole poll to be applied.
      health.lastPollSuccessMs = Date.now();
      await org.jetstream.applyPollYielding(result);
      health.pollsCompleted++;
      health.lastPollDurationSeconds = (performance.now() - t0) / 1000;
      log.debug(
        {
          streams: streams.size,
          consumers: consumers.size,
          requests: sent,
          seconds: health.lastPollDurationSeconds,
        },
        "JetStream polled",
      );
    } catch (err) {
      // Cut short by stop() (its requests are rejected then): not a failure of the organization's.
      if (stopped) return;
      health.pollErrors++;
      health.lastPollError = (err as Error).message;
      log.warn({ err: (err as Error).message }, "JetStream poll failed; keeping the last values");
    }
  }

  function startPoll(): Promise<void> {
    inFlight = poll().finally(() => (inFlight = undefined));
    return inFlight;
  }

  /** At most one poll runs; a caller arriving during one gets the next (shared with others waiting). */
  function pollNow(): Promise<void> {
    if (!inFlight) return startPoll();
    if (!queued) {
      queued = inFlight.then(() => {
        queued = undefined;
        return startPoll();
      });
    }
    return queued;
  }

  const timer = setInterval(() => {
    if (!stopped && !inFlight) void startPoll();
  }, config["poll-interval"]);
  void startPoll();

  return {
    pollNow,
    get keptHistories() {
      return histories.size;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      // A poll stuck on an unreachable server must not hold shutdown for its request timeout.
      await Promise.race([inFlight, new Promise((r) => setTimeout(r, 1000).unref())]);
      requests.stop();
    },
  };
}
