// Broadcast acknowledgements per agent, derived from the broadcasts stream's consumers.
// (Placeholder until issue #3 lands.)

import type { StreamMessageRef } from "./tasks.js";

export class BroadcastsModel {
  /**
   * A sampled ack of any message (sources/advisories.ts calls this for every ack sample; samples
   * not on a broadcasts stream are ignored here). Gives exact publish → ack times where sampling is on.
   */
  recordAck(_ref: StreamMessageRef): void {}
}
