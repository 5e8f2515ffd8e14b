// `--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit format, so the same
// file that secures node_exporter secures orgwatch. Unknown keys are errors, as in the toolkit
// (it parses strictly): a misspelt `basic_auth_user` must not silently leave the endpoint open.
import { createHmac, randomBytes, timingSafeEqual, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { createSecureContext, type TLSSocket, type TlsOptions } from "node:tls";
import bcrypt from "bcryptjs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "../config/schema.js";
import { parseDuration } from "../config/duration.js";

const SETTING = "--web.config.file";

/** Go's crypto/tls names (what the toolkit accepts) → OpenSSL names. TLS 1.3 suites are not configurable in Go either. */
const CIPHERS: Record<string, string | null> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_AES_128_GCM_SHA256: null,
  TLS_AES_256_GCM_SHA384: null,
  TLS_CHACHA20_POLY1305_SHA256: null,
};
const TLS13_SUITES = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
const CURVES: Record<string, string> = {
  CurveP256: "P-256",
  CurveP384: "P-384",
  CurveP521: "P-521",
  X25519: "X25519",
};
const TLS_VERSIONS = { TLS10: "TLSv1", TLS11: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3" } as const;
const CLIENT_AUTH_TYPES = [
  "NoClientCert",
  "RequestClientCert",
  "RequireAnyClientCert",
  "RequireClientCert",
  "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert",
] as const;
/** Only these headers may be set, with these values when listed (as in the toolkit). */
const EXTRA_HEADERS: Record<string, readonly string[] | null> = {
  "Strict-Transport-Security": null,
  "X-Content-Type-Options": ["nosniff"],
  "X-Frame-Options": ["deny", "sameorigin"],
  "X-XSS-Protection": null,
  "Content-Security-Policy": null,
};
const BCRYPT_HASH = /^\$2[aby]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

const fileSchema = z
  .object({
    tls_server_config: z
      .object({
        cert: z.string().optional(),
        key: z.string().optional(),
        client_ca: z.string().optional(),
        cert_file: z.string().optional(),
        key_file: z.string().optional(),
        client_auth_type: z.enum(CLIENT_AUTH_TYPES).optional(),
        client_ca_file: z.string().optional(),
        client_allowed_sans: z.array(z.string()).optional(),
        min_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).optional(),
        max_version: z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS]).optional(),
        cipher_suites: z.array(z.enum(Object.keys(CIPHERS) as [string])).optional(),
        curve_preferences: z.array(z.enum(Object.keys(CURVES) as [string])).optional(),
        prefer_server_cipher_suites: z.boolean().optional(),
      })
      .strict()
      .nullish(),
    http_server_config: z
      .object({
        // HTTP/2 is an optimisation orgwatch does not offer; the key is accepted so shared files work.
        http2: z.boolean().optional(),
        headers: z.record(z.string(), z.string()).optional(),
      })
      .strict()
      .nullish(),
    basic_auth_users: z.record(z.string(), z.string()).nullish(),
    rate_limit: z
      .object({ interval: z.union([z.string(), z.number()]).optional(), burst: z.number().int().optional() })
      .strict()
      .nullish(),
  })
  .strict();

export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

export interface WebTls {
  /** Options for https.createServer. */
  readonly options: TlsOptions;
  readonly clientAuth: ClientAuthType;
  readonly allowedSans: readonly string[] | undefined;
}

export interface WebConfig {
  readonly tls: WebTls | undefined;
  /** User name → bcrypt hash. Empty: no authentication. */
  readonly users: ReadonlyMap<string, string>;
  readonly headers: Readonly<Record<string, string>>;
  readonly rateLimit: { readonly intervalMs: number; readonly burst: number } | undefined;
}

function fail(path: string, problem: string): never {
  throw new ConfigError(SETTING, `${path}: ${problem}`);
}

function readPem(configPath: string, field: string, file: string): Buffer {
  const full = isAbsolute(file) ? file : join(dirname(configPath), file);
  try {
    return readFileSync(full);
  } catch (err) {
    fail(configPath, `${field}: cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Reads and checks the whole file (certificates and hashes included); throws ConfigError with one line. */
export function loadWebConfig(path: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    fail(path, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    fail(path, `not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const parsed = fileSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.join(".");
    const problem =
      issue.code === "unrecognized_keys" ? `unknown key ${issue.keys.join(", ")}` : issue.message;
    fail(path, where ? `${where}: ${problem}` : problem);
  }
  const file = parsed.data;

  const users = new Map<string, string>();
  for (const [user, hash] of Object.entries(file.basic_auth_users ?? {})) {
    // The hash itself is a secret: name the user, never show the value.
    if (!BCRYPT_HASH.test(hash)) fail(path, `basic_auth_users.${user}: not a bcrypt hash`);
    users.set(user, hash);
  }

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(file.http_server_config?.headers ?? {})) {
    if (!(name in EXTRA_HEADERS)) fail(path, `http_server_config.headers: header ${name} cannot be set`);
    const allowed = EXTRA_HEADERS[name];
    if (allowed && !allowed.includes(value))
      fail(path, `http_server_config.headers.${name}: must be one of ${allowed.join(", ")}`);
    if (value !== "") headers[name] = value;
  }

  let rateLimit: WebConfig["rateLimit"];
  if (file.rate_limit?.interval !== undefined) {
    const raw = file.rate_limit.interval;
    const intervalMs = typeof raw === "number" ? raw / 1e6 : parseDuration(raw);
    if (intervalMs === undefined) fail(path, `rate_limit.interval: "${raw}" is not a duration`);
    if (intervalMs > 0) rateLimit = { intervalMs, burst: Math.max(1, file.rate_limit.burst ?? 1) };
  }

  return { tls: toTls(path, file.tls_server_config ?? undefined), users, headers, rateLimit };
}

type TlsSection = NonNullable<z.infer<typeof fileSchema>["tls_server_config"]>;

function toTls(path: string, t: TlsSection | undefined): WebTls | undefined {
  // As in the toolkit: a tls_server_config with nothing that enables TLS means plain HTTP.
  if (
    !t ||
    (t.cert_file ??
      t.cert ??
      t.key_file ??
      t.key ??
      t.client_ca_file ??
      t.client_ca ??
      t.client_auth_type) === undefined
  )
    return undefined;
  if (!t.cert_file && !t.cert) fail(path, "tls_server_config: missing one of cert or cert_file");
  if (!t.key_file && !t.key) fail(path, "tls_server_config: missing one of key or key_file");
  const cert = t.cert_file ? readPem(path, "tls_server_config.cert_file", t.cert_file) : Buffer.from(t.cert!);
  const key = t.key_file ? readPem(path, "tls_server_config.key_file", t.key_file) : Buffer.from(t.key!);
  let ca: Buffer | undefined;
  if (t.client_ca_file) ca = readPem(path, "tls_server_config.client_ca_file", t.client_ca_file);
  else if (t.client_ca) ca = Buffer.from(t.client_ca);

  try {
    new X509Certificate(cert);
  } catch (err) {
    fail(path, `tls_server_config: the certificate is not a PEM certificate (${(err as Error).message})`);
  }
  if (ca) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      fail(path, `tls_server_config: the client CA is not a PEM certificate (${(err as Error).message})`);
    }
  }

  const clientAuth: ClientAuthType =
    t.client_auth_type === "RequireClientCert"
      ? "RequireAnyClientCert"
      : (t.client_auth_type ?? "NoClientCert");
  if (ca && clientAuth === "NoClientCert")
    fail(path, "tls_server_config: a client CA is configured without a client_auth_type");
  if (
    t.client_allowed_sans !== undefined &&
    clientAuth !== "RequireAnyClientCert" &&
    clientAuth !== "RequireAndVerifyClientCert"
  )
    fail(
      path,
      "tls_server_config.client_allowed_sans: needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
    );

  const options: TlsOptions = {
    cert,
    key,
    minVersion: TLS_VERSIONS[t.min_version ?? "TLS12"],
    maxVersion: TLS_VERSIONS[t.max_version ?? "TLS13"],
    honorCipherOrder: t.prefer_server_cipher_suites ?? true,
    // Only RequireAndVerifyClientCert lets OpenSSL refuse the handshake; the other policies are
    // checked on the established connection (see checkClientCertificate).
    requestCert: clientAuth !== "NoClientCert",
    rejectUnauthorized: clientAuth === "RequireAndVerifyClientCert",
    // A TLS handshake that does not finish must not hold a socket for Node's default 120 s.
    handshakeTimeout: 10_000,
  };
  if (ca) options.ca = ca;
  const tls12 = (t.cipher_suites ?? []).map((name) => CIPHERS[name]).filter((c): c is string => !!c);
  if (tls12.length > 0) options.ciphers = `${TLS13_SUITES}:${tls12.join(":")}`;
  if (t.curve_preferences?.length) options.ecdhCurve = t.curve_preferences.map((c) => CURVES[c]).join(":");
  try {
    // Fails here, at start, on a key that does not match the certificate or an impossible cipher list.
    createSecureContext(options);
  } catch (err) {
    fail(path, `tls_server_config: ${(err as Error).message}`);
  }
  return { options, clientAuth, allowedSans: t.client_allowed_sans };
}

/** Subject alternative names as the toolkit compares them: DNS names, e-mails, IPs and URIs. */
function subjectAltNames(raw: Buffer): string[] {
  const san = new X509Certificate(raw).subjectAltName ?? "";
  const out: string[] = [];
  // Entries are "TYPE:value" separated by ", "; values containing separators are JSON-quoted.
  for (const m of san.matchAll(/(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    out.push(value);
  }
  return out;
}

/**
 * The client-certificate policies OpenSSL does not enforce by itself: RequireAnyClientCert (a
 * certificate, not verified), VerifyClientCertIfGiven (verified when given) and the SAN allow list.
 * Returns why the connection is refused, or undefined.
 */
export function checkClientCertificate(tls: WebTls, socket: TLSSocket): string | undefined {
  if (tls.clientAuth === "NoClientCert" || tls.clientAuth === "RequestClientCert") return undefined;
  const peer = socket.getPeerCertificate();
  const given = peer !== null && peer.raw !== undefined;
  if (!given) {
    return tls.clientAuth === "VerifyClientCertIfGiven" ? undefined : "no client certificate";
  }
  if (tls.clientAuth !== "RequireAnyClientCert" && !socket.authorized)
    return `client certificate not trusted (${String(socket.authorizationError)})`;
  if (tls.allowedSans) {
    const sans = subjectAltNames(peer.raw);
    if (!sans.some((s) => tls.allowedSans!.includes(s))) return "client certificate has no allowed SAN";
  }
  return undefined;
}

/** How long a verified user/password pair is remembered, so that scrapes do not each pay for bcrypt. */
const AUTH_CACHE_MS = 5 * 60_000;
/** Bound on requests waiting for a bcrypt check; beyond it requests are turned away at once. */
const MAX_WAITING = 64;

export type AuthResult = "ok" | "denied" | "busy";

/**
 * Basic auth against bcrypt hashes. bcrypt runs one check at a time (it is CPU-bound); successes are
 * remembered for a few minutes as an HMAC under a per-process random key, compared in constant time.
 * Failures are not remembered, so guessing always pays bcrypt's price. An unknown user is checked
 * against a dummy hash of the same cost, so timing does not tell which users exist.
 */
export class BasicAuth {
  private readonly hmacKey = randomBytes(32);
  private readonly verified = new Map<string, { digest: Buffer; until: number }>();
  private readonly dummyHash: string;
  private queue: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly users: ReadonlyMap<string, string>,
    private readonly now: () => number = Date.now,
  ) {
    const maxCost = Math.max(4, ...[...users.values()].map((h) => bcrypt.getRounds(h)));
    this.dummyHash = bcrypt.genSaltSync(maxCost) + "O".repeat(31);
  }

  get enabled(): boolean {
    return this.users.size > 0;
  }

  private digest(hash: string, password: string): Buffer {
    return createHmac("sha256", this.hmacKey).update(hash).update("\0").update(password).digest();
  }

  /** Checks an Authorization header value. */
  async check(authorization: string | undefined): Promise<AuthResult> {
    const credentials = parseBasic(authorization);
    if (!credentials) return "denied";
    const { user, password } = credentials;
    const hash = this.users.get(user);
    if (hash !== undefined) {
      const cached = this.verified.get(user);
      if (cached && cached.until > this.now() && timingSafeEqual(cached.digest, this.digest(hash, password)))
        return "ok";
    }
    if (this.waiting >= MAX_WAITING) return "busy";
    this.waiting++;
    const run = this.queue.then(() => bcrypt.compare(password, hash ?? this.dummyHash));
    this.queue = run.catch(() => false);
    try {
      const match = await run;
      if (!match || hash === undefined) return "denied";
      this.verified.set(user, { digest: this.digest(hash, password), until: this.now() + AUTH_CACHE_MS });
      return "ok";
    } catch {
      return "denied";
    } finally {
      this.waiting--;
    }
  }
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A token bucket (`rate_limit`): `burst` requests at once, one more every `intervalMs`. */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  allow(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) / this.intervalMs);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
