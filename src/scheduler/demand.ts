// Demand for benches and the demo: seeded request mixes, offline lists and
// timed arrival streams with lifetimes. Mixes are written in terms that do
// not depend on a GPU model (profile classes, fractions of a GPU) and turn
// into a request for a particular fleet with `targetFor`.

import { InputError } from "../errors.js";
import type { GpuGeometry, MigProfile } from "../mig/types.js";
import { isPlainProfile, type SliceTarget } from "./profiles.js";

/** A seeded PRNG returning [0, 1): mulberry32, small and good enough for workloads. */
export type Rng = () => number;

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Profile classes of the 8-memory-slice GPUs (reference/scheduling.md §3.1), by compute slices. */
export type ProfileClass = "1g" | "2g" | "3g" | "4g" | "7g";

export type DemandRequest =
  | { readonly kind: "class"; readonly profileClass: ProfileClass }
  | {
      readonly kind: "shape";
      /** Of the GPU's compute (0…1). */
      readonly computeFraction: number;
      /** Of the GPU's memory, in memory slices' worth (0…1; see `sliceMemoryScaleMiB`). */
      readonly memoryFraction: number;
    };

export interface DemandMix {
  readonly name: string;
  readonly description: string;
  sample(rng: Rng): DemandRequest;
}

function classMix(name: string, description: string, weights: Readonly<Record<ProfileClass, number>>): DemandMix {
  const entries = Object.entries(weights).filter(([, w]) => w > 0) as [ProfileClass, number][];
  const total = entries.reduce((a, [, w]) => a + w, 0);
  return {
    name,
    description,
    sample(rng) {
      let x = rng() * total;
      for (const [profileClass, w] of entries) {
        x -= w;
        if (x < 0) return { kind: "class", profileClass };
      }
      return { kind: "class", profileClass: (entries[entries.length - 1] as [ProfileClass, number])[0] };
    },
  };
}

// reference/scheduling.md §3.3, Alibaba cluster-trace-gpu-v2023 (openb_pod_list_default): the 3,078
// sharing pods' gpu_milli. Spikes are the top values with their counts; the rest of each bucket
// (≤125: 31, 126–250: 277, 251–500: 1,292, 501–999: 1,478) is spread uniformly over the bucket.
const ALIBABA_SPIKES: readonly (readonly [milli: number, pods: number])[] = [
  [810, 1078],
  [470, 750],
  [320, 328],
  [650, 253],
  [230, 140],
  [460, 128],
];
const ALIBABA_BUCKET_REST: readonly (readonly [from: number, to: number, pods: number])[] = [
  [10, 125, 31],
  [126, 250, 277 - 140],
  [251, 500, 1292 - 750 - 328 - 128],
  [501, 999, 1478 - 1078 - 253],
];
const ALIBABA_TOTAL =
  ALIBABA_SPIKES.reduce((a, [, n]) => a + n, 0) + ALIBABA_BUCKET_REST.reduce((a, [, , n]) => a + n, 0);

/** One sharing pod's `gpu_milli` (1…999) drawn from the 2023 trace's distribution. */
export function sampleAlibabaMilli(rng: Rng): number {
  let x = rng() * ALIBABA_TOTAL;
  for (const [milli, n] of ALIBABA_SPIKES) {
    x -= n;
    if (x < 0) return milli;
  }
  for (const [from, to, n] of ALIBABA_BUCKET_REST) {
    if (x < n) return from + Math.floor((x / n) * (to - from + 1));
    x -= n;
  }
  return 999;
}

export const MIXES: readonly DemandMix[] = [
  classMix("uniform", "1g, 2g, 3g, 4g and 7g equally often", { "1g": 1, "2g": 1, "3g": 1, "4g": 1, "7g": 1 }),
  classMix("inference-small", "1g 40%, 2g 30%, 3g 20%, 7g 10% (the demand of reference §3.1's example)", {
    "1g": 0.4,
    "2g": 0.3,
    "3g": 0.2,
    "4g": 0,
    "7g": 0.1,
  }),
  classMix("training-large", "2g 10%, 3g 30%, 4g 30%, 7g 30%", { "1g": 0, "2g": 0.1, "3g": 0.3, "4g": 0.3, "7g": 0.3 }),
  {
    name: "alibaba2023-compute",
    description:
      "Alibaba GPU trace 2023 fractional requests (reference §3.3): gpu_milli as a compute fraction, rounded up by compute",
    sample: (rng) => ({ kind: "shape", computeFraction: sampleAlibabaMilli(rng) / 1000, memoryFraction: 0 }),
  },
  {
    name: "alibaba2023-memory",
    description:
      "Alibaba GPU trace 2023 fractional requests (reference §3.3): gpu_milli as a memory fraction, rounded up by memory",
    sample: (rng) => ({ kind: "shape", computeFraction: 0, memoryFraction: sampleAlibabaMilli(rng) / 1000 }),
  },
];

export function mixNamed(name: string): DemandMix {
  const mix = MIXES.find((m) => m.name === name);
  if (!mix) throw new InputError(`no demand mix '${name}'; choose one of ${MIXES.map((m) => m.name).join(", ")}`);
  return mix;
}

const CLASS_SLICES: Readonly<Record<ProfileClass, number>> = { "1g": 1, "2g": 2, "3g": 3, "4g": 4, "7g": 7 };

/** The plain profile of a class on this model: its compute slices, fewest memory slices. */
export function profileOfClass(geometry: GpuGeometry, profileClass: ProfileClass): MigProfile | null {
  const g = CLASS_SLICES[profileClass];
  const matches = geometry.profiles.filter((p) => isPlainProfile(p) && p.sliceCount === g);
  matches.sort((a, b) => a.memorySlices - b.memorySlices);
  return matches[0] ?? null;
}

/**
 * Memory per memory slice times the slice count: the scale that turns a
 * memory fraction into MiB so that k/8 of a GPU fits exactly the profile of
 * k memory slices (profiles hold slightly less than total/8 each).
 */
export function sliceMemoryScaleMiB(geometry: GpuGeometry): number {
  const one = geometry.profiles.filter((p) => isPlainProfile(p) && p.memorySlices === 1);
  const smallest = Math.min(...one.map((p) => p.memoryMiB));
  return Number.isFinite(smallest) ? smallest * geometry.memorySliceCount : geometry.totalMemoryMiB;
}

/** The request an item makes on a fleet of this model (a class names its profile; a shape scales by the model). */
export function targetFor(request: DemandRequest, geometry: GpuGeometry): SliceTarget {
  if (request.kind === "class") {
    const p = profileOfClass(geometry, request.profileClass);
    if (!p) throw new Error(`${geometry.model} has no ${request.profileClass} profile`);
    return { kind: "profile", name: p.name };
  }
  return {
    kind: "shape",
    computeFraction: request.computeFraction,
    memoryMiB: Math.floor(request.memoryFraction * sliceMemoryScaleMiB(geometry)),
  };
}

export interface DemandItem {
  readonly workloadId: string;
  readonly tenant: string;
  readonly request: DemandRequest;
  readonly arrivalMs: number;
  readonly durationMs: number;
}

export interface StreamOptions {
  readonly seed: number;
  /** Poisson arrivals per second. */
  readonly arrivalsPerSecond: number;
  /** Exponential lifetimes with this mean. */
  readonly meanDurationMs: number;
  readonly tenants: readonly string[];
  readonly idPrefix?: string;
}

function exponential(rng: Rng, mean: number): number {
  return -Math.log(1 - rng()) * mean;
}

/** An endless, seeded stream of arrivals (each with its lifetime): the demo's workload and the churn bench's. */
export function* arrivals(mix: DemandMix, options: StreamOptions): Generator<DemandItem, never, undefined> {
  const rng = createRng(options.seed);
  const prefix = options.idPrefix ?? `${mix.name}-`;
  let t = 0;
  for (let i = 0; ; i++) {
    t += exponential(rng, 1000 / options.arrivalsPerSecond);
    const request = mix.sample(rng);
    const tenant = options.tenants[Math.floor(rng() * options.tenants.length)] ?? "default";
    yield {
      workloadId: `${prefix}${i}`,
      tenant,
      request,
      arrivalMs: t,
      durationMs: exponential(rng, options.meanDurationMs),
    };
  }
}

/** `count` requests of a mix, no timing: the offline packing bench's input. */
export function demandList(
  mix: DemandMix,
  count: number,
  seed: number,
  tenants: readonly string[] = ["t0"],
): DemandItem[] {
  const stream = arrivals(mix, { seed, arrivalsPerSecond: 1, meanDurationMs: 1, tenants });
  return Array.from({ length: count }, () => stream.next().value);
}
