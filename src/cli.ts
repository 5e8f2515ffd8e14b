#!/usr/bin/env node
// orgwatch's command line: `orgwatch` / `orgwatch run` (the daemon), `orgwatch demo`, `orgwatch check`,
// `orgwatch deadletters`.
import { Command, CommanderError } from "commander";
import { addSettingOptions, configFromCommand, EXIT_CONFIG, exitWithConfigError } from "./cli-settings.js";
import { ConfigError } from "./config/schema.js";
import { startDaemon } from "./daemon.js";
import { demoCommand, simulateCommand } from "./demo/command.js";
import { checkCommand } from "./check/command.js";
import { deadLettersCommand } from "./deadletters/command.js";
import { VERSION } from "./version.js";
import { createLogger } from "./log.js";
import { onShutdownSignal } from "./shutdown.js";

/** Commander's errors as one `orgwatch: ...` line, like every other error orgwatch prints. */
const ERROR_OUTPUT = {
  outputError: (str: string, write: (str: string) => void) =>
    write(`orgwatch: ${str.replace(/^error: /, "")}`),
};

function runCommand(): Command {
  const cmd = new Command("run").description("run the daemon (the default command)");
  addSettingOptions(cmd, "run");
  cmd.action(async () => {
    const config = configFromCommand(cmd);
    const log = createLogger(config["log.level"], config["log.format"]);
    const daemon = await startDaemon(config, { log });
    log.info({ url: daemon.url }, "orgwatch started");
    onShutdownSignal(() => daemon.stop());
  });
  return cmd;
}

const program = new Command("orgwatch")
  .description("Watches an organization of AI agents on NATS JetStream: metrics, traces, alerts.")
  .version(VERSION, "-V, --version")
  .exitOverride()
  .configureOutput(ERROR_OUTPUT);
program.addCommand(runCommand(), { isDefault: true });
program.addCommand(demoCommand());
program.addCommand(simulateCommand());
program.addCommand(checkCommand());
program.addCommand(deadLettersCommand());
for (const cmd of [...program.commands, ...program.commands.flatMap((c) => c.commands)]) {
  cmd.exitOverride();
  cmd.configureOutput(ERROR_OUTPUT);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; a wrong flag or value is a configuration error.
    process.exit(err.exitCode === 0 ? 0 : EXIT_CONFIG);
  }
  // Settings read only when the daemon starts (e.g. --web.config.file) are configuration errors too.
  if (err instanceof ConfigError) exitWithConfigError(err.message);
  process.stderr.write(`orgwatch: ${(err as Error).message}\n`);
  process.exit(1);
}
