// Nodes simulated in process, no agents and no NVML: an AgentPort that keeps
// its own instances and lease tables and answers Allocate/Release the way an
// agent does (refusing overlapping or illegal placements, idempotent by
// workload id), and produces node snapshots from that state. Benches, tests
// and the demo use it to hold thousands of GPUs in one process; since it
// checks every allocation against the geometry itself, it is also a second
// witness that placement never double-allocates.

import { TesseraError } from "../errors.js";
import { placementMask } from "../mig/geometry.js";
import type { GpuGeometry, GpuInstanceState } from "../mig/types.js";
import {
  applyNodeSnapshot,
  type ClusterView,
  type GpuHealthReport,
  type LeaseReport,
  type NicAffinityReport,
  type NodeSnapshotReport,
  registerNode,
} from "./cluster.js";
import type { AgentAllocateRequest, AgentAllocateResult, AgentPort, AgentReleaseRequest } from "./decisions.js";

export interface FleetNodeSpec {
  readonly nodeId: string;
  readonly geometry: GpuGeometry;
  readonly gpuCount: number;
  readonly dynamicMig: boolean;
  readonly simulated?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  /** Instances a GPU starts with (static nodes hand out only these). */
  readonly layout?: (gpuIndex: number, migUuid: (i: number) => string) => GpuInstanceState[];
  /** The GPU's nearest NIC; default: mlx5_<i> at PIX. */
  readonly nic?: (gpuIndex: number) => Omit<NicAffinityReport, "gpuUuid"> | null;
}

/** The simulated agent refused an allocation (what a real one answers with FAILED_PRECONDITION). */
export class AgentRefusedError extends TesseraError {
  constructor(message: string) {
    super("TESSERA_AGENT_REFUSED", message);
  }
}

interface FleetGpu {
  readonly index: number;
  readonly uuid: string;
  readonly geometry: GpuGeometry;
  instances: GpuInstanceState[];
  health: GpuHealthReport;
  lost: boolean;
  nic: NicAffinityReport | null;
  nextGiId: number;
}

interface FleetNode {
  readonly spec: FleetNodeSpec;
  readonly gpus: FleetGpu[];
  readonly leases: Map<string, LeaseReport>;
  seq: number;
}

export interface FleetHooks {
  /** Runs before each Allocate is applied: delay it, or throw to fail it. */
  beforeAllocate?: (request: AgentAllocateRequest, signal: AbortSignal) => Promise<void> | void;
  beforeRelease?: (request: AgentReleaseRequest, signal: AbortSignal) => Promise<void> | void;
}

export function gpuUuidOf(nodeId: string, index: number): string {
  return `GPU-${nodeId}-${index}`;
}

export class InProcessFleet implements AgentPort {
  private readonly nodes = new Map<string, FleetNode>();
  private uuidCounter = 0;
  hooks: FleetHooks = {};

  constructor(
    specs: readonly FleetNodeSpec[],
    private readonly clock: () => number,
  ) {
    for (const spec of specs) {
      const gpus: FleetGpu[] = Array.from({ length: spec.gpuCount }, (_, index) => {
        const uuid = gpuUuidOf(spec.nodeId, index);
        const instances = spec.layout?.(index, (i) => `MIG-${spec.nodeId}-${index}-init${i}`) ?? [];
        const nic = spec.nic ? spec.nic(index) : { nearestNic: `mlx5_${index}`, distance: "PIX", rdmaDegraded: false };
        return {
          index,
          uuid,
          geometry: spec.geometry,
          instances,
          health: { state: "healthy", reasons: [] },
          lost: false,
          nic: nic ? { ...nic, gpuUuid: uuid } : null,
          nextGiId: Math.max(0, ...instances.map((gi) => gi.giId)) + 1,
        };
      });
      this.nodes.set(spec.nodeId, { spec, gpus, leases: new Map(), seq: 0 });
    }
  }

  nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  private node(nodeId: string): FleetNode {
    const node = this.nodes.get(nodeId);
    if (!node) throw new AgentRefusedError(`no node ${nodeId}`);
    return node;
  }

  /** The node as its agent would report it now. */
  snapshot(nodeId: string): NodeSnapshotReport {
    const node = this.node(nodeId);
    return {
      node: {
        nodeId,
        simulated: node.spec.simulated ?? false,
        dynamicMig: node.spec.dynamicMig,
        labels: node.spec.labels ?? {},
        gpus: node.gpus.map((g) => ({
          index: g.index,
          uuid: g.uuid,
          model: g.geometry.model,
          memoryTotalMiB: g.geometry.totalMemoryMiB,
          health: g.health,
          lost: g.lost,
          migEnabled: true,
          geometry: g.geometry,
          instances: g.instances,
        })),
        topology: node.gpus.flatMap((g) => (g.nic ? [g.nic] : [])),
        unavailableGpus: [],
      },
      leases: [...node.leases.values()],
      lastSeq: node.seq,
    };
  }

  leases(nodeId: string): LeaseReport[] {
    return [...this.node(nodeId).leases.values()];
  }

  allLeases(): LeaseReport[] {
    return [...this.nodes.values()].flatMap((n) => [...n.leases.values()]);
  }

  setHealth(nodeId: string, gpuIndex: number, health: GpuHealthReport): void {
    const gpu = this.node(nodeId).gpus[gpuIndex];
    if (gpu) gpu.health = health;
  }

  async allocate(request: AgentAllocateRequest, signal: AbortSignal): Promise<AgentAllocateResult> {
    await this.hooks.beforeAllocate?.(request, signal);
    signal.throwIfAborted();
    return this.allocateNow(request);
  }

  /** Allocate without hooks or awaiting: for benches that drive the fleet synchronously. */
  allocateNow(request: AgentAllocateRequest): AgentAllocateResult {
    const node = this.node(request.nodeId);
    const held = node.leases.get(request.workloadId);
    if (held) return this.resultOf(held);
    const target = request.target;
    let lease: LeaseReport;
    if (target.kind === "device") {
      const found = node.gpus
        .flatMap((g) => g.instances.map((gi) => ({ g, gi })))
        .find(({ gi }) => gi.computeInstances.some((ci) => ci.uuid === target.deviceUuid));
      if (!found) throw new AgentRefusedError(`no MIG device ${target.deviceUuid} on ${request.nodeId}`);
      const other = [...node.leases.values()].find((l) => l.migUuid === target.deviceUuid);
      if (other) throw new AgentRefusedError(`${target.deviceUuid} is leased by ${other.workloadId}`);
      const profile = found.g.geometry.profiles.find((p) => p.id === found.gi.profileId);
      lease = {
        workloadId: request.workloadId,
        tenant: request.tenant,
        gpuIndex: found.g.index,
        gpuUuid: found.g.uuid,
        migUuid: target.deviceUuid,
        gpuInstanceId: found.gi.giId,
        computeInstanceId: found.gi.computeInstances[0]?.ciId ?? 0,
        profileName: profile?.name ?? "",
        placement: found.gi.placement,
        createdAtMs: this.clock(),
        instanceCreated: false,
      };
    } else {
      const gpu = node.gpus.find((g) => g.uuid === target.gpuUuid);
      if (!gpu) throw new AgentRefusedError(`no GPU ${target.gpuUuid} on ${request.nodeId}`);
      const geometry = gpu.geometry;
      const profile = geometry.profiles.find((p) => p.name === target.profile);
      if (!profile) throw new AgentRefusedError(`${geometry.model} has no profile ${target.profile}`);
      const start = target.placementStart;
      if (!profile.placements.includes(start)) {
        throw new AgentRefusedError(
          `${profile.name}@${start}: not a legal placement (starts ${profile.placements.join(", ")})`,
        );
      }
      const mask = placementMask(start, profile.memorySlices);
      const used = gpu.instances.reduce((m, gi) => m | placementMask(gi.placement.start, gi.placement.size), 0);
      if ((used & mask) !== 0) throw new AgentRefusedError(`INSUFFICIENT_RESOURCES: ${profile.name}@${start} overlaps`);
      const same = gpu.instances.filter((gi) => gi.profileId === profile.id).length;
      if (same >= profile.maxInstances) {
        throw new AgentRefusedError(`INSUFFICIENT_RESOURCES: ${profile.name} has ${same} of ${profile.maxInstances}`);
      }
      const profiles = new Map(geometry.profiles.map((p) => [p.id, p]));
      if (profile.mediaExtensions && gpu.instances.some((gi) => profiles.get(gi.profileId)?.mediaExtensions)) {
        throw new AgentRefusedError("INSUFFICIENT_RESOURCES: media extensions already owned");
      }
      const compute = gpu.instances.reduce((a, gi) => a + (profiles.get(gi.profileId)?.sliceCount ?? 0), 0);
      if (compute + profile.sliceCount > geometry.computeSliceCount) {
        throw new AgentRefusedError("INSUFFICIENT_RESOURCES: compute slices");
      }
      this.uuidCounter++;
      const migUuid = `MIG-${request.nodeId}-${gpu.index}-${this.uuidCounter}`;
      const giId = gpu.nextGiId++;
      gpu.instances = [
        ...gpu.instances,
        {
          giId,
          profileId: profile.id,
          placement: { start, size: profile.memorySlices },
          computeInstances: [{ ciId: 0, profileId: profile.defaultComputeProfileId, uuid: migUuid, processIds: [] }],
        },
      ];
      lease = {
        workloadId: request.workloadId,
        tenant: request.tenant,
        gpuIndex: gpu.index,
        gpuUuid: gpu.uuid,
        migUuid,
        gpuInstanceId: giId,
        computeInstanceId: 0,
        profileName: profile.name,
        placement: { start, size: profile.memorySlices },
        createdAtMs: this.clock(),
        instanceCreated: true,
      };
    }
    node.leases.set(request.workloadId, lease);
    node.seq++;
    return this.resultOf(lease);
  }

  private resultOf(lease: LeaseReport): AgentAllocateResult {
    return {
      migUuid: lease.migUuid ?? lease.gpuUuid,
      gpuInstanceId: lease.gpuInstanceId,
      computeInstanceId: lease.computeInstanceId,
      placement: lease.placement,
      createdAtMs: lease.createdAtMs,
      instanceCreated: lease.instanceCreated,
    };
  }

  async release(request: AgentReleaseRequest, signal: AbortSignal): Promise<{ readonly released: boolean }> {
    await this.hooks.beforeRelease?.(request, signal);
    signal.throwIfAborted();
    return this.releaseNow(request);
  }

  releaseNow(request: AgentReleaseRequest): { readonly released: boolean } {
    const node = this.node(request.nodeId);
    const lease = node.leases.get(request.workloadId);
    if (!lease) return { released: false };
    node.leases.delete(request.workloadId);
    if (lease.instanceCreated) {
      const gpu = node.gpus.find((g) => g.uuid === lease.gpuUuid);
      if (gpu) gpu.instances = gpu.instances.filter((gi) => gi.giId !== lease.gpuInstanceId);
    }
    node.seq++;
    return { released: true };
  }
}

/** Registers every node of the fleet with the view and applies its snapshot (what agents do at start). */
export function registerFleet(view: ClusterView, fleet: InProcessFleet, nowMs: number, leaseTtlMs = 60_000): void {
  for (const nodeId of fleet.nodeIds()) {
    registerNode(view, { nodeId, address: `in-process:${nodeId}`, leaseTtlMs }, nowMs);
    applyNodeSnapshot(view, fleet.snapshot(nodeId), nowMs);
  }
}
