// The console's cost (DESIGN.md §9): what the daemon spends per poll pushing the organization to its
// server-sent-event clients, with none and with 100 connected (in a child process of their own, so
// that their parsing is not counted), the NATS requests per poll either way (the same: the console
// reads the model), the event's size, and the page's weight (raw and gzipped).
import { spawn } from "node:child_process";
import { gzipSync } from "node:zlib";
import { startAgentsDaemon } from "./topology.js";
import { median } from "./stats.js";

const AGENTS = 50;

export interface ConsoleResult {
  readonly consumers: number;
  readonly agents: number;
  readonly clients: number;
  /** Daemon CPU per poll (user + system), median over the polls. */
  readonly cpuPerPollMs: { readonly none: number; readonly clients: number };
  readonly requestsPerPoll: { readonly none: number; readonly clients: number };
  /** Poll start → the last client holding that poll's event, median. */
  readonly deliveredMs: number;
  readonly eventBytes: number;
  readonly page: Record<string, { readonly bytes: number; readonly gzip: number }>;
}

/** N clients of /api/v1/events; prints "ready" once all are connected, then a line per complete round. */
const CLIENTS_SCRIPT = `
const [url, n] = [process.argv[1], Number(process.argv[2])];
const counts = new Array(n).fill(0);
let round = 0;
await Promise.all(counts.map(async (_, i) => {
  const res = await fetch(url);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\\n\\n")) >= 0) {
        if (buf.slice(0, k).includes("event:organization")) {
          counts[i]++;
          if (Math.min(...counts) > round) { round++; process.stdout.write("round " + round + "\\n"); }
        }
        buf = buf.slice(k + 2);
      }
    }
  })();
}));
process.stdout.write("ready\\n");
`;

export async function measureConsole(
  url: string,
  options: { streams?: number; consumers?: number; clients?: number; polls?: number } = {},
): Promise<ConsoleResult> {
  const { topology, daemon } = await startAgentsDaemon(
    url,
    options.streams ?? 100,
    options.consumers ?? 1000,
    AGENTS,
  );
  const polls = options.polls ?? 10;
  const n = options.clients ?? 100;
  try {
    await daemon.pollNow();
    const measure = async (afterPoll?: () => Promise<void>) => {
      const cpu: number[] = [];
      const requests: number[] = [];
      for (let i = 0; i < polls; i++) {
        const c0 = process.cpuUsage();
        await daemon.pollNow();
        await afterPoll?.();
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
        requests.push(daemon.org.jetstream.current!.requests);
      }
      return { cpu: median(cpu), requests: median(requests) };
    };
    const none = await measure(async () => new Promise((r) => setImmediate(r)));

    const child = spawn(
      process.execPath,
      ["--input-type=module", "-e", CLIENTS_SCRIPT, `${daemon.url}/api/v1/events`, String(n)],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    const waiters: (() => void)[] = [];
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      for (const w of waiters.splice(0)) w();
    });
    const lineCount = () => out.split("\n").filter((l) => l.startsWith("round ")).length;
    const until = (holds: () => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => (holds() ? resolve() : waiters.push(check));
        check();
      });
    try {
      await until(() => out.includes("ready") && lineCount() >= 1);
      const delivered: number[] = [];
      const withClients = await measure(async () => {
        const before = lineCount();
        const t0 = performance.now();
        await until(() => lineCount() > before);
        delivered.push(performance.now() - t0);
      });
      const event = JSON.stringify(
        (await (await fetch(`${daemon.url}/api/v1/organization`)).json()) as unknown,
      );
      const page: Record<string, { bytes: number; gzip: number }> = {};
      for (const path of ["/", "/console/app.js", "/console/app.css"]) {
        const body = Buffer.from(await (await fetch(`${daemon.url}${path}`)).arrayBuffer());
        page[path] = { bytes: body.length, gzip: gzipSync(body).length };
      }
      return {
        consumers: topology.consumers + AGENTS,
        agents: AGENTS,
        clients: n,
        cpuPerPollMs: { none: none.cpu, clients: withClients.cpu },
        requestsPerPoll: { none: none.requests, clients: withClients.requests },
        deliveredMs: median(delivered),
        eventBytes: Buffer.byteLength(event),
        page,
      };
    } finally {
      child.kill();
    }
  } finally {
    await daemon.stop();
  }
}

export function consoleTable(r: ConsoleResult): string {
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const page = Object.entries(r.page)
    .map(([p, s]) => `${p} ${kib(s.bytes)} (${kib(s.gzip)} gzip)`)
    .join(", ");
  return [
    "| consumers (agents) | daemon CPU per poll, 0 clients | … with " +
      r.clients +
      " SSE clients | NATS requests per poll 0 / " +
      r.clients +
      " clients | poll → last client has it | event size | page |",
    "|---|---|---|---|---|---|---|",
    `| ${r.consumers.toLocaleString("en-US")} (${r.agents}) | ${r.cpuPerPollMs.none.toFixed(1)} ms | ${r.cpuPerPollMs.clients.toFixed(1)} ms | ${r.requestsPerPoll.none} / ${r.requestsPerPoll.clients} | ${r.deliveredMs.toFixed(1)} ms | ${kib(r.eventBytes)} | ${page} |`,
  ].join("\n");
}
