import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TesseraError } from "../../src/errors.js";
import { CLOCK_EVENT_REASONS, decodeMask, EVENT_TYPES } from "../../src/nvml/constants.js";
import { describeDevice, NvmlError, NvmlLibraryNotFoundError } from "../../src/nvml/errors.js";
import { Rc, returnCodeKey, returnCodeName } from "../../src/nvml/return-codes.js";

describe("return codes", () => {
  it("names every nvmlReturn_t of the 13.3 header the way the header spells it", () => {
    assert.equal(returnCodeName(0), "NVML_SUCCESS");
    assert.equal(returnCodeName(3), "NVML_ERROR_NOT_SUPPORTED");
    assert.equal(returnCodeName(19), "NVML_ERROR_IN_USE");
    assert.equal(returnCodeName(23), "NVML_ERROR_INSUFFICIENT_RESOURCES");
    assert.equal(returnCodeName(25), "NVML_ERROR_ARGUMENT_VERSION_MISMATCH");
    assert.equal(returnCodeName(30), "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED");
    assert.equal(returnCodeName(999), "NVML_ERROR_UNKNOWN");
  });

  it("has 0..30 and 999 with no gaps or duplicates", () => {
    const codes = Object.values(Rc).sort((a, b) => a - b);
    assert.deepEqual(codes, [...Array.from({ length: 31 }, (_, i) => i), 999]);
  });

  it("keeps codes newer than the table recognisable instead of calling them unknown", () => {
    assert.equal(returnCodeName(31), "NVML_ERROR_UNRECOGNIZED_31");
    assert.equal(returnCodeKey(31), "UNRECOGNIZED_31");
  });
});

describe("NvmlError", () => {
  it("carries the NVML code name and number, the operation and the device", () => {
    const err = new NvmlError(Rc.IN_USE, "nvmlGpuInstanceDestroy", {
      device: { index: 3, uuid: "GPU-8f00" },
      description: "In use by another client",
      detail: "GPU instance 2",
    });
    assert.ok(err instanceof TesseraError);
    assert.equal(err.code, "TESSERA_NVML_IN_USE");
    assert.equal(err.nvmlCode, "NVML_ERROR_IN_USE");
    assert.equal(err.nvmlReturn, 19);
    assert.equal(err.operation, "nvmlGpuInstanceDestroy");
    assert.deepEqual(err.device, { index: 3, uuid: "GPU-8f00" });
    assert.equal(err.name, "NvmlError");
    assert.equal(
      err.message,
      "nvmlGpuInstanceDestroy failed on GPU 3 (GPU-8f00): NVML_ERROR_IN_USE (19): In use by another client (GPU instance 2)",
    );
  });

  it("names MIG devices as <gpu>:<mig>", () => {
    assert.equal(describeDevice({ index: 1, migIndex: 4, uuid: "MIG-x" }), "MIG device 1:4 (MIG-x)");
    assert.equal(describeDevice({ uuid: "GPU-y" }), "device (GPU-y)");
  });

  it("gives a missing library NVML's own LIBRARY_NOT_FOUND code, distinct from NOT_FOUND", () => {
    const err = new NvmlLibraryNotFoundError(
      [
        { path: "libnvidia-ml.so.1", reason: "cannot open shared object file" },
        { path: "/usr/lib64/libnvidia-ml.so.1", reason: "No such file or directory" },
      ],
      "set TESSERA_NVML_LIBRARY=/x/libnvidia-ml-sim.so.1",
    );
    assert.ok(err instanceof NvmlError);
    assert.equal(err.code, "TESSERA_NVML_LIBRARY_NOT_FOUND");
    assert.notEqual(err.code, new NvmlError(Rc.NOT_FOUND, "x").code);
    assert.match(err.message, /libnvidia-ml\.so\.1: cannot open shared object file/);
    assert.match(err.message, /\/usr\/lib64\/libnvidia-ml\.so\.1: No such file or directory/);
    assert.match(err.message, /TESSERA_NVML_LIBRARY=\/x\/libnvidia-ml-sim\.so\.1/);
    assert.equal(err.attempts.length, 2);
  });
});

describe("decodeMask", () => {
  it("names set bits in table order and keeps unknown bits as hex", () => {
    assert.deepEqual(decodeMask(0x1n | 0x40n | 0x10000n, CLOCK_EVENT_REASONS), [
      "gpuIdle",
      "hwThermalSlowdown",
      "0x10000",
    ]);
    assert.deepEqual(decodeMask(0n, EVENT_TYPES), []);
    assert.deepEqual(decodeMask(0x108n, EVENT_TYPES), ["xidCriticalError", "migConfigChange"]);
  });
});
