// Fragmentation of one GPU from its free memory slices (reference/scheduling.md
// §5.2): how many instances of each profile still fit, what is stranded, and
// the largest profile still placeable. Pure; the scheduler reuses it.

import { fullMask, placementMask, popcount } from "./geometry.js";
import type { GpuGeometry, GpuInstanceState, MigProfile } from "./types.js";

export interface ProfileFit {
  readonly profileId: number;
  readonly name: string;
  /** Most new instances of this profile that still fit. */
  readonly placeable: number;
  /** Free slices left over once `placeable` instances are placed: |S| − size·placeable. */
  readonly strandedSlices: number;
}

export interface GpuFragmentation {
  readonly memorySliceCount: number;
  readonly freeSlices: number;
  readonly freeMask: number;
  /** One per profile, largest profile first. */
  readonly fits: readonly ProfileFit[];
  /** Name of the largest profile (most compute slices) that still fits, or null. */
  readonly largestPlaceable: string | null;
  /** Free slices no legal placement of any profile can use. */
  readonly unusableSlices: number;
}

/**
 * Most non-overlapping legal placements of `profile` inside `freeMask`.
 * Placements are intervals, so earliest-end-first greedy is optimal.
 */
export function placeableInMask(profile: MigProfile, freeMask: number): number {
  let mask = freeMask;
  let n = 0;
  // placements are sorted by start and share one size, so also by end.
  for (const start of profile.placements) {
    const m = placementMask(start, profile.memorySlices);
    if ((m & mask) === m) {
      mask &= ~m;
      n++;
    }
  }
  return n;
}

function unusable(geometry: GpuGeometry, freeMask: number): number {
  let covered = 0;
  for (const p of geometry.profiles) {
    for (const start of p.placements) {
      const m = placementMask(start, p.memorySlices);
      if ((m & freeMask) === m) covered |= m;
    }
  }
  return popcount(freeMask & ~covered);
}

function summarize(geometry: GpuGeometry, freeMask: number, limit: (p: MigProfile) => number): GpuFragmentation {
  const freeSlices = popcount(freeMask);
  const fits = geometry.profiles.map((p) => {
    const placeable = Math.min(placeableInMask(p, freeMask), Math.max(0, limit(p)));
    return { profileId: p.id, name: p.name, placeable, strandedSlices: freeSlices - p.memorySlices * placeable };
  });
  // geometry.profiles is sorted largest first.
  const largest = fits.find((f) => f.placeable > 0);
  return {
    memorySliceCount: geometry.memorySliceCount,
    freeSlices,
    freeMask,
    fits,
    largestPlaceable: largest ? largest.name : null,
    unusableSlices: unusable(geometry, freeMask),
  };
}

/** Fragmentation from free slices alone (no instance-count limits). */
export function fragmentationOfMask(geometry: GpuGeometry, freeMask: number): GpuFragmentation {
  return summarize(geometry, freeMask & fullMask(geometry), () => Number.POSITIVE_INFINITY);
}

/**
 * Fragmentation of a GPU with these instances: placements, plus each
 * profile's instance limit and the one-media-extension-instance rule.
 */
export function fragmentationOf(geometry: GpuGeometry, instances: readonly GpuInstanceState[]): GpuFragmentation {
  let occupied = 0;
  const counts = new Map<number, number>();
  let mediaTaken = false;
  for (const gi of instances) {
    occupied |= placementMask(gi.placement.start, gi.placement.size);
    counts.set(gi.profileId, (counts.get(gi.profileId) ?? 0) + 1);
    if (geometry.profiles.find((p) => p.id === gi.profileId)?.mediaExtensions) mediaTaken = true;
  }
  const freeMask = fullMask(geometry) & ~occupied;
  return summarize(geometry, freeMask, (p) => {
    const left = p.maxInstances - (counts.get(p.id) ?? 0);
    return p.mediaExtensions ? (mediaTaken ? 0 : Math.min(1, left)) : left;
  });
}

/**
 * FGD-style fragmentation: Σ_p w_p · stranded_p, weights keyed by profile
 * name (the expected mix of requests). Lower is better; compare the growth
 * (ΔF) a placement causes.
 */
export function weightedFragmentation(frag: GpuFragmentation, weights: Readonly<Record<string, number>>): number {
  let total = 0;
  for (const f of frag.fits) total += (weights[f.name] ?? 0) * f.strandedSlices;
  return total;
}

const scoreTables = new WeakMap<GpuGeometry, Float64Array>();

/**
 * Placeability of a free mask as one comparable number (higher is better):
 * first the largest profile that still fits, then how many of each profile
 * fit, largest profile first. The planner maximises it so that new
 * instances leave the largest profiles placeable.
 */
export function placeabilityScore(geometry: GpuGeometry, freeMask: number): number {
  let table = scoreTables.get(geometry);
  if (!table) {
    table = buildScoreTable(geometry);
    scoreTables.set(geometry, table);
  }
  return table[freeMask & fullMask(geometry)] ?? 0;
}

function buildScoreTable(geometry: GpuGeometry): Float64Array {
  const size = 1 << geometry.memorySliceCount;
  const base = geometry.memorySliceCount + 1;
  const profiles = geometry.profiles;
  const table = new Float64Array(size);
  for (let mask = 0; mask < size; mask++) {
    let rank = 0;
    let counts = 0;
    profiles.forEach((p, i) => {
      const n = placeableInMask(p, mask);
      if (n > 0 && rank === 0) rank = profiles.length - i;
      counts = counts * base + n;
    });
    table[mask] = rank * base ** profiles.length + counts;
  }
  return table;
}
