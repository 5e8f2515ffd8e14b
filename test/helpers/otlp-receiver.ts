// An OTLP/HTTP JSON receiver for tests: every span orgwatch's processes exported, across all of
// them: tasks' spans with the task id each is about and its status and events, and chains' spans.
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

/** A chain's span (exporters/trace-sdk.ts: one per chain, once its last task is known). */
export interface ExportedChainSpan {
  spanId: string;
  /** orgwatch.chain.first_task_id. */
  firstTaskId: string;
  receivedAtMs: number;
  senderPid: number | undefined;
}

/** An OTLP/HTTP JSON receiver: what orgwatch's processes exported, across all of them. */
export async function startOtlpReceiver(): Promise<{
  url: string;
  spans: ExportedSpan[];
  chains: ExportedChainSpan[];
  server: Server;
}> {
  const spans: ExportedSpan[] = [];
  const chains: ExportedChainSpan[] = [];
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
              const attribute = (key: string) => s.attributes?.find((a) => a.key === key)?.value.stringValue;
              const senderPid = pid === undefined ? undefined : Number(pid);
              const firstTaskId = attribute("orgwatch.chain.first_task_id");
              if (firstTaskId) chains.push({ spanId: s.spanId, firstTaskId, receivedAtMs, senderPid });
              const id = attribute("messaging.message.id");
              if (id)
                spans.push({
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId ?? "",
                  taskId: id,
                  statusCode: s.status?.code ?? 0,
                  events: (s.events ?? []).map((e) => e.name),
                  outcome: attribute("orgwatch.task.outcome") ?? "",
                  receivedAtMs,
                  senderPid,
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
  return { url: `http://127.0.0.1:${port}`, spans, chains, server };
}
