// Dead letters, naks, terminations and sampled acks per consumer, from JetStream advisories.
// (Placeholder until issue #4 lands.)

export class DeadLettersModel {}
