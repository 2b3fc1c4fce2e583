// Domain snapshots, leases and events as tessera.v1 messages. Built once per snapshot (or event) and
// shared by every reader: GetNode, WatchNode and the scheduler all see the same objects.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Lease as LeaseProto, LeaseSchema } from "../gen/tessera/v1/agent_pb.js";
import { type Gpu, GpuSchema, HealthState, type Node, NodeSchema, PortHealth } from "../gen/tessera/v1/node_pb.js";
import {
  type Event,
  EventKind,
  EventSchema,
  type GpuSample,
  GpuSampleSchema,
  type NodeSample,
  NodeSampleSchema,
} from "../gen/tessera/v1/telemetry_pb.js";
import type { Lease } from "../ledger/types.js";
import type { AgentEvent, EventKindName } from "../telemetry/event-log.js";
import type { HealthStateName } from "../telemetry/health.js";
import type { GpuReading, PortVerdictName, ProcessReading } from "../telemetry/sweep-types.js";
import type { HostFacts } from "./host-facts.js";
import type { NodeSnapshot } from "./node-state.js";

/** What does not change while the agent runs. */
export interface NodeStatic {
  readonly nodeId: string;
  readonly agentVersion: string;
  readonly host: HostFacts;
  readonly dynamicMig: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly startedAtMs: number;
}

const big = (n: number | undefined): bigint | undefined => (n === undefined ? undefined : BigInt(Math.round(n)));

const HEALTH: Record<HealthStateName, HealthState> = {
  healthy: HealthState.HEALTHY,
  degraded: HealthState.DEGRADED,
  unhealthy: HealthState.UNHEALTHY,
};

const PORT: Record<PortVerdictName, PortHealth> = {
  healthy: PortHealth.HEALTHY,
  degraded: PortHealth.DEGRADED,
  flapping: PortHealth.FLAPPING,
  down: PortHealth.DOWN,
  missing: PortHealth.MISSING,
};

const KIND: Record<EventKindName, EventKind> = {
  xid: EventKind.XID,
  ecc: EventKind.ECC,
  health: EventKind.HEALTH,
  mig: EventKind.MIG,
  lease: EventKind.LEASE,
  link: EventKind.LINK,
  gpu_lost: EventKind.GPU_LOST,
};

function gpuProto(g: GpuReading, snapshot: NodeSnapshot): Gpu {
  const id = g.identity;
  const verdict = snapshot.health.get(id.index);
  const mig = g.mig;
  const f = mig?.fragmentation;
  return create(GpuSchema, {
    index: id.index,
    uuid: id.uuid,
    name: id.name,
    pciBusId: id.pciBusId,
    pciDeviceId: id.pciDeviceId,
    pciSubSystemId: id.pciSubSystemId,
    architecture: id.architecture,
    computeCapability: id.computeCapability,
    memoryTotalMib: BigInt(id.memoryTotalMiB),
    health: {
      state: verdict ? HEALTH[verdict.state] : HealthState.UNSPECIFIED,
      reasons: [...(verdict?.reasons ?? [])],
    },
    migCapable: id.migCapable,
    migEnabled: mig?.enabled ?? false,
    migPendingEnabled: mig?.pendingEnabled ?? false,
    memorySliceCount: mig?.memorySliceCount ?? 0,
    profiles: (mig?.profiles ?? []).map((p) => ({
      id: p.id,
      name: p.name,
      sliceCount: p.sliceCount,
      memorySlices: p.memorySlices,
      memoryMib: BigInt(p.memoryMiB),
      multiprocessorCount: p.multiprocessorCount,
      maxInstances: p.maxInstances,
      placementStarts: [...p.placementStarts],
    })),
    instances: (mig?.instances ?? []).map((gi) => ({
      gpuInstanceId: gi.gpuInstanceId,
      profileId: gi.profileId,
      profileName: gi.profileName,
      placement: { start: gi.placement.start, size: gi.placement.size },
      computeInstances: gi.computeInstances.map((ci) => ({
        computeInstanceId: ci.computeInstanceId,
        profileId: ci.profileId,
        profileName: ci.profileName,
        uuid: ci.uuid,
        processIds: [...ci.processIds],
      })),
    })),
    ...(f
      ? {
          fragmentation: {
            freeMemorySlices: f.freeMemorySlices,
            strandedMemorySlices: f.strandedMemorySlices,
            largestFittingProfile: f.largestFittingProfile,
            fits: f.fits.map((x) => ({ profileName: x.profileName, count: x.count })),
            score: f.score,
          },
        }
      : {}),
    minorNumber: id.minorNumber,
    serial: id.serial ?? "",
    maxSmClockMhz: id.maxSmClockMHz,
    maxMemoryClockMhz: id.maxMemoryClockMHz,
    pcieMaxGeneration: id.pcieMaxGeneration,
    pcieMaxWidth: id.pcieMaxWidth,
    slowdownTemperatureC: id.slowdownTemperatureC,
    shutdownTemperatureC: id.shutdownTemperatureC,
    lost: g.lost,
  });
}

export function nodeProto(s: NodeStatic, snapshot: NodeSnapshot): Node {
  const sweep = snapshot.sweep;
  const fabric = snapshot.fabric;
  return create(NodeSchema, {
    nodeId: s.nodeId,
    agentVersion: s.agentVersion,
    simulated: sweep.driver.simulated,
    simulatorPreset: sweep.driver.simulatorPreset,
    host: { ...s.host, memoryBytes: BigInt(s.host.memoryBytes) },
    driver: {
      driverVersion: sweep.driver.driverVersion,
      nvmlVersion: sweep.driver.nvmlVersion,
      cudaDriverVersion: sweep.driver.cudaDriverVersion,
      libraryPath: sweep.driver.libraryPath,
    },
    gpus: sweep.gpus.map((g) => gpuProto(g, snapshot)),
    fabricPorts: (fabric?.ports ?? []).map((p) => ({
      device: p.device,
      port: p.port,
      linkLayer: p.linkLayer,
      state: p.state,
      physicalState: p.physicalState,
      rateGbps: p.rateGbps ?? 0,
      pciAddress: p.pciAddress,
      netdevs: [...p.netdevs],
      health: PORT[p.verdict],
      reasons: [...p.reasons],
    })),
    topology: (fabric?.topology ?? []).map((t) => ({ ...t })),
    dynamicMig: s.dynamicMig,
    unavailableGpus: sweep.unavailable.map((u) => ({ index: u.index, error: u.error })),
    labels: { ...s.labels },
    startedAt: timestampFromMs(s.startedAtMs),
  });
}

function processes(list: readonly ProcessReading[]) {
  return list.map((p) => ({ pid: p.pid, name: p.name ?? "", usedMemoryMib: big(p.usedMemoryMiB) }));
}

function gpuSample(g: GpuReading): GpuSample {
  const t = g.telemetry;
  const id = g.identity;
  if (!t) return create(GpuSampleSchema, { index: id.index, uuid: id.uuid, lost: g.lost });
  return create(GpuSampleSchema, {
    index: id.index,
    uuid: id.uuid,
    utilizationPercent: t.utilizationPercent,
    memoryUtilizationPercent: t.memoryUtilizationPercent,
    memoryUsedMib: big(t.memoryUsedMiB),
    memoryFreeMib: big(t.memoryFreeMiB),
    memoryReservedMib: big(t.memoryReservedMiB),
    memoryTotalMib: BigInt(id.memoryTotalMiB),
    temperatureC: t.temperatureC,
    powerMilliwatts: t.powerMilliwatts,
    powerLimitMilliwatts: t.powerLimitMilliwatts,
    energyMillijoules: big(t.energyMillijoules),
    smClockMhz: t.smClockMHz,
    memoryClockMhz: t.memoryClockMHz,
    clockEventReasons: t.clockEventReasons,
    clockEventReasonNames: [...t.clockEventReasonNames],
    eccEnabled: t.eccEnabled,
    eccCorrectedVolatile: big(t.eccCorrectedVolatile),
    eccUncorrectedVolatile: big(t.eccUncorrectedVolatile),
    eccCorrectedAggregate: big(t.eccCorrectedAggregate),
    eccUncorrectedAggregate: big(t.eccUncorrectedAggregate),
    remappedRowsCorrected: t.remappedRows?.corrected,
    remappedRowsUncorrected: t.remappedRows?.uncorrected,
    remappedRowsPending: t.remappedRows?.pending,
    remappedRowsFailure: t.remappedRows?.failure,
    retiredPagesPending: t.retiredPagesPending,
    pcieReplayCounter: big(t.pcieReplayCounter),
    pcieGeneration: t.pcieGeneration,
    pcieWidth: t.pcieWidth,
    processes: processes(t.processes),
    migDevices: t.migDevices.map((m) => ({
      uuid: m.uuid,
      gpuInstanceId: m.gpuInstanceId,
      computeInstanceId: m.computeInstanceId,
      profileName: m.profileName,
      memoryUsedMib: big(m.memoryUsedMiB),
      memoryTotalMib: big(m.memoryTotalMiB),
      processCount: m.processes.length,
      processes: processes(m.processes),
      migIndex: m.migIndex,
    })),
    lost: g.lost,
  });
}

export function sampleProto(snapshot: NodeSnapshot): NodeSample {
  const sweep = snapshot.sweep;
  return create(NodeSampleSchema, {
    time: timestampFromMs(sweep.startedAtMs),
    gpus: sweep.gpus.map(gpuSample),
    sweepDurationMs: sweep.durationMs,
    stale: snapshot.stale,
    sweep: BigInt(sweep.sweep),
  });
}

export function leaseProto(l: Lease): LeaseProto {
  return create(LeaseSchema, {
    workloadId: l.workloadId,
    tenant: l.tenant,
    gpuIndex: l.gpuIndex,
    gpuUuid: l.gpuUuid,
    migUuid: l.migUuid ?? "",
    gpuInstanceId: l.gpuInstanceId,
    computeInstanceId: l.computeInstanceId,
    profileName: l.profileName,
    ...(l.placement ? { placement: { start: l.placement.start, size: l.placement.size } } : {}),
    createdAt: timestampFromMs(l.createdAtMs),
    instanceCreated: l.instanceCreated,
  });
}

export function eventProto(e: AgentEvent): Event {
  const d = e.detail;
  const detail: Event["detail"] =
    d.type === "xid"
      ? {
          case: "xid",
          value: {
            $typeName: "tessera.v1.XidDetail",
            code: BigInt(d.code),
            gpuInstanceId: d.gpuInstanceId,
            description: d.description,
            action: d.action,
          },
        }
      : d.type === "health"
        ? {
            case: "health",
            value: {
              $typeName: "tessera.v1.HealthDetail",
              previous: d.previous,
              current: d.current,
              reasons: [...d.reasons],
            },
          }
        : d.type === "lease"
          ? {
              case: "lease",
              value: {
                $typeName: "tessera.v1.LeaseDetail",
                workloadId: d.workloadId,
                change: d.change,
                deviceUuid: d.deviceUuid,
              },
            }
          : d.type === "link"
            ? {
                case: "link",
                value: {
                  $typeName: "tessera.v1.LinkDetail",
                  device: d.device,
                  port: d.port,
                  previous: d.previous,
                  current: d.current,
                  reasons: [...d.reasons],
                },
              }
            : d.type === "mig"
              ? { case: "mig", value: { $typeName: "tessera.v1.MigDetail", change: d.change } }
              : d.type === "ecc"
                ? {
                    case: "ecc",
                    value: {
                      $typeName: "tessera.v1.EccDetail",
                      errorType: d.errorType,
                      volatileCorrected: big(d.volatileCorrected),
                      volatileUncorrected: big(d.volatileUncorrected),
                    },
                  }
                : { case: undefined };
  return create(EventSchema, {
    seq: BigInt(e.seq),
    time: timestampFromMs(e.atMs),
    kind: KIND[e.kind],
    gpuIndex: e.gpuIndex,
    gpuUuid: e.gpuUuid,
    message: e.message,
    detail,
  });
}

/** Proto views of snapshots, built once per snapshot and shared by every reader. */
export class SnapshotViews {
  readonly #static: NodeStatic;
  readonly #nodes = new WeakMap<NodeSnapshot, Node>();
  readonly #samples = new WeakMap<NodeSnapshot, NodeSample>();

  constructor(s: NodeStatic) {
    this.#static = s;
  }

  get static(): NodeStatic {
    return this.#static;
  }

  node(snapshot: NodeSnapshot): Node {
    let n = this.#nodes.get(snapshot);
    if (!n) {
      n = nodeProto(this.#static, snapshot);
      this.#nodes.set(snapshot, n);
    }
    return n;
  }

  sample(snapshot: NodeSnapshot): NodeSample {
    let s = this.#samples.get(snapshot);
    if (!s) {
      s = sampleProto(snapshot);
      this.#samples.set(snapshot, s);
    }
    return s;
  }
}
