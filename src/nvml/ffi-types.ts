// koffi type declarations for NVML's handles and structs (layouts: reference/nvml.md §1.1,
// native/nvml-sim/include/nvml.h). koffi keeps type names in one process-wide table and
// throws on a second declaration, so the types are built once, lazily, and shared by every
// library handle; this is FFI type information, not state.
import koffi, { type TypeObject } from "koffi";

/** NVML_GPM_METRIC_MAX of the ≤12.8 headers: the portable bound for nvmlGpmMetricsGet_t.metrics. */
export const GPM_METRICS_MAX = 98;

const HANDLE_TYPES = [
  ["nvmlDevice_t", "nvmlDevice_st"],
  ["nvmlGpuInstance_t", "nvmlGpuInstance_st"],
  ["nvmlComputeInstance_t", "nvmlComputeInstance_st"],
  ["nvmlEventSet_t", "nvmlEventSet_st"],
  ["nvmlGpmSample_t", "nvmlGpmSample_st"],
] as const;

const u32 = "unsigned int";
const u64 = "unsigned long long";

const CI_PROFILE_V1_FIELDS = {
  id: u32,
  sliceCount: u32,
  instanceCount: u32,
  multiprocessorCount: u32,
  sharedCopyEngineCount: u32,
  sharedDecoderCount: u32,
  sharedEncoderCount: u32,
  sharedJpegCount: u32,
  sharedOfaCount: u32,
} as const;

// In declaration order: later entries refer to earlier ones by C name.
const DEFS = {
  pciInfo: {
    name: "nvmlPciInfo_t",
    fields: {
      busIdLegacy: "char[16]",
      domain: u32,
      bus: u32,
      device: u32,
      pciDeviceId: u32,
      pciSubSystemId: u32,
      busId: "char[32]",
    },
  },
  memory: { name: "nvmlMemory_t", fields: { total: u64, free: u64, used: u64 } },
  memoryV2: { name: "nvmlMemory_v2_t", fields: { version: u32, total: u64, reserved: u64, free: u64, used: u64 } },
  utilization: { name: "nvmlUtilization_t", fields: { gpu: u32, memory: u32 } },
  processInfo: {
    name: "nvmlProcessInfo_t",
    fields: { pid: u32, usedGpuMemory: u64, gpuInstanceId: u32, computeInstanceId: u32 },
  },
  processInfoV1: { name: "nvmlProcessInfo_v1_t", fields: { pid: u32, usedGpuMemory: u64 } },
  temperature: { name: "nvmlTemperature_v1_t", fields: { version: u32, sensorType: "int", temperature: "int" } },
  attributes: {
    name: "nvmlDeviceAttributes_t",
    fields: {
      multiprocessorCount: u32,
      sharedCopyEngineCount: u32,
      sharedDecoderCount: u32,
      sharedEncoderCount: u32,
      sharedJpegCount: u32,
      sharedOfaCount: u32,
      gpuInstanceSliceCount: u32,
      computeInstanceSliceCount: u32,
      memorySizeMB: u64,
    },
  },
  bar1Memory: { name: "nvmlBAR1Memory_t", fields: { bar1Total: u64, bar1Free: u64, bar1Used: u64 } },
  giPlacement: { name: "nvmlGpuInstancePlacement_t", fields: { start: u32, size: u32 } },
  giProfileV1: {
    name: "nvmlGpuInstanceProfileInfo_t",
    fields: {
      id: u32,
      isP2pSupported: u32,
      sliceCount: u32,
      instanceCount: u32,
      multiprocessorCount: u32,
      copyEngineCount: u32,
      decoderCount: u32,
      encoderCount: u32,
      jpegCount: u32,
      ofaCount: u32,
      memorySizeMB: u64,
    },
  },
  giProfileV2: {
    name: "nvmlGpuInstanceProfileInfo_v2_t",
    fields: {
      version: u32,
      id: u32,
      isP2pSupported: u32,
      sliceCount: u32,
      instanceCount: u32,
      multiprocessorCount: u32,
      copyEngineCount: u32,
      decoderCount: u32,
      encoderCount: u32,
      jpegCount: u32,
      ofaCount: u32,
      memorySizeMB: u64,
      name: "char[96]",
    },
  },
  giProfileV3: {
    name: "nvmlGpuInstanceProfileInfo_v3_t",
    fields: {
      version: u32,
      id: u32,
      sliceCount: u32,
      instanceCount: u32,
      multiprocessorCount: u32,
      copyEngineCount: u32,
      decoderCount: u32,
      encoderCount: u32,
      jpegCount: u32,
      ofaCount: u32,
      memorySizeMB: u64,
      name: "char[96]",
      capabilities: u32,
    },
  },
  giInfo: {
    name: "nvmlGpuInstanceInfo_t",
    fields: { device: "nvmlDevice_t", id: u32, profileId: u32, placement: "nvmlGpuInstancePlacement_t" },
  },
  ciPlacement: { name: "nvmlComputeInstancePlacement_t", fields: { start: u32, size: u32 } },
  ciProfileV1: { name: "nvmlComputeInstanceProfileInfo_t", fields: CI_PROFILE_V1_FIELDS },
  ciProfileV2: {
    name: "nvmlComputeInstanceProfileInfo_v2_t",
    fields: { version: u32, ...CI_PROFILE_V1_FIELDS, name: "char[96]" },
  },
  ciProfileV3: {
    name: "nvmlComputeInstanceProfileInfo_v3_t",
    fields: { version: u32, ...CI_PROFILE_V1_FIELDS, name: "char[96]", capabilities: u32 },
  },
  ciInfo: {
    name: "nvmlComputeInstanceInfo_t",
    fields: {
      device: "nvmlDevice_t",
      gpuInstance: "nvmlGpuInstance_t",
      id: u32,
      profileId: u32,
      placement: "nvmlComputeInstancePlacement_t",
    },
  },
  eventData: {
    name: "nvmlEventData_t",
    fields: { device: "nvmlDevice_t", eventType: u64, eventData: u64, gpuInstanceId: u32, computeInstanceId: u32 },
  },
  value: {
    name: "nvmlValue_t",
    union: true,
    fields: {
      dVal: "double",
      siVal: "int",
      uiVal: u32,
      ulVal: "unsigned long",
      ullVal: u64,
      sllVal: "long long",
      usVal: "unsigned short",
    },
  },
  fieldValue: {
    name: "nvmlFieldValue_t",
    fields: {
      fieldId: u32,
      scopeId: u32,
      timestamp: "long long",
      latencyUsec: "long long",
      valueType: "int",
      nvmlReturn: "int",
      value: "nvmlValue_t",
    },
  },
  gpmMetricInfo: { name: "nvmlGpmMetricInfo_t", fields: { shortName: "char *", longName: "char *", unit: "char *" } },
  gpmMetric: {
    name: "nvmlGpmMetric_t",
    fields: { metricId: u32, nvmlReturn: "int", value: "double", metricInfo: "nvmlGpmMetricInfo_t" },
  },
  gpmMetricsGet: {
    name: "nvmlGpmMetricsGet_t",
    fields: {
      version: u32,
      numMetrics: u32,
      sample1: "nvmlGpmSample_t",
      sample2: "nvmlGpmSample_t",
      metrics: `nvmlGpmMetric_t[${GPM_METRICS_MAX}]`,
    },
  },
  gpmSupport: { name: "nvmlGpmSupport_t", fields: { version: u32, isSupportedDevice: u32 } },
} as const;

type Defs = typeof DEFS;
export type NvmlStructKey = keyof Defs;

/** A struct's koffi type, size and member offsets, read from koffi so decoders use exactly what koffi declared. */
export interface StructLayout<K extends NvmlStructKey> {
  /** The C name, e.g. nvmlMemory_v2_t. */
  readonly name: Defs[K]["name"];
  readonly type: TypeObject;
  readonly size: number;
  readonly off: { readonly [F in keyof Defs[K]["fields"]]: number };
}

export type NvmlLayouts = { readonly [K in NvmlStructKey]: StructLayout<K> };

let layouts: NvmlLayouts | undefined;

/** Declares the handle and struct types on first use; then the layouts by short name (e.g. `layout().memoryV2.off.total`). */
export function layout(): NvmlLayouts {
  if (layouts !== undefined) return layouts;
  for (const [pointerName, opaqueName] of HANDLE_TYPES) koffi.pointer(pointerName, koffi.opaque(opaqueName));
  const built: Record<string, StructLayout<NvmlStructKey>> = {};
  for (const [key, def] of Object.entries(DEFS) as [NvmlStructKey, Defs[NvmlStructKey]][]) {
    const fields = def.fields as Record<string, string>;
    const type = "union" in def ? koffi.union(def.name, fields) : koffi.struct(def.name, fields);
    const off: Record<string, number> = {};
    // Every member of a union starts at 0; koffi's offsetof() only accepts structs.
    for (const member of Object.keys(fields)) off[member] = "union" in def ? 0 : koffi.offsetof(type, member);
    built[key] = { name: def.name, type, size: koffi.sizeof(type), off } as StructLayout<NvmlStructKey>;
  }
  layouts = built as unknown as NvmlLayouts;
  return layouts;
}

/** NVML_STRUCT_VERSION(): the version word a versioned struct must carry (sizeof | ver << 24). */
export function structVersion(size: number, version: number): number {
  return (size | (version << 24)) >>> 0;
}
