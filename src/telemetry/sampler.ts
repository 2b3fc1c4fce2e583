// One NVML sweep of the host: identity (once per GPU), telemetry, MIG layout and fragmentation.
// Runs where its Nvml lives (the sampler worker); only reads. NVML failures other than
// NOT_SUPPORTED are counted by code and the value is left absent; a GPU answering GPU_IS_LOST is
// reported lost and the sweep goes on with the others.
import { performance } from "node:perf_hooks";
import { exportMigDevices } from "../mig/export.js";
import { fragmentationOf, type GpuFragmentation } from "../mig/fragmentation.js";
import { buildGeometry } from "../mig/geometry.js";
import { derivedComputeProfiles, GeometryCache, readLayout } from "../mig/nvml-source.js";
import { renderSlotMap } from "../mig/slot-map.js";
import type { GpuGeometry, GpuInstanceState, NvmlGpuInstanceProfile } from "../mig/types.js";
import { type Device, type Nvml, NvmlError } from "../nvml/index.js";
import type {
  DriverReading,
  FragmentationReading,
  GpuIdentity,
  GpuReading,
  GpuTelemetry,
  MigDeviceReading,
  MigReading,
  NvmlErrorCount,
  ProcessReading,
  SweepResult,
  UnavailableGpuReading,
} from "./sweep-types.js";

const MiB = 1024 * 1024;
/** Layouts are re-read when the MIG devices change, when asked, and at least this often. */
const LAYOUT_REFRESH_MS = 30_000;

class GpuLostSignal extends Error {}

interface LayoutCache {
  key: string;
  readAtMs: number;
  enabled: boolean;
  pending: boolean;
  instances: readonly GpuInstanceState[];
  geometry: GpuGeometry | null;
  /** MIG device UUID → profile name. */
  names: Map<string, string>;
  /** The reading last built from this layout, and the processes it was built with. */
  reading: MigReading | undefined;
  pidsKey: string;
}

export interface SamplerOptions {
  readonly simulatorPreset?: string;
  readonly clock?: () => number;
}

export class NvmlSampler {
  readonly #nvml: Nvml;
  readonly #clock: () => number;
  readonly #driver: DriverReading;
  readonly #identities = new Map<number, GpuIdentity>();
  readonly #layouts = new Map<string, LayoutCache>();
  readonly #geometryCache = new GeometryCache();
  readonly #processNames = new Map<number, string | undefined>();
  // Readings of the previous sweep, to hand over the same objects where nothing changed.
  #lastTelemetry = new Map<string, GpuTelemetry>();
  /** Per GPU: MIG device identities by position, and when they were last read. */
  readonly #migIds = new Map<
    string,
    {
      readAtMs: number;
      byIndex: Map<number, { device: Device; uuid: string; gpuInstanceId: number; computeInstanceId: number }>;
    }
  >();
  #lastMigDevices = new Map<string, MigDeviceReading>();
  #nextTelemetry = new Map<string, GpuTelemetry>();
  #nextMigDevices = new Map<string, MigDeviceReading>();
  #sweep = 0;
  #forceLayout = true;
  // Per-sweep accounting.
  #errors = new Map<string, { code: string; operation: string; count: number }>();
  #slowest: { operation: string; ms: number } | undefined;

  constructor(nvml: Nvml, options: SamplerOptions = {}) {
    this.#nvml = nvml;
    this.#clock = options.clock ?? Date.now;
    const cuda = nvml.cudaDriverVersion();
    this.#driver = {
      driverVersion: nvml.driverVersion(),
      nvmlVersion: nvml.nvmlVersion(),
      cudaDriverVersion: cuda ? `${cuda.major}.${cuda.minor}` : "",
      libraryPath: nvml.libraryPath,
      simulated: nvml.simulated,
      simulatorPreset: options.simulatorPreset ?? "",
    };
  }

  get driver(): DriverReading {
    return this.#driver;
  }

  /** The next sweep re-reads every MIG layout (after the agent changed one). */
  refreshLayouts(): void {
    this.#forceLayout = true;
  }

  sweep(scheduledAtMs: number = this.#clock()): SweepResult {
    const startedAtMs = this.#clock();
    const t0 = performance.now();
    this.#errors = new Map();
    this.#slowest = undefined;
    const gpus: GpuReading[] = [];
    const unavailable: UnavailableGpuReading[] = [];
    const forceLayout = this.#forceLayout;
    this.#forceLayout = false;
    let slots: ReturnType<Nvml["deviceSlots"]>;
    try {
      slots = this.#nvml.deviceSlots();
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      this.#count(err);
      slots = [];
    }
    const seenPids = new Set<number>();
    for (const slot of slots) {
      if ("error" in slot) {
        this.#count(slot.error);
        const known = this.#identities.get(slot.index);
        if (known && slot.error.nvmlCode === "NVML_ERROR_GPU_IS_LOST") {
          gpus.push({ identity: known, lost: true, telemetry: undefined, mig: undefined });
        } else {
          unavailable.push({ index: slot.index, error: slot.error.message, code: slot.error.code });
        }
        continue;
      }
      gpus.push(this.#readGpu(slot.index, slot.device, startedAtMs, forceLayout, seenPids));
    }
    for (const pid of this.#processNames.keys()) if (!seenPids.has(pid)) this.#processNames.delete(pid);
    this.#lastTelemetry = this.#nextTelemetry;
    this.#lastMigDevices = this.#nextMigDevices;
    this.#nextTelemetry = new Map();
    this.#nextMigDevices = new Map();
    this.#sweep++;
    return {
      sweep: this.#sweep,
      scheduledAtMs,
      startedAtMs,
      durationMs: performance.now() - t0,
      driver: this.#driver,
      gpus,
      unavailable,
      nvmlErrors: [...this.#errors.values()] as NvmlErrorCount[],
      slowestCall: this.#slowest,
      fabric: undefined,
    };
  }

  // ---- one GPU ----------------------------------------------------------------

  #readGpu(index: number, d: Device, nowMs: number, forceLayout: boolean, seenPids: Set<number>): GpuReading {
    let identity = this.#identities.get(index);
    try {
      const uuid = this.#call("nvmlDeviceGetUUID", () => d.uuid());
      if (uuid === undefined) throw new GpuLostSignal();
      if (identity?.uuid !== uuid) {
        identity = this.#readIdentity(index, uuid, d);
        this.#identities.set(index, identity);
      }
      const read = this.#readTelemetry(d, identity.uuid, seenPids, nowMs, forceLayout);
      const mig = identity.migCapable ? this.#readMig(d, identity, read, nowMs, forceLayout) : undefined;
      return { identity, lost: false, telemetry: this.#intern(identity.uuid, read), mig };
    } catch (err) {
      if (!(err instanceof GpuLostSignal)) throw err;
      const fallback: GpuIdentity = identity ?? unknownIdentity(index);
      return { identity: fallback, lost: true, telemetry: undefined, mig: undefined };
    }
  }

  #readIdentity(index: number, uuid: string, d: Device): GpuIdentity {
    const pci = this.#call("nvmlDeviceGetPciInfo_v3", () => d.pciInfo());
    const arch = this.#call("nvmlDeviceGetArchitecture", () => d.architecture());
    const cc = this.#call("nvmlDeviceGetCudaComputeCapability", () => d.cudaComputeCapability());
    const mem = this.#call("nvmlDeviceGetMemoryInfo", () => d.memory());
    const max = this.#call("nvmlDeviceGetMaxClockInfo", () => d.maxClocks());
    const link = this.#call("nvmlDeviceGetMaxPcieLink", () => d.pcieLink());
    const thresholds = this.#call("nvmlDeviceGetTemperatureThreshold", () => d.temperatureThresholds());
    const mode = this.#call("nvmlDeviceGetMigMode", () => d.mig.mode());
    return {
      index,
      uuid,
      name: this.#call("nvmlDeviceGetName", () => d.name()) ?? "unknown",
      pciBusId: pci?.busId ?? "",
      pciDeviceId: pci?.pciDeviceId ?? 0,
      pciSubSystemId: pci?.pciSubSystemId ?? 0,
      minorNumber: this.#call("nvmlDeviceGetMinorNumber", () => d.minorNumber()),
      serial: this.#call("nvmlDeviceGetSerial", () => d.serial()),
      architecture: arch?.name ?? "unknown",
      computeCapability: cc ? `${cc.major}.${cc.minor}` : "unknown",
      memoryTotalMiB: mem ? Math.round(mem.totalBytes / MiB) : 0,
      maxSmClockMHz: max?.smMHz,
      maxMemoryClockMHz: max?.memoryMHz,
      pcieMaxGeneration: link?.maxGeneration,
      pcieMaxWidth: link?.maxWidth,
      slowdownTemperatureC: thresholds?.slowdownCelsius,
      shutdownTemperatureC: thresholds?.shutdownCelsius,
      migCapable: mode !== undefined,
    };
  }

  #readTelemetry(d: Device, gpuUuid: string, seenPids: Set<number>, nowMs: number, force: boolean): GpuTelemetry {
    const mem = this.#call("nvmlDeviceGetMemoryInfo", () => d.memory());
    const util = this.#call("nvmlDeviceGetUtilizationRates", () => d.utilization());
    const reasons = this.#call("nvmlDeviceGetCurrentClocksEventReasons", () => d.clockEventReasons());
    const eccMode = this.#call("nvmlDeviceGetEccMode", () => d.eccMode());
    const ecc = this.#call("nvmlDeviceGetTotalEccErrors", () => d.eccErrors());
    const remapped = this.#call("nvmlDeviceGetRemappedRows", () => d.remappedRows());
    const link = this.#call("nvmlDeviceGetCurrPcieLink", () => d.pcieLink());
    const procs = this.#call("nvmlDeviceGetComputeRunningProcesses_v3", () => d.computeProcesses()) ?? [];
    const migDevices: MigDeviceReading[] = [];
    const migHandles = this.#call("nvmlDeviceGetMigDeviceHandleByIndex", () => d.migDevices()) ?? [];
    // A MIG device's UUID and instance ids are read again only when its handle changes, when the
    // layout is re-read (asked, a MIG config change event, or every LAYOUT_REFRESH_MS): NVML may
    // reuse handles after a reconfiguration, and those are the times one can happen unnoticed.
    let ids = this.#migIds.get(gpuUuid);
    if (!ids || force || nowMs - ids.readAtMs >= LAYOUT_REFRESH_MS) {
      ids = { readAtMs: nowMs, byIndex: new Map() };
      this.#migIds.set(gpuUuid, ids);
    }
    for (const m of migHandles) {
      const migIndex = m.migIndex ?? 0;
      let id = ids.byIndex.get(migIndex);
      if (!id?.device.equals(m)) {
        const uuid = this.#call("nvmlDeviceGetUUID", () => m.uuid());
        if (uuid === undefined) continue;
        id = {
          device: m,
          uuid,
          gpuInstanceId: this.#call("nvmlDeviceGetGpuInstanceId", () => m.gpuInstanceId()) ?? 0,
          computeInstanceId: this.#call("nvmlDeviceGetComputeInstanceId", () => m.computeInstanceId()) ?? 0,
        };
        ids.byIndex.set(migIndex, id);
      }
      const mm = this.#call("nvmlDeviceGetMemoryInfo", () => m.memory());
      const mprocs = this.#call("nvmlDeviceGetComputeRunningProcesses_v3", () => m.computeProcesses()) ?? [];
      migDevices.push({
        migIndex,
        uuid: id.uuid,
        gpuInstanceId: id.gpuInstanceId,
        computeInstanceId: id.computeInstanceId,
        profileName: "",
        memoryUsedMiB: mm ? Math.round(mm.usedBytes / MiB) : undefined,
        memoryTotalMiB: mm ? Math.round(mm.totalBytes / MiB) : undefined,
        processes: mprocs.map((p) => this.#process(p.pid, p.usedGpuMemoryBytes, seenPids)),
      });
    }
    return {
      utilizationPercent: util?.gpuPercent,
      memoryUtilizationPercent: util?.memoryPercent,
      memoryUsedMiB: mem ? Math.round(mem.usedBytes / MiB) : undefined,
      memoryFreeMiB: mem ? Math.round(mem.freeBytes / MiB) : undefined,
      memoryReservedMiB: mem?.reservedBytes === undefined ? undefined : Math.round(mem.reservedBytes / MiB),
      temperatureC: this.#call("nvmlDeviceGetTemperature", () => d.temperatureCelsius()),
      powerMilliwatts: this.#call("nvmlDeviceGetPowerUsage", () => d.powerUsageMilliwatts()),
      powerLimitMilliwatts: this.#call("nvmlDeviceGetEnforcedPowerLimit", () => d.enforcedPowerLimitMilliwatts()),
      energyMillijoules: this.#call("nvmlDeviceGetTotalEnergyConsumption", () => d.totalEnergyMillijoules()),
      smClockMHz: this.#call("nvmlDeviceGetClockInfo", () => d.clockMHz("sm")),
      memoryClockMHz: this.#call("nvmlDeviceGetClockInfo", () => d.clockMHz("memory")),
      clockEventReasons: reasons?.mask,
      clockEventReasonNames: reasons ? reasons.names.map(String) : [],
      eccEnabled: eccMode?.current,
      eccCorrectedVolatile: ecc?.volatileCorrected,
      eccUncorrectedVolatile: ecc?.volatileUncorrected,
      eccCorrectedAggregate: ecc?.aggregateCorrected,
      eccUncorrectedAggregate: ecc?.aggregateUncorrected,
      remappedRows: remapped
        ? {
            corrected: remapped.corrected,
            uncorrected: remapped.uncorrected,
            pending: remapped.pending,
            failure: remapped.failureOccurred,
          }
        : undefined,
      retiredPagesPending: this.#call("nvmlDeviceGetRetiredPagesPendingStatus", () => d.retiredPagesPending()),
      pcieReplayCounter: this.#call("nvmlDeviceGetFieldValues", () => d.pcieReplayCounter()),
      pcieGeneration: link?.generation,
      pcieWidth: link?.width,
      processes: procs
        .filter((p) => p.gpuInstanceId === undefined)
        .map((p) => this.#process(p.pid, p.usedGpuMemoryBytes, seenPids)),
      migDevices,
    };
  }

  #process(pid: number, usedBytes: number | undefined, seenPids: Set<number>): ProcessReading {
    seenPids.add(pid);
    if (!this.#processNames.has(pid)) {
      this.#processNames.set(
        pid,
        this.#call("nvmlSystemGetProcessName", () => this.#nvml.processName(pid)),
      );
    }
    return {
      pid,
      name: this.#processNames.get(pid),
      usedMemoryMiB: usedBytes === undefined ? undefined : Math.round(usedBytes / MiB),
    };
  }

  #readMig(d: Device, identity: GpuIdentity, telemetry: GpuTelemetry, nowMs: number, force: boolean): MigReading {
    const mode = this.#call("nvmlDeviceGetMigMode", () => d.mig.mode());
    const enabled = mode?.current ?? false;
    const pending = mode?.pending ?? false;
    const key = telemetry.migDevices.map((m) => m.uuid).join(",");
    let layout = this.#layouts.get(identity.uuid);
    const stale =
      force ||
      layout === undefined ||
      layout.key !== key ||
      layout.enabled !== enabled ||
      layout.pending !== pending ||
      nowMs - layout.readAtMs >= LAYOUT_REFRESH_MS;
    if (stale) layout = this.#readLayout(d, identity, key, enabled, pending, nowMs);
    const cache = layout as LayoutCache;
    for (const m of telemetry.migDevices) (m as { profileName: string }).profileName = cache.names.get(m.uuid) ?? "";
    // Processes come from this sweep; the layout may be up to LAYOUT_REFRESH_MS old. An unchanged
    // layout with the same processes gives the same (shared) reading.
    const pidsKey = telemetry.migDevices.map((m) => `${m.uuid}:${m.processes.map((p) => p.pid).join(".")}`).join(",");
    if (cache.reading && cache.pidsKey === pidsKey) return cache.reading;
    cache.reading = this.#migReading(cache, telemetry);
    cache.pidsKey = pidsKey;
    return cache.reading;
  }

  #readLayout(
    d: Device,
    identity: GpuIdentity,
    key: string,
    enabled: boolean,
    pending: boolean,
    nowMs: number,
  ): LayoutCache {
    const geometryKey = GeometryCache.key(identity.pciDeviceId, identity.memoryTotalMiB);
    if (enabled) this.#learnGeometry(d, geometryKey, identity);
    const input = this.#geometryCache.get(geometryKey);
    const instances = enabled ? (this.#call("nvmlDeviceGetGpuInstances", () => readLayout(d)) ?? []) : [];
    const geometry = input ? buildGeometry(input) : null;
    const namer = profileNamer(geometry);
    const names = new Map<string, string>();
    for (const gi of instances)
      for (const ci of gi.computeInstances) names.set(ci.uuid, namer.ci(gi.profileId, ci.profileId));
    const cache: LayoutCache = {
      key,
      readAtMs: nowMs,
      enabled,
      pending,
      instances,
      geometry,
      names,
      reading: undefined,
      pidsKey: "",
    };
    this.#layouts.set(identity.uuid, cache);
    return cache;
  }

  #migReading(layout: LayoutCache, telemetry: GpuTelemetry): MigReading {
    const { geometry, enabled, pending } = layout;
    const names = profileNamer(geometry);
    const pidsByUuid = new Map(telemetry.migDevices.map((m) => [m.uuid, m.processes.map((p) => p.pid)]));
    return {
      enabled,
      pendingEnabled: pending,
      memorySliceCount: geometry?.memorySliceCount ?? 0,
      profiles: (geometry?.profiles ?? []).map((p) => ({
        id: p.id,
        name: p.name,
        sliceCount: p.sliceCount,
        memorySlices: p.memorySlices,
        memoryMiB: p.memoryMiB,
        multiprocessorCount: p.multiprocessorCount,
        maxInstances: p.maxInstances,
        placementStarts: p.placements,
      })),
      instances: layout.instances.map((gi) => ({
        gpuInstanceId: gi.giId,
        profileId: gi.profileId,
        profileName: names.gi(gi.profileId),
        placement: gi.placement,
        computeInstances: gi.computeInstances.map((ci) => ({
          computeInstanceId: ci.ciId,
          profileId: ci.profileId,
          profileName: names.ci(gi.profileId, ci.profileId),
          uuid: ci.uuid,
          processIds: pidsByUuid.get(ci.uuid) ?? ci.processIds,
        })),
      })),
      fragmentation:
        geometry && enabled ? fragmentationReading(geometry, fragmentationOf(geometry, layout.instances)) : undefined,
      slotMap: geometry
        ? renderSlotMap(geometry, enabled ? layout.instances : [])
        : enabled
          ? "[MIG on; geometry not read yet]"
          : "[MIG off]",
      exportedDevices:
        geometry && enabled
          ? exportMigDevices(
              geometry,
              { mode: { current: "enabled", pending: pending ? "enabled" : "disabled" }, instances: layout.instances },
              { pinned: false },
            )
          : {},
    };
  }

  /**
   * The previous sweep's objects where every value is the same: unchanged readings cost nothing to
   * pass to the main thread (sweep-pack.ts) and keep downstream caches warm.
   */
  #intern(gpuUuid: string, t: GpuTelemetry): GpuTelemetry {
    const prev = this.#lastTelemetry.get(gpuUuid);
    const migDevices = t.migDevices.map((m) => {
      const p = this.#lastMigDevices.get(m.uuid);
      const same =
        p && sameFlat(p, { ...m, processes: sameProcesses(p.processes, m.processes) ? p.processes : m.processes });
      const kept = same ? p : m;
      this.#nextMigDevices.set(m.uuid, kept);
      return kept;
    });
    const next: GpuTelemetry = {
      ...t,
      migDevices: prev && sameItems(prev.migDevices, migDevices) ? prev.migDevices : migDevices,
      processes: prev && sameProcesses(prev.processes, t.processes) ? prev.processes : t.processes,
      clockEventReasonNames:
        prev && sameItems(prev.clockEventReasonNames, t.clockEventReasonNames)
          ? prev.clockEventReasonNames
          : t.clockEventReasonNames,
      remappedRows:
        prev?.remappedRows && t.remappedRows && sameFlat(prev.remappedRows, t.remappedRows)
          ? prev.remappedRows
          : t.remappedRows,
    };
    const kept = prev && sameFlat(prev, next) ? prev : next;
    this.#nextTelemetry.set(gpuUuid, kept);
    return kept;
  }

  /** What nvml-source's GeometryCache learns, without its once-per-call cost on every sweep. */
  #learnGeometry(d: Device, key: string, identity: GpuIdentity): void {
    if (this.#geometryCache.get(key)) return;
    const profiles = this.#call("nvmlDeviceGetGpuInstanceProfileInfo", () => d.mig.gpuInstanceProfiles()) ?? [];
    if (profiles.length === 0) return;
    const input: NvmlGpuInstanceProfile[] = [];
    for (const p of profiles) {
      const placements = this.#call("nvmlDeviceGetGpuInstancePossiblePlacements_v2", () =>
        d.mig.possiblePlacements(p.id),
      );
      if (!placements || placements.length === 0) continue;
      input.push({
        index: p.index,
        id: p.id,
        sliceCount: p.sliceCount,
        memorySizeMiB: p.memorySizeMiB,
        multiprocessorCount: p.multiprocessorCount,
        engines: {
          copy: p.copyEngineCount,
          decoder: p.decoderCount,
          encoder: p.encoderCount,
          jpeg: p.jpegCount,
          ofa: p.ofaCount,
        },
        instanceCount: p.instanceCount,
        placements,
        computeProfiles: derivedComputeProfiles(p.sliceCount, p.multiprocessorCount),
      });
    }
    if (input.length === 0) return;
    this.#geometryCache.learnProfiles(key, {
      model: identity.name,
      pciDeviceId: identity.pciDeviceId,
      totalMemoryMiB: identity.memoryTotalMiB,
      profiles: input,
    });
  }

  // ---- accounting ---------------------------------------------------------------

  /** Runs one NVML read: times it, counts its failure, and turns GPU_IS_LOST into the lost signal. */
  #call<T>(operation: string, read: () => T): T | undefined {
    const t0 = performance.now();
    try {
      return read();
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      this.#count(err);
      if (err.nvmlCode === "NVML_ERROR_GPU_IS_LOST") throw new GpuLostSignal();
      return undefined;
    } finally {
      const ms = performance.now() - t0;
      if (this.#slowest === undefined || ms > this.#slowest.ms) this.#slowest = { operation, ms };
    }
  }

  #count(err: NvmlError): void {
    const key = `${err.code}/${err.operation}`;
    const entry = this.#errors.get(key);
    if (entry) entry.count++;
    else this.#errors.set(key, { code: err.code, operation: err.operation, count: 1 });
  }
}

/** Same keys with identical (===) values. */
function sameFlat<T extends object>(a: T, b: T): boolean {
  for (const k of Object.keys(b) as (keyof T)[]) if (a[k] !== b[k]) return false;
  return Object.keys(a).length === Object.keys(b).length;
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameProcesses(a: readonly ProcessReading[], b: readonly ProcessReading[]): boolean {
  return a.length === b.length && a.every((x, i) => sameFlat(x, b[i] as ProcessReading));
}

function unknownIdentity(index: number): GpuIdentity {
  return {
    index,
    uuid: "",
    name: "unknown",
    pciBusId: "",
    pciDeviceId: 0,
    pciSubSystemId: 0,
    minorNumber: undefined,
    serial: undefined,
    architecture: "unknown",
    computeCapability: "unknown",
    memoryTotalMiB: 0,
    maxSmClockMHz: undefined,
    maxMemoryClockMHz: undefined,
    pcieMaxGeneration: undefined,
    pcieMaxWidth: undefined,
    slowdownTemperatureC: undefined,
    shutdownTemperatureC: undefined,
    migCapable: false,
  };
}

function profileNamer(geometry: GpuGeometry | null): {
  gi: (profileId: number) => string;
  ci: (giProfileId: number, ciProfileId: number) => string;
} {
  const byId = new Map((geometry?.profiles ?? []).map((p) => [p.id, p]));
  return {
    gi: (id) => byId.get(id)?.name ?? `profile ${id}`,
    ci: (giId, ciId) => {
      const p = byId.get(giId);
      if (!p) return `profile ${giId}`;
      return p.computeProfiles.find((c) => c.id === ciId)?.name ?? p.name;
    },
  };
}

/**
 * The proto's view of fragmentation. `score` is the share of free memory slices that no single
 * profile can fill (0 when one profile can use every free slice, as on an empty GPU).
 */
export function fragmentationReading(geometry: GpuGeometry, f: GpuFragmentation): FragmentationReading {
  let coverable = 0;
  for (const fit of f.fits) {
    const p = geometry.profiles.find((x) => x.id === fit.profileId);
    if (p) coverable = Math.max(coverable, p.memorySlices * fit.placeable);
  }
  return {
    freeMemorySlices: f.freeSlices,
    strandedMemorySlices: f.unusableSlices,
    largestFittingProfile: f.largestPlaceable ?? "",
    fits: f.fits.map((x) => ({ profileName: x.name, count: x.placeable })),
    score: f.freeSlices === 0 ? 0 : (f.freeSlices - Math.min(coverable, f.freeSlices)) / f.freeSlices,
  };
}
