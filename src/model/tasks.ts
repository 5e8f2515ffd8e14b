// Tasks and on_complete chains: every task seen on a tasks subject, its lifecycle, its links.
// Other sources report what they learn about a task through the methods below; the task model
// (issue #5) decides what it means for the task, its span and its chain.
// (Placeholder bodies until issue #5 lands; the signatures are the contract the other sources use.)

export interface CompletionSignal {
  readonly taskId: string;
  readonly outcome: "completed" | "failed";
  /** Epoch ms (the event's ts when given, else arrival). */
  readonly atMs: number;
  readonly role?: string;
}

export interface StreamMessageRef {
  readonly stream: string;
  readonly streamSequence: number;
  readonly consumer: string;
  /** How many times it was delivered (when known). */
  readonly deliveries?: number;
  readonly atMs: number;
}

export class TasksModel {
  /** A `task.completed` / `task.failed` event with a task_id (sources/org-events.ts). */
  recordCompletionSignal(_signal: CompletionSignal): void {}

  /** A sampled ack ($JS.EVENT.METRIC.CONSUMER.ACK) of a message: the task was acknowledged. */
  recordAck(_ref: StreamMessageRef): void {}

  /** A nak advisory for a message. */
  recordNak(_ref: StreamMessageRef): void {}

  /** The message exhausted max-deliver (or was terminated) and went to the dead letters. */
  recordDeadLetter(_ref: StreamMessageRef): void {}
}
