// deploy/kubernetes/: the generated PrometheusRule and dashboard ConfigMaps are current, the base
// renders with `kubectl kustomize`, and every object it renders is valid against the Kubernetes and
// prometheus-operator schemas (kubernetes-models). The Deployment keeps the promises of the README:
// non-root, read-only root filesystem, probes on /healthz and /readyz, requests and limits.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import {
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { GENERATED } from "../scripts/kubernetes.js";
import { findBinary } from "./helpers/prometheus-stack.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const KUBECTL = findBinary("kubectl");

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  ConfigMap: ConfigMap as never,
  Service: Service as never,
  Deployment: Deployment as never,
  NetworkPolicy: NetworkPolicy as never,
  PrometheusRule: PrometheusRule as never,
  ServiceMonitor: ServiceMonitor as never,
};

interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

describe("the Kubernetes base", () => {
  it.each(Object.entries(GENERATED))("%s is current (run `npm run kubernetes`)", (path, render) => {
    expect(readFileSync(join(ROOT, path), "utf8")).toBe(render());
  });

  // kubectl is installed on CI's machine; elsewhere this renders nothing to check, and says so.
  it.skipIf(!KUBECTL)("renders with kubectl kustomize, every object valid against its schema", async () => {
    const { stdout } = await run(KUBECTL!, ["kustomize", join(ROOT, "deploy/kubernetes")], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const objects = parseAllDocuments(stdout).map((d) => d.toJSON() as K8sObject);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      "ConfigMap",
      "ConfigMap",
      "ConfigMap",
      "ConfigMap",
      "ConfigMap",
      "Deployment",
      "NetworkPolicy",
      "PrometheusRule",
      "Service",
      "ServiceMonitor",
    ]);
    for (const o of objects) {
      const Model = MODELS[o.kind];
      expect(Model, o.kind).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
      expect(o.metadata.labels?.["app.kubernetes.io/name"]).toBe("orgwatch");
    }
    const deployment = objects.find((o) => o.kind === "Deployment") as unknown as {
      spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } };
    };
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0]!;
    expect(pod["securityContext"]).toMatchObject({ runAsNonRoot: true });
    expect(container["securityContext"]).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(container["livenessProbe"]).toMatchObject({ httpGet: { path: "/healthz" } });
    expect(container["readinessProbe"]).toMatchObject({ httpGet: { path: "/readyz" } });
    expect(container["resources"]).toMatchObject({
      requests: { memory: "128Mi" },
      limits: { memory: "384Mi" },
    });
    // The Secret holding NATS credentials is referenced, optional (not every NATS needs one).
    expect(JSON.stringify(pod["volumes"])).toContain('"secretName":"orgwatch-nats"');
    // Every shipped alert is in the PrometheusRule.
    const rule = objects.find((o) => o.kind === "PrometheusRule") as unknown as {
      spec: { groups: { rules: { alert?: string }[] }[] };
    };
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert).filter(Boolean));
    expect(alerts.length).toBeGreaterThan(25);
    expect(alerts).toContain("OrgwatchTasksLost");
  });

  it("refuses an invalid object (the validation above can fail)", () => {
    expect(() =>
      new Deployment({ metadata: { name: "x" }, spec: { selector: 5 } } as never).validate(),
    ).toThrow();
  });
});
