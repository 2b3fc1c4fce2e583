// One full read and health evaluation of the DGX H100 fixture (12 ports,
// ~900 sysfs files), repeated; prints one JSON line. Each iteration folds
// counters into the previous iteration's history, as the agent's sweep does.
// Run: node --import tsx bench/fabric-read.ts [iterations]
import { performance } from "node:perf_hooks";
import { collectFabric } from "../src/fabric/collect.js";
import { scanSysfsGpus } from "../src/fabric/gpu-source.js";
import type { FabricCounterState } from "../src/fabric/snapshot-store.js";
import { COMMITTED_FIXTURES } from "../test/fixtures/make-sysfs.js";

const TARGET_MS = 5;
const iterations = Number(process.argv[2] ?? 200);
const warmup = 20;
const { sysfsRoot, procRoot } = COMMITTED_FIXTURES["dgx-h100"];
let clockMs = Date.UTC(2026, 0, 1);
const options = { sysfsRoot, procRoot, clock: () => (clockMs += 1000) };

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function measure(withTopology: boolean): number[] {
  const gpus = withTopology ? scanSysfsGpus(sysfsRoot) : undefined;
  let state: FabricCounterState | undefined;
  const times: number[] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const t0 = performance.now();
    const c = collectFabric(state, options, gpus);
    const dt = performance.now() - t0;
    state = c.state;
    if (c.health.ports.length !== 12 || c.health.status !== "healthy")
      throw new Error("fixture did not read as 12 healthy ports");
    if (i >= warmup) times.push(dt);
  }
  return times.sort((a, b) => a - b);
}

const core = measure(false);
const topo = measure(true);
const round = (n: number) => Math.round(n * 1000) / 1000;
console.log(
  JSON.stringify({
    bench: "fabric-read",
    fixture: "dgx-h100",
    iterations,
    ports: 12,
    medianMs: round(quantile(core, 0.5)),
    p99Ms: round(quantile(core, 0.99)),
    withTopologyMedianMs: round(quantile(topo, 0.5)),
    targetMs: TARGET_MS,
    pass: quantile(core, 0.5) < TARGET_MS,
  }),
);
