import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, parseListenAddress } from "../../src/config/load.js";
import { formatDuration, parseDuration } from "../../src/config/duration.js";
import { ConfigError, envName, SETTINGS } from "../../src/config/schema.js";

const dir = mkdtempSync(join(tmpdir(), "orgwatch-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function yamlFile(text: string): string {
  const path = join(dir, `config-${files++}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError's message, asserting it is one line. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["15s", 15_000],
    ["30m", 1_800_000],
    ["1h30m", 5_400_000],
    ["72h", 259_200_000],
    ["2d", 172_800_000],
    ["1w", 604_800_000],
    ["1.5s", 1500],
    [" 2m ", 120_000],
  ])("%s = %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["15", "", "s", "15 s", "-5s", "15sec", "1h 30m", "abc"])("refuses %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it("formats back", () => {
    expect(formatDuration(5_400_000)).toBe("1h30m");
    expect(formatDuration(90_500)).toBe("1m30s500ms");
    expect(formatDuration(0)).toBe("0s");
  });
});

describe("loadConfig", () => {
  it("defaults to the reference topology", () => {
    const c = loadConfig({}, {});
    expect(c["nats-url"]).toEqual(["nats://127.0.0.1:4222"]);
    expect(c["subject-prefix"]).toBe("genbrain");
    expect(c["poll-interval"]).toBe(15_000);
    expect(c["web.listen-address"]).toBe(":7786");
    expect(c["web.telemetry-path"]).toBe("/metrics");
    expect(c["broadcast.role-pattern"]).toBe("^([^-_.]+)");
    expect(c["log.format"]).toBe("json");
    expect(c["deadletter.route"]).toBe(true);
    expect(c["nats-user"]).toBeUndefined();
    expect(c["memory.heap-growth"]).toBe(50);
  });

  it("takes 0 as V8's own heap growing factor", () => {
    expect(loadConfig({ "memory.heap-growth": "0" }, {})["memory.heap-growth"]).toBe(0);
  });

  it("takes flags over environment over the YAML file over defaults, setting by setting", () => {
    const file = yamlFile(
      [
        "subject-prefix: fromfile",
        "poll-interval: 1m",
        "log:",
        "  level: warn",
        "web:",
        "  listen-address: 127.0.0.1:9000",
      ].join("\n"),
    );
    const env = { ORGWATCH_POLL_INTERVAL: "30s", ORGWATCH_LOG_LEVEL: "error" };
    const c = loadConfig({ "log.level": "debug" }, env, file);
    expect(c["log.level"]).toBe("debug"); // flag beats env and file
    expect(c["poll-interval"]).toBe(30_000); // env beats file
    expect(c["subject-prefix"]).toBe("fromfile"); // file beats default
    expect(c["web.listen-address"]).toBe("127.0.0.1:9000"); // nested YAML keys
    expect(c["poll-concurrency"]).toBe(32); // default
  });

  it("reads YAML keys flat or nested, lists as sequences or comma-separated", () => {
    const nested = yamlFile("nats-url:\n  - nats://a:4222\n  - nats://b:4222\nroles: ceo, cto\n");
    const c = loadConfig({}, {}, nested);
    expect(c["nats-url"]).toEqual(["nats://a:4222", "nats://b:4222"]);
    expect(c["roles"]).toEqual(["ceo", "cto"]);
    const flat = yamlFile(
      '"web.telemetry-path": /m\nconsumer.status-window: 5\ndeadletter:\n  route: false\n',
    );
    const d = loadConfig({}, {}, flat);
    expect(d["web.telemetry-path"]).toBe("/m");
    expect(d["consumer.status-window"]).toBe(5);
    expect(d["deadletter.route"]).toBe(false);
  });

  it("honours NATS_URL, below ORGWATCH_NATS_URL", () => {
    expect(loadConfig({}, { NATS_URL: "nats://x:1" })["nats-url"]).toEqual(["nats://x:1"]);
    expect(
      loadConfig({}, { NATS_URL: "nats://x:1", ORGWATCH_NATS_URL: "nats://y:2,nats://z:3" })["nats-url"],
    ).toEqual(["nats://y:2", "nats://z:3"]);
  });

  it("gives every setting an ORGWATCH_* variable", () => {
    expect(envName("web.listen-address")).toBe("ORGWATCH_WEB_LISTEN_ADDRESS");
    expect(envName("poll-interval")).toBe("ORGWATCH_POLL_INTERVAL");
    for (const setting of SETTINGS) expect(envName(setting.key)).toMatch(/^ORGWATCH_[A-Z0-9_]+$/);
  });

  it("takes a boolean flag given without a value as true", () => {
    expect(
      loadConfig({ "deadletter.route": true }, { ORGWATCH_DEADLETTER_ROUTE: "false" })["deadletter.route"],
    ).toBe(true);
    expect(loadConfig({ "deadletter.route": "off" }, {})["deadletter.route"]).toBe(false);
  });
});

describe("configuration errors: one line naming the setting and the problem", () => {
  it.each([
    [{ "poll-interval": "15" }, {}, "invalid setting --poll-interval:", "is not a duration"],
    [
      {},
      { ORGWATCH_POLL_INTERVAL: "soon" },
      "invalid setting ORGWATCH_POLL_INTERVAL:",
      '"soon" is not a duration',
    ],
    [{ "poll-concurrency": "many" }, {}, "invalid setting --poll-concurrency:", "is not a whole number"],
    [{ "poll-concurrency": "0" }, {}, "invalid setting --poll-concurrency:", "at least 1"],
    [{ "own-streams.replicas": "0" }, {}, "invalid setting --own-streams.replicas:", "between 1 and 5"],
    [
      {},
      { ORGWATCH_OWN_STREAMS_REPLICAS: "6" },
      "invalid setting --own-streams.replicas:",
      "between 1 and 5",
    ],
    [{ "deadletter.route": "maybe" }, {}, "invalid setting --deadletter.route:", "not true or false"],
    [{ "log.format": "xml" }, {}, "invalid setting --log.format:", "not one of json, pretty"],
    [{ "nats-url": "http://x" }, {}, "invalid setting --nats-url:", "is not a NATS URL"],
    [{}, { NATS_URL: "" }, "invalid setting --nats-url:", "no server URL"],
    [{ "subject-prefix": "a..b" }, {}, "invalid setting --subject-prefix:", "is not a subject prefix"],
    [{ "web.listen-address": "7786" }, {}, "invalid setting --web.listen-address:", "is not host:port"],
    [{ "web.listen-address": ":99999" }, {}, "invalid setting --web.listen-address:", "is not host:port"],
    [{ "web.telemetry-path": "metrics" }, {}, "invalid setting --web.telemetry-path:", "must start with /"],
    [
      { "broadcast.role-pattern": "[" },
      {},
      "invalid setting --broadcast.role-pattern:",
      "nvalid regular expression",
    ],
    [{ "broadcast.role-pattern": "^\\w+" }, {}, "invalid setting --broadcast.role-pattern:", "capture group"],
    [{ "consumer.status-window": "1" }, {}, "invalid setting --consumer.status-window:", "at least 2"],
    [{ "nats-password": "pw" }, {}, "invalid setting --nats-password:", "needs a user"],
    [{ "nats-tls-cert": "c.pem" }, {}, "invalid setting --nats-tls-cert:", "needs its key"],
    [{ "memory.heap-growth": "5" }, {}, "invalid setting --memory.heap-growth:", "between 10 and 300"],
    [
      {},
      { ORGWATCH_MEMORY_HEAP_GROWTH: "301" },
      "invalid setting --memory.heap-growth:",
      "between 10 and 300",
    ],
    [{ "memory.heap-growth": "-1" }, {}, "invalid setting --memory.heap-growth:", "between 10 and 300"],
  ])("%j %j", (flags, env, start, problem) => {
    const message = configError(() => loadConfig(flags, env));
    expect(message.startsWith(start)).toBe(true);
    expect(message).toContain(problem);
  });

  it("names the file's key for a bad value in the YAML file", () => {
    const file = yamlFile("poll-interval: often\n");
    expect(configError(() => loadConfig({}, {}, file))).toBe(
      `invalid setting poll-interval (in ${file}): "often" is not a duration (use forms like 500ms, 15s, 30m, 1h30m)`,
    );
  });

  it("refuses unknown keys, non-maps, bad YAML and missing files", () => {
    expect(configError(() => loadConfig({}, {}, yamlFile("pol-interval: 15s\n")))).toContain(
      "pol-interval (in ",
    );
    expect(configError(() => loadConfig({}, {}, yamlFile("- a\n- b\n")))).toContain(
      "must be a map of settings",
    );
    expect(configError(() => loadConfig({}, {}, yamlFile("a: [\n")))).toContain("is not valid YAML");
    expect(configError(() => loadConfig({}, {}, join(dir, "absent.yaml")))).toMatch(
      /^invalid setting --config: cannot read .*absent\.yaml: ENOENT$/,
    );
  });

  it("parses listen addresses", () => {
    expect(parseListenAddress(":7786")).toEqual({ host: undefined, port: 7786 });
    expect(parseListenAddress("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListenAddress("[::1]:9000")).toEqual({ host: "::1", port: 9000 });
  });
});
