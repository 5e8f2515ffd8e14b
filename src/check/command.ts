// `orgwatch check`: connects, discovers the organization with the daemon's own poller (one poll;
// two, `check.rate-interval` apart, to observe ack rates), evaluates logic/checks.ts and prints the
// findings. Exit 0 clean, 1 warnings with --strict, 2 errors (or when the check could not run).
import { Command } from "commander";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { addSettingOptions, configFromCommand } from "../cli-settings.js";
import type { Config } from "../config/schema.js";
import {
  ackRate,
  ackSampleOf,
  evaluateChecks,
  exitCodeFor,
  type Finding,
  type OnCompleteTarget,
} from "../logic/checks.js";
import { classifySubject } from "../logic/classify.js";
import { parseTaskMessage } from "../logic/task-message.js";
import { silentLogger } from "../log.js";
import { connectionOptions, redactUrl } from "../nats/connect.js";
import { consumerKey, type PollResult } from "../model/jetstream.js";
import { Organization } from "../model/organization.js";
import { startJetStreamPoller, type RunningPoller } from "../sources/jetstream-poller.js";
import { renderJson, renderText, wantsColour } from "./report.js";

/** The check could not run (NATS unreachable, JetStream unavailable): CI must not pass. */
export const EXIT_CHECK_FAILED = 2;
const CONNECT_TIMEOUT_MS = 5000;

export interface CheckResult {
  readonly poll: PollResult;
  readonly roster: readonly string[];
  readonly findings: Finding[];
}

/** The next poll's result, or the error that failed it. */
function nextPoll(org: Organization): Promise<PollResult> {
  const errorsBefore = org.health.pollErrors;
  return new Promise((resolve, reject) => {
    const onPoll = (result: PollResult) => {
      clearInterval(watch);
      resolve(result);
    };
    // The poller keeps a failed poll to itself (the daemon keeps running); it counts it in health.
    const watch = setInterval(() => {
      if (org.health.pollErrors === errorsBefore) return;
      org.jetstream.off("polled", onPoll);
      clearInterval(watch);
      reject(new Error(org.health.lastPollError ?? "JetStream poll failed"));
    }, 20);
    org.jetstream.once("polled", onPoll);
  });
}

/** Whether an orgwatch daemon captures advisories here: it routes dead letters (on by default). */
async function orgwatchRoutesDeadLetters(jsm: JetStreamManager, config: Config): Promise<boolean> {
  try {
    await jsm.streams.info(config["advisories.stream"]);
    return true;
  } catch {
    return false;
  }
}

/** Runs the checks over a connection; the caller owns `nc`. */
/** Tasks read back from the end of each task stream for their on_complete targets. */
const LATEST_TASKS = 20;

/** The on_complete targets of the latest tasks of each task stream (read by sequence, nothing acked). */
async function latestOnCompleteTargets(
  jsm: JetStreamManager,
  poll: PollResult,
  prefix: string,
): Promise<OnCompleteTarget[]> {
  const out: OnCompleteTarget[] = [];
  for (const s of poll.streams.values()) {
    if (s.kind !== "tasks" || s.messages === 0) continue;
    for (
      let seq = s.lastSequence;
      seq >= Math.max(s.firstSequence, s.lastSequence - LATEST_TASKS + 1);
      seq--
    ) {
      const m = await jsm.streams.getMessage(s.name, { seq }).catch(() => null);
      if (!m) continue;
      const parsed = parseTaskMessage(m.data);
      if (!parsed.ok || parsed.value.onCompletePublishTo === undefined) continue;
      const { role } = classifySubject(prefix, m.subject);
      out.push({
        stream: s.name,
        role,
        taskId: parsed.value.taskId,
        target: parsed.value.onCompletePublishTo,
      });
    }
  }
  return out;
}

export async function runChecks(nc: NatsConnection, config: Config): Promise<CheckResult> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  // The daemon's poller, driven by hand: its timer must not fire during the check.
  const pollerConfig: Config = { ...config, "poll-interval": 24 * 3600_000 };
  const org = new Organization(pollerConfig);
  // The poller refuses to poll while the daemon's link says disconnected; here the caller owns `nc`.
  org.health.natsConnected = !nc.isClosed();
  const first = nextPoll(org);
  const poller: RunningPoller = startJetStreamPoller({
    nc,
    jsm,
    js: jetstream(nc),
    config: pollerConfig,
    org,
    log: silentLogger(),
  });
  try {
    let poll = await first;
    const ackRates = new Map<string, number>();
    const interval = config["check.rate-interval"];
    if (interval > 0) {
      await new Promise((r) => setTimeout(r, interval));
      const second = nextPoll(org);
      void poller.pollNow();
      const later = await second;
      for (const [key, c] of later.consumers) {
        const before = poll.consumers.get(key);
        if (!before) continue;
        const rate = ackRate(ackSampleOf(before, poll.at), ackSampleOf(c, later.at));
        if (rate !== undefined) ackRates.set(consumerKey(c.stream, c.name), rate);
      }
      poll = later;
    }
    const prefix = config["subject-prefix"];
    const roster = org.agents.roster();
    const findings = evaluateChecks({
      prefix,
      streams: poll.streams.values(),
      consumers: poll.consumers.values(),
      roster,
      expectedWorkMs: config["expected-work"],
      maxDrainMs: config["check.drain-time"],
      deadLetterSubject: config["deadletter.subject"] ?? `${prefix}.org.deadletter`,
      deadLetterRouted: await orgwatchRoutesDeadLetters(jsm, config),
      ackRates,
      onCompleteTargets: await latestOnCompleteTargets(jsm, poll, prefix),
      nowMs: poll.at,
    });
    return { poll, roster, findings };
  } finally {
    await poller.stop();
  }
}

export function checkCommand(): Command {
  const cmd = new Command("check").description(
    "check an organization's JetStream setup against the known pitfalls (exit 0 clean, 1 warnings with --strict, 2 errors)",
  );
  addSettingOptions(cmd, "check");
  cmd.action(async () => {
    const config = configFromCommand(cmd);
    const servers = config["nats-url"].map(redactUrl);
    let nc: NatsConnection;
    try {
      nc = await connect({
        ...connectionOptions(config),
        name: "orgwatch-check",
        reconnect: false,
        timeout: CONNECT_TIMEOUT_MS,
      });
    } catch (err) {
      process.stderr.write(
        `orgwatch check: cannot connect to NATS at ${servers.join(",")}: ${(err as Error).message}\n`,
      );
      process.exit(EXIT_CHECK_FAILED);
    }
    let result: CheckResult;
    try {
      result = await runChecks(nc, config);
    } catch (err) {
      process.stderr.write(`orgwatch check: cannot read the JetStream setup: ${(err as Error).message}\n`);
      await nc.close().catch(() => undefined);
      process.exit(EXIT_CHECK_FAILED);
    }
    await nc.close().catch(() => undefined);
    const exitCode = exitCodeFor(result.findings, config.strict);
    const report = {
      servers,
      streams: result.poll.streams.size,
      consumers: result.poll.consumers.size,
      roster: result.roster,
      findings: result.findings,
      exitCode,
    };
    const out =
      config.format === "json"
        ? renderJson(report)
        : renderText(report, wantsColour(process.stdout, process.env));
    process.stdout.write(out, () => process.exit(exitCode));
  });
  return cmd;
}
