// The entry point: load libnvidia-ml (or the simulator), bind it, initialise it off the event
// loop, and hand out devices and event sets.
import { BUFFER_SIZES } from "./constants.js";
import { NvmlContext, readText } from "./context.js";
import { Device, nvmlIndexOf } from "./device.js";
import { NvmlError } from "./errors.js";
import { EventSet } from "./events.js";
import { bindNvml } from "./ffi.js";
import { type LibrarySearchOptions, loadNvmlLibrary } from "./loader.js";
import { Rc } from "./return-codes.js";
import type { CudaDriverVersion, NvmlFeatures } from "./types.js";

export interface OpenNvmlOptions extends LibrarySearchOptions {
  /** Make every mutating NVML call (MIG mode, instance create/destroy) impossible. */
  readonly readOnly?: boolean;
}

/** One GPU index as enumeration found it: a device, or why there is none (e.g. GPU_IS_LOST). */
export type DeviceSlot =
  | { readonly index: number; readonly device: Device }
  | { readonly index: number; readonly error: NvmlError };

/**
 * Loads NVML (explicit path, TESSERA_NVML_LIBRARY, then the system search) and runs nvmlInit_v2
 * on a worker thread: on real hardware init takes hundreds of milliseconds.
 */
export async function openNvml(options: OpenNvmlOptions = {}): Promise<Nvml> {
  const { lib, path } = loadNvmlLibrary(options);
  const ctx = new NvmlContext(bindNvml(lib, path), path, options.readOnly ?? false);
  const rc = await new Promise<number>((resolve, reject) => {
    ctx.fn.nvmlInit_v2.async((err: unknown, result: number) => (err ? reject(err) : resolve(result)));
  });
  if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlInit_v2", undefined, `library ${path}`);
  return new Nvml(ctx);
}

export class Nvml {
  readonly #ctx: NvmlContext;
  #shutdown = false;

  /** @internal Use openNvml(). */
  constructor(ctx: NvmlContext) {
    this.#ctx = ctx;
  }

  /** Whether mutating calls are refused (read-only mode). */
  get readOnly(): boolean {
    return this.#ctx.readOnly;
  }

  /** Whether the loaded library is Tessera's simulator rather than NVIDIA's driver. */
  get simulated(): boolean {
    return this.#ctx.simulated;
  }

  /** The file (or soname) that was loaded. */
  get libraryPath(): string {
    return this.#ctx.libraryPath;
  }

  /** Which alternative symbols and struct versions this library got. */
  get features(): NvmlFeatures {
    const ctx = this.#ctx;
    return {
      clockEventReasons: ctx.clockEventReasonsSymbol,
      memoryInfo: ctx.memoryInfoVersion === 2 ? "v2" : ctx.memoryInfoVersion === 1 ? "v1" : undefined,
      temperature:
        ctx.temperatureV === true
          ? "nvmlDeviceGetTemperatureV"
          : ctx.temperatureV === false
            ? "nvmlDeviceGetTemperature"
            : undefined,
      gpuInstanceProfileInfo: ctx.gpuInstanceProfileVersion,
      computeInstanceProfileInfo: ctx.computeInstanceProfileVersion,
      missingSymbols: [...ctx.missing].sort(),
    };
  }

  /** Kernel driver version, e.g. "580.105.08". */
  driverVersion(): string {
    return this.#text(
      this.#ctx.fn.nvmlSystemGetDriverVersion,
      "nvmlSystemGetDriverVersion",
      BUFFER_SIZES.driverVersion,
    );
  }

  /** NVML library version, e.g. "13.580.105.08". */
  nvmlVersion(): string {
    return this.#text(this.#ctx.fn.nvmlSystemGetNVMLVersion, "nvmlSystemGetNVMLVersion", BUFFER_SIZES.nvmlVersion);
  }

  /** CUDA version the driver supports; absent when the driver cannot tell. */
  cudaDriverVersion(): CudaDriverVersion | undefined {
    const ctx = this.#ctx;
    const out = new Int32Array(1);
    let rc = ctx.fn.nvmlSystemGetCudaDriverVersion_v2(out);
    let op = "nvmlSystemGetCudaDriverVersion_v2";
    if (rc === Rc.FUNCTION_NOT_FOUND) {
      rc = ctx.fn.nvmlSystemGetCudaDriverVersion(out);
      op = "nvmlSystemGetCudaDriverVersion";
    }
    if (!ctx.present(rc, op)) return undefined;
    const raw = out[0] as number;
    return { major: Math.floor(raw / 1000), minor: Math.floor((raw % 1000) / 10), raw };
  }

  deviceCount(): number {
    const ctx = this.#ctx;
    const u = ctx.u32[0];
    ctx.check(ctx.fn.nvmlDeviceGetCount_v2(u), "nvmlDeviceGetCount_v2");
    return u[0] as number;
  }

  /** The GPU at NVML index `index`. */
  device(index: number): Device {
    const ctx = this.#ctx;
    ctx.check(ctx.fn.nvmlDeviceGetHandleByIndex_v2(index, ctx.handle), "nvmlDeviceGetHandleByIndex_v2", { index });
    return new Device(ctx, ctx.handle[0] as bigint, { index, isMig: false });
  }

  /** Every GPU; throws if any index fails (see deviceSlots() to keep going past a lost GPU). */
  devices(): Device[] {
    const out: Device[] = [];
    for (let i = 0, n = this.deviceCount(); i < n; i++) out.push(this.device(i));
    return out;
  }

  /** Every GPU index with its device or the error that kept it from being opened. */
  deviceSlots(): DeviceSlot[] {
    const out: DeviceSlot[] = [];
    for (let index = 0, n = this.deviceCount(); index < n; index++) {
      try {
        out.push({ index, device: this.device(index) });
      } catch (err) {
        if (!(err instanceof NvmlError)) throw err;
        out.push({ index, error: err });
      }
    }
    return out;
  }

  /** A GPU (`GPU-…`) or MIG device (`MIG-…`) by UUID. */
  deviceByUuid(uuid: string): Device {
    const ctx = this.#ctx;
    ctx.check(ctx.fn.nvmlDeviceGetHandleByUUID(uuid, ctx.handle), "nvmlDeviceGetHandleByUUID", { uuid });
    return this.#fromHandle(ctx.handle[0] as bigint);
  }

  /** A GPU by PCI bus id (`00000000:3B:00.0`, or the legacy 4-digit-domain form). */
  deviceByPciBusId(busId: string): Device {
    const ctx = this.#ctx;
    const rc = ctx.fn.nvmlDeviceGetHandleByPciBusId_v2(busId, ctx.handle);
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlDeviceGetHandleByPciBusId_v2", undefined, `bus id ${busId}`);
    return this.#fromHandle(ctx.handle[0] as bigint);
  }

  /** Name of a process NVML knows (one running on a GPU); absent when it does not know the pid. */
  processName(pid: number): string | undefined {
    const ctx = this.#ctx;
    const rc = ctx.fn.nvmlSystemGetProcessName(pid, ctx.text, BUFFER_SIZES.processName);
    if (rc === Rc.NOT_FOUND) return undefined;
    return ctx.present(rc, "nvmlSystemGetProcessName") ? readText(ctx.text) : undefined;
  }

  createEventSet(): EventSet {
    const ctx = this.#ctx;
    const out = new BigUint64Array(1);
    ctx.check(ctx.fn.nvmlEventSetCreate(out), "nvmlEventSetCreate");
    return new EventSet(ctx, out[0] as bigint);
  }

  /** nvmlShutdown (reference-counted by NVML: one per successful open). Idempotent. */
  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    this.#ctx.check(this.#ctx.fn.nvmlShutdown(), "nvmlShutdown");
  }

  #fromHandle(handle: bigint): Device {
    const ctx = this.#ctx;
    const isMig = ctx.u32[0];
    const rc = ctx.fn.nvmlDeviceIsMigDeviceHandle(handle, isMig);
    if (rc !== Rc.SUCCESS || isMig[0] === 0) {
      return new Device(ctx, handle, { index: nvmlIndexOf(ctx, handle), isMig: false });
    }
    const probe = new Device(ctx, handle, { index: undefined, isMig: true });
    const parent = probe.parent();
    // Its slot under the parent, so messages and callers can name it as <gpu>:<mig>.
    const max = parent.maxMigDeviceCount() ?? 0;
    for (let migIndex = 0; migIndex < max; migIndex++) {
      const candidate = parent.migDevice(migIndex);
      if (candidate?.equals(probe)) return candidate;
    }
    return new Device(ctx, handle, { index: parent.index, isMig: true });
  }

  #text(fn: (...args: unknown[]) => number, op: string, size: number): string {
    const ctx = this.#ctx;
    ctx.check(fn(ctx.text, size), op);
    return readText(ctx.text, 0, size);
  }
}
