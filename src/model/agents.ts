// Agents: who is alive and what they are doing (status subjects), and what happens in the
// organization (events). Written by sources/agent-status.ts and sources/org-events.ts.
// (Placeholder until issue #3 lands.)

export class AgentsModel {}
