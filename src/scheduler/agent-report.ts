// What an agent says (tessera.v1 Node, Lease, Health, Event) as the cluster
// view's report types. The edge between the agent's protobuf and the
// scheduler core: the view never sees a protobuf message.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Lease } from "../gen/tessera/v1/agent_pb.js";
import { type Gpu, type Health, HealthState, type Node } from "../gen/tessera/v1/node_pb.js";
import type { GpuGeometry } from "../mig/types.js";
import type { GpuHealthReport, GpuHealthState, GpuReport, LeaseReport, NodeReport } from "./cluster.js";
import { geometryFromReport, ReportedGeometryError } from "./profiles.js";

const HEALTH: Readonly<Record<HealthState, GpuHealthState>> = {
  [HealthState.UNSPECIFIED]: "unknown",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.DEGRADED]: "degraded",
  [HealthState.UNHEALTHY]: "unhealthy",
};

export function healthFromProto(h: Health | undefined): GpuHealthReport {
  return { state: h ? (HEALTH[h.state] ?? "unknown") : "unknown", reasons: [...(h?.reasons ?? [])] };
}

/** A health event's `current` ("healthy", "degraded", "unhealthy"). */
export function healthStateFromName(name: string): GpuHealthState {
  return name === "healthy" || name === "degraded" || name === "unhealthy" ? name : "unknown";
}

/**
 * Geometries by model and profile list: every GPU of a model reports the
 * same profiles, so each is parsed once per scheduler, not once per GPU per
 * snapshot. Bad reports are remembered too (with their error).
 */
export class GeometryCache {
  readonly #byKey = new Map<string, GpuGeometry | ReportedGeometryError>();

  /** The GPU's geometry; null when it is not MIG-capable; throws ReportedGeometryError for a report the scheduler cannot use. */
  of(gpu: Gpu): GpuGeometry | null {
    if (!gpu.migCapable || gpu.profiles.length === 0) return null;
    const key = `${gpu.name}\u0000${gpu.pciDeviceId}\u0000${gpu.memoryTotalMib}\u0000${gpu.profiles
      .map((p) => `${p.id}:${p.name}:${p.sliceCount}:${p.memorySlices}:${p.memoryMib}:${p.placementStarts.join(",")}`)
      .join(";")}`;
    let hit = this.#byKey.get(key);
    if (!hit) {
      try {
        hit = geometryFromReport({
          model: gpu.name,
          pciDeviceId: gpu.pciDeviceId,
          totalMemoryMiB: Number(gpu.memoryTotalMib),
          profiles: gpu.profiles.map((p) => ({
            id: p.id,
            name: p.name,
            sliceCount: p.sliceCount,
            memorySlices: p.memorySlices,
            memoryMiB: Number(p.memoryMib),
            multiprocessorCount: p.multiprocessorCount,
            maxInstances: p.maxInstances,
            placementStarts: p.placementStarts,
          })),
        });
      } catch (err) {
        if (!(err instanceof ReportedGeometryError)) throw err;
        hit = err;
      }
      if (this.#byKey.size < 1024) this.#byKey.set(key, hit);
    }
    if (hit instanceof ReportedGeometryError) throw hit;
    return hit;
  }
}

export interface NodeConversion {
  readonly node: NodeReport;
  /** GPUs whose MIG geometry the scheduler could not use (they are kept, without geometry: never placed on). */
  readonly geometryErrors: readonly string[];
}

/** A NodeAgent `Node` as the view's NodeReport. */
export function nodeReportFromProto(n: Node, geometries: GeometryCache): NodeConversion {
  const geometryErrors: string[] = [];
  const gpus: GpuReport[] = n.gpus.map((g) => {
    let geometry: GpuGeometry | null = null;
    try {
      geometry = geometries.of(g);
    } catch (err) {
      geometryErrors.push(`GPU ${g.index} (${g.uuid}): ${(err as Error).message}`);
    }
    return {
      index: g.index,
      uuid: g.uuid,
      model: g.name,
      memoryTotalMiB: Number(g.memoryTotalMib),
      health: healthFromProto(g.health),
      lost: g.lost,
      migEnabled: g.migEnabled,
      geometry,
      instances: g.instances.map((gi) => ({
        giId: gi.gpuInstanceId,
        profileId: gi.profileId,
        placement: { start: gi.placement?.start ?? 0, size: gi.placement?.size ?? 0 },
        computeInstances: gi.computeInstances.map((ci) => ({
          ciId: ci.computeInstanceId,
          profileId: ci.profileId,
          uuid: ci.uuid,
          processIds: [...ci.processIds],
        })),
      })),
    };
  });
  return {
    node: {
      nodeId: n.nodeId,
      simulated: n.simulated,
      dynamicMig: n.dynamicMig,
      labels: { ...n.labels },
      gpus,
      topology: n.topology.map((t) => ({
        gpuUuid: t.gpuUuid,
        nearestNic: t.nearestNic,
        distance: t.distance,
        rdmaDegraded: t.rdmaDegraded,
      })),
      unavailableGpus: n.unavailableGpus.map((u) => ({ index: u.index, error: u.error })),
    },
    geometryErrors,
  };
}

export function leaseReportFromProto(l: Lease): LeaseReport {
  return {
    workloadId: l.workloadId,
    tenant: l.tenant,
    gpuIndex: l.gpuIndex,
    gpuUuid: l.gpuUuid,
    migUuid: l.migUuid === "" ? null : l.migUuid,
    gpuInstanceId: l.gpuInstanceId ?? null,
    computeInstanceId: l.computeInstanceId ?? null,
    profileName: l.profileName,
    placement: l.placement ? { start: l.placement.start, size: l.placement.size } : null,
    createdAtMs: l.createdAt ? timestampMs(l.createdAt) : 0,
    instanceCreated: l.instanceCreated,
  };
}
