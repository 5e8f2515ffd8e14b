// A healthy day raises nothing: the simulated organization with nothing going wrong (every agent
// picks up and completes its work within its SLA, reads the broadcasts, heartbeats; chains
// complete) runs through 24 simulated hours against real Prometheus with the shipped rules and real
// Alertmanager with the shipped routes. The rules are put on the organization's clock as the demo's
// stack puts them (logic/rule-scaling.ts: every for:, keep_firing_for:, range, offset, duration
// threshold and per-hour factor divided by the pace); the verdict is Prometheus's own ALERTS series
// over the whole day: not one alert, not even pending.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoRuleFiles } from "../../src/demo/stack.js";
import { REFERENCE_TURN_MINUTES } from "../../src/demo/plan.js";
import { realMs } from "../../src/demo/topology.js";
import { startSimulatedOrganization, type SimulatedOrganization } from "../../src/demo/simulator.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { startTestDaemon } from "../helpers/daemon.js";
import {
  promApi,
  startShippedAlertmanager,
  startWebhook,
  startRulesPrometheus,
  type ManagedProcess,
  type PromSeries,
} from "../helpers/prometheus-stack.js";
import { waitFor } from "../helpers/wait.js";

/** 24 simulated hours in 5 real minutes. */
const PACE = 288;
const SIMULATED_HOURS = 24;
const DAY_MS = (SIMULATED_HOURS * 3_600_000) / PACE;

describe("a healthy day", () => {
  let nats: NatsServerProcess;
  let daemon: Daemon;
  let org: SimulatedOrganization;
  let prometheus: ManagedProcess;
  let alertmanager: ManagedProcess;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  const notifications: unknown[] = [];
  let startedAt = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    webhook = await startWebhook((_receiver, doc) => notifications.push(doc));
    // orgwatch judges the organization on its clock, as the demo's does.
    daemon = await startTestDaemon(nats.url, {
      "poll-interval": 500,
      "expected-work": realMs(REFERENCE_TURN_MINUTES, PACE),
    });
    await daemon.started;
    alertmanager = await startShippedAlertmanager(webhook.url);
    const { files } = demoRuleFiles(PACE);
    prometheus = await startRulesPrometheus(files, new URL(daemon.url).host, alertmanager.url);
    // The day starts once Prometheus watches orgwatch: before its first scrape, `absent(up)` is
    // pending, which is Prometheus starting, not the organization's day.
    await waitFor(
      async () => {
        const up = await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
          query: 'up{job="orgwatch"} == 1 and on() absent(ALERTS)',
        });
        return up.data.result.length === 1;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "Prometheus watching orgwatch, nothing pending" },
    );
    startedAt = Date.now();
    org = await startSimulatedOrganization({ servers: nats.url, pace: PACE, healthy: true });
  });

  afterAll(async () => {
    await org?.stop();
    await prometheus?.stop();
    await alertmanager?.stop();
    await webhook?.close();
    await daemon?.stop();
    await nats?.stop();
  });

  it(
    `runs ${SIMULATED_HOURS} simulated hours with no alert firing or pending, and no notification`,
    async () => {
      const query = async (expr: string) => {
        const body = await promApi<{ result: PromSeries[] }>(prometheus.url, "/api/v1/query", {
          query: expr,
        });
        if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
        return body.data.result;
      };
      // The day, watched: it ends when its simulated hours have passed (checked once a second, and
      // failing at once on the first alert, pending or firing, with its labels).
      await waitFor(
        async () => {
          const alerts = await query("ALERTS");
          if (alerts.length > 0)
            throw new Error(`alert on a healthy day: ${JSON.stringify(alerts.map((a) => a.metric))}`);
          return Date.now() - startedAt >= DAY_MS;
        },
        { timeoutMs: DAY_MS + 60_000, intervalMs: 1000, what: "the end of the simulated day" },
      ).catch((err: Error) => {
        throw new Error(err.message.replace(/^timed out.*?: /, ""));
      });
      // And over the whole day as Prometheus recorded it (between two checks too).
      const seconds = Math.floor((Date.now() - startedAt) / 1000);
      const overTheDay = await query(`count_over_time(ALERTS[${seconds}s])`);
      expect(overTheDay.map((a) => ({ ...a.metric, samples: a.value?.[1] }))).toEqual([]);
      expect(notifications).toEqual([]);

      // The rules were loaded, and the day was a working day.
      const rules = await promApi<{ groups: { rules: unknown[] }[] }>(prometheus.url, "/api/v1/rules");
      const ruleCount = rules.data.groups.reduce((n, g) => n + g.rules.length, 0);
      expect(ruleCount).toBeGreaterThan(20);
      const scrapes = Number((await query(`count_over_time(up{job="orgwatch"}[${seconds}s])`))[0]!.value![1]);
      const completed = Number(
        (await query('sum(orgwatch_tasks_completed_total{outcome="completed"})'))[0]!.value![1],
      );
      const chains = Number((await query("sum(orgwatch_chain_duration_seconds_count)"))[0]!.value![1]);
      const broadcasts = Number(
        (await query('max(orgwatch_stream_messages{stream="ORG_BROADCASTS"})'))[0]!.value![1],
      );
      expect(completed).toBeGreaterThan(100);
      expect(chains).toBeGreaterThan(10);
      expect(broadcasts).toBeGreaterThan(5);
      console.log(
        `healthy day: ${SIMULATED_HOURS} simulated hours in ${((Date.now() - startedAt) / 1000).toFixed(0)} s ` +
          `at pace ${PACE}; ${daemon.org.health.pollsCompleted} polls, ${scrapes} scrapes, ${ruleCount} rules, ` +
          `${completed} tasks completed, ${chains} chains, ${broadcasts} broadcasts; alerts: 0`,
      );
    },
    DAY_MS + 120_000,
  );
});
