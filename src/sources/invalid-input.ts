// Refused input: counted in orgwatch_invalid_messages_total and logged at debug level, at most one
// line per source per interval (with how many were refused since), so a flood of bad messages
// neither fills the log nor costs more than a counter increment each.
import type { Logger } from "../log.js";
import type { ExporterHealth, InvalidSource } from "../model/exporter-health.js";

const LOG_INTERVAL_MS = 10_000;

export type InvalidReporter = (reason: string, subject: string) => void;

export function invalidReporter(health: ExporterHealth, log: Logger, source: InvalidSource): InvalidReporter {
  let lastLogMs = -Infinity;
  let refusedSinceLog = 0;
  return (reason, subject) => {
    health.countInvalid(source, reason);
    refusedSinceLog++;
    const now = Date.now();
    if (now - lastLogMs < LOG_INTERVAL_MS || !log.isLevelEnabled("debug")) return;
    // The subject is only logged, never a label; cut so a hostile one cannot bloat the log.
    log.debug(
      { source, reason, subject: subject.slice(0, 200), refused: refusedSinceLog },
      "invalid message skipped",
    );
    lastLogMs = now;
    refusedSinceLog = 0;
  };
}
