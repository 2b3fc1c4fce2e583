/* MIG: mode, GPU-instance and compute-instance profiles, placements,
 * create/destroy, MIG device handles. Occupancy is by memory slice; profile
 * index ≠ profile ID; creation without a placement picks slots in the order
 * the real driver was seen to (reference/nvml.md §4.5). */
#include <stdio.h>
#include <string.h>

#include "sim-internal.h"

static int mig_capable(const sim_model *m) { return m->nProfiles > 0; }

NVML_API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
  SIM_API_ENTER("nvmlDeviceGetMigMode", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
  if (!mig_capable(r.m)) return NVML_ERROR_NOT_SUPPORTED;
  *current = r.g->migCurrent;
  *pending = r.g->migPending;
  return NVML_SUCCESS;
}

static unsigned gpu_processes(unsigned gpu) {
  unsigned n = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++)
    if (g_st->procs[i].used && g_st->procs[i].gpu == gpu) n++;
  return n;
}

static int any_gi(const sim_gpu *g) {
  for (int k = 0; k < SIM_MAX_GI; k++)
    if (g->gis[k].used) return 1;
  return 0;
}

NVML_API nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned int mode, nvmlReturn_t *activationStatus) {
  SIM_API_ENTER("nvmlDeviceSetMigMode", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!activationStatus || mode > 1) return NVML_ERROR_INVALID_ARGUMENT;
  if (!mig_capable(r.m)) return NVML_ERROR_NOT_SUPPORTED;
  if (mode == r.g->migCurrent && mode == r.g->migPending) {
    *activationStatus = NVML_SUCCESS;
    return NVML_SUCCESS;
  }
  if (mode == NVML_DEVICE_MIG_DISABLE && any_gi(r.g)) return NVML_ERROR_IN_USE; /* destroy instances first */
  r.g->migPending = mode;
  int blocked = gpu_processes(r.gpu) > 0 || r.g->migBlockers > 0;
  if (blocked) {
    /* "In use by another client": the change stays pending until the clients
     * leave and the GPU is reset */
    *activationStatus = NVML_ERROR_IN_USE;
  } else if (r.m->arch >= NVML_DEVICE_ARCH_HOPPER) {
    r.g->migCurrent = mode; /* Hopper+: no reset needed */
    *activationStatus = NVML_SUCCESS;
  } else {
    *activationStatus = NVML_ERROR_RESET_REQUIRED; /* Ampere: pending until a GPU reset */
  }
  return NVML_SUCCESS;
}

/* ---- GPU-instance profiles ------------------------------------------------- */

static const sim_gi_profile *profile_by_index(const sim_model *m, unsigned index, unsigned *pos) {
  for (unsigned i = 0; i < m->nProfiles; i++)
    if (m->profiles[i].index == index) {
      if (pos) *pos = i;
      return &m->profiles[i];
    }
  return NULL;
}

static const sim_gi_profile *profile_by_id(const sim_model *m, unsigned id, unsigned *pos) {
  for (unsigned i = 0; i < m->nProfiles; i++)
    if (m->profiles[i].id == id) {
      if (pos) *pos = i;
      return &m->profiles[i];
    }
  return NULL;
}

static unsigned occupancy(const sim_gpu *g) {
  unsigned mask = 0;
  for (int k = 0; k < SIM_MAX_GI; k++)
    if (g->gis[k].used) mask |= ((1u << g->gis[k].size) - 1) << g->gis[k].start;
  return mask;
}

static unsigned count_profile(const sim_gpu *g, unsigned pos) {
  unsigned n = 0;
  for (int k = 0; k < SIM_MAX_GI; k++)
    if (g->gis[k].used && g->gis[k].profile == pos) n++;
  return n;
}

static int media_taken(const sim_gpu *g, const sim_model *m) {
  for (int k = 0; k < SIM_MAX_GI; k++)
    if (g->gis[k].used && m->profiles[g->gis[k].profile].ofa && m->profiles[g->gis[k].profile].slices < 7) return 1;
  return 0;
}

/* Whether a new instance of profile p may start at `start`. */
static int placement_free(const sim_gpu *g, const sim_model *m, const sim_gi_profile *p, unsigned pos, unsigned start) {
  int legal = 0;
  for (unsigned i = 0; i < p->nStarts; i++)
    if (p->starts[i] == start) legal = 1;
  if (!legal) return 0;
  unsigned want = ((1u << p->memSlices) - 1) << start;
  if (occupancy(g) & want) return 0;
  if (count_profile(g, pos) >= p->maxInstances) return 0;
  if (p->ofa && p->slices < 7 && media_taken(g, m)) return 0; /* one "+me" instance at most */
  return 1;
}

static void fill_profile_name(const sim_model *m, const sim_gi_profile *p, char *out, size_t n) {
  snprintf(out, n, "MIG %ug.%ugb%s", p->slices, sim_profile_gb(m, p->memoryMiB), p->suffix);
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstanceProfileInfo", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info || profile >= NVML_GPU_INSTANCE_PROFILE_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
  /* profiles are only reported once MIG mode is enabled ("doesn't have MIG mode enabled") */
  if (!mig_capable(r.m) || !r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  const sim_gi_profile *p = profile_by_index(r.m, profile, NULL);
  if (!p) return NVML_ERROR_NOT_SUPPORTED;
  *info = (nvmlGpuInstanceProfileInfo_t){p->id, 0, p->slices, p->maxInstances, p->sm, p->ce, p->dec, p->enc,
                                         p->jpeg, p->ofa, p->memoryMiB};
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_v2_t *info) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstanceProfileInfoV", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info || profile >= NVML_GPU_INSTANCE_PROFILE_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
  if (info->version != nvmlGpuInstanceProfileInfo_v2 && info->version != nvmlGpuInstanceProfileInfo_v3)
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  /* profiles are only reported once MIG mode is enabled ("doesn't have MIG mode enabled") */
  if (!mig_capable(r.m) || !r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  const sim_gi_profile *p = profile_by_index(r.m, profile, NULL);
  if (!p) return NVML_ERROR_NOT_SUPPORTED;
  if (info->version == nvmlGpuInstanceProfileInfo_v3) {
    nvmlGpuInstanceProfileInfo_v3_t *v3 = (nvmlGpuInstanceProfileInfo_v3_t *)info;
    memset(v3, 0, sizeof *v3);
    v3->version = nvmlGpuInstanceProfileInfo_v3;
    v3->id = p->id;
    v3->sliceCount = p->slices;
    v3->instanceCount = p->maxInstances;
    v3->multiprocessorCount = p->sm;
    v3->copyEngineCount = p->ce;
    v3->decoderCount = p->dec;
    v3->encoderCount = p->enc;
    v3->jpegCount = p->jpeg;
    v3->ofaCount = p->ofa;
    v3->memorySizeMB = p->memoryMiB;
    fill_profile_name(r.m, p, v3->name, sizeof v3->name);
    v3->capabilities = 0; /* no P2P in MIG mode on A100/H100 */
  } else {
    memset(info, 0, sizeof *info);
    info->version = nvmlGpuInstanceProfileInfo_v2;
    info->id = p->id;
    info->sliceCount = p->slices;
    info->instanceCount = p->maxInstances;
    info->multiprocessorCount = p->sm;
    info->copyEngineCount = p->ce;
    info->decoderCount = p->dec;
    info->encoderCount = p->enc;
    info->jpegCount = p->jpeg;
    info->ofaCount = p->ofa;
    info->memorySizeMB = p->memoryMiB;
    fill_profile_name(r.m, p, info->name, sizeof info->name);
  }
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstancePlacement_t *placements, unsigned int *count) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstancePossiblePlacements_v2", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  const sim_gi_profile *p = profile_by_id(r.m, profileId, NULL);
  if (!p) return NVML_ERROR_INVALID_ARGUMENT;
  /* NVML lists every legal placement of the profile; the caller checks occupancy. */
  if (!placements) {
    *count = p->nStarts;
    return NVML_SUCCESS;
  }
  if (*count < p->nStarts) {
    *count = p->nStarts;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; i < p->nStarts; i++) placements[i] = (nvmlGpuInstancePlacement_t){p->starts[i], p->memSlices};
  *count = p->nStarts;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device, unsigned int profileId, unsigned int *count) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstanceRemainingCapacity", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  unsigned pos;
  const sim_gi_profile *p = profile_by_id(r.m, profileId, &pos);
  if (!p) return NVML_ERROR_INVALID_ARGUMENT;
  /* how many more instances fit, greedily in start order */
  sim_gpu copy = *r.g;
  unsigned n = 0;
  for (unsigned i = 0; i < p->nStarts; i++) {
    if (!placement_free(&copy, r.m, p, pos, p->starts[i])) continue;
    for (int k = 0; k < SIM_MAX_GI; k++)
      if (!copy.gis[k].used) {
        copy.gis[k].used = 1;
        copy.gis[k].profile = pos;
        copy.gis[k].start = p->starts[i];
        copy.gis[k].size = p->memSlices;
        n++;
        break;
      }
  }
  *count = n;
  return NVML_SUCCESS;
}

static unsigned next_gi_id(const sim_gpu *g) {
  for (unsigned id = 1; id < SIM_GI_ID_LIMIT; id++) {
    int taken = 0;
    for (int k = 0; k < SIM_MAX_GI; k++)
      if (g->gis[k].used && g->gis[k].id == id) taken = 1;
    if (!taken) return id;
  }
  return 0;
}

static nvmlReturn_t create_gi(sim_ref *r, unsigned profileId, int hasStart, unsigned start, nvmlGpuInstance_t *out) {
  if (!out) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r->g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  unsigned pos;
  const sim_gi_profile *p = profile_by_id(r->m, profileId, &pos);
  if (!p) return NVML_ERROR_INVALID_ARGUMENT;
  if (!hasStart) {
    /* the driver fills the upper half first (observed 6,4,5,0,1,2,3 for 1g) */
    static const unsigned order8[4][8] = {{6, 4, 5, 0, 1, 2, 3, 7}, {4, 6, 0, 2}, {4, 0}, {0}};
    static const unsigned order4[4][4] = {{2, 3, 0, 1}, {2, 0}, {0}, {0}};
    unsigned sizeIdx = p->memSlices == 1 ? 0 : p->memSlices == 2 ? 1 : p->memSlices == 4 ? 2 : 3;
    const unsigned *order = r->m->memSliceCount == 8 ? order8[sizeIdx] : order4[sizeIdx];
    unsigned n = r->m->memSliceCount == 8 ? 8 : 4;
    int found = 0;
    for (unsigned i = 0; i < n && !found; i++) {
      if (i > 0 && order[i] == 0 && order[0] == 0) break;
      if (placement_free(r->g, r->m, p, pos, order[i])) {
        start = order[i];
        found = 1;
      }
    }
    if (!found) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  } else {
    int legal = 0;
    for (unsigned i = 0; i < p->nStarts; i++)
      if (p->starts[i] == start) legal = 1;
    if (!legal) return NVML_ERROR_INVALID_ARGUMENT;
    if (!placement_free(r->g, r->m, p, pos, start)) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  }
  int slot = -1;
  for (int k = 0; k < SIM_MAX_GI; k++)
    if (!r->g->gis[k].used) {
      slot = k;
      break;
    }
  unsigned id = next_gi_id(r->g);
  if (slot < 0 || !id) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  sim_account(r->gpu);
  sim_gi *gi = &r->g->gis[slot];
  memset(gi, 0, sizeof *gi);
  gi->used = 1;
  gi->id = id;
  gi->profile = pos;
  gi->start = start;
  gi->size = p->memSlices;
  gi->serial = ++g_st->serialCounter;
  gi->busyStamp = sim_now();
  *out = sim_gi_handle(r->gpu, gi);
  sim_emit(r->gpu, nvmlEventTypeMigConfigChange, 0, gi->id, SIM_NONE);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstance) {
  SIM_API_ENTER("nvmlDeviceCreateGpuInstance", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  return create_gi(&r, profileId, 0, 0, gpuInstance);
}

NVML_API nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t device, unsigned int profileId, const nvmlGpuInstancePlacement_t *placement, nvmlGpuInstance_t *gpuInstance) {
  SIM_API_ENTER("nvmlDeviceCreateGpuInstanceWithPlacement", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!placement) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *p = profile_by_id(r.m, profileId, NULL);
  if (p && placement->size != p->memSlices) return NVML_ERROR_INVALID_ARGUMENT;
  return create_gi(&r, profileId, 1, placement->start, gpuInstance);
}

static unsigned processes_on(unsigned gpu, unsigned gi, unsigned ci) {
  unsigned n = 0;
  for (int i = 0; i < SIM_MAX_PROCS; i++) {
    const sim_proc *p = &g_st->procs[i];
    if (p->used && p->gpu == gpu && p->gi == gi && (ci == SIM_NONE || p->ci == ci)) n++;
  }
  return n;
}

NVML_API nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gpuInstance) {
  SIM_API_ENTER("nvmlGpuInstanceDestroy", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  for (int c = 0; c < SIM_MAX_CI; c++)
    if (r.gi->cis[c].used) return NVML_ERROR_IN_USE;
  if (processes_on(r.gpu, r.gi->id, SIM_NONE)) return NVML_ERROR_IN_USE;
  sim_account(r.gpu);
  unsigned id = r.gi->id;
  memset(r.gi, 0, sizeof *r.gi);
  sim_emit(r.gpu, nvmlEventTypeMigConfigChange, 0, id, SIM_NONE);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstances, unsigned int *count) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstances", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  unsigned pos;
  const sim_gi_profile *p = profile_by_id(r.m, profileId, &pos);
  if (!p) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned n = count_profile(r.g, pos);
  if (!gpuInstances || *count < n) {
    *count = n;
    return gpuInstances ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_ERROR_INVALID_ARGUMENT;
  }
  unsigned k = 0;
  /* listed by id, as nvidia-smi shows them */
  for (unsigned id = 0; id < SIM_GI_ID_LIMIT; id++)
    for (int s = 0; s < SIM_MAX_GI; s++)
      if (r.g->gis[s].used && r.g->gis[s].profile == pos && r.g->gis[s].id == id)
        gpuInstances[k++] = sim_gi_handle(r.gpu, &r.g->gis[s]);
  *count = k;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned int id, nvmlGpuInstance_t *gpuInstance) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstanceById", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!gpuInstance) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  for (int s = 0; s < SIM_MAX_GI; s++)
    if (r.g->gis[s].used && r.g->gis[s].id == id) {
      *gpuInstance = sim_gi_handle(r.gpu, &r.g->gis[s]);
      return NVML_SUCCESS;
    }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info) {
  SIM_API_ENTER("nvmlGpuInstanceGetInfo", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info) return NVML_ERROR_INVALID_ARGUMENT;
  info->device = sim_gpu_handle(r.gpu);
  info->id = r.gi->id;
  info->profileId = r.m->profiles[r.gi->profile].id;
  info->placement = (nvmlGpuInstancePlacement_t){r.gi->start, r.gi->size};
  return NVML_SUCCESS;
}

/* ---- compute instances -------------------------------------------------------- */

/* CI profile index → compute slices; IDs equal indices (reference §4.3).
 * The 1-slice CI of a double-memory 1g GI (1g.20gb) is REV1 (ID 7), as observed. */
static int ci_profile_valid(const sim_gi_profile *gp, unsigned ciProfile) {
  unsigned c = sim_ci_slices(ciProfile), g = gp->slices;
  if (!c || ciProfile == 5 || ciProfile == 6 || ciProfile == 8) return 0;
  if (gp->index == NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2) return ciProfile == 7;
  if (ciProfile == 7) return 0;
  if (c > g) return 0;
  if (c < g && 2 * c > g + 1) return 0; /* go-nvlib's rule: e.g. no 3c in a 4g */
  return 1;
}

static void ci_starts(const sim_gi_profile *gp, unsigned c, unsigned *starts, unsigned *n) {
  *n = 0;
  for (unsigned s = 0; s + c <= gp->slices; s += c) starts[(*n)++] = s;
}

static unsigned ci_mask(const sim_gi *gi) {
  unsigned mask = 0;
  for (int c = 0; c < SIM_MAX_CI; c++)
    if (gi->cis[c].used) mask |= ((1u << gi->cis[c].size) - 1) << gi->cis[c].start;
  return mask;
}

static void fill_ci_info(const sim_model *m, const sim_gi_profile *gp, unsigned ciProfile, unsigned *id, unsigned *slices,
                         unsigned *count, unsigned *sm, char *name, size_t nameLen) {
  unsigned c = sim_ci_slices(ciProfile);
  *id = ciProfile;
  *slices = c;
  *count = gp->slices / c;
  *sm = gp->sm * c / gp->slices;
  if (name) {
    unsigned gb = sim_profile_gb(m, gp->memoryMiB);
    if (c == gp->slices)
      snprintf(name, nameLen, "MIG %ug.%ugb%s", gp->slices, gb, gp->suffix);
    else
      snprintf(name, nameLen, "MIG %uc.%ug.%ugb%s", c, gp->slices, gb, gp->suffix);
  }
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gpuInstance, unsigned int profile, unsigned int engProfile, nvmlComputeInstanceProfileInfo_t *info) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstanceProfileInfo", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info || profile >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT || engProfile != 0) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *gp = &r.m->profiles[r.gi->profile];
  if (!ci_profile_valid(gp, profile)) return NVML_ERROR_NOT_SUPPORTED;
  memset(info, 0, sizeof *info);
  fill_ci_info(r.m, gp, profile, &info->id, &info->sliceCount, &info->instanceCount, &info->multiprocessorCount, NULL, 0);
  info->sharedCopyEngineCount = gp->ce;
  info->sharedDecoderCount = gp->dec;
  info->sharedEncoderCount = gp->enc;
  info->sharedJpegCount = gp->jpeg;
  info->sharedOfaCount = gp->ofa;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfoV(nvmlGpuInstance_t gpuInstance, unsigned int profile, unsigned int engProfile, nvmlComputeInstanceProfileInfo_v2_t *info) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstanceProfileInfoV", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info || profile >= NVML_COMPUTE_INSTANCE_PROFILE_COUNT || engProfile != 0) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned version = info->version;
  if (version != nvmlComputeInstanceProfileInfo_v2 && version != nvmlComputeInstanceProfileInfo_v3)
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  const sim_gi_profile *gp = &r.m->profiles[r.gi->profile];
  if (!ci_profile_valid(gp, profile)) return NVML_ERROR_NOT_SUPPORTED;
  memset(info, 0, version == nvmlComputeInstanceProfileInfo_v3 ? sizeof(nvmlComputeInstanceProfileInfo_v3_t)
                                                                 : sizeof(nvmlComputeInstanceProfileInfo_v2_t));
  info->version = version;
  fill_ci_info(r.m, gp, profile, &info->id, &info->sliceCount, &info->instanceCount, &info->multiprocessorCount,
               info->name, sizeof info->name);
  info->sharedCopyEngineCount = gp->ce;
  info->sharedDecoderCount = gp->dec;
  info->sharedEncoderCount = gp->enc;
  info->sharedJpegCount = gp->jpeg;
  info->sharedOfaCount = gp->ofa;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstancePossiblePlacements(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstancePlacement_t *placements, unsigned int *count) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstancePossiblePlacements", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *gp = &r.m->profiles[r.gi->profile];
  if (!ci_profile_valid(gp, profileId)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned starts[8], n, c = sim_ci_slices(profileId);
  ci_starts(gp, c, starts, &n);
  if (!placements) {
    *count = n;
    return NVML_SUCCESS;
  }
  if (*count < n) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; i < n; i++) placements[i] = (nvmlComputeInstancePlacement_t){starts[i], c};
  *count = n;
  return NVML_SUCCESS;
}

static int ci_start_free(const sim_gi *gi, unsigned c, unsigned start) {
  return !(ci_mask(gi) & (((1u << c) - 1) << start));
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstanceRemainingCapacity(nvmlGpuInstance_t gpuInstance, unsigned int profileId, unsigned int *count) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstanceRemainingCapacity", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *gp = &r.m->profiles[r.gi->profile];
  if (!ci_profile_valid(gp, profileId)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned starts[8], n, c = sim_ci_slices(profileId), k = 0, mask = ci_mask(r.gi);
  ci_starts(gp, c, starts, &n);
  for (unsigned i = 0; i < n; i++) {
    unsigned want = ((1u << c) - 1) << starts[i];
    if (!(mask & want)) {
      mask |= want;
      k++;
    }
  }
  *count = k;
  return NVML_SUCCESS;
}

static nvmlReturn_t create_ci(sim_ref *r, unsigned profileId, int hasStart, unsigned start, nvmlComputeInstance_t *out) {
  if (!out) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *gp = &r->m->profiles[r->gi->profile];
  if (!ci_profile_valid(gp, profileId)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned c = sim_ci_slices(profileId), starts[8], n;
  ci_starts(gp, c, starts, &n);
  if (hasStart) {
    int legal = 0;
    for (unsigned i = 0; i < n; i++)
      if (starts[i] == start) legal = 1;
    if (!legal) return NVML_ERROR_INVALID_ARGUMENT;
    if (!ci_start_free(r->gi, c, start)) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  } else {
    int found = 0;
    for (unsigned i = 0; i < n && !found; i++)
      if (ci_start_free(r->gi, c, starts[i])) {
        start = starts[i];
        found = 1;
      }
    if (!found) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  }
  int slot = -1;
  for (int k = 0; k < SIM_MAX_CI; k++)
    if (!r->gi->cis[k].used) {
      slot = k;
      break;
    }
  unsigned id = SIM_NONE;
  for (unsigned cand = 0; cand < SIM_CI_ID_LIMIT && id == SIM_NONE; cand++) {
    int taken = 0;
    for (int k = 0; k < SIM_MAX_CI; k++)
      if (r->gi->cis[k].used && r->gi->cis[k].id == cand) taken = 1;
    if (!taken) id = cand;
  }
  /* MIG device index: first free slot; destroying leaves holes, as on real drivers */
  unsigned usedSlots = 0;
  for (int k = 0; k < SIM_MAX_GI; k++)
    for (int j = 0; j < SIM_MAX_CI; j++)
      if (r->g->gis[k].used && r->g->gis[k].cis[j].used) usedSlots |= 1u << r->g->gis[k].cis[j].migSlot;
  unsigned migSlot = SIM_NONE, maxSlots = r->m->memSliceCount == 8 ? 7 : 4;
  for (unsigned s = 0; s < maxSlots; s++)
    if (!(usedSlots & (1u << s))) {
      migSlot = s;
      break;
    }
  if (slot < 0 || id == SIM_NONE || migSlot == SIM_NONE) return NVML_ERROR_INSUFFICIENT_RESOURCES;
  sim_account(r->gpu);
  sim_ci *ci = &r->gi->cis[slot];
  memset(ci, 0, sizeof *ci);
  ci->used = 1;
  ci->id = id;
  ci->profileId = profileId;
  ci->start = start;
  ci->size = c;
  ci->migSlot = migSlot;
  ci->serial = ++g_st->serialCounter;
  sim_mig_uuid(r->g, r->gi->id, id, ci->serial, ci->uuid);
  *out = sim_ci_handle(r->gpu, r->gi, ci);
  sim_emit(r->gpu, nvmlEventTypeMigConfigChange, 0, r->gi->id, id);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstance_t *computeInstance) {
  SIM_API_ENTER("nvmlGpuInstanceCreateComputeInstance", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  return create_ci(&r, profileId, 0, 0, computeInstance);
}

NVML_API nvmlReturn_t nvmlGpuInstanceCreateComputeInstanceWithPlacement(nvmlGpuInstance_t gpuInstance, unsigned int profileId, const nvmlComputeInstancePlacement_t *placement, nvmlComputeInstance_t *computeInstance) {
  SIM_API_ENTER("nvmlGpuInstanceCreateComputeInstanceWithPlacement", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!placement || placement->size != sim_ci_slices(profileId)) return NVML_ERROR_INVALID_ARGUMENT;
  return create_ci(&r, profileId, 1, placement->start, computeInstance);
}

NVML_API nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t computeInstance) {
  SIM_API_ENTER("nvmlComputeInstanceDestroy", 1);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_ci(computeInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (processes_on(r.gpu, r.gi->id, r.ci->id)) return NVML_ERROR_IN_USE;
  sim_account(r.gpu);
  unsigned id = r.ci->id;
  memset(r.ci, 0, sizeof *r.ci);
  sim_emit(r.gpu, nvmlEventTypeMigConfigChange, 0, r.gi->id, id);
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gpuInstance, unsigned int profileId, nvmlComputeInstance_t *computeInstances, unsigned int *count) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstances", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  const sim_gi_profile *gp = &r.m->profiles[r.gi->profile];
  if (!ci_profile_valid(gp, profileId)) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned n = 0;
  for (int k = 0; k < SIM_MAX_CI; k++)
    if (r.gi->cis[k].used && r.gi->cis[k].profileId == profileId) n++;
  if (!computeInstances || *count < n) {
    *count = n;
    return computeInstances ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_ERROR_INVALID_ARGUMENT;
  }
  unsigned k2 = 0;
  for (unsigned id = 0; id < SIM_CI_ID_LIMIT; id++)
    for (int k = 0; k < SIM_MAX_CI; k++)
      if (r.gi->cis[k].used && r.gi->cis[k].profileId == profileId && r.gi->cis[k].id == id)
        computeInstances[k2++] = sim_ci_handle(r.gpu, r.gi, &r.gi->cis[k]);
  *count = k2;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpuInstanceGetComputeInstanceById(nvmlGpuInstance_t gpuInstance, unsigned int id, nvmlComputeInstance_t *computeInstance) {
  SIM_API_ENTER("nvmlGpuInstanceGetComputeInstanceById", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gi(gpuInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!computeInstance) return NVML_ERROR_INVALID_ARGUMENT;
  for (int k = 0; k < SIM_MAX_CI; k++)
    if (r.gi->cis[k].used && r.gi->cis[k].id == id) {
      *computeInstance = sim_ci_handle(r.gpu, r.gi, &r.gi->cis[k]);
      return NVML_SUCCESS;
    }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t computeInstance, nvmlComputeInstanceInfo_t *info) {
  SIM_API_ENTER("nvmlComputeInstanceGetInfo_v2", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_ci(computeInstance, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!info) return NVML_ERROR_INVALID_ARGUMENT;
  info->device = sim_gpu_handle(r.gpu);
  info->gpuInstance = sim_gi_handle(r.gpu, r.gi);
  info->id = r.ci->id;
  info->profileId = r.ci->profileId;
  info->placement = (nvmlComputeInstancePlacement_t){r.ci->start, r.ci->size};
  return NVML_SUCCESS;
}

/* ---- MIG device handles ----------------------------------------------------------- */

NVML_API nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMig) {
  SIM_API_ENTER("nvmlDeviceIsMigDeviceHandle", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!isMig) return NVML_ERROR_INVALID_ARGUMENT;
  *isMig = (unsigned)r.isMig;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
  SIM_API_ENTER("nvmlDeviceGetGpuInstanceId", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!id) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *id = r.gi->id;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) {
  SIM_API_ENTER("nvmlDeviceGetComputeInstanceId", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!id) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.isMig) return NVML_ERROR_NOT_SUPPORTED;
  *id = r.ci->id;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
  SIM_API_ENTER("nvmlDeviceGetMaxMigDeviceCount", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = r.g->migCurrent ? (r.m->memSliceCount == 8 ? 7 : 4) : 0;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice) {
  SIM_API_ENTER("nvmlDeviceGetMigDeviceHandleByIndex", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!migDevice) return NVML_ERROR_INVALID_ARGUMENT;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  if (index >= (r.m->memSliceCount == 8 ? 7u : 4u)) return NVML_ERROR_INVALID_ARGUMENT;
  for (int k = 0; k < SIM_MAX_GI; k++) {
    sim_gi *gi = &r.g->gis[k];
    if (!gi->used) continue;
    for (int c = 0; c < SIM_MAX_CI; c++)
      if (gi->cis[c].used && gi->cis[c].migSlot == index) {
        *migDevice = sim_mig_handle(r.gpu, gi, &gi->cis[c]);
        return NVML_SUCCESS;
      }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device) {
  SIM_API_ENTER("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(migDevice, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!device || !r.isMig) return NVML_ERROR_INVALID_ARGUMENT;
  *device = sim_gpu_handle(r.gpu);
  return NVML_SUCCESS;
}
