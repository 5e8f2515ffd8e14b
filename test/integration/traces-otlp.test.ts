// Trace export over real OTLP/HTTP, configured only by the standard OTEL_* variables, to a receiver
// this test runs: what arrives must be the chain, with its resource, ids, parentage and attributes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

interface Received {
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
  events?: { name: string }[];
}
interface OtlpRequest {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[];
  }[];
}

const OTEL_VARS = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_SERVICE_NAME",
  "OTEL_BSP_SCHEDULE_DELAY",
  "OTEL_TRACES_EXPORTER",
];

describe("trace export over OTLP/HTTP", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let receiver: Server;
  let endpoint: string;
  const received: Received[] = [];
  const savedEnv = new Map(OTEL_VARS.map((k) => [k, process.env[k]]));

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    js = jetstream(nc);
    await createReferenceTopology(await jetstreamManager(nc), { roles: ["cto", "security"] });
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({
          path: req.url ?? "",
          contentType: String(req.headers["content-type"] ?? ""),
          body: Buffer.concat(chunks),
        });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await nc?.close();
    await server?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  /** A two-step chain: cto task → security review (parent_task_id), both acked by their agents. */
  async function runChain(daemon: Daemon, prefix: string): Promise<void> {
    await js.publish(
      "genbrain.agents.cto.tasks",
      JSON.stringify({
        task_id: `${prefix}-1`,
        type: "feature_implementation",
        sla: { ack_within_seconds: 60, complete_within_minutes: 60 },
        on_complete: { publish_to: "genbrain.agents.security.tasks" },
      }),
    );
    const cto = await (await js.consumers.get("AGENT_CTO_TASKS", "cto-worker")).next({ expires: 5000 });
    await js.publish(
      "genbrain.agents.security.tasks",
      JSON.stringify({ task_id: `${prefix}-2`, type: "security_review", parent_task_id: `${prefix}-1` }),
    );
    await cto!.ackAck();
    await daemon.pollNow();
    const sec = await (
      await js.consumers.get("AGENT_SECURITY_TASKS", "security-worker")
    ).next({ expires: 5000 });
    await sec!.ackAck();
    await daemon.pollNow();
  }

  const attr = (attrs: OtlpAttribute[], key: string) => {
    const v = attrs.find((a) => a.key === key)?.value;
    return v?.stringValue ?? v?.boolValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
  };

  it("sends the chain as OTLP/JSON to the configured endpoint", async () => {
    process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint;
    process.env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/json";
    process.env["OTEL_SERVICE_NAME"] = "orgwatch-under-test";
    process.env["OTEL_BSP_SCHEDULE_DELAY"] = "100";
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      await runChain(daemon, "json");
      const spans = await waitFor(
        () => {
          const all: { span: OtlpSpan; resource: OtlpAttribute[]; scope: string }[] = [];
          for (const r of received.filter((x) => x.contentType.includes("json"))) {
            const doc = JSON.parse(r.body.toString()) as OtlpRequest;
            for (const rs of doc.resourceSpans)
              for (const ss of rs.scopeSpans)
                for (const span of ss.spans)
                  all.push({ span, resource: rs.resource.attributes, scope: ss.scope.name });
          }
          return all.length >= 2 ? all : undefined;
        },
        { what: "two spans at the OTLP receiver" },
      );
      expect(received[0]!.path).toBe("/v1/traces");
      expect(spans).toHaveLength(2);
      const [first, second] = ["json-1", "json-2"].map((id) =>
        spans.find((s) => attr(s.span.attributes, "messaging.message.id") === id)!,
      );
      expect(attr(first!.resource, "service.name")).toBe("orgwatch-under-test");
      expect(first!.scope).toBe("orgwatch");
      expect(first!.span.traceId).toBe(chainTraceId("json-1"));
      expect(first!.span.spanId).toBe(taskSpanId("json-1"));
      expect(first!.span.parentSpanId || undefined).toBeUndefined();
      expect(second!.span.traceId).toBe(chainTraceId("json-1"));
      expect(second!.span.parentSpanId).toBe(taskSpanId("json-1"));
      expect(second!.span.name).toBe("security security_review");
      expect(attr(first!.span.attributes, "gen_ai.agent.name")).toBe("cto");
      expect(attr(first!.span.attributes, "orgwatch.sla.ack_within_seconds")).toBe(60);
      expect(attr(second!.span.attributes, "orgwatch.link")).toBe("parent_task_id");
      expect(second!.span.events?.map((e) => e.name)).toEqual(["delivery"]);
    } finally {
      await daemon.stop();
    }
  });

  it("sends OTLP/protobuf by default", async () => {
    process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint;
    delete process.env["OTEL_EXPORTER_OTLP_PROTOCOL"];
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      await runChain(daemon, "proto");
      const traceBytes = Buffer.from(chainTraceId("proto-1"), "hex");
      const parentBytes = Buffer.from(taskSpanId("proto-1"), "hex");
      const bodies = await waitFor(
        () => {
          const proto = received.filter((r) => r.contentType === "application/x-protobuf");
          const all = Buffer.concat(proto.map((r) => r.body));
          return all.includes(Buffer.from("proto-2")) && all.includes(Buffer.from("proto-1"))
            ? all
            : undefined;
        },
        { what: "protobuf spans at the receiver" },
      );
      expect(bodies.includes(traceBytes)).toBe(true);
      expect(bodies.includes(parentBytes)).toBe(true);
    } finally {
      await daemon.stop();
    }
  });

  it("exports nothing and reports no error when no exporter is configured", async () => {
    for (const k of OTEL_VARS) delete process.env[k];
    const before = received.length;
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      await runChain(daemon, "none");
      await waitFor(() => daemon.org.tasks.get("none-2")?.exported, { what: "the chain ended" });
      expect(received.length).toBe(before);
    } finally {
      await daemon.stop();
    }
  });
});
