// Trace export through the OpenTelemetry SDK, configured only by the standard OTEL_* variables, to
// receivers this test runs (OTLP/HTTP in JSON and protobuf, OTLP/gRPC, the console): what arrives
// must be the chain, with its resource, ids, parentage and attributes.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { SamplingDecision, TraceIdRatioBasedSampler } from "@opentelemetry/sdk-trace-base";
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import type { Daemon } from "../../src/daemon.js";
import { chainSpanId, chainTraceId, taskSpanId } from "../../src/logic/task-trace.js";
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
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_SDK_DISABLED",
  "OTEL_TRACES_SAMPLER",
  "OTEL_TRACES_SAMPLER_ARG",
];

describe("trace export through the OpenTelemetry SDK", () => {
  let server: NatsServerProcess;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let receiver: Server;
  let endpoint: string;
  const received: Received[] = [];
  let grpcServer: grpc.Server;
  let grpcEndpoint: string;
  const receivedOverGrpc: Buffer[] = [];
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
    // An OTLP/gRPC trace service taking the request bytes as they come (the spans are found in
    // them by their ids, as in the protobuf test).
    grpcServer = new grpc.Server();
    const raw = (b: Buffer) => b;
    grpcServer.addService(
      {
        Export: {
          path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
          requestStream: false,
          responseStream: false,
          requestSerialize: raw,
          requestDeserialize: raw,
          responseSerialize: () => Buffer.alloc(0),
          responseDeserialize: raw,
        },
      },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          receivedOverGrpc.push(call.request);
          callback(null, Buffer.alloc(0));
        },
      },
    );
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    grpcEndpoint = `http://127.0.0.1:${grpcPort}`;
  });
  afterAll(async () => {
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await nc?.close();
    await server?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
    grpcServer?.forceShutdown();
  });

  /** Sets exactly these OTEL_* variables. */
  function otelEnv(vars: Record<string, string>): void {
    for (const k of OTEL_VARS) delete process.env[k];
    Object.assign(process.env, vars);
  }

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
    otelEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "orgwatch-under-test",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=staging,team=agents-oncall",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
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
          return all.length >= 3 ? all : undefined;
        },
        { what: "three spans at the OTLP receiver" },
      );
      expect(received[0]!.path).toBe("/v1/traces");
      // Two tasks, and the chain's own span with its totals, a child of the first task's.
      expect(spans).toHaveLength(3);
      const chain = spans.find((s) => s.span.name === "chain")!;
      expect(chain.span.spanId).toBe(chainSpanId("json-1"));
      expect(chain.span.parentSpanId).toBe(taskSpanId("json-1"));
      expect(attr(chain.span.attributes, "orgwatch.chain.steps")).toBe(2);
      expect(attr(chain.span.attributes, "orgwatch.chain.last_task_id")).toBe("json-2");
      const [first, second] = ["json-1", "json-2"].map((id) =>
        spans.find((s) => attr(s.span.attributes, "messaging.message.id") === id)!,
      );
      expect(attr(first!.resource, "service.name")).toBe("orgwatch-under-test");
      expect(attr(first!.resource, "deployment.environment.name")).toBe("staging");
      expect(attr(first!.resource, "team")).toBe("agents-oncall");
      expect(attr(first!.resource, "telemetry.sdk.language")).toBe("nodejs");
      expect(first!.span.kind).toBe(SpanKind.CONSUMER + 1); // OTLP's enum counts from UNSPECIFIED
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
    otelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "100" });
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

  it("sends OTLP/gRPC when the protocol says grpc", async () => {
    otelEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: grpcEndpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      await runChain(daemon, "grpc");
      const bodies = await waitFor(
        () => {
          const all = Buffer.concat(receivedOverGrpc);
          return all.includes(Buffer.from("grpc-1")) && all.includes(Buffer.from("grpc-2")) ? all : undefined;
        },
        { what: "spans at the gRPC receiver" },
      );
      expect(bodies.includes(Buffer.from(chainTraceId("grpc-1"), "hex"))).toBe(true);
      expect(bodies.includes(Buffer.from(taskSpanId("grpc-2"), "hex"))).toBe(true);
      await waitFor(() => daemon.org.tasks.get("grpc-2")?.spanSent, { what: "the span confirmed sent" });
    } finally {
      await daemon.stop();
    }
  });

  it("prints the spans with OTEL_TRACES_EXPORTER=console", async () => {
    otelEnv({ OTEL_TRACES_EXPORTER: "console" });
    const printed: unknown[] = [];
    const dir = vi.spyOn(console, "dir").mockImplementation((item: unknown) => void printed.push(item));
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      await runChain(daemon, "console");
      const spans = await waitFor(
        () =>
          printed.length >= 2
            ? (printed as { traceId: string; id: string; parentSpanContext?: { spanId: string } }[])
            : undefined,
        { what: "three spans printed" },
      );
      expect(spans.map((s) => s.id)).toEqual([
        taskSpanId("console-1"),
        taskSpanId("console-2"),
        chainSpanId("console-1"),
      ]);
      expect(spans.every((s) => s.traceId === chainTraceId("console-1"))).toBe(true);
      expect(spans[1]!.parentSpanContext?.spanId).toBe(taskSpanId("console-1"));
    } finally {
      await daemon.stop();
      dir.mockRestore();
    }
  });

  it.each([
    ["OTEL_TRACES_EXPORTER=none", "off-none", { OTEL_TRACES_EXPORTER: "none" }],
    ["OTEL_SDK_DISABLED=true", "off-disabled", { OTEL_SDK_DISABLED: "true" }],
  ])(
    "exports nothing with %s, even with an endpoint",
    async (_name, prefix, vars: Record<string, string>) => {
      otelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "100", ...vars });
      const before = received.length;
      const daemon = await startTestDaemon(server.url);
      try {
        await daemon.started;
        await runChain(daemon, prefix);
        await waitFor(() => daemon.org.tasks.get(`${prefix}-2`)?.exported, {
          what: "the chain ended",
        });
        expect(received.length).toBe(before);
      } finally {
        await daemon.stop();
      }
    },
  );

  it("keeps or drops each chain whole, as the configured sampler decides for its first span", async () => {
    otelEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.5",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    // The SDK's own ratio sampler says which chains it keeps: the truth to compare against.
    const ratio = new TraceIdRatioBasedSampler(0.5);
    const chains = Array.from({ length: 8 }, (_, i) => `sampled${i}`);
    const kept = chains.filter(
      (c) =>
        ratio.shouldSample(ROOT_CONTEXT, chainTraceId(`${c}-1`)).decision ===
        SamplingDecision.RECORD_AND_SAMPLED,
    );
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(chains.length);
    const daemon = await startTestDaemon(server.url);
    try {
      await daemon.started;
      for (const c of chains) await runChain(daemon, c);
      await waitFor(() => chains.every((c) => daemon.org.tasks.get(`${c}-2`)?.spanSent), {
        what: "every chain's spans sent or dropped",
      });
      const ids = new Set<string>();
      for (const r of received.filter((x) => x.contentType.includes("json"))) {
        const doc = JSON.parse(r.body.toString()) as OtlpRequest;
        for (const rs of doc.resourceSpans)
          for (const ss of rs.scopeSpans)
            for (const span of ss.spans) {
              const id = attr(span.attributes, "messaging.message.id");
              if (typeof id === "string" && id.startsWith("sampled")) ids.add(id);
            }
      }
      expect([...ids].sort()).toEqual(kept.flatMap((c) => [`${c}-1`, `${c}-2`]).sort());
    } finally {
      await daemon.stop();
    }
  });

  it("exports nothing and reports no error when no exporter is configured", async () => {
    otelEnv({});
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
