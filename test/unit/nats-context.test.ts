// nats CLI contexts (config/nats-context.ts) through the configuration loader, with context files
// this test writes where the CLI keeps them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/config/schema.js";

describe("nats contexts", () => {
  let home: string;
  const write = (name: string, doc: unknown) =>
    writeFileSync(
      join(home, "nats", "context", `${name}.json`),
      typeof doc === "string" ? doc : JSON.stringify(doc),
    );
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), "orgwatch-ctx-"));
    mkdirSync(join(home, "nats", "context"), { recursive: true });
    write("prod", {
      description: "production",
      url: "nats://nats-1:4222,nats://nats-2:4222",
      creds: "~/creds/orgwatch.creds",
      ca: "/etc/nats/ca.pem",
      cert: "/etc/nats/client.pem",
      key: "/etc/nats/client-key.pem",
    });
    write("local", { url: "nats://127.0.0.1:4333", user: "watcher", password: "s3cret", token: "" });
    write("broken", "{ not json");
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const env = (more: NodeJS.ProcessEnv = {}) => ({ XDG_CONFIG_HOME: home, HOME: "/home/ops", ...more });

  it("maps a named context's URL, credentials and TLS files", () => {
    const c = loadConfig({ context: "prod" }, env());
    expect(c["nats-url"]).toEqual(["nats://nats-1:4222", "nats://nats-2:4222"]);
    expect(c["nats-creds"]).toBe("/home/ops/creds/orgwatch.creds");
    expect([c["nats-tls-ca"], c["nats-tls-cert"], c["nats-tls-key"]]).toEqual([
      "/etc/nats/ca.pem",
      "/etc/nats/client.pem",
      "/etc/nats/client-key.pem",
    ]);
    const local = loadConfig({}, env({ NATS_CONTEXT: "local" }));
    expect([local["nats-user"], local["nats-password"], local["nats-token"]]).toEqual([
      "watcher",
      "s3cret",
      undefined,
    ]);
  });

  it("uses the selected context when none is named, and explicit settings win over it", () => {
    writeFileSync(join(home, "nats", "context.txt"), "local\n");
    expect(loadConfig({}, env())["nats-url"]).toEqual(["nats://127.0.0.1:4333"]);
    expect(loadConfig({ "nats-url": "nats://other:4222" }, env())["nats-url"]).toEqual(["nats://other:4222"]);
    expect(loadConfig({}, env({ NATS_URL: "nats://env:4222" }))["nats-url"]).toEqual(["nats://env:4222"]);
    expect(loadConfig({ "nats-user": "admin", "nats-password": "x" }, env())["nats-user"]).toBe("admin");
    // No context anywhere: the defaults.
    rmSync(join(home, "nats", "context.txt"));
    expect(loadConfig({}, env())["nats-url"]).toEqual(["nats://127.0.0.1:4222"]);
  });

  it("refuses a missing or broken context with one clear line", () => {
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error("no error");
    };
    expect(message(() => loadConfig({ context: "nope" }, env()))).toMatch(
      /^invalid setting --context: nats context "nope" not found \(.*nope\.json: ENOENT\); `nats context ls` lists them$/,
    );
    expect(message(() => loadConfig({ context: "broken" }, env()))).toMatch(/is not valid JSON$/);
    writeFileSync(join(home, "nats", "context.txt"), "gone");
    expect(message(() => loadConfig({}, env()))).toMatch(
      /^invalid setting the selected nats context .*: nats context "gone" not found/,
    );
  });
});
