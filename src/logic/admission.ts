// Admission control (DESIGN.md §8): "check pending message count before publishing", answered from
// what orgwatch knows now. Pure: the request, the role's task consumers and its agent in, a verdict
// with a reason a person understands out.
//
// reject: no stream stores the role's tasks, its consumer is stalled or stopped, or its agent is
//         down (it reported a status once and has gone silent; an agent that never reports status
//         is not judged on it).
// defer:  lag + tasks would exceed the max lag, or the backlog would finish after the requested
//         completion time (or after --backpressure.max-eta when none is asked).
// accept: otherwise.
import { formatDuration } from "../config/duration.js";
import type { ConsumerStatus } from "./consumer-status.js";
import { isValidRole } from "./classify.js";

export const VERDICTS = ["accept", "defer", "reject"] as const;
export type Verdict = (typeof VERDICTS)[number];

export interface AdmissionRequest {
  readonly role: string;
  readonly tasks: number;
  readonly completeWithinMinutes: number | undefined;
}

export interface AdmissionReply {
  readonly role: string;
  readonly verdict: Verdict;
  readonly reason: string;
  readonly lag: number;
  /** null: unknown (no rate yet); Infinity is sent as null too, with the reason saying so. */
  readonly drain_eta_seconds: number | null;
  readonly oldest_unacked_age_seconds: number;
  readonly consumer_status: ConsumerStatus | null;
  /** null: the agent never reported a status. */
  readonly agent_up: boolean | null;
}

/** A request that cannot be answered: the service's error (code as in HTTP). */
export class AdmissionError extends Error {
  constructor(
    readonly code: 400 | 404,
    message: string,
  ) {
    super(message);
  }
}

/** What the model says about a role, for its admission. */
export interface RoleState {
  /** The role is known to orgwatch (configured, a stream, a status heard). */
  readonly known: boolean;
  /** Its task consumers (durable, kind tasks); empty when no stream stores its tasks. */
  readonly consumers: readonly {
    readonly name: string;
    readonly lag: number;
    readonly oldestUnackedMs: number | undefined;
    readonly status: ConsumerStatus;
    readonly ackRatePerSecond: number | undefined;
  }[];
  /** Its task stream exists (with or without a consumer). */
  readonly hasStream: boolean;
  /** undefined: never reported a status. */
  readonly agentUp: boolean | undefined;
}

export interface AdmissionSettings {
  readonly maxLag: number;
  readonly maxEtaMs: number;
}

const MAX_TASKS = 10_000;

/** Parses a request body (JSON) or query; throws AdmissionError(400) with what is wrong. */
export function parseAdmissionRequest(value: unknown): AdmissionRequest {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new AdmissionError(400, 'the request must be a JSON object like {"role":"cto","tasks":1}');
  const r = value as Record<string, unknown>;
  const role = r["role"];
  if (typeof role !== "string" || role === "")
    throw new AdmissionError(400, '"role" must be a non-empty string');
  if (!isValidRole(role))
    throw new AdmissionError(400, `"role" ${JSON.stringify(role.slice(0, 64))} is not a role name`);
  const number = (key: string, min: number, max: number): number | undefined => {
    const v = r[key];
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || n < min || n > max)
      throw new AdmissionError(400, `"${key}" must be a number from ${min} to ${max}`);
    return n;
  };
  const tasks = number("tasks", 0, MAX_TASKS) ?? 1;
  if (!Number.isInteger(tasks)) throw new AdmissionError(400, '"tasks" must be a whole number');
  return { role, tasks, completeWithinMinutes: number("complete_within_minutes", 0, 525_600) };
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))}s`;
  return formatDuration(Math.round(seconds / 60) * 60_000);
}

function perHour(ratePerSecond: number): string {
  const hourly = ratePerSecond * 3600;
  return hourly >= 10 ? `${Math.round(hourly)} an hour` : `${Number(hourly.toPrecision(2))} an hour`;
}

function waiting(role: string, lag: number): string {
  return `${role} has ${lag} task${lag === 1 ? "" : "s"} waiting`;
}

export function decideAdmission(
  request: AdmissionRequest,
  state: RoleState,
  settings: AdmissionSettings,
  nowMs: number,
): AdmissionReply {
  const { role, tasks } = request;
  if (!state.known && !state.hasStream && state.consumers.length === 0)
    throw new AdmissionError(404, `unknown role "${role}": no stream, consumer or status of it is known`);
  // The busiest of the role's consumers speaks for it (replicas share one consumer).
  const c = [...state.consumers].sort((a, b) => b.lag - a.lag)[0];
  const lag = c?.lag ?? 0;
  const oldest = c?.oldestUnackedMs === undefined ? 0 : Math.max(0, (nowMs - c.oldestUnackedMs) / 1000);
  const rate = c?.ackRatePerSecond;
  const after = lag + tasks;
  // No ack over the window means no progress only if there was work to ack: an idle agent's pace is
  // unknown, not zero.
  const eta =
    after === 0
      ? 0
      : rate !== undefined && rate > 0
        ? after / rate
        : rate === 0 && lag > 0
          ? Infinity
          : undefined;
  const reply = (verdict: Verdict, reason: string): AdmissionReply => ({
    role,
    verdict,
    reason,
    lag,
    drain_eta_seconds: eta === undefined || !Number.isFinite(eta) ? null : Math.round(eta),
    oldest_unacked_age_seconds: Math.round(oldest),
    consumer_status: c?.status ?? null,
    agent_up: state.agentUp ?? null,
  });
  if (!c) {
    return reply(
      "reject",
      state.hasStream
        ? `${role}'s task stream has no consumer: nobody would take the task`
        : `no stream stores ${role}'s tasks: the task would be dropped`,
    );
  }
  if (c.status === "stalled" || c.status === "stopped")
    return reply(
      "reject",
      `${role}'s consumer ${c.name} is ${c.status}: ${waiting(role, lag)} and ${c.status === "stalled" ? "none is being finished" : "nobody is taking them"}`,
    );
  if (state.agentUp === false)
    return reply("reject", `agent ${role} is down: it has stopped reporting its status`);
  if (after > settings.maxLag)
    return reply(
      "defer",
      `${waiting(role, lag)}; ${tasks} more would make ${after}, over the limit of ${settings.maxLag}`,
    );
  const limitSeconds =
    request.completeWithinMinutes !== undefined
      ? request.completeWithinMinutes * 60
      : settings.maxEtaMs / 1000;
  const limitText =
    request.completeWithinMinutes !== undefined
      ? `its ${duration(limitSeconds)} SLA`
      : `the ${duration(limitSeconds)} a backlog may take`;
  if (eta !== undefined && eta > limitSeconds) {
    const pace =
      rate !== undefined && rate > 0
        ? `at ${perHour(rate)} the last would finish in ${duration(eta)}`
        : "none was acknowledged lately, so the last would never finish";
    return reply("defer", `${waiting(role, lag)}; ${pace}, after ${limitText}`);
  }
  const pace =
    eta === undefined
      ? "no ack rate measured yet"
      : `the last would finish in ${duration(eta)}${rate !== undefined && rate > 0 ? ` at ${perHour(rate)}` : ""}`;
  return reply("accept", `${waiting(role, lag)}; ${pace}, within ${limitText}`);
}
