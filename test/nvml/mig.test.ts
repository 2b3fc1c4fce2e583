import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import type { Device } from "../../src/nvml/device.js";
import { NvmlError } from "../../src/nvml/errors.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

let world: SimWorld;
let nvml: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(() => world.reset("dgx-h100"));

function nvmlError(code: string, operation?: string, detail?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof NvmlError, `expected NvmlError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (operation !== undefined) assert.equal(err.operation, operation);
    if (detail !== undefined) assert.match(err.message, detail);
    return true;
  };
}

/** GPU 0 of the H100 preset with MIG enabled. */
function migGpu(index = 0): Device {
  const gpu = nvml.device(index);
  gpu.mig.setMode(true);
  return gpu;
}

// reference/nvml.md §4.1, H100-80GB: index constant → profile ID, name, instances, placements.
const H100_PROFILES = [
  { index: 0, id: 19, name: "MIG 1g.10gb", instanceCount: 7, sliceCount: 1 },
  { index: 1, id: 14, name: "MIG 2g.20gb", instanceCount: 3, sliceCount: 2 },
  { index: 2, id: 9, name: "MIG 3g.40gb", instanceCount: 2, sliceCount: 3 },
  { index: 3, id: 5, name: "MIG 4g.40gb", instanceCount: 1, sliceCount: 4 },
  { index: 4, id: 0, name: "MIG 7g.80gb", instanceCount: 1, sliceCount: 7 },
  { index: 7, id: 20, name: "MIG 1g.10gb+me", instanceCount: 1, sliceCount: 1 },
  { index: 9, id: 15, name: "MIG 1g.20gb", instanceCount: 4, sliceCount: 1 },
];

describe("MIG mode", () => {
  it("starts disabled and applies at once on Hopper", () => {
    const gpu = nvml.device(0);
    assert.deepEqual(gpu.mig.mode(), { current: false, pending: false });
    assert.equal(gpu.maxMigDeviceCount(), 0);
    assert.deepEqual(gpu.migDevices(), []);
    assert.deepEqual(gpu.mig.setMode(true), { current: true, pending: true, activationStatus: "NVML_SUCCESS" });
    assert.equal(gpu.maxMigDeviceCount(), 7);
    assert.deepEqual(gpu.mig.setMode(false), { current: false, pending: false, activationStatus: "NVML_SUCCESS" });
  });

  it("stays pending on Ampere until the GPU is reset, and says why", () => {
    world.reset("dgx-a100");
    const gpu = nvml.device(0);
    const change = gpu.mig.setMode(true);
    assert.equal(change.current, false);
    assert.equal(change.pending, true);
    assert.equal(change.activationStatus, "NVML_ERROR_RESET_REQUIRED");
    assert.throws(() => gpu.mig.createGpuInstance(19), nvmlError("TESSERA_NVML_NOT_SUPPORTED"));
    world.sim.resetGpu(0);
    assert.deepEqual(gpu.mig.mode(), { current: true, pending: true });
  });

  it("reports IN_USE activation when clients hold the GPU", () => {
    world.reset("dgx-a100");
    world.sim.setMigBlockers(1, 2);
    const change = nvml.device(1).mig.setMode(true);
    assert.equal(change.activationStatus, "NVML_ERROR_IN_USE");
    assert.deepEqual([change.current, change.pending], [false, true]);
  });

  it("refuses to disable MIG while GPU instances exist", () => {
    const gpu = migGpu();
    gpu.mig.createGpuInstance(19);
    assert.throws(
      () => gpu.mig.setMode(false),
      nvmlError("TESSERA_NVML_IN_USE", "nvmlDeviceSetMigMode", /disabling MIG/),
    );
  });
});

describe("GPU-instance profiles", () => {
  it("maps H100 profile indexes to their real IDs, skipping indexes the GPU lacks", () => {
    const gpu = migGpu();
    const profiles = gpu.mig.gpuInstanceProfiles();
    assert.deepEqual(
      profiles.map(({ index, id, name, instanceCount, sliceCount }) => ({
        index,
        id,
        name,
        instanceCount,
        sliceCount,
      })),
      H100_PROFILES,
    );
    assert.equal(nvml.features.gpuInstanceProfileInfo, 3);
    const threeG = profiles.find((p) => p.id === 9);
    assert.equal(threeG?.memorySizeMiB, 40448);
    assert.equal(threeG?.multiprocessorCount, 60);
    assert.notEqual(threeG?.capabilities, undefined, "v3 carries capability bits");
    assert.equal(gpu.mig.gpuInstanceProfile(5), undefined, "no 8-slice profile (NOT_SUPPORTED)");
    assert.equal(gpu.mig.gpuInstanceProfile(0x12), undefined, "past the last index (INVALID_ARGUMENT)");
  });

  it("knows an A30's 4-slice profiles", () => {
    world.reset("a30x4");
    const gpu = migGpu();
    world.sim.resetGpu(0); // Ampere: the mode change applies at the reset
    const byIndex = Object.fromEntries(gpu.mig.gpuInstanceProfiles().map((p) => [p.index, [p.id, p.name]]));
    assert.deepEqual(byIndex[0], [14, "MIG 1g.6gb"]);
    assert.deepEqual(byIndex[1], [5, "MIG 2g.12gb"]);
    assert.deepEqual(byIndex[3], [0, "MIG 4g.24gb"]);
    assert.equal(gpu.maxMigDeviceCount(), 4);
  });

  it("lists possible placements in memory slices and the remaining capacity", () => {
    const gpu = migGpu();
    assert.deepEqual(gpu.mig.possiblePlacements(9), [
      { start: 0, size: 4 },
      { start: 4, size: 4 },
    ]);
    assert.deepEqual(
      gpu.mig.possiblePlacements(15).map((p) => p.start),
      [0, 2, 4, 6],
    );
    assert.deepEqual(gpu.mig.possiblePlacements(0), [{ start: 0, size: 8 }]);
    assert.equal(gpu.mig.remainingCapacity(19), 7);
    gpu.mig.createGpuInstance(9, { start: 4, size: 4 });
    assert.equal(gpu.mig.remainingCapacity(9), 1);
    assert.equal(gpu.mig.remainingCapacity(19), 4);
    assert.equal(gpu.mig.remainingCapacity(0), 0);
    assert.throws(() => gpu.mig.possiblePlacements(77), nvmlError("TESSERA_NVML_INVALID_ARGUMENT"));
  });
});

describe("GPU instances", () => {
  it("creates with and without placement, lists them per profile and finds them by id", () => {
    const gpu = migGpu();
    const placed = gpu.mig.createGpuInstance(9, { start: 0, size: 4 });
    assert.deepEqual(placed.info().placement, { start: 0, size: 4 });
    assert.equal(placed.info().profileId, 9);
    const auto = gpu.mig.createGpuInstance(19);
    const autoInfo = auto.info();
    assert.equal(autoInfo.profileId, 19);
    assert.ok(autoInfo.placement.start >= 4 && autoInfo.placement.size === 1, "lands in the free half");

    const all = gpu.mig.gpuInstances();
    assert.equal(all.length, 2);
    assert.deepEqual(
      gpu.mig.gpuInstances(19).map((gi) => gi.id),
      [auto.id],
    );
    assert.deepEqual(gpu.mig.gpuInstances(14), []);
    const again = gpu.mig.gpuInstanceById(placed.id);
    assert.ok(again?.equals(placed));
    assert.equal(gpu.mig.gpuInstanceById(15), undefined);
    assert.notEqual(placed.id, auto.id);
  });

  it("refuses overlapping and illegal placements", () => {
    const gpu = migGpu();
    gpu.mig.createGpuInstance(19, { start: 0, size: 1 });
    assert.throws(
      () => gpu.mig.createGpuInstance(9, { start: 0, size: 4 }),
      nvmlError("TESSERA_NVML_INSUFFICIENT_RESOURCES", "nvmlDeviceCreateGpuInstanceWithPlacement", /profile 9 at 0:4/),
    );
    assert.throws(
      () => gpu.mig.createGpuInstance(9, { start: 2, size: 4 }),
      nvmlError("TESSERA_NVML_INVALID_ARGUMENT", "nvmlDeviceCreateGpuInstanceWithPlacement"),
    );
    assert.throws(() => gpu.mig.createGpuInstance(0), nvmlError("TESSERA_NVML_INSUFFICIENT_RESOURCES"));
  });

  it("destroys an empty GPU instance and refuses one with compute instances (IN_USE)", () => {
    const gpu = migGpu();
    const gi = gpu.mig.createGpuInstance(14, { start: 2, size: 2 });
    const ci = gi.createComputeInstance(1);
    assert.throws(
      () => gi.destroy(),
      (err: unknown) => {
        nvmlError("TESSERA_NVML_IN_USE", "nvmlGpuInstanceDestroy")(err);
        assert.equal((err as NvmlError).device?.index, 0);
        assert.match((err as NvmlError).message, new RegExp(`GPU instance ${gi.id}`));
        return true;
      },
    );
    ci.destroy();
    gi.destroy();
    assert.deepEqual(gpu.mig.gpuInstances(), []);
  });

  it("rejects a stale handle after its GPU instance was destroyed", () => {
    const gpu = migGpu();
    const gi = gpu.mig.createGpuInstance(9, { start: 0, size: 4 });
    const ci = gi.createComputeInstance(2);
    const migDevice = gpu.migDevices()[0];
    assert.ok(migDevice);
    const elsewhere = gpu.mig.gpuInstanceById(gi.id); // a second object on the same handle
    assert.ok(elsewhere);
    ci.destroy();
    gi.destroy();
    // The object that destroyed it knows; the other one gets the driver's verdict on the dead handle.
    assert.throws(
      () => gi.info(),
      nvmlError("TESSERA_NVML_INVALID_ARGUMENT", "nvmlGpuInstanceGetInfo", /was destroyed/),
    );
    assert.throws(
      () => elsewhere.info(),
      (err: unknown) => {
        nvmlError("TESSERA_NVML_INVALID_ARGUMENT", "nvmlGpuInstanceGetInfo")(err);
        assert.doesNotMatch((err as NvmlError).message, /was destroyed/);
        return true;
      },
    );
    assert.throws(() => elsewhere.createComputeInstance(2), nvmlError("TESSERA_NVML_INVALID_ARGUMENT"));
    assert.throws(() => migDevice.name(), nvmlError("TESSERA_NVML_INVALID_ARGUMENT", "nvmlDeviceGetName"));
  });
});

describe("compute instances", () => {
  it("lists a 3g instance's compute profiles by index with their IDs", () => {
    const gi = migGpu().mig.createGpuInstance(9, { start: 4, size: 4 });
    assert.deepEqual(
      gi.computeInstanceProfiles().map((p) => [p.index, p.id, p.name, p.instanceCount, p.sliceCount]),
      [
        [0, 0, "MIG 1c.3g.40gb", 3, 1],
        [1, 1, "MIG 2c.3g.40gb", 1, 2],
        [2, 2, "MIG 3g.40gb", 1, 3],
      ],
    );
    assert.equal(nvml.features.computeInstanceProfileInfo, 3);
    assert.equal(gi.computeInstanceProfile(4), undefined, "no 7c profile in a 3g instance");
  });

  it("creates with and without placement, lists, finds and destroys them", () => {
    const gi = migGpu().mig.createGpuInstance(9, { start: 0, size: 4 });
    assert.deepEqual(
      gi.computeInstancePossiblePlacements(0).map((p) => p.start),
      [0, 1, 2],
    );
    assert.equal(gi.computeInstanceRemainingCapacity(0), 3);
    const placed = gi.createComputeInstance(0, { start: 2, size: 1 });
    assert.deepEqual(placed.info(), { id: placed.id, profileId: 0, placement: { start: 2, size: 1 } });
    const auto = gi.createComputeInstance(0);
    assert.notEqual(auto.info().placement.start, 2);
    assert.equal(gi.computeInstanceRemainingCapacity(0), 1);
    assert.equal(gi.computeInstances().length, 2);
    assert.equal(gi.computeInstances(0).length, 2);
    assert.deepEqual(gi.computeInstances(2), []);
    assert.ok(gi.computeInstanceById(placed.id)?.equals(placed));
    assert.equal(gi.computeInstanceById(7), undefined);
    assert.throws(
      () => gi.createComputeInstance(0, { start: 2, size: 1 }),
      nvmlError("TESSERA_NVML_INSUFFICIENT_RESOURCES", "nvmlGpuInstanceCreateComputeInstanceWithPlacement"),
    );
    placed.destroy();
    assert.throws(() => placed.info(), nvmlError("TESSERA_NVML_INVALID_ARGUMENT", undefined, /was destroyed/));
    assert.equal(gi.computeInstances().length, 1);
  });

  it("refuses to destroy a compute instance with a process on it (IN_USE)", () => {
    const gpu = migGpu();
    const gi = gpu.mig.createGpuInstance(19, { start: 6, size: 1 });
    const ci = gi.createComputeInstance(0);
    const pid = world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: gi.id,
      computeInstanceId: ci.id,
      memoryMiB: 256,
      smPercent: 20,
      name: "infer",
    });
    assert.throws(() => ci.destroy(), nvmlError("TESSERA_NVML_IN_USE", "nvmlComputeInstanceDestroy"));
    world.sim.stopProcess(pid);
    ci.destroy();
  });
});

describe("MIG devices", () => {
  it("enumerates MIG devices with their identity, ids, memory and parent", () => {
    const gpu = migGpu();
    const gi = gpu.mig.createGpuInstance(9, { start: 4, size: 4 });
    const ci = gi.createComputeInstance(2);
    const small = gpu.mig.createGpuInstance(19, { start: 0, size: 1 });
    small.createComputeInstance(0);

    const devices = gpu.migDevices();
    assert.equal(devices.length, 2);
    const big = devices.find((d) => d.gpuInstanceId() === gi.id);
    assert.ok(big);
    assert.equal(big.isMig, true);
    assert.equal(big.index, 0);
    assert.ok(big.migIndex !== undefined && big.migIndex < 7);
    assert.equal(big.isMigDeviceHandle(), true);
    assert.equal(gpu.isMigDeviceHandle(), false);
    assert.equal(big.computeInstanceId(), ci.id);
    assert.equal(big.name(), "NVIDIA H100 80GB HBM3 MIG 3g.40gb");
    assert.match(big.uuid(), /^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(big.memory()?.totalBytes, 40448 * 2 ** 20);
    assert.equal(big.attributes()?.multiprocessorCount, 60);
    assert.equal(big.attributes()?.gpuInstanceSliceCount, 3);
    assert.ok(big.parent().equals(gpu));
    assert.equal(big.parent().index, 0);
    assert.equal(big.temperatureCelsius(), undefined, "GPU-level sensors are not per MIG device");
    assert.equal(big.minorNumber(), undefined);

    const byUuid = nvml.deviceByUuid(big.uuid());
    assert.ok(byUuid.equals(big));
    assert.equal(byUuid.isMig, true);
    assert.equal(byUuid.index, 0);
    assert.equal(byUuid.migIndex, big.migIndex);
    assert.throws(() => gpu.gpuInstanceId(), nvmlError("TESSERA_NVML_NOT_SUPPORTED"));
  });

  it("skips the holes destroyed instances leave", () => {
    const gpu = migGpu();
    const gis = [0, 1, 2].map((start) => gpu.mig.createGpuInstance(19, { start, size: 1 }));
    for (const gi of gis) gi.createComputeInstance(0);
    const before = gpu.migDevices();
    assert.equal(before.length, 3);
    const middle = before.find((d) => d.gpuInstanceId() === gis[1]?.id);
    assert.ok(middle?.migIndex !== undefined);
    gis[1]?.computeInstances()[0]?.destroy();
    gis[1]?.destroy();
    const after = gpu.migDevices();
    assert.equal(after.length, 2);
    assert.equal(gpu.migDevice(middle.migIndex), undefined);
    assert.ok(!after.some((d) => d.migIndex === middle.migIndex));
  });

  it("lists processes per MIG device with their instance ids", () => {
    const gpu = migGpu();
    const gi = gpu.mig.createGpuInstance(14, { start: 0, size: 2 });
    const ci = gi.createComputeInstance(1);
    const other = gpu.mig.createGpuInstance(14, { start: 2, size: 2 });
    const otherCi = other.createComputeInstance(1);
    const pid = world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: gi.id,
      computeInstanceId: ci.id,
      memoryMiB: 1000,
      smPercent: 30,
      name: "a",
    });
    world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: other.id,
      computeInstanceId: otherCi.id,
      memoryMiB: 10,
      smPercent: 30,
      name: "b",
    });
    const device = gpu.migDevices().find((d) => d.gpuInstanceId() === gi.id);
    assert.deepEqual(device?.computeProcesses(), [
      { pid, usedGpuMemoryBytes: 1000 * 2 ** 20, gpuInstanceId: gi.id, computeInstanceId: ci.id },
    ]);
    assert.equal(gpu.computeProcesses()?.length, 2, "the parent lists every MIG device's processes");
    assert.throws(() => gi.destroy(), nvmlError("TESSERA_NVML_IN_USE"));
  });
});
