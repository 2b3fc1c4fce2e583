// What a request asks for on one GPU model: a named MIG profile, or the
// smallest profile adequate for a shape (GPU memory, fraction of compute),
// with the internal waste that rounding up costs (reference/scheduling.md
// §5.2 item 3). Also builds a GpuGeometry from what an agent reports about a
// model, so the scheduler reuses the MIG core without an NVML handle.

import { TesseraError } from "../errors.js";
import { findGpuInstanceProfile } from "../mig/geometry.js";
import { parseProfileName } from "../mig/profile-name.js";
import type { GpuGeometry, MigEngines, MigProfile } from "../mig/types.js";

/** What a placement request wants on each slice. */
export type SliceTarget =
  | { readonly kind: "profile"; readonly name: string }
  | { readonly kind: "shape"; readonly memoryMiB: number; readonly computeFraction: number };

/** Capacity a profile holds beyond what a shape asked for. */
export interface Waste {
  readonly memoryMiB: number;
  /** Fraction of the GPU's compute (0…1). */
  readonly computeFraction: number;
}

export type ResolvedTarget =
  | { readonly ok: true; readonly profile: MigProfile; readonly waste: Waste | null }
  | { readonly ok: false; readonly code: "no-profile" | "no-adequate-profile"; readonly detail: string };

/**
 * A model-independent class of profile, `<g>g.<m>m[+me]` (compute slices,
 * memory slices): the key of the demand histogram, so that `3g.40gb` on an
 * H100 and `3g.20gb` on an A100-40GB count as the same kind of request.
 */
export function profileClassKey(profile: MigProfile): string {
  const attrs = profile.attributes.length > 0 ? `+${profile.attributes.join(",")}` : "";
  const neg = profile.negativeAttributes.length > 0 ? `-${profile.negativeAttributes.join(",")}` : "";
  return `${profile.sliceCount}g.${profile.memorySlices}m${attrs}${neg}`;
}

/** Plain profiles: the ones a shape may map to (no media extensions, graphics, or removed engines). */
export function isPlainProfile(profile: MigProfile): boolean {
  return profile.attributes.length === 0 && profile.negativeAttributes.length === 0;
}

// Compute fractions are k/7: compare with a tolerance so 0.4285714 asks for 3g, not 4g.
const FRACTION_EPSILON = 1e-9;

/** Whether `profile` holds the shape on a GPU with `computeSliceCount` compute slices. */
export function profileHoldsShape(
  profile: MigProfile,
  computeSliceCount: number,
  shape: { readonly memoryMiB: number; readonly computeFraction: number },
): boolean {
  return (
    profile.memoryMiB >= shape.memoryMiB &&
    profile.sliceCount / computeSliceCount + FRACTION_EPSILON >= shape.computeFraction
  );
}

/**
 * The smallest plain profile of the model that holds the shape: fewest
 * compute plus memory slices (as fractions of the GPU), then fewest memory
 * slices, then least memory. Null when even the largest does not.
 */
export function smallestAdequateProfile(
  geometry: GpuGeometry,
  shape: { readonly memoryMiB: number; readonly computeFraction: number },
): MigProfile | null {
  let best: MigProfile | null = null;
  let bestSize = Number.POSITIVE_INFINITY;
  for (const p of geometry.profiles) {
    if (!isPlainProfile(p) || !profileHoldsShape(p, geometry.computeSliceCount, shape)) continue;
    const size = p.sliceCount / geometry.computeSliceCount + p.memorySlices / geometry.memorySliceCount;
    if (
      best === null ||
      size < bestSize ||
      (size === bestSize &&
        (p.memorySlices < best.memorySlices || (p.memorySlices === best.memorySlices && p.memoryMiB < best.memoryMiB)))
    ) {
      best = p;
      bestSize = size;
    }
  }
  return best;
}

export function wasteOf(
  profile: MigProfile,
  computeSliceCount: number,
  shape: { readonly memoryMiB: number; readonly computeFraction: number },
): Waste {
  return {
    memoryMiB: profile.memoryMiB - shape.memoryMiB,
    computeFraction: Math.max(0, profile.sliceCount / computeSliceCount - shape.computeFraction),
  };
}

/** The profile a target means on this model: the named one, or the smallest adequate for a shape. */
export function resolveTarget(geometry: GpuGeometry, target: SliceTarget): ResolvedTarget {
  if (target.kind === "profile") {
    const exact = geometry.profiles.find((p) => p.name === target.name);
    if (exact) return { ok: true, profile: exact, waste: null };
    // `1c.3g.40gb` names a compute instance inside 3g.40gb: the GI is what is placed.
    const parsed = parseProfileName(target.name);
    const found = parsed.ok ? findGpuInstanceProfile(geometry, parsed.value) : undefined;
    if (found) return { ok: true, profile: found, waste: null };
    return {
      ok: false,
      code: "no-profile",
      detail: `${geometry.model} has no profile ${target.name} (has ${geometry.profiles.map((p) => p.name).join(", ")})`,
    };
  }
  const profile = smallestAdequateProfile(geometry, target);
  if (!profile) {
    return {
      ok: false,
      code: "no-adequate-profile",
      detail:
        `no profile of ${geometry.model} holds ${target.memoryMiB} MiB and ` +
        `${(target.computeFraction * 100).toFixed(1)}% of compute`,
    };
  }
  return { ok: true, profile, waste: wasteOf(profile, geometry.computeSliceCount, target) };
}

// ---- geometry from an agent's report ----

/** A MIG profile as the agent reports it (`tessera.v1.MigProfile`). */
export interface ReportedProfile {
  readonly id: number;
  readonly name: string;
  readonly sliceCount: number;
  readonly memorySlices: number;
  readonly memoryMiB: number;
  readonly multiprocessorCount: number;
  readonly maxInstances: number;
  readonly placementStarts: readonly number[];
}

export interface ReportedGeometry {
  readonly model: string;
  readonly pciDeviceId: number;
  readonly totalMemoryMiB: number;
  readonly profiles: readonly ReportedProfile[];
}

/** The agent reported a MIG geometry the scheduler cannot use. */
export class ReportedGeometryError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_SCHEDULER_GEOMETRY", message);
  }
}

const NO_ENGINES: MigEngines = { copy: 0, decoder: 0, encoder: 0, jpeg: 0, ofa: 0 };

/**
 * A GpuGeometry from the profile summary an agent sends. The report has no
 * NVML profile index, engines or compute-instance profiles; the scheduler
 * never uses them, so they are filled with placeholders (index −1, no
 * engines, one full-size compute profile with ID 0). Profile order matches
 * `buildGeometry`: most compute slices first, then most memory slices.
 */
export function geometryFromReport(input: ReportedGeometry): GpuGeometry {
  if (input.profiles.length === 0) throw new ReportedGeometryError(`${input.model}: no MIG profiles reported`);
  const profiles: MigProfile[] = input.profiles.map((p) => {
    const parsed = parseProfileName(p.name);
    if (!parsed.ok) throw new ReportedGeometryError(`${input.model}: ${parsed.error}`);
    if (p.placementStarts.length === 0 || p.memorySlices < 1 || p.sliceCount < 1) {
      throw new ReportedGeometryError(`${input.model}: profile ${p.name} has no placements or zero slices`);
    }
    const attributes = [...parsed.value.attributes];
    return {
      id: p.id,
      index: -1,
      name: p.name,
      sliceCount: p.sliceCount,
      memorySlices: p.memorySlices,
      memoryMiB: p.memoryMiB,
      multiprocessorCount: p.multiprocessorCount,
      engines: NO_ENGINES,
      maxInstances: p.maxInstances,
      placements: [...new Set(p.placementStarts)].sort((a, b) => a - b),
      attributes,
      negativeAttributes: [...parsed.value.negativeAttributes],
      mediaExtensions: attributes.includes("me") || attributes.includes("me.all"),
      computeProfiles: [
        {
          id: 0,
          index: -1,
          sliceCount: p.sliceCount,
          multiprocessorCount: p.multiprocessorCount,
          maxInstances: 1,
          name: p.name,
        },
      ],
      defaultComputeProfileId: 0,
    };
  });
  profiles.sort(
    (a, b) =>
      b.sliceCount - a.sliceCount ||
      b.memorySlices - a.memorySlices ||
      Number(a.attributes.length > 0) - Number(b.attributes.length > 0) ||
      a.id - b.id,
  );
  const ids = new Set<number>();
  for (const p of profiles) {
    if (ids.has(p.id)) throw new ReportedGeometryError(`${input.model}: profile ID ${p.id} reported twice`);
    ids.add(p.id);
  }
  const memorySliceCount = Math.max(...profiles.flatMap((p) => p.placements.map((s) => s + p.memorySlices)));
  if (memorySliceCount > 16) {
    throw new ReportedGeometryError(`${input.model}: ${memorySliceCount} memory slices; at most 16 are supported`);
  }
  return {
    model: input.model,
    pciDeviceId: input.pciDeviceId,
    totalMemoryMiB: input.totalMemoryMiB,
    memorySliceCount,
    computeSliceCount: Math.max(...profiles.map((p) => p.sliceCount)),
    profiles,
  };
}
