// Organization events: a subscription to {prefix}.org.events (core NATS) feeding model.agents
// (counts by type and role) and model.tasks (explicit completion signals of chains).
import { completionOutcome, parseEventMessage } from "../logic/event-message.js";
import { LabelCap } from "../logic/label-cap.js";
import type { Logger } from "../log.js";
import type { Organization } from "../model/organization.js";
import { invalidReporter } from "./invalid-input.js";
import { subscribeHandler, type MessageHandler } from "./message-subscription.js";
import type { RunningSource, SourceContext } from "./source.js";

const CAPPED_METRIC = "orgwatch_events_total";

/** Handles one event; never throws (everything refused is counted). */
export function createEventHandler(org: Organization, log: Logger): MessageHandler {
  const { agents, health, tasks, usage } = org;
  const refuse = invalidReporter(health, log, "event");
  const max = org.config["labels.max-values"];
  const overflow = () => health.countOverflow(CAPPED_METRIC);
  const types = new LabelCap(max, overflow);
  // Roles orgwatch already knows cost no new series; only the others are capped.
  const roles = new LabelCap(max, overflow);
  const usageRoles = new LabelCap(max, () => health.countOverflow("orgwatch_tokens_total"));
  return (subject, data) => {
    const parsed = parseEventMessage(data);
    if (!parsed.ok) return refuse(parsed.reason, subject);
    const event = parsed.value;
    agents.eventMessages++;
    const role = event.role === "" || agents.isKnown(event.role) ? event.role : roles.admit(event.role);
    agents.recordEvent(types.admit(event.type), role);
    const outcome = completionOutcome(event.type);
    // Unusable usage is refused on its own: the event still counts, its numbers are never summed.
    if (event.badUsage) refuse("bad_usage", subject);
    if (outcome && event.usage) {
      const task = event.taskId !== undefined ? tasks.get(event.taskId) : undefined;
      const usageRole = event.role !== "" ? role : task ? usageRoles.admit(task.role) : "";
      usage.record(usageRole, outcome, event.usage, task?.deliveries);
    }
    if (outcome && event.taskId !== undefined) {
      tasks.recordCompletionSignal({
        taskId: event.taskId,
        outcome,
        atMs: event.tsMs ?? Date.now(),
        ...(event.role !== "" ? { role: event.role } : {}),
        ...(event.usage ? { usage: event.usage } : {}),
      });
    }
  };
}

export function startOrgEvents(ctx: SourceContext): RunningSource {
  const subject = `${ctx.config["subject-prefix"]}.org.events`;
  return subscribeHandler(ctx, subject, "event", createEventHandler(ctx.org, ctx.log));
}
