import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { GPM_METRICS } from "../../src/nvml/constants.js";
import type { GpmSampler } from "../../src/nvml/gpm.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

let world: SimWorld;
let nvml: Nvml;
let samplers: GpmSampler[] = [];

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(() => {
  for (const s of samplers) s.free();
  samplers = [];
  world.reset("dgx-h100");
});

/** Two samples ≥100 ms apart, as GPM requires. */
async function measured(sampler: GpmSampler): Promise<GpmSampler> {
  samplers.push(sampler);
  sampler.sample();
  await sleep(120);
  sampler.sample();
  return sampler;
}

describe("GPM", () => {
  it("is supported on Hopper and not on Ampere", () => {
    assert.equal(nvml.device(0).gpmSupported(), true);
    world.reset("dgx-a100");
    assert.equal(nvml.device(0).gpmSupported(), false);
    assert.throws(
      () => {
        const s = nvml.device(0).gpmSampler();
        samplers.push(s);
        s.sample();
      },
      { code: "TESSERA_NVML_NOT_SUPPORTED" },
    );
  });

  it("measures SM utilization of a whole GPU between two samples", async () => {
    world.sim.startProcess({ gpu: 0, memoryMiB: 4096, smPercent: 60, name: "train" });
    const busy = await measured(nvml.device(0).gpmSampler());
    const idle = await measured(nvml.device(1).gpmSampler());
    const sm = busy.smUtilizationPercent();
    assert.ok(sm !== undefined && Math.abs(sm - 60) < 5, `SM ${sm}%`);
    assert.equal(idle.smUtilizationPercent(), 0);
    const metrics = busy.metrics([GPM_METRICS.graphicsUtil, GPM_METRICS.smOccupancy, 999]);
    assert.deepEqual(
      metrics.map((m) => [m.metricId, m.nvmlReturn]),
      [
        [1, "NVML_SUCCESS"],
        [3, "NVML_SUCCESS"],
        [999, "NVML_ERROR_NOT_SUPPORTED"],
      ],
    );
    assert.equal(metrics[2]?.value, undefined);
  });

  it("measures SM utilization per GPU instance", async () => {
    const gpu = nvml.device(0);
    gpu.mig.setMode(true);
    const busyGi = gpu.mig.createGpuInstance(9, { start: 0, size: 4 });
    const busyCi = busyGi.createComputeInstance(2);
    const idleGi = gpu.mig.createGpuInstance(9, { start: 4, size: 4 });
    world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: busyGi.id,
      computeInstanceId: busyCi.id,
      memoryMiB: 1024,
      smPercent: 50,
      name: "infer",
    });
    const busy = await measured(gpu.gpmSampler({ gpuInstanceId: busyGi.id }));
    const idle = await measured(gpu.gpmSampler({ gpuInstanceId: idleGi.id }));
    const sm = busy.smUtilizationPercent();
    assert.ok(sm !== undefined && Math.abs(sm - 50) < 5, `SM ${sm}%`);
    assert.equal(idle.smUtilizationPercent(), 0);
  });

  it("guards its own use: two samples first, at most 98 metrics, nothing after free", () => {
    const sampler = nvml.device(0).gpmSampler();
    sampler.sample();
    assert.throws(() => sampler.metrics([GPM_METRICS.smUtil]), { code: "TESSERA_NVML_UNINITIALIZED" });
    sampler.sample();
    assert.throws(() => sampler.metrics(Array.from({ length: 99 }, () => 2)), {
      code: "TESSERA_NVML_INVALID_ARGUMENT",
    });
    assert.equal(sampler.metrics(Array.from({ length: 98 }, () => 2)).length, 98);
    sampler.free();
    sampler.free();
    assert.throws(() => sampler.sample(), { code: "TESSERA_NVML_INVALID_ARGUMENT" });
  });
});
