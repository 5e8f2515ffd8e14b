// OpenTelemetry traces across on_complete chains: one span per task, exported when the task ends,
// the chained task a child of the task that caused it (ids from model/tasks.ts, derived from task
// ids, so spans exported at different times or by another orgwatch process still connect).
// Configured by the standard OTEL_* variables (logic/otel-env.ts); nothing configured: no export.
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes } from "@opentelemetry/api";
import { ExportResultCode, hrTimeDuration, millisToHrTime, type ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter as OtlpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import type { Config } from "../config/schema.js";
import { otelTraceSettings } from "../logic/otel-env.js";
import { isSampled } from "../logic/task-trace.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";
import type { TaskRecord } from "../model/tasks/index.js";
import { VERSION } from "../version.js";

export interface TraceExporter {
  shutdown(): Promise<void>;
}

/** The task a span is about (set by taskSpan). */
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
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS)
        for (const span of spans) {
          const id = taskIdOf(span);
          if (id !== undefined) this.sent(id);
        }
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

const SCOPE = { name: "orgwatch", version: VERSION };

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

/** The span of an ended task whose ids are frozen. */
export function taskSpan(task: TaskRecord, resource: ReadableSpan["resource"]): ReadableSpan {
  const ids = task.ids!;
  const startTime = millisToHrTime(task.publishedMs);
  const endTime = millisToHrTime(Math.max(task.doneMs ?? task.publishedMs, task.publishedMs));
  const failed = task.outcome === "failed" || task.outcome === "dead_letter" || task.outcome === "lost";
  return {
    name: `${task.role} ${task.type || "task"}`,
    kind: SpanKind.CONSUMER,
    spanContext: () => ({ traceId: ids.traceId, spanId: ids.spanId, traceFlags: TraceFlags.SAMPLED }),
    parentSpanContext:
      ids.parentSpanId === undefined
        ? undefined
        : { traceId: ids.traceId, spanId: ids.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true },
    startTime,
    endTime,
    status: failed ? { code: SpanStatusCode.ERROR, message: task.outcome } : { code: SpanStatusCode.UNSET },
    attributes: taskAttributes(task),
    links: [],
    events: task.events.map((e) => {
      const attributes: Attributes = {};
      if (e.delivery !== undefined) attributes["messaging.nats.delivery_count"] = e.delivery;
      if (e.consumer !== undefined) attributes["messaging.consumer.group.name"] = e.consumer;
      if (e.reason !== undefined) attributes["orgwatch.lost.reason"] = e.reason;
      return { name: e.name, time: millisToHrTime(e.atMs), attributes };
    }),
    duration: hrTimeDuration(startTime, endTime),
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

export function startTraceExporter(
  org: Organization,
  _config: Config,
  log: Logger,
  exporter?: SpanExporter,
): TraceExporter {
  const settings = otelTraceSettings(process.env);
  for (const problem of settings.problems) log.warn(problem);

  const confirm = (taskId: string) => org.tasks.confirmSpanSent(taskId);
  const confirming = (inner: SpanExporter) => new ConfirmingExporter(inner, confirm);
  let processor: SpanProcessor | undefined;
  if (exporter) processor = new SimpleSpanProcessor(confirming(exporter));
  else if (settings.exporter === "otlp") {
    // The OTLP exporters read endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*.
    const otlp = settings.protocol === "http/json" ? new OtlpJsonExporter() : new OtlpProtoExporter();
    processor = new BatchSpanProcessor(confirming(otlp));
  } else if (settings.exporter === "console")
    processor = new SimpleSpanProcessor(confirming(new ConsoleSpanExporter()));
  if (!processor) return { shutdown: async () => undefined };
  org.tasks.confirmsSpans = true;
  log.info(
    { exporter: exporter ? "given" : settings.exporter, protocol: settings.protocol },
    "exporting traces",
  );

  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": "orgwatch", "service.version": VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  const spans = processor;
  const onFinished = (task: TaskRecord) => {
    if (!task.ids || !isSampled(settings.sampler, task.ids.traceId, task.ids.parentSampled)) {
      confirm(task.taskId); // nothing to send
      return;
    }
    try {
      spans.onEnd(taskSpan(task, resource));
    } catch (err) {
      log.warn({ err: (err as Error).message }, "span not exported");
    }
  };
  org.tasks.on("finished", onFinished);
  org.tasks.on("resend", onFinished);
  return {
    async shutdown() {
      org.tasks.off("finished", onFinished);
      org.tasks.off("resend", onFinished);
      await spans
        .shutdown()
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, "trace export shutdown"));
    },
  };
}
