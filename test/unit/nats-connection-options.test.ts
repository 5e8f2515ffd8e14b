// Credentials written into NATS URLs: taken out (nats.js would ignore them), used unless flags give
// others, and never shown in logs.
import { describe, expect, it } from "vitest";
import { configWith } from "../../src/config/load.js";
import { connectionOptions, redactUrl } from "../../src/nats/connect.js";

const options = (overrides: Record<string, unknown>) => connectionOptions(configWith(overrides));

describe("NATS URLs with credentials", () => {
  it("takes user and password out of the URL", () => {
    const o = options({ "nats-url": ["nats://watcher:p%40ss:word@10.0.0.1:4222", "nats://10.0.0.2:4222"] });
    expect(o.servers).toEqual(["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
    expect(o.user).toBe("watcher");
    expect(o.pass).toBe("p@ss:word");
    expect(o.token).toBeUndefined();
  });

  it("a user-info part without a colon is a token", () => {
    const o = options({ "nats-url": ["tls://s3cr3t-token@nats.example:4443"] });
    expect(o.servers).toEqual(["tls://nats.example:4443"]);
    expect(o.token).toBe("s3cr3t-token");
    expect(o.user).toBeUndefined();
  });

  it("flags win over the URL", () => {
    const o = options({
      "nats-url": ["nats://url-user:url-pass@h:4222"],
      "nats-user": "flag-user",
      "nats-password": "flag-pass",
    });
    expect([o.user, o.pass, o.servers]).toEqual(["flag-user", "flag-pass", ["nats://h:4222"]]);
    const withToken = options({ "nats-url": ["nats://u:p@h:4222"], "nats-token": "t" });
    expect([withToken.token, withToken.user, withToken.pass]).toEqual(["t", undefined, undefined]);
  });

  it("leaves URLs without credentials alone", () => {
    const o = options({ "nats-url": ["nats://127.0.0.1:4222", "127.0.0.1:4223"] });
    expect(o.servers).toEqual(["nats://127.0.0.1:4222", "127.0.0.1:4223"]);
    expect([o.user, o.pass, o.token]).toEqual([undefined, undefined, undefined]);
  });

  it("keeps retrying through authorization errors, forever", () => {
    const o = options({});
    expect(o.maxReconnectAttempts).toBe(-1);
    expect(o.ignoreAuthErrorAbort).toBe(true);
  });

  it("redacts credentials for logs", () => {
    expect(redactUrl("nats://user:pass@h:4222")).toBe("nats://***@h:4222");
    expect(redactUrl("tls://token@h:4443")).toBe("tls://***@h:4443");
    expect(redactUrl("nats://h:4222")).toBe("nats://h:4222");
  });
});
