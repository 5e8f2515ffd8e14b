// orgwatch_deadletter_messages_total is rendered as text (not prom-client) so that 10,000 zero
// series cost nothing per scrape: both exposition formats, the zeros, and a count arriving later.
import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { registerDeadLetterMetrics } from "../../src/exporters/metrics/deadletters.js";
import { MetricsRegistry } from "../../src/exporters/metrics/registry.js";
import type { ConsumerState } from "../../src/model/jetstream.js";
import { Organization } from "../../src/model/organization.js";
import { consumerState, pollResult } from "../helpers/jetstream-fixtures.js";

const consumer = (stream: string, name: string, role: string) => consumerState(stream, name, { role });
const poll = (consumers: ConsumerState[]) => pollResult(1, [], consumers);

const lines = (text: string) => text.split("\n").filter((l) => l.includes("deadletter_messages"));

describe("dead-letter counter text", () => {
  it("starts every polled consumer at 0, counts later, and names the family per format", async () => {
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerDeadLetterMetrics(metrics, org);
    expect(lines((await metrics.render(false)).body)).toEqual([
      "# HELP orgwatch_deadletter_messages_total Messages that exhausted max-deliver (routed to the dead-letter subject), each message once whatever its delivery count",
      "# TYPE orgwatch_deadletter_messages_total counter",
    ]);
    org.jetstream.applyPoll(poll([consumer("A", "a-worker", "a"), consumer("B", 'b"w', "b")]));
    expect(lines((await metrics.render(false)).body).slice(2)).toEqual([
      'orgwatch_deadletter_messages_total{stream="A",consumer="a-worker",role="a"} 0',
      'orgwatch_deadletter_messages_total{stream="B",consumer="b\\"w",role="b"} 0',
    ]);
    // A count after the text was cached; and one for a consumer the poll does not know (yet).
    org.deadLetters.countDeadLetter({ stream: "A", consumer: "a-worker", role: "ignored" });
    org.deadLetters.countDeadLetter({ stream: "A", consumer: "a-worker", role: "ignored" });
    org.deadLetters.countDeadLetter({ stream: "C", consumer: "c-worker", role: "c" });
    expect(lines((await metrics.render(false)).body).slice(2)).toEqual([
      'orgwatch_deadletter_messages_total{stream="A",consumer="a-worker",role="a"} 2',
      'orgwatch_deadletter_messages_total{stream="B",consumer="b\\"w",role="b"} 0',
      'orgwatch_deadletter_messages_total{stream="C",consumer="c-worker",role="c"} 1',
    ]);
    const om = (await metrics.render(true)).body;
    expect(lines(om).slice(0, 2)).toEqual([
      "# HELP orgwatch_deadletter_messages Messages that exhausted max-deliver (routed to the dead-letter subject), each message once whatever its delivery count",
      "# TYPE orgwatch_deadletter_messages counter",
    ]);
    expect(lines(om)[2]).toBe(
      'orgwatch_deadletter_messages_total{stream="A",consumer="a-worker",role="a"} 2',
    );
    expect(om.endsWith("# EOF\n")).toBe(true);
  });

  it("renders thousands of consumers in slices, re-rendering on a new poll and a new count", async () => {
    const org = new Organization(configWith({}));
    const metrics = new MetricsRegistry();
    registerDeadLetterMetrics(metrics, org);
    const many = (role: string) => Array.from({ length: 2500 }, (_, i) => consumer("S", `w${i}`, role));
    org.jetstream.applyPoll(poll(many("a")));
    const samples = async () => lines((await metrics.render(false)).body).slice(2);
    const first = await samples();
    expect(first).toHaveLength(2500);
    expect(first[0]).toBe('orgwatch_deadletter_messages_total{stream="S",consumer="w0",role="a"} 0');
    expect(first[2499]).toBe('orgwatch_deadletter_messages_total{stream="S",consumer="w2499",role="a"} 0');
    // A new poll where roles changed: the series prefixes follow.
    org.jetstream.applyPoll(poll(many("b")));
    org.deadLetters.countDeadLetter({ stream: "S", consumer: "w1700", role: "ignored" });
    const second = await samples();
    expect(second).toHaveLength(2500);
    expect(second.filter((l) => l.includes('role="a"'))).toEqual([]);
    expect(second.filter((l) => !l.endsWith(" 0"))).toEqual([
      'orgwatch_deadletter_messages_total{stream="S",consumer="w1700",role="b"} 1',
    ]);
  });
});
