/* Compile-time checks that our struct layouts are NVML's (x86-64,
 * reference/nvml.md §1.1). A mismatch fails the build. */
#include <stddef.h>

#include "sim-internal.h"

#define CHECK_SIZE(T, n) _Static_assert(sizeof(T) == (n), #T " size")
#define CHECK_OFF(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f " offset")

CHECK_SIZE(nvmlPciInfo_t, 68);
CHECK_OFF(nvmlPciInfo_t, domain, 16);
CHECK_OFF(nvmlPciInfo_t, pciSubSystemId, 32);
CHECK_OFF(nvmlPciInfo_t, busId, 36);
CHECK_SIZE(nvmlMemory_t, 24);
CHECK_SIZE(nvmlMemory_v2_t, 40);
CHECK_OFF(nvmlMemory_v2_t, total, 8);
CHECK_OFF(nvmlMemory_v2_t, used, 32);
_Static_assert(nvmlMemory_v2 == 0x02000028, "nvmlMemory_v2");
CHECK_SIZE(nvmlUtilization_t, 8);
CHECK_SIZE(nvmlProcessInfo_t, 24);
CHECK_OFF(nvmlProcessInfo_t, usedGpuMemory, 8);
CHECK_OFF(nvmlProcessInfo_t, gpuInstanceId, 16);
CHECK_OFF(nvmlProcessInfo_t, computeInstanceId, 20);
CHECK_SIZE(nvmlTemperature_v1_t, 12);
_Static_assert(nvmlTemperature_v1 == 0x0100000C, "nvmlTemperature_v1");
CHECK_SIZE(nvmlGpuInstancePlacement_t, 8);
CHECK_SIZE(nvmlGpuInstanceProfileInfo_t, 48);
CHECK_OFF(nvmlGpuInstanceProfileInfo_t, memorySizeMB, 40);
CHECK_SIZE(nvmlGpuInstanceProfileInfo_v2_t, 152);
CHECK_OFF(nvmlGpuInstanceProfileInfo_v2_t, memorySizeMB, 48);
CHECK_OFF(nvmlGpuInstanceProfileInfo_v2_t, name, 56);
_Static_assert(nvmlGpuInstanceProfileInfo_v2 == 0x02000098, "GI profile v2");
CHECK_SIZE(nvmlGpuInstanceProfileInfo_v3_t, 152);
CHECK_OFF(nvmlGpuInstanceProfileInfo_v3_t, memorySizeMB, 40);
CHECK_OFF(nvmlGpuInstanceProfileInfo_v3_t, name, 48);
CHECK_OFF(nvmlGpuInstanceProfileInfo_v3_t, capabilities, 144);
_Static_assert(nvmlGpuInstanceProfileInfo_v3 == 0x03000098, "GI profile v3");
CHECK_SIZE(nvmlGpuInstanceInfo_t, 24);
CHECK_OFF(nvmlGpuInstanceInfo_t, placement, 16);
CHECK_SIZE(nvmlComputeInstanceProfileInfo_t, 36);
CHECK_SIZE(nvmlComputeInstanceProfileInfo_v2_t, 136);
CHECK_OFF(nvmlComputeInstanceProfileInfo_v2_t, name, 40);
_Static_assert(nvmlComputeInstanceProfileInfo_v2 == 0x02000088, "CI profile v2");
CHECK_SIZE(nvmlComputeInstanceProfileInfo_v3_t, 140);
CHECK_OFF(nvmlComputeInstanceProfileInfo_v3_t, capabilities, 136);
_Static_assert(nvmlComputeInstanceProfileInfo_v3 == 0x0300008C, "CI profile v3");
CHECK_SIZE(nvmlComputeInstanceInfo_t, 32);
CHECK_OFF(nvmlComputeInstanceInfo_t, id, 16);
CHECK_OFF(nvmlComputeInstanceInfo_t, placement, 24);
CHECK_SIZE(nvmlDeviceAttributes_t, 40);
CHECK_OFF(nvmlDeviceAttributes_t, memorySizeMB, 32);
CHECK_SIZE(nvmlEventData_t, 32);
CHECK_OFF(nvmlEventData_t, eventData, 16);
CHECK_OFF(nvmlEventData_t, gpuInstanceId, 24);
CHECK_SIZE(nvmlValue_t, 8);
CHECK_SIZE(nvmlFieldValue_t, 40);
CHECK_OFF(nvmlFieldValue_t, valueType, 24);
CHECK_OFF(nvmlFieldValue_t, nvmlReturn, 28);
CHECK_OFF(nvmlFieldValue_t, value, 32);
CHECK_SIZE(nvmlGpmMetric_t, 40);
CHECK_SIZE(nvmlGpmMetricsGet_t, 3944);
CHECK_SIZE(nvmlGpmSupport_t, 8);
CHECK_SIZE(nvmlBAR1Memory_t, 24);
