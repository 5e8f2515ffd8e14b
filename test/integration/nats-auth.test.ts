// NATS security: orgwatch against nats-servers configured for TLS (CA made here, client
// certificates verified), user/password, token, nkey and a creds file (operator/JWT mode). With each it
// connects and polls; with a wrong credential it logs a clear error and keeps retrying (the process
// stays up and answers /metrics); and no secret it was given ever shows in its logs, / or /metrics.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config/schema.js";
import type { Daemon } from "../../src/daemon.js";
import { startNatsServer, type NatsServerProcess } from "../../src/nats/server-process.js";
import { redactUrl } from "../../src/nats/connect.js";
import { captureLog, type CapturedLog } from "../helpers/log-capture.js";
import { spawnOrgwatch } from "../helpers/cli.js";
import { startTestDaemon } from "../helpers/daemon.js";
import { scrape } from "../helpers/metrics.js";
import { createPki, type Pki } from "../helpers/tls.js";
import { createReferenceTopology } from "../helpers/topology.js";
import { waitFor } from "../helpers/wait.js";

const ROLES = ["ceo", "cto"];
/** Streams and consumers of the reference topology for ROLES. */
const STREAMS = ROLES.length + 1;
const CONSUMERS = ROLES.length * 2;

const dir = mkdtempSync(join(tmpdir(), "orgwatch-auth-"));
const servers: NatsServerProcess[] = [];
const daemons: Daemon[] = [];

afterAll(async () => {
  for (const d of daemons) await d.stop().catch(() => undefined);
  for (const s of servers) await s.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function server(config: string): Promise<NatsServerProcess> {
  const s = await startNatsServer({ config });
  servers.push(s);
  return s;
}

/** Creates the reference topology through an admin connection, then closes it. */
async function seed(options: ConnectionOptions): Promise<void> {
  const nc: NatsConnection = await connect(options);
  await createReferenceTopology(await jetstreamManager(nc), { roles: ROLES });
  await nc.close();
}

/**
 * Runs orgwatch with `overrides`, waits for a completed poll, and checks what it reports; then checks
 * that none of `secrets` appears in its debug-level logs, its / page or /metrics.
 */
async function watchAndCheck(
  url: string,
  overrides: Partial<Record<keyof Config, unknown>>,
  secrets: string[],
): Promise<void> {
  const captured = captureLog("trace");
  const daemon = await startTestDaemon(url, overrides, { log: captured.log });
  daemons.push(daemon);
  await daemon.pollNow();
  const m = await scrape(daemon.url);
  expect(m.value("orgwatch_nats_connected")).toBe(1);
  expect(m.value("orgwatch_poll_errors_total")).toBe(0);
  expect(m.series("orgwatch_stream_messages")).toHaveLength(STREAMS);
  expect(m.series("orgwatch_consumer_lag_messages")).toHaveLength(CONSUMERS);
  expect(m.value("orgwatch_consumer_lag_messages", { consumer: "cto-worker" })).toBe(0);
  expect(captured.messages("connected to NATS")).toHaveLength(1);
  const page = await (await fetch(daemon.url + "/")).text();
  expectNoSecret([captured.text(), m.text, page], secrets);
  await daemon.stop();
}

function expectNoSecret(texts: string[], secrets: string[]): void {
  for (const secret of secrets) {
    expect(secret.length).toBeGreaterThan(8);
    for (const text of texts)
      expect(text.includes(secret), `secret ${secret.slice(0, 4)}… leaked`).toBe(false);
  }
}

/** Waits for `times` "cannot connect" warnings (each one a retry), and returns the last. */
async function connectFailures(captured: CapturedLog, times: number): Promise<Record<string, unknown>> {
  return waitFor(
    () => {
      const failures = captured.messages("cannot connect to NATS");
      return failures.length >= times ? failures[failures.length - 1] : undefined;
    },
    { timeoutMs: 20_000, what: `${times} connection attempts` },
  );
}

describe("TLS to NATS with a CA made by the test, client certificates verified", () => {
  let pki: Pki;
  let url: string;
  beforeAll(async () => {
    pki = createPki("orgwatch-nats-ca", mkdtempSync(join(dir, "pki-")));
    const srv = pki.issue("nats-server");
    const s = await server(
      `tls { cert_file: "${srv.certFile}", key_file: "${srv.keyFile}", ca_file: "${pki.caFile}", verify: true, timeout: 5 }`,
    );
    url = s.url;
    const admin = pki.issue("admin");
    await seed({
      servers: url,
      tls: { caFile: pki.caFile, certFile: admin.certFile, keyFile: admin.keyFile },
    });
  });

  it("connects and polls with the CA, a client certificate and key", async () => {
    const client = pki.issue("orgwatch");
    await watchAndCheck(
      url,
      { "nats-tls-ca": pki.caFile, "nats-tls-cert": client.certFile, "nats-tls-key": client.keyFile },
      [client.key.toString().split("\n")[1]!],
    );
  });

  it("without the CA: a clear TLS error, retried, the daemon up and saying it is disconnected", async () => {
    const captured = captureLog("debug");
    const client = pki.issue("orgwatch-no-ca");
    const daemon = await startTestDaemon(
      url,
      { "nats-tls-cert": client.certFile, "nats-tls-key": client.keyFile },
      { log: captured.log },
    );
    daemons.push(daemon);
    const failure = await connectFailures(captured, 2);
    expect(String(failure["err"])).toMatch(/certificate/i);
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_nats_connected")).toBe(0);
    expect((await fetch(daemon.url + "/healthz")).status).toBe(200);
    expect((await fetch(daemon.url + "/readyz")).status).toBe(503);
    await daemon.stop();
  });
});

describe("user and password", () => {
  const password = "s3cret-pass-" + Math.random().toString(36).slice(2);
  let url: string;
  beforeAll(async () => {
    const s = await server(`authorization { user: orgwatch, password: "${password}" }`);
    url = s.url;
    await seed({ servers: url, user: "orgwatch", pass: password });
  });

  it("connects and polls; the password is never shown", async () => {
    await watchAndCheck(url, { "nats-user": "orgwatch", "nats-password": password }, [password]);
  });

  it("credentials in the URL work and are redacted in logs", async () => {
    const withCreds = url.replace("nats://", `nats://orgwatch:${password}@`);
    expect(redactUrl(withCreds)).toBe(url.replace("nats://", "nats://***@"));
    await watchAndCheck(withCreds, {}, [password]);
  });

  it("a wrong password in the command line: a clear error, retries, no crash, no secret shown", async () => {
    const wrong = "wrong-pass-" + Math.random().toString(36).slice(2);
    const child = spawnOrgwatch([
      "--nats-url",
      url.replace("nats://", `nats://orgwatch:${wrong}@`) + `,${url}`,
      "--nats-user",
      "orgwatch",
      "--nats-password",
      wrong,
      "--web.listen-address",
      "127.0.0.1:0",
      "--log.level",
      "debug",
    ]);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await waitFor(() => (stderr.match(/cannot connect to NATS/g)?.length ?? 0) >= 2, {
        timeoutMs: 30_000,
        what: "two failed connection attempts in the log",
      }).catch((err: Error) => {
        throw new Error(`${err.message}; exit ${child.exitCode}; stderr: ${stderr.slice(-2000)}`);
      });
      const records = stderr
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg: string; err?: string; level: number; url?: string });
      const failure = records.find((r) => r.msg.includes("cannot connect to NATS"))!;
      expect(failure.err).toMatch(/authorization violation/i);
      expect(failure.level).toBe(40);
      expect(child.exitCode).toBeNull();
      const web = records.find((r) => r.msg === "serving HTTP")!.url!;
      const m = await scrape(web);
      expect(m.value("orgwatch_nats_connected")).toBe(0);
      const page = await (await fetch(web + "/")).text();
      expectNoSecret([stderr, m.text, page], [wrong]);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });
});

describe("token", () => {
  const token = "tok-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  let url: string;
  beforeAll(async () => {
    url = (await server(`authorization { token: "${token}" }`)).url;
    await seed({ servers: url, token });
  });

  it("connects and polls; the token is never shown", async () => {
    await watchAndCheck(url, { "nats-token": token }, [token]);
  });

  it("a wrong token: a clear error, retried", async () => {
    const captured = captureLog("debug");
    const daemon = await startTestDaemon(url, { "nats-token": "not-the-token-123" }, { log: captured.log });
    daemons.push(daemon);
    const failure = await connectFailures(captured, 2);
    expect(String(failure["err"])).toMatch(/authorization violation/i);
    expect((await scrape(daemon.url)).value("orgwatch_nats_connected")).toBe(0);
    expectNoSecret([captured.text()], ["not-the-token-123"]);
    await daemon.stop();
  });
});

describe("nkey", () => {
  const user = createUser();
  const seedText = new TextDecoder().decode(user.getSeed());
  let url: string;
  let seedFile: string;
  beforeAll(async () => {
    url = (await server(`authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`)).url;
    seedFile = join(dir, "orgwatch.nk");
    writeFileSync(seedFile, seedText + "\n", { mode: 0o600 });
    await seed({ servers: url, authenticator: nkeyAuthenticator(user.getSeed()) });
  });

  it("connects and polls with the seed file; the seed is never shown", async () => {
    await watchAndCheck(url, { "nats-nkey": seedFile }, [seedText]);
  });

  it("a seed the server does not know: a clear error, retried", async () => {
    const other = join(dir, "other.nk");
    const otherSeed = new TextDecoder().decode(createUser().getSeed());
    writeFileSync(other, otherSeed, { mode: 0o600 });
    const captured = captureLog("debug");
    const daemon = await startTestDaemon(url, { "nats-nkey": other }, { log: captured.log });
    daemons.push(daemon);
    const failure = await connectFailures(captured, 2);
    expect(String(failure["err"])).toMatch(/authorization violation/i);
    expectNoSecret([captured.text()], [otherSeed]);
    await daemon.stop();
  });
});

describe("creds file (operator mode, JWTs, memory resolver)", () => {
  let url: string;
  let credsFile: string;
  let secrets: string[];
  beforeAll(async () => {
    const operator = createOperator();
    const sys = createAccount();
    const account = createAccount();
    const operatorJwt = await encodeOperator("orgwatch-test-op", operator, {
      system_account: sys.getPublicKey(),
    });
    const sysJwt = await encodeAccount("SYS", sys, {}, { signer: operator });
    const accountJwt = await encodeAccount(
      "AGENTS",
      account,
      {
        // Unset limits in an account JWT mean 0 (no connections at all): open them explicitly.
        limits: {
          conn: -1,
          subs: -1,
          data: -1,
          payload: -1,
          imports: -1,
          exports: -1,
          leaf: -1,
          wildcards: true,
          mem_storage: -1,
          disk_storage: -1,
          streams: -1,
          consumer: -1,
        },
      },
      { signer: operator },
    );
    const issueCreds = async (name: string) => {
      const u = createUser();
      const jwt = await encodeUser(name, u, account);
      const file = join(dir, `${name}.creds`);
      writeFileSync(file, fmtCreds(jwt, u), { mode: 0o600 });
      return { file, jwt, seed: new TextDecoder().decode(u.getSeed()) };
    };
    url = (
      await server(
        [
          `operator: ${operatorJwt}`,
          `system_account: ${sys.getPublicKey()}`,
          "resolver: MEMORY",
          `resolver_preload: { ${sys.getPublicKey()}: ${sysJwt}, ${account.getPublicKey()}: ${accountJwt} }`,
        ].join("\n"),
      )
    ).url;
    const admin = await issueCreds("admin");
    await seed({ servers: url, authenticator: credsAuthenticator(readFileSync(admin.file)) });
    const watcher = await issueCreds("orgwatch");
    credsFile = watcher.file;
    secrets = [watcher.seed, watcher.jwt.split(".")[2]!];
  });

  it("connects and polls with the creds file; neither seed nor JWT signature is shown", async () => {
    await watchAndCheck(url, { "nats-creds": credsFile }, secrets);
  });

  it("a user signed by an account the server does not know: a clear error, retried", async () => {
    const stranger = createAccount();
    const u = createUser();
    const file = join(dir, "stranger.creds");
    writeFileSync(file, fmtCreds(await encodeUser("stranger", u, stranger), u), { mode: 0o600 });
    const captured = captureLog("debug");
    const daemon = await startTestDaemon(url, { "nats-creds": file }, { log: captured.log });
    daemons.push(daemon);
    const failure = await connectFailures(captured, 2);
    expect(String(failure["err"])).toMatch(/authorization violation/i);
    expect((await scrape(daemon.url)).value("orgwatch_nats_connected")).toBe(0);
    await daemon.stop();
  });
});

describe("credentials rotated on the server under a running orgwatch", () => {
  it("loses the connection, keeps retrying through auth errors, and comes back when they match again", async () => {
    const good = "rotation-good-" + Math.random().toString(36).slice(2);
    const auth = (password: string) => `authorization { user: orgwatch, password: "${password}" }`;
    let s = await server(auth(good));
    const port = s.port;
    await seed({ servers: s.url, user: "orgwatch", pass: good });
    const captured = captureLog("debug");
    const daemon = await startTestDaemon(
      s.url,
      { "nats-user": "orgwatch", "nats-password": good },
      { log: captured.log },
    );
    daemons.push(daemon);
    await daemon.pollNow();

    // The same port and store, but a password orgwatch does not have.
    await s.kill();
    s = await startNatsServer({ port, storeDir: s.storeDir, config: auth("rotated-elsewhere-1") });
    servers.push(s);
    await waitFor(
      () =>
        captured.messages("NATS error").filter((r) => /authorization/i.test(String(r["err"]))).length >= 3,
      {
        timeoutMs: 20_000,
        what: "three authorization errors while reconnecting",
      },
    );
    expect((await scrape(daemon.url)).value("orgwatch_nats_connected")).toBe(0);

    await s.kill();
    s = await startNatsServer({ port, storeDir: s.storeDir, config: auth(good) });
    servers.push(s);
    await waitFor(async () => (await scrape(daemon.url)).value("orgwatch_nats_connected") === 1, {
      timeoutMs: 20_000,
      what: "reconnection once the password matches again",
    });
    await daemon.pollNow();
    const m = await scrape(daemon.url);
    expect(m.value("orgwatch_nats_reconnects_total")).toBe(1);
    expect(m.series("orgwatch_consumer_lag_messages")).toHaveLength(CONSUMERS);
    expectNoSecret([captured.text(), m.text], [good]);
    await daemon.stop();
  });
});
