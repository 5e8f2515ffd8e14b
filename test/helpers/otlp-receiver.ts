// An OTLP/HTTP JSON receiver for tests: every span orgwatch's processes exported, across all of
// them, with the task id it is about and its status and events.
import { createServer, type Server } from "node:http";

export interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  taskId: string;
  /** OTLP status code: 2 = ERROR. */
  statusCode: number;
  /** Event names, in order. */
  events: string[];
  /** orgwatch.task.outcome. */
  outcome: string;
  /** When the receiver got it (ms). */
  receivedAtMs: number;
  /** The sending process (its resource's process.pid). */
  senderPid: number | undefined;
}

/** An OTLP/HTTP JSON receiver: what orgwatch's processes exported, across all of them. */
export async function startOtlpReceiver(): Promise<{ url: string; spans: ExportedSpan[]; server: Server }> {
  const spans: ExportedSpan[] = [];
  interface OtlpJson {
    resourceSpans?: {
      resource?: { attributes?: { key: string; value: { intValue?: number | string } }[] };
      scopeSpans?: {
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          attributes?: { key: string; value: { stringValue?: string } }[];
          status?: { code?: number };
          events?: { name: string }[];
        }[];
      }[];
    }[];
  }
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      try {
        const data = JSON.parse(body) as OtlpJson;
        const receivedAtMs = Date.now();
        for (const rs of data.resourceSpans ?? []) {
          const pid = rs.resource?.attributes?.find((a) => a.key === "process.pid")?.value.intValue;
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? []) {
              const id = s.attributes?.find((a) => a.key === "messaging.message.id")?.value.stringValue;
              if (id)
                spans.push({
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId ?? "",
                  taskId: id,
                  statusCode: s.status?.code ?? 0,
                  events: (s.events ?? []).map((e) => e.name),
                  outcome:
                    s.attributes?.find((a) => a.key === "orgwatch.task.outcome")?.value.stringValue ?? "",
                  receivedAtMs,
                  senderPid: pid === undefined ? undefined : Number(pid),
                });
            }
        }
      } catch {
        // not ours to judge
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, spans, server };
}
