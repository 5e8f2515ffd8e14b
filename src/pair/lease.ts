// The lease that makes one orgwatch of a pair the one that exports spans and writes chain state
// (DESIGN.md §10): one key in the KV bucket orgwatch_leases, whose TTL is the lease's.
//
// - Acquire: an atomic create of the key (fails while anyone holds it).
// - Renew: an update at the revision this process wrote last, every ttl/4. The key lives a TTL
//   after the holder's last renewal (the bucket's max age; nats-server 2.9 has no per-key TTL).
// - Any failed renewal, and no successful renewal for ttl/2 (whatever the requests are doing), is
//   the lease lost: the holder stops acting at once. Another can only create the key once the last
//   renewal expired, a TTL after it was sent: at least ttl/2 after this process stopped.
// - A follower tries to create the key often (every ttl/10, at most 1 s), so that the lease moves
//   within about a TTL of the holder's death. A graceful stop deletes the key (at its revision):
//   the other takes over at its next try. A stopping orgwatch does not acquire it (retire): its
//   sources stop one by one, and what it ended on the way out would be exported without the
//   takeover's reading of the last holder's records (a span sent twice).
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import type { LeaseModel } from "../model/lease.js";
import type { RunningSource } from "../sources/source.js";

export const LEASE_BUCKET = "orgwatch_leases";

export interface LeaseOptions {
  readonly ttlMs: number;
  /** Replicas of the bucket when it is created (own-streams.replicas). */
  readonly replicas: number;
}

/** The timings of a lease of `ttlMs`: renewal, how long a renewal counts, a follower's tries. */
export function leaseTimings(ttlMs: number): { renewMs: number; validMs: number; tryMs: number } {
  return { renewMs: ttlMs / 4, validMs: ttlMs / 2, tryMs: Math.min(1000, ttlMs / 10) };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function openBucket(nc: NatsConnection, options: LeaseOptions): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(LEASE_BUCKET, {
      history: 1,
      ttl: options.ttlMs,
      replicas: options.replicas,
      description: "orgwatch's leases: which orgwatch of a pair exports spans and writes chain state",
    });
  } catch {
    // Created earlier with other limits (another orgwatch's TTL): used as it is.
    return kvm.open(LEASE_BUCKET);
  }
}

export interface LeaseKeeper extends RunningSource {
  /** This process is stopping: it keeps the lease if it holds it, and no longer tries to acquire it. */
  retire(): void;
}

/** Keeps trying to hold `lease`, and holds it while it can; stopping gives it up. */
export function startLease(
  nc: NatsConnection,
  lease: LeaseModel,
  options: LeaseOptions,
  log: Logger,
): LeaseKeeper {
  const { renewMs, validMs, tryMs } = leaseTimings(options.ttlMs);
  const value = () => JSON.stringify({ holder: lease.self, renewed: new Date().toISOString() });
  let kv: KV | undefined;
  let revision = 0;
  let stopped = false;
  let retiring = false;
  let timer: NodeJS.Timeout | undefined;
  /** Stands down when no renewal succeeded in time, whatever the requests in flight do. */
  let expiry: NodeJS.Timeout | undefined;

  let holding = false;
  const lose = (reason: string) => {
    clearTimeout(expiry);
    if (!holding) return;
    holding = false;
    lease.lose(reason);
    log.warn(
      { lease: lease.name, reason },
      "lease lost: this orgwatch stopped exporting spans and writing chain state",
    );
  };
  const renewedAt = (sentMs: number) => {
    lease.renewed(sentMs + validMs);
    clearTimeout(expiry);
    expiry = setTimeout(
      () => lose("no renewal succeeded in time"),
      Math.max(0, sentMs + validMs - Date.now()),
    );
    expiry.unref();
  };

  async function step(): Promise<void> {
    kv ??= await openBucket(nc, options);
    const sentMs = Date.now();
    if (holding) {
      try {
        revision = await kv.update(lease.name, value(), revision, validMs);
        // Sent too late to count (this process was paused): given up, whatever the update did.
        if (!lease.held) return lose("paused past the lease's renewal");
        renewedAt(sentMs);
      } catch (err) {
        lose(`renewal failed: ${(err as Error).message}`);
      }
      return;
    }
    if (retiring) return log.debug({ lease: lease.name }, "stopping: the lease is not taken");
    try {
      revision = await withTimeout(kv.create(lease.name, value()), validMs, "lease create");
    } catch {
      // Held by another (or NATS unreachable): who, for the log and the console.
      const entry = await withTimeout(kv.get(lease.name), validMs, "lease read").catch(() => null);
      const holder =
        entry && entry.operation === "PUT" ? (entry.json<{ holder?: string }>().holder ?? "?") : undefined;
      if (!entry || holder !== lease.self) {
        if (holder !== lease.holder)
          log.info({ lease: lease.name, holder: holder ?? null }, "lease held by another orgwatch");
        lease.seen(holder);
        return;
      }
      // This process's own last renewal, from before it lost the lease (NATS was away) or from
      // this replica before a restart: nobody else can hold it meanwhile, and this process does
      // not act on it, so it takes it back now rather than waiting out the TTL.
      try {
        revision = await withTimeout(kv.update(lease.name, value(), entry.revision), validMs, "lease update");
      } catch {
        return;
      }
    }
    if (stopped || retiring) {
      await kv.delete(lease.name, { previousSeq: revision }).catch(() => undefined);
      return;
    }
    holding = true;
    lease.acquire(sentMs + validMs);
    renewedAt(sentMs);
    log.info({ lease: lease.name, holder: lease.self, ttlMs: options.ttlMs }, "lease acquired");
  }

  const loop = () => {
    if (stopped) return;
    step()
      .catch((err: unknown) => {
        kv = undefined; // opened again on the next step
        lose(`lease bucket unavailable: ${(err as Error).message}`);
      })
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(loop, holding ? renewMs : tryMs);
        timer.unref();
      });
  };
  loop();

  return {
    retire() {
      retiring = true;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      const held = holding;
      lose("stopping");
      // Given up at once, so that the other takes over at its next try rather than after the TTL.
      if (held && kv)
        await withTimeout(kv.delete(lease.name, { previousSeq: revision }), 2000, "lease delete").catch(
          () => undefined,
        );
    },
  };
}
