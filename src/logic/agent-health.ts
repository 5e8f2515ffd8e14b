// How healthy an agent looks on the console, from what its card shows: the colour and the reasons
// behind it. Critical is what pages (docs/alerts.md): down, stalled or stopped work, work lost or
// dead-lettered within the last hour. Warning is what the warnings say: lag, old work, broadcasts
// not acknowledged, a backlog that will not drain in time.
import type { ConsumerStatus } from "./consumer-status.js";

export type Health = "ok" | "warning" | "critical";

export interface AgentFacts {
  readonly up: boolean;
  /** Never sent a status: nothing to say about being up (a roster role with no agent yet). */
  readonly everReported: boolean;
  readonly status: ConsumerStatus;
  readonly lag: number;
  /** The oldest unacknowledged task's age and its consumer's ack wait, seconds. */
  readonly oldestTaskAgeSeconds: number | undefined;
  readonly ackWaitSeconds: number | undefined;
  /** Infinity: lag and no acks; undefined: not known yet. */
  readonly drainEtaSeconds: number | undefined;
  readonly maxEtaSeconds: number;
  readonly deadLettersLastHour: number;
  readonly lostLastHour: number;
  readonly unackedBroadcasts: number;
}

export interface HealthVerdict {
  readonly health: Health;
  readonly reasons: readonly string[];
}

export function agentHealth(f: AgentFacts): HealthVerdict {
  const critical: string[] = [];
  const warning: string[] = [];
  if (!f.up) (f.everReported ? critical : warning).push(f.everReported ? "silent" : "never reported");
  if (f.status === "stalled" || f.status === "stopped") critical.push(`work ${f.status}`);
  else if (f.status === "lagging") warning.push("lagging");
  if (f.deadLettersLastHour > 0) critical.push(`${f.deadLettersLastHour} dead-lettered in the last hour`);
  if (f.lostLastHour > 0) critical.push(`${f.lostLastHour} lost in the last hour`);
  if (
    f.oldestTaskAgeSeconds !== undefined &&
    f.ackWaitSeconds !== undefined &&
    f.ackWaitSeconds > 0 &&
    f.oldestTaskAgeSeconds > f.ackWaitSeconds
  )
    warning.push("oldest task older than its ack wait");
  if (f.drainEtaSeconds !== undefined && f.lag > 0 && f.drainEtaSeconds > f.maxEtaSeconds)
    warning.push(Number.isFinite(f.drainEtaSeconds) ? "backlog drains too slowly" : "backlog not draining");
  if (f.unackedBroadcasts > 0) warning.push(`${f.unackedBroadcasts} broadcasts not acknowledged`);
  if (critical.length > 0) return { health: "critical", reasons: [...critical, ...warning] };
  if (warning.length > 0) return { health: "warning", reasons: warning };
  return { health: "ok", reasons: [] };
}
