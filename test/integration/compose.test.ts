// The docker compose stack, checked without Docker: Debian's docker-compose validates the file,
// promtool the Prometheus configuration, and every file the compose file, the Dockerfile and the
// provisioning refer to must exist where the container expects it.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { REPO_ROOT, runOrgwatch } from "../helpers/cli.js";

const run = promisify(execFile);

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parseYaml(readFileSync(join(REPO_ROOT, "docker-compose.yml"), "utf8")) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** The host file or directory behind `containerPath` in `service`, through its bind mounts. */
function hostPath(service: string, containerPath: string): string | undefined {
  for (const volume of services[service]?.volumes ?? []) {
    const [source, target] = volume.split(":") as [string, string];
    if (!source.startsWith(".")) continue;
    if (containerPath === target || containerPath.startsWith(`${target}/`)) {
      return join(REPO_ROOT, source, posix.relative(target, containerPath));
    }
  }
  return undefined;
}

/** Files matching a glob whose only wildcard is in its last segment (Prometheus' rule_files). */
function glob(path: string): string[] {
  const dir = posix.dirname(path);
  const pattern = new RegExp(
    `^${posix
      .basename(path)
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")}$`,
  );
  return existsSync(dir) ? readdirSync(dir).filter((f) => pattern.test(f)) : [];
}

function yamlFile<T>(path: string): T {
  return parseYaml(readFileSync(path, "utf8")) as T;
}

describe("docker-compose.yml", () => {
  it("is valid for docker-compose", async () => {
    await run("docker-compose", ["-f", "docker-compose.yml", "config", "-q"], { cwd: REPO_ROOT });
    const { stdout } = await run("docker-compose", ["-f", "docker-compose.yml", "config", "--services"], {
      cwd: REPO_ROOT,
    });
    expect(stdout.trim().split("\n").sort()).toEqual(
      ["alertmanager", "grafana", "jaeger", "nats", "orgwatch", "prometheus", "simulator"].sort(),
    );
  });

  it("mounts only files that exist", () => {
    let mounts = 0;
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(":") as [string];
        if (source.startsWith(".")) {
          mounts++;
          expect(existsSync(join(REPO_ROOT, source)), `${name}: ${source}`).toBe(true);
        } else {
          expect(compose.volumes, `${name}: named volume ${source}`).toHaveProperty(source);
        }
      }
    }
    expect(mounts).toBeGreaterThanOrEqual(5);
  });

  it("waits on health: every depends_on has a condition, and service_healthy targets have a health check", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
        expect(["service_healthy", "service_started"]).toContain(condition);
        if (condition === "service_healthy") expect(services[dep]!.healthcheck, dep).toBeDefined();
      }
      if (name !== "simulator") expect(services[name]!.healthcheck, name).toBeDefined();
    }
    expect(services["prometheus"]!.depends_on).toHaveProperty("orgwatch.condition", "service_healthy");
    expect(services["grafana"]!.depends_on).toHaveProperty("prometheus.condition", "service_healthy");
  });

  it("runs NATS with JetStream on a volume and its monitoring port", () => {
    const nats = services["nats"]!;
    expect(nats.command).toEqual(
      expect.arrayContaining(["--jetstream", "--store_dir", "/data", "--http_port", "8222"]),
    );
    expect(nats.volumes).toContain("nats-data:/data");
    expect(nats.ports).toEqual(expect.arrayContaining(["4222:4222", "8222:8222"]));
  });

  it("builds orgwatch from the repository's multi-stage, non-root Dockerfile", () => {
    for (const name of ["orgwatch", "simulator"]) expect(services[name]!.build).toBe(".");
    const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
    const stages = dockerfile.match(/^FROM .*/gm) ?? [];
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage).toMatch(/^FROM node:22-/);
    const user = /^USER (\S+)/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    // Every file copied from the build context exists.
    for (const [, sources] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const source of sources!.split(/\s+/)) {
        expect(existsSync(join(REPO_ROOT, source)), `COPY ${source}`).toBe(true);
      }
    }
    const ignored = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8").split("\n");
    expect(ignored).toEqual(expect.arrayContaining(["node_modules", "dist"]));
  });

  it("sends orgwatch's traces to Jaeger over OTLP, and runs the simulator with orgwatch simulate", async () => {
    const env = services["orgwatch"]!.environment!;
    expect(env["ORGWATCH_NATS_URL"]).toBe("nats://nats:4222");
    expect(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).toBe("http://jaeger:4318");
    expect(services["jaeger"]!.ports).toContain("4318:4318");
    const simulator = services["simulator"]!;
    expect(simulator.command).toEqual(["simulate"]);
    const help = await runOrgwatch(["simulate", "--help"]);
    expect(help.code).toBe(0);
    for (const setting of Object.keys(simulator.environment!)) {
      const flag = `--${setting
        .replace(/^ORGWATCH_/, "")
        .toLowerCase()
        .replace(/_/g, "-")}`;
      expect(help.stdout, flag).toContain(flag);
    }
  });
});

describe("Prometheus configuration", () => {
  const path = hostPath("prometheus", "/etc/prometheus/prometheus.yml")!;
  const config = yamlFile<{
    rule_files: string[];
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  }>(path);

  it("is valid for promtool", async () => {
    await run("promtool", ["check", "config", path]);
  });

  it("loads the shipped alert rules", () => {
    const files = config.rule_files.flatMap((pattern) => {
      const dir = hostPath("prometheus", posix.dirname(pattern));
      expect(dir, pattern).toBeDefined();
      return glob(join(dir!, posix.basename(pattern)));
    });
    const shipped = readdirSync(join(REPO_ROOT, "alerts")).filter((f) => f.endsWith(".yml"));
    expect(shipped.length).toBeGreaterThan(0);
    expect(files.sort()).toEqual(shipped.sort());
  });

  it('scrapes orgwatch as job orgwatch (the alerts\' up{job="orgwatch"}) and alerts the compose Alertmanager', () => {
    const job = config.scrape_configs.find((c) => c.job_name === "orgwatch");
    expect(job?.static_configs[0]?.targets).toEqual(["orgwatch:7786"]);
    expect(services["orgwatch"]!.ports).toContain("7786:7786");
    expect(config.alerting.alertmanagers[0]!.static_configs[0]!.targets).toEqual(["alertmanager:9093"]);
    expect(hostPath("alertmanager", "/etc/alertmanager/alertmanager.yml")).toBe(
      join(REPO_ROOT, "deploy/alertmanager/alertmanager.yml"),
    );
  });
});

describe("Grafana provisioning", () => {
  const provisioning = hostPath("grafana", "/etc/grafana/provisioning")!;

  it("provisions the Prometheus data source, with exemplars linked to the Jaeger data source", () => {
    const files = readdirSync(join(provisioning, "datasources"));
    expect(files.length).toBeGreaterThan(0);
    const sources = files.flatMap(
      (f) =>
        yamlFile<{
          datasources: { uid: string; type: string; url: string; jsonData?: Record<string, unknown> }[];
        }>(join(provisioning, "datasources", f)).datasources,
    );
    const prometheus = sources.find((s) => s.type === "prometheus");
    expect(prometheus?.url).toBe("http://prometheus:9090");
    const jaeger = sources.find((s) => s.type === "jaeger");
    expect(jaeger?.url).toBe("http://jaeger:16686");
    const links = prometheus!.jsonData!["exemplarTraceIdDestinations"] as { datasourceUid: string }[];
    expect(links.map((l) => l.datasourceUid)).toEqual([jaeger!.uid]);
  });

  it("provisions the shipped dashboards from a folder that holds them", () => {
    const files = readdirSync(join(provisioning, "dashboards"));
    const providers = files.flatMap(
      (f) =>
        yamlFile<{ providers: { options: { path: string } }[] }>(join(provisioning, "dashboards", f))
          .providers,
    );
    expect(providers.length).toBeGreaterThan(0);
    for (const provider of providers) {
      const dir = hostPath("grafana", provider.options.path);
      expect(dir, provider.options.path).toBe(join(REPO_ROOT, "dashboards"));
      const dashboards = readdirSync(dir!).filter((f) => f.endsWith(".json"));
      expect(dashboards.length).toBeGreaterThanOrEqual(4);
      for (const file of dashboards) {
        const dashboard = JSON.parse(readFileSync(join(dir!, file), "utf8")) as {
          uid?: string;
          title?: string;
        };
        expect(dashboard.uid, file).toBeTruthy();
        expect(dashboard.title, file).toBeTruthy();
      }
    }
    const home = hostPath(
      "grafana",
      services["grafana"]!.environment!["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]!,
    );
    expect(home && statSync(home).isFile()).toBe(true);
  });
});
