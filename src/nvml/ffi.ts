// koffi prototypes for every NVML symbol Tessera binds: the raw layer. Nothing outside src/nvml/
// imports this file. Out-parameters are passed as Buffers or typed arrays (koffi passes those by
// reference, with or without _Out_), which is both the fastest marshalling and lets hot paths reuse
// memory. Versioned names are bound explicitly: an FFI binds symbols, not the header's #defines.
import type { LibraryHandle } from "koffi";
import { NvmlError } from "./errors.js";
import { layout } from "./ffi-types.js";
import { Rc } from "./return-codes.js";

/** A bound NVML function: returns nvmlReturn_t; `.async` runs it on koffi's worker pool. */
export interface NvmlFn {
  (...args: unknown[]): number;
  async(...args: unknown[]): void;
}

// Without these the library is not NVML at all; every NVML since R450 exports them.
const REQUIRED = {
  nvmlInit_v2: "int nvmlInit_v2(void)",
  nvmlShutdown: "int nvmlShutdown(void)",
  nvmlDeviceGetCount_v2: "int nvmlDeviceGetCount_v2(unsigned int *deviceCount)",
  nvmlDeviceGetHandleByIndex_v2: "int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)",
  nvmlDeviceGetName: "int nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)",
  nvmlDeviceGetUUID: "int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)",
} as const;

// Each may be missing from an older (or newer) driver; a missing one answers FUNCTION_NOT_FOUND,
// which the typed layer turns into an absent value or a clear error.
const OPTIONAL = {
  nvmlSystemGetDriverVersion: "int nvmlSystemGetDriverVersion(char *version, unsigned int length)",
  nvmlSystemGetNVMLVersion: "int nvmlSystemGetNVMLVersion(char *version, unsigned int length)",
  nvmlSystemGetCudaDriverVersion: "int nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)",
  nvmlSystemGetCudaDriverVersion_v2: "int nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)",
  nvmlSystemGetProcessName: "int nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)",

  nvmlDeviceGetHandleByUUID: "int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)",
  nvmlDeviceGetHandleByPciBusId_v2: "int nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device)",
  nvmlDeviceGetSerial: "int nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)",
  nvmlDeviceGetIndex: "int nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)",
  nvmlDeviceGetMinorNumber: "int nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)",
  nvmlDeviceGetArchitecture: "int nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch)",
  nvmlDeviceGetCudaComputeCapability:
    "int nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)",
  nvmlDeviceGetBrand: "int nvmlDeviceGetBrand(nvmlDevice_t device, unsigned int *type)",
  nvmlDeviceGetPciInfo_v3: "int nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)",
  nvmlDeviceGetAttributes_v2: "int nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes)",

  nvmlDeviceGetMemoryInfo: "int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)",
  nvmlDeviceGetMemoryInfo_v2: "int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)",
  nvmlDeviceGetBAR1MemoryInfo: "int nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t device, nvmlBAR1Memory_t *bar1Memory)",
  nvmlDeviceGetUtilizationRates:
    "int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)",
  nvmlDeviceGetTemperature: "int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType, unsigned int *temp)",
  nvmlDeviceGetTemperatureV: "int nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *temperature)",
  nvmlDeviceGetTemperatureThreshold:
    "int nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int thresholdType, unsigned int *temp)",
  nvmlDeviceGetPowerUsage: "int nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)",
  nvmlDeviceGetEnforcedPowerLimit: "int nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)",
  nvmlDeviceGetPowerManagementLimit: "int nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)",
  nvmlDeviceGetTotalEnergyConsumption:
    "int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy)",
  nvmlDeviceGetClockInfo: "int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock)",
  nvmlDeviceGetMaxClockInfo: "int nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type, unsigned int *clock)",
  nvmlDeviceGetCurrentClocksEventReasons:
    "int nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)",
  nvmlDeviceGetSupportedClocksEventReasons:
    "int nvmlDeviceGetSupportedClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)",
  nvmlDeviceGetCurrentClocksThrottleReasons:
    "int nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)",
  nvmlDeviceGetSupportedClocksThrottleReasons:
    "int nvmlDeviceGetSupportedClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)",
  nvmlDeviceGetEccMode: "int nvmlDeviceGetEccMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending)",
  nvmlDeviceGetTotalEccErrors:
    "int nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int errorType, int counterType, unsigned long long *eccCounts)",
  nvmlDeviceGetRetiredPages:
    "int nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause, unsigned int *pageCount, unsigned long long *addresses)",
  nvmlDeviceGetRetiredPagesPendingStatus:
    "int nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, unsigned int *isPending)",
  nvmlDeviceGetRemappedRows:
    "int nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows, unsigned int *uncRows, unsigned int *isPending, unsigned int *failureOccurred)",
  nvmlDeviceGetComputeRunningProcesses_v3:
    "int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, void *infos)",
  nvmlDeviceGetCurrPcieLinkGeneration:
    "int nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *currLinkGen)",
  nvmlDeviceGetCurrPcieLinkWidth:
    "int nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *currLinkWidth)",
  nvmlDeviceGetMaxPcieLinkGeneration:
    "int nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *maxLinkGen)",
  nvmlDeviceGetMaxPcieLinkWidth: "int nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *maxLinkWidth)",
  nvmlDeviceGetTopologyCommonAncestor:
    "int nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t device1, nvmlDevice_t device2, int *pathInfo)",
  nvmlDeviceGetFieldValues:
    "int nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount, nvmlFieldValue_t *values)",

  nvmlDeviceGetMigMode:
    "int nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)",
  nvmlDeviceSetMigMode: "int nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned int mode, int *activationStatus)",
  nvmlDeviceGetGpuInstanceProfileInfo:
    "int nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info)",
  // Declared with the v2 struct like the header; the version word in the buffer selects v2 or v3.
  nvmlDeviceGetGpuInstanceProfileInfoV:
    "int nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_v2_t *info)",
  nvmlDeviceGetGpuInstancePossiblePlacements_v2:
    "int nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstancePlacement_t *placements, unsigned int *count)",
  nvmlDeviceGetGpuInstanceRemainingCapacity:
    "int nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device, unsigned int profileId, unsigned int *count)",
  nvmlDeviceCreateGpuInstance:
    "int nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstance)",
  nvmlDeviceCreateGpuInstanceWithPlacement:
    "int nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t device, unsigned int profileId, const nvmlGpuInstancePlacement_t *placement, nvmlGpuInstance_t *gpuInstance)",
  nvmlGpuInstanceDestroy: "int nvmlGpuInstanceDestroy(nvmlGpuInstance_t gpuInstance)",
  nvmlDeviceGetGpuInstances:
    "int nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstances, unsigned int *count)",
  nvmlDeviceGetGpuInstanceById:
    "int nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned int id, nvmlGpuInstance_t *gpuInstance)",
  nvmlGpuInstanceGetInfo: "int nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info)",
  nvmlGpuInstanceGetComputeInstanceProfileInfo:
    "int nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gpuInstance, unsigned int profile, unsigned int engProfile, nvmlComputeInstanceProfileInfo_t *info)",
  nvmlGpuInstanceGetComputeInstanceProfileInfoV:
    "int nvmlGpuInstanceGetComputeInstanceProfileInfoV(nvmlGpuInstance_t gpuInstance, unsigned int profile, unsigned int engProfile, nvmlComputeInstanceProfileInfo_v2_t *info)",
  nvmlGpuInstanceGetComputeInstanceRemainingCapacity:
    "int nvmlGpuInstanceGetComputeInstanceRemainingCapacity(nvmlGpuInstance_t gpuInstance, unsigned int profileId, unsigned int *count)",
  nvmlGpuInstanceGetComputeInstancePossiblePlacements:
    "int nvmlGpuInstanceGetComputeInstancePossiblePlacements(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstancePlacement_t *placements, unsigned int *count)",
  nvmlGpuInstanceCreateComputeInstance:
    "int nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstance_t *computeInstance)",
  nvmlGpuInstanceCreateComputeInstanceWithPlacement:
    "int nvmlGpuInstanceCreateComputeInstanceWithPlacement(nvmlGpuInstance_t gpuInstance, unsigned int profileId, const nvmlComputeInstancePlacement_t *placement, nvmlComputeInstance_t *computeInstance)",
  nvmlComputeInstanceDestroy: "int nvmlComputeInstanceDestroy(nvmlComputeInstance_t computeInstance)",
  nvmlGpuInstanceGetComputeInstances:
    "int nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstance_t *computeInstances, unsigned int *count)",
  nvmlGpuInstanceGetComputeInstanceById:
    "int nvmlGpuInstanceGetComputeInstanceById(nvmlGpuInstance_t gpuInstance, unsigned int id, nvmlComputeInstance_t *computeInstance)",
  nvmlComputeInstanceGetInfo_v2:
    "int nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t computeInstance, nvmlComputeInstanceInfo_t *info)",
  nvmlDeviceIsMigDeviceHandle: "int nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice)",
  nvmlDeviceGetGpuInstanceId: "int nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)",
  nvmlDeviceGetComputeInstanceId: "int nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)",
  nvmlDeviceGetMaxMigDeviceCount: "int nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)",
  nvmlDeviceGetMigDeviceHandleByIndex:
    "int nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice)",
  nvmlDeviceGetDeviceHandleFromMigDeviceHandle:
    "int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device)",

  nvmlEventSetCreate: "int nvmlEventSetCreate(nvmlEventSet_t *set)",
  nvmlDeviceRegisterEvents:
    "int nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set)",
  nvmlDeviceGetSupportedEventTypes:
    "int nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes)",
  nvmlEventSetWait_v2: "int nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)",
  nvmlEventSetFree: "int nvmlEventSetFree(nvmlEventSet_t set)",

  nvmlGpmMetricsGet: "int nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *metricsGet)",
  nvmlGpmSampleFree: "int nvmlGpmSampleFree(nvmlGpmSample_t gpmSample)",
  nvmlGpmSampleAlloc: "int nvmlGpmSampleAlloc(nvmlGpmSample_t *gpmSample)",
  nvmlGpmSampleGet: "int nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t gpmSample)",
  nvmlGpmMigSampleGet:
    "int nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId, nvmlGpmSample_t gpmSample)",
  nvmlGpmQueryDeviceSupport: "int nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *gpmSupport)",
} as const;

export type NvmlSymbol = keyof typeof REQUIRED | keyof typeof OPTIONAL;

export interface NvmlBindings {
  readonly fn: { readonly [K in NvmlSymbol]: NvmlFn };
  /** nvmlErrorString, or undefined when the library lacks it. */
  readonly errorString: ((code: number) => string) | undefined;
  /** Optional symbols this library does not export. */
  readonly missing: ReadonlySet<NvmlSymbol>;
  /** The library is Tessera's simulator (it exports the tsim_* controls). */
  readonly simulated: boolean;
}

/** Binds every prototype against `lib`; throws NvmlError(FUNCTION_NOT_FOUND) when a required symbol is absent. */
export function bindNvml(lib: LibraryHandle, libraryPath: string): NvmlBindings {
  layout(); // declares the struct and handle types the prototypes name
  const fn = {} as Record<NvmlSymbol, NvmlFn>;
  const missing = new Set<NvmlSymbol>();
  for (const [name, proto] of Object.entries(REQUIRED) as [NvmlSymbol, string][]) {
    const bound = tryBind(lib, proto);
    if (bound === undefined) {
      throw new NvmlError(Rc.FUNCTION_NOT_FOUND, name, {
        detail: `${libraryPath} does not export ${name}; it is not an NVML library (or one older than R450)`,
      });
    }
    fn[name] = bound;
  }
  for (const [name, proto] of Object.entries(OPTIONAL) as [NvmlSymbol, string][]) {
    const bound = tryBind(lib, proto);
    if (bound === undefined) missing.add(name);
    fn[name] = bound ?? missingFunction;
  }
  let errorString: ((code: number) => string) | undefined;
  try {
    const raw = lib.func("const char *nvmlErrorString(int result)") as (code: number) => string | null;
    errorString = (code) => raw(code) ?? "";
  } catch {
    errorString = undefined; // optional: messages then carry only the code name
  }
  const simulated = tryBind(lib, "int tsim_select_preset(const char *name)") !== undefined;
  return { fn, errorString, missing, simulated };
}

function tryBind(lib: LibraryHandle, proto: string): NvmlFn | undefined {
  try {
    return lib.func(proto) as NvmlFn;
  } catch (err) {
    // koffi throws "Cannot find function" for an absent symbol; anything else is a bug in the prototype.
    if (err instanceof Error && err.message.startsWith("Cannot find function")) return undefined;
    throw err;
  }
}

// Stands in for an absent optional symbol, so call sites need no branch: it answers
// FUNCTION_NOT_FOUND like NVML's own stubs do, synchronously and through `.async`.
const missingFunction: NvmlFn = Object.assign((..._args: unknown[]) => Rc.FUNCTION_NOT_FOUND, {
  async(...args: unknown[]) {
    const callback = args[args.length - 1];
    if (typeof callback === "function") queueMicrotask(() => callback(null, Rc.FUNCTION_NOT_FOUND));
  },
});
