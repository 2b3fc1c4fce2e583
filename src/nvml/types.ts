// Result types of the typed NVML API. Values NVML reports as NOT_SUPPORTED are absent
// (`undefined`), never zero. Quantities that NVML reports as 64-bit integers are `number`
// (exact below 2^53, far beyond any memory size, energy or error count); bit masks are `bigint`.
import type { ClockEventReason, EventTypeName, TopologyLevelName } from "./constants.js";
import type { NvmlReturnName } from "./return-codes.js";

export interface CudaDriverVersion {
  readonly major: number;
  readonly minor: number;
  /** As NVML reports it, e.g. 12040 for 12.4. */
  readonly raw: number;
}

export interface PciInfo {
  /** NVML form: `00000000:3B:00.0` (8-digit domain). */
  readonly busId: string;
  /** Legacy NVML form: `0000:3B:00.0`. */
  readonly busIdLegacy: string;
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  /** `(deviceId << 16) | vendorId`, e.g. 0x233010DE. */
  readonly pciDeviceId: number;
  readonly pciSubSystemId: number;
  readonly vendorId: number;
  readonly deviceId: number;
}

export interface Architecture {
  /** nvmlDeviceArchitecture_t, e.g. 9. */
  readonly id: number;
  /** "Hopper", or `unknown(<id>)`. */
  readonly name: string;
}

export interface ComputeCapability {
  readonly major: number;
  readonly minor: number;
}

/** nvmlDeviceAttributes_t (meaningful on MIG devices). */
export interface DeviceAttributes {
  readonly multiprocessorCount: number;
  readonly sharedCopyEngineCount: number;
  readonly sharedDecoderCount: number;
  readonly sharedEncoderCount: number;
  readonly sharedJpegCount: number;
  readonly sharedOfaCount: number;
  readonly gpuInstanceSliceCount: number;
  readonly computeInstanceSliceCount: number;
  readonly memorySizeMiB: number;
}

export interface MemoryInfo {
  readonly totalBytes: number;
  /** Reserved by the driver and firmware; only the v2 call reports it. */
  readonly reservedBytes: number | undefined;
  readonly freeBytes: number;
  readonly usedBytes: number;
}

export interface Bar1MemoryInfo {
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly usedBytes: number;
}

export interface Utilization {
  readonly gpuPercent: number;
  readonly memoryPercent: number;
}

export interface TemperatureThresholds {
  readonly shutdownCelsius: number | undefined;
  readonly slowdownCelsius: number | undefined;
  readonly memoryMaxCelsius: number | undefined;
  readonly gpuMaxCelsius: number | undefined;
}

export interface Clocks {
  readonly graphicsMHz: number | undefined;
  readonly smMHz: number | undefined;
  readonly memoryMHz: number | undefined;
  readonly videoMHz: number | undefined;
}

export interface ClockEventReasons {
  readonly mask: bigint;
  readonly names: (ClockEventReason | `0x${string}`)[];
}

export interface EnableState {
  readonly current: boolean;
  readonly pending: boolean;
}

export interface EccErrorCounts {
  readonly volatileCorrected: number | undefined;
  readonly volatileUncorrected: number | undefined;
  readonly aggregateCorrected: number | undefined;
  readonly aggregateUncorrected: number | undefined;
}

export interface RemappedRows {
  readonly corrected: number;
  readonly uncorrected: number;
  readonly pending: boolean;
  readonly failureOccurred: boolean;
}

export interface RetiredPages {
  readonly singleBitEccPages: number | undefined;
  readonly doubleBitEccPages: number | undefined;
  readonly pending: boolean | undefined;
}

export interface PcieLink {
  readonly generation: number | undefined;
  readonly width: number | undefined;
  readonly maxGeneration: number | undefined;
  readonly maxWidth: number | undefined;
}

export interface ProcessInfo {
  readonly pid: number;
  /** Undefined where NVML says NVML_VALUE_NOT_AVAILABLE (e.g. Windows WDDM, some containers). */
  readonly usedGpuMemoryBytes: number | undefined;
  /** Undefined when the process is not on a MIG device (or the driver wrote the v1 record). */
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
}

export interface TopologyLevel {
  /** nvmlGpuTopologyLevel_t: 0, 10, …, 50. */
  readonly level: number;
  readonly name: TopologyLevelName | `unknown(${number})`;
}

export type FieldValueData = number | bigint;

export interface FieldValue {
  readonly fieldId: number;
  readonly scopeId: number;
  /** The entry's own return code; the call succeeds when any entry was filled. */
  readonly nvmlReturn: NvmlReturnName;
  /** Absent unless nvmlReturn is NVML_SUCCESS. 64-bit types come back as bigint. */
  readonly value: FieldValueData | undefined;
  readonly timestampMicros: number;
  readonly latencyMicros: number;
}

export interface MigMode {
  readonly current: boolean;
  /** Mode after the next activation (GPU reset on Ampere). */
  readonly pending: boolean;
}

export interface MigModeChange extends MigMode {
  /** NVML_SUCCESS, or why activation is pending (NVML_ERROR_IN_USE, NVML_ERROR_RESET_REQUIRED). */
  readonly activationStatus: NvmlReturnName;
}

export interface Placement {
  /** First memory slice (GPU instance) or compute slice (compute instance). */
  readonly start: number;
  readonly size: number;
}

export interface GpuInstanceProfile {
  /** The index constant (NVML_GPU_INSTANCE_PROFILE_*) it was read with. */
  readonly index: number;
  /** The device-specific profile ID every other MIG call takes. */
  readonly id: number;
  /** NVML's own name (e.g. "MIG 1g.10gb"); absent from the v1 struct. */
  readonly name: string | undefined;
  readonly sliceCount: number;
  readonly instanceCount: number;
  readonly multiprocessorCount: number;
  readonly copyEngineCount: number;
  readonly decoderCount: number;
  readonly encoderCount: number;
  readonly jpegCount: number;
  readonly ofaCount: number;
  readonly memorySizeMiB: number;
  readonly p2pSupported: boolean;
  /** NVML_GPU_INSTANCE_PROFILE_CAPS_* bits; only the v3 struct carries them. */
  readonly capabilities: number | undefined;
}

export interface ComputeInstanceProfile {
  readonly index: number;
  readonly engineProfile: number;
  readonly id: number;
  readonly name: string | undefined;
  readonly sliceCount: number;
  readonly instanceCount: number;
  readonly multiprocessorCount: number;
  readonly sharedCopyEngineCount: number;
  readonly sharedDecoderCount: number;
  readonly sharedEncoderCount: number;
  readonly sharedJpegCount: number;
  readonly sharedOfaCount: number;
  readonly capabilities: number | undefined;
}

export interface GpuInstanceInfo {
  readonly id: number;
  readonly profileId: number;
  readonly placement: Placement;
}

export interface ComputeInstanceInfo {
  readonly id: number;
  readonly profileId: number;
  readonly placement: Placement;
}

export interface GpmMetricValue {
  readonly metricId: number;
  readonly nvmlReturn: NvmlReturnName;
  /** Absent unless nvmlReturn is NVML_SUCCESS. */
  readonly value: number | undefined;
}

export interface NvmlEvent {
  readonly type: bigint;
  readonly typeNames: (EventTypeName | `0x${string}`)[];
  /** XID for XidCriticalError events (999 = unknown XID); 0 otherwise. */
  readonly data: bigint;
  /** Undefined when the event is not attributable to a GPU/compute instance. */
  readonly gpuInstanceId: number | undefined;
  readonly computeInstanceId: number | undefined;
}

/** Which of the alternative symbols this library got (chosen once, at load or first answer). */
export interface NvmlFeatures {
  readonly clockEventReasons:
    | "nvmlDeviceGetCurrentClocksEventReasons"
    | "nvmlDeviceGetCurrentClocksThrottleReasons"
    | undefined;
  readonly memoryInfo: "v2" | "v1" | undefined;
  readonly temperature: "nvmlDeviceGetTemperatureV" | "nvmlDeviceGetTemperature" | undefined;
  /** Struct version used with …GpuInstanceProfileInfo(V); undefined until a MIG-capable GPU answered. */
  readonly gpuInstanceProfileInfo: 3 | 2 | 1 | undefined;
  readonly computeInstanceProfileInfo: 3 | 2 | 1 | undefined;
  /** Optional symbols the library does not export. */
  readonly missingSymbols: readonly string[];
}
