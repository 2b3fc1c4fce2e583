import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  allocateProcessBuffer,
  decodeProcesses,
  detectProcessStride,
  PROCESS_INFO_STRIDES,
} from "../../src/nvml/processes.js";

interface Record {
  pid: number;
  memoryBytes: number | undefined;
  gi: number | undefined;
  ci: number | undefined;
}

const NONE = 0xffffffff;

/** Writes records the way a driver with the given struct version would. */
function driverWrites(records: readonly Record[], stride: 16 | 24 | 32): Buffer {
  const buf = allocateProcessBuffer(records.length + 8);
  records.forEach((r, i) => {
    const at = i * stride;
    buf.writeUInt32LE(r.pid, at);
    buf.writeUInt32LE(0, at + 4); // padding
    if (r.memoryBytes === undefined) buf.writeBigUInt64LE(0xffff_ffff_ffff_ffffn, at + 8);
    else buf.writeBigUInt64LE(BigInt(r.memoryBytes), at + 8);
    if (stride >= 24) {
      buf.writeUInt32LE(r.gi ?? NONE, at + 16);
      buf.writeUInt32LE(r.ci ?? NONE, at + 20);
    }
    if (stride === 32) buf.writeBigUInt64LE(0n, at + 24); // usedGpuCcProtectedMemory
  });
  return buf;
}

const record = fc.record({
  // Host pids; 0..99 are kernel threads and init, never GPU clients.
  pid: fc.integer({ min: 100, max: 4_194_304 }),
  memoryBytes: fc.option(fc.integer({ min: 0, max: 96 * 2 ** 30 }), { nil: undefined }),
  gi: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
  ci: fc.option(fc.integer({ min: 0, max: 7 }), { nil: undefined }),
});

describe("process list stride guard", () => {
  it("decodes the header's 24-byte records", () => {
    const records: Record[] = [
      { pid: 4411, memoryBytes: 2 ** 30, gi: 1, ci: 0 },
      { pid: 4417, memoryBytes: undefined, gi: undefined, ci: undefined },
    ];
    const buf = driverWrites(records, 24);
    assert.equal(detectProcessStride(buf, 2), 24);
    assert.deepEqual(decodeProcesses(buf, 2, 24), [
      { pid: 4411, usedGpuMemoryBytes: 2 ** 30, gpuInstanceId: 1, computeInstanceId: 0 },
      { pid: 4417, usedGpuMemoryBytes: undefined, gpuInstanceId: undefined, computeInstanceId: undefined },
    ]);
  });

  it("detects the 32-byte stride of R535-era drivers", () => {
    const buf = driverWrites(
      [
        { pid: 500, memoryBytes: 10, gi: 2, ci: 0 },
        { pid: 501, memoryBytes: 20, gi: 3, ci: 0 },
        { pid: 502, memoryBytes: 30, gi: 4, ci: 1 },
      ],
      32,
    );
    assert.equal(detectProcessStride(buf, 3), 32);
    assert.deepEqual(
      decodeProcesses(buf, 3, 32).map((p) => [p.pid, p.gpuInstanceId]),
      [
        [500, 2],
        [501, 3],
        [502, 4],
      ],
    );
  });

  it("detects 16-byte v1 records, even a single one, from the untouched fill", () => {
    const one = driverWrites([{ pid: 777, memoryBytes: 4096, gi: undefined, ci: undefined }], 16);
    assert.equal(detectProcessStride(one, 1), 16);
    const [p] = decodeProcesses(one, 1, 16);
    assert.deepEqual(p, { pid: 777, usedGpuMemoryBytes: 4096, gpuInstanceId: undefined, computeInstanceId: undefined });
  });

  it("refuses garbage instead of inventing processes", () => {
    const buf = allocateProcessBuffer(4); // nothing written: all fill
    assert.equal(detectProcessStride(buf, 2), undefined);
  });

  it("recovers every record at every stride (property)", () => {
    fc.assert(
      fc.property(
        fc.array(record, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(16 as const, 24 as const, 32 as const),
        (records, stride) => {
          const buf = driverWrites(records, stride);
          const detected = detectProcessStride(buf, records.length);
          assert.notEqual(detected, undefined);
          const decoded = decodeProcesses(buf, records.length, detected as number);
          const expected = records.map((r) => ({
            pid: r.pid,
            usedGpuMemoryBytes: r.memoryBytes,
            gpuInstanceId: stride === PROCESS_INFO_STRIDES.v1 ? undefined : r.gi,
            computeInstanceId: stride === PROCESS_INFO_STRIDES.v1 ? undefined : r.ci,
          }));
          assert.deepEqual(decoded, expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
