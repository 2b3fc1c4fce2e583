// A GPU or MIG device: identity, telemetry, processes, topology, MIG device handles.
// Reads follow one convention: NOT_SUPPORTED (or a symbol this driver lacks) → undefined;
// any other failure → NvmlError. Every getter is one or a few sync FFI calls into scratch
// memory shared through the context, so a telemetry sweep allocates almost nothing.
import {
  ARCHITECTURES,
  BUFFER_SIZES,
  CLOCK_EVENT_REASONS,
  CLOCK_TYPES,
  type ClockType,
  decodeMask,
  ECC_COUNTER_TYPE,
  EVENT_TYPES,
  type EventTypeName,
  FIELD_IDS,
  GPM_SUPPORT_VERSION,
  MEMORY_ERROR_TYPE,
  NVML_TEMPERATURE_GPU,
  PAGE_RETIREMENT_CAUSE,
  TEMPERATURE_THRESHOLDS,
  TOPOLOGY_LEVELS,
  VALUE_TYPES,
} from "./constants.js";
import { type NvmlContext, readText, readU64 } from "./context.js";
import type { NvmlDeviceRef } from "./errors.js";
import { layout, structVersion } from "./ffi-types.js";
import { GpmSampler } from "./gpm.js";
import { DeviceMig } from "./mig.js";
import { allocateProcessBuffer, decodeProcesses, detectProcessStride, MAX_PROCESS_STRIDE } from "./processes.js";
import { Rc, returnCodeName } from "./return-codes.js";
import type {
  Architecture,
  Bar1MemoryInfo,
  ClockEventReasons,
  Clocks,
  ComputeCapability,
  DeviceAttributes,
  EccErrorCounts,
  EnableState,
  FieldValue,
  FieldValueData,
  MemoryInfo,
  PcieLink,
  PciInfo,
  ProcessInfo,
  RemappedRows,
  RetiredPages,
  TemperatureThresholds,
  TopologyLevel,
  Utilization,
} from "./types.js";

let handleOf: (device: Device) => bigint;

/** The raw nvmlDevice_t of a device; for src/nvml/ only (not exported from the package index). */
export function deviceHandle(device: Device): bigint {
  return handleOf(device);
}

export interface DevicePosition {
  /** NVML index of the GPU, or of the parent GPU of a MIG device. */
  readonly index: number | undefined;
  /** Index under the parent GPU (MIG devices only). */
  readonly migIndex?: number | undefined;
  readonly isMig: boolean;
}

export class Device {
  static {
    handleOf = (device) => device.#handle;
  }

  readonly #ctx: NvmlContext;
  readonly #handle: bigint;
  /** NVML index of this GPU, or of the parent GPU when this is a MIG device. */
  readonly index: number | undefined;
  /** Position under the parent GPU (nvmlDeviceGetMigDeviceHandleByIndex), for MIG devices. */
  readonly migIndex: number | undefined;
  readonly isMig: boolean;
  #uuid: string | undefined;
  #ref: NvmlDeviceRef | undefined;
  #mig: DeviceMig | undefined;

  /** @internal Devices come from Nvml.device()/devices()/deviceByUuid() and Device.migDevices(). */
  constructor(ctx: NvmlContext, handle: bigint, position: DevicePosition) {
    this.#ctx = ctx;
    this.#handle = handle;
    this.index = position.index;
    this.migIndex = position.migIndex;
    this.isMig = position.isMig;
  }

  /** Index, MIG index and UUID as far as known, for error messages. */
  get ref(): NvmlDeviceRef {
    // Built once (and again when the UUID becomes known): every call passes it along.
    this.#ref ??= {
      ...(this.index === undefined ? {} : { index: this.index }),
      ...(this.migIndex === undefined ? {} : { migIndex: this.migIndex }),
      ...(this.#uuid === undefined ? {} : { uuid: this.#uuid }),
    };
    return this.#ref;
  }

  /** True when both objects name the same NVML handle. */
  equals(other: Device): boolean {
    return this.#handle === other.#handle;
  }

  // ---- identity -----------------------------------------------------------

  name(): string {
    return this.#string(this.#ctx.fn.nvmlDeviceGetName, "nvmlDeviceGetName", BUFFER_SIZES.name);
  }

  uuid(): string {
    const uuid = this.#string(this.#ctx.fn.nvmlDeviceGetUUID, "nvmlDeviceGetUUID", BUFFER_SIZES.uuid);
    if (uuid !== this.#uuid) {
      this.#uuid = uuid;
      this.#ref = undefined;
    }
    return uuid;
  }

  /** Board serial number; absent on boards without one. */
  serial(): string | undefined {
    const ctx = this.#ctx;
    const rc = ctx.fn.nvmlDeviceGetSerial(this.#handle, ctx.text, BUFFER_SIZES.serial);
    return ctx.present(rc, "nvmlDeviceGetSerial", this.ref) ? readText(ctx.text) : undefined;
  }

  /** NVML's own index for this device (nvmlDeviceGetIndex). */
  nvmlIndex(): number {
    return this.#u32(this.#ctx.fn.nvmlDeviceGetIndex, "nvmlDeviceGetIndex");
  }

  pciInfo(): PciInfo {
    const ctx = this.#ctx;
    const L = layout().pciInfo;
    const buf = ctx.struct;
    ctx.check(ctx.fn.nvmlDeviceGetPciInfo_v3(this.#handle, buf), "nvmlDeviceGetPciInfo_v3", this.ref);
    const pciDeviceId = buf.readUInt32LE(L.off.pciDeviceId);
    return {
      busId: readText(buf, L.off.busId, 32),
      busIdLegacy: readText(buf, L.off.busIdLegacy, 16),
      domain: buf.readUInt32LE(L.off.domain),
      bus: buf.readUInt32LE(L.off.bus),
      device: buf.readUInt32LE(L.off.device),
      pciDeviceId,
      pciSubSystemId: buf.readUInt32LE(L.off.pciSubSystemId),
      vendorId: pciDeviceId & 0xffff,
      deviceId: pciDeviceId >>> 16,
    };
  }

  /** The N of /dev/nvidiaN; absent on MIG devices. */
  minorNumber(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetMinorNumber, "nvmlDeviceGetMinorNumber");
  }

  architecture(): Architecture | undefined {
    const id = this.#optionalU32(this.#ctx.fn.nvmlDeviceGetArchitecture, "nvmlDeviceGetArchitecture");
    if (id === undefined) return undefined;
    return { id, name: ARCHITECTURES[id] ?? `unknown(${id})` };
  }

  cudaComputeCapability(): ComputeCapability | undefined {
    const ctx = this.#ctx;
    const major = ctx.i32[0];
    const minor = ctx.i32[1];
    const rc = ctx.fn.nvmlDeviceGetCudaComputeCapability(this.#handle, major, minor);
    if (!ctx.present(rc, "nvmlDeviceGetCudaComputeCapability", this.ref)) return undefined;
    return { major: major[0] as number, minor: minor[0] as number };
  }

  /** nvmlBrandType_t as a number. */
  brand(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetBrand, "nvmlDeviceGetBrand");
  }

  /** SM, engine and slice counts; NVML answers these for MIG devices (NOT_SUPPORTED on most full GPUs). */
  attributes(): DeviceAttributes | undefined {
    const ctx = this.#ctx;
    const L = layout().attributes;
    const buf = ctx.struct;
    if (!ctx.present(ctx.fn.nvmlDeviceGetAttributes_v2(this.#handle, buf), "nvmlDeviceGetAttributes_v2", this.ref)) {
      return undefined;
    }
    const u = (field: keyof typeof L.off) => buf.readUInt32LE(L.off[field]);
    return {
      multiprocessorCount: u("multiprocessorCount"),
      sharedCopyEngineCount: u("sharedCopyEngineCount"),
      sharedDecoderCount: u("sharedDecoderCount"),
      sharedEncoderCount: u("sharedEncoderCount"),
      sharedJpegCount: u("sharedJpegCount"),
      sharedOfaCount: u("sharedOfaCount"),
      gpuInstanceSliceCount: u("gpuInstanceSliceCount"),
      computeInstanceSliceCount: u("computeInstanceSliceCount"),
      memorySizeMiB: readU64(buf, L.off.memorySizeMB),
    };
  }

  // ---- telemetry ----------------------------------------------------------

  /** Framebuffer memory: nvmlDeviceGetMemoryInfo_v2 where the driver has it (adds reserved), else v1. */
  memory(): MemoryInfo | undefined {
    const ctx = this.#ctx;
    const buf = ctx.struct;
    if (ctx.memoryInfoVersion === 2) {
      const L = layout().memoryV2;
      buf.writeUInt32LE(structVersion(L.size, 2), 0);
      const rc = ctx.fn.nvmlDeviceGetMemoryInfo_v2(this.#handle, buf);
      if (rc === Rc.ARGUMENT_VERSION_MISMATCH && !ctx.missing.has("nvmlDeviceGetMemoryInfo")) {
        ctx.memoryInfoVersion = 1; // a driver that exports _v2 but not for this struct version
        return this.memory();
      }
      if (!ctx.present(rc, "nvmlDeviceGetMemoryInfo_v2", this.ref)) return undefined;
      return {
        totalBytes: readU64(buf, L.off.total),
        reservedBytes: readU64(buf, L.off.reserved),
        freeBytes: readU64(buf, L.off.free),
        usedBytes: readU64(buf, L.off.used),
      };
    }
    const L = layout().memory;
    if (!ctx.present(ctx.fn.nvmlDeviceGetMemoryInfo(this.#handle, buf), "nvmlDeviceGetMemoryInfo", this.ref)) {
      return undefined;
    }
    return {
      totalBytes: readU64(buf, L.off.total),
      reservedBytes: undefined,
      freeBytes: readU64(buf, L.off.free),
      usedBytes: readU64(buf, L.off.used),
    };
  }

  bar1Memory(): Bar1MemoryInfo | undefined {
    const ctx = this.#ctx;
    const buf = ctx.struct;
    const L = layout().bar1Memory;
    if (!ctx.present(ctx.fn.nvmlDeviceGetBAR1MemoryInfo(this.#handle, buf), "nvmlDeviceGetBAR1MemoryInfo", this.ref)) {
      return undefined;
    }
    return {
      totalBytes: readU64(buf, L.off.bar1Total),
      freeBytes: readU64(buf, L.off.bar1Free),
      usedBytes: readU64(buf, L.off.bar1Used),
    };
  }

  /** Percent of time a kernel / memory transfer ran over the last sample period; absent on a MIG-enabled GPU. */
  utilization(): Utilization | undefined {
    const ctx = this.#ctx;
    const u = ctx.pair;
    if (
      !ctx.present(ctx.fn.nvmlDeviceGetUtilizationRates(this.#handle, u), "nvmlDeviceGetUtilizationRates", this.ref)
    ) {
      return undefined;
    }
    return { gpuPercent: u[0] as number, memoryPercent: u[1] as number };
  }

  /** GPU core temperature: nvmlDeviceGetTemperatureV where present, else the deprecated nvmlDeviceGetTemperature. */
  temperatureCelsius(): number | undefined {
    const ctx = this.#ctx;
    if (ctx.temperatureV === true) {
      const buf = ctx.struct;
      const L = layout().temperature;
      buf.writeUInt32LE(structVersion(L.size, 1), 0);
      buf.writeInt32LE(NVML_TEMPERATURE_GPU, L.off.sensorType);
      const rc = ctx.fn.nvmlDeviceGetTemperatureV(this.#handle, buf);
      if (rc === Rc.ARGUMENT_VERSION_MISMATCH && !ctx.missing.has("nvmlDeviceGetTemperature")) {
        ctx.temperatureV = false;
        return this.temperatureCelsius();
      }
      return ctx.present(rc, "nvmlDeviceGetTemperatureV", this.ref) ? buf.readInt32LE(L.off.temperature) : undefined;
    }
    const u = ctx.u32[0];
    const rc = ctx.fn.nvmlDeviceGetTemperature(this.#handle, NVML_TEMPERATURE_GPU, u);
    return ctx.present(rc, "nvmlDeviceGetTemperature", this.ref) ? u[0] : undefined;
  }

  temperatureThresholds(): TemperatureThresholds {
    const read = (kind: number) => {
      const u = this.#ctx.u32[0];
      const rc = this.#ctx.fn.nvmlDeviceGetTemperatureThreshold(this.#handle, kind, u);
      return this.#ctx.present(rc, "nvmlDeviceGetTemperatureThreshold", this.ref) ? u[0] : undefined;
    };
    return {
      shutdownCelsius: read(TEMPERATURE_THRESHOLDS.shutdown),
      slowdownCelsius: read(TEMPERATURE_THRESHOLDS.slowdown),
      memoryMaxCelsius: read(TEMPERATURE_THRESHOLDS.memoryMax),
      gpuMaxCelsius: read(TEMPERATURE_THRESHOLDS.gpuMax),
    };
  }

  powerUsageMilliwatts(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetPowerUsage, "nvmlDeviceGetPowerUsage");
  }

  enforcedPowerLimitMilliwatts(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetEnforcedPowerLimit, "nvmlDeviceGetEnforcedPowerLimit");
  }

  powerManagementLimitMilliwatts(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetPowerManagementLimit, "nvmlDeviceGetPowerManagementLimit");
  }

  /** Energy since the driver loaded, in mJ. */
  totalEnergyMillijoules(): number | undefined {
    const ctx = this.#ctx;
    const u = ctx.u64;
    const rc = ctx.fn.nvmlDeviceGetTotalEnergyConsumption(this.#handle, u);
    return ctx.present(rc, "nvmlDeviceGetTotalEnergyConsumption", this.ref) ? Number(u[0]) : undefined;
  }

  clockMHz(type: ClockType): number | undefined {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    const rc = ctx.fn.nvmlDeviceGetClockInfo(this.#handle, CLOCK_TYPES[type], u);
    return ctx.present(rc, "nvmlDeviceGetClockInfo", this.ref) ? u[0] : undefined;
  }

  maxClockMHz(type: ClockType): number | undefined {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    const rc = ctx.fn.nvmlDeviceGetMaxClockInfo(this.#handle, CLOCK_TYPES[type], u);
    return ctx.present(rc, "nvmlDeviceGetMaxClockInfo", this.ref) ? u[0] : undefined;
  }

  clocks(): Clocks {
    return {
      graphicsMHz: this.clockMHz("graphics"),
      smMHz: this.clockMHz("sm"),
      memoryMHz: this.clockMHz("memory"),
      videoMHz: this.clockMHz("video"),
    };
  }

  maxClocks(): Clocks {
    return {
      graphicsMHz: this.maxClockMHz("graphics"),
      smMHz: this.maxClockMHz("sm"),
      memoryMHz: this.maxClockMHz("memory"),
      videoMHz: this.maxClockMHz("video"),
    };
  }

  /** Why clocks are below maximum right now (…ClocksEventReasons, or …ThrottleReasons on older drivers). */
  clockEventReasons(): ClockEventReasons | undefined {
    return this.#mask(
      this.#ctx.clockEventReasons,
      this.#ctx.clockEventReasonsSymbol ?? "nvmlDeviceGetCurrentClocksEventReasons",
    );
  }

  supportedClockEventReasons(): ClockEventReasons | undefined {
    return this.#mask(this.#ctx.supportedClockEventReasons, "nvmlDeviceGetSupportedClocksEventReasons");
  }

  eccMode(): EnableState | undefined {
    const ctx = this.#ctx;
    const current = ctx.u32[0];
    const pending = ctx.u32[1];
    if (!ctx.present(ctx.fn.nvmlDeviceGetEccMode(this.#handle, current, pending), "nvmlDeviceGetEccMode", this.ref)) {
      return undefined;
    }
    return { current: current[0] === 1, pending: pending[0] === 1 };
  }

  /** Total ECC error counts; each is absent when ECC is off or the counter unsupported. */
  eccErrors(): EccErrorCounts {
    const read = (errorType: number, counterType: number) => {
      const u = this.#ctx.u64;
      const rc = this.#ctx.fn.nvmlDeviceGetTotalEccErrors(this.#handle, errorType, counterType, u);
      return this.#ctx.present(rc, "nvmlDeviceGetTotalEccErrors", this.ref) ? Number(u[0]) : undefined;
    };
    return {
      volatileCorrected: read(MEMORY_ERROR_TYPE.corrected, ECC_COUNTER_TYPE.volatile),
      volatileUncorrected: read(MEMORY_ERROR_TYPE.uncorrected, ECC_COUNTER_TYPE.volatile),
      aggregateCorrected: read(MEMORY_ERROR_TYPE.corrected, ECC_COUNTER_TYPE.aggregate),
      aggregateUncorrected: read(MEMORY_ERROR_TYPE.uncorrected, ECC_COUNTER_TYPE.aggregate),
    };
  }

  /** Row remapping (Ampere+); absent before Ampere and while MIG is enabled. */
  remappedRows(): RemappedRows | undefined {
    const ctx = this.#ctx;
    const [corrected, uncorrected, pending, failure] = ctx.u32;
    const rc = ctx.fn.nvmlDeviceGetRemappedRows(this.#handle, corrected, uncorrected, pending, failure);
    if (!ctx.present(rc, "nvmlDeviceGetRemappedRows", this.ref)) return undefined;
    return {
      corrected: corrected[0] as number,
      uncorrected: uncorrected[0] as number,
      pending: pending[0] !== 0,
      failureOccurred: failure[0] !== 0,
    };
  }

  retiredPagesPending(): boolean | undefined {
    const pending = this.#optionalU32(
      this.#ctx.fn.nvmlDeviceGetRetiredPagesPendingStatus,
      "nvmlDeviceGetRetiredPagesPendingStatus",
    );
    return pending === undefined ? undefined : pending !== 0;
  }

  /** Counts of retired pages by cause (page addresses are not read). */
  retiredPages(): RetiredPages {
    const count = (cause: number) => {
      const u = this.#ctx.u32[0];
      u[0] = 0; // size query: NVML answers SUCCESS (none) or INSUFFICIENT_SIZE with the count
      const rc = this.#ctx.fn.nvmlDeviceGetRetiredPages(this.#handle, cause, u, null);
      if (rc === Rc.INSUFFICIENT_SIZE) return u[0] as number;
      return this.#ctx.present(rc, "nvmlDeviceGetRetiredPages", this.ref) ? u[0] : undefined;
    };
    return {
      singleBitEccPages: count(PAGE_RETIREMENT_CAUSE.multipleSingleBitEcc),
      doubleBitEccPages: count(PAGE_RETIREMENT_CAUSE.doubleBitEcc),
      pending: this.retiredPagesPending(),
    };
  }

  pcieLink(): PcieLink {
    const fn = this.#ctx.fn;
    return {
      generation: this.#optionalU32(fn.nvmlDeviceGetCurrPcieLinkGeneration, "nvmlDeviceGetCurrPcieLinkGeneration"),
      width: this.#optionalU32(fn.nvmlDeviceGetCurrPcieLinkWidth, "nvmlDeviceGetCurrPcieLinkWidth"),
      maxGeneration: this.#optionalU32(fn.nvmlDeviceGetMaxPcieLinkGeneration, "nvmlDeviceGetMaxPcieLinkGeneration"),
      maxWidth: this.#optionalU32(fn.nvmlDeviceGetMaxPcieLinkWidth, "nvmlDeviceGetMaxPcieLinkWidth"),
    };
  }

  /** PCIe replay counter (NVML_FI_DEV_PCIE_REPLAY_COUNTER through nvmlDeviceGetFieldValues). */
  pcieReplayCounter(): number | undefined {
    const ctx = this.#ctx;
    const buf = ctx.struct;
    const L = layout().fieldValue;
    buf.fill(0, 0, L.size);
    buf.writeUInt32LE(FIELD_IDS.pcieReplayCounter, L.off.fieldId);
    if (!ctx.present(ctx.fn.nvmlDeviceGetFieldValues(this.#handle, 1, buf), "nvmlDeviceGetFieldValues", this.ref)) {
      return undefined;
    }
    const rc = buf.readInt32LE(L.off.nvmlReturn);
    if (!ctx.present(rc, "nvmlDeviceGetFieldValues(NVML_FI_DEV_PCIE_REPLAY_COUNTER)", this.ref)) return undefined;
    const value = decodeFieldValue(buf, 0);
    return value === undefined ? undefined : Number(value);
  }

  /**
   * Reads NVML field values (NVML_FI_DEV_*, see FIELD_IDS). Each entry carries its own return
   * code; the call itself only fails when no entry could be filled.
   */
  fieldValues(fieldIds: readonly number[], scopeId = 0): FieldValue[] {
    if (fieldIds.length === 0) return [];
    const ctx = this.#ctx;
    const L = layout().fieldValue;
    const buf = Buffer.alloc(L.size * fieldIds.length);
    fieldIds.forEach((id, i) => {
      buf.writeUInt32LE(id, i * L.size + L.off.fieldId);
      buf.writeUInt32LE(scopeId, i * L.size + L.off.scopeId);
    });
    ctx.check(
      ctx.fn.nvmlDeviceGetFieldValues(this.#handle, fieldIds.length, buf),
      "nvmlDeviceGetFieldValues",
      this.ref,
    );
    return fieldIds.map((_, i) => {
      const at = i * L.size;
      const rc = buf.readInt32LE(at + L.off.nvmlReturn);
      return {
        fieldId: buf.readUInt32LE(at + L.off.fieldId),
        scopeId: buf.readUInt32LE(at + L.off.scopeId),
        nvmlReturn: returnCodeName(rc),
        value: rc === Rc.SUCCESS ? decodeFieldValue(buf, at) : undefined,
        timestampMicros: Number(buf.readBigInt64LE(at + L.off.timestamp)),
        latencyMicros: Number(buf.readBigInt64LE(at + L.off.latencyUsec)),
      };
    });
  }

  /**
   * Compute processes on this GPU or MIG device (nvmlDeviceGetComputeRunningProcesses_v3), decoded
   * with the stride guard of processes.ts. Absent when the device cannot report them.
   */
  computeProcesses(): ProcessInfo[] | undefined {
    const ctx = this.#ctx;
    const op = "nvmlDeviceGetComputeRunningProcesses_v3";
    const count = ctx.u32[0];
    // Sized from a count query, plus headroom for processes that start between the two calls.
    for (let attempt = 0; attempt < 4; attempt++) {
      count[0] = 0;
      let rc = ctx.fn.nvmlDeviceGetComputeRunningProcesses_v3(this.#handle, count, null);
      if (rc === Rc.SUCCESS) return [];
      if (rc !== Rc.INSUFFICIENT_SIZE) return ctx.present(rc, op, this.ref) ? [] : undefined;
      const capacity = count[0] + 8;
      const buf = allocateProcessBuffer(capacity);
      // The capacity NVML sees is in 24-byte records of the current header; the buffer holds it at 32.
      count[0] = capacity;
      rc = ctx.fn.nvmlDeviceGetComputeRunningProcesses_v3(this.#handle, count, buf);
      if (rc === Rc.INSUFFICIENT_SIZE) continue;
      if (!ctx.present(rc, op, this.ref)) return undefined;
      const n = Math.min(count[0] as number, Math.floor(buf.length / MAX_PROCESS_STRIDE));
      const stride = detectProcessStride(buf, n);
      if (stride === undefined) {
        throw ctx.error(
          Rc.UNKNOWN,
          op,
          this.ref,
          `cannot make sense of ${n} process records (no 16/24/32-byte stride fits)`,
        );
      }
      return decodeProcesses(buf, n, stride);
    }
    throw ctx.error(Rc.INSUFFICIENT_SIZE, op, this.ref, "process list kept growing between calls");
  }

  /** Event types this device can deliver (nvmlDeviceGetSupportedEventTypes). */
  supportedEventTypes(): { mask: bigint; names: (EventTypeName | `0x${string}`)[] } | undefined {
    const ctx = this.#ctx;
    const u = ctx.u64;
    const rc = ctx.fn.nvmlDeviceGetSupportedEventTypes(this.#handle, u);
    if (!ctx.present(rc, "nvmlDeviceGetSupportedEventTypes", this.ref)) return undefined;
    const mask = u[0] as bigint;
    return { mask, names: decodeMask(mask, EVENT_TYPES) };
  }

  /** Closest common PCIe ancestor of two GPUs (nvmlDeviceGetTopologyCommonAncestor). */
  commonAncestor(other: Device): TopologyLevel | undefined {
    const ctx = this.#ctx;
    const i = ctx.i32[0];
    const rc = ctx.fn.nvmlDeviceGetTopologyCommonAncestor(this.#handle, other.#handle, i);
    if (!ctx.present(rc, "nvmlDeviceGetTopologyCommonAncestor", this.ref)) return undefined;
    const level = i[0] as number;
    return { level, name: TOPOLOGY_LEVELS[level] ?? `unknown(${level})` };
  }

  // ---- GPM (Hopper+) ------------------------------------------------------

  /** Whether GPM metrics can be sampled on this GPU; absent when the driver has no GPM. */
  gpmSupported(): boolean | undefined {
    const ctx = this.#ctx;
    const buf = ctx.struct;
    const L = layout().gpmSupport;
    buf.fill(0, 0, L.size);
    buf.writeUInt32LE(GPM_SUPPORT_VERSION, L.off.version);
    if (!ctx.present(ctx.fn.nvmlGpmQueryDeviceSupport(this.#handle, buf), "nvmlGpmQueryDeviceSupport", this.ref)) {
      return undefined;
    }
    return buf.readUInt32LE(L.off.isSupportedDevice) !== 0;
  }

  /**
   * A GPM sampler for this GPU, or for one GPU instance of it (gpuInstanceId, sampled through
   * nvmlGpmMigSampleGet on the parent). Free it when done.
   */
  gpmSampler(options: { gpuInstanceId?: number } = {}): GpmSampler {
    return new GpmSampler(this.#ctx, this.#handle, this.ref, options.gpuInstanceId);
  }

  // ---- MIG ----------------------------------------------------------------

  /** MIG mode, GPU-instance profiles, placements and instances of this GPU. */
  get mig(): DeviceMig {
    this.#mig ??= new DeviceMig(this.#ctx, this.#handle, () => this.ref);
    return this.#mig;
  }

  /** nvmlDeviceIsMigDeviceHandle, asked of the driver. */
  isMigDeviceHandle(): boolean {
    return this.#u32(this.#ctx.fn.nvmlDeviceIsMigDeviceHandle, "nvmlDeviceIsMigDeviceHandle") !== 0;
  }

  /** How many MIG devices this GPU can hold (0 when MIG is disabled); absent without MIG. */
  maxMigDeviceCount(): number | undefined {
    return this.#optionalU32(this.#ctx.fn.nvmlDeviceGetMaxMigDeviceCount, "nvmlDeviceGetMaxMigDeviceCount");
  }

  /** The MIG device at `migIndex`, or undefined for an empty slot (NOT_FOUND). */
  migDevice(migIndex: number): Device | undefined {
    const ctx = this.#ctx;
    const rc = ctx.fn.nvmlDeviceGetMigDeviceHandleByIndex(this.#handle, migIndex, ctx.handle);
    if (rc === Rc.NOT_FOUND) return undefined;
    ctx.check(rc, "nvmlDeviceGetMigDeviceHandleByIndex", this.ref);
    return new Device(ctx, ctx.handle[0] as bigint, { index: this.index, migIndex, isMig: true });
  }

  /** Every MIG device of this GPU, skipping empty slots; [] when MIG is off or unsupported. */
  migDevices(): Device[] {
    const max = this.maxMigDeviceCount() ?? 0;
    const out: Device[] = [];
    for (let i = 0; i < max; i++) {
      const device = this.migDevice(i);
      if (device !== undefined) out.push(device);
    }
    return out;
  }

  /** The GPU a MIG device belongs to. */
  parent(): Device {
    const ctx = this.#ctx;
    const rc = ctx.fn.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(this.#handle, ctx.handle);
    ctx.check(rc, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", this.ref);
    const handle = ctx.handle[0] as bigint;
    return new Device(ctx, handle, { index: this.index ?? nvmlIndexOf(ctx, handle), isMig: false });
  }

  /** GPU-instance id of a MIG device. */
  gpuInstanceId(): number {
    return this.#u32(this.#ctx.fn.nvmlDeviceGetGpuInstanceId, "nvmlDeviceGetGpuInstanceId");
  }

  /** Compute-instance id of a MIG device. */
  computeInstanceId(): number {
    return this.#u32(this.#ctx.fn.nvmlDeviceGetComputeInstanceId, "nvmlDeviceGetComputeInstanceId");
  }

  // ---- helpers ------------------------------------------------------------

  #string(fn: (...args: unknown[]) => number, op: string, size: number): string {
    const ctx = this.#ctx;
    ctx.check(fn(this.#handle, ctx.text, size), op, this.ref);
    return readText(ctx.text, 0, size);
  }

  #u32(fn: (...args: unknown[]) => number, op: string): number {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    ctx.check(fn(this.#handle, u), op, this.ref);
    return u[0] as number;
  }

  #optionalU32(fn: (...args: unknown[]) => number, op: string): number | undefined {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    return ctx.present(fn(this.#handle, u), op, this.ref) ? u[0] : undefined;
  }

  #mask(fn: (...args: unknown[]) => number, op: string): ClockEventReasons | undefined {
    const ctx = this.#ctx;
    const u = ctx.u64;
    if (!ctx.present(fn(this.#handle, u), op, this.ref)) return undefined;
    const mask = u[0] as bigint;
    return { mask, names: decodeMask(mask, CLOCK_EVENT_REASONS) };
  }
}

/** nvmlDeviceGetIndex of a GPU handle. */
export function nvmlIndexOf(ctx: NvmlContext, handle: bigint): number {
  const u = ctx.u32[0];
  ctx.check(ctx.fn.nvmlDeviceGetIndex(handle, u), "nvmlDeviceGetIndex");
  return u[0] as number;
}

/** The nvmlValue_t of the field value record at `at`, by its valueType. */
function decodeFieldValue(buf: Buffer, at: number): FieldValueData | undefined {
  const L = layout().fieldValue;
  const v = at + L.off.value;
  switch (buf.readInt32LE(at + L.off.valueType)) {
    case VALUE_TYPES.double:
      return buf.readDoubleLE(v);
    case VALUE_TYPES.unsignedInt:
      return buf.readUInt32LE(v);
    case VALUE_TYPES.unsignedLong:
    case VALUE_TYPES.unsignedLongLong:
      return buf.readBigUInt64LE(v);
    case VALUE_TYPES.signedLongLong:
      return buf.readBigInt64LE(v);
    case VALUE_TYPES.signedInt:
      return buf.readInt32LE(v);
    case VALUE_TYPES.unsignedShort:
      return buf.readUInt16LE(v);
    default:
      return undefined;
  }
}
