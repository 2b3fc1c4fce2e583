#!/usr/bin/env python3
"""Dumps what NVIDIA's own Python binding (pynvml, package nvidia-ml-py) reports, as JSON on stdout.

Read-only: only nvmlInit/nvmlShutdown and Get* queries are called (call() refuses anything else).
An NVML failure is recorded in place of the value as {"error": "NOT_SUPPORTED", "code": 3}, so
that the comparison can say why a value is missing. Used by scripts/gpu-check/run.sh.
"""

import ctypes
import json
import re
import sys

# Profile indices to ask about: the header's NVML_GPU_INSTANCE_PROFILE_COUNT is 0x12 in 13.2+;
# a few more show what a newer driver answers for indices this header does not know.
GI_PROFILE_INDICES = range(0, 0x14)
MAX_PLACEMENTS = 32
MAX_INSTANCES = 32
# Only queries may be called: init/shutdown and getters, nothing that sets, creates, destroys or resets.
ALLOWED = re.compile(r"nvml(Init|Shutdown|(Device|System|GpuInstance)Get\w+)")
FORBIDDEN = re.compile(r"Set|Create|Destroy|Reset|Clear|Register|Modify|Apply")

try:
    import pynvml
except ImportError as err:  # no binding on this machine: say so in the output, exit non-zero
    json.dump({"fatal": f"cannot import pynvml: {err}"}, sys.stdout)
    sys.stdout.write("\n")
    sys.exit(2)

ERROR_NAMES = {
    getattr(pynvml, name): name[len("NVML_ERROR_"):]
    for name in dir(pynvml)
    if name.startswith("NVML_ERROR_") and isinstance(getattr(pynvml, name), int)
}


def text(value):
    """pynvml returns bytes in old versions and str in new ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return value


def failure(err):
    if isinstance(err, pynvml.NVMLError):
        code = getattr(err, "value", None)
        return {"error": ERROR_NAMES.get(code, f"NVML_{code}"), "code": code, "message": str(err)}
    return {"error": f"{type(err).__name__}: {err}"}


def call(name, *args, **kwargs):
    """Calls pynvml.<name>, returning the result or a failure record; never raises."""
    if not ALLOWED.fullmatch(name) or FORBIDDEN.search(name):
        raise RuntimeError(f"refusing to call {name}: this dump is read-only")
    fn = getattr(pynvml, name, None)
    if fn is None:
        return {"error": f"PYNVML_MISSING: pynvml {version()} has no {name}"}
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - every failure is data here
        return failure(err)


def failed(value):
    return isinstance(value, dict) and "error" in value


def version():
    return getattr(pynvml, "__version__", "unknown")


def const(name, default):
    return getattr(pynvml, name, default)


def struct_fields(value, names):
    if failed(value):
        return value
    return {n: text(getattr(value, n)) for n in names if hasattr(value, n)}


def memory(handle):
    v1 = struct_fields(call("nvmlDeviceGetMemoryInfo", handle), ["total", "free", "used"])
    v2_version = getattr(pynvml, "nvmlMemory_v2", None)
    if v2_version is None:
        v2 = {"error": f"PYNVML_MISSING: pynvml {version()} has no nvmlMemory_v2"}
    else:
        v2 = struct_fields(
            call("nvmlDeviceGetMemoryInfo", handle, version=v2_version), ["total", "reserved", "free", "used"]
        )
    return v1, v2


def num(value):
    """Old pynvml versions hand back ctypes integers."""
    return int(getattr(value, "value", value))


def pair(value, first, second):
    if failed(value):
        return value
    return {first: num(value[0]), second: num(value[1])}


def gi_profiles(handle):
    profiles = []
    for index in GI_PROFILE_INDICES:
        entry = {"index": index}
        info = call("nvmlDeviceGetGpuInstanceProfileInfo", handle, index)
        if failed(info) and info["error"] in ("FUNCTION_NOT_FOUND", "ARGUMENT_VERSION_MISMATCH"):
            info = call("nvmlDeviceGetGpuInstanceProfileInfo", handle, index, version=1)
        entry["info"] = struct_fields(
            info,
            [
                "id", "isP2pSupported", "sliceCount", "instanceCount", "multiprocessorCount",
                "copyEngineCount", "decoderCount", "encoderCount", "jpegCount", "ofaCount",
                "memorySizeMB", "name",
            ],
        )
        if not failed(info):
            entry["placements"] = placements(handle, info.id)
            capacity = call("nvmlDeviceGetGpuInstanceRemainingCapacity", handle, info.id)
            entry["remainingCapacity"] = capacity if failed(capacity) else num(capacity)
            entry["instances"] = gpu_instances(handle, info.id)
        profiles.append(entry)
    return profiles


def placements(handle, profile_id):
    array = (pynvml.c_nvmlGpuInstancePlacement_t * MAX_PLACEMENTS)()
    count = ctypes.c_uint(MAX_PLACEMENTS)
    ret = call("nvmlDeviceGetGpuInstancePossiblePlacements", handle, profile_id, array, ctypes.byref(count))
    if failed(ret):
        return ret
    return [{"start": array[i].start, "size": array[i].size} for i in range(count.value)]


def gpu_instances(handle, profile_id):
    array = (pynvml.c_nvmlGpuInstance_t * MAX_INSTANCES)()
    count = ctypes.c_uint(MAX_INSTANCES)
    ret = call("nvmlDeviceGetGpuInstances", handle, profile_id, array, ctypes.byref(count))
    if failed(ret):
        return ret
    out = []
    for i in range(count.value):
        info = call("nvmlGpuInstanceGetInfo", array[i])
        if failed(info):
            out.append(info)
        else:
            out.append({"id": info.id, "profileId": info.profileId,
                        "placement": {"start": info.placement.start, "size": info.placement.size}})
    return out


def mig_devices(handle, mig_mode, max_count):
    if failed(mig_mode):
        return mig_mode
    if mig_mode["current"] == 0:
        return []  # MIG off: no MIG devices, and nothing to ask
    if failed(max_count):
        return max_count
    devices = []
    for i in range(num(max_count)):
        mig = call("nvmlDeviceGetMigDeviceHandleByIndex", handle, i)
        if failed(mig):
            if mig.get("error") == "NOT_FOUND":
                continue  # holes are normal (reference/nvml.md §7)
            if mig.get("error") in ("NOT_SUPPORTED", "INVALID_ARGUMENT"):
                return mig
            devices.append({"index": i, **mig})
            continue
        devices.append({
            "index": i,
            "uuid": text(call("nvmlDeviceGetUUID", mig)),
            "name": text(call("nvmlDeviceGetName", mig)),
            "gpuInstanceId": call("nvmlDeviceGetGpuInstanceId", mig),
            "computeInstanceId": call("nvmlDeviceGetComputeInstanceId", mig),
        })
    return devices


def gpu(index):
    handle = call("nvmlDeviceGetHandleByIndex", index)
    if failed(handle):
        return {"index": index, "error": handle["error"], "handle": handle}
    pci = call("nvmlDeviceGetPciInfo", handle)
    mem_v1, mem_v2 = memory(handle)
    clocks = {}
    for key, const_name, default in (
        ("graphics", "NVML_CLOCK_GRAPHICS", 0),
        ("sm", "NVML_CLOCK_SM", 1),
        ("memory", "NVML_CLOCK_MEM", 2),
        ("video", "NVML_CLOCK_VIDEO", 3),
    ):
        clocks[key] = call("nvmlDeviceGetMaxClockInfo", handle, const(const_name, default))
    thresholds = {}
    for key, const_name, default in (
        ("shutdown", "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN", 0),
        ("slowdown", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1),
        ("memoryMax", "NVML_TEMPERATURE_THRESHOLD_MEM_MAX", 2),
        ("gpuMax", "NVML_TEMPERATURE_THRESHOLD_GPU_MAX", 3),
    ):
        thresholds[key] = call("nvmlDeviceGetTemperatureThreshold", handle, const(const_name, default))
    cc = call("nvmlDeviceGetCudaComputeCapability", handle)
    max_mig = call("nvmlDeviceGetMaxMigDeviceCount", handle)
    mig_mode = pair(call("nvmlDeviceGetMigMode", handle), "current", "pending")
    return {
        "index": index,
        "name": text(call("nvmlDeviceGetName", handle)),
        "uuid": text(call("nvmlDeviceGetUUID", handle)),
        "serial": text(call("nvmlDeviceGetSerial", handle)),
        "minorNumber": call("nvmlDeviceGetMinorNumber", handle),
        "pci": struct_fields(pci, ["busId", "busIdLegacy", "domain", "bus", "device", "pciDeviceId", "pciSubSystemId"]),
        "memory": mem_v1,
        "memoryV2": mem_v2,
        "maxClocksMHz": clocks,
        "powerLimitMilliwatts": call("nvmlDeviceGetPowerManagementLimit", handle),
        "enforcedPowerLimitMilliwatts": call("nvmlDeviceGetEnforcedPowerLimit", handle),
        "defaultPowerLimitMilliwatts": call("nvmlDeviceGetPowerManagementDefaultLimit", handle),
        "powerLimitConstraintsMilliwatts": pair(
            call("nvmlDeviceGetPowerManagementLimitConstraints", handle), "min", "max"
        ),
        "temperatureC": call("nvmlDeviceGetTemperature", handle, const("NVML_TEMPERATURE_GPU", 0)),
        "temperatureThresholdsC": thresholds,
        "migMode": mig_mode,
        "eccMode": pair(call("nvmlDeviceGetEccMode", handle), "current", "pending"),
        "pcie": {
            "maxGeneration": call("nvmlDeviceGetMaxPcieLinkGeneration", handle),
            "maxWidth": call("nvmlDeviceGetMaxPcieLinkWidth", handle),
            "currentGeneration": call("nvmlDeviceGetCurrPcieLinkGeneration", handle),
            "currentWidth": call("nvmlDeviceGetCurrPcieLinkWidth", handle),
            "gpuMaxGeneration": call("nvmlDeviceGetGpuMaxPcieLinkGeneration", handle),
        },
        "cudaComputeCapability": cc if failed(cc) else [num(cc[0]), num(cc[1])],
        "architecture": call("nvmlDeviceGetArchitecture", handle),
        "maxMigDeviceCount": max_mig,
        "migDevices": mig_devices(handle, mig_mode, max_mig),
        "migProfiles": gi_profiles(handle),
    }


def main():
    init = call("nvmlInit")
    if failed(init):
        json.dump({"fatal": f"nvmlInit failed: {init['error']}", "init": init, "pynvmlVersion": version()}, sys.stdout)
        sys.stdout.write("\n")
        return 1
    try:
        count = call("nvmlDeviceGetCount")
        cuda = call("nvmlSystemGetCudaDriverVersion_v2")
        if failed(cuda):
            cuda = call("nvmlSystemGetCudaDriverVersion")
        dump = {
            "tool": "pynvml",
            "pynvmlVersion": version(),
            "driverVersion": text(call("nvmlSystemGetDriverVersion")),
            "nvmlVersion": text(call("nvmlSystemGetNVMLVersion")),
            "cudaDriverVersion": cuda,
            "deviceCount": count,
            "gpus": [] if failed(count) else [gpu(i) for i in range(num(count))],
        }
    finally:
        call("nvmlShutdown")
    json.dump(dump, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
