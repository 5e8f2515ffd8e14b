// Broadcast acknowledgements: after each poll, the stored times of the broadcasts each agent's ack floor passed.
// (Placeholder until issue #3 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startBroadcastAcks(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
