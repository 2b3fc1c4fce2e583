import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_HEALTH_THRESHOLDS, type GpuHealthInput, gpuHealth, pruneXids } from "../../src/telemetry/health.js";
import { lookupXid, NVML_UNKNOWN_XID, xidCatalog } from "../../src/telemetry/xid-catalog.js";

const NOW = Date.UTC(2026, 10, 27, 12);
const healthy: GpuHealthInput = {
  lost: false,
  xids: [],
  eccUncorrectedVolatile: 0,
  remappedRows: { pending: false, failure: false },
  retiredPagesPending: false,
  temperatureC: 40,
  slowdownTemperatureC: 89,
  nowMs: NOW,
};

describe("gpuHealth", () => {
  const cases: [string, Partial<GpuHealthInput>, "healthy" | "degraded" | "unhealthy", RegExp | undefined][] = [
    ["nothing wrong", {}, "healthy", undefined],
    [
      "values the driver does not report",
      { eccUncorrectedVolatile: undefined, remappedRows: undefined, temperatureC: undefined },
      "healthy",
      undefined,
    ],
    ["a lost GPU", { lost: true }, "unhealthy", /fallen off the bus/],
    [
      "an application XID (13)",
      { xids: [{ code: 13, atMs: NOW - 1000, gpuInstanceId: undefined }] },
      "healthy",
      undefined,
    ],
    [
      "a double-bit ECC XID (48)",
      { xids: [{ code: 48, atMs: NOW - 1000, gpuInstanceId: undefined }] },
      "unhealthy",
      /XID 48 .*WORKFLOW_XID_48/,
    ],
    ["XID 79", { xids: [{ code: 79, atMs: NOW - 1000, gpuInstanceId: undefined }] }, "unhealthy", /RESTART_BM/],
    [
      "a contained memory error on an instance (94)",
      { xids: [{ code: 94, atMs: NOW - 1000, gpuInstanceId: 3 }] },
      "degraded",
      /on GPU instance 3/,
    ],
    [
      "an XID older than the hold window",
      { xids: [{ code: 48, atMs: NOW - DEFAULT_HEALTH_THRESHOLDS.xidHoldMs - 1, gpuInstanceId: undefined }] },
      "healthy",
      undefined,
    ],
    [
      "an XID not in the catalog",
      { xids: [{ code: 150, atMs: NOW, gpuInstanceId: undefined }] },
      "degraded",
      /XID 150/,
    ],
    ["volatile uncorrectable ECC errors", { eccUncorrectedVolatile: 2 }, "unhealthy", /2 uncorrectable ECC errors/],
    ["a failed row remap", { remappedRows: { pending: false, failure: true } }, "unhealthy", /row remapping failed/],
    ["a pending row remap", { remappedRows: { pending: true, failure: false } }, "degraded", /reset the GPU/],
    ["pending page retirement", { retiredPagesPending: true }, "degraded", /page retirement pending/],
    [
      "running near the slowdown temperature",
      { temperatureC: 86 },
      "degraded",
      /within 5 C of the slowdown threshold \(89 C\)/,
    ],
  ];
  for (const [what, change, state, reason] of cases) {
    it(`${what}: ${state}`, () => {
      const v = gpuHealth({ ...healthy, ...change }, DEFAULT_HEALTH_THRESHOLDS);
      assert.equal(v.state, state);
      if (reason) assert.match(v.reasons[0] ?? "", reason);
      else assert.deepEqual(v.reasons, []);
    });
  }

  it("puts the worst reason first and keeps them all", () => {
    const v = gpuHealth(
      {
        ...healthy,
        retiredPagesPending: true,
        eccUncorrectedVolatile: 1,
        xids: [{ code: 94, atMs: NOW, gpuInstanceId: undefined }],
      },
      DEFAULT_HEALTH_THRESHOLDS,
    );
    assert.equal(v.state, "unhealthy");
    assert.equal(v.reasons.length, 3);
    assert.match(v.reasons[0] ?? "", /uncorrectable/);
  });

  it("forgets XIDs past the hold window", () => {
    const kept = pruneXids(
      [
        { code: 48, atMs: NOW - 10, gpuInstanceId: undefined },
        { code: 48, atMs: NOW - DEFAULT_HEALTH_THRESHOLDS.xidHoldMs, gpuInstanceId: undefined },
      ],
      NOW,
      DEFAULT_HEALTH_THRESHOLDS,
    );
    assert.equal(kept.length, 1);
  });
});

describe("XID catalog", () => {
  it("has NVIDIA's action for the XIDs operators act on", () => {
    assert.equal(lookupXid(79).action, "RESTART_BM");
    assert.equal(lookupXid(48).severity, "fatal");
    assert.equal(lookupXid(13).severity, "app");
    assert.equal(lookupXid(NVML_UNKNOWN_XID).mnemonic, "UNKNOWN");
    const codes = xidCatalog().map((e) => e.code);
    assert.deepEqual(
      codes,
      [...codes].sort((a, b) => a - b),
      "sorted by code",
    );
    assert.equal(new Set(codes).size, codes.length, "no duplicates");
  });
});
