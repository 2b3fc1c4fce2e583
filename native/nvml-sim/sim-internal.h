/* Internal types of the simulated driver. The shared state lives in a
 * memory-mapped file under an flock, so every process that loads the
 * simulator sees the same GPUs, instances, processes and events. */
#ifndef TESSERA_SIM_INTERNAL_H
#define TESSERA_SIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nvml.h"
#include "tsim.h"

#define SIM_MAGIC 0x4d49534e5345544eULL /* "NTESNSIM" */
#define SIM_LAYOUT_VERSION 3u
#define SIM_MAX_GPUS 8
#define SIM_MAX_PROFILES 10
#define SIM_MAX_GI 8
#define SIM_MAX_CI 8
#define SIM_MAX_MIG_SLOTS 8
#define SIM_MAX_PROCS 128
#define SIM_EVENT_RING 512
#define SIM_MAX_LATENCY 16
#define SIM_GI_ID_LIMIT 16
#define SIM_CI_ID_LIMIT 8
#define SIM_NONE 0xFFFFFFFFu

/* A GPU-instance profile as the driver reports it. */
typedef struct {
  unsigned index;       /* NVML_GPU_INSTANCE_PROFILE_* constant */
  unsigned id;          /* device-specific profile ID */
  unsigned slices;      /* compute (GPU) slices, the "g" */
  unsigned memSlices;   /* placement size in memory slices */
  unsigned nStarts;
  unsigned starts[8];
  unsigned maxInstances;
  unsigned sm, ce, dec, enc, jpeg, ofa;
  unsigned memoryMiB;
  const char *suffix;   /* "", "+me" */
} sim_gi_profile;

typedef struct {
  const char *key;      /* short key for presets */
  const char *name;     /* nvmlDeviceGetName */
  unsigned pciDeviceId, pciSubSystemId;
  unsigned memoryMiB, reservedMiB, bar1MiB;
  unsigned arch, ccMajor, ccMinor;
  unsigned smCount;
  unsigned memSliceCount;   /* 8 or 4 */
  unsigned powerLimitMw, powerMinMw, powerMaxMw, powerIdleMw;
  unsigned clkGrMax, clkMemMax, clkVideoMax, clkGrIdle, clkVideoIdle;
  unsigned tempShutdown, tempSlowdown, tempMemMax, tempGpuMax;
  unsigned pcieGenMax, pcieWidthMax;
  unsigned nProfiles;
  sim_gi_profile profiles[SIM_MAX_PROFILES];
} sim_model;

typedef struct {
  unsigned used, id, profileId, start, size, migSlot;
  unsigned long long serial;
  char uuid[48];
} sim_ci;

typedef struct {
  unsigned used, id, profile; /* profile: index into model->profiles */
  unsigned start, size;
  unsigned long long serial;
  double busyIntegral, busyStamp; /* SM-busy seconds×percent, for GPM */
  sim_ci cis[SIM_MAX_CI];
} sim_gi;

typedef struct {
  unsigned model;
  char uuid[48], serial[32];
  unsigned domain, bus, device, minor, numa, pciSwitch;
  unsigned migCurrent, migPending, migBlockers;
  unsigned lost;
  int tempOverride;
  unsigned powerOverrideMw;
  unsigned long long throttleOverride;
  unsigned pcieGenCap, pcieWidthCap;
  unsigned long long eccSbeVol, eccDbeVol, eccSbeAgg, eccDbeAgg;
  unsigned remapCorr, remapUnc, remapPending, remapFailure;
  unsigned retiredSbe, retiredDbe, retiredPending;
  unsigned long long pcieReplay;
  double energyMj, energyStamp;
  double busyIntegral, busyStamp;
  sim_gi gis[SIM_MAX_GI];
} sim_gpu;

typedef struct {
  unsigned used, pid, gpu, gi, ci, smPercent;
  unsigned long long memoryMiB;
  char name[64];
} sim_proc;

typedef struct {
  unsigned long long seq, type, data;
  unsigned gpu, gi, ci, pad;
} sim_event;

typedef struct {
  char function[64];
  unsigned micros;
} sim_latency;

typedef struct {
  unsigned long long magic;
  unsigned layoutVersion, size;
  char preset[32];
  unsigned seed, gpuCount;
  unsigned long long serialCounter;
  unsigned nextPid, latencyActive;
  unsigned long long eventSeq;
  double createdAt;
  sim_gpu gpus[SIM_MAX_GPUS];
  sim_proc procs[SIM_MAX_PROCS];
  sim_event events[SIM_EVENT_RING];
  sim_latency latency[SIM_MAX_LATENCY];
  unsigned long long checksum; /* of the header fields; verified on attach */
} sim_state;

/* Process-local handle. Every nvmlDevice_t / GI / CI handed out points at one. */
enum { H_GPU = 1, H_MIG = 2, H_GI = 3, H_CI = 4 };
typedef struct sim_handle {
  unsigned kind, gpu, gi, ci;
  unsigned long long giSerial, ciSerial;
} sim_handle;

/* presets.c */
const sim_model *sim_model_at(unsigned i);
int sim_preset_build(const char *name, sim_state *st);
const char *sim_preset_names(void);

/* state.c */
extern sim_state *g_st;
extern int g_init_count;
int sim_attach(void);      /* maps the state file; 0 or an nvmlReturn_t */
void sim_detach(void);
int sim_lock(int exclusive);
void sim_unlock(int *held);
void sim_latency_apply(const char *function);
double sim_now(void);
const char *sim_state_file(void);
void sim_state_reset(const char *preset);
void sim_seal(void);

/* handles (state.c) */
nvmlDevice_t sim_gpu_handle(unsigned gpu);
nvmlDevice_t sim_mig_handle(unsigned gpu, const sim_gi *gi, const sim_ci *ci);
nvmlGpuInstance_t sim_gi_handle(unsigned gpu, const sim_gi *gi);
nvmlComputeInstance_t sim_ci_handle(unsigned gpu, const sim_gi *gi, const sim_ci *ci);
const sim_handle *sim_handle_check(const void *p);

/* resolution with staleness checks; return nvmlReturn_t */
typedef struct {
  unsigned gpu;
  sim_gpu *g;
  const sim_model *m;
  sim_gi *gi; /* for MIG/GI/CI handles */
  sim_ci *ci; /* for MIG/CI handles */
  int isMig;
} sim_ref;
nvmlReturn_t sim_resolve_device(nvmlDevice_t d, sim_ref *r);      /* GPU or MIG device */
nvmlReturn_t sim_resolve_gpu(nvmlDevice_t d, sim_ref *r);         /* GPU only (MIG → INVALID_ARGUMENT) */
nvmlReturn_t sim_resolve_gi(nvmlGpuInstance_t h, sim_ref *r);
nvmlReturn_t sim_resolve_ci(nvmlComputeInstance_t h, sim_ref *r);

/* model helpers (telemetry in api-device.c) */
double sim_gpu_load(unsigned gpu);          /* 0..100 */
double sim_gi_load(unsigned gpu, const sim_gi *gi);
void sim_account(unsigned gpu);             /* fold energy and busy integrals before a load change */
void sim_emit(unsigned gpu, unsigned long long type, unsigned long long data, unsigned gi, unsigned ci);
unsigned sim_profile_gb(const sim_model *m, unsigned memoryMiB);
void sim_mig_uuid(const sim_gpu *g, unsigned gi, unsigned ci, unsigned long long serial, char *out);
nvmlReturn_t sim_copy_string(char *dst, unsigned length, const char *src);
void sim_destroy_all_instances(unsigned gpu);
unsigned sim_ci_sm(const sim_model *m, const sim_gi *gi, const sim_ci *ci);
unsigned sim_ci_slices(unsigned profileId);
unsigned sim_power_mw(unsigned gpu);
unsigned long long sim_energy_mj(unsigned gpu);

#define SIM_API_ENTER(fname, excl)                                          \
  int sim_held__ __attribute__((cleanup(sim_unlock))) = 0;                  \
  do {                                                                      \
    if (g_init_count <= 0 || !g_st) return NVML_ERROR_UNINITIALIZED;                             \
    if (g_st->latencyActive) sim_latency_apply(fname);                      \
    sim_held__ = sim_lock(excl);                                            \
    if (!sim_held__) return NVML_ERROR_UNKNOWN;                             \
  } while (0)

#endif
