// Setup findings (orgwatch check) re-evaluated after each poll and kept in the model.
// (Placeholder until issue #9 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startFindings(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
