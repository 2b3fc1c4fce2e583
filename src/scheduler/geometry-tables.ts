// Per-model lookup tables behind fast placement: for every free-slice mask,
// how many instances of each profile still fit (`placeableInMask` of the MIG
// core, tabulated), and, per demand mix, the placement of a profile that
// loses the least placeable capacity. Tables are built once per geometry
// and per weights object; a placement over 10,000 GPUs then costs a few
// array reads per GPU.

import { placeableInMask } from "../mig/fragmentation.js";
import { fullMask, placementMask, popcount } from "../mig/geometry.js";
import type { GpuGeometry } from "../mig/types.js";
import { type DemandWeights, weightOf } from "./demand-histogram.js";
import { profileClassKey } from "./profiles.js";

/** Masks up to this many memory slices are tabulated; wider GPUs are scored without tables. */
const MAX_TABULATED_SLICES = 10;

interface WeightedTables {
  readonly vector: Float64Array;
  /** Per profile (lazily): best start and its loss, indexed by `(meTaken << M) | freeMask`. */
  readonly bestStart: (Int8Array | undefined)[];
  readonly bestLoss: (Float64Array | undefined)[];
}

export interface GeometryTables {
  readonly geometry: GpuGeometry;
  readonly memorySliceCount: number;
  readonly computeSliceCount: number;
  readonly fullMask: number;
  /** In `geometry.profiles` order. */
  readonly keys: readonly string[];
  readonly sizes: Int32Array;
  readonly computeSlices: Int32Array;
  readonly maxInstances: Int32Array;
  readonly mediaExtensions: Uint8Array;
  readonly starts: readonly Int32Array[];
  /** `placeable[p][mask]`: most new instances of profile p inside the free mask (placements only). */
  readonly placeable: readonly Uint8Array[];
  readonly indexById: ReadonlyMap<number, number>;
  /**
   * Some profile's instance limit binds before its placements run out, so
   * placeable counts depend on how many instances exist, not only on the
   * mask. False on every geometry of reference/nvml.md §4 (only the +me
   * rule binds, and it is handled by the `meTaken` bit).
   */
  readonly countSensitive: boolean;
  readonly tabulated: boolean;
  readonly weighted: WeakMap<DemandWeights, WeightedTables>;
}

export function buildTables(geometry: GpuGeometry): GeometryTables {
  const n = geometry.profiles.length;
  const full = fullMask(geometry);
  const size = 1 << geometry.memorySliceCount;
  const tabulated = geometry.memorySliceCount <= MAX_TABULATED_SLICES;
  const placeable = geometry.profiles.map((p) => {
    const table = new Uint8Array(tabulated ? size : 0);
    for (let mask = 0; mask < table.length; mask++) table[mask] = placeableInMask(p, mask);
    return table;
  });
  const countSensitive = geometry.profiles.some((p) => !p.mediaExtensions && p.maxInstances < placeableInMask(p, full));
  return {
    geometry,
    memorySliceCount: geometry.memorySliceCount,
    computeSliceCount: geometry.computeSliceCount,
    fullMask: full,
    keys: geometry.profiles.map(profileClassKey),
    sizes: Int32Array.from(geometry.profiles, (p) => p.memorySlices),
    computeSlices: Int32Array.from(geometry.profiles, (p) => p.sliceCount),
    maxInstances: Int32Array.from(geometry.profiles, (p) => p.maxInstances),
    mediaExtensions: Uint8Array.from(geometry.profiles, (p) => (p.mediaExtensions ? 1 : 0)),
    starts: geometry.profiles.map((p) => Int32Array.from(p.placements)),
    placeable,
    indexById: new Map(geometry.profiles.map((p, i) => [p.id, i])),
    countSensitive,
    tabulated: tabulated && !countSensitive && n < 128,
    weighted: new WeakMap(),
  };
}

/**
 * Interns geometries: GPUs of one model share one GpuGeometry object and one
 * set of tables, whether the geometry came from tests (`buildGeometry`) or
 * from agents' reports (`geometryFromReport`, a new object per snapshot).
 */
export class GeometryCatalog {
  private readonly byObject = new WeakMap<GpuGeometry, GeometryTables>();
  private readonly bySignature = new Map<string, GeometryTables>();

  intern(geometry: GpuGeometry): GeometryTables {
    const known = this.byObject.get(geometry);
    if (known) return known;
    const signature = geometrySignature(geometry);
    let tables = this.bySignature.get(signature);
    if (!tables) {
      tables = buildTables(geometry);
      this.bySignature.set(signature, tables);
    }
    this.byObject.set(geometry, tables);
    return tables;
  }

  all(): GeometryTables[] {
    return [...this.bySignature.values()];
  }
}

function geometrySignature(g: GpuGeometry): string {
  const profiles = g.profiles.map(
    (p) =>
      `${p.id}:${p.name}:${p.sliceCount}:${p.memorySlices}:${p.memoryMiB}:${p.maxInstances}:${p.placements.join(",")}`,
  );
  return `${g.model}|${g.memorySliceCount}|${g.computeSliceCount}|${profiles.join(";")}`;
}

function weightedTables(t: GeometryTables, weights: DemandWeights): WeightedTables {
  let w = t.weighted.get(weights);
  if (!w) {
    w = {
      vector: Float64Array.from(t.keys, (k) => weightOf(weights, k)),
      bestStart: new Array(t.keys.length).fill(undefined),
      bestLoss: new Array(t.keys.length).fill(undefined),
    };
    t.weighted.set(weights, w);
  }
  return w;
}

export function weightVector(t: GeometryTables, weights: DemandWeights): Float64Array {
  return weightedTables(t, weights).vector;
}

function placeableOf(t: GeometryTables, p: number, mask: number): number {
  const table = t.placeable[p] as Uint8Array;
  if (table.length > 0) return table[mask] as number;
  return placeableInMask(t.geometry.profiles[p] as (typeof t.geometry.profiles)[number], mask);
}

/** Instances of profile p that still fit: placements, the +me rule and (when given) instance limits. */
function fitting(
  t: GeometryTables,
  p: number,
  mask: number,
  meTaken: boolean,
  remaining: Int32Array | null,
  extra: number,
): number {
  let n = placeableOf(t, p, mask);
  if (t.mediaExtensions[p] === 1) return meTaken ? 0 : Math.min(1, n);
  if (remaining !== null) n = Math.min(n, Math.max(0, (remaining[p] as number) - extra));
  return n;
}

// Rounded so that the same loss reached by different sums compares equal, and ties fall to the next key.
function round(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}

/**
 * Placeable capacity lost by placing profile q at `start` in `freeMask`:
 * Σ_p w_p · size_p · (fit_p before − fit_p after). This is §5.2's growth of
 * fragmentation ΔF plus the request's own footprint (size_q · Σw), which is
 * the same for every placement of q: ranking by it is ranking by ΔF, and it
 * also compares profiles of different sizes fairly (rounding a shape up to a
 * larger profile on one model costs what it really takes).
 * `remaining` (instances left per profile) matters only for count-sensitive geometries.
 */
export function lossOf(
  t: GeometryTables,
  vector: Float64Array,
  q: number,
  start: number,
  freeMask: number,
  meTaken: boolean,
  remaining: Int32Array | null = null,
): number {
  const after = freeMask & ~placementMask(start, t.sizes[q] as number);
  const meAfter = meTaken || t.mediaExtensions[q] === 1;
  let loss = 0;
  for (let p = 0; p < vector.length; p++) {
    const w = vector[p] as number;
    if (w === 0) continue;
    const before = fitting(t, p, freeMask, meTaken, remaining, 0);
    const aft = fitting(t, p, after, meAfter, remaining, p === q ? 1 : 0);
    loss += w * (t.sizes[p] as number) * (before - aft);
  }
  return round(loss);
}

/**
 * §5.2's fragmentation of a GPU: F = Σ_p w_p · stranded_p, stranded_p =
 * |free| − size_p · fit_p (free slices an instance of p cannot use).
 */
export function fragmentationValue(
  t: GeometryTables,
  vector: Float64Array,
  freeMask: number,
  meTaken: boolean,
  remaining: Int32Array | null = null,
): number {
  const free = popcount(freeMask);
  let f = 0;
  for (let p = 0; p < vector.length; p++) {
    const w = vector[p] as number;
    if (w === 0) continue;
    f += w * (free - (t.sizes[p] as number) * fitting(t, p, freeMask, meTaken, remaining, 0));
  }
  return round(f);
}

/** Whether placement `start` of profile q lies inside `freeMask`. */
export function placementFree(t: GeometryTables, q: number, start: number, freeMask: number): boolean {
  const m = placementMask(start, t.sizes[q] as number);
  return (m & freeMask) === m;
}

export interface BestCarve {
  readonly start: Int8Array;
  readonly loss: Float64Array;
}

/**
 * For profile q under these weights: the start with the least loss for every
 * `(meTaken << M) | freeMask` (−1 when none is free; ties go to the lowest
 * start), built on first use. Only for tabulated geometries.
 */
export function bestCarveTable(t: GeometryTables, weights: DemandWeights, q: number): BestCarve {
  const w = weightedTables(t, weights);
  const cached = w.bestStart[q];
  const cachedLoss = w.bestLoss[q];
  if (cached && cachedLoss) return { start: cached, loss: cachedLoss };
  const masks = 1 << t.memorySliceCount;
  const start = new Int8Array(masks * 2).fill(-1);
  const loss = new Float64Array(masks * 2).fill(Number.POSITIVE_INFINITY);
  const starts = t.starts[q] as Int32Array;
  for (let me = 0; me < 2; me++) {
    if (me === 1 && t.mediaExtensions[q] === 1) continue;
    for (let mask = 0; mask < masks; mask++) {
      const i = (me << t.memorySliceCount) | mask;
      for (const s of starts) {
        if (!placementFree(t, q, s, mask)) continue;
        const l = lossOf(t, w.vector, q, s, mask, me === 1);
        if (l < (loss[i] as number)) {
          loss[i] = l;
          start[i] = s;
        }
      }
    }
  }
  w.bestStart[q] = start;
  w.bestLoss[q] = loss;
  return { start, loss };
}
