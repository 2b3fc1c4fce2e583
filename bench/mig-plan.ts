// Benchmark of the MIG planner on a DGX H100 (8 GPUs). Prints one JSON line:
// - planning time for the whole host, p50/p99 over random (current, desired) pairs;
// - over a seeded random sequence of layout changes per GPU, the GPU instances our
//   plans destroy versus mig-parted, which destroys every instance of a GPU whose
//   layout changes, and their ratio.
// Run: node --import tsx bench/mig-plan.ts

import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { freePlacements, fullMask, placementMask } from "../src/mig/geometry.js";
import { type PlanTarget, planHost } from "../src/mig/plan.js";
import { simulateApply } from "../src/mig/simulate.js";
import type {
  DesiredInstance,
  GpuGeometry,
  GpuInstanceState,
  GpuLayout,
  HostGpu,
  MigProfile,
} from "../src/mig/types.js";
import { H100_80GB, hostGpu } from "../test/mig/geometries.js";

const GPUS = 8;
const ITERATIONS = 2000;
const WARMUP = 200;
const SEQUENCE_STEPS = 250;
const TARGET_P99_MS = 5;

/** mulberry32: small, seeded, good enough to drive a benchmark. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

let uuids = 0;
const newUuid = () => `MIG-bench-${(uuids++).toString(16)}`;

/** A random layout the driver would accept, built by random create attempts. */
function randomLayout(r: () => number, geometry: GpuGeometry): GpuLayout {
  const instances: GpuInstanceState[] = [];
  let used = 0;
  let media = false;
  const attempts = 1 + Math.floor(r() * 10);
  for (let i = 0; i < attempts; i++) {
    const p = pick(r, geometry.profiles);
    const start = pick(r, p.placements);
    const m = placementMask(start, p.memorySlices);
    if (used & m || (p.mediaExtensions && media)) continue;
    if (instances.filter((g) => g.profileId === p.id).length >= p.maxInstances) continue;
    used |= m;
    media ||= p.mediaExtensions;
    instances.push({
      giId: instances.length + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: [{ ciId: 0, profileId: p.defaultComputeProfileId, uuid: newUuid(), processIds: [] }],
    });
  }
  return { mode: { current: "enabled", pending: "enabled" }, instances };
}

function asDesired(geometry: GpuGeometry, instances: readonly GpuInstanceState[]): DesiredInstance[] {
  return instances.map((gi) => ({
    profileId: gi.profileId,
    start: null,
    computeProfileIds: [geometry.profiles.find((p) => p.id === gi.profileId)?.defaultComputeProfileId ?? 0],
  }));
}

/** A profile that has a free legal placement in `free`, or null. */
function fitting(r: () => number, geometry: GpuGeometry, free: number): MigProfile | null {
  const fits = geometry.profiles.filter((p) => !p.mediaExtensions && freePlacements(p, free).length > 0);
  return fits.length === 0 ? null : pick(r, fits);
}

/**
 * The next desired layout of a GPU, as operators change them: mostly small
 * edits (drop an instance, add one that fits, swap one for another), sometimes
 * a different layout altogether.
 */
function nextDesired(r: () => number, geometry: GpuGeometry, current: GpuLayout): DesiredInstance[] {
  const roll = r();
  if (roll < 0.2 || current.instances.length === 0) return asDesired(geometry, randomLayout(r, geometry).instances);
  const kept = [...current.instances];
  if (roll < 0.75) kept.splice(Math.floor(r() * kept.length), 1);
  const edited = asDesired(geometry, kept);
  if (roll >= 0.5) {
    const free =
      fullMask(geometry) & ~kept.reduce((m, gi) => m | placementMask(gi.placement.start, gi.placement.size), 0);
    const add = fitting(r, geometry, free);
    if (add) edited.push({ profileId: add.id, start: null, computeProfileIds: [add.defaultComputeProfileId] });
  }
  return edited;
}

function sameMultiset(a: readonly DesiredInstance[], b: readonly DesiredInstance[]): boolean {
  const key = (d: DesiredInstance) => `${d.profileId}:${[...d.computeProfileIds].sort().join(",")}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

// ---- planning time for a whole host ----

const timingRng = rng(0x5eed);
// Inputs are built before timing so the clock sees the planner's work (and its garbage) only.
const hosts: PlanTarget[][] = Array.from({ length: WARMUP + ITERATIONS }, () =>
  Array.from({ length: GPUS }, (_, g) => {
    const layout = randomLayout(timingRng, H100_80GB);
    const gpu: HostGpu = hostGpu(g, H100_80GB, layout);
    return { gpu, desired: { mode: "enabled" as const, instances: nextDesired(timingRng, H100_80GB, layout) } };
  }),
);
// Settle the harness's own allocations (the inputs above) into the old generation, so young-generation
// collections during timing only ever see the planner's short-lived garbage.
v8.setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
gc();
gc();
const durations: number[] = [];
// CPU time of the process too: on a shared machine, wall time also counts time spent descheduled.
const cpuDurations: number[] = [];
hosts.forEach((targets, i) => {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const plan = planHost(targets);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (plan.gpus.length !== GPUS) throw new Error("planner lost a GPU");
  if (i >= WARMUP) {
    durations.push(ms);
    cpuDurations.push((cpu.user + cpu.system) / 1000);
  }
});
durations.sort((a, b) => a - b);
cpuDurations.sort((a, b) => a - b);

// ---- destroyed instances over a sequence of layout changes ----

const seqRng = rng(0xc0ffee);
let destroyed = 0;
let destroyedMigParted = 0;
let applied = 0;
let infeasible = 0;
let unchanged = 0;
for (let g = 0; g < GPUS; g++) {
  let gpu = hostGpu(g, H100_80GB, randomLayout(seqRng, H100_80GB));
  for (let s = 0; s < SEQUENCE_STEPS; s++) {
    const desired = nextDesired(seqRng, H100_80GB, gpu.layout);
    const [plan] = planHost([{ gpu, desired: { mode: "enabled", instances: desired } }]).gpus;
    if (!plan?.feasible) {
      // Both tools leave the GPU alone (mig-parted after trying every ordering).
      infeasible++;
      continue;
    }
    applied++;
    if (!plan.changed) unchanged++;
    destroyed += plan.destroy.length;
    // mig-parted: any change to a GPU's config destroys every instance on it.
    if (!sameMultiset(asDesired(H100_80GB, gpu.layout.instances), desired)) {
      destroyedMigParted += gpu.layout.instances.length;
    }
    gpu = { ...gpu, layout: simulateApply(gpu.layout, plan, newUuid) };
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify({
    bench: "mig-plan",
    gpus: GPUS,
    model: H100_80GB.model,
    iterations: ITERATIONS,
    p50Ms: round(percentile(durations, 50)),
    p99Ms: round(percentile(durations, 99)),
    maxMs: round(durations[durations.length - 1] ?? 0),
    cpuP50Ms: round(percentile(cpuDurations, 50)),
    cpuP99Ms: round(percentile(cpuDurations, 99)),
    targetP99Ms: TARGET_P99_MS,
    sequenceSteps: SEQUENCE_STEPS * GPUS,
    applied,
    unchanged,
    infeasible,
    destroyed,
    destroyedMigParted,
    ratio: destroyedMigParted === 0 ? null : round(destroyed / destroyedMigParted),
  }),
);
