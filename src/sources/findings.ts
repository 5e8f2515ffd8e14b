// Setup findings (orgwatch check) re-evaluated after each poll and kept in the model, so that
// alerts can read orgwatch_config_findings. Reads only the model: the poll already has everything.
import { AckRateTracker, evaluateChecks } from "../logic/checks.js";
import type { PollResult } from "../model/jetstream.js";
import type { RunningSource, SourceContext } from "./source.js";

/**
 * Ack rates for the backlog check are measured over this long: agents take minutes per task, so a
 * poll interval (15 s) mostly sees no ack at all and would call every queue undrainable.
 */
export const ACK_RATE_WINDOW_MS = 15 * 60_000;

export function startFindings(ctx: SourceContext): RunningSource {
  const { config, org } = ctx;
  const rates = new AckRateTracker(ACK_RATE_WINDOW_MS);
  const prefix = config["subject-prefix"];

  const onPoll = (result: PollResult) => {
    // Only task consumers have a backlog check; the others need no rate.
    const ackRates = rates.observe(
      [...result.consumers.values()].filter((c) => c.kind === "tasks"),
      result.at,
    );
    const findings = evaluateChecks({
      prefix,
      streams: result.streams.values(),
      consumers: result.consumers.values(),
      roster: org.agents.roster(),
      expectedWorkMs: config["expected-work"],
      maxDrainMs: config["check.drain-time"],
      deadLetterSubject: config["deadletter.subject"] ?? `${prefix}.org.deadletter`,
      // The daemon routes dead letters itself unless told not to.
      deadLetterRouted: config["deadletter.route"],
      ackRates,
      onCompleteTargets: org.tasks.latestOnCompleteTargets(),
    });
    org.findings.set(findings, result.at);
  };
  org.jetstream.on("polled", onPoll);

  return {
    async stop() {
      org.jetstream.off("polled", onPoll);
    },
  };
}
