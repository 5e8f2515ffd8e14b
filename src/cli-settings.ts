// Turns the settings table into commander options, and a parsed command back into a Config.
import { Command, Option } from "commander";
import { loadConfig, type FlagValues } from "./config/load.js";
import { ConfigError, envName, SETTINGS, type Config, type Setting } from "./config/schema.js";

export const EXIT_CONFIG = 2;

/** Adds --config and one flag per setting used by `command`. */
export function addSettingOptions(cmd: Command, command: "run" | "demo" | "check"): Command {
  cmd.option("--config <file>", "YAML file of settings (keys as the flags, without dashes)");
  for (const setting of SETTINGS as readonly Setting[]) {
    if (setting.commands && !setting.commands.includes(command)) continue;
    const envs = [envName(setting.key), ...(setting.aliasEnv ?? [])].join(", ");
    const shown =
      setting.default !== undefined && setting.default !== "" ? ` (default ${setting.default})` : "";
    const flags = setting.type === "boolean" ? `--${setting.key} [bool]` : `--${setting.key} <value>`;
    const option = new Option(flags, `${setting.description}${shown}; env ${envs}`);
    if (setting.choices) option.choices(setting.choices);
    cmd.addOption(option);
  }
  return cmd;
}

/** The command's Config: flags > environment > --config file > defaults. Exits 2 on a bad value. */
export function configFromCommand(cmd: Command, env: NodeJS.ProcessEnv = process.env): Config {
  const opts = cmd.opts<Record<string, string | boolean | undefined>>();
  const flags: FlagValues = {};
  for (const option of cmd.options) {
    const key = option.long?.replace(/^--/, "");
    if (!key || key === "config") continue;
    const value = opts[option.attributeName()];
    if (value !== undefined) flags[key] = value;
  }
  try {
    return loadConfig(flags, env, (opts["config"] as string | undefined) ?? env["ORGWATCH_CONFIG"]);
  } catch (err) {
    if (err instanceof ConfigError) exitWithConfigError(err.message);
    throw err;
  }
}

export function exitWithConfigError(message: string): never {
  process.stderr.write(`orgwatch: ${message}\n`);
  process.exit(EXIT_CONFIG);
}
