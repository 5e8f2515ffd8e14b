// Setup findings (orgwatch check) re-evaluated after each poll and kept in the model, so that
// alerts can read orgwatch_config_findings. Reads only the model: the poll already has everything.
import { checkSteps } from "../logic/checks.js";
import type { PollResult } from "../model/jetstream.js";
import type { RunningSource, SourceContext } from "./source.js";

export function startFindings(ctx: SourceContext): RunningSource {
  const { config, org } = ctx;
  const prefix = config["subject-prefix"];

  // Returns its work as steps, run a turn of the event loop apart (model/jetstream.ts).
  function* onPoll(result: PollResult): Generator<void, void, void> {
    // The consumers' own ack rates (over --backpressure.window, logic/ack-rate.ts), per ms; a
    // consumer with none measured yet is estimated at one task per expected work.
    const ackRates = new Map<string, number>();
    for (const c of result.consumers.values())
      if (c.kind === "tasks" && c.ackRatePerSecond !== undefined && c.ackRatePerSecond > 0)
        ackRates.set(`${c.stream}/${c.name}`, c.ackRatePerSecond / 1000);
    const findings = yield* checkSteps({
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
      nowMs: result.at,
    });
    org.findings.set(findings, result.at);
  }
  org.jetstream.on("polled", onPoll);

  return {
    async stop() {
      org.jetstream.off("polled", onPoll);
    },
  };
}
