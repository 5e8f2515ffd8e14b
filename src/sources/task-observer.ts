// Task observation: every message on the task subjects, read by orgwatch's own ordered consumers.
// (Placeholder until issue #5 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startTaskObserver(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
