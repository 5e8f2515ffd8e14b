// A throwaway PKI for tests: a CA and certificates it signs, made with the openssl command line.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface IssuedCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  /** A certificate signed by this CA, valid for server and client use. */
  issue(name: string, sans?: string[]): IssuedCert;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** A CA in a fresh temporary directory. Default SANs: localhost and 127.0.0.1. */
export function createPki(
  caName = "orgwatch-test-ca",
  dir = mkdtempSync(join(tmpdir(), "orgwatch-pki-")),
): Pki {
  openssl(
    [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      `/CN=${caName}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  const caFile = join(dir, "ca.pem");
  return {
    dir,
    caFile,
    ca: readFileSync(caFile),
    issue(name, sans = ["DNS:localhost", "IP:127.0.0.1"]) {
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        [
          "basicConstraints=CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=serverAuth,clientAuth",
          `subjectAltName=${sans.join(",")}`,
        ].join("\n") + "\n",
      );
      openssl(["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`], dir);
      openssl(
        [
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${name}.pem`,
          "-days",
          "2",
          "-extfile",
          ext,
        ],
        dir,
      );
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}.key`);
      return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
