/* GPU models and host presets. Values from shared/reference/nvml.md (§4 MIG
 * profile tables, §8 real telemetry) and shared/reference/hosts.md (bus ids,
 * NUMA). Values the reference marks as inferred are noted inline. */
#include <stdio.h>
#include <string.h>

#include "sim-internal.h"

#define ALL7 7, {0, 1, 2, 3, 4, 5, 6}
#define EVEN4 4, {0, 2, 4, 6}
#define EVEN3 3, {0, 2, 4}
#define HALF2 2, {0, 4}
#define ONE0 1, {0}

/* {index, id, g, memSlices, starts, max, sm, ce, dec, enc, jpeg, ofa, MiB, suffix} */
static const sim_model MODELS[] = {
    {"h100-sxm", "NVIDIA H100 80GB HBM3", 0x233010DE, 0x16C110DE, 81559, 480, 131072, NVML_DEVICE_ARCH_HOPPER, 9, 0,
     132, 8, 700000, 200000, 700000, 68900, 1980, 2619, 1545, 345, 765, 92, 89, 95, 87, 5, 16, 7,
     {{0, 19, 1, 1, ALL7, 7, 16, 1, 1, 0, 1, 0, 9984, ""},
      {7, 20, 1, 1, ALL7, 1, 16, 1, 1, 0, 1, 1, 9984, "+me"},
      {9, 15, 1, 2, EVEN4, 4, 26, 1, 1, 0, 1, 0, 20096, ""},
      {1, 14, 2, 2, EVEN3, 3, 32, 2, 2, 0, 2, 0, 20096, ""},
      {2, 9, 3, 4, HALF2, 2, 60, 3, 3, 0, 3, 0, 40448, ""},
      {3, 5, 4, 4, ONE0, 1, 64, 4, 4, 0, 4, 0, 40448, ""},
      {4, 0, 7, 8, ONE0, 1, 132, 8, 7, 0, 7, 1, 81152, ""}}},
    {"a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", 0x20B010DE, 0x134F10DE, 40960, 518, 65536, NVML_DEVICE_ARCH_AMPERE, 8,
     0, 108, 8, 400000, 100000, 400000, 49680, 1410, 1215, 1290, 210, 585, 92, 89, 95, 85, 4, 16, 7,
     {{0, 19, 1, 1, ALL7, 7, 14, 1, 0, 0, 0, 0, 4864, ""},
      {7, 20, 1, 1, ALL7, 1, 14, 1, 1, 0, 1, 1, 4864, "+me"},
      {9, 15, 1, 2, EVEN4, 4, 14, 1, 1, 0, 0, 0, 9856, ""},
      {1, 14, 2, 2, EVEN3, 3, 28, 2, 1, 0, 0, 0, 9856, ""},
      {2, 9, 3, 4, HALF2, 2, 42, 3, 2, 0, 0, 0, 19968, ""},
      {3, 5, 4, 4, ONE0, 1, 56, 4, 2, 0, 0, 0, 19968, ""},
      {4, 0, 7, 8, ONE0, 1, 98, 7, 5, 0, 1, 1, 40192, ""}}},
    /* A100 80GB PCIe: MIG table as A100-80GB in the reference; clocks and power from its datasheet class. */
    {"a100-pcie-80gb", "NVIDIA A100 80GB PCIe", 0x20B510DE, 0x153310DE, 81920, 542, 131072, NVML_DEVICE_ARCH_AMPERE, 8,
     0, 108, 8, 300000, 150000, 300000, 45000, 1410, 1512, 1290, 210, 585, 92, 89, 95, 85, 4, 16, 7,
     {{0, 19, 1, 1, ALL7, 7, 14, 1, 0, 0, 0, 0, 9728, ""},
      {7, 20, 1, 1, ALL7, 1, 14, 1, 1, 0, 1, 1, 9728, "+me"},
      {9, 15, 1, 2, EVEN4, 4, 14, 1, 1, 0, 0, 0, 19968, ""},
      {1, 14, 2, 2, EVEN3, 3, 28, 2, 1, 0, 0, 0, 19968, ""},
      {2, 9, 3, 4, HALF2, 2, 42, 3, 2, 0, 0, 0, 40192, ""},
      {3, 5, 4, 4, ONE0, 1, 56, 4, 2, 0, 0, 0, 40192, ""},
      {4, 0, 7, 8, ONE0, 1, 98, 7, 5, 0, 1, 1, 81152, ""}}},
    /* H100 PCIe (114 SMs): SM counts per profile are inferred in proportion; memory as H100-80GB. */
    {"h100-pcie", "NVIDIA H100 PCIe", 0x233110DE, 0x162610DE, 81559, 480, 131072, NVML_DEVICE_ARCH_HOPPER, 9, 0, 114,
     8, 350000, 200000, 350000, 48000, 1755, 1593, 1545, 345, 765, 92, 89, 95, 87, 5, 16, 7,
     {{0, 19, 1, 1, ALL7, 7, 14, 1, 1, 0, 1, 0, 9984, ""},
      {7, 20, 1, 1, ALL7, 1, 14, 1, 1, 0, 1, 1, 9984, "+me"},
      {9, 15, 1, 2, EVEN4, 4, 14, 1, 1, 0, 1, 0, 20096, ""},
      {1, 14, 2, 2, EVEN3, 3, 28, 2, 2, 0, 2, 0, 20096, ""},
      {2, 9, 3, 4, HALF2, 2, 42, 3, 3, 0, 3, 0, 40448, ""},
      {3, 5, 4, 4, ONE0, 1, 56, 4, 4, 0, 4, 0, 40448, ""},
      {4, 0, 7, 8, ONE0, 1, 114, 8, 7, 0, 7, 1, 81152, ""}}},
    /* H200: profile IDs as H100 (19/20/14/0 seen in a fixture); memory per profile chosen to give NVIDIA's names. */
    {"h200", "NVIDIA H200", 0x233510DE, 0x18A610DE, 143771, 620, 262144, NVML_DEVICE_ARCH_HOPPER, 9, 0, 132, 8, 700000,
     200000, 700000, 75000, 1980, 3201, 1545, 345, 765, 92, 89, 95, 87, 5, 16, 7,
     {{0, 19, 1, 1, ALL7, 7, 16, 1, 1, 0, 1, 0, 17152, ""},
      {7, 20, 1, 1, ALL7, 1, 16, 1, 1, 0, 1, 1, 17152, "+me"},
      {9, 15, 1, 2, EVEN4, 4, 26, 1, 1, 0, 1, 0, 34560, ""},
      {1, 14, 2, 2, EVEN3, 3, 32, 2, 2, 0, 2, 0, 34560, ""},
      {2, 9, 3, 4, HALF2, 2, 60, 3, 3, 0, 3, 0, 69632, ""},
      {3, 5, 4, 4, ONE0, 1, 64, 4, 4, 0, 4, 0, 69632, ""},
      {4, 0, 7, 8, ONE0, 1, 132, 8, 7, 0, 7, 1, 140288, ""}}},
    {"a30", "NVIDIA A30", 0x20B710DE, 0x153210DE, 24576, 460, 32768, NVML_DEVICE_ARCH_AMPERE, 8, 0, 56, 4, 165000,
     100000, 165000, 31000, 1440, 1215, 1170, 210, 555, 90, 87, 95, 85, 4, 16, 5,
     {{0, 14, 1, 1, 4, {0, 1, 2, 3}, 4, 14, 1, 1, 0, 0, 0, 5952, ""},
      {7, 21, 1, 1, 4, {0, 1, 2, 3}, 1, 14, 1, 1, 0, 1, 1, 5952, "+me"},
      {1, 5, 2, 2, 2, {0, 2}, 2, 28, 2, 2, 0, 0, 0, 11968, ""},
      {8, 6, 2, 2, 2, {0, 2}, 1, 28, 2, 2, 0, 1, 1, 11968, "+me"},
      {3, 0, 4, 4, ONE0, 1, 56, 4, 4, 0, 1, 1, 24064, ""}}},
};
#define N_MODELS (sizeof(MODELS) / sizeof(MODELS[0]))

const sim_model *sim_model_at(unsigned i) { return i < N_MODELS ? &MODELS[i] : NULL; }

typedef struct {
  const char *model;
  unsigned bus, numa, pciSwitch;
} slot_def;

typedef struct {
  const char *name;
  unsigned count;
  slot_def slots[SIM_MAX_GPUS];
} preset_def;

/* Bus ids must match test/fixtures sysfs trees (reference/hosts.md). */
static const preset_def PRESETS[] = {
    {"dgx-h100",
     8,
     {{"h100-sxm", 0x1B, 0, 0},
      {"h100-sxm", 0x43, 0, 1},
      {"h100-sxm", 0x52, 0, 2},
      {"h100-sxm", 0x61, 0, 3},
      {"h100-sxm", 0x9D, 1, 4},
      {"h100-sxm", 0xC3, 1, 5},
      {"h100-sxm", 0xD1, 1, 6},
      {"h100-sxm", 0xDF, 1, 7}}},
    {"dgx-a100",
     8,
     {{"a100-sxm4-40gb", 0x07, 0, 0},
      {"a100-sxm4-40gb", 0x0F, 0, 1},
      {"a100-sxm4-40gb", 0x47, 0, 2},
      {"a100-sxm4-40gb", 0x4E, 0, 3},
      {"a100-sxm4-40gb", 0x87, 1, 4},
      {"a100-sxm4-40gb", 0x90, 1, 5},
      {"a100-sxm4-40gb", 0xB7, 1, 6},
      {"a100-sxm4-40gb", 0xBD, 1, 7}}},
    {"hgx-h200",
     8,
     {{"h200", 0x1B, 0, 0},
      {"h200", 0x43, 0, 1},
      {"h200", 0x52, 0, 2},
      {"h200", 0x61, 0, 3},
      {"h200", 0x9D, 1, 4},
      {"h200", 0xC3, 1, 5},
      {"h200", 0xD1, 1, 6},
      {"h200", 0xDF, 1, 7}}},
    {"a30x4", 4, {{"a30", 0x17, 0, 0}, {"a30", 0x65, 0, 1}, {"a30", 0xCA, 1, 2}, {"a30", 0xE3, 1, 3}}},
    {"mixed", 3, {{"a100-pcie-80gb", 0x17, 0, 0}, {"h100-pcie", 0x65, 0, 1}, {"a30", 0xCA, 1, 2}}},
};
#define N_PRESETS (sizeof(PRESETS) / sizeof(PRESETS[0]))

const char *sim_preset_names(void) { return "dgx-h100,dgx-a100,hgx-h200,a30x4,mixed"; }

static unsigned long long fnv1a(const char *s, unsigned long long h) {
  if (!h) h = 1469598103934665603ULL;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

int sim_preset_build(const char *name, sim_state *st) {
  const preset_def *p = NULL;
  for (unsigned i = 0; i < N_PRESETS; i++)
    if (strcmp(PRESETS[i].name, name) == 0) p = &PRESETS[i];
  if (!p) return -1;
  snprintf(st->preset, sizeof st->preset, "%s", name);
  st->gpuCount = p->count;
  for (unsigned i = 0; i < p->count; i++) {
    sim_gpu *g = &st->gpus[i];
    memset(g, 0, sizeof *g);
    for (unsigned m = 0; m < N_MODELS; m++)
      if (strcmp(MODELS[m].key, p->slots[i].model) == 0) g->model = m;
    char key[96];
    snprintf(key, sizeof key, "%s/%u/%u", name, i, p->slots[i].bus);
    unsigned long long a = fnv1a(key, 0), b = fnv1a("uuid", a), c = fnv1a("serial", b);
    snprintf(g->uuid, sizeof g->uuid, "GPU-%08llx-%04llx-%04llx-%04llx-%012llx", a >> 32, (a >> 16) & 0xffff,
             (0x4000 | (a & 0x0fff)), (0x8000 | (b >> 52 & 0x3fff)), b & 0xffffffffffffULL);
    snprintf(g->serial, sizeof g->serial, "16%011llu", c % 100000000000ULL);
    g->domain = 0;
    g->bus = p->slots[i].bus;
    g->device = 0;
    g->minor = i;
    g->numa = p->slots[i].numa;
    g->pciSwitch = p->slots[i].pciSwitch;
    g->tempOverride = -1;
    g->throttleOverride = ~0ULL;
  }
  return 0;
}
