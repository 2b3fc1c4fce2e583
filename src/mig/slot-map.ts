// One-line picture of a GPU's memory slices: `[3g.40gb    |2g.20|1g|1g]`.
// Every slice takes three columns (two of text, one of separator), so maps of
// the same model line up under each other; free slices show as `--`.

import { profileById } from "./geometry.js";
import type { GpuGeometry, Placement } from "./types.js";

export interface SlotMapInstance {
  readonly profileId: number;
  readonly placement: Placement;
}

const SLICE_COLUMNS = 3;

function label(geometry: GpuGeometry, profileId: number, width: number): string {
  const profile = profileById(geometry, profileId);
  if (!profile) return "??".slice(0, width).padEnd(width);
  const [g, gb] = profile.name.replace(/[+-].*$/, "").split(".");
  const candidates = [profile.name, `${g}.${gb?.replace(/gb$/, "")}`, `${g}`];
  const fit = candidates.find((c) => c.length <= width) ?? (g ?? "").slice(0, width);
  return fit.padEnd(width);
}

/** Renders the instances over the GPU's memory slices. Overlapping input is drawn as `!!` (never valid). */
export function renderSlotMap(geometry: GpuGeometry, instances: readonly SlotMapInstance[]): string {
  const owner: (number | null)[] = Array.from({ length: geometry.memorySliceCount }, () => null);
  let overlap = false;
  instances.forEach((gi, i) => {
    for (let s = gi.placement.start; s < gi.placement.start + gi.placement.size; s++) {
      if (s >= owner.length) continue;
      if (owner[s] !== null) overlap = true;
      owner[s] = i;
    }
  });
  const segments: string[] = [];
  for (let s = 0; s < owner.length; ) {
    const i = owner[s];
    const gi = i === null || i === undefined ? undefined : instances[i];
    if (!gi) {
      segments.push("--");
      s++;
      continue;
    }
    let end = s;
    while (end + 1 < owner.length && owner[end + 1] === i) end++;
    const slices = end - s + 1;
    segments.push(label(geometry, gi.profileId, slices * SLICE_COLUMNS - 1));
    s = end + 1;
  }
  const map = `[${segments.join("|")}]`;
  return overlap ? `${map} !! overlapping instances` : map;
}
