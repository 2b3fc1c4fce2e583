import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import koffi from "koffi";
import { NvmlError, NvmlLibraryNotFoundError } from "../../src/nvml/errors.js";
import { openNvml } from "../../src/nvml/library.js";
import {
  DRIVER_LIBRARY_DIRS,
  loadNvmlLibrary,
  NVML_SONAME,
  nvmlLibraryCandidates,
  packageRoot,
  simulatorLibraryPath,
} from "../../src/nvml/loader.js";

describe("NVML library search", () => {
  it("tries the soname through the dynamic loader first, then the driver folders", () => {
    const candidates = nvmlLibraryCandidates({ env: {} });
    assert.equal(candidates[0], NVML_SONAME);
    for (const dir of ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib", "/usr/local/nvidia/lib64"]) {
      assert.ok(candidates.includes(join(dir, NVML_SONAME)), `${dir} is searched`);
    }
    assert.ok(candidates.includes("/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"));
    assert.equal(candidates.length, 1 + DRIVER_LIBRARY_DIRS.length);
  });

  it("uses only an explicit path: parameter over TESSERA_NVML_LIBRARY over the search", () => {
    const env = { TESSERA_NVML_LIBRARY: "/opt/from-env.so" };
    assert.deepEqual(nvmlLibraryCandidates({ env }), ["/opt/from-env.so"]);
    assert.deepEqual(nvmlLibraryCandidates({ env, libraryPath: "/opt/param.so" }), ["/opt/param.so"]);
    assert.equal(nvmlLibraryCandidates({ env: { TESSERA_NVML_LIBRARY: "" } })[0], NVML_SONAME);
  });

  it("fails with one error listing the path tried, the loader's reason and how to use the simulator", () => {
    const missing = "/nonexistent/tessera/libnvidia-ml.so.1";
    assert.throws(
      () => loadNvmlLibrary({ libraryPath: missing }),
      (err: unknown) => {
        assert.ok(err instanceof NvmlLibraryNotFoundError);
        assert.equal(err.code, "TESSERA_NVML_LIBRARY_NOT_FOUND");
        assert.deepEqual(
          err.attempts.map((a) => a.path),
          [missing],
        );
        assert.match(err.attempts[0]?.reason ?? "", /No such file or directory/);
        assert.match(err.message, /TESSERA_NVML_LIBRARY=.*libnvidia-ml-sim\.so\.1/);
        assert.match(err.message, /--sim/);
        return true;
      },
    );
  });

  it("reports every candidate when the system search finds no driver", (t) => {
    let loaded: string | undefined;
    try {
      loaded = loadNvmlLibrary({ env: {} }).path;
    } catch (err) {
      assert.ok(err instanceof NvmlLibraryNotFoundError);
      assert.deepEqual(
        err.attempts.map((a) => a.path),
        nvmlLibraryCandidates({ env: {} }),
      );
      for (const attempt of err.attempts) assert.ok(attempt.reason.length > 0);
      return;
    }
    // A machine with NVIDIA's driver: the search must have found it among the candidates.
    t.diagnostic(`real NVML found at ${loaded}`);
    assert.ok(nvmlLibraryCandidates({ env: {} }).includes(loaded));
  });

  it("rejects a library that is not NVML with the missing symbol named", async () => {
    await assert.rejects(openNvml({ libraryPath: "libc.so.6" }), (err: unknown) => {
      assert.ok(err instanceof NvmlError);
      assert.equal(err.code, "TESSERA_NVML_FUNCTION_NOT_FOUND");
      assert.equal(err.operation, "nvmlInit_v2");
      assert.match(err.message, /libc\.so\.6 does not export nvmlInit_v2/);
      return true;
    });
  });
});

describe("simulatorLibraryPath", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "tessera-root-"));
    mkdirSync(join(root, "build", "Release"), { recursive: true });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("resolves the simulator under the package root's build/Release", () => {
    assert.equal(simulatorLibraryPath(root), join(root, "build", "Release", "libnvidia-ml-sim.so.1"));
    writeFileSync(join(root, "build", "Release", "nvidia-ml-sim.so.1"), "");
    assert.equal(simulatorLibraryPath(root), join(root, "build", "Release", "nvidia-ml-sim.so.1"));
    writeFileSync(join(root, "build", "Release", "libnvidia-ml-sim.so.1"), "");
    assert.equal(simulatorLibraryPath(root), join(root, "build", "Release", "libnvidia-ml-sim.so.1"));
  });

  it("finds the package root from the module's own location", () => {
    assert.ok(simulatorLibraryPath().startsWith(join(packageRoot(), "build", "Release")));
  });
});

// A driver from before several symbols existed: no …ClocksEventReasons (only …ThrottleReasons), no
// MemoryInfo_v2, a TemperatureV and GPU-instance profile V that reject the newest struct versions,
// no compute-instance profile V, and nothing else. The binding must pick the fallbacks once and turn
// absent symbols into absent values.
const OLD_DRIVER = `
#include <string.h>
typedef struct { unsigned version, sensorType; int temperature; } temp_v1;
typedef struct { unsigned long long total, free, used; } mem_v1;
static int dev;
static int initCount;
static unsigned tempVCalls;
int nvmlInit_v2(void) { initCount++; return 0; }
int nvmlShutdown(void) { initCount--; return 0; }
const char *nvmlErrorString(int r) { return r == 25 ? "Version mismatch" : "Other"; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) { if (i) return 2; *d = &dev; return 0; }
int nvmlDeviceGetIndex(void *d, unsigned *i) { *i = 0; return 0; }
int nvmlDeviceGetName(void *d, char *b, unsigned n) { strncpy(b, "Old GPU", n); return 0; }
int nvmlDeviceGetUUID(void *d, char *b, unsigned n) { strncpy(b, "GPU-00000000-0000-0000-0000-000000000001", n); return 0; }
int nvmlDeviceGetCurrentClocksThrottleReasons(void *d, unsigned long long *r) { *r = 0x44; return 0; }
int nvmlDeviceGetMemoryInfo(void *d, mem_v1 *m) { m->total = 16ULL << 30; m->free = 15ULL << 30; m->used = 1ULL << 30; return 0; }
int nvmlDeviceGetTemperatureV(void *d, temp_v1 *t) { tempVCalls++; return 25; }
int nvmlDeviceGetTemperature(void *d, int sensor, unsigned *t) { *t = 61; return 0; }
unsigned tempVCallCount(void) { return tempVCalls; }
int nvmlDeviceGetGpuInstanceProfileInfoV(void *d, unsigned index, unsigned *info) {
  if (info[0] != (152u | (2u << 24))) return 25;
  if (index != 0) return 3;
  memset(info, 0, 152);
  info[0] = 152u | (2u << 24);
  info[1] = 19; /* id */
  info[2] = 1;  /* isP2pSupported */
  info[3] = 1;  /* sliceCount */
  info[4] = 7;  /* instanceCount */
  info[5] = 14; /* multiprocessorCount */
  *(unsigned long long *)((char *)info + 48) = 4864;
  strcpy((char *)info + 56, "MIG 1g.5gb");
  return 0;
}
`;

describe("versioned symbols on an older driver", () => {
  let dir: string;
  let libraryPath: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tessera-olddriver-"));
    writeFileSync(join(dir, "old.c"), OLD_DRIVER);
    libraryPath = join(dir, "libnvidia-ml-old.so.1");
    execFileSync("cc", ["-shared", "-fPIC", "-o", libraryPath, join(dir, "old.c")], { stdio: "pipe" });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("chooses the fallbacks once and reports them", async () => {
    const nvml = await openNvml({ libraryPath });
    try {
      const before = nvml.features;
      assert.equal(before.clockEventReasons, "nvmlDeviceGetCurrentClocksThrottleReasons");
      assert.equal(before.memoryInfo, "v1");
      assert.equal(before.temperature, "nvmlDeviceGetTemperatureV");
      assert.ok(before.missingSymbols.includes("nvmlDeviceGetMemoryInfo_v2"));
      assert.ok(before.missingSymbols.includes("nvmlDeviceGetCurrentClocksEventReasons"));

      const gpu = nvml.device(0);
      assert.equal(gpu.temperatureCelsius(), 61); // TemperatureV said VERSION_MISMATCH: fell back
      assert.equal(gpu.temperatureCelsius(), 61);
      assert.equal(nvml.features.temperature, "nvmlDeviceGetTemperature");
      const tempVCalls = koffi.load(libraryPath).func("unsigned int tempVCallCount(void)") as () => number;
      assert.equal(tempVCalls(), 1, "TemperatureV is asked once, then the choice sticks");

      const profile = gpu.mig.gpuInstanceProfile(0);
      assert.equal(nvml.features.gpuInstanceProfileInfo, 2); // v3 refused, v2 accepted
      assert.deepEqual(
        profile && {
          id: profile.id,
          name: profile.name,
          memorySizeMiB: profile.memorySizeMiB,
          p2p: profile.p2pSupported,
        },
        { id: 19, name: "MIG 1g.5gb", memorySizeMiB: 4864, p2p: true },
      );
      assert.equal(profile?.capabilities, undefined);
    } finally {
      nvml.shutdown();
    }
  });

  it("reads through the fallbacks and makes absent symbols absent values", async () => {
    const nvml = await openNvml({ libraryPath });
    try {
      const gpu = nvml.device(0);
      assert.deepEqual(gpu.memory(), {
        totalBytes: 16 * 2 ** 30,
        reservedBytes: undefined,
        freeBytes: 15 * 2 ** 30,
        usedBytes: 2 ** 30,
      });
      assert.deepEqual(gpu.clockEventReasons(), { mask: 0x44n, names: ["swPowerCap", "hwThermalSlowdown"] });
      assert.equal(gpu.utilization(), undefined);
      assert.equal(gpu.powerUsageMilliwatts(), undefined);
      assert.deepEqual(gpu.pcieLink(), {
        generation: undefined,
        width: undefined,
        maxGeneration: undefined,
        maxWidth: undefined,
      });
      assert.equal(gpu.computeProcesses(), undefined);
      assert.equal(nvml.cudaDriverVersion(), undefined);
    } finally {
      nvml.shutdown();
    }
  });

  it("fails a MIG action whose symbol is missing with FUNCTION_NOT_FOUND, not a crash", async () => {
    const nvml = await openNvml({ libraryPath });
    try {
      assert.throws(
        () => nvml.device(0).mig.createGpuInstance(19),
        (err: unknown) =>
          err instanceof NvmlError &&
          err.code === "TESSERA_NVML_FUNCTION_NOT_FOUND" &&
          err.operation === "nvmlDeviceCreateGpuInstance" &&
          err.device?.index === 0,
      );
      assert.throws(() => nvml.createEventSet(), { code: "TESSERA_NVML_FUNCTION_NOT_FOUND" });
    } finally {
      nvml.shutdown();
    }
  });
});
