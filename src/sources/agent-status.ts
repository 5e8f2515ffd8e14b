// Agents' status: a subscription to {prefix}.agents.*.status (core NATS) feeding model.agents.
// The role is the subject's token; roles that are neither configured nor owners of a task stream
// are learned from status messages, up to labels.max-values of them.
import { isValidRole } from "../logic/classify.js";
import { LabelCap } from "../logic/label-cap.js";
import { parseStatusMessage } from "../logic/status-message.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";
import { invalidReporter } from "./invalid-input.js";
import { subscribeHandler, type MessageHandler } from "./message-subscription.js";
import type { RunningSource, SourceContext } from "./source.js";

/** The metric whose series a role learned from status messages would add. */
const CAPPED_METRIC = "orgwatch_agent_up";

/** Handles one status message; never throws (everything refused is counted). */
export function createStatusHandler(org: Organization, log: Logger): MessageHandler {
  const { agents, health } = org;
  const refuse = invalidReporter(health, log, "status");
  const learned = new LabelCap(org.config["labels.max-values"], () => health.countOverflow(CAPPED_METRIC));
  const head = `${org.config["subject-prefix"]}.agents.`;
  const tail = ".status";
  return (subject, data) => {
    const role =
      subject.startsWith(head) && subject.endsWith(tail) ? subject.slice(head.length, -tail.length) : "";
    if (!isValidRole(role)) return refuse("bad_role", subject);
    const parsed = parseStatusMessage(data);
    if (parsed.ok) agents.statusMessages++;
    else {
      refuse(parsed.reason, subject);
      // A state orgwatch does not know still proves the agent alive (AgentsModel.recordStatus).
      if (parsed.reason !== "unknown_state") return;
    }
    // Past the cap a new role is counted as overflow, not made a new series.
    if (!agents.isKnown(role) && learned.admit(role) !== role) return;
    agents.recordStatus(role, parsed.ok ? parsed.value.state : "unknown", Date.now());
  };
}

export function startAgentStatus(ctx: SourceContext): RunningSource {
  const subject = `${ctx.config["subject-prefix"]}.agents.*.status`;
  return subscribeHandler(ctx, subject, "status", createStatusHandler(ctx.org, ctx.log));
}
