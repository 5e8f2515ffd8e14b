// A task as the task observer reads it off its stream, for tests that drive the task model
// directly: a cto task that joined its publisher's trace, so its link is decided at once (nothing
// to infer).
import type { TasksModel } from "../../src/model/tasks/index.js";

export function observeJoinedTask(
  tasks: TasksModel,
  taskId: string,
  streamSequence: number,
  storedMs: number,
): void {
  tasks.observePublished({
    message: {
      taskId,
      type: "work",
      parentTaskId: undefined,
      sla: { ackWithinSeconds: undefined, completeWithinMinutes: undefined },
      onCompletePublishTo: undefined,
    },
    traceparent: { traceId: "a".repeat(32), spanId: "b".repeat(16), sampled: true },
    subject: "genbrain.agents.cto.tasks",
    role: "cto",
    stream: "AGENT_CTO_TASKS",
    streamSequence,
    storedMs,
  });
}
