/* The floor for bench/nvml-sweep: the same NVML calls as one telemetry
 * sweep, made from C against the same library. Prints the median
 * microseconds per sweep. Usage: nvml-sweep-floor ITERATIONS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nvml.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Mirrors the TypeScript sweep call for call: the binding's getters make
 * these exact NVML calls (ECC: 4 counters, PCIe: current and max, processes:
 * a count query first). */
static unsigned procs_query(nvmlDevice_t d, nvmlProcessInfo_t *procs) {
  unsigned n = 0;
  nvmlReturn_t rc = nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL);
  if (rc != NVML_ERROR_INSUFFICIENT_SIZE) return 1;
  n += 8;
  nvmlDeviceGetComputeRunningProcesses_v3(d, &n, procs);
  return 2;
}

static unsigned sweep(unsigned count, nvmlDevice_t *gpus) {
  unsigned calls = 0, u;
  unsigned long long ull;
  nvmlMemory_v2_t mem;
  nvmlUtilization_t util;
  nvmlTemperature_t temp;
  nvmlProcessInfo_t procs[64];
  nvmlFieldValue_t fv[1];
  for (unsigned i = 0; i < count; i++) {
    nvmlDevice_t d = gpus[i];
    mem.version = nvmlMemory_v2;
    nvmlDeviceGetMemoryInfo_v2(d, &mem);
    nvmlDeviceGetUtilizationRates(d, &util);
    temp.version = nvmlTemperature_v1;
    temp.sensorType = NVML_TEMPERATURE_GPU;
    nvmlDeviceGetTemperatureV(d, &temp);
    nvmlDeviceGetPowerUsage(d, &u);
    nvmlDeviceGetEnforcedPowerLimit(d, &u);
    nvmlDeviceGetTotalEnergyConsumption(d, &ull);
    for (int c = 0; c < 4; c++) nvmlDeviceGetClockInfo(d, (nvmlClockType_t)c, &u);
    nvmlDeviceGetCurrentClocksEventReasons(d, &ull);
    for (int t = 0; t < 2; t++)
      for (int e = 0; e < 2; e++)
        nvmlDeviceGetTotalEccErrors(d, (nvmlMemoryErrorType_t)e, (nvmlEccCounterType_t)t, &ull);
    nvmlDeviceGetCurrPcieLinkGeneration(d, &u);
    nvmlDeviceGetCurrPcieLinkWidth(d, &u);
    nvmlDeviceGetMaxPcieLinkGeneration(d, &u);
    nvmlDeviceGetMaxPcieLinkWidth(d, &u);
    fv[0].fieldId = NVML_FI_DEV_PCIE_REPLAY_COUNTER;
    nvmlDeviceGetFieldValues(d, 1, fv);
    calls += 22 + procs_query(d, procs);
    unsigned cur, pend;
    nvmlDeviceGetMigMode(d, &cur, &pend);
    unsigned max = 0;
    nvmlDeviceGetMaxMigDeviceCount(d, &max);
    calls += 2;
    for (unsigned k = 0; k < max; k++) {
      nvmlDevice_t m;
      calls++;
      if (nvmlDeviceGetMigDeviceHandleByIndex(d, k, &m) != NVML_SUCCESS) continue;
      mem.version = nvmlMemory_v2;
      nvmlDeviceGetMemoryInfo_v2(m, &mem);
      calls += 1 + procs_query(m, procs);
    }
  }
  return calls;
}

int main(int argc, char **argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 2000;
  if (nvmlInit_v2() != NVML_SUCCESS) {
    fprintf(stderr, "nvmlInit_v2 failed\n");
    return 1;
  }
  unsigned count = 0;
  nvmlDeviceGetCount_v2(&count);
  nvmlDevice_t gpus[16];
  for (unsigned i = 0; i < count && i < 16; i++) nvmlDeviceGetHandleByIndex_v2(i, &gpus[i]);
  unsigned calls = 0;
  for (int i = 0; i < 50; i++) calls = sweep(count, gpus);
  double *t = malloc(sizeof(double) * iterations);
  for (int i = 0; i < iterations; i++) {
    double a = now_us();
    sweep(count, gpus);
    t[i] = now_us() - a;
  }
  qsort(t, iterations, sizeof(double), cmp);
  printf("{\"medianUs\":%.2f,\"p99Us\":%.2f,\"callsPerSweep\":%u,\"iterations\":%d}\n", t[iterations / 2],
         t[(int)(iterations * 0.99)], calls, iterations);
  nvmlShutdown();
  return 0;
}
