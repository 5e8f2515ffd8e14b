// The poller's requests on one reply subscription (src/nats/requests.ts) against a real nats-server:
// each reply reaches its own request, whatever the order they come back in; no responders, a
// timeout and a stop are errors of the requests they concern; a reply after its timeout is dropped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connect,
  NoRespondersError,
  TimeoutError,
  type Msg,
  type NatsConnection,
} from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { startRequests, type Requests } from "../../src/nats/requests.js";
import { directRead } from "../../src/sources/jetstream-poller.js";

const text = (m: Msg) => new TextDecoder().decode(m.data);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("requests on one reply subscription", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  /** Replies in reverse order of arrival, each batch of `held` at once; `silent.>` never replies. */
  let held: Msg[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url, noAsyncTraces: true });
    nc.subscribe("echo.*", {
      callback: (_err, m) => {
        held.push(m);
        if (held.length < Number(m.subject.split(".")[1])) return;
        for (const h of held.reverse()) h.respond(bytes(`re:${text(h)}`));
        held = [];
      },
    });
    nc.subscribe("silent.>", { callback: () => undefined });
    await nc.flush();
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  async function withRequests(timeoutMs: number, run: (requests: Requests) => Promise<void>): Promise<void> {
    const requests = startRequests(nc, timeoutMs);
    try {
      await run(requests);
    } finally {
      requests.stop();
    }
  }

  it("gives each request its own reply, in any order", async () => {
    await withRequests(5000, async (requests) => {
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => requests.request("echo.50", bytes(String(i)))),
      );
      expect(replies.map(text)).toEqual(Array.from({ length: 50 }, (_, i) => `re:${i}`));
    });
  });

  it("rejects a subject nobody serves with NoRespondersError, and one nobody answers with TimeoutError", async () => {
    await withRequests(300, async (requests) => {
      const none = requests.request("nobody.here", bytes("x"));
      await expect(none).rejects.toBeInstanceOf(NoRespondersError);
      await expect(none).rejects.toThrow("nobody.here");
      const t0 = performance.now();
      await expect(requests.request("silent.one", bytes("x"))).rejects.toBeInstanceOf(TimeoutError);
      const waited = performance.now() - t0;
      expect(waited).toBeGreaterThanOrEqual(299);
      // Answered requests are unaffected by one that timed out before them.
      await expect(requests.request("echo.1", bytes("after")).then(text)).resolves.toBe("re:after");
    });
  });

  it("drops a reply that comes after its request's timeout", async () => {
    await withRequests(200, async (requests) => {
      // Two are needed before echo.2 replies: the first times out waiting (its reply comes with the second's).
      const first = requests.request("echo.2", bytes("a"));
      await expect(first).rejects.toBeInstanceOf(TimeoutError);
      await expect(requests.request("echo.2", bytes("b")).then(text)).resolves.toBe("re:b");
    });
  });

  it("rejects what waits when stopped, and refuses requests after", async () => {
    const requests = startRequests(nc, 60_000);
    const waiting = requests.request("silent.two", bytes("x"));
    requests.stop();
    await expect(waiting).rejects.toThrow("stopped");
    await expect(requests.request("echo.1", bytes("x"))).rejects.toThrow("stopped");
  });

  it("rejects what waits when the connection closes", async () => {
    const own = await connect({ servers: server.url });
    const requests = startRequests(own, 60_000);
    const waiting = requests.request("silent.three", bytes("x"));
    await own.close();
    await expect(waiting).rejects.toThrow("closed");
    requests.stop();
  });

  it("reads a direct get's sequence and stored time, and nothing past the last message", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "DIRECT", subjects: ["direct.>"], allow_direct: true });
    const js = jsm.jetstream();
    await js.publish("direct.a", bytes("1"));
    const second = await js.publish("direct.b", bytes("2"));
    const stored = await jsm.streams.getMessage("DIRECT", { seq: second.seq });
    await withRequests(5000, async (requests) => {
      const subject = "$JS.API.DIRECT.GET.DIRECT";
      const ask = (seq: number, filter: string) =>
        requests.request(subject, bytes(JSON.stringify({ seq, next_by_subj: filter })));
      expect(directRead(subject, await ask(1, "direct.b"))).toEqual({
        seq: second.seq,
        ms: stored!.time.getTime(),
      });
      expect(directRead(subject, await ask(second.seq + 1, ">"))).toBeUndefined();
    });
  });
});
