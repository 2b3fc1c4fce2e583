// Per-GPU quick checks on the simulator: gpu.ecc, gpu.memory-repair, gpu.throttle, gpu.pcie.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { openNvml } from "../../src/nvml/index.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { evidenceMatches, expectCheck } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

const clean = { sbeVolatile: 0, dbeVolatile: 0, sbeAggregate: 0, dbeAggregate: 0 };

describe("gpu.ecc", () => {
  it("passes without uncorrectable errors", async () => {
    world.sim.setEcc(1, { ...clean, sbeVolatile: 3, sbeAggregate: 40 });
    const r = await expectCheck("gpu.ecc", "pass");
    assert.equal(r.evidence[0], "no uncorrectable ECC errors on any GPU");
    evidenceMatches(r, /^GPU 1: volatile 3 corrected \/ 0 uncorrected, lifetime 40 \/ 0$/);
  });

  it("leaves a lost GPU to gpu.reachable instead of failing on it again", async () => {
    world.sim.setLost(3, true);
    const r = await expectCheck("gpu.ecc", "pass");
    assert.equal(r.evidence[0], "no uncorrectable ECC errors on any GPU");
    assert.equal(r.evidence.at(-1), "GPU 3: lost, not read (see gpu.reachable)");
  });

  it("warns on uncorrectable errors earlier in the GPU's life", async () => {
    world.sim.setEcc(2, { ...clean, dbeAggregate: 2 });
    const r = await expectCheck("gpu.ecc", "warn");
    evidenceMatches(r, /^GPU 2: 2 uncorrectable ECC errors in its lifetime/);
  });

  it("fails on a volatile double-bit error and says to drain and reset", async () => {
    world.sim.setEcc(2, { ...clean, dbeVolatile: 1, dbeAggregate: 1 });
    const r = await expectCheck("gpu.ecc", "fail");
    evidenceMatches(r, /^GPU 2: 1 uncorrectable ECC errors since the driver loaded/);
    assert.match(r.remediation, /drain the GPU, reset it/);
  });
});

describe("gpu.memory-repair", () => {
  it("passes with remapped rows and nothing pending", async () => {
    world.sim.setRemappedRows(4, { corrected: 2, uncorrected: 1, pending: false, failure: false });
    await expectCheck("gpu.memory-repair", "pass");
  });

  it("warns on a pending row remap: reset at the next idle moment", async () => {
    world.sim.setRemappedRows(4, { corrected: 0, uncorrected: 1, pending: true, failure: false });
    const r = await expectCheck("gpu.memory-repair", "warn");
    evidenceMatches(r, /^GPU 4: a row remap is pending/);
    assert.match(r.remediation, /reset the GPU .* at its next idle moment/);
  });

  it("warns on a pending page retirement", async () => {
    world.sim.setRetiredPages(6, { sbePages: 1, dbePages: 0, pending: true });
    const r = await expectCheck("gpu.memory-repair", "warn");
    evidenceMatches(r, /^GPU 6: a page retirement is pending/);
  });

  it("fails when row remapping failed", async () => {
    world.sim.setRemappedRows(5, { corrected: 0, uncorrected: 12, pending: false, failure: true });
    const r = await expectCheck("gpu.memory-repair", "fail");
    evidenceMatches(r, /^GPU 5: row remapping failed/);
    assert.match(r.remediation, /RMA/);
  });

  it("fails at DCGM's retired-page limit", async () => {
    world.sim.setRetiredPages(7, { sbePages: 40, dbePages: 23, pending: false });
    const r = await expectCheck("gpu.memory-repair", "fail");
    evidenceMatches(r, /^GPU 7: 40 pages retired for single-bit and 23 for double-bit errors \(failure at 63\)/);
  });

  it("says row remapping cannot be read while MIG is enabled", async () => {
    const nvml = await openNvml();
    try {
      nvml.device(0).mig.setMode(true);
    } finally {
      nvml.shutdown();
    }
    const r = await expectCheck("gpu.memory-repair", "pass");
    evidenceMatches(r, /^GPU 0: row remapping not readable while MIG is enabled; 0 pages retired$/);
    evidenceMatches(r, /^GPU 1: 0 rows remapped, none pending; 0 pages retired$/);
  });
});

describe("gpu.throttle", () => {
  it("passes when no GPU is throttled", async () => {
    await expectCheck("gpu.throttle", "pass");
  });

  it("warns at the power cap", async () => {
    world.sim.setPower(1, 700_000);
    const r = await expectCheck("gpu.throttle", "warn");
    evidenceMatches(r, /^GPU 1: power cap now; .* 700 W of 700 W/);
  });

  it("warns on a software thermal slowdown", async () => {
    world.sim.setThrottle(3, 0x20n);
    const r = await expectCheck("gpu.throttle", "warn");
    evidenceMatches(r, /^GPU 3: software thermal slowdown now/);
    assert.match(r.remediation, /cooling/);
  });

  it("fails on a hardware thermal slowdown (an overheating GPU)", async () => {
    world.sim.setTemperature(6, 95);
    const r = await expectCheck("gpu.throttle", "fail");
    evidenceMatches(r, /^GPU 6: hardware thermal slowdown now; 95 °C/);
  });

  it("fails on a hardware power brake", async () => {
    world.sim.setThrottle(0, 0x80n);
    const r = await expectCheck("gpu.throttle", "fail");
    evidenceMatches(r, /^GPU 0: hardware power brake now/);
  });
});

describe("gpu.pcie", () => {
  const busy = (gpu: number) => world.sim.startProcess({ gpu, memoryMiB: 1024, smPercent: 80, name: "train" });

  it("passes idle GPUs whose links trained down, and busy GPUs at full link", async () => {
    busy(2);
    const r = await expectCheck("gpu.pcie", "pass");
    assert.equal(r.evidence[0], "1 busy GPUs at their full link, 7 idle GPUs (idle links train down, not judged)");
    evidenceMatches(r, /^GPU 2: busy at Gen5 x16 \(max Gen5 x16\)$/);
  });

  it("does not judge an idle GPU's narrower link", async () => {
    world.sim.setPcieLink(4, { generation: 5, width: 8 });
    await expectCheck("gpu.pcie", "pass");
  });

  it("warns on a busy GPU below its maximum generation", async () => {
    busy(2);
    world.sim.setPcieLink(2, { generation: 4, width: 16 });
    const r = await expectCheck("gpu.pcie", "warn");
    evidenceMatches(
      r,
      /^GPU 2: busy \(80% busy, 1 processes\) at Gen4 x16, below its maximum generation \(max Gen5 x16\)/,
    );
  });

  it("fails on a busy GPU below its maximum width", async () => {
    busy(5);
    world.sim.setPcieLink(5, { generation: 5, width: 8 });
    const r = await expectCheck("gpu.pcie", "fail");
    evidenceMatches(r, /^GPU 5: busy .* at Gen5 x8, below its maximum width/);
    assert.match(r.remediation, /reseat/);
  });
});
