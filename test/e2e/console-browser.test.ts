/// <reference lib="dom" />
// The console in a real browser (Debian's chromium) on `orgwatch demo`: the demo's story on the page
// (marketing lagging, devops's dead letter, finance ignoring broadcasts, a chain), a change arriving
// live without reload, a task found by id, and replay — refused with 403 by an orgwatch without
// --web.enable-admin-api (the page shows the server's answer), accepted once by one with it, the
// message back on its original subject with Orgwatch-Replay-Of, refused the second time. No console
// errors anywhere: the Content-Security-Policy holds.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { Page } from "puppeteer-core";
import type { Daemon } from "../../src/daemon.js";
import { spawnOrgwatch } from "../helpers/cli.js";
import { startBrowser, type TestBrowser } from "../helpers/browser.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/wait.js";

const PACE = 300;
/** From the demo's start (see demo.test.ts): the story is complete within this, on a loaded machine. */
const STORY_MS = 90_000;

describe("the console in a browser", () => {
  let demo: ChildProcess;
  let stdout = "";
  let base = "";
  let natsUrl = "";
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let browser: TestBrowser;
  let page: Page;
  let admin: Daemon | undefined;

  beforeAll(async () => {
    demo = spawnOrgwatch(["demo", "--pace", String(PACE), "--web.listen-address", "127.0.0.1:0"], {
      detached: true,
    });
    demo.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    base = await waitFor(() => /^\s+console\s+(http\S+)\/$/m.exec(stdout)?.[1], {
      timeoutMs: 30_000,
      what: "the banner",
    });
    natsUrl = /^\s+NATS\s+(nats:\S+)/m.exec(stdout)![1]!;
    nc = await connect({ servers: natsUrl });
    jsm = await jetstreamManager(nc);
    browser = await startBrowser();
    page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    // Opened at once, before the story happens: what follows must arrive without a reload.
    await page.goto(`${base}/`, { waitUntil: "load" });
    await page.evaluate(() => ((window as unknown as { loadedOnce: boolean }).loadedOnce = true));
  }, 60_000);

  afterAll(async () => {
    await admin?.stop();
    await browser?.close();
    await nc?.close();
    if (demo && demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, "SIGINT");
  });

  it("tells the demo's story live, without a reload", async () => {
    const story = await page.waitForFunction(
      () => {
        const card = (role: string) => document.querySelector(`#agent-${role}`) as HTMLElement | null;
        const value = (role: string, label: string) => {
          const dts = [...(card(role)?.querySelectorAll("dt") ?? [])];
          return dts.find((d) => d.textContent === label)?.nextElementSibling?.textContent ?? "";
        };
        const edge = document.querySelector('#flow g.edge[data-from="cto"][data-to="security"] text');
        const finance = document.querySelector('#broadcasts tr[data-role="finance"] td.b-pending');
        const marketingLag = Number(value("marketing", "lag"));
        const devopsDead = Number(value("devops", "dead letters").split(" ")[0]);
        const ok =
          marketingLag > 5 &&
          value("marketing", "work") === "lagging" &&
          devopsDead >= 1 &&
          card("devops")?.dataset["health"] === "critical" &&
          finance !== null &&
          Number(edge?.textContent ?? 0) >= 1 &&
          document.querySelector("#feed li.f-dead_letter") !== null &&
          document.querySelector("#recent-deadletters tr[data-id]") !== null;
        return (
          ok && {
            marketingLag,
            devopsDead,
            loadedOnce: (window as unknown as { loadedOnce?: boolean }).loadedOnce,
          }
        );
      },
      { timeout: STORY_MS, polling: 250 },
    );
    const seen = (await story.jsonValue()) as {
      marketingLag: number;
      devopsDead: number;
      loadedOnce?: boolean;
    };
    expect(seen.loadedOnce).toBe(true);
    expect(
      await page.$$eval("#cards .card", (cards) => cards.map((c) => (c as HTMLElement).dataset["role"])),
    ).toEqual(["ceo", "cto", "devops", "finance", "marketing", "security"]);
    // Usable with many: the filter narrows the cards.
    await page.type("#filter", "mark");
    expect(await page.$$eval("#cards .card", (cards) => cards.length)).toBe(1);
    expect(await page.$eval("#summary", (s) => s.textContent)).toContain("(showing 1)");
  });

  it("finds a task by id from the search box: its timeline and its chain, each step linked", async () => {
    // Security's first task is a chain's second step (the CTO implements, Security reviews).
    const m = await jsm.streams.getMessage("AGENT_SECURITY_TASKS", { seq: 1 });
    const taskId = m!.json<{ task_id: string }>().task_id;
    await page.type('form.search input[name="id"]', taskId);
    await Promise.all([page.waitForNavigation(), page.click("form.search button")]);
    expect(new URL(page.url()).pathname).toBe(`/tasks/${taskId}`);
    await page.waitForSelector(".timeline li");
    const timeline = await page.$$eval(".timeline b", (bs) => bs.map((b) => b.textContent));
    expect(timeline[0]).toBe("published");
    expect(timeline).toContain("delivery");
    const chain = await page.$$eval(".chain li a", (as) =>
      as.map((a) => [a.textContent, a.getAttribute("href")]),
    );
    expect(chain.length).toBeGreaterThanOrEqual(2);
    expect(chain).toContainEqual([taskId, `/tasks/${taskId}`]);
    expect(await page.$$eval(".chain li.current a", (as) => as.map((a) => a.textContent))).toEqual([taskId]);
  });

  it("refuses a replay without --web.enable-admin-api: the server's 403, shown on the page", async () => {
    await page.goto(`${base}/deadletters/1`, { waitUntil: "load" });
    await page.waitForSelector("#replay-button");
    expect(await page.$eval("#replay", (r) => r.textContent)).toContain("--web.enable-admin-api");
    await page.click("#replay-button");
    await page.click("#confirm-replay");
    await page.waitForSelector("#replay-result p.bad");
    expect(await page.$eval("#replay-result", (r) => r.textContent)).toMatch(
      /^Refused \(403\): write actions are off/,
    );
    // The API itself, not just the page.
    const status = await page.evaluate(
      async () => (await fetch("/api/v1/deadletters/1/replay", { method: "POST" })).status,
    );
    expect(status).toBe(403);
  });

  it("replays once with --web.enable-admin-api: the message on its original subject with Orgwatch-Replay-Of; refused the second time", async () => {
    // A second orgwatch on the demo's NATS, write actions on (the demo's story is told by now).
    admin = await startTestDaemon(natsUrl, {
      "web.enable-admin-api": true,
      "web.admin-api.allow-unauthenticated": true,
    });
    await admin.started;
    await admin.pollNow();
    await page.goto(`${admin.url}/deadletters/1`, { waitUntil: "load" });
    await page.waitForSelector("#replay-button");
    const subject = await page.$eval("#confirm code", (c) => c.textContent);
    expect(subject).toBe("genbrain.agents.devops.tasks");
    await page.click("#replay-button");
    await page.click("#confirm-replay");
    await page.waitForSelector("#replay-result p.ok");
    const text = (await page.$eval("#replay-result", (r) => r.textContent))!;
    const [, stream, seq] = /Replayed to \S+: (\S+) #(\d+)/.exec(text)!;
    const replayed = await jsm.streams.getMessage(stream!, { seq: Number(seq) });
    expect(replayed!.subject).toBe("genbrain.agents.devops.tasks");
    expect(replayed!.header.get("Orgwatch-Replay-Of")).toMatch(/^orgwatch-dl:AGENT_DEVOPS_TASKS:/);

    await page.reload({ waitUntil: "load" });
    await page.waitForSelector("#replay p.warn");
    expect(await page.$eval("#replay", (r) => r.textContent)).toContain("can't be replayed again");
    expect(await page.$("#replay-button")).toBeNull();
    const again = await page.evaluate(
      async () => (await fetch("/api/v1/deadletters/1/replay", { method: "POST" })).status,
    );
    expect(again).toBe(409);
  });

  it("had no console errors on any page (the Content-Security-Policy held)", () => {
    // The refused replays' answers (403, 409) are logged by Chromium as failed resources: expected.
    const unexpected = browser.problems.filter((p) => !/status of (403|409)/.test(p));
    expect(unexpected).toEqual([]);
  });
});
