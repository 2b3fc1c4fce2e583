/*
 * Control functions of the simulated driver. They are exported from the
 * same shared object as the NVML symbols and act on the shared state file,
 * so a test harness or `tessera sim` in one process changes what the agent
 * in another process sees. All return an nvmlReturn_t code.
 * TSIM_NONE stands for "no GPU/compute instance" (whole-GPU scope).
 */
#ifndef TESSERA_TSIM_H
#define TESSERA_TSIM_H
#include "nvml.h"

#define TSIM_NONE 0xFFFFFFFFu

/* Replace the whole simulated host with a preset ("dgx-h100", "dgx-a100",
 * "hgx-h200", "a30x4", "mixed"). Destroys all state. */
NVML_API nvmlReturn_t tsim_select_preset(const char *name);
/* Current preset name into buf. */
NVML_API nvmlReturn_t tsim_get_preset(char *buf, unsigned int length);
/* Comma-separated preset names into buf. */
NVML_API nvmlReturn_t tsim_list_presets(char *buf, unsigned int length);
/* Path of the state file in use into buf (works before nvmlInit). */
NVML_API nvmlReturn_t tsim_state_path(char *buf, unsigned int length);
/* Seed for the deterministic telemetry noise. */
NVML_API nvmlReturn_t tsim_set_seed(unsigned int seed);

/* A simulated GPU reset: applies a pending MIG mode, destroys every GPU and
 * compute instance, ends the GPU's processes, clears volatile ECC counters
 * and the lost flag. */
NVML_API nvmlReturn_t tsim_reset_gpu(unsigned int gpu);
/* Queue an XID event on a GPU (gi = TSIM_NONE) or a GPU instance. */
NVML_API nvmlReturn_t tsim_inject_xid(unsigned int gpu, unsigned int gpuInstanceId, unsigned long long xid);
/* Set ECC error counters; adding to volatile double-bit counts raises a
 * DoubleBitEccError event, single-bit a SingleBitEccError event. */
NVML_API nvmlReturn_t tsim_set_ecc(unsigned int gpu, unsigned long long sbeVolatile, unsigned long long dbeVolatile,
                                   unsigned long long sbeAggregate, unsigned long long dbeAggregate);
/* Row remapping state (Ampere+) and retired pages (pre-Ampere style). */
NVML_API nvmlReturn_t tsim_set_remapped_rows(unsigned int gpu, unsigned int corrected, unsigned int uncorrected,
                                             unsigned int pending, unsigned int failure);
NVML_API nvmlReturn_t tsim_set_retired_pages(unsigned int gpu, unsigned int sbePages, unsigned int dbePages,
                                             unsigned int pending);
/* Lose (1) or recover (0) a GPU: every call on it returns GPU_IS_LOST. */
NVML_API nvmlReturn_t tsim_set_lost(unsigned int gpu, unsigned int lost);
/* Override temperature (°C), power (mW) or clock event reasons; a negative
 * temperature, power 0 or reasons ~0ULL return to load-following values. */
NVML_API nvmlReturn_t tsim_set_temperature(unsigned int gpu, int celsius);
NVML_API nvmlReturn_t tsim_set_power(unsigned int gpu, unsigned int milliwatts);
NVML_API nvmlReturn_t tsim_set_throttle(unsigned int gpu, unsigned long long reasons);
/* Current PCIe link (downgrade simulation); 0 returns to the maximum. */
NVML_API nvmlReturn_t tsim_set_pcie_link(unsigned int gpu, unsigned int generation, unsigned int width);
/* Add a PCIe replay count. */
NVML_API nvmlReturn_t tsim_add_pcie_replays(unsigned int gpu, unsigned long long count);

/* Start a simulated compute process on a whole GPU (gi = ci = TSIM_NONE)
 * or on a MIG device (gi, ci). memoryMiB of framebuffer, smPercent of the
 * device's SMs busy (0..100). The new pid is written to *pid. */
NVML_API nvmlReturn_t tsim_process_start(unsigned int gpu, unsigned int gpuInstanceId, unsigned int computeInstanceId,
                                         unsigned long long memoryMiB, unsigned int smPercent, const char *name,
                                         unsigned int *pid);
NVML_API nvmlReturn_t tsim_process_stop(unsigned int pid);

/* Add latency to NVML calls: function name, or "*" for every call. 0 removes it. */
NVML_API nvmlReturn_t tsim_set_latency(const char *function, unsigned int microseconds);

/* Simulated blocking clients for MIG mode changes on Ampere (count of
 * processes that keep a mode change pending: "In use by another client"). */
NVML_API nvmlReturn_t tsim_set_mig_blockers(unsigned int gpu, unsigned int count);

#endif
