import { gunzipSync, gzipSync } from "node:zlib";
import {
  gzipBody,
  identityBody,
  Precompressed,
  renderInTurns,
  streamingGzip,
} from "../../src/exporters/metrics/registry.js";
import { describe, expect, it } from "vitest";
import { Counter } from "prom-client";
import { MetricsRegistry } from "../../src/exporters/metrics/registry.js";

describe("MetricsRegistry", () => {
  it("keeps counters' _total suffix in the Prometheus format after an OpenMetrics scrape", async () => {
    // prom-client's OpenMetrics registry renames shared counters in place (strips `_total`).
    const metrics = new MetricsRegistry();
    new Counter({ name: "orgwatch_things_total", help: "things", registers: metrics.registers }).inc(2);
    const before = (await metrics.render(false)).body;
    const [om] = await Promise.all([metrics.render(true), metrics.render(false)]);
    const after = (await metrics.render(false)).body;
    expect(om.body).toContain("orgwatch_things_total 2\n");
    expect(om.body).toContain("# TYPE orgwatch_things counter");
    expect(before).toContain("orgwatch_things_total 2\n");
    expect(after).toBe(before);
  });

  it("writes each scrape's own text into an arena reused by the next scrape once the first is over", async () => {
    const metrics = new MetricsRegistry();
    let n = 0;
    metrics.addSection({ render: () => `made_now ${++n}\n` });
    const first = await metrics.renderChunks(false);
    const overlapping = await metrics.renderChunks(false);
    const made = (r: typeof first) => r.chunks.find((c) => c.toString().startsWith("made_now")) as Buffer;
    expect(made(first).toString()).toBe("made_now 1\n");
    expect(made(overlapping).toString()).toBe("made_now 2\n");
    // In flight at once: separate arenas, neither overwritten.
    expect(made(overlapping).buffer).not.toBe(made(first).buffer);
    first.release();
    const next = await metrics.renderChunks(false);
    expect(made(next).toString()).toBe("made_now 3\n");
    expect(made(next).buffer).toBe(made(first).buffer);
    expect(made(overlapping).toString()).toBe("made_now 2\n");
    next.release();
    overlapping.release();
  });
});

describe("gzip of the exposition", () => {
  it("encodes a precompressed part once, and the body is the same text in several members", async () => {
    const fixed = Precompressed.ofText([Buffer.from("a 1\n"), Buffer.from("b 2\n")]);
    expect(fixed.gzipped).toBe(fixed.gzipped);
    const chunks = ["# head\n", fixed, "c 3\n"];
    const members = await gzipBody(chunks);
    expect(members).toHaveLength(3);
    expect(members[1]).toBe((await fixed.gzipped)[0]);
    expect(gunzipSync(Buffer.concat(members)).toString()).toBe("# head\na 1\nb 2\nc 3\n");
    expect(Buffer.concat(await identityBody(chunks)).toString()).toBe("# head\na 1\nb 2\nc 3\n");
  });

  it("keeps a part only gzip-encoded, as several members, and decodes it for a scrape not asking for gzip", async () => {
    const members = [gzipSync("a 1\n"), gzipSync("b 2\n")];
    const fixed = Precompressed.ofGzip(members);
    expect(fixed.raw).toBeUndefined();
    const chunks = ["# head\n", fixed, "c 3\n"];
    const body = await gzipBody(chunks);
    expect(body).toHaveLength(4);
    expect(body[1]).toBe(members[0]);
    expect(body[2]).toBe(members[1]);
    expect(gunzipSync(Buffer.concat(body)).toString()).toBe("# head\na 1\nb 2\nc 3\n");
    expect(Buffer.concat(await identityBody(chunks)).toString()).toBe("# head\na 1\nb 2\nc 3\n");
  });
});

describe("a render in turns", () => {
  it("gives back what an abandoned render holds: its generator's finally runs", async () => {
    const encoder = streamingGzip();
    let abandoned = false;
    let polls = 0;
    function* steps(): Generator<void, string, void> {
      try {
        for (let i = 0; i < 10; i++) {
          encoder.write(`line ${i}\n`);
          yield;
        }
        return "finished";
      } finally {
        if (polls > 0) {
          encoder.abandon();
          abandoned = true;
        }
      }
    }
    // A newer poll after the second step.
    let turns = 0;
    const result = await renderInTurns(steps(), () => {
      if (++turns === 2) polls++;
      return polls > 0;
    });
    expect(result).toBeUndefined();
    expect(abandoned).toBe(true);
  });

  it("finishes a render nobody made stale, its member decoding to what was written", async () => {
    const member = streamingGzip();
    function* steps(): Generator<void, Promise<Buffer>, void> {
      for (let i = 0; i < 3; i++) {
        member.write(`line ${i}\n`);
        yield;
      }
      return member.end();
    }
    const encoded = await (await renderInTurns(steps()))!;
    expect(gunzipSync(encoded).toString()).toBe("line 0\nline 1\nline 2\n");
  });
});
