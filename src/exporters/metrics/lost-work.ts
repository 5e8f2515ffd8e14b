// Lost and unrouted work (DESIGN.md §7): orgwatch_consumer_lost_messages_total,
// orgwatch_unrouted_messages_total. The lost counter has a series per consumer: at 10,000 consumers
// it is rendered outside prom-client, once per change of the model, not once per scrape, into
// bytes kept with their gzip encoding.
//
// Series shape: every durable consumer has a series at 0 for each reason its own stream's limits can
// cause (max_age with a max age, limits with a count or size limit), so that an alert sees the
// first loss; the other reasons (purge, delete, unknown) appear with their first loss, and the
// shipped alert also fires on a series that appears (docs/lost-work.md). Reference topology: one
// series per consumer (max_age), not five.
import { Counter } from "prom-client";
import { REMOVAL_REASONS, type RemovalReason } from "../../logic/removal.js";
import { expectedReasons, type LostLabels } from "../../model/lost-work.js";
import type { PollResult, StreamState } from "../../model/jetstream.js";
import type { Organization } from "../../model/organization.js";
import { escapeLabelValue } from "./jetstream.js";
import { Precompressed, renderInTurns, type MetricsRegistry } from "./registry.js";

const LOST = "orgwatch_consumer_lost_messages_total";
const LOST_HELP =
  "Messages that left their stream before this consumer acknowledged them, by reason: max_age, limits (max-msgs, max-bytes, max-msgs-per-subject), purge, delete, unknown";

/** Ledgers rendered between two turns of the event loop (as the JetStream families are). */
const SLICE = 500;

type LostEntry = [LostLabels, Partial<Record<RemovalReason, number>>];

/** The series lines of some ledgers (the same in both formats: samples keep `_total`). */
function seriesText(
  entries: readonly LostEntry[],
  streams: ReadonlyMap<string, StreamState> | undefined,
): string {
  const expected = new Map<string, readonly RemovalReason[]>();
  let text = "";
  for (const [l, totals] of entries) {
    let reasons = expected.get(l.stream);
    if (!reasons) {
      const stream = streams?.get(l.stream);
      reasons = stream ? expectedReasons(stream) : [];
      expected.set(l.stream, reasons);
    }
    let labels: string | undefined;
    for (const reason of REMOVAL_REASONS) {
      const n = totals[reason] ?? 0;
      if (n === 0 && !reasons.includes(reason)) continue;
      labels ??= `stream="${escapeLabelValue(l.stream)}",consumer="${escapeLabelValue(l.consumer)}",role="${escapeLabelValue(l.role)}",kind="${l.kind}"`;
      text += `${LOST}{${labels},reason="${reason}"} ${n}\n`;
    }
  }
  return text;
}

function headerText(openMetrics: boolean): string {
  const name = openMetrics ? LOST.replace(/_total$/, "") : LOST;
  return `# HELP ${name} ${LOST_HELP}\n# TYPE ${name} counter\n`;
}

/** The counter's text for one state of the model: encoded once, gzip-encoded at most once per format. */
interface LostText {
  readonly version: number;
  readonly poll: PollResult | undefined;
  readonly prometheus: Precompressed;
  readonly openMetrics: Precompressed;
  /** Rendered in more than one slice: its successor too, so a scrape is served this one meanwhile. */
  readonly sliced: boolean;
}

/** Renders the counter step by step: each `yield` is a point where the event loop may run. */
function* lostSteps(org: Organization): Generator<void, LostText, void> {
  const version = org.lostWork.version;
  const poll = org.jetstream.current;
  const series: Buffer[] = [];
  // Read from the model a slice at a time: even listing 10,000 ledgers at once took 40 ms on a
  // loaded core.
  let batch: LostEntry[] = [];
  for (const entry of org.lostWork.exported()) {
    batch.push(entry);
    if (batch.length < SLICE) continue;
    series.push(Buffer.from(seriesText(batch, poll?.streams), "utf8"));
    batch = [];
    yield;
  }
  if (batch.length > 0 || series.length === 0)
    series.push(Buffer.from(seriesText(batch, poll?.streams), "utf8"));
  return {
    version,
    poll,
    prometheus: Precompressed.ofText([Buffer.from(headerText(false), "utf8"), ...series]),
    openMetrics: Precompressed.ofText([Buffer.from(headerText(true), "utf8"), ...series]),
    sliced: series.length > 1,
  };
}

/** The counter's whole text at once (tests, small organizations). */
export function renderLost(org: Organization, openMetrics: boolean): string {
  const steps = lostSteps(org);
  let step = steps.next();
  while (!step.done) step = steps.next();
  const text = openMetrics ? step.value.openMetrics : step.value.prometheus;
  return Buffer.concat(text.raw ?? []).toString("utf8");
}

export function registerLostWorkMetrics(metrics: MetricsRegistry, org: Organization): void {
  // Rendered when the model changed (a poll, a loss counted, a save), not per scrape: at 10,000
  // consumers the text is ~1 MB, and building it on each scrape was most of a scrape's CPU and
  // garbage (stalls of 60–130 ms measured).
  let current: LostText | undefined;
  let rendering: { version: number; poll: PollResult | undefined; done: Promise<LostText> } | undefined;
  const fresh = (t: { version: number; poll: PollResult | undefined } | undefined) =>
    t !== undefined && t.version === org.lostWork.version && t.poll === org.jetstream.current;
  const latest = (): Promise<LostText> => {
    if (current && fresh(current)) return Promise.resolve(current);
    if (rendering && fresh(rendering))
      return current?.version === rendering.version && current.sliced
        ? Promise.resolve(current)
        : rendering.done;
    const steps = lostSteps(org);
    const done = renderInTurns(steps).then((text) => {
      // A render of an older state finishing late does not replace a newer one.
      if (!current || text.version >= current.version) current = text;
      return text;
    });
    rendering = { version: org.lostWork.version, poll: org.jetstream.current, done };
    // Only the poll changed (stream limits, consumers' labels), no total: the previous text is
    // served while the new one is built (a small organization's is built at once); a changed
    // total is waited for.
    if (current && current.version === org.lostWork.version && current.sliced)
      return Promise.resolve(current);
    return done;
  };
  // Ready before the next scrape asks.
  org.jetstream.on("applied", () => void latest());
  metrics.addSection({
    render: () => renderLost(org, false),
    chunks: async (openMetrics) => {
      const text = await latest();
      return [openMetrics ? text.openMetrics : text.prometheus];
    },
  });

  new Counter({
    name: "orgwatch_unrouted_messages_total",
    help: "Messages published on an agent's tasks or inbox subject that no stream stores (NATS dropped them)",
    labelNames: ["role", "kind"],
    registers: metrics.registers,
    collect() {
      this.reset();
      for (const u of org.unrouted.all()) this.inc({ role: u.role, kind: u.kind }, u.count);
    },
  });
}
