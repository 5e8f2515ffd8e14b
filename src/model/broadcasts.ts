// Broadcast acknowledgements per agent, derived from the broadcasts stream's consumers.
// (Placeholder until issue #3 lands.)

export class BroadcastsModel {}
