// Online churn: Poisson arrivals with exponential lifetimes onto a fixed
// fleet of dynamic-MIG H100 nodes, offered more than it can hold, so that
// where each slice goes decides what the next request finds. Reports the
// share of requests accepted by the fragmentation-aware scheduler, best fit
// without the fragmentation term, first fit (first GPU, lowest legal start),
// and first fit over static all-balanced layouts. Prints one JSON line.
// Run: node --import tsx bench/churn.ts [arrivals]

import { performance } from "node:perf_hooks";
import type { GpuGeometry } from "../src/mig/types.js";
import { allBalancedLayout } from "../src/scheduler/baselines.js";
import { createClusterView } from "../src/scheduler/cluster.js";
import { arrivals, type DemandItem, type DemandMix, MIXES, targetFor } from "../src/scheduler/demand.js";
import { DemandHistogram, uniformWeights } from "../src/scheduler/demand-histogram.js";
import { InProcessFleet, registerFleet } from "../src/scheduler/in-process-fleet.js";
import { placeNow, releaseNow } from "../src/scheduler/offline.js";
import { NO_CONSTRAINTS, type PlacementPolicy } from "../src/scheduler/placement.js";
import { profileClassKey, resolveTarget } from "../src/scheduler/profiles.js";
import { H100_80GB } from "../test/mig/geometries.js";

const ARRIVALS = Number(process.argv[2] ?? 10_000);
const SEED = 7;
const NODES = 32;
const GPUS_PER_NODE = 8;
/** Offered compute slices over the fleet's, at steady state: at capacity, and 30% over it. */
const OFFERED_LOADS = [1.0, 1.3];
const MEAN_DURATION_MS = 60_000;
/** Arrivals before this share are warm-up: placed, not counted. */
const WARMUP_SHARE = 0.2;
const TARGET_MORE_THAN_FIRST_FIT_PCT = 10;

/** Mean compute slices a request of the mix takes on this model (from a large sample). */
function meanComputeSlices(mix: DemandMix, geometry: GpuGeometry): number {
  const stream = arrivals(mix, { seed: 99, arrivalsPerSecond: 1, meanDurationMs: 1, tenants: ["t"] });
  let sum = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const r = resolveTarget(geometry, targetFor(stream.next().value.request, geometry));
    if (r.ok) sum += r.profile.sliceCount;
  }
  return sum / n;
}

class MinHeap {
  private readonly items: { atMs: number; id: string }[] = [];

  push(x: { atMs: number; id: string }): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as { atMs: number }).atMs <= x.atMs) break;
      a[i] = a[p] as { atMs: number; id: string };
      i = p;
    }
    a[i] = x;
  }

  peek(): { atMs: number; id: string } | undefined {
    return this.items[0];
  }

  pop(): { atMs: number; id: string } | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && (a[l] as { atMs: number }).atMs < (m === i ? last.atMs : (a[m] as { atMs: number }).atMs))
          m = l;
        if (r < a.length && (a[r] as { atMs: number }).atMs < (m === i ? last.atMs : (a[m] as { atMs: number }).atMs))
          m = r;
        if (m === i) break;
        a[i] = a[m] as { atMs: number; id: string };
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

function run(geometry: GpuGeometry, items: readonly DemandItem[], policy: PlacementPolicy, staticAllBalanced: boolean) {
  const fleet = new InProcessFleet(
    Array.from({ length: NODES }, (_, i) => ({
      nodeId: `n${String(i).padStart(3, "0")}`,
      geometry,
      gpuCount: GPUS_PER_NODE,
      dynamicMig: !staticAllBalanced,
      layout: staticAllBalanced
        ? (_g: number, uuid: (i: number) => string) => allBalancedLayout(geometry, uuid)
        : undefined,
    })),
    () => 0,
  );
  const view = createClusterView();
  registerFleet(view, fleet, 0, Number.POSITIVE_INFINITY);
  const demand = new DemandHistogram({ halfLifeMs: 10 * MEAN_DURATION_MS, refreshEvery: 64 });
  const departures = new MinHeap();
  const warmup = Math.floor(items.length * WARMUP_SHARE);
  let offered = 0;
  let accepted = 0;
  let offeredSlices = 0;
  let acceptedSlices = 0;
  const t0 = performance.now();
  items.forEach((item, i) => {
    for (let d = departures.peek(); d && d.atMs <= item.arrivalMs; d = departures.peek()) {
      departures.pop();
      releaseNow(view, d.id, 1);
    }
    const target = targetFor(item.request, geometry);
    const r = resolveTarget(geometry, target);
    if (r.ok) demand.record([profileClassKey(r.profile)], item.arrivalMs);
    const weights = policy === "fragmentation" ? demand.weights(item.arrivalMs) : uniformWeights();
    const placed = placeNow(
      view,
      {
        workloadId: item.workloadId,
        tenant: item.tenant,
        target,
        count: 1,
        constraints: NO_CONSTRAINTS,
        priority: 0,
        allowSimulated: true,
      },
      { nowMs: 1, weights, policy },
    );
    if (placed) departures.push({ atMs: item.arrivalMs + item.durationMs, id: item.workloadId });
    if (i >= warmup) {
      const slices = r.ok ? r.profile.sliceCount : 0;
      offered++;
      offeredSlices += slices;
      if (placed) {
        accepted++;
        acceptedSlices += slices;
      }
    }
  });
  return {
    acceptedPct: Math.round((accepted / offered) * 1000) / 10,
    acceptedComputePct: Math.round((acceptedSlices / offeredSlices) * 1000) / 10,
    ms: Math.round(performance.now() - t0),
  };
}

const gpus = NODES * GPUS_PER_NODE;
const results = [];
let met = true;
for (const offeredLoad of OFFERED_LOADS) {
  for (const mix of MIXES) {
    const geometry = H100_80GB;
    const mean = meanComputeSlices(mix, geometry);
    // Little's law: slices in the system = rate × lifetime × mean slices.
    const arrivalsPerSecond = (offeredLoad * gpus * geometry.computeSliceCount) / (mean * (MEAN_DURATION_MS / 1000));
    const stream = arrivals(mix, {
      seed: SEED,
      arrivalsPerSecond,
      meanDurationMs: MEAN_DURATION_MS,
      tenants: ["t0", "t1", "t2"],
    });
    const items = Array.from({ length: ARRIVALS }, () => stream.next().value);
    const ours = run(geometry, items, "fragmentation", false);
    const bestFit = run(geometry, items, "best-fit", false);
    const firstFit = run(geometry, items, "first-fit", false);
    const staticFirstFit = run(geometry, items, "first-fit", true);
    const morePct = Math.round((ours.acceptedPct / firstFit.acceptedPct - 1) * 1000) / 10;
    met &&= morePct >= TARGET_MORE_THAN_FIRST_FIT_PCT;
    results.push({
      offeredLoad,
      mix: mix.name,
      arrivalsPerSecond: Math.round(arrivalsPerSecond * 100) / 100,
      ours,
      bestFitNoFragmentation: bestFit,
      firstFit,
      firstFitStaticAllBalanced: staticFirstFit,
      oursMoreAcceptedThanFirstFitPct: morePct,
      oursMoreAcceptedThanStaticPct: Math.round((ours.acceptedPct / staticFirstFit.acceptedPct - 1) * 1000) / 10,
    });
  }
}

console.log(
  JSON.stringify({
    bench: "churn",
    seed: SEED,
    fleet: `${NODES} nodes × ${GPUS_PER_NODE} H100-80GB (dynamic MIG; static all-balanced for that baseline)`,
    arrivals: ARRIVALS,
    meanDurationMs: MEAN_DURATION_MS,
    warmupShare: WARMUP_SHARE,
    results,
    target: { moreAcceptedThanFirstFitPct: TARGET_MORE_THAN_FIRST_FIT_PCT, against: "dynamic first fit" },
    met,
  }),
);
