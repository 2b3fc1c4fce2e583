// The scheduler's domain results as tessera.v1 messages: the cluster (describeCluster plus tenant
// usage, stats and readiness), a placement, an explanation. The service's only protobuf builder.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { HealthState } from "../gen/tessera/v1/node_pb.js";
import {
  type Cluster,
  ClusterSchema,
  type ExplainResponse,
  ExplainResponseSchema,
  LeaseSource,
  type PlacementCandidate,
  PlacementCandidateSchema,
  type PlaceResponse,
  PlaceResponseSchema,
} from "../gen/tessera/v1/scheduler_pb.js";
import type { LeaseSource as DomainLeaseSource, GpuHealthState, LeaseRecord } from "./cluster.js";
import type { PlaceResult } from "./decisions.js";
import type { ClusterReport } from "./describe.js";
import type { Candidate, Explanation } from "./placement.js";
import { type QuotaConfig, quotaOf } from "./quota.js";

const HEALTH: Readonly<Record<GpuHealthState, HealthState>> = {
  healthy: HealthState.HEALTHY,
  degraded: HealthState.DEGRADED,
  unhealthy: HealthState.UNHEALTHY,
  unknown: HealthState.UNSPECIFIED,
};

const SOURCE: Readonly<Record<DomainLeaseSource, LeaseSource>> = {
  agent: LeaseSource.AGENT,
  pending: LeaseSource.PENDING,
  confirmed: LeaseSource.CONFIRMED,
  "in-doubt": LeaseSource.IN_DOUBT,
};

/** What the scheduler counts since it started. */
export class SchedulerStats {
  placed = 0;
  idempotentReplays = 0;
  released = 0;
  readonly refused = new Map<string, number>();
  readonly startedAtMs: number;

  constructor(startedAtMs: number) {
    this.startedAtMs = startedAtMs;
  }

  refuse(code: string): void {
    this.refused.set(code, (this.refused.get(code) ?? 0) + 1);
  }
}

export interface ClusterExtras {
  readonly nowMs: number;
  readonly tenantUsage: ReadonlyMap<string, { readonly computeSlices: number; readonly memorySlices: number }>;
  readonly quotas: QuotaConfig;
  readonly stats: SchedulerStats;
  readonly notReadyReason: string | null;
  readonly linkState: (nodeId: string) => string;
}

function leaseProto(l: LeaseRecord) {
  return {
    sliceWorkloadId: l.workloadId,
    workloadId: l.groupId,
    sliceIndex: l.sliceIndex,
    tenant: l.tenant,
    nodeId: l.nodeId,
    gpuIndex: l.gpuIndex,
    gpuUuid: l.gpuUuid,
    migUuid: l.migUuid ?? "",
    profileName: l.profileName,
    ...(l.placement ? { placement: { start: l.placement.start, size: l.placement.size } } : {}),
    computeSlices: l.computeSlices,
    memorySlices: l.memorySlices,
    ...(l.createdAtMs > 0 ? { createdAt: timestampFromMs(l.createdAtMs) } : {}),
    source: SOURCE[l.source],
  };
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

export function clusterProto(report: ClusterReport, x: ClusterExtras): Cluster {
  const tenants = new Set<string>([...x.tenantUsage.keys(), ...x.quotas.tenants.keys()]);
  return create(ClusterSchema, {
    version: BigInt(report.version),
    time: timestampFromMs(x.nowMs),
    nodes: report.nodes.map((n) => ({
      nodeId: n.nodeId,
      address: n.address ?? "",
      available: n.available,
      unavailableReason: n.unavailableReason ?? "",
      ...(n.leaseExpiresAtMs !== null ? { leaseExpiresAt: timestampFromMs(n.leaseExpiresAtMs) } : {}),
      simulated: n.simulated,
      dynamicMig: n.dynamicMig,
      labels: { ...n.labels },
      freeSlices: n.freeSlices,
      totalSlices: n.totalSlices,
      gpus: n.gpus.map((g) => ({
        index: g.index,
        uuid: g.uuid,
        model: g.model,
        health: { state: HEALTH[g.health.state], reasons: [...g.health.reasons] },
        lost: g.lost,
        ...(g.xidHoldUntilMs !== null ? { xidHoldUntil: timestampFromMs(g.xidHoldUntilMs) } : {}),
        xidReason: g.xidReason ?? "",
        migEnabled: g.migEnabled,
        ...(g.nic
          ? {
              nic: {
                gpuIndex: g.index,
                gpuUuid: g.uuid,
                nearestNic: g.nic.nearestNic,
                distance: g.nic.distance,
                rdmaDegraded: g.nic.rdmaDegraded,
              },
            }
          : {}),
        slotMap: g.slotMap ?? "",
        instances: g.instances.map((i) => ({
          ...(i.giId !== null ? { gpuInstanceId: i.giId } : {}),
          profileName: i.profileName,
          placement: { start: i.start, size: i.size },
          migUuid: i.migUuid ?? "",
          leasedBy: i.leasedBy ?? "",
          reserved: i.reserved,
          busy: i.busy,
        })),
        ...(g.fragmentation
          ? {
              fragmentation: {
                freeSlices: g.fragmentation.freeSlices,
                weightedStrandedSlices: g.fragmentation.weightedStrandedSlices,
                score: g.fragmentation.score,
                largestPlaceable: g.fragmentation.largestPlaceable ?? "",
                fits: Object.entries(g.fragmentation.fits).map(([profileName, count]) => ({ profileName, count })),
              },
            }
          : {}),
      })),
      unavailableGpus: n.unavailableGpus.map((u) => ({ index: u.index, error: u.error })),
      leases: n.leases.map(leaseProto),
      linkState: x.linkState(n.nodeId),
    })),
    totals: {
      ...report.totals,
      largestPlaceable: { ...report.totals.largestPlaceable },
    },
    conflicts: [...report.conflicts],
    tenants: [...tenants].sort().map((tenant) => {
      const u = x.tenantUsage.get(tenant) ?? { computeSlices: 0, memorySlices: 0 };
      const q = quotaOf(x.quotas, tenant);
      return {
        tenant,
        computeSlices: u.computeSlices,
        memorySlices: u.memorySlices,
        ...(q.computeSlices !== null ? { computeSlicesQuota: q.computeSlices } : {}),
        ...(q.memorySlices !== null ? { memorySlicesQuota: q.memorySlices } : {}),
      };
    }),
    stats: {
      placed: BigInt(x.stats.placed),
      idempotentReplays: BigInt(x.stats.idempotentReplays),
      released: BigInt(x.stats.released),
      refused: Object.fromEntries([...x.stats.refused].map(([k, v]) => [k, BigInt(v)])),
      startedAt: timestampFromMs(x.stats.startedAtMs),
    },
    notReadyReason: x.notReadyReason ?? "",
  });
}

export function placeResponse(r: PlaceResult, nodeAddress: string | null): PlaceResponse {
  return create(PlaceResponseSchema, {
    workloadId: r.workloadId,
    tenant: r.tenant,
    nodeId: r.nodeId,
    nodeAddress: nodeAddress ?? "",
    slices: r.slices.map((s) => ({
      sliceWorkloadId: s.workloadId,
      gpuIndex: s.gpuIndex,
      gpuUuid: s.gpuUuid,
      profileName: s.profileName,
      ...(s.placement ? { placement: { start: s.placement.start, size: s.placement.size } } : {}),
      deviceUuid: s.migUuid ?? s.gpuUuid,
      ...(s.gpuInstanceId !== null ? { gpuInstanceId: s.gpuInstanceId } : {}),
      ...(s.computeInstanceId !== null ? { computeInstanceId: s.computeInstanceId } : {}),
    })),
    cudaVisibleDevices: r.cudaVisibleDevices,
    created: r.created,
    ...(r.wasteMiB !== null ? { wasteMib: BigInt(Math.max(0, Math.round(r.wasteMiB))) } : {}),
  });
}

function candidateProto(c: Candidate): PlacementCandidate {
  return create(PlacementCandidateSchema, {
    nodeId: c.nodeId,
    slices: c.slices.map((s) => ({
      gpuIndex: s.gpuIndex,
      gpuUuid: s.gpuUuid,
      model: s.model,
      action: s.action,
      profileName: s.profileName,
      placement: { start: s.placement.start, size: s.placement.size },
      migUuid: s.migUuid ?? "",
      fragmentationGrowth: round3(s.fragmentationGrowth),
    })),
    score: {
      degraded: c.score.degraded,
      fragmentationGrowth: round3(c.score.fragmentationGrowth),
      leftoverSlices: c.score.leftoverSlices,
      nodeFreeSlices: c.score.nodeFreeSlices,
      nodeTotalSlices: c.score.nodeTotalSlices,
      wasteMib: c.score.wasteMiB,
    },
  });
}

export function explainResponse(e: Explanation, quotaRefusal: string | null, alreadyPlaced: boolean): ExplainResponse {
  return create(ExplainResponseSchema, {
    policy: e.policy,
    mappings: e.mappings.map((m) => ({
      model: m.model,
      profileName: m.profileName ?? "",
      ...(m.waste ? { wasteMib: BigInt(Math.max(0, Math.round(m.waste.memoryMiB))) } : {}),
      ...(m.waste ? { wasteComputeFraction: round3(m.waste.computeFraction) } : {}),
      detail: m.detail ?? "",
    })),
    weights: Object.fromEntries(Object.entries(e.weights).map(([k, v]) => [k, round3(v)])),
    candidates: e.candidates.map(candidateProto),
    rejections: e.rejections.map((r) => ({
      nodeId: r.nodeId,
      gpuUuid: r.gpuUuid ?? "",
      ...(r.gpuIndex !== null ? { gpuIndex: r.gpuIndex } : {}),
      code: r.code,
      detail: r.detail,
    })),
    ...(e.decision ? { decision: candidateProto(e.decision) } : {}),
    quotaRefusal: quotaRefusal ?? "",
    alreadyPlaced,
  });
}
