// `orgwatch check`. (Placeholder until issue #9 lands.)
import { Command } from "commander";
import { addSettingOptions } from "../cli-settings.js";

export function checkCommand(): Command {
  const cmd = new Command("check").description(
    "check an organization's JetStream setup against the known pitfalls",
  );
  addSettingOptions(cmd, "check");
  cmd.action(() => {
    process.stderr.write("orgwatch check: not built yet\n");
    process.exitCode = 1;
  });
  return cmd;
}
