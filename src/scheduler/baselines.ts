// The baselines the benches compare against, expressed with the same
// placement code: static nodes carved to mig-parted's `all-balanced` layout
// and served first fit (what a device-plugin cluster does), and best fit
// without the fragmentation term ("best-fit" policy on dynamic nodes).

import { placementMask } from "../mig/geometry.js";
import type { GpuGeometry, GpuInstanceState, MigProfile } from "../mig/types.js";
import { isPlainProfile } from "./profiles.js";

/** Compute slices of the all-balanced instances: 2×1g + 1×2g + 1×3g on 7-slice GPUs, 2×1g + 1×2g on 4-slice ones. */
function allBalancedSlices(geometry: GpuGeometry): number[] {
  if (geometry.computeSliceCount === 7) return [3, 2, 1, 1];
  if (geometry.computeSliceCount === 4) return [2, 1, 1];
  throw new Error(`${geometry.model}: no all-balanced layout for ${geometry.computeSliceCount} compute slices`);
}

function plainOf(geometry: GpuGeometry, g: number): MigProfile {
  const p = geometry.profiles
    .filter((x) => isPlainProfile(x) && x.sliceCount === g)
    .sort((a, b) => a.memorySlices - b.memorySlices)[0];
  if (!p) throw new Error(`${geometry.model} has no ${g}g profile`);
  return p;
}

/**
 * mig-parted's `all-balanced` as placed instances (largest first, each at
 * the highest free start: 3g@4, 2g@2, 1g@1, 1g@0 on 8-slice GPUs), each with
 * one full-size compute instance whose MIG UUID `uuid(i)` names.
 */
export function allBalancedLayout(geometry: GpuGeometry, uuid: (i: number) => string): GpuInstanceState[] {
  const out: GpuInstanceState[] = [];
  let used = 0;
  allBalancedSlices(geometry).forEach((g, i) => {
    const p = plainOf(geometry, g);
    const start = [...p.placements].reverse().find((s) => (placementMask(s, p.memorySlices) & used) === 0);
    if (start === undefined) throw new Error(`${geometry.model}: all-balanced does not fit`);
    used |= placementMask(start, p.memorySlices);
    out.push({
      giId: i + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: [{ ciId: 0, profileId: p.defaultComputeProfileId, uuid: uuid(i), processIds: [] }],
    });
  });
  return out;
}
