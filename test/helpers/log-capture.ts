// A pino logger whose output tests can read: every line is kept (as written) for greps and checks.
import { pino, type Logger } from "pino";

export interface CapturedLog {
  readonly log: Logger;
  /** Every line written so far, raw JSON text. */
  readonly lines: string[];
  /** Lines whose `msg` contains `text`. */
  messages(text: string): Record<string, unknown>[];
  /** All output as one string (for greps). */
  text(): string;
}

export function captureLog(level = "trace"): CapturedLog {
  const lines: string[] = [];
  const log = pino({ level }, { write: (line: string) => void lines.push(line) });
  return {
    log,
    lines,
    messages(text) {
      return lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => typeof r["msg"] === "string" && r["msg"].includes(text));
    },
    text: () => lines.join(""),
  };
}
