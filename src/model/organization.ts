// The one model of the watched organization. Sources (src/sources/*) write into it; exporters
// (src/exporters/*) only read it or listen to its events. Each part lives in its own file.
import type { Config } from "../config/schema.js";
import { AdmissionsModel } from "./admissions.js";
import { AgentsModel } from "./agents.js";
import { BroadcastsModel } from "./broadcasts.js";
import { DeadLettersModel } from "./deadletters.js";
import { ExporterHealth } from "./exporter-health.js";
import { FindingsModel } from "./findings.js";
import { JetStreamModel } from "./jetstream.js";
import { LostWorkModel } from "./lost-work.js";
import { TasksModel } from "./tasks/index.js";
import { UnroutedModel } from "./unrouted.js";
import { UsageModel } from "./usage.js";

export class Organization {
  readonly health = new ExporterHealth();
  readonly jetstream = new JetStreamModel();
  /** Listens to polls before the task model: it names the lost tasks the task model then ends. */
  readonly lostWork = new LostWorkModel();
  readonly unrouted = new UnroutedModel();
  readonly admissions = new AdmissionsModel();
  readonly usage = new UsageModel();
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
        nextWindowMs: config["chains.next-window"],
      },
      this.jetstream,
    );
    this.lostWork.attachTasks(this.tasks);
    this.jetstream.prependListener("polled", (result) => this.lostWork.applyPoll(result));
  }
}
