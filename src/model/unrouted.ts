// Work published into the void: messages on {prefix}.agents.{role}.tasks|inbox that no stream
// stores (core NATS drops them, and nothing on the server counts them). Written by
// sources/unrouted.ts; read by exporters/metrics/lost-work.ts.

export interface UnroutedCount {
  readonly role: string;
  readonly kind: string;
  count: number;
}

export class UnroutedModel {
  private readonly counts = new Map<string, UnroutedCount>();

  count(role: string, kind: string): void {
    const key = `${role}\u0000${kind}`;
    let entry = this.counts.get(key);
    if (!entry) this.counts.set(key, (entry = { role, kind, count: 0 }));
    entry.count++;
  }

  all(): IterableIterator<UnroutedCount> {
    return this.counts.values();
  }
}
