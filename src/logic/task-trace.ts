// Trace and span ids of tasks, derived from the task id so they are the same whenever and by
// whichever orgwatch process they are computed: a parent and its child exported at different times,
// or on both sides of a restart, still connect. Plus the OTEL_TRACES_SAMPLER decision, made on the
// trace id so a whole chain is kept or dropped together.
import { createHash } from "node:crypto";

function digestHex(kind: string, taskId: string, hexChars: number): string {
  const hex = createHash("sha256")
    .update(`orgwatch/${kind}/`)
    .update(taskId)
    .digest("hex")
    .slice(0, hexChars);
  // An all-zero id is invalid in W3C trace context; astronomically unlikely, but never emit one.
  return /^0+$/.test(hex) ? "1".padStart(hexChars, "0") : hex;
}

/** The span id (16 hex) of a task's span. */
export function taskSpanId(taskId: string): string {
  return digestHex("span", taskId, 16);
}

/** The trace id (32 hex) of a chain whose first known task is `rootTaskId`. */
export function chainTraceId(rootTaskId: string): string {
  return digestHex("trace", rootTaskId, 32);
}

export type SamplerKind =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio";

export interface SamplerConfig {
  readonly kind: SamplerKind;
  /** For the traceidratio kinds: 0..1. */
  readonly ratio: number;
}

/**
 * Whether a trace is exported. `parentSampled` is the sampled flag of a `traceparent` the chain
 * joined (undefined when the chain started in orgwatch: then it is a root and the root sampler
 * decides). The ratio test reads the trace id's last 8 bytes like OpenTelemetry's
 * TraceIdRatioBasedSampler does, so the same trace is kept everywhere.
 */
export function isSampled(
  config: SamplerConfig,
  traceId: string,
  parentSampled: boolean | undefined,
): boolean {
  const ratioKeeps = () => {
    if (config.ratio >= 1) return true;
    if (config.ratio <= 0) return false;
    const low = Number.parseInt(traceId.slice(-8), 16);
    return low / 0xffffffff < config.ratio;
  };
  switch (config.kind) {
    case "always_on":
      return true;
    case "always_off":
      return false;
    case "traceidratio":
      return ratioKeeps();
    case "parentbased_always_on":
      return parentSampled ?? true;
    case "parentbased_always_off":
      return parentSampled ?? false;
    case "parentbased_traceidratio":
      return parentSampled ?? ratioKeeps();
  }
}
