// The shipped alert rules on a faster clock. The demo runs its organization `speed` times faster
// than real time (its 30-minute ack waits take seconds), so rules about the organization must wait
// `speed` times less to say the same thing: every `for:` and `keep_firing_for:`, every range and
// offset, every threshold on a duration in seconds, and every per-hour factor. Rules about orgwatch
// itself (scrapes, polls) run on the real clock and are left as they are.
import { formatDuration, parseDuration } from "../config/duration.js";

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: AlertRule[];
}

export interface RuleFile {
  groups: RuleGroup[];
}

export interface RuleScaling {
  /** How many times faster than real time the organization runs. */
  readonly speed: number;
  /** Shortest range or offset after scaling: a range needs a few scrapes in it (rate, increase). */
  readonly minRangeMs: number;
  /** Groups left on the real clock. */
  readonly realTimeGroups: readonly string[];
}

const DURATION = String.raw`(?:\d+(?:ms|s|m|h|d|w))+`;

function scaled(text: string, speed: number, minMs: number): string {
  const ms = parseDuration(text);
  if (ms === undefined || ms === 0) return text;
  return formatDuration(Math.max(Math.round(ms / speed), minMs));
}

function number(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

/** A PromQL expression on the faster clock. */
export function scaleExpr(expr: string, scaling: RuleScaling): string {
  const { speed, minRangeMs } = scaling;
  return (
    expr
      // Ranges and subquery resolutions: [10m], [30m:1m].
      .replace(
        new RegExp(String.raw`\[(${DURATION})(?::(${DURATION})?)?\]`, "g"),
        (_m, range: string, step: string | undefined) =>
          `[${scaled(range, speed, minRangeMs)}${
            step === undefined ? (_m.includes(":") ? ":" : "") : `:${scaled(step, speed, 1000)}`
          }]`,
      )
      .replace(
        new RegExp(String.raw`\boffset\s+(${DURATION})`, "g"),
        (_m, d: string) => `offset ${scaled(d, speed, minRangeMs)}`,
      )
      // A threshold on a duration: `…_seconds{…} > 300`, also taken once across a pair: `…_seconds{…}) > 300`.
      .replace(
        /(_seconds(?:\{[^}]*\})?\)*\s*(?:>=|<=|>|<)\s*)(\d+(?:\.\d+)?)(?![\d.])/g,
        (_m, head: string, n: string) => `${head}${number(Number(n) / speed)}`,
      )
      // A rate per hour: `rate(…) * 3600 > 4` counts per hour of the organization's clock.
      .replace(/\*\s*3600(?![\d.])/g, () => `* ${number(3600 / speed)}`)
  );
}

/** The rule file on the faster clock, and one line per rule saying what changed. */
export function scaleRuleFile(file: RuleFile, scaling: RuleScaling): { file: RuleFile; changes: string[] } {
  const changes: string[] = [];
  const groups = file.groups.map((group) => {
    if (scaling.realTimeGroups.includes(group.name)) return group;
    const rules = group.rules.map((rule) => {
      const next: AlertRule = { ...rule, expr: scaleExpr(rule.expr, scaling) };
      if (rule.for !== undefined) next.for = scaled(rule.for, scaling.speed, 1000);
      if (rule.keep_firing_for !== undefined)
        next.keep_firing_for = scaled(rule.keep_firing_for, scaling.speed, 1000);
      const what: string[] = [];
      if (next.for !== rule.for) what.push(`for ${rule.for} → ${next.for}`);
      if (next.keep_firing_for !== rule.keep_firing_for)
        what.push(`keep_firing_for ${rule.keep_firing_for} → ${next.keep_firing_for}`);
      if (next.expr !== rule.expr) what.push("durations in expr");
      if (what.length > 0) changes.push(`${rule.alert ?? rule.record}: ${what.join(", ")}`);
      return next;
    });
    return { ...group, rules };
  });
  return { file: { groups }, changes };
}
