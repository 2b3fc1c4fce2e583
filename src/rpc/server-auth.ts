// Who is calling and what they may do. Over TCP the caller is its client certificate, verified
// against the configured CA by the TLS layer (grpc-js reports only verified certificates), mapped to
// a role by config rules (subject CN, or a DNS/URI SAN). On the local socket, filesystem permissions
// gate access, and callers get the configured socket role. The interceptor refuses a call before
// its handler runs: UNAUTHENTICATED without a verified certificate, PERMISSION_DENIED when no rule
// matches or the role does not allow the method.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { errorMessage, InputError } from "../errors.js";

export type Role = "viewer" | "scheduler" | "operator" | "admin";

export interface RoleRule {
  readonly cn?: string | undefined;
  readonly dns?: string | undefined;
  readonly uri?: string | undefined;
  readonly role: Role;
}

/** What each role may call, by full method path prefix or path. */
export type Permission = "read" | "leases" | "mig" | "diagnostics";

const GRANTS: Record<Role, readonly Permission[]> = {
  viewer: ["read"],
  scheduler: ["read", "leases"],
  operator: ["read", "mig", "diagnostics"],
  admin: ["read", "leases", "mig", "diagnostics"],
};

export function roleAllows(role: Role, permission: Permission): boolean {
  return GRANTS[role].includes(permission);
}

export interface CallerIdentity {
  /** `cn=scheduler`, `local socket`, `insecure loopback`. */
  readonly principal: string;
  readonly role: Role | undefined;
}

/** Header names the interceptor sets for handlers (any a client sends are removed first). */
export const PRINCIPAL_HEADER = "x-tessera-principal";
export const ROLE_HEADER = "x-tessera-role";

export interface CertificateNames {
  readonly cn: readonly string[];
  readonly dns: readonly string[];
  readonly uri: readonly string[];
}

/** CN and DNS/URI SANs of a peer certificate. */
export function certificateNames(cert: PeerCertificate): CertificateNames {
  const cnRaw = (cert.subject as unknown as Record<string, string | string[] | undefined> | undefined)?.CN;
  const cn = cnRaw === undefined ? [] : Array.isArray(cnRaw) ? cnRaw : [cnRaw];
  const dns: string[] = [];
  const uri: string[] = [];
  for (const part of (cert.subjectaltname ?? "").split(/,\s*/)) {
    if (part.startsWith("DNS:")) dns.push(part.slice(4));
    else if (part.startsWith("URI:")) uri.push(part.slice(4));
  }
  return { cn, dns, uri };
}

/** The role of the first rule that matches (rules are tried in order). */
export function roleFor(names: CertificateNames, rules: readonly RoleRule[]): Role | undefined {
  for (const r of rules) {
    if (r.cn !== undefined && names.cn.includes(r.cn)) return r.role;
    if (r.dns !== undefined && names.dns.includes(r.dns)) return r.role;
    if (r.uri !== undefined && names.uri.includes(r.uri)) return r.role;
  }
  return undefined;
}

function principalOf(names: CertificateNames): string {
  if (names.cn[0]) return `cn=${names.cn[0]}`;
  if (names.dns[0]) return `dns=${names.dns[0]}`;
  if (names.uri[0]) return `uri=${names.uri[0]}`;
  return "certificate without CN or SAN";
}

export type Authenticate = (
  call: grpc.ServerInterceptingCallInterface,
) => { ok: true; identity: CallerIdentity } | { ok: false; code: grpc.status; details: string };

/** Callers on the local socket: one configured role. */
export function fixedRole(principal: string, role: Role): Authenticate {
  return () => ({ ok: true, identity: { principal, role } });
}

/** mTLS callers: a verified certificate mapped to a role by the rules. */
export function certificateRoles(rules: readonly RoleRule[]): Authenticate {
  return (call) => {
    const cert = call.getAuthContext().sslPeerCertificate;
    if (!cert)
      return {
        ok: false,
        code: grpc.status.UNAUTHENTICATED,
        details: "a client certificate signed by the agent's client CA is required",
      };
    const names = certificateNames(cert);
    return { ok: true, identity: { principal: principalOf(names), role: roleFor(names, rules) } };
  };
}

/**
 * The interceptor: authenticates, then checks the method against the role. `permissionOf` maps a
 * method path to what it needs; health checks need only authentication.
 */
export function authInterceptor(
  authenticate: Authenticate,
  permissionOf: (path: string) => Permission | "authenticated",
  onDenied: (path: string, identity: CallerIdentity | undefined, code: grpc.status, details: string) => void,
): grpc.ServerInterceptor {
  return (desc, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(md, mdNext) {
            const result = authenticate(call);
            if (!result.ok) {
              onDenied(desc.path, undefined, result.code, result.details);
              call.sendStatus({ code: result.code, details: result.details });
              return;
            }
            const { identity } = result;
            const needed = permissionOf(desc.path);
            if (needed !== "authenticated") {
              const why =
                identity.role === undefined
                  ? `${identity.principal} has no role on this agent (no auth.rules entry matches it)`
                  : roleAllows(identity.role, needed)
                    ? undefined
                    : `${identity.principal} has role ${identity.role}, which may not call ${desc.path} (needs ${needed})`;
              if (why) {
                onDenied(desc.path, identity, grpc.status.PERMISSION_DENIED, why);
                call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: why });
                return;
              }
            }
            md.remove(PRINCIPAL_HEADER);
            md.remove(ROLE_HEADER);
            md.set(PRINCIPAL_HEADER, identity.principal);
            md.set(ROLE_HEADER, identity.role ?? "");
            mdNext(md);
          },
        });
      },
    });
}

/** The identity the interceptor attached to a call. */
export function callerOf(metadata: grpc.Metadata): CallerIdentity {
  const principal = metadata.get(PRINCIPAL_HEADER)[0];
  const role = metadata.get(ROLE_HEADER)[0];
  return {
    principal: typeof principal === "string" ? principal : "unknown",
    role: typeof role === "string" && role !== "" ? (role as Role) : undefined,
  };
}

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string;
}

/**
 * Server credentials for mTLS. Client certificates are requested but not required at the TLS
 * layer, so a missing or unverifiable one reaches the interceptor and is refused with
 * UNAUTHENTICATED (a handshake failure would only say UNAVAILABLE). The files are checked now, so
 * a bad path or key fails the start with its name; they are re-read every `refreshMs` (rotation).
 */
export async function mtlsServerCredentials(files: TlsFiles, refreshMs: number): Promise<grpc.ServerCredentials> {
  const read = async (what: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new InputError(`cannot read ${what}: ${errorMessage(err)}`, { file: path });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read("tls.cert", files.cert),
    read("tls.key", files.key),
    read("tls.clientCa", files.clientCa),
  ]);
  try {
    new X509Certificate(cert);
  } catch (err) {
    throw new InputError(`tls.cert is not a PEM certificate: ${errorMessage(err)}`, { file: files.cert });
  }
  try {
    new X509Certificate(ca);
  } catch (err) {
    throw new InputError(`tls.clientCa is not a PEM certificate: ${errorMessage(err)}`, { file: files.clientCa });
  }
  try {
    createPrivateKey(key);
  } catch {
    // The key's content never goes into a message.
    throw new InputError("tls.key is not a PEM private key", { file: files.key });
  }
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: files.cert,
    privateKeyFile: files.key,
    caCertificateFile: files.clientCa,
    refreshIntervalMs: refreshMs,
  });
  // The provider reads the files asynchronously; a client that connects before it has would fail
  // its handshake (UNAVAILABLE instead of the interceptor's UNAUTHENTICATED). Wait for the first read.
  await firstCertificates(provider, 10_000);
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

function firstCertificates(provider: grpc.experimental.CertificateProvider, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let ca = false;
    let identity = false;
    // The provider keeps what it read: the server's own listeners (added when it binds) get it at
    // once, without waiting for another read.
    const done = () => {
      if (!ca || !identity) return;
      clearTimeout(timer);
      provider.removeCaCertificateListener(onCa);
      provider.removeIdentityCertificateListener(onIdentity);
      resolve();
    };
    const onCa = (u: grpc.experimental.CaCertificateUpdate | null) => {
      ca = u !== null;
      done();
    };
    const onIdentity = (u: grpc.experimental.IdentityCertificateUpdate | null) => {
      identity = u !== null;
      done();
    };
    const timer = setTimeout(() => {
      provider.removeCaCertificateListener(onCa);
      provider.removeIdentityCertificateListener(onIdentity);
      reject(new InputError(`TLS certificates not loaded within ${timeoutMs} ms`));
    }, timeoutMs);
    provider.addCaCertificateListener(onCa);
    provider.addIdentityCertificateListener(onIdentity);
  });
}
