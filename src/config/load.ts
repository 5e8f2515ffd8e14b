import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { createExportFilter, ExportFilterError, type ExportFilter } from "../logic/export-filter.js";
import { readNatsContext } from "./nats-context.js";
import { ConfigError, envName, parseSettingValue, SETTINGS, type Config, type Setting } from "./schema.js";

/** Raw string values by setting key, as given on the command line. */
export type FlagValues = Partial<Record<string, string | boolean>>;

const yamlValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number()]))]);
const yamlFile = z.record(z.string(), z.union([yamlValue, z.record(z.string(), z.unknown()), z.null()]));

/** Flattens nested YAML maps into dotted keys: {web: {listen-address: x}} → "web.listen-address". */
function flatten(obj: Record<string, unknown>, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, key));
    else out[key] = v;
  }
  return out;
}

function readConfigFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      "--config",
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError("--config", `${path} is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const parsed = yamlFile.safeParse(doc);
  if (!parsed.success) throw new ConfigError("--config", `${path} must be a map of settings to values`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(flatten(parsed.data))) {
    if (!SETTINGS.some((s) => s.key === key)) throw new ConfigError(`${key} (in ${path})`, "unknown setting");
    if (value === null || value === undefined) continue;
    out[key] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return out;
}

/**
 * Precedence: flags > ORGWATCH_* environment (and aliases such as NATS_URL) > YAML file > the nats
 * CLI context (config/nats-context.ts) > defaults.
 * `commandDefaults` replace the table's defaults for one command (the demo polls every 2 s).
 * Throws ConfigError naming the offending setting; the CLI turns that into one line and exit code 2.
 */
export function loadConfig(
  flags: FlagValues,
  env: NodeJS.ProcessEnv = process.env,
  configFile?: string,
  commandDefaults: FlagValues = {},
): Config {
  const file = configFile ? readConfigFile(configFile) : {};
  // The context layer sits between the YAML file and the defaults: explicit settings win over it.
  const contextSetting = SETTINGS.find((s) => s.key === "context")!;
  const named =
    (flags["context"] as string | undefined) ??
    [envName("context"), ...(contextSetting.aliasEnv ?? [])]
      .map((k) => env[k])
      .find((v) => v !== undefined) ??
    file["context"];
  const context = readNatsContext(named || undefined, env);
  const out: Record<string, unknown> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    const flag = flags[setting.key];
    const envKey = [envName(setting.key), ...(setting.aliasEnv ?? [])].find((k) => env[k] !== undefined);
    let raw: string | undefined;
    let source: string;
    if (flag !== undefined) {
      raw = flag === true ? "true" : String(flag);
      source = `--${setting.key}`;
    } else if (envKey !== undefined) {
      raw = env[envKey];
      source = envKey;
    } else if (file[setting.key] !== undefined) {
      raw = file[setting.key];
      source = `${setting.key} (in ${configFile})`;
    } else if (context[setting.key] !== undefined) {
      raw = context[setting.key];
      source = `${setting.key} (from nats context ${named ?? "selected"})`;
    } else {
      const commandDefault = commandDefaults[setting.key];
      raw = commandDefault === undefined ? setting.default : String(commandDefault);
      source = `--${setting.key}`;
    }
    out[setting.key] = raw === undefined ? undefined : parseSettingValue(setting, raw, source);
  }
  const config = out as Config;
  validate(config);
  return config;
}

/** Defaults only, with overrides: what tests and the demo start from. */
export function configWith(overrides: Partial<Record<keyof Config, unknown>>): Config {
  const config = { ...loadConfig({}, {}), ...overrides } as Config;
  validate(config);
  return config;
}

function validate(c: Config): void {
  if (c["nats-url"].length === 0) throw new ConfigError("--nats-url", "no server URL given");
  for (const url of c["nats-url"]) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+:\d+$/.test(url)) {
      throw new ConfigError("--nats-url", `"${url}" is not a NATS URL (nats://host:port)`);
    }
  }
  if ((c["nats-tls-cert"] === undefined) !== (c["nats-tls-key"] === undefined)) {
    throw new ConfigError(
      "--nats-tls-cert",
      "a client certificate needs its key (--nats-tls-key), and the other way round",
    );
  }
  if (c["nats-password"] !== undefined && c["nats-user"] === undefined) {
    throw new ConfigError("--nats-password", "a password needs a user (--nats-user)");
  }
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(c["subject-prefix"])) {
    throw new ConfigError(
      "--subject-prefix",
      `"${c["subject-prefix"]}" is not a subject prefix (tokens of letters, digits, _ and -)`,
    );
  }
  if (c["poll-interval"] < 10) throw new ConfigError("--poll-interval", "must be at least 10ms");
  if (c["poll-concurrency"] < 1) throw new ConfigError("--poll-concurrency", "must be at least 1");
  if (c["consumer.status-window"] < 2)
    throw new ConfigError("--consumer.status-window", "must be at least 2 polls");
  if (c["labels.max-values"] < 1) throw new ConfigError("--labels.max-values", "must be at least 1");
  if (c["own-streams.replicas"] < 1 || c["own-streams.replicas"] > 5)
    throw new ConfigError("--own-streams.replicas", "must be between 1 and 5 (JetStream's limit)");
  if (c["pair.replica"] !== "" && !/^[A-Za-z0-9_-]{1,64}$/.test(c["pair.replica"]))
    throw new ConfigError(
      "--pair.replica",
      "letters, digits, - and _ only (it names a NATS consumer), 1-64 of them",
    );
  if (c["pair.replica"] !== "" && c["advisories.retention"] === "workqueue")
    throw new ConfigError(
      "--pair.replica",
      "a named replica reads advisories through a consumer of its own, which a workqueue advisory stream refuses; use --advisories.retention limits",
    );
  if (c["pair.lease-ttl"] < 1000) throw new ConfigError("--pair.lease-ttl", "must be at least 1s");
  const heapGrowth = c["memory.heap-growth"];
  if (heapGrowth !== 0 && (heapGrowth < 10 || heapGrowth > 300))
    throw new ConfigError("--memory.heap-growth", "must be 0 (V8's own) or between 10 and 300 percent");
  if (c.pace < 1 || c.pace > 6000) throw new ConfigError("--pace", "must be between 1 and 6000");
  try {
    exportFilterOf(c);
  } catch (err) {
    if (!(err instanceof ExportFilterError)) throw err;
    const flag = `--metrics.${err.setting.replace(/[A-Z]/, (ch) => "-" + ch.toLowerCase())}`;
    throw new ConfigError(flag, `not a regular expression: ${err.message}`);
  }
  if (c.agents < 3 || c.agents > 10_000) throw new ConfigError("--agents", "must be between 3 and 10000");
  try {
    const re = new RegExp(c["broadcast.role-pattern"]);
    if (!/\((?!\?)/.test(re.source)) throw new Error("it needs a capture group for the role");
  } catch (err) {
    throw new ConfigError("--broadcast.role-pattern", (err as Error).message);
  }
  parseListenAddress(c["web.listen-address"]);
  if (!c["web.telemetry-path"].startsWith("/"))
    throw new ConfigError("--web.telemetry-path", "must start with /");
  const external = c["web.external-url"];
  if (external !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(external))
    throw new ConfigError("--web.external-url", `"${external}" is not an http(s) URL`);
  const traceUrl = c["web.trace-url"];
  if (traceUrl !== undefined && (!/^https?:\/\/\S+$/.test(traceUrl) || !traceUrl.includes("{trace_id}")))
    throw new ConfigError(
      "--web.trace-url",
      `"${traceUrl}" is not an http(s) URL with {trace_id} in it (e.g. http://jaeger:16686/trace/{trace_id})`,
    );
}

/** ":7786" → all interfaces; "127.0.0.1:0" → an ephemeral port (tests). */
export function parseListenAddress(address: string): { host: string | undefined; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError(
      "--web.listen-address",
      `"${address}" is not host:port (for example :7786 or 127.0.0.1:7786)`,
    );
  }
  const host = m[1]!.replace(/^\[|\]$/g, "");
  return { host: host === "" ? undefined : host, port };
}

/** The export filter the settings describe (checked by validate: a bad pattern is a ConfigError). */
export function exportFilterOf(c: Config): ExportFilter {
  return createExportFilter({
    familiesAllow: c["metrics.families-allow"],
    familiesDeny: c["metrics.families-deny"],
    streamsAllow: c["metrics.streams-allow"],
    streamsDeny: c["metrics.streams-deny"],
    consumersAllow: c["metrics.consumers-allow"],
    consumersDeny: c["metrics.consumers-deny"],
  });
}
