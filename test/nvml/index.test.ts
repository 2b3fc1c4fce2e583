import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as api from "../../src/nvml/index.js";

describe("src/nvml public surface", () => {
  it("exports the typed API and nothing of the raw layer", () => {
    for (const name of ["openNvml", "Nvml", "Device", "DeviceMig", "GpuInstance", "ComputeInstance", "EventSet"]) {
      assert.equal(typeof (api as Record<string, unknown>)[name], "function", name);
    }
    for (const name of ["NvmlError", "NvmlLibraryNotFoundError", "simulatorLibraryPath", "GpmSampler"]) {
      assert.ok(name in api, name);
    }
    for (const raw of ["deviceHandle", "bindNvml", "NvmlContext", "layout", "Rc", "readU64"]) {
      assert.equal(raw in api, false, `${raw} stays inside src/nvml/`);
    }
  });
});
