// GPU instances and their compute instances. Handles become invalid when their instance is
// destroyed (by anyone); an object that destroyed its own instance refuses further calls itself
// rather than hand a dead handle to the driver.
import { COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, COMPUTE_INSTANCE_PROFILE_COUNT } from "./constants.js";
import type { NvmlContext } from "./context.js";
import type { NvmlDeviceRef } from "./errors.js";
import { layout } from "./ffi-types.js";
import { decodePlacement, encodePlacement, readHandles, readPlacements } from "./placement.js";
import { readComputeInstanceProfile } from "./profile-info.js";
import { Rc } from "./return-codes.js";
import type { ComputeInstanceInfo, ComputeInstanceProfile, GpuInstanceInfo, Placement } from "./types.js";

export class GpuInstance {
  readonly #ctx: NvmlContext;
  readonly #handle: bigint;
  readonly #device: NvmlDeviceRef;
  #id: number | undefined;
  #destroyed = false;

  /** @internal GPU instances come from Device.mig. */
  constructor(ctx: NvmlContext, handle: bigint, device: NvmlDeviceRef) {
    this.#ctx = ctx;
    this.#handle = handle;
    this.#device = device;
  }

  /** The parent GPU, as far as known (for messages and lookups). */
  get device(): NvmlDeviceRef {
    return this.#device;
  }

  equals(other: GpuInstance): boolean {
    return this.#handle === other.#handle;
  }

  /** GPU-instance id (from nvmlGpuInstanceGetInfo, read once). */
  get id(): number {
    this.#id ??= this.info().id;
    return this.#id;
  }

  info(): GpuInstanceInfo {
    const ctx = this.#ctx;
    const L = layout().giInfo;
    const buf = ctx.struct;
    this.#live("nvmlGpuInstanceGetInfo");
    ctx.check(ctx.fn.nvmlGpuInstanceGetInfo(this.#handle, buf), "nvmlGpuInstanceGetInfo", this.#device);
    const info = {
      id: buf.readUInt32LE(L.off.id),
      profileId: buf.readUInt32LE(L.off.profileId),
      placement: decodePlacement(buf, L.off.placement),
    };
    this.#id = info.id;
    return info;
  }

  /** Destroys the instance; IN_USE while compute instances or processes exist on it. */
  destroy(): void {
    const ctx = this.#ctx;
    this.#live("nvmlGpuInstanceDestroy");
    ctx.assertWritable("nvmlGpuInstanceDestroy");
    const rc = ctx.fn.nvmlGpuInstanceDestroy(this.#handle);
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlGpuInstanceDestroy", this.#device, this.#describe());
    this.#destroyed = true;
  }

  /** Compute-instance profile by index constant; undefined where this GPU instance has none. */
  computeInstanceProfile(
    index: number,
    engineProfile: number = COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
  ): ComputeInstanceProfile | undefined {
    this.#live("nvmlGpuInstanceGetComputeInstanceProfileInfoV");
    const read = readComputeInstanceProfile(this.#ctx, this.#handle, index, engineProfile);
    if (read.rc === Rc.SUCCESS) return read.profile;
    if (read.rc === Rc.NOT_SUPPORTED || read.rc === Rc.INVALID_ARGUMENT) return undefined;
    throw this.#ctx.error(read.rc, read.operation, this.#device, this.#describe());
  }

  /** Every compute-instance profile this GPU instance offers (indexes 0..COUNT-1, absent ones skipped). */
  computeInstanceProfiles(): ComputeInstanceProfile[] {
    const out: ComputeInstanceProfile[] = [];
    for (let index = 0; index < COMPUTE_INSTANCE_PROFILE_COUNT; index++) {
      const profile = this.computeInstanceProfile(index);
      if (profile !== undefined) out.push(profile);
    }
    return out;
  }

  computeInstanceRemainingCapacity(profileId: number): number {
    const ctx = this.#ctx;
    const op = "nvmlGpuInstanceGetComputeInstanceRemainingCapacity";
    this.#live(op);
    const u = ctx.u32[0];
    const rc = ctx.fn.nvmlGpuInstanceGetComputeInstanceRemainingCapacity(this.#handle, profileId, u);
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, op, this.#device, this.#describe());
    return u[0] as number;
  }

  /** Compute-slice placements where a compute instance of `profileId` could go. */
  computeInstancePossiblePlacements(profileId: number): Placement[] {
    const op = "nvmlGpuInstanceGetComputeInstancePossiblePlacements";
    this.#live(op);
    const fn = this.#ctx.fn.nvmlGpuInstanceGetComputeInstancePossiblePlacements;
    return readPlacements(this.#ctx, fn, op, this.#handle, profileId, this.#device, this.toString());
  }

  /** Creates a compute instance of `profileId` (a profile ID, not an index), at `placement` when given. */
  createComputeInstance(profileId: number, placement?: Placement): ComputeInstance {
    const ctx = this.#ctx;
    const out = new BigUint64Array(1);
    let rc: number;
    let op: string;
    ctx.assertWritable("nvmlGpuInstanceCreateComputeInstance");
    if (placement === undefined) {
      op = "nvmlGpuInstanceCreateComputeInstance";
      this.#live(op);
      rc = ctx.fn.nvmlGpuInstanceCreateComputeInstance(this.#handle, profileId, out);
    } else {
      op = "nvmlGpuInstanceCreateComputeInstanceWithPlacement";
      this.#live(op);
      rc = ctx.fn.nvmlGpuInstanceCreateComputeInstanceWithPlacement(
        this.#handle,
        profileId,
        encodePlacement(placement),
        out,
      );
    }
    if (rc !== Rc.SUCCESS) {
      const where = placement ? ` at ${placement.start}:${placement.size}` : "";
      throw ctx.error(rc, op, this.#device, `${this.#describe()}, compute profile ${profileId}${where}`);
    }
    return new ComputeInstance(ctx, out[0] as bigint, this);
  }

  /** Compute instances of `profileId`, or of every profile this GPU instance offers. */
  computeInstances(profileId?: number): ComputeInstance[] {
    const op = "nvmlGpuInstanceGetComputeInstances";
    this.#live(op);
    const ids = profileId === undefined ? [...new Set(this.computeInstanceProfiles().map((p) => p.id))] : [profileId];
    const fn = this.#ctx.fn.nvmlGpuInstanceGetComputeInstances;
    return ids.flatMap((id) =>
      readHandles(this.#ctx, fn, op, this.#handle, id, this.#device, 16, this.toString()).map(
        (h) => new ComputeInstance(this.#ctx, h, this),
      ),
    );
  }

  /** The compute instance with `id`, or undefined when there is none (NOT_FOUND). */
  computeInstanceById(id: number): ComputeInstance | undefined {
    const ctx = this.#ctx;
    const op = "nvmlGpuInstanceGetComputeInstanceById";
    this.#live(op);
    const out = new BigUint64Array(1);
    const rc = ctx.fn.nvmlGpuInstanceGetComputeInstanceById(this.#handle, id, out);
    if (rc === Rc.NOT_FOUND) return undefined;
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, op, this.#device, this.#describe());
    return new ComputeInstance(ctx, out[0] as bigint, this);
  }

  #live(operation: string): void {
    if (this.#destroyed) {
      throw this.#ctx.error(Rc.INVALID_ARGUMENT, operation, this.#device, `${this.#describe()} was destroyed`);
    }
  }

  // For error messages: learns the id if it is not known yet, without throwing (the handle
  // may be the reason for the error).
  #describe(): string {
    if (this.#id === undefined && !this.#destroyed) {
      const rc = this.#ctx.fn.nvmlGpuInstanceGetInfo(this.#handle, this.#ctx.struct);
      if (rc === Rc.SUCCESS) this.#id = this.#ctx.struct.readUInt32LE(layout().giInfo.off.id);
    }
    return this.toString();
  }

  /** "GPU instance 3" once its id is known; never calls NVML (it is used while building errors). */
  toString(): string {
    return this.#id === undefined ? "GPU instance" : `GPU instance ${this.#id}`;
  }
}

export class ComputeInstance {
  readonly #ctx: NvmlContext;
  readonly #handle: bigint;
  readonly gpuInstance: GpuInstance;
  #id: number | undefined;
  #destroyed = false;

  /** @internal Compute instances come from GpuInstance. */
  constructor(ctx: NvmlContext, handle: bigint, gpuInstance: GpuInstance) {
    this.#ctx = ctx;
    this.#handle = handle;
    this.gpuInstance = gpuInstance;
  }

  equals(other: ComputeInstance): boolean {
    return this.#handle === other.#handle;
  }

  get id(): number {
    this.#id ??= this.info().id;
    return this.#id;
  }

  info(): ComputeInstanceInfo {
    const ctx = this.#ctx;
    const L = layout().ciInfo;
    const buf = ctx.struct;
    this.#live("nvmlComputeInstanceGetInfo_v2");
    const rc = ctx.fn.nvmlComputeInstanceGetInfo_v2(this.#handle, buf);
    if (rc !== Rc.SUCCESS)
      throw ctx.error(rc, "nvmlComputeInstanceGetInfo_v2", this.gpuInstance.device, this.#describe());
    const info = {
      id: buf.readUInt32LE(L.off.id),
      profileId: buf.readUInt32LE(L.off.profileId),
      placement: decodePlacement(buf, L.off.placement),
    };
    this.#id = info.id;
    return info;
  }

  /** Destroys the compute instance; IN_USE while processes run on it. */
  destroy(): void {
    const ctx = this.#ctx;
    this.#live("nvmlComputeInstanceDestroy");
    ctx.assertWritable("nvmlComputeInstanceDestroy");
    const rc = ctx.fn.nvmlComputeInstanceDestroy(this.#handle);
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlComputeInstanceDestroy", this.gpuInstance.device, this.#describe());
    this.#destroyed = true;
  }

  #live(operation: string): void {
    if (this.#destroyed) {
      throw this.#ctx.error(
        Rc.INVALID_ARGUMENT,
        operation,
        this.gpuInstance.device,
        `${this.#describe()} was destroyed`,
      );
    }
  }

  #describe(): string {
    if (this.#id === undefined && !this.#destroyed) {
      const rc = this.#ctx.fn.nvmlComputeInstanceGetInfo_v2(this.#handle, this.#ctx.struct);
      if (rc === Rc.SUCCESS) this.#id = this.#ctx.struct.readUInt32LE(layout().ciInfo.off.id);
    }
    const ci = this.#id === undefined ? "compute instance" : `compute instance ${this.#id}`;
    return `${ci} of ${this.gpuInstance}`;
  }
}
