// Organization events: a subscription to {prefix}.org.events feeding model.agents (event counts) and model.tasks (completion signals).
// (Placeholder until issue #3 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startOrgEvents(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
