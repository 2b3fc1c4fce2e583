import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NvmlContext } from "../../src/nvml/context.js";
import { NvmlError } from "../../src/nvml/errors.js";
import { decodePlacement, encodePlacement, readHandles, readPlacements } from "../../src/nvml/placement.js";
import { Rc } from "../../src/nvml/return-codes.js";

// Only error construction is needed from the context by these helpers.
const ctx = {
  error: (rc: number, operation: string, device?: { index?: number }, detail?: string) =>
    new NvmlError(rc, operation, { ...(device ? { device } : {}), ...(detail ? { detail } : {}) }),
} as unknown as NvmlContext;

/** A driver-like list function over `items` that honours the caller's capacity in *count. */
function listing(items: readonly bigint[]) {
  const calls: number[] = [];
  const fn = (_handle: unknown, _profileId: unknown, out: unknown, count: unknown) => {
    const n = count as Uint32Array;
    calls.push(n[0] as number);
    if ((n[0] as number) < items.length) {
      n[0] = items.length;
      return Rc.INSUFFICIENT_SIZE;
    }
    items.forEach((h, i) => {
      (out as BigUint64Array)[i] = h;
    });
    n[0] = items.length;
    return Rc.SUCCESS;
  };
  return { fn, calls };
}

describe("list helpers", () => {
  it("grows the handle buffer on INSUFFICIENT_SIZE until the list fits", () => {
    const items = Array.from({ length: 11 }, (_, i) => BigInt(0x1000 + i));
    const { fn, calls } = listing(items);
    assert.deepEqual(readHandles(ctx, fn, "nvmlDeviceGetGpuInstances", 1n, 19, { index: 0 }, 2), items);
    assert.deepEqual(calls, [2, 4, 8, 16]);
  });

  it("passes other failures on as NvmlError with the device", () => {
    const fn = () => Rc.NOT_SUPPORTED;
    assert.throws(
      () => readHandles(ctx, fn, "nvmlDeviceGetGpuInstances", 1n, 19, { index: 4 }),
      (err: unknown) =>
        err instanceof NvmlError && err.code === "TESSERA_NVML_NOT_SUPPORTED" && err.device?.index === 4,
    );
  });

  it("asks for the placement count with NULL, then fills a buffer of that size", () => {
    const seen: unknown[] = [];
    const fn = (_h: unknown, _p: unknown, out: unknown, count: unknown) => {
      seen.push(out);
      const n = count as Uint32Array;
      if (out === null) {
        n[0] = 2;
        return Rc.SUCCESS;
      }
      encodePlacement({ start: 0, size: 4 }).copy(out as Buffer, 0);
      encodePlacement({ start: 4, size: 4 }).copy(out as Buffer, 8);
      return Rc.SUCCESS;
    };
    assert.deepEqual(readPlacements(ctx, fn, "op", 1n, 9, {}), [
      { start: 0, size: 4 },
      { start: 4, size: 4 },
    ]);
    assert.equal(seen[0], null);
    assert.equal((seen[1] as Buffer).length, 16);
  });

  it("encodes placements as the 8-byte {start, size} struct", () => {
    const buf = encodePlacement({ start: 6, size: 2 });
    assert.deepEqual([...buf], [6, 0, 0, 0, 2, 0, 0, 0]);
    assert.deepEqual(decodePlacement(buf, 0), { start: 6, size: 2 });
  });
});
