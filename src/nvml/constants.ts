// NVML enums and bit masks (reference/nvml.md §3), in the shapes the typed API uses.

/** nvmlClockType_t */
export const CLOCK_TYPES = { graphics: 0, sm: 1, memory: 2, video: 3 } as const;
export type ClockType = keyof typeof CLOCK_TYPES;

/** nvmlTemperatureThresholds_t (the ones every data-centre GPU reports). */
export const TEMPERATURE_THRESHOLDS = { shutdown: 0, slowdown: 1, memoryMax: 2, gpuMax: 3 } as const;
export type TemperatureThreshold = keyof typeof TEMPERATURE_THRESHOLDS;

export const NVML_TEMPERATURE_GPU = 0;
export const MEMORY_ERROR_TYPE = { corrected: 0, uncorrected: 1 } as const;
export const ECC_COUNTER_TYPE = { volatile: 0, aggregate: 1 } as const;
export const PAGE_RETIREMENT_CAUSE = { multipleSingleBitEcc: 0, doubleBitEcc: 1 } as const;

/** nvmlEventType* bits. */
export const EVENT_TYPES = {
  singleBitEccError: 0x1n,
  doubleBitEccError: 0x2n,
  pState: 0x4n,
  xidCriticalError: 0x8n,
  clock: 0x10n,
  powerSourceChange: 0x80n,
  migConfigChange: 0x100n,
  singleBitEccErrorStorm: 0x200n,
  dramRetirementEvent: 0x400n,
  dramRetirementFailure: 0x800n,
  nonFatalPoisonError: 0x1000n,
  fatalPoisonError: 0x2000n,
  gpuUnavailableError: 0x4000n,
  gpuRecoveryAction: 0x8000n,
} as const;
export type EventTypeName = keyof typeof EVENT_TYPES;

/** nvmlClocksEventReason* (old name nvmlClocksThrottleReason*); same bits under both names. */
export const CLOCK_EVENT_REASONS = {
  gpuIdle: 0x1n,
  applicationsClocksSetting: 0x2n,
  swPowerCap: 0x4n,
  hwSlowdown: 0x8n,
  syncBoost: 0x10n,
  swThermalSlowdown: 0x20n,
  hwThermalSlowdown: 0x40n,
  hwPowerBrakeSlowdown: 0x80n,
  displayClockSetting: 0x100n,
} as const;
export type ClockEventReason = keyof typeof CLOCK_EVENT_REASONS;

/** Names of the set bits of `mask` in `table`, in table order; unknown bits come back as `0x…`. */
export function decodeMask<K extends string>(mask: bigint, table: Readonly<Record<K, bigint>>): (K | `0x${string}`)[] {
  const names: (K | `0x${string}`)[] = [];
  let rest = mask;
  for (const [name, bit] of Object.entries(table) as [K, bigint][]) {
    if ((mask & bit) !== 0n) {
      names.push(name);
      rest &= ~bit;
    }
  }
  for (let bit = 1n; rest !== 0n; bit <<= 1n) {
    if ((rest & bit) !== 0n) {
      names.push(`0x${bit.toString(16)}`);
      rest &= ~bit;
    }
  }
  return names;
}

/** nvmlDeviceArchitecture_t */
export const ARCHITECTURES: Readonly<Record<number, string>> = {
  2: "Kepler",
  3: "Maxwell",
  4: "Pascal",
  5: "Volta",
  6: "Turing",
  7: "Ampere",
  8: "Ada",
  9: "Hopper",
  10: "Blackwell",
  13: "Rubin",
};

/** nvmlGpuTopologyLevel_t */
export const TOPOLOGY_LEVELS: Readonly<Record<number, TopologyLevelName>> = {
  0: "internal",
  10: "single",
  20: "multiple",
  30: "hostbridge",
  40: "node",
  50: "system",
};
export type TopologyLevelName = "internal" | "single" | "multiple" | "hostbridge" | "node" | "system";

/** NVML_FI_DEV_* field ids used by Tessera. */
export const FIELD_IDS = {
  eccCurrent: 1,
  eccPending: 2,
  eccSbeVolatileTotal: 3,
  eccDbeVolatileTotal: 4,
  eccSbeAggregateTotal: 5,
  eccDbeAggregateTotal: 6,
  retiredSbe: 29,
  retiredDbe: 30,
  retiredPending: 31,
  memoryTemp: 82,
  totalEnergyConsumption: 83,
  pcieReplayCounter: 94,
  remappedCorrected: 142,
  remappedUncorrected: 143,
  remappedPending: 144,
  remappedFailure: 145,
  powerInstant: 186,
} as const;

/** nvmlValueType_t */
export const VALUE_TYPES = {
  double: 0,
  unsignedInt: 1,
  unsignedLong: 2,
  unsignedLongLong: 3,
  signedLongLong: 4,
  signedInt: 5,
  unsignedShort: 6,
} as const;

/**
 * NVML_GPU_INSTANCE_PROFILE_COUNT of the 13.2+ header. Older drivers answer INVALID_ARGUMENT
 * for the indexes they do not know, which enumeration skips.
 */
export const GPU_INSTANCE_PROFILE_COUNT = 0x12;
export const COMPUTE_INSTANCE_PROFILE_COUNT = 0x9;
export const COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED = 0;
export const GPU_INSTANCE_PROFILE_CAPS = { p2p: 0x1, gfx: 0x2 } as const;
export const COMPUTE_INSTANCE_PROFILE_CAPS = { gfx: 0x1 } as const;

/** GPU-instance profile index constants (argument of …GetGpuInstanceProfileInfo*), by header name. */
export const GPU_INSTANCE_PROFILE_INDEX = {
  slice1: 0x0,
  slice2: 0x1,
  slice3: 0x2,
  slice4: 0x3,
  slice7: 0x4,
  slice8: 0x5,
  slice6: 0x6,
  slice1Rev1: 0x7,
  slice2Rev1: 0x8,
  slice1Rev2: 0x9,
  slice1Gfx: 0xa,
  slice2Gfx: 0xb,
  slice4Gfx: 0xc,
  slice1NoMe: 0xd,
  slice2NoMe: 0xe,
  slice1AllMe: 0xf,
  slice2AllMe: 0x10,
  slice3Gfx: 0x11,
} as const;

/** NVML_GPM_METRIC_* ids used by Tessera (full list: reference/nvml.md §3.6). */
export const GPM_METRICS = {
  graphicsUtil: 1,
  smUtil: 2,
  smOccupancy: 3,
  integerUtil: 4,
  anyTensorUtil: 5,
  dramBandwidthUtil: 10,
  fp64Util: 11,
  fp32Util: 12,
  fp16Util: 13,
  pcieTxPerSec: 20,
  pcieRxPerSec: 21,
} as const;
export const GPM_METRICS_GET_VERSION = 1;
export const GPM_SUPPORT_VERSION = 1;

/** Id fields of process and event records that are not attributable to a MIG instance. */
export const NO_INSTANCE_ID = 0xffffffff;

/** Buffer sizes from the header (NVML_*_BUFFER_SIZE). */
export const BUFFER_SIZES = {
  name: 96,
  uuid: 96,
  serial: 30,
  driverVersion: 80,
  nvmlVersion: 80,
  processName: 256,
} as const;
