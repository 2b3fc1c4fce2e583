// Real agents as child processes for end-to-end tests: each runs `src/agent/main.ts` under tsx on the
// simulator (the test's own state file, TESSERA_SIM_STATE), with its own state directory, listening
// on 127.0.0.1:0 and a unix socket in a temp dir. Its JSON log lines are kept for assertions.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { NVML_LIBRARY_ENV } from "../../src/nvml/loader.js";
import { createAgentClient, type NodeAgentClient } from "../../src/rpc/client.js";

export interface AgentProcess {
  readonly dir: string;
  readonly stateDir: string;
  readonly socket: string | undefined;
  readonly tcp: string | undefined;
  readonly metrics: string | undefined;
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name) once the process ends. */
  readonly exited: Promise<number | string>;
  /** A client on the unix socket (local role) or, with `tcp`, on the plaintext dev listener. */
  client(via?: "socket" | "tcp"): NodeAgentClient;
  /** Waits for a log line matching `pred` (already seen or future). */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

export interface StartAgentOptions {
  /** Reuse a state dir (restart tests). */
  readonly stateDir?: string;
  readonly args?: readonly string[];
  /** Defaults: dev-insecure TCP on 127.0.0.1:0, a socket in the temp dir, metrics on 127.0.0.1:0. */
  readonly tcp?: "insecure" | "none" | "custom";
  readonly socket?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  readonly readyTimeoutMs?: number;
  /** --log-level (default debug); null leaves the level to the config. */
  readonly logLevel?: string | null;
  /** Expect the start to fail: resolve once the process exits. */
  readonly expectFailure?: boolean;
}

const ROOT = join(import.meta.dirname, "..", "..");
export const FIXTURE_SYSFS = join(ROOT, "test/fixtures/sys/dgx-h100");
export const FIXTURE_PROC = join(ROOT, "test/fixtures/proc/dgx-h100");

export async function startAgent(options: StartAgentOptions = {}): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-agent-test-"));
  const stateDir = options.stateDir ?? join(dir, "state");
  const socketPath = options.socket === false ? undefined : join(dir, "agent.sock");
  const tcpMode = options.tcp ?? "insecure";
  const args = [
    "--import",
    "tsx",
    join(ROOT, "src/agent/main.ts"),
    "--state-dir",
    stateDir,
    "--socket",
    socketPath ?? "",
    "--metrics-listen",
    "127.0.0.1:0",
    "--fabric-sysfs-root",
    FIXTURE_SYSFS,
    "--fabric-proc-root",
    FIXTURE_PROC,
    ...(options.logLevel === null ? [] : ["--log-level", options.logLevel ?? "debug"]),
    ...(tcpMode === "insecure" ? ["--listen", "127.0.0.1:0", "--dev-insecure"] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
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
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(entry), 1);
        reject(
          new Error(
            `no matching agent log line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`,
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
  };
  const base = {
    dir,
    stateDir,
    child,
    logs,
    exited,
    waitForLog,
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (options.expectFailure) {
    await exited;
    return {
      ...base,
      socket: socketPath,
      tcp: undefined,
      metrics: undefined,
      client: () => {
        throw new Error("the agent did not start");
      },
      get stderr() {
        return stderr;
      },
    } as AgentProcess;
  }
  const ready = await Promise.race([
    waitForLog((l) => l.msg === "agent ready", options.readyTimeoutMs ?? 30_000),
    exited.then((code) => {
      throw new Error(
        `agent exited (${code}) before it was ready: ${stderr.slice(-2000)} ${JSON.stringify(logs.slice(-5))}`,
      );
    }),
  ]);
  const tcp = ready.tcp as string | undefined;
  const clients: NodeAgentClient[] = [];
  return {
    ...base,
    socket: socketPath,
    tcp,
    metrics: ready.metrics as string | undefined,
    client(via: "socket" | "tcp" = socketPath ? "socket" : "tcp") {
      const address = via === "socket" ? `unix://${socketPath}` : (tcp as string);
      const c = createAgentClient(address, grpc.credentials.createInsecure());
      clients.push(c);
      return c;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) {
      for (const c of clients) c.close();
      return base.stop(signal, timeoutMs);
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The simulator library the test world uses, for agents started with --library. */
export function simLibraryArgs(): string[] {
  const lib = process.env[NVML_LIBRARY_ENV];
  return lib ? ["--library", lib] : ["--sim"];
}

export async function scrape(metrics: string): Promise<string> {
  const res = await fetch(`http://${metrics}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** Value of the first series of `name` whose labels include all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value (not undefined) or the time runs out. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  stepMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await sleep(stepMs);
  }
}
