import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { parseTarget } from "../../src/cli/sim.js";
import { openNvml } from "../../src/nvml/index.js";
import { TSIM_NONE } from "../../src/sim/control.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { runCli } from "./run-cli.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

describe("tessera sim", () => {
  it("parses whole-GPU and MIG targets", () => {
    assert.deepEqual(parseTarget("3"), { gpu: 3, gpuInstanceId: TSIM_NONE, computeInstanceId: TSIM_NONE });
    assert.deepEqual(parseTarget("0:2/1"), { gpu: 0, gpuInstanceId: 2, computeInstanceId: 1 });
    assert.throws(() => parseTarget("0:2"), /GPU:GI\/CI/);
  });

  it("switches presets", async () => {
    const r = await runCli(["sim", "preset", "a30x4"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(world.sim.preset(), "a30x4");
    const bad = await runCli(["sim", "preset", "dgx-z9"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown preset "dgx-z9"; valid: dgx-h100/);
  });

  it("runs and kills processes that NVML then reports", async () => {
    const run = await runCli(["sim", "run", "6", "--memory", "512", "--sm", "40", "--name", "bench"]);
    assert.equal(run.code, 0, run.stderr);
    const pid = Number(run.stdout.trim());
    const nvml = await openNvml();
    try {
      assert.deepEqual(
        nvml
          .device(6)
          .computeProcesses()
          ?.map((p) => p.pid),
        [pid],
      );
      const kill = await runCli(["sim", "kill", String(pid)]);
      assert.equal(kill.code, 0, kill.stderr);
      assert.deepEqual(nvml.device(6).computeProcesses(), []);
    } finally {
      nvml.shutdown();
    }
  });

  it("injects an XID that an event waiter receives", async () => {
    const nvml = await openNvml();
    const set = nvml.createEventSet();
    try {
      set.register(nvml.device(3), ["xidCriticalError"]);
      const r = await runCli(["sim", "xid", "3", "48"]);
      assert.equal(r.code, 0, r.stderr);
      const event = await set.wait(1000);
      assert.equal(event?.data, 48n);
    } finally {
      await set.free();
      nvml.shutdown();
    }
  });

  it("loses a GPU and brings it back", async () => {
    assert.equal((await runCli(["sim", "lose", "2"])).code, 0);
    const nvml = await openNvml();
    try {
      assert.throws(() => nvml.device(2), /GPU_IS_LOST/);
      assert.equal((await runCli(["sim", "lose", "2", "--recover"])).code, 0);
      assert.equal(nvml.device(2).name(), "NVIDIA H100 80GB HBM3");
    } finally {
      nvml.shutdown();
    }
  });

  it("rejects malformed numbers with the argument's name", async () => {
    const r = await runCli(["sim", "run", "0", "--sm", "150"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--sm must be between 0 and 100, got 150/);
  });
});
