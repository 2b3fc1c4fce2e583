/* tsim_*: control of the simulated host. These attach to the state file on
 * their own (no nvmlInit needed) and always take the exclusive lock. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "sim-internal.h"

#define TSIM_ENTER()                                                       \
  int sim_held__ __attribute__((cleanup(sim_unlock))) = 0;                 \
  do {                                                                     \
    int rc__ = sim_attach();                                               \
    if (rc__ != NVML_SUCCESS) return (nvmlReturn_t)rc__;                   \
    sim_held__ = sim_lock(1);                                              \
    if (!sim_held__) return NVML_ERROR_UNKNOWN;                            \
  } while (0)

#define GPU_ARG(gpu)                                                       \
  do {                                                                     \
    if ((gpu) >= g_st->gpuCount) return NVML_ERROR_INVALID_ARGUMENT;        \
  } while (0)

NVML_API nvmlReturn_t tsim_state_path(char *buf, unsigned int length) {
  return sim_copy_string(buf, length, sim_state_file());
}

NVML_API nvmlReturn_t tsim_list_presets(char *buf, unsigned int length) {
  return sim_copy_string(buf, length, sim_preset_names());
}

NVML_API nvmlReturn_t tsim_select_preset(const char *name) {
  if (!name) return NVML_ERROR_INVALID_ARGUMENT;
  char names[128];
  snprintf(names, sizeof names, ",%s,", sim_preset_names());
  char want[64];
  snprintf(want, sizeof want, ",%s,", name);
  if (strlen(name) > 40 || !strstr(names, want)) return NVML_ERROR_NOT_FOUND;
  TSIM_ENTER();
  sim_state_reset(name);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_get_preset(char *buf, unsigned int length) {
  TSIM_ENTER();
  return sim_copy_string(buf, length, g_st->preset);
}

NVML_API nvmlReturn_t tsim_set_seed(unsigned int seed) {
  TSIM_ENTER();
  g_st->seed = seed;
  return NVML_SUCCESS;
}

static void end_processes(unsigned gpu) {
  for (int i = 0; i < SIM_MAX_PROCS; i++)
    if (g_st->procs[i].used && g_st->procs[i].gpu == gpu) memset(&g_st->procs[i], 0, sizeof g_st->procs[i]);
}

NVML_API nvmlReturn_t tsim_reset_gpu(unsigned int gpu) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_gpu *g = &g_st->gpus[gpu];
  sim_account(gpu);
  end_processes(gpu);
  int hadInstances = 0;
  for (int k = 0; k < SIM_MAX_GI; k++) hadInstances |= (int)g->gis[k].used;
  sim_destroy_all_instances(gpu);
  g->migCurrent = g->migPending;
  g->migBlockers = 0;
  g->lost = 0;
  g->eccSbeVol = g->eccDbeVol = 0;
  g->retiredPending = 0;
  g->remapPending = 0;
  if (hadInstances) sim_emit(gpu, nvmlEventTypeMigConfigChange, 0, SIM_NONE, SIM_NONE);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_inject_xid(unsigned int gpu, unsigned int gi, unsigned long long xid) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  if (gi != SIM_NONE) {
    int found = 0;
    for (int k = 0; k < SIM_MAX_GI; k++)
      if (g_st->gpus[gpu].gis[k].used && g_st->gpus[gpu].gis[k].id == gi) found = 1;
    if (!found) return NVML_ERROR_NOT_FOUND;
  }
  sim_emit(gpu, nvmlEventTypeXidCriticalError, xid, gi, SIM_NONE);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_ecc(unsigned int gpu, unsigned long long sbeVol, unsigned long long dbeVol,
                                   unsigned long long sbeAgg, unsigned long long dbeAgg) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_gpu *g = &g_st->gpus[gpu];
  if (sbeVol > g->eccSbeVol) sim_emit(gpu, nvmlEventTypeSingleBitEccError, sbeVol - g->eccSbeVol, SIM_NONE, SIM_NONE);
  if (dbeVol > g->eccDbeVol) sim_emit(gpu, nvmlEventTypeDoubleBitEccError, dbeVol - g->eccDbeVol, SIM_NONE, SIM_NONE);
  g->eccSbeVol = sbeVol;
  g->eccDbeVol = dbeVol;
  g->eccSbeAgg = sbeAgg;
  g->eccDbeAgg = dbeAgg;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_remapped_rows(unsigned int gpu, unsigned int corrected, unsigned int uncorrected,
                                             unsigned int pending, unsigned int failure) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_gpu *g = &g_st->gpus[gpu];
  g->remapCorr = corrected;
  g->remapUnc = uncorrected;
  g->remapPending = pending;
  g->remapFailure = failure;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_retired_pages(unsigned int gpu, unsigned int sbe, unsigned int dbe, unsigned int pending) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_gpu *g = &g_st->gpus[gpu];
  if (sbe > 64 || dbe > 64) return NVML_ERROR_INVALID_ARGUMENT;
  g->retiredSbe = sbe;
  g->retiredDbe = dbe;
  g->retiredPending = pending;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_lost(unsigned int gpu, unsigned int lost) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_gpu *g = &g_st->gpus[gpu];
  if (lost && !g->lost) sim_emit(gpu, nvmlEventTypeXidCriticalError, 79, SIM_NONE, SIM_NONE); /* fell off the bus */
  g->lost = lost ? 1 : 0;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_temperature(unsigned int gpu, int celsius) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  if (celsius > 150) return NVML_ERROR_INVALID_ARGUMENT;
  g_st->gpus[gpu].tempOverride = celsius < 0 ? -1 : celsius;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_power(unsigned int gpu, unsigned int milliwatts) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  sim_account(gpu);
  g_st->gpus[gpu].powerOverrideMw = milliwatts;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_throttle(unsigned int gpu, unsigned long long reasons) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  g_st->gpus[gpu].throttleOverride = reasons;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_pcie_link(unsigned int gpu, unsigned int generation, unsigned int width) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  const sim_model *m = sim_model_at(g_st->gpus[gpu].model);
  if (generation > m->pcieGenMax || width > m->pcieWidthMax) return NVML_ERROR_INVALID_ARGUMENT;
  g_st->gpus[gpu].pcieGenCap = generation;
  g_st->gpus[gpu].pcieWidthCap = width;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_add_pcie_replays(unsigned int gpu, unsigned long long count) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  g_st->gpus[gpu].pcieReplay += count;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_process_start(unsigned int gpu, unsigned int gi, unsigned int ci,
                                         unsigned long long memoryMiB, unsigned int smPercent, const char *name,
                                         unsigned int *pid) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  if (smPercent > 100 || !pid) return NVML_ERROR_INVALID_ARGUMENT;
  sim_gpu *g = &g_st->gpus[gpu];
  if (g->lost) return NVML_ERROR_GPU_IS_LOST;
  const sim_model *m = sim_model_at(g->model);
  if ((gi == SIM_NONE) != (ci == SIM_NONE)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long capacityMiB = m->memoryMiB - m->reservedMiB, usedMiB = 0;
  if (gi == SIM_NONE) {
    if (g->migCurrent) return NVML_ERROR_INVALID_ARGUMENT; /* MIG mode: processes run on MIG devices */
  } else {
    const sim_gi *found = NULL;
    int ciFound = 0;
    for (int k = 0; k < SIM_MAX_GI; k++)
      if (g->gis[k].used && g->gis[k].id == gi) {
        found = &g->gis[k];
        for (int c = 0; c < SIM_MAX_CI; c++)
          if (found->cis[c].used && found->cis[c].id == ci) ciFound = 1;
      }
    if (!found || !ciFound) return NVML_ERROR_NOT_FOUND;
    capacityMiB = m->profiles[found->profile].memoryMiB;
  }
  for (int i = 0; i < SIM_MAX_PROCS; i++)
    if (g_st->procs[i].used && g_st->procs[i].gpu == gpu && g_st->procs[i].gi == gi) usedMiB += g_st->procs[i].memoryMiB;
  if (usedMiB + memoryMiB > capacityMiB) return NVML_ERROR_MEMORY;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    sim_proc *p = &g_st->procs[i];
    if (p->used) continue;
    sim_account(gpu);
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->pid = g_st->nextPid++;
    p->gpu = gpu;
    p->gi = gi;
    p->ci = ci;
    p->memoryMiB = memoryMiB;
    p->smPercent = smPercent;
    snprintf(p->name, sizeof p->name, "%s", name && *name ? name : "python3");
    *pid = p->pid;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

NVML_API nvmlReturn_t tsim_process_stop(unsigned int pid) {
  TSIM_ENTER();
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    sim_proc *p = &g_st->procs[i];
    if (p->used && p->pid == pid) {
      sim_account(p->gpu);
      memset(p, 0, sizeof *p);
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t tsim_set_latency(const char *function, unsigned int micros) {
  if (!function || !*function || strlen(function) >= 64) return NVML_ERROR_INVALID_ARGUMENT;
  TSIM_ENTER();
  int slot = -1;
  for (int i = 0; i < SIM_MAX_LATENCY; i++) {
    if (strcmp(g_st->latency[i].function, function) == 0) slot = i;
  }
  if (slot < 0)
    for (int i = 0; i < SIM_MAX_LATENCY && slot < 0; i++)
      if (!g_st->latency[i].function[0]) slot = i;
  if (slot < 0) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  if (micros) {
    snprintf(g_st->latency[slot].function, sizeof g_st->latency[slot].function, "%s", function);
    g_st->latency[slot].micros = micros;
  } else {
    memset(&g_st->latency[slot], 0, sizeof g_st->latency[slot]);
  }
  unsigned active = 0;
  for (int i = 0; i < SIM_MAX_LATENCY; i++) active |= g_st->latency[i].function[0] != 0;
  g_st->latencyActive = active;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t tsim_set_mig_blockers(unsigned int gpu, unsigned int count) {
  TSIM_ENTER();
  GPU_ARG(gpu);
  g_st->gpus[gpu].migBlockers = count;
  return NVML_SUCCESS;
}
