// The README's screenshots of the console, taken from a running demo with Debian's chromium:
//   npm run screenshots   (writes docs/images/console-*.png)
// Starts `orgwatch demo` at pace 300, waits for its story (marketing lagging, devops's dead letter,
// finance ignoring broadcasts, a chain), then photographs the console, a dead letter, a task and the
// console on a phone. CHROMIUM_BIN picks another browser.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import puppeteer from "puppeteer-core";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = process.env["SCREENSHOTS_DIR"] ?? `${ROOT}docs/images/`;
const CHROMIUM = process.env["CHROMIUM_BIN"] ?? "/usr/bin/chromium";

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Org {
  agents: { role: string; status: string; dead_letters: number; unacked_broadcasts: number }[];
  flow: { tasks: number }[];
}

const demo = spawn(
  process.execPath,
  [`${ROOT}dist/cli.js`, "demo", "--pace", "300", "--web.listen-address", "127.0.0.1:0"],
  {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  },
);
let out = "";
demo.stdout.on("data", (d: Buffer) => (out += d.toString()));
try {
  const base = await waitFor(async () => /^\s+console\s+(http\S+)\/$/m.exec(out)?.[1], "the demo's banner");
  const org = await waitFor(async () => {
    const o = (await (await fetch(`${base}/api/v1/organization`)).json()) as Org;
    const by = new Map(o.agents.map((a) => [a.role, a]));
    const story =
      by.get("marketing")?.status === "lagging" &&
      (by.get("devops")?.dead_letters ?? 0) > 0 &&
      (by.get("finance")?.unacked_broadcasts ?? 0) > 0 &&
      o.flow.some((e) => e.tasks > 0);
    return story ? o : undefined;
  }, "the demo's story");
  void org;
  const natsUrl = /^\s+NATS\s+(nats:\S+)/m.exec(out)![1]!;
  const dl = await waitFor(async () => {
    const l = (await (await fetch(`${base}/api/v1/deadletters?limit=1`)).json()) as {
      items: { id: number; taskId?: string }[];
    };
    return l.items[0];
  }, "a dead letter");
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(`${base}/`, { waitUntil: "networkidle2" });
    await page.waitForSelector("#cards .card");
    await page.screenshot({ path: `${OUT}console-overview.png`, fullPage: true });
    await page.goto(`${base}/deadletters/${dl.id}`, { waitUntil: "networkidle2" });
    await page.waitForSelector(".payload");
    await page.screenshot({ path: `${OUT}console-deadletter.png`, fullPage: true });
    // A task of a chain: Security's first review, the CTO's implementation before it.
    const chained = await waitFor(async () => {
      const nc = await connect({ servers: natsUrl });
      try {
        const m = await (await jetstreamManager(nc)).streams.getMessage("AGENT_SECURITY_TASKS", { seq: 1 });
        return m ? m.json<{ task_id: string }>().task_id : undefined;
      } finally {
        await nc.close();
      }
    }, "a chained task");
    if (chained) {
      await page.goto(`${base}/tasks/${encodeURIComponent(chained)}`, { waitUntil: "networkidle2" });
      await page.waitForSelector(".timeline");
      await page.screenshot({ path: `${OUT}console-task.png`, fullPage: true });
    }
    await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
    await page.goto(`${base}/`, { waitUntil: "networkidle2" });
    await page.waitForSelector("#cards .card");
    await page.screenshot({ path: `${OUT}console-phone.png` });
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${OUT}`);
} finally {
  process.kill(-demo.pid!, "SIGINT");
}
