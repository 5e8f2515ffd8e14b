// Setup findings (orgwatch check), re-evaluated by the daemon after each poll.
// (Placeholder until issue #9 lands.)

export class FindingsModel {}
