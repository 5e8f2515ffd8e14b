// `orgwatch deadletters list|show|replay`: the console's dead letters from a terminal, over NATS
// (services/deadletters.ts does the work, the same as the console's API). Replay asks first, unless
// --yes; without a terminal to ask, it needs --yes. A replay from here is recorded in the same KV
// bucket as the console's, so each dead letter is replayed once, whoever asks.
import { createInterface } from "node:readline/promises";
import { userInfo } from "node:os";
import { Command } from "commander";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { addSettingOptions, configFromCommand, EXIT_CONFIG } from "../cli-settings.js";
import type { Config } from "../config/schema.js";
import { parseDuration } from "../config/duration.js";
import { connectionOptions, redactUrl } from "../nats/connect.js";
import { createLogger } from "../log.js";
import { DeadLetterDesk, DeadLetterError, type DeadLetterDetail } from "../services/deadletters.js";
import type { DeadLetterSummary } from "../logic/deadletter-view.js";

/** NATS unreachable, or the dead letter could not be read or replayed. */
const EXIT_FAILED = 1;

function fail(message: string, code = EXIT_FAILED): never {
  process.stderr.write(`orgwatch deadletters: ${message}\n`);
  process.exit(code);
}

async function withDesk<T>(config: Config, work: (desk: DeadLetterDesk) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...connectionOptions(config),
      name: "orgwatch-deadletters",
      reconnect: false,
      timeout: 5000,
    });
  } catch (err) {
    fail(
      `cannot connect to NATS at ${config["nats-url"].map(redactUrl).join(",")}: ${(err as Error).message}`,
    );
  }
  try {
    return await work(await DeadLetterDesk.open(nc, config));
  } catch (err) {
    if (err instanceof DeadLetterError) fail(err.message, err.code === 400 ? EXIT_CONFIG : EXIT_FAILED);
    throw err;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

function idArg(raw: string): number {
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < 1)
    fail(`"${raw}" is not a dead letter id (its sequence on the dead-letter stream)`, EXIT_CONFIG);
  return Number(raw);
}

function row(d: DeadLetterSummary): string {
  return [
    String(d.id).padStart(6),
    d.at,
    (d.role || "-").padEnd(12),
    (d.taskId ?? "-").padEnd(20),
    `${d.sourceStream ?? "?"} #${d.sourceSequence ?? "?"}`.padEnd(28),
    `${d.deliveries ?? "?"}x ${d.reason ?? ""}`,
  ].join("  ");
}

function describe(d: DeadLetterDetail): string {
  const s = d.summary;
  const lines = [
    `dead letter ${s.id}  ${s.at}`,
    `  role        ${s.role || "-"}`,
    `  task        ${s.taskId ?? "-"}`,
    `  from        ${s.sourceStream ?? "?"} #${s.sourceSequence ?? "?"} (consumer ${s.consumer ?? "?"}), ${s.deliveries ?? "?"} deliveries, ${s.reason ?? "?"}`,
    `  subject     ${s.subject ?? "-"}`,
    `  trace       ${s.traceId ?? "-"}`,
    "headers:",
    ...d.headers.map(([k, v]) => `  ${k}: ${v}`),
    `payload (${s.bytes} bytes, ${d.payload.kind}):`,
    d.payload.kind === "binary" ? d.payload.hex : d.payload.text,
    d.replayed
      ? `replayed ${d.replayed.at} by ${d.replayed.by} to ${d.replayed.subject}${d.replayed.stream ? ` (${d.replayed.stream} #${d.replayed.seq})` : ""}`
      : d.replay.possible
        ? `replay would publish to ${d.replay.subject} once (Nats-Msg-Id ${d.replay.msgId})`
        : `cannot be replayed: ${d.replay.reason}`,
  ];
  return lines.join("\n") + "\n";
}

export function deadLettersCommand(): Command {
  const cmd = new Command("deadletters").description("list, show and replay dead letters (over NATS)");
  const list = new Command("list").description("dead letters, newest first");
  addSettingOptions(list, "deadletters");
  list
    .option("--role <role>", "only this role's")
    .option("--since <duration>", "only those of the last duration (e.g. 1h)")
    .option("--limit <n>", "at most this many (default 50, up to 500)")
    .option("--json", "one JSON document");
  list.action(async () => {
    const config = configFromCommand(list);
    const o = list.opts<{ role?: string; since?: string; limit?: string; json?: boolean }>();
    let sinceMs: number | undefined;
    if (o.since !== undefined) {
      const ms = parseDuration(o.since);
      if (ms === undefined) fail(`--since: "${o.since}" is not a duration (e.g. 30m, 1h)`, EXIT_CONFIG);
      sinceMs = Date.now() - ms;
    }
    if (o.limit !== undefined && !/^\d+$/.test(o.limit))
      fail(`--limit: "${o.limit}" is not a whole number`, EXIT_CONFIG);
    const result = await withDesk(config, (desk) =>
      desk.list({ role: o.role, sinceMs, limit: o.limit !== undefined ? Number(o.limit) : undefined }),
    );
    if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    else if (result.stream === undefined)
      process.stdout.write(`no stream stores ${result.subject}: dead letters are not kept\n`);
    else {
      process.stdout.write(
        `${result.items.length} dead letters in ${result.stream}${result.truncated ? " (more not shown)" : ""}\n`,
      );
      for (const d of result.items) process.stdout.write(row(d) + "\n");
    }
  });

  const show = new Command("show")
    .description("one dead letter: where it came from, headers, payload")
    .argument("<id>");
  addSettingOptions(show, "deadletters");
  show.option("--json", "one JSON document");
  show.action(async (id: string) => {
    const config = configFromCommand(show);
    const detail = await withDesk(config, (desk) => desk.show(idArg(id)));
    process.stdout.write(
      show.opts<{ json?: boolean }>().json ? JSON.stringify(detail, null, 2) + "\n" : describe(detail),
    );
  });

  const replay = new Command("replay")
    .description("publish a dead letter's original message again to its original subject, once")
    .argument("<id>");
  addSettingOptions(replay, "deadletters");
  replay.option("--yes", "do not ask (scripts)");
  replay.action(async (id: string) => {
    const config = configFromCommand(replay);
    const log = createLogger(config["log.level"], config["log.format"]);
    const n = idArg(id);
    const yes = replay.opts<{ yes?: boolean }>().yes === true;
    const result = await withDesk(config, async (desk) => {
      const detail = await desk.show(n);
      if (detail.replayed)
        throw new DeadLetterError(
          409,
          `dead letter ${n} was already replayed at ${detail.replayed.at} by ${detail.replayed.by}`,
        );
      if (!detail.replay.possible)
        throw new DeadLetterError(409, `dead letter ${n} cannot be replayed: ${detail.replay.reason}`);
      if (!yes) {
        if (!process.stdin.isTTY)
          fail("replay asks before publishing: give --yes to replay without a terminal", EXIT_CONFIG);
        process.stdout.write(describe(detail));
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`Publish it to ${detail.replay.subject}? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) fail("not replayed");
      }
      return desk.replay(n, `${userInfo().username}@terminal`);
    });
    log.info(
      {
        audit: "deadletter.replay",
        id: n,
        by: `${userInfo().username}@terminal`,
        subject: result.subject,
        msgId: result.msgId,
        stream: result.stream,
        seq: result.seq,
      },
      "dead letter replayed",
    );
    process.stdout.write(
      `replayed dead letter ${n} to ${result.subject}: ${result.stream} #${result.seq} (${result.msgId})\n`,
    );
  });

  cmd.addCommand(list);
  cmd.addCommand(show);
  cmd.addCommand(replay);
  return cmd;
}
