/* The shared state file, its lock, latency injection and handles. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sim-internal.h"

_Static_assert(sizeof(sim_state) < (1u << 20), "state must stay small");

sim_state *g_st = NULL;
int g_init_count = 0;
static int g_fd = -1;
static char g_path[512];
/* flock excludes other processes only (it belongs to the open file
 * description), so threads of this process (koffi's async workers) are
 * serialised by a mutex taken first. The depth allows nested helpers. */
static __thread int g_lock_depth = 0;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;

double sim_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *sim_state_file(void) {
  if (g_path[0]) return g_path;
  const char *env = getenv("TESSERA_SIM_STATE");
  if (env && *env) {
    snprintf(g_path, sizeof g_path, "%s", env);
  } else {
    const char *run = getenv("XDG_RUNTIME_DIR");
    if (run && *run)
      snprintf(g_path, sizeof g_path, "%s/tessera-nvml-sim.state", run);
    else
      snprintf(g_path, sizeof g_path, "/tmp/tessera-nvml-sim-%u.state", (unsigned)getuid());
  }
  return g_path;
}

static unsigned long long identity_checksum(const sim_state *st) {
  unsigned long long h = 1469598103934665603ULL;
  const unsigned char *p = (const unsigned char *)st->preset;
  for (size_t i = 0; i < sizeof st->preset; i++) h = (h ^ p[i]) * 1099511628211ULL;
  h = (h ^ st->gpuCount) * 1099511628211ULL;
  for (unsigned i = 0; i < st->gpuCount && i < SIM_MAX_GPUS; i++) {
    const unsigned char *u = (const unsigned char *)st->gpus[i].uuid;
    for (size_t k = 0; k < sizeof st->gpus[i].uuid; k++) h = (h ^ u[k]) * 1099511628211ULL;
    h = (h ^ st->gpus[i].model) * 1099511628211ULL;
  }
  return h;
}

void sim_seal(void) { g_st->checksum = identity_checksum(g_st); }

void sim_state_reset(const char *preset) {
  memset(g_st, 0, sizeof *g_st);
  g_st->magic = SIM_MAGIC;
  g_st->layoutVersion = SIM_LAYOUT_VERSION;
  g_st->size = (unsigned)sizeof(sim_state);
  g_st->seed = 1;
  g_st->nextPid = 41000;
  g_st->createdAt = sim_now();
  if (sim_preset_build(preset, g_st) != 0) sim_preset_build("dgx-h100", g_st);
  for (unsigned i = 0; i < g_st->gpuCount; i++) {
    g_st->gpus[i].energyStamp = g_st->createdAt;
    g_st->gpus[i].busyStamp = g_st->createdAt;
    /* energy since "driver load": one hour at idle power */
    g_st->gpus[i].energyMj = (double)sim_model_at(g_st->gpus[i].model)->powerIdleMw * 3600.0;
  }
  sim_seal();
}

static const char *verify(const sim_state *st) {
  if (st->magic != SIM_MAGIC) return "bad magic";
  if (st->layoutVersion != SIM_LAYOUT_VERSION) return "layout version differs";
  if (st->size != sizeof(sim_state)) return "size differs";
  if (st->gpuCount == 0 || st->gpuCount > SIM_MAX_GPUS) return "bad GPU count";
  if (st->checksum != identity_checksum(st)) return "checksum mismatch";
  return NULL;
}

int sim_attach(void) {
  if (g_st) return NVML_SUCCESS;
  const char *path = sim_state_file();
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "nvml-sim: cannot open state file %s: %s\n", path, strerror(errno));
    return errno == EACCES ? NVML_ERROR_NO_PERMISSION : NVML_ERROR_DRIVER_NOT_LOADED;
  }
  if (flock(fd, LOCK_EX) != 0) {
    close(fd);
    return NVML_ERROR_UNKNOWN;
  }
  struct stat sb;
  int fresh = 0;
  if (fstat(fd, &sb) != 0 || (size_t)sb.st_size != sizeof(sim_state)) {
    if (sb.st_size != 0)
      fprintf(stderr, "nvml-sim: state file %s has %lld bytes, expected %zu; recreating it\n", path,
              (long long)sb.st_size, sizeof(sim_state));
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, sizeof(sim_state)) != 0) {
      flock(fd, LOCK_UN);
      close(fd);
      return NVML_ERROR_OPERATING_SYSTEM;
    }
    fresh = 1;
  }
  void *mem = mmap(NULL, sizeof(sim_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    flock(fd, LOCK_UN);
    close(fd);
    return NVML_ERROR_OPERATING_SYSTEM;
  }
  g_st = mem;
  g_fd = fd;
  const char *why = fresh ? "new" : verify(g_st);
  if (why) {
    if (!fresh) fprintf(stderr, "nvml-sim: state file %s rejected (%s); recreating it\n", path, why);
    const char *preset = getenv("TESSERA_SIM_PRESET");
    sim_state_reset(preset && *preset ? preset : "dgx-h100");
    msync(g_st, sizeof *g_st, MS_SYNC);
  }
  flock(fd, LOCK_UN);
  return NVML_SUCCESS;
}

void sim_detach(void) {
  if (!g_st) return;
  munmap(g_st, sizeof(sim_state));
  close(g_fd);
  g_st = NULL;
  g_fd = -1;
}

int sim_lock(int exclusive) {
  if (g_lock_depth++ > 0) return 2;
  pthread_mutex_lock(&g_mutex);
  if (flock(g_fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
    pthread_mutex_unlock(&g_mutex);
    g_lock_depth--;
    return 0;
  }
  return 1;
}

void sim_unlock(int *held) {
  if (!*held) return;
  if (--g_lock_depth == 0) {
    flock(g_fd, LOCK_UN);
    pthread_mutex_unlock(&g_mutex);
  }
  *held = 0;
}

void sim_latency_apply(const char *function) {
  unsigned micros = 0;
  for (int i = 0; i < SIM_MAX_LATENCY; i++) {
    const sim_latency *l = &g_st->latency[i];
    if (!l->function[0]) continue;
    if (strcmp(l->function, "*") == 0 || strcmp(l->function, function) == 0)
      if (l->micros > micros) micros = l->micros;
  }
  if (micros) usleep(micros);
}

/* ---- handles ------------------------------------------------------------
 * Every handle is a pointer into one process-local pool, so a handle can be
 * validated by address. GI/CI/MIG handles remember the serial of the
 * instance they were made for: after a destroy (and even a re-create with the
 * same id) the old handle is stale and rejected. */
#define POOL_SIZE 8192
static sim_handle g_pool[POOL_SIZE];
static unsigned g_pool_next = SIM_MAX_GPUS;
static sim_handle *g_cache[SIM_MAX_GPUS][SIM_GI_ID_LIMIT][SIM_CI_ID_LIMIT + 1][3];

static sim_handle *cached(unsigned kind, unsigned gpu, unsigned gi, unsigned ci, unsigned long long giSerial,
                          unsigned long long ciSerial) {
  unsigned slot = kind == H_GI ? 0 : kind == H_CI ? 1 : 2;
  unsigned ciIdx = kind == H_GI ? SIM_CI_ID_LIMIT : ci;
  sim_handle **c = &g_cache[gpu][gi][ciIdx][slot];
  if (*c && (*c)->giSerial == giSerial && (*c)->ciSerial == ciSerial) return *c;
  if (g_pool_next >= POOL_SIZE) g_pool_next = SIM_MAX_GPUS; /* handles may be reused, as NVML documents */
  sim_handle *h = &g_pool[g_pool_next++];
  *h = (sim_handle){kind, gpu, gi, ci, giSerial, ciSerial};
  *c = h;
  return h;
}

nvmlDevice_t sim_gpu_handle(unsigned gpu) {
  g_pool[gpu] = (sim_handle){H_GPU, gpu, SIM_NONE, SIM_NONE, 0, 0};
  return (nvmlDevice_t)&g_pool[gpu];
}
nvmlDevice_t sim_mig_handle(unsigned gpu, const sim_gi *gi, const sim_ci *ci) {
  return (nvmlDevice_t)cached(H_MIG, gpu, gi->id, ci->id, gi->serial, ci->serial);
}
nvmlGpuInstance_t sim_gi_handle(unsigned gpu, const sim_gi *gi) {
  return (nvmlGpuInstance_t)cached(H_GI, gpu, gi->id, 0, gi->serial, 0);
}
nvmlComputeInstance_t sim_ci_handle(unsigned gpu, const sim_gi *gi, const sim_ci *ci) {
  return (nvmlComputeInstance_t)cached(H_CI, gpu, gi->id, ci->id, gi->serial, ci->serial);
}

const sim_handle *sim_handle_check(const void *p) {
  const char *c = p, *base = (const char *)g_pool;
  if (!p || c < base || c >= base + sizeof g_pool || (size_t)(c - base) % sizeof(sim_handle)) return NULL;
  const sim_handle *h = p;
  return h->kind ? h : NULL;
}

static sim_gi *find_gi(sim_gpu *g, unsigned id, unsigned long long serial) {
  for (int i = 0; i < SIM_MAX_GI; i++)
    if (g->gis[i].used && g->gis[i].id == id && g->gis[i].serial == serial) return &g->gis[i];
  return NULL;
}
static sim_ci *find_ci(sim_gi *gi, unsigned id, unsigned long long serial) {
  for (int i = 0; i < SIM_MAX_CI; i++)
    if (gi->cis[i].used && gi->cis[i].id == id && gi->cis[i].serial == serial) return &gi->cis[i];
  return NULL;
}

static nvmlReturn_t resolve(const void *p, unsigned wantKind, sim_ref *r) {
  const sim_handle *h = sim_handle_check(p);
  if (!h || h->gpu >= g_st->gpuCount) return NVML_ERROR_INVALID_ARGUMENT;
  memset(r, 0, sizeof *r);
  r->gpu = h->gpu;
  r->g = &g_st->gpus[h->gpu];
  r->m = sim_model_at(r->g->model);
  if (r->g->lost) return NVML_ERROR_GPU_IS_LOST;
  if (wantKind == H_GPU && h->kind != H_GPU && h->kind != H_MIG) return NVML_ERROR_INVALID_ARGUMENT;
  if (wantKind != H_GPU && h->kind != wantKind) return NVML_ERROR_INVALID_ARGUMENT;
  if (h->kind == H_GPU) return NVML_SUCCESS;
  r->gi = find_gi(r->g, h->gi, h->giSerial);
  if (!r->gi) return NVML_ERROR_INVALID_ARGUMENT; /* stale: instance destroyed */
  if (h->kind == H_GI) return NVML_SUCCESS;
  r->ci = find_ci(r->gi, h->ci, h->ciSerial);
  if (!r->ci) return NVML_ERROR_INVALID_ARGUMENT;
  r->isMig = h->kind == H_MIG;
  return NVML_SUCCESS;
}

nvmlReturn_t sim_resolve_device(nvmlDevice_t d, sim_ref *r) { return resolve(d, H_GPU, r); }
nvmlReturn_t sim_resolve_gpu(nvmlDevice_t d, sim_ref *r) {
  nvmlReturn_t rc = resolve(d, H_GPU, r);
  if (rc == NVML_SUCCESS && r->isMig) return NVML_ERROR_INVALID_ARGUMENT;
  return rc;
}
nvmlReturn_t sim_resolve_gi(nvmlGpuInstance_t h, sim_ref *r) { return resolve(h, H_GI, r); }
nvmlReturn_t sim_resolve_ci(nvmlComputeInstance_t h, sim_ref *r) { return resolve(h, H_CI, r); }
