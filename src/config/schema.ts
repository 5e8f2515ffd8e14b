// The one table of settings. Command-line flags, ORGWATCH_* environment variables, YAML keys and the
// README's configuration reference are all generated from it, so they can never drift apart.
import { parseDuration } from "./duration.js";

export type SettingType = "string" | "duration" | "boolean" | "integer" | "list" | "enum";

export interface Setting {
  /** The flag without its dashes; also the YAML key (flat, or nested by its dots). */
  readonly key: string;
  readonly type: SettingType;
  readonly description: string;
  /** Defaults match the reference topology. `undefined` means "not set". */
  readonly default?: string;
  readonly choices?: readonly string[];
  /** Extra environment variables honoured besides ORGWATCH_* (for example NATS_URL). */
  readonly aliasEnv?: readonly string[];
  /** Secrets are never logged or shown in /. */
  readonly secret?: boolean;
  /** Which commands use it; run, demo and check when absent (see addSettingOptions for simulate). */
  readonly commands?: readonly ("run" | "demo" | "check" | "simulate" | "deadletters")[];
}

export const SETTINGS = [
  // NATS connection
  {
    key: "nats-url",
    type: "list",
    description: "NATS server URL(s), comma-separated for a cluster",
    default: "nats://127.0.0.1:4222",
    aliasEnv: ["NATS_URL"],
  },
  {
    key: "context",
    type: "string",
    description:
      "a `nats` CLI context to connect with (its URL, credentials, TLS); the selected one (`nats context select`) when not given; explicit NATS settings win over it",
    aliasEnv: ["NATS_CONTEXT"],
  },
  { key: "nats-creds", type: "string", description: "NATS credentials file (JWT + nkey seed)" },
  { key: "nats-user", type: "string", description: "NATS user name" },
  { key: "nats-password", type: "string", description: "NATS password", secret: true },
  { key: "nats-token", type: "string", description: "NATS authentication token", secret: true },
  { key: "nats-nkey", type: "string", description: "file holding the NATS nkey seed (SU...)" },
  { key: "nats-tls-ca", type: "string", description: "CA certificate file for TLS to NATS" },
  { key: "nats-tls-cert", type: "string", description: "client certificate file for TLS to NATS" },
  { key: "nats-tls-key", type: "string", description: "client key file for TLS to NATS" },

  // The organization
  {
    key: "subject-prefix",
    type: "string",
    description: "subject prefix of the organization",
    default: "genbrain",
  },
  {
    key: "roles",
    type: "list",
    description: "roles expected in the organization, comma-separated (others are discovered)",
    default: "",
  },
  {
    key: "broadcast.role-pattern",
    type: "string",
    description: "regular expression whose first group takes the role from a broadcast consumer's name",
    default: "^([^-_.]+)",
  },

  // Polling
  { key: "poll-interval", type: "duration", description: "how often JetStream is polled", default: "15s" },
  {
    key: "poll-concurrency",
    type: "integer",
    description: "JetStream API requests in flight at once during a poll",
    default: "32",
  },
  {
    key: "consumer.status-window",
    type: "integer",
    description:
      "polls in the window over which a consumer's status (ok|lagging|stalled|stopped) is evaluated",
    default: "10",
  },

  // Agents and events
  {
    key: "agent.stale-after",
    type: "duration",
    description: "an agent with no status for this long is down",
    default: "2m",
  },
  {
    key: "labels.max-values",
    type: "integer",
    description:
      "distinct values kept per label taken from message contents (event types, roles); the rest count as overflow",
    default: "50",
  },

  // Choosing what /metrics exports (kube-state-metrics' allow and deny lists): regular expressions
  // matching a whole name; a deny wins over an allow.
  {
    key: "metrics.families-allow",
    type: "string",
    description:
      "export only the metric families whose name matches this regex (e.g. orgwatch_consumer_(lag|status).*)",
    commands: ["run", "demo"],
  },
  {
    key: "metrics.families-deny",
    type: "string",
    description: "do not export the metric families whose name matches this regex",
    commands: ["run", "demo"],
  },
  {
    key: "metrics.streams-allow",
    type: "string",
    description: "export stream and consumer series only for the streams whose name matches this regex",
    commands: ["run", "demo"],
  },
  {
    key: "metrics.streams-deny",
    type: "string",
    description: "export no stream or consumer series for the streams whose name matches this regex",
    commands: ["run", "demo"],
  },
  {
    key: "metrics.consumers-allow",
    type: "string",
    description: "export consumer series only for the consumers whose STREAM/consumer matches this regex",
    commands: ["run", "demo"],
  },
  {
    key: "metrics.consumers-deny",
    type: "string",
    description: "export no consumer series for the consumers whose STREAM/consumer matches this regex",
    commands: ["run", "demo"],
  },

  // Dead letters and advisories
  {
    key: "unrouted.subscribe",
    type: "boolean",
    description:
      "subscribe to {prefix}.agents.*.tasks and .inbox to count messages no stream stores (a publisher's js.publish to such a subject then times out instead of failing at once with no responders; see docs/lost-work.md)",
    default: "true",
  },
  {
    key: "lost.api-audit",
    type: "boolean",
    description:
      "listen to JetStream API audit advisories to tell purges and deletes apart exactly (the server then sends orgwatch one advisory per API call)",
    default: "true",
  },
  {
    key: "backpressure.window",
    type: "duration",
    description:
      "acknowledgements per consumer are measured over this window for the ack rate and drain time (shorter while less history exists)",
    default: "1h",
  },
  {
    key: "backpressure.max-eta",
    type: "duration",
    description:
      "a drain time over this is a backlog too long (admission defers; the shipped OrgwatchBacklogTooLong uses 4h)",
    default: "4h",
  },
  {
    key: "admission.max-lag",
    type: "integer",
    description:
      "admission defers new tasks for a role whose lag would exceed this (the reference's rule: 5)",
    default: "5",
  },
  {
    key: "deadletter.route",
    type: "boolean",
    description: "copy messages that exhausted max-deliver to the dead-letter subject",
    default: "true",
  },
  {
    key: "deadletter.subject",
    type: "string",
    description: "dead-letter subject (default {prefix}.org.deadletter)",
  },
  {
    key: "advisories.stream",
    type: "string",
    description: "orgwatch's own stream capturing JetStream advisories",
    default: "ORGWATCH_ADVISORIES",
  },
  {
    key: "advisories.max-age",
    type: "duration",
    description: "how long captured advisories are kept",
    default: "72h",
  },
  {
    key: "advisories.storage",
    type: "enum",
    choices: ["file", "memory"],
    description: "storage of the advisory stream",
    default: "file",
  },
  {
    key: "advisories.retention",
    type: "enum",
    choices: ["limits", "workqueue"],
    description:
      "retention of the advisory stream: limits keeps advisories for max-age (others may read them too), workqueue drops each once orgwatch handled it",
    default: "limits",
  },
  {
    key: "advisories.ack-wait",
    type: "duration",
    description:
      "how long an advisory being handled by an orgwatch that died stays unavailable before the next orgwatch handles it",
    default: "30s",
  },
  {
    key: "advisories.ack-samples",
    type: "enum",
    choices: ["subscribe", "capture", "off"],
    description:
      "sampled acks ($JS.EVENT.METRIC.CONSUMER.ACK.>) for orgwatch_task_processing_seconds: a plain subscription (high volume, loss acceptable), captured in the advisory stream (none lost while orgwatch is down), or not read",
    default: "subscribe",
  },
  {
    key: "own-streams.replicas",
    type: "integer",
    description:
      "replicas (1-5) of the stream and KV buckets orgwatch creates for itself (advisory stream, dead-letter ledger, chain state); set 3 in a 3-node cluster, or losing one node stops dead-letter routing. Applied when they are created",
    default: "1",
  },

  // A pair
  {
    key: "pair.replica",
    type: "string",
    description:
      "this orgwatch's name in a replica pair (e.g. its pod's name in a StatefulSet), unique in the pair: it takes part in the lease (only the holder exports spans and writes chain state) and gets an advisory consumer of its own; empty: this orgwatch acts alone (it holds no lease and exports everything)",
    default: "",
  },
  {
    key: "pair.lease-ttl",
    type: "duration",
    description:
      "TTL of the lease (KV bucket orgwatch_leases) whose holder exports spans and writes chain state: renewed every ttl/4, given up when not renewed for ttl/2; it moves to the other replica within about a TTL of the holder's death. Applied when the bucket is created",
    default: "10s",
  },

  // Tasks and chains
  {
    key: "chains.infer-window",
    type: "duration",
    description:
      "a task published to a completed parent's on_complete.publish_to within this window is its inferred child",
    default: "5m",
  },
  {
    key: "chains.next-window",
    type: "duration",
    description:
      "a completed task whose on_complete names a next step, and no task arrives on that subject within this window: a broken chain link (next_missing)",
    default: "10m",
  },
  {
    key: "chains.task-timeout",
    type: "duration",
    description: "a task still open after this long is exported as timed out",
    default: "24h",
  },
  {
    key: "chains.retention",
    type: "duration",
    description:
      "how long ended tasks are remembered for linking their follow-ups (in memory and in orgwatch's KV bucket)",
    default: "72h",
  },
  {
    key: "chains.max-tasks",
    type: "integer",
    description:
      "tasks remembered at most (about 1.5 kB each); beyond it the oldest ended ones are forgotten first",
    default: "50000",
  },
  {
    key: "chains.kv-bucket",
    type: "string",
    description:
      "orgwatch's own NATS KV bucket holding chain state across restarts (must start with orgwatch; empty: not persisted)",
    default: "orgwatch_chains",
  },

  // HTTP
  { key: "web.listen-address", type: "string", description: "address of the HTTP server", default: ":7786" },
  {
    key: "web.telemetry-path",
    type: "string",
    description: "path of the metrics endpoint",
    default: "/metrics",
  },
  {
    key: "web.config.file",
    type: "string",
    description: "TLS and basic-auth configuration (Prometheus exporter-toolkit format)",
  },
  {
    key: "web.enable-admin-api",
    type: "boolean",
    description:
      "allow the console's write actions (replaying a dead letter); needs the web config's authentication unless --web.admin-api.allow-unauthenticated",
    default: "false",
    commands: ["run", "demo"],
  },
  {
    key: "web.admin-api.allow-unauthenticated",
    type: "boolean",
    description:
      "allow the write actions with no authentication in front of them (a local machine only; said at start)",
    default: "false",
    commands: ["run", "demo"],
  },
  {
    key: "web.external-url",
    type: "string",
    description:
      "the URL people reach orgwatch at (behind a proxy): links in the console and its API start with it",
    commands: ["run", "demo"],
  },
  {
    key: "web.trace-url",
    type: "string",
    description:
      "link template for a trace, e.g. http://jaeger:16686/trace/{trace_id}: the console links dead letters and tasks to it",
    commands: ["run", "demo"],
  },

  // Logging
  {
    key: "log.level",
    type: "enum",
    choices: ["trace", "debug", "info", "warn", "error"],
    description: "log level",
    default: "info",
  },
  {
    key: "log.format",
    type: "enum",
    choices: ["json", "pretty"],
    description: "log format",
    default: "json",
  },

  // The process's memory
  {
    key: "memory.heap-growth",
    type: "integer",
    description:
      "how far (percent) V8 lets the old generation grow past what it holds before collecting it; 0 = V8's own factor, which lets a 10,000-consumer daemon peak ~80 MB higher. Between 10 and 300, or 0",
    default: "50",
    commands: ["run", "demo"],
  },

  // orgwatch check
  {
    key: "expected-work",
    type: "duration",
    description: "how long an agent's task takes at most; ack waits shorter than this are findings",
    default: "20m",
  },
  {
    key: "check.drain-time",
    type: "duration",
    description:
      "a consumer whose backlog would take longer than this to work off at its observed ack rate is a finding (backpressure)",
    default: "4h",
  },
  {
    key: "check.rate-interval",
    type: "duration",
    description:
      "poll twice this far apart to observe ack rates for the backlog check (0s: one poll, rates unobserved)",
    default: "0s",
    commands: ["check"],
  },
  {
    key: "strict",
    type: "boolean",
    description: "exit 1 when there are warnings (errors always exit 2)",
    default: "false",
    commands: ["check"],
  },
  {
    key: "format",
    type: "enum",
    choices: ["text", "json"],
    description: "output: a table (coloured on a terminal) or JSON for CI",
    default: "text",
    commands: ["check"],
  },

  // The simulated organization (orgwatch demo, orgwatch simulate)
  {
    key: "pace",
    type: "integer",
    description:
      "speed-up of the simulated organization over real time (its agents reason for up to 20 minutes; at 200 that is 6 s)",
    default: "200",
    commands: ["demo", "simulate"],
  },
  {
    key: "stack",
    type: "boolean",
    description:
      "also start Prometheus (the shipped rules on the demo's clock) and Alertmanager (the shipped routes, notifications printed here) when they are installed",
    default: "false",
    commands: ["demo"],
  },
  {
    key: "agents",
    type: "integer",
    description:
      "number of simulated agents: the story's six (ceo, cto, security, marketing, devops, finance), then steady analysts",
    default: "6",
    commands: ["demo", "simulate"],
  },
  {
    key: "seed",
    type: "integer",
    description: "seed of the simulated organization: the same seed gives the same tasks in every stream",
    default: "1",
    commands: ["demo", "simulate"],
  },
] as const satisfies readonly Setting[];

export type SettingKey = (typeof SETTINGS)[number]["key"];

type ValueOf<T extends SettingType> = T extends "duration" | "integer"
  ? number
  : T extends "boolean"
    ? boolean
    : T extends "list"
      ? string[]
      : string;

type SettingByKey<K extends SettingKey> = Extract<(typeof SETTINGS)[number], { key: K }>;
type HasDefault<K extends SettingKey> = SettingByKey<K> extends { default: string } ? true : false;

/** Parsed configuration: durations in milliseconds, lists as arrays. */
type SettingValue<K extends SettingKey> =
  SettingByKey<K> extends { choices: readonly (infer C)[] } ? C : ValueOf<SettingByKey<K>["type"]>;
export type Config = {
  readonly [K in SettingKey]: HasDefault<K> extends true ? SettingValue<K> : SettingValue<K> | undefined;
};

export function envName(key: string): string {
  return "ORGWATCH_" + key.replace(/[.-]/g, "_").toUpperCase();
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    problem: string,
  ) {
    super(`invalid setting ${setting}: ${problem}`);
    this.name = "ConfigError";
  }
}

/** Converts one raw string value of a setting; throws ConfigError naming the setting. */
export function parseSettingValue(setting: Setting, raw: string, where: string): unknown {
  switch (setting.type) {
    case "string":
      return raw;
    case "list":
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
    case "duration": {
      const ms = parseDuration(raw);
      if (ms === undefined)
        throw new ConfigError(where, `"${raw}" is not a duration (use forms like 500ms, 15s, 30m, 1h30m)`);
      return ms;
    }
    case "integer": {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(where, `"${raw}" is not a whole number`);
      return Number.parseInt(raw, 10);
    }
    case "boolean": {
      const v = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(v)) return true;
      if (["false", "0", "no", "off"].includes(v)) return false;
      throw new ConfigError(where, `"${raw}" is not true or false`);
    }
    case "enum": {
      if (!setting.choices?.includes(raw)) {
        throw new ConfigError(where, `"${raw}" is not one of ${setting.choices?.join(", ")}`);
      }
      return raw;
    }
  }
}
