// How `orgwatch check` prints its findings: a table for people (coloured on a terminal, plain when
// piped) or one JSON document for CI. Pure: strings in, strings out.
import { FINDING_LEVELS, type Finding, type FindingLevel } from "../logic/checks.js";

export interface CheckReport {
  /** The servers checked, credentials hidden. */
  readonly servers: readonly string[];
  readonly streams: number;
  readonly consumers: number;
  readonly roster: readonly string[];
  readonly findings: readonly Finding[];
  readonly exitCode: number;
}

const COLOUR: Record<FindingLevel, string> = { error: "\x1b[31m", warning: "\x1b[33m", info: "\x1b[36m" };
const BOLD = "\x1b[1m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

export function countByLevel(findings: readonly Finding[]): Record<FindingLevel, number> {
  const counts: Record<FindingLevel, number> = { error: 0, warning: 0, info: 0 };
  for (const f of findings) counts[f.level]++;
  return counts;
}

export function renderJson(report: CheckReport): string {
  return (
    JSON.stringify(
      {
        servers: report.servers,
        streams: report.streams,
        consumers: report.consumers,
        roster: report.roster,
        summary: countByLevel(report.findings),
        exitCode: report.exitCode,
        findings: report.findings,
      },
      null,
      2,
    ) + "\n"
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 || word === "info" ? "" : "s"}`;
}

function location(f: Finding): string {
  if (f.stream === "") return "-";
  return f.consumer === "" ? f.stream : `${f.stream} / ${f.consumer}`;
}

/** Whether to colour: a terminal, and the user did not ask for none (NO_COLOR, https://no-color.org). */
export function wantsColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== "") return false;
  const force = env["FORCE_COLOR"];
  if (force !== undefined && force !== "" && force !== "0") return true;
  return stream.isTTY === true;
}

export function renderText(report: CheckReport, colour: boolean): string {
  const paint = (code: string, text: string) => (colour ? `${code}${text}${RESET}` : text);
  const lines: string[] = [];
  const agents = report.roster.length > 0 ? `, agents ${report.roster.join(", ")}` : ", no agents found";
  lines.push(
    `orgwatch check: ${report.servers.join(",")}: ${plural(report.streams, "stream")}, ` +
      `${plural(report.consumers, "consumer")}${agents}`,
    "",
  );
  if (report.findings.length === 0) {
    lines.push("No findings: none of the known pitfalls applies.", "");
    return lines.join("\n");
  }

  const header = ["LEVEL", "CHECK", "ROLE", "STREAM / CONSUMER"];
  const rows = report.findings.map((f) => [f.level, f.check, f.role === "" ? "-" : f.role, location(f)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i]!) : c));
  lines.push(paint(BOLD, pad(header).join("  ")));
  for (const [i, row] of rows.entries()) {
    const cells = pad(row);
    cells[0] = paint(COLOUR[report.findings[i]!.level], cells[0]!);
    lines.push(cells.join("  "));
  }
  lines.push("");

  for (const f of report.findings) {
    const subject = f.stream === "" ? `agent ${f.role}` : location(f);
    lines.push(`${paint(COLOUR[f.level], f.level)} ${paint(BOLD, f.check)}  ${subject}`);
    lines.push(`  ${paint(DIM, "what:")} ${f.what}`);
    lines.push(`  ${paint(DIM, "why: ")} ${f.why}`);
    lines.push(`  ${paint(DIM, "fix: ")} ${f.fix}`);
    lines.push("");
  }

  const counts = countByLevel(report.findings);
  const summary = FINDING_LEVELS.map((level) => plural(counts[level], level)).join(", ");
  lines.push(`${summary}; exit code ${report.exitCode}`, "");
  return lines.join("\n");
}
