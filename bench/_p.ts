import { configWith } from "../src/config/load.js";
import { Organization } from "../src/model/organization.js";
import { MetricsRegistry } from "../src/exporters/metrics/registry.js";
import { registerExporterHealthMetrics } from "../src/exporters/metrics/exporter-health.js";
import { registerJetStreamMetrics } from "../src/exporters/metrics/jetstream.js";
import { registerAgentMetrics } from "../src/exporters/metrics/agents.js";
import { registerBroadcastMetrics } from "../src/exporters/metrics/broadcasts.js";
import { registerDeadLetterMetrics } from "../src/exporters/metrics/deadletters.js";
import { registerTaskMetrics } from "../src/exporters/metrics/tasks.js";
import { registerFindingMetrics } from "../src/exporters/metrics/findings.js";
import type { ConsumerState, StreamState, PollResult } from "../src/model/jetstream.js";
const config = configWith({});
const org = new Organization(config);
const metrics = new MetricsRegistry();
registerExporterHealthMetrics(metrics, org);
registerJetStreamMetrics(metrics, org);
registerAgentMetrics(metrics, org, config);
registerBroadcastMetrics(metrics, org);
registerDeadLetterMetrics(metrics, org);
registerTaskMetrics(metrics, org);
registerFindingMetrics(metrics, org);
const streams = new Map<string, StreamState>();
const consumers = new Map<string, ConsumerState>();
for (let i = 0; i < 1000; i++) {
  const s: StreamState = { name: `BENCH_${i}`, subjects: [`bench.${i}.*`], kind: "other", role: "", messages: 10, bytes: 1000, firstSequence: 1, lastSequence: 10, consumers: 10, storage: "file", replicas: 1, maxAgeMs: 1, maxMsgs: -1, maxBytes: -1, maxMsgsPerSubject: -1, cluster: undefined, allowDirect: false };
  streams.set(s.name, s);
  for (let j = 0; j < 10; j++) {
    const c: ConsumerState = { stream: s.name, name: `w${j}`, kind: "other", role: "", filterSubjects: [`bench.${i}.${j}`], deliverGroup: undefined, ackPolicy: "explicit", durable: true, sampleFrequency: "", pending: j % 3 === 0 ? 2 : 0, ackPending: 0, redelivered: 0, waitingPulls: 0, deliveredStreamSequence: 0, deliveredConsumerSequence: 0, ackFloorStreamSequence: 0, ackFloorConsumerSequence: 0, createdMs: 1, lastDeliveryMs: undefined, lastAckMs: undefined, ackWaitMs: 1800000, maxDeliver: 3, oldestUnackedSequence: j % 3 === 0 ? 1 : undefined, oldestUnackedMs: j % 3 === 0 ? Date.now() - 1000 : undefined, status: "ok" };
    consumers.set(`${s.name}/${c.name}`, c);
  }
}
const poll: PollResult = { at: Date.now(), streams, consumers, requests: 1 };
for (const l of org.jetstream.listeners("polled")) {
  const t1 = performance.now();
  (l as (r: PollResult, p: PollResult | undefined) => void)(poll, undefined);
  console.log("listener", (performance.now() - t1).toFixed(0), "ms", String(l).slice(0, 120).replace(/\n/g, " "));
}
let t = performance.now();
org.jetstream.applyPoll(poll);
console.log("applyPoll (all listeners)", (performance.now() - t).toFixed(0), "ms");
for (let k = 0; k < 3; k++) {
  t = performance.now();
  const body = (await metrics.prometheus.metrics());
  const a = performance.now() - t;
  t = performance.now();
  const r = await metrics.render(false);
  console.log("prom-client part", a.toFixed(0), "ms", body.length, "| full render", (performance.now() - t).toFixed(0), "ms", r.body.length);
}
