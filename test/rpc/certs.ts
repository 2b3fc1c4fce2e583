// Test certificates, made with openssl at test time: a CA, a server certificate for localhost and
// 127.0.0.1, client certificates with chosen CNs (and optional URI SANs), and a client certificate
// from a different CA. EC P-256 keys keep it to a fraction of a second.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  readonly server: CertPair;
  /** By name: the client's CN. */
  readonly clients: Readonly<Record<string, CertPair>>;
  /** A client whose certificate another CA signed (CN admin). */
  readonly rogue: CertPair;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function key(dir: string, name: string): string {
  const path = join(dir, `${name}.key`);
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path], dir);
  return path;
}

function ca(dir: string, name: string): CertPair {
  const k = key(dir, name);
  const cert = join(dir, `${name}.crt`);
  openssl(["req", "-x509", "-new", "-key", k, "-out", cert, "-days", "2", "-subj", `/CN=${name}`], dir);
  return { cert, key: k };
}

function issue(dir: string, issuer: CertPair, name: string, cn: string, extensions: string): CertPair {
  const k = key(dir, name);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(["req", "-new", "-key", k, "-out", csr, "-subj", `/CN=${cn}`], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      issuer.cert,
      "-CAkey",
      issuer.key,
      "-CAcreateserial",
      "-out",
      cert,
      "-days",
      "2",
      "-extfile",
      ext,
    ],
    dir,
  );
  return { cert, key: k };
}

/** `clients`: CN → extra SANs (e.g. `URI:spiffe://tessera/scheduler`), or [] for none. */
export function makePki(clients: Readonly<Record<string, readonly string[]>>): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "tessera-pki-"));
  const root = ca(dir, "tessera-test-ca");
  const server = issue(
    dir,
    root,
    "server",
    "tessera-agent",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  const issued: Record<string, CertPair> = {};
  for (const [cn, sans] of Object.entries(clients)) {
    const san = sans.length > 0 ? `subjectAltName=${sans.join(",")}\n` : "";
    issued[cn] = issue(dir, root, `client-${cn}`, cn, `${san}extendedKeyUsage=clientAuth\n`);
  }
  const other = ca(dir, "other-ca");
  const rogue = issue(dir, other, "rogue", "admin-1", "extendedKeyUsage=clientAuth\n");
  return { dir, ca: root.cert, server, clients: issued, rogue };
}
