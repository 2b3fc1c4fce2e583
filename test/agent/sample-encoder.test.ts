import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import type { NodeSnapshot } from "../../src/agent/node-state.js";
import { sampleProto } from "../../src/agent/proto.js";
import { encodeSampleResponse, SampleEncoder } from "../../src/agent/sample-encoder.js";
import { WatchNodeResponseSchema } from "../../src/gen/tessera/v1/agent_pb.js";
import { type Nvml, openNvml } from "../../src/nvml/index.js";
import { NvmlSampler } from "../../src/telemetry/sampler.js";
import type { SweepResult } from "../../src/telemetry/sweep-types.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";

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

const snapshot = (sweep: SweepResult, stale = false): NodeSnapshot => ({
  version: 1,
  sweep,
  fabric: undefined,
  health: new Map(),
  stale,
  atMs: sweep.startedAtMs,
  lastSeq: 0,
});

describe("encodeSampleResponse", () => {
  it("decodes to exactly what sampleProto builds, on a host with MIG devices, processes and a lost GPU", () => {
    const g0 = nvml.device(0);
    g0.mig.setMode(true);
    const gi = g0.mig.createGpuInstance(9, { start: 0, size: 4 });
    gi.createComputeInstance(2);
    g0.mig.createGpuInstance(19, { start: 6, size: 1 }).createComputeInstance(0);
    world.sim.startProcess({
      gpu: 0,
      gpuInstanceId: gi.id,
      computeInstanceId: 0,
      memoryMiB: 512,
      smPercent: 40,
      name: "mig.py",
    });
    world.sim.startProcess({ gpu: 3, memoryMiB: 1024, smPercent: 80, name: "whole.py" });
    world.sim.setThrottle(2, 0x4n);
    const sampler = new NvmlSampler(nvml);
    sampler.sweep();
    world.sim.setLost(6, true);
    const encoder = new SampleEncoder();
    for (const s of [snapshot(sampler.sweep()), snapshot(sampler.sweep(), true), snapshot(sampler.sweep())]) {
      const decoded = fromBinary(WatchNodeResponseSchema, encodeSampleResponse(s));
      assert.equal(decoded.item.case, "sample");
      assert.deepEqual(decoded.item.value, sampleProto(s));
      // Reusing the bytes of unchanged GPUs gives the same encoding.
      assert.deepEqual(encoder.response(s), encodeSampleResponse(s));
    }
    world.sim.setLost(6, false);
  });
});
