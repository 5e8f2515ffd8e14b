// What /metrics exports, chosen by the user (DESIGN.md §6, second release): families switched off
// or on by name, and the per-stream and per-consumer series of the JetStream families kept or
// dropped by stream and consumer name, like kube-state-metrics' allow and deny lists. Each pattern
// is a regular expression matching a whole name; a deny wins over an allow; no pattern keeps all.

export interface ExportFilterSettings {
  readonly familiesAllow?: string | undefined;
  readonly familiesDeny?: string | undefined;
  readonly streamsAllow?: string | undefined;
  readonly streamsDeny?: string | undefined;
  /** Matched against `STREAM/consumer`. */
  readonly consumersAllow?: string | undefined;
  readonly consumersDeny?: string | undefined;
}

export interface ExportFilter {
  /** Whether anything is filtered at all (the exporter then skips the checks). */
  readonly active: boolean;
  family(name: string): boolean;
  stream(name: string): boolean;
  consumer(stream: string, name: string): boolean;
}

export class ExportFilterError extends Error {
  constructor(
    readonly setting: keyof ExportFilterSettings,
    message: string,
  ) {
    super(message);
  }
}

function whole(setting: keyof ExportFilterSettings, pattern: string | undefined): RegExp | undefined {
  if (pattern === undefined || pattern === "") return undefined;
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw new ExportFilterError(setting, (err as Error).message);
  }
}

function allowDeny(allow: RegExp | undefined, deny: RegExp | undefined): (name: string) => boolean {
  if (!allow && !deny) return () => true;
  return (name) => (!allow || allow.test(name)) && !(deny && deny.test(name));
}

export function createExportFilter(s: ExportFilterSettings): ExportFilter {
  const family = allowDeny(whole("familiesAllow", s.familiesAllow), whole("familiesDeny", s.familiesDeny));
  const stream = allowDeny(whole("streamsAllow", s.streamsAllow), whole("streamsDeny", s.streamsDeny));
  const consumerOnly = allowDeny(
    whole("consumersAllow", s.consumersAllow),
    whole("consumersDeny", s.consumersDeny),
  );
  const active = Object.values(s).some((v) => v !== undefined && v !== "");
  return {
    active,
    family,
    stream,
    consumer: (streamName, name) => stream(streamName) && consumerOnly(`${streamName}/${name}`),
  };
}
