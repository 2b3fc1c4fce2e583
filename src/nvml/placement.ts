// nvmlGpuInstancePlacement_t / nvmlComputeInstancePlacement_t ({start, size}, 8 bytes) and the
// two-call "count, then fill" pattern NVML uses for placement lists.
import type { NvmlContext } from "./context.js";
import type { NvmlDeviceRef } from "./errors.js";
import { layout } from "./ffi-types.js";
import { Rc } from "./return-codes.js";
import type { Placement } from "./types.js";

/** Writes `placement` into a fresh struct buffer for the …WithPlacement calls. */
export function encodePlacement(placement: Placement): Buffer {
  const L = layout().giPlacement; // same layout as the compute-instance placement
  const buf = Buffer.alloc(L.size);
  buf.writeUInt32LE(placement.start, L.off.start);
  buf.writeUInt32LE(placement.size, L.off.size);
  return buf;
}

/** The placement at byte `offset` of `buf`. */
export function decodePlacement(buf: Buffer, offset: number): Placement {
  const L = layout().giPlacement;
  return { start: buf.readUInt32LE(offset + L.off.start), size: buf.readUInt32LE(offset + L.off.size) };
}

/**
 * Calls `fn(handle, profileId, placements, count)` first with NULL to learn the count, then with
 * a buffer of that many placements.
 */
export function readPlacements(
  ctx: NvmlContext,
  fn: (...args: unknown[]) => number,
  operation: string,
  handle: bigint,
  profileId: number,
  ref: NvmlDeviceRef,
  detail?: string,
): Placement[] {
  const size = layout().giPlacement.size;
  const count = new Uint32Array(1);
  let rc = fn(handle, profileId, null, count);
  if (rc !== Rc.SUCCESS) throw ctx.error(rc, operation, ref, detail);
  if (count[0] === 0) return [];
  const buf = Buffer.alloc((count[0] as number) * size);
  rc = fn(handle, profileId, buf, count);
  if (rc !== Rc.SUCCESS) throw ctx.error(rc, operation, ref, detail);
  const out: Placement[] = [];
  for (let i = 0; i < (count[0] as number); i++) out.push(decodePlacement(buf, i * size));
  return out;
}

/**
 * Calls a "list instances" function (handle, profileId, handles, count) with room for `capacity`
 * handles, doubling on INSUFFICIENT_SIZE.
 */
export function readHandles(
  ctx: NvmlContext,
  fn: (...args: unknown[]) => number,
  operation: string,
  handle: bigint,
  profileId: number,
  ref: NvmlDeviceRef,
  capacity = 16,
  detail?: string,
): bigint[] {
  for (let room = capacity; room <= 1024; room *= 2) {
    const handles = new BigUint64Array(room);
    const count = new Uint32Array([room]);
    const rc = fn(handle, profileId, handles, count);
    if (rc === Rc.INSUFFICIENT_SIZE) continue;
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, operation, ref, detail);
    return Array.from(handles.subarray(0, Math.min(count[0] as number, room)));
  }
  throw ctx.error(Rc.INSUFFICIENT_SIZE, operation, ref, detail);
}
