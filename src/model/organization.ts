// The one model of the watched organization. Sources (src/sources/*) write into it; exporters
// (src/exporters/*) only read it or listen to its events. Each part lives in its own file.
import type { Config } from "../config/schema.js";
import { AgentsModel } from "./agents.js";
import { BroadcastsModel } from "./broadcasts.js";
import { DeadLettersModel } from "./deadletters.js";
import { ExporterHealth } from "./exporter-health.js";
import { FindingsModel } from "./findings.js";
import { JetStreamModel } from "./jetstream.js";
import { TasksModel } from "./tasks.js";

export class Organization {
  readonly health = new ExporterHealth();
  readonly jetstream = new JetStreamModel();
  readonly agents: AgentsModel;
  readonly broadcasts = new BroadcastsModel();
  readonly deadLetters = new DeadLettersModel();
  readonly tasks: TasksModel;
  readonly findings = new FindingsModel();

  constructor(readonly config: Config) {
    this.agents = new AgentsModel(config.roles, this.jetstream);
    this.tasks = new TasksModel(
      {
        inferWindowMs: config["chains.infer-window"],
        taskTimeoutMs: config["chains.task-timeout"],
        retentionMs: config["chains.retention"],
        maxTasks: config["chains.max-tasks"],
      },
      this.jetstream,
    );
  }
}
