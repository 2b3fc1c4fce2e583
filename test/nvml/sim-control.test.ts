import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { NvmlError } from "../../src/nvml/errors.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { SimControl } from "../../src/sim/control.js";
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

function tsimError(code: string, operation: string) {
  return (err: unknown) => {
    assert.ok(err instanceof NvmlError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.operation, operation);
    return true;
  };
}

describe("simulator control", () => {
  it("lists and selects presets and names the state file in use", () => {
    assert.deepEqual(world.sim.presets().sort(), ["a30x4", "dgx-a100", "dgx-h100", "hgx-h200", "mixed"]);
    assert.equal(world.sim.preset(), "dgx-h100");
    assert.equal(world.sim.statePath(), world.statePath);
    world.sim.selectPreset("hgx-h200");
    assert.equal(world.sim.preset(), "hgx-h200");
    assert.match(nvml.device(0).name(), /H200/);
    world.sim.selectPreset("a30x4");
    assert.equal(nvml.deviceCount(), 4);
    assert.equal(nvml.device(0).name(), "NVIDIA A30");
    world.sim.selectPreset("mixed");
    assert.ok(new Set(nvml.devices().map((d) => d.name())).size > 1, "a mixed host has more than one model");
    assert.throws(() => world.sim.selectPreset("dgx-z9000"), tsimError("TESSERA_NVML_NOT_FOUND", "tsim_select_preset"));
  });

  it("starts and stops processes and refuses impossible ones", () => {
    const pid = world.sim.startProcess({ gpu: 0, memoryMiB: 100, smPercent: 10, name: "x" });
    assert.ok(pid > 0);
    assert.equal(nvml.processName(pid), "x");
    world.sim.stopProcess(pid);
    assert.equal(nvml.processName(pid), undefined);
    assert.throws(() => world.sim.stopProcess(pid), tsimError("TESSERA_NVML_NOT_FOUND", "tsim_process_stop"));
    assert.throws(
      () => world.sim.startProcess({ gpu: 0, memoryMiB: 10, smPercent: 101, name: "y" }),
      tsimError("TESSERA_NVML_INVALID_ARGUMENT", "tsim_process_start"),
    );
    assert.throws(
      () => world.sim.startProcess({ gpu: 0, memoryMiB: 10_000_000, smPercent: 1, name: "huge" }),
      tsimError("TESSERA_NVML_MEMORY", "tsim_process_start"),
    );
    assert.throws(
      () =>
        world.sim.startProcess({
          gpu: 0,
          gpuInstanceId: 1,
          computeInstanceId: 0,
          memoryMiB: 1,
          smPercent: 1,
          name: "z",
        }),
      tsimError("TESSERA_NVML_NOT_FOUND", "tsim_process_start"),
    );
  });

  it("validates GPU indexes and ranges", () => {
    assert.throws(() => world.sim.setLost(8, true), tsimError("TESSERA_NVML_INVALID_ARGUMENT", "tsim_set_lost"));
    assert.throws(
      () => world.sim.setTemperature(0, 200),
      tsimError("TESSERA_NVML_INVALID_ARGUMENT", "tsim_set_temperature"),
    );
    assert.throws(
      () => world.sim.setPcieLink(0, { generation: 6, width: 16 }),
      tsimError("TESSERA_NVML_INVALID_ARGUMENT", "tsim_set_pcie_link"),
    );
    assert.throws(() => world.sim.injectXid(0, 13, 5), tsimError("TESSERA_NVML_NOT_FOUND", "tsim_inject_xid"));
  });

  it("resets a GPU: instances and processes gone, lost flag and volatile ECC cleared", () => {
    const gpu = nvml.device(4);
    gpu.mig.setMode(true);
    gpu.mig.createGpuInstance(19).createComputeInstance(0);
    world.sim.setEcc(4, { sbeVolatile: 5, dbeVolatile: 1, sbeAggregate: 5, dbeAggregate: 1 });
    world.sim.setLost(4, true);
    world.sim.resetGpu(4);
    assert.deepEqual(gpu.mig.gpuInstances(), []);
    assert.deepEqual(gpu.eccErrors(), {
      volatileCorrected: 0,
      volatileUncorrected: 0,
      aggregateCorrected: 5,
      aggregateUncorrected: 1,
    });
  });

  it("slows NVML calls down and back", () => {
    const gpu = nvml.device(0);
    world.sim.setLatency("nvmlDeviceGetName", 30_000);
    let started = process.hrtime.bigint();
    gpu.name();
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 >= 25, "30 ms latency applied");
    world.sim.setLatency("nvmlDeviceGetName", 0);
    started = process.hrtime.bigint();
    gpu.name();
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 25, "latency removed");
    world.sim.setSeed(42);
  });

  it("refuses to open a library that is not the simulator", () => {
    assert.throws(() => SimControl.open("/nonexistent/libnvidia-ml-sim.so.1"), {
      code: "TESSERA_NVML_LIBRARY_NOT_FOUND",
    });
    assert.throws(
      () => SimControl.open("libc.so.6"),
      tsimError("TESSERA_NVML_FUNCTION_NOT_FOUND", "tsim_select_preset"),
    );
  });
});
