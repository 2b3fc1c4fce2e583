import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { openNvml } from "../../src/nvml/index.js";
import type { HostInventory } from "../../src/telemetry/inventory-types.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { runCli } from "./run-cli.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

async function inspectJson(...extra: string[]): Promise<HostInventory> {
  const r = await runCli(["inspect", "--sim", "-o", "json", ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as HostInventory;
}

describe("tessera inspect", () => {
  it("reports the driver and every GPU of the preset with nvidia-smi's identity fields", async () => {
    const inv = await inspectJson();
    assert.equal(inv.simulated, true);
    assert.equal(inv.preset, "dgx-h100");
    assert.equal(inv.driverVersion, "580.105.08");
    assert.equal(inv.cudaDriverVersion, "13.0");
    assert.equal(inv.gpus.length, 8);
    const g0 = inv.gpus[0];
    assert.ok(g0);
    assert.equal(g0.name, "NVIDIA H100 80GB HBM3");
    assert.equal(g0.pciBusId, "00000000:1B:00.0");
    assert.equal(g0.pciDeviceId, "0x233010DE");
    assert.equal(g0.architecture, "Hopper");
    assert.equal(g0.computeCapability, "9.0");
    assert.match(g0.uuid, /^GPU-[0-9a-f]{8}-/);
    assert.equal(g0.memory?.totalMiB, 81559);
    assert.equal(g0.powerLimitWatts, 700);
    assert.equal(g0.maxClocksMHz.sm, 1980);
    assert.equal(g0.pcie.maxGeneration, 5);
    assert.equal(g0.ecc.enabled, true);
    assert.deepEqual(g0.mig, { currentEnabled: false, pendingEnabled: false, devices: [] });
    assert.deepEqual(
      inv.gpus.map((g) => g.pciBusId.slice(9, 11)),
      ["1B", "43", "52", "61", "9D", "C3", "D1", "DF"],
    );
  });

  it("lists MIG devices with profile, placement and processes, and leaves utilization absent on a MIG parent", async () => {
    const nvml = await openNvml();
    try {
      const gpu = nvml.device(2);
      gpu.mig.setMode(true);
      const gi = gpu.mig.createGpuInstance(9, { start: 4, size: 4 });
      gi.createComputeInstance(2);
      const info = gi.info();
      world.sim.startProcess({
        gpu: 2,
        gpuInstanceId: info.id,
        computeInstanceId: 0,
        memoryMiB: 4096,
        smPercent: 50,
        name: "worker",
      });
    } finally {
      nvml.shutdown();
    }
    const inv = await inspectJson();
    const g2 = inv.gpus[2];
    assert.ok(g2?.mig);
    assert.equal(g2.utilization, undefined, "NVML does not report utilization on a MIG-enabled GPU");
    assert.equal(g2.mig.devices.length, 1);
    const dev = g2.mig.devices[0];
    assert.ok(dev);
    assert.equal(dev.profile, "3g.40gb");
    assert.deepEqual(dev.placement, { start: 4, size: 4 });
    assert.match(dev.uuid, /^MIG-/);
    assert.equal(dev.processes.length, 1);
    assert.equal(dev.processes[0]?.name, "worker");
    assert.equal(dev.processes[0]?.usedMemoryMiB, 4096);
    assert.equal(inv.gpus[3]?.utilization?.gpuPercent, 0, "a GPU without MIG reports utilization");
  });

  it("keeps reporting the other GPUs when one is lost", async () => {
    world.sim.setLost(5, true);
    const inv = await inspectJson();
    assert.equal(inv.gpus.length, 7);
    assert.equal(inv.unavailableGpus.length, 1);
    assert.equal(inv.unavailableGpus[0]?.index, 5);
    assert.match(inv.unavailableGpus[0]?.error ?? "", /GPU_IS_LOST/);
  });

  it("prints readable tables by default", async () => {
    world.sim.startProcess({ gpu: 1, memoryMiB: 2048, smPercent: 70, name: "train.py" });
    const r = await runCli(["inspect", "--sim"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Driver 580\.105\.08 {3}NVML 13\.580\.105\.08 {3}CUDA 13\.0/);
    assert.match(r.stdout, /GPU +NAME +UUID +BUS ID/);
    assert.match(r.stdout, /1 +\d+C +\d+W \/ 700W +2049 \/ 81559 MiB +70%/);
    assert.match(r.stdout, /1 +41000 +train\.py +2048 MiB/);
  });

  it("fails with every path tried when the library does not load", async () => {
    const r = await runCli(["inspect", "--library", "/nonexistent/libnvidia-ml.so.1"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\/nonexistent\/libnvidia-ml\.so\.1/);
    assert.match(r.stderr, /TESSERA_NVML_LIBRARY_NOT_FOUND/);
  });

  it("rejects an unknown output format", async () => {
    const r = await runCli(["inspect", "--sim", "-o", "yaml"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /-o\/--output/);
  });
});
