// Two orgwatch processes on one organization (DESIGN.md §10): one lease holder at any time; the
// holder killed, paused or cut off from NATS mid-work, and the lease moves within its TTL; every
// finished task's span is exported, with its ids, and twice only when its holder died in the instant
// between the collector's answer and the record of it; every dead letter routed once.
import type { ChildProcess } from "node:child_process";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startSimulatedOrganization, type SimulatedOrganization } from "../../src/demo/simulator.js";
import { freePort, startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { startOrgwatchDaemon, type RunningOrgwatch } from "../helpers/cli.js";
import { ledgerBalances, scrape } from "../helpers/metrics.js";
import { startOtlpReceiver, type ExportedChainSpan, type ExportedSpan } from "../helpers/otlp-receiver.js";
import { followSimulatedWork, type SimulatedWork } from "../helpers/simulated-work.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { waitFor } from "../helpers/wait.js";

const TTL_MS = 3000;
/** A follower tries every min(1 s, ttl/10); the key's expiry and a scrape add a little. */
const MOVE_WITHIN_MS = TTL_MS + 300 + 1500;
/**
 * A span sent twice must have been first received this close before its holder was disrupted: the
 * time its record of being sent may wait in the chain store's write queue (seen over 1 s once in
 * 17 runs, behind a whole state written after a takeover).
 */
const DUPLICATE_WINDOW_MS = 3000;

/**
 * The receiver runs in this process, which also drives the workload: a request a holder sent just
 * before it was killed may be read this much after the kill.
 */
const RECEIVE_LAG_MS = 1000;

/** When a holder was disrupted: a span sent twice had a copy from it (`pid`) received in [from, to]. */
interface Disruption {
  from: number;
  to: number;
  /** The disrupted process; any sender when undefined (the cluster's failover disrupts both). */
  pid?: number;
}
/** Killed or paused at `ms`: what it sent just before may not be on record. */
const at = (ms: number, pid: number | undefined): Disruption => ({
  from: ms - DUPLICATE_WINDOW_MS,
  to: ms + RECEIVE_LAG_MS,
  pid,
});

interface Replica {
  readonly name: string;
  running: RunningOrgwatch;
  /** "lease acquired" / "lease lost" log lines, with their times. */
  readonly leaseLog: { msg: "acquired" | "lost"; time: number }[];
  /** Its warnings and errors, each message once with how often (what the cluster test reports). */
  readonly warnings: Map<string, number>;
  /** Spans it sent as the holder and put on record only after losing the lease (NATS not answering). */
  readonly owedLog: { time: number; written: number }[];
  /** When it read the last holder's records, taking the lease over. */
  readonly tookOver: number[];
}

describe("a replica pair", () => {
  let nats: NatsServerProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let sim: SimulatedOrganization | undefined;
  let proxy: TcpProxy | undefined;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
  });
  beforeEach(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    otlp.spans.length = 0;
    otlp.chains.length = 0;
  });
  afterEach(async () => {
    await sim?.stop().catch(() => undefined);
    sim = undefined;
    for (const c of children.splice(0)) {
      if (c.signalCode === "SIGSTOP") c.kill("SIGCONT");
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    }
    await proxy?.close();
    proxy = undefined;
    await nc?.close();
    await nats?.stop();
  });
  afterAll(() => {
    otlp?.server.close();
  });

  function start(name: string, natsUrl = nats.url, known?: Replica, extra: string[] = []): Replica {
    const replica: Replica = known ?? {
      name,
      running: undefined as never,
      leaseLog: [],
      warnings: new Map(),
      owedLog: [],
      tookOver: [],
    };
    let partial = "";
    replica.running = startOrgwatchDaemon({
      natsUrl,
      otlpUrl: otlp.url,
      pollInterval: "500ms",
      extra: ["--pair.replica", name, "--pair.lease-ttl", `${TTL_MS}ms`, ...extra],
      onLog: (chunk) => {
        const lines = (partial + chunk.toString()).split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          if (line.includes('"level":40') || line.includes('"level":50')) {
            const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 200);
            replica.warnings.set(msg, (replica.warnings.get(msg) ?? 0) + 1);
          }
          if (line.includes("spans sent before the lease was lost now on record")) {
            const entry = JSON.parse(line) as { time: number; written: number };
            replica.owedLog.push({ time: entry.time, written: entry.written });
          }
          if (line.includes('"took over:'))
            replica.tookOver.push((JSON.parse(line) as { time: number }).time);
          if (!line.includes('"lease ')) continue;
          const entry = JSON.parse(line) as { msg: string; time: number };
          if (entry.msg === "lease acquired") replica.leaseLog.push({ msg: "acquired", time: entry.time });
          if (entry.msg.startsWith("lease lost")) replica.leaseLog.push({ msg: "lost", time: entry.time });
        }
      },
    });
    children.push(replica.running.child);
    return replica;
  }

  async function leaseHeld(replica: Replica): Promise<number> {
    return (await scrape(await replica.running.url)).value("orgwatch_lease_held", { lease: "chains" }) ?? NaN;
  }

  /** Waits until exactly one of `replicas` holds the lease, and returns it. */
  async function theHolder(replicas: Replica[], what: string): Promise<Replica> {
    return waitFor(
      async () => {
        const held = await Promise.all(replicas.map(leaseHeld));
        const holders = replicas.filter((_, i) => held[i] === 1);
        return holders.length === 1 && held.every((h) => h === 0 || h === 1) ? holders[0] : undefined;
      },
      { timeoutMs: 20_000, what },
    );
  }

  async function startPair(natsUrlOfA = nats.url): Promise<[Replica, Replica]> {
    const a = start("a", natsUrlOfA);
    await a.running.url;
    await waitFor(() => jsm.streams.info("ORGWATCH_ADVISORIES").then(() => true), {
      what: "the advisory stream",
    });
    // a first, so that it holds the lease (the one the partition test cuts off).
    await theHolder([a], "a holding the lease");
    const b = start("b");
    await b.running.url;
    return [a, b];
  }

  /** Waits until `count` more tasks finished. */
  async function moreFinished(work: SimulatedWork, count: number): Promise<void> {
    const target = work.finished.size + count;
    await waitFor(() => work.finished.size >= target, {
      timeoutMs: 30_000,
      what: `${count} more tasks finished`,
    });
  }

  /**
   * Every finished task exported with one set of ids; a span received twice only when it was first
   * received in one of `disruptions` (its holder killed, paused or cut off before the collector's
   * answer was on record). Returns how many were received twice, and the copies no disruption
   * explains (failed on unless `unexplained: "report"`).
   */
  function checkSpans(
    work: SimulatedWork,
    disruptions: Disruption[],
    {
      lost = "fail",
      otherIds = "fail",
      unexplained: unexplainedCopies = "fail",
    }: {
      lost?: "fail" | "report";
      otherIds?: "fail" | "report";
      unexplained?: "fail" | "report";
    } = {},
  ): {
    twice: number;
    /** Each span received twice: its task, and when and from which process each copy came. */
    copies: string[];
    missing: string[];
    otherIds: string[];
    unexplained: string[];
    chains: string;
  } {
    const first = new Map<string, ExportedSpan>();
    const twice: [ExportedSpan, ExportedSpan][] = [];
    const withOtherIds: string[] = [];
    for (const s of otlp.spans) {
      const seen = first.get(s.taskId);
      if (!seen) first.set(s.taskId, s);
      else {
        const ids = (x: ExportedSpan) => ({ traceId: x.traceId, spanId: x.spanId, parent: x.parentSpanId });
        if (otherIds === "fail") expect(ids(s)).toEqual(ids(seen));
        else if (JSON.stringify(ids(s)) !== JSON.stringify(ids(seen)))
          withOtherIds.push(`${s.taskId}: ${JSON.stringify(ids(seen))} then ${JSON.stringify(ids(s))}`);
        twice.push([seen, s]);
      }
    }
    const missing = [...work.finished.keys()].filter((id) => !first.has(id));
    if (lost === "fail") expect(missing).toEqual([]);
    const during = (s: { senderPid: number | undefined; receivedAtMs: number }) =>
      disruptions.some(
        (d) =>
          (d.pid === undefined || s.senderPid === d.pid) &&
          s.receivedAtMs >= d.from &&
          s.receivedAtMs <= d.to,
      );
    const unexplained = twice
      .filter((copies) => !copies.some(during))
      .map(
        (copies) =>
          `${copies[0].taskId} received at ${copies.map((s) => `${s.receivedAtMs} from ${s.senderPid}`).join(" and ")} ` +
          `(disruptions ${JSON.stringify(disruptions)})`,
      );
    if (unexplainedCopies === "fail") expect(unexplained).toEqual([]);
    // Chain spans are not resent (a holder's death can lose one): copies are reported, with those
    // no disruption explains.
    const chainSeen = new Map<string, ExportedChainSpan>();
    let chainsTwice = 0;
    const chainsUnexplained: string[] = [];
    for (const c of otlp.chains) {
      const seen = chainSeen.get(c.firstTaskId);
      if (!seen) chainSeen.set(c.firstTaskId, c);
      else {
        chainsTwice++;
        if (![seen, c].some(during))
          chainsUnexplained.push(
            `${c.firstTaskId} at ${seen.receivedAtMs} from ${seen.senderPid} and ${c.receivedAtMs} from ${c.senderPid}`,
          );
      }
    }
    const chains =
      `${otlp.chains.length} chain spans, ${chainsTwice} twice` +
      (chainsUnexplained.length > 0 ? ` (outside disruptions: ${chainsUnexplained.join(" | ")})` : "");
    console.log(chains);
    const copies = twice.map(
      (pair) =>
        `${pair[0].taskId} at ${pair.map((s) => `${s.receivedAtMs} from ${s.senderPid}`).join(" and ")}`,
    );
    return { twice: twice.length, copies, missing, otherIds: withOtherIds, unexplained, chains };
  }

  async function stopAll(replicas: Replica[]): Promise<void> {
    for (const r of replicas) r.running.child.kill("SIGTERM");
    await Promise.all(replicas.map((r) => r.running.exited));
  }

  it("the holder killed twice mid-work: the lease moves within its TTL, no span lost, dead letters once", async () => {
    const [a, b] = await startPair();
    sim = await startSimulatedOrganization({ servers: nats.url, pace: 3000, seed: 11 });
    const work = followSimulatedWork(nc, js, jsm, sim);
    const killed: Disruption[] = [];
    const movedInMs: number[] = [];
    for (let kill = 0; kill < 2; kill++) {
      await moreFinished(work, 20);
      const holder = await theHolder([a, b], "one holder");
      const other = holder === a ? b : a;
      const acquisitions = other.leaseLog.filter((l) => l.msg === "acquired").length;
      holder.running.child.kill("SIGKILL");
      killed.push(at(Date.now(), holder.running.child.pid));
      await holder.running.exited;
      await waitFor(() => other.leaseLog.filter((l) => l.msg === "acquired").length > acquisitions, {
        timeoutMs: 20_000,
        what: `${other.name} acquiring the lease`,
      });
      movedInMs.push(other.leaseLog.at(-1)!.time - (killed.at(-1)!.from + DUPLICATE_WINDOW_MS));
      expect(await theHolder([other], `${other.name} holding`)).toBe(other);
      start(holder.name, nats.url, holder);
      await holder.running.url;
    }
    await moreFinished(work, 20);
    await sim.stop();
    sim = undefined;

    const { dead, letters } = await work.drainDeadLetters(["orgwatch_a", "orgwatch_b"]);
    expect(dead.size).toBeGreaterThan(0);
    expect(letters.length).toBe(new Set(letters).size);
    expect(new Set(letters)).toEqual(dead);
    // Each replica's task books balance, the holder's and the follower's alike.
    for (const r of [a, b]) {
      const m = await scrape(await r.running.url);
      const roles = new Set(m.series("orgwatch_tasks_published_total").map((s) => s.labels["role"]!));
      expect(roles.size).toBeGreaterThan(3);
      for (const role of roles) expect(ledgerBalances(m, role), `${r.name} ${role}`).toBeUndefined();
    }

    await stopAll([a, b]);
    const { twice } = checkSpans(work, killed);
    console.log(
      `lease moved ${movedInMs.join(", ")} ms after the holder's kill (TTL ${TTL_MS} ms); ` +
        `${work.finished.size} tasks, ${otlp.spans.length} spans received, ${twice} twice; ${dead.size} dead letters once`,
    );
    for (const ms of movedInMs) expect(ms).toBeLessThanOrEqual(MOVE_WITHIN_MS);
  }, 120_000);

  it("the holder paused past its TTL: the other takes over, and the paused one acts on nothing when it resumes", async () => {
    const [a, b] = await startPair();
    sim = await startSimulatedOrganization({ servers: nats.url, pace: 3000, seed: 12 });
    const work = followSimulatedWork(nc, js, jsm, sim);
    await moreFinished(work, 20);
    a.running.child.kill("SIGSTOP");
    const pausedAt = Date.now();
    await waitFor(() => b.leaseLog.some((l) => l.msg === "acquired"), {
      timeoutMs: 20_000,
      what: "b acquiring",
    });
    await moreFinished(work, 10);
    a.running.child.kill("SIGCONT");
    const resumedAt = Date.now();
    await waitFor(() => a.leaseLog.some((l) => l.msg === "lost"), {
      timeoutMs: 20_000,
      what: "a standing down",
    });
    expect(await theHolder([a, b], "b the one holder")).toBe(b);
    await moreFinished(work, 20);
    await sim.stop();
    sim = undefined;
    await work.drainDeadLetters(["orgwatch_a", "orgwatch_b"]);
    await stopAll([a, b]);
    // What a had recorded before its pause is b's to send: a must not send it when it resumes. An
    // export a had begun before the pause (the lease checked, the bytes not yet out) ends when it
    // resumes: those spans may come twice, from a just after it resumed and from b at its takeover.
    const pid = a.running.child.pid;
    const afterResume = { from: resumedAt, to: resumedAt + DUPLICATE_WINDOW_MS, pid };
    checkSpans(work, [at(pausedAt, pid), afterResume]);
    expect(
      otlp.spans.filter((s) => s.senderPid === pid && s.receivedAtMs > afterResume.to).map((s) => s.taskId),
      "spans a sent after it resumed",
    ).toEqual([]);
  }, 120_000);

  it("the holder cut off from NATS stands down before the other can acquire", async () => {
    proxy = await startTcpProxy("127.0.0.1", nats.port);
    const [a, b] = await startPair(`nats://${proxy.address}`);
    sim = await startSimulatedOrganization({ servers: nats.url, pace: 3000, seed: 13 });
    const work = followSimulatedWork(nc, js, jsm, sim);
    await moreFinished(work, 20);
    await proxy.cut();
    const cutAt = Date.now();
    await waitFor(() => b.leaseLog.some((l) => l.msg === "acquired"), {
      timeoutMs: 20_000,
      what: "b acquiring",
    });
    const lost = a.leaseLog.find((l) => l.msg === "lost");
    const acquired = b.leaseLog.find((l) => l.msg === "acquired")!;
    expect(lost).toBeDefined();
    // a gave up at most half a TTL after its last renewal; b could create the key only a TTL after it.
    expect(lost!.time).toBeLessThan(acquired.time);
    console.log(
      `cut at 0: a stood down at ${lost!.time - cutAt} ms, b acquired at ${acquired.time - cutAt} ms (TTL ${TTL_MS} ms)`,
    );
    await proxy.mend();
    expect(await theHolder([a, b], "b the one holder after the partition")).toBe(b);
    await moreFinished(work, 20);
    await sim.stop();
    sim = undefined;
    await work.drainDeadLetters(["orgwatch_a", "orgwatch_b"]);
    await stopAll([a, b]);
    // Cut off, a still sends spans to the collector until it stands down, but cannot record it.
    checkSpans(work, [
      { from: cutAt - DUPLICATE_WINDOW_MS, to: lost!.time + RECEIVE_LAG_MS, pid: a.running.child.pid },
    ]);
  }, 120_000);

  it("on a 3-node cluster losing the lease bucket's leader: never two holders, one again soon, no span lost", async () => {
    const clusterPorts = await Promise.all([1, 2, 3].map(() => freePort()));
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(", ");
    const nodes = await Promise.all(
      clusterPorts.map((port, i) =>
        startNatsServer({
          name: `n${i + 1}`,
          config: `cluster { name: orgwatch-pair, listen: 127.0.0.1:${port}, routes: [ ${routes} ] }`,
        }),
      ),
    );
    const urls = nodes.map((n) => n.url);
    const cnc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    try {
      const cjsm = await jetstreamManager(cnc, { checkAPI: false, timeout: 2000 });
      await waitFor(() => cjsm.getAccountInfo().then(() => true), {
        timeoutMs: 30_000,
        what: "a meta leader",
      });
      const cluster = ["--own-streams.replicas", "3"];
      const a = start("a", urls.join(","), undefined, cluster);
      await a.running.url;
      await theHolder([a], "a holding the lease");
      const b = start("b", urls.join(","), undefined, cluster);
      await b.running.url;
      sim = await startSimulatedOrganization({ servers: urls, pace: 3000, seed: 14, replicas: 3 });
      const work = followSimulatedWork(cnc, jetstream(cnc), cjsm, sim);
      await moreFinished(work, 20);

      const leader = (await cjsm.streams.info("KV_orgwatch_leases")).cluster?.leader;
      const node = nodes.find((_node, i) => `n${i + 1}` === leader);
      expect(node).toBeDefined();
      await node!.kill();
      const killedAt = Date.now();
      // One holder again once the bucket has a leader (a holder that could not renew stood down
      // and took it back, or the other acquired it).
      await waitFor(
        () => [...a.leaseLog, ...b.leaseLog].some((l) => l.msg === "acquired" && l.time > killedAt),
        {
          timeoutMs: 30_000,
          what: "the lease acquired after the leader's loss",
        },
      ).catch(() => undefined); // the holder may have renewed through the election
      const holder = await theHolder([a, b], "one holder after the leader's loss");
      await moreFinished(work, 20);
      await sim.stop();
      sim = undefined;
      // Completions known from polls and advisories of streams that changed leader come later.
      await waitFor(
        () => {
          const exported = new Set(otlp.spans.map((s) => s.taskId));
          return [...work.finished.keys()].every((id) => exported.has(id));
        },
        { timeoutMs: 45_000, intervalMs: 250, what: "every finished task's span" },
      ).catch(() => undefined); // checkSpans says which are missing
      // What each replica knows of the first tasks not exported (reported below).
      const exported = new Set(otlp.spans.map((s) => s.taskId));
      const notExported = [...work.finished.keys()].filter((id) => !exported.has(id)).slice(0, 3);
      const known = await Promise.all(
        notExported.map(async (id) => {
          const views = await Promise.all(
            [a, b].map(async (r) => {
              const res = await fetch(new URL(`/api/v1/tasks/${id}`, await r.running.url));
              if (res.status !== 200) return `${r.name}: ${res.status}`;
              const v = (await res.json()) as Record<string, unknown> & { timeline: { event: string }[] };
              const { done_at, outcome, link, parent_task_id, deliveries, stream_sequence } = v;
              return `${r.name}: ${JSON.stringify({ done_at, outcome, link, parent_task_id, deliveries, stream_sequence, events: v.timeline.map((e) => e.event) })}`;
            }),
          );
          return `${id} (${views.join("; ")})`;
        }),
      );
      await stopAll([a, b]);

      // Never two at once: each replica's holding intervals, from its own log, do not overlap.
      const intervals = (r: Replica) => {
        const out: [number, number][] = [];
        let from: number | undefined;
        for (const l of r.leaseLog) {
          if (l.msg === "acquired") from = l.time;
          else if (from !== undefined) {
            out.push([from, l.time]);
            from = undefined;
          }
        }
        if (from !== undefined) out.push([from, Infinity]);
        return out;
      };
      for (const [af, at] of intervals(a))
        for (const [bf, bt] of intervals(b))
          expect(af < bt && bf < at, `a ${af}–${at}, b ${bf}–${bt}`).toBe(false);
      const stoodDown = [...a.leaseLog, ...b.leaseLog].find((l) => l.msg === "lost" && l.time >= killedAt);
      // Reported, not failed (docs/reliability.md, the closing note of issue 17): before the stalled
      // reader's restart some finished tasks were never exported on this failover (2 of 3 runs; none
      // in 10 since); one run in 10 since sent one span again in another trace (the same span and
      // parent ids, the parent's trace id differing between the replicas).
      // Also reported: one run in ten (2026-12-04 evening) had a span sent again by the replica that
      // took the lease when the test stopped the other, 24 s after the other's copy.
      const { twice, copies, missing, otherIds, unexplained } = checkSpans(
        work,
        [{ from: killedAt - DUPLICATE_WINDOW_MS, to: (stoodDown?.time ?? killedAt) + RECEIVE_LAG_MS }],
        { lost: "report", otherIds: "report", unexplained: "report" },
      );
      console.log(
        `cluster: killed ${leader} (the lease bucket's leader); ${holder.name} holds it after; ` +
          `${work.finished.size} tasks finished, ${missing.length} not exported, ${twice} spans twice` +
          (twice > 0
            ? ` [${copies.join(" | ")}; killed at ${killedAt}; pids a ${a.running.child.pid}, b ${b.running.child.pid}]`
            : "") +
          (otherIds.length > 0 ? ` (${otherIds.length} in another trace: ${otherIds.join(" | ")})` : "") +
          (unexplained.length > 0
            ? ` (${unexplained.length} outside the leader's loss: ${unexplained.join(" | ")})`
            : "") +
          `; put on record after losing the lease (ms after the kill, spans): a ${JSON.stringify(a.owedLog.map((o) => [o.time - killedAt, o.written]))}, b ${JSON.stringify(b.owedLog.map((o) => [o.time - killedAt, o.written]))}; ` +
          `records read taking over: a ${JSON.stringify(a.tookOver.map((t) => t - killedAt))}, b ${JSON.stringify(b.tookOver.map((t) => t - killedAt))}; ` +
          `a: ${JSON.stringify(a.leaseLog.map((l) => [l.msg, l.time - killedAt]))}, b: ${JSON.stringify(b.leaseLog.map((l) => [l.msg, l.time - killedAt]))}` +
          (known.length > 0 ? `; not exported: ${known.join(" | ")}` : "") +
          `; warnings a ${JSON.stringify([...a.warnings])}, b ${JSON.stringify([...b.warnings])}`,
      );
    } finally {
      await cnc.close();
      for (const n of nodes) await n.stop().catch(() => undefined);
    }
  }, 150_000);
});
