// What every typed NVML object of one library shares: the bound functions, the versioned-symbol
// choices, and scratch memory for out-parameters. Sync NVML calls run to completion on the one JS
// thread, so one set of scratch buffers serves every device; async calls (init, event wait) must
// bring their own memory.
import { type NvmlDeviceRef, NvmlError, NvmlReadOnlyError } from "./errors.js";
import type { NvmlBindings, NvmlFn, NvmlSymbol } from "./ffi.js";
import { layout } from "./ffi-types.js";
import { Rc } from "./return-codes.js";
import type { NvmlFeatures } from "./types.js";

const SCRATCH_STRUCT_BYTES = 256; // ≥ every single struct passed on hot paths (largest: 152)

export class NvmlContext {
  readonly fn: NvmlBindings["fn"];
  readonly libraryPath: string;
  readonly readOnly: boolean;
  readonly simulated: boolean;
  readonly missing: ReadonlySet<NvmlSymbol>;
  readonly #errorString: ((code: number) => string) | undefined;

  // Scratch out-parameters reused by every sync call: one typed array per out-parameter
  // position, because subarray() views would allocate on every call.
  readonly u32 = [new Uint32Array(1), new Uint32Array(1), new Uint32Array(1), new Uint32Array(1)] as const;
  readonly i32 = [new Int32Array(1), new Int32Array(1)] as const;
  readonly pair = new Uint32Array(2);
  readonly u64 = new BigUint64Array(1);
  readonly handle = new BigUint64Array(1);
  readonly struct = Buffer.alloc(SCRATCH_STRUCT_BYTES);
  readonly text = Buffer.alloc(256);

  // Alternatives chosen once: by symbol presence at load, or by the first definite answer
  // (a version word the library accepts) for the versioned-struct calls.
  readonly clockEventReasons: NvmlFn;
  readonly supportedClockEventReasons: NvmlFn;
  readonly clockEventReasonsSymbol: NvmlFeatures["clockEventReasons"];
  memoryInfoVersion: 2 | 1 | undefined;
  temperatureV: boolean | undefined;
  gpuInstanceProfileVersion: 3 | 2 | 1 | undefined;
  computeInstanceProfileVersion: 3 | 2 | 1 | undefined;

  constructor(bindings: NvmlBindings, libraryPath: string, readOnly = false) {
    this.readOnly = readOnly;
    this.simulated = bindings.simulated;
    this.fn = bindings.fn;
    this.missing = bindings.missing;
    this.#errorString = bindings.errorString;
    this.libraryPath = libraryPath;
    const modern = !this.missing.has("nvmlDeviceGetCurrentClocksEventReasons");
    const legacy = !this.missing.has("nvmlDeviceGetCurrentClocksThrottleReasons");
    this.clockEventReasonsSymbol = modern
      ? "nvmlDeviceGetCurrentClocksEventReasons"
      : legacy
        ? "nvmlDeviceGetCurrentClocksThrottleReasons"
        : undefined;
    this.clockEventReasons = modern
      ? this.fn.nvmlDeviceGetCurrentClocksEventReasons
      : this.fn.nvmlDeviceGetCurrentClocksThrottleReasons;
    this.supportedClockEventReasons = !this.missing.has("nvmlDeviceGetSupportedClocksEventReasons")
      ? this.fn.nvmlDeviceGetSupportedClocksEventReasons
      : this.fn.nvmlDeviceGetSupportedClocksThrottleReasons;
    this.memoryInfoVersion = !this.missing.has("nvmlDeviceGetMemoryInfo_v2")
      ? 2
      : !this.missing.has("nvmlDeviceGetMemoryInfo")
        ? 1
        : undefined;
    this.temperatureV = !this.missing.has("nvmlDeviceGetTemperatureV")
      ? true
      : !this.missing.has("nvmlDeviceGetTemperature")
        ? false
        : undefined;
    layout(); // build struct layouts now, not inside the first telemetry sweep
  }

  /** The NvmlError for `rc`, with nvmlErrorString's text when the library has it. */
  error(rc: number, operation: string, device?: NvmlDeviceRef, detail?: string): NvmlError {
    const description = this.#errorString?.(rc);
    return new NvmlError(rc, operation, {
      ...(device ? { device } : {}),
      ...(description ? { description } : {}),
      ...(detail ? { detail } : {}),
    });
  }

  /** Refuses a mutating call in read-only mode, before anything reaches the driver. */
  assertWritable(operation: string, device?: NvmlDeviceRef): void {
    if (this.readOnly) throw new NvmlReadOnlyError(operation, device);
  }

  /** Throws unless rc is NVML_SUCCESS. */
  check(rc: number, operation: string, device?: NvmlDeviceRef): void {
    if (rc !== Rc.SUCCESS) throw this.error(rc, operation, device);
  }

  /**
   * The convention for reads: true when the value is there, false when the device does not
   * support it (NOT_SUPPORTED, or the symbol is absent from this driver); throws otherwise.
   */
  present(rc: number, operation: string, device?: NvmlDeviceRef): boolean {
    if (rc === Rc.SUCCESS) return true;
    if (rc === Rc.NOT_SUPPORTED || rc === Rc.FUNCTION_NOT_FOUND) return false;
    throw this.error(rc, operation, device);
  }
}

/** The NUL-terminated string the library wrote into `buf` at `start` (at most `max` bytes). */
export function readText(buf: Buffer, start = 0, max = buf.length - start): string {
  const end = buf.indexOf(0, start);
  return buf.toString("utf8", start, end < 0 || end > start + max ? start + max : end);
}

/** A u64 at `offset` as a number (exact below 2^53) without allocating a BigInt. */
export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * 0x1_0000_0000;
}

/** A handle (pointer) at `offset`: handles stay BigInt, as koffi 3 passes them. */
export function readHandle(buf: Buffer, offset: number): bigint {
  return buf.readBigUInt64LE(offset);
}
