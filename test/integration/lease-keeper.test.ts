// The lease keeper (src/pair/lease.ts) against a real nats-server: a stopping orgwatch does not
// take the lease (retire), or what it ends on its way out would be exported without the
// takeover's reading of the last holder's records; a stopping holder keeps renewing it until its
// last state is written.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { CHAINS_LEASE, LeaseModel } from "../../src/model/lease.js";
import { LEASE_BUCKET, startLease, type LeaseKeeper } from "../../src/pair/lease.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { waitFor } from "../helpers/wait.js";

describe("the lease keeper", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  const keepers: LeaseKeeper[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    for (const k of keepers) await k.stop();
    await nc?.close();
    await server?.stop();
  });

  function keeper(name: string): { lease: LeaseModel; keeper: LeaseKeeper; log: CapturedLog } {
    const lease = new LeaseModel(CHAINS_LEASE, name);
    const log = captureLog("debug");
    const k = startLease(nc, lease, { ttlMs: 3000, replicas: 1 }, log.log);
    keepers.push(k);
    return { lease, keeper: k, log };
  }

  it("a stopping holder keeps the lease; a stopping follower does not take it when it is given up", async () => {
    const a = keeper("a");
    await waitFor(() => a.lease.held, { what: "a holding the lease" });
    const b = keeper("b");
    await waitFor(() => b.log.messages("lease held by another orgwatch").length > 0, {
      what: "b seeing a hold it",
    });

    // The holder, retiring, still renews (at its revision): it holds the lease until it stops.
    const kv = await new Kvm(nc).open(LEASE_BUCKET);
    const revision = (await kv.get(CHAINS_LEASE))!.revision;
    a.keeper.retire();
    await waitFor(async () => ((await kv.get(CHAINS_LEASE))?.revision ?? 0) > revision, {
      what: "a renewal after retiring",
    });
    expect(a.lease.held).toBe(true);

    // The follower retires, the holder stops (the key deleted): the follower's next tries leave it.
    b.keeper.retire();
    await a.keeper.stop();
    expect(a.lease.held).toBe(false);
    const triesBefore = b.log.messages("the lease is not taken").length;
    await waitFor(
      () => b.lease.acquisitions > 0 || b.log.messages("the lease is not taken").length >= triesBefore + 2,
      { what: "two tries of b after a gave the lease up" },
    );
    expect(b.lease.acquisitions).toBe(0);
    expect(await kv.get(CHAINS_LEASE)).toMatchObject({ operation: "DEL" });

    // Free for anyone not stopping.
    const c = keeper("c");
    await waitFor(() => c.lease.held, { what: "c taking the lease" });
    expect(b.lease.acquisitions).toBe(0);
  });
});
