// `orgwatch demo` (a nats-server child, the simulated organization and the daemon, in one command)
// and `orgwatch simulate` (the simulated organization alone, against a NATS of the user's: the
// compose stack's simulator).
import { Command } from "commander";
import { addSettingOptions, configFromCommand, EXIT_CONFIG } from "../cli-settings.js";
import type { FlagValues } from "../config/load.js";
import { formatDuration } from "../config/duration.js";
import type { Config } from "../config/schema.js";
import { startDaemon, type Daemon } from "../daemon.js";
import { createLogger, type Logger } from "../log.js";
import { connectionOptions } from "../nats/connect.js";
import {
  findNatsServerBinary,
  startNatsServer,
  NATS_INSTALL_HINT,
  type NatsServerProcess,
} from "../nats/server-process.js";
import { onShutdownSignal } from "../shutdown.js";
import { REFERENCE_TURN_MINUTES } from "./plan.js";
import { STACK_INSTALL_HINT } from "./processes.js";
import { realMs } from "./topology.js";
import { startSimulatedOrganization, type SimulatedOrganization } from "./simulator.js";
import { missingStackTools, startDemoStack, type DemoStack } from "./stack.js";

/** The demo polls often (the story unfolds in seconds) and keeps the terminal for its banner. */
export const DEMO_DEFAULTS: FlagValues = { "poll-interval": "2s", "log.level": "warn" };

/** nats-server stops within 5 s of SIGTERM (then SIGKILL); the rest stops in well under that. */
const DEMO_FORCE_EXIT_MS = 12_000;

export function demoCommand(): Command {
  const cmd = new Command("demo").description(
    "run a local nats-server, a simulated organization and the daemon; Ctrl-C stops everything",
  );
  addSettingOptions(cmd, "demo", DEMO_DEFAULTS);
  cmd.action(async () => {
    const config = configFromCommand(cmd, process.env, DEMO_DEFAULTS);
    if (!findNatsServerBinary()) {
      process.stderr.write(
        "orgwatch demo: nats-server was not found on PATH (nor NATS_SERVER_BIN).\n" +
          `  ${NATS_INSTALL_HINT}\n` +
          "  or run `npm run demo`, which installs it first.\n",
      );
      // A missing prerequisite exits like a bad setting.
      process.exit(EXIT_CONFIG);
    }
    const log = createLogger(config["log.level"], config["log.format"]);
    const demo = await startDemo(config, log);
    process.stdout.write(demoBanner(config, demo));
    if (config.stack) {
      const missing = missingStackTools();
      if (missing.length > 0)
        process.stdout.write(
          `--stack: ${missing.join(" and ")} not found on PATH, so no alerts here; ${STACK_INSTALL_HINT}\n\n`,
        );
      else {
        try {
          demo.stack = await startDemoStack({
            orgwatchUrl: demo.daemon.url,
            pace: config.pace,
            print: (line) => process.stdout.write(line + "\n"),
          });
          process.stdout.write(stackBanner(config, demo.stack, demo.org.story));
        } catch (err) {
          process.stdout.write(`--stack: could not start: ${(err as Error).message}\n\n`);
        }
      }
    }
    onShutdownSignal(async () => {
      process.stdout.write("\norgwatch demo: stopping the simulator, orgwatch and nats-server...\n");
      await demo.stop();
      process.stdout.write("orgwatch demo: stopped; temporary state removed.\n");
    }, DEMO_FORCE_EXIT_MS);
  });
  return cmd;
}

export function simulateCommand(): Command {
  const cmd = new Command("simulate").description(
    "run only the simulated organization, against --nats-url (for a NATS of your own, e.g. docker compose)",
  );
  addSettingOptions(cmd, "simulate");
  cmd.action(async () => {
    const config = configFromCommand(cmd);
    const log = createLogger(config["log.level"], config["log.format"]);
    const { servers, ...connection } = connectionOptions(config);
    const org = await startSimulatedOrganization({
      servers: servers ?? config["nats-url"],
      connection,
      prefix: config["subject-prefix"],
      pace: config.pace,
      agents: config.agents,
      seed: config.seed,
      log,
    });
    log.info(
      { agents: org.agents.map((a) => a.role), pace: config.pace, seed: config.seed },
      "simulated organization running",
    );
    onShutdownSignal(() => org.stop());
  });
  return cmd;
}

interface RunningDemo {
  readonly nats: NatsServerProcess;
  readonly daemon: Daemon;
  readonly org: SimulatedOrganization;
  /** With --stack, once started: stopped first, by stop(). */
  stack?: DemoStack;
  stop(): Promise<void>;
}

/**
 * The daemon watching the demo judges the organization on the demo's clock: the simulator scales the
 * reference's 20-minute turns and 30-minute ack waits by the pace, so the expected work and the
 * backlog drain time scale with it (else every agent would be reported with an ack wait too short).
 */
export function demoDaemonConfig(config: Config, natsUrl: string): Config {
  return {
    ...config,
    "nats-url": [natsUrl],
    "expected-work": realMs(REFERENCE_TURN_MINUTES, config.pace),
    "check.drain-time": config["check.drain-time"] / config.pace,
  };
}

async function startDemo(config: Config, log: Logger): Promise<RunningDemo> {
  const nats = await startNatsServer({ ownProcessGroup: true });
  // Whatever happens to this process, its nats-server and temporary store do not outlive it.
  let natsStopped = false;
  const killNats = () => {
    if (natsStopped || nats.pid === undefined) return;
    try {
      process.kill(nats.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  process.once("exit", killNats);
  const stopNats = async () => {
    natsStopped = true;
    process.off("exit", killNats);
    await nats.stop();
  };

  let daemon: Daemon;
  try {
    // The daemon first, so that it hears the organization's first status messages and events.
    daemon = await startDaemon(demoDaemonConfig(config, nats.url), { log });
    await daemon.started;
  } catch (err) {
    await stopNats();
    throw new Error(`demo: orgwatch could not start: ${(err as Error).message}`);
  }
  let org: SimulatedOrganization;
  try {
    org = await startSimulatedOrganization({
      servers: nats.url,
      prefix: config["subject-prefix"],
      pace: config.pace,
      agents: config.agents,
      seed: config.seed,
      log,
    });
  } catch (err) {
    await daemon.stop();
    await stopNats();
    throw new Error(`demo: the simulated organization could not start: ${(err as Error).message}`);
  }
  const running: RunningDemo = {
    nats,
    daemon,
    org,
    async stop() {
      await running.stack?.stop();
      await Promise.all([org.stop(), daemon.stop()]);
      await stopNats();
    },
  };
  return running;
}

/** `orgwatch check` with the flags that judge the demo's organization at the demo's pace. */
export function checkCommand(config: Config, natsUrl: string): string {
  const scaled = demoDaemonConfig(config, natsUrl);
  return (
    `orgwatch check --nats-url ${natsUrl} --expected-work ${formatDuration(scaled["expected-work"])} ` +
    `--check.drain-time ${formatDuration(Math.round(scaled["check.drain-time"]))}`
  );
}

function demoBanner(config: Config, { nats, daemon, org }: RunningDemo): string {
  const metrics = `${daemon.url}${config["web.telemetry-path"]}`;
  const turnSeconds = Math.round(((REFERENCE_TURN_MINUTES * 60) / config.pace) * 10) / 10;
  const roles = org.agents.map((a) => a.role).join(", ");
  const { overloaded, flaky, ignoresBroadcasts } = org.story;
  const story = [
    overloaded &&
      `  - ${overloaded} is overloaded: its lag climbs past 5 (the reference's alert)\n` +
        `      orgwatch_consumer_lag_messages{role="${overloaded}"}`,
    flaky &&
      `  - ${flaky} crashes on poison tasks: after 3 deliveries orgwatch routes them to the dead letters\n` +
        `      orgwatch_deadletter_messages_total{role="${flaky}"}`,
    ignoresBroadcasts &&
      `  - ${ignoresBroadcasts} ignores the CEO's broadcasts\n` +
        `      orgwatch_broadcast_unacked_messages{role="${ignoresBroadcasts}"}`,
    `  - chains: the CEO assigns, the CTO implements, Security reviews, the CEO approves the release\n` +
      `      orgwatch_chain_duration_seconds_count, orgwatch_tasks_completed_total`,
    `  - every agent's heartbeats and events\n` + `      orgwatch_agent_state, orgwatch_events_total`,
  ].filter(Boolean);
  return [
    "",
    `orgwatch demo: a simulated organization of ${org.agents.length} agents (${roles})`,
    `on a local nats-server, watched by orgwatch.`,
    "",
    `  metrics   ${metrics}`,
    `  console   ${daemon.url}/`,
    `  NATS      ${nats.url}  (JetStream store in ${nats.storeDir})`,
    "",
    `Pace ${config.pace}: a 20-minute reasoning turn takes ${turnSeconds} s; seed ${config.seed}.`,
    "Within a minute the metrics show:",
    ...story,
    "",
    `Try:  curl -s ${metrics} | grep -E 'lag_messages|deadletter_messages_total|broadcast_unacked|chain_steps'`,
    // The demo scales ack waits and backlogs by its pace: check must judge them at the same scale.
    `      ${checkCommand(config, nats.url)}`,
    `      curl -s '${daemon.url}/api/v1/admission?role=${overloaded ?? "cto"}&tasks=1'   (or: nats req ${config["subject-prefix"]}.orgwatch.admission '{"role":"${overloaded ?? "cto"}","tasks":1}')`,
    "Stop: Ctrl-C (stops the simulator, orgwatch and nats-server, and removes the temporary store).",
    "",
  ].join("\n");
}

function stackBanner(config: Config, stack: DemoStack, story: SimulatedOrganization["story"]): string {
  const expected = [
    story.overloaded && `OrgwatchConsumerLag for ${story.overloaded}`,
    story.flaky && `OrgwatchDeadLetter for ${story.flaky} (a page)`,
    story.ignoresBroadcasts && `OrgwatchBroadcastUnacked for ${story.ignoresBroadcasts}`,
  ].filter(Boolean);
  return [
    `  Prometheus    ${stack.prometheusUrl}/alerts`,
    `                the shipped rules; ${stack.scaled.length} shortened ${config.pace}× to the demo's pace (every for:,`,
    `                range and duration threshold), orgwatch's own rules on real time`,
    `  Alertmanager  ${stack.alertmanagerUrl}`,
    `                the shipped routes and inhibitions; every notification is printed here`,
    `Within a few minutes: ${expected.join(", ")}.`,
    "",
  ].join("\n");
}
