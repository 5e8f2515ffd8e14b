// JetStream advisories captured in orgwatch's own stream: dead-letter routing, naks, terms, sampled acks.
// (Placeholder until issue #4 lands.)
import type { RunningSource, SourceContext } from "./source.js";

export async function startAdvisories(_ctx: SourceContext): Promise<RunningSource> {
  return { stop: async () => undefined };
}
