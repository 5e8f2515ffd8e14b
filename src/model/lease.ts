// Whether this orgwatch holds the lease that makes its side effects the pair's: exporting spans and
// writing chain state (DESIGN.md §10). Written by the lease keeper (src/pair/lease.ts), read by the
// trace exporter, the chain store and the metrics. A single orgwatch holds it too.
import { EventEmitter } from "node:events";
import { hostname } from "node:os";

/** The lease over span export and chain state. */
export const CHAINS_LEASE = "chains";

/**
 * This process's id in a lease: its replica name, which the pair's operator keeps unique (a
 * StatefulSet's pod name), so that a replica restarted after a crash takes its own lease back at
 * once; unnamed, its host and process id (unnamed processes on one host stay apart).
 */
export function leaseHolderId(replica: string): string {
  return replica || `${hostname()}:${process.pid}`;
}

export interface LeaseEvents {
  /** This process now holds the lease (after the follower's reconciliation may run). */
  acquired: [];
  /** This process no longer holds it: it stopped acting before another could win it. */
  lost: [reason: string];
}

export class LeaseModel extends EventEmitter<LeaseEvents> {
  private holding = false;
  /**
   * Until when the last renewal counts. Read on every check, not only by the keeper's timer: a
   * process paused past it (SIGSTOP, a long stall) finds it has lost the lease before it acts.
   */
  private validUntilMs = 0;
  /** Who holds it, as last read (this process's own holder id when held). */
  holder: string | undefined;
  /** Times this process acquired the lease. */
  acquisitions = 0;

  constructor(
    /** The lease's key in the bucket (the metric's `lease` label). */
    readonly name: string,
    /** This process's id in the lease's value: the replica name (or host) and process id. */
    readonly self: string,
  ) {
    super();
  }

  /** Whether this process holds the lease now (and may act on it). */
  get held(): boolean {
    return this.holding && Date.now() < this.validUntilMs;
  }

  acquire(validUntilMs: number): void {
    this.validUntilMs = validUntilMs;
    if (this.holding) return;
    this.holding = true;
    this.holder = this.self;
    this.acquisitions++;
    this.emit("acquired");
  }

  /** A renewal succeeded: it counts until `validUntilMs`. */
  renewed(validUntilMs: number): void {
    this.validUntilMs = validUntilMs;
  }

  lose(reason: string): void {
    if (!this.holding) return;
    this.holding = false;
    this.validUntilMs = 0;
    this.holder = undefined;
    this.emit("lost", reason);
  }

  /** Someone else holds it (or nobody: undefined). */
  seen(holder: string | undefined): void {
    if (!this.holding) this.holder = holder;
  }
}
