// Queries that read a replica pair as one orgwatch (DESIGN.md §10): both replicas export the same
// truth, each with its own `instance`, so every series of the organization is taken once, as the
// highest of the replicas' values, before anything sums, counts or compares it. The wrap is at the
// leaves (each selector, each range function), so that every aggregation, comparison and vector
// match above sees one series per truth, as with one orgwatch.
// orgwatch's own health (connected, polling, its lease) is each process's: left per instance.
import { readFileSync, writeFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";
import type { SyntaxNode } from "@lezer/common";

/** Metrics about one orgwatch process, not about the organization: per instance. */
const PER_PROCESS = new Set([
  "orgwatch_nats_connected",
  "orgwatch_nats_reconnects_total",
  "orgwatch_last_poll_success_timestamp_seconds",
  "orgwatch_poll_errors_total",
  "orgwatch_poll_duration_seconds",
  "orgwatch_build_info",
  "orgwatch_lease_held",
  "orgwatch_lease_acquisitions_total",
]);

const WRAP_OPEN = "max without (instance) (";

/** Grafana's variables are not PromQL: replaced (same length) by a duration so that it parses. */
function parseable(expr: string): string {
  return expr.replace(/\$\{?__\w+\}?/g, (v) => `${"9".repeat(v.length - 1)}s`);
}

function metricOf(selector: SyntaxNode, text: string): string | undefined {
  const id = selector.getChild("Identifier");
  return id ? text.slice(id.from, id.to) : undefined;
}

function isOrganizationMetric(name: string | undefined): boolean {
  return name !== undefined && name.startsWith("orgwatch_") && !PER_PROCESS.has(name);
}

/** The leaves of `expr` that read the organization's series: [from, to) and whether taken once already. */
function leaves(expr: string): { from: number; to: number; wrapped: boolean }[] {
  const text = parseable(expr);
  const tree = parser.parse(text);
  const found: { from: number; to: number; wrapped: boolean }[] = [];
  const wrapped = (node: SyntaxNode) =>
    text.slice(Math.max(0, node.from - WRAP_OPEN.length), node.from) === WRAP_OPEN;
  const errors: string[] = [];
  const offsetEnd = new Map<number, number>();
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) errors.push(`${ref.from}`);
      const node = ref.node;
      // A range function (rate, increase, *_over_time) over a selector: one leaf.
      if (node.name === "FunctionCall") {
        const body = node.getChild("FunctionCallBody");
        const matrix = body?.getChild("MatrixSelector") ?? body?.getChild("SubqueryExpr");
        if (matrix) {
          const selector = matrix.getChild("VectorSelector");
          if (selector && isOrganizationMetric(metricOf(selector, text)))
            found.push({ from: node.from, to: node.to, wrapped: wrapped(node) });
          return false;
        }
      }
      if (node.name === "OffsetExpr" && node.firstChild?.name !== "VectorSelector") {
        // The grammar binds `a unless b offset 10m` as (a unless b) offset 10m; PromQL binds the
        // offset to b: b's leaf runs to the offset's end.
        let last = node.firstChild;
        while (last && last.name !== "VectorSelector") last = last.lastChild;
        if (last && last.to === node.firstChild!.to) offsetEnd.set(last.from, node.to);
        return undefined;
      }
      if (node.name === "OffsetExpr" || node.name === "VectorSelector") {
        const selector = node.name === "VectorSelector" ? node : node.getChild("VectorSelector");
        if (selector && isOrganizationMetric(metricOf(selector, text)))
          found.push({ from: node.from, to: offsetEnd.get(node.from) ?? node.to, wrapped: wrapped(node) });
        return false;
      }
      return undefined;
    },
  });
  if (errors.length > 0) throw new Error(`not PromQL (at ${errors.join(", ")}): ${expr}`);
  return found;
}

/** `expr` with every series of the organization taken once across replicas. */
export function pairSafe(expr: string): string {
  let out = expr;
  for (const leaf of leaves(expr).reverse()) {
    if (leaf.wrapped) continue;
    out = `${out.slice(0, leaf.from)}${WRAP_OPEN}${out.slice(leaf.from, leaf.to)})${out.slice(leaf.to)}`;
  }
  return out;
}

/** The parts of `expr` that would count a pair's two replicas twice (none: it reads them as one). */
export function countedTwice(expr: string): string[] {
  return leaves(expr)
    .filter((l) => !l.wrapped)
    .map((l) => expr.slice(l.from, l.to));
}

/** Where `pairSafe` inserts: [position, text, opening], in descending position order. */
function insertions(expr: string): [number, string, boolean][] {
  const out: [number, string, boolean][] = [];
  for (const leaf of leaves(expr)) {
    if (leaf.wrapped) continue;
    out.push([leaf.to, ")", false], [leaf.from, WRAP_OPEN, true]);
  }
  return out.sort((a, b) => b[0] - a[0] || Number(a[2]) - Number(b[2]));
}

/**
 * A rule file with each expr made pair-safe in place: only the exprs change, the file's layout
 * (comments, folded descriptions) stays. A folded `>-` expr maps each line break to one space.
 */
export function pairSafeRuleFile(text: string): { text: string; changed: number } {
  let changed = 0;
  const out = text.replace(
    /^( *)expr: (?:>-\n((?:\1 {2}.*\n)+)|(.*)\n)/gm,
    (whole: string, indent: string, block: string | undefined, line: string | undefined) => {
      if (line !== undefined) {
        const safe = pairSafe(line);
        if (safe === line) return whole;
        changed++;
        return `${indent}expr: ${safe}\n`;
      }
      // Folded: the expr is the lines joined by spaces; positions map back into the raw lines.
      const raw = block!;
      const lines = raw.split("\n").slice(0, -1);
      /** Raw position of each character of the joined expr (a joining space: its line's end). */
      const map: number[] = [];
      let joined = "";
      let offset = 0;
      lines.forEach((l, i) => {
        const content = l.trimStart();
        const start = offset + (l.length - content.length);
        if (i > 0) {
          map.push(offset - 1);
          joined += " ";
        }
        for (let c = 0; c < content.length; c++) map.push(start + c);
        joined += content;
        offset += l.length + 1;
      });
      const edits = insertions(joined);
      if (edits.length === 0) return whole;
      changed++;
      let result = raw;
      for (const [pos, insert, opening] of edits) {
        // An opening goes before its first character; a closing after its last (on the same line).
        const at = opening ? map[pos]! : map[pos - 1]! + 1;
        result = result.slice(0, at) + insert + result.slice(at);
      }
      return `${indent}expr: >-\n${result}`;
    },
  );
  return { text: out, changed };
}

// `tsx scripts/pair-safe.ts alerts/*.yml`: rewrites the rule files' exprs in place.
if (process.argv[1]?.endsWith("pair-safe.ts")) {
  for (const file of process.argv.slice(2)) {
    const { text, changed } = pairSafeRuleFile(readFileSync(file, "utf8"));
    writeFileSync(file, text);
    console.log(`${file}: ${changed} rules taken once across replicas`);
  }
}
