/* Library lifecycle, error strings, system queries, device lookup and the
 * helpers shared by the API files. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim-internal.h"

#define DRIVER_VERSION "580.105.08"
#define NVML_VERSION "13.580.105.08"
#define CUDA_VERSION 13000

NVML_API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }

NVML_API nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
  (void)flags;
  nvmlReturn_t rc = (nvmlReturn_t)sim_attach();
  if (rc != NVML_SUCCESS) return rc;
  if (g_st->latencyActive) sim_latency_apply("nvmlInit_v2");
  g_init_count++;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlShutdown(void) {
  if (g_init_count <= 0) return NVML_ERROR_UNINITIALIZED;
  g_init_count--;
  return NVML_SUCCESS;
}

NVML_API const char *nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_IRQ_ISSUE: return "Interrupt Request Issue";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_MEMORY: return "Insufficient Memory";
    case NVML_ERROR_NO_DATA: return "No data";
    case NVML_ERROR_INSUFFICIENT_RESOURCES: return "Insufficient Resources";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Version mismatch between the API and the argument";
    case NVML_ERROR_NOT_READY: return "Not ready";
    case NVML_ERROR_GPU_NOT_FOUND: return "GPU not found";
    case NVML_ERROR_INVALID_STATE: return "Invalid state";
    default: return "Unknown Error";
  }
}

nvmlReturn_t sim_copy_string(char *dst, unsigned length, const char *src) {
  if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
  size_t n = strlen(src);
  if (length <= n) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(dst, src, n + 1);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
  SIM_API_ENTER("nvmlSystemGetDriverVersion", 0);
  return sim_copy_string(version, length, DRIVER_VERSION);
}
NVML_API nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
  SIM_API_ENTER("nvmlSystemGetNVMLVersion", 0);
  return sim_copy_string(version, length, NVML_VERSION);
}
NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
  SIM_API_ENTER("nvmlSystemGetCudaDriverVersion", 0);
  if (!v) return NVML_ERROR_INVALID_ARGUMENT;
  *v = CUDA_VERSION;
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
  SIM_API_ENTER("nvmlSystemGetCudaDriverVersion_v2", 0);
  if (!v) return NVML_ERROR_INVALID_ARGUMENT;
  *v = CUDA_VERSION;
  return NVML_SUCCESS;
}
NVML_API nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length) {
  SIM_API_ENTER("nvmlSystemGetProcessName", 0);
  for (int i = 0; i < SIM_MAX_PROCS; i++)
    if (g_st->procs[i].used && g_st->procs[i].pid == pid) return sim_copy_string(name, length, g_st->procs[i].name);
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  SIM_API_ENTER("nvmlDeviceGetCount_v2", 0);
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = g_st->gpuCount;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  SIM_API_ENTER("nvmlDeviceGetHandleByIndex_v2", 0);
  if (!device || index >= g_st->gpuCount) return NVML_ERROR_INVALID_ARGUMENT;
  if (g_st->gpus[index].lost) return NVML_ERROR_GPU_IS_LOST;
  *device = sim_gpu_handle(index);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
  SIM_API_ENTER("nvmlDeviceGetHandleByUUID", 0);
  if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned i = 0; i < g_st->gpuCount; i++) {
    sim_gpu *g = &g_st->gpus[i];
    if (strcmp(g->uuid, uuid) == 0) {
      if (g->lost) return NVML_ERROR_GPU_IS_LOST;
      *device = sim_gpu_handle(i);
      return NVML_SUCCESS;
    }
    for (int k = 0; k < SIM_MAX_GI; k++) {
      sim_gi *gi = &g->gis[k];
      if (!gi->used) continue;
      for (int c = 0; c < SIM_MAX_CI; c++)
        if (gi->cis[c].used && strcmp(gi->cis[c].uuid, uuid) == 0) {
          if (g->lost) return NVML_ERROR_GPU_IS_LOST;
          *device = sim_mig_handle(i, gi, &gi->cis[c]);
          return NVML_SUCCESS;
        }
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *busId, nvmlDevice_t *device) {
  SIM_API_ENTER("nvmlDeviceGetHandleByPciBusId_v2", 0);
  if (!busId || !device) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned dom = 0, bus = 0, dev = 0, fn = 0;
  if (sscanf(busId, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
    dom = 0;
    if (sscanf(busId, "%x:%x.%x", &bus, &dev, &fn) != 3) return NVML_ERROR_INVALID_ARGUMENT;
  }
  for (unsigned i = 0; i < g_st->gpuCount; i++) {
    sim_gpu *g = &g_st->gpus[i];
    if (g->domain == dom && g->bus == bus && g->device == dev && fn == 0) {
      if (g->lost) return NVML_ERROR_GPU_IS_LOST;
      *device = sim_gpu_handle(i);
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

/* ---- helpers -------------------------------------------------------------- */

/* go-nvlib's profile-name formula (reference/nvml.md §4.4). */
unsigned sim_profile_gb(const sim_model *m, unsigned memoryMiB) {
  double total = (double)m->memoryMiB * 1048576.0;
  double frac = ceil((double)memoryMiB * 1048576.0 / total * 8.0) / 8.0;
  double gb = ceil(total / 1073741824.0);
  return (unsigned)llround(frac * gb);
}

static unsigned long long mix(unsigned long long h, unsigned long long v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

void sim_mig_uuid(const sim_gpu *g, unsigned gi, unsigned ci, unsigned long long serial, char *out) {
  unsigned long long a = 1469598103934665603ULL;
  for (const char *p = g->uuid; *p; p++) a = mix(a, (unsigned char)*p);
  a = mix(mix(mix(a, gi), ci), serial);
  unsigned long long b = mix(a, 0x5a5a);
  snprintf(out, 48, "MIG-%08llx-%04llx-%04llx-%04llx-%012llx", a >> 32, (a >> 16) & 0xffff, 0x5000 | (a & 0x0fff),
           0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
}

unsigned sim_ci_slices(unsigned profileId) {
  switch (profileId) {
    case 0: return 1;
    case 1: return 2;
    case 2: return 3;
    case 3: return 4;
    case 4: return 7;
    case 5: return 8;
    case 6: return 6;
    case 7: return 1;
    default: return 0;
  }
}

unsigned sim_ci_sm(const sim_model *m, const sim_gi *gi, const sim_ci *ci) {
  const sim_gi_profile *p = &m->profiles[gi->profile];
  return p->sm * ci->size / p->slices;
}

double sim_gi_load(unsigned gpu, const sim_gi *gi) {
  const sim_model *m = sim_model_at(g_st->gpus[gpu].model);
  const sim_gi_profile *p = &m->profiles[gi->profile];
  double busy = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    const sim_proc *pr = &g_st->procs[i];
    if (!pr->used || pr->gpu != gpu || pr->gi != gi->id) continue;
    for (int c = 0; c < SIM_MAX_CI; c++)
      if (gi->cis[c].used && gi->cis[c].id == pr->ci)
        busy += pr->smPercent * (double)gi->cis[c].size / p->slices;
  }
  return busy > 100 ? 100 : busy;
}

double sim_gpu_load(unsigned gpu) {
  const sim_gpu *g = &g_st->gpus[gpu];
  const sim_model *m = sim_model_at(g->model);
  double busy = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    const sim_proc *pr = &g_st->procs[i];
    if (!pr->used || pr->gpu != gpu) continue;
    if (pr->gi == SIM_NONE) {
      busy += pr->smPercent;
      continue;
    }
    for (int k = 0; k < SIM_MAX_GI; k++) {
      const sim_gi *gi = &g->gis[k];
      if (!gi->used || gi->id != pr->gi) continue;
      for (int c = 0; c < SIM_MAX_CI; c++)
        if (gi->cis[c].used && gi->cis[c].id == pr->ci)
          busy += pr->smPercent * (double)sim_ci_sm(m, gi, &gi->cis[c]) / m->smCount;
    }
  }
  return busy > 100 ? 100 : busy;
}

/* Mean power for a load, without noise: what energy integrates. */
static double base_power_mw(unsigned gpu, double load) {
  const sim_model *m = sim_model_at(g_st->gpus[gpu].model);
  return m->powerIdleMw + (m->powerLimitMw * 0.92 - m->powerIdleMw) * load / 100.0;
}

void sim_account(unsigned gpu) {
  sim_gpu *g = &g_st->gpus[gpu];
  double now = sim_now(), load = sim_gpu_load(gpu);
  double p = g->powerOverrideMw ? g->powerOverrideMw : base_power_mw(gpu, load);
  g->energyMj += p * (now - g->energyStamp);
  g->energyStamp = now;
  g->busyIntegral += load * (now - g->busyStamp);
  g->busyStamp = now;
  for (int k = 0; k < SIM_MAX_GI; k++) {
    sim_gi *gi = &g->gis[k];
    if (!gi->used) continue;
    gi->busyIntegral += sim_gi_load(gpu, gi) * (now - gi->busyStamp);
    gi->busyStamp = now;
  }
}

void sim_emit(unsigned gpu, unsigned long long type, unsigned long long data, unsigned gi, unsigned ci) {
  unsigned long long seq = ++g_st->eventSeq;
  sim_event *e = &g_st->events[seq % SIM_EVENT_RING];
  *e = (sim_event){seq, type, data, gpu, gi, ci, 0};
}

void sim_destroy_all_instances(unsigned gpu) {
  sim_gpu *g = &g_st->gpus[gpu];
  for (int k = 0; k < SIM_MAX_GI; k++) {
    if (!g->gis[k].used) continue;
    memset(&g->gis[k], 0, sizeof g->gis[k]);
  }
}
