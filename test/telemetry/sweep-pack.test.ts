import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { NvmlSampler } from "../../src/telemetry/sampler.js";
import { packSweep, unpackSweep } from "../../src/telemetry/sweep-pack.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

let world: SimWorld;
let nvml: Nvml;
before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
  const g = nvml.device(2);
  g.mig.setMode(true);
  for (let s = 0; s < 3; s++) g.mig.createGpuInstance(19, { start: s, size: 1 }).createComputeInstance(0);
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});

describe("sweep packing", () => {
  it("sends what did not change as 'same' and rebuilds the identical sweep on the other side", () => {
    const sampler = new NvmlSampler(nvml);
    const first = sampler.sweep();
    const second = sampler.sweep();
    world.sim.startProcess({ gpu: 5, memoryMiB: 1000, smPercent: 50, name: "x" });
    const third = sampler.sweep();
    // The clone boundary: what the main thread receives is a structured clone.
    const p1 = structuredClone(packSweep(first, undefined));
    const p2 = structuredClone(packSweep(second, first));
    const p3 = structuredClone(packSweep(third, second));
    assert.equal(p2.gpus[0]?.identity, "same");
    assert.equal(p2.gpus[2]?.mig, "same");
    assert.notEqual(p3.gpus[5]?.telemetry, "same", "a GPU that started work is sent in full");
    const u1 = unpackSweep(p1, undefined);
    const u2 = unpackSweep(p2, u1);
    const u3 = unpackSweep(p3, u2);
    assert.deepEqual(u1, first);
    assert.deepEqual(u2, second);
    assert.deepEqual(u3, third);
    assert.equal(u2.gpus[0]?.identity, u1.gpus[0]?.identity, "unchanged parts stay the same objects");
    assert.equal(u3.gpus[2]?.mig, u1.gpus[2]?.mig);
  });

  it("refuses a 'same' with nothing to refer to", () => {
    const sampler = new NvmlSampler(nvml);
    const a = sampler.sweep();
    const b = sampler.sweep();
    assert.throws(() => unpackSweep(packSweep(b, a), undefined), /is "same" but there is no previous one/);
  });
});
