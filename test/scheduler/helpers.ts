// Worlds for scheduler tests: in-process nodes (no agents), a view built
// from their snapshots, a manual clock, and request builders.

import type { GpuGeometry, GpuInstanceState } from "../../src/mig/types.js";
import { applyNodeSnapshot, type ClusterView, createClusterView, registerNode } from "../../src/scheduler/cluster.js";
import { DecisionEngine } from "../../src/scheduler/decisions.js";
import { DemandHistogram, uniformWeights } from "../../src/scheduler/demand-histogram.js";
import { type FleetNodeSpec, InProcessFleet } from "../../src/scheduler/in-process-fleet.js";
import {
  NO_CONSTRAINTS,
  type PlacementConstraints,
  type PlacementContext,
  type PlacementPolicy,
  type PlacementRequest,
} from "../../src/scheduler/placement.js";
import { type QuotaConfig, unlimitedQuotas } from "../../src/scheduler/quota.js";
import { profileNamed } from "../mig/geometries.js";

export interface World {
  readonly view: ClusterView;
  readonly fleet: InProcessFleet;
  readonly clock: { now: number };
  /** Re-reads every node's snapshot from the fleet (what WatchNode delivers). */
  sync(): void;
  ctx(policy?: PlacementPolicy): PlacementContext;
}

export function world(
  specs: readonly FleetNodeSpec[],
  options: { leaseTtlMs?: number; tombstoneTtlMs?: number } = {},
): World {
  const clock = { now: 1000 };
  const fleet = new InProcessFleet(specs, () => clock.now);
  const view = createClusterView(
    options.tombstoneTtlMs === undefined ? {} : { tombstoneTtlMs: options.tombstoneTtlMs },
  );
  for (const spec of specs) {
    registerNode(
      view,
      { nodeId: spec.nodeId, address: `test:${spec.nodeId}`, leaseTtlMs: options.leaseTtlMs ?? 3_600_000 },
      clock.now,
    );
  }
  const w: World = {
    view,
    fleet,
    clock,
    sync() {
      for (const id of fleet.nodeIds()) applyNodeSnapshot(view, fleet.snapshot(id), clock.now);
    },
    ctx(policy: PlacementPolicy = "fragmentation") {
      return { nowMs: clock.now, weights: uniformWeights(), policy };
    },
  };
  w.sync();
  return w;
}

export function engineFor(w: World, quotas: QuotaConfig = unlimitedQuotas(), agentTimeoutMs = 5000): DecisionEngine {
  return new DecisionEngine({
    view: w.view,
    agent: w.fleet,
    demand: new DemandHistogram({ refreshEvery: 1 }),
    quotas,
    clock: () => w.clock.now,
    agentTimeoutMs,
  });
}

let counter = 0;

export function profileRequest(name: string, over: Partial<PlacementRequest> = {}): PlacementRequest {
  counter++;
  return {
    workloadId: `w${counter}`,
    tenant: "team-a",
    target: { kind: "profile", name },
    count: 1,
    constraints: NO_CONSTRAINTS,
    priority: 0,
    allowSimulated: false,
    ...over,
  };
}

export function shapeRequest(
  memoryMiB: number,
  computeFraction: number,
  over: Partial<PlacementRequest> = {},
): PlacementRequest {
  return profileRequest("", { target: { kind: "shape", memoryMiB, computeFraction }, ...over });
}

export function constraints(over: Partial<PlacementConstraints>): PlacementConstraints {
  return { ...NO_CONSTRAINTS, ...over };
}

/** GPU instances from `[profile, start]` pairs, each with one MIG device. */
export function instances(
  geometry: GpuGeometry,
  pairs: readonly (readonly [name: string, start: number])[],
  uuid: (i: number) => string,
): GpuInstanceState[] {
  return pairs.map(([name, start], i) => {
    const p = profileNamed(geometry, name);
    return {
      giId: i + 1,
      profileId: p.id,
      placement: { start, size: p.memorySlices },
      computeInstances: [{ ciId: 0, profileId: p.defaultComputeProfileId, uuid: uuid(i), processIds: [] }],
    };
  });
}

export function dynamicNode(
  nodeId: string,
  geometry: GpuGeometry,
  gpuCount = 1,
  over: Partial<FleetNodeSpec> = {},
): FleetNodeSpec {
  return { nodeId, geometry, gpuCount, dynamicMig: true, ...over };
}

export function staticNode(
  nodeId: string,
  geometry: GpuGeometry,
  layout: readonly (readonly [string, number])[],
  gpuCount = 1,
  over: Partial<FleetNodeSpec> = {},
): FleetNodeSpec {
  return {
    nodeId,
    geometry,
    gpuCount,
    dynamicMig: false,
    layout: (_g, uuid) => instances(geometry, layout, uuid),
    ...over,
  };
}

let occupied = 0;

/** Leases a new instance straight at the simulated agent (as if another scheduler run had), then syncs the view. */
export function occupy(
  w: World,
  nodeId: string,
  gpuIndex: number,
  profile: string,
  start: number,
  tenant = "other",
): string {
  occupied++;
  const workloadId = `pre${occupied}`;
  w.fleet.allocateNow({
    nodeId,
    address: null,
    workloadId,
    tenant,
    target: { kind: "new-instance", gpuUuid: `GPU-${nodeId}-${gpuIndex}`, profile, placementStart: start },
  });
  w.sync();
  return workloadId;
}
