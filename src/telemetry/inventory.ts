// Collects what `tessera inspect` shows from the typed NVML API. Only reads.
import type { Device, Nvml, ProcessInfo } from "../nvml/index.js";
import type { ClockSet, GpuReport, HostInventory, MigDeviceReport, ProcessReport } from "./inventory-types.js";

const MiB = 1024 * 1024;

export interface CollectOptions {
  /** Simulator preset name, when the library is the simulator. */
  readonly preset?: string;
}

export function collectInventory(nvml: Nvml, options: CollectOptions = {}): HostInventory {
  const cuda = nvml.cudaDriverVersion();
  const gpus: GpuReport[] = [];
  const unavailableGpus: HostInventory["unavailableGpus"] = [];
  for (const slot of nvml.deviceSlots()) {
    if ("error" in slot) unavailableGpus.push({ index: slot.index, error: slot.error.message });
    else gpus.push(gpuReport(nvml, slot.device, slot.index));
  }
  return {
    simulated: nvml.simulated,
    ...(options.preset === undefined ? {} : { preset: options.preset }),
    library: nvml.libraryPath,
    driverVersion: nvml.driverVersion(),
    nvmlVersion: nvml.nvmlVersion(),
    cudaDriverVersion: cuda ? `${cuda.major}.${cuda.minor}` : "unknown",
    gpus,
    unavailableGpus,
  };
}

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, "0")}`;
}

function mib(bytes: number): number {
  return Math.round(bytes / MiB);
}

function clocks(c: { graphicsMHz?: number; smMHz?: number; memoryMHz?: number; videoMHz?: number }): ClockSet {
  const out: ClockSet = {};
  if (c.graphicsMHz !== undefined) out.graphics = c.graphicsMHz;
  if (c.smMHz !== undefined) out.sm = c.smMHz;
  if (c.memoryMHz !== undefined) out.memory = c.memoryMHz;
  if (c.videoMHz !== undefined) out.video = c.videoMHz;
  return out;
}

function processes(nvml: Nvml, list: ProcessInfo[] | undefined): ProcessReport[] {
  return (list ?? []).map((p) => {
    const r: ProcessReport = { pid: p.pid };
    const name = nvml.processName(p.pid);
    if (name !== undefined) r.name = name;
    if (p.usedGpuMemoryBytes !== undefined) r.usedMemoryMiB = mib(p.usedGpuMemoryBytes);
    if (p.gpuInstanceId !== undefined) r.gpuInstanceId = p.gpuInstanceId;
    if (p.computeInstanceId !== undefined) r.computeInstanceId = p.computeInstanceId;
    return r;
  });
}

function gpuReport(nvml: Nvml, d: Device, index: number): GpuReport {
  const pci = d.pciInfo();
  const arch = d.architecture();
  const cc = d.cudaComputeCapability();
  const mem = d.memory();
  const util = d.utilization();
  const thresholds = d.temperatureThresholds();
  const power = d.powerUsageMilliwatts();
  const limit = d.enforcedPowerLimitMilliwatts();
  const energy = d.totalEnergyMillijoules();
  const reasons = d.clockEventReasons();
  const eccMode = d.eccMode();
  const ecc = d.eccErrors();
  const remapped = d.remappedRows();
  const link = d.pcieLink();
  const replay = d.pcieReplayCounter();
  const report: GpuReport = {
    index,
    name: d.name(),
    uuid: d.uuid(),
    pciBusId: pci.busId,
    pciDeviceId: hex(pci.pciDeviceId),
    pciSubSystemId: hex(pci.pciSubSystemId),
    architecture: arch?.name ?? "unknown",
    computeCapability: cc ? `${cc.major}.${cc.minor}` : "unknown",
    temperatureThresholdsC: {},
    clocksMHz: clocks(d.clocks()),
    maxClocksMHz: clocks(d.maxClocks()),
    ecc: {},
    pcie: {},
    processes: processes(nvml, d.computeProcesses()),
  };
  const serial = d.serial();
  if (serial !== undefined) report.serial = serial;
  const minor = d.minorNumber();
  if (minor !== undefined) report.minorNumber = minor;
  if (mem) {
    report.memory = { totalMiB: mib(mem.totalBytes), usedMiB: mib(mem.usedBytes), freeMiB: mib(mem.freeBytes) };
    if (mem.reservedBytes !== undefined) report.memory.reservedMiB = mib(mem.reservedBytes);
  }
  if (util) report.utilization = { gpuPercent: util.gpuPercent, memoryPercent: util.memoryPercent };
  const temp = d.temperatureCelsius();
  if (temp !== undefined) report.temperatureC = temp;
  const t = report.temperatureThresholdsC;
  if (thresholds.shutdownCelsius !== undefined) t.shutdown = thresholds.shutdownCelsius;
  if (thresholds.slowdownCelsius !== undefined) t.slowdown = thresholds.slowdownCelsius;
  if (thresholds.gpuMaxCelsius !== undefined) t.gpuMax = thresholds.gpuMaxCelsius;
  if (thresholds.memoryMaxCelsius !== undefined) t.memoryMax = thresholds.memoryMaxCelsius;
  if (power !== undefined) report.powerDrawWatts = power / 1000;
  if (limit !== undefined) report.powerLimitWatts = limit / 1000;
  if (energy !== undefined) report.energyJoules = Math.round(energy / 1000);
  if (reasons) report.clockEventReasons = reasons.names.map(String);
  if (eccMode) {
    report.ecc.enabled = eccMode.current;
    report.ecc.pendingEnabled = eccMode.pending;
  }
  if (ecc.volatileCorrected !== undefined && ecc.volatileUncorrected !== undefined)
    report.ecc.volatile = { corrected: ecc.volatileCorrected, uncorrected: ecc.volatileUncorrected };
  if (ecc.aggregateCorrected !== undefined && ecc.aggregateUncorrected !== undefined)
    report.ecc.aggregate = { corrected: ecc.aggregateCorrected, uncorrected: ecc.aggregateUncorrected };
  if (remapped)
    report.remappedRows = {
      corrected: remapped.corrected,
      uncorrected: remapped.uncorrected,
      pending: remapped.pending,
      failure: remapped.failureOccurred,
    };
  const retiredPending = d.retiredPagesPending();
  if (retiredPending !== undefined) report.retiredPagesPending = retiredPending;
  if (link.generation !== undefined) report.pcie.currentGeneration = link.generation;
  if (link.maxGeneration !== undefined) report.pcie.maxGeneration = link.maxGeneration;
  if (link.width !== undefined) report.pcie.currentWidth = link.width;
  if (link.maxWidth !== undefined) report.pcie.maxWidth = link.maxWidth;
  if (replay !== undefined) report.pcie.replayCounter = replay;
  const mode = d.mig.mode();
  if (mode) report.mig = { currentEnabled: mode.current, pendingEnabled: mode.pending, devices: migDevices(nvml, d) };
  return report;
}

function migDevices(nvml: Nvml, parent: Device): MigDeviceReport[] {
  const out: MigDeviceReport[] = [];
  for (const m of parent.migDevices()) {
    const giId = m.gpuInstanceId();
    const placement = parent.mig.gpuInstanceById(giId)?.info().placement ?? { start: -1, size: 0 };
    const name = m.name();
    const at = name.lastIndexOf(" MIG ");
    const report: MigDeviceReport = {
      index: m.migIndex ?? -1,
      uuid: m.uuid(),
      name,
      profile: at >= 0 ? name.slice(at + 5) : name,
      gpuInstanceId: giId,
      computeInstanceId: m.computeInstanceId(),
      placement: { start: placement.start, size: placement.size },
      processes: processes(nvml, m.computeProcesses()),
    };
    const mem = m.memory();
    if (mem) report.memory = { totalMiB: mib(mem.totalBytes), usedMiB: mib(mem.usedBytes) };
    out.push(report);
  }
  return out;
}
