import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Daemon } from "../../src/daemon.js";
import { startTestOrg, type TestOrg } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";

describe("daemon skeleton", () => {
  let org: TestOrg;
  let daemon: Daemon;

  beforeAll(async () => {
    org = await startTestOrg({ topology: { roles: ["ceo", "cto", "security"] } });
    daemon = org.daemon;
  });
  afterAll(() => org?.stop());

  it("connects, polls, and reports itself ready", async () => {
    await daemon.pollNow();
    expect(daemon.org.jetstream.current?.streams.size).toBe(4);
    expect(daemon.org.jetstream.current?.consumers.size).toBe(6);
    const res = await fetch(daemon.url + "/readyz");
    expect(res.status).toBe(200);
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_nats_connected")).toBe(1);
    expect(m.value("orgwatch_poll_errors_total")).toBe(0);
  });

  it("refuses methods other than GET and HEAD", async () => {
    const res = await fetch(daemon.url + "/metrics", { method: "POST" });
    expect(res.status).toBe(405);
  });
});
