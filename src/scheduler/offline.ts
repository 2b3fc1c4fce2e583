// Placing without agents: decide, reserve and confirm in one synchronous
// step, with MIG UUIDs made up locally. For the offline benches (packing,
// churn) and simulations, where the question is where things go, not how
// agents answer. The decision code is the scheduler's own.

import { type ClusterView, confirmSlice, removeLease, reserveSlices, sliceWorkloadId } from "./cluster.js";
import { type Candidate, decide, type PlacementContext, type PlacementRequest } from "./placement.js";

/** Places the request at once; returns the decision, or null when nothing fits. */
export function placeNow(view: ClusterView, request: PlacementRequest, ctx: PlacementContext): Candidate | null {
  const outcome = decide(view, request, ctx);
  if (!outcome.ok) return null;
  const slices = outcome.decision.slices;
  reserveSlices(
    view,
    request,
    slices.map((s) => ({
      gpuUuid: s.gpuUuid,
      profileId: s.profileId,
      profileName: s.profileName,
      placement: s.placement,
      migUuid: s.migUuid,
      gpuInstanceId: s.gpuInstanceId,
      computeInstanceId: s.computeInstanceId,
    })),
    ctx.nowMs,
  );
  slices.forEach((s, i) => {
    const id = sliceWorkloadId(request.workloadId, i, slices.length);
    confirmSlice(
      view,
      id,
      {
        migUuid: s.migUuid ?? `MIG-offline-${id}`,
        gpuInstanceId: s.gpuInstanceId,
        computeInstanceId: s.computeInstanceId,
        placement: s.placement,
        createdAtMs: ctx.nowMs,
        instanceCreated: s.migUuid === null,
      },
      ctx.nowMs,
    );
  });
  return outcome.decision;
}

/** Ends every slice of a request placed with `placeNow`. */
export function releaseNow(view: ClusterView, workloadId: string, count: number): void {
  for (let i = 0; i < count; i++) removeLease(view, sliceWorkloadId(workloadId, i, count));
}
