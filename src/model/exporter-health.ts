// orgwatch's own health: the connection, the polls, and the input it had to refuse.

export type InvalidSource = "status" | "event" | "task" | "advisory" | "ack_sample" | "deadletter";

export class ExporterHealth {
  natsConnected = false;
  natsReconnects = 0;
  /**
   * The latest time orgwatch was cut off from NATS (epoch ms; `toMs` undefined while it lasts).
   * What orgwatch could not hear then is not the agents' silence.
   */
  natsOutage: { readonly fromMs: number; toMs?: number } | undefined;
  pollsCompleted = 0;
  pollErrors = 0;
  /** Why the last failed poll failed (orgwatch check reports it). */
  lastPollError: string | undefined;
  lastPollDurationSeconds: number | undefined;
  lastPollSuccessMs: number | undefined;
  /** When the state last saved was taken from the model (chain state and lost work; epoch ms). */
  lastStateSavedMs: number | undefined;
  /** Counts by `${source}\u0000${reason}`; reasons are a fixed vocabulary chosen by the parser. */
  readonly invalidMessages = new Map<string, number>();
  /** Counts by metric name of label values refused by a LabelCap. */
  readonly labelOverflow = new Map<string, number>();

  countInvalid(source: InvalidSource, reason: string): void {
    const key = `${source}\u0000${reason}`;
    this.invalidMessages.set(key, (this.invalidMessages.get(key) ?? 0) + 1);
  }

  countOverflow(metric: string): void {
    this.labelOverflow.set(metric, (this.labelOverflow.get(metric) ?? 0) + 1);
  }

  /** Ready: connected to NATS and at least one poll completed. */
  get ready(): boolean {
    return this.natsConnected && this.pollsCompleted > 0;
  }
}
