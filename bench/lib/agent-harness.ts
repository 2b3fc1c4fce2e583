// Shared by the agent benchmarks: a simulated DGX H100 with every GPU split into seven 1g.10gb MIG
// devices (56), the agent built and run from dist/ (what a host runs), and /proc readings of its
// CPU time and memory.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openNvml, packageRoot, simulatorLibraryPath } from "../../src/nvml/index.js";
import { SIM_STATE_ENV, SimControl } from "../../src/sim/control.js";

export const ROOT = packageRoot();

export interface BenchAgent {
  readonly child: ChildProcess;
  readonly tcp: string;
  readonly metrics: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** Builds dist/ (tsc; errors in files the agent does not use do not stop the emit). */
export function buildDist(): void {
  try {
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")],
      {
        stdio: "ignore",
      },
    );
  } catch {
    // tsc exits non-zero on type errors but still emits; main.js below must exist.
  }
  readFileSync(join(ROOT, "dist/src/agent/main.js"));
}

/** A fresh simulator state: dgx-h100, all 8 GPUs in MIG mode with 7 × 1g.10gb each. */
export async function migHeavyHost(dir: string): Promise<void> {
  process.env[SIM_STATE_ENV] = join(dir, "sim.state");
  SimControl.open(simulatorLibraryPath()).selectPreset("dgx-h100");
  const nvml = await openNvml({ libraryPath: simulatorLibraryPath() });
  try {
    for (const gpu of nvml.devices()) {
      gpu.mig.setMode(true);
      for (let s = 0; s < 7; s++) gpu.mig.createGpuInstance(19, { start: s, size: 1 }).createComputeInstance(0);
    }
  } finally {
    nvml.shutdown();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** The node flags on main.js's `#!/usr/bin/env -S node …` line: how the installed agent runs. */
export function shebangFlags(): string[] {
  const first = readFileSync(join(ROOT, "dist/src/agent/main.js"), "utf8").split("\n")[0] ?? "";
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  return m ? (m[1] ?? "").trim().split(/\s+/).filter(Boolean) : [];
}

export async function startBenchAgent(
  dir: string,
  samplingMs: number,
  nodeArgs: readonly string[] = shebangFlags(),
): Promise<BenchAgent> {
  const [grpcPort, metricsPort] = [await freePort(), await freePort()];
  const tcp = `127.0.0.1:${grpcPort}`;
  const metrics = `127.0.0.1:${metricsPort}`;
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      join(ROOT, "dist/src/agent/main.js"),
      "--sim",
      "--dev-insecure",
      "--listen",
      tcp,
      "--socket",
      join(dir, "agent.sock"),
      "--metrics-listen",
      metrics,
      "--state-dir",
      join(dir, "state"),
      "--fabric-sysfs-root",
      join(ROOT, "test/fixtures/sys/dgx-h100"),
      "--fabric-proc-root",
      join(ROOT, "test/fixtures/proc/dgx-h100"),
      "--sampling-interval",
      String(samplingMs),
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", process.env.BENCH_AGENT_STDOUT ? "inherit" : "ignore", "inherit"], env: process.env },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`http://${metrics}/health`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("the agent did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    tcp,
    metrics,
    dir,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** CPU seconds (user + system) the process has used, all threads. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100; // USER_HZ
}

/** VmRSS and VmHWM (peak) in MB. */
export function memoryMB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `tessera-bench-${name}-`));
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
