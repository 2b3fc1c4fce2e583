// The agent's gRPC listeners: the local unix socket (mode and group from config; callers get the
// socket role) and TCP (mTLS with certificate roles, or plaintext on loopback in development). Each
// listener is its own grpc.Server so that its interceptor knows how callers arrived. All of them
// serve NodeAgentService, the standard health service and server reflection.
import { chmod, chown, lstat, mkdir, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { errorMessage, TesseraError } from "../errors.js";
import { file_tessera_v1_agent, NodeAgentService } from "../gen/tessera/v1/agent_pb.js";
import { addService, methodPaths, type ServiceImpl } from "../rpc/grpc-adapter.js";
import { HEALTH_SERVICE, HealthService } from "../rpc/health.js";
import { REFLECTION_SERVICES, Reflection } from "../rpc/reflection.js";
import { type Authenticate, authInterceptor, type Permission } from "../rpc/server-auth.js";
import type { Logger } from "./logger.js";

type Methods = (typeof NodeAgentService)["method"];

const PATHS = methodPaths(NodeAgentService);
const PERMISSIONS = new Map<string, Permission>([
  [PATHS.getNode, "read"],
  [PATHS.watchNode, "read"],
  [PATHS.getMigLayout, "read"],
  [PATHS.planMigLayout, "read"],
  [PATHS.listLeases, "read"],
  [PATHS.allocate, "leases"],
  [PATHS.release, "leases"],
  [PATHS.applyMigLayout, "mig"],
  [PATHS.runDiagnostics, "diagnostics"],
]);

/** What a method needs; health checks need only an authenticated caller. */
export function permissionOf(path: string): Permission | "authenticated" {
  if (path.startsWith(`/${HEALTH_SERVICE}/`)) return "authenticated";
  return PERMISSIONS.get(path) ?? "read";
}

export const SERVICE_NAME = NodeAgentService.typeName;

export interface ListenerOptions {
  readonly impl: ServiceImpl<Methods>;
  readonly health: HealthService;
  readonly authenticate: Authenticate;
  readonly log: Logger;
  readonly onDenied?: (path: string, code: grpc.status) => void;
}

const SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.max_receive_message_length": 4 << 20,
};

export function buildServer(o: ListenerOptions): grpc.Server {
  const server = new grpc.Server({
    ...SERVER_OPTIONS,
    interceptors: [
      authInterceptor(o.authenticate, permissionOf, (path, identity, code, details) => {
        o.log.warn({ method: path, caller: identity?.principal, code: grpc.status[code], details }, "call refused");
        o.onDenied?.(path, code);
      }),
    ],
  });
  addService(server, NodeAgentService, o.impl);
  o.health.addToServer(server);
  new Reflection([file_tessera_v1_agent], [HEALTH_SERVICE, ...REFLECTION_SERVICES]).addToServer(server);
  return server;
}

export function newHealth(): HealthService {
  return new HealthService({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
}

export function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

export class SocketInUseError extends TesseraError {
  constructor(path: string, why: string) {
    super("TESSERA_SOCKET", `cannot use ${path}: ${why}`);
  }
}

/** Removes a stale socket left by a previous run (never a regular file someone put there). */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new SocketInUseError(path, "it exists and is not a socket");
    await rm(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** The gid of a group by name from /etc/group; undefined when there is no such group. */
export async function groupId(name: string, groupFile = "/etc/group"): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(groupFile, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const [group, , gid] = line.split(":");
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/** Applies the socket's mode and group; a missing group is logged, not fatal. */
export async function secureSocket(path: string, mode: string, group: string, log: Logger): Promise<void> {
  await chmod(path, Number.parseInt(mode, 8));
  if (group === "") return;
  const gid = await groupId(group);
  if (gid === undefined) {
    log.info({ socket: path, group }, "socket group does not exist on this host; the socket keeps the agent's group");
    return;
  }
  try {
    await chown(path, -1, gid);
  } catch (err) {
    log.warn({ socket: path, group, err: errorMessage(err) }, "cannot give the socket its group");
  }
}
