/* Device identity and telemetry. Telemetry follows the simulated load
 * (processes started with tsim_process_start), plus a small noise that is a
 * pure function of the seed, the GPU and the current second. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim-internal.h"

static double noise(unsigned gpu, unsigned channel) {
  unsigned long long h = g_st->seed * 0x9e3779b97f4a7c15ULL;
  h ^= (unsigned long long)gpu * 0xbf58476d1ce4e5b9ULL + channel * 0x94d049bb133111ebULL;
  h ^= (unsigned long long)sim_now();
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return ((double)(h % 2001) / 1000.0) - 1.0; /* [-1, 1] */
}

#define RESOLVE(fn, dev, ref)                     \
  sim_ref ref;                                    \
  do {                                            \
    nvmlReturn_t rc__ = sim_resolve_device(dev, &ref); \
    if (rc__ != NVML_SUCCESS) return rc__;        \
  } while (0)

NVML_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
  SIM_API_ENTER("nvmlDeviceGetName", 0);
  RESOLVE(fn, device, r);
  if (!r.isMig) return sim_copy_string(name, length, r.m->name);
  const sim_gi_profile *p = &r.m->profiles[r.gi->profile];
  char buf[128];
  unsigned gb = sim_profile_gb(r.m, p->memoryMiB);
  if (r.ci->size == p->slices)
    snprintf(buf, sizeof buf, "%s MIG %ug.%ugb%s", r.m->name, p->slices, gb, p->suffix);
  else
    snprintf(buf, sizeof buf, "%s MIG %uc.%ug.%ugb%s", r.m->name, r.ci->size, p->slices, gb, p->suffix);
  return sim_copy_string(name, length, buf);
}

NVML_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
  SIM_API_ENTER("nvmlDeviceGetUUID", 0);
  RESOLVE(fn, device, r);
  return sim_copy_string(uuid, length, r.isMig ? r.ci->uuid : r.g->uuid);
}

NVML_API nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length) {
  SIM_API_ENTER("nvmlDeviceGetSerial", 0);
  RESOLVE(fn, device, r);
  return sim_copy_string(serial, length, r.g->serial);
}

NVML_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
  SIM_API_ENTER("nvmlDeviceGetIndex", 0);
  RESOLVE(fn, device, r);
  if (!index) return NVML_ERROR_INVALID_ARGUMENT;
  *index = r.gpu;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor) {
  SIM_API_ENTER("nvmlDeviceGetMinorNumber", 0);
  RESOLVE(fn, device, r);
  if (!minor) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *minor = r.g->minor;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, nvmlDeviceArchitecture_t *arch) {
  SIM_API_ENTER("nvmlDeviceGetArchitecture", 0);
  RESOLVE(fn, device, r);
  if (!arch) return NVML_ERROR_INVALID_ARGUMENT;
  *arch = r.m->arch;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
  SIM_API_ENTER("nvmlDeviceGetCudaComputeCapability", 0);
  RESOLVE(fn, device, r);
  if (!major || !minor) return NVML_ERROR_INVALID_ARGUMENT;
  *major = (int)r.m->ccMajor;
  *minor = (int)r.m->ccMinor;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t device, nvmlBrandType_t *type) {
  SIM_API_ENTER("nvmlDeviceGetBrand", 0);
  RESOLVE(fn, device, r);
  if (!type) return NVML_ERROR_INVALID_ARGUMENT;
  *type = 14; /* NVML_BRAND_NVIDIA */
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
  SIM_API_ENTER("nvmlDeviceGetPciInfo_v3", 0);
  RESOLVE(fn, device, r);
  if (!pci) return NVML_ERROR_INVALID_ARGUMENT;
  memset(pci, 0, sizeof *pci);
  pci->domain = r.g->domain;
  pci->bus = r.g->bus;
  pci->device = r.g->device;
  pci->pciDeviceId = r.m->pciDeviceId;
  pci->pciSubSystemId = r.m->pciSubSystemId;
  snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.0", r.g->domain, r.g->bus, r.g->device);
  snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", r.g->domain & 0xffff, r.g->bus,
           r.g->device);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *a) {
  SIM_API_ENTER("nvmlDeviceGetAttributes_v2", 0);
  RESOLVE(fn, device, r);
  if (!a) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.isMig) return NVML_ERROR_NOT_SUPPORTED; /* NVML: "only supports MIG device handles" */
  const sim_gi_profile *p = &r.m->profiles[r.gi->profile];
  a->multiprocessorCount = sim_ci_sm(r.m, r.gi, r.ci);
  a->sharedCopyEngineCount = p->ce;
  a->sharedDecoderCount = p->dec;
  a->sharedEncoderCount = p->enc;
  a->sharedJpegCount = p->jpeg;
  a->sharedOfaCount = p->ofa;
  a->gpuInstanceSliceCount = p->slices;
  a->computeInstanceSliceCount = r.ci->size;
  a->memorySizeMB = p->memoryMiB;
  return NVML_SUCCESS;
}

/* ---- memory ---------------------------------------------------------------- */

static void memory_of(const sim_ref *r, unsigned long long *total, unsigned long long *reserved,
                      unsigned long long *used) {
  const unsigned long long MiB = 1048576ULL;
  unsigned long long procs = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    const sim_proc *p = &g_st->procs[i];
    if (!p->used || p->gpu != r->gpu) continue;
    if (r->isMig && p->gi != r->gi->id) continue;
    procs += p->memoryMiB * MiB;
  }
  if (r->isMig) {
    *total = (unsigned long long)r->m->profiles[r->gi->profile].memoryMiB * MiB;
    *reserved = 0;
    *used = procs + 11 * MiB; /* the instance's own context */
  } else {
    *total = (unsigned long long)r->m->memoryMiB * MiB;
    *reserved = (unsigned long long)r->m->reservedMiB * MiB;
    *used = procs + 1 * MiB;
  }
  if (*used + *reserved > *total) *used = *total - *reserved;
}

NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
  SIM_API_ENTER("nvmlDeviceGetMemoryInfo", 0);
  RESOLVE(fn, device, r);
  if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long total, reserved, used;
  memory_of(&r, &total, &reserved, &used);
  /* v1 counts the reservation as used */
  memory->total = total;
  memory->used = used + reserved;
  memory->free = total - used - reserved;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
  SIM_API_ENTER("nvmlDeviceGetMemoryInfo_v2", 0);
  RESOLVE(fn, device, r);
  if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  unsigned long long total, reserved, used;
  memory_of(&r, &total, &reserved, &used);
  memory->total = total;
  memory->reserved = reserved;
  memory->used = used;
  memory->free = total - used - reserved;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t device, nvmlBAR1Memory_t *bar1) {
  SIM_API_ENTER("nvmlDeviceGetBAR1MemoryInfo", 0);
  RESOLVE(fn, device, r);
  if (!bar1) return NVML_ERROR_INVALID_ARGUMENT;
  bar1->bar1Total = (unsigned long long)r.m->bar1MiB * 1048576ULL;
  bar1->bar1Used = 1048576ULL;
  bar1->bar1Free = bar1->bar1Total - bar1->bar1Used;
  return NVML_SUCCESS;
}

/* ---- utilization, temperature, power, clocks ------------------------------- */

NVML_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
  SIM_API_ENTER("nvmlDeviceGetUtilizationRates", 0);
  RESOLVE(fn, device, r);
  if (!u) return NVML_ERROR_INVALID_ARGUMENT;
  /* "On MIG-enabled GPUs, querying device utilization rates is not currently supported." */
  if (r.isMig || r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  double load = sim_gpu_load(r.gpu);
  u->gpu = (unsigned)lround(load);
  u->memory = (unsigned)lround(load * 0.55);
  return NVML_SUCCESS;
}

static int temperature_c(unsigned gpu) {
  const sim_gpu *g = &g_st->gpus[gpu];
  if (g->tempOverride >= 0) return g->tempOverride;
  return (int)lround(30.0 + 42.0 * sim_gpu_load(gpu) / 100.0 + noise(gpu, 1));
}

NVML_API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor, unsigned int *temp) {
  SIM_API_ENTER("nvmlDeviceGetTemperature", 0);
  RESOLVE(fn, device, r);
  if (!temp || sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *temp = (unsigned)temperature_c(r.gpu);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *t) {
  SIM_API_ENTER("nvmlDeviceGetTemperatureV", 0);
  RESOLVE(fn, device, r);
  if (!t) return NVML_ERROR_INVALID_ARGUMENT;
  if (t->version != nvmlTemperature_v1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (t->sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  t->temperature = temperature_c(r.gpu);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, nvmlTemperatureThresholds_t type, unsigned int *temp) {
  SIM_API_ENTER("nvmlDeviceGetTemperatureThreshold", 0);
  RESOLVE(fn, device, r);
  if (!temp) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  switch (type) {
    case NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: *temp = r.m->tempShutdown; return NVML_SUCCESS;
    case NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: *temp = r.m->tempSlowdown; return NVML_SUCCESS;
    case NVML_TEMPERATURE_THRESHOLD_MEM_MAX: *temp = r.m->tempMemMax; return NVML_SUCCESS;
    case NVML_TEMPERATURE_THRESHOLD_GPU_MAX: *temp = r.m->tempGpuMax; return NVML_SUCCESS;
    default: return (unsigned)type < 8 ? NVML_ERROR_NOT_SUPPORTED : NVML_ERROR_INVALID_ARGUMENT;
  }
}

unsigned sim_power_mw(unsigned gpu) {
  const sim_gpu *g = &g_st->gpus[gpu];
  if (g->powerOverrideMw) return g->powerOverrideMw;
  const sim_model *m = sim_model_at(g->model);
  double load = sim_gpu_load(gpu);
  double p = m->powerIdleMw + (m->powerLimitMw * 0.92 - m->powerIdleMw) * load / 100.0;
  return (unsigned)lround(p * (1.0 + 0.01 * noise(gpu, 2)));
}

NVML_API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
  SIM_API_ENTER("nvmlDeviceGetPowerUsage", 0);
  RESOLVE(fn, device, r);
  if (!power) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *power = sim_power_mw(r.gpu);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
  SIM_API_ENTER("nvmlDeviceGetEnforcedPowerLimit", 0);
  RESOLVE(fn, device, r);
  if (!limit) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *limit = r.m->powerLimitMw;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
  SIM_API_ENTER("nvmlDeviceGetPowerManagementLimit", 0);
  RESOLVE(fn, device, r);
  if (!limit) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *limit = r.m->powerLimitMw;
  return NVML_SUCCESS;
}

unsigned long long sim_energy_mj(unsigned gpu) {
  const sim_gpu *g = &g_st->gpus[gpu];
  const sim_model *m = sim_model_at(g->model);
  double load = sim_gpu_load(gpu);
  double p = g->powerOverrideMw ? g->powerOverrideMw
                                : m->powerIdleMw + (m->powerLimitMw * 0.92 - m->powerIdleMw) * load / 100.0;
  return (unsigned long long)(g->energyMj + p * (sim_now() - g->energyStamp));
}

NVML_API nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
  SIM_API_ENTER("nvmlDeviceGetTotalEnergyConsumption", 0);
  RESOLVE(fn, device, r);
  if (!energy) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *energy = sim_energy_mj(r.gpu);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
  SIM_API_ENTER("nvmlDeviceGetClockInfo", 0);
  RESOLVE(fn, device, r);
  if (!clock) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  int busy = sim_gpu_load(r.gpu) > 0;
  unsigned long long thr = r.g->throttleOverride;
  int slowed = thr != ~0ULL && (thr & (nvmlClocksThrottleReasonHwSlowdown | nvmlClocksThrottleReasonHwThermalSlowdown |
                                       nvmlClocksEventReasonSwThermalSlowdown | nvmlClocksEventReasonSwPowerCap));
  switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM:
      *clock = busy ? (slowed ? r.m->clkGrMax * 6 / 10 : r.m->clkGrMax) : r.m->clkGrIdle;
      return NVML_SUCCESS;
    case NVML_CLOCK_MEM: *clock = r.m->clkMemMax; return NVML_SUCCESS;
    case NVML_CLOCK_VIDEO: *clock = busy ? r.m->clkVideoMax : r.m->clkVideoIdle; return NVML_SUCCESS;
    default: return NVML_ERROR_INVALID_ARGUMENT;
  }
}

NVML_API nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
  SIM_API_ENTER("nvmlDeviceGetMaxClockInfo", 0);
  RESOLVE(fn, device, r);
  if (!clock) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  switch (type) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM: *clock = r.m->clkGrMax; return NVML_SUCCESS;
    case NVML_CLOCK_MEM: *clock = r.m->clkMemMax; return NVML_SUCCESS;
    case NVML_CLOCK_VIDEO: *clock = r.m->clkVideoMax; return NVML_SUCCESS;
    default: return NVML_ERROR_INVALID_ARGUMENT;
  }
}

static unsigned long long event_reasons(unsigned gpu) {
  const sim_gpu *g = &g_st->gpus[gpu];
  if (g->throttleOverride != ~0ULL) return g->throttleOverride;
  const sim_model *m = sim_model_at(g->model);
  unsigned long long reasons = 0;
  if (sim_gpu_load(gpu) <= 0) reasons |= nvmlClocksEventReasonGpuIdle;
  if (g->powerOverrideMw && g->powerOverrideMw >= m->powerLimitMw) reasons |= nvmlClocksEventReasonSwPowerCap;
  if (g->tempOverride >= (int)m->tempSlowdown)
    reasons |= nvmlClocksThrottleReasonHwThermalSlowdown | nvmlClocksEventReasonSwThermalSlowdown;
  else if (g->tempOverride >= (int)m->tempGpuMax)
    reasons |= nvmlClocksEventReasonSwThermalSlowdown;
  return reasons;
}

NVML_API nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
  SIM_API_ENTER("nvmlDeviceGetCurrentClocksEventReasons", 0);
  RESOLVE(fn, device, r);
  if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *reasons = event_reasons(r.gpu);
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
  SIM_API_ENTER("nvmlDeviceGetCurrentClocksThrottleReasons", 0);
  RESOLVE(fn, device, r);
  if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *reasons = event_reasons(r.gpu);
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetSupportedClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
  SIM_API_ENTER("nvmlDeviceGetSupportedClocksEventReasons", 0);
  RESOLVE(fn, device, r);
  if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
  *reasons = nvmlClocksEventReasonAll & ~nvmlClocksEventReasonDisplayClockSetting;
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetSupportedClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
  SIM_API_ENTER("nvmlDeviceGetSupportedClocksThrottleReasons", 0);
  RESOLVE(fn, device, r);
  if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
  *reasons = nvmlClocksEventReasonAll & ~nvmlClocksEventReasonDisplayClockSetting;
  return NVML_SUCCESS;
}

/* ---- ECC, retirement, remapping -------------------------------------------- */

NVML_API nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending) {
  SIM_API_ENTER("nvmlDeviceGetEccMode", 0);
  RESOLVE(fn, device, r);
  if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
  *current = *pending = NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType, nvmlEccCounterType_t counterType, unsigned long long *count) {
  SIM_API_ENTER("nvmlDeviceGetTotalEccErrors", 0);
  RESOLVE(fn, device, r);
  if (!count || errorType > 1 || counterType > 1) return NVML_ERROR_INVALID_ARGUMENT;
  if (counterType == NVML_VOLATILE_ECC)
    *count = errorType == NVML_MEMORY_ERROR_TYPE_CORRECTED ? r.g->eccSbeVol : r.g->eccDbeVol;
  else
    *count = errorType == NVML_MEMORY_ERROR_TYPE_CORRECTED ? r.g->eccSbeAgg : r.g->eccDbeAgg;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, nvmlPageRetirementCause_t cause, unsigned int *pageCount, unsigned long long *addresses) {
  SIM_API_ENTER("nvmlDeviceGetRetiredPages", 0);
  RESOLVE(fn, device, r);
  if (!pageCount || (unsigned)cause > 1) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned n = cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR ? r.g->retiredDbe : r.g->retiredSbe;
  if (*pageCount < n) {
    *pageCount = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; i < n && addresses; i++) addresses[i] = 0x1c0000ULL + 0x1000ULL * (i + 17 * cause);
  *pageCount = n;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, nvmlEnableState_t *isPending) {
  SIM_API_ENTER("nvmlDeviceGetRetiredPagesPendingStatus", 0);
  RESOLVE(fn, device, r);
  if (!isPending) return NVML_ERROR_INVALID_ARGUMENT;
  *isPending = r.g->retiredPending ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corr, unsigned int *unc, unsigned int *pending, unsigned int *failure) {
  SIM_API_ENTER("nvmlDeviceGetRemappedRows", 0);
  RESOLVE(fn, device, r);
  if (!corr || !unc || !pending || !failure) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig || r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  *corr = r.g->remapCorr;
  *unc = r.g->remapUnc;
  *pending = r.g->remapPending;
  *failure = r.g->remapFailure;
  return NVML_SUCCESS;
}

/* ---- processes ---------------------------------------------------------------- */

NVML_API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos) {
  SIM_API_ENTER("nvmlDeviceGetComputeRunningProcesses_v3", 0);
  RESOLVE(fn, device, r);
  if (!infoCount) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned n = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    const sim_proc *p = &g_st->procs[i];
    if (!p->used || p->gpu != r.gpu) continue;
    if (r.isMig && (p->gi != r.gi->id || p->ci != r.ci->id)) continue;
    n++;
  }
  if (*infoCount < n) {
    *infoCount = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (n && !infos) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned k = 0;
  for (int i = 0; i < SIM_MAX_PROCS && k < n; i++) {
    const sim_proc *p = &g_st->procs[i];
    if (!p->used || p->gpu != r.gpu) continue;
    if (r.isMig && (p->gi != r.gi->id || p->ci != r.ci->id)) continue;
    infos[k].pid = p->pid;
    infos[k].usedGpuMemory = p->memoryMiB * 1048576ULL;
    infos[k].gpuInstanceId = p->gi;
    infos[k].computeInstanceId = p->ci;
    k++;
  }
  *infoCount = n;
  return NVML_SUCCESS;
}

/* ---- PCIe and topology ------------------------------------------------------- */

static unsigned pcie_gen(const sim_ref *r) {
  /* idle links train down to Gen1 to save power, as real GPUs do */
  if (sim_gpu_load(r->gpu) <= 0) return 1;
  return r->g->pcieGenCap ? r->g->pcieGenCap : r->m->pcieGenMax;
}

NVML_API nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen) {
  SIM_API_ENTER("nvmlDeviceGetCurrPcieLinkGeneration", 0);
  RESOLVE(fn, device, r);
  if (!gen) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *gen = pcie_gen(&r);
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *width) {
  SIM_API_ENTER("nvmlDeviceGetCurrPcieLinkWidth", 0);
  RESOLVE(fn, device, r);
  if (!width) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *width = r.g->pcieWidthCap ? r.g->pcieWidthCap : r.m->pcieWidthMax;
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen) {
  SIM_API_ENTER("nvmlDeviceGetMaxPcieLinkGeneration", 0);
  RESOLVE(fn, device, r);
  if (!gen) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *gen = r.m->pcieGenMax;
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *width) {
  SIM_API_ENTER("nvmlDeviceGetMaxPcieLinkWidth", 0);
  RESOLVE(fn, device, r);
  if (!width) return NVML_ERROR_INVALID_ARGUMENT;
  if (r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *width = r.m->pcieWidthMax;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t d1, nvmlDevice_t d2, nvmlGpuTopologyLevel_t *path) {
  SIM_API_ENTER("nvmlDeviceGetTopologyCommonAncestor", 0);
  sim_ref a, b;
  nvmlReturn_t rc = sim_resolve_gpu(d1, &a);
  if (rc != NVML_SUCCESS) return rc;
  rc = sim_resolve_gpu(d2, &b);
  if (rc != NVML_SUCCESS) return rc;
  if (!path) return NVML_ERROR_INVALID_ARGUMENT;
  if (a.gpu == b.gpu) *path = NVML_TOPOLOGY_INTERNAL;
  else if (a.g->pciSwitch == b.g->pciSwitch) *path = NVML_TOPOLOGY_SINGLE;
  else if (a.g->numa == b.g->numa) *path = NVML_TOPOLOGY_NODE;
  else *path = NVML_TOPOLOGY_SYSTEM;
  return NVML_SUCCESS;
}
