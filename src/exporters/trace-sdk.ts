// OpenTelemetry traces across on_complete chains: one span per task, exported when the task ends,
// the chained task a child of the task that caused it (ids from model/tasks, derived from task ids,
// so spans exported at different times or by another orgwatch process still connect).
//
// The OpenTelemetry SDK for Node (NodeSDK) does the rest as in every other OTel service: exporter,
// protocol, sampler, resource detection, span limits and batching from the standard OTEL_*
// variables. orgwatch hands the SDK the ids it derived (an id generator set just before each span
// starts) and the times it saw (explicit start and end times). One deliberate difference: with no
// exporter and no endpoint configured there is no export at all (the SDK's default would be OTLP to
// localhost:4318, which fails on every machine without a collector).
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type Tracer,
} from "@opentelemetry/api";
import {
  ExportResultCode,
  getBooleanFromEnv,
  getStringFromEnv,
  getStringListFromEnv,
  millisToHrTime,
  type ExportResult,
} from "@opentelemetry/core";
import { OTLPTraceExporter as OtlpGrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as OtlpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { createBatchSpanProcessorFromEnv } from "@opentelemetry/sdk-node/build/src/create-from-env.js";
import {
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type IdGenerator,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";
import { NO_TRACE_EXPORT, type TraceExporter } from "./traces.js";
import type { ChainSummary, TaskRecord } from "../model/tasks/index.js";
import { chainSpanId, taskSpanId } from "../logic/task-trace.js";
import { VERSION } from "../version.js";

/** The task a span is about (set by taskAttributes). */
function taskIdOf(span: ReadableSpan): string | undefined {
  const id = span.attributes["messaging.message.id"];
  return typeof id === "string" ? id : undefined;
}

/**
 * An exporter that tells the task model which spans were sent, so that a span exported but not
 * sent when orgwatch is killed (still in the batch queue, or its request lost) is sent again by the
 * next orgwatch, with the same ids.
 */
class ConfirmingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly sent: (taskId: string) => void,
    private readonly holding: () => boolean,
    /** Tasks whose span is recorded and whose export has no result yet (not recorded again). */
    private readonly inFlight: Set<string>,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const settle = (result: ExportResult) => {
      for (const span of spans) {
        const id = taskIdOf(span);
        if (id === undefined) continue;
        this.inFlight.delete(id);
        if (result.code === ExportResultCode.SUCCESS) this.sent(id);
      }
    };
    // Recorded while this process held the lease, but the lease is lost since: the new holder
    // sends them (they are not confirmed), so they are dropped here rather than sent twice.
    if (!this.holding()) {
      for (const span of spans) {
        const id = taskIdOf(span);
        if (id !== undefined) this.inFlight.delete(id);
      }
      return done({ code: ExportResultCode.SUCCESS });
    }
    this.inner.export(spans, (result) => {
      settle(result);
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** Hands the SDK the ids orgwatch derived for the span about to start. */
class DerivedIds implements IdGenerator {
  traceId = "";
  spanId = "";
  generateTraceId(): string {
    return this.traceId;
  }
  generateSpanId(): string {
    return this.spanId;
  }
}

/**
 * The exporters OTEL_TRACES_EXPORTER names, chosen as the SDK's own getSpanProcessorsFromEnv
 * chooses them (otlp by default, `none` alone disables, the OTLP protocol from
 * OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL), each wrapped to confirm what it sent: the SDK's own
 * function builds the processors around exporters it does not hand out.
 */
function exportersFromEnv(log: Logger): SpanExporter[] {
  let names = [...new Set(getStringListFromEnv("OTEL_TRACES_EXPORTER") ?? [])].filter((n) => n !== "null");
  if (names[0] === "none") return [];
  if (names.length === 0) {
    // The one difference from the SDK: no exporter and no endpoint named is no export, not OTLP
    // to localhost.
    const endpoint =
      getStringFromEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ??
      getStringFromEnv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (endpoint === undefined) return [];
    names = ["otlp"];
  } else if (names.includes("none")) {
    log.warn('OTEL_TRACES_EXPORTER names "none" with other exporters; using otlp, as the SDK does');
    names = ["otlp"];
  }
  const exporters: SpanExporter[] = [];
  for (const name of names) {
    if (name === "console") exporters.push(new ConsoleSpanExporter());
    else if (name === "otlp") {
      const protocol =
        getStringFromEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ??
        getStringFromEnv("OTEL_EXPORTER_OTLP_PROTOCOL") ??
        "http/protobuf";
      if (protocol === "grpc") exporters.push(new OtlpGrpcExporter());
      else if (protocol === "http/json") exporters.push(new OtlpJsonExporter());
      else {
        if (protocol !== "http/protobuf")
          log.warn(
            `OTLP protocol ${protocol} is not one of grpc, http/protobuf, http/json; using http/protobuf`,
          );
        exporters.push(new OtlpProtoExporter());
      }
    } else log.warn(`OTEL_TRACES_EXPORTER=${name} is not supported (otlp, console, none); ignored`);
  }
  return exporters;
}

const SCOPE = "orgwatch";

function taskAttributes(task: TaskRecord): Attributes {
  const a: Attributes = {
    "messaging.system": "nats",
    "messaging.operation.type": "process",
    "messaging.destination.name": task.subject,
    "messaging.message.id": task.taskId,
    "messaging.nats.stream": task.stream,
    "messaging.nats.sequence": task.streamSequence,
    "messaging.nats.delivery_count": task.deliveries,
    "gen_ai.agent.name": task.role,
    "orgwatch.task.type": task.type,
    "orgwatch.task.outcome": task.outcome ?? "",
  };
  if (task.consumer !== undefined) a["messaging.consumer.group.name"] = task.consumer;
  if (task.link !== undefined) a["orgwatch.link"] = task.link;
  const parentId = task.parentTaskId ?? task.inferredParentId;
  if (parentId !== undefined) a["orgwatch.task.parent_id"] = parentId;
  if (task.sla.ackWithinSeconds !== undefined)
    a["orgwatch.sla.ack_within_seconds"] = task.sla.ackWithinSeconds;
  if (task.sla.completeWithinMinutes !== undefined)
    a["orgwatch.sla.complete_within_minutes"] = task.sla.completeWithinMinutes;
  if (task.slaBreached.length > 0) a["orgwatch.sla.breached"] = [...task.slaBreached];
  if (task.firstDeliveryMs !== undefined)
    a["orgwatch.task.queue_seconds"] = (task.firstDeliveryMs - task.publishedMs) / 1000;
  if (task.onCompletePublishTo !== undefined) a["orgwatch.on_complete.publish_to"] = task.onCompletePublishTo;
  if (task.outcome === "timeout") a["orgwatch.task.timed_out"] = true;
  if (task.lostReason !== undefined) a["orgwatch.lost.reason"] = task.lostReason;
  if (task.usage) {
    a["gen_ai.usage.input_tokens"] = task.usage.inputTokens;
    a["gen_ai.usage.output_tokens"] = task.usage.outputTokens;
    a["orgwatch.cost_usd"] = task.usage.costUsd;
    if (task.usage.model !== undefined) a["gen_ai.request.model"] = task.usage.model;
  }
  return a;
}

const flags = (sampled: boolean) => (sampled ? TraceFlags.SAMPLED : TraceFlags.NONE);

/**
 * The context a span of the chain starts under: its parent, marked as the whole chain is sampled.
 * A chain is kept or dropped whole: by the joined traceparent's flag, else by the decision the
 * configured sampler makes for the chain's first span (a parent-based sampler would keep a child of
 * any parent marked sampled, and drop one whose parent is not).
 */
function parentContext(
  tracer: Tracer,
  ids: DerivedIds,
  traceId: string,
  parentSpanId: string,
  parentSampled: boolean | undefined,
  rootSpanId: string,
): Context {
  let sampled = parentSampled;
  if (sampled === undefined) {
    ids.traceId = traceId;
    ids.spanId = rootSpanId;
    const root = tracer.startSpan("sampling decision", { root: true }); // never ended: never exported
    sampled = (root.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
  }
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId: parentSpanId,
    traceFlags: flags(sampled),
    isRemote: true,
  });
}

/** Starts and ends the span of an ended task whose ids are frozen; whether it was sampled. */
function recordTaskSpan(tracer: Tracer, ids: DerivedIds, task: TaskRecord): boolean {
  const frozen = task.ids!;
  const parent =
    frozen.parentSpanId === undefined
      ? ROOT_CONTEXT
      : parentContext(
          tracer,
          ids,
          frozen.traceId,
          frozen.parentSpanId,
          frozen.parentSampled,
          taskSpanId(frozen.rootTaskId),
        );
  ids.traceId = frozen.traceId;
  ids.spanId = frozen.spanId;
  const failed = task.outcome === "failed" || task.outcome === "dead_letter" || task.outcome === "lost";
  const span = tracer.startSpan(
    `${task.role} ${task.type || "task"}`,
    {
      kind: SpanKind.CONSUMER,
      startTime: millisToHrTime(task.publishedMs),
      attributes: taskAttributes(task),
      root: frozen.parentSpanId === undefined,
    },
    parent,
  );
  for (const e of task.events) {
    const attributes: Attributes = {};
    if (e.delivery !== undefined) attributes["messaging.nats.delivery_count"] = e.delivery;
    if (e.consumer !== undefined) attributes["messaging.consumer.group.name"] = e.consumer;
    if (e.reason !== undefined) attributes["orgwatch.lost.reason"] = e.reason;
    span.addEvent(e.name, attributes, millisToHrTime(e.atMs));
  }
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: task.outcome });
  span.end(millisToHrTime(Math.max(task.doneMs ?? task.publishedMs, task.publishedMs)));
  return (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
}

/**
 * The chain's own span, exported when the chain ends: a child of its first task's span covering the
 * whole chain (first publication to last end), with the chain's totals. The first task's span is
 * exported when that task ends, long before the chain's totals are known; holding it back until
 * then would leave a trace without its root for the chain's whole life.
 */
function recordChainSpan(tracer: Tracer, ids: DerivedIds, chain: ChainSummary): void {
  const rootSpanId = taskSpanId(chain.rootTaskId);
  const parent = parentContext(tracer, ids, chain.traceId, rootSpanId, chain.parentSampled, rootSpanId);
  ids.traceId = chain.traceId;
  ids.spanId = chainSpanId(chain.rootTaskId);
  const attributes: Attributes = {
    "orgwatch.chain.first_task_id": chain.rootTaskId,
    "orgwatch.chain.last_task_id": chain.lastTaskId,
    "orgwatch.chain.steps": chain.steps,
    "orgwatch.chain.duration_seconds": chain.durationSeconds,
  };
  if (chain.usage) {
    attributes["gen_ai.usage.input_tokens"] = chain.usage.inputTokens;
    attributes["gen_ai.usage.output_tokens"] = chain.usage.outputTokens;
    attributes["orgwatch.cost_usd"] = chain.usage.costUsd;
  }
  tracer
    .startSpan(
      "chain",
      { kind: SpanKind.INTERNAL, startTime: millisToHrTime(chain.startMs), attributes },
      parent,
    )
    .end(millisToHrTime(chain.endMs));
}

/** The exporter of traces.ts, once it knows traces are configured (see there). */
export function startSdkTraceExporter(
  org: Organization,
  _config: Config,
  log: Logger,
  exporter?: SpanExporter,
): TraceExporter {
  if (exporter === undefined && getBooleanFromEnv("OTEL_SDK_DISABLED")) {
    log.info("OTEL_SDK_DISABLED: no traces exported");
    return NO_TRACE_EXPORT;
  }
  const confirm = (taskId: string) => org.tasks.confirmSpanSent(taskId);
  const holding = () => org.lease.held;
  const inFlight = new Set<string>();
  const confirming = (inner: SpanExporter) => new ConfirmingExporter(inner, confirm, holding, inFlight);
  const exporters = exporter ? [exporter] : exportersFromEnv(log);
  if (exporters.length === 0) return NO_TRACE_EXPORT;
  const processors: SpanProcessor[] = exporters.map((e) =>
    // As the SDK: the console printed at once, everything else batched by OTEL_BSP_*.
    e === exporter || e instanceof ConsoleSpanExporter
      ? new SimpleSpanProcessor(confirming(e))
      : createBatchSpanProcessorFromEnv(confirming(e)),
  );
  const ids = new DerivedIds();
  const sdk = new NodeSDK({
    // Resource: these defaults, then the detectors (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
    // host, process…) over them.
    resource: defaultResource().merge(
      resourceFromAttributes({ "service.name": "orgwatch", "service.version": VERSION }),
    ),
    spanProcessors: processors,
    idGenerator: ids,
    // Traces only: NodeSDK would otherwise also export metrics and logs over OTLP.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    textMapPropagator: null,
  });
  sdk.start();
  // The SDK registers its provider globally; orgwatch keeps its own tracer and gives the global
  // back, so that nothing else in the process reports through orgwatch's exporter (and a second
  // orgwatch in one process, as in tests, gets its own).
  const tracer = trace.getTracer(SCOPE, VERSION);
  trace.disable();
  org.tasks.confirmsSpans = true;
  log.info(
    { exporters: exporter ? ["given"] : exporters.map((e) => e.constructor.name) },
    "exporting traces",
  );

  const onFinished = (task: TaskRecord) => {
    // Not the lease holder: the holder exports it; this replica sends it if it takes over first.
    // Recorded already, its export not settled (a replica taking over resends all it has not seen sent).
    if (!holding() || inFlight.has(task.taskId)) return;
    // Ended here after the last holder sent it (TasksModel.followHolder): sent already.
    if (task.spanSent === true) return;
    if (!task.ids) {
      confirm(task.taskId); // nothing to send
      return;
    }
    try {
      if (recordTaskSpan(tracer, ids, task)) inFlight.add(task.taskId);
      else confirm(task.taskId); // not sampled: nothing to send
    } catch (err) {
      log.warn({ err: (err as Error).message }, "span not exported");
    }
  };
  const onChainFinished = (chain: ChainSummary) => {
    if (!holding() || chain.closedByHolder) return;
    try {
      recordChainSpan(tracer, ids, chain);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "chain span not exported");
    }
  };
  org.tasks.on("finished", onFinished);
  org.tasks.on("resend", onFinished);
  org.tasks.on("chainFinished", onChainFinished);
  return {
    async flush() {
      await Promise.all(processors.map((p) => p.forceFlush())).catch((err: unknown) =>
        log.warn({ err: (err as Error).message }, "trace export flush"),
      );
    },
    async shutdown() {
      org.tasks.off("finished", onFinished);
      org.tasks.off("resend", onFinished);
      org.tasks.off("chainFinished", onChainFinished);
      await sdk
        .shutdown()
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, "trace export shutdown"));
    },
  };
}
