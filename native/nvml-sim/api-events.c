/* Events (from a ring in the shared state, so an XID injected by another
 * process reaches this one's waiters), field values and GPM. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim-internal.h"

#define SUPPORTED_EVENTS                                                                     \
  (nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError | nvmlEventTypeXidCriticalError | \
   nvmlEventTypePState | nvmlEventTypeClock | nvmlEventTypeMigConfigChange)

struct nvmlEventSet_st {
  unsigned magic;
  unsigned long long mask[SIM_MAX_GPUS];
  unsigned long long lastSeq;
};
#define EVENTSET_MAGIC 0x45564e54u

NVML_API nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
  SIM_API_ENTER("nvmlEventSetCreate", 0);
  if (!set) return NVML_ERROR_INVALID_ARGUMENT;
  struct nvmlEventSet_st *s = calloc(1, sizeof *s);
  if (!s) return NVML_ERROR_MEMORY;
  s->magic = EVENTSET_MAGIC;
  s->lastSeq = g_st->eventSeq; /* only events after creation */
  *set = s;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
  SIM_API_ENTER("nvmlDeviceGetSupportedEventTypes", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!types) return NVML_ERROR_INVALID_ARGUMENT;
  *types = SUPPORTED_EVENTS;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
  SIM_API_ENTER("nvmlDeviceRegisterEvents", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!set || set->magic != EVENTSET_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
  if (types & ~SUPPORTED_EVENTS) return NVML_ERROR_NOT_SUPPORTED;
  set->mask[r.gpu] |= types;
  return NVML_SUCCESS;
}

static int take_event(nvmlEventSet_t set, nvmlEventData_t *data) {
  unsigned long long seq = g_st->eventSeq;
  if (seq - set->lastSeq > SIM_EVENT_RING) set->lastSeq = seq - SIM_EVENT_RING; /* overrun: oldest kept */
  while (set->lastSeq < seq) {
    const sim_event *e = &g_st->events[++set->lastSeq % SIM_EVENT_RING];
    if (e->seq != set->lastSeq || e->gpu >= g_st->gpuCount) continue;
    if (!(set->mask[e->gpu] & e->type)) continue;
    data->device = sim_gpu_handle(e->gpu);
    data->eventType = e->type;
    data->eventData = e->data;
    data->gpuInstanceId = e->gi;
    data->computeInstanceId = e->ci;
    return 1;
  }
  return 0;
}

NVML_API nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
  if (g_init_count <= 0 || !g_st) return NVML_ERROR_UNINITIALIZED;
  if (g_st->latencyActive) sim_latency_apply("nvmlEventSetWait_v2");
  if (!set || set->magic != EVENTSET_MAGIC || !data) return NVML_ERROR_INVALID_ARGUMENT;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    int held = sim_lock(0), got = 0;
    if (held) got = take_event(set, data);
    sim_unlock(&held);
    if (got) return NVML_SUCCESS;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsedMs = (now.tv_sec - start.tv_sec) * 1e3 + (now.tv_nsec - start.tv_nsec) / 1e6;
    if (elapsedMs >= timeoutms) return NVML_ERROR_TIMEOUT;
    double left = timeoutms - elapsedMs;
    usleep((useconds_t)((left < 5 ? left : 5) * 1000));
  }
}

NVML_API nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  if (g_init_count <= 0 || !g_st) return NVML_ERROR_UNINITIALIZED;
  if (!set || set->magic != EVENTSET_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
  set->magic = 0;
  free(set);
  return NVML_SUCCESS;
}

/* ---- field values ---------------------------------------------------------------- */

static void set_ull(nvmlFieldValue_t *v, unsigned long long x) {
  v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
  v->value.ullVal = x;
  v->nvmlReturn = NVML_SUCCESS;
}
static void set_ui(nvmlFieldValue_t *v, unsigned x) {
  v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
  v->value.uiVal = x;
  v->nvmlReturn = NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
  SIM_API_ENTER("nvmlDeviceGetFieldValues", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!values || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long stamp = (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
  const sim_gpu *g = r.g;
  for (int i = 0; i < count; i++) {
    nvmlFieldValue_t *v = &values[i];
    v->timestamp = stamp;
    v->latencyUsec = 0;
    v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    v->value.ullVal = 0;
    if (r.isMig) continue; /* device-level fields are not reported on MIG handles */
    switch (v->fieldId) {
      case NVML_FI_DEV_ECC_CURRENT:
      case NVML_FI_DEV_ECC_PENDING: set_ui(v, 1); break;
      case NVML_FI_DEV_ECC_SBE_VOL_TOTAL: set_ull(v, g->eccSbeVol); break;
      case NVML_FI_DEV_ECC_DBE_VOL_TOTAL: set_ull(v, g->eccDbeVol); break;
      case NVML_FI_DEV_ECC_SBE_AGG_TOTAL: set_ull(v, g->eccSbeAgg); break;
      case NVML_FI_DEV_ECC_DBE_AGG_TOTAL: set_ull(v, g->eccDbeAgg); break;
      case NVML_FI_DEV_RETIRED_SBE: set_ull(v, g->retiredSbe); break;
      case NVML_FI_DEV_RETIRED_DBE: set_ull(v, g->retiredDbe); break;
      case NVML_FI_DEV_RETIRED_PENDING: set_ull(v, g->retiredPending); break;
      case NVML_FI_DEV_MEMORY_TEMP: {
        set_ui(v, (unsigned)lround(34.0 + 40.0 * sim_gpu_load(r.gpu) / 100.0));
        break;
      }
      case NVML_FI_DEV_PCIE_REPLAY_COUNTER: set_ull(v, g->pcieReplay); break;
      case NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: set_ull(v, sim_energy_mj(r.gpu)); break;
      case NVML_FI_DEV_POWER_INSTANT: set_ui(v, sim_power_mw(r.gpu)); break;
      case NVML_FI_DEV_REMAPPED_COR:
      case NVML_FI_DEV_REMAPPED_UNC:
      case NVML_FI_DEV_REMAPPED_PENDING:
      case NVML_FI_DEV_REMAPPED_FAILURE:
        if (g->migCurrent) break;
        set_ui(v, v->fieldId == NVML_FI_DEV_REMAPPED_COR       ? g->remapCorr
                  : v->fieldId == NVML_FI_DEV_REMAPPED_UNC     ? g->remapUnc
                  : v->fieldId == NVML_FI_DEV_REMAPPED_PENDING ? g->remapPending
                                                               : g->remapFailure);
        break;
      default:
        if (v->fieldId == 0 || v->fieldId >= NVML_FI_MAX) v->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
        break;
    }
  }
  return NVML_SUCCESS;
}

/* ---- GPM (Hopper+) ---------------------------------------------------------------- */

struct nvmlGpmSample_st {
  unsigned magic, gpu, gi;
  double stamp, busy;
};
#define GPM_MAGIC 0x47504d53u

NVML_API nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *support) {
  SIM_API_ENTER("nvmlGpmQueryDeviceSupport", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!support) return NVML_ERROR_INVALID_ARGUMENT;
  if (support->version != NVML_GPM_SUPPORT_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  support->isSupportedDevice = r.m->arch >= NVML_DEVICE_ARCH_HOPPER;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *sample) {
  SIM_API_ENTER("nvmlGpmSampleAlloc", 0);
  if (!sample) return NVML_ERROR_INVALID_ARGUMENT;
  struct nvmlGpmSample_st *s = calloc(1, sizeof *s);
  if (!s) return NVML_ERROR_MEMORY;
  s->magic = GPM_MAGIC;
  s->gpu = SIM_NONE;
  *sample = s;
  return NVML_SUCCESS;
}

NVML_API nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample) {
  SIM_API_ENTER("nvmlGpmSampleFree", 0);
  if (!sample || sample->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
  sample->magic = 0;
  free(sample);
  return NVML_SUCCESS;
}

static nvmlReturn_t sample_take(sim_ref *r, unsigned giId, nvmlGpmSample_t s) {
  if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
  if (r->m->arch < NVML_DEVICE_ARCH_HOPPER) return NVML_ERROR_NOT_SUPPORTED;
  double now = sim_now();
  s->gpu = r->gpu;
  s->gi = giId;
  s->stamp = now;
  if (giId == SIM_NONE) {
    s->busy = r->g->busyIntegral + sim_gpu_load(r->gpu) * (now - r->g->busyStamp);
    return NVML_SUCCESS;
  }
  for (int k = 0; k < SIM_MAX_GI; k++) {
    sim_gi *gi = &r->g->gis[k];
    if (gi->used && gi->id == giId) {
      s->busy = gi->busyIntegral + sim_gi_load(r->gpu, gi) * (now - gi->busyStamp);
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

NVML_API nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t sample) {
  SIM_API_ENTER("nvmlGpmSampleGet", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_device(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  return sample_take(&r, r.isMig ? r.gi->id : SIM_NONE, sample);
}

NVML_API nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId, nvmlGpmSample_t sample) {
  SIM_API_ENTER("nvmlGpmMigSampleGet", 0);
  sim_ref r;
  nvmlReturn_t rc = sim_resolve_gpu(device, &r);
  if (rc != NVML_SUCCESS) return rc;
  if (!r.g->migCurrent) return NVML_ERROR_NOT_SUPPORTED;
  return sample_take(&r, gpuInstanceId, sample);
}

static char S_GR[] = "gr_util", S_SM[] = "sm_util", S_OCC[] = "sm_occupancy", L_GR[] = "Graphics utilization",
            L_SM[] = "SM utilization", L_OCC[] = "SM occupancy", U_PCT[] = "%";

NVML_API nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
  SIM_API_ENTER("nvmlGpmMetricsGet", 0);
  if (!m) return NVML_ERROR_INVALID_ARGUMENT;
  if (m->version != NVML_GPM_METRICS_GET_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (m->numMetrics > NVML_GPM_METRIC_MAX) return NVML_ERROR_INVALID_ARGUMENT;
  const struct nvmlGpmSample_st *a = m->sample1, *b = m->sample2;
  if (!a || !b || a->magic != GPM_MAGIC || b->magic != GPM_MAGIC || a->gpu == SIM_NONE || a->gpu != b->gpu ||
      a->gi != b->gi)
    return NVML_ERROR_INVALID_ARGUMENT;
  double dt = b->stamp - a->stamp;
  double util = dt > 0 ? (b->busy - a->busy) / dt : 0;
  if (util < 0) util = 0;
  if (util > 100) util = 100;
  for (unsigned i = 0; i < m->numMetrics; i++) {
    nvmlGpmMetric_t *x = &m->metrics[i];
    x->nvmlReturn = NVML_SUCCESS;
    switch (x->metricId) {
      case NVML_GPM_METRIC_GRAPHICS_UTIL:
        x->value = util;
        x->metricInfo = (nvmlGpmMetricInfo_t){S_GR, L_GR, U_PCT};
        break;
      case NVML_GPM_METRIC_SM_UTIL:
        x->value = util;
        x->metricInfo = (nvmlGpmMetricInfo_t){S_SM, L_SM, U_PCT};
        break;
      case NVML_GPM_METRIC_SM_OCCUPANCY:
        x->value = util * 0.8;
        x->metricInfo = (nvmlGpmMetricInfo_t){S_OCC, L_OCC, U_PCT};
        break;
      default:
        x->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        x->value = 0;
        x->metricInfo = (nvmlGpmMetricInfo_t){NULL, NULL, NULL};
    }
  }
  return NVML_SUCCESS;
}
