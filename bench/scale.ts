// Scale: 10,000 GPUs held in the scheduler (1,250 nodes of 8, half
// H100-80GB, half A100-80GB, simulated in process: no agents, no network).
// The fleet is filled to a steady state, then each step releases a random
// workload and places a new one through the full decision path: validation,
// idempotency check, demand histogram, placement over every GPU, quota,
// reservation, the (in-process) agent's answer and confirmation. Reports
// placements per second and p50/p99 latency of Place on one JavaScript
// thread, for dynamic-MIG fleets under two mixes, and for a static
// all-balanced fleet (every GPU there is scored one by one: no index).
// Then the restart: tessera-scheduler as a child process with 200 agents registered over
// loopback (bench/lib/agent-farm.ts: real gRPC NodeAgent servers and registrations, 50 per
// process), each holding leases; the scheduler is SIGKILLed and started again on the same port,
// and the bench times how long the new one takes to rebuild its view (every node watched again,
// every lease found) from the agents alone.
// Prints one JSON line.
// Run: node --import tsx bench/scale.ts [placements] [agents]

import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GetClusterRequestSchema } from "../src/gen/tessera/v1/scheduler_pb.js";
import { allBalancedLayout } from "../src/scheduler/baselines.js";
import { createSchedulerClient, schedulerCall } from "../src/scheduler/client.js";
import { createClusterView } from "../src/scheduler/cluster.js";
import { DecisionEngine } from "../src/scheduler/decisions.js";
import { createRng, demandList, mixNamed, targetFor } from "../src/scheduler/demand.js";
import { DemandHistogram } from "../src/scheduler/demand-histogram.js";
import { InProcessFleet, registerFleet } from "../src/scheduler/in-process-fleet.js";
import { NO_CONSTRAINTS, type PlacementRequest } from "../src/scheduler/placement.js";
import { unlimitedQuotas } from "../src/scheduler/quota.js";
import { A100_80GB, H100_80GB } from "../test/mig/geometries.js";

const PLACEMENTS = Number(process.argv[2] ?? 20_000);
const AGENTS = Number(process.argv[3] ?? 200);
const AGENTS_PER_FARM = 50;
const AGENT_GPUS = 8;
const AGENT_LEASES = 6;
/** The scheduler's default registration lease: agents renew every third of it. */
const AGENT_LEASE_TTL_MS = 15_000;
const NODES = 1250;
const GPUS_PER_NODE = 8;
const FILL_COMPUTE_SHARE = 0.75;
const WARMUP = 2000;
const TARGET_PER_SECOND = 5000;
const TARGET_P99_MS = 2;

interface Scenario {
  readonly name: string;
  readonly mix: string;
  readonly dynamicMig: boolean;
  /** Static all-balanced GPUs hold at most 2×1g + 2g + 3g: fill less. */
  readonly fill: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: "dynamic, Alibaba 2023 shapes", mix: "alibaba2023-compute", dynamicMig: true, fill: FILL_COMPUTE_SHARE },
  { name: "dynamic, inference-small", mix: "inference-small", dynamicMig: true, fill: FILL_COMPUTE_SHARE },
  { name: "static all-balanced, inference-small", mix: "inference-small", dynamicMig: false, fill: 0.6 },
];

async function run(s: Scenario) {
  let clockMs = 0;
  const clock = () => clockMs;
  const fleet = new InProcessFleet(
    Array.from({ length: NODES }, (_, i) => {
      const geometry = i % 2 === 0 ? H100_80GB : A100_80GB;
      return {
        nodeId: `n${String(i).padStart(5, "0")}`,
        geometry,
        gpuCount: GPUS_PER_NODE,
        dynamicMig: s.dynamicMig,
        layout: s.dynamicMig
          ? undefined
          : (_g: number, uuid: (i: number) => string) => allBalancedLayout(geometry, uuid),
      };
    }),
    clock,
  );
  const view = createClusterView();
  registerFleet(view, fleet, 0, Number.POSITIVE_INFINITY);
  const engine = new DecisionEngine({
    view,
    agent: fleet,
    demand: new DemandHistogram(),
    quotas: unlimitedQuotas(),
    clock,
  });
  // 1g…7g class names are the same on H100-80GB and A100-80GB; shapes are scaled by the H100.
  const items = demandList(mixNamed(s.mix), 200_000, 11, ["t0", "t1", "t2", "t3"]);
  let next = 0;
  const live: string[] = [];
  const rng = createRng(5);
  const request = (): PlacementRequest => {
    const item = items[next++ % items.length];
    if (!item) throw new Error("no items");
    return {
      workloadId: `w${next}`,
      tenant: item.tenant,
      target: targetFor(item.request, H100_80GB),
      count: 1,
      constraints: NO_CONSTRAINTS,
      priority: 0,
      allowSimulated: true,
    };
  };
  const placeOne = async (): Promise<boolean> => {
    try {
      live.push((await engine.place(request())).workloadId);
      return true;
    } catch {
      return false;
    }
  };
  const releaseRandom = async (): Promise<void> => {
    const i = Math.floor(rng() * live.length);
    const id = live[i] as string;
    live[i] = live[live.length - 1] as string;
    live.pop();
    await engine.release(id);
  };
  const usedComputeShare = (): number => {
    let used = 0;
    let total = 0;
    for (const g of view.gpuByUuid.values()) {
      used += g.node.dynamicMig
        ? g.computeUsed
        : g.slots.reduce(
            (a, x) => a + (x.leasedBy !== null && g.tables ? (g.tables.computeSlices[x.profileIndex] ?? 0) : 0),
            0,
          );
      total += g.tables?.computeSliceCount ?? 0;
    }
    return used / total;
  };

  const fillStart = performance.now();
  let fillFailures = 0;
  while (usedComputeShare() < s.fill && fillFailures < 50_000) {
    for (let i = 0; i < 500; i++) {
      clockMs++;
      if (!(await placeOne())) fillFailures++;
    }
  }
  const fillMs = performance.now() - fillStart;

  const latencies = new Float64Array(PLACEMENTS);
  let rejected = 0;
  let placeMs = 0;
  let releaseMs = 0;
  for (let i = -WARMUP; i < PLACEMENTS; i++) {
    clockMs++;
    const r0 = performance.now();
    await releaseRandom();
    const t0 = performance.now();
    const ok = await placeOne();
    const t1 = performance.now();
    if (i < 0) continue;
    if (!ok) rejected++;
    latencies[i] = t1 - t0;
    placeMs += t1 - t0;
    releaseMs += t0 - r0;
  }
  latencies.sort();
  const q = (p: number) =>
    Math.round((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0) * 1000) / 1000;
  const perSecond = Math.round(PLACEMENTS / (placeMs / 1000));
  return {
    scenario: s.name,
    mix: s.mix,
    steadyComputeShare: Math.round(usedComputeShare() * 1000) / 1000,
    liveWorkloads: live.length,
    fill: { placements: live.length + fillFailures, ms: Math.round(fillMs) },
    placements: PLACEMENTS,
    rejected,
    placementsPerSecond: perSecond,
    latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) },
    releaseMeanMs: Math.round((releaseMs / PLACEMENTS) * 1000) / 1000,
    met: { placementsPerSecond: perSecond >= TARGET_PER_SECOND, p99: q(0.99) < TARGET_P99_MS },
  };
}

// ---- the restart with real agent connections ----

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Proc {
  readonly child: ChildProcess;
  /** Resolves at the n-th stdout JSON line matching `msg` (counted from the start). */
  count(msg: string, n: number, timeoutMs: number): Promise<number>;
  stop(signal: NodeJS.Signals): Promise<void>;
}

function launch(args: readonly string[]): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const seen = new Map<string, number>();
  const waiters: { msg: string; n: number; resolve: (at: number) => void }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    let msg: string;
    try {
      msg = (JSON.parse(line) as { msg?: string }).msg ?? "";
    } catch {
      return;
    }
    const c = (seen.get(msg) ?? 0) + 1;
    seen.set(msg, c);
    const now = performance.now();
    for (const w of [...waiters])
      if (w.msg === msg && c >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(now);
      }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    count(msg, n, timeoutMs) {
      if ((seen.get(msg) ?? 0) >= n) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${args[0]}: ${seen.get(msg) ?? 0} of ${n} "${msg}" within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          msg,
          n,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        });
      });
    },
    async stop(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

async function agentRebuild() {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const scheduler = () =>
    launch([
      "src/scheduler/main.ts",
      "--listen",
      address,
      "--dev-insecure",
      "--socket",
      "",
      "--agents-insecure",
      "--allow-simulated",
      "--startup-grace",
      "0",
      "--log-level",
      "info",
    ]);
  const farms: Proc[] = [];
  let first = scheduler();
  try {
    await first.count("scheduler ready", 1, 60_000);
    for (let f = 0; f * AGENTS_PER_FARM < AGENTS; f++) {
      farms.push(
        launch([
          "bench/lib/agent-farm.ts",
          JSON.stringify({
            scheduler: address,
            prefix: `f${f}n`,
            nodes: Math.min(AGENTS_PER_FARM, AGENTS - f * AGENTS_PER_FARM),
            gpusPerNode: AGENT_GPUS,
            leasesPerNode: AGENT_LEASES,
            leaseTtlMs: AGENT_LEASE_TTL_MS,
          }),
        ]),
      );
    }
    await Promise.all(farms.map((f) => f.count("farm ready", 1, 120_000)));
    const t0 = performance.now();
    await first.count("watching agent", AGENTS, 120_000);
    const firstBuildMs = performance.now() - t0;

    // SIGKILL: nothing is flushed, nothing said to the agents.
    await first.stop("SIGKILL");
    const killedAt = performance.now();
    const second = scheduler();
    first = second;
    const readyAt = await second.count("scheduler ready", 1, 60_000);
    const registeredAt = await second.count("agent registered", AGENTS, 120_000);
    const watchedAt = await second.count("watching agent", AGENTS, 120_000);
    const client = createSchedulerClient(address, grpc.credentials.createInsecure());
    const c0 = performance.now();
    const res = await schedulerCall(client, "getCluster", create(GetClusterRequestSchema, {}), 60_000);
    const getClusterMs = performance.now() - c0;
    client.close();
    const totals = res.cluster?.totals;
    return {
      agents: AGENTS,
      agentProcesses: farms.length,
      gpus: AGENTS * AGENT_GPUS,
      leasesHeld: AGENTS * AGENT_LEASES,
      agentRenewIntervalMs: AGENT_LEASE_TTL_MS / 3,
      firstBuildMs: Math.round(firstBuildMs),
      restart: {
        processStartMs: Math.round(readyAt - killedAt),
        allRegisteredAfterReadyMs: Math.round(registeredAt - readyAt),
        viewRebuiltAfterReadyMs: Math.round(watchedAt - readyAt),
        viewRebuiltAfterKillMs: Math.round(watchedAt - killedAt),
        nodesAvailable: totals?.availableNodes ?? 0,
        leasesFound: totals?.leases ?? 0,
        getClusterMs: Math.round(getClusterMs),
      },
      met: (totals?.availableNodes ?? 0) === AGENTS && (totals?.leases ?? 0) === AGENTS * AGENT_LEASES,
    };
  } finally {
    await Promise.all(farms.map((f) => f.stop("SIGTERM")));
    await first.stop("SIGTERM");
  }
}

const results = [];
for (const s of SCENARIOS) results.push(await run(s));
const rebuild = AGENTS > 0 ? await agentRebuild() : null;

console.log(
  JSON.stringify({
    bench: "scale",
    gpus: NODES * GPUS_PER_NODE,
    nodes: NODES,
    fleet: "half H100-80GB, half A100-80GB, simulated in process",
    thread: "one JavaScript thread (Node.js is single-threaded; placement does no I/O)",
    results,
    targets: { placementsPerSecond: TARGET_PER_SECOND, p99Ms: TARGET_P99_MS },
    met: results.every((r) => r.met.placementsPerSecond && r.met.p99),
    agentRebuild: rebuild,
  }),
);
