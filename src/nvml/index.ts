// The typed NVML API. Raw handles, koffi and return codes stay inside src/nvml/.
export {
  CLOCK_EVENT_REASONS,
  CLOCK_TYPES,
  type ClockEventReason,
  type ClockType,
  COMPUTE_INSTANCE_PROFILE_CAPS,
  COMPUTE_INSTANCE_PROFILE_COUNT,
  decodeMask,
  EVENT_TYPES,
  type EventTypeName,
  FIELD_IDS,
  GPM_METRICS,
  GPU_INSTANCE_PROFILE_CAPS,
  GPU_INSTANCE_PROFILE_COUNT,
  GPU_INSTANCE_PROFILE_INDEX,
  type TopologyLevelName,
} from "./constants.js";
export { Device } from "./device.js";
export {
  describeDevice,
  type LoadAttempt,
  type NvmlDeviceRef,
  NvmlError,
  NvmlLibraryNotFoundError,
  NvmlReadOnlyError,
} from "./errors.js";
export { type DeviceEvent, EventSet, type WaitOptions } from "./events.js";
export { GpmSampler } from "./gpm.js";
export { ComputeInstance, GpuInstance } from "./gpu-instance.js";
export { type DeviceSlot, Nvml, type OpenNvmlOptions, openNvml } from "./library.js";
export {
  DRIVER_LIBRARY_DIRS,
  type LibrarySearchOptions,
  NVML_LIBRARY_ENV,
  NVML_SONAME,
  nvmlLibraryCandidates,
  packageRoot,
  simulatorLibraryPath,
} from "./loader.js";
export { DeviceMig } from "./mig.js";
export { type NvmlReturnName, returnCodeName } from "./return-codes.js";
export type * from "./types.js";
