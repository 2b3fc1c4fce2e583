import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { NvmlError } from "../../src/nvml/errors.js";
import type { EventSet } from "../../src/nvml/events.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

let world: SimWorld;
let nvml: Nvml;
let sets: EventSet[] = [];

before(async () => {
  world = createSimWorld("dgx-h100");
  nvml = await openNvml();
});
after(() => {
  nvml?.shutdown();
  world?.dispose();
});
beforeEach(async () => {
  for (const set of sets) await set.free();
  sets = [];
  world.reset("dgx-h100");
});

function eventSet(): EventSet {
  const set = nvml.createEventSet();
  sets.push(set);
  return set;
}

describe("events", () => {
  it("waits off the event loop: timers keep firing, and an XID injected mid-wait arrives", async () => {
    const gpu = nvml.device(1);
    const set = eventSet();
    assert.equal(set.register(gpu, ["xidCriticalError"]), true);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    let ticksAtInjection = -1;
    // This timeout can only run while the wait is in progress if the wait does not block the loop.
    setTimeout(() => {
      ticksAtInjection = ticks;
      world.sim.injectXid(1, 48);
    }, 150);
    try {
      const event = await set.wait(5000);
      assert.ok(event, "an event arrived before the timeout");
      assert.ok(event.device?.equals(gpu));
      assert.equal(event.device?.index, 1);
      assert.deepEqual(event.typeNames, ["xidCriticalError"]);
      assert.equal(event.type, 0x8n);
      assert.equal(event.data, 48n);
      assert.equal(event.gpuInstanceId, undefined);
      assert.ok(ticksAtInjection >= 5, `interval fired ${ticksAtInjection} times before the injection`);
      assert.ok(Date.now() - started < 4000, "woke on the event, not the timeout");
    } finally {
      clearInterval(timer);
    }
  });

  it("returns undefined when nothing arrives within the timeout", async () => {
    const set = eventSet();
    set.register(nvml.device(0), ["xidCriticalError", "doubleBitEccError"]);
    const started = Date.now();
    assert.equal(await set.wait(120), undefined);
    assert.ok(Date.now() - started >= 100);
  });

  it("delivers only the registered types of the registered GPUs", async () => {
    const set = eventSet();
    set.register(nvml.device(0), ["xidCriticalError"]);
    world.sim.setEcc(0, { sbeVolatile: 0, dbeVolatile: 1, sbeAggregate: 0, dbeAggregate: 1 }); // not registered
    world.sim.injectXid(3, 31); // another GPU
    assert.equal(await set.wait(50), undefined);
    world.sim.injectXid(0, 13);
    const event = await set.wait(1000);
    assert.equal(event?.data, 13n);
    assert.equal(event?.device?.index, 0);
  });

  it("reports ECC errors with the count added", async () => {
    const set = eventSet();
    set.register(nvml.device(2), 0x3n); // single- and double-bit, as a mask
    world.sim.setEcc(2, { sbeVolatile: 0, dbeVolatile: 2, sbeAggregate: 0, dbeAggregate: 2 });
    const event = await set.wait(1000);
    assert.deepEqual(event?.typeNames, ["doubleBitEccError"]);
    assert.equal(event?.data, 2n);
  });

  it("reports MIG configuration changes and XIDs attributed to a GPU instance", async () => {
    const gpu = nvml.device(0);
    gpu.mig.setMode(true);
    const set = eventSet();
    set.register(gpu, ["migConfigChange", "xidCriticalError"]);
    const gi = gpu.mig.createGpuInstance(19, { start: 6, size: 1 });
    const change = await set.wait(1000);
    assert.deepEqual(change?.typeNames, ["migConfigChange"]);
    assert.equal(change?.gpuInstanceId, gi.id);
    world.sim.injectXid(0, 43, gi.id);
    const xid = await set.wait(1000);
    assert.equal(xid?.data, 43n);
    assert.equal(xid?.gpuInstanceId, gi.id);
    assert.equal(xid?.computeInstanceId, undefined);
  });

  it("reports XID 79 when a GPU falls off the bus", async () => {
    const set = eventSet();
    set.register(nvml.device(5), ["xidCriticalError"]);
    world.sim.setLost(5, true);
    const event = await set.wait(1000);
    assert.equal(event?.data, 79n);
    assert.equal(event?.device?.index, 5);
  });

  it("refuses event types the GPU cannot deliver without registering anything", () => {
    const set = eventSet();
    assert.equal(set.register(nvml.device(0), ["gpuRecoveryAction"]), false);
  });

  it("stops waiting when aborted, between wait slices", async () => {
    const set = eventSet();
    set.register(nvml.device(0), ["xidCriticalError"]);
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(set.wait(10_000, { signal: controller.signal }), { name: "AbortError" });
    assert.ok(Date.now() - started < 2000);
  });

  it("allows one wait at a time per set and refuses a freed set", async () => {
    const set = nvml.createEventSet();
    set.register(nvml.device(0), ["xidCriticalError"]);
    const first = set.wait(150);
    await assert.rejects(
      set.wait(10),
      (err: unknown) => err instanceof NvmlError && err.code === "TESSERA_NVML_IN_USE",
    );
    const freeing = set.free(); // waits for the wait in progress
    assert.equal(await first, undefined);
    await freeing;
    await assert.rejects(set.wait(10), { code: "TESSERA_NVML_UNINITIALIZED" });
    assert.throws(() => set.register(nvml.device(0), ["xidCriticalError"]), { code: "TESSERA_NVML_UNINITIALIZED" });
  });
});
