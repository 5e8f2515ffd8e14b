import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../../src/config/schema.js";
import { BasicAuth, loadWebConfig, RateLimiter } from "../../src/exporters/web-config.js";
import { createPki, type Pki } from "../helpers/tls.js";

const HASH = bcrypt.hashSync("s3cret-pass", 4);

function basic(user: string, password: string): string {
  return "Basic " + Buffer.from(`${user}:${password}`).toString("base64");
}

describe("web config file (exporter-toolkit format)", () => {
  let pki: Pki;
  let n = 0;
  const write = (text: string) => {
    const file = join(pki.dir, `web-${n++}.yml`);
    writeFileSync(file, text);
    return file;
  };
  const errorOf = (file: string): string => {
    try {
      loadWebConfig(file);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as Error).message;
      expect(message).not.toContain("\n");
      expect(message).toContain("--web.config.file");
      return message;
    }
    throw new Error("expected a ConfigError");
  };

  beforeAll(() => {
    pki = createPki();
    pki.issue("server");
    mkdirSync(join(pki.dir, "sub"));
  });
  afterAll(() => pki.remove());

  it("reads TLS files relative to the config file and the users", () => {
    const web = loadWebConfig(
      write(`tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_ca_file: ca.pem
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
basic_auth_users:
  alice: "${HASH}"
rate_limit:
  interval: 1s
  burst: 5
`),
    );
    expect(web.tls?.clientAuth).toBe("RequireAndVerifyClientCert");
    expect(web.tls?.options.requestCert).toBe(true);
    expect(web.tls?.options.rejectUnauthorized).toBe(true);
    expect(web.tls?.options.minVersion).toBe("TLSv1.3");
    expect(web.tls?.options.ciphers).toContain("ECDHE-ECDSA-AES128-GCM-SHA256");
    expect(web.tls?.options.ecdhCurve).toBe("X25519:P-256");
    expect(web.users.get("alice")).toBe(HASH);
    expect(web.headers).toEqual({ "X-Frame-Options": "deny" });
    expect(web.rateLimit).toEqual({ intervalMs: 1000, burst: 5 });
  });

  it("serves plain HTTP when nothing enables TLS", () => {
    const web = loadWebConfig(write(`tls_server_config: {}\nbasic_auth_users:\n  bob: "${HASH}"\n`));
    expect(web.tls).toBeUndefined();
    expect(web.users.size).toBe(1);
    expect(loadWebConfig(write("")).users.size).toBe(0);
  });

  it("refuses, in one line naming the problem, what the toolkit refuses", () => {
    expect(errorOf(write("basic_auth_user:\n  a: b\n"))).toMatch(/unknown key basic_auth_user/);
    expect(errorOf(write("tls_server_config:\n  cert_file: server.pem\n"))).toMatch(/missing one of key/);
    expect(errorOf(write("tls_server_config:\n  cert_file: nope.pem\n  key_file: server.key\n"))).toMatch(
      /cert_file: cannot read .*nope\.pem: ENOENT/,
    );
    expect(
      errorOf(
        write(
          "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n",
        ),
      ),
    ).toMatch(/client CA is configured without a client_auth_type/);
    expect(
      errorOf(
        write(
          "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Maybe\n",
        ),
      ),
    ).toMatch(/client_auth_type/);
    expect(
      errorOf(
        write(
          "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_allowed_sans: [x]\n",
        ),
      ),
    ).toMatch(/client_allowed_sans/);
    // The CA's key does not belong to the server certificate.
    expect(errorOf(write("tls_server_config:\n  cert_file: server.pem\n  key_file: ca.key\n"))).toMatch(
      /tls_server_config: .*(mismatch|key)/i,
    );
    expect(errorOf(write("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n"))).toMatch(
      /not a PEM certificate/,
    );
    expect(errorOf(write("http_server_config:\n  headers:\n    Server: x\n"))).toMatch(
      /header Server cannot be set/,
    );
    expect(errorOf(write("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"))).toMatch(
      /deny, sameorigin/,
    );
    expect(errorOf(write("rate_limit:\n  interval: soon\n"))).toMatch(/rate_limit.interval/);
    expect(errorOf(write("basic_auth_users: [a, b]\n"))).toMatch(/basic_auth_users/);
    expect(errorOf(write("a: [\n"))).toMatch(/not valid YAML/);
    expect(errorOf(join(pki.dir, "absent.yml"))).toMatch(/cannot read: ENOENT/);
  });

  it("names the user with a bad hash but never shows the hash", () => {
    const message = errorOf(write("basic_auth_users:\n  carol: plaintext-password\n"));
    expect(message).toMatch(/basic_auth_users\.carol: not a bcrypt hash/);
    expect(message).not.toContain("plaintext-password");
  });
});

describe("basic auth", () => {
  it("accepts the right pair only, and remembers a success without bcrypt", async () => {
    let now = 1_000_000;
    const auth = new BasicAuth(new Map([["alice", HASH]]), () => now);
    const compare = vi.spyOn(bcrypt, "compare");
    try {
      expect(await auth.check(undefined)).toBe("denied");
      expect(await auth.check("Bearer abc")).toBe("denied");
      expect(await auth.check("Basic !!!")).toBe("denied");
      expect(await auth.check(basic("alice", "wrong"))).toBe("denied");
      expect(await auth.check(basic("mallory", "s3cret-pass"))).toBe("denied");
      // An unknown user still pays for a bcrypt check (no timing oracle for user names).
      expect(compare).toHaveBeenCalledTimes(2);
      expect(await auth.check(basic("alice", "s3cret-pass"))).toBe("ok");
      expect(compare).toHaveBeenCalledTimes(3);
      expect(await auth.check(basic("alice", "s3cret-pass"))).toBe("ok");
      expect(compare).toHaveBeenCalledTimes(3);
      // The remembered success is for that password only.
      expect(await auth.check(basic("alice", "s3cret-pas"))).toBe("denied");
      expect(compare).toHaveBeenCalledTimes(4);
      now += 6 * 60_000;
      expect(await auth.check(basic("alice", "s3cret-pass"))).toBe("ok");
      expect(compare).toHaveBeenCalledTimes(5);
    } finally {
      compare.mockRestore();
    }
  });

  it("passwords may contain colons; the scheme is case-insensitive", async () => {
    const auth = new BasicAuth(new Map([["bob", bcrypt.hashSync("a:b:c", 4)]]));
    expect(await auth.check(basic("bob", "a:b:c").replace("Basic", "basic"))).toBe("ok");
  });
});

describe("rate limit", () => {
  it("allows a burst, then one request per interval", () => {
    let now = 0;
    const limiter = new RateLimiter(1000, 2, () => now);
    expect([limiter.allow(), limiter.allow(), limiter.allow()]).toEqual([true, true, false]);
    now += 999;
    expect(limiter.allow()).toBe(false);
    now += 1;
    expect(limiter.allow()).toBe(true);
    expect(limiter.allow()).toBe(false);
  });
});
