// The cluster as `GetCluster` / `WatchCluster` report it: nodes, GPUs with
// slot maps, leases, health, availability and fragmentation (reference
// §5.2, with the recent request mix as weights), plus cluster totals and the
// "largest placeable profile" histogram of reference §7. Plain data; the
// service converts it to protobuf.

import { fragmentationOf } from "../mig/fragmentation.js";
import { profileById } from "../mig/geometry.js";
import { renderSlotMap } from "../mig/slot-map.js";
import {
  type ClusterView,
  type GpuHealthReport,
  type GpuState,
  type LeaseRecord,
  type NicAffinityReport,
  nodeUnavailableReason,
  orderedGpus,
} from "./cluster.js";
import { type DemandWeights, weightOf } from "./demand-histogram.js";
import { profileClassKey } from "./profiles.js";

export interface FragmentationReport {
  readonly freeSlices: number;
  /** Σ_p w_p · stranded_p over the profiles of the model. */
  readonly weightedStrandedSlices: number;
  /** 0 (every free slice usable by the mix) … 1. */
  readonly score: number;
  readonly largestPlaceable: string | null;
  /** Instances of each profile that still fit (static nodes: free devices of each profile). */
  readonly fits: Readonly<Record<string, number>>;
}

export interface GpuReportOut {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly health: GpuHealthReport;
  readonly lost: boolean;
  readonly xidHoldUntilMs: number | null;
  readonly xidReason: string | null;
  readonly migEnabled: boolean;
  readonly nic: NicAffinityReport | null;
  /** `[3g.40gb    |2g.20|1g|--]`; null when not MIG-capable. */
  readonly slotMap: string | null;
  readonly instances: readonly {
    readonly giId: number | null;
    readonly profileName: string;
    readonly start: number;
    readonly size: number;
    readonly migUuid: string | null;
    readonly leasedBy: string | null;
    readonly reserved: boolean;
    readonly busy: boolean;
  }[];
  readonly fragmentation: FragmentationReport | null;
}

export interface NodeReportOut {
  readonly nodeId: string;
  readonly address: string | null;
  readonly available: boolean;
  readonly unavailableReason: string | null;
  readonly leaseExpiresAtMs: number | null;
  readonly simulated: boolean;
  readonly dynamicMig: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly freeSlices: number;
  readonly totalSlices: number;
  readonly gpus: readonly GpuReportOut[];
  readonly unavailableGpus: readonly { readonly index: number; readonly error: string }[];
  readonly leases: readonly LeaseRecord[];
}

export interface ClusterReport {
  readonly version: number;
  readonly nodes: readonly NodeReportOut[];
  readonly totals: {
    readonly nodes: number;
    readonly availableNodes: number;
    readonly gpus: number;
    readonly freeSlices: number;
    readonly totalSlices: number;
    readonly leases: number;
    readonly weightedStrandedSlices: number;
    /** GPUs by the largest profile class that still fits (`none` when nothing does). */
    readonly largestPlaceable: Readonly<Record<string, number>>;
  };
  readonly conflicts: readonly string[];
}

function gpuFragmentation(gpu: GpuState, weights: DemandWeights): FragmentationReport | null {
  const t = gpu.tables;
  if (!t || !gpu.migEnabled) return null;
  const geometry = t.geometry;
  if (!gpu.node.dynamicMig) {
    const fits: Record<string, number> = {};
    let largest: { name: string; slices: number } | null = null;
    for (const s of gpu.slots) {
      if (s.leasedBy !== null || s.busy || s.migUuid === null || s.profileIndex < 0) continue;
      const p = geometry.profiles[s.profileIndex];
      if (!p) continue;
      fits[p.name] = (fits[p.name] ?? 0) + 1;
      if (!largest || p.sliceCount > largest.slices) largest = { name: p.name, slices: p.sliceCount };
    }
    return {
      freeSlices: gpu.freeDeviceSlices,
      weightedStrandedSlices: 0,
      score: 0,
      largestPlaceable: largest?.name ?? null,
      fits,
    };
  }
  // Measured on what cannot be reclaimed: idle devices count as free, as placement sees them.
  const held = gpu.slots
    .filter((s) => !(s.leasedBy === null && !s.busy && s.migUuid !== null && s.profileIndex >= 0))
    .map((s, i) => ({
      giId: s.giId ?? -1 - i,
      profileId: s.profileId,
      placement: { start: s.start, size: s.size },
      computeInstances: [],
    }));
  const frag = fragmentationOf(geometry, held);
  const byName: Record<string, number> = {};
  let weightSum = 0;
  for (const p of geometry.profiles) {
    const w = weightOf(weights, profileClassKey(p));
    byName[p.name] = w;
    weightSum += w;
  }
  let stranded = 0;
  for (const f of frag.fits) stranded += (byName[f.name] ?? 0) * f.strandedSlices;
  const denom = weightSum * frag.freeSlices;
  return {
    freeSlices: frag.freeSlices,
    weightedStrandedSlices: Math.round(stranded * 1000) / 1000,
    score: denom > 0 ? Math.round((stranded / denom) * 1000) / 1000 : 0,
    largestPlaceable: frag.largestPlaceable,
    fits: Object.fromEntries(frag.fits.map((f) => [f.name, f.placeable])),
  };
}

function gpuReport(gpu: GpuState, weights: DemandWeights, nowMs: number): GpuReportOut {
  const geometry = gpu.tables?.geometry ?? null;
  return {
    index: gpu.index,
    uuid: gpu.uuid,
    model: gpu.model,
    health: gpu.health,
    lost: gpu.lost,
    xidHoldUntilMs: gpu.xidHoldUntilMs >= nowMs ? gpu.xidHoldUntilMs : null,
    xidReason: gpu.xidHoldUntilMs >= nowMs ? gpu.xidReason : null,
    migEnabled: gpu.migEnabled,
    nic: gpu.nic,
    slotMap: geometry
      ? renderSlotMap(
          geometry,
          gpu.slots.map((s) => ({ profileId: s.profileId, placement: { start: s.start, size: s.size } })),
        )
      : null,
    instances: gpu.slots.map((s) => ({
      giId: s.giId,
      profileName: (geometry && profileById(geometry, s.profileId)?.name) ?? `profile ${s.profileId}`,
      start: s.start,
      size: s.size,
      migUuid: s.migUuid,
      leasedBy: s.leasedBy,
      reserved: s.reserved,
      busy: s.busy,
    })),
    fragmentation: gpuFragmentation(gpu, weights),
  };
}

/** Everything the view knows, for GetCluster and each WatchCluster update. */
export function describeCluster(view: ClusterView, nowMs: number, weights: DemandWeights): ClusterReport {
  const leasesByNode = new Map<string, LeaseRecord[]>();
  for (const l of view.leases.values()) {
    const list = leasesByNode.get(l.nodeId) ?? [];
    list.push(l);
    leasesByNode.set(l.nodeId, list);
  }
  const gpusByNode = new Map<string, GpuState[]>();
  for (const g of orderedGpus(view)) {
    const list = gpusByNode.get(g.node.nodeId) ?? [];
    list.push(g);
    gpusByNode.set(g.node.nodeId, list);
  }
  const largest: Record<string, number> = {};
  let stranded = 0;
  let freeSlices = 0;
  let totalSlices = 0;
  let available = 0;
  const nodes = [...view.nodes.values()]
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))
    .map((node): NodeReportOut => {
      const why = nodeUnavailableReason(node, nowMs);
      if (why === null) available++;
      const gpus = (gpusByNode.get(node.nodeId) ?? []).map((g) => gpuReport(g, weights, nowMs));
      for (const g of gpus) {
        if (!g.fragmentation) continue;
        stranded += g.fragmentation.weightedStrandedSlices;
        const key = g.fragmentation.largestPlaceable ?? "none";
        largest[key] = (largest[key] ?? 0) + 1;
      }
      freeSlices += node.freeSlices;
      totalSlices += node.totalSlices;
      return {
        nodeId: node.nodeId,
        address: node.address,
        available: why === null,
        unavailableReason: why,
        leaseExpiresAtMs: Number.isFinite(node.leaseExpiresAtMs) ? node.leaseExpiresAtMs : null,
        simulated: node.simulated,
        dynamicMig: node.dynamicMig,
        labels: node.labels,
        freeSlices: node.freeSlices,
        totalSlices: node.totalSlices,
        gpus,
        unavailableGpus: node.unavailableGpus,
        leases: (leasesByNode.get(node.nodeId) ?? []).sort((a, b) => (a.workloadId < b.workloadId ? -1 : 1)),
      };
    });
  return {
    version: view.version,
    nodes,
    totals: {
      nodes: nodes.length,
      availableNodes: available,
      gpus: view.gpuByUuid.size,
      freeSlices,
      totalSlices,
      leases: view.leases.size,
      weightedStrandedSlices: Math.round(stranded * 1000) / 1000,
      largestPlaceable: largest,
    },
    conflicts: [...view.conflicts],
  };
}
