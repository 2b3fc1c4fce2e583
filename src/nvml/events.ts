// NVML event sets. nvmlEventSetWait_v2 blocks, so it runs on koffi's worker pool (`.async`) with
// its own result buffer; the event loop keeps running while a wait is in progress.
import { decodeMask, EVENT_TYPES, type EventTypeName, NO_INSTANCE_ID } from "./constants.js";
import type { NvmlContext } from "./context.js";
import { type Device, deviceHandle } from "./device.js";
import { layout } from "./ffi-types.js";
import { Rc } from "./return-codes.js";
import type { NvmlEvent } from "./types.js";

export interface DeviceEvent extends NvmlEvent {
  /** The registered device the event came from (undefined for a device this set does not know). */
  readonly device: Device | undefined;
}

export interface WaitOptions {
  /** Stops waiting between slices of at most SIGNAL_SLICE_MS; the blocking call itself cannot be interrupted. */
  readonly signal?: AbortSignal;
}

const SIGNAL_SLICE_MS = 200;

export class EventSet {
  readonly #ctx: NvmlContext;
  readonly #handle: bigint;
  readonly #devices = new Map<bigint, Device>();
  #inFlight: Promise<unknown> | undefined;
  #freed = false;

  /** @internal Created by Nvml.createEventSet(). */
  constructor(ctx: NvmlContext, handle: bigint) {
    this.#ctx = ctx;
    this.#handle = handle;
  }

  /**
   * Registers `device` for `types` (a mask or names). False when the device supports none of
   * them (NOT_SUPPORTED: the set stays usable, nothing was registered).
   */
  register(device: Device, types: bigint | readonly EventTypeName[]): boolean {
    const ctx = this.#ctx;
    this.#usable("nvmlDeviceRegisterEvents");
    const mask = typeof types === "bigint" ? types : types.reduce((m, name) => m | EVENT_TYPES[name], 0n);
    const handle = deviceHandle(device);
    const rc = ctx.fn.nvmlDeviceRegisterEvents(handle, mask, this.#handle);
    if (rc === Rc.NOT_SUPPORTED) return false;
    ctx.check(rc, "nvmlDeviceRegisterEvents", device.ref);
    this.#devices.set(handle, device);
    return true;
  }

  /** The next event, or undefined when none arrived within `timeoutMs`. One wait at a time per set. */
  async wait(timeoutMs: number, options: WaitOptions = {}): Promise<DeviceEvent | undefined> {
    this.#usable("nvmlEventSetWait_v2");
    if (this.#inFlight !== undefined) {
      throw this.#ctx.error(
        Rc.IN_USE,
        "nvmlEventSetWait_v2",
        undefined,
        "another wait on this event set is in progress",
      );
    }
    const run = this.#waitSliced(Math.max(0, Math.floor(timeoutMs)), options.signal);
    this.#inFlight = run;
    try {
      return await run;
    } finally {
      this.#inFlight = undefined;
    }
  }

  /** Frees the set once any wait in progress has returned. */
  async free(): Promise<void> {
    if (this.#freed) return;
    this.#freed = true;
    if (this.#inFlight !== undefined) await this.#inFlight.catch(() => undefined); // its outcome belongs to its caller
    this.#devices.clear();
    this.#ctx.check(this.#ctx.fn.nvmlEventSetFree(this.#handle), "nvmlEventSetFree");
  }

  async #waitSliced(timeoutMs: number, signal: AbortSignal | undefined): Promise<DeviceEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const remaining = Math.max(0, deadline - Date.now());
      const slice = signal === undefined ? remaining : Math.min(remaining, SIGNAL_SLICE_MS);
      const event = await this.#waitOnce(slice);
      if (event !== undefined || Date.now() >= deadline) return event;
    }
  }

  #waitOnce(timeoutMs: number): Promise<DeviceEvent | undefined> {
    const ctx = this.#ctx;
    const L = layout().eventData;
    const buf = Buffer.alloc(L.size); // owned by this call: the worker thread writes it
    return new Promise((resolve, reject) => {
      ctx.fn.nvmlEventSetWait_v2.async(this.#handle, buf, timeoutMs, (err: unknown, rc: number) => {
        if (err) return reject(err);
        if (rc === Rc.TIMEOUT) return resolve(undefined);
        if (rc !== Rc.SUCCESS) return reject(ctx.error(rc, "nvmlEventSetWait_v2"));
        const gi = buf.readUInt32LE(L.off.gpuInstanceId);
        const ci = buf.readUInt32LE(L.off.computeInstanceId);
        const type = buf.readBigUInt64LE(L.off.eventType);
        resolve({
          device: this.#devices.get(buf.readBigUInt64LE(L.off.device)),
          type,
          typeNames: decodeMask(type, EVENT_TYPES),
          data: buf.readBigUInt64LE(L.off.eventData),
          gpuInstanceId: gi === NO_INSTANCE_ID ? undefined : gi,
          computeInstanceId: ci === NO_INSTANCE_ID ? undefined : ci,
        });
      });
    });
  }

  #usable(operation: string): void {
    if (this.#freed) throw this.#ctx.error(Rc.UNINITIALIZED, operation, undefined, "event set was freed");
  }
}
