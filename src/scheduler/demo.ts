// `npm start`: a whole cluster on one machine. tessera-scheduler (in this process) and three
// tessera-agents (child processes), each on its own simulated host with its own simulator state:
// `dgx-h100` (dynamic MIG: slices are carved per workload), `dgx-a100` (static: a balanced layout
// is carved up front and handed out device by device) and `mixed` (A100 80GB, H100 PCIe and A30,
// dynamic). A stream of workloads from a built-in mix arrives and leaves through the scheduler's
// gRPC API, and a live view shows slot maps, fragmentation and acceptance. On a terminal it runs
// until Ctrl-C; otherwise (CI) it prints a few frames and stops on its own.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import {
  type Cluster,
  type ClusterGpu,
  GetClusterRequestSchema,
  PlaceRequestSchema,
  ReleaseWorkloadRequestSchema,
} from "../gen/tessera/v1/scheduler_pb.js";
import { packageRoot, simulatorLibraryPath } from "../nvml/index.js";
import { NVML_LIBRARY_ENV } from "../nvml/loader.js";
import { SIM_STATE_ENV } from "../sim/control.js";
import { createSchedulerClient, type SchedulerClient, schedulerCall } from "./client.js";
import { finishSchedulerConfig, parseSchedulerConfig } from "./config.js";
import { Scheduler } from "./daemon.js";
import { arrivals, type DemandItem, type DemandMix, type ProfileClass } from "./demand.js";
import { createSchedulerLogger } from "./logger.js";
import type { SimHostSpec } from "./sim-hosts.js";

const run = promisify(execFile);

interface DemoHost {
  readonly nodeId: string;
  readonly host: SimHostSpec;
  readonly dynamic: boolean;
  readonly fabric: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

const BALANCED_A100_40GB: Readonly<Record<number, readonly string[]>> = Object.fromEntries(
  Array.from({ length: 8 }, (_, i) => [
    i,
    i % 2 === 0 ? ["2g.10gb@0", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"] : ["4g.20gb@0", "2g.10gb@4", "1g.5gb@6"],
  ]),
);

export const DEMO_HOSTS: readonly DemoHost[] = [
  { nodeId: "dgx-h100", host: { preset: "dgx-h100" }, dynamic: true, fabric: "dgx-h100", labels: { rack: "r1" } },
  {
    nodeId: "dgx-a100",
    host: { preset: "dgx-a100", layouts: BALANCED_A100_40GB },
    dynamic: false,
    fabric: "dgx-a100",
    labels: { rack: "r2" },
  },
  { nodeId: "mixed", host: { preset: "mixed" }, dynamic: true, fabric: null, labels: { rack: "r3" } },
];

const SLICES: Readonly<Record<ProfileClass, number>> = { "1g": 1, "2g": 2, "3g": 3, "4g": 4, "7g": 7 };

/** The demo's mix: mostly small inference slices, some training-sized ones, as compute fractions of a GPU. */
export const DEMO_MIX: DemandMix = {
  name: "demo",
  description: "1g 40%, 2g 28%, 3g 20%, 4g 6%, 7g 6% (as fractions of a GPU's compute)",
  sample(rng) {
    const x = rng();
    const profileClass: ProfileClass = x < 0.4 ? "1g" : x < 0.68 ? "2g" : x < 0.88 ? "3g" : x < 0.94 ? "4g" : "7g";
    return { kind: "shape", computeFraction: SLICES[profileClass] / 7, memoryFraction: 0 };
  },
};

interface DemoAgent {
  readonly nodeId: string;
  readonly tcp: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function startDemoAgent(h: DemoHost, dir: string, scheduler: string, log: WriteStream): Promise<DemoAgent> {
  const root = packageRoot();
  const env = {
    ...process.env,
    [SIM_STATE_ENV]: join(dir, `${h.nodeId}.sim.state`),
    [NVML_LIBRARY_ENV]: simulatorLibraryPath(),
  };
  await run(process.execPath, ["--import", "tsx", join(root, "src/scheduler/sim-hosts.ts"), JSON.stringify(h.host)], {
    cwd: root,
    env,
    timeout: 60_000,
  });
  const config = join(dir, `${h.nodeId}.agent.yaml`);
  const { writeFileSync } = await import("node:fs");
  writeFileSync(
    config,
    [
      `nodeId: ${h.nodeId}`,
      `labels: ${JSON.stringify(h.labels)}`,
      ...(h.fabric === null ? ["fabric: { enabled: false }"] : []),
      "scheduler:",
      `  address: "${scheduler}"`,
      "  insecure: true",
      "",
    ].join("\n"),
  );
  const args = [
    "--import",
    "tsx",
    join(root, "src/agent/main.ts"),
    "--config",
    config,
    "--state-dir",
    join(dir, `${h.nodeId}.state`),
    "--socket",
    "",
    "--listen",
    "127.0.0.1:0",
    "--dev-insecure",
    "--metrics-listen",
    "",
    "--sampling-interval",
    "500",
    "--log-level",
    "info",
    ...(h.dynamic ? ["--dynamic-mig"] : []),
    ...(h.fabric === null
      ? []
      : [
          "--fabric-sysfs-root",
          join(root, "test/fixtures/sys", h.fabric),
          "--fabric-proc-root",
          join(root, "test/fixtures/proc", h.fabric),
        ]),
  ];
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr?.on("data", (d: Buffer) => log.write(d));
  const tcp = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent ${h.nodeId} not ready within 60 s`)), 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`agent ${h.nodeId} exited (${code}) before it was ready; see ${join(dir, "agents.log")}`));
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      log.write(`${line}\n`);
      if (!line.includes('"agent ready"')) return;
      try {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { tcp: string }).tcp);
      } catch (err) {
        reject(err);
      }
    });
  });
  return {
    nodeId: h.nodeId,
    tcp,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await waitForExit(child, 10_000);
    },
  };
}

// ---- the workload stream ----

interface Outcome {
  readonly atMs: number;
  readonly text: string;
}

class WorkloadStream {
  offered = 0;
  placed = 0;
  released = 0;
  readonly rejected = new Map<string, number>();
  readonly recent: Outcome[] = [];
  readonly #live = new Map<string, NodeJS.Timeout>();
  readonly #client: SchedulerClient;
  readonly #items: Generator<DemandItem, never, undefined>;
  readonly #t0: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #pending = new Set<Promise<void>>();

  constructor(client: SchedulerClient, seed: number) {
    this.#client = client;
    this.#items = arrivals(DEMO_MIX, {
      seed,
      arrivalsPerSecond: 5,
      meanDurationMs: 12_000,
      tenants: ["search", "ads", "research"],
      idPrefix: "job-",
    });
    this.#t0 = Date.now();
  }

  get live(): number {
    return this.#live.size;
  }

  start(): void {
    this.#next();
  }

  #next(): void {
    if (this.#stopped) return;
    const item = this.#items.next().value;
    const wait = Math.max(0, this.#t0 + item.arrivalMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#track(this.#place(item));
      this.#next();
    }, wait);
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #note(text: string): void {
    this.recent.unshift({ atMs: Date.now(), text });
    this.recent.length = Math.min(this.recent.length, 6);
  }

  async #place(item: DemandItem): Promise<void> {
    if (item.request.kind !== "shape") return;
    const g = Math.round(item.request.computeFraction * 7);
    const count = g === 1 && item.workloadId.endsWith("7") ? 2 : 1;
    this.offered++;
    const req = create(PlaceRequestSchema, {
      workloadId: item.workloadId,
      tenant: item.tenant,
      target: { case: "shape", value: { computeFraction: item.request.computeFraction, memoryMib: 0n } },
      count,
    });
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await schedulerCall(this.#client, "place", req, 15_000);
        this.placed++;
        const s = r.slices[0];
        this.#note(
          `+ ${r.workloadId} ${r.tenant}: ${r.nodeId} GPU ${r.slices.map((x) => x.gpuIndex).join(",")} ` +
            `${s?.profileName}@${s?.placement?.start}${count > 1 ? ` ×${count}` : ""}`,
        );
        if (this.#stopped) return;
        this.#live.set(
          r.workloadId,
          setTimeout(() => this.#track(this.#release(r.workloadId)), item.durationMs),
        );
        return;
      } catch (err) {
        const e = err as grpc.ServiceError;
        const retry = e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.ABORTED;
        if (retry && attempt < 5 && !this.#stopped) {
          await new Promise((r) => setTimeout(r, 300));
          continue;
        }
        const code = e.metadata?.get("tessera-error-code")[0]?.toString() ?? grpc.status[e.code] ?? "error";
        const why = code
          .replace(/^TESSERA_/, "")
          .toLowerCase()
          .replaceAll("_", " ");
        this.rejected.set(why, (this.rejected.get(why) ?? 0) + 1);
        this.#note(`✗ ${item.workloadId} (${g}g${count > 1 ? ` ×${count}` : ""}): ${why}`);
        return;
      }
    }
  }

  async #release(workloadId: string): Promise<void> {
    this.#live.delete(workloadId);
    try {
      await schedulerCall(
        this.#client,
        "releaseWorkload",
        create(ReleaseWorkloadRequestSchema, { workloadId }),
        15_000,
      );
      this.released++;
      this.#note(`- ${workloadId} done`);
    } catch (err) {
      this.#note(`! ${workloadId} release: ${(err as grpc.ServiceError).details}`);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const t of this.#live.values()) clearTimeout(t);
    await Promise.allSettled([...this.#pending]);
  }
}

// ---- the view ----

const color = (on: boolean, code: string, text: string) => (on ? `\u001b[${code}m${text}\u001b[0m` : text);

function shortName(profile: string, width: number): string {
  const [g, gb] = profile.replace(/[+-].*$/, "").split(".");
  const fit = [profile, `${g}.${gb?.replace(/gb$/, "")}`, `${g}`].find((c) => c.length <= width) ?? "";
  return fit.padEnd(width);
}

/** A GPU's memory slices: leased instances bright, idle devices dim, free slices `--`. */
export function renderGpuSlots(g: ClusterGpu, tty: boolean): string {
  const n = g.slotMap.length > 1 ? (g.slotMap.length - 1) / 3 : 0;
  if (n === 0) return g.migEnabled ? "[?]" : "[MIG off]";
  const owner: (number | null)[] = Array.from({ length: n }, () => null);
  g.instances.forEach((inst, i) => {
    const p = inst.placement;
    if (!p) return;
    for (let s = p.start; s < p.start + p.size && s < n; s++) owner[s] = i;
  });
  const parts: string[] = [];
  for (let s = 0; s < n; ) {
    const i = owner[s];
    const inst = i === null || i === undefined ? undefined : g.instances[i];
    if (!inst?.placement) {
      parts.push("--");
      s++;
      continue;
    }
    const size = Math.min(inst.placement.size, n - s);
    const text = shortName(inst.profileName, size * 3 - 1);
    parts.push(
      inst.leasedBy !== ""
        ? color(tty, "1;32", text)
        : inst.busy
          ? color(tty, "33", text)
          : inst.reserved
            ? color(tty, "36", text)
            : color(tty, "2", text),
    );
    s += size;
  }
  return `[${parts.join("|")}]`;
}

/** Columns renderGpuSlots takes on screen (colour codes take none). */
function visibleWidth(g: ClusterGpu): number {
  return g.slotMap.length > 1 ? g.slotMap.length : g.migEnabled ? 3 : 9;
}

export function renderFrame(c: Cluster, w: WorkloadStream, elapsedMs: number, tty: boolean): string {
  const out: string[] = [];
  const t = c.totals;
  const rejected = [...w.rejected.values()].reduce((a, b) => a + b, 0);
  const decided = w.placed + rejected;
  const mmss = `${String(Math.floor(elapsedMs / 60_000)).padStart(2, "0")}:${String(Math.floor(elapsedMs / 1000) % 60).padStart(2, "0")}`;
  out.push(
    `${color(tty, "1", "Tessera: one scheduler, three simulated hosts")}   ${mmss}   ${c.notReadyReason === "" ? "placing" : "rebuilding view"}`,
  );
  out.push(
    `workloads: ${w.live} running · ${w.placed} placed · ${rejected} refused` +
      (rejected > 0 ? ` (${[...w.rejected].map(([k, v]) => `${v} ${k}`).join(", ")})` : "") +
      ` · acceptance ${decided === 0 ? "-" : `${Math.round((100 * w.placed) / decided)}%`} · ${w.released} finished`,
  );
  out.push(
    `capacity: ${t?.freeSlices ?? 0}/${t?.totalSlices ?? 0} memory slices free · ` +
      `stranded for the current mix: ${(t?.weightedStrandedSlices ?? 0).toFixed(1)} slices · ${t?.leases ?? 0} leases`,
  );
  for (const n of c.nodes) {
    const models = [...new Set(n.gpus.map((g) => g.model.replace(/^NVIDIA /, "")))].join(", ");
    out.push(
      "",
      `${color(tty, "1", n.nodeId)}  ${n.dynamicMig ? "dynamic: carves per workload" : "static: hands out its devices"}  ` +
        `${models}  free ${n.freeSlices}/${n.totalSlices}${n.available ? "" : `  UNAVAILABLE: ${n.unavailableReason}`}`,
    );
    for (const g of n.gpus) {
      const f = g.fragmentation;
      const leased = g.instances.filter((i) => i.leasedBy !== "").length;
      out.push(
        `  ${String(g.index).padStart(2)} ${renderGpuSlots(g, tty)}${" ".repeat(Math.max(0, 28 - visibleWidth(g)))}` +
          `  ${leased}/${g.instances.length} leased` +
          `  frag ${f ? `${String(Math.round(f.score * 100)).padStart(3)}%` : "   -"}` +
          `  largest free ${f?.largestPlaceable || "-"}`,
      );
    }
  }
  out.push("", "recent:");
  for (const r of w.recent) out.push(`  ${r.text}`);
  return out.join("\n");
}

// ---- the whole ----

export interface DemoOptions {
  readonly out: NodeJS.WriteStream;
  /** Stop after this long (non-terminal runs); undefined: until the signal. */
  readonly durationMs?: number;
  /** Least time between frames. */
  readonly frameMs: number;
  readonly signal: AbortSignal;
  readonly seed?: number;
}

/** Runs the demo until `signal` aborts (or `durationMs` passes); cleans up everything it started. */
export async function runClusterDemo(o: DemoOptions): Promise<void> {
  const tty = o.out.isTTY === true;
  const dir = mkdtempSync(join(tmpdir(), "tessera-start-"));
  const logFile = join(dir, "scheduler.log");
  const agentLog = createWriteStream(join(dir, "agents.log"));
  const log = createSchedulerLogger({ level: "info", destination: pino.destination({ dest: logFile, sync: false }) });
  const config = finishSchedulerConfig(parseSchedulerConfig("", "npm start"), {
    listenTcp: "127.0.0.1:0",
    devInsecure: true,
    socket: "",
    agentsInsecure: true,
    allowSimulated: true,
    startupGraceMs: 0,
  });
  const scheduler = new Scheduler({ config, log });
  const agents: DemoAgent[] = [];
  let stream: WorkloadStream | undefined;
  let client: SchedulerClient | undefined;
  const write = (text: string) => o.out.write(text);
  try {
    const endpoints = await scheduler.start();
    const address = endpoints.tcp as string;
    write(`tessera-scheduler on ${address}; starting three agents on simulated hosts (logs in ${dir}) …\n`);
    for (const h of DEMO_HOSTS) {
      if (o.signal.aborted) return;
      agents.push(await startDemoAgent(h, dir, address, agentLog));
      write(`  ${h.nodeId} ready\n`);
    }
    client = createSchedulerClient(address, grpc.credentials.createInsecure());
    const c = client;
    // Wait until every node is watched.
    for (let i = 0; i < 100; i++) {
      const res = await schedulerCall(c, "getCluster", create(GetClusterRequestSchema, {}), 5000);
      if ((res.cluster?.totals?.availableNodes ?? 0) === DEMO_HOSTS.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    write(
      [
        "",
        "Try, in another terminal:",
        `  npm run tessera -- cluster --scheduler ${address} --insecure`,
        `  npm run tessera -- place my-job --tenant me --profile 3g.40gb --scheduler ${address} --insecure`,
        `  npm run tessera -- explain my-job2 --tenant me --memory 30000 --scheduler ${address} --insecure`,
        "",
      ].join("\n"),
    );
    const w = new WorkloadStream(c, o.seed ?? 7);
    stream = w;
    w.start();
    const t0 = Date.now();
    const deadline = o.durationMs === undefined ? Number.POSITIVE_INFINITY : t0 + o.durationMs;
    while (!o.signal.aborted && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(o.frameMs, Math.max(0, deadline - Date.now())));
        o.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
      if (o.signal.aborted) break;
      const res = await schedulerCall(c, "getCluster", create(GetClusterRequestSchema, {}), 5000);
      if (!res.cluster) continue;
      const frame = renderFrame(res.cluster, w, Date.now() - t0, tty);
      write(tty ? `\u001b[H\u001b[2J${frame}\n` : `\n${frame}\n`);
    }
  } finally {
    write("\nstopping: workloads, agents, scheduler …\n");
    await stream?.stop();
    client?.close();
    await Promise.all(agents.map((a) => a.stop()));
    await scheduler.stop("demo over");
    log.flush();
    agentLog.end();
    rmSync(dir, { recursive: true, force: true });
  }
}
