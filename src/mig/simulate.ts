// What a layout becomes once a plan is carried out, computed without NVML:
// for dry runs, for checking apply's outcome, and for tests and benchmarks.

import type { FeasibleGpuPlan } from "./plan.js";
import type { ComputeInstanceState, GpuInstanceState, GpuLayout } from "./types.js";

function smallestUnused(used: ReadonlySet<number>, from: number): number {
  let id = from;
  while (used.has(id)) id++;
  return id;
}

/**
 * The layout after `plan`. New instances get the smallest free GI/CI ids
 * (the driver's real ids are opaque) and UUIDs from `newUuid`; kept
 * instances keep theirs. Throws if the plan does not fit the layout it is
 * applied to (a plan made for another state).
 */
export function simulateApply(layout: GpuLayout, plan: FeasibleGpuPlan, newUuid: () => string): GpuLayout {
  const mode = plan.modeChange ? plan.modeChange.to : layout.mode.current;
  if (mode === "disabled") return { mode: { current: "disabled", pending: "disabled" }, instances: [] };
  const current = layout.mode.current === "enabled" ? layout.instances : [];
  const byGi = new Map(current.map((gi) => [gi.giId, gi]));
  for (const d of plan.destroy) {
    if (!byGi.delete(d.giId)) throw new Error(`plan destroys GI ${d.giId}, which the layout does not have`);
  }
  const instances: GpuInstanceState[] = [];
  for (const k of plan.keep) {
    const gi = byGi.get(k.giId);
    if (!gi) throw new Error(`plan keeps GI ${k.giId}, which the layout does not have`);
    byGi.delete(k.giId);
    const gone = new Set(k.destroyComputeInstances.map((c) => c.ciId));
    const cis: ComputeInstanceState[] = gi.computeInstances.filter((c) => !gone.has(c.ciId));
    for (const c of k.createComputeInstances) {
      const ciId = smallestUnused(new Set(cis.map((x) => x.ciId)), 0);
      cis.push({ ciId, profileId: c.profileId, uuid: newUuid(), processIds: [] });
    }
    instances.push({ ...gi, computeInstances: cis });
  }
  if (byGi.size > 0) throw new Error(`plan neither keeps nor destroys GI ${[...byGi.keys()].join(", ")}`);
  for (const c of plan.create) {
    const giId = smallestUnused(new Set(instances.map((x) => x.giId)), 1);
    instances.push({
      giId,
      profileId: c.profileId,
      placement: c.placement,
      computeInstances: c.computeInstances.map((ci, i) => ({
        ciId: i,
        profileId: ci.profileId,
        uuid: newUuid(),
        processIds: [],
      })),
    });
  }
  instances.sort((a, b) => a.placement.start - b.placement.start);
  return { mode: { current: "enabled", pending: "enabled" }, instances };
}
