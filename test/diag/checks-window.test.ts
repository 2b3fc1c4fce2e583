// The standard level's windowed GPU checks: faults the simulator raises while the window runs.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { replayLimitPerMinute } from "../../src/diag/check-error-rates.js";
import { createSimWorld, type SimWorld } from "../nvml/sim-world.js";
import { evidenceMatches, expectCheck } from "./helpers.js";

let world: SimWorld;
before(() => {
  world = createSimWorld("dgx-h100");
});
after(() => world?.dispose());
beforeEach(() => world.reset("dgx-h100"));

const standard = { level: "standard" as const, windowMs: 600, sampleIntervalMs: 100 };
const during = (fn: () => void) => setTimeout(fn, 200);
const clean = { sbeVolatile: 0, dbeVolatile: 0, sbeAggregate: 0, dbeAggregate: 0 };

describe("gpu.error-rates", () => {
  it("passes a window without new errors", async () => {
    const r = await expectCheck("gpu.error-rates", "pass", standard);
    assert.equal(r.evidence[0], "no new memory or PCIe errors on any GPU during the window");
  });

  it("warns on corrected ECC errors arriving fast", async () => {
    during(() => world.sim.setEcc(1, { ...clean, sbeVolatile: 50, sbeAggregate: 50 }));
    const r = await expectCheck("gpu.error-rates", "warn", standard);
    evidenceMatches(r, /^GPU 1: 50 new corrected ECC errors in 1 s \(\d+\.\d\/min, warning at 10\/min\)$/);
  });

  it("warns on PCIe replays above DCGM's bound for the link", async () => {
    during(() => world.sim.addPcieReplays(2, 1000));
    const r = await expectCheck("gpu.error-rates", "warn", standard);
    evidenceMatches(r, /^GPU 2: 1000 PCIe replays in 1 s \(.*above 3\/min for Gen1 x16\)$/);
  });

  it("fails on an uncorrectable ECC error during the window", async () => {
    during(() => world.sim.setEcc(3, { ...clean, dbeVolatile: 1, dbeAggregate: 1 }));
    const r = await expectCheck("gpu.error-rates", "fail", standard);
    evidenceMatches(r, /^GPU 3: 1 new uncorrectable ECC errors in 1 s$/);
  });

  it("uses DCGM's per-lane replay bounds", () => {
    assert.equal(replayLimitPerMinute(1, 16), 3);
    assert.equal(replayLimitPerMinute(5, 16), 31);
    assert.equal(replayLimitPerMinute(4, 8), 8);
  });
});

describe("gpu.throttle-residency", () => {
  it("passes a window without throttling", async () => {
    const r = await expectCheck("gpu.throttle-residency", "pass", standard);
    assert.equal(r.evidence[0], "no GPU throttled over the window");
  });

  it("warns on a GPU held at its power cap through the window", async () => {
    world.sim.setThrottle(1, 0x4n);
    const r = await expectCheck("gpu.throttle-residency", "warn", standard);
    evidenceMatches(r, /^GPU 1: power cap 100% of \d+ samples \(warning at 10%\)$/);
  });

  it("fails on a hardware slowdown for part of the window", async () => {
    during(() => world.sim.setThrottle(4, 0x8n));
    const r = await expectCheck("gpu.throttle-residency", "fail", standard);
    evidenceMatches(r, /^GPU 4: hardware slowdown \d+(\.\d)?% of \d+ samples$/);
  });
});
