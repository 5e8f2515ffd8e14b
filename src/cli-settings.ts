// Turns the settings table into commander options, and a parsed command back into a Config.
import { Command, Option } from "commander";
import { loadConfig, type FlagValues } from "./config/load.js";
import { ConfigError, envName, SETTINGS, type Config, type Setting } from "./config/schema.js";

export const EXIT_CONFIG = 2;

/**
 * The simulator is an organization, not a watcher: besides its own settings it takes only the
 * connection, the subject prefix and logging.
 */
const SIMULATOR_SHARED_SETTINGS = /^(nats-|subject-prefix$|log\.)/;

/** `orgwatch deadletters`: the connection, where dead letters are, where replays are recorded, logging. */
const DEADLETTERS_SETTINGS =
  /^(nats-|context$|subject-prefix$|deadletter\.subject$|advisories\.storage$|own-streams\.replicas$|log\.)/;

export const COMMANDS = ["run", "demo", "check", "simulate", "deadletters"] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Whether `command` takes `setting` (also how the README's configuration reference lists it). */
export function usedBy(setting: Setting, command: CommandName): boolean {
  if (setting.commands) return setting.commands.includes(command);
  if (command === "simulate") return SIMULATOR_SHARED_SETTINGS.test(setting.key);
  if (command === "deadletters") return DEADLETTERS_SETTINGS.test(setting.key);
  // The demo runs a nats-server of its own.
  if (command === "demo") return !setting.key.startsWith("nats-");
  return true;
}

/** Adds --config and one flag per setting used by `command`. */
export function addSettingOptions(
  cmd: Command,
  command: CommandName,
  commandDefaults: FlagValues = {},
): Command {
  cmd.option("--config <file>", "YAML file of settings (keys as the flags, without dashes)");
  for (const setting of SETTINGS as readonly Setting[]) {
    if (!usedBy(setting, command)) continue;
    const envs = [envName(setting.key), ...(setting.aliasEnv ?? [])].join(", ");
    const fallback = commandDefaults[setting.key] ?? setting.default;
    const shown = fallback !== undefined && fallback !== "" ? ` (default ${String(fallback)})` : "";
    const flags = setting.type === "boolean" ? `--${setting.key} [bool]` : `--${setting.key} <value>`;
    const option = new Option(flags, `${setting.description}${shown}; env ${envs}`);
    if (setting.choices) option.choices(setting.choices);
    cmd.addOption(option);
  }
  return cmd;
}

/** The command's Config: flags > environment > --config file > defaults. Exits 2 on a bad value. */
export function configFromCommand(
  cmd: Command,
  env: NodeJS.ProcessEnv = process.env,
  commandDefaults: FlagValues = {},
): Config {
  const opts = cmd.opts<Record<string, string | boolean | undefined>>();
  const flags: FlagValues = {};
  for (const option of cmd.options) {
    const key = option.long?.replace(/^--/, "");
    if (!key || key === "config") continue;
    const value = opts[option.attributeName()];
    if (value !== undefined) flags[key] = value;
  }
  try {
    return loadConfig(
      flags,
      env,
      (opts["config"] as string | undefined) ?? env["ORGWATCH_CONFIG"],
      commandDefaults,
    );
  } catch (err) {
    if (err instanceof ConfigError) exitWithConfigError(err.message);
    throw err;
  }
}

export function exitWithConfigError(message: string): never {
  process.stderr.write(`orgwatch: ${message}\n`);
  process.exit(EXIT_CONFIG);
}
