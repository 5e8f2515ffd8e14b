// The one model of the watched organization. Sources (src/sources/*) write into it; exporters
// (src/exporters/*) only read it or listen to its events. Each part lives in its own file.
import { ExporterHealth } from "./exporter-health.js";
import { JetStreamModel } from "./jetstream.js";

export class Organization {
  readonly health = new ExporterHealth();
  readonly jetstream = new JetStreamModel();

  constructor(readonly subjectPrefix: string) {}
}
