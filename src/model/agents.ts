// Agents: who is alive and what they are doing (status subjects), and what happens in the
// organization (events). Written by sources/agent-status.ts and sources/org-events.ts.
import { isValidRole } from "../logic/classify.js";
import type { AgentState } from "../logic/status-message.js";
import type { JetStreamModel, PollResult } from "./jetstream.js";

export interface AgentStatus {
  /** Arrival time (orgwatch's clock, epoch ms) of the last status message. */
  readonly lastStatusMs: number;
  /** The last state reported; `unknown` when it was one orgwatch does not know. */
  readonly state: AgentState;
}

export interface AgentView {
  readonly role: string;
  readonly up: boolean;
  readonly state: AgentState;
  readonly lastStatusMs: number | undefined;
}

/** Roles with a task stream or a task consumer: agents that should be reporting. */
function taskRoles(poll: PollResult | undefined): Set<string> {
  const roles = new Set<string>();
  if (!poll) return roles;
  for (const s of poll.streams.values()) if (s.kind === "tasks" && s.role !== "") roles.add(s.role);
  for (const c of poll.consumers.values()) if (c.kind === "tasks" && c.role !== "") roles.add(c.role);
  return roles;
}

export class AgentsModel {
  /** By role; only roles admitted by the status source's label cap. */
  readonly statuses = new Map<string, AgentStatus>();
  /** Valid status messages received (the invalid ones are counted in ExporterHealth). */
  statusMessages = 0;
  /** Valid events received. */
  eventMessages = 0;
  /** Event counts by `${type}\u0000${role}`, both already capped. */
  readonly events = new Map<string, number>();
  private readonly configuredRoles: ReadonlySet<string>;
  private taskRoles = new Set<string>();

  constructor(configuredRoles: readonly string[], jetstream: JetStreamModel) {
    this.configuredRoles = new Set(configuredRoles.filter(isValidRole));
    jetstream.on("polled", (result) => (this.taskRoles = taskRoles(result)));
  }

  /** A role orgwatch expects without having to learn it from a message (config or task streams). */
  isExpected(role: string): boolean {
    return this.configuredRoles.has(role) || this.taskRoles.has(role);
  }

  /** Expected or already reporting: using it as a label costs no new series. */
  isKnown(role: string): boolean {
    return this.statuses.has(role) || this.isExpected(role);
  }

  /** Configured roles ∪ roles with task streams or consumers ∪ roles that sent a status; sorted. */
  roster(): string[] {
    return [...new Set([...this.configuredRoles, ...this.taskRoles, ...this.statuses.keys()])].sort();
  }

  /**
   * A status arrived. `unknown`: a state orgwatch does not know (counted invalid by the source); the
   * agent is alive all the same, so it stays up rather than raising a silent-agent alert.
   */
  recordStatus(role: string, state: AgentState, atMs: number): void {
    this.statuses.set(role, { lastStatusMs: atMs, state });
  }

  recordEvent(type: string, role: string): void {
    const key = `${type}\u0000${role}`;
    this.events.set(key, (this.events.get(key) ?? 0) + 1);
  }

  /**
   * Every roster agent as of `nowMs`. Up: a status arrived within `staleAfterMs`. State: the last
   * one reported while up; once silent, `offline` stays (an agent that said so is not expected to
   * keep talking) and anything else becomes `unknown`; never reported → down and `unknown`.
   * `outage`: the latest time orgwatch was cut off from NATS, which does not count as silence.
   */
  view(
    nowMs: number,
    staleAfterMs: number,
    outage?: { readonly fromMs: number; readonly toMs?: number },
  ): AgentView[] {
    return this.roster().map((role) => {
      const s = this.statuses.get(role);
      if (!s) return { role, up: false, state: "unknown", lastStatusMs: undefined };
      const up = silentMs(nowMs, s.lastStatusMs, outage) <= staleAfterMs;
      const state = up || s.state === "offline" ? s.state : "unknown";
      return { role, up, state, lastStatusMs: s.lastStatusMs };
    });
  }
}

/**
 * How long an agent last heard at `lastMs` has been silent as of `nowMs`, leaving out the time
 * orgwatch itself could not hear (`outage`): an agent is not down because orgwatch lost NATS.
 */
export function silentMs(
  nowMs: number,
  lastMs: number,
  outage?: { readonly fromMs: number; readonly toMs?: number },
): number {
  if (!outage || lastMs >= (outage.toMs ?? Infinity)) return nowMs - lastMs;
  const before = Math.max(0, outage.fromMs - lastMs);
  return outage.toMs === undefined ? before : before + (nowMs - outage.toMs);
}
