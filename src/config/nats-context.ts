// `nats` CLI contexts (--context NAME, NATS_CONTEXT, or the one `nats context select` chose), read
// from where the CLI keeps them: $XDG_CONFIG_HOME/nats/context/NAME.json (XDG_CONFIG_HOME defaults
// to ~/.config) and context.txt for the selected one. A context gives connection settings only;
// anything set explicitly (flag, ORGWATCH_* or NATS_URL environment, YAML) wins over it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "./schema.js";

/** The context's fields orgwatch uses, as setting keys → values. */
export type ContextSettings = Partial<Record<string, string>>;

const FIELDS: Record<string, string> = {
  url: "nats-url",
  user: "nats-user",
  password: "nats-password",
  token: "nats-token",
  creds: "nats-creds",
  nkey: "nats-nkey",
  cert: "nats-tls-cert",
  key: "nats-tls-key",
  ca: "nats-tls-ca",
};
const PATHS = new Set(["creds", "nkey", "cert", "key", "ca"]);
const NAME = /^[A-Za-z0-9_.@-]{1,128}$/;

function configHome(env: NodeJS.ProcessEnv): string | undefined {
  if (env["XDG_CONFIG_HOME"]) return env["XDG_CONFIG_HOME"];
  return env["HOME"] ? join(env["HOME"], ".config") : undefined;
}

function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  return path.startsWith("~/") && env["HOME"] ? join(env["HOME"], path.slice(2)) : path;
}

/**
 * The settings of the named context, or of the selected one when none is named (none selected:
 * {}). Throws ConfigError for a named context that is missing or unreadable.
 */
export function readNatsContext(named: string | undefined, env: NodeJS.ProcessEnv): ContextSettings {
  const home = configHome(env);
  if (!home) {
    if (named)
      throw new ConfigError("--context", `cannot find nats context "${named}": no HOME or XDG_CONFIG_HOME`);
    return {};
  }
  const dir = join(home, "nats");
  let name = named;
  let source = "--context";
  if (!name) {
    try {
      name = readFileSync(join(dir, "context.txt"), "utf8").trim();
    } catch {
      return {};
    }
    if (name === "") return {};
    source = `the selected nats context (${join(dir, "context.txt")})`;
  }
  if (!NAME.test(name)) throw new ConfigError(source, `"${name}" is not a nats context name`);
  const file = join(dir, "context", `${name}.json`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(
      source,
      `nats context "${name}" not found (${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}); \`nats context ls\` lists them`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ConfigError(source, `nats context "${name}" (${file}) is not valid JSON`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc))
    throw new ConfigError(source, `nats context "${name}" (${file}) is not a JSON object`);
  const out: ContextSettings = {};
  for (const [field, setting] of Object.entries(FIELDS)) {
    const v = (doc as Record<string, unknown>)[field];
    if (v === undefined || v === null || v === "") continue;
    if (typeof v !== "string")
      throw new ConfigError(source, `nats context "${name}": "${field}" must be a string`);
    out[setting] = PATHS.has(field) ? expandHome(v, env) : v;
  }
  return out;
}
