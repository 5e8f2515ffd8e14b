// Wiring: config → model → exporters (metrics, HTTP, traces) and NATS → sources → model.
// Data flows one way: sources write the model, exporters read it.
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { Config } from "./config/schema.js";
import { exportFilterOf } from "./config/load.js";
import { createLogger, type Logger } from "./log.js";
import { applyHeapGrowth } from "./heap-growth.js";
import { Organization } from "./model/organization.js";
import { startNatsLink } from "./nats/connect.js";
import { MetricsRegistry } from "./exporters/metrics/registry.js";
import { registerExporterHealthMetrics } from "./exporters/metrics/exporter-health.js";
import { registerJetStreamMetrics } from "./exporters/metrics/jetstream.js";
import { registerAgentMetrics } from "./exporters/metrics/agents.js";
import { registerBroadcastMetrics } from "./exporters/metrics/broadcasts.js";
import { registerDeadLetterMetrics } from "./exporters/metrics/deadletters.js";
import { registerTaskMetrics } from "./exporters/metrics/tasks.js";
import { registerLostWorkMetrics } from "./exporters/metrics/lost-work.js";
import { registerBackpressureMetrics } from "./exporters/metrics/backpressure.js";
import { Admission, startAdmissionService } from "./services/admission.js";
import { DeadLetterDesk } from "./services/deadletters.js";
import { registerFindingMetrics } from "./exporters/metrics/findings.js";
import { startTraceExporter, type TraceExporter } from "./exporters/traces.js";
import { startHttpServer, type HttpServer } from "./exporters/http.js";
import { startJetStreamPoller, type RunningPoller } from "./sources/jetstream-poller.js";
import { startAgentStatus } from "./sources/agent-status.js";
import { startOrgEvents } from "./sources/org-events.js";
import { startBroadcastAcks } from "./sources/broadcast-acks.js";
import { startAdvisories } from "./sources/advisories.js";
import { startTaskObserver } from "./sources/task-observer.js";
import { startApiAudit } from "./sources/api-audit.js";
import { startUnrouted } from "./sources/unrouted.js";
import { startFindings } from "./sources/findings.js";
import { createSourceContext, type RunningSource } from "./sources/source.js";
import { startLease, type LeaseKeeper } from "./pair/lease.js";

export interface DaemonOptions {
  log?: Logger;
  /** Tests pass an in-memory exporter; otherwise OTEL_* environment variables decide. */
  spanExporter?: SpanExporter;
}

export interface Daemon {
  /** Base URL of the HTTP server. */
  readonly url: string;
  readonly org: Organization;
  readonly metrics: MetricsRegistry;
  /** Resolves when NATS is connected and every source has started. */
  readonly started: Promise<void>;
  /** Runs one JetStream poll now and resolves when its result is in the model. */
  pollNow(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
  applyHeapGrowth(config["memory.heap-growth"]);
  const log = options.log ?? createLogger(config["log.level"], config["log.format"]);
  const org = new Organization(config);

  const metrics = new MetricsRegistry();
  registerExporterHealthMetrics(metrics, org);
  registerJetStreamMetrics(metrics, org);
  registerAgentMetrics(metrics, org);
  registerBroadcastMetrics(metrics, org);
  registerDeadLetterMetrics(metrics, org);
  registerTaskMetrics(metrics, org);
  registerLostWorkMetrics(metrics, org);
  registerBackpressureMetrics(metrics, org);
  registerFindingMetrics(metrics, org);
  const filter = exportFilterOf(config);
  if (filter.active) metrics.keepFamilies((name) => filter.family(name));
  const traces: TraceExporter = await startTraceExporter(org, config, log, options.spanExporter);

  // One admission service answers over HTTP and NATS (one role cap, the same answers).
  const admission = new Admission(org);
  let desk: DeadLetterDesk | undefined;
  const http: HttpServer = await startHttpServer(config, org, metrics, log, admission, () => desk);
  const link = startNatsLink(config, org.health, log);

  let stopping = false;
  let poller: RunningPoller | undefined;
  let leaseKeeper: LeaseKeeper | undefined;
  const sources: RunningSource[] = [];
  const started = link.connected.then(async (nc) => {
    const ctx = await createSourceContext(nc, config, org, log);
    if (stopping) return;
    desk = await DeadLetterDesk.open(nc, config);
    // First, so that it stops last: the chain state is written (by the holder) before it is given up.
    // An orgwatch not named as a replica acts alone, as before pairs: it holds the lease for good
    // (two unnamed ones both act, and OrgwatchLeaseTwoHolders says so).
    if (config["pair.replica"] === "") org.lease.acquire(Infinity);
    else {
      leaseKeeper = startLease(
        nc,
        org.lease,
        { ttlMs: config["pair.lease-ttl"], replicas: config["own-streams.replicas"] },
        log,
      );
      sources.push(leaseKeeper);
    }
    // Sources that subscribe come first, so nothing published during the first poll is missed.
    sources.push(await startAgentStatus(ctx));
    sources.push(await startOrgEvents(ctx));
    sources.push(startApiAudit(ctx));
    sources.push(startUnrouted(ctx));
    sources.push(await startAdvisories(ctx));
    sources.push(await startTaskObserver(ctx));
    sources.push(await startBroadcastAcks(ctx));
    sources.push(await startFindings(ctx));
    poller = startJetStreamPoller(ctx);
    sources.push(poller);
    // Answers from the model; started last, so the first answers follow a poll soon after.
    sources.push(startAdmissionService(nc, admission, config["subject-prefix"]));
  });
  started.catch((err: unknown) => log.error({ err: (err as Error).message }, "a source failed to start"));

  return {
    url: http.url,
    org,
    metrics,
    started,
    async pollNow() {
      await started;
      await poller!.pollNow();
    },
    async stop() {
      stopping = true;
      // A follower on its way out does not take the lease (pair/lease.ts); a holder keeps it to
      // write its last state.
      leaseKeeper?.retire();
      // The spans recorded so far leave while this process still holds the lease (confirmed, so
      // that the chain state written on the way out says so and the other replica does not resend).
      await traces.flush();
      for (const source of sources.reverse()) await source.stop().catch(() => undefined);
      await traces.shutdown();
      await link.close();
      await http.close();
    },
  };
}
