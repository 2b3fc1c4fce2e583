// What a running agent's GetNode says, in the shape `tessera inspect` prints for a local host, plus
// what only the agent knows (leases, health, fabric).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GetNodeResponse } from "../gen/tessera/v1/agent_pb.js";
import { HealthState, PortHealth } from "../gen/tessera/v1/node_pb.js";
import type { GpuSample, ProcessSample } from "../gen/tessera/v1/telemetry_pb.js";
import type { GpuReport, HostInventory, MigDeviceReport, ProcessReport } from "../telemetry/inventory-types.js";
import { renderTable } from "./table.js";

const hex = (n: number) => `0x${n.toString(16).toUpperCase().padStart(8, "0")}`;
const num = (v: bigint | undefined) => (v === undefined ? undefined : Number(v));

function processes(list: readonly ProcessSample[], where?: { gi: number; ci: number }): ProcessReport[] {
  return list.map((p) => {
    const r: ProcessReport = { pid: p.pid };
    if (p.name) r.name = p.name;
    if (p.usedMemoryMib !== undefined) r.usedMemoryMiB = Number(p.usedMemoryMib);
    if (where) {
      r.gpuInstanceId = where.gi;
      r.computeInstanceId = where.ci;
    }
    return r;
  });
}

/** GetNode's node and latest sample as a HostInventory. */
export function inventoryFromNode(res: GetNodeResponse): HostInventory {
  const node = res.node;
  const samples = new Map((res.sample?.gpus ?? []).map((s) => [s.index, s]));
  const gpus: GpuReport[] = (node?.gpus ?? []).map((g) => {
    const s: GpuSample | undefined = samples.get(g.index);
    const report: GpuReport = {
      index: g.index,
      name: g.name,
      uuid: g.uuid,
      pciBusId: g.pciBusId,
      pciDeviceId: hex(g.pciDeviceId),
      pciSubSystemId: hex(g.pciSubSystemId),
      architecture: g.architecture,
      computeCapability: g.computeCapability,
      temperatureThresholdsC: {},
      clocksMHz: {},
      maxClocksMHz: {},
      ecc: {},
      pcie: {},
      processes: processes(s?.processes ?? []),
    };
    if (g.serial) report.serial = g.serial;
    if (g.minorNumber !== undefined) report.minorNumber = g.minorNumber;
    if (g.shutdownTemperatureC !== undefined) report.temperatureThresholdsC.shutdown = g.shutdownTemperatureC;
    if (g.slowdownTemperatureC !== undefined) report.temperatureThresholdsC.slowdown = g.slowdownTemperatureC;
    if (g.maxSmClockMhz !== undefined) report.maxClocksMHz.sm = g.maxSmClockMhz;
    if (g.maxMemoryClockMhz !== undefined) report.maxClocksMHz.memory = g.maxMemoryClockMhz;
    if (g.pcieMaxGeneration !== undefined) report.pcie.maxGeneration = g.pcieMaxGeneration;
    if (g.pcieMaxWidth !== undefined) report.pcie.maxWidth = g.pcieMaxWidth;
    if (s) {
      if (s.memoryUsedMib !== undefined && s.memoryFreeMib !== undefined) {
        report.memory = {
          totalMiB: Number(g.memoryTotalMib),
          usedMiB: Number(s.memoryUsedMib),
          freeMiB: Number(s.memoryFreeMib),
        };
        if (s.memoryReservedMib !== undefined) report.memory.reservedMiB = Number(s.memoryReservedMib);
      }
      if (s.utilizationPercent !== undefined && s.memoryUtilizationPercent !== undefined)
        report.utilization = { gpuPercent: s.utilizationPercent, memoryPercent: s.memoryUtilizationPercent };
      if (s.temperatureC !== undefined) report.temperatureC = s.temperatureC;
      if (s.powerMilliwatts !== undefined) report.powerDrawWatts = s.powerMilliwatts / 1000;
      if (s.powerLimitMilliwatts !== undefined) report.powerLimitWatts = s.powerLimitMilliwatts / 1000;
      if (s.energyMillijoules !== undefined) report.energyJoules = Math.round(Number(s.energyMillijoules) / 1000);
      if (s.smClockMhz !== undefined) report.clocksMHz.sm = s.smClockMhz;
      if (s.memoryClockMhz !== undefined) report.clocksMHz.memory = s.memoryClockMhz;
      if (s.clockEventReasons !== undefined) report.clockEventReasons = [...s.clockEventReasonNames];
      if (s.eccEnabled !== undefined) report.ecc.enabled = s.eccEnabled;
      if (s.eccCorrectedVolatile !== undefined && s.eccUncorrectedVolatile !== undefined)
        report.ecc.volatile = {
          corrected: Number(s.eccCorrectedVolatile),
          uncorrected: Number(s.eccUncorrectedVolatile),
        };
      if (s.eccCorrectedAggregate !== undefined && s.eccUncorrectedAggregate !== undefined)
        report.ecc.aggregate = {
          corrected: Number(s.eccCorrectedAggregate),
          uncorrected: Number(s.eccUncorrectedAggregate),
        };
      if (s.remappedRowsCorrected !== undefined)
        report.remappedRows = {
          corrected: s.remappedRowsCorrected,
          uncorrected: s.remappedRowsUncorrected ?? 0,
          pending: s.remappedRowsPending ?? false,
          failure: s.remappedRowsFailure ?? false,
        };
      if (s.retiredPagesPending !== undefined) report.retiredPagesPending = s.retiredPagesPending;
      if (s.pcieGeneration !== undefined) report.pcie.currentGeneration = s.pcieGeneration;
      if (s.pcieWidth !== undefined) report.pcie.currentWidth = s.pcieWidth;
      const replay = num(s.pcieReplayCounter);
      if (replay !== undefined) report.pcie.replayCounter = replay;
    }
    if (g.migCapable) {
      const placements = new Map(g.instances.map((gi) => [gi.gpuInstanceId, gi.placement]));
      const devices: MigDeviceReport[] = (s?.migDevices ?? []).map((m) => {
        const placement = placements.get(m.gpuInstanceId);
        const d: MigDeviceReport = {
          index: m.migIndex,
          uuid: m.uuid,
          name: `${g.name} MIG ${m.profileName}`,
          profile: m.profileName,
          gpuInstanceId: m.gpuInstanceId,
          computeInstanceId: m.computeInstanceId,
          placement: { start: placement?.start ?? -1, size: placement?.size ?? 0 },
          processes: processes(m.processes, { gi: m.gpuInstanceId, ci: m.computeInstanceId }),
        };
        if (m.memoryTotalMib !== undefined && m.memoryUsedMib !== undefined)
          d.memory = { totalMiB: Number(m.memoryTotalMib), usedMiB: Number(m.memoryUsedMib) };
        return d;
      });
      report.mig = { currentEnabled: g.migEnabled, pendingEnabled: g.migPendingEnabled, devices };
    }
    return report;
  });
  const inv: HostInventory = {
    simulated: node?.simulated ?? false,
    library: node?.driver?.libraryPath ?? "",
    driverVersion: node?.driver?.driverVersion ?? "",
    nvmlVersion: node?.driver?.nvmlVersion ?? "",
    cudaDriverVersion: node?.driver?.cudaDriverVersion || "unknown",
    gpus,
    unavailableGpus: (node?.unavailableGpus ?? []).map((u) => ({ index: u.index, error: u.error })),
  };
  if (node?.simulatorPreset) inv.preset = node.simulatorPreset;
  return inv;
}

const HEALTH_NAMES: Record<HealthState, string> = {
  [HealthState.UNSPECIFIED]: "-",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.DEGRADED]: "degraded",
  [HealthState.UNHEALTHY]: "unhealthy",
};

const PORT_NAMES: Record<PortHealth, string> = {
  [PortHealth.UNSPECIFIED]: "-",
  [PortHealth.HEALTHY]: "healthy",
  [PortHealth.DEGRADED]: "degraded",
  [PortHealth.FLAPPING]: "flapping",
  [PortHealth.DOWN]: "down",
  [PortHealth.MISSING]: "missing",
};

/** What only the agent knows: who it is, GPU health, leases, fabric ports. */
export function renderAgentExtras(res: GetNodeResponse, address: string): string {
  const node = res.node;
  const parts: string[] = [];
  const started = node?.startedAt ? new Date(timestampMs(node.startedAt)).toISOString() : "?";
  parts.push(
    `Agent ${node?.agentVersion ?? "?"} at ${address}: node ${node?.nodeId ?? "?"} (${node?.host?.os ?? "?"}, ${node?.host?.cpuModel ?? "?"}), up since ${started}, ${node?.dynamicMig ? "dynamic" : "static"} MIG${res.sample?.stale ? "; SAMPLER STALE" : ""}`,
  );
  parts.push(
    renderTable(
      ["GPU", "HEALTH", "MIG SLOTS FREE", "LARGEST FIT", "WHY"],
      (node?.gpus ?? []).map((g) => [
        String(g.index),
        HEALTH_NAMES[g.health?.state ?? HealthState.UNSPECIFIED],
        g.fragmentation ? String(g.fragmentation.freeMemorySlices) : "-",
        g.fragmentation?.largestFittingProfile || "-",
        g.health?.reasons[0] ?? "",
      ]),
    ),
  );
  parts.push(
    res.leases.length === 0
      ? "No leases."
      : renderTable(
          ["WORKLOAD", "TENANT", "GPU", "DEVICE", "PROFILE", "CREATED"],
          res.leases.map((l) => [
            l.workloadId,
            l.tenant,
            String(l.gpuIndex),
            l.migUuid || l.gpuUuid,
            l.profileName,
            l.instanceCreated ? "by agent" : "existing",
          ]),
        ),
  );
  if ((node?.fabricPorts.length ?? 0) > 0)
    parts.push(
      renderTable(
        ["PORT", "LINK", "STATE", "RATE", "HEALTH"],
        (node?.fabricPorts ?? []).map((p) => [
          `${p.device}/${p.port}`,
          p.linkLayer,
          `${p.state}/${p.physicalState}`,
          p.rateGbps ? `${p.rateGbps} Gb/s` : "-",
          PORT_NAMES[p.health],
        ]),
      ),
    );
  return parts.join("\n\n");
}
