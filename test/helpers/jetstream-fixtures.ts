// What a poll saw, built by hand for unit tests: an empty stream and an idle durable consumer, and
// the overrides a test cares about. Defaults are neutral (zeros, nothing known, no limits) so a
// test states every value its assertions depend on.
import {
  consumerKey,
  type ConsumerState,
  type PollResult,
  type StreamState,
} from "../../src/model/jetstream.js";

export function streamState(name: string, overrides: Partial<StreamState> = {}): StreamState {
  return {
    name,
    subjects: [],
    kind: "tasks",
    role: "",
    messages: 0,
    bytes: 0,
    firstSequence: 0,
    lastSequence: 0,
    consumers: 0,
    storage: "file",
    replicas: 1,
    maxAgeMs: 0,
    maxMsgs: -1,
    maxBytes: -1,
    maxMsgsPerSubject: -1,
    firstMs: undefined,
    numDeleted: 0,
    deleted: undefined,
    cluster: undefined,
    allowDirect: false,
    ...overrides,
  };
}

export function consumerState(
  stream: string,
  name: string,
  overrides: Partial<ConsumerState> = {},
): ConsumerState {
  return {
    stream,
    name,
    kind: "tasks",
    role: "",
    filterSubjects: [],
    deliverGroup: undefined,
    ackPolicy: "explicit",
    durable: true,
    sampleFrequency: "",
    pending: 0,
    ackPending: 0,
    redelivered: 0,
    waitingPulls: 0,
    deliveredStreamSequence: 0,
    deliveredConsumerSequence: 0,
    ackFloorStreamSequence: 0,
    ackFloorConsumerSequence: 0,
    createdMs: 1,
    lastDeliveryMs: undefined,
    lastAckMs: undefined,
    ackWaitMs: 30 * 60_000,
    maxDeliver: 3,
    oldestUnackedSequence: undefined,
    oldestUnackedMs: undefined,
    status: "ok",
    ackRatePerSecond: undefined,
    drainEtaSeconds: undefined,
    ...overrides,
  };
}

export function pollResult(at: number, streams: StreamState[], consumers: ConsumerState[]): PollResult {
  return {
    at,
    streams: new Map(streams.map((s) => [s.name, s])),
    consumers: new Map(consumers.map((c) => [consumerKey(c.stream, c.name), c])),
    requests: 0,
  };
}
