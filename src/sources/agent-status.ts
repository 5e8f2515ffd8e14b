// Agents' status: a subscription to {prefix}.agents.*.status feeding model.agents.
// (Placeholder until issue #3 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startAgentStatus(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
