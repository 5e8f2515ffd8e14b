import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs for machines; `pretty` for people at a terminal. */
export function createLogger(level: string, format: "json" | "pretty"): Logger {
  if (format === "pretty") {
    return pino({
      level,
      transport: { target: "pino-pretty", options: { colorize: process.stderr.isTTY, destination: 2 } },
    });
  }
  return pino({ level }, pino.destination(2));
}

/** A logger that writes nothing (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
