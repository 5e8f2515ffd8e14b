// `orgwatch demo`. (Placeholder until issue #7 lands.)
import { Command } from "commander";
import { addSettingOptions } from "../cli-settings.js";

export function demoCommand(): Command {
  const cmd = new Command("demo").description(
    "run a local nats-server, a simulated organization and the daemon",
  );
  addSettingOptions(cmd, "demo");
  cmd.action(() => {
    process.stderr.write("orgwatch demo: not built yet\n");
    process.exitCode = 1;
  });
  return cmd;
}
