// Decoding nvmlDeviceGetComputeRunningProcesses_v3 output despite the driver ABI trap in
// reference/nvml.md §7: some R535-era drivers wrote 32-byte records (v3 with
// usedGpuCcProtectedMemory) and at least one wrote 16-byte v1 records into a buffer the caller
// sized for 24-byte ones. The caller over-allocates for the widest stride and pre-fills the buffer
// with FILL; the stride is then chosen by checking which one yields plausible records.
import { NO_INSTANCE_ID } from "./constants.js";
import type { ProcessInfo } from "./types.js";

/** nvmlProcessInfo_v1_t, nvmlProcessInfo_v2_t (= the current nvmlProcessInfo_t), nvmlProcessInfo_v3_t. */
export const PROCESS_INFO_STRIDES = { v1: 16, v2: 24, v3: 32 } as const;
export const MAX_PROCESS_STRIDE = PROCESS_INFO_STRIDES.v3;
/** Byte the buffer is pre-filled with, so untouched memory is recognisable. */
export const PROCESS_BUFFER_FILL = 0xa5;

const FILL_U32 = 0xa5a5a5a5;
/** Linux PID_MAX_LIMIT (2^22): no pid is larger. */
const PID_MAX = 4_194_304;
/** GPU/compute instance ids are small (≤ 14 on today's GPUs); leave room for larger parts. */
const MAX_INSTANCE_ID = 64;
const VALUE_NOT_AVAILABLE_U32 = 0xffffffff;

/** A buffer large enough for `count` records at the widest stride, pre-filled for stride detection. */
export function allocateProcessBuffer(count: number): Buffer {
  return Buffer.alloc(Math.max(1, count) * MAX_PROCESS_STRIDE, PROCESS_BUFFER_FILL);
}

/**
 * The stride the driver used for `count` records: the header's 24 bytes when they look right,
 * else 32, else 16. Undefined when no stride gives plausible records.
 */
export function detectProcessStride(buf: Buffer, count: number): number | undefined {
  if (count === 0) return PROCESS_INFO_STRIDES.v2;
  for (const stride of [PROCESS_INFO_STRIDES.v2, PROCESS_INFO_STRIDES.v3, PROCESS_INFO_STRIDES.v1]) {
    if (plausible(buf, count, stride)) return stride;
  }
  return undefined;
}

function plausible(buf: Buffer, count: number, stride: number): boolean {
  if (count * stride > buf.length) return false;
  for (let i = 0; i < count; i++) {
    const at = i * stride;
    const pid = buf.readUInt32LE(at);
    if (pid === 0 || pid > PID_MAX) return false;
    if (stride >= PROCESS_INFO_STRIDES.v2) {
      // v2/v3 records carry instance ids right after the memory field; a v1 record has none,
      // so those bytes are either the next record's pid/padding or untouched fill.
      if (!instanceIdPlausible(buf.readUInt32LE(at + 16))) return false;
      if (!instanceIdPlausible(buf.readUInt32LE(at + 20))) return false;
    }
  }
  return true;
}

function instanceIdPlausible(id: number): boolean {
  return id === NO_INSTANCE_ID || id < MAX_INSTANCE_ID;
}

/** Records in `buf`, decoded at `stride` (see detectProcessStride). */
export function decodeProcesses(buf: Buffer, count: number, stride: number): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * stride;
    const lo = buf.readUInt32LE(at + 8);
    const hi = buf.readUInt32LE(at + 12);
    // NVML_VALUE_NOT_AVAILABLE is (unsigned long long)-1.
    const memoryUnknown = lo === VALUE_NOT_AVAILABLE_U32 && hi === VALUE_NOT_AVAILABLE_U32;
    let gpuInstanceId: number | undefined;
    let computeInstanceId: number | undefined;
    if (stride >= PROCESS_INFO_STRIDES.v2) {
      const gi = buf.readUInt32LE(at + 16);
      const ci = buf.readUInt32LE(at + 20);
      gpuInstanceId = gi === NO_INSTANCE_ID || gi === FILL_U32 ? undefined : gi;
      computeInstanceId = ci === NO_INSTANCE_ID || ci === FILL_U32 ? undefined : ci;
    }
    out.push({
      pid: buf.readUInt32LE(at),
      usedGpuMemoryBytes: memoryUnknown ? undefined : lo + hi * 0x1_0000_0000,
      gpuInstanceId,
      computeInstanceId,
    });
  }
  return out;
}
