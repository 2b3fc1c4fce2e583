// The current layout written back as spec `mig-devices`: mig-parted's
// `export`, and Tessera's pinned form that reproduces placements exactly.

import { profileById } from "./geometry.js";
import type { GpuGeometry, GpuLayout } from "./types.js";

/**
 * Profile name → count, one count per compute instance as mig-parted counts
 * them (`3g.40gb: 1`, or `1c.3g.40gb: 3` for a split instance). With
 * `pinned`, keys carry `@start` (tessera/v1) so the layout is reproduced
 * slot for slot. Instances of profiles the geometry lacks are left out.
 */
export function exportMigDevices(
  geometry: GpuGeometry,
  layout: GpuLayout,
  options: { readonly pinned: boolean },
): Record<string, number> {
  const out: Record<string, number> = {};
  if (layout.mode.current !== "enabled") return out;
  const instances = [...layout.instances].sort((a, b) => a.placement.start - b.placement.start);
  for (const gi of instances) {
    const profile = profileById(geometry, gi.profileId);
    if (!profile) continue;
    for (const ci of gi.computeInstances) {
      const name = profile.computeProfiles.find((p) => p.id === ci.profileId)?.name;
      if (!name) continue;
      const key = options.pinned ? `${name}@${gi.placement.start}` : name;
      out[key] = (out[key] ?? 0) + 1;
    }
  }
  return out;
}
