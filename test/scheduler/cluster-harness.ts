// A cluster on one machine for end-to-end tests: tessera-scheduler as a child process (so it can
// be SIGKILLed) on 127.0.0.1:0 in development mode, and real tessera-agents as child processes
// (test/agent/harness.ts), each on its own simulated host (its own simulator state file, prepared
// by src/scheduler/sim-hosts.ts in a process of its own) and registering with the scheduler.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Cluster, GetClusterRequestSchema } from "../../src/gen/tessera/v1/scheduler_pb.js";
import { simulatorLibraryPath } from "../../src/nvml/index.js";
import { NVML_LIBRARY_ENV } from "../../src/nvml/loader.js";
import { createSchedulerClient, type SchedulerClient, schedulerCall } from "../../src/scheduler/client.js";
import type { SimHostSpec } from "../../src/scheduler/sim-hosts.js";
import { SIM_STATE_ENV } from "../../src/sim/control.js";
import { type AgentProcess, eventually, startAgent } from "../agent/harness.js";

const ROOT = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

export interface LoggedProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly exited: Promise<number | string>;
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stderr(): string;
}

/** Spawns node with tsx, keeping JSON log lines from stdout. */
export function spawnLogged(args: readonly string[], env: Readonly<Record<string, string>> = {}): LoggedProcess {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      parsed = { msg: line, unparsed: true };
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.pred(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  return {
    child,
    logs,
    exited,
    stderr: () => stderr,
    waitForLog(pred, timeoutMs = 20_000) {
      const seen = logs.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(entry), 1);
          reject(
            new Error(
              `no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`,
            ),
          );
        }, timeoutMs);
        const entry = {
          pred,
          resolve: (l: Record<string, unknown>) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.push(entry);
      });
    },
  };
}

export interface SchedulerProcess extends LoggedProcess {
  readonly tcp: string;
  client(): SchedulerClient;
  cluster(): Promise<Cluster>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

export interface SchedulerProcessOptions {
  /** host:port to bind (a restart reuses its predecessor's port); default 127.0.0.1:0. */
  readonly listen?: string;
  readonly startupGraceMs?: number;
  readonly config?: string;
  readonly args?: readonly string[];
}

export async function startSchedulerProcess(o: SchedulerProcessOptions = {}): Promise<SchedulerProcess> {
  const p = spawnLogged([
    join(ROOT, "src/scheduler/main.ts"),
    "--listen",
    o.listen ?? "127.0.0.1:0",
    "--dev-insecure",
    "--socket",
    "",
    "--agents-insecure",
    "--allow-simulated",
    "--log-level",
    "debug",
    "--startup-grace",
    String(o.startupGraceMs ?? 1500),
    ...(o.config ? ["--config", o.config] : []),
    ...(o.args ?? []),
  ]);
  const ready = await Promise.race([
    p.waitForLog((l) => l.msg === "scheduler ready", 30_000),
    p.exited.then((code) => {
      throw new Error(`scheduler exited (${code}) before it was ready: ${p.stderr().slice(-2000)}`);
    }),
  ]);
  const tcp = ready.tcp as string;
  const clients: SchedulerClient[] = [];
  const client = () => {
    const c = createSchedulerClient(tcp, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const own = client();
  return {
    ...p,
    tcp,
    client,
    async cluster() {
      const res = await schedulerCall(own, "getCluster", create(GetClusterRequestSchema, {}), 10_000);
      return res.cluster as Cluster;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) {
      for (const c of clients) c.close();
      if (p.child.exitCode !== null || p.child.signalCode !== null) return p.exited;
      p.child.kill(signal);
      const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
      const code = await p.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface SimAgentOptions {
  readonly nodeId: string;
  readonly host: SimHostSpec;
  readonly dynamic: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  /** The scheduler the agent registers with. */
  readonly scheduler: string;
  /** Reuse a previous run's directory (state file, lease checkpoint): a restart. */
  readonly dir?: string;
  /** Bind this port (a restarted agent comes back where it was). */
  readonly port?: number;
  readonly registerTtlMs?: number;
}

export interface SimAgent {
  readonly nodeId: string;
  readonly dir: string;
  readonly agent: AgentProcess;
  readonly port: number;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** A real agent on its own simulated host, registering itself with the scheduler (config `scheduler`). */
export async function startSimAgent(o: SimAgentOptions): Promise<SimAgent> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), `tessera-e2e-${o.nodeId}-`));
  const statePath = join(dir, "nvml-sim.state");
  const library = process.env[NVML_LIBRARY_ENV] || simulatorLibraryPath();
  const env = { [SIM_STATE_ENV]: statePath, [NVML_LIBRARY_ENV]: library };
  if (o.dir === undefined)
    await run(process.execPath, ["--import", "tsx", join(ROOT, "src/scheduler/sim-hosts.ts"), JSON.stringify(o.host)], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
  const ttl = o.registerTtlMs ?? 1500;
  const config = join(dir, "agent.yaml");
  writeFileSync(
    config,
    [
      `nodeId: ${o.nodeId}`,
      `labels: ${JSON.stringify(o.labels ?? {})}`,
      "scheduler:",
      `  address: "${o.scheduler}"`,
      "  insecure: true",
      `  leaseTtlMs: ${ttl}`,
      "",
    ].join("\n"),
  );
  const agent = await startAgent({
    stateDir: join(dir, "state"),
    tcp: "custom",
    env,
    logLevel: "info",
    args: [
      "--config",
      config,
      "--listen",
      `127.0.0.1:${o.port ?? 0}`,
      "--dev-insecure",
      "--sampling-interval",
      "250",
      ...(o.dynamic ? ["--dynamic-mig"] : []),
    ],
  });
  const port = Number((agent.tcp as string).split(":").pop());
  return {
    nodeId: o.nodeId,
    dir,
    agent,
    port,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const code = await agent.stop(signal);
      rmSync(agent.dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Waits until the scheduler shows every node available and is placing. */
export async function clusterReady(s: SchedulerProcess, nodeIds: readonly string[], timeoutMs = 20_000) {
  return eventually(async () => {
    const c = await s.cluster();
    const up = new Set(c.nodes.filter((n) => n.available).map((n) => n.nodeId));
    return c.notReadyReason === "" && nodeIds.every((id) => up.has(id)) ? c : undefined;
  }, timeoutMs);
}

export function removeTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function serviceError(err: unknown): grpc.ServiceError {
  return err as grpc.ServiceError;
}

/** Every lease of the cluster, by slice workload id, from the agents' own tables (not the scheduler). */
export { eventually };
