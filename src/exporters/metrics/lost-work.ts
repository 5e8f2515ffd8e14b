// Lost and unrouted work (DESIGN.md §7): orgwatch_consumer_lost_messages_total,
// orgwatch_unrouted_messages_total. The lost counter has a series per consumer: at 10,000 consumers
// it is rendered outside prom-client, once per change of the model, not once per scrape.
//
// Series shape: every durable consumer has a series at 0 for each reason its own stream's limits can
// cause (max_age with a max age, limits with a count or size limit), so that an alert sees the
// first loss; the other reasons (purge, delete, unknown) appear with their first loss, and the
// shipped alert also fires on a series that appears (docs/lost-work.md). Reference topology: one
// series per consumer (max_age), not five.
import { Counter } from "prom-client";
import { REMOVAL_REASONS } from "../../logic/removal.js";
import { expectedReasons } from "../../model/lost-work.js";
import type { Organization } from "../../model/organization.js";
import { escapeLabelValue } from "./jetstream.js";
import type { MetricsRegistry } from "./registry.js";

const LOST = "orgwatch_consumer_lost_messages_total";
const LOST_HELP =
  "Messages that left their stream before this consumer acknowledged them, by reason: max_age, limits (max-msgs, max-bytes, max-msgs-per-subject), purge, delete, unknown";

export function renderLost(org: Organization, openMetrics: boolean): string {
  const name = openMetrics ? LOST.replace(/_total$/, "") : LOST;
  let text = `# HELP ${name} ${LOST_HELP}\n# TYPE ${name} counter\n`;
  const streams = org.jetstream.current?.streams;
  for (const [l, totals] of org.lostWork.exported()) {
    const stream = streams?.get(l.stream);
    const shown = new Set(stream ? expectedReasons(stream) : []);
    for (const reason of REMOVAL_REASONS) if ((totals[reason] ?? 0) > 0) shown.add(reason);
    if (shown.size === 0) continue;
    const labels = `stream="${escapeLabelValue(l.stream)}",consumer="${escapeLabelValue(l.consumer)}",role="${escapeLabelValue(l.role)}",kind="${l.kind}"`;
    for (const reason of REMOVAL_REASONS) {
      if (!shown.has(reason)) continue;
      text += `${LOST}{${labels},reason="${reason}"} ${totals[reason] ?? 0}\n`;
    }
  }
  return text;
}

export function registerLostWorkMetrics(metrics: MetricsRegistry, org: Organization): void {
  let cached: { version: number; poll: unknown; text: [string, string] } | undefined;
  const text = (openMetrics: boolean) => {
    const version = org.lostWork.version;
    const poll = org.jetstream.current;
    if (!cached || cached.version !== version || cached.poll !== poll)
      cached = { version, poll, text: [renderLost(org, false), renderLost(org, true)] };
    return cached.text[openMetrics ? 1 : 0];
  };
  metrics.addSection({ render: () => text(false), chunks: (openMetrics) => [text(openMetrics)] });

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
