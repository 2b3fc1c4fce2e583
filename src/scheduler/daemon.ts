// tessera-scheduler's lifecycle. Start: an empty cluster view (the scheduler keeps no state of
// its own), the agent links, the decision engine, then the listeners (local socket, TCP with mTLS
// or plaintext on loopback for development). Agents register and renew; each registration opens
// (or renews) a link whose WatchNode stream rebuilds that node's part of the view, leases
// included. Place and Release wait out a startup grace period so that every live agent has
// re-registered before a workload id can be looked up. A ticker marks nodes whose registration
// lease expired unavailable (their leases stay in the view). Stop (SIGTERM/SIGINT): refuse new
// calls, let calls in flight finish within the grace period, close the links.
import { chmod, readFile } from "node:fs/promises";
import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { isLoopbackHost, parseHostPort } from "../agent/config.js";
import { bind, prepareSocketPath } from "../agent/servers.js";
import { errorMessage, InputError, TesseraError } from "../errors.js";
import { file_tessera_v1_scheduler, SchedulerService } from "../gen/tessera/v1/scheduler_pb.js";
import { addService, methodPaths } from "../rpc/grpc-adapter.js";
import { mtlsServerCredentials } from "../rpc/server-auth.js";
import { AgentLinks } from "./agent-link.js";
import {
  certificateCallers,
  fixedCaller,
  type SchedulerAuthenticate,
  type SchedulerPermission,
  schedulerAuthInterceptor,
} from "./auth.js";
import { type ClusterView, createClusterView, nodeAvailable } from "./cluster.js";
import type { SchedulerConfig } from "./config.js";
import { DecisionEngine } from "./decisions.js";
import { DemandHistogram } from "./demand-histogram.js";
import type { Logger } from "./logger.js";
import { SchedulerStats } from "./scheduler-proto.js";
import { schedulerService } from "./service.js";

export interface SchedulerEndpoints {
  readonly socket: string | undefined;
  /** `host:port` actually bound (port 0 resolved). */
  readonly tcp: string | undefined;
}

export interface SchedulerOptions {
  readonly config: SchedulerConfig;
  readonly log: Logger;
  readonly clock?: () => number;
}

export const SCHEDULER_SERVICE_NAME = SchedulerService.typeName;

const PATHS = methodPaths(SchedulerService);
const PERMISSIONS = new Map<string, SchedulerPermission>([
  [PATHS.registerNode, "register"],
  [PATHS.place, "place"],
  [PATHS.releaseWorkload, "place"],
  [PATHS.getCluster, "read"],
  [PATHS.watchCluster, "read"],
  [PATHS.explain, "read"],
]);

/** What a scheduler method needs; health checks need only an authenticated caller. */
export function schedulerPermissionOf(path: string): SchedulerPermission | "authenticated" {
  if (path.startsWith("/grpc.health.v1.Health/")) return "authenticated";
  return PERMISSIONS.get(path) ?? "read";
}

const SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.max_receive_message_length": 4 << 20,
};

const EXPIRY_TICK_MS = 250;
/** Agents sweep every second by default; a destroyed instance shows as gone within a few sweeps. */
const DESTROYED_HOLD_MS = 5_000;

/** An agent address the scheduler will not connect to with its configuration. */
export class AgentAddressError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_INVALID_ARGUMENT", message);
  }
}

function reflectionService(): ReflectionService {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.set(f.proto.name, f);
    for (const dep of f.dependencies) visit(dep);
  };
  visit(file_tessera_v1_scheduler);
  const fileDescriptorProtos = [...seen.values()].map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
  return new ReflectionService({ all: { fileDescriptorProtos } } as unknown as ConstructorParameters<
    typeof ReflectionService
  >[0]);
}

async function pem(what: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InputError(`cannot read ${what}: ${errorMessage(err)}`, { file: path });
  }
}

export class Scheduler {
  readonly #config: SchedulerConfig;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly view: ClusterView;
  readonly demand = new DemandHistogram();
  readonly stats: SchedulerStats;
  #links: AgentLinks | undefined;
  #engine: DecisionEngine | undefined;
  #servers: grpc.Server[] = [];
  #health: HealthImplementation | undefined;
  #ticker: NodeJS.Timeout | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #readyAtMs = 0;
  #wasReady = false;
  readonly #available = new Map<string, boolean>();

  constructor(options: SchedulerOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#clock = options.clock ?? Date.now;
    const n = options.config.nodes;
    this.view = createClusterView({
      nodeLeaseTtlMs: n.leaseTtlMs,
      overlayTtlMs: n.overlayTtlMs,
      xidHoldMs: n.xidHoldMs,
      tombstoneTtlMs: DESTROYED_HOLD_MS,
    });
    this.stats = new SchedulerStats(this.#clock());
  }

  get engine(): DecisionEngine {
    if (!this.#engine) throw new Error("the scheduler has not started");
    return this.#engine;
  }

  /** Null once Place may run; else why not. */
  notReady(): string | null {
    if (this.#stopping) return "the scheduler is shutting down";
    const left = this.#readyAtMs - this.#clock();
    if (left <= 0) return null;
    let snapshots = 0;
    for (const node of this.view.nodes.values()) if (node.hasSnapshot) snapshots++;
    return (
      `rebuilding the cluster view from the agents after a start: ${this.view.nodes.size} nodes registered, ` +
      `${snapshots} reported; placing in ${Math.ceil(left)} ms (placement.startupGraceMs)`
    );
  }

  async start(): Promise<SchedulerEndpoints> {
    const c = this.#config;
    const log = this.#log;
    const startedAt = this.#clock();
    this.#readyAtMs = startedAt + c.placement.startupGraceMs;

    let agentCreds: grpc.ChannelCredentials | undefined;
    if (!c.agents.insecure) {
      const [ca, cert, key] = await Promise.all([
        pem("agents.tls.ca", c.agents.tls.ca),
        pem("agents.tls.cert", c.agents.tls.cert),
        pem("agents.tls.key", c.agents.tls.key),
      ]);
      agentCreds = grpc.credentials.createSsl(ca, key, cert);
    }
    const insecureCreds = grpc.credentials.createInsecure();
    const credentialsFor = (address: string) =>
      address.startsWith("unix:") || agentCreds === undefined ? insecureCreds : agentCreds;
    const checkAddress = (address: string) => {
      if (address.startsWith("unix:") || !c.agents.insecure) return;
      const hp = parseHostPort(address);
      if (hp && !isLoopbackHost(hp.host))
        throw new AgentAddressError(
          `address: ${address} is not on loopback; this scheduler reaches agents in plaintext (agents.insecure, for development) and so only on loopback`,
        );
    };

    let changes = 0;
    const links = new AgentLinks({
      view: this.view,
      clock: this.#clock,
      log,
      credentialsFor,
      callTimeoutMs: c.agents.callTimeoutMs,
      resyncIntervalMs: c.agents.resyncIntervalMs,
      reconnectMinMs: c.agents.reconnectMinMs,
      reconnectMaxMs: c.agents.reconnectMaxMs,
      changed: () => {
        changes++;
      },
    });
    this.#links = links;
    const engine = new DecisionEngine({
      view: this.view,
      agent: links,
      demand: this.demand,
      quotas: c.quotaConfig,
      clock: this.#clock,
      policy: c.placement.policy,
      agentTimeoutMs: c.agents.callTimeoutMs,
    });
    this.#engine = engine;

    const impl = schedulerService({
      view: this.view,
      engine,
      demand: this.demand,
      quotas: () => engine.quotas,
      clock: this.#clock,
      log,
      stats: this.stats,
      allowSimulated: c.nodes.allowSimulated,
      leaseBounds: { defaultMs: c.nodes.leaseTtlMs, minMs: c.nodes.minLeaseTtlMs, maxMs: c.nodes.maxLeaseTtlMs },
      notReady: () => this.notReady(),
      checkAddress,
      onRegister: (nodeId, address) => {
        links.ensure(nodeId, address);
      },
      linkState: (nodeId) => links.get(nodeId)?.state ?? "no link",
      stopping: () => this.#stopping,
    });

    const health = new HealthImplementation({ "": "NOT_SERVING", [SCHEDULER_SERVICE_NAME]: "NOT_SERVING" });
    this.#health = health;
    const build = (authenticate: SchedulerAuthenticate) => {
      const server = new grpc.Server({
        ...SERVER_OPTIONS,
        interceptors: [
          schedulerAuthInterceptor(authenticate, schedulerPermissionOf, (path, caller, code, details) => {
            log.warn({ method: path, caller: caller?.principal, code: grpc.status[code], details }, "call refused");
          }),
        ],
      });
      addService(server, SchedulerService, impl);
      health.addToServer(server);
      reflectionService().addToServer(server);
      return server;
    };

    let socket: string | undefined;
    if (c.listen.socket !== "") {
      await prepareSocketPath(c.listen.socket);
      const server = build(fixedCaller("local socket", c.auth.socketRole));
      await bind(server, `unix://${c.listen.socket}`, grpc.ServerCredentials.createInsecure());
      await chmod(c.listen.socket, Number.parseInt(c.listen.socketMode, 8));
      this.#servers.push(server);
      socket = c.listen.socket;
    }
    let tcp: string | undefined;
    if (c.listen.tcp !== "") {
      const hp = parseHostPort(c.listen.tcp) as { host: string; port: number };
      const insecure = c.listen.devInsecure;
      const server = build(
        insecure ? fixedCaller("insecure loopback", c.auth.devInsecureRole) : certificateCallers(c.auth.rules),
      );
      const creds = insecure
        ? grpc.ServerCredentials.createInsecure()
        : await mtlsServerCredentials({ cert: c.tls.cert, key: c.tls.key, clientCa: c.tls.clientCa }, 5 * 60_000);
      const host = hp.host.includes(":") ? `[${hp.host}]` : hp.host;
      const port = await bind(server, `${host}:${hp.port}`, creds);
      if (insecure)
        log.warn({ tcp: `${host}:${port}` }, "plaintext gRPC on loopback (--dev-insecure): for development only");
      this.#servers.push(server);
      tcp = `${host}:${port}`;
    }

    let seenChanges = 0;
    this.#ticker = setInterval(() => {
      const now = this.#clock();
      let changed = changes !== seenChanges;
      seenChanges = changes;
      for (const node of this.view.nodes.values()) {
        const up = nodeAvailable(node, now);
        const was = this.#available.get(node.nodeId);
        if (up === was) continue;
        this.#available.set(node.nodeId, up);
        changed = true;
        if (was === true && !up && node.hasSnapshot) {
          log.warn(
            { node: node.nodeId, leases: node.agentLeaseIds.size + node.overlayIds.size },
            "node unavailable: its agent stopped renewing; nothing new is placed there, its leases are kept",
          );
        } else if (was === false && up) log.info({ node: node.nodeId }, "node available again");
      }
      if (!this.#wasReady && this.notReady() === null) {
        this.#wasReady = true;
        changed = true;
        log.info(
          { nodes: this.view.nodes.size, leases: this.view.leases.size, ms: now - startedAt },
          "cluster view rebuilt: placing",
        );
      }
      // WatchCluster compares versions: availability and readiness are part of what it shows.
      if (changed) this.view.version++;
    }, EXPIRY_TICK_MS);
    this.#ticker.unref();

    health.setStatus("", "SERVING");
    health.setStatus(SCHEDULER_SERVICE_NAME, "SERVING");
    log.info(
      {
        socket,
        tcp,
        policy: c.placement.policy,
        startupGraceMs: c.placement.startupGraceMs,
        allowSimulated: c.nodes.allowSimulated,
        agentsInsecure: c.agents.insecure,
      },
      "scheduler ready",
    );
    return { socket, tcp };
  }

  /** Graceful stop; safe to call more than once. */
  stop(reason: string): Promise<void> {
    this.#stopped ??= this.#stop(reason);
    return this.#stopped;
  }

  async #stop(reason: string): Promise<void> {
    const log = this.#log;
    this.#stopping = true;
    log.info({ reason }, "stopping");
    clearInterval(this.#ticker);
    this.#health?.setStatus("", "NOT_SERVING");
    this.#health?.setStatus(SCHEDULER_SERVICE_NAME, "NOT_SERVING");
    const drained = Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.tryShutdown(() => resolve());
          }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.#config.shutdown.graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      log.warn({ graceMs: this.#config.shutdown.graceMs }, "calls still running after the grace period; closing them");
      for (const s of this.#servers) s.forceShutdown();
    }
    this.#links?.close();
    if (this.#config.listen.socket !== "") await prepareSocketPath(this.#config.listen.socket).catch(() => undefined);
    log.info("stopped");
  }
}
