// Geometry: turns what NVML reports about a GPU model into MigProfiles with
// NVIDIA's names, and answers occupancy questions over memory-slice bitmaps
// (bit i = memory slice i).

import { TesseraError } from "../errors.js";
import {
  formatProfileName,
  migMemoryGB,
  type ProfileName,
  parseProfileName,
  profileIndexAttributes,
  sameGpuInstanceProfile,
} from "./profile-name.js";
import type {
  ComputeProfile,
  GeometryInput,
  GpuGeometry,
  GpuInstanceState,
  MigProfile,
  NvmlGpuInstanceProfile,
  Placement,
} from "./types.js";

/** NVML reported a geometry the manager cannot reason about (a driver or binding bug, not user input). */
export class GeometryError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_MIG_GEOMETRY", message);
  }
}

function buildProfile(p: NvmlGpuInstanceProfile, totalMemoryMiB: number, model: string): MigProfile {
  const where = `${model}: GPU instance profile ID ${p.id} (index ${p.index})`;
  if (p.placements.length === 0) throw new GeometryError(`${where} has no placements`);
  const size = p.placements[0]?.size ?? 0;
  if (size < 1 || p.placements.some((pl) => pl.size !== size)) {
    throw new GeometryError(`${where} has placements of differing or zero size`);
  }
  const { attributes, negativeAttributes } = profileIndexAttributes(p.index);
  const memoryGB = migMemoryGB(p.memorySizeMiB, totalMemoryMiB);
  const giName: ProfileName = {
    computeSlices: p.sliceCount,
    gpuSlices: p.sliceCount,
    memoryGB,
    attributes,
    negativeAttributes,
  };
  const computeProfiles: ComputeProfile[] = [...p.computeProfiles]
    .sort((a, b) => b.sliceCount - a.sliceCount || a.index - b.index)
    .map((ci) => ({
      id: ci.id,
      index: ci.index,
      sliceCount: ci.sliceCount,
      multiprocessorCount: ci.multiprocessorCount,
      maxInstances: ci.instanceCount,
      name: formatProfileName({ ...giName, computeSlices: ci.sliceCount }),
    }));
  // Several CI profiles can span the whole GI (REV1 variants); the lowest index is the plain one.
  const full = computeProfiles.filter((ci) => ci.sliceCount === p.sliceCount).sort((a, b) => a.index - b.index)[0];
  if (!full) throw new GeometryError(`${where} has no compute-instance profile spanning the whole instance`);
  return {
    id: p.id,
    index: p.index,
    name: formatProfileName(giName),
    sliceCount: p.sliceCount,
    memorySlices: size,
    memoryMiB: p.memorySizeMiB,
    multiprocessorCount: p.multiprocessorCount,
    engines: p.engines,
    maxInstances: p.instanceCount,
    placements: [...new Set(p.placements.map((pl) => pl.start))].sort((a, b) => a - b),
    attributes,
    negativeAttributes,
    mediaExtensions: attributes.includes("me") || attributes.includes("me.all"),
    computeProfiles,
    defaultComputeProfileId: full.id,
  };
}

/**
 * Builds the manager's view of a GPU model from NVML data: names by
 * go-nvlib's formula, placement starts, the memory-slice count (the end of
 * the furthest placement) and the compute-slice count (the largest profile).
 */
export function buildGeometry(input: GeometryInput): GpuGeometry {
  if (input.profiles.length === 0) throw new GeometryError(`${input.model}: no MIG profiles`);
  const profiles = input.profiles
    .map((p) => buildProfile(p, input.totalMemoryMiB, input.model))
    .sort((a, b) => b.sliceCount - a.sliceCount || b.memorySlices - a.memorySlices || a.index - b.index);
  const ids = new Set<number>();
  for (const p of profiles) {
    if (ids.has(p.id)) throw new GeometryError(`${input.model}: profile ID ${p.id} reported twice`);
    ids.add(p.id);
  }
  const memorySliceCount = Math.max(...profiles.flatMap((p) => p.placements.map((s) => s + p.memorySlices)));
  // Slots are bitmaps and the planner tables every free mask: 2^16 masks is the most that stays cheap.
  if (memorySliceCount > 16) {
    throw new GeometryError(`${input.model}: ${memorySliceCount} memory slices; the planner handles at most 16`);
  }
  const computeSliceCount = Math.max(...profiles.map((p) => p.sliceCount));
  return {
    model: input.model,
    pciDeviceId: input.pciDeviceId,
    totalMemoryMiB: input.totalMemoryMiB,
    memorySliceCount,
    computeSliceCount,
    profiles,
  };
}

export function placementMask(start: number, size: number): number {
  return ((1 << size) - 1) << start;
}

export function maskOfPlacement(p: Placement): number {
  return placementMask(p.start, p.size);
}

/** Every memory slice of the GPU. */
export function fullMask(geometry: GpuGeometry): number {
  return (1 << geometry.memorySliceCount) - 1;
}

export function occupiedMask(instances: readonly { readonly placement: Placement }[]): number {
  let mask = 0;
  for (const gi of instances) mask |= maskOfPlacement(gi.placement);
  return mask;
}

/** Free memory slices given the GPU instances that exist. */
export function freeMaskOf(geometry: GpuGeometry, instances: readonly GpuInstanceState[]): number {
  return fullMask(geometry) & ~occupiedMask(instances);
}

export function popcount(mask: number): number {
  let n = 0;
  for (let m = mask; m !== 0; m &= m - 1) n++;
  return n;
}

/** Starts of the profile's legal placements that lie entirely in `freeMask`. */
export function freePlacements(profile: MigProfile, freeMask: number): number[] {
  return profile.placements.filter((s) => {
    const m = placementMask(s, profile.memorySlices);
    return (m & freeMask) === m;
  });
}

export function isLegalPlacement(profile: MigProfile, start: number): boolean {
  return profile.placements.includes(start);
}

export function profileById(geometry: GpuGeometry, id: number): MigProfile | undefined {
  return geometry.profiles.find((p) => p.id === id);
}

export function computeProfileById(profile: MigProfile, id: number): ComputeProfile | undefined {
  return profile.computeProfiles.find((c) => c.id === id);
}

/** The GPU-instance profile a parsed name refers to on this geometry (ignores the `c` part). */
export function findGpuInstanceProfile(geometry: GpuGeometry, name: ProfileName): MigProfile | undefined {
  return geometry.profiles.find((p) => {
    const parsed = parseProfileName(p.name);
    if (!parsed.ok) return false;
    return sameGpuInstanceProfile(parsed.value, name);
  });
}

/** Human list of starts: `0, 2, 4` or `0–6` for a contiguous run. */
export function describeStarts(starts: readonly number[]): string {
  if (starts.length > 2 && starts.every((s, i) => i === 0 || s === (starts[i - 1] ?? 0) + 1)) {
    return `${starts[0]}–${starts[starts.length - 1]}`;
  }
  return starts.join(", ");
}
