// Who calls the scheduler and what they may do. The same shape as the agent's (src/rpc/server-auth.ts):
// over TCP the caller is its verified client certificate mapped to a role by config rules (CN, or a
// DNS/URI SAN, first match wins); on the local socket and the development listener callers get the
// configured role. An interceptor refuses a call before its handler runs: UNAUTHENTICATED without a
// verified certificate, PERMISSION_DENIED when no rule matches or the role does not allow the method.
// A rule may also narrow a role: `tenants` (a tenant may place and release only for those) and
// `nodes` (an agent may register only those node ids); handlers check those against the request.
import * as grpc from "@grpc/grpc-js";
import { TesseraError } from "../errors.js";
import { certificateNames } from "../rpc/server-auth.js";
import type { SchedulerRole, SchedulerRoleRule } from "./config.js";

export type SchedulerPermission = "register" | "read" | "place";

const GRANTS: Readonly<Record<SchedulerRole, readonly SchedulerPermission[]>> = {
  viewer: ["read"],
  tenant: ["read", "place"],
  node: ["register"],
  admin: ["register", "read", "place"],
};

export function schedulerRoleAllows(role: SchedulerRole, permission: SchedulerPermission): boolean {
  return GRANTS[role].includes(permission);
}

export interface SchedulerCaller {
  /** `cn=team-a`, `local socket`, `insecure loopback`. */
  readonly principal: string;
  readonly role: SchedulerRole | undefined;
  /** Tenants a `tenant` caller may act for; null: any. */
  readonly tenants: readonly string[] | null;
  /** Node ids a `node` caller may register; null: any. */
  readonly nodes: readonly string[] | null;
}

export class PermissionDeniedError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_PERMISSION_DENIED", message);
  }
}

const PRINCIPAL_HEADER = "x-tessera-principal";
const ROLE_HEADER = "x-tessera-role";
const SCOPE_HEADER = "x-tessera-scope";

export type SchedulerAuthenticate = (
  call: grpc.ServerInterceptingCallInterface,
) => { ok: true; caller: SchedulerCaller } | { ok: false; code: grpc.status; details: string };

/** Callers on the local socket or the development listener: one configured role, unrestricted. */
export function fixedCaller(principal: string, role: SchedulerRole): SchedulerAuthenticate {
  const caller: SchedulerCaller = { principal, role, tenants: null, nodes: null };
  return () => ({ ok: true, caller });
}

function principalOf(names: ReturnType<typeof certificateNames>): string {
  if (names.cn[0]) return `cn=${names.cn[0]}`;
  if (names.dns[0]) return `dns=${names.dns[0]}`;
  if (names.uri[0]) return `uri=${names.uri[0]}`;
  return "certificate without CN or SAN";
}

/** mTLS callers: a verified certificate mapped to a role (and its narrowing) by the first matching rule. */
export function certificateCallers(rules: readonly SchedulerRoleRule[]): SchedulerAuthenticate {
  return (call) => {
    const cert = call.getAuthContext().sslPeerCertificate;
    if (!cert)
      return {
        ok: false,
        code: grpc.status.UNAUTHENTICATED,
        details: "a client certificate signed by the scheduler's client CA is required",
      };
    const names = certificateNames(cert);
    const principal = principalOf(names);
    const rule = rules.find(
      (r) =>
        (r.cn !== undefined && names.cn.includes(r.cn)) ||
        (r.dns !== undefined && names.dns.includes(r.dns)) ||
        (r.uri !== undefined && names.uri.includes(r.uri)),
    );
    return {
      ok: true,
      caller: { principal, role: rule?.role, tenants: rule?.tenants ?? null, nodes: rule?.nodes ?? null },
    };
  };
}

/** Refuses calls the caller's role does not allow; passes the caller to handlers in metadata. */
export function schedulerAuthInterceptor(
  authenticate: SchedulerAuthenticate,
  permissionOf: (path: string) => SchedulerPermission | "authenticated",
  onDenied: (path: string, caller: SchedulerCaller | undefined, code: grpc.status, details: string) => void,
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
            const { caller } = result;
            const needed = permissionOf(desc.path);
            if (needed !== "authenticated") {
              const why =
                caller.role === undefined
                  ? `${caller.principal} has no role on this scheduler (no auth.rules entry matches it)`
                  : schedulerRoleAllows(caller.role, needed)
                    ? undefined
                    : `${caller.principal} has role ${caller.role}, which may not call ${desc.path} (needs ${needed})`;
              if (why) {
                onDenied(desc.path, caller, grpc.status.PERMISSION_DENIED, why);
                call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: why });
                return;
              }
            }
            // Whatever a client sent under these names is replaced.
            md.remove(PRINCIPAL_HEADER);
            md.remove(ROLE_HEADER);
            md.remove(SCOPE_HEADER);
            md.set(PRINCIPAL_HEADER, caller.principal);
            md.set(ROLE_HEADER, caller.role ?? "");
            md.set(SCOPE_HEADER, JSON.stringify({ tenants: caller.tenants, nodes: caller.nodes }));
            mdNext(md);
          },
        });
      },
    });
}

/** The caller the interceptor attached to a call. */
export function schedulerCallerOf(metadata: grpc.Metadata): SchedulerCaller {
  const principal = metadata.get(PRINCIPAL_HEADER)[0];
  const role = metadata.get(ROLE_HEADER)[0];
  const scopeText = metadata.get(SCOPE_HEADER)[0];
  let scope: { tenants: string[] | null; nodes: string[] | null } = { tenants: [], nodes: [] };
  if (typeof scopeText === "string") {
    try {
      scope = JSON.parse(scopeText) as typeof scope;
    } catch {
      // Only the interceptor writes this header; unreadable means: allow nothing.
    }
  }
  return {
    principal: typeof principal === "string" ? principal : "unknown",
    role: typeof role === "string" && role !== "" ? (role as SchedulerRole) : undefined,
    tenants: scope.tenants,
    nodes: scope.nodes,
  };
}

/** Throws PermissionDeniedError when a narrowed tenant caller acts for another tenant. */
export function checkTenant(caller: SchedulerCaller, tenant: string): void {
  if (caller.tenants !== null && !caller.tenants.includes(tenant))
    throw new PermissionDeniedError(
      `${caller.principal} may act for tenants ${caller.tenants.join(", ")} only, not ${tenant}`,
    );
}

/** Throws PermissionDeniedError when a narrowed node caller registers another node id. */
export function checkNode(caller: SchedulerCaller, nodeId: string): void {
  if (caller.nodes !== null && !caller.nodes.includes(nodeId))
    throw new PermissionDeniedError(
      `${caller.principal} may register nodes ${caller.nodes.join(", ")} only, not ${nodeId}`,
    );
}
