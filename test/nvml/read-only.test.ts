import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NvmlReadOnlyError } from "../../src/nvml/errors.js";
import { type Nvml, openNvml } from "../../src/nvml/library.js";
import { createSimWorld, type SimWorld } from "./sim-world.js";

let world: SimWorld;
let writable: Nvml;
let readOnly: Nvml;

before(async () => {
  world = createSimWorld("dgx-h100");
  writable = await openNvml();
  readOnly = await openNvml({ readOnly: true });
});
after(() => {
  readOnly?.shutdown();
  writable?.shutdown();
  world?.dispose();
});

function refused(operation: string) {
  return (err: unknown) => {
    assert.ok(err instanceof NvmlReadOnlyError, `expected NvmlReadOnlyError, got ${String(err)}`);
    assert.equal(err.code, "TESSERA_READ_ONLY");
    assert.equal(err.operation, operation);
    return true;
  };
}

describe("read-only mode", () => {
  it("refuses a MIG mode change before it reaches the driver", () => {
    assert.equal(readOnly.readOnly, true);
    assert.throws(() => readOnly.device(0).mig.setMode(true), refused("nvmlDeviceSetMigMode"));
    assert.deepEqual(readOnly.device(0).mig.mode(), { current: false, pending: false });
  });

  it("refuses creating and destroying instances but still reads them", () => {
    writable.device(1).mig.setMode(true);
    const gi = writable.device(1).mig.createGpuInstance(9, { start: 4, size: 4 });
    gi.createComputeInstance(2);
    const ro = readOnly.device(1);
    assert.throws(() => ro.mig.createGpuInstance(19), refused("nvmlDeviceCreateGpuInstance"));
    const [seen] = ro.mig.gpuInstances(9);
    assert.ok(seen, "the read-only handle still lists the instance");
    assert.throws(() => seen.createComputeInstance(0), refused("nvmlGpuInstanceCreateComputeInstance"));
    const [ci] = seen.computeInstances();
    assert.ok(ci);
    assert.throws(() => ci.destroy(), refused("nvmlComputeInstanceDestroy"));
    assert.throws(() => seen.destroy(), refused("nvmlGpuInstanceDestroy"));
    assert.equal(ro.migDevices().length, 1, "nothing was destroyed");
  });
});
